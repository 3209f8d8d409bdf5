"""What the model cites and what the provider runs, end to end, in every output format.

Every shared recording that carries citations, annotations, grounding or provider-run tools is
served by the replay app under a real uvicorn (7-byte reads: CRLF pairs and UTF-8 characters cut
apart) and read as an application would read it: the real ``openai`` SDK (Chat Completions,
Responses), the real ``anthropic`` SDK, or ``httpx`` + :mod:`sse_llm.sources` (Gemini). An
sse-llm app on another real uvicorn re-streams it; a client reads the wire back:

- the default format with ``httpx-sse`` (an SSE parser independent of sse-llm): every
  ``source`` and ``tool_activity`` event must equal, in order, what the independent oracle
  (``tests/support/fixtures.py``) reads in the recording;
- ``TypedJSONFormat`` (with the tools' input) with the same parser, and the WebSocket protocol
  with the ``websockets`` client: the same, input included;
- ``OpenAIChatFormat`` with the real ``openai`` SDK: the URL citations as ``url_citation``
  annotations, typed by the SDK's own ``Annotation`` model.

(The AI SDK reader in Node covers ``AISDKFormat``: tests/test_aisdk_node.py; the browser
renderings: tests/test_demo_browser.py and tests/test_htmx_browser.py.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
import httpx
import httpx_sse
import openai
import pytest
from openai.types.chat.chat_completion_message import Annotation
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect

from sse_llm import EventStream, WireFormat
from sse_llm.formats import NamedEventsFormat, OpenAIChatFormat, TypedJSONFormat
from sse_llm.websocket import LLMWebSocket

from .support.fixtures import (
    Activity,
    Expected,
    Source,
    all_fixture_files,
    expected,
    fixture_id,
)
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn
from .test_providers import CHUNK, SOURCES

pytestmark = pytest.mark.anyio

TIMEOUT = 30.0
CITING = [p for p in all_fixture_files() if expected(p).citations or expected(p).tool_activities]
FORMATS: dict[str, WireFormat] = {
    "named": NamedEventsFormat(),
    "typed": TypedJSONFormat(activity_input=True),
    "openai": OpenAIChatFormat(),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def upstream_source(upstream: str, file: str) -> AsyncIterator[Any]:
    """The recording ``<format>/<file>`` read through its SDK (or httpx + sse_llm.sources)."""
    headers = {"x-replay-file": file, "x-replay-chunk": CHUNK}
    return SOURCES[file.split("/")[0]](upstream, file, headers)


class App:
    """``GET /sse/?file=<format>/<file>&format=named|typed|openai`` re-streams the recording;
    ``/ws`` answers ``{"prompt": "<format>/<file>"}`` with it over the WebSocket."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def sse(self, scope: Any, receive: Any, send: Any) -> None:
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        source = upstream_source(self.upstream, query["file"])
        stream = EventStream(source, format=FORMATS[query["format"]], heartbeat=5)
        await stream(scope, receive, send)

    def websocket(self, message: Any) -> AsyncIterator[Any]:
        return upstream_source(self.upstream, message["prompt"])


@pytest.fixture(scope="module")
def server(replay_server: ReplayServer) -> Iterator[str]:
    app = App(replay_server.base_url)
    routes = [
        Mount("/sse", app.sse),
        WebSocketRoute("/ws", LLMWebSocket(app.websocket)),
    ]
    with run_uvicorn(Starlette(routes=routes)) as base_url:
        yield base_url


def test_every_recording_that_cites_or_runs_tools_is_covered() -> None:
    assert [fixture_id(p) for p in CITING] == [
        "openai-chat/openrouter-annotations-comments-emoji.sse",
        "openai-chat/perplexity-crlf-no-done.sse",
        "openai-responses/pydantic-web-search-annotations.sse",
        "anthropic/pydantic-code-execution-emoji.sse",
        "gemini/pydantic-web-search-grounding.sse",
    ]


def as_source(data: dict[str, Any]) -> Source:
    """A ``source`` event's JSON as the oracle's tuple (its ``index`` is ``number``)."""
    return Source(
        data["kind"],
        data["url"],
        data["title"],
        data["document_id"],
        data["container_id"],
        data["cited_text"],
        data["start"],
        data["end"],
        data["index"],
    )


def as_activity(data: dict[str, Any], *, with_input: bool) -> Activity:
    return Activity(
        data["id"],
        data["name"],
        data["status"],
        data["summary"],
        data["input"] if with_input else None,
    )


def without_input(activities: list[Activity]) -> list[Activity]:
    return [a._replace(input=None) for a in activities]


