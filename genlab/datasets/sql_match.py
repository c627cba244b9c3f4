"""Exact-set match of two SQLite queries, in the spirit of Spider's exact-match metric.

`exact_set_match(pred, gold)` parses both queries with Lark and `grammars/sqlite.lark` (independent of genlab's
own parser) and compares their normalised clauses:

- SELECT items as a set (column aliases dropped), the DISTINCT flag;
- FROM sources as a set: table names (aliases resolved: `T1.name` becomes `singer.name`) and subqueries;
  join conditions are ignored, as Spider's exact match ignores them;
- WHERE and HAVING as a set of conditions plus the set of connectives (AND/OR) joining them. A condition is its
  left side, its operator and its right side with literal values blanked out, so `age > 20` matches `age > 30`
  as Spider's exact match (which ignores values) has it. A double-quoted name on a right side counts as a value,
  as Spider writes `name = "France"`;
- GROUP BY as a set, ORDER BY as a list of (expression, direction), LIMIT present or not (its value ignored);
- UNION/INTERSECT/EXCEPT in order, subqueries and WITH clauses recursively.

Names and keywords compare case-insensitively (so do string literals outside conditions). A bare column is
qualified with its table when the FROM has one table, or, given `columns` (table -> its column names), when
exactly one table in scope has a column of that name; otherwise it stays bare. ORDER BY may name a SELECT alias.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import lark

from genlab.constraints.grammar import GRAMMARS_DIR

__all__ = ["exact_set_match", "normalise"]

_VALUE = ("value",)  # a literal in a condition's right side
_OPERATORS = {"==": "=", "<>": "!="}


@functools.cache
def _parser() -> lark.Lark:
    grammar = (GRAMMARS_DIR / "sqlite.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, start="start", parser="earley", lexer="dynamic")


def exact_set_match(pred: str, gold: str, columns: Mapping[str, Collection[str]] | None = None) -> bool:
    """Whether `pred` and `gold` have the same normalised clauses (see the module docstring).

    A `pred` that does not parse never matches; a `gold` that does not parse raises `ValueError`.
    """
    key = _columns_key(columns)
    try:
        gold_form = _normalise(gold, key)
    except lark.exceptions.LarkError as err:
        raise ValueError(f"gold query does not parse: {gold!r}") from err
    try:
        return _normalise(pred, key) == gold_form
    except lark.exceptions.LarkError:
        return False


def normalise(query: str, columns: Mapping[str, Collection[str]] | None = None) -> Query:
    """The normalised form `exact_set_match` compares (raises `lark.exceptions.LarkError` if `query` does not
    parse)."""
    return _normalise(query, _columns_key(columns))


def _columns_key(columns: Mapping[str, Collection[str]] | None) -> tuple | None:
    if columns is None:
        return None
    return tuple(sorted((t.lower(), frozenset(c.lower() for c in cs)) for t, cs in columns.items()))


@functools.lru_cache(maxsize=4096)
def _normalise(query: str, columns: tuple | None) -> Query:
    stmt = _parser().parse(query).children[0]
    assert isinstance(stmt, lark.Tree)  # the start rule's one child: a statement
    return _Normaliser(dict(columns or ())).query(stmt, None)


@dataclass(frozen=True)
class Conditions:
    """A WHERE or HAVING clause: its conditions and the connectives (AND, OR) between them, as sets."""

    atoms: frozenset = frozenset()
    connectives: frozenset = frozenset()


@dataclass(frozen=True)
class Core:
    """One SELECT ... FROM ... WHERE ... GROUP BY ... HAVING, normalised."""

    distinct: bool
    select: frozenset
    sources: frozenset
    where: Conditions
    group_by: frozenset
    having: Conditions


@dataclass(frozen=True)
class Query:
    """A whole SELECT statement: WITH clauses, the first core, then (operator, core) pairs, ORDER BY, LIMIT."""

    ctes: frozenset
    first: Core
    compounds: tuple
    order_by: tuple
    limit: bool


@dataclass
class _Scope:
    """The names one SELECT core resolves: alias or table -> source label, its sources, the enclosing scope."""

    names: dict[str, Any] = field(default_factory=dict)
    sources: list = field(default_factory=list)
    outer: _Scope | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # SELECT aliases, for ORDER BY

    def lookup(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.outer
        return name  # an unknown qualifier stays as written


def _name(node: lark.Token | lark.Tree) -> str:
    """An identifier without its quotes, lower-cased."""
    text = str(node)
    if text[:1] in "\"`'" and len(text) > 1:
        text = text[1:-1].replace(text[0] * 2, text[0])
    elif text[:1] == "[":
        text = text[1:-1]
    return text.lower()


def _is_dq_name(node: lark.Tree) -> bool:
    """A bare double-quoted name (Spider's spelling of a string value)."""
    return len(node.children) == 1 and str(node.children[0]).startswith('"')


class _Normaliser:
    def __init__(self, columns: dict[str, frozenset[str]]) -> None:
        self.columns = columns

    # ------------------------------------------------------------------ statements

    def query(self, stmt: lark.Tree, outer: _Scope | None) -> Query:
        with_clause, body, order_by, limit = stmt.children
        ctes: frozenset[tuple] = frozenset()
        if with_clause is not None:
            ctes = frozenset(self._cte(c, outer) for c in with_clause.children if isinstance(c, lark.Tree))
        parts = self._flatten_compound(body)
        first, first_scope = self._core(parts[0], outer)
        compounds = tuple((op, self._core(core, outer)[0]) for op, core in parts[1:])
        order = (
            ()
            if order_by is None
            else tuple(self._ordering(t, first_scope) for t in order_by.children if isinstance(t, lark.Tree))
        )
        return Query(ctes, first, compounds, order, limit is not None)

    def _cte(self, cte: lark.Tree, outer: _Scope | None) -> tuple:
        names = [c for c in cte.children if isinstance(c, lark.Token) and c.type in ("NAME", "QUOTED_NAME")]
        stmt = next(c for c in cte.children if isinstance(c, lark.Tree) and c.data == "select_stmt")
        return tuple(_name(n) for n in names), self.query(stmt, outer)

    def _flatten_compound(self, node: lark.Tree) -> list:
        """[first core, (operator, core), ...] of a left-nested compound ("union", "union all", ...)."""
        if node.data != "compound":
            return [node]
        left, op, right = node.children
        operator = " ".join(str(t).lower() for t in op.children if t is not None)
        return self._flatten_compound(left) + [(operator, right)]

    def _core(self, core: lark.Tree, outer: _Scope | None) -> tuple[Core, _Scope]:
        select_clause, from_clause, where_clause, group_by = core.children
        scope = _Scope(outer=outer)
        if from_clause is not None:
            self._sources(from_clause.children[1], scope)
        _, quantifier, result_columns = select_clause.children
        select = []
        for column in result_columns.children:
            form = self._result_column(column, scope)
            select.append(form)
            if column.data == "result_column" and column.children[1] is not None:
                scope.outputs[_name(column.children[1].children[-1])] = form
        where = Conditions() if where_clause is None else self.conditions(where_clause.children[1], scope)
        groups: frozenset[Any] = frozenset()
        having = Conditions()
        if group_by is not None:  # GROUP BY expr ... [HAVING expr]
            groups = frozenset(self.expr(e, scope) for e in group_by.children[2:-2])
            if group_by.children[-1] is not None:
                having = self.conditions(group_by.children[-1], scope)
        distinct = isinstance(quantifier, lark.Token) and quantifier.type == "DISTINCT"
        return Core(distinct, frozenset(select), frozenset(scope.sources), where, groups, having), scope

    def _result_column(self, column: lark.Tree, scope: _Scope) -> Any:
        if column.data == "all_columns":
            return ("star",)
        if column.data == "table_columns":
            return ("star", scope.lookup(_name(column.children[0])))
        return self.expr(column.children[0], scope)

    def _ordering(self, term: lark.Tree, scope: _Scope) -> tuple:
        expr, ordering = term.children
        if expr.data == "column_ref" and len(expr.children) == 1 and _name(expr.children[0]) in scope.outputs:
            form = scope.outputs[_name(expr.children[0])]
        else:
            form = self.expr(expr, scope)
        words = [str(t).lower() for t in ordering.children if t is not None] if ordering is not None else []
        if not words or words[0] not in ("asc", "desc"):
            words.insert(0, "asc")
        return form, " ".join(words)

    # ------------------------------------------------------------------ FROM

    def _sources(self, join_source: lark.Tree, scope: _Scope) -> None:
        """Adds the tables and subqueries of a FROM clause to `scope` (join conditions are not compared)."""
        for item in join_source.children:
            if not isinstance(item, lark.Tree) or item.data not in ("table_or_subquery", "subquery_source"):
                continue  # a join operator or constraint
            if item.data == "subquery_source":
                stmt, alias = item.children
                label: Any = ("subquery", self.query(stmt, scope.outer))
            elif isinstance(item.children[0], lark.Tree) and item.children[0].data == "join_source":
                self._sources(item.children[0], scope)
                continue
            else:
                table, alias = item.children
                label = _name(table.children[-1])
                scope.names[label] = label
            scope.sources.append(label)
            if alias is not None:
                scope.names[_name(alias.children[-1])] = label

    # ------------------------------------------------------------------ conditions

    def conditions(self, node: lark.Tree, scope: _Scope) -> Conditions:
        atoms: set = set()
        connectives: set = set()
        self._collect(node, scope, atoms, connectives)
        return Conditions(frozenset(atoms), frozenset(connectives))

    def _collect(self, node: Any, scope: _Scope, atoms: set, connectives: set) -> None:
        if isinstance(node, lark.Tree) and node.data in ("or_expr", "and_expr"):
            left, word, right = node.children
            connectives.add(str(word).lower())
            self._collect(left, scope, atoms, connectives)
            self._collect(right, scope, atoms, connectives)
        elif isinstance(node, lark.Tree) and node.data == "parens" and len(node.children) == 1:
            self._collect(node.children[0], scope, atoms, connectives)
        else:
            atoms.add(self._condition(node, scope))

    def _condition(self, node: Any, scope: _Scope) -> Any:
        """One condition: (left side, operator, right side with values blanked), or a generic expression."""
        if not isinstance(node, lark.Tree):
            return self.expr(node, scope)
        if node.data == "not_":
            return ("not", self.conditions(node.children[1], scope))
        if node.data == "binary" and len(node.children) == 3 and node.children[1].data == "comp_op":
            left, op, right = node.children
            return self.expr(left, scope), str(op.children[0]), self.expr(right, scope, values=True)
        if node.data == "test":
            left, predicate = node.children
            return (self.expr(left, scope),) + self._predicate(predicate, scope)
        return self.expr(node, scope)

    def _predicate(self, predicate: lark.Tree, scope: _Scope) -> tuple:
        """The operator and the blanked right-hand operands of a predicate (`= x`, `NOT IN (...)`, ...)."""
        kind = predicate.data
        if kind == "predicate":  # eq_op comparison
            op, right = predicate.children
            symbol = str(op.children[0])
            return _OPERATORS.get(symbol, symbol), self.expr(right, scope, values=True)
        words = [str(t).lower() for t in predicate.children if isinstance(t, lark.Token)]
        operands = [c for c in predicate.children if isinstance(c, lark.Tree)]
        if kind == "like":
            words = [w for w in words if w != "escape"] + [str(operands[0].children[0]).lower()]
            operands = operands[1:]
        if kind == "between":
            words = [w for w in words if w != "and"]
        if kind == "null_test":
            words = ["is", "null"] if words == ["isnull"] else ["is", "not", "null"]
        return (" ".join(words),) + tuple(self.expr(o, scope, values=True) for o in operands)

    # ------------------------------------------------------------------ expressions

    def expr(self, node: Any, scope: _Scope, values: bool = False) -> Any:
        """A hashable form of an expression; with `values`, literals (and double-quoted names) become `_VALUE`."""
        if node is None:
            return None
        if isinstance(node, lark.Token):
            return str(node).lower()
        kind = str(node.data)
        if kind == "column_ref":
            if values and _is_dq_name(node):
                return _VALUE
            return self._column(node, scope)
        if kind == "literal":
            return _VALUE if values else str(node.children[0]).lower()
        if kind in ("scalar_subquery", "exists"):
            return kind, self.query(node.children[-1], scope)
        if kind == "in_subquery":
            return kind, self.query(node.children[0], scope)
        if kind == "in_table":
            return kind, _name(node.children[0].children[-1])
        if kind == "function_call":
            name, arguments = node.children
            return "call", _name(name), self.expr(arguments, scope, values)
        return (kind,) + tuple(self.expr(c, scope, values) for c in node.children if c is not None)

    def _column(self, ref: lark.Tree, scope: _Scope) -> tuple:
        *qualifiers, column = (_name(c) for c in ref.children)
        if qualifiers:
            return "column", scope.lookup(qualifiers[-1]), column
        return "column", self._owner(column, scope), column

    def _owner(self, column: str, scope: _Scope) -> Any:
        """The source a bare column belongs to, innermost scope first: the one table the schema gives the
        column, or the only source of a SELECT the schema says nothing about; None when unknown or ambiguous."""
        current: _Scope | None = scope
        while current is not None:
            owners = [s for s in current.sources if column in self.columns.get(s, ())]
            if owners:
                return owners[0] if len(owners) == 1 else None
            if len(current.sources) == 1 and current.sources[0] not in self.columns:
                return current.sources[0]
            if not self.columns:
                return None
            current = current.outer
        return None
