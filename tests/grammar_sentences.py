"""Random sentences of a Lark grammar, random edits of them, and the Lark oracle: helpers for grammar tests.

    from grammar_sentences import sentences, mutations, lark_accepts, grammar_alphabet

    @given(sentences(grammar_text))                       # random members of the language (checked with Lark)
    @given(sentences(g).flatmap(lambda s: mutations(s)))  # near-misses: mostly outside the language, some inside

`sentences` walks Lark's compiled BNF (`Lark.rules`, after `?`-inlining, `*`/`+`/`[]` expansion and templates),
drawing one expansion per nonterminal with hypothesis. Below `max_depth` (and while the node budget `max_nodes`
lasts) every expansion is possible; past it only the expansions of least derivation height are, and as the
height of a nonterminal is computed ahead (a fixed point over the rules), each step then strictly lowers the
height left, so every draw terminates; the node budget keeps sentences small (typically well under 200
characters). Terminals: a string literal is emitted as is (with random letter case under the `i` flag); a regex
is drawn with `hypothesis.strategies.from_regex(..., fullmatch=True)` after stripping a trailing
negative-lookahead guard such as `(?![0-9])` (hypothesis cannot draw lookarounds). Ignored terminals (`%ignore`,
e.g. whitespace) are inserted sometimes at the start, between terminals and at the end.

Why a drawn sentence may be invalid, and the filter: the walk concatenates terminal strings without looking at
what follows, so a stripped guard may be violated (`1` then `2` gives `12` where the guard forbids it), an
inserted ignored token may glue with a neighbour, or Lark's dynamic lexer (which tries only the longest match of
a terminal) may tokenize the concatenation differently. With `check=True` (the default) the strategy therefore
keeps only the sentences that the Lark oracle (`lark_accepts`, earley + dynamic lexer) accepts; a grammar whose
draws are mostly rejected makes hypothesis fail its `filter_too_much` health check, which is itself a finding.
"""

from __future__ import annotations

import functools
import re
import string

import lark
from hypothesis import strategies as st
from lark import Lark
from lark.grammar import NonTerminal, Terminal
from lark.lexer import PatternStr

__all__ = ["load", "lark_accepts", "strip_guard", "grammar_alphabet", "sentences", "mutations", "Plan"]

# Characters hypothesis draws for regex character classes: any code point but the surrogates (not encodable
# in UTF-8, so never in a text a model can emit).
TEXT_CHARS = st.characters(codec="utf-8")

_RE_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": re.UNICODE}

# A trailing negative lookahead of one char class, one escape or one plain char: `(?![0-9])`, `(?!\w)`, `(?!x)`.
_GUARD = re.compile(r"\(\?!(?:\[\^?\]?(?:\\.|[^\]\\])*\]|\\.|[^()\\])\)\Z", re.DOTALL)


@functools.lru_cache(maxsize=64)
def _load_text(text: str, start: str, lexer: str) -> Lark:
    return Lark(text, start=start, parser="earley", lexer=lexer)


def load(grammar: Lark | str, start: str = "start", lexer: str = "dynamic") -> Lark:
    """A Lark object for `grammar` (returned as is if it already is one): earley, the given lexer, cached."""
    if isinstance(grammar, Lark):
        return grammar
    return _load_text(grammar, start, lexer)


def lark_accepts(lark_obj: Lark, text: str, start: str | None = None) -> bool:
    """The oracle: does Lark parse `text` completely? Any `lark.exceptions.LarkError` counts as a rejection."""
    try:
        lark_obj.parse(text, start=start)
    except lark.exceptions.LarkError:
        return False
    return True


def strip_guard(regex: str) -> str:
    """`regex` without one trailing negative-lookahead guard `(?!<char class>)`, if it has one."""
    m = _GUARD.search(regex)
    if m is None:
        return regex
    # `\(?!x)` would be an escaped paren, not a guard: count the backslashes before the match
    i, slashes = m.start() - 1, 0
    while i >= 0 and regex[i] == "\\":
        slashes, i = slashes + 1, i - 1
    return regex if slashes % 2 else regex[: m.start()]


