"""A read-only view of the user's SQLite database, for the checks SQL constraints run on it.

Three locks keep it read-only, any one of which is enough: the connection is opened with `mode=ro` (or, for an
in-memory database, is a private copy), `PRAGMA query_only` is on, and an authorizer refuses every action but
reading and calling functions. Nothing here creates, changes or holds a lock on the user's file beyond a check:
connections run in autocommit mode, so a read lock lasts one statement. Execution runs under a time budget
(SQLite's progress handler interrupts the statement) and a row budget (rows past it are never fetched).
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from genlab.constraints.sql.schema import DatabaseSchema, read_schema
from genlab.errors import DatabaseError

# authorizer action codes a read-only SELECT needs (sqlite3.SQLITE_SELECT, _READ, _FUNCTION, _RECURSIVE)
_ALLOWED_ACTIONS = frozenset({21, 20, 31, 33})
_PROGRESS_OPS = 1000  # virtual-machine instructions between two looks at the clock


@dataclass(frozen=True)
class Execution:
    """What running one query gave: up to `max_rows` rows, or why it failed or was stopped."""

    rows: tuple[tuple, ...] = ()
    truncated: bool = False  # more rows existed than the row budget
    error: str | None = None  # SQLite's message when the query failed
    interrupted: bool = False  # stopped by the time budget
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


class ReadOnlyDatabase:
    """A read-only connection to a SQLite file (by path) or to a private copy of an in-memory connection.

    Picklable: a pickled path database reopens its file; a copied in-memory one travels as its SQL dump.
    """

    def __init__(self, database: str | os.PathLike | sqlite3.Connection, *, busy_timeout: float = 1.0) -> None:
        self.busy_timeout = busy_timeout
        self.path: Path | None = None
        self._dump: list[str] | None = None
        if isinstance(database, sqlite3.Connection):
            file = _main_file(database)
            if file:
                self.path = Path(file)
            else:
                self._dump = list(database.iterdump())
        elif isinstance(database, (str, os.PathLike)):
            self.path = Path(database)
        else:
            raise TypeError(f"SQL takes a path to a SQLite file or a sqlite3.Connection, not {type(database).__name__}")
        self._con: sqlite3.Connection | None = None
        self.schema: DatabaseSchema = self._open_and_read()

    def __repr__(self) -> str:
        return f"ReadOnlyDatabase({str(self.path) if self.path else ':memory: copy'!r})"

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "an in-memory database"

    def _open_and_read(self) -> DatabaseSchema:
        con = self._connect()
        try:
            schema = read_schema(con)
        except sqlite3.DatabaseError as e:  # "file is not a database", "database is locked", ...
            con.close()
            raise DatabaseError(f"cannot read the schema of {self.name}: {e}") from e
        con.set_authorizer(_authorize)  # from here on the connection may only read (pragmas came first)
        self._con = con
        return schema

    def connection(self) -> sqlite3.Connection:
        """The read-only connection (reopened on first use after unpickling)."""
        if self._con is None:
            con = self._connect()
            con.set_authorizer(_authorize)
            self._con = con
        return self._con

    def _connect(self) -> sqlite3.Connection:
        if self.path is not None:
            if not self.path.exists():
                raise DatabaseError(f"SQLite database {str(self.path)!r} does not exist")
            if not self.path.is_file():
                raise DatabaseError(f"SQLite database {str(self.path)!r} is not a file")
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
            try:
                con = sqlite3.connect(
                    uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as e:
                raise DatabaseError(f"cannot open SQLite database {str(self.path)!r} read-only: {e}") from e
        else:
            con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            for statement in self._dump or ():
                con.execute(statement)
        con.execute("PRAGMA query_only = ON")
        return con

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_con"] = None
        return state

    def explain(self, sql: str) -> str | None:
        """SQLite's error message when `sql` does not compile on this database (unknown names, scope and arity
        errors), else None. Nothing runs: `EXPLAIN` only compiles."""
        con = self.connection()
        try:
            con.execute("EXPLAIN " + sql).fetchall()
        except (sqlite3.Error, sqlite3.Warning) as e:  # Warning: more than one statement
            return str(e) or type(e).__name__
        return None

    def execute(self, sql: str, *, max_rows: int = 1000, timeout: float = 1.0) -> Execution:
        """Run `sql`, fetching at most `max_rows` rows and stopping it after `timeout` seconds."""
        con = self.connection()
        t0 = time.perf_counter()
        deadline = t0 + timeout
        stopped = False

        def progress() -> int:
            nonlocal stopped
            stopped = time.perf_counter() > deadline
            return int(stopped)

        con.set_progress_handler(progress, _PROGRESS_OPS)
        cursor = None
        try:
            cursor = con.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
        except (sqlite3.Error, sqlite3.Warning) as e:
            seconds = time.perf_counter() - t0
            if stopped:
                return Execution(interrupted=True, error=None, seconds=seconds)
            return Execution(error=str(e) or type(e).__name__, seconds=seconds)
        finally:
            con.set_progress_handler(None, 0)
            if cursor is not None:
                cursor.close()  # resets the statement: its read lock ends here
        truncated = len(rows) > max_rows
        return Execution(tuple(rows[:max_rows]), truncated, seconds=time.perf_counter() - t0)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _authorize(action: int, arg1, arg2, db_name, trigger) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def _main_file(con: sqlite3.Connection) -> str:
    """The file behind a connection's main database ("" for an in-memory or temporary one)."""
    try:
        for _, name, file in con.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return file or ""
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot read the connection's database list: {e}") from e
    return ""
