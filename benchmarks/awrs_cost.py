"""What AWRS costs: constraint checks per token beside masking, and SMC-AWRS wall time beside free sampling and
genlm-control.

Usage: python benchmarks/awrs_cost.py [--quick] [--seeds 5] [--repeats 5] [--only a|b] [--threads N]
                                      [--genlm-python /tmp/genlm-venv/bin/python] [--genlm-repeats 3]
                                      [--output docs/benchmarks/awrs_cost.md]

(a) Checks per token. SMC-AWRS (`generate(method="smc", resampling="stratified")`: one AWRS step per particle and
token; the default optimal resampling draws several children per particle instead), 4 particles, ESS 0.5, runs
on a few regex tasks on
SmolLM2-135M-Instruct, `--seeds` seeds each. Every AWRS step's `allows` calls are recorded (by wrapping
`genlab.samplers.awrs.AWRS.step` in this process; genlab itself is not changed), so the table gives the mean
(counts.checks / counts.tokens), the median, p90 and max over steps, and how often a step hit the rejection cap
and fetched the exact mask instead (each such step also costs one mask), and how often a step found its state's
mask fetched earlier in the same run and drew exactly with no checks. A check is an `allows` call that reached the
matcher: SMC memoises verdicts per run across particles in the same state. Each run compiles its own `Regex`
(nothing a run does depends on earlier runs anyway). `--estimator` picks AWRS's estimator. Masking evaluates
every token of the vocabulary at every step: its figure is |V| (it walks the token trie; the table reports |V|
as its "checks").

(b) End-to-end time on one task: a chat prompt asking for a US phone number, regex `\\(\\d{3}\\) \\d{3}-\\d{4}`,
4 particles, ESS threshold 0.5, at most 20 tokens, temperature 1. Timed side by side, interleaved repeat by repeat
so that load on the machine hits all alike, in one process:
- genlab SMC-AWRS (`generate(method="smc")`), compiling its own `Regex` each run (the compile is timed);
- free sampling of 4 sequences of the same length (prefill once, then as many steps as the SMC run took, each
  `logprobs()`, a multinomial draw with EOS excluded, `extend`): the model's own cost for that many tokens;
- `generate(method="rerank")` (free samples until EOS or 20 tokens, then a check) and `generate(method="mask")`,
  for reference;
- genlm-control 0.4.1 `AWRS(PromptedLLM, BoolFSA.from_regex(p).coerce(llm, f=b"".join)).smc(4, 0.5, 20)` on the
  same prompt token ids, EOS ids and model folder (float32, CPU), run by `benchmarks/_genlm_control_run.py` in a
  subprocess with `--genlm-python` (an interpreter of a separate venv holding genlm-control; never genlab's). Its
  first run is cold, later ones warm; the ratio uses the median of the warm runs.
  Such a venv: `python3 -m venv /tmp/genlm-venv && /tmp/genlm-venv/bin/pip install torch==2.13.0
  genlm-control==0.4.1` (torch pinned to the CPU wheel; nothing in genlm-control 0.4.1's required dependencies
  asks for CUDA or vllm, which is an extra of genlm-backend).

Goals (DESIGN/issue): checks per token median <= 1.5; SMC-AWRS / free sampling <= 1.5; genlm-control / genlab >= 50.
All figures are wall clock on whatever else the machine runs: the 1-minute load average is printed with them. On a
2-core machine shared with another CPU-bound job, torch's default 2 threads slow a forward pass 10-25x (measured);
`--threads 1` (applied to both genlab and genlm-control) is the robust choice there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from report import Printed, write_report

import genlab.samplers.awrs as awrs_module
from genlab import Regex, generate
from genlab.models import load
from genlab.models.loading import resolve
from genlab.samplers.prompt import prompt_ids

PHONE = r"\(\d{3}\) \d{3}-\d{4}"
PHONE_PROMPT = [{"role": "user", "content": "Give me a US phone number."}]


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# (name, prompt, regex, max_tokens)
CHECK_TASKS = [
    ("phone", PHONE_PROMPT, PHONE, 20),
    ("sky", "The color of the sky is", r" (red|grey|blue-green|bluish)\.", 12),
    ("iso-date", chat("What is the date of the Moon landing? Answer in ISO format."), r"\d{4}-\d{2}-\d{2}", 16),
    ("email", chat("Give me an example email address."), r"[a-z]{3,12}@[a-z]{3,10}\.(com|org)", 32),
    (
        "json",
        chat("Describe a person as JSON with a name and an age."),
        r'\{"name": "[A-Z][a-z]{1,10}", "age": [1-9][0-9]?\}',
        32,
    ),
    ("yes-no", chat("Is water wet? Answer yes or no."), r"(Yes|No)\.", 6),
]


class StepRecorder:
    """Wraps AWRS.step (class attribute, this process only) to record every step's checks, cap fallbacks and
    exact steps on an already-built mask."""

    def __init__(self):
        self.steps: list[tuple[int, bool, bool]] = []
        self._orig = awrs_module.AWRS.step

    def __enter__(self):
        orig, steps = self._orig, self.steps

        def step(sampler, *args, **kwargs):
            out = orig(sampler, *args, **kwargs)
            steps.append((int(out.checks), bool(out.fell_back), bool(out.cached)))
            return out

        awrs_module.AWRS.step = step
        return self

    def __exit__(self, *exc):
        awrs_module.AWRS.step = self._orig


def free_sampling(lm, ids: list[int], n: int, steps: int, seed: int) -> float:
    """Wall time of n free sequences of exactly `steps` tokens (EOS excluded), batched through one KV cache."""
    gen = torch.Generator(device=lm.device)
    gen.manual_seed(seed)
    eos = torch.tensor(sorted(t for t in lm.vocab.eos_ids if t < lm.vocab_size))
    t0 = time.perf_counter()
    batch = lm.prefill(ids, n)
    for k in range(steps):
        logp = batch.logprobs().index_fill(1, eos, -torch.inf)
        chosen = torch.multinomial(torch.softmax(logp, dim=-1), 1, generator=gen).squeeze(1).tolist()
        if k < steps - 1:  # the last token is not fed back, as in SMC where every particle has ended
            batch.extend(chosen)
    return time.perf_counter() - t0


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def part_a(lm, seeds: int, tasks, estimator: str, out: Printed) -> None:
    v = lm.vocab_size
    rows, all_checks = [], []
    for name, prompt, pattern, max_tokens in tasks:
        generate(lm, prompt, Regex(pattern), method="smc", n_particles=4, max_tokens=max_tokens, seed=10_000)  # jit
        per_run, texts, walls = [], [], []
        with StepRecorder() as rec:
            for s in range(seeds):
                res = generate(
                    lm,
                    prompt,
                    Regex(pattern),
                    method="smc",
                    n_particles=4,
                    ess_threshold=0.5,
                    max_tokens=max_tokens,
                    seed=s,
                    estimator=estimator,
                    resampling="stratified",  # one AWRS step per particle and token: the steps recorded here
                )
                per_run.append(res.counts.checks / max(res.counts.tokens, 1))
                walls.append(res.counts.wall_time / max(res.counts.tokens, 1))
                texts.append(
                    max(res.text_posterior().items(), key=lambda kv: kv[1])[0]
                    if any(res.complete)
                    else "(none complete)"
                )
        checks = [c for c, _, _ in rec.steps]
        all_checks += checks
        fallbacks = sum(f for _, f, _ in rec.steps)
        fetched = sum(b for _, _, b in rec.steps)
        rows.append(
            (
                name,
                pattern,
                len(checks),
                sum(checks) / len(checks),
                statistics.median(checks),
                pct(checks, 90),
                max(checks),
                100.0 * fallbacks / len(checks),
                100.0 * fetched / len(checks),
                statistics.median(per_run),
                1000 * statistics.median(walls),
                texts[0],
            )
        )
    out("## (a) Constraint checks per generated token: SMC-AWRS (4 particles, ESS 0.5) vs masking\n")
    out(
        f"SmolLM2-135M-Instruct, |V| = {v}; estimator {estimator!r}; {seeds} seeds per task; a step is one "
        "particle's token (EOS included); a check is an `allows` call that reached the matcher (verdicts are "
        "memoised per run across particles in the same state). Masking evaluates all |V| tokens per step.\n"
    )
    out(
        "| task | regex | steps | checks/token (mean) | median over steps | p90 | max | steps hitting the cap "
        "(mask fetched) | steps on a mask fetched earlier in the run (exact, 0 checks) | median over runs of "
        "per-run mean | masking / AWRS (mean) | wall ms/token (SMC, median run) | top text, seed 0 |"
    )
    out("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |")
    for name, pattern, n, mean, med, p90, mx, fb, fetched, run_med, ms, text in rows:
        out(
            f"| {name} | `{pattern.replace('|', chr(92) + '|')}` | {n} | {mean:.2f} | {med:g} | {p90:g} | {mx} | "
            f"{fb:.1f}% | {fetched:.1f}% | {run_med:.2f} | {v / max(mean, 1e-9):,.0f}x | {ms:.1f} | `{text!r}` |"
        )
    out(
        f"\nAll tasks together: median checks per step {statistics.median(all_checks):g}, mean "
        f"{statistics.fmean(all_checks):.2f} (goal: median <= 1.5).\n"
    )


def part_b(lm, args, out: Printed) -> None:
    regex = Regex(PHONE)  # masking and rerank; each SMC run compiles its own Regex (its compile is timed)
    ids = prompt_ids(lm, PHONE_PROMPT)
    common = dict(n_particles=4, max_tokens=20, temperature=1.0)
    # warm-up: compile the regex, fill numba caches, touch every code path once
    warm = generate(lm, PHONE_PROMPT, Regex(PHONE), method="smc", ess_threshold=0.5, seed=999, **common)
    free_sampling(lm, ids, 4, len(warm.ess_history) - 1, 999)
    generate(lm, PHONE_PROMPT, regex, method="rerank", seed=999, **common)
    generate(lm, PHONE_PROMPT, regex, method="mask", seed=999, **common)

    load_before = os.getloadavg()[0]
    t_smc, t_free, t_rerank, t_mask, steps_used, checks, outs = [], [], [], [], [], [], []
    recorder = StepRecorder()
    for r in range(args.repeats):
        with recorder:
            res = generate(lm, PHONE_PROMPT, Regex(PHONE), method="smc", ess_threshold=0.5, seed=r, **common)
        t_smc.append(res.counts.wall_time)
        steps = len(res.ess_history) - 1  # model steps the SMC run took
        steps_used.append(steps)
        checks.append(res.counts.checks / res.counts.tokens)
        outs.append(res.texts)
        t_free.append(free_sampling(lm, ids, 4, steps, r))
        t_rerank.append(generate(lm, PHONE_PROMPT, regex, method="rerank", seed=r, **common).counts.wall_time)
        t_mask.append(generate(lm, PHONE_PROMPT, regex, method="mask", seed=r, **common).counts.wall_time)
    load_mid = os.getloadavg()[0]

    genlm = None
    if args.genlm_python is None:
        print("genlm-control: skipped (no --genlm-python given)", file=sys.stderr)
    elif not Path(args.genlm_python).exists():
        print(f"genlm-control: skipped ({args.genlm_python} does not exist)", file=sys.stderr)
    else:
        task = {
            "model": str(resolve(None)),
            "prompt_ids": ids,
            "eos_ids": sorted(lm.vocab.eos_ids),
            "regex": PHONE,
            "n_particles": 4,
            "ess_threshold": 0.5,
            "max_tokens": 20,
            "repeats": args.genlm_repeats,
            "seed": 0,
            "threads": torch.get_num_threads(),
        }
        helper = Path(__file__).with_name("_genlm_control_run.py")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [args.genlm_python, str(helper), json.dumps(task)],
            capture_output=True,
            text=True,
            env=env,
            timeout=args.genlm_timeout,
        )
        if proc.returncode != 0:
            print(f"genlm-control: failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
        else:
            genlm = json.loads(proc.stdout.strip().splitlines()[-1])
            genlm["process_s"] = time.perf_counter() - t0
    load_after = os.getloadavg()[0]

    med = statistics.median
    out("## (b) End-to-end wall time: phone number, 4 particles, ESS 0.5, max 20 tokens, SmolLM2 on CPU\n")
    out(
        f"torch threads {torch.get_num_threads()}; {args.repeats} repeats, interleaved; 1-min load average "
        f"{load_before:.2f} before, {load_mid:.2f} after the genlab runs, {load_after:.2f} after genlm-control. "
        f"SMC runs took {min(steps_used)}-{max(steps_used)} steps; free sampling draws that many tokens.\n"
    )
    out("| method | median s | min s | max s | per run |")
    out("| --- | --: | --: | --: | --- |")

    def row(label, ts):
        out(f"| {label} | {med(ts):.3f} | {min(ts):.3f} | {max(ts):.3f} | {', '.join(f'{t:.2f}' for t in ts)} |")

    row("genlab SMC-AWRS", t_smc)
    row("free sampling, 4 sequences, same length", t_free)
    row("genlab rerank (free samples + check)", t_rerank)
    row("genlab masking", t_mask)
    if genlm is not None:
        gl = [r["wall_s"] for r in genlm["runs"]]
        row("genlm-control AWRS SMC, cold (first run)", gl[:1])
        if len(gl) > 1:
            row("genlm-control AWRS SMC, warm", gl[1:])
        out(f"| genlm-control setup (load model, potentials, coerce) | {genlm['setup_s']:.3f} | | | |")
    out()
    ratio_free = med(t_smc) / med(t_free)
    out("| figure | value | goal |")
    out("| --- | --: | --- |")
    step_checks = [c for c, _, _ in recorder.steps]
    if step_checks:
        out(f"| checks per token, median over steps ({len(step_checks)} steps) | {med(step_checks):g} | <= 1.5 |")
    else:  # the default optimal resampling draws children per particle, not single AWRS steps: see part (a)
        out("| checks per token, median over steps | n/a (default SMC draws children; part (a) has steps) | |")
    out(f"| checks per token, mean (counts.checks / counts.tokens; median over runs) | {med(checks):.2f} | |")
    if step_checks:
        out(
            f"| steps that hit the rejection cap (one mask each) | "
            f"{100 * sum(f for _, f, _ in recorder.steps) / len(step_checks):.1f}% | |"
        )
        out(
            f"| steps on a mask fetched earlier in the run (exact, no checks) | "
            f"{100 * sum(b for _, _, b in recorder.steps) / len(step_checks):.1f}% | |"
        )
    out(f"| SMC-AWRS / free sampling (medians) | {ratio_free:.2f} | <= 1.5 |")
    if genlm is not None:
        gl = [r["wall_s"] for r in genlm["runs"]]
        warm_runs = gl[1:] or gl
        ratio = med(warm_runs) / med(t_smc)
        out(f"| genlm-control (warm median) / genlab SMC-AWRS (median) | {ratio:.1f}x | >= 50x |")
        out(f"| genlm-control (cold) / genlab SMC-AWRS (median) | {gl[0] / med(t_smc):.1f}x | |")
        gc = [r["checks"] / max(r["draws"], 1) for r in genlm["runs"]]
        out(
            f"| genlm-control checks per token (mean per run, median over runs; its vocabulary pruned to the "
            f"regex's bytes) | {med(gc):.2f} | |"
        )
    else:
        out("| genlm-control / genlab | skipped | >= 50x |")
    out("\ngenlab samples (repeat 0):", outs[0])
    if genlm is not None:
        out("genlm-control samples (run 0):", genlm["runs"][0]["texts"])
        bad = [t for r in genlm["runs"] for t in r["texts"] if t and not Regex(PHONE).check(t.encode())]
        if bad:
            out("genlm-control texts not matching the regex (incomplete particles?):", bad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 tasks, 2 repeats, 2 genlm-control runs")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per task in part (a)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per method in part (b)")
    parser.add_argument("--genlm-python", default=None, help="python of a venv with genlm-control 0.4.1")
    parser.add_argument("--genlm-repeats", type=int, default=3, help="genlm-control runs (first is cold)")
    parser.add_argument("--genlm-timeout", type=float, default=1800.0)
    parser.add_argument("--only", choices=["a", "b"], default=None)
    parser.add_argument("--estimator", default="recursive", help="AWRS estimator for part (a)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and in the genlm-control process (default: torch's default)",
    )
    parser.add_argument("--output", default="docs/benchmarks/awrs_cost.md", help="markdown file ('' for none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = CHECK_TASKS
    if args.quick:
        args.seeds, args.repeats, args.genlm_repeats = 2, 2, 2
        tasks = CHECK_TASKS[:3]
    lm = load(device="cpu")
    out = Printed()
    if args.only != "b":
        part_a(lm, args.seeds, tasks, args.estimator, out)
    if args.only != "a":
        part_b(lm, args, out)
    settings = f"SmolLM2-135M-Instruct, {lm!r}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPU cores"
    write_report(args.output, "AWRS cost", settings, out.text)


if __name__ == "__main__":
    main()
