"""The shipped SQLite grammar (`grammars/sqlite.lark`), specialised to one database's table and column names.

The specialised language has two parts:

- a query without `WITH` may name only the database's tables in `FROM`/`JOIN`/`IN`, and columns as its scope
  allows (below). Names are written as SQLite reads them: ASCII letters in any case, plain where SQLite allows
  (not a reserved word, identifier characters only), or quoted as `"x"`, `` `x` `` or `[x]`. A double-quoted
  text that names no column is a string, as in SQLite.
- a query that starts with `WITH` may also name its common table expressions and their columns, which no
  context-free grammar can track: it keeps the shipped grammar's rules (any name), and the `EXPLAIN` check on the
  database decides it at the end.

Column scopes. A query level (one `SELECT ... FROM ... WHERE ... GROUP BY ... HAVING`) sees the columns of its
`FROM` and of the levels around it. Three scopes, each wider than the one before:

- strict: the database's columns only: bare (`name`), qualified by a table (`singer.name`, only that table's
  columns) or by an alias (`T1.name`, any of the database's columns; an alias is any name that is not a table's).
- aliases: strict, and any bare name: the names the level gives its result columns (`count(*) AS n`), which its
  `GROUP BY`, `HAVING` and `ORDER BY` may use (SQLite also lets `WHERE` and `ON` use them; this grammar does not,
  so that a misspelt column there is still refused where it is written).
- loose: any bare name and any name after an alias (`t.n`), for a level whose `FROM` has a derived table
  (`FROM (SELECT count(*) AS n ...) AS t`), whose names no grammar can track; `table.column` stays strict (so a
  derived table named like a table, `(...) AS singer`, is read as that table). `EXPLAIN` decides at the end.

A level's select list is read before its `FROM`, so it is parsed in both its context's scope and the loose one
until the `FROM` clause ends: a name no table has there is refused when the `FROM` clause ends without a
derived table (at `WHERE`, `GROUP BY`, `)`, the end, ...), not at the name. Subqueries in expressions see their
level's scope; a derived table's own query sees only the levels around its level (SQLite's rule too).

Built on the BNF that Lark makes of the shipped grammar: the `WITH` copy renames every rule `any__...`; the
rules below an expression are copied once per scope (`sqlS_...`, `sqlA_...`, `sqlL_...`), and the statement,
select-list and `FROM` rules that choose a level's scope are written out here.
"""

from __future__ import annotations

import functools
import re

from genlab.automata.combine import difference
from genlab.automata.dfa import ByteDFA
from genlab.automata.lexer import Terminal, compile_terminal
from genlab.automata.regex import compile_regex
from genlab.constraints.grammar import GRAMMARS_DIR, load_parts
from genlab.constraints.sql.schema import DatabaseSchema

GENERIC = "any__"  # prefix of the rules of the WITH copy
_BARE_GUARD = "(?![A-Za-z0-9_$])"  # as NAME and the keywords in sqlite.lark
_QUOTED_GUARD = '(?!["`])'  # as QUOTED_NAME
# SQLite's unquoted identifiers: every non-ASCII character is an identifier character
_IDENTIFIER = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")


