"""JsonSchema: the compiled constraint against jsonschema (the oracle), keyword by keyword; masks against brute
force; bad input; Pydantic; MaskBench sample; outputs of the samplers on SmolLM2 validate."""

from __future__ import annotations

import gzip
import json
import random
import time
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import tokenizer_and_vocab
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grammar import brute_force_mask

import genlab
from genlab import JsonSchema, SchemaError

VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    3,
    5,
    7,
    10,
    12,
    100,
    -100,
    1.5,
    -2.5,
    0.1,
    2.0,
    1e-05,
    1e20,
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "é",
    "日本語",
    'a"b',
    "x\ny",
    "a/b",
    "\x01",
    "2024-02-29",
    "2023-02-29",
    "12:30:00Z",
    "2024-01-01T12:00:00Z",
    "2024-01-01 12:00:00",
    "user@example.com",
    "192.168.0.1",
    "::1",
    "550e8400-e29b-41d4-a716-446655440000",
    "https://example.com/a?b#c",
    "P1D",
    [],
    [1],
    [1, 2],
    [1, 1],
    ["a", 1],
    [1, 2, 3, 4],
    [[1], [2]],
    ["a", "b", "c"],
    {},
    {"a": 1},
    {"a": "x", "b": 2},
    {"b": 2},
    {"a": 1, "zz": 3},
    {"foo": 1, "bar": 2},
    {"a": {"a": None}},
    {"a": 1, "b": "x", "c": [1]},
    {"x-1": 1},
    {"name": "n", "next": {"name": "m", "next": None}},
]

# (schema, draft or None): every keyword family, alone and combined
SCHEMAS = [
    {"type": ["string", "null"]},
    {"type": "integer", "minimum": 2, "exclusiveMaximum": 12},
    {"type": "number", "exclusiveMinimum": -2.5, "maximum": 1.5},
    {"type": "integer", "multipleOf": 5},
    {"type": "number", "multipleOf": 0.5},
    {"enum": ["a", 1, None, [1, 2], {"a": 1}]},
    {"const": "abc"},
    {"type": "string", "minLength": 2, "maxLength": 3},
    {"type": "string", "pattern": "^[a-c]+$"},
    {"type": "string", "pattern": "b"},
    {"type": "string", "pattern": "(?<=a)b"},  # a lookbehind: compiled exactly (assertions.py)
    {"format": "date"},
    {"format": "date-time"},
    {"format": "time"},
    {"format": "email"},
    {"format": "ipv4"},
    {"format": "ipv6"},
    {"format": "uuid"},
    {"format": "uri"},
    {"format": "duration"},
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]},
    {"type": "object", "properties": {"a": {}, "b": {}}, "additionalProperties": False},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False},
    {"type": "object", "propertyNames": {"maxLength": 1}},
    {"type": "object", "minProperties": 1, "maxProperties": 2},
    {"type": "object", "dependentRequired": {"a": ["b"]}},
    {"type": "object", "dependentSchemas": {"a": {"required": ["c"]}}},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {"type": "array", "contains": {"type": "string"}, "minContains": 1},
    {"type": "array", "uniqueItems": True},
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]},
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"required": ["a"]}]},
    {"allOf": [{"minimum": 0}, {"maximum": 5}, {"type": "integer"}]},
    {"not": {"type": "string"}},
    {"not": {"enum": [1, 2]}},
    {"if": {"type": "integer"}, "then": {"minimum": 3}, "else": {"type": "string"}},
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                },
                "required": ["name", "next"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    {"$defs": {"x": {"$anchor": "small", "type": "integer", "maximum": 3}}, "$ref": "#small"},
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"s": {"type": "string"}},
        "type": "array",
        "items": [{"$ref": "#/definitions/s"}],
        "additionalItems": {"type": "integer"},
    },
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "minimum": 1, "exclusiveMinimum": True},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "unevaluatedProperties": False},
]


def _oracle(schema):
    from genlab.constraints.json_schema.validator import make_validator

    return make_validator(JsonSchema(schema).document)


