"""Posterior quality and cost: KL(estimated text posterior || exact p(x | x in L)) and log P(L) error of SMC-AWRS.

Usage:
    python benchmarks/posterior_quality.py [--problems sky,json,...] [--seeds 5] [--goal-n 64]
        [--particles 16 64 256] [--cost-particles 16 64 256 1024] [--cost-seeds 2] [--samples 512]
        [--no-baselines] [--rerank N] [--diagnostics] [--genlm-python PATH | --no-genlm] [--threads 1]
        [--output FILE] [--quick]

A smoke run: `--problems sky,json --seeds 1 --particles 4 --goal-n 16 --cost-particles 4 16 --cost-seeds 1
--samples 32 --output /tmp/pq.md`. The full run (14 problems, 5 seeds, N up to 1024, genlm-control) is long: run
it on an otherwise idle machine; `--threads 1` is the robust choice on a machine shared with others.

The issue's goal, graded per problem and per seed: at N = 64 (`--goal-n`), the default sampler
(`generate(method="smc")`, optimal resampling, one model row per distinct prefix) has KL(estimate || exact) <= 0.05
nats and |log_marginal - exact log P(L)| <= 0.3 nats on EVERY seed, at <= 1.2x the wall time of the old path
(`method="smc", resampling="stratified", share_rows=False`, the sampler before optimal resampling) at the same N
on the same problem in the same run; model rows forwarded per step and wall time at N = 16, 64, 256, 1024, with
wall(N=256) <= 2x wall(N=16) on the small-language problems (at most 10 texts in L); and genlm-control 0.4.1's
SMC at N = 64 on the same problems as the anchor (its KL and time).

Problems. Each is a short prompt and a constraint (a factory builds a fresh one for every run, so no run starts
with masks or verdicts another run built) whose language is finite within `max_tokens` tokens (every
tokenization, non-canonical ones included), so `genlab.samplers.exact.exact_posterior` enumerates the true
conditional p(text | text in L) of SmolLM2-135M-Instruct (its time per problem goes to stderr). Most languages
hold strings whose first token is likely under the model but that are unlikely as wholes (" blue" ->
" blue-green.", " Tues" -> " Tuesdays."): token masking, which renormalises every step locally, walks into them;
the true conditional does not. Besides the 7 regexes of the first version: larger languages (`number`: 22 texts,
`eiffel`: 200 texts, `month`: 8 texts with 373 tokenizations), a small one (`weekday`), a JSON Schema with a
finite language (`json`: an object with an enum and a bounded integer, compact, 6 texts in 2,112 tokenizations)
and two `genlab.Pattern`s: a backreference (`palindrome`, 2 texts; its top path starts with a first token of
~7e-5 of the allowed mass, so a sampler that sees only the tokens it draws rarely finds it) and a lookahead
(`seven`, 18 texts). The lookahead is regular, so it compiles to its exact DFA, with masks; the backreference is
a DFA times a `regex` check, its masking columns say "n/a" (its masks cost a check per token), and its
enumeration checks the tokens its DFA allows. The lookahead is bounded because it was written for a DFA times a
check: the `regex` package's partial matching reports any text a lookahead's scan runs off the end of as a
partial match (`(?=[0-9]*7)` keeps " 000" alive), which breaks the prefix property; an exact DFA does not. Samplers get `max_tokens + 1` steps (their limit counts the EOS step, the enumeration's does
not). Temperature 1 throughout.

Tables (markdown on stdout, also written to `--output` with the date and command line; progress on stderr):

1. Problems: prompt, constraint, texts in L, token sequences, exact log P(L), the exact top text and masking's.
2. Goal at N = `--goal-n`, per seed: KL of the default for each seed, the max; |log_marginal - log P(L)| for each
   seed, the max; the old path's max KL and max |dlog Z|; wall time per run, default over old path (ratio of
   the seeds' total times, run interleaved); rows forwarded per step, default and old; PASS when every seed has
   KL <= 0.05 and |dlog Z| <= 0.3 and the ratio is <= 1.2. A run with no complete particle scores inf.
3. KL(estimate || exact), mean +/- standard error over seeds: mask (exact) = masking's own text distribution,
   prod_t p(x_t)/Z_t summed over tokenizations, computed exactly by the same breadth-first enumeration; mask
   (S samples) = `generate(method="mask")` frequencies; rejection (S samples) = `generate(method="rejection")`
   frequencies (locally constrained decoding, unweighted: masking's target, so its bias); these three are cheap
   and on unless `--no-baselines` (mask (exact) enumerates like the exact posterior); rerank (N) with
   `--rerank N` (free samples, the valid ones kept; P(L) is ~1e-3 to 1e-9 here, so usually none survive); the
   default SMC at each `--particles` N; the old path at the goal N; with `--diagnostics`, SMC-AWRS with the
   "two-pass" and "recursive-sparse" estimators and SMC with exact masking proposals (`method="smc-mask"`) at
   the goal N, all on the old path's settings except the estimator / proposal.
4. Seeds whose estimate's top text is the exact top text (the KL of a failed run is -log p(its texts), so means
   are bimodal: read them with this table).
5. Cost of the default: for each N in `--cost-particles`, over the first `--cost-seeds` seeds: model rows
   forwarded per step (`counts.rows / max(1, counts.model_calls - 1)`, the prompt's prefill not counted),
   forwards (`counts.model_calls`), wall time per run (`generate` call, constraint compile included), KL; then
   wall(N=256) / wall(N=16) per problem (goal <= 2 on small-language problems; others shown, not graded).
6. genlm-control 0.4.1 anchor at the goal N, all seeds: its SMC with AWRS
   (`AWRS(PromptedLLM, BoolFSA.from_regex(p).coerce(llm, f=b"".join)).smc(N, ess_threshold=0.5, max_tokens)`) on
   the same prompt token ids, EOS ids and model folder, run by `benchmarks/genlm_anchor.py` in a subprocess of
   another interpreter (`--genlm-python`, default `.venv-genlm/bin/python` in the repository root: a venv with
   `torch==2.13.0 genlm-control==0.4.1`, kept apart so genlab's own venv never holds genlm's dependencies).
   Regex problems get their regex; the JSON Schema and Pattern problems get the alternation of their language's
   texts as enumerated (the same finite language, so the same target; genlm-control's own JSON potential allows
   other whitespace, a different language), marked "regex of L's k texts". Per seed KL, max KL and max |dlog Z|,
   mean wall time per run (potentials built per run, the backend's cache cleared per run, like genlab's per-run
   compile and prefill) and its ratio to the default's mean wall time at the same N.

KL(q || p) = sum_x q(x) log(q(x) / p(x)) over texts. A text an estimate gives mass to that the exact posterior
lacks means a sampler emitted a string outside the language (or the enumeration missed one): that is a bug, and
is printed as such instead of a number.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from genlab import JsonSchema, Pattern, Regex, generate
from genlab.constraints.base import Constraint
from genlab.models import load
from genlab.samplers.exact import exact_posterior
from genlab.samplers.prompt import prompt_ids

ROOT = Path(__file__).resolve().parent.parent
KL_GOAL, DLOGZ_GOAL, TIME_GOAL, SCALE_GOAL = 0.05, 0.3, 1.2, 2.0
SMALL_LANGUAGE = 10  # at most this many texts in L: a "small-language" problem for the scaling goal


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    spec: str  # the constraint as shown in the tables
    make: Callable[[], Constraint]  # a fresh constraint for every run (each run compiles its own)
    max_tokens: int  # every tokenization of every string fits (for byte-level text: the longest string's bytes)
    regex: str | None = None  # regex problems: the pattern, also given to genlm-control's BoolFSA.from_regex
    masks: bool = True  # False for maskless constraints (Pattern): no masking columns

    @property
    def kind(self) -> str:
        return "regex" if self.regex is not None else "pattern" if not self.masks else "json"


def regex_problem(name: str, prompt: str, pattern: str, max_tokens: int) -> Problem:
    return Problem(name, prompt, f"`{pattern}`", lambda: Regex(pattern), max_tokens, regex=pattern)


JSON_SCHEMA = {
    "type": "object",
    "properties": {"c": {"enum": ["red", "blue"]}, "n": {"type": "integer", "minimum": 1, "maximum": 3}},
    "required": ["c", "n"],
    "additionalProperties": False,
}
PALINDROME = r" (B|D)o\1\."
SEVEN = r" (?=[1-9]7\.|7[0-9]\.)[0-9][0-9]\."  # a bounded lookahead: see the module docstring

PROBLEMS = [
    # PEERS.md's problem: true conditional " red." ~0.945, masking " blue-green." ~0.78.
    regex_problem("sky", "The color of the sky is", r" (red|grey|blue-green|bluish)\.", 12),
    regex_problem("france", "The capital of France is", r" (Parisian|Lyon|Nice)\.", 10),
    regex_problem("yes-no", "Q: Is water wet?\nA:", r" (Yessir|Nope|Sure)\.", 8),
    regex_problem("ww2-year", "World War II ended in", r" (19[0-9]|May|June)\.", 6),
    regex_problem("opposite", "The opposite of hot is", r" (coldish|warm|cool)\.", 9),
    regex_problem("fruit", "My favourite fruit is the", r" (applet|pear|plum|kiwi)\.", 8),
    regex_problem("arithmetic", "2 + 2 =", r" (4[0-9]|[0-35-9])\.", 4),
    # larger languages: 22 texts (one tokenization each: digits are single tokens), 200 texts, 8 texts in 373
    # tokenizations
    regex_problem("number", "Pick a number from 1 to 22:", r" ([1-9]|1[0-9]|2[0-2])\.", 4),
    regex_problem("eiffel", "The Eiffel Tower was completed in the year", r" 1[89][0-9][0-9]\.", 6),
    regex_problem(
        "month", "Christmas is in the month of", r" (January|March|May|June|July|August|October|December)\.", 10
    ),
    # small: " Tues" is likely, " Tuesdays." is not
    regex_problem("weekday", "The day after Monday is", r" (Tuesdays|Wednesday|Sunday)\.", 11),
    # a JSON Schema with a finite language: {"c":"red","n":1} ... {"c":"blue","n":3}, compact; 2,112 tokenizations
    Problem(
        "json",
        'Colours as JSON:\n{"c":"green","n":5}\n{"c":"pink","n":7}\n',
        "JSON Schema " + json.dumps(JSON_SCHEMA, separators=(",", ":")).replace("|", "\\|"),
        lambda: JsonSchema(JSON_SCHEMA),
        18,
    ),
    # genlab.Pattern (a DFA times a check). A backreference: " BoB." or " DoD."; hard for any sampler that sees only
    # the tokens it draws: the top path starts with " Bo", ~7e-5 of the allowed first tokens' mass (" " has ~0.9)
    Problem(
        "palindrome",
        "A three-letter name that reads the same backwards:",
        f"Pattern `{PALINDROME}`",
        lambda: Pattern(PALINDROME),
        5,
        masks=False,
    ),
    # a lookahead: the 18 two-digit numbers with a 7 in them (regular: an exact DFA)
    Problem("seven", "Pick a two-digit number with a 7 in it:", f"Pattern `{SEVEN}`", lambda: Pattern(SEVEN), 4),
]


def masking_distribution(lm, prompt, constraint, max_tokens: int) -> dict[str, float]:
    """Token masking's text distribution, exactly: sum over token sequences of prod_t p(x_t) 1[allowed] / Z_t,
    EOS (all EOS ids as one outcome) included as the last step. Breadth-first, one batched forward per depth."""
    vocab = lm.vocab
    matcher = constraint.compile(vocab)
    eos_ids = sorted(t for t in vocab.eos_ids if t < lm.vocab_size)
    eos = set(eos_ids)
    batch = lm.prefill(prompt_ids(lm, prompt), 1)
    frontier = [((), matcher.start(), 0.0)]  # (tokens, state, log q(tokens))
    out: dict[str, float] = {}
    for depth in range(max_tokens + 1):
        with torch.inference_mode():
            logp = batch.logprobs().double().cpu().numpy()
        parents, children = [], []
        for k, (ids, state, log_q) in enumerate(frontier):
            allowed = np.flatnonzero(np.asarray(matcher.mask(state), dtype=bool))
            row = logp[k]
            log_z = np.logaddexp.reduce(row[allowed]) if allowed.size else -math.inf
            if matcher.is_final(state):
                log_end = np.logaddexp.reduce(row[eos_ids])
                text = vocab.decode(ids).decode("utf-8", errors="surrogateescape")
                out[text] = out.get(text, 0.0) + math.exp(log_q + log_end - log_z)
            for t in allowed.tolist():
                if t in eos:
                    continue
                if depth == max_tokens:
                    raise RuntimeError(f"language not finite within {max_tokens} tokens")
                parents.append(k)
                children.append((ids + (t,), matcher.advance(state, t), log_q + row[t] - log_z))
        if not children:
            break
        batch.select(parents)
        batch.extend([ids[-1] for ids, _, _ in children])
        frontier = children
    return out


class NotInLanguage(Exception):
    """An estimate put mass on a text the exact posterior does not have."""


def kl(estimate: dict[str, float], exact: dict[str, float]) -> float:
    """KL(estimate || exact) over texts; raises NotInLanguage for a text outside the exact support."""
    missing = [t for t, p in estimate.items() if p > 0 and t not in exact]
    if missing:
        raise NotInLanguage(missing)
    return float(sum(p * math.log(p / exact[t]) for t, p in estimate.items() if p > 0))


def frequencies(result) -> dict[str, float]:
    """Unweighted empirical distribution of the complete samples' texts (empty if none is complete)."""
    texts = [t for t, ok in zip(result.texts, result.complete) if ok]
    out: dict[str, float] = {}
    for t in texts:
        out[t] = out.get(t, 0.0) + 1.0 / len(texts)
    return out


