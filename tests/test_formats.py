"""The wire formats of ``sse_llm.formats``: JSON events, OpenAI Chat Completions chunks and the
AI SDK UI message stream (its reader runs in Node: tests/test_aisdk_node.py).

The OpenAI format is checked the way it is used, as a proxy: a recorded provider stream is
served by the replay server, read by the real ``openai`` SDK inside an sse-llm endpoint on a
real uvicorn, re-emitted as Chat Completions chunks, and read again by the real ``openai``
SDK; what that client gets must equal the independent oracle's reading of the recording."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat.chat_completion_message import Annotation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

import sse_llm.formats
from sse_llm import (
    Citation,
    ErrorEvent,
    EventStream,
    Finish,
    ReasoningDelta,
    ServerSentEvent,
    SSEDecoder,
    StreamEngine,
    StreamResult,
    TextDelta,
    ToolActivity,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sse_llm.client import aiter_events
from sse_llm.formats import (
    AISDKFormat,
    NamedEventsFormat,
    OpenAIChatFormat,
    TextFormat,
    TypedJSONFormat,
    WireFormat,
)
from sse_llm.starlette import SSEResponse
from sse_llm.testing import FakeLLM, StreamedResponse, run_stream, tokenize

from .support.fixtures import expected, fixture_files, fixture_id
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio

SAFE_ERROR = "The answer could not be completed because of an internal error."
ALL_FORMATS: list[WireFormat] = [
    NamedEventsFormat(),
    TextFormat(),
    TypedJSONFormat(),
    OpenAIChatFormat(),
    AISDKFormat(),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _json_data(response: StreamedResponse) -> list[Any]:
    """Every event's data parsed as JSON, the ``[DONE]`` sentinel kept as the string."""
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in response.events]


async def _events(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


# ------------------------------------------------------------------------------ the module


def test_the_formats_module_lists_every_format() -> None:
    names = {name for name in sse_llm.formats.__all__ if name.endswith("Format")}
    assert names == {
        "AISDKFormat",
        "NamedEventsFormat",
        "TypedJSONFormat",
        "OpenAIChatFormat",
        "TextFormat",
        "WireFormat",
    }
    assert sse_llm.formats.NamedEventsFormat is sse_llm.NamedEventsFormat


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: type(f).__name__)
async def test_every_format_frames_a_stream_as_valid_sse(fmt: WireFormat) -> None:
    llm = FakeLLM(delay=0)
    response = await run_stream(EventStream(llm.stream("x"), format=fmt, heartbeat=None))
    assert response.complete
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    # Everything decodes into events (no stray bytes), and each writer is a fresh one.
    assert response.events
    assert fmt.writer() is not fmt.writer()
    # The keep-alive is a comment every client ignores.
    assert SSEDecoder().feed(fmt.keepalive + b"\n")[0].__class__.__name__ == "Comment"


# ------------------------------------------------------------------------------ JSONEvents


async def test_json_events_stream_is_session_deltas_done_then_done_sentinel() -> None:
    llm = FakeLLM(delay=0)
    response = await run_stream(EventStream(llm.stream("hi"), format=TypedJSONFormat()))
    data = _json_data(response)
    assert b"event:" not in response.body  # unnamed: EventSource.onmessage gets them all
    session = data[0]
    assert session["type"] == "session"
    assert len(session["session_id"]) == 32 and len(session["message_id"]) == 32
    int(session["session_id"], 16), int(session["message_id"], 16)  # uuid4 hex
    deltas = [d for d in data[1:-2]]
    assert {d["type"] for d in deltas} == {"delta"}
    assert "".join(d["delta"] for d in deltas) == llm.text_for("hi")
    assert data[-2] == {
        "type": "done",
        "finish_reason": "stop",
        "raw_finish_reason": None,
        "usage": None,
    }
    assert data[-1] == "[DONE]"


