"""An Earley recognizer over terminal ids whose chart columns are interned values.

Earley handles every context-free grammar (ambiguous, left-recursive, with empty rules), which is what users
bring. A column is identified by its *kernel*, the items scanned into it, each `(rule, dot, origin column)`;
the rest of the column (predictions, completions) follows from the kernel and the columns it points to. So
equal kernels are one column, whatever text led there: parser states are small ints, shared by every particle
and every path that reaches them, and `scan(column, terminal)` is memoised per column. (A kernel that holds items
predicted in the column it was scanned from is made once per (column, terminal) without being hashed: such
kernels almost never recur, and a repeat would only be a second id for the same state.) Empty rules use the
Aycock-Horspool rule (predicting a nullable nonterminal also moves the dot over it), so completions only ever
look at earlier, finished columns.

Symbols are ints: terminals `0 .. n_terminals-1`, nonterminals after them. Rule 0 is the augmented
`S' -> start`; a column accepts when it holds `(0, 1, 0)`. Items are ints too, `origin << 24 | position`, a
position numbering every (rule, dot) so that moving the dot on is adding 1 (hashing ints is what the sets and
dicts of the chart spend their time on).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from genlab.errors import EmptyLanguageError, StateLimitError

Item = int  # origin column << _SHIFT | position of (rule, dot)
_SHIFT = 24
_POSITION = (1 << _SHIFT) - 1


@dataclass(frozen=True)
class CFG:
    """A context-free grammar over int symbols; `rules[r] = (lhs, rhs)`; rule 0 is `S' -> start`."""

    n_terminals: int
    names: tuple[str, ...]  # every symbol's name, terminals first
    rules: tuple[tuple[int, tuple[int, ...]], ...]

    @classmethod
    def build(cls, terminals: list[str], rules: list[tuple[str, list[str]]], start: str) -> "CFG":
        """From named rules (`lhs`, [symbol names]) with `terminals` the terminal names; unproductive rules are
        dropped, and a start symbol that derives no string raises `EmptyLanguageError`."""
        nonterminals = sorted({lhs for lhs, _ in rules} | {start})
        index = {name: i for i, name in enumerate(terminals)}
        for name in nonterminals:
            index.setdefault(name, len(index))
        terminal_set = set(terminals)
        names = tuple(terminals) + tuple(n for n in nonterminals if n not in terminal_set)
        symbolic = [(index[lhs], tuple(index[s] for s in rhs)) for lhs, rhs in rules]
        productive = _deriving(symbolic, lambda s: s < len(terminals))
        if index[start] not in productive:
            raise EmptyLanguageError(f"the grammar's start rule {start!r} derives no string (its language is empty)")
        kept = [(lhs, rhs) for lhs, rhs in symbolic if all(s < len(terminals) or s in productive for s in rhs)]
        return cls(len(terminals), names, ((-1, (index[start],)),) + tuple(kept))

    @functools.cached_property
    def nullable(self) -> frozenset[int]:
        """The nonterminals that derive the empty string."""
        return frozenset(_deriving(self.rules[1:], lambda s: False))

    def follow_terminals(self) -> dict[int, set[int]]:
        """For each terminal, the terminals that can come right after it in some sentential form (-1: the end)."""
        nullable = self.nullable
        first: dict[int, set[int]] = {s: set() for s in range(self.n_terminals, len(self.names))}

        def first_of(seq) -> tuple[set[int], bool]:
            out: set[int] = set()
            for s in seq:
                if s < self.n_terminals:
                    out.add(s)
                    return out, False
                out |= first.get(s, set())
                if s not in nullable:
                    return out, False
            return out, True

        changed = True
        while changed:
            changed = False
            for lhs, rhs in self.rules[1:]:
                f, _ = first_of(rhs)
                if not f <= first[lhs]:
                    first[lhs] |= f
                    changed = True
        # follow[s] takes what can start the rest of each rule after s, and, where that rest is nullable, all of
        # follow[lhs] (`inherits`): the first part in one pass right to left, the second to a fixpoint
        follow: dict[int, set[int]] = {s: set() for s in range(len(self.names))}
        follow[self.rules[0][1][0]].add(-1)
        inherits: dict[int, set[int]] = {}
        for lhs, rhs in self.rules[1:]:
            rest: set[int] = set()
            rest_nullable = True
            for s in reversed(rhs):
                follow[s] |= rest
                if rest_nullable:
                    inherits.setdefault(lhs, set()).add(s)
                if s < self.n_terminals:
                    rest, rest_nullable = {s}, False
                elif s in nullable:
                    rest = first[s] | rest
                else:
                    rest, rest_nullable = set(first[s]), False
        changed = True
        while changed:
            changed = False
            for lhs, heirs in inherits.items():
                f = follow[lhs]
                for s in heirs:
                    if not f <= follow[s]:
                        follow[s] |= f
                        changed = True
        return {t: follow[t] for t in range(self.n_terminals)}


def _deriving(rules, terminal_ok) -> set[int]:
    """The nonterminals with a rule whose symbols all are such nonterminals or terminals with `terminal_ok`
    (least fixpoint): with every terminal ok, those that derive some string; with none, those that derive "".
    Worklist form: each rule counts its symbols not yet known to derive, and fires when the count reaches 0."""
    waiting: dict[int, list[int]] = {}
    missing = []
    ready = []
    for r, (lhs, rhs) in enumerate(rules):
        need = 0
        for sym in set(rhs):
            if not terminal_ok(sym):
                need += 1
                waiting.setdefault(sym, []).append(r)
        missing.append(need)
        if need == 0:
            ready.append(lhs)
    found: set[int] = set()
    while ready:
        sym = ready.pop()
        if sym in found:
            continue
        found.add(sym)
        for r in waiting.get(sym, ()):
            missing[r] -= 1
            if missing[r] == 0:
                ready.append(rules[r][0])
    return found


@dataclass
class Column:
    """A finished chart column: what it expects next and who waits for which nonterminal.

    Items predicted here (origin = this column) are the same in every column that predicts the same
    nonterminals, so they are kept once per set of predicted nonterminals (`Prediction`) and only the items
    coming from earlier columns are stored per column.
    """

    scans: dict[int, list[Item]]  # terminal -> kernel items scanning it gives (items from earlier columns)
    waits: dict[int, list[Item]]  # nonterminal -> items from earlier columns with the dot before it
    predicted: "Prediction"
    accepts: bool
    expected: frozenset[int] = frozenset()
    expected_id: int = 0  # equal expected sets share one id (what the lexer is keyed by)
    next: dict[int, int] = field(default_factory=dict)  # memo: terminal -> column id (-1: not expected)


@dataclass
class Prediction:
    """The closure of predicting a set of nonterminals, as (rule, dot) positions of items whose origin is the
    column itself."""

    scans: dict[int, tuple[int, ...]]  # terminal -> position with the dot after it
    waits: dict[int, tuple[int, ...]]  # nonterminal -> position with the dot before it
    expected: frozenset[int]  # the terminals in `scans`
    expected_id: int = -1  # its id once a column has used it (see `Column`)


class Chart:
    """All columns met so far, interned by kernel; `scan` is the only way to make new ones."""

    def __init__(self, cfg: CFG, *, max_columns: int = 1_000_000, max_items: int = 100_000) -> None:
        self.cfg = cfg
        self.max_columns = max_columns
        self.max_items = max_items
        self._nullable = cfg.nullable
        # positions: rule r's dot d is first[r] + d; per position, the symbol after the dot (-1 at the end) and
        # the rule's left-hand side
        self._first: list[int] = []
        self._next_symbol: list[int] = []
        self._lhs: list[int] = []
        by_lhs: dict[int, list[int]] = {}
        for r, (lhs, rhs) in enumerate(cfg.rules):
            by_lhs.setdefault(lhs, []).append(len(self._next_symbol))
            self._first.append(len(self._next_symbol))
            self._next_symbol.extend(rhs)
            self._next_symbol.append(-1)
            self._lhs.extend([lhs] * (len(rhs) + 1))
        if len(self._next_symbol) > _POSITION:
            raise StateLimitError(f"the grammar has more than {_POSITION} rule positions")
        self._by_lhs = by_lhs  # nonterminal -> positions of its rules' starts
        self._predictions: dict[frozenset[int], Prediction] = {}
        self._expected_ids: dict[frozenset[int], int] = {}
        self.columns: list[Column] = []
        self._ids: dict[frozenset[Item], int] = {}
        self._accepting = self._first[0] + 1  # S' -> start . from column 0
        self._make(frozenset({self._first[0]}))

    def scan(self, column: int, terminal: int) -> int:
        """The column after `terminal` is read at `column`, or -1 if the column does not expect it."""
        col = self.columns[column]
        nxt = col.next.get(terminal)
        if nxt is None:
            if terminal not in col.expected:
                nxt = -1
            else:
                static = col.predicted.scans.get(terminal, ())
                if static:
                    # items predicted here carry this column as their origin, so no other (column, terminal)
                    # gives this kernel: the memo in `next` is enough, and interning (hashing it) is skipped
                    kernel = list(col.scans.get(terminal, ()))
                    base = column << _SHIFT
                    kernel.extend(base | p for p in static)
                    nxt = self._make(kernel, intern=False)
                else:
                    nxt = self._make(frozenset(col.scans.get(terminal, ())))
            col.next[terminal] = nxt
        return nxt

    def expected(self, column: int) -> frozenset[int]:
        """The terminals `column` can scan."""
        return self.columns[column].expected

    def expected_id(self, column: int) -> int:
        """A small id shared by every column that expects the same terminals."""
        return self.columns[column].expected_id

    def accepts(self, column: int) -> bool:
        return self.columns[column].accepts

    def _prediction(self, roots: frozenset[int]) -> Prediction:
        """The items that predicting `roots` adds (memoised per set of nonterminals)."""
        pred = self._predictions.get(roots)
        if pred is None:
            next_symbol, n_t, nullable = self._next_symbol, self.cfg.n_terminals, self._nullable
            items: set[int] = set()
            work = [p for b in roots for p in self._by_lhs.get(b, ())]
            predicted = set(roots)
            scans: dict[int, list[int]] = {}
            waits: dict[int, list[int]] = {}
            while work:
                p = work.pop()
                if p in items:
                    continue
                items.add(p)
                sym = next_symbol[p]
                if sym < 0:  # an empty derivation: the nullable rule below already moved past it
                    continue
                if sym < n_t:
                    scans.setdefault(sym, []).append(p + 1)
                    continue
                waits.setdefault(sym, []).append(p)
                if sym not in predicted:
                    predicted.add(sym)
                    work.extend(self._by_lhs.get(sym, ()))
                if sym in nullable:
                    work.append(p + 1)
            pred = self._predictions[roots] = Prediction(
                {t: tuple(v) for t, v in scans.items()}, {x: tuple(v) for x, v in waits.items()}, frozenset(scans)
            )
        return pred

    def _make(self, kernel, intern: bool = True) -> int:
        if intern:
            cid = self._ids.get(kernel)
            if cid is not None:
                return cid
        if len(self.columns) >= self.max_columns:
            raise StateLimitError(
                f"the grammar parser has met more than {self.max_columns} distinct parse states; raise "
                "max_columns, or the grammar is too ambiguous for the text"
            )
        cid = len(self.columns)
        next_symbol, lhs_of, n_t, nullable, columns = self._next_symbol, self._lhs, self.cfg.n_terminals, \
            self._nullable, self.columns
        # only items from earlier columns are followed here; what they predict comes from `_prediction`
        items = set(kernel)
        work = list(items)
        scans: dict[int, list[Item]] = {}
        waits: dict[int, list[Item]] = {}
        roots: set[int] = set()
        while work:
            item = work.pop()
            sym = next_symbol[item & _POSITION]
            if sym < 0:
                o = item >> _SHIFT
                if o != cid:  # complete lhs: advance the items of column o waiting for it, both kinds
                    origin = columns[o]
                    lhs = lhs_of[item & _POSITION]
                    for waiting in origin.waits.get(lhs, ()):
                        nxt = waiting + 1
                        if nxt not in items:
                            items.add(nxt)
                            work.append(nxt)
                    base = o << _SHIFT
                    for p in origin.predicted.waits.get(lhs, ()):
                        nxt = base | (p + 1)
                        if nxt not in items:
                            items.add(nxt)
                            work.append(nxt)
                continue
            if sym < n_t:
                scans.setdefault(sym, []).append(item + 1)
                continue
            waits.setdefault(sym, []).append(item)
            roots.add(sym)
            if sym in nullable:
                nxt = item + 1
                if nxt not in items:
                    items.add(nxt)
                    work.append(nxt)
            if len(items) > self.max_items:
                raise StateLimitError(
                    f"a grammar parse state holds more than {self.max_items} Earley items; raise max_items, "
                    "or the grammar is too ambiguous (e.g. deeply nested ambiguous rules)"
                )
        pred = self._prediction(frozenset(roots))
        if scans:
            expected = pred.expected.union(scans)
            expected_id = self._expected_ids.setdefault(expected, len(self._expected_ids))
        else:  # what the column expects is what its predictions scan
            expected = pred.expected
            expected_id = pred.expected_id
            if expected_id < 0:
                expected_id = pred.expected_id = self._expected_ids.setdefault(expected, len(self._expected_ids))
        col = Column(scans, waits, pred, self._accepting in items, expected, expected_id)
        self.columns.append(col)
        if intern:
            self._ids[kernel] = cid
        return cid
