"""Every recorded provider stream, normalised into sse-llm's events, arrives exactly.

End to end on real parts: a recording is served by the replay app under a real uvicorn; a
proxy app (a real uvicorn serving :class:`sse_llm.EventStream`) reads it the way an application
would — the real ``openai`` SDK (Chat Completions, Mistral, Responses), the real ``anthropic``
SDK, or ``httpx`` plus :mod:`sse_llm.sources` (Gemini SSE and JSON array, Ollama NDJSON,
Databricks) — and an ``httpx`` client reads the proxy's default ``EventsFormat`` stream with
``httpx-sse`` (an SSE parser independent of sse-llm). Upstream bytes arrive in 7-byte reads,
which split CRLF pairs and multi-byte characters. Expected values come from the independent
oracle in ``tests/support/fixtures.py``, never from sse-llm.

Then each normaliser is fed the recordings' JSON items directly (fast, no network), the
:mod:`sse_llm.sources` readers are checked byte by byte, and LangChain streams are checked
with langchain-core's own fake chat models and a real ``BaseChatModel`` subclass.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anthropic
import anyio
import httpx
import httpx_sse
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from sse_llm import (
    ErrorEvent,
    EventStream,
    EventTooLargeError,
    Finish,
    ProviderError,
    ReasoningDelta,
    StreamResult,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    collect,
)
from sse_llm._providers import detect, error_fields
from sse_llm.sources import http_error, json_array, ndjson, sse_json

from .support.fixtures import (
    Expected,
    activities_of,
    all_fixture_files,
    expected,
    fixture_files,
    fixture_id,
    parse_sse,
    sources_of,
)
from .support.plugin import ReplayServer
from .support.replay import ReplayApp
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).resolve().parent / "golden"
DATABRICKS = GOLDEN / "databricks" / "basic.sse"
ALL_FILES = all_fixture_files()
CHUNK = "7"  # odd: splits CRLF pairs and multi-byte UTF-8 characters
TIMEOUT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------------------------
# Sources, written the way an application would write them

SourceFactory = Callable[[str, str, dict[str, str]], AsyncIterator[Any]]
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


async def openai_chat_source(
    upstream: str, file: str, headers: dict[str, str]
) -> AsyncIterator[Any]:
    async with openai.AsyncOpenAI(
        base_url=upstream + "/v1", api_key="test", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model=file, messages=MESSAGES, stream=True, extra_headers=headers
        )
        async with stream:
            async for chunk in stream:
                yield chunk


async def openai_responses_source(
    upstream: str, file: str, headers: dict[str, str]
) -> AsyncIterator[Any]:
    async with openai.AsyncOpenAI(
        base_url=upstream + "/v1", api_key="test", max_retries=0
    ) as client:
        stream = await client.responses.create(
            model=file, input="hi", stream=True, extra_headers=headers
        )
        async with stream:
            async for event in stream:
                yield event


async def anthropic_source(upstream: str, file: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    async with anthropic.AsyncAnthropic(base_url=upstream, api_key="test", max_retries=0) as client:
        stream = await client.messages.create(
            model=file, max_tokens=256, messages=MESSAGES, stream=True, extra_headers=headers
        )
        async with stream:
            async for event in stream:
                yield event


def http_source(path: str, reader: Callable[[httpx.Response], AsyncIterator[Any]]) -> SourceFactory:
    """Plain httpx, no SDK: the response is handed to an :mod:`sse_llm.sources` reader."""

    async def source(upstream: str, file: str, headers: dict[str, str]) -> AsyncIterator[Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            request = client.build_request(
                "POST", upstream + path, json={"contents": MESSAGES}, headers=headers
            )
            response = await client.send(request, stream=True)
            async with aclosing(reader(response)) as items:
                async for item in items:
                    yield item

    return source


GEMINI_SSE = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
GEMINI_ARRAY = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
SOURCES: dict[str, SourceFactory] = {
    "openai-chat": openai_chat_source,
    "mistral": openai_chat_source,  # Mistral's stream is OpenAI-shaped
    "openai-responses": openai_responses_source,
    "anthropic": anthropic_source,
    "gemini": http_source(GEMINI_SSE, sse_json),
    "gemini-json-array": http_source(GEMINI_ARRAY, json_array),
    "ollama": http_source("/api/chat", ndjson),
    "databricks": http_source("/v1/chat/completions", sse_json),
    # The same OpenAI and Anthropic streams read without their SDKs.
    "openai-chat-http": http_source("/v1/chat/completions", sse_json),
    "openai-responses-http": http_source("/v1/responses", sse_json),
    "anthropic-http": http_source("/v1/messages", sse_json),
}


class Proxy:
    """An ASGI app: ``/?source=<name>&file=<format>/<file>&tag=<t>`` re-streams the upstream
    recording through :class:`EventStream` (default ``EventsFormat``). Optional: ``chunk``,
    ``delay`` and ``status`` (passed to the replay app), ``upstream=golden``."""

    def __init__(self, upstreams: dict[str, str]) -> None:
        self.upstreams = upstreams
        self.results: dict[str, StreamResult] = {}
        self.langchain: dict[str, Callable[[], AsyncIterator[Any]]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = {
            k: v[0]
            for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()
        }
        tag = query["tag"]
        name = query["source"]
        source: AsyncIterator[Any]
        if name in self.langchain:
            source = self.langchain[name]()
        else:
            headers = {"x-replay-file": query["file"], "x-replay-chunk": query.get("chunk", CHUNK)}
            if "delay" in query:
                headers["x-replay-delay"] = query["delay"]
                headers["x-replay-tag"] = tag
            if "status" in query:
                headers["x-replay-status"] = query["status"]
            upstream = self.upstreams[query.get("upstream", "fixtures")]
            source = SOURCES[name](upstream, query["file"], headers)

        def done(result: StreamResult) -> None:
            self.results[tag] = result

        await EventStream(source, on_complete=done, heartbeat=5)(scope, receive, send)

    async def result(self, tag: str) -> StreamResult:
        # on_complete runs just after the last bytes are sent: give it a moment.
        # Polled: the hook runs on the server's own event loop, in another thread.
        with anyio.fail_after(10):
            while tag not in self.results:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        return self.results[tag]


@pytest.fixture(scope="module")
def golden_server() -> Iterator[str]:
    """A replay server over ``tests/golden`` (synthetic streams, e.g. Databricks)."""
    with run_uvicorn(ReplayApp(GOLDEN)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def proxy(replay_server: ReplayServer, golden_server: str) -> Iterator[tuple[Proxy, str]]:
    app = Proxy({"fixtures": replay_server.base_url, "golden": golden_server})
    with run_uvicorn(app) as base_url:
        yield app, base_url


@dataclass
class Received:
    """What a browser-side client reassembles from the EventsFormat stream."""

    names: list[str] = field(default_factory=list)
    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


async def receive(base_url: str, **params: str) -> Received:
    got = Received()
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        httpx_sse.aconnect_sse(client, "GET", base_url + "/?" + urlencode(params)) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        async for event in source.aiter_sse():
            got.names.append(event.event)
            data = json.loads(event.data)
            if event.event == "delta":
                got.text += data["text"]
            elif event.event == "reasoning":
                got.reasoning += data["text"]
            elif event.event == "tool_call":
                arguments = json.loads(data["arguments"]) if data["arguments"].strip() else {}
                got.tool_calls.append((data["id"], data["name"], arguments))
            elif event.event == "done":
                got.done = data
            elif event.event == "error":
                got.error = data
    return got


# The normalised finish reason the oracle's raw reason should map to (written independently
# of the library from the providers' documentation).
NORMALISED = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "completed": "stop",
    "max_output_tokens": "length",
    "STOP": "stop",
    "1": "stop",  # Gemini finishReason under enum-encoding=int
}
# Providers that say "stop" even when the answer is a tool call: sse-llm reports tool_calls.
STOP_WITH_CALLS = {"openai-responses", "gemini", "gemini-json-array", "ollama"}


def normalised_finish(fmt: str, want: Expected) -> str:
    assert want.finish_reason is not None
    reason = NORMALISED[want.finish_reason]
    if reason == "stop" and want.tool_calls and fmt in STOP_WITH_CALLS:
        return "tool_calls"
    return reason


@pytest.mark.parametrize("path", ALL_FILES, ids=[fixture_id(p) for p in ALL_FILES])
async def test_recorded_stream_arrives_normalised_and_byte_exact(
    path: Path, proxy: tuple[Proxy, str]
) -> None:
    app, base_url = proxy
    fmt = path.parent.name
    want = expected(path)
    tag = f"fixture:{fixture_id(path)}"
    got = await receive(base_url, source=fmt, file=fixture_id(path), tag=tag)

    assert got.error is None
    assert got.names[-1] == "done"
    assert got.text.encode("utf-8") == want.text.encode("utf-8")
    assert got.reasoning.encode("utf-8") == want.reasoning.encode("utf-8")
    assert got.tool_calls == want.tool_calls
    assert got.done is not None
    assert got.done["raw_finish_reason"] == want.finish_reason
    assert got.done["finish_reason"] == normalised_finish(fmt, want)
    assert got.done["usage"] == want.full_usage

    result = await app.result(tag)
    assert result.reason == "completed"
    assert result.text == want.text
    assert result.reasoning == want.reasoning
    assert [(c.id, c.name) for c in result.tool_calls] == [(i, n) for i, n, _ in want.tool_calls]
    assert [c.index for c in result.tool_calls] == list(range(len(want.tool_calls)))


SDK_FREE = {
    "openai-chat": "openai-chat-http",
    "mistral": "openai-chat-http",
    "openai-responses": "openai-responses-http",
    "anthropic": "anthropic-http",
}
SDK_FREE_FILES = [p for p in ALL_FILES if p.parent.name in SDK_FREE]


@pytest.mark.parametrize("path", SDK_FREE_FILES, ids=[fixture_id(p) for p in SDK_FREE_FILES])
async def test_sdk_streams_read_with_httpx_and_sse_json_arrive_the_same(
    path: Path, proxy: tuple[Proxy, str]
) -> None:
    """The OpenAI and Anthropic recordings read without their SDKs (httpx + ``sse_json``)."""
    app, base_url = proxy
    fmt = path.parent.name
    want = expected(path)
    tag = f"sdk-free:{fixture_id(path)}"
    got = await receive(base_url, source=SDK_FREE[fmt], file=fixture_id(path), tag=tag)
    assert got.error is None
    assert got.text.encode("utf-8") == want.text.encode("utf-8")
    assert got.reasoning == want.reasoning
    assert got.tool_calls == want.tool_calls
    assert got.done == {
        "finish_reason": normalised_finish(fmt, want),
        "raw_finish_reason": want.finish_reason,
        "usage": want.full_usage,
    }
    assert (await app.result(tag)).reason == "completed"


def databricks_expected_text() -> str:
    """Read with the oracle's SSE parser and plain json: independent of sse-llm."""
    events = parse_sse(DATABRICKS.read_bytes())
    return "".join(
        json.loads(e.data)["delta"]["text"] for e in events if e.data.strip() != "[DONE]"
    )


