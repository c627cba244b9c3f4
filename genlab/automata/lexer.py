"""Grammar terminals as byte DFAs, and lexers: one product DFA over the terminals a parser state allows.

A terminal is a regex (or literal) compiled by `regex.py`, plus an optional *guard*: a trailing negative
lookahead of one ASCII character class, `(?![A-Za-z0-9_])`, meaning "this lexeme may not be followed by such a
character". Guards let keywords and identifiers keep apart where whitespace between lexemes is optional. A
guarded terminal may also start with negative lookaheads, `(?!(?:select|from)(?![A-Za-z0-9_]))`, to leave words
out (identifiers that are no keywords): where what a lookahead reads cannot reach past the lexeme, it is a set
difference of DFAs (`_exclude`).

The `Lexer` runs every allowed terminal at once: a state is the set of the live (terminal, terminal-state)
pairs, built lazily in numba, and it records which terminals accept there. Each (allowed set, guard of the
previous lexeme) has its own start state, whose row leaves out the guarded bytes. Every state is live, since
each terminal DFA holds only live states.

`walk_lexer` is the mask kernel: it walks the trie under groups of roots, each group from its own lexer state,
marks the tokens whose bytes stay inside the lexeme, and reports the nodes where a terminal accepts and some
child byte may follow it (lexeme boundaries worth going on from), so the parser can continue the walk below
them in its next states.
"""

from __future__ import annotations

import re
import sys
import weakref
from dataclasses import dataclass

import numpy as np

from genlab.automata.bundle import replaced
from genlab.automata.charclass import char_set
from genlab.automata.combine import difference
from genlab.automata.dfa import ByteDFA
from genlab.automata.intern import find_list, list_hash
from genlab.automata.regex import CHAR_ITEMS, compile_parsed, parse_regex, tree_items
from genlab.errors import ConstraintError, EmptyLanguageError, StateLimitError, UnsupportedConstraintError
from genlab.jit import njit
from genlab.trie import BULK_DEPTH, byte_classes, extend_run, stays_below, write_run

if sys.version_info >= (3, 11):
    from re import _constants as C
    from re import _parser
else:
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


def compile_terminal(
    name: str, pattern: str, flags: str = "", *, literal: bool = False, max_states: int = 10_000
) -> Terminal:
    """Compile a terminal written as a Lark literal (`literal=True`) or regex, with Lark's flags (`i`, `s`, ...)."""
    where = f"terminal {name}"
    guard = np.zeros(256, np.bool_)
    if literal and pattern and set(flags) <= set("imsux"):  # keywords: a chain, without the regex machinery
        dfa = _literal_dfa(pattern, "i" in flags)
    else:
        text = re.escape(pattern) if literal else pattern
        wrapped = f"(?{flags}:{text})" if flags else text  # as Lark writes a flagged terminal
        try:
            tree = parse_regex(wrapped)
            split = None if literal else _split_guard(tree)
            if split is not None:
                tree, guard_set = split
                guard = _guard_bytes(guard_set, _guard_text(pattern))
            tree, exclusions = (tree, []) if literal else _split_exclusions(tree)
            dfa = compile_parsed(tree, wrapped, max_states=max_states)
            for excluded in exclusions:
                dfa = _exclude(dfa, excluded, guard, wrapped, max_states)
        except ConstraintError as e:
            raise type(e)(f"{where}: {e}") from e
    if dfa.accepting[dfa.start]:
        raise ConstraintError(f"{where} ({pattern!r}) matches the empty string; terminals must consume text")
    return Terminal(name, dfa, guard)


def _literal_dfa(text: str, ignore_case: bool) -> ByteDFA:
    """The DFA of the literal `text` as `re` matches it (with `ignore_case`, each character also matches its
    case variants under Unicode simple folding, e.g. "s" matches U+017F): a chain of positions, each a small trie
    of its characters' UTF-8 encodings merging into the next position."""
    flags = C.SRE_FLAG_UNICODE | (C.SRE_FLAG_IGNORECASE if ignore_case else 0)
    rows = [np.full(256, -1, np.int32)]
    at = 0
    for ch in text:
        after = len(rows)
        rows.append(np.full(256, -1, np.int32))
        variants = char_set(C.LITERAL, ord(ch), flags) if ignore_case else ((ord(ch), ord(ch)),)
        for lo, hi in variants:
            for code in range(lo, hi + 1):
                enc = chr(code).encode("utf-8")
                state = at
                for b in enc[:-1]:  # UTF-8 is prefix-free: only a last byte leads to `after`
                    if rows[state][b] < 0:
                        rows[state][b] = len(rows)
                        rows.append(np.full(256, -1, np.int32))
                    state = rows[state][b]
                rows[state][enc[-1]] = after
        at = after
    accepting = np.zeros(len(rows), np.bool_)
    accepting[at] = True
    return ByteDFA(np.stack(rows), accepting, 0)


def _unwrap(tree) -> tuple[list, list, int]:
    """(the single groups a pattern is wrapped in, as (group, add, drop) each; the items inside; the flags in
    force there). Lark wraps a flagged terminal in one, `(?i:...)`."""
    flags = tree.state.flags
    path = []
    items = tree_items(tree)
    while len(items) == 1 and items[0][0] is C.SUBPATTERN:
        group, add, drop, body = items[0][1]
        if add & _parser.TYPE_FLAGS:  # as `regex._Thompson._item` combines a group's flags
            flags &= ~_parser.TYPE_FLAGS
        flags = (flags | add) & ~drop
        path.append((group, add, drop))
        items = tree_items(body)
    return path, items, flags


