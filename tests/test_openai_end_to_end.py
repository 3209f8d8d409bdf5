"""The whole path on real parts: recorded OpenAI stream -> replay server -> real ``openai`` SDK
-> sse-llm under a real uvicorn -> httpx client. Expected values come from the independent
oracle in ``tests/support/fixtures.py``, never from sse-llm itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sse_llm import StreamResult
from sse_llm.client import aiter_events
from sse_llm.starlette import SSEResponse

from .support.fixtures import expected, fixture_files, fixture_id
from .support.leaving import wait_for
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Proxy:
    """An app that re-streams an OpenAI-compatible upstream through sse-llm."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.results: list[StreamResult] = []

    async def chat(self, request: Request) -> SSEResponse:
        client = openai.AsyncOpenAI(base_url=self.upstream + "/v1", api_key="test", max_retries=0)
        stream = await client.chat.completions.create(
            model=request.query_params["model"],
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={
                "x-replay-delay": request.query_params.get("delay", "0"),
                "x-replay-tag": request.query_params.get("tag", ""),
            },
        )

        async def done(result: StreamResult) -> None:
            self.results.append(result)
            await client.close()  # the hook is shielded: safe even after a disconnect

        return SSEResponse(stream, on_complete=done, heartbeat=5)


@pytest.fixture
def proxy(replay_server: ReplayServer) -> Iterator[tuple[Proxy, str]]:
    proxy = Proxy(replay_server.base_url)
    app = Starlette(routes=[Route("/chat", proxy.chat)])
    with run_uvicorn(app) as base_url:
        yield proxy, base_url


async def _read(base_url: str, params: dict[str, str]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", base_url + "/chat", params=params) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        async for event in aiter_events(response):
            events.append((event.event, json.loads(event.data)))
    return events


CHAT_FILES = fixture_files("openai-chat")


@pytest.mark.parametrize("path", CHAT_FILES, ids=[p.name for p in CHAT_FILES])
async def test_recorded_openai_stream_arrives_exactly(path: Path, proxy: tuple[Proxy, str]) -> None:
    app, base_url = proxy
    want = expected(path)
    events = await _read(base_url, {"model": fixture_id(path)})

    text = "".join(data["text"] for name, data in events if name == "delta")
    reasoning = "".join(data["text"] for name, data in events if name == "reasoning")
    calls = [
        (data["id"], data["name"], json.loads(data["arguments"] or "{}"))
        for name, data in events
        if name == "tool_call"
    ]
    name, done = events[-1]
    assert name == "done"
    assert text == want.text
    assert text.encode() == want.text.encode()  # byte-exact, non-ASCII included
    assert reasoning == want.reasoning
    assert calls == want.tool_calls
    assert done["raw_finish_reason"] == want.finish_reason
    usage = {k: v for k, v in (done["usage"] or {}).items() if k in (want.usage or {})}
    assert usage == (want.usage or {})
    # The hook runs right after the last byte is sent: the client may get there first.
    await wait_for(lambda: bool(app.results))
    [result] = app.results
    assert result.reason == "completed"
    assert result.text == want.text


async def test_client_drop_closes_the_upstream_llm_request(
    proxy: tuple[Proxy, str], replay_server: ReplayServer
) -> None:
    """The client leaves after 3 events while the upstream is still generating: the SDK
    stream is closed and the provider (the replay server) sees its connection close."""
    app, base_url = proxy
    path = CHAT_FILES[0]  # the longest emoji stream: far more than 3 events
    params = {"model": fixture_id(path), "delay": "0.2", "tag": "drop-test"}
    received: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", base_url + "/chat", params=params) as response,
    ):
        async for event in aiter_events(response):
            received.append(json.loads(event.data)["text"])
            if len(received) == 3:
                dropped_at = time.monotonic()
                break
    record = await replay_server.app.wait_closed_async(5.0, tag="drop-test")
    assert record.closed_early
    assert record.closed_at is not None
    assert record.closed_at - dropped_at < 1.0
    await wait_for(lambda: bool(app.results))
    [result] = app.results
    assert result.reason == "disconnected"
    assert result.text.startswith("".join(received))
    assert len(result.text) < len(expected(path).text)
