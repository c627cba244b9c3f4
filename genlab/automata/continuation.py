"""Mask walks below lexeme ends, level after level, in one compiled loop.

Where a lexeme can end inside the trie, a grammar mask goes on below that node in every parser configuration the
end leads to (`GrammarParser.boundaries`), and below the nodes where those lexemes end, and so on. Each level is
one `walk_lexer` call over all the configurations it reached; `walk_continuations` runs the levels and groups
their nodes by configuration in numba, reading the parser's boundaries from a `BoundaryTable`. A pair the table
does not hold yet (the parser has not met that lexeme end) sends the walk back to Python with the level it
stopped at, to be resolved by the parser (which may build chart columns and lexers) and resumed.

Walk stamps (`walk_lexer`'s `seen` marks) come from one process-wide counter, `STAMPS`, that Python and the
kernel both draw from, so stamps stay unique across matchers sharing work arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from genlab.automata.lexer import walk_lexer

STAMPS = np.ones(1, np.int64)  # the next unused walk stamp


def new_stamp() -> int:
    """A walk stamp no walk has used."""
    s = int(STAMPS[0])
    STAMPS[0] = s + 1
    return s


DONE, MISSING = 0, 1  # how `walk_continuations` returns
EVENTS = 4096  # lexeme ends a continuation level holds before its buffers grow


@njit(cache=True)
def _slot(keys, key):
    """Where `key` is in the open-addressing table `keys` (-1 empty), or the empty slot where it would go."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    mask = np.uint64(keys.shape[0] - 1)
    i = h & mask
    while keys[i] != -1 and keys[i] != key:
        i = (i + np.uint64(1)) & mask
    return i


@njit(cache=True)
def _put_all(keys, offs, counts, flat, n_flat, new_keys, new_counts, new_values):
    """Insert `new_keys[k]` with the next `new_counts[k]` of `new_values`, appended to `flat` from `n_flat`."""
    v = 0
    for k in range(new_keys.shape[0]):
        i = _slot(keys, new_keys[k])
        keys[i] = new_keys[k]
        offs[i] = n_flat
        counts[i] = new_counts[k]
        for j in range(new_counts[k]):
            flat[n_flat] = new_values[v]
            n_flat += 1
            v += 1


@njit(cache=True)
def _rehash(keys, offs, counts, new_keys, new_offs, new_counts):
    """Move every entry of one table into a larger, empty one."""
    for i in range(keys.shape[0]):
        if keys[i] != -1:
            j = _slot(new_keys, keys[i])
            new_keys[j], new_offs[j], new_counts[j] = keys[i], offs[i], counts[i]


class BoundaryTable:
    """(configuration, lexer state) -> the configurations a lexeme ending there leads to, as arrays: keys
    `config << 32 | state` in an open-addressing table at most half full, values slices of `flat`."""

    def __init__(self) -> None:
        self.keys = np.full(1024, -1, np.int64)
        self.offs = np.zeros(1024, np.int64)
        self.counts = np.zeros(1024, np.int32)
        self.flat = np.empty(1024, np.int32)
        self.size = 0
        self.n_flat = 0

    def add(self, keys: list[int], nexts: list[tuple[int, ...]]) -> None:
        """Enter `keys[k]` (not in the table yet) leading to `nexts[k]`."""
        if 2 * (self.size + len(keys)) > len(self.keys):
            cap = len(self.keys)
            while 2 * (self.size + len(keys)) > cap:
                cap *= 2
            grown = (np.full(cap, -1, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int32))
            _rehash(self.keys, self.offs, self.counts, *grown)
            self.keys, self.offs, self.counts = grown
        values = [c for nx in nexts for c in nx]
        if self.n_flat + len(values) > len(self.flat):
            flat = np.empty(2 * (self.n_flat + len(values)), np.int32)
            flat[: self.n_flat] = self.flat[: self.n_flat]
            self.flat = flat
        _put_all(self.keys, self.offs, self.counts, self.flat, self.n_flat, np.array(keys, np.int64),
                 np.array([len(nx) for nx in nexts], np.int32), np.array(values, np.int32))
        self.n_flat += len(values)
        self.size += len(keys)


@njit(cache=True)
def _take_stamp(counter):
    """`new_stamp` inside a kernel."""
    s = counter[0]
    counter[0] = s + 1
    return s


