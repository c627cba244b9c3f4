"""`Pattern` as a DFA over-approximation times an exact `regex` check: the DFA contains every match (exhaustive
and hypothesis-drawn strings against `regex`), masks equal a brute-force scan of the vocabulary by `regex` partial
matching, every sampler's outputs fullmatch, and checks have a time budget."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import regex
from conftest import tokenizer_and_vocab
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_regex_assertions import patterns
from tiny_models import tiny_llama

from genlab import CheckTimeoutError, EmptyLanguageError, Pattern, Predicate
from genlab.automata.relax import character_cells, over_approximation, pattern_dfa
from genlab.constraints.predicate import PredicateMatcher
from genlab.constraints.regex import DFAMatcher
from genlab.samplers.masking import masked_sampling
from genlab.samplers.smc import smc
from genlab.vocab import TokenVocabulary

# (pattern, flags, whether a DFA over-approximation is expected)
PATTERNS = [
    (r"(a|b)c\1", 0, True),  # backreference
    (r"(?P<w>[ab]+) (?P=w)", 0, True),  # named backreference
    (r"a(?=b)[a-c]+", 0, True),  # lookahead
    (r"[abc]+(?<!c)", 0, True),  # negative lookbehind
    (r"(?<=a)b|ab", 0, True),  # lookbehind
    (r"(?!ab)[ab]{2,3}", 0, True),  # negative lookahead
    (r"(?>a|ab)c", 0, True),  # atomic group
    (r"a*+b?c", 0, True),  # possessive quantifier
    (r"(a)?(?(1)b|c)", 0, True),  # conditional
    (r"\ba b\b", 0, True),  # word boundaries
    (r"a\Bb", 0, True),  # non-boundary
    (r"\p{Lu}\p{Ll}+", 0, True),  # Unicode properties
    (r"[\p{N}a]+b", 0, True),  # a property inside a class
    (r"\((?:[^()]|(?R))*\)", 0, True),  # recursion
    (r"(?i)(a)B\1", 0, True),  # flags and a backreference
    (r"(?V1)[[a-c]--b]+", 0, True),  # set operations: version 1 only, read by the regex package itself
    (r"[[:alpha:]é]+1", 0, True),  # a POSIX class
    (r"[[:abc]x|[a[:digit:]]b", 0, True),  # an unclosed "[:" is literal; a POSIX class inside a class
    (r"(?P<p>a(?&p)?b)", 0, True),  # recursion by name
    (r"(?:abc){e<=1}", 0, False),  # fuzzy matching
    (r"(?|(a)|(b))\1", 0, False),  # branch reset
]
ALPHABET = "abcAB() é1"


def _matches(pattern: str, flags: int, text: str, partial: bool = False) -> bool:
    return regex.fullmatch(pattern, text, flags, partial=partial) is not None


@pytest.mark.parametrize("pattern, flags, expected", PATTERNS, ids=[p for p, _, _ in PATTERNS])
def test_the_dfa_contains_every_match_and_every_prefix(pattern, flags, expected):
    """Every string over a small alphabet up to 4 characters: a match is accepted by the over-approximation, and
    a prefix of a match never leaves it (the prefix property survives the product)."""
    dfa = over_approximation(pattern, flags)
    assert (dfa is not None) == expected
    if dfa is None:
        return
    accepted = 0
    for n in range(5):
        for chars in itertools.product(ALPHABET, repeat=n):
            text = "".join(chars)
            data = text.encode()
            if _matches(pattern, flags, text):
                accepted += 1
                assert dfa.accepts(data), text
            elif _matches(pattern, flags, text, partial=True):
                assert dfa.run(data) >= 0, text
    assert accepted > 0


RECURSIONS = [  # (pattern, alphabet, longest string): deep enough to pass the inlining depth
    (r"(<(?:a|(?1)){0,3}>)", "<>a1", 8),
    (r"((?:(a|b)(?1)\2)|c)", "abc1", 9),
    (r"(\((?:[0-9+]|(?1))*\))", "()1+x", 8),
    (r"(x(?=[xy])(?1)?y)", "xyz", 10),
    (r"(?x) ( a (?1)? b )", "ab ", 9),  # verbose: the cut-off stays any text
    (r"(?i)(A(?1)?b)", "aAbB", 8),
    (r"(\[(?:\d|\s|(?1)){0,3}\])", "[]1 a", 8),  # classes by category
]


@pytest.mark.parametrize("pattern, alphabet, longest", RECURSIONS, ids=[p for p, _, _ in RECURSIONS])
def test_recursions_past_the_inlining_depth_keep_every_match(pattern, alphabet, longest):
    """Past the inlining depth a recursion is widened to runs of its group's characters: every match (nested
    deeper than the inlining) is still accepted, and a prefix of one never leaves the DFA."""
    dfa = over_approximation(pattern)
    deep = 0
    for n in range(longest + 1):
        for chars in itertools.product(alphabet, repeat=n):
            text = "".join(chars)
            if _matches(pattern, 0, text):
                deep += n > 6
                assert dfa.accepts(text.encode()), text
            elif _matches(pattern, 0, text, partial=True):
                assert dfa.run(text.encode()) >= 0, text
    assert deep > 0


def test_a_recursion_cut_off_admits_only_its_group_characters():
    """Nested three deep, the cut-off admits what the group can hold and no other character."""
    dfa = over_approximation(r"(<(?:a|(?1)){0,3}>)")
    assert dfa.accepts(b"<<<<a>a<>>>>")
    assert dfa.run(b"<<<<1") < 0 and dfa.run(b"<<< ") < 0  # the old cut-off (any text) let both through
    digits = over_approximation(r"(\[(?:\d|(?1)){0,3}\])")
    assert digits.accepts("[[[[٣]]]]".encode()) and digits.run(b"[[[[a") < 0  # \d: any digit, nothing else


CELL_CASES = [  # (pattern, texts that start a match)
    (r"(?i) \b(\w{2,8})\b \1\b\.", [" Hello ", " Hello hel", " ab", " 漢字 ", " Straße str", " ǅx "]),
    (r" ([α-ω]{1,4})-\1", [" αβ-", " αβ-α", " ω"]),
    (r"\p{Han}{2}[^\p{Han}\s]", ["漢", "漢字", ""]),
    (r"(?=\w*[٠-٩])\w{1,5}\.", ["ab", "٣", "x٣y"]),
    (r"(?i)(?:straße|σας)+!", ["stra", "STRA", "σα", "straßeσ"]),
    (r"(\w)\1+(?<!ा)\b", ["क", "कक", "é"]),
]
LEADS = [bytes([b]) for b in range(0xC2, 0xF0)] + [b"\xe4\xb8", b"\xce", b"\xe0\xa5", b"\xc3"]


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(range(len(CELL_CASES))), st.data())
def test_live_tries_one_character_per_cell_and_agrees_with_trying_all(case, data):
    """Whether some character can follow a text, told by one character of each cell of interchangeable ones (and
    the text's own), is what trying every character the pending bytes can start says."""
    pattern, texts = CELL_CASES[case]
    constraint = Pattern(pattern)
    assert character_cells(pattern) is not None
    text = data.draw(st.sampled_from(texts) | st.text(alphabet="abé漢字٣αβ -ßσΣक", max_size=6))
    state = text.encode() + data.draw(st.sampled_from(LEADS))
    vocab = TokenVocabulary.from_bytes([b"a"], eos_ids=[])
    fast = PredicateMatcher(vocab, constraint.prefix, constraint.complete, "fast", constraint.characters)
    every = PredicateMatcher(vocab, constraint.prefix, constraint.complete, "every")
    assert fast.live(state) == every.live(state), (pattern, state)


def test_characters_are_few_for_a_block_the_pattern_does_not_split():
    constraint = Pattern(r"(?i) \b(\w{2,8})\b \1\b\.")
    assert len(constraint.characters(" Hello ", 0x4000, 0x4FFF)) <= 3  # CJK: word characters, none cased
    assert 0x4E2D in constraint.characters(" 中 ", 0x4000, 0x4FFF)  # the text's own characters are tried
    assert character_cells(r"\X+") is None  # graphemes: no cells, every character tried


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([p for p in PATTERNS if p[2]]), st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_hypothesis_strings(case, text):
    pattern, flags, _ = case
    dfa = over_approximation(pattern, flags)
    if _matches(pattern, flags, text):
        assert dfa.accepts(text.encode())
    if _matches(pattern, flags, text, partial=True):
        assert dfa.run(text.encode()) >= 0


@pytest.mark.parametrize(
    "pattern",
    # (no `\b` right after a non-word character: `regex`'s partial matching reads the end of the text there as the
    # end, so it is no oracle for such prefixes)
    [r"(\w)\w*\1", r" (?=[A-Z])\w+(?<!s)\.", r"(?i)(ab|cd) \1!", r" [a-z]+\b(?: \w+)?", r" (\()?[0-9]{2}(?(1)\))"],
)
def test_masks_equal_a_brute_force_scan(pattern):
    """At states along a walk, the mask equals `regex` partial matching of every token's text, one by one (for
    DFA-times-check matchers and exact DFAs alike)."""
    _, vocab = tokenizer_and_vocab("smollm2")
    constraint = Pattern(pattern)
    matcher = constraint.compile(vocab)
    text_ids = np.flatnonzero(vocab.is_text)
    state, data = matcher.start(), b""
    for step in range(3):
        mask = np.asarray(matcher.mask(state), dtype=bool)
        text = data.decode()
        brute = np.zeros(vocab.size, dtype=bool)
        for t in text_ids.tolist():
            try:
                candidate = text + vocab.token_bytes[t].decode()
            except UnicodeDecodeError:  # a piece of a character: the matcher decides (PredicateMatcher's tests)
                brute[t] = mask[t]
                continue
            brute[t] = regex.fullmatch(pattern, candidate, partial=True) is not None
        for e in vocab.eos_ids:
            brute[e] = regex.fullmatch(pattern, text) is not None
        assert np.array_equal(mask, brute), np.flatnonzero(mask != brute)[:10]
        assert all(matcher.allows(state, t) == mask[t] for t in np.flatnonzero(mask)[:50])
        allowed = [t for t in np.flatnonzero(mask) if t not in vocab.eos_ids]
        if not allowed:
            break
        token = allowed[(7 * step) % len(allowed)]
        state, data = matcher.advance(state, token), data + vocab.token_bytes[token]


# regular after all: compiled to the exact DFA, `regex`'s reading of \w, \b and \B (a combining mark is a word
# character to it, not to `re`; `\B` matches in the empty text)
EXACT = [
    r"(?=\w*é)\w{2,4}",
    r"\b\w+\b(?: \w+)?",
    r"\B\w?",
    r"(?:\B.)*",
    r"[a-z]{1,4}(?<!ab)(?<=[^c])",
    r"(\()?\d{1,2}(?(1)\))",
    r"\p{L}+(?<!\p{Lu})",
    r"(?V1)[\w--\d]+(?=\.)\.?",
    r"(?<=a|bc)\w|\w+",  # a lookbehind of varying width: the regex package takes it
    r"(?>a|ab)b?\w*+",
    r"(?(?=\d)\d{2}|[a-zé]{1,3})",  # a conditional on a lookaround: (?:(?=A)yes|(?!A)no)
    r"(?:a(?(?<!a)b|\w))+",
]


@pytest.mark.parametrize("pattern", EXACT)
def test_regular_patterns_compile_to_their_exact_dfa(pattern):
    """Every string up to 4 characters over an alphabet with a combining mark, a digit of another script and a
    CJK character: the DFA accepts exactly what `regex.fullmatch` does, and the matcher is the DFA's."""
    constraint = Pattern(pattern)
    assert constraint.exact and constraint.describe()["enforced_by"] == "exact DFA"
    for n in range(5):
        for chars in itertools.product("aé\u0301٣1 .中B", repeat=n):
            text = "".join(chars)
            assert constraint.dfa.accepts(text.encode()) == (regex.fullmatch(pattern, text) is not None), text
    _, vocab = tokenizer_and_vocab("smollm2")
    assert isinstance(constraint.compile(vocab), DFAMatcher) and constraint.compile(vocab).cheap_masks


def test_smc_on_an_exact_pattern_checks_nothing(tiny):
    """A regular pattern's masks are cheap: SMC fetches each state's mask first, so its AWRS steps are exact and
    make no `allows` call and no `regex` call; every finished output fullmatches."""
    pattern = r"(?=[ab]{2})[a-c]{2,4}(?<!c)"
    constraint = Pattern(pattern)
    result = smc(tiny, constraint, "x", n_particles=4, max_tokens=8, seed=0)
    assert result.counts.checks == 0 and result.counts.masks > 0 and constraint.calls == 0
    assert any(result.complete)
    for sample in result.samples:
        if sample.complete:
            assert regex.fullmatch(pattern, sample.text), sample.text


def test_patterns_that_are_not_regular_stay_dfa_times_check():
    for pattern in (r"(a)\1", r"(?>(a)|b)\1", r"(?>a?)*+b", r"(?i)\bab", r"\((?:a|(?R))*\)", r"\X+", r"(?!(a)\1)\w+"):
        constraint = Pattern(pattern)
        assert not constraint.exact and constraint.describe()["enforced_by"] == "DFA x check", pattern


UNICODE_ATOMS = ("a", "é", "[aé]", ".", r"\w", r"\d", " ", "\u0301", r"\s", "٣", r"\p{L}", r"[^\W\d]")


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.sampled_from(["", "(a)?", "(?:(a)|é)*"]), patterns(3, UNICODE_ATOMS)).map("".join),
    st.lists(st.text(alphabet="aé\u0301 ٣1b", max_size=8), min_size=10, max_size=10),
)
def test_hypothesis_patterns_are_exact_or_supersets_under_regex(pattern, texts):
    """Random patterns with lookarounds, boundaries, conditionals, atomic groups and Unicode classes, read by the
    `regex` package: an exact DFA accepts exactly what `regex.fullmatch` does, any other DFA at least that, on
    every string up to 3 characters over an alphabet with a combining mark and an Arabic-Indic digit and 10 drawn
    ones."""
    try:
        compiled = regex.compile(pattern)
    except regex.error:
        assume(False)
    try:
        dfa, exact = pattern_dfa(pattern, max_states=3000)
    except EmptyLanguageError:
        dfa, exact = None, True
    assume(dfa is not None or exact)
    short = ["".join(c) for n in range(4) for c in itertools.product("aé\u0301 ٣1", repeat=n)]
    for text in short + texts:
        matched = compiled.fullmatch(text) is not None
        accepted = dfa is not None and dfa.accepts(text.encode())
        assert accepted == matched if exact else accepted or not matched, (pattern, text, exact)


