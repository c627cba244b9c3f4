"""Sequential Monte Carlo over token sequences, with AWRS (or exact masking) proposals and optional critics.

Particles are not model rows. Each particle refers to a row of one `BatchState`; a row is one distinct token
history, so particles with the same prefix (copies after resampling) share it and the model runs it once. A step
forwards every row that a live particle refers to, each particle draws its next token from p restricted to the
constraint, and the rows fork only where particles sharing one drew different tokens (copy on diverge); a row no
particle refers to any more is dropped. Resampling copies references, never KV. `share_rows=False` gives every
particle its own row (the law is the same; only the cost differs).

Two kinds of resampling:

- "optimal" (default): Fearnhead and Clifford (2003), for discrete states. Every step each live particle of weight
  W proposes up to k distinct allowed next tokens with unbiased weights (`AWRS.children`: the AWRS walk continued
  past its first accept; every allowed token, exactly, where few are allowed), a child t weighing W w(t). If there
  are at most N children and finished particles, all are kept. Otherwise the threshold c solving
  sum_j min(1, w_j / c) = N is found; every child with w_j >= c is kept with its own weight, and N - (their number)
  of the rest are chosen by stratified sampling with probabilities w_j / c, each carrying weight c. Each w_j is
  kept in expectation (unbiased), and no particle is ever a copy of another: N particles hold N distinct prefixes.
  The weights are not equalised, so the estimate of P(x in L) is the SUM of the final weights (reported as the
  mean over samples of the weights times their number). `ess_threshold` only switches resampling on (> 0).
- "stratified", "systematic", "multinomial", "residual": one AWRS token per particle, and N ancestors drawn in
  proportion to the weights when the effective sample size falls below `ess_threshold * N`; every particle then
  carries the mean weight, so the mean of the final weights is the estimate of P(x in L) (Del Moral 2004;
  Naesseth et al. 2019).

A critic is an expensive check `critic(text, complete) -> log-weight` (-inf kills): on prefixes it acts as a
twist (the weight takes the ratio of successive critic values), on complete texts as the final score. The
constraint's own checks beyond its matcher apply too: a particle whose finished parts fail `check_prefix` is
dropped at once, and one that ends failing `validate` gets weight 0 (e.g. JSON Schema's uniqueItems). Under
optimal resampling these apply to the chosen children only (a weight factor applied after a resampling that is
unbiased per child keeps the weights proper), so a step calls the critic at most N times.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.awrs import AWRS, Memo, _logsumexp
from genlab.samplers.drafts import Drafter
from genlab.samplers.prompt import Prompt, Start, prepare
from genlab.samplers.result import Counts, GenerationResult, Progress, Sample

Critic = Callable[[str, bool], float]
CLASSIC_RESAMPLING = ("stratified", "systematic", "multinomial", "residual")
RESAMPLING = ("optimal", *CLASSIC_RESAMPLING)
_MEMO_LIMIT = 1_000_000  # verdicts kept per run before the memo starts afresh
_MIN_CHILDREN = 4  # a live particle proposes at least this many children under optimal resampling


def ess(log_weights: np.ndarray) -> float:
    """Effective sample size (sum w)^2 / sum w^2 of unnormalised log weights; 0 when every weight is 0."""
    if len(log_weights) == 0:
        return 0.0
    top = np.max(log_weights)
    if top == -np.inf:
        return 0.0
    w = np.exp(log_weights - top)
    return float(w.sum() ** 2 / (w**2).sum())


def resample(log_weights: np.ndarray, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """N ancestor indices drawn in proportion to the weights (`scheme` is one of CLASSIC_RESAMPLING)."""
    n = len(log_weights)
    w = np.exp(log_weights - np.max(log_weights))
    w /= w.sum()
    cdf = np.cumsum(w)
    cdf[-1] = 1.0
    if scheme == "multinomial":
        u = np.sort(rng.random(n))
    elif scheme == "stratified":
        u = (np.arange(n) + rng.random(n)) / n
    elif scheme == "systematic":
        u = (np.arange(n) + rng.random()) / n
    elif scheme == "residual":
        copies = np.floor(n * w).astype(np.int64)
        fixed = np.repeat(np.arange(n), copies)
        rest = n - len(fixed)
        if rest == 0:
            return fixed
        residual = n * w - copies
        extra = rng.choice(n, size=rest, p=residual / residual.sum())
        return np.sort(np.concatenate([fixed, extra]))
    else:
        raise ValueError(f"unknown resampling scheme {scheme!r}; choose one of {CLASSIC_RESAMPLING}")
    return np.searchsorted(cdf, u, side="left").clip(0, n - 1)


def optimal_resample(
    log_weights: np.ndarray, n: int, rng: np.random.Generator, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fearnhead and Clifford's resampling of m items to at most n distinct ones: (kept indices in increasing order,
    their new log weights). Every item of weight w_j >= c is kept as it is; the others are chosen by stratified
    sampling with probability w_j / c and then weigh c, where c solves sum_j min(1, w_j / c) = n. E[new weight of
    j] = w_j for every j; items of weight 0 are dropped. `floor` raises c to at least that share of the total weight,
    so that light items are thinned out (kept with probability w_j / c) even when no more than n are left."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    alive = np.flatnonzero(log_weights > -np.inf)
    if len(alive) == 0:
        return alive, log_weights[alive]
    top = float(np.max(log_weights[alive]))
    w = np.exp(log_weights[alive] - top)
    c = floor * float(w.sum())
    if len(alive) > n:
        order = np.argsort(-w, kind="stable")
        ws = w[order]
        tail = np.cumsum(ws[::-1])[::-1]  # tail[k] = sum of ws[k:]
        c_k = tail[:n] / (n - np.arange(n))
        k = int(np.argmax(ws[:n] < c_k))  # the first k with ws[k] < c_k exists: more than n weights are positive
        c = max(c, float(c_k[k]))
    big = w >= c
    if big.all():
        return alive, log_weights[alive]
    small = np.flatnonzero(~big)  # in the items' own order: stratification runs along it
    cum = np.cumsum(w[small])
    points = rng.random() * c + c * np.arange(int(math.ceil(cum[-1] / c)))
    points = points[points < cum[-1]]
    picked = np.unique(np.searchsorted(cum, points, side="right").clip(0, len(small) - 1))
    chosen = np.concatenate([np.flatnonzero(big), small[picked]])
    new = np.concatenate([np.log(w[big]) + top, np.full(len(picked), math.log(c) + top)])
    by_index = np.argsort(chosen, kind="stable")
    return alive[chosen[by_index]], new[by_index]


def _text(data: bytes) -> str:
    """Decoded text of a prefix; an unfinished UTF-8 character at the end is left out."""
    return data.decode("utf-8", errors="ignore")


class _Particles:
    """The population: per particle its row (-1 once finished), constraint state, tokens, bytes, log weight, critic
    twist and flags. Lists and arrays are replaced whole by `take`, never aliased between particles."""

    def __init__(self, state, n: int):
        self.row = np.zeros(n, np.int64)
        self.states = [state] * n
        self.tokens: list[tuple[int, ...]] = [()] * n
        self.data = [b""] * n
        self.logw = np.zeros(n)
        self.twist = np.zeros(n)
        self.done = np.zeros(n, np.bool_)
        self.complete = np.zeros(n, np.bool_)
        self.valid = np.ones(n, np.bool_)

    def __len__(self) -> int:
        return len(self.states)

    def take(self, index) -> None:
        """Keep particles `index` in that order (repeats are copies sharing a row)."""
        index = np.asarray(index, dtype=np.int64)
        self.row, self.logw, self.twist = self.row[index], self.logw[index], self.twist[index]
        self.done, self.complete, self.valid = self.done[index], self.complete[index], self.valid[index]
        self.states = [self.states[i] for i in index]
        self.tokens = [self.tokens[i] for i in index]
        self.data = [self.data[i] for i in index]


class _Step:
    """One SMC step's shared context: the matcher, the constraint's extra checks, the critic and the counts."""

    def __init__(
        self, constraint: Constraint, matcher, vocab, critic: Critic | None, counts: Counts, start: Start
    ) -> None:
        self.constraint, self.matcher, self.vocab, self.critic, self.counts = constraint, matcher, vocab, critic, counts
        self.start = start  # the user's part of a text is what follows the healed bytes

    def text(self, data: bytes) -> str:
        return _text(self.start.output(data))

    def finish(self, p: _Particles, i: int) -> None:
        """Particle i drew EOS: it is complete; `validate` and the critic's final score apply."""
        p.done[i] = p.complete[i] = True
        p.row[i] = -1
        text = self.text(p.data[i])
        if not self.constraint.validate(text):
            p.logw[i] = -np.inf
            p.valid[i] = False
        if self.critic is not None:
            p.logw[i] += self.critic(text, True) - p.twist[i]

    def move(self, p: _Particles, i: int, token: int) -> bool:
        """Particle i appends `token`; False when it dies (a finished part fails, or the critic kills it)."""
        p.states[i] = self.matcher.advance(p.states[i], token)
        p.tokens[i] = p.tokens[i] + (token,)
        p.data[i] = p.data[i] + self.vocab.token_bytes[token]
        if not self.constraint.check_prefix(self.text(p.data[i])):  # no completion of a failed part passes
            self.kill(p, i)
            return False
        if self.critic is not None:
            phi = self.critic(self.text(p.data[i]), False)
            p.logw[i] += phi - p.twist[i]
            p.twist[i] = phi
            if phi == -np.inf:
                self.kill(p, i)
                return False
        return True

    @staticmethod
    def kill(p: _Particles, i: int) -> None:
        p.done[i] = True
        p.row[i] = -1
        p.logw[i] = -np.inf