def _rewrap(tree, path: list, items: list):
    """`items` as a parse tree, inside the groups of `path` (from `_unwrap(tree)`), so its flags stay as they were."""
    head = _parser.SubPattern(tree.state, list(items))
    for group, add, drop in reversed(path):
        head = _parser.SubPattern(tree.state, [(C.SUBPATTERN, (group, add, drop, head))])
    return head


def _split_guard(tree):
    """(the parse tree without its trailing `(?!X)`, X's code points) when the pattern ends with a negative
    lookahead on one character item X after something else; None otherwise."""
    path, items, flags = _unwrap(tree)
    if len(items) < 2 or items[-1][0] is not C.ASSERT_NOT:
        return None
    direction, inner = items[-1][1]
    inner = tree_items(inner)
    if direction != 1 or len(inner) != 1 or inner[0][0] not in CHAR_ITEMS:
        return None
    return _rewrap(tree, path, items[:-1]), char_set(inner[0][0], inner[0][1], flags)


def _split_exclusions(tree) -> tuple:
    """(the parse tree without its leading negative lookaheads `(?!A)`, the trees of their A's, under the flags
    in force where they stand)."""
    path, items, _ = _unwrap(tree)
    k = 0
    while k < len(items) - 1 and items[k][0] is C.ASSERT_NOT and items[k][1][0] == 1:
        k += 1
    if k == 0:
        return tree, []
    return _rewrap(tree, path, items[k:]), [_rewrap(tree, path, tree_items(av[1])) for _, av in items[:k]]


def _exclude(dfa: ByteDFA, excluded, guard: np.ndarray, pattern: str, max_states: int) -> ByteDFA:
    """The strings of `dfa` (a terminal's body, after its trailing `guard`) that a leading `(?!A)` lets through,
    A's tree being `excluded`.

    At a lexeme m followed by a byte c outside the guard (or by nothing), A reads m then c and on. If every
    string of A (but its own trailing guard) is made of guarded bytes, A cannot read c, so it matches some prefix
    k of m. Without a guard of its own, A then excludes every m with a prefix in L(A): L(body) minus L(A).Sigma*.
    With one, `(?!Y)`, where Y is within the terminal's guard (so c is not in Y) and every byte the body reads
    after its first is in Y (so a k shorter than m is followed by a byte of Y), A matches at k = m only: it
    excludes L(A) itself. Lookaheads outside these cases are refused."""
    own_guard = None
    split = _split_guard(excluded)
    if split is not None:
        excluded, codes = split
        own_guard = _guard_bytes(codes, "(?!...) inside the leading lookahead")
    try:
        words = compile_parsed(excluded, pattern, max_states=max_states)
    except EmptyLanguageError:
        return dfa  # a lookahead that matches nothing excludes nothing
    if words.accepting[words.start]:
        raise UnsupportedConstraintError("a leading negative lookahead that matches the empty string is not supported")
    reads = (words.transitions >= 0).any(axis=0)
    if not guard.any() or (reads & ~guard).any():
        raise UnsupportedConstraintError(
            "a leading negative lookahead (?!...) is supported only where its strings are made of characters the "
            "terminal's trailing guard (?![...]) forbids after it, so that it cannot look past the lexeme"
        )
    if own_guard is not None:
        if (own_guard & ~guard).any():  # a byte after m that A's guard forbids would let m through
            raise UnsupportedConstraintError(
                "a leading negative lookahead's own guard (?![...]) must forbid no character the terminal's "
                "trailing guard allows after it"
            )
        table = dfa.transitions
        after_first = np.unique(table[table >= 0])
        if ((table[after_first] >= 0).any(axis=0) & ~own_guard).any():
            raise UnsupportedConstraintError(
                "a leading negative lookahead ending in a guard (?![...]) is supported only where every character "
                "of the terminal after its first is one that guard forbids"
            )
    else:  # L(A).Sigma*: an accepting state reads anything and stays accepting
        table = words.transitions.copy()
        table[words.accepting] = np.flatnonzero(words.accepting)[:, None]
        words = ByteDFA(table, words.accepting, words.start)
    out = difference(dfa, words, max_states=max_states)
    if out is None:
        raise EmptyLanguageError("no string is left once the leading negative lookahead excludes its own")
    return out


def _guard_text(pattern: str) -> str:
    """The trailing `(?!X)` as written (for messages), without the closing parentheses of groups around it."""
    text = pattern[pattern.rfind("(?!") :]
    while text.endswith("))") and text.count(")") > text.count("("):
        text = text[:-1]
    return text


def _guard_bytes(code_points, text: str) -> np.ndarray:
    """bool[256] of the ASCII bytes a guard `text` matches, from its code points; non-ASCII classes are refused
    (a guard looks at one byte)."""
    if code_points and code_points[-1][1] >= 0x80:
        raise UnsupportedConstraintError(
            f"the trailing guard {text} matches non-ASCII characters; guards must be ASCII classes "
            "(write e.g. (?![A-Za-z0-9_]) instead of (?!\\w))"
        )
    guard = np.zeros(256, np.bool_)
    for lo, hi in code_points:
        guard[lo : hi + 1] = True
    return guard


