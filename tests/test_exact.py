"""Exact enumeration against an independent brute force: every tokenization of every text, scored uncached."""

from __future__ import annotations

import functools
import itertools
import math
import re

import numpy as np
import pytest
import torch
from tiny_models import tiny_llama

from genlab import GenlabError, Pattern, Predicate, Regex
from genlab.models import load
from genlab.samplers.exact import exact_posterior

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def tiny():
    """The tests' tiny random Llama over SmolLM2's tokenizer: sharp, arbitrary next-token distributions."""
    return tiny_llama(attention="sdpa")


def tokenizations(vocab, text: bytes) -> list[tuple[int, ...]]:
    """Every token sequence whose bytes are `text`: recursive splits into byte strings some text token has."""
    by_bytes: dict[bytes, list[int]] = {}
    for t in np.flatnonzero(vocab.is_text):
        b = vocab.token_bytes[t]
        if b and b in text:
            by_bytes.setdefault(b, []).append(int(t))

    @functools.cache
    def split(start: int) -> list[tuple[int, ...]]:
        if start == len(text):
            return [()]
        out = []
        for end in range(start + 1, len(text) + 1):
            for t in by_bytes.get(text[start:end], ()):
                out.extend((t,) + rest for rest in split(end))
        return out

    return split(0)


def brute_force(lm, prompt: str, texts: list[str], temperature: float = 1.0) -> dict[tuple[int, ...], float]:
    """log p(x, EOS | prompt) for every tokenization x of every text, each from one uncached forward pass."""
    prompt_ids = lm.encode(prompt)
    eos = sorted(lm.vocab.eos_ids)
    out = {}
    for text in texts:
        for ids in tokenizations(lm.vocab, text.encode()):
            with torch.inference_mode():
                logits = lm.model(input_ids=torch.tensor([prompt_ids + list(ids)])).logits[0].double()
            logp = torch.log_softmax(logits / temperature, dim=-1)[len(prompt_ids) - 1 :]
            score = sum(float(logp[k, t]) for k, t in enumerate(ids))
            out[ids] = score + float(torch.logsumexp(logp[len(ids), eos], dim=0))
    return out


def language(pattern: str, alphabet: str, max_len: int) -> list[str]:
    """Every string over `alphabet` of length <= max_len that re.fullmatch accepts (independent of genlab)."""
    return [
        "".join(chars)
        for n in range(max_len + 1)
        for chars in itertools.product(alphabet, repeat=n)
        if re.fullmatch(pattern, "".join(chars))
    ]


CASES = [
    (r"(ab|a|b){1,2}", "ab", 4, 4, 1.0),
    (r"(ab|a|b){1,2}", "ab", 4, 4, 0.7),
    (r" (red|grey)\.", None, None, 6, 1.0),
]


@pytest.mark.parametrize("pattern, alphabet, max_len, max_tokens, temperature", CASES)
def test_matches_brute_force(tiny, pattern, alphabet, max_len, max_tokens, temperature):
    texts = language(pattern, alphabet, max_len) if alphabet else [" red.", " grey."]
    want = brute_force(tiny, PROMPT, texts, temperature)
    got = exact_posterior(tiny, PROMPT, Regex(pattern), max_tokens, temperature=temperature)
    got_map = dict(got.sequences)
    assert len(got_map) == len(got.sequences)  # no sequence twice
    assert set(got_map) == set(want)
    for ids, lp in want.items():
        assert abs(got_map[ids] - lp) < 1e-4, (ids, got_map[ids], lp)
    log_marginal = float(np.logaddexp.reduce(list(want.values())))
    assert abs(got.log_marginal - log_marginal) < 1e-4
    posterior = got.posterior()
    assert math.isclose(sum(posterior.values()), 1.0, abs_tol=1e-9)
    for ids in posterior:
        assert re.fullmatch(pattern, tiny.vocab.decode(ids).decode())
    texts_p = got.text_posterior(tiny.vocab)
    assert set(texts_p) == set(texts)
    assert math.isclose(sum(texts_p.values()), 1.0, abs_tol=1e-9)


def test_max_tokens_is_never_truncated(tiny):
    # "abab" as four one-byte tokens needs 4 tokens; with 3 the enumeration must refuse rather than drop it.
    with pytest.raises(GenlabError, match="not finite within 3 tokens"):
        exact_posterior(tiny, PROMPT, Regex(r"(ab|a|b){1,2}"), 3)


def test_infinite_language_raises(tiny):
    with pytest.raises(GenlabError, match="not finite"):
        exact_posterior(tiny, PROMPT, Regex(r"a+"), 3)


def test_max_sequences(tiny):
    with pytest.raises(GenlabError, match="max_sequences"):
        exact_posterior(tiny, PROMPT, Regex(r"(ab|a|b){1,2}"), 4, max_sequences=3)


def test_empty_language(tiny):
    nothing = Predicate(prefix=lambda text: False, complete=lambda text: False)
    got = exact_posterior(tiny, PROMPT, nothing, 3)
    assert got.sequences == [] and got.log_marginal == -math.inf
    assert got.posterior() == {}


def test_maskless_constraint_matches_regex(tiny):
    """A `Pattern` (no masks: enumerated through `allows`, dead lead bytes pruned by `live`) gives the same
    posterior as the equivalent `Regex`."""
    a = exact_posterior(tiny, PROMPT, Pattern(r"(a|b)\1"), 2)
    b = exact_posterior(tiny, PROMPT, Regex(r"aa|bb"), 2)
    assert dict(a.sequences) == pytest.approx(dict(b.sequences), abs=1e-4)


def test_smollm2_sky_colour():
    lm = load(device="cpu")
    pattern = r" (red|grey|blue-green|bluish)\."
    got = exact_posterior(lm, "The color of the sky is", Regex(pattern), 12)
    texts = got.text_posterior(lm.vocab)
    assert set(texts) == {" red.", " grey.", " blue-green.", " bluish."}
    assert math.isclose(sum(texts.values()), 1.0, abs_tol=1e-9)
    assert max(texts, key=texts.get) == " red."
    assert 0.85 < texts[" red."] < 0.99 and 0.02 < texts[" grey."] < 0.12  # PEERS.md: 0.945 / 0.055
    for ids, _ in got.sequences:
        assert re.fullmatch(pattern, lm.vocab.decode(ids).decode())
