"""Deploys: SIGTERM (or SIGINT) with streams open, under real servers.

Each case starts a real server in its own process group on 127.0.0.1, opens many streams
(each receives tokens before the signal), sends the signal to the server's main process and
measures, as a deploy would see it: how many clients got the final ``error`` event (code
``shutdown``), how many completion hooks ran (with reason ``shutdown`` and the partial text),
and how long the server took to exit. The apps are in ``tests/support/shutdown``; the one line
that makes the difference is ``GracefulShutdown(app)`` (ASGI) or ``graceful_shutdown(app)``
(Flask).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sse_llm import ServerSentEvent, SSEDecoder
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SUPPORT = ROOT / "tests" / "support" / "shutdown"
STREAMS = 1000
EXIT_WITHIN = 2.0  # seconds from the signal to the server's exit
FINAL_EVENT = (
    b'event: error\ndata: {"message":"The server is restarting. Please try again.",'
    b'"code":"shutdown"}\n\n'
)


@pytest.fixture(autouse=True)
def _enough_file_descriptors() -> None:
    # Both ends of a thousand connections, in this process and (inherited) the server's.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2 * STREAMS + 100


@dataclass
class Client:
    data: bytearray = field(default_factory=bytearray)
    streaming: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, port: int, path: str, deadline: float) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            self.streaming.set()
            return
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            # One timer for the whole read, not one per read: this process shares the machine
            # with the server, and a thousand clients' wait_for tasks slow the stop measured.
            async with asyncio.timeout(deadline - time.monotonic()):
                while chunk := await reader.read(65536):
                    self.data += chunk
                    if not self.streaming.is_set() and b"event: delta" in self.data:
                        self.streaming.set()
        except (TimeoutError, OSError):
            pass
        finally:
            self.streaming.set()
            writer.close()

    @property
    def got_final_event(self) -> bool:
        return FINAL_EVENT in self.data


@dataclass
class Outcome:
    streaming: int
    final_events: int
    hooks: Counter[str]
    collector: Counter[str]  # the garbage collector as each hook saw it: "gc-off+frozen" ...
    exit_after: float | None
    returncode: int | None
    log: str
    others: list[bytes]  # the raw responses to the requests made along with the streams
    sources_closed: int  # sources whose finally ran (the apps' record "source-closed")


async def drive(
    cmd: list[str],
    *,
    cwd: Path,
    port: int,
    tmp_path: Path,
    streams: int,
    sig: signal.Signals = signal.SIGTERM,
    env: dict[str, str] | None = None,
    also: Sequence[str] = (),
    path: str = "/stream",
) -> Outcome:
    """Open ``streams`` streams (and a request to each path of ``also``), signal the server,
    and report how it all ended."""
    hook_log = tmp_path / "hooks.log"
    server_log = tmp_path / "server.log"
    environment = {
        **os.environ,
        "HOOK_LOG": str(hook_log),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), str(cwd)]),
        **(env or {}),
    }
    with server_log.open("w") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited on)
            cmd, cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    exited: asyncio.Future[float] | None = None
    try:
        deadline = time.monotonic() + 30
        while not await _pong(port):
            assert proc.poll() is None, server_log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.1)
        clients = [Client() for _ in range(streams)]
        stop_reading = time.monotonic() + 60
        tasks = []
        for n, client in enumerate(clients):
            tasks.append(asyncio.create_task(client.run(port, path, stop_reading)))
            if n % 100 == 99:
                await asyncio.sleep(0.02)  # stay within the listen backlog
        async with asyncio.timeout(40):
            await asyncio.gather(*(c.streaming.wait() for c in clients))
        streaming = sum(b"event: delta" in c.data for c in clients)
        others = [Client() for _ in also]
        for other, path in zip(others, also, strict=True):
            tasks.append(asyncio.create_task(other.run(port, path, stop_reading)))
        if others:
            await asyncio.sleep(0.2)  # they are in the app now
        sent_at = time.monotonic()
        os.kill(proc.pid, sig)
        # Timed by a thread blocked in waitpid(): the event loop here is busy reading 1,000
        # clients' last bytes, and a poll from it would add that time to the server's.
        exited = asyncio.ensure_future(asyncio.to_thread(_exit_time, proc, sent_at))
        exit_after = None
        with contextlib.suppress(TimeoutError):
            exit_after = await asyncio.wait_for(asyncio.shield(exited), 15)
        async with asyncio.timeout(20):
            await asyncio.gather(*tasks)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited just now
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if exited is not None:
            await exited  # returns once the server is gone (killed above if it had to be)
    lines = hook_log.read_text().splitlines() if hook_log.exists() else []
    hooks = [line.split() for line in lines if line.startswith("hook")]
    return Outcome(
        streaming=streaming,
        final_events=sum(c.got_final_event for c in clients),
        hooks=Counter(f"hook {reason}" for _, reason, _, _ in hooks),
        collector=Counter(collector for *_, collector in hooks),
        exit_after=exit_after,
        returncode=proc.returncode,
        log=server_log.read_text()[-3000:],
        others=[bytes(o.data) for o in others],
        sources_closed=lines.count("source-closed"),
    )


def _exit_time(proc: subprocess.Popen[bytes], sent_at: float) -> float:
    """Seconds from ``sent_at`` to the server's exit: blocks in waitpid()."""
    proc.wait()
    return time.monotonic() - sent_at


