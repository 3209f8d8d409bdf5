"""The non-streaming fallback: ``collect`` drains a source through the same normalisation as a
stream, ``result_json`` makes the JSON of a plain endpoint. Recorded provider streams are read
with ``sse_llm.sources`` and compared with the independent oracle of ``tests/support``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sse_llm import (
    ErrorEvent,
    ProviderError,
    StreamResult,
    TextDelta,
    ToolCall,
    collect,
    result_json,
)
from sse_llm.sources import json_array, ndjson, sse_json
from sse_llm.testing import FakeLLM

from .support.fixtures import all_fixture_files, expected, fixture_id
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn
from .support.upstream import Abort, partial_then_abort

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 97):
        yield body[i : i + 97]


def reader_for(path: Path) -> Any:
    if path.suffix == ".ndjson":
        return ndjson
    if path.suffix == ".json":
        return json_array
    return sse_json


@pytest.mark.parametrize("path", all_fixture_files(), ids=fixture_id)
async def test_collect_gives_the_whole_answer_of_every_recorded_provider_stream(
    path: Path,
) -> None:
    oracle = expected(path)
    body = await anyio.Path(path).read_bytes()
    result = await collect(reader_for(path)(chunks(body)))
    assert result.reason == "completed"
    assert result.text == oracle.text
    assert result.reasoning == oracle.reasoning
    assert result.finish is not None and result.finish.raw_reason == oracle.finish_reason
    assert [(c.id, c.name, json.loads(c.arguments or "null")) for c in result.tool_calls] == [
        (call_id, name, args) for call_id, name, args in oracle.tool_calls
    ]
    usage = None if result.usage is None else result.usage.as_dict()
    assert usage == oracle.full_usage
    assert len(result.citations) == len(oracle.citations)
    body = result_json(result)
    json.dumps(body)  # plain JSON
    assert body["text"] == oracle.text
    assert body["raw_finish_reason"] == oracle.finish_reason
    assert body["error"] is None and body["reason"] == "completed"


async def test_collect_reads_text_tokens_and_events_and_calls_the_hook_once() -> None:
    seen: list[StreamResult] = []

    async def source() -> AsyncIterator[Any]:
        yield "Hello"
        yield TextDelta(", world")
        yield ToolCall(0, "call_1", "get_weather", '{"city":"Seoul"}')

    result = await collect(source(), on_complete=seen.append)
    assert seen == [result]
    assert result.text == "Hello, world"
    assert result.finish is not None and result.finish.reason == "stop"
    assert result_json(result) == {
        "text": "Hello, world",
        "reasoning": "",
        "tool_calls": [
            {"index": 0, "id": "call_1", "name": "get_weather", "arguments": '{"city":"Seoul"}'}
        ],
        "citations": [],
        "tool_activity": [],
        "finish_reason": "stop",
        "raw_finish_reason": None,
        "usage": None,
        "error": None,
        "reason": "completed",
    }


async def test_collect_runs_a_sync_source_in_a_thread_and_closes_it() -> None:
    closed: list[bool] = []

    def tokens() -> Iterator[str]:
        try:
            yield from ["안녕", "하세요 ", "🙂"]
        finally:
            closed.append(True)

    result = await collect(tokens())
    assert result.text == "안녕하세요 🙂"
    assert closed == [True]


async def test_a_failing_source_keeps_the_partial_answer_and_a_safe_error() -> None:
    fake = FakeLLM("one two three four five", delay=0, fail_after=2)
    result = await collect(fake.stream())
    assert result.reason == "error"
    assert result.text == "one two"
    assert isinstance(result.error, RuntimeError)
    body = result_json(result)
    assert body["error"]["code"] == "internal_error"
    assert "hunter2" not in json.dumps(body)  # the exception's text never leaves
    assert fake.closed == 1


async def test_a_provider_error_keeps_the_providers_message() -> None:
    async def source() -> AsyncIterator[Any]:
        yield "partial "
        raise ProviderError("Rate limit reached", "rate_limit_exceeded")

    body = result_json(await collect(source()))
    assert body["text"] == "partial "
    assert body["error"] == {"message": "Rate limit reached", "code": "rate_limit_exceeded"}
    assert body["reason"] == "error"


async def test_a_provider_errors_half_character_is_u_fffd_as_in_the_stream() -> None:
    # Found in review: the stream sent U+FFFD for it, result_json kept the lone surrogate and
    # the JSON response's UTF-8 encode failed.
    async def source() -> AsyncIterator[Any]:
        yield "hi"
        raise ProviderError("bad \ud800", "x")

    body = result_json(await collect(source()))
    assert body["error"] == {"message": "bad \ufffd", "code": "x"}
    assert json.dumps(body, ensure_ascii=False).encode()  # encodes: no lone surrogate


async def test_an_in_stream_error_event_ends_the_answer() -> None:
    async def source() -> AsyncIterator[Any]:
        yield "a"
        yield ErrorEvent("overloaded", "overloaded_error")
        yield "never read"

    result = await collect(source())
    assert result.reason == "error" and result.text == "a"
    assert result_json(result)["error"] == {"message": "overloaded", "code": "overloaded_error"}


async def test_an_awaitable_source_is_awaited_and_its_failure_reported() -> None:
    async def refused() -> Any:
        raise ProviderError("invalid api key", "401")

    body = result_json(await collect(refused()))
    assert body["error"] == {"message": "invalid api key", "code": "401"}
    assert body["text"] == ""


async def test_a_server_configuration_error_is_not_shown_in_the_provider_s_words() -> None:
    # As the stream's error event: OpenAI's 401 text echoes part of the server's API key.
    async def refused() -> Any:
        raise ProviderError(
            "Incorrect API key provided: sk-proj-****xyz9", "invalid_api_key", status=401
        )

    result = await collect(refused())
    assert result_json(result)["error"] == {
        "message": "The model provider refused the server's request (HTTP status 401).",
        "code": "invalid_api_key",
    }
    assert isinstance(result.error, ProviderError) and "sk-proj" in result.error.message


async def test_a_base_exception_from_the_source_is_no_completed_answer() -> None:
    # The hook was told "completed", finish "stop", for an answer the exception cut short.
    seen: list[StreamResult] = []
    closed: list[bool] = []

    with pytest.raises(Abort):
        await collect(partial_then_abort(closed), on_complete=seen.append)
    [result] = seen
    assert result.reason == "error" and isinstance(result.error, Abort)
    assert result.text == "partial" and result.finish is None
    assert closed == [True]
    assert result_json(result)["error"]["code"] == "internal_error"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_source_s_own_nursery_cancelled_with_the_caller_is_disconnected() -> None:
    import trio

    seen: list[StreamResult] = []

    async def tokens() -> AsyncIterator[str]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            yield "a"
            await trio.sleep_forever()

    with trio.move_on_after(0.2):
        await collect(tokens(), on_complete=seen.append)
    [result] = seen
    assert result.reason == "disconnected" and result.error is None


async def test_a_hook_s_return_value_is_ignored() -> None:
    async def save(result: StreamResult) -> int:
        return 42

    assert (await collect(["a"], on_complete=save)).text == "a"


async def test_a_cancelled_caller_closes_the_source_and_reports_disconnected() -> None:
    fake = FakeLLM("slow " * 50, delay=0.05)
    seen: list[StreamResult] = []
    with anyio.move_on_after(0.3):
        await collect(fake.stream(), on_complete=seen.append)
    [result] = seen
    assert result.reason == "disconnected"
    assert result.text and len(result.text) < len("slow " * 50)
    assert fake.closed == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"format": None}, TypeError),
        ({"heartbeat": 5}, TypeError),
        ({"send_timeout": 5}, TypeError),
        ({"headers": {}}, TypeError),
        ({"keep_txt": True}, TypeError),
        ({"close_timeout": 0}, ValueError),
    ],
)
async def test_wire_options_and_misspelt_ones_are_refused(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await collect(["x"], **options)


async def test_collect_refuses_a_string_source() -> None:
    with pytest.raises(TypeError, match=r"\[text\]"):
        await collect("hello")  # type: ignore[arg-type]


def test_a_json_endpoint_answers_from_a_real_openai_sdk_stream(
    replay_server: ReplayServer,
) -> None:
    recording = "openai-chat/crewai-gpt4o-tool-call-usage.sse"
    oracle = expected(Path(__file__).resolve().parents[2] / "shared/fixtures/streams" / recording)

    async def complete(request: Request) -> JSONResponse:
        client = openai.AsyncOpenAI(base_url=replay_server.base_url + "/v1", api_key="k")
        stream = await client.chat.completions.create(
            model=recording,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        result = await collect(stream)
        await client.close()
        return JSONResponse(result_json(result))

    app = Starlette(routes=[Route("/complete", complete, methods=["POST"])])
    started = time.monotonic()
    with run_uvicorn(app) as base_url:
        response = httpx.post(base_url + "/complete", timeout=20)
    assert time.monotonic() - started < 20
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["text"] == oracle.text
    assert [(c["id"], c["name"]) for c in body["tool_calls"]] == [
        (call_id, name) for call_id, name, _ in oracle.tool_calls
    ]
    assert body["raw_finish_reason"] == oracle.finish_reason
    assert body["usage"]["input_tokens"] == oracle.usage["input_tokens"]  # type: ignore[index]


def test_result_json_of_a_collect_not_awaited_says_to_await_it() -> None:
    pending = collect(["a"])
    try:
        with pytest.raises(TypeError, match=r"await collect\(\.\.\.\)"):
            result_json(pending)  # type: ignore[arg-type]
    finally:
        pending.close()
