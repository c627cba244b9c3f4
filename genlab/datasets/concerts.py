"""A small SQLite database with rows (singers, concerts, who sang where), for the demo, examples and tests.

Spider's databases ship schemas only; this one has data, so queries return rows and the execution critic has
something to score. `create_database` writes the same content every time.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, name TEXT, venue TEXT, year INTEGER);
CREATE TABLE performance (
  concert_id INTEGER REFERENCES concert (concert_id),
  singer_id INTEGER REFERENCES singer (singer_id)
);
"""
SINGERS = [
    (1, "Joe Sharp", "Netherlands", 52),
    (2, "Timbaland", "United States", 32),
    (3, "Justin Brown", "France", 29),
    (4, "Rose White", "France", 41),
    (5, "John Nizinik", "France", 43),
    (6, "Tribal King", "Nigeria", 25),
]
CONCERTS = [
    (1, "Auditions", "Finale Hall", 2014),
    (2, "Super bootcamp", "Glasgow Arena", 2014),
    (3, "Home Visits", "Stade de France", 2015),
    (4, "Week 1", "Finale Hall", 2015),
]
PERFORMANCES = [(1, 2), (1, 3), (2, 1), (2, 4), (3, 3), (3, 5), (4, 6)]

# a solved question to show a model before the real one (a one-shot prompt); SmolLM2-135M follows its shape, and
# answers "What are the names of the singers from France?" (the demo's question) with the right query
EXAMPLE = ("Which singers are from Nigeria?", "SELECT name FROM singer WHERE country = 'Nigeria'")
SYSTEM = (
    "You are a SQLite expert. Given the database schema, answer the question with one SQLite query and nothing else."
)


def create_database(path: str | Path) -> Path:
    """Writes the concerts database to `path` (which must not exist yet) and returns the path."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; create_database writes a new file")
    with closing(sqlite3.connect(path)) as con:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGERS)
        con.executemany("INSERT INTO concert VALUES (?, ?, ?, ?)", CONCERTS)
        con.executemany("INSERT INTO performance VALUES (?, ?)", PERFORMANCES)
        con.commit()
    return path


def messages(ddl: str, question: str) -> list[dict]:
    """A one-shot chat prompt: the schema in the system message, the solved example, then `question`."""
    return [
        {"role": "system", "content": SYSTEM + "\n\n" + ddl},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": question},
    ]
