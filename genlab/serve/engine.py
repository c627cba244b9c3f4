"""The server's engine: runs `Job`s in worker threads over one `SharedModel`, so concurrent requests share forwards.

Admission is bounded (running plus queued requests; `Busy` past it), each request has a deadline, and a request
can be cancelled (its client went away): the sampler's per-step hook raises, and the request's rows leave the
pooled batch. Compiled constraints are cached by their spec; SQL databases are the ones the server was started
with, named.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab.constraints.base import Constraint
from genlab.errors import GenlabError
from genlab.generate import generate
from genlab.models import HFModel, SharedModel
from genlab.samplers.prompt import prepare
from genlab.samplers.result import GenerationResult
from genlab.serve.protocol import Job, Limits, RequestError, choice_pattern

CACHE_SIZE = 64  # compiled constraints kept


class Cancelled(Exception):
    """The client went away or the deadline passed: the run stops at its next step."""


@dataclass
class Choice:
    """One returned output: its text (cut at a stop string), why it ended, its token count."""

    text: str
    finish_reason: str  # "stop" (ended, or cut at a stop string) or "length" (max_tokens)
    tokens: int
    status: str  # genlab's: complete, invalid or incomplete


@dataclass
class Outcome:
    choices: list[Choice]
    result: GenerationResult
    prompt_tokens: int
    seconds: float


class Handle:
    """A submitted job: its future (an `Outcome`), cancellation, and, for streams, a hook that sees each row's
    tokens as they are drawn."""

    def __init__(self, job: Job, deadline: float, on_tokens: Callable[[list[tuple[int, ...]]], None] | None):
        self.job = job
        self.deadline = deadline
        self.on_tokens = on_tokens
        self.future: Future[Outcome] = Future()
        self.cancelled = threading.Event()
        self.healed = b""  # set before the run starts: the bytes the streamed tokens begin with

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    """One model, its pooled batch, and the worker threads that run requests on it."""

    def __init__(
        self,
        lm: HFModel,
        *,
        name: str,
        databases: dict[str, str | Path] | None = None,
        limits: Limits | None = None,
        concurrency: int = 8,
        queue: int = 64,
        timeout: float = 600.0,
    ):
        self.lm = lm
        self.name = name
        self.shared = SharedModel(lm)
        self.limits = limits or Limits()
        self.timeout = timeout
        self.capacity = concurrency + queue
        self._workers = ThreadPoolExecutor(
            concurrency, thread_name_prefix="genlab-request", initializer=SharedModel.member_thread
        )
        self._admitted = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Constraint] = OrderedDict()
        self._databases: dict[str, Any] = {}
        for db_name, path in (databases or {}).items():
            from genlab.constraints.sql import SQL

            self._databases[db_name] = SQL(path)
        self.served = 0

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)

    @property
    def databases(self) -> list[str]:
        return sorted(self._databases)

    def constraint(self, spec: tuple[str, str] | None) -> Constraint:
        """The compiled constraint of a spec, from the cache; bad specs raise `RequestError` with genlab's message."""
        if spec is None:  # free text: any UTF-8 text
            spec = ("regex", json.dumps(r"(.|\n)*"))
        with self._lock:
            if spec in self._cache:
                self._cache.move_to_end(spec)
                return self._cache[spec]
        constraint = self._build(*spec)
        constraint.compile(self.lm.vocab)  # compile errors surface here, as a 400, not in a worker
        with self._lock:
            self._cache[spec] = constraint
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return constraint

    def _build(self, kind: str, text: str) -> Constraint:
        import genlab

        value = json.loads(text)
        param = f"structured_outputs.{kind}" if kind != "json" else "response_format"
        try:
            if kind == "json":
                return genlab.JsonSchema(value)
            if kind == "regex":
                return genlab.Regex(value)
            if kind == "choice":
                return genlab.Regex(choice_pattern(value))
            if kind == "grammar":
                if "\n" not in value and value.replace("_", "").replace("-", "").isalnum():
                    return genlab.Grammar.shipped(value)
                return genlab.Grammar(value)
        except GenlabError as err:
            raise RequestError(f"{type(err).__name__}: {err}", param=param, code="invalid_constraint") from None
        if value in self._databases:
            return self._databases[value]
        if "/" in value or "\\" in value or "." in value:
            raise RequestError(
                "a request names a database by the name the server gave it (--sql name=path), never by a path",
                param=param,
                code="invalid_database",
            )
        have = ", ".join(self.databases) or "none (start the server with --sql name=path)"
        raise RequestError(f"unknown database {value!r}; this server has: {have}", param=param, code="invalid_database")

    def submit(self, job: Job, on_tokens: Callable[[list[tuple[int, ...]]], None] | None = None) -> Handle:
        """Check the job's constraint, admit it (`RequestError` 429 when the queue is full) and start it."""
        constraint = self.constraint(job.spec)
        with self._lock:
            if self._admitted >= self.capacity:
                raise RequestError(
                    f"the server is busy ({self._admitted} requests running or queued); retry later",
                    status=429,
                    kind="rate_limit_error",
                    code="rate_limit_exceeded",
                )
            self._admitted += 1
        handle = Handle(job, time.monotonic() + self.timeout, on_tokens)
        try:
            self._workers.submit(self._run, handle, constraint)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        return handle

    def _run(self, handle: Handle, constraint: Constraint) -> None:
        outcome: Outcome | None = None
        error: BaseException | None = None
        running = handle.future.set_running_or_notify_cancel()
        if running:
            try:
                outcome = self._generate(handle, constraint)
            except BaseException as err:  # the request's failure, handed to whoever waits on it
                error = err
        with self._lock:  # counted before the client hears back, so `served` is never behind an answered request
            self._admitted -= 1
            self.served += 1
        if not running:
            return
        if outcome is None:
            handle.future.set_exception(error or RuntimeError("the run ended without an outcome"))
        else:
            handle.future.set_result(outcome)

    def _check(self, handle: Handle) -> None:
        """Stop a run whose client went away or whose deadline passed (queued time counts)."""
        if handle.cancelled.is_set():
            raise Cancelled("the request was cancelled")
        if time.monotonic() > handle.deadline:
            raise Cancelled(f"the request ran past the server's {self.timeout:g} s deadline")

    def _generate(self, handle: Handle, constraint: Constraint) -> Outcome:
        import genlab

        job = handle.job
        t0 = time.perf_counter()
        lm = self.shared
        handle.healed = prepare(lm, job.prompt, job.heal).healed  # what the streamed tokens start with

        def progress(step: int, running: int) -> None:
            self._check(handle)
            stream = handle.on_tokens
            rows = lm.thread_rows() if stream is not None else None
            if stream is not None and rows is not None:
                stream(rows.token_ids)

        method = "mask" if job.method == "greedy" else job.method
        options: dict[str, Any] = {"progress": progress}
        if job.method == "greedy":
            options["greedy"] = True
        if job.critic:
            assert isinstance(constraint, genlab.SQL)
            options["critic"] = constraint.critic()
        self._check(handle)
        with self.shared.session():
            result = generate(
                lm,
                job.prompt,
                constraint,
                method=method,
                n_particles=job.n_particles,
                max_tokens=job.max_tokens,
                temperature=job.temperature if job.temperature > 0 else 1.0,
                seed=job.seed,
                drafts=bool(job.drafts) and handle.on_tokens is None,  # a draft widens the pooled forward of every run
                heal=job.heal,
                **options,
            )
        prompt_tokens = len(prepare(lm, job.prompt, False).ids)
        return Outcome(_choices(result, job), result, prompt_tokens, time.perf_counter() - t0)


