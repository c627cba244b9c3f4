"""`Grammar`: the language of a Lark grammar, matched token by token with an incremental byte-level parser.

Lark loads and normalises the grammar (EBNF operators, `?rule` inlining, templates, `~n..m` repeats, `%import`,
`%ignore`), so what users write means what it means to Lark; genlab takes the resulting BNF and terminals.
Terminal regexes become byte DFAs (`automata/lexer.py`), the rules an Earley chart (`automata/earley.py`),
joined by `automata/parser.py`. The language is that of `Lark(source, parser="earley")`, with each terminal
matching any of its strings (Lark's `lexer="dynamic_complete"`; a trailing `(?![...])` guard on a terminal keeps
keywords and identifiers apart as Lark's greedy `dynamic` lexer does). Priorities only choose between parse
trees under Earley, so they do not change the language and are not used.

Masks are bitsets (`bitset.py`): a thread's mask is a trie walk in its lexer from its state (numba), cached per
lexer state, since it does not depend on the parser; below the trie nodes where a lexeme can end, the walk goes
on in the parser's next configurations, level after level, in one compiled loop (`automata/continuation.py`)
that also does the parser work it meets (chart columns, configurations) and comes back to Python only to build a
lexer start or to grow an array. Compiling against a vocabulary does the first of that work ahead, within a small
time budget (`GrammarMatcher._warm`), so a generation's first masks find it done.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genlab import bitset
from genlab.automata import continuation
from genlab.automata.continuation import DONE, STAMPS, new_stamp, walk_continuations
from genlab.automata.earley import CFG
from genlab.automata.lexer import (
    Terminal,
    compile_terminal,
    slice_reach,
    slice_reaches,
    slice_representatives,
    walk_lexer,
    walk_roots,
)
from genlab.automata.parser import GrammarParser, Thread, check_guards
from genlab.constraints.base import Constraint, Matcher
from genlab.errors import GrammarError, StateLimitError
from genlab.slices import outside_trie, string_content_slice
from genlab.trie import TokenTrie
from genlab.vocab import TokenVocabulary

_PACKAGE = Path(__file__).resolve().parent.parent
# a wheel installs the shipped grammars inside the package; a source checkout keeps them at the top level
GRAMMARS_DIR = next(
    (p for p in (_PACKAGE / "grammars", _PACKAGE.parent / "grammars") if p.is_dir()), _PACKAGE.parent / "grammars"
)


class Grammar(Constraint):
    """Output must be a sentence of the Lark grammar `source` from rule `start` (Earley semantics).

    Limits keep pathological grammars from hanging or eating memory: `max_columns` distinct parse states,
    `max_items` Earley items in one state, `max_lexer_states` states in one lexer, `max_terminal_states` DFA
    states per terminal; each raises `StateLimitError` naming what grew.
    """

    def __init__(
        self,
        source: str,
        start: str = "start",
        *,
        max_columns: int = 1_000_000,
        max_items: int = 100_000,
        max_lexer_states: int = 50_000,
        max_terminal_states: int = 10_000,
    ) -> None:
        super().__init__()
        self.source = source
        self.start_rule = start
        terminals, ignore, cfg = _load(source, start, max_terminal_states)
        self._setup(
            terminals, ignore, cfg, max_columns=max_columns, max_items=max_items, max_lexer_states=max_lexer_states
        )

    @classmethod
    def from_parts(
        cls,
        terminals: list[Terminal],
        rules: list[tuple[str, list[str]]],
        start: str,
        *,
        ignore: tuple[int, ...] = (),
        source: str = "",
        max_columns: int = 1_000_000,
        max_items: int = 100_000,
        max_lexer_states: int = 50_000,
    ) -> Grammar:
        """A grammar built in code rather than written in Lark: compiled terminals, BNF rules `(lhs, [symbol
        names])` over the terminals' names and nonterminals, and the indices of ignored terminals. Constraints
        that compile to grammars (JSON Schema) come this way, skipping Lark's loader."""
        grammar = cls.__new__(cls)
        grammar._init_parts(
            terminals,
            rules,
            start,
            ignore=ignore,
            source=source,
            max_columns=max_columns,
            max_items=max_items,
            max_lexer_states=max_lexer_states,
        )
        return grammar

    def _init_parts(
        self,
        terminals: list[Terminal],
        rules: list[tuple[str, list[str]]],
        start: str,
        *,
        ignore: tuple[int, ...] = (),
        source: str = "",
        **limits,
    ) -> None:
        Constraint.__init__(self)
        self.source = source
        self.start_rule = start
        self._setup(terminals, ignore, CFG.build([t.name for t in terminals], rules, start), **limits)

    def _setup(self, terminals: list[Terminal], ignore: tuple[int, ...], cfg: CFG, **limits) -> None:
        self.terminals, self.ignore, self.cfg = terminals, ignore, cfg
        self.limits = limits
        check_guards(cfg, terminals, ignore)
        self._parser = GrammarParser(terminals, ignore, cfg, **limits)

    @classmethod
    def from_file(cls, path: str | Path, start: str = "start", **limits) -> Grammar:
        """A grammar read from a `.lark` file."""
        path = Path(path)
        if not path.exists():
            raise GrammarError(f"grammar file {str(path)!r} does not exist")
        return cls(path.read_text(encoding="utf-8"), start, **limits)

    @classmethod
    def shipped(cls, name: str, start: str = "start", **limits) -> Grammar:
        """One of the grammars shipped in `grammars/` by name (`json`, `sqlite`, `arithmetic`, ...)."""
        path = GRAMMARS_DIR / f"{name}.lark"
        if not path.exists():
            have = sorted(p.stem for p in GRAMMARS_DIR.glob("*.lark"))
            raise GrammarError(f"no shipped grammar {name!r}; shipped: {', '.join(have)}")
        return cls.from_file(path, start, **limits)

    def __repr__(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"Grammar({first[:40]!r}..., start={self.start_rule!r})"

    def _compile(self, vocab: TokenVocabulary) -> GrammarMatcher:
        # the parser knows no vocabulary: every matcher (and `check`) shares its chart and lexer tables
        return GrammarMatcher(self._parser, vocab)

    def check(self, text: str | bytes) -> bool:
        return self._parser.accepts(text.encode("utf-8") if isinstance(text, str) else text)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "grammar",
            "start": self.start_rule,
            "terminals": len(self.terminals),
            "rules": len(self.cfg.rules) - 1,
        }


