"""Grammar terminals as byte DFAs, and lexers: one product DFA over the terminals a parser state allows.

A terminal is a regex (or literal) compiled by `regex.py`, plus an optional *guard*: a trailing negative
lookahead of one ASCII character class, `(?![A-Za-z0-9_])`, meaning "this lexeme may not be followed by such a
character". Guards let keywords and identifiers keep apart where whitespace between lexemes is optional.

The `Lexer` runs every allowed terminal at once: a state is the tuple of the live (terminal, terminal-state)
pairs, built lazily, and it records which terminals accept there. Each (allowed set, guard of the previous
lexeme) has its own start state, whose row leaves out the guarded bytes. Every state is live, since each
terminal DFA holds only live states.

`walk_lexer` is the mask kernel: it walks the trie under given roots from one lexer state, marks the tokens
whose bytes stay inside the lexeme, and reports the nodes where a terminal accepts and some child byte may
follow it (lexeme boundaries worth going on from), so the parser can continue the walk below them in its next
state.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from numba import njit

from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_regex
from genlab.errors import ConstraintError, StateLimitError, UnsupportedConstraintError
from genlab.trie import BULK_DEPTH, extend_run, self_loops, write_run

try:  # Python 3.11+
    from re import _constants as C
    from re import _parser
except ImportError:  # Python 3.10
    import sre_constants as C
    import sre_parse as _parser


@dataclass(frozen=True, eq=False)
class Terminal:
    """A compiled terminal: its name, the DFA of its strings, and the bytes its guard forbids after it."""

    name: str
    dfa: ByteDFA
    guard: np.ndarray  # bool[256]: True where the next byte may not be (all False: no guard)

    @property
    def first_bytes(self) -> np.ndarray:
        """bool[256]: the bytes some string of the terminal starts with."""
        return self.dfa.transitions[self.dfa.start] >= 0


def compile_terminal(name: str, pattern: str, flags: str = "", *, literal: bool = False,
                     max_states: int = 10_000) -> Terminal:
    """Compile a terminal written as a Lark literal (`literal=True`) or regex, with Lark's flags (`i`, `s`, ...)."""
    body, guard_text = (re.escape(pattern), None) if literal else _split_guard(pattern)
    wrapped = f"(?{flags}:{body})" if flags else body
    where = f"terminal {name}"
    try:
        dfa = compile_regex(wrapped, max_states=max_states)
    except ConstraintError as e:
        raise type(e)(f"{where}: {e}") from e
    if dfa.accepting[dfa.start]:
        raise ConstraintError(f"{where} ({pattern!r}) matches the empty string; terminals must consume text")
    guard = np.zeros(256, np.bool_)
    if guard_text is not None:
        guard = _guard_bytes(where, guard_text, flags)
    return Terminal(name, dfa, guard)


def _split_guard(pattern: str) -> tuple[str, str | None]:
    """(pattern without a trailing `(?!X)` on one character class X, X) or (pattern, None) when there is none."""
    if not pattern.endswith(")"):
        return pattern, None
    i = pattern.rfind("(?!")
    while i >= 0:
        inner, head = pattern[i + 3 : -1], pattern[:i]
        try:
            items = list(_parser.parse(inner))
            re.compile(head)
        except (re.error, OverflowError, RecursionError):
            items = []
        if len(items) == 1 and items[0][0] in (C.LITERAL, C.NOT_LITERAL, C.IN, C.CATEGORY, C.ANY) and head:
            return head, inner
        i = pattern.rfind("(?!", 0, i)
    return pattern, None


def _guard_bytes(where: str, cls: str, flags: str) -> np.ndarray:
    """bool[256] of the ASCII bytes the guard class matches; non-ASCII classes are refused (not byte-exact)."""
    row = _guard_row(cls, flags)
    if (row[0x80:] >= 0).any():
        raise UnsupportedConstraintError(
            f"{where}: the trailing guard (?!{cls}) matches non-ASCII characters; guards must be ASCII classes "
            "(write e.g. (?![A-Za-z0-9_]) instead of (?!\\w))"
        )
    guard = np.zeros(256, np.bool_)
    guard[:0x80] = row[:0x80] >= 0
    return guard


