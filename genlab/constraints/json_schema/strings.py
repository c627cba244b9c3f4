"""JSON string literals whose decoded value is in a regular language: the escape transform on byte DFAs.

Schema keywords on strings (`pattern`, `minLength`, `format`, `const`, property names) speak of the decoded
value; the model writes the JSON literal. `quoted(d)` turns the DFA `d` of decoded values into the DFA of their
literals, with escapes as `json.dumps(value, ensure_ascii=False)` writes them: `\\"`, `\\\\`, `\\n`, `\\r`,
`\\t`, `\\b`, `\\f`, other control characters as `\\u00xx` (either hex case), and `\\/` for `/`. Every other
character is written as itself, so each value has one literal (two where it has a `/`), and the language of
literals stays exactly the image of `d`.
"""

from __future__ import annotations

import functools

import numpy as np

from genlab.automata.combine import intersect
from genlab.automata.dfa import ByteDFA
from genlab.automata.minimize import minimal_dfa
from genlab.automata.regex import compile_regex
from genlab.errors import StateLimitError

_QUOTE, _BACKSLASH = 0x22, 0x5C
_NAMED = {
    0x22: 0x22,
    0x5C: 0x5C,
    0x0A: ord("n"),
    0x0D: ord("r"),
    0x09: ord("t"),
    0x08: ord("b"),
    0x0C: ord("f"),
    0x2F: 0x2F,
}
_HEX = [[ord(c) for c in {f"{v:x}", f"{v:X}"}] for v in range(16)]
# the bytes a literal never holds raw: they must be escaped
_ESCAPED = np.zeros(256, np.bool_)
_ESCAPED[:0x20] = True
_ESCAPED[[_QUOTE, _BACKSLASH]] = True
_ESCAPE_LIST = np.array(list(range(0x20)) + [_QUOTE, _BACKSLASH, 0x2F])
_UNNAMED = np.array([b for b in range(0x20) if b not in _NAMED])  # written as \u00xx


def quoted(decoded: ByteDFA) -> ByteDFA:
    """The DFA of the JSON literals (with their quotes) of the strings `decoded` accepts."""
    n = decoded.n_states
    moves = decoded.transitions
    # states: 0 the opening quote, 1..n content (decoded state s is s + 1), n + 1 after the closing quote, then
    # per content state with escapes: one after `\`, and for control characters `\u`, `\u0`, `\u00`, and
    # `\u000` / `\u001`
    escaping = np.flatnonzero((moves[:, _ESCAPE_LIST] >= 0).any(axis=1))
    e = len(escaping)
    esc, u, u0, u00, h0, h1 = (n + 2 + k * e for k in range(6))
    total = n + 2 + 6 * e
    table = np.full((total, 256), -1, np.int32)
    table[0, _QUOTE] = decoded.start + 1
    table[1 : n + 1] = np.where((moves >= 0) & ~_ESCAPED, moves + 1, -1)
    table[np.flatnonzero(decoded.accepting) + 1, _QUOTE] = n + 1
    if e:
        rows = moves[escaping]  # decoded moves of the escaping states
        ids = np.arange(e)
        table[escaping + 1, _BACKSLASH] = esc + ids
        for byte, letter in _NAMED.items():
            table[esc + ids, letter] = np.where(rows[:, byte] >= 0, rows[:, byte] + 1, -1)
        unnamed = rows[:, _UNNAMED] >= 0
        chain = np.flatnonzero(unnamed.any(axis=1))
        table[esc + chain, ord("u")] = u + chain
        table[u + chain, ord("0")] = u0 + chain
        table[u0 + chain, ord("0")] = u00 + chain
        for high, base in ((0, h0), (1, h1)):
            table[np.repeat(u00 + chain, len(_HEX[high])), np.tile(_HEX[high], len(chain))] = base + chain
        for byte in _UNNAMED.tolist():
            base = h0 if byte < 0x10 else h1
            target = np.where(rows[:, byte] >= 0, rows[:, byte] + 1, -1)
            for c in _HEX[byte & 15]:
                table[base + ids, c] = target
    accepting = np.zeros(total, np.bool_)
    accepting[n + 1] = True
    dfa = minimal_dfa(table, accepting)
    assert dfa is not None  # `decoded` has only live states, so its image is non-empty
    return dfa


# past this many states, a length range is left to the validator rather than multiplied into a pattern's DFA
MAX_PRODUCT_STATES = 3000


@functools.lru_cache(maxsize=4096)
def decoded_dfa(patterns: tuple[str, ...], min_length: int, max_length: int | None) -> tuple[ByteDFA | None, bool]:
    """(the DFA of strings that `re.search` each of `patterns` and have a length in characters in range, or None
    if no string does; whether the length range had to be left out to keep the DFA small). Patterns are Python
    regexes (what `jsonschema` applies); `compile_regex`'s errors pass through."""
    dfa = None
    for pattern in patterns:
        one = compile_regex(search_pattern(pattern))
        dfa = one if dfa is None else intersect(dfa, one)
        if dfa is None:
            return None, False
    if min_length == 0 and max_length is None:
        return (dfa if dfa is not None else length_dfa(0, None)), False
    length = length_dfa(min_length, max_length)
    if dfa is None:
        return length, False
    try:
        return intersect(dfa, length, max_states=MAX_PRODUCT_STATES), False
    except StateLimitError:
        return dfa, True


def search_pattern(pattern: str) -> str:
    """A pattern whose full matches are the strings `re.search(pattern, s)` finds a match in. Global flags such
    as `(?i)` at the start stay at the start."""
    head = ""
    while pattern.startswith("(?") and len(pattern) > 2 and pattern[2].isalpha():
        end = pattern.find(")")
        if end < 0 or not pattern[2:end].isalpha():
            break
        head, pattern = head + pattern[: end + 1], pattern[end + 1 :]
    if "x" in head:  # verbose: a trailing comment must not swallow the closing parenthesis
        pattern += "\n"
    return f"{head}(?s:.*)(?:{pattern})(?s:.*)"


def length_dfa(lo: int, hi: int | None) -> ByteDFA:
    """The DFA of UTF-8 strings of `lo` to `hi` characters (None: no upper bound), built as a chain of copies of
    the one-character DFA rather than through a regex (lengths run to hundreds)."""
    char = compile_regex("(?s:.)")
    m = char.n_states
    (end,) = np.flatnonzero(char.accepting)  # the one state after a whole character; it has no moves
    inner = [q for q in range(m) if q != end]  # start first (BFS numbering)
    copies = (hi if hi is not None else lo) + 1
    k = len(inner)
    table = np.full((copies * k, 256), -1, np.int32)
    local = char.transitions[inner]
    position = np.full(m + 1, -1, np.int64)  # per state its index in `inner`; the last entry stands for -1
    position[inner] = np.arange(k)
    mapped = np.where(local == end, k, position[local])
    for c in range(copies):
        base = c * k
        nxt = base + k if c + 1 < copies else (base if hi is None else -1)
        block = np.where(mapped == k, nxt, np.where(mapped >= 0, base + mapped, -1))
        if nxt < 0:
            block = np.where(mapped == k, -1, block)
        table[base : base + k] = block
    accepting = np.zeros(copies * k, np.bool_)
    accepting[np.arange(lo, copies) * k] = True
    dfa = minimal_dfa(table, accepting)
    assert dfa is not None
    return dfa
