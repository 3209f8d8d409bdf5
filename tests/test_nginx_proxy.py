"""Through a real nginx with its defaults (``proxy_buffering on``): the stream arrives as it is
generated, and nginx's 60 s ``proxy_read_timeout`` (shortened here to 2 s) does not cut a stream
kept alive by heartbeats while the model thinks (without them nginx drops it: checked by hand
with ``heartbeat=15``, the client gets an incomplete chunked body)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sse_llm.client import iter_events
from sse_llm.starlette import SSEResponse
from sse_llm.testing import FakeLLM

from .support.nginx import run_nginx
from .support.servers import run_uvicorn

# Defaults kept on purpose: proxy_buffering on. Only the read timeout is shortened so the
# heartbeat test runs in seconds instead of a minute.
SERVER = """
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_read_timeout 2s;
        }}
"""


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[str]:
    async def chat(request: Request) -> SSEResponse:
        llm = FakeLLM(
            delay=float(request.query_params.get("delay", "0.05")),
            first_token_delay=float(request.query_params.get("think", "0")),
        )
        heartbeat = float(request.query_params.get("heartbeat", "15"))
        return SSEResponse(llm.stream("nginx"), heartbeat=heartbeat)

    app = Starlette(routes=[Route("/chat", chat)])
    with (
        run_uvicorn(app) as upstream,
        run_nginx(tmp_path, SERVER.format(upstream=upstream)) as port,
    ):
        yield f"http://127.0.0.1:{port}"


def test_events_pass_nginx_as_they_are_generated(nginx_in_front: str) -> None:
    # The response also carries ``X-Accel-Buffering: no`` (checked in the pump tests); with a
    # reader as fast as this one nginx 1.22 forwards promptly either way.
    arrivals: list[float] = []
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", nginx_in_front + "/chat", params={"delay": "0.05"}) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        start = time.monotonic()
        for event in iter_events(response):
            arrivals.append(time.monotonic() - start)
            if event.event == "done":
                break
    assert len(arrivals) > 40
    # A buffering proxy would deliver everything at the end in a few bursts; here the events
    # are spread over the generation time (about 0.05 s apart).
    assert arrivals[-1] - arrivals[0] > 1.0
    assert arrivals[len(arrivals) // 2] < arrivals[-1] * 0.8


def test_heartbeats_keep_a_thinking_model_alive_past_the_proxy_read_timeout(
    nginx_in_front: str,
) -> None:
    """The model "thinks" 3.5 s before its first token; nginx gives up on a silent upstream
    after 2 s. A 0.5 s heartbeat keeps the connection open and the whole answer arrives."""
    params = {"think": "3.5", "delay": "0", "heartbeat": "0.5"}
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", nginx_in_front + "/chat", params=params) as response,
    ):
        names = [event.event for event in iter_events(response)]
    assert names[-1] == "done"
    assert names.count("delta") > 10
