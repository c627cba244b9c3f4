"""The HTTP layer of `genlab serve`: OpenAI's routes and response shapes over an `Engine` (FastAPI on uvicorn).

`POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, `GET /health`. Errors are OpenAI's
`{"error": {"message", "type", "param", "code"}}`, never a traceback. Streams are server-sent events as OpenAI
sends them: masking streams its tokens as they are drawn; SMC sends its answer once it is chosen.
"""

from __future__ import annotations

import asyncio
import codecs
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.errors import GenlabError
from genlab.serve.engine import Cancelled, Engine, Handle, Outcome, cut_at_stop, genlab_field
from genlab.serve.protocol import Job, RequestError, parse_chat, parse_completion

log = logging.getLogger("genlab.serve")
DISCONNECT_POLL = 0.25  # seconds between checks that a waiting client is still there


def create_app(engine: Engine, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `engine`'s model; `api_key`: every /v1 route then needs `Authorization: Bearer`."""
    app = FastAPI(title="genlab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        body = RequestError(str(err.detail), status=err.status_code, kind=kind).body()
        return JSONResponse(body, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("request failed")
        body = RequestError(f"internal error ({type(err).__name__})", status=500, kind="server_error").body()
        return JSONResponse(body, status_code=500)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if api_key is not None and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                err = RequestError("incorrect or missing API key", status=401, code="invalid_api_key")
                return JSONResponse(err.body(), status_code=401)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.name, "running": engine.shared.members}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": engine.name, "object": "model", "created": 0, "owned_by": "genlab"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        job = parse_chat(await _body(request), engine.limits)
        return await _respond(engine, request, job)

    @app.post("/v1/completions")
    async def completions(request: Request):
        job = parse_completion(await _body(request), engine.limits)
        return await _respond(engine, request, job)

    return app


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(f"the request body is not valid JSON: {err}") from None


async def _respond(engine: Engine, request: Request, job: Job):
    if job.stream:
        return await _stream(engine, request, job)
    handle = await run_in_threadpool(engine.submit, job)
    outcome = await _wait(handle, request)
    return JSONResponse(_response(engine, job, outcome))


async def _wait(handle: Handle, request: Request) -> Outcome:
    """The handle's outcome; the run is cancelled if the client disconnects first."""
    future = asyncio.wrap_future(handle.future)
    while True:
        done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL)
        if done:
            break
        if await request.is_disconnected():
            handle.cancel()
    try:
        return future.result()
    except Cancelled as err:
        raise RequestError(str(err), status=504, kind="timeout_error", code="timeout") from None
    except (GenlabError, ValueError) as err:  # what the request asked cannot run (e.g. ids outside the vocabulary)
        raise RequestError(f"{type(err).__name__}: {err}") from None


def _ids(job: Job) -> tuple[str, int]:
    prefix = "chatcmpl" if job.chat else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time())


def _usage(outcome: Outcome) -> dict[str, int]:
    completion = sum(c.tokens for c in outcome.choices)
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": outcome.prompt_tokens + completion,
    }


def _response(engine: Engine, job: Job, outcome: Outcome) -> dict[str, Any]:
    rid, created = _ids(job)
    choices: list[dict[str, Any]] = []
    for i, c in enumerate(outcome.choices):
        if job.chat:
            message = {"role": "assistant", "content": c.text, "refusal": None}
            choices.append({"index": i, "message": message, "finish_reason": c.finish_reason, "logprobs": None})
        else:
            choices.append({"index": i, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None})
    return {
        "id": rid,
        "object": "chat.completion" if job.chat else "text_completion",
        "created": created,
        "model": engine.name,
        "choices": choices,
        "usage": _usage(outcome),
        "genlab": genlab_field(outcome),
    }