async def test_databricks_agent_stream_arrives_exactly(proxy: tuple[Proxy, str]) -> None:
    app, base_url = proxy
    got = await receive(
        base_url,
        source="databricks",
        file="databricks/basic.sse",
        upstream="golden",
        tag="databricks",
    )
    want = databricks_expected_text()
    assert "안녕하세요" in want and "こんにちは" in want and "👋🏽" in want and "\r\n" in want
    assert got.text.encode("utf-8") == want.encode("utf-8")
    assert got.names == ["delta"] * 5 + ["done"]
    # The format has no finish reason or usage: [DONE] is its only end marker.
    assert got.done == {"finish_reason": None, "raw_finish_reason": None, "usage": None}
    result = await app.result("databricks")
    assert result.reason == "completed"
    assert result.text == want


async def test_client_drop_closes_the_upstream_http_connection(
    proxy: tuple[Proxy, str], replay_server: ReplayServer
) -> None:
    """httpx + sse_json source: the browser leaves, the pump closes the generator, and
    ``sse_json`` closes the upstream response, which the provider sees at once."""
    app, base_url = proxy
    path = fixture_files("gemini")[3]  # openinference-text-nonascii: many events
    assert path.name == "openinference-text-nonascii.sse"
    params = {
        "source": "gemini",
        "file": fixture_id(path),
        "tag": "gemini-drop",
        "delay": "0.2",
        "chunk": "",  # one event per read, so the stream lasts long enough
    }
    received = 0
    async with (
        httpx.AsyncClient(timeout=TIMEOUT) as client,
        httpx_sse.aconnect_sse(client, "GET", base_url + "/?" + urlencode(params)) as source,
    ):
        async for _event in source.aiter_sse():
            received += 1
            if received == 2:
                dropped_at = time.monotonic()
                break
    record = await replay_server.app.wait_closed_async(10.0, tag="gemini-drop")
    assert record.closed_early
    assert record.closed_at is not None
    assert record.closed_at - dropped_at < 3.0
    result = await app.result("gemini-drop")
    assert result.reason == "disconnected"
    assert expected(path).text.startswith(result.text)


