"""The code points one `re` character item matches, as sorted ranges: Python's own semantics, not a reimplementation.

A `RangeSet` is a tuple of inclusive `(lo, hi)` code-point ranges, sorted, disjoint and non-adjacent. `char_set`
turns a parsed `re` item (LITERAL, NOT_LITERAL, ANY, IN) into one, following `re._compiler` (which opcode it
emits under which flags) and `_sre`'s matching loop (what each opcode tests):

- `\\d`, `\\s`, `\\w` are `str.isdecimal`, `str.isspace`, `str.isalnum() or "_"` per code point (ASCII-only under
  `(?a)`), tabulated once per process.
- Under `(?i)`, a cased literal matches every `ch` with `lower(ch) in {lower(c)} | _EXTRA_CASES[lower(c)]`; a
  class with a cased member tests `lower(ch)` against the class, whose BMP literals and ranges were lowered (plus
  `_EXTRA_CASES`) and whose non-BMP members were kept as written (ranges also match through `upper`). `lower`
  and `upper` are `_sre`'s simple case mappings. This reproduces `re` exactly, quirks included: `(?i)[\\U00010400x]`
  matches neither U+10400 nor U+10428, because `re` tests `lower(ch)` against the unlowered non-BMP literal.

Surrogates (U+D800..U+DFFF) have no UTF-8 encoding and are removed from every set `char_set` returns.
"""

from __future__ import annotations

import _sre
import functools
import sys
from dataclasses import dataclass

import numpy as np

if sys.version_info >= (3, 11):
    from re import _constants as C
    from re._casefix import _EXTRA_CASES
else:
    import sre_compile
    import sre_constants as C

    _EXTRA_CASES = sre_compile._ignorecase_fixes  # type: ignore[attr-defined]  # private, not in typeshed

RangeSet = tuple[tuple[int, int], ...]

MAX_CODE_POINT = 0x10FFFF
SURROGATES: RangeSet = ((0xD800, 0xDFFF),)
EVERYTHING: RangeSet = ((0, MAX_CODE_POINT),)
_BMP_END = 0x10000


