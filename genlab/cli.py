"""The `genlab` command: constrained generation from the shell.

  genlab generate PROMPT --regex P        weighted outputs that fullmatch P (SMC with AWRS by default)
  genlab compare PROMPT --json-schema F   token masking beside SMC-AWRS, same prompt, constraint and seed
  genlab batch IN.jsonl OUT.jsonl --regex P  every record of a JSONL file, resumable, optionally on Ray (--ray)
  genlab serve --port 8000                an OpenAI-compatible HTTP server with constrained outputs
  genlab demo                             JSON Schema, regex and text-to-SQL runs on the default model, timed

A constraint is one of --regex, --json-schema FILE, --pydantic module:Class, --grammar FILE.lark|NAME, --sql DB.
Prompts go through the model's chat template unless --raw. User errors print one line `genlab: error: ...` and
exit with status 1 (2 for bad command lines); --debug shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from genlab import jit
from genlab.cache import kernels_compiled

if TYPE_CHECKING:
    from genlab.samplers.result import GenerationResult

METHOD_HELP = {
    "smc": "SMC with AWRS proposals: the model's own conditional p(x | constraint)",
    "smc-mask": "SMC with exact masking proposals",
    "awrs": "AWRS importance sampling, no resampling",
    "mask": "token masking: fast, locally renormalised (biased), with importance weights",
    "rejection": "locally constrained decoding by rejection, unweighted",
    "rerank": "free samples, kept when they satisfy the constraint",
}


class UsageError(Exception):
    """A mistake on the command line or in a file it names: reported in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one `genlab: error: ...` line pointing at --help (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"genlab: error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------------------------- constraints


def build_constraint(args: argparse.Namespace):
    """The constraint the flags name; file and import problems raise `UsageError`, bad specs genlab's errors."""
    import genlab

    if args.regex is not None:
        return genlab.Regex(args.regex)
    if args.json_schema is not None:
        try:
            return genlab.JsonSchema(_read_json(args.json_schema, "schema"))
        except genlab.SchemaError as err:
            raise UsageError(f"schema file {args.json_schema!r}: {err}") from err
    if args.pydantic is not None:
        return genlab.JsonSchema(_import_model(args.pydantic))
    if args.grammar is not None:
        spec = args.grammar
        path = Path(spec).expanduser()
        if path.is_file():
            return genlab.Grammar.from_file(path)
        if spec.endswith(".lark") or os.sep in spec or "/" in spec:
            raise UsageError(f"grammar file {spec!r} does not exist")
        return genlab.Grammar.shipped(spec)
    if args.sql is not None:
        path = Path(args.sql).expanduser()
        if not path.is_file():
            raise UsageError(f"database file {args.sql!r} does not exist")
        try:
            from genlab import SQL
        except ImportError as err:
            raise UsageError(f"the SQL constraint is not available in this installation ({err})") from err
        return SQL(path)
    raise UsageError("give a constraint: --regex, --json-schema, --pydantic, --grammar or --sql")


def _read_json(name: str, what: str):
    """JSON from a file (or `-` for stdin), with the file name and position in any error."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file {name!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {what} file {name!r}: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{what} file {name!r} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _import_model(spec: str):
    """The Pydantic model class `module:Class` names (the current directory is importable, as for `python -m`)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--pydantic takes module:Class (e.g. models:Person), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"cannot import module {module_name!r}: {err}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and callable(getattr(obj, "model_json_schema", None))):
        raise UsageError(f"{spec} is not a Pydantic model class (got {type(obj).__name__})")
    return obj


# ---------------------------------------------------------------------------------------------------- running


def _load_model(args: argparse.Namespace):
    from genlab.models import load

    if args.quiet or not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return load(args.model, device=args.device)


def _prompt(lm, args: argparse.Namespace):
    """Chat messages when the tokenizer has a chat template (and not --raw), else the plain text."""
    if args.raw or not getattr(lm.tokenizer, "chat_template", None):
        return args.prompt, "raw text"
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    return messages, "chat template"


def _run(lm, prompt, constraint, method: str, args: argparse.Namespace, label: str | None = None):
    """One `genlab.generate` call with a per-step progress bar on stderr (off with --quiet or when not a TTY)."""
    from tqdm import tqdm

    from genlab.generate import generate

    bar = tqdm(
        total=args.max_tokens, desc=label or method, unit="step", leave=False, disable=True if args.quiet else None
    )

    def progress(step: int, running: int) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(running=running, refresh=False)

    try:
        return generate(
            lm,
            prompt,
            constraint,
            method=method,
            n_particles=args.particles,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            drafts=args.drafts,
            heal=args.heal,
            progress=progress,
        )
    finally:
        bar.close()


def _run_json(args: argparse.Namespace, prompt_kind: str) -> dict:
    return {
        "prompt": args.prompt,
        "chat": prompt_kind == "chat template",
        "model": args.model,
        "constraint": describe_constraint(args),
        "particles": args.particles,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
    }


def _result_json(result, constraint) -> dict:
    from genlab import JsonSchema

    out = result.to_dict()
    if not isinstance(constraint, JsonSchema):  # parsed values only where the outputs are JSON
        out.pop("parsed")
    return out


def describe_constraint(args: argparse.Namespace) -> str:
    """The constraint as the command line named it, e.g. "grammar arithmetic (shipped)"."""
    if args.regex is not None:
        return f"regex {args.regex!r}"
    if args.json_schema is not None:
        return f"JSON Schema {args.json_schema}"
    if args.pydantic is not None:
        return f"Pydantic model {args.pydantic}"
    if args.grammar is not None:
        shipped = not Path(args.grammar).expanduser().is_file()
        return f"grammar {args.grammar}" + (" (shipped)" if shipped else "")
    return f"SQL on {args.sql}"


def _header(lm, args: argparse.Namespace, constraint, prompt_kind: str) -> list[str]:
    model = args.model or "SmolLM2-135M-Instruct (default)"
    checks = f"; checked on the finished output: {', '.join(constraint.end_checks)}" if constraint.end_checks else ""
    return [
        f"model       {model} on {lm.device}",
        f"prompt      {args.prompt!r} ({prompt_kind})",
        f"constraint  {describe_constraint(args)}{checks}",
    ]


def _generate(args: argparse.Namespace) -> int:
    constraint = build_constraint(args)
    lm = _load_model(args)
    prompt, kind = _prompt(lm, args)
    result = _run(lm, prompt, constraint, args.method, args)
    if args.json:
        out = {**_run_json(args, kind), **_result_json(result, constraint)}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print("\n".join(_header(lm, args, constraint, kind)))
    print(f"method      {args.method} ({METHOD_HELP[args.method]}), {args.particles} particles, seed {args.seed}")
    print(_healed_line(result, args))
    print()
    print(result.table(limit=args.show, width=100))
    print()
    print(result.summary())
    return 0


def _healed_line(result: GenerationResult, args: argparse.Namespace) -> str:
    """The header line on token healing: what was backed off the prompt, or why nothing was."""
    if not result.healed:
        if args.heal is False:
            return "healing     off (--no-heal)"
        return "healing     none (no token runs past the prompt's end, or the prompt went through the chat template)"
    shown = result.healed.decode("utf-8", errors="backslashreplace")
    return f"healing     {shown!r} backed off the prompt: every output starts with it (left out below)"


COMPARED = (("mask", "token masking"), ("smc", "SMC-AWRS"))


def compared_runs(results: dict[str, GenerationResult]) -> list[tuple[str, GenerationResult]]:
    """The columns of a comparison: masking as its users get it (each sample counts once), masking's own weights
    (how far those samples are from the target, corrected), and SMC-AWRS."""
    mask = results["mask"]
    return [("token masking, as sampled", mask.unweighted()), ("masking, weighted", mask), ("SMC-AWRS", results["smc"])]


def _compare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    constraint = build_constraint(args)
    lm = _load_model(args)
    prompt, kind = _prompt(lm, args)
    results = {}
    for method, label in tqdm(
        COMPARED, desc="methods", unit="method", leave=False, disable=True if args.quiet else None
    ):
        results[method] = _run(lm, prompt, constraint, method, args, label=label)
    if args.json:
        out = {**_run_json(args, kind), "methods": {m: _result_json(r, constraint) for m, r in results.items()}}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print("\n".join(_header(lm, args, constraint, kind)))
    print(f"runs        {args.particles} particles/samples each, max {args.max_tokens} tokens, seed {args.seed}")
    print(_healed_line(next(iter(results.values())), args))
    print()
    print(compare_table(compared_runs(results), top=args.show))
    return 0


def compare_table(runs: list[tuple[str, GenerationResult]], top: int = 5, width: int = 34) -> str:
    """Results side by side: validity, distinct outputs, log P(constraint), constraint work per token, time, and
    each method's top outputs with their posterior weights and sample counts."""

    def cell_rows(result) -> dict[str, str]:
        n = len(result.samples)
        good = sum(s.status == "complete" for s in result.samples)
        c = result.counts
        tokens = max(c.tokens, 1)
        estimate = f"{result.log_marginal:.3f}" if result.weighted else "n/a (unweighted)"
        return {
            "valid and complete": f"{good}/{n} ({good / n:.0%})",
            "distinct outputs": str(len({s.text for s in result.samples if s.status == "complete"})),
            "log P(constraint) est.": estimate,
            "ESS (final)": f"{result.ess:.1f}",
            "checks per token": (
                f"{c.masks / tokens:.2f} masks (whole vocab)"
                if c.masks and not c.checks
                else f"{c.checks / tokens:.1f}"
            ),
            "model calls": str(c.model_calls),
            "time": f"{c.wall_time:.2f} s",
        }

    from genlab.samplers.result import _shorten

    cells = [cell_rows(r) for _, r in runs]
    top_label = "top outputs (weight xN)"
    name_width = max(len(top_label), *(len(k) for k in cells[0]))
    cols = [max(width, len(label)) for label, _ in runs]

    def line(name: str, values: list[str]) -> str:
        return (f"{name:<{name_width}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(values, cols))).rstrip()

    out = [line("", [label for label, _ in runs]), line("", ["-" * w for w in cols])]
    for key in cells[0]:
        out.append(line(key, [c[key] for c in cells]))
    out.append(line(top_label, []))
    tops = [r.distinct()[:top] for _, r in runs]
    for k in range(max(len(t) for t in tops)):
        values = []
        for rows, w in zip(tops, cols):
            if k < len(rows):
                r = rows[k]
                mark = "" if r.status == "complete" else f" [{r.status}]"
                values.append(_shorten(f"{r.weight:.3f} x{r.count} {r.text!r}{mark}", w))
            else:
                values.append("")
        out.append(line(f"  {k + 1}", values))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- batch


def _batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genlab.batch import BatchConfig, batch

    spec = None
    if args.regex is not None:
        spec = {"regex": args.regex}
    elif args.json_schema is not None:
        spec = {"json_schema": _read_json(args.json_schema, "schema")}
    elif args.grammar is not None:
        spec = {"grammar": args.grammar}
    elif args.sql is not None:
        spec = {"sql": str(Path(args.sql).expanduser().resolve())}
    if not Path(args.input).is_file():
        raise UsageError(f"input file {args.input!r} does not exist")
    config = BatchConfig(
        model=args.model,
        method=args.method,
        n_particles=args.particles,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        chat=not args.raw,
        constraint=spec,
        device=args.device,
        drafts=args.drafts,
        heal=args.heal,
    )
    bar = tqdm(desc="records", unit="record", disable=True if args.quiet else None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        summary = batch(
            args.input,
            args.output,
            config,
            use_ray=args.ray,
            address=args.address,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            progress=progress,
        )
    finally:
        bar.close()
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items())) or "nothing new"
    print(
        f"{summary.written} records written to {args.output} ({statuses}); {summary.skipped} already there; "
        f"{summary.seconds:.1f} s"
    )
    return 0


# ---------------------------------------------------------------------------------------------------- demo


def _serve(args: argparse.Namespace) -> int:
    try:
        from genlab.serve import Limits, serve
    except ImportError as err:
        raise UsageError(f"genlab serve needs the serve extra: pip install 'genlab[serve]' ({err})") from None
    databases: dict[str, str | Path] = {}
    for item in args.sql:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--sql takes NAME=PATH, got {item!r}")
        if not Path(path).expanduser().is_file():
            raise UsageError(f"database file {path!r} does not exist")
        databases[name] = Path(path).expanduser()
    if args.queue < 0:
        raise UsageError("--queue must be >= 0")
    limits = Limits(
        max_tokens=args.max_tokens,
        default_max_tokens=min(256, args.max_tokens),
        method=args.method,
        n_particles=args.particles,
    )
    serve(
        args.model,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        databases=databases,
        limits=limits,
        concurrency=args.concurrency,
        queue=args.queue,
        timeout=args.timeout,
        device=args.device,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from genlab.models import load

    t0 = time.perf_counter()
    lm = load(args.model)
    t_load = time.perf_counter() - t0
    before = _kernel_work()  # the first forward may compile genlab's CPU Linear kernel
    messages = [{"role": "user", "content": args.prompt}]
    prompt = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    t1 = time.perf_counter()
    batch = lm.prefill(lm.encode(prompt))
    t_prefill = time.perf_counter() - t1
    eos = lm.vocab.eos_ids
    out: list[int] = []
    t2 = time.perf_counter()
    while len(out) < args.max_tokens:
        token = int(batch.logprobs()[0].argmax())
        if token in eos:
            break
        out.append(token)
        batch.extend([token])
    t_gen = time.perf_counter() - t2
    complete = len(out) < args.max_tokens
    text = lm.vocab.decode(out).decode("utf-8", errors="replace")
    print(f"model     {args.model or 'SmolLM2-135M-Instruct (default)'} on {lm.device}")
    print(f"prompt    {args.prompt}")
    print(f"output    {text}")
    print(f"status    {'complete (EOS)' if complete else f'incomplete: stopped at max_tokens={args.max_tokens}'}")
    rate = len(out) / t_gen if t_gen > 0 else float("nan")
    print(
        f"timings   load {t_load:.1f} s, prefill {t_prefill * 1000:.0f} ms, "
        f"{len(out)} tokens in {t_gen:.2f} s ({rate:.1f} tok/s){_first_use(before)}"
    )
    _demo_regex(lm, args)
    _demo_json(lm, args)
    _demo_sql(lm, args)
    _demo_compare(lm, args)
    return 0


def _demo_regex(lm, args: argparse.Namespace) -> None:
    from genlab import Regex
    from genlab.samplers import masked_sampling

    before = _kernel_work()
    t0 = time.perf_counter()
    regex = Regex(args.regex)
    t_compile = time.perf_counter() - t0
    messages = [{"role": "user", "content": args.regex_prompt}]
    prompt = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    result = masked_sampling(lm, regex, prompt, n=args.samples, max_tokens=args.max_tokens, seed=args.seed)
    print()
    print(f"regex     {args.regex}   (token masking, {args.samples} samples, seed {args.seed})")
    print(f"prompt    {args.regex_prompt}")
    for sample in result.samples:
        status = "complete" if sample.complete else "incomplete"
        print(f"output    {sample.text!r:40} log w = {sample.log_weight:8.3f}  {status}")
    c = result.counts
    print(
        f"timings   compile {t_compile * 1000:.1f} ms, {c.tokens} tokens in {c.wall_time:.2f} s "
        f"({c.model_calls} batched model calls, {c.masks} masks){_first_use(before)}"
    )


DEMO_REGEX = r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}"
DEMO_REGEX_PROMPT = "Make up a US phone number for a fictional pizza shop."
DEMO_PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "city"],
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "city": {"type": "string", "maxLength": 40},
    },
}