async def _pong(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return b"pong" in await asyncio.wait_for(reader.read(), 5)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def assert_every_stream_ended_well(
    outcome: Outcome, streams: int, exit_within: float = EXIT_WITHIN
) -> None:
    assert outcome.streaming == streams, outcome.log
    assert outcome.final_events == streams, outcome.log
    assert outcome.hooks == Counter({"hook shutdown": streams}), (outcome.hooks, outcome.log)
    # GracefulShutdown's pause_gc: no full collection of a heap that is about to go.
    assert outcome.collector == Counter({"gc-off+frozen": streams}), outcome.collector
    assert outcome.exit_after is not None and outcome.exit_after < exit_within, (
        outcome.exit_after,
        outcome.log,
    )


def uvicorn(port: int, *extra: str, app: str = "asgi_app:app") -> list[str]:
    """uvicorn serving ``app`` of tests/support/shutdown on ``port``."""
    return [str(BIN / "uvicorn"), f"tests.support.shutdown.{app}", "--log-level", "warning",
            "--host", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "extra",
    [(), ("--timeout-graceful-shutdown", "2"), ("--workers", "2")],
    ids=["default", "timeout-graceful-shutdown", "workers-2"],
)
async def test_uvicorn_sigterm_ends_every_stream_and_exits_promptly(
    extra: tuple[str, ...], tmp_path: Path
) -> None:
    port = free_port()
    outcome = await drive(
        uvicorn(port, *extra), cwd=ROOT, port=port, tmp_path=tmp_path, streams=STREAMS
    )
    assert_every_stream_ended_well(outcome, STREAMS)


@pytest.mark.anyio
async def test_uvicorn_sigint_ends_every_stream_too(tmp_path: Path) -> None:
    port = free_port()
    outcome = await drive(
        uvicorn(port), cwd=ROOT, port=port, tmp_path=tmp_path, streams=STREAMS, sig=signal.SIGINT
    )
    assert_every_stream_ended_well(outcome, STREAMS)


GUNICORN = [str(BIN / "gunicorn"), "--log-level", "warning", "--graceful-timeout", "10"]


@pytest.mark.anyio
async def test_gunicorn_with_uvicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    cmd = [*GUNICORN, "-b", f"127.0.0.1:{port}", "-w", "2", "-k", "uvicorn_worker.UvicornWorker",
           "tests.support.shutdown.asgi_app:app"]  # fmt: skip
    outcome = await drive(cmd, cwd=ROOT, port=port, tmp_path=tmp_path, streams=STREAMS)
    assert_every_stream_ended_well(outcome, STREAMS)


@pytest.mark.anyio
async def test_hypercorn(tmp_path: Path) -> None:
    port = free_port()
    cmd = [str(BIN / "hypercorn"), "-b", f"127.0.0.1:{port}", "--workers", "0",
           "tests.support.shutdown.asgi_app:app"]  # fmt: skip
    outcome = await drive(cmd, cwd=ROOT, port=port, tmp_path=tmp_path, streams=STREAMS)
    assert_every_stream_ended_well(outcome, STREAMS)


DJANGO = SUPPORT / "djproj"


DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "djproj.settings"}
# Django's own share of a stop with 1,000 streams, measured on 2 shared cores: after each body
# Django closes the response in a thread of the request's own (asgiref's
# ThreadSensitiveContext), and asgiref 3.13 joins that thread from a second new thread: 2,000
# threads started in all, 0.8-1.0 s. Under uvicorn the last final event is out ~0.2 s after
# the signal, the last body has ended at ~0.5 s (the hooks take 0.05 s), the last request has
# returned at ~1.2-1.4 s and the server has exited at ~1.3-1.6 s. Daphne's own stop adds to
# that (an interpreter exit, ~0.1 s with the heap frozen): 1.9-2.3 s in all, hence its limit.
DAPHNE_EXIT_WITHIN = 3.0


