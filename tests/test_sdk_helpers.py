"""The SDKs' stream helpers handed over unentered, end to end: ``client.messages.stream(...)``
(``anthropic``), ``client.chat.completions.stream(...)`` and ``client.responses.stream(...)``
(``openai``), async and sync. Recorded streams -> replay server -> the real SDK's helper ->
``SSEResponse`` under a real uvicorn -> httpx. The response enters the helper when the stream
starts and exits it when it ends, so a client that leaves closes the upstream request.
Expected values come from the independent oracle (``tests/support/fixtures.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sse_llm import StreamResult
from sse_llm.client import aiter_events
from sse_llm.starlette import SSEResponse

from .support.fixtures import FIXTURES, expected
from .support.leaving import assert_upstream_closed_on_leaving, leave_after_deltas, wait_for
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
# One recording per helper: its text is long enough to leave after three events.
FILES = {
    "anthropic": "anthropic/llm-emoji-after-tool.sse",
    "chat": "openai-chat/azure-gpt41mini-content-filter-emoji.sse",
    "responses": "openai-responses/dd-text-emoji.sse",
}
HELPERS = [f"{kind}-{mode}" for kind in FILES for mode in ("async", "sync")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class App:
    """``GET /chat?helper=<kind>-<async|sync>`` streams ``FILES[kind]`` through the SDK's
    helper, passed unentered to ``SSEResponse``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.results: list[StreamResult] = []

    def helper(self, kind: str, mode: str, headers: dict[str, str]) -> Any:
        file = FILES[kind]
        options = {"api_key": "test", "max_retries": 0, "default_headers": headers}
        if kind == "anthropic":
            client: Any = (anthropic.AsyncAnthropic if mode == "async" else anthropic.Anthropic)(
                base_url=self.upstream, **options
            )
            return client.messages.stream(model=file, max_tokens=256, messages=MESSAGES)
        oai: Any = (openai.AsyncOpenAI if mode == "async" else openai.OpenAI)(
            base_url=self.upstream + "/v1", **options
        )
        if kind == "chat":
            return oai.chat.completions.stream(model=file, messages=MESSAGES)
        return oai.responses.stream(model=file, input="hi")

    async def chat(self, request: Request) -> SSEResponse:
        kind, mode = request.query_params["helper"].split("-")
        delay = request.query_params.get("delay", "0")
        headers = {"x-replay-delay": delay, "x-replay-tag": request.query_params.get("tag", "")}
        if delay == "0":
            headers["x-replay-chunk"] = "7"  # CRLF pairs and UTF-8 characters cut apart
        return SSEResponse(self.helper(kind, mode, headers), on_complete=self.results.append)


@pytest.fixture
def server(replay_server: ReplayServer) -> Iterator[tuple[App, str]]:
    app = App(replay_server.base_url)
    with run_uvicorn(Starlette(routes=[Route("/chat", app.chat)])) as base_url:
        yield app, base_url


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.parametrize("helper", HELPERS)
async def test_an_unentered_sdk_stream_helper_streams_the_whole_answer(
    helper: str, server: tuple[App, str]
) -> None:
    app, base_url = server
    want = expected(FIXTURES / FILES[helper.split("-")[0]])
    events: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", base_url + "/chat", params={"helper": helper}) as response,
    ):
        async for event in aiter_events(response):
            events.append((event.event, json.loads(event.data)))
    assert "".join(data["text"] for name, data in events if name == "delta") == want.text
    name, done = events[-1]
    assert name == "done"
    assert done["raw_finish_reason"] == want.finish_reason
    await wait_for(lambda: bool(app.results))
    [result] = app.results
    assert (result.reason, result.text) == ("completed", want.text)


@pytest.mark.parametrize("helper", HELPERS)
async def test_a_client_that_leaves_exits_the_helper_and_closes_the_upstream_request(
    helper: str, server: tuple[App, str], replay_server: ReplayServer
) -> None:
    app, base_url = server
    tag = f"leave-{helper}"
    params = {"helper": helper, "delay": "0.2", "tag": tag}
    left_at = await leave_after_deltas(base_url + "/chat", params)
    whole = expected(FIXTURES / FILES[helper.split("-")[0]]).text
    await assert_upstream_closed_on_leaving(replay_server.app, tag, left_at, app.results, whole)


class SlowToEnter:
    """A sync stream helper whose ``__enter__`` waits for the model's first bytes."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.log: list[str] = []

    def __enter__(self) -> Iterator[str]:
        self.log.append("enter")
        time.sleep(self.wait)
        self.log.append("entered")
        return iter(["never", "read"])

    def __exit__(self, *exc: object) -> None:
        self.log.append("exit")


async def test_a_client_that_leaves_while_a_sync_helper_enters_has_it_exited() -> None:
    # Found in review: the cancel waited for __enter__ and dropped what it gave, never exited:
    # the upstream request of a slow first byte went on generating.
    from sse_llm import EventStream
    from sse_llm.testing import run_stream

    helper = SlowToEnter(0.5)
    results: list[StreamResult] = []
    started = time.monotonic()
    response = await run_stream(
        EventStream(helper, on_complete=results.append), disconnect_after_seconds=0.1, timeout=5
    )
    assert time.monotonic() - started < 0.4  # the stream ended without waiting for __enter__
    assert response.disconnected and [r.reason for r in results] == ["disconnected"]
    await wait_for(lambda: helper.log == ["enter", "entered", "exit"])


class NotAStreamHelper:
    """An async context manager that gives itself (a client, a session): not a stream."""

    exits = 0

    async def __aenter__(self) -> NotAStreamHelper:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exits += 1


async def test_a_context_manager_that_gives_no_stream_ends_with_a_clear_error() -> None:
    from sse_llm import collect

    session = NotAStreamHelper()
    result = await collect(session)
    assert result.reason == "error"
    assert isinstance(result.error, TypeError)
    assert "gives NotAStreamHelper when entered, not a stream" in str(result.error)
    assert session.exits == 1
