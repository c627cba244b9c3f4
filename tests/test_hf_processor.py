"""ConstraintLogitsProcessor inside transformers' own `generate`: greedy, sampling and left-padded batches."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from genlab import Grammar, Regex
from genlab.hf import ConstraintLogitsProcessor
from genlab.models import load

PATTERN = r" ?\d{3}-\d{4}"


@pytest.fixture(scope="module")
def lm():
    return load(device="cpu")


def generate(lm, prompts: list[str], constraint, **kwargs) -> list[str]:
    tok = lm.tokenizer
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    processor = ConstraintLogitsProcessor(constraint, tok)
    out = lm.model.generate(
        **enc, logits_processor=[processor], max_new_tokens=16, pad_token_id=tok.eos_token_id, **kwargs
    )
    return [tok.decode(row[enc["input_ids"].shape[1] :], skip_special_tokens=True) for row in out]


def test_greedy(lm):
    (text,) = generate(lm, ["Call me at"], Regex(PATTERN), do_sample=False)
    assert re.fullmatch(PATTERN, text), text


def test_sampling_batch_with_padding(lm):
    torch.manual_seed(0)
    prompts = ["Call me at", "The office number, as written on the card, is", "Number:"]
    for _ in range(2):
        for text in generate(lm, prompts, Regex(PATTERN), do_sample=True, temperature=1.5):
            assert re.fullmatch(PATTERN, text), text


def test_unicode_pattern(lm):
    pattern = r" ?[α-ω]{3,5}"
    torch.manual_seed(1)
    for text in generate(lm, ["Greek letters:", "αβγ"], Regex(pattern), do_sample=True):
        assert re.fullmatch(pattern, text), text


def test_grammar_in_generate(lm):
    arith = Grammar.shipped("arithmetic")
    torch.manual_seed(2)
    prompts = ["Q: What is 3 + 4 * 2? Write it as an expression.\nA:", "An expression with parentheses:"]
    for text in generate(lm, prompts, arith, do_sample=True):
        # cut short by max_new_tokens or finished with EOS: either way a prefix of a sentence, or a sentence
        data = text.encode()
        parser = arith._parser
        threads = parser.feed(parser.start(), np.frombuffer(data, np.uint8), 0, len(data))
        assert threads, text
    (greedy,) = generate(lm, prompts[:1], arith, do_sample=False)
    assert arith.check(greedy), greedy  # greedy finishes within 16 tokens here
