"""A regular over-approximation of a `regex`-package pattern: a DFA that accepts every full match, and more.

`Pattern` (backreferences, lookarounds, recursion, ...) has no exact automaton, but most of its language is
regular, and a DFA of a superset of it discards most tokens cheaply (a mask, a numba step) before the exact
`regex` check runs. The superset comes from `re`'s parse tree of the pattern, relaxed:

- a backreference matches some string of its group's language (not necessarily the one the group matched);
- lookarounds and `\\b`/`\\B` are dropped (they only forbid matches);
- atomic groups and possessive quantifiers become ordinary ones (commitment only forbids matches);
- a conditional `(?(g)yes|no)` becomes `yes|no`;
- `\\w`, `\\d`, `\\s` (and their negations) take the characters either package gives them: the two disagree on
  some (the `regex` package counts combining marks as word characters, `re` counts `½`; their Unicode versions
  differ), so a class holds the union of both readings, and a negated class excludes only what both exclude;
- the `regex` package's own syntax, which `re` does not parse, is widened first: a Unicode property `\\p{..}`
  (or a character class holding one) becomes any character, a grapheme `\\X` one or more, and a recursion
  `(?R)`, `(?1)`, `(?&name)` any text.

Where that is not safe, there is no over-approximation (None) and `Pattern` checks every token exactly, as before:
flags `re` does not share (`V1` set operations, full case folding, `WORD`, fuzzy matching `{e<=1}`, POSIX classes
`[[:alpha:]]`, branch reset `(?|`, `\\K`, `\\G`), and patterns `re` cannot parse at all. In version 0 (the default)
the `regex` package accepts `re`'s syntax with `re`'s meaning, which is what makes the tree's language a superset.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from typing import Any

import numpy as np
import regex

from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_parsed, tree_items
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
_UNSAFE = re.compile(r"\(\?\||\\[KGmM]|\{\s*[eids]\s*(?:<=?|[+-])|\[:\^?[a-z]+:\]|\(\?[a-zA-Z]*[VfwrpbeL]")
_RECURSION = re.compile(r"\(\?(?:R|[+-]?\d+|&\w+|P>\w+)\)")


def over_approximation(pattern: str, flags: int = 0, *, max_states: int = 10_000) -> ByteDFA | None:
    """The minimal byte DFA of a regular superset of the strings `regex.fullmatch(pattern, s, flags)` accepts,
    or None where no safe one is found (see the module doc) or its DFA would pass `max_states`."""
    tree = relaxed_tree(pattern, flags)
    if tree is None:
        return None
    try:
        return compile_parsed(tree, pattern, max_states=max_states)
    except (StateLimitError, UnsupportedConstraintError):  # too big, or a construct this relaxation does not know
        return None


def relaxed_tree(pattern: str, flags: int = 0):
    """`re`'s parse tree of the widened pattern, relaxed in place (see the module doc); None where unsafe."""
    if flags & ~SHARED_FLAGS or _UNSAFE.search(pattern):
        return None
    widened = widen(pattern)
    try:
        tree = _parser.parse(widened, flags & SHARED_FLAGS)
    except (re.error, OverflowError, RecursionError):
        return None
    groups: dict[int, object] = {}
    _collect_groups(tree, groups)
    for group in groups.values():  # first: a backreference inlines its group (which may sit in a lookaround)
        _relax(group, groups, tree.state)
    _relax(tree, groups, tree.state)
    return tree


