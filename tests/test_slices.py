"""The string-content slice against Python's own UTF-8 decoder, its per-node flags and lengths against the tokens
below each node, and the lexer-state check against every slice token fed through the lexer."""

from __future__ import annotations

import codecs

import numpy as np
import pytest
from conftest import tokenizer_and_vocab

from genlab import Grammar, JsonSchema
from genlab.automata.lexer import slice_reach, slice_representatives
from genlab.bitset import unpack
from genlab.slices import NOT_WHOLE, outside_trie, string_content_slice
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
        longest = max(len(vocab.token_bytes[t]) for t in below)
        assert sl.below[node] == (longest if sl.whole[node] else NOT_WHOLE)
    for reach in (1, 3, sl.max_len, sl.max_len + 5, 3):  # a reach past the longest token is all; 3 again: memo
        bits = sl.up_to(reach)
        want_up_to = want & (np.array([len(b) for b in vocab.token_bytes]) <= reach)
        assert np.array_equal(unpack(bits, vocab.size), want_up_to)
        bits[:] = 0  # a fresh copy each time: writing it changes nothing the slice keeps
        assert np.array_equal(unpack(sl.up_to(reach), vocab.size), want_up_to)


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
def test_outside_trie_holds_the_other_text_tokens(name):
    _, vocab = tokenizer_and_vocab(name)
    sl = string_content_slice(vocab)
    trie, below = outside_trie(vocab)
    assert outside_trie(vocab)[0] is trie
    assert sorted(trie.order.tolist()) == np.flatnonzero(vocab.is_text & ~sl.tokens).tolist()
    assert (below == NOT_WHOLE).all() and len(below) == trie.n_nodes
    for t in trie.order[:: max(1, len(trie.order) // 500)]:  # each token's node spells its bytes
        node, spelled = int(trie.token_node[t]), []
        while node > 0:
            spelled.append(int(trie.byte[node]))
            node = int(trie.parent[node])
        assert bytes(reversed(spelled)) == vocab.token_bytes[t]


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


@pytest.mark.parametrize(
    "grammar, text",
    [
        (Grammar.shipped("json"), '{"a": [1.5e3, "x\\"y", true], "b": "caf\u00e9 \u4e2d"}'),
        (
            JsonSchema(
                {
                    "type": "object",
                    "properties": {
                        "s": {"type": "string", "maxLength": 12},
                        "t": {"type": "string", "pattern": "^[a-z]+$"},
                        "u": {"type": "string"},
                    },
                }
            ).grammar,
            '{"s":"hello world!","t":"abc","u":"x y"}',
        ),
    ],
)
def test_reach_keeps_every_slice_token_that_short_alive(grammar, text):
    _, vocab = tokenizer_and_vocab("smollm2")
    sl = string_content_slice(vocab)
    lexer = grammar._parser.lexer
    reps = slice_representatives(lexer, sl.table)
    slice_tokens = [vocab.token_bytes[t] for t in np.flatnonzero(sl.tokens)]
    reaches = {}
    for q in states_along(grammar, text):
        reach = reaches[q] = int(slice_reach(sl.table, sl.max_len, reps, lexer.table, lexer.byte_class, q))
        # sound: every slice token of at most `reach` bytes is read from q without dying
        assert all(lexer_alive(lexer, q, t) for t in slice_tokens if len(t) <= reach)
        if 0 < reach < sl.max_len:  # tight, where a one-byte character does it: one more byte dies
            assert lexer_alive(lexer, q, b"x" * reach) != lexer_alive(lexer, q, b"x" * (reach + 1))
    assert sl.max_len in reaches.values()  # inside the unbounded strings
    assert 0 in reaches.values()  # between lexemes, inside numbers and patterned strings


def test_json_string_state_reaches_everything_and_bounded_strings_what_they_have_left():
    _, vocab = tokenizer_and_vocab("smollm2")
    sl = string_content_slice(vocab)
    # inside a JSON string: every content token is allowed
    grammar = Grammar.shipped("json")
    parser, lexer = grammar._parser, grammar._parser.lexer
    ((_, q),) = parser.feed(parser.start(), np.frombuffer(b'"ab', np.uint8), 0, 3)
    assert (
        slice_reach(sl.table, sl.max_len, slice_representatives(lexer, sl.table), lexer.table, lexer.byte_class, q)
        == sl.max_len
    )
    # a string of at most 12 characters, 5 written: 7 more bytes of content always fit, 8 ASCII ones do not
    schema = JsonSchema({"type": "string", "maxLength": 12}).grammar
    parser, lexer = schema._parser, schema._parser.lexer
    threads = parser.feed(parser.start(), np.frombuffer(b'"hello', np.uint8), 0, 6)
    reps = slice_representatives(lexer, sl.table)
    assert [slice_reach(sl.table, sl.max_len, reps, lexer.table, lexer.byte_class, q) for _, q in threads] == [7]
    assert all(not lexer_alive(lexer, q, b"x" * 8) for _, q in threads)
