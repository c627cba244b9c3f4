"""Draft tokens a sampler can verify in one forward pass: guesses made without the model.

A draft changes no probability. The sampler feeds a row its next token and k draft tokens at once
(`KVBatch.extend(..., keep_all=True)` returns the k + 1 next-token distributions), then draws each token from its
own distribution exactly as it would have without the draft; while the draws equal the draft the distributions
are already there, and at the first difference the rest of the draft is cut (`KVBatch.truncate`). A good draft
saves forward passes; a bad one costs a wider forward and nothing else.

Sources, in order:
- the constraint's forced continuation (`Matcher.forced_bytes`: a JSON key and its `":"`, closing brackets),
  tokenized as the tokenizer would write it and trimmed to what the matcher allows;
- prompt lookup: the longest n-gram (n <= 3) at the end of the output that also occurs in the prompt, and the
  tokens that follow it there (extraction copies names and numbers from its source text).

Draft length adapts per row: it doubles (up to `max_draft`) while whole drafts are accepted and falls back to one
more than the accepted length otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from genlab.constraints.base import Matcher, State

_NGRAM = 3


class Drafter:
    """Drafts for one run: the matcher, the tokenizer's encoding of forced text, and the prompt to look up."""

    def __init__(self, matcher: Matcher, encode, prompt_ids: Sequence[int], rows: int, max_draft: int = 8):
        self.matcher = matcher
        self.encode = encode
        self.prompt = [int(t) for t in prompt_ids]
        self.max_draft = max_draft
        self.length = [min(4, max_draft)] * rows
        self._index: dict[tuple[int, ...], int] = {}
        for n in range(1, _NGRAM + 1):  # the last occurrence of each n-gram that has a token after it
            for i in range(len(self.prompt) - n):
                self._index[tuple(self.prompt[i : i + n])] = i + n

    def propose(self, row: int, state: State, tokens: Sequence[int], room: int) -> list[int]:
        """At most min(room, the row's draft length) tokens the matcher allows after `state`."""
        k = min(room, self.length[row])
        if k <= 0:
            return []
        draft = self._forced(state, k) or self._lookup(tokens, k)
        return self._trim(state, draft[:k])

    def update(self, row: int, proposed: int, accepted: int) -> None:
        """Adapt the row's draft length to how much of its last draft was accepted."""
        if proposed == 0:
            return
        if accepted == proposed:
            self.length[row] = min(self.max_draft, 2 * self.length[row])
        else:
            self.length[row] = max(1, accepted + 1)

    def _forced(self, state: State, k: int) -> list[int]:
        forced = self.matcher.forced_bytes(state, limit=8 * k)
        text = forced.decode("utf-8", errors="ignore")  # an unfinished character at the end is left to the model
        if not text:
            return []
        ids = [int(t) for t in self.encode(text)]
        # a tokenizer that writes a dummy prefix space before a text on its own (SentencePiece) spells other bytes
        return ids if self.matcher.vocab.decode(ids) == text.encode() else []

    def _lookup(self, tokens: Sequence[int], k: int) -> list[int]:
        for n in range(min(_NGRAM, len(tokens)), 0, -1):
            start = self._index.get(tuple(tokens[-n:]))
            if start is not None:
                return self.prompt[start : start + k]
        return []

    def _trim(self, state: State, draft: list[int]) -> list[int]:
        """The longest prefix of `draft` the matcher allows token by token."""
        out = []
        for t in draft:
            if not self.matcher.allows(state, t):
                break
            out.append(t)
            state = self.matcher.advance(state, t)
        return out