@pytest.mark.parametrize("schema", SCHEMAS, ids=[json.dumps(s)[:60] for s in SCHEMAS])
def test_agrees_with_jsonschema(schema):
    """Every value of the pool, written as genlab writes it: accepted iff jsonschema says valid, and the grammar
    alone never rejects a valid one (exact where no keyword is left to the end check)."""
    c = JsonSchema(schema)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(
        schema, format_checker=_oracle(schema).format_checker
    )
    for value in VALUES:
        text = c.serialize(value)
        valid = validator.is_valid(value)
        assert c.check(text) == valid, (text, valid)
        if valid:
            assert c.grammar.check(text), text
            assert all(c.check_prefix(text[:k]) for k in range(len(text) + 1)), text  # early checks are sound
        elif not c.end_checks:
            assert not c.grammar.check(text), text


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False))
def test_numbers_exact_in_the_grammar(i, x):
    schemas = [
        ({"type": "integer", "minimum": -37, "maximum": 1200}, i),
        ({"type": "integer", "exclusiveMinimum": 5, "multipleOf": 7}, i),
        ({"type": "number", "minimum": -0.25, "exclusiveMaximum": 1000.5}, x),
        ({"type": "number", "minimum": -0.25, "exclusiveMaximum": 1000.5}, i),
    ]
    for schema, value in schemas:
        c = _compiled(json.dumps(schema))
        text = json.dumps(value)
        valid = jsonschema.Draft202012Validator(schema).is_valid(value)
        assert c.check(text) == valid, (schema, text)
        if "e" not in text:  # plain decimals are decided by the grammar alone
            assert c.grammar.check(text) == valid, (schema, text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab"\\é\n\x00/日c'), max_size=6))
def test_strings_exact_in_the_grammar(s):
    for schema in (
        {"type": "string", "minLength": 2, "maxLength": 4},
        {"type": "string", "pattern": "a.?b$"},
        {
            "type": "object",
            "propertyNames": {"pattern": "^[ab]+$"},
            "additionalProperties": False,
            "properties": {"é": {}},
        },
    ):
        c = _compiled(json.dumps(schema))
        value = {s: 1} if schema["type"] == "object" else s
        text = c.serialize(value)
        valid = jsonschema.Draft202012Validator(schema).is_valid(value)
        assert c.grammar.check(text) == valid, (schema, text)


_CACHE: dict[str, JsonSchema] = {}


def _compiled(schema_json: str) -> JsonSchema:
    if schema_json not in _CACHE:
        _CACHE[schema_json] = JsonSchema(json.loads(schema_json))
    return _CACHE[schema_json]


def test_end_checks_name_what_the_grammar_leaves_out():
    c = JsonSchema(
        {"type": "object", "properties": {"t": {"type": "array", "uniqueItems": True}}, "additionalProperties": False}
    )
    assert c.end_checks == ("uniqueItems at /properties/t", "duplicate property names in free-form objects")
    assert c.grammar.check('{"t":[1,1]}') and not c.check('{"t":[1,1]}') and c.check('{"t":[1,2]}')
    exact = JsonSchema(
        {
            "type": "object",
            "properties": {"a": {"type": "integer", "minimum": 0}},
            "required": ["a"],
            "additionalProperties": False,
        }
    )
    assert exact.end_checks == ()
    assert "duplicate property names at /" in JsonSchema({"type": "object"}).end_checks
    assert not JsonSchema({"type": "object"}).check('{"a":1,"a":2}')


def test_finished_values_of_a_prefix():
    from genlab.constraints.json_schema.prefix import finished_values

    assert finished_values('{"a":[1,2],"b":"x\\"]","c":3') == [
        (("a", 0), "1"),
        (("a", 1), "2"),
        (("a",), "[1,2]"),
        (("b",), '"x\\"]"'),
    ]
    assert finished_values('[{"k": [true]}, "s", nul') == [
        ((0, "k", 0), "true"),
        ((0, "k"), "[true]"),
        ((0,), '{"k": [true]}'),
        ((1,), '"s"'),
    ]


def test_prefix_checks_catch_finished_values_early():
    c = JsonSchema(
        {
            "type": "object",
            "properties": {
                "t": {"type": "array", "uniqueItems": True},
                "u": {"anyOf": [{"type": "array", "maxItems": 1, "items": {"not": {"const": 0}}}, {"type": "string"}]},
            },
        }
    )
    assert not c.check_prefix('{"t":[1,1]')
    assert c.check_prefix('{"t":[1,1') and c.check_prefix('{"t":[1,2],"u":[1')
    assert c.check_prefix('{"t":[],"u":[0') and not c.check_prefix('{"t":[],"u":[0,')  # 0 is finished by ","
    assert not c.check_prefix('{"t":[],"u":[1,2]')
    assert not c.check_prefix('{"t":[],"a":1,"a"')  # a duplicate key, as soon as it is written
    assert not c.check_prefix('{"t":[],"a":1,"a":2}')
    assert JsonSchema({"type": "integer"}).check_prefix("12")  # exact grammars need no early check


def test_whitespace_and_property_order_policies():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "array"}},
        "required": ["a", "b"],
    }
    value = {"a": 1, "b": [1, {"c": 2}]}
    compact = JsonSchema(schema)
    assert compact.check(json.dumps(value, separators=(",", ":")))
    assert not compact.check(json.dumps(value))
    flexible = JsonSchema(schema, whitespace="flexible", max_whitespace=8)
    for text in (json.dumps(value), json.dumps(value, indent=2), " " + json.dumps(value) + "\n"):
        assert flexible.check(text), text
    assert not flexible.check(json.dumps(value, indent=8))  # 9 whitespace characters in one place
    assert not compact.check('{"b":[],"a":1}')
    any_order = JsonSchema(schema, property_order="any")
    assert any_order.check('{"b":[],"a":1}') and any_order.check('{"a":1,"b":[]}')
    assert any_order.grammar.check('{"b":[]}') and not any_order.check('{"b":[]}')  # required: the end check
    with pytest.raises(ValueError):
        JsonSchema(schema, whitespace="pretty")


