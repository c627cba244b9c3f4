"""Many arrays handed to a compiled kernel as one argument: a table of their addresses and shapes.

numba unboxes each array argument of a call (about 45 ns apiece here); a kernel reading some thirty arrays pays
more for its arguments than for its work when the work is a few lexer steps (`survivor.survives`). An
`ArrayBundle` keeps those arrays alive and writes each one's address and shape into one int64 array; kernels
take views of it by slot (`i32`, `i64_2d`, ...), with no copy and no reference counting.

The arrays grow by replacement, so a stale table would point at freed memory. Every owner of a bundled array
calls `replaced()` when it swaps one for another (the lexer, the chart, the configurations, the boundary
table), and `ArrayBundle.table()` rebuilds the table after any replacement anywhere in the process (growth is
rare: doubling), checking each array's dtype, rank and layout against the slot's kind. Addresses never travel:
a copied bundle (deepcopy, pickle) builds its table anew from its own arrays.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence

import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.extending import intrinsic

from genlab.jit import njit, python_version_of

_GENERATION = [0]  # replacements so far, process-wide
_SLOT = 3  # int64s per slot: address, rows, columns (1 for a 1-d array)
_KINDS = {
    "i32": (np.dtype(np.int32), 1),
    "i64": (np.dtype(np.int64), 1),
    "b1": (np.dtype(np.bool_), 1),
    "i32_2d": (np.dtype(np.int32), 2),
    "i64_2d": (np.dtype(np.int64), 2),
}  # kind -> dtype, rank


def replaced() -> None:
    """Say that some bundled array was replaced by another (every bundle rebuilds its table before next use)."""
    _GENERATION[0] += 1


class ArrayBundle:
    """The arrays `sources()` returns, in slot order, of the kinds `kinds` ("i32", "i64", "b1", "i32_2d",
    "i64_2d", read in kernels with the function of that name)."""

    def __init__(self, kinds: Sequence[str], sources: Callable[[], Sequence[np.ndarray]]) -> None:
        self._kinds = [_KINDS[k] for k in kinds]
        self._sources = sources
        self._arrays: tuple[np.ndarray, ...] = ()  # what the table points at, kept alive
        self._table = np.zeros(_SLOT * len(kinds), np.int64)
        self._generation = -1

    def __getstate__(self) -> dict:
        """Copies (deepcopy, pickle) leave the addresses behind: a copy builds its table from its own arrays."""
        return {"kinds": self._kinds, "sources": self._sources}

    def __setstate__(self, state: dict) -> None:
        self._kinds, self._sources = state["kinds"], state["sources"]
        self._arrays, self._table, self._generation = (), np.zeros(_SLOT * len(self._kinds), np.int64), -1

    def table(self) -> np.ndarray:
        """The address table, rebuilt if any bundled array anywhere was replaced since it was built."""
        if self._generation != _GENERATION[0]:
            self._build()
        return self._table

    def current(self) -> bool:
        """Whether the table needs no rebuild and points at exactly the arrays `sources()` returns now (tests)."""
        return self._generation == _GENERATION[0] and all(
            a is b for a, b in zip(self._arrays, self._sources(), strict=True)
        )

    def _build(self) -> None:
        """Write the slots of arrays that are new since the last build (most stay: growth replaces a few)."""
        arrays = tuple(self._sources())
        if len(arrays) != len(self._kinds):
            raise ValueError(f"an array bundle of {len(self._kinds)} slots was given {len(arrays)} arrays")
        old, table = self._arrays, self._table
        for k, (a, (dtype, ndim)) in enumerate(zip(arrays, self._kinds)):
            if old and a is old[k]:
                continue
            if a.dtype != dtype or a.ndim != ndim or not a.flags.c_contiguous:
                raise ValueError(
                    f"array bundle slot {k} wants a C-contiguous {ndim}-d {dtype} array, got {a.ndim}-d {a.dtype}"
                )
            table[_SLOT * k] = _address(a)
            table[_SLOT * k + 1] = a.shape[0]
            table[_SLOT * k + 2] = a.shape[1] if ndim == 2 else 1
        self._arrays, self._generation = arrays, _GENERATION[0]


@njit(cache=True)
def _address(a):
    return a.ctypes.data


@intrinsic
def _pointer(typingctx, address):
    """An int64 address as a void pointer."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(types.int64), codegen


@njit(cache=True)
def i32(table, k):
    return carray(_pointer(table[_SLOT * k]), (table[_SLOT * k + 1],), np.int32)


@njit(cache=True)
def i64(table, k):
    return carray(_pointer(table[_SLOT * k]), (table[_SLOT * k + 1],), np.int64)


@njit(cache=True)
def b1(table, k):
    return carray(_pointer(table[_SLOT * k]), (table[_SLOT * k + 1],), np.bool_)


@njit(cache=True)
def i32_2d(table, k):
    return carray(_pointer(table[_SLOT * k]), (table[_SLOT * k + 1], table[_SLOT * k + 2]), np.int32)


@njit(cache=True)
def i64_2d(table, k):
    return carray(_pointer(table[_SLOT * k]), (table[_SLOT * k + 1], table[_SLOT * k + 2]), np.int64)


def _view(table: np.ndarray, k: int, dtype: type, ndim: int) -> np.ndarray:
    """Slot `k`'s array as numpy sees it: what the kernels below give when they run as Python (`genlab.jit`)."""
    rows, columns = int(table[_SLOT * k + 1]), int(table[_SLOT * k + 2])
    shape = (rows, columns) if ndim == 2 else (rows,)
    if rows * columns == 0:
        return np.empty(shape, dtype)
    pointer = ctypes.cast(int(table[_SLOT * k]), ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
    return np.ctypeslib.as_array(pointer, shape)


python_version_of(i32)(lambda table, k: _view(table, k, np.int32, 1))
python_version_of(i64)(lambda table, k: _view(table, k, np.int64, 1))
python_version_of(b1)(lambda table, k: _view(table, k, np.bool_, 1))
python_version_of(i32_2d)(lambda table, k: _view(table, k, np.int32, 2))
python_version_of(i64_2d)(lambda table, k: _view(table, k, np.int64, 2))
