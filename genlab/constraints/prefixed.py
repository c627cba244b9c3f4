"""`PrefixedMatcher`: the language `prefix · L`, given bytes first and then a text of a matcher's language.

Token healing (`genlab.samplers.prompt.heal`) backs the prompt off by its last tokens and makes the output start
with their bytes; this matcher is how every sampler enforces that. A token may lie inside the prefix, end exactly
where it ends, or cross it: then the bytes past the prefix must begin a text of L, which is checked by stepping the
inner matcher byte by byte (its single-byte tokens; a language over bytes does not care how its text is split).

States are `(k, s)`: k bytes of the prefix read (k < len(prefix), s the inner start), or `(len(prefix), s)` with s
the inner matcher's state. Masks before the prefix is read are built once per k by a walk of the token trie below
the rest of the prefix, stepping the inner matcher once per live trie node, and kept.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from genlab.constraints.base import Matcher
from genlab.errors import ConstraintError, VocabularyError
from genlab.trie import TokenTrie


class PrefixedMatcher(Matcher[tuple[int, Hashable]]):
    """`prefix` then a text of `inner`'s language; see the module docstring."""

    def __init__(self, inner: Matcher, prefix: bytes) -> None:
        if not prefix:
            raise ValueError("PrefixedMatcher needs a non-empty prefix (use the inner matcher as it is)")
        self.inner = inner
        self.prefix = bytes(prefix)
        self.vocab = inner.vocab
        self.has_masks = inner.has_masks
        self.cheap_masks = inner.cheap_masks
        self._n = len(self.prefix)
        self._start = inner.start()
        self._masks: dict[int, np.ndarray] = {}
        if hasattr(inner, "live"):  # maskless matchers: the exact enumerator prunes with it
            self.live = self._live

    def start(self) -> tuple[int, Hashable]:
        return (0, self._start)

    def advance(self, state: tuple[int, Hashable], token_id: int) -> tuple[int, Hashable] | None:
        k, s = state
        if k == self._n:
            after = self.inner.advance(s, token_id)
            return None if after is None else (k, after)
        if not self.vocab.text_list[token_id]:  # EOS and special tokens: the prefix is not read yet
            return None
        data = self.vocab.token_bytes[token_id]
        rest = self.prefix[k:]
        if len(data) <= len(rest):
            return (k + len(data), s) if rest.startswith(data) else None
        if not data.startswith(rest):
            return None
        after = self._feed(self._start, data[len(rest) :])
        return None if after is None else (self._n, after)

    def allows(self, state: tuple[int, Hashable], token_id: int) -> bool:
        k, s = state
        if k == self._n:
            return self.inner.allows(s, token_id)
        return self.advance(state, token_id) is not None

    def is_final(self, state: tuple[int, Hashable]) -> bool:
        k, s = state
        return k == self._n and self.inner.is_final(s)

    def mask(self, state: tuple[int, Hashable]) -> np.ndarray:
        k, s = state
        if k == self._n:
            return self.inner.mask(s)
        mask = self._masks.get(k)
        if mask is None:
            mask = self._masks[k] = self._prefix_mask(self.prefix[k:])
            mask.flags.writeable = False
        return mask

    def fill_bitmask(self, state: tuple[int, Hashable], out: np.ndarray) -> None:
        k, s = state
        if k == self._n:
            self.inner.fill_bitmask(s, out)
        else:
            super().fill_bitmask(state, out)

    def forced_bytes(self, state: tuple[int, Hashable], limit: int = 32) -> bytes:
        k, s = state
        if k == self._n:
            return self.inner.forced_bytes(s, limit)
        rest = self.prefix[k : limit + k]
        return rest + self.inner.forced_bytes(self._start, limit - len(rest)) if len(rest) < limit else rest

    def _live(self, state: tuple[int, Hashable]) -> bool:
        k, s = state
        return k < self._n or bool(self.inner.live(s))  # type: ignore[attr-defined]

    def allowed_tokens(self, state: tuple[int, Hashable]) -> np.ndarray:
        """Allowed non-EOS tokens for matchers without masks (the exact enumerator's fallback)."""
        k, s = state
        if k == self._n:
            inner_tokens = getattr(self.inner, "allowed_tokens", None)
            if inner_tokens is None:
                raise ConstraintError(f"{type(self.inner).__name__} lists no allowed tokens")
            return np.asarray(inner_tokens(s))
        return np.flatnonzero(self.mask(state))

    def _feed(self, state: Hashable, data: bytes) -> Hashable | None:
        """The inner state after the bytes `data`, None if they leave L. Fed one single-byte token at a time, or,
        for a byte the vocabulary has no such token for, the longest token that spells the bytes from there."""
        byte_tokens = self.vocab.byte_tokens
        i = 0
        while i < len(data):
            token, width = int(byte_tokens[data[i]]), 1
            if token < 0:
                token, width = self._longest_token(data, i)
            after = self.inner.advance(state, token)
            if after is None:
                return None
            state, i = after, i + width
        return state

    def _longest_token(self, data: bytes, i: int) -> tuple[int, int]:
        """(a token, its length) spelling the most bytes of `data` from `i` on (a trie walk)."""
        trie = TokenTrie.of(self.vocab)
        node, best = 0, (-1, 0)
        for j in range(i, len(data)):
            node = trie.child(node, data[j])
            if node < 0:
                break
            if trie.token_end[node] > trie.token_start[node]:
                best = (int(trie.order[trie.token_start[node]]), j + 1 - i)
        if best[0] < 0:
            raise VocabularyError(
                f"token healing cannot check a token that crosses the healed prefix {self.prefix!r}: no token of "
                f"this vocabulary starts with byte 0x{data[i]:02x} (turn healing off for this prompt)"
            )
        return best

    def _prefix_mask(self, rest: bytes) -> np.ndarray:
        """Tokens allowed before the prefix's last `len(rest)` bytes are read: those spelling a start of `rest`,
        and those spelling `rest` and then the start of a text of L (a trie walk below `rest`'s node)."""
        vocab = self.vocab
        trie = TokenTrie.of(vocab)
        mask = np.zeros(vocab.size, np.bool_)
        node = 0
        for b in rest:
            node = trie.child(node, b)
            if node < 0:
                return mask
            mask[trie.order[trie.token_start[node] : trie.token_end[node]]] = True
        stack = [(child, self._start) for child in trie.children(node)]
        byte_tokens = vocab.byte_tokens
        while stack:
            node, state = stack.pop()
            token = int(byte_tokens[trie.byte[node]])
            if token < 0:  # no single-byte token to step with: check this subtree's tokens one by one
                for t in trie.order[trie.token_start[node] : trie.subtree_tokens_end[node]].tolist():
                    mask[t] = self.advance((self._n - len(rest), self._start), t) is not None
                continue
            after = self.inner.advance(state, token)
            if after is None:
                continue
            mask[trie.order[trie.token_start[node] : trie.token_end[node]]] = True
            stack.extend((child, after) for child in trie.children(node))
        return mask
