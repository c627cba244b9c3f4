"""Byte NFAs with `re`'s zero-width anchors, and the subset construction that turns them into byte DFAs.

A `ByteNFA` has three kinds of moves: epsilon, byte range, and anchor (an epsilon move allowed only where a
position condition holds). Anchors are exact, not approximated: each DFA state is a set of *threads*, an NFA
state plus what the thread still requires of the text ahead:

- `^`, `\\A` (start of text) and `(?m)^` (start or after "\\n") are decided when the closure is taken, since the
  construction knows whether it is at the start and whether the last byte was "\\n";
- `\\Z` (end), `(?m)$` (end, or "\\n" next) and `$` (end, or a final "\\n" next) become a requirement carried by
  the thread: the next byte must be "\\n", or the text must end, or both in turn. A thread that cannot meet its
  requirement dies; one at the final state accepts only when it requires nothing more than the end.

Threads are ints `nfa_state << 2 | need`. DFA states are keyed by the closed thread set, keeping only threads
that can still read a byte or accept, so equal futures share a state before minimisation even starts.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import numpy as np

from genlab.automata.intern import find_list, list_hash
from genlab.errors import StateLimitError
from genlab.jit import njit

# anchor kinds
AT_START, AT_LINE_START, AT_END, AT_LINE_END, AT_END_OR_FINAL_NEWLINE = range(5)
# what a thread requires of the text ahead
FREE, NEWLINE_NEXT, FINAL_NEWLINE_NEXT, END_NEXT = range(4)
# where a closure is taken
_AT_TEXT_START, _AFTER_NEWLINE, _ELSEWHERE = range(3)
_NL = 0x0A

# _MEET[a][b]: both requirements at once (None: impossible)
_MEET = (
    (FREE, NEWLINE_NEXT, FINAL_NEWLINE_NEXT, END_NEXT),
    (NEWLINE_NEXT, NEWLINE_NEXT, FINAL_NEWLINE_NEXT, None),
    (FINAL_NEWLINE_NEXT, FINAL_NEWLINE_NEXT, FINAL_NEWLINE_NEXT, None),
    (END_NEXT, None, None, END_NEXT),
)
# requirements an anchor adds (alternatives)
_ANCHOR_NEEDS = {
    AT_END: (END_NEXT,),
    AT_LINE_END: (END_NEXT, NEWLINE_NEXT),
    AT_END_OR_FINAL_NEWLINE: (END_NEXT, FINAL_NEWLINE_NEXT),
}


def rows_table(rows: list[list[tuple[int, int, int]]]) -> np.ndarray:
    """A DFA table (int32 [n, 256], -1: no move) from each state's `(lo, hi, target)` byte ranges."""
    table = np.full((len(rows), 256), -1, np.int32)
    for s, row in enumerate(rows):
        for lo, hi, t in row:
            table[s, lo : hi + 1] = t
    return table


def useful(nfa: ByteNFA, q: int, need: int) -> bool:
    """Whether a thread at NFA state `q` requiring `need` can still read a byte or accept (others are dropped)."""
    if q == nfa.final and need in (FREE, END_NEXT):
        return True
    return bool(nfa.edges[q]) and need != END_NEXT


def anchor_needs(kind: int, need: int, where: int) -> tuple[int, ...]:
    """The requirements a thread needing `need` may have past an anchor of `kind`, taken where the closure is
    (`where`): none where the anchor fails, one per way it can hold."""
    if kind == AT_START:
        return (need,) if where == _AT_TEXT_START else ()
    if kind == AT_LINE_START:
        return (need,) if where != _ELSEWHERE else ()
    return tuple(m for add in _ANCHOR_NEEDS[kind] if (m := _MEET[need][add]) is not None)


@dataclass
class ByteNFA:
    """Thompson-style NFA over bytes: per state, epsilon targets, `(anchor kind, target)` and `(lo, hi, target)`;
    and `(assertion kind, argument, target)` moves with the lookaround bodies they name (`assertions.py`)."""

    eps: list[list[int]] = field(default_factory=list)
    anchors: list[list[tuple[int, int]]] = field(default_factory=list)
    edges: list[list[tuple[int, int, int]]] = field(default_factory=list)
    asserts: list[list[tuple[int, int, int]]] = field(default_factory=list)
    ahead: list = field(default_factory=list)  # lookahead bodies, `assertions.Body`
    behind: list = field(default_factory=list)  # lookbehind bodies
    priority: dict[int, int] = field(default_factory=dict)  # a choice inside an atomic group -> the group's exit
    start: int = 0
    final: int = 0

    def add_states(self, count: int = 1) -> int:
        """Add `count` states without moves; returns the first one's id."""
        first = len(self.eps)
        for _ in range(count):
            self.eps.append([])
            self.anchors.append([])
            self.edges.append([])
            self.asserts.append([])
        return first

    @property
    def n_states(self) -> int:
        return len(self.eps)


