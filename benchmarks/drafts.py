"""Drafts: forward passes per output token and output tokens per second, with drafts on and off, in one run.

Usage: python benchmarks/drafts.py [--tasks json,sql,regex] [--methods mask,smc] [--models smollm2,gemma-3-270m]
                                   [--sql-questions 30] [--seeds 1] [--max-tokens 64] [--no-anchor]
                                   [--output docs/benchmarks/drafts.md]

Tasks:
- json: JSON extraction, 10 short paragraphs of this benchmark's own about a person, each filled into a Pydantic
  model (name, age, city, email; compact JSON, as `JsonSchema` writes by default);
- sql: text-to-SQL, benchmarks/spider.py's Spider dev questions (its seed-0 sample, its one-shot prompts with the
  CREATE statements) under the grammar-only `genlab.SQL(db, explain=False)`;
- regex: copying a date and an order number from a sentence under a regex (`Order (\d{5}) on (\d{4}-\d{2}-\d{2})`).

Methods, drafts off and on for each prompt: masking (`masked_sampling`, n = 1) and SMC-AWRS (`smc`, N = 4, optimal
resampling), temperature 1, seeded. Both draw the same tokens with drafts as without (masking by inversion from
one stream per row, SMC from one stream whose use does not depend on the forwards), so the benchmark checks that
the two runs gave the same outputs and weights ("same" column). Columns: output tokens, forwards per output token
(the prompt's prefill not counted), draft tokens accepted per forward and per proposed, tokens per second, and the
speed-up (drafts on / off).

Anchor (peers' nearest equivalent), for masking: transformers' `model.generate(do_sample=True)` with genlab's
`ConstraintLogitsProcessor` and with a processor over llguidance's `LLMatcher` (when llguidance is installed; JSON
and regex only), each with and without `prompt_lookup_num_tokens=8` (prompt lookup decoding). Their outputs are
not the same draws (the random stream differs), so only their speed is compared.

Run on an otherwise idle machine: the ratios are only meaningful there.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time

import torch
from pydantic import BaseModel, ConfigDict, Field
from report import render, write_report

import genlab
from genlab.hf import ConstraintLogitsProcessor
from genlab.samplers.masking import masked_sampling
from genlab.samplers.prompt import prompt_ids
from genlab.samplers.smc import smc


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    age: int = Field(ge=0, le=130)
    city: str
    email: str


PARAGRAPHS = [
    "Maria Lopez, 34, moved to Valencia last spring. You can reach her at maria.lopez@example.org.",
    "Our new hire is Tom Becker (age 29) from Hamburg; his work address is tom.becker@acme.de.",
    "Aiko Tanaka lives in Osaka. She turned 41 this year. Contact: aiko.tanaka@mail.jp.",
    "Meet Samuel Okafor, a 52-year-old engineer based in Lagos (samuel.okafor@eng.ng).",
    "Lena Svensson from Uppsala, 23, writes from lena.svensson@uu.se about the conference.",
    "The speaker, Paolo Rossi, is 47 and lives in Turin; email paolo.rossi@polito.it for slides.",
    "Fatima Zahra, aged 38, runs a bakery in Casablanca. Orders go to fatima.zahra@bakery.ma.",
    "John Smith (61) retired to Brighton. His daughter set up john.smith@brighton.uk for him.",
    "Chen Wei, 27, a designer in Shenzhen, signs her mails chen.wei@design.cn.",
    "Olga Petrova is 45, lives in Kazan and answers at olga.petrova@kazan.ru within a day.",
]

ORDERS = [
    ("Your order 48213 was shipped on 2024-03-17 and should arrive within a week.", "48213", "2024-03-17"),
    ("We received order 10027 on 2023-11-02; it is waiting for payment.", "10027", "2023-11-02"),
    ("Order 77310, placed 2025-01-29, was cancelled at the customer's request.", "77310", "2025-01-29"),
    ("On 2022-06-05 order 56001 left our Leipzig warehouse.", "56001", "2022-06-05"),
    ("The refund for order 30945 (2024-12-24) has been issued.", "30945", "2024-12-24"),
]


def tasks(names: list[str], sql_questions: int):
    """(task, label, prompt messages, constraint) for each prompt of the named tasks."""
    out = []
    if "json" in names:
        schema = genlab.JsonSchema(Person)
        for i, text in enumerate(PARAGRAPHS):
            prompt = [
                {"role": "user", "content": f"Extract the person as JSON with keys name, age, city, email:\n{text}"}
            ]
            out.append(("json", f"json-{i}", prompt, schema))
    if "sql" in names:  # benchmarks/spider.py's questions (seed 0) and prompts, the grammar-only SQL constraint
        import spider as spider_bench  # benchmarks/spider.py, beside this script

        from genlab.datasets import spider

        dev = spider.load_dev()
        databases = spider_bench.Databases()
        for index in random.Random(0).sample(range(len(dev)), min(sql_questions, len(dev))):
            example = dev[index]
            db = databases.get(example.db_id)
            prompt = spider_bench.messages(example, dev, db["explain"])
            out.append(("sql", f"sql-{index}", prompt, db["grammar"]))
    if "regex" in names:
        regex = genlab.Regex(r"Order \d{5} on \d{4}-\d{2}-\d{2}\.")
        for i, (text, _, _) in enumerate(ORDERS):
            prompt = [{"role": "user", "content": f"{text}\nRestate as 'Order N on DATE.':"}]
            out.append(("regex", f"regex-{i}", prompt, regex))
    return out


def for_model(lm, messages: list[dict]):
    """The chat messages, or for a base model without a chat template (Gemma-3-270M) their texts, one a line."""
    if getattr(lm.tokenizer, "chat_template", None):
        return messages
    return "\n".join(m["content"] for m in messages) + "\n"


def run(method: str, lm, constraint, prompt, max_tokens: int, seed: int, drafts: bool) -> genlab.GenerationResult:
    """masking (n = 1) or SMC-AWRS (N = 4, the default optimal resampling), drafts on or off."""
    if method == "mask":
        return masked_sampling(lm, constraint, prompt, n=1, max_tokens=max_tokens, seed=seed, drafts=drafts)
    return smc(lm, constraint, prompt, n_particles=4, max_tokens=max_tokens, seed=seed, drafts=drafts)


class LLGuidanceProcessor:
    """A transformers logits processor over llguidance's `LLMatcher` (one row). Assisted generation (prompt lookup)
    calls it on candidate prefixes that grow and shrink: the matcher follows by rolling back and consuming; on a
    prefix that leaves the grammar (a draft token the mask refused) it leaves the scores as they are, since the
    sampler has rejected that candidate before it reads them."""

    def __init__(self, grammar: str, lm, prompt_len: int):
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.torch_api = llguidance.torch
        tokenizer = llguidance.hf.from_tokenizer(lm.tokenizer, n_vocab=lm.vocab_size, eos_token=lm.eos_token_ids[0])
        self.matcher = llguidance.LLMatcher(tokenizer, grammar)
        self.bitmask = llguidance.torch.allocate_token_bitmask(1, lm.vocab_size)
        self.prompt_len = prompt_len
        self.consumed: list[int] = []

    def __call__(self, input_ids, scores):
        out = input_ids[0, self.prompt_len :].tolist()
        k = 0
        while k < min(len(out), len(self.consumed)) and out[k] == self.consumed[k]:
            k += 1
        if k < len(self.consumed):
            self.matcher.rollback(len(self.consumed) - k)
            del self.consumed[k:]
        rest = out[k:]
        if self.matcher.validate_tokens(rest) < len(rest):
            return scores
        if rest:
            self.matcher.consume_tokens(rest)
            self.consumed += rest
        self.torch_api.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        self.torch_api.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
        return scores


def llguidance_grammar(constraint) -> str | None:
    """The llguidance grammar of a benchmark constraint (compact JSON as genlab writes it); None for SQL."""
    try:
        import llguidance
    except ImportError:
        return None
    if isinstance(constraint, genlab.JsonSchema):
        return llguidance.LLMatcher.grammar_from_json_schema(
            constraint.schema, overrides={"whitespace_flexible": False}
        )
    if isinstance(constraint, genlab.Regex):
        return llguidance.LLMatcher.grammar_from_regex(constraint.pattern)
    return None


def anchor(
    lm, prompt, constraint, max_tokens: int, lookup: int | None, seed: int, engine: str = "genlab"
) -> tuple[int, float] | None:
    """transformers' generate with genlab's (or llguidance's) logits processor: (output tokens, seconds); None where
    the engine has no grammar for the constraint."""
    ids = torch.tensor([prompt_ids(lm, prompt)])
    if engine == "genlab":
        processor = ConstraintLogitsProcessor(constraint, lm.tokenizer, vocab=lm.vocab)
    else:
        grammar = llguidance_grammar(constraint)
        if grammar is None:
            return None
        processor = LLGuidanceProcessor(grammar, lm, ids.shape[1])
    torch.manual_seed(seed)
    extra = {"prompt_lookup_num_tokens": lookup} if lookup else {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(
            ids,
            logits_processor=[processor],
            max_new_tokens=max_tokens,
            do_sample=True,
            top_k=0,
            pad_token_id=lm.eos_token_ids[0],
            **extra,
        )
    return out.shape[1] - ids.shape[1], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="json,sql,regex")
    parser.add_argument("--methods", default="mask,smc")
    parser.add_argument("--models", default="smollm2", help="comma-separated model names or folders")
    parser.add_argument("--sql-questions", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--no-anchor", dest="anchor", action="store_false")
    parser.add_argument("--output", default="docs/benchmarks/drafts.md")
    args = parser.parse_args()
    methods = args.methods.split(",")
    prompts = tasks(args.tasks.split(","), args.sql_questions)
    settings = (
        f"torch threads {torch.get_num_threads()}; temperature 1; masking n = 1, SMC-AWRS N = 4 (optimal "
        "resampling); output tokens: masking's sample, SMC's longest particle; forwards exclude the prefill."
    )
    lines = [
        "| model | task | method | prompts | output tokens | same outputs | forwards/token off | on | "
        "accepted/forward | accept rate | tok/s off | on | speed-up | hf generate + genlab processor tok/s | "
        "+ prompt lookup | hf generate + llguidance processor tok/s | + prompt lookup |",
        "| --- | --- | --- | --: | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    lookup_failures: list[str] = []
    differed: list[str] = []
    for model in args.models.split(","):
        lm = genlab.load(None if model == "smollm2" else model, device="cpu")
        warm = prompts[0]
        for method in methods:  # compiled kernels and first masks outside the timings
            run(method, lm, warm[3], for_model(lm, warm[2]), 2, 0, True)
        totals: dict[tuple[str, str], list[dict]] = {}
        for task, label, messages, constraint in prompts:
            prompt = for_model(lm, messages)
            constraint.compile(lm.vocab)  # compile (and warm) outside the timings
            for method in methods:
                for seed in range(args.seeds):
                    row = measure(lm, method, label, prompt, constraint, args.max_tokens, seed)
                    if args.anchor and method == "mask":
                        for engine, key in (("genlab", "hf"), ("llguidance", "ll")):
                            plain = anchor(lm, prompt, constraint, args.max_tokens, None, seed, engine)
                            try:
                                looked = anchor(lm, prompt, constraint, args.max_tokens, 8, seed, engine)
                            except genlab.GenlabError:  # generate's prompt lookup kept a token the processor refused
                                looked = None
                                lookup_failures.append(f"{model}/{label}")
                            row[f"{key}_tps"] = plain[0] / plain[1] if plain else float("nan")
                            row[f"{key}_lookup_tps"] = looked[0] / looked[1] if looked else float("nan")
                    totals.setdefault((task, method), []).append(row)
                    if not row["same"]:
                        differed.append(f"{model}/{label} {method}")
        for (task, method), rs in totals.items():
            lines.append(f"| {model} | {task} | {method} | " + summarise(rs, args.anchor and method == "mask"))
    if differed:
        lines += [
            "",
            f"Outputs or weights differed with drafts on {', '.join(differed)}: a float32 forward over a draft rounds "
            "the logits differently from one over a single token, which can move an inversion draw across a token "
            "boundary (check the tokens' masses there before suspecting the sampler).",
        ]
    if lookup_failures:
        lines += [
            "",
            f"transformers' prompt lookup with genlab's processor failed on {', '.join(lookup_failures)}: its draft "
            "verification kept a token that the processor had masked (it raises when a row leaves the constraint).",
        ]
    body = "\n".join(lines)
    print(render("Drafts", settings, body))
    write_report(args.output, "Drafts", settings, body)


def measure(lm, method: str, label: str, prompt, constraint, max_tokens: int, seed: int) -> dict:
    """One prompt, one method, drafts off then on: the per-run figures."""
    off = run(method, lm, constraint, prompt, max_tokens, seed, False)
    on = run(method, lm, constraint, prompt, max_tokens, seed, True)
    n_tok = max(1, max(len(ids) for ids in on.token_ids))
    # a float32 forward over a draft rounds differently from one over a single token: log weights (sums over the
    # tokens) agree to about 1e-5, not bit for bit
    same = off.token_ids == on.token_ids and all(
        a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-4) for a, b in zip(off.log_weights, on.log_weights)
    )
    row = dict(
        label=label,
        seed=seed,
        tokens=n_tok,
        same=same,
        calls_off=off.counts.model_calls - 1,
        calls_on=on.counts.model_calls - 1,
        proposed=on.counts.drafts_proposed,
        accepted=on.counts.drafts_accepted,
        t_off=off.counts.wall_time,
        t_on=on.counts.wall_time,
    )
    print(
        f"  {label} {method} seed {seed}: {n_tok} tokens, forwards {row['calls_off']} -> {row['calls_on']}, "
        f"{row['t_off']:.2f} s -> {row['t_on']:.2f} s, same {same}",
        file=sys.stderr,
        flush=True,
    )
    return row


def summarise(rs: list[dict], with_anchor: bool) -> str:
    """One table row's cells after the method: totals over the task's prompts."""
    tok = sum(r["tokens"] for r in rs)
    calls_off, calls_on = sum(r["calls_off"] for r in rs), sum(r["calls_on"] for r in rs)
    t_off, t_on = sum(r["t_off"] for r in rs), sum(r["t_on"] for r in rs)
    prop, acc = sum(r["proposed"] for r in rs), sum(r["accepted"] for r in rs)
    hf = "n/a | n/a | n/a | n/a"
    if with_anchor:
        cells = []
        for key in ("hf", "ll"):
            for column in (f"{key}_tps", f"{key}_lookup_tps"):
                ok = [r for r in rs if r[column] == r[column]]  # NaN where the run failed or had no grammar
                if not ok:
                    cells.append("n/a")
                    continue
                rate = sum(r["tokens"] for r in ok) / sum(r["tokens"] / r[column] for r in ok)
                cells.append(
                    f"{rate:.1f}" + (f" ({len(rs) - len(ok)} of {len(rs)} failed)" if len(ok) < len(rs) else "")
                )
        hf = " | ".join(cells)
    return (
        f"{len(rs)} | {tok} | {sum(r['same'] for r in rs)}/{len(rs)} | {calls_off / tok:.2f} | {calls_on / tok:.2f} | "
        f"{acc / max(1, calls_on):.2f} | {acc / max(1, prop):.2f} | {tok / t_off:.1f} | {tok / t_on:.1f} | "
        f"{t_off / t_on:.2f}x | {hf} |"
    )


if __name__ == "__main__":
    main()
