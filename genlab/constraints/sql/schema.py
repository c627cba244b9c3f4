"""What a SQLite database holds, as SQL constraints need it: tables and views, their columns, keys.

Read from the database itself (`sqlite_schema` and the `table_xinfo`/`foreign_key_list` pragmas), so the names
are the ones SQLite resolves, in their declared spelling. SQLite's own tables (`sqlite_*`) are left out: no query
of the user's data reads them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

# SQLite's built-in aggregates (`PRAGMA function_list` lists them as window functions, with the pure window
# functions such as rank() that need an OVER clause, which the grammar does not have)
AGGREGATES = frozenset(
    {
        "avg",
        "count",
        "group_concat",
        "json_group_array",
        "json_group_object",
        "max",
        "min",
        "string_agg",
        "sum",
        "total",
    }
)
_NEVER_CALLED = frozenset({"load_extension"})

# the implicit rowid column's names, usable on every table that is not WITHOUT ROWID and has no column of that name
ROWID_NAMES = ("rowid", "oid", "_rowid_")


@dataclass(frozen=True)
class Column:
    """A column: its name, declared type ("" when none), and whether it is part of the primary key."""

    name: str
    type: str = ""
    primary_key: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """`columns` of this table reference `ref_columns` of `ref_table` (empty: the referenced primary key)."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table or view. `rowid` says whether the implicit rowid names may be selected from it."""

    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    view: bool = False
    rowid: bool = False
    sql: str = ""  # the CREATE statement SQLite stores

    def column_names(self, *, with_rowid: bool = True) -> tuple[str, ...]:
        """The names a query may read from this table; SQLite's hidden rowid names too unless a column has them."""
        names = tuple(c.name for c in self.columns)
        if with_rowid and self.rowid:
            taken = {n.lower() for n in names}
            names += tuple(n for n in ROWID_NAMES if n not in taken)
        return names


@dataclass(frozen=True)
class DatabaseSchema:
    """The tables and views of one SQLite database, in `sqlite_schema` order, and the functions a query may call
    (`functions`: lower-case names; empty when SQLite cannot list them, and then any name may be called)."""

    tables: tuple[Table, ...]
    functions: tuple[str, ...] = ()

    def table(self, name: str) -> Table:
        """The table named `name` (SQLite's rule: ASCII letters compare case-insensitively)."""
        key = fold(name)
        for t in self.tables:
            if fold(t.name) == key:
                return t
        raise KeyError(name)

    def ddl(self) -> str:
        """The CREATE statements, one per table, as a prompt shows a model the schema."""
        return ";\n".join(t.sql for t in self.tables if t.sql) + ";"


def fold(name: str) -> str:
    """SQLite's identifier comparison key: only ASCII A-Z fold to lower case."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_schema(con: sqlite3.Connection) -> DatabaseSchema:
    """The schema of the main database of `con` (tables and views, not SQLite's internal ones)."""
    rows = con.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY rowid"
    ).fetchall()
    tables = []
    for kind, name, sql in rows:
        info = con.execute(f"PRAGMA main.table_xinfo({_quote(name)})").fetchall()
        # table_xinfo rows: cid, name, type, notnull, default, pk, hidden (1: a virtual table's hidden column)
        columns = tuple(Column(r[1], r[2] or "", bool(r[5])) for r in info if r[6] in (0, 2, 3))
        fks: dict[int, list] = {}
        for r in con.execute(f"PRAGMA main.foreign_key_list({_quote(name)})").fetchall():
            # id, seq, table, from, to, on_update, on_delete, match
            fks.setdefault(r[0], []).append(r)
        foreign = tuple(
            ForeignKey(tuple(r[3] for r in group), group[0][2], tuple(r[4] for r in group if r[4] is not None))
            for _, group in sorted(fks.items())
        )
        view = kind == "view"
        rowid = not view and _has_rowid(con, name)
        tables.append(Table(name, columns, foreign, view, rowid, sql or ""))
    return DatabaseSchema(tuple(tables), _functions(con))


def _functions(con: sqlite3.Connection) -> tuple[str, ...]:
    """The scalar functions and aggregates this SQLite has (`PRAGMA function_list`, SQLite 3.30+)."""
    try:
        rows = con.execute("PRAGMA function_list").fetchall()
    except sqlite3.Error:
        return ()
    # rows: name, builtin, type ('s' scalar, 'a' aggregate, 'w' window), encoding, arguments, flags
    names = {r[0].lower() for r in rows if r[2] in ("s", "a") or (r[2] == "w" and r[0].lower() in AGGREGATES)}
    return tuple(sorted(names - _NEVER_CALLED))


def _has_rowid(con: sqlite3.Connection, table: str) -> bool:
    try:
        con.execute(f"EXPLAIN SELECT rowid FROM main.{_quote(table)}")
    except sqlite3.Error:
        return False  # WITHOUT ROWID, or a virtual table without one
    return True
