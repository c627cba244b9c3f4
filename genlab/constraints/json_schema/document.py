"""A JSON Schema document: loading (dict, JSON text or Pydantic model), its draft, and local `$ref` resolution.

References are local: JSON pointers (`#/$defs/x`, `#/definitions/x`, `#`), `$anchor`s (`#name`, and draft 6/7
`$id: "#name"`), and schema resources embedded in the document (`$id`s, resolved against the base URI in force
where they are written). Remote references raise, as genlab never fetches anything. A `$dynamicRef` or
`$recursiveRef` depends on the dynamic scope: `dynamic_targets` lists every schema it may land on.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

from genlab.errors import SchemaError

# keywords whose value maps names (any names, "enum" included) to schemas
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

DRAFTS = {
    "draft-04": 4,
    "draft-06": 6,
    "draft-07": 7,
    "2019-09": 2019,
    "2020-12": 2020,
}


def load(schema: Any) -> tuple[Any, type[Any] | None]:
    """(the schema as JSON data, the Pydantic model it came from or None)."""
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema(), schema
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise SchemaError(f"the schema is not valid JSON: {e}", "") from e
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"a schema is an object or a boolean, not {type(schema).__name__}", "")
    return schema, None


def pointer(parts: tuple) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


# the base URI of a document without `$id`: relative references resolve against it, and nothing lives there
_ROOT_BASE = "https://root.genlab.invalid/schema.json"


class Document:
    """The root schema with its draft, and an index of its schema resources (`$id`s, resolved against their
    parents' base URIs as RFC 3986 says) and of the anchors in each resource."""

    def __init__(self, root: Any, draft: int | None = None) -> None:
        self.root = root
        self.keywords = _keywords(root)  # every key of every object in the schema (enum/const values aside)
        self.draft = draft if draft is not None else detect_draft(root, self.keywords)
        self.resources: dict[str, tuple] = {}  # absolute URI (no fragment) -> path of its root
        self.anchors: dict[tuple[str, str], tuple] = {}  # (resource URI, anchor name) -> path
        # where a `$dynamicRef` (by anchor name) or `$recursiveRef` may land, whatever the dynamic scope
        self.dynamic_anchors: dict[str, list[tuple]] = {}
        self.recursive_anchors: list[tuple] = []
        self._index(root, (), _ROOT_BASE, top=True)

    def _id(self, node: dict) -> str | None:
        if self.draft <= 7 and "$ref" in node:  # before 2019-09 a $ref's siblings are ignored, $id included
            return None
        ident = node.get("id" if self.draft == 4 else "$id")
        return ident if isinstance(ident, str) else None

    def _index(self, node: Any, path: tuple, base: str, top: bool = False) -> None:
        if isinstance(node, dict):
            ident = self._id(node)
            if ident is not None:
                uri, _, fragment = _join(base, ident).partition("#")
                if uri and not (self.draft <= 7 and ident.startswith("#")):
                    base = uri
                    self.resources.setdefault(uri, path)
                if fragment and self.draft <= 7:  # draft 6/7 "$id": "#name" (or "x.json#name") names an anchor
                    self.anchors.setdefault((base, fragment), path)
            if top:
                self.resources.setdefault(base, path)
            for key in ("$anchor", "$dynamicAnchor"):
                if isinstance(node.get(key), str):
                    self.anchors.setdefault((base, node[key]), path)
            if isinstance(node.get("$dynamicAnchor"), str):
                self.dynamic_anchors.setdefault(node["$dynamicAnchor"], []).append(path)
            if node.get("$recursiveAnchor") is True:
                self.recursive_anchors.append(path)
            for key, value in node.items():
                if key in SCHEMA_MAPS and isinstance(value, dict):  # names here are not keywords
                    for name, sub in value.items():
                        self._index(sub, path + (key, name), base)
                elif key not in ("enum", "const", "examples", "default"):
                    self._index(value, path + (key,), base)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._index(value, path + (i,), base)

    def base_at(self, path: tuple) -> str:
        """The base URI in force at `path`: the innermost enclosing `$id`."""
        base, node = _ROOT_BASE, self.root
        for part in (None,) + tuple(path):
            if part is not None:
                try:
                    node = node[part]
                except (KeyError, IndexError, TypeError):
                    break
            if isinstance(node, dict):
                ident = self._id(node)
                if ident is not None and not (self.draft <= 7 and ident.startswith("#")):
                    base = _join(base, ident).partition("#")[0] or base
        return base

    def resolve(self, ref: str, where: tuple) -> tuple[Any, tuple]:
        """(the schema `ref` names, its path), `ref` written at `where` (the path of the keyword); raises
        `SchemaError` naming `where` when it points outside the document or at nothing."""
        target = _join(self.base_at(where[:-1]), ref)
        uri, _, fragment = target.partition("#")
        if uri not in self.resources:
            raise SchemaError(
                f"$ref {ref!r} points outside this document (remote references are not fetched)", pointer(where)
            )
        path = self.resources[uri]
        if fragment and not fragment.startswith("/"):
            if (uri, fragment) not in self.anchors:
                raise SchemaError(f"$ref {ref!r}: no $anchor {fragment!r} in its schema resource", pointer(where))
            path = self.anchors[(uri, fragment)]
            fragment = ""
        node = self._walk(path)
        for token in fragment[1:].split("/") if fragment else ():
            part = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
                path = path + (part,)
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                path = path + (int(part),)
            else:
                raise SchemaError(f"$ref {ref!r} names nothing in this document", pointer(where))
        return node, path

    def dynamic_targets(self, keyword: str, ref: str, where: tuple) -> list[tuple[Any, tuple]]:
        """Every schema a `$dynamicRef` or `$recursiveRef` may land on in some dynamic scope: its static target
        and each schema with the matching `$dynamicAnchor` (or `$recursiveAnchor: true`)."""
        targets = [self.resolve(ref, where)]
        if keyword == "$dynamicRef":
            name = ref.partition("#")[2]
            dynamic = targets[0][1] in self.dynamic_anchors.get(name, ())
            paths = self.dynamic_anchors.get(name, []) if dynamic else []
        else:
            target = targets[0][0]
            paths = self.recursive_anchors if isinstance(target, dict) and target.get("$recursiveAnchor") else []
        for path in paths:
            if path != targets[0][1]:
                targets.append((self._walk(path), path))
        return targets

    def _walk(self, path: tuple) -> Any:
        node = self.root
        for part in path:
            node = node[part]
        return node


def _join(base: str, ref: str) -> str:
    """`ref` resolved against `base` (RFC 3986), also for URNs, which `urljoin` leaves alone."""
    if not ref:
        return base
    if ref.startswith("#"):
        return base.partition("#")[0] + ref
    if urlparse(ref).scheme:
        return ref
    return urljoin(base, ref)


def property_schemas(schema: dict, path: tuple, name: str) -> list[tuple[Any, tuple]]:
    """What one schema object says of its member `name`: its `properties` entry, else every `patternProperties`
    schema whose pattern `re.search`es the name, else its `additionalProperties`; [] when it says nothing. A
    pattern Python cannot compile matches nothing here (the compiler reports it)."""
    props = schema.get("properties")
    if isinstance(props, dict) and name in props:
        return [(props[name], path + ("properties", name))]
    out = []
    patterns = schema.get("patternProperties")
    if isinstance(patterns, dict):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, name):
                    out.append((sub, path + ("patternProperties", pattern)))
            except re.error:
                pass
    if not out and "additionalProperties" in schema:
        out.append((schema["additionalProperties"], path + ("additionalProperties",)))
    return out


