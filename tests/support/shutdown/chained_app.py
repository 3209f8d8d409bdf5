"""Apps whose stop signal passes through more than one handler of the app's own, for
tests/test_shutdown.py. ``CHAIN=nested``: a sub-app wrapped in ``GracefulShutdown`` mounted in
an app wrapped in another; ``CHAIN=app-handler``: one ``GracefulShutdown``, and the app's
lifespan puts a SIGTERM handler of its own in front, which calls the one it replaced (as
metrics flushers do). The lifespan writes what ran to ``HOOK_LOG``."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from sse_llm import GracefulShutdown

CHAIN = os.environ.get("CHAIN", "nested")
LOG = Path(os.environ["HOOK_LOG"])


def _log(line: str) -> None:
    with LOG.open("a") as file:
        file.write(line + "\n")


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if CHAIN == "app-handler":
        previous = signal.getsignal(signal.SIGTERM)

        def flush_metrics(sig: int, frame: FrameType | None) -> None:
            _log("app's handler")
            if callable(previous):
                previous(sig, frame)

        signal.signal(signal.SIGTERM, flush_metrics)
    yield
    _log("lifespan shutdown")


sub: Any = Starlette(routes=[Route("/", ping)])
if CHAIN == "nested":
    sub = GracefulShutdown(sub)
app = GracefulShutdown(
    Starlette(routes=[Route("/ping", ping), Mount("/sub", sub)], lifespan=lifespan)
)
