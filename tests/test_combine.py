"""Boolean combinations of byte DFAs (`automata/combine.py`) against `re.fullmatch` on every short string over a
small alphabet (ASCII and multi-byte characters), and the product's state limit."""

from __future__ import annotations

import itertools
import re

import pytest

from genlab.automata.combine import difference, intersect, literals, union
from genlab.automata.regex import compile_regex
from genlab.errors import StateLimitError

PATTERNS = ["a*b", "(ab|bé)*", "[a-c]{2,4}", "a.*c", "(a|b)*c?", "é+", "", "[^a]*", "c(a|é)*", "(abc)+", "[α-ω]b"]
STRINGS = ["".join(p) for n in range(6) for p in itertools.product("abcéβ", repeat=n)]
OPS = [(intersect, lambda x, y: x and y), (union, lambda x, y: x or y), (difference, lambda x, y: x and not y)]


def accepts(dfa, text: str) -> bool:
    if dfa is None:
        return False
    q = dfa.start
    for byte in text.encode():
        q = dfa.transitions[q, byte]
        if q < 0:
            return False
    return bool(dfa.accepting[q])


@pytest.mark.parametrize("left", PATTERNS)
def test_products_match_fullmatch(left: str) -> None:
    a = compile_regex(left)
    for right in PATTERNS:
        b = compile_regex(right)
        for combine, truth in OPS:
            dfa = combine(a, b)
            for text in STRINGS:
                want = truth(re.fullmatch(left, text) is not None, re.fullmatch(right, text) is not None)
                assert accepts(dfa, text) == want, (left, right, combine.__name__, text)


def test_product_state_limit() -> None:
    a, b = compile_regex("[ab]*a[ab]{6}"), compile_regex("[ab]*b[ab]{5}")
    assert intersect(a, b) is not None
    with pytest.raises(StateLimitError, match="exceed 20 states"):
        intersect(a, b, max_states=20)


def test_literals() -> None:
    dfa = literals([b"ab", b"abc", "é".encode()])
    for text in STRINGS:
        assert accepts(dfa, text) == (text in ("ab", "abc", "é"))
    assert literals([]) is None
