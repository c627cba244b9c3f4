"""genlab: constrained generation from language models, sampled from the model's true conditional distribution."""

from genlab.errors import (
    AssetError,
    ConstraintError,
    DatabaseError,
    EmptyLanguageError,
    GenlabError,
    GrammarError,
    InvalidPatternError,
    ModelLoadError,
    SchemaError,
    StateLimitError,
    UnsupportedConstraintError,
    VocabularyError,
)
from genlab.constraints import SQL, Constraint, Grammar, JsonSchema, Matcher, Pattern, Predicate, Regex
from genlab.trie import TokenTrie
from genlab.vocab import TokenVocabulary

__version__ = "0.1.0"

# torch and transformers load only when these are first used, so `import genlab` stays light.
_LAZY = {
    "load": "genlab.models",
    "HFModel": "genlab.models",
    "masked_sampling": "genlab.samplers",
    "generate": "genlab.generate",
    "GenerationResult": "genlab.samplers",
    "Sample": "genlab.samplers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        # importing the submodule genlab.generate binds that name to the module: the function must win
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")


__all__ = [
    "AssetError",
    "Constraint",
    "GenerationResult",
    "Grammar",
    "GrammarError",
    "HFModel",
    "JsonSchema",
    "Matcher",
    "Pattern",
    "Predicate",
    "Regex",
    "SQL",
    "Sample",
    "generate",
    "load",
    "masked_sampling",
    "ConstraintError",
    "DatabaseError",
    "EmptyLanguageError",
    "GenlabError",
    "InvalidPatternError",
    "ModelLoadError",
    "SchemaError",
    "StateLimitError",
    "TokenTrie",
    "TokenVocabulary",
    "UnsupportedConstraintError",
    "VocabularyError",
    "__version__",
]
