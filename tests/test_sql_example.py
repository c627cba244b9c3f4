"""examples/text_to_sql.py runs end to end, and every top query it prints compiles on its database.

The example is run as a script (a subprocess, as a user runs it); its database lives in a temporary folder that
is gone when it exits, so the test rebuilds the same database (`genlab.datasets.concerts`) and asks
SQLite to EXPLAIN each printed top query there.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from genlab.datasets import concerts

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "text_to_sql.py"


def load_example():
    spec = importlib.util.spec_from_file_location("text_to_sql_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_and_its_top_queries_compile(tmp_path):
    run = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    example = load_example()
    assert re.findall(r"^Q: (.*)$", run.stdout, re.M) == example.QUESTIONS, run.stdout

    tops = [ast.literal_eval(text) for text in re.findall(r"^top: (.*)$", run.stdout, re.M)]
    path = concerts.create_database(tmp_path / "concerts.sqlite")
    with closing(sqlite3.connect(path)) as con:
        for query in tops:
            con.execute("EXPLAIN " + query)  # raises sqlite3.Error if the query does not compile
    assert len(re.findall(r"^   rows: ", run.stdout, re.M)) == len(tops), run.stdout
