"""Regex constraints: compile time and per-token mask time, genlab beside llguidance, XGrammar and outlines-core.

Usage: python benchmarks/regex_masks.py [--quick] [--vocabs smollm2,qwen2] [--engines genlab,llguidance,...]
                                        [--detail] [--repeats 3] [--output docs/benchmarks/regex_masks.md]

For each pattern and vocabulary, every engine compiles the regex (timed; tokenizer-level setup is built once per
vocabulary, outside the timing), then walks one matching example string, tokenized by the HF tokenizer: at
every prefix position it computes the mask of allowed tokens (timed) and advances by the next token. Each walk
starts from a fresh compile, so masks built on first visit are included (genlab caches one mask per DFA state;
"warm" columns repeat the walk on the same compiled object and show the cached cost).

Engines, each on its fastest documented single-thread CPU path:
- genlab: `Regex(p).compile(vocab)`, `fill_bitmask(state, bitmask)` into a packed int32 bitmask, `advance`.
- llguidance: `LLMatcher(lltok, grammar_from_regex(p))`, `unsafe_compute_mask_ptr` into a packed int32 bitmask
  (what `llguidance.numpy.fill_next_token_bitmask` calls), `consume_token`.
- XGrammar: `GrammarCompiler(max_threads=1).compile_regex`, `GrammarMatcher.fill_next_token_bitmask` into a
  packed int32 torch bitmask, `accept_token`.
- outlines-core: `Index(p, vocabulary)` (the whole token-level index is built here), `Guide.write_mask_into`
  into a packed int32 bitmask, `advance`. Its `Vocabulary` is built from genlab's token bytes (outlines-core
  cannot read a local HF tokenizer), so both see exactly the same bytes per token.

The EOS ids genlab uses are given to llguidance and XGrammar as stop tokens; outlines-core takes one. Masks are
compared with genlab's position by position: text tokens (non-EOS) and "some EOS allowed" separately.
Differences seen so far (llguidance 1.9.1, XGrammar 0.2.9, outlines-core 0.2.14): XGrammar's `\\d`/`\\w` are ASCII,
its `.` matches newlines and special tokens, and it allows EOS before the lower bound of `.{10,30}`; `\\w` is
`str.isalnum` or `_` in Python but Unicode Alphabetic/Mark/Nd/Pc in Rust (llguidance, outlines-core); llguidance allows
only the canonical token where the next bytes are forced (" crim" -> "son", not "s" or "so"); outlines-core drops
transitions out of accepting states into non-accepting ones (`x(yx)?` rejects "y" after "x"; in `[α-ω]+` a token
ending mid-character after a full one), so it rejects some examples, which count as failed patterns.
Timing is wall clock (`perf_counter_ns`) around one call, garbage collection off during walks. Each pattern is
compiled and walked `--repeats` times (each time from a fresh compile, with caches keyed by the pattern cleared)
and each figure keeps its fastest repeat, position by position, as `timeit` does; one warm-up compile per engine
and vocabulary keeps one-time costs (numba cache loads, per-process Unicode tables) out of the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from report import Printed, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peer_walkers import (  # noqa: E402
    BitmaskWalker,
    Engine,
    GenlabEngine,
    LLGuidanceEngine,
    XGrammarEngine,
    pct,
)
from tokenizer_assets import load_tokenizer  # noqa: E402

import genlab  # noqa: E402
from genlab import TokenVocabulary  # noqa: E402

_WORDS = "red|green|blue|yellow|purple|orange|black|white|crimson|turquoise"

# (name, pattern, a matching example). The examples are realistic strings, so the tokens walked are the ones
# a model would likely produce.
PATTERNS: list[tuple[str, str, str]] = [
    ("email", r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}", "jane.doe+news@mail.example.co.uk"),
    ("iso date", r"\d{4}-\d{2}-\d{2}", "2024-03-15"),
    (
        "iso datetime",
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "2024-03-15T13:45:30.123+02:00",
    ),
    ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "123e4567-e89b-12d3-a456-426614174000"),
    ("us phone", r"\(\d{3}\) \d{3}-\d{4}", "(555) 867-5309"),
    ("ipv4", r"((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", "192.168.10.254"),
    ("ipv6", r"([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    (
        "semver",
        r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
        r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?",
        "1.12.0-rc.1+build.5",
    ),
    ("json string", r'"(?:[^"\\\x00-\x1f]|\\.)*"', r'"She said \"hi\" and left.\nBye — ok"'),
    ("json number", r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?", "-1234.5678e+30"),
    ("hex color", r"#[0-9a-fA-F]{6}", "#1a2B3c"),
    (
        "url",
        r"https?://[a-zA-Z0-9.-]+(:\d+)?(/[a-zA-Z0-9._~%-]*)*(\?[a-zA-Z0-9=&._-]*)?",
        "https://docs.example.com:8080/guide/regex_intro.html?q=regex&page=2",
    ),
    ("time", r"\d{2}:\d{2}(:\d{2})?", "09:30:15"),
    ("uk postcode", r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", "SW1A 1AA"),
    ("card", r"(\d{4}-){3}\d{4}", "4111-1111-1111-1111"),
    ("word list", rf"({_WORDS})(, ({_WORDS}))*", "red, turquoise, blue, crimson"),
    ("[a-z]{50,85}", r"[a-z]{50,85}", "thequickbrownfoxjumpsoverthelazydogwhilethecatsleepsinthesun"),
    (".{10,30}", r".{10,30}", "Hello, world! Café at 9 pm."),
    ("greek", r"[α-ω]+", "καλημερακοσμε"),
    ("words", r"\w+( \w+)*", "The quick brown fox jumps over the lazy dog"),
]
QUICK = ["email", "iso date", "json string", "[a-z]{50,85}", "words"]


class Genlab(GenlabEngine):
    def compile(self, pattern):
        return genlab.Regex(pattern).compile(self.vocab)


class LLGuidance(LLGuidanceEngine):
    def compile(self, pattern):
        return self.matcher(self.llg.LLMatcher.grammar_from_regex(pattern))


class XGrammar(XGrammarEngine):
    def compile(self, pattern):
        return self.compiler.compile_regex(pattern)


class OutlinesCore(Engine):
    name = "outlines-core"

    def prepare(self, tok, vocab):
        import outlines_core

        super().prepare(tok, vocab)
        self.oc = outlines_core
        tokens: dict[bytes, list[int]] = {}
        for i, b in enumerate(vocab.token_bytes):
            if vocab.is_text[i] and i not in vocab.eos_ids:
                tokens.setdefault(b, []).append(i)
        eos = tok.eos_token_id if tok.eos_token_id in vocab.eos_ids else min(vocab.eos_ids)
        self.vocabulary = outlines_core.Vocabulary(eos, tokens)

    def compile(self, pattern):
        return self.oc.Index(pattern, self.vocabulary)

    def walker(self, compiled):
        guide = self.oc.Guide(compiled)
        w = BitmaskWalker(self.vocab.size, partial(_oc_advance, guide))
        w.fill = partial(guide.write_mask_into, w.bitmask.ctypes.data, w.bitmask.size, 4)
        return w


def _oc_advance(guide, tok) -> bool:
    try:
        guide.advance(tok, return_tokens=False)
        return True
    except ValueError:
        return False


ENGINES = {e.name: e for e in (Genlab, LLGuidance, XGrammar, OutlinesCore)}

# ---- measurement ----


@dataclass
class Walk:
    mask_us: list[float] = field(default_factory=list)
    advance_us: list[float] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)  # allowed-token bool arrays, when collected
    failed_at: int | None = None  # index of the first token the engine rejected


def walk(walker, tokens: list[int], collect: bool) -> Walk:
    out = Walk()
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(len(tokens) + 1):
            t0 = clock()
            walker.fill()
            t1 = clock()
            out.mask_us.append((t1 - t0) / 1e3)
            if collect:
                out.masks.append(walker.allowed().copy())
            if i == len(tokens):
                break
            t0 = clock()
            ok = walker.advance(tokens[i])
            t1 = clock()
            out.advance_us.append((t1 - t0) / 1e3)
            if not ok:
                out.failed_at = i
                break
    finally:
        gc.enable()
    return out


@dataclass
class Result:
    compile_us: dict[str, float] = field(default_factory=dict)  # pattern -> µs
    cold: dict[str, Walk] = field(default_factory=dict)
    warm: dict[str, Walk] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # pattern -> (positions compared, text mismatches, EOS mismatches, example differing tokens)
    agreement: dict[str, tuple[int, int, int, str]] = field(default_factory=dict)


def compare(vocab: TokenVocabulary, ours: list[np.ndarray], theirs: list[np.ndarray]) -> tuple[int, int, int, str]:
    eos = np.zeros(vocab.size, bool)
    eos[list(vocab.eos_ids)] = True
    n = min(len(ours), len(theirs))
    text_bad = eos_bad = 0
    example = ""
    for a, b in zip(ours[:n], theirs[:n]):
        diff = (a != b) & ~eos
        if diff.any():
            text_bad += 1
            if not example:
                only_a, only_b = np.flatnonzero(diff & a), np.flatnonzero(diff & b)

                def show(ids) -> str:
                    return ",".join(
                        repr(vocab.token_bytes[i])[1:] if vocab.is_text[i] else f"#{i} (special)" for i in ids[:3]
                    )

                example = f"genlab-only {len(only_a)} [{show(only_a)}], peer-only {len(only_b)} [{show(only_b)}]"
        if a[eos].any() != b[eos].any():
            eos_bad += 1
    return n, text_bad, eos_bad, example


def best(walks: list[Walk]) -> Walk:
    """Position by position, the fastest of repeated identical walks (scheduling noise only adds time)."""
    first = walks[0]
    return Walk(
        [min(ts) for ts in zip(*(w.mask_us for w in walks))],
        [min(ts) for ts in zip(*(w.advance_us for w in walks))],
        first.masks,
        first.failed_at,
    )


def run_vocab(
    name: str, engines: list[Engine], patterns, warmup: str, repeats: int
) -> tuple[dict[str, Result], dict[str, int]]:
    tok = load_tokenizer(name)
    vocab = TokenVocabulary.from_tokenizer(tok)
    results = {e.name: Result() for e in engines}
    n_tokens = {}
    for e in engines:
        e.prepare(tok, vocab)
        try:  # first-call costs (numba cache loads, per-process tables, lazy init) stay out of the figures
            compiled = e.compile(warmup)
            walk(e.walker(compiled), tok.encode("2024", add_special_tokens=False), False)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: {e.name} warm-up failed: {exc}", file=sys.stderr)
    for pname, pattern, example in patterns:
        tokens = tok.encode(example, add_special_tokens=False)
        n_tokens[pname] = len(tokens)
        reference = None
        for e in engines:
            res = results[e.name]
            compiles, colds, warms = [], [], []
            try:
                for r in range(repeats):  # each repeat: a fresh compile, a cold walk, a warm walk
                    e.forget()
                    t0 = time.perf_counter_ns()
                    compiled = e.compile(pattern)
                    compiles.append((time.perf_counter_ns() - t0) / 1e3)
                    colds.append(walk(e.walker(compiled), tokens, collect=r == 0))
                    warms.append(walk(e.walker(compiled), tokens, collect=False))
            except Exception as exc:  # noqa: BLE001
                res.errors[pname] = f"compile: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
                continue
            res.compile_us[pname] = min(compiles)
            cold = res.cold[pname] = best(colds)
            res.warm[pname] = best(warms)
            if cold.failed_at is not None:
                t = tokens[cold.failed_at]
                res.errors[pname] = f"rejected token {cold.failed_at} of the example (id {t}, {vocab.token_bytes[t]!r})"
            if e.name == "genlab":
                reference = cold.masks
            elif reference is not None:
                res.agreement[pname] = compare(vocab, reference, cold.masks)
            cold.masks = []
    return results, n_tokens


def ok_patterns(res: Result, patterns) -> list[str]:
    return [p for p, _, _ in patterns if p in res.cold and p not in res.errors]


def summarize(res: Result, ok: list[str]) -> dict[str, float]:
    cold = [t for p in ok for t in res.cold[p].mask_us]
    warm = [t for p in ok for t in res.warm[p].mask_us]
    adv = [t for p in ok for t in res.cold[p].advance_us]
    comp = [res.compile_us[p] for p in ok]
    first = [res.compile_us[p] + res.cold[p].mask_us[0] for p in ok]
    return {
        "compile p50": pct(comp, 50),
        "compile p90": pct(comp, 90),
        "compile+1st mask p50": pct(first, 50),
        "mask p50": pct(cold, 50),
        "mask p99": pct(cold, 99),
        "warm mask p50": pct(warm, 50),
        "warm mask p99": pct(warm, 99),
        "advance p50": pct(adv, 50),
        "ok": len(ok),
        "masks": len(cold),
    }


def fmt(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} patterns")
    parser.add_argument("--vocabs", default="smollm2,qwen2")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--detail", action="store_true", help="per-pattern compile and mask times")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="compile and walk each pattern this many times; keep the fastest of each measurement",
    )
    parser.add_argument("--output", default="docs/benchmarks/regex_masks.md", help="markdown file ('' for none)")
    args = parser.parse_args()

    patterns = [p for p in PATTERNS if not args.quick or p[0] in QUICK]
    for pname, pattern, example in patterns:
        assert re.fullmatch(pattern, example), (pname, example)
    names = ["genlab"] + [n for n in args.engines.split(",") if n != "genlab"]
    engines = []
    for n in names:
        try:
            __import__(
                {
                    "genlab": "genlab",
                    "llguidance": "llguidance",
                    "xgrammar": "xgrammar",
                    "outlines-core": "outlines_core",
                }[n]
            )
            engines.append(ENGINES[n]())
        except ImportError:
            print(f"warning: {n} is not installed; skipped", file=sys.stderr)

    started = time.perf_counter()
    runs = {v: run_vocab(v, engines, patterns, r"\d+\w\s.", args.repeats) for v in args.vocabs.split(",")}
    all_results = {v: r for v, (r, _) in runs.items()}

    cols = [
        "compile p50",
        "compile p90",
        "compile+1st mask p50",
        "mask p50",
        "mask p99",
        "warm mask p50",
        "warm mask p99",
        "advance p50",
    ]
    ratio_cols = ["compile p50", "compile+1st mask p50", "mask p50", "mask p99"]
    out = Printed()
    out(f"\n### Regex masks: {len(patterns)} patterns, times in µs (lower is better)\n")
    out(
        "Each engine's figures are over the patterns it compiled and walked; ratio = genlab / peer over the "
        "patterns both completed (< 1: genlab faster).\n"
    )
    out(
        "| vocab | engine | "
        + " | ".join(cols)
        + " | masks | patterns ok | "
        + " | ".join(f"ratio {c}" for c in ratio_cols)
        + " |"
    )
    out("| --- | --- |" + " --: |" * (len(cols) + 2 + len(ratio_cols)))
    for vname, results in all_results.items():
        ours_ok = ok_patterns(results["genlab"], patterns) if "genlab" in results else []
        for e in engines:
            ok = ok_patterns(results[e.name], patterns)
            s = summarize(results[e.name], ok)
            both = [p for p in ok if p in ours_ok]
            if e.name == "genlab" or not both:
                ratios = ["—"] * len(ratio_cols)
            else:
                mine, theirs = summarize(results["genlab"], both), summarize(results[e.name], both)
                ratios = [f"{mine[c] / theirs[c]:.2f}" for c in ratio_cols]
            out(
                f"| {vname} | {e.name} | "
                + " | ".join(fmt(s[c]) for c in cols)
                + f" | {s['masks']} | {s['ok']}/{len(patterns)} | "
                + " | ".join(ratios)
                + " |"
            )

    out("\n### Failures\n")
    failures = [(v, e, p, msg) for v, rs in all_results.items() for e, r in rs.items() for p, msg in r.errors.items()]
    for v, e, p, msg in failures:
        out(f"- {v} / {e} / {p}: {msg}")
    if not failures:
        out("none")

    out("\n### Agreement with genlab: masks whose text-token sets differ / masks compared (EOS differences)\n")
    peers = [e.name for e in engines if e.name != "genlab"]
    out("| pattern | " + " | ".join(f"{v} {p}" for v in all_results for p in peers) + " |")
    out("| --- |" + " --: |" * (len(all_results) * len(peers)))
    examples = []
    for pname, _, _ in patterns:
        cells = []
        for v, rs in all_results.items():
            for p in peers:
                a = rs[p].agreement.get(pname)
                if a is None:
                    cells.append("—")
                    continue
                n, bad, eos_bad, ex = a
                cells.append(f"{bad}/{n}" + (f" ({eos_bad})" if eos_bad else ""))
                if ex:
                    examples.append(f"- {v} / {p} / {pname}: first differing mask: {ex}")
        out(f"| {pname} | " + " | ".join(cells) + " |")
    if examples:
        out("\nFirst difference per (vocab, peer, pattern):\n")
        out("\n".join(examples))

    if args.detail:
        out("\n### Per pattern: compile µs / cold mask p50 µs / cold mask max µs\n")
        out("| vocab | pattern | tokens | " + " | ".join(e.name for e in engines) + " |")
        out("| --- | --- | --: |" + " --: |" * len(engines))
        for v, rs in all_results.items():
            for pname, _, _ in patterns:
                cells = []
                for e in engines:
                    r = rs[e.name]
                    if pname in r.cold:
                        w = r.cold[pname].mask_us
                        cells.append(f"{fmt(r.compile_us[pname])} / {fmt(pct(w, 50))} / {fmt(max(w))}")
                    else:
                        cells.append("failed")
                out(f"| {v} | {pname} | {runs[v][1][pname]} | " + " | ".join(cells) + " |")
    out(f"\n(total run {time.perf_counter() - started:.0f} s)")
    settings = (
        f"{os.cpu_count()} CPU cores; vocabularies {args.vocabs}; engines {', '.join(e.name for e in engines)}; "
        f"fastest of {args.repeats} repeats"
    )
    write_report(args.output, "Regex masks", settings, out.text)


if __name__ == "__main__":
    main()
