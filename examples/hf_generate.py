"""A genlab constraint inside transformers' own `model.generate`: `genlab.hf.ConstraintLogitsProcessor`.

The processor masks each row's next-token scores to the tokens that keep the output inside the constraint (EOS
only where the output is complete), so stock greedy decoding and sampling, batched and left-padded, return
outputs that fullmatch the regex. This is token masking: valid outputs, but distributed as masking distributes
them (see masking_vs_smc.py); `genlab.generate(method="smc")` samples the model's true conditional.

    python examples/hf_generate.py [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse

import torch

import genlab
from genlab.hf import ConstraintLogitsProcessor

PATTERN = r" ?\(?[0-9]{3}\)?[ -][0-9]{3}-[0-9]{4}"
PROMPTS = ["Call the pizza shop at", "The office number, as printed on the business card, is"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-new-tokens", type=int, default=16, help="most new tokens per row")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for sampling")
    args = parser.parse_args()

    # any transformers causal LM and its tokenizer; here the default model's, from genlab's loader
    lm = genlab.load()
    model, tokenizer = lm.model, lm.tokenizer
    tokenizer.padding_side = "left"  # a batch of prompts of different lengths
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    regex = genlab.Regex(PATTERN)
    print(f"regex: {PATTERN}")
    for mode, options in [("greedy", {"do_sample": False}), ("sampling", {"do_sample": True, "temperature": 1.0})]:
        torch.manual_seed(args.seed)
        processor = ConstraintLogitsProcessor(regex, tokenizer)  # one processor per generate call
        out = model.generate(
            **inputs,
            logits_processor=[processor],
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tokenizer.eos_token_id,
            **options,
        )
        for prompt, row in zip(PROMPTS, out):
            text = tokenizer.decode(row[inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            print(f"{mode:<8}  {prompt!r} -> {text!r}")


if __name__ == "__main__":
    main()
