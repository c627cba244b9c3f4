"""Byte-level DFAs as numpy tables, and the numba kernels that run them over tokens and the vocabulary trie.

A `ByteDFA` holds only live states (an accepting state is reachable from each); a transition that would leave
every completion is -1. Walking a token therefore fails exactly when the text would stop being a prefix of the
language: the prefix property is a property of the table, not of the code that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genlab.jit import njit
from genlab.trie import TokenTrie


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """`transitions[state, byte]` (int32, -1 = dead), `accepting[state]`, `start`; every state is live."""

    transitions: np.ndarray
    accepting: np.ndarray
    start: int = 0

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def live(self) -> np.ndarray:
        """Live flags: all True, as dead states are never stored (kept for readers that expect the table)."""
        return np.ones(self.n_states, np.bool_)

    def run(self, data: bytes, state: int | None = None) -> int:
        """The state after `data` from `state` (default: start), or -1 once the text has no completion."""
        return int(run_bytes(self.transitions, np.frombuffer(data, np.uint8), self.start if state is None else state))

    def accepts(self, data: bytes) -> bool:
        """Whether `data` is in the language."""
        s = self.run(data)
        return s >= 0 and bool(self.accepting[s])


@njit(cache=True)
def run_bytes(transitions, data, state):
    """State after reading `data` from `state`; -1 as soon as a byte is dead."""
    for b in data:
        state = transitions[state, b]
        if state < 0:
            return -1
    return state


@njit(cache=True)
def token_step(transitions, offsets, data, state, token):
    """State after token `token`'s bytes from `state`; -1 if the token leaves the language's prefixes."""
    for k in range(offsets[token], offsets[token + 1]):
        state = transitions[state, data[k]]
        if state < 0:
            return -1
    return state


def token_states(trie: TokenTrie, dfa: ByteDFA, state: int) -> np.ndarray:
    """For every token id, the state after its bytes from `state` (-1 where dead or not text): one trie walk."""
    return trie.walk_table(dfa.transitions, state)


def token_mask(
    trie: TokenTrie, dfa: ByteDFA, state: int, loops: np.ndarray | None = None, loopy: np.ndarray | None = None
) -> np.ndarray:
    """Bool mask of the text tokens whose bytes the DFA reads from `state`: one trie walk (`loops`, `loopy`: the
    table's `trie.self_loops` and `trie.loop_flags`, computed once per DFA by callers that mask many states)."""
    return trie.mask_table(dfa.transitions, state, loops, loopy)
