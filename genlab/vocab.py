"""Token id -> exact bytes for any Hugging Face tokenizer, the ground every constraint is checked on.

Constraints are languages over bytes, so every token id needs the bytes it adds to the text. Tokenizers store
tokens as strings in one of a few encodings, which the tokenizer's decoder undoes:

- byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama-3): each byte is drawn as one printable character (`Ġ` is a
  space); the decoder maps characters back to bytes;
- SentencePiece (Mistral, Phi-3, Gemma): `▁` stands for a space and `<0xNN>` pieces carry single raw bytes
  (byte fallback); the rest is UTF-8 text.

genlab reads the decoder from the tokenizer's own configuration and applies it token by token. The bytes of a
token are those it adds in the middle of a text; a SentencePiece decoder's removal of the very first leading
space is a display convention of `decode`, not part of the token.

Special tokens are never text: EOS ids are kept apart (a matcher allows them exactly in final states), every
other special token and every id the tokenizer lacks (a model whose embedding matrix is larger than the
tokenizer) is never allowed. Two ids with the same bytes stay two tokens.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from genlab.errors import VocabularyError

# Special tokens that end a text in common model families; any of them that the tokenizer has as a special
# token counts as EOS, besides the ids the tokenizer and model configs name.
_END_MARKERS = frozenset(
    ["<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>", "<|end|>", "</s>", "<eos>", "<end_of_turn>"]
)
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte <-> printable character map: printable Latin-1 bytes stand for themselves, the other 68
    bytes are drawn as the characters 256, 257, ... in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in keep}
    extra = 0
    for b in range(256):
        if b not in keep:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_LEVEL = _byte_level_alphabet()
_BYTE_LEVEL_TRANSLATE = str.maketrans({c: chr(b) for c, b in _BYTE_LEVEL.items()})
_NOT_BYTE_LEVEL = re.compile("[^" + "".join(re.escape(c) for c in _BYTE_LEVEL) + "]")


@dataclass(frozen=True)
class _Decoder:
    """What a tokenizer's decoder does to one token, read from its JSON configuration."""

    byte_level: bool = False
    byte_fallback: bool = False
    replacements: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: dict | None) -> _Decoder:
        if config is None:
            raise VocabularyError("the tokenizer has no decoder, so its tokens have no defined bytes")
        steps = config["decoders"] if config.get("type") == "Sequence" else [config]
        byte_level = byte_fallback = False
        replacements = []
        for step in steps:
            kind = step.get("type")
            if kind == "ByteLevel":
                byte_level = True
            elif kind == "ByteFallback":
                byte_fallback = True
            elif kind == "Replace" and "String" in step.get("pattern", {}):
                replacements.append((step["pattern"]["String"], step["content"]))
            elif kind == "Metaspace":
                replacements.append((step.get("replacement", "\u2581"), " "))
            elif kind in ("Fuse", "Strip"):
                pass  # Fuse joins strings (no byte change); Strip only trims the start or end of a whole decode
            else:
                raise VocabularyError(f"unsupported tokenizer decoder step {json.dumps(step)}: token bytes unknown")
        if byte_level and (byte_fallback or replacements):
            raise VocabularyError(f"unsupported tokenizer decoder {json.dumps(config)}: byte-level mixed with others")
        return cls(byte_level, byte_fallback, tuple(replacements))

    def model_token(self, token_id: int, piece: str) -> bytes:
        """Bytes of a token of the tokenizer's model vocabulary."""
        if self.byte_level:
            if bad := _NOT_BYTE_LEVEL.search(piece):
                raise VocabularyError(
                    f"token id {token_id} ({piece!r}) has character {bad.group()!r}, which is not in the "
                    "byte-level alphabet, so its bytes are unknown"
                )
            return piece.translate(_BYTE_LEVEL_TRANSLATE).encode("latin-1")
        if self.byte_fallback and (m := _BYTE_PIECE.fullmatch(piece)):
            return bytes([int(m.group(1), 16)])
        for old, new in self.replacements:
            piece = piece.replace(old, new)
        return piece.encode("utf-8")

    def added_token(self, content: str) -> bytes:
        """Bytes of an added (non-special) token: the decoder sees its content as it is."""
        if self.byte_level:  # characters outside the alphabet pass through as their own UTF-8
            return b"".join(bytes([_BYTE_LEVEL[c]]) if c in _BYTE_LEVEL else c.encode() for c in content)
        for old, new in self.replacements:
            content = content.replace(old, new)
        return content.encode("utf-8")


def _prefix_space(config: dict) -> bytes:
    """The bytes a tokenizer puts before a text it encodes on its own (SentencePiece's dummy prefix)."""
    found = []

    def visit(node):
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "Prepend":
                found.append(node["prepend"])
            elif kind == "Metaspace" and node.get("prepend_scheme", "always") in ("always", "first"):
                found.append(node.get("replacement", "\u2581"))
            elif kind == "ByteLevel" and node.get("add_prefix_space"):
                found.append(" ")
            for key in ("normalizers", "pretokenizers"):
                for child in node.get(key) or ():
                    visit(child)

    visit(config.get("normalizer"))
    visit(config.get("pre_tokenizer"))
    return b" " if found else b""


def _ids(value) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


