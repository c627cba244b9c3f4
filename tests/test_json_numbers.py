"""JSON Schema numeric keywords as regexes and DFAs (genlab.constraints.json_schema.numbers).

Oracles: brute force over integer windows, Python's `Decimal` for exact values, `n % k` for divisibility; a few
patterns of each kind also go through `compile_regex`, whose DFA must agree with `re.fullmatch`.
"""

from __future__ import annotations

import re
from collections import deque
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.automata.regex import compile_regex
from genlab.constraints.json_schema.numbers import (
    decimal_range,
    exponent_numbers,
    integer_range,
    multiple_of_dfa,
)

NOT_JSON_NUMBERS = [
    "",
    "01",
    "-01",
    "00",
    "-",
    "+1",
    "1.",
    ".5",
    "01.5",
    "-.5",
    "1.e5",
    "1e",
    "1e+",
    "--1",
    " 1",
    "1 ",
    "0x1",
    "1_000",
    "Infinity",
    "NaN",
    "1.5.2",
    "e5",
    "-e5",
]


def fullmatch(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def check_compiled(pattern: str, texts: list[str]) -> None:
    """`compile_regex` builds the pattern's DFA and it agrees with `re.fullmatch` on `texts`."""
    dfa = compile_regex(pattern, max_states=20000)
    for text in texts:
        assert dfa.accepts(text.encode()) == fullmatch(pattern, text), (pattern, text)


# ---------------------------------------------------------------- integer_range

POWERS = [10**k + d for k in range(0, 14) for d in (-1, 0, 1)]
INTEGER_BOUNDS = sorted(
    {
        0,
        1,
        -1,
        2,
        -2,
        5,
        9,
        10,
        11,
        -9,
        -10,
        -11,
        99,
        100,
        101,
        -99,
        -100,
        -101,
        123,
        -123,
        999,
        1000,
        1001,
        -999,
        -1000,
        -1001,
        1199,
        -1199,
        10**6,
        -(10**6),
        10**12 + 7,
    }
)
INTEGER_PAIRS = [
    (lo, hi) for lo in [None, *INTEGER_BOUNDS] for hi in [None, *INTEGER_BOUNDS] if lo is None or hi is None or lo <= hi
][::3] + [(None, None), (0, 0), (-1, -1), (0, None), (None, 0), (None, -1), (1, None), (-5, 5), (10, 99), (-99, -10)]


def integer_probes(lo: int | None, hi: int | None) -> list[int]:
    probes = set(range(-1200, 1201))
    for p in POWERS:
        probes.update((p, -p))
    for b in (lo, hi):
        if b is not None:
            probes.update(range(b - 3, b + 4))
    return sorted(probes)


@pytest.mark.parametrize("lo, hi", INTEGER_PAIRS)
def test_integer_range_window(lo, hi):
    pattern = re.compile(integer_range(lo, hi))
    for n in integer_probes(lo, hi):
        expected = (lo is None or lo <= n) and (hi is None or n <= hi)
        assert (pattern.fullmatch(str(n)) is not None) == expected, (lo, hi, n)
    for text in [*NOT_JSON_NUMBERS, "-0", "1.0", "0.0", "-1.0", "1e2", "+0", "007", "-007"]:
        assert pattern.fullmatch(text) is None, (lo, hi, text)


def test_integer_range_empty():
    with pytest.raises(ValueError):
        integer_range(5, 4)
    with pytest.raises(ValueError):
        integer_range(-3, -4)


@settings(max_examples=150, deadline=None)
@given(
    lo=st.none() | st.integers(-(10**12), 10**12),
    hi=st.none() | st.integers(-(10**12), 10**12),
    offsets=st.lists(st.integers(-(10**12), 10**12), min_size=5, max_size=20),
)
def test_integer_range_random(lo, hi, offsets):
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    pattern = re.compile(integer_range(lo, hi))
    probes = list(offsets)
    for b in (lo, hi):
        if b is not None:
            probes += [b + d for d in range(-2, 3)] + [b + o // 1000 for o in offsets]
    for n in probes:
        expected = (lo is None or lo <= n) and (hi is None or n <= hi)
        assert (pattern.fullmatch(str(n)) is not None) == expected, (lo, hi, n)


def test_integer_range_is_compact():
    # alternatives grow with the digits of the bounds, not with their values
    assert len(integer_range(-(10**40) + 12345, 10**50 - 98765)) < 3000


# ---------------------------------------------------------------- decimal_range


def number_text(value: Decimal, extra_zeros: int = 0) -> str:
    """A JSON number text (no exponent) of `value`, with `extra_zeros` trailing fraction zeros added."""
    text = format(value, "f")
    if extra_zeros:
        text += ("" if "." in text else ".") + "0" * extra_zeros
    return text


def in_bounds(x: Decimal, lo, hi, lo_x: bool, hi_x: bool) -> bool:
    above = lo is None or (lo < x if lo_x else lo <= x)
    below = hi is None or (x < hi if hi_x else x <= hi)
    return above and below


bounds = st.none() | st.builds(
    lambda n, scale: Decimal(n).scaleb(-scale), st.integers(-300_000, 300_000), st.integers(0, 4)
)

random_texts = st.builds(
    lambda neg, int_part, frac: ("-" if neg else "") + int_part + ("." + frac if frac is not None else ""),
    st.booleans(),
    st.just("0") | st.from_regex(r"[1-9][0-9]{0,6}", fullmatch=True),
    st.none() | st.from_regex(r"[0-9]{1,7}", fullmatch=True),
)


def near_texts(bound: Decimal | None) -> list[str]:
    """Texts at, just above and just below `bound`, with and without trailing zeros and sign flips."""
    if bound is None:
        return []
    texts = []
    for delta in ("0", "0.0001", "-0.0001", "0.00001", "-0.00001", "1", "-1", "0.5"):
        v = bound + Decimal(delta)
        texts += [number_text(v), number_text(v, 2), number_text(v.copy_negate())]
    return texts


def check_decimal(lo, hi, lo_x, hi_x, texts) -> str | None:
    if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_x or hi_x))):
        with pytest.raises(ValueError):
            decimal_range(lo, hi, lo_x, hi_x)
        return None
    pattern = decimal_range(lo, hi, lo_x, hi_x)
    compiled = re.compile(pattern)
    for text in texts:
        expected = in_bounds(Decimal(text), lo, hi, lo_x, hi_x)
        assert (compiled.fullmatch(text) is not None) == expected, (lo, hi, lo_x, hi_x, text)
    for text in NOT_JSON_NUMBERS + ["1e5", "-0.5E-2", "1.5e0"]:
        assert compiled.fullmatch(text) is None, (lo, hi, text)
    return pattern