@pytest.mark.anyio
async def test_django_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    cmd = [str(BIN / "uvicorn"), "djproj.asgi:application", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning",
           "--timeout-graceful-shutdown", "2"]  # fmt: skip
    outcome = await drive(
        cmd, cwd=DJANGO, port=port, tmp_path=tmp_path, streams=STREAMS, env=DJANGO_ENV
    )
    assert_every_stream_ended_well(outcome, STREAMS)


@pytest.mark.anyio
async def test_django_under_daphne(tmp_path: Path) -> None:
    port = free_port()
    cmd = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "djproj.asgi:application"]
    outcome = await drive(
        cmd, cwd=DJANGO, port=port, tmp_path=tmp_path, streams=STREAMS, env=DJANGO_ENV
    )
    assert_every_stream_ended_well(outcome, STREAMS, exit_within=DAPHNE_EXIT_WITHIN)
    # Daphne was handed the signal only once every request had returned from Django (response
    # closed, request_finished sent): it had nothing left to cancel.
    assert "Killed 0 pending application instances" in outcome.log, outcome.log


@pytest.mark.anyio
async def test_flask_under_gunicorn_threads(tmp_path: Path) -> None:
    # WSGI: a thread per stream (four workers hold a thousand with room for an uneven share).
    # --keep-alive 0: a stopping gthread worker keeps kept-alive connections for 2 s
    # (gunicorn's STOP_KEEPALIVE_LINGER) and an app cannot close its own; a stream holds its
    # connection anyway, so keep-alive buys an SSE endpoint nothing.
    port = free_port()
    cmd = [*GUNICORN, "-b", f"127.0.0.1:{port}", "-k", "gthread", "-w", "4", "--threads", "600",
           "--keep-alive", "0", "tests.support.shutdown.flask_app:app"]  # fmt: skip
    outcome = await drive(cmd, cwd=ROOT, port=port, tmp_path=tmp_path, streams=STREAMS)
    assert_every_stream_ended_well(outcome, STREAMS)


SYNC_STREAMS = 50  # each holds a worker thread in next() (SYNC_SOURCE_THREADS: 100)


@pytest.mark.anyio
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-flask"])
async def test_a_sync_source_in_the_middle_of_next_is_closed_before_the_exit(
    server: str, tmp_path: Path
) -> None:
    # Found in review: a sync source (read in a worker thread) is closed by that thread once
    # its next() returns; the stream was counted out before that, so the server exited first
    # and the source's finally (a sync SDK's response close, metering) never ran.
    port = free_port()
    if server == "uvicorn":
        cmd = uvicorn(port)
    else:
        cmd = [*GUNICORN, "-b", f"127.0.0.1:{port}", "-k", "gthread", "--threads", "100",
               "--keep-alive", "0", "tests.support.shutdown.flask_app:app"]  # fmt: skip
    outcome = await drive(
        cmd, cwd=ROOT, port=port, tmp_path=tmp_path, streams=SYNC_STREAMS, path="/sync"
    )
    # The exit waits for the next() under way: up to one token's time (0.8 s) more.
    assert_every_stream_ended_well(outcome, SYNC_STREAMS, exit_within=EXIT_WITHIN + 0.8)
    assert outcome.sources_closed == SYNC_STREAMS, outcome.log


