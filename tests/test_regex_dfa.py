"""Regex -> minimal byte DFA, checked against `re.fullmatch` as the oracle.

Membership on generated, mutated and arbitrary strings; exhaustive checks over small alphabets (anchors, nullable
loops, laziness); per-code-point agreement for Unicode classes and case folding; the prefix property; minimality
against an independent Moore refinement; and every error path with its message and offset.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import re
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genlab.automata import charclass
from genlab.automata import determinize as determinize_module
from genlab.automata import regex as regex_module
from genlab.automata.dfa import ByteDFA
from genlab.automata.minimize import minimal_dfa
from genlab.automata.regex import compile_regex
from genlab.automata.utf8 import ACCEPT, utf8_automaton
from genlab.errors import EmptyLanguageError, InvalidPatternError, StateLimitError, UnsupportedConstraintError

HEX = "[0-9a-fA-F]"
IPV6 = (
    rf"(?:(?:{HEX}{{1,4}}:){{7}}{HEX}{{1,4}}|(?:{HEX}{{1,4}}:){{1,7}}:|(?:{HEX}{{1,4}}:){{1,6}}:{HEX}{{1,4}}"
    rf"|(?:{HEX}{{1,4}}:){{1,5}}(?::{HEX}{{1,4}}){{1,2}}|(?:{HEX}{{1,4}}:){{1,4}}(?::{HEX}{{1,4}}){{1,3}}"
    rf"|(?:{HEX}{{1,4}}:){{1,3}}(?::{HEX}{{1,4}}){{1,4}}|(?:{HEX}{{1,4}}:){{1,2}}(?::{HEX}{{1,4}}){{1,5}}"
    rf"|{HEX}{{1,4}}:(?::{HEX}{{1,4}}){{1,6}}|:(?:(?::{HEX}{{1,4}}){{1,7}}|:))"
)
PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",  # email
    r"\w+@\w+\.\w+",
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])",  # ISO date (Unicode digits, as re has it)
    r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",  # ISO date-time
    rf"{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}",  # UUID
    r"\+?1?[ -]?\(?\d{3}\)?[ -]?\d{3}[ -]?\d{4}",  # phone
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",  # IPv4
    IPV6,
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",  # semver
    r'"(?:[^"\\\x00-\x1f]|\\.)*"',  # JSON string literal
    r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?",  # JSON number
    r"[α-ω]+",
    r"\w+",
    r"\d{3}",
    r"(?i)hello",
    r"(?i)straße|ǅ[a-zß]*",
    r"cat|dog|bird|catfish",
    r"((a|b)(c|d)?)+e",
    r"a+?b*?c??",
    r".{2,5}",
    r"(?s).",
    r"(?a)\w+",
    r"[^a-z\s]+",
    r"[^\W\d_]+\d*",
    r"\s*\S+\s*",
    r"(?x) \d+ (?: , \s* \d+ )*  # a list",
    r'[^"\\]*',
    r"^(?:foo|bar)+$",
    r"(?m)^\w+:$\n^\d+$",
    r"[\U0001F600-\U0001F64F]{1,3}|\N{SNOWMAN}",
]
ALPHABET_PROBES = ["a", "é", "€", "\U0001d11e", "\n", "1", "A", "_", " "]


@functools.cache
def compiled(pattern: str) -> ByteDFA:
    dfa = compile_regex(pattern)
    check_structure(dfa)
    return dfa


def check_structure(dfa: ByteDFA) -> None:
    """Table shape and types, every state live (reverse BFS), BFS numbering from start 0."""
    n = dfa.n_states
    assert dfa.transitions.dtype == np.int32 and dfa.transitions.shape == (n, 256)
    assert dfa.accepting.dtype == np.bool_ and dfa.accepting.shape == (n,)
    assert dfa.start == 0
    assert ((dfa.transitions >= -1) & (dfa.transitions < n)).all()
    assert np.isfinite(completion_steps(dfa)[0]).all(), "a stored state cannot reach acceptance"
    order, seen = [0], {0}
    for s in order:
        for b in range(256):
            t = int(dfa.transitions[s, b])
            if t >= 0 and t not in seen:
                seen.add(t)
                order.append(t)
    assert order == list(range(n)), "states are not numbered breadth first"


@functools.cache
def _completion(dfa: ByteDFA):
    """Per state: bytes to an accepting state along a shortest path (reverse BFS from accepting states)."""
    n = dfa.n_states
    preds: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for s in range(n):
        for b in range(256):
            t = int(dfa.transitions[s, b])
            if t >= 0:
                preds[t].append((s, b))
    dist = np.full(n, np.inf)
    step = [None] * n
    queue = deque()
    for s in np.flatnonzero(dfa.accepting):
        dist[s] = 0
        queue.append(int(s))
    while queue:
        t = queue.popleft()
        for s, b in preds[t]:
            if dist[s] == np.inf:
                dist[s] = dist[t] + 1
                step[s] = b
                queue.append(s)
    return dist, step


def completion_steps(dfa: ByteDFA):
    return _completion(dfa)


def shortest_completion(dfa: ByteDFA, state: int) -> bytes:
    dist, step = _completion(dfa)
    out = bytearray()
    while not dfa.accepting[state]:
        out.append(step[state])
        state = int(dfa.transitions[state, step[state]])
    return bytes(out)


def walk(dfa: ByteDFA, data: bytes) -> list[int]:
    """States after each byte prefix (index 0: the start), stopping at the first -1."""
    states = [dfa.start]
    for b in data:
        s = int(dfa.transitions[states[-1], b])
        states.append(s)
        if s < 0:
            break
    return states


def check_string(pattern: str, s: str) -> None:
    """Membership equals re's; every prefix of a match is alive; where a walk dies, the live prefix completes."""
    dfa = compiled(pattern)
    data = s.encode()
    expected = re.fullmatch(pattern, s) is not None
    assert dfa.accepts(data) == expected, (pattern, s)
    states = walk(dfa, data)
    if expected:
        assert len(states) == len(data) + 1 and min(states) >= 0
        return
    alive = [st_ for st_ in states if st_ >= 0]
    prefix = data[: len(alive) - 1]
    witness = prefix + shortest_completion(dfa, alive[-1])
    assert re.fullmatch(pattern, witness.decode()) is not None, (pattern, s, witness)


