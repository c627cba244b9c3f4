"""First use: how long each constraint kind takes on a machine whose numba cache is empty, beside a warm cache.

Usage: python benchmarks/cold_start.py [--output docs/benchmarks/cold_start.md]

Every measurement runs in a fresh Python process with `NUMBA_CACHE_DIR` set to a new empty folder ("cold"), and
then again in another fresh process on the folder the first one filled ("warm": the kernels load from the cache);
the model and its vocabulary are loaded outside the timings. Cold runs twice: as genlab does by default (kernels run
as Python while a helper process compiles them, `genlab.jit`; the child then waits for the helper and reports when
it finished, counted from the first part's start) and with `GENLAB_KERNELS=compile` (numba's own way: every kernel
compiles in the calling process before it runs). Parts:

- regex compile: `Regex(<the demo's regex>)` and `.compile(vocab)` (token trie, DFA, first masks' tables);
- regex first generation: the demo's masking run (`genlab demo`'s regex part);
- JSON Schema compile: `JsonSchema(<the demo's schema>)` and `.compile(vocab)`;
- JSON Schema first generation: the demo's SMC-AWRS run;
- SQL demo part: `genlab demo`'s SQL part as a whole (SQL constraint on a SQLite file, SMC-AWRS with the execution
  critic, 40 tokens);
- each alone in its own process, and then all in one process in the demo's order (what a new user's first
  `genlab demo` pays: the later parts reuse kernels the earlier ones compiled).

`--schemas N` measures instead the N largest schemas of MaskBench's dev set (`../shared/data`), compiled one after
another in one process (each with its first mask), the same three ways: does running kernels as Python ever cost
more than compiling them first, on inputs far larger than the demo's? It writes docs/benchmarks/cold_start_schemas.md.

Goals (issue 25): on 2 cores, the first regex and JSON Schema compiles <= 3 s each, the SQL demo part <= 10 s.
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from report import render, write_report

CHILD = r"""
import json, sys, time, argparse
from genlab.models import load
from genlab import cli, jit
lm = load(None, device="cpu")
start = time.perf_counter()
args = argparse.Namespace(seed=0, samples=3, max_tokens=40, regex=cli.DEMO_REGEX, regex_prompt=cli.DEMO_REGEX_PROMPT)
out = {}
def timed(name, fn):
    t0 = time.perf_counter(); fn(); out[name] = time.perf_counter() - t0
for part in sys.argv[1].split(","):
    if part == "regex":
        from genlab import Regex
        timed("regex compile", lambda: Regex(cli.DEMO_REGEX).compile(lm.vocab))
        timed("regex first generation", lambda: cli._demo_regex(lm, args))
    elif part == "json":
        from genlab import JsonSchema
        timed("JSON Schema compile", lambda: JsonSchema(cli.DEMO_PERSON).compile(lm.vocab))
        timed("JSON Schema first generation", lambda: cli._demo_json(lm, args))
    elif part == "sql":
        timed("SQL demo part", lambda: cli._demo_sql(lm, args))
