"""`Predicate`: a language given by arbitrary Python checks on text, matched token by token without masks.

A predicate constraint is two functions of the decoded text: `prefix(text)` says whether the text so far can still
be extended into an acceptable output, and `complete(text)` whether it may end here. Nothing about them is known in
advance, so there is no automaton and no token mask: the matcher answers `allows` one token at a time (by calling
`prefix` on the extended text), which is all AWRS and SMC need. `mask` refuses with a `ConstraintError`.

Matcher states are the bytes so far (immutable `bytes`). Text is decoded strictly as UTF-8; while the bytes end
inside a multi-byte character (a byte-fallback token such as `<0xC3>`), only the complete part is checked and the
pending character waits for the token that finishes it; bytes that can never be valid UTF-8 are refused. The prefix
property holds except for a pending character that could still become more than 4,096 characters (a lone 3- or
4-byte lead byte): such a lead byte is allowed without trying them all, and the next token may find no
continuation. Shorter pending characters are tried in full (memoised).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from genlab.constraints.base import Constraint, Matcher
from genlab.errors import CheckTimeoutError, ConstraintError
from genlab.vocab import TokenVocabulary

TextCheck = Callable[[str], bool]
# `advance` tries at most this many characters to see whether a pending multi-byte character can still pass
LIVE_SEARCH_LIMIT = 4096
CHECK_TIMEOUT = 1.0  # seconds one check may take (Predicate's callables, Pattern's regex calls)


def _split_utf8(data: bytes) -> tuple[str, bool] | None:
    """(the decoded complete characters, whether an incomplete character is pending at the end), or None when
    the bytes are not valid UTF-8 and no continuation can make them so."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
    return text, bool(decoder.getstate()[0])


def _pending_length(data: bytes) -> int:
    """How many bytes at the end of valid-so-far UTF-8 belong to an unfinished character (0 to 3)."""
    for k in range(1, min(3, len(data)) + 1):
        b = data[-k]
        if b >= 0xC0:  # the lead byte
            return k
        if b < 0x80:
            return 0
    return 0


def _code_point_range(tail: bytes) -> tuple[int, int]:
    """The code points whose UTF-8 starts with `tail` (a lead byte and 0-2 continuation bytes), as a range."""
    lead = tail[0]
    n = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    cp = lead & (0x7F >> n)
    for b in tail[1:]:
        cp = (cp << 6) | (b & 0x3F)
    rest = 6 * (n - len(tail))
    smallest = (0x80, 0x800, 0x10000)[n - 2]  # below it an n-byte encoding would be overlong (invalid)
    return max(cp << rest, smallest), min(((cp + 1) << rest) - 1, 0x10FFFF)


class PredicateMatcher(Matcher[bytes]):
    """`prefix`/`complete` checks on the text so far; states are the bytes so far. No masks (see module doc).

    `what` names the constraint in error messages.
    """

    has_masks = False

    def __init__(
        self,
        vocab: TokenVocabulary,
        prefix: TextCheck | None,
        complete: TextCheck | None,
        what: str,
        characters: Callable[[str, int, int], list[int]] | None = None,
    ):
        self.vocab = vocab
        self.prefix = prefix
        self.complete = complete
        self.what = what
        self.characters = characters  # (text, lo, hi) -> the characters of lo..hi worth trying after text
        self._is_text = vocab.is_text
        self._eos = vocab.eos_ids
        # Text tokens split by their first byte: only those starting with a UTF-8 continuation byte (0x80-0xBF)
        # can follow a pending character, and only the others can follow a complete one.
        text_ids = np.flatnonzero(vocab.is_text)
        first = vocab.data[vocab.offsets[text_ids]]
        continues = (first >= 0x80) & (first < 0xC0)
        self._continuation_ids = text_ids[continues]
        self._fresh_ids = text_ids[~continues]
        self._live: dict[tuple[str, bytes], tuple[bool, int]] = {}  # (text, tail) -> (live, characters tried)

    def start(self) -> bytes:
        return b""

    def advance(self, state: bytes, token_id: int) -> bytes | None:
        if token_id in self._eos:
            return state if self.is_final(state) else None
        if not (0 <= token_id < len(self._is_text)) or not self._is_text[token_id]:
            return None
        data = state + self.vocab.token_bytes[token_id]
        split = _split_utf8(data)
        if split is None:
            return None
        text, pending = split
        if self.prefix is not None and not self.prefix(text):
            return None
        if pending and not self.live(data, limit=LIVE_SEARCH_LIMIT):
            return None
        return data

    def allows(self, state: bytes, token_id: int) -> bool:
        return self.advance(state, token_id) is not None

    def is_final(self, state: bytes) -> bool:
        split = _split_utf8(state)
        if split is None or split[1]:
            return False
        return True if self.complete is None else bool(self.complete(split[0]))

    def inside_character(self, state: bytes) -> bool:
        """Whether the bytes so far end inside a multi-byte character (its prefix check is still pending)."""
        split = _split_utf8(state)
        return split is not None and split[1]

    def live(self, state: bytes, limit: int | None = None) -> bool:
        """Whether some string of the language starts with these bytes (a state `advance` returned), pending
        character included: for a state inside a character, whether some character with those leading bytes
        passes `prefix`.

        Exact but slow for a dead lead byte (it tries every character the bytes can start, up to ~10^6 for a
        4-byte lead, or those `characters` picks); memoised. With `limit`, a pending character that needs more
        than `limit` tries counts as live without them (what `advance` does, so sampling never stalls on it).
        """
        split = _split_utf8(state)
        if split is None:
            return False
        text, pending = split
        if not pending or self.prefix is None:
            return True
        tail = state[len(state) - _pending_length(state) :]
        key = (text, tail)
        found = self._live.get(key)
        if found is None:
            lo, hi = _code_point_range(tail)
            tried = range(lo, hi + 1) if self.characters is None else self.characters(text, lo, hi)
            if len(tail) > 1 and not self.live(state[:-1], limit):  # a dead shorter tail covers these characters
                verdict = False
            elif limit is not None and len(tried) > limit:
                return True  # not memoised: the exact verdict is still unknown
            else:
                prefix = self.prefix
                verdict = any(prefix(text + chr(c)) for c in tried if not 0xD800 <= c <= 0xDFFF)
            if len(self._live) > 100_000:
                self._live.clear()
            found = self._live[key] = (verdict, len(tried))
        verdict, tries = found
        return True if limit is not None and tries > limit else verdict

    def allowed_tokens(self, state: bytes) -> np.ndarray:
        """The non-EOS ids that `allows` accepts after `state`, one `prefix` call per candidate token: the slow,
        explicit answer that `mask` refuses to give (for exact enumeration of small problems and for tests)."""
        candidates = self._continuation_ids if self.inside_character(state) else self._fresh_ids
        return np.array([t for t in candidates.tolist() if self.advance(state, t) is not None], dtype=np.int64)

    def mask(self, state: bytes) -> np.ndarray:
        raise ConstraintError(
            f"{self.what} has no token masks: its checks run on text one token at a time, so token masking "
            "cannot use it; express the language as a `Regex` (or `Grammar`) to mask, or sample this constraint "
            "with AWRS or SMC"
        )


