"""A regular over-approximation of a `regex`-package pattern: a DFA that accepts every full match, and more; or,
where the pattern is regular after all, its exact DFA.

`Pattern` (backreferences, lookarounds, recursion, ...) has no exact automaton in general, but most of its
language is regular, and a DFA of a superset of it discards most tokens cheaply (a mask, a numba step) before the
exact `regex` check runs. The superset comes from `re`'s parse tree of the pattern, relaxed:

- a backreference matches some string of its group's language (not necessarily the one the group matched);
- lookarounds, `\\b`/`\\B`, conditionals, atomic groups and possessive quantifiers are first kept, exactly (the
  DFA construction of `automata/assertions.py`), with `\\w`, `\\d`, `\\s` read as the `regex` package reads them
  and `\\b` as lookarounds on that `\\w`; a negative lookaround, atomic group or possessive quantifier whose body
  had to be widened is dropped or made ordinary (a positive lookaround keeps its widened body). Where nothing
  was widened, the DFA is the pattern's own language (`pattern_dfa` says so and `Pattern` runs no check), but
  for a conditional or assertion inside a loop that can match the empty string: the `regex` package prunes such
  iterations its own way, so there the DFA is only a superset;
- where the construction does not take them (a lookaround body that looks the other way, an atomic group with a
  loop that matches the empty string, too many states), they are all relaxed instead: lookarounds and
  `\\b`/`\\B` are dropped (they only forbid matches), atomic groups and possessive quantifiers become ordinary
  ones (commitment only forbids matches), a conditional `(?(g)yes|no)` becomes `yes|no`, and `\\w`, `\\d`,
  `\\s` (and their negations) take the characters either package gives them: the two disagree on some (the
  `regex` package counts combining marks as word characters, `re` counts `½`; their Unicode versions differ), so
  a class holds the union of both readings, and a negated class excludes only what both exclude;
- the `regex` package's own syntax, which `re` does not parse, is rewritten first: a conditional on a lookaround
  `(?(?=A)yes|no)` becomes `(?:(?=A)yes|(?!A)no)` (exact); a character class `re` would
  read otherwise (a Unicode property `\\p{..}`, a POSIX class `[[:alpha:]]`, version-1 nested sets and set
  operations `[\\w--\\d]`) becomes the exact set of characters the `regex` package matches with it, listed as
  ranges (so these are exact, not widened); a grapheme `\\X` one or more characters; a recursion `(?R)`, `(?1)`,
  `(?&name)` its group's text inlined two levels deep (fewer if the DFA would be too big), then any run of the
  characters the group can hold (any text where its characters are not plain: `_cutoff`).

Where that is not safe, there is no over-approximation (None) and `Pattern` checks every token exactly: full case
folding (`(?f)`, or `IGNORECASE` in version 1), `WORD`, fuzzy matching `{e<=1}`, branch reset `(?|`, `\\K`, `\\G`,
relative recursion `(?+1)`, and patterns `re` cannot parse even then. Otherwise the `regex` package reads `re`'s
syntax with `re`'s meaning, which is what makes the tree's language a superset.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import regex

from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_parsed, tree_children, tree_items
from genlab.errors import StateLimitError, UnsupportedConstraintError

if sys.version_info >= (3, 11):
    from re import _constants as C
    from re import _parser
else:
    import sre_constants as C
    import sre_parse as _parser

# flags whose bits and meaning `re` and `regex` share
SHARED_FLAGS = regex.IGNORECASE | regex.MULTILINE | regex.DOTALL | regex.VERBOSE | regex.ASCII | regex.UNICODE
_ATOMIC = getattr(C, "ATOMIC_GROUP", None)
_POSSESSIVE = getattr(C, "POSSESSIVE_REPEAT", None)
ANY = r"[\s\S]"
# constructs with no safe widening: the pattern gets no over-approximation
_UNSAFE = re.compile(r"\(\?\||\\[KGmM]|\{\s*[eids]\s*(?:<=?|[+-])|\(\?[a-zA-Z]*[fwrpbeL]|.\(\?[a-zA-Z]*V")
_RECURSION = re.compile(r"\(\?(R|\d+|&\w+|P>\w+)\)")  # relative ones, (?+1) (?-1), are left unsafe
_POSIX = re.compile(r"\[:\^?[a-zA-Z]+:\]")
RECURSION_DEPTH = 2  # a recursion is inlined this deep, then widened to runs of its group's characters


def over_approximation(pattern: str, flags: int = 0, *, max_states: int = 10_000) -> ByteDFA | None:
    """The minimal byte DFA of a regular superset of the strings `regex.fullmatch(pattern, s, flags)` accepts,
    or None where no safe one is found (see the module doc) or its DFA would pass `max_states` (recursions are
    inlined less deep until it fits)."""
    return pattern_dfa(pattern, flags, max_states=max_states)[0]


def pattern_dfa(pattern: str, flags: int = 0, *, max_states: int = 10_000) -> tuple[ByteDFA | None, bool]:
    """(`over_approximation`, whether it is exact: the pattern's own language, nothing relaxed). Lookarounds,
    `\\b`/`\\B` and conditionals are kept as exact assertions where the DFA construction takes them (`\\w`, `\\d`,
    `\\s` then read as the `regex` package reads them); where it does not (a lookaround body that looks the other
    way, too many states), they are dropped as before. `EmptyLanguageError` where the DFA accepts nothing (so
    neither does the pattern)."""
    depths = range(RECURSION_DEPTH, -1, -1) if _RECURSION.search(pattern) else [0]
    for keep in (True, False):
        for depth in depths:
            exact = _Exactness()
            tree = relaxed_tree(pattern, flags, depth, exact if keep else None)
            if tree is None:
                return None, False
            try:
                dfa = compile_parsed(tree, pattern, max_states=max_states, assertions=keep, empty_non_boundary=True)
            except StateLimitError:
                continue
            except UnsupportedConstraintError:  # a construct the DFA construction does not take
                break
            return dfa, keep and exact.exact
    return None, False


@dataclass
class _Exactness:
    """Whether a relaxation has changed nothing yet (`_relax` clears it where it widens)."""

    exact: bool = True


def relaxed_tree(pattern: str, flags: int = 0, depth: int = RECURSION_DEPTH, keep: _Exactness | None = None):
    """`re`'s parse tree of the widened pattern, relaxed in place (see the module doc); None where unsafe. With
    `keep`, assertions and conditionals stay (exactly) and `keep.exact` says whether anything was widened."""
    tree = _widened_tree(pattern, flags, depth)
    if tree is None:
        return None
    version1 = bool(flags & regex.V1) or re.match(r"\(\?V1\)", pattern) is not None
    if keep is not None and (
        _RECURSION.search(pattern)
        or re.search(r"\\X|\(\?[a-zA-Z]*i", pattern)
        or flags & regex.IGNORECASE
        or (version1 and re.search(r"\\[bB]", pattern))
    ):
        # recursion and graphemes are widened; case folding and version 1's word boundaries may read otherwise
        keep.exact = False
    groups: dict[int, object] = {}
    _collect_groups(tree, groups)
    if keep is not None:  # a backreference's stand-in is a copy of its group, relaxed without assertions
        groups = {g: _copy(body) for g, body in groups.items()}
    for group in groups.values():  # first: a backreference inlines its group (which may sit in a lookaround)
        _relax(group, groups, tree.state)
    _relax(tree, groups, tree.state, keep)
    return tree


def _widened_tree(pattern: str, flags: int, depth: int):
    """`re`'s parse tree of the widened pattern, not relaxed; None where unsafe."""
    if flags & ~(SHARED_FLAGS | regex.V0 | regex.V1) or _UNSAFE.search(pattern) or re.search(r"\(\?[+-]\d", pattern):
        return None
    widened = widen(pattern, flags, depth)
    if widened is None:
        return None
    try:
        return _parser.parse(widened, flags & SHARED_FLAGS)
    except (re.error, OverflowError, RecursionError):
        return None


def widen(pattern: str, flags: int = 0, depth: int = RECURSION_DEPTH) -> str | None:
    """`pattern` in `re` syntax for a superset of its language: each character class the `regex` package reads
    otherwise than `re` (a property `\\p{..}`, a POSIX class, version-1 nested sets and set operations) becomes the
    exact set of characters `regex` matches with it, listed as ranges; a grapheme `\\X` one or more characters; a
    recursion its group's text, `depth` levels deep, then runs of its characters. None where that is not safe."""
    version1 = bool(flags & regex.V1)
    head = re.match(r"\(\?V([01])\)", pattern)
    if head:
        version1, pattern = head[1] == "1", pattern[head.end() :]
    ignorecase = bool(flags & regex.IGNORECASE) or re.match(r"\(\?[a-zA-Z]*i", pattern) is not None
    if version1 and ignorecase:  # version 1 folds case fully (ss matches ß): beyond what `re` can say
        return None
    rewritten = _lookaround_conditions(pattern, version1)
    groups = None if rewritten is None else _groups(rewritten, version1)
    if rewritten is None or groups is None:
        return None
    pattern = rewritten
    class_flags = (regex.V1 if version1 else regex.V0) | (regex.IGNORECASE if ignorecase else 0)
    return _widen(pattern, groups, class_flags, version1, depth)


def _widen(text: str, groups: dict, class_flags: int, version1: bool, depth: int) -> str | None:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            kind = text[i + 1]
            if kind in "pP":
                end = _property_end(text, i + 2)
                out.append(_exact_class(text[i:end], class_flags))
                i = end
                continue
            if kind == "X":
                out.append(f"(?:{ANY}+)")
                i += 2
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        if c == "[":
            end = _class_end(text, i, version1)
            body = text[i:end]
            special = re.search(r"\\[pP]|\[:", body) or (version1 and re.search(r"--|&&|\|\||~~|.\[", body[1:]))
            out.append(_exact_class(body, class_flags) if special else body)
            i = end
            continue
        m = _RECURSION.match(text, i)
        if m:
            target = m[1].removeprefix("&").removeprefix("P>")
            if depth < 0:  # `_cutoff`'s reading: the nested match dropped
                out.append("(?:)")
            elif target not in groups:
                out.append(f"(?:{ANY}*)")
            elif depth == 0:
                out.append(_cutoff(target, groups, class_flags, version1))
            else:
                inner = _widen(_uncaptured(groups[target]), groups, class_flags, version1, depth - 1)
                if inner is None:
                    return None
                out.append(f"(?:{inner})")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _cutoff(target: str, groups: dict, class_flags: int, version1: bool) -> str:
    """A recursion into group `target` past the inlining depth: any run of the characters the group's strings can
    hold, or any text where those are not plain. Every character of a nested match comes from one level's own
    items, so the characters of the group's text read with each recursion dropped (and each backreference as its
    group's text) are all of them."""
    text = _widen(_uncaptured(groups[target]), groups, class_flags, version1, -1)
    if text is None or re.search(r"\(\?[a-zA-Z]*x", groups["0"]):  # verbose text reads otherwise alone
        return f"(?:{ANY}*)"
    text = _BACKREFERENCE.sub(
        lambda m: m[0] if m[2] is None and m[1] is None else f"(?:{_uncaptured(groups.get(m[1] or m[2], '(?!)'))})",
        text,
    )
    try:
        tree = _parser.parse(text, 0)
    except (re.error, OverflowError, RecursionError):
        return f"(?:{ANY}*)"
    found = _Characters()
    if not _collect(tree.data, found, lookarounds=False) or not found.plain:
        return f"(?:{ANY}*)"
    items = [f"\\U{c:08x}" for c in sorted(found.singles)]
    items += [f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in sorted(found.ranges)]
    for code in sorted(found.categories):
        name, negated = _CATEGORIES[code]
        items.append("\\" + (name.upper() if negated else name))
    return f"(?:[{''.join(items)}]*)" if items else "(?:)"


_BACKREFERENCE = re.compile(r"\\([1-9]\d*)|\(\?P=(\w+)\)|\\.")  # the last: other escapes, kept


@dataclass
class _Characters:
    """What the items of a `re` parse can match: literals, class ranges, categories (codes); `plain` is False once
    an item matches characters these do not list (any character, a negated class or literal, a backreference) or
    reads under a scoped flag."""

    singles: set[int] = field(default_factory=set)
    ranges: set[tuple[int, int]] = field(default_factory=set)
    categories: set[Any] = field(default_factory=set)
    plain: bool = True


def _collect(items: list, found: _Characters, lookarounds: bool) -> bool:
    """Add what `items` can match to `found` (and, with `lookarounds`, what their lookaround bodies test); False
    where an item is not one this reading knows."""
    for op, av in items:
        if op in (C.LITERAL, C.NOT_LITERAL):
            found.singles.add(av)
            found.plain &= op is C.LITERAL
        elif op is C.IN:
            for kind, value in av:
                if kind is C.LITERAL:
                    found.singles.add(value)
                elif kind is C.RANGE:
                    found.ranges.add(value)
                elif kind is C.CATEGORY and value in _CATEGORIES:
                    found.categories.add(value)
                elif kind is C.NEGATE:
                    found.plain = False
                else:
                    return False
        elif op is C.ANY or op is C.GROUPREF:
            found.plain = False
        elif op is C.AT:
            continue
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, _POSSESSIVE):
            if not _collect(list(av[2]), found, lookarounds):
                return False
        elif op is C.SUBPATTERN:
            found.plain &= not (av[1] or av[2])
            if not _collect(list(av[3]), found, lookarounds):
                return False
        elif op in (C.ASSERT, C.ASSERT_NOT):
            if lookarounds and not _collect(list(av[1]), found, lookarounds):
                return False
        elif op is _ATOMIC:
            if not _collect(list(av), found, lookarounds):
                return False
        elif op is C.BRANCH:
            if not all(_collect(list(branch), found, lookarounds) for branch in av[1]):
                return False
        elif op is C.GROUPREF_EXISTS:
            if not all(_collect(list(b), found, lookarounds) for b in av[1:] if b is not None):
                return False
        else:
            return False
    return True


