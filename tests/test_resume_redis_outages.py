"""Resumable streams through Redis troubles that no call of the producer sees as an error, or
that only one process sees: a real redis-server on 127.0.0.1, restarted, frozen (SIGSTOP) or
refusing one client's commands (an ACL), under hubs that stand for two processes of an app.

- A restart of a few milliseconds, hidden by redis-py's own retries, loses the stream (no
  persistence): the producer notices (its writes and its liveness refresh find the stream
  gone) and stores it again whole.
- A store failure only the producer's process sees (here its Redis user loses every command)
  does not make readers elsewhere take it for dead while it rides the failure out.
- Right after a restart that lost a live stream, another process tells a client to come back
  (``retry:``) rather than to give up (``204``).
- A frozen Redis with no socket timeout ends readers within the hub's ``outage_grace``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import redis.asyncio

from sse_llm import ServerSentEvent, StreamResult
from sse_llm.resume import RedisStore, StreamHub
from sse_llm.testing import FakeLLM, StreamedResponse, run_stream
from tests.support.redis_server import RedisServer, redis_server
from tests.support.results import Results
from tests.support.upstream import Thinker

RETRY = b"retry: 1000\n\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


class Hook:
    """An ``on_complete`` hook that an async test can wait for."""

    def __init__(self) -> None:
        self.results = Results()
        self.called = anyio.Event()

    def __call__(self, result: StreamResult) -> None:
        self.results(result)
        self.called.set()


def restart(server: RedisServer) -> None:
    """Kill (no persistence: everything is lost) and start again at once: down for a few ms."""
    server.kill()
    server.start()


async def read_within(
    hub: StreamHub, last_event_id: str, seconds: float
) -> StreamedResponse | None:
    """A reader's whole response; ``None`` if it is still open after ``seconds``."""
    try:
        return await run_stream(hub.response(last_event_id), timeout=seconds)
    except TimeoutError:
        return None