def timed(check: TextCheck | None, budget: float | None, what: str) -> TextCheck | None:
    """`check`, raising `CheckTimeoutError` when a call took longer than `budget` seconds."""
    if check is None or budget is None:
        return check

    def run(text: str) -> bool:
        t0 = time.perf_counter()
        verdict = check(text)
        took = time.perf_counter() - t0
        if took > budget:
            raise CheckTimeoutError(
                f"{what}: a check of a text of {len(text)} characters took {took:.2f} s, past its {budget:g} s "
                "budget; make the check cheaper or raise timeout="
            )
        return verdict

    return run


def _as_text(text: str | bytes) -> str | None:
    """`text` as a str; None for bytes that are not valid UTF-8."""
    if isinstance(text, str):
        return text
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        return None


class Predicate(Constraint):
    """Output text must satisfy Python checks: `prefix(text)` (can the text so far still become acceptable?) on
    every prefix, and `complete(text)` (is it acceptable as a whole?) at the end.

    Either may be None (no check). `prefix` must be prefix-closed (if it accepts a text it accepts that text's
    prefixes) and say False only when no extension can be completed; otherwise sampling walks into dead ends.
    Works with AWRS/SMC (`allows`), not with token masking (`mask` raises `ConstraintError`). `timeout`: the seconds
    one call may take; a call that returns later raises `CheckTimeoutError` (Python cannot interrupt it, so the
    budget is checked when it returns). None: no budget.
    """

    def __init__(
        self,
        prefix: TextCheck | None = None,
        complete: TextCheck | None = None,
        name: str | None = None,
        *,
        timeout: float | None = CHECK_TIMEOUT,
    ):
        super().__init__()
        if prefix is not None and not callable(prefix):
            raise TypeError(f"prefix must be callable, got {type(prefix).__name__}")
        if complete is not None and not callable(complete):
            raise TypeError(f"complete must be callable, got {type(complete).__name__}")
        self.prefix = prefix
        self.complete = complete
        self.name = name or getattr(complete, "__name__", None) or getattr(prefix, "__name__", None) or "predicate"
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Predicate(name={self.name!r})"

    def _compile(self, vocab: TokenVocabulary) -> PredicateMatcher:
        prefix, complete = (timed(f, self.timeout, repr(self)) for f in (self.prefix, self.complete))
        return PredicateMatcher(vocab, prefix, complete, repr(self))

    def check(self, text: str | bytes) -> bool:
        s = _as_text(text)
        if s is None:
            return False
        if self.complete is not None and not self.complete(s):
            return False
        return self.prefix is None or bool(self.prefix(s))

    def describe(self) -> dict[str, Any]:
        return {"type": "predicate", "name": self.name}