def determinize(nfa: ByteNFA, max_states: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Subset construction: (transitions int32 [n, 256] with -1 for no move, accepting bool [n]); state 0 is the start.

    Raises `StateLimitError` (naming `source`) as soon as more than `max_states` DFA states exist. An NFA
    without anchors (most patterns) is determinised in numba, the rest here in Python (threads carry anchors'
    requirements). NFAs with assertion moves go to `assertions.determinize_assertions` instead.
    """
    if any(nfa.asserts) or nfa.priority:
        raise ValueError("an NFA with assertion moves: use assertions.determinize_assertions")
    if not any(nfa.anchors):
        found = _plain_subsets(nfa, max_states)
        if found is None:
            raise StateLimitError(
                f"{source}: the DFA needs more than max_states={max_states} states; "
                "raise max_states or simplify the pattern (large counted repeats multiply states)"
            )
        if found is not _GENERAL:
            return found
    return _Subsets(nfa, max_states, source).run()


_GENERAL = object()  # what `_plain_subsets` leaves to the general construction
_DENSE_LIMIT = 1 << 24  # entries of `_subsets`'s per-state table of targets (64 MB)


def _plain_subsets(nfa: ByteNFA, max_states: int):
    """The subset construction of an NFA without anchors, over byte classes (runs of bytes no edge tells apart):
    (table, accepting), None past `max_states`, or `_GENERAL` for an NFA state with two targets on one byte or
    a table of targets per (state, class) over `_DENSE_LIMIT`."""
    n = nfa.n_states
    chain = itertools.chain.from_iterable
    eps_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, nfa.eps), np.int64, n), out=eps_ptr[1:])
    eps_to = np.fromiter(chain(nfa.eps), np.int32, int(eps_ptr[-1]))
    edge_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, nfa.edges), np.int64, n), out=edge_ptr[1:])
    flat = np.fromiter(chain(chain(nfa.edges)), np.int32, 3 * int(edge_ptr[-1])).reshape(-1, 3)
    cuts = np.zeros(257, np.bool_)
    cuts[0] = True
    cuts[flat[:, 0]] = True
    cuts[flat[:, 1] + 1] = True
    byte_class = np.cumsum(cuts[:256]) - 1
    if n * (int(byte_class[-1]) + 1) > _DENSE_LIMIT:
        return _GENERAL
    rows, accepting, n_dfa = _subsets(
        eps_ptr,
        eps_to,
        edge_ptr,
        byte_class[flat[:, 0]].astype(np.int32),
        byte_class[flat[:, 1]].astype(np.int32),
        flat[:, 2].copy(),
        int(byte_class[-1]) + 1,
        nfa.start,
        nfa.final,
        max_states,
    )
    if n_dfa == -2:
        return _GENERAL
    if n_dfa < 0:
        return None
    return np.ascontiguousarray(rows[:n_dfa][:, byte_class]), accepting[:n_dfa].copy()


@njit(cache=True)
def _closure_of(q, eps_ptr, eps_to, keep, mark, stamp, stack, out, n_out):
    """Append to `out[n_out:]` the states reachable from `q` by epsilon moves that can read or accept, each once
    (`mark[r] == stamp` once added or passed); returns the new length. `stack` and `out` hold every state."""
    stack[0] = q
    top = 1
    mark[q] = stamp
    while top:
        top -= 1
        r = stack[top]
        if keep[r]:
            out[n_out] = r
            n_out += 1
        for k in range(eps_ptr[r], eps_ptr[r + 1]):
            t = eps_to[k]
            if mark[t] != stamp:
                mark[t] = stamp
                stack[top] = t
                top += 1
    return n_out


@njit(cache=True)
def _sort_small(a, size):
    """Sort `a[:size]` in place: insertion sort, as sets are mostly a few states (numba's sort costs more)."""
    if size > 32:
        a[:size].sort()
        return
    for i in range(1, size):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(cache=True)
def _subsets(eps_ptr, eps_to, edge_ptr, edge_lo, edge_hi, edge_to, n_classes, start, final, max_states):
    """DFA states are sorted sets of NFA states (closed under epsilon, kept if they can read or accept), interned
    in an open-addressing table; rows are filled breadth first. Returns (rows, accepting, count), count -1 past
    `max_states` and -2 when an NFA state has two targets on one byte class."""
    n = eps_ptr.shape[0] - 1
    keep = np.zeros(n, np.bool_)
    dense = np.full((n, n_classes), -1, np.int32)
    for q in range(n):
        keep[q] = q == final or edge_ptr[q + 1] > edge_ptr[q]
        for e in range(edge_ptr[q], edge_ptr[q + 1]):
            for c in range(edge_lo[e], edge_hi[e] + 1):
                if dense[q, c] >= 0 and dense[q, c] != edge_to[e]:
                    return np.zeros((0, n_classes), np.int32), np.zeros(0, np.bool_), -2
                dense[q, c] = edge_to[e]
    mark = np.zeros(n, np.int64)
    stamp = 0
    scratch = np.empty(n, np.int32)
    stack = np.empty(n, np.int32)
    members = np.empty(max(1024, 4 * n), np.int32)
    set_lo = np.empty(64, np.int64)
    set_hi = np.empty(64, np.int64)
    rows = np.full((64, n_classes), -1, np.int32)
    accepting = np.zeros(64, np.bool_)
    cap = 256
    slots = np.zeros(cap, np.int64)  # DFA state + 1, 0: empty
    stamp += 1
    size = _closure_of(start, eps_ptr, eps_to, keep, mark, stamp, stack, scratch, 0)
    _sort_small(scratch, size)
    members[:size] = scratch[:size]
    n_members = size
    set_lo[0], set_hi[0] = 0, size
    slots[list_hash(members, 0, size) & np.uint64(cap - 1)] = 1
    count = 1
    d = 0
    while d < count:
        for c in range(n_classes):
            if c > 0:  # a class every member moves on like the one before goes where it went
                same = True
                for k in range(set_lo[d], set_hi[d]):
                    if dense[members[k], c] != dense[members[k], c - 1]:
                        same = False
                        break
                if same:
                    rows[d, c] = rows[d, c - 1]
                    continue
            stamp += 1
            size = 0
            for k in range(set_lo[d], set_hi[d]):
                t = dense[members[k], c]
                if t >= 0 and mark[t] != stamp:
                    size = _closure_of(t, eps_ptr, eps_to, keep, mark, stamp, stack, scratch, size)
            if size == 0:
                continue
            _sort_small(scratch, size)
            found, i = find_list(slots, members, set_lo, set_hi, scratch, size)
            if found < 0:
                if count >= max_states:
                    return rows, accepting, -1
                if n_members + size > members.shape[0]:
                    grown = np.empty(2 * (n_members + size), np.int32)
                    grown[:n_members] = members[:n_members]
                    members = grown
                members[n_members : n_members + size] = scratch[:size]
                if count == set_lo.shape[0]:
                    set_lo = np.concatenate((set_lo, np.empty(count, np.int64)))
                    set_hi = np.concatenate((set_hi, np.empty(count, np.int64)))
                    rows = np.concatenate((rows, np.full((count, n_classes), -1, np.int32)))
                    accepting = np.concatenate((accepting, np.zeros(count, np.bool_)))
                set_lo[count], set_hi[count] = n_members, n_members + size
                n_members += size
                found = count
                slots[i] = count + 1
                count += 1
                if 2 * count > cap:  # keep the table at most half full: rebuild it twice as large
                    cap *= 2
                    slots = np.zeros(cap, np.int64)
                    for o in range(count):
                        j = list_hash(members, set_lo[o], set_hi[o]) & np.uint64(cap - 1)
                        while slots[j] != 0:
                            j = (j + np.uint64(1)) & np.uint64(cap - 1)
                        slots[j] = o + 1
            rows[d, c] = found
        d += 1
    for o in range(count):
        for k in range(set_lo[o], set_hi[o]):
            if members[k] == final:
                accepting[o] = True
    return rows, accepting, count


class StateNumbers:
    """DFA states numbered in the order they are first met (`keys[i]` is state i's key); past `max_states` a
    `StateLimitError` naming `source` and what multiplies states (`cause`)."""

    def __init__(self, max_states: int, source: str, cause: str):
        self.keys: list = []
        self._ids: dict = {}
        self.max_states = max_states
        self.source = source
        self.cause = cause

    def __call__(self, key) -> int:
        found = self._ids.get(key)
        if found is None:
            if len(self.keys) >= self.max_states:
                raise StateLimitError(
                    f"{self.source}: the DFA needs more than max_states={self.max_states} states; "
                    f"raise max_states or simplify the pattern ({self.cause} multiply states)"
                )
            found = self._ids[key] = len(self.keys)
            self.keys.append(key)
        return found


class _Subsets:
    def __init__(self, nfa: ByteNFA, max_states: int, source: str):
        self.nfa = nfa
        self.line_starts = any(k == AT_LINE_START for a in nfa.anchors for k, _ in a)
        self.closures: dict[tuple[int, int], frozenset[int]] = {}
        self._state = StateNumbers(max_states, source, "large counted repeats")
        self.sets: list[frozenset[int]] = self._state.keys

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        self._state(self._closure({self.nfa.start << 2}, _AT_TEXT_START))
        rows: list[list[tuple[int, int, int]]] = []
        successors: dict[tuple[frozenset[int], int], int] = {}
        while len(rows) < len(self.sets):
            row = []
            for lo, hi, targets in self._moves(self.sets[len(rows)]):
                where = _AFTER_NEWLINE if lo == _NL and self.line_starts else _ELSEWHERE
                key = (targets, where)
                if key not in successors:
                    successors[key] = self._state(self._closure(targets, where))
                row.append((lo, hi, successors[key]))
            rows.append(row)
        table = rows_table(rows)
        final = self.nfa.final << 2
        accepting = np.array([final | FREE in s or final | END_NEXT in s for s in self.sets], np.bool_)
        return table, accepting

    def _moves(self, threads: frozenset[int]) -> list[tuple[int, int, frozenset[int]]]:
        """The byte ranges out of a thread set, split so each range has one target set: `(lo, hi, targets)`."""
        moves: list[tuple[int, int, int]] = []
        for th in threads:
            q, need = th >> 2, th & 3
            if need == FREE:
                moves.extend((lo, hi, t << 2) for lo, hi, t in self.nfa.edges[q])
            elif need != END_NEXT:  # only "\n" may come next; after a final one, only the end
                after = END_NEXT if need == FINAL_NEWLINE_NEXT else FREE
                moves.extend((_NL, _NL, t << 2 | after) for lo, hi, t in self.nfa.edges[q] if lo <= _NL <= hi)
        if not moves:
            return []
        cut_set = {lo for lo, _, _ in moves} | {hi + 1 for _, hi, _ in moves}
        if self.line_starts:
            cut_set |= {_NL, _NL + 1}
        cuts = sorted(cut_set)
        buckets: list[list[int]] = [[] for _ in cuts]
        for lo, hi, t in moves:
            for k in range(bisect.bisect_left(cuts, lo), bisect.bisect_left(cuts, hi + 1)):
                buckets[k].append(t)
        out: list[tuple[int, int, frozenset[int]]] = []
        for k, bucket in enumerate(buckets[:-1]):
            if bucket:
                targets = frozenset(bucket)
                lo, hi = cuts[k], cuts[k + 1] - 1
                newline_cut = self.line_starts and lo in (_NL, _NL + 1)  # "\n" keeps its own range
                if out and out[-1][2] == targets and out[-1][1] == lo - 1 and not newline_cut:
                    out[-1] = (out[-1][0], hi, targets)
                else:
                    out.append((lo, hi, targets))
        return out

    def _closure(self, threads, where: int) -> frozenset[int]:
        out: set[int] = set()
        for th in threads:
            key = (th, where)
            if key not in self.closures:
                self.closures[key] = self._closure1(th, where)
            out |= self.closures[key]
        return frozenset(out)

    def _closure1(self, thread: int, where: int) -> frozenset[int]:
        """Threads reachable from `thread` by epsilon and anchor moves, kept only if they can read or accept."""
        nfa = self.nfa
        seen = {thread}
        stack = [thread]
        while stack:
            th = stack.pop()
            q, need = th >> 2, th & 3
            nxt = [t << 2 | need for t in nfa.eps[q]]
            for kind, t in nfa.anchors[q]:
                nxt.extend(t << 2 | m for m in anchor_needs(kind, need, where))
            for x in nxt:
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        return frozenset(th for th in seen if useful(nfa, th >> 2, th & 3))
