"""Token bitsets: a set of token ids packed 32 to a word, token t in bit t % 32 of word t // 32.

It is the layout llguidance and XGrammar fill and GPU samplers apply, and an eighth of a bool mask's memory: on a
150k-token vocabulary a fresh bool mask is 150 KB to write, which costs more than building most masks.
Grammar matchers build and cache their masks in it (`Matcher.fill_bitmask`); `unpack` gives the bool view.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import types
from numba.extending import overload

if sys.byteorder != "little":  # `pack`/`unpack` read the words as bytes, low byte first
    raise ImportError("genlab's token bitsets assume a little-endian machine")


def n_words(size: int) -> int:
    """Words in a bitset over `size` tokens."""
    return (size + 31) // 32


def empty(size: int) -> np.ndarray:
    """An all-clear bitset over `size` tokens (uint32 words)."""
    return np.zeros(n_words(size), np.uint32)


def pack(mask: np.ndarray) -> np.ndarray:
    """A bool array over the tokens as a bitset (uint32 words)."""
    out = empty(len(mask))
    packed = np.packbits(mask, bitorder="little")
    out.view(np.uint8)[: len(packed)] = packed
    return out


_WORDS = (np.dtype(np.int32), np.dtype(np.uint32))


def words_of(out: np.ndarray, size: int) -> np.ndarray:
    """A caller's bitset buffer over `size` tokens (int32 or uint32, one word per 32 tokens, contiguous) as uint32
    words to write; ValueError naming what is wrong otherwise."""
    flags = getattr(out, "flags", None)
    if (
        flags is not None
        and flags.c_contiguous
        and flags.writeable
        and out.shape == (n_words(size),)
        and out.dtype in _WORDS
    ):
        return out.view(np.uint32)
    if not isinstance(out, np.ndarray) or out.dtype not in _WORDS or out.ndim != 1:
        raise ValueError(
            f"a token bitmask is a 1-D int32 or uint32 numpy array, not {getattr(out, 'dtype', type(out))}"
            f" with shape {getattr(out, 'shape', '?')}"
        )
    raise ValueError(
        f"a token bitmask over {size} tokens is a writeable contiguous array of {n_words(size)} words; "
        f"got {len(out)}{'' if out.flags.c_contiguous else ', not contiguous'}"
        f"{'' if out.flags.writeable else ', not writeable'}"
    )


def unpack(words: np.ndarray, size: int) -> np.ndarray:
    """A bitset (32-bit words, signed or not) as a bool array over `size` tokens."""
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), count=size, bitorder="little").view(np.bool_)


class TokenBits:
    """Where a few token ids sit in a uint32 bitset (EOS ids, set or cleared per mask): their words, once each,
    with the bits of each word. A mask has one to a few of them: a scalar write per word costs less than numpy's
    fancy indexing."""

    def __init__(self, ids) -> None:
        ids = np.asarray(sorted(ids), np.int64)
        words, at = np.unique(ids >> 5, return_inverse=True)
        bits = np.zeros(len(words), np.uint32)
        np.bitwise_or.at(bits, at, (np.uint32(1) << (ids & 31).astype(np.uint32)))
        self._set = list(zip(words.tolist(), bits))  # (word, its bits as a np.uint32)
        self._clear = [(w, ~b) for w, b in self._set]

    def write(self, words: np.ndarray, value: bool) -> None:
        if value:
            for w, b in self._set:
                words[w] |= b
        else:
            for w, b in self._clear:
                words[w] &= b


def mark(out, token):
    """Allow `token` in `out`, a bool mask or a bitset: the one write every mask kernel makes per token (numba
    picks the form by `out`'s type when it compiles the kernel)."""
    if out.dtype == np.bool_:
        out[token] = True
    else:
        out[token >> 5] |= np.uint32(1) << np.uint32(token & 31)


@overload(mark, inline="always")
def _mark(out, token):
    if out.dtype == types.boolean:

        def impl(out, token):
            out[token] = True
    else:

        def impl(out, token):
            out[token >> 5] |= np.uint32(1) << np.uint32(token & 31)

    return impl
