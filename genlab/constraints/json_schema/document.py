"""A JSON Schema document: loading (dict, JSON text or Pydantic model), its draft, and local `$ref` resolution.

References are local: JSON pointers (`#/$defs/x`, `#/definitions/x`, `#`), `$anchor`s (`#name`, and draft 6/7
`$id: "#name"`), and `$id`s of subschemas written as relative names (`"$id": "node"` referred to as
`"$ref": "node"`). Remote references raise, as genlab never fetches anything.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from genlab.errors import SchemaError

DRAFTS = {
    "draft-04": 4, "draft-06": 6, "draft-07": 7, "2019-09": 2019, "2020-12": 2020,
}


def load(schema: Any) -> tuple[Any, type | None]:
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


class Document:
    """The root schema with its draft and an index of every anchor and `$id` in it."""

    def __init__(self, root: Any, draft: int | None = None) -> None:
        self.root = root
        self.draft = draft if draft is not None else detect_draft(root)
        self.anchors: dict[str, tuple] = {}
        self._index(root, ())

    def _index(self, node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            anchor = node.get("$anchor")
            if isinstance(anchor, str):
                self.anchors.setdefault("#" + anchor, path)
            dynamic = node.get("$dynamicAnchor")
            if isinstance(dynamic, str):
                self.anchors.setdefault("#" + dynamic, path)
            ident = node.get("$id", node.get("id") if self.draft == 4 else None)
            if isinstance(ident, str) and path:
                self.anchors.setdefault(ident, path)
                if not ident.startswith("#"):
                    self.anchors.setdefault(ident.rsplit("/", 1)[-1], path)
            for key, value in node.items():
                if key in ("enum", "const", "examples", "default"):
                    continue
                self._index(value, path + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._index(value, path + (i,))

    def resolve(self, ref: str, where: tuple) -> tuple[Any, tuple]:
        """(the schema `ref` names, its path); raises `SchemaError` naming `where` when it has none here."""
        target = ref
        if "#" in ref and not ref.startswith("#"):
            base, _, fragment = ref.partition("#")
            if base in self.anchors:
                node, path = self._walk(self.anchors[base], where, ref)
                return self._fragment(node, path, "#" + fragment, ref, where) if fragment else (node, path)
            root_id = self.root.get("$id") if isinstance(self.root, dict) else None
            if isinstance(root_id, str) and root_id.split("#")[0].rstrip("/").endswith(base.rstrip("/")):
                target = "#" + fragment
            else:
                raise SchemaError(f"$ref {ref!r} points outside this document (remote references are not fetched)",
                                  pointer(where))
        elif not ref.startswith("#"):
            if ref in self.anchors:
                return self._walk(self.anchors[ref], where, ref)
            raise SchemaError(f"$ref {ref!r} points outside this document (remote references are not fetched)",
                              pointer(where))
        return self._fragment(self.root, (), target, ref, where)

    def _fragment(self, node: Any, path: tuple, fragment: str, ref: str, where: tuple) -> tuple[Any, tuple]:
        if fragment in ("#", ""):
            return node, path
        if not fragment.startswith("#/"):
            if fragment in self.anchors:
                return self._walk(self.anchors[fragment], where, ref)
            raise SchemaError(f"$ref {ref!r}: no $anchor or $id {fragment[1:]!r} in this document", pointer(where))
        for part in fragment[2:].split("/"):
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                part = int(part)
            else:
                raise SchemaError(f"$ref {ref!r} names nothing in this document", pointer(where))
            path = path + (part,)
        return node, path

    def _walk(self, path: tuple, where: tuple, ref: str) -> tuple[Any, tuple]:
        node = self.root
        for part in path:
            node = node[part]
        return node, path


def detect_draft(root: Any) -> int:
    """The draft a schema is written in: from `$schema`, else guessed from the spellings it uses (2020-12 for
    `$defs`/`prefixItems`, draft 7 for `definitions` or array-form `items`), else 2020-12."""
    if isinstance(root, dict):
        uri = root.get("$schema")
        if isinstance(uri, str):
            for name, draft in DRAFTS.items():
                if name in uri:
                    return draft
        text = json.dumps(root)
        if '"$defs"' in text or '"prefixItems"' in text or '"dependentRequired"' in text:
            return 2020
        if '"definitions"' in text or '"additionalItems"' in text or '"dependencies"' in text:
            return 7
    return 2020


def validator_class(draft: int):
    """The `jsonschema` validator class of a draft."""
    import jsonschema

    return {4: jsonschema.Draft4Validator, 6: jsonschema.Draft6Validator, 7: jsonschema.Draft7Validator,
            2019: jsonschema.Draft201909Validator, 2020: jsonschema.Draft202012Validator}[draft]