def _demo_json(lm, args: argparse.Namespace) -> None:
    """A JSON Schema extraction with SMC-AWRS: parsed objects that validate, with posterior weights."""
    from genlab import JsonSchema
    from genlab.generate import generate

    before = _kernel_work()
    t0 = time.perf_counter()
    schema = JsonSchema(DEMO_PERSON)
    t_compile = time.perf_counter() - t0
    text = "Maria Lopez is 34 and lives in Madrid."
    prompt = [{"role": "user", "content": f"Extract the person as JSON with name, age and city: {text}"}]
    result = generate(lm, prompt, schema, method="smc", n_particles=4, max_tokens=40, temperature=0.3, seed=args.seed)
    print()
    print(f"JSON      {json.dumps(DEMO_PERSON['properties'])[:70]}...   (SMC-AWRS, 4 particles, temperature 0.3)")
    print(f"prompt    {prompt[0]['content']}")
    for text_out, weight in list(result.text_posterior().items())[:3]:
        print(f"output    {weight:5.3f}  {text_out}")
    c = result.counts
    print(
        f"timings   compile {t_compile * 1000:.1f} ms, {c.tokens} tokens in {c.wall_time:.2f} s "
        f"({c.checks} constraint checks, {c.model_calls} batched model calls){_first_use(before)}"
    )


