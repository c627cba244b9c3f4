"""`genlab.generate`: one call from a model, a prompt and a constraint to weighted, valid outputs."""

from __future__ import annotations

import os

from genlab.constraints.base import Constraint
from genlab.samplers.prompt import Prompt
from genlab.samplers.result import GenerationResult

METHODS = ("smc", "smc-mask", "awrs", "mask", "rejection", "rerank")


def generate(
    model,
    prompt: Prompt,
    constraint: Constraint,
    *,
    method: str = "smc",
    n_particles: int = 8,
    ess_threshold: float = 0.5,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int | None = None,
    **options,
) -> GenerationResult:
    """Sample outputs of `model` after `prompt` that satisfy `constraint`.

    `model`: an `HFModel`, a local model folder, or None for the default model. `prompt`: text, token ids, or
    chat messages (`[{"role": "user", "content": ...}]`, put through the chat template). Methods:

    - "smc" (default): SMC with AWRS proposals, which targets p(x | x in L), the model's own conditional;
    - "smc-mask": SMC with exact masking proposals; "awrs": AWRS importance sampling without resampling;
    - "mask": token masking (locally renormalised; weights say how far it is from the target);
    - "rejection": locally constrained decoding by rejection, unweighted; "rerank": free samples, filtered.

    `options` go to the sampler (e.g. `estimator`, `max_rejections`, `resampling`, `critic` for SMC).
    """
    from genlab.models import HFModel, load
    from genlab.samplers.masking import masked_sampling
    from genlab.samplers.rerank import sample_rerank
    from genlab.samplers.smc import smc

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    lm = model if isinstance(model, HFModel) else load(model if model is None else os.fspath(model))
    common = dict(max_tokens=max_tokens, temperature=temperature, seed=seed)
    if method == "mask":
        return masked_sampling(lm, constraint, prompt, n=n_particles, **common, **options)
    if method == "rerank":
        return sample_rerank(lm, constraint, prompt, n=n_particles, **common, **options)
    if method == "rejection":
        return smc(lm, constraint, prompt, n_particles=n_particles, ess_threshold=0.0, keep_weights=False,
                   **common, **options)
    threshold = 0.0 if method == "awrs" else ess_threshold
    proposal = "mask" if method == "smc-mask" else "awrs"
    return smc(lm, constraint, prompt, n_particles=n_particles, ess_threshold=threshold, proposal=proposal,
               **common, **options)
