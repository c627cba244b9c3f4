"""Interning in numba: sorted int lists (an open-addressing table of list ids over one array of members), and
int64 keys (open-addressing tables of rows keys, values).

The lexer's product states (lists of terminal-state pairs), the subset construction's DFA states (sets of NFA
states) and the chart's kernels are lists, interned so that equal lists get one id; the parser's configurations,
lexer starts, boundary table and the chart's scan memo are keyed tables.
"""

from __future__ import annotations

import numpy as np

from genlab.jit import njit


@njit(cache=True)
def list_hash(values, lo, hi):
    """FNV-1a over `values[lo:hi]`, its high bits folded down (tables index by the low ones)."""
    h = np.uint64(14695981039346656037)
    for i in range(lo, hi):
        h = (h ^ np.uint64(values[i] + 1)) * np.uint64(1099511628211)
    return h ^ (h >> np.uint64(29))


@njit(cache=True)
def find_list(slots, members, lo, hi, values, size):
    """Look `values[:size]` up among the lists `members[lo[e]:hi[e]]` interned in `slots` (entry + 1, 0 empty, a
    power-of-two size): (its entry or -1, the slot it is in or would go in)."""
    mask = np.uint64(slots.shape[0] - 1)
    j = list_hash(values, 0, size) & mask
    while slots[j] != 0:
        e = slots[j] - 1
        if hi[e] - lo[e] == size:
            same = True
            for k in range(size):
                if members[lo[e] + k] != values[k]:
                    same = False
                    break
            if same:
                return e, j
        j = (j + np.uint64(1)) & mask
    return -1, j


@njit(cache=True)
def find_slot(keys, key):
    """Where `key` is in the open-addressing table `keys` (-1 empty), or the empty slot where it would go."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    mask = np.uint64(keys.shape[0] - 1)
    i = h & mask
    while keys[i] != -1 and keys[i] != key:
        i = (i + np.uint64(1)) & mask
    return i


@njit(cache=True)
def put_pair(table, key, value):
    """Enter `key -> value` in an open-addressing table of rows (keys, values), which has room."""
    j = find_slot(table[0], key)
    table[0, j], table[1, j] = key, value


@njit(cache=True)
def _rehash_pairs(table, grown):
    """Move every entry of an open-addressing table of rows (keys, values) into the empty, larger `grown`."""
    for j in range(table.shape[1]):
        if table[0, j] != -1:
            put_pair(grown, table[0, j], table[1, j])


def grown_pairs(table: np.ndarray) -> np.ndarray:
    """An open-addressing table of rows (keys, values) twice as large, its entries moved in."""
    grown = np.full((2, 2 * table.shape[1]), -1, np.int64)
    _rehash_pairs(table, grown)
    return grown