@pytest.mark.anyio
async def test_a_server_that_cancels_its_requests_still_lets_every_hook_finish(
    tmp_path: Path,
) -> None:
    # No GracefulShutdown: hypercorn waits its graceful timeout (1 s), then cancels the
    # request tasks. A task.cancel() is not stopped by any cancel scope; the hook (2 s, a slow
    # database) still runs to its end, in a task of its own, before the cancellation goes on.
    port = free_port()
    cmd = [str(BIN / "hypercorn"), "-b", f"127.0.0.1:{port}", "--workers", "0",
           "--graceful-timeout", "1", "tests.support.shutdown.asgi_app:plain"]  # fmt: skip
    outcome = await drive(
        cmd, cwd=ROOT, port=port, tmp_path=tmp_path, streams=300, env={"HOOK_SLEEP": "2"}
    )
    assert outcome.hooks == Counter({"hook shutdown": 300}), (outcome.hooks, outcome.log)
    assert outcome.collector == Counter({"gc-on": 300}), outcome.collector  # no middleware
    assert outcome.final_events == 300, outcome.log
    assert outcome.exit_after is not None, outcome.log


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("app", "during", "after"),
    [
        # pause_gc (the default), drain_timeout 0.5 s: paused and frozen while the streams end;
        # by the time /gc answers the collector runs again and nothing is frozen.
        ("asgi_app:short_drain", "gc-off+frozen", "gc-on"),
        # pause_gc=False: left alone.
        ("asgi_app:gc_untouched", "gc-on", "gc-on"),
        # The app froze objects itself at import (as a pre-fork server does): paused as usual
        # and enabled again after the drain timeout, but the app's freeze is not undone.
        ("prefrozen_app:app", "gc-off+frozen", "gc-on+frozen"),
    ],
    ids=["pause_gc", "pause_gc=False", "app froze objects"],
)
async def test_the_garbage_collector_during_a_stop_and_after_the_drain(
    app: str, during: str, after: str, tmp_path: Path
) -> None:
    # uvicorn waits for a request that is no stream (/gc answers 2 s after it came): the
    # process outlives its streams by more than the drain timeout.
    port = free_port()
    outcome = await drive(
        uvicorn(port, app=app), cwd=ROOT, port=port, tmp_path=tmp_path, streams=10,
        also=["/gc?wait=2"],
    )  # fmt: skip
    assert outcome.hooks == Counter({"hook shutdown": 10}), (outcome.hooks, outcome.log)
    assert outcome.final_events == 10, outcome.log
    assert outcome.collector == Counter({during: 10}), outcome.collector
    assert outcome.others[0].startswith(b"HTTP/1.1 200"), (outcome.others, outcome.log)
    assert outcome.others[0].endswith(b"\r\n\r\n" + after.encode()), (outcome.others, outcome.log)


