"""Tokens/s of genlab's batched, cached stepping (KVBatch) against transformers' own greedy `generate`.

For N sequences of the default model (SmolLM2-135M-Instruct), genlab prefills the prompt once and runs K steps of
logprobs() -> argmax (EOS excluded, as min_new_tokens does) -> extend; `generate` decodes the prompt repeated N times
with max_new_tokens = min_new_tokens = K. Both produce N*K tokens and the script checks they are the same tokens.
genlab's count is conservative: its K steps run K decoding forward passes (the last one scores a token nobody
reads), `generate` runs K - 1. The two are timed alternately so that load on the machine hits both alike.

    python benchmarks/model_step.py [--n 1 4 16] [--k 32] [--repeats 3] [--output docs/benchmarks/model_step.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial

import torch
from report import Printed, write_report

from genlab.models import load

PROMPT = (
    "You are a careful assistant. Answer in one short paragraph.\n"
    "Question: why do sequential Monte Carlo samplers resample their particles?\nAnswer:"
)


def genlab_greedy(lm, prompt: list[int], n: int, k: int) -> list[tuple[int, ...]]:
    """K greedy steps for n rows through KVBatch."""
    eos = torch.tensor(lm.eos_token_ids, device=lm.device)
    batch = lm.prefill(prompt, n)
    for _ in range(k):
        batch.extend(batch.logprobs().index_fill(1, eos, -torch.inf).argmax(dim=-1).tolist())
    return batch.token_ids


def hf_greedy(lm, prompt: list[int], n: int, k: int) -> list[tuple[int, ...]]:
    """K greedy tokens for n copies of the prompt through transformers' generate."""
    ids = torch.tensor([prompt] * n, device=lm.device)
    out = lm.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=k,
        min_new_tokens=k,
        do_sample=False,
        pad_token_id=lm.eos_token_ids[0],
    )
    return [tuple(row) for row in out[:, len(prompt) :].tolist()]


def timed(fn) -> tuple[float, object]:
    """Wall time of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="docs/benchmarks/model_step.md", help="markdown file ('' for none)")
    args = parser.parse_args()

    lm = load()
    prompt = lm.encode(PROMPT)
    print(f"{lm!r}; prompt {len(prompt)} tokens; K = {args.k}; torch threads {torch.get_num_threads()}")
    out = Printed()
    out("\n| N | genlab tok/s | generate tok/s | ratio | same tokens |")
    out("|---|---|---|---|---|")
    with torch.inference_mode():
        for n in args.n:
            ours = partial(genlab_greedy, lm, prompt, n, args.k)
            theirs = partial(hf_greedy, lm, prompt, n, args.k)
            ours(), theirs()  # warm-up
            runs = [(timed(ours), timed(theirs)) for _ in range(args.repeats)]
            ours_s = [o[0] for o, _ in runs]
            theirs_s = [t[0] for _, t in runs]
            same = all(o[1] == t[1] for o, t in runs)
            tokens = n * args.k
            out(
                f"| {n} | {tokens / min(ours_s):.0f} (median {tokens / statistics.median(ours_s):.0f}) "
                f"| {tokens / min(theirs_s):.0f} (median {tokens / statistics.median(theirs_s):.0f}) "
                f"| {min(theirs_s) / min(ours_s):.2f} | {same} |",
                flush=True,
            )
    settings = (
        f"{lm!r}; prompt {len(prompt)} tokens; K = {args.k}; fastest (and median) of {args.repeats} repeats; "
        f"torch threads {torch.get_num_threads()}; {os.cpu_count()} CPU cores"
    )
    write_report(args.output, "Model step: KVBatch against generate", settings, out.text)


if __name__ == "__main__":
    main()