def item_schemas(schema: dict, path: tuple, i: int) -> list[tuple[Any, tuple]]:
    """What one schema object says of item `i` of an array: `prefixItems` (or draft 4-2019 array-form `items`)
    at i, else the rest (`items`, or `additionalItems` beside array-form `items`); [] when it says nothing."""
    prefix_key = "prefixItems" if isinstance(schema.get("prefixItems"), list) else "items"
    prefix = schema.get(prefix_key)
    if isinstance(prefix, list):
        if i < len(prefix):
            return [(prefix[i], path + (prefix_key, i))]
        rest = "items" if prefix_key == "prefixItems" else "additionalItems"
        return [(schema[rest], path + (rest,))] if rest in schema else []
    return [(schema["items"], path + ("items",))] if "items" in schema else []


def prefix_length(schema: dict) -> int:
    """How many items `item_schemas` gives their own schema (0 without `prefixItems` or array-form `items`)."""
    prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else schema.get("items")
    return len(prefix) if isinstance(prefix, list) else 0


def _keywords(root: Any) -> frozenset[str]:
    keys: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(node)
            stack.extend(v for k, v in node.items() if k not in ("enum", "const", "examples", "default"))
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(keys)


def detect_draft(root: Any, keywords: frozenset[str]) -> int:
    """The draft a schema is written in: from `$schema`, else guessed from the keywords it uses (2020-12 for
    `$defs`/`prefixItems`/`dependentRequired`, draft 7 for `definitions`/`additionalItems`/`dependencies`), else
    2020-12."""
    if isinstance(root, dict):
        uri = root.get("$schema")
        if isinstance(uri, str):
            for name, draft in DRAFTS.items():
                if name in uri:
                    return draft
        if keywords & {"$defs", "prefixItems", "dependentRequired"}:
            return 2020
        if keywords & {"definitions", "additionalItems", "dependencies"}:
            return 7
    return 2020


def validator_class(draft: int):
    """The `jsonschema` validator class of a draft."""
    import jsonschema

    return {
        4: jsonschema.Draft4Validator,
        6: jsonschema.Draft6Validator,
        7: jsonschema.Draft7Validator,
        2019: jsonschema.Draft201909Validator,
        2020: jsonschema.Draft202012Validator,
    }[draft]
