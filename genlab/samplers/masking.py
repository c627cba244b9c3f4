"""Token masking ("locally constrained decoding"): the baseline sampler.

Each step restricts the model's next-token distribution p to the tokens the matcher allows and renormalises:
q(x_t) = p(x_t) 1[allowed] / Z_t. That makes every output valid, but as a sampler of whole sequences it draws
from prod_t p(x_t)/Z_t rather than the target p(x | x in L). Its importance weight against that target is known
exactly, w = prod_t Z_t, and is returned with each sample so masking can be compared with (and corrected
towards) the target.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.prompt import Prompt, prompt_ids
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
) -> GenerationResult:
    """n independent masked samples (or greedy decodes) after `prompt`, batched through one KV cache.

    Temperature divides the logits before masking. Each sample carries log w = sum_t log Z_t, Z_t being the
    allowed mass of the tempered distribution at step t; `result.step_log_z` holds the terms. Outputs that end
    but fail the constraint's end-of-output check (`Constraint.validate`) are marked invalid, with weight 0.
    `progress(step, running)` is called after each step, if given (progress bars).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
    t0 = time.perf_counter()
    vocab = lm.vocab
    matcher = constraint.compile(vocab)
    generator = torch.Generator(device=lm.device)
    if seed is not None:
        generator.manual_seed(seed)
    batch = lm.prefill(prompt_ids(lm, prompt), n)
    counts = Counts(model_calls=1)
    states = [matcher.start()] * n
    tokens: list[list[int]] = [[] for _ in range(n)]
    log_z: list[list[float]] = [[] for _ in range(n)]
    done = [False] * n
    complete = [False] * n
    for step in range(max_tokens):
        active = [i for i in range(n) if not done[i]]
        if not active:
            break
        logp = batch.logprobs()[active]
        if temperature != 1.0:
            logp = torch.log_softmax(logp / temperature, dim=-1)
        allowed = torch.from_numpy(np.stack([matcher.mask(states[i]) for i in active])).to(logp.device)
        counts.masks += len(active)
        masked = logp.masked_fill(~allowed, -torch.inf)
        step_z = torch.logsumexp(masked, dim=-1)
        stuck = torch.isinf(step_z)
        if bool(stuck.any()):  # a live state no token can continue (the vocabulary lacks a needed byte)
            masked[stuck] = 0.0
        if greedy:
            chosen = masked.argmax(dim=-1)
        else:
            probs = torch.softmax(masked, dim=-1)
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        moves: list[int | None] = [None] * n
        for row, token, z in zip(active, chosen.tolist(), step_z.tolist()):
            log_z[row].append(z)
            if z == -np.inf or token in vocab.eos_ids:
                done[row] = True
                complete[row] = z != -np.inf
                continue
            states[row] = matcher.advance(states[row], token)
            tokens[row].append(token)
            moves[row] = token
        counts.tokens += len(active)
        if any(m is not None for m in moves):
            batch.extend(moves)
            counts.model_calls += 1
            counts.rows += batch.size
        if progress is not None:
            progress(step + 1, n - sum(done))
    samples = []
    for i in range(n):
        data = vocab.decode(tokens[i])
        valid = not complete[i] or constraint.validate(_text(data))
        log_w = float(sum(log_z[i])) if valid else -np.inf
        samples.append(Sample(tuple(tokens[i]), data, log_w, complete[i], valid))
    counts.wall_time = time.perf_counter() - t0
    return GenerationResult(
        "greedy-mask" if greedy else "mask",
        samples,
        counts,
        step_log_z=log_z,
        end_checks=constraint.end_checks,
        parser=constraint.parse,
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
