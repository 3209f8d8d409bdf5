"""sse_llm.fastapi: @sse keeps the view's signature for dependency injection, LastEventID,
SSEResponse and a mounted SSEEndpoint, in a FastAPI app.

This module uses ``from __future__ import annotations`` on purpose, like most typed code:
every annotation is a string that FastAPI has to resolve.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import httpx
import httpx_sse
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Query, Request
from fastapi.sse import EventSourceResponse
from fastapi.sse import ServerSentEvent as FastAPIEvent
from pydantic import BaseModel

from sse_llm import ServerSentEvent
from sse_llm.client import SSEDecoder
from sse_llm.fastapi import LastEventID, SSEEndpoint, SSEResponse, SSERoute, sse, stream_openapi
from sse_llm.testing import FakeLLM, StreamedResponse, run_stream
from tests.support.servers import run_uvicorn


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def texts(response: StreamedResponse) -> list[str]:
    return [json.loads(e.data)["text"] for e in response.events if e.event == "delta"]


def current_user() -> str:
    return "kim"


app = FastAPI()


@app.get("/defaults")
@sse
async def defaults_view(q: str = Query(), user: str = Depends(current_user)) -> AsyncIterator[str]:
    yield f"{user} asked {q}"


@app.get("/annotated")
@sse(heartbeat=None)
async def annotated_view(
    q: Annotated[str, Query(min_length=1)],
    user: Annotated[str, Depends(current_user)],
    last_event_id: LastEventID = None,
) -> AsyncIterator[str]:
    yield f"{user} asked {q} after {last_event_id}"


@app.get("/plain")
async def plain_view(last_event_id: LastEventID = None) -> SSEResponse:
    return SSEResponse([f"resume after {last_event_id}"])


@app.get("/resume")
@sse
async def resume_view(request: Request) -> AsyncIterator[ServerSentEvent]:
    start = int(request.headers.get("last-event-id", "0")) + 1
    for i in range(start, start + 3):
        yield ServerSentEvent(f"part {i}", id=str(i))


async def _mounted_handler(request: Request) -> AsyncIterator[str]:
    prompt = (await request.json())["prompt"] if request.method == "POST" else "get"
    return FakeLLM("{prompt}?", delay=0).stream(prompt)


app.mount("/chat", SSEEndpoint(_mounted_handler))


@pytest.mark.anyio
async def test_sse_view_gets_query_and_dependency_injected() -> None:
    response = await run_stream(app, "/defaults?q=weather")
    assert response.status == 200
    assert texts(response) == ["kim asked weather"]
    assert response.events[-1].event == "done"


@pytest.mark.anyio
async def test_sse_view_validates_its_query_like_any_fastapi_view() -> None:
    response = await run_stream(app, "/defaults")
    assert response.status == 422


@pytest.mark.anyio
async def test_sse_view_with_annotated_dependencies_under_future_annotations() -> None:
    # Annotated[...] parameters are the FastAPI-recommended style; under
    # `from __future__ import annotations` they are strings naming this module's imports.
    response = await run_stream(app, "/annotated?q=rain", headers={"Last-Event-ID": "41"})
    assert response.status == 200
    assert texts(response) == ["kim asked rain after 41"]


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "expected"), [({"Last-Event-ID": "42"}, "42"), ({}, "None")])
async def test_last_event_id_dependency_receives_the_header(
    headers: dict[str, str], expected: str
) -> None:
    response = await run_stream(app, "/plain", headers=headers)
    assert texts(response) == [f"resume after {expected}"]


def test_openapi_schema_builds_with_sse_views() -> None:
    schema = app.openapi()
    params = {p["name"] for p in schema["paths"]["/defaults"]["get"]["parameters"]}
    assert params == {"q"}  # the dependency is not a parameter; the signature was kept


@pytest.mark.anyio
async def test_sse_endpoint_mounted_in_fastapi() -> None:
    get = await run_stream(app, "/chat/")
    assert "".join(texts(get)) == "get?"
    post = await run_stream(
        app,
        "/chat/",
        method="POST",
        headers={"content-type": "application/json"},
        body=b'{"prompt": "\xec\x95\x88\xeb\x85\x95"}',
    )
    assert "".join(texts(post)) == "안녕?"
    put = await run_stream(app, "/chat/", method="PUT")
    assert put.status == 405


def test_resume_with_last_event_id_over_the_network_with_httpx_sse() -> None:
    with run_uvicorn(app) as base, httpx.Client(timeout=10) as client:
        with httpx_sse.connect_sse(client, "GET", f"{base}/resume") as source:
            first = [(e.event, e.data, e.id) for e in source.iter_sse()]
        last_id = first[-2][2]  # the last event before `done`
        with httpx_sse.connect_sse(
            client, "GET", f"{base}/resume", headers={"Last-Event-ID": last_id}
        ) as source:
            second = [(e.event, e.data, e.id) for e in source.iter_sse()]
    assert first[:3] == [("message", f"part {i}", str(i)) for i in (1, 2, 3)]
    assert first[3][0] == "done"
    assert second[:3] == [("message", f"part {i}", str(i)) for i in (4, 5, 6)]


# -- OpenAPI ---------------------------------------------------------------------------------------


def _documented_app() -> FastAPI:
    from fastapi import APIRouter

    from sse_llm.formats import TypedJSONFormat
    from sse_llm.html import MarkdownFormat

    documented = FastAPI()
    documented.router.route_class = SSERoute

    @documented.post("/chat")
    async def chat(q: str) -> SSEResponse:
        """A plain view returning a response: its format is chosen when it runs."""
        return SSEResponse(FakeLLM("{prompt}!", delay=0).stream(q))

    @documented.get("/echo")
    @sse(heartbeat=10)
    async def echo(q: str) -> AsyncIterator[str]:
        yield q

    @documented.get("/typed")
    @sse(format=TypedJSONFormat())
    async def typed(q: str) -> AsyncIterator[str]:
        yield q

    @documented.get("/fragments")
    @sse(format=MarkdownFormat("answer"))
    async def fragments(q: str) -> AsyncIterator[str]:
        yield q

    @documented.get("/json")
    async def plain_json() -> dict[str, str]:
        return {"ok": "yes"}

    router = APIRouter(route_class=SSERoute)

    @router.get("/routed")
    @sse
    async def routed() -> AsyncIterator[str]:
        yield "x"

    documented.include_router(router, prefix="/api")
    return documented


def _event_names(operation: dict[str, object]) -> list[str]:
    content = operation["responses"]["200"]["content"]  # type: ignore[index]
    variants = content["text/event-stream"]["itemSchema"]["oneOf"]
    return [v["properties"]["event"]["const"] for v in variants if "event" in v["properties"]]


def test_openapi_json_documents_streams_as_text_event_stream_with_their_events() -> None:
    with run_uvicorn(_documented_app()) as base, httpx.Client(timeout=10) as client:
        schema = client.get(f"{base}/openapi.json").json()
        streamed = client.get(f"{base}/echo", params={"q": "안녕"})
    paths = schema["paths"]
    for path, method in [
        ("/chat", "post"),
        ("/echo", "get"),
        ("/typed", "get"),
        ("/fragments", "get"),
        ("/api/routed", "get"),
    ]:
        content = paths[path][method]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"], path
    assert list(paths["/json"]["get"]["responses"]["200"]["content"]) == ["application/json"]
    # @sse knows its format: every event the default format writes, with its data's shape.
    echo = paths["/echo"]["get"]
    assert {"delta", "reasoning", "tool_call", "done", "error"} <= set(_event_names(echo))
    variants = echo["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]["oneOf"]
    delta = next(v for v in variants if v["title"] == "delta")
    data = delta["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"]["properties"]["text"] == {"type": "string"}
    done = next(v for v in variants if v["title"] == "done")["properties"]["data"]
    assert set(done["contentSchema"]["properties"]) >= {"finish_reason", "usage"}
    assert "delta" in echo["responses"]["200"]["description"]
    # TypedJSONFormat: unnamed events told apart by their JSON "type", then [DONE].
    typed = paths["/typed"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    titles = [v["title"] for v in typed["itemSchema"]["oneOf"]]
    assert {"session", "delta", "done", "error", "[DONE]"} <= set(titles)
    # HTML fragments: unnamed events whose data is HTML, then `done`.
    fragments = paths["/fragments"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    assert {"message", "done"} <= {v["title"] for v in fragments["itemSchema"]["oneOf"]}
    # A plain view: text/event-stream, each item a generic server-sent event.
    chat = paths["/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert set(chat["itemSchema"]["properties"]) == {"event", "data", "id", "retry"}
    # The routes still stream as before.
    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert '"text":"안녕"' in streamed.text


def test_without_the_route_class_response_class_gives_the_media_type() -> None:
    plain = FastAPI()

    @plain.get("/chat", response_class=SSEResponse, responses={200: stream_openapi(None)})
    async def chat(q: str) -> SSEResponse:
        return SSEResponse([q])

    content = plain.openapi()["paths"]["/chat"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    assert "itemSchema" in content["text/event-stream"]


class GeneratorViews:
    """FastAPI's own way to stream a generator view: ``response_class=SSEResponse``, no
    ``@sse`` (FastAPI calls ``SSEResponse(content=<the generator>, ...)`` itself)."""

    def __init__(self) -> None:
        self.closed: list[str] = []
        self.results: list[str] = []
        self.background: list[str] = []
        self.app = FastAPI()
        self.app.get("/async", response_class=SSEResponse, status_code=201)(self.async_view)
        self.app.get("/sync", response_class=SSEResponse)(self.sync_view)

    async def async_view(self, q: str, tasks: BackgroundTasks) -> AsyncIterator[str]:
        tasks.add_task(self.background.append, q)
        try:
            for n in range(50):
                yield f"{q}{n} "
                await anyio.sleep(0.05)
        finally:
            self.closed.append("async")

    def sync_view(self, q: str) -> Iterator[str]:
        try:
            for n in range(3):
                yield f"{q}{n}\n"
        finally:
            self.closed.append("sync")


def test_a_generator_view_with_the_response_class_streams_through_sse_llm() -> None:
    # Before: FastAPI's SSEResponse(content=...) call failed at every request with a 500
    # (missing 'source').
    views = GeneratorViews()
    with run_uvicorn(views.app) as base, httpx.Client(timeout=10) as client:
        with client.stream("GET", base + "/sync", params={"q": "줄"}) as response:
            events = list(httpx_sse.EventSource(response).iter_sse())
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert [json.loads(e.data)["text"] for e in events if e.event == "delta"] == [
            "줄0\n", "줄1\n", "줄2\n"
        ]  # fmt: skip
        assert events[-1].event == "done"
        with client.stream("GET", base + "/async", params={"q": "t"}) as response:
            assert response.status_code == 201  # the route's status_code
            for event in httpx_sse.EventSource(response).iter_sse():
                if event.event == "delta" and json.loads(event.data)["text"] == "t2 ":
                    left_at = time.monotonic()
                    break
        deadline = time.monotonic() + 5
        while "async" not in views.closed:
            assert time.monotonic() < deadline, "the view's generator was not closed"
            time.sleep(0.01)
        assert time.monotonic() - left_at < 1.0  # the client left: the generator is closed
        while views.background != ["t"]:  # FastAPI's background tasks run after the stream
            assert time.monotonic() < deadline, views.background
            time.sleep(0.01)
    assert sorted(views.closed) == ["async", "sync"]


def test_the_source_is_given_once() -> None:
    with pytest.raises(TypeError, match="takes the source to stream once"):
        SSEResponse(["a"], content=["b"])
    with pytest.raises(TypeError, match="takes the source to stream once"):
        SSEResponse()


class _Reading(BaseModel):
    value: float
    unit: str


def _fastapi_events() -> list[FastAPIEvent]:
    return [
        FastAPIEvent(data="hello"),  # JSON: sent with its quotes
        FastAPIEvent(data={"scores": [1, float("nan")], "name": "김민수"}, event="obj", id="1"),
        FastAPIEvent(raw_data="<p>a</p>\n<p>b</p>", event="html"),
        FastAPIEvent(data=_Reading(value=float("inf"), unit="°C"), id="2"),
        FastAPIEvent(data=[1, 2], comment="a note\nover two lines", retry=3000),
        FastAPIEvent(id="3"),  # an id alone: no event, the last event ID moves
    ]


def test_fastapi_server_sent_events_stream_as_fastapi_sends_them() -> None:
    """A generator written for FastAPI's own ``EventSourceResponse`` (``fastapi.sse``) moves
    to sse-llm unchanged: each event reaches the client as FastAPI sends it (``data`` as JSON,
    ``raw_data`` as it is, the same ids, retry and comments), then sse-llm's ``done``."""
    app = FastAPI()

    @app.get("/fastapi", response_class=EventSourceResponse)
    async def fastapi_view() -> AsyncIterator[FastAPIEvent]:
        for event in _fastapi_events():
            yield event

    @app.get("/sse-llm", response_class=SSEResponse)
    async def sse_llm_view() -> AsyncIterator[FastAPIEvent]:
        for event in _fastapi_events():
            yield event

    def read(client: httpx.Client, url: str) -> tuple[list[tuple[Any, ...]], str | None, bytes]:
        decoder = SSEDecoder()
        with client.stream("GET", url) as response:
            body = response.read()
        events = [
            (e.event, e.data, e.id, e.retry)
            for e in decoder.feed(body)
            if isinstance(e, ServerSentEvent)
        ]
        return events, decoder.last_event_id, body

    with run_uvicorn(app) as base, httpx.Client(timeout=10) as client:
        theirs, their_last_id, their_body = read(client, base + "/fastapi")
        ours, our_last_id, our_body = read(client, base + "/sse-llm")
    assert ours[-1][0] == "done"
    assert ours[:-1] == theirs
    assert (our_last_id, their_last_id) == ("3", "3")
    assert theirs[0][1] == '"hello"'
    assert json.loads(theirs[1][1]) == {"scores": [1, None], "name": "김민수"}
    assert theirs[2][1] == "<p>a</p>\n<p>b</p>"
    assert b": a note\n" in their_body and b": a note\n" in our_body
    assert b": over two lines\n" in our_body
