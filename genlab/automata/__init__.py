"""Numba-jitted automata kernels: byte-level DFAs from regular expressions, run over tokens and the trie."""

from genlab.automata.dfa import ByteDFA
from genlab.automata.regex import compile_regex

__all__ = ["ByteDFA", "compile_regex"]