# ---------------------------------------------------------------------------------------------
# Normalisers fed the recordings' JSON items directly (no network)


def json_items(path: Path) -> list[Any]:
    """A recording's items, parsed with the oracle's SSE parser and plain json."""
    fmt = path.parent.name
    body = path.read_bytes()
    if fmt == "gemini-json-array":
        items: list[Any] = json.loads(body)
        return items
    if fmt == "ollama":
        return [json.loads(line) for line in body.split(b"\n") if line.strip()]
    return [json.loads(e.data) for e in parse_sse(body) if e.data.strip() != "[DONE]"]


def run_normalizer(items: list[Any], *, choice: int | None = None) -> list[Any]:
    normalizer = detect(items[0], choice=choice)
    assert normalizer is not None
    events: list[Any] = []
    for item in items:
        events.extend(normalizer.feed(item))
    events.extend(normalizer.close())
    return events


MODULE_FOR_FORMAT = {
    "openai-chat": "openai_chat",
    "mistral": "openai_chat",
    "openai-responses": "openai_responses",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "gemini-json-array": "gemini",
    "ollama": "ollama",
}


@pytest.mark.parametrize("path", ALL_FILES, ids=[fixture_id(p) for p in ALL_FILES])
def test_every_item_of_a_recording_is_recognised_by_its_provider_module(path: Path) -> None:
    for item in json_items(path):
        normalizer = detect(item)
        assert normalizer is not None
        assert type(normalizer).__module__.rsplit(".", 1)[1] == MODULE_FOR_FORMAT[path.parent.name]


@pytest.mark.parametrize("path", ALL_FILES, ids=[fixture_id(p) for p in ALL_FILES])
def test_normalizer_reproduces_the_oracle_reading(path: Path) -> None:
    fmt = path.parent.name
    want = expected(path)
    events = run_normalizer(json_items(path))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    calls = [
        (e.id, e.name, json.loads(e.arguments) if e.arguments.strip() else {})
        for e in events
        if isinstance(e, ToolCall)
    ]
    finishes = [e for e in events if isinstance(e, Finish)]
    usages = [e for e in events if isinstance(e, Usage)]
    assert text == want.text
    assert reasoning == want.reasoning
    assert calls == want.tool_calls
    assert [(f.reason, f.raw_reason) for f in finishes] == [
        (normalised_finish(fmt, want), want.finish_reason)
    ]
    assert [u.as_dict() for u in usages] == ([] if want.usage is None else [want.full_usage])
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert sources_of(events) == want.citations
    assert activities_of(events) == want.tool_activities
    # Fragments of each call join to exactly the whole call.
    for call in (e for e in events if isinstance(e, ToolCall)):
        fragments = [e for e in events if isinstance(e, ToolCallDelta) and e.index == call.index]
        if fragments:
            assert "".join(f.arguments for f in fragments) == call.arguments
            assert {(f.id, f.name) for f in fragments if f.name} == {(call.id, call.name)}


def test_openrouter_repeated_finish_reason_gives_one_finish() -> None:
    path = fixture_files("openai-chat")[6]
    assert path.name == "openrouter-annotations-comments-emoji.sse"
    chunks = json_items(path)
    assert sum(1 for c in chunks for ch in c.get("choices", []) if ch.get("finish_reason")) == 2
    assert [e for e in run_normalizer(chunks) if isinstance(e, Finish)] == [Finish("stop", "stop")]


def test_mistral_whole_tool_calls_without_index_in_one_chunk_become_two_calls() -> None:
    path = fixture_files("mistral")[1]
    assert path.name == "magentic-parallel-tool-calls.sse"
    events = run_normalizer(json_items(path))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.index, c.name) for c in calls] == [(0, "plus"), (1, "minus")]
    assert events.index(calls[-1]) < events.index(Finish("tool_calls", "tool_calls"))


def test_magistral_content_array_splits_thinking_from_text() -> None:
    chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "magistral-medium-2506",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "생각 중"}]},
                        {"type": "text", "text": "답: 42"},
                    ]
                },
                "finish_reason": None,
            }
        ],
    }
    assert run_normalizer([chunk]) == [ReasoningDelta("생각 중"), TextDelta("답: 42")]


def _chat_delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": "x", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [choice]}


def test_chat_refusal_is_the_text_the_user_sees_as_in_responses() -> None:
    # OpenAI API reference, "The chat completion chunk object": delta.refusal (structured
    # outputs). Found in review: it was dropped, leaving an empty answer.
    chunks = [
        _chat_delta({"role": "assistant", "content": None, "refusal": ""}),
        _chat_delta({"refusal": "I'm sorry, "}),
        _chat_delta({"refusal": "I can't help with that."}),
        _chat_delta({}, "stop"),
    ]
    assert run_normalizer(chunks) == [
        TextDelta("I'm sorry, "),
        TextDelta("I can't help with that."),
        Finish("stop", "stop"),
    ]


