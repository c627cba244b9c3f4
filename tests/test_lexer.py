"""The grammar lexer's product DFA against each terminal's own DFA run alone, and literal terminals against the
regex pipeline and `re.fullmatch`."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.automata.combine import difference
from genlab.automata.lexer import Lexer, compile_terminal
from genlab.automata.regex import compile_regex
from genlab.errors import EmptyLanguageError, StateLimitError, UnsupportedConstraintError

# overlapping terminals: keywords that are prefixes of names, a DFA that re-enters its start state (`a(ba)*`
# after "ab"), a quoted string, whitespace, a literal that is a prefix of another
POOL = [
    compile_terminal("IF", "if", literal=True),
    compile_terminal("IN", "in", literal=True),
    compile_terminal("INT", "int", flags="i", literal=True),
    compile_terminal("NAME", r"[a-z_][a-z0-9_]*(?![a-z0-9_])"),
    compile_terminal("NUM", r"[0-9]+(\.[0-9]+)?"),
    compile_terminal("ABA", r"(ab)*a"),
    compile_terminal("STR", r'"[^"]*"'),
    compile_terminal("WS", r"[ \t]+"),
    compile_terminal("DOT", ".", literal=True),
    compile_terminal("DO", r"do(?![a-z])"),
]
GUARDS = [np.zeros(256, np.bool_)] + [t.guard for t in POOL if t.guard.any()]
ALPHABET = 'ifntINTab0_1. "\t\xc3\xa9'.encode("latin-1")


def run_alone(terminal, data: bytes) -> int:
    """The terminal's DFA state after `data` (-1: dead)."""
    return terminal.dfa.run(data)


@settings(max_examples=150, deadline=None)
@given(
    st.sets(st.integers(0, len(POOL) - 1), min_size=1),
    st.lists(st.sampled_from(list(ALPHABET)), max_size=8),
    st.sampled_from(range(len(GUARDS))),
)
def test_product_state_is_every_terminal_run_alone(ids, text, guard_id):
    lexer = Lexer(POOL, max_states=10_000)
    guard = GUARDS[guard_id]
    start = lexer.start(frozenset(ids), guard)
    assert lexer.start(frozenset(ids), guard) == start  # one start per (set, guard)
    data = bytes(text)
    state = start
    for i, b in enumerate(data):
        state = int(lexer.table[state, lexer.byte_class[b]])
        alive = [(t, run_alone(POOL[t], data[: i + 1])) for t in sorted(ids)]
        alive = [(t, q) for t, q in alive if q >= 0]
        if guard[data[0]]:
            alive = []
        if not alive:
            assert state == -1
            return
        assert state >= 0 and state != start
        assert lexer.key(state) == tuple(alive)
        accepting = tuple(t for t, q in alive if POOL[t].dfa.accepting[q])
        assert lexer.accepts(state) == accepting
        assert bool(lexer.accepting[state]) == bool(accepting)
        follow = np.zeros(256, np.bool_)
        for t in accepting:
            follow |= ~POOL[t].guard
        assert (np.unpackbits(lexer.follow[state].view(np.uint8), bitorder="little").astype(bool) == follow).all()
        row = lexer.table[state, lexer.byte_class]  # next state per byte
        assert bool(lexer.dead_end[state]) == bool((row < 0).all())
        stay = np.unpackbits(lexer.loops[state].view(np.uint8), bitorder="little").astype(bool)
        assert (stay == ((row == state) & ~follow)).all()


def test_lexers_for_different_sets_share_states():
    lexer = Lexer(POOL, max_states=10_000)
    none = np.zeros(256, np.bool_)
    a = lexer.start(frozenset({0, 3}), none)  # IF, NAME
    b = lexer.start(frozenset({1, 3, 4}), none)  # IN, NAME, NUM
    assert a != b
    x, i = lexer.byte_class[ord("x")], lexer.byte_class[ord("i")]
    # after "x" only NAME is live in both: one state
    assert lexer.table[a, x] == lexer.table[b, x] >= 0
    # after "i" the keywords still differ
    assert lexer.table[a, i] != lexer.table[b, i]


