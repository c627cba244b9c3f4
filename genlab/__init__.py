"""genlab: constrained generation from language models, sampled from the model's true conditional distribution."""

from genlab.errors import AssetError, GenlabError, ModelLoadError, VocabularyError
from genlab.trie import TokenTrie
from genlab.vocab import TokenVocabulary

__version__ = "0.1.0"

__all__ = [
    "AssetError",
    "GenlabError",
    "ModelLoadError",
    "TokenTrie",
    "TokenVocabulary",
    "VocabularyError",
    "__version__",
]
