"""The model layer against its oracle: every row's cached, batched log-probs equal a fresh, uncached, batch-1 forward
pass over that row's whole sequence (prompt + tokens), whatever mix of extends, holes and selects led there."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import VOCAB, smollm2_tokenizer
from tiny_models import tiny_llama as shared_tiny_llama
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    MistralConfig,
    MistralForCausalLM,
)

from genlab.errors import ModelLoadError
from genlab.models import BatchState, HFModel, KVBatch, LanguageModel, load

TOL = 1e-4
PROMPT = (504, 3575, 282, 4649, 314)  # "The capital of France is" in SmolLM2's tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return smollm2_tokenizer()


def tiny_llama(tokenizer, attention="sdpa", vocab_size=VOCAB) -> HFModel:
    """The shared tiny Llama with the signature of this file's other tiny models (sdpa unless given)."""
    return shared_tiny_llama(tokenizer, attention, vocab_size)


def tiny_gpt2(tokenizer, attention="sdpa") -> HFModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.2,
        attn_implementation=attention,
    )
    return HFModel(GPT2LMHeadModel(config).eval(), tokenizer)


def tiny_gemma3(tokenizer, attention="sdpa") -> HFModel:
    """Sliding-window layers (a 4-token window, so every schedule outgrows it) between full-attention ones."""
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=4,
        initializer_range=0.2,
        attn_implementation=attention,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
    )
    return HFModel(Gemma3ForCausalLM(config).eval(), tokenizer)


def tiny_mistral(tokenizer, attention="sdpa") -> HFModel:
    """Every layer a 4-token sliding window."""
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=4,
        initializer_range=0.2,
        attn_implementation=attention,
    )
    return HFModel(MistralForCausalLM(config).eval(), tokenizer)


TINY = {
    f"{name}-{attention}": (lambda tok, make=make, attention=attention: make(tok, attention))
    for name, make in [("llama", tiny_llama), ("gpt2", tiny_gpt2), ("gemma3", tiny_gemma3), ("mistral", tiny_mistral)]
    for attention in ("sdpa", "eager")
}


@pytest.fixture(scope="module", params=sorted(TINY))
def tiny(request, tokenizer) -> HFModel:
    return TINY[request.param](tokenizer)


@pytest.fixture(scope="module")
def smollm() -> HFModel:
    return load(device="cpu")  # float32, where batched and unbatched runs agree to 1e-4 (bf16 on a GPU would not)


def fresh_logprobs(lm: HFModel, ids) -> torch.Tensor:
    """The oracle: one uncached, unmasked float32 forward pass over a single whole sequence."""
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([list(ids)], device=lm.device), use_cache=False).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1)


def assert_matches_oracle(lm: HFModel, batch: KVBatch, tol: float = TOL) -> None:
    got = batch.logprobs()
    assert got.shape == (batch.size, lm.vocab_size) and got.dtype == torch.float32
    assert batch.lengths == [len(row) for row in batch.token_ids]
    for i, row in enumerate(batch.token_ids):
        want = fresh_logprobs(lm, batch.prompt_ids + row)
        diff = (got[i] - want).abs().max().item()
        assert diff < tol, f"row {i} ({len(row)} tokens after the prompt): max |diff| {diff:.2e}"


def run_schedule(lm: HFModel, n: int, schedule, tol: float = TOL) -> KVBatch:
    """Prefill, then apply ('extend', per-row tokens) and ('select', indices) steps, checking the oracle after each."""
    batch = lm.prefill(PROMPT, n)
    assert_matches_oracle(lm, batch, tol)
    for op, arg in schedule:
        getattr(batch, op)(arg)
        assert_matches_oracle(lm, batch, tol)
    return batch


MIXED = [
    ("extend", [11, [12, 13, 14], None, []]),  # one, several, and two rows that stay put
    ("extend", [[21, 22], 23, [24, 25, 26, 27], 28]),
    ("select", [2, 0, 0, 3]),  # drop row 1, fork row 0
    ("extend", [31, None, [32, 33], [34]]),
    ("select", [1, 1, 1]),
    ("extend", [[41], [42, 43], None]),
    ("extend", [51, 52, 53]),
]


