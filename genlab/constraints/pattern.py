"""`Pattern`: a pattern of the `regex` package (backreferences, lookarounds, ...) checked by partial matching.

Patterns beyond regular languages have no DFA, so `Pattern` is a predicate constraint (`PredicateMatcher`): a prefix
is live when `regex.fullmatch(pattern, text, partial=True)` finds a (possibly partial) match, and complete when
`regex.fullmatch(pattern, text)` does. No token masks; use it with AWRS or SMC. For a regular language, `Regex`
is faster and also masks.
"""

from __future__ import annotations

from typing import Any

import regex

from genlab.constraints.base import Constraint
from genlab.constraints.predicate import PredicateMatcher, _as_text
from genlab.errors import InvalidPatternError
from genlab.vocab import TokenVocabulary


class Pattern(Constraint):
    """Output must fullmatch `pattern` under the `regex` package's semantics (with `flags`, e.g. `regex.IGNORECASE`)."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        super().__init__()
        self.pattern = pattern
        self.flags = flags
        try:
            self.compiled = regex.compile(pattern, flags)
        except regex.error as exc:
            raise InvalidPatternError(f"invalid pattern {pattern!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})" if not self.flags else f"Pattern({self.pattern!r}, flags={self.flags})"

    def prefix(self, text: str) -> bool:
        """Whether `text` can still be extended into a full match."""
        return self.compiled.fullmatch(text, partial=True) is not None

    def complete(self, text: str) -> bool:
        """Whether `text` is a full match."""
        return self.compiled.fullmatch(text) is not None

    def _compile(self, vocab: TokenVocabulary) -> PredicateMatcher:
        return PredicateMatcher(vocab, self.prefix, self.complete, repr(self))

    def check(self, text: str | bytes) -> bool:
        s = _as_text(text)
        return s is not None and self.complete(s)

    def describe(self) -> dict[str, Any]:
        return {"type": "pattern", "pattern": self.pattern, "flags": self.flags}
