"""Parser configurations and what lexeme ends lead to, as arrays that compiled mask walks read and extend.

A parser *configuration* is (chart column, guard of the last lexeme) (`automata/parser.py`). A mask walk meets
lexeme ends by the hundred, most of them new on a grammar's first masks; asking Python for each costs more than
the walk. So the configurations (`Configurations`: per id its column, guard, lexer start and whether no guard
follows it, interned by (column, guard), with the lexer starts built so far by (expected-set id, guard)) and the
boundary table ((configuration, lexer state) -> configurations, `BoundaryTable`) are arrays, and `resolve_end`
fills the table in numba, making chart columns (`earley.scan_memo`) and configurations as it goes. It comes
back to Python only to build a lexer start or to make room. Python's own reads (`GrammarParser.boundaries`, for
`feed`) compute the same ends with dicts in front: a call into numba per end costs more than those dict reads.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.bundle import replaced
from genlab.automata.earley import EXPECTED, OK, scan_memo
from genlab.automata.intern import find_slot, grown_pairs, put_pair
from genlab.jit import njit

NEED_START, GROW_CONFIGS, GROW_TABLE = 100, 101, 102  # `resolve_end` statuses beside the chart's (`earley`)
GUARD_BITS = 16  # keys `column << 16 | guard` (configurations), `expected-set id << 16 | guard` (lexer starts)


class Configurations:
    """Every configuration so far, as arrays: `column`, `guard`, `start` (lexer start state), `reset` (no guard:
    an ignored lexeme's end leads back to it); `keys` ((column, guard) -> id) and `starts` ((expected-set id, guard)
    -> lexer start) are tables of rows (keys, values); `counts` holds the number of configurations and of lexer
    starts, and the (column, guard) whose start `resolve_end` found missing."""

    INITIAL = 512  # configurations before the arrays first grow (as many as `Chart.INITIAL_COLUMNS`)

    def __init__(self) -> None:
        self.column = np.zeros(self.INITIAL, np.int32)
        self.guard = np.zeros(self.INITIAL, np.int32)
        self.start = np.zeros(self.INITIAL, np.int32)
        self.reset = np.zeros(self.INITIAL, np.bool_)
        self.keys = np.full((2, 2 * self.INITIAL), -1, np.int64)
        self.starts = np.full((2, 2 * self.INITIAL), -1, np.int64)
        self.counts = np.zeros(4, np.int64)

    @property
    def size(self) -> int:
        return int(self.counts[0])

    def add_start(self, expected_id: int, guard: int, start: int) -> None:
        """Record the lexer start of (expected-set id, guard)."""
        if 2 * (int(self.counts[1]) + 1) > self.starts.shape[1]:
            self.starts = grown_pairs(self.starts)
            replaced()
        put_pair(self.starts, expected_id << GUARD_BITS | guard, start)
        self.counts[1] += 1

    def make_room(self) -> None:
        """Room for one more configuration."""
        c, n = int(self.counts[0]), len(self.column)
        if c >= n:
            for name in ("column", "guard", "start", "reset"):
                old = getattr(self, name)
                grown = np.zeros(2 * n, old.dtype)
                grown[:n] = old
                setattr(self, name, grown)
            replaced()
        if 2 * (c + 1) > self.keys.shape[1]:
            self.keys = grown_pairs(self.keys)
            replaced()


@njit(cache=True)
def config_of(column, guard, expected_ids, c_column, c_guard, c_start, c_reset, c_keys, c_starts, c_counts):
    """The configuration (chart `column`, `guard`), made if new: (status, its id, its lexer start): `NEED_START`
    when its lexer start is not built yet (`c_counts[2:4]` say which column and guard), `GROW_CONFIGS` when the
    arrays are full."""
    key = (np.int64(column) << GUARD_BITS) | guard
    j = find_slot(c_keys[0], key)
    if c_keys[0, j] == key:
        c = c_keys[1, j]
        return OK, c, np.int64(c_start[c])
    k = find_slot(c_starts[0], (expected_ids[column] << GUARD_BITS) | guard)
    if c_starts[0, k] == -1:
        c_counts[2], c_counts[3] = column, guard
        return NEED_START, np.int64(-1), np.int64(-1)
    c = c_counts[0]
    if c >= c_column.shape[0] or 2 * (c + 1) > c_keys.shape[1]:
        return GROW_CONFIGS, np.int64(-1), np.int64(-1)
    c_column[c], c_guard[c], c_start[c], c_reset[c] = column, guard, c_starts[1, k], guard == 0
    c_keys[0, j], c_keys[1, j] = key, c
    c_counts[0] = c + 1
    return OK, c, c_starts[1, k]


@njit(cache=True)
def resolve_end(
    key,
    out,
    members,
    lo,
    hi,
    pair_accepting,
    pair_term,
    term_guard,
    ignored,
    c_column,
    c_guard,
    c_start,
    c_reset,
    c_keys,
    c_starts,
    c_counts,
    t_keys,
    t_offs,
    t_counts,
    t_flat,
    t_sizes,
    g,
    cols,
    keys,
    kern_slots,
    exp_bounds,
    exp_slots,
    sizes,
    work,
    item_set,
    sym_stamps,
    memo,
):
    """Enter the lexeme end `key` (`configuration << 32 | lexer state`, not in the table) into the boundary table
    (`t_*`): each terminal accepting in the lexer state (its pairs `members[lo:hi]`) leads to the configuration
    of the column scanning it gives (an ignored one also to the configuration it started in), under that
    terminal's guard. Returns a status; anything but `OK` leaves the table as it was (configurations and chart
    columns made on the way stay: they are interned)."""
    c, q = key >> 32, key & 0xFFFFFFFF
    column = c_column[c]
    expected_ids = cols[:, EXPECTED]
    n = 0
    for m in range(lo[q], hi[q]):
        pair = members[m]
        if not pair_accepting[pair]:
            continue
        t = pair_term[pair]
        for step in range(2):  # the column an ignored lexeme stays in, then the one scanning `t` leads to
            if step == 0:
                if not ignored[t]:
                    continue
                target = column
            else:
                status, target, _, _ = scan_memo(
                    column, t, g, cols, keys, kern_slots, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps, memo
                )
                if status != OK:
                    return status
                if target < 0:
                    continue
            status, c2, _ = config_of(
                target, term_guard[t], expected_ids, c_column, c_guard, c_start, c_reset, c_keys, c_starts, c_counts
            )
            if status != OK:
                return status
            out[n] = c2
            n += 1
    if 2 * (t_sizes[0] + 1) > t_keys.shape[0] or t_sizes[1] + n > t_flat.shape[0]:
        return GROW_TABLE
    i = find_slot(t_keys, key)
    t_keys[i], t_offs[i], t_counts[i] = key, t_sizes[1], n
    t_flat[t_sizes[1] : t_sizes[1] + n] = out[:n]
    t_sizes[0] += 1
    t_sizes[1] += n
    return OK


@njit(cache=True)
def explore_configs(
    c,
    i,
    stop,
    ignored_terms,
    term_guard,
    c_column,
    c_guard,
    c_start,
    c_reset,
    c_keys,
    c_starts,
    c_counts,
    g,
    cols,
    keys,
    kern_slots,
    exp_bounds,
    exp_slots,
    sizes,
    work,
    item_set,
    sym_stamps,
    memo,
):
    """Make the configurations that configurations c, c + 1, ... lead to by each terminal their column expects,
    then by each ignored terminal (`ignored_terms`), from the i-th of c's on, until `stop` configurations exist or
    none is left: breadth first, as a new configuration takes the next id. Returns (status, c, i), where to go on
    from: `OK` when done or at `stop`, else a status to recover from first (as `resolve_end`'s)."""
    expected_ids = cols[:, EXPECTED]
    while c < c_counts[0]:
        column = c_column[c]
        e = expected_ids[column]
        lo, n_expected = exp_bounds[e, 0], exp_bounds[e, 1] - exp_bounds[e, 0]
        while i < n_expected + ignored_terms.shape[0]:
            if c_counts[0] >= stop:
                return OK, c, i
            if i < n_expected:
                t = keys[lo + i]
                status, target, _, _ = scan_memo(
                    column, t, g, cols, keys, kern_slots, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps, memo
                )
            else:
                t = ignored_terms[i - n_expected]
                status, target = OK, column
            if status != OK:
                return status, c, i
            if target >= 0:
                status, _, _ = config_of(
                    target, term_guard[t], expected_ids, c_column, c_guard, c_start, c_reset, c_keys, c_starts, c_counts
                )
                if status != OK:
                    return status, c, i
            i += 1
        c += 1
        i = 0
    return OK, c, i


@njit(cache=True)
def _rehash(keys, offs, counts, new_keys, new_offs, new_counts):
    """Move every entry of one boundary table into a larger, empty one."""
    for i in range(keys.shape[0]):
        if keys[i] != -1:
            j = find_slot(new_keys, keys[i])
            new_keys[j], new_offs[j], new_counts[j] = keys[i], offs[i], counts[i]


class BoundaryTable:
    """(configuration, lexer state) -> the configurations a lexeme ending there leads to: keys
    `config << 32 | state` in an open-addressing table at most half full, values slices of `flat`; `sizes` holds
    the number of keys and of values. Filled by `resolve_end`."""

    INITIAL = 4096  # slots (a power of two) and values before the first growth

    def __init__(self) -> None:
        self.keys = np.full(self.INITIAL, -1, np.int64)
        self.offs = np.zeros(self.INITIAL, np.int64)
        self.counts = np.zeros(self.INITIAL, np.int32)
        self.flat = np.empty(self.INITIAL, np.int32)
        self.sizes = np.zeros(2, np.int64)

    def make_room(self, entries: int, values: int) -> None:
        """Grow so that `entries` more keys leave the table at most half full and `values` more values fit."""
        size, n_flat = int(self.sizes[0]), int(self.sizes[1])
        if 2 * (size + entries) > len(self.keys):
            cap = len(self.keys)
            while 2 * (size + entries) > cap:
                cap *= 2
            grown = (np.full(cap, -1, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int32))
            _rehash(self.keys, self.offs, self.counts, *grown)
            self.keys, self.offs, self.counts = grown
            replaced()
        if n_flat + values > len(self.flat):
            flat = np.empty(max(2 * len(self.flat), n_flat + values), np.int32)
            flat[:n_flat] = self.flat[:n_flat]
            self.flat = flat
            replaced()
