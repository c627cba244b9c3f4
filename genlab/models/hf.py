"""`HFModel` wraps a transformers causal LM as a `LanguageModel`; `KVBatch` is its batched, KV-cached `BatchState`.

All n rows share one physical KV cache of T slots and a boolean attention mask [n, T]. A step appends the same
number of slots m to every row: a row given k <= m tokens writes them into its last k slots and leaves the first
m - k as holes, which its mask hides from every later query. Each real token gets its row's own position id (the
number of real tokens before it in that row), so its keys and values are those an unbatched run would compute; RoPE
keys are stored already rotated and absolute-position models read the position ids, so holes change nothing.
Right-aligning the new tokens puts every moving row's last real token in the last slot, so one logit per row is all
a step projects onto the vocabulary.

Sliding-window layers measure distance in tokens, which holes make differ from distance in slots; for such models the
cache keeps every slot and, once holes exist, `HFModel` builds the 4-D masks itself from the tokens' positions.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import cached_property
from numbers import Integral
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from genlab.errors import GenlabError
from genlab.models import cpu_linear, llama
from genlab.models.base import RowTokens

if TYPE_CHECKING:
    from genlab.vocab import TokenVocabulary

# Attention implementations that honour a 2-D mask with holes in the middle of a row.
SUPPORTED_ATTENTION = ("sdpa", "eager")


class HFModel:
    """A transformers causal LM and its tokenizer; `prefill` starts a `KVBatch`. Log-probs are float32 in any dtype."""

    def __init__(self, model, tokenizer):
        attention = getattr(model.config, "_attn_implementation", None)
        if attention not in SUPPORTED_ATTENTION:
            raise GenlabError(
                f"genlab needs attn_implementation 'sdpa' or 'eager' (batched rows leave holes in the attention "
                f"mask), but this model uses {attention!r}; load it with attn_implementation='sdpa'"
            )
        kinds = {type(layer) for layer in DynamicCache(config=model.config).layers}
        if not kinds <= {DynamicLayer, DynamicSlidingWindowLayer}:
            names = sorted(kind.__name__ for kind in kinds)
            raise GenlabError(
                f"genlab supports full-attention and sliding-window layers; this model's cache has {names}"
            )
        # None for full attention only; else tokens a query sees, itself included.
        self.sliding_window: int | None = (
            int(model.config.get_text_config().sliding_window) if DynamicSlidingWindowLayer in kinds else None
        )
        self._mixed_layers = len(kinds) > 1  # then the model takes one mask per layer type, in a dict
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.vocab_size = _logits_width(model)
        self.eos_token_ids = _eos_token_ids(model, tokenizer, self.vocab_size)
        parameters = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache; older releases only know the old name.
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in parameters), None)
        # transformers' own arithmetic in fewer Python calls, for the plain Llama architecture (bitwise the same logits)
        self._fast = llama.LlamaForward(model) if llama.supports(model) else None

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"HFModel({name}, vocab_size={self.vocab_size}, device={self.device}, dtype={self.model.dtype})"

    @property
    def min_draft(self) -> int:
        """The shortest draft worth a forward: 1 where a forward over a few tokens costs about one over a single
        token (a GPU, or genlab's CPU kernel), 3 where torch's float32 CPU matmul makes 2-3 tokens cost 1.5-2x one."""
        cpu_float32 = self.device.type == "cpu" and self.model.dtype == torch.float32
        return 3 if cpu_float32 and not cpu_linear.installed(self.model) else 1

    @cached_property
    def vocab(self) -> TokenVocabulary:
        """Token id -> bytes for the tokenizer, sized to the logits width and knowing the EOS ids."""
        from genlab.vocab import TokenVocabulary

        return TokenVocabulary.from_tokenizer(
            self.tokenizer, model_vocab_size=self.vocab_size, eos_token_ids=self.eos_token_ids
        )

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids for `text`, with whatever special tokens (BOS) it adds by default."""
        return list(self.tokenizer(text)["input_ids"])

    def prefill(self, prompt_ids: Sequence[int], n: int = 1) -> KVBatch:
        """Run the prompt once (batch 1, last logit only) and return n rows that share its cache."""
        prompt = tuple(int(t) for t in prompt_ids)
        if not prompt:
            raise ValueError("prefill needs a non-empty prompt (start it with the BOS token if the model has one)")
        if n < 1:
            raise ValueError(f"prefill needs n >= 1 rows, got {n}")
        _check_ids(prompt, self.vocab_size)
        cache = self.new_cache()
        with torch.inference_mode():
            ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
            logprobs = self.forward(ids, None, None, cache)
            if n > 1:
                cache.batch_repeat_interleave(n)
                logprobs = logprobs.expand(n, -1).clone()
        return KVBatch(self, prompt, cache, logprobs)

    def new_cache(self) -> DynamicCache:
        """An empty cache; sliding-window layers get full ones, since holes stretch a window over more slots."""
        return DynamicCache() if self.sliding_window else DynamicCache(config=self.model.config)

    def forward(self, input_ids, attention_mask, position_ids, cache, keep: int = 1) -> torch.Tensor:
        """Float32 log-probs [batch, vocab_size] after each row's last slot ([batch, keep, vocab_size] after each of
        the last `keep` slots when keep > 1); the cache grows by the input's width."""
        if self._fast is not None and not self.model.training:
            logits = self._fast(input_ids, attention_mask, position_ids, cache, keep)
        else:
            kwargs = {self._cache_arg: cache}
            if self._keep_arg is not None:
                kwargs[self._keep_arg] = keep
            logits = self.model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True, **kwargs
            ).logits
        if keep > 1:
            return torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)
        return torch.log_softmax(logits[:, -1, :].float(), dim=-1)

    def attention_mask(self, real: torch.Tensor, positions: torch.Tensor, m: int):
        """What `forward` needs for the last m of T slots, given which slots are real [n, T] and their positions [n, T].

        Full attention: the 2-D mask, which transformers combines with causality. Sliding windows: 4-D masks
        [n, 1, m, T] built here, as transformers would count the window in slots.
        """
        if self.sliding_window is None:
            return real
        width = real.shape[1]
        slots = torch.arange(width, device=real.device)
        full = real[:, None, :] & (slots[None, :] <= slots[width - m :, None])  # [n, m, T]
        near = positions[:, None, :] > positions[:, width - m :, None] - self.sliding_window
        masks = {"full_attention": full, "sliding_attention": full & near}
        if self.model.config._attn_implementation == "eager":  # eager adds its mask to the scores
            zero = torch.zeros((), dtype=self.model.dtype, device=real.device)
            floor = torch.finfo(self.model.dtype).min
            masks = {k: torch.where(v, zero, floor) for k, v in masks.items()}
        masks = {k: v[:, None] for k, v in masks.items()}
        return masks if self._mixed_layers else masks["sliding_attention"]