@contextlib.contextmanager
def running(
    tmp_path: Path, cmd: list[str], ping: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """The server ``cmd`` (from the repository's root), once ``ping`` answers 200, and a client
    of it; killed by PID if the test left it running."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(ping).status_code == 200:
                        break
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
            yield proc, client
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_sync_source_whose_client_left_before_the_stop_is_closed_before_the_exit(
    tmp_path: Path,
) -> None:
    # Found in review: a sync source caught in next() when its client left is closed by its
    # worker thread later; a stop that came meanwhile found no stream open and the process
    # exited at once, so the source's finally never ran.
    hook_log = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hook_log), "HOOK_SLEEP": "0"}
    cmd = [str(BIN / "uvicorn"), "tests.support.shutdown.asgi_app:app", "--log-level", "warning"]
    clients = 5
    with running(tmp_path, cmd, "/ping", env=env) as (proc, client):
        for _ in range(clients):
            with client.stream("GET", "/sync") as response:
                chunks = response.iter_raw()
                while b"event: delta" not in next(chunks):
                    pass
            # Left: the source is in the middle of its next token (0.8 s each).
        deadline = time.monotonic() + 5
        while hook_log.read_text().count("hook disconnected") < clients:
            assert time.monotonic() < deadline, hook_log.read_text()
            time.sleep(0.01)
        assert hook_log.read_text().count("source-closed") < clients  # some still in next()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert hook_log.read_text().count("source-closed") == clients, hook_log.read_text()


@pytest.mark.parametrize("path", ["/ws", "/ws-own-signal"])
def test_an_idle_websocket_is_closed_at_the_signal_and_does_not_hold_the_exit(
    tmp_path: Path, path: str
) -> None:
    # Found in review: a socket that had answered and sat waiting for the next prompt ended
    # only at GracefulShutdown's drain_timeout (10 s): its wait watched the shutdown= option
    # alone, not the GracefulShutdown around the app.
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    hook_log = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hook_log), "HOOK_SLEEP": "0"}
    cmd = [str(BIN / "uvicorn"), "tests.support.shutdown.asgi_app:app", "--log-level", "warning"]
    with running(tmp_path, cmd, "/ping", env=env) as (proc, client):
        ws_url = str(client.base_url).replace("http://", "ws://") + path
        with connect(ws_url, open_timeout=10) as ws:
            ws.send(json.dumps({"prompt": "hi"}))
            while json.loads(ws.recv(timeout=10))["type"] != "done":
                pass
            proc.send_signal(signal.SIGTERM)
            sent_at = time.monotonic()
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=15)
            closed_after = time.monotonic() - sent_at
            assert ws.close_code == 1012  # "service restart"
        proc.wait(15)
        exited_after = time.monotonic() - sent_at
    assert closed_after < 2.0, closed_after
    assert exited_after < 3.0, exited_after
    assert "still open" not in (tmp_path / "server.log").read_text()
    assert "hook completed" in hook_log.read_text()


def test_flask_without_graceful_shutdown_still_ends_its_streams_at_exit(tmp_path: Path) -> None:
    # Found in review: at Ctrl+C on `flask run` without graceful_shutdown, the exit waited for
    # each open stream's send_timeout (30 s; forever with None), and its hook then said
    # `timeout`. The app's loop now ends its open streams when the process exits.
    hook_log = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hook_log), "HOOK_SLEEP": "0", "SSE_LLM_TEST_NO_GRACEFUL": "1"}
    cmd = [sys.executable, "-m", "flask", "--app", "tests.support.shutdown.flask_app:app", "run"]
    with (
        running(tmp_path, cmd, "/ping", env=env) as (proc, client),
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.iter_raw()
        while b"event: delta" not in next(chunks):
            pass
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        sent_at = time.monotonic()
        proc.wait(10)
        exited_after = time.monotonic() - sent_at
    lines = hook_log.read_text().splitlines()
    assert exited_after < 2.0, (exited_after, lines)
    assert "source-closed" in lines
    assert [" ".join(line.split()[:2]) for line in lines if line.startswith("hook")] == [
        "hook shutdown"
    ]


def test_no_warning_where_there_is_no_servers_handler_to_get_in_front_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Starlette's TestClient runs the app in a thread of its own, with no server's handler
    # waiting in the main thread: nothing to warn about (found in review of the warning for
    # Django's runserver autoreloader, tests/test_django.py).
    from starlette.testclient import TestClient

    from tests.support.shutdown.asgi_app import app

    with caplog.at_level("WARNING", logger="sse_llm"), TestClient(app) as client:
        assert client.get("/ping").text == "pong"

    async def in_a_test_loop() -> None:
        # asyncio.run() puts a SIGINT handler of its own in the main thread: no server's.
        with TestClient(app) as client:
            assert client.get("/ping").text == "pong"

    with caplog.at_level("WARNING", logger="sse_llm"):
        asyncio.run(in_a_test_loop())
    assert not [r for r in caplog.records if "signal handler" in r.getMessage()]


DEADLOCK_PROBE = """
import signal, threading, os, sys
from sse_llm import GracefulShutdown
gs = GracefulShutdown(drain_timeout=1)
signal.signal(signal.SIGTERM, lambda sig, frame: print("server's handler", flush=True))
gs.install()
threading.Timer(5, lambda: os._exit(3)).start()  # the watchdog: stuck for 5 s
# The signal lands while the main thread holds the lock: as when it counts a stream in or out
# (its event loop runs there) at the moment the deploy's SIGTERM comes.
with gs._lock:
    signal.raise_signal(signal.SIGTERM)
print("returned", flush=True)
os._exit(0)
"""


def test_a_signal_while_the_main_thread_counts_a_stream_does_not_deadlock() -> None:
    # Found in review: the handler runs in the main thread between two bytecodes; trigger()
    # took the lock that thread already held, and waited for itself forever.
    done = _probe(DEADLOCK_PROBE)
    assert done.stdout.splitlines() == ["server's handler", "returned"], done.stdout


def test_a_sync_source_hung_in_next_holds_a_stop_back_only_for_close_timeout() -> None:
    # A hung upstream: the close left to its thread may never run. The drain waits for it
    # only close_timeout seconds after the signal, not its whole drain_timeout.
    from sse_llm import EventStream, GracefulShutdown, TextFormat

    release = threading.Event()
    closed = threading.Event()

    def hung() -> Iterator[str]:
        try:
            yield "a"
            release.wait(20)
            yield "b"
        finally:
            closed.set()

    async def scenario() -> tuple[bool, float]:
        stream = EventStream(hung(), format=TextFormat(), close_timeout=0.5)
        shutdown = GracefulShutdown(stream, drain_timeout=10, signals=())  # drained by hand
        sent: list[dict[str, Any]] = []
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if b"data: a" in message.get("body", b""):
                # The client leaves a moment after "a" arrived, while next() hangs.
                asyncio.get_running_loop().call_later(0.2, gone.set)

        await shutdown({"type": "http", "method": "GET", "path": "/"}, receive, send)
        started = time.monotonic()
        try:
            drained = await shutdown.drain()
            return drained, time.monotonic() - started
        finally:
            release.set()  # the upstream answers at last: its thread closes the source

    drained, took = asyncio.run(scenario())
    assert closed.wait(5)  # closed by its thread once next() returned
    assert drained and took < 2.0, (drained, took)


def test_a_sync_sources_close_slower_than_close_timeout_still_holds_the_stop_back() -> None:
    # Found in review: a close under way in a thread when close_timeout cut the wait for it
    # was not counted, so the drain ended (and the process could exit) mid-close. The stop
    # is a drain while the producer waits on a client that reads nothing: the source is not
    # in next(), so the close runs in a thread of its own.
    from sse_llm import EventStream, GracefulShutdown, TextFormat

    closed = threading.Event()

    class SlowToClose:
        """A sync SDK stream whose close() takes 0.6 s (its HTTP response's)."""

        def __iter__(self) -> SlowToClose:
            return self

        def __next__(self) -> str:
            return "tok "

        def close(self) -> None:
            time.sleep(0.6)
            closed.set()

    async def scenario() -> tuple[bool, bool]:
        stream = EventStream(SlowToClose(), format=TextFormat(), close_timeout=0.3)
        shutdown = GracefulShutdown(stream, drain_timeout=10, signals=())  # drained by hand
        sending = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(60)  # the client stays, reading nothing
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message.get("body"):
                sending.set()
                await asyncio.sleep(60)  # its socket is full

        task = asyncio.create_task(shutdown({"type": "http", "path": "/"}, receive, send))
        await sending.wait()
        drained = await shutdown.drain()
        closed_at_drain = closed.is_set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return drained, closed_at_drain

    drained, closed_at_drain = asyncio.run(scenario())
    assert drained and closed_at_drain


def resumable_demo(
    tmp_path: Path, fake_delay: float
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """The resumable demo (its memory store) under uvicorn, and a client of it."""
    cmd = [str(BIN / "uvicorn"), "--app-dir", "examples/fastapi", "resumable:app",
           "--log-level", "warning"]  # fmt: skip
    return running(tmp_path, cmd, "/", env={"SSE_LLM_FAKE_DELAY": str(fake_delay)})


def read_across_sigterm(
    proc: subprocess.Popen[bytes], client: httpx.Client, path: str
) -> tuple[bytes, float]:
    """The body of ``GET path``, with SIGTERM sent to the server once a ``delta`` arrived;
    and when it was sent (``time.monotonic()``)."""
    body = bytearray()
    with client.stream("GET", path) as response:
        chunks = response.iter_raw()
        while b"event: delta" not in body:
            body += next(chunks)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for chunk in chunks:
            body += chunk
    return bytes(body), sent_at


def test_a_detached_stream_that_ended_does_not_hold_the_stop_back(tmp_path: Path) -> None:
    # Found in review: the resumable demo's producer task starts after its request returned
    # (POST /api/chat answers with the stream id) and inherited that request's context:
    # counting the stream in put the finished request back among the streaming ones, for
    # good, so every stop waited the whole drain timeout (10 s) for it.
    with resumable_demo(tmp_path, fake_delay=0.001) as (proc, client):
        for _ in range(3):
            stream_id = client.post("/api/chat", json={"prompt": "hi"}).json()["stream_id"]
            body = client.get(f"/api/streams/{stream_id}").text  # read to its end
            assert "event: done" in body
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert _exit_time(proc, sent_at) < EXIT_WITHIN, (tmp_path / "server.log").read_text()


def test_a_reader_whose_producer_the_signal_does_not_end_is_ended_at_once(
    tmp_path: Path,
) -> None:
    # The producer was started outside GracefulShutdown (a job endpoint it does not wrap):
    # the signal does not end it, so the reader, served inside, must not wait for the
    # producer's shutdown event (it would hold the stop back for the whole drain timeout).
    # Its body ends as a reader of another process's stream does: after the last whole event,
    # whose id the client reconnects with.
    cmd = [str(BIN / "uvicorn"), "tests.support.shutdown.split_hub_app:app",
           "--log-level", "warning"]  # fmt: skip
    with running(tmp_path, cmd, "/ping") as (proc, client):
        stream_id = client.post("/start").json()["stream_id"]
        body, sent_at = read_across_sigterm(proc, client, f"/read/{stream_id}")
        ended_after = time.monotonic() - sent_at
        events = [e for e in SSEDecoder().feed(body) if isinstance(e, ServerSentEvent)]
        assert body.endswith(b"\n\n"), bytes(body[-300:])
        assert events and all(e.event == "delta" for e in events), bytes(body[-300:])
        assert events[-1].id is not None and events[-1].id.startswith(stream_id)
        assert ended_after < EXIT_WITHIN, ended_after
        assert _exit_time(proc, sent_at) < EXIT_WITHIN, (tmp_path / "server.log").read_text()


def test_a_reader_of_a_stream_produced_here_gets_the_producers_shutdown_event(
    tmp_path: Path,
) -> None:
    # Found in review: GracefulShutdown ended the reader itself at the signal, before the
    # producer of this process stored its shutdown event: the body ended without it, and
    # the client's reconnect (to the restarted process) found nothing.
    with resumable_demo(tmp_path, fake_delay=0.05) as (proc, client):
        stream_id = client.post("/api/chat", json={"prompt": "hi"}).json()["stream_id"]
        body, sent_at = read_across_sigterm(proc, client, f"/api/streams/{stream_id}")
        events = [e for e in SSEDecoder().feed(body) if isinstance(e, ServerSentEvent)]
        assert events[-1].event == "error", bytes(body[-300:])
        assert json.loads(events[-1].data)["code"] == "shutdown"
        assert _exit_time(proc, sent_at) < EXIT_WITHIN, (tmp_path / "server.log").read_text()


@pytest.mark.parametrize("chain", ["nested", "app-handler"])
def test_handlers_chained_twice_stop_the_server_once(tmp_path: Path, chain: str) -> None:
    # Found in review: install() ran at every request and put its handler back in front of
    # whatever was there: two GracefulShutdowns (or one and an app's own handler that calls the
    # previous one) became each other's previous handler, the server's was lost, and SIGTERM
    # recursed until RecursionError; uvicorn exited 1 without its lifespan shutdown.
    hook_log = tmp_path / "hooks.log"
    hook_log.touch()
    env = {"HOOK_LOG": str(hook_log), "CHAIN": chain, "HOOK_SLEEP": "0"}
    cmd = [str(BIN / "uvicorn"), "tests.support.shutdown.chained_app:app"]
    with running(tmp_path, cmd, "/ping", env=env) as (proc, client):
        for path in ("/sub/", "/ping", "/sub/", "/ping"):
            assert client.get(path).text == "pong"
        with client.stream("GET", "/stream") as outer, client.stream("GET", "/sub/stream") as inner:
            readers = [SSEDecoder(), SSEDecoder()]
            chunks = [outer.iter_raw(), inner.iter_raw()]
            for decoder, raw in zip(readers, chunks, strict=True):
                while not any(isinstance(e, ServerSentEvent) for e in decoder.feed(next(raw))):
                    pass
            proc.send_signal(signal.SIGTERM)
            for decoder, raw in zip(readers, chunks, strict=True):
                events = [e for chunk in raw for e in decoder.feed(chunk)]
                last = [e for e in events if isinstance(e, ServerSentEvent)][-1]
                assert (last.event, json.loads(last.data)["code"]) == ("error", "shutdown")
        returncode = proc.wait(15)
    server_log = (tmp_path / "server.log").read_text()
    assert "RecursionError" not in server_log, server_log
    assert returncode == -signal.SIGTERM, server_log  # uvicorn re-raises the signal it got
    assert "Application shutdown complete" in server_log
    ran = hook_log.read_text().splitlines()
    assert [line.split()[1] for line in ran if line.startswith("hook")] == ["shutdown"] * 2
    assert ran[-1] == "lifespan shutdown", ran
    if chain == "app-handler":
        # Once at the signal, once more when sse-llm passes the signal on after the streams
        # ended (it re-raises it to the main thread, where the chain starts): documented.
        assert ran[0] == "app's handler" and ran.count("app's handler") == 2, ran
    else:
        assert "app's handler" not in ran


SERVED_TWICE = """
import contextlib, signal, threading
import uvicorn
from starlette.applications import Starlette
from sse_llm import GracefulShutdown

in_front = []

@contextlib.asynccontextmanager
async def lifespan(app):
    in_front.append(getattr(signal.getsignal(signal.SIGTERM), "__self__", None) is shutdown)
    yield

shutdown = GracefulShutdown(Starlette(lifespan=lifespan))
for run in range(2):
    server = uvicorn.Server(uvicorn.Config(shutdown, port=0, log_level="warning"))
    threading.Timer(1.0, lambda server=server: setattr(server, "should_exit", True)).start()
    server.run()
print(in_front)
"""


def test_a_second_server_run_in_the_process_gets_the_handler_in_front_again() -> None:
    # Found in review of the fix above: once installed, the handler stayed behind whatever
    # came later, also a new server run's own handlers (uvicorn.Server.serve() again: tests,
    # notebooks), which do not call it: the streams of the second run went unprotected.
    done = _probe(SERVED_TWICE)
    assert done.stdout.splitlines() == ["[True, True]"], (done.stdout, done.stderr)


SECOND_SIGNAL_PROBE = """
import signal
from sse_llm import GracefulShutdown
gs = GracefulShutdown(drain_timeout=1)
calls = []

def server(sig, frame):
    calls.append(sig)
    print("server's handler", flush=True)
    if len(calls) == 1:
        signal.raise_signal(signal.SIGTERM)  # the user presses again meanwhile

signal.signal(signal.SIGTERM, server)
gs.install()
signal.raise_signal(signal.SIGTERM)
print("returned", flush=True)
"""


def test_a_second_signal_during_the_servers_handler_reaches_it() -> None:
    # Found in review: the loop guard took a second signal, which arrives while the first is
    # being passed on, for a loop, and dropped it (a second Ctrl+C forces the exit).
    done = _probe(SECOND_SIGNAL_PROBE)
    assert done.stdout.splitlines() == ["server's handler", "server's handler", "returned"]
    assert "came back" not in done.stderr


LOOP_PROBE = """
import signal
from sse_llm import GracefulShutdown
gs = GracefulShutdown(drain_timeout=1)
signal.signal(signal.SIGTERM, lambda sig, frame: print("server's handler", flush=True))
gs.install()
previous = signal.getsignal(signal.SIGTERM)
signal.signal(signal.SIGTERM, lambda sig, frame: previous(sig, frame))  # ours, called back
gs._previous[signal.SIGTERM] = signal.getsignal(signal.SIGTERM)  # a loop made by hand
signal.raise_signal(signal.SIGTERM)
print("returned", flush=True)
"""


def test_a_loop_of_handlers_made_elsewhere_does_not_recurse() -> None:
    done = _probe(LOOP_PROBE)
    assert done.stdout.splitlines() == ["returned"], done.stdout
    assert "came back to sse-llm's handler" in done.stderr


def _probe(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter with the repository's sse_llm; it must exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done
