"""From any byte DFA table to the canonical `ByteDFA`: live states only, minimal, numbered in BFS order.

Steps: keep the states that reach an accepting state (moves into the others become -1); merge equivalent
states with Hopcroft's partition refinement, run with one column per run of bytes that every state treats alike
and an explicit sink for -1; number the result breadth first from the start, bytes in increasing order. Two
equal languages therefore give identical tables. The loops are numba kernels: Hopcroft is O(k n log n) for n
states and k byte runs.
"""

from __future__ import annotations

import numpy as np

from genlab.automata.dfa import ByteDFA
from genlab.jit import njit


def minimal_dfa(table: np.ndarray, accepting: np.ndarray) -> ByteDFA | None:
    """The canonical minimal DFA of `(table, accepting)` started at state 0, or None if its language is empty."""
    out, out_accepting = _minimize(table, accepting)
    if out.shape[0] == 0:
        return None
    return ByteDFA(out, out_accepting, 0)


@njit(cache=True)
def _minimize(table, accepting):
    """`minimal_dfa` in one kernel: (table, accepting), no states for an empty language."""
    n0 = table.shape[0]
    # runs of bytes with identical columns act as one symbol: work on one column per run
    first_byte = np.zeros(256, np.int64)
    byte_run = np.zeros(256, np.int64)
    k = 1
    for b in range(1, 256):
        for s in range(n0):
            if table[s, b] != table[s, b - 1]:
                first_byte[k] = b
                k += 1
                break
        byte_run[b] = k - 1
    runs = np.empty((n0, k), np.int64)
    for s in range(n0):
        for c in range(k):
            runs[s, c] = table[s, first_byte[c]]
    live = _live_states(runs, accepting)
    if not live[0]:
        return np.empty((0, 256), np.int32), np.zeros(0, np.bool_)
    new_id = np.full(n0, -1, np.int64)
    keep = np.empty(n0, np.int64)
    n = 0
    for s in range(n0):
        if live[s]:
            new_id[s] = n
            keep[n] = s
            n += 1
    # the live states' moves, with an explicit sink (state n) for -1 and for moves into dead states
    total = np.full((n + 1, k), n, np.int64)
    acc = np.zeros(n + 1, np.bool_)
    for i in range(n):
        acc[i] = accepting[keep[i]]
        for c in range(k):
            t = runs[keep[i], c]
            if t >= 0 and live[t]:
                total[i, c] = new_id[t]
    blocks = _hopcroft(total, acc)
    # blocks of live states, numbered by their first state; each read through that representative
    block_id = np.full(n + 1, -1, np.int64)
    rep = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if block_id[blocks[i]] < 0:
            block_id[blocks[i]] = m
            rep[m] = i
            m += 1
    sink = blocks[n]
    merged = np.full((m, k), -1, np.int64)
    for j in range(m):
        for c in range(k):
            t = blocks[total[rep[j], c]]
            if t != sink:
                merged[j, c] = block_id[t]
    rank = _bfs_order(merged, block_id[blocks[0]])  # runs are in increasing byte order, as bytes would be
    reached = 0
    for j in range(m):
        if rank[j] >= 0:
            reached += 1
    out = np.full((reached, 256), -1, np.int32)
    out_accepting = np.zeros(reached, np.bool_)
    for j in range(m):
        r = rank[j]
        if r < 0:
            continue
        out_accepting[r] = acc[rep[j]]
        for b in range(256):
            t = merged[j, byte_run[b]]
            if t >= 0:
                out[r, b] = rank[t]
    return out, out_accepting


