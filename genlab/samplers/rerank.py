"""Sample-rerank: N unconstrained samples from the model, kept when the whole text satisfies the constraint.

Exact in distribution (a kept sample is a draw from p(x | x in L)) but wasteful: the expected number of samples
per valid output is 1 / P(x in L). The fraction kept is an unbiased estimate of P(x in L).
"""

from __future__ import annotations

import time

import torch

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.prompt import Prompt, prompt_ids
from genlab.samplers.result import Counts, GenerationResult, Progress, Sample
from genlab.samplers.smc import Critic


def sample_rerank(
    lm: LanguageModel,
    constraint: Constraint,
    prompt: Prompt,
    *,
    n: int = 8,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int | None = None,
    critic: Critic | None = None,
    progress: Progress | None = None,
) -> GenerationResult:
    """n free samples; those that end with EOS and pass `constraint.check` (and the critic) are complete, weighted
    by the critic's log-weight (0 without one); the rest are incomplete and excluded from the posterior.
    `progress(step, running)` is called after each step, if given (progress bars)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t0 = time.perf_counter()
    vocab = lm.vocab
    generator = torch.Generator(device=lm.device)
    if seed is not None:
        generator.manual_seed(seed)
    batch = lm.prefill(prompt_ids(lm, prompt), n)
    counts = Counts(model_calls=1)
    tokens: list[list[int]] = [[] for _ in range(n)]
    ended = [False] * n
    for step in range(max_tokens):
        active = [i for i in range(n) if not ended[i]]
        if not active:
            break
        probs = torch.softmax(batch.logprobs()[active] / temperature, dim=-1)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1).tolist()
        moves: list[int | None] = [None] * n
        for i, token in zip(active, chosen):
            counts.tokens += 1
            if token in vocab.eos_ids:
                ended[i] = True
            elif not vocab.is_text[token]:  # a special token inside the text: never valid output
                ended[i] = True
                tokens[i].append(token)
            else:
                tokens[i].append(token)
                moves[i] = token
        if any(m is not None for m in moves):
            batch.extend(moves)
            counts.model_calls += 1
            counts.rows += batch.size
        if progress is not None:
            progress(step + 1, n - sum(ended))
    samples = []
    for i in range(n):
        data = vocab.decode(tokens[i])
        ok = ended[i] and all(vocab.is_text[t] for t in tokens[i]) and constraint.check(data)
        counts.checks += int(ended[i])
        log_w = 0.0
        if ok and critic is not None:
            log_w = critic(data.decode("utf-8", errors="replace"), True)
            ok = log_w != float("-inf")
        samples.append(Sample(tuple(tokens[i]), data, log_w, bool(ok)))
    counts.wall_time = time.perf_counter() - t0
    return GenerationResult("rerank", samples, counts, end_checks=constraint.end_checks, parser=constraint.parse)