def test_chat_legacy_function_call_is_the_tool_call_its_finish_reason_announces() -> None:
    # Requests with functions= (deprecated, still served) stream delta.function_call and end
    # with finish_reason "function_call". Found in review: the call was dropped.
    chunks = [
        _chat_delta(
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": ""},
            }
        ),
        _chat_delta({"function_call": {"arguments": '{"city":'}}),
        _chat_delta({"function_call": {"arguments": '"Paris"}'}}),
        _chat_delta({}, "function_call"),
    ]
    events = run_normalizer(chunks)
    assert [e for e in events if not isinstance(e, ToolCallDelta)] == [
        ToolCall(0, "", "get_weather", '{"city":"Paris"}'),
        Finish("tool_calls", "function_call"),
    ]
    fragments = [e.arguments for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(fragments) == '{"city":"Paris"}'


# The openai SDK's chat.completions.stream() itself fails on these before sse-llm sees an
# event: it raises on OpenRouter's index-less annotations and drops Perplexity's chunks (their
# "object" is "chat.completion"). create(stream=True) reads both (the oracle tests).
_CHAT_HELPER_CANNOT_READ = {
    "openrouter-annotations-comments-emoji.sse",
    "perplexity-crlf-no-done.sse",
}


# The openai SDK's own responses.stream() accumulator dumps the final response and pydantic
# warns about the built-in tool items; the warning is the SDK's, not sse-llm's.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.parametrize(
    "path",
    [
        *fixture_files("anthropic"),
        *fixture_files("openai-responses"),
        *(p for p in fixture_files("openai-chat") if p.name not in _CHAT_HELPER_CANNOT_READ),
    ],
    ids=fixture_id,
)
async def test_sdk_stream_helpers_events_are_counted_once(
    replay_server: ReplayServer, path: Path
) -> None:
    """``messages.stream()`` / ``responses.stream()`` / ``chat.completions.stream()`` add
    derived events (``text``, ``thinking``, ``content.delta`` ...) beside the raw ones: only
    the raw ones count."""
    events: list[Any] = []
    if path.parent.name == "openai-chat":
        async with (
            openai.AsyncOpenAI(
                base_url=replay_server.base_url + "/v1", api_key="test", max_retries=0
            ) as oai,
            oai.chat.completions.stream(model=fixture_id(path), messages=MESSAGES) as chat,
        ):
            events = [event async for event in chat]
    elif path.parent.name == "anthropic":
        async with (
            anthropic.AsyncAnthropic(
                base_url=replay_server.base_url, api_key="test", max_retries=0
            ) as client,
            client.messages.stream(
                model=fixture_id(path), max_tokens=256, messages=MESSAGES
            ) as stream,
        ):
            events = [event async for event in stream]
    else:
        async with (
            openai.AsyncOpenAI(
                base_url=replay_server.base_url + "/v1", api_key="test", max_retries=0
            ) as oai,
            oai.responses.stream(model=fixture_id(path), input="hi") as responses,
        ):
            events = [event async for event in responses]
    want = expected(path)
    normalised = run_normalizer(events)
    assert "".join(e.text for e in normalised if isinstance(e, TextDelta)) == want.text
    assert "".join(e.text for e in normalised if isinstance(e, ReasoningDelta)) == want.reasoning
    calls = [e for e in normalised if isinstance(e, ToolCall)]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == want.tool_calls
    finishes = [e for e in normalised if isinstance(e, Finish)]
    assert [f.raw_reason for f in finishes] == [want.finish_reason]
    assert sources_of(normalised) == want.citations
    assert activities_of(normalised) == want.tool_activities


# -- Responses API


def responses_event(kind: str, sequence: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": sequence, **fields}


def test_responses_error_then_failed_gives_one_stream_error_with_the_provider_message() -> None:
    message = "The server had an error while processing your request."
    events = run_normalizer(
        [
            responses_event("response.created", 0, response={"status": "in_progress"}),
            responses_event("response.output_text.delta", 1, delta="Part"),
            responses_event("error", 2, code="server_error", message=message, param=None),
            responses_event(
                "response.failed",
                3,
                response={
                    "status": "failed",
                    "error": {"code": "server_error", "message": message},
                },
            ),
        ]
    )
    assert events == [TextDelta("Part"), ErrorEvent(message, "server_error")]


def test_responses_failed_alone_reports_its_error() -> None:
    events = run_normalizer(
        [
            responses_event(
                "response.failed",
                0,
                response={"status": "failed", "error": {"code": "rate_limit", "message": "Slow"}},
            )
        ]
    )
    assert events == [ErrorEvent("Slow", "rate_limit")]


def test_responses_reasoning_refusal_and_content_filter() -> None:
    events = run_normalizer(
        [
            responses_event("response.reasoning_summary_text.delta", 0, delta="**Plan**"),
            responses_event("response.refusal.delta", 1, delta="I can't help with that."),
            responses_event(
                "response.incomplete",
                2,
                response={
                    "status": "incomplete",
                    "incomplete_details": {"reason": "content_filter"},
                    "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
                },
            ),
        ]
    )
    assert events == [
        ReasoningDelta("**Plan**"),
        TextDelta("I can't help with that."),
        Finish("content_filter", "content_filter"),
        Usage(5, 7, 12),
    ]


def test_responses_function_call_arguments_done_is_authoritative() -> None:
    item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f"}
    events = run_normalizer(
        [
            responses_event("response.output_item.added", 0, output_index=0, item=item),
            responses_event("response.function_call_arguments.delta", 1, item_id="fc_1", delta="{"),
            responses_event(
                "response.function_call_arguments.done", 2, item_id="fc_1", arguments='{"a":1}'
            ),
            responses_event("response.output_item.done", 3, output_index=0, item=item),
            responses_event("response.completed", 4, response={"status": "completed"}),
        ]
    )
    assert events == [
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, "call_1", "f", "{"),
        ToolCall(0, "call_1", "f", '{"a":1}'),
        Finish("tool_calls", "completed"),
    ]


# -- Anthropic