MIXED_RESULT = [(11, 21, 22, 41, 51), (11, 21, 22, 42, 43, 52), (11, 21, 22, 53)]


def test_mixed_schedule_tiny(tiny):
    batch = run_schedule(tiny, 4, MIXED)
    assert batch.token_ids == MIXED_RESULT
    assert batch.lengths == [5, 6, 4] and batch.size == 3


def test_mixed_schedule_smollm(smollm):
    assert run_schedule(smollm, 4, MIXED).token_ids == MIXED_RESULT


def test_oracle_can_fail(tiny):
    """The oracle distinguishes neighbouring sequences, so a cache slot or position off by one would show."""
    batch = tiny.prefill(PROMPT, 2)
    batch.extend([[7, 8], None])
    for other in (PROMPT + (8, 7), PROMPT + (7,), PROMPT[1:] + (7, 8), PROMPT + (7, 7, 8)):
        assert (batch.logprobs()[0] - fresh_logprobs(tiny, other)).abs().max().item() > 100 * TOL


def test_greedy_steps_match_generate(smollm):
    """Greedy decoding through KVBatch picks the same tokens as transformers' own generate."""
    steps = 12
    batch = smollm.prefill(PROMPT, 2)
    for _ in range(steps):
        batch.extend(batch.logprobs().argmax(-1).tolist())
    with torch.inference_mode():
        out = smollm.model.generate(torch.tensor([PROMPT]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False)
    assert batch.token_ids == [tuple(out[0, len(PROMPT) :].tolist())] * 2


@st.composite
def schedules(draw, max_rows=4, max_steps=5, max_tokens=3):
    """A start size and random extends (0..max_tokens tokens per row) and selects (forks, drops, reorders)."""
    n = draw(st.integers(1, max_rows))
    rows, schedule = n, []
    token = st.integers(0, VOCAB - 1)
    for _ in range(draw(st.integers(1, max_steps))):
        if draw(st.integers(0, 3)) == 0:
            indices = draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=max_rows))
            schedule.append(("select", indices))
            rows = len(indices)
        else:
            entry = st.one_of(st.none(), token, st.lists(token, max_size=max_tokens))
            schedule.append(("extend", draw(st.lists(entry, min_size=rows, max_size=rows))))
    return n, schedule


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=schedules())
def test_random_schedules_tiny(tiny, case):
    n, schedule = case
    run_schedule(tiny, n, schedule)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=schedules(max_rows=3, max_steps=3))
def test_random_schedules_smollm(smollm, case):
    n, schedule = case
    run_schedule(smollm, n, schedule)


def test_prefill_runs_the_prompt_once(smollm):
    """The prompt's cache is computed for one row and shared: n rows cost one prompt-length forward pass."""
    calls = []
    hook = smollm.model.model.embed_tokens.register_forward_hook(  # every forward embeds its input ids first
        lambda module, args, out: calls.append(args[0].shape)
    )
    try:
        batch = smollm.prefill(PROMPT, 8)
    finally:
        hook.remove()
    assert calls == [torch.Size([1, len(PROMPT)])]
    assert batch.size == 8 and batch.width == len(PROMPT)
    assert torch.equal(batch.logprobs()[0], batch.logprobs()[7])


def test_logprobs_are_never_modified_later(tiny):
    batch = tiny.prefill(PROMPT, 3)
    first = batch.logprobs()
    kept = first.clone()
    batch.extend([5, None, [6, 7]])
    batch.select([2, 1])
    assert torch.equal(first, kept)
    assert torch.equal(batch.logprobs()[1], kept[1])  # row 1 never moved


def test_select_drops_slots_nobody_uses(tiny):
    batch = tiny.prefill(PROMPT, 3)
    batch.extend([[1, 2, 3, 4, 5, 6], 7, None])
    assert batch.width == len(PROMPT) + 6
    batch.select([1, 2, 1])  # the long row is gone: five of its six slots are holes in every survivor
    assert batch.width == len(PROMPT) + 1
    batch.extend([8, [9, 10], None])
    assert_matches_oracle(tiny, batch)