async def test_json_events_carry_reasoning_tool_calls_and_usage() -> None:
    source = _events(
        ReasoningDelta("hmm\r\n"),
        TextDelta("a\rb"),
        ToolCallDelta(0, "call_1", "f", '{"x":'),
        ToolCall(0, "call_1", "f", '{"x":1}'),
        Finish("tool_calls", "tool_calls"),
        Usage(input_tokens=3, output_tokens=4),
    )
    fmt = TypedJSONFormat(session_id="conv-42")
    data = _json_data(await run_stream(EventStream(source, format=fmt)))
    assert data[0]["session_id"] == "conv-42"
    assert data[1:] == [
        {"type": "reasoning", "delta": "hmm\r\n"},
        {"type": "delta", "delta": "a\rb"},  # CR kept: text travels as a JSON string
        {"type": "tool_call", "index": 0, "id": "call_1", "name": "f", "arguments": '{"x":1}'},
        {
            "type": "done",
            "finish_reason": "tool_calls",
            "raw_finish_reason": "tool_calls",
            "usage": {"input_tokens": 3, "output_tokens": 4},
        },
        "[DONE]",
    ]


async def test_json_events_error_is_followed_by_the_done_sentinel() -> None:
    llm = FakeLLM(delay=0, fail_after=3)
    data = _json_data(await run_stream(EventStream(llm.stream(), format=TypedJSONFormat())))
    assert [d["type"] for d in data[1:-2]] == ["delta"] * 3
    assert data[-2] == {"type": "error", "message": SAFE_ERROR, "code": "internal_error"}
    assert data[-1] == "[DONE]"
    assert "hunter2" not in json.dumps(data)


async def test_json_events_provider_error_in_stream_keeps_its_message() -> None:
    source = _events("partial", ErrorEvent("Rate limit reached", "rate_limit_exceeded"))
    data = _json_data(await run_stream(EventStream(source, format=TypedJSONFormat())))
    assert data[1:] == [
        {"type": "delta", "delta": "partial"},
        {"type": "error", "message": "Rate limit reached", "code": "rate_limit_exceeded"},
        "[DONE]",
    ]


# ------------------------------------------------------------------------------ properties

_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


def _text_of(fmt: WireFormat, body: bytes) -> str:
    """The answer text a client of ``fmt`` reconstructs from a complete body."""
    events = SSEDecoder().feed(body)
    out: list[str] = []
    for event in events:
        data = getattr(event, "data", None)
        if data is None or data == "[DONE]":
            continue
        obj = json.loads(data)
        delta_type = "delta" if isinstance(fmt, TypedJSONFormat) else "text-delta"
        if isinstance(fmt, TypedJSONFormat | AISDKFormat) and obj["type"] == delta_type:
            out.append(obj["delta"])
        elif isinstance(fmt, OpenAIChatFormat) and obj.get("choices"):
            out.append(obj["choices"][0]["delta"].get("content") or "")
    return "".join(out)


@pytest.mark.parametrize(
    "fmt", [TypedJSONFormat(), OpenAIChatFormat(), AISDKFormat()], ids=lambda f: type(f).__name__
)
@settings(max_examples=150, deadline=None)
@given(tokens=st.lists(_TEXT, max_size=8))
def test_any_text_survives_every_json_format_exactly(fmt: WireFormat, tokens: list[str]) -> None:
    writer = fmt.writer()
    units = [*writer.start(), *(unit for t in tokens for unit in writer.text(t))]
    body = b"".join([*units, *writer.end(StreamResult(finish=Finish("stop")))])
    assert _text_of(fmt, body) == "".join(tokens)
    # One data line per event, whatever the text: no raw CR or LF inside a JSON line.
    assert all(line.startswith((b"data: ", b":")) or not line for line in body.split(b"\n"))


SPLITTERS = "a\x85b\u2028c\u2029d 한"  # NEL, LS, PS: line breaks to str.splitlines


@pytest.mark.parametrize(
    "fmt",
    [NamedEventsFormat(), TypedJSONFormat(), OpenAIChatFormat(), AISDKFormat()],
    ids=lambda f: type(f).__name__,
)
async def test_json_text_is_one_line_to_python_s_splitlines(fmt: WireFormat) -> None:
    # Found in review: JSON leaves NEL, LS and PS raw; httpx's iter_lines (str.splitlines)
    # split the data line there and a client's json.loads failed mid-answer.
    async def answer() -> AsyncIterator[object]:
        yield SPLITTERS
        yield ToolCall(0, "call_1", "f", json.dumps({"q": SPLITTERS}, ensure_ascii=False))
        yield ErrorEvent(SPLITTERS, "x")

    body = (await run_stream(EventStream(answer(), format=fmt))).body.decode()
    lines = [line for line in body.splitlines() if line]
    assert all(line.startswith(("data: ", "event: ", ":")) for line in lines), lines
    payloads = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert SPLITTERS in json.dumps(payloads, ensure_ascii=False)  # the text, decoded whole
    assert sum(json.dumps(p, ensure_ascii=False).count(SPLITTERS) for p in payloads) >= 2