def cell_single(estimate: dict[str, float], exact: dict[str, float], bugs: list[str], label: str) -> str:
    if not estimate:
        return "no valid sample"
    try:
        return f"{kl(estimate, exact):.3f}"
    except NotInLanguage as e:
        bugs.append(f"{label}: mass on texts outside the exact posterior: {e.args[0]!r}")
        return "BUG (text not in L)"


def cell_seeds(values: list[float | None], bug: bool) -> str:
    """mean +/- s.e. over the seeds that had a valid sample."""
    if bug:
        return "BUG (text not in L)"
    ok = [v for v in values if v is not None]
    if not ok:
        return f"no valid sample (0/{len(values)})"
    mean = statistics.fmean(ok)
    tail = "" if len(ok) == len(values) else f" [{len(ok)}/{len(values)} seeds valid]"
    if len(ok) == 1:
        return f"{mean:.3f}{tail}"
    se = statistics.stdev(ok) / math.sqrt(len(ok))
    return f"{mean:.3f} ± {se:.3f}{tail}"


def top(d: dict[str, float]) -> str:
    text, p = max(d.items(), key=lambda kv: kv[1])
    return f"`{text!r}` {p:.3f}"


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.{digits}f}"


def worst(values: list[float | None]) -> float:
    """The max over seeds; a seed without a value (no complete particle) counts as inf."""
    return max((math.inf if v is None else v) for v in values) if values else math.nan


