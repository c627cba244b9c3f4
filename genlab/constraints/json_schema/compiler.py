"""JSON Schema to grammar: terminals (byte DFAs) and BNF rules for `Grammar.from_parts`.

Each place in the schema compiles to a nonterminal. A place is a *conjunction* of schema objects: `allOf`, `$ref`
and the branch chosen from an `anyOf`/`oneOf`/`if` all add objects to it, and its keywords intersect (types,
ranges, patterns, per-property schemas). Disjunctions are distributed: a place with an open `anyOf` becomes
one alternative per branch, each a conjunction of its own. Places are memoised by the set of schema objects and
choices, which is also what makes recursive schemas (`$ref` to an enclosing schema) finite grammars.

The grammar is exact where a context-free grammar can be, and an over-approximation elsewhere: each time a
keyword is not fully enforced by the grammar (`uniqueItems`, `oneOf`'s exclusivity, `not`, `if`, counts of
properties, `contains`, number bounds in exponent form, patterns with lookarounds, ...), its place and keyword
go in `end_checks`, and the constraint's validator (jsonschema) decides those at the end. The grammar never
rejects a value the schema accepts when written as the policy writes it (compact or flexible whitespace,
declared properties in schema order and undeclared ones after them, strings escaped as `json.dumps` does: see
`writer.py`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from genlab.automata.combine import difference, intersect, literals, union
from genlab.automata.dfa import ByteDFA
from genlab.automata.lexer import Terminal
from genlab.automata.minimize import minimal_dfa
from genlab.automata.regex import compile_regex
from genlab.constraints.json_schema.document import Document, item_schemas, pointer, prefix_length, property_schemas
from genlab.constraints.json_schema.formats import CHECK_ONLY, FORMATS
from genlab.constraints.json_schema.keywords import ANNOTATIONS, TYPES, VALIDATION
from genlab.constraints.json_schema.numbers import decimal_range, exponent_numbers, integer_range, multiple_of_dfa
from genlab.constraints.json_schema.strings import decoded_dfa, quoted
from genlab.constraints.json_schema.writer import Writer, property_rank
from genlab.errors import ConstraintError, InvalidPatternError, SchemaError

# bounded repetitions beyond these become unbounded in the grammar (and are checked at the end)
MAX_COUNT = 128
MAX_LENGTH = 256
# distributing open anyOf/oneOf/if groups at one place: at most this many combinations
MAX_COMBINATIONS = 64
MAX_MULTIPLE_OF = 1000
NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"


@dataclass(frozen=True)
class Policy:
    """How values are written: `whitespace` "compact" (none) or "flexible" (up to `max_whitespace` characters of
    JSON whitespace around each `{ } [ ] , :`); `property_order` "schema" (declared properties in the order the
    schema names them, extra ones anywhere) or "any"."""

    whitespace: str = "compact"
    property_order: str = "schema"
    max_whitespace: int = 8


@dataclass
class _Group:
    """An open disjunction at a place: `anyOf`, `oneOf`, or an `if` with its then/else."""

    key: Any  # (id of the schema object, keyword); a list of such keys for a joined choice (see `_choices`)
    branches: list[list[tuple[Any, tuple]]]  # each branch: the schema objects it adds, with their paths
    keyword: str
    path: tuple


@dataclass
class _Place:
    """The flattened conjunction of schema objects at one place of the instance."""

    parts: list[tuple[dict, tuple]] = field(default_factory=list)
    false: str | None = None  # why nothing is valid here, once known
    groups: list[_Group] = field(default_factory=list)
    # per part (by id): the schema objects it sits inside through $ref, allOf and chosen branches
    owners: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # chains (owners + holder) of the objects whose `anyOf` branch or `dependentSchemas` evaluate properties here
    # in ways one grammar alternative cannot follow (`unevaluatedProperties` beneath them is left to the validator)
    branching: list[tuple[int, ...]] = field(default_factory=list)

    def values(self, keyword: str) -> list[tuple[Any, tuple]]:
        return [(d[keyword], path + (keyword,)) for d, path in self.parts if keyword in d]

    @property
    def path(self) -> tuple:
        return self.parts[0][1] if self.parts else ()


class SchemaCompiler:
    """Builds the terminals and rules of one schema; `compile()` returns them with the start symbol."""

    def __init__(
        self, doc: Document, policy: Policy, validator, *, strict: bool = False, max_states: int = 250_000
    ) -> None:
        self.doc = doc
        self.max_states = max_states
        self._states = 0
        self.policy = policy
        self.strict = strict
        self.terminals: list[Terminal] = []
        self.rules: list[tuple[str, list[str]]] = []
        self.end_checks: dict[tuple[str | None, str], None] = {}  # (pointer, keyword), in order found
        # unknown keywords and formats, ignored as annotations (strict=False): ("keyword" | "format", name,
        # pointer), in order found
        self.annotations: dict[tuple[str, str, str], None] = {}
        self._terminal_names: dict[Any, str] = {}
        self._alive: list[ByteDFA] = []  # DFAs whose id keys a terminal: kept so no other DFA takes their id
        self._memo: dict[tuple, str | None] = {}
        self._checked: set[int] = set()
        self.validator = validator  # the document's jsonschema validator: enum values and names are checked on it
        self.rank = property_rank(doc.root)
        self._unevaluated = "unevaluatedProperties" in doc.keywords
        self.writer = Writer(doc, self.rank, validator)
        self._counter = 0
        # the reason nothing is valid, found nearest the root (what SchemaError reports)
        self._why_empty: str | None = None
        self._why_empty_path: tuple = ()

    # --- entry --------------------------------------------------------------------------------------------------

    def compile(self) -> str:
        """The start symbol; raises `SchemaError` when the schema accepts nothing."""
        value = self.symbol(((self.doc.root, ()),))
        if value is None:
            raise SchemaError(self._why_empty or "the schema accepts no value", pointer(self._why_empty_path))
        ws = self._ws()
        self.rules.append(("start", ws + [value] + ws))
        return "start"

    def _empty(self, reason: str, path: tuple) -> None:
        if self._why_empty is None or len(path) < len(self._why_empty_path):
            self._why_empty, self._why_empty_path = reason, path

    def _end_check(self, path: tuple, keyword: str) -> None:
        self.end_checks.setdefault((pointer(path), keyword), None)

    # --- places ---------------------------------------------------------------------------------------------------

    def symbol(self, schemas: tuple[tuple[Any, tuple], ...], choices: frozenset = frozenset()) -> str | None:
        """The nonterminal of the conjunction of `schemas` (with the given branch choices), or None if empty."""
        key = (frozenset(id(s) for s, _ in schemas), choices)
        if key in self._memo:
            return self._memo[key]
        name = f"v{len(self._memo)}"
        self._memo[key] = name  # before the body: recursive references find it
        alternatives = self._alternatives(schemas, choices)
        if not alternatives:
            self._memo[key] = None
            return None
        for alt in alternatives:
            self.rules.append((name, alt))
        return name

    def _place(self, schemas, choices: frozenset) -> _Place:
        place = _Place()
        chosen = dict(choices)
        for schema, path in schemas:
            self._flatten(schema, path, place, chosen, frozenset(), ())
        return place

    def _flatten(
        self, schema: Any, path: tuple, place: _Place, chosen: dict, refs: frozenset, owners: tuple[int, ...]
    ) -> None:
        if schema is True:
            return
        if schema is False:
            place.false = place.false or "the schema is false"
            self._empty("the schema `false` accepts nothing", path)
            return
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema is an object or a boolean, not {type(schema).__name__}", pointer(path))
        self._check_keywords(schema, path)
        ref_keys = [k for k in ("$ref", "$dynamicRef", "$recursiveRef") if k in schema]
        for k in ref_keys:
            ref = schema[k]
            if not isinstance(ref, str):
                raise SchemaError(f"{k} must be a string", pointer(path + (k,)))
            if k != "$ref":
                targets = self.doc.dynamic_targets(k, ref, path + (k,))
                if len(targets) > 1:  # it lands where the dynamic scope says: one alternative per landing place
                    self._open(
                        place,
                        chosen,
                        refs,
                        owners + (id(schema),),
                        _Group((id(schema), k), [[t] for t in targets], k, path + (k,)),
                    )
                    continue
            target, target_path = self.doc.resolve(ref, path + (k,))
            if target_path in refs:  # a reference cycle with no value in between: it adds nothing new
                continue
            self._flatten(target, target_path, place, chosen, refs | {target_path}, owners + (id(schema),))
        if ref_keys and self.doc.draft <= 7:
            return  # before 2019-09, keywords beside $ref are ignored
        for i, sub in enumerate(_list(schema, "allOf", path)):
            self._flatten(sub, path + ("allOf", i), place, chosen, refs, owners + (id(schema),))
        place.parts.append((schema, path))
        place.owners[id(schema)] = owners
        if "dependentSchemas" in schema or "dependencies" in schema:
            place.branching.append(owners + (id(schema),))
        inner = owners + (id(schema),)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                branches = _list(schema, keyword, path)
                if not branches:
                    raise SchemaError(f"{keyword} must be a non-empty array", pointer(path + (keyword,)))
                self._open(
                    place,
                    chosen,
                    refs,
                    inner,
                    _Group(
                        (id(schema), keyword),
                        [[(b, path + (keyword, i))] for i, b in enumerate(branches)],
                        keyword,
                        path + (keyword,),
                    ),
                )
        if "if" in schema:
            then = [(schema["then"], path + ("then",))] if "then" in schema else []
            otherwise = [(schema["else"], path + ("else",))] if "else" in schema else []
            if then or otherwise or self._unevaluated:  # an `if` alone only matters by what it evaluates
                self._open(
                    place,
                    chosen,
                    refs,
                    inner,
                    _Group(
                        (id(schema), "if"), [[(schema["if"], path + ("if",))] + then, otherwise], "if", path + ("if",)
                    ),
                )

    def _open(self, place: _Place, chosen: dict, refs: frozenset, owners: tuple[int, ...], group: _Group) -> None:
        if chosen.get(group.key) == -1:  # past the combination budget: the validator checks it
            return
        if group.key in chosen:
            # anyOf: several branches may hold and evaluate properties, which no one alternative can say
            if group.keyword not in ("oneOf", "if"):
                place.branching.append(owners)
            for sub, sub_path in group.branches[chosen[group.key]]:
                self._flatten(sub, sub_path, place, chosen, refs, owners)
        else:
            place.groups.append(group)

    def _check_keywords(self, schema: dict, path: tuple) -> None:
        if id(schema) in self._checked:
            return
        self._checked.add(id(schema))
        for key in schema:
            if key in VALIDATION or key in ANNOTATIONS:
                continue
            if self.strict:
                raise SchemaError(
                    f"unknown keyword {key!r} (strict=True refuses unknown keywords; by default "
                    "they are ignored as annotations)",
                    pointer(path + (key,)),
                )
            self.annotations.setdefault(("keyword", key, pointer(path + (key,))), None)

    def _alternatives(self, schemas, choices: frozenset) -> list[list[str]]:
        place = self._place(schemas, choices)
        if place.false:
            return []
        if place.groups:
            return self._distribute(schemas, choices, place)
        types = self._types(place)
        enum = self._enum(place)
        if enum is not None:  # one terminal for all the values: a trie of their texts
            if not enum:
                return []
            integer = "number" not in types
            texts = sorted({text.encode("utf-8") for v in enum for text in self._spellings(v, integer)})
            key = ("lits", tuple(texts))
            if key not in self._terminal_names:
                dfa = literals(texts)
                assert dfa is not None  # texts is not empty
                self._terminal_names[key] = self._add_terminal(dfa)
            return [[self._terminal_names[key]]]
        alternatives: list[list[str]] = []
        if "null" in types:
            alternatives.append([self._literal_terminal(None)])
        if "boolean" in types:
            alternatives += [[self._literal_terminal(True)], [self._literal_terminal(False)]]
        if "number" in types or "integer" in types:
            alternatives += [[t] for t in self._numbers(place, types)]
        if "string" in types:
            s = self._string(place)
            if s is not None:
                alternatives.append([s])
        if "array" in types:
            alternatives += self._array(place)
        if "object" in types:
            alternatives += self._object(place)
        if not alternatives:
            self._empty("no value satisfies every keyword here", place.path)
        return alternatives

    def _distribute(self, schemas, choices: frozenset, place: _Place) -> list[list[str]]:
        """One alternative per option of the first open choice; choices past the combination budget are left to
        the validator. A choice is a group's branches, or, for `if`s that test one property against different
        constants (a discriminated union written as if/then), which one of them holds, if any: n + 1 options
        where taking each `if` apart would give 2^n."""
        budget = 1
        keep: list[tuple[list[frozenset], _Group]] = []
        dropped: list[_Group] = []
        for options, group in self._choices(place.groups):
            if budget * len(options) > MAX_COMBINATIONS and keep:
                dropped.append(group)
                continue
            budget *= len(options)
            keep.append((options, group))
        for group in dropped:
            self._end_check(group.path[:-1], group.keyword)
        options, group = keep[0]
        if group.keyword in ("if", "$dynamicRef", "$recursiveRef") or (
            group.keyword == "oneOf" and len(group.branches) > 1
        ):
            self._end_check(group.path[:-1], group.keyword)
        skipped = frozenset((k, -1) for g in dropped for k in (g.key if isinstance(g.key, list) else [g.key]))
        alternatives = []
        for option in options:
            s = self.symbol(schemas, choices | option | skipped)
            if s is not None:
                alternatives.append([s])
        if not alternatives:
            self._empty(f"no branch of {group.keyword} can be satisfied", group.path)
        return alternatives

    def _choices(self, groups: list[_Group]) -> list[tuple[list[frozenset], _Group]]:
        """(options, group) per open choice: each option is the set of (group key, branch) it takes. `if`s on one
        property's constant value are joined into one choice (their group's key is then the list of keys)."""
        by_property: dict[str, list[tuple[Any, _Group]]] = {}
        out = []
        for group in groups:
            tested = _discriminant(group) if group.keyword == "if" else None
            if tested is None:
                out.append(([frozenset({(group.key, i)}) for i in range(len(group.branches))], group))
            else:
                by_property.setdefault(tested[0], []).append((tested[1], group))
        for members in by_property.values():
            values = [json.dumps(v, sort_keys=True) for v, _ in members]
            if len(members) == 1 or len(set(values)) < len(values):
                for _, group in members:  # a lone or repeated test: the branches one by one
                    out.append(([frozenset({(group.key, i)}) for i in range(2)], group))
                continue
            keys = [g.key for _, g in members]
            options = [frozenset((k, 0 if k == holding else 1) for k in keys) for holding in keys]
            options.append(frozenset((k, 1) for k in keys))  # none of the constants
            first = members[0][1]
            out.append((options, _Group(keys, [], "if", first.path)))
        return out

    # --- types and enums -------------------------------------------------------------------------------------------

    def _types(self, place: _Place) -> set[str]:
        types = set(TYPES)
        for value, path in place.values("type"):
            names = value if isinstance(value, list) else [value]
            for name in names:
                if name not in TYPES:
                    raise SchemaError(f"unknown type {name!r}", pointer(path))
            here = set(names)
            if "number" in here:
                here.add("integer")
            types &= here
        for value, path in place.values("not"):
            if isinstance(value, dict) and set(value) <= {"type"} | ANNOTATIONS and "type" in value:
                names = value["type"] if isinstance(value["type"], list) else [value["type"]]
                types -= set(names) | ({"integer"} if "number" in names else set())
            elif value is True:
                types = set()
            else:
                self._end_check(path[:-1], "not")
        for keyword in ("dependentRequired", "dependentSchemas", "dependencies"):
            for _, path in place.values(keyword):
                self._end_check(path[:-1], keyword)
        if not types:
            self._empty("the types allowed here have no value in common", place.path)
        return types

    def _enum(self, place: _Place) -> list | None:
        """The enum/const values that satisfy every schema object here (checked by the validator), or None."""
        candidates = None
        for d, path in place.parts:
            if "const" in d:
                candidates = [d["const"]]
                break
            if "enum" in d:
                if not isinstance(d["enum"], list):
                    raise SchemaError("enum must be an array", pointer(path + ("enum",)))
                candidates = d["enum"]
                break
        if candidates is None:
            return None
        validator = self.validator
        kept: list[Any] = []
        for value in candidates:
            if all(validator.evolve(schema=d).is_valid(value) for d, _ in place.parts):
                if value not in kept or not _same_json_in(value, kept):
                    kept.append(value)
        if not kept:
            self._empty("no enum/const value satisfies the other keywords here", place.path)
        return kept

    def _spellings(self, value: Any, integer: bool) -> list[str]:
        """The texts of an enum value. Integers are written as integers: an int as `2` only; a whole float as
        `2.0` and `2` (JSON does not tell them apart), or as `2` only at a place whose type is integer."""
        text = self.writer.literal(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            whole = text.split(".")[0]
            return [whole] if integer or isinstance(value, int) else [whole, whole + ".0"]
        return [text]

    # --- numbers ---------------------------------------------------------------------------------------------

    def _numbers(self, place: _Place, types: set[str]) -> list[str]:
        lo, lo_x, hi, hi_x = None, False, None, False
        for d, path in place.parts:
            draft4 = self.doc.draft == 4
            for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
                if key not in d:
                    continue
                v = d[key]
                if draft4 and key.startswith("exclusive"):
                    if not isinstance(v, bool):
                        raise SchemaError(f"{key} must be a boolean in draft 4", pointer(path + (key,)))
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise SchemaError(f"{key} must be a finite number", pointer(path + (key,)))
                bound = Decimal(str(v)) if isinstance(v, float) else Decimal(v)
                exclusive = key.startswith("exclusive") or bool(draft4 and d.get(f"exclusive{key[0].upper()}{key[1:]}"))
                if key.lower().endswith("minimum"):
                    if lo is None or bound > lo or (bound == lo and exclusive):
                        lo, lo_x = bound, exclusive
                else:
                    if hi is None or bound < hi or (bound == hi and exclusive):
                        hi, hi_x = bound, exclusive
        multiples = []
        for v, path in place.values("multipleOf"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise SchemaError("multipleOf must be a number > 0", pointer(path))
            multiples.append((v, path))
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_x or hi_x))):
            raise SchemaError(f"the number range is empty ({lo} .. {hi})", pointer(place.path))
        whole = [int(v) for v, _ in multiples if float(v).is_integer()]
        integer_only = "number" not in types or bool(whole)
        for v, path in multiples:
            if not float(v).is_integer():
                self._end_check(path[:-1], "multipleOf")
        if integer_only:
            return self._integers(place, lo, lo_x, hi, hi_x, whole, "number" in types)
        if lo is None and hi is None:
            return [self._regex_terminal(NUMBER)]
        try:
            plain = decimal_range(lo, hi, lo_x, hi_x)
        except ValueError:
            return []
        sign = "any"
        if lo is not None and lo >= 0:
            sign = "pos" if lo > 0 or lo_x else "nonneg"
        if hi is not None and hi <= 0:
            sign = "neg" if hi < 0 or hi_x else ("nonpos" if sign == "any" else sign)
        self._end_check(place.path, "minimum" if lo is not None else "maximum")
        return [self._regex_terminal(plain), self._regex_terminal(exponent_numbers(sign))]

    def _integers(self, place: _Place, lo, lo_x, hi, hi_x, multiples: list[int], fraction: bool) -> list[str]:
        """Whole numbers in range (and multiples of `multiples`), written as integers; with an optional `.0...`
        fraction only where the type is number (`fraction`: a number that must be a multiple of an integer). Where
        the type is integer, the language is integer texts only, though from draft 6 on `28.0` is a valid
        instance too (the validator accepts it; the writer writes such a float as `28`): generated integers
        parse as integers."""
        lo_i = None if lo is None else (math.floor(lo) + 1 if lo_x and lo == math.floor(lo) else math.ceil(lo))
        hi_i = None if hi is None else (math.ceil(hi) - 1 if hi_x and hi == math.ceil(hi) else math.floor(hi))
        if lo_i is not None and hi_i is not None and lo_i > hi_i:
            self._empty(f"no integer lies in {lo} .. {hi}", place.path)
            return []
        pattern = integer_range(lo_i, hi_i)
        if pattern is None:
            return []
        suffix = r"(?:\.0+)?" if fraction else ""
        k = math.lcm(*multiples) if multiples else 1
        if k > MAX_MULTIPLE_OF:
            self._end_check(place.path, "multipleOf")
        if k == 1 or k > MAX_MULTIPLE_OF:
            return [self._regex_terminal(f"(?:{pattern}){suffix}")]
        key = ("int", pattern, k, fraction)
        if key not in self._terminal_names:
            table, accepting, start = multiple_of_dfa(k)
            order = np.arange(len(table))
            order[[0, start]] = order[[start, 0]]  # minimal_dfa starts at state 0
            inverse = np.argsort(order)
            mapped = np.where(table[order] >= 0, inverse[np.maximum(table[order], 0)], -1).astype(np.int32)
            mod = minimal_dfa(mapped, accepting[order])
            dfa = intersect(compile_regex(pattern), mod) if mod is not None else None
            if dfa is None:
                self._empty(f"no integer in range is a multiple of {k}", place.path)
                return []
            self._terminal_names[key] = self._add_terminal(_zero_fraction(dfa) if fraction else dfa)
        return [self._terminal_names[key]]

    # --- strings ---------------------------------------------------------------------------------------------

    def _string(self, place: _Place) -> str | None:
        dfa = self._string_dfa(place)
        if dfa is None:
            return None
        key = ("str", id(dfa))
        if key not in self._terminal_names:
            self._alive.append(dfa)
            self._terminal_names[key] = self._add_terminal(_quoted(dfa))
        return self._terminal_names[key]

    def _string_dfa(self, place: _Place) -> ByteDFA | None:
        """The DFA of the decoded string values allowed here (length, patterns, formats)."""
        min_len, max_len = _count_range(place, "minLength", "maxLength")
        if max_len is not None and min_len > max_len:
            self._empty(f"minLength {min_len} > maxLength {max_len}", place.path)
            return None
        if min_len > MAX_LENGTH:
            self._end_check(place.path, "minLength")
            min_len = MAX_LENGTH
        if max_len is not None and max_len > MAX_LENGTH:
            self._end_check(place.path, "maxLength")
            max_len = None
        patterns = []
        for v, path in place.values("pattern"):
            if not isinstance(v, str):
                raise SchemaError("pattern must be a string", pointer(path))
            patterns.append((v, path))
        for v, path in place.values("format"):
            if not isinstance(v, str):
                raise SchemaError("format must be a string", pointer(path))
            if v in CHECK_ONLY:
                self._end_check(path[:-1], "format")
            elif v in FORMATS:
                patterns.append((r"\A(?:" + FORMATS[v] + r")\Z", path))
            elif self.strict:
                raise SchemaError(
                    f"unknown format {v!r} (known: {', '.join(FORMATS)}; strict=True refuses "
                    "unknown formats; by default they are ignored as annotations)",
                    pointer(path),
                )
            else:
                self.annotations.setdefault(("format", v, pointer(path)), None)
        usable = []
        for p, path in patterns:
            try:
                decoded_dfa((p,), 0, None)
            except InvalidPatternError as e:
                raise SchemaError(f"invalid pattern {p!r}: {e}", pointer(path)) from e
            except ConstraintError:  # lookarounds, backreferences, huge automata: the validator decides
                self._end_check(path[:-1], path[-1])
                continue
            usable.append(p)
        try:
            dfa, dropped = decoded_dfa(tuple(usable), min_len, max_len)
        except ConstraintError:
            self._end_check(place.path, "pattern")
            dfa, dropped = decoded_dfa((), min_len, max_len)
        if dropped:
            self._end_check(place.path, "maxLength" if max_len is not None else "minLength")
        if dfa is None:
            self._empty("no string satisfies the length, pattern and format here", place.path)
        return dfa

    # --- arrays ----------------------------------------------------------------------------------------------

    def _array(self, place: _Place) -> list[list[str]]:
        lo, hi = _count_range(place, "minItems", "maxItems")
        for d, path in place.parts:
            if "unevaluatedItems" in d and d["unevaluatedItems"] is not True:
                self._end_check(path, "unevaluatedItems")
        for keyword in ("uniqueItems", "contains"):
            for v, path in place.values(keyword):
                if keyword == "uniqueItems" and v is True or keyword == "contains":
                    self._end_check(path[:-1], keyword)
        n_prefix = max((prefix_length(d) for d, _ in place.parts), default=0)

        def position(i: int) -> str | None:
            return self.symbol(tuple(m for d, path in place.parts for m in item_schemas(d, path, i)))

        rest_symbol = position(n_prefix)
        cap = n_prefix if rest_symbol is None else None
        symbols = []
        for i in range(n_prefix):
            s = position(i)
            if s is None:
                cap = i
                break
            symbols.append(s)
        if cap is not None:
            hi = cap if hi is None else min(hi, cap)
        if hi is not None and lo > hi:
            self._empty(f"no array has between {lo} and {hi} items valid here", place.path)
            return []
        if lo > MAX_COUNT:
            self._end_check(place.path, "minItems")
            lo = MAX_COUNT
        if hi is not None and hi > max(MAX_COUNT, n_prefix):
            self._end_check(place.path, "maxItems")
            hi = None
        sep, ws = self._sep(), self._ws()
        threshold = max(n_prefix, lo)
        top = threshold if hi is None else hi
        names = [self._fresh("arr") for _ in range(top + 1)]
        for i in range(top + 1):
            if i >= lo:
                self.rules.append((names[i], []))
            if i < top:
                item = symbols[i] if i < n_prefix else rest_symbol
                assert item is not None  # without rest_symbol, top <= cap = n_prefix
                self.rules.append((names[i], (sep if i else []) + [item, names[i + 1]]))
        if hi is None and rest_symbol is not None:
            tail = self._fresh("arr")
            self.rules.append((tail, []))
            self.rules.append((tail, sep + [rest_symbol, tail]))
            self.rules.append((names[top], (sep if top else []) + [rest_symbol, tail]))
        return [[self._punct("[")] + ws + [names[0]] + ws + [self._punct("]")]]

    # --- objects ---------------------------------------------------------------------------------------------

    def _object(self, place: _Place) -> list[list[str]]:
        lo, hi = _count_range(place, "minProperties", "maxProperties")
        required: dict[str, None] = {}
        for v, path in place.values("required"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise SchemaError("required must be an array of strings", pointer(path))
            required.update(dict.fromkeys(v))
        declared: dict[str, None] = {}
        for v, path in place.values("properties"):
            if not isinstance(v, dict):
                raise SchemaError("properties must be an object", pointer(path))
            declared.update(dict.fromkeys(v))
        for v, path in place.values("patternProperties"):
            if not isinstance(v, dict):
                raise SchemaError("patternProperties must be an object", pointer(path))
            for pattern in v:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise SchemaError(f"invalid pattern {pattern!r}: {e}", pointer(path)) from e
        declared.update(required)
        names = sorted(declared, key=lambda n: self.rank.get(n, len(self.rank)))
        name_checks = place.values("propertyNames")
        members = []
        for name in names:
            value = self._property_value(place, name)
            if value is not None and name_checks:
                validator = self.validator
                if not all(validator.evolve(schema=s).is_valid(name) for s, _ in name_checks):
                    value = None
            if value is None:
                if name in required:
                    self._empty(f"required property {name!r} can have no valid value", place.path)
                    return []
                continue
            members.append((name, value, name in required))
        extra = self._extra_members(place, list(declared))
        if extra is not None:  # two undeclared members may share a name: JSON parsers disagree on what it means
            if place.parts:
                self._end_check(place.path, "duplicate property names")
            else:
                self.end_checks.setdefault((None, "duplicate property names in free-form objects"), None)
        if hi is not None and lo > hi:
            self._empty(f"minProperties {lo} > maxProperties {hi}", place.path)
            return []
        n_required = sum(1 for m in members if m[2])
        if lo > n_required:
            if extra is None and lo > len(members):
                self._empty(f"minProperties {lo} exceeds the properties allowed", place.path)
                return []
            self._end_check(place.path, "minProperties")
        if hi is not None:
            if n_required > hi:
                self._empty(f"maxProperties {hi} is less than the required properties", place.path)
                return []
            if extra is not None or hi < len(members):
                self._end_check(place.path, "maxProperties")
        member_symbols = [(self._member(self._literal_terminal(n), v), req) for n, v, req in members]
        ws = self._ws()
        sep = self._sep()
        if self.policy.property_order == "any":
            if required:
                self._end_check(place.path, "required")
            if member_symbols:
                self._end_check(place.path, "duplicate property names")
            body = self._fresh("obj")
            more = self._fresh("obj")
            one = self._fresh("obj")
            for m, _ in member_symbols:
                self.rules.append((one, [m]))
            if extra is not None:
                self.rules.append((one, [extra]))
            self.rules += [(body, []), (body, [one, more]), (more, []), (more, sep + [one, more])]
            return [[self._punct("{")] + ws + [body] + ws + [self._punct("}")]]
        n = len(member_symbols)
        empty = [self._fresh("obj") for _ in range(n + 1)]  # nothing written yet
        some = [self._fresh("obj") for _ in range(n + 1)]  # something written: the next member needs a comma
        for i in range(n + 1):
            if i == n:
                self.rules += [(empty[i], []), (some[i], [])]
            else:
                m, req = member_symbols[i]
                self.rules += [(empty[i], [m, some[i + 1]]), (some[i], sep + [m, some[i + 1]])]
                if not req:
                    self.rules += [(empty[i], [empty[i + 1]]), (some[i], [some[i + 1]])]
                continue
            if extra is not None:  # undeclared members come after the declared ones
                self.rules += [(empty[i], [extra, some[i]]), (some[i], sep + [extra, some[i]])]
        return [[self._punct("{")] + ws + [empty[0]] + ws + [self._punct("}")]]

    def _property_value(self, place: _Place, name: str) -> str | None:
        """The value symbol of a named property: each schema object here contributes its `properties` entry,
        else its matching `patternProperties`, else its `additionalProperties`."""
        schemas = [m for d, path in place.parts for m in property_schemas(d, path, name)]
        for names, patterns in self._closing(place):
            if name not in names and not any(re.search(p, name) for p in patterns):
                return None
        return self.symbol(tuple(schemas))

    def _closing(self, place: _Place) -> list[tuple[set[str], list[str]]]:
        """For each `unevaluatedProperties: false` here that the grammar enforces: the names and patterns its
        subtree evaluates (other names are forbidden). Where a subtree's evaluation depends on which `anyOf`
        branches hold, or it is a schema rather than false, the validator checks it instead."""
        out = []
        for d, path in place.parts:
            closing = d.get("unevaluatedProperties")
            if closing is None or closing is True:
                continue
            me = id(d)
            subtree = [e for e, _ in place.parts if e is d or me in place.owners.get(id(e), ())]
            if any("additionalProperties" in e or (e is not d and "unevaluatedProperties" in e) for e in subtree):
                continue  # every property is evaluated beneath: nothing is left to close
            if closing is not False or any(me in chain for chain in place.branching):
                self._end_check(path, "unevaluatedProperties")
                continue
            names = {n for e in subtree for n in (e.get("properties") or {})}
            patterns = [p for e in subtree for p in (e.get("patternProperties") or {})]
            out.append((names, patterns))
        return out

    def _extra_members(self, place: _Place, declared: list[str]) -> str | None:
        """A symbol for one member whose name is not declared here (None when no such member is allowed)."""
        shaping = [(d, path) for d, path in place.parts if "patternProperties" in d or "additionalProperties" in d]
        if any(s is False for s, _ in place.values("propertyNames")):
            return None
        names_dfa = self._names_dfa(place)
        declared_dfa = literals([n.encode("utf-8") for n in declared])
        any_name, _ = decoded_dfa((), 0, None)
        base: ByteDFA | None = any_name if names_dfa is None else names_dfa
        if declared_dfa is not None and base is not None:
            base = difference(base, declared_dfa)
        for _, closing_patterns in self._closing(place):
            try:  # a pattern no name matches (None) evaluates nothing
                evaluated = [dfa for p in closing_patterns if (dfa := decoded_dfa((p,), 0, None)[0]) is not None]
            except ConstraintError:
                self._end_check(place.path, "unevaluatedProperties")
                continue
            allowed: ByteDFA | None = None
            for dfa in evaluated:
                allowed = dfa if allowed is None else union(allowed, dfa)
            base = intersect(base, allowed) if allowed is not None and base is not None else None
        if base is None:
            return None
        if not shaping:
            return self._region(base, self.symbol(((True, place.path),)))
        if len(shaping) > 1:
            if any(d.get("additionalProperties") is False and not d.get("patternProperties") for d, _ in shaping):
                return None
            self._end_check(place.path, "additionalProperties")
            return self._region(base, self.symbol(((True, place.path),)))
        d, path = shaping[0]
        regions = []
        patterns = list((d.get("patternProperties") or {}).items())
        if len(patterns) > 1:
            self._end_check(path, "patternProperties")
        rest: ByteDFA | None = base
        for pattern, sub in patterns:
            try:
                matching, _ = decoded_dfa((pattern,), 0, None)
            except InvalidPatternError as e:
                raise SchemaError(f"invalid pattern {pattern!r}: {e}", pointer(path + ("patternProperties",))) from e
            except ConstraintError:
                self._end_check(path, "patternProperties")
                return self._region(base, self.symbol(((True, path),)))
            if matching is None:  # no name matches the pattern
                continue
            keys = intersect(base, matching)
            if keys is not None:
                regions.append((keys, self.symbol(((sub, path + ("patternProperties", pattern)),))))
            rest = difference(rest, matching) if rest is not None else None
        if rest is not None:
            if "additionalProperties" in d:
                other = (d["additionalProperties"], path + ("additionalProperties",))
            else:
                other = (True, path)
            regions.append((rest, self.symbol((other,))))
        alternatives = [a for keys, value in regions if (a := self._region(keys, value)) is not None]
        if not alternatives:
            return None
        if len(alternatives) == 1:
            return alternatives[0]
        name = self._fresh("extra")
        for a in alternatives:
            self.rules.append((name, [a]))
        return name

    def _names_dfa(self, place: _Place) -> ByteDFA | None:
        """The DFA of the names `propertyNames` allows here, when it is a plain string schema (else None and the
        validator checks it)."""
        checks = place.values("propertyNames")
        if not checks:
            return None
        inner = self._place(tuple(checks), frozenset())
        plain = {"pattern", "minLength", "maxLength", "format", "type"} | ANNOTATIONS
        if inner.false:
            return literals([])
        if inner.groups or any(set(d) - plain for d, _ in inner.parts):
            self._end_check(place.path, "propertyNames")
            return None
        return self._string_dfa(inner)

    def _region(self, keys: ByteDFA | None, value: str | None) -> str | None:
        if keys is None or value is None:
            return None
        key = ("key", id(keys))
        if key not in self._terminal_names:
            self._alive.append(keys)
            self._terminal_names[key] = self._add_terminal(quoted(keys))
        return self._member(self._terminal_names[key], value)

    def _member(self, key_terminal: str, value: str) -> str:
        name = self._fresh("member")
        ws = self._ws()
        self.rules.append((name, [key_terminal] + ws + [self._punct(":")] + ws + [value]))
        return name

    # --- terminals and layout --------------------------------------------------------------------------------

    def _fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def _ws(self) -> list[str]:
        if self.policy.whitespace == "compact":
            return []
        key = ("ws",)
        if key not in self._terminal_names:
            n = self.policy.max_whitespace
            self._terminal_names[key] = self._regex_terminal(f"[ \\t\\n\\r]{{1,{n}}}")
            self.rules += [("ws", []), ("ws", [self._terminal_names[key]])]
        return ["ws"]

    def _sep(self) -> list[str]:
        ws = self._ws()
        return ws + [self._punct(",")] + ws

    def _punct(self, char: str) -> str:
        return self._literal_bytes(char.encode())

    def _literal_terminal(self, value: Any) -> str:
        return self._literal_bytes(self.writer.literal(value).encode("utf-8"))

    def _literal_bytes(self, data: bytes) -> str:
        key = ("lit", data)
        if key not in self._terminal_names:
            dfa = literals([data])
            assert dfa is not None  # one string
            self._terminal_names[key] = self._add_terminal(dfa)
        return self._terminal_names[key]

    def _regex_terminal(self, pattern: str) -> str:
        key = ("re", pattern)
        if key not in self._terminal_names:
            self._terminal_names[key] = self._add_terminal(_regex(pattern))
        return self._terminal_names[key]

    def _add_terminal(self, dfa: ByteDFA) -> str:
        self._states += dfa.n_states
        if self._states > self.max_states:  # each state is a 1 KiB row: this bounds memory (and time)
            raise SchemaError(
                f"the schema is too large: its terminals need more than {self.max_states} automaton "
                "states (raise max_states to allow it)",
                "",
            )
        name = f"T{len(self.terminals)}"
        self.terminals.append(Terminal(name, dfa, _NO_GUARD))
        return name


_NO_GUARD = np.zeros(256, np.bool_)


# compiled once per process: schemas repeat the same number and string shapes
_regex = functools.lru_cache(maxsize=1024)(compile_regex)
_quoted = functools.lru_cache(maxsize=1024)(quoted)


def _zero_fraction(dfa: ByteDFA) -> ByteDFA:
    """`dfa` (of integer texts) with an optional `.0`, `.00`, ... after each of its strings."""
    n = dfa.n_states
    table = np.vstack([dfa.transitions, np.full((2, 256), -1, np.int32)])
    table[np.flatnonzero(dfa.accepting), ord(".")] = n
    table[n, ord("0")] = table[n + 1, ord("0")] = n + 1
    accepting = np.concatenate([dfa.accepting, [False, True]])
    out = minimal_dfa(table, accepting)
    assert out is not None
    return out


def _discriminant(group: _Group) -> tuple[str, Any] | None:
    """(property, constant) when an `if` says only "property `p` is present and equals `c`"."""
    condition = group.branches[0][0][0]
    if not isinstance(condition, dict) or set(condition) - {"properties", "required", "type"} - ANNOTATIONS:
        return None
    props = condition.get("properties")
    if not isinstance(props, dict) or len(props) != 1 or condition.get("type", "object") != "object":
        return None
    ((name, test),) = props.items()
    if condition.get("required") != [name] or not isinstance(test, dict):
        return None
    if set(test) - {"const"} - ANNOTATIONS or "const" not in test:
        return None
    return name, test["const"]


def _count_range(place: _Place, low: str, high: str) -> tuple[int, int | None]:
    """The tightest (low, high) of a pair of count keywords (minItems/maxItems, ...) over the place's parts."""
    lo, hi = 0, None
    for key in (low, high):
        for v, path in place.values(key):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or int(v) != v:
                raise SchemaError(f"{key} must be a non-negative integer", pointer(path))
            if key == low:
                lo = max(lo, int(v))
            else:
                hi = int(v) if hi is None else min(hi, int(v))
    return lo, hi


def _list(schema: dict, keyword: str, path: tuple) -> list:
    value = schema.get(keyword, [])
    if not isinstance(value, list):
        raise SchemaError(f"{keyword} must be an array of schemas", pointer(path + (keyword,)))
    return value


def _same_json_in(value: Any, seen: list) -> bool:
    return any(type(value) is type(v) and value == v for v in seen)
