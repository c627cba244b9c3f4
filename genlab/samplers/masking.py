"""Token masking ("locally constrained decoding"): the baseline sampler.

Each step restricts the model's next-token distribution p to the tokens the matcher allows and renormalises:
q(x_t) = p(x_t) 1[allowed] / Z_t. That makes every output valid, but as a sampler of whole sequences it draws
from prod_t p(x_t)/Z_t rather than the target p(x | x in L). Its importance weight against that target is known
exactly, w = prod_t Z_t, and is returned with each sample so masking can be compared with (and corrected
towards) the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.drafts import Drafter
from genlab.samplers.prompt import Prompt, prepare
from genlab.samplers.result import Counts, GenerationResult, Progress, Sample


def masked_sampling(
    lm: LanguageModel,
    constraint: Constraint,
    prompt: Prompt,
    *,
    n: int = 1,
    max_tokens: int = 64,
    temperature: float = 1.0,
    greedy: bool = False,
    seed: int | None = None,
    progress: Progress | None = None,
    drafts: bool = False,
    max_draft: int = 8,
    heal: bool | None = False,
) -> GenerationResult:
    """n independent masked samples (or greedy decodes) after `prompt`, batched through one KV cache.

    Temperature divides the logits before masking. Each sample carries log w = sum_t log Z_t, Z_t being the
    allowed mass of the tempered distribution at step t; `result.step_log_z` holds the terms. Outputs that end
    but fail the constraint's end-of-output check (`Constraint.validate`) are marked invalid, with weight 0.
    `progress(round, running)` is called after each round of draws, if given (progress bars).

    Each row draws its tokens by inversion from a random stream of its own (one uniform per token), so a seeded
    run gives the same outputs with `drafts` on or off: drafts (`genlab.samplers.drafts`) only let one forward
    pass serve several tokens; `counts` reports the draft tokens proposed and accepted. `heal`: token healing, as
    in `smc` (`genlab.samplers.prompt`).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
    t0 = time.perf_counter()
    vocab = lm.vocab
    start = prepare(lm, prompt, heal)
    matcher = start.matcher(constraint.compile(vocab))
    rows = sample_rows(
        lm, matcher, start.ids, n, max_tokens + start.removed, temperature, greedy, seed, progress, drafts, max_draft
    )
    samples = []
    for i in range(n):
        data = start.output(vocab.decode(rows.tokens[i]))
        valid = not rows.complete[i] or constraint.validate(_text(data))
        log_w = float(sum(rows.log_z[i])) if valid else -np.inf
        samples.append(Sample(tuple(rows.tokens[i]), data, log_w, rows.complete[i], valid))
    rows.counts.wall_time = time.perf_counter() - t0
    return GenerationResult(
        "greedy-mask" if greedy else "mask",
        samples,
        rows.counts,
        step_log_z=rows.log_z,
        end_checks=constraint.end_checks,
        parser=constraint.parse,
        healed=start.healed,
    )


@dataclass
class Rows:
    """What `sample_rows` drew: per row its tokens (EOS or the stopping token left out), the log allowed mass of
    each draw, and whether it ended with EOS; the counts of the run."""

    tokens: list[list[int]]
    log_z: list[list[float]]
    complete: list[bool]
    counts: Counts