def texts(events: list[ServerSentEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")


def assert_whole(read: StreamedResponse, answer: str) -> None:
    assert (read.status, read.complete) == (200, True), (read.status, read.body[:80])
    assert read.events[-1].event == "done", read.events[-1]
    seqs = [int((e.id or "").rpartition("-")[2]) for e in read.events]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
    assert texts(read.events) == answer


# -- 1. a restart too quick for any call to fail --------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["thinking", "writing"])
async def test_a_redis_restart_hidden_by_the_clients_retries_loses_nothing(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Found in review: redis-py 8 retries a failed command (10 times, from 10 ms), so a
    # restart of a few ms reached no store call as an error. The next XADD made a new stream
    # without meta or first events: every read got 204, and the hook said completed.
    answer = "abc" if kind == "thinking" else " ".join(f"w{n}" for n in range(60))
    source = (
        Thinker(think=2.0).stream()  # nothing written: the liveness refresh must notice
        if kind == "thinking"
        else FakeLLM(answer, delay=0.02).stream()  # a token every 20 ms: the writes notice
    )
    hook = Hook()
    with redis_server(tmp_path) as server:
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)  # retries by default
        try:
            with anyio.fail_after(20):
                async with StreamHub(RedisStore(client), outage_grace=5) as hub:
                    stream_id = await hub.start(source, on_complete=hook)
                    await anyio.sleep(0.3)  # the first events are stored ...
                    await anyio.to_thread.run_sync(restart, server)  # ... and lost
                    await hook.called.wait()
                    read = await run_stream(hub.response(stream_id), timeout=5)
        finally:
            await client.aclose()
    assert_whole(read, answer)
    assert hook.results.one.reason == "completed" and hook.results.one.error is None
    # Found in review: the warnings held the whole stream id, a bearer capability.
    assert caplog.text and stream_id not in caplog.text  # the restart was logged
    if kind == "writing":  # a write found the stream gone, and said which
        assert f"stream {stream_id[:6]}… not in Redis (lost in a restart?)" in caplog.text


# -- 2. a failure only the producer's process sees ------------------------------------------------


@asynccontextmanager
async def producer_and_reader_processes(
    tmp_path: Path, grace: float
) -> AsyncIterator[tuple[StreamHub, StreamHub, Callable[[float], Awaitable[None]]]]:
    """Two hubs on one real Redis, as two processes: ``(here, elsewhere, cut)``; the
    producing one (``here``) connects as its own Redis user, and ``await cut(s)`` makes every
    command of that user fail (NOPERM) for ``s`` seconds while ``elsewhere`` reads on."""
    with redis_server(tmp_path) as server:
        admin = redis.asyncio.Redis.from_url(server.url)
        producing = redis.asyncio.Redis.from_url(server.url, username="producer", password="pw")
        reading = redis.asyncio.Redis.from_url(server.url)

        async def cut(seconds: float) -> None:
            await admin.execute_command("ACL", "SETUSER", "producer", "-@all")
            await anyio.sleep(seconds)
            await admin.execute_command("ACL", "SETUSER", "producer", "+@all")

        try:
            await admin.execute_command(
                "ACL", "SETUSER", "producer", "on", ">pw", "~*", "&*", "+@all"
            )
            async with (
                StreamHub(RedisStore(producing), outage_grace=grace) as here,
                StreamHub(RedisStore(reading), outage_grace=grace) as elsewhere,
            ):
                yield here, elsewhere, cut
        finally:
            for client in (admin, producing, reading):
                await client.aclose()


@pytest.mark.anyio
async def test_readers_elsewhere_wait_through_a_store_failure_only_the_producer_sees(
    tmp_path: Path,
) -> None:
    # Found in review: the producer's liveness lasted 3 s while the producer may ride out a
    # failing store for outage_grace; readers in another process (whose store works) ended
    # with code "gone" after ~4 s and their reconnect got 204, yet the producer recovered and
    # stored everything. In production: its own network cut, its pool exhausted by readers.
    answer = " ".join(f"w{n}" for n in range(90))  # 2.7 s: generated while the store fails
    results = Results()
    reads: list[StreamedResponse] = []
    with anyio.fail_after(25):
        async with producer_and_reader_processes(tmp_path, grace=8) as (here, elsewhere, cut):
            stream_id = await here.start(FakeLLM(answer, delay=0.03).stream(), on_complete=results)

            async def read() -> None:
                reads.append(await run_stream(elsewhere.response(stream_id), timeout=20))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.sleep(0.5)
                await cut(4.5)  # longer than the old liveness (3 s) and one read wait
    assert_whole(reads[0], answer)
    assert results.one.reason == "completed"


@pytest.mark.anyio
async def test_a_stream_given_up_then_reachable_again_ends_its_readers_with_the_error(
    tmp_path: Path,
) -> None:
    # Found in review: a producer that gave its stream up (its store failed past the grace)
    # and reached the store again before its source ended wrote the end marker right after
    # the last stored event: readers ended with neither done nor an error, and a reconnect
    # got 204, a silently truncated answer.
    results = Results()
    reachable_again = anyio.Event()

    async def source() -> AsyncIterator[str]:
        # Tokens all through the outage (the writer gives up only on what it cannot store),
        # and the end just after the store is back: stored before the producer's next
        # liveness refresh (which would end its readers with "gone").
        n = 0
        while not reachable_again.is_set():
            yield f"w{n} "
            n += 1
            await anyio.sleep(0.05)
        yield "last"

    reads: list[StreamedResponse] = []
    with anyio.fail_after(25):
        async with producer_and_reader_processes(tmp_path, grace=1) as (here, elsewhere, cut):
            stream_id = await here.start(source(), on_complete=results)

            async def read() -> None:
                reads.append(await run_stream(elsewhere.response(stream_id), timeout=20))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.sleep(0.4)
                await cut(1.6)  # past the grace: given up
                reachable_again.set()
            last = reads[0].events[-1]
            assert (last.event, json.loads(last.data)["code"]) == ("error", "store_unavailable")
            again = await run_stream(elsewhere.response(last.id), timeout=10)
    assert again.status == 204  # the error was the last event: nothing more to resume
    assert results.one.reason == "error"


# -- 3. another process, right after a restart that lost the stream -------------------------------


@pytest.mark.anyio
async def test_right_after_a_restart_another_process_says_come_back_not_204(
    tmp_path: Path,
) -> None:
    # Found in review: until the producer put the lost stream back, a reconnect landing on
    # another process got 204 (EventSource gives up for good) while the producer's own
    # process answered "retry: 1000".
    grace = 2.0
    hook = Hook()
    with redis_server(tmp_path) as server:
        clients = [redis.asyncio.Redis.from_url(server.url) for _ in range(2)]
        try:
            with anyio.fail_after(20):
                async with (
                    StreamHub(RedisStore(clients[0]), outage_grace=grace) as here,
                    StreamHub(RedisStore(clients[1]), outage_grace=grace) as elsewhere,
                ):
                    stream_id = await here.start(Thinker(think=2.5).stream(), on_complete=hook)
                    await anyio.sleep(0.3)  # "a" and "b" are stored ...
                    await anyio.to_thread.run_sync(restart, server)  # ... and lost
                    restarted = time.monotonic()
                    # A reconnect after "a", before the producer has stored it again.
                    early = await run_stream(elsewhere.response(f"{stream_id}-1"), timeout=5)
                    # An id the store never knew: it cannot tell them apart ...
                    unknown = "A" * 24 + "-1"
                    unknown_early = await run_stream(elsewhere.response(unknown))
                    # ... until the grace has passed (INFO's uptime: whole seconds).
                    await anyio.sleep(max(0.0, restarted + grace + 1.1 - time.monotonic()))
                    unknown_late = await run_stream(elsewhere.response(unknown))
                    await hook.called.wait()
                    whole = await run_stream(elsewhere.response(stream_id), timeout=5)
        finally:
            for client in clients:
                await client.aclose()
    assert (early.status, early.body) == (200, RETRY)
    assert (unknown_early.status, unknown_early.body) == (200, RETRY)
    assert (unknown_late.status, unknown_late.body) == (204, b"")
    assert_whole(whole, "abc")
    assert hook.results.one.reason == "completed"


# -- 4. a frozen Redis and a client without a socket timeout --------------------------------------


@pytest.mark.anyio
async def test_readers_of_a_frozen_redis_end_within_the_grace_without_a_socket_timeout(
    tmp_path: Path,
) -> None:
    # Found in review: a reader's own store calls had no time limit. With socket_timeout=None
    # (redis-py 5-7's default) a frozen Redis held readers open for good with no error event;
    # with redis-py 8's 5 s they ended only after 10 s, whatever the grace.
    grace = 1.5
    with redis_server(tmp_path) as server:
        assert server.proc is not None
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=None)
        frozen = False
        try:
            with anyio.fail_after(30):
                hub = StreamHub(RedisStore(client), outage_grace=grace, close_timeout=1)
                async with hub:
                    llm = FakeLLM(" ".join(f"w{n}" for n in range(200)), delay=0.03)  # 12 s
                    stream_id = await hub.start(llm.stream())
                    reads: list[StreamedResponse | None] = []
                    ended_after: list[float] = []

                    async def read() -> None:
                        reads.append(await read_within(hub, stream_id, 8))
                        ended_after.append(time.monotonic() - frozen_at)

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(read)
                        await anyio.sleep(0.5)
                        os.kill(server.proc.pid, signal.SIGSTOP)
                        frozen, frozen_at = True, time.monotonic()
                    # A new reader is told to come back, within one call's time limit.
                    started = time.monotonic()
                    late = await read_within(hub, stream_id, 5)
                    late_after = time.monotonic() - started
                    os.kill(server.proc.pid, signal.SIGCONT)
                    frozen = False
        finally:
            if frozen:
                os.kill(server.proc.pid, signal.SIGCONT)
            await client.aclose()
    read = reads[0]
    assert read is not None, f"the reader was still open {ended_after[0]:.1f} s after the freeze"
    assert read.events[-1].event == "error"
    assert json.loads(read.events[-1].data)["code"] == "store_unavailable"
    # The grace, plus the read that was waiting (by design, up to 1 s) and some slack.
    assert ended_after[0] < grace + 1.0 + 1.0, ended_after
    assert late is not None, f"a new reader was still open {late_after:.1f} s after it came"
    assert (late.status, late.body) == (200, RETRY)
    assert late_after < 1.0 + 1.0, late_after


@pytest.mark.anyio
async def test_starting_or_cancelling_through_a_frozen_redis_fails_within_close_timeout(
    tmp_path: Path,
) -> None:
    # Found in review: start() and cancel() (of a stream produced elsewhere) awaited the store
    # with no time limit, so a frozen Redis with socket_timeout=None held the request for good.
    with redis_server(tmp_path) as server:
        assert server.proc is not None
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=None)
        frozen = False
        llm = FakeLLM("never streamed")
        source = llm.stream()
        try:
            with anyio.fail_after(30):
                hub = StreamHub(RedisStore(client), close_timeout=1)
                async with hub:
                    elsewhere = "A" * 24  # an id of this shape, produced by no process here
                    assert hub.recognizes(elsewhere) and not hub.produces(elsewhere)
                    os.kill(server.proc.pid, signal.SIGSTOP)
                    frozen = True
                    failures: list[tuple[str, type[BaseException], float]] = []
                    for name, call in (
                        ("start", lambda: hub.start(source)),
                        ("cancel", lambda: hub.cancel(elsewhere)),
                    ):
                        started = time.monotonic()
                        with pytest.raises(TimeoutError) as raised:
                            await call()
                        failures.append((name, raised.type, time.monotonic() - started))
                    os.kill(server.proc.pid, signal.SIGCONT)
                    frozen = False
        finally:
            if frozen:
                os.kill(server.proc.pid, signal.SIGCONT)
            await source.aclose()
            await client.aclose()
    assert [name for name, _, _ in failures] == ["start", "cancel"]
    for name, _, after in failures:
        assert 0.9 < after < 1.0 + 1.0, (name, after)


