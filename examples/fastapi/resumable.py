# /// script
# requires-python = ">=3.11"
# dependencies = ["sse-llm[fastapi,redis]", "uvicorn>=0.30"]
# ///
"""The chat demo in its resumable mode: an answer outlives a dropped connection.

Run it from the repository root, then open http://127.0.0.1:8000::

    .venv/bin/uvicorn --app-dir examples/fastapi resumable:app

Each answer is produced by a :class:`~sse_llm.resume.StreamHub` apart from the request that
reads it. The page reads it with ``EventSource``, which reconnects by itself after a network
cut and sends the ``Last-Event-ID`` it saw last: the server replays what it missed, exactly
once, then the live rest. Stop cancels through the hub, whichever worker produces the answer.

- ``REDIS_URL`` (``redis://127.0.0.1:6379``): events in Redis, so that several workers
  (``--workers 2``, or processes behind a proxy) can each serve a reconnect or a Stop. Without
  it, events stay in this process (one worker).
- ``SSE_LLM_FAKE_DELAY``: seconds between the fake model's tokens (default 0.05).
- ``CHAT_HOOK_LOG``: a file that gets one line per finished answer (``<pid> <reason>``), for
  the tests.

Endpoints: ``GET /`` the page; ``POST /api/chat`` ``{"prompt"}`` starts an answer and returns
``{"stream_id"}``; ``GET /api/streams/{stream_id}`` reads it (``Last-Event-ID`` resumes);
``POST /api/streams/{stream_id}/stop`` cancels it. Every response carries ``x-worker`` (the
process id), so a reconnect's worker can be seen. A stream id is a bearer capability: a real
app checks that the user may read it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sse_llm import GracefulShutdown, StreamResult
from sse_llm.fastapi import LastEventID, ResumeResponse
from sse_llm.resume import MemoryStore, RedisStore, StreamHub, StreamStore
from sse_llm.testing import FakeLLM

PAGE = Path(__file__).resolve().parent / "resumable.html"


def make_store() -> tuple[StreamStore, Callable[[], Awaitable[None]] | None]:
    url = os.environ.get("REDIS_URL")
    if not url:
        return MemoryStore(), None
    import redis.asyncio

    # Every reader waiting for the next event holds a connection: more than the default 100.
    client = redis.asyncio.Redis.from_url(url, max_connections=1000)
    return RedisStore(client), client.aclose


store, close_store = make_store()
hub = StreamHub(store, keep=300, abandon_after=120)
llm = FakeLLM(delay=float(os.environ.get("SSE_LLM_FAKE_DELAY", "0.05")))


def record(result: StreamResult) -> None:
    """The completion hook: a real app saves the answer here (sync hooks are fine too)."""
    log = os.environ.get("CHAT_HOOK_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {result.reason}\n")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub:
        yield
    if close_store is not None:
        await close_store()


api = FastAPI(lifespan=lifespan)


class Ask(BaseModel):
    prompt: str = Field(min_length=1, max_length=4000)


@api.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGE)


@api.post("/api/chat")
async def chat(ask: Ask) -> dict[str, str]:
    return {"stream_id": await hub.start(llm.stream(ask.prompt), on_complete=record)}


@api.get("/api/streams/{stream_id}")
async def read(stream_id: str, last_event_id: LastEventID = None) -> ResumeResponse:
    position = last_event_id or stream_id
    if not hub.recognizes(position) or not position.startswith(stream_id):
        raise HTTPException(400, "Last-Event-ID of another stream")
    return ResumeResponse(hub, position)


@api.post("/api/streams/{stream_id}/stop")
async def stop(stream_id: str) -> dict[str, bool]:
    return {"stopped": await hub.cancel(stream_id)}


def with_worker_header(app: ASGIApp) -> ASGIApp:
    """Every response names the process that served it (plain ASGI: a streaming response
    passes through untouched)."""
    worker = (b"x-worker", str(os.getpid()).encode())

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), worker]
            await send(message)

        await app(scope, receive, send_with_worker)

    return wrapped


# GracefulShutdown: at SIGTERM every reader gets its final event and the producers of this
# worker store theirs, so a reconnect elsewhere is answered as the README says.
app = GracefulShutdown(with_worker_header(api))