@dataclass(frozen=True, eq=False)
class TokenVocabulary:
    """The exact bytes of every token id of a model, packed flat for numba kernels.

    `offsets`/`data`: token i's bytes are `data[offsets[i]:offsets[i+1]]`. `is_text[i]`: id i may be emitted
    as text (not special, known to the tokenizer, at least one byte). `eos_ids`: ids that end the text.
    `prefix_space`: bytes the tokenizer puts before a text it encodes on its own (b" " for SentencePiece's
    dummy prefix, else b"").
    """

    token_bytes: tuple[bytes, ...]
    offsets: np.ndarray
    data: np.ndarray
    is_text: np.ndarray
    eos_ids: frozenset[int]
    prefix_space: bytes = b""
    fingerprint: str = field(default="")

    @classmethod
    def from_bytes(
        cls,
        token_bytes: Sequence[bytes | None],
        eos_ids: Iterable[int],
        special_ids: Iterable[int] = (),
        prefix_space: bytes = b"",
    ) -> TokenVocabulary:
        """A vocabulary from explicit token bytes; None marks an id with no text (padding, special)."""
        size = len(token_bytes)
        eos = frozenset(int(i) for i in eos_ids)
        if any(not 0 <= i < size for i in eos):
            raise VocabularyError(f"EOS ids {sorted(eos)} fall outside the vocabulary of {size} ids")
        is_text = np.array([b is not None and len(b) > 0 for b in token_bytes], dtype=np.bool_)
        for i in list(special_ids) + list(eos):
            is_text[i] = False
        blobs = tuple(b if b is not None else b"" for b in token_bytes)
        lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=size)
        offsets = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
        digest = hashlib.sha256()
        digest.update(offsets.tobytes())
        digest.update(data.tobytes())
        digest.update(is_text.tobytes())
        digest.update(repr(sorted(eos)).encode())
        return cls(blobs, offsets, data, is_text, eos, prefix_space, digest.hexdigest()[:16])

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        model_vocab_size: int | None = None,
        eos_token_ids: Iterable[int] | None = None,
    ) -> TokenVocabulary:
        """The vocabulary of a `transformers` fast tokenizer (or a `tokenizers.Tokenizer`).

        `model_vocab_size`: the model's logits width; ids past the tokenizer's are never allowed.
        `eos_token_ids`: extra EOS ids (e.g. from the model's generation config), added to the tokenizer's own.
        """
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not hasattr(backend, "to_str"):
            raise VocabularyError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; load it with use_fast=True or "
                "AutoTokenizer so its decoder configuration can be read"
            )
        config = json.loads(backend.to_str())
        decoder = _Decoder.from_config(config.get("decoder"))
        pieces = backend.get_vocab(with_added_tokens=False)
        added = {int(t["id"]): t for t in config.get("added_tokens") or ()}
        n_tok = max([*pieces.values(), *added, -1]) + 1
        size = max(n_tok, model_vocab_size or 0)
        token_bytes: list[bytes | None] = [None] * size
        for piece, i in pieces.items():
            if i not in added:
                token_bytes[i] = decoder.model_token(i, piece)
        specials = []
        for i, tok in added.items():
            if tok.get("special"):
                specials.append(i)
                token_bytes[i] = None
            else:
                token_bytes[i] = decoder.added_token(tok["content"])
        eos = set(_ids(eos_token_ids)) | set(_ids(getattr(tokenizer, "eos_token_id", None)))
        eos |= {i for i, tok in added.items() if tok.get("special") and tok["content"] in _END_MARKERS}
        if not eos:
            raise VocabularyError("the tokenizer names no EOS token; pass eos_token_ids")
        return cls.from_bytes(token_bytes, eos, specials, _prefix_space(config))

    @property
    def size(self) -> int:
        """Number of token ids (the model's logits width)."""
        return len(self.token_bytes)

    def __len__(self) -> int:
        return len(self.token_bytes)

    @cached_property
    def offset_list(self) -> list[int]:
        """`offsets` as a Python list, made once: per-call Python readers (a matcher's `allows`) index a list
        faster than an array, and each matcher compiled on this vocabulary shares it."""
        return self.offsets.tolist()

    @cached_property
    def text_list(self) -> list[bool]:
        """`is_text` as a Python list, made once (see `offset_list`)."""
        return self.is_text.tolist()

    @cached_property
    def first_bytes(self) -> np.ndarray:
        """int16 [size]: each token's first byte, -1 for ids with no text."""
        out = np.full(self.size, -1, np.int16)
        out[self.is_text] = self.data[self.offsets[:-1][self.is_text]]
        return out

    @cached_property
    def byte_tokens(self) -> np.ndarray:
        """int64 [256]: a text token whose bytes are exactly that one byte (the lowest such id), -1 where none."""
        out = np.full(256, -1, np.int64)
        one = np.flatnonzero((np.diff(self.offsets) == 1) & self.is_text)
        for i in one[::-1].tolist():
            out[self.data[self.offsets[i]]] = i
        return out

    @cached_property
    def _sorted_text(self) -> list[bytes]:
        """The text tokens' bytes, sorted (for prefix queries by bisection)."""
        return sorted(b for b, text in zip(self.token_bytes, self.text_list) if text)

    @cached_property
    def longest_text(self) -> int:
        """The byte length of the longest text token."""
        return max(map(len, self._sorted_text), default=0)

    def extends(self, prefix: bytes) -> bool:
        """Whether some text token's bytes start with `prefix` and are longer: a token could cross the point where
        `prefix` ends (what token healing backs off over)."""
        tokens = self._sorted_text
        i = bisect.bisect_right(tokens, prefix)
        return i < len(tokens) and tokens[i].startswith(prefix)

    def decode(self, ids: Iterable[int]) -> bytes:
        """The bytes of a token sequence; EOS and other non-text ids add nothing."""
        return b"".join(self.token_bytes[i] for i in ids if self.is_text[i])
