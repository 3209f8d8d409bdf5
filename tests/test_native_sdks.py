"""The providers' own SDK streams passed straight to sse-llm: ``google-genai``
(``generate_content_stream``), ``ollama`` (``chat``/``generate`` with ``stream=True``) and
``mistralai`` (``chat.stream``/``stream_async``), async and sync, pointed at the replay server.

Every recording read through the SDK gives what the raw recording gives when read with
``sse_llm.sources`` (and the independent oracle's text, finish reason and tool calls); the
SDKs' errors reach the stream with the provider's message, never a proxy's page; under a real
uvicorn the answer streams whole and a client that leaves closes the upstream request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from google import genai
from google.genai import types as genai_types
from mistralai.client import Mistral
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sse_llm import StreamResult, collect, result_json
from sse_llm.client import aiter_events
from sse_llm.sources import ndjson, sse_json
from sse_llm.starlette import SSEResponse

from .support.fixtures import FIXTURES, expected
from .support.leaving import assert_upstream_closed_on_leaving, leave_after_deltas, wait_for
from .support.plugin import ReplayServer
from .support.replay import ReplayApp
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio

PROVIDERS = {"gemini": "*.sse", "ollama": "*.ndjson", "mistral": "*.sse"}
RECORDINGS = [
    f"{provider}/{path.name}"
    for provider, pattern in PROVIDERS.items()
    for path in sorted((FIXTURES / provider).glob(pattern))
]
MODES = ("async", "sync")
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clients:
    """Makes each SDK's client and its stream call. The clients are kept: google-genai's
    closes itself when it is garbage collected, and the returned stream does not hold it
    (a module-level client, as the docs advise, is kept by its module)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.kept: list[Any] = []

    def stream(self, recording: str, mode: str, **headers: str) -> Any:
        """The SDK's stream call for ``recording`` (``<provider>/<file>``), not awaited."""
        provider = recording.split("/")[0]
        headers = {"x-replay-file": recording} | headers
        if provider == "gemini":
            client = genai.Client(
                api_key="test",
                http_options=genai_types.HttpOptions(
                    base_url=self.upstream, api_version="v1beta", headers=headers
                ),
            )
            self.kept.append(client)
            models: Any = client.models if mode == "sync" else client.aio.models
            return models.generate_content_stream(model="test", contents="hi")
        if provider == "ollama":
            maker: Any = ollama.Client if mode == "sync" else ollama.AsyncClient
            ollama_client = maker(host=self.upstream, headers=headers)
            self.kept.append(ollama_client)
            if "generate" in recording:
                return ollama_client.generate(model="test", prompt="hi", stream=True)
            return ollama_client.chat(model="test", messages=MESSAGES, stream=True)
        mistral = Mistral(api_key="test", server_url=self.upstream)
        self.kept.append(mistral)
        call = mistral.chat.stream if mode == "sync" else mistral.chat.stream_async
        return call(model="test", messages=MESSAGES, http_headers=headers)


async def read_raw(recording: str) -> StreamResult:
    """The recording read from its bytes with ``sse_llm.sources``, no SDK."""
    path = FIXTURES / recording
    body = httpx.Response(200, content=path.read_bytes())
    return await collect(ndjson(body) if path.suffix == ".ndjson" else sse_json(body))


@pytest.fixture
def clients(replay_server: ReplayServer) -> Clients:
    return Clients(replay_server.base_url)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("recording", RECORDINGS)
async def test_the_sdks_own_stream_gives_what_the_raw_recording_gives(
    recording: str, mode: str, clients: Clients
) -> None:
    result = await collect(clients.stream(recording, mode))
    assert result_json(result) == result_json(await read_raw(recording))
    want = expected(FIXTURES / recording)
    assert (result.reason, result.text) == ("completed", want.text)
    assert result.finish is not None and result.finish.raw_reason == want.finish_reason
    assert result.reasoning == want.reasoning
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [
        (name, args) for _, name, args in want.tool_calls
    ]


async def test_an_awaited_async_call_streams_as_well(clients: Clients) -> None:
    for recording in ("gemini/pydantic-thinking.sse", "ollama/openllmetry-chat.ndjson"):
        result = await collect(await clients.stream(recording, "async"))
        assert result.text == expected(FIXTURES / recording).text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_error_status_comes_with_the_providers_message(
    provider: str, mode: str, clients: Clients
) -> None:
    # Before: only the openai and anthropic SDKs' errors were read; these gave the generic
    # "internal error" message.
    recording = next(r for r in RECORDINGS if r.startswith(provider))
    result = await collect(_deferred(clients, recording, mode, **{"x-replay-status": "429"}))
    assert result.reason == "error"
    assert result_json(result)["error"]["message"] == "replayed error (HTTP 429)"


def _deferred(clients: Clients, recording: str, mode: str, **headers: str) -> Any:
    """The SDK's stream call, made when the stream starts: mistralai's sync ``chat.stream``
    sends its request at once and raises there (in a view, before any response), as an
    awaited async call does."""
    if mode == "async":
        return clients.stream(recording, mode, **headers)

    def call() -> Iterator[Any]:
        yield from clients.stream(recording, mode, **headers)

    return call()


