"""sse_llm.starlette: SSEResponse, the @sse decorator and the mountable SSEEndpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from sse_llm import ServerSentEvent, SSEDecoder, StreamResult, TextFormat
from sse_llm.starlette import SSEEndpoint, SSEResponse, sse
from sse_llm.testing import FakeLLM, StreamedResponse, run_stream
from tests.support.servers import run_uvicorn
from tests.support.upstream import UpstreamStream, sdk_call, sync_stream


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def texts(response: StreamedResponse) -> list[str]:
    return [json.loads(e.data)["text"] for e in response.events if e.event == "delta"]


def kinds(response: StreamedResponse) -> list[str | None]:
    return [e.event for e in response.events]


# -- SSEResponse -----------------------------------------------------------------------------------


async def _response_view(request: Request) -> Response:
    return SSEResponse(FakeLLM("안녕 세상", delay=0).stream(), heartbeat=None)


@pytest.mark.anyio
async def test_sse_response_in_a_starlette_route() -> None:
    app = Starlette(routes=[Route("/chat", _response_view)])
    response = await run_stream(app, "/chat")
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "connection" not in response.headers
    assert "".join(texts(response)) == "안녕 세상"
    assert kinds(response)[-1] == "done"
    assert response.complete


@pytest.mark.anyio
async def test_headers_and_cookies_set_after_construction_are_sent() -> None:
    async def view(request: Request) -> Response:
        response = SSEResponse(["x"], headers={"x-from-init": "1"})
        response.headers["x-later"] = "2"
        response.set_cookie("session", "abc", httponly=True)
        return response

    app = Starlette(routes=[Route("/", view)])
    response = await run_stream(app, "/")
    assert response.headers["x-from-init"] == "1"
    assert response.headers["x-later"] == "2"
    assert response.headers["set-cookie"].startswith("session=abc")
    assert "httponly" in response.headers["set-cookie"].lower()
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


@pytest.mark.anyio
async def test_background_task_runs_after_the_stream() -> None:
    order: list[str] = []

    def on_complete(result: StreamResult) -> None:
        order.append(f"complete:{result.text}")

    async def view(request: Request) -> Response:
        return SSEResponse(
            ["a", "b"],
            on_complete=on_complete,
            background=BackgroundTask(order.append, "background"),
        )

    response = await run_stream(Starlette(routes=[Route("/", view)]), "/")
    assert response.complete
    assert order == ["complete:ab", "background"]


@pytest.mark.anyio
async def test_sse_response_options_are_passed_to_the_stream() -> None:
    async def view(request: Request) -> Response:
        return SSEResponse(["a\nb"], format=TextFormat(), status_code=202)

    response = await run_stream(Starlette(routes=[Route("/", view)]), "/")
    assert response.status == 202
    assert [(e.event, e.data) for e in response.events] == [
        ("message", "a\nb"),
        ("done", '{"finish_reason":"stop"}'),
    ]


# -- @sse -----------------------------------------------------------------------------------------


@sse
async def bare_view(request: Request) -> AsyncIterator[str]:
    yield f"hello {request.query_params['name']}"


@sse(format=TextFormat(), heartbeat=None)
async def configured_view(request: Request) -> AsyncIterator[str]:
    """A view with options."""
    yield "plain"


@pytest.mark.anyio
async def test_sse_decorator_on_async_generator_view() -> None:
    app = Starlette(routes=[Route("/bare", bare_view), Route("/configured", configured_view)])
    response = await run_stream(app, f"/bare?name={quote('민수')}")
    assert texts(response) == ["hello 민수"]
    assert kinds(response)[-1] == "done"
    configured = await run_stream(app, "/configured")
    assert (configured.events[0].event, configured.events[0].data) == ("message", "plain")


def test_sse_decorator_keeps_identity_and_does_not_expose_the_generator() -> None:
    assert configured_view.__name__ == "configured_view"
    assert configured_view.__doc__ == "A view with options."
    # No __wrapped__: a framework that unwraps would find the generator and stream it itself.
    assert not hasattr(configured_view, "__wrapped__")


def test_sse_decorator_rejects_functions_that_are_not_async() -> None:
    def not_async(request: Request) -> list[str]:
        return ["x"]

    with pytest.raises(TypeError, match="async"):
        sse(not_async)


@pytest.mark.anyio
async def test_sse_decorator_streams_the_source_an_async_view_returns() -> None:
    # The same @sse in every framework module: an async function returning a source (an SDK
    # stream, say) streams it, and a ready response it returns is sent as is.
    @sse
    async def returning(request: Request) -> Any:
        if request.query_params.get("bad"):
            return PlainTextResponse("a prompt is needed", status_code=400)
        return FakeLLM("ok", delay=0).stream()

    app = Starlette(routes=[Route("/r", returning)])
    response = await run_stream(app, "/r")
    assert [e.event for e in response.events] == ["delta", "done"]
    refused = await run_stream(app, "/r?bad=1")
    assert (refused.status, refused.body) == (400, b"a prompt is needed")


def test_sse_decorator_refuses_a_misspelt_option_when_decorating() -> None:
    with pytest.raises(TypeError, match="heartbeet"):
        sse(heartbeet=5)  # type: ignore[call-arg]


# -- SSEEndpoint ----------------------------------------------------------------------------------


async def _echo_handler(request: Request) -> AsyncIterator[str]:
    if request.method == "POST":
        body = await request.json()
        prompt = body["prompt"]
    else:
        prompt = request.query_params.get("prompt", "none")
    return FakeLLM("{prompt}!", delay=0).stream(prompt)


def _mounted_app() -> Starlette:
    return Starlette(routes=[Mount("/chat", SSEEndpoint(_echo_handler, heartbeat=None))])


@pytest.mark.anyio
async def test_sse_endpoint_mounted_get_and_post() -> None:
    app = _mounted_app()
    # A Mount matches "/chat/..."; "/chat" itself gets Starlette's 307 to "/chat/".
    get = await run_stream(app, "/chat/?prompt=hi")
    assert "".join(texts(get)) == "hi!"
    post = await run_stream(
        app,
        "/chat/",
        method="POST",
        headers={"content-type": "application/json"},
        body=json.dumps({"prompt": "질문"}).encode(),
    )
    assert "".join(texts(post)) == "질문!"
    assert kinds(post)[-1] == "done"


@pytest.mark.anyio
async def test_sse_endpoint_sync_handler() -> None:
    endpoint = SSEEndpoint(lambda request: ["from", " sync"], methods=("GET",))
    response = await run_stream(Starlette(routes=[Mount("/s", endpoint)]), "/s/")
    assert texts(response) == ["from", " sync"]


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_sse_endpoint_other_methods_get_405(method: str) -> None:
    response = await run_stream(_mounted_app(), "/chat/", method=method)
    assert response.status == 405
    assert (
        response.headers["allow"] == "GET, HEAD, POST"
    )  # HEAD comes with GET, as on Starlette's routes
    assert response.events == []


def test_sse_endpoint_post_body_over_the_network() -> None:
    with run_uvicorn(_mounted_app()) as base, httpx.Client(timeout=10) as client:
        # Posting to "/chat" follows Starlette's 307 (method and body kept) to "/chat/".
        response = client.post(f"{base}/chat", json={"prompt": "네트워크"}, follow_redirects=True)
        put = client.put(f"{base}/chat/")
    events = [i for i in SSEDecoder().feed(response.content) if isinstance(i, ServerSentEvent)]
    assert "".join(json.loads(e.data)["text"] for e in events if e.event == "delta") == "네트워크!"
    assert put.status_code == 405


@pytest.mark.anyio
async def test_sse_endpoint_in_a_route_answers_the_path_itself_without_a_redirect() -> None:
    llm = FakeLLM("{prompt}?", delay=0)
    app = Starlette(
        routes=[Route("/chat", SSEEndpoint(lambda request: llm.stream(request.query_params["q"])))]
    )
    response = await run_stream(app, "/chat?q=hi")
    assert response.status == 200
    assert "".join(texts(response)) == "hi?"
    # A mount of the same endpoint only matches "/chat/...": "/chat?q=hi" is redirected.
    mounted = Starlette(routes=[Mount("/chat", SSEEndpoint(lambda request: ["x"]))])
    redirect = await run_stream(mounted, "/chat?q=hi")
    assert redirect.status == 307
    assert redirect.headers["location"].endswith("/chat/?q=hi")


@pytest.mark.anyio
async def test_a_missing_query_parameter_is_a_400_that_names_it() -> None:
    llm = FakeLLM(delay=0)
    endpoint = SSEEndpoint(lambda request: llm.stream(request.query_params["q"]))
    response = await run_stream(Starlette(routes=[Route("/chat", endpoint)]), "/chat")
    assert response.status == 400
    assert response.body == b"missing request parameter 'q'"
    assert response.events == []


@pytest.mark.anyio
async def test_a_keyerror_of_the_handlers_own_data_is_not_mistaken_for_a_bad_request() -> None:
    settings: dict[str, str] = {}
    endpoint = SSEEndpoint(lambda request: [settings["model"]])
    with pytest.raises(KeyError, match="model"):
        await run_stream(endpoint, "/chat?q=hi")


@pytest.mark.anyio
async def test_a_handler_may_raise_http_exception_or_return_a_response() -> None:
    from starlette.exceptions import HTTPException

    def handler(request: Request) -> Any:
        q = request.query_params.get("q", "")
        if not q:
            raise HTTPException(400, "send ?q=your question")
        if len(q) > 10:
            return PlainTextResponse("too long", status_code=413)
        return [q]

    endpoint = SSEEndpoint(handler)  # no Starlette app around it: the endpoint answers itself
    missing = await run_stream(endpoint, "/")
    assert (missing.status, missing.body) == (400, b"send ?q=your question")
    long = await run_stream(endpoint, "/?q=" + "x" * 11)
    assert (long.status, long.body) == (413, b"too long")
    ok = await run_stream(endpoint, "/?q=hi")
    assert texts(ok) == ["hi"]


# -- over the network ------------------------------------------------------------------------------


def test_disconnect_through_a_starlette_route_reaches_on_complete() -> None:
    done = threading.Event()
    results: list[StreamResult] = []
    llm = FakeLLM(delay=0.05)

    def on_complete(result: StreamResult) -> None:
        results.append(result)
        done.set()

    async def view(request: Request) -> Response:
        return SSEResponse(llm.stream(), on_complete=on_complete)

    app = Starlette(routes=[Route("/", view)])
    with run_uvicorn(app) as base, httpx.Client(timeout=10) as client:
        with client.stream("GET", base) as response:
            decoder = SSEDecoder()
            seen = 0
            for chunk in response.iter_raw():
                seen += sum(isinstance(i, ServerSentEvent) for i in decoder.feed(chunk))
                if seen >= 3:
                    break
        assert done.wait(10)
    assert results[0].reason == "disconnected"
    assert llm.closed == 1


def test_a_response_start_the_server_refuses_still_closes_the_source_and_runs_the_hook() -> None:
    # A header set after the response was built (Starlette's response.headers checks
    # nothing) that uvicorn will not send: it raises in the start. The source, think an SDK
    # stream holding an upstream request, was left open and the hook never ran.
    results: list[StreamResult] = []
    done = threading.Event()
    upstream = UpstreamStream()

    def on_complete(result: StreamResult) -> None:
        results.append(result)
        done.set()

    async def view(request: Request) -> Response:
        response = SSEResponse(upstream, on_complete=on_complete)
        response.headers["x-trace"] = "a\r\nset-cookie: evil=1"
        return response

    app = Starlette(routes=[Route("/", view)])
    with run_uvicorn(app) as base, httpx.Client(timeout=10) as client:
        with pytest.raises(httpx.HTTPError):  # no status line: uvicorn drops the connection
            client.get(base)
        assert done.wait(10)
    assert results[0].reason == "error" and isinstance(results[0].error, RuntimeError)
    assert upstream.closed == 1


def test_gzip_middleware_leaves_the_stream_uncompressed_and_incremental() -> None:
    gate = threading.Event()

    async def source() -> AsyncIterator[str]:
        yield "first"
        # The second event only exists once the client has seen the first one: if anything
        # buffered the first (a compressor), the client would never see it in time.
        await anyio.to_thread.run_sync(gate.wait, 5)
        yield "second"

    async def view(request: Request) -> Response:
        return SSEResponse(source(), heartbeat=None)

    app = Starlette(
        routes=[Route("/", view)], middleware=[Middleware(GZipMiddleware, minimum_size=1)]
    )
    first_seen_before_gate = False
    events: list[ServerSentEvent] = []
    with (
        run_uvicorn(app) as base,
        httpx.Client(timeout=10) as client,
        client.stream("GET", base, headers={"accept-encoding": "gzip"}) as response,
    ):
        assert "content-encoding" not in response.headers
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        decoder = SSEDecoder()
        for chunk in response.iter_raw():  # raw: nothing here could undo a compression
            for item in decoder.feed(chunk):
                if isinstance(item, ServerSentEvent):
                    events.append(item)
                    if len(events) == 1:
                        first_seen_before_gate = not gate.is_set()
                        gate.set()
    assert first_seen_before_gate
    assert [json.loads(e.data).get("text") for e in events[:2]] == ["first", "second"]
    assert events[-1].event == "done"


def test_gzip_still_compresses_ordinary_responses() -> None:
    # The control: the middleware is active, so the absence above is the SSE exclusion.
    async def page(request: Request) -> Response:
        return Response("x" * 1000, media_type="text/plain")

    app = Starlette(
        routes=[Route("/", page)], middleware=[Middleware(GZipMiddleware, minimum_size=1)]
    )
    with run_uvicorn(app) as base, httpx.Client(timeout=10) as client:
        response = client.get(base, headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"


def test_a_sync_handler_that_blocks_does_not_stall_the_other_requests() -> None:
    # Found in review: a sync handler (a sync SDK call waits for the model's first bytes) was
    # called on the event loop, which served nothing else meanwhile. Starlette runs a sync
    # endpoint in a worker thread; so does SSEEndpoint now.
    import time

    def slow_to_start(request: Request) -> list[str]:
        time.sleep(1.0)  # the sync client waiting for the model's response headers
        return ["late"]

    async def ping(request: Request) -> Response:
        return PlainTextResponse("pong")

    app = Starlette(routes=[Route("/chat", SSEEndpoint(slow_to_start)), Route("/ping", ping)])
    with run_uvicorn(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        chat = threading.Thread(target=lambda: http.get("/chat"))
        chat.start()
        time.sleep(0.2)  # the handler is blocked now
        started = time.monotonic()
        assert http.get("/ping").text == "pong"
        ping_took = time.monotonic() - started
        chat.join(10)
    assert ping_took < 0.5, f"/ping waited {ping_took:.2f} s for the blocked handler"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_handlers_run_on_the_loop_and_sync_ones_in_a_worker_thread() -> None:
    import functools

    from sse_llm._views import call_handler

    main = threading.get_ident()
    seen: dict[str, int] = {}

    def sync(name: str) -> list[str]:
        seen[name] = threading.get_ident()
        return [name]

    async def coroutine(name: str) -> list[str]:
        return sync(name)

    async def generator(name: str) -> AsyncIterator[str]:
        seen[name] = threading.get_ident()
        yield name

    class CallableObject:
        async def __call__(self, name: str) -> list[str]:
            return sync(name)

    async def awaited(name: str) -> list[str]:
        return sync(name)

    assert await call_handler(sync, "sync") == ["sync"]
    assert await call_handler(coroutine, "coroutine") == ["coroutine"]
    assert await call_handler(functools.partial(coroutine), "partial") == ["partial"]
    assert await call_handler(CallableObject(), "object") == ["object"]
    assert await call_handler(lambda name: awaited(name), "lambda") == ["lambda"]
    stream = await call_handler(generator, "generator")
    assert [item async for item in stream] == ["generator"]
    assert seen["sync"] != main  # a worker thread: it may block
    for name in ("coroutine", "partial", "object", "generator"):
        assert seen[name] == main, name  # on the loop, no thread hop
    assert seen["lambda"] == main  # the coroutine it returned ran on the loop


@pytest.mark.parametrize("route", ["view", "endpoint"])
def test_head_sends_the_headers_alone_and_closes_the_source_unread(route: str) -> None:
    # Found in review: HEAD (which Starlette adds to every GET route) ran the whole stream for
    # a body the server throws away: the model billed to its end, and a kept-alive
    # connection's next request waited for it. And an SSEEndpoint, an ASGI app to Starlette,
    # got no HEAD from its route: it answered 405.
    upstream = UpstreamStream()  # endless, as a model that is never stopped
    results: list[StreamResult] = []
    hooked = threading.Event()

    def hook(result: StreamResult) -> None:
        results.append(result)
        hooked.set()

    async def stream(request: Request) -> SSEResponse:
        return SSEResponse(upstream, on_complete=hook)

    endpoint = SSEEndpoint(lambda request: upstream, on_complete=hook)
    app = Starlette(
        routes=[Route("/stream", stream if route == "view" else endpoint), Route("/ping", _ping)]
    )
    with run_uvicorn(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        head = client.head("/stream")
        assert hooked.wait(5), "the stream did not end"
        next_request = client.get("/ping")  # the same kept-alive connection
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert next_request.text == "pong" and next_request.elapsed.total_seconds() < 1.0
    assert upstream.closed == 1
    assert [(r.reason, r.text, r.events_sent) for r in results] == [("disconnected", "", 0)]


async def _ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def test_a_generator_view_may_read_the_request_body() -> None:
    # Found in review: a generator view runs once the response has started, while the pump
    # waits on receive() for the client to leave: a body it read then raced the pump (the
    # request hung, or read an empty body and ended in an internal error).
    @sse(heartbeat=None)
    async def chat(request: Request) -> AsyncIterator[str]:
        body = await request.json()
        yield f"you said {body['prompt']}"

    async def handler(request: Request) -> AsyncIterator[str]:
        yield (await request.body()).decode()

    app = Starlette(
        routes=[
            Route("/chat", chat, methods=["POST"]),
            Route("/endpoint", SSEEndpoint(handler, methods=["POST"])),
        ]
    )
    answers = []
    with run_uvicorn(app) as base, httpx.Client(base_url=base, timeout=5) as client:
        for n in range(5):  # the race went either way from one request to the next
            for path, request in (("/chat", {"json": {"prompt": f"hi {n}"}}),
                                  ("/endpoint", {"content": f"raw {n}".encode()})):  # fmt: skip
                body = client.post(path, **request).content
                events = [e for e in SSEDecoder().feed(body) if type(e) is ServerSentEvent]
                answers.append([(e.event, e.data) for e in events if e.event != "done"])
                assert events[-1].event == "done", events
    assert answers == [
        [("delta", json.dumps({"text": text}, separators=(",", ":")))]
        for n in range(5)
        for text in (f"you said hi {n}", f"raw {n}")
    ]


def test_testclient_stream_closed_mid_stream_ends_it_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found in review: Starlette's TestClient (docs/testing.md points to its stream() since
    # Starlette 1.9) cancels the app when the test leaves the body; the last event then met
    # its closed memory stream, which surfaced as "Task exception was never retrieved".
    import gc

    from starlette.testclient import TestClient

    llm = FakeLLM("word " * 500, delay=0.005)
    results: list[StreamResult] = []

    async def chat(request: Request) -> SSEResponse:
        return SSEResponse(llm.stream("hi"), on_complete=results.append)

    app = Starlette(routes=[Route("/chat", chat)])
    closed = llm.closed
    with caplog.at_level("DEBUG"), TestClient(app) as client:
        with client.stream("GET", "/chat") as response:
            for n, _ in enumerate(response.iter_lines()):
                if n > 6:
                    break
        gc.collect()
    assert llm.closed == closed + 1
    assert [r.reason for r in results] == ["shutdown"]  # the app was cancelled, not told
    assert not [r for r in caplog.records if r.levelno >= 40], caplog.text


def test_sse_endpoint_refuses_a_handler_that_is_not_callable() -> None:
    # Before: accepted; every request then failed inside the app.
    with pytest.raises(TypeError, match="SSEEndpoint's handler is called with the request"):
        SSEEndpoint(123)  # type: ignore[arg-type]


def test_sse_endpoint_refuses_a_bare_method_name() -> None:
    # Before: methods="GET" became {"G", "E", "T"} and every request got 405.
    with pytest.raises(TypeError, match="methods is a tuple of method names"):
        SSEEndpoint(lambda request: ["x"], methods="GET")  # type: ignore[arg-type]


def test_a_response_refused_for_its_options_closes_a_sync_source_or_sdk_call() -> None:
    # Found in review: a refused response (a misspelt option, a header built from user data)
    # left the sync SDK stream or the unawaited SDK call the view had made to the garbage
    # collector, its upstream request running meanwhile.
    closed: list[str] = []
    generator = sync_stream(closed)
    next(generator)  # started, as an SDK stream is once its response arrived
    with pytest.raises(TypeError, match="heartbeet"):
        SSEResponse(generator, heartbeet=1)  # type: ignore[call-arg]
    call = sdk_call()
    with pytest.raises(ValueError, match="outside Latin-1"):
        SSEResponse(call, headers={"x-user": "김민수"})
    assert closed == ["sync"]
    assert call.cr_frame is None  # closed, never run (no "never awaited" warning)