def test_a_guard_must_be_a_terminals_guard():
    lexer = Lexer(POOL, max_states=10_000)
    guard = np.zeros(256, np.bool_)
    guard[ord("q")] = True  # "q" shares its class with other letters no terminal tells apart
    with pytest.raises(ValueError, match="guard"):
        lexer.start(frozenset({3}), guard)


def test_growing_buffers_keep_every_table(monkeypatch):
    def build() -> list:
        lexer = Lexer(POOL, max_states=10_000)
        # the last set meets states made by the first ones: found again across the intern table's rebuilds
        starts = [
            lexer.start(frozenset(ids), g)
            for ids in ({0, 1, 2, 3}, {3, 4, 5}, set(range(len(POOL))), {3, 5}, {0, 3})
            for g in GUARDS
        ]
        return [
            starts,
            lexer.n_states,
            *(a.copy() for a in (lexer.table, lexer.accepting, lexer.follow, lexer.dead_end, lexer.loops)),
        ]

    reference = build()
    monkeypatch.setattr(Lexer, "INITIAL_STATES", 2)  # every buffer grows, and the intern table is rebuilt
    grown = build()
    assert reference[:2] == grown[:2]
    for a, b in zip(reference[2:], grown[2:]):
        assert np.array_equal(a, b)


def test_state_limit_raises_a_clear_error_and_leaves_the_lexer_as_it_was():
    terminals = [compile_terminal(f"K{i}", f"k{i:03d}x", literal=True) for i in range(40)]
    no_guard = np.zeros(256, np.bool_)
    lexer = Lexer(terminals, max_states=50)
    small = lexer.start(frozenset({0, 1}), no_guard)
    n = lexer.n_states
    with pytest.raises(StateLimitError, match="lexer needs more than 50 states"):
        lexer.start(frozenset(range(40)), no_guard)
    assert lexer.n_states == n
    # states made after the failure are interned and filled as in a lexer that never failed
    fresh = Lexer(terminals, max_states=50)
    assert fresh.start(frozenset({0, 1}), no_guard) == small
    for ids in ({2, 3, 4}, {0, 1, 5}, {1, 6}):
        assert lexer.start(frozenset(ids), no_guard) == fresh.start(frozenset(ids), no_guard)
    assert lexer.n_states == fresh.n_states
    for a, b in zip(
        (lexer.table, lexer.accepting, lexer.follow, lexer.dead_end, lexer.loops),
        (fresh.table, fresh.accepting, fresh.follow, fresh.dead_end, fresh.loops),
    ):
        assert np.array_equal(a, b)


LITERALS = ["SELECT", "k", "Straße", "İstanbul", "ǅ", "µ", "ﬀ", "ΣΑΣ", "a-b", "→x", "ſ"]


@pytest.mark.parametrize("text", LITERALS)
@pytest.mark.parametrize("flags", ["", "i"])
def test_literal_terminals_match_the_regex_pipeline(text, flags):
    terminal = compile_terminal("T", text, flags=flags, literal=True)
    wrapped = f"(?{flags}:{re.escape(text)})" if flags else re.escape(text)
    reference = compile_regex(wrapped)
    assert difference(terminal.dfa, reference) is None and difference(reference, terminal.dfa) is None
    # and `re` itself on the case variants of each character
    variants = {text, text.upper(), text.lower(), text.swapcase(), text.replace("s", "ſ"), text.replace("k", "K")}
    for s in variants:
        assert terminal.dfa.accepts(s.encode()) == bool(re.fullmatch(wrapped, s)), s


