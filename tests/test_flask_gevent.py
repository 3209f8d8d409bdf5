"""sse_llm.flask under gunicorn's gevent worker (``gunicorn -k gevent``, which monkey-patches
threading, sockets and time): streams come as they are made, many at once in one worker, and
a client that leaves closes its source; ``graceful_shutdown`` refuses to run there with a clear
error at start-up (under gevent its stop signal is handled inside gevent's event loop, where the
wait for the streams cannot run: it stopped the worker with ``BlockingSwitchOutError``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
APP = "tests.support.shutdown.flask_app:app"  # /stream: a token every 0.2 s; /sync: 0.8 s


@contextlib.contextmanager
def gunicorn_gevent(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """``gunicorn -k gevent`` serving :data:`APP`; yields its URL and server log, stopped by
    PID."""
    port = free_port()
    log = tmp_path / "server.log"
    command = [str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
               "--graceful-timeout", "2", APP]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker too is stopped below, by the group's id
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind by its arbiter
        proc.wait(5)


def _wait_until_up(url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/ping", timeout=2).text == "pong":
                return
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _read_three_tokens(url: str) -> float:
    """Seconds from the request to the stream's third token; then the client leaves."""
    started = time.monotonic()
    tokens = 0
    with httpx.stream("GET", url, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        for line in response.iter_lines():
            tokens += line.startswith("data:")
            if tokens == 3:
                break
    return time.monotonic() - started


def test_streams_under_the_gevent_worker_arrive_as_made_and_close_when_left(
    tmp_path: Path,
) -> None:
    hook_log = tmp_path / "hooks.log"
    env = {"HOOK_LOG": str(hook_log), "HOOK_SLEEP": "0", "SSE_LLM_TEST_NO_GRACEFUL": "1"}
    streams = [("/stream", 30), ("/sync", 5)]
    total = sum(count for _, count in streams)
    with gunicorn_gevent(tmp_path, env) as (url, log):
        _wait_until_up(url, log)
        with ThreadPoolExecutor(total) as pool:
            futures = [
                (path, pool.submit(_read_three_tokens, url + path))
                for path, count in streams
                for _ in range(count)
            ]
            # The worker is not blocked by the open streams: a plain request is answered while
            # they are still open (the sync ones take 1.6 s to give three tokens).
            assert httpx.get(url + "/ping", timeout=5).text == "pong"
            assert not all(future.done() for path, future in futures if path == "/sync")
            for path, future in futures:
                # The sources never end: three tokens came as they were made (every 0.2 s, or
                # 0.8 s for the sync source), not held back in a buffer (eventlet's 4 KiB
                # minimum chunk would hold about a hundred of these tokens).
                assert future.result(timeout=30) < (4 if path == "/stream" else 6)
        hook_log.touch()
        deadline = time.monotonic() + 10
        while hook_log.read_text().count("source-closed") < total:
            assert time.monotonic() < deadline, (hook_log.read_text(), log.read_text())
            time.sleep(0.05)
        hooks = [line.split()[1] for line in hook_log.read_text().splitlines() if "hook" in line]
        assert hooks == ["disconnected"] * total, hook_log.read_text()


def test_graceful_shutdown_refuses_the_gevent_worker_at_start_up(tmp_path: Path) -> None:
    # Before: it was installed, and at SIGTERM the worker died with BlockingSwitchOutError
    # (a thread started inside gevent's event loop), the sync sources' finally not run.
    with gunicorn_gevent(tmp_path, {"HOOK_SLEEP": "0"}) as (_, log):
        deadline = time.monotonic() + 20
        while "does not work under gevent" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    assert "gunicorn -k gthread --threads N" in log.read_text()


def test_graceful_shutdown_refuses_gevents_monkey_patching() -> None:
    probe = (
        "from gevent import monkey; monkey.patch_all()\n"
        "from flask import Flask\n"
        "from sse_llm.flask import graceful_shutdown\n"
        "graceful_shutdown(Flask('app'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 1
    assert "RuntimeError: sse_llm.flask.graceful_shutdown does not work under gevent" in (
        done.stderr
    )