def test_long_run_outgrows_the_first_buffers(tiny):
    """Enough steps, with holes, to outgrow the bookkeeping's initial capacity (64 slots) and reallocate it."""
    batch = tiny.prefill(PROMPT, 3)
    for step in range(30):
        batch.extend([[step, step + 1], step if step % 2 else None, 7])
        if step == 20:
            batch.select([0, 1, 1])
    assert batch.width == len(PROMPT) + 60 and batch.lengths == [60, 15, 10 + 9]
    assert_matches_oracle(tiny, batch)


def test_empty_extend_changes_nothing(tiny):
    batch = tiny.prefill(PROMPT, 2)
    before = batch.logprobs()
    batch.extend([None, []])
    assert batch.logprobs() is before and batch.width == len(PROMPT) and batch.lengths == [0, 0]


def test_accepts_numpy_and_tensor_tokens(tiny):
    np = pytest.importorskip("numpy")
    batch = tiny.prefill(PROMPT, 3)
    batch.extend([np.int64(3), torch.tensor([4, 5]), np.array([6])])
    assert batch.token_ids == [(3,), (4, 5), (6,)]
    assert_matches_oracle(tiny, batch)


def test_bad_arguments_are_refused(tiny):
    batch = tiny.prefill(PROMPT, 2)
    with pytest.raises(ValueError, match="one entry per row"):
        batch.extend([1])
    with pytest.raises(ValueError, match="outside"):
        batch.extend([1, tiny.vocab_size])
    with pytest.raises(ValueError, match="outside"):
        batch.extend([-1, 2])
    with pytest.raises(IndexError):
        batch.select([0, 2])
    with pytest.raises(ValueError):
        batch.select([])
    with pytest.raises(ValueError, match="non-empty"):
        tiny.prefill([], 2)
    assert batch.lengths == [0, 0]


def test_logits_wider_than_tokenizer(tokenizer):
    lm = tiny_llama(tokenizer, vocab_size=VOCAB + 64)
    assert len(tokenizer) == VOCAB and lm.vocab_size == VOCAB + 64
    batch = run_schedule(lm, 2, [("extend", [VOCAB + 10, [VOCAB + 63, 3]])])
    assert batch.logprobs().shape == (2, VOCAB + 64)


def test_bfloat16_model_gives_float32_logprobs(tokenizer):
    lm = tiny_llama(tokenizer)
    lm.model.to(torch.bfloat16)
    schedule = [("extend", [1, [2, 3], None]), ("select", [1, 0, 1]), ("extend", [4, 5, [6, 7]])]
    # bf16 keeps 8 bits of mantissa: log-probs near -11 are rounded by ~0.04, and batched and single runs round
    # differently (transformers 5.25's CPU kernels: up to 0.048 here, before this change too); a wrong slot or
    # position moves them by far more (test_oracle_can_fail)
    batch = run_schedule(lm, 3, schedule, tol=0.1)
    assert torch.allclose(batch.logprobs().logsumexp(-1), torch.zeros(3), atol=1e-5)


