"""Vocabulary and trie: build time per tokenizer, and trie walk time, beside llguidance's tokenizer build.

Usage: python benchmarks/vocab_trie.py [--slow] [--repeats 3] [--output docs/benchmarks/vocab_trie.md]
       (--slow adds Gemma-3's 262,144-token vocabulary)

llguidance (optional, `pip install llguidance`) builds its own token trie from the same HF tokenizer; its
build time is the peer figure. Walk times: the full walk (an automaton that accepts every byte, so every node is
visited: the worst case) and a digits-only DFA (a sparse mask).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from report import Printed, write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tokenizer_assets import FAST, SLOW, load_tokenizer  # noqa: E402

from genlab.trie import TokenTrie  # noqa: E402
from genlab.vocab import TokenVocabulary  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def llguidance_build(tok):
    try:
        import llguidance.hf
    except ImportError:
        return None
    return lambda: llguidance.hf.from_tokenizer(tok)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", action="store_true", help="include Gemma-3 (262k vocabulary)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="docs/benchmarks/vocab_trie.md", help="markdown file ('' for none)")
    args = parser.parse_args()
    names = FAST + (SLOW if args.slow else [])
    every_byte = np.zeros((1, 256), np.int32)
    digits = np.full((1, 256), -1, np.int32)
    digits[0, ord("0") : ord("9") + 1] = 0
    # warm the numba kernels once
    warm = TokenTrie.from_vocab(TokenVocabulary.from_tokenizer(load_tokenizer("smollm2")))
    warm.walk_table(every_byte, 0)
    out = Printed()
    out(
        "| tokenizer | ids | trie nodes | vocab build ms | trie build ms | llguidance build ms | ratio (genlab/llg) "
        "| full walk µs | digits walk µs |"
    )
    out("| --- | --: | --: | --: | --: | --: | --: | --: | --: |")
    for name in names:
        tok = load_tokenizer(name)
        t_vocab = best_of(partial(TokenVocabulary.from_tokenizer, tok), args.repeats)
        vocab = TokenVocabulary.from_tokenizer(tok)
        t_trie = best_of(partial(TokenTrie.from_vocab, vocab), args.repeats)
        trie = TokenTrie.from_vocab(vocab)
        llg = llguidance_build(tok)
        t_llg = best_of(llg, args.repeats) if llg else float("nan")
        full = statistics.median(best_of(partial(trie.walk_table, every_byte, 0), 1) for _ in range(20))
        sparse = statistics.median(best_of(partial(trie.walk_table, digits, 0), 1) for _ in range(20))
        ours = t_vocab + t_trie
        out(
            f"| {name} | {vocab.size:,} | {trie.n_nodes:,} | {t_vocab * 1e3:.0f} | {t_trie * 1e3:.0f} | "
            f"{t_llg * 1e3:.0f} | {ours / t_llg:.2f} | {full * 1e6:.0f} | {sparse * 1e6:.0f} |"
        )
    settings = (
        f"{os.cpu_count()} CPU cores; build times: fastest of {args.repeats} repeats; walk times: median of 20; "
        f"llguidance {'installed' if importlib.util.find_spec('llguidance') else 'not installed (its columns: nan)'}"
    )
    write_report(args.output, "Vocabulary and trie", settings, out.text)


if __name__ == "__main__":
    main()
