"""`allows` for grammars in one compiled call: whether a parser thread lives through a token's bytes.

AWRS asks `allows` a few times per token, and a token often crosses a lexeme end whose parser work nobody has
done yet (a chart column, a configuration). Done from Python, that work costs several calls into numba and
dict updates per end; here the thread reads on in its lexeme (`lexer.lexeme_ends`), and where that lexeme dies,
each place it could have ended spawns threads in the configurations the boundary table says it leads to,
latest end first; a lexeme end the table lacks is resolved in place (`boundaries.resolve_end`, which makes
chart columns and configurations and fills the table mask walks read too). The kernel comes back to Python only
to build a lexer start or make room. Its ~35 arrays come as one `ArrayBundle` table, in `SLOTS` order.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.boundaries import resolve_end
from genlab.automata.bundle import b1, i32, i32_2d, i64, i64_2d
from genlab.automata.earley import OK
from genlab.automata.intern import find_slot
from genlab.automata.lexer import lexeme_ends
from genlab.jit import njit

# the bundle's slots: the lexer's transitions and acceptance, the configurations' lexer starts and resets, the
# boundary table, then what `resolve_end` takes (`GrammarParser.resolution_arrays`, the chart's arrays last)
SLOTS = (
    ("lexer table", "i32_2d"),
    ("byte class", "i32"),
    ("accepting", "b1"),
    ("config start", "i32"),
    ("config reset", "b1"),
    ("table keys", "i64"),
    ("table offs", "i64"),
    ("table counts", "i32"),
    ("table flat", "i32"),
    ("table sizes", "i64"),
    ("ends out", "i32"),
    ("members", "i32"),
    ("lo", "i64"),
    ("hi", "i64"),
    ("pair accepting", "b1"),
    ("pair term", "i32"),
    ("term guard", "i32"),
    ("ignored", "b1"),
    ("config column", "i32"),
    ("config guard", "i32"),
    ("config keys", "i64_2d"),
    ("config starts", "i64_2d"),
    ("config counts", "i64"),
    ("grammar", "i64"),
    ("columns", "i64_2d"),
    ("chart keys", "i64"),
    ("kernel slots", "i64"),
    ("expected bounds", "i64_2d"),
    ("expected slots", "i64"),
    ("chart sizes", "i64"),
    ("work", "i64_2d"),
    ("item set", "i64_2d"),
    ("symbol stamps", "i64"),
    ("scan memo", "i64_2d"),
)
KINDS = tuple(kind for _, kind in SLOTS)
(
    TABLE,
    BYTE_CLASS,
    ACCEPTING,
    C_START,
    C_RESET,
    T_KEYS,
    T_OFFS,
    T_COUNTS,
    T_FLAT,
    T_SIZES,
    ENDS_OUT,
    MEMBERS,
    LO,
    HI,
    PAIR_ACCEPTING,
    PAIR_TERM,
    TERM_GUARD,
    IGNORED,
    C_COLUMN,
    C_GUARD,
    C_KEYS,
    C_STARTS,
    C_COUNTS,
    G,
    COLS,
    KEYS,
    KERN_SLOTS,
    EXP_BOUNDS,
    EXP_SLOTS,
    SIZES,
    WORK,
    ITEM_SET,
    SYM_STAMPS,
    MEMO,
) = range(len(SLOTS))


@njit(cache=True)
def survives(b, data, pos, end, config, state):
    """Whether thread (`config`, lexer `state`) lives through `data[pos:end]`: (status, alive). A thread alive at
    the end is mid-lexeme in a live state or at the end of an expected terminal, either way with a completion.
    A status other than `OK` is `resolve_end`'s (a lexer start to build, room to make): call again after."""
    table, byte_class, accepting = i32_2d(b, TABLE), i32(b, BYTE_CLASS), b1(b, ACCEPTING)
    t_keys, t_offs, t_counts, t_flat = i64(b, T_KEYS), i64(b, T_OFFS), i32(b, T_COUNTS), i32(b, T_FLAT)
    c_start = i32(b, C_START)
    at = np.empty(end - pos, np.int64)
    states = np.empty(end - pos, np.int32)
    work = np.empty((16, 3), np.int64)  # threads to run: configuration, lexer state, position
    seen = np.empty(16, np.int64)  # (configuration, position) of every thread pushed
    work[0, 0], work[0, 1], work[0, 2] = config, state, pos
    top, n_seen = 1, 0
    while top > 0:
        top -= 1
        c, q, p = work[top, 0], work[top, 1], work[top, 2]
        final, n = lexeme_ends(table, byte_class, accepting, data, p, end, q, at, states)
        if final >= 0:
            return OK, True
        for k in range(n):  # pushed earliest first: the latest end runs first
            key = c << 32 | states[k]
            i = find_slot(t_keys, key)
            if t_keys[i] == -1:
                status = resolve_end(
                    key,
                    i32(b, ENDS_OUT),
                    i32(b, MEMBERS),
                    i64(b, LO),
                    i64(b, HI),
                    b1(b, PAIR_ACCEPTING),
                    i32(b, PAIR_TERM),
                    i32(b, TERM_GUARD),
                    b1(b, IGNORED),
                    i32(b, C_COLUMN),
                    i32(b, C_GUARD),
                    c_start,
                    b1(b, C_RESET),
                    i64_2d(b, C_KEYS),
                    i64_2d(b, C_STARTS),
                    i64(b, C_COUNTS),
                    t_keys,
                    t_offs,
                    t_counts,
                    t_flat,
                    i64(b, T_SIZES),
                    i64(b, G),
                    i64_2d(b, COLS),
                    i64(b, KEYS),
                    i64(b, KERN_SLOTS),
                    i64_2d(b, EXP_BOUNDS),
                    i64(b, EXP_SLOTS),
                    i64(b, SIZES),
                    i64_2d(b, WORK),
                    i64_2d(b, ITEM_SET),
                    i64(b, SYM_STAMPS),
                    i64_2d(b, MEMO),
                )
                if status != OK:
                    return status, False
                i = find_slot(t_keys, key)
            p2 = at[k]
            for j in range(t_offs[i], t_offs[i] + t_counts[i]):
                c2 = np.int64(t_flat[j])
                mark = c2 << 32 | p2
                new = True
                for s in range(n_seen):
                    if seen[s] == mark:
                        new = False
                        break
                if not new:
                    continue
                if n_seen == seen.shape[0]:
                    seen = _grown(seen)
                seen[n_seen] = mark
                n_seen += 1
                if top == work.shape[0]:
                    grown = np.empty((2 * top, 3), np.int64)
                    grown[:top] = work
                    work = grown
                work[top, 0], work[top, 1], work[top, 2] = c2, c_start[c2], p2
                top += 1
    return OK, False


@njit(cache=True)
def _grown(a):
    out = np.empty(2 * a.shape[0], a.dtype)
    out[: a.shape[0]] = a
    return out
