"""The incremental byte-level parser of a grammar: lexers over terminal DFAs feeding an interned Earley chart.

A parser *configuration* is (chart column, guard of the last lexeme); its lexer start state reads the
terminals the column expects plus the `%ignore` terminals (one product DFA serves every configuration). A
*thread* is (configuration, lexer state): where a parse is, mid-lexeme. A parser state is the sorted tuple of
its live threads, a value. Threads that add nothing are dropped: a lexeme that cannot go on, and one inside an
ignored `C+` terminal (the thread its end spawns may read more of it).

Reading a byte moves every thread's lexer; where a terminal accepts, the lexeme may end there (and the thread
also goes on, as the lexeme may continue): each accepting terminal spawns a thread at the start of the next
lexeme, in the configuration the chart reaches by scanning it (an ignored terminal leaves the column as it
is). So a terminal matches any of its strings, and lexical ambiguity (a lexeme that may end here or go on,
keywords that are prefixes of identifiers, `%ignore` between lexemes) never commits early. Parser work happens
only at lexeme ends and is memoised per (configuration, terminal).

Prefix property: each lexer state is live, each expected terminal leads to a chart column with a completion
(rules that derive nothing are dropped), and `check_guards` refuses grammars where a guard could forbid every
way to go on; so a thread is dead exactly when its lexer is.
"""

from __future__ import annotations

import time

import numpy as np

from genlab.automata.boundaries import (
    GROW_CONFIGS,
    GROW_TABLE,
    GUARD_BITS,
    NEED_START,
    BoundaryTable,
    Configurations,
    config_of,
    explore_configs,
)
from genlab.automata.bundle import ArrayBundle
from genlab.automata.earley import CFG, OK, Chart
from genlab.automata.lexer import Lexer, Terminal, run_lexeme
from genlab.automata.survivor import KINDS, survives
from genlab.errors import StateLimitError, UnsupportedConstraintError

Thread = tuple[int, int]  # (configuration, lexer state)


_LOADED = False


def _load_growth_kernels() -> None:
    """Run every growth path of the chart, the configurations and the boundary table once on tiny instances, so
    that numba loads those kernels with the first parser rather than in the middle of some later mask (a few
    milliseconds each, once per process)."""
    global _LOADED
    if _LOADED:
        return

    class TinyChart(Chart):
        INITIAL_COLUMNS, INITIAL_KEYS, INITIAL_SLOTS, INITIAL_ITEMS = 1, 1, 2, 1

    class TinyConfigurations(Configurations):
        INITIAL = 1

    class TinyTable(BoundaryTable):
        INITIAL = 2

    chart = TinyChart(CFG.build(["a"], [("S", ["a", "S"]), ("S", ["a"]), ("S", ["S", "a"])], "S"))
    column = 0
    for _ in range(4):
        column = chart.scan(column, 0)
    configs = TinyConfigurations()
    for k in range(3):
        configs.add_start(k, 0, k)
        configs.counts[0] = k + 1
        configs.make_room()
    TinyTable().make_room(4, 4)
    _LOADED = True


