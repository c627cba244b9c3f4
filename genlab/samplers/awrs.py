"""Adaptive weighted rejection sampling (AWRS): one exact constrained token and an unbiased estimate of its mass.

Lipkin et al., "Fast Controlled Generation from Language Models with Adaptive Weighted Rejection Sampling"
(COLM 2025, arXiv:2504.05410). Given the model's next-token distribution p (log-probs over the whole vocabulary)
and a matcher whose `allows(state, t)` says whether token t keeps the text inside the language (set A):

    step = AWRS().step(logp, matcher, state, rng)
    step.token        # an exact sample of p restricted to A, i.e. of p(t) 1[t in A] / Z
    step.log_weight   # log of an unbiased estimate of Z = sum_{t in A} p(t)
    step.checks       # how many `allows` calls it cost

Tokens are drawn from p WITHOUT replacement via Gumbel top-k: keys = logp + Gumbel noise, and the descending order
of the keys is a without-replacement sample of p (a Plackett-Luce order). Each drawn token is checked until one
passes; that token is an exact sample of p|A because rejected tokens are exactly the ones outside A. The order is
built lazily (argpartition of the top 8 keys, doubled only when the walk goes deeper), so a step never sorts the
vocabulary. The pair (token, weight) is properly weighted: E[w f(x)] = sum_{t in A} p(t) f(t) for every f.

Estimators of Z (psi = p-mass of the tokens rejected before the accepted token x; n0 = how many there were):

- "recursive" (default; one extra check): Z_hat = p(x) + (1 - psi - p(x)) 1[next token in the order is in A].
  Unbiased because, given the remaining set S (mass 1 - psi), the next token in the order is a draw from p|S
  without x: E[1 - psi - p(x) times its indicator] = Z - p(x). This is the estimator of genlm-control's
  `recursive_awrs`; it is unbiased conditionally on every prefix of rejections. Where verdicts of other tokens
  are known already (the memo below), their allowed mass is added exactly and the extra check estimates only the
  mass of the tokens still unknown (`_recursive_weight`): lower variance, and no check at all once every token
  of positive mass has a known verdict. Where that unknown mass u is below `skip_tolerance` (tau, default 0.1)
  times the known allowed mass k, the check is made with probability q = u / (tau k) only and counts u / q
  (Russian roulette: unbiased). The variance it adds is at most u a tau k <= (tau k)^2, a = P(check passes) <= 1:
  a relative standard deviation of at most tau, and it saves the extra check on most steps once the memo knows
  the likely tokens. `skip_tolerance=0` always checks.
- "recursive-sparse": the same, but the extra check is made only with probability q = (1 - psi - p(x)) / (1 - psi),
  the share of the remaining mass it could add: Z_hat = p(x) + (1 - psi) 1[checked and next in A], whose
  expectation is p(x) + q (1 - psi) (Z - p(x)) / (1 - psi - p(x)) = Z. Where the model is confident (p(x) close to
  1 - psi) the check is almost never made: about one check per token, for a somewhat larger variance. (With known
  verdicts: q = unknown mass / (unknown mass + known allowed mass).)
- "two-pass" (the paper's): after the first accept, a fresh without-replacement order over every token except the
  n0 rejected ones (x included) counts n1 rejections before its first accept; Z_hat = (1 - psi) / (n0 + n1 + 1)
  (paper, Sec. 3; the inverse-binomial estimator 1/(T - 1) for two successes, made adaptive). Exact enumeration
  over all orders (tests/test_awrs.py) confirms it is unbiased and properly weighted. It is NOT unbiased
  conditionally on a prefix of rejections, which matters for the rejection cap below.

Rejection cap (`max_rejections`): after that many rejections the exact mask is fetched once (`matcher.mask`).
- "recursive": x is drawn from p restricted to the mask and the weight is the exact Z. Proper, because the
  recursive estimator's conditional expectation of w f(x) given any prefix of rejections is
  sum_{t in A} p(t) f(t), so replacing the rest of the run by its exact value keeps the expectation.
- "two-pass": returning the exact Z would be biased (upwards: given r leading rejections the two-pass estimate
  has expectation below Z, because of the +r in its denominator). Instead the walk continues with the mask as
  the oracle (no more `allows` calls, vectorised scans), which reproduces the uncapped estimator's distribution
  exactly. The same happens in the second pass after `max_rejections` rejections there.
Matchers without masks (`has_masks` False: Predicate) have no cap: the walk goes on until an accept. A matcher
that offers a superset (below) has the same cap: `Pattern`'s exact mask prunes shared prefixes that no match
starts with, so it costs far fewer checks than the superset has tokens.

A matcher may offer a cheap superset of its allowed set (`superset(state)`: `Pattern`'s over-approximating DFA
mask, before its costly exact check). AWRS then walks p restricted to the superset, renormalised: every allowed
token is in it, so the draw's law is unchanged, and Z = P(superset) Z' with P(superset) known exactly, so the
weights gain log P(superset) and stay unbiased; the tokens the superset rules out cost no check.

Work already done is reused through a `Memo` the caller keeps across particles and steps (SMC keeps one per
run). It holds each state's verdicts: `allows` is a function of (state, token), so particles in the same state
(copies after resampling, or a regex's DFA state reached by different texts) never check a token twice; `checks`
counts the calls that reached the matcher. And it holds the masks the rejection cap fetched: a later step in such
a state is exact (x drawn from p restricted to the mask, weight the exact Z, no checks), which is proper for every
estimator since the choice depends on the state and the run so far, never on this step's draws. Only what this
run fetched is used, not masks the matcher cached for earlier runs, so a seeded run's result does not depend on
what ran before it.
If no allowed token has positive mass (Z = 0) the step returns token -1 and log_weight -inf: the caller kills
the particle.

Several children at once (`AWRS.children`, for SMC's optimal resampling): the same without-replacement walk goes on
past the first accept until k + 1 tokens have passed. The first k accepted tokens are the k allowed tokens of
largest key, i.e. a sample of size k from A without replacement with probabilities proportional to p (PPSWOR,
Rosen 1997), and the (k + 1)-th accepted key is the threshold tau. Given every other token's key, an allowed token
t is in the sample iff its own key exceeds tau, so its inclusion probability is pi_t = 1 - exp(-p(t) e^-tau)
(rank conditioning, Cohen and Kaplan 2007) and the weights p(t) / pi_t are unbiased: E[sum_children w f(t)] =
sum_{t in A} p(t) f(t). Where A has at most k tokens of positive mass the walk exhausts them and every one is a
child with its exact weight p(t): small languages are expanded exactly. The rejection cap and the memo's masks work
as for one token: with the mask at hand the same top k + 1 allowed keys are read from it, vectorised, so the law is
the uncapped walk's. Matchers without masks cannot afford the walk (exhausting a small A means checking the whole
vocabulary): for them the children are k independent one-token steps, merged by token with weight Z_hat / k each.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["AWRS", "AWRSChildren", "AWRSStep", "Memo", "log1mexp"]

_LOG_HALF = -np.log(2.0)
_LOG_NEAR_ONE = float(np.log1p(-1e-6))  # log(1 - 1e-6): above it, 1 - mass is summed, not subtracted
_ESTIMATORS = ("recursive", "recursive-sparse", "two-pass")


def log1mexp(x):
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler 2012: log(-expm1(x)) above -ln 2, else log1p(-e^x))."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > _LOG_HALF, np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
    return float(out) if out.ndim == 0 else out


def _gumbel(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard Gumbel noise as -log(Exp(1)) (numpy's ziggurat exponential is faster than its Gumbel sampler)."""
    return -np.log(rng.standard_exponential(size))


