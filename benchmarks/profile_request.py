"""Where sse-llm's own time goes, in-process: per short request and per event.

The server benchmarks measure everything uvicorn does too; this script takes the server away
and drives the same two ASGI apps as ``bench_short.py`` (the raw loop with its disconnect
watcher, and a bare ``EventStream(source, format=TextFormat(), heartbeat=15)``) over an
in-memory channel shaped like uvicorn's (``receive`` gives the request, then waits until the
response is complete and says ``http.disconnect``), on asyncio and on uvloop. Then it times
the pieces of sse-llm's share with ``timeit``: building the response (source check, options
check, headers), the engine and the pump objects, one token through the engine, and the
stream's end (the result completed and the ``done`` event written).

    .venv/bin/python benchmarks/profile_request.py [--requests 20000] [--repeat 5] [--opcodes]

``--opcodes`` adds a count that no noise can move: the Python bytecode instructions executed
per short request, per paced event (a source that awaits before each token, as an LLM's
does: requests of 60 events less requests of 10, over 50) and per client disconnect
(``sys.settrace`` with opcode events, on the pure-Python asyncio loop so that the loop's own
work is counted too), for the raw loop and for sse-llm, with the functions that execute most
of sse-llm's.

``--objects`` adds what Python's cyclic garbage collector sees: the objects it tracks per open
stream (500 streams whose source sent a token and waits, the collector paused) and those a
disconnect leaves in reference cycles, which only a collection frees. The more tracked objects
a server holds and makes, the sooner its collector's counters call for a full collection, which
walks every one of them (``bench_drop.py`` counts the full collections during a drop).

Figures are process CPU (``time.process_time``) per request, the best of ``--repeat`` runs
(the machine is shared: the least disturbed run is the truest). They are smaller than the
server's figures, where the same work also competes with uvicorn for the CPU caches.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import sys
import time
import timeit
from collections.abc import AsyncGenerator, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _server

import sse_llm as _package
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


async def tokens() -> AsyncGenerator[str, None]:
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


# -- bytecode instructions --------------------------------------------------------------------


_SSE_LLM_DIR = Path(_package.__file__).parent


@functools.cache
def _where(filename: str, function: str) -> str:
    """``file.py:function``; ``sse_llm/path/file.py:function`` for the package's own code."""
    path = Path(filename)
    if path.is_relative_to(_SSE_LLM_DIR):
        return f"sse_llm/{path.relative_to(_SSE_LLM_DIR)}:{function}"
    return f"{path.name}:{function}"


class _Opcodes:
    """Counts the bytecode instructions executed, per function, while tracing."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            self.counts[_where(code.co_filename, code.co_name)] += 1
        return self.trace


class _DropChannel:
    """A request whose client leaves once told to (``gone``)."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.asked = False

    async def receive(self) -> Message:
        if not self.asked:
            self.asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        pass


async def _one_then_silence() -> AsyncGenerator[str, None]:
    yield _server.TOKEN
    await asyncio.get_running_loop().create_future()  # an LLM that thinks until cut off


async def _raw_drop(channel: _DropChannel) -> None:
    await _server.raw_watch({}, channel.receive, channel.send, _one_then_silence())


async def _sse_llm_drop(channel: _DropChannel) -> None:
    app = EventStream(_one_then_silence(), format=TextFormat(), heartbeat=15)
    await app({"type": "http"}, channel.receive, channel.send)


async def _paced(events: int) -> AsyncGenerator[str, None]:
    for _ in range(events):
        await asyncio.sleep(0)  # the next token is not there yet
        yield _server.TOKEN


def _paced_apps(events: int) -> dict[str, App]:
    async def raw_paced(channel: Channel) -> None:
        await _server.raw_watch({}, channel.receive, channel.send, _paced(events))

    async def sse_llm_paced(channel: Channel) -> None:
        app = EventStream(_paced(events), format=TextFormat(), heartbeat=15)
        await app({"type": "http"}, channel.receive, channel.send)

    return {"raw": raw_paced, "sse-llm": sse_llm_paced}


