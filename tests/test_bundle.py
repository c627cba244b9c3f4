"""Array bundles: kernels read and write the bundled arrays through one address table, which follows growth."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from numba import njit

from genlab.automata.bundle import ArrayBundle, b1, i32, i32_2d, i64, i64_2d, replaced

KINDS = ("i32", "i64", "b1", "i32_2d", "i64_2d")


@njit(cache=True)
def _touch(table):
    """Read every slot's sum and add 1 to every element (bools: flip), through the views."""
    a, b, c, d, e = i32(table, 0), i64(table, 1), b1(table, 2), i32_2d(table, 3), i64_2d(table, 4)
    total = np.int64(0)
    for i in range(a.shape[0]):
        total += a[i]
        a[i] += 1
    for i in range(b.shape[0]):
        total += b[i]
        b[i] += 1
    for i in range(c.shape[0]):
        total += c[i]
        c[i] = not c[i]
    for i in range(d.shape[0]):
        for j in range(d.shape[1]):
            total += d[i, j]
            d[i, j] += 1
    for i in range(e.shape[0]):
        for j in range(e.shape[1]):
            total += e[i, j]
            e[i, j] += 1
    return total


class Owner:
    def __init__(self) -> None:
        self.arrays = [
            np.arange(5, dtype=np.int32),
            np.arange(7, dtype=np.int64) * 10,
            np.array([True, False, True]),
            np.arange(6, dtype=np.int32).reshape(2, 3),
            np.arange(12, dtype=np.int64).reshape(4, 3) * 100,
        ]

    def total(self) -> int:
        return sum(int(a.sum()) for a in self.arrays)

    def sources(self) -> list[np.ndarray]:
        return self.arrays


class Holder:
    """An owner and its bundle, copied together as a parser and its bundle are."""

    def __init__(self) -> None:
        self.owner = Owner()
        self.bundle = ArrayBundle(KINDS, self.owner.sources)


def test_kernels_read_and_write_the_bundled_arrays():
    owner = Owner()
    bundle = ArrayBundle(KINDS, lambda: owner.arrays)
    before, total = [a.copy() for a in owner.arrays], owner.total()
    assert _touch(bundle.table()) == total
    for old, new in zip(before, owner.arrays):
        want = ~old if old.dtype == np.bool_ else old + 1
        assert np.array_equal(new, want)
    assert bundle.current()


def test_the_table_follows_arrays_replaced_by_growth():
    owner = Owner()
    bundle = ArrayBundle(KINDS, lambda: owner.arrays)
    bundle.table()
    grown = np.zeros((8, 3), np.int64)
    grown[:4] = owner.arrays[4]
    grown[4:] = 7
    old = owner.arrays[4]
    owner.arrays[4] = grown
    assert not bundle.current()  # not told yet: the table still points at the old array
    replaced()
    total = owner.total()
    assert _touch(bundle.table()) == total  # the new array's rows, all of them, are read
    assert np.array_equal(grown[4:], np.full((4, 3), 8)) and old[0, 0] == 0  # written there, not in the old one
    assert bundle.current()
    replaced()  # a replacement elsewhere: nothing of this bundle changed, the table stays right
    total = owner.total()
    assert bundle.current() is False and _touch(bundle.table()) == total and bundle.current()


@pytest.mark.parametrize(
    "slot, bad, what",
    [
        (0, np.zeros(3, np.int64), "1-d int32"),
        (3, np.zeros(6, np.int32), "2-d int32"),
        (4, np.zeros((3, 4), np.int64)[:, ::2], "2-d int64"),
    ],
)
def test_an_array_of_the_wrong_kind_is_refused(slot, bad, what):
    owner = Owner()
    owner.arrays[slot] = bad
    with pytest.raises(ValueError, match=f"slot {slot} wants a C-contiguous {what} array"):
        ArrayBundle(KINDS, lambda: owner.arrays).table()
    with pytest.raises(ValueError, match="5 slots was given 4 arrays"):
        ArrayBundle(KINDS, lambda: owner.arrays[:4]).table()


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_reads_its_own_arrays(how):
    """A copied parser must not write into the arrays of the one it was copied from (nor read them once freed)."""
    holder = Holder()
    holder.bundle.table()
    twin = copy.deepcopy(holder) if how == "deepcopy" else pickle.loads(pickle.dumps(holder))
    before, total = [a.copy() for a in holder.owner.arrays], twin.owner.total()
    assert _touch(twin.bundle.table()) == total and twin.bundle.current()
    assert all(np.array_equal(a, b) for a, b in zip(before, holder.owner.arrays))  # the original is untouched
    assert not np.array_equal(twin.owner.arrays[0], before[0])  # the copy was written
