"""The benchmark server: one uvicorn process serving one variant of the same SSE stream.

Run by the benchmark scripts as a subprocess (never imported by them), so that the parent can
read this process's CPU time and memory from ``/proc/<pid>`` without counting the client.

    python benchmarks/_server.py --variant sse-llm [--stack asyncio|uvloop] [--profile out.prof]
                                 [--gc on|off|freeze]

It binds 127.0.0.1 on an OS-chosen port and prints ``{"port": N}`` on its first stdout line.

Stacks (uvicorn ``loop`` / ``http``):
    asyncio   ``loop="asyncio", http="h11"``: pure Python, uvicorn's fallback.
    uvloop    ``loop="uvloop", http="httptools"``: ``uvicorn[standard]``, what production runs.

Routes (GET; every variant serves the same four, so the harness talks to all alike):
    /stream?n=N&delay=S&id=I&gate=G
                 the variant's SSE response over ``source(n, delay, id, gate)``: N tokens of
                 16 bytes, S seconds apart (0: back to back; negative: the source awaits
                 forever and yields nothing). ``gate=1``: the source first waits for ``/go``,
                 then 50 ms (so that /go's own request is over before the first token), then
                 ``S * (I % 100) / 100`` seconds (so streams released together do not all tick
                 at the same instant): connection set-up and /go are left out of a
                 measurement that starts when /go has answered.
    /stats       JSON ``{"closed": count, "finally": {id: monotonic seconds},
                 "collections": [gen0, gen1, gen2]}``: when each source's ``finally`` ran
                 (CLOCK_MONOTONIC is system-wide on Linux, so the client compares it with its
                 own), and how many collections Python's cyclic garbage collector has run in
                 each generation (``gc.get_stats()``; a generation-2 one is a full collection).
    /reset       clears the stats (same answer as /stats, after clearing).
    /go          releases the sources waiting on the gate (and arms a fresh gate).

Variants (all stream the same source; only the layer between it and uvicorn differs).
"bare": a plain ASGI function dispatching on the path; "routed": a Starlette (or FastAPI) app
with one route per path, as an application is written.

    raw                 bare, hand-written ASGI with a disconnect watcher: ``send(start)``, one
                        ``send`` per item, the end; a second task awaits ``receive()`` and
                        cancels the streaming task on ``http.disconnect``. The baseline.
    raw-nowatch         bare, the same loop without the watcher (extra: what the watcher costs;
                        it never notices a client that left, so it has no drop row).
    sse-llm             bare, ``sse_llm.EventStream(source, format=TextFormat(), heartbeat=15)``.
    sse-llm-events      bare, the same with the default ``EventsFormat`` (extra, on request).
    sse-llm-starlette   routed, ``sse_llm.starlette.SSEResponse(source, format=TextFormat(),
                        heartbeat=15)`` returned from a Starlette endpoint.
    sse-llm-fastapi     routed, ``sse_llm.fastapi.SSEResponse(...)`` returned from a FastAPI
                        ``@app.get("/stream")`` endpoint.
    sse-starlette       routed, ``sse_starlette.EventSourceResponse(source, ping=15)`` in a
                        Starlette route.
    streaming-routed    routed, Starlette ``StreamingResponse`` of ``b"data: ...\\n\\n"`` chunks
                        in a Starlette route.
    streaming           bare, the same ``StreamingResponse`` called as an ASGI app.
    streaming-fastapi   routed, the same ``StreamingResponse`` from a FastAPI endpoint (extra, on
                        request: FastAPI's own cost).
    sse-llm-django      a Django project (``get_asgi_application()``, no middleware), the view
                        returning ``sse_llm.django.SSEResponse(source, format=TextFormat(),
                        heartbeat=15)`` (extra, on request).
    streaming-django    the same project, the view returning Django's ``StreamingHttpResponse``
                        of ``b"data: ...\\n\\n"`` chunks (extra, on request: the Django
                        baseline).

Every routed endpoint reads the query with the same small helper as the bare apps (not
``request.query_params`` or typed FastAPI parameters), so that what differs is the framework's
routing, middleware and response classes, not how three benchmark parameters are parsed.
"""

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, ClassVar
from urllib.parse import parse_qs

import uvicorn

TOKEN = "abcdefghijklmnop"  # the 16-byte str every variant streams
assert len(TOKEN.encode()) == 16

GATE_LEAD = 0.05  # seconds from /go to the first token: /go's own request is over by then

STACKS = {"asyncio": ("asyncio", "h11"), "uvloop": ("uvloop", "httptools")}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Source = AsyncGenerator[str, None]
Stream = Callable[[Scope, Receive, Send, Source], Awaitable[None]]

