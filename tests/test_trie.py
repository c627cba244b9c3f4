"""TokenTrie structure and walks against brute force over every token's bytes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tokenizer_and_vocab
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from genlab.trie import TokenTrie, byte_classes
from genlab.vocab import TokenVocabulary

NAMES = ["smollm2", "mistral-v1", "qwen2", pytest.param("gemma-3", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=NAMES)
def vocab_trie(request):
    _, vocab = tokenizer_and_vocab(request.param)
    return vocab, TokenTrie.from_vocab(vocab)


def _prefixes(trie: TokenTrie) -> list[bytes]:
    """The byte string spelled by the path to each node (parents precede children in preorder)."""
    out = [b""] * trie.n_nodes
    for n in range(1, trie.n_nodes):
        out[n] = out[trie.parent[n]] + bytes([trie.byte[n]])
    return out


def test_structure(vocab_trie):
    vocab, trie = vocab_trie
    prefixes = _prefixes(trie)
    # every text token sits at the node spelling its bytes; nothing else is in the trie
    for t in range(vocab.size):
        node = trie.token_node[t]
        if vocab.is_text[t]:
            assert prefixes[node] == vocab.token_bytes[t]
            assert t in trie.order[trie.token_start[node] : trie.token_end[node]]
        else:
            assert node == -1
    assert sorted(trie.order.tolist()) == np.flatnonzero(vocab.is_text).tolist()
    # the nodes are exactly the distinct non-empty prefixes of text tokens
    expected = {b[:k] for t, b in enumerate(vocab.token_bytes) if vocab.is_text[t] for k in range(len(b) + 1)}
    assert set(prefixes) == expected and len(prefixes) == len(expected)
    # preorder: a subtree is a contiguous range; children are linked in increasing byte order
    for n in range(trie.n_nodes):
        end = trie.subtree_end[n]
        assert all(prefixes[m].startswith(prefixes[n]) for m in (n, end - 1))
        assert end == trie.n_nodes or not prefixes[end].startswith(prefixes[n])
        child = trie.first_child[n]
        seen = []
        while child != -1:
            assert trie.parent[child] == n
            seen.append(trie.byte[child])
            child = trie.next_sibling[child]
        assert seen == sorted(set(seen))
        assert len(seen) == sum(1 for m in range(n + 1, end) if trie.parent[m] == n)
    assert trie.max_depth == max(len(b) for t, b in enumerate(vocab.token_bytes) if vocab.is_text[t])


def test_duplicates_share_a_node():
    tok, vocab = tokenizer_and_vocab("mistral-v1")
    trie = TokenTrie.from_vocab(vocab)
    a, fallback = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("<0x41>")
    assert trie.token_node[a] == trie.token_node[fallback]
    assert trie.token_end[trie.token_node[a]] - trie.token_start[trie.token_node[a]] == 2


def _brute_force(vocab: TokenVocabulary, step, table, start: int) -> np.ndarray:
    out = np.full(vocab.size, -1, np.int64)
    for t in np.flatnonzero(vocab.is_text):
        s = start
        for b in vocab.token_bytes[t]:
            s = step(table, s, b)
            if s < 0:
                break
        out[t] = s
    return out


@njit
def nondecreasing(table, state, byte):
    """Accepts byte strings whose bytes never decrease; the state is the last byte (start 0)."""
    return byte if byte >= state else -1


def test_walk_generic_step(vocab_trie):
    vocab, trie = vocab_trie
    for start in (0, 65, 200):
        got = trie.walk(nondecreasing, np.zeros(1, np.int64), start)
        want = _brute_force(vocab, nondecreasing.py_func, None, start)
        assert np.array_equal(got, want)
        assert (got >= 0).any()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**32 - 1), st.floats(0.05, 0.6))
def test_walk_table_random_dfas(n_states, seed, dead_fraction):
    """Random DFAs (byte classes so that real tokens survive) against walking every token by hand."""
    _, vocab = tokenizer_and_vocab("smollm2")
    trie = _trie("smollm2")
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, 256)
    per_class = rng.integers(0, n_states, (n_states, 4))
    per_class[rng.random((n_states, 4)) < dead_fraction] = -1
    table = per_class[:, classes].astype(np.int32)
    start = int(rng.integers(0, n_states))
    got = trie.walk_table(table, start)
    want = _brute_force(vocab, lambda tab, s, b: int(tab[s, b]), table, start)
    assert np.array_equal(got, want)
    assert np.array_equal(trie.mask_table(table, start), want >= 0)


_TRIES: dict[str, TokenTrie] = {}


def _trie(name: str) -> TokenTrie:
    if name not in _TRIES:
        _TRIES[name] = TokenTrie.from_vocab(tokenizer_and_vocab(name)[1])
    return _TRIES[name]


def test_walk_table_digits_mask():
    _, vocab = tokenizer_and_vocab("qwen2")
    table = np.full((1, 256), -1, np.int32)
    table[0, ord("0") : ord("9") + 1] = 0
    mask = _trie("qwen2").walk_table(table, 0) >= 0
    want = [vocab.is_text[t] and all(48 <= c <= 57 for c in vocab.token_bytes[t]) for t in range(vocab.size)]
    assert np.array_equal(mask, want)
    assert mask.sum() == 10  # Qwen2 splits numbers into single digits


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["smollm2", "qwen2"]),
    st.integers(1, 8),
    st.integers(2, 40),
    st.integers(0, 2**32 - 1),
    st.floats(0.05, 0.6),
)
def test_class_trie_masks_equal_brute_force(name, n_states, n_classes, seed, dead_fraction):
    """Random DFAs over random byte partitions (a few bytes set apart): byte_classes recovers a partition no coarser than the table's
    columns, and the class-trie walk gives, from every state, exactly the tokens the byte-by-byte walk accepts."""
    _, vocab = tokenizer_and_vocab(name)
    trie = _trie(name)
    rng = np.random.default_rng(seed)
    partition = np.zeros(256, np.int64)  # as in real DFAs: most bytes alike, a few set apart
    special = rng.choice(256, size=n_classes, replace=False)
    partition[special] = rng.integers(1, n_classes, n_classes)
    per_class = rng.integers(0, n_states, (n_states, n_classes))
    per_class[rng.random((n_states, n_classes)) < dead_fraction] = -1
    table = per_class[:, partition].astype(np.int32)
    classes, reps = byte_classes(table)
    assert all(np.array_equal(table[:, b], table[:, reps[classes[b]]]) for b in range(256))
    assert len(reps) == len({table[:, b].tobytes() for b in range(256)})  # columns equal iff same class
    class_trie = trie.class_trie(classes)
    if class_trie is None:  # the partition keeps over a quarter of the nodes: nothing to compare
        return
    assert class_trie.n_nodes <= trie.n_nodes // 4
    class_table = np.ascontiguousarray(table[:, reps])
    for start in range(n_states):  # brute force from state 0; the byte-trie walk (checked against it) elsewhere
        got = class_trie.mask(class_table, start, np.zeros(vocab.size, np.bool_))
        if start == 0:
            want = _brute_force(vocab, lambda tab, s, b: int(tab[s, b]), table, start) >= 0
        else:
            want = trie.mask_table(table, start)
        assert np.array_equal(got, want), start


def test_class_trie_of_letters_is_small():
    _, vocab = tokenizer_and_vocab("smollm2")
    trie = _trie("smollm2")
    classes = np.zeros(256, np.int32)
    classes[ord("a") : ord("z") + 1] = 1
    class_trie = trie.class_trie(classes)
    assert class_trie is not None and class_trie.n_nodes < 1000 < trie.n_nodes
    assert trie.class_trie(classes) is class_trie  # cached per partition
    # every token sits at exactly one node, once
    assert sorted(class_trie.tokens.tolist()) == sorted(trie.order.tolist())