@pytest.mark.anyio
async def test_a_shutdown_during_a_store_outage_runs_the_hook_within_close_timeout(
    tmp_path: Path,
) -> None:
    # Found in review: at SIGTERM with Redis frozen, the producer kept retrying the stream's
    # end for outage_grace (30 s) before its hook ran, with reason `error`: past a deploy's
    # kill timeout, so the partial answer was never saved. Also for an answer that completed
    # in the outage and was still storing its end when the signal came.
    producing, completed = Hook(), Hook()
    stop = anyio.Event()
    long_answer = FakeLLM("word " * 2000, delay=0.02)
    short_answer = FakeLLM("short answer", delay=0.02, first_token_delay=0.5)
    with redis_server(tmp_path) as server:
        assert server.proc is not None
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=2)
        frozen = False
        try:
            with anyio.fail_after(20):
                hub = StreamHub(RedisStore(client), close_timeout=1, outage_grace=30, shutdown=stop)
                async with hub:
                    await hub.start(long_answer.stream(), on_complete=producing)
                    await hub.start(short_answer.stream(), on_complete=completed)
                    await anyio.sleep(0.3)
                    os.kill(server.proc.pid, signal.SIGSTOP)
                    frozen = True
                    await anyio.sleep(1.0)  # the short answer ends, its end unstored
                    assert not completed.called.is_set()
                    stopped_at = time.monotonic()
                    stop.set()  # the server begins shutting down
                    await producing.called.wait()
                    await completed.called.wait()
                    hooks_after = time.monotonic() - stopped_at
                hub_exit_after = time.monotonic() - stopped_at
        finally:
            if frozen:
                os.kill(server.proc.pid, signal.SIGCONT)
            await client.aclose()
    cut = producing.results.wait(0)
    assert cut.reason == "shutdown"
    assert cut.text and cut.text != "word " * 2000  # the partial answer
    assert cut.error is not None  # the store's failure
    assert long_answer.closed == 1
    whole = completed.results.wait(0)
    assert (whole.reason, whole.text) == ("completed", "short answer")
    assert whole.error is not None  # its end could not be stored
    assert hooks_after < 1.0 + 1.5, hooks_after  # close_timeout, and a margin
    assert hub_exit_after < 2 * 1.0 + 2.0, hub_exit_after