_finally: dict[int, float] = {}
_closed = 0
_gate: asyncio.Event | None = None


def _current_gate() -> asyncio.Event:
    global _gate
    if _gate is None:
        _gate = asyncio.Event()
    return _gate


def _go() -> None:
    global _gate
    gate, _gate = _current_gate(), asyncio.Event()
    gate.set()


def _reset() -> None:
    global _closed
    _finally.clear()
    _closed = 0


def _stats_body() -> bytes:
    collections = [generation["collections"] for generation in gc.get_stats()]
    return json.dumps({"closed": _closed, "finally": _finally, "collections": collections}).encode()


async def source(n: int, delay: float, ident: int, gate: bool) -> Source:
    """The one source every variant serves; records when its ``finally`` runs."""
    global _closed
    try:
        if gate:
            await _current_gate().wait()
            await asyncio.sleep(GATE_LEAD + max(delay, 0.0) * (ident % 100) / 100)
        if delay < 0:
            # An LLM that never answers: only a disconnect (or shutdown) ends this.
            await asyncio.get_running_loop().create_future()
        for i in range(n):
            if delay and i:
                await asyncio.sleep(delay)
            yield TOKEN
    finally:
        _finally[ident] = time.monotonic()
        _closed += 1


def _params(scope: Scope) -> tuple[int, float, int, bool]:
    q = parse_qs(scope["query_string"].decode())
    return (
        int(q.get("n", ["1000000000"])[0]),
        float(q.get("delay", ["0"])[0]),
        int(q.get("id", ["0"])[0]),
        q.get("gate", ["0"])[0] == "1",
    )


def _source_for(scope: Scope) -> Source:
    return source(*_params(scope))


async def _framed(src: Source) -> AsyncIterator[bytes]:
    async for s in src:
        yield b"data: " + s.encode() + b"\n\n"


# -- the raw baselines -------------------------------------------------------------------------

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
}
_END = {"type": "http.response.body", "body": b"", "more_body": False}


async def raw_nowatch(scope: Scope, receive: Receive, send: Send, src: Source) -> None:
    await send(_START)
    async for s in src:
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + s.encode() + b"\n\n",
                "more_body": True,
            }
        )
    await send(_END)


async def raw_watch(scope: Scope, receive: Receive, send: Send, src: Source) -> None:
    """The fair baseline: the least a server can do that also ends the stream (and closes its
    source) when the client goes away, whether or not the source is yielding."""
    streaming = asyncio.current_task()
    assert streaming is not None
    finished = False
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not finished:
                    gone = True
                    streaming.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        await send(_START)
        async for s in src:
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + s.encode() + b"\n\n",
                    "more_body": True,
                }
            )
        finished = True
        await send(_END)
    except asyncio.CancelledError:
        if not gone:
            raise
        streaming.uncancel()
    finally:
        finished = True
        watcher.cancel()
        await src.aclose()  # a no-op when the loop ended; closes a source left at its yield


# -- the variants ------------------------------------------------------------------------------


def _bare(stream: Stream) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/stream":
            await stream(scope, receive, send, _source_for(scope))
            return
        if path == "/reset":
            _reset()
        elif path == "/go":
            _go()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": _stats_body()})

    return app


def _starlette(respond: Callable[[Any], Any]) -> ASGIApp:
    """A Starlette app as the docs write one: ``Starlette(routes=[Route(...), ...])``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def stream(request: Request) -> Any:
        return respond(_source_for(request.scope))

    async def stats(request: Request) -> Response:
        return Response(_stats_body(), media_type="application/json")

    async def reset(request: Request) -> Response:
        _reset()
        return Response(_stats_body(), media_type="application/json")

    async def go(request: Request) -> Response:
        _go()
        return Response(_stats_body(), media_type="application/json")

    return Starlette(
        routes=[
            Route("/stream", stream),
            Route("/stats", stats),
            Route("/reset", reset),
            Route("/go", go),
        ]
    )


def _fastapi(respond: Callable[[Any], Any]) -> ASGIApp:
    """A FastAPI app as the docs write one: ``app = FastAPI()`` and ``@app.get`` endpoints."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()

    @app.get("/stream")
    async def stream(request: Request) -> Response:
        return respond(_source_for(request.scope))

    @app.get("/stats")
    async def stats() -> Response:
        return Response(_stats_body(), media_type="application/json")

    @app.get("/reset")
    async def reset() -> Response:
        _reset()
        return Response(_stats_body(), media_type="application/json")

    @app.get("/go")
    async def go() -> Response:
        _go()
        return Response(_stats_body(), media_type="application/json")

    return app


