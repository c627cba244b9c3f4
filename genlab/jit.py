"""genlab's `njit`: numba kernels that run as Python while their first compile happens in another process.

Compiling a kernel costs 0.1-8 s on 2 cores, and a constraint kind's first use on a machine compiles dozens (20-70
s before its first token). Every genlab kernel is also plain Python over numpy arrays, and run as Python the
compile-time work and a first generation take a few seconds. So a kernel called from Python with argument types
that are neither compiled in this process nor in numba's cache runs as Python ("its Python version"), and one
helper process per calling process compiles it into the cache; the calls after that load the machine code.

`GENLAB_KERNELS` picks the behaviour: `background` (the default, as above), `compile` (numba's own: compile in the
calling process; the test suite and the helper use it), `python` (never compile or load: every kernel runs as
Python, for checks that the two agree).
"""

from __future__ import annotations

import base64
import functools
import importlib
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
from numba.core.dispatcher import Dispatcher

from genlab.cache import kernel_dir
from genlab.errors import GenlabError

_log = logging.getLogger("genlab")

_MODES = ("background", "compile", "python")
_python: dict[Dispatcher, Callable] = {}  # each kernel's Python version, built on first need
_declared: dict[Dispatcher, Callable] = {}  # Python versions written by hand (kernels built on numba intrinsics)
_counts = {"python calls": 0, "requests": 0, "loaded": 0, "not ready": 0}


def mode() -> str:
    """The behaviour `GENLAB_KERNELS` asks for (read on every cold call, so tests and tools may switch it)."""
    value = os.environ.get("GENLAB_KERNELS", "background")
    if value not in _MODES:
        raise GenlabError(f"GENLAB_KERNELS={value!r}: expected one of {', '.join(_MODES)}")
    return value


def njit(fn: Callable | None = None, **options: Any) -> Any:
    """numba's `njit` (same options); a kernel with `cache=True` called from Python also runs as Python while its
    first compile for those argument types happens in the helper process (see the module's docstring)."""

    def wrap(f: Callable) -> Dispatcher:
        kernel = numba.njit(**options)(f)
        if options.get("cache"):
            kernel._compile_for_args = functools.partial(_compile_or_python, kernel)
        return kernel

    return wrap(fn) if fn is not None else wrap


def python_version_of(kernel: Dispatcher) -> Callable[[Callable], Callable]:
    """Register the decorated function as `kernel`'s Python version (for kernels that numba intrinsics build)."""

    def register(f: Callable) -> Callable:
        _declared[kernel] = f
        return f

    return register


@functools.cache
def python_version(kernel: Dispatcher) -> Callable:
    """`kernel` as Python: its source run by the interpreter, each kernel it calls (a global of its module) replaced
    by that kernel's Python version, integer overflow wrapping silently as it does in machine code."""
    inner = _source(kernel)

    def run(*args: Any) -> Any:
        with np.errstate(over="ignore"):
            return inner(*args)

    return run


def _source(kernel: Dispatcher) -> Callable:
    """`kernel`'s function with its module's kernels swapped for their Python versions (built once)."""
    if kernel in _declared:
        return _declared[kernel]
    if kernel not in _python:
        f = kernel.py_func
        scope = dict(f.__globals__)
        version = types.FunctionType(f.__code__, scope, f.__name__, f.__defaults__, f.__closure__)
        version.__kwdefaults__ = f.__kwdefaults__
        _python[kernel] = version  # before the globals: kernels that call each other
        for name, value in f.__globals__.items():
            if isinstance(value, Dispatcher):
                scope[name] = _source(value)
    return _python[kernel]


def _run_as_python(kernel: Dispatcher) -> Callable:
    """The Python version for numba's dispatcher to call this once (it asks again on every call until compiled)."""
    _counts["python calls"] += 1
    return python_version(kernel)


def _compile_or_python(kernel: Dispatcher, *args: Any, **kws: Any) -> Any:
    """What numba's dispatcher calls when no compiled version fits `args`: it calls what this returns with them."""
    chosen = mode()
    if chosen == "compile" or kws:
        return Dispatcher._compile_for_args(kernel, *args, **kws)  # type: ignore[attr-defined]
    if chosen == "python":
        return _run_as_python(kernel)
    signature = tuple(kernel.typeof_pyval(a) for a in args)
    if _loadable(kernel, signature):
        return Dispatcher._compile_for_args(kernel, *args)  # type: ignore[attr-defined]  # loads (or compiles)
    return _run_as_python(kernel)


def _loadable(kernel: Dispatcher, signature: tuple) -> bool:
    """Whether `kernel` should run compiled on `signature` now: its machine code is in the cache, or the helper
    failed to compile it (compiling here then raises numba's error). Otherwise the helper is asked, once: False."""
    compiler = _Compiler.get()
    key = _key(kernel, signature)
    if key in compiler.failed:
        return True
    if (key not in compiler.asked or key in compiler.done) and kernel._cache.load_overload(  # type: ignore[attr-defined]
        signature, kernel.targetctx
    ) is not None:
        _counts["loaded"] += 1
        return True
    if key not in compiler.asked:
        compiler.ask(kernel, signature, key)
    return False


