"""Text-to-SQL on a real SQLite database: SMC-AWRS with `genlab.SQL` and its execution critic.

Creates a small concerts database (singers, concerts, who sang where) in a temporary folder, builds
`genlab.SQL(path)` over it (a grammar of SQLite SELECTs that can only name this database's tables and columns,
with SQLite's EXPLAIN as the end-of-output check) and asks the default model (SmolLM2-135M-Instruct, CPU) two
questions, after one solved example. Each answer is sampled by SMC with AWRS proposals and `sql.critic()`,
which runs every finished query on the database (read-only, under row and time budgets): a query that fails
gets weight 0, one that returns no rows a tenth of the weight. The script prints each question's weighted
queries and runs the top one.

    python examples/text_to_sql.py

Two questions, 4 particles, at most 48 tokens each: under a minute on two idle CPU cores (several on a busy
machine). `create_database` is deterministic, so tests rebuild the same database to check the printed queries.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import genlab

SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, name TEXT, venue TEXT, year INTEGER);
CREATE TABLE performance (
  concert_id INTEGER REFERENCES concert (concert_id),
  singer_id INTEGER REFERENCES singer (singer_id)
);
"""
SINGERS = [(1, "Joe Sharp", "Netherlands", 52), (2, "Timbaland", "United States", 32),
           (3, "Justin Brown", "France", 29), (4, "Rose White", "France", 41), (5, "John Nizinik", "France", 43),
           (6, "Tribal King", "Nigeria", 25)]
CONCERTS = [(1, "Auditions", "Finale Hall", 2014), (2, "Super bootcamp", "Glasgow Arena", 2014),
            (3, "Home Visits", "Stade de France", 2015), (4, "Week 1", "Finale Hall", 2015)]
PERFORMANCES = [(1, 2), (1, 3), (2, 1), (2, 4), (3, 3), (3, 5), (4, 6)]

# a solved question shown to the model before each real one (its one-shot example)
EXAMPLE = ("Which singers are older than 40?", "SELECT name FROM singer WHERE age > 40")
QUESTIONS = ["What are the names of the singers from France?", "What are the names of the concerts held in 2015?"]
# SMC targets the model at this temperature, restricted to the language: a 135M model at temperature 1 rarely
# writes a sensible query, a sharper one often does
TEMPERATURE = 0.5
SYSTEM = ("You are a SQLite expert. Given the database schema, answer the question with one SQLite query and "
          "nothing else.")


def create_database(path: Path) -> Path:
    """Writes the concerts database to `path` (same content every time) and returns the path."""
    with closing(sqlite3.connect(path)) as con:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGERS)
        con.executemany("INSERT INTO concert VALUES (?, ?, ?, ?)", CONCERTS)
        con.executemany("INSERT INTO performance VALUES (?, ?)", PERFORMANCES)
        con.commit()
    return path


def messages(sql: genlab.SQL, question: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM + "\n\n" + sql.schema.ddl()},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": question},
    ]


def answer(lm, sql: genlab.SQL, question: str) -> str | None:
    """Prints the weighted queries SMC found for `question` and returns the heaviest (None if none finished)."""
    critic = sql.critic(execute=True)
    result = genlab.generate(lm, messages(sql, question), sql, method="smc", n_particles=4, max_tokens=48,
                             temperature=TEMPERATURE, seed=0, critic=critic)
    posterior = result.text_posterior()
    print(f"\nQ: {question}")
    print(f"   {len(result.samples)} particles, {result.counts.wall_time:.1f} s, "
          f"critic ran {critic.runs} distinct queries")
    for text, weight in posterior.items():
        print(f"   {weight:.2f}  {text!r}")
    if not posterior:
        print("   no query finished with non-zero weight")
        return None
    top = next(iter(posterior))
    print(f"top: {top!r}")
    return top


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = create_database(Path(folder) / "concerts.sqlite")
        lm = genlab.load()
        sql = genlab.SQL(path)
        print(f"{sql!r}: {', '.join(t.name for t in sql.schema.tables)}")
        for question in QUESTIONS:
            top = answer(lm, sql, question)
            if top is not None:
                run = sql.execute(top, max_rows=10)
                print(f"   rows: {list(run.rows)}{' ...' if run.truncated else ''}" if run.ok
                      else f"   failed: {run.error or 'timed out'}")
        sql.database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
