"""JSON extraction: a Pydantic model in, validated model instances out.

Each text is turned into a `Person` by SMC with AWRS proposals over the JSON Schema of the model
(`genlab.JsonSchema(Person)`, method="smc"), so every complete output is JSON that validates against the model and
the weighted outputs follow the (tempered, at --temperature) model's own conditional distribution. Prints, per
text, each distinct instance with its posterior weight, then the one line of JSON of the heaviest.

    python examples/json_extraction.py [--particles 4] [--max-tokens 40] [--temperature 0.3]
"""

from __future__ import annotations

import argparse

from pydantic import BaseModel, ConfigDict, Field

import genlab


class Person(BaseModel):
    """A person mentioned in a text."""

    model_config = ConfigDict(extra="forbid")  # no other keys: the JSON ends after these three
    name: str = Field(max_length=30)
    age: int = Field(ge=0, le=130)
    city: str = Field(max_length=30)


TEXTS = [
    "Maria Lopez, 34, lives in Madrid.",
    "Kenji Sato is a 61-year-old painter from Kyoto.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--particles", type=int, default=4, help="SMC particles per text")
    parser.add_argument("--max-tokens", type=int, default=40, help="most tokens per output")
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.3,
        help="sampling temperature: SMC then targets the tempered model's conditional",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()

    lm = genlab.load()
    constraint = genlab.JsonSchema(Person)
    for text in TEXTS:
        prompt = [{"role": "user", "content": f"Extract the person as JSON with name, age and city: {text}"}]
        result = genlab.generate(
            lm,
            prompt,
            constraint,
            method="smc",
            n_particles=args.particles,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
        print(f"text: {text}")
        weights: dict[str, float] = {}
        for person, weight in zip(result.parsed, result.posterior):
            if person is not None:  # None: incomplete (cut at --max-tokens) or invalid
                key = person.model_dump_json()
                weights[key] = weights.get(key, 0.0) + weight
        for key, weight in sorted(weights.items(), key=lambda kv: -kv[1]):
            print(f"  {weight:.3f}  {Person.model_validate_json(key)!r}")
        if weights:
            print(f"  best: {max(weights, key=weights.get)}")
        else:
            print("  no complete output: raise --max-tokens")
        print(f"  {result.summary()}")


if __name__ == "__main__":
    main()