def smc(
    lm: LanguageModel,
    constraint: Constraint,
    prompt: Prompt,
    *,
    n_particles: int = 8,
    ess_threshold: float = 0.5,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int | None = None,
    proposal: str = "awrs",
    estimator: str = "recursive",
    max_rejections: int = 64,
    skip_tolerance: float = 0.1,
    resampling: str = "optimal",
    prune: float = 1e-4,
    share_rows: bool = True,
    critic: Critic | None = None,
    keep_weights: bool = True,
    progress: Progress | None = None,
    device_candidates: bool | None = None,
    drafts: bool = False,
    max_draft: int = 8,
    draft_rows: int = 1,
    heal: bool | None = False,
) -> GenerationResult:
    """SMC with N particles; see the module docstring. `ess_threshold=0` never resamples (importance sampling).

    `keep_weights=False` drops the weights (every complete sample weighs the same): with AWRS proposals and no
    resampling that is locally constrained decoding by rejection, the unweighted baseline. `progress(step, running)`
    is called after each step, if given (progress bars). `estimator`, `max_rejections` and `skip_tolerance` are
    AWRS's (see `genlab.samplers.awrs`). `device_candidates` (default: when the model is not on the CPU, with a
    recursive estimator) keeps each step's log-probs on the model's device and brings to the host only the
    candidates AWRS checks (`AWRS.step_on_device`); optimal resampling reads whole rows on the host.
    `share_rows=False` runs one model row per particle instead of one per distinct prefix (same law, more rows).
    `prune` (optimal resampling): children lighter than this share of a step's total weight are thinned out even
    when no more than N are left (kept with probability w / c, then weighing c = prune * total): still unbiased,
    and it spares rows and forwards for tokenizations of negligible mass (at 1e-4, 0 to 0.02 nats of KL on the
    benchmark's problems; 1e-3 cost 0.9 nats on one seed of one).
    `drafts` (`genlab.samplers.drafts`): while the live particles share at most `draft_rows` rows (prefixes; a step
    skips its forward only when every row's draft holds, which on CPU rarely repays a wider forward over several
    rows), a row that needs a forward is also fed a draft of up to `max_draft` tokens (forced by the constraint,
    or looked up in the prompt and the particles' outputs); while the particles draw the draft's tokens the next
    distributions are already there and the step runs no forward. The draws, and so the law, are the same as
    without drafts; `counts` reports the draft tokens proposed and accepted.
    `heal` (`genlab.samplers.prompt`): back the prompt off by the tokens a vocabulary token could cross and make
    every output start with their bytes (None: for text prompts); outputs leave those bytes out (`result.healed`),
    and `max_tokens` grows by the number of tokens backed off.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if proposal not in ("awrs", "mask"):
        raise ValueError(f"proposal must be 'awrs' or 'mask', got {proposal!r}")
    if resampling not in RESAMPLING:
        raise ValueError(f"unknown resampling scheme {resampling!r}; choose one of {RESAMPLING}")
    if n_particles < 1:
        raise ValueError(f"n_particles must be >= 1, got {n_particles}")
    if not keep_weights and ess_threshold > 0:
        raise ValueError("keep_weights=False is the unweighted baseline: it cannot resample (ess_threshold=0)")
    t0 = time.perf_counter()
    n = n_particles
    vocab = lm.vocab
    start = prepare(lm, prompt, heal)
    matcher = start.matcher(constraint.compile(vocab))
    max_tokens += start.removed
    rng = np.random.default_rng(seed)
    sampler = AWRS(estimator=estimator, max_rejections=max_rejections, skip_tolerance=skip_tolerance)
    ids = start.ids
    batch = lm.prefill(ids, 1)
    counts = Counts(model_calls=1)
    rows = None
    if drafts:
        rows = _DraftRows(Drafter.for_model(lm, matcher, ids, 1, max_draft), batch.logprobs()[0], draft_rows)
    optimal = resampling == "optimal" and ess_threshold > 0
    p = _Particles(matcher.start(), 1 if optimal else n)
    stepper = _Step(constraint, matcher, vocab, critic, counts, start)
    memo = Memo()  # verdicts and fetched masks by state, shared by the particles (see awrs.py)
    history = [float(n)]
    for t in range(max_tokens):
        live = np.flatnonzero(~p.done)
        if len(live) == 0:
            break
        if memo.size > _MEMO_LIMIT:  # bound the memo's memory: start it afresh
            memo = Memo()
        logp = (batch.logprobs() if rows is None else rows.logprobs()).double()
        if temperature != 1.0:
            logp = torch.log_softmax(logp / temperature, dim=-1)
        if optimal:
            _optimal_step(p, live, logp.cpu().numpy(), sampler, proposal, n, prune, rng, memo, stepper)
        else:
            on_device = (
                proposal == "awrs"
                and estimator != "two-pass"
                and (device_candidates if device_candidates is not None else logp.device.type != "cpu")
            )
            _one_token_step(
                p, live, logp if on_device else logp.cpu().numpy(), sampler, proposal, on_device, rng, memo, stepper
            )
        _advance_rows(batch, p, share_rows, counts, rows, max_tokens)
        current = ess(p.logw)
        history.append(current)
        if not optimal and ess_threshold > 0 and 0 < current < ess_threshold * n and not p.done.all():
            ancestors = resample(p.logw, resampling, rng)
            top = np.max(p.logw)
            mean = top + math.log(np.mean(np.exp(p.logw - top)))
            p.take(ancestors)
            p.logw = np.full(n, mean)
        if progress is not None:
            progress(t + 1, int((~p.done).sum()))
    logw = p.logw
    if optimal and len(p):  # the estimate is the sum of the weights: report it as the mean of m weights
        logw = logw + math.log(len(p))
    if not keep_weights:
        logw = np.where(p.complete & p.valid, 0.0, -np.inf)
    samples = [
        Sample(p.tokens[i], start.output(p.data[i]), float(logw[i]), bool(p.complete[i]), bool(p.valid[i]))
        for i in range(len(p))
    ]
    counts.wall_time = time.perf_counter() - t0
    name = f"{'smc' if ess_threshold > 0 else 'is'}-{proposal}" if keep_weights else f"unweighted-{proposal}"
    return GenerationResult(
        name,
        samples,
        counts,
        ess_history=history,
        end_checks=constraint.end_checks,
        parser=constraint.parse,
        healed=start.healed,
    )


def _fetch_mask(matcher, state, memo: Memo, counts: Counts) -> None:
    """Keep the state's mask in the memo (AWRS then draws from it exactly, with no checks)."""
    if state not in memo.masks:
        memo.masks[state] = matcher.mask(state)
        counts.masks += 1