# ------------------------------------------------------------------------------ AI SDK (shape)


async def test_aisdk_parts_follow_the_protocol_order() -> None:
    source = _events(
        ReasoningDelta("think"),
        "Hel",
        "lo",
        ToolCallDelta(0, "call_1", "weather", '{"city":'),
        ToolCallDelta(0, "call_1", "weather", '"Paris"}'),
        ToolCall(0, "call_1", "weather", '{"city":"Paris"}'),
        Finish("tool_calls", "tool_calls"),
    )
    response = await run_stream(EventStream(source, format=AISDKFormat()))
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    data = _json_data(response)
    message_id = data[0]["messageId"]
    assert message_id.startswith("msg-")
    assert data[1:] == [
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "think"},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "weather"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '"Paris"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "call_1",
            "toolName": "weather",
            "input": {"city": "Paris"},
        },
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "tool-calls"},
        "[DONE]",
    ]


async def test_aisdk_error_closes_the_open_part_and_finishes_with_error() -> None:
    llm = FakeLLM(delay=0, fail_after=2)
    data = _json_data(await run_stream(EventStream(llm.stream(), format=AISDKFormat())))
    types = [d if isinstance(d, str) else d["type"] for d in data]
    assert types == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "error",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    assert data[6]["errorText"] == SAFE_ERROR
    assert data[8]["finishReason"] == "error"


async def test_aisdk_usage_goes_into_message_metadata_only_when_asked() -> None:
    source = [TextDelta("x"), Usage(input_tokens=1, output_tokens=2)]
    plain = _json_data(await run_stream(EventStream(list(source), format=AISDKFormat())))
    assert plain[-2] == {"type": "finish", "finishReason": "stop"}
    fmt = AISDKFormat(usage_metadata=True)
    with_usage = _json_data(await run_stream(EventStream(list(source), format=fmt)))
    assert with_usage[-2]["messageMetadata"] == {"usage": {"input_tokens": 1, "output_tokens": 2}}


# ------------------------------------------------------------------------------ OpenAI (shape)


