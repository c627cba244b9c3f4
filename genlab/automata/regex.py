"""Python regular expressions as minimal byte-level DFAs: the strings `re.fullmatch(pattern, s)` accepts, as UTF-8.

Pipeline: `re`'s own parser validates (its errors become `InvalidPatternError`) and gives the tree, so
flags, escapes and Unicode classes mean exactly what they mean to `re`; constructs this compiler does not
translate are refused with their offset in the pattern; the tree becomes a byte NFA (Thompson construction, each
character item a UTF-8 byte automaton built from its code-point ranges, `utf8.py` and `charclass.py`); subset
construction gives a DFA (`determinize.py`, anchors included); `minimize.py` prunes, minimises and numbers it.

Supported: literals, classes, `.`, categories, alternation, groups, inline and scoped flags (`i`, `s`, `m`, `a`,
`x`, `u`), greedy and lazy quantifiers (laziness does not change what a full match accepts), and the anchors
`^ $ \\A \\Z` anywhere, with `re`'s meaning (`$` also matches before a final "\\n"; `(?m)` makes `^ $` line anchors).
With `assertions` (what `compile_regex` passes; grammar terminals do not, a lexeme's lookahead would look past
it): lookaheads and lookbehinds with regular bodies, `\\b` and `\\B` (as lookarounds on `\\w`), and conditionals
on a group `(?(1)yes|no)`, exactly (`assertions.py`). Refused: backreferences, atomic groups and possessive
quantifiers, and lookaround bodies that would look the other way (a lookbehind, `\\b` or `^` inside a lookahead,
a lookahead or `$` inside a lookbehind, a conditional inside either).
"""

from __future__ import annotations

import re
import sys

import numpy as np

from genlab.automata.assertions import (
    IF_GROUP,
    IF_NOT_GROUP,
    LOOKAHEAD,
    LOOKBEHIND,
    NOT_LOOKAHEAD,
    NOT_LOOKBEHIND,
    SET_GROUP,
    Body,
    determinize_assertions,
)
from genlab.automata.charclass import char_set
from genlab.automata.determinize import (
    AT_END,
    AT_END_OR_FINAL_NEWLINE,
    AT_LINE_END,
    AT_LINE_START,
    AT_START,
    ByteNFA,
    determinize,
)
from genlab.automata.dfa import ByteDFA
from genlab.automata.minimize import minimal_dfa
from genlab.automata.utf8 import ACCEPT, utf8_automaton
from genlab.errors import EmptyLanguageError, InvalidPatternError, StateLimitError, UnsupportedConstraintError

if sys.version_info >= (3, 11):
    from re import _constants as C
    from re import _parser
else:
    import sre_constants as C
    import sre_parse as _parser