def test_anthropic_error_event_becomes_a_stream_error() -> None:
    events = run_normalizer(
        [{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    )
    assert events == [ErrorEvent("Overloaded", "overloaded_error")]


def test_anthropic_server_tool_use_is_not_reported_as_a_tool_call() -> None:
    path = fixture_files("anthropic")[7]
    assert path.name == "pydantic-code-execution-emoji.sse"
    items = json_items(path)
    assert any(i.get("content_block", {}).get("type") == "server_tool_use" for i in items)
    events = run_normalizer(items)
    assert not [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]
    assert Finish("stop", "end_turn") in events


def test_anthropic_tool_without_streamed_input_and_stop_reasons() -> None:
    events = run_normalizer(
        [
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 3, "output_tokens": 1}},
            },
            {"type": "ping"},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
            },
            {"type": "content_block_stop", "index": 1},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "refusal"},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    )
    assert events == [
        ToolCallDelta(0, "toolu_1", "now", ""),
        ToolCallDelta(0, "toolu_1", "now", "{}"),  # fragments still join to the arguments
        ToolCall(0, "toolu_1", "now", "{}"),
        Finish("content_filter", "refusal"),
        Usage(3, 9),
    ]


# -- Gemini


def gemini_chunk(
    finish: Any = None, parts: list[Any] | None = None, index: int = 0
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": index, "content": {"role": "model", "parts": parts or []}}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate]}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "other"),
        (1, "stop"),
        (2, "length"),
        (3, "content_filter"),
        (4, "content_filter"),
        (5, "other"),
        (8, "content_filter"),
    ],
)
def test_gemini_finish_reasons_by_name_and_by_number(raw: Any, reason: str) -> None:
    assert run_normalizer([gemini_chunk(raw)]) == [Finish(reason, str(raw))]


def test_gemini_function_call_id_thoughts_and_other_candidates() -> None:
    events = run_normalizer(
        choice=0,
        items=[
            gemini_chunk(parts=[{"text": "hmm", "thought": True}, {"text": "¿Qué?"}]),
            gemini_chunk(parts=[{"text": "ignored: candidate 1"}], index=1),
            gemini_chunk(
                "STOP", parts=[{"functionCall": {"id": "fc-7", "name": "f", "args": {"q": "東京"}}}]
            ),
        ],
    )
    assert events == [
        ReasoningDelta("hmm"),
        TextDelta("¿Qué?"),
        ToolCall(0, "fc-7", "f", '{"q":"東京"}'),
        Finish("tool_calls", "STOP"),
    ]


def test_gemini_error_object_and_blocked_prompt() -> None:
    error = {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }
    assert run_normalizer([error]) == [ErrorEvent("Resource exhausted", "RESOURCE_EXHAUSTED")]
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4},
    }
    assert run_normalizer([blocked]) == [Finish("content_filter", "SAFETY"), Usage(4)]


# -- Ollama


def test_ollama_thinking_tool_calls_and_length() -> None:
    events = run_normalizer(
        [
            {
                "model": "qwen3",
                "message": {"role": "assistant", "content": "", "thinking": "Hm"},
                "done": False,
            },
            {
                "model": "qwen3",
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "weather", "arguments": {"city": "서울"}}}
                    ],
                },
                "done": False,
            },
            {
                "model": "qwen3",
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 10,
                "eval_count": 4,
                "total_duration": 5,
            },
        ]
    )
    assert events == [
        ReasoningDelta("Hm"),
        ToolCall(0, "", "weather", '{"city":"서울"}'),
        Finish("tool_calls", "stop"),
        Usage(10, 4),
    ]
    length = run_normalizer(
        [{"model": "m", "response": "abc", "done": True, "done_reason": "length"}]
    )
    assert length == [TextDelta("abc"), Finish("length", "length")]


def test_ollama_error_line_becomes_a_stream_error() -> None:
    normalizer = detect({"model": "m", "message": {"content": "a"}, "done": False})
    assert normalizer is not None
    assert list(normalizer.feed({"error": "model crashed"})) == [ErrorEvent("model crashed")]


# -- detection and error bodies


def test_a_stream_that_starts_with_an_error_object_is_recognised() -> None:
    body = {"error": {"message": "over capacity", "type": "internal_server_error"}}
    assert run_normalizer([body]) == [ErrorEvent("over capacity", "internal_server_error")]
    assert run_normalizer([{"error": "no such model"}]) == [ErrorEvent("no such model")]


def test_databricks_items_are_recognised() -> None:
    items = [json.loads(e.data) for e in parse_sse(DATABRICKS.read_bytes()) if e.data != "[DONE]"]
    events = run_normalizer(items)
    assert "".join(e.text for e in events) == databricks_expected_text()
    assert run_normalizer(
        [{"event_type": "error", "error": {"message": "quota", "code": "429"}}]
    ) == [ErrorEvent("quota", "429")]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"error": {"message": "m", "type": "invalid_request_error", "code": None}},
            ("m", "invalid_request_error"),
        ),
        (
            {"error": {"message": "m", "type": "x", "code": "rate_limit_exceeded"}},
            ("m", "rate_limit_exceeded"),
        ),
        (
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ("Overloaded", "overloaded_error"),
        ),
        (
            [{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}],
            ("bad", "INVALID_ARGUMENT"),
        ),
        ({"error": {"code": 502, "message": "upstream"}}, ("upstream", "502")),
        ({"error": "model not found"}, ("model not found", None)),
        (
            {"type": "error", "code": "server_error", "message": "m", "sequence_number": 1},
            ("m", "server_error"),
        ),
        ("<html>", ("<html>", None)),
        (None, (None, None)),
    ],
)
def test_error_fields_reads_every_provider_family(body: Any, fields: tuple[Any, Any]) -> None:
    assert error_fields(body) == fields


# ---------------------------------------------------------------------------------------------
# sse_llm.sources readers


def read(path: Path) -> bytes:
    return path.read_bytes()  # small files: not worth a thread


async def byte_by_byte(body: bytes) -> AsyncIterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]


@pytest.mark.parametrize(
    "path",
    fixture_files("gemini-json-array"),
    ids=[p.name for p in fixture_files("gemini-json-array")],
)
async def test_json_array_reads_one_byte_at_a_time(path: Path) -> None:
    body = read(path)
    items = [item async for item in json_array(byte_by_byte(body))]
    assert items == json.loads(body)


