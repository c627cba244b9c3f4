"""The `genlab` command. For now one job: `genlab demo`, timed generation on the default model, free and under a
regex constraint (token masking)."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from genlab.models import load

    t0 = time.perf_counter()
    lm = load(args.model)
    t_load = time.perf_counter() - t0
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
    print(f"timings   load {t_load:.1f} s, prefill {t_prefill * 1000:.0f} ms, "
          f"{len(out)} tokens in {t_gen:.2f} s ({rate:.1f} tok/s)")
    _demo_regex(lm, args)
    return 0


def _demo_regex(lm, args: argparse.Namespace) -> None:
    from genlab import Regex
    from genlab.samplers import masked_sampling

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
    print(f"timings   compile {t_compile * 1000:.1f} ms, {c.tokens} tokens in {c.wall_time:.2f} s "
          f"({c.model_calls} batched model calls, {c.masks} masks)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `genlab` console script."""
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="greedy completion on the default model, with timings")
    demo.add_argument("--prompt", default="Name three primary colours in one short sentence.")
    demo.add_argument("--model", default=None, help="a local Hugging Face model folder (default: SmolLM2)")
    demo.add_argument("--max-tokens", type=int, default=40)
    demo.add_argument("--regex", default=r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}",
                      help="pattern for the constrained part (re semantics: \\d also admits non-ASCII digits)")
    demo.add_argument("--regex-prompt", default="Make up a US phone number for a fictional pizza shop.")
    demo.add_argument("--samples", type=int, default=3)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