def _demo_sql(lm, args: argparse.Namespace) -> None:
    """Text-to-SQL on a small database with rows: SMC-AWRS with the execution critic, the top query run."""
    import tempfile

    from genlab import SQL
    from genlab.datasets import concerts
    from genlab.generate import generate

    with tempfile.TemporaryDirectory(prefix="genlab-demo-") as folder:
        path = concerts.create_database(Path(folder) / "concerts.sqlite")
        before = _kernel_work()
        t0 = time.perf_counter()
        sql = SQL(path)
        t_compile = time.perf_counter() - t0
        question = "What are the names of the singers from France?"
        critic = sql.critic(execute=True)
        result = generate(
            lm,
            concerts.messages(sql.schema.ddl(), question),
            sql,
            method="smc",
            n_particles=4,
            max_tokens=40,
            temperature=0.5,
            seed=args.seed,
            critic=critic,
        )
        print()
        print(
            f"SQL       {len(sql.schema.tables)} tables of a SQLite file   (SMC-AWRS + execution critic, 4 particles)"
        )
        print(f"question  {question}")
        posterior = result.text_posterior()
        for query, weight in list(posterior.items())[:3]:
            print(f"output    {weight:5.3f}  {' '.join(query.split())}")
        if posterior:
            top = next(iter(posterior))
            print(f"rows      {list(sql.execute(top, max_rows=5).rows)}")
        sql.database.close()
    c = result.counts
    print(
        f"timings   compile {t_compile * 1000:.0f} ms, {c.tokens} tokens in {c.wall_time:.2f} s "
        f"({c.checks} constraint checks, {critic.runs} queries run on the database){_first_use(before)}"
    )