def grammar_alphabet(grammar: Lark | str, start: str = "start") -> str:
    """The characters a grammar's terminals spell out: all characters of its string literals, plus the printable
    ASCII characters that appear in its regex sources (a crude but useful stand-in for the regexes' alphabets,
    metacharacters included). Sorted, without duplicates."""
    lk = load(grammar, start)
    chars: set[str] = set()
    for t in lk.terminals:
        value = t.pattern.value
        if isinstance(t.pattern, PatternStr):
            chars.update(value)
            if "i" in t.pattern.flags:
                chars.update(value.lower() + value.upper())
        else:
            chars.update(c for c in value if c in string.printable)
    return "".join(sorted(chars))


def _terminal_strategy(term) -> st.SearchStrategy[str]:
    pattern = term.pattern
    flags = frozenset(pattern.flags)
    if isinstance(pattern, PatternStr):
        value = pattern.value
        if "i" not in flags:
            return st.just(value)
        return st.tuples(*[st.sampled_from(sorted({c, c.lower(), c.upper()})) for c in value]).map("".join)
    re_flags = 0
    for f in flags:
        re_flags |= _RE_FLAGS.get(f, 0)
    compiled = re.compile(strip_guard(pattern.value), re_flags)
    return st.from_regex(compiled, fullmatch=True, alphabet=TEXT_CHARS)


class Plan:
    """What generation needs from one Lark object and start rule, computed once: the rules by origin ordered by
    derivation height (so hypothesis shrinks toward the simplest expansion), the heights, and one strategy per
    terminal."""

    def __init__(self, lark_obj: Lark, start: str):
        self.lark = lark_obj
        self.start = start
        by_origin: dict[str, list[list]] = {}
        for rule in lark_obj.rules:
            by_origin.setdefault(str(rule.origin.name), []).append(list(rule.expansion))
        # height of a nonterminal: least height of a derivation tree (a terminal has height 0)
        height: dict[str, int] = {}
        changed = True
        while changed:
            changed = False
            for name, expansions in by_origin.items():
                for exp in expansions:
                    h = self._expansion_height(exp, height)
                    if h is not None and h < height.get(name, 1 << 30):
                        height[name], changed = h, True
        if start not in height:
            raise ValueError(f"start rule {start!r} derives no finite sentence (or does not exist)")
        self.height = height
        # only productive expansions, least height first
        self.expansions: dict[str, list[tuple[int, list]]] = {}
        for name, expansions in by_origin.items():
            if name not in height:
                continue
            rated = [(self._expansion_height(exp, height), exp) for exp in expansions]
            rated = [(h, exp) for h, exp in rated if h is not None]
            rated.sort(key=lambda he: he[0])
            self.expansions[name] = rated
        self.terminals = {t.name: _terminal_strategy(t) for t in lark_obj.terminals}
        self.ignore = [self.terminals[name] for name in lark_obj.ignore_tokens if name in self.terminals]

    @staticmethod
    def _expansion_height(expansion, height) -> int | None:
        h = 0
        for sym in expansion:
            if isinstance(sym, NonTerminal):
                if sym.name not in height:
                    return None
                h = max(h, height[sym.name])
        return h + 1


@functools.lru_cache(maxsize=64)
def _plan(lark_obj: Lark, start: str) -> Plan:
    return Plan(lark_obj, start)


