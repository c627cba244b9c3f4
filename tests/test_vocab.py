"""TokenVocabulary against the tokenizers' own decode and encode, on real vocabularies of every family."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from conftest import tokenizer_and_vocab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizer_assets import FAST, SLOW
from tokenizers import Tokenizer, decoders, models

from genlab.errors import VocabularyError
from genlab.vocab import TokenVocabulary

ALL = FAST + [pytest.param(name, marks=pytest.mark.slow) for name in SLOW]
EXPECTED_SIZE = {"qwen2": 151_936, "llama-3": 128_257, "gemma-3": 262_144, "gpt-2": 50_257, "smollm2": 49_152}


def _uses_nfc(tok) -> bool:
    return '"NFC"' in json.dumps(json.loads(tok.backend_tokenizer.to_str()).get("normalizer"))


def _decoded_bytes(tok, ids: list[int]) -> bytes | None:
    """What `tok.decode` gives for `ids` in the middle of a text (after an anchor token), or None when that
    decode is not valid UTF-8 (the tokenizer shows U+FFFD for a split character)."""
    anchor = tok.encode("a", add_special_tokens=False)
    head = tok.decode(anchor, skip_special_tokens=True)
    full = tok.decode(anchor + ids, skip_special_tokens=True)
    if "\ufffd" in full or not full.startswith(head):
        return None
    return full[len(head) :].encode("utf-8")


@pytest.mark.parametrize("name", ALL)
def test_decode_oracle(name):
    tok, vocab = tokenizer_and_vocab(name)
    if name in EXPECTED_SIZE:
        assert vocab.size == EXPECTED_SIZE[name]
    ids = np.flatnonzero(vocab.is_text | np.isin(np.arange(vocab.size), list(vocab.eos_ids)))
    known = [int(i) for i in ids]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(known), min_size=1, max_size=8))
    def check(seq):
        expected = _decoded_bytes(tok, seq)
        if expected is not None:
            assert vocab.decode(seq) == expected, (seq, tok.convert_ids_to_tokens(seq))

    check()


@pytest.mark.parametrize("name", ALL)
def test_every_token_alone(name):
    """Each text token on its own decodes to its bytes (where its decode is valid UTF-8)."""
    tok, vocab = tokenizer_and_vocab(name)
    anchor = tok.encode("a", add_special_tokens=False)
    head = tok.decode(anchor)
    texts = tok.batch_decode([anchor + [int(i)] for i in np.flatnonzero(vocab.is_text)])
    checked = 0
    for i, text in zip(np.flatnonzero(vocab.is_text), texts):
        if "\ufffd" not in text:
            assert text[len(head) :].encode() == vocab.token_bytes[i], (int(i), tok.convert_ids_to_tokens(int(i)))
            checked += 1
    assert checked > 0.5 * vocab.is_text.sum()


@pytest.mark.parametrize("name", ALL)
def test_encode_oracle(name):
    tok, vocab = tokenizer_and_vocab(name)
    # special tokens, and added tokens that are control tokens rather than text (Phi-3's "<|end|>" is not among
    # `all_special_tokens`, but the tokenizer turns the text into that control token)
    specials = [t for t in tok.all_special_tokens if t]
    specials += [t for t, i in tok.get_added_vocab().items() if t and not vocab.is_text[i]]
    # and the EOS pieces of the base vocabulary (Phi-3's "</s>": the tokenizer reads that text as the control token)
    specials += [t for t in tok.convert_ids_to_tokens(sorted(i for i in vocab.eos_ids if i < len(tok))) if t]
    nfc = _uses_nfc(tok)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.from_regex(r"[ \t\n]*\w+[ ]{0,3}\w*"))
    def check(text):
        if any(s in text for s in specials):
            return
        if nfc:
            text = unicodedata.normalize("NFC", text)
        ids = tok.encode(text, add_special_tokens=False)
        if tok.decode(ids) != text:
            return  # the tokenizer itself loses this text (SmolLM2 has no token for byte 0x16, nor 0xF1)
        expected = vocab.prefix_space + text.encode() if text else b""
        assert vocab.decode(ids) == expected, (text, tok.convert_ids_to_tokens(ids))
        checked.append(text)

    checked: list[str] = []
    check()
    assert len(checked) > 50


@pytest.mark.parametrize("name", ALL)
def test_eos_and_specials(name):
    tok, vocab = tokenizer_and_vocab(name)
    assert tok.eos_token_id in vocab.eos_ids
    for i in vocab.eos_ids:
        assert not vocab.is_text[i]
    for i in tok.all_special_ids:
        assert not vocab.is_text[i], (i, tok.convert_ids_to_tokens(i))
    # a special token's content is never text: decoding it adds nothing
    assert vocab.decode(tok.all_special_ids) == b""


def test_chat_model_knows_both_end_tokens():
    tok, vocab = tokenizer_and_vocab("smollm2")
    assert {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")} <= vocab.eos_ids


def test_sentencepiece_prefix_and_byte_fallback():
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    assert vocab.prefix_space == b" "
    piece = tok.convert_tokens_to_ids("<0x0A>")
    assert vocab.token_bytes[piece] == b"\n"
    assert vocab.token_bytes[tok.convert_tokens_to_ids("\u2581the")] == b" the"


def test_duplicate_bytes_stay_apart():
    """SentencePiece byte fallback gives `<0x41>` and `A` the same bytes: two ids, two tokens."""
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    a_piece, a_byte = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("<0x41>")
    assert a_piece != a_byte
    assert vocab.token_bytes[a_piece] == vocab.token_bytes[a_byte] == b"A"
    assert vocab.is_text[a_piece] and vocab.is_text[a_byte]


def test_model_larger_than_tokenizer():
    tok, _ = tokenizer_and_vocab("smollm2")
    vocab = TokenVocabulary.from_tokenizer(tok, model_vocab_size=len(tok) + 64)
    assert vocab.size == len(tok) + 64
    assert not vocab.is_text[len(tok) :].any()
    assert vocab.offsets.shape == (vocab.size + 1,)


def test_extra_eos_ids():
    tok, _ = tokenizer_and_vocab("gpt-2")
    nl = tok.convert_tokens_to_ids("\u010a")
    vocab = TokenVocabulary.from_tokenizer(tok, eos_token_ids=[nl])
    assert nl in vocab.eos_ids and not vocab.is_text[nl]


def _tiny_tokenizer(pieces: list[str], decoder) -> Tokenizer:
    backend = Tokenizer(models.BPE({p: i for i, p in enumerate(pieces)}, [], unk_token=pieces[0]))
    backend.decoder = decoder
    return backend


def test_unmappable_byte_level_token_names_it():
    backend = _tiny_tokenizer(["<unk>", "a", "b c"], decoders.ByteLevel())
    with pytest.raises(VocabularyError, match=r"token id 2 \('b c'\)"):
        TokenVocabulary.from_tokenizer(backend, eos_token_ids=[0])


def test_unsupported_decoder_names_it():
    backend = _tiny_tokenizer(["<unk>", "a", "##b"], decoders.WordPiece())
    with pytest.raises(VocabularyError, match="WordPiece"):
        TokenVocabulary.from_tokenizer(backend, eos_token_ids=[0])


def test_no_eos_is_refused():
    backend = _tiny_tokenizer(["<unk>", "a"], decoders.ByteLevel())
    with pytest.raises(VocabularyError, match="EOS"):
        TokenVocabulary.from_tokenizer(backend)


def test_flat_layout_matches_bytes():
    _, vocab = tokenizer_and_vocab("qwen2")
    for i in [0, 1, 100, 5000, vocab.size - 1]:
        assert vocab.data[vocab.offsets[i] : vocab.offsets[i + 1]].tobytes() == vocab.token_bytes[i]


def test_python_lists_are_made_once_and_match_the_arrays():
    _, vocab = tokenizer_and_vocab("smollm2")
    assert vocab.offset_list == vocab.offsets.tolist() and vocab.offset_list is vocab.offset_list
    assert vocab.text_list == vocab.is_text.tolist() and vocab.text_list is vocab.text_list