@st.composite
def probes(draw, pattern: str) -> str:
    kind = draw(st.sampled_from(["match", "mutated", "mutated", "text"]))
    if kind == "text":
        return draw(st.text(max_size=12))
    s = draw(st.from_regex(pattern, fullmatch=True))
    if kind == "match":
        return s
    chars = st.one_of(st.sampled_from(list(s) or ["a"]), st.sampled_from(ALPHABET_PROBES), st.characters())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            s = s[:i] + draw(chars) + s[i:]
        elif op == "delete":
            s = s[:i] + s[i + 1 :]
        else:
            s = s[:i] + draw(chars) + s[i + 1 :]
    # lone surrogates (hypothesis may draw one for a wide class) are no text: UTF-8 has no bytes for them
    return "".join(c for c in s if not "\ud800" <= c <= "\udfff")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_membership_matches_re(pattern):
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def run(data):
        check_string(pattern, data.draw(probes(pattern)))

    run()


EXHAUSTIVE = [
    r"(a|b)*abb",
    r"(?:a|)+",
    r"(a*)*b",
    r"a{2,3}|b{0,2}",
    r"(?:ab?){2,}",
    r"a*?b+?",
    r"(?:a|b)??a",
    r"(?:a{0,2}b){1,2}",
    r"^a|b$",
    r"^(?:a|b)*$",
    r"a$\n",
    r"a$",
    r"$",
    r"^$",
    r"(?m)^$",
    r"(?m)a$\n^b",
    r"(?m)(?:^a\n?)*",
    r"\Aa\Z|b",
    r"(?:^)*a",
    r"a*^b",
    r"a$|\n",
    r"(?m)^a$",
    r"(?m)$\n",
    r"\Z\A",
    r"$\n",
    r"(?m)(?:$\n|a)*",
    r"(?:a$)*\n?",
    r"\n^a",
    r"(?m)\n^a",
    r"a\Z\n?",
    r"(?:\n|^)+a",
    r"(?m:^a)$\n?",
    r"(?m)(?:^|b)a",
    r"[^a]",
    r"[^\n]*",
    r".*",
    r"(?s).*",
    r"(?i)A[^B]",
    r"(?:(?m:^b$)|a)+",
    r"\n(?m:^)a|\n^b",  # `^` and `(?m)^` in one pattern: only the multiline one holds after "\n"
    r"(?m:^a\n)*^b",
    r"(?:a(?m:$)\n)*b$",
]


