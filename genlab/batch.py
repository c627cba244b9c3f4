"""`genlab.batch`: constrained generation over a JSONL file of records, resumable, in one process or on Ray.

Each input line is a record: `{"id": ..., "prompt": "..."}` or `{"id": ..., "messages": [...]}`, optionally with
its own constraint (`regex`, `json_schema`, `grammar` or `sql`; see `constraint_from_spec`). Each output line is
one record's result, written and flushed as soon as it exists, so a crash loses nothing already written and a
rerun skips the records whose results are there (a torn last line is dropped first). A record that fails (a bad
schema, a missing database) gets an error row and the batch goes on.

On Ray (`use_ray=True`) the records go through a Ray Data pipeline whose stateful workers each load the model
once and keep a cache of compiled constraints; Ray restarts a worker that dies and retries its records, and the
driver writes each record exactly once.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.constraints.base import Constraint
from genlab.constraints.json_schema import JsonSchema
from genlab.errors import GenlabError

CONSTRAINT_KEYS = ("regex", "json_schema", "grammar", "sql")


class BatchError(GenlabError):
    """A batch input that cannot be read as records (not JSONL, a record without a prompt or id clash)."""


@dataclass(frozen=True)
class BatchConfig:
    """What every record shares: the model (a folder or known name; None for the default), the sampler settings,
    and the constraint for records that name none."""

    model: str | None = None
    method: str = "smc"
    n_particles: int = 4
    max_tokens: int = 64
    temperature: float = 1.0
    seed: int = 0
    chat: bool = True  # plain "prompt" texts go through the chat template (when the tokenizer has one)
    constraint: dict | None = None
    device: str | None = None
    drafts: bool | None = None  # None: genlab.generate's default for the method
    heal: bool | None = None  # token healing; None: genlab.generate's default (text prompts, not chat)


@dataclass
class BatchSummary:
    """What one `batch` call did."""

    written: int = 0
    skipped: int = 0  # already in the output from an earlier run
    errors: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


def constraint_from_spec(spec: dict) -> Constraint:
    """A constraint from a record's spec: exactly one of `{"regex": pattern}`, `{"json_schema": schema or path to
    a .json file}`, `{"grammar": Lark text, .lark path or shipped name}`, `{"sql": database path}`."""
    import genlab

    keys = [k for k in CONSTRAINT_KEYS if k in spec]
    if len(keys) != 1:
        raise BatchError(
            f"a record names {len(keys)} constraints ({', '.join(keys) or 'none'}); give exactly one "
            f"of {', '.join(CONSTRAINT_KEYS)}"
        )
    (key,) = keys
    value = spec[key]
    if key == "regex":
        return genlab.Regex(value)
    if key == "json_schema":
        if isinstance(value, str) and not value.lstrip().startswith("{") and value.endswith(".json"):
            path = Path(value)
            if not path.exists():
                raise BatchError(f"JSON Schema file {value!r} does not exist")
            value = path.read_text(encoding="utf-8")
        return genlab.JsonSchema(value)
    if key == "grammar":
        if "\n" not in value and value.endswith(".lark"):
            return genlab.Grammar.from_file(value)
        if "\n" not in value and ":" not in value:
            return genlab.Grammar.shipped(value)
        return genlab.Grammar(value)
    return genlab.SQL(value)


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of a JSONL file, each with an `id` (its line number, counted from 0, when it has none)."""
    records, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise BatchError(f"{path}, line {number + 1}: not JSON ({e})") from e
            if not isinstance(record, dict):
                raise BatchError(f"{path}, line {number + 1}: a record must be a JSON object")
            record.setdefault("id", number)
            key = _key(record["id"])
            if key in seen:
                raise BatchError(f"{path}, line {number + 1}: id {record['id']!r} appears twice")
            seen.add(key)
            records.append(record)
    return records


def _key(record_id: Any) -> str:
    return json.dumps(record_id, sort_keys=True)


class ResultWriter:
    """Appends result rows to a JSONL file, each flushed to disk when written; knows which ids are done."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.exists():
            self._recover()
        self._file = open(self.path, "a", encoding="utf-8")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1  # a line without its newline was torn by a crash: drop it
        if keep < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(keep)
        for line in data[:keep].decode("utf-8").splitlines():
            if line.strip():
                self.done.add(_key(json.loads(line)["id"]))

    def write(self, row: dict) -> bool:
        """Writes `row` unless its id is already written (a retried record); says whether it wrote."""
        key = _key(row["id"])
        if key in self.done:
            return False
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(key)
        return True

    def close(self) -> None:
        self._file.close()


class Runner:
    """Runs records on one model with a cache of compiled constraints (keyed by the constraint spec)."""

    CACHE_SIZE = 64

    def __init__(self, config: BatchConfig, model=None) -> None:
        from genlab.models import HFModel, load

        self.config = config
        self.lm = model if isinstance(model, HFModel) else load(config.model, device=config.device)
        self._constraints: OrderedDict[str, Constraint] = OrderedDict()

    def constraint(self, spec: dict) -> Constraint:
        key = json.dumps(spec, sort_keys=True)
        found = self._constraints.get(key)
        if found is None:
            found = constraint_from_spec(spec)
            self._constraints[key] = found
            if len(self._constraints) > self.CACHE_SIZE:
                self._constraints.popitem(last=False)
        else:
            self._constraints.move_to_end(key)
        return found

    def run(self, record: dict) -> dict:
        """The result row of one record; an error row (with the message) when the record cannot be run."""
        from genlab.generate import generate

        t0 = time.perf_counter()
        row: dict[str, Any] = {"id": record["id"], "method": self.config.method}
        try:
            spec = {k: record[k] for k in CONSTRAINT_KEYS if k in record} or self.config.constraint
            if not spec:
                raise BatchError("the record names no constraint and the batch has no default one")
            constraint = self.constraint(spec)
            prompt = _prompt(record, self.config.chat and bool(getattr(self.lm.tokenizer, "chat_template", None)))
            result = generate(
                self.lm,
                prompt,
                constraint,
                method=self.config.method,
                n_particles=self.config.n_particles,
                max_tokens=self.config.max_tokens,
                temperature=self.config.temperature,
                seed=_seed(self.config.seed, record["id"]),
                drafts=self.config.drafts,
                heal=self.config.heal,
            )
        except Exception as e:  # noqa: BLE001 - one bad record must not stop the batch; its row says why
            row.update(status="error", error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
            return row
        out = result.to_dict()
        posterior = out["posterior"]
        best = max(range(len(posterior)), key=posterior.__getitem__) if any(posterior) else None
        row.update(
            {
                key: out[key]
                for key in ("texts", "log_weights", "posterior", "complete", "valid", "log_marginal", "counts")
            }
        )
        row.update(
            status="complete" if best is not None else "incomplete",
            text=out["texts"][best] if best is not None else None,
            seconds=time.perf_counter() - t0,
        )
        if best is not None and isinstance(constraint, JsonSchema):
            row["parsed"] = out["parsed"][best]  # the JSON value (Pydantic instances come dumped)
        return row


def _prompt(record: dict, chat: bool):
    if "messages" in record:
        return record["messages"]
    if "prompt" not in record:
        raise BatchError("the record has neither 'prompt' nor 'messages'")
    prompt = record["prompt"]
    return [{"role": "user", "content": prompt}] if chat else prompt


def _seed(seed: int, record_id: Any) -> int:
    """A per-record seed that does not depend on the order records run in (or on the worker)."""
    return zlib.crc32(f"{seed}:{_key(record_id)}".encode())


def batch(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    config: BatchConfig = BatchConfig(),
    *,
    model=None,
    use_ray: bool = False,
    address: str | None = None,
    workers: int = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Generate for every record of `input_path` not yet in `output_path`, appending one row per record.

    In-process by default (`model` may be an `HFModel` already loaded). `use_ray=True` runs `workers` Ray workers
    (`cpus_per_worker`, `gpus_per_worker` each) on a local Ray instance, or on the cluster at `address`.
    `progress(done, total)` is called after each written row.
    """
    t0 = time.perf_counter()
    records = read_records(input_path)
    writer = ResultWriter(output_path)
    summary = BatchSummary()
    pending = [r for r in records if _key(r["id"]) not in writer.done]
    summary.skipped = len(records) - len(pending)
    try:
        rows = (
            _ray_rows(pending, config, address, workers, cpus_per_worker, gpus_per_worker)
            if use_ray
            else _local_rows(pending, config, model)
        )
        for row in rows:
            if writer.write(row):
                summary.written += 1
                summary.errors += row["status"] == "error"
                summary.statuses[row["status"]] = summary.statuses.get(row["status"], 0) + 1
                if progress is not None:
                    progress(summary.written, len(pending))
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _local_rows(records: list[dict], config: BatchConfig, model) -> Iterable[dict]:
    if not records:
        return
    runner = Runner(config, model)
    for record in records:
        yield runner.run(record)


class RayWorker:
    """A Ray Data stateful worker: the model loads once per worker, constraints compile once per spec."""

    def __init__(self, config: dict) -> None:
        self.runner = Runner(BatchConfig(**config))

    def __call__(self, batch: dict) -> dict:
        rows = [self.runner.run(json.loads(r)) for r in batch["record"]]
        return {"row": [json.dumps(row, ensure_ascii=False) for row in rows]}


def _ray_rows(
    records: list[dict], config: BatchConfig, address: str | None, workers: int, cpus: float, gpus: float
) -> Iterable[dict]:
    try:
        import ray
    except ImportError as e:
        raise BatchError("running on Ray needs the ray extra: pip install 'genlab[ray]'") from e
    if not records:
        return
    if not ray.is_initialized():
        local: dict[str, Any] = {} if address else {"num_cpus": max(os.cpu_count() or 1, int(workers * cpus))}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **local)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # records travel as JSON text: their fields differ from record to record, which Arrow tables don't like
    items = ray.data.from_items([{"record": json.dumps(r)} for r in records], override_num_blocks=len(records))
    results = items.map_batches(
        RayWorker,
        fn_constructor_kwargs={"config": asdict(config)},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus,
        num_gpus=gpus,
    )  # Ray Data restarts a dead worker and retries its records (max_restarts=-1 is its default for actors)
    for item in results.iter_rows():
        yield json.loads(item["row"])
