"""A Starlette app streaming with SSEResponse, wrapped in GracefulShutdown (the one line)."""

from __future__ import annotations

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from sse_llm import GracefulShutdown
from sse_llm.starlette import SSEResponse
from sse_llm.websocket import LLMWebSocket
from tests.support.shutdown.common import collector_state, hook, sync_tokens, tokens


async def stream(request: Request) -> SSEResponse:
    return SSEResponse(tokens(), on_complete=hook)


async def sync_stream(request: Request) -> SSEResponse:
    return SSEResponse(sync_tokens(), on_complete=hook)


def short_answer(message: object) -> list[str]:
    """The WebSocket's answer: three tokens, then the socket sits idle."""
    return ["one ", "two ", "three"]


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def collector(request: Request) -> PlainTextResponse:
    """The garbage collector's state after ``?wait=`` seconds: a request that is no stream,
    which a stopping uvicorn waits for, so the process is still there after the streams
    ended."""
    await anyio.sleep(float(request.query_params.get("wait", "0")))
    return PlainTextResponse(collector_state())


routes = [
    Route("/stream", stream),
    Route("/sync", sync_stream),
    Route("/ping", ping),
    Route("/gc", collector),
    WebSocketRoute("/ws", LLMWebSocket(short_answer, on_complete=hook)),
    # With a shutdown= signal of its own as well (one the app never sets here).
    WebSocketRoute(
        "/ws-own-signal",
        LLMWebSocket(short_answer, on_complete=hook, shutdown=anyio.Event()),
    ),
]
#: Without the one line: what a server does by itself.
plain = Starlette(routes=routes)
app = GracefulShutdown(plain)
#: The garbage collector runs again 0.5 s after the streams ended, if the process is still there.
short_drain = GracefulShutdown(plain, drain_timeout=0.5)
#: The garbage collector left alone.
gc_untouched = GracefulShutdown(plain, pause_gc=False)
