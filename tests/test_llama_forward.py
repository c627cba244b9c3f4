"""`LlamaForward` against transformers' own forward: bitwise the same log-probs through every `KVBatch` operation
(prefill, one token per row, rows given different counts (holes), drafts kept and cut, forks and drops, pooled
prompts), with and without genlab's CPU kernel; other architectures and modes keep transformers' forward."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_models import smollm2_tokenizer, tiny_llama_model
from transformers import LlamaConfig, LlamaForCausalLM

from genlab.models import HFModel, cpu_linear, llama

PROMPTS = [[5, 17, 301, 42, 9], [7, 7, 8], [100, 200, 300, 400, 500, 600, 700]]


def _pair(model) -> tuple[HFModel, HFModel]:
    """Two HFModels over the same weights: genlab's forward and transformers'."""
    tokenizer = smollm2_tokenizer()
    fast, reference = HFModel(model, tokenizer), HFModel(model, tokenizer)
    reference._fast = None
    assert fast._fast is not None
    return fast, reference


def _same(a, b) -> None:
    assert torch.equal(a.logprobs(), b.logprobs())
    assert a.token_ids == b.token_ids
    if a.recent is not None or b.recent is not None:
        assert all(torch.equal(x, y) for x, y in zip(a.recent, b.recent))


def _random_run(fast: HFModel, reference: HFModel, seed: int, steps: int = 14) -> None:
    """The same random operations on a batch of each model, compared after every one."""
    rng = random.Random(seed)
    vocab = fast.vocab_size
    a, b = fast.prefill(PROMPTS[0], 3), reference.prefill(PROMPTS[0], 3)
    _same(a, b)
    for _ in range(steps):
        kind = rng.choice(["one", "uneven", "draft", "select", "absorb"])
        n = a.size
        if kind == "one":
            tokens = [rng.randrange(vocab) for _ in range(n)]
            a.extend(tokens)
            b.extend(tokens)
        elif kind == "uneven":
            given = [[rng.randrange(vocab) for _ in range(rng.randrange(0, 3))] for _ in range(n)]
            if not any(given):
                given[0] = [rng.randrange(vocab)]
            a.extend(given)
            b.extend(given)
        elif kind == "draft":
            given = [[rng.randrange(vocab) for _ in range(rng.randrange(1, 4))] for _ in range(n)]
            a.extend(given, keep_all=True)
            b.extend(given, keep_all=True)
            _same(a, b)
            cut = [len(row) - rng.randrange(0, len(g)) for row, g in zip(a.token_ids, given)]
            a.truncate(cut)
            b.truncate(cut)
        elif kind == "select":
            order = [rng.randrange(n) for _ in range(rng.randrange(1, 5))]
            a.select(order)
            b.select(order)
        else:
            prompt = rng.choice(PROMPTS)
            a.absorb(fast.prefill(prompt, 2))
            b.absorb(reference.prefill(prompt, 2))
        _same(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_tiny_llama_every_batch_operation(seed):
    fast, reference = _pair(tiny_llama_model(attention="sdpa"))
    _random_run(fast, reference, seed)


@pytest.mark.parametrize("seed", range(3))
def test_tiny_llama_with_the_cpu_kernel(seed):
    model = tiny_llama_model(attention="sdpa")
    assert cpu_linear.install(model) > 0
    fast, reference = _pair(model)
    _random_run(fast, reference, seed)


def test_the_fast_forward_runs_instead_of_transformers(monkeypatch):
    model = tiny_llama_model(attention="sdpa")
    fast, _ = _pair(model)
    calls = []
    monkeypatch.setattr(type(model), "forward", lambda *a, **k: calls.append(1))
    batch = fast.prefill(PROMPTS[1], 2)
    batch.extend([3, 4])
    assert calls == []
    model.train()  # training mode (dropout) goes through transformers
    with pytest.raises(AttributeError):  # the spy returns None, which has no logits
        fast.prefill(PROMPTS[1], 1)
    assert calls == [1]


def test_other_models_keep_transformers_forward():
    assert llama.supports(tiny_llama_model(attention="sdpa"))
    assert not llama.supports(tiny_llama_model(attention="eager"))
    config = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4)
    assert not llama.supports(LlamaForCausalLM(LlamaConfig(**config, attention_bias=True)).eval())
    assert not llama.supports(LlamaForCausalLM(LlamaConfig(**config, hidden_act="gelu")).eval())
    scaled = LlamaConfig(**config, rope_scaling={"rope_type": "linear", "factor": 2.0})
    assert not llama.supports(LlamaForCausalLM(scaled).eval())

    class Subclass(LlamaForCausalLM):
        pass

    assert not llama.supports(Subclass(LlamaConfig(**config)).eval())


def test_smollm2_with_the_cpu_kernel():
    """The default model as `genlab.load` gives it (genlab's kernel installed)."""
    import genlab

    lm = genlab.load(device="cpu")
    assert cpu_linear.installed(lm.model) and lm._fast is not None
    reference = HFModel(lm.model, lm.tokenizer)
    reference._fast = None
    _random_run(lm, reference, seed=0, steps=6)


def test_uninstalled_kernel_is_not_called_through_the_fused_weights(monkeypatch):
    """The fused projections follow `cpu_linear.uninstall`: torch's matmul again, and still transformers' values."""
    model = tiny_llama_model(attention="sdpa")
    cpu_linear.install(model)
    fast, reference = _pair(model)
    assert any(f is not None for f in fast._fast.qkv)
    cpu_linear.uninstall(model)
    monkeypatch.setattr(cpu_linear, "_rows_times_weight", lambda *a: pytest.fail("the kernel ran"))
    _random_run(fast, reference, seed=1, steps=6)