class KVBatch:
    """n rows after a shared prompt with one batched KV cache; `extend` and `select` change it in place.

    `token_ids[i]` and `lengths[i]` count only the tokens after the prompt; `prompt_ids` is the prompt itself.
    """

    def __init__(self, lm: HFModel, prompt: tuple[int, ...], cache: DynamicCache, logprobs: torch.Tensor):
        n = logprobs.shape[0]
        self.lm = lm
        self._prompt = prompt
        self._cache = cache
        self._rows: list[list[int]] = [[] for _ in range(n)]
        self._logprobs = logprobs
        device = lm.device
        self._next_pos = torch.full((n,), len(prompt), dtype=torch.long, device=device)
        # _mask[:, :_width] marks real slots and _pos[:, :_width] holds their position ids; columns beyond _width
        # are spare capacity.
        self._width = len(prompt)
        capacity = max(2 * self._width, 64)
        self._mask = torch.ones((n, capacity), dtype=torch.bool, device=device)
        self._pos = torch.arange(capacity, device=device).expand(n, -1).clone()
        self._holes = False  # invariant: True whenever some slot in _mask[:, :_width] is False
        self._recent: list[torch.Tensor] | None = None  # see `recent`

    @property
    def size(self) -> int:
        """The number of rows."""
        return len(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        """The prompt every row starts with."""
        return self._prompt

    @property
    def token_ids(self) -> list[tuple[int, ...]]:
        """Each row's tokens after the prompt, as tuples (copies)."""
        return [tuple(row) for row in self._rows]

    @property
    def lengths(self) -> list[int]:
        """Each row's number of tokens after the prompt."""
        return [len(row) for row in self._rows]

    @property
    def width(self) -> int:
        """Slots in the physical cache: the longest row's length plus holes; memory and step cost grow with it."""
        return self._width

    def logprobs(self) -> torch.Tensor:
        """Next-token log-probabilities, float32 [size, vocab_size]; later steps replace it rather than modify it."""
        return self._logprobs

    def extend(self, tokens: Sequence[RowTokens], *, keep_all: bool = False) -> None:
        """Append to each row an int, a sequence of ints, or nothing (None or empty): one forward pass for all rows.

        `keep_all` (drafts) keeps, for each row, the next-token log-probs after each token it was given
        (`recent`), so that `truncate` can cut the row back to any of those points; a row given nothing keeps the
        log-probs it had, so a draft can be cut back several extends later."""
        old, self._recent = self._recent, None
        n = len(self._rows)
        if len(tokens) != n:
            raise ValueError(f"extend needs one entry per row ({n}), got {len(tokens)}")
        rows = [_row_tokens(t) for t in tokens]
        counts = [len(r) for r in rows]
        m = max(counts)
        if m == 0:
            self._recent = old if keep_all else None
            return
        flat = [t for r in rows for t in r]
        _check_ids(flat, self.lm.vocab_size)
        device = self.lm.device
        uniform = min(counts) == m
        with torch.inference_mode():
            slot = torch.arange(m, device=device)
            if uniform:
                ids = torch.tensor(flat, dtype=torch.long).view(n, m).to(device)
                positions = self._next_pos[:, None] + slot
                block = None
            else:
                padded = [0] * (n * m)  # holes read token 0; their slots stay masked forever
                for i, r in enumerate(rows):
                    if r:
                        padded[(i + 1) * m - len(r) : (i + 1) * m] = r
                ids = torch.tensor(padded, dtype=torch.long).view(n, m).to(device)
                k = torch.tensor(counts, dtype=torch.long).to(device)
                offset = slot - (m - k)[:, None]  # < 0 on holes
                positions = self._next_pos[:, None] + offset.clamp(min=0)
                block = offset >= 0
            mask = self._append_slots(block, positions)
            fresh = self.lm.forward(ids, mask, positions, self._cache, keep=m if keep_all and m > 1 else 1)
            if keep_all:
                every = fresh if fresh.dim() == 3 else fresh[:, None, :]
                self._recent = [every[i, m - c :] if c or old is None else old[i] for i, c in enumerate(counts)]
                fresh = every[:, -1, :]
            if uniform:
                self._next_pos = self._next_pos + m
                self._logprobs = fresh
            else:
                self._next_pos = self._next_pos + k
                self._logprobs = torch.where((k > 0)[:, None], fresh, self._logprobs)
        for row, new in zip(self._rows, rows):
            row.extend(new)

    @property
    def recent(self) -> list[torch.Tensor] | None:
        """After `extend(..., keep_all=True)`: per row, float32 [k, vocab_size], the next-token log-probs after
        each of the k tokens that extend gave it (row k-1 is `logprobs()`'s); None otherwise."""
        return self._recent

    def truncate(self, lengths: Sequence[int]) -> None:
        """Cut each row back to `lengths[i]` tokens after the prompt (the rejected tail of a draft). A row may lose
        only tokens given by the last `extend(..., keep_all=True)` that gave it any: its log-probs become those after
        its new last token. The cut slots become holes, hidden from every later query; no forward pass runs."""
        n = len(self._rows)
        if len(lengths) != n:
            raise ValueError(f"truncate needs one length per row ({n}), got {len(lengths)}")
        cuts = [len(row) - int(k) for row, k in zip(self._rows, lengths)]
        if not any(cuts):
            return
        if min(cuts) < 0:
            raise ValueError("truncate cannot lengthen a row")
        recent = self._recent
        if recent is None or any(c >= len(r) for c, r in zip(cuts, recent) if c):
            raise ValueError("truncate may cut only tokens of the last extend(..., keep_all=True), keeping >= 1")
        with torch.inference_mode():
            device = self.lm.device
            cut = torch.tensor(cuts, dtype=torch.long, device=device)
            rows = [i for i, c in enumerate(cuts) if c]
            for i in rows:  # a row's last real slots: later extends may have left holes after them
                real = self._mask[i, : self._width].nonzero().squeeze(1)
                self._mask[i, real[-cuts[i] :]] = False
            self._next_pos = self._next_pos - cut
            fresh = torch.stack([recent[i][len(recent[i]) - 1 - cuts[i]] for i in rows])
            self._logprobs = self._logprobs.clone()
            self._logprobs[torch.tensor(rows, device=device)] = fresh
            self._holes = True
            self._drop_dead_slots()  # slots cut from every row (a lone row's draft): gone, and the fast mask back
        for i in rows:
            del self._rows[i][len(self._rows[i]) - cuts[i] :]
            recent[i] = recent[i][: len(recent[i]) - cuts[i]]

    def select(self, indices: Sequence[int]) -> None:
        """Keep rows `indices` in that order: [0, 0, 2] forks row 0 twice and drops row 1, as SMC resampling does."""
        order = [int(i) for i in indices]
        n = len(self._rows)
        if not order:
            raise ValueError("select needs at least one row")
        if min(order) < 0 or max(order) >= n:
            raise IndexError(f"select got row indices outside 0..{n - 1}: {order}")
        if order == list(range(n)):
            return
        with torch.inference_mode():
            index = torch.tensor(order, dtype=torch.long, device=self.lm.device)
            self._cache.batch_select_indices(index)
            self._logprobs = self._logprobs.index_select(0, index)
            self._next_pos = self._next_pos.index_select(0, index)
            self._mask = self._mask.index_select(0, index)
            self._pos = self._pos.index_select(0, index)
            if self._holes:
                self._drop_dead_slots()
        self._rows = [list(self._rows[i]) for i in order]
        self._recent = None if self._recent is None else [self._recent[i] for i in order]

    def absorb(self, other: KVBatch) -> None:
        """Append `other`'s rows after these (rows of another prompt: `SharedModel` pools concurrent runs into one
        batch). The narrower batch gets holes on the right so both have the same slots; `other` is used up."""
        if other.lm is not self.lm:
            raise ValueError("absorb needs a batch of the same model")
        with torch.inference_mode():
            width = max(self._width, other._width)
            self._pad(width - self._width)
            other._pad(width - other._width)
            for mine, theirs in zip(self._cache.layers, other._cache.layers):
                mine.keys = torch.cat([mine.keys, theirs.keys])  # type: ignore[list-item,union-attr]
                mine.values = torch.cat([mine.values, theirs.values])  # type: ignore[list-item,union-attr]
            self._mask = torch.cat([self._mask[:, :width], other._mask[:, :width]])
            self._pos = torch.cat([self._pos[:, :width], other._pos[:, :width]])
            self._resize(2 * width)
            self._logprobs = torch.cat([self._logprobs, other._logprobs])
            self._next_pos = torch.cat([self._next_pos, other._next_pos])
            self._holes = self._holes or other._holes
        if self._recent is not None:  # the new rows have no draft to cut back
            self._recent += other._recent or [self._logprobs[:0]] * other.size
        self._rows += other._rows

    def copy_rows(self, targets: Sequence[int], sources: Sequence[int]) -> None:
        """Overwrite rows `targets` with copies of rows `sources` (cache, tokens, log-probs), in place: the other
        rows are not copied, unlike `select`. A pool forks and moves one run's rows this way."""
        pairs = [(int(t), int(s)) for t, s in zip(targets, sources) if t != s]
        if not pairs:
            return
        with torch.inference_mode():
            device = self.lm.device
            to = torch.tensor([t for t, _ in pairs], dtype=torch.long, device=device)
            src = torch.tensor([s for _, s in pairs], dtype=torch.long, device=device)
            for layer in self._cache.layers:
                layer.keys[to] = layer.keys[src]  # type: ignore[index,union-attr]  # the right side is a copy
                layer.values[to] = layer.values[src]  # type: ignore[index,union-attr]
            self._mask[to] = self._mask[src]
            self._pos[to] = self._pos[src]
            self._next_pos = self._next_pos.clone()
            self._next_pos[to] = self._next_pos[src]
            self._logprobs = self._logprobs.clone()  # samplers may hold the old one: never modified in place
            self._logprobs[to] = self._logprobs[src]
            self._holes = self._holes or bool((~self._mask[to, : self._width]).any())
        copies = {s: list(self._rows[s]) for _, s in pairs}
        recent = None if self._recent is None else {s: self._recent[s] for _, s in pairs}
        for t, s in pairs:
            self._rows[t] = list(copies[s])
            if self._recent is not None and recent is not None:
                self._recent[t] = recent[s]

    def add_rows(self, k: int) -> None:
        """Append k spare rows (copies of row 0, for `copy_rows` to overwrite)."""
        self.select(list(range(self.size)) + [0] * k)

    def rows_tokens(self, rows: Sequence[int]) -> list[tuple[int, ...]]:
        """The tokens after the prompt of each of `rows` (copies)."""
        return [tuple(self._rows[i]) for i in rows]

    def _pad(self, k: int) -> None:
        """Add k hole slots on the right of every row (cache and bookkeeping)."""
        if k <= 0:
            return
        for layer in self._cache.layers:
            keys, values = layer.keys, layer.values  # type: ignore[union-attr]
            shape = (*keys.shape[:-2], k, keys.shape[-1])  # type: ignore[union-attr]
            layer.keys = torch.cat([keys, keys.new_zeros(shape)], dim=-2)  # type: ignore[list-item,union-attr]
            layer.values = torch.cat([values, values.new_zeros(shape)], dim=-2)  # type: ignore[list-item,union-attr]
        end = self._width + k
        if end > self._mask.shape[1]:
            self._resize(2 * end)
        self._mask[:, self._width : end] = False
        self._pos[:, self._width : end] = 0
        self._width = end
        self._holes = True

    def _append_slots(self, block: torch.Tensor | None, positions: torch.Tensor):
        """Record m new slots (all real when `block` is None) and their positions; return the model's attention mask."""
        m = positions.shape[1]
        end = self._width + m
        if end > self._mask.shape[1]:
            self._resize(2 * end)
        self._mask[:, self._width : end] = True if block is None else block
        self._pos[:, self._width : end] = positions
        self._holes = self._holes or block is not None
        self._width = end
        if not self._holes:  # transformers' own causal mask is exact, and it skips building one when it can
            return None
        return self.lm.attention_mask(self._mask[:, :end], self._pos[:, :end], m)

    def _resize(self, capacity: int, slots: torch.Tensor | None = None) -> None:
        """Move the live slots (or only `slots`, in order) into bookkeeping buffers of the given capacity."""
        real, positions = self._mask[:, : self._width], self._pos[:, : self._width]
        if slots is not None:
            real, positions = real.index_select(1, slots), positions.index_select(1, slots)
        self._width = real.shape[1]
        self._mask = torch.ones((real.shape[0], capacity), dtype=torch.bool, device=real.device)
        self._pos = torch.zeros((real.shape[0], capacity), dtype=torch.long, device=real.device)
        self._mask[:, : self._width] = real
        self._pos[:, : self._width] = positions

    def _drop_dead_slots(self) -> None:
        """Remove slots that are holes in every row (left behind when select drops the rows that used them)."""
        keep = self._mask[:, : self._width].any(dim=0)
        if not bool(keep.all()):
            slots = keep.nonzero().squeeze(1)
            for layer in self._cache.layers:  # DynamicLayer / DynamicSlidingWindowLayer only (checked in HFModel)
                layer.keys = layer.keys.index_select(-2, slots)  # type: ignore[union-attr]
                layer.values = layer.values.index_select(-2, slots)  # type: ignore[union-attr]
            self._resize(2 * len(slots), slots)
        self._holes = not bool(self._mask[:, : self._width].all())


def _row_tokens(entry: RowTokens) -> list[int]:
    """One row's tokens for `extend`: an int, a sequence of ints, or None."""
    if type(entry) is int:  # the common case, first
        return [entry]
    if entry is None:
        return []
    if isinstance(entry, Integral):  # int and numpy integers
        return [int(entry)]
    if isinstance(entry, torch.Tensor):
        return entry.reshape(-1).tolist()
    return [int(t) for t in entry]  # type: ignore[union-attr]  # a sequence: ints were handled above


def _check_ids(ids: Sequence[int], vocab_size: int) -> None:
    """Refuse token ids outside the logits (on CUDA they would be a device-side assert, not an error)."""
    if ids and (min(ids) < 0 or max(ids) >= vocab_size):
        bad = [t for t in ids if not 0 <= t < vocab_size]
        raise ValueError(f"token ids outside 0..{vocab_size - 1}: {bad[:10]}")


def _logits_width(model) -> int:
    """The number of logits per position: the output embedding's rows, which may exceed the tokenizer's length."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(model.config.get_text_config().vocab_size)


def _eos_token_ids(model, tokenizer, vocab_size: int) -> tuple[int, ...]:
    """EOS ids named by the tokenizer, the model config and the generation config, in that order, without repeats.

    Ids outside the logits are dropped: a config default (GPT-2's 50256) can name a token the model cannot emit.
    """
    sources = [
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ]
    found: dict[int, None] = {}
    for source in sources:
        if source is None:
            continue
        for token in [source] if isinstance(source, int) else source:
            if 0 <= int(token) < vocab_size:
                found[int(token)] = None
    return tuple(found)
