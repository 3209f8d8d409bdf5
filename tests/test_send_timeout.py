"""``send_timeout`` against a real client that stops reading, under a real uvicorn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sse_llm.starlette import SSEResponse
from tests.support.results import Results
from tests.support.servers import never_reading_client, run_uvicorn

UVICORN_ERROR = "ASGI callable returned without completing response"
OUR_WARNING = "the client read nothing for 0.5 s (send_timeout); ending its stream"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_stops_reading_ends_the_stream_with_one_warning_of_ours(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    closed = threading.Event()
    finished = threading.Event()
    results = Results()

    async def flood() -> AsyncIterator[str]:
        try:
            for _ in range(2000):  # bounded: 2000 x 64 KiB, far beyond any socket buffer
                yield "x" * 65536
        finally:
            closed.set()

    async def stream(request: Request) -> SSEResponse:
        return SSEResponse(flood(), send_timeout=0.5, heartbeat=None, on_complete=results)

    class Finished:
        """Notes when the response's ASGI call returns."""

        def __init__(self, app: Starlette) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "http":
                    finished.set()

    app = Finished(Starlette(routes=[Route("/flood", stream)]))
    caplog.set_level(logging.WARNING)
    http = "h11" if loop == "asyncio" else "httptools"
    with run_uvicorn(app, loop=loop, http=http) as base:
        start = time.monotonic()
        with never_reading_client(base, "/flood"):
            result = results.wait(15)
            elapsed = time.monotonic() - start
            assert result.reason == "timeout"
            assert closed.is_set()  # the source is closed at once, the client still there
            assert elapsed < 10
            time.sleep(0.3)
            assert not finished.is_set()  # no half-done response handed back to uvicorn
        # The client has left: the response ends.
        assert finished.wait(10)
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count(OUR_WARNING) == 1, messages
    assert not any(UVICORN_ERROR in message for message in messages), messages