def _logsumexp(a: np.ndarray) -> float:
    """log(sum(exp(a))) in float64; -inf for an empty or all -inf array."""
    if a.size == 0:
        return -np.inf
    m = float(np.max(a))
    if m == -np.inf:
        return -np.inf
    return m + float(np.log(np.sum(np.exp(a - m))))


@dataclass(frozen=True)
class AWRSStep:
    """One AWRS draw: the token, log of an unbiased estimate of Z, `allows` calls made, and whether the cap hit."""

    token: int  # the accepted token id (-1 when Z = 0: kill the particle)
    log_weight: float  # log Z_hat, E[Z_hat] = Z = sum of p over allowed tokens (-inf when Z = 0)
    checks: int  # matcher.allows calls made
    fell_back: bool  # True when the rejection cap was hit and the exact mask was used
    cached: bool = False  # True when this run had fetched the state's mask before: exact draw and Z, no checks


@dataclass(frozen=True)
class AWRSChildren:
    """Distinct allowed tokens of one state with unbiased weights: E[sum_j exp(log_weights[j]) f(tokens[j])] =
    sum_{t in A} p(t) f(t). Empty when no allowed token has positive mass."""

    tokens: np.ndarray  # int64, distinct
    log_weights: np.ndarray  # float64, log of each child's weight (p(t) where exact, p(t) / pi_t in a sample)
    checks: int  # matcher.allows calls made
    fell_back: bool  # the rejection cap was hit and the state's mask fetched
    cached: bool = False  # the state's mask was in the memo: vectorised, no checks
    exact: bool = False  # every allowed token of positive mass is a child, with weight p(t)