FIXED_TEXTS = [
    "0",
    "-0",
    "0.0",
    "-0.0",
    "0.000",
    "-0.000",
    "1",
    "-1",
    "1.50",
    "-1.50",
    "2.5",
    "-2.5",
    "2.50000",
    "0.125",
    "0.1250",
    "0.1251",
    "0.1249",
    "-2.4999",
    "-2.5001",
    "10",
    "100.00",
    "0.00001",
    "-0.00001",
]


@settings(max_examples=300, deadline=None)
@given(lo=bounds, hi=bounds, lo_x=st.booleans(), hi_x=st.booleans(), texts=st.lists(random_texts, max_size=15))
def test_decimal_range_random(lo, hi, lo_x, hi_x, texts):
    check_decimal(lo, hi, lo_x, hi_x, texts + near_texts(lo) + near_texts(hi) + FIXED_TEXTS)


@pytest.mark.parametrize(
    "lo, hi, lo_x, hi_x",
    [
        ("-2.5", "0.125", False, False),
        ("-2.5", "0.125", True, True),
        ("0", None, True, False),
        ("0", None, False, False),
        (None, "0", False, True),
        (None, "0", False, False),
        ("0", "0", False, False),
        ("-0.0001", "0.0001", True, True),
        ("1.5", "1.5", False, False),
        ("1.05", "1.5", False, True),
        ("99.99", "100.01", False, False),
        (None, None, False, False),
        ("-1000.5", "-999.25", True, False),
        ("0.1", "0.2", False, False),
        ("0.0909", "0.091", True, True),
    ],
)
def test_decimal_range_cases(lo, hi, lo_x, hi_x):
    lo = None if lo is None else Decimal(lo)
    hi = None if hi is None else Decimal(hi)
    texts = (
        FIXED_TEXTS
        + near_texts(lo)
        + near_texts(hi)
        + [number_text(Decimal(n).scaleb(-3), z) for n in range(-3000, 3001, 7) for z in (0, 1)]
    )
    check_decimal(lo, hi, lo_x, hi_x, texts)


def test_decimal_range_zero_and_negative_zero():
    pattern = decimal_range(Decimal(0), Decimal(0))
    for text in ["0", "-0", "0.0", "-0.000"]:
        assert fullmatch(pattern, text)
    assert not fullmatch(pattern, "0.001")
    assert not fullmatch(decimal_range(Decimal(0), None, lo_exclusive=True), "-0.0")
    assert fullmatch(decimal_range(None, Decimal("-1"), hi_exclusive=True), "-1.0000001")
    assert not fullmatch(decimal_range(None, Decimal("-1"), hi_exclusive=True), "-1.0000")


def test_decimal_range_errors_and_exact_bounds():
    with pytest.raises(ValueError):
        decimal_range(Decimal(1), Decimal(1), lo_exclusive=True)
    with pytest.raises(ValueError):
        decimal_range(Decimal("0.5"), Decimal("0.25"))
    with pytest.raises(ValueError):
        decimal_range(Decimal("Infinity"), None)
    # bounds far beyond the default Decimal precision stay exact
    lo = Decimal("1" + "0" * 40 + ".000000000000000000000000000000001")
    pattern = decimal_range(lo, None, lo_exclusive=True)
    assert not fullmatch(pattern, "1" + "0" * 40 + ".000000000000000000000000000000001")
    assert fullmatch(pattern, "1" + "0" * 40 + ".0000000000000000000000000000000011")
    assert not fullmatch(pattern, "1" + "0" * 40)