@pytest.mark.parametrize(
    "schema, pointer, match",
    [
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "/properties/a/type", "unknown type"),
        ({"type": "object", "properties": {"a": {"minimum": "3"}}}, "/properties/a/minimum", "finite number"),
        ({"type": "integer", "minimum": 5, "maximum": 3}, "/", "range is empty"),
        ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "/", "required property 'a'"),
        ({"type": "string", "minLength": 3, "maxLength": 2}, "/", "minLength 3 > maxLength 2"),
        ({"$ref": "#/$defs/missing"}, "/$ref", "names nothing"),
        ({"$ref": "https://example.com/s.json"}, "/$ref", "remote references"),
        ({"type": "string", "pattern": "(unclosed"}, "/pattern", "invalid pattern"),
        (
            {
                "$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}},
                "$ref": "#/$defs/n",
            },
            "/",
            "no finite value",
        ),
        ("{not json", "/", "not valid JSON"),
    ],
)
def test_bad_schemas_raise_with_their_pointer(schema, pointer, match):
    with pytest.raises(SchemaError, match=match) as info:
        JsonSchema(schema)
    assert info.value.pointer in (pointer, "" if pointer == "/" else pointer)


def test_unknown_keywords_and_formats_are_annotations_unless_strict():
    """The default (strict=False) ignores them with a warning; strict=True refuses them (more in
    test_json_schema_annotations.py)."""
    schema = {"type": "string", "format": "color", "x-ui": {"widget": "picker"}}
    with pytest.raises(SchemaError, match="unknown"):
        JsonSchema(schema, strict=True)
    with pytest.warns(genlab.SchemaAnnotationWarning, match="'color'"):
        c = JsonSchema(schema)
    assert c.check('"red"')


def test_huge_schema_fails_fast_with_a_clear_error():
    props = {f"field_{i}": {"type": "integer", "minimum": i} for i in range(20_000)}
    t = time.perf_counter()
    with pytest.raises(SchemaError, match="too large"):
        JsonSchema({"type": "object", "properties": props}, max_states=20_000)
    assert time.perf_counter() - t < 60


def test_deep_nesting_is_refused_cleanly():
    schema: dict = {"type": "integer"}
    for _ in range(5000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaError, match="nested too deeply"):
        JsonSchema(schema)


def test_mask_equals_brute_force():
    tok, vocab = tokenizer_and_vocab("smollm2")
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "email": {"type": "string", "format": "email"},
            "tags": {"type": "array", "items": {"enum": ["x", "yz"]}},
            "score": {"type": "number"},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    matcher = JsonSchema(schema).compile(vocab)
    text = '{"name":"Zoë \\"Z\\"","age":42,"email":"zoe@mail.example.org","tags":["yz","x"],"score":-1.5e3}'
    ids = tok.encode(text, add_special_tokens=False)
    state, states = matcher.start(), [matcher.start()]
    for t in ids:
        assert matcher.allows(state, t), vocab.token_bytes[t]
        state = matcher.advance(state, t)
        states.append(state)
    assert matcher.is_final(state)
    for state in states[:: max(1, len(states) // 8)] + [states[-1]]:
        assert np.array_equal(matcher.mask(state), brute_force_mask(matcher, state))


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
def test_bounded_strings_mask_equals_brute_force_at_every_position(name):
    """Inside strings of bounded length the mask starts from the short string-content tokens and skips their
    subtrees (`slice_reach`); inside unbounded ones it takes them all and walks the trie of the other tokens
    (`outside_trie`): every position against brute force, long tokens (Qwen2's) included."""
    tok, vocab = tokenizer_and_vocab(name)
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "maxLength": 40},
            "b": {"type": "string", "minLength": 3, "maxLength": 6},
            "c": {"type": "string"},
        },
        "required": ["a", "b", "c"],
    }
    matcher = JsonSchema(schema).compile(vocab)
    text = '{"a":"The quick brown fox jumps over the dog","b":"été!","c":"a \\"quoted\\" word, 日本"}'
    state = matcher.start()
    for t in tok.encode(text, add_special_tokens=False):
        assert np.array_equal(matcher.mask(state), brute_force_mask(matcher, state))
        state = matcher.advance(state, t)
    assert matcher.is_final(state)


