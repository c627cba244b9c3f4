"""JSON Schema constraints on the MaskBench dev set: coverage, correctness, compile time and per-token mask time,
genlab beside llguidance and XGrammar, in one run.

Usage: python benchmarks/jsonschema_bench.py [--quick] [--limit N] [--vocabs smollm2,qwen2]
                                             [--engines genlab,llguidance,xgrammar] [--max-masks-per-schema 200]
                                             [--compile-budget-s 2] [--hard-limit-s 60] [--llg-lenient]
                                             [--output docs/benchmarks/jsonschema_bench.md]

Data: `../shared/data/maskbench-dev.jsonl.gz` (relative to the repository root; see ../shared/data/README.md),
7,950 schemas, each with labelled instances (`{"valid": bool, "data": ...}`). The collection of a schema is its
id's prefix before "---" (ids without one, BFCL_* and JME_*, lose their trailing number; all BFCL_* are one
collection, "BFCL"). `--limit N` keeps the first N schemas of a shuffle with a fixed seed, so a short run is a
sample of every collection. Without the file the script says so and exits 0.

For each vocabulary and schema, every engine in turn:
1. compiles the schema (timed, wall clock, after clearing caches keyed by pattern content; tokenizer-level setup
   is built once per vocabulary, outside the timing):
   - genlab: `JsonSchema(schema)` with the defaults and `.compile(vocab)` (unknown keywords and formats are
     annotations: ignored, as the peers ignore them; their `SchemaAnnotationWarning`s are silenced and counted).
     A `GenlabError` is a coverage failure; any other exception is a crash: the schema counts as not covered and
     its id, stage and exception type are listed at the end (a genlab bug). Separately, and once per run,
     `JsonSchema(schema, strict=True)` (it raises on unknown keywords and formats) gives the "strict" coverage
     column: construction only, untimed, no budget.
   - llguidance: `LLMatcher.grammar_from_json_schema(schema, overrides={"whitespace_flexible": False,
     "item_separator": ",", "key_separator": ":"})` (genlab's compact policy; `"lenient": True` with
     `--llg-lenient`, so unimplemented keywords are ignored instead of failing) and the `LLMatcher` on it; an
     exception or `is_error()` is a coverage failure (`is_error` says what `validate_grammar` would, without
     building the grammar twice).
   - XGrammar: `GrammarCompiler(max_threads=1, cache_enabled=False).compile_json_schema(json.dumps(schema),
     any_whitespace=False, separators=(",", ":"), strict_mode=False)` (compact; `strict_mode=False` keeps JSON
     Schema's meaning: extra properties and items stay allowed unless the schema forbids them); an exception is a
     coverage failure. Its compile precomputes its token-mask cache, so it takes up to seconds.
   A compile that succeeds but takes longer than `--compile-budget-s` (default 2 s), for any engine, counts as
   a coverage failure ("over budget", shown apart) and the engine does nothing more on that schema: XGrammar's
   slowest compiles thus take no mask walks. Python-level work (genlab's compile, walk and checks) is stopped
   by an alarm after `--hard-limit-s` (a failure); native compiles cannot be interrupted and run to the end.
2. walks the first valid instance (timed masks, below), then
3. checks every instance. The text is genlab's serialisation, `c.serialize(data)` (compact, keys in schema
   order), the same text for every engine; where genlab did not compile the schema, the instance's own
   `json.dumps(data, separators=(",", ":"), ensure_ascii=False)` is used. Accepted means the engine accepts the
   whole text: genlab `c.check(text)` (its grammar and then the jsonschema validation behind `end_checks`);
   the peers take the text tokenized by the HF tokenizer (`encode(add_special_tokens=False)`) token by token
   (llguidance: `consume_token` on a `deep_copy` of the compiled matcher, then `is_accepting()`; XGrammar:
   `accept_token` on a fresh `GrammarMatcher`, then the EOS token is accepted and `is_terminated()`).
   A valid instance not accepted is "valid rejected" (VR), an invalid one accepted "invalid accepted" (IA),
   counted per engine over the schemas that engine covers. The peers are judged on genlab's serialisation, not
   their own: llguidance too enforces the schema's property order, and both may differ from genlab on where
   extra properties go or how numbers and strings may be written, so a peer's VR includes such policy
   differences; genlab's figures are the ones its goal is about (its grammar never rejects a valid value
   written as it writes values). To tell such differences apart, a peer's valid rejection is retried on the
   instance written compactly in its own key order ("VR order": rejections that this undoes).

Mask timing: on the first valid instance of each schema, tokenized as above, the engine computes the mask of
allowed tokens at every position (`perf_counter_ns` around that one call, garbage collection off during the
walk) and advances by the instance's next token, from the freshly compiled object, so what is built lazily on
first visit is included (genlab: lexer and parser states and their masks; llguidance: lexer DFA states). A walk
stops after `--max-masks-per-schema` masks (default 200). If the engine rejects that instance's tokens, the next
valid instance is walked instead (at most 3 tries; the failed walk's masks are dropped). At the end of a full walk
the last mask must allow EOS; a position whose mask leaves out the next token although advancing by it works is
a "mask miss" (counted, not failed: llguidance allows only the canonical token where the next bytes are forced).
genlab: `fill_bitmask(state, bitmask)` into a packed int32 bitmask, `advance`; llguidance:
`unsafe_compute_mask_ptr` into a packed int32 bitmask (what `llguidance.numpy.fill_next_token_bitmask` calls),
`consume_token`; XGrammar: `fill_next_token_bitmask` into a packed int32 torch bitmask, `accept_token`. The EOS
ids genlab uses are given to the peers as stop tokens. One warm-up schema per engine and vocabulary keeps one-time
costs out of the figures.
Mask p50/p99 are over all masks of all walked schemas of an engine; compile p50/p99 over the schemas it compiled
(budget aside). Ratios genlab / peer are over the schemas both compiled (compile) or both walked on the same
instance (masks): below 1, genlab is faster.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import random
import re
import signal
import sys
import time
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "maskbench-dev.jsonl.gz"
sys.path.insert(0, str(ROOT / "tests"))
from peer_walkers import (  # noqa: E402
    Engine,
    GenlabEngine,
    LLGuidanceEngine,
    XGrammarEngine,
    pct,
    versions,
)
from report import Printed, write_report  # noqa: E402
from tokenizer_assets import load_tokenizer  # noqa: E402

from genlab import TokenVocabulary  # noqa: E402
from genlab.constraints.json_schema import JsonSchema  # noqa: E402
from genlab.errors import GenlabError, SchemaAnnotationWarning  # noqa: E402

SEED = 20250110
MAX_WALK_TRIES = 3
PROGRESS_EVERY = 200

WARMUP_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 20},
        "id": {"type": "integer", "minimum": 0},
        "score": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "bb", "ccc"]}},
        "when": {"type": "string", "format": "date"},
        "child": {"type": "object", "properties": {"ok": {"type": "boolean"}, "x": {"type": ["null", "string"]}}},
        "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$"},
    },
    "required": ["name", "id"],
}
WARMUP_VALUE = {
    "name": "Zoë",
    "id": 12,
    "score": -1.5e3,
    "tags": ["a", "ccc"],
    "when": "2024-03-15",
    "child": {"ok": True, "x": None},
    "code": "AB-17",
}


def collection(sid: str) -> str:
    name = sid.split("---")[0] if "---" in sid else re.sub(r"_\d+$", "", sid)
    return "BFCL" if name.startswith("BFCL") else name


class HardTimeout(BaseException):
    """Raised by the alarm (a BaseException, so no `except Exception` in the code under test swallows it)."""


@contextmanager
def alarm(seconds: float):
    def ring(signum, frame):
        raise HardTimeout()

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class CompileFailure(Exception):
    """An engine could not compile a schema (the reason is the message)."""


class Crash(Exception):
    """genlab raised something other than a GenlabError (stage, exception)."""

    def __init__(self, stage: str, exc: BaseException):
        super().__init__(f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
        self.stage, self.exc = stage, exc


def short(exc: BaseException, n: int = 140) -> str:
    """The exception's type and first line (a SchemaError's reason, without its JSON pointer)."""
    text = str(getattr(exc, "reason", exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:n] if text else ''}"


# ---- engines: `prepare` per vocabulary (untimed), `compile` per schema (timed), walkers and checks ----


class Genlab(GenlabEngine):
    def compile(self, schema):
        try:
            with warnings.catch_warnings():  # unknown keywords and formats: listed in c.annotations
                warnings.simplefilter("ignore", SchemaAnnotationWarning)
                c = JsonSchema(schema)
        except GenlabError as e:
            raise CompileFailure(short(e)) from e
        except Exception as e:  # noqa: BLE001
            raise Crash("JsonSchema(schema)", e) from e
        try:
            return c, c.compile(self.vocab)
        except GenlabError as e:
            raise CompileFailure(short(e)) from e
        except Exception as e:  # noqa: BLE001
            raise Crash("compile(vocab)", e) from e

    def walker(self, compiled):
        return super().walker(compiled[1])

    def accepts(self, compiled, text, tokens):
        return compiled[0].check(text)


class LLGuidance(LLGuidanceEngine):
    lenient = False  # set from --llg-lenient

    def compile(self, schema):
        options = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        if self.lenient:
            options["lenient"] = True
        try:
            grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, overrides=options)
        except Exception as e:  # noqa: BLE001
            raise CompileFailure(short(e)) from e
        try:
            return self.matcher(grammar)
        except ValueError as e:  # the grammar is in error: its message
            raise CompileFailure(str(e).strip().splitlines()[0][:140]) from e
        except Exception as e:  # noqa: BLE001
            raise CompileFailure(short(e)) from e

    def walker(self, compiled):
        return super().walker(compiled.deep_copy())

    def accepts(self, compiled, text, tokens):
        m = compiled.deep_copy()
        for t in tokens:
            if not m.consume_token(t):
                return False
        return m.is_accepting()


class XGrammar(XGrammarEngine):
    def compile(self, schema):
        try:
            return self.compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, separators=(",", ":"), strict_mode=False
            )
        except Exception as e:  # noqa: BLE001
            raise CompileFailure(short(e)) from e

    def accepts(self, compiled, text, tokens):
        m = self.xgr.GrammarMatcher(compiled)
        for t in tokens:
            if not m.accept_token(t):
                return False
        return m.accept_token(self.eos[0]) and m.is_terminated()


ENGINES = {e.name: e for e in (Genlab, LLGuidance, XGrammar)}

# ---- measurement ----


def allows_next(walker, t: int) -> bool:
    """Whether the walker's last mask allows token t (read from its bitmask, not unpacked)."""
    bm = walker.bitmask
    word = int(bm[0, t >> 5]) if bm.ndim == 2 else int(bm[t >> 5])
    return bool((word >> (t & 31)) & 1)