def opcodes(n: int = 200) -> dict[str, dict[str, collections.Counter[str]]]:
    """Instructions per short request, per paced event and per disconnect:
    {case: {variant: per-function}}."""

    async def requests(app: App, counter: _Opcodes) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # warm-up, untraced
            await loop.create_task(app(Channel()))
        sys.settrace(counter.trace)
        try:
            for _ in range(n):
                await loop.create_task(app(Channel()))
        finally:
            sys.settrace(None)

    async def drops(
        app: Callable[[_DropChannel], Coroutine[Any, Any, None]], counter: _Opcodes
    ) -> None:
        loop = asyncio.get_running_loop()
        channels = [_DropChannel() for _ in range(n)]
        tasks = [loop.create_task(app(channel)) for channel in channels]
        await asyncio.sleep(0.05)  # every stream sent its token and waits
        sys.settrace(counter.trace)  # from the disconnects to the last request's end
        try:
            for channel in channels:
                channel.gone.set()
            await asyncio.wait(tasks)
        finally:
            sys.settrace(None)

    out: dict[str, dict[str, collections.Counter[str]]] = {"request": {}, "disconnect": {}}
    for name, app, drop in (("raw", raw, _raw_drop), ("sse-llm", sse_llm, _sse_llm_drop)):
        counter = _Opcodes()
        asyncio.run(requests(app, counter))
        out["request"][name] = counter.counts
        counter = _Opcodes()
        asyncio.run(drops(drop, counter))
        out["disconnect"][name] = counter.counts
    per = {
        case: {
            name: collections.Counter({where: count // n for where, count in got.items()})
            for name, got in by_variant.items()
        }
        for case, by_variant in out.items()
    }
    # Per paced event: what 50 more events add to a request (its start and end cancel out).
    short, long = _paced_apps(10), _paced_apps(60)
    per["event"] = {}
    for name in ("raw", "sse-llm"):
        few, many = _Opcodes(), _Opcodes()
        asyncio.run(requests(short[name], few))
        asyncio.run(requests(long[name], many))
        per["event"][name] = collections.Counter(  # fractions: the totals stay exact
            {where: (many.counts[where] - few.counts[where]) / (50 * n) for where in many.counts}
        )
    return per


# -- what the garbage collector sees ------------------------------------------------------------

DropApp = Callable[[_DropChannel], Coroutine[Any, Any, None]]


async def _tracked(app: DropApp, n: int) -> tuple[float, float]:
    """(tracked objects per open stream, objects left in cycles per disconnect)."""
    loop = asyncio.get_running_loop()
    channels = [_DropChannel() for _ in range(n)]
    gc.collect()
    gc.disable()  # what the streams hold, not what a collection in between would free
    try:
        before = len(gc.get_objects())
        tasks = [loop.create_task(app(channel)) for channel in channels]
        await asyncio.sleep(0.1)  # every stream sent its token and waits
        held = (len(gc.get_objects()) - before) / n
        for channel in channels:
            channel.gone.set()
        await asyncio.wait(tasks)
        del tasks
        return held, gc.collect() / n
    finally:
        gc.enable()


def print_objects(loops: list[tuple[str, Callable[[Coroutine[Any, Any, Any]], Any]]]) -> None:
    n = 500
    print(f"\nObjects the cyclic garbage collector tracks ({n} streams, in-process):\n")
    print(
        "| loop | per open stream: raw + watcher | sse-llm `EventStream` | ratio "
        "| left in cycles per disconnect: raw + watcher | sse-llm |"
    )
    print("|---|---|---|---|---|---|")
    for name, run in loops:
        raw_held, raw_cycles = run(_tracked(_raw_drop, n))
        ours_held, ours_cycles = run(_tracked(_sse_llm_drop, n))
        print(
            f"| {name} | {raw_held:.0f} | {ours_held:.0f} | {ours_held / raw_held:.2f}x "
            f"| {raw_cycles:.0f} | {ours_cycles:.0f} |"
        )


_RAW_LOOP = {"_server.py:raw_watch", "_server.py:watch"}


def print_opcodes() -> None:
    print("\nPython bytecode instructions executed (asyncio's pure-Python loop included):\n")
    print(
        "| per | raw + watcher | sse-llm `EventStream` | ratio "
        "| the layer's own code: raw loop | sse-llm |"
    )
    print("|---|---|---|---|---|---|")
    got = opcodes()
    cases = (
        ("request", "short request (3 events)"),
        ("event", "paced event"),
        ("disconnect", "disconnect"),
    )
    for case, label in cases:
        raw_total = sum(got[case]["raw"].values())
        ours_total = sum(got[case]["sse-llm"].values())
        # The layer's own code: the raw loop's two coroutines, the sse_llm package's modules.
        raw_own = sum(n for where, n in got[case]["raw"].items() if where in _RAW_LOOP)
        ours_own = sum(
            n for where, n in got[case]["sse-llm"].items() if where.startswith("sse_llm/")
        )
        print(
            f"| {label} | {raw_total:,.0f} | {ours_total:,.0f} | {ours_total / raw_total:.2f}x "
            f"| {raw_own:,.0f} | {ours_own:,.0f} |"
        )
    for case, _ in cases:
        print(f"\nsse-llm's functions per {case}, instructions (the 12 that run most):\n")
        for where, count in got[case]["sse-llm"].most_common(12):
            print(f"    {count:5.0f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--opcodes", action="store_true", help="also count bytecode instructions")
    parser.add_argument(
        "--objects", action="store_true", help="also count the objects the collector tracks"
    )
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
    if args.opcodes:
        print_opcodes()
    if args.objects:
        print_objects(loops)


if __name__ == "__main__":
    main()
