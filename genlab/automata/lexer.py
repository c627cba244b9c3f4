"""Grammar terminals as byte DFAs, and lexers: one product DFA over the terminals a parser state allows.

A terminal is a regex (or literal) compiled by `regex.py`, plus an optional *guard*: a trailing negative
lookahead of one ASCII character class, `(?![A-Za-z0-9_])`, meaning "this lexeme may not be followed by such a
character". Guards let keywords and identifiers keep apart where whitespace between lexemes is optional.

A `Lexer` runs every allowed terminal at once: a state is the tuple of the live (terminal, terminal-state)
pairs, built lazily from the start state, and it records which terminals accept there. State 0 reads the first
byte of a lexeme; a guard on the previous lexeme adds a start row with the guarded bytes removed
(`start_state`). Every state is live, since each terminal DFA holds only live states.

`walk_lexer` is the mask kernel: it walks the trie under given roots from one lexer state, marks the tokens
whose bytes stay inside the lexeme, and reports the nodes where a terminal accepts (lexeme boundaries), so the
parser can continue the walk below them in its next state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numba import njit

from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_regex
from genlab.errors import ConstraintError, StateLimitError, UnsupportedConstraintError
from genlab.trie import self_loops

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
    dfa = compile_regex(f"(?{flags}:{cls})" if flags else cls)
    row = dfa.transitions[dfa.start]
    if (row[0x80:] >= 0).any():
        raise UnsupportedConstraintError(
            f"{where}: the trailing guard (?!{cls}) matches non-ASCII characters; guards must be ASCII classes "
            "(write e.g. (?![A-Za-z0-9_]) instead of (?!\\w))"
        )
    guard = np.zeros(256, np.bool_)
    guard[:0x80] = row[:0x80] >= 0
    return guard


class Lexer:
    """The product DFA of a set of terminals (given by index into `terminals`), built lazily and capped."""

    def __init__(self, terminals: list[Terminal], ids: tuple[int, ...], max_states: int) -> None:
        self.terminals = terminals
        self.ids = ids
        self.max_states = max_states
        self._index: dict[tuple, int] = {}
        self._keys: list[tuple] = []
        self.accepts: list[tuple[int, ...]] = []  # terminal ids accepting in each state
        self._start_rows: dict[bytes, int] = {}
        # state 0 is the lexeme start; it is not interned, so a terminal DFA that loops back to its own start
        # state mid-lexeme gets a different state and "nothing read yet" stays recognisable
        start = tuple((t, terminals[t].dfa.start) for t in ids)
        self._keys.append(start)
        self.accepts.append(())
        rows: list[np.ndarray] = []
        while len(rows) < len(self._keys):  # breadth first: states are numbered as they are found
            rows.append(self._expand(len(rows)))
        self.table = np.vstack(rows).astype(np.int32)
        self.accepting = np.array([bool(a) for a in self.accepts], np.bool_)

    def _intern(self, key: tuple) -> int:
        s = self._index.get(key)
        if s is None:
            if len(self._keys) >= self.max_states:
                names = ", ".join(self.terminals[t].name for t in self.ids[:8])
                raise StateLimitError(
                    f"the lexer over terminals {names}{', ...' if len(self.ids) > 8 else ''} needs more than "
                    f"{self.max_states} states; raise max_lexer_states or simplify the terminals"
                )
            s = self._index[key] = len(self._keys)
            self._keys.append(key)
            self.accepts.append(tuple(t for t, q in key if self.terminals[t].dfa.accepting[q]))
        return s

    def _expand(self, s: int) -> np.ndarray:
        key = self._keys[s]
        if not key:
            return np.full(256, -1, np.int32)
        moves = np.stack([self.terminals[t].dfa.transitions[q] for t, q in key])  # [k, 256]
        columns, inverse = np.unique(moves.T, axis=0, return_inverse=True)
        targets = np.full(len(columns), -1, np.int32)
        for j, col in enumerate(columns):
            nxt = tuple((key[i][0], int(q)) for i, q in enumerate(col) if q >= 0)
            if nxt:
                targets[j] = self._intern(nxt)
        return targets[inverse.ravel()]

    @property
    def n_states(self) -> int:
        return self.table.shape[0]

    @property
    def loops(self) -> np.ndarray:
        """[n_states, 4] uint64: per non-accepting state, the 256-bit set of bytes that keep it in place (a
        subtree whose bytes are all in it is allowed whole and holds no lexeme boundary)."""
        if getattr(self, "_loops", None) is None or self._loops.shape[0] != self.n_states:
            self._loops = self_loops(self.table)
            self._loops[self.accepting] = 0
        return self._loops

    def start_state(self, guard: np.ndarray | None) -> int:
        """State 0, or a copy of its row without the guarded bytes (the lexeme after a guarded one)."""
        if guard is None or not guard.any():
            return 0
        key = guard.tobytes()
        s = self._start_rows.get(key)
        if s is None:
            row = self.table[0].copy()
            row[guard] = -1
            s = self._start_rows[key] = self.table.shape[0]
            self.table = np.vstack([self.table, row[None, :]])
            self.accepting = np.append(self.accepting, False)
            self.accepts.append(())
        return s


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
def walk_lexer(byte, depth, subtree_end, token_start, token_end, order, bytes_below, subtree_tokens_end,
               table, accepting, loops, start, roots, states, out, event_nodes, event_states, seen_stamp,
               seen_state, stamp):
    """Walk the trie below each node in `roots` from lexer state `start`: mark in `out` every token whose bytes
    the lexer reads, and list the nodes where it accepts (a lexeme may end there) with their states.

    `states` is scratch (int64, max depth + 1); `event_nodes`/`event_states` (int32) receive the boundaries;
    returns how many there are, or -1 when they do not fit (call again with larger buffers). `seen_stamp` and
    `seen_state` (one per node) remember the last (node, state) explored under `stamp`: a subtree already
    explored from the same node in the same state is skipped (roots nested in roots would otherwise re-walk
    it), so callers use one stamp per lexer context and a fresh one when the context changes. A subtree whose
    bytes all keep a non-accepting state in place (`loops`) is marked whole without a visit.
    """
    n_events = 0
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
            if not accepting[s]:
                whole = True
                for w in range(4):
                    if bytes_below[i, w] & ~loops[s, w]:
                        whole = False
                        break
                if whole:
                    for k in range(token_start[i], subtree_tokens_end[i]):
                        out[order[k]] = True
                    i = subtree_end[i]
                    continue
            seen_stamp[i] = stamp
            seen_state[i] = s
            states[d] = s
            for k in range(token_start[i], token_end[i]):
                out[order[k]] = True
            if accepting[s]:
                if n_events == event_nodes.shape[0]:
                    return -1
                event_nodes[n_events] = i
                event_states[n_events] = s
                n_events += 1
            i += 1
    return n_events