jit.wait_for_compiler()
out["helper done"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""


SCHEMAS = r"""
import gzip, json, sys, time, warnings
from genlab.models import load
from genlab import JsonSchema, jit
warnings.simplefilter("ignore")
rows = [json.loads(line) for line in gzip.open(sys.argv[1], "rt")]
rows.sort(key=lambda r: -len(json.dumps(r["schema"])))
lm = load(None, device="cpu")
out = {}
start = time.perf_counter()
for r in rows[: int(sys.argv[2])]:
    t0 = time.perf_counter()
    matcher = JsonSchema(r["schema"]).compile(lm.vocab)
    matcher.mask(matcher.start())
    out[f"{r['id']} ({len(json.dumps(r['schema'])) / 1000:.0f} KB)"] = time.perf_counter() - t0
jit.wait_for_compiler()
out["helper done"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "maskbench-dev.jsonl.gz"


def run(child: list[str], kernels: Path, mode: str = "background") -> dict[str, float]:
    """The RESULT dict a child (`python -c CODE ARGS...`) prints, run on the numba cache `kernels`."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(kernels), "GENLAB_KERNELS": mode}
    done = subprocess.run(
        [sys.executable, "-c", *child],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"child failed ({child[1:]}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="default docs/benchmarks/cold_start[_schemas].md")
    parser.add_argument("--schemas", type=int, default=0, help="measure the N largest MaskBench dev schemas instead")
    args = parser.parse_args()
    if args.schemas:
        schemas(args.schemas, "docs/benchmarks/cold_start_schemas.md" if args.output is None else args.output)
        return
    args.output = "docs/benchmarks/cold_start.md" if args.output is None else args.output
    rows: dict[str, dict[str, float]] = {}
    helper: dict[str, float] = {}
    for setting, groups in (("alone", ["regex", "json", "sql"]), ("demo order", ["regex,json,sql"])):
        for parts in groups:
            with tempfile.TemporaryDirectory(prefix="genlab-kernels-") as folder:
                cold = run([CHILD, parts], Path(folder))
                warm = run([CHILD, parts], Path(folder))
            with tempfile.TemporaryDirectory(prefix="genlab-kernels-") as folder:
                here = run([CHILD, parts], Path(folder), "compile")
            helper[f"{parts} ({setting})"] = cold.pop("helper done")
            for name, seconds in cold.items():
                rows[f"{name} ({setting})"] = {"cold": seconds, "here": here[name], "warm": warm[name]}
                print(
                    f"  {name} ({setting}): cold {seconds:.2f} s, compiled here {here[name]:.2f} s, "
                    f"warm {warm[name]:.2f} s",
                    file=sys.stderr,
                )
    goals = {"regex compile": 3.0, "JSON Schema compile": 3.0, "SQL demo part": 10.0}
    settings = (
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; each column a fresh process, numba's "
        "cache empty (cold) or filled by the cold run (warm); model loading outside the timings. Cold, default: "
        "kernels run as Python while the helper process compiles them. Cold, compiled here: "
        "`GENLAB_KERNELS=compile`."
    )
    lines = [
        "| part | cold s (default) | cold s (compiled here) | warm s | default / compiled here | goal (cold, default) |",
        "| --- | --: | --: | --: | --: | --- |",
    ]
    for name, t in rows.items():
        goal = next((g for k, g in goals.items() if name.startswith(k)), None)
        verdict = "" if goal is None else f"<= {goal:.0f} s: {'met' if t['cold'] <= goal else 'missed'}"
        lines.append(
            f"| {name} | {t['cold']:.2f} | {t['here']:.2f} | {t['warm']:.2f} | {t['cold'] / t['here']:.2f}x "
            f"| {verdict} |"
        )
    lines += ["", "The helper had compiled every kernel asked of it (the next process runs warm) after:", ""]
    lines += [f"- {parts}: {seconds:.1f} s from the first part's start" for parts, seconds in helper.items()]
    body = "\n".join(lines)
    print(render("Cold start", settings, body))
    write_report(args.output, "Cold start", settings, body)


def schemas(count: int, output: str) -> None:
    if not DATA.exists():
        print(f"{DATA} not found (the shared data folder is not next to this clone); nothing to measure.")
        return
    child = [SCHEMAS, str(DATA), str(count)]
    with tempfile.TemporaryDirectory(prefix="genlab-kernels-") as folder:
        cold = run(child, Path(folder))
        warm = run(child, Path(folder))
    with tempfile.TemporaryDirectory(prefix="genlab-kernels-") as folder:
        here = run(child, Path(folder), "compile")
    helper = cold.pop("helper done")
    lines = [
        "| schema (in order) | cold s (default) | cold s (compiled here) | warm s | default / compiled here |",
        "| --- | --: | --: | --: | --: |",
    ]
    for name, seconds in cold.items():
        lines.append(f"| {name} | {seconds:.2f} | {here[name]:.2f} | {warm[name]:.2f} | {seconds / here[name]:.2f}x |")
    totals = [sum(t[name] for name in cold) for t in (cold, here, warm)]
    lines.append(f"| all | {totals[0]:.2f} | {totals[1]:.2f} | {totals[2]:.2f} | {totals[0] / totals[1]:.2f}x |")
    lines += ["", f"The helper had compiled every kernel asked of it {helper:.1f} s after the first schema's start."]
    settings = (
        f"{os.cpu_count()} cores; the {count} largest schemas of MaskBench's dev set, each compiled and its first mask "
        "taken, one after another in one fresh process: numba's cache empty (cold: by default, kernels run as Python "
        "while the helper compiles them; compiled here: `GENLAB_KERNELS=compile`) or filled by the cold run (warm)."
    )
    body = "\n".join(lines)
    print(render("Cold start on large schemas", settings, body))
    write_report(output, "Cold start on large schemas", settings, body)


if __name__ == "__main__":
    main()