def character_cells(pattern: str, flags: int = 0) -> np.ndarray | None:
    """Cells of interchangeable characters for the `regex` package's matching of `pattern`: int32 over every code
    point, equal where no item of the pattern tells two characters apart. A character class or category either
    holds both or neither (each range, each `\\w \\d \\s` under both packages' readings), neither is a
    literal, a newline or cased (case folding relates cased characters only), so matching cannot tell them apart
    but through backreferences, which compare with characters of the text (the caller keeps those apart). None
    where the pattern has an item this reading does not cover (graphemes, version 1's word boundaries, ...)."""
    if flags & (regex.V1 | regex.LOCALE | regex.WORD) or re.search(r"\\X|\\L<|\(\?[a-zA-Z]*[VwLf]", pattern):
        return None
    tree = _widened_tree(pattern, flags, RECURSION_DEPTH)
    if tree is None:
        return None
    found = _Characters(singles={ord("\n")})  # newline: `.` and the anchors tell it apart
    if not _collect(tree.data, found, lookarounds=True):
        return None
    singles, ranges = found.singles, found.ranges
    categories = {"w"} | {_CATEGORIES[code][0] for code in found.categories}  # \w: word boundaries
    # Between two consecutive range ends every range holds all characters or none: the stretch is the range part
    # of a cell (two stretches alike stay apart: more cells than needed, never fewer); the categories split them.
    ends = np.unique(np.array([e for lo, hi in ranges for e in (lo, hi + 1)], dtype=np.int64))
    cells = np.searchsorted(ends, np.arange(0x110000), side="right").astype(np.int64)
    for name in sorted(categories):
        for engine in ("re", "regex"):
            cells = cells * 2 + _members(engine, name)
    cells = np.unique(cells, return_inverse=True)[1].reshape(-1).astype(np.int64)
    points = np.array(sorted(singles | set(np.flatnonzero(_cased()).tolist())), dtype=np.int64)
    cells[points] = cells.max() + 1 + np.arange(points.size)
    cells[0xD800:0xE000] = cells.max() + 1  # surrogates are never text: their own cell, never tried
    return cells.astype(np.int32)


