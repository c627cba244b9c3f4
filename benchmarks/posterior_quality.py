"""Posterior quality: KL(estimated text posterior || exact p(x | x in L)) for masking, rejection, rerank and SMC-AWRS.

Usage: python benchmarks/posterior_quality.py [--quick] [--seeds 5] [--samples 512] [--particles 1 4 16 64 256]
                                              [--rerank 64] [--problems sky,france,...] [--no-diagnostics]

Every problem is a short prompt and a regex whose language is finite within `max_tokens` tokens (every
tokenization of every string, non-canonical ones included), so `genlab.samplers.exact.exact_posterior` enumerates
the true conditional p(text | text in L) of SmolLM2-135M-Instruct. Each language holds strings whose first token is
likely under the model but that are unlikely as wholes (" blue" -> " blue-green.", " Paris" -> " Parisian.",
" 194" -> " 194."): token masking, which renormalises every step locally, walks into them; the true conditional
does not. Samplers get `max_tokens + 1` steps (their limit counts the EOS step, the enumeration's does not).
Methods (temperature 1 throughout):

- mask (exact): masking's own text distribution, prod_t p(x_t)/Z_t summed over tokenizations, computed exactly by
  the same breadth-first enumeration as the exact posterior (one batched forward per depth);
- mask (S samples): `generate(method="mask")`, empirical frequencies of S samples (a check that the sampler
  draws from the distribution above: its KL should be close to the exact column);
- rejection (S samples): `generate(method="rejection")`, locally constrained decoding by rejection, unweighted,
  empirical frequencies (the same target as masking, so the same bias);
- rerank (N): `generate(method="rerank")`, N free samples, the valid ones kept (exact in distribution, but
  P(x in L) is ~1e-3 to 1e-6 here, so usually nothing survives: reported as "no valid sample", with the count of
  seeds that had one);
- SMC-AWRS (N): `generate(method="smc", ess_threshold=0.5)` (default AWRS estimator, "recursive"), weighted text
  posterior, mean +/- standard error of the KL over `--seeds` seeds. At N = 1 the KL is -log p(sampled text | L).
  Each run compiles its own `Regex`, so no run starts with masks another method built (a state with a built mask
  gets an exact AWRS step).
- diagnostics at the largest N: SMC-AWRS with the "two-pass" and "recursive-sparse" estimators, and SMC with
  exact masking proposals
  (`method="smc-mask"`: the same proposal distribution as AWRS, but the exact Z_t as weight). The gap between
  SMC-AWRS and SMC-mask is the cost of AWRS's estimated (noisy, heavy-tailed) weights.

A second table counts the seeds whose estimate's top text is the exact top text. The KL of a failed run is
-log p(its texts), so means are bimodal: read them with that table.

KL(q || p) = sum_x q(x) log(q(x) / p(x)) over texts. A text an estimate gives mass to that the exact posterior
lacks means a sampler emitted a string outside the language (or the enumeration missed one): that is a bug, and
is printed as such instead of a number.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from genlab import Regex, generate
from genlab.models import load
from genlab.samplers.exact import exact_posterior
from genlab.samplers.prompt import prompt_ids


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    pattern: str
    max_tokens: int  # the longest string's length in bytes: every tokenization fits


PROBLEMS = [
    # PEERS.md's problem: true conditional " red." ~0.945, masking " blue-green." ~0.78.
    Problem("sky", "The color of the sky is", r" (red|grey|blue-green|bluish)\.", 12),
    Problem("france", "The capital of France is", r" (Parisian|Lyon|Nice)\.", 10),
    Problem("yes-no", "Q: Is water wet?\nA:", r" (Yessir|Nope|Sure)\.", 8),
    Problem("ww2-year", "World War II ended in", r" (19[0-9]|May|June)\.", 6),
    Problem("opposite", "The opposite of hot is", r" (coldish|warm|cool)\.", 9),
    Problem("fruit", "My favourite fruit is the", r" (applet|pear|plum|kiwi)\.", 8),
    Problem("arithmetic", "2 + 2 =", r" (4[0-9]|[0-35-9])\.", 4),
]


def masking_distribution(lm, prompt, constraint, max_tokens: int) -> dict[str, float]:
    """Token masking's text distribution, exactly: sum over token sequences of prod_t p(x_t) 1[allowed] / Z_t,
    EOS (all EOS ids as one outcome) included as the last step. Breadth-first, one batched forward per depth."""
    vocab = lm.vocab
    matcher = constraint.compile(vocab)
    eos_ids = sorted(t for t in vocab.eos_ids if t < lm.vocab_size)
    eos = set(eos_ids)
    batch = lm.prefill(prompt_ids(lm, prompt), 1)
    frontier = [((), matcher.start(), 0.0)]  # (tokens, state, log q(tokens))
    out: dict[str, float] = {}
    for depth in range(max_tokens + 1):
        with torch.inference_mode():
            logp = batch.logprobs().double().cpu().numpy()
        parents, children = [], []
        for k, (ids, state, log_q) in enumerate(frontier):
            allowed = np.flatnonzero(np.asarray(matcher.mask(state), dtype=bool))
            row = logp[k]
            log_z = np.logaddexp.reduce(row[allowed]) if allowed.size else -math.inf
            if matcher.is_final(state):
                log_end = np.logaddexp.reduce(row[eos_ids])
                text = vocab.decode(ids).decode("utf-8", errors="surrogateescape")
                out[text] = out.get(text, 0.0) + math.exp(log_q + log_end - log_z)
            for t in allowed.tolist():
                if t in eos:
                    continue
                if depth == max_tokens:
                    raise RuntimeError(f"language not finite within {max_tokens} tokens")
                parents.append(k)
                children.append((ids + (t,), matcher.advance(state, t), log_q + row[t] - log_z))
        if not children:
            break
        batch.select(parents)
        batch.extend([ids[-1] for ids, _, _ in children])
        frontier = children
    return out


class NotInLanguage(Exception):
    """An estimate put mass on a text the exact posterior does not have."""


def kl(estimate: dict[str, float], exact: dict[str, float]) -> float:
    """KL(estimate || exact) over texts; raises NotInLanguage for a text outside the exact support."""
    missing = [t for t, p in estimate.items() if p > 0 and t not in exact]
    if missing:
        raise NotInLanguage(missing)
    return float(sum(p * math.log(p / exact[t]) for t, p in estimate.items() if p > 0))


def frequencies(result) -> dict[str, float]:
    """Unweighted empirical distribution of the complete samples' texts (empty if none is complete)."""
    texts = [t for t, ok in zip(result.texts, result.complete) if ok]
    out: dict[str, float] = {}
    for t in texts:
        out[t] = out.get(t, 0.0) + 1.0 / len(texts)
    return out