_NO_TERMINALS = np.zeros(0, np.int64)


class Lexer:
    """One product DFA shared by every terminal set of a grammar, built lazily (in numba) and capped.

    A state is the sorted list of live (terminal, terminal state) pairs, interned once for the whole grammar, so
    lexers for different allowed sets meet in the same states as soon as their surviving terminals agree (after
    a letter, "inside a name" is one state whatever keywords were allowed). Each allowed set and guard gets its
    own start state, never re-entered (it is kept out of the intern table), so "nothing read yet" stays
    recognisable. Rows are computed per byte class (bytes every terminal treats alike), and only for states
    reachable from the starts asked for.

    A pair is stored as one int, `offset[terminal] + state`, in `flat`, the terminals' class tables stacked; a
    lexer state is a slice of `_members`, sorted, so equal pair sets are equal slices.

    Tables, views over the states so far: `table` (next state per byte class, -1: dead; a byte `b` reads
    `table[state, byte_class[b]]`, which keeps a state's row to a few hundred bytes), `accepting`, `follow` (per
    state, the 256-bit set of bytes the guards of its accepting terminals let come next), `dead_end` (reads no
    further byte: a lexeme that must end) and `loops` (per state, the bytes that keep it in place and that no
    accepting terminal's guard lets follow it: a trie subtree whose bytes all are in it is allowed whole, with no
    lexeme boundary worth going on from, e.g. the rest of a name whose guard forbids name characters after it),
    and `restart` (inside a lexeme of a `restart` terminal alone, where it may end: an ignored `C+` terminal such
    as whitespace, whose end spawns a thread that reads on exactly as this one would, so walks go on from there
    instead). Byte classes also respect every guard, so a start state's row leaves out whole classes.
    """

    INITIAL_STATES = 1 << 14  # state capacity before the first growth
    INITIAL_MEMBERS = 1 << 20  # pair capacity (states' member lists) before the first growth

    def __init__(self, terminals: list[Terminal], max_states: int, restart: frozenset[int] = frozenset()) -> None:
        self.terminals = terminals
        self.max_states = max_states
        # byte classes: the common refinement of each terminal's own partition and of each guard
        parts = [_partition(t.dfa) for t in terminals] + [t.guard.astype(np.int32) for t in terminals if t.guard.any()]
        self.byte_class, self.class_rep = byte_classes(np.stack(parts) if parts else np.zeros((1, 256), np.int32))
        # per class, its bytes as a 256-bit set
        self._class_bits = np.packbits(
            self.byte_class[None, :] == np.arange(len(self.class_rep))[:, None], axis=1, bitorder="little"
        ).view(np.uint64)
        sizes = np.array([t.dfa.n_states for t in terminals], np.int64)
        self._offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        self.pair_term = np.repeat(np.arange(len(terminals), dtype=np.int32), sizes)  # per pair, its terminal
        if terminals:
            cols = np.concatenate([t.dfa.transitions for t in terminals])[:, self.class_rep]
            self._flat = np.where(cols >= 0, cols + self._offset[self.pair_term][:, None], -1).astype(np.int32)
            self.pair_accepting = np.concatenate([t.dfa.accepting for t in terminals])  # per pair: accepts?
            # bytes each terminal's guard lets through after it, as 256-bit sets
            self._term_follow = np.packbits(~np.stack([t.guard for t in terminals]), axis=1, bitorder="little").view(
                np.uint64
            )
        else:
            self._flat = np.full((0, len(self.class_rep)), -1, np.int32)
            self.pair_accepting = np.zeros(0, np.bool_)
            self._term_follow = np.zeros((0, 4), np.uint64)
        self._term_restart = np.array([t in restart for t in range(len(terminals))], np.bool_)
        self._starts: dict[tuple, int] = {}
        self._start_pair = np.array([self._offset[t] + term.dfa.start for t, term in enumerate(terminals)], np.int32)
        self._class_guards: dict[bytes, np.ndarray] = {}  # guard -> the byte classes it is the union of
        self._is_start: set[int] = set()
        self._accepts: dict[int, tuple[int, ...]] = {}
        # Growable buffers, the public tables views of their first `n_states` rows. They are made large and
        # untouched (np.empty, np.zeros): the OS backs a page only when a state first writes it, where growing by
        # copies would fault in every page again (costly in sandboxes, and on the first mask of a grammar).
        self._n = self._n_members = 0
        self._members = np.empty(self.INITIAL_MEMBERS, np.int32)
        self._buffers = (
            "_lo",
            "_hi",
            "_rows",
            "_accepting_buf",
            "_follow_buf",
            "_loops_buf",
            "_dead_end_buf",
            "_restart_buf",
        )
        self._lo = np.empty(0, np.int64)
        self._hi = np.empty(0, np.int64)
        self._rows = np.empty((0, len(self.class_rep)), np.int32)
        self._accepting_buf = np.zeros(0, np.bool_)
        self._follow_buf = np.zeros((0, 4), np.uint64)
        self._loops_buf = np.zeros((0, 4), np.uint64)
        self._dead_end_buf = np.zeros(0, np.bool_)
        self._restart_buf = np.zeros(0, np.bool_)
        self._grow_states(min(max_states + 1, self.INITIAL_STATES))
        # intern tables, 0 for none, else state + 1: pair lists of two or more pairs by hash, single pairs by pair
        self._slots = np.zeros(1 << (2 * len(self._lo) - 1).bit_length(), np.int32)
        self._single = np.zeros(len(self._flat), np.int32)
        self._max_pairs = max(len(terminals), 1)  # the most pairs a state holds (one per terminal)
        # per pair, the classes it reads (`_expand_product`), as offsets into one list
        live = self._flat >= 0
        self._live_offs = np.concatenate([[0], np.cumsum(live.sum(axis=1))]).astype(np.int64)
        self._live_classes = np.nonzero(live)[1].astype(np.int64)
        self._views()

    @property
    def n_states(self) -> int:
        return self._n

    @property
    def members(self) -> np.ndarray:
        """The pairs of every state (state s holds `members[lo[s]:hi[s]]`), as the growing buffer."""
        return self._members

    @property
    def lo(self) -> np.ndarray:
        return self._lo

    @property
    def hi(self) -> np.ndarray:
        return self._hi

    @property
    def buffers(self) -> tuple[np.ndarray, ...]:
        """`run_lexeme`'s tables with the transitions and acceptance as their growing buffers (rows past
        `n_states` unused): for readers that keep them across lexer starts (`survivor`)."""
        return self._rows, self.byte_class, self._accepting_buf

    def key(self, state: int) -> tuple[tuple[int, int], ...]:
        """The live (terminal, terminal state) pairs of `state`; () for a start state."""
        if state in self._is_start:
            return ()
        pairs = self._members[self._lo[state] : self._hi[state]].tolist()
        terms = self.pair_term
        return tuple((int(terms[g]), g - int(self._offset[terms[g]])) for g in pairs)

    def accepts(self, state: int) -> tuple[int, ...]:
        """The terminals that accept in `state` (a lexeme of each may end there)."""
        out = self._accepts.get(state)
        if out is None:  # a state holds a few pairs: scalar reads beat numpy's per-call cost on tiny arrays
            term, acc = self.pair_term, self.pair_accepting
            pairs = self._members[self._lo[state] : self._hi[state]].tolist()
            out = self._accepts[state] = tuple(int(term[g]) for g in pairs if acc[g])
        return out

    def start(self, ids: frozenset[int], guard: np.ndarray) -> int:
        """The start state for a lexeme of one of the terminals `ids`, whose first byte is not in `guard` (one of
        the terminals' guards, or none); one per (ids, guard)."""
        key = (tuple(sorted(ids)), guard.tobytes())
        s = self._starts.get(key)
        if s is None:
            s = self._starts[key] = self.new_start(np.array(key[0], np.int64), _NO_TERMINALS, self.guarded(guard))
        return s

    def guarded(self, guard: np.ndarray) -> np.ndarray:
        """The byte classes a guard (one of the terminals' guards) is the union of: what a start under it leaves
        out (memoised)."""
        guard_key = guard.tobytes()
        out = self._class_guards.get(guard_key)
        if out is None:
            if (guard != guard[self.class_rep][self.byte_class]).any():
                raise ValueError("a lexer start's guard must be one of its terminals' guards")
            out = self._class_guards[guard_key] = np.flatnonzero(guard[self.class_rep])
        return out

    def new_start(self, terms: np.ndarray, more: np.ndarray, guarded: np.ndarray) -> int:
        """A new start state (not memoised: see `start`) for the terminals in the sorted int64 arrays `terms` and
        `more` (they may overlap), leaving out the byte classes `guarded`."""
        if self._n >= self.max_states:
            self._too_many()
        self._reserve(1, len(terms) + len(more))
        s, members = self._n, self._n_members
        try:
            return self._add(s, terms, more, guarded)
        except StateLimitError:
            self._roll_back(s, members)
            raise

    def _add(self, s: int, terms: np.ndarray, more: np.ndarray, guarded: np.ndarray) -> int:
        """`new_start`'s work: start state `s` and every state it reaches, with their tables."""
        self._is_start.add(s)
        resume, self._n, self._n_members, code = _add_start(
            terms,
            more,
            self._start_pair,
            guarded,
            s,
            self._flat,
            self._live_offs,
            self._live_classes,
            self.max_states,
            self._members,
            self._lo,
            self._hi,
            self._n_members,
            self._rows,
            self._slots,
            self._single,
            self._class_bits,
            self.pair_accepting,
            self.pair_term,
            self._term_follow,
            self._term_restart,
            self._accepting_buf,
            self._follow_buf,
            self._dead_end_buf,
            self._loops_buf,
            self._restart_buf,
        )
        if code == 0:
            self._views()
        else:  # a buffer filled up while expanding: grow, go on from where it stopped, then the tables
            if code == 2:
                self._too_many()
            self._reserve(max(1, self._n), self._max_pairs)
            self._expand(resume)
            self._finish(s, s, guarded)
        return s

    def _roll_back(self, n: int, members: int) -> None:
        """Forget the states from `n` on (a start whose expansion passed `max_states`): a limit error leaves the
        lexer as it was, so a caller that stops at the limit can go on using it."""
        self._is_start.discard(n)
        self._single[self._single > n] = 0
        self._slots[:] = 0
        self._rehash_slots(n)
        self._n, self._n_members = n, members
        self._views()

    def _rehash_slots(self, n: int) -> None:
        """Enter states 0 to `n` - 1 into the empty intern table `_slots` (starts are never looked up there)."""
        starts = np.zeros(n, np.bool_)
        starts[[s for s in self._is_start if s < n]] = True
        _rehash(self._members, self._lo, self._hi, n, starts, self._slots)

    def _too_many(self) -> None:
        raise StateLimitError(
            f"the grammar's lexer needs more than {self.max_states} states; raise max_lexer_states or simplify "
            "the terminals"
        )

    def _reserve(self, states: int, members: int) -> None:
        """Grow the buffers to hold `states` more states and `members` more pairs (the intern table stays at
        most half full)."""
        n, m = self._n + states, self._n_members + members
        if n > len(self._lo):
            self._grow_states(max(2 * len(self._lo), n))
        if m > len(self._members):
            grown = np.empty(max(2 * len(self._members), m), np.int32)
            grown[: self._n_members] = self._members[: self._n_members]
            self._members = grown
            replaced()
        if 2 * n > len(self._slots):
            self._slots = np.zeros(1 << (4 * n - 1).bit_length(), np.int32)
            self._rehash_slots(self._n)

    def _grow_states(self, cap: int) -> None:
        """Room for `cap` states in every per-state buffer (the new part untouched)."""
        for name in self._buffers:
            old = getattr(self, name)
            grown = np.zeros((cap,) + old.shape[1:], old.dtype)
            grown[: self._n] = old[: self._n]
            setattr(self, name, grown)
        replaced()

    def _expand(self, first: int) -> None:
        """Compute the rows of every state from `first` on, adding the states they reach."""
        s = first
        while True:
            s, n, m, code = _expand_product(
                self._flat,
                self._live_offs,
                self._live_classes,
                s,
                self._n,
                self.max_states,
                self._members,
                self._lo,
                self._hi,
                self._n_members,
                self._rows,
                self._slots,
                self._single,
            )
            self._n, self._n_members = n, m
            if code == 0:
                return
            if code == 2:
                self._too_many()
            self._reserve(max(1, self._n), self._max_pairs)

    def _finish(self, done: int, start: int, guarded: np.ndarray) -> None:
        """Per-state tables for the states from `done` on (the start's row leaves out the `guarded` classes)."""
        self._rows[start, guarded] = -1
        _state_tables(
            self._rows,
            self._class_bits,
            self._live_offs,
            self._live_classes,
            done,
            self._n,
            self._members,
            self._lo,
            self._hi,
            self.pair_accepting,
            self.pair_term,
            self._term_follow,
            self._term_restart,
            self._accepting_buf,
            self._follow_buf,
            self._dead_end_buf,
            self._loops_buf,
            self._restart_buf,
        )
        self._views()

    def _views(self) -> None:
        n = self._n
        self.table = self._rows[:n]
        self.accepting = self._accepting_buf[:n]
        self.follow = self._follow_buf[:n]
        self.dead_end = self._dead_end_buf[:n]
        self.loops = self._loops_buf[:n]
        self.restart = self._restart_buf[:n]
        # `walk_lexer`'s lexer arguments, in its order
        self.walk_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] = (
            self.table,
            self.byte_class,
            self.accepting,
            self.loops,
            self.follow,
            self.restart,
        )


_PARTITIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _partition(dfa: ByteDFA) -> np.ndarray:
    """The byte classes of one terminal's DFA (int32[256]), kept per DFA object: grammars compiled from the same
    cached automata (JSON Schema's string and number shapes) share them."""
    classes = _PARTITIONS.get(dfa)
    if classes is None:
        classes = _PARTITIONS[dfa] = byte_classes(dfa.transitions)[0]
    return classes


@njit(cache=True)
def _rehash(members, lo, hi, n, is_start, slots):
    """Put every interned state of two or more pairs (all but the starts) into the empty open-addressing table
    `slots` (as state + 1; states of one pair are found through `single` instead)."""
    mask = slots.shape[0] - 1
    for s in range(n):
        if is_start[s] or hi[s] - lo[s] == 1:
            continue
        j = list_hash(members, lo[s], hi[s]) & np.uint64(mask)
        while slots[j] > 0:
            j = (j + np.uint64(1)) & np.uint64(mask)
        slots[j] = s + 1


@njit(cache=True)
def _expand_product(flat, live_offs, live_classes, s, n, max_states, members, lo, hi, n_members, rows, slots, single):
    """Fill `rows` (next state per byte class) for states `s`, `s`+1, ... until every state found is expanded,
    interning the pair lists reached: a single pair `g` through `single[g]` (a lexeme inside one terminal, the
    common case, costs an array lookup), longer lists through the hash table `slots` (both hold state + 1, 0 for
    none). Each pair reads only its live classes (`live_classes[live_offs[g]:live_offs[g + 1]]`: a keyword's state
    reads one or two of the grammar's classes), and the pairs each class leads to are gathered in member order,
    so a state of many literal terminals costs its pairs' moves, not pairs x classes. Returns (first state not
    expanded, states, pairs stored, code): code 0 when done, 1 when a buffer is full (grow and call again from
    that state), 2 when `max_states` would be passed."""
    n_classes = flat.shape[1]
    count = np.zeros(n_classes, np.int64)  # per class, the pairs it leads to from the state being expanded
    at = np.zeros(n_classes, np.int64)  # where they start in `targets`
    touched = np.empty(n_classes, np.int64)
    targets = np.empty(64, np.int32)
    while s < n:
        a, b = lo[s], hi[s]
        n_touched = total = 0
        for i in range(a, b):
            g = members[i]
            for j in range(live_offs[g], live_offs[g + 1]):
                c = live_classes[j]
                if count[c] == 0:
                    touched[n_touched] = c
                    n_touched += 1
                count[c] += 1
                total += 1
        if targets.shape[0] < total:
            targets = np.empty(2 * total, np.int32)
        start = 0
        for t in range(n_touched):
            c = touched[t]
            at[c] = start
            start += count[c]
            count[c] = 0  # counts again below, as the fill position
        for i in range(a, b):
            g = members[i]
            for j in range(live_offs[g], live_offs[g + 1]):
                c = live_classes[j]
                targets[at[c] + count[c]] = flat[g, c]
                count[c] += 1
        rows[s, :] = -1
        code = 0
        for t in range(n_touched):
            c = touched[t]
            k = count[c]
            moved = targets[at[c] : at[c] + k]
            found = -1
            j = np.uint64(0)
            if k == 1:
                found = single[moved[0]] - 1
            else:
                found, j = find_list(slots, members, lo, hi, moved, k)
            if found < 0:
                if n >= max_states:
                    code = 2
                    break
                if n >= lo.shape[0] or n_members + k > members.shape[0] or 2 * (n + 1) > slots.shape[0]:
                    code = 1
                    break
                members[n_members : n_members + k] = moved
                lo[n] = n_members
                hi[n] = n_members + k
                n_members += k
                if k == 1:
                    single[moved[0]] = n + 1
                else:
                    slots[j] = n + 1
                found = n
                n += 1
            rows[s, c] = found
        for t in range(n_touched):
            count[touched[t]] = 0
        if code != 0:
            return s, n, n_members, code
        s += 1
    return s, n, n_members, 0


