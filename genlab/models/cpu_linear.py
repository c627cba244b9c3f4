"""A decode-sized matmul for `nn.Linear` on the CPU: genlab's own kernel for the few rows a sampling step forwards.

A decoding step multiplies a handful of rows (one per distinct prefix, or a draft's k + 1 tokens) by every weight
matrix of the model, so it is bound by reading the weights once from memory. On the 2-core AMD EPYC machine genlab
is benchmarked on, MKL's float32 sgemv reaches about half that bandwidth and its sgemm repacks the weights for every
call with 2 to 8 rows (a forward over 2 rows cost 1.6x one over a single row). `install` swaps each float32 CPU
`Linear`'s forward for one that sends at most `MAX_ROWS` rows through a numba kernel reading each weight row once
for all input rows, and anything larger (prefill, training, other dtypes or devices) to
`torch.nn.functional.linear` as before. Every output element is the same dot-product loop
whatever the number of rows, so a row's products do not depend on which other rows share its forward.
"""

from __future__ import annotations

from types import MethodType

import numba
import numpy as np
import torch
from numba import njit, prange

from genlab import jit

# Rows up to which the kernel beat MKL on 2 cores (benchmarks/cpu_linear.py: 1.3x at 16 rows; once with the limit
# raised to 32, 0.95x at 24); above, gemm's blocking wins.
MAX_ROWS = 16
_ready = [False]  # the kernel is compiled in this process (or loaded from the cache): `jit.ready` need not ask


@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def _rows_times_weight(x, w, out):  # pragma: no cover - compiled
    """out[m, j] = sum_k x[m, k] * w[j, k]: each weight row is read from memory once for all m.

    A block of 8 weight rows is multiplied by one input row at a time, so each load of x feeds 8 multiply-adds.
    Which code computes out[m, j] depends on j and the weight's shape only, never on the number of rows m."""
    m_rows, k_dim = x.shape
    n_out = w.shape[0]
    for block in prange((n_out + 7) // 8):
        j = block * 8
        if j + 8 <= n_out:
            for m in range(m_rows):
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
                for k in range(k_dim):
                    v = x[m, k]
                    a0 += w[j, k] * v
                    a1 += w[j + 1, k] * v
                    a2 += w[j + 2, k] * v
                    a3 += w[j + 3, k] * v
                    a4 += w[j + 4, k] * v
                    a5 += w[j + 5, k] * v
                    a6 += w[j + 6, k] * v
                    a7 += w[j + 7, k] * v
                out[m, j] = a0
                out[m, j + 1] = a1
                out[m, j + 2] = a2
                out[m, j + 3] = a3
                out[m, j + 4] = a4
                out[m, j + 5] = a5
                out[m, j + 6] = a6
                out[m, j + 7] = a7
        else:
            for jj in range(j, n_out):
                for m in range(m_rows):
                    acc = np.float32(0.0)
                    for k in range(k_dim):
                        acc += w[jj, k] * x[m, k]
                    out[m, jj] = acc


def _forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`Linear.forward` with decode-sized float32 CPU inputs sent to the kernel."""
    out = product(x, self.weight)
    if out is None:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    if self.bias is not None:
        out.add_(self.bias)
    return out


def product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """x @ weight.T by the kernel, or None where the kernel does not take x: more than `MAX_ROWS` rows, another
    dtype or device, autograd, or the kernel still compiling in the background."""
    k_dim = x.shape[-1] if x.dim() else 0
    rows = x.numel() // k_dim if k_dim else 0
    if (
        not 0 < rows <= MAX_ROWS
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
        or x.device.type != "cpu"
        or weight.device.type != "cpu"
        or not weight.is_contiguous()
        or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    ):
        return None
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
    flat = x.reshape(rows, k_dim).contiguous()
    out = torch.empty(rows, weight.shape[0], dtype=torch.float32)
    args = (flat.numpy(), weight.detach().numpy(), out.numpy())
    if not _ready[0]:  # on a machine whose cache lacks the kernel, torch's matmul serves while it compiles elsewhere
        if not jit.ready(_rows_times_weight, *args):
            return None
        _ready[0] = True
    _rows_times_weight(*args)
    return out.reshape(*x.shape[:-1], weight.shape[0])


def install(model: torch.nn.Module) -> int:
    """Give every `nn.Linear` in `model` the decode-sized CPU kernel; returns how many layers it changed."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and "forward" not in module.__dict__:
            module.forward = MethodType(_forward, module)  # type: ignore[method-assign]
            count += 1
    return count


def uninstall(model: torch.nn.Module) -> int:
    """Undo `install`: every `nn.Linear` in `model` runs torch's own forward again; returns how many it restored."""
    count = 0
    for module in model.modules():
        if has_kernel(module):
            del module.forward
            count += 1
    return count


def installed(model: torch.nn.Module) -> bool:
    """Whether `install` has given this model's `Linear` layers the kernel."""
    return any(has_kernel(m) for m in model.modules())


def has_kernel(module: torch.nn.Module) -> bool:
    """Whether `install` gave this module the kernel (and `uninstall` has not taken it back)."""
    forward = module.__dict__.get("forward")
    return isinstance(forward, MethodType) and forward.__func__ is _forward