@functools.lru_cache(maxsize=256)
def _guard_row(cls: str, flags: str) -> np.ndarray:
    """The first-byte row of a guard class's DFA (grammars repeat one guard on many terminals)."""
    dfa = compile_regex(f"(?{flags}:{cls})" if flags else cls)
    return dfa.transitions[dfa.start]


class Lexer:
    """One product DFA shared by every terminal set of a grammar, built lazily and capped.

    A state is the tuple of live (terminal, terminal state) pairs, interned once for the whole grammar, so
    lexers for different allowed sets meet in the same states as soon as their surviving terminals agree (after
    a letter, "inside a name" is one state whatever keywords were allowed). Each allowed set and guard gets its
    own start state, never re-entered, so "nothing read yet" stays recognisable. Rows are computed per byte
    class (bytes every terminal treats alike), and only for states reachable from the starts asked for.
    """

    def __init__(self, terminals: list[Terminal], max_states: int) -> None:
        self.terminals = terminals
        self.max_states = max_states
        tables = [t.dfa.transitions for t in terminals]
        # byte classes: bytes whose column is the same in every terminal's table. Columns are compared by two
        # random 64-bit projections of all the tables' rows (distinct columns collide with odds ~2^-128)
        rng = np.random.default_rng(0x5EED)
        keys = np.zeros((2, 256), np.uint64)
        for tab in tables:
            weights = rng.integers(1, 2**63, size=(2, tab.shape[0]), dtype=np.uint64)
            keys += weights @ (tab.astype(np.int64) + 1).astype(np.uint64)
        _, first, self.byte_class = np.unique(keys.T.copy().view([("a", np.uint64), ("b", np.uint64)]).ravel(),
                                              return_index=True, return_inverse=True)
        self.byte_class = self.byte_class.ravel()
        self.class_rep = first  # one byte per class
        self._class_tables = [np.ascontiguousarray(tab[:, first]) for tab in tables]
        self._index: dict[tuple, int] = {}
        self._keys: list[tuple] = []
        self._rows: list[np.ndarray] = []  # per state: next state per byte class
        self._single_rows: dict[int, np.ndarray] = {}  # terminal -> rows of its states alone (see `_single`)
        self.accepts: list[tuple[int, ...]] = []  # terminal ids accepting in each state
        self._table_buf = np.zeros((0, 256), np.int32)
        self._accepting_buf = np.zeros(0, np.bool_)
        self._loops_buf = np.zeros((0, 4), np.uint64)
        self._dead_end_buf = np.zeros(0, np.bool_)  # states that read no further byte (a lexeme that must end)
        self.table, self.accepting, self._loops = self._table_buf, self._accepting_buf, self._loops_buf
        self.dead_end = self._dead_end_buf

    @property
    def n_states(self) -> int:
        return len(self._keys)

    def key(self, state: int) -> tuple:
        """The live (terminal, terminal state) pairs of `state`; () for a start state."""
        key = self._keys[state]
        return () if key and key[0] == "start" else key

    def start(self, ids: frozenset[int], guard: np.ndarray) -> int:
        """The start state for a lexeme of one of the terminals `ids`, whose first byte is not in `guard`."""
        key = ("start", tuple(sorted(ids)), guard.tobytes())
        s = self._index.get(key)
        if s is None:
            pairs = tuple((t, self.terminals[t].dfa.start) for t in sorted(ids))
            s = self._intern(key, ())
            self._rows.append(self._expand(pairs))  # every state before s is expanded: row s lands at index s
            self._grow(forbid=(s, guard))
        return s

    def _intern(self, key: tuple, accepts: tuple[int, ...]) -> int:
        if len(self._keys) >= self.max_states:
            self._too_many()
        s = self._index[key] = len(self._keys)
        self._keys.append(key)
        self.accepts.append(accepts)
        return s

    def _too_many(self) -> None:
        raise StateLimitError(
            f"the grammar's lexer needs more than {self.max_states} states; raise max_lexer_states or simplify "
            "the terminals"
        )

    def _state(self, pairs: tuple) -> int:
        s = self._index.get(pairs)
        if s is None:
            s = self._intern(pairs, tuple(t for t, q in pairs if self.terminals[t].dfa.accepting[q]))
        return s

    def _expand(self, pairs: tuple) -> np.ndarray:
        """Next state per byte class from the live pairs `pairs` (-1: every terminal dies)."""
        if not pairs:
            return np.full(len(self.class_rep), -1, np.int32)
        if len(pairs) == 1:  # the common case: one terminal left
            t, q = pairs[0]
            return self._single(t)[q]
        terms = [t for t, _ in pairs]
        columns = zip(*[self._class_tables[t][q].tolist() for t, q in pairs])  # one tuple per byte class
        found: dict[tuple, int] = {}
        out = []
        for col in columns:
            nxt = found.get(col)
            if nxt is None:
                live = tuple((t, q) for t, q in zip(terms, col) if q >= 0)
                nxt = found[col] = self._state(live) if live else -1
            out.append(nxt)
        return np.array(out, np.int32)

    def _single(self, t: int) -> np.ndarray:
        """Rows (per terminal state, next lexer state per byte class) of the states where terminal `t` alone is
        live: made for all of its states at once, the first time it is the only one left (inside a long string
        or number, a state at a time would cost a Python step per byte of the lexeme)."""
        rows = self._single_rows.get(t)
        if rows is None:
            dfa = self.terminals[t].dfa
            if len(self._keys) + dfa.n_states > self.max_states:
                self._too_many()
            ids = np.empty(dfa.n_states, np.int32)
            index, keys, accepts = self._index, self._keys, self.accepts
            for q, accepting in enumerate(dfa.accepting.tolist()):
                key = ((t, q),)
                s = index.get(key)
                if s is None:
                    s = index[key] = len(keys)
                    keys.append(key)
                    accepts.append((t,) if accepting else ())
                ids[q] = s
            moves = self._class_tables[t]
            rows = self._single_rows[t] = np.where(moves >= 0, ids[np.maximum(moves, 0)], -1).astype(np.int32)
        return rows

    def _grow(self, forbid: tuple[int, np.ndarray]) -> None:
        """Expand every state found but not yet expanded, then extend the byte-level tables."""
        done = len(self.table)
        rows, keys, single = self._rows, self._keys, self._single_rows
        while len(rows) < len(keys):
            key = keys[len(rows)]
            if len(key) == 1 and key[0][0] in single:
                rows.append(single[key[0][0]][key[0][1]])
            else:
                rows.append(self._expand(key))
        new = np.stack(self._rows[done:])[:, self.byte_class].astype(np.int32)
        start, guard = forbid
        if guard.any():
            new[start - done, guard] = -1
        n = len(self._keys)
        if n > len(self._table_buf):  # grow by doubling: tables are views of buffers, so a growth copies rarely
            cap = max(2 * len(self._table_buf), n, 64)
            self._table_buf = np.concatenate([self._table_buf, np.full((cap - len(self._table_buf), 256), -1,
                                                                       np.int32)])
            self._accepting_buf = np.concatenate([self._accepting_buf,
                                                  np.zeros(cap - len(self._accepting_buf), np.bool_)])
            self._loops_buf = np.concatenate([self._loops_buf, np.zeros((cap - len(self._loops_buf), 4), np.uint64)])
            self._dead_end_buf = np.concatenate([self._dead_end_buf,
                                                 np.zeros(cap - len(self._dead_end_buf), np.bool_)])
        self._table_buf[done:n] = new
        self._accepting_buf[done:n] = [bool(a) for a in self.accepts[done:]]
        self._dead_end_buf[done:n] = (new < 0).all(axis=1)
        loops = self_loops(new - done)  # self_loops compares against row numbers from 0
        loops[self._accepting_buf[done:n]] = 0
        self._loops_buf[done:n] = loops
        self.table = self._table_buf[:n]
        self.accepting = self._accepting_buf[:n]
        self.dead_end = self._dead_end_buf[:n]
        self._loops = self._loops_buf[:n]

    @property
    def loops(self) -> np.ndarray:
        """[n_states, 4] uint64: per non-accepting state, the 256-bit set of bytes that keep it in place (a
        subtree whose bytes are all in it is allowed whole and holds no lexeme boundary)."""
        return self._loops