@njit(cache=True)
def _add_start(
    terms,
    more,
    start_pair,
    guarded,
    s,
    flat,
    live_offs,
    live_classes,
    max_states,
    members,
    lo,
    hi,
    n_members,
    rows,
    slots,
    single,
    class_bits,
    pair_accepting,
    pair_term,
    term_follow,
    term_restart,
    accepting,
    follow,
    dead_end,
    loops,
    restart,
):
    """Store start state `s` (the start pairs of the union of the sorted `terms` and `more`, in order, so the
    states it reaches are sorted pair lists), expand it and, if every buffer had room, fill the tables of the
    states it added (its own row leaving out the `guarded` classes). Returns `_expand_product`'s (state to go on
    from, states, pairs stored, code)."""
    i = j = 0
    m = n_members
    while i < terms.shape[0] or j < more.shape[0]:
        if j == more.shape[0] or (i < terms.shape[0] and terms[i] < more[j]):
            t = terms[i]
            i += 1
        elif i == terms.shape[0] or more[j] < terms[i]:
            t = more[j]
            j += 1
        else:
            t = terms[i]
            i += 1
            j += 1
        members[m] = start_pair[t]
        m += 1
    lo[s], hi[s] = n_members, m
    resume, n, m, code = _expand_product(
        flat, live_offs, live_classes, s, s + 1, max_states, members, lo, hi, m, rows, slots, single
    )
    if code != 0:
        return resume, n, m, code
    for c in guarded:
        rows[s, c] = -1
    _state_tables(
        rows,
        class_bits,
        live_offs,
        live_classes,
        s,
        n,
        members,
        lo,
        hi,
        pair_accepting,
        pair_term,
        term_follow,
        term_restart,
        accepting,
        follow,
        dead_end,
        loops,
        restart,
    )
    return resume, n, m, code