@dataclass
class Walk:
    mask_us: list[float] = field(default_factory=list)
    failed_at: int | None = None  # index of the first token the engine rejected
    misses: int = 0  # positions whose mask left out the next token although advancing by it worked
    eos_at_end: bool | None = None  # None: the walk stopped at the cap before the end


def walk(walker, tokens: list[int], eos: list[int], cap: int) -> Walk:
    out = Walk()
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(min(len(tokens) + 1, cap)):
            t0 = clock()
            walker.fill()
            t1 = clock()
            out.mask_us.append((t1 - t0) / 1e3)
            if i == len(tokens):
                out.eos_at_end = any(allows_next(walker, e) for e in eos)
                break
            t = tokens[i]
            allowed = allows_next(walker, t)
            if not walker.advance(t):
                out.failed_at = i
                break
            if not allowed:
                out.misses += 1
    finally:
        gc.enable()
    return out


def own_order_accepts(e: Engine, compiled, text: str, value, tok) -> bool:
    """Whether a peer accepts the instance written compactly in its own key order (when that differs from
    genlab's text): a rejection of genlab's text that this undoes is a property-order difference."""
    try:
        own = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return own != text and e.accepts(compiled, own, tok.encode(own, add_special_tokens=False))
    except Exception:  # noqa: BLE001
        return False