async def read_sse(base_url: str, path: Path, fmt: str) -> list[tuple[str, Any]]:
    """Every event of the re-streamed recording, read with httpx-sse: (name, JSON data)."""
    params = urlencode({"file": fixture_id(path), "format": fmt})
    out: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        httpx_sse.aconnect_sse(client, "GET", f"{base_url}/sse/?{params}") as source,
    ):
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            out.append(
                (event.event, event.data if event.data == "[DONE]" else json.loads(event.data))
            )
    return out


def assert_rest_matches(want: Expected, text: str, done: dict[str, Any]) -> None:
    assert text == want.text
    assert done["raw_finish_reason"] == want.finish_reason
    assert done["usage"] == want.full_usage


@pytest.mark.parametrize("path", CITING, ids=fixture_id)
async def test_the_default_format_carries_exactly_the_oracles_sources_and_activities(
    path: Path, server: str
) -> None:
    want = expected(path)
    events = await read_sse(server, path, "named")
    sources = [as_source(data) for name, data in events if name == "source"]
    activities = [
        as_activity(data, with_input=False) for name, data in events if name == "tool_activity"
    ]
    assert sources == want.citations
    assert activities == without_input(want.tool_activities)
    # Never raw payloads: exactly the documented keys.
    for name, data in events:
        if name == "tool_activity":
            assert set(data) == {"id", "name", "status", "summary"}
        if name == "source":
            assert len(data) == 9
    # A provider-run tool is never a tool the client is asked to run.
    assert "tool_call" not in [name for name, _ in events]
    text = "".join(data["text"] for name, data in events if name == "delta")
    name, done = events[-1]
    assert name == "done"
    assert_rest_matches(want, text, done)
    # Spans point into the text the client assembled, in Python characters.
    for source in sources:
        if source.start is not None and source.end is not None:
            assert 0 <= source.start < source.end <= len(text)


@pytest.mark.parametrize("path", CITING, ids=fixture_id)
async def test_typed_json_carries_the_same_with_the_tools_input(path: Path, server: str) -> None:
    want = expected(path)
    events = [data for _, data in await read_sse(server, path, "typed")]
    assert events[-1] == "[DONE]"
    sources = [as_source(e) for e in events[:-1] if e["type"] == "source"]
    activities = [
        as_activity(e, with_input=True) for e in events[:-1] if e["type"] == "tool_activity"
    ]
    assert sources == want.citations
    assert activities == want.tool_activities
    text = "".join(e["delta"] for e in events[:-1] if e["type"] == "delta")
    assert events[-2]["type"] == "done"
    assert_rest_matches(want, text, events[-2])


@pytest.mark.parametrize("path", CITING, ids=fixture_id)
async def test_websocket_messages_carry_the_same(path: Path, server: str) -> None:
    want = expected(path)
    url = server.replace("http://", "ws://") + "/ws"
    messages: list[dict[str, Any]] = []
    async with connect(url, proxy=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"prompt": fixture_id(path), "request_id": "r1"}))
        with anyio.fail_after(TIMEOUT):
            while not messages or messages[-1]["type"] not in ("done", "error"):
                messages.append(json.loads(await ws.recv()))
    assert {m["request_id"] for m in messages} == {"r1"}
    sources = [as_source(m) for m in messages if m["type"] == "source"]
    activities = [
        as_activity(m, with_input=False) for m in messages if m["type"] == "tool_activity"
    ]
    assert sources == want.citations
    assert activities == without_input(want.tool_activities)
    text = "".join(m["text"] for m in messages if m["type"] == "delta")
    assert_rest_matches(want, text, messages[-1])


@pytest.mark.parametrize("path", CITING, ids=fixture_id)
async def test_the_openai_sdk_reads_the_url_citations_back_as_annotations(
    path: Path, server: str
) -> None:
    """Through ``OpenAIChatFormat``: each URL citation is a typed ``url_citation`` annotation
    (no span: 0/0, no title: ""); provider tools have no Chat Completions shape."""
    want = expected(path)
    client = openai.AsyncOpenAI(base_url=f"{server}/sse", api_key="t", max_retries=0)
    annotations: list[Annotation] = []
    text: list[str] = []
    http = httpx.AsyncClient(timeout=TIMEOUT)
    # The app takes the recording from the query string: the SDK's POST carries it there.
    async with client.with_options(http_client=http) as sdk:
        stream = await sdk.chat.completions.create(
            model="replay",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_query={"file": fixture_id(path), "format": "openai"},
        )
        async for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                extra = choice.delta.model_extra or {}
                annotations += [Annotation.model_validate(a) for a in extra.get("annotations", ())]
    assert "".join(text) == want.text
    got = [
        (
            a.url_citation.url,
            a.url_citation.title,
            a.url_citation.start_index,
            a.url_citation.end_index,
        )
        for a in annotations
    ]
    assert got == [
        (c.url, c.title or "", c.start or 0, c.end or 0) for c in want.citations if c.kind == "url"
    ]