def _kernel_work() -> tuple[int, int, int]:
    """Kernels compiled in this process, kernel calls run as Python, and matrix products left to torch while the
    CPU kernel compiles, so far (see `_first_use`)."""
    counts = jit.counts()
    return kernels_compiled(), counts["python calls"], counts["not ready"]


def _first_use(before: tuple[int, int, int]) -> str:
    """A note for a timings line that paid a first use of genlab's kernels on this machine: compiling them here, or
    running them as Python (or torch's matmul) while the helper process compiles them (`genlab.jit`)."""
    compiled, as_python, on_torch = (now - then for now, then in zip(_kernel_work(), before, strict=True))
    notes = [f"compiling {compiled} numba kernels (cached now)"] if compiled else []
    if as_python:
        notes.append(f"{as_python} kernel calls run as Python")
    if on_torch:
        notes.append(f"{on_torch} matrix products on torch's matmul")
    if as_python or on_torch:
        notes[-1] += " while a background process compiles the kernels"
    return f"; includes {' and '.join(notes)}: a first-use cost" if notes else ""


def _demo_compare(lm, args: argparse.Namespace) -> None:
    """Masking beside SMC-AWRS on a small problem where masking's bias shows."""
    from genlab import Regex
    from genlab.generate import generate

    pattern, prompt = r" (red|grey|blue-green|bluish)\.", "The color of the sky is"
    regex = Regex(pattern)
    n = args.compare_particles
    results = {
        method: generate(lm, prompt, regex, method=method, n_particles=n, max_tokens=13, seed=args.seed)
        for method, _ in COMPARED
    }
    print()
    print(f"compare   {prompt!r} + regex {pattern!r}, {n} samples/particles each (exact posterior: ' red.' 0.94)")
    print(compare_table(compared_runs(results), top=3))