@dataclass
class Stats:
    """One engine on one vocabulary."""

    compile_ms: dict[str, float] = field(default_factory=dict)  # schema -> ms, every successful compile
    covered: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)  # schema -> reason (errors, budget, crashes)
    over_budget: set[str] = field(default_factory=set)
    crashes: dict[str, str] = field(default_factory=dict)  # schema -> "stage: Type: message"
    vr: Counter = field(default_factory=Counter)  # collection -> valid instances rejected
    ia: Counter = field(default_factory=Counter)  # collection -> invalid instances accepted
    vr_order: int = 0  # (peers) valid rejected whose own key order, written compactly, the engine accepts
    vr_examples: list[str] = field(default_factory=list)
    ia_examples: list[str] = field(default_factory=list)
    masks: dict[str, list[float]] = field(default_factory=dict)  # schema -> walk's mask µs
    walked: dict[str, int] = field(default_factory=dict)  # schema -> index of the test walked
    misses: int = 0
    no_eos: list[str] = field(default_factory=list)
    walk_failures: int = 0  # walks rejected (another instance tried)
    unwalked: int = 0  # covered schemas with no valid instance walked in full or to the cap
    seconds: float = 0.0


@dataclass
class GenlabExtra:
    """genlab-only figures (first vocabulary's run)."""

    with_end_checks: int = 0
    keywords: Counter = field(default_factory=Counter)  # keyword -> schemas with that end check
    vr_grammar: int = 0  # valid rejected by the grammar
    vr_validator: int = 0  # valid accepted by the grammar, rejected by the validator
    ia_caught: int = 0  # invalid instances the grammar accepts and the validator rejects
    invalid_total: int = 0
    unserialisable: int = 0
    reasons: Counter = field(default_factory=Counter)  # default (strict=False) failure kinds
    with_annotations: int = 0  # schemas compiled with unknown keywords or formats ignored as annotations
    annotations: Counter = field(default_factory=Counter)  # "keyword 'x'" / "format 'y'" -> schemas


