"""Boolean combinations of byte DFAs (intersection, difference) and DFAs of finite sets of strings.

Constraints that combine several regular conditions on one string (a JSON Schema string with a `pattern`, a
length range and a format; object keys that are "any string but these names") build their automaton here
rather than through a regex, since Python's regex syntax has no intersection or complement. Products are built
over the reachable pairs only, then minimised to the canonical `ByteDFA`.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.dfa import ByteDFA
from genlab.automata.intern import find_slot, put_pair
from genlab.automata.minimize import minimal_dfa
from genlab.errors import StateLimitError
from genlab.jit import njit


def intersect(a: ByteDFA, b: ByteDFA, *, max_states: int = 100_000) -> ByteDFA | None:
    """The DFA of L(a) & L(b), or None when the intersection is empty."""
    return _product(a, b, "and", max_states)


def union(a: ByteDFA, b: ByteDFA, *, max_states: int = 100_000) -> ByteDFA:
    """The DFA of L(a) | L(b)."""
    dfa = _product(a, b, "or", max_states)
    assert dfa is not None  # both operands are non-empty DFAs
    return dfa


def difference(a: ByteDFA, b: ByteDFA, *, max_states: int = 100_000) -> ByteDFA | None:
    """The DFA of L(a) minus L(b), or None when nothing is left."""
    return _product(a, b, "minus", max_states)


def literals(strings: list[bytes]) -> ByteDFA | None:
    """The DFA of a finite set of byte strings (a trie, minimised), or None for the empty set."""
    if len(strings) == 1:  # a chain is already minimal
        (s,) = strings
        table = np.full((len(s) + 1, 256), -1, np.int32)
        table[np.arange(len(s)), np.frombuffer(s, np.uint8)] = np.arange(1, len(s) + 1)
        accepting = np.zeros(len(s) + 1, np.bool_)
        accepting[-1] = True
        return ByteDFA(table, accepting, 0)
    rows = [np.full(256, -1, np.int32)]
    finals = [False]
    for s in strings:
        state = 0
        for byte in s:
            nxt = rows[state][byte]
            if nxt < 0:
                nxt = rows[state][byte] = len(rows)
                rows.append(np.full(256, -1, np.int32))
                finals.append(False)
            state = nxt
        finals[state] = True
    if not any(finals):
        return None
    return minimal_dfa(np.stack(rows), np.array(finals, np.bool_))


_OPS = {"and": 0, "or": 1, "minus": 2}


def _product(a: ByteDFA, b: ByteDFA, op: str, max_states: int) -> ByteDFA | None:
    """Reachable pairs of (a state, b state), explored breadth first in numba over the runs of bytes both tables
    treat alike. Each side's -1 is a sink (code 0) that the pair may keep where `op` allows: a pair accepts as `op`
    says."""
    nb = b.n_states + 1  # pair code: (a state + 1) * nb + b state + 1
    a_rows = np.vstack([np.full((1, 256), -1, np.int32), a.transitions])
    b_rows = np.vstack([np.full((1, 256), -1, np.int32), b.transitions])
    change = (a_rows[:, 1:] != a_rows[:, :-1]).any(axis=0) | (b_rows[:, 1:] != b_rows[:, :-1]).any(axis=0)
    runs = np.flatnonzero(np.concatenate([[True], change]))  # each run's first byte
    byte_run = np.searchsorted(runs, np.arange(256), side="right") - 1
    table, codes = _pairs(a_rows, b_rows, runs, (a.start + 1) * nb + b.start + 1, nb, _OPS[op], max_states)
    if codes is None:
        raise StateLimitError(f"a DFA product would exceed {max_states} states")
    in_a = np.concatenate([[False], a.accepting])[codes // nb]
    in_b = np.concatenate([[False], b.accepting])[codes % nb]
    accepting = {"and": in_a & in_b, "or": in_a | in_b, "minus": in_a & ~in_b}[op]
    return minimal_dfa(table[:, byte_run], accepting)


@njit(cache=True)
def _pairs(a_rows, b_rows, runs, start, nb, op, max_states):
    """The pair automaton from pair code `start`: (its table over the byte runs, each state's pair code), states
    numbered in discovery order; (None, None) past `max_states` states. `op` 0 keeps pairs where both sides live,
    1 where either does, 2 where the left one does."""
    n_runs = runs.shape[0]
    table = np.full((64, n_runs), -1, np.int32)
    codes = np.empty(64, np.int64)
    ids = np.full((2, 256), -1, np.int64)  # pair code -> state id, a keyed table (`intern`; codes are >= 0)
    codes[0] = start
    put_pair(ids, start, 0)
    n = 1
    i = 0
    while i < n:
        code = codes[i]
        ra = a_rows[code // nb]
        rb = b_rows[code % nb]
        for r in range(n_runs):
            x = ra[runs[r]]
            y = rb[runs[r]]
            if op == 0:
                ok = x >= 0 and y >= 0
            elif op == 1:
                ok = x >= 0 or y >= 0
            else:
                ok = x >= 0
            if not ok:
                continue
            nxt = np.int64(x + 1) * nb + y + 1
            j = find_slot(ids[0], nxt)
            if ids[0, j] == nxt:
                table[i, r] = ids[1, j]
                continue
            if n >= max_states:
                return None, None
            if n == codes.shape[0]:
                grown = np.full((2 * n, n_runs), -1, np.int32)
                grown[:n] = table
                table = grown
                more = np.empty(2 * n, np.int64)
                more[:n] = codes
                codes = more
            codes[n] = nxt
            ids[0, j], ids[1, j] = nxt, n
            table[i, r] = n
            n += 1
            if 2 * n > ids.shape[1]:  # at most half full
                ids = np.full((2, 2 * ids.shape[1]), -1, np.int64)
                for e in range(n):
                    put_pair(ids, codes[e], e)
        i += 1
    return table[:n], codes[:n]