def _fetch_cheap_mask(matcher, state, memo: Memo, counts: Counts) -> None:
    """`_fetch_mask` for a matcher whose masks cost about as much as a few checks (`Matcher.cheap_masks`)."""
    if getattr(matcher, "cheap_masks", False):
        _fetch_mask(matcher, state, memo, counts)


def _one_token_step(
    p: _Particles,
    live: np.ndarray,
    logp,
    sampler: AWRS,
    proposal: str,
    on_device: bool,
    rng: np.random.Generator,
    memo: Memo,
    stepper: _Step,
) -> None:
    """Each live particle draws one token from its row's distribution (AWRS or the exact mask) and takes its weight."""
    counts, matcher, eos = stepper.counts, stepper.matcher, stepper.vocab.eos_ids
    for i in live:
        row = logp[p.row[i]]
        if proposal == "awrs":
            _fetch_cheap_mask(matcher, p.states[i], memo, counts)
            take = sampler.step_on_device if on_device else sampler.step
            step = take(row, matcher, p.states[i], rng, memo)
            token, log_z = step.token, step.log_weight
            counts.checks += step.checks
            counts.mask_hits += step.cached
        else:
            token, log_z = _masked_step(row, matcher.mask(p.states[i]), rng)
            counts.masks += 1
        counts.tokens += 1
        p.logw[i] += log_z
        if token < 0:  # nothing allowed here: the particle dies
            stepper.kill(p, i)
        elif token in eos:
            stepper.finish(p, i)
        else:
            stepper.move(p, i, token)