async def test_openai_chunks_have_the_chat_completion_chunk_shape() -> None:
    source = _events(
        ReasoningDelta("r"),
        "Hi",
        ToolCall(3, "", "lookup", '{"q":"x"}'),  # whole call (Gemini-style), no id
        Finish("other", "MALFORMED"),
        Usage(input_tokens=5, output_tokens=7, reasoning_tokens=2),
    )
    fmt = OpenAIChatFormat(model="my-model")
    data = _json_data(await run_stream(EventStream(source, format=fmt)))
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"my-model"}
    assert len({c["created"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "r"}
    assert deltas[2] == {"content": "Hi"}
    [call] = deltas[3]["tool_calls"]
    assert call["index"] == 0  # renumbered from the source's 3
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "lookup", "arguments": '{"q":"x"}'}
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


# ------------------------------------------------------------------------------ OpenAI proxy


class OpenAIProxy:
    """``POST /v1/chat/completions`` that streams a recorded upstream back as OpenAI chunks."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.results: list[StreamResult] = []

    async def completions(self, request: Request) -> SSEResponse:
        body = await request.json()
        model = body["model"]
        source: Any
        upstream: openai.AsyncOpenAI | None = None
        if model == "cited":
            source = _cited_source()
        elif model.startswith("fake"):
            fail_after = int(model.split(":")[1]) if ":" in model else None
            source = FakeLLM(delay=0.001, fail_after=fail_after).stream("proxy")
        else:
            upstream = openai.AsyncOpenAI(
                base_url=self.upstream + "/v1", api_key="test", max_retries=0, timeout=10
            )
            source = await upstream.chat.completions.create(
                model=model, messages=body["messages"], stream=True
            )

        async def done(result: StreamResult) -> None:
            if upstream is not None:
                await upstream.close()  # on this loop: not left to a later garbage collection
            self.results.append(result)

        return SSEResponse(source, format=OpenAIChatFormat(model=model), on_complete=done)


@pytest.fixture
def openai_proxy(replay_server: ReplayServer) -> Iterator[tuple[OpenAIProxy, str]]:
    proxy = OpenAIProxy(replay_server.base_url)
    app = Starlette(routes=[Route("/v1/chat/completions", proxy.completions, methods=["POST"])])
    with run_uvicorn(app) as base_url:
        yield proxy, base_url


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test", max_retries=0, timeout=10)


PROXIED = fixture_files("openai-chat") + fixture_files("mistral")


@pytest.mark.parametrize("path", PROXIED, ids=fixture_id)
async def test_openai_sdk_reads_the_proxied_stream_exactly(
    path: Path, openai_proxy: tuple[OpenAIProxy, str]
) -> None:
    proxy, base_url = openai_proxy
    want = expected(path)
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    ids: set[str] = set()
    async with _client(base_url) as client:
        stream = await client.chat.completions.create(
            model=fixture_id(path), messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            ids.add(chunk.id)
            assert chunk.object == "chat.completion.chunk"
            assert chunk.model == fixture_id(path)
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(exclude_none=True)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                extra = delta.model_extra or {}
                if extra.get("reasoning_content"):
                    reasoning.append(extra["reasoning_content"])
                for call in delta.tool_calls or ():
                    state = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    fn = call.function
                    state["id"] = call.id or state["id"]
                    state["name"] = (fn.name if fn else None) or state["name"]
                    state["arguments"] += (fn.arguments if fn else None) or ""
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
    assert len(ids) == 1
    assert "".join(text) == want.text
    assert "".join(reasoning) == want.reasoning
    got_calls = [
        (c["id"], c["name"], json.loads(c["arguments"] or "{}")) for _, c in sorted(calls.items())
    ]
    assert got_calls == want.tool_calls
    assert finish == want.finish_reason
    if want.usage is None:
        assert usage is None
    else:
        assert usage is not None
        got_usage = {
            "input_tokens": usage.get("prompt_tokens"),
            "output_tokens": usage.get("completion_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }
        if "completion_tokens_details" in usage:
            got_usage["reasoning_tokens"] = usage["completion_tokens_details"]["reasoning_tokens"]
        assert got_usage == want.usage
    # The hook runs right after the last send, maybe after the client finished reading.
    with anyio.fail_after(5):
        while not proxy.results:  # noqa: ASYNC110 (appended in the server's thread)
            await anyio.sleep(0.01)
    [result] = proxy.results
    assert result.reason == "completed"
    assert result.text == want.text


async def test_openai_sdk_stream_helper_assembles_the_tool_calls(
    openai_proxy: tuple[OpenAIProxy, str],
) -> None:
    """The SDK's accumulating helper (``chat.completions.stream``) builds the final message."""
    _, base_url = openai_proxy
    path = next(p for p in PROXIED if p.name == "magentic-gpt4o-parallel-tool-calls.sse")
    want = expected(path)
    async with (
        _client(base_url) as client,
        client.chat.completions.stream(
            model=fixture_id(path), messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        completion = await stream.get_final_completion()
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    calls = [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in choice.message.tool_calls or ()
        if c.type == "function"
    ]
    assert calls == want.tool_calls


async def test_openai_sdk_raises_the_streamed_error(
    openai_proxy: tuple[OpenAIProxy, str],
) -> None:
    _, base_url = openai_proxy
    text: list[str] = []
    async with _client(base_url) as client:
        stream = await client.chat.completions.create(
            model="fake:4", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError) as raised:
            async for chunk in stream:
                text.extend(c.delta.content or "" for c in chunk.choices)
    assert raised.value.message == SAFE_ERROR
    assert "".join(text) == "".join(tokenize(FakeLLM().text_for("proxy"))[:4])


async def test_openai_format_is_plain_sse_for_any_http_client(
    openai_proxy: tuple[OpenAIProxy, str],
) -> None:
    """No SDK: httpx and the spec decoder see ``data:`` JSON chunks and the sentinel."""
    _, base_url = openai_proxy
    body = {"model": "fake", "messages": [], "stream": True}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", base_url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        data = [event.data async for event in aiter_events(response)]
    assert data[-1] == "[DONE]"
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in map(json.loads, data[:-1])
        if c["choices"]
    )
    assert text == FakeLLM().text_for("proxy")


# ------------------------------------------------------------------ sources and provider tools

SEARCH_STARTED = ToolActivity("ws_1", "web_search", "started", "météo Paris", {"query": "météo"})
SEARCH_DONE = ToolActivity("ws_1", "web_search", "finished", "5 results", {"query": "météo"})
CODE_FAILED = ToolActivity("ci_1", "code_execution", "failed", "execution_time_exceeded")
PAGE = Citation("url", url="https://météo.example/paris", title="Paris — météo", start=0, end=6)
PAGE_AGAIN = Citation(
    "url", url="https://météo.example/paris", title="Paris — météo", start=7, end=9
)
FILE = Citation("file", title="chart.png", document_id="cfile_1", container_id="cntr_1")
NUMBERED = Citation("url", url="https://b.example", index=2)
CITED = [SEARCH_STARTED, "Sunny.", SEARCH_DONE, " 🙂", PAGE, PAGE_AGAIN, FILE, NUMBERED]
CITED += [CODE_FAILED, Finish("pause", "pause_turn")]

SOURCE_FIELDS = {
    "kind": "url",
    "url": "https://météo.example/paris",
    "title": "Paris — météo",
    "document_id": None,
    "container_id": None,
    "cited_text": None,
    "start": 0,
    "end": 6,
    "index": None,
}
FILE_FIELDS = SOURCE_FIELDS | {
    "kind": "file",
    "url": None,
    "title": "chart.png",
    "document_id": "cfile_1",
    "container_id": "cntr_1",
    "start": None,
    "end": None,
}
NUMBERED_FIELDS = SOURCE_FIELDS | {
    "url": "https://b.example",
    "title": None,
    "start": None,
    "end": None,
    "index": 2,
}


def _activity(a: ToolActivity) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "status": a.status, "summary": a.summary}


async def test_named_events_carry_sources_and_provider_tools_and_a_paused_finish() -> None:
    response = await run_stream(EventStream(_events(*CITED)))
    events = [(e.event, json.loads(e.data)) for e in response.events]
    assert events == [
        ("tool_activity", _activity(SEARCH_STARTED)),  # no input: never more than asked
        ("delta", {"text": "Sunny."}),
        ("tool_activity", _activity(SEARCH_DONE)),
        ("delta", {"text": " 🙂"}),
        ("source", SOURCE_FIELDS),
        ("source", SOURCE_FIELDS | {"start": 7, "end": 9}),  # every citation, with its span
        ("source", FILE_FIELDS),
        ("source", NUMBERED_FIELDS),
        ("tool_activity", _activity(CODE_FAILED)),
        ("done", {"finish_reason": "pause", "raw_finish_reason": "pause_turn", "usage": None}),
    ]
    # The spans count characters of the answer text, as a Python str does.
    assert "Sunny. 🙂"[0:6] == "Sunny."


async def test_named_events_send_a_tools_input_only_when_asked() -> None:
    fmt = NamedEventsFormat(activity_input=True)
    response = await run_stream(EventStream(_events(SEARCH_STARTED, CODE_FAILED), format=fmt))
    assert [json.loads(e.data) for e in response.events[:2]] == [
        _activity(SEARCH_STARTED) | {"input": {"query": "météo"}},
        _activity(CODE_FAILED) | {"input": None},
    ]


async def test_typed_json_carries_sources_and_provider_tools() -> None:
    fmt = TypedJSONFormat(activity_input=True)
    data = _json_data(await run_stream(EventStream(_events(*CITED), format=fmt)))
    assert data[1:] == [
        {"type": "tool_activity", **_activity(SEARCH_STARTED), "input": {"query": "météo"}},
        {"type": "delta", "delta": "Sunny."},
        {"type": "tool_activity", **_activity(SEARCH_DONE), "input": {"query": "météo"}},
        {"type": "delta", "delta": " 🙂"},
        {"type": "source", **SOURCE_FIELDS},
        {"type": "source", **SOURCE_FIELDS, "start": 7, "end": 9},
        {"type": "source", **FILE_FIELDS},
        {"type": "source", **NUMBERED_FIELDS},
        {"type": "tool_activity", **_activity(CODE_FAILED), "input": None},
        {
            "type": "done",
            "finish_reason": "pause",
            "raw_finish_reason": "pause_turn",
            "usage": None,
        },
        "[DONE]",
    ]


async def test_text_format_carries_the_text_only() -> None:
    response = await run_stream(EventStream(_events(*CITED), format=TextFormat()))
    assert [(e.event, e.data) for e in response.events] == [
        ("message", "Sunny."),
        ("message", " 🙂"),
        ("done", '{"finish_reason":"pause"}'),
    ]


async def test_aisdk_sources_are_source_parts_and_provider_tools_are_provider_executed() -> None:
    data = _json_data(await run_stream(EventStream(_events(*CITED), format=AISDKFormat())))
    head = {"toolCallId": "ws_1", "toolName": "web_search", "providerExecuted": True}
    assert data[1:] == [
        {"type": "start-step"},
        {"type": "tool-input-start", **head},
        {"type": "tool-input-available", **head, "input": {"query": "météo"}},
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "Sunny."},
        {
            "type": "tool-output-available",
            "toolCallId": "ws_1",
            "providerExecuted": True,
            "output": {"summary": "5 results"},
        },
        {"type": "text-delta", "id": "text-0", "delta": " 🙂"},
        {
            "type": "source-url",
            "sourceId": "source-0",
            "url": "https://météo.example/paris",
            "title": "Paris — météo",
        },
        # PAGE_AGAIN: the same source, no second part.
        {
            "type": "source-document",
            "sourceId": "source-1",
            "mediaType": "image/png",
            "title": "chart.png",
            "filename": "chart.png",
            "providerMetadata": {"sseLlm": {"documentId": "cfile_1", "containerId": "cntr_1"}},
        },
        {
            "type": "source-url",
            "sourceId": "source-2",
            "url": "https://b.example",
            "providerMetadata": {"sseLlm": {"index": 2}},
        },
        {"type": "text-end", "id": "text-0"},
        # Gemini-style: a tool reported only once it ended gets its input parts first.
        {
            "type": "tool-input-start",
            "toolCallId": "ci_1",
            "toolName": "code_execution",
            "providerExecuted": True,
        },
        {
            "type": "tool-input-available",
            "toolCallId": "ci_1",
            "toolName": "code_execution",
            "providerExecuted": True,
            "input": {},
        },
        {
            "type": "tool-output-error",
            "toolCallId": "ci_1",
            "providerExecuted": True,
            "errorText": "execution_time_exceeded",
        },
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "other"},  # the AI SDK has no "paused"
        "[DONE]",
    ]