@njit(cache=True)
def walk_continuations(front_nodes, front_states, front_configs, n_front, keys, offs, counts, flat, config_start,
                       config_reset, config_stamp, counter, byte, depth, subtree_end, token_start, token_end, order,
                       bytes_below, child_bytes, subtree_tokens_end, table, byte_class, accepting, loops, follow,
                       restart, slice_below, states, out, seen_stamp, seen_state, events):
    """Walk below the frontier's nodes (lexeme ends: node, lexer state, configuration) in the configurations the
    boundary table says they lead to, level by level, marking allowed tokens in `out`, until no lexeme end is
    left. `config_stamp[c]` is configuration c's walk stamp for this mask (0: none yet); a configuration that
    leads back to its own start (`config_reset`) goes on from there inside ignored whitespace (`walk_lexer`).

    Returns (DONE, ...) or (MISSING, n, nodes, states, configs, missing): the level held lexeme ends the table
    lacks (`missing`, keys `config << 32 | state`); call again with the frontier returned once they are added.
    `events` is the first size of the buffers for a level's lexeme ends (doubled when a level overflows them)."""
    ev_nodes = np.empty(events, np.int32)
    ev_states = np.empty(events, np.int32)
    ev_groups = np.empty(events, np.int32)
    while n_front > 0:
        # the configurations each lexeme end leads to
        n_pairs = 0
        missing = np.empty(n_front, np.int64)
        n_missing = 0
        for k in range(n_front):
            key = np.int64(front_configs[k]) << 32 | front_states[k]
            i = _slot(keys, key)
            if keys[i] == -1:
                missing[n_missing] = key
                n_missing += 1
            else:
                n_pairs += counts[i]
        if n_missing:
            return MISSING, n_front, front_nodes, front_states, front_configs, np.unique(missing[:n_missing])
        pair_config = np.empty(n_pairs, np.int32)
        pair_node = np.empty(n_pairs, np.int32)
        n_pairs = 0
        for k in range(n_front):
            i = _slot(keys, np.int64(front_configs[k]) << 32 | front_states[k])
            for j in range(offs[i], offs[i] + counts[i]):
                pair_config[n_pairs] = flat[j]
                pair_node[n_pairs] = front_nodes[k]
                n_pairs += 1
        if n_pairs == 0:
            break
        # one group of roots per configuration
        by_config = np.argsort(pair_config, kind="mergesort")
        roots = pair_node[by_config]
        sorted_configs = pair_config[by_config]
        n_groups = 1
        for k in range(1, n_pairs):
            if sorted_configs[k] != sorted_configs[k - 1]:
                n_groups += 1
        configs = np.empty(n_groups, np.int32)
        bounds = np.empty(n_groups + 1, np.int64)
        g = 0
        configs[0], bounds[0] = sorted_configs[0], 0
        for k in range(1, n_pairs):
            if sorted_configs[k] != sorted_configs[k - 1]:
                g += 1
                configs[g], bounds[g] = sorted_configs[k], k
        bounds[n_groups] = n_pairs
        starts = np.empty(n_groups, np.int32)
        stamps = np.empty(n_groups, np.int64)
        resets = np.empty(n_groups, np.bool_)
        reach = np.full(n_groups, -1, np.int32)  # continuations take no slice
        for g in range(n_groups):
            c = configs[g]
            starts[g] = config_start[c]
            resets[g] = config_reset[c]
            if config_stamp[c] == 0:
                config_stamp[c] = _take_stamp(counter)
            stamps[g] = config_stamp[c]
        while True:
            n = walk_lexer(byte, depth, subtree_end, token_start, token_end, order, bytes_below, child_bytes,
                           subtree_tokens_end, table, byte_class, accepting, loops, follow, restart, starts, stamps,
                           resets, reach, slice_below, roots, bounds, states, out, ev_nodes, ev_states, ev_groups,
                           seen_stamp, seen_state)
            if n >= 0:
                break
            # a retry re-walks from scratch: what the stopped walk marked as seen must not prune it
            for g in range(n_groups):
                stamps[g] = config_stamp[configs[g]] = _take_stamp(counter)
            events *= 2
            ev_nodes = np.empty(events, np.int32)
            ev_states = np.empty(events, np.int32)
            ev_groups = np.empty(events, np.int32)
        front_nodes = ev_nodes[:n].copy()
        front_states = ev_states[:n].copy()
        front_configs = configs[ev_groups[:n]]
        n_front = n
    return DONE, 0, front_nodes, front_states, front_configs, np.empty(0, np.int64)
