"""Prompts as token ids (plain text, ids as given, or chat messages through the chat template), and token healing.

Token healing: a prompt's last token fixes a boundary its text never had ("The sky is " ends in a lone space token,
which the model almost never saw before a word). `heal` backs the prompt off by its last tokens, as far back as a
vocabulary token could start and run past the prompt's end, and the sampler then makes the output start with the
removed bytes (`PrefixedMatcher`). The model is conditioned on the kept tokens and may spell the removed bytes
together with what follows in any tokenization, so the target becomes p(text | prompt text) for the kept part's
tokenization, summed over the tokenizations that cross the boundary (Phan et al. 2024, "Exact byte-level
probabilities from tokenized language models"); the removed bytes are not reported as output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genlab.constraints.base import Matcher
from genlab.constraints.prefixed import PrefixedMatcher
from genlab.errors import GenlabError
from genlab.models.base import LanguageModel
from genlab.vocab import TokenVocabulary

Prompt = str | Sequence[int] | Sequence[dict]


def prompt_ids(lm: LanguageModel, prompt: Prompt) -> list[int]:
    """Token ids for `prompt`: a string is encoded (with the tokenizer's BOS, if any); a list of
    `{"role": ..., "content": ...}` messages goes through the chat template with the generation prompt added."""
    if isinstance(prompt, str):
        return lm.encode(prompt)
    items: list[Any] = list(prompt)  # ids or messages
    if items and isinstance(items[0], dict):
        text = lm.tokenizer.apply_chat_template(items, tokenize=False, add_generation_prompt=True)
        return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    return [int(t) for t in items]


def heal(vocab: TokenVocabulary, ids: Sequence[int], start_id: int | None = None) -> tuple[list[int], bytes]:
    """Back `ids` off by their last text tokens, to the earliest token start from which the bytes to the end are a
    proper prefix of some vocabulary token (a token could cross the prompt's end there); returns the kept ids and
    the removed bytes (b"" when no token could cross). Special tokens (BOS, chat markers) are never removed. When
    every token goes, the kept prompt is `[start_id]` (the BOS the model starts texts with)."""
    kept, removed, _ = _heal(vocab, [int(t) for t in ids], start_id)
    return kept, removed


def _heal(vocab: TokenVocabulary, ids: list[int], start_id: int | None) -> tuple[list[int], bytes, int]:
    """`heal`'s kept ids and removed bytes, and how many tokens were removed."""
    cut = len(ids)
    tail = b""
    for j in range(len(ids) - 1, -1, -1):
        if not vocab.text_list[ids[j]]:
            break
        tail = vocab.token_bytes[ids[j]] + tail
        if len(tail) >= vocab.longest_text:  # no token is longer: none can extend this or any longer tail
            break
        if vocab.extends(tail):
            cut = j
    kept, removed = ids[:cut], vocab.decode(ids[cut:])
    if removed and not kept:
        if start_id is None:
            raise GenlabError(
                "token healing would remove the whole prompt and the model has no BOS token to start from; "
                "pass heal=False or a longer prompt"
            )
        kept = [start_id]
    return kept, removed, len(ids) - cut


def start_id(tokenizer, vocab: TokenVocabulary) -> int | None:
    """The token a text starts from when its prompt is empty: the tokenizer's BOS, else its first EOS id (GPT-2's
    convention of one marker between texts)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        return int(bos)
    eos = sorted(vocab.eos_ids)
    return eos[0] if eos else None


@dataclass(frozen=True)
class Start:
    """Where a run starts: the ids the model reads, and the bytes every output must begin with (healing's removed
    bytes, b"" without healing; not part of the reported output)."""

    ids: list[int]
    healed: bytes = b""
    removed: int = 0  # tokens backed off the prompt (the run's token budget grows by as many)

    def matcher(self, matcher: Matcher) -> Matcher:
        """`matcher` for the output as generated: the healed bytes first, when there are any."""
        return PrefixedMatcher(matcher, self.healed) if self.healed else matcher

    def output(self, data: bytes) -> bytes:
        """The user's part of a generated text: what follows the healed bytes (b"" while they are unfinished)."""
        return data[len(self.healed) :]


def prepare(lm: LanguageModel, prompt: Prompt, heal_prompt: bool | None = False) -> Start:
    """The prompt's ids, healed when `heal_prompt` is True, or when it is None and the prompt is text without
    special tokens. Chat prompts (messages, or text with the template's markers) are not healed by default: a chat
    model was tuned on its template's own tokens, so the boundary after the template is the one it learned."""
    ids = prompt_ids(lm, prompt)
    if heal_prompt is None:  # text, but not text that went through a chat template (special tokens past a BOS)
        heal_prompt = isinstance(prompt, str) and all(lm.vocab.text_list[t] for t in ids[1:])
    if not heal_prompt:
        return Start(ids)
    kept, removed, n_removed = _heal(lm.vocab, ids, start_id(getattr(lm, "tokenizer", None), lm.vocab))
    return Start(kept, removed, n_removed) if removed else Start(ids)
