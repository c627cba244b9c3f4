"""JsonSchema's default policies: unknown keywords and formats are annotations (ignored, warned about, listed;
`strict=True` refuses them), and integers are written as integers (`28`, never `28.0` or `2.8e1`, though `28.0`
validates). Oracle: jsonschema on the schema with the unknown keywords and formats taken out."""

from __future__ import annotations

import json
import warnings

import jsonschema
import pytest
from conftest import tokenizer_and_vocab

import genlab
from genlab import JsonSchema, SchemaAnnotationWarning, SchemaError

# a schema as found in the wild (Kubernetes CRDs, OpenAPI): unknown keywords and formats at several depths
WILD = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "copyright": "ACME",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999, "readonly": True},
        "data": {"type": "string", "format": "byte", "_format": "base64"},
        "home": {"type": "string", "format": "url", "maxLength": 12},
        "when": {"type": "string", "format": "ISO 8601"},
        "link": {"type": "string", "self": {"href": "x"}},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2},
    },
    "required": ["id"],
    "additionalProperties": False,
}
WILD_ANNOTATIONS = (
    "unknown keyword 'x-kubernetes-preserve-unknown-fields' at /x-kubernetes-preserve-unknown-fields",
    "unknown keyword 'copyright' at /copyright",
    "unknown keyword 'readonly' at /properties/id/readonly",
    "unknown keyword '_format' at /properties/data/_format",
    "unknown format 'byte' at /properties/data/format",
    "unknown format 'url' at /properties/home/format",
    "unknown format 'ISO 8601' at /properties/when/format",
    "unknown keyword 'self' at /properties/link/self",
)
# the same schema without them: what the default must accept, exactly
CLEAN = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999},
        "data": {"type": "string"},
        "home": {"type": "string", "maxLength": 12},
        "when": {"type": "string"},
        "link": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2},
    },
    "required": ["id"],
    "additionalProperties": False,
}
TEXTS = [
    '{"id":5}',
    '{"id":0}',
    '{"id":1000}',
    '{"data":"x"}',
    '{"id":5,"data":"not base64!!"}',
    '{"id":5,"home":"not a url"}',
    '{"id":5,"home":"' + "x" * 13 + '"}',
    '{"id":5,"when":"yesterday"}',
    '{"id":5,"when":7}',
    '{"id":5,"link":"s"}',
    '{"id":5,"link":{"href":"x"}}',
    '{"id":5,"extra":1}',
    '{"id":5,"tags":["a","bb"]}',
    '{"id":5,"tags":["abcd"]}',
    '{"id":5,"tags":["a","b","c"]}',
    '{"id":42,"data":"AAEC","home":"example.org","when":"2024-01-01","link":"me","tags":[]}',
]


def _compile_recording(schema, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = JsonSchema(schema, **kwargs)
    return c, [w for w in caught if issubclass(w.category, SchemaAnnotationWarning)]


def _matcher_accepts(matcher, tok, text: str) -> bool:
    state = matcher.start()
    for t in tok.encode(text, add_special_tokens=False):
        if not matcher.allows(state, t):
            return False
        state = matcher.advance(state, t)
    return matcher.is_final(state)


# --- unknown keywords and formats -----------------------------------------------------------------------------


def test_default_ignores_them_with_exactly_one_warning_that_lists_them():
    c, caught = _compile_recording(WILD)
    assert len(caught) == 1
    message = str(caught[0].message)
    for line in WILD_ANNOTATIONS:
        assert line in message, line
    assert caught[0].message.annotations == WILD_ANNOTATIONS
    assert caught[0].filename == __file__  # points at the caller's line
    assert c.annotations == WILD_ANNOTATIONS
    with pytest.warns(SchemaAnnotationWarning):
        assert JsonSchema(WILD, strict=False).annotations == WILD_ANNOTATIONS  # the default is strict=False
    again, caught = _compile_recording(WILD)  # once per schema compiled
    assert len(caught) == 1


def test_a_long_list_is_cut_in_the_warning_and_whole_in_describe():
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer", "x-note": i} for i in range(40)}}
    c, caught = _compile_recording(schema)
    message = str(caught[0].message)
    assert "ignored 40 unknown keyword(s)" in message and "and 28 more (`describe()` lists them all)" in message
    assert message.count("unknown keyword 'x-note'") == 12
    assert len(caught[0].message.annotations) == 40 and len(c.describe()["annotations"]) == 40


def test_describe_lists_them():
    c, _ = _compile_recording(WILD)
    assert c.describe()["annotations"] == list(WILD_ANNOTATIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a schema without any: no warning
        clean = JsonSchema(CLEAN)
    assert clean.describe()["annotations"] == [] and clean.annotations == ()


def test_language_is_that_of_the_schema_without_them():
    tok, vocab = tokenizer_and_vocab("smollm2")
    c, _ = _compile_recording(WILD)
    clean = JsonSchema(CLEAN)
    assert c.end_checks == clean.end_checks == ()  # both exact: the grammar alone decides
    wild_matcher, clean_matcher = c.compile(vocab), clean.compile(vocab)
    validator = jsonschema.Draft202012Validator(CLEAN)
    verdicts = []
    for text in TEXTS:
        valid = validator.is_valid(json.loads(text))
        verdicts.append(valid)
        assert _matcher_accepts(wild_matcher, tok, text) == valid, text
        assert _matcher_accepts(clean_matcher, tok, text) == valid, text
        assert c.grammar.check(text) == clean.grammar.check(text) == valid, text
        assert c.check(text) == valid and c.validate(text) == valid, text
    assert 3 <= sum(verdicts) <= len(TEXTS) - 3  # the texts probe both sides


@pytest.mark.parametrize(
    "schema, pointer, name",
    [
        (WILD, "/x-kubernetes-preserve-unknown-fields", "keyword 'x-kubernetes-preserve-unknown-fields'"),
        ({"items": {"maxItem": 3}}, "/items/maxItem", "keyword 'maxItem'"),
        ({"properties": {"a": {"type": "integer", "readonly": True}}}, "/properties/a/readonly", "keyword 'readonly'"),
        ({"properties": {"x": {"type": "string", "format": "color"}}}, "/properties/x/format", "format 'color'"),
        ({"type": "string", "format": "ISO 8601"}, "/format", "format 'ISO 8601'"),
    ],
)
def test_strict_refuses_them_naming_keyword_and_location(schema, pointer, name):
    with pytest.raises(SchemaError, match=f"unknown {name}") as info:
        JsonSchema(schema, strict=True)
    assert info.value.pointer == pointer
    assert f"at {pointer} (JSON pointer)" in str(info.value)


@pytest.mark.parametrize(
    "schema, match",
    [
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "unknown type"),
        ({"$ref": "https://example.com/s.json"}, "remote references"),
        ({"type": "string", "format": "date", "minLength": 3, "maxLength": 2}, "minLength 3 > maxLength 2"),
    ],
)
def test_the_default_loosens_nothing_else(schema, match):
    with pytest.raises(SchemaError, match=match):
        JsonSchema(schema)


# --- integers as integers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer"},
        {"type": "integer", "minimum": 0, "maximum": 100},
        {"type": "integer", "exclusiveMinimum": 5, "multipleOf": 7},
        {"type": ["integer", "null"], "maximum": 1000},
        {"type": "integer", "enum": [1, 28, 30]},
        {"enum": [28, "a"]},
        {"const": 28},
        {"allOf": [{"type": "integer"}, {"minimum": 3}]},
        {"anyOf": [{"type": "integer", "maximum": 50}, {"type": "string"}]},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "integer", "minimum": 1},
    ],
)
def test_integer_language_has_no_fraction_nor_exponent(schema):
    tok, vocab = tokenizer_and_vocab("smollm2")
    c = JsonSchema(schema)
    matcher = c.compile(vocab)
    assert c.grammar.check("28") and _matcher_accepts(matcher, tok, "28")
    for text in ("28.0", "28.00", "1e3", "2.8e1", "28E0", "-0.0"):
        assert not c.grammar.check(text), text
        assert not _matcher_accepts(matcher, tok, text), text
    assert c.validate("28.0")  # but 28.0 is a valid instance: JSON Schema counts it as an integer (draft 6 on)
    assert c.serialize(28.0) == "28" and c.check(c.serialize(28.0))


