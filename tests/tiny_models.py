"""The tiny random model the tests share: a 2-layer Llama over SmolLM2's tokenizer (seeded, so every test file
gets the same weights), with sharp, arbitrary next-token distributions and cheap forwards for brute-force oracles."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from genlab.models import HFModel
from genlab.models.loading import resolve

VOCAB = 49152  # SmolLM2's tokenizer


def smollm2_tokenizer():
    return AutoTokenizer.from_pretrained(resolve(None), local_files_only=True)


def tiny_llama_model(attention: str | None = None, vocab_size: int = VOCAB) -> LlamaForCausalLM:
    """The seeded tiny Llama (`attention`: transformers' `attn_implementation`, None for its default)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,
        attn_implementation=attention,
    )
    return LlamaForCausalLM(config).eval()


def tiny_llama(tokenizer=None, attention: str | None = None, vocab_size: int = VOCAB) -> HFModel:
    """The tiny Llama as an `HFModel` (SmolLM2's tokenizer unless given)."""
    return HFModel(tiny_llama_model(attention, vocab_size), tokenizer or smollm2_tokenizer())
