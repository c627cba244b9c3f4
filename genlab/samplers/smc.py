"""Sequential Monte Carlo over token sequences, with AWRS (or exact masking) proposals and optional critics.

N particles share one batched KV cache. Each step makes one model call for every live particle; each particle
draws its next token from p restricted to the constraint (AWRS: by rejection, with an unbiased estimate of the
allowed mass Z; "mask": exactly, with the exact Z) and multiplies its weight by that estimate. When the
effective sample size falls below `ess_threshold * N` the particles are resampled; the KV cache rows are forked
and dropped with them, so no prefix is ever recomputed. After resampling every particle carries the mean
weight, so the mean of the final weights is the SMC estimate of P(x in L) (Del Moral 2004; Naesseth et al. 2019).

A critic is an expensive check `critic(text, complete) -> log-weight` (-inf kills): on prefixes it acts as a
twist (the weight takes the ratio of successive critic values), on complete texts as the final score. The
constraint's own checks beyond its matcher apply too: a particle whose finished parts fail `check_prefix` is
dropped at once, and one that ends failing `validate` gets weight 0 (e.g. JSON Schema's uniqueItems).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.awrs import AWRS, Memo
from genlab.samplers.prompt import Prompt, prompt_ids
from genlab.samplers.result import Counts, GenerationResult, Progress, Sample

Critic = Callable[[str, bool], float]
RESAMPLING = ("stratified", "systematic", "multinomial", "residual")
_MEMO_LIMIT = 1_000_000  # verdicts kept per run before the memo starts afresh


def ess(log_weights: np.ndarray) -> float:
    """Effective sample size (sum w)^2 / sum w^2 of unnormalised log weights; 0 when every weight is 0."""
    top = np.max(log_weights)
    if top == -np.inf:
        return 0.0
    w = np.exp(log_weights - top)
    return float(w.sum() ** 2 / (w**2).sum())


def resample(log_weights: np.ndarray, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """N ancestor indices drawn in proportion to the weights (`scheme` is one of RESAMPLING)."""
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
        raise ValueError(f"unknown resampling scheme {scheme!r}; choose one of {RESAMPLING}")
    return np.searchsorted(cdf, u, side="left").clip(0, n - 1)


def _text(data: bytes) -> str:
    """Decoded text of a prefix; an unfinished UTF-8 character at the end is left out."""
    return data.decode("utf-8", errors="ignore")


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
    resampling: str = "stratified",
    critic: Critic | None = None,
    keep_weights: bool = True,
    progress: Progress | None = None,
    device_candidates: bool | None = None,
) -> GenerationResult:
    """SMC with N particles; see the module docstring. `ess_threshold=0` never resamples (importance sampling).

    `keep_weights=False` drops the weights (every complete sample weighs the same): with AWRS proposals and no
    resampling that is locally constrained decoding by rejection, the unweighted baseline. `progress(step, running)`
    is called after each step, if given (progress bars). `estimator`, `max_rejections` and `skip_tolerance` are
    AWRS's (see `genlab.samplers.awrs`). `device_candidates` (default: when the model is not on
    the CPU, with a recursive estimator) keeps each step's log-probs on the model's device and brings to the host
    only the candidates AWRS checks (`AWRS.step_on_device`).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if proposal not in ("awrs", "mask"):
        raise ValueError(f"proposal must be 'awrs' or 'mask', got {proposal!r}")
    if resampling not in RESAMPLING:
        raise ValueError(f"unknown resampling scheme {resampling!r}; choose one of {RESAMPLING}")
    if not keep_weights and ess_threshold > 0:
        raise ValueError("keep_weights=False is the unweighted baseline: it cannot resample (ess_threshold=0)")
    t0 = time.perf_counter()
    n = n_particles
    vocab = lm.vocab
    matcher = constraint.compile(vocab)
    rng = np.random.default_rng(seed)
    sampler = AWRS(estimator=estimator, max_rejections=max_rejections, skip_tolerance=skip_tolerance)
    batch = lm.prefill(prompt_ids(lm, prompt), n)
    counts = Counts(model_calls=1)
    states = [matcher.start()] * n
    memo = Memo()  # verdicts and fetched masks by state, shared by the particles (see awrs.py)
    tokens: list[list[int]] = [[] for _ in range(n)]
    data = [b""] * n
    logw = np.zeros(n)
    twist = np.zeros(n)
    done = np.zeros(n, np.bool_)
    complete = np.zeros(n, np.bool_)
    valid = np.ones(n, np.bool_)
    history = [float(n)]
    for t in range(max_tokens):
        active = np.flatnonzero(~done)
        if len(active) == 0:
            break
        logp = batch.logprobs()[torch.from_numpy(active)].double()
        if temperature != 1.0:
            logp = torch.log_softmax(logp / temperature, dim=-1)
        on_device = proposal == "awrs" and estimator != "two-pass" and (
            device_candidates if device_candidates is not None else logp.device.type != "cpu")
        if not on_device:
            logp = logp.cpu().numpy()
        moves: list[int | None] = [None] * n
        for row, i in enumerate(active):
            if proposal == "awrs":
                if memo.size > _MEMO_LIMIT:  # bound the memo's memory: start it afresh
                    memo = Memo()
                take = sampler.step_on_device if on_device else sampler.step
                step = take(logp[row], matcher, states[i], rng, memo)
                token, log_z = step.token, step.log_weight
                counts.checks += step.checks
                counts.mask_hits += step.cached
            else:
                token, log_z = _masked_step(logp[row], matcher.mask(states[i]), rng)
                counts.masks += 1
            counts.tokens += 1
            logw[i] += log_z
            if token < 0:  # nothing allowed here: the particle dies
                done[i] = True
                logw[i] = -np.inf
                continue
            if token in vocab.eos_ids:
                done[i] = complete[i] = True
                if not constraint.validate(_text(data[i])):
                    logw[i] = -np.inf
                    valid[i] = False
                if critic is not None:
                    logw[i] += critic(_text(data[i]), True) - twist[i]
                continue
            states[i] = matcher.advance(states[i], token)
            tokens[i].append(token)
            data[i] += vocab.token_bytes[token]
            moves[i] = token
            if not constraint.check_prefix(_text(data[i])):  # a finished part already fails: no completion passes
                logw[i] = -np.inf
                done[i] = True
                moves[i] = None
                continue
            if critic is not None:
                phi = critic(_text(data[i]), False)
                logw[i] += phi - twist[i]
                twist[i] = phi
                if phi == -np.inf:
                    done[i] = True
                    moves[i] = None
        if any(m is not None for m in moves):
            batch.extend(moves)
            counts.model_calls += 1
        current = ess(logw)
        history.append(current)
        if ess_threshold > 0 and current < ess_threshold * n and current > 0 and not done.all():
            ancestors = resample(logw, resampling, rng)
            top = np.max(logw)
            mean = top + math.log(np.mean(np.exp(logw - top)))
            batch.select(ancestors.tolist())
            states = [states[a] for a in ancestors]
            tokens = [list(tokens[a]) for a in ancestors]
            data = [data[a] for a in ancestors]
            twist, done, complete, valid = twist[ancestors], done[ancestors], complete[ancestors], valid[ancestors]
            logw = np.full(n, mean)
        if progress is not None:
            progress(t + 1, int((~done).sum()))
    if not keep_weights:
        logw = np.where(complete & valid, 0.0, -np.inf)
    samples = [Sample(tuple(tokens[i]), data[i], float(logw[i]), bool(complete[i]), bool(valid[i])) for i in range(n)]
    counts.wall_time = time.perf_counter() - t0
    name = f"{'smc' if ess_threshold > 0 else 'is'}-{proposal}" if keep_weights else f"unweighted-{proposal}"
    return GenerationResult(name, samples, counts, ess_history=history, end_checks=constraint.end_checks,
                            parser=constraint.parse)


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
