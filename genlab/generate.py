"""`genlab.generate`: one call from a model, a prompt and a constraint to weighted, valid outputs."""

from __future__ import annotations

import os
from typing import Any

from genlab.constraints.base import Constraint
from genlab.constraints.json_schema import JsonSchema
from genlab.constraints.regex import Regex
from genlab.samplers.prompt import Prompt
from genlab.samplers.result import GenerationResult

METHODS = ("smc", "smc-mask", "awrs", "mask", "rejection", "rerank")
# where drafts are on unless asked otherwise: the methods for which benchmarks/drafts.py measured a speed-up on CPU
DRAFTS_BY_DEFAULT = frozenset({"mask"})


def generate(
    model,
    prompt: Prompt,
    constraint: Constraint | str | type | dict,
    *,
    method: str = "smc",
    n_particles: int = 8,
    ess_threshold: float = 0.5,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int | None = None,
    drafts: bool | None = None,
    heal: bool | None = None,
    **options,
) -> GenerationResult:
    """Sample outputs of `model` after `prompt` that satisfy `constraint`.

    `model`: an `HFModel`, a `(transformers model, tokenizer)` pair, a local model folder or known model name, or
    None for the default model. `prompt`: text, token ids, or chat messages (`[{"role": "user", "content": ...}]`,
    put through the chat template). `constraint`: a `Constraint`, a `str` (a `Regex`), or a JSON Schema dict or
    Pydantic model class (a `JsonSchema`). Methods:

    - "smc" (default): SMC with AWRS proposals, which targets p(x | x in L), the model's own conditional;
    - "smc-mask": SMC with exact masking proposals; "awrs": AWRS importance sampling without resampling;
    - "mask": token masking (locally renormalised; weights say how far it is from the target);
    - "rejection": locally constrained decoding by rejection, unweighted; "rerank": free samples, filtered.

    `drafts` (`genlab.samplers.drafts`): verify guessed tokens (forced by the constraint, or copied from the
    prompt or other samples) several per forward pass; the draws and their law are the same either way, only the
    number of forwards changes. None (default) turns them on where they were measured to pay (`DRAFTS_BY_DEFAULT`:
    masking).

    `heal` (`genlab.samplers.prompt`): token healing. A text prompt's last tokens that a vocabulary token could run
    past ("The sky is " ends in a lone space token, "https://exa" in "a") are backed off, and every output is
    generated to start with their bytes, so the model reads a boundary it was trained on and the target is its
    distribution over text given the prompt text. The outputs leave those bytes out; `result.healed` has them.
    None (default) heals text prompts, not token ids or chat messages (a chat model was tuned on its template's
    own tokens).

    `options` go to the sampler (e.g. `estimator`, `max_rejections`, `resampling` ("optimal", the default, or a
    classic scheme), `share_rows`, `critic` for SMC; `max_draft`; `progress(step, running)`, a per-step hook, for
    any method).

    A pair is wrapped anew on every call (the vocabulary is rebuilt and the constraint recompiled): to generate
    many times, wrap it once with `genlab.HFModel(model, tokenizer)` and pass that.
    """
    from genlab.samplers.masking import masked_sampling
    from genlab.samplers.rerank import sample_rerank
    from genlab.samplers.smc import smc

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    constraint = as_constraint(constraint)
    lm = as_model(model)
    common: dict[str, Any] = dict(max_tokens=max_tokens, temperature=temperature, seed=seed)
    common["drafts"] = method in DRAFTS_BY_DEFAULT if drafts is None else drafts
    common["heal"] = heal
    if method == "rerank":
        return sample_rerank(lm, constraint, prompt, n=n_particles, **common, **options)
    if method == "mask":
        return masked_sampling(lm, constraint, prompt, n=n_particles, **common, **options)
    if method == "rejection":
        return smc(
            lm, constraint, prompt, n_particles=n_particles, ess_threshold=0.0, keep_weights=False, **common, **options
        )
    threshold = 0.0 if method == "awrs" else ess_threshold
    proposal = "mask" if method == "smc-mask" else "awrs"
    return smc(
        lm, constraint, prompt, n_particles=n_particles, ess_threshold=threshold, proposal=proposal, **common, **options
    )


def as_constraint(constraint: Constraint | str | type | dict) -> Constraint:
    """A `Constraint` as given; a `str` as `Regex(str)`; a Pydantic model class or a JSON Schema dict as
    `JsonSchema(...)`."""
    if isinstance(constraint, Constraint):
        return constraint
    if isinstance(constraint, str):
        return Regex(constraint)
    if isinstance(constraint, dict) or (
        isinstance(constraint, type) and callable(getattr(constraint, "model_json_schema", None))
    ):
        return JsonSchema(constraint)
    raise TypeError(
        f"constraint must be a genlab Constraint, a regex string, a JSON Schema dict or a Pydantic model class, "
        f"not {type(constraint).__name__}"
    )


def as_model(model):
    """An `HFModel` (or any `LanguageModel`, e.g. a `SharedModel`) as given; a `(transformers model, tokenizer)`
    pair wrapped; a path, known model name or None (the default model) loaded."""
    from genlab.models import HFModel, LanguageModel, load

    if isinstance(model, (HFModel, LanguageModel)):
        return model
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError(f"a model given as a tuple must be (transformers model, tokenizer), got {len(model)} items")
        return HFModel(*model)
    return load(model if model is None else os.fspath(model))