def normalize(pairs) -> RangeSet:
    """Sorted, merged form of any iterable of inclusive `(lo, hi)` pairs (empty ones dropped)."""
    out: list[list[int]] = []
    for lo, hi in sorted(p for p in pairs if p[0] <= p[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def union(*sets: RangeSet) -> RangeSet:
    return normalize(p for s in sets for p in s)


def complement(s: RangeSet) -> RangeSet:
    """All code points not in `s`."""
    out, nxt = [], 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE_POINT:
        out.append((nxt, MAX_CODE_POINT))
    return tuple(out)


def intersect(a: RangeSet, b: RangeSet) -> RangeSet:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def difference(a: RangeSet, b: RangeSet) -> RangeSet:
    return intersect(a, complement(b))


def contains(s: RangeSet, points: np.ndarray) -> np.ndarray:
    """Vectorised membership of `points` in `s`."""
    if not s:
        return np.zeros(len(points), np.bool_)
    arr = np.asarray(s, np.int64)
    k = np.searchsorted(arr[:, 0], points, side="right") - 1
    return (k >= 0) & (points <= arr[np.maximum(k, 0), 1])


def from_points(points) -> RangeSet:
    return normalize((int(p), int(p)) for p in points)


def from_mask(mask: np.ndarray) -> RangeSet:
    """The ranges where a boolean array over code points is true."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    return tuple((int(lo), int(hi) - 1) for lo, hi in zip(edges[0::2], edges[1::2]))


# --- per-process tables ---------------------------------------------------------------------------------------


@functools.cache
def _all_chars() -> str:
    return "".join(map(chr, range(MAX_CODE_POINT + 1)))


@functools.cache
def _unicode_property(name: str) -> RangeSet:
    """Code points with a `str` predicate true, e.g. "isdecimal"; one C-speed pass, cached."""
    if name == "word":
        return union(_unicode_property("isalnum"), ((0x5F, 0x5F),))
    flags = np.frombuffer(bytes(map(getattr(str, name), _all_chars())), np.bool_)
    return from_mask(flags)


_ASCII_CATEGORIES: dict[object, RangeSet] = {
    C.CATEGORY_DIGIT: ((0x30, 0x39),),
    C.CATEGORY_SPACE: ((0x09, 0x0D), (0x20, 0x20)),
    C.CATEGORY_WORD: ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    C.CATEGORY_LINEBREAK: ((0x0A, 0x0A),),
}
_UNICODE_CATEGORIES = {
    C.CATEGORY_DIGIT: "isdecimal",  # _sre: Py_UNICODE_ISDECIMAL
    C.CATEGORY_SPACE: "isspace",  # _sre: Py_UNICODE_ISSPACE
    C.CATEGORY_WORD: "word",  # _sre: Py_UNICODE_ISALNUM or "_"
}
_LINEBREAKS = from_points(map(ord, "\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"))  # Py_UNICODE_ISLINEBREAK
_NEGATED = {
    C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT,
    C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE,
    C.CATEGORY_NOT_WORD: C.CATEGORY_WORD,
    C.CATEGORY_NOT_LINEBREAK: C.CATEGORY_LINEBREAK,
}


def category_set(code, unicode: bool) -> RangeSet:
    """The code points of a `re` category (`\\d`, `\\W`, ...) as parsed, Unicode or ASCII flavour."""
    if code in _NEGATED:
        return complement(category_set(_NEGATED[code], unicode))
    if not unicode:
        return _ASCII_CATEGORIES[code]
    if code == C.CATEGORY_LINEBREAK:
        return _LINEBREAKS
    return _unicode_property(_UNICODE_CATEGORIES[code])


@dataclass(frozen=True)
class CaseMap:
    """A code-point map that moves few points (a case mapping): the moved ones, sorted, and their images."""

    src: np.ndarray
    dst: np.ndarray

    @functools.cached_property
    def moved(self) -> RangeSet:
        return from_points(self.src)

    def __call__(self, c: int) -> int:
        k = np.searchsorted(self.src, c)
        return int(self.dst[k]) if k < len(self.src) and self.src[k] == c else c

    def image(self, s: RangeSet) -> RangeSet:
        """{f(c) : c in s}."""
        return union(difference(s, self.moved), from_points(self.dst[contains(s, self.src)]))

    def preimage(self, s: RangeSet) -> RangeSet:
        """{c : f(c) in s}."""
        return union(difference(s, self.moved), from_points(self.src[contains(s, self.dst)]))


def _case_map(fn) -> CaseMap:
    codes = np.arange(MAX_CODE_POINT + 1, dtype=np.int64)
    mapped = np.fromiter(map(fn, range(MAX_CODE_POINT + 1)), np.int64, MAX_CODE_POINT + 1)
    moved = mapped != codes
    # `_optimize_charset` lowers BMP members into a 64K bitmap and keeps the rest apart; that split is only
    # well defined because no simple case mapping crosses the BMP boundary.
    assert np.all((codes[moved] < _BMP_END) == (mapped[moved] < _BMP_END))
    return CaseMap(codes[moved], mapped[moved])


@dataclass(frozen=True)
class Folding:
    """What `(?i)` means under one type flag: `_sre`'s lower mapping, its cased set, and the extra equivalences."""

    lower: CaseMap
    cased: RangeSet
    fixes: dict[int, tuple[int, ...]]

    def closure(self, lowered: RangeSet) -> RangeSet:
        """`lowered` plus `_EXTRA_CASES` of its members (what `_optimize_charset` puts in the bitmap)."""
        keys = np.fromiter(self.fixes, np.int64, len(self.fixes))
        extra = [k for key in keys[contains(lowered, keys)] for k in self.fixes[int(key)]]
        return union(lowered, from_points(extra))


def simple_upper(c: int) -> int:
    """`_sre`'s upper (`_PyUnicode_ToUppercase`): the first code point of the full uppercase mapping."""
    return ord(chr(c).upper()[0])


@functools.cache
def _unicode_upper() -> CaseMap:
    return _case_map(simple_upper)


@functools.cache
def _unicode_folding() -> Folding:
    lower = _case_map(_sre.unicode_tolower)
    cased = from_mask(np.fromiter(map(_sre.unicode_iscased, range(MAX_CODE_POINT + 1)), np.bool_))
    assert all(contains(cased, np.array([k]))[0] for k in _EXTRA_CASES)
    return Folding(lower, cased, _EXTRA_CASES)


@functools.cache
def _ascii_folding() -> Folding:
    upper = np.arange(0x41, 0x5B)
    return Folding(CaseMap(upper, upper + 0x20), ((0x41, 0x5A), (0x61, 0x7A)), {})


def _folding(flags: int) -> Folding | None:
    if not flags & C.SRE_FLAG_IGNORECASE:
        return None
    return _unicode_folding() if flags & C.SRE_FLAG_UNICODE else _ascii_folding()


# --- items ----------------------------------------------------------------------------------------------------


def char_set(op, av, flags: int) -> RangeSet:
    """The code points (surrogates excluded) that one parsed `re` item matches under `flags` (memoised: a
    grammar's terminals repeat their classes, e.g. `[Ee]` in dozens of case-insensitive keywords)."""
    return _char_set(op, tuple(av) if op is C.IN else av, flags)


@functools.lru_cache(maxsize=4096)
def _char_set(op, av, flags: int) -> RangeSet:
    if op is C.ANY:
        s = EVERYTHING if flags & C.SRE_FLAG_DOTALL else complement(((0x0A, 0x0A),))
    elif op is C.LITERAL:
        s = _literal(av, flags)
    elif op is C.NOT_LITERAL:
        s = complement(_literal(av, flags))
    elif op is C.IN:
        s = _class(av, flags)
    elif op is C.CATEGORY:
        s = _class([(op, av)], flags)
    else:
        raise ValueError(f"not a character item: {op}")
    return difference(s, SURROGATES)


def _literal(c: int, flags: int) -> RangeSet:
    """`re._compiler`: an uncased literal is itself; a cased one is LITERAL_UNI_IGNORE or an IN of its fixes."""
    fold = _folding(flags)
    if fold is None or not contains(fold.cased, np.array([c]))[0]:
        return ((c, c),)
    lo = fold.lower(c)
    return fold.lower.preimage(from_points((lo, *fold.fixes.get(lo, ()))))


def _class(items, flags: int) -> RangeSet:
    """A `[...]` set, following `_optimize_charset` (which members are lowered) and `_sre`'s charset test."""
    fold = _folding(flags)
    unicode = bool(flags & C.SRE_FLAG_UNICODE)
    negate = False
    bmp: list[tuple[int, int]] = []  # literals and ranges that go to the bitmap (lowered when folding)
    tail: list[RangeSet] = []  # non-BMP literals/ranges, as `_sre` tests them against lower(ch)
    cats: list[RangeSet] = []
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.CATEGORY:
            cats.append(category_set(av, unicode))
        elif op is C.LITERAL or op is C.RANGE:
            lo, hi = (av, av) if op is C.LITERAL else av
            if fold is not None and hi >= _BMP_END:
                if op is C.RANGE:  # BMP part lowered into the bitmap, whole range kept as RANGE_UNI_IGNORE
                    bmp.append((lo, min(hi, _BMP_END - 1)))
                    tail.append(union(((lo, hi),), _unicode_upper().preimage(((lo, hi),))))
                else:
                    tail.append(((lo, hi),))
            else:
                bmp.append((lo, hi))
        else:
            raise ValueError(f"not a class member: {op}")
    members = normalize(bmp)
    if fold is None or not (tail or intersect(members, fold.cased)):
        s = union(members, *tail, *cats)  # plain IN: ch itself is tested
    else:  # IN_UNI_IGNORE / IN_IGNORE: lower(ch) is tested against the lowered bitmap, the tail and categories
        s = fold.lower.preimage(union(fold.closure(fold.lower.image(members)), *tail, *cats))
    return complement(s) if negate else s
