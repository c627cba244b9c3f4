"""genlab: constrained generation from language models, sampled from the model's true conditional distribution."""

import sys
import types

import genlab.cache  # noqa: F401  (first: it routes numba's cache before any kernel is defined)
from genlab.constraints import SQL, Constraint, Grammar, JsonSchema, Matcher, Pattern, Predicate, Regex
from genlab.errors import (
    AssetError,
    CheckTimeoutError,
    ConstraintError,
    DatabaseError,
    EmptyLanguageError,
    GenlabError,
    GrammarError,
    InvalidPatternError,
    ModelLoadError,
    SchemaAnnotationWarning,
    SchemaError,
    StateLimitError,
    UnsupportedConstraintError,
    VocabularyError,
)
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
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Importing the submodule `genlab.generate` (e.g. `from genlab.generate import generate` in the CLI) binds the
    package attribute of that name to the module; `genlab.generate` must stay the function."""

    def __setattr__(self, name: str, value) -> None:
        if name == "generate" and isinstance(value, types.ModuleType):
            value = value.generate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "AssetError",
    "CheckTimeoutError",
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
    "SchemaAnnotationWarning",
    "SchemaError",
    "StateLimitError",
    "TokenTrie",
    "TokenVocabulary",
    "UnsupportedConstraintError",
    "VocabularyError",
    "__version__",
]
