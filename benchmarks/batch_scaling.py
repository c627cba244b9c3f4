"""Records/s of `genlab.batch` in one process and on a local Ray cluster with 1 and 2 workers, same input.

The input is R records (regex and JSON Schema constraints, alternating) on the default model (SmolLM2), SMC with N
particles. Each mode writes its own output file from scratch; every mode's time includes its start-up (for Ray:
`ray.init`, worker processes, one model load per worker), reported separately as the time to the first row.
Ray's overhead is the ratio of the 1-worker Ray run to the plain run; scaling is 2 workers against 1.

    python benchmarks/batch_scaling.py [--records 24] [--particles 4] [--max-tokens 24]
                                       [--output docs/benchmarks/batch_scaling.md]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from report import Printed, write_report

from genlab.batch import BatchConfig, batch

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
}


def records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        if i % 2:
            out.append({"id": i, "prompt": f"Describe person number {i} as JSON.", "json_schema": PERSON})
        else:
            out.append({"id": i, "prompt": f"Make up phone number {i} for a shop.", "regex": r"\(\d{3}\) \d{3}-\d{4}"})
    return out


def run(mode: str, source: Path, out: Path, config: BatchConfig) -> tuple[float, float, int]:
    """(seconds, seconds to the first row, rows written) of one mode."""
    first: list[float] = []
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    if mode == "plain":
        summary = batch(source, out, config, progress=progress)
    else:
        summary = batch(
            source, out, config, use_ray=True, workers=int(mode.split("-")[1]), cpus_per_worker=1, progress=progress
        )
    return time.perf_counter() - t0, first[0] if first else float("nan"), summary.written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=24)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--output", default="docs/benchmarks/batch_scaling.md", help="markdown file ('' for none)")
    args = parser.parse_args()

    import ray

    config = BatchConfig(n_particles=args.particles, max_tokens=args.max_tokens)
    work = Path(tempfile.mkdtemp(prefix="genlab-batch-bench-"))
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records(args.records)), encoding="utf-8")
    settings = (
        f"{args.records} records (regex and JSON Schema), SmolLM2, SMC N={args.particles}, "
        f"max_tokens={args.max_tokens}, {os.cpu_count()} CPU cores"
    )
    print(settings)
    times: dict[str, float] = {}
    out = Printed()
    out("\n| mode | wall s | to first row s | records/s | rows |")
    out("|---|--:|--:|--:|--:|")
    for mode in ("plain", "ray-1", "ray-2"):
        if mode.startswith("ray"):
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            seconds, first, rows = run(mode, source, work / f"{mode}.jsonl", config)
        finally:
            if mode.startswith("ray"):
                ray.shutdown()
        times[mode] = seconds
        out(f"| {mode} | {seconds:.1f} | {first:.1f} | {rows / seconds:.2f} | {rows} |", flush=True)
    out(
        f"\nRay overhead (ray-1 / plain wall time): {times['ray-1'] / times['plain']:.2f}x; "
        f"scaling (ray-1 / ray-2 wall time): {times['ray-1'] / times['ray-2']:.2f}x"
    )
    write_report(args.output, "Batch scaling: one process and Ray", settings, out.text)


if __name__ == "__main__":
    main()