@cache
def _cased() -> np.ndarray:
    """The code points with a case mapping (lower, upper, title or fold differs) by Python's tables or the `regex`
    package's, which may be of another Unicode version: case-insensitive matching relates only these."""
    points, chars = _every_character()
    out = np.zeros(0x110000, dtype=bool)
    out[points[[m.start() for m in regex.finditer(r"[\p{CWCM}\p{CWCF}]", chars)]]] = True
    for i, c in enumerate(chars):
        if c.lower() != c or c.upper() != c or c.casefold() != c:
            out[points[i]] = True
    return out


@cache
def _every_character() -> tuple[np.ndarray, str]:
    """Every code point but the surrogates, as an array and as one string."""
    points = np.r_[0:0xD800, 0xE000:0x110000]
    return points, "".join(map(chr, points.tolist()))


@cache
def _exact_class(text: str, class_flags: int) -> str:
    """The `re` class of exactly the characters the `regex` package matches with the one-character item `text`."""
    points, chars = _every_character()
    members = np.zeros(0x110000, dtype=bool)
    try:
        found = [m.start() for m in regex.compile(text, class_flags).finditer(chars)]
    except regex.error:
        return ANY
    members[points[found]] = True
    items = []
    for op, av in _ranges(members):
        lo, hi = (av, av) if op is C.LITERAL else av
        items.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "[" + "".join(items) + "]" if items else "[^\\s\\S]"


