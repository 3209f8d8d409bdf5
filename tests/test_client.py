"""``sse_llm.client`` against a real uvicorn server, read by real clients (httpx sync and
async, ``requests``): a response that is not an event stream is refused, as ``EventSource``
refuses it (WHATWG HTML §9.2.3), and each event is handed over as soon as it arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import requests

from sse_llm import NotEventStreamError
from sse_llm.client import aiter_events, iter_events
from tests.support.servers import run_uvicorn

#: path -> (status, content type, body)
RESPONSES: dict[str, tuple[int, str | None, bytes]] = {
    "/error-page": (500, "text/html; charset=utf-8", b"<h1>Internal Server Error</h1>"),
    "/not-found": (404, "application/json", b'{"detail": "Not Found"}'),
    "/json": (200, "application/json", b'{"data": "x"}'),
    "/no-type": (200, None, b"data: x\n\n"),
    "/stop": (204, None, b""),
    "/cased": (200, "Text/Event-Stream ; charset=UTF-8", "data: 한국어\n\n".encode()),
}
REFUSED = ["/error-page", "/not-found", "/json", "/no-type"]
GATE_WAIT = 5.0  # seconds the server waits for the client to have read the first event


class App:
    """A server stand-in: fixed responses, and a stream whose second event is sent only once
    the client has handed the first to its reader (or after GATE_WAIT)."""

    def __init__(self) -> None:
        self.first_read = threading.Event()
        self.gate_opened_by_client: list[bool] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in ("/gated", "/gated-length"):
            start = self._start(200, "text/event-stream; charset=utf-8")
            if path == "/gated-length":  # a body of known length: not chunked
                start["headers"].append((b"content-length", b"27"))
            await send(start)
            first = b"data: first\n\n"
            await send({"type": "http.response.body", "body": first, "more_body": True})
            opened = await anyio.to_thread.run_sync(self.first_read.wait, GATE_WAIT)
            self.gate_opened_by_client.append(opened)
            await send({"type": "http.response.body", "body": b"data: second\n\n"})
            return
        status, content_type, body = RESPONSES[path]
        await send(self._start(status, content_type))
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _start(status: int, content_type: str | None) -> dict[str, Any]:
        headers = [] if content_type is None else [(b"content-type", content_type.encode())]
        return {"type": "http.response.start", "status": status, "headers": headers}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[App, str]]:
    app = App()
    with run_uvicorn(app) as url:
        yield app, url


def read_sync(kind: str, url: str) -> list[str]:
    if kind == "requests":
        with requests.get(url, stream=True, timeout=10) as response:
            return [event.data for event in iter_events(response)]
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as streamed:
        return [event.data for event in iter_events(streamed)]


@pytest.mark.parametrize("path", REFUSED)
@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_a_response_that_is_not_an_event_stream_raises(
    server: tuple[App, str], kind: str, path: str
) -> None:
    # Found in review: an error page (or JSON) was read as a stream with no events, so a
    # caller could not tell a failed request from an empty answer.
    _, url = server
    status, content_type, _ = RESPONSES[path]
    with pytest.raises(NotEventStreamError) as raised:
        read_sync(kind, url + path)
    assert (raised.value.status_code, raised.value.content_type) == (status, content_type or "")
    assert f"HTTP {status}" in str(raised.value)


@pytest.mark.anyio
@pytest.mark.parametrize("path", REFUSED)
async def test_an_async_response_that_is_not_an_event_stream_raises(
    server: tuple[App, str], path: str
) -> None:
    _, url = server
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", url + path) as response,
    ):
        with pytest.raises(NotEventStreamError) as raised:
            [event async for event in aiter_events(response)]
    assert raised.value.status_code == RESPONSES[path][0]


@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_204_has_no_events_and_the_media_type_is_matched_without_case_or_parameters(
    server: tuple[App, str], kind: str
) -> None:
    # 204 is how a server tells a client to stop reconnecting (a finished resumable stream).
    _, url = server
    assert read_sync(kind, url + "/stop") == []
    assert read_sync(kind, url + "/cased") == ["한국어"]


@pytest.mark.parametrize("path", ["/gated", "/gated-length"])
@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_each_event_is_handed_over_as_it_arrives(
    server: tuple[App, str], kind: str, path: str
) -> None:
    # Found in review: a requests response was iterated (iter_content(128)), whose reads wait
    # for 128 bytes when the body is not chunked (a Content-Length, or ended by closing the
    # connection, as some proxies send it): the first event came only with the second.
    app, url = server
    app.first_read.clear()
    data: list[str] = []
    if kind == "requests":
        with requests.get(url + path, stream=True, timeout=10) as response:
            for event in iter_events(response):
                data.append(event.data)
                app.first_read.set()
    else:
        with httpx.Client(timeout=10) as client, client.stream("GET", url + path) as streamed:
            for event in iter_events(streamed):
                data.append(event.data)
                app.first_read.set()
    assert data == ["first", "second"]
    assert app.gate_opened_by_client[-1] is True, "the first event came only with the second"


def test_a_requests_response_already_read_is_decoded_from_its_content(
    server: tuple[App, str],
) -> None:
    # stream=False: requests has read the body; urllib3's read1 would return nothing.
    _, url = server
    response = requests.get(url + "/cased", timeout=10)
    assert [event.data for event in iter_events(response)] == ["한국어"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
