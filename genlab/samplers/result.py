"""The result every sampler returns: weighted samples, the log marginal likelihood estimate, and counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

# An optional per-step hook a sampler calls as `progress(steps_done, rows_still_running)` (progress bars).
Progress = Callable[[int, int], None]


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

    @property
    def status(self) -> str:
        """ "complete" (ended, valid), "invalid" (ended, failed the end-of-output check) or "incomplete"."""
        if not self.complete:
            return "incomplete"
        return "complete" if self.valid else "invalid"


@dataclass
class Counts:
    """What a run cost: model forward passes, constraint checks (`allows` calls that reached the matcher), masks
    fetched, AWRS steps exact on a mask the run fetched before (`mask_hits`: no checks), tokens, wall time, and
    `rows`: model rows forwarded, summed over the forward passes after the prompt's (SMC runs one row per distinct
    prefix, so rows / (model_calls - 1) is the mean batch size of a step)."""

    model_calls: int = 0
    checks: int = 0
    masks: int = 0
    tokens: int = 0
    wall_time: float = 0.0
    mask_hits: int = 0
    rows: int = 0
    drafts_proposed: int = 0  # draft tokens fed to the model for verification
    drafts_accepted: int = 0  # of those, drawn by the sampler as they were: forward passes saved


class DistinctOutput(NamedTuple):
    """One distinct output of a result: its text and status, how many samples gave it, their summed posterior."""

    text: str
    status: str
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the public field name
    weight: float


@dataclass(repr=False)
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
    # token healing: the bytes backed off the prompt, which every output was generated to start with and which
    # the samples leave out (b"" when the prompt was not healed)
    healed: bytes = b""

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

    @property
    def weighted(self) -> bool:
        """Whether the weights target p(x | x in L), so `log_marginal` estimates log P(x in L); False for the
        unweighted baselines (rejection, greedy masking), whose weights are all equal or not importance weights."""
        return not self.method.startswith(("unweighted", "greedy"))

    @property
    def ess(self) -> float:
        """Effective sample size of the final normalised weights, 1 / sum p_i^2 (0 when no sample counts)."""
        total = sum(p * p for p in self.posterior)
        return 1.0 / total if total > 0 else 0.0

    def distinct(self) -> list[DistinctOutput]:
        """The distinct (text, status) pairs with their sample counts and summed posterior weight, heaviest
        first (then most frequent): what `str(result)` tables."""
        rows: dict[tuple[str, str], list] = {}
        for sample, p in zip(self.samples, self.posterior):
            row = rows.setdefault((sample.text, sample.status), [0, 0.0])
            row[0] += 1
            row[1] += p
        out = [DistinctOutput(text, status, count, weight) for (text, status), (count, weight) in rows.items()]
        return sorted(out, key=lambda r: (-r.weight, -r.count, r.status != "complete"))

    def _finished(self) -> list[DistinctOutput]:
        """`distinct()`'s complete outputs that carry weight, heaviest first."""
        return [r for r in self.distinct() if r.status == "complete" and r.weight > 0]

    @property
    def ranked(self) -> list[tuple[Any, float]]:
        """The distinct complete, valid outputs as values (`parsed`'s: JSON values, Pydantic instances, texts) with
        their summed posterior weight, heaviest first."""
        parse = self.parser or (lambda text: text)
        return [(parse(r.text), r.weight) for r in self._finished()]

    @property
    def best(self) -> Any:
        """The output with the most posterior weight, as a value (see `ranked`); None when no output finished."""
        text = self.best_text
        return None if text is None else (self.parser or (lambda t: t))(text)

    @property
    def best_text(self) -> str | None:
        """The text of `best`; None when no output finished."""
        rows = self._finished()
        return rows[0].text if rows else None

    def unweighted(self) -> GenerationResult:
        """The same samples with equal weights: the outputs as a sampler's user reads them, by frequency (for
        masking, what the peers' users get; its weights say how far that is from the target)."""
        samples = [replace(s, log_weight=0.0 if s.complete and s.valid else -math.inf) for s in self.samples]
        return replace(self, method=f"unweighted-{self.method}", samples=samples)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: texts, log weights (None for -inf), posterior, statuses, parsed values (JSON
        values; Pydantic instances dumped), the log marginal (None when unweighted or -inf) and counts."""

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        parsed = []
        for value in self.parsed:
            dump = getattr(value, "model_dump", None)
            parsed.append(dump(mode="json") if callable(dump) else value)
        return {
            "method": self.method,
            "texts": self.texts,
            "log_weights": [finite(x) for x in self.log_weights],
            "posterior": self.posterior,
            "complete": self.complete,
            "valid": [s.valid for s in self.samples],
            "parsed": parsed,
            "log_marginal": finite(self.log_marginal) if self.weighted else None,
            "ess": self.ess,
            "ess_history": self.ess_history,
            "end_checks": list(self.end_checks),
            "healed": self.healed.decode("utf-8", errors="backslashreplace"),
            "counts": asdict(self.counts),
        }

    def summary(self) -> str:
        """One line: the log P(x in L) estimate, the final ESS and what the run cost."""
        c = self.counts
        if not self.weighted:
            estimate = "n/a (unweighted method)"
        else:
            estimate = f"{self.log_marginal:.3f}"
        return (
            f"log P(constraint) estimate {estimate}; ESS {self.ess:.1f} of {len(self.samples)}; "
            f"{c.model_calls} model calls ({c.rows} rows), {c.checks} checks, {c.masks} masks, "
            f"{f'{c.mask_hits} steps on fetched masks, ' if c.mask_hits else ''}{c.tokens} tokens, "
            f"{c.wall_time:.2f} s"
        )

    def table(self, limit: int = 10, width: int = 60) -> str:
        """The distinct outputs as a plain-text table (at most `limit` rows, texts shown as `repr` and cut to
        `width` characters)."""
        rows = self.distinct()
        lines = [f"{'weight':>7}  {'count':>5}  {'status':<10}  output"]
        for row in rows[:limit]:
            lines.append(f"{row.weight:7.3f}  {row.count:5d}  {row.status:<10}  {_shorten(repr(row.text), width)}")
        if len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more distinct outputs")
        return "\n".join(lines)

    def __str__(self) -> str:
        head = f"GenerationResult({self.method}, {len(self.samples)} samples, {len(self.distinct())} distinct outputs)"
        return "\n".join([head, self.table(), self.summary()])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """The same table for notebooks."""
        from html import escape

        rows = "".join(
            f"<tr><td style='text-align:right'>{r.weight:.3f}</td><td style='text-align:right'>{r.count}</td>"
            f"<td>{r.status}</td><td style='text-align:left'><code>{escape(repr(r.text))}</code></td></tr>"
            for r in self.distinct()
        )
        return (
            f"<div><b>GenerationResult</b> ({escape(self.method)}, {len(self.samples)} samples)"
            "<table><thead><tr><th>weight</th><th>count</th><th>status</th><th>output</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>{escape(self.summary())}</p></div>"
        )

    def ess_curve(self) -> list[float]:
        """ESS after each step: SMC's recorded history, or for masking the ESS of the running products of the
        per-step allowed masses (a finished sample keeps its weight); empty when the sampler recorded neither."""
        if self.ess_history:
            return list(self.ess_history)
        if not self.step_log_z:
            return []
        steps = max(len(z) for z in self.step_log_z)
        running = [0.0] * len(self.step_log_z)
        curve = [float(len(running))]
        for t in range(steps):
            for i, z in enumerate(self.step_log_z):
                if t < len(z):
                    running[i] += z[t]
            curve.append(_ess(running))
        return curve

    def plot(self, path: str | None = None, *, limit: int = 20):
        """Draw the posterior weights of the distinct outputs (top `limit`) and the ESS over steps, side by side;
        save to `path` if given. Returns the matplotlib Figure. Needs matplotlib (`pip install 'genlab[plot]'`)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("GenerationResult.plot needs matplotlib: pip install 'genlab[plot]'") from err
        rows = self.distinct()[:limit]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.3 * len(rows) + 1.5)))
        colours = {"complete": "tab:blue", "incomplete": "tab:gray", "invalid": "tab:red"}
        labels = [_shorten(repr(r.text), 40) for r in rows]
        bars = left.barh(range(len(rows)), [r.weight for r in rows], color=[colours[r.status] for r in rows])
        counts = [f"x{r.count}" + ("" if r.status == "complete" else f" {r.status}") for r in rows]
        left.bar_label(bars, labels=counts, padding=2, fontsize=8)
        left.set_yticks(range(len(rows)), labels, fontsize=8)
        left.invert_yaxis()
        left.set_xlabel("posterior weight")
        left.set_title(f"{self.method}: posterior weight (samples xN)")
        curve = self.ess_curve()
        if curve:
            right.plot(range(len(curve)), curve, marker=".")
            right.axhline(len(self.samples), color="gray", linestyle="--", linewidth=0.8)
            right.set_ylim(0, len(self.samples) * 1.05)
        else:
            right.text(0.5, 0.5, "no ESS recorded by this sampler", ha="center", va="center", transform=right.transAxes)
        right.xaxis.get_major_locator().set_params(integer=True)
        right.set_xlabel("step")
        right.set_ylabel("effective sample size")
        right.set_title(f"ESS (N = {len(self.samples)})")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


def _ess(log_weights: list[float]) -> float:
    top = max(log_weights, default=-math.inf)
    if top == -math.inf:
        return 0.0
    w = [math.exp(x - top) for x in log_weights]
    return sum(w) ** 2 / sum(x * x for x in w)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