# ---------------------------------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _add_generation(group, *, particles: int, seed_help: str = "random seed (default: 0)") -> None:
    """The model and sampler options every generating command has."""
    group.add_argument(
        "--model",
        metavar="PATH",
        help="a local Hugging Face model folder or a known model name (default: SmolLM2-135M-Instruct)",
    )
    group.add_argument("--device", metavar="DEV", help="torch device, e.g. cpu or cuda (default: cuda if present)")
    group.add_argument(
        "--particles",
        "-n",
        type=_positive_int,
        default=particles,
        metavar="N",
        help=f"particles (SMC) or samples (other methods) (default: {particles})",
    )
    group.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=64,
        metavar="N",
        help="most tokens per output, the end-of-sequence token included (default: 64)",
    )
    group.add_argument(
        "--temperature", type=_positive_float, default=1.0, metavar="T", help="sampling temperature, > 0 (default: 1.0)"
    )
    group.add_argument("--seed", type=int, default=0, metavar="S", help=seed_help)
    group.add_argument(
        "--drafts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="verify guessed tokens several per forward pass; the same outputs either way (default: on for masking)",
    )
    group.add_argument(
        "--heal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="token healing: back off the prompt's last tokens that a token could run past (a trailing space, a "
        "cut word) and make the output start with their bytes (default: on for --raw prompts, off for chat)",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    """The prompt, one constraint, and the options `generate` and `compare` share."""
    p.add_argument(
        "prompt",
        metavar="PROMPT",
        help="the prompt (put through the model's chat template as a user message unless --raw)",
    )
    group = p.add_argument_group("constraint (exactly one)").add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--regex",
        metavar="PATTERN",
        help="outputs fullmatch PATTERN (Python re semantics; write (?a) for ASCII \\d \\w \\s)",
    )
    group.add_argument(
        "--json-schema", metavar="FILE", help="outputs are JSON valid against the JSON Schema in FILE ('-' reads stdin)"
    )
    group.add_argument(
        "--pydantic",
        metavar="MODULE:CLASS",
        help="outputs are JSON valid for a Pydantic model, e.g. models:Person (importable from the current directory)",
    )
    group.add_argument(
        "--grammar",
        metavar="FILE|NAME",
        help="outputs are sentences of a Lark grammar: a .lark file, or a shipped grammar name "
        "(json, json_compact, arithmetic, csv, toolcall, sqlite)",
    )
    group.add_argument("--sql", metavar="DB", help="outputs are SQL queries valid on the SQLite database file DB")
    opts = p.add_argument_group("generation")
    _add_generation(opts, particles=8)
    opts.add_argument("--raw", action="store_true", help="send the prompt as plain text, without the chat template")
    opts.add_argument("--system", metavar="TEXT", help="a system message before the prompt (chat template only)")
    out = p.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (texts, log weights, posterior, statuses, parsed values, counts)",
    )
    out.add_argument(
        "--show", type=_positive_int, default=10, metavar="K", help="distinct outputs to list (default: 10)"
    )
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    out.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def build_parser() -> argparse.ArgumentParser:
    """The `genlab` argument parser and its subcommands."""
    parser = _Parser(prog="genlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--version", action="version", version=f"genlab {_version()}", help="print genlab's version and exit"
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=_Parser,
        title="commands",
        help="run `genlab COMMAND --help` for its options",
    )

    methods = "\n".join(f"  {name:<10} {text}" for name, text in METHOD_HELP.items())
    gen = sub.add_parser(
        "generate",
        help="sample outputs that satisfy a constraint, with posterior weights",
        description=_wrap(
            "Sample outputs of the model after PROMPT that satisfy one constraint, and print each "
            "distinct output with its posterior weight and status, then the log P(constraint) estimate "
            "and what the run cost."
        )
        + f"\n\nmethods:\n{methods}",
        epilog='example: genlab generate "A date in 2024?" --regex "2024-[0-9]{2}-[0-9]{2}" --particles 8',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(gen)
    gen.add_argument(
        "--method", "-m", choices=list(METHOD_HELP), default="smc", help="sampling method (default: smc; see above)"
    )
    gen.set_defaults(run=_generate)

    cmp = sub.add_parser(
        "compare",
        help="token masking beside SMC-AWRS on the same prompt and constraint",
        description=_wrap(
            "Run token masking and SMC with AWRS proposals on the same prompt, constraint, particle "
            "count and seed, and print them side by side: validity, distinct outputs, top outputs with "
            "posterior weights, the log P(constraint) estimate, constraint checks per token and time."
        ),
        epilog='example: genlab compare "The color of the sky is" --raw --regex " (red|grey|blue-green)\\."',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(cmp)
    cmp.set_defaults(run=_compare)

    bat = sub.add_parser(
        "batch",
        help="generate for every record of a JSONL file, resumable, in one process or on Ray",
        description=_wrap(
            'Read records from INPUT (JSONL: one object a line with "prompt" or "messages", an '
            'optional "id", and optionally its own constraint: "regex", "json_schema" (a '
            'schema or a .json path), "grammar" (Lark text, a .lark path or a shipped name) or '
            '"sql" (a database path)), generate for each, and append one result row per record to '
            "OUTPUT as soon as it is done. A rerun skips the records already in OUTPUT. A record that "
            'fails gets a row with status "error" and its message; the others go on.'
        ),
        epilog="example: genlab batch prompts.jsonl results.jsonl --regex '[0-9]{3}-[0-9]{4}' --ray --workers 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bat.add_argument("input", metavar="INPUT", help="JSONL file of records")
    bat.add_argument("output", metavar="OUTPUT", help="JSONL file of results (appended to; created if missing)")
    default = bat.add_argument_group("default constraint, for records that name none (at most one)")
    one = default.add_mutually_exclusive_group()
    one.add_argument("--regex", metavar="PATTERN", help="outputs fullmatch PATTERN")
    one.add_argument("--json-schema", metavar="FILE", help="outputs are JSON valid against the schema in FILE")
    one.add_argument("--grammar", metavar="FILE|NAME", help="outputs are sentences of a Lark grammar")
    one.add_argument("--sql", metavar="DB", help="outputs are SQL queries valid on the SQLite database DB")
    run = bat.add_argument_group("generation")
    _add_generation(
        run,
        particles=4,
        seed_help="random seed; each record's seed is derived from it and the record's id (default: 0)",
    )
    run.add_argument("--method", "-m", choices=list(METHOD_HELP), default="smc", help="sampling method (default: smc)")
    run.add_argument("--raw", action="store_true", help='send "prompt" texts as plain text, not as chat messages')
    scale = bat.add_argument_group("Ray")
    scale.add_argument("--ray", action="store_true", help="run on Ray Data workers (pip install 'genlab[ray]')")
    scale.add_argument(
        "--address",
        metavar="ADDR",
        help="an existing Ray cluster to join, e.g. ray://head:10001 (default: start a local one)",
    )
    scale.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="Ray workers (default: 2)")
    scale.add_argument(
        "--cpus-per-worker",
        type=_positive_float,
        default=1.0,
        metavar="C",
        help="CPUs each Ray worker reserves (default: 1)",
    )
    scale.add_argument(
        "--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs each Ray worker reserves (default: 0)"
    )
    bat.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    bat.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    bat.set_defaults(run=_batch)

    srv = sub.add_parser(
        "serve",
        help="an OpenAI-compatible HTTP server whose outputs match each request's constraint",
        description=_wrap(
            "Serve one model over HTTP with OpenAI's API (POST /v1/chat/completions, POST /v1/completions, "
            "GET /v1/models, GET /health). Requests ask for a constraint with response_format (json_schema, "
            "json_object) or the structured_outputs extra body (json, regex, choice, grammar, or sql: a "
            "database given with --sql, by name), and for genlab's options in a genlab object (method, "
            "n_particles, critic, heal, drafts). Concurrent requests share the model's forward passes. "
            "Needs the serve extra: pip install 'genlab[serve]'."
        ),
        epilog="example: genlab serve --port 8000 --sql shop=shop.sqlite --api-key secret",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    srv.add_argument("--model", default=None, help="a known model name or a local folder (default: SmolLM2)")
    srv.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cuda if available, else cpu)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    srv.add_argument("--port", type=_positive_int, default=8000, help="port (default: 8000)")
    srv.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 routes")
    srv.add_argument(
        "--sql",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a SQLite database requests may name (repeatable); requests never name paths",
    )
    srv.add_argument(
        "--method",
        "-m",
        choices=list(METHOD_HELP),
        default="smc",
        help="method of requests that name none (default: smc)",
    )
    srv.add_argument("--particles", type=_positive_int, default=4, help="default SMC particles (default: 4)")
    srv.add_argument(
        "--max-tokens", type=_positive_int, default=1024, help="the most max_tokens a request may ask (default: 1024)"
    )
    srv.add_argument(
        "--concurrency", type=_positive_int, default=8, help="requests run at once, sharing forwards (default: 8)"
    )
    srv.add_argument("--queue", type=int, default=64, help="requests waiting beyond those; then 429 (default: 64)")
    srv.add_argument("--timeout", type=_positive_float, default=600.0, help="seconds per request (default: 600)")
    srv.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    srv.set_defaults(run=_serve)

    demo = sub.add_parser(
        "demo",
        help="JSON Schema, regex and text-to-SQL runs on the default model, timed",
        description=_wrap(
            "On the default model, timed: a greedy completion, token-masked samples "
            "under a regex, a JSON Schema extraction (SMC-AWRS), a text-to-SQL "
            "question on a small SQLite database (SMC-AWRS with the execution "
            "critic), and masking beside SMC-AWRS on a problem where masking's "
            "bias shows."
        ),
    )
    demo.add_argument(
        "--prompt", default="Name three primary colours in one short sentence.", help="prompt of the greedy completion"
    )
    demo.add_argument("--model", default=None, help="a local Hugging Face model folder (default: SmolLM2)")
    demo.add_argument("--max-tokens", type=_positive_int, default=40, help="most tokens per output (default: 40)")
    demo.add_argument(
        "--regex",
        default=DEMO_REGEX,
        help="pattern for the constrained part (re semantics: \\d also admits non-ASCII digits)",
    )
    demo.add_argument(
        "--regex-prompt",
        default=DEMO_REGEX_PROMPT,
        help="prompt of the regex-constrained samples",
    )
    demo.add_argument("--samples", type=_positive_int, default=3, help="regex-constrained samples (default: 3)")
    demo.add_argument(
        "--compare-particles",
        type=_positive_int,
        default=256,
        metavar="N",
        help="samples/particles of each method in the masking-vs-SMC table (default: 256)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    demo.set_defaults(run=_demo)
    return parser


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=100)


def _version() -> str:
    from genlab import __version__

    return __version__


def _one_line(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `genlab` console script: the exit status (0 ok, 1 user error, 2 bad command line)."""
    args = build_parser().parse_args(argv)
    from genlab.errors import GenlabError

    try:
        return args.run(args)
    except (GenlabError, UsageError, OSError, ValueError) as err:
        if args.debug:
            raise
        print(f"genlab: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("genlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
