"""Store outages: a real redis-server killed mid-answer and started again, under real uvicorn.

A resumable stream's producer keeps generating while the store is down, holding its events
in memory and retrying; readers wait and read again. Killed for 2 s or 10 s (with the
append-only file on, or off so that Redis comes back empty), 100 readers of the stream each
get every event exactly once, in order, and the whole answer; the completion hook gets the
whole text. Past the hub's ``outage_grace`` every reader ends with an ``error`` event (code
``store_unavailable``) and the hook still gets the whole text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sse_llm import ServerSentEvent, SSEDecoder, StreamResult
from sse_llm.resume import RedisStore, StreamHub
from sse_llm.starlette import ResumeResponse
from sse_llm.testing import FakeLLM, tokenize
from tests.support.redis_server import RedisServer, redis_server
from tests.support.results import Results
from tests.support.servers import run_uvicorn
from tests.support.upstream import Thinker

READERS = 100
ANSWER = " ".join(f"word{n} 안녕 🙂" for n in range(150))  # 450 tokens: outlasts 10 s
SHORT_ANSWER = " ".join(f"word{n} 안녕 🙂" for n in range(60))  # 180 tokens: outlasts 2 s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


def make_app(url: str, llm: FakeLLM, results: Results, **hub_options: Any) -> Starlette:
    holder: dict[str, StreamHub] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A short socket timeout: a dead server is noticed in a second (block must stay below);
        # a pool for every waiting reader (each holds a connection while it blocks), more than
        # redis-py's default of 100.
        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=1, max_connections=4 * READERS
        )
        holder["hub"] = hub = StreamHub(RedisStore(client), keep=60, **hub_options)
        try:
            async with hub:
                yield
        finally:
            await client.aclose()

    async def start(request: Request) -> Response:
        stream_id = await holder["hub"].start(llm.stream(), on_complete=results)
        return JSONResponse({"stream_id": stream_id})

    async def read(request: Request) -> Response:
        return ResumeResponse(holder["hub"], request.path_params["stream_id"], heartbeat=0.5)

    return Starlette(
        routes=[Route("/start", start, methods=["POST"]), Route("/streams/{stream_id}", read)],
        lifespan=lifespan,
    )


async def read_all(
    http: httpx.AsyncClient, url: str, reading: anyio.Semaphore
) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    decoder = SSEDecoder()
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            for item in decoder.feed(chunk):
                if isinstance(item, ServerSentEvent):
                    if not events:
                        reading.release()
                    events.append(item)
    return events


async def outage(
    tmp_path: Path, *, seconds: float, appendonly: bool, **hub_options: Any
) -> tuple[list[list[ServerSentEvent]], StreamResult]:
    # The answer outlasts the outage by a few seconds.
    llm = FakeLLM(answer_for(seconds), delay=0.035)
    results = Results()
    with redis_server(tmp_path, appendonly=appendonly) as server:
        app = make_app(server.url, llm, results, **hub_options)
        with run_uvicorn(app, lifespan="on") as base_url:
            timeout = httpx.Timeout(10.0, read=60.0)
            limits = httpx.Limits(max_connections=READERS + 10)
            async with (
                httpx.AsyncClient(timeout=timeout, limits=limits) as http,
                anyio.create_task_group() as tg,
            ):
                stream_id = (await http.post(f"{base_url}/start")).json()["stream_id"]
                reads: list[list[ServerSentEvent]] = [[] for _ in range(READERS)]
                reading = anyio.Semaphore(0)

                async def reader(n: int) -> None:
                    reads[n] = await read_all(http, f"{base_url}/streams/{stream_id}", reading)

                for n in range(READERS):
                    tg.start_soon(reader, n)
                for _ in range(READERS):  # every reader is attached and reading
                    await reading.acquire()
                await anyio.sleep(1.0)
                await kill_for(server, seconds)
            result = results.wait(30)
    return reads, result


def answer_for(seconds: float) -> str:
    return SHORT_ANSWER if seconds < 5 else ANSWER


async def kill_for(server: RedisServer, seconds: float) -> None:
    server.kill()
    await anyio.sleep(seconds)
    await anyio.to_thread.run_sync(server.start)


def text_of(events: list[ServerSentEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")


def assert_exactly_once(events: list[ServerSentEvent], stream_id_events: int) -> None:
    seqs = [int((e.id or "").rpartition("-")[2]) for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order, no gap
    assert len(events) == stream_id_events


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("seconds", "appendonly"),
    [(2, False), (2, True), (10, False), (10, True)],
    ids=["2s-no-persistence", "2s-append-only", "10s-no-persistence", "10s-append-only"],
)
async def test_an_outage_shorter_than_the_grace_loses_nothing(
    tmp_path: Path, seconds: float, appendonly: bool
) -> None:
    reads, result = await outage(tmp_path, seconds=seconds, appendonly=appendonly)
    answer = answer_for(seconds)
    assert result.reason == "completed"
    assert result.text == answer
    expected = len(tokenize(answer)) + 1  # the deltas and done
    for events in reads:
        assert_exactly_once(events, expected)
        assert text_of(events) == answer
        assert events[-1].event == "done"


@pytest.mark.anyio
async def test_an_outage_longer_than_the_grace_ends_every_reader_with_an_error(
    tmp_path: Path,
) -> None:
    reads, result = await outage(tmp_path, seconds=6, appendonly=False, outage_grace=3.0)
    # The hook still gets the whole answer: the producer ran to the end.
    assert result.reason == "error"
    assert isinstance(result.error, Exception)
    assert result.text == answer_for(6)
    for events in reads:
        assert events[-1].event == "error"
        assert json.loads(events[-1].data)["code"] == "store_unavailable"
        seqs = [int((e.id or "").rpartition("-")[2]) for e in events[:-1]]
        assert seqs == list(range(1, len(seqs) + 1))  # nothing duplicated before the end


@pytest.mark.anyio
async def test_a_store_that_comes_back_empty_while_the_model_thinks_is_refilled_at_once(
    tmp_path: Path,
) -> None:
    # Found in review: the writer put a lost stream back only at the next event, so while
    # the model thought, a reconnect got 204 (and EventSource gives up for good).
    results = Results()
    with redis_server(tmp_path, appendonly=False) as server:
        app = make_app(server.url, Thinker(think=9), results)  # type: ignore[arg-type]
        with run_uvicorn(app, lifespan="on") as base_url:
            async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
                stream_id = (await http.post(f"{base_url}/start")).json()["stream_id"]
                await anyio.sleep(0.5)  # "a" and "b" are stored
                await kill_for(server, 2)  # and lost: it comes back empty
                async with http.stream("GET", f"{base_url}/streams/{stream_id}") as response:
                    # Not restored yet (then "retry: 1000": come back) or already: never 204.
                    assert response.status_code == 200
                await anyio.sleep(2.5)  # the producer's liveness failed: the writer restores
                events: list[ServerSentEvent] = []
                decoder = SSEDecoder()
                async with http.stream("GET", f"{base_url}/streams/{stream_id}") as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_raw():
                        events += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
                        if len(events) == 2:
                            break
                assert text_of(events) == "ab"  # before the model's next token
            result = results.wait(30)
    assert result.reason == "completed" and result.text == "abc"


class _Steady:
    """A token every 50 ms for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.tokens = int(seconds / 0.05)

    async def stream(self) -> AsyncIterator[str]:
        for n in range(self.tokens):
            yield f"w{n} "
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_stream_given_up_ends_its_readers_with_an_error_when_the_store_is_back(
    tmp_path: Path,
) -> None:
    # Found in review: a writer that gave up (here past outage_bytes, in a 1 s outage) went on
    # refreshing the producer's liveness, so its readers waited for the rest of the answer and
    # then ended with no end event at all: a silently cut answer.
    results = Results()
    with redis_server(tmp_path, appendonly=True) as server:
        app = make_app(server.url, _Steady(seconds=15), results, outage_grace=3.0, outage_bytes=1)  # type: ignore[arg-type]
        with run_uvicorn(app, lifespan="on") as base_url:
            async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=30.0)) as http:
                stream_id = (await http.post(f"{base_url}/start")).json()["stream_id"]
                reading = anyio.Semaphore(0)
                started = anyio.current_time()
                async with anyio.create_task_group() as tg:
                    events: list[ServerSentEvent] = []

                    async def reader() -> None:
                        events.extend(
                            await read_all(http, f"{base_url}/streams/{stream_id}", reading)
                        )

                    tg.start_soon(reader)
                    await reading.acquire()
                    await anyio.sleep(0.5)
                    await kill_for(server, 1)
                ended_after = anyio.current_time() - started
            result = results.wait(30)
    assert events[-1].event == "error", [e.event for e in events[-3:]]
    assert json.loads(events[-1].data)["code"] == "store_unavailable"
    assert ended_after < 12  # well before the answer's end (15 s): not at the producer's end
    assert result.reason == "error" and result.text == "".join(f"w{n} " for n in range(300))
