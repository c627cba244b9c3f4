"""JSON Schema numeric keywords as regexes and DFAs over JSON number texts (RFC 8259 number grammar).

`integer_range` and `decimal_range` give regexes (Python `re` syntax, nothing `compile_regex` refuses) for the
texts whose value lies in a range; `exponent_numbers` gives the exponent-form texts of a sign, an
over-approximation for bounded numbers written with `e`; `multiple_of_dfa` gives the DFA of canonical integer
texts divisible by k. Every regex has O(digits of the bounds) alternatives: ranges are split by digit count and
then digit by digit, never by enumerating values.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

_DIGIT = "[0-9]"
_NAT = "(?:0|[1-9][0-9]*)"
_FRAC = r"(?:\.[0-9]+)?"
_EXP = "[eE][+-]?[0-9]+"
_DEAD = -1
MAX_MULTIPLE_OF = 100_000


# ---------------------------------------------------------------- small regex builders


def _alt(parts: list[str]) -> str | None:
    """Alternation of `parts` as one regex item (grouped when it has several), or None when there are none."""
    if len(set(parts)) == 1:
        return parts[0]
    flat = []
    for part in parts:  # a part that is itself one alternation group joins this alternation
        flat.append(part[3:-1] if part.startswith("(?:") and _closes_at_end(part) else part)
    parts = list(dict.fromkeys(flat))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _optional(item: str) -> str:
    """`item` (one regex item: a group, class or literal, possibly repeated) made optional."""
    return f"{item}?" if len(item) == 1 or (item.startswith("(?:") and _closes_at_end(item)) else f"(?:{item})?"


def _closes_at_end(item: str) -> bool:
    """Whether the group opening `item` closes at its last character (so `item` is one group); the builders here
    never put a parenthesis inside a class or after a backslash."""
    depth = 0
    for i, c in enumerate(item):
        depth += c == "("
        depth -= c == ")"
        if depth == 0:
            return i == len(item) - 1
    return False


def _digits(lo: int, hi: int) -> str:
    """One digit in [lo, hi] (0 <= lo <= hi <= 9)."""
    if lo == hi:
        return str(lo)
    if lo == 0 and hi == 9:
        return _DIGIT
    return f"[{lo}-{hi}]" if hi > lo + 1 else f"[{lo}{hi}]"


def _any_digits(n: int) -> str:
    """Exactly `n` arbitrary digits."""
    return "" if n == 0 else _DIGIT if n == 1 else f"{_DIGIT}{{{n}}}"


# ---------------------------------------------------------------- integers


def _same_length(lo: str, hi: str) -> str:
    """Digit strings of len(lo) == len(hi) between `lo` and `hi` inclusive (lexicographic = numeric order)."""
    n = len(lo)
    if n == 0:
        return ""
    if lo == hi:
        return lo
    if lo[0] == hi[0]:
        return lo[0] + _same_length(lo[1:], hi[1:])
    parts = []
    a, b = int(lo[0]), int(hi[0])
    # the first digits' own branches fold into the middle block when their tails are unconstrained
    if lo[1:] != "0" * (n - 1):
        parts.append(lo[0] + _same_length(lo[1:], "9" * (n - 1)))
        a += 1
    full_hi = hi[1:] == "9" * (n - 1)
    top = b if full_hi else b - 1
    if a <= top:
        parts.append(_digits(a, top) + _any_digits(n - 1))
    if not full_hi:
        parts.append(hi[0] + _same_length("0" * (n - 1), hi[1:]))
    return _alt(parts) or ""


def _nat_range(lo: int, hi: int | None) -> str | None:
    """Canonical decimal texts of the naturals in [lo, hi] (hi None: unbounded), or None when there are none."""
    if hi is not None and lo > hi:
        return None
    if hi is None and lo == 0:
        return _NAT
    parts = []
    full: list[int] = []  # lengths whose every number is in range: one `[1-9][0-9]{m,n}` for them all
    lo_len = len(str(lo))
    for length in range(lo_len, (len(str(hi)) if hi is not None else lo_len) + 1):
        a = max(lo, 10 ** (length - 1)) if length > 1 else lo
        b = 10**length - 1 if hi is None else min(hi, 10**length - 1)
        if a == 10 ** (length - 1) and b == 10**length - 1:
            full.append(length)
        else:
            parts.append(_same_length(str(a), str(b)))
    if hi is None:  # every longer number
        full.append(lo_len + 1)
    if full:
        m, n = min(full) - 1, None if hi is None else max(full) - 1
        reps = {(0, None): "*", (1, None): "+", (0, 0): ""}.get((m, n))
        if reps is None:
            reps = f"{{{m},}}" if n is None else f"{{{m}}}" if m == n else f"{{{m},{n}}}"
        parts.append("[1-9]" + (f"{_DIGIT}{reps}" if reps else ""))
    return _alt(parts)


def integer_range(lo: int | None, hi: int | None) -> str:
    """Regex of the canonical JSON integer texts n with lo <= n <= hi (None: unbounded), for `minimum`/`maximum`."""
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"empty integer range: {lo} > {hi}")
    parts = []
    if hi is None or hi >= 0:
        nat = _nat_range(max(lo, 0) if lo is not None else 0, hi)
        assert nat is not None  # max(lo, 0) <= hi
        parts.append(nat)
    if lo is None or lo <= -1:  # n = -m with max(1, -hi) <= m <= -lo
        nat = _nat_range(max(1, -hi) if hi is not None else 1, -lo if lo is not None else None)
        assert nat is not None  # max(1, -hi) <= -lo
        parts.append("-" + nat)
    out = _alt(parts)
    assert out is not None  # lo <= hi: one of the branches above holds
    return out


# ---------------------------------------------------------------- decimals


def _split(value: Decimal) -> tuple[int, str]:
    """Integer part and fraction digits (no trailing zeros) of a finite `value` >= 0, exactly."""
    _, digit_tuple, exp = value.as_tuple()
    assert isinstance(exp, int)  # finite: not 'n', 'N' or 'F'
    digits = "".join(map(str, digit_tuple))
    if exp >= 0:
        return int(digits + "0" * exp), ""
    k = -exp
    digits = digits.rjust(k + 1, "0")
    return int(digits[:-k]), digits[-k:].rstrip("0")


def _full(empty: bool, nonempty: str | None) -> str | None:
    """The regex of a set given as (holds the empty string, regex of its non-empty strings or None)."""
    if nonempty is None:
        return "" if empty else None
    return _optional(nonempty) if empty else nonempty


def _fraction(lo: str | None, lo_x: bool, hi: str | None, hi_x: bool) -> tuple[bool, str | None]:
    """Digit strings D with lo (<|<=) 0.D (<|<=) hi, as `_full`'s pair; bounds are digit strings without trailing
    zeros ("" is 0) or None (unbounded); 0.D compares like D padded with zeros, lexicographically."""
    if lo == "" and not lo_x:
        lo = None
    if hi == "":  # 0.D <= 0 means all zeros
        return (False, None) if hi_x or lo is not None else (True, "0+")
    if lo is None and hi is None:
        return True, f"{_DIGIT}+"
    if lo == "" and hi is None:  # 0.D > 0
        return False, "0*[1-9][0-9]*"
    empty = lo is None  # 0 is below every non-empty hi
    lo_d = int(lo[0]) if lo else (0 if lo == "" else -1)  # -1: no lower bound on this digit
    hi_d = int(hi[0]) if hi is not None else 10  # 10: no upper bound on this digit
    parts = []
    free_lo, free_hi = lo_d + 1, hi_d - 1
    if free_lo <= min(free_hi, 9):
        parts.append(_digits(max(free_lo, 0), min(free_hi, 9)) + f"{_DIGIT}*")
    lo_rest = (lo[1:] if lo else "") if lo is not None else None
    hi_rest = hi[1:] if hi is not None else None
    if 0 <= lo_d == hi_d:
        tail = _full(*_fraction(lo_rest, lo_x, hi_rest, hi_x))
        if tail is not None:
            parts.append(str(lo_d) + tail)
    else:
        if lo_d >= 0:
            tail = _full(*_fraction(lo_rest, lo_x, None, False))
            if tail is not None:
                parts.append(str(lo_d) + tail)
        if hi_d <= 9:
            tail = _full(*_fraction(None, False, hi_rest, hi_x))
            if tail is not None:
                parts.append(str(hi_d) + tail)
    return empty, _alt(parts)


def _fraction_part(lo: str | None, lo_x: bool, hi: str | None, hi_x: bool) -> str | None:
    """The optional `.digits` of a number text whose fraction value is within the bounds (see `_fraction`)."""
    empty, nonempty = _fraction(lo, lo_x, hi, hi_x)
    if nonempty is None:
        return "" if empty else None
    return rf"(?:\.{nonempty})?" if empty else rf"\.{nonempty}"


def _unsigned(lower: tuple[Decimal, bool] | None, upper: tuple[Decimal, bool] | None) -> str | None:
    """Unsigned texts `(0|[1-9][0-9]*)(\\.[0-9]+)?` with value in the bounds ((value, exclusive) or None), or None
    when there are none."""
    if lower is not None and lower[0] < 0:
        lower = None
    if upper is not None and (upper[0] < 0 or (upper[0] == 0 and upper[1])):
        return None
    if lower is not None and upper is not None:
        if lower[0] > upper[0] or (lower[0] == upper[0] and (lower[1] or upper[1])):
            return None
    if lower is None and upper is None:
        return _NAT + _FRAC
    parts: list[str] = []

    def add(integer: str | None, fraction: str | None) -> None:
        if integer is not None and fraction is not None:
            parts.append(integer + fraction)

    if lower is not None:
        a, fa = _split(lower[0])
    if upper is not None:
        b, fb = _split(upper[0])
    if lower is not None and upper is not None and a == b:
        add(str(a), _fraction_part(fa, lower[1], fb, upper[1]))
    else:
        if lower is not None:
            add(str(a), _fraction_part(fa, lower[1], None, False))
        first = a + 1 if lower is not None else 0
        if upper is not None:
            add(_nat_range(first, b - 1), _FRAC)
            add(str(b), _fraction_part(None, False, fb, upper[1]))
        else:
            add(_nat_range(first, None), _FRAC)
    return _alt(parts)


def _bound(value: Decimal | int | None, name: str) -> Decimal | None:
    if value is None:
        return None
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{name} must be a finite number, not {value}")
    return value


def decimal_range(
    lo: Decimal | None, hi: Decimal | None, lo_exclusive: bool = False, hi_exclusive: bool = False
) -> str:
    """Regex of the JSON number texts without exponent (`-0` included) whose exact value lies within the bounds,
    for `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` on numbers; raises ValueError if none does."""
    lo, hi = _bound(lo, "lo"), _bound(hi, "hi")
    if lo is not None and hi is not None:
        if lo > hi or (lo == hi and (lo_exclusive or hi_exclusive)):
            raise ValueError(
                f"empty number range: {lo} {'<' if lo_exclusive else '<='} x {'<' if hi_exclusive else '<='} {hi}"
            )
    lower = None if lo is None else (lo, lo_exclusive)
    upper = None if hi is None else (hi, hi_exclusive)
    positive = _unsigned(lower, upper)
    # "-T" has value -v(T): lo (<) -v (<) hi  <=>  -hi (<) v (<) -lo; copy_negate is exact (unary minus rounds)
    negative = _unsigned(
        None if upper is None else (upper[0].copy_negate(), upper[1]),
        None if lower is None else (lower[0].copy_negate(), lower[1]),
    )
    parts = [p for p in (positive, None if negative is None else "-" + negative) if p is not None]
    return _alt(parts) or ""


# ---------------------------------------------------------------- exponent form


def exponent_numbers(sign: str) -> str:
    """Regex of the JSON number texts with an exponent whose value has `sign` ("any", "pos", "nonneg", "neg",
    "nonpos"): an over-approximation of a bounded range written in exponent form."""
    mantissa = _NAT + _FRAC
    zero = r"0(?:\.0+)?"
    nonzero = r"(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.0*[1-9][0-9]*)"
    body = {
        "any": f"-?{mantissa}",
        "nonneg": f"(?:{mantissa}|-{zero})",
        "pos": nonzero,
        "nonpos": f"(?:-{mantissa}|{zero})",
        "neg": f"-{nonzero}",
    }.get(sign)
    if body is None:
        raise ValueError(f"sign must be one of 'any', 'pos', 'nonneg', 'neg', 'nonpos', not {sign!r}")
    return body + _EXP


# ---------------------------------------------------------------- multipleOf


def multiple_of_dfa(k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """DFA (transitions int32 [n, 256] with -1 dead, accepting [n], start) of the canonical JSON integer texts
    divisible by `k`, for `multipleOf` on integers, which no compact regex expresses; every state is live."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_MULTIPLE_OF:
        raise ValueError(f"k must be an integer in [1, {MAX_MULTIPLE_OF}], not {k!r}")
    k = int(k)
    # states: start, after "-", after a leading "0" (the whole text is "0"), then residue r of the magnitude
    start, minus, zero, residue0 = 0, 1, 2, 3
    n = residue0 + k
    transitions = np.full((n, 256), _DEAD, np.int32)
    digit = np.arange(10)
    zero_byte, one_byte, nine_byte = ord("0"), ord("1"), ord("9")
    transitions[start, ord("-")] = minus
    transitions[start, zero_byte] = zero  # "-0" is not canonical: no "0" after "-"
    for s in (start, minus):
        transitions[s, one_byte : nine_byte + 1] = residue0 + digit[1:] % k
    residues = np.arange(k)
    transitions[residue0:, zero_byte : nine_byte + 1] = residue0 + (residues[:, None] * 10 + digit[None, :]) % k
    accepting = np.zeros(n, np.bool_)
    accepting[zero] = accepting[residue0] = True
    # every residue reaches 0 by appending enough digits (they then cover every residue), so all states are live
    return transitions, accepting, start