@dataclass
class Run:
    """One sampler run on one problem and seed."""

    kl: float | None  # None: no complete particle
    dlogz: float  # |log_marginal - exact log P(L)| (inf when no complete particle)
    wall: float  # seconds around the generate() call, constraint compile included
    forwards: int
    rows_per_step: float | None  # None when the sampler does not count rows
    hit: bool  # the estimate's top text is the exact top text
    bug: bool = False


@dataclass
class Scored:
    """Everything measured on one problem."""

    prob: Problem
    exact: dict[str, float]
    n_sequences: int
    log_z: float
    t_exact: float
    mask_exact: dict[str, float] | None
    mask_freq: dict[str, float] | None
    rej_freq: dict[str, float] | None
    rerank: list[float | None] = field(default_factory=list)
    rerank_bug: bool = False
    runs: dict[tuple[str, int], dict[int, Run]] = field(default_factory=dict)  # (variant, N) -> seed -> Run


def run_once(
    lm,
    prob: Problem,
    exact: dict[str, float],
    log_z: float,
    n: int,
    seed: int,
    options: dict,
    bugs: list[str],
    label: str,
) -> Run:
    constraint = prob.make()  # a fresh constraint: no masks or verdicts from other runs
    t = time.perf_counter()
    result = generate(
        lm,
        prob.prompt,
        constraint,
        n_particles=n,
        seed=seed,
        max_tokens=prob.max_tokens + 1,
        temperature=1.0,
        heal=False,  # the exact posterior and masking's distribution are of the prompt's own tokens
        **options,
    )
    wall = time.perf_counter() - t
    est = result.text_posterior()
    counts = result.counts
    rows = getattr(counts, "rows", None)
    rows_per_step = None if rows is None else rows / max(1, counts.model_calls - 1)
    lm_hat = result.log_marginal
    dlogz = abs(lm_hat - log_z) if math.isfinite(lm_hat) else math.inf
    exact_top = max(exact, key=exact.get)
    hit = bool(est) and max(est, key=est.get) == exact_top
    try:
        value = kl(est, exact) if est else None
        bug = False
    except NotInLanguage as e:
        value, bug = None, True
        bugs.append(f"{prob.name} {label} N={n} seed {seed}: mass outside the exact posterior: {e.args[0]!r}")
    return Run(value, dlogz, wall, counts.model_calls, rows_per_step, hit, bug)


