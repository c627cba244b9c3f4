"""`genlab demo`: its greedy completion against transformers' own `generate`, statuses, and its regex outputs."""

from __future__ import annotations

import re

import torch

from genlab.cli import main
from genlab.models import load


def test_demo_matches_generate_and_reports_incomplete(capsys):
    prompt = "Name three primary colours in one short sentence."
    pattern = r"[0-9]{2}-[0-9]{2}"  # \d would also admit Unicode digits, as re does
    assert main(["demo", "--prompt", prompt, "--max-tokens", "8", "--regex", pattern, "--samples", "2"]) == 0
    free, constrained = capsys.readouterr().out.split("\n\n")
    lines = dict(line.split(None, 1) for line in free.splitlines())
    assert lines["status"].startswith("incomplete: stopped at max_tokens=8")

    lm = load(device="cpu")
    chat = lm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
    ids = torch.tensor([lm.encode(chat)])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert lines["output"] == lm.tokenizer.decode(out[0, ids.shape[1]:]).strip()

    outputs = re.findall(r"^output\s+'(.*)'\s+log w = .*\bcomplete$", constrained, re.M)
    assert len(outputs) == 2 and all(re.fullmatch(pattern, text) for text in outputs), constrained
