"""`SQL`: one read-only SQLite query that runs on the user's database.

The grammar is `grammars/sqlite.lark` with the database's own table and column names (`grammar.py`), so a
sampled query can only name what exists; what no grammar can see (an alias used out of scope, a column of a
table not in `FROM`, a function's arity, the columns a derived table names: `FROM (SELECT count(*) AS n ...) AS
t`) is decided by SQLite itself: `EXPLAIN` on a read-only connection
(`database.py`) as the end-of-output check, and, for SMC, an execution critic that runs the query under row and
time budgets and can score empty results.
"""

from __future__ import annotations

import math
import os
import sqlite3
from typing import Any

from genlab.constraints.grammar import Grammar
from genlab.constraints.sql.database import Execution, ReadOnlyDatabase
from genlab.constraints.sql.grammar import schema_parts
from genlab.constraints.sql.schema import Column, DatabaseSchema, ForeignKey, Table
from genlab.errors import DatabaseError

__all__ = ["SQL", "ExecutionCritic", "Execution", "DatabaseSchema", "Table", "Column", "ForeignKey"]


class SQL(Grammar):
    """Output must be one read-only SQLite `SELECT` (optionally `WITH ...`) over `database`'s tables and columns.

    `database`: a path to a SQLite file (opened read-only; never created or changed) or a `sqlite3.Connection`
    (its file is reopened read-only; an in-memory database is copied). `explain=True` makes `EXPLAIN` on the
    database the end-of-output check (`validate`), so SMC gives weight 0 to queries SQLite refuses and masking
    marks them invalid. `double_quoted_strings`: accept `"text"` as a string where it names no column, as SQLite
    does (Spider's gold queries rely on it).
    """

    def __init__(
        self,
        database: str | os.PathLike | sqlite3.Connection,
        *,
        explain: bool = True,
        double_quoted_strings: bool = True,
        busy_timeout: float = 1.0,
        max_columns: int = 1_000_000,
        max_items: int = 100_000,
        max_lexer_states: int = 50_000,
    ) -> None:
        self.database = ReadOnlyDatabase(database, busy_timeout=busy_timeout)
        if not self.database.schema.tables:
            raise DatabaseError(f"{self.database.name} has no tables or views to query")
        self.explain_check = explain
        terminals, ignore, rules = schema_parts(self.database.schema, double_quoted_strings=double_quoted_strings)
        self._init_parts(
            terminals,
            rules,
            "start",
            ignore=ignore,
            source=f"sqlite.lark over {self.database.name}",
            max_columns=max_columns,
            max_items=max_items,
            max_lexer_states=max_lexer_states,
        )

    def __repr__(self) -> str:
        return f"SQL({self.database.name!r}, tables={len(self.schema.tables)})"

    @property
    def schema(self) -> DatabaseSchema:
        """The database's tables, columns and keys, as read when the constraint was built."""
        return self.database.schema

    @property
    def end_checks(self) -> tuple[str, ...]:  # type: ignore[override]
        return (f"EXPLAIN on {self.database.name}",) if self.explain_check else ()

    def validate(self, text: str) -> bool:
        """In the language, and (with `explain`) compiled by SQLite on the database."""
        return self.check(text) and (not self.explain_check or self.explain(text) is None)

    def explain(self, text: str) -> str | None:
        """SQLite's error for `text` on this database (it compiles the statement without running it), or None.
        SQLite's verdict only: statements outside the language (e.g. `VACUUM`) may compile; `check` says what is
        in it."""
        return self.database.explain(text)

    def execute(self, text: str, *, max_rows: int = 1000, timeout: float = 1.0) -> Execution:
        """Run `text` read-only, at most `max_rows` rows fetched and `timeout` seconds spent."""
        return self.database.execute(text, max_rows=max_rows, timeout=timeout)

    def critic(
        self,
        *,
        execute: bool = True,
        max_rows: int = 100,
        timeout: float = 1.0,
        empty_log_weight: float = math.log(0.1),
    ) -> ExecutionCritic:
        """An SMC critic (`smc(..., critic=...)`, `generate(..., critic=...)`) that scores finished queries on the
        database: -inf when `EXPLAIN` fails, when execution fails or runs past `timeout`; `empty_log_weight` when
        it returns no rows; 0 otherwise. Unfinished queries score 0, so the critic costs nothing per token."""
        return ExecutionCritic(
            self, execute=execute, max_rows=max_rows, timeout=timeout, empty_log_weight=empty_log_weight
        )

    def describe(self) -> dict[str, Any]:
        return {
            "type": "sql",
            "database": self.database.name,
            "tables": len(self.schema.tables),
            "columns": sum(len(t.columns) for t in self.schema.tables),
            "explain": self.explain_check,
        }


class ExecutionCritic:
    """Scores finished queries by what SQLite makes of them on the database (see `SQL.critic`). Each distinct
    text is checked once; `calls` and `runs` count the lookups and the queries really sent to SQLite."""

    def __init__(self, sql: SQL, *, execute: bool, max_rows: int, timeout: float, empty_log_weight: float) -> None:
        self.sql, self.run_queries = sql, execute
        self.max_rows, self.timeout, self.empty_log_weight = max_rows, timeout, empty_log_weight
        self._scores: dict[str, float] = {}
        self.calls = self.runs = 0

    def __call__(self, text: str, complete: bool) -> float:
        if not complete:
            return 0.0
        self.calls += 1
        score = self._scores.get(text)
        if score is None:
            score = self._scores[text] = self._score(text)
        return score

    def _score(self, text: str) -> float:
        self.runs += 1
        if self.sql.explain(text) is not None:
            return -math.inf
        if not self.run_queries:
            return 0.0
        result = self.sql.execute(text, max_rows=self.max_rows, timeout=self.timeout)
        if not result.ok:
            return -math.inf
        return self.empty_log_weight if not result.rows else 0.0
