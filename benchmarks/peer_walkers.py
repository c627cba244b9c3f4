"""The mask walkers the mask benchmarks share: genlab's matcher and the peers' matchers behind one small interface.

A walker starts at the beginning of a constrained text: `fill()` computes the next mask (the timed call),
`advance(token) -> bool` moves on, `allowed()` reads the last mask as a bool array over the vocabulary, and
`note()` says something about the state for slow-position reports. Every engine writes a packed int32 bitmask
(genlab's `Matcher.fill_bitmask`, the peers' own calls), as it would for a sampler; reading it back (`unpack`) is
outside the timing.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np

from genlab import TokenTrie, TokenVocabulary
from genlab.trie import _CLASS_TRIES


def unpack(bitmask: np.ndarray, size: int) -> np.ndarray:
    """A packed little-endian int32 bitmask (the peers' layout) as a bool array over the vocabulary."""
    return np.unpackbits(np.ascontiguousarray(bitmask).view(np.uint8), bitorder="little")[:size].astype(bool)


def pct(values, q) -> float:
    """The q-th percentile, or NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


class GenlabWalker:
    """genlab: `fill_bitmask(state, bitmask)` into a packed int32 bitmask (the peers' layout), `advance`."""

    def __init__(self, matcher):
        self.m = matcher
        self.s = matcher.start()
        self.bitmask = matcher.new_bitmask()
        self.size = matcher.vocab.size

    def fill(self):
        self.m.fill_bitmask(self.s, self.bitmask)

    def advance(self, tok):
        self.s = self.m.advance(self.s, tok)
        return self.s is not None

    def allowed(self):
        return unpack(self.bitmask, self.size)

    def note(self) -> str:
        return f"{len(self.s)} thread(s)" if isinstance(self.s, tuple) else f"state {self.s}"


class BitmaskWalker:
    """A walk whose masks land in a packed int32 bitmask; the engine sets `fill` (a C-level partial)."""

    fill = None

    def __init__(self, size, advance):
        self.bitmask = np.zeros((size + 31) // 32, np.int32)
        self.size, self.advance = size, advance

    def allowed(self):
        return unpack(self.bitmask, self.size)

    def note(self) -> str:
        return ""


def llguidance_tokenizer(tok, vocab: TokenVocabulary):
    """llguidance's tokenizer for an HF tokenizer, with genlab's EOS ids as its stop tokens."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tok, n_vocab=vocab.size, eos_token=sorted(vocab.eos_ids))


def llguidance_walker(matcher, size: int) -> BitmaskWalker:
    """A walk on an `LLMatcher`: `unsafe_compute_mask_ptr` into the bitmask (what
    `llguidance.numpy.fill_next_token_bitmask` calls), `consume_token`."""
    matcher.reset()
    w = BitmaskWalker(size, matcher.consume_token)
    w.fill = partial(matcher.unsafe_compute_mask_ptr, w.bitmask.ctypes.data, w.bitmask.nbytes)
    return w


def xgrammar_compiler(tok, vocab: TokenVocabulary):
    """(the xgrammar module, a one-thread `GrammarCompiler` without its cache) for an HF tokenizer."""
    import torch
    import xgrammar

    torch.set_num_threads(1)
    info = xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=vocab.size, stop_token_ids=sorted(vocab.eos_ids))
    return xgrammar, xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)


class XGrammarWalker:
    """A fresh `GrammarMatcher` on a compiled grammar: `fill_next_token_bitmask`, `accept_token`."""

    def __init__(self, xgr, compiled, size):
        m = xgr.GrammarMatcher(compiled)
        self.bitmask = xgr.allocate_token_bitmask(1, size)
        self.size = size
        self.fill = partial(m.fill_next_token_bitmask, self.bitmask)
        self.advance = m.accept_token

    def allowed(self):
        return unpack(self.bitmask[0].numpy(), self.size)

    def note(self) -> str:
        return ""


def versions(root, packages: tuple[str, ...]) -> str:
    """genlab's version and git commit, and the installed versions of `packages`, for a benchmark's header."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import genlab

    try:
        head = (
            subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        head = "?"
    out = [f"genlab {genlab.__version__} (git {head})"]
    for pkg in packages:
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


# ---- engines: `prepare` per vocabulary (untimed), `compile` per spec (timed, each benchmark its own), `walker`


def _content_caches() -> list:
    """genlab's process-level caches keyed by pattern or schema content (per-process Unicode tables are warmed
    instead): cleared before each timed compile, so a repeat or a schema with a shape seen before starts cold."""
    import importlib

    found = []
    for module, names in (
        ("genlab.automata.utf8", ("utf8_automaton",)),
        ("genlab.automata.charclass", ("_char_set",)),
        ("genlab.constraints.json_schema.compiler", ("_regex", "_quoted")),
        ("genlab.constraints.json_schema.strings", ("decoded_dfa",)),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, n) for n in names if hasattr(getattr(mod, n, None), "cache_clear")]
    return found


CONTENT_CACHES = _content_caches()


class Engine:
    """One engine in a mask benchmark; subclasses in each benchmark add `compile` for what it measures."""

    name: str

    def prepare(self, tok, vocab: TokenVocabulary) -> None:
        self.tok, self.vocab = tok, vocab
        self.eos = sorted(vocab.eos_ids)

    def forget(self) -> None:
        """Drop caches keyed by pattern or grammar content before a timed compile, so repeats start cold."""
        re.purge()

    def compile(self, spec):
        raise NotImplementedError

    def walker(self, compiled):
        """A walk from the start on `compiled` (see the module docstring)."""
        raise NotImplementedError


class GenlabEngine(Engine):
    name = "genlab"

    def prepare(self, tok, vocab):
        super().prepare(tok, vocab)
        TokenTrie.of(vocab)

    def forget(self):
        super().forget()
        for cache in CONTENT_CACHES:
            cache.cache_clear()
        _CLASS_TRIES.clear()  # class tries are cached per byte partition, which a pattern determines

    def walker(self, compiled):
        return GenlabWalker(compiled)


class LLGuidanceEngine(Engine):
    name = "llguidance"

    def prepare(self, tok, vocab):
        import llguidance

        super().prepare(tok, vocab)
        self.llg = llguidance
        self.tokenizer = llguidance_tokenizer(tok, vocab)

    def matcher(self, grammar):
        """An `LLMatcher` on a grammar from one of `LLMatcher.grammar_from_*`; ValueError with its message if the
        grammar is in error."""
        matcher = self.llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return matcher

    def walker(self, compiled):
        return llguidance_walker(compiled, self.vocab.size)


class XGrammarEngine(Engine):
    name = "xgrammar"

    def prepare(self, tok, vocab):
        super().prepare(tok, vocab)
        self.xgr, self.compiler = xgrammar_compiler(tok, vocab)

    def walker(self, compiled):
        return XGrammarWalker(self.xgr, compiled, self.vocab.size)