@pytest.mark.parametrize(
    "path", fixture_files("ollama"), ids=[p.name for p in fixture_files("ollama")]
)
async def test_ndjson_reads_one_byte_at_a_time(path: Path) -> None:
    body = read(path)
    items = [item async for item in ndjson(byte_by_byte(body))]
    assert items == [json.loads(line) for line in body.split(b"\n") if line.strip()]


SSE_FILES = [p for p in ALL_FILES if p.suffix == ".sse"]


@pytest.mark.parametrize("path", SSE_FILES, ids=[fixture_id(p) for p in SSE_FILES])
async def test_sse_json_reads_one_byte_at_a_time(path: Path) -> None:
    body = read(path)
    items = [item async for item in sse_json(byte_by_byte(body))]
    assert items == json_items(path)


class Recorder:
    """An async byte iterable that records whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def test_sse_json_stops_at_done_and_closes_the_source() -> None:
    source = Recorder([b'data: {"a": 1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\ndata: {"b": 2}\n\n'])
    assert [item async for item in sse_json(source)] == [{"a": 1}]
    assert source.closed


async def test_sse_json_surfaces_error_events_as_error_objects() -> None:
    body = (
        b'event: error\ndata: {"error": {"message": "rate"}}\n\n'
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n'
        b'event: error\ndata: {"message": "bare"}\n\n'
        b"event: error\ndata: upstream timed out\n\n"
    )
    items = [item async for item in sse_json(Recorder([body]))]
    # Both shapes the normalisers read: a top-level "error" and "type": "error".
    assert items == [
        {"type": "error", "error": {"message": "rate"}},
        {"type": "error", "error": {"type": "overloaded_error"}},
        {"type": "error", "error": {"message": "bare"}},
        {"type": "error", "error": {"message": "upstream timed out"}},
    ]


ANTHROPIC_THEN_ERROR = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
    b'"role":"assistant","content":[],"model":"c","usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hel"}}\n\n'
    b"event: error\ndata: upstream connect error or disconnect/reset before headers\n\n"
)
RESPONSES_THEN_ERROR = (
    b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    b'"response":{"id":"r","status":"in_progress","output":[]}}\n\n'
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"sequence_number":1,"item_id":"m","output_index":0,"content_index":0,"delta":"Hel"}\n\n'
    b'event: error\ndata: {"message":"Internal error","code":"server_error"}\n\n'
)


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (ANTHROPIC_THEN_ERROR, "upstream connect error or disconnect/reset before headers", None),
        (RESPONSES_THEN_ERROR, "Internal error", "server_error"),
    ],
    ids=["anthropic", "responses"],
)
async def test_an_event_error_that_sse_json_wraps_ends_anthropic_and_responses_streams(
    body: bytes, message: str, code: str | None
) -> None:
    # Found in review: sse_json wrapped such an event as {"error": ...}, which only the Chat
    # Completions, Gemini and Ollama normalisers read: a cut answer ended as completed.
    result = await collect(sse_json(Recorder([body])))
    assert (result.reason, result.text) == ("error", "Hel")
    assert result.error is not None
    assert (result.error.message, result.error.code) == (message, code)


async def test_sse_json_skips_a_bare_data_line() -> None:
    # Found in review: a gateway's bare "data:" keep-alive raised JSONDecodeError.
    body = b'data:\n\ndata: \n\ndata: {"a": 1}\n\n'
    assert [item async for item in sse_json(Recorder([body]))] == [{"a": 1}]


async def test_sse_json_refuses_a_2xx_answer_that_is_not_an_event_stream() -> None:
    # Found in review: a 200 HTML page (a proxy, a captive portal) or JSON error read as a
    # stream with no events: the answer ended "completed", empty, with finish reason stop.
    bodies = {
        "/html": ("text/html; charset=utf-8", b"<html><body>Sign in to the Wi-Fi</body></html>"),
        "/json": (
            "application/json",
            b'{"error": {"message": "You exceeded your current quota", '
            b'"type": "insufficient_quota", "code": "insufficient_quota"}}',
        ),
        "/sse": ("Text/Event-Stream; charset=utf-8", b'data: {"a": 1}\n\n'),
        "/mislabelled": ("application/octet-stream", b'data: {"b": 2}\n\n'),  # still a stream
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        content_type, body = bodies[scope["path"]]
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with run_uvicorn(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            errors = {}
            for path in ("/html", "/json"):
                async with client.stream("GET", path) as response:
                    with pytest.raises(ProviderError) as raised:
                        [item async for item in sse_json(response)]
                    errors[path] = (raised.value.message, raised.value.code)
            items = []
            for path in ("/sse", "/mislabelled"):
                async with client.stream("GET", path) as response:
                    items += [item async for item in sse_json(response)]
    assert errors == {
        "/html": ("The model provider answered with text/html, not an event stream.",
                  "not_an_event_stream"),
        "/json": ("You exceeded your current quota", "insufficient_quota"),
    }  # fmt: skip
    assert items == [{"a": 1}, {"b": 2}]


async def test_ndjson_reads_a_last_line_without_newline_and_strips_cr() -> None:
    source = Recorder([b'{"a": 1}\r\n\n{"b":', b' "\xc3', b'\xa9"}'])
    assert [item async for item in ndjson(source)] == [{"a": 1}, {"b": "é"}]
    assert source.closed


@pytest.mark.parametrize("reader", [ndjson, sse_json])
async def test_a_body_that_never_ends_its_line_or_event_is_refused_and_closed(
    reader: Callable[[Any], AsyncIterator[Any]],
) -> None:
    # Found in review: a broken or hostile upstream that sends no line end (or, for SSE, no
    # blank line) was buffered without bound inside the server process.
    megabyte = b"x" * 1_048_576
    start = b'{"a": 1}\n' if reader is ndjson else b'data: {"a": 1}\n\ndata: '
    source = Recorder([start] + [megabyte] * 17)
    items: list[Any] = []
    with pytest.raises(EventTooLargeError):
        async for item in reader(source):
            items.append(item)
    assert items == [{"a": 1}]
    assert source.closed


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1}', b'[{"a": 1}\n,\r\n{"b": 2}', b'[{"a": 1} {"b": 2}]', b"[]x"],
    ids=["not-an-array", "truncated", "missing-comma", "trailing-garbage"],
)
async def test_json_array_rejects_malformed_bodies(body: bytes) -> None:
    source = Recorder([body])
    with pytest.raises(ValueError):
        _ = [item async for item in json_array(source)]
    assert source.closed


async def test_json_array_accepts_an_empty_array() -> None:
    assert [item async for item in json_array(Recorder([b" [ \r\n ] "]))] == []


async def test_http_error_reads_the_provider_message_of_a_non_200_answer() -> None:
    # Gemini's pretty-printed error body, sent even under text/event-stream (FORMATS.md).
    gemini = (
        b'{\n  "error": {\n    "code": 503,\n    "message": "The model is overloaded.",\n'
        b'    "status": "UNAVAILABLE"\n  }\n}\n'
    )
    response = httpx.Response(503, content=gemini, headers={"content-type": "text/event-stream"})
    error = await http_error(response)
    assert error is not None
    assert (error.message, error.code) == ("The model is overloaded.", "UNAVAILABLE")
    html = httpx.Response(502, content=b"<html><body>Bad Gateway</body></html>")
    error = await http_error(html)
    assert error is not None
    assert error.code == "502"
    assert "502" in error.message and "<html>" not in error.message
    assert await http_error(httpx.Response(200, content=b"data: {}\n\n")) is None


@pytest.mark.parametrize(
    ("path", "reader", "code"),
    [
        ("/v1/chat/completions", sse_json, "server_error"),
        ("/v1/messages", sse_json, "api_error"),
        (GEMINI_SSE, sse_json, "INTERNAL"),
        (GEMINI_ARRAY, json_array, "INTERNAL"),
        ("/api/chat", ndjson, "500"),
    ],
)
async def test_readers_raise_provider_error_for_a_non_200_answer(
    replay_server: ReplayServer, path: str, reader: Any, code: str
) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        request = client.build_request(
            "POST", replay_server.base_url + path, json={}, headers={"x-replay-status": "500"}
        )
        response = await client.send(request, stream=True)
        with pytest.raises(ProviderError) as caught:
            _ = [item async for item in reader(response)]
        assert response.is_closed
    assert caught.value.message == "replayed error (HTTP 500)"
    assert caught.value.code == code


async def test_closing_a_reader_early_closes_the_upstream_connection(
    replay_server: ReplayServer,
) -> None:
    path = fixture_files("ollama")[3]
    assert path.name == "openllmetry-chat.ndjson"
    headers = {
        "x-replay-file": fixture_id(path),
        "x-replay-delay": "0.2",
        "x-replay-tag": "ndjson-close",
    }
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.send(
            client.build_request("POST", replay_server.base_url + "/api/chat", headers=headers),
            stream=True,
        )
        async with aclosing(ndjson(response)) as items:
            async for item in items:
                assert item["message"]["role"] == "assistant"
                break
        closed_at = time.monotonic()
        assert response.is_closed
    record = await replay_server.app.wait_closed_async(10.0, tag="ndjson-close")
    assert record.closed_early
    assert record.closed_at is not None and record.closed_at - closed_at < 3.0


# ---------------------------------------------------------------------------------------------
# LangChain: AIMessageChunk streams from real langchain-core chat models


class ScriptedChatModel(BaseChatModel):
    """A real LangChain chat model whose stream is a fixed list of chunks, shaped like
    ``ChatAnthropic``'s (content blocks, tool_call_chunks, split usage, stop_reason)."""

    chunks: list[AIMessageChunk]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        text = "".join(c.content for c in self.chunks if isinstance(c.content, str))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self.chunks:
            yield ChatGenerationChunk(message=chunk)


