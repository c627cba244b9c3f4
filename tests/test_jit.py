"""`genlab.jit`: kernels run as Python (while their first compile happens in the helper process) walk every
constraint kind exactly as the compiled kernels do; the helper fills numba's cache and later calls load from it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab import jit
from genlab.automata import intern
from genlab.errors import GenlabError

HERE = Path(__file__).parent
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"enum": ["a", "bc"]}, "maxItems": 3},
        "score": {"type": "number"},
    },
    "required": ["name", "age"],
}
ARITHMETIC = r"""
start: expr
expr: term (("+" | "-") term)*
term: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
%ignore " "
"""


def walks(database: str) -> dict[str, list]:
    """Seeded random walks through one matcher of each kind on SmolLM2's vocabulary: each step's mask (a digest)
    and the token taken."""
    sys.path.insert(0, str(HERE))
    from conftest import tokenizer_and_vocab

    from genlab import SQL, Grammar, JsonSchema, Pattern, Regex

    _, vocab = tokenizer_and_vocab("smollm2")
    constraints = {
        "regex": Regex(r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}"),
        "regex-unicode": Regex(r"[α-ω]{2,5}(-[0-9a-f]+)?"),
        "json": JsonSchema(SCHEMA),
        "grammar": Grammar(ARITHMETIC),
        "sql": SQL(database),
        "pattern": Pattern(r"(\w{1,4}) \1"),
    }
    out: dict[str, list] = {}
    for name, constraint in constraints.items():
        matcher = constraint.compile(vocab)
        rng = np.random.default_rng(0)
        state, trail = matcher.start(), []
        for _ in range(10):
            mask = matcher.mask(state)
            trail.append(hashlib.sha1(np.packbits(mask).tobytes()).hexdigest())
            allowed = [t for t in np.flatnonzero(mask) if t not in vocab.eos_ids]
            if not allowed:
                break
            token = int(rng.choice(allowed))
            trail.append(token)
            state = matcher.advance(state, token)
        out[name] = trail
    return out


def make_database(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
        db.execute("CREATE TABLE concert (id INTEGER, singer_id INTEGER REFERENCES singer(id), year INTEGER)")
    return str(path)


def run_walks(database: str, kernels: str, cache: Path) -> dict[str, list]:
    done = subprocess.run(
        [sys.executable, __file__, database],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "GENLAB_KERNELS": kernels, "NUMBA_CACHE_DIR": str(cache)},
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_python_versions_walk_every_kind_like_the_compiled_kernels(tmp_path):
    """Regex (ASCII and UTF-8), JSON Schema, a Lark grammar, SQL and a Pattern: the same masks and tokens with
    every kernel run as Python as with every kernel compiled (the suite's own cache)."""
    database = make_database(tmp_path / "music.sqlite")
    compiled = run_walks(database, "compile", Path(os.environ["NUMBA_CACHE_DIR"]))
    python = run_walks(database, "python", tmp_path / "unused")
    assert python == compiled
    assert all(len(trail) >= 5 for trail in compiled.values()), compiled  # each walk took steps


BACKGROUND = """
import numpy as np
from genlab import jit
from genlab.automata import intern
from genlab.cache import kernels_compiled
keys = np.full(64, -1, np.int64)
keys[[3, 17, 40]] = [5, 9, 12]
values = np.arange(-3, 20, dtype=np.int64)
first = [int(intern.find_slot(keys, k)) for k in (5, 9, 7)] + [int(intern.list_hash(values, 2, 19))]
print("FIRST", jit.counts()["python calls"], jit.counts()["requests"], jit.counts()["loaded"])
print("WAITED", jit.wait_for_compiler(300))
again = [int(intern.find_slot(keys, k)) for k in (5, 9, 7)] + [int(intern.list_hash(values, 2, 19))]
print("AGAIN", jit.counts()["python calls"], jit.counts()["loaded"], len(intern.find_slot.signatures))
print("SAME", first == again)
helper = jit._Compiler.get().process
if helper is not None:
    helper.wait(timeout=60)  # idle for GENLAB_KERNEL_HELPER_IDLE seconds: it leaves
intern.find_slot(np.full(64, -1, np.int32), 5)  # new argument types: a new helper compiles them
print("RESTARTED", jit.wait_for_compiler(300), jit._Compiler.get().process is not helper)
print("COMPILED", kernels_compiled())
"""


def background(cache: Path) -> tuple[dict[str, str], str]:
    env = {**os.environ, "GENLAB_KERNELS": "background", "NUMBA_CACHE_DIR": str(cache)}
    env["GENLAB_KERNEL_HELPER_IDLE"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", BACKGROUND], capture_output=True, text=True, timeout=600, env=env, check=True
    )
    return dict(line.split(" ", 1) for line in done.stdout.splitlines()), done.stderr


def test_the_helper_compiles_into_the_cache_while_kernels_run_as_python(tmp_path):
    """On an empty cache the first calls run as Python and ask the helper (one line on stderr says so); once it is
    done, the same process loads the machine code and gets the same results; a later process only loads."""
    first, stderr = background(tmp_path)
    assert first["FIRST"] == "4 2 0"  # 4 calls as Python, 2 kernels asked for, none loaded yet
    assert first["WAITED"] == "True"
    assert first["AGAIN"] == "4 2 1"  # no more Python calls: both loaded from the cache the helper filled
    assert first["SAME"] == "True"
    assert first["RESTARTED"] == "True True"  # the helper left when idle; the next request started another
    assert first["COMPILED"] == "0"  # nothing compiled in the calling process
    assert stderr.count("compiling its numba kernels for this machine in a background process") == 1, stderr
    assert any(tmp_path.rglob("*.nbi"))
    second, stderr = background(tmp_path)
    assert second["FIRST"] == "0 0 2" and second["COMPILED"] == "0" and second["SAME"] == "True"
    assert "compiling" not in stderr, stderr


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=40),
    st.data(),
)
def test_python_hashes_equal_the_compiled_ones(values, data):
    """Tables that Python versions fill are read by compiled kernels later: their hashes agree bit for bit (the
    unsigned arithmetic wraps the same way)."""
    array = np.array(values, np.int64)
    lo = data.draw(st.integers(0, len(values)))
    hi = data.draw(st.integers(lo, len(values)))
    assert jit.python_version(intern.list_hash)(array, lo, hi) == intern.list_hash(array, lo, hi)
    keys = np.full(32, -1, np.int64)
    for k in data.draw(st.lists(st.integers(0, 2**62), max_size=20, unique=True)):
        slot = jit.python_version(intern.find_slot)(keys, k)
        assert slot == intern.find_slot(keys, k)
        keys[slot] = k


