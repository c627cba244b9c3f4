"""genlab's cache folder: numba's kernels go to it (shared by every later process), and a process that compiles a
kernel says so once on stderr, while one that loads them from the cache says nothing."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import os, genlab
from genlab.cache import kernel_dir, kernels_compiled
from genlab.vocab import TokenVocabulary
vocab = TokenVocabulary.from_bytes([b"a", b"b", b"ab", b"ba", b"<eos>"], eos_ids=[4])
matcher = genlab.Regex("(ab)+").compile(vocab)
state = matcher.advance(matcher.start(), 2)
print("MASK", "".join("1" if x else "0" for x in matcher.mask(state)))
print("DIR", os.environ["NUMBA_CACHE_DIR"], kernel_dir())
print("COMPILED", kernels_compiled())
"""


ROUTE_ONLY = """
import os, genlab
from genlab.cache import kernel_dir
print("DIR", os.environ["NUMBA_CACHE_DIR"], kernel_dir())
"""


def run_child(tmp_path, code: str = CHILD, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "GENLAB_CACHE")}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**clean, "GENLAB_CACHE": str(tmp_path), **env},
        check=True,
    )


def fields(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_kernels_compile_once_into_the_cache_folder_and_load_after(tmp_path):
    first = run_child(tmp_path)
    folder = tmp_path / "numba"
    got = fields(first.stdout)
    assert got["DIR"] == f"{folder} {folder}"
    assert got["MASK"] == "10101"  # after "ab": "a" and "ab" continue (ab)+, EOS ends it; "b" and "ba" cannot
    assert int(got["COMPILED"]) > 0
    assert first.stderr.count("compiling its numba kernels") == 1, first.stderr
    assert any(folder.rglob("*.nbi")), "no numba index written to the cache folder"
    second = run_child(tmp_path)
    assert fields(second.stdout)["MASK"] == got["MASK"]
    assert fields(second.stdout)["COMPILED"] == "0"
    assert "compiling" not in second.stderr, second.stderr


def test_a_chosen_numba_cache_dir_is_kept(tmp_path):
    chosen = tmp_path / "elsewhere"
    got = fields(run_child(tmp_path, ROUTE_ONLY, NUMBA_CACHE_DIR=str(chosen)).stdout)
    assert got["DIR"] == f"{chosen} {chosen}"


KERNEL = """
import torch, genlab
from genlab.cache import kernels_compiled
from genlab.models import cpu_linear
layer = torch.nn.Linear(8, 4)
cpu_linear.install(layer)
with torch.inference_mode():
    layer(torch.ones(2, 8))
print("COMPILED", kernels_compiled())
"""


def test_the_cpu_linear_kernel_is_counted_and_cached_like_the_others(tmp_path):
    """`genlab demo` says which timings paid for compiling: the CPU Linear kernel is counted too, once."""
    first = run_child(tmp_path, KERNEL)
    assert int(fields(first.stdout)["COMPILED"]) > 0
    assert "compiling its numba kernels" in first.stderr
    assert fields(run_child(tmp_path, KERNEL).stdout)["COMPILED"] == "0"