def test_pydantic_models_in_and_out():
    pydantic = pytest.importorskip("pydantic", reason="pydantic is a test extra")

    class Address(pydantic.BaseModel):
        city: str
        zip: str = pydantic.Field(pattern=r"^[0-9]{5}$")

    class Person(pydantic.BaseModel):
        name: str
        age: int = pydantic.Field(ge=0)
        address: Address | None = None

    c = JsonSchema(Person)
    person = Person(name="Ann", age=3, address=Address(city="Oslo", zip="01234"))
    text = c.serialize(person)
    assert text == '{"name":"Ann","age":3,"address":{"city":"Oslo","zip":"01234"}}'
    assert c.check(text) and c.parse(text) == person
    assert not c.check('{"name":"Ann","age":-1}') and not c.check(
        '{"name":"Ann","age":3,"address":{"city":"O","zip":"1234"}}'
    )


def _maskbench_rows(n: int):
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "maskbench-dev.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here (it lives in ../shared beside the checkout)")
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    random.Random(7).shuffle(rows)
    return rows[:n]


def test_maskbench_sample():
    """A fixed sample of real schemas: all compile (unknown keywords ignored by default), no valid instance is
    rejected (nor any prefix of it by the early checks) and no invalid one accepted. `benchmarks/jsonschema_bench.py`
    runs the whole set."""
    rows = _maskbench_rows(120)
    failed, wrong = [], []
    for row in rows:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", genlab.SchemaAnnotationWarning)
                c = JsonSchema(row["schema"])
        except genlab.GenlabError as e:
            failed.append((row["id"], str(e)[:100]))
            continue
        for case in row["tests"]:
            text = c.serialize(case["data"])
            if c.check(text) != case["valid"]:
                wrong.append((row["id"], case["valid"], text[:100]))
            cuts = range(0, len(text) + 1, max(1, len(text) // 8))
            if case["valid"] and not all(c.check_prefix(text[:k]) for k in cuts):  # early checks stay sound
                wrong.append((row["id"], "prefix", text[:100]))
    assert len(failed) <= 3, failed
    assert not wrong, wrong


@pytest.fixture(scope="module")
def lm():
    from genlab.models import load

    return load(device="cpu")


GENERATION = [
    (
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "hobbies": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 12},
                    "maxItems": 3,
                    "uniqueItems": True,
                },
            },
            "required": ["name", "age", "hobbies"],
            "additionalProperties": False,
        },
        "Describe a person as JSON with name, age and hobbies.",
    ),
    (
        {
            "type": "object",
            "properties": {
                "color": {"enum": ["red", "green", "blue"]},
                "hex": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
            },
            "required": ["color", "hex"],
            "additionalProperties": False,
        },
        "Pick a color and give its hex code, as JSON.",
    ),
    (
        {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}, "minItems": 2, "maxItems": 4},
        "A JSON array of a few small numbers:",
    ),
]


@pytest.mark.parametrize("schema, prompt", GENERATION, ids=["person", "color", "digits"])
@pytest.mark.parametrize("method", ["mask", "smc"])
def test_generated_outputs_validate(lm, method, schema, prompt):
    """Every finished output is judged as jsonschema judges it; where the grammar is exact (no end checks), every
    finished output is valid."""
    c = JsonSchema(schema)
    result = genlab.generate(
        lm, [{"role": "user", "content": prompt}], c, method=method, n_particles=4, max_tokens=40, seed=0
    )
    assert result.end_checks == c.end_checks
    done = 0
    for sample, parsed in zip(result.samples, result.parsed):
        if sample.complete:
            value = json.loads(sample.text)
            assert sample.valid == jsonschema.Draft202012Validator(schema).is_valid(value), sample.text
            assert sample.valid or c.end_checks, sample.text
            if sample.valid:
                done += 1
                assert parsed == value
            else:
                assert sample.log_weight == -np.inf
    assert done >= 1
