"""Lookarounds, word boundaries and conditionals, exact: the subset construction with threads that carry them.

The strings a regex with lookarounds fullmatches form a regular language when the bodies are regular; the
construction here builds its DFA directly, extending `determinize.py`'s threads (NFA state + anchor requirement):

- A lookahead `(?=A)` at position i holds when the rest of the text is in L(A)Σ*. The minimal DFA D of
  `(?:A)[\\s\\S]*` runs beside the thread from there on as an *obligation* the thread carries (D's state): the
  thread dies when D does, sheds the obligation once D reaches a *universal* state (one from which every text is
  accepted), and may accept at the end only where D accepts. `(?!A)` is the mirror: the thread dies at a
  universal state, sheds the obligation when D dies, and may not end where D accepts. A thread holds any number
  of obligations at once (all must hold); D's states are finite, so thread sets stay finite.
- A lookbehind `(?<=B)` at position i holds when the text so far is in Σ*L(B). The DFA E of `[\\s\\S]*(?:B)` runs
  from the start of the text, its state part of every DFA state (the *trackers*), and the assertion is an epsilon
  move allowed where E accepts (`(?<!B)`: where it does not). Any width: the `regex` package's variable-width
  lookbehinds are exact too. A tracker no thread can reach a use of any more is dropped (fewer states).
- A conditional `(?(g)yes|no)` asks whether group g has matched on the path so far: threads carry one bit per
  group a conditional names, set where the group closes (Python's engines keep a group's match through later
  loop iterations that skip it).
- An atomic group `(?>G)` (and a possessive quantifier, `X*+` being `(?>X*)`) matches only G's first match in
  the backtracking order, the path whose choices come first. The NFA's epsilon moves list alternatives in that
  order (greedy loops: once more, then out; lazy: out first), and each choice point inside G knows G's exit. A
  thread that takes alternative j there carries the obligation that alternatives 0..j-1 never reach G's exit on
  the text ahead (an NFA state set run beside it, within G): if one does, an earlier path of G matches, and the
  thread dies. Where G's loops cannot match the empty string (checked by `regex.py`), paths are finite and this
  is exactly the engines' first match.

Bodies are compiled on their own, so they must not look the other way (a lookbehind or `\\b` inside a
lookahead, a start anchor in a lookahead's body, ...): `regex.py` refuses those before building.
Threads are tuples `(nfa state, anchor requirement, group bits, obligations)`, obligations a frozenset of
`(AHEAD, body, negative, D state)` and `(EARLIER, G's exit, True, NFA state set)`. DFA states are (trackers,
thread set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from genlab.automata.charclass import EVERYTHING, SURROGATES, difference
from genlab.automata.determinize import (
    _AFTER_NEWLINE,
    _AT_TEXT_START,
    _ELSEWHERE,
    _NL,
    AT_LINE_START,
    END_NEXT,
    FINAL_NEWLINE_NEXT,
    FREE,
    ByteNFA,
    StateNumbers,
    anchor_needs,
    rows_table,
    useful,
)
from genlab.automata.dfa import ByteDFA
from genlab.automata.utf8 import ACCEPT, utf8_automaton

# assertion move kinds: `(kind, argument, target)` in `ByteNFA.asserts`
LOOKAHEAD, NOT_LOOKAHEAD, LOOKBEHIND, NOT_LOOKBEHIND, SET_GROUP, IF_GROUP, IF_NOT_GROUP = range(7)

Thread = tuple[int, int, int, frozenset]
_DEAD = object()  # an obligation that kills its thread
AHEAD, EARLIER = range(2)  # obligation kinds: a lookahead's D; earlier alternatives of an atomic group


@dataclass(eq=False)
class Body:
    """A lookaround body's DFA (of L(A)Σ* ahead, Σ*L(B) behind; None where no text matches it), with the per-state
    facts the construction asks for, memoised."""

    dfa: ByteDFA | None
    _universal: dict[int, bool] = field(default_factory=dict)
    _cuts: dict[int, list[int]] = field(default_factory=dict)

    def universal(self, d: int) -> bool:
        """Whether every text read from state `d` ends in an accepting state (walks D beside the any-text DFA)."""
        found = self._universal.get(d)
        if found is None:
            found = self._universal[d] = self._is_universal(d)
        return found

    def _is_universal(self, d: int) -> bool:
        assert self.dfa is not None
        table, accepting = self.dfa.transitions, self.dfa.accepting
        anything = _any_text()
        seen = {(d, 0)}
        stack = [(d, 0)]
        while stack:
            s, a = stack.pop()
            if a == 0 and not accepting[s]:
                return False
            reads = np.flatnonzero(anything[a] >= 0)
            after = table[s, reads]
            if (after < 0).any():
                return False
            for pair in zip(after.tolist(), anything[a, reads].tolist()):
                if pair not in seen:
                    seen.add(pair)
                    stack.append(pair)
        return True

    def cuts(self, d: int) -> list[int]:
        """The bytes where state `d`'s row changes target (range boundaries for the moves)."""
        found = self._cuts.get(d)
        if found is None:
            row = self.dfa.transitions[d] if self.dfa is not None else np.full(256, -1, np.int32)
            found = self._cuts[d] = (np.flatnonzero(row[1:] != row[:-1]) + 1).tolist()
        return found