@njit(cache=True)
def run_lexeme(table, accepting, data, pos, end, state):
    """Read `data[pos:end]` from `state` until a terminal accepts: (state, position after the last byte read).

    State -1 when a byte is dead; stops early right after a byte that lands in an accepting state.
    """
    while pos < end:
        state = table[state, data[pos]]
        pos += 1
        if state < 0:
            return -1, pos
        if accepting[state]:
            return state, pos
    return state, pos


@njit(cache=True)
def walk_lexer(byte, depth, subtree_end, token_start, token_end, order, bytes_below, child_bytes,
               subtree_tokens_end, table, accepting, loops, follow, start, roots, states, out, event_nodes,
               event_states, seen_stamp, seen_state, stamp):
    """Walk the trie below each node in `roots` from lexer state `start`: mark in `out` every token whose bytes
    the lexer reads, and list the nodes where it accepts (a lexeme may end there) and that have a child byte
    allowed after the lexeme (`follow`, per state), with their states.

    `states` is scratch (int64, max depth + 1); `event_nodes`/`event_states` (int32) receive the boundaries;
    returns how many there are, or -1 when they do not fit (call again with larger buffers). `seen_stamp` and
    `seen_state` (one per node) remember the last (node, state) explored under `stamp`: a subtree already
    explored from the same node in the same state is skipped (roots nested in roots would otherwise re-walk
    it), so callers use one stamp per lexer context and a fresh one when the context changes. A subtree whose
    bytes all keep a non-accepting state in place (`loops`) is marked whole without a visit.
    """
    n_events = 0
    run_start = 0
    run_end = 0  # allowed tokens order[run_start:run_end] not yet written to `out` (trie.extend_run)
    for r in roots:
        if seen_stamp[r] == stamp and seen_state[r] == start:
            continue
        seen_stamp[r] = stamp
        seen_state[r] = start
        states[depth[r]] = start
        i = r + 1
        stop = subtree_end[r]
        while i < stop:
            d = depth[i]
            s = table[states[d - 1], byte[i]]
            if s < 0 or (seen_stamp[i] == stamp and seen_state[i] == s):
                i = subtree_end[i]
                continue
            whole = False
            if d <= BULK_DEPTH and not accepting[s] and (loops[s, 0] | loops[s, 1] | loops[s, 2] | loops[s, 3]) != 0:
                whole = True
                for w in range(4):
                    if bytes_below[i, w] & ~loops[s, w]:
                        whole = False
                        break
            run_start, run_end = extend_run(order, out, run_start, run_end, token_start[i],
                                            subtree_tokens_end[i] if whole else token_end[i])
            if whole:
                i = subtree_end[i]
                continue
            seen_stamp[i] = stamp
            seen_state[i] = s
            states[d] = s
            # a boundary matters only below a node with a child byte that may follow the lexeme (`follow[s]`)
            if accepting[s] and ((child_bytes[i, 0] & follow[s, 0]) | (child_bytes[i, 1] & follow[s, 1])
                                 | (child_bytes[i, 2] & follow[s, 2]) | (child_bytes[i, 3] & follow[s, 3])) != 0:
                if n_events == event_nodes.shape[0]:
                    write_run(order, out, run_start, run_end)
                    return -1
                event_nodes[n_events] = i
                event_states[n_events] = s
                n_events += 1
            i += 1
    write_run(order, out, run_start, run_end)
    return n_events
