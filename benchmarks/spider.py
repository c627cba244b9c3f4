"""Text-to-SQL on Spider dev: free sampling, token masking and SMC-AWRS (with and without an execution critic).

Usage: python benchmarks/spider.py [--limit 20] [--seed 0] [--particles 8] [--max-tokens 64] [--temperature 1.0]
                                   [--methods free,mask,smc,smc+critic] [--json OUT [--resume]]
                                   [--output docs/benchmarks/spider.md]

A seeded sample of `--limit` Spider dev questions is put to SmolLM2-135M-Instruct (`genlab.load()`) with a
one-shot chat prompt: a system message with the database's CREATE statements, then one solved question on the
same database (the first dev example of that db_id whose gold query does not exact-set-match the asked one, so
a paraphrase never gives the answer away; a synthetic "How many rows are in the table <first table>?" when no
such example exists), then the question. Methods, `--particles` samples each:

- free: unconstrained sampling (`Regex("(?s).*")` with method="mask": every token allowed, stop at EOS);
- mask: token masking with `genlab.SQL(db, explain=False)` (the grammar over the database's names);
- smc: SMC with AWRS proposals, the same grammar-only constraint;
- smc+critic: SMC-AWRS with `genlab.SQL(db)` (EXPLAIN as the end check) and `critic=sql.critic(execute=True)`.

Spider's SQLite files are not on PyPI, so the databases are schema-only (`spider.schema_database`): EXPLAIN is
meaningful, execution is not (every query returns no rows, so the critic's empty-result weight applies to every
finished query alike).

Reported per method, over all samples and for the top prediction of each question (SMC: the text with the most
posterior weight; free and mask: the most frequent complete text): % complete (EOS reached), % that parse with
Lark and grammars/sqlite.lark (independent of genlab's engine), % that EXPLAIN cleanly on the schema-only
database (a separate read-only connection), exact-set match of the top prediction with the gold query
(`genlab.datasets.sql_match`), wall time per question, constraint checks and masks per generated token. A method
that fails on a question records an error row and the run goes on. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import sqlite3
import sys
import time
import traceback
import urllib.parse
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lark
import torch
from report import write_report

import genlab
from genlab.constraints.grammar import GRAMMARS_DIR
from genlab.datasets import spider
from genlab.datasets.sql_match import exact_set_match
from genlab.models.loading import DEFAULT_MODEL

METHODS = ("free", "mask", "smc", "smc+critic")
SYSTEM = (
    "You are a SQLite expert. Given the database schema, answer the question with one SQLite query and nothing else."
)


# ---------------------------------------------------------------- prompts and constraints


def one_shot(example: spider.SpiderExample, dev: list[spider.SpiderExample], first_table: str) -> tuple[str, str]:
    """A solved (question, query) pair on the same database whose query is not the asked one's answer."""
    for other in dev:
        if other.db_id == example.db_id and not exact_set_match(other.query, example.query):
            return other.question, other.query
    return f"How many rows are in the table {first_table}?", f"SELECT count(*) FROM {first_table}"


def messages(example: spider.SpiderExample, dev: list[spider.SpiderExample], sql: genlab.SQL) -> list[dict]:
    question, query = one_shot(example, dev, sql.schema.tables[0].name)
    return [
        {"role": "system", "content": SYSTEM + "\n\n" + sql.schema.ddl()},
        {"role": "user", "content": question},
        {"role": "assistant", "content": query},
        {"role": "user", "content": example.question},
    ]


class Databases:
    """Per Spider db_id, built once: the schema-only file, both SQL constraints, a read-only connection."""

    def __init__(self) -> None:
        self._cache: dict[str, dict] = {}

    def get(self, db_id: str) -> dict:
        if db_id not in self._cache:
            path = spider.schema_database(db_id)
            uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
            sql = genlab.SQL(path)
            self._cache[db_id] = {
                "grammar": genlab.SQL(path, explain=False),
                "explain": sql,
                "connection": sqlite3.connect(uri, uri=True),
                "columns": {t.name: t.column_names(with_rowid=False) for t in sql.schema.tables},
            }
        return self._cache[db_id]

    def close(self) -> None:
        for entry in self._cache.values():
            entry["connection"].close()


@functools.cache
def any_text() -> genlab.Regex:
    """Every output allowed: masking with it is free sampling (one constraint for the run, compiled once)."""
    return genlab.Regex(r"(?s).*")


class RecordingCritic:
    """The execution critic, remembering its score for each finished text (to report what it rejected)."""

    def __init__(self, critic) -> None:
        self.critic = critic
        self.scores: dict[str, float] = {}

    def __call__(self, text: str, complete: bool) -> float:
        score = self.critic(text, complete)
        if complete:
            self.scores[text] = score
        return score