def test_eos_token_ids(tokenizer, smollm):
    assert smollm.eos_token_ids == (tokenizer.eos_token_id,) == (2,)
    # the vocabulary, which samplers use, also ends on the pretraining end marker <|endoftext|>
    assert smollm.vocab.eos_ids == {2, tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    lm = tiny_llama(tokenizer)
    lm.model.config.eos_token_id = [2, 7]
    lm.model.generation_config.eos_token_id = [7, 9, VOCAB + 5]  # outside the logits: dropped
    assert HFModel(lm.model, tokenizer).eos_token_ids == (2, 7, 9)
    lm.model.generation_config.eos_token_id = 11
    assert HFModel(lm.model, tokenizer).eos_token_ids == (2, 7, 11)


def test_interfaces(smollm):
    assert isinstance(smollm, LanguageModel)
    assert isinstance(smollm.prefill(PROMPT), BatchState)
    assert smollm.vocab_size == VOCAB and smollm.model.dtype == torch.float32
    assert smollm.encode("The capital of France is") == list(PROMPT)


def test_vocab_is_built_once(smollm):
    pytest.importorskip("genlab.vocab")
    assert smollm.vocab is smollm.vocab


def test_unsupported_attention_is_refused(tokenizer):
    from genlab.errors import GenlabError

    lm = tiny_llama(tokenizer)
    lm.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(GenlabError, match="attn_implementation"):
        HFModel(lm.model, tokenizer)


def test_load_refuses_missing_folder():
    with pytest.raises(ModelLoadError, match="neither a model folder nor a known model"):
        load("/nonexistent")


def test_load_refuses_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(tmp_path)


def test_load_refuses_broken_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Nothing"]}))
    with pytest.raises(ModelLoadError, match="could not load"):
        load(tmp_path)


def test_drafts_keep_every_distribution_and_truncate_to_any(tiny):
    """`extend(..., keep_all=True)` gives the log-probs after each given token (a draft verified in one forward);
    `truncate` cuts a row back to any of them; later extends and selects still match the oracle."""
    batch = tiny.prefill(PROMPT, 3)
    batch.extend([[11, 12, 13], [21, 22], None], keep_all=True)
    recent = batch.recent
    assert [len(r) for r in recent] == [3, 2, 0]
    for i, row in enumerate(batch.token_ids):
        for j in range(len(row)):
            diff = (recent[i][j] - fresh_logprobs(tiny, PROMPT + row[: j + 1])).abs().max().item()
            assert diff < TOL, (i, j, diff)
    batch.truncate([1, 2, 0])  # row 0 keeps its first draft token, row 1 all of it
    assert batch.token_ids == [(11,), (21, 22), ()]
    assert_matches_oracle(tiny, batch)
    batch.extend([[14, 15], 23, [31]], keep_all=True)
    assert_matches_oracle(tiny, batch)
    batch.truncate([2, 3, 1])
    assert batch.token_ids == [(11, 14), (21, 22, 23), (31,)]
    assert_matches_oracle(tiny, batch)
    batch.select([1, 0, 0])
    batch.extend([41, 42, [43, 44]])
    assert_matches_oracle(tiny, batch)
    with pytest.raises(ValueError):  # the last extend did not keep its distributions
        batch.truncate([3, 2, 2])
    batch.extend([[51, 52], None, None], keep_all=True)
    with pytest.raises(ValueError):  # a row cannot lose every token of the draft
        batch.truncate([batch.lengths[0] - 2, batch.lengths[1], batch.lengths[2]])
    with pytest.raises(ValueError):  # nor tokens older than the last extend
        batch.truncate([batch.lengths[0], batch.lengths[1] - 1, batch.lengths[2]])


def test_a_draft_can_be_cut_after_extends_that_gave_its_row_nothing(tiny):
    """SMC's drafts: a row keeps its draft's distributions while other rows are extended (its slots there are holes),
    and `truncate` still cuts its last real tokens; the result matches a fresh prefill of the kept tokens."""
    batch = tiny.prefill(PROMPT, 2)
    batch.extend([[11, 12, 13, 14], [21]], keep_all=True)
    batch.extend([None, [22, 23]], keep_all=True)
    batch.extend([None, 24], keep_all=True)
    assert [len(r) for r in batch.recent] == [4, 1]
    batch.truncate([2, 4])  # row 0 keeps 11, 12: its 13, 14 lie before two extends of holes
    assert batch.token_ids == [(11, 12), (21, 22, 23, 24)]
    assert_matches_oracle(tiny, batch)
    batch.extend([[15, 16], None], keep_all=True)
    batch.truncate([3, 4])
    assert batch.token_ids == [(11, 12, 15), (21, 22, 23, 24)]
    assert_matches_oracle(tiny, batch)
    batch.select([0, 0, 1])
    batch.extend([17, [18, 19], None], keep_all=True)
    assert_matches_oracle(tiny, batch)
