"""The runnable examples, each run as a script with small settings: exit status 0 and outputs that an independent
oracle accepts (jsonschema for the extracted JSON, re.fullmatch for the regex outputs, distributions that sum
to 1 and show masking's bias against the exact posterior)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    run = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run.stdout


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_json_extraction_outputs_validate():
    out = run_example("json_extraction.py", "--particles", "2", "--max-tokens", "40")
    schema = _module("json_extraction.py").Person.model_json_schema()
    blocks = out.split("text: ")[1:]
    assert len(blocks) == 2, out
    for block in blocks:
        weights = [float(w) for w in re.findall(r"^  ([01]\.\d{3})  Person\(", block, re.M)]
        best = re.search(r"^  best: (.*)$", block, re.M)
        assert best and weights, block  # at least one complete output per text
        jsonschema.validate(json.loads(best[1]), schema)
        assert abs(sum(weights) - 1) < 0.01, block


def test_regex_formats_outputs_fullmatch():
    out = run_example("regex_formats.py", "--particles", "3", "--max-tokens", "24")
    sections = re.split(r"^(\w+): (.*)$", out, flags=re.M)[1:]
    names = sections[0::3]
    assert names == ["date", "phone", "email"], out
    for pattern, body in zip(sections[1::3], sections[2::3]):
        rows = re.findall(r"^  ([01]\.\d{3})  x(\d+)  (\w+)\s+('.*')$", body, re.M)
        assert 1 <= sum(int(n) for _, n, _, _ in rows) <= 3, body  # optimal resampling: at most N, all distinct
        complete = [(float(w), ast.literal_eval(text)) for w, _, status, text in rows if status == "complete"]
        assert complete, body
        assert all(re.fullmatch(pattern, text) for _, text in complete), (pattern, body)
        assert abs(sum(w for w, _ in complete) - 1) < 0.01, body


def test_hf_generate_outputs_fullmatch():
    out = run_example("hf_generate.py", "--max-new-tokens", "20")
    pattern = _module("hf_generate.py").PATTERN
    rows = re.findall(r"^(greedy|sampling)\s+('.*') -> ('.*')$", out, re.M)
    assert [mode for mode, _, _ in rows] == ["greedy", "greedy", "sampling", "sampling"], out
    for _, _, text in rows:
        assert re.fullmatch(pattern, ast.literal_eval(text)), text


def test_masking_vs_smc_table():
    out = run_example("masking_vs_smc.py", "--samples", "32", "--particles", "64")
    pattern = _module("masking_vs_smc.py").PATTERN
    rows = re.findall(r"^('.*?')\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", out, re.M)
    texts = [ast.literal_eval(text) for text, *_ in rows]
    assert sorted(texts) == sorted([" red.", " grey.", " blue-green.", " bluish."]), out
    assert all(re.fullmatch(pattern, text) for text in texts)
    columns = [[float(row[k]) for row in rows] for k in (1, 2, 3)]
    assert all(abs(sum(column) - 1) < 0.01 for column in columns), out
    exact, masking = dict(zip(texts, columns[0])), dict(zip(texts, columns[1]))
    # the model's true conditional favours " red."; masking follows " blue" into " blue-green."
    assert exact[" red."] > 0.9 and masking[" red."] < 0.5 and masking[" blue-green."] > exact[" blue-green."]
    kls = re.search(r"KL to exact \(nats\): masking \(32 samples\) ([0-9.]+), SMC-AWRS \(64 particles\) ([0-9.]+)", out)
    assert kls and float(kls[1]) > 1, out


def test_digits_mask_lists_digit_tokens():
    out = run_example("digits_mask.py", "Count: 1, 2, 3, 4,")
    head, *rows = out.strip().splitlines()
    assert re.fullmatch(r"\d+ digit-only tokens hold [0-9.e+-]+ of the next-token probability", head), head
    assert len(rows) == 5
    conditional = 0.0
    for row in rows:
        token, p, cond = re.fullmatch(r"\s*(b'.*')\s+p=(\S+)\s+p\(\.\|digits\)=(\S+)", row).groups()
        assert re.fullmatch(rb"[0-9]+", ast.literal_eval(token)), row
        assert 0 < float(p) <= float(cond) <= 1
        conditional += float(cond)
    assert conditional <= 1.0001