@njit(cache=True)
def _live_states(table, accepting):
    """States from which an accepting state is reachable: breadth-first search on reversed moves."""
    n = table.shape[0]
    start = np.zeros(n + 1, np.int64)
    for s in range(n):
        for b in range(table.shape[1]):
            t = table[s, b]
            if t >= 0 and (b == 0 or table[s, b - 1] != t):
                start[t + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    src = np.empty(start[n], np.int64)
    for s in range(n):
        for b in range(table.shape[1]):
            t = table[s, b]
            if t >= 0 and (b == 0 or table[s, b - 1] != t):
                src[fill[t]] = s
                fill[t] += 1
    live = accepting.copy()
    queue = np.empty(n, np.int64)
    head, tail = 0, 0
    for s in range(n):
        if accepting[s]:
            queue[tail] = s
            tail += 1
    while head < tail:
        t = queue[head]
        head += 1
        for j in range(start[t], start[t + 1]):
            s = src[j]
            if not live[s]:
                live[s] = True
                queue[tail] = s
                tail += 1
    return live


@njit(cache=True)
def _hopcroft(delta, accepting):
    """Block of each state in the coarsest partition of complete DFA `delta` [n, k] that separates acceptance."""
    n, k = delta.shape
    # predecessors on class c of state t: src[pred_start[c * n + t] : pred_start[c * n + t + 1]]
    pred_start = np.zeros(k * n + 1, np.int64)
    for s in range(n):
        for c in range(k):
            pred_start[c * n + delta[s, c] + 1] += 1
    for i in range(k * n):
        pred_start[i + 1] += pred_start[i]
    fill = pred_start[:-1].copy()
    src = np.empty(k * n, np.int64)
    for s in range(n):
        for c in range(k):
            i = c * n + delta[s, c]
            src[fill[i]] = s
            fill[i] += 1

    # partition: block b is elems[first[b]:end[b]]; marked states sit at the front of their block
    elems = np.empty(n, np.int64)
    loc = np.empty(n, np.int64)
    block = np.empty(n, np.int64)
    first = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    marked = np.zeros(n, np.int64)
    n_acc = 0
    for s in range(n):
        if accepting[s]:
            n_acc += 1
    a, r = 0, n_acc
    for s in range(n):
        if accepting[s]:
            elems[a] = s
            a += 1
        else:
            elems[r] = s
            r += 1
    n_blocks = 0
    if n_acc > 0:
        first[0], end[0] = 0, n_acc
        n_blocks = 1
    if n_acc < n:
        first[n_blocks], end[n_blocks] = n_acc, n
        n_blocks += 1
    for b in range(n_blocks):
        for i in range(first[b], end[b]):
            block[elems[i]] = b
            loc[elems[i]] = i

    in_work = np.zeros((n, k), np.bool_)
    work = np.empty((n * k, 2), np.int64)
    n_work = 0
    if n_blocks == 2:
        smaller = 0 if end[0] - first[0] <= end[1] - first[1] else 1
        for c in range(k):
            work[n_work, 0], work[n_work, 1] = smaller, c
            in_work[smaller, c] = True
            n_work += 1

    preds = np.empty(n, np.int64)
    touched = np.empty(n, np.int64)
    while n_work > 0:
        n_work -= 1
        splitter, c = work[n_work, 0], work[n_work, 1]
        in_work[splitter, c] = False
        n_preds = 0
        for i in range(first[splitter], end[splitter]):
            t = elems[i]
            for j in range(pred_start[c * n + t], pred_start[c * n + t + 1]):
                preds[n_preds] = src[j]
                n_preds += 1
        n_touched = 0
        for i in range(n_preds):
            s = preds[i]
            b = block[s]
            if marked[b] == 0:
                touched[n_touched] = b
                n_touched += 1
            pos = first[b] + marked[b]
            other = elems[pos]
            elems[pos], elems[loc[s]] = s, other
            loc[other], loc[s] = loc[s], pos
            marked[b] += 1
        for i in range(n_touched):
            b = touched[i]
            m = marked[b]
            marked[b] = 0
            if m == end[b] - first[b]:
                continue
            nb = n_blocks
            n_blocks += 1
            first[nb], end[nb] = first[b], first[b] + m
            first[b] = end[nb]
            for j in range(first[nb], end[nb]):
                block[elems[j]] = nb
            for c2 in range(k):
                if in_work[b, c2]:
                    add = nb
                elif end[nb] - first[nb] <= end[b] - first[b]:
                    add = nb
                else:
                    add = b
                if not in_work[add, c2]:
                    in_work[add, c2] = True
                    work[n_work, 0], work[n_work, 1] = add, c2
                    n_work += 1
    return block


@njit(cache=True)
def _bfs_order(table, start):
    """New number of each state: breadth-first from `start`, successors in increasing byte order."""
    n = table.shape[0]
    rank = np.full(n, -1, np.int64)
    queue = np.empty(n, np.int64)
    rank[start], queue[0] = 0, start
    head, tail = 0, 1
    while head < tail:
        s = queue[head]
        head += 1
        for b in range(table.shape[1]):
            t = table[s, b]
            if t >= 0 and rank[t] < 0:
                rank[t] = tail
                queue[tail] = t
                tail += 1
    return rank
