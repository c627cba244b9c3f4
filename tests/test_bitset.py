"""Token bitsets (`genlab/bitset.py`) against numpy's own bit packing, and `Matcher.fill_bitmask` against `mask`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tokenizer_and_vocab
from numba import njit

from genlab import Grammar, Predicate, Regex, bitset
from genlab.constraints.base import Matcher
from genlab.errors import ConstraintError


@pytest.mark.parametrize("size", [1, 31, 32, 33, 64, 1000, 49_153])
def test_pack_and_unpack_are_numpys_little_endian_bits(size):
    rng = np.random.default_rng(size)
    mask = rng.random(size) < 0.3
    words = bitset.pack(mask)
    assert words.dtype == np.uint32 and len(words) == bitset.n_words(size) == (size + 31) // 32
    for t in rng.choice(size, min(size, 200), replace=False):  # token t is bit t % 32 of word t // 32
        assert bool((int(words[t >> 5]) >> (t & 31)) & 1) == mask[t]
    assert np.array_equal(bitset.unpack(words, size), mask)
    assert np.array_equal(bitset.unpack(words.view(np.int32), size), mask)


@njit(cache=False)
def _mark_all(out, tokens):
    for t in tokens:
        bitset.mark(out, t)


def test_mark_writes_bool_masks_and_bitsets_alike():
    size = 1000
    tokens = np.array([0, 31, 32, 63, 64, 999, 500, 31], np.int64)
    as_bool = np.zeros(size, np.bool_)
    as_bits = bitset.empty(size)
    _mark_all(as_bool, tokens)
    _mark_all(as_bits, tokens)
    want = np.zeros(size, np.bool_)
    want[tokens] = True
    assert np.array_equal(as_bool, want)
    assert np.array_equal(bitset.unpack(as_bits, size), want)
    assert as_bits[0] == np.uint32(1 | 1 << 31)  # bit 31 set without overflow


def test_token_bits_set_and_clear_ids_sharing_a_word():
    size = 200
    ids = [3, 5, 40, 199]
    bits = bitset.TokenBits(ids)
    words = bitset.pack(np.arange(size) % 7 == 0)
    before = bitset.unpack(words, size).copy()
    bits.write(words, True)
    want = before.copy()
    want[ids] = True
    assert np.array_equal(bitset.unpack(words, size), want)
    bits.write(words, False)
    want[ids] = False
    assert np.array_equal(bitset.unpack(words, size), want)


def test_a_wrong_buffer_is_refused_with_what_is_wrong():
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Regex(r"[a-z]+").compile(vocab)
    good = matcher.new_bitmask()
    assert good.dtype == np.int32 and len(good) == bitset.n_words(vocab.size)
    for bad, what in [
        (np.zeros(len(good), np.int64), "int32 or uint32"),
        (good[:-1].copy(), "words"),
        (np.zeros(2 * len(good), np.int32)[::2], "contiguous"),
        (good.reshape(1, -1), "1-D"),
    ]:
        with pytest.raises(ValueError, match=what):
            matcher.fill_bitmask(matcher.start(), bad)
    frozen = good.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        matcher.fill_bitmask(matcher.start(), frozen)


def _dirty(matcher) -> np.ndarray:
    """A bitmask buffer with every bit set, so a fill that skips a word shows."""
    return np.full(len(matcher.new_bitmask()), -1, np.int32)


LONG_LITERAL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"  # 43 byte classes: walked on the byte trie


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
@pytest.mark.parametrize(
    "pattern, text, goes_on",
    [
        (r"(19|20)\d\d-[01]\d-[0-3]\d( ok)?", "2024-05-17 ok", False),
        (f"({LONG_LITERAL}| ?[a-z]+)+", f" ab{LONG_LITERAL} cd", True),
    ],
    ids=["class-trie", "byte-trie"],
)
def test_regex_bitmasks_equal_masks(name, pattern, text, goes_on):
    tok, vocab = tokenizer_and_vocab(name)
    matcher = Regex(pattern).compile(vocab)
    state = matcher.start()
    for t in tok.encode(text, add_special_tokens=False):
        for _ in range(2):  # built, then from the cache
            words = _dirty(matcher)
            matcher.fill_bitmask(state, words)
            assert np.array_equal(bitset.unpack(words, vocab.size), matcher.mask(state))
        state = matcher.advance(state, t)
    words = _dirty(matcher)
    matcher.fill_bitmask(state, words)
    assert bitset.unpack(words, vocab.size)[sorted(vocab.eos_ids)].all()  # final: EOS allowed
    assert (bitset.unpack(words, vocab.size).sum() > len(vocab.eos_ids)) == goes_on  # and tokens that go on


def test_grammar_bitmasks_of_many_thread_states_are_unions():
    tok, vocab = tokenizer_and_vocab("smollm2")
    # "a" can end a lexeme of three terminals at once: states hold several threads
    grammar = Grammar('start: (A | B | C | W)+\nA: /a+/\nB: /ab*/\nC: /a[bc]*/\nW: " "\n')
    matcher = grammar.compile(vocab)
    state, widths = matcher.start(), set()
    for t in tok.encode("aab abc a ab", add_special_tokens=False):
        widths.add(len(state))
        fresh = grammar._compile(vocab)  # builds each thread's mask inside the fill
        words = _dirty(fresh)
        fresh.fill_bitmask(state, words)
        union = np.zeros(vocab.size, np.bool_)
        for thread in state:
            union |= matcher.mask((thread,))
        assert np.array_equal(bitset.unpack(words, vocab.size), union)
        assert np.array_equal(matcher.mask(state), union)
        state = matcher.advance(state, t)
    assert max(widths) >= 3, widths


class _BoolOnly(Matcher):
    """A matcher with only a bool `mask`: `fill_bitmask` falls back to packing it."""

    def __init__(self, vocab, allowed):
        self.vocab, self.allowed = vocab, allowed

    def start(self):
        return 0

    def advance(self, state, token_id):
        return state if self.allowed[token_id] else None

    def allows(self, state, token_id):
        return bool(self.allowed[token_id])

    def mask(self, state):
        return self.allowed

    def is_final(self, state):
        return False


def test_the_default_fill_packs_the_bool_mask():
    _, vocab = tokenizer_and_vocab("smollm2")
    allowed = np.random.default_rng(1).random(vocab.size) < 0.5
    matcher = _BoolOnly(vocab, allowed)
    words = _dirty(matcher)
    matcher.fill_bitmask(0, words)
    assert np.array_equal(bitset.unpack(words, vocab.size), allowed)


def test_predicates_have_no_bitmasks_either():
    _, vocab = tokenizer_and_vocab("smollm2")
    matcher = Predicate(prefix=lambda text: True).compile(vocab)
    with pytest.raises(ConstraintError, match="no token masks"):
        matcher.fill_bitmask(matcher.start(), matcher.new_bitmask())
