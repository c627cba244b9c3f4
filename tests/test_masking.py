"""The token-masking sampler on SmolLM2: validity, exact per-step log Z against fresh forward passes, statuses."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from genlab import Regex
from genlab.automata.dfa import run_bytes
from genlab.models import load
from genlab.samplers import masked_sampling


@pytest.fixture(scope="module")
def lm():
    return load(device="cpu")


PROMPTS = ["My phone number is", "The answer (yes or no):"]


@pytest.mark.parametrize("pattern", [r" ?\d{3}-\d{4}", r" ?[a-z]{2,8}@[a-z]{2,8}\.(com|org)", r" (yes|no)\."])
def test_outputs_fullmatch(lm, pattern):
    for k, prompt in enumerate(PROMPTS):
        result = masked_sampling(lm, Regex(pattern), prompt, n=4, max_tokens=40, temperature=1.3, seed=k)
        for sample in result.samples:
            assert sample.complete, sample
            assert re.fullmatch(pattern, sample.text), sample.text
            assert sample.data == lm.vocab.decode(sample.token_ids)


_ALLOWED: dict[tuple[int, int], list[int]] = {}


def _allowed(vocab, dfa, state: int) -> list[int]:
    """Every token walked through the DFA table on its own (no trie, no matcher), plus EOS in final states."""
    key = (id(dfa), state)
    if key not in _ALLOWED:
        ids = [
            int(t)
            for t in np.flatnonzero(vocab.is_text)
            if run_bytes(dfa.transitions, np.frombuffer(vocab.token_bytes[t], np.uint8), state) >= 0
        ]
        _ALLOWED[key] = ids + (list(vocab.eos_ids) if dfa.accepting[state] else [])
    return _ALLOWED[key]


def _fresh_log_z(lm, regex: Regex, prompt_ids: list[int], tokens: list[int], temperature: float) -> list[float]:
    """Oracle: per step, log of the allowed mass of the tempered next-token distribution from an uncached
    forward pass, with the allowed set found by walking every token through the DFA table on its own."""
    vocab, dfa = lm.vocab, regex.dfa
    out, state = [], dfa.start
    for step in range(len(tokens) + 1):
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([prompt_ids + tokens[:step]])).logits[0, -1].double()
        logp = torch.log_softmax(logits / temperature, dim=-1).numpy()
        out.append(float(np.logaddexp.reduce(logp[_allowed(vocab, dfa, state)])))
        if step < len(tokens):
            state = dfa.run(vocab.token_bytes[tokens[step]], state)
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_log_weight_is_exact_sum_of_log_z(lm, temperature):
    regex = Regex(r" (red|grey|blue-green|bluish)\.")
    prompt = "The color of the sky is"
    result = masked_sampling(lm, regex, prompt, n=4, max_tokens=10, temperature=temperature, seed=1)
    for sample, terms in zip(result.samples, result.step_log_z):
        assert sample.complete
        want = _fresh_log_z(lm, regex, lm.encode(prompt), list(sample.token_ids), temperature)
        assert np.allclose(terms, want, atol=1e-4), (terms, want)
        assert math.isclose(sample.log_weight, sum(want), abs_tol=1e-3)
    assert result.log_marginal <= 0


def test_greedy_is_deterministic_and_incomplete_is_reported(lm):
    regex = Regex(r"[a-z ]{5,200}\.")
    a = masked_sampling(lm, regex, "Once upon a time", greedy=True, max_tokens=6)
    b = masked_sampling(lm, regex, "Once upon a time", greedy=True, max_tokens=6)
    assert a.token_ids == b.token_ids
    (sample,) = a.samples
    assert not sample.complete and len(sample.token_ids) == 6
    assert regex.dfa.run(sample.data) >= 0  # a valid prefix, just not finished
    assert a.log_marginal == -math.inf and a.posterior == [0.0]
    assert a.counts.model_calls >= 6 and a.counts.tokens == 6


def test_temperature_must_be_positive(lm):
    with pytest.raises(ValueError, match="temperature"):
        masked_sampling(lm, Regex("a"), "x", temperature=0)
