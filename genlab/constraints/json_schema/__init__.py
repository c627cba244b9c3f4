"""`JsonSchema`: outputs that validate against a JSON Schema (or a Pydantic model), exact.

The schema compiles to a grammar (`compiler.py`) that the grammar engine matches token by token with masks and
fast checks; keywords no grammar can say exactly are decided by `validate` on the finished output (jsonschema),
which SMC applies to every particle and masking reports per sample. `end_checks` names them. SMC also applies
`check_prefix` as it goes: each value an unfinished output has finished must already pass its part.
"""

from __future__ import annotations

import warnings
from typing import Any

from genlab.constraints.base import Constraint, Matcher
from genlab.constraints.grammar import Grammar
from genlab.constraints.json_schema.compiler import Policy, SchemaCompiler
from genlab.constraints.json_schema.document import Document, load
from genlab.constraints.json_schema.prefix import PrefixChecker
from genlab.constraints.json_schema.validator import is_valid, make_validator, parse_json
from genlab.errors import EmptyLanguageError, SchemaAnnotationWarning, SchemaError
from genlab.vocab import TokenVocabulary

WHITESPACE = ("compact", "flexible")
PROPERTY_ORDERS = ("schema", "any")


_ANNOTATIONS_SHOWN = 12  # a warning names this many (a real-world schema had 4,641); `describe()` has all


class JsonSchema(Constraint):
    """Output must be JSON that validates against `schema` (a dict, JSON text, or Pydantic v2 model class).

    `whitespace`: "compact" (none, the default) or "flexible" (up to `max_whitespace` whitespace characters
    around each `{ } [ ] , :`, so a model can lay out its JSON but never loop on spaces). `property_order`:
    "schema" (declared properties in the schema's order, required ones present, undeclared ones after them) or
    "any". Integers are written as integers: where the type is "integer", the grammar admits `28`, never `28.0`
    or `2.8e1`, though `validate` accepts `28.0` (JSON Schema counts it as an integer from draft 6 on).

    `strict`: keywords and `format` values genlab does not know are annotations, as the JSON Schema
    specification has them. By default (`strict=False`) they are ignored (they constrain nothing), listed in
    `annotations` and `describe()`, and reported in one `SchemaAnnotationWarning` per schema; `strict=True`
    refuses the first one met with a `SchemaError` naming it and its JSON pointer (so a typo such as `maxItem`
    fails loudly). Keywords genlab knows but cannot enforce raise either way.

    `draft` overrides the draft read from `$schema` (4, 6, 7, 2019, 2020). Limits: `max_states` automaton states
    over all terminals (about 1 KiB each; huge schemas raise `SchemaError` instead of exhausting memory), and the
    grammar engine's own (`max_columns`, `max_items`, `max_lexer_states`: see `Grammar`).
    """

    def __init__(
        self,
        schema: Any,
        *,
        whitespace: str = "compact",
        property_order: str = "schema",
        strict: bool = False,
        max_whitespace: int = 8,
        draft: int | None = None,
        max_states: int = 250_000,
        max_columns: int = 1_000_000,
        max_items: int = 100_000,
        max_lexer_states: int = 50_000,
    ) -> None:
        super().__init__()
        if whitespace not in WHITESPACE:
            raise ValueError(f"whitespace must be one of {WHITESPACE}, not {whitespace!r}")
        if property_order not in PROPERTY_ORDERS:
            raise ValueError(f"property_order must be one of {PROPERTY_ORDERS}, not {property_order!r}")
        if max_whitespace < 1:
            raise ValueError(f"max_whitespace must be >= 1, got {max_whitespace}")
        self.policy = Policy(whitespace, property_order, max_whitespace)
        try:
            self.schema, self.model = load(schema)
            self.document = Document(self.schema, draft)
            self._validator = make_validator(self.document)
            compiler = SchemaCompiler(self.document, self.policy, self._validator, strict=strict, max_states=max_states)
            start = compiler.compile()
        except RecursionError as e:
            raise SchemaError("the schema is nested too deeply to compile", "") from e
        try:
            self.grammar = Grammar.from_parts(
                compiler.terminals,
                compiler.rules,
                start,
                max_columns=max_columns,
                max_items=max_items,
                max_lexer_states=max_lexer_states,
            )
        except EmptyLanguageError as e:  # e.g. a recursive schema with no finite value
            raise SchemaError("the schema accepts no finite value", "") from e
        self.end_checks: tuple[str, ...] = tuple(
            keyword if ptr is None else f"{keyword} at {ptr or '/'}" for ptr, keyword in compiler.end_checks
        )
        self.annotations: tuple[str, ...] = tuple(
            f"unknown {kind} {name!r} at {ptr or '/'}" for kind, name, ptr in compiler.annotations
        )
        if self.annotations:
            shown = "; ".join(self.annotations[:_ANNOTATIONS_SHOWN])
            if len(self.annotations) > _ANNOTATIONS_SHOWN:
                shown += f"; and {len(self.annotations) - _ANNOTATIONS_SHOWN} more (`describe()` lists them all)"
            warnings.warn(
                SchemaAnnotationWarning(
                    f"JsonSchema ignored {len(self.annotations)} unknown keyword(s)/format(s) as annotations (they "
                    "constrain nothing; strict=True refuses them): " + shown,
                    self.annotations,
                ),
                stacklevel=2,
            )
        self._writer = compiler.writer
        self._prefix = PrefixChecker(self.document, self._validator) if self.end_checks else None

    def __repr__(self) -> str:
        name = (
            self.model.__name__
            if self.model is not None
            else (self.schema.get("title") if isinstance(self.schema, dict) else None) or "schema"
        )
        return f"JsonSchema({name}, whitespace={self.policy.whitespace!r})"

    def _compile(self, vocab: TokenVocabulary) -> Matcher:
        return self.grammar.compile(vocab)

    def check(self, text: str | bytes) -> bool:
        return self.grammar.check(text) and self.validate(text)

    def validate(self, text: str | bytes) -> bool:
        """Whether the finished output is a JSON value the schema accepts (without duplicate keys): the exact
        check behind `end_checks`."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="strict")
        try:
            value = parse_json(text)
        except ValueError:
            return False
        return is_valid(self._validator, value)

    def check_prefix(self, text: str) -> bool:
        """Whether every value the unfinished output has finished passes what the schema surely says of it (see
        `prefix.py`); always True when the grammar alone is exact."""
        return self._prefix is None or self._prefix.ok(text)

    def parse(self, text: str | bytes) -> Any:
        """The output as a Python value, or as an instance of the Pydantic model the schema came from."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if self.model is not None:
            return self.model.model_validate_json(text)
        return parse_json(text)

    def serialize(self, value: Any) -> str:
        """`value` written as this constraint writes JSON (compact; declared properties first, in schema order):
        a valid value's serialisation is in the grammar's language."""
        if self.model is not None and isinstance(value, self.model):
            value = value.model_dump(mode="json")
        return self._writer.dumps(value)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "draft": self.document.draft,
            "whitespace": self.policy.whitespace,
            "property_order": self.policy.property_order,
            "terminals": len(self.grammar.terminals),
            "rules": len(self.grammar.cfg.rules) - 1,
            "end_checks": list(self.end_checks),
            "annotations": list(self.annotations),
        }


__all__ = ["JsonSchema"]
