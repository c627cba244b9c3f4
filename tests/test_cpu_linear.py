"""genlab's decode-sized CPU matmul against torch's own `Linear`: same values, rows independent of their batch,
torch's path kept for everything the kernel does not take, and a model's outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import tiny_llama, tiny_llama_model

from genlab.models import HFModel, cpu_linear


def _layer(k: int, n: int, bias: bool, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(k, n, bias=bias)
    cpu_linear.install(layer)
    return layer


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, cpu_linear.MAX_ROWS),
    k=st.integers(1, 70),
    n=st.integers(1, 40),
    bias=st.booleans(),
    batch_dims=st.sampled_from([(), (1,), (2,)]),
)
def test_values_match_torch(rows: int, k: int, n: int, bias: bool, batch_dims: tuple[int, ...]) -> None:
    layer = _layer(k, n, bias)
    lead = batch_dims + (rows // batch_dims[0] if batch_dims else rows,)
    x = torch.randn(*lead, k)
    with torch.inference_mode():
        ours = layer(x)
        theirs = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_kernel_runs_for_small_batches() -> None:
    """The forward really goes through the kernel: bitwise what a direct kernel call gives, and close to float64."""
    layer = _layer(576, 300, bias=False)
    x = torch.randn(4, 576)
    with torch.no_grad():
        kernel = layer(x)
        expected = np.einsum("mk,jk->mj", x.double().numpy(), layer.weight.double().numpy())
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        direct = torch.empty(4, 300)
        cpu_linear._rows_times_weight(x.numpy(), layer.weight.numpy(), direct.numpy())
    assert torch.equal(kernel, direct)


def test_a_row_does_not_depend_on_its_batch() -> None:
    layer = _layer(576, 200, bias=True)
    x = torch.randn(cpu_linear.MAX_ROWS, 576)
    with torch.inference_mode():
        together = layer(x)
        for i in range(len(x)):
            assert torch.equal(layer(x[i : i + 1]), together[i : i + 1])
        assert torch.equal(layer(x[3:7]), together[3:7])


def test_thread_count_changes_nothing() -> None:
    layer = _layer(300, 500, bias=False)
    x = torch.randn(5, 300)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        many = layer(x)
        torch.set_num_threads(1)
        try:
            one = layer(x)
        finally:
            torch.set_num_threads(threads)
    assert torch.equal(many, one)


def test_torch_keeps_what_the_kernel_does_not_take() -> None:
    layer = _layer(64, 32, bias=True)
    big = torch.randn(cpu_linear.MAX_ROWS + 1, 64)
    with torch.inference_mode():
        assert torch.equal(layer(big), torch.nn.functional.linear(big, layer.weight, layer.bias))
        half = layer.to(torch.float64)
        x64 = torch.randn(2, 64, dtype=torch.float64)
        assert torch.equal(half(x64), torch.nn.functional.linear(x64, half.weight, half.bias))
    layer = _layer(64, 32, bias=True)
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(x.grad, layer.weight.sum(dim=0).expand(3, 64).detach())


def test_install_and_uninstall() -> None:
    model = tiny_llama_model()
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert not cpu_linear.installed(model)
    assert cpu_linear.install(model) == linears
    assert cpu_linear.installed(model)
    assert cpu_linear.install(model) == 0
    assert cpu_linear.uninstall(model) == linears
    assert not cpu_linear.installed(model)
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_model_outputs_unchanged() -> None:
    """Prefill, one-token steps and a multi-token step on the tiny Llama: log-probs within float32 rounding of
    torch's, and the same greedy continuation."""
    plain = tiny_llama()
    fast = HFModel(tiny_llama_model(), plain.tokenizer)
    assert cpu_linear.install(fast.model) > 0
    prompt = plain.encode("The quick brown fox")

    def run(lm: HFModel) -> tuple[list[torch.Tensor], tuple[int, ...]]:
        batch = lm.prefill(prompt, 3)
        seen = [batch.logprobs()]
        for step in range(12):
            tokens = seen[-1].argmax(dim=-1).tolist()
            batch.extend([[t] if r or step % 4 else [t, 17, 5] for r, t in enumerate(tokens)])
            seen.append(batch.logprobs())
        return seen, batch.token_ids

    ours, our_ids = run(fast)
    theirs, their_ids = run(plain)
    assert our_ids == their_ids
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_load_installs_on_cpu_float32_only_when_asked() -> None:
    from genlab.models import load

    assert cpu_linear.installed(load().model)
    assert not cpu_linear.installed(load(cpu_kernels=False).model)
    assert not cpu_linear.installed(load(dtype=torch.bfloat16).model)


@pytest.mark.parametrize("rows", [1, 3])
def test_non_contiguous_input(rows: int) -> None:
    layer = _layer(40, 24, bias=False)
    x = torch.randn(rows, 80)[:, ::2]
    assert not x.is_contiguous()
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight), rtol=1e-5, atol=1e-5)


def test_nan_and_inf_propagate_as_in_torch() -> None:
    layer = _layer(32, 16, bias=False)
    x = torch.randn(3, 32)
    x[0, 4] = float("nan")
    x[1, 7] = float("inf")
    with torch.inference_mode():
        ours, theirs = layer(x), torch.nn.functional.linear(x, layer.weight)
    assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.isinf(), theirs.isinf())
    torch.testing.assert_close(ours[2], theirs[2], rtol=1e-5, atol=1e-5)


def test_threads_calling_at_once_get_their_own_results() -> None:
    """Forwards from several Python threads at once (a server's requests): each gets what it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    layer = _layer(256, 512, bias=True)
    inputs = [torch.randn(1 + i % 5, 256) for i in range(16)]
    with torch.inference_mode():
        alone = [layer(x) for x in inputs]

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return [layer(x) for _ in range(20)][-1]

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(run, inputs))
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
