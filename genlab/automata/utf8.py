"""UTF-8 for automata: a set of code-point ranges as a minimal deterministic byte automaton.

An n-byte UTF-8 sequence writes a code point in mixed radix: the lead byte carries the top digit, each
continuation byte `0b10xxxxxx` one 6-bit digit. Splitting a range set digit by digit therefore gives a byte trie
whose node after k bytes only depends on which suffix values remain; nodes are keyed by (bytes left, relative
ranges), so equal suffixes are one node and the automaton is minimal. Cost is linear in the number of ranges
times the sequence length, never in the number of code points: Unicode `\\w` (about 770 ranges) is fine.
Overlong forms and surrogates are never produced: each length only covers its own code-point interval, and
surrogates are removed from the set.
"""

from __future__ import annotations

import functools

from genlab.automata.charclass import SURROGATES, RangeSet, difference, intersect

ACCEPT = -1
"""The child that means "one whole code point has been read"."""

Node = tuple[tuple[int, int, int], ...]
"""A node's edges: `(byte_lo, byte_hi, child)`, sorted by byte; `child` is a node index or `ACCEPT`."""

# (first code point, last code point, lead-byte marker) for 1- to 4-byte sequences
_LENGTHS = ((0x0, 0x7F, 0x00), (0x80, 0x7FF, 0xC0), (0x800, 0xFFFF, 0xE0), (0x10000, 0x10FFFF, 0xF0))


@functools.lru_cache(maxsize=1024)
def utf8_automaton(ranges: RangeSet) -> tuple[Node, ...]:
    """Nodes of the minimal byte automaton of the UTF-8 encodings of `ranges`; node 0 is the start."""
    if ranges and ranges[-1][1] < 0x80:  # ASCII: one byte each
        return (tuple((lo, hi, ACCEPT) for lo, hi in ranges),)
    ranges = difference(ranges, SURROGATES)
    nodes: list[Node] = [()]
    memo: dict[tuple[int, RangeSet], int] = {}

    def node(rel: RangeSet, shift: int) -> int:
        """The node reading the continuation bytes of values `rel` that have `shift` bits left (shift >= 6)."""
        key = (shift, rel)
        if key not in memo:
            edges = _edges(rel, shift - 6, 0x80)
            memo[key] = len(nodes)
            nodes.append(edges)
        return memo[key]

    def _edges(rel: RangeSet, shift: int, marker: int) -> Node:
        """Edges on the digit above `shift` bits, written as byte `marker | digit`."""
        if shift == 0:
            return tuple((marker | lo, marker | hi, ACCEPT) for lo, hi in rel)
        return tuple((marker | d_lo, marker | d_hi, node(sub, shift)) for d_lo, d_hi, sub in _by_digit(rel, shift))

    root: list[tuple[int, int, int]] = []
    for n, (first, last, marker) in enumerate(_LENGTHS):
        part = intersect(ranges, ((first, last),))
        if part:
            root.extend(_edges(part, 6 * n, marker))
    nodes[0] = tuple(root)
    return tuple(nodes)


def _by_digit(rel: RangeSet, shift: int) -> list[tuple[int, int, RangeSet]]:
    """Group values by their digit `value >> shift`: runs of digits `(lo, hi, low parts)`, equal neighbours merged."""
    block = 1 << shift
    pieces: list[list] = []  # [digit_lo, digit_hi, [relative ranges]]
    for lo, hi in rel:
        d_lo, d_hi = lo >> shift, hi >> shift
        if d_lo == d_hi:
            parts = [(d_lo, d_lo, (lo - d_lo * block, hi - d_lo * block))]
        else:
            parts = [(d_lo, d_lo, (lo - d_lo * block, block - 1))]
            if d_hi - d_lo > 1:
                parts.append((d_lo + 1, d_hi - 1, (0, block - 1)))
            parts.append((d_hi, d_hi, (0, hi - d_hi * block)))
        for a, b, sub in parts:
            if pieces and pieces[-1][1] == a:  # the previous range ended inside this same digit
                pieces[-1][2].append(sub)
            else:
                pieces.append([a, b, [sub]])
    out: list[tuple[int, int, RangeSet]] = []
    for a, b, subs in pieces:
        ranges = tuple(subs)
        if out and out[-1][1] == a - 1 and out[-1][2] == ranges:
            out[-1] = (out[-1][0], b, ranges)
        else:
            out.append((a, b, ranges))
    return out