def tokens_of(tok, texts: list[str | None], cache: dict[int, list[int]], i: int) -> list[int]:
    """The token ids of test instance `i`'s text, encoded once per schema (`cache`)."""
    if i not in cache:
        cache[i] = tok.encode(texts[i], add_special_tokens=False)
    return cache[i]


def reason_kind(reason: str) -> str:
    """A failure message with its specifics blanked (but an unknown keyword's or format's name), to group alike
    failures."""
    m = re.match(r"(\w+: unknown (?:keyword|format) '[^']*')", reason)
    if m:
        return m.group(1)
    r = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    r = re.sub(r"\d+(\.\d+)?", "N", r)
    return r[:100]


def run_vocab(
    vname: str, engines: list[Engine], rows: list[dict], args, strict_cov: dict | None, extra: GenlabExtra | None
) -> dict[str, Stats]:
    tok = load_tokenizer(vname)
    vocab = TokenVocabulary.from_tokenizer(tok)
    stats = {e.name: Stats() for e in engines}
    for e in engines:
        e.prepare(tok, vocab)
        try:  # first-call costs (numba cache loads, per-process tables, lazy init) stay out of the figures
            compiled = e.compile(WARMUP_SCHEMA)
            text = JsonSchema(WARMUP_SCHEMA).serialize(WARMUP_VALUE)
            tokens = tok.encode(text, add_special_tokens=False)
            w = walk(e.walker(compiled), tokens, e.eos, 10_000)
            if w.failed_at is not None or not e.accepts(compiled, text, tokens):
                print(f"warning: {vname} / {e.name} rejected the warm-up value", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: {vname} / {e.name} warm-up failed: {short(exc)}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # the long-lived heap (tokenizer, engines, data) leaves the collector: `walk`'s collect is cheap
    began = time.perf_counter()
    for n, row in enumerate(rows):
        if n and n % PROGRESS_EVERY == 0:
            spent = time.perf_counter() - began
            print(
                f"[{vname}] {n}/{len(rows)} schemas, {spent:.0f} s "
                f"({', '.join(f'{k} {s.seconds:.0f} s' for k, s in stats.items())})",
                file=sys.stderr,
                flush=True,
            )
        sid, schema, tests = row["id"], row["schema"], row["tests"]
        coll = collection(sid)
        if strict_cov is not None:
            try:
                with alarm(args.hard_limit_s):
                    JsonSchema(schema, strict=True)
                strict_cov[sid] = "ok"
            except GenlabError as exc:
                strict_cov[sid] = short(exc)
            except HardTimeout:
                strict_cov[sid] = "timeout"
            except Exception as exc:  # noqa: BLE001
                strict_cov[sid] = f"crash: {short(exc)}"
        texts: list[str | None] | None = None
        token_cache: dict[int, list[int]] = {}
        for e in engines:
            st = stats[e.name]
            t_engine = time.perf_counter()
            compiled = None
            try:
                e.forget()
                with alarm(args.hard_limit_s) if e.name == "genlab" else nullcontext():
                    t0 = time.perf_counter_ns()
                    compiled = e.compile(schema)
                    ms = (time.perf_counter_ns() - t0) / 1e6
                st.compile_ms[sid] = ms
                if e.name == "genlab":
                    c = compiled[0]
                    if extra is not None and c.end_checks:
                        extra.with_end_checks += 1
                        extra.keywords.update({k.split(" at ")[0] for k in c.end_checks})
                    if extra is not None and c.annotations:
                        extra.with_annotations += 1
                        extra.annotations.update({a.split(" at ")[0].removeprefix("unknown ") for a in c.annotations})
                    out = []
                    for t in tests:
                        try:
                            out.append(c.serialize(t["data"]))
                        except GenlabError:
                            out.append(None)
                        except Exception as exc:  # noqa: BLE001
                            raise Crash("serialize", exc) from exc
                    texts = out
                    if extra is not None:
                        extra.unserialisable += sum(x is None for x in texts)
                if ms > args.compile_budget_s * 1e3:
                    st.over_budget.add(sid)
                    raise CompileFailure(f"over budget ({ms / 1e3:.1f} s)")
            except CompileFailure as exc:
                st.failures[sid] = str(exc)
            except HardTimeout:
                st.failures[sid] = f"hard limit: compile stopped after {args.hard_limit_s:g} s"
            except Crash as exc:
                st.failures[sid] = st.crashes[sid] = str(exc)
            if texts is None:  # genlab did not compile this schema: the instances' own compact form
                texts = []
                for t in tests:
                    try:
                        texts.append(json.dumps(t["data"], separators=(",", ":"), ensure_ascii=False))
                    except (TypeError, ValueError):
                        texts.append(None)
            if sid in st.failures:
                if e.name == "genlab" and extra is not None:
                    extra.reasons[reason_kind(st.failures[sid])] += 1
                del compiled
                st.seconds += time.perf_counter() - t_engine
                continue
            try:
                with alarm(args.hard_limit_s) if e.name == "genlab" else nullcontext():
                    # the mask walk first, from the fresh compile, then the checks
                    tries = 0
                    for i, t in enumerate(tests):
                        if not t["valid"] or texts[i] is None or tries >= MAX_WALK_TRIES:
                            continue
                        tries += 1
                        try:
                            w = walk(
                                e.walker(compiled),
                                tokens_of(tok, texts, token_cache, i),
                                e.eos,
                                args.max_masks_per_schema,
                            )
                        except (HardTimeout, KeyboardInterrupt):
                            raise
                        except Exception as exc:  # noqa: BLE001
                            raise Crash("mask walk", exc) from exc
                        if w.failed_at is not None or w.eos_at_end is False:
                            st.walk_failures += 1
                            continue
                        st.masks[sid], st.walked[sid] = w.mask_us, i
                        st.misses += w.misses
                        break
                    else:
                        st.unwalked += any(t["valid"] for t in tests)
                    vr = ia = 0
                    for i, t in enumerate(tests):
                        if texts[i] is None:
                            continue
                        try:
                            ok = e.accepts(
                                compiled, texts[i], tokens_of(tok, texts, token_cache, i) if e.name != "genlab" else []
                            )
                            if e.name == "genlab" and extra is not None:
                                in_grammar = compiled[0].grammar.check(texts[i])
                                if t["valid"] and not ok:
                                    if in_grammar:
                                        extra.vr_validator += 1
                                    else:
                                        extra.vr_grammar += 1
                                if not t["valid"]:
                                    extra.invalid_total += 1
                                    extra.ia_caught += in_grammar and not ok
                        except (HardTimeout, KeyboardInterrupt):
                            raise
                        except Exception as exc:  # noqa: BLE001
                            if e.name == "genlab":
                                raise Crash("check", exc) from exc
                            ok = False
                        if t["valid"] and not ok:
                            vr += 1
                            if e.name != "genlab" and own_order_accepts(e, compiled, texts[i], t["data"], tok):
                                st.vr_order += 1
                            if len(st.vr_examples) < 15:
                                st.vr_examples.append(f"{sid} test {i}: {texts[i][:100]}")
                        elif not t["valid"] and ok:
                            ia += 1
                            if len(st.ia_examples) < 15:
                                st.ia_examples.append(f"{sid} test {i}: {texts[i][:100]}")
                st.vr[coll] += vr
                st.ia[coll] += ia
                st.covered.add(sid)
            except HardTimeout:
                st.failures[sid] = f"hard limit: walk and checks stopped after {args.hard_limit_s:g} s"
                st.crashes[sid] = st.failures[sid]
                st.masks.pop(sid, None)
                st.walked.pop(sid, None)
            except Crash as exc:
                st.failures[sid] = st.crashes[sid] = str(exc)
                st.masks.pop(sid, None)
                st.walked.pop(sid, None)
            del compiled
            st.seconds += time.perf_counter() - t_engine
    gc.unfreeze()
    print(f"[{vname}] {len(rows)} schemas done in {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    return stats


# ---- report ----


def fmt(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def cov(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if total else "—"


def ratios(mine: Stats, theirs: Stats) -> dict[str, float | int]:
    both_c = [s for s in mine.compile_ms if s in theirs.compile_ms]
    both_w = [s for s in mine.walked if theirs.walked.get(s) == mine.walked[s]]
    a = [mine.compile_ms[s] for s in both_c]
    b = [theirs.compile_ms[s] for s in both_c]
    ma = [t for s in both_w for t in mine.masks[s]]
    mb = [t for s in both_w for t in theirs.masks[s]]
    return {
        "compiled": len(both_c),
        "walked": len(both_w),
        "compile p50": pct(a, 50) / pct(b, 50) if a else float("nan"),
        "compile p99": pct(a, 99) / pct(b, 99) if a else float("nan"),
        "mask p50": pct(ma, 50) / pct(mb, 50) if ma else float("nan"),
        "mask p99": pct(ma, 99) / pct(mb, 99) if ma else float("nan"),
    }


def report(
    rows: list[dict], runs: dict[str, dict[str, Stats]], strict_cov: dict, extra: GenlabExtra, args, wall: float
) -> str:
    """Print the tables and lists; return what was printed."""
    names = list(next(iter(runs.values())))
    peers = [n for n in names if n != "genlab"]
    colls = Counter(collection(r["id"]) for r in rows)
    order = sorted(colls, key=lambda c: (-colls[c], c))
    by_coll = defaultdict(list)
    for r in rows:
        by_coll[collection(r["id"])].append(r["id"])
    n_valid = sum(t["valid"] for r in rows for t in r["tests"])
    n_tests = sum(len(r["tests"]) for r in rows)

    out = Printed()
    out(f"\n### JSON Schema on MaskBench dev: {len(rows)} schemas, {n_tests} instances ({n_valid} valid)\n")
    out(f"Versions: {versions(ROOT, ('llguidance', 'xgrammar', 'jsonschema'))}\n")
    out(
        f"Compile budget {args.compile_budget_s:g} s (slower compiles count as not covered), walks capped at "
        f"{args.max_masks_per_schema} masks per schema, llguidance lenient: {args.llg_lenient}. "
        "Coverage = compiled within budget, and (genlab) no crash. VR = valid instances rejected, "
        "IA = invalid instances accepted, counted over the schemas the engine covers, all on genlab's "
        "serialisation (compact, keys in schema order). genlab = `JsonSchema(schema)` with the defaults "
        "(unknown keywords and formats ignored as annotations); genlab strict = `JsonSchema(schema, "
        "strict=True)` constructs.\n"
    )

    for v, stats in runs.items():
        out(f"#### (a) Per collection ({v})\n")
        head = (
            ["collection", "schemas", "genlab", "genlab strict"]
            + peers
            + [f"VR {n}" for n in names]
            + [f"IA {n}" for n in names]
        )
        out("| " + " | ".join(head) + " |")
        out("| --- |" + " --: |" * (len(head) - 1))
        for c in order + ["all"]:
            ids = [r["id"] for r in rows] if c == "all" else by_coll[c]
            total = len(ids)
            cells = [f"**{c}**" if c == "all" else c, str(total)]
            cells.append(cov(sum(s in stats["genlab"].covered for s in ids), total))
            cells.append(cov(sum(strict_cov.get(s) == "ok" for s in ids), total))
            cells += [cov(sum(s in stats[p].covered for s in ids), total) for p in peers]
            if c == "all":
                cells += [str(sum(stats[n].vr.values())) for n in names]
                cells += [str(sum(stats[n].ia.values())) for n in names]
            else:
                cells += [str(stats[n].vr[c]) for n in names] + [str(stats[n].ia[c]) for n in names]
            out("| " + " | ".join(cells) + " |")
        out()

    out("#### (b) Overall\n")
    head = [
        "vocab",
        "engine",
        "covered",
        "errors",
        "over budget",
        "crashes",
        "VR",
        "VR order",
        "IA",
        "compile p50 ms",
        "compile p99 ms",
        "mask p50 µs",
        "mask p99 µs",
        "masks",
        "walked",
        "mask misses",
        "run s",
    ]
    out("| " + " | ".join(head) + " |")
    out("| --- | --- |" + " --: |" * (len(head) - 2))
    total = len(rows)
    for v, stats in runs.items():
        for n in names:
            st = stats[n]
            errors = len(st.failures) - len(st.over_budget) - len(st.crashes)
            comp = list(st.compile_ms.values())
            masks = [t for ts in st.masks.values() for t in ts]
            cells = [
                v,
                n,
                cov(len(st.covered), total),
                str(errors),
                str(len(st.over_budget)),
                str(len(st.crashes)),
                str(sum(st.vr.values())),
                str(st.vr_order) if n != "genlab" else "—",
                str(sum(st.ia.values())),
                fmt(pct(comp, 50)),
                fmt(pct(comp, 99)),
                fmt(pct(masks, 50)),
                fmt(pct(masks, 99)),
                str(len(masks)),
                str(len(st.masks)),
                str(st.misses),
                f"{st.seconds:.0f}",
            ]
            out("| " + " | ".join(cells) + " |")
    out(
        "\nVR order: of the valid instances rejected, those the peer accepts written in their own key order "
        "(compact): a property-order difference with genlab's writer, not a coverage fault."
    )
    out(
        "\nRatios genlab / peer (< 1: genlab faster); compile over the schemas both compiled, masks over the "
        "schemas both walked on the same instance:\n"
    )
    head = ["vocab", "peer", "schemas compiled", "compile p50", "compile p99", "schemas walked", "mask p50", "mask p99"]
    out("| " + " | ".join(head) + " |")
    out("| --- | --- |" + " --: |" * (len(head) - 2))
    for v, stats in runs.items():
        for p in peers:
            r = ratios(stats["genlab"], stats[p])
            out(
                f"| {v} | {p} | {r['compiled']} | {r['compile p50']:.2f} | {r['compile p99']:.2f} | "
                f"{r['walked']} | {r['mask p50']:.2f} | {r['mask p99']:.2f} |"
            )

    g0 = next(iter(runs.values()))["genlab"]
    out(f"\n#### (c) genlab only ({next(iter(runs))} run)\n")
    out(f"- schemas with end_checks: {extra.with_end_checks} of {len(g0.compile_ms)} compiled")
    top = ", ".join(f"{k} {n}" for k, n in extra.keywords.most_common(12))
    out(f"- end-check keywords (schemas): {top or 'none'}")
    out(f"- valid rejected: {extra.vr_grammar} by the grammar, {extra.vr_validator} by the validator only")
    out(
        f"- invalid instances accepted by the grammar and rejected by the end validation: {extra.ia_caught} of "
        f"{extra.invalid_total} checked"
    )
    if extra.unserialisable:
        out(f"- instances genlab's serialize refused: {extra.unserialisable}")
    walks = g0.walk_failures
    out(
        f"- mask walks: {len(g0.masks)} schemas walked, {walks} walks rejected (another instance tried), "
        f"{g0.unwalked} covered schemas with valid instances but no walk, {g0.misses} mask misses"
    )
    strict_fail = Counter(reason_kind(r) for s, r in strict_cov.items() if r != "ok")
    out(
        f"- strict=True failures: {sum(strict_fail.values())}; default (strict=False) failures: "
        f"{sum(extra.reasons.values())}"
    )
    top = ", ".join(f"{k} {n}" for k, n in extra.annotations.most_common(12))
    out(
        f"- schemas compiled with unknown keywords/formats ignored as annotations: {extra.with_annotations}; "
        f"commonest (schemas): {top or 'none'}"
    )
    out("\nCommonest default (strict=False) failure kinds (specifics blanked):\n")
    for k, n in extra.reasons.most_common(15):
        out(f"- {n}: {k}")
    if not extra.reasons:
        out("none")
    out("\nCommonest strict=True failure kinds:\n")
    for k, n in strict_fail.most_common(12):
        out(f"- {n}: {k}")
    if not strict_fail:
        out("none")

    out(f"\n### genlab schemas not covered ({next(iter(runs))} run, default strict=False; first 20)\n")
    for sid, msg in list(g0.failures.items())[:20]:
        out(f"- {sid}: {msg}")
    if not g0.failures:
        out("none")

    out("\n### genlab crashes (exceptions other than GenlabError: bugs)\n")
    crashes = {}
    for stats in runs.values():
        for sid, msg in stats["genlab"].crashes.items():
            crashes.setdefault(sid, msg)
    for sid, msg in strict_cov.items():
        if msg.startswith("crash: ") and sid not in crashes:
            crashes[sid] = f"JsonSchema(strict=True): {msg[7:]}"
    for sid, msg in crashes.items():
        out(f"- {sid}: {msg}")
    if not crashes:
        out("none")
    for v, stats in runs.items():
        for n in names:
            st = stats[n]
            if st.vr_examples or st.ia_examples:
                out(f"\n### {n} / {v}: first valid rejected / invalid accepted\n")
                for x in st.vr_examples[:10]:
                    out(f"- VR {x}")
                for x in st.ia_examples[:10]:
                    out(f"- IA {x}")
    out(f"\n(total run {wall:.0f} s)")

    return out.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 schemas, smollm2 only")
    parser.add_argument("--limit", type=int, default=None, help="first N schemas of a seeded shuffle (default all)")
    parser.add_argument("--vocabs", default="smollm2,qwen2")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--max-masks-per-schema", type=int, default=200)
    parser.add_argument(
        "--compile-budget-s",
        type=float,
        default=2.0,
        help="a compile slower than this counts as not covered (any engine)",
    )
    parser.add_argument(
        "--hard-limit-s",
        type=float,
        default=60.0,
        help="stop genlab's Python-level compile, walk or checks after this many seconds",
    )
    parser.add_argument("--llg-lenient", action="store_true", help="llguidance ignores unimplemented keywords")
    parser.add_argument("--output", default="docs/benchmarks/jsonschema_bench.md", help="markdown file ('' for none)")
    args = parser.parse_args()
    if args.quick:
        args.limit = args.limit or 200
        args.vocabs = "smollm2"

    if not DATA.exists():
        print(f"{DATA} not found (the shared data folder is not next to this clone); nothing to measure.")
        return
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    random.Random(SEED).shuffle(rows)
    if args.limit is not None:
        rows = rows[: args.limit]

    names = ["genlab"] + [n for n in args.engines.split(",") if n and n != "genlab"]
    engines = []
    for n in names:
        if n not in ENGINES:
            raise SystemExit(f"unknown engine {n!r} ({', '.join(ENGINES)})")
        try:
            if n != "genlab":
                __import__(n)
            engine = ENGINES[n]()
            engine.lenient = args.llg_lenient
            engines.append(engine)
        except ImportError:
            print(f"warning: {n} is not installed; skipped", file=sys.stderr)

    started = time.perf_counter()
    strict_cov: dict[str, str] = {}
    extra = GenlabExtra()
    runs = {}
    for k, v in enumerate(args.vocabs.split(",")):
        runs[v] = run_vocab(v, engines, rows, args, strict_cov if k == 0 else None, extra if k == 0 else None)
    body = report(rows, runs, strict_cov, extra, args, time.perf_counter() - started)
    settings = (
        f"{os.cpu_count()} CPU cores; vocabularies {args.vocabs}; engines {', '.join(e.name for e in engines)}; "
        f"{len(rows)} schemas" + (f" (first {args.limit} of a seeded shuffle)" if args.limit is not None else "")
    )
    write_report(args.output, "JSON Schema on MaskBench dev", settings, body)


if __name__ == "__main__":
    main()
