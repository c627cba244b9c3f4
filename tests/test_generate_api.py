"""`genlab.generate`'s conveniences (a (model, tokenizer) pair, a regex string, a Pydantic class, a progress hook)
and how a `GenerationResult` shows itself: text and HTML tables, `to_dict`, and `plot`."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import jsonschema
import pytest
from pydantic import BaseModel, ConfigDict, Field

import genlab
from genlab.models import load
from genlab.samplers.result import Counts, GenerationResult, Sample

PHONE = r" ?[0-9]{3}-[0-9]{4}"


@pytest.fixture(scope="module")
def lm():
    return load(device="cpu")


def test_model_pair_and_regex_string(lm, monkeypatch):
    calls = []
    monkeypatch.setattr(genlab.models.HFModel, "__init__", _spy(genlab.models.HFModel.__init__, calls))
    pair = genlab.generate(
        (lm.model, lm.tokenizer), "Call me at", PHONE, method="mask", n_particles=3, max_tokens=12, seed=0
    )
    assert len(calls) == 1  # the pair was wrapped, not reloaded
    wrapped = genlab.generate(
        lm, "Call me at", genlab.Regex(PHONE), method="mask", n_particles=3, max_tokens=12, seed=0
    )
    assert pair.texts == wrapped.texts and pair.log_weights == wrapped.log_weights
    assert all(re.fullmatch(PHONE, s.text) for s in pair.samples if s.complete) and any(pair.complete)


def _spy(init, calls):
    def wrapper(self, *args, **kwargs):
        calls.append(args)
        init(self, *args, **kwargs)

    return wrapper


class City(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=16)
    population: int = Field(ge=0)


def test_pydantic_class_constraint(lm):
    prompt = [{"role": "user", "content": "Paris as JSON with its population."}]
    result = genlab.generate(lm, prompt, City, method="smc", n_particles=3, max_tokens=24, seed=0)
    schema = City.model_json_schema()
    assert any(result.complete)
    for sample, value in zip(result.samples, result.parsed):
        if sample.complete:
            jsonschema.validate(json.loads(sample.text), schema)
            assert isinstance(value, City) and value == City.model_validate_json(sample.text)
    dumped = result.to_dict()["parsed"]
    assert [v if v is None else City(**v) for v in dumped] == result.parsed


def test_bad_constraint_type(lm):
    with pytest.raises(TypeError, match="Constraint, a regex string, a JSON Schema dict or a Pydantic model class"):
        genlab.generate(lm, "x", 42)


def test_progress_hook(lm):
    seen = []
    for method in ("smc", "mask", "rerank"):
        seen.clear()
        genlab.generate(
            lm,
            "Call me at",
            PHONE,
            method=method,
            n_particles=2,
            max_tokens=10,
            seed=0,
            heal=False,  # healing adds the tokens it backs off to the steps
            progress=lambda step, running: seen.append((step, running)),
        )
        steps = [s for s, _ in seen]
        assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 10, (method, seen)
        assert all(0 <= r <= 2 for _, r in seen)
        assert seen[-1][1] == 0 or len(steps) == 10  # stopped because every row finished, or at max_tokens


def _made_up() -> GenerationResult:
    """Five samples with known weights: ' red.' twice, ' grey.' once, one incomplete, one invalid."""
    samples = [
        Sample((1,), b" red.", math.log(0.3), True),
        Sample((2,), b" grey.", math.log(0.2), True),
        Sample((1,), b" red.", math.log(0.5), True),
        Sample((3,), b" blu", math.log(0.9), False),
        Sample((4,), b" <bad>", -math.inf, True, valid=False),
    ]
    return GenerationResult(
        "smc-awrs",
        samples,
        Counts(model_calls=6, checks=40, masks=0, tokens=20, wall_time=0.5),
        ess_history=[5.0, 4.0, 2.5, 3.0],
    )


def test_distinct_table_and_repr():
    result = _made_up()
    rows = result.distinct()
    assert [(r.text, r.status, r.count) for r in rows] == [
        (" red.", "complete", 2),
        (" grey.", "complete", 1),
        (" blu", "incomplete", 1),
        (" <bad>", "invalid", 1),
    ]
    assert [round(r.weight, 6) for r in rows] == [0.8, 0.2, 0.0, 0.0]
    text = str(result)
    assert text == repr(result)
    lines = text.splitlines()
    assert lines[0] == "GenerationResult(smc-awrs, 5 samples, 4 distinct outputs)"
    assert re.fullmatch(r"\s*0\.800\s+2\s+complete\s+' red\.'", lines[2])
    assert re.fullmatch(r"\s*0\.000\s+1\s+invalid\s+' <bad>'", lines[5])
    expected = math.log((0.3 + 0.2 + 0.5) / 5)  # mean weight, incomplete and invalid counting 0
    assert lines[-1] == (
        f"log P(constraint) estimate {expected:.3f}; ESS {1 / (0.3**2 + 0.2**2 + 0.5**2):.1f} of 5; "
        "6 model calls (0 rows), 40 checks, 0 masks, 20 tokens, 0.50 s"
    )
    html = result._repr_html_()
    assert html.count("<tr>") == 5 and "&#x27; &lt;bad&gt;&#x27;" in html and "0.800" in html


def test_to_dict_is_json():
    out = json.loads(json.dumps(_made_up().to_dict(), allow_nan=False))
    assert out["log_weights"][4] is None and out["valid"] == [True, True, True, True, False]
    assert out["complete"] == [True, True, True, False, True]
    assert [round(p, 6) for p in out["posterior"]] == [0.3, 0.2, 0.5, 0.0, 0.0]
    assert math.isclose(out["log_marginal"], math.log(0.2))
    unweighted = GenerationResult("unweighted-awrs", _made_up().samples)
    assert unweighted.to_dict()["log_marginal"] is None and "n/a" in unweighted.summary()


def test_plot(tmp_path):
    import matplotlib  # the test extra installs it (for users it is the optional extra genlab[plot])

    matplotlib.use("Agg")
    result = _made_up()
    path = tmp_path / "result.png"
    fig = result.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars, ess = fig.axes
    assert [round(p.get_width(), 6) for p in bars.patches] == [0.8, 0.2, 0.0, 0.0]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["' red.'", "' grey.'", "' blu'", "' <bad>'"]
    assert list(ess.lines[0].get_ydata()) == [5.0, 4.0, 2.5, 3.0]


def test_masking_ess_curve():
    samples = [Sample((1, 2), b"ab", math.log(0.5), True), Sample((1,), b"a", math.log(0.5), True)]
    result = GenerationResult("mask", samples, step_log_z=[[0.0, math.log(0.5)], [math.log(0.5)]])
    # step 1: weights (1, 0.5) -> ESS 1.5^2 / 1.25; step 2: (0.5, 0.5) -> 2
    assert result.ess_curve() == pytest.approx([2.0, 1.5**2 / 1.25, 2.0])


def test_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'genlab[plot]'")):
        _made_up().plot()


def test_generate_stays_the_function_after_its_module_is_imported():
    """`from genlab.generate import generate` (as the CLI does) before `genlab.generate` is first read used to
    leave the module where the function belongs."""
    code = (
        "from genlab.generate import generate\nimport genlab.generate\nimport genlab\n"
        "assert genlab.generate is generate, genlab.generate\nprint('ok')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_drafts_default_per_method_and_same_outputs(lm):
    """Drafts are on by default where `DRAFTS_BY_DEFAULT` says (masking) and off elsewhere; on or off, the seeded
    outputs are the same."""
    from genlab.generate import DRAFTS_BY_DEFAULT

    assert DRAFTS_BY_DEFAULT == {"mask"}
    prompt = "My order number is 48213. Repeat it: order"
    regex = r" [0-9]{5}\."
    default = genlab.generate(lm, prompt, regex, method="mask", n_particles=2, max_tokens=10, seed=1)
    off = genlab.generate(lm, prompt, regex, method="mask", n_particles=2, max_tokens=10, seed=1, drafts=False)
    assert default.counts.drafts_proposed > 0 and off.counts.drafts_proposed == 0
    assert default.token_ids == off.token_ids
    # without healing: the healed " order" lets SMC's two particles take two tokenizations of it, two rows, and
    # SMC drafts only while its particles share one row
    smc_default = genlab.generate(lm, prompt, regex, n_particles=2, max_tokens=10, seed=1, heal=False)
    smc_on = genlab.generate(lm, prompt, regex, n_particles=2, max_tokens=10, seed=1, drafts=True, heal=False)
    assert smc_default.counts.drafts_proposed == 0 and smc_on.counts.drafts_proposed > 0
    assert smc_default.token_ids == smc_on.token_ids
    rerank_off = genlab.generate(lm, prompt, regex, method="rerank", n_particles=2, max_tokens=10, seed=1)
    rerank_on = genlab.generate(lm, prompt, regex, method="rerank", n_particles=2, max_tokens=10, seed=1, drafts=True)
    assert rerank_off.counts.drafts_proposed == 0 and rerank_on.token_ids == rerank_off.token_ids


def test_best_ranked_and_unweighted_views(lm):
    """`ranked`: distinct finished outputs as values, heaviest first (`parsed` is in sample order); `best` its
    first; `unweighted()`: each finished sample counts once, as masking's users read its outputs."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"]}
    result = genlab.generate(
        lm, "A JSON object with one digit n:", schema, method="mask", n_particles=6, max_tokens=16, seed=2
    )
    ranked = result.ranked
    assert ranked, result
    weights = [w for _, w in ranked]
    assert weights == sorted(weights, reverse=True) and sum(weights) == pytest.approx(1.0)
    texts = result.text_posterior()
    assert [json.loads(t) for t in texts] == [value for value, _ in ranked]
    assert result.best == ranked[0][0] and json.loads(result.best_text) == result.best
    flat = result.unweighted()
    finished = [s.text for s in result.samples if s.complete and s.valid]
    assert flat.text_posterior() == pytest.approx({t: finished.count(t) / len(finished) for t in set(finished)})
    assert not flat.weighted and flat.texts == result.texts
    empty = genlab.generate(lm, "Count:", r"[0-9]{40}", method="mask", n_particles=1, max_tokens=2, seed=0)
    assert empty.best is None and empty.best_text is None and empty.ranked == []
