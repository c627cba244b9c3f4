"""The interface samplers see: a language model that prefills a prompt into a batch of sequences, and that batch.

A batch holds n sequences (SMC particles) that share one prompt. Each step a sampler reads every row's next-token
log-probabilities, extends rows by zero or more tokens, and, when it resamples, selects rows (forking some and
dropping others). Implementations keep a KV cache so that no step recomputes what an earlier step saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from genlab.vocab import TokenVocabulary

# What one row receives in `extend`: one token, several tokens, or nothing (None or an empty sequence).
RowTokens = int | Sequence[int] | None


@runtime_checkable
class BatchState(Protocol):
    """n sequences after a shared prompt, with their next-token log-probabilities; `extend` and `select` mutate it."""

    @property
    def size(self) -> int:
        """The number of rows, n."""

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        """The prompt every row starts with."""

    @property
    def token_ids(self) -> list[tuple[int, ...]]:
        """Each row's tokens after the prompt (copies)."""

    @property
    def lengths(self) -> list[int]:
        """Each row's number of tokens after the prompt."""

    def logprobs(self) -> torch.Tensor:
        """Next-token log-probabilities at the end of each row: float32 [n, vocab_size], never modified later."""

    def extend(self, tokens: Sequence[RowTokens], *, keep_all: bool = False) -> None:
        """Append tokens to every row at once (one per row, several, or none); rows given none keep their state.
        `keep_all` keeps the log-probs after each given token (`recent`), for drafts."""

    def select(self, indices: Sequence[int]) -> None:
        """Keep rows `indices` in that order, so a row may appear several times (forks) or not at all (drops)."""

    @property
    def recent(self) -> list[torch.Tensor] | None:
        """After `extend(..., keep_all=True)`: per row, the log-probs after each token that extend gave it."""

    def truncate(self, lengths: Sequence[int]) -> None:
        """Cut rows back to `lengths` tokens, within what the last `extend(..., keep_all=True)` gave them."""


@runtime_checkable
class LanguageModel(Protocol):
    """A causal language model over a fixed token vocabulary that scores many sequences in one batch."""

    vocab_size: int  # the width of the log-probabilities, which may exceed the tokenizer's length
    eos_token_ids: tuple[int, ...]  # EOS ids the model's configs name; `vocab.eos_ids` adds the tokenizer's end markers
    tokenizer: Any  # the transformers tokenizer: chat templates, and text -> ids for drafts
    device: torch.device

    @property
    def vocab(self) -> TokenVocabulary:
        """Token id -> bytes for this model's tokenizer, sized to `vocab_size`."""

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids for `text`, with whatever special tokens (BOS) it adds by default."""

    def prefill(self, prompt_ids: Sequence[int], n: int = 1) -> BatchState:
        """Run the prompt once and return n rows that share it."""