@pytest.mark.parametrize("pattern", EXHAUSTIVE)
def test_exhaustive_small_alphabet(pattern):
    strings = ["".join(chars) for n in range(7) for chars in itertools.product("ab\n", repeat=n)]
    try:
        compiled(pattern)
    except EmptyLanguageError:  # then nothing may match, on this alphabet or any other
        assert not any(re.fullmatch(pattern, s) for s in strings)
        return
    for s in strings:
        check_string(pattern, s)


@pytest.mark.parametrize("pattern", [r"[^a]", r".{2}", r"[é-\U0001d11e]+", r"\w*", r"(?i)[^É]€?", r"[^\x00-\x7f]+a"])
def test_exhaustive_multibyte_alphabet(pattern):
    for n in range(5):
        for chars in itertools.product(["a", "é", "€", "\U0001d11e", "\n"], repeat=n):
            check_string(pattern, "".join(chars))


# --- one character at a time, every code point -------------------------------------------------------------------


@functools.cache
def scalar_values() -> str:
    """Every Unicode scalar value, in order, as one string."""
    return "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))


def dfa_single_chars(dfa: ByteDFA, text: str) -> np.ndarray:
    """For each character of `text`, whether the DFA accepts its UTF-8 encoding: all walked at once."""
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    cps = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    lengths = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    assert offsets[-1] == len(data)
    state = np.zeros(len(cps), np.int64)
    for k in range(4):
        active = (k < lengths) & (state >= 0)
        state[active] = dfa.transitions[state[active], data[offsets[:-1][active] + k]]
    return (state >= 0) & dfa.accepting[np.maximum(state, 0)]


def re_single_chars(pattern: str, text: str) -> np.ndarray:
    """For each character of `text`, whether `re.fullmatch(pattern, ch)` holds (one `sub` pass over all)."""
    marked = re.compile(pattern).sub("\x01", text)
    assert len(marked) == len(text), "pattern must match single characters only"
    out = np.frombuffer(marked.encode("utf-32-le"), np.uint32) == 1
    out[[i for i, ch in enumerate(text) if ch == "\x01"]] = re.fullmatch(pattern, "\x01") is not None
    return out


def assert_same_single_chars(pattern: str, text: str) -> None:
    bad = np.flatnonzero(dfa_single_chars(compile_regex(pattern), text) != re_single_chars(pattern, text))
    assert len(bad) == 0, (pattern, [hex(ord(text[i])) for i in bad[:10]])


SINGLE_CHAR = [
    r"\d",
    r"\w",
    r"\s",
    r"\D",
    r"\W",
    r"\S",
    r"(?a)\d",
    r"(?a)\w",
    r"(?a)\s",
    r"(?a)\W",
    r".",
    r"(?s).",
    r"[^\d\s]",
    r"(?i)[a-z]",
    r"(?i)[^k]",
    r"(?i)[\w]",
    r"(?i)[\wA]",
    r"(?i)[^\WA]",
    r"(?i)[\U00010400x]",  # re's quirk: a non-BMP literal in a case-insensitive class is not lowered
    r"(?i)[\U00010400-\U0001044f]",
    r"(?i)[a-\U00010400]",
    r"(?ai)[a-z]",
    r"(?ai)[\U00010400-\U00010410]",
    r"(?i)[ſ-ǅ]",
    r"(?i)[^\x00-\u0100]",
    r"(?i:ß)|(?i:\u1e9e)|Σ",
]