def test_prefixes_before_a_word_boundary_stay_live():
    """The `regex` package's partial matching reads `\\b` at the end of the text as the end (" \\bab" refuses " ");
    `Pattern` checks prefixes with the boundaries written as lookarounds, so its mask equals the exact one: the
    prefixes of the full matches of a finite language, enumerated."""
    pattern = r" \b([a-c])[a-c]{0,2}\1\b\.?"
    assert regex.fullmatch(pattern.replace("\\1", "a"), " ", partial=True) is None  # the package's own reading
    constraint = Pattern(pattern)
    assert not constraint.exact
    words = [" " + "".join(w) for n in range(2, 5) for w in itertools.product("abc", repeat=n)]
    matches = [t for w in words for t in (w, w + ".") if regex.fullmatch(pattern, t)]
    prefixes = {m[:k] for m in matches for k in range(len(m) + 1)}
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = constraint.compile(vocab)
    state, text = matcher.start(), ""
    for step in range(3):
        mask = np.asarray(matcher.mask(state), dtype=bool)
        expected = np.zeros(vocab.size, dtype=bool)
        for t in np.flatnonzero(vocab.is_text).tolist():
            piece = vocab.token_bytes[t].decode("utf-8", errors="replace")
            expected[t] = text + piece in prefixes
        for e in vocab.eos_ids:
            expected[e] = text in matches
        assert np.array_equal(mask, expected), (text, np.flatnonzero(mask != expected)[:10])
        allowed = [t for t in np.flatnonzero(mask) if t not in vocab.eos_ids]
        token = allowed[(5 * step) % len(allowed)]
        state, text = matcher.advance(state, token), text + vocab.token_bytes[token].decode()
    space = next(t for t in np.flatnonzero(vocab.is_text) if vocab.token_bytes[t] == b" ")
    assert matcher.allows(matcher.start(), space)  # what the package's partial matching alone would refuse


