"""Interning sorted int lists in numba: an open-addressing table of list ids over one array of members.

The lexer's product states (lists of terminal-state pairs) and the subset construction's DFA states (sets of NFA
states) are both such lists, interned so that equal lists get one id.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
