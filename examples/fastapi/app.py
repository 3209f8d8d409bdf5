# /// script
# requires-python = ">=3.11"
# # From a clone, sse-llm comes from the repository: `pip install -e . --group demo`.
# dependencies = ["sse-llm[fastapi,html,openai]", "uvicorn>=0.30"]
# ///
"""The sse-llm chat demo on FastAPI.

Run it from the repository root, then open http://127.0.0.1:8000::

    .venv/bin/uvicorn --app-dir examples/fastapi app:app

With no configuration the answers come from the embedded fake model
(:class:`sse_llm.testing.FakeLLM`: Korean, Markdown and an emoji, one token every 30 ms, after
a pretend web search, citing three sources).
With ``OPENAI_API_KEY`` set they come from any OpenAI-compatible server: ``OPENAI_BASE_URL``
(Ollama, vLLM, LM Studio ...) and ``SSE_LLM_MODEL`` (default ``gpt-4o-mini``). The variables
are read at every request.

Endpoints:

- ``GET /``: the chat page (``examples/_shared/chat.html`` and ``chat.js``): the answer's
  Markdown rendered and sanitised in the browser (marked + DOMPurify, vendored in
  ``examples/_vendor/markdown`` and served from ``/static/vendor/``), the sources listed under
  it, a "Searching the web…" line while the provider runs a tool.
- ``POST /api/chat`` with ``{"prompt": "..."}``: the answer as server-sent events, read by the
  page with ``fetch``. Events: ``delta`` ``{"text"}``, ``reasoning``, ``tool_call``,
  ``source``, ``tool_activity``, then ``done`` or ``error``
  (:class:`sse_llm.NamedEventsFormat`).
- ``GET /api/chat?prompt=...``: the same stream for ``EventSource``.
- ``GET /api/echo?prompt=...``: the ``@sse`` decorator on an async generator view.
- ``GET|POST /api/endpoint?prompt=...``: an ``SSEEndpoint`` (an ASGI app) given a route, not a
  mount (a mount would answer ``/api/endpoint?prompt=`` with a 307 redirect first).
- ``/htmx/``: the same chat with htmx 4 and no JavaScript of ours (``htmx_app.py``): Markdown
  rendered and sanitised on the server, streamed as HTML fragments; ``/htmx/htmx2`` is the
  htmx 2 + ``htmx-ext-sse`` variant.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import Request

from sse_llm import CompletionHook, Source, StreamResult
from sse_llm.fastapi import SSEEndpoint, SSEResponse, sse
from sse_llm.testing import DEFAULT_ACTIVITY, DEFAULT_SOURCES, FakeLLM, tokenize

if TYPE_CHECKING:
    from openai import AsyncOpenAI

SHARED = Path(__file__).resolve().parent.parent / "_shared"
VENDOR = Path(__file__).resolve().parent.parent / "_vendor" / "markdown"
MAX_PROMPT = 4000  # characters
DEFAULT_MODEL = "gpt-4o-mini"

logger = logging.getLogger("sse_llm.demo")


class ChatRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)


def log_answer(result: StreamResult) -> None:
    """The default completion hook: where an app would save the answer, even a cut one."""
    logger.info("answer %s after %d characters", result.reason, len(result.text))


def demo_model() -> FakeLLM:
    """The fake model of the demos: one token every 30 ms, after a pretend web search (shown
    as "Searching the web…" for 0.8 s), citing three sources at the end."""
    return FakeLLM(delay=0.03, activity=DEFAULT_ACTIVITY, sources=DEFAULT_SOURCES)


async def _failed(exc: Exception) -> AsyncIterator[Any]:
    """A source that raises ``exc``: the pump turns it into the stream's ``error`` event."""
    raise exc
    yield  # an async generator, never reached


def create_app(
    *,
    fake: FakeLLM | None = None,
    env: Mapping[str, str] | None = None,
    on_complete: CompletionHook | None = log_answer,
) -> FastAPI:
    """Build the demo app.

    Args:
        fake: the model used when no ``OPENAI_API_KEY`` is set (default: :func:`demo_model`).
        env: where to read ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL``;
            ``os.environ`` (at each request) by default.
        on_complete: the completion hook of ``/api/chat`` streams.
    """
    fake = fake if fake is not None else demo_model()
    # One OpenAI client per (key, base URL): it keeps a connection pool across requests.
    clients: dict[tuple[str, str | None], AsyncOpenAI] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in clients.values():
            await client.close()

    app = FastAPI(title="sse-llm demo", lifespan=lifespan)

    async def answer(prompt: str) -> Source:
        """The stream answering ``prompt``: the fake model, or the configured OpenAI server."""
        config = os.environ if env is None else env
        api_key = config.get("OPENAI_API_KEY")
        if not api_key:
            return fake.stream(prompt)
        import openai  # only needed when a real model is configured

        base_url = config.get("OPENAI_BASE_URL") or None
        client = clients.get((api_key, base_url))
        if client is None:
            client = clients[api_key, base_url] = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url
            )
        try:
            # The SDK stream goes to SSEResponse as is: sse-llm recognises its chunks, and
            # closes it (and so the upstream request) when the browser goes away.
            return await client.chat.completions.create(
                model=config.get("SSE_LLM_MODEL") or DEFAULT_MODEL,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.APIError as exc:
            # Refused before streaming (bad key, unknown model, server down): answer with an
            # SSE error event carrying the provider's message, which the page shows.
            return _failed(exc)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(SHARED / "chat.html")

    @app.post("/api/chat", response_class=SSEResponse)
    async def chat(body: ChatRequest) -> SSEResponse:
        """The answer to ``prompt``, streamed; read by the page with fetch."""
        return SSEResponse(await answer(body.prompt), on_complete=on_complete)

    @app.get("/api/chat", response_class=SSEResponse)
    async def chat_get(
        prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT)],
    ) -> SSEResponse:
        """The same stream for ``EventSource``, which can only GET."""
        return SSEResponse(await answer(prompt), on_complete=on_complete)

    @app.get("/api/echo")
    @sse(heartbeat=10)
    async def echo(
        prompt: Annotated[str, Query(max_length=MAX_PROMPT)] = "안녕하세요, sse-llm!",
    ) -> AsyncIterator[str]:
        """The decorator: an async generator view, its parameters still validated by FastAPI."""
        for token in tokenize(prompt):
            yield token
            await anyio.sleep(0.05)

    async def endpoint(request: Request) -> Source:
        """The endpoint's handler: takes the request, returns a source."""
        return fake.stream(request.query_params.get("prompt", "")[:MAX_PROMPT])

    app.add_route("/api/endpoint", SSEEndpoint(endpoint), methods=["GET", "POST"])
    # Before /static: the more specific mount must come first to be matched.
    app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")
    app.mount("/static", StaticFiles(directory=SHARED), name="static")
    app.mount("/htmx", _htmx_module().create_app(fake=fake, env=env, on_complete=on_complete))
    return app


def _htmx_module() -> ModuleType:
    """``htmx_app.py`` beside this file, loaded by path: this demo runs as a script or through
    ``uvicorn --app-dir``, and ``examples/`` is not a package."""
    spec = importlib.util.spec_from_file_location(
        "sse_llm_demo_htmx_app", Path(__file__).with_name("htmx_app.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