@pytest.mark.parametrize("pattern", SINGLE_CHAR)
def test_single_characters_match_re_everywhere(pattern):
    assert_same_single_chars(pattern, scalar_values())


def test_case_insensitive_literals_match_re():
    """`(?i)c`, `(?i)[^c]`, `(?ai)c` for every _EXTRA_CASES char and a sample of cased ones, over all cased chars."""
    fold = charclass._unicode_folding()
    keys = set(charclass._EXTRA_CASES) | {k for v in charclass._EXTRA_CASES.values() for k in v}
    rng = np.random.default_rng(0)
    sample = set(rng.choice(fold.lower.src, 150, replace=False).tolist())
    sample |= set(rng.choice(fold.lower.dst, 50).tolist())
    sample |= set(map(ord, "kKſßİıΣςσǅ\U00010400\U00010428ﬀᾳ"))
    universe = "".join(chr(c) for lo, hi in charclass.union(fold.cased, ((0, 0x7F),)) for c in range(lo, hi + 1))
    for c in sorted(keys | sample):
        for template in ("(?i){}", "(?i)[^{}]", "(?ai){}"):
            assert_same_single_chars(template.format(re.escape(chr(c))), universe)


def test_simple_upper_is_sres():
    """The upper map used for RANGE_UNI_IGNORE equals CPython's `_PyUnicode_ToUppercase` (where reachable)."""
    try:
        fn = ctypes.pythonapi._PyUnicode_ToUppercase
    except AttributeError:
        pytest.skip("_PyUnicode_ToUppercase not exported")
    fn.restype, fn.argtypes = ctypes.c_uint32, [ctypes.c_uint32]
    upper = charclass._unicode_upper()
    for c in range(0x110000):
        assert upper(c) == fn(c), hex(c)


