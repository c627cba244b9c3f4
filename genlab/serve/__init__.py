"""`genlab serve`: an OpenAI-compatible HTTP server whose outputs are guaranteed to match the request's constraint.

Needs the `serve` extra (`pip install 'genlab[serve]'`: FastAPI and uvicorn). `serve(...)` runs it; `create_app`
and `Engine` build it in-process (tests, embedding in another app).
"""

from __future__ import annotations

from pathlib import Path

from genlab.serve.engine import Engine
from genlab.serve.protocol import Limits, RequestError

__all__ = ["Engine", "Limits", "RequestError", "create_app", "serve"]


def create_app(engine: Engine, *, api_key: str | None = None):
    """The FastAPI app of `engine` (see `genlab.serve.app`)."""
    from genlab.serve.app import create_app as build

    return build(engine, api_key=api_key)


def serve(
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    databases: dict[str, str | Path] | None = None,
    limits: Limits | None = None,
    concurrency: int = 8,
    queue: int = 64,
    timeout: float = 600.0,
    device: str | None = None,
) -> None:
    """Load `model` (a known name, a folder, or None for the default) and serve it until interrupted."""
    import uvicorn

    from genlab.models import load
    from genlab.models.loading import DEFAULT_MODEL

    lm = load(model, device=device)
    engine = Engine(
        lm,
        name=Path(model).name if model else DEFAULT_MODEL,
        databases=databases,
        limits=limits,
        concurrency=concurrency,
        queue=queue,
        timeout=timeout,
    )
    try:
        uvicorn.run(create_app(engine, api_key=api_key), host=host, port=port, log_level="info")
    finally:
        engine.close()
