"""AWRS children and optimal resampling against Monte-Carlo means of their defining identities.

`AWRS.children`: E[sum_j w_j 1[t_j = t]] = p(t) 1[t allowed] for every token t (unbiased, token by token), the
children are distinct allowed tokens, and where at most k tokens of positive mass are allowed they are all there
with weight p(t) exactly. `optimal_resample`: E[new weight of item j] = w_j, at most n distinct items kept, and
every item at or above the threshold kept as it is.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_awrs import SCENARIOS, FakeMatcher, assert_mean_close, case

from genlab.samplers.awrs import AWRS, AWRSChildren, Memo
from genlab.samplers.smc import optimal_resample


class MasklessMatcher(FakeMatcher):
    """A check-only matcher (like Pattern or Predicate): no masks, so no rejection cap."""

    has_masks = False

    def mask(self, state):
        raise AssertionError("a maskless matcher's mask was asked for")


def draw_children(logp, allowed, k, n, *, cap=64, maskless=False, memo_mask=False, seed=0):
    """n independent `children` calls; checks the per-call invariants and returns each call's per-token weight."""
    matcher = (MasklessMatcher if maskless else FakeMatcher)(allowed)
    sampler = AWRS(max_rejections=cap)
    rng = np.random.default_rng(seed)
    positive = np.isfinite(logp)
    out = np.zeros((n, len(logp)))
    for i in range(n):
        memo = Memo()
        if memo_mask:
            memo.masks[0] = matcher.mask(0)
        before = matcher.allows_calls
        kids = sampler.children(logp, matcher, 0, rng, memo, k)
        assert isinstance(kids, AWRSChildren)
        assert kids.checks == matcher.allows_calls - before
        assert len(set(kids.tokens.tolist())) == len(kids.tokens) <= k
        assert np.all(matcher.allowed[kids.tokens] & positive[kids.tokens])
        assert np.all(np.isfinite(kids.log_weights))
        if memo_mask:
            assert kids.cached and kids.checks == 0
        if not maskless and np.count_nonzero(matcher.allowed & positive) <= k:
            assert kids.exact
            assert sorted(kids.tokens.tolist()) == np.flatnonzero(matcher.allowed & positive).tolist()
            np.testing.assert_allclose(kids.log_weights, logp[kids.tokens])
        out[i, kids.tokens] = np.exp(kids.log_weights)
    return out


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("k", [1, 2, 5, 12])
@pytest.mark.parametrize("path", ["walk", "cap", "memo", "maskless"])
def test_children_unbiased_token_by_token(name, k, path):
    logp, allowed = case(name)
    if path == "maskless" and k > 2:
        k = 2  # independent draws: the property does not depend on k, and each draw costs a full step
    weights = draw_children(
        logp, allowed, k, 3000, cap=1 if path == "cap" else 64, maskless=path == "maskless", memo_mask=path == "memo"
    )
    target = np.where(allowed, np.exp(logp), 0.0)
    for t in range(len(logp)):
        assert_mean_close(weights[:, t], target[t], what=f"{name} k={k} {path}: weight of token {t}")


def test_children_of_an_empty_language():
    logp, _ = case("all")
    kids = AWRS().children(logp, FakeMatcher(np.zeros(len(logp), bool)), 0, np.random.default_rng(0), Memo(), 3)
    assert len(kids.tokens) == 0 and kids.exact


def test_children_walk_checks_no_more_than_needed():
    """With every token allowed, k children cost exactly k + 1 checks (the last one gives the threshold)."""
    logp, allowed = case("all")
    matcher = FakeMatcher(allowed)
    kids = AWRS().children(logp, matcher, 0, np.random.default_rng(1), Memo(), 3)
    assert kids.checks == matcher.allows_calls == 4 and len(kids.tokens) == 3 and not kids.exact


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("n", [1, 3, 6, 20])
def test_optimal_resample_is_unbiased_and_distinct(n, floor):
    rng = np.random.default_rng(7)
    with np.errstate(divide="ignore"):
        logw = np.log(np.array([5.0, 1.0, 1.0, 0.5, 0.2, 0.2, 0.1, 0.05, 0.0, 2.0, 0.01, 3.0]))
    w = np.exp(logw)
    runs = 20000
    got = np.zeros((runs, len(w)))
    for r in range(runs):
        idx, new = optimal_resample(logw, n, rng, floor)
        assert len(idx) <= n and len(set(idx.tolist())) == len(idx) and np.all(np.diff(idx) > 0)
        assert np.all(np.isfinite(new)) and 8 not in idx.tolist()  # weight 0 is never kept
        got[r, idx] = np.exp(new)
    for j in range(len(w)):
        assert_mean_close(got[:, j], w[j], what=f"n={n} floor={floor}: item {j}")
    if floor == 0.0 and n >= 11:  # no more items of positive weight than n: all kept as they are
        idx, new = optimal_resample(logw, n, rng)
        assert idx.tolist() == [j for j in range(12) if j != 8] and np.allclose(new, logw[idx])


def test_optimal_resample_keeps_heavy_items_as_they_are():
    rng = np.random.default_rng(0)
    logw = np.log(np.array([100.0, 50.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    for _ in range(200):
        idx, new = optimal_resample(logw, 4, rng)
        # c solves 2 + 6 / c = 4: c = 3; both heavy items are kept with their own weights, two light ones weigh 3
        assert len(idx) == 4 and idx[:2].tolist() == [0, 1]
        np.testing.assert_allclose(np.exp(new), [100.0, 50.0, 3.0, 3.0])
