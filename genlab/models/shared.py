"""`SharedModel`: one model whose forward passes serve several concurrent runs (a server's requests) at once.

Each run calls the samplers as usual, in a thread of its own, with a `SharedModel` in place of the `HFModel`. Its
`prefill` runs the prompt alone and then moves the rows into one pooled `KVBatch` that holds the rows of every
live run (different prompts, aligned with holes); the run gets a `SharedRows` view of its rows. A view's `extend`
waits until every run in the pool has asked for its next forward, and then one forward serves them all: the
batched forward costs little more than one row's on a memory-bound device, so concurrent runs share forwards
instead of queueing for them. Every row keeps its own positions and attention mask, so a run's log-probs are
those it would get alone (up to float rounding of a wider batch). A run's rows are slots of the pooled batch: a
fork copies only that run's rows into spare slots, a drop or a finished run frees its slots, and the batch is
compacted (one copy of everything) only once spare slots pile up, since each costs a row in every forward.

A run joins the pool at its first `prefill` and must leave it when it finishes (`with shared.session(): ...`):
a forward waits for every member, so a member that stops extending without leaving would stall the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import numba
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
        self.min_draft = lm.min_draft
        # Every forward and prefill runs on this one thread, with the constructing thread's torch thread count (see
        # `member_thread`): one at a time, since two on the same cores slow each other down.
        threads = torch.get_num_threads()
        self._runner = ThreadPoolExecutor(
            1, thread_name_prefix="genlab-forward", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self._runner.submit(torch.get_num_threads).result()  # the thread starts now, before any member's
        self._changed = threading.Condition()
        self._batch: KVBatch | None = None  # every member's rows, view after view
        self._views: list[SharedRows] = []
        self._free: list[int] = []  # spare rows of the batch (left by drops and finished runs), reused by forks
        self._members: set[int] = set()  # threads in the pool
        self._pending: dict[SharedRows, tuple[list[RowTokens], bool]] = {}
        self.forwards = 0  # pooled forward passes, for benchmarks
        self.rows_forwarded = 0
        self.forward_seconds = 0.0  # the forward thread's time in pooled forwards
        self.prefill_seconds = 0.0  # and in prefills (each prompt alone)
        self.most_members = 0  # the most runs one forward served

    def __repr__(self) -> str:
        return f"SharedModel({self.lm!r})"

    @cached_property
    def vocab(self) -> TokenVocabulary:
        return self.lm.vocab

    def encode(self, text: str) -> list[int]:
        return self.lm.encode(text)

    @staticmethod
    def member_thread() -> None:
        """Set up a thread that will run samplers on this model (a server's worker): its own torch and numba work
        runs single-threaded. OpenMP keeps a pool of workers per thread that launches parallel work, and on 2 cores
        a forward slowed by 1.4x (8 rows: 80 against 57 ms) for good once any second thread had launched some, even
        a log-sum-exp over the vocabulary; the forward thread keeps its threads."""
        torch.set_num_threads(1)
        numba.set_num_threads(1)

    @property
    def members(self) -> int:
        """The runs now in the pool."""
        with self._changed:
            return len(self._members)

    def thread_rows(self) -> SharedRows | None:
        """The rows the calling thread prefilled last (a server streams their tokens), or None."""
        thread = threading.get_ident()
        with self._changed:
            return next((v for v in reversed(self._views) if v.thread == thread), None)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Run a sampler in this block: the thread's rows leave the pool at the end, even on an error."""
        try:
            yield
        finally:
            self.leave()

    def prefill(self, prompt_ids: Sequence[int], n: int = 1) -> SharedRows:
        """Run the prompt alone, then pool its n rows with the other members' (the calling thread joins)."""
        own = self._runner.submit(self._prefill, prompt_ids, n).result()
        with self._changed:
            if self._batch is None:
                self._batch = own
                start = 0
            else:
                self._compact()
                start = self._batch.size
                self._batch.absorb(own)
            view = SharedRows(self, own.prompt_ids, list(range(start, start + n)), threading.get_ident())
            self._views.append(view)
            self._members.add(view.thread)
            return view

    def _prefill(self, prompt_ids: Sequence[int], n: int) -> KVBatch:
        """On the forward thread: a prompt's own batch (timed, for benchmarks)."""
        start = time.perf_counter()
        try:
            return self.lm.prefill(prompt_ids, n)
        finally:
            self.prefill_seconds += time.perf_counter() - start

    def _forward(self, batch: KVBatch, tokens: list[RowTokens], keep_all: bool) -> None:
        """On the forward thread: one pooled forward (timed, for benchmarks)."""
        start = time.perf_counter()
        try:
            batch.extend(tokens, keep_all=keep_all)
        finally:
            self.forward_seconds += time.perf_counter() - start

    def leave(self) -> None:
        """The calling thread's rows leave the pool; the others no longer wait for it."""
        thread = threading.get_ident()
        with self._changed:
            for view in [v for v in self._views if v.thread == thread]:
                self._pending.pop(view, None)
                self._views.remove(view)
                self._free += view.slots
                view.slots = []
            self._members.discard(thread)
            if not self._views:
                self._batch, self._free = None, []
            self._compact()
            self._step_if_ready()

    def _slots(self, view: SharedRows) -> list[int]:
        """The view's rows in the pooled batch."""
        if view not in self._views:
            raise RuntimeError("this batch has left its SharedModel (the session ended)")
        return view.slots

    def _reslot(self, view: SharedRows, order: list[int]) -> None:
        """The view's rows become its rows `order` (forks and drops): only its own rows are copied."""
        assert self._batch is not None
        old = view.slots
        needed = len(order)
        if needed > len(old) + len(self._free):
            more = needed - len(old) - len(self._free) + 2
            self._free += list(range(self._batch.size, self._batch.size + more))
            self._batch.add_rows(more)
        targets = old[:needed] + self._free[: max(0, needed - len(old))]
        self._free = self._free[max(0, needed - len(old)) :] + old[needed:]
        self._batch.copy_rows(targets, [old[i] for i in order])
        view.slots = targets
        self._compact()

    def _compact(self) -> None:
        """Drop spare rows once they are many: each costs a row in every forward."""
        if self._batch is None or len(self._free) <= 2 + (self._batch.size - len(self._free)) // 8:
            return
        live = [slot for v in self._views for slot in v.slots]
        self._batch.select(live)
        start = 0
        for v in self._views:
            v.slots = list(range(start, start + len(v.slots)))
            start += len(v.slots)
        self._free = []

    def _extend(self, view: SharedRows, tokens: list[RowTokens], keep_all: bool) -> None:
        with self._changed:
            self._slots(view)  # still a member
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
        tokens: list[RowTokens] = [None] * self._batch.size  # spare rows and rows not extending get none
        for view, (given, _) in self._pending.items():
            for slot, t in zip(view.slots, given):
                tokens[slot] = t
        keep_all = any(k for _, k in self._pending.values())
        pending, self._pending = self._pending, {}
        try:
            self._runner.submit(self._forward, self._batch, tokens, keep_all).result()
            self.forwards += 1
            self.most_members = max(self.most_members, len(waiting))
            self.rows_forwarded += sum(t is not None and t != [] for t in tokens)
        except Exception as err:  # every waiting run sees the failure, none hangs
            for view in pending:
                view.error = err
        self._changed.notify_all()


class SharedRows:
    """One run's rows of a `SharedModel`'s pooled batch, as the `BatchState` the samplers use."""

    def __init__(self, shared: SharedModel, prompt: tuple[int, ...], slots: list[int], thread: int):
        self.shared = shared
        self._prompt = prompt
        self.slots = slots  # its rows in the pooled batch, in order
        self.thread = thread
        self.error: BaseException | None = None
        self.keep_all = False  # what the last extend asked: other runs' drafts may make the pooled forward keep all

    def _batch(self) -> tuple[KVBatch, list[int]]:
        slots = self.shared._slots(self)
        assert self.shared._batch is not None
        return self.shared._batch, slots

    @property
    def size(self) -> int:
        return len(self.slots)

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        return self._prompt

    @property
    def token_ids(self) -> list[tuple[int, ...]]:
        with self.shared._changed:
            batch, slots = self._batch()
            return batch.rows_tokens(slots)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.token_ids]

    def logprobs(self) -> torch.Tensor:
        with self.shared._changed:
            batch, slots = self._batch()
            return batch.logprobs()[slots]

    def extend(self, tokens: Sequence[RowTokens], *, keep_all: bool = False) -> None:
        if len(tokens) != len(self.slots):
            raise ValueError(f"extend needs one entry per row ({len(self.slots)}), got {len(tokens)}")
        self.keep_all = keep_all
        self.shared._extend(self, list(tokens), keep_all)

    @property
    def recent(self) -> list[torch.Tensor] | None:
        if not self.keep_all:
            return None
        with self.shared._changed:
            batch, slots = self._batch()
            recent = batch.recent
            return None if recent is None else [recent[i] for i in slots]

    def truncate(self, lengths: Sequence[int]) -> None:
        if len(lengths) != len(self.slots):
            raise ValueError(f"truncate needs one length per row ({len(self.slots)}), got {len(lengths)}")
        with self.shared._changed:
            batch, slots = self._batch()
            everyone = batch.lengths
            for slot, k in zip(slots, lengths):
                everyone[slot] = int(k)
            batch.truncate(everyone)

    def select(self, indices: Sequence[int]) -> None:
        order = [int(i) for i in indices]
        if not order:
            raise ValueError("select needs at least one row")
        if min(order) < 0 or max(order) >= len(self.slots):
            raise IndexError(f"select got row indices outside 0..{len(self.slots) - 1}: {order}")
        with self.shared._changed:
            self._batch()
            self.shared._reslot(self, order)
