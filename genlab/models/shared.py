"""`SharedModel`: one model whose forward passes serve several concurrent runs (a server's requests) at once.

Each run calls the samplers as usual, in a thread of its own, with a `SharedModel` in place of the `HFModel`. Its
`prefill` runs the prompt alone and then moves the rows into one pooled `KVBatch` that holds the rows of every
live run (different prompts, aligned with holes); the run gets a `SharedRows` view of its rows. A view's `extend`
waits until every run in the pool has asked for its next forward, and then one forward serves them all: the
batched forward costs little more than one row's on a memory-bound device, so concurrent runs share forwards
instead of queueing for them. Every row keeps its own positions and attention mask, so a run's log-probs are
those it would get alone (up to float rounding of a wider batch).

A run joins the pool at its first `prefill` and must leave it when it finishes (`with shared.session(): ...`):
a forward waits for every member, so a member that stops extending without leaving would stall the others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from genlab.models.base import RowTokens
from genlab.models.hf import HFModel, KVBatch

if TYPE_CHECKING:
    from genlab.vocab import TokenVocabulary


class SharedModel:
    """An `HFModel` shared by concurrent runs, each in its own thread: their rows step together in one batch."""

    def __init__(self, lm: HFModel):
        self.lm = lm
        self.vocab_size = lm.vocab_size
        self.eos_token_ids = lm.eos_token_ids
        self.tokenizer = lm.tokenizer
        self.device = lm.device
        self._torch = threading.Lock()  # one forward at a time: two on the same cores slow each other down
        self._changed = threading.Condition()
        self._batch: KVBatch | None = None  # every member's rows, view after view
        self._views: list[SharedRows] = []
        self._members: set[int] = set()  # threads in the pool
        self._pending: dict[SharedRows, tuple[list[RowTokens], bool]] = {}
        self.forwards = 0  # pooled forward passes, for benchmarks
        self.rows_forwarded = 0
        self.most_members = 0  # the most runs one forward served

    def __repr__(self) -> str:
        return f"SharedModel({self.lm!r})"

    @cached_property
    def vocab(self) -> TokenVocabulary:
        return self.lm.vocab

    def encode(self, text: str) -> list[int]:
        return self.lm.encode(text)

    @property
    def members(self) -> int:
        """The runs now in the pool."""
        with self._changed:
            return len(self._members)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run a sampler in this block: the thread's rows leave the pool at the end, even on an error."""
        try:
            yield
        finally:
            self.leave()

    def prefill(self, prompt_ids: Sequence[int], n: int = 1) -> SharedRows:
        """Run the prompt alone, then pool its n rows with the other members' (the calling thread joins)."""
        with self._torch:
            own = self.lm.prefill(prompt_ids, n)
        with self._changed:
            view = SharedRows(self, own.prompt_ids, n, threading.get_ident())
            if self._batch is None:
                self._batch = own
            else:
                self._batch.absorb(own)
            self._views.append(view)
            self._members.add(view.thread)
            return view

    def leave(self) -> None:
        """The calling thread's rows leave the pool; the others no longer wait for it."""
        thread = threading.get_ident()
        with self._changed:
            mine = [v for v in self._views if v.thread == thread]
            for view in mine:
                self._pending.pop(view, None)
                if self._batch is not None:
                    rows = self._rows(view)
                    if len(rows) == self._batch.size:
                        self._batch = None
                    elif len(rows):
                        self._batch.release(rows)
                self._views.remove(view)
                view.count = 0
            self._members.discard(thread)
            self._step_if_ready()

    def _rows(self, view: SharedRows) -> range:
        """The view's rows in the pooled batch (the rows of the views before it come first)."""
        start = 0
        for v in self._views:
            if v is view:
                return range(start, start + v.count)
            start += v.count
        raise RuntimeError("this batch has left its SharedModel (the session ended)")

    def _extend(self, view: SharedRows, tokens: list[RowTokens], keep_all: bool) -> None:
        with self._changed:
            self._rows(view)  # still a member
            self._pending[view] = (tokens, keep_all)
            view.error = None
            self._step_if_ready()
            while view in self._pending:
                self._changed.wait()
            if view.error is not None:
                raise view.error

    def _step_if_ready(self) -> None:
        """One forward for every pending view, once every member waits on one (called with the lock held)."""
        if not self._pending:
            return
        waiting = {v.thread for v in self._pending}
        if not self._members <= waiting:
            return
        assert self._batch is not None
        tokens: list[RowTokens] = []
        for view in self._views:
            tokens += self._pending[view][0] if view in self._pending else [None] * view.count
        keep_all = any(k for _, k in self._pending.values())
        pending, self._pending = self._pending, {}
        try:
            with self._torch:
                self._batch.extend(tokens, keep_all=keep_all)
            self.forwards += 1
            self.most_members = max(self.most_members, len(waiting))
            self.rows_forwarded += sum(t is not None and t != [] for t in tokens)
        except Exception as err:  # every waiting run sees the failure, none hangs
            for view in pending:
                view.error = err
        self._changed.notify_all()


class SharedRows:
    """One run's rows of a `SharedModel`'s pooled batch, as the `BatchState` the samplers use."""

    def __init__(self, shared: SharedModel, prompt: tuple[int, ...], count: int, thread: int):
        self.shared = shared
        self._prompt = prompt
        self.count = count
        self.thread = thread
        self.error: BaseException | None = None
        self.keep_all = False  # what the last extend asked: other runs' drafts may make the pooled forward keep all

    def _batch(self) -> tuple[KVBatch, range]:
        rows = self.shared._rows(self)
        assert self.shared._batch is not None
        return self.shared._batch, rows

    @property
    def size(self) -> int:
        return self.count

    def __len__(self) -> int:
        return self.count

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        return self._prompt

    @property
    def token_ids(self) -> list[tuple[int, ...]]:
        with self.shared._changed:
            batch, rows = self._batch()
            return batch.rows_tokens(rows)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.token_ids]

    def logprobs(self) -> torch.Tensor:
        with self.shared._changed:
            batch, rows = self._batch()
            return batch.logprobs()[rows.start : rows.stop]

    def extend(self, tokens: Sequence[RowTokens], *, keep_all: bool = False) -> None:
        if len(tokens) != self.count:
            raise ValueError(f"extend needs one entry per row ({self.count}), got {len(tokens)}")
        self.keep_all = keep_all
        self.shared._extend(self, list(tokens), keep_all)

    @property
    def recent(self) -> list[torch.Tensor] | None:
        if not self.keep_all:
            return None
        with self.shared._changed:
            batch, rows = self._batch()
            recent = batch.recent
            return None if recent is None else recent[rows.start : rows.stop]

    def truncate(self, lengths: Sequence[int]) -> None:
        if len(lengths) != self.count:
            raise ValueError(f"truncate needs one length per row ({self.count}), got {len(lengths)}")
        with self.shared._changed:
            batch, rows = self._batch()
            everyone = batch.lengths
            everyone[rows.start : rows.stop] = [int(k) for k in lengths]
            batch.truncate(everyone)

    def select(self, indices: Sequence[int]) -> None:
        order = [int(i) for i in indices]
        if not order:
            raise ValueError("select needs at least one row")
        if min(order) < 0 or max(order) >= self.count:
            raise IndexError(f"select got row indices outside 0..{self.count - 1}: {order}")
        with self.shared._changed:
            batch, rows = self._batch()
            whole = list(range(rows.start)) + [rows.start + i for i in order]
            whole += list(range(rows.stop, batch.size))
            batch.select(whole)
            self.count = len(order)
