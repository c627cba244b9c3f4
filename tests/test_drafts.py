"""Drafts: forced bytes against the common prefix of a finite language's completions, and masking with drafts
against masking without them (the same seeded outputs and weights, in fewer forward passes)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import test_smc
from tiny_models import tiny_llama_model

from genlab import JsonSchema, Regex
from genlab.models import HFModel, cpu_linear
from genlab.samplers.drafts import FLOOR, Drafter
from genlab.samplers.masking import masked_sampling
from genlab.samplers.rerank import sample_rerank
from genlab.samplers.smc import smc

NAMES = ("bob", "al", "bobby")
AGES = ("1", "2", "12")
PERSON = r'\{"name": "(bob|al|bobby)", "age": (1|2|12)\}'
PEOPLE = [f'{{"name": "{n}", "age": {a}}}' for n, a in itertools.product(NAMES, AGES)]


tiny = test_smc.tiny  # the module-scoped tiny Llama on SmolLM2's tokenizer, shared


@pytest.fixture(scope="module")
def tiny_kernel(tiny):
    """The same tiny Llama with genlab's CPU Linear kernel (drafts of 1-2 tokens proposed, rows batch-invariant)."""
    model = tiny_llama_model()
    cpu_linear.install(model)
    return HFModel(model, tiny.tokenizer)


@pytest.fixture(params=["torch", "kernel"])
def any_tiny(request, tiny, tiny_kernel):
    return tiny if request.param == "torch" else tiny_kernel


def common_prefix(texts: list[bytes]) -> bytes:
    return os.path.commonprefix(texts) if texts else b""


def test_forced_bytes_are_the_common_prefix_of_every_completion(tiny):
    """Along every tokenization the tokenizer gives each string, the forced bytes after a prefix are the longest
    common prefix of the language's completions of that prefix (nothing when the prefix is itself complete)."""
    matcher = Regex(PERSON).compile(tiny.vocab)
    language = [t.encode() for t in PEOPLE]
    checked = 0
    for text in PEOPLE:
        state, done = matcher.start(), b""
        for token in tiny.tokenizer(text, add_special_tokens=False)["input_ids"]:
            state = matcher.advance(state, token)
            done += tiny.vocab.token_bytes[token]
            rests = [s[len(done) :] for s in language if s.startswith(done)]
            want = b"" if b"" in rests else common_prefix(rests)
            assert matcher.forced_bytes(state, limit=64) == want, (done, want)
            checked += 1
    assert matcher.forced_bytes(matcher.start(), limit=64) == b'{"name": "'
    assert matcher.forced_bytes(matcher.start(), limit=3) == b'{"n'
    assert checked > 20


def test_forced_bytes_of_a_json_schema(tiny):
    schema = JsonSchema(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
    )
    matcher = schema.compile(tiny.vocab)
    state = matcher.start()
    assert matcher.forced_bytes(state).startswith(b"{")
    state = matcher.advance_many(state, tiny.tokenizer('{"name":"bob"', add_special_tokens=False)["input_ids"])
    forced = matcher.forced_bytes(state)
    assert forced.replace(b" ", b"").startswith(b',"age":'), forced


def test_drafter_trims_to_the_constraint_and_looks_up_the_prompt(tiny):
    matcher = Regex(r"[a-z ]+\.").compile(tiny.vocab)
    encode = lambda text: tiny.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = encode("the cat sat on the mat. The dog 42")
    drafter = Drafter(matcher, encode, prompt, rows=1, max_draft=8)
    after = encode("the cat sat")
    draft = drafter.propose(0, matcher.advance_many(matcher.start(), after), after, room=8)
    assert draft == encode(" on the mat.")[: len(draft)] and len(draft) >= 3
    # the prompt's continuation of " The dog" runs into "42", which the constraint refuses: trimmed before it
    after = encode("the dog")
    follow = drafter.propose(0, matcher.advance_many(matcher.start(), after), after, room=8)
    text = tiny.vocab.decode(follow)
    assert b" 42".startswith(text) and not any(c in text for c in b"0123456789"), text
    drafter.update(0, proposed=4, accepted=4)
    assert drafter.length[0] == 8
    drafter.update(0, proposed=8, accepted=2)
    assert drafter.length[0] == FLOOR
    drafter.update(0, proposed=4, accepted=4)
    drafter.update(0, proposed=8, accepted=6)
    assert drafter.length[0] == 7


def test_min_draft_follows_the_cost_of_a_wide_forward(tiny):
    """A guess shorter than the model's `min_draft` is not proposed: 3 for torch's CPU matmul, 1 with genlab's kernel."""
    matcher = Regex(r"(ab|cd)\.").compile(tiny.vocab)
    encode = lambda text: tiny.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    after = encode("ab")
    state = matcher.advance_many(matcher.start(), after)
    assert tiny.vocab.decode(Drafter(matcher, encode, [], rows=1).propose(0, state, after, room=8)) == b"."
    assert Drafter(matcher, encode, [], rows=1, min_draft=3).propose(0, state, after, room=8) == []
    model = tiny_llama_model()
    lm = HFModel(model, tiny.tokenizer)
    assert lm.min_draft == 3 and Drafter.for_model(lm, matcher, [], 1).min_draft == 3
    cpu_linear.install(model)
    assert lm.min_draft == 1 and Drafter.for_model(lm, matcher, [], 1).min_draft == 1