def test_a_condition_in_a_loop_that_can_match_nothing_is_checked():
    """The `regex` package prunes empty loop iterations its own way: here it refuses "aa", which every path of
    the pattern's plain reading (and `re`) accepts. Such a pattern is a DFA times a check, so the check decides."""
    pattern = r"(a)?(?:(?:(?(1)x|a))?)*?"
    assert regex.fullmatch(pattern, "aa") is None and regex.fullmatch(pattern, "a") is not None
    constraint = Pattern(pattern)
    assert not constraint.exact and constraint.dfa.accepts(b"aa")  # the superset keeps it; the check does not
    assert not constraint.check("aa") and constraint.check("a")


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama(attention="sdpa")


@pytest.mark.parametrize(
    "pattern",
    [r"([a-c])[a-z]{0,3}\1", r"(?=\w{3})[a-z]{3,6}(?<!x)", r"(?>ab|a)c{1,3}", r"(a)?(?(1)b|c)d", r"\p{Ll}{2,4}"],
)
def test_every_sampler_output_fullmatches(tiny, pattern):
    constraint = Pattern(pattern)
    results = [
        masked_sampling(tiny, constraint, "x", n=4, max_tokens=10, seed=0),
        smc(tiny, constraint, "x", n_particles=4, max_tokens=10, seed=0),
        smc(tiny, constraint, "x", n_particles=4, max_tokens=10, seed=1, proposal="mask"),
    ]
    for result in results:
        for sample in result.samples:
            if sample.complete:
                assert regex.fullmatch(pattern, sample.text), (result.method, sample.text)
            else:
                assert regex.fullmatch(pattern, sample.text, partial=True), (result.method, sample.text)
        assert any(result.complete), result.method


