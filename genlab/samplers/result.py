"""The result every sampler returns: weighted samples, the log marginal likelihood estimate, and counts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Sample:
    """One generated sequence. `log_weight` is its importance weight against the target p(x | x in L)."""

    token_ids: tuple[int, ...]
    data: bytes
    log_weight: float
    complete: bool  # ended with EOS in a final state; False when cut short by max_tokens
    # False when the output ended but failed the constraint's end-of-output check (its weight is then 0)
    valid: bool = True

    @property
    def text(self) -> str:
        """The output as text (an incomplete output may end inside a character: shown as U+FFFD)."""
        return self.data.decode("utf-8", errors="replace")


@dataclass
class Counts:
    """What a run cost: model forward passes, constraint checks (`allows`), masks, tokens, wall time."""

    model_calls: int = 0
    checks: int = 0
    masks: int = 0
    tokens: int = 0
    wall_time: float = 0.0


@dataclass
class GenerationResult:
    """Weighted samples from one sampler run, the same type for every method.

    `log_marginal` estimates log P(x in L) under the model: the log of the mean weight over samples, where an
    incomplete sample counts as weight 0 (it never reached a final state).
    """

    method: str
    samples: list[Sample]
    counts: Counts = field(default_factory=Counts)
    ess_history: list[float] = field(default_factory=list)
    # per sample, the log allowed mass at each step (masking only: the exact log Z_t the weight is made of)
    step_log_z: list[list[float]] | None = None
    # the constraint's conditions checked only on finished outputs (e.g. JSON Schema's uniqueItems)
    end_checks: tuple[str, ...] = ()
    parser: Callable[[str], Any] | None = field(default=None, repr=False)

    @property
    def parsed(self) -> list[Any]:
        """Each sample's output as a value (`Constraint.parse`: JSON values, Pydantic model instances); None for
        samples that are incomplete or invalid."""
        parse = self.parser or (lambda text: text)
        return [parse(s.text) if s.complete and s.valid else None for s in self.samples]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.samples]

    @property
    def token_ids(self) -> list[tuple[int, ...]]:
        return [s.token_ids for s in self.samples]

    @property
    def log_weights(self) -> list[float]:
        return [s.log_weight for s in self.samples]

    @property
    def complete(self) -> list[bool]:
        return [s.complete for s in self.samples]

    @property
    def log_marginal(self) -> float:
        logs = [s.log_weight if s.complete else -math.inf for s in self.samples]
        top = max(logs, default=-math.inf)
        if top == -math.inf:
            return -math.inf
        return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))

    def text_posterior(self) -> dict[str, float]:
        """Normalised weight of each distinct complete text (summed over samples and tokenizations)."""
        out: dict[str, float] = {}
        for sample, p in zip(self.samples, self.posterior):
            if sample.complete and p > 0:
                out[sample.text] = out.get(sample.text, 0.0) + p
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def posterior(self) -> list[float]:
        """Normalised weights of the samples (incomplete ones get 0)."""
        logs = [s.log_weight if s.complete else -math.inf for s in self.samples]
        top = max(logs, default=-math.inf)
        if top == -math.inf:
            return [0.0] * len(logs)
        w = [math.exp(x - top) for x in logs]
        total = sum(w)
        return [x / total for x in w]