class Memo:
    """What AWRS steps of one run have learnt, by constraint state: token verdicts and masks fetched at the cap."""

    __slots__ = ("verdicts", "masks", "size")

    def __init__(self) -> None:
        self.verdicts: dict = {}  # state -> {token id: allowed}
        self.masks: dict = {}  # state -> its mask
        self.size = 0  # verdicts held, for callers that bound the memory

    def of(self, state) -> dict:
        """The token -> verdict dict of `state` (created empty)."""
        verdicts = self.verdicts.get(state)
        if verdicts is None:
            verdicts = self.verdicts[state] = {}
        return verdicts


class _LazyOrder:
    """The descending order of `keys` over its `n` finite entries, materialised lazily (top 8, then doubling)."""

    __slots__ = ("keys", "n", "order", "finite")

    def __init__(self, keys: np.ndarray, n: int):
        self.keys = keys
        self.n = n
        self.order = np.empty(0, dtype=np.intp)
        self.finite: np.ndarray | None = None  # ids of the finite keys, where some are -inf

    def _grow(self, need: int) -> None:
        """Materialise at least `need` leading positions (capped at n); keys are a.s. distinct, so prefixes agree."""
        k = min(self.n, max(8, need, 2 * len(self.order)))
        keys = self.keys
        if self.n < len(keys):
            # numpy's introselect runs ~15x slower when many keys tie at -inf (a superset's masked tokens): select
            # among the finite keys only
            if self.finite is None:
                self.finite = np.flatnonzero(keys > -np.inf)
            keys = keys[self.finite]
        v = len(keys)
        top = np.argpartition(keys, v - k)[v - k :] if k < v else np.arange(v)
        top = top[np.argsort(-keys[top], kind="stable")][:k]
        self.order = top if self.finite is None else self.finite[top]

    def __getitem__(self, i: int) -> int:
        """Token at position i, or -1 past the last token with finite key."""
        if i >= self.n:
            return -1
        if i >= len(self.order):
            self._grow(i + 1)
        return int(self.order[i])

    def first_in(self, start: int, ok: np.ndarray) -> int:
        """First position >= start whose token has ok[token] True, or -1; vectorised over growing chunks."""
        pos = start
        while pos < self.n:
            if pos >= len(self.order):
                self._grow(pos + 1)
            hits = np.flatnonzero(ok[self.order[pos:]])
            if hits.size:
                return pos + int(hits[0])
            pos = len(self.order)
        return -1