@given(st.lists(st.tuples(st.integers(0, 0x10FFFF), st.integers(0, 300)), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_utf8_automaton_is_the_set(spans):
    """Walking the UTF-8 automaton of random range sets agrees with set membership around every boundary."""
    ranges = charclass.normalize((lo, min(lo + w, 0x10FFFF)) for lo, w in spans)
    ranges = charclass.difference(ranges, charclass.SURROGATES)
    nodes = utf8_automaton(ranges)
    edges_ok = all(a <= b and (not i or a >= 0x80) for i, node in enumerate(nodes) for a, b, _ in node)
    assert edges_ok
    probes_ = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF}
    for lo, hi in ranges:
        probes_ |= {lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, (lo + hi) // 2}
    for c in sorted(p for p in probes_ if 0 <= p <= 0x10FFFF and not 0xD800 <= p <= 0xDFFF):
        node, ok = 0, False
        data = chr(c).encode()
        for k, b in enumerate(data):
            nxt = [child for a, z, child in nodes[node] if a <= b <= z]
            if not nxt:
                break
            if nxt[0] == ACCEPT:
                ok = k == len(data) - 1
                break
            node = nxt[0]
        assert ok == any(lo <= c <= hi for lo, hi in ranges), hex(c)


# --- minimality ---------------------------------------------------------------------------------------------------


def moore_state_count(dfa: ByteDFA) -> int:
    """Number of Myhill-Nerode classes by Moore's refinement (independent of the Hopcroft kernel)."""
    t = dfa.transitions.astype(np.int64)
    part = dfa.accepting.astype(np.int64)
    while True:
        succ = np.where(t >= 0, part[np.maximum(t, 0)], -1)
        _, new = np.unique(np.column_stack([part, succ]), axis=0, return_inverse=True)
        new = new.reshape(-1)
        if new.max() == part.max():
            return int(new.max()) + 1
        part = new


@pytest.mark.parametrize("pattern", PATTERNS + EXHAUSTIVE[:12])
def test_minimal(pattern):
    dfa = compiled(pattern)
    assert moore_state_count(dfa) == dfa.n_states


def test_minimize_merges_duplicated_states():
    """A hand-made DFA with two copies of every state minimises back to the original (same table)."""
    dfa = compiled(r"(ab|cd)*e")
    n = dfa.n_states
    doubled = np.full((2 * n, 256), -1, np.int32)
    t = dfa.transitions
    doubled[:n] = np.where(t >= 0, t + n * (np.arange(256) % 2), -1)  # odd bytes jump into the copy
    doubled[n:] = np.where(t >= 0, t, -1)
    dead = np.full((1, 256), -1, np.int32)  # plus an unreachable dead state pointing at itself
    dead[0, 0] = 2 * n
    table = np.vstack([doubled, dead])
    table[0, 255] = 2 * n  # a move into the dead state must become -1
    accepting = np.concatenate([dfa.accepting, dfa.accepting, [False]])
    again = minimal_dfa(table, accepting)
    assert np.array_equal(again.transitions, dfa.transitions)
    assert np.array_equal(again.accepting, dfa.accepting)


def test_deterministic_numbering():
    for pattern in (IPV6, r"\w+@\w+\.\w+"):
        a, b = compile_regex(pattern), compile_regex(pattern)
        assert np.array_equal(a.transitions, b.transitions) and np.array_equal(a.accepting, b.accepting)


@pytest.mark.parametrize("pattern", [p for p in PATTERNS + EXHAUSTIVE if not re.search(r"[$^]|\\[AZ]", p)])
def test_numba_subsets_equal_python_subsets(pattern):
    """Anchor-free NFAs are determinised in numba: the same minimal DFA as the general Python construction."""
    tree = regex_module.parse_regex(pattern)
    nfa = regex_module._Thompson(10**6, pattern).build(tree, tree.state.flags)
    assert not any(nfa.anchors)
    fast = determinize_module._plain_subsets(nfa, 10_000)
    assert fast is not None and fast is not determinize_module._GENERAL
    slow = determinize_module._Subsets(nfa, 10_000, pattern).run()
    a, b = minimal_dfa(*fast), minimal_dfa(*slow)
    assert np.array_equal(a.transitions, b.transitions) and np.array_equal(a.accepting, b.accepting)


def test_numba_subsets_limits_and_mixed_states():
    tree = regex_module.parse_regex(r"[ab]*a[ab]{6}")  # 2^7 subset states
    nfa = regex_module._Thompson(10**6, "x").build(tree, tree.state.flags)
    assert determinize_module._plain_subsets(nfa, 100) is None
    assert len(determinize_module._plain_subsets(nfa, 1000)[1]) > 100
    # a state with two targets on one byte (not what Thompson builds) goes to the Python construction
    mixed = determinize_module.ByteNFA()
    mixed.add_states(3)
    mixed.start, mixed.final = 0, 2
    mixed.edges[0] = [(ord("a"), ord("a"), 1), (ord("a"), ord("b"), 2)]
    mixed.edges[1] = [(ord("b"), ord("b"), 2)]
    assert determinize_module._plain_subsets(mixed, 100) is determinize_module._GENERAL
    dfa = minimal_dfa(*determinize_module.determinize(mixed, 100, "mixed"))
    assert [w for w in ("a", "b", "ab", "aa", "ba") if dfa.accepts(w.encode())] == ["a", "b", "ab"]


def test_large_repeat_within_limit():
    dfa = compiled(r".{50,85}")
    assert dfa.accepts(("é" * 50).encode()) and dfa.accepts(b"x" * 85)
    assert not dfa.accepts(b"x" * 49) and not dfa.accepts(b"x" * 86) and not dfa.accepts(b"x" * 60 + b"\n")


# --- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, fragment",
    [
        ("a(", "missing ), unterminated subpattern"),
        ("*a", "nothing to repeat"),
        ("a{0}b[]", "unterminated character set"),
        ("(?<=a+)b", "look-behind requires fixed-width pattern"),
        ("(?L)a", "cannot use 'L' flag"),
    ],
)
def test_invalid_pattern(pattern, fragment):
    with pytest.raises(InvalidPatternError) as info:
        compile_regex(pattern)
    err = info.value
    try:
        re.compile(pattern)
    except re.error as e:
        assert err.pos == e.pos and err.msg == e.msg
    assert fragment in str(err) and repr(pattern) in str(err)


@pytest.mark.parametrize(
    "pattern, offset, name",
    [
        (r"(a)\1", 3, r"backreference \1"),
        (r"(a)(?:b\1)*", 7, r"backreference \1"),
        (r"(?P<x>a)(?P=x)", 8, "backreference (?P=x)"),
        # atomic groups compile where their first match depends on their own choices alone
        (r"a(?:b?)*+", 7, "possessive quantifier *+"),
        (r"(?:ab){2}+(?>a?)++", 16, "possessive quantifier ++"),
        (r"(?:a*+)*+", 7, "possessive quantifier *+"),
        (r"ab++(?>a\b)c", 4, "atomic group (?>...)"),
        (r"(?>(?>a)b)c", 0, "atomic group (?>...)"),
        (r"(a)?(?>(a)|b)(?(2)c)", 4, "atomic group (?>...)"),
        # lookaround bodies are compiled alone: one that looks the other way is refused, at its own offset
        (r"(?<=a)(?=(?<=b)c)c", 9, "lookbehind (?<=...) inside lookahead (?=...)"),
        (r"(?<!a(?!b))c", 5, "negative lookahead (?!...) inside negative lookbehind (?<!...)"),
        (r"(?=a\b)a", 4, r"word boundary \b inside lookahead (?=...)"),
        (r"\b(?=\bx)x", 5, r"word boundary \b inside lookahead (?=...)"),
        (r"(?!^a)b", 0, "a start anchor inside negative lookahead (?!...)"),
        (r"(?=x)(?<=a$)b", 5, "an end anchor inside lookbehind (?<=...)"),
        (r"(a)(?=(?(1)b|c))b", 6, "conditional group (?(id)yes|no) inside lookahead (?=...)"),
        (r"(?=(a))?(?(1)a|b)", 8, "conditional group (?(id)yes|no) on a group captured inside a lookaround"),
        ("(?x) a # (?=x) comment\n (?=(?<=b))", 27, "lookbehind (?<=...) inside lookahead (?=...)"),
        (r"(?#(?<=)(?=(?<=b))", 11, "lookbehind (?<=...) inside lookahead (?=...)"),
    ],
)
def test_unsupported_construct_named_with_offset(pattern, offset, name):
    with pytest.raises(UnsupportedConstraintError) as info:
        compile_regex(pattern)
    err = info.value
    assert err.pos == offset, str(err)
    assert name in str(err) and f"offset {offset}" in str(err) and repr(pattern) in str(err)


@pytest.mark.parametrize(
    "pattern", [r"[^\x00-\U0010ffff]", r"a\Zb", r"[\ud800-\udfff]", r"a{0}b[^\s\S]", r"$a", r"(?:a|b)\Z\A", r"\n^a"]
)
def test_empty_language(pattern):
    with pytest.raises(EmptyLanguageError, match=re.escape(repr(pattern))):
        compile_regex(pattern)


def test_state_limit():
    with pytest.raises(StateLimitError) as info:
        compile_regex(r".{50,85}", max_states=500)
    assert "500" in str(info.value) and repr(".{50,85}") in str(info.value)
    for pattern in (r"(?:a{1000}){1000}", r"\w{40}", r"(?:[ab]*a[ab]{20})"):
        with pytest.raises(StateLimitError, match=re.escape(repr(pattern))):
            compile_regex(pattern)


def test_lazy_and_greedy_same_language():
    for greedy, lazy in [(r"a+b*", r"a+?b*?"), (r"(?:ab){1,3}c?", r"(?:ab){1,3}?c??")]:
        a, b = compile_regex(greedy), compile_regex(lazy)
        assert np.array_equal(a.transitions, b.transitions)