def old_path_options() -> dict:
    """The sampler before optimal resampling and row sharing, if this genlab has those options."""
    smc_module = importlib.import_module("genlab.samplers.smc")  # genlab.samplers.smc is also the function's name
    params = inspect.signature(smc_module.smc).parameters
    opts = dict(method="smc", ess_threshold=0.5, resampling="stratified")
    if "share_rows" in params:
        opts["share_rows"] = False
    return opts


def run_genlm(args, lm, scored: list[Scored], n: int) -> tuple[dict[str, dict], str | None]:
    """genlm-control's SMC on the regex problems in one subprocess; (results by problem name, reason if none)."""
    if args.no_genlm:
        return {}, "skipped (--no-genlm)"
    python = Path(args.genlm_python) if args.genlm_python else ROOT / ".venv-genlm" / "bin" / "python"
    if not python.exists():
        return {}, f"no genlm-control interpreter at {python} (see the module docstring)"
    tasks = scored
    vocab = lm.vocab
    job = {
        "model": str(getattr(lm, "folder", None) or _model_folder()),
        "threads": torch.get_num_threads(),
        "eos_ids": sorted(int(t) for t in vocab.eos_ids if t < lm.vocab_size),
        "n_particles": n,
        "ess_threshold": 0.5,
        "seeds": list(range(args.seeds)),
        "problems": [
            {
                "name": s.prob.name,
                "prompt_ids": prompt_ids(lm, s.prob.prompt),
                "regex": anchor_regex(s),
                "max_tokens": s.prob.max_tokens + 1,
            }
            for s in tasks
        ],
    }
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    print(
        f"genlm-control: {python} benchmarks/genlm_anchor.py on {len(tasks)} problems x {args.seeds} seeds",
        file=sys.stderr,
    )
    try:
        proc = subprocess.run(
            [str(python), str(Path(__file__).with_name("genlm_anchor.py"))],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            timeout=args.genlm_timeout,
        )
    except subprocess.TimeoutExpired:
        return {}, f"timed out after {args.genlm_timeout} s"
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {}, f"failed (exit {proc.returncode}: {last[:200]})"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out.get("error"):
        return {}, out["error"]
    return {p["name"]: p for p in out["problems"]}, None