def _django(respond: Callable[[Any], Any]) -> ASGIApp:
    """A Django project as ``get_asgi_application()`` serves one: one async view per path, no
    middleware, no database."""
    import django
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    async def stream(request: HttpRequest) -> Any:
        return respond(_source_for(request.scope))

    async def stats(request: HttpRequest) -> HttpResponse:
        return HttpResponse(_stats_body(), content_type="application/json")

    async def reset(request: HttpRequest) -> HttpResponse:
        _reset()
        return HttpResponse(_stats_body(), content_type="application/json")

    async def go(request: HttpRequest) -> HttpResponse:
        _go()
        return HttpResponse(_stats_body(), content_type="application/json")

    class URLs:  # a URLconf need not be a module, only have urlpatterns
        urlpatterns: ClassVar[list[Any]] = [
            path("stream", stream),
            path("stats", stats),
            path("reset", reset),
            path("go", go),
        ]

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=URLs,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        USE_TZ=True,
    )
    django.setup()
    return get_asgi_application()  # type: ignore[no-any-return]


def make_app(name: str) -> ASGIApp:
    if name == "raw":
        return _bare(raw_watch)
    if name == "raw-nowatch":
        return _bare(raw_nowatch)
    if name in ("sse-llm", "sse-llm-events"):
        import sse_llm

        text = name == "sse-llm"

        async def llm(scope: Scope, receive: Receive, send: Send, src: Source) -> None:
            fmt = sse_llm.TextFormat() if text else sse_llm.EventsFormat()
            await sse_llm.EventStream(src, format=fmt, heartbeat=15)(scope, receive, send)

        return _bare(llm)
    if name == "sse-llm-starlette":
        from sse_llm import TextFormat
        from sse_llm.starlette import SSEResponse

        return _starlette(lambda src: SSEResponse(src, format=TextFormat(), heartbeat=15))
    if name == "sse-llm-fastapi":
        from sse_llm import TextFormat
        from sse_llm.fastapi import SSEResponse as FastAPISSEResponse

        return _fastapi(lambda src: FastAPISSEResponse(src, format=TextFormat(), heartbeat=15))
    if name == "sse-llm-django":
        from sse_llm import TextFormat
        from sse_llm.django import SSEResponse as DjangoSSEResponse

        return _django(lambda src: DjangoSSEResponse(src, format=TextFormat(), heartbeat=15))
    if name == "streaming-django":
        from django.http import StreamingHttpResponse

        return _django(
            lambda src: StreamingHttpResponse(_framed(src), content_type="text/event-stream")
        )
    if name == "sse-starlette":
        from sse_starlette import EventSourceResponse

        return _starlette(lambda src: EventSourceResponse(src, ping=15))
    if name in ("streaming", "streaming-routed", "streaming-fastapi"):
        from starlette.responses import StreamingResponse

        def respond(src: Source) -> StreamingResponse:
            return StreamingResponse(_framed(src), media_type="text/event-stream")

        if name == "streaming-routed":
            return _starlette(respond)
        if name == "streaming-fastapi":
            return _fastapi(respond)

        async def streaming(scope: Scope, receive: Receive, send: Send, src: Source) -> None:
            await respond(src)(scope, receive, send)

        return _bare(streaming)
    raise SystemExit(f"unknown variant {name!r}")


class _ExpectedShutdownNoise(logging.Filter):
    """Silent streams of the variants that do not watch for disconnects never end, so stopping
    a server that held them always cancels tasks; that is expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--stack", choices=sorted(STACKS), default="asyncio")
    parser.add_argument("--profile", help="write a cProfile of the whole run here at exit")
    parser.add_argument(
        "--gc",
        choices=("on", "off", "freeze"),
        default="on",
        help="the cyclic garbage collector: on; off (a diagnostic); freeze, gc.freeze() once "
        "the app is made, so that collections skip what was alive then",
    )
    args = parser.parse_args()
    if args.gc == "off":
        gc.disable()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of connections
    app = make_app(args.variant)
    loop, http = STACKS[args.stack]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop=loop,
        http=http,
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_ExpectedShutdownNoise())
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    if args.gc == "freeze":
        gc.freeze()  # the modules, the app, uvicorn's config: what lives as long as the process
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        # uvicorn re-raises the SIGTERM it caught once it has shut down; the default handler
        # would kill the process before the profile is written. Only when profiling: with
        # streams still open at the stop, exiting through the loop logs one traceback each.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        profiler.enable()
    try:
        server.run(sockets=[sock])
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    sys.exit(0)


if __name__ == "__main__":
    main()