ANTHROPIC_LIKE = [
    AIMessageChunk(
        content=[{"type": "thinking", "thinking": "도구가 필요해", "index": 0}],
        usage_metadata={"input_tokens": 12, "output_tokens": 0, "total_tokens": 12},
    ),
    AIMessageChunk(content=[{"type": "text", "text": "날씨를 확인할게요 ☔", "index": 1}]),
    AIMessageChunk(
        content=[],
        tool_call_chunks=[{"name": "get_weather", "args": "", "id": "toolu_01", "index": 2}],
    ),
    AIMessageChunk(
        content=[], tool_call_chunks=[{"name": None, "args": '{"city": ', "id": None, "index": 2}]
    ),
    AIMessageChunk(
        content=[], tool_call_chunks=[{"name": None, "args": '"서울"}', "id": None, "index": 2}]
    ),
    AIMessageChunk(
        content=[],
        usage_metadata={
            "input_tokens": 0,
            "output_tokens": 30,
            "total_tokens": 30,
            "output_token_details": {"reasoning": 8},
        },
        response_metadata={"stop_reason": "tool_use"},
    ),
]


async def test_langchain_fake_list_model_stream_arrives_exactly(proxy: tuple[Proxy, str]) -> None:
    app, base_url = proxy
    answer = "안녕하세요, こんにちは! 🙂\r\nLine two"
    model = FakeListChatModel(responses=[answer])
    app.langchain["fake-list"] = lambda: model.astream("hi")
    got = await receive(base_url, source="fake-list", tag="lc-fake-list")
    assert got.text.encode("utf-8") == answer.encode("utf-8")
    assert got.names.count("delta") == len(answer)  # FakeListChatModel streams characters
    assert got.done == {"finish_reason": "stop", "raw_finish_reason": None, "usage": None}
    result = await app.result("lc-fake-list")
    assert (result.reason, result.text) == ("completed", answer)


async def test_langchain_generic_fake_model_reasoning_and_text(proxy: tuple[Proxy, str]) -> None:
    app, base_url = proxy
    message = AIMessage(
        content="Das Ergebnis ist 42 ✨",
        additional_kwargs={"reasoning_content": "sechs mal sieben"},
    )
    model = GenericFakeChatModel(messages=iter([message]))
    app.langchain["generic"] = lambda: model.astream("hi")
    got = await receive(base_url, source="generic", tag="lc-generic")
    assert got.text == "Das Ergebnis ist 42 ✨"
    assert got.reasoning == "sechs mal sieben"
    assert got.done is not None and got.done["finish_reason"] == "stop"