def sample_rows(
    lm: LanguageModel,
    matcher,
    ids: list[int],
    n: int,
    max_tokens: int,
    temperature: float,
    greedy: bool,
    seed: int | None,
    progress: Progress | None,
    drafts: bool,
    max_draft: int,
    stop_ids: frozenset[int] = frozenset(),
) -> Rows:
    """The draw loop of masking (and of rerank, whose matcher allows everything): n rows, each drawing by inversion
    from its own random stream from p restricted to `matcher`'s mask (None: unrestricted), with drafts verified in
    the same forwards, after the prompt `ids`. A row ends at EOS (complete), at a token of `stop_ids`
    (incomplete), when nothing is allowed, or at `max_tokens`."""
    vocab = lm.vocab
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    batch = lm.prefill(ids, n)
    counts = Counts(model_calls=1)
    drafter = Drafter.for_model(lm, matcher, ids, n, max_draft) if drafts else None
    states = [matcher.start()] * n
    tokens: list[list[int]] = [[] for _ in range(n)]
    log_z: list[list[float]] = [[] for _ in range(n)]
    done = [False] * n
    complete = [False] * n
    first = batch.logprobs()
    pending: list[list[torch.Tensor]] = [[first[i]] for i in range(n)]  # distributions not yet drawn from, per row
    fed: list[list[int]] = [[] for _ in range(n)]  # the draft each row was fed after its last drawn token
    rounds = 0  # each draws at least one token of every running row
    while not all(done):
        feed: list[list[int] | None] = [None] * n
        keep = list(batch.lengths)
        for i in range(n):
            if done[i]:
                continue
            accepted = 0
            for j, logp in enumerate(pending[i]):
                if len(tokens[i]) == max_tokens:  # cut short: incomplete
                    done[i] = True
                    break
                allowed = matcher.mask(states[i])
                token, z = _draw(logp, allowed, temperature, greedy, streams[i])
                counts.masks += allowed is not None
                counts.tokens += 1
                log_z[i].append(z)
                if token < 0 or token in vocab.eos_ids or token in stop_ids:  # stuck, the end, or a stop
                    done[i] = True
                    complete[i] = token in vocab.eos_ids
                    break
                states[i] = matcher.advance(states[i], token)
                tokens[i].append(token)
                matched = j < len(fed[i]) and token == fed[i][j]  # the draft's token: its distribution is there
                accepted += matched
                if len(tokens[i]) == max_tokens:  # cut short: incomplete
                    done[i] = True
                    break
                if matched:
                    continue
                feed[i] = [token]
                break
            if drafter is not None and fed[i]:
                drafter.update(i, len(fed[i]), accepted)
                counts.drafts_accepted += accepted
            keep[i] -= len(fed[i]) - accepted  # the rest of the draft is cut
            fed[i] = []
        if drafter is not None:
            drafter.observe(tokens)
            for i in range(n):
                head = feed[i]
                if done[i] or head is None:
                    continue
                fed[i] = drafter.propose(i, states[i], tokens[i], max_tokens - len(tokens[i]) - 1)
                counts.drafts_proposed += len(fed[i])
                feed[i] = head + fed[i]
        if keep != batch.lengths:
            batch.truncate(keep)
        rounds += 1
        if progress is not None:
            progress(rounds, n - sum(done))
        if all(f is None for f in feed):
            break
        batch.extend(feed, keep_all=drafter is not None)
        counts.model_calls += 1
        counts.rows += sum(f is not None for f in feed)
        recent = batch.recent
        if recent is not None:
            pending = [list(r) for r in recent]
        else:
            fresh = batch.logprobs()
            pending = [[fresh[i]] if feed[i] is not None else [] for i in range(n)]
    return Rows(tokens, log_z, complete, counts)


def _draw(
    logp: torch.Tensor, allowed: np.ndarray | None, temperature: float, greedy: bool, stream: np.random.Generator
) -> tuple[int, float]:
    """A token of p restricted to `allowed` (None: every token; argmax when greedy, else by inversion of one uniform
    from `stream`) and log Z, the allowed mass; (-1, -inf) when nothing allowed has mass."""
    logp = logp.double()
    if temperature != 1.0:
        logp = torch.log_softmax(logp / temperature, dim=-1)
    if allowed is None:
        masked = logp
    else:
        ok = torch.from_numpy(np.array(allowed, dtype=bool)).to(logp.device)  # a writable copy
        masked = logp.masked_fill(~ok, -torch.inf)
    log_z = float(torch.logsumexp(masked, 0))
    if log_z == -np.inf:
        return -1, -np.inf
    if greedy:
        return int(torch.argmax(masked)), log_z
    cdf = torch.cumsum(torch.exp(masked - log_z), 0)
    u = torch.tensor([stream.random() * float(cdf[-1])], dtype=cdf.dtype, device=cdf.device)
    token = int(torch.searchsorted(cdf, u, right=True).clamp(max=len(cdf) - 1))
    while masked[token] == -torch.inf:  # past the last allowed token by rounding
        token -= 1
    return token, log_z


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