@pytest.mark.parametrize("greedy", [False, True])
def test_masking_with_drafts_draws_the_same_outputs(any_tiny, greedy):
    """Seeded masking gives the same tokens and weights with drafts as without, in fewer forward passes."""
    regex = Regex(PERSON)
    tiny = any_tiny
    for seed in range(3):
        plain = masked_sampling(tiny, regex, "Person:", n=4, max_tokens=30, seed=seed, greedy=greedy)
        drafted = masked_sampling(tiny, regex, "Person:", n=4, max_tokens=30, seed=seed, greedy=greedy, drafts=True)
        assert drafted.token_ids == plain.token_ids
        np.testing.assert_allclose(drafted.log_weights, plain.log_weights, rtol=1e-6)
        assert drafted.complete == plain.complete
        assert all(text in PEOPLE for text, ok in zip(drafted.texts, drafted.complete) if ok)
        assert drafted.counts.drafts_accepted > 0 and drafted.counts.model_calls < plain.counts.model_calls
        assert plain.counts.drafts_proposed == 0


def test_masking_with_drafts_respects_max_tokens(tiny):
    regex = Regex(PERSON)
    for limit in (1, 3, 7):
        plain = masked_sampling(tiny, regex, "Person:", n=3, max_tokens=limit, seed=0)
        drafted = masked_sampling(tiny, regex, "Person:", n=3, max_tokens=limit, seed=0, drafts=True)
        assert drafted.token_ids == plain.token_ids and drafted.complete == plain.complete
        assert all(len(ids) <= limit for ids in drafted.token_ids)


SMC_SETTINGS = [
    {},
    {"resampling": "stratified"},
    {"proposal": "mask"},
    {"ess_threshold": 0.0},
    {"share_rows": False},
]


@pytest.mark.parametrize("options", SMC_SETTINGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_smc_with_drafts_draws_the_same_particles(tiny, tiny_kernel, options):
    """Seeded SMC (every resampling and proposal) draws the same particles and weights with drafts as without: the
    draws see the same distributions, only fewer forward passes produce them. Same draws, same law. Drafts are
    allowed on every row here (`draft_rows=n`), so that drafted rows fork, are cut and run ahead of each other."""
    regex = Regex(PERSON)
    if options.get("resampling") == "stratified":  # one setting also with genlab's kernel: drafts of 1-2 tokens
        tiny = tiny_kernel
    for n in (1, 4):
        for seed in range(3):
            plain = smc(tiny, regex, "Person:", n_particles=n, max_tokens=30, seed=seed, **options)
            drafted = smc(
                tiny, regex, "Person:", n_particles=n, max_tokens=30, seed=seed, drafts=True, draft_rows=n, **options
            )
            assert drafted.token_ids == plain.token_ids
            np.testing.assert_allclose(drafted.log_weights, plain.log_weights, rtol=1e-6)
            assert drafted.complete == plain.complete
            assert all(text in PEOPLE for text, ok in zip(drafted.texts, drafted.complete) if ok)
            assert 0 < drafted.counts.drafts_accepted <= drafted.counts.drafts_proposed
            assert drafted.counts.model_calls <= plain.counts.model_calls
            if n == 1:  # one row: every accepted draft token is a step without a forward
                saved = plain.counts.model_calls - drafted.counts.model_calls
                assert saved == drafted.counts.drafts_accepted > 0


def test_smc_with_drafts_respects_max_tokens(tiny):
    regex = Regex(PERSON)
    for limit in (1, 3, 7):
        plain = smc(tiny, regex, "Person:", n_particles=3, max_tokens=limit, seed=0)
        drafted = smc(tiny, regex, "Person:", n_particles=3, max_tokens=limit, seed=0, drafts=True, draft_rows=3)
        assert drafted.token_ids == plain.token_ids and drafted.complete == plain.complete
        assert all(len(ids) <= limit for ids in drafted.token_ids)


def test_lookup_finds_continuations_in_sibling_outputs(tiny):
    """A draft may come from another row's output (a sibling sample or particle) or the row's own earlier tokens;
    never from the row's own tail, after which nothing follows yet."""
    matcher = Regex(r"[a-z ]+").compile(tiny.vocab)
    encode = lambda text: tiny.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    drafter = Drafter(matcher, encode, encode("unrelated words"), rows=2, max_draft=8)
    mine, sibling = encode("the quick"), encode("the quick brown fox jumps over the dog")
    drafter.observe([mine, sibling])
    draft = drafter.propose(0, matcher.advance_many(matcher.start(), mine), mine, room=8)
    assert draft and sibling[len(mine) :][: len(draft)] == draft
    drafter.observe([mine])
    assert drafter.propose(0, matcher.advance_many(matcher.start(), mine), mine, room=8) == []
    again = encode(" the cat and the")
    drafter.observe([again])
    draft = drafter.propose(0, matcher.advance_many(matcher.start(), again), again, room=3)
    assert tiny.vocab.decode(draft).startswith(b" cat"), tiny.vocab.decode(draft)


def test_rerank_with_drafts_draws_the_same_samples(tiny):
    """Rerank's free draws (masking's loop with every token allowed) are the same with drafts; with one row every
    accepted draft token is a forward saved."""
    regex = Regex(PERSON)
    for n in (1, 3):
        for seed in range(2):
            plain = sample_rerank(tiny, regex, "Person: Person:", n=n, max_tokens=20, seed=seed)
            drafted = sample_rerank(tiny, regex, "Person: Person:", n=n, max_tokens=20, seed=seed, drafts=True)
            assert drafted.token_ids == plain.token_ids and drafted.complete == plain.complete
            assert plain.counts.drafts_proposed == 0
            assert drafted.counts.drafts_accepted <= drafted.counts.drafts_proposed
            if n == 1:
                saved = plain.counts.model_calls - drafted.counts.model_calls
                assert saved == drafted.counts.drafts_accepted
