"""The constraint contract: a language over bytes, compiled against a vocabulary into a token-level matcher.

    matcher = constraint.compile(vocab)    # cached per (constraint, vocabulary)
    s0 = matcher.start()                   # a value: cheap to share between particles
    s1 = matcher.advance(s0, token_id)     # None when the token leaves the language's prefixes
    matcher.allows(s0, token_id)           # one token: what AWRS calls
    matcher.mask(s0)                       # every token at once (bool array over the vocabulary)
    matcher.fill_bitmask(s0, words)        # the same, packed 32 tokens to an int32 word (`bitset.py`), into a
                                           # caller's buffer from `new_bitmask()`: llguidance's and XGrammar's form
    matcher.is_final(s0)                   # the text so far is in the language: EOS allowed
    matcher.forced_bytes(s0)               # bytes every allowed continuation starts with (drafts)

`allows` and `mask` agree token by token; EOS ids are allowed exactly in final states; tokens that are not text
(special tokens, padding ids) are never allowed.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import numpy as np

from genlab import bitset
from genlab.vocab import TokenVocabulary

State = Hashable
# a matcher's own state type (an int for DFAs, a tuple of parser threads for grammars, ...)
S = TypeVar("S", bound=Hashable)


class Matcher(abc.ABC, Generic[S]):
    """A constraint bound to one vocabulary; see the module docstring for the contract."""

    vocab: TokenVocabulary
    has_masks: bool = True  # False for check-only constraints (Predicate, Pattern): `mask` raises
    # True where a mask costs about as much as a few checks (an exact Pattern's DFA: one trie walk, kept per state):
    # SMC fetches it before drawing, so the draw and its weight are exact and no token is checked
    cheap_masks: bool = False

    @abc.abstractmethod
    def start(self) -> S:
        """The state before any token."""

    @abc.abstractmethod
    def advance(self, state: S, token_id: int) -> S | None:
        """The state after `token_id`, or None if the text would no longer be a prefix of the language.

        EOS in a final state returns the state unchanged (the text is complete); elsewhere it returns None.
        """

    @abc.abstractmethod
    def allows(self, state: S, token_id: int) -> bool:
        """Whether `advance(state, token_id)` succeeds; cheap, for one token."""

    @abc.abstractmethod
    def mask(self, state: S) -> np.ndarray:
        """Read-only bool array over the vocabulary: `mask[t] == allows(state, t)` for every id t."""

    def fill_bitmask(self, state: S, out: np.ndarray) -> None:
        """Write `mask(state)` into `out` as a bitset: token t is bit t % 32 of word t // 32 (`bitset.py`; the layout
        llguidance and XGrammar fill). `out` is int32 or uint32, one word per 32 tokens (`new_bitmask`). Matchers
        that build masks as bitsets write them without a bool array in between."""
        bitset.words_of(out, self.vocab.size)[:] = bitset.pack(self.mask(state))

    def new_bitmask(self) -> np.ndarray:
        """A zeroed int32 buffer for `fill_bitmask` on this matcher's vocabulary."""
        return np.zeros(bitset.n_words(self.vocab.size), np.int32)

    @abc.abstractmethod
    def is_final(self, state: S) -> bool:
        """Whether the text so far is a complete string of the language."""

    def forced_bytes(self, state: S, limit: int = 32) -> bytes:
        """The bytes (at most `limit`) that every allowed continuation of `state` starts with: what a draft can
        propose without the model. Read from masks: byte b is forced where the state is not final and every
        allowed token starts with b; the walk goes on through b's single-byte token. Empty for matchers without
        masks."""
        if not self.has_masks:
            return b""
        first, byte_tokens = self.vocab.first_bytes, self.vocab.byte_tokens
        out = bytearray()
        while len(out) < limit and not self.is_final(state):
            mask = np.asarray(self.mask(state), dtype=bool)
            starts = first[mask]
            if len(starts) == 0 or (starts != starts[0]).any():
                break
            b = int(starts[0])
            out.append(b)
            token = int(byte_tokens[b])
            after = self.advance(state, token) if token >= 0 and mask[token] else None
            if after is None:
                break
            state = after
        return bytes(out)

    def advance_many(self, state: S, token_ids) -> S | None:
        """`advance` over a sequence of tokens; None as soon as one fails."""
        for t in token_ids:
            after = self.advance(state, int(t))
            if after is None:
                return None
            state = after
        return state


class Constraint(abc.ABC):
    """A user-facing spec of a language over bytes; `compile` binds it to a vocabulary (cached per vocabulary)."""

    def __init__(self) -> None:
        self._matchers: weakref.WeakKeyDictionary[TokenVocabulary, Matcher] = weakref.WeakKeyDictionary()

    def compile(self, vocab: TokenVocabulary) -> Matcher:
        """The matcher of this constraint on `vocab`, built once per vocabulary."""
        matcher = self._matchers.get(vocab)
        if matcher is None:
            matcher = self._matchers[vocab] = self._compile(vocab)
        return matcher

    @abc.abstractmethod
    def _compile(self, vocab: TokenVocabulary) -> Matcher:
        """Build the matcher (called once per vocabulary)."""

    @abc.abstractmethod
    def check(self, text: str | bytes) -> bool:
        """Whether a whole text is in the language (an end-of-generation check)."""

    # conditions the matcher does not enforce token by token, decided by `validate` on the finished output
    end_checks: tuple[str, ...] = ()

    def validate(self, text: str) -> bool:
        """The end-of-output check behind `end_checks` (True where the matcher is exact). Samplers apply it to
        every output that ends: SMC gives failures weight 0, masking marks them invalid."""
        return True

    def check_prefix(self, text: str) -> bool:
        """False when an unfinished output can already never pass `validate` (SMC drops such particles early);
        True where nothing is known (the default)."""
        return True

    def parse(self, text: str) -> Any:
        """A finished output as a value (the text itself, unless the constraint knows better: JSON, models)."""
        return text

    def describe(self) -> dict[str, Any]:
        """A short JSON-friendly description, for results and logs."""
        return {"type": type(self).__name__}
