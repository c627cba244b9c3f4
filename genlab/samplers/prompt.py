"""Prompts as token ids: plain text, ids as given, or chat messages through the tokenizer's chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genlab.models.base import LanguageModel

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