class GrammarParser:
    """Configurations, lexers and chart of one compiled grammar; parser states are tuples of threads."""

    EXPLORE_STEP = 16  # configurations `explore` makes per kernel call (it checks the time between calls)

    def __init__(
        self,
        terminals: list[Terminal],
        ignore: tuple[int, ...],
        cfg: CFG,
        *,
        max_columns: int = 1_000_000,
        max_items: int = 100_000,
        max_lexer_states: int = 50_000,
    ) -> None:
        _load_growth_kernels()
        self.terminals = terminals
        self.ignore = frozenset(ignore)
        self.chart = Chart(cfg, max_columns=max_columns, max_items=max_items)
        self._guard_ids: dict[bytes, int] = {}
        self.guards: list[np.ndarray] = []
        self._guard_id(np.zeros(256, np.bool_))  # guard 0: none
        self.term_guard = [self._guard_id(t.guard) for t in terminals]
        # ignored terminals of the form C+ (whitespace): a thread inside one adds nothing to the thread its
        # end spawns, which may read any number of them again, so it is dropped (fewer threads, same language)
        self._plus_ignored = {t for t in self.ignore if _is_plus(terminals[t].dfa) and not terminals[t].guard.any()}
        # those no rule uses: their end only ever leads back to the column they started in, unguarded (mask walks
        # restart there, see `walk_lexer`)
        in_rules = {sym for _, rhs in cfg.rules for sym in rhs if sym < cfg.n_terminals}
        self.lexer = Lexer(terminals, max_lexer_states, restart=frozenset(self._plus_ignored - in_rules))
        self._configs: dict[tuple[int, int], int] = {}  # (column, guard) -> id: a front cache of `configs.keys`
        self._starts: dict[tuple[int, int], int] = {}  # (expected-set id, guard) -> lexer start
        self._ignore_array = np.array(sorted(self.ignore), np.int64)
        # the configurations and the boundary table, as arrays that compiled mask walks read and extend
        # (`automata/boundaries.py`); Python lists mirror the configurations' columns, guards and lexer starts
        self.configs = Configurations()
        self.config_column: list[int] = []
        self.config_guard: list[int] = []
        self.config_start: list[int] = []
        self.table = BoundaryTable()
        self._term_guards = np.array(self.term_guard, np.int32)
        self._ignored = np.array([t in self.ignore for t in range(len(terminals))], np.bool_)
        self._ends_out = np.empty(2 * max(len(terminals), 1), np.int32)  # one lexeme end's configurations
        self._boundary: dict[tuple[int, int], tuple[int, ...]] = {}  # (configuration, terminal) -> configurations
        self._ends_at: dict[tuple[int, int], tuple[int, ...]] = {}  # (configuration, lexer state) -> configurations
        self._bundle = ArrayBundle(KINDS, self._survivor_arrays)  # what `survives` reads
        self._subsumed: dict[int, bool] = {}
        self._explored = (0, 0)  # where `explore` goes on: configuration, index among its terminals
        self.start_config = self.config(0, 0)
        # the table built and the kernel loaded now rather than in the first `allows` (no bytes: alive)
        survives(
            self._bundle.table(), np.zeros(0, np.uint8), 0, 0, self.start_config, self.config_start[self.start_config]
        )

    # --- configurations ---------------------------------------------------------------------------------------

    def _guard_id(self, guard: np.ndarray) -> int:
        key = guard.tobytes()
        g = self._guard_ids.get(key)
        if g is None:
            if len(self.guards) >= 1 << GUARD_BITS:
                raise UnsupportedConstraintError(
                    f"the grammar's terminals have more than {1 << GUARD_BITS} distinct lookahead guards"
                )
            g = self._guard_ids[key] = len(self.guards)
            self.guards.append(guard)
        return g

    @property
    def start_array(self) -> np.ndarray:
        """Per configuration, its lexer start state (for compiled walks)."""
        return self.configs.start

    @property
    def reset_array(self) -> np.ndarray:
        """Per configuration, whether no guard follows it (ignored whitespace leads back there)."""
        return self.configs.reset

    def config(self, column: int, guard: int) -> int:
        """The configuration id of (chart column, guard id), its lexer built on first use."""
        key = (column, guard)
        c = self._configs.get(key)
        if c is None:
            configs = self.configs
            self._start_of(column, guard)  # built here first, so the compiled lookup below does not stop for it
            while True:  # the compiled lookup: compiled mask walks make configurations too
                status, c, start = config_of(
                    column,
                    guard,
                    self.chart.expected_ids,
                    configs.column,
                    configs.guard,
                    configs.start,
                    configs.reset,
                    configs.keys,
                    configs.starts,
                    configs.counts,
                )
                if status == OK:
                    break
                self.recover(status)
            if c == len(self.config_column):  # the one configuration made: mirrored without reading the arrays
                self.config_column.append(column)
                self.config_guard.append(guard)
                self.config_start.append(start)
            elif c > len(self.config_column):
                self.sync()
            self._configs[key] = c
        return c

    def _start_of(self, column: int, guard: int) -> int:
        """The lexer start of configurations (column, guard): for the terminals the column expects, and the ignored
        ones, under the guard (one per expected set and guard, built on first use)."""
        key = (self.chart.expected_id(column), guard)
        start = self._starts.get(key)
        if start is None:
            start = self._starts[key] = self.lexer.new_start(
                self.chart.expected_array(column), self._ignore_array, self.lexer.guarded(self.guards[guard])
            )
            self.configs.add_start(key[0], guard, start)
        return start

    def after(self, config: int, terminal: int) -> tuple[int, ...]:
        """The configurations after a lexeme of `terminal` ends in `config` (none if the parser rejects it)."""
        key = (config, terminal)
        out = self._boundary.get(key)
        if out is None:
            column = self.config_column[config]
            guard = self.term_guard[terminal]
            nxt = []
            if terminal in self.ignore:
                nxt.append(self.config(column, guard))
            scanned = self.chart.scan(column, terminal)
            if scanned >= 0:
                nxt.append(self.config(scanned, guard))
            out = self._boundary[key] = tuple(nxt)
        return out

    def boundaries(self, config: int, state: int) -> tuple[int, ...]:
        """The configurations a lexeme ending in lexer state `state` of `config` can lead to (memoised; mask walks
        compute the same in compiled code, `boundaries.resolve_end`)."""
        out = self._ends_at.get((config, state))
        if out is None:
            found: list[int] = []
            for t in self.lexer.accepts(state):
                found.extend(self.after(config, t))
            out = self._ends_at[(config, state)] = tuple(found)
        return out

    def resolution_arrays(self) -> tuple:
        """What `continuation.walk_continuations` takes after `events` to resolve lexeme ends: a buffer, the
        lexer's pairs, the terminals' guards and ignored flags, the configurations, the chart's arrays."""
        lexer, configs = self.lexer, self.configs
        return (
            self._ends_out,
            lexer.members,
            lexer.lo,
            lexer.hi,
            lexer.pair_accepting,
            lexer.pair_term,
            self._term_guards,
            self._ignored,
            configs.column,
            configs.guard,
            configs.keys,
            configs.starts,
            configs.counts,
            *self.chart.arrays,
        )

    def explore(self, max_configs: int, deadline: float) -> None:
        """Make configurations breadth first from the start (by each expected, then each ignored terminal), with
        their chart columns and lexer starts, until `max_configs` exist, `time.perf_counter()` passes `deadline`,
        or the lexer or the chart comes near its limit: the parser work of a generation's first lexemes, done at
        compile time rather than inside its first masks. Goes on where an earlier call stopped. A limit met on
        the way stops it without an error (the chart and the lexer stay as they were before that step)."""
        lexer, chart, configs = self.lexer, self.chart, self.configs
        c, i = self._explored
        while (
            time.perf_counter() < deadline
            and 2 * lexer.n_states <= lexer.max_states
            and 2 * chart.n_columns <= chart.max_columns
        ):
            status, c, i = explore_configs(
                c,
                i,
                min(max_configs, configs.size + self.EXPLORE_STEP),
                self._ignore_array,
                self._term_guards,
                configs.column,
                configs.guard,
                configs.start,
                configs.reset,
                configs.keys,
                configs.starts,
                configs.counts,
                *chart.arrays,
            )
            if status == OK:
                if c >= configs.size or configs.size >= max_configs:
                    break
                continue
            try:
                self.recover(status)
            except StateLimitError:
                break
        self._explored = (c, i)
        self.sync()

    def recover(self, status: int) -> None:
        """After compiled resolution stopped with `status`: build the lexer start a configuration lacks, or make
        room (configurations, the boundary table, the chart)."""
        if status == NEED_START:
            column, guard = self.configs.counts[2:4].tolist()
            self._start_of(column, guard)
        elif status == GROW_CONFIGS:
            self.configs.make_room()
        elif status == GROW_TABLE:
            self.table.make_room(1, len(self._ends_out))
        else:
            self.chart.recover(status)

    def sync(self) -> None:
        """Mirror the chart columns and configurations made in compiled code since the last call."""
        self.chart.sync()
        n, have = self.configs.size, len(self.config_column)
        if n > have:
            configs = self.configs
            columns = configs.column[have:n].tolist()
            guards = configs.guard[have:n].tolist()
            self.config_column.extend(columns)
            self.config_guard.extend(guards)
            self.config_start.extend(configs.start[have:n].tolist())
            for c, key in enumerate(zip(columns, guards), have):
                self._configs[key] = c

    def subsumed(self, state: int) -> bool:
        """Whether a thread in lexer state `state` is covered by the thread its lexeme end spawns."""
        hit = self._subsumed.get(state)
        if hit is None:
            key = self.lexer.key(state)
            hit = self._subsumed[state] = (
                len(key) == 1 and key[0][0] in self._plus_ignored and bool(self.lexer.accepting[state])
            )
        return hit

    # --- parser states ------------------------------------------------------------------------------------------

    def start(self) -> tuple[Thread, ...]:
        return ((self.start_config, self.config_start[self.start_config]),)

    def is_final(self, threads: tuple[Thread, ...]) -> bool:
        """Whether the text so far is a sentence: some thread sits between lexemes in an accepting column."""
        return any(q == self.config_start[c] and self.chart.accepts(self.config_column[c]) for c, q in threads)

    def feed(
        self, threads: tuple[Thread, ...], data: np.ndarray, pos: int, end: int, first_only: bool = False
    ) -> tuple[Thread, ...]:
        """The threads after `data[pos:end]` (empty: dead). With `first_only`, stop at the first survivor and
        return a non-empty tuple that only says so (not a parser state)."""
        if first_only:
            return self._survivor(threads, data, pos, end)
        out: set[Thread] = set()
        seen: set[tuple[int, int, int]] = set()
        work = [(c, q, pos) for c, q in threads]
        lexer = self.lexer

        def go_on(c: int, q: int, p: int) -> None:  # a thread that still has bytes to read, once
            if (c, q, p) not in seen:
                seen.add((c, q, p))
                work.append((c, q, p))

        while work:
            c, q, p = work.pop()
            q, p = run_lexeme(lexer.table, lexer.byte_class, lexer.accepting, data, p, end, q)
            if q < 0:
                continue
            if lexer.dead_end[q] or self.subsumed(q):
                pass  # the lexeme cannot go on, or going on adds nothing: the threads its end spawns live on
            elif p == end:
                out.add((c, q))
            else:
                go_on(c, q, p)
            if lexer.accepting[q]:
                for c2 in self.boundaries(c, q):
                    if p == end:
                        out.add((c2, self.config_start[c2]))
                    else:
                        go_on(c2, self.config_start[c2], p)
        return tuple(sorted(out))

    def _survivor(self, threads: tuple[Thread, ...], data: np.ndarray, pos: int, end: int) -> tuple[Thread, ...]:
        """`feed(..., first_only=True)`: whether some thread lives through the bytes, one compiled call per thread
        (`survivor.survives`), which comes back here only to build a lexer start or make room."""
        bundle = self._bundle
        for c, q in threads:
            while True:
                status, alive = survives(bundle.table(), data, pos, end, c, q)
                if status == OK:
                    break
                self.recover(status)
            if alive:
                return ((c, q),)  # only a truth value, not a parser state
        return ()

    def _survivor_arrays(self) -> tuple[np.ndarray, ...]:
        """`survives`' arrays, in `survivor.SLOTS` order."""
        table = self.table
        return (
            *self.lexer.buffers,
            self.configs.start,
            self.configs.reset,
            table.keys,
            table.offs,
            table.counts,
            table.flat,
            table.sizes,
            *self.resolution_arrays(),
        )

    def accepts(self, data: bytes) -> bool:
        """Whether the whole of `data` is a sentence."""
        threads = self.start()
        if data:
            threads = self.feed(threads, np.frombuffer(data, np.uint8), 0, len(data))
        return bool(threads) and self.is_final(threads)