async def test_aisdk_pairs_an_id_less_provider_tool_with_its_end() -> None:
    # Found in review: an id-less ToolActivity (an app's own source) got a new toolCallId at
    # its start and at its end, so the started part never completed (the HTML formats pair
    # them). Each id-less tool gets one id for its start and its end.
    items = [
        ToolActivity("", "web_search", "started", summary="q"),
        ToolActivity("", "web_search", "finished", summary="3 results"),
        ToolActivity("", "code_execution", "failed", summary="boom"),  # reported at its end only
        "ok",
    ]
    data = _json_data(await run_stream(EventStream(_events(*items), format=AISDKFormat())))
    tool_parts = [d for d in data if isinstance(d, dict) and "toolCallId" in d]
    ids = [d["toolCallId"] for d in tool_parts]
    assert [d["type"] for d in tool_parts] == [
        "tool-input-start",
        "tool-input-available",
        "tool-output-available",
        "tool-input-start",
        "tool-input-available",
        "tool-output-error",
    ]
    assert len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]


async def test_openai_chunks_carry_url_citations_as_annotations_and_nothing_else() -> None:
    data = _json_data(await run_stream(EventStream(_events(*CITED), format=OpenAIChatFormat())))
    deltas = [c["choices"][0] for c in data[:-1] if c["choices"]]
    annotations = [d["delta"]["annotations"] for d in deltas if "annotations" in d["delta"]]
    assert annotations == [
        [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": "https://météo.example/paris",
                    "title": "Paris — météo",
                    "start_index": 0,
                    "end_index": 6,
                },
                "index": 0,
            }
        ],
        [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": "https://météo.example/paris",
                    "title": "Paris — météo",
                    "start_index": 7,
                    "end_index": 9,
                },
                "index": 1,
            }
        ],
        [
            {
                "type": "url_citation",
                # No span: 0/0, OpenRouter's "not located"; no title: "".
                "url_citation": {
                    "url": "https://b.example",
                    "title": "",
                    "start_index": 0,
                    "end_index": 0,
                },
                "index": 2,
            }
        ],
    ]
    # The file citation and every provider tool have no Chat Completions shape: dropped.
    kinds = {key for d in deltas for key in d["delta"]}
    assert kinds == {"role", "content", "annotations"}
    assert deltas[-1]["finish_reason"] == "length"  # a paused turn is not a complete one