class _TopKOrder:
    """The descending order of device-side `keys`, fetched to the host in doubling top-k chunks with each token's
    log-prob; tokens with p = 0 (key -inf) end it."""

    __slots__ = ("keys", "logp", "ids", "logps", "end")

    def __init__(self, keys, logp):
        self.keys, self.logp = keys, logp
        self.ids = np.empty(0, dtype=np.int64)
        self.logps = np.empty(0)
        self.end = -1  # position of the first token with p = 0, once fetched (-1: not yet)

    def _grow(self, need: int) -> None:
        import torch

        k = min(len(self.keys), max(8, need, 2 * len(self.ids)))
        values, ids = torch.topk(self.keys, k)
        ids_host = ids.cpu().numpy()
        finite = torch.isfinite(values).cpu().numpy()
        self.ids = ids_host
        self.logps = self.logp[ids].cpu().numpy()
        if not finite.all():
            self.end = int(np.argmin(finite))
        elif k == len(self.keys):
            self.end = k

    def __getitem__(self, i: int) -> int:
        """Token at position i, or -1 past the last token with positive mass."""
        if self.end < 0 and i >= len(self.ids):
            self._grow(i + 1)
        if 0 <= self.end <= i:
            return -1
        return int(self.ids[i])

    def logp_at(self, i: int) -> float:
        return float(self.logps[i])


