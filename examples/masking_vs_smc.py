r"""Why SMC and not masking: the bias of token masking on a small problem with a known answer.

After "The color of the sky is", constrained to ` (red|grey|blue-green|bluish)\.`, the model's true conditional
p(x | x matches) is computed exactly by enumerating every allowed token sequence (`exact_posterior`). Token masking
renormalises at every token, so the likely first token " blue" leads it into the unlikely whole " blue-green.";
SMC with AWRS proposals weights each particle by the mass the constraint allowed and converges to the true
conditional. Prints a table (text, exact, masking's sample frequencies, SMC's weighted posterior) and each
estimate's KL divergence to the exact posterior.

    python examples/masking_vs_smc.py [--samples 128] [--particles 256]
"""

from __future__ import annotations

import argparse
import math

import genlab
from genlab.samplers import exact_posterior

PROMPT = "The color of the sky is"
PATTERN = r" (red|grey|blue-green|bluish)\."
MAX_TOKENS = 12  # the longest string's bytes: every tokenization fits


def kl(estimate: dict[str, float], exact: dict[str, float]) -> float:
    """KL(estimate || exact) in nats over texts (the estimate only holds texts of the language)."""
    return sum(q * math.log(q / exact[text]) for text, q in estimate.items() if q > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=128, help="token-masking samples")
    parser.add_argument("--particles", type=int, default=256, help="SMC particles")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    lm = genlab.load()
    regex = genlab.Regex(PATTERN)
    exact = exact_posterior(lm, PROMPT, regex, max_tokens=MAX_TOKENS).text_posterior(lm)
    # samplers count the EOS step too: one more than the enumeration's limit
    masked = genlab.generate(
        lm, PROMPT, regex, method="mask", n_particles=args.samples, max_tokens=MAX_TOKENS + 1, seed=args.seed
    )
    masking = {text: masked.texts.count(text) / len(masked.texts) for text in set(masked.texts)}
    smc = genlab.generate(
        lm, PROMPT, regex, method="smc", n_particles=args.particles, max_tokens=MAX_TOKENS + 1, seed=args.seed
    ).text_posterior()

    print(f"prompt {PROMPT!r}, regex {PATTERN!r}")
    print(f"{'text':<16}{'exact':>10}{'masking':>10}{'SMC':>10}")
    for text in sorted(exact, key=lambda t: -exact[t]):
        print(f"{text!r:<16}{exact[text]:>10.4f}{masking.get(text, 0.0):>10.4f}{smc.get(text, 0.0):>10.4f}")
    print(
        f"KL to exact (nats): masking ({args.samples} samples) {kl(masking, exact):.3f}, "
        f"SMC-AWRS ({args.particles} particles) {kl(smc, exact):.3f}"
    )


if __name__ == "__main__":
    main()