def _groups(pattern: str, version1: bool) -> dict | None:
    """The text of each capturing group, by number (as text, and "0"/"R" for the whole pattern) and by name."""
    out: dict[str, str] = {"0": pattern, "R": pattern}
    stack: list[tuple[int, str | None]] = []
    number = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i, version1)
            continue
        if c == "(":
            name: str | None = None
            m = re.match(r"\(\?P?<(\w+)>", pattern[i:])
            if m:
                number += 1
                name = m[1]
                stack.append((i + m.end(), f"{number} {name}"))
                i += m.end()
                continue
            if pattern.startswith("(?", i):
                stack.append((i + 1, None))
            else:
                number += 1
                stack.append((i + 1, str(number)))
            i += 1
            continue
        if c == ")":
            if not stack:
                return None
            start, label = stack.pop()
            if label is not None:
                for key in label.split(" "):
                    out[key] = pattern[start:i]
        i += 1
    return out if not stack else None


# `\b` and `\B` as lookarounds on `\w`: the same full matches; the `regex` package's partial matching reads a
# lookahead at the end of the text as open, where it reads `\b` as the end ("a \bb" would refuse the prefix "a ")
_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"


def boundaries_as_lookarounds(pattern: str, flags: int = 0) -> str:
    """`pattern` with each `\\b` and `\\B` written as lookarounds on `\\w` (see `_WORD_BOUNDARY`), for partial
    matching; unchanged where version 1 or the `WORD` flag gives the boundaries other rules."""
    version1 = bool(flags & regex.V1) or re.match(r"\(\?V1\)", pattern) is not None
    if version1 or flags & regex.WORD or re.search(r"\(\?[a-zA-Z]*w", pattern):
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            pair = pattern[i : i + 2]
            out.append(_WORD_BOUNDARY if pair == "\\b" else _NOT_WORD_BOUNDARY if pair == "\\B" else pair)
            i += 2
        elif c == "[":
            end = _class_end(pattern, i, version1)
            out.append(pattern[i:end])
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _lookaround_conditions(text: str, version1: bool) -> str | None:
    """`text` with each conditional on a lookaround, `(?(?=A)yes|no)`, written as `(?:(?=A)yes|(?!A)no)` (the same
    language; the negated copy captures nothing). None where a conditional is not well formed."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            out.append(text[i : i + 2])
            i += 2
        elif c == "[":
            end = _class_end(text, i, version1)
            out.append(text[i:end])
            i = end
        elif text.startswith("(?(?", i) and text[i + 4 : i + 5] in ("=", "!", "<"):
            cond_end = _close(text, i + 2, version1) + 1
            end = _close(text, i, version1)
            if cond_end <= 0 or end < 0:
                return None
            condition = text[i + 2 : cond_end]
            branches = _top_level_split(text[cond_end:end], version1)
            if len(branches) > 2:
                return None
            yes, no = branches if len(branches) == 2 else (branches[0], "")
            sign = 3 if condition.startswith("(?<") else 2
            flipped = condition[:sign] + ("!" if condition[sign] == "=" else "=") + condition[sign + 1 :]
            parts = [_lookaround_conditions(part, version1) for part in (condition, yes, _uncaptured(flipped), no)]
            if any(part is None for part in parts):
                return None
            a, y, b, o = parts
            out.append(f"(?:{a}{y}|{b}{o})")
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _close(text: str, i: int, version1: bool) -> int:
    """The index of the `)` closing the group that opens at `i`, or -1."""
    depth = 0
    for j, c in _bare(text, i, version1):
        depth += (c == "(") - (c == ")")
        if c == ")" and depth == 0:
            return j
    return -1


def _top_level_split(text: str, version1: bool) -> list[str]:
    """`text` split at its `|` outside groups and classes."""
    parts, start, depth = [], 0, 0
    for j, c in _bare(text, 0, version1):
        depth += (c == "(") - (c == ")")
        if c == "|" and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    return [*parts, text[start:]]


def _bare(text: str, i: int, version1: bool):
    """(index, character) of each character of `text` from `i` that is neither escaped nor inside a class."""
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
        elif c == "[":
            i = _class_end(text, i, version1)
        else:
            yield i, c
            i += 1


def _uncaptured(text: str) -> str:
    """A group's text to inline: its capturing groups made non-capturing, so the numbers of the others stay."""
    text = re.sub(r"\(\?P?<\w+>", "(?:", text)
    return re.sub(r"(?<!\\)\((?!\?)", "(?:", text)