@njit(cache=True)
def _state_tables(
    rows,
    class_bits,
    live_offs,
    live_classes,
    first,
    n,
    members,
    lo,
    hi,
    pair_accepting,
    pair_term,
    term_follow,
    term_restart,
    accepting,
    follow,
    dead_end,
    loops,
    restart,
):
    """Per state from `first` to `n`, from its row and pairs: whether some terminal accepts, the bytes the
    accepting terminals' guards let through next, whether no byte is read, the bytes that stay in place and
    cannot follow a lexeme ending there, and whether it is an accepting state of a `restart` terminal alone. A
    state's row is read at its pairs' live classes only (the others are -1)."""
    f = np.zeros(4, np.uint64)
    stay = np.zeros(4, np.uint64)
    for s in range(first, n):
        acc = False
        any_move = False
        f[:] = 0
        stay[:] = 0
        for i in range(lo[s], hi[s]):
            g = members[i]
            if pair_accepting[g]:
                acc = True
                for w in range(4):
                    f[w] |= term_follow[pair_term[g], w]
            for j in range(live_offs[g], live_offs[g + 1]):
                c = live_classes[j]
                nxt = rows[s, c]
                if nxt >= 0:
                    any_move = True
                    if nxt == s:
                        for w in range(4):
                            stay[w] |= class_bits[c, w]
        accepting[s] = acc
        restart[s] = acc and hi[s] - lo[s] == 1 and term_restart[pair_term[members[lo[s]]]]
        dead_end[s] = not any_move
        for w in range(4):
            follow[s, w] = f[w]
            # where a lexeme may end, a byte that may follow it is not a loop: a lexeme may end before it
            loops[s, w] = stay[w] & ~f[w]


