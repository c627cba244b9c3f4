"""`Pattern`: a pattern of the `regex` package (backreferences, lookarounds, recursion, ...), as a DFA times a check.

Where the pattern is regular after all (lookarounds, word boundaries, conditionals, atomic groups, Unicode
properties and set operations, with no backreference, recursion or case folding), `automata/relax.py` compiles
it to its exact DFA and the matcher is that DFA's, as for `Regex`: no check runs. Otherwise the pattern has no
exact automaton, but a regular superset of its language does (`automata/relax.py`: a backreference widened to
its group's language, ...). The matcher steps that DFA first, which discards most tokens with a numba step or a
cached mask, and runs the exact check only on the tokens it lets through: `regex` partial matching (a prefix of
some match; `\\b` and `\\B` written as lookarounds, which partial matching reads as open at the end of the text)
while generating, and `regex.fullmatch(pattern, text)` at the end. Masks are the DFA's, filtered by the exact
check, so token masking works too, and AWRS gets its rejection cap. Every `regex` call has a time budget
(`timeout`): a check past it raises `CheckTimeoutError` naming the pattern rather than hanging on a backtracking
blow-up. Where no safe superset exists (see `relax.py`) every token is checked exactly."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import regex

from genlab.automata.relax import boundaries_as_lookarounds, character_cells, pattern_dfa
from genlab.constraints.base import Constraint, Matcher
from genlab.constraints.predicate import CHECK_TIMEOUT, PredicateMatcher, _as_text, _split_utf8
from genlab.constraints.regex import DFAMatcher
from genlab.errors import CheckTimeoutError, EmptyLanguageError, InvalidPatternError
from genlab.trie import TokenTrie
from genlab.vocab import TokenVocabulary

_MEMO_SIZE = 200_000  # prefix verdicts kept per pattern


class Pattern(Constraint):
    """Output must fullmatch `pattern` under the `regex` package's semantics (with `flags`, e.g. `regex.IGNORECASE`).

    `timeout`: the seconds one check may take (None: no limit). `max_states` bounds the DFA (past it, no DFA:
    every token is checked exactly). `exact`: whether the DFA is the pattern's own language (then no check runs).
    """

    def __init__(
        self, pattern: str, flags: int = 0, *, timeout: float | None = CHECK_TIMEOUT, max_states: int = 10_000
    ) -> None:
        super().__init__()
        self.pattern = pattern
        self.flags = flags
        self.timeout = timeout
        try:
            self.compiled = regex.compile(pattern, flags)
            self.partial = regex.compile(boundaries_as_lookarounds(pattern, flags), flags)  # for prefixes
        except regex.error as exc:
            raise InvalidPatternError(f"invalid pattern {pattern!r}: {exc}") from None
        try:
            self.dfa, self.exact = pattern_dfa(pattern, flags, max_states=max_states)
        except EmptyLanguageError:
            raise EmptyLanguageError(f"Pattern {pattern!r} matches no string") from None
        self._prefixes: dict[str, bool] = {}
        self.calls = 0  # `regex` calls made so far (checks, masks and end checks alike)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})" if not self.flags else f"Pattern({self.pattern!r}, flags={self.flags})"

    def _match(self, text: str, partial: bool) -> bool:
        self.calls += 1
        try:
            compiled = self.partial if partial else self.compiled
            return compiled.fullmatch(text, partial=partial, timeout=self.timeout) is not None
        except TimeoutError:
            raise CheckTimeoutError(
                f"Pattern {self.pattern!r}: matching a text of {len(text)} characters ran past its {self.timeout:g} s "
                "budget (backtracking); simplify the pattern (e.g. an atomic group or a possessive quantifier) or "
                "raise Pattern(..., timeout=)"
            ) from None

    def prefix(self, text: str) -> bool:
        """Whether `text` can still be extended into a full match (memoised)."""
        found = self._prefixes.get(text)
        if found is None:
            if len(self._prefixes) >= _MEMO_SIZE:
                self._prefixes.clear()
            found = self._prefixes[text] = self._match(text, True)
        return found

    @cached_property
    def _cells(self) -> np.ndarray | None:
        """`relax.character_cells` of the pattern, computed on the first pending character that needs them."""
        return character_cells(self.pattern, self.flags)

    def characters(self, text: str, lo: int, hi: int) -> list[int]:
        """The characters of lo..hi worth trying after `text` to learn whether any can follow it: one of each cell
        of interchangeable characters (`relax.character_cells`), and every character of the text itself (a
        backreference may compare with it); all of them where the pattern has no cells."""
        if self._cells is None:
            return list(range(lo, hi + 1))
        first = np.unique(self._cells[lo : hi + 1], return_index=True)[1] + lo
        tried = set(first.tolist()) | {ord(c) for c in set(text) if lo <= ord(c) <= hi}
        return sorted(c for c in tried if not 0xD800 <= c <= 0xDFFF)

    def complete(self, text: str) -> bool:
        """Whether `text` is a full match."""
        return self._match(text, False)

    def _compile(self, vocab: TokenVocabulary) -> Matcher:
        if self.exact:
            assert self.dfa is not None
            return ExactPatternMatcher(self.dfa, vocab)
        return PatternMatcher(self, vocab)

    def check(self, text: str | bytes) -> bool:
        s = _as_text(text)
        return s is not None and self.complete(s)

    def describe(self) -> dict[str, Any]:
        dfa = None if self.dfa is None else self.dfa.n_states
        enforced = "exact DFA" if self.exact else "check only" if self.dfa is None else "DFA x check"
        return {
            "type": "pattern",
            "pattern": self.pattern,
            "flags": self.flags,
            "enforced_by": enforced,
            "dfa_states": dfa,
        }


class ExactPatternMatcher(DFAMatcher):
    """A regular `Pattern`'s matcher: its exact DFA's. Its masks are cheap (one trie walk, kept per state), so SMC
    fetches a state's mask before drawing and checks no token (`Matcher.cheap_masks`)."""

    cheap_masks = True