async def test_langchain_tool_call_chunks_usage_and_stop_reason(proxy: tuple[Proxy, str]) -> None:
    app, base_url = proxy
    model = ScriptedChatModel(chunks=ANTHROPIC_LIKE)
    app.langchain["scripted"] = lambda: model.astream("weather?")
    got = await receive(base_url, source="scripted", tag="lc-scripted")
    assert got.reasoning == "도구가 필요해"
    assert got.text == "날씨를 확인할게요 ☔"
    assert got.tool_calls == [("toolu_01", "get_weather", {"city": "서울"})]
    assert got.done == {
        "finish_reason": "tool_calls",
        "raw_finish_reason": "tool_use",
        "usage": {
            "input_tokens": 12,
            "output_tokens": 30,
            "total_tokens": 42,
            "reasoning_tokens": 8,
        },
    }
    result = await app.result("lc-scripted")
    assert result.tool_calls == [ToolCall(0, "toolu_01", "get_weather", '{"city": "서울"}')]


# ChatAnthropic with no tools bound turns text blocks into plain strings and warns at the
# tool_use blocks of a recording made with tools; the warning is LangChain's, not sse-llm's.
@pytest.mark.filterwarnings("ignore:Received unexpected tool content block:UserWarning")
async def test_chat_anthropic_streams_normalise_as_the_anthropic_sdks_do(
    replay_server: ReplayServer,
) -> None:
    """Every Anthropic recording read by LangChain's real ``ChatAnthropic`` (which drives the
    ``anthropic`` SDK) over the replay server, 7-byte reads, three ways: no tools bound (text as
    strings), a server tool bound (content blocks), and the same with ``output_version="v1"``
    (LangChain's standard blocks): the answer the oracle reads in the recording, provider-run
    tools (started once their input is whole) included, and each tool call's fragments joined
    to its arguments.

    One test for all of them: ChatAnthropic keeps one HTTP client per base URL for the whole
    process (an ``lru_cache``), whose connections belong to the event loop that opened them.
    """
    paths = fixture_files("anthropic")
    assert len(paths) >= 8
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    for path, (bound, version) in itertools.product(
        paths, [(False, "v0"), (True, "v0"), (True, "v1")]
    ):
        case = (fixture_id(path), bound, version)
        model = ChatAnthropic(
            model=fixture_id(path),
            base_url=replay_server.base_url,
            api_key="test",
            max_retries=0,
            max_tokens=256,
            output_version=version,
            default_headers={"x-replay-file": fixture_id(path), "x-replay-chunk": CHUNK},
        )
        runnable = model.bind_tools([web_search]) if bound else model
        chunks = [chunk async for chunk in runnable.astream("hi")]
        want = expected(path)
        normalised = run_normalizer(chunks)
        text = "".join(e.text for e in normalised if isinstance(e, TextDelta))
        assert text == want.text, case
        reasoning = "".join(e.text for e in normalised if isinstance(e, ReasoningDelta))
        assert reasoning == want.reasoning, case
        calls = [e for e in normalised if isinstance(e, ToolCall)]
        assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == want.tool_calls, case
        for call in calls:
            fragments = [
                e.arguments
                for e in normalised
                if isinstance(e, ToolCallDelta) and e.index == call.index
            ]
            assert "".join(fragments) == call.arguments, case
        finishes = [e for e in normalised if isinstance(e, Finish)]
        assert [f.raw_reason for f in finishes] == [want.finish_reason], case
        assert activities_of(normalised) == want.tool_activities, case


async def test_langchain_chunks_fed_directly() -> None:
    model = ScriptedChatModel(chunks=ANTHROPIC_LIKE)
    chunks = [chunk async for chunk in model.astream("weather?")]
    assert chunks[-1].chunk_position == "last"
    events = run_normalizer(chunks)
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [
        ToolCallDelta(0, "toolu_01", "get_weather", ""),
        ToolCallDelta(0, "toolu_01", "get_weather", '{"city": '),
        ToolCallDelta(0, "toolu_01", "get_weather", '"서울"}'),
    ]
    assert events[-3:] == [
        ToolCall(0, "toolu_01", "get_weather", '{"city": "서울"}'),
        Finish("tool_calls", "tool_use"),
        Usage(12, 30, 42, 8),
    ]


def _chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _tool_fragment(**fields: Any) -> dict[str, Any]:
    return _chat_chunk({"tool_calls": [fields]})


async def test_chat_tool_call_fragments_without_index_or_with_a_reused_index() -> None:
    # Found in review: fragments were matched by index alone. Argument pieces without an index
    # after the first (Ollama, Gemini's OpenAI endpoint) became nameless calls, and a second
    # call given index 0 again with its own id (vLLM-style parsers) was glued onto the first.
    async def chunks(*items: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        for item in items:
            yield item

    def weather(**first: Any) -> dict[str, Any]:
        return _tool_fragment(
            **first, type="function", function={"name": "get_weather", "arguments": ""}
        )

    continued = await collect(
        chunks(
            weather(index=0, id="call_1"),
            _tool_fragment(function={"arguments": '{"city":'}),
            _tool_fragment(function={"arguments": '"Paris"}'}),
            _chat_chunk({}, "tool_calls"),
        )
    )
    reused = await collect(
        chunks(
            _tool_fragment(
                index=0, id="call_a", type="function", function={"name": "add", "arguments": ""}
            ),
            _tool_fragment(index=0, function={"arguments": '{"a":2}'}),
            weather(index=0, id="call_b"),
            _tool_fragment(index=0, function={"arguments": '{"city":"Tokyo"}'}),
            _chat_chunk({}, "tool_calls"),
        )
    )
    assert [(c.index, c.id, c.name, c.arguments) for c in continued.tool_calls] == [
        (0, "call_1", "get_weather", '{"city":"Paris"}')
    ]
    assert [(c.index, c.id, c.name, c.arguments) for c in reused.tool_calls] == [
        (0, "call_a", "add", '{"a":2}'),
        (1, "call_b", "get_weather", '{"city":"Tokyo"}'),
    ]
