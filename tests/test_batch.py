"""`genlab.batch`: JSONL records in, one result row per record out, resumable, in-process and on a local Ray cluster.

Oracles: `re.fullmatch` and `jsonschema` on every output; the output file itself for "each record exactly once".
The model is a tiny random Llama with SmolLM2's tokenizer, saved as an HF folder so Ray workers can load it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from tiny_models import smollm2_tokenizer, tiny_llama_model

from genlab.batch import BatchConfig, BatchError, ResultWriter, batch, read_records

PHONE = r"[0-9]{3}-[0-9]{4}"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama_model().save_pretrained(folder)
    smollm2_tokenizer().save_pretrained(folder)
    return str(folder)


def _records(n: int, bad: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append({"id": f"phone-{i}", "prompt": f"Phone number {i}?", "regex": PHONE})
        else:
            out.append(
                {"id": f"person-{i}", "messages": [{"role": "user", "content": "A person?"}], "json_schema": PERSON}
            )
    if bad:
        out.append({"id": "bad-schema", "prompt": "x", "json_schema": {"type": "no-such-type"}})
        out.append({"id": "missing-db", "prompt": "x", "sql": "/nonexistent/dir/none.sqlite"})
        out.append({"id": "two-constraints", "prompt": "x", "regex": "a", "grammar": "json"})
    return out


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_rows(rows: list[dict], records: list[dict]) -> None:
    """Each record once; every finished output obeys its record's constraint; bad records carry their error."""
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in records)
    by_id = {r["id"]: r for r in records}
    for row in rows:
        record = by_id[row["id"]]
        if row["id"] in ("bad-schema", "missing-db", "two-constraints"):
            assert row["status"] == "error"
            assert {
                "bad-schema": "no-such-type",
                "missing-db": "does not exist",
                "two-constraints": "names 2 constraints",
            }[row["id"]] in row["error"]
            continue
        assert row["status"] in ("complete", "incomplete")
        for text, complete, valid in zip(row["texts"], row["complete"], row["valid"]):
            if not (complete and valid):
                continue
            if "regex" in record:
                assert re.fullmatch(PHONE, text), text
            else:
                jsonschema.validate(json.loads(text), PERSON)
        if row["status"] == "complete":
            assert row["text"] in row["texts"] and abs(sum(row["posterior"]) - 1) < 1e-9
            if "json_schema" in record:
                assert row["parsed"] == json.loads(row["text"])


def test_batch_in_process_with_errors_and_resume(tmp_path, tiny_model):
    records = _records(8)
    source = _write(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    config = BatchConfig(model=tiny_model, n_particles=2, max_tokens=14)

    class Crash(Exception):
        pass

    def crash_after_three(done: int, total: int) -> None:
        if done == 3:
            raise Crash  # the process dies after three rows

    with pytest.raises(Crash):
        batch(source, out, config, progress=crash_after_three)
    assert len(_rows(out)) == 3
    with out.open("a", encoding="utf-8") as f:  # and tore the fourth row halfway through writing it
        f.write('{"id": "person-3", "status": "compl')
    summary = batch(source, out, config)
    assert (summary.skipped, summary.written, summary.errors) == (3, len(records) - 3, 3)
    rows = _rows(out)
    _check_rows(rows, records)
    first = {r["id"]: r.get("texts", r.get("error")) for r in rows}

    again = batch(source, out, config)  # nothing left to do
    assert (again.written, again.skipped) == (0, len(records))
    fresh = tmp_path / "fresh.jsonl"
    batch(source, fresh, config)  # per-record seeds: the same results whatever ran before
    assert {r["id"]: r.get("texts", r.get("error")) for r in _rows(fresh)} == first


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "a", "regex": "a"}\nnot json\n')
    with pytest.raises(BatchError, match="line 2: not JSON"):
        read_records(bad)
    bad.write_text('{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n')
    with pytest.raises(BatchError, match="id 1 appears twice"):
        read_records(bad)
    bad.write_text('{"prompt": "a"}\n\n{"prompt": "b"}\n')
    assert [r["id"] for r in read_records(bad)] == [0, 2]  # ids default to line numbers
    writer = ResultWriter(tmp_path / "o.jsonl")
    assert writer.write({"id": "a"}) and not writer.write({"id": "a"})
    writer.close()


def _worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"RayWorker" in cmdline and entry.name != str(os.getpid()):
                pids.append(int(entry.name))
    return pids


def test_batch_on_local_ray_survives_a_killed_worker(tmp_path, tiny_model):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'genlab[ray]')")
    records = _records(50)
    source = _write(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    killed: list[int] = []

    def kill_one_worker_mid_run() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            if out.exists() and len(out.read_text(encoding="utf-8").splitlines()) >= 10:
                pids = _worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
            time.sleep(0.05)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
        killer.start()
        summary = batch(
            source,
            out,
            BatchConfig(model=tiny_model, n_particles=2, max_tokens=14),
            use_ray=True,
            workers=2,
            cpus_per_worker=1,
        )
        killer.join(timeout=5)
    finally:
        ray.shutdown()
    assert killed, "no worker was killed: the run ended before ten rows or no worker process was found"
    assert summary.written == len(records)
    _check_rows(_rows(out), records)
