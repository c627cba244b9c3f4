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
machine). The database and the one-shot prompt are `genlab.datasets.concerts` (the demo uses them too); the
database is the same every time, so tests rebuild it to check the printed queries.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import genlab
from genlab.datasets.concerts import create_database, messages

QUESTIONS = ["What are the names of the singers from France?", "What are the names of the concerts held in 2015?"]
# SMC targets the model at this temperature, restricted to the language: a 135M model at temperature 1 rarely
# writes a sensible query, a sharper one often does
TEMPERATURE = 0.5


def answer(lm, sql: genlab.SQL, question: str) -> str | None:
    """Prints the weighted queries SMC found for `question` and returns the heaviest (None if none finished)."""
    critic = sql.critic(execute=True)
    result = genlab.generate(
        lm,
        messages(sql.schema.ddl(), question),
        sql,
        method="smc",
        n_particles=4,
        max_tokens=48,
        temperature=TEMPERATURE,
        seed=0,
        critic=critic,
    )
    posterior = result.text_posterior()
    print(f"\nQ: {question}")
    print(
        f"   {len(result.samples)} particles, {result.counts.wall_time:.1f} s, "
        f"critic ran {critic.runs} distinct queries"
    )
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
                print(
                    f"   rows: {list(run.rows)}{' ...' if run.truncated else ''}"
                    if run.ok
                    else f"   failed: {run.error or 'timed out'}"
                )
        sql.database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