@functools.cache
def _shipped() -> tuple[tuple[Terminal, ...], tuple[int, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    terminals, ignore, rules = load_parts((GRAMMARS_DIR / "sqlite.lark").read_text(encoding="utf-8"), "start")
    return tuple(terminals), ignore, tuple((lhs, tuple(rhs)) for lhs, rhs in rules)


def _spelled(name: str) -> str:
    """A regex for `name` under SQLite's identifier comparison (ASCII letters in either case, nothing else)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in name)


def _quoted(name: str) -> str:
    """A regex for the quoted spellings of `name`: "x" and `x` (their quote doubled inside), and [x]."""
    forms = ['"' + _spelled(name).replace('"', '""') + '"', "`" + _spelled(name).replace("`", "``") + "`"]
    if "]" not in name:
        forms.append(r"\[" + _spelled(name) + r"\]")
    return "(?:" + "|".join(forms) + ")"


def _dfa_accepts(dfa: ByteDFA, text: str) -> bool:
    state = dfa.start
    for byte in text.encode("utf-8"):
        state = dfa.transitions[state, byte]
        if state < 0:
            return False
    return bool(dfa.accepting[state])


@functools.cache
def _name_dfa() -> ByteDFA:
    """The shipped grammar's NAME: an unquoted identifier that is not a reserved word."""
    return next(t for t in _shipped()[0] if t.name == "NAME").dfa


@functools.lru_cache(maxsize=1024)  # databases share the function list, and often tables and columns
def _names(rule: str, names: tuple[str, ...]) -> _Names:
    return _Names(rule, names)


class _Names:
    """The terminals and rules that spell one set of names: `<rule> -> BARE | QUOTED` (BARE only where SQLite
    lets the names go unquoted)."""

    def __init__(self, rule: str, names: tuple[str, ...]) -> None:
        self.rule = rule
        # unquoted where SQLite allows: an identifier that is not a reserved word (NAME knows them, all ASCII)
        bare = sorted(
            {n for n in names if _IDENTIFIER.fullmatch(n) and (not n.isascii() or _dfa_accepts(_name_dfa(), n))},
            key=str.lower,
        )
        self.bare_pattern = "(?:" + "|".join(_spelled(n) for n in bare) + ")" if bare else None
        self.quoted_pattern = "(?:" + "|".join(_quoted(n) for n in sorted(set(names))) + ")"
        tag = rule.upper()
        self.quoted = compile_terminal(f"Q{tag}", self.quoted_pattern + _QUOTED_GUARD)
        self.bare = compile_terminal(tag, self.bare_pattern + _BARE_GUARD) if self.bare_pattern else None
        self.terminals = [t for t in (self.quoted, self.bare) if t is not None]
        self.rules = [(rule, [t.name]) for t in self.terminals]


# What a column reference may name, from the narrowest scope to the widest (see the module docstring).
STRICT, ALIASES, LOOSE = "S", "A", "L"
_SCOPES = (STRICT, ALIASES, LOOSE)


def _widest(*scopes: str) -> str:
    return max(scopes, key=_SCOPES.index)


def _reaching(expansions: dict[str, list[tuple[str, ...]]], targets: set[str]) -> set[str]:
    """The nonterminals from which some derivation reaches one of `targets`."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for lhs, alternatives in expansions.items():
            if lhs not in found and any(s in targets or s in found for rhs in alternatives for s in rhs):
                found.add(lhs)
                changed = True
    return found


def _sequences(*parts: tuple[str, ...] | list[str]) -> list[list[str]]:
    """Every right-hand side that keeps the `parts` in order, each list part optional, each tuple part required."""
    out: list[list[str]] = [[]]
    for part in parts:
        if isinstance(part, list):
            out = [rhs + part for rhs in out] + out
        else:
            out = [rhs + list(part) for rhs in out]
    return out


def schema_parts(
    schema: DatabaseSchema, *, double_quoted_strings: bool = True
) -> tuple[list[Terminal], tuple[int, ...], list[tuple[str, list[str]]]]:
    """The SQLite grammar whose names are `schema`'s (see the module docstring), as `Grammar.from_parts` takes
    it: terminals, the ignored ones' indices, BNF rules from `start`."""
    base_terminals, ignore, base_rules = _shipped()
    by_name = {t.name: t for t in base_terminals}
    expansions: dict[str, list[tuple[str, ...]]] = {}
    for lhs, rhs in base_rules:
        expansions.setdefault(lhs, []).append(rhs)
    nonterminals = set(expansions)

    terminals = list(base_terminals)
    rules: list[tuple[str, list[str]]] = []
    name_dfa = _name_dfa()

    def add(names: _Names) -> None:
        terminals.extend(names.terminals)
        rules.extend(names.rules)

    tables = [t.name for t in schema.tables]
    every_column = sorted({c for t in schema.tables for c in t.column_names()})
    table_rules, column_rules = [], []
    for k, table in enumerate(schema.tables):
        add(tab := _names(f"sql_table_{k}", (table.name,)))
        add(col := _names(f"sql_column_{k}", table.column_names()))
        table_rules.append(tab.rule)
        column_rules.append(col.rule)
    add(_names("sql_column", tuple(every_column)))

    # an alias: any name that does not spell a table (so `table.column` restricts the column to the table's)
    spelled = _names("sql_tables", tuple(tables))
    alias = difference(name_dfa, compile_regex(spelled.bare_pattern)) if spelled.bare_pattern else name_dfa
    quoted_alias = difference(by_name["QUOTED_NAME"].dfa, compile_regex(spelled.quoted_pattern))
    assert alias is not None and quoted_alias is not None  # names are unbounded: some spell no table
    terminals += [
        Terminal("SQL_ALIAS", alias, by_name["NAME"].guard),
        Terminal("QSQL_ALIAS", quoted_alias, by_name["QUOTED_NAME"].guard),
    ]
    rules += [("sql_alias", ["SQL_ALIAS"]), ("sql_alias", ["QSQL_ALIAS"])]
    rules += [("sql_qualifier", ["sql_alias"])] + [("sql_qualifier", [t]) for t in table_rules]
    rules += [("table_name", [t]) for t in table_rules]

    # column references, per scope
    strict = [["sql_column"], ["sql_alias", "DOT", "sql_column"]] + [
        [t, "DOT", c] for t, c in zip(table_rules, column_rules)
    ]
    loose = [["name"], ["sql_alias", "DOT", "name"]] + strict[2:]
    references = {STRICT: strict, ALIASES: strict + [["name"]], LOOSE: loose}
    for scope, alternatives in references.items():
        rules += [(f"sql{scope}_column_ref", rhs) for rhs in alternatives]

    # symbols renamed inside one rule, in every scope: a call names one of this SQLite's functions (the arity is
    # EXPLAIN's to check); `x.*` names a table or an alias
    renamed: dict[str, dict[str, str]] = {"result_column": {"name": "sql_qualifier"}}
    if schema.functions:
        functions = _names("sql_function", schema.functions)
        if functions.bare is not None:
            terminals.append(functions.bare)
            renamed["function_call"] = {"NAME": functions.bare.name}

    # the rules whose language depends on the scope are copied once per scope; the others are shared
    scoped_rules = _reaching(expansions, {"column_ref", "select_stmt"}) - {"with_clause", "cte", "start"}
    made: set[str] = set()

    def scoped(symbol: str, scope: str) -> str:
        if symbol == "column_ref":
            return f"sql{scope}_column_ref"
        if symbol == "select_stmt" and scope != LOOSE:
            return f"sql{scope}_select_stmt"  # built below: its cores choose their own scope
        if symbol not in scoped_rules:
            return symbol
        name = f"sql{scope}_{symbol}"
        if name not in made:
            made.add(name)
            mapping = renamed.get(symbol, {})
            for rhs in expansions[symbol]:
                if "with_clause" not in rhs:
                    rules.append((name, [scoped(mapping.get(s, s), scope) for s in rhs]))
        return name

    for lhs, rhs in base_rules:  # the shared rules, as shipped
        if lhs not in scoped_rules and lhs not in ("start", "with_clause", "cte", "column_ref", "table_name"):
            rules.append((lhs, list(rhs)))
    if double_quoted_strings:
        # SQLite reads a double-quoted name that resolves to no column as a string literal
        terminals.append(compile_terminal("SQL_DQ_STRING", r'"(?:[^"\x00]|"")*"' + '(?!["])'))
        rules.append(("literal", ["SQL_DQ_STRING"]))
    rules += [("sql_using", ["sql_column"]), ("sql_using", ["sql_using", "COMMA", "sql_column"])]

    def join_constraint(scope: str) -> str:
        if scope == LOOSE:
            return scoped("join_constraint", LOOSE)  # USING any name
        name = f"sql{scope}_join_constraint"
        if name not in made:
            made.add(name)
            rules.extend([(name, ["ON", scoped("expr", scope)]), (name, ["USING", "LPAR", "sql_using", "RPAR"])])
        return name

    def plain_source(context: str, on: str) -> tuple[str, str]:
        """Tables only (no subquery), `ON` expressions in scope `on`: (the source, one item of it)."""
        source, item = f"sql{context}{on}_plain_source", f"sql{context}{on}_plain_item"
        if source not in made:
            made.add(source)
            rules.extend(
                [
                    (item, ["table_name"]),
                    (item, ["table_name", "table_alias"]),
                    (item, ["LPAR", source, "RPAR"]),
                    (source, [item]),
                    (source, [source, "join_op", item]),
                    (source, [source, "join_op", item, join_constraint(on)]),
                ]
            )
        return source, item

    def select_clause(scope: str, aliased: bool) -> str:
        """`SELECT` and its result columns in `scope`, at least one of them named (`AS n`) or none."""
        clause = f"sql{scope}_select_clause{int(aliased)}"
        if clause not in made:
            made.add(clause)
            unnamed, named = f"sql{scope}_result_column0", f"sql{scope}_result_column1"
            none, some = f"sql{scope}_result_columns0", f"sql{scope}_result_columns1"
            expr = scoped("expr", scope)
            rules.extend(
                [
                    (unnamed, ["STAR"]),
                    (unnamed, ["sql_qualifier", "DOT", "STAR"]),
                    (unnamed, [expr]),
                    (named, [expr, "alias"]),
                    (none, [unnamed]),
                    (none, [none, "COMMA", unnamed]),
                    (some, [named]),
                    (some, [none, "COMMA", named]),
                    (some, [some, "COMMA", unnamed]),
                    (some, [some, "COMMA", named]),
                ]
            )
            columns = some if aliased else none
            rules.extend(
                [
                    (clause, ["SELECT", columns]),
                    (clause, ["SELECT", "DISTINCT", columns]),
                    (clause, ["SELECT", "ALL", columns]),
                ]
            )
        return clause

    for context in (STRICT, ALIASES):
        # a query in a context that sees no derived table's columns; each core of it sees its own FROM's
        wider = _SCOPES[_SCOPES.index(context) :]
        statement = f"sql{context}_select_stmt"
        plain_any, plain_item = plain_source(context, LOOSE)
        derived, subquery, item = (
            f"sql{context}_derived_source",
            f"sql{context}_derived_item",
            f"sql{context}_any_item",
        )
        on = join_constraint(LOOSE)
        rules += [
            (subquery, ["LPAR", statement, "RPAR"]),
            (subquery, ["LPAR", statement, "RPAR", "table_alias"]),
            (subquery, ["LPAR", derived, "RPAR"]),
            (item, [plain_item]),
            (item, [subquery]),
            (derived, [subquery]),
            (derived, [plain_any, "join_op", subquery]),
            (derived, [plain_any, "join_op", subquery, on]),
            (derived, [derived, "join_op", item]),
            (derived, [derived, "join_op", item, on]),
        ]
        core = {p: f"sql{context}{p}_core" for p in wider}
        source, _ = plain_source(context, context)
        rules.append((f"sql{context}_from", ["FROM", source]))
        for aliased in (False, True):
            # without a derived table: the context's scope, and GROUP BY, HAVING and ORDER BY see the result
            # columns' own names (`AS n`)
            later = _widest(context, ALIASES) if aliased else context
            rules += [
                (core[later], rhs)
                for rhs in _sequences(
                    (select_clause(context, aliased),),
                    [f"sql{context}_from"],
                    [scoped("where_clause", context)],
                    [scoped("group_by", later)],
                )
            ]
        # with one: every name goes, EXPLAIN decides; its subqueries in FROM see only the context
        rules.append((f"sql{context}_derived_from", ["FROM", derived]))
        rules += [
            (core[LOOSE], rhs)
            for rhs in _sequences(
                (scoped("select_clause", LOOSE), f"sql{context}_derived_from"),
                [scoped("where_clause", LOOSE)],
                [scoped("group_by", LOOSE)],
            )
        ]
        compound = {p: f"sql{context}{p}_compound" for p in wider}
        for p in wider:
            rules.append((compound[p], [core[p]]))
            rules += [
                (compound[p], [compound[a], "compound_op", core[b]]) for a in wider for b in wider if _widest(a, b) == p
            ]
            rules += [
                (statement, rhs)
                for rhs in _sequences((compound[p],), [scoped("order_by", p)], [scoped("limit_clause", context)])
            ]

    for lhs, rhs in base_rules:
        # the generic copy (for WITH queries): every nonterminal renamed, terminals shared
        rules.append((GENERIC + lhs, [GENERIC + s if s in nonterminals else s for s in rhs]))
    for rhs in expansions["select_stmt"]:
        if rhs and rhs[0] == "with_clause":
            rules.append(("sql_with_query", [GENERIC + s if s in nonterminals else s for s in rhs]))
    top = f"sql{STRICT}_select_stmt"
    rules += [
        ("start", [top]),
        ("start", [top, "SEMICOLON"]),
        ("start", ["sql_with_query"]),
        ("start", ["sql_with_query", "SEMICOLON"]),
    ]
    unique = list(dict.fromkeys((lhs, tuple(rhs)) for lhs, rhs in rules))
    return terminals, ignore, [(lhs, list(rhs)) for lhs, rhs in unique]
