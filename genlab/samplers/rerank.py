"""Sample-rerank: N unconstrained samples from the model, kept when the whole text satisfies the constraint.

Exact in distribution (a kept sample is a draw from p(x | x in L)) but wasteful: the expected number of samples
per valid output is 1 / P(x in L). The fraction kept is an unbiased estimate of P(x in L).
"""

from __future__ import annotations

import time

import numpy as np

from genlab.constraints.base import Constraint
from genlab.models.base import LanguageModel
from genlab.samplers.masking import sample_rows
from genlab.samplers.prompt import Prompt, prepare
from genlab.samplers.result import GenerationResult, Progress, Sample
from genlab.samplers.smc import Critic


class _Unconstrained:
    """A matcher that allows every token (its mask is None: nothing to restrict): masking's draw loop with it draws
    from the model itself."""

    def __init__(self, vocab):
        self.vocab = vocab

    def start(self):
        return 0

    def advance(self, state, token: int):
        return state

    def allows(self, state, token: int) -> bool:
        return True

    def mask(self, state) -> None:
        return None

    def forced_bytes(self, state, limit: int = 64) -> bytes:
        return b""


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
    drafts: bool = False,
    max_draft: int = 8,
    heal: bool | None = False,
) -> GenerationResult:
    """n free samples; those that end with EOS and pass `constraint.check` (and the critic) are complete, weighted
    by the critic's log-weight (0 without one); the rest are incomplete and excluded from the posterior. A special
    token other than EOS ends a sample, incomplete. `progress(round, running)` is called after each round of draws,
    if given (progress bars).

    The draws are masking's loop with every token allowed (one random stream per row, by inversion), so `drafts`
    (copies from the prompt and the other samples; there is no constraint to force text) change no output.
    `heal`: token healing, as in `smc`; a sample is then kept when it starts with the healed bytes and the rest
    passes (free samples rarely do after a prompt cut mid-word)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t0 = time.perf_counter()
    vocab = lm.vocab
    start = prepare(lm, prompt, heal)
    special = frozenset(np.flatnonzero(~np.asarray(vocab.is_text, np.bool_)).tolist()) - vocab.eos_ids
    rows = sample_rows(
        lm,
        _Unconstrained(vocab),
        start.ids,
        n,
        max_tokens + start.removed,
        temperature,
        False,
        seed,
        progress,
        drafts,
        max_draft,
        stop_ids=special,
    )
    counts = rows.counts
    samples = []
    for i in range(n):
        whole = vocab.decode(rows.tokens[i])
        data = start.output(whole)
        ended = rows.complete[i]
        ok = ended and whole.startswith(start.healed) and constraint.check(data)
        counts.checks += int(ended)
        log_w = 0.0
        if ok and critic is not None:
            log_w = critic(data.decode("utf-8", errors="replace"), True)
            ok = log_w != float("-inf")
        samples.append(Sample(tuple(rows.tokens[i]), data, log_w, bool(ok)))
    counts.wall_time = time.perf_counter() - t0
    return GenerationResult(
        "rerank", samples, counts, end_checks=constraint.end_checks, parser=constraint.parse, healed=start.healed
    )