# ---------------------------------------------------------------- exponent_numbers

exponent_texts = st.builds(
    lambda neg, int_part, frac, e, esign, exp: (
        ("-" if neg else "") + int_part + ("." + frac if frac else "") + e + esign + exp
    ),
    st.booleans(),
    st.sampled_from(["0", "1", "9"]) | st.from_regex(r"[1-9][0-9]{0,4}", fullmatch=True),
    st.none() | st.sampled_from(["0", "000", "5", "0001"]) | st.from_regex(r"[0-9]{1,5}", fullmatch=True),
    st.sampled_from("eE"),
    st.sampled_from(["", "+", "-"]),
    st.from_regex(r"[0-9]{1,3}", fullmatch=True),
)

SIGN_ORACLE = {
    "any": lambda x: True,
    "pos": lambda x: x > 0,
    "nonneg": lambda x: x >= 0,
    "neg": lambda x: x < 0,
    "nonpos": lambda x: x <= 0,
}


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(exponent_texts, min_size=1, max_size=10), sign=st.sampled_from(sorted(SIGN_ORACLE)))
def test_exponent_numbers_random(texts, sign):
    pattern = re.compile(exponent_numbers(sign))
    for text in texts + ["0e0", "-0e5", "-0.000E-3", "0.0e1", "1e1", "-1E-1", "0.001e+2", "-0.001e2"]:
        assert (pattern.fullmatch(text) is not None) == SIGN_ORACLE[sign](Decimal(text)), (sign, text)
    for text in NOT_JSON_NUMBERS + ["1", "-0", "0.5", "01e5", "1.e5", "1e5.0", "+1e5"]:
        assert pattern.fullmatch(text) is None, (sign, text)


def test_exponent_numbers_bad_sign():
    with pytest.raises(ValueError):
        exponent_numbers("positive")


# ---------------------------------------------------------------- multiple_of_dfa


def run_dfa(transitions: np.ndarray, accepting: np.ndarray, start: int, text: str) -> bool:
    state = start
    for b in text.encode():
        state = int(transitions[state, b])
        if state < 0:
            return False
    return bool(accepting[state])


def live_states(transitions: np.ndarray, accepting: np.ndarray) -> set[int]:
    predecessors: dict[int, set[int]] = {}
    for s, t in zip(*np.nonzero(transitions >= 0)):
        predecessors.setdefault(int(transitions[s, t]), set()).add(int(s))
    live, queue = set(np.flatnonzero(accepting).tolist()), deque(np.flatnonzero(accepting).tolist())
    while queue:
        for p in predecessors.get(queue.popleft(), ()):
            if p not in live:
                live.add(p)
                queue.append(p)
    return live


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10, 12, 25, 64, 997])
def test_multiple_of_dfa(k):
    transitions, accepting, start = multiple_of_dfa(k)
    assert transitions.dtype == np.int32 and transitions.shape[1] == 256
    assert accepting.dtype == np.bool_ and accepting.shape == (transitions.shape[0],)
    assert transitions.min() >= -1 and transitions.max() < transitions.shape[0]
    large = [10**20 + d for d in range(-50, 50)] + [k * 123456789123, k * 10**15 + 1, 2**64, 3**40]
    for n in [*range(-3000, 3001), *large, *(-m for m in large)]:
        assert run_dfa(transitions, accepting, start, str(n)) == (n % k == 0), (k, n)
    for text in ["", "-", "-0", "01", "00", "-01", "+0", f"+{k}", f"{k}.0", f"{k}e0", f" {k}"]:
        assert not run_dfa(transitions, accepting, start, text), (k, text)
    assert live_states(transitions, accepting) == set(range(transitions.shape[0]))


def test_multiple_of_dfa_bad_k():
    for k in (0, -3, True, 2.0):
        with pytest.raises(ValueError):
            multiple_of_dfa(k)


# ---------------------------------------------------------------- through compile_regex

SAMPLE_TEXTS = [
    "0",
    "-0",
    "1",
    "-1",
    "9",
    "10",
    "-10",
    "99",
    "100",
    "1234",
    "-1234",
    "5.5",
    "-2.5",
    "-2.50",
    "0.125",
    "0.1251",
    "0.0",
    "-0.0",
    "1e5",
    "-1E-5",
    "0e3",
    "-0.0e1",
    "01",
    "1.",
    ".5",
    "+1",
    "1e",
    "999999999999",
    "1000000000000",
    "-3.14159",
    "42.000",
    "7",
]


@pytest.mark.parametrize(
    "pattern",
    [
        integer_range(None, None),
        integer_range(0, None),
        integer_range(-1234, 99),
        integer_range(10, 10**12),
        integer_range(None, -7),
        decimal_range(None, None),
        decimal_range(Decimal("-2.5"), Decimal("0.125")),
        decimal_range(Decimal(0), None, lo_exclusive=True),
        decimal_range(None, Decimal("42.0001"), hi_exclusive=True),
        *(exponent_numbers(s) for s in sorted(SIGN_ORACLE)),
    ],
)
def test_patterns_compile(pattern):
    check_compiled(pattern, SAMPLE_TEXTS)