def run_method(
    method: str, lm, prompt: list[dict], db: dict, args: argparse.Namespace, critic: RecordingCritic | None = None
) -> genlab.GenerationResult:
    common = dict(n_particles=args.particles, max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    if method == "free":
        return genlab.generate(lm, prompt, any_text(), method="mask", **common)
    if method == "mask":
        return genlab.generate(lm, prompt, db["grammar"], method="mask", **common)
    if method == "smc":
        return genlab.generate(lm, prompt, db["grammar"], method="smc", **common)
    sql = db["explain"]
    critic = critic or RecordingCritic(sql.critic(execute=True))
    return genlab.generate(lm, prompt, sql, method="smc", critic=critic, **common)


# ---------------------------------------------------------------- independent checks of the outputs


def lark_parser() -> lark.Lark:
    return lark.Lark(
        (GRAMMARS_DIR / "sqlite.lark").read_text(encoding="utf-8"), start="start", parser="earley", lexer="dynamic"
    )


def parses(parser: lark.Lark, text: str) -> bool:
    try:
        parser.parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


def explains(con: sqlite3.Connection, text: str) -> bool:
    try:
        con.execute("EXPLAIN " + text).fetchall()
    except (sqlite3.Error, sqlite3.Warning, ValueError):  # ValueError: a NUL character in the text
        return False
    return True


def top_prediction(method: str, result: genlab.GenerationResult) -> str | None:
    """SMC: the complete text with the most posterior weight; free and mask: the most frequent complete text."""
    if method.startswith("smc"):
        return next(iter(result.text_posterior()), None)
    counts = Counter(s.text for s in result.samples if s.complete)
    return counts.most_common(1)[0][0] if counts else None


# ---------------------------------------------------------------- one question, one method


@dataclass
class Row:
    """What one method did on one question (`error` set when it failed)."""

    index: int
    db_id: str
    question: str
    gold: str
    method: str
    seconds: float = 0.0
    samples: list[dict] = field(default_factory=list)
    top: str | None = None
    top_parses: bool = False
    top_explains: bool = False
    top_match: bool = False
    counts: dict = field(default_factory=dict)
    critic_rejected: list[str] = field(default_factory=list)  # smc+critic: finished texts scored -inf
    critic_scored: int = 0  # smc+critic: distinct finished texts scored
    error: str | None = None


def evaluate(row: Row, result: genlab.GenerationResult, db: dict, parser: lark.Lark) -> None:
    con = db["connection"]
    for sample in result.samples:
        text = sample.text
        row.samples.append(
            {
                "text": text,
                "complete": sample.complete,
                "valid": sample.valid,
                "log_weight": None if math.isinf(sample.log_weight) else sample.log_weight,
                "parses": parses(parser, text),
                "explains": explains(con, text),
            }
        )
    row.counts = asdict(result.counts)
    row.top = top_prediction(row.method, result)
    if row.top is not None:
        row.top_parses = parses(parser, row.top)
        row.top_explains = explains(con, row.top)
        row.top_match = exact_set_match(row.top, row.gold, db["columns"])


def run_one(
    index: int,
    example: spider.SpiderExample,
    method: str,
    lm,
    dev,
    databases: Databases,
    parser: lark.Lark,
    args: argparse.Namespace,
) -> Row:
    row = Row(index, example.db_id, example.question, example.query, method)
    t0 = time.perf_counter()
    try:
        db = databases.get(example.db_id)
        critic = RecordingCritic(db["explain"].critic(execute=True)) if method == "smc+critic" else None
        result = run_method(method, lm, messages(example, dev, db["explain"]), db, args, critic)
        row.seconds = time.perf_counter() - t0
        evaluate(row, result, db, parser)
        if critic is not None:
            row.critic_scored = len(critic.scores)
            row.critic_rejected = [text for text, score in critic.scores.items() if score == -math.inf]
    except Exception as err:  # noqa: BLE001 - one failure must not end the run
        row.seconds = time.perf_counter() - t0
        row.error = f"{type(err).__name__}: {err}"
        traceback.print_exc(file=sys.stderr)
    return row


# ---------------------------------------------------------------- the table


def percent(flags: list[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.1f}" if flags else "-"


def summary(rows: list[Row]) -> dict[str, str]:
    ok = [r for r in rows if r.error is None]
    samples = [s for r in ok for s in r.samples]
    finished = [s for s in samples if s["complete"]]
    weighted = [s for s in finished if s["log_weight"] is not None]  # SMC: the particles the posterior keeps
    tokens = sum(r.counts["tokens"] for r in ok)
    return {
        "complete % (all samples)": percent([s["complete"] for s in samples]),
        "parse % (finished samples)": percent([s["parses"] for s in finished]),
        "EXPLAIN ok % (finished samples)": percent([s["explains"] for s in finished]),
        "EXPLAIN ok % (finished, weight > 0)": percent([s["explains"] for s in weighted]),
        "top: has a complete text %": percent([r.top is not None for r in ok]),
        "top: parse %": percent([r.top_parses for r in ok]),
        "top: EXPLAIN ok %": percent([r.top_explains for r in ok]),
        "top: exact-set match %": percent([r.top_match for r in ok]),
        "wall s / question": f"{sum(r.seconds for r in ok) / len(ok):.1f}" if ok else "-",
        "checks / token": f"{sum(r.counts['checks'] for r in ok) / tokens:.2f}" if tokens else "-",
        "masks / token": f"{sum(r.counts['masks'] for r in ok) / tokens:.2f}" if tokens else "-",
        "critic: rejected / scored texts": f"{sum(len(r.critic_rejected) for r in ok)} / "
        f"{sum(r.critic_scored for r in ok)}"
        if any(r.critic_scored for r in ok)
        else "-",
        "failed questions": str(len(rows) - len(ok)),
    }


def table(rows: list[Row], methods: list[str]) -> str:
    columns = {m: summary([r for r in rows if r.method == m]) for m in methods}
    metrics = list(next(iter(columns.values())))
    lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    lines += [f"| {metric} | " + " | ".join(columns[m][metric] for m in methods) + " |" for metric in metrics]
    return "\n".join(lines)


def warm_up(
    lm, example: spider.SpiderExample, dev, databases: Databases, methods: list[str], args: argparse.Namespace
) -> None:
    """Two tokens of every method, untimed: one-time costs (compiled kernels, first masks) stay out of the table."""
    print("warming up", file=sys.stderr, flush=True)
    db = databases.get(example.db_id)
    short = argparse.Namespace(**{**vars(args), "max_tokens": 2, "particles": 2})
    for method in methods:
        run_method(method, lm, messages(example, dev, db["explain"]), db, short)


def earlier_rows(path: Path) -> list[Row]:
    """The rows a stopped run with the same settings wrote to `path` (none if it does not exist)."""
    if not path.exists():
        return []
    return [Row(**r) for r in json.loads(path.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=20, help="number of dev questions (a seeded sample)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the question sample and every sampler")
    ap.add_argument("--particles", type=int, default=8, help="samples (free, mask) or particles (SMC)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--json", type=Path, help="write the per-question rows here (rewritten after each row)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --json and run only the (question, method) pairs they lack",
    )
    ap.add_argument("--output", default="docs/benchmarks/spider.md", help="markdown file for the table ('' for none)")
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    if unknown := set(methods) - set(METHODS):
        ap.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    if args.resume and not args.json:
        ap.error("--resume needs --json")

    dev = spider.load_dev()
    examples = random.Random(args.seed).sample(range(len(dev)), min(args.limit, len(dev)))
    lm = genlab.load()
    parser = lark_parser()
    databases = Databases()
    rows = earlier_rows(args.json) if args.resume else []
    done = {(r.index, r.method) for r in rows}
    warm_up(lm, dev[examples[0]], dev, databases, methods, args)
    try:
        for k, index in enumerate(examples, 1):
            example = dev[index]
            for method in methods:
                if (index, method) in done:
                    continue
                row = run_one(index, example, method, lm, dev, databases, parser, args)
                rows.append(row)
                if args.json:  # after every row, so a run that is stopped keeps what it did
                    args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1), encoding="utf-8")
                outcome = row.error or f"top={row.top!r} match={row.top_match}"
                print(
                    f"[{k}/{len(examples)}] dev#{index} {example.db_id} {method}: {row.seconds:.1f}s {outcome}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        databases.close()
    rows = [r for r in rows if r.index in examples and r.method in methods]
    total = sum(r.seconds for r in rows)

    settings = (
        f"model {DEFAULT_MODEL}, n={args.particles}, {len(examples)} Spider dev questions (seed {args.seed}), "
        f"max_tokens {args.max_tokens}, temperature {args.temperature}; generation {total:.0f} s in all"
    )
    body = table(rows, methods)
    print(settings + "\n")
    print(body)
    machine = f"torch threads {torch.get_num_threads()}; {os.cpu_count()} CPU cores"
    write_report(args.output, "Spider dev: text-to-SQL", f"{settings}; {machine}", body, argv)


if __name__ == "__main__":
    main()
