"""`genlab serve` end to end: the official `openai` client against the server on loopback, outputs checked by
independent oracles (`jsonschema`, `re`, Lark, `sqlite3`), a bounded load test, disconnects, and bad requests."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from enum import Enum

import pytest

try:  # the openai client's HTTP library: httpx2 in openai >= 3, httpx before
    import httpx2 as httpx
except ImportError:
    import httpx  # type: ignore[no-redef]
import jsonschema
import lark
import openai
import uvicorn
from pydantic import BaseModel
from tiny_models import tiny_llama

from genlab.constraints.grammar import GRAMMARS_DIR
from genlab.serve import Engine, Limits, create_app
from genlab.serve.protocol import Job, RequestError, parse_chat

KEY = "test-key"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


class Color(str, Enum):
    red = "red"
    green = "green"


class Pick(BaseModel):
    color: Color
    ok: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An app on a loopback port, in a thread, for the length of a test module."""

    def __init__(self, engine: Engine, api_key: str | None):
        self.engine = engine
        self.port = _free_port()
        config = uvicorn.Config(create_app(engine, api_key=api_key), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.engine.close()

    def idle(self, timeout: float = 30) -> bool:
        """Whether every request has finished and left the pooled batch within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.engine._admitted == 0 and self.engine.shared.members == 0:
                return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "CREATE TABLE sale (item_id INTEGER REFERENCES item(id), qty INTEGER);"
        "INSERT INTO item VALUES (1, 'pen', 1.5), (2, 'ink', 4.0); INSERT INTO sale VALUES (1, 3), (2, 1);"
    )
    con.commit()
    con.close()
    return path


@pytest.fixture(scope="module")
def server(database):
    engine = Engine(
        tiny_llama(attention="sdpa"),
        name="tiny",
        databases={"shop": database},
        limits=Limits(max_tokens=256, default_max_tokens=48),
        concurrency=8,
        queue=64,
    )
    srv = Server(engine, KEY)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def _chat(client, **kwargs):
    kwargs.setdefault("model", "tiny")
    kwargs.setdefault("messages", [{"role": "user", "content": "Answer:"}])
    return client.chat.completions.create(**kwargs)


def _explains(database, query: str) -> bool:
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        con.execute("EXPLAIN " + query)
        return True
    except sqlite3.Error:
        return False
    finally:
        con.close()


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


@pytest.mark.parametrize("method", ["mask", "smc"])
def test_json_schema_response_format(client, method):
    out = _chat(
        client,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
        extra_body={"genlab": {"method": method, "n_particles": 4} if method == "smc" else {"method": method}},
        max_tokens=60,
        seed=1,
        n=2,
    )
    assert len(out.choices) == 2
    for choice in out.choices:
        if choice.finish_reason == "stop":
            jsonschema.validate(json.loads(choice.message.content), PERSON)
        else:
            assert choice.finish_reason == "length"
    extra = out.model_extra["genlab"]
    assert extra["method"].startswith(method) and extra["counts"]["model_calls"] >= 1 and extra["posterior"]
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_json_object(client):
    out = _chat(
        client,
        response_format={"type": "json_object"},
        max_tokens=40,
        seed=3,
        extra_body={"genlab": {"method": "mask"}},
    )
    choice = out.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)
    else:
        assert choice.message.content.startswith("{")


def test_parse_with_a_pydantic_model(client):
    out = client.chat.completions.parse(
        model="tiny", messages=[{"role": "user", "content": "Pick:"}], response_format=Pick, max_tokens=40, seed=0
    )
    parsed = out.choices[0].message.parsed
    assert isinstance(parsed, Pick)
    assert Pick.model_validate_json(out.choices[0].message.content) == parsed


@pytest.mark.parametrize(
    "kind, value",
    [
        ("regex", r"[a-z]{2,5}-[0-9]{1,3}"),
        ("choice", ["yes", "no", "not sure (ask again)"]),
        ("json", json.dumps(PERSON)),
        ("grammar", "arithmetic"),
        ("grammar", 'start: "(" NUM ")" | NUM\nNUM: /[0-9]+/\n'),
        ("sql", "shop"),
    ],
)
@pytest.mark.parametrize("method", ["mask", "smc"])
def test_structured_outputs(client, database, kind, value, method):
    options = {"method": method} | ({"critic": True} if kind == "sql" and method == "smc" else {})
    out = _chat(
        client,
        extra_body={"structured_outputs": {kind: value}, "genlab": options},
        max_tokens=48,
        seed=5,
        n=2 if method == "smc" else 1,
    )
    for choice in out.choices:
        text = choice.message.content
        if choice.finish_reason == "length":  # cut short: reported, not checked
            assert out.model_extra["genlab"]["statuses"]
            continue
        if kind == "regex":
            assert re.fullmatch(value, text)
        elif kind == "choice":
            assert text in value
        elif kind == "json":
            jsonschema.validate(json.loads(text), PERSON)
        elif kind == "grammar":
            grammar = (GRAMMARS_DIR / f"{value}.lark").read_text() if "\n" not in value else value
            lark.Lark(grammar, start="start").parse(text)
        else:
            assert _explains(database, text), text


def test_completions_endpoint(client):
    out = client.completions.create(
        model="tiny",
        prompt="The code is ",
        max_tokens=12,
        seed=2,
        extra_body={"structured_outputs": {"regex": "[0-9]{4}"}},
    )
    choice = out.choices[0]
    assert choice.finish_reason == "stop" and re.fullmatch("[0-9]{4}", choice.text)
    assert out.model_extra["genlab"]["healed"] == " "  # the trailing space was healed: outputs start after it


def test_stream_equals_the_same_seeded_request(client):
    body = dict(extra_body={"structured_outputs": {"regex": r"[a-z ]{10,40}\."}, "genlab": {"method": "mask"}})
    whole = _chat(client, max_tokens=40, seed=11, **body)
    chunks = list(_chat(client, max_tokens=40, seed=11, stream=True, stream_options={"include_usage": True}, **body))
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for d in deltas if d) > 3  # token by token, not one piece
    assert "".join(deltas) == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_healed_stream_leaves_the_healed_bytes_out(client):
    """Healing backs off the prompt's trailing space: the stream, like the whole response, starts after it."""
    body = dict(model="tiny", prompt="The code is ", max_tokens=12, seed=2)
    body["extra_body"] = {"structured_outputs": {"regex": "[0-9]{4}"}, "genlab": {"method": "mask"}}
    whole = client.completions.create(**body)
    chunks = list(client.completions.create(stream=True, **body))
    assert whole.model_extra["genlab"]["healed"] == " "
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text


def test_smc_stream_sends_the_chosen_answer(client):
    chunks = list(
        _chat(
            client, stream=True, max_tokens=10, seed=4, extra_body={"structured_outputs": {"choice": ["alpha", "beta"]}}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in ("alpha", "beta")


def test_stop_strings(client):
    body = dict(extra_body={"structured_outputs": {"regex": r"(ab|cd)x(ab|cd)x(ab|cd)"}, "genlab": {"method": "mask"}})
    out = _chat(client, max_tokens=20, seed=0, stop=["x"], **body)
    assert out.choices[0].message.content in ("ab", "cd") and out.choices[0].finish_reason == "stop"
    chunks = list(_chat(client, max_tokens=20, seed=0, stop="x", stream=True, **body))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == out.choices[0].message.content


def test_load_64_requests_8_at_a_time(server, client, database):
    specs = [
        ({"regex": r"[0-9]{3}"}, lambda t: re.fullmatch(r"[0-9]{3}", t)),
        ({"choice": ["left", "right"]}, lambda t: t in ("left", "right")),
        (
            {
                "json": {
                    "type": "object",
                    "properties": {"k": {"type": "boolean"}},
                    "required": ["k"],
                    "additionalProperties": False,
                }
            },
            lambda t: isinstance(json.loads(t)["k"], bool),
        ),
        ({"sql": "shop"}, lambda t: _explains(database, t)),
    ]

    def one(i: int):
        spec, check = specs[i % len(specs)]
        method = "mask" if i % 2 else "smc"
        out = _chat(
            client, max_tokens=40, seed=i, extra_body={"structured_outputs": spec, "genlab": {"method": method}}
        )
        choice = out.choices[0]
        assert choice.finish_reason == "length" or check(choice.message.content), (spec, choice.message.content)
        return out.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(64)))
    assert len(set(ids)) == 64
    assert server.idle()
    assert server.engine.shared.most_members > 1  # concurrent requests shared forwards


def test_a_client_that_disconnects_mid_stream_frees_its_rows(server):
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Go"}],
        "max_tokens": 256,
        "stream": True,
        "structured_outputs": {"regex": "[a-z]{250,300}"},
        "genlab": {"method": "mask"},
    }
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST", server.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        while server.engine.shared.members == 0:  # the run is in the pool
            time.sleep(0.01)
    assert server.idle(), "the cancelled run kept its rows"


