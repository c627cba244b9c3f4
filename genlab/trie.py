"""A flat byte trie over a vocabulary's text tokens: the one structure every mask is built on.

Nodes are numbered in depth-first preorder, children in increasing byte order, so the subtree of node n is the
contiguous range `[n, subtree_end[n])`. A mask walk is then one forward scan over the node arrays with a stack
of automaton states indexed by depth: step the parent's state by the node's byte, and when the step fails,
jump to `subtree_end` and skip every token that starts with that prefix. Cost is the number of live nodes
visited, not the vocabulary size times token length.

Tokens are sorted by bytes, so the tokens that end at a node (several ids with the same bytes stay apart) are a
contiguous run `order[token_start[n]:token_end[n]]`, and so are all the tokens of its subtree,
`order[token_start[n]:subtree_tokens_end[n]]`. With `bytes_below[n]`, the set of bytes anywhere below the node,
a walk in an automaton state that every such byte keeps in place (the inside of a string) takes the whole
subtree at once instead of visiting it.

Automaton steps are passed in as a numba-jitted function `step(table, state, byte) -> next state` with a
negative result meaning "dead"; numba compiles one walk per step function, with the step inlined. DFA tables
(`table[state, byte]`) have a ready-made cached kernel, `TokenTrie.walk_table`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from genlab.bitset import mark
from genlab.jit import njit
from genlab.vocab import TokenVocabulary


@njit(cache=True)
def _subtree_ends(depth, n, max_depth):
    """For the first n nodes of a preorder with these depths: where each node's subtree ends."""
    subtree_end = np.full(n, n, np.int32)
    stack = np.zeros(max_depth + 2, np.int32)
    top = 0
    for i in range(n):
        while top > 0 and depth[stack[top - 1]] >= depth[i]:
            top -= 1
            subtree_end[stack[top]] = i
        stack[top] = i
        top += 1
    return subtree_end


@njit(cache=True)
def _build(order, offsets, data):
    """Preorder node arrays of the trie of the tokens `order` (sorted by bytes)."""
    n_tok = order.shape[0]
    cap = 1
    for k in range(n_tok):
        t = order[k]
        cap += offsets[t + 1] - offsets[t]
    byte = np.zeros(cap, np.uint8)
    depth = np.zeros(cap, np.int32)
    parent = np.full(cap, -1, np.int32)
    token_start = np.zeros(cap, np.int32)
    token_end = np.zeros(cap, np.int32)
    token_node = np.full(offsets.shape[0] - 1, -1, np.int32)
    max_len = 0
    for k in range(n_tok):
        t = order[k]
        max_len = max(max_len, offsets[t + 1] - offsets[t])
    path = np.zeros(max_len + 1, np.int32)  # path[d]: node at depth d on the current token's path
    n = 1
    prev_s = 0
    prev_len = 0
    for k in range(n_tok):
        t = order[k]
        s = offsets[t]
        length = offsets[t + 1] - s
        lcp = 0
        while lcp < length and lcp < prev_len and data[s + lcp] == data[prev_s + lcp]:
            lcp += 1
        for d in range(lcp + 1, length + 1):
            byte[n] = data[s + d - 1]
            depth[n] = d
            parent[n] = path[d - 1]
            token_start[n] = k
            token_end[n] = k
            path[d] = n
            n += 1
        node = path[length]
        if token_end[node] == token_start[node]:
            token_start[node] = k
        token_end[node] = k + 1
        token_node[t] = node
        prev_s = s
        prev_len = length
    subtree_end = _subtree_ends(depth, n, max_len)
    first_child = np.full(n, -1, np.int32)
    next_sibling = np.full(n, -1, np.int32)
    for i in range(n):
        if subtree_end[i] > i + 1:
            first_child[i] = i + 1
        j = subtree_end[i]
        if i > 0 and j < n and parent[j] == parent[i]:
            next_sibling[i] = j
    return (
        byte[:n].copy(),
        depth[:n].copy(),
        parent[:n].copy(),
        subtree_end,
        first_child,
        next_sibling,
        token_start[:n].copy(),
        token_end[:n].copy(),
        token_node,
        max_len,
    )


