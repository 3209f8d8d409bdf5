"""Sync sources (a blocking SDK stream) under a real uvicorn: their worker threads come from
sse-llm's own limiter, never from the app's thread pool, and a disconnect ends the stream at
once even while ``next()`` is blocked, recording only what the client was sent."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sse_llm import StreamResult
from sse_llm.starlette import SSEResponse
from tests.support.results import Results
from tests.support.servers import run_uvicorn

BLOCKED = 60  # more than anyio's 40 default worker threads


def test_blocked_sync_sources_never_starve_the_apps_own_thread_pool() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked() -> Iterator[str]:
        started.release()
        release.wait(30)  # an SDK waiting on a model that does not answer
        yield "late"

    async def stream(request: Request) -> SSEResponse:
        return SSEResponse(blocked(), heartbeat=None)

    def sync_page(request: Request) -> PlainTextResponse:  # run in anyio's default pool
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/stream", stream), Route("/page", sync_page)])
    with (
        run_uvicorn(app) as url,
        httpx.Client(timeout=10) as http,
        anyio.from_thread.start_blocking_portal() as portal,
    ):

        async def open_streams() -> None:
            async with httpx.AsyncClient(timeout=30) as client, anyio.create_task_group() as tg:
                for _ in range(BLOCKED):
                    tg.start_soon(client.get, f"{url}/stream")

        future = portal.start_task_soon(open_streams)
        try:
            for _ in range(BLOCKED):
                assert started.acquire(timeout=10)  # every source is blocked in next()
            began = time.monotonic()
            page = http.get(f"{url}/page")
            took = time.monotonic() - began
            assert page.text == "ok"
            assert took < 1.0, f"a sync endpoint waited {took:.1f} s for a thread"
        finally:
            release.set()
            future.result(30)


def test_a_generator_busy_in_its_thread_is_closed_there_once_and_nothing_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found in review: the loop also closed the generator itself while its thread ran it:
    # "generator already executing", logged as an error at every such disconnect.
    release = threading.Event()
    closed: list[str] = []
    results = Results()

    def blocked() -> Iterator[str]:
        try:
            yield "sent"
            release.wait(10)  # the model thinks when the client leaves
            yield "never sent"
        finally:
            closed.append(threading.current_thread().name)

    async def stream(request: Request) -> SSEResponse:
        return SSEResponse(blocked(), heartbeat=None, on_complete=results)

    app = Starlette(routes=[Route("/stream", stream)])
    with (
        caplog.at_level(logging.WARNING, logger="sse_llm"),
        run_uvicorn(app) as url,
        httpx.Client(timeout=10) as http,
    ):
        with http.stream("GET", f"{url}/stream") as response:
            for chunk in response.iter_raw():
                if b"sent" in chunk:
                    break
        assert results.wait(5).reason == "disconnected"
        release.set()  # its next() returns: the thread that ran it closes it
        deadline = time.monotonic() + 5
        while not closed and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(closed) == 1 and closed[0] != threading.main_thread().name
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_disconnect_does_not_wait_for_a_blocked_next_and_records_only_what_was_sent() -> None:
    produced_after_drop = threading.Event()
    dropped = threading.Event()
    results = Results()

    def slow() -> Iterator[str]:
        yield "sent"
        dropped.wait(10)  # blocked in next() when the client leaves ...
        time.sleep(1.0)  # ... and for a while after
        produced_after_drop.set()
        yield "after the client left"

    async def stream(request: Request) -> SSEResponse:
        return SSEResponse(slow(), heartbeat=None, on_complete=results)

    app = Starlette(routes=[Route("/stream", stream)])
    with run_uvicorn(app) as url, httpx.Client(timeout=10) as http:
        with http.stream("GET", f"{url}/stream") as response:
            for chunk in response.iter_raw():
                if b"sent" in chunk:
                    break
        dropped.set()
        left_at = time.monotonic()
        result: StreamResult = results.wait(5)
        hook_after = time.monotonic() - left_at
    assert result.reason == "disconnected"
    assert result.text == "sent"
    assert hook_after < 0.9, f"on_complete came {hook_after:.1f} s after the disconnect"
    assert not produced_after_drop.is_set()  # the hook did not wait for the blocked next()


def test_a_sync_source_waiting_for_a_thread_is_closed_at_once_when_its_client_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found in review: the close itself asked the sync sources' limiter for a thread, which
    # the sources blocked in next() held: it waited until close_timeout (the upstream on).
    limiter = anyio.CapacityLimiter(1)
    release = threading.Event()
    sources: list[Iterator[str]] = []
    results = Results()

    def holding() -> Iterator[str]:
        release.wait(10)  # a silent model that holds the only thread
        yield "late"

    def waiting() -> Iterator[str]:
        yield "never: there is no thread for it"

    async def first(request: Request) -> SSEResponse:
        return SSEResponse(holding(), heartbeat=None, sync_limiter=limiter)

    async def second(request: Request) -> SSEResponse:
        sources.append(waiting())
        return SSEResponse(sources[0], heartbeat=None, sync_limiter=limiter, on_complete=results)

    app = Starlette(routes=[Route("/first", first), Route("/second", second)])
    with (
        caplog.at_level(logging.WARNING, logger="sse_llm"),
        run_uvicorn(app) as url,
        httpx.Client(timeout=10) as http,
        http.stream("GET", f"{url}/first") as held,
    ):
        assert held.status_code == 200
        with http.stream("GET", f"{url}/second") as response:
            assert response.status_code == 200
        left_at = time.monotonic()  # the client of the second stream left
        result = results.wait(5)
        hook_after = time.monotonic() - left_at
        release.set()
    assert result.reason == "disconnected"
    assert hook_after < 1.0, f"closing took {hook_after:.1f} s"
    assert sources[0].gi_frame is None  # type: ignore[attr-defined]  # closed (never started)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_sync_source_runs_outside_any_async_library_and_keeps_its_context(
    anyio_backend: str,
) -> None:
    # Found in review of the one-context change: a context copied on the loop told the
    # source (sniffio) it ran inside one, so a sync source that runs its own anyio.run failed.
    import contextvars

    import sniffio

    from sse_llm.testing import run_stream

    step: contextvars.ContextVar[int] = contextvars.ContextVar("step", default=0)

    async def answer() -> str:
        return "inner"

    def source() -> Iterator[str]:
        for n in range(3):
            assert step.get() == n  # what the previous step set, as in a plain for loop
            step.set(n + 1)
            try:
                library = sniffio.current_async_library()
            except sniffio.AsyncLibraryNotFoundError:
                library = "none"
            yield f"{library}:{anyio.run(answer)} "

    response = await run_stream(SSEResponse(source()))
    assert [e.event for e in response.events][-1] == "done", response.body
    assert "".join(e.data for e in response.events if e.event == "delta").count("none:inner") == 3
