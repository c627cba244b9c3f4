"""How genlab writes a JSON value under a schema: the serialisation its grammar accepts for a valid value.

Objects list the properties the schema declares for them first, in schema order (each name's rank is where the
schema first names it), then the undeclared ones in the value's own order; separators are compact, non-ASCII
characters are written as themselves, and numbers have no exponent. Integers are written as integers: a whole
float is written `28`, not `28.0`, where the schema's type there is integer (draft 6 on, where 28.0 is a valid
integer) or where it equals an integer enum/const value, as the grammar spells those. Which properties an object
declares is read from the schema objects that apply to it, as the compiler reads them: references, `allOf`, and
of each disjunction the branch the value satisfies.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from genlab.constraints.json_schema.document import SCHEMA_MAPS, Document, item_schemas, property_schemas
from genlab.errors import SchemaError


def dumps(value: Any) -> str:
    """Compact JSON with non-ASCII characters as themselves and numbers without exponents (1e-05 is written
    0.00001, 1e+20 as 100000000000000000000): the exact value, in the form number ranges are exact for."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    return json.dumps(value, ensure_ascii=False)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values as JSON Schema has it: 1 == 1.0, but true != 1; objects ignore key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def property_rank(root: Any) -> dict[str, int]:
    """Each property name's rank: the order in which the schema first names it (in `properties` or `required`),
    read depth first."""
    rank: dict[str, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name in props:
                    rank.setdefault(name, len(rank))
            req = node.get("required")
            if isinstance(req, list):
                for name in req:
                    if isinstance(name, str):
                        rank.setdefault(name, len(rank))
            for key, value in reversed(list(node.items())):
                if key in SCHEMA_MAPS and isinstance(value, dict):  # names here are not keywords
                    stack.extend(reversed(list(value.values())))
                elif key not in ("enum", "const", "examples", "default") and isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return rank


class Writer:
    """Writes values as the compiled grammar of `doc` expects them."""

    def __init__(self, doc: Document, rank: dict[str, int], validator) -> None:
        self.doc = doc
        self.rank = rank
        self.validator = validator  # which branch a value takes

    def dumps(self, value: Any) -> str:
        return dumps(self.order(value, [(self.doc.root, ())]))

    def literal(self, value: Any) -> str:
        """An enum or const value, written with no schema applying inside it."""
        return dumps(self.order(value, []))

    def order(self, value: Any, schemas: list[tuple[Any, tuple]]) -> Any:
        """`value` with every object's keys in the order the grammar writes them, and whole floats that the grammar
        spells as integers made ints."""
        if isinstance(value, float) and value.is_integer() and self._integral(schemas, value):
            return int(value)
        if isinstance(value, (dict, list)):
            parts = self._applicable(schemas, value)
            for d, _ in parts:  # an enum or const value is written as the schema spells it
                for candidate in [d["const"]] if "const" in d else d.get("enum") or []:
                    if json_equal(candidate, value):
                        return self.order(candidate, [])
        if isinstance(value, dict):
            declared: set[str] = set()
            for d, _ in parts:
                props = d.get("properties")
                if isinstance(props, dict):
                    declared.update(props)
                req = d.get("required")
                if isinstance(req, list):
                    declared.update(x for x in req if isinstance(x, str))
            known = sorted((k for k in value if k in declared), key=lambda k: self.rank.get(k, len(self.rank)))
            keys = known + [k for k in value if k not in declared]
            return {k: self.order(value[k], [m for d, p in parts for m in property_schemas(d, p, k)]) for k in keys}
        if isinstance(value, list):
            return [self.order(v, [m for d, p in parts for m in item_schemas(d, p, i)]) for i, v in enumerate(value)]
        return value

    def _integral(self, schemas: list[tuple[Any, tuple]], value: float) -> bool:
        """Whether the grammar writes the whole number `value` here as an integer: a type here excludes "number"
        (from draft 6 on, where a whole float is an integer), or an enum/const value here is the int equal to it."""
        for d, _ in self._applicable(schemas, value):
            for candidate in [d["const"]] if "const" in d else d.get("enum") or []:
                if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate == value:
                    return True
            types = d.get("type")
            names = types if isinstance(types, list) else [types] if types is not None else None
            if self.doc.draft >= 6 and names is not None and "number" not in names:
                return True
        return False

    def _applicable(self, schemas: list[tuple[Any, tuple]], value: Any) -> list[tuple[dict, tuple]]:
        """The schema objects that shape `value` here: references and `allOf` parts, and of each `anyOf`/`oneOf`
        the first branch the value satisfies (the grammar has one alternative per branch), of an `if` the
        then- or else-side the value takes."""
        out: list[tuple[dict, tuple]] = []
        seen: set[int] = set()
        stack = list(schemas)
        while stack:
            schema, path = stack.pop()
            if not isinstance(schema, dict) or id(schema) in seen:
                continue
            seen.add(id(schema))
            refs = [k for k in ("$ref", "$dynamicRef", "$recursiveRef") if isinstance(schema.get(k), str)]
            for key in refs:
                try:
                    stack.append(self.doc.resolve(schema[key], path + (key,)))
                except SchemaError:
                    pass
            if refs and self.doc.draft <= 7:
                continue
            out.append((schema, path))
            if isinstance(schema.get("allOf"), list):
                stack.extend((s, path + ("allOf", i)) for i, s in enumerate(schema["allOf"]))
            for key in ("anyOf", "oneOf"):
                branches = schema.get(key)
                if isinstance(branches, list) and branches:
                    i = next((i for i, b in enumerate(branches) if self._valid(b, value)), 0)
                    stack.append((branches[i], path + (key, i)))
            if "if" in schema and ("then" in schema or "else" in schema):  # the compiler's branches: if+then, else
                if self._valid(schema["if"], value):
                    stack.append((schema["if"], path + ("if",)))
                    side = "then"
                else:
                    side = "else"
                if side in schema:
                    stack.append((schema[side], path + (side,)))
        return out

    def _valid(self, schema: Any, value: Any) -> bool:
        try:
            return self.validator.evolve(schema=schema).is_valid(value)
        except Exception:  # a schema jsonschema cannot apply: no preference
            return False
