"""The shipped SQLite grammar (`grammars/sqlite.lark`), specialised to one database's table and column names.

The specialised language has two parts:

- a query without `WITH` may name only the database's tables in `FROM`/`JOIN`/`IN`, and only its columns: bare
  (`name`), qualified by a table (`singer.name`, only that table's columns) or by an alias (`T1.name`, any of the
  database's columns; an alias is any name that is not a table's). Names are written as SQLite reads them:
  ASCII letters in any case, plain where SQLite allows (not a reserved word, identifier characters only), or
  quoted as `"x"`, `` `x` `` or `[x]`. A double-quoted text that names no column is a string, as in SQLite.
- a query that starts with `WITH` may also name its common table expressions and their columns, which no
  context-free grammar can track: it keeps the shipped grammar's rules (any name), and the `EXPLAIN` check on the
  database decides it at the end.

Built on the BNF that Lark makes of the shipped grammar: the rules are copied twice (the `WITH` copy renamed
`any__...`) and the rules that name tables and columns are replaced in the first copy.
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
def _names(rule: str, names: tuple[str, ...]) -> "_Names":
    return _Names(rule, names)


class _Names:
    """The terminals and rules that spell one set of names: `<rule> -> BARE | QUOTED` (BARE only where SQLite
    lets the names go unquoted)."""

    def __init__(self, rule: str, names: tuple[str, ...]) -> None:
        self.rule = rule
        # unquoted where SQLite allows: an identifier that is not a reserved word (NAME knows them, all ASCII)
        bare = sorted({n for n in names
                       if _IDENTIFIER.fullmatch(n) and (not n.isascii() or _dfa_accepts(_name_dfa(), n))}, key=str.lower)
        self.bare_pattern = "(?:" + "|".join(_spelled(n) for n in bare) + ")" if bare else None
        self.quoted_pattern = "(?:" + "|".join(_quoted(n) for n in sorted(set(names))) + ")"
        tag = rule.upper()
        self.quoted = compile_terminal(f"Q{tag}", self.quoted_pattern + _QUOTED_GUARD)
        self.bare = compile_terminal(tag, self.bare_pattern + _BARE_GUARD) if self.bare_pattern else None
        self.terminals = [t for t in (self.quoted, self.bare) if t is not None]
        self.rules = [(rule, [t.name]) for t in self.terminals]


def schema_parts(schema: DatabaseSchema, *, double_quoted_strings: bool = True
                 ) -> tuple[list[Terminal], tuple[int, ...], list[tuple[str, list[str]]]]:
    """The SQLite grammar whose names are `schema`'s (see the module docstring), as `Grammar.from_parts` takes
    it: terminals, the ignored ones' indices, BNF rules from `start`."""
    base_terminals, ignore, base_rules = _shipped()
    by_name = {t.name: t for t in base_terminals}
    nonterminals = {lhs for lhs, _ in base_rules}

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
    terminals += [Terminal("SQL_ALIAS", alias, by_name["NAME"].guard),
                  Terminal("QSQL_ALIAS", quoted_alias, by_name["QUOTED_NAME"].guard)]
    rules += [("sql_alias", ["SQL_ALIAS"]), ("sql_alias", ["QSQL_ALIAS"])]
    rules += [("sql_qualifier", ["sql_alias"])] + [("sql_qualifier", [t]) for t in table_rules]

    replaced = {
        "table_name": [[t] for t in table_rules],
        "column_ref": [["sql_column"], ["sql_alias", "DOT", "sql_column"]]
        + [[t, "DOT", c] for t, c in zip(table_rules, column_rules)],
    }
    # `name` in these rules (and the anonymous repeats they use) means a column or a qualifier
    rewritten = {"join_constraint": {"name": "sql_column"}, "result_column": {"name": "sql_qualifier"}}
    if schema.functions:  # a call names one of this SQLite's functions (the arity is EXPLAIN's to check)
        functions = _names("sql_function", schema.functions)
        if functions.bare is not None:
            terminals.append(functions.bare)
            rewritten["function_call"] = {"NAME": functions.bare.name}
    clones: dict[tuple[str, tuple], str] = {}
    expansions: dict[str, list[tuple[str, ...]]] = {}
    for lhs, rhs in base_rules:
        expansions.setdefault(lhs, []).append(rhs)

    def rewrite(symbols: tuple[str, ...], mapping: dict[str, str]) -> list[str]:
        out = []
        for s in symbols:
            if s in mapping:
                out.append(mapping[s])
            elif s.startswith("__") and s in nonterminals:
                key = (s, tuple(sorted(mapping.items())))
                if key not in clones:
                    clones[key] = f"sql{s}_{len(clones)}"
                    for rhs in expansions[s]:
                        rules.append((clones[key], rewrite(rhs, mapping)))
                out.append(clones[key])
            else:
                out.append(s)
        return out

    for lhs, rhs in base_rules:
        # the generic copy (for WITH queries): every nonterminal renamed, terminals shared
        rules.append((GENERIC + lhs, [GENERIC + s if s in nonterminals else s for s in rhs]))
        if lhs in replaced or lhs == "start" or "with_clause" in rhs:
            continue
        rules.append((lhs, rewrite(rhs, rewritten[lhs]) if lhs in rewritten else list(rhs)))
    for lhs, alternatives in replaced.items():
        rules += [(lhs, rhs) for rhs in alternatives]
    if double_quoted_strings:
        # SQLite reads a double-quoted name that resolves to no column as a string literal
        terminals.append(compile_terminal("SQL_DQ_STRING", r'"(?:[^"\x00]|"")*"' + '(?!["])'))
        rules.append(("literal", ["SQL_DQ_STRING"]))
    for rhs in expansions["select_stmt"]:
        if rhs and rhs[0] == "with_clause":
            rules.append(("sql_with_query", [GENERIC + s if s in nonterminals else s for s in rhs]))
    rules += [("start", ["select_stmt"]), ("start", ["select_stmt", "SEMICOLON"]),
              ("start", ["sql_with_query"]), ("start", ["sql_with_query", "SEMICOLON"])]
    return terminals, ignore, rules
