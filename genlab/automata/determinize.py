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
from dataclasses import dataclass, field

import numpy as np

from genlab.errors import StateLimitError

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


@dataclass
class ByteNFA:
    """Thompson-style NFA over bytes: per state, epsilon targets, `(anchor kind, target)` and `(lo, hi, target)`."""

    eps: list[list[int]] = field(default_factory=list)
    anchors: list[list[tuple[int, int]]] = field(default_factory=list)
    edges: list[list[tuple[int, int, int]]] = field(default_factory=list)
    start: int = 0
    final: int = 0

    def add_state(self) -> int:
        self.eps.append([])
        self.anchors.append([])
        self.edges.append([])
        return len(self.eps) - 1

    @property
    def n_states(self) -> int:
        return len(self.eps)


def determinize(nfa: ByteNFA, max_states: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Subset construction: (transitions int32 [n, 256] with -1 for no move, accepting bool [n]); state 0 is the start.

    Raises `StateLimitError` (naming `source`) as soon as more than `max_states` DFA states exist.
    """
    return _Subsets(nfa, max_states, source).run()


class _Subsets:
    def __init__(self, nfa: ByteNFA, max_states: int, source: str):
        self.nfa = nfa
        self.max_states = max_states
        self.source = source
        self.line_starts = any(k == AT_LINE_START for a in nfa.anchors for k, _ in a)
        self.closures: dict[tuple[int, int], frozenset[int]] = {}
        self.ids: dict[frozenset[int], int] = {}
        self.sets: list[frozenset[int]] = []

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
        table = np.full((len(rows), 256), -1, np.int32)
        for s, row in enumerate(rows):
            for lo, hi, t in row:
                table[s, lo : hi + 1] = t
        final = self.nfa.final << 2
        accepting = np.array([final | FREE in s or final | END_NEXT in s for s in self.sets], np.bool_)
        return table, accepting

    def _state(self, threads: frozenset[int]) -> int:
        if threads not in self.ids:
            if len(self.sets) >= self.max_states:
                raise StateLimitError(
                    f"{self.source}: the DFA needs more than max_states={self.max_states} states; "
                    "raise max_states or simplify the pattern (large counted repeats multiply states)"
                )
            self.ids[threads] = len(self.sets)
            self.sets.append(threads)
        return self.ids[threads]

    def _moves(self, threads: frozenset[int]) -> list[tuple[int, int, frozenset[int]]]:
        """The byte ranges out of a thread set, split so each range has one target set: `(lo, hi, targets)`."""
        moves = []
        for th in threads:
            q, need = th >> 2, th & 3
            if need == FREE:
                moves.extend((lo, hi, t << 2) for lo, hi, t in self.nfa.edges[q])
            elif need != END_NEXT:  # only "\n" may come next; after a final one, only the end
                after = END_NEXT if need == FINAL_NEWLINE_NEXT else FREE
                moves.extend((_NL, _NL, t << 2 | after) for lo, hi, t in self.nfa.edges[q] if lo <= _NL <= hi)
        if not moves:
            return []
        cuts = {lo for lo, _, _ in moves} | {hi + 1 for _, hi, _ in moves}
        if self.line_starts:
            cuts |= {_NL, _NL + 1}
        cuts = sorted(cuts)
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
                if kind == AT_START:
                    if where == _AT_TEXT_START:
                        nxt.append(t << 2 | need)
                elif kind == AT_LINE_START:
                    if where != _ELSEWHERE:
                        nxt.append(t << 2 | need)
                else:
                    nxt.extend(t << 2 | m for add in _ANCHOR_NEEDS[kind] if (m := _MEET[need][add]) is not None)
            for x in nxt:
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        final = nfa.final
        return frozenset(
            th
            for th in seen
            if (th >> 2 == final and th & 3 in (FREE, END_NEXT)) or (nfa.edges[th >> 2] and th & 3 != END_NEXT)
        )
