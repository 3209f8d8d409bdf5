"""The benchmark server: one uvicorn process serving one variant of the same SSE stream.

Run by the benchmark scripts as a subprocess (never imported by them), so that the parent can
read this process's CPU time and memory from ``/proc/<pid>`` without counting the client.

    python benchmarks/_server.py --variant sse-llm [--profile out.prof]

It binds 127.0.0.1 on an OS-chosen port and prints ``{"port": N}`` on its first stdout line.

Routes (any method):
    /stream?n=N&delay=S&id=I   the variant's SSE response over ``source(n, delay, id)``:
                               N tokens of 16 bytes, S seconds apart (0: back to back;
                               negative: the source awaits forever and yields nothing).
    /stats                     JSON ``{"closed": count, "finally": {id: monotonic seconds}}``:
                               when each source's ``finally`` ran (CLOCK_MONOTONIC is
                               system-wide on Linux, so the client compares it with its own).
    /reset                     clears the stats.

Variants (all stream the same source; only the ASGI layer differs):
    raw             hand-written ASGI: ``send(start)``, one ``send`` per item, the end.
    sse-llm         ``sse_llm.EventStream(source, format=TextFormat(), heartbeat=15)``.
    sse-llm-events  the same with the default ``EventsFormat`` (JSON ``event: delta``).
    sse-starlette   ``sse_starlette.EventSourceResponse(source)`` (ping every 15 s).
    streaming       Starlette ``StreamingResponse`` of ``b"data: ...\\n\\n"`` chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import uvicorn

TOKEN = "abcdefghijklmnop"  # the 16-byte str every variant streams
assert len(TOKEN.encode()) == 16

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_finally: dict[int, float] = {}
_closed = 0


async def source(n: int, delay: float, ident: int) -> AsyncIterator[str]:
    """The one source every variant serves; records when its ``finally`` runs."""
    global _closed
    try:
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


async def raw_app(scope: Scope, receive: Receive, send: Send, src: AsyncIterator[str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    async for s in src:
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + s.encode() + b"\n\n",
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def make_variant(
    name: str,
) -> Callable[[Scope, Receive, Send, AsyncIterator[str]], Awaitable[None]]:
    if name == "raw":
        return raw_app
    if name in ("sse-llm", "sse-llm-events"):
        import sse_llm

        fmt = sse_llm.TextFormat() if name == "sse-llm" else sse_llm.EventsFormat()

        async def llm(scope: Scope, receive: Receive, send: Send, src: AsyncIterator[str]) -> None:
            await sse_llm.EventStream(src, format=fmt, heartbeat=15)(scope, receive, send)

        return llm
    if name == "sse-starlette":
        from sse_starlette import EventSourceResponse

        async def ssestar(
            scope: Scope, receive: Receive, send: Send, src: AsyncIterator[str]
        ) -> None:
            await EventSourceResponse(src, ping=15)(scope, receive, send)

        return ssestar
    if name == "streaming":
        from starlette.responses import StreamingResponse

        async def framed(src: AsyncIterator[str]) -> AsyncIterator[bytes]:
            async for s in src:
                yield b"data: " + s.encode() + b"\n\n"

        async def streaming(
            scope: Scope, receive: Receive, send: Send, src: AsyncIterator[str]
        ) -> None:
            response = StreamingResponse(framed(src), media_type="text/event-stream")
            await response(scope, receive, send)

        return streaming
    raise SystemExit(f"unknown variant {name!r}")


def make_app(variant: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    stream = make_variant(variant)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        global _closed
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/stream":
            q = parse_qs(scope["query_string"].decode())
            n = int(q.get("n", ["1000000000"])[0])
            delay = float(q.get("delay", ["0"])[0])
            ident = int(q.get("id", ["0"])[0])
            await stream(scope, receive, send, source(n, delay, ident))
            return
        if path == "/reset":
            _finally.clear()
            _closed = 0
        body = json.dumps({"closed": _closed, "finally": _finally}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class _ExpectedShutdownNoise(logging.Filter):
    """Silent streams of the raw and StreamingResponse variants never see a disconnect, so
    stopping a server that held them always cancels tasks; that is expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--profile", help="write a cProfile of the whole run here at exit")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of connections
    app = make_app(args.variant)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_ExpectedShutdownNoise())
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
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
