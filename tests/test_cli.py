"""`genlab demo`: its greedy completion against transformers' own `generate`, and its incomplete status."""

from __future__ import annotations

import torch

from genlab.cli import main
from genlab.models import load


def test_demo_matches_generate_and_reports_incomplete(capsys):
    prompt = "Name three primary colours in one short sentence."
    assert main(["demo", "--prompt", prompt, "--max-tokens", "4"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip())
    assert lines["status"].startswith("incomplete: stopped at max_tokens=4")

    lm = load(device="cpu")
    chat = lm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
    ids = torch.tensor([lm.encode(chat)])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    expected = lm.tokenizer.decode(out[0, ids.shape[1]:])
    assert lines["output"] == expected.strip()