def test_a_backtracking_check_fails_clearly_instead_of_hanging():
    constraint = Pattern(r"(a|aa)+c", timeout=0.05)
    t0 = time.perf_counter()
    with pytest.raises(CheckTimeoutError, match=r"\(a\|aa\)\+c.*0.05 s"):
        constraint.prefix("a" * 60 + "b")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(CheckTimeoutError):
        constraint.check("a" * 60)


def test_a_slow_predicate_fails_clearly():
    def slow(text: str) -> bool:
        time.sleep(0.1)
        return True

    _, vocab = tokenizer_and_vocab("smollm2")
    a = vocab.token_bytes.index(b"a")
    matcher = Predicate(prefix=slow, name="slow", timeout=0.02).compile(vocab)
    with pytest.raises(CheckTimeoutError, match="slow.*0.02 s"):
        matcher.advance(matcher.start(), a)
    relaxed = Predicate(prefix=slow, timeout=None).compile(vocab)
    assert relaxed.advance(relaxed.start(), a) == b"a"


def test_patterns_without_a_safe_superset_still_work(tiny):
    """Fuzzy matching: no DFA; every token is checked exactly (mask included)."""
    pattern = r"(?:abc){e<=1}"
    constraint = Pattern(pattern)
    assert constraint.dfa is None
    result = masked_sampling(tiny, constraint, "x", n=2, max_tokens=6, seed=0)
    for s in result.samples:  # an unfinished output may end inside a character: its complete part is checked
        assert regex.fullmatch(pattern, s.data.decode("utf-8", "ignore"), partial=not s.complete), s.text


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([r"(?V1)[\w--\d]{1,3}", r"\p{Greek}+\p{Nd}", r"(?V1)[[:alpha:]&&[^a-m]]+", r"[\p{L}--]+"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6) | st.text(alphabet="aqz1αβ9-_Ω", max_size=6),
)
def test_classes_the_regex_package_reads_are_exact(pattern, text):
    """Properties, POSIX classes and set operations become the exact character sets: the DFA is the language."""
    dfa = over_approximation(pattern)
    assert dfa.accepts(text.encode()) == (regex.fullmatch(pattern, text) is not None)


