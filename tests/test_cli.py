"""The `genlab` command: `demo` against transformers' own `generate`; `generate` and `compare` run as the console
script, their outputs checked with independent oracles (re.fullmatch, jsonschema, Python's own parser); help
texts complete; user errors as one line on stderr with a non-zero status and no traceback."""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest
import torch

from genlab.cli import DEMO_PERSON, build_parser, main
from genlab.datasets import concerts
from genlab.models import load

_SCRIPT = Path(sys.executable).with_name("genlab")
# the installed console script; `python -m genlab.cli` where the environment has none on disk
GENLAB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "genlab.cli"]
QUICK = ["--quiet", "--particles", "4", "--seed", "0"]


def genlab(*args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(GENLAB + list(args), capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_demo_matches_generate_and_reports_incomplete(capsys):
    prompt = "Name three primary colours in one short sentence."
    pattern = r"[0-9]{2}-[0-9]{2}"  # \d would also admit Unicode digits, as re does
    assert (
        main(
            [
                "demo",
                "--prompt",
                prompt,
                "--max-tokens",
                "8",
                "--regex",
                pattern,
                "--samples",
                "2",
                "--compare-particles",
                "32",
            ]
        )
        == 0
    )
    free, constrained, extraction, text_to_sql, compare = capsys.readouterr().out.split("\n\n")
    lines = dict(line.split(None, 1) for line in free.splitlines())
    assert lines["status"].startswith("incomplete: stopped at max_tokens=8")

    lm = load(device="cpu")
    chat = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([lm.encode(chat)])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert lines["output"] == lm.tokenizer.decode(out[0, ids.shape[1] :]).strip()

    outputs = re.findall(r"^output\s+'(.*)'\s+log w = .*\bcomplete$", constrained, re.M)
    assert len(outputs) == 2 and all(re.fullmatch(pattern, text) for text in outputs), constrained

    objects = re.findall(r"^output\s+([0-9.]+)\s+(\{.*\})$", extraction, re.M)
    assert objects, extraction
    for _, text in objects:
        jsonschema.validate(json.loads(text), DEMO_PERSON)
    assert abs(sum(float(w) for w, _ in objects) - 1) < 0.01 or len(objects) == 3

    queries = re.findall(r"^output\s+[0-9.]+\s+(.*)$", text_to_sql, re.M)
    assert queries and re.search(r"^rows\s+\[", text_to_sql, re.M), text_to_sql
    with tempfile.TemporaryDirectory() as folder:
        db = concerts.create_database(Path(folder) / "c.sqlite")
        with closing(sqlite3.connect(db)) as con:
            for query in queries:  # the critic ran each on the database: SQLite itself must compile them
                con.execute("EXPLAIN " + query)
    assert "token masking" in compare and "SMC-AWRS" in compare and "' red.'" in compare


# ---------------------------------------------------------------------------------------------------- help


def test_help_lists_the_commands():
    run = genlab("--help")
    assert run.returncode == 0, run.stderr
    for command in ("generate", "compare", "batch", "demo"):
        assert re.search(rf"^\s+{command}\s+\S", run.stdout, re.M), run.stdout


@pytest.mark.parametrize("command", ["generate", "compare", "batch", "demo"])
def test_subcommand_help(command):
    run = genlab(command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: genlab {command}")
    if command in ("generate", "compare"):
        for flag in (
            "--regex",
            "--json-schema",
            "--pydantic",
            "--grammar",
            "--sql",
            "--model",
            "--particles",
            "--max-tokens",
            "--temperature",
            "--seed",
            "--json",
            "--raw",
            "--quiet",
            "--debug",
        ):
            assert flag in run.stdout, (command, flag)
    if command == "batch":
        for flag in (
            "--regex",
            "--json-schema",
            "--grammar",
            "--sql",
            "--model",
            "--method",
            "--particles",
            "--ray",
            "--address",
            "--workers",
            "--cpus-per-worker",
            "--gpus-per-worker",
            "--quiet",
        ):
            assert flag in run.stdout, (command, flag)
    if command == "generate":
        for method in ("smc", "smc-mask", "awrs", "mask", "rejection", "rerank"):
            assert re.search(rf"^\s+{method}\s+\w", run.stdout, re.M), method


def test_every_option_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "generate" in a.choices).choices
    for name, sub in [("genlab", parser), *subparsers.items()]:
        for action in sub._actions:
            assert action.help, (name, action.dest)


# ---------------------------------------------------------------------------------------------------- generate


def _table_outputs(stdout: str) -> list[tuple[float, int, str, str]]:
    """(weight, count, status, text) of each row of `generate`'s table."""
    rows = re.findall(r"^\s*([0-9.]+)\s+(\d+)\s+(complete|incomplete|invalid)\s+(['\"].*['\"])$", stdout, re.M)
    return [(float(w), int(n), status, ast.literal_eval(text)) for w, n, status, text in rows]


def test_generate_regex_outputs_fullmatch():
    pattern = r"2024-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])"
    run = genlab("generate", "Give a date in 2024.", "--regex", pattern, "--max-tokens", "12", *QUICK)
    assert run.returncode == 0, run.stderr
    rows = _table_outputs(run.stdout)
    assert 1 <= sum(n for _, n, _, _ in rows) <= 4, run.stdout  # optimal resampling: at most N, all distinct
    complete = [(w, text) for w, _, status, text in rows if status == "complete"]
    assert complete and all(re.fullmatch(pattern, text) for _, text in complete), run.stdout
    assert abs(sum(w for w, _ in complete) - 1) < 0.01, run.stdout
    summary = run.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"log P\(constraint\) estimate (-[0-9.]+); ESS [0-9.]+ of [1-4]; (\d+) model calls \(\d+ rows\), (\d+) checks, "
        r"(\d+) masks, (?:\d+ steps on fetched masks, )?(\d+) tokens, [0-9.]+ s",
        summary,
    )
    assert m, summary
    assert float(m[1]) < 0 and int(m[2]) > 1 and int(m[3]) > 0 and int(m[4]) == 0 and int(m[5]) >= 10


def test_generate_heals_raw_prompts():
    """`--raw` text prompts are healed by default (the header says what was backed off), `--no-heal` turns it off,
    chat prompts are not healed; outputs are the user's part and fullmatch the regex."""
    pattern = r"(red|grey|blue)\."
    args = ["generate", "The color of the sky is ", "--regex", pattern, "--max-tokens", "6", *QUICK]
    run = genlab(*args, "--raw")
    assert run.returncode == 0, run.stderr
    assert "healing     ' ' backed off the prompt" in run.stdout, run.stdout
    complete = [text for _, _, status, text in _table_outputs(run.stdout) if status == "complete"]
    assert complete and all(re.fullmatch(pattern, text) for text in complete), run.stdout
    off = genlab(*args, "--raw", "--no-heal", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["healed"] == "", off.stderr
    assert "healing     none" in genlab(*args).stdout  # through the chat template


PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("method", ["smc", "mask"])
def test_generate_json_schema_json_output(tmp_path, method):
    schema_file = tmp_path / "person.json"
    schema_file.write_text(json.dumps(PERSON_SCHEMA))
    run = genlab(
        "generate",
        "Extract as JSON: Ana Ruiz is 31 years old.",
        "--json-schema",
        str(schema_file),
        "--max-tokens",
        "24",
        "--method",
        method,
        "--json",
        *QUICK,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["method"] == {"smc": "smc-awrs", "mask": "mask"}[method] and out["chat"] is True
    n = len(out["texts"])
    assert n == 4 and all(len(out[k]) == n for k in ("log_weights", "posterior", "complete", "valid", "parsed"))
    assert any(out["complete"]), out
    for text, complete, valid, parsed in zip(out["texts"], out["complete"], out["valid"], out["parsed"]):
        if complete and valid:
            value = json.loads(text)
            jsonschema.validate(value, PERSON_SCHEMA)
            assert parsed == value
        else:
            assert parsed is None
    assert abs(sum(out["posterior"]) - 1) < 1e-9
    assert out["log_marginal"] is not None and out["log_marginal"] < 0
    assert set(out["counts"]) == {
        "model_calls",
        "checks",
        "masks",
        "tokens",
        "wall_time",
        "mask_hits",
        "rows",
        "drafts_proposed",
        "drafts_accepted",
    }
    assert (out["counts"]["masks"] > 0) == (method == "mask")


def test_generate_sql(tmp_path):
    db = concerts.create_database(tmp_path / "concerts.sqlite")
    before = db.read_bytes()
    run = genlab(
        "generate",
        "What are the names of the singers from France?",
        "--sql",
        str(db),
        "--system",
        "Answer with one SQLite query.",
        "--max-tokens",
        "32",
        "--json",
        *QUICK,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["constraint"] == f"SQL on {db}"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        for text, complete, valid, weight in zip(out["texts"], out["complete"], out["valid"], out["posterior"]):
            if complete and weight > 0:  # SMC weighs only queries that SQLite compiles on the database
                con.execute("EXPLAIN " + text)
                assert valid
    assert db.read_bytes() == before
    missing = genlab("generate", "x", "--sql", str(tmp_path / "none.sqlite"), *QUICK)
    _one_line_error(missing, "none.sqlite", "does not exist")


def test_batch_command_resumes(tmp_path):
    records = [{"id": i, "prompt": f"Phone number {i}?"} for i in range(3)]
    records.append({"id": "json", "prompt": "A person?", "json_schema": PERSON_SCHEMA})
    records.append({"id": "bad", "prompt": "x", "regex": "(a"})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    out = tmp_path / "out.jsonl"
    args = ["batch", str(source), str(out), "--regex", "[0-9]{3}-[0-9]{4}", "--max-tokens", "12", *QUICK]
    run = genlab(*args)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"2 records written to {out}"), run.stdout
    source.write_text("".join(json.dumps(r) + "\n" for r in records))  # more records: only the new ones run
    run = genlab(*args)
    assert run.returncode == 0, run.stderr
    assert "3 records written" in run.stdout and "2 already there" in run.stdout, run.stdout
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows, key=str) == sorted((r["id"] for r in records), key=str)
    assert rows["bad"]["status"] == "error" and "position 0" in rows["bad"]["error"], rows["bad"]
    for key, row in rows.items():
        if key == "bad":
            continue
        for text, complete, valid in zip(row["texts"], row["complete"], row["valid"]):
            if complete and valid:
                if key == "json":
                    jsonschema.validate(json.loads(text), PERSON_SCHEMA)
                else:
                    assert re.fullmatch("[0-9]{3}-[0-9]{4}", text), text
    missing = genlab("batch", str(tmp_path / "none.jsonl"), str(out), "--regex", "a", "--quiet")
    _one_line_error(missing, "none.jsonl", "does not exist")


def test_generate_pydantic_model(tmp_path):
    (tmp_path / "shapes.py").write_text(
        textwrap.dedent("""
        from pydantic import BaseModel, Field

        class Colour(BaseModel):
            name: str = Field(max_length=12)
            rgb: list[int] = Field(min_length=3, max_length=3)
    """)
    )
    run = genlab(
        "generate",
        "A colour as JSON with its RGB values.",
        "--pydantic",
        "shapes:Colour",
        "--max-tokens",
        "32",
        "--json",
        *QUICK,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    sys.path.insert(0, str(tmp_path))
    try:
        from shapes import Colour
    finally:
        sys.path.remove(str(tmp_path))
    schema = Colour.model_json_schema()
    assert any(out["complete"]), out
    for text, complete, parsed in zip(out["texts"], out["complete"], out["parsed"]):
        if complete:
            jsonschema.validate(json.loads(text), schema)
            assert Colour.model_validate(parsed) == Colour.model_validate_json(text)


def _is_arithmetic(text: str) -> bool:
    """Python's own parser: an expression of numbers, + - * / %, unary minus and parentheses only. The grammar
    ignores whitespace, newlines included, between tokens; Python only inside brackets, so the text is wrapped."""
    try:
        tree = ast.parse("(" + text.strip() + ")", mode="eval")
    except SyntaxError:
        return False
    allowed = (
        ast.Expression,
        ast.BinOp,
        ast.UnaryOp,
        ast.Constant,
        ast.Add,
        ast.Sub,
        ast.Mult,
        ast.Div,
        ast.Mod,
        ast.USub,
        ast.UAdd,
    )
    return all(isinstance(node, allowed) for node in ast.walk(tree)) and all(
        isinstance(node.value, (int, float)) for node in ast.walk(tree) if isinstance(node, ast.Constant)
    )


def test_generate_shipped_grammar():
    run = genlab(
        "generate",
        "Write an arithmetic expression equal to 12.",
        "--grammar",
        "arithmetic",
        "--max-tokens",
        "16",
        *QUICK,
    )
    assert run.returncode == 0, run.stderr
    assert "grammar arithmetic (shipped)" in run.stdout
    rows = _table_outputs(run.stdout)
    complete = [text for _, _, status, text in rows if status == "complete"]
    assert complete and all(_is_arithmetic(text) for text in complete), run.stdout


# ---------------------------------------------------------------------------------------------------- compare


def test_compare_table():
    """Three columns: masking as sampled (frequencies), masking's weights, SMC-AWRS."""
    pattern = r" (red|grey|blue-green|bluish)\."
    run = genlab("compare", "The color of the sky is", "--raw", "--regex", pattern, "--max-tokens", "13", *QUICK)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "token masking, as sampled" in line and "SMC-AWRS" in line)
    starts = [lines[head].index(label) for label in ("token masking, as sampled", "masking, weighted", "SMC-AWRS")]
    bounds = list(zip(starts, starts[1:] + [None]))
    rows = {
        line[: starts[0]].strip(): tuple(line[a:b].strip() for a, b in bounds) for line in lines[head + 2 :] if line
    }
    # SMC's optimal resampling keeps at most N particles, all distinct: n/n with n <= 4
    assert rows["valid and complete"][:2] == ("4/4 (100%)", "4/4 (100%)"), run.stdout
    assert re.fullmatch(r"([1-4])/\1 \(100%\)", rows["valid and complete"][2]), run.stdout
    sampled, masking, smc = rows["checks per token"]
    assert masking.startswith("1.00 masks") and float(smc) >= 1, run.stdout
    estimates = rows["log P(constraint) est."]
    assert estimates[0] == "n/a (unweighted)" and all(float(x) < 0 for x in estimates[1:]), run.stdout
    for key in ("distinct outputs", "model calls", "time"):
        assert all(rows[key]), run.stdout
    for column in range(3):  # each column's top outputs: in the language, weights summing to 1 over 4 samples
        cells = [
            re.fullmatch(r"([01]\.\d{3}) x(\d+) ('.*')", rows[str(k)][column])
            for k in range(1, 5)
            if str(k) in rows and rows[str(k)][column]
        ]
        assert cells and all(cells), run.stdout
        assert all(re.fullmatch(pattern, ast.literal_eval(m[3])) for m in cells), run.stdout
        assert 1 <= sum(int(m[2]) for m in cells) <= 4, run.stdout
        assert sum(int(m[2]) for m in cells) == 4 or column == 2, run.stdout
        assert abs(sum(float(m[1]) for m in cells) - 1) < 0.01, run.stdout
        if column == 0:  # as sampled: each sample weighs 1/4
            assert all(float(m[1]) == pytest.approx(int(m[2]) / 4, abs=1e-3) for m in cells), run.stdout
    assert int(rows["distinct outputs"][0]) == sum(1 for k in range(1, 5) if rows.get(str(k), ("", "", ""))[0])


# ---------------------------------------------------------------------------------------------------- errors


def _one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: "), run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_error_bad_regex_names_the_position():
    _one_line_error(genlab("generate", "x", "--regex", "ab[0-9"), "'ab[0-9'", "position 2")


def test_error_unsupported_regex():
    _one_line_error(genlab("generate", "x", "--regex", r"(a)\1"), "backreference", "offset 3")


def test_error_missing_schema_file(tmp_path):
    _one_line_error(
        genlab("generate", "x", "--json-schema", str(tmp_path / "nope.json")), "nope.json", "does not exist"
    )


def test_error_invalid_json_schema_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "object",\n "properties": {,}}')
    _one_line_error(genlab("generate", "x", "--json-schema", str(bad)), "bad.json", "not valid JSON", "line 2")
    bad.write_text('{"type": "strin"}')
    _one_line_error(genlab("generate", "x", "--json-schema", str(bad)), "bad.json", "/type", "'strin'")


def test_error_unknown_model_path(tmp_path):
    _one_line_error(genlab("generate", "x", "--regex", "a", "--model", str(tmp_path / "no-model")), "no-model")


def test_error_unknown_grammar_and_bad_pydantic():
    _one_line_error(genlab("generate", "x", "--grammar", "nope"), "no shipped grammar 'nope'", "arithmetic")
    _one_line_error(genlab("compare", "x", "--pydantic", "json"), "module:Class")
    _one_line_error(genlab("generate", "x", "--pydantic", "no_such_module_here:Model"), "no_such_module_here")
    _one_line_error(genlab("generate", "x", "--pydantic", "json:loads"), "not a Pydantic model")


def test_error_bad_command_line():
    _one_line_error(genlab("generate", "x"), "--regex")  # no constraint
    _one_line_error(genlab("generate", "x", "--regex", "a", "--temperature", "0"), "--temperature")


def test_debug_shows_the_traceback():
    run = genlab("generate", "x", "--regex", "ab[0-9", "--debug")
    assert run.returncode != 0 and "Traceback" in run.stderr and "InvalidPatternError" in run.stderr
