"""Run a throwaway redis-server on 127.0.0.1 for the duration of a ``with`` block."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_redis_server(directory: Path) -> Iterator[str]:
    """Start ``redis-server`` on a free port, no persistence; yield ``redis://127.0.0.1:<port>``.

    The server is stopped by its PID (SIGTERM, then SIGKILL after ``STOP_TIMEOUT`` seconds).
    """
    port = _free_port()
    log = directory / "redis.log"  # a file, not a pipe nobody reads: a full pipe blocks redis
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                output = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"redis-server exited at startup:\n{output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer within {START_TIMEOUT}s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
