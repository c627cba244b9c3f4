"""Regex formats: dates, phone numbers and email-like addresses, sampled with SMC under a regex.

Each pattern is a `genlab.Regex` (Python `re.fullmatch` semantics, compiled to a byte-level automaton); SMC with
AWRS proposals draws particles whose weighted distribution is the model's own conditional given the pattern. Prints
each pattern's distinct outputs with their posterior weights and statuses, and the run's costs.

    python examples/regex_formats.py [--particles 6] [--max-tokens 24]
"""

from __future__ import annotations

import argparse

import genlab

FORMATS = [
    (
        "date",
        "When did the first person walk on the Moon? Answer with the date.",
        r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
    ),
    ("phone", "Make up a US phone number for a pizza shop.", r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}"),
    ("email", "Make up an email address for Jane Doe at example.com.", r"[a-z][a-z0-9._]{1,15}@example\.com"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--particles", type=int, default=6, help="SMC particles per pattern")
    parser.add_argument("--max-tokens", type=int, default=24, help="most tokens per output")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    lm = genlab.load()
    for name, question, pattern in FORMATS:
        result = genlab.generate(
            lm,
            [{"role": "user", "content": question}],
            pattern,
            method="smc",
            n_particles=args.particles,
            max_tokens=args.max_tokens,
            seed=args.seed,
        )
        print(f"{name}: {pattern}")
        for row in result.distinct():
            print(f"  {row.weight:.3f}  x{row.count}  {row.status:<10}  {row.text!r}")
        print(f"  {result.summary()}")


if __name__ == "__main__":
    main()
