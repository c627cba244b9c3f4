"""Early checks on unfinished outputs: every value the text has already finished must pass the part of the
schema that surely applies to it, so SMC can drop a particle as soon as, say, an array with `uniqueItems` closes
with a repeat, instead of at the end.

At an instance path, `necessary(path)` is a schema every valid document's value there satisfies: `properties`,
`patternProperties`, `additionalProperties`, `items` and friends followed down from the root, with `allOf` and
`$ref` kept as conjunctions and `anyOf`/`oneOf`/`if` as disjunctions of what their branches say (a value that
passes the document passes one of them). A finished value failing it can never be part of a valid document.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from genlab.constraints.json_schema.document import Document, item_schemas, property_schemas
from genlab.constraints.json_schema.validator import is_valid, parse_json
from genlab.errors import SchemaError

_SCALAR_END = frozenset(",]} \t\n\r")


def finished_values(text: str) -> list[tuple[tuple, str | None]]:
    """(instance path, text) of each value finished in a prefix of a JSON text (a number counts once something
    follows it), and (path, None) for a key its object already has; the prefix is assumed well formed as far as
    it goes (the grammar made it)."""
    out: list[tuple[tuple, str | None]] = []
    stack: list[list] = []  # [kind, start, key or index, expecting a key, keys so far]
    i, n = 0, len(text)

    def here() -> tuple:
        return tuple(entry[2] for entry in stack)

    while i < n:
        c = text[i]
        if c in " \t\n\r:":
            i += 1
        elif c in "{[":
            stack.append([c, i, None if c == "{" else 0, c == "{", set()])
            i += 1
        elif c in "}]":
            if not stack:
                break
            start = stack.pop()[1]
            out.append((here(), text[start : i + 1]))
            i += 1
        elif c == ",":
            if stack:
                top = stack[-1]
                if top[0] == "[":
                    top[2] += 1
                else:
                    top[3] = True
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                break
            literal = text[i : j + 1]
            if stack and stack[-1][0] == "{" and stack[-1][3]:
                top = stack[-1]
                top[2], top[3] = json.loads(literal), False
                if top[2] in top[4]:
                    out.append((here(), None))
                top[4].add(top[2])
            else:
                out.append((here(), literal))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in _SCALAR_END:
                j += 1
            if j >= n:
                break
            out.append((here(), text[i:j]))
            i = j
    return out


class PrefixChecker:
    """Checks each finished value of a prefix against `necessary(path)`; results are memoised by (path, text)."""

    MEMO = 65_536

    def __init__(self, doc: Document, validator) -> None:
        self.doc = doc
        self.validator = validator
        self._necessary: dict[tuple, Any] = {(): doc.root}
        self._memo: OrderedDict[tuple, bool] = OrderedDict()

    def ok(self, text: str) -> bool:
        for path, value_text in finished_values(text):
            if value_text is None:  # a duplicate key
                return False
            key = (path, value_text)
            verdict = self._memo.get(key)
            if verdict is None:
                verdict = self._check(path, value_text)
                self._memo[key] = verdict
                if len(self._memo) > self.MEMO:
                    self._memo.popitem(last=False)
            if not verdict:
                return False
        return True

    def _check(self, path: tuple, value_text: str) -> bool:
        try:
            value = parse_json(value_text)
        except ValueError:  # a duplicate key
            return False
        schema = self.necessary(path)
        if isinstance(schema, bool):
            return schema
        return is_valid(self.validator.evolve(schema=schema), value)

    def necessary(self, path: tuple) -> Any:
        """A schema that every valid document's value at `path` satisfies."""
        if path not in self._necessary:
            self._necessary[path] = _child(self.doc, self.necessary(path[:-1]), path[-1], set())
        return self._necessary[path]


def _child(doc: Document, schema: Any, step: str | int, seen: set) -> Any:
    """What `schema` says of the member `step` (a key or an index) of a value it accepts."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return True
    seen = seen | {id(schema)}
    conj: list = []
    if isinstance(schema.get("$ref"), str):
        target = True  # what a reference says is followed only where one base URI holds for the whole document
        if len(doc.resources) == 1:
            try:
                target, _ = doc.resolve(schema["$ref"], ("$ref",))
            except SchemaError:
                pass
        conj.append(_child(doc, target, step, seen))
        if doc.draft <= 7:
            return _all(conj)
    for sub in schema.get("allOf") or []:
        conj.append(_child(doc, sub, step, seen))
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            conj.append(_any([_child(doc, b, step, seen) for b in branches]))
    if "if" in schema and ("then" in schema or "else" in schema):
        conj.append(
            _any([_child(doc, schema.get("then", True), step, seen), _child(doc, schema.get("else", True), step, seen)])
        )
    conj.append(_own(schema, step))
    return _all(conj)


def _own(schema: dict, step: str | int) -> Any:
    types = schema.get("type")
    if isinstance(types, (str, list)) and ("object" if isinstance(step, str) else "array") not in types:
        return False  # a value with members cannot pass this schema
    members = property_schemas(schema, (), step) if isinstance(step, str) else item_schemas(schema, (), step)
    return _all([sub for sub, _ in members])


def _all(schemas: list) -> Any:
    schemas = [s for s in schemas if s is not True and s != {}]
    if not schemas:
        return True
    if any(s is False for s in schemas):
        return False
    return schemas[0] if len(schemas) == 1 else {"allOf": schemas}


def _any(schemas: list) -> Any:
    if any(s is True or s == {} for s in schemas):
        return True
    schemas = [s for s in schemas if s is not False]
    if not schemas:
        return False
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
