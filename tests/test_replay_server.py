"""The replay server speaks each provider's wire format well enough for the
real SDKs, and it observes client disconnects promptly."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anthropic
import anyio
import httpx
import openai
import pytest

from tests.support.fixtures import FIXTURES, expected, fixture_files, fixture_id, parse_body
from tests.support.plugin import ReplayServer
from tests.support.replay import CONTENT_TYPES, split_chunks

pytestmark = pytest.mark.anyio

# Any: the SDKs want their own TypedDicts; the replay server ignores the prompt.
MESSAGES: Any = [{"role": "user", "content": "hi"}]
TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _openai(server: ReplayServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="test", max_retries=0, timeout=5.0
    )


def _anthropic(server: ReplayServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="test", max_retries=0, timeout=5.0
    )


# ------------------------------------------------------------------ SDKs


@pytest.mark.parametrize(
    "path", fixture_files("openai-chat") + fixture_files("mistral"), ids=fixture_id
)
@pytest.mark.parametrize("size", [None, "5"], ids=["events", "5-bytes"])
async def test_openai_sdk_chat_completions(
    replay_server: ReplayServer, path: Path, size: str | None
) -> None:
    exp = expected(path)
    text: list[str] = []
    finish: str | None = None
    async with _openai(replay_server) as client:
        stream = await client.chat.completions.create(
            model=fixture_id(path),
            messages=MESSAGES,
            stream=True,
            # 5-byte pieces split CRLF pairs and emoji: the SDK's decoder must cope.
            extra_headers={"x-replay-chunk": size} if size else None,
        )
        async for chunk in stream:
            if not chunk.choices:  # Azure's first chunk, OpenAI's usage chunk
                continue
            choice = chunk.choices[0]
            if isinstance(choice.delta.content, str):
                text.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(text) == exp.text
    assert finish == exp.finish_reason


@pytest.mark.parametrize("path", fixture_files("anthropic"), ids=fixture_id)
async def test_anthropic_sdk_messages(replay_server: ReplayServer, path: Path) -> None:
    exp = expected(path)
    text: list[str] = []
    async with _anthropic(replay_server) as client:
        stream = await client.messages.create(
            model=fixture_id(path), max_tokens=64, messages=MESSAGES, stream=True
        )
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text.append(event.delta.text)
    assert "".join(text) == exp.text


@pytest.mark.parametrize("path", fixture_files("anthropic"), ids=fixture_id)
async def test_anthropic_sdk_accumulator_agrees_with_oracle(
    replay_server: ReplayServer, path: Path
) -> None:
    # A second, independent reading (the SDK's own accumulator) of stop reason,
    # usage and tool calls, to keep the oracle honest.
    exp = expected(path)
    async with (
        _anthropic(replay_server) as client,
        client.messages.stream(model=fixture_id(path), max_tokens=64, messages=MESSAGES) as stream,
    ):
        message = await stream.get_final_message()
    assert message.stop_reason == exp.finish_reason
    assert exp.usage == {
        "input_tokens": message.usage.input_tokens,
        "output_tokens": message.usage.output_tokens,
    }
    tool_uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert tool_uses == exp.tool_calls


@pytest.mark.parametrize("path", fixture_files("openai-responses"), ids=fixture_id)
async def test_openai_sdk_responses(replay_server: ReplayServer, path: Path) -> None:
    exp = expected(path)
    text: list[str] = []
    terminal = None
    async with _openai(replay_server) as client:
        stream = await client.responses.create(model=fixture_id(path), input="hi", stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                text.append(event.delta)
            elif event.type in ("response.completed", "response.incomplete"):
                terminal = event.response
    assert "".join(text) == exp.text
    assert terminal is not None
    assert terminal.usage is not None
    assert exp.usage is not None
    assert terminal.usage.input_tokens == exp.usage["input_tokens"]
    assert terminal.usage.output_tokens == exp.usage["output_tokens"]


async def test_openai_sdk_sees_http_errors(replay_server: ReplayServer) -> None:
    async with _openai(replay_server) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="openai-chat/langchaingo-gpt-basic-usage.sse",
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-replay-status": "500"},
            )


async def test_anthropic_sdk_sees_http_errors(replay_server: ReplayServer) -> None:
    async with _anthropic(replay_server) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(
                model="anthropic/langchaingo-basic.sse",
                max_tokens=64,
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-replay-status": "529"},
            )
    assert info.value.status_code == 529


# ------------------------------------------------------------------ raw bytes

BYTE_EXACT = [
    "gemini/louter-japanese-after-tool.sse",  # CJK, LF only
    "gemini/louter-function-call-crlf.sse",  # CRLF
    "anthropic/llm-emoji-after-tool.sse",  # 4-byte UTF-8
    "openai-chat/openrouter-annotations-comments-emoji.sse",  # comments + emoji
    "gemini-json-array/llm-gemini-thought-and-function-call.json",
    "ollama/openllmetry-generate-emoji.ndjson",
]


@pytest.mark.parametrize("name", BYTE_EXACT)
async def test_one_byte_chunks_are_byte_exact(replay_server: ReplayServer, name: str) -> None:
    path = FIXTURES / name
    async with (
        httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={},
            headers={"x-replay-file": name, "x-replay-chunk": "1"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPES[path.suffix]
        body = b"".join([piece async for piece in response.aiter_raw()])
    assert body == await anyio.Path(path).read_bytes()


@pytest.mark.parametrize("path", fixture_files("gemini"), ids=fixture_id)
async def test_gemini_sse_selected_by_url_path(replay_server: ReplayServer, path: Path) -> None:
    model = quote(fixture_id(path), safe="")
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        response = await client.post(
            f"/v1beta/models/{model}:streamGenerateContent", params={"alt": "sse"}, json={}
        )
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert parse_body("gemini", response.content) == expected(path)


@pytest.mark.parametrize("path", fixture_files("gemini-json-array"), ids=fixture_id)
async def test_gemini_json_array_without_alt(replay_server: ReplayServer, path: Path) -> None:
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        response = await client.post(f"/v1beta/models/{path.name}:streamGenerateContent", json={})
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.content == await anyio.Path(path).read_bytes()


@pytest.mark.parametrize("path", fixture_files("ollama"), ids=fixture_id)
async def test_ollama_endpoints(replay_server: ReplayServer, path: Path) -> None:
    endpoint = "/api/generate" if "generate" in path.name else "/api/chat"
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        response = await client.post(endpoint, json={"model": path.name, "stream": True})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert parse_body("ollama", response.content) == expected(path)


async def test_unknown_recording_is_404(replay_server: ReplayServer) -> None:
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        missing = await client.post("/v1/chat/completions", json={"model": "nope.sse"})
        escape = await client.post("/api/chat", json={"model": "../../../../etc/passwd"})
    assert missing.status_code == escape.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        p
        for fmt in ("gemini", "anthropic", "ollama", "gemini-json-array")
        for p in fixture_files(fmt)
    ],
    ids=fixture_id,
)
def test_default_chunks_end_at_event_boundaries(path: Path) -> None:
    data = path.read_bytes()
    chunks = split_chunks(data, path.suffix)
    assert b"".join(chunks) == data
    assert len(chunks) > 1 or data.count(b"data:") == 1
    for piece in chunks[:-1] if path.suffix == ".json" else chunks:
        if path.suffix == ".sse":
            assert piece.endswith((b"\n\n", b"\r\n\r\n"))
            assert piece.count(b"data:") == 1
        elif path.suffix == ".ndjson":
            json.loads(piece)
        else:
            assert piece.endswith(b"}\n")


# ------------------------------------------------------------------ lifecycle


async def test_completed_request_is_recorded(replay_server: ReplayServer) -> None:
    tag = uuid.uuid4().hex
    name = "mistral/openinference-basic.sse"
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": name}, headers={"x-replay-tag": tag}
        )
    assert response.content == await anyio.Path(FIXTURES / name).read_bytes()
    rec = await replay_server.app.wait_closed_async(1.0, tag=tag)
    assert rec.file == name
    assert rec.completed and not rec.closed_early
    assert rec.closed_at is None
    assert rec.chunks_sent == 7  # six events and [DONE]
    assert rec.finished_at is not None and rec.finished_at >= rec.started_at


async def test_early_client_close_is_noticed(replay_server: ReplayServer) -> None:
    tag = uuid.uuid4().hex
    path = FIXTURES / "mistral/openllmetry-long-text.sse"  # 80+ events * 0.2 s
    async with httpx.AsyncClient(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": fixture_id(path)},
            headers={"x-replay-delay": "0.2", "x-replay-tag": tag},
        ) as response:
            async for _ in response.aiter_raw():
                break  # first chunk read; leaving the block closes the connection
        closed_by_client = time.monotonic()

    rec = await replay_server.app.wait_closed_async(1.0, tag=tag)
    assert rec.closed_early
    assert not rec.completed
    assert rec.closed_at is not None
    assert rec.closed_at - closed_by_client < 1.0
    # Noticed while sleeping between chunks, not by a later failed write.
    assert 1 <= rec.chunks_sent <= 2
    assert rec.bytes_sent < (await anyio.Path(path).stat()).st_size


def test_wait_closed_blocking_times_out_for_a_streaming_request(
    replay_server: ReplayServer,
) -> None:
    tag = uuid.uuid4().hex
    with httpx.Client(base_url=replay_server.base_url, timeout=TIMEOUT) as client:
        with client.stream(
            "POST",
            "/api/chat",
            json={"model": "openllmetry-chat.ndjson"},
            headers={"x-replay-delay": "0.2", "x-replay-tag": tag},
        ) as response:
            # Keep a reference: a discarded iter_raw() generator is finalised,
            # which closes the connection at once.
            pieces = response.iter_raw()
            next(pieces)
            with pytest.raises(TimeoutError):
                replay_server.app.wait_closed(0.3, tag=tag)
            assert not replay_server.app.find(tag).closed_early
        rec = replay_server.app.wait_closed(1.0, tag=tag)
    assert rec.closed_early


async def test_wait_closed_async_times_out(replay_server: ReplayServer) -> None:
    with pytest.raises(TimeoutError):
        await replay_server.app.wait_closed_async(0.05, tag="never-sent")