@pytest.mark.anyio
async def test_a_redis_outage_logs_the_cancel_listener_failure_once_then_its_return(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Found in review: the cancel listener retries every second and logged a whole
    # traceback each time, one a second per worker for as long as Redis was down.
    caplog.set_level(logging.INFO, logger="sse_llm")
    with redis_server(tmp_path) as server:
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            with anyio.fail_after(30):
                async with StreamHub(RedisStore(client)) as hub:
                    server.kill()
                    await anyio.sleep(4.5)  # four or five retries, each refused
                    server.start()
                    for _ in range(50):  # back within a retry or two
                        if "watching for stream cancel requests again" in caplog.text:
                            break
                        await anyio.sleep(0.1)
                    llm = FakeLLM(" ".join(f"w{n}" for n in range(100)), delay=0.05)
                    hook = Hook()
                    stream_id = await hub.start(llm.stream(), on_complete=hook)
                    async with StreamHub(RedisStore(client)) as other:
                        assert await other.cancel(stream_id) is True  # heard once back
                    with anyio.fail_after(3):
                        await hook.called.wait()
        finally:
            await client.aclose()
    assert (hook.results.one.reason, llm.closed) == ("cancelled", 1)
    failed = [r for r in caplog.records if r.getMessage().startswith("watching for stream cancel")]
    assert [(r.getMessage(), r.exc_info is not None) for r in failed] == [
        ("watching for stream cancel requests failed; retrying every second", True),
        ("watching for stream cancel requests again", False),
    ]