def _load(source: str, start: str, max_terminal_states: int) -> tuple[list[Terminal], tuple[int, ...], CFG]:
    """Lark's normalised grammar: compiled terminals, the ignored ones' indices, and the BNF rules."""
    terminals, ignore, rules = load_parts(source, start, max_terminal_states)
    return terminals, ignore, CFG.build([t.name for t in terminals], rules, start)


def load_parts(
    source: str, start: str, max_terminal_states: int = 10_000
) -> tuple[list[Terminal], tuple[int, ...], list[tuple[str, list[str]]]]:
    """A Lark grammar as `Grammar.from_parts` takes it: compiled terminals, the ignored ones' indices, and BNF
    rules `(lhs, [symbol names])` (Lark's names, e.g. `__rule_star_0` for an EBNF repeat). Constraints that
    specialise a shipped grammar (SQL over a database's names) start here."""
    from lark.exceptions import LarkError

    if not isinstance(source, str):
        raise TypeError(f"Grammar takes the grammar text as a str, not {type(source).__name__}")
    try:
        lark_terminals, lark_rules, ignore_names = _lark_compile(source, start)
    except KeyError as e:  # Lark reports an unknown start rule this way
        raise GrammarError(f"the grammar has no rule {e.args[0]!r} to start from") from e
    except (LarkError, ValueError, AssertionError) as e:
        raise GrammarError(f"Lark rejects the grammar: {e}") from e
    except Exception as e:  # a terminal regex Lark's regex engine rejects (`re.error` or `regex.error`)
        if type(e).__name__ != "error":
            raise
        raise GrammarError(f"Lark rejects the grammar: invalid terminal regex: {e}") from e
    terminals: list[Terminal] = []
    for term in lark_terminals:
        pattern = term.pattern
        if pattern is None:
            raise GrammarError(f"terminal {term.name} is declared without a pattern (%declare is not supported)")
        literal = type(pattern).__name__ == "PatternStr"
        terminals.append(
            compile_terminal(
                term.name,
                pattern.value,
                "".join(sorted(pattern.flags)),
                literal=literal,
                max_states=max_terminal_states,
            )
        )
    names = [t.name for t in terminals]
    index = {n: i for i, n in enumerate(names)}
    rules = []
    for rule in lark_rules:
        rhs = []
        for sym in rule.expansion:
            if sym.is_term and sym.name not in index:
                raise GrammarError(f"rule {rule.origin.name} uses terminal {sym.name}, which has no definition")
            rhs.append(sym.name)
        rules.append((rule.origin.name, rhs))
    if not any(lhs == start for lhs, _ in rules):
        raise GrammarError(f"the grammar has no rule {start!r} to start from")
    ignore = tuple(sorted(index[n] for n in ignore_names))
    return terminals, ignore, rules