def _optimal_step(
    p: _Particles,
    live: np.ndarray,
    logp: np.ndarray,
    sampler: AWRS,
    proposal: str,
    n: int,
    prune: float,
    rng: np.random.Generator,
    memo: Memo,
    stepper: _Step,
) -> None:
    """Every live particle proposes distinct children (`AWRS.children`); the children and the finished particles are
    brought down to at most n by `optimal_resample`; the chosen children move (or finish on EOS)."""
    counts, matcher, eos = stepper.counts, stepper.matcher, stepper.vocab.eos_ids
    finished = np.flatnonzero(p.done & (p.logw > -np.inf))
    log_total = _logsumexp(p.logw[np.concatenate([live, finished])])
    parents, tokens, weights = [finished], [np.full(len(finished), -1, np.int64)], [p.logw[finished]]
    for i in live:
        state = p.states[i]
        if proposal == "mask":
            _fetch_mask(matcher, state, memo, counts)
        else:
            _fetch_cheap_mask(matcher, state, memo, counts)
        if state in memo.masks:  # vectorised: every allowed token costs nothing more
            k = n
        else:  # the walk (or, without masks, each draw) costs checks: twice the particle's share of n, at least 4
            k = min(n, max(_MIN_CHILDREN, math.ceil(2 * n * math.exp(p.logw[i] - log_total))))
        kids = sampler.children(logp[p.row[i]], matcher, state, rng, memo, k)
        counts.checks += kids.checks
        counts.mask_hits += kids.cached
        counts.tokens += 1
        ids, log_w = kids.tokens, kids.log_weights + p.logw[i]
        is_eos = np.isin(ids, list(eos)) if eos else np.zeros(len(ids), np.bool_)
        if is_eos.sum() > 1:  # every EOS id ends the same text: one child with their summed weight
            first = int(ids[is_eos][0])
            end_w = _logsumexp(log_w[is_eos])
            ids, log_w = np.append(ids[~is_eos], first), np.append(log_w[~is_eos], end_w)
        parents.append(np.full(len(ids), i, np.int64))
        tokens.append(ids)
        weights.append(log_w)
    parent, token = np.concatenate(parents), np.concatenate(tokens)
    chosen, new_logw = optimal_resample(np.concatenate(weights), n, rng, prune)
    p.take(parent[chosen])
    p.logw = new_logw
    for j, tok in enumerate(token[chosen].tolist()):
        if tok < 0:  # a finished particle kept
            continue
        if tok in eos:
            stepper.finish(p, j)
        else:
            stepper.move(p, j, tok)


