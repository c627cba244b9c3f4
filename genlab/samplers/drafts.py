"""Draft tokens a sampler can verify in one forward pass: guesses made without the model.

A draft changes no probability. The sampler feeds a row its next token and k draft tokens at once
(`KVBatch.extend(..., keep_all=True)` returns the k + 1 next-token distributions), then draws each token from its
own distribution exactly as it would have without the draft; while the draws equal the draft the distributions
are already there, and at the first difference the rest of the draft is cut (`KVBatch.truncate`). A good draft
saves forward passes; a bad one costs a wider forward and nothing else.

Sources, in order:
- the constraint's forced continuation (`Matcher.forced_bytes`: a JSON key and its `":"`, closing brackets),
  tokenized as the tokenizer would write it and trimmed to what the matcher allows;
- lookup: the longest n-gram (n <= 3) at the end of the output that also occurs in the prompt or in the outputs
  of the run's other rows (sibling samples or particles, and the row's own earlier tokens), and the tokens that
  follow it there: extraction copies names and numbers from its source text, and samples of one prompt repeat
  each other.

Draft length adapts per row: it doubles (up to `max_draft`) while whole drafts are accepted and falls back to one
more than the accepted length otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genlab.constraints.base import Matcher, State

_NGRAM = 3
_SEP = -1  # between the sequences of the lookup text: never a token


def encoder(lm):
    """Text -> token ids as the model's tokenizer writes it on its own (no special tokens): drafts of forced text."""
    tokenizer = lm.tokenizer
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


class Drafter:
    """Drafts for one run: the matcher, the tokenizer's encoding of forced text, and the text to look up (the prompt
    and, after `observe`, the rows' outputs)."""

    def __init__(self, matcher: Matcher, encode, prompt_ids: Sequence[int], rows: int, max_draft: int = 8):
        self.matcher = matcher
        self.encode = encode
        self.prompt = np.asarray([int(t) for t in prompt_ids] + [_SEP], dtype="<i4")
        self.max_draft = max_draft
        self.length = [min(4, max_draft)] * rows
        self.observe([])

    def observe(self, outputs: Sequence[Sequence[int]]) -> None:
        """Look up drafts in the prompt and these outputs (each row's tokens so far) until the next call."""
        parts = [self.prompt]
        for out in outputs:
            if len(out) > 1:  # a continuation needs a token after the matched n-gram
                parts += [np.asarray(out, dtype="<i4"), np.full(1, _SEP, "<i4")]
        self._text = np.concatenate(parts)
        self._bytes = self._text.tobytes()

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
        """What follows the last occurrence of the longest matching tail n-gram (a byte search over 4-byte ids)."""
        for n in range(min(_NGRAM, len(tokens)), 0, -1):
            needle = np.asarray(tokens[-n:], dtype="<i4").tobytes()
            end = len(self._bytes)
            while (at := self._bytes.rfind(needle, 0, end)) >= 0:
                end = at + len(needle) - 1
                if at % 4:  # not on a token boundary
                    continue
                follow = self._text[at // 4 + n : at // 4 + n + k]
                stop = np.flatnonzero(follow == _SEP)
                follow = follow[: stop[0]] if len(stop) else follow
                if len(follow):
                    return follow.tolist()
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