class _Streams:
    """What a stream has sent of each choice: text deltas of the drawn tokens, held back while they could be the
    start of a stop string, cut at a stop string."""

    def __init__(self, job: Job, vocab, n: int):
        self.job = job
        self.vocab = vocab
        self.text = [""] * n  # decoded so far
        self.sent = [""] * n
        self.read = [0] * n  # tokens of each row decoded so far
        self.skipped = [0] * n  # of healing's bytes, those already dropped
        self.stopped = [False] * n
        self.decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(n)]
        self.hold = max((len(s) for s in job.stop), default=1) - 1

    def tokens(self, rows: list[tuple[int, ...]], skip: int) -> list[tuple[int, str]]:
        """New deltas (choice index, text) from the rows' tokens so far, whose first `skip` bytes are healing's."""
        out = []
        for i, row in enumerate(rows[: len(self.sent)]):
            if self.stopped[i]:
                continue
            data = self.vocab.decode(list(row[self.read[i] :]))  # only the tokens drawn since the last call
            self.read[i] = len(row)
            drop = min(len(data), skip - self.skipped[i])
            self.skipped[i] += drop
            self.text[i] += self.decoders[i].decode(data[drop:])
            text, cut = cut_at_stop(self.text[i], self.job.stop)
            # a stop string that is still being written could start in the last `hold` characters
            end = len(text) if cut else max(len(self.sent[i]), len(text) - self.hold)
            ready = text[len(self.sent[i]) : end]
            self.stopped[i] = cut
            self.sent[i] += ready
            if ready:
                out.append((i, ready))
        return out

    def finish(self, i: int, text: str) -> list[tuple[int, str]]:
        """The rest of choice i, given its final text (which the sent deltas are a prefix of)."""
        if self.stopped[i] or not text.startswith(self.sent[i]):
            return []
        rest = text[len(self.sent[i]) :]
        self.sent[i] = text
        return [(i, rest)] if rest else []

    @property
    def all_stopped(self) -> bool:
        return all(self.stopped)


async def _stream(engine: Engine, request: Request, job: Job) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    by_token = job.method in ("mask", "greedy")  # SMC's answer is known only at the end

    def on_tokens(rows: list[tuple[int, ...]]) -> None:
        loop.call_soon_threadsafe(events.put_nowait, ("tokens", rows))

    handle = await run_in_threadpool(engine.submit, job, on_tokens if by_token else None)
    handle.future.add_done_callback(lambda f: loop.call_soon_threadsafe(events.put_nowait, ("done", f)))
    rid, created = _ids(job)
    streams = _Streams(job, engine.lm.vocab, job.n)

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        kind = "chat.completion.chunk" if job.chat else "text_completion"
        body = {"id": rid, "object": kind, "created": created, "model": engine.name, "choices": choices, **extra}
        return f"data: {json.dumps(body)}\n\n"

    def delta(i: int, text: str | None = None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
        if job.chat:
            d: dict[str, Any] = {} if text is None else {"content": text}
            if role:
                d["role"] = "assistant"
            return {"index": i, "delta": d, "finish_reason": finish, "logprobs": None}
        return {"index": i, "text": text or "", "finish_reason": finish, "logprobs": None}

    async def events_out() -> AsyncIterator[str]:
        try:
            if job.chat:
                yield chunk([delta(i, "", role=True) for i in range(job.n)])
            while True:
                kind, value = await events.get()
                if kind == "tokens":
                    out = streams.tokens(value, len(handle.healed))
                    if out:
                        yield chunk([delta(i, text) for i, text in out])
                    if streams.all_stopped:
                        handle.cancel()
                    continue
                try:
                    outcome = value.result()
                except Cancelled:
                    if not streams.all_stopped:
                        raise
                    outcome = None
                if outcome is None:  # every choice hit a stop string: nothing more to draw
                    yield chunk([delta(i, None, "stop") for i in range(job.n)])
                else:
                    for i, c in enumerate(outcome.choices):
                        rest = streams.finish(i, c.text)
                        reason = "stop" if streams.stopped[i] else c.finish_reason
                        yield chunk([delta(i, rest[0][1] if rest else None, reason)])
                    if job.include_usage:
                        yield chunk([], usage=_usage(outcome), genlab=genlab_field(outcome))
                    else:
                        yield chunk([], genlab=genlab_field(outcome))
                yield "data: [DONE]\n\n"
                return
        except Cancelled as err:
            body = RequestError(str(err), status=504, kind="timeout_error", code="timeout").body()
            yield f"data: {json.dumps(body)}\n\n"
        except RequestError as err:
            yield f"data: {json.dumps(err.body())}\n\n"
        except (GenlabError, ValueError) as err:
            yield f"data: {json.dumps(RequestError(f'{type(err).__name__}: {err}').body())}\n\n"
        except Exception as err:  # noqa: BLE001 - the stream already started: the error goes in it
            log.exception("streamed request failed")
            body = RequestError(f"internal error ({type(err).__name__})", status=500, kind="server_error").body()
            yield f"data: {json.dumps(body)}\n\n"
        finally:
            handle.cancel()  # a client that went away frees its rows at the run's next step

    return StreamingResponse(events_out(), media_type="text/event-stream")
