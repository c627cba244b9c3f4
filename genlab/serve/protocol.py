"""OpenAI-style request bodies to `Job`s, and bad requests to `RequestError`s with OpenAI's error shape.

Constraints come from `response_format` (OpenAI's structured outputs: `json_schema`, `json_object`) or from the
`structured_outputs` extra body that vLLM and SGLang accept (exactly one of `json`, `regex`, `choice`, `grammar`,
and genlab's `sql`: a database the server was started with, by name). genlab's own options ride in a `genlab`
object. Fields that would change the output but that genlab does not implement (`logprobs`, `tools`, penalties,
`top_p` < 1, ...) are refused, not ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from genlab.generate import METHODS

# fields of either endpoint that change nothing genlab produces (bookkeeping, or OpenAI account features)
IGNORED = frozenset(
    {"model", "user", "store", "metadata", "service_tier", "stream_options", "prompt_cache_key", "safety_identifier"}
)
# fields accepted only at their neutral value: anything else would be silently ignored otherwise
NEUTRAL: dict[str, Any] = {
    "top_p": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "logprobs": None,
    "top_logprobs": None,
    "logit_bias": None,
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "parallel_tool_calls": None,
    "echo": False,
    "suffix": None,
    "best_of": 1,
}
OPTIONS = {"method", "n_particles", "critic", "heal", "drafts"}  # the `genlab` object's keys
MAX_N = 16
MAX_STOPS = 4


class RequestError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error body."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    """What a server allows one request."""

    max_tokens: int = 1024  # cap on a request's max_tokens
    default_max_tokens: int = 256
    max_particles: int = 64
    method: str = "smc"  # when the request names none
    n_particles: int = 4


@dataclass
class Job:
    """One request, checked: the prompt (chat messages or text or ids), the constraint's spec (a hashable key the
    server compiles and caches) and the sampling options."""

    chat: bool
    prompt: Any
    spec: tuple[str, str] | None  # (kind, JSON text of the value); None: free text
    method: str
    n: int
    n_particles: int
    max_tokens: int
    temperature: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    critic: bool
    heal: bool | None
    drafts: bool | None
    options: dict[str, Any] = field(default_factory=dict)


def parse_chat(body: Any, limits: Limits) -> Job:
    """A `/v1/chat/completions` body."""
    body = _object(body, None)
    messages = body.get("messages")
    if messages is None:
        raise RequestError("'messages' is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of messages", param="messages")
    prompt = [_message(m, i) for i, m in enumerate(messages)]
    return _job(body, limits, chat=True, prompt=prompt, extra={"messages", "response_format", "max_completion_tokens"})


def parse_completion(body: Any, limits: Limits) -> Job:
    """A `/v1/completions` body: `prompt` is text, or a list of token ids, or a list holding one of those."""
    body = _object(body, None)
    if "prompt" not in body:
        raise RequestError("'prompt' is required", param="prompt", code="missing_required_parameter")
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
            raise RequestError(
                "'prompt' must be a string or a non-empty list of token ids (one prompt per request)", param="prompt"
            )
    elif not isinstance(prompt, str) or not prompt:
        raise RequestError("'prompt' must be a non-empty string", param="prompt")
    return _job(body, limits, chat=False, prompt=prompt, extra={"prompt", "response_format"})


def _job(body: dict, limits: Limits, *, chat: bool, prompt: Any, extra: set[str]) -> Job:
    known = IGNORED | set(NEUTRAL) | extra
    known |= {"max_tokens", "temperature", "seed", "stop", "n", "stream", "structured_outputs", "genlab"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", param=unknown[0], code="unknown_parameter")
    for name, neutral in NEUTRAL.items():
        value = body.get(name, neutral)
        if value is not None and value != neutral and not (name == "parallel_tool_calls" and isinstance(value, bool)):
            raise RequestError(f"genlab does not support {name!r} (got {value!r})", param=name, code="unsupported")
    options = _object(body.get("genlab", {}), "genlab")
    bad = sorted(set(options) - OPTIONS)
    if bad:
        raise RequestError(
            f"unknown genlab option {bad[0]!r}; options: {', '.join(sorted(OPTIONS))}", param=f"genlab.{bad[0]}"
        )
    method = options.get("method", limits.method)
    if method not in METHODS:
        raise RequestError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}", param="genlab.method")
    temperature = _number(body, "temperature", 1.0, low=0.0, high=2.0)
    if temperature == 0:  # the most likely output, OpenAI's reading of temperature 0: greedy masking
        method = "greedy"
    n = _integer(body, "n", 1, low=1, high=MAX_N)
    default_particles = n if method in ("mask", "rerank", "greedy") else max(limits.n_particles, n)
    n_particles = _integer(options, "n_particles", default_particles, low=1, high=limits.max_particles, prefix="genlab")
    if method in ("mask", "rerank", "greedy") and n_particles != n:
        raise RequestError(f"with method {method!r}, n is the number of samples: leave n_particles out")
    if method == "greedy" and n != 1:
        raise RequestError("temperature 0 (greedy) gives one output: n must be 1", param="n")
    token_field = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = _integer(body, token_field, limits.default_max_tokens, low=1, high=limits.max_tokens)
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise RequestError("'seed' must be a non-negative integer", param="seed")
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise RequestError(f"'stop' must be a non-empty string or a list of at most {MAX_STOPS}", param="stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", param="stream")
    stream_options = _object(body.get("stream_options") or {}, "stream_options")
    critic = options.get("critic", False)
    heal = options.get("heal")
    drafts = options.get("drafts")
    for name, value in (("critic", critic), ("heal", heal), ("drafts", drafts)):
        if value is not None and not isinstance(value, bool):
            raise RequestError(f"'genlab.{name}' must be a boolean", param=f"genlab.{name}")
    spec = _constraint(body)
    if critic and (spec is None or spec[0] != "sql"):
        raise RequestError("'genlab.critic' scores SQL on its database: it needs a structured_outputs sql constraint")
    if critic and method not in ("smc", "smc-mask", "awrs"):
        raise RequestError(f"'genlab.critic' needs an SMC method, not {method!r}", param="genlab.critic")
    return Job(
        chat=chat,
        prompt=prompt,
        spec=spec,
        method=method,
        n=n,
        n_particles=n_particles,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stops,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage", False)),
        critic=bool(critic),
        heal=heal,
        drafts=drafts,
    )


def _constraint(body: dict) -> tuple[str, str] | None:
    """(kind, value as canonical JSON) from `response_format` or `structured_outputs`; None for free text."""
    found: list[tuple[str, Any]] = []
    fmt = body.get("response_format")
    if fmt is not None:
        fmt = _object(fmt, "response_format")
        kind = fmt.get("type")
        if kind == "json_schema":
            spec = _object(fmt.get("json_schema"), "response_format.json_schema")
            if "schema" not in spec:
                raise RequestError("'response_format.json_schema.schema' is required", param="response_format")
            found.append(("json", spec["schema"]))
        elif kind == "json_object":
            found.append(("json", {"type": "object"}))
        elif kind != "text":
            raise RequestError(
                f"'response_format.type' must be 'text', 'json_object' or 'json_schema', got {kind!r}",
                param="response_format.type",
            )
    structured = _object(body.get("structured_outputs", {}), "structured_outputs")
    kinds = ("json", "regex", "choice", "grammar", "sql")
    bad = sorted(set(structured) - set(kinds))
    if bad:
        raise RequestError(
            f"unknown structured_outputs key {bad[0]!r}; use one of {', '.join(kinds)}",
            param=f"structured_outputs.{bad[0]}",
        )
    found += [(k, structured[k]) for k in kinds if k in structured]
    if len(found) > 1:
        raise RequestError("give one constraint: response_format or one structured_outputs key, not several")
    if not found:
        return None
    kind, value = found[0]
    param = f"structured_outputs.{kind}"
    if kind == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise RequestError(f"the JSON Schema is not valid JSON: {err}", param=param) from None
        if not isinstance(value, (dict, bool)):
            raise RequestError("a JSON Schema must be an object (or a boolean)", param=param)
    elif kind == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            raise RequestError("'choice' must be a non-empty list of strings", param=param)
    elif not isinstance(value, str) or not value:
        raise RequestError(f"'{kind}' must be a non-empty string", param=param)
    return kind, json.dumps(value, sort_keys=True)


def _message(message: Any, i: int) -> dict[str, str]:
    param = f"messages[{i}]"
    message = _object(message, param)
    role = message.get("role")
    if role not in ("system", "developer", "user", "assistant"):
        raise RequestError(f"{param}.role must be system, developer, user or assistant, got {role!r}", param=param)
    content = message.get("content")
    if isinstance(content, list):  # content parts: text only
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"{param}.content: only text parts are supported", param=param)
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise RequestError(f"{param}.content must be a string", param=param)
    return {"role": "system" if role == "developer" else role, "content": content}


def _object(value: Any, param: str | None) -> dict:
    if not isinstance(value, dict):
        where = f"'{param}'" if param else "the request body"
        raise RequestError(f"{where} must be a JSON object", param=param)
    return value


def _integer(body: dict, name: str, default: int, *, low: int, high: int, prefix: str = "") -> int:
    value = body.get(name, default)
    if value is None:
        value = default
    param = f"{prefix}.{name}" if prefix else name
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f"'{param}' must be an integer", param=param)
    if not low <= value <= high:
        raise RequestError(f"'{param}' must be between {low} and {high}, got {value}", param=param)
    return value


def _number(body: dict, name: str, default: float, *, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise RequestError(f"'{name}' must be a number", param=name)
    if not low <= value <= high:
        raise RequestError(f"'{name}' must be between {low} and {high}, got {value}", param=name)
    return float(value)


def choice_pattern(choices: list[str]) -> str:
    """A regex whose language is exactly the given strings."""
    return "|".join(re.escape(c) for c in choices)
