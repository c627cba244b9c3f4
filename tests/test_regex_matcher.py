"""The regex matcher on real vocabularies: masks against brute force, allows/advance/mask agreement, EOS, Unicode."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from conftest import tokenizer_and_vocab

from genlab import Regex
from genlab.automata.dfa import run_bytes

PATTERNS = [
    r"\d{3}-\d{4}",
    r"[a-z]+@[a-z]+\.(com|org)",
    r'"(?:[^"\\\x00-\x1f]|\\.)*"',
    r"[α-ω]+ ?\w*",
    r"(true|false|null)",
    r" ?(red|grey|blue-green|bluish)\.",
    r"\w+( \w+){0,3}",
]


def brute_force_mask(regex: Regex, vocab, state: int) -> np.ndarray:
    """Every token id walked on its own through the DFA table (no trie, no cache)."""
    dfa = regex.dfa
    want = np.zeros(vocab.size, np.bool_)
    for t in np.flatnonzero(vocab.is_text):
        want[t] = run_bytes(dfa.transitions, np.frombuffer(vocab.token_bytes[t], np.uint8), state) >= 0
    for t in vocab.eos_ids:
        want[t] = bool(dfa.accepting[state])
    return want


def random_walk(matcher, rng: random.Random, steps: int) -> list[int]:
    """DFA states along a random path of allowed tokens."""
    state, seen = matcher.start(), [matcher.start()]
    for _ in range(steps):
        choices = np.flatnonzero(matcher.mask(state) & matcher.vocab.is_text)
        if len(choices) == 0:
            break
        state = matcher.advance(state, int(rng.choice(choices)))
        assert state is not None
        seen.append(state)
    return seen


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_mask_equals_brute_force(name, pattern):
    _, vocab = tokenizer_and_vocab(name)
    regex = Regex(pattern)
    matcher = regex.compile(vocab)
    rng = random.Random(hash((name, pattern)) & 0xFFFF)
    states = sorted(set(random_walk(matcher, rng, 6)))
    for state in states:
        mask = matcher.mask(state)
        assert np.array_equal(mask, brute_force_mask(regex, vocab, state)), (pattern, state)
        assert not mask.flags.writeable
        assert mask.shape == (vocab.size,) and mask.dtype == np.bool_


@pytest.mark.parametrize("pattern", PATTERNS[:4])
def test_allows_advance_and_mask_agree(pattern):
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Regex(pattern).compile(vocab)
    rng = random.Random(7)
    for state in set(random_walk(matcher, rng, 5)):
        mask = matcher.mask(state)
        probe = list(np.flatnonzero(mask)[:200]) + [rng.randrange(vocab.size) for _ in range(300)]
        probe += list(vocab.eos_ids) + [int(np.flatnonzero(~vocab.is_text)[0])]
        for t in probe:
            assert matcher.allows(state, int(t)) == bool(mask[t])
            assert (matcher.advance(state, int(t)) is not None) == bool(mask[t])


def test_eos_exactly_in_final_states():
    tok, vocab = tokenizer_and_vocab("smollm2")
    matcher = Regex(r"ab|abc").compile(vocab)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    s = matcher.advance_many(matcher.start(), tok.encode("ab", add_special_tokens=False))
    assert matcher.is_final(s) and matcher.allows(s, eos) and matcher.advance(s, eos) == s
    assert not matcher.allows(matcher.start(), eos) and matcher.advance(matcher.start(), eos) is None
    s = matcher.advance_many(matcher.start(), tok.encode("a", add_special_tokens=False))
    assert not matcher.is_final(s) and not matcher.mask(s)[eos]


def test_masks_are_cached_per_state_and_vocab():
    _, vocab = tokenizer_and_vocab("smollm2")
    regex = Regex(r"\d+")
    matcher = regex.compile(vocab)
    assert regex.compile(vocab) is matcher
    first = matcher.mask(matcher.start())
    assert matcher.mask(matcher.start()) is first and matcher.cached_masks == 1


@pytest.mark.parametrize("name", ["smollm2", "mistral-v1"])
def test_unicode_text_built_token_by_token(name):
    """Greek letters split across tokens (byte fallback on Mistral): every walk ends in valid, matching text."""
    _, vocab = tokenizer_and_vocab(name)
    pattern = r"[α-ω]{2,6}"
    matcher = Regex(pattern).compile(vocab)
    rng = random.Random(3)
    finished = 0
    for _ in range(40):
        state, out = matcher.start(), []
        while not matcher.is_final(state) or rng.random() < 0.5:
            choices = np.flatnonzero(matcher.mask(state) & vocab.is_text)
            if len(choices) == 0:
                break
            token = int(rng.choice(choices))
            state = matcher.advance(state, token)
            out.append(token)
        if matcher.is_final(state):
            text = vocab.decode(out).decode("utf-8")
            assert re.fullmatch(pattern, text), text
            finished += 1
    assert finished >= 30


def test_single_byte_tokens_split_characters():
    """A token holding only the first byte of a 2-byte character is allowed, and its partner completes it."""
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    matcher = Regex(r"é+").compile(vocab)
    first, second = tok.convert_tokens_to_ids("<0xC3>"), tok.convert_tokens_to_ids("<0xA9>")
    state = matcher.advance(matcher.start(), first)
    assert state is not None and not matcher.is_final(state)
    assert matcher.is_final(matcher.advance(state, second))
    assert not matcher.allows(matcher.start(), second)
