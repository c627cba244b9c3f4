"""The string-content slice against Python's own UTF-8 decoder, its per-node flags against the tokens below each
node, and the lexer-state check against every slice token fed through the lexer."""

from __future__ import annotations

import codecs

import numpy as np
import pytest
from conftest import tokenizer_and_vocab

from genlab import Grammar, JsonSchema
from genlab.automata.lexer import slice_covers, slice_representatives
from genlab.slices import string_content_slice
from genlab.trie import TokenTrie


def is_string_content(data: bytes) -> bool:
    """UTF-8 text, possibly cut inside its last character, with no '"', '\\', control character or surrogate."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return not any(c in '"\\' or ord(c) < 0x20 or 0xD800 <= ord(c) < 0xE000 for c in text)


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
def test_slice_tokens_and_subtrees(name):
    _, vocab = tokenizer_and_vocab(name)
    sl = string_content_slice(vocab)
    assert string_content_slice(vocab) is sl
    want = np.array([bool(vocab.is_text[t]) and is_string_content(vocab.token_bytes[t]) for t in range(vocab.size)])
    assert np.array_equal(sl.tokens, want)
    assert sl.max_len == max(len(vocab.token_bytes[t]) for t in np.flatnonzero(want))
    trie = TokenTrie.of(vocab)
    rng = np.random.default_rng(0)
    for node in rng.choice(trie.n_nodes, 3000, replace=False):
        below = trie.order[trie.token_start[node] : trie.subtree_tokens_end[node]]
        assert sl.whole[node] == bool(want[below].all())


def lexer_alive(lexer, q: int, data: bytes) -> bool:
    """Whether the lexer, fed `data` from `q` byte by byte, stays alive (accepting states included)."""
    for b in data:
        q = int(lexer.table[q, lexer.byte_class[b]])
        if q < 0:
            return False
    return True


def states_along(grammar, text: str) -> list[int]:
    """The lexer states of the threads after each prefix of `text`."""
    parser, data = grammar._parser, text.encode()
    out = []
    for i in range(1, len(data) + 1):
        threads = parser.feed(parser.start(), np.frombuffer(data[:i], np.uint8), 0, i)
        out += [q for _, q in threads]
    return sorted(set(out))


@pytest.mark.parametrize("grammar, text", [
    (Grammar.shipped("json"), '{"a": [1.5e3, "x\\"y", true], "b": "caf\u00e9 \u4e2d"}'),
    (JsonSchema({"type": "object", "properties": {"s": {"type": "string", "maxLength": 12},
                                                  "t": {"type": "string", "pattern": "^[a-z]+$"},
                                                  "u": {"type": "string"}}}).grammar,
     '{"s":"hello world!","t":"abc","u":"x y"}'),
])
def test_covered_states_keep_every_slice_token_alive(grammar, text):
    _, vocab = tokenizer_and_vocab("smollm2")
    sl = string_content_slice(vocab)
    lexer = grammar._parser.lexer
    reps = slice_representatives(lexer, sl.table)
    slice_tokens = [vocab.token_bytes[t] for t in np.flatnonzero(sl.tokens)]
    verdicts = {}
    for q in states_along(grammar, text):
        covered = bool(slice_covers(sl.table, sl.max_len, reps, lexer.table, lexer.byte_class, q))
        verdicts[q] = covered
        if covered:  # sound: every slice token is read from q without dying
            assert all(lexer_alive(lexer, q, t) for t in slice_tokens)
    assert any(verdicts.values())  # inside the unbounded strings
    assert not all(verdicts.values())  # not between lexemes, nor inside numbers or bounded strings


def test_json_string_state_is_covered_and_bounded_strings_are_not():
    _, vocab = tokenizer_and_vocab("smollm2")
    sl = string_content_slice(vocab)
    # inside a JSON string: every content token is allowed
    grammar = Grammar.shipped("json")
    parser, lexer = grammar._parser, grammar._parser.lexer
    (_, q), = parser.feed(parser.start(), np.frombuffer(b'"ab', np.uint8), 0, 3)
    assert slice_covers(sl.table, sl.max_len, slice_representatives(lexer, sl.table), lexer.table,
                        lexer.byte_class, q)
    # a string of at most 12 characters, 5 written: long content tokens would overrun it
    schema = JsonSchema({"type": "string", "maxLength": 12}).grammar
    parser, lexer = schema._parser, schema._parser.lexer
    threads = parser.feed(parser.start(), np.frombuffer(b'"hello', np.uint8), 0, 6)
    reps = slice_representatives(lexer, sl.table)
    assert not any(slice_covers(sl.table, sl.max_len, reps, lexer.table, lexer.byte_class, q) for _, q in threads)
    assert any(not lexer_alive(lexer, q, b"x" * 8) for _, q in threads)
