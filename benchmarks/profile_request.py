"""Where sse-llm's own time goes, in-process: per short request and per event.

The server benchmarks measure everything uvicorn does too; this script takes the server away
and drives the same two ASGI apps as ``bench_short.py`` (the raw loop with its disconnect
watcher, and a bare ``EventStream(source, format=TextFormat(), heartbeat=15)``) over an
in-memory channel shaped like uvicorn's (``receive`` gives the request, then waits until the
response is complete and says ``http.disconnect``), on asyncio and on uvloop. Then it times
the pieces of sse-llm's share with ``timeit``: building the response (source check, options
check, headers), the engine and the pump objects, one token through the engine, and the
stream's end (the result completed and the ``done`` event written).

    .venv/bin/python benchmarks/profile_request.py [--requests 20000] [--repeat 5]

Figures are process CPU (``time.process_time``) per request, the best of ``--repeat`` runs
(the machine is shared: the least disturbed run is the truest). They are smaller than the
server's figures, where the same work also competes with uvicorn for the CPU caches.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import timeit
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _server

from sse_llm import EventStream, TextFormat
from sse_llm._engine import StreamEngine
from sse_llm._options import resolve
from sse_llm._pump import Pump

EVENTS = 3  # as bench_short.py
Message = MutableMapping[str, Any]


class Channel:
    """uvicorn's request cycle, in memory: the request, then a disconnect once the response is
    complete."""

    def __init__(self) -> None:
        self.complete = asyncio.Event()
        self.body_given = False

    async def receive(self) -> Message:
        if not self.body_given:
            self.body_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete.set()


async def tokens() -> AsyncIterator[str]:
    for _ in range(EVENTS):
        yield _server.TOKEN


async def raw(channel: Channel) -> None:
    await _server.raw_watch({}, channel.receive, channel.send, tokens())


async def sse_llm(channel: Channel) -> None:
    app = EventStream(tokens(), format=TextFormat(), heartbeat=15)
    await app({"type": "http"}, channel.receive, channel.send)


App = Callable[[Channel], Coroutine[Any, Any, None]]


async def per_request(app: App, n: int) -> float:
    loop = asyncio.get_running_loop()
    start = time.process_time()
    for _ in range(n):
        await loop.create_task(app(Channel()))
    return (time.process_time() - start) / n * 1e6


def whole_requests(
    run: Callable[[Coroutine[Any, Any, Any]], Any], n: int, repeat: int
) -> dict[str, float]:
    async def both() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"raw": [], "sse-llm": []}
        await per_request(raw, min(n, 1000))  # warm-up
        await per_request(sse_llm, min(n, 1000))
        for _ in range(repeat):  # interleaved, as the server benchmarks
            out["raw"].append(await per_request(raw, n))
            out["sse-llm"].append(await per_request(sse_llm, n))
        return out

    samples = run(both())
    return {name: min(values) for name, values in samples.items()}


def pieces(repeat: int) -> list[tuple[str, float]]:
    fmt = TextFormat()
    config = resolve({"format": fmt, "heartbeat": 15}, binding="EventStream")
    names: dict[str, Any] = {
        "EventStream": EventStream,
        "TextFormat": TextFormat,
        "StreamEngine": StreamEngine,
        "Pump": Pump,
        "tokens": tokens,
        "fmt": fmt,
        "config": config,
        "TOKEN": _server.TOKEN,
    }
    engine = StreamEngine(fmt)
    names["engine"] = engine

    def best(stmt: str, number: int = 20_000) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=repeat, globals=names)) / number * 1e6

    new_engine = best("StreamEngine(fmt)")
    return [
        (
            "building the response: `EventStream(...)` (source check, options check, headers)",
            best("EventStream(tokens(), format=TextFormat(), heartbeat=15)") - best("tokens()"),
        ),
        (
            "the engine and the pump objects",
            new_engine + best("Pump(None, engine, config, None, asgi=True)"),
        ),
        ("one token through the engine (per event)", best("engine.feed_units(TOKEN)")),
        (
            "the stream's end: result completed, `done` event written",
            best("StreamEngine(fmt).close_units('completed')") - new_engine,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    loops: list[tuple[str, Callable[[Coroutine[Any, Any, Any]], Any]]] = [("asyncio", asyncio.run)]
    try:
        import uvloop

        loops.append(("uvloop", uvloop.run))
    except ImportError:
        print("uvloop not installed: asyncio only")
    print(f"Per request ({EVENTS} events of 16 bytes), µs of process CPU, best of {args.repeat}:\n")
    print("| loop | raw + watcher | sse-llm `EventStream` | difference |")
    print("|---|---|---|---|")
    for name, run in loops:
        got = whole_requests(run, args.requests, args.repeat)
        extra = got["sse-llm"] - got["raw"]
        print(f"| {name} | {got['raw']:.1f} | {got['sse-llm']:.1f} | +{extra:.1f} |")
    print("\nThe pieces of sse-llm's share (µs, best of", args.repeat, "timeit runs):\n")
    print("| piece | µs |")
    print("|---|---|")
    for label, micros in pieces(args.repeat):
        print(f"| {label} | {micros:.2f} |")


if __name__ == "__main__":
    main()