def _lark_compile(source: str, start: str) -> tuple[Collection, list, list[str]]:
    """Lark's own grammar loader and normaliser (terminals, BNF rules, ignored terminal names), without the
    parser Lark would build on top: genlab has its own. Falls back to a full `lark.Lark` if Lark's internals
    move."""
    try:
        from lark.load_grammar import load_grammar
    except ImportError:
        pass
    else:
        try:
            grammar, _ = load_grammar(source, "<grammar>", [], False)
            return grammar.compile([start], set())
        except TypeError:  # another signature: take the public road
            pass
    import lark

    parsed = lark.Lark(source, start=start, parser="earley", lexer="dynamic")
    return parsed.terminals, parsed.rules, parsed.ignore_tokens


class GrammarMatcher(Matcher[tuple[Thread, ...]]):
    """A grammar on a vocabulary. States are tuples of parser threads (see `automata/parser.py`)."""

    MASK_CACHE_BYTES = 64 << 20
    BOOL_MASKS = 32  # `mask` results kept unpacked, most recent first (samplers ask again for shared states)
    # compile-time warm-up (`_warm`): at most this many seconds, and configurations explored
    WARM_SECONDS = 0.002
    WARM_CONFIGS = 128
    WARM_BATCH = 32  # lexer states walked per kernel call

    def __init__(self, parser: GrammarParser, vocab: TokenVocabulary) -> None:
        self.parser = parser
        self.vocab = vocab
        self.trie = TokenTrie.of(vocab)
        self._eos_bits = bitset.TokenBits(vocab.eos_ids)
        # Python containers: `allows` reads one entry per call, where numpy scalar indexing costs more
        self._eos_set = frozenset(vocab.eos_ids)
        self._text = vocab.text_list
        self._offsets = vocab.offset_list
        self._max_masks = max(16, self.MASK_CACHE_BYTES // (4 * bitset.n_words(vocab.size)))
        self._walks: OrderedDict[int, tuple] = OrderedDict()  # lexer state -> walk from the root
        self._masks: OrderedDict[Thread, np.ndarray] = OrderedDict()  # thread -> its mask (a bitset)
        self._bools: OrderedDict[tuple[Thread, ...], np.ndarray] = OrderedDict()  # state -> `mask(state)`
        self._steps: dict[tuple, tuple] = {}  # (state, token) -> next state
        self._slice = string_content_slice(vocab)
        self._whole = _Space(self.trie, self._slice.below, _WalkScratch.of(self.trie))
        self._outside_space: _Space | None = None
        self._slice_reps = slice_representatives(parser.lexer, self._slice.table)
        self._reached: dict[int, int] = {}  # lexer state -> its `slice_reach`
        self._config_stamp = np.zeros(64, np.int64)  # per configuration, its walk stamp in `_continue`
        # the one group of a root walk: its start state, stamp and slice reach, rewritten per walk
        self._one_start, self._one_stamp, self._one_reach = (
            np.zeros(1, np.int32),
            np.zeros(1, np.int64),
            np.zeros(1, np.int32),
        )
        self._warm()

    def _warm(self) -> None:
        """Do at compile time, within `WARM_SECONDS`, the lazy work the first masks of a generation would meet:
        the parser's first configurations (`GrammarParser.explore`, shared by the grammar's matchers), then the
        walks from the trie root of the lexer states they reach, in the order they were made, `WARM_BATCH` to a
        kernel call, then the masks of those configurations at a lexeme's start, the start's first; a grammar limit
        met on the way ends it without an error. Only where the work happens changes, not any mask: a mask reads
        the same caches it would have filled itself."""
        deadline = time.perf_counter() + self.WARM_SECONDS
        self.parser.explore(self.WARM_CONFIGS, deadline)
        lexer = self.parser.lexer
        q = 0
        while q < lexer.n_states and time.perf_counter() < deadline:
            qs = np.arange(
                q, min(q + self.WARM_BATCH, lexer.n_states, q + self._max_masks - len(self._walks)), dtype=np.int32
            )
            if not len(qs):
                break
            self._root_walks(qs)
            q += len(qs)
        parser = self.parser
        try:
            for c in range(parser.configs.size):
                if time.perf_counter() > deadline or len(self._masks) >= self._max_masks:
                    break
                self._thread_mask((c, parser.config_start[c]))
        except StateLimitError:  # left for a generation that goes there to meet (the parser keeps whole steps)
            parser.sync()

    def _root_walks(self, qs: np.ndarray) -> None:
        """`_lexer_walk` for each lexer state in `qs` (none cached yet), in two kernel calls per walk space."""
        lexer, sl = self.parser.lexer, self._slice
        if sl.max_len:
            reach = slice_reaches(sl.table, sl.max_len, self._slice_reps, lexer.table, lexer.byte_class, qs)
        else:
            reach = np.zeros(len(qs), np.int32)
        self._reached.update(zip(qs.tolist(), reach.tolist()))
        outside = self._outside_only(reach)
        for space, pick in ((self._whole, ~outside), (self._outside() if outside.any() else None, outside)):
            if space is None or not pick.any():
                continue
            sub, sub_reach = qs[pick], reach[pick]
            levels, which = np.unique(sub_reach, return_inverse=True)
            bits = np.stack([self._slice.up_to(int(r)) for r in levels])
            outs = bits[which]
            ends = np.zeros(len(sub) + 1, np.int64)
            events = tuple(np.empty(4096, np.int32) for _ in range(3))
            done = 0
            while True:
                done += walk_roots(
                    *space.trie_arrays,
                    *lexer.walk_arrays,
                    sub[done:],
                    sub_reach[done:],
                    space.below,
                    STAMPS,
                    space.work.states,
                    outs[done:],
                    events[0],
                    events[1],
                    events[2],
                    ends[done:],
                    space.work.seen_stamp,
                    space.work.seen_state,
                )
                if done == len(sub):
                    break
                outs[done] = bits[which[done]]  # the state the buffers stopped: walked again, with room
                used = int(ends[done])
                grown = tuple(np.empty(2 * len(events[0]), np.int32) for _ in range(3))
                for old, new in zip(events, grown):
                    new[:used] = old[:used]
                events = grown
            nodes, states = events[0], events[1]
            for k, q in enumerate(sub.tolist()):
                out = outs[k]
                out.flags.writeable = False
                a, b = int(ends[k]), int(ends[k + 1])
                self._walks[q] = (out, nodes[a:b], states[a:b], space)

    # --- the contract -----------------------------------------------------------------------------------------

    def start(self) -> tuple[Thread, ...]:
        return self.parser.start()

    def advance(self, state: tuple[Thread, ...], token_id: int) -> tuple[Thread, ...] | None:
        if token_id in self._eos_set:
            return state if self.parser.is_final(state) else None
        nxt = self._step(state, token_id)
        return nxt or None

    def allows(self, state: tuple[Thread, ...], token_id: int) -> bool:
        if token_id in self._eos_set:
            return self.parser.is_final(state)
        cached = self._steps.get((state, token_id))
        if cached is not None:
            return bool(cached)
        if not self._text[token_id]:
            return False
        off = self._offsets
        return bool(self.parser.feed(state, self.vocab.data, off[token_id], off[token_id + 1], first_only=True))

    def is_final(self, state: tuple[Thread, ...]) -> bool:
        return self.parser.is_final(state)

    def mask(self, state: tuple[Thread, ...]) -> np.ndarray:
        out = self._bools.get(state)
        if out is not None:
            self._bools.move_to_end(state)
            return out
        out = self._bools[state] = bitset.unpack(self._bits(state), self.vocab.size)
        out.flags.writeable = False
        if len(self._bools) > self.BOOL_MASKS:
            self._bools.popitem(last=False)
        return out

    def fill_bitmask(self, state: tuple[Thread, ...], out: np.ndarray) -> None:
        self._union(state, bitset.words_of(out, self.vocab.size))

    def _bits(self, state: tuple[Thread, ...]) -> np.ndarray:
        """The state's mask as a bitset (a thread's own is cached, read-only)."""
        if len(state) == 1:
            return self._thread_mask(state[0])
        return self._union(state, bitset.empty(self.vocab.size))

    def _union(self, state: tuple[Thread, ...], words: np.ndarray) -> np.ndarray:
        """Write the union of the state's thread masks into `words` (nothing for a dead state) and return it."""
        if len(state) == 1:
            words[:] = self._thread_mask(state[0])
        elif not state:
            words[:] = 0
        else:
            np.bitwise_or(self._thread_mask(state[0]), self._thread_mask(state[1]), out=words)
            for thread in state[2:]:
                words |= self._thread_mask(thread)
        return words

    # --- internals ----------------------------------------------------------------------------------------------

    def _step(self, state, token_id: int) -> tuple[Thread, ...]:
        key = (state, token_id)
        nxt = self._steps.get(key)
        if nxt is None:
            if not self._text[token_id]:
                nxt = ()
            else:
                off = self._offsets
                nxt = self.parser.feed(state, self.vocab.data, off[token_id], off[token_id + 1])
            if len(self._steps) > 200_000:
                self._steps.clear()
            self._steps[key] = nxt
        return nxt

    def _thread_mask(self, thread: Thread) -> np.ndarray:
        """A thread's mask, as a read-only bitset (cached)."""
        mask = self._masks.get(thread)
        if mask is not None:
            self._masks.move_to_end(thread)
            return mask
        config, q = thread
        base, nodes, states, space = self._lexer_walk(q)
        final = self.parser.is_final((thread,))
        if len(nodes) == 0 and not final:  # nothing below the lexeme's end: the lexer walk is the mask
            mask = base
        else:
            mask = base.copy()
            self._continue(config, nodes, states, mask, space)
            self._eos_bits.write(mask, final)
            mask.flags.writeable = False
        self._masks[thread] = mask
        if len(self._masks) > self._max_masks:
            self._masks.popitem(last=False)
        return mask

    def _lexer_walk(self, q: int) -> tuple:
        """The walk from the trie root from lexer state `q`: it depends on the lexer state only. Where `q` keeps
        every string-content token alive, the walk starts from them and visits the trie of the other tokens
        only; where it keeps those up to some length alive, from those, skipping the subtrees that hold only such
        tokens. Returns (allowed tokens as a bitset, lexeme-end nodes, their lexer states, the walk space they are
        in)."""
        hit = self._walks.get(q)
        if hit is not None:
            self._walks.move_to_end(q)
            return hit
        reach = self._reach(q)
        out = self._slice.up_to(reach) if reach else bitset.empty(self.vocab.size)
        space = self._outside() if self._outside_only(reach) else self._whole
        nodes, states = self._root_walk(q, out, reach, space)
        out.flags.writeable = False  # masks share it (see `_thread_mask`)
        hit = self._walks[q] = (out, nodes, states, space)
        if len(self._walks) > self._max_masks:
            self._walks.popitem(last=False)
        return hit

    def _reach(self, q: int) -> int:
        """How long the string-content strings are that lexer state `q` keeps alive, every one of them (checked
        once per state; `slice_reach`)."""
        hit = self._reached.get(q)
        if hit is None:
            lexer, sl = self.parser.lexer, self._slice
            hit = self._reached[q] = (
                int(slice_reach(sl.table, sl.max_len, self._slice_reps, lexer.table, lexer.byte_class, q))
                if sl.max_len
                else 0
            )
        return hit

    def _outside_only(self, reach):
        """Whether a walk with slice reach `reach` (an int, or an array of them) takes every slice token whole
        and walks the trie of the others only."""
        return (reach > 0) & (reach == self._slice.max_len)

    def _outside(self) -> _Space:
        """The walk space of the tokens outside the string-content slice (built on first use)."""
        if self._outside_space is None:
            trie, below = outside_trie(self.vocab)
            self._outside_space = _Space(trie, below, _WalkScratch.of(trie))
        return self._outside_space

    def _root_walk(self, q: int, out: np.ndarray, reach: int, space: _Space) -> tuple[np.ndarray, np.ndarray]:
        """`walk_lexer` from the root of `space`'s trie in lexer state `q`, skipping the subtrees of slice tokens
        of at most `reach` bytes (0: none): (nodes where a lexeme can end, their lexer states). The shared event
        buffers grow when a walk overflows them."""
        work, start, stamp, skip = space.work, self._one_start, self._one_stamp, self._one_reach
        start[0], skip[0] = q, reach
        while True:
            ev_nodes, ev_states, ev_groups = work.events
            stamp[0] = new_stamp()
            n = walk_lexer(
                *space.trie_arrays,
                *self.parser.lexer.walk_arrays,
                start,
                stamp,
                _NO,
                skip,
                space.below,
                _ROOT,
                _ONE_GROUP,
                work.states,
                out,
                ev_nodes,
                ev_states,
                ev_groups,
                work.seen_stamp,
                work.seen_state,
            )
            if n == 0:
                return _NONE, _NONE
            if n > 0:
                return ev_nodes[:n].copy(), ev_states[:n].copy()
            # walked again from scratch under a fresh stamp, so what the stopped walk marked cannot prune it
            size = 2 * len(ev_nodes)
            work.events = (np.empty(size, np.int32), np.empty(size, np.int32), np.empty(size, np.int32))

    def _continue(self, config: int, nodes: np.ndarray, states: np.ndarray, out: np.ndarray, space: _Space) -> None:
        """Go on below each node where a lexeme of `config` can end, in the configurations it leads to, level after
        level, in one compiled loop (`walk_continuations`, which resolves lexeme ends it has not met yet); it comes
        back only when the parser must build a lexer start or make room, and resumes where it stopped."""
        parser, work = self.parser, space.work
        front = (nodes, states, np.full(len(nodes), config, np.int32))
        n = len(nodes)
        first = new_stamp()  # configurations' stamps from earlier masks are below it: unset for this one
        while True:
            if len(self._config_stamp) < len(parser.start_array):
                grown = np.zeros(2 * len(parser.start_array), np.int64)
                grown[: len(self._config_stamp)] = self._config_stamp
                self._config_stamp = grown
            table = parser.table
            status, n, *front = walk_continuations(
                *front,
                n,
                table.keys,
                table.offs,
                table.counts,
                table.flat,
                table.sizes,
                parser.start_array,
                parser.reset_array,
                self._config_stamp,
                first,
                STAMPS,
                *space.trie_arrays,
                *parser.lexer.walk_arrays,
                space.below,
                work.states,
                out,
                work.seen_stamp,
                work.seen_state,
                continuation.EVENTS,
                *parser.resolution_arrays(),
            )
            if status == DONE:
                break
            parser.recover(status)
        parser.sync()


# Walk arguments that never change (nothing writes them; left writeable, so the kernel has one signature): the
# root as the one root of one group, no boundaries, no reset.
_ROOT = np.zeros(1, np.int32)
_ONE_GROUP = np.array([0, 1], np.int64)
_NONE = np.zeros(0, np.int32)
_NO = np.zeros(1, np.bool_)


@dataclass(eq=False)
class _Space:
    """A trie that mask walks go through, with its slice flags (`Slice.below`) and work arrays: the whole
    vocabulary's, or the trie of the tokens outside the string-content slice."""

    trie: TokenTrie
    below: np.ndarray
    work: _WalkScratch

    def __post_init__(self) -> None:
        t = self.trie
        # `walk_lexer`'s trie arguments, in its order, unpacked into every walk call
        self.trie_arrays = (
            t.byte,
            t.depth,
            t.subtree_end,
            t.token_start,
            t.token_end,
            t.order,
            t.bytes_below,
            t.child_bytes,
            t.subtree_tokens_end,
        )


@dataclass(eq=False)
class _WalkScratch:
    """Work arrays of `walk_lexer` for one trie, shared by every grammar matcher on its vocabulary (calls do not
    overlap): a fresh grammar walks in memory the process has already touched, instead of faulting in pages the
    size of the trie on its first masks. `events` grows when a walk overflows it."""

    states: np.ndarray  # the lexer state at each depth of the walk
    events: tuple[np.ndarray, np.ndarray, np.ndarray]  # boundary nodes, states, groups
    seen_stamp: np.ndarray
    seen_state: np.ndarray

    @classmethod
    def of(cls, trie: TokenTrie) -> _WalkScratch:
        work = _SCRATCH.get(trie)
        if work is None:
            n = max(trie.n_nodes, 1)
            events = (np.empty(4096, np.int32), np.empty(4096, np.int32), np.empty(4096, np.int32))
            work = _SCRATCH[trie] = cls(
                np.empty(trie.max_depth + 1, np.int64), events, np.zeros(n, np.int64), np.zeros(n, np.int32)
            )
        return work


_SCRATCH: weakref.WeakKeyDictionary[TokenTrie, _WalkScratch] = weakref.WeakKeyDictionary()
