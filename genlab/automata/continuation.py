"""Mask walks below lexeme ends, level after level, in one compiled loop.

Where a lexeme can end inside the trie, a grammar mask goes on below that node in every parser configuration the
end leads to (`GrammarParser.boundaries`), and below the nodes where those lexemes end, and so on. Each level is
one `walk_lexer` call over all the configurations it reached; `walk_continuations` runs the levels and groups
their nodes by configuration in numba, reading the parser's boundaries from a `BoundaryTable`. A lexeme end the
table does not hold yet is resolved in place (`boundaries.resolve_end`, which makes chart columns and
configurations); only a configuration whose lexer start is not built yet, or a full array, sends the walk back
to Python with the level it stopped at, to be resumed.

Walk stamps (`walk_lexer`'s `seen` marks) come from one process-wide counter, `STAMPS`, that Python and the
kernel both draw from, so stamps stay unique across matchers sharing work arrays.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.boundaries import resolve_end
from genlab.automata.earley import OK
from genlab.automata.intern import find_slot
from genlab.automata.lexer import walk_lexer
from genlab.jit import njit

STAMPS = np.ones(1, np.int64)  # the next unused walk stamp


def new_stamp() -> int:
    """A walk stamp no walk has used."""
    s = int(STAMPS[0])
    STAMPS[0] = s + 1
    return s


DONE = OK  # `walk_continuations` finished (other statuses: `boundaries.resolve_end`'s)
EVENTS = 4096  # lexeme ends a continuation level holds before its buffers grow


@njit(cache=True)
def _take_stamp(counter):
    """`new_stamp` inside a kernel."""
    s = counter[0]
    counter[0] = s + 1
    return s


@njit(cache=True)
def walk_continuations(
    front_nodes,
    front_states,
    front_configs,
    n_front,
    keys,
    offs,
    counts,
    flat,
    t_sizes,
    config_start,
    config_reset,
    config_stamp,
    first,
    counter,
    byte,
    depth,
    subtree_end,
    token_start,
    token_end,
    order,
    bytes_below,
    child_bytes,
    subtree_tokens_end,
    table,
    byte_class,
    accepting,
    loops,
    follow,
    restart,
    slice_below,
    states,
    out,
    seen_stamp,
    seen_state,
    events,
    ends_out,
    members,
    lo,
    hi,
    pair_accepting,
    pair_term,
    term_guard,
    ignored,
    c_column,
    c_guard,
    c_keys,
    c_starts,
    c_counts,
    grammar,
    cols,
    chart_keys,
    kern_slots,
    exp_bounds,
    exp_slots,
    sizes,
    work,
    item_set,
    sym_stamps,
    memo,
):
    """Walk below the frontier's nodes (lexeme ends: node, lexer state, configuration) in the configurations the
    boundary table (`keys`, `offs`, `counts`, `flat`, `t_sizes`) says they lead to, level by level, marking
    allowed tokens in `out`, until no lexeme end is left. `config_stamp[c]` is configuration c's walk stamp for
    this mask if it is at least `first` (the counter when the mask began; below: none yet, so the array serves
    every mask without being cleared); a configuration that leads back to its own start (`config_reset`) goes on
    from there inside ignored whitespace (`walk_lexer`). Lexeme ends the table lacks are resolved into it
    (`resolve_end`, with the lexer's pairs, the configurations `c_*` and the chart's arrays after `ends_out`).

    Returns (DONE, ...) or (status, n, nodes, states, configs): `resolve_end` needs Python (a lexer start, room);
    call again with the frontier returned once that is done. `events` is the first size of the buffers for a
    level's lexeme ends (doubled when a level overflows them)."""
    ev_nodes = np.empty(events, np.int32)
    ev_states = np.empty(events, np.int32)
    ev_groups = np.empty(events, np.int32)
    while n_front > 0:
        # the configurations each lexeme end leads to, resolved where the table lacks them
        # (entries stay in their slots while the table is filled: it only grows back in Python)
        n_pairs = 0
        slots = np.empty(n_front, np.int64)
        for k in range(n_front):
            key = np.int64(front_configs[k]) << 32 | front_states[k]
            i = find_slot(keys, key)
            if keys[i] == -1:
                status = resolve_end(
                    key,
                    ends_out,
                    members,
                    lo,
                    hi,
                    pair_accepting,
                    pair_term,
                    term_guard,
                    ignored,
                    c_column,
                    c_guard,
                    config_start,
                    config_reset,
                    c_keys,
                    c_starts,
                    c_counts,
                    keys,
                    offs,
                    counts,
                    flat,
                    t_sizes,
                    grammar,
                    cols,
                    chart_keys,
                    kern_slots,
                    exp_bounds,
                    exp_slots,
                    sizes,
                    work,
                    item_set,
                    sym_stamps,
                    memo,
                )
                if status != OK:
                    return status, n_front, front_nodes, front_states, front_configs
                i = find_slot(keys, key)
            slots[k] = i
            n_pairs += counts[i]
        pair_config = np.empty(n_pairs, np.int32)
        pair_node = np.empty(n_pairs, np.int32)
        n_pairs = 0
        for k in range(n_front):
            i = slots[k]
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
            if config_stamp[c] < first:
                config_stamp[c] = _take_stamp(counter)
            stamps[g] = config_stamp[c]
        while True:
            n = walk_lexer(
                byte,
                depth,
                subtree_end,
                token_start,
                token_end,
                order,
                bytes_below,
                child_bytes,
                subtree_tokens_end,
                table,
                byte_class,
                accepting,
                loops,
                follow,
                restart,
                starts,
                stamps,
                resets,
                reach,
                slice_below,
                roots,
                bounds,
                states,
                out,
                ev_nodes,
                ev_states,
                ev_groups,
                seen_stamp,
                seen_state,
            )
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
    return DONE, 0, front_nodes, front_states, front_configs
