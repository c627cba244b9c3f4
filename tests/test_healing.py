"""Token healing: the back-off rule, the prefixed matcher's masks, and the exact text-level target.

Oracles: a brute-force scan of the vocabulary for "some token runs past this point", byte-level prefix checks
against every string of a finite language, and an uncached brute force over every tokenization of the healed
bytes followed by each text (the target healing promises: p(text | prompt text), summed over tokenizations).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from conftest import tokenizer_and_vocab
from test_exact import tokenizations
from tiny_models import tiny_llama

import genlab
from genlab import GenlabError, JsonSchema, Regex
from genlab.constraints.prefixed import PrefixedMatcher
from genlab.hf import ConstraintLogitsProcessor
from genlab.hf import heal as hf_heal
from genlab.models import load
from genlab.samplers.exact import exact_posterior
from genlab.samplers.masking import masked_sampling
from genlab.samplers.prompt import heal, prepare
from genlab.samplers.smc import smc

PROMPTS = [
    "The color of the sky is ",
    "The color of the sky is",
    "Visit https://exa",
    "中文字符",
    '{"name": "Al',
    "Hello world.\n",
    "x = 1 +",
    "The café",
]
COLORS = ["red.", "grey.", "blue-green.", "bluish."]
COLOR_REGEX = r"(red|grey|blue-green|bluish)\."


@pytest.fixture(scope="module")
def lm():
    return load(device="cpu")


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama()


def brute_cut(vocab, ids: list[int]) -> int:
    """The earliest token start from which the bytes to the end are a proper prefix of some text token."""
    texts = [b for b, ok in zip(vocab.token_bytes, vocab.is_text) if ok]
    cut = len(ids)
    for j in range(len(ids) - 1, -1, -1):
        if not vocab.is_text[ids[j]]:
            break
        tail = vocab.decode(ids[j:])
        if any(len(t) > len(tail) and t.startswith(tail) for t in texts):
            cut = j
    return cut


@pytest.mark.parametrize("name", ["smollm2", "mistral-v1"])
def test_back_off_agrees_with_a_scan_of_the_vocabulary(name):
    tok, vocab = tokenizer_and_vocab(name)
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        kept, removed = heal(vocab, ids, tok.bos_token_id)
        cut = brute_cut(vocab, ids)
        assert removed == vocab.decode(ids[cut:]), (prompt, removed)
        assert kept == (ids[:cut] or [tok.bos_token_id]), prompt
        assert vocab.decode(kept) + removed == vocab.decode(ids), prompt


def test_back_off_cases_named_by_the_issue():
    tok, vocab = tokenizer_and_vocab("smollm2")
    bos = tok.bos_token_id
    assert heal(vocab, tok("The color of the sky is ")["input_ids"], bos)[1] == b" "  # a trailing space
    assert heal(vocab, tok("Visit https://exa")["input_ids"], bos)[1] == b"exa"  # a cut word, two tokens back
    kept, removed = heal(vocab, tok("中文字符")["input_ids"], bos)
    assert removed == b"\xa6"  # the kept prompt ends inside the last character: a partial UTF-8 character
    with pytest.raises(UnicodeDecodeError):
        vocab.decode(kept).decode("utf-8")
    assert heal(vocab, tok("Hi")["input_ids"], bos) == ([bos], b"Hi")  # one token: healed to BOS alone
    assert heal(vocab, [], bos) == ([], b"")  # nothing to heal
    with pytest.raises(GenlabError, match="BOS"):
        heal(vocab, tok("Hi")["input_ids"], None)
    im_start = tok.convert_tokens_to_ids("<|im_start|>")  # special tokens are never backed off
    assert heal(vocab, [im_start], bos) == ([im_start], b"")


def test_sentencepiece_leading_space_and_bos():
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    ids = tok("The sky is ")["input_ids"]
    assert vocab.token_bytes[ids[-1]] == b" "  # SentencePiece's "▁" alone
    assert heal(vocab, ids, tok.bos_token_id) == (ids[:-1], b" ")
    # one word: SentencePiece's dummy prefix space is part of the token's bytes, so it is part of what is healed
    assert heal(vocab, tok("Hi")["input_ids"], tok.bos_token_id) == ([tok.bos_token_id], b" Hi")


def test_vocabulary_extends_matches_a_scan():
    _, vocab = tokenizer_and_vocab("smollm2")
    texts = [b for b, ok in zip(vocab.token_bytes, vocab.is_text) if ok]
    rng = np.random.default_rng(0)
    probes = [texts[i][: rng.integers(0, len(texts[i]) + 1)] for i in rng.integers(0, len(texts), 300)]
    probes += [bytes(rng.integers(0, 256, k, dtype=np.uint8)) for k in (1, 1, 2, 3)] + [b"exa", b" ", b"\xa6"]
    for p in probes:
        assert vocab.extends(p) == any(len(t) > len(p) and t.startswith(p) for t in texts), p


def allowed_oracle(vocab, prefix: bytes, k: int, language: list[bytes]) -> np.ndarray:
    """Tokens whose bytes, after the first k prefix bytes, are a prefix of prefix + s for some s of the language."""
    whole = [prefix + s for s in language]
    out = np.zeros(vocab.size, np.bool_)
    for t in np.flatnonzero(vocab.is_text):
        b = prefix[:k] + vocab.token_bytes[t]
        out[t] = any(w.startswith(b) for w in whole)
    return out


@pytest.mark.parametrize("name", ["smollm2", "mistral-v1"])
@pytest.mark.parametrize("prefix", [b" ", b"exa", b"\xa6", b" bl"])
def test_prefixed_masks_agree_with_the_language(name, prefix):
    _, vocab = tokenizer_and_vocab(name)
    words = ["mple.com", "m", " red", "ue", "red.", "blue-green.", "\u5b57"]
    language = [w.encode() for w in words]
    matcher = PrefixedMatcher(Regex("|".join(re.escape(w) for w in words)).compile(vocab), prefix)
    for k in range(len(prefix)):
        state = (k, matcher.start()[1])
        mask = matcher.mask(state)
        assert (mask == allowed_oracle(vocab, prefix, k, language)).all(), (k, np.flatnonzero(mask)[:10])
        for t in np.flatnonzero(vocab.is_text)[::97]:
            assert matcher.allows(state, int(t)) == mask[t]
        assert not any(mask[list(vocab.eos_ids)]) and not matcher.is_final(state)
    # through a crossing token and on: the same texts as the inner matcher
    for w in language:
        ids = tokenizations(vocab, prefix + w)
        assert ids, w
        for seq in ids[:20]:
            state = matcher.advance_many(matcher.start(), seq)
            assert state is not None and matcher.is_final(state), (w, seq)
    assert matcher.forced_bytes(matcher.start())[: len(prefix)] == prefix


def test_prefixed_grammar_matcher():
    """A grammar inside: a token " x" is allowed exactly where the inner matcher allows a token spelling x."""
    tok, vocab = tokenizer_and_vocab("smollm2")
    schema = JsonSchema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    inner = schema.compile(vocab)
    matcher = PrefixedMatcher(inner, b" ")
    mask, inner_mask = matcher.mask(matcher.start()), inner.mask(inner.start())
    by_bytes = {vocab.token_bytes[t]: int(t) for t in np.flatnonzero(vocab.is_text)}
    compared = 0
    for t in np.flatnonzero(vocab.is_text):
        b = vocab.token_bytes[t]
        if not b.startswith(b" "):
            assert not mask[t], b
        elif len(b) > 1 and b[1:] in by_bytes:
            assert mask[t] == inner_mask[by_bytes[b[1:]]], b
            compared += 1
    assert compared > 1000 and mask[by_bytes[b" "]] and mask[by_bytes[b" {"]]
    state = matcher.advance_many(matcher.start(), [by_bytes[b" {"]] + tok('"a":12}')["input_ids"])
    assert state is not None and matcher.is_final(state)
    assert schema.check(b'{"a":12}')


def healed_brute_force(lm, prompt: str, texts: list[str]) -> dict[str, float]:
    """p(text | healed prompt) for each text: every tokenization of (healed bytes + text), each scored by one
    uncached forward pass after the kept ids, EOS after it; normalised over the texts."""
    kept, healed = heal(lm.vocab, lm.encode(prompt), lm.tokenizer.bos_token_id)
    eos = sorted(lm.vocab.eos_ids)
    scores = {}
    for text in texts:
        total = -math.inf
        for ids in tokenizations(lm.vocab, healed + text.encode()):
            with torch.inference_mode():
                logits = lm.model(input_ids=torch.tensor([kept + list(ids)])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)[len(kept) - 1 :]
            score = sum(float(logp[k, t]) for k, t in enumerate(ids)) + float(torch.logsumexp(logp[len(ids), eos], 0))
            total = float(np.logaddexp(total, score))
        scores[text] = total
    top = max(scores.values())
    z = sum(math.exp(s - top) for s in scores.values())
    return {t: math.exp(s - top) / z for t, s in scores.items()}


BOUNDARIES = [  # (prompt, language): a trailing space, a cut word, a partial UTF-8 character
    ("The color of the sky is ", ["red", "grey", "blue"]),
    ("Visit https://exa", ["mple", "m", "ct"]),
    ("中文字符", ["串", "。"]),
]


@pytest.mark.parametrize("prompt,words", BOUNDARIES)
def test_exact_posterior_with_healing_is_the_text_level_target(tiny, prompt, words):
    regex = Regex("|".join(re.escape(w) for w in words))
    exact = exact_posterior(tiny, prompt, regex, max_tokens=6, heal=True)
    assert exact.healed and exact.healed == heal(tiny.vocab, tiny.encode(prompt), tiny.tokenizer.bos_token_id)[1]
    got = exact.text_posterior(tiny)
    want = healed_brute_force(tiny, prompt, words)
    assert set(got) == set(words)
    for w in words:
        assert got[w] == pytest.approx(want[w], abs=1e-6), (w, got, want)


def kl(estimate: dict[str, float], exact: dict[str, float]) -> float:
    assert set(estimate) <= set(exact), set(estimate) - set(exact)
    return sum(p * math.log(p / exact[t]) for t, p in estimate.items() if p > 0)


@pytest.mark.parametrize("prompt,words", BOUNDARIES)
def test_smc_with_healing_converges_to_the_text_level_posterior(tiny, prompt, words):
    """KL <= 0.05 at N = 64 on each of three seeds (a user runs SMC once)."""
    regex = Regex("|".join(re.escape(w) for w in words))
    enumerated = exact_posterior(tiny, prompt, regex, max_tokens=6, heal=True)
    exact = enumerated.text_posterior(tiny)
    for seed in range(3):
        result = smc(tiny, regex, prompt, n_particles=64, seed=seed, max_tokens=6, heal=True)
        assert result.healed == enumerated.healed
        assert all(re.fullmatch("|".join(map(re.escape, words)), t) for t in result.texts if t), result.texts
        assert kl(result.text_posterior(), exact) <= 0.05, (seed, result.text_posterior(), exact)


def test_healing_removes_the_bias_of_a_trailing_space(lm):
    """SmolLM2 after "The color of the sky is ": without healing the lone space token pulls mass off "red."; with
    healing SMC finds the text-level posterior, which is the one after the prompt without the space."""
    regex = Regex(COLOR_REGEX)
    prompt = "The color of the sky is "
    healed = exact_posterior(lm, prompt, regex, max_tokens=12, heal=True).text_posterior(lm)
    raw = exact_posterior(lm, prompt, regex, max_tokens=12).text_posterior(lm)
    no_space = exact_posterior(lm, prompt[:-1], Regex(" " + COLOR_REGEX), max_tokens=12).text_posterior(lm)
    assert healed["red."] == pytest.approx(no_space[" red."], abs=0.01)
    assert healed["red."] - raw["red."] > 0.1, (healed, raw)
    for seed in range(3):
        post = smc(lm, regex, prompt, n_particles=64, seed=seed, max_tokens=12, heal=True).text_posterior()
        assert kl(post, healed) <= 0.05, (seed, post)


def test_masking_with_healing_is_valid_and_reproducible(lm):
    regex = Regex(r"[a-z]+\.(com|org|net)")
    first = masked_sampling(lm, regex, "Visit https://exa", n=6, max_tokens=12, seed=3, heal=True)
    again = masked_sampling(lm, regex, "Visit https://exa", n=6, max_tokens=12, seed=3, heal=True)
    assert first.healed == b"exa" and first.texts == again.texts
    for sample in first.samples:
        whole = lm.vocab.decode(sample.token_ids)
        assert whole == b"exa" + sample.data
        if sample.complete:
            assert re.fullmatch(r"[a-z]+\.(com|org|net)", sample.text), sample.text
    assert any(s.complete for s in first.samples)


def test_generate_heals_text_prompts_by_default(lm):
    regex = Regex(COLOR_REGEX)
    prompt = "The color of the sky is "
    result = genlab.generate(lm, prompt, regex, n_particles=4, max_tokens=8, seed=0)
    assert result.healed == b" " and result.to_dict()["healed"] == " "
    assert all(re.fullmatch(COLOR_REGEX, t) for t, s in zip(result.texts, result.samples) if s.complete)
    assert genlab.generate(lm, prompt, regex, n_particles=2, max_tokens=8, seed=0, heal=False).healed == b""
    ids = lm.encode(prompt)  # ids and chat messages are taken as given unless heal=True
    assert genlab.generate(lm, ids, regex, n_particles=2, max_tokens=8, seed=0).healed == b""
    assert genlab.generate(lm, ids, regex, n_particles=2, max_tokens=8, seed=0, heal=True).healed == b" "
    chat = [{"role": "user", "content": "Name a color."}]
    assert prepare(lm, chat, None).healed == b""
    templated = lm.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert prepare(lm, templated, None).healed == b""  # text with the template's markers is a chat prompt too
    for method in ("mask", "rerank", "awrs"):
        got = genlab.generate(lm, "Visit https://exa", r"mple\.com", method=method, n_particles=2, max_tokens=6, seed=0)
        assert got.healed == b"exa", method
        assert all(t == "mple.com" for t, s in zip(got.texts, got.samples) if s.status == "complete"), got.texts


def test_logits_processor_with_healing(lm):
    tok = lm.tokenizer
    ids, prefix = hf_heal(tok, "Visit https://exa", lm.vocab)
    assert prefix == b"exa" and lm.vocab.decode(ids) + prefix == lm.vocab.decode(lm.encode("Visit https://exa"))
    processor = ConstraintLogitsProcessor(Regex(r"mple\.(com|org)"), tok, lm.vocab, prefix=prefix)
    out = lm.model.generate(
        torch.tensor([ids]), logits_processor=[processor], max_new_tokens=8, do_sample=False, pad_token_id=0
    )
    (text,) = processor.texts(out)
    assert re.fullmatch(r"mple\.(com|org)", text), text
    assert lm.vocab.decode(out[0, len(ids) :].tolist()).startswith(b"exa")


def test_prefixed_matcher_without_single_byte_tokens():
    """A vocabulary with no token for the byte `y`: a token crossing the prefix is fed to the inner matcher with the
    longest tokens that spell its rest, and the mask still agrees with the language."""
    from genlab.vocab import TokenVocabulary

    pieces = [None, b"x", b"xyz", b"yz", b"xyw", b"yw", b"q", b"xq"]
    vocab = TokenVocabulary.from_bytes(pieces, eos_ids=[0])
    assert vocab.byte_tokens[ord("y")] < 0
    matcher = PrefixedMatcher(Regex("yz|yw").compile(vocab), b"x")
    mask = matcher.mask(matcher.start())
    assert (mask == allowed_oracle(vocab, b"x", 0, [b"yz", b"yw"])).all(), np.flatnonzero(mask)
    assert sorted(np.flatnonzero(mask).tolist()) == [1, 2, 4]
    state = matcher.advance(matcher.start(), 2)
    assert state is not None and matcher.is_final(state)
    assert matcher.advance_many(matcher.start(), [1, 3]) is not None and matcher.advance(matcher.start(), 7) is None