def anchor_regex(s: Scored) -> str:
    """The regex genlm-control gets: the problem's own, or (JSON Schema, Pattern) the alternation of the texts of
    its finite language, as enumerated: the same language, so the same target."""
    if s.prob.regex is not None:
        return s.prob.regex
    return "(" + "|".join(re.escape(t) for t in sorted(s.exact)) + ")"


def _model_folder() -> str:
    from genlab.models.loading import resolve

    return str(resolve(None))


class Report:
    """Lines printed to stdout and kept for the markdown file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def table(self, heads: list[str], rows: list[list[str]], align: list[str] | None = None) -> None:
        align = align or ["---"] + ["--:"] * (len(heads) - 1)
        self("| " + " | ".join(heads) + " |")
        self("| " + " | ".join(align) + " |")
        for row in rows:
            self("| " + " | ".join(row) + " |")
        self()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 problems, 2 seeds, 128 samples, N = 16 64, cost at N = 16 64 over 1 seed",
    )
    parser.add_argument("--problems", default=None, help="comma-separated problem names (default: all)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per SMC setting (goal: every seed passes)")
    parser.add_argument("--goal-n", type=int, default=64, help="N of the goal table, the old path and genlm-control")
    parser.add_argument(
        "--particles",
        type=int,
        nargs="+",
        default=[16, 64, 256],
        help="N of the default's KL columns (over all seeds; the goal N is always run)",
    )
    parser.add_argument(
        "--cost-particles",
        type=int,
        nargs="*",
        default=[16, 64, 256, 1024],
        help="N of the cost table (nothing: no cost table)",
    )
    parser.add_argument("--cost-seeds", type=int, default=2, help="seeds per N in the cost table (reuses KL runs)")
    parser.add_argument("--samples", type=int, default=512, help="samples for the mask and rejection columns")
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="skip the mask (exact), mask (sampled) and rejection columns",
    )
    parser.add_argument("--rerank", type=int, default=0, help="free samples per rerank run (0: no rerank column)")
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="at the goal N: two-pass and recursive-sparse estimators, SMC-mask (old path's settings)",
    )
    parser.add_argument(
        "--genlm-python", default=None, help="interpreter with genlm-control 0.4.1 (default: .venv-genlm/bin/python)"
    )
    parser.add_argument("--no-genlm", action="store_true", help="skip the genlm-control anchor")
    parser.add_argument("--genlm-timeout", type=float, default=7200.0, help="seconds for the whole anchor subprocess")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1 is far more robust on a machine shared with others)",
    )
    parser.add_argument(
        "--output",
        default=str(ROOT / "docs" / "benchmarks" / "posterior_quality.md"),
        help="markdown file for the tables ('' for none)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    problems = PROBLEMS
    if args.quick:
        args.seeds, args.samples, args.particles = 2, 128, [16, 64]
        args.cost_particles, args.cost_seeds = [16, 64], 1
        problems = PROBLEMS[:3]
    if args.problems:
        wanted = args.problems.split(",")
        unknown = set(wanted) - {p.name for p in PROBLEMS}
        if unknown:
            parser.error(f"unknown problems {sorted(unknown)}; choose from {[p.name for p in PROBLEMS]}")
        problems = [p for p in PROBLEMS if p.name in wanted]
    goal = args.goal_n
    kl_ns = sorted(set(args.particles) | {goal})
    cost_ns = sorted(set(args.cost_particles))
    cost_seeds = args.cost_seeds if cost_ns else 0
    default = dict(method="smc", ess_threshold=0.5)  # the library's default resampling and row sharing
    old = old_path_options()
    extra = []  # (key, options) of the diagnostic variants at the goal N
    if args.diagnostics:
        extra = [
            ("two-pass", dict(old, estimator="two-pass")),
            ("recursive-sparse", dict(old, estimator="recursive-sparse")),
            ("smc-mask", dict(old, method="smc-mask")),
        ]

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    t_start = time.perf_counter()
    lm = load(device="cpu")
    print(
        f"SmolLM2-135M-Instruct, |V| = {lm.vocab_size}, torch threads = {torch.get_num_threads()}, seeds = "
        f"{args.seeds}, N = {kl_ns}, cost N = {cost_ns} x {cost_seeds} seeds, old path = {old}",
        file=sys.stderr,
    )
    if "share_rows" not in old:
        print(
            "  note: this genlab's smc has no share_rows: the old path is resampling='stratified' only", file=sys.stderr
        )

    bugs: list[str] = []
    scored: list[Scored] = []
    for prob in problems:
        t0 = time.perf_counter()
        ex = exact_posterior(lm, prob.prompt, prob.make(), max_tokens=prob.max_tokens)
        exact = ex.text_posterior(lm.vocab)
        t_exact = time.perf_counter() - t0
        print(
            f"  {prob.name}: exact enumeration {t_exact:.1f} s ({len(exact)} texts, {len(ex.sequences)} token "
            f"sequences, log P(L) = {ex.log_marginal:.3f})",
            file=sys.stderr,
        )
        common = dict(max_tokens=prob.max_tokens + 1, temperature=1.0, heal=False)
        t1 = time.perf_counter()
        mask_exact = mask_freq = None
        if prob.masks and args.baselines:
            mask_exact = masking_distribution(lm, prob.prompt, prob.make(), prob.max_tokens)
            if abs(sum(mask_exact.values()) - 1) > 1e-6:
                bugs.append(f"{prob.name}: masking distribution sums to {sum(mask_exact.values())}")
            masked = generate(lm, prob.prompt, prob.make(), method="mask", n_particles=args.samples, seed=0, **common)
            mask_freq = frequencies(masked)
        rej_freq = None
        if args.baselines:
            rejection = generate(
                lm, prob.prompt, prob.make(), method="rejection", n_particles=args.samples, seed=0, **common
            )
            rej_freq = frequencies(rejection)
        s = Scored(prob, exact, len(ex.sequences), ex.log_marginal, t_exact, mask_exact, mask_freq, rej_freq)
        t_base = time.perf_counter() - t1
        t1 = time.perf_counter()
        for seed in range(args.seeds if args.rerank else 0):
            est = generate(
                lm, prob.prompt, prob.make(), method="rerank", n_particles=args.rerank, seed=seed, **common
            ).text_posterior()
            try:
                s.rerank.append(kl(est, exact) if est else None)
            except NotInLanguage as e:
                s.rerank_bug = True
                bugs.append(f"{prob.name} rerank seed {seed}: mass outside the exact posterior: {e.args[0]!r}")
        t_rerank = time.perf_counter() - t1

        t1 = time.perf_counter()
        for seed in range(max(args.seeds, cost_seeds)):
            ns = [
                n
                for n in sorted(set(kl_ns) | set(cost_ns))
                if (n in kl_ns and seed < args.seeds) or (n in cost_ns and seed < cost_seeds)
            ]
            for n in ns:
                jobs = [("default", default)]
                if n == goal and seed < args.seeds:
                    # interleaved, alternating order: the ratio sees the same machine load on both sides
                    jobs = jobs + [("old", old)] if seed % 2 == 0 else [("old", old)] + jobs
                    jobs += extra
                for key, options in jobs:
                    run = run_once(lm, prob, exact, ex.log_marginal, n, seed, options, bugs, key)
                    s.runs.setdefault((key, n), {})[seed] = run
            print(
                f"    {prob.name} seed {seed}: "
                + ", ".join(
                    f"N={n} KL {fmt(s.runs[('default', n)][seed].kl)} {s.runs[('default', n)][seed].wall:.1f} s"
                    for n in ns
                ),
                file=sys.stderr,
            )
        scored.append(s)
        print(
            f"  {prob.name}: all {time.perf_counter() - t0:.1f} s (exact {t_exact:.1f} s, mask+rejection "
            f"{t_base:.1f} s, rerank {t_rerank:.1f} s, SMC {time.perf_counter() - t1:.1f} s)",
            file=sys.stderr,
        )

    genlm, genlm_reason = run_genlm(args, lm, scored, goal)
    total = time.perf_counter() - t_start

    out = Report()
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out(f"# Posterior quality and cost of SMC-AWRS ({stamp})\n")
    out(f"Command: `{command}`\n")
    out(
        f"SmolLM2-135M-Instruct on the CPU, torch threads = {torch.get_num_threads()}, temperature 1, "
        f'{args.seeds} seeds, default = `generate(method="smc")` (library defaults but `heal=False`: the exact '
        "posterior is of the prompt's own tokens), old path = "
        f"`{', '.join(f'{k}={v!r}' for k, v in old.items())}`. What each column is: the module docstring of "
        "`benchmarks/posterior_quality.py`.\n"
    )

    out("## Problems\n")
    rows = []
    for s in scored:
        rows.append(
            [
                s.prob.name,
                f"`{s.prob.prompt!r}`",
                s.prob.spec.replace("|", "\\|"),
                str(len(s.exact)),
                str(s.n_sequences),
                f"{s.log_z:.3f}",
                f"{s.t_exact:.1f}",
                top(s.exact),
                top(s.mask_exact) if s.mask_exact else "n/a (no masks)" if not s.prob.masks else "—",
            ]
        )
    out.table(
        [
            "problem",
            "prompt",
            "constraint",
            "texts in L",
            "token sequences",
            "log P(L)",
            "enumeration s",
            "exact top text, p",
            "masking top text, p (exact)",
        ],
        rows,
        ["---", "---", "---", "--:", "--:", "--:", "--:", "---", "---"],
    )

    seeds = list(range(args.seeds))
    out(
        f"## Goal at N = {goal}: every seed KL <= {KL_GOAL}, |dlog Z| <= {DLOGZ_GOAL}, wall default / old <= "
        f"{TIME_GOAL}\n"
    )
    heads = (
        ["problem"]
        + [f"KL s{k}" for k in seeds]
        + ["max KL"]
        + [f"\\|dlogZ\\| s{k}" for k in seeds]
        + [
            "max \\|dlogZ\\|",
            "old: max KL",
            "old: max \\|dlogZ\\|",
            "wall default s",
            "wall old s",
            "default / old",
            "rows/step default",
            "rows/step old",
            "goal",
        ]
    )
    rows, passed = [], 0
    for s in scored:
        new_runs, old_runs = s.runs[("default", goal)], s.runs[("old", goal)]
        kls = [new_runs[k].kl for k in seeds]
        dls = [new_runs[k].dlogz for k in seeds]
        bug = any(new_runs[k].bug for k in seeds)
        w_new = sum(new_runs[k].wall for k in seeds)
        w_old = sum(old_runs[k].wall for k in seeds)
        ratio = w_new / w_old if w_old > 0 else math.inf
        ok_kl, ok_dl, ok_t = worst(kls) <= KL_GOAL, worst(dls) <= DLOGZ_GOAL, ratio <= TIME_GOAL
        verdict = (
            "BUG"
            if bug
            else "PASS"
            if ok_kl and ok_dl and ok_t
            else "fail ("
            + ", ".join(what for what, ok in (("KL", ok_kl), ("logZ", ok_dl), ("time", ok_t)) if not ok)
            + ")"
        )
        passed += verdict == "PASS"

        def rows_cell(runs):
            r = [runs[k].rows_per_step for k in seeds]
            return "n/a" if any(v is None for v in r) else f"{statistics.fmean(r):.1f}"

        rows.append(
            [
                s.prob.name,
                *[fmt(v) for v in kls],
                fmt(worst(kls)),
                *[fmt(v) for v in dls],
                fmt(worst(dls)),
                fmt(worst([old_runs[k].kl for k in seeds])),
                fmt(worst([old_runs[k].dlogz for k in seeds])),
                f"{w_new / len(seeds):.2f}",
                f"{w_old / len(seeds):.2f}",
                f"{ratio:.2f}",
                rows_cell(new_runs),
                rows_cell(old_runs),
                verdict,
            ]
        )
    out.table(heads, rows, ["---"] + ["--:"] * (len(heads) - 2) + ["---"])
    out(
        f"{passed} of {len(scored)} problems pass. Wall columns: mean seconds per run; default / old: ratio of the "
        "seeds' total wall times (runs interleaved). A seed with no complete particle scores inf.\n"
    )

    out(f"## KL(estimate || exact posterior), nats (SMC and rerank: mean ± s.e. over {args.seeds} seeds)\n")
    variants = (
        [(f"SMC N={n}", ("default", n)) for n in kl_ns]
        + [(f"old path N={goal}", ("old", goal))]
        + [(f"{key} N={goal}", (key, goal)) for key, _ in extra]
    )
    heads = ["problem"]
    if args.baselines:
        heads += ["mask (exact)", f"mask ({args.samples} samples)", f"rejection ({args.samples} samples)"]
    if args.rerank:
        heads.append(f"rerank (N={args.rerank})")
    heads += [label for label, _ in variants]
    rows, hit_rows = [], []
    for s in scored:
        name = s.prob.name
        row = [name]
        if args.baselines and s.prob.masks:
            row += [
                cell_single(s.mask_exact, s.exact, bugs, f"{name} mask exact"),
                cell_single(s.mask_freq, s.exact, bugs, f"{name} mask sampled"),
            ]
        elif args.baselines:
            row += ["n/a (no masks)", "n/a (no masks)"]
        if args.baselines:
            row.append(cell_single(s.rej_freq, s.exact, bugs, f"{name} rejection"))
        if args.rerank:
            row.append(cell_seeds(s.rerank, s.rerank_bug))
        hit_row = [name]
        for _, key in variants:
            runs = [s.runs[key][k] for k in seeds]
            row.append(cell_seeds([r.kl for r in runs], any(r.bug for r in runs)))
            hit_row.append(f"{sum(r.hit for r in runs)}/{len(runs)}")
        rows.append(row)
        hit_rows.append(hit_row)
    out.table(heads, rows)
    out(f"## Seeds (of {args.seeds}) whose estimate's top text is the exact top text\n")
    out.table(["problem"] + [label for label, _ in variants], hit_rows)

    if cost_ns and cost_seeds:
        out(f"## Cost of the default (mean over {cost_seeds} seeds per N)\n")
        rows = []
        for s in scored:
            for n in cost_ns:
                runs = [s.runs[("default", n)][k] for k in range(cost_seeds)]
                rps = [r.rows_per_step for r in runs]
                kls = [r.kl for r in runs]
                rows.append(
                    [
                        s.prob.name,
                        str(len(s.exact)),
                        str(n),
                        "n/a" if any(v is None for v in rps) else f"{statistics.fmean(rps):.1f}",
                        f"{statistics.fmean(r.forwards for r in runs):.1f}",
                        f"{statistics.fmean(r.wall for r in runs):.2f}",
                        fmt(statistics.fmean(kls)) if all(v is not None for v in kls) else "inf",
                        fmt(statistics.fmean(r.dlogz for r in runs)),
                    ]
                )
        out.table(
            [
                "problem",
                "texts in L",
                "N",
                "rows / step",
                "forwards",
                "wall s / run",
                "KL (mean)",
                "\\|dlogZ\\| (mean)",
            ],
            rows,
        )
        lo = 16 if 16 in cost_ns else cost_ns[0]
        hi = 256 if 256 in cost_ns else cost_ns[-1]
        if hi <= lo:
            lo, hi = cost_ns[0], cost_ns[-1]
        out(
            f"Scaling: wall(N={hi}) / wall(N={lo}) of the default, goal <= {SCALE_GOAL} on small-language problems "
            f"(at most {SMALL_LANGUAGE} texts in L; others are shown, not graded).\n"
        )
        rows = []
        for s in scored:
            w = {n: statistics.fmean(s.runs[("default", n)][k].wall for k in range(cost_seeds)) for n in (lo, hi)}
            ratio = w[hi] / w[lo] if w[lo] > 0 else math.inf
            small = len(s.exact) <= SMALL_LANGUAGE
            verdict = ("PASS" if ratio <= SCALE_GOAL else "fail") if small and lo != hi else "—"
            rows.append(
                [s.prob.name, "small" if small else "larger", f"{w[lo]:.2f}", f"{w[hi]:.2f}", f"{ratio:.2f}", verdict]
            )
        out.table(
            ["problem", "language", f"wall N={lo} s", f"wall N={hi} s", "ratio", "goal"],
            rows,
            ["---", "---", "--:", "--:", "--:", "---"],
        )

    out(f"## genlm-control 0.4.1 anchor at N = {goal} (its SMC with AWRS, ess_threshold 0.5)\n")
    if genlm_reason:
        out(f"n/a ({genlm_reason})\n")
    else:
        heads = (
            ["problem"]
            + [f"KL s{k}" for k in seeds]
            + [
                "max KL",
                "max \\|dlogZ\\|",
                "wall s / run",
                f"genlab default wall s (N={goal})",
                "genlm-control / genlab",
                "genlab max KL",
            ]
        )
        rows = []
        for s in scored:
            g = genlm.get(s.prob.name)
            if g is None:
                rows.append([s.prob.name, "n/a (no result)", *[""] * (len(heads) - 2)])
                continue
            kls, dls, walls = [], [], []
            for run in g["runs"]:
                post = {t: p for t, p in run["posterior"].items() if p > 0}
                try:
                    kls.append(kl(post, s.exact) if post else None)
                except NotInLanguage as e:
                    kls.append(math.nan)
                    bugs.append(f"{s.prob.name} genlm-control seed {run['seed']}: texts outside L: {e.args[0]!r}")
                lml = run["log_marginal"]
                dls.append(abs(lml - s.log_z) if lml is not None and math.isfinite(lml) else math.inf)
                walls.append(run["wall_s"])
            ours = statistics.fmean(s.runs[("default", goal)][k].wall for k in seeds)
            mean_wall = statistics.fmean(walls)
            name = s.prob.name if s.prob.regex else f"{s.prob.name} (regex of L's {len(s.exact)} texts)"
            rows.append(
                [
                    name,
                    *[fmt(v) for v in kls],
                    fmt(worst(kls)),
                    fmt(worst(dls)),
                    f"{mean_wall:.2f}",
                    f"{ours:.2f}",
                    f"{mean_wall / ours:.1f}",
                    fmt(worst([s.runs[("default", goal)][k].kl for k in seeds])),
                ]
            )
        out.table(heads, rows)
        setup = {name: round(g.get("setup_s", 0.0), 1) for name, g in genlm.items()}
        out(f"genlm-control setup (model load once, then per problem): {setup}\n")

    if bugs:
        out("BUGS:")
        for b in bugs:
            out(f"  - {b}")
    else:
        out("No estimate put mass on a text outside the exact posterior's support.")
    out(f"\nWall time of the whole benchmark {total:.0f} s (exact enumeration {sum(s.t_exact for s in scored):.0f} s).")
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(out.lines) + "\n")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
