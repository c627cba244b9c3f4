"""SQLite's reserved words and two spellings of the shipped grammar's NAME terminal (an identifier that is no
reserved word): the grammar's own, with a leading negative lookahead, and a trie over the words with no lookaround
but the guard, an independent construction of the same language (and what engines without lookaheads take)."""

from __future__ import annotations

import re
import string

WORD_GUARD = "(?![A-Za-z0-9_$])"

# SQLite's keywords that are no identifier anywhere (SQLite 3.40; checked against SQLite in test_sqlite_grammar.py).
RESERVED = (
    "ADD ALL ALTER AND AS AUTOINCREMENT BETWEEN CASE CHECK COLLATE COMMIT CONSTRAINT CREATE DEFAULT DEFERRABLE "
    "DELETE DISTINCT DROP ELSE ESCAPE EXCEPT EXISTS FOREIGN FROM GROUP HAVING IN INDEX INSERT INTERSECT INTO IS "
    "ISNULL JOIN LIMIT NOT NOTHING NOTNULL NULL ON OR ORDER PRIMARY REFERENCES RETURNING SELECT SET TABLE THEN TO "
    "TRANSACTION UNION UNIQUE UPDATE USING VALUES WHEN WHERE"
).split()

_IDENT = "[0-9A-Za-z_$]"
_CLASS_ORDER = string.digits + string.ascii_uppercase + "$_" + string.ascii_lowercase


def _char_class(chars: set[str]) -> str:
    """A regex class for a set of identifier characters, runs of digits or same-case letters as ranges."""
    idx = sorted(_CLASS_ORDER.index(c) for c in chars)

    def kind(i: int) -> str:
        c = _CLASS_ORDER[i]
        return "d" if c.isdigit() else "U" if c.isupper() else "l" if c.islower() else c

    parts, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1 and kind(idx[j + 1]) == kind(idx[i]) in "dUl":
            j += 1
        a, b = _CLASS_ORDER[idx[i]], _CLASS_ORDER[idx[j]]
        parts.append(a if i == j else a + b if j == i + 1 else f"{a}-{b}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def name_regex(reserved: list[str]) -> str:
    """The grammar's NAME: [A-Za-z_][A-Za-z0-9_$]* except `reserved` (any case), with no lookaround but the guard.

    A trie over the reserved words: at each node, either a child's letter (either case) and on down, or any other
    identifier character and then anything; the empty rest is allowed where the prefix read is no reserved word.
    """
    trie: dict = {}
    for word in reserved:
        node = trie
        for c in word.lower():
            node = node.setdefault(c, {})
        node[""] = {}
    head, tail = set(string.ascii_letters + "_"), set(string.ascii_letters + string.digits + "_$")

    def body(node: dict, allowed: set[str], root: bool) -> str:
        kids = sorted(k for k in node if k)
        alts = [f"[{c.upper()}{c}]" + body(node[c], tail, False) for c in kids]
        other = allowed - {x for c in kids for x in (c, c.upper())}
        if other:
            alts.append(_IDENT + "+" if other == tail else _char_class(other) + _IDENT + "*")
        inner = "|".join(alts)
        if not root and "" not in node:
            return f"(?:{inner})?"
        return inner if len(alts) == 1 and not root else f"(?:{inner})"

    return body(trie, head, True) + WORD_GUARD


def name_exclusion(reserved: list[str]) -> str:
    """The leading lookahead of the grammar's NAME: none of `reserved`, in any ASCII case, as a whole word."""
    return f"(?!(?ai:{'|'.join(reserved)}){WORD_GUARD})"


def name_pattern(reserved: list[str]) -> str:
    """The grammar's NAME: [A-Za-z_][A-Za-z0-9_$]* where a leading lookahead leaves out `reserved`."""
    return f"{name_exclusion(reserved)}[A-Za-z_][A-Za-z0-9_$]*{WORD_GUARD}"


_NAME = re.compile(r"^NAME: /\(\?!\(\?ai:([A-Z|]+)\)", re.M)


def without_lookaheads(grammar: str) -> str:
    """`grammar` (sqlite.lark's text) with its NAME spelled as the trie, for engines that have no lookaheads."""
    match = _NAME.search(grammar)
    if match is None:
        return grammar
    end = grammar.index("\n", match.start())
    return grammar[: match.start()] + f"NAME: /{name_regex(match.group(1).split('|'))}/" + grammar[end:]