def _choices(result: GenerationResult, job: Job) -> list[Choice]:
    """The n outputs returned: masking's samples in order; for weighted methods, n draws from the posterior."""
    samples = result.samples
    if job.method in ("mask", "greedy", "rerank"):
        picked = samples[: job.n]
    else:
        weights = np.asarray(result.posterior, dtype=float)
        if weights.sum() > 0:
            rng = np.random.default_rng(job.seed)
            picked = [samples[i] for i in rng.choice(len(samples), size=job.n, p=weights / weights.sum())]
        else:  # nothing finished: the longest attempts, reported as cut short
            picked = sorted(samples, key=lambda s: -len(s.token_ids))[: job.n]
    out = []
    for s in picked:
        text, cut = cut_at_stop(s.text, job.stop)
        reason = "stop" if cut or s.complete else "length"
        out.append(Choice(text, reason, len(s.token_ids), s.status))
    return out


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the first stop string, and whether one was found (OpenAI leaves the stop string out)."""
    first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:first], True) if first >= 0 else (text, False)


def genlab_field(outcome: Outcome) -> dict[str, Any]:
    """The response's `genlab` object: the posterior over distinct outputs, log P(constraint) and the counts."""
    result = outcome.result
    log_marginal = result.log_marginal if result.weighted else None
    return {
        "method": result.method,
        "posterior": [
            {"text": r.text, "status": r.status, "count": r.count, "probability": r.weight} for r in result.distinct()
        ],
        "log_marginal": log_marginal if log_marginal is not None and math.isfinite(log_marginal) else None,
        "ess": result.ess,
        "healed": result.healed.decode("utf-8", errors="backslashreplace"),
        "counts": {k: v for k, v in vars(result.counts).items()},
        "statuses": [c.status for c in outcome.choices],
        "seconds": outcome.seconds,
    }