def _property_end(pattern: str, i: int) -> int:
    """The end of a property name after `\\p`: `{...}` or one letter."""
    if i < len(pattern) and pattern[i] == "{":
        close = pattern.find("}", i)
        return len(pattern) if close < 0 else close + 1
    return min(i + 1, len(pattern))


def _class_end(pattern: str, i: int, version1: bool = False) -> int:
    """The index after the character class opening at `i` (a `]` first, or after `^`, is literal; version 1
    nests classes)."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 2
            continue
        if pattern[j] == "[" and version1:
            j = _class_end(pattern, j, version1)
            continue
        posix = _POSIX.match(pattern, j)
        if posix:  # a POSIX class: its `]` is not the class's end
            j = posix.end()
            continue
        if pattern[j] == "]":
            return j + 1
        j += 1
    return len(pattern)


def _collect_groups(items, groups: dict[int, object]) -> None:
    for op, av in tree_items(items):
        if op is C.SUBPATTERN:
            if av[0] is not None:
                groups[av[0]] = av[3]
            _collect_groups(av[3], groups)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT) or op is _POSSESSIVE:
            _collect_groups(av[2], groups)
        elif op is C.BRANCH:
            for alt in av[1]:
                _collect_groups(alt, groups)
        elif op is _ATOMIC:
            _collect_groups(av, groups)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            _collect_groups(av[1], groups)
        elif op is C.GROUPREF_EXISTS:
            for part in av[1:]:
                if part is not None:
                    _collect_groups(part, groups)


def _relax(tree, groups: dict[int, object], state, keep: _Exactness | None = None) -> None:
    """Rewrite the items of `tree` (a `SubPattern`) in place into constructs `compile_parsed` takes. With `keep`,
    lookarounds, word boundaries and conditionals stay, and categories take the `regex` package's reading (exact);
    a negative lookaround whose body had to be widened is dropped, and `keep.exact` cleared wherever the result
    is wider than the pattern."""
    ascii_only = bool(state.flags & C.SRE_FLAG_ASCII)
    items = tree_items(tree)
    out: list[Any] = []
    for op, av in items:
        if op in (C.ASSERT, C.ASSERT_NOT):
            if keep is not None:
                body = _Exactness()
                _relax(av[1], groups, state, body)
                if body.exact or op is C.ASSERT:  # a positive lookaround may test a superset of its body
                    keep.exact &= body.exact
                    out.append((op, av))
                    continue
                keep.exact = False
            continue
        if op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
            if keep is not None:
                out.append(_boundary(av is C.AT_BOUNDARY, state))
            continue
        if op is _ATOMIC or op is _POSSESSIVE:
            committed = None if keep is None else _Exactness()
            _relax(av if op is _ATOMIC else av[2], groups, state, committed)
            if committed is not None and committed.exact:  # commitment is exact only over the group's own language
                out.append((op, av))
                continue
            if keep is not None:
                keep.exact = False
            out.append((C.SUBPATTERN, (None, 0, 0, av)) if op is _ATOMIC else (C.MAX_REPEAT, av))
            continue
        if op is C.GROUPREF:
            if keep is not None:
                keep.exact = False
            out.append((C.SUBPATTERN, (None, 0, 0, groups[av])))
            continue
        if op is C.CATEGORY and not ascii_only:
            op, av = C.IN, list(_category_items(av, widest=True, exact=keep is not None))
        elif op is C.IN and not ascii_only and any(o is C.CATEGORY for o, _ in av):
            negated = bool(av) and av[0][0] is C.NEGATE
            av = [(o, a) for o, a in av if o is not C.CATEGORY] + [
                item
                for o, a in av
                if o is C.CATEGORY
                for item in _category_items(a, widest=not negated, exact=keep is not None)
            ]
            if negated:  # NEGATE stays first
                av.remove((C.NEGATE, None))
                av.insert(0, (C.NEGATE, None))
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            if keep is not None and av[2].getwidth()[0] == 0 and _tests_context(av[2]):
                # the `regex` package's backtracking prunes empty iterations its own way, and a condition or an
                # assertion inside one can then read otherwise than every path would: not exact
                keep.exact = False
            _relax(av[2], groups, state, keep)
        elif op is C.SUBPATTERN:
            _relax(av[3], groups, state, keep)
        elif op is C.BRANCH:
            for alt in av[1]:
                _relax(alt, groups, state, keep)
        elif op is C.GROUPREF_EXISTS:
            yes, no = av[1], av[2] if av[2] is not None else _parser.SubPattern(state)
            _relax(yes, groups, state, keep)
            _relax(no, groups, state, keep)
            if keep is None:
                op, av = C.BRANCH, (None, [yes, no])
        out.append((op, av))
    if isinstance(tree, _parser.SubPattern):
        tree.data[:] = out
    else:
        tree[:] = out


def _tests_context(items) -> bool:
    """Whether the items hold a conditional, a lookaround or a word boundary."""
    for op, av in tree_items(items):
        if op in (C.GROUPREF_EXISTS, C.ASSERT, C.ASSERT_NOT) or (
            op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY)
        ):
            return True
        if any(_tests_context(child) for child in tree_children(op, av)):
            return True
    return False


def _boundary(word_boundary: bool, state) -> tuple:
    """`\\b` (or `\\B`) as the `regex` package reads it: lookarounds on its `\\w`, `(?<=\\w)(?!\\w)|(?<!\\w)(?=\\w)`
    (`(?<=\\w)(?=\\w)|(?<!\\w)(?!\\w)`), a parse item."""
    items: list[Any] = (
        [(C.CATEGORY, C.CATEGORY_WORD)]
        if state.flags & C.SRE_FLAG_ASCII
        else [(C.IN, list(_category_items(C.CATEGORY_WORD, True, True)))]
    )
    word = _parser.SubPattern(state, items)
    after = (C.ASSERT_NOT if word_boundary else C.ASSERT, (1, word))
    first: list[Any] = [(C.ASSERT, (-1, word)), after]
    second: list[Any] = [(C.ASSERT_NOT, (-1, word)), _flip(after)]
    one, two = _parser.SubPattern(state, first), _parser.SubPattern(state, second)
    return (C.BRANCH, (None, [one, two]))


def _flip(item: tuple) -> tuple:
    op, av = item
    return (C.ASSERT if op is C.ASSERT_NOT else C.ASSERT_NOT, av)


def _copy(items):
    """A copy of a parse (sub)tree whose lists can be rewritten without touching the original (the op constants
    are shared: they are compared by identity)."""
    if isinstance(items, _parser.SubPattern):
        return _parser.SubPattern(items.state, [_copy(item) for item in items.data])
    if isinstance(items, list):
        return [_copy(item) for item in items]
    if isinstance(items, tuple):
        return tuple(_copy(part) for part in items)
    return items


_CATEGORIES = {  # category -> (the positive class, negated)
    C.CATEGORY_WORD: ("w", False),
    C.CATEGORY_NOT_WORD: ("w", True),
    C.CATEGORY_DIGIT: ("d", False),
    C.CATEGORY_NOT_DIGIT: ("d", True),
    C.CATEGORY_SPACE: ("s", False),
    C.CATEGORY_NOT_SPACE: ("s", True),
}


@cache
def _members(engine: str, name: str) -> np.ndarray:
    """Which code points `\\<name>` matches under `re` or the `regex` package (bool over 0..0x10FFFF; surrogates
    False)."""
    points, text = _every_character()
    module: Any = regex if engine == "regex" else re
    out = np.zeros(0x110000, dtype=bool)
    out[points[[m.start() for m in module.finditer(f"\\{name}", text)]]] = True
    return out


@cache
def _category_items(code, widest: bool, exact: bool = False) -> tuple:
    """A category's code points under both packages as `re` class items: all that either matches (`widest`), or
    those both match; with `exact`, those the `regex` package matches (computed once per category and reading)."""
    name, negated = _CATEGORIES[code]
    a, b = _members("re", name), _members("regex", name)
    if negated:
        a, b = ~a, ~b
    both = b.copy() if exact else (a | b) if widest else (a & b)
    both[0xD800:0xE000] = False
    return tuple(_ranges(both))


def _ranges(members: np.ndarray) -> list:
    """`re` class items for the True runs of `members`."""
    edges = np.flatnonzero(np.diff(np.r_[0, members.astype(np.int8), 0]))
    return [
        (C.LITERAL, int(lo)) if lo == hi - 1 else (C.RANGE, (int(lo), int(hi) - 1))
        for lo, hi in zip(edges[::2], edges[1::2])
    ]