@st.composite
def _raw_sentence(draw, plan: Plan, max_depth: int, max_nodes: int, ignore_weight: float) -> str:
    parts: list[str] = []
    budget = [max_nodes]
    ignore_cut = int(ignore_weight * 100)

    def maybe_ignore() -> None:
        if plan.ignore and draw(st.integers(0, 99)) < ignore_cut:
            parts.append(draw(st.sampled_from(plan.ignore).flatmap(lambda s: s)))

    first = [True]

    def walk(name: str, depth: int) -> None:
        rated = plan.expansions[name]
        if depth >= max_depth or budget[0] <= 0:
            least = rated[0][0]  # == plan.height[name]: children are strictly lower, so this terminates
            rated = [he for he in rated if he[0] == least]
        budget[0] -= 1
        _, expansion = rated[draw(st.integers(0, len(rated) - 1))] if len(rated) > 1 else rated[0]
        for sym in expansion:
            if isinstance(sym, Terminal):
                if not first[0]:
                    maybe_ignore()
                first[0] = False
                parts.append(draw(plan.terminals[sym.name]))
            else:
                walk(sym.name, depth + 1)

    maybe_ignore()
    walk(plan.start, 0)
    maybe_ignore()
    return "".join(parts)


def sentences(
    grammar: Lark | str,
    start: str = "start",
    max_depth: int = 8,
    max_nodes: int = 30,
    ignore_weight: float = 0.3,
    check: bool = True,
) -> st.SearchStrategy[str]:
    """A hypothesis strategy for random sentences of `grammar` (a Lark object or grammar text) from rule `start`.

    `max_depth`: past this derivation depth only least-height expansions are drawn; `max_nodes`: after this many
    nonterminal expansions likewise (keeps sentences short). `ignore_weight`: chance of an ignored token (e.g.
    whitespace) at each gap between terminals and at both ends. `check`: keep only what the Lark oracle accepts
    (see the module docstring for why a raw draw can be invalid)."""
    lark_obj = load(grammar, start)
    plan = _plan(lark_obj, start)
    raw = _raw_sentence(plan, max_depth, max_nodes, ignore_weight)
    if not check:
        return raw
    many_starts = isinstance(lark_obj.options.start, list) and len(lark_obj.options.start) > 1
    return raw.filter(lambda s: lark_accepts(lark_obj, s, start if many_starts else None))


_DEFAULT_ALPHABET = string.digits + string.ascii_letters[:6] + " \t\r\n" + "{}[]()<>,.:;=+-*/%\"'\\_"

_EDITS = ("delete", "insert", "replace", "swap", "duplicate", "truncate")


@st.composite
def mutations(draw, text: str, alphabet: str | None = None, max_edits: int = 3) -> str:
    """A strategy for random edits of `text`: 1 to `max_edits` of deleting, inserting or replacing a char or a
    short span (up to 4 chars), swapping two chars, duplicating a short span, or truncating. Inserted chars come
    mostly (about 85%) from `alphabet` (e.g. `grammar_alphabet(g)`; a default of ASCII punctuation, digits and
    whitespace otherwise) and otherwise from all of Unicode (surrogates excepted)."""
    alphabet = alphabet or _DEFAULT_ALPHABET
    alpha = sorted(set(alphabet))

    def char() -> str:
        if draw(st.integers(0, 99)) < 85:
            return alpha[draw(st.integers(0, len(alpha) - 1))]
        return draw(TEXT_CHARS)

    def chars() -> str:
        return "".join(char() for _ in range(draw(st.integers(1, 4))))

    s = text
    for _ in range(draw(st.integers(1, max_edits))):
        edit = _EDITS[draw(st.integers(0, len(_EDITS) - 1))]
        n = len(s)
        if n == 0 and edit != "insert":
            edit = "insert"
        if edit == "insert":
            i = draw(st.integers(0, n))
            s = s[:i] + chars() + s[i:]
        elif edit == "delete":
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 4)))
            s = s[:i] + s[j:]
        elif edit == "replace":
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 4)))
            s = s[:i] + chars() + s[j:]
        elif edit == "swap":
            i, j = sorted((draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
            if i != j:
                s = s[:i] + s[j] + s[i + 1 : j] + s[i] + s[j + 1 :]
        elif edit == "duplicate":
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 8)))
            k = draw(st.integers(0, n))
            s = s[:k] + s[i:j] + s[k:]
        else:  # truncate
            s = s[: draw(st.integers(0, n - 1))]
    return s
