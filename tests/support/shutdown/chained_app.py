"""Apps whose stop signal passes through more than one handler of the app's own, for
tests/test_shutdown.py. ``CHAIN=nested``: a sub-app wrapped in ``GracefulShutdown`` mounted in
an app wrapped in another; ``CHAIN=app-handler``: one ``GracefulShutdown``, and the app's
lifespan puts a SIGTERM handler of its own in front, which calls the one it replaced (as
metrics flushers do). The lifespan, that handler and the streams' hooks write what ran to
``HOOK_LOG`` (see common.py); ``/stream`` and ``/sub/stream`` never end by themselves."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from sse_llm import GracefulShutdown
from sse_llm.starlette import SSEResponse
from tests.support.shutdown.common import hook, record, tokens

CHAIN = os.environ.get("CHAIN", "nested")


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def stream(request: Request) -> SSEResponse:
    return SSEResponse(tokens(), on_complete=hook)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if CHAIN == "app-handler":
        previous = signal.getsignal(signal.SIGTERM)

        def flush_metrics(sig: int, frame: FrameType | None) -> None:
            record("app's handler")
            if callable(previous):
                previous(sig, frame)

        signal.signal(signal.SIGTERM, flush_metrics)
    yield
    record("lifespan shutdown")


sub: Any = Starlette(routes=[Route("/", ping), Route("/stream", stream)])
if CHAIN == "nested":
    sub = GracefulShutdown(sub)
routes = [Route("/ping", ping), Route("/stream", stream), Mount("/sub", sub)]
app = GracefulShutdown(Starlette(routes=routes, lifespan=lifespan))
