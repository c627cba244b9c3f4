"""Draft tokens a sampler can verify in one forward pass: guesses made without the model.

A draft changes no probability. The sampler feeds a row its next token and k draft tokens at once
(`KVBatch.extend(..., keep_all=True)` returns the k + 1 next-token distributions), then draws each token from its
own distribution exactly as it would have without the draft; while the draws equal the draft the distributions
are already there, and at the first difference the rest of the draft is cut (`KVBatch.truncate`). A good draft
saves forward passes; a bad one costs a wider forward and nothing else.

Sources, in turn (a draft chains them: forced text, then what the lookup finds after it, then forced text again):
- the constraint's forced continuation (`Matcher.forced_bytes`: a JSON key and its `":"`, closing brackets),
  split first into tokens the run's outputs have used (under a constraint a model often splits text otherwise
  than its tokenizer would, e.g. `":` and `"` for `":"`), the rest as the tokenizer writes it, and trimmed to what
  the matcher allows;
- lookup: the longest n-gram (n <= 3) at the end of the output that also occurs in the prompt or in the outputs
  of the run's other rows (sibling samples or particles, and the row's own earlier tokens), and the tokens that
  follow it there: extraction copies names and numbers from its source text, and samples of one prompt repeat
  each other;
- the prompt's text after the output's last bytes (at least 3), for a copy split into other tokens than the
  prompt's.

Draft length adapts per row: it doubles (up to `max_draft`) while whole drafts are accepted and falls back to one
more than the accepted length (at least `FLOOR`) otherwise. A guess shorter than the model's `min_draft` is not
proposed: 1 where a forward over a few tokens costs about one over a single token (a GPU, or genlab's CPU kernel),
3 where torch's CPU matmul makes 2-3 tokens cost 1.5-2x one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genlab.constraints.base import Matcher, State

_NGRAM = 3
# The draft length a rejection falls back to: with genlab's CPU kernel a 4-token forward costs 1.3x a 1-token one
# (benchmarks/cpu_linear.py), and on JSON extraction with SmolLM2 a floor of 4 gave 0.48 forwards per token where
# one more than the accepted length gave 0.53 (benchmarks/drafts.py; 8 cost SQL its gain: 1.02x against 1.09x).
FLOOR = 4
_MIN_BYTES = 3  # the shortest output tail looked up in the prompt's text
_SEP = -1  # between the sequences of the lookup text: never a token


def encoder(lm):
    """Text -> token ids as the model's tokenizer writes it on its own (no special tokens): drafts of forced text."""
    tokenizer = lm.tokenizer
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


class Drafter:
    """Drafts for one run: the matcher, the tokenizer's encoding of forced text, and the text to look up (the prompt
    and, after `observe`, the rows' outputs)."""

    def __init__(
        self, matcher: Matcher, encode, prompt_ids: Sequence[int], rows: int, max_draft: int = 8, min_draft: int = 1
    ):
        self.matcher = matcher
        self.min_draft = min(min_draft, max_draft)
        self.encode = encode
        self.prompt = np.asarray([int(t) for t in prompt_ids] + [_SEP], dtype="<i4")
        self._prompt_bytes = matcher.vocab.decode([int(t) for t in prompt_ids])
        self.max_draft = max_draft
        self.length = [min(FLOOR, max_draft)] * rows
        self._habits: dict[bytes, int] = {}  # the bytes of each token the run's outputs used, to that token
        self._longest = 0
        self._seen = np.zeros(len(matcher.vocab.token_bytes), np.bool_)
        self.observe([])

    @classmethod
    def for_model(cls, lm, matcher: Matcher, prompt_ids: Sequence[int], rows: int, max_draft: int = 8) -> Drafter:
        """The drafter for a run of `lm`: its tokenizer, and the shortest draft its forwards make worth proposing."""
        return cls(matcher, encoder(lm), prompt_ids, rows, max_draft, min_draft=getattr(lm, "min_draft", 1))

    def observe(self, outputs: Sequence[Sequence[int]]) -> None:
        """Look up drafts in the prompt and these outputs (each row's tokens so far) until the next call."""
        parts = [self.prompt]
        for out in outputs:
            if len(out) > 1:  # a continuation needs a token after the matched n-gram
                parts += [np.asarray(out, dtype="<i4"), np.full(1, _SEP, "<i4")]
        self._text = np.concatenate(parts)
        self._bytes = self._text.tobytes()
        used = np.unique(self._text[len(self.prompt) :])
        used = used[used >= 0]
        for t in used[~self._seen[used]].tolist():
            piece = self.matcher.vocab.token_bytes[t]
            if piece:
                self._habits[piece] = t
                self._longest = max(self._longest, len(piece))
        self._seen[used] = True

    def propose(self, row: int, state: State, tokens: Sequence[int], room: int) -> list[int]:
        """At most min(room, the row's draft length) tokens the matcher allows after `state`."""
        k = min(room, self.length[row])
        draft: list[int] = []
        history = list(tokens)
        while len(draft) < k:  # pieces in turn: forced text, then what the lookup finds after it, and so on
            want = k - len(draft)
            guess = self._forced(state, want) or self._lookup(history, want) or self._lookup_bytes(history, want)
            piece, state = self._trim(state, guess[:want])
            if not piece:
                break
            draft += piece
            history += piece
        return draft if len(draft) >= self.min_draft else []

    def update(self, row: int, proposed: int, accepted: int) -> None:
        """Adapt the row's draft length to how much of its last draft was accepted."""
        if proposed == 0:
            return
        if accepted == proposed:
            self.length[row] = min(self.max_draft, 2 * self.length[row])
        else:
            self.length[row] = min(self.max_draft, max(FLOOR, accepted + 1))

    def _forced(self, state: State, k: int) -> list[int]:
        return self._tokenize(self.matcher.forced_bytes(state, limit=8 * k))

    def _tokenize(self, data: bytes) -> list[int]:
        """Tokens spelling `data` (an unfinished character at the end left out): first the tokens the outputs already
        used (the model's habits under the constraint), then the tokenizer's own encoding of the rest."""
        data = data.decode("utf-8", errors="ignore").encode()
        ids = []
        at = 0
        while at < len(data):
            for size in range(min(self._longest, len(data) - at), 0, -1):
                t = self._habits.get(data[at : at + size])
                if t is not None:
                    ids.append(t)
                    at += size
                    break
            else:
                break
        if at < len(data):
            rest = [int(t) for t in self.encode(data[at:].decode())]
            # a tokenizer that writes a dummy prefix space before a text on its own (SentencePiece) spells other bytes
            if self.matcher.vocab.decode(rest) == data[at:]:
                ids += rest
        return ids

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

    def _lookup_bytes(self, tokens: Sequence[int], k: int) -> list[int]:
        """The prompt's text after the longest tail (>= 3 bytes) of the output's last tokens that occurs in it: a
        value copied from the prompt is often split otherwise than there (no leading space after a quote)."""
        tail = self.matcher.vocab.decode(list(tokens[-_NGRAM:]))
        for size in range(len(tail), _MIN_BYTES - 1, -1):
            at = self._prompt_bytes.rfind(tail[-size:])
            if at >= 0:
                return self._tokenize(self._prompt_bytes[at + size : at + size + 8 * k])[:k]
        return []

    def _trim(self, state: State, draft: list[int]) -> tuple[list[int], State]:
        """The longest prefix of `draft` the matcher allows token by token, and the state after it."""
        out = []
        for t in draft:
            if not self.matcher.allows(state, t):
                break
            out.append(t)
            state = self.matcher.advance(state, t)
        return out, state