CHAR_ITEMS = frozenset({C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN, C.CATEGORY})  # one character each
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT}
_POSSESSIVE = getattr(C, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(C, "ATOMIC_GROUP", None)


NFA_STATES_PER_DFA_STATE = 10
# `re` before Python 3.14 lets `\\B` match nowhere in an empty text (the `regex` package lets it match there)
RE_EMPTY_NON_BOUNDARY = re.fullmatch(r"\\B", "") is not None


def tree_items(tree) -> list:
    """The (op, argument) items of a parse tree: a `SubPattern`'s own list (its indexing is a Python method per
    item, a cost a 10,000-character pattern feels), or a list of them."""
    return tree.data if isinstance(tree, _parser.SubPattern) else list(tree)


def compile_regex(pattern: str, *, max_states: int = 10_000) -> ByteDFA:
    """The minimal byte DFA of the UTF-8 encodings of the strings `s` with `re.fullmatch(pattern, s)`.

    Raises `InvalidPatternError` (what `re` rejects), `UnsupportedConstraintError` (no finite automaton, or one
    this compiler does not build; the construct and its offset are named), `EmptyLanguageError` (nothing
    matches) and `StateLimitError` (the NFA or DFA would exceed `max_states` states; raised while building,
    before anything huge exists).
    """
    return compile_parsed(parse_regex(pattern), pattern, max_states=max_states, assertions=True)


def parse_regex(pattern: str):
    """`re`'s parse tree of `pattern` (a `SubPattern`), its errors as `InvalidPatternError`. The tree is what
    `re.compile` would compile; its code generator's own errors (a look-behind's width) are checked too."""
    if not isinstance(pattern, str):
        raise TypeError(f"compile_regex takes a str pattern, not {type(pattern).__name__}")
    try:
        tree = _parser.parse(pattern, 0)
        if "(?<" in pattern:  # a look-behind: only `re`'s code generator checks its width
            re.compile(pattern)
    except re.error as e:
        where = f" at position {e.pos}" if e.pos is not None else ""
        err = InvalidPatternError(f"invalid regular expression {pattern!r}: {e.msg}{where}")
        err.pattern, err.pos, err.msg = pattern, e.pos, e.msg
        raise err from e
    return tree


def compile_parsed(
    tree,
    pattern: str,
    *,
    max_states: int = 10_000,
    assertions: bool = False,
    empty_non_boundary: bool = RE_EMPTY_NON_BOUNDARY,
) -> ByteDFA:
    """`compile_regex` from a parse tree of `pattern` (from `parse_regex`, or a part of one; `pattern` locates
    refused constructs and names the source in errors). `assertions`: compile lookarounds, `\\b`, `\\B` and
    conditionals (else refuse them); `empty_non_boundary`: whether `\\B` matches in the empty text (`re`'s answer
    by default; the `regex` package's is True)."""
    flags = tree.state.flags
    _refuse_unsupported(tree, pattern, bool(flags & C.SRE_FLAG_VERBOSE), assertions)
    source = f"regex {pattern!r}"
    chain = _ascii_chain(tree, flags)
    if chain is not None:
        return chain
    # NFA states are cheap and many collapse in the DFA (one Unicode \w is ~310 of them): allow ten per DFA state.
    builder = _Thompson(NFA_STATES_PER_DFA_STATE * max_states, source, empty_non_boundary)
    dfa = builder.dfa(builder.build(tree, flags), max_states)
    if dfa is None:
        raise EmptyLanguageError(f"{source} matches no string (no valid UTF-8 text satisfies it)")
    return dfa


def _ascii_chain(tree, flags: int) -> ByteDFA | None:
    """The minimal DFA of a pattern that is a fixed sequence of ASCII character sets (a keyword such as
    `[Ss][Ee][Ll]...` or a literal), built directly; None for anything else (the general pipeline takes it).

    Such a language's minimal DFA is the chain itself: states differ by how many characters are left.
    """
    items = tree_items(tree)
    if not items or len(items) > 256:
        return None
    sets = []
    for op, av in items:
        if op not in CHAR_ITEMS:
            return None
        ranges = char_set(op, av, flags)
        if not ranges or ranges[-1][1] >= 0x80:
            return None
        sets.append(ranges)
    n = len(sets)
    table = np.full((n + 1, 256), -1, np.int32)
    for i, ranges in enumerate(sets):
        for lo, hi in ranges:
            table[i, lo : hi + 1] = i + 1
    accepting = np.zeros(n + 1, np.bool_)
    accepting[n] = True
    return ByteDFA(table, accepting, 0)


class _Thompson:
    """Builds the byte NFA right to left: `_seq(items, flags, nxt)` reads `items`, then goes on to state `nxt`."""

    def __init__(self, max_states: int, source: str, empty_non_boundary: bool = RE_EMPTY_NON_BOUNDARY):
        self.nfa = ByteNFA()
        self.max_states = max_states
        self.source = source
        self.empty_non_boundary = empty_non_boundary
        self.group_bits: dict[int, int] = {}  # groups a conditional tests -> their bit in a thread
        self.atomic_exit: int | None = None  # inside an atomic group: its exit state
        self._bodies: dict[tuple, int] = {}  # (direction, body key) -> index in nfa.ahead / nfa.behind

    def build(self, tree, flags: int) -> ByteNFA:
        for group in sorted(_conditional_groups(tree)):
            self.group_bits[group] = len(self.group_bits)
        self.nfa.final = self._new()
        self.nfa.start = self._seq(tree, flags, self.nfa.final)
        return self.nfa

    def dfa(self, nfa: ByteNFA, max_states: int) -> ByteDFA | None:
        """The minimal DFA of `nfa` (None if its language is empty)."""
        if any(nfa.asserts) or nfa.priority:
            table, accepting = determinize_assertions(nfa, max_states, self.source)
        else:
            table, accepting = determinize(nfa, max_states, self.source)
        return minimal_dfa(table, accepting)

    def _new(self, count: int = 1) -> int:
        if len(self.nfa.eps) + count > self.max_states:
            raise StateLimitError(
                f"{self.source}: the NFA needs more than {self.max_states} states "
                f"({NFA_STATES_PER_DFA_STATE} x max_states); "
                "raise max_states or simplify the pattern (large counted repeats multiply states)"
            )
        return self.nfa.add_states(count)

    def _split(self, *targets: int) -> int:
        """A state with epsilon moves to `targets`, in the order a backtracking engine tries them."""
        s = self._new()
        self.nfa.eps[s].extend(targets)
        if self.atomic_exit is not None and len(targets) > 1:
            self.nfa.priority[s] = self.atomic_exit
        return s

    def _seq(self, items, flags: int, nxt: int) -> int:
        for op, av in reversed(tree_items(items)):
            nxt = self._item(op, av, flags, nxt)
        return nxt

    def _item(self, op, av, flags: int, nxt: int) -> int:
        if op in CHAR_ITEMS:
            return self._chars(char_set(op, av, flags), nxt)
        if op is C.BRANCH:
            return self._split(*(self._seq(alt, flags, nxt) for alt in av[1]))
        if op is C.SUBPATTERN:
            group, add, drop, body = av
            if add & _parser.TYPE_FLAGS:  # re._compiler._combine_flags: a type flag replaces the others
                flags &= ~_parser.TYPE_FLAGS
            if group in self.group_bits:  # a conditional tests it: the thread notes that it matched
                nxt = self._assert(SET_GROUP, self.group_bits[group], nxt)
            return self._seq(body, (flags | add) & ~drop, nxt)
        if op in _REPEATS:
            lo, hi, body = av
            return self._repeat(lo, hi, body, flags, nxt, op is C.MIN_REPEAT)
        if op is _ATOMIC:
            return self._atomic(av, flags, nxt)
        if op is _POSSESSIVE:  # X*+ is (?>X*)
            return self._atomic([(C.MAX_REPEAT, av)], flags, nxt)
        if op is C.AT:
            if av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
                return self._boundary(av is C.AT_BOUNDARY, flags, nxt)
            return self._anchor(av, flags, nxt)
        if op is C.ASSERT or op is C.ASSERT_NOT:
            direction, body = av
            negative = op is C.ASSERT_NOT
            if direction == 1:
                return self._assert(NOT_LOOKAHEAD if negative else LOOKAHEAD, self._body(1, body, flags), nxt)
            return self._assert(NOT_LOOKBEHIND if negative else LOOKBEHIND, self._body(-1, body, flags), nxt)
        if op is C.GROUPREF_EXISTS:
            group, yes, no = av
            bit = self.group_bits[group]
            s = self._new()
            self.nfa.asserts[s].append((IF_GROUP, bit, self._seq(yes, flags, nxt)))
            self.nfa.asserts[s].append((IF_NOT_GROUP, bit, nxt if no is None else self._seq(no, flags, nxt)))
            return s
        raise AssertionError(f"unexpected regex node {op}")  # _refuse_unsupported has vetted the tree

    def _atomic(self, body, flags: int, nxt: int) -> int:
        """An atomic group: its choice points know its exit (`assertions.py` keeps only its first match)."""
        group_exit = self._new()
        self.nfa.eps[group_exit].append(nxt)
        outer, self.atomic_exit = self.atomic_exit, group_exit
        entry = self._seq(body, flags, group_exit)
        self.atomic_exit = outer
        return entry

    def _assert(self, kind: int, arg: int, nxt: int) -> int:
        s = self._new()
        self.nfa.asserts[s].append((kind, arg, nxt))
        return s

    def _body(self, direction: int, body, flags: int) -> int:
        """The index of a lookaround body's automaton (L(body)Σ* ahead, Σ*L(body) behind), built once per body."""
        key = (direction, _tree_key(body), flags)
        found = self._bodies.get(key)
        if found is not None:
            return found
        sub = _Thompson(self.max_states, self.source, self.empty_non_boundary)
        nfa = sub.nfa
        nfa.final = sub._new()
        loop = sub._new()
        anything = sub._chars(char_set(C.ANY, None, C.SRE_FLAG_DOTALL), loop)
        if direction == 1:
            nfa.eps[loop].extend((anything, nfa.final))
            nfa.start = sub._seq(body, flags, loop)
        else:
            nfa.eps[loop].extend((anything, sub._seq(body, flags, nfa.final)))
            nfa.start = loop
        bodies = self.nfa.ahead if direction == 1 else self.nfa.behind
        bodies.append(Body(sub.dfa(nfa, self.max_states // NFA_STATES_PER_DFA_STATE)))
        found = self._bodies[key] = len(bodies) - 1
        return found

    def _boundary(self, word_boundary: bool, flags: int, nxt: int) -> int:
        """`\\b` as `(?<=\\w)(?!\\w)|(?<!\\w)(?=\\w)`; `\\B` as `(?<=\\w)(?=\\w)|(?<!\\w)(?!\\w)`, the latter
        also needing a character on some side where the engine's `\\B` does not match in the empty text."""
        word = [(C.CATEGORY, C.CATEGORY_WORD)]
        after, before = self._body(1, word, flags), self._body(-1, word, flags)
        if word_boundary:
            one = self._assert(LOOKBEHIND, before, self._assert(NOT_LOOKAHEAD, after, nxt))
            two = self._assert(NOT_LOOKBEHIND, before, self._assert(LOOKAHEAD, after, nxt))
            return self._split(one, two)
        one = self._assert(LOOKBEHIND, before, self._assert(LOOKAHEAD, after, nxt))
        if not self.empty_non_boundary:
            anything = [(C.ANY, None)]
            flags |= C.SRE_FLAG_DOTALL
            nxt = self._split(
                self._assert(LOOKBEHIND, self._body(-1, anything, flags), nxt),
                self._assert(LOOKAHEAD, self._body(1, anything, flags), nxt),
            )
        two = self._assert(NOT_LOOKBEHIND, before, self._assert(NOT_LOOKAHEAD, after, nxt))
        return self._split(one, two)

    def _chars(self, ranges, nxt: int) -> int:
        """A state reading one code point of `ranges` (a copy of its UTF-8 automaton), then going to `nxt`."""
        nodes = utf8_automaton(ranges)
        base = self._new(len(nodes))
        edges = self.nfa.edges
        if len(nodes) == 1:  # one byte per character (ASCII, or a class of single bytes): every edge accepts
            edges[base] = [(lo, hi, nxt) for lo, hi, _ in nodes[0]]
            return base
        for i, node in enumerate(nodes):
            edges[base + i] = [(lo, hi, nxt if c == ACCEPT else base + c) for lo, hi, c in node]
        return base

    def _repeat(self, lo: int, hi: int, body, flags: int, nxt: int, lazy: bool = False) -> int:
        """`body` `lo` to `hi` times; the epsilon moves try once more first, or (`lazy`) leaving first."""
        if body.getwidth() == (0, 0):  # zero-width bodies (anchors, empty groups): once is as good as many
            lo, hi = min(lo, 1), min(hi, 1)
        if hi == C.MAXREPEAT:
            loop = self._new()
            again = self._seq(body, flags, loop)
            self.nfa.eps[loop].extend((nxt, again) if lazy else (again, nxt))
            if self.atomic_exit is not None:
                self.nfa.priority[loop] = self.atomic_exit
            cur = loop
        else:
            # optional copies nested as (x(x(x)?)?)?, so a closure holds one entry and the exit, not all of them
            cur = nxt
            for _ in range(hi - lo):
                again = self._seq(body, flags, cur)
                cur = self._split(nxt, again) if lazy else self._split(again, nxt)
        for _ in range(lo):
            cur = self._seq(body, flags, cur)
        return cur

    def _anchor(self, code, flags: int, nxt: int) -> int:
        multiline = bool(flags & C.SRE_FLAG_MULTILINE)
        kind = {
            C.AT_BEGINNING: AT_LINE_START if multiline else AT_START,
            C.AT_BEGINNING_STRING: AT_START,
            C.AT_END: AT_LINE_END if multiline else AT_END_OR_FINAL_NEWLINE,
            C.AT_END_STRING: AT_END,
        }[code]
        s = self._new()
        self.nfa.anchors[s].append((kind, nxt))
        return s


# --- refusing what no DFA can do, with the place it is written ------------------------------------------------

_ASSERTS = {
    (C.ASSERT, 1): ("(?=", "lookahead (?=...)"),
    (C.ASSERT_NOT, 1): ("(?!", "negative lookahead (?!...)"),
    (C.ASSERT, -1): ("(?<=", "lookbehind (?<=...)"),
    (C.ASSERT_NOT, -1): ("(?<!", "negative lookbehind (?<!...)"),
}


def _refuse_unsupported(tree, pattern: str, verbose: bool, assertions: bool) -> None:
    """Raise `UnsupportedConstraintError` for the first construct this compiler does not build, with its offset."""
    found = _Refusals(assertions).first(tree)
    if found is None:
        return
    kind, index, name, reason = found
    places = _scan(pattern, verbose).get(kind, [])
    pos, text = places[index] if index < len(places) else (None, "")
    if kind in ("backreference", "possessive"):
        name = f"{name} {text}"
    where = f"at offset {pos}" if pos is not None else "(offset not found)"
    err = UnsupportedConstraintError(f"regex {pattern!r}: {name} {where} is not supported ({reason})")
    err.pattern, err.pos, err.construct = pattern, pos, name
    raise err


_NO_MEMORY = "a finite automaton has no memory of what a group matched; genlab.Pattern takes it, as a DFA times a check"
_NO_ASSERTIONS = "this compiler is building a terminal, whose lookarounds would look past the lexeme"
_COMMITMENT = "an atomic group is compiled where its first match depends on its own choices alone"
_NAMES = {
    C.AT: "an anchor or word boundary",
    C.ASSERT: "a lookaround",
    C.ASSERT_NOT: "a lookaround",
    C.GROUPREF: "a backreference",
    C.GROUPREF_EXISTS: "a conditional",
    _ATOMIC: "an atomic group",
    _POSSESSIVE: "a possessive quantifier",
}
_OTHER_WAY = (
    "a lookaround's body is compiled on its own and may not look the other way; genlab.Pattern takes it, as a "
    "DFA times a check"
)


class _Refusals:
    """Walks a parse tree in text order, counting each kind of construct `_scan` locates, to find the first one
    this compiler refuses: `(scan kind, how many of that kind come before it, display name, why)`."""

    def __init__(self, assertions: bool):
        self.assertions = assertions
        self.seen: dict[str, int] = {}
        self.conditioned: set[int] = set()
        self.captured_inside: set[int] = set()  # groups inside a lookaround

    def first(self, tree):
        self.conditioned = _conditional_groups(tree)
        _groups_inside_lookarounds(tree, False, self.captured_inside)
        return self._walk(tree, 0, None)

    def _uncommitted(self, items) -> str | None:
        """Why an atomic group's body is not compiled (None where it is): its first match is built from its own
        choices, so it may hold characters, alternatives, groups and loops that cannot match the empty string."""
        for op, av in tree_items(items):
            if op in CHAR_ITEMS:
                continue
            if op is C.BRANCH:
                why = next((w for alt in av[1] if (w := self._uncommitted(alt))), None)
            elif op is C.SUBPATTERN:
                why = "a group a conditional tests" if av[0] in self.conditioned else self._uncommitted(av[3])
            elif op in _REPEATS:
                why = "a loop that can match the empty string" if av[2].getwidth()[0] == 0 else None
                why = why or self._uncommitted(av[2])
            else:
                why = f"{_NAMES.get(op, str(op))} inside (only characters, groups, alternatives and loops are)"
            if why:
                return f"{_COMMITMENT}: {why}"
        return None

    def _count_inside(self, items) -> None:
        """Count the located constructs of `items`, in text order (a body this walk does not enter)."""
        for op, av in tree_items(items):
            if op in (C.ASSERT, C.ASSERT_NOT):
                self._count(_ASSERTS[op, av[0]][0])
            elif op is C.GROUPREF_EXISTS:
                self._count("(?(")
            elif op is _ATOMIC:
                self._count("(?>")
            elif op is C.GROUPREF:
                self._count("backreference")
            elif op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
                self._count("\\b" if av is C.AT_BOUNDARY else "\\B")
            for child in tree_children(op, av):
                self._count_inside(child)
            if op is _POSSESSIVE:
                self._count("possessive")

    def _count(self, kind: str) -> int:
        index = self.seen.get(kind, 0)
        self.seen[kind] = index + 1
        return index

    def _walk(self, items, inside: int, around):
        """`inside`: 0, or the direction of the lookaround the items are in, `around` its (kind, index, name)."""
        for op, av in tree_items(items):
            found = None
            if op is _POSSESSIVE:
                self._count_inside(av[2])  # the quantifier is written after its body
                index = self._count("possessive")
                why = _NO_ASSERTIONS if not self.assertions else self._uncommitted([(C.MAX_REPEAT, av)])
                if why:
                    return "possessive", index, "possessive quantifier", why
            elif op in _REPEATS:
                found = self._walk(av[2], inside, around)
            elif op is C.SUBPATTERN:
                found = self._walk(av[3], inside, around)
            elif op is C.BRANCH:
                for alt in av[1]:
                    found = found or self._walk(alt, inside, around)
            elif op is C.GROUPREF:
                return "backreference", self._count("backreference"), "backreference", _NO_MEMORY
            elif op is _ATOMIC:
                index = self._count("(?>")
                why = _NO_ASSERTIONS if not self.assertions else self._uncommitted(av)
                if why:
                    return "(?>", index, "atomic group (?>...)", why
            elif op in (C.ASSERT, C.ASSERT_NOT):
                opener, name = _ASSERTS[op, av[0]]
                here = opener, self._count(opener), name
                if not self.assertions:
                    return (*here, _NO_ASSERTIONS)
                if inside and inside != av[0]:
                    return here[0], here[1], f"{name} inside {around[2]}", _OTHER_WAY
                found = self._walk(av[1], av[0], around if inside else here)
            elif op is C.GROUPREF_EXISTS:
                here = "(?(", self._count("(?("), "conditional group (?(id)yes|no)"
                if not self.assertions:
                    return (*here, _NO_ASSERTIONS)
                if inside:
                    return here[0], here[1], f"{here[2]} inside {around[2]}", _OTHER_WAY
                if av[0] in self.captured_inside:
                    return here[0], here[1], f"{here[2]} on a group captured inside a lookaround", _OTHER_WAY
                found = self._walk(av[1], inside, around) or (av[2] is not None and self._walk(av[2], inside, around))
            elif op is C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
                text = "\\b" if av is C.AT_BOUNDARY else "\\B"
                name = f"word boundary {text}" if av is C.AT_BOUNDARY else f"non-word-boundary {text}"
                index = self._count(text)
                if not self.assertions:
                    return text, index, name, _NO_ASSERTIONS
                if inside:
                    return text, index, f"{name} inside {around[2]}", _OTHER_WAY
            elif op is C.AT and inside == 1 and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
                return around[0], around[1], f"a start anchor inside {around[2]}", _OTHER_WAY
            elif op is C.AT and inside == -1 and av in (C.AT_END, C.AT_END_STRING):
                return around[0], around[1], f"an end anchor inside {around[2]}", _OTHER_WAY
            elif op not in CHAR_ITEMS and op is not C.AT:
                return str(op), 0, f"regex construct {op}", "not a construct this compiler knows"
            if found:
                return found
        return None


def _conditional_groups(items) -> set[int]:
    """The groups some conditional `(?(g)...)` of the tree tests."""
    out: set[int] = set()
    for op, av in tree_items(items):
        if op is C.GROUPREF_EXISTS:
            out.add(av[0])
        for child in tree_children(op, av):
            out |= _conditional_groups(child)
    return out


def _groups_inside_lookarounds(items, inside: bool, out: set[int]) -> None:
    for op, av in tree_items(items):
        if op is C.SUBPATTERN and inside and av[0] is not None:
            out.add(av[0])
        for child in tree_children(op, av):
            _groups_inside_lookarounds(child, inside or op in (C.ASSERT, C.ASSERT_NOT), out)


def tree_children(op, av) -> list:
    """The sub-trees of one parse item (a group's body, a branch's alternatives, ...)."""
    if op in _REPEATS or op is _POSSESSIVE:
        return [av[2]]
    if op is C.SUBPATTERN:
        return [av[3]]
    if op is C.BRANCH:
        return list(av[1])
    if op is _ATOMIC:
        return [av]
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [av[1]]
    if op is C.GROUPREF_EXISTS:
        return [part for part in av[1:] if part is not None]
    return []


def _tree_key(items) -> str:
    """A hashable stand-in for a parse sub-tree (its items' repr names every op and argument)."""
    return repr(tree_items(items))


_QUANTIFIER = re.compile(r"[*+?]|\{(?:\d+|\d*,\d*)\}")
_FLAGS_GROUP = re.compile(r"\(\?([aiLmsux]*)(?:-([imsx]*))?([:)])")
_OCTAL3 = re.compile(r"[0-7]{3}")


def _scan(pattern: str, verbose: bool) -> dict[str, list[tuple[int, str]]]:
    """Offsets of the refused constructs, by kind, in text order: `re`'s tokenisation, reduced to what matters here.

    sre_parse keeps no positions, so this walks the text the way it does: escapes, character classes (skipped
    whole), group openers, quantifiers and, in verbose mode (global or scoped), whitespace and comments.
    """
    found: dict[str, list[tuple[int, str]]] = {}
    stack: list[bool] = []  # verbose flag outside each open group
    i, n = 0, len(pattern)

    def add(kind: str, start: int, text: str) -> None:
        found.setdefault(kind, []).append((start, text))

    while i < n:
        c = pattern[i]
        if verbose and c in " \t\n\r\f\v":
            i += 1
        elif verbose and c == "#":
            j = pattern.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt in ("b", "B"):
                add("\\" + nxt, i, "\\" + nxt)
            elif nxt.isdigit() and nxt != "0" and not _OCTAL3.match(pattern, i + 1):
                digits = nxt + (pattern[i + 2] if pattern[i + 2 : i + 3].isdigit() else "")
                add("backreference", i, "\\" + digits)
                i += len(digits) - 1
            i += 2
        elif c == "[":
            i = _class_end(pattern, i)
        elif c == "(":
            i, inside = _group_open(pattern, i, add, verbose)
            if inside is not None:
                stack.append(verbose)
                verbose = inside
        elif c == ")":
            verbose = stack.pop() if stack else verbose
            i += 1
        elif m := _QUANTIFIER.match(pattern, i):
            i = m.end()
            if pattern.startswith("+", i):
                add("possessive", m.start(), m.group() + "+")
                i += 1
            elif pattern.startswith("?", i):
                i += 1
        else:
            i += 1
    return found


def _class_end(pattern: str, i: int) -> int:
    """Offset just past the character class opening at `i` (a leading `]` or `^]` is a member)."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _group_open(pattern: str, i: int, add, verbose: bool) -> tuple[int, bool | None]:
    """(offset past the opener at `i`, verbose flag inside, or None if no group opens); records refused openers."""
    if pattern.startswith("(?#", i):
        return pattern.index(")", i) + 1, None
    if pattern.startswith("(?P=", i):
        end = pattern.index(")", i) + 1
        add("backreference", i, pattern[i:end])
        return end, None
    for opener in ("(?<=", "(?<!", "(?=", "(?!", "(?>"):
        if pattern.startswith(opener, i):
            add(opener, i, opener)
            return i + len(opener), verbose
    if pattern.startswith("(?(", i):
        add("(?(", i, "(?(")
        return pattern.index(")", i + 3) + 1, verbose
    if pattern.startswith("(?P<", i):
        return pattern.index(">", i) + 1, verbose
    m = _FLAGS_GROUP.match(pattern, i)
    if m is None:
        return i + 1, verbose
    if m.group(3) == ")":  # global flags: already part of the pattern-wide `verbose`
        return m.end(), None
    return m.end(), ("x" in m.group(1) or verbose) and "x" not in (m.group(2) or "")