def test_awrs_walks_the_dfa_superset_and_stays_properly_weighted():
    """Against exact enumeration: AWRS steps on a Pattern state draw tokens with p restricted to the allowed set,
    and their weights average to Z; the superset spares the checks of every token outside the DFA's mask."""
    from genlab.samplers.awrs import AWRS

    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Pattern(r"([a-c])[a-z]{0,2}\1").compile(vocab)
    state = matcher.advance(matcher.start(), vocab.token_bytes.index(b"b"))
    rng = np.random.default_rng(0)
    logp = rng.standard_normal(vocab.size) * 3
    logp -= np.log(np.exp(logp).sum())
    allowed = np.asarray(matcher.mask(state), dtype=bool)
    z = np.exp(logp[allowed]).sum()
    target = np.exp(logp) * allowed / z
    draws, weights, checks = np.zeros(vocab.size), [], 0
    awrs = AWRS()
    for _ in range(3000):
        step = awrs.step(logp, matcher, state, rng)
        draws[step.token] += 1
        weights.append(np.exp(step.log_weight))
        checks += step.checks
    assert abs(np.mean(weights) / z - 1) < 0.05
    first = np.maximum(
        vocab.first_bytes, 0
    )  # the draws' law, by first byte: few categories, so 3,000 draws pin it down
    seen = np.bincount(first[draws > 0], weights=draws[draws > 0], minlength=256) / draws.sum()
    expected = np.bincount(first, weights=target, minlength=256)
    assert 0.5 * np.abs(seen - expected).sum() < 0.05  # total variation
    assert checks / 3000 < 10 and matcher.superset(state).sum() < 2000
