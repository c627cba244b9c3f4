"""Drafts: forward passes per output token and output tokens per second, with drafts on and off, in one run.

Usage: python benchmarks/drafts.py [--tasks json,regex] [--seeds 1] [--max-tokens 96] [--model smollm2]
                                   [--no-anchor] [--output docs/benchmarks/drafts.md]

Tasks (prompts of this benchmark's own):
- json: JSON extraction, 10 short paragraphs about a person, each filled into a Pydantic model
  (name, age, city, email; compact JSON, as `JsonSchema` writes by default);
- regex: copying a date and an order number from a sentence under a regex (`Order (\\d{5}) on (\\d{4}-\\d{2}-\\d{2})`).

Methods: genlab's masking sampler (`masked_sampling`, temperature 1, seeded), drafts off and on. Its draws are by
inversion from one random stream per row, so drafts change no output: the benchmark checks that both runs gave the
same tokens ("same" column). Columns: output tokens, forwards per output token (the prompt's prefill not counted),
draft tokens proposed and accepted per forward, tokens per second, and the speed-up (drafts on / off).

Anchor (peers' nearest equivalent): transformers' `model.generate(do_sample=True)` with genlab's
`ConstraintLogitsProcessor`, with and without `prompt_lookup_num_tokens=8` (prompt lookup decoding). Its outputs
are not the same draws (its random stream differs), so only its speed is compared.

SMC-AWRS with drafts (sibling particles' continuations) is not implemented yet: the SMC column says so.
Run on an otherwise idle machine: the ratios are only meaningful there.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

import genlab
from genlab.hf import ConstraintLogitsProcessor
from genlab.samplers.masking import masked_sampling
from genlab.samplers.prompt import prompt_ids


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


def tasks(names: list[str]):
    """(task, label, prompt messages, constraint) for each prompt of the named tasks."""
    out = []
    if "json" in names:
        schema = genlab.JsonSchema(Person)
        for i, text in enumerate(PARAGRAPHS):
            prompt = [
                {"role": "user", "content": f"Extract the person as JSON with keys name, age, city, email:\n{text}"}
            ]
            out.append(("json", f"json-{i}", prompt, schema))
    if "regex" in names:
        regex = genlab.Regex(r"Order \d{5} on \d{4}-\d{2}-\d{2}\.")
        for i, (text, _, _) in enumerate(ORDERS):
            prompt = [{"role": "user", "content": f"{text}\nRestate as 'Order N on DATE.':"}]
            out.append(("regex", f"regex-{i}", prompt, regex))
    return out


def anchor(lm, prompt, constraint, max_tokens: int, lookup: int | None, seed: int) -> tuple[int, float]:
    """transformers' generate with genlab's logits processor: (output tokens, seconds)."""
    ids = torch.tensor([prompt_ids(lm, prompt)])
    processor = ConstraintLogitsProcessor(constraint, lm.tokenizer, vocab=lm.vocab)
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
    parser.add_argument("--tasks", default="json,regex")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--model", default=None, help="a model name or folder (default: SmolLM2)")
    parser.add_argument("--no-anchor", dest="anchor", action="store_false")
    parser.add_argument("--output", default="docs/benchmarks/drafts.md")
    args = parser.parse_args()
    lm = genlab.load(args.model, device="cpu")
    rows, totals = [], {}
    lookup_failures: list[str] = []
    for task, label, prompt, constraint in tasks(args.tasks.split(",")):
        for seed in range(args.seeds):
            runs = {}
            for drafts in (False, True):
                constraint.compile(lm.vocab)  # compile (and warm) outside the timings
                r = masked_sampling(lm, constraint, prompt, n=1, max_tokens=args.max_tokens, seed=seed, drafts=drafts)
                runs[drafts] = r
            off, on = runs[False], runs[True]
            n_tok = max(1, sum(len(ids) for ids in on.token_ids))
            same = off.token_ids == on.token_ids
            row = dict(
                task=task,
                label=label,
                seed=seed,
                tokens=n_tok,
                same=same,
                fwd_off=(off.counts.model_calls - 1) / n_tok,
                fwd_on=(on.counts.model_calls - 1) / n_tok,
                proposed=on.counts.drafts_proposed,
                accepted=on.counts.drafts_accepted,
                tps_off=n_tok / off.counts.wall_time,
                tps_on=n_tok / on.counts.wall_time,
                calls_on=on.counts.model_calls - 1,
            )
            if args.anchor:
                a_tok, a_t = anchor(lm, prompt, constraint, args.max_tokens, None, seed)
                try:
                    b_tok, b_t = anchor(lm, prompt, constraint, args.max_tokens, 8, seed)
                    lookup_tps = b_tok / b_t
                except genlab.GenlabError:  # generate's prompt lookup kept a token the processor had refused
                    lookup_tps = float("nan")
                    lookup_failures.append(label)
                row.update(hf_tps=a_tok / a_t, hf_lookup_tps=lookup_tps)
            rows.append(row)
            totals.setdefault(task, []).append(row)
            print(
                f"  {label} seed {seed}: {n_tok} tokens, forwards/token {row['fwd_off']:.2f} -> "
                f"{row['fwd_on']:.2f}, tok/s {row['tps_off']:.1f} -> {row['tps_on']:.1f}, same {same}",
                file=sys.stderr,
                flush=True,
            )
    lines = [
        f"# Drafts ({datetime.date.today()}, `python benchmarks/drafts.py {' '.join(sys.argv[1:])}`)",
        "",
        f"{lm!r}, torch threads {torch.get_num_threads()}, masking (temperature 1), n = 1 per prompt.",
        "",
        "| task | prompts | output tokens | same outputs | forwards/token off | on | accepted/forward | "
        "accept rate | tok/s off | on | speed-up | hf generate tok/s | + prompt lookup | SMC-AWRS drafts |",
        "| --- | --: | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
    ]
    for task, rs in totals.items():
        tok = sum(r["tokens"] for r in rs)
        calls_off = sum(r["fwd_off"] * r["tokens"] for r in rs)
        calls_on = sum(r["fwd_on"] * r["tokens"] for r in rs)
        t_off = sum(r["tokens"] / r["tps_off"] for r in rs)
        t_on = sum(r["tokens"] / r["tps_on"] for r in rs)
        prop, acc = sum(r["proposed"] for r in rs), sum(r["accepted"] for r in rs)
        hf = "n/a | n/a"
        if args.anchor:
            ok = [r for r in rs if r["hf_lookup_tps"] == r["hf_lookup_tps"]]  # NaN where the run failed
            lookup = f"failed on all {len(rs)}"
            if ok:
                rate = sum(r["tokens"] for r in ok) / sum(r["tokens"] / r["hf_lookup_tps"] for r in ok)
                lookup = f"{rate:.1f} ({len(rs) - len(ok)} of {len(rs)} failed)"
            hf = f"{tok / sum(r['tokens'] / r['hf_tps'] for r in rs):.1f} | {lookup}"
        lines.append(
            f"| {task} | {len(rs)} | {tok} | {sum(r['same'] for r in rs)}/{len(rs)} | "
            f"{calls_off / tok:.2f} | {calls_on / tok:.2f} | {acc / max(1, calls_on):.2f} | "
            f"{acc / max(1, prop):.2f} | {tok / t_off:.1f} | {tok / t_on:.1f} | {t_off / t_on:.2f}x | {hf} | "
            "not implemented |"
        )
    if lookup_failures:
        lines += [
            "",
            f"transformers' prompt lookup failed on {', '.join(lookup_failures)}: its draft verification kept a "
            "token that genlab's logits processor had masked (the processor raises when a row leaves the constraint).",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
