"""One decoding forward of the default model on the CPU: genlab's decode-sized `Linear` kernel against torch's own.

Each case is one `KVBatch.extend` + `logprobs` after a 30-token prompt: N rows of one token each (SMC's particles,
a server's requests), or one row given k tokens at once (a draft verified in one forward, every position's
log-probs kept). Both sides run on the same loaded model, the kernel installed and uninstalled in turn
(`genlab.models.cpu_linear`), alternating so that load on the machine hits both alike; torch's side is transformers'
`nn.Linear` on torch's BLAS (MKL). The last column is the largest log-prob difference between the two, and a
greedy 32-token run checks that both choose the same tokens.

    python benchmarks/cpu_linear.py [--rows 1 2 4 8 16 24] [--drafts 2 4 8] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from report import Printed, write_report

from genlab.models import cpu_linear, load

PROMPT = (
    "You are a careful assistant. Answer in one short paragraph.\n"
    "Question: why do sequential Monte Carlo samplers resample their particles?\nAnswer:"
)


def forward_times(lm, prompt: list[int], rows: int, draft: int, repeats: int) -> tuple[list[float], torch.Tensor]:
    """Seconds per forward for `repeats` forwards (after two warm-ups), and the log-probs of the last one."""
    batch = lm.prefill(prompt, rows)
    times = []
    logprobs = batch.logprobs()
    for _ in range(repeats + 2):
        tokens = [[42 + j for j in range(draft)]] * rows
        start = time.perf_counter()
        batch.extend(tokens, keep_all=draft > 1)
        logprobs = torch.cat(batch.recent) if draft > 1 else batch.logprobs()
        times.append(time.perf_counter() - start)
        if draft > 1:  # back to one new token per row, so every repeat attends over the same lengths
            batch.truncate([length - draft + 1 for length in batch.lengths])
    return times[2:], logprobs


def greedy(lm, prompt: list[int], k: int) -> tuple[int, ...]:
    """K greedy tokens for one row."""
    batch = lm.prefill(prompt, 1)
    for _ in range(k):
        batch.extend([int(batch.logprobs()[0].argmax())])
    return batch.token_ids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 24])
    parser.add_argument("--drafts", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default="docs/benchmarks/cpu_linear.md", help="markdown file ('' for none)")
    args = parser.parse_args()

    lm = load(cpu_kernels=False)
    prompt = lm.encode(PROMPT)
    print(f"{lm!r}; prompt {len(prompt)} tokens; torch threads {torch.get_num_threads()}")
    cpu_linear.install(lm.model)
    greedy(lm, prompt, 2)  # compile (or load) the kernel before timing
    cpu_linear.uninstall(lm.model)
    out = Printed()
    out("\n| forward | tokens | torch ms | genlab ms | speed-up | max abs log-prob difference |")
    out("| --- | --: | --: | --: | --: | --: |")
    cases = [(n, 1) for n in args.rows] + [(1, k) for k in args.drafts]
    with torch.inference_mode():
        for rows, draft in cases:
            torch_s: list[float] = []
            ours_s: list[float] = []
            for _ in range(2):  # alternate halves so drift hits both
                cpu_linear.uninstall(lm.model)
                t, theirs = forward_times(lm, prompt, rows, draft, args.repeats // 2)
                torch_s += t
                cpu_linear.install(lm.model)
                t, ours = forward_times(lm, prompt, rows, draft, args.repeats // 2)
                ours_s += t
            cpu_linear.uninstall(lm.model)
            label = f"{rows} rows x 1 token" if draft == 1 else f"1 row x {draft}-token draft"
            a, b = statistics.median(torch_s) * 1e3, statistics.median(ours_s) * 1e3
            diff = (ours - theirs).abs().max().item()
            out(f"| {label} | {rows * draft} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {diff:.1e} |", flush=True)
        plain = greedy(lm, prompt, 32)
        cpu_linear.install(lm.model)
        fast = greedy(lm, prompt, 32)
    out(f"\nGreedy 32 tokens, same with and without the kernel: {plain == fast}")
    settings = (
        f"{lm!r}; prompt {len(prompt)} tokens; median of {args.repeats} forwards per side (two alternating "
        f"halves); torch threads {torch.get_num_threads()}; {os.cpu_count()} CPU cores"
    )
    write_report(args.output, "Decode-sized CPU Linear kernel against torch's", settings, out.text)


if __name__ == "__main__":
    main()