async def _html_502(scope: Any, receive: Any, send: Any) -> None:
    await HTMLResponse("<html><body>Bad gateway: upstream 10.0.0.7</body></html>", 502)(
        scope, receive, send
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_proxys_error_page_is_not_passed_on(provider: str, mode: str) -> None:
    with run_uvicorn(_html_502) as proxy:
        recording = next(r for r in RECORDINGS if r.startswith(provider))
        clients = Clients(proxy)
        result = await collect(_deferred(clients, recording, mode))
    assert result.reason == "error"
    assert result_json(result)["error"] == {
        "message": "The model provider answered with HTTP status 502.",
        "code": "502",
    }


@pytest.mark.parametrize("mode", MODES)
async def test_an_ollama_error_line_inside_the_stream_keeps_its_message(
    mode: str, tmp_path: Path
) -> None:
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": "lo"}, "done": False},
        {"error": "model runner has unexpectedly stopped"},
    ]
    (tmp_path / "ollama").mkdir()
    (tmp_path / "ollama" / "error-line.ndjson").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    with run_uvicorn(ReplayApp(tmp_path)) as upstream:
        clients = Clients(upstream)
        result = await collect(clients.stream("ollama/error-line.ndjson", mode))
    assert (result.reason, result.text) == ("error", "Hello")
    assert result_json(result)["error"]["message"] == "model runner has unexpectedly stopped"


# ---------------------------------------------------------------- under uvicorn, over HTTP

LONG = {
    "gemini": "gemini/otel-vertexai-basic.sse",
    "ollama": "ollama/openllmetry-chat.ndjson",
    "mistral": "mistral/openllmetry-long-text.sse",
}


class App:
    """``GET /chat?provider=&mode=&delay=&tag=&status=``: the SDK's stream, unawaited, returned
    in an ``SSEResponse``."""

    def __init__(self, upstream: str) -> None:
        self.clients = Clients(upstream)
        self.results: list[StreamResult] = []

    async def chat(self, request: Request) -> SSEResponse:
        query = request.query_params
        headers = {"x-replay-tag": query.get("tag", ""), "x-replay-delay": query["delay"]}
        if "status" in query:
            headers["x-replay-status"] = query["status"]
        source = self.clients.stream(LONG[query["provider"]], query["mode"], **headers)
        return SSEResponse(source, on_complete=self.results.append)


@pytest.fixture
def server(replay_server: ReplayServer) -> Iterator[tuple[App, str]]:
    app = App(replay_server.base_url)
    with run_uvicorn(Starlette(routes=[Route("/chat", app.chat)])) as base_url:
        yield app, base_url


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_sdks_stream_reaches_the_browser_whole(
    provider: str, mode: str, server: tuple[App, str]
) -> None:
    app, base_url = server
    params = {"provider": provider, "mode": mode, "delay": "0"}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", base_url + "/chat", params=params) as response,
    ):
        events = [(e.event, json.loads(e.data)) async for e in aiter_events(response)]
    want = expected(FIXTURES / LONG[provider])
    assert "".join(data["text"] for name, data in events if name == "delta") == want.text
    assert events[-1][0] == "done"
    await wait_for(lambda: bool(app.results))
    assert [(r.reason, r.text) for r in app.results] == [("completed", want.text)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_client_that_leaves_closes_the_upstream_request(
    provider: str, mode: str, server: tuple[App, str], replay_server: ReplayServer
) -> None:
    app, base_url = server
    tag = f"native-leave-{provider}-{mode}"
    params = {"provider": provider, "mode": mode, "delay": "0.2", "tag": tag}
    left_at = await leave_after_deltas(base_url + "/chat", params)
    whole = expected(FIXTURES / LONG[provider]).text
    await assert_upstream_closed_on_leaving(replay_server.app, tag, left_at, app.results, whole)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_sdk_error_becomes_the_error_event_with_the_providers_message(
    provider: str, server: tuple[App, str]
) -> None:
    app, base_url = server
    params = {"provider": provider, "mode": "async", "delay": "0", "status": "503"}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", base_url + "/chat", params=params) as response,
    ):
        events = [(e.event, json.loads(e.data)) async for e in aiter_events(response)]
    assert response.status_code == 200
    name, data = events[-1]
    assert name == "error" and data["message"] == "replayed error (HTTP 503)"
    await wait_for(lambda: bool(app.results))
    assert [r.reason for r in app.results] == ["error"]


async def test_an_answer_the_sdk_cannot_read_is_not_called_the_providers_error(
    clients: Clients,
) -> None:
    # Found in review: mistralai raises its HTTP error for a 200 it cannot read (here an
    # NDJSON body); it was reported as "answered with HTTP status 200", code "200".
    result = await collect(clients.stream("mistral/x", "async", **{
        "x-replay-file": "ollama/langchaingo-chat-stream.ndjson"
    }))  # fmt: skip
    assert result.reason == "error"
    assert result_json(result)["error"] == {
        "message": "The answer could not be completed because of an internal error.",
        "code": "internal_error",
    }
