"""Vocabulary slices: sets of tokens a mask can take whole, computed once per vocabulary (llguidance's "slicer").

A slice is the set of text tokens whose bytes lie in a prefix-closed byte language given by a small DFA, here
JSON string content: UTF-8 text without '"', '\\' or control characters (a token may end inside a character).
A mask walk from a lexer state that keeps every string of that language alive (checked once per state, by a
bounded walk of the product with the slice's DFA: `automata/lexer.py`) starts from the slice's tokens and walks
the trie of the other tokens only (`outside_trie`). Inside a JSON string, where nearly every token is allowed,
the walk then visits the paths to the few tokens that close the string or escape, not the whole trie. From a
state that keeps such strings alive up to some length (inside a string of bounded length), the walk starts from
the slice tokens that short and skips the subtrees that hold only such tokens (`Slice.below`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from genlab import bitset
from genlab.jit import njit
from genlab.trie import TokenTrie


@dataclass(frozen=True, eq=False)
class Slice:
    """`table` [n_states, 256] (int32, -1 dead) is the slice language's DFA from state 0, every state accepting;
    `tokens` (bool per token id) the slice; `whole` (bool per trie node) says every token in the node's subtree is
    in it, and `below` (int32 per trie node) is then the byte length of its longest token (`NOT_WHOLE` where it is
    not); `lengths` (per token id) are byte lengths; `max_len` is the longest slice token's (how far a state's
    check must look)."""

    table: np.ndarray
    tokens: np.ndarray
    whole: np.ndarray
    below: np.ndarray
    lengths: np.ndarray
    max_len: int
    _bits: dict = field(default_factory=dict, repr=False)  # reach -> its tokens as a bitset

    def up_to(self, reach: int) -> np.ndarray:
        """A fresh bitset (`bitset.py`) of the slice's tokens of at most `reach` bytes."""
        reach = min(reach, self.max_len)
        bits = self._bits.get(reach)
        if bits is None:
            bits = self._bits[reach] = bitset.pack(self.tokens & (self.lengths <= reach))
        return bits.copy()


NOT_WHOLE = np.iinfo(np.int32).max  # `Slice.below` of a node with a token outside the slice below it


def _string_content_table() -> np.ndarray:
    """JSON string content as UTF-8, by the encoding's byte ranges (no overlongs, no surrogates, <= U+10FFFF)."""
    boundary, one, two, three, e0, ed, f0, f4 = range(8)  # characters completed / continuation bytes still due
    table = np.full((8, 256), -1, np.int32)
    table[boundary, 0x20:0x80] = boundary
    table[boundary, [ord('"'), ord("\\")]] = -1
    table[boundary, 0xC2:0xE0] = one
    table[boundary, 0xE0] = e0
    table[boundary, 0xE1:0xF0] = two
    table[boundary, 0xED] = ed
    table[boundary, 0xF0] = f0
    table[boundary, 0xF1:0xF4] = three
    table[boundary, 0xF4] = f4
    table[one, 0x80:0xC0] = boundary
    table[two, 0x80:0xC0] = one
    table[three, 0x80:0xC0] = two
    table[e0, 0xA0:0xC0] = one
    table[ed, 0x80:0xA0] = one
    table[f0, 0x90:0xC0] = two
    table[f4, 0x80:0x90] = two
    return table


STRING_CONTENT = _string_content_table()


@njit(cache=True)
def _slice_tokens(table, offsets, data, is_text):
    """Per token: whether it is text and its bytes stay alive in `table` from state 0."""
    out = np.zeros(offsets.shape[0] - 1, np.bool_)
    for t in range(out.shape[0]):
        if not is_text[t]:
            continue
        s = 0
        for k in range(offsets[t], offsets[t + 1]):
            s = table[s, data[k]]
            if s < 0:
                break
        out[t] = s >= 0
    return out


@njit(cache=True)
def _whole_subtrees(in_slice_sorted, token_start, subtree_tokens_end):
    """Per node: all tokens of its subtree (a range of the trie's sorted token order) are in the slice."""
    n_tok = in_slice_sorted.shape[0]
    outside = np.zeros(n_tok + 1, np.int32)  # prefix counts of tokens outside the slice
    for k in range(n_tok):
        outside[k + 1] = outside[k] + (0 if in_slice_sorted[k] else 1)
    n = token_start.shape[0]
    whole = np.empty(n, np.bool_)
    for i in range(n):
        whole[i] = outside[subtree_tokens_end[i]] == outside[token_start[i]]
    return whole


@njit(cache=True)
def _longest_below(whole, lengths_sorted, token_start, subtree_tokens_end, not_whole):
    """Per node: the longest token of its subtree where the subtree is whole, else `not_whole`."""
    out = np.full(whole.shape[0], not_whole, np.int32)
    for i in range(whole.shape[0]):
        if whole[i]:
            m = 0
            for k in range(token_start[i], subtree_tokens_end[i]):
                m = max(m, lengths_sorted[k])
            out[i] = m
    return out


def string_content_slice(vocab) -> Slice:
    """The JSON-string-content slice of `vocab` (cached per vocabulary object, as its trie is)."""
    found = _SLICES.get(vocab)
    if found is None:
        trie = TokenTrie.of(vocab)
        tokens = _slice_tokens(STRING_CONTENT, vocab.offsets, vocab.data, vocab.is_text)
        whole = _whole_subtrees(tokens[trie.order], trie.token_start, trie.subtree_tokens_end)
        lengths = np.diff(vocab.offsets).astype(np.int32)
        below = _longest_below(whole, lengths[trie.order], trie.token_start, trie.subtree_tokens_end, NOT_WHOLE)
        found = _SLICES[vocab] = Slice(
            STRING_CONTENT, tokens, whole, below, lengths, int(lengths[tokens].max(initial=0))
        )
    return found


def outside_trie(vocab) -> tuple[TokenTrie, np.ndarray]:
    """The trie of `vocab`'s text tokens outside the string-content slice, and a `Slice.below` for it
    (`NOT_WHOLE` everywhere): a walk from a lexer state that keeps every slice token alive needs to visit only
    these (llguidance walks a slice's complement the same way). Built on first use, once per vocabulary."""
    found = _OUTSIDE.get(vocab)
    if found is None:
        sl = string_content_slice(vocab)
        trie = TokenTrie.of_tokens(vocab, np.flatnonzero(vocab.is_text & ~sl.tokens))
        found = _OUTSIDE[vocab] = (trie, np.full(trie.n_nodes, NOT_WHOLE, np.int32))
    return found


_SLICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OUTSIDE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