@pytest.mark.parametrize(
    "pattern, flags, head, word, guard",
    [
        (r"ab(?![c-e])", "", "ab", "ab", "cde"),
        (r"(?:[a-z]+)(?![0-9_])", "", "(?:[a-z]+)", "xyz", "0123456789_"),
        (r"ab(?![0-9])", "i", "ab", "AB", "0123456789"),  # Lark's flag wrapper (?i:...) is looked into
        (r"(?:ab(?![x]))", "", "(?:ab)", "ab", "x"),  # so is any single group
        (r"ab(?!c)", "i", "ab", "aB", "Cc"),  # the guard takes the terminal's flags
    ],
)
def test_trailing_guards_split_off(pattern, flags, head, word, guard):
    term = compile_terminal("T", pattern, flags)
    assert np.flatnonzero(term.guard).tolist() == sorted(map(ord, guard))
    assert term.dfa.accepts(word.encode())
    # the DFA is the pattern without its guard: what the guard forbids after it is the lexer's business
    alone = compile_regex(f"(?{flags}:{head})" if flags else head)
    assert np.array_equal(term.dfa.transitions, alone.transitions)


EXCLUDING = [
    r"(?!(?ai:if|in|int)(?![A-Za-z0-9_]))[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_])",  # keywords out, any ASCII case
    r"(?!ab)[a-z]+(?![a-z])",  # no guard of its own: every word starting with "ab" is out
    r"(?!x)(?!yy(?![a-z0-9]))[a-z]+(?![a-z0-9])",  # two of them
    r"(?:(?!t[ao](?![a-z]))[a-z]+)(?![a-z])",  # inside the terminal's one group
]


@pytest.mark.parametrize("pattern", EXCLUDING)
def test_leading_lookaheads_leave_strings_out(pattern):
    """A lexeme s followed by c (a character or the end of the text) is a match of the terminal exactly where `re`
    matches the pattern on s + c ending after s."""
    term = compile_terminal("T", pattern)
    rng = random.Random(3)
    alphabet = "abtoxyifnIFN_0"
    texts = {"".join(p) for n in range(1, 4) for p in itertools.product("abtoxyifF", repeat=n)}
    texts |= {"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 8))) for _ in range(3000)}
    hits = 0
    for s in sorted(texts):
        for c in ("", " ", "a", "I", "0", "_", "-"):
            want = re.match(f"(?:{pattern})(?={re.escape(c)}\\Z)", s + c) is not None
            got = term.dfa.accepts(s.encode()) and not (c and term.guard[ord(c)])
            assert got == want, (s, c)
            hits += want
    assert hits > 100


def test_a_lookahead_that_leaves_nothing_is_an_empty_language():
    with pytest.raises(EmptyLanguageError, match="terminal T"):
        compile_terminal("T", r"(?!a)a+(?![a])")


@pytest.mark.parametrize(
    "pattern, error",
    [
        (r"a|b(?![x])", "negative lookahead"),  # a lookahead in one branch only is no guard of the terminal
        (r"(?![x])", "negative lookahead"),  # nothing before it
        (r"ab(?![x]{2})", "negative lookahead"),  # more than one character
        (r"ab(?![é])", "non-ASCII"),
        (r"ab(?!\w)", "non-ASCII"),
        # leading lookaheads outside what `_exclude` can turn into a difference
        (r"(?!ab)[a-z]+", "trailing guard"),  # nothing keeps the lookahead inside the lexeme
        (r"(?!a-)[a-z-]+(?![a-z])", "cannot look past"),  # "-" may follow the lexeme
        (r"(?!a(?![a-z0-9]))[a-z]+(?![a-z])", "own guard"),  # "a" then "0" would be a lexeme
        (r"(?!a(?![a-c]))[a-z]+(?![a-z])", "after its first"),  # "a" inside "ad..." is no match of A
        (r"(?!a?)[a-z]+(?![a-z])", "empty string"),
        (r"(?<!a)[a-z]+(?![a-z])", "look-behind|lookbehind|lookaround"),
    ],
)
def test_other_lookaheads_are_refused(pattern, error):
    with pytest.raises(UnsupportedConstraintError, match=error) as info:
        compile_terminal("T", pattern)
    assert "terminal T" in str(info.value)