def widen(pattern: str) -> str:
    """`pattern` with the `regex` package's own escapes and recursions replaced by `re` syntax for a superset:
    `\\p{..}`/`\\P{..}` (and any character class holding one) by any character, `\\X` by one or more characters, a
    recursion by any text."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            kind = pattern[i + 1]
            if kind in "pP":
                out.append(ANY)
                i = _property_end(pattern, i + 2)
                continue
            if kind == "X":
                out.append(f"(?:{ANY}+)")
                i += 2
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            end = _class_end(pattern, i)
            body = pattern[i:end]
            out.append(ANY if re.search(r"\\[pPX]", body) else body)
            i = end
            continue
        m = _RECURSION.match(pattern, i)
        if m:
            out.append(f"(?:{ANY}*)")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _property_end(pattern: str, i: int) -> int:
    """The end of a property name after `\\p`: `{...}` or one letter."""
    if i < len(pattern) and pattern[i] == "{":
        close = pattern.find("}", i)
        return len(pattern) if close < 0 else close + 1
    return min(i + 1, len(pattern))


def _class_end(pattern: str, i: int) -> int:
    """The index after the character class opening at `i` (`re`'s rules: a `]` first, or after `^`, is literal)."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 2
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


def _relax(tree, groups: dict[int, object], state) -> None:
    """Rewrite the items of `tree` (a `SubPattern`) in place into constructs `compile_parsed` takes."""
    ascii_only = bool(state.flags & C.SRE_FLAG_ASCII)
    items = tree_items(tree)
    out: list[Any] = []
    for op, av in items:
        if op in (C.ASSERT, C.ASSERT_NOT):
            continue
        if op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
            continue
        if op is C.GROUPREF:
            out.append((C.SUBPATTERN, (None, 0, 0, groups[av])))
            continue
        if op is _ATOMIC:
            _relax(av, groups, state)
            out.append((C.SUBPATTERN, (None, 0, 0, av)))
            continue
        if op is _POSSESSIVE:
            op = C.MAX_REPEAT
        if op is C.CATEGORY and not ascii_only:
            op, av = C.IN, _ranges(_category(av, widest=True))
        elif op is C.IN and not ascii_only and any(o is C.CATEGORY for o, _ in av):
            negated = bool(av) and av[0][0] is C.NEGATE
            av = [(o, a) for o, a in av if o is not C.CATEGORY] + [
                item for o, a in av if o is C.CATEGORY for item in _ranges(_category(a, widest=not negated))
            ]
            if negated:  # NEGATE stays first
                av.remove((C.NEGATE, None))
                av.insert(0, (C.NEGATE, None))
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            _relax(av[2], groups, state)
        elif op is C.SUBPATTERN:
            _relax(av[3], groups, state)
        elif op is C.BRANCH:
            for alt in av[1]:
                _relax(alt, groups, state)
        elif op is C.GROUPREF_EXISTS:
            yes, no = av[1], av[2] if av[2] is not None else _parser.SubPattern(state)
            _relax(yes, groups, state)
            _relax(no, groups, state)
            op, av = C.BRANCH, (None, [yes, no])
        out.append((op, av))
    if isinstance(tree, _parser.SubPattern):
        tree.data[:] = out
    else:
        tree[:] = out


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
    points = np.r_[0:0xD800, 0xE000:0x110000]
    text = "".join(map(chr, points.tolist()))
    module: Any = regex if engine == "regex" else re
    out = np.zeros(0x110000, dtype=bool)
    out[points[[m.start() for m in module.finditer(f"\\{name}", text)]]] = True
    return out


def _category(code, widest: bool) -> np.ndarray:
    """A category's code points under both packages: all that either matches (`widest`), or those both match."""
    name, negated = _CATEGORIES[code]
    a, b = _members("re", name), _members("regex", name)
    if negated:
        a, b = ~a, ~b
    both = (a | b) if widest else (a & b)
    both[0xD800:0xE000] = False
    return both


def _ranges(members: np.ndarray) -> list:
    """`re` class items for the True runs of `members`."""
    edges = np.flatnonzero(np.diff(np.r_[0, members.astype(np.int8), 0]))
    return [
        (C.LITERAL, int(lo)) if lo == hi - 1 else (C.RANGE, (int(lo), int(hi) - 1))
        for lo, hi in zip(edges[::2], edges[1::2])
    ]
