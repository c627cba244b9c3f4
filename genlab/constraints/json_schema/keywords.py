"""Which JSON Schema keywords genlab knows, by what it does with them."""

from __future__ import annotations

# ignored silently: they describe, they do not constrain
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "default",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        "$schema",
        "$id",
        "id",
        "$vocabulary",
        "$anchor",
        "$dynamicAnchor",
        "$recursiveAnchor",
        "definitions",
        "$defs",
    }
)

# constrain the value: compiled into the grammar, or checked by the validator where no grammar can say them
VALIDATION = frozenset(
    {
        "type",
        "enum",
        "const",
        "$ref",
        "$dynamicRef",
        "$recursiveRef",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        # numbers
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        # strings
        "minLength",
        "maxLength",
        "pattern",
        "format",
        # arrays
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedItems",
        # objects
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "unevaluatedProperties",
    }
)

TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
