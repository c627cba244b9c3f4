"""The exact check of a finished output: strict JSON parsing (no duplicate keys, no NaN) and `jsonschema`
validation of the value, with genlab's format checks asserted.

The grammar enforces everything context-free; this decides the rest (`uniqueItems`, `oneOf` exclusivity, `not`,
...). jsonschema is the reference implementation of the specification, so genlab leans on it rather than keep a
second reading of every keyword.
"""

from __future__ import annotations

import json
from typing import Any

from genlab.constraints.json_schema.document import Document, validator_class
from genlab.constraints.json_schema.formats import FORMATS, check_format
from genlab.errors import SchemaError


class DuplicateKeyError(ValueError):
    """An object that names a key twice: JSON leaves its meaning open, so genlab refuses it."""


def make_validator(doc: Document):
    """A jsonschema validator for the document's draft that asserts the formats genlab knows."""
    import jsonschema
    from referencing import Registry

    checker = jsonschema.FormatChecker(formats=())
    for name in FORMATS:
        checker.checks(name)(_format_check(name))
    # a registry that retrieves nothing: references resolve inside the document or fail, never over a network
    return validator_class(doc.draft)(doc.root, format_checker=checker, registry=Registry())


def is_valid(validator, value: Any) -> bool:
    """jsonschema's verdict; a reference it cannot resolve (genlab resolved it when compiling, so this would be
    a disagreement on where it points) raises `SchemaError` rather than a foreign exception."""
    from referencing.exceptions import Unresolvable

    try:
        return validator.is_valid(value)
    except Unresolvable as e:
        raise SchemaError(f"jsonschema cannot resolve a reference: {e}", "") from e


def _format_check(name: str):
    def check(value: Any) -> bool:
        return not isinstance(value, str) or check_format(name, value)

    return check


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The value of a JSON text; raises ValueError for anything RFC 8259 does not allow, or a duplicate key."""
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