BAD = [
    (
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "object", "minProperties": "x"}},
            },
        },
        400,
        "minProperties",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"regex": "(a"}},
        400,
        "missing ), unterminated subpattern",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"grammar": "no_such_grammar"}},
        400,
        "no shipped grammar",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"sql": "nope"}},
        400,
        "unknown database 'nope'",
    ),
    (
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"sql": "/tmp/shop.sqlite"}},
        400,
        "never by a path",
    ),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 0}, 400, "'n'"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "temperature"),
    ({"messages": "hello"}, 400, "messages"),
    ({"model": "tiny"}, 400, "'messages' is required"),
    ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, 400, "logprobs"),
    ({"messages": [{"role": "user", "content": "x"}], "genlab": {"method": "magic"}}, 400, "unknown method"),
    (
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"regex": "a", "choice": ["b"]}},
        400,
        "one constraint",
    ),
    ({"messages": [{"role": "user", "content": "x"}], "genlab": {"critic": True}}, 400, "critic"),
]


@pytest.mark.parametrize("body, status, needle", BAD)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server, client, body, status, needle):
    response = httpx.post(
        server.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and needle in error["message"]
    assert "Traceback" not in response.text
    out = _chat(client, max_tokens=5, extra_body={"structured_outputs": {"regex": "[0-9]"}})
    assert re.fullmatch("[0-9]", out.choices[0].message.content)


def test_a_prompt_the_model_cannot_read_is_a_400(server, client):
    with pytest.raises(openai.BadRequestError, match="outside"):
        client.completions.create(model="tiny", prompt=[5, 10**7], max_tokens=3)
    assert server.idle()


def test_malformed_json_and_wrong_key(server):
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(server.url + "/v1/chat/completions", content=b"{not json", headers=auth)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        response = httpx.post(server.url + "/v1/chat/completions", json={"messages": []}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        _chat(client, max_tokens=3)


def test_constraints_are_compiled_once_per_spec(server):
    engine = server.engine
    job = parse_chat(
        {"messages": [{"role": "user", "content": "x"}], "structured_outputs": {"regex": "q+"}}, engine.limits
    )
    assert engine.constraint(job.spec) is engine.constraint(job.spec)


def test_a_full_queue_answers_429_and_a_deadline_504():
    engine = Engine(tiny_llama(attention="sdpa"), name="tiny", concurrency=1, queue=0, timeout=600)
    limits = engine.limits
    release = threading.Event()
    job = parse_chat({"messages": [{"role": "user", "content": "x"}], "genlab": {"method": "mask"}}, limits)
    first = engine.submit(job, on_tokens=lambda rows: release.wait(30))
    with pytest.raises(RequestError) as err:
        engine.submit(job)
    assert err.value.status == 429
    release.set()
    first.future.result(timeout=60)
    engine.timeout = 0.0
    srv = Server(engine, None)
    try:
        response = httpx.post(
            srv.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, timeout=60
        )
        assert response.status_code == 504 and "deadline" in response.json()["error"]["message"]
    finally:
        srv.stop()


def test_parse_checks_types_before_anything_runs():
    limits = Limits()
    job = parse_chat(
        {
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ],
            "temperature": 0,
        },
        limits,
    )
    assert isinstance(job, Job) and job.method == "greedy" and job.prompt == [{"role": "system", "content": "ab"}]
    for body in (
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "x"}], "seed": -1},
        {"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
        {"messages": [{"role": "user", "content": "x"}], "top_p": 0.5},
        {"messages": [{"role": "user", "content": "x"}], "frobnicate": 1},
    ):
        with pytest.raises(RequestError):
            parse_chat(body, limits)
