"""An Earley recognizer over terminal ids whose chart columns are interned values.

Earley handles every context-free grammar (ambiguous, left-recursive, with empty rules), which is what users
bring. A column is identified by its *kernel*, the items scanned into it, each `(rule, dot, origin column)`;
the rest of the column (predictions, completions) follows from the kernel and the columns it points to. So
equal kernels are one column, whatever text led there: parser states are small ints, shared by every particle
and every path that reaches them, and `scan(column, terminal)` is memoised per column. (A kernel that holds items
predicted in the column it was scanned from is made once per (column, terminal) without being hashed: such
kernels almost never recur, and a repeat would only be a second id for the same state.) Empty rules use the
Aycock-Horspool rule (predicting a nullable nonterminal also moves the dot over it), so completions only ever
look at earlier, finished columns.

Symbols are ints: terminals `0 .. n_terminals-1`, nonterminals after them. Rule 0 is the augmented
`S' -> start`; a column accepts when it holds `(0, 1, 0)`. Items are ints too, `origin << 24 | position`, a
position numbering every (rule, dot) so that moving the dot on is adding 1. Columns are built in numba (a new
one is the parser work at most lexeme ends a mask walk meets for the first time), and stored as int arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from genlab.automata.bundle import replaced
from genlab.automata.intern import find_list, find_slot, grown_pairs, list_hash
from genlab.errors import EmptyLanguageError, GrammarError, StateLimitError
from genlab.jit import njit

Item = int  # origin column << _SHIFT | position of (rule, dot)
_SHIFT = 24
_POSITION = (1 << _SHIFT) - 1


@dataclass(frozen=True)
class CFG:
    """A context-free grammar over int symbols; `rules[r] = (lhs, rhs)`; rule 0 is `S' -> start`."""

    n_terminals: int
    names: tuple[str, ...]  # every symbol's name, terminals first
    rules: tuple[tuple[int, tuple[int, ...]], ...]

    @classmethod
    def build(cls, terminals: list[str], rules: list[tuple[str, list[str]]], start: str) -> CFG:
        """From named rules (`lhs`, [symbol names]) with `terminals` the terminal names; unproductive rules are
        dropped, and a start symbol that derives no string raises `EmptyLanguageError`."""
        nonterminals = sorted({lhs for lhs, _ in rules} | {start})
        index = {name: i for i, name in enumerate(terminals)}
        for name in nonterminals:
            index.setdefault(name, len(index))
        terminal_set = set(terminals)
        names = tuple(terminals) + tuple(n for n in nonterminals if n not in terminal_set)
        symbolic = [(index[lhs], tuple(index[s] for s in rhs)) for lhs, rhs in rules]
        productive = _deriving(symbolic, lambda s: s < len(terminals))
        if index[start] not in productive:
            raise EmptyLanguageError(f"the grammar's start rule {start!r} derives no string (its language is empty)")
        kept = [(lhs, rhs) for lhs, rhs in symbolic if all(s < len(terminals) or s in productive for s in rhs)]
        return cls(len(terminals), names, ((-1, (index[start],)),) + tuple(kept))

    @functools.cached_property
    def nullable(self) -> frozenset[int]:
        """The nonterminals that derive the empty string."""
        return frozenset(_deriving(self.rules[1:], lambda s: False))

    def follow_terminals(self) -> dict[int, set[int]]:
        """For each terminal, the terminals that can come right after it in some sentential form (-1: the end)."""
        nullable, n_terms = self.nullable, self.n_terminals
        # first[X] holds the terminals each rule of X starts with directly and first[Y] for each Y in the rule's
        # prefix up to its first non-nullable symbol: a worklist carries each growth to the rules that read it
        first: dict[int, set[int]] = {s: set() for s in range(n_terms, len(self.names))}
        readers: dict[int, list[int]] = {}  # nonterminal -> lhs of the rules whose prefix holds it
        for lhs, rhs in self.rules[1:]:
            for s in rhs:
                if s < n_terms:
                    first[lhs].add(s)
                    break
                readers.setdefault(s, []).append(lhs)
                if s not in nullable:
                    break
        work = [x for x in first if first[x]]
        while work:
            x = work.pop()
            for lhs in readers.get(x, ()):
                if not first[x] <= first[lhs]:
                    first[lhs] |= first[x]
                    work.append(lhs)
        # follow[s] takes what can start the rest of each rule after s, and, where that rest is nullable, all of
        # follow[lhs] (`inherits`): the first part in one pass right to left, the second to a fixpoint
        follow: dict[int, set[int]] = {s: set() for s in range(len(self.names))}
        follow[self.rules[0][1][0]].add(-1)
        inherits: dict[int, set[int]] = {}
        for lhs, rhs in self.rules[1:]:
            rest: set[int] = set()
            rest_nullable = True
            for s in reversed(rhs):
                follow[s] |= rest
                if rest_nullable:
                    inherits.setdefault(lhs, set()).add(s)
                if s < self.n_terminals:
                    rest, rest_nullable = {s}, False
                elif s in nullable:
                    rest = first[s] | rest
                else:
                    rest, rest_nullable = set(first[s]), False
        work = list(inherits)
        while work:
            lhs = work.pop()
            f = follow[lhs]
            for s in inherits[lhs]:
                if not f <= follow[s]:
                    follow[s] |= f
                    if s in inherits:
                        work.append(s)
        return {t: follow[t] for t in range(self.n_terminals)}


def _deriving(rules, terminal_ok) -> set[int]:
    """The nonterminals with a rule whose symbols all are such nonterminals or terminals with `terminal_ok`
    (least fixpoint): with every terminal ok, those that derive some string; with none, those that derive "".
    Worklist form: each rule counts its symbols not yet known to derive, and fires when the count reaches 0."""
    waiting: dict[int, list[int]] = {}
    missing = []
    ready = []
    for r, (lhs, rhs) in enumerate(rules):
        need = 0
        for sym in set(rhs):
            if not terminal_ok(sym):
                need += 1
                waiting.setdefault(sym, []).append(r)
        missing.append(need)
        if need == 0:
            ready.append(lhs)
    found: set[int] = set()
    while ready:
        sym = ready.pop()
        if sym in found:
            continue
        found.add(sym)
        for r in waiting.get(sym, ()):
            missing[r] -= 1
            if missing[r] == 0:
                ready.append(rules[r][0])
    return found


# --- the chart, in numba ------------------------------------------------------------------------------------------
#
# Everything a column keeps lives in one growing int64 store, `keys`, as slices: its *waits* (items with the dot
# before a nonterminal, as `nonterminal << _KEY | item`, sorted: what a completion in a later column advances),
# its *scans* (items with the dot moved over a terminal, as `terminal << _KEY | item`, sorted: the kernel of the
# column each terminal leads to), and, if interned, its kernel; expected-terminal lists are slices there too. Per
# column, `cols` holds the slice bounds, its expected-set id and whether it accepts. The grammar is one int64
# array, `g` (header, then per position the symbol after the dot and the left-hand side, per symbol its rules'
# start positions and whether it is nullable); `memo` maps (column, terminal) to the column scanning gives, for
# Python and compiled callers alike (`scan_memo`). Few arguments keep each call cheap: numba checks every
# argument on every call.

_KEY = 44  # an item (origin < 2**20 columns, 24 bits of position) fits below bit 44 of a store key
_ITEM = (1 << _KEY) - 1
MAX_COLUMNS = 1 << (_KEY - _SHIFT)
_WAIT_LO, _WAIT_HI, _SCAN_LO, _SCAN_HI, _KERN_LO, _KERN_HI, EXPECTED, _ACCEPTS = range(8)  # `cols` fields
_N_COLS, _N_KEYS, _N_INTERNED, _N_EXP, _STAMP, _NEED, _N_NEXT = range(7)  # `sizes` fields
OK, _GROW_SCRATCH, _GROW_STORES, _TOO_MANY_ITEMS, _TOO_MANY_COLUMNS = range(5)  # statuses
_HEADER = 6  # g: n_terminals, accepting item, max_items, max_columns, positions, symbols


@njit(cache=True)
def _lower_bound(keys, lo, hi, key):
    """The first index in the sorted `keys[lo:hi]` whose key is >= `key`."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _add(item, items, n, set_keys, set_stamps, stamp):
    """Put `item` in the build's item set (open addressing; entries live under this build's stamp) and list;
    returns the list's new length, or -1 when the list is full."""
    mask = np.uint64(set_keys.shape[0] - 1)
    j = ((np.uint64(item) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & mask
    while set_stamps[j] == stamp:
        if set_keys[j] == item:
            return n
        j = (j + np.uint64(1)) & mask
    if n >= items.shape[0]:
        return -1
    set_stamps[j] = stamp
    set_keys[j] = item
    items[n] = item
    return n + 1


@njit(cache=True)
def _build(k, cid, reserve, g, cols, keys, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps):
    """Close the kernel `work[2, :k]` into column `cid` (predict, complete, move over nullable nonterminals) and
    store it, leaving `reserve` keys free after it; returns a status (nothing is stored unless all of it fits)."""
    items, tmp, kernel = work[0], work[1], work[2]
    set_keys, set_stamps = item_set[0], item_set[1]
    n_t, accepting_item, max_items, n_pos, n_sym = g[0], g[1], g[2], g[4], g[5]
    pos_sym = _HEADER
    pos_lhs = pos_sym + n_pos
    pred_lo = pos_lhs + n_pos
    pred_hi = pred_lo + n_sym
    nullable = pred_hi + n_sym
    pred_pos = nullable + n_sym
    stamp = sizes[_STAMP] + 1
    sizes[_STAMP] = stamp
    n = 0
    for i in range(k):
        n = _add(kernel[i], items, n, set_keys, set_stamps, stamp)
        if n < 0:
            return _GROW_SCRATCH
    cap = tmp.shape[0]
    n_scan = 0  # scan keys fill `tmp` from the front, wait keys from the back: an item gives at most one
    n_wait = 0
    accepts = False
    base = np.int64(cid) << _SHIFT
    i = 0
    while i < n:
        if n > max_items:
            return _TOO_MANY_ITEMS
        item = items[i]
        i += 1
        if item == accepting_item:
            accepts = True
        pos = item & _POSITION
        sym = g[pos_sym + pos]
        if sym < 0:
            o = item >> _SHIFT
            if o != cid:  # complete: advance the items of column o waiting for the rule's left-hand side
                lhs = g[pos_lhs + pos]
                hi = cols[o, _WAIT_HI]
                a = _lower_bound(keys, cols[o, _WAIT_LO], hi, lhs << _KEY)
                while a < hi and (keys[a] >> _KEY) == lhs:
                    n = _add((keys[a] & _ITEM) + 1, items, n, set_keys, set_stamps, stamp)
                    if n < 0:
                        return _GROW_SCRATCH
                    a += 1
            # an item predicted here that completes here derives nothing: the item that predicted it has already
            # moved past its nullable left-hand side
            continue
        if sym < n_t:
            tmp[n_scan] = (sym << _KEY) | (item + 1)
            n_scan += 1
            continue
        n_wait += 1
        tmp[cap - n_wait] = (sym << _KEY) | item
        if sym_stamps[sym] != stamp:
            sym_stamps[sym] = stamp
            for j in range(g[pred_lo + sym], g[pred_hi + sym]):
                n = _add(base | g[pred_pos + j], items, n, set_keys, set_stamps, stamp)
                if n < 0:
                    return _GROW_SCRATCH
        if g[nullable + sym]:
            n = _add(item + 1, items, n, set_keys, set_stamps, stamp)
            if n < 0:
                return _GROW_SCRATCH
    if n > max_items:
        return _TOO_MANY_ITEMS
    tmp[:n_scan].sort()
    tmp[cap - n_wait :].sort()
    # the terminals the column expects, interned as a list (in `items`, free now)
    m = 0
    for j in range(n_scan):
        t = tmp[j] >> _KEY
        if m == 0 or items[m - 1] != t:
            items[m] = t
            m += 1
    expected, slot = find_list(exp_slots, keys, exp_bounds[:, 0], exp_bounds[:, 1], items, m)
    new_exp = m if expected < 0 else 0
    need = n_wait + n_scan + new_exp + reserve
    exp_full = sizes[_N_EXP] >= exp_bounds.shape[0] or 2 * (sizes[_N_EXP] + 1) > exp_slots.shape[0]
    if cid >= cols.shape[0] or sizes[_N_KEYS] + need > keys.shape[0] or (new_exp > 0 and exp_full):
        sizes[_NEED] = need
        return _GROW_STORES
    w = sizes[_N_KEYS]
    if expected < 0:
        expected = sizes[_N_EXP]
        keys[w : w + m] = items[:m]
        exp_bounds[expected, 0], exp_bounds[expected, 1] = w, w + m
        exp_slots[slot] = expected + 1
        sizes[_N_EXP] += 1
        w += m
    keys[w : w + n_wait] = tmp[cap - n_wait :]
    cols[cid, _WAIT_LO], cols[cid, _WAIT_HI] = w, w + n_wait
    w += n_wait
    keys[w : w + n_scan] = tmp[:n_scan]
    cols[cid, _SCAN_LO], cols[cid, _SCAN_HI] = w, w + n_scan
    w += n_scan
    cols[cid, _KERN_LO], cols[cid, _KERN_HI] = -1, -1
    cols[cid, EXPECTED] = expected
    cols[cid, _ACCEPTS] = accepts
    sizes[_N_KEYS] = w
    sizes[_N_COLS] = cid + 1
    return OK


@njit(cache=True)
def _scan(column, terminal, g, cols, keys, kern_slots, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps):
    """The column after `terminal` is read at `column`: (status, its id or -1 if the column does not expect it,
    and for a column made by this call its expected-set id and whether it accepts, else -1 and False). A kernel
    without items predicted in `column` is interned (`kern_slots`), so equal kernels are one column; one with
    such items is made once per (column, terminal) (the caller's memo) without being hashed: no other (column,
    terminal) gives it."""
    kernel = work[2]
    hi = cols[column, _SCAN_HI]
    a = _lower_bound(keys, cols[column, _SCAN_LO], hi, np.int64(terminal) << _KEY)
    k = 0
    fresh = False  # holds items predicted in `column`
    while a + k < hi and (keys[a + k] >> _KEY) == terminal:
        if k == kernel.shape[0]:
            return _GROW_SCRATCH, -1, -1, False
        item = keys[a + k] & _ITEM
        kernel[k] = item
        if (item >> _SHIFT) == column:
            fresh = True
        k += 1
    if k == 0:
        return OK, -1, -1, False
    slot = np.uint64(0)
    if not fresh:
        found, slot = find_list(kern_slots, keys, cols[:, _KERN_LO], cols[:, _KERN_HI], kernel, k)
        if found >= 0:
            return OK, found, -1, False
        if 2 * (sizes[_N_INTERNED] + 1) > kern_slots.shape[0]:
            sizes[_NEED] = 0
            return _GROW_STORES, -1, -1, False
    cid = sizes[_N_COLS]
    if cid >= g[3]:
        return _TOO_MANY_COLUMNS, -1, -1, False
    status = _build(k, cid, 0 if fresh else k, g, cols, keys, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps)
    if status != OK:
        return status, -1, -1, False
    if not fresh:
        lo = sizes[_N_KEYS]
        keys[lo : lo + k] = kernel[:k]
        cols[cid, _KERN_LO], cols[cid, _KERN_HI] = lo, lo + k
        kern_slots[slot] = cid + 1
        sizes[_N_KEYS] += k
        sizes[_N_INTERNED] += 1
    return OK, cid, cols[cid, EXPECTED], cols[cid, _ACCEPTS] != 0


@njit(cache=True)
def scan_memo(
    column, terminal, g, cols, keys, kern_slots, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps, memo
):
    """`_scan`, memoised per (column, terminal) in `memo`: (status, the column scanning gives or -1, and for a
    column made by this call its expected-set id and whether it accepts, else -1 and False). The parser's compiled
    boundary resolution calls it too, so a column is made once whichever side asks first."""
    key = np.int64(column) * g[0] + terminal
    j = find_slot(memo[0], key)
    if memo[0, j] == key:
        return OK, memo[1, j], np.int64(-1), False
    if 2 * (sizes[_N_NEXT] + 1) > memo.shape[1]:
        sizes[_NEED] = 0
        return _GROW_STORES, np.int64(-1), np.int64(-1), False
    status, nxt, expected, accepts = _scan(
        column, terminal, g, cols, keys, kern_slots, exp_bounds, exp_slots, sizes, work, item_set, sym_stamps
    )
    if status != OK:
        return status, np.int64(-1), np.int64(-1), False
    memo[0, j], memo[1, j] = key, nxt
    sizes[_N_NEXT] += 1
    return OK, nxt, expected, accepts


@njit(cache=True)
def _rehash_lists(slots, members, lo, hi, n):
    """Put lists `0 .. n-1` (`members[lo[e]:hi[e]]`; those with `lo[e] < 0` are not interned) into the empty
    table `slots` (entry + 1)."""
    mask = np.uint64(slots.shape[0] - 1)
    for e in range(n):
        if lo[e] < 0:
            continue
        j = list_hash(members, lo[e], hi[e]) & mask
        while slots[j] != 0:
            j = (j + np.uint64(1)) & mask
        slots[j] = e + 1


class Chart:
    """All columns met so far, interned by kernel; `scan` is the only way to make new ones (in numba)."""

    # first sizes of the stores and scratch, doubled as they fill (slot tables: powers of two); a JSON text's
    # walk from a fresh compile meets 250-400 columns, a Spider query's 800-1,300 (growing in a mask costs 10-30 µs)
    INITIAL_COLUMNS = 512
    INITIAL_KEYS = 16384
    INITIAL_SLOTS = 2048
    INITIAL_ITEMS = 256

    def __init__(self, cfg: CFG, *, max_columns: int = 1_000_000, max_items: int = 100_000) -> None:
        if max_columns > MAX_COLUMNS:
            raise GrammarError(f"max_columns can be at most {MAX_COLUMNS} (an item keeps its origin column in 20 bits)")
        self.cfg = cfg
        self.max_columns = max_columns
        self.max_items = max_items
        # positions: rule r's dot d is first[r] + d
        first: list[int] = []
        pos_sym: list[int] = []
        pos_lhs: list[int] = []
        by_lhs: dict[int, list[int]] = {}
        for lhs, rhs in cfg.rules:
            by_lhs.setdefault(lhs, []).append(len(pos_sym))
            first.append(len(pos_sym))
            pos_sym.extend(rhs)
            pos_sym.append(-1)
            pos_lhs.extend([lhs] * (len(rhs) + 1))
        if len(pos_sym) > _POSITION:
            raise StateLimitError(f"the grammar has more than {_POSITION} rule positions")
        n_symbols = len(cfg.names)
        pred_lo: list[int] = []
        pred_hi: list[int] = []
        pred_pos: list[int] = []
        for sym in range(n_symbols):
            pred_lo.append(len(pred_pos))
            pred_pos.extend(by_lhs.get(sym, ()))
            pred_hi.append(len(pred_pos))
        nullable = [int(sym in cfg.nullable) for sym in range(n_symbols)]
        self._g = np.array(
            [cfg.n_terminals, first[0] + 1, max_items, max_columns, len(pos_sym), n_symbols]
            + pos_sym
            + pos_lhs
            + pred_lo
            + pred_hi
            + nullable
            + pred_pos,
            np.int64,
        )
        self._cols = np.zeros((self.INITIAL_COLUMNS, 8), np.int64)
        self._keys = np.empty(self.INITIAL_KEYS, np.int64)
        self._kern_slots = np.zeros(self.INITIAL_SLOTS, np.int64)
        self._exp_bounds = np.zeros((self.INITIAL_COLUMNS, 2), np.int64)
        self._exp_slots = np.zeros(self.INITIAL_SLOTS, np.int64)
        self._sizes = np.zeros(7, np.int64)
        self._memo = np.full((2, self.INITIAL_SLOTS), -1, np.int64)
        self._sym_stamps = np.zeros(n_symbols, np.int64)
        self._scratch(self.INITIAL_ITEMS)
        self._next: dict[int, int] = {}  # a front cache of `_memo` (column * n_terminals + terminal -> column)
        self._column_expected: list[int] = []
        self._column_accepts: list[bool] = []
        while True:
            self._work[2, 0] = first[0]  # S' -> . start, in column 0
            status = _build(
                1,
                0,
                0,
                self._g,
                self._cols,
                self._keys,
                self._exp_bounds,
                self._exp_slots,
                self._sizes,
                self._work,
                self._item_set,
                self._sym_stamps,
            )
            if status == OK:
                break
            self.recover(status)
        self.sync()

    def scan(self, column: int, terminal: int) -> int:
        """The column after `terminal` is read at `column`, or -1 if the column does not expect it."""
        key = column * self.cfg.n_terminals + terminal
        nxt = self._next.get(key)
        if nxt is None:
            while True:
                status, nxt, expected, accepts = scan_memo(
                    column,
                    terminal,
                    self._g,
                    self._cols,
                    self._keys,
                    self._kern_slots,
                    self._exp_bounds,
                    self._exp_slots,
                    self._sizes,
                    self._work,
                    self._item_set,
                    self._sym_stamps,
                    self._memo,
                )
                if status == OK:
                    break
                self.recover(status)
            have = len(self._column_expected)
            if nxt == have and expected >= 0:  # the one column made: mirrored without reading the stores
                self._column_expected.append(expected)
                self._column_accepts.append(accepts)
            elif nxt >= have:
                self.sync()
            self._next[key] = nxt
        return nxt

    @property
    def arrays(self) -> tuple:
        """The arguments of `scan_memo` after (column, terminal): the grammar, stores, scratch and memo."""
        return (
            self._g,
            self._cols,
            self._keys,
            self._kern_slots,
            self._exp_bounds,
            self._exp_slots,
            self._sizes,
            self._work,
            self._item_set,
            self._sym_stamps,
            self._memo,
        )

    @property
    def n_columns(self) -> int:
        return int(self._sizes[_N_COLS])

    @property
    def expected_ids(self) -> np.ndarray:
        """Per column, its expected-set id (a view of the store, valid for the columns made so far)."""
        return self._cols[:, EXPECTED]

    def sync(self) -> None:
        """Mirror the expected-set ids and acceptance of columns made since the last call (also those made by
        compiled callers of `scan_memo`) in the Python lists the parser reads per call."""
        n = int(self._sizes[_N_COLS])
        if n > len(self._column_expected):
            new = self._cols[len(self._column_expected) : n]
            self._column_expected.extend(new[:, EXPECTED].tolist())
            self._column_accepts.extend((new[:, _ACCEPTS] != 0).tolist())

    def expected(self, column: int) -> frozenset[int]:
        """The terminals `column` can scan."""
        return frozenset(self.expected_array(column).tolist())

    def expected_array(self, column: int) -> np.ndarray:
        """The terminals `column` can scan, sorted, as a view of the store (valid until the next `scan`)."""
        lo, hi = self._exp_bounds[self.expected_id(column)].tolist()
        return self._keys[lo:hi]

    def expected_id(self, column: int) -> int:
        """A small id shared by every column that expects the same terminals (also for a column compiled code
        made since the last `sync`)."""
        mirror = self._column_expected
        return mirror[column] if column < len(mirror) else int(self._cols[column, EXPECTED])

    def accepts(self, column: int) -> bool:
        return self._column_accepts[column]

    def _scratch(self, size: int) -> None:
        """Build scratch for `size` items: their list, the scan and wait keys, a kernel; the item set twice that."""
        self._work = np.empty((3, size), np.int64)
        self._item_set = np.zeros((2, 2 * size), np.int64)
        replaced()

    def recover(self, status: int) -> None:
        """Make room after a build that did not fit (it is then run again), or raise at a limit."""
        if status == _TOO_MANY_ITEMS:
            raise StateLimitError(
                f"a grammar parse state holds more than {self.max_items} Earley items; raise max_items, "
                "or the grammar is too ambiguous (e.g. deeply nested ambiguous rules)"
            )
        if status == _TOO_MANY_COLUMNS:
            raise StateLimitError(
                f"the grammar parser has met more than {self.max_columns} distinct parse states; raise "
                "max_columns, or the grammar is too ambiguous for the text"
            )
        if status == _GROW_SCRATCH:
            self._scratch(2 * self._work.shape[1])
            return
        sizes = self._sizes
        n_cols, n_exp = int(sizes[_N_COLS]), int(sizes[_N_EXP])
        if n_cols >= len(self._cols):
            self._cols = _grown(self._cols, 2 * len(self._cols))
        need = int(sizes[_N_KEYS] + sizes[_NEED])
        if need > len(self._keys):
            self._keys = _grown(self._keys, max(2 * len(self._keys), need))
        if n_exp >= len(self._exp_bounds):
            self._exp_bounds = _grown(self._exp_bounds, 2 * len(self._exp_bounds))
        if 2 * (n_exp + 1) > len(self._exp_slots):
            self._exp_slots = np.zeros(2 * len(self._exp_slots), np.int64)
            _rehash_lists(self._exp_slots, self._keys, self._exp_bounds[:, 0], self._exp_bounds[:, 1], n_exp)
        if 2 * (sizes[_N_NEXT] + 1) > self._memo.shape[1]:
            self._memo = grown_pairs(self._memo)
        if 2 * (sizes[_N_INTERNED] + 1) > len(self._kern_slots):
            self._kern_slots = np.zeros(2 * len(self._kern_slots), np.int64)
            _rehash_lists(self._kern_slots, self._keys, self._cols[:, _KERN_LO], self._cols[:, _KERN_HI], n_cols)
        replaced()


def _grown(store: np.ndarray, size: int) -> np.ndarray:
    """`store` copied into a larger array of `size` rows."""
    out = np.zeros((size,) + store.shape[1:], store.dtype)
    out[: len(store)] = store
    return out