def test_an_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("GENLAB_KERNELS", "fast")
    with pytest.raises(GenlabError, match="GENLAB_KERNELS='fast'.*background, compile, python"):
        jit.ready(intern.find_slot, np.full(4, -1, np.int64), 1)


def test_cpu_linear_uses_torch_until_its_kernel_is_ready(monkeypatch):
    """A kernel with no Python version (the CPU Linear matmul): while it is not compiled, torch's matmul serves."""
    from genlab.models import cpu_linear

    layer = torch.nn.Linear(32, 12)
    cpu_linear.install(layer)
    x = torch.randn(3, 32)
    monkeypatch.setattr(cpu_linear, "_ready", [False])
    monkeypatch.setenv("GENLAB_KERNELS", "python")  # never compiles: the kernel is never ready
    calls = []
    monkeypatch.setattr(cpu_linear, "_rows_times_weight", lambda *a: calls.append(a))
    with torch.inference_mode():
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    assert not calls and not cpu_linear._ready[0]


def test_demo_timings_say_what_the_first_use_cost(monkeypatch):
    from genlab import cli

    monkeypatch.setattr(cli, "kernels_compiled", lambda: 0)
    monkeypatch.setattr(jit, "_counts", {"python calls": 5, "requests": 2, "loaded": 0, "not ready": 3})
    assert cli._first_use((0, 0, 0)) == (
        "; includes 5 kernel calls run as Python and 3 matrix products on torch's matmul while a background "
        "process compiles the kernels: a first-use cost"
    )
    assert cli._first_use((0, 5, 3)) == ""
    monkeypatch.setattr(cli, "kernels_compiled", lambda: 4)
    assert cli._first_use((0, 5, 3)) == "; includes compiling 4 numba kernels (cached now): a first-use cost"


if __name__ == "__main__":
    print(json.dumps(walks(sys.argv[1])))