def slice_representatives(lexer: Lexer, slice_table: np.ndarray) -> np.ndarray:
    """One byte per (lexer byte class, slice DFA column) pair: the bytes `slice_reach` must try."""
    key = slice_table.tobytes()
    column = _SLICE_COLUMNS.get(key)
    if column is None:  # the same few slice tables serve every grammar: their column classes are kept
        column = _SLICE_COLUMNS[key] = np.unique(slice_table.T, axis=0, return_inverse=True)[1].ravel()
    _, first = np.unique(lexer.byte_class.astype(np.int64) * 256 + column, return_index=True)
    return first.astype(np.int32)


_SLICE_COLUMNS: dict[bytes, np.ndarray] = {}  # slice table -> per byte, its column class


@njit(cache=True)
def slice_reach(slice_table, max_len, reps, table, byte_class, start):
    """The largest L <= `max_len` such that every string of a slice's language (`slices.py`) of at most L bytes
    keeps the lexer alive from `start` (0: some one-byte string dies; `max_len`: every slice token lives, e.g.
    inside an unbounded JSON string; in between, e.g. inside a string of bounded length). A breadth-first walk
    of the product, each (slice state, lexer state) pair expanded once, at the depth it is first reached, so the
    first death met is at the shortest length. `reps` holds one byte per (lexer class, slice column) pair."""
    for b in reps:  # most states fail on a first byte: answer those before allocating anything
        if slice_table[0, b] >= 0 and table[start, byte_class[b]] < 0:
            return 0
    n_u = slice_table.shape[0]
    seen = np.zeros(table.shape[0] * n_u, np.bool_)
    queue_u = np.empty(table.shape[0] * n_u, np.int32)
    queue_q = np.empty(table.shape[0] * n_u, np.int32)
    queue_d = np.empty(table.shape[0] * n_u, np.int32)
    queue_u[0], queue_q[0], queue_d[0] = 0, start, 0
    seen[start * n_u] = True
    head, tail = 0, 1
    while head < tail:
        u, q, d = queue_u[head], queue_q[head], queue_d[head]
        head += 1
        for b in reps:
            u2 = slice_table[u, b]
            if u2 < 0:
                continue
            q2 = table[q, byte_class[b]]
            if q2 < 0:
                return d  # a string of d + 1 bytes dies, and none shorter
            if d + 1 < max_len and not seen[q2 * n_u + u2]:
                seen[q2 * n_u + u2] = True
                queue_u[tail], queue_q[tail], queue_d[tail] = u2, q2, d + 1
                tail += 1
    return max_len


@njit(cache=True)
def run_lexeme(table, byte_class, accepting, data, pos, end, state):
    """Read `data[pos:end]` from `state` until a terminal accepts: (state, position after the last byte read).

    State -1 when a byte is dead; stops early right after a byte that lands in an accepting state.
    """
    while pos < end:
        state = table[state, byte_class[data[pos]]]
        pos += 1
        if state < 0:
            return -1, pos
        if accepting[state]:
            return state, pos
    return state, pos


@njit(cache=True)
def lexeme_ends(table, byte_class, accepting, data, pos, end, state, at, states):
    """Read `data[pos:end]` from `state` without stopping where a terminal accepts: (the state at `end`, or -1 if
    a byte is dead, and how many accepting places were passed before that); `at[k]`/`states[k]` receive each
    place's position (after its byte) and state."""
    n = 0
    while pos < end:
        state = table[state, byte_class[data[pos]]]
        pos += 1
        if state < 0:
            return -1, n
        if accepting[state] and pos < end:
            at[n] = pos
            states[n] = state
            n += 1
    return state, n


