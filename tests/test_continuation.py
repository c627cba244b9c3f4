"""The continuation walk's arrays: the boundary table against a dict, and masks unchanged when a level's buffers
must grow (the kernel's retry path) or when every lexeme end is new to the table (its resume path)."""

from __future__ import annotations

import numpy as np
import pytest

from genlab import Grammar
from genlab.automata import continuation
from genlab.automata.continuation import BoundaryTable, _slot

from conftest import tokenizer_and_vocab
from test_grammar import JSON, SENTENCES, brute_force_mask


def lookup(table: BoundaryTable, key: int):
    i = _slot(table.keys, key)
    if table.keys[i] == -1:
        return None
    return tuple(table.flat[table.offs[i] : table.offs[i] + table.counts[i]].tolist())


def test_boundary_table_is_a_dict():
    rng = np.random.default_rng(0)
    table, oracle = BoundaryTable(), {}
    while len(oracle) < 5000:  # several doublings of the 1024-slot table and of `flat`
        batch = {}
        for _ in range(int(rng.integers(1, 200))):
            key = int(rng.integers(0, 3000)) << 32 | int(rng.integers(0, 1 << 31))
            if key not in oracle:
                batch[key] = tuple(int(c) for c in rng.integers(0, 1000, int(rng.integers(0, 4))))
        table.add(list(batch), list(batch.values()))
        oracle.update(batch)
    assert table.size == len(oracle) and 2 * table.size <= len(table.keys)
    for key, nexts in oracle.items():
        assert lookup(table, key) == nexts
    for _ in range(1000):
        key = int(rng.integers(3000, 6000)) << 32 | int(rng.integers(0, 1 << 31))
        assert lookup(table, key) is None


@pytest.mark.parametrize("events", [1, 3])
def test_masks_survive_tiny_level_buffers(monkeypatch, events):
    """Every level overflows its buffers and is walked again with fresh stamps, and so does every root walk:
    masks still equal brute force."""
    monkeypatch.setattr(continuation, "EVENTS", events)
    tok, vocab = tokenizer_and_vocab("smollm2")
    for source in (JSON, Grammar.shipped("sqlite").source):
        matcher = Grammar(source).compile(vocab)
        for space in (matcher._whole, matcher._outside()):  # shared per trie: they grow back
            space.work.events = tuple(np.empty(events, np.int32) for _ in range(3))
        state = matcher.start()
        ids = tok.encode(SENTENCES[source][0], add_special_tokens=False)
        for k, t in enumerate(ids):
            if k % 4 == 0:
                assert np.array_equal(matcher.mask(state), brute_force_mask(matcher, state))
            state = matcher.advance(state, t)