@njit(cache=True)
def _summaries(byte, parent, subtree_end, token_start, n_tok):
    """Per node: the set of bytes below it and the set of its children's bytes (4 x 64 bits each), and where its
    subtree's tokens end in `order`."""
    n = byte.shape[0]
    below = np.zeros((n, 4), np.uint64)
    children = np.zeros((n, 4), np.uint64)
    for i in range(n - 1, 0, -1):
        p = parent[i]
        b = byte[i]
        for w in range(4):
            below[p, w] |= below[i, w]
        below[p, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
        children[p, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
    tokens_end = np.empty(n, np.int32)
    for i in range(n):
        tokens_end[i] = token_start[subtree_end[i]] if subtree_end[i] < n else n_tok
    return below, children, tokens_end


@njit
def emit_state(out, token, state):
    """For `walk_nodes`: record the state a token ends in."""
    out[token] = state


@njit
def emit_true(out, token, state):
    """For `walk_nodes`: mark the token allowed (a bool mask)."""
    out[token] = True


@njit
def walk_nodes(byte, depth, subtree_end, token_start, token_end, order, step, table, start, states, emit, out):
    """emit(out, token, state) for every token the automaton reads from `start`, with the state it ends in.

    `emit_state` into an int array filled with -1 gives each token's end state; `emit_true` into a zeroed bool
    array gives the mask.
    Not cached on its own (numba cannot cache a function that takes a function argument): call it from an
    `@njit(cache=True)` kernel that passes a global step function, as `_walk_table` does, and that kernel
    caches. `states` (int64, at least max_depth + 1 long) is the caller's scratch stack of states by depth: an
    allocation in here would make every caller uncacheable.
    """
    n = byte.shape[0]
    states[0] = start
    i = 1
    while i < n:
        d = depth[i]
        s = step(table, states[d - 1], byte[i])
        if s < 0:
            i = subtree_end[i]
            continue
        states[d] = s
        for k in range(token_start[i], token_end[i]):
            emit(out, order[k], s)
        i += 1


@njit(cache=True)
def table_step(table, state, byte):
    """One DFA step through a transition table `[n_states, 256]`; negative entries are dead."""
    return table[state, byte]


@njit(cache=True)
def _walk_table(byte, depth, subtree_end, token_start, token_end, order, max_depth, table, start, out):
    states = np.empty(max_depth + 1, np.int64)
    walk_nodes(
        byte, depth, subtree_end, token_start, token_end, order, table_step, table, start, states, emit_state, out
    )


BULK_DEPTH = 4  # mask walks try taking subtrees whole at this depth and above
MAX_CLASSES = 32  # byte partitions with more classes are walked on the byte trie


@njit(inline="always")
def write_run(order, out, run_start, run_end):
    """Mark the tokens order[run_start:run_end] allowed in `out` (a bool mask or a bitset, `bitset.mark`)."""
    for k in range(run_start, run_end):
        mark(out, order[k])


@njit(inline="always")
def stays_below(bytes_below, loops, node, state):
    """Whether every byte on the edges below `node` keeps `state` in place (`loops[state]`): its subtree is then
    allowed whole, without a visit."""
    for w in range(4):
        if bytes_below[node, w] & ~loops[state, w]:
            return False
    return True


@njit(inline="always")
def extend_run(order, out, run_start, run_end, a, b):
    """Add the tokens order[a:b] to the open run order[run_start:run_end] of allowed tokens, and return the open
    run. Mask walks visit tokens in `order`'s order, so live nodes extend the run until a dead subtree breaks it;
    then the run is written (a tight loop, not a branch per node: twice as fast on dense masks) and a new one
    opens. Inlined into the walks, so it costs no call."""
    if a == run_end:
        return run_start, b
    if a == b:
        return run_start, run_end
    write_run(order, out, run_start, run_end)
    return a, b


@njit(cache=True)
def _mask_table(
    byte,
    depth,
    subtree_end,
    token_start,
    token_end,
    order,
    bytes_below,
    subtree_tokens_end,
    max_depth,
    table,
    loops,
    loopy,
    start,
    out,
):
    """The mask walk for a DFA table, taking a subtree whole where every byte below keeps the state in place;
    allowed tokens are written as runs (`extend_run`)."""
    states = np.empty(max_depth + 1, np.int64)
    states[0] = start
    n = byte.shape[0]
    i = 1
    run_start = 0
    run_end = 0  # the open run order[run_start:run_end] of allowed tokens, not yet written to `out`
    while i < n:
        d = depth[i]
        s = table[states[d - 1], byte[i]]
        if s < 0:
            i = subtree_end[i]
            continue
        # only near the root, where subtrees are big: deeper down, visiting is about as cheap as the test.
        whole = d <= BULK_DEPTH and loopy[s] and stays_below(bytes_below, loops, i, s)
        run_start, run_end = extend_run(
            order, out, run_start, run_end, token_start[i], subtree_tokens_end[i] if whole else token_end[i]
        )
        if whole:
            i = subtree_end[i]
            continue
        states[d] = s
        i += 1
    write_run(order, out, run_start, run_end)


def self_loops(table: np.ndarray) -> np.ndarray:
    """[n_states, 4] uint64: per state of a DFA table, the 256-bit set of bytes that lead back to it."""
    stay = table == np.arange(table.shape[0])[:, None]
    return np.ascontiguousarray(np.packbits(stay, axis=1, bitorder="little")).view(np.uint64)


def loop_flags(loops: np.ndarray) -> np.ndarray:
    """Per state, whether `loops` (from `self_loops`) has any byte: one load in the walk instead of four."""
    return (loops != 0).any(axis=1)


@njit(cache=True)
def byte_classes(table):
    """The bytes a DFA table cannot tell apart (equal columns): (class of each byte int32[256], one representative
    byte per class). Columns are hashed row by row, then compared in full against each class's representative."""
    n = table.shape[0]
    hashes = np.full(256, np.uint64(14695981039346656037), np.uint64)
    for s in range(n):
        for b in range(256):
            hashes[b] = (hashes[b] ^ np.uint64(table[s, b] + 1)) * np.uint64(1099511628211)
    classes = np.full(256, -1, np.int32)
    reps = np.empty(256, np.int32)
    k = 0
    for b in range(256):
        for c in range(k):
            r = reps[c]
            if hashes[r] == hashes[b]:
                same = True
                for s in range(n):
                    if table[s, b] != table[s, r]:
                        same = False
                        break
                if same:
                    classes[b] = c
                    break
        if classes[b] < 0:
            classes[b] = k
            reps[k] = b
            k += 1
    return classes, reps[:k].copy()


@njit(cache=True)
def _quotient(byte, parent, token_start, token_end, order, classes, n_classes, bits):
    """The trie of the tokens' class strings (bytes mapped through `classes`), in preorder: (class on the edge,
    depth, subtree end, token range start/end, tokens grouped by node in preorder, max depth). Children are found
    through an open-addressing table of 2**bits slots keyed by (parent, class); None if the trie would fill half
    of it (call again with more bits)."""
    n = byte.shape[0]
    size = 1 << bits
    cap = size >> 1
    keys = np.full(size, -1, np.int64)
    vals = np.empty(size, np.int32)
    cpar = np.full(cap, -1, np.int32)
    ccls = np.full(cap, -1, np.int32)
    ccount = np.zeros(cap, np.int32)
    m = 1
    cnode = np.empty(n, np.int32)
    cnode[0] = 0
    shift = np.uint64(64 - bits)
    for i in range(1, n):
        p = cnode[parent[i]]
        c = classes[byte[i]]
        key = np.int64(p) * n_classes + c
        h = np.int64((np.uint64(key) * np.uint64(11400714819323198485)) >> shift)
        while keys[h] != -1 and keys[h] != key:
            h = (h + 1) & (size - 1)
        if keys[h] == key:
            k = vals[h]
        else:
            if m == cap:
                return None
            k = m
            m += 1
            keys[h] = key
            vals[h] = k
            cpar[k] = p
            ccls[k] = c
        cnode[i] = k
        ccount[k] += token_end[i] - token_start[i]
    # children of each node, in class order: nodes sorted by (parent, class)
    sort_key = np.empty(m - 1, np.int64)
    for k in range(1, m):
        sort_key[k - 1] = np.int64(cpar[k]) * n_classes + ccls[k]
    by_parent = np.argsort(sort_key) + 1
    first = np.zeros(m + 1, np.int32)
    for k in range(1, m):
        first[cpar[k] + 1] += 1
    for k in range(m):
        first[k + 1] += first[k]
    pre = np.empty(m, np.int32)
    newid = np.empty(m, np.int32)
    stack = np.empty(m, np.int32)
    stack[0] = 0
    top = 1
    j = 0
    while top > 0:
        top -= 1
        v = stack[top]
        newid[v] = j
        pre[j] = v
        j += 1
        for x in range(first[v + 1] - 1, first[v] - 1, -1):  # pushed in reverse: popped in class order
            stack[top] = by_parent[x]
            top += 1
    depth = np.zeros(m, np.int32)
    edge = np.full(m, -1, np.int32)
    tstart = np.zeros(m, np.int32)
    tend = np.zeros(m, np.int32)
    acc = 0
    max_depth = 0
    for j in range(m):
        v = pre[j]
        if v != 0:
            edge[j] = ccls[v]
            depth[j] = depth[newid[cpar[v]]] + 1
            max_depth = max(max_depth, depth[j])
        tstart[j] = acc
        acc += ccount[v]
        tend[j] = acc
    fill = tstart.copy()
    tokens = np.empty(acc, np.int32)
    for i in range(1, n):
        j = newid[cnode[i]]
        for k in range(token_start[i], token_end[i]):
            tokens[fill[j]] = order[k]
            fill[j] += 1
    return edge, depth, _subtree_ends(depth, m, max_depth), tstart, tend, tokens, max_depth


@njit(cache=True)
def _mask_classes(edge, depth, sub_end, tstart, tend, tokens, max_depth, table, start, out):
    """The mask walk over a class trie with a class-compressed DFA table [n_states, n_classes]."""
    states = np.empty(max_depth + 1, np.int64)
    states[0] = start
    n = edge.shape[0]
    i = 1
    run_start = 0
    run_end = 0
    while i < n:
        d = depth[i]
        s = table[states[d - 1], edge[i]]
        if s < 0:
            i = sub_end[i]
            continue
        states[d] = s
        run_start, run_end = extend_run(tokens, out, run_start, run_end, tstart[i], tend[i])
        i += 1
    write_run(tokens, out, run_start, run_end)


@dataclass(frozen=True, eq=False)
class ClassTrie:
    """The trie of a vocabulary's tokens read through a byte partition (`byte_classes` of one DFA): bytes the DFA
    treats alike share an edge, so a regex over ASCII letters sees all-letter tokens as one chain. It is a few
    hundred nodes where the byte trie has 100k, and a mask walk over it visits each class string once.

    Arrays in preorder: `edge` (class into the node), `depth`, `subtree_end`, and the node's tokens
    `tokens[token_start[n]:token_end[n]]` (grouped by node in preorder, so a subtree's tokens are contiguous).
    """

    edge: np.ndarray
    depth: np.ndarray
    subtree_end: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    tokens: np.ndarray
    max_depth: int

    @property
    def n_nodes(self) -> int:
        return self.edge.shape[0]

    def mask(self, class_table: np.ndarray, start: int, out: np.ndarray) -> np.ndarray:
        """Mark in `out` (a bool array or bitset) every token the DFA reads from `start`; `class_table[state,
        class]` is the DFA table with one column per class (`table[:, representatives]`)."""
        _mask_classes(
            self.edge,
            self.depth,
            self.subtree_end,
            self.token_start,
            self.token_end,
            self.tokens,
            self.max_depth,
            class_table,
            start,
            out,
        )
        return out


@dataclass(frozen=True, eq=False)
class TokenTrie:
    """The byte trie of a vocabulary's text tokens (EOS and special tokens are not in it).

    Node arrays, all indexed by node id (0 is the root, the empty prefix): `byte` on the edge into the node,
    `depth`, `parent`, `first_child`, `next_sibling` (-1 for none), `subtree_end`; `token_start`/`token_end`
    delimit the node's tokens in `order`. `token_node[t]` is token t's node (-1 if t is not text).
    """

    vocab_size: int
    byte: np.ndarray
    depth: np.ndarray
    parent: np.ndarray
    subtree_end: np.ndarray
    first_child: np.ndarray
    next_sibling: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    order: np.ndarray
    token_node: np.ndarray
    max_depth: int
    bytes_below: np.ndarray  # [n_nodes, 4] uint64: the bytes on the edges below each node, as a 256-bit set
    child_bytes: np.ndarray  # [n_nodes, 4] uint64: the bytes on the edges to each node's children
    subtree_tokens_end: np.ndarray  # the subtree of node n holds the tokens order[token_start[n]:this[n]]

    @classmethod
    def from_vocab(cls, vocab: TokenVocabulary) -> TokenTrie:
        """Build the trie of `vocab`'s text tokens (about 0.15 s for Gemma-3's 262k tokens)."""
        return cls.of_tokens(vocab, np.flatnonzero(vocab.is_text))

    @classmethod
    def of_tokens(cls, vocab: TokenVocabulary, text_ids: np.ndarray) -> TokenTrie:
        """The trie of some of `vocab`'s text tokens (`text_ids`); token ids stay `vocab`'s."""
        blobs = vocab.token_bytes
        order = np.array(sorted(text_ids.tolist(), key=blobs.__getitem__), dtype=np.int32)
        byte, depth, parent, subtree_end, first_child, next_sibling, token_start, token_end, token_node, max_len = (
            _build(order, vocab.offsets, vocab.data)
        )
        below, children, tokens_end = _summaries(byte, parent, subtree_end, token_start, len(order))
        return cls(
            vocab.size,
            byte,
            depth,
            parent,
            subtree_end,
            first_child,
            next_sibling,
            token_start,
            token_end,
            order,
            token_node,
            int(max_len),
            below,
            children,
            tokens_end,
        )

    @classmethod
    def of(cls, vocab: TokenVocabulary) -> TokenTrie:
        """The trie of `vocab`, built once per vocabulary object and shared by every constraint compiled on it."""
        trie = _TRIES.get(vocab)
        if trie is None:
            trie = _TRIES[vocab] = cls.from_vocab(vocab)
        return trie

    @property
    def n_nodes(self) -> int:
        return self.byte.shape[0]

    def children(self, node: int) -> list[int]:
        """The node's children, in increasing byte order (Python: for walks outside the kernels)."""
        out = []
        child = int(self.first_child[node])
        while child >= 0:
            out.append(child)
            child = int(self.next_sibling[child])
        return out

    def child(self, node: int, byte: int) -> int:
        """The node's child on `byte`, -1 when no token goes on with that byte."""
        child = int(self.first_child[node])
        while child >= 0 and self.byte[child] != byte:
            child = int(self.next_sibling[child])
        return child

    def class_trie(self, classes: np.ndarray) -> ClassTrie | None:
        """The trie of this vocabulary read through the byte partition `classes` (int32[256], 0..k-1), or None
        where it would be big (over `MAX_CLASSES` classes, 16,384 nodes or a quarter of the byte trie): there the
        byte walk is about as fast. Cached per partition."""
        cache = _CLASS_TRIES.setdefault(self, {})
        key = classes.tobytes()
        if key in cache:
            return cache[key]
        n_classes = int(classes.max()) + 1
        trie = None
        # Many classes (Unicode \d or \w: a class per lead byte) spell out most of the byte trie: not worth building.
        # Otherwise a first try with room for 2,048 nodes, a second for 16,384 (CJK-rich vocabularies under `.`).
        if n_classes <= MAX_CLASSES:
            for bits in (12, 15):
                built = _quotient(
                    self.byte, self.parent, self.token_start, self.token_end, self.order, classes, n_classes, bits
                )
                if built is not None:
                    edge, depth, subtree_end, token_start, token_end, tokens, max_depth = built
                    if len(edge) <= self.n_nodes // 4:
                        trie = ClassTrie(edge, depth, subtree_end, token_start, token_end, tokens, int(max_depth))
                    break
        if len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[key] = trie
        return trie

    @property
    def nodes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The arrays `walk_nodes` takes before its step function, in order."""
        return self.byte, self.depth, self.subtree_end, self.token_start, self.token_end, self.order

    def walk(self, step, table, start: int) -> np.ndarray:
        """End state of every token read by `step` from `start` (int64, -1 where the automaton died).

        Compiles once per step function and process; kernels on a hot path wrap `walk_nodes` in a cached one.
        """
        out = np.full(self.vocab_size, -1, np.int64)
        walk_nodes(*self.nodes, step, table, start, np.empty(self.max_depth + 1, np.int64), emit_state, out)
        return out

    def walk_table(self, table: np.ndarray, start: int) -> np.ndarray:
        """`walk` for a DFA transition table `[n_states, 256]` (negative = dead), with a cached kernel."""
        out = np.full(self.vocab_size, -1, np.int64)
        _walk_table(*self.nodes, self.max_depth, table, start, out)
        return out

    def mask_table(
        self,
        table: np.ndarray,
        start: int,
        loops: np.ndarray | None = None,
        loopy: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """`walk_table(table, start) >= 0`, written straight into a bool array (the fast path for masks), or into
        `out`, a zeroed bool array or bitset (`bitset.py`).

        `loops` is `self_loops(table)` and `loopy` is `loop_flags(loops)`; pass them when masking many states of one
        table, to compute them once.
        """
        if out is None:
            out = np.zeros(self.vocab_size, np.bool_)
        if loops is None:
            loops = self_loops(table)
        if loopy is None:
            loopy = loop_flags(loops)
        _mask_table(
            self.byte,
            self.depth,
            self.subtree_end,
            self.token_start,
            self.token_end,
            self.order,
            self.bytes_below,
            self.subtree_tokens_end,
            self.max_depth,
            table,
            loops,
            loopy,
            start,
            out,
        )
        return out


_TRIES: weakref.WeakKeyDictionary[TokenVocabulary, TokenTrie] = weakref.WeakKeyDictionary()
_CLASS_TRIES: weakref.WeakKeyDictionary[TokenTrie, dict] = weakref.WeakKeyDictionary()