@cache
def _any_text() -> np.ndarray:
    """The DFA table of all UTF-8 text (state 0, the only accepting one, is the start)."""
    nodes = utf8_automaton(difference(EVERYTHING, SURROGATES))
    table = np.full((len(nodes), 256), -1, np.int32)
    for i, node in enumerate(nodes):
        for lo, hi, child in node:
            table[i, lo : hi + 1] = 0 if child == ACCEPT else child
    return table


def determinize_assertions(nfa: ByteNFA, max_states: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """`determinize.determinize` for an NFA with assertion moves: (transitions int32 [n, 256], accepting [n]),
    state 0 the start; `StateLimitError` (naming `source`) past `max_states` DFA states."""
    return _Construction(nfa, max_states, source).run()


class _Construction:
    """One subset construction (see the module doc): DFA states are (trackers, thread set), numbered breadth first."""

    def __init__(self, nfa: ByteNFA, max_states: int, source: str):
        self.nfa = nfa
        self.line_starts = any(k == AT_LINE_START for a in nfa.anchors for k, _ in a)
        self.closures: dict[tuple, frozenset[Thread]] = {}
        self.numbers = StateNumbers(max_states, source, "lookarounds in loops")
        self.states: list[tuple[tuple[int, ...], frozenset[Thread]]] = self.numbers.keys
        self.uses = _tracker_uses(nfa)
        self.regions: dict[tuple[frozenset, int], frozenset] = {}

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        trackers = tuple(-1 if b.dfa is None else b.dfa.start for b in self.nfa.behind)
        first = self._closure({(self.nfa.start, FREE, 0, frozenset())}, _AT_TEXT_START, trackers)
        self._state(self._kept(trackers, first), first)
        rows: list[list[tuple[int, int, int]]] = []
        successors: dict[tuple, int] = {}
        while len(rows) < len(self.states):
            trackers, threads = self.states[len(rows)]
            row: list[tuple[int, int, int]] = []
            for lo, hi, key in self._moves(trackers, threads):
                if key not in successors:
                    targets, where, after = key
                    closed = self._closure(targets, where, after)
                    successors[key] = self._state(self._kept(after, closed), closed)
                t = successors[key]
                if row and row[-1][2] == t and row[-1][1] == lo - 1:
                    row[-1] = (row[-1][0], hi, t)
                else:
                    row.append((lo, hi, t))
            rows.append(row)
        table = rows_table(rows)
        accepting = np.array([any(self._accepts(th) for th in threads) for _, threads in self.states], np.bool_)
        return table, accepting

    def _kept(self, trackers: tuple[int, ...], threads: frozenset[Thread]) -> tuple[int, ...]:
        """The trackers some thread may still use (the others become -2, so they do not tell states apart)."""
        used: set[int] = set()
        for th in threads:
            used |= self.uses[th[0]]
        return tuple(e if k in used else -2 for k, e in enumerate(trackers))

    def _state(self, trackers: tuple[int, ...], threads: frozenset[Thread]) -> int:
        return self.numbers((trackers, threads))

    def _accepts(self, thread: Thread) -> bool:
        q, need, _, obligations = thread
        if q != self.nfa.final or need not in (FREE, END_NEXT):
            return False
        ahead = self.nfa.ahead
        return all(
            kind == EARLIER or bool(ahead[k].dfa.accepting[d]) != negative for kind, k, negative, d in obligations
        )

    def _obligation(self, k: int, negative: bool, d: int):
        """What body `k`'s D at state `d` asks of a thread: None (nothing more), `_DEAD`, or the obligation."""
        body = self.nfa.ahead[k]
        if d < 0:
            return None if negative else _DEAD
        if body.universal(d):
            return _DEAD if negative else None
        return (AHEAD, k, negative, d)

    def _earlier(self, group_exit: int, states) -> object:
        """The obligation that paths from `states` (inside an atomic group) never reach its exit: None when none
        can go on, `_DEAD` when one is there already."""
        closed = self._region_closure(frozenset(states), group_exit)
        if group_exit in closed:
            return _DEAD
        return (EARLIER, group_exit, True, closed) if closed else None

    def _region_closure(self, states: frozenset, group_exit: int) -> frozenset:
        """The states reachable by epsilon moves without passing the group's exit, kept if they read a byte (or are
        the exit)."""
        key = (states, group_exit)
        found = self.regions.get(key)
        if found is None:
            nfa = self.nfa
            seen = set(states)
            stack = list(states)
            while stack:
                q = stack.pop()
                if q == group_exit:
                    continue
                for t in nfa.eps[q]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            found = self.regions[key] = frozenset(q for q in seen if q == group_exit or nfa.edges[q])
        return found

    def _advance(self, ob: tuple, b: int):
        """An obligation after byte `b`: the new one, None (met) or `_DEAD`."""
        kind, k, negative, d = ob
        if kind == AHEAD:
            return self._obligation(k, negative, int(self.nfa.ahead[k].dfa.transitions[d, b]))
        moved = [t for q in d for lo, hi, t in self.nfa.edges[q] if lo <= b <= hi]
        return self._earlier(k, moved) if moved else None

    def _moves(self, trackers: tuple[int, ...], threads: frozenset[Thread]):
        """`(lo, hi, (targets, where, trackers after))` for each byte range all threads and automata treat alike."""
        nfa = self.nfa
        cuts = {0, 256}
        for q, need, _, obligations in threads:
            if need == END_NEXT:
                continue
            if need == FREE:
                for lo, hi, _t in nfa.edges[q]:
                    cuts.add(lo)
                    cuts.add(hi + 1)
            else:
                cuts.update((_NL, _NL + 1))
            for kind, k, _, d in obligations:
                if kind == AHEAD:
                    cuts.update(nfa.ahead[k].cuts(d))
                else:
                    for r in d:
                        for lo, hi, _t in nfa.edges[r]:
                            cuts.add(lo)
                            cuts.add(hi + 1)
        for k, e in enumerate(trackers):
            if e >= 0:
                cuts.update(nfa.behind[k].cuts(e))
        if self.line_starts:
            cuts.update((_NL, _NL + 1))
        bounds = sorted(cuts)
        out = []
        for lo, nxt in zip(bounds, bounds[1:]):
            targets = self._step(threads, lo)
            if not targets:
                continue
            after = tuple(e if e < 0 else int(nfa.behind[k].dfa.transitions[e, lo]) for k, e in enumerate(trackers))
            where = _AFTER_NEWLINE if lo == _NL and self.line_starts else _ELSEWHERE
            out.append((lo, nxt - 1, (targets, where, after)))
        return out

    def _step(self, threads: frozenset[Thread], b: int) -> frozenset[Thread]:
        """The threads after byte `b` (before closure)."""
        out = set()
        for q, need, bits, obligations in threads:
            if need == END_NEXT or (need != FREE and b != _NL):
                continue
            after_need = END_NEXT if need == FINAL_NEWLINE_NEXT else FREE
            moved = []
            for ob in obligations:
                ob = self._advance(ob, b)
                if ob is _DEAD:
                    break
                if ob is not None:
                    moved.append(ob)
            else:
                kept = frozenset(moved)
                for lo, hi, t in self.nfa.edges[q]:
                    if lo <= b <= hi:
                        out.add((t, after_need, bits, kept))
        return frozenset(out)

    def _closure(self, threads, where: int, trackers: tuple[int, ...]) -> frozenset[Thread]:
        out: set[Thread] = set()
        for th in threads:
            key = (th, where, trackers)
            found = self.closures.get(key)
            if found is None:
                found = self.closures[key] = self._closure1(th, where, trackers)
            out |= found
        return frozenset(out)

    def _closure1(self, thread: Thread, where: int, trackers: tuple[int, ...]) -> frozenset[Thread]:
        """Threads reachable from `thread` by epsilon, anchor and assertion moves, kept if they can read or accept."""
        nfa = self.nfa
        seen = {thread}
        stack = [thread]
        while stack:
            q, need, bits, obligations = stack.pop()
            group_exit = nfa.priority.get(q)
            if group_exit is None:
                nxt = [(t, need, bits, obligations) for t in nfa.eps[q]]
            else:  # a choice inside an atomic group: the earlier alternatives must never reach its exit
                nxt = [(nfa.eps[q][0], need, bits, obligations)]
                for j in range(1, len(nfa.eps[q])):
                    ob = self._earlier(group_exit, nfa.eps[q][:j])
                    if ob is _DEAD:
                        break
                    nxt.append((nfa.eps[q][j], need, bits, obligations if ob is None else obligations | {ob}))
            for kind, t in nfa.anchors[q]:
                nxt.extend((t, m, bits, obligations) for m in anchor_needs(kind, need, where))
            for kind, arg, t in nfa.asserts[q]:
                if kind == LOOKAHEAD or kind == NOT_LOOKAHEAD:
                    dfa = nfa.ahead[arg].dfa
                    ob = self._obligation(arg, kind == NOT_LOOKAHEAD, -1 if dfa is None else dfa.start)
                    if ob is not _DEAD:
                        nxt.append((t, need, bits, obligations if ob is None else obligations | {ob}))
                elif kind == LOOKBEHIND or kind == NOT_LOOKBEHIND:
                    e = trackers[arg]
                    holds = e >= 0 and bool(nfa.behind[arg].dfa.accepting[e])
                    if holds != (kind == NOT_LOOKBEHIND):
                        nxt.append((t, need, bits, obligations))
                elif kind == SET_GROUP:
                    nxt.append((t, need, bits | 1 << arg, obligations))
                elif (kind == IF_GROUP) == bool(bits >> arg & 1):
                    nxt.append((t, need, bits, obligations))
            for x in nxt:
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
        return frozenset(th for th in seen if useful(nfa, th[0], th[1]))


def _tracker_uses(nfa: ByteNFA) -> list[set[int]]:
    """Per NFA state, the lookbehind trackers a thread there may still test (through any path onwards)."""
    n = nfa.n_states
    back: list[list[int]] = [[] for _ in range(n)]
    uses: list[set[int]] = [set() for _ in range(n)]
    for q in range(n):
        for t in nfa.eps[q]:
            back[t].append(q)
        for _, t in nfa.anchors[q]:
            back[t].append(q)
        for _, _, t in nfa.edges[q]:
            back[t].append(q)
        for kind, arg, t in nfa.asserts[q]:
            back[t].append(q)
            if kind == LOOKBEHIND or kind == NOT_LOOKBEHIND:
                uses[q].add(arg)
    for k in range(len(nfa.behind)):
        stack = [q for q in range(n) if k in uses[q]]
        seen = set(stack)
        while stack:
            for p in back[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    uses[p].add(k)
                    stack.append(p)
    return uses
