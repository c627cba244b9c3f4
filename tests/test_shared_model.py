"""`SharedModel`: concurrent runs in threads share forwards, and each gets what it would get alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from tiny_models import tiny_llama

import genlab
from genlab.models import SharedModel
from genlab.samplers.masking import masked_sampling
from genlab.samplers.smc import smc


@pytest.fixture(scope="module")
def lm():
    return tiny_llama(attention="sdpa")


def _concurrently(jobs):
    """Run each job in its own thread, all started together; their results (or their errors, raised here)."""
    results: list = [None] * len(jobs)
    errors: list = []
    start = threading.Barrier(len(jobs))

    def run(i, job):
        try:
            start.wait()
            results[i] = job()
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    return results


PROMPTS = ["The answer is", "A much longer prompt, so that the rows of the pool have different widths: x =", "Hi"]
CONSTRAINTS = [genlab.Regex(r"[0-9]{1,6}"), genlab.Regex(r"(yes|no|maybe)( indeed)?"), genlab.Regex(r"[a-z ]{3,20}")]


def _masking(lm, i, drafts):
    return masked_sampling(lm, CONSTRAINTS[i], PROMPTS[i], n=3, max_tokens=12, seed=i, drafts=drafts)


@pytest.mark.parametrize("drafts", [False, True])
def test_concurrent_masking_runs_draw_what_they_draw_alone(lm, drafts):
    alone = [_masking(lm, i, drafts) for i in range(3)]
    shared = SharedModel(lm)

    def job(i):
        with shared.session():
            return _masking(shared, i, drafts)

    together = _concurrently([lambda i=i: job(i) for i in range(3)])
    for a, b in zip(alone, together):
        assert b.token_ids == a.token_ids
        np.testing.assert_allclose(b.log_weights, a.log_weights, rtol=1e-4, atol=1e-4)
        assert all(CONSTRAINTS[0].check(t) for t in together[0].texts if t)
    assert shared.members == 0 and shared._batch is None
    # the runs shared forwards: fewer pooled forwards than the runs made alone
    assert shared.forwards < sum(r.counts.model_calls - 1 for r in alone)


def test_forwards_run_on_the_forward_thread_and_members_single_threaded(lm, monkeypatch):
    """Prefills and pooled forwards run on one thread with the constructing thread's torch thread count; a member
    thread set up with `member_thread` runs its own torch work on one thread, and the other threads keep theirs."""
    threads_here = torch.get_num_threads()
    shared = SharedModel(lm)
    seen: list[tuple[str, int]] = []
    forward = type(lm).forward

    def spy(self, *args, **kwargs):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(lm), "forward", spy)

    def job(i):
        SharedModel.member_thread()
        with shared.session():
            result = _masking(shared, i, False)
        return result, torch.get_num_threads()

    together = _concurrently([lambda i=i: job(i) for i in range(3)])
    assert [threads for _, threads in together] == [1, 1, 1]
    assert seen and {name for name, _ in seen} == {"genlab-forward_0"}
    assert {threads for _, threads in seen} == {threads_here}
    assert torch.get_num_threads() == threads_here
    alone = [_masking(lm, i, False) for i in range(3)]
    assert [r.token_ids for r, _ in together] == [r.token_ids for r in alone]


def test_concurrent_smc_runs_match_their_runs_alone(lm):
    """SMC forks and drops rows (select) and verifies drafts (truncate) inside the pool."""

    def run(model, i):
        return smc(model, CONSTRAINTS[i], PROMPTS[i], n_particles=4, max_tokens=10, seed=7 + i, drafts=True)

    alone = [run(lm, i) for i in range(3)]
    shared = SharedModel(lm)

    def job(i):
        with shared.session():
            return run(shared, i)

    together = _concurrently([lambda i=i: job(i) for i in range(3)])
    for a, b in zip(alone, together):
        assert b.token_ids == a.token_ids
        np.testing.assert_allclose(b.log_weights, a.log_weights, rtol=1e-4, atol=1e-4)
    assert shared._batch is None


def test_pooled_logprobs_equal_each_prompts_own(lm):
    """Rows of prompts of different lengths, pooled with holes, score as they do alone."""
    shared = SharedModel(lm)
    a = shared.prefill(lm.encode("Short"), 2)
    b = shared.prefill(lm.encode("A prompt that is quite a lot longer than the first one"), 1)
    ref_a, ref_b = lm.prefill(lm.encode("Short"), 2), lm.prefill(b.prompt_ids, 1)
    torch.testing.assert_close(a.logprobs(), ref_a.logprobs(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.logprobs(), ref_b.logprobs(), rtol=1e-4, atol=1e-4)
    # one thread holds both views: a forward runs once the thread waits on one of them
    a.extend([[5, 6], 7], keep_all=True)
    ref_a.extend([[5, 6], 7], keep_all=True)
    torch.testing.assert_close(a.logprobs(), ref_a.logprobs(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.logprobs(), ref_b.logprobs(), rtol=1e-4, atol=1e-4)
    a.truncate([1, 1])
    ref_a.truncate([1, 1])
    b.extend([9])
    ref_b.extend([9])
    assert a.token_ids == ref_a.token_ids == [(5,), (7,)]
    torch.testing.assert_close(a.logprobs(), ref_a.logprobs(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.logprobs(), ref_b.logprobs(), rtol=1e-4, atol=1e-4)
    a.select([1, 1, 0])
    ref_a.select([1, 1, 0])
    a.extend([3, 4, 5])
    ref_a.extend([3, 4, 5])
    assert a.token_ids == ref_a.token_ids
    torch.testing.assert_close(a.logprobs(), ref_a.logprobs(), rtol=1e-4, atol=1e-4)
    assert b.recent is None  # b asked for no drafts
    shared.leave()
    with pytest.raises(RuntimeError, match="left"):
        a.logprobs()


def test_a_failing_forward_reaches_every_waiting_run(lm):
    shared = SharedModel(lm)

    def job(token):
        with shared.session():
            rows = shared.prefill(lm.encode("Hello"), 1)
            rows.extend([token])
            return rows.token_ids

    with pytest.raises(ValueError, match="outside"):
        _concurrently([lambda: job(5), lambda: job(10**9)])
    assert shared.members == 0


def test_random_forks_drops_and_drafts_match_separate_batches(lm):
    """Rows of two runs forked, dropped (spare rows reused, the pool compacted), extended and cut back at random:
    each run's rows always hold what its own `KVBatch` holds."""
    rng = np.random.default_rng(0)
    shared = SharedModel(lm)
    prompts = [lm.encode("One prompt"), lm.encode("Another, longer prompt with more tokens in it")]
    views = [shared.prefill(p, 2) for p in prompts]
    refs = [lm.prefill(p, 2) for p in prompts]
    for _ in range(25):
        for view, ref in zip(views, refs):
            n = view.size
            op = rng.integers(3)
            if op == 0:
                order = sorted(rng.integers(n, size=int(rng.integers(1, 6))).tolist())
                view.select(order)
                ref.select(order)
            elif op == 1:
                before = view.lengths
                tokens = [rng.integers(10, 500, size=int(rng.integers(1, 4))).tolist() for _ in range(n)]
                view.extend(tokens, keep_all=True)
                ref.extend(tokens, keep_all=True)
                cut = [b + int(rng.integers(1, len(t) + 1)) for b, t in zip(before, tokens)]
                view.truncate(cut)
                ref.truncate(cut)
            else:
                tokens = [int(t) for t in rng.integers(10, 500, size=n)]
                view.extend(tokens)
                ref.extend(tokens)
            assert view.token_ids == ref.token_ids
            torch.testing.assert_close(view.logprobs(), ref.logprobs(), rtol=1e-4, atol=1e-4)
    assert shared._batch.size <= sum(v.size for v in views) + 2 + sum(v.size for v in views) // 8 + 6
