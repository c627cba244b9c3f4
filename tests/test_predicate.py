"""Predicate and Pattern: token-by-token checks on text, random walks on real vocabularies, split UTF-8 characters."""

from __future__ import annotations

import random

import numpy as np
import pytest
import regex
from conftest import tokenizer_and_vocab

from genlab import ConstraintError, InvalidPatternError, Pattern, Predicate
from genlab.constraints.pattern import PatternMatcher


def balanced_prefix(text: str) -> bool:
    depth = 0
    for c in text:
        if c not in "()":
            return False
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return True


def balanced(text: str) -> bool:
    return bool(text) and balanced_prefix(text) and text.count("(") == text.count(")")


def walk(constraint, vocab, pool: np.ndarray, rng: random.Random, steps: int, full) -> tuple[bytes, bool]:
    """A random walk of allowed tokens; at each state `allows` is compared with `advance` on random candidates
    (from the whole vocabulary and from `pool`) and EOS is allowed exactly when `full(text)`. Returns the bytes
    and whether the walk ended with EOS."""
    matcher = constraint.compile(vocab)
    text_ids = np.flatnonzero(vocab.is_text)
    eos = sorted(vocab.eos_ids)
    state = matcher.start()
    for _ in range(steps):
        assert isinstance(state, bytes)
        text = state.decode("utf-8", errors="ignore")
        pending = matcher.inside_character(state)
        final = not pending and full(state.decode())
        assert matcher.is_final(state) == final, state
        for e in eos:
            assert matcher.allows(state, e) == final
            assert matcher.advance(state, e) == (state if final else None)
        if final and rng.random() < 0.5:
            assert constraint.check(state) and constraint.check(text)
            return state, True
        candidates = [int(t) for t in rng.sample(list(text_ids), 200)] + [int(t) for t in rng.choices(list(pool), k=40)]
        rng.shuffle(candidates)
        chosen = None
        for t in candidates:
            nxt = matcher.advance(state, t)
            assert matcher.allows(state, t) == (nxt is not None)
            if nxt is not None:
                assert nxt == state + vocab.token_bytes[t]
                if chosen is None:
                    chosen = nxt
        if chosen is None:
            break
        state = chosen
    return state, False


@pytest.mark.parametrize("seed", range(6))
def test_pattern_backreference_walks(seed):
    _, vocab = tokenizer_and_vocab("smollm2")
    pattern = r"(\w)\w*\1"
    constraint = Pattern(pattern)
    short = regex.compile(rb"[a-z]{1,3}")
    ascii_words = np.array([t for t in np.flatnonzero(vocab.is_text) if short.fullmatch(vocab.token_bytes[t])])
    rng = random.Random(seed)
    completed = 0
    for _ in range(16):
        data, done = walk(constraint, vocab, ascii_words, rng, 12, lambda s: regex.fullmatch(pattern, s) is not None)
        if done:
            completed += 1
            text = data.decode()
            assert regex.fullmatch(pattern, text) and text[0] == text[-1]
        else:
            text = data.decode("utf-8", errors="ignore")
            assert regex.fullmatch(pattern, text, partial=True)
    assert completed >= 1


@pytest.mark.parametrize("seed", range(4))
def test_python_predicate_walks(seed):
    _, vocab = tokenizer_and_vocab("smollm2")
    constraint = Predicate(prefix=balanced_prefix, complete=balanced, name="parens")
    parens = np.array([t for t in np.flatnonzero(vocab.is_text) if set(vocab.token_bytes[t]) <= set(b"()")])
    rng = random.Random(seed)
    completed = 0
    for _ in range(8):
        data, done = walk(constraint, vocab, parens, rng, 12, balanced)
        assert balanced_prefix(data.decode("utf-8", errors="ignore"))
        if done:
            completed += 1
            assert balanced(data.decode())
    assert completed >= 1


def test_predicate_mask_raises():
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Predicate(prefix=balanced_prefix).compile(vocab)
    with pytest.raises(ConstraintError, match="Regex"):
        matcher.mask(matcher.start())


def test_non_text_ids_are_never_allowed():
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Predicate().compile(vocab)  # accepts everything
    special = [t for t in range(vocab.size) if not vocab.is_text[t] and t not in vocab.eos_ids]
    assert special and not any(matcher.allows(b"x", t) for t in special)
    assert all(matcher.allows(b"x", t) for t in vocab.eos_ids)


def test_split_utf8_character():
    """`<0xC3>` then `<0xA9>` spell "é" across two byte tokens: the prefix check waits for the whole character."""
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    c3, a9, a8 = tok.convert_tokens_to_ids(["<0xC3>", "<0xA9>", "<0xA8>"])
    assert vocab.token_bytes[c3] == b"\xc3" and vocab.token_bytes[a9] == b"\xa9"
    by_bytes = {vocab.token_bytes[t]: t for t in np.flatnonzero(vocab.is_text)}
    caf = [by_bytes[b"c"], by_bytes[b"a"], by_bytes[b"f"]]
    seen: list[str] = []

    def prefix(text: str) -> bool:
        seen.append(text)
        return "café".startswith(text)

    # Pattern("café") alone would compile to its exact DFA; its DFA-times-check matcher is the one under test
    for constraint in (Predicate(prefix=prefix, complete=lambda t: t == "café"), Pattern("café")):
        matcher = PatternMatcher(constraint, vocab) if isinstance(constraint, Pattern) else constraint.compile(vocab)
        state = matcher.advance_many(matcher.start(), caf)
        assert state == b"caf"
        pending = matcher.advance(state, c3)
        assert pending == b"caf\xc3" and matcher.inside_character(pending)
        assert not matcher.is_final(pending) and not any(matcher.allows(pending, e) for e in vocab.eos_ids)
        assert matcher.advance(pending, a8) is None  # "cafè"
        done = matcher.advance(pending, a9)
        assert done == "café".encode() and matcher.is_final(done)
        assert all(matcher.allows(done, e) for e in vocab.eos_ids)
        assert matcher.advance(matcher.start(), a9) is None  # a continuation byte cannot start a character
        assert matcher.advance(pending, c3) is None  # nor can a lead byte follow a lead byte
        assert constraint.check("café") and not constraint.check("caf") and not constraint.check(b"caf\xc3")
    assert seen and all("\ufffd" not in s for s in seen)


def test_live_lead_bytes():
    _, vocab = tokenizer_and_vocab("smollm2")
    assert not PatternMatcher(Pattern(r"[a-z]+"), vocab).live(b"ab\xc3")
    assert PatternMatcher(Pattern(r"\w+"), vocab).live(b"ab\xc3")
    assert PatternMatcher(Pattern(r"ab😀"), vocab).live(b"ab\xf0\x9f")
    assert not PatternMatcher(Pattern(r"ab😀"), vocab).live(b"ab\xf0\x90")


def test_pattern_errors_and_describe():
    with pytest.raises(InvalidPatternError, match="unbalanced|missing"):
        Pattern(r"(ab")
    assert Pattern(r"(?<=a)b|a").describe() == {
        "type": "pattern",
        "pattern": r"(?<=a)b|a",
        "flags": 0,
        "enforced_by": "exact DFA",
        "dfa_states": 2,
    }
    assert Predicate(complete=balanced).describe() == {"type": "predicate", "name": "balanced"}
    assert Pattern(r"(?i)(\w)\1").check("aA") and not Pattern(r"(\w)\1").check("ab")