def _is_plus(dfa) -> bool:
    """Whether a terminal's language is C+ for a set of bytes C: two states, the same bytes into and around
    the accepting one."""
    if dfa.n_states != 2 or dfa.accepting[dfa.start]:
        return False
    acc = 1 - dfa.start
    into, around = dfa.transitions[dfa.start], dfa.transitions[acc]
    return bool(
        ((into == acc) == (around == acc)).all()
        and ((into == acc) | (into < 0)).all()
        and ((around == acc) | (around < 0)).all()
    )


def check_guards(cfg: CFG, terminals: list[Terminal], ignore: tuple[int, ...]) -> None:
    """Refuse grammars where a terminal's guard forbids every start of a terminal that may follow it, with no
    ignored terminal to go between: a parse could then reach a state with no way on (no prefix property)."""
    guarded = [t for t, term in enumerate(terminals) if term.guard.any()]
    if not guarded:
        return
    follow = cfg.follow_terminals()
    if ignore:  # an ignored lexeme may sit between any two
        ignored = set(ignore)
        for after in follow.values():
            after |= ignored
        for t in ignore:
            follow[t] = set(range(cfg.n_terminals)) | {-1}
    # 256-bit byte sets as Python ints: each terminal's first bytes, and the bytes its guard forbids
    first = [_bits(term.first_bytes) for term in terminals]
    forbidden = [_bits(term.guard) for term in terminals]

    def passes(a: int, b: int) -> bool:
        return b < 0 or first[b] & ~forbidden[a] != 0

    for a in guarded:
        for b in follow.get(a, ()):
            if passes(a, b) or any(passes(a, i) and passes(i, b) for i in ignore):
                continue
            raise UnsupportedConstraintError(
                f"terminal {terminals[a].name}'s guard forbids every first character of terminal "
                f"{terminals[b].name}, which may follow it, and no %ignore terminal can go between them"
            )


def _bits(flags: np.ndarray) -> int:
    """A bool[256] byte set as a 256-bit int."""
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")
