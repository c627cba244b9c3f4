"""The continuation walk's arrays: lexeme ends resolved in compiled code (into the boundary table, making chart
columns and configurations) against the parser's Python resolution, also when every array starts tiny; and masks
unchanged when a level's buffers must grow (the kernel's retry path)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tokenizer_and_vocab
from test_grammar import JSON, SENTENCES, brute_force_mask

from genlab import Grammar
from genlab.automata import continuation
from genlab.automata.boundaries import BoundaryTable, Configurations
from genlab.automata.earley import Chart
from genlab.automata.intern import find_slot


@pytest.mark.parametrize("tiny", [False, True])
def test_compiled_resolution_matches_python(monkeypatch, tiny):
    """Every lexeme end that mask walks entered into the boundary table leads to the configurations the parser's
    own `boundaries` gives; with tiny first sizes every table and array grows on the way (and the walk goes back
    to Python and resumes each time)."""
    if tiny:
        monkeypatch.setattr(BoundaryTable, "INITIAL", 2)
        monkeypatch.setattr(Configurations, "INITIAL", 1)
        for name, size in (("INITIAL_COLUMNS", 1), ("INITIAL_KEYS", 1), ("INITIAL_SLOTS", 2), ("INITIAL_ITEMS", 1)):
            monkeypatch.setattr(Chart, name, size)
    tok, vocab = tokenizer_and_vocab("smollm2")
    for source in (JSON, Grammar.shipped("sqlite").source):
        matcher = Grammar(source).compile(vocab)
        parser = matcher.parser
        state = matcher.start()
        for k, t in enumerate(tok.encode(SENTENCES[source][0], add_special_tokens=False)):
            mask = matcher.mask(state)
            if k % 5 == 0:
                assert np.array_equal(mask, brute_force_mask(matcher, state))
            state = matcher.advance(state, t)
        table = parser.table
        keys = table.keys[table.keys != -1]
        assert len(keys) == table.sizes[0] > 20
        for key in keys.tolist():
            i = find_slot(table.keys, key)
            off, n = table.offs[i], table.counts[i]
            assert tuple(table.flat[off : off + n].tolist()) == parser.boundaries(key >> 32, key & 0xFFFFFFFF)
        # every configuration is where its (column, guard) says, in the arrays and the Python mirrors alike
        configs = parser.configs
        assert configs.size == len(parser.config_column)
        for c in range(configs.size):
            column, guard = int(configs.column[c]), int(configs.guard[c])
            assert parser.config(column, guard) == c
            assert parser.config_start[c] == configs.start[c] == parser._start_of(column, guard)


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