class PatternMatcher(Matcher[bytes]):
    """The over-approximating DFA's matcher and the exact check, stepped together (see the module doc).

    States are the bytes so far, as for `Predicate`; the DFA state of each is kept beside it (a function of the
    bytes, so nothing about a state depends on how it was reached)."""

    def __init__(self, pattern: Pattern, vocab: TokenVocabulary) -> None:
        self.vocab = vocab
        self.pattern = pattern
        self.dfa = None if pattern.dfa is None else DFAMatcher(pattern.dfa, vocab)
        self.exact = PredicateMatcher(vocab, pattern.prefix, pattern.complete, repr(pattern), pattern.characters)
        self._all = np.zeros(vocab.size, dtype=bool)
        self._all[np.flatnonzero(vocab.is_text)] = True
        self._all[list(vocab.eos_ids)] = True
        self._dfa_states: dict[bytes, int] = {b"": 0 if pattern.dfa is None else pattern.dfa.start}
        self._masks: dict[bytes, np.ndarray] = {}

    def _dfa_state(self, data: bytes) -> int:
        """The DFA's state after `data` (-1: rejected); memoised for the states `advance` returns."""
        found = self._dfa_states.get(data)
        if found is None:
            assert self.pattern.dfa is not None
            found = self.pattern.dfa.run(data)
        return found

    def start(self) -> bytes:
        return b""

    def advance(self, state: bytes, token_id: int) -> bytes | None:
        if self.dfa is None:
            return self.exact.advance(state, token_id)
        dfa_state = self._dfa_state(state)
        if dfa_state < 0:
            return None
        after = self.dfa.advance(dfa_state, token_id)
        if after is None:
            return None
        exact = self.exact.advance(state, token_id)
        if exact is not None and exact not in self._dfa_states:
            if len(self._dfa_states) >= _MEMO_SIZE:
                self._dfa_states = {b"": self._dfa_states[b""]}
            self._dfa_states[exact] = after
        return exact

    def allows(self, state: bytes, token_id: int) -> bool:
        return self.advance(state, token_id) is not None

    def is_final(self, state: bytes) -> bool:
        if self.dfa is not None:
            dfa_state = self._dfa_state(state)
            if dfa_state < 0 or not self.dfa.is_final(dfa_state):
                return False
        return self.exact.is_final(state)

    def mask(self, state: bytes) -> np.ndarray:
        """The DFA's mask with each token it allows checked exactly (memoised). The candidates are walked as a trie
        of their bytes: where a shared prefix (ending on a character) is no prefix of any match, the tokens below
        it are all refused after one `regex` call, since a text that cannot start a match cannot once extended."""
        mask = self._masks.get(state)
        if mask is None:
            superset = self.superset(state)
            candidates = self._all if superset is None else superset
            mask = self._checked(state, candidates)
            mask.flags.writeable = False
            if len(self._masks) > 1024:
                self._masks.clear()
            self._masks[state] = mask
        return mask

    def _checked(self, state: bytes, candidates: np.ndarray) -> np.ndarray:
        """The candidates `advance` passes after `state`, with shared prefixes checked once (see `mask`)."""
        mask = np.zeros(self.vocab.size, dtype=bool)
        by_bytes = TokenTrie.of(self.vocab).order  # the text tokens sorted by their bytes, shared per vocabulary
        order = by_bytes[candidates[by_bytes]].tolist()
        others = candidates.copy()
        others[by_bytes] = False
        for t in np.flatnonzero(others).tolist():  # EOS and the other non-text ids: their own rule
            mask[t] = self.exact.advance(state, t) is not None
        pieces = self.vocab.token_bytes
        keys = [pieces[t] for t in order]
        stack = [(0, len(order), 0)]
        while stack:
            lo, hi, depth = stack.pop()
            if hi - lo <= 2:  # checking the tokens costs no more than their prefix
                for i in range(lo, hi):
                    mask[order[i]] = self.exact.advance(state, order[i]) is not None
                continue
            if depth > 0:
                split = _split_utf8(state + keys[lo][:depth])
                if split is None:  # not UTF-8, whatever follows
                    continue
                text, pending = split
                if not pending and not self.pattern.prefix(text):
                    continue
            i = lo
            while i < hi and len(keys[i]) == depth:  # the prefix itself is a token (sorted first)
                mask[order[i]] = self.exact.advance(state, order[i]) is not None
                i += 1
            while i < hi:
                byte = keys[i][depth]
                j = i + 1
                while j < hi and keys[j][depth] == byte:
                    j += 1
                stack.append((i, j, depth + 1))
                i = j
        return mask

    def superset(self, state: bytes) -> np.ndarray | None:
        """The DFA's mask: every token `allows` passes is in it (AWRS walks only these); None without a DFA."""
        if self.dfa is None:
            return None
        dfa_state = self._dfa_state(state)
        return np.asarray(self.dfa.mask(dfa_state), dtype=bool) if dfa_state >= 0 else self._all & False

    def forced_bytes(self, state: bytes, limit: int = 32) -> bytes:
        """No forced bytes: reading them from exact masks would cost a `regex` call per candidate token."""
        return b""

    def inside_character(self, state: bytes) -> bool:
        """Whether the bytes so far end inside a multi-byte character."""
        return self.exact.inside_character(state)

    def live(self, state: bytes, limit: int | None = None) -> bool:
        """Whether some full match starts with these bytes (`PredicateMatcher.live`)."""
        return self.exact.live(state, limit)