async def test_every_json_format_passes_hostile_sources_through_as_data() -> None:
    """A JSON format carries what the provider said; escaping and link checks are the
    renderer's (the HTML formats and the demo do both). Nothing is lost or rewritten."""
    from .support.xss import HOSTILE_SOURCES

    response = await run_stream(EventStream(_events("x", *HOSTILE_SOURCES)))
    sources = [json.loads(e.data) for e in response.events if e.event == "source"]
    assert [(s["url"], s["title"]) for s in sources] == [(c.url, c.title) for c in HOSTILE_SOURCES]


# -- the openai SDK reads the annotations back


async def _cited_source() -> AsyncIterator[Any]:
    yield SEARCH_STARTED
    yield "Il fait beau à Paris. "
    yield SEARCH_DONE
    yield "Source: météo."
    yield Citation("url", url="https://météo.example/paris", title="Paris", start=0, end=21)
    yield FILE  # no Chat Completions shape
    yield Citation("url", url="https://b.example/x", start=22, end=36)
    yield Citation("url", url="https://c.example/")


OPENAI_CITED = [
    ("https://météo.example/paris", "Paris", 0, 21),
    ("https://b.example/x", "", 22, 36),
    ("https://c.example/", "", 0, 0),
]


async def test_openai_sdk_reads_the_annotations_of_each_chunk(
    openai_proxy: tuple[OpenAIProxy, str],
) -> None:
    _, base_url = openai_proxy
    got: list[Any] = []
    text: list[str] = []
    async with _client(base_url) as client:
        stream = await client.chat.completions.create(
            model="cited", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                # Not a field of the SDK's ChoiceDelta type: the SDK keeps it as an extra.
                for raw in (choice.delta.model_extra or {}).get("annotations") or ():
                    got.append(Annotation.model_validate(raw))
    assert "".join(text) == "Il fait beau à Paris. Source: météo."
    assert [
        (
            a.url_citation.url,
            a.url_citation.title,
            a.url_citation.start_index,
            a.url_citation.end_index,
        )
        for a in got
    ] == OPENAI_CITED
    assert "".join(text)[0:21] == "Il fait beau à Paris."


async def test_openai_sdk_stream_helper_assembles_the_annotations(
    openai_proxy: tuple[OpenAIProxy, str],
) -> None:
    """``chat.completions.stream`` merges the annotation deltas (by their ``index``) into the
    final message's typed ``annotations``."""
    _, base_url = openai_proxy
    async with (
        _client(base_url) as client,
        client.chat.completions.stream(
            model="cited", messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        completion = await stream.get_final_completion()
    [choice] = completion.choices
    annotations = choice.message.annotations or []
    assert all(type(a).__name__ == "Annotation" for a in annotations)
    assert [
        (
            a.url_citation.url,
            a.url_citation.title,
            a.url_citation.start_index,
            a.url_citation.end_index,
        )
        for a in annotations
    ] == OPENAI_CITED
    assert choice.message.content == "Il fait beau à Paris. Source: météo."


# -- found in review: what strict clients of each format would refuse ---------------------------


def _strict_json(line: str) -> Any:
    """JSON as a JavaScript client's JSON.parse reads it: no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"JSON.parse refuses {constant}")

    return json.loads(line, parse_constant=refuse)


def _wire_json(engine: StreamEngine, items: list[Any], reason: Any = "completed") -> list[Any]:
    wire = engine.start() + b"".join(engine.feed(item) for item in items) + engine.close(reason)
    return [
        _strict_json(e.data)
        for e in SSEDecoder().feed(wire)
        if isinstance(e, ServerSentEvent) and e.data != "[DONE]"
    ]


def test_openai_usage_chunk_always_has_the_three_required_counts() -> None:
    # CompletionUsage requires prompt_tokens, completion_tokens and total_tokens; Gemini
    # leaves its candidates count out when thinking ran into max tokens.
    engine = StreamEngine(OpenAIChatFormat(include_usage=True))
    data = _wire_json(engine, ["x", Finish("length"), Usage(input_tokens=9, total_tokens=50)])
    usage = data[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        9,
        41,
        50,
    )
    only_total = _wire_json(
        StreamEngine(OpenAIChatFormat(include_usage=True)), [Usage(total_tokens=7)]
    )
    assert {
        k: only_total[-1]["usage"][k]
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    } == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 7,
    }


def test_openai_format_holds_fragments_of_a_call_until_its_name_comes() -> None:
    items = [
        ToolCallDelta(0, "", "", '{"a":'),
        ToolCallDelta(0, "call_1", "f", "1}"),
        ToolCall(0, "call_1", "f", '{"a":1}'),
        Finish("tool_calls"),
    ]
    deltas = [
        c["choices"][0]["delta"]
        for c in _wire_json(StreamEngine(OpenAIChatFormat()), items)
        if c["choices"]
    ]
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    assert calls == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a":1}'},
        }
    ]


def test_aisdk_tool_input_that_is_not_json_is_a_tool_input_error() -> None:
    data = _wire_json(StreamEngine(AISDKFormat()), [ToolCall(0, "c", "f", '{"x": NaN}')])
    parts = [d for d in data if d["type"].startswith("tool-input")]
    assert [p["type"] for p in parts] == ["tool-input-start", "tool-input-error"]
    assert parts[-1]["input"] == '{"x": NaN}'
    activity = ToolActivity("t1", "code_execution", "started", input={"limit": float("inf")})
    [available] = [
        d
        for d in _wire_json(StreamEngine(AISDKFormat()), [activity])
        if d["type"] == "tool-input-available"
    ]
    assert available["input"] == {"limit": "Infinity"}


@pytest.mark.parametrize("reason", ["shutdown", "error"])
def test_aisdk_text_part_is_closed_before_the_error_when_a_provider_stream_is_cut(
    reason: str,
) -> None:
    # An Anthropic stream: text, then a web search whose input is still streaming when the
    # stream is cut. The writer closed the text part for the pending tool's events, whose
    # units were then dropped: no text-end at all.
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "claude",
                "content": [],
                "usage": {"input_tokens": 1, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": "we'},
        },
    ]
    engine = StreamEngine(AISDKFormat())
    error = RuntimeError("the source failed") if reason == "error" else None
    wire = engine.start() + b"".join(engine.feed(e) for e in events)
    wire += engine.close("completed" if error else "shutdown", error)
    kinds = [
        json.loads(e.data)["type"]
        for e in SSEDecoder().feed(wire)
        if isinstance(e, ServerSentEvent) and e.data != "[DONE]"
    ]
    assert "text-end" in kinds and kinds.index("text-end") < kinds.index("error"), kinds
    assert kinds.count("text-start") == kinds.count("text-end") == 1


def test_openai_format_sends_a_call_whose_name_never_came_at_the_end() -> None:
    items = [
        ToolCallDelta(0, "", "", '{"a":'),
        ToolCallDelta(0, "", "", "1}"),
        Finish("tool_calls"),
    ]
    chunks = _wire_json(StreamEngine(OpenAIChatFormat()), items)
    calls = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", ())
    ]
    assert [(c["index"], c["function"]) for c in calls] == [
        (0, {"name": "", "arguments": '{"a":1}'})
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