class AWRS:
    """Adaptive weighted rejection sampler for one token; see the module docstring for the estimators and the cap."""

    def __init__(self, estimator: str = "recursive", max_rejections: int = 64, skip_tolerance: float = 0.1):
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        if max_rejections < 0:
            raise ValueError(f"max_rejections must be >= 0, got {max_rejections}")
        if not 0 <= skip_tolerance <= 1:
            raise ValueError(f"skip_tolerance must be in [0, 1], got {skip_tolerance}")
        self.estimator = estimator
        self.max_rejections = int(max_rejections)
        self.skip_tolerance = float(skip_tolerance)
        self._log_tolerance = float(np.log(skip_tolerance)) if skip_tolerance > 0 else -np.inf

    def __repr__(self) -> str:
        return (
            f"AWRS(estimator={self.estimator!r}, max_rejections={self.max_rejections}, "
            f"skip_tolerance={self.skip_tolerance})"
        )

    def step(self, logp: np.ndarray, matcher, state, rng: np.random.Generator, memo: Memo | None = None) -> AWRSStep:
        """Draw one token of p restricted to the matcher's allowed set, with the log of an unbiased estimate of Z.

        `memo`, if given, is read and filled: see the module docstring."""
        logp = np.asarray(logp, dtype=np.float64)
        if logp.ndim != 1:
            raise ValueError(f"logp must be one-dimensional, got shape {logp.shape}")
        logp, shift, cap = self._within_superset(logp, matcher, state)
        if shift == -np.inf:
            return AWRSStep(-1, -np.inf, 0, False)
        step = self._step(logp, matcher, state, rng, memo, cap)
        return step if shift == 0.0 else replace(step, log_weight=step.log_weight + shift)

    def _within_superset(self, logp: np.ndarray, matcher, state) -> tuple[np.ndarray, float, float]:
        """p restricted to the matcher's cheap superset of the allowed set (`superset(state)`, e.g. `Pattern`'s DFA
        mask) and renormalised, log P(superset), and the rejection cap. Every allowed token lies in the superset,
        so p restricted to the allowed set is unchanged and Z = P(superset) Z' exactly: the walk skips what the
        superset rules out without checks, and weights gain log P(superset). Matchers without masks (Predicate)
        have no cap: they cannot fall back."""
        cap = float(self.max_rejections) if getattr(matcher, "has_masks", True) else np.inf
        superset = getattr(matcher, "superset", None)
        inside = None if superset is None else superset(state)
        if inside is None:
            return logp, 0.0, cap
        kept = np.where(inside, logp, -np.inf)
        shift = _logsumexp(kept)
        return (kept - shift if shift > -np.inf else kept), shift, cap

    def _step(
        self, logp: np.ndarray, matcher, state, rng: np.random.Generator, memo: Memo | None, cap: float
    ) -> AWRSStep:
        positive = logp > -np.inf  # tokens with p = 0 are never drawn
        if memo is not None and state in memo.masks:
            return self._exact(logp, np.asarray(memo.masks[state], dtype=bool) & positive, rng, 0, cached=True)
        n_pos = int(np.count_nonzero(positive))
        allows = _Checks(matcher, state, memo)

        order = _LazyOrder(logp + _gumbel(rng, logp.size), n_pos)
        rejected: list[int] = []
        ok = None  # the exact mask (restricted to positive tokens), once the cap is hit
        pos = 0
        while True:
            t = order[pos]
            if t < 0:  # every token with positive mass was rejected: Z = 0
                return AWRSStep(-1, -np.inf, allows.calls, False)
            if len(rejected) >= cap:
                ok = np.asarray(_fetch_mask(matcher, state, memo), dtype=bool) & positive
                if self.estimator != "two-pass":
                    return self._exact(logp, ok, rng, allows.calls)
                pos = order.first_in(pos, ok)  # continue the same walk with the mask as the oracle
                if pos < 0:
                    return AWRSStep(-1, -np.inf, allows.calls, True)
                rejected.extend(int(r) for r in order.order[len(rejected) : pos])
                x = int(order.order[pos])
                break
            if allows(t):
                x = t
                break
            rejected.append(t)
            pos += 1

        if self.estimator != "two-pass":
            log_w = self._recursive_weight(
                pos, order, allows, lambda ids: logp[ids], lambda ids: _logsumexp(np.delete(logp, ids)), rng
            )
            return AWRSStep(x, log_w, allows.calls, False)

        # two-pass: Z_hat = (1 - psi0) / (n0 + n1 + 1), second order fresh over all tokens but the n0 rejected.
        n0 = len(rejected)
        keys2 = logp + _gumbel(rng, logp.size)
        keys2[rejected] = -np.inf
        order2 = _LazyOrder(keys2, n_pos - n0)
        n1 = 0
        while True:
            t = order2[n1]  # never -1: x is in the reduced set
            if ok is not None:  # mask known: finish the pass vectorised, no more checks
                n1 = order2.first_in(n1, ok)
                break
            if n1 >= cap:
                ok = np.asarray(_fetch_mask(matcher, state, memo), dtype=bool) & positive
                continue
            if allows(t):
                break
            n1 += 1
        log_w = self._log_remaining(logp, rejected) - float(np.log(n0 + n1 + 1))
        return AWRSStep(x, log_w, allows.calls, ok is not None)

    def step_on_device(self, logp, matcher, state, rng: np.random.Generator, memo: Memo | None = None) -> AWRSStep:
        """`step` for a torch row of log-probs left where it is (a GPU): the Gumbel keys and their top-k order are
        computed on the device, and only the candidates actually checked (ids and log-probs, in chunks of 8, 16,
        32, ...) come to the host. The recursive estimators only; the same distribution as `step`, not the same
        random stream (the noise comes from a torch generator seeded from `rng`)."""
        import torch

        if self.estimator == "two-pass":
            raise ValueError("step_on_device supports the recursive estimators; use step() for two-pass")
        generator = torch.Generator(device=logp.device)
        generator.manual_seed(int(rng.integers(2**62)))
        logp = logp.double()
        if memo is not None and state in memo.masks:
            return self._exact_on_device(logp, memo.masks[state], generator, 0, fell_back=False, cached=True)
        noise = torch.empty_like(logp).exponential_(generator=generator)
        order = _TopKOrder(logp - torch.log(noise), logp)
        allows = _Checks(matcher, state, memo)

        cap = self.max_rejections if getattr(matcher, "has_masks", True) else np.inf
        rejected: list[int] = []
        pos = 0
        while True:
            t = order[pos]
            if t < 0:
                return AWRSStep(-1, -np.inf, allows.calls, False)
            if len(rejected) >= cap:
                return self._exact_on_device(
                    logp, _fetch_mask(matcher, state, memo), generator, allows.calls, fell_back=True
                )
            if allows(t):
                x = t
                break
            rejected.append(t)
            pos += 1

        def logp_of(ids: np.ndarray) -> np.ndarray:
            return logp[torch.from_numpy(ids).to(logp.device)].cpu().numpy()

        def log_rest(ids: np.ndarray) -> float:
            rest = logp.clone()
            rest[torch.from_numpy(ids).to(logp.device)] = -torch.inf
            return float(torch.logsumexp(rest, 0))

        return AWRSStep(x, self._recursive_weight(pos, order, allows, logp_of, log_rest, rng), allows.calls, False)

    def children(
        self, logp: np.ndarray, matcher, state, rng: np.random.Generator, memo: Memo | None = None, k: int = 1
    ) -> AWRSChildren:
        """Up to k distinct allowed tokens with unbiased weights (see the module docstring): all of them, exactly,
        where at most k have positive mass. Matchers without masks get k merged one-token steps instead."""
        logp = np.asarray(logp, dtype=np.float64)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        logp, shift, cap = self._within_superset(logp, matcher, state)
        if shift == -np.inf:
            return AWRSChildren(np.zeros(0, np.int64), np.zeros(0), 0, False)
        found = self._children(logp, matcher, state, rng, memo, k, cap)
        return found if shift == 0.0 else replace(found, log_weights=found.log_weights + shift)

    def _children(
        self, logp: np.ndarray, matcher, state, rng: np.random.Generator, memo: Memo | None, k: int, cap: float
    ) -> AWRSChildren:
        positive = logp > -np.inf
        if memo is not None and state in memo.masks:
            ok = np.asarray(memo.masks[state], dtype=bool) & positive
            return _top_allowed(logp, np.flatnonzero(ok), None, k, rng, 0, fell_back=False, cached=True)
        if not getattr(matcher, "has_masks", True):
            return self._children_by_draws(logp, matcher, state, rng, memo, k)
        allows = _Checks(matcher, state, memo)
        keys = logp + _gumbel(rng, logp.size)
        order = _LazyOrder(keys, int(np.count_nonzero(positive)))
        accepted: list[int] = []
        rejections = 0
        pos = 0
        while len(accepted) <= k:
            t = order[pos]
            if t < 0:  # every token of positive mass visited: the accepted ones are all of A
                break
            if rejections >= cap:  # the cap: the same top keys, read from the mask
                ok = np.asarray(_fetch_mask(matcher, state, memo), dtype=bool) & positive
                return _top_allowed(logp, np.flatnonzero(ok), keys, k, rng, allows.calls, fell_back=True)
            if allows(t):
                accepted.append(t)
            else:
                rejections += 1
            pos += 1
        ids = np.asarray(accepted[:k], dtype=np.int64)
        if len(accepted) <= k:
            return AWRSChildren(ids, logp[ids], allows.calls, False, exact=True)
        return AWRSChildren(ids, _ppswor_weights(logp[ids], float(keys[accepted[k]])), allows.calls, False)

    def _children_by_draws(self, logp: np.ndarray, matcher, state, rng, memo, k: int) -> AWRSChildren:
        """k independent one-token steps, merged by token: each (x, Z_hat) is properly weighted, so their
        average is too, and a token drawn twice carries the sum of its shares."""
        weights: dict[int, float] = {}
        checks = 0
        share = float(np.log(k))
        for _ in range(k):
            step = self.step(logp, matcher, state, rng, memo)
            checks += step.checks
            if step.token < 0:
                continue
            w = step.log_weight - share
            weights[step.token] = float(np.logaddexp(weights[step.token], w)) if step.token in weights else w
        ids = np.fromiter(weights.keys(), np.int64, len(weights))
        return AWRSChildren(ids, np.fromiter(weights.values(), np.float64, len(weights)), checks, False)

    def _recursive_weight(self, pos: int, order, allows: _Checks, logp_of, log_rest, rng) -> float:
        """log Z_hat of the recursive estimators once x, at position `pos` of `order`, is accepted.

        K = the tokens whose verdict is known (the rejected ones, x, and any the memo holds), U = the rest:
        Z = mass(A and K) + mass(A and U). The first is summed exactly; the second is estimated from one token y,
        the first token of U in the order after x. Given the order up to x, the rest is a Plackett-Luce order of
        the remaining tokens, so y is a draw of p restricted to U and mass(U) 1[y in A] is unbiased for
        mass(A and U). Conditionally unbiased given x and the rejections, which is what proper weighting needs.
        With nothing known beyond the rejections and x, mass(A and K) = p(x), mass(U) = 1 - psi - p(x) and y is
        the next token: genlm-control's recursive estimator. "recursive-sparse" checks y only with probability
        q = mass(U) / (mass(U) + mass(A and K)) and then counts mass(U) / q (Russian roulette: still unbiased),
        so where the known mass dominates the check is seldom made; "recursive" does the same only where
        mass(U) < skip_tolerance * mass(A and K), with q = mass(U) / (skip_tolerance * mass(A and K)).
        """
        verdicts = allows.verdicts
        ids = np.fromiter(verdicts.keys(), np.int64, len(verdicts))
        ok = np.fromiter(verdicts.values(), np.bool_, len(verdicts))
        lp = np.asarray(logp_of(ids), dtype=np.float64)
        log_known_ok = _logsumexp(lp[ok])  # includes p(x) > 0
        i = pos + 1
        while True:
            y = order[i]
            if y < 0 or y not in verdicts:
                break
            i += 1
        if y < 0:  # every token of positive mass has a known verdict: the sum is exact
            return log_known_ok
        # mass(U) = 1 - mass(K), summed directly where the subtraction would lose digits
        log_known = _logsumexp(lp)
        log_u = log1mexp(log_known) if log_known < _LOG_NEAR_ONE else log_rest(ids)
        if self.estimator == "recursive-sparse":
            log_q = log_u - float(np.logaddexp(log_u, log_known_ok))
        elif self.skip_tolerance > 0:  # roulette only where mass(U) < tolerance * mass(A and K)
            log_q = min(0.0, log_u - self._log_tolerance - log_known_ok)
        else:
            log_q = 0.0
        if log_q < 0.0:
            if rng.random() < np.exp(log_q) and allows(y):
                return float(np.logaddexp(log_known_ok, log_u - log_q))
            return log_known_ok
        if not allows(y):
            return log_known_ok
        # mass(A and K) + mass(U) = 1 - mass(K outside A): the form that is exactly 1 when nothing was rejected
        bad = ~ok
        if not bad.any():
            return 0.0
        log_bad = _logsumexp(lp[bad])
        return log1mexp(log_bad) if log_bad < _LOG_HALF else log_rest(ids[bad])

    @staticmethod
    def _exact_on_device(
        logp, mask: np.ndarray, generator, calls: int, *, fell_back: bool, cached: bool = False
    ) -> AWRSStep:
        """The exact step with the mask applied on the device: only x and log Z come back to the host."""
        import torch

        ok = torch.from_numpy(np.array(mask, dtype=bool)).to(logp.device)  # a writable copy
        masked = logp.masked_fill(~ok, -torch.inf)
        log_z = float(torch.logsumexp(masked, 0))
        if log_z == -np.inf:
            return AWRSStep(-1, -np.inf, calls, fell_back, cached)
        gumbel = -torch.log(torch.empty_like(logp).exponential_(generator=generator))
        return AWRSStep(int(torch.argmax(masked + gumbel)), log_z, calls, fell_back, cached)

    @staticmethod
    def _log_remaining(logp: np.ndarray, rejected: list[int]) -> float:
        """log(1 - psi), psi = mass of `rejected`: log1mexp(logsumexp) while psi < 1/2, else the remaining mass summed
        directly (no cancellation when psi ~ 1, e.g. Z ~ 1e-12)."""
        if not rejected:
            return 0.0
        log_psi = _logsumexp(logp[rejected])
        if log_psi < _LOG_HALF:
            return log1mexp(log_psi)
        rest = logp.copy()
        rest[rejected] = -np.inf
        return _logsumexp(rest)

    @staticmethod
    def _exact(
        logp: np.ndarray, ok: np.ndarray, rng: np.random.Generator, calls: int, cached: bool = False
    ) -> AWRSStep:
        """x ~ p restricted to the mask (Gumbel-max), weight = exact log Z = logsumexp over allowed: the cap's
        fallback, or (`cached`) a state whose mask this run fetched before."""
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return AWRSStep(-1, -np.inf, calls, not cached, cached)
        sub = logp[idx]
        x = int(idx[np.argmax(sub + _gumbel(rng, idx.size))])
        return AWRSStep(x, _logsumexp(sub), calls, not cached, cached)


