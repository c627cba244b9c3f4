"""`Regex`: the strings `re.fullmatch(pattern, s)` accepts, as a byte-level DFA matched token by token."""

from __future__ import annotations

import numpy as np

from genlab import bitset
from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_regex
from genlab.constraints.base import Constraint, Matcher
from genlab.jit import njit
from genlab.trie import TokenTrie, byte_classes, loop_flags, self_loops
from genlab.vocab import TokenVocabulary


class Regex(Constraint):
    """Output must fullmatch `pattern` (Python `re` semantics: Unicode `\\d`, `\\w`, `\\s`; `(?a)` for ASCII).

    Compiles at construction (errors surface here, naming the construct and its offset). `max_states` bounds the
    DFA so that patterns such as `.{50,85}` repeated fail clearly instead of eating memory.
    """

    def __init__(self, pattern: str, *, max_states: int = 10_000) -> None:
        super().__init__()
        self.pattern = pattern
        self.dfa: ByteDFA = compile_regex(pattern, max_states=max_states)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def _compile(self, vocab: TokenVocabulary) -> DFAMatcher:
        return DFAMatcher(self.dfa, vocab)

    def check(self, text: str | bytes) -> bool:
        return self.dfa.accepts(text.encode("utf-8") if isinstance(text, str) else text)

    def describe(self) -> dict:
        return {"type": "regex", "pattern": self.pattern, "dfa_states": self.dfa.n_states}


@njit(cache=True)
def _advance(transitions, accepting, offsets, data, is_text, is_eos, state, token):
    """Next DFA state after `token`, the same state for EOS in a final state, or -1."""
    if is_eos[token]:
        return state if accepting[state] else -1
    if not is_text[token]:
        return -1
    for k in range(offsets[token], offsets[token + 1]):
        state = transitions[state, data[k]]
        if state < 0:
            return -1
    return state


class DFAMatcher(Matcher[int]):
    """A `ByteDFA` on a vocabulary: states are DFA state numbers; masks are built by one trie walk per state
    and cached, so each state's mask is built at most once per (constraint, vocabulary). The walk is over the
    trie of the tokens read through the DFA's byte classes (`trie.ClassTrie`: hundreds of nodes, not 100k)."""

    def __init__(self, dfa: ByteDFA, vocab: TokenVocabulary) -> None:
        self.dfa = dfa
        self.vocab = vocab
        self.trie = TokenTrie.of(vocab)
        self._eos = np.zeros(vocab.size, np.bool_)
        self._eos_ids = np.array(sorted(vocab.eos_ids), np.int64)
        self._eos[self._eos_ids] = True
        self._args = (dfa.transitions, dfa.accepting, vocab.offsets, vocab.data, vocab.is_text, self._eos)
        self._masks: dict[int, np.ndarray] = {}
        self._bits: dict[int, np.ndarray] = {}  # state -> its mask as a bitset (built apart: `fill_bitmask`)
        self._eos_bits = bitset.TokenBits(vocab.eos_ids)
        classes, representatives = byte_classes(dfa.transitions)
        self._class_trie = self.trie.class_trie(classes)  # None where the partition saves nothing
        if self._class_trie is not None:
            self._class_table = np.ascontiguousarray(dfa.transitions[:, representatives])
        else:
            self._loops = self_loops(dfa.transitions)
            self._loopy = loop_flags(self._loops)

    def start(self) -> int:
        return self.dfa.start

    def advance(self, state: int, token_id: int) -> int | None:
        nxt = _advance(*self._args, state, token_id)
        return None if nxt < 0 else int(nxt)

    def allows(self, state: int, token_id: int) -> bool:
        return _advance(*self._args, state, token_id) >= 0

    def is_final(self, state: int) -> bool:
        return bool(self.dfa.accepting[state])

    def mask(self, state: int) -> np.ndarray:
        mask = self._masks.get(state)
        if mask is None:
            mask = self._walk(state, np.zeros(self.vocab.size, np.bool_))
            mask[self._eos_ids] = self.dfa.accepting[state]
            mask.flags.writeable = False
            self._masks[state] = mask
        return mask

    def fill_bitmask(self, state: int, out: np.ndarray) -> None:
        bits = self._bits.get(state)
        if bits is None:
            bits = self._walk(state, bitset.empty(self.vocab.size))
            self._eos_bits.write(bits, bool(self.dfa.accepting[state]))
            bits.flags.writeable = False
            self._bits[state] = bits
        bitset.words_of(out, self.vocab.size)[:] = bits

    def _walk(self, state: int, out: np.ndarray) -> np.ndarray:
        """Mark the text tokens the DFA reads from `state` in `out` (a zeroed bool array or bitset)."""
        if self._class_trie is not None:
            return self._class_trie.mask(self._class_table, state, out)
        return self.trie.mask_table(self.dfa.transitions, state, self._loops, self._loopy, out=out)

    @property
    def cached_masks(self) -> int:
        """How many states' masks have been built so far."""
        return len(self._masks)
