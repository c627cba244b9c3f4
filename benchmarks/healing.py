"""Token healing: what a prompt's last token does to the posterior, and what healing gives instead.

Usage: python benchmarks/healing.py [--models smollm2,gemma-3-270m] [--particles 64] [--seeds 3]
                                    [--output docs/benchmarks/healing.md]

Each problem is a prompt that ends at a boundary its text never had (a trailing space, a cut word, a character
cut in its bytes, an open quote, an operator) and a small finite language of continuations, so the targets are
computed exactly by enumeration (`genlab.samplers.exact.exact_posterior`):

- "healed": p(text | prompt text), the prompt backed off by the tokens a vocabulary token could run past and every
  tokenization of (removed bytes + text) summed: the target healing promises;
- "raw": p(text | prompt tokens), what a sampler targets without healing.

Columns: the healed bytes, the top text under each target, KL(raw || healed) (the boundary's bias in the target
itself, before any sampling error), and, against the healed target, the KL of each sampler's output distribution:
SMC-AWRS (N particles, per seed: the worst of the seeds is shown), with healing and without, and token masking
(N samples' frequencies, as masking users read them) with healing and without. Quality, not speed: the figures
do not depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import math
import re

from report import Printed, write_report

import genlab
from genlab import GenlabError, Regex
from genlab.samplers.exact import exact_posterior
from genlab.samplers.masking import masked_sampling
from genlab.samplers.smc import smc

PROBLEMS = [  # (name, prompt, continuations): short texts, so that exact enumeration over every tokenization fits
    ("trailing space", "The color of the sky is ", ["red", "grey", "blue", "black"]),
    ("cut word", "My favourite fruit is the ban", ["ana", "anas", "quet"]),
    ("cut URL", "The documentation is at https://exa", ["mple.com", "mple.org", "ct.io"]),
    ("cut number", "Water boils at 10", ["0 C", "5 C", " C"]),
    ("open quote", 'She answered: "', ['Yes"', 'No"', 'Maybe"']),
    ("operator", "def add(a, b):\n    return a +", [" b", "b", " a"]),
    ("cut character", "中文字符", ["串", "集", "。"]),
    ("no boundary", "The capital of France is", [" Paris", " Lyon", " Nice"]),
]


def kl(p: dict[str, float], q: dict[str, float]) -> float:
    """KL(p || q) in nats; inf where p puts mass q does not."""
    total = 0.0
    for text, mass in p.items():
        if mass > 0:
            if q.get(text, 0.0) <= 0:
                return math.inf
            total += mass * math.log(mass / q[text])
    return total


def frequencies(texts: list[str], complete: list[bool]) -> dict[str, float]:
    kept = [t for t, ok in zip(texts, complete) if ok]
    return {t: kept.count(t) / len(kept) for t in set(kept)} if kept else {}


def top(post: dict[str, float]) -> str:
    text, mass = max(post.items(), key=lambda kv: kv[1])
    return f"{text!r} {mass:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma-3-270m")
    parser.add_argument("--particles", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=4, help="tokens beyond the longest text's bytes")
    parser.add_argument("--max-sequences", type=int, default=5000, help="exact enumeration's bound on prefixes")
    parser.add_argument("--output", default="docs/benchmarks/healing.md")
    args = parser.parse_args()
    out = Printed()
    n, seeds = args.particles, range(args.seeds)
    for model in args.models.split(","):
        lm = genlab.load(None if model == "smollm2" else model, device="cpu")
        out(f"\n## {model}\n")
        out(
            "| problem | healed | top (healed target) | top (raw target) | KL(raw ‖ healed) "
            f"| SMC healed, worst of {len(seeds)} | SMC raw, worst | masking healed | masking raw |"
        )
        out("| --- | --- | --- | --- | --: | --: | --: | --: | --: |")
        worst_healed = 0.0
        for name, prompt, words in PROBLEMS:
            regex = Regex("|".join(re.escape(w) for w in words))
            max_tokens = args.max_tokens + max(len(w.encode()) for w in words)  # every tokenization fits
            try:
                healed_exact = exact_posterior(
                    lm, prompt, regex, max_tokens=max_tokens, heal=True, max_sequences=args.max_sequences
                )
                target = healed_exact.text_posterior(lm)
                raw = exact_posterior(
                    lm, prompt, regex, max_tokens=max_tokens, max_sequences=args.max_sequences
                ).text_posterior(lm)
            except GenlabError as e:  # too many tokenizations to enumerate: no exact target to compare with
                out(f"| {name} {prompt!r} | exact target not computed: {str(e).split(';')[0]} | | | | | | | |")
                continue
            smc_healed = [
                kl(
                    smc(lm, regex, prompt, n_particles=n, seed=s, max_tokens=max_tokens, heal=True).text_posterior(),
                    target,
                )
                for s in seeds
            ]
            smc_raw = [
                kl(smc(lm, regex, prompt, n_particles=n, seed=s, max_tokens=max_tokens).text_posterior(), target)
                for s in seeds
            ]
            masks = []
            for heal in (True, False):
                result = masked_sampling(lm, regex, prompt, n=n, max_tokens=max_tokens, seed=0, heal=heal)
                freq = frequencies(result.texts, result.complete)
                masks.append(f"{kl(freq, target):.3f} ({top(freq)})")
            worst_healed = max(worst_healed, *smc_healed)
            out(
                f"| {name} {prompt!r} | {repr(healed_exact.healed)[1:]} | {top(target)} "
                f"| {top(raw)} | {kl(raw, target):.3f} | {max(smc_healed):.3f} | {max(smc_raw):.3f} "
                f"| {masks[0]} | {masks[1]} |"
            )
        out(f"\nSMC with healing, worst KL to the healed target over problems and seeds: {worst_healed:.3f}")
    settings = (
        f"{args.particles} particles (SMC) or samples (masking; frequencies, with the top text), seeds "
        f"{list(seeds)}; at most as many tokens as the longest text has bytes, plus {args.max_tokens} (and the tokens "
        "healing backs off). KL in nats, each against the healed target (exact enumeration). See the script's "
        "docstring for the columns."
    )
    write_report(args.output, "Token healing", settings, out.text)


if __name__ == "__main__":
    main()
