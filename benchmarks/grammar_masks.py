"""Lark grammar constraints: compile time and per-token mask time, genlab beside llguidance and XGrammar.

Usage: python benchmarks/grammar_masks.py [--quick] [--repeats N] [--vocabs smollm2,qwen2] [--grammars json,sqlite]
                                          [--engines genlab,llguidance,xgrammar] [--max-walk-s S] [--detail]
                                          [--output docs/benchmarks/grammar_masks.md]

Grammars and sentences (the text walked, tokenized by the HF tokenizer, `encode(add_special_tokens=False)`):
- json: `grammars/json.lark` (RFC 8259 JSON, whitespace allowed between tokens). Six realistic documents, each
  in a compact form (`json.dumps(separators=(",", ":"))`, non-ASCII as \\uXXXX escapes) and a pretty-printed
  one (`indent=2`, non-ASCII as raw UTF-8): nested arrays and objects, escapes, unicode, exponents.
- sqlite: `grammars/sqlite.lark` (one read-only SQLite SELECT). 20 Spider dev gold queries, a fixed seeded
  sample of `genlab.datasets.spider.load_dev()` (20 hard-coded Spider-style queries if it cannot load).

For each grammar and vocabulary, every engine compiles the grammar from its text (timed; tokenizer-level setup
is built once per vocabulary, outside the timing), then walks each sentence: at every prefix position it
computes the mask of allowed tokens (timed) and advances by the next token. Each walk starts from a fresh
compile, so what is built lazily on first visit (genlab: lexers, parser configurations, masks per lexer
state; llguidance: its lexer DFA states) is included; "warm" repeats the walk on the same compiled object.
XGrammar is the exception: its compile precomputes its token-mask cache and its matchers keep nothing across
walks, and a compile takes up to seconds, so it compiles once per grammar and repeat and every walk of that
repeat uses a fresh `GrammarMatcher` on it (its cold and warm walks are alike).
For genlab a third walk, from another fresh compile, times `allows(state, next_token)` at every position
with no mask computed (as rejection sampling uses it), then advances.

Engines, each on its fastest documented single-thread CPU path:
- genlab: `Grammar(text).compile(vocab)` timed together as "compile" (the Lark load and terminal DFAs, then
  binding the vocabulary), `fill_bitmask(state, bitmask)` into a packed int32 bitmask, `allows`, `advance`.
- llguidance: `LLMatcher(lltok, LLMatcher.grammar_from_lark(text))`, `unsafe_compute_mask_ptr` into a packed
  int32 bitmask (what `llguidance.numpy.fill_next_token_bitmask` calls), `consume_token`. Its Lark dialect has
  no lookaheads, so the trailing `(?![...])` guards of genlab's terminals (sqlite.lark's keywords, NAME, NUMBER,
  "-", "/", quoted strings) are deleted from the text it gets, and NAME, which leaves out SQLite's reserved words
  with a leading lookahead, is given as the same language spelled as a trie over those words (a 10,000-character
  regex, `tests/sql_names.py`). Its lexer is greedy, but only among the terminals the parser allows next, so the
  guard-free grammar is a larger language (see the differences below).
- XGrammar: `GrammarCompiler(max_threads=1, cache_enabled=False)`; json: `compile_builtin_json_grammar()` (its
  own JSON grammar, not json.lark); sqlite: `compile_lark(text)` on the same guard-free text llguidance gets.
  `GrammarMatcher.fill_next_token_bitmask` into a packed int32 torch bitmask, `accept_token`.

The EOS ids genlab uses are given to llguidance and XGrammar as stop tokens. At each position the check is
that the engine's mask allows the next token of the sentence (and EOS at the end); a sentence an engine
rejects is reported and left out of that engine's figures. A first walk still running after `--max-walk-s`
seconds is stopped (its masks so far count in that engine's own row, marked "timed out", not in ratios), and
after two such walks the engine skips the grammar's other sentences on that vocabulary: XGrammar on
sqlite.lark takes a large fraction of a second per mask, so a full walk would take minutes.
Masks are compared with genlab's position by position: text tokens (non-EOS) and "some EOS allowed"
separately; differences are grouped and listed, not failed. Expected ones: llguidance allows only the
canonical token where the next bytes are forced; llguidance and XGrammar's Lark allow no `%ignore`d
whitespace before the first or after the last lexeme (genlab, like Lark, does); with the guards deleted the
peers accept texts the guarded grammar rejects ("SELECT0" read as SELECT 0, "JOing" as JOIN g, "--" as two
minus signs); XGrammar's builtin JSON admits only an object or array at the top level and lets special tokens
into strings. Seen with XGrammar 0.2.9: its JSON mask leaves out "}]" right after a string value in some
positions although `accept_token` takes it (reported as a mask miss).
Timing is wall clock (`perf_counter_ns`) around one call, garbage collection off during walks (and the
long-lived heap frozen out of the collector, so the collection before each walk is cheap). Each sentence is
compiled and walked `--repeats` times and each figure keeps its fastest repeat, position by position, as
`timeit` does; caches keyed by pattern content (genlab's UTF-8 automata, Python's `re` cache that Lark uses)
are cleared before each compile. One warm-up per engine and vocabulary (a small grammar with the same features:
regex terminals, a case-insensitive keyword, a guard, `%ignore`) keeps one-time costs (numba cache loads,
per-process Unicode tables, lazy initialisation) out of the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from report import Printed, write_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from peer_walkers import (  # noqa: E402
    Engine,
    GenlabEngine,
    LLGuidanceEngine,
    XGrammarEngine,
    pct,
    versions,
)
from sql_names import without_lookaheads  # noqa: E402
from tokenizer_assets import load_tokenizer  # noqa: E402

import genlab  # noqa: E402
from genlab import TokenVocabulary  # noqa: E402

try:  # where genlab keeps its shipped grammars (the package, or the repository's grammars/)
    from genlab.constraints.grammar import GRAMMARS_DIR as GRAMMARS
except ImportError:
    GRAMMARS = ROOT / "grammars"

# ---- sentences ----

JSON_DOCS = [
    {
        "id": 48213,
        "name": "Zoë Martín-Šimůnek",
        "email": "zoe.martin@example.org",
        "active": True,
        "roles": ["admin", "editor"],
        "score": 9.75e-1,
        "balance": -1234.5,
        "address": {"street": "12 Rue de l'Église", "city": "Zürich", "zip": "8001", "geo": [47.3769, 8.5417]},
        "last_login": None,
    },
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": 'Lake "Blue" Trail', "elevation_m": 1.2345e3},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[-122.4194, 37.7749], [-122.4313, 37.7793], [-122.4402, 37.7801]],
                },
            }
        ],
    },
    {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant.\nAnswer briefly."},
            {"role": "user", "content": 'Translate "good morning" to Japanese: おはよう?'},
            {"role": "assistant", "content": 'おはようございます — "ohayō gozaimasu".'},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "stop": ["\n\n", "</s>"],
    },
    {
        "order_id": "A-2024-000917",
        "items": [
            {"sku": "KB-87", "qty": 2, "price": 49.99, "tags": []},
            {"sku": "MS-03", "qty": 1, "price": 1.999e1, "tags": ["wireless", "refurb"]},
        ],
        "discount": 0,
        "currency": "EUR",
        "paid": False,
        "notes": "Leave at door \\ ring twice\t(tab)",
    },
    {
        "sensor": "thermo-7",
        "unit": "°C",
        "readings": [21.5, 21.75, -3.0e-2, 1e10, 0, -0.001],
        "calibration": {"offset": -0.25, "gain": 1.0002, "checked": "2024-03-15T13:45:30Z"},
        "alerts": [{"level": "warn", "msg": "drift > 0.5°C"}, {"level": "info", "msg": "ok"}],
    },
    {
        "title": "Crème brûlée",
        "servings": 6,
        "time": {"prep_min": 20, "cook_min": 45},
        "ingredients": [
            {"item": "cream", "amount": 500, "unit": "ml"},
            {"item": "sugar", "amount": 1.0e2, "unit": "g"},
            {"item": "vanilla pod", "amount": 1, "unit": None},
        ],
        "steps": ["Heat the cream.", 'Whisk yolks & sugar; pour in "slowly".', "Bake at 150 °C."],
        "rating": [4.8, 1.2e2],
        "vegetarian": True,
    },
]

SQL_FALLBACK = [
    "SELECT count(*) FROM singer",
    "SELECT name ,  country ,  age FROM singer ORDER BY age DESC",
    "SELECT avg(age) ,  min(age) ,  max(age) FROM singer WHERE country  =  'France'",
    "SELECT T2.name ,  count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id  =  T2.stadium_id "
    "GROUP BY T1.stadium_id",
    "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)",
    "SELECT country FROM singer WHERE age  >  40 INTERSECT SELECT country FROM singer WHERE age  <  30",
    "SELECT T1.fname ,  T1.age FROM student AS T1 JOIN has_pet AS T2 ON T1.stuid  =  T2.stuid JOIN pets AS T3 "
    "ON T3.petid  =  T2.petid WHERE T3.pettype  =  'dog' AND T1.stuid NOT IN (SELECT T1.stuid FROM student AS T1 "
    "JOIN has_pet AS T2 ON T1.stuid  =  T2.stuid JOIN pets AS T3 ON T3.petid  =  T2.petid WHERE T3.pettype  =  'cat')",
    "SELECT count(DISTINCT LANGUAGE) FROM countrylanguage",
    'SELECT Name FROM country WHERE Continent  =  "Europe" AND Population  =  "80000"',
    'SELECT sum(SurfaceArea) FROM country WHERE Region  =  "Caribbean"',
    "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 ON T1.Code  =  T2.CountryCode WHERE "
    'T2.Language  =  "English" AND T2.IsOfficial  =  "T" UNION SELECT T1.Name FROM country AS T1 JOIN '
    'countrylanguage AS T2 ON T1.Code  =  T2.CountryCode WHERE T2.Language  =  "Dutch" AND T2.IsOfficial  =  "T"',
    "SELECT template_type_code ,  count(*) FROM Templates GROUP BY template_type_code HAVING count(*)  >=  3",
    'SELECT document_name FROM Documents WHERE document_name LIKE "%CV%"',
    "SELECT T1.first_name ,  T1.last_name FROM Owners AS T1 JOIN Dogs AS T2 ON T1.owner_id  =  T2.owner_id "
    "WHERE T2.age  =  (SELECT max(age) FROM Dogs)",
    "SELECT avg(age) FROM Dogs WHERE dog_id IN ( SELECT dog_id FROM Treatments )",
    "SELECT max(Horsepower) ,  Make FROM CARS_DATA AS T1 JOIN CAR_NAMES AS T2 ON T1.Id  =  T2.MakeId WHERE "
    "T1.Cylinders  =  3",
    "SELECT name FROM employee ORDER BY age LIMIT 1",
    "SELECT T1.Name ,  T1.Population ,  T1.HeadOfState FROM country AS T1 JOIN countrylanguage AS T2 ON "
    "T1.Code  =  T2.CountryCode WHERE T2.Percentage  >  50 ORDER BY T1.Population DESC LIMIT 3",
    "SELECT count(*) FROM (SELECT * FROM endowment WHERE amount  >  8.5 GROUP BY school_id HAVING count(*)  >  1)",
    "SELECT Country FROM TV_Channel EXCEPT SELECT T1.Country FROM TV_Channel AS T1 JOIN cartoon AS T2 ON "
    "T1.id  =  T2.Channel WHERE T2.Written_by  =  'Todd Casey'",
]


def json_sentences(n_docs: int) -> list[tuple[str, str]]:
    out = []
    for i, doc in enumerate(JSON_DOCS[:n_docs]):
        out.append((f"doc{i} compact", json.dumps(doc, separators=(",", ":"), ensure_ascii=True)))
        out.append((f"doc{i} pretty", json.dumps(doc, indent=2, ensure_ascii=False)))
    return out


def sql_sentences(n: int) -> tuple[list[tuple[str, str]], str]:
    try:
        from genlab.datasets.spider import load_dev

        dev = load_dev()
        picked = random.Random(20240315).sample(range(len(dev)), 20)[:n]
        return [(f"spider#{i}", dev[i].query) for i in picked], "Spider dev gold, seeded sample"
    except Exception as exc:  # noqa: BLE001
        print(
            f"warning: Spider dev set unavailable ({type(exc).__name__}: {exc}); using hard-coded queries",
            file=sys.stderr,
        )
        return [(f"sql#{i}", q) for i, q in enumerate(SQL_FALLBACK[:n])], "hard-coded Spider-style"


# A small grammar with the benchmark grammars' features, compiled and walked once per engine and vocabulary.
WARMUP_GRAMMAR = r"""
start: item ("," item)*
item: NAME | STRING | NUMBER | SELECT | "[" "]"
SELECT: /select(?![0-9_])/i
NAME: /[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_])/
STRING: /"(?:[^"\\\x00-\x1f]|\\["\\nt])*"/
NUMBER: /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/
%ignore /[ \t\n]+/
"""
WARMUP_TEXT = 'SELECT, foo_1, "a\\"b é", -12.5e3, []'

_GUARD = re.compile(r"\(\?!(?:\[(?:\\.|[^\]\\])*\]|\\.|[^()\\])\)")


def strip_guards(text: str) -> str:
    """The grammar for engines without lookaheads: sqlite.lark's NAME, which leaves out the reserved words with a
    leading lookahead, spelled as a trie over them instead (the same language, `tests/sql_names.py`), then every
    lookahead guard `(?![...])` / `(?!x)` deleted."""
    return _GUARD.sub("", without_lookaheads(text))


# ---- engines: `prepare` per vocabulary (untimed), `compile` per grammar (timed), then a walker per walk ----


class Genlab(GenlabEngine):
    fresh_per_walk = True  # compile again for every walk (False: once per grammar and repeat)

    def compile(self, gname, text):
        return genlab.Grammar(text, start="start").compile(self.vocab)


class LLGuidance(LLGuidanceEngine):
    fresh_per_walk = True

    def compile(self, gname, text):
        return self.matcher(self.llg.LLMatcher.grammar_from_lark(strip_guards(text)))


class XGrammar(XGrammarEngine):
    fresh_per_walk = False

    def compile(self, gname, text):
        if gname == "json":
            return self.compiler.compile_builtin_json_grammar()
        return self.compiler.compile_lark(strip_guards(text))


ENGINES = {e.name: e for e in (Genlab, LLGuidance, XGrammar)}

# ---- measurement ----


@dataclass
class Walk:
    mask_us: list[float] = field(default_factory=list)
    # allowed tokens, when collected: bit-packed (np.packbits), so keeping them allocates little between timed
    # calls (holding full bool copies made the first repeat's masks measurably slower: fresh pages to fault in)
    masks: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # per position, when collected (genlab: threads in the state)
    failed_at: int | None = None  # index of the first token the engine rejected
    mask_misses: int = 0  # positions whose mask did not allow the next token (checked when collected)
    first_miss: int | None = None
    eos_at_end: bool | None = None  # whether the last mask allowed some EOS (checked when collected)
    timed_out: int | None = None  # position where the walk passed its deadline


def walk(walker, tokens: list[int], eos: np.ndarray, collect: bool, deadline: int | None = None) -> Walk:
    out = Walk()
    clock = time.perf_counter_ns
    deadline = deadline or (1 << 62)
    gc.collect()
    gc.disable()
    try:
        for i in range(len(tokens) + 1):
            t0 = clock()
            walker.fill()
            t1 = clock()
            out.mask_us.append((t1 - t0) / 1e3)
            if collect:
                allowed = walker.allowed()
                out.masks.append(np.packbits(allowed))
                out.notes.append(walker.note())
                if i < len(tokens):
                    if not allowed[tokens[i]]:
                        out.mask_misses += 1
                        out.first_miss = i if out.first_miss is None else out.first_miss
                else:
                    out.eos_at_end = bool(allowed[eos].any())
            if i == len(tokens):
                break
            if t1 > deadline:
                out.timed_out = i
                break
            if not walker.advance(tokens[i]):
                out.failed_at = i
                break
    finally:
        gc.enable()
    return out


def allows_walk(matcher, tokens: list[int]) -> tuple[list[float], int | None]:
    """genlab: `allows(state, next)` timed at each position (no masks), then `advance`."""
    clock = time.perf_counter_ns
    times = []
    s = matcher.start()
    gc.collect()
    gc.disable()
    try:
        for i, t in enumerate(tokens):
            t0 = clock()
            ok = matcher.allows(s, t)
            t1 = clock()
            times.append((t1 - t0) / 1e3)
            s = matcher.advance(s, t)
            if not ok or s is None:
                return times, i
    finally:
        gc.enable()
    return times, None


def best(walks: list[Walk]) -> Walk:
    """Position by position, the fastest of repeated identical walks (scheduling noise only adds time)."""
    first = walks[0]
    out = Walk([min(ts) for ts in zip(*(w.mask_us for w in walks))])
    out.masks, out.notes, out.failed_at = first.masks, first.notes, first.failed_at
    out.mask_misses, out.eos_at_end, out.timed_out = first.mask_misses, first.eos_at_end, first.timed_out
    out.first_miss = first.first_miss
    return out


@dataclass
class Diff:
    positions: int = 0  # masks compared
    text_bad: int = 0  # positions whose text-token sets differ
    eos_bad: int = 0  # positions where "some EOS allowed" differs
    kinds: dict[tuple, list] = field(default_factory=dict)  # (first genlab-only, first peer-only) -> [count, example]


@dataclass
class Result:
    compile_us: dict[str, float] = field(default_factory=dict)  # sentence -> µs (fastest repeat)
    cold: dict[str, Walk] = field(default_factory=dict)
    warm: dict[str, Walk] = field(default_factory=dict)
    allows_us: dict[str, list[float]] = field(default_factory=dict)  # genlab only
    errors: dict[str, str] = field(default_factory=dict)
    agreement: Diff = field(default_factory=Diff)  # against genlab, over the sentences both walked
    partial: set[str] = field(default_factory=set)  # sentences whose walk timed out (partial figures)
    skipped: set[str] = field(default_factory=set)  # sentences not walked after too many time-outs
    wall_s: float = 0.0  # time this engine spent on the grammar (compiles, walks, checks)


def show_tokens(vocab: TokenVocabulary, ids: np.ndarray, k: int = 4) -> str:
    return ",".join(repr(vocab.token_bytes[i])[1:] if vocab.is_text[i] else f"#{i}" for i in ids[:k])


def compare(
    vocab: TokenVocabulary,
    tok,
    tokens: list[int],
    sname: str,
    ours: list[np.ndarray],
    theirs: list[np.ndarray],
    diff: Diff,
) -> None:
    eos = np.zeros(vocab.size, bool)
    eos[list(vocab.eos_ids)] = True
    n = min(len(ours), len(theirs))
    diff.positions += n
    for pos, (pa, pb) in enumerate(zip(ours[:n], theirs[:n])):
        a = np.unpackbits(pa, count=vocab.size).astype(bool)
        b = np.unpackbits(pb, count=vocab.size).astype(bool)
        d = (a != b) & ~eos
        if d.any():
            diff.text_bad += 1
            only_a, only_b = np.flatnonzero(d & a), np.flatnonzero(d & b)
            kind = (show_tokens(vocab, only_a, 1), show_tokens(vocab, only_b, 1))
            if kind in diff.kinds:
                diff.kinds[kind][0] += 1
            else:
                before = tok.decode(tokens[:pos])[-24:]
                nxt = repr(vocab.token_bytes[tokens[pos]])[1:] if pos < len(tokens) else "EOS"
                diff.kinds[kind] = [
                    1,
                    f"{sname} pos {pos} after {before!r} (next {nxt}): genlab-only {len(only_a)} "
                    f"[{show_tokens(vocab, only_a)}], peer-only {len(only_b)} "
                    f"[{show_tokens(vocab, only_b)}]",
                ]
        if a[eos].any() != b[eos].any():
            diff.eos_bad += 1


def run_vocab(
    vname: str,
    engines: list[Engine],
    grammars: dict[str, tuple[str, list[tuple[str, str]]]],
    repeats: int,
    max_walk_s: float,
    max_timeouts: int = 2,
) -> tuple[dict, dict, tuple]:
    """(results[grammar][engine], token ids[grammar][sentence], (tokenizer, vocabulary))."""
    tok = load_tokenizer(vname)
    vocab = TokenVocabulary.from_tokenizer(tok)
    eos = np.zeros(vocab.size, bool)
    eos[list(vocab.eos_ids)] = True
    results = {g: {e.name: Result() for e in engines} for g in grammars}
    tokenized = {
        g: {s: tok.encode(text, add_special_tokens=False) for s, text in sents} for g, (_, sents) in grammars.items()
    }
    warm_tokens = tok.encode(WARMUP_TEXT, add_special_tokens=False)
    for e in engines:
        e.prepare(tok, vocab)
        try:  # first-call costs (numba cache loads, per-process tables, lazy init) stay out of the figures
            compiled = e.compile("warmup", WARMUP_GRAMMAR)
            walk(e.walker(compiled), warm_tokens, eos, False)
            if e.name == "genlab":
                allows_walk(e.compile("warmup", WARMUP_GRAMMAR), warm_tokens)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: {vname} / {e.name} warm-up failed: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # the long-lived heap (tokenizer, engines, imports) leaves the collector: `walk`'s collect is cheap
    for gname, (text, sents) in grammars.items():
        for e in engines:
            res = results[gname][e.name]
            compiles: dict[str, list[float]] = {}
            colds: dict[str, list[Walk]] = {}
            warms: dict[str, list[Walk]] = {}
            allows: dict[str, list[list[float]]] = {}
            timeouts = 0
            began = time.perf_counter()
            for r in range(repeats):
                shared = None
                for sname, _ in sents:
                    if r > 0 and (sname not in colds or sname in res.errors):
                        continue  # repeats only for sentences walked in full the first time
                    if timeouts >= max_timeouts:
                        res.errors.setdefault(sname, f"skipped: {timeouts} walks over {max_walk_s:g} s before")
                        res.skipped.add(sname)
                        continue
                    tokens = tokenized[gname][sname]
                    try:
                        if e.fresh_per_walk or shared is None:
                            e.forget()
                            t0 = time.perf_counter_ns()
                            compiled = e.compile(gname, text)
                            compiles.setdefault(sname, []).append((time.perf_counter_ns() - t0) / 1e3)
                            shared = compiled
                        compiled = shared
                    except Exception as exc:  # noqa: BLE001
                        res.errors[sname] = f"compile: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                        continue
                    deadline = time.perf_counter_ns() + int(max_walk_s * 1e9) if r == 0 else None
                    cold = walk(e.walker(compiled), tokens, eos, collect=r == 0, deadline=deadline)
                    colds.setdefault(sname, []).append(cold)
                    if cold.timed_out is not None:
                        timeouts += 1
                        res.errors[sname] = (
                            f"timed out: walk stopped after {max_walk_s:g} s at position "
                            f"{cold.timed_out}/{len(tokens)} (its masks so far are in the engine's "
                            "own figures, not in ratios)"
                        )
                        res.partial.add(sname)
                        continue
                    warms.setdefault(sname, []).append(walk(e.walker(compiled), tokens, eos, collect=False))
                    if e.name == "genlab":
                        e.forget()
                        times, failed = allows_walk(e.compile(gname, text), tokens)
                        allows.setdefault(sname, []).append(times)
                        if failed is not None:
                            res.errors.setdefault(sname, f"allows/advance rejected token {failed}")
            res.wall_s = time.perf_counter() - began
            if compiles and not e.fresh_per_walk:  # one compile per repeat: every sentence gets the fastest
                fastest = min(t for ts in compiles.values() for t in ts)
                compiles = {s: [fastest] for s in colds}
            for sname, _ in sents:
                if sname not in colds:
                    continue
                tokens = tokenized[gname][sname]
                res.compile_us[sname] = min(compiles.get(sname, [float("nan")]))
                cold = res.cold[sname] = best(colds[sname])
                if sname in warms:
                    res.warm[sname] = best(warms[sname])
                if sname in allows:
                    res.allows_us[sname] = [min(ts) for ts in zip(*allows[sname])]
                if cold.timed_out is not None:
                    pass
                elif cold.failed_at is not None:
                    t = tokens[cold.failed_at]
                    before = tok.decode(tokens[: cold.failed_at])[-30:]
                    res.errors[sname] = (
                        f"rejected token {cold.failed_at}/{len(tokens)} (id {t}, "
                        f"{vocab.token_bytes[t]!r}) after {before!r}"
                    )
                elif cold.mask_misses:
                    i = cold.first_miss
                    res.errors[sname] = (
                        f"mask left out the next token at {cold.mask_misses} position(s), first "
                        f"{i}/{len(tokens)}: {vocab.token_bytes[tokens[i]]!r} after "
                        f"{tok.decode(tokens[:i])[-30:]!r} (advancing by it worked)"
                    )
                elif not cold.eos_at_end:
                    res.errors[sname] = "EOS not allowed at the end"
        # position-by-position agreement with genlab, then drop the collected masks
        ref = results[gname].get("genlab")
        for e in engines:
            if e.name == "genlab" or ref is None:
                continue
            res = results[gname][e.name]
            for sname, _ in sents:
                if sname in ref.cold and sname in res.cold:
                    compare(
                        vocab,
                        tok,
                        tokenized[gname][sname],
                        sname,
                        ref.cold[sname].masks,
                        res.cold[sname].masks,
                        res.agreement,
                    )
        for e in engines:
            for w in results[gname][e.name].cold.values():
                w.masks = []
    gc.unfreeze()
    return results, tokenized, (tok, vocab)


# ---- report ----


def ok_sentences(res: Result, sents) -> list[str]:
    return [s for s, _ in sents if s in res.cold and s not in res.errors]


def summarize(res: Result, ok: list[str]) -> dict[str, float]:
    cold = [t for s in ok for t in res.cold[s].mask_us]
    warm = [t for s in ok if s in res.warm for t in res.warm[s].mask_us]
    allows = [t for s in ok if s in res.allows_us for t in res.allows_us[s]]
    comp = [res.compile_us[s] / 1e3 for s in ok]
    return {
        "compile ms": pct(comp, 50),
        "mask p50": pct(cold, 50),
        "mask p99": pct(cold, 99),
        "warm p50": pct(warm, 50),
        "warm p99": pct(warm, 99),
        "allows p50": pct(allows, 50),
        "allows p99": pct(allows, 99),
        "masks": len(cold),
    }


def fmt(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


RATIO_KEYS = ["mask p50", "mask p99", "compile ms"]
TARGETS = [("mask p50 / llguidance", 1.5), ("mask p99 / llguidance", 1.0), ("allows p50 µs", 5.0), ("compile ms", 50.0)]


def ratios(results: dict[str, Result], peer: str, sents) -> dict[str, float]:
    if "genlab" not in results or peer not in results:
        return {}
    both = [s for s in ok_sentences(results["genlab"], sents) if s in ok_sentences(results[peer], sents)]
    if not both:
        return {}
    mine, theirs = summarize(results["genlab"], both), summarize(results[peer], both)
    return {k: mine[k] / theirs[k] for k in RATIO_KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer sentences")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="compile and walk each sentence this many times, keep the fastest (default 3; 1 quick)",
    )
    parser.add_argument("--vocabs", default="smollm2,qwen2")
    parser.add_argument("--grammars", default="json,sqlite")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--detail", action="store_true", help="per-sentence compile and mask times")
    parser.add_argument(
        "--max-walk-s",
        type=float,
        default=8.0,
        help="stop a first walk that runs longer than this (s); after 2 such walks an engine "
        "skips the grammar's other sentences (on that vocabulary)",
    )
    parser.add_argument("--output", default="docs/benchmarks/grammar_masks.md", help="markdown file ('' for none)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)

    grammars: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    sources = {}
    for g in args.grammars.split(","):
        text = (GRAMMARS / f"{g}.lark").read_text(encoding="utf-8")
        if g == "json":
            sents = json_sentences(2 if args.quick else len(JSON_DOCS))
            sources[g] = f"{len(sents)} documents ({len(sents) // 2} compact + pretty)"
        elif g == "sqlite":
            sents, where = sql_sentences(5 if args.quick else 20)
            sources[g] = f"{len(sents)} queries ({where})"
        else:
            raise SystemExit(f"no sentences for grammar {g!r} (json, sqlite)")
        grammars[g] = (text, sents)

    names = ["genlab"] + [n for n in args.engines.split(",") if n != "genlab"]
    engines = []
    for n in names:
        try:
            __import__(n)
            engines.append(ENGINES[n]())
        except ImportError:
            print(f"warning: {n} is not installed; skipped", file=sys.stderr)

    started = time.perf_counter()
    runs = {v: run_vocab(v, engines, grammars, repeats, args.max_walk_s) for v in args.vocabs.split(",")}
    peers = [e.name for e in engines if e.name != "genlab"]

    out = Printed()
    out(f"\n### Grammar masks: times in µs unless marked (lower is better), fastest of {repeats} repeat(s)\n")
    out(f"Versions: {versions(ROOT, ('llguidance', 'xgrammar', 'lark'))}\n")
    for g, src in sources.items():
        out(f"- {g}: {src}")
    out(
        "\nFigures are over the sentences the engine walked without a failure; ratio = genlab / peer over the "
        "sentences both completed (< 1: genlab faster). mask = cold walk from a fresh compile; warm = the same "
        "walk again on the compiled object; allows = genlab `allows(state, next token)`.\n"
    )
    cols = ["compile ms", "mask p50", "mask p99", "warm p50", "warm p99", "allows p50", "allows p99"]
    rcols = [f"{k} vs {p}" for p in peers for k in RATIO_KEYS]
    out("| grammar | vocab | engine | " + " | ".join(cols) + " | masks | sentences ok | " + " | ".join(rcols) + " |")
    out("| --- | --- | --- |" + " --: |" * (len(cols) + 2 + len(rcols)))
    for g, (_, sents) in grammars.items():
        for v, (results, _, _) in runs.items():
            rs = results[g]
            for e in engines:
                ok = ok_sentences(rs[e.name], sents)
                partial = [x for x, _ in sents if x in rs[e.name].partial]
                s = summarize(rs[e.name], ok + partial)
                cells = [fmt(s[c]) for c in cols]
                extra = (
                    (
                        f" (+{len(partial)} timed out"
                        + (f", {len(rs[e.name].skipped)} skipped" if rs[e.name].skipped else "")
                        + ")"
                    )
                    if partial
                    else ""
                )
                rcells = []
                for p in peers:
                    r = ratios(rs, p, sents) if e.name == "genlab" else {}
                    rcells += [f"{r[k]:.2f}" if k in r else "—" for k in RATIO_KEYS]
                out(
                    f"| {g} | {v} | {e.name} | " + " | ".join(cells) + f" | {s['masks']} | "
                    f"{len(ok)}/{len(sents)}{extra} | " + " | ".join(rcells) + " |"
                )

    out("\n### genlab against the targets\n")
    out("| grammar | vocab | " + " | ".join(f"{n} (target <= {t:g})" for n, t in TARGETS) + " |")
    out("| --- | --- |" + " --: |" * len(TARGETS))
    for g, (_, sents) in grammars.items():
        for v, (results, _, _) in runs.items():
            rs = results[g]
            if "genlab" not in rs:
                continue
            mine = summarize(rs["genlab"], ok_sentences(rs["genlab"], sents))
            r = ratios(rs, "llguidance", sents)
            values = [
                r.get("mask p50", float("nan")),
                r.get("mask p99", float("nan")),
                mine["allows p50"],
                mine["compile ms"],
            ]
            cells = []
            for val, (_, t) in zip(values, TARGETS):
                cells.append("—" if val != val else f"{val:.2f} {'ok' if val <= t else 'MISSED'}")
            out(f"| {g} | {v} | " + " | ".join(cells) + " |")

    out("\n### Failures (sentence left out of that engine's figures)\n")
    failures = 0
    for v, (results, _, _) in runs.items():
        for g, rs in results.items():
            for e, r in rs.items():
                for s, msg in r.errors.items():
                    if s not in r.skipped:
                        out(f"- {g} / {v} / {e} / {s}: {msg}")
                        failures += 1
                if r.skipped:
                    why = r.errors[next(iter(r.skipped))]
                    out(f"- {g} / {v} / {e}: {len(r.skipped)} sentence(s) not walked: {why}")
                    failures += 1
    if not failures:
        out("none")

    out(
        "\n### Agreement with genlab: positions whose text-token sets differ / positions compared "
        "(positions where 'some EOS allowed' differs)\n"
    )
    out("| grammar | " + " | ".join(f"{v} {p}" for v in runs for p in peers) + " |")
    out("| --- |" + " --: |" * (len(runs) * len(peers)))
    examples = []
    for g in grammars:
        cells = []
        for v, (results, _, _) in runs.items():
            for p in peers:
                a = results[g][p].agreement
                cells.append(f"{a.text_bad}/{a.positions} ({a.eos_bad})" if a.positions else "—")
                top = sorted(a.kinds.values(), key=lambda k: -k[0])[:4]
                examples += [f"- {g} / {v} / {p}: {n} position(s) like {x}" for n, x in top]
        out(f"| {g} | " + " | ".join(cells) + " |")
    if examples:
        out(
            "\nCommonest kinds of difference, grouped by (first genlab-only token, first peer-only token), "
            "with the first position of each (tokens shown as bytes, #id = special token):\n"
        )
        out("\n".join(examples))

    out("\n### genlab's slowest positions (cold mask; the p99 is among these)\n")
    for g, (_, sents) in grammars.items():
        for v, (results, tokenized, (tok, vocab)) in runs.items():
            r = results[g].get("genlab")
            if r is None:
                continue
            ok = ok_sentences(r, sents)
            flat = [(t, s, i) for s in ok for i, t in enumerate(r.cold[s].mask_us)]
            if not flat:
                continue
            p99 = pct([t for t, _, _ in flat], 99)
            flat.sort(reverse=True)
            out(
                f"- {g} / {v}: p99 {fmt(p99)} µs; {sum(t >= p99 for t, _, _ in flat)} of {len(flat)} positions "
                f"at or above it; slowest:"
            )
            for t, s, i in flat[:4]:
                toks = tokenized[g][s]
                nxt = repr(vocab.token_bytes[toks[i]])[1:] if i < len(toks) else "end"
                out(
                    f"  - {fmt(t)} µs (warm {fmt(r.warm[s].mask_us[i])}): {s} position {i}/{len(toks)}, after "
                    f"{tok.decode(toks[:i])[-30:]!r}, next {nxt}, state {r.cold[s].notes[i]}"
                )
            al = [(t, s, i) for s in ok if s in r.allows_us for i, t in enumerate(r.allows_us[s])]
            al.sort(reverse=True)
            for t, s, i in al[:2]:
                toks = tokenized[g][s]
                out(
                    f"  - allows {fmt(t)} µs: {s} position {i}, after {tok.decode(toks[:i])[-30:]!r}, "
                    f"token {vocab.token_bytes[toks[i]]!r}"
                )

    if args.detail:
        out("\n### Per sentence: compile ms / cold mask p50 µs / cold mask max µs\n")
        out("| grammar | vocab | sentence | tokens | " + " | ".join(e.name for e in engines) + " |")
        out("| --- | --- | --- | --: |" + " --: |" * len(engines))
        for g, (_, sents) in grammars.items():
            for v, (results, tokenized, _) in runs.items():
                for s, _ in sents:
                    cells = []
                    for e in engines:
                        r = results[g][e.name]
                        if s in r.cold:
                            w = r.cold[s].mask_us
                            cells.append(
                                f"{fmt(r.compile_us[s] / 1e3)} / {fmt(pct(w, 50))} / {fmt(max(w))}"
                                + (" (failed)" if s in r.errors else "")
                            )
                        else:
                            cells.append("failed")
                    out(f"| {g} | {v} | {s} | {len(tokenized[g][s])} | " + " | ".join(cells) + " |")
    spent = ", ".join(
        f"{g}/{v}/{e} {r.wall_s:.0f}"
        for v, (results, _, _) in runs.items()
        for g, rs in results.items()
        for e, r in rs.items()
    )
    out(f"\n(total run {time.perf_counter() - started:.0f} s; seconds per grammar/vocab/engine: {spent})")

    settings = (
        f"{os.cpu_count()} CPU cores; grammars {args.grammars}; vocabularies {args.vocabs}; engines "
        f"{', '.join(e.name for e in engines)}; fastest of {repeats} repeat(s); first walks stopped after "
        f"{args.max_walk_s:g} s"
    )
    write_report(args.output, "Grammar masks", settings, out.text)


if __name__ == "__main__":
    main()
