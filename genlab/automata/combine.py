"""Boolean combinations of byte DFAs (intersection, difference) and DFAs of finite sets of strings.

Constraints that combine several regular conditions on one string (a JSON Schema string with a `pattern`, a
length range and a format; object keys that are "any string but these names") build their automaton here
rather than through a regex, since Python's regex syntax has no intersection or complement. Products are built
over the reachable pairs only, then minimised to the canonical `ByteDFA`.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.dfa import ByteDFA
from genlab.automata.minimize import minimal_dfa
from genlab.errors import StateLimitError


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
    table = [np.full(256, -1, np.int32)]
    accepting = [False]
    for s in strings:
        state = 0
        for byte in s:
            nxt = table[state][byte]
            if nxt < 0:
                nxt = table[state][byte] = len(table)
                table.append(np.full(256, -1, np.int32))
                accepting.append(False)
            state = nxt
        accepting[state] = True
    if not any(accepting):
        return None
    return minimal_dfa(np.stack(table), np.array(accepting, np.bool_))


def _product(a: ByteDFA, b: ByteDFA, op: str, max_states: int) -> ByteDFA | None:
    """Reachable pairs of (a state, b state), explored a breadth-first layer at a time with array operations.
    Each side's -1 is a sink (code 0) that the pair may keep where `op` allows: a pair accepts as `op` says."""
    nb = b.n_states + 1  # pair code: (a state + 1) * nb + b state + 1
    a_rows = np.vstack([np.full((1, 256), -1, np.int32), a.transitions]).astype(np.int64)
    b_rows = np.vstack([np.full((1, 256), -1, np.int32), b.transitions]).astype(np.int64)
    a_accepting = np.concatenate([[False], a.accepting])
    b_accepting = np.concatenate([[False], b.accepting])
    start = (a.start + 1) * nb + b.start + 1
    ids: dict[int, int] = {start: 0}
    frontier = np.array([start], np.int64)
    tables, codes_seen = [], [frontier]
    while len(frontier):
        ra, rb = a_rows[frontier // nb], b_rows[frontier % nb]
        ok = {"and": (ra >= 0) & (rb >= 0), "or": (ra >= 0) | (rb >= 0), "minus": ra >= 0}[op]
        codes = np.where(ok, (ra + 1) * nb + rb + 1, -1)
        uniq = np.unique(codes[ok])
        new = []
        for code in uniq.tolist():
            if code not in ids:
                ids[code] = len(ids)
                new.append(code)
        if len(ids) > max_states:
            raise StateLimitError(f"a DFA product would exceed {max_states} states")
        uniq_ids = np.array([ids[c] for c in uniq.tolist()] or [-1], np.int64)
        where = np.minimum(np.searchsorted(uniq, codes), len(uniq_ids) - 1)
        tables.append(np.where(ok, uniq_ids[where], -1).astype(np.int32))
        frontier = np.array(new, np.int64)
        codes_seen.append(frontier)
    table = np.vstack(tables)  # rows in id order: each layer's new codes were numbered in the order listed
    order = np.concatenate(codes_seen)
    in_a, in_b = a_accepting[order // nb], b_accepting[order % nb]
    accepting = {"and": in_a & in_b, "or": in_a | in_b, "minus": in_a & ~in_b}[op]
    return minimal_dfa(table, accepting)