def _advance_rows(
    batch, p: _Particles, share_rows: bool, counts: Counts, rows: _DraftRows | None, max_tokens: int
) -> None:
    """Give every particle that moved its new row: one per distinct (old row, token), or one per particle without
    `share_rows`; select the parents (forking rows whose particles diverged, dropping unused ones) and extend by
    one forward over the new rows (with drafts, only over the rows whose draft does not already hold the token)."""
    moving = np.flatnonzero(~p.done)
    if len(moving) == 0:
        return
    new_rows: dict = {}
    parents: list[int] = []
    last: list[int] = []
    holders: list[int] = []  # a particle on each new row
    for i in moving:
        token = p.tokens[i][-1]
        key = (int(p.row[i]), token) if share_rows else int(i)
        r = new_rows.get(key)
        if r is None:
            r = new_rows[key] = len(parents)
            parents.append(int(p.row[i]))
            last.append(token)
            holders.append(int(i))
        p.row[i] = r
    batch.select(parents)
    if rows is not None:
        rows.advance(batch, p, parents, last, holders, counts, max_tokens)
        return
    batch.extend(last)
    counts.model_calls += 1
    counts.rows += len(parents)


class _DraftRows:
    """Drafts in SMC: per row of the batch, the draft tokens it was fed after its last drawn token (`fed`) and the
    next-token log-probs after each prefix of them (`pending`; pending[0] is the row's next distribution)."""

    def __init__(self, drafter: Drafter, first: torch.Tensor, max_rows: int):
        self.drafter = drafter
        self.max_rows = max_rows
        self.fed: list[list[int]] = [[]]
        self.pending = [[first]]
        self.proposed = [0]  # the length of the draft whose rest is `fed`
        self.accepted = [0]

    def logprobs(self) -> torch.Tensor:
        return torch.stack([q[0] for q in self.pending])

    def advance(self, batch, p: _Particles, parents, last, holders, counts: Counts, max_tokens: int) -> None:
        """The new rows (`batch` already selected): a row whose token is the next of its parent's draft takes the
        distributions there; the others cut the rest of the draft and are fed the token and a new draft, in one
        forward pass if any."""
        drafter = self.drafter
        fed, pending, proposed, accepted = [], [], [], []
        keep = list(batch.lengths)
        feed: list[list[int] | None] = [None] * len(parents)
        for j, (r, token) in enumerate(zip(parents, last)):
            draft = self.fed[r]
            if draft and draft[0] == token:
                fed.append(draft[1:])
                pending.append(self.pending[r][1:])
                proposed.append(self.proposed[r])
                accepted.append(self.accepted[r] + 1)
                counts.drafts_accepted += 1
                if not draft[1:]:
                    drafter.update(0, self.proposed[r], self.proposed[r])
                continue
            if draft:
                drafter.update(0, self.proposed[r], self.accepted[r])
                keep[j] -= len(draft)
            feed[j] = [token]
            fed.append([])
            pending.append([])
            proposed.append(0)
            accepted.append(0)
        if keep != batch.lengths:
            batch.truncate(keep)
        need = [j for j, f in enumerate(feed) if f is not None]
        if need:
            drafter.observe([p.tokens[i] for i in holders])
            # a step skips its forward only when every row's draft holds: with one row a draft pays as in masking;
            # with several it rarely repays the wider forward on CPU (benchmarks/drafts.py)
            for j in need if len(parents) <= self.max_rows else ():
                i = holders[j]
                draft = drafter.propose(0, p.states[i], p.tokens[i], max_tokens - len(p.tokens[i]) - 1)
                fed[j], proposed[j] = draft, len(draft)
                feed[j] = [last[j], *draft]
                counts.drafts_proposed += len(draft)
            batch.extend(feed, keep_all=True)
            counts.model_calls += 1
            counts.rows += len(need)
            recent = batch.recent
            for j in need:
                pending[j] = list(recent[j])
        self.fed, self.pending, self.proposed, self.accepted = fed, pending, proposed, accepted


def _masked_step(logp: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> tuple[int, float]:
    """A token drawn from p restricted to `allowed`, and the exact log of the allowed mass (-1, -inf if none)."""
    idx = np.flatnonzero(allowed)
    if len(idx) == 0:
        return -1, -np.inf
    lp = logp[idx]
    top = np.max(lp)
    if top == -np.inf:
        return -1, -np.inf
    w = np.exp(lp - top)
    total = w.sum()
    token = int(idx[min(np.searchsorted(np.cumsum(w), rng.random() * total, side="right"), len(idx) - 1)])
    return token, float(top + math.log(total))