def _ppswor_weights(logp: np.ndarray, tau: float) -> np.ndarray:
    """log(p(t) / pi_t), pi_t = 1 - exp(-p(t) e^-tau): the rank-conditioned inclusion probability of a token whose
    Gumbel key logp + G beat the threshold tau (P(G > tau - logp) for standard Gumbel G)."""
    return logp - log1mexp(-np.exp(logp - tau))


def _top_allowed(
    logp: np.ndarray,
    allowed: np.ndarray,
    keys: np.ndarray | None,
    k: int,
    rng,
    calls: int,
    *,
    fell_back: bool,
    cached: bool = False,
) -> AWRSChildren:
    """`AWRS.children` with the allowed set known: every allowed token exactly if there are at most k, else the k of
    largest Gumbel key (the walk's own `keys` where it began, fresh noise over the allowed ones otherwise)."""
    allowed = np.asarray(allowed, dtype=np.int64)
    if allowed.size <= k:
        return AWRSChildren(allowed, logp[allowed], calls, fell_back, cached, exact=True)
    key = keys[allowed] if keys is not None else logp[allowed] + _gumbel(rng, allowed.size)
    top = np.argpartition(-key, k)[: k + 1]
    top = top[np.argsort(-key[top], kind="stable")]
    ids = allowed[top[:k]]
    return AWRSChildren(ids, _ppswor_weights(logp[ids], float(key[top[k]])), calls, fell_back, cached)


class _Checks:
    """One step's `allows` oracle: verdicts read from and written to the run's memo (if any), calls that reached
    the matcher counted in `calls`."""

    __slots__ = ("matcher", "state", "memo", "verdicts", "calls")

    def __init__(self, matcher, state, memo: Memo | None) -> None:
        self.matcher, self.state, self.memo = matcher, state, memo
        self.verdicts: dict[int, bool] = {} if memo is None else memo.of(state)
        self.calls = 0

    def __call__(self, t: int) -> bool:
        v = self.verdicts.get(t)
        if v is None:
            v = self.verdicts[t] = bool(self.matcher.allows(self.state, t))
            self.calls += 1
            if self.memo is not None:
                self.memo.size += 1
        return v


def _fetch_mask(matcher, state, memo: Memo | None) -> np.ndarray:
    """The state's exact mask (the rejection cap's fallback), kept in the run's memo for later steps."""
    mask = matcher.mask(state)
    if memo is not None:
        memo.masks[state] = mask
    return mask