def ready(kernel: Dispatcher, *args: Any) -> bool:
    """For a kernel with no Python version (too slow as Python, e.g. a matmul): whether it can run compiled on
    `args` now. In background mode a kernel neither compiled here nor in the cache is asked of the helper and this
    says False, so the caller takes its own path meanwhile; compile mode compiles here (True), python mode never
    compiles (False)."""
    chosen = mode()
    if chosen == "compile":
        return True
    if chosen == "background":
        signature = tuple(kernel.typeof_pyval(a) for a in args)
        if signature in kernel.overloads:
            return True
        if _loadable(kernel, signature):
            kernel.compile(signature)
            return True
    _counts["not ready"] += 1
    return False


def _key(kernel: Dispatcher, signature: tuple) -> str:
    return f"{kernel.py_func.__module__}:{kernel.py_func.__qualname__}{signature}"


class _Compiler:
    """The helper process: reads (module, name, argument types) requests and compiles each into numba's cache."""

    _one: _Compiler | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None  # started by a request when none is running
        self.started = False  # whether a helper was ever started (the stderr line is written once)
        self.asked: set[str] = set()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.idle = threading.Condition()

    def _start(self) -> subprocess.Popen:
        if self.process is not None and self.process.poll() is not None:  # it left after a minute without work
            self.process = None
        elif self.process is None and not self.started:
            self.started = True
            _log.warning(
                "genlab: compiling its numba kernels for this machine in a background process (first use only: "
                "they run as Python meanwhile, and are cached in %s)",
                kernel_dir(),
            )
        if self.process is None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "genlab.jit"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "GENLAB_KERNELS": "compile"},
                text=True,
            )
            threading.Thread(target=self._read, args=(self.process,), daemon=True, name="genlab-compiler").start()
        return self.process

    @classmethod
    def get(cls) -> _Compiler:
        with cls._lock:
            if cls._one is None:
                cls._one = cls()
            return cls._one

    def ask(self, kernel: Dispatcher, signature: tuple, key: str) -> None:
        _counts["requests"] += 1
        request = (kernel.py_func.__module__, kernel.py_func.__qualname__, signature, key)
        with self.idle:  # one thread at a time starts a helper and writes to it
            self.asked.add(key)
            try:
                stdin = self._start().stdin
                assert stdin is not None
                stdin.write(base64.b64encode(pickle.dumps(request)).decode() + "\n")
                stdin.flush()
            except OSError:  # the helper is gone: the kernel compiles here on its next call
                self.failed.add(key)

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            status, _, key = line.rstrip("\n").partition(" ")
            with self.idle:
                (self.done if status == "done" else self.failed).add(key)
                self.idle.notify_all()
        with self.idle:
            self.failed.update(self.asked - self.done)
            self.idle.notify_all()

    def wait(self, timeout: float | None) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.asked <= self.done | self.failed, timeout)


def wait_for_compiler(timeout: float | None = None) -> bool:
    """Block until the helper has compiled every kernel asked of it so far (True), or `timeout` seconds pass."""
    return _Compiler.get().wait(timeout)


def counts() -> dict[str, int]:
    """Kernel calls run as Python, compiles asked of the helper, kernels loaded from the cache it filled, and
    calls that found a kernel with no Python version not ready (`ready`)."""
    return dict(_counts)


# seconds the helper waits for another request before it exits (the caller starts a new one when it needs one)
HELPER_IDLE = float(os.environ.get("GENLAB_KERNEL_HELPER_IDLE", "60"))


def _requests(idle: float) -> Iterator[bytes]:
    """The request lines on stdin, until it closes or (POSIX) `idle` seconds pass without one. Read from the file
    descriptor itself, so that waiting sees every byte (a buffered reader could hold lines back from `select`)."""
    fd, pending = sys.stdin.fileno(), b""
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line
        if os.name == "posix" and not select.select([fd], [], [], idle)[0]:
            return
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        pending += chunk


def _serve() -> None:
    """The helper's loop: compile each request (numba writes it to the cache), answer `done KEY` or `failed KEY`."""
    listening = True
    try:  # the caller's own work goes first: a 2-thread forward slows several-fold when a core is taken from it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        if hasattr(os, "nice"):
            os.nice(19)
    for line in _requests(HELPER_IDLE):
        module, qualname, signature, key = pickle.loads(base64.b64decode(line))
        try:
            kernel = importlib.import_module(module)
            for part in qualname.split("."):
                kernel = getattr(kernel, part)
            kernel.compile(signature)
            status = "done"
        except Exception:  # the caller compiles it itself and sees numba's error
            status = "failed"
        if listening:
            try:
                sys.stdout.write(f"{status} {key}\n")
                sys.stdout.flush()
            except OSError:  # the caller has exited: compile the rest of its requests for the next process
                listening = False


if __name__ == "__main__":
    _serve()
