"""`Pattern` on 100 patterns beyond regular syntax: time beside free sampling, checks per token, valid outputs,
and genlm-control 0.4.1 with a `regex` partial-match potential on the backreference patterns.

Usage: python benchmarks/patterns.py [--limit N] [--particles 4] [--max-tokens 32]
                                     [--genlm-python .venv-genlm/bin/python | --no-genlm]
                                     [--output docs/benchmarks/patterns.md]

Each pattern (written for this benchmark, by category: backreferences, lookaheads, lookbehinds, atomic groups and
possessive quantifiers, conditionals, word boundaries, Unicode properties, recursion, version-1 set operations,
mixtures) comes with a raw-text prompt on SmolLM2 (CPU, 2 threads). Per pattern, in one run:

- free: N rows of free sampling for `--max-tokens` tokens (prefill, then one batched forward per token), the
  time an unconstrained run of the same length takes;
- genlab: SMC-AWRS with N particles and the same token limit (`smc`, seed 0), the pattern compiled before timing;
  its checks per token (AWRS `allows` calls per drawn token), its `regex` calls per token (the exact check's
  real cost: AWRS checks, exact masks and end checks, after the prefix memo) and how many of the N outputs
  finished and fullmatch;
- how the pattern is enforced: "exact DFA" (regular after all: lookarounds, boundaries, conditionals, atomic
  groups, properties, set operations; no check runs), "DFA x check" (an over-approximating DFA masks and steps
  first, `regex` checks what it lets through) or "check only" (no safe DFA: every token checked); and whether
  `Regex` (the `re` package's syntax) takes the pattern too.

genlm-control runs in its own interpreter (`--genlm-python`, a venv with `torch==2.13.0 genlm-control==0.4.1`) on
the backreference patterns, same prompt ids, N and token limit. Goals (issue 26): every pattern within 5x free
sampling's time, p50 within 1.5x; median checks per token <= 2; genlm-control's time on backreferences >= 10x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import regex
import torch
from report import Printed, write_report

import genlab
from genlab import Pattern, Regex
from genlab.samplers.smc import smc

ROOT = Path(__file__).resolve().parents[1]

# (category, what the output should be, pattern): the prompt is built from the description
PATTERNS = [
    ("backreference", "a word that starts and ends with the same letter", r" ([a-z])[a-z]{1,8}\1\."),
    ("backreference", "a palindrome of five letters", r" ([a-z])([a-z])[a-z]\2\1\."),
    ("backreference", "a word, then the same word again", r" ([a-z]{3,8}) \1\."),
    ("backreference", "an HTML element with matching tags", r" <([a-z]{1,6})>[a-z ]{1,20}</\1>"),
    ("backreference", "a string in single or double quotes", r""" (['"])[A-Za-z ]{1,20}\1"""),
    ("backreference", "a date whose day equals its month", r" (0[1-9]|1[0-2])/\1/20[0-9]{2}"),
    ("backreference", "two identical digits", r" ([0-9])\1"),
    ("backreference", "a doubled word like bye-bye", r" ([a-z]{2,6})-\1"),
    ("backreference", "a capitalised name said twice", r" ([A-Z][a-z]{1,8}) \1"),
    ("backreference", "a word with a doubled letter", r" [a-z]{0,6}([a-z])\1[a-z]{0,6}\."),
    ("backreference", "bold markdown text", r" (\*\*|__)[A-Za-z ]{1,20}\1"),
    ("backreference", "an assignment of a name to itself", r" (?P<x>[a-z]{2,5})=(?P=x)"),
    ("backreference", "a CSV row whose first and last fields are equal", r" ([a-z]{1,8}),[a-z]{1,8},\1"),
    ("backreference", "syllables in the pattern ABA", r" ([a-z]{2})([a-z]{2})\1"),
    ("backreference", "a phone number whose exchange repeats its area code", r" \(([0-9]{3})\) \1-[0-9]{4}"),
    ("backreference", "a word ending with its first two letters", r" ([a-z]{2})[a-z]{1,6}\1\."),
    ("backreference", "a sentence that ends with its first word", r" ([A-Z][a-z]{1,8}) [a-z ]{1,20} \1\."),
    ("backreference", "a JSON pair whose value starts with its key", r' "([a-z]{1,8})": "\1_[a-z]{1,8}"'),
    ("backreference", "a word repeated in any case", r"(?i) ([a-z]{3,6}) \1\."),
    ("backreference", "a letter written three times", r" ([a-z])\1\1"),
    ("lookahead", "a password with a digit and a capital", r" (?=[^ ]*[0-9])(?=[^ ]*[A-Z])[A-Za-z0-9]{8,12}"),
    ("lookahead", "a word containing q", r" (?=\w*q)\w{3,10}\."),
    ("lookahead", "an identifier", r" (?![0-9])\w{2,10}\."),
    ("lookahead", "a word followed by a full stop", r" [a-z]{2,10}(?=\.)\."),
    ("lookahead", "a phrase of 5 to 10 characters", r" (?=[a-z ]{5,10}$)[a-z ]+"),
    ("lookahead", "a word that is not 'the'", r" (?!the\.)[a-z]{3,8}\."),
    ("lookahead", "a word with two vowels", r" (?=[a-z]*[aeiou][a-z]*[aeiou])[a-z]{4,9}\."),
    ("lookahead", "a price in dollars", r" \$(?=[0-9]{1,4}\.)[0-9]+\.[0-9]{2}"),
    ("lookahead", "two or three capitalised words", r" (?=[A-Z])[A-Za-z]{2,10}( (?=[A-Z])[A-Za-z]{2,10}){1,2}"),
    ("lookahead", "a sentence without double spaces", r" (?!.*  )[a-z ]{5,30}\."),
    ("lookahead", "a number with thousands separators", r" [0-9]{1,3}(?=,|$)(,[0-9]{3}){0,2}"),
    ("lookahead", "an email address", r" (?=[a-z.]{1,20}@)[a-z.]{1,20}@[a-z]{2,8}\.com"),
    ("lookbehind", "a word not ending in ing", r" [a-z]{2,10}(?<!ing)\."),
    ("lookbehind", "a number ending in 5", r" [0-9]{1,5}(?<=5)"),
    ("lookbehind", "a round price", r" \$[0-9]{1,4}(?<=[05])\.00"),
    ("lookbehind", "a word ending in a vowel", r" [A-Za-z]{2,10}(?<=[aeiou])\."),
    ("lookbehind", "a singular noun", r" [a-z]{2,10}(?<!s)\."),
    ("lookbehind", "a capitalised word", r" (?<= )[A-Z][a-z]{2,9}\."),
    ("lookbehind", "a word ending consonant-vowel-consonant", r" [a-z]{3,8}(?<=[^aeiou][aeiou][^aeiou])\."),
    ("lookbehind", "a year not ending in 00", r" [0-9]{4}(?<!00)"),
    ("lookbehind", "a phrase without a trailing space", r" [a-z ]{3,30}(?<! )\."),
    ("lookbehind", "a colour that is not black", r" #[0-9a-f]{6}(?<!000000)"),
    ("lookbehind", "a surname not ending in son", r" [A-Z][a-z]{2,10}(?<!son)\."),
    ("lookbehind", "an adverb ending in ly", r" [a-z]{2,10}(?<=ly)\."),
    ("atomic", "a word", r" (?>[a-z]{1,12})\."),
    ("atomic", "an amount", r" [0-9]{1,5}+\.[0-9]{2}"),
    ("atomic", "a number or a word, then a word", r" (?>[0-9]{1,5}|[a-z]{1,8}) [a-z]{1,8}\."),
    ("atomic", "letters then a digit", r" [a-z]{0,8}+[0-9]"),
    ("atomic", "the letters abc", r" (?>ab|a)c"),
    ("atomic", "a quoted string with escapes", r' "(?>[^"\\]{1,5}+|\\.){0,6}"'),
    ("atomic", "two or three capitalised words", r" (?>[A-Z][a-z]{0,8})(?> [A-Z][a-z]{0,8}){1,2}"),
    ("atomic", "two words", r" [a-z]{1,10}+ [a-z]{1,10}+\."),
    ("atomic", "an IP address", r" (?>(?:[0-9]{1,3}\.){3})[0-9]{1,3}"),
    ("atomic", "yes, no or maybe", r" (?>yes|no|maybe)\."),
    ("conditional", "a phone number, parentheses optional", r" (\()?[0-9]{3}(?(1)\))-[0-9]{4}"),
    ("conditional", "an email address, maybe in angle brackets", r" (<)?[a-z]{1,10}@[a-z]{1,8}\.com(?(1)>)"),
    ("conditional", "a phrase, maybe quoted", r' (")?[A-Za-z ]{2,20}(?(1)")\.'),
    ("conditional", "an amount with $ and cents, or in dollars", r" (\$)?[0-9]{1,4}(?(1)\.[0-9]{2}| dollars)"),
    ("conditional", "a title and a name", r" (?:(Mr)|Ms)\. [A-Z][a-z]{1,8}(?(1) Sr\.|\.)"),
    ("conditional", "a word, exclaimed if capitalised", r" ([A-Z])?[a-z]{2,8}(?(1)!|\.)"),
    ("conditional", "a number, maybe in brackets", r" (\[)?[0-9]{1,4}(?(1)\])"),
    ("conditional", "a temperature", r" (-)?[0-9]{1,3}(?(1) below| above) zero"),
    ("boundary", "a phrase starting with the", r" \bthe\b [a-z]{2,10}\."),
    ("boundary", "a word", r" [a-z]{2,10}\b\."),
    ("boundary", "a short sentence", r" \b[A-Z][a-z]{1,9}\b( \b[a-z]{1,9}\b){1,4}\."),
    ("boundary", "a year", r" \b(19|20)[0-9]{2}\b"),
    ("boundary", "a word of at least three letters", r" \w{1,8}\B[a-z]\."),
    ("boundary", "two words", r" [a-z]{2,9}\b \b[a-z]{2,9}"),
    ("boundary", "a word starting with cat", r" \bcat\w{0,6}\b"),
    ("boundary", "three three-letter words", r" \b\w{3}\b \b\w{3}\b \b\w{3}\b"),
    ("boundary", "a name and a word", r" [A-Z]\w{1,8}\b,? \w{1,8}\."),
    ("boundary", "a word ending in ing", r" \b[a-z]{1,8}ing\b\."),
    ("unicode", "a capitalised word", r" \p{Lu}\p{Ll}{2,10}\."),
    ("unicode", "two words in any script", r" \p{L}{1,10} \p{L}{1,10}\."),
    ("unicode", "a code of letters and digits", r" [\p{L}\p{N}]{3,12}\."),
    ("unicode", "a Greek word", r" \p{Greek}{2,8}"),
    ("unicode", "a Chinese word", r" \p{Han}{1,4}"),
    ("unicode", "some symbols", r" \P{L}{1,5}"),
    ("unicode", "a number", r" \p{Nd}{2,6}"),
    ("unicode", "an acronym", r" \p{Lu}{2,5}"),
    ("unicode", "a price with a currency sign", r" \p{Sc}[0-9]{1,4}"),
    ("unicode", "a lower-case phrase", r" [\p{Ll} ]{5,30}\."),
    ("recursion", "balanced parentheses", r" (\((?:[a-z]|(?1)){0,4}\))"),
    ("recursion", "a nested list of numbers", r" (\[(?:[0-9,]|(?1)){0,6}\])"),
    ("recursion", "nested angle brackets", r" (<(?:[a-z]|(?1)){0,4}>)"),
    ("recursion", "a nested object", r" (\{(?:[a-z:,]|(?1)){0,6}\})"),
    ("recursion", "a palindrome", r" ((?:([a-z])(?1)\2)|[a-z])\."),
    ("recursion", "an arithmetic expression", r" (\((?:[0-9+*]|(?1)){1,6}\)|[0-9]{1,3})"),
    ("set operations", "a word of consonants", r"(?V1) [[a-z]--[aeiou]]{3,8}\."),
    ("set operations", "a word without digits", r"(?V1) [\w--\d]{3,10}\."),
    ("set operations", "letters from a to f", r"(?V1) [[a-z]&&[a-f]]{2,6}"),
    ("set operations", "a lower-case word", r"(?V1) [\p{L}--\p{Lu}]{2,10}\."),
    ("set operations", "digits other than 0 and 5", r"(?V1) [[0-9]--[05]]{2,4}"),
    ("set operations", "consonants only", r"(?V1) [[:alpha:]--[aeiouAEIOU]]{3,6}"),
    ("mixed", "a word, a digit, the word again", r" ([a-z]{1,8})(?=[0-9])[0-9] \1\."),
    ("mixed", "a two-digit number, dash, the same number", r" (?<![0-9])([0-9]{2})-\1"),
    ("mixed", "two words that start with the same capital", r" (?>([A-Z]))[a-z]{1,8} \1[a-z]{1,8}\."),
    ("mixed", "two words starting with the same letter", r" \b([a-z])[a-z]{0,8} \1[a-z]{0,8}\b\."),
    ("mixed", "a word whose first three letters repeat", r" (?=([a-z]{3}))\1[a-z]{0,6}\."),
    ("mixed", "a word said twice", r"(?i) \b(\w{2,8})\b \1\b\."),
]


def entities(pattern: str) -> str:
    """The pattern for a raw-HTML `<code>` cell: every sign as a character reference, so that neither the table
    (`|`), nor Markdown (`\\`, `[`, `*`, `_`), nor its HTML reader (`<!`) takes it for syntax."""
    return "".join(c if c.isalnum() or c == " " else f"&#{ord(c)};" for c in pattern)


def prompt_of(description: str) -> str:
    return f"Write {description}, and nothing else.\nAnswer:"


def free_sampling(lm, ids: list[int], n: int, max_tokens: int) -> float:
    """Seconds for n rows of free sampling, max_tokens tokens each (one batched forward per token)."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    batch = lm.prefill(ids, n)
    for _ in range(max_tokens):
        tokens = torch.multinomial(batch.logprobs().exp(), 1)[:, 0].tolist()
        batch.extend(tokens)
    return time.perf_counter() - t0


def run_genlm(args, lm, tasks: list[dict]) -> tuple[dict, str | None]:
    if args.no_genlm:
        return {}, "skipped (--no-genlm)"
    python = Path(args.genlm_python) if args.genlm_python else ROOT / ".venv-genlm" / "bin" / "python"
    if not python.exists():
        return {}, f"no genlm-control interpreter at {python}"
    job = {
        "model": str(genlab.models.path()),
        "eos_ids": sorted(lm.vocab.eos_ids),
        "threads": torch.get_num_threads(),
        "n_particles": args.particles,
        "max_tokens": args.max_tokens,
        "tasks": tasks,
    }
    helper = Path(__file__).with_name("_genlm_pattern_run.py")
    try:
        done = subprocess.run(
            [str(python), str(helper), json.dumps(job)], capture_output=True, text=True, timeout=args.genlm_timeout
        )
    except subprocess.TimeoutExpired:
        return {}, f"timed out after {args.genlm_timeout} s"
    if done.returncode != 0:
        return {}, f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])["results"], None


def compiles_as_regex(pattern: str) -> bool:
    """Whether `Regex` (Python's `re` syntax and meaning) takes the pattern."""
    try:
        Regex(pattern)
    except genlab.ConstraintError:
        return False
    return True


class _ForwardClock:
    """Seconds spent in the model's forward passes (prefills and steps): what no cheaper check could remove."""

    def __init__(self, lm):
        self.seconds = 0.0
        forward = lm.forward

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return forward(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        lm.forward = timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N patterns")
    parser.add_argument("--only", default=None, help="only these patterns, by number (e.g. 84,86,99)")
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--genlm-python", default=None)
    parser.add_argument("--no-genlm", action="store_true")
    parser.add_argument("--genlm-timeout", type=int, default=3600)
    parser.add_argument("--output", default="docs/benchmarks/patterns.md")
    args = parser.parse_args()
    lm = genlab.load(None, device="cpu")
    forwards = _ForwardClock(lm)
    chosen = range(len(PATTERNS)) if args.only is None else [int(k) for k in args.only.split(",")]
    patterns = [(i, PATTERNS[i]) for i in chosen][: args.limit]
    n, T = args.particles, args.max_tokens
    smc(lm, Pattern(r" ([a-z])\1"), prompt_of("two equal letters"), n_particles=n, max_tokens=4, seed=0)  # warm-up
    rows = []
    for i, (category, description, pattern) in patterns:
        prompt = prompt_of(description)
        ids = lm.encode(prompt)
        constraint = Pattern(pattern)
        constraint.compile(lm.vocab)
        free = free_sampling(lm, ids, n, T)
        calls = constraint.calls
        spent = forwards.seconds
        t0 = time.perf_counter()
        result = smc(lm, constraint, prompt, n_particles=n, max_tokens=T, seed=0)
        wall = time.perf_counter() - t0
        forward_s = forwards.seconds - spent
        calls = constraint.calls - calls
        valid = sum(s.complete and regex.fullmatch(pattern, s.text) is not None for s in result.samples)
        finished = sum(s.complete for s in result.samples)
        assert valid == finished, (pattern, result.texts)  # a finished output that does not fullmatch is a bug
        rows.append(
            {
                "i": i,
                "category": category,
                "pattern": pattern,
                "ids": ids,
                "mode": constraint.describe()["enforced_by"],
                "regex": compiles_as_regex(pattern),
                "free": free,
                "wall": wall,
                "forward_s": forward_s,
                "forwards": result.counts.model_calls,
                "checks": result.counts.checks / max(result.counts.tokens, 1),
                "calls": calls / max(result.counts.tokens, 1),
                "valid": valid,
                "best": result.best_text,
            }
        )
        print(
            f"{i:3d} {category:15s} {wall / free:5.2f}x {rows[-1]['checks']:6.2f} checks/token "
            f"{rows[-1]['calls']:6.2f} regex calls/token {valid}/{n} {pattern}",
            file=sys.stderr,
            flush=True,
        )
    tasks = [
        {"name": str(r["i"]), "pattern": r["pattern"], "prompt_ids": r["ids"]}
        for r in rows
        if r["category"] == "backreference"
    ]
    genlm, why = run_genlm(args, lm, tasks)

    out = Printed()
    out(f"{len(rows)} patterns; SMC-AWRS N = {n}, {T} tokens; time as a ratio to free sampling of the same length.\n")
    out(
        "| category | patterns | exact DFA | DFA x check | time / free p50 | max | checks/token p50 "
        "| regex calls/token p50 | with a valid output |"
    )
    out("| --- | --: | --: | --: | --: | --: | --: | --: | --: |")
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["category"], []).append(r)
    for name, members in [*groups.items(), ("all", rows)]:
        ratios = [r["wall"] / r["free"] for r in members]
        out(
            f"| {name} | {len(members)} | {sum(r['mode'] == 'exact DFA' for r in members)} "
            f"| {sum(r['mode'] == 'DFA x check' for r in members)} "
            f"| {statistics.median(ratios):.2f}x | {max(ratios):.2f}x "
            f"| {statistics.median(r['checks'] for r in members):.2f} "
            f"| {statistics.median(r['calls'] for r in members):.2f} | {sum(r['valid'] > 0 for r in members)} |"
        )
    ratios = [r["wall"] / r["free"] for r in rows]
    checks = statistics.median(r["checks"] for r in rows)
    out("")
    out(
        f"- `Regex` (the `re` package's reading) compiles {sum(r['regex'] for r in rows)} of {len(rows)}; `Pattern`: "
        f"exact DFA {sum(r['mode'] == 'exact DFA' for r in rows)}, DFA x check "
        f"{sum(r['mode'] == 'DFA x check' for r in rows)}, check only {sum(r['mode'] == 'check only' for r in rows)}"
    )
    out(
        f"- time / free sampling: p50 {statistics.median(ratios):.2f}x (goal <= 1.5x), max {max(ratios):.2f}x "
        f"(goal <= 5x), {sum(x > 5 for x in ratios)} patterns past 5x"
    )
    checked = [r for r in rows if r["mode"] != "exact DFA"]
    out(
        f"- checks per token (AWRS `allows` calls): median {checks:.2f} (goal <= 2); on the {len(checked)} patterns "
        f"with a `regex` check, {statistics.median(r['checks'] for r in checked):.2f} checks and "
        f"{statistics.median(r['calls'] for r in checked):.2f} `regex` calls per token (checks, exact masks and "
        "end checks; an exact DFA makes none)"
        if checked
        else f"- checks per token (AWRS `allows` calls): median {checks:.2f} (goal <= 2)"
    )
    if genlm:
        pairs = [(genlm[str(r["i"])]["wall_s"], r["wall"]) for r in rows if str(r["i"]) in genlm]
        speed = [g / w for g, w in pairs]
        out(
            f"- genlm-control 0.4.1 on the {len(pairs)} backreference patterns: its time / genlab's p50 "
            f"{statistics.median(speed):.1f}x, min {min(speed):.1f}x (goal >= 10x); total "
            f"{sum(g for g, _ in pairs):.0f} s against {sum(w for _, w in pairs):.0f} s"
        )
        mine = [r for r in rows if str(r["i"]) in genlm]
        out(
            f"- genlab on those: {sum(r['forward_s'] for r in mine):.1f} of {sum(r['wall'] for r in mine):.1f} s in "
            f"the model's forwards (prefill and {statistics.median(r['forwards'] - 1 for r in mine):.0f} more per "
            "pattern, median)"
        )
    else:
        out(f"- genlm-control: {why}")
    out(
        "\n| # | category | pattern | enforced by | time / free | checks/token | regex calls/token | valid "
        "| genlm-control / genlab |"
    )
    out("| --: | --- | --- | --- | --: | --: | --: | --: | --: |")
    for r in rows:
        g = genlm.get(str(r["i"]))
        vs = f"{g['wall_s'] / r['wall']:.1f}x" if g else ""
        shown = entities(r["pattern"])
        out(
            f"| {r['i']} | {r['category']} | <code>{shown}</code> | {r['mode']} | {r['wall'] / r['free']:.2f}x "
            f"| {r['checks']:.2f} | {r['calls']:.2f} | {r['valid']}/{n} | {vs} |"
        )
    settings = (
        f'SmolLM2-135M-Instruct on CPU ({torch.get_num_threads()} threads), raw-text prompts "Write <what the '
        'pattern describes>, and nothing else.\\nAnswer:"; free sampling and genlab in the same process, one '
        "pattern after another; genlm-control in its own interpreter after them. See the script's docstring."
    )
    write_report(args.output, "Pattern: regex beyond regular languages", settings, out.text)


if __name__ == "__main__":
    main()