def test_validate_accepts_whole_floats_as_integers():
    c = JsonSchema({"type": "integer"})
    assert c.validate("1.0") and c.validate("1") and not c.validate("1.5")
    assert not c.check("1.0") and c.check("1")
    draft4 = JsonSchema({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"})
    assert not draft4.validate("1.0")  # draft 4: 1.0 is not an integer
    assert draft4.serialize(1.0) == "1.0" and not draft4.check(draft4.serialize(1.0))


def test_numbers_keep_their_fractions():
    c = JsonSchema(
        {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "x": {"type": "number"}, "m": {"type": "number", "multipleOf": 2}},
        }
    )
    assert c.serialize({"n": 28.0, "x": 28.0, "m": 4.0}) == '{"n":28,"x":28.0,"m":4.0}'
    for text in ('{"n":28,"x":28.0,"m":4.0}', '{"n":28,"x":28,"m":4}', '{"x":2.8e1}'):
        assert c.check(text), text
    assert not c.grammar.check('{"n":28.0}') and c.validate('{"n":28.0}')


def test_pydantic_int_fields_parse_as_ints_in_strict_mode():
    pydantic = pytest.importorskip("pydantic", reason="pydantic is a test extra")

    class Count(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True)  # a float such as 28.0 is refused for an int field
        label: str
        count: int = pydantic.Field(ge=0, le=10_000_000_000)
        ratio: float

    c = JsonSchema(Count)
    assert c.check('{"label":"a","count":28,"ratio":0.5}')
    assert not c.grammar.check('{"label":"a","count":28.0,"ratio":0.5}')
    assert not c.grammar.check('{"label":"a","count":1234567890.0,"ratio":0.5}')
    value = c.parse(c.serialize({"label": "a", "count": 28.0, "ratio": 1.0}))
    assert type(value.count) is int and value.count == 28 and value.ratio == 1.0


@pytest.fixture(scope="module")
def lm():
    from genlab.models import load

    return load(device="cpu")


def test_generated_integers_are_ints(lm):
    pydantic = pytest.importorskip("pydantic", reason="pydantic is a test extra")

    class Reading(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True, extra="forbid")  # strict: 28.0 is no int
        celsius: int
        count: int

    prompt = [
        {
            "role": "user",
            "content": "Give the temperature as a decimal with one digit after the point, like "
            "28.0, and a count like 1234567890.0, as JSON.",
        }
    ]
    result = genlab.generate(lm, prompt, Reading, method="mask", n_particles=4, max_tokens=24, seed=0)
    assert any(result.complete)
    for sample, parsed in zip(result.samples, result.parsed):
        if sample.complete:
            value = json.loads(sample.text)  # no 28.0, no 1e3
            assert type(value["celsius"]) is int and type(value["count"]) is int, sample.text
            assert isinstance(parsed, Reading) and type(parsed.celsius) is int and type(parsed.count) is int