@njit(cache=True)
def walk_lexer(
    byte,
    depth,
    subtree_end,
    token_start,
    token_end,
    order,
    bytes_below,
    child_bytes,
    subtree_tokens_end,
    table,
    byte_class,
    accepting,
    loops,
    follow,
    restart,
    starts,
    stamps,
    resets,
    reach,
    slice_below,
    roots,
    bounds,
    states,
    out,
    event_nodes,
    event_states,
    event_groups,
    seen_stamp,
    seen_state,
):
    """Walk the trie below trie nodes, in groups: group g walks below each of `roots[bounds[g]:bounds[g+1]]` from
    lexer state `starts[g]`. Mark in `out` every token whose bytes the lexer reads, and list the nodes where it
    accepts (a lexeme may end there) and that have a child byte allowed after the lexeme (`follow`, per state),
    with their states and groups, in group order. Where `reach[g] >= 0`, the caller has put the slice's tokens of
    at most `reach[g]` bytes in `out` (the group's lexer state keeps all of them alive), and a subtree holding
    only slice tokens that short (`slice_below[node]`: its longest token if all are slice tokens, else more than
    any reach) is skipped: everything in it is allowed, so no boundary below it can add a token.

    `states` is scratch (int64, max depth + 1); `event_nodes`/`event_states`/`event_groups` (int32) receive the
    boundaries; returns how many there are, or -1 when they do not fit (call again with larger buffers).
    `seen_stamp` and `seen_state` (one per node) remember the last (node, state) explored under a stamp: a
    subtree already explored from the same node in the same state under the group's stamp `stamps[g]` is
    skipped (roots nested in roots would otherwise re-walk it), so callers give each lexer context its own stamp
    and a fresh one when the context changes. A subtree whose bytes all keep a non-accepting state in place
    (`loops`) is marked whole without a visit.

    In a `restart` state (inside an ignored whitespace-like lexeme that may end here) the walk does not go on: a
    group with `resets[g]` (its configuration is the one such a lexeme's end leads back to) goes on from its
    own start state instead, and a group without reports the boundary and leaves the subtree to the
    continuation walk from there, which reads the same bytes.
    """
    n_events = 0
    run_start = 0
    run_end = 0  # allowed tokens order[run_start:run_end] not yet written to `out` (trie.extend_run)
    for g in range(starts.shape[0]):
        start = starts[g]
        stamp = stamps[g]
        reset = resets[g]
        skip = reach[g]
        for k in range(bounds[g], bounds[g + 1]):
            r = roots[k]
            if seen_stamp[r] == stamp and seen_state[r] == start:
                continue
            seen_stamp[r] = stamp
            seen_state[r] = start
            states[depth[r]] = start
            i = r + 1
            stop = subtree_end[r]
            while i < stop:
                if slice_below[i] <= skip:
                    i = subtree_end[i]
                    continue
                d = depth[i]
                s = table[states[d - 1], byte_class[byte[i]]]
                if s < 0:
                    i = subtree_end[i]
                    continue
                cut = False  # a boundary this walk leaves to the continuation below it
                if restart[s]:
                    if reset:
                        s = start  # the tokens here are alive either way; below, read on from the start
                    else:
                        cut = True
                if seen_stamp[i] == stamp and seen_state[i] == s:
                    i = subtree_end[i]
                    continue
                whole = (
                    d <= BULK_DEPTH
                    and (loops[s, 0] | loops[s, 1] | loops[s, 2] | loops[s, 3]) != 0
                    and stays_below(bytes_below, loops, i, s)
                )
                run_start, run_end = extend_run(
                    order, out, run_start, run_end, token_start[i], subtree_tokens_end[i] if whole else token_end[i]
                )
                if whole:
                    i = subtree_end[i]
                    continue
                seen_stamp[i] = stamp
                seen_state[i] = s
                states[d] = s
                # a boundary matters only below a node with a child byte that may follow the lexeme (`follow[s]`)
                if (
                    accepting[s]
                    and (
                        (child_bytes[i, 0] & follow[s, 0])
                        | (child_bytes[i, 1] & follow[s, 1])
                        | (child_bytes[i, 2] & follow[s, 2])
                        | (child_bytes[i, 3] & follow[s, 3])
                    )
                    != 0
                ):
                    if n_events == event_nodes.shape[0]:
                        write_run(order, out, run_start, run_end)
                        return -1
                    event_nodes[n_events] = i
                    event_states[n_events] = s
                    event_groups[n_events] = g
                    n_events += 1
                i = subtree_end[i] if cut else i + 1
    write_run(order, out, run_start, run_end)
    return n_events


@njit(cache=True)
def slice_reaches(slice_table, max_len, reps, table, byte_class, qs):
    """`slice_reach` from each lexer state in `qs`."""
    out = np.empty(qs.shape[0], np.int32)
    for k in range(qs.shape[0]):
        out[k] = slice_reach(slice_table, max_len, reps, table, byte_class, qs[k])
    return out


@njit(cache=True)
def walk_roots(
    byte,
    depth,
    subtree_end,
    token_start,
    token_end,
    order,
    bytes_below,
    child_bytes,
    subtree_tokens_end,
    table,
    byte_class,
    accepting,
    loops,
    follow,
    restart,
    qs,
    reach,
    slice_below,
    counter,
    states,
    outs,
    event_nodes,
    event_states,
    event_groups,
    ends,
    seen_stamp,
    seen_state,
):
    """`walk_lexer` from the trie root for each lexer state `qs[k]` in turn, each under a fresh stamp drawn from
    `counter`, into `outs[k]` (holding the slice tokens of at most `reach[k]` bytes) with its lexeme ends appended
    to the event buffers up to `ends[k + 1]` (`ends[0]` is where the first starts). Returns how many states were
    walked: fewer than all when the event buffers filled (the last one's `outs` row is then partly written)."""
    start = np.empty(1, np.int32)
    stamp = np.empty(1, np.int64)
    skip = np.empty(1, np.int32)
    no_reset = np.zeros(1, np.bool_)
    root = np.zeros(1, np.int32)
    bounds = np.array([0, 1], np.int64)
    for k in range(qs.shape[0]):
        start[0] = qs[k]
        stamp[0] = counter[0]
        counter[0] += 1
        skip[0] = reach[k]
        at = ends[k]
        n = walk_lexer(
            byte,
            depth,
            subtree_end,
            token_start,
            token_end,
            order,
            bytes_below,
            child_bytes,
            subtree_tokens_end,
            table,
            byte_class,
            accepting,
            loops,
            follow,
            restart,
            start,
            stamp,
            no_reset,
            skip,
            slice_below,
            root,
            bounds,
            states,
            outs[k],
            event_nodes[at:],
            event_states[at:],
            event_groups[at:],
            seen_stamp,
            seen_state,
        )
        if n < 0:
            return k
        ends[k + 1] = at + n
    return qs.shape[0]