def cell_single(estimate: dict[str, float], exact: dict[str, float], bugs: list[str], label: str) -> str:
    if not estimate:
        return "no valid sample"
    try:
        return f"{kl(estimate, exact):.3f}"
    except NotInLanguage as e:
        bugs.append(f"{label}: mass on texts outside the exact posterior: {e.args[0]!r}")
        return "BUG (text not in L)"


def cell_seeds(values: list[float | None], bug: bool) -> str:
    """mean +/- s.e. over the seeds that had a valid sample."""
    if bug:
        return "BUG (text not in L)"
    ok = [v for v in values if v is not None]
    if not ok:
        return f"no valid sample (0/{len(values)})"
    mean = statistics.fmean(ok)
    tail = "" if len(ok) == len(values) else f" [{len(ok)}/{len(values)} seeds valid]"
    if len(ok) == 1:
        return f"{mean:.3f}{tail}"
    se = statistics.stdev(ok) / math.sqrt(len(ok))
    return f"{mean:.3f} ± {se:.3f}{tail}"


def top(d: dict[str, float]) -> str:
    text, p = max(d.items(), key=lambda kv: kv[1])
    return f"`{text!r}` {p:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 problems, 4 seeds, N up to 64, 128 samples")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=512, help="samples for the mask and rejection columns")
    parser.add_argument("--particles", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--rerank", type=int, default=64, help="free samples per rerank run")
    parser.add_argument("--problems", default=None, help="comma-separated problem names")
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                        help="skip the extra columns at the largest N (two-pass estimator, SMC-mask)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's; 1 is far more robust on a machine shared with others)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    problems = PROBLEMS
    if args.quick:
        args.seeds, args.samples, args.particles = 4, 128, [1, 4, 16, 64]
        problems = PROBLEMS[:3]
    if args.problems:
        wanted = args.problems.split(",")
        problems = [p for p in PROBLEMS if p.name in wanted]
    t_start = time.perf_counter()
    lm = load(device="cpu")
    print(f"SmolLM2-135M-Instruct, |V| = {lm.vocab_size}, torch threads = {torch.get_num_threads()}, "
          f"seeds = {args.seeds}, samples = {args.samples}, rerank N = {args.rerank}", file=sys.stderr)

    variants = [(f"SMC-AWRS N={n}", n, dict(method="smc", ess_threshold=0.5)) for n in args.particles]
    if args.diagnostics:
        n = max(args.particles)
        variants += [
            (f"SMC-AWRS two-pass N={n}", n, dict(method="smc", ess_threshold=0.5, estimator="two-pass")),
            (f"SMC-AWRS sparse N={n}", n, dict(method="smc", ess_threshold=0.5, estimator="recursive-sparse")),
            (f"SMC-mask N={n}", n, dict(method="smc-mask", ess_threshold=0.5)),
        ]
    info_rows, kl_rows, hits_rows, bugs, timing = [], [], [], [], []
    for prob in problems:
        t0 = time.perf_counter()
        regex = Regex(prob.pattern)
        T = prob.max_tokens
        ex = exact_posterior(lm, prob.prompt, regex, max_tokens=T)
        exact = ex.text_posterior(lm.vocab)
        t_exact = time.perf_counter() - t0
        mask_exact = masking_distribution(lm, prob.prompt, regex, T)
        if abs(sum(mask_exact.values()) - 1) > 1e-6:
            bugs.append(f"{prob.name}: masking distribution sums to {sum(mask_exact.values())}")
        # exact_posterior's max_tokens counts text tokens; a sampler's counts steps, the EOS step included, so a
        # text of T tokens needs T + 1 sampler steps: with T the longest tokenizations would be cut off.
        common = dict(max_tokens=T + 1, temperature=1.0)
        t_methods = {}
        t1 = time.perf_counter()
        masked = generate(lm, prob.prompt, regex, method="mask", n_particles=args.samples, seed=0, **common)
        mask_freq = frequencies(masked)
        rejection = generate(lm, prob.prompt, regex, method="rejection", n_particles=args.samples, seed=0, **common)
        rej_freq = frequencies(rejection)
        t_methods["mask+rejection"] = time.perf_counter() - t1
        t1 = time.perf_counter()

        rerank_vals, rerank_bug = [], False
        for s in range(args.seeds):
            est = generate(lm, prob.prompt, regex, method="rerank", n_particles=args.rerank, seed=s,
                           **common).text_posterior()
            try:
                rerank_vals.append(kl(est, exact) if est else None)
            except NotInLanguage as e:
                rerank_bug = True
                bugs.append(f"{prob.name} rerank seed {s}: mass outside the exact posterior: {e.args[0]!r}")
        t_methods["rerank"] = time.perf_counter() - t1
        smc_cells, hits_row = [], [prob.name]
        exact_top = max(exact, key=exact.get)
        for label, n, options in variants:
            vals, bug, hits = [], False, 0
            t1 = time.perf_counter()
            for s in range(args.seeds):
                # a fresh Regex per run: no masks built by other runs, so every step is AWRS's own
                est = generate(lm, prob.prompt, Regex(prob.pattern), n_particles=n, seed=s, **options,
                               **common).text_posterior()
                hits += bool(est) and max(est, key=est.get) == exact_top
                try:
                    vals.append(kl(est, exact) if est else None)
                except NotInLanguage as e:
                    bug = True
                    bugs.append(f"{prob.name} {label} seed {s}: mass outside the exact posterior: {e.args[0]!r}")
            smc_cells.append(cell_seeds(vals, bug))
            hits_row.append(f"{hits}/{args.seeds}")
            t_methods[label] = time.perf_counter() - t1
        hits_rows.append(hits_row)

        info_rows.append([
            prob.name, f"`{prob.prompt!r}`", f"`{prob.pattern}`", str(len(exact)), str(len(ex.sequences)),
            f"{ex.log_marginal:.2f}", top(exact), top(mask_exact),
            top(mask_freq) if mask_freq else "no valid sample",
        ])
        kl_rows.append([
            prob.name,
            cell_single(mask_exact, exact, bugs, f"{prob.name} mask exact"),
            cell_single(mask_freq, exact, bugs, f"{prob.name} mask sampled"),
            cell_single(rej_freq, exact, bugs, f"{prob.name} rejection"),
            cell_seeds(rerank_vals, rerank_bug),
            *smc_cells,
        ])
        timing.append((prob.name, t_exact, time.perf_counter() - t0))
        print(f"  {prob.name}: exact {t_exact:.1f} s, all {time.perf_counter() - t0:.1f} s; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in t_methods.items()), file=sys.stderr)

    print("## Problems (SmolLM2-135M-Instruct, temperature 1)\n")
    print("| problem | prompt | regex | texts in L | token sequences | log P(L) | exact top text, p | "
          "masking top text, p (exact) | masking top text, freq (sampled) |")
    print("| --- | --- | --- | --: | --: | --: | --- | --- | --- |")
    for row in info_rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    print(f"\n## KL(estimate || exact posterior), nats (SMC and rerank: mean ± s.e. over {args.seeds} seeds)\n")
    heads = ["mask (exact)", f"mask ({args.samples} samples)", f"rejection ({args.samples} samples)",
             f"rerank (N={args.rerank})", *[label for label, _, _ in variants]]
    print("| problem | " + " | ".join(heads) + " |")
    print("| --- |" + " --: |" * len(heads))
    for row in kl_rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n## Seeds (of {args.seeds}) whose estimate's top text is the exact top text\n")
    print("| problem | " + " | ".join(label for label, _, _ in variants) + " |")
    print("| --- |" + " --: |" * len(variants))
    for row in hits_rows:
        print("| " + " | ".join(row) + " |")
    print()
    if bugs:
        print("BUGS:")
        for b in bugs:
            print("  -", b)
    else:
        print("No estimate put mass on a text outside the exact posterior's support.")
    total = time.perf_counter() - t_start
    print(f"\nWall time {total:.0f} s (exact enumeration "
          f"{sum(t for _, t, _ in timing):.0f} s); per problem: "
          + ", ".join(f"{n} {t:.0f} s" for n, _, t in timing))


if __name__ == "__main__":
    main()
