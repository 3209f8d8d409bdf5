"""Run a throwaway redis-server on 127.0.0.1 for the duration of a ``with`` block."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RedisServer:
    """A redis-server on 127.0.0.1 that a test can kill and start again on the same port and
    directory (to cut the store away mid-stream, as a crash or a restart does)."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.directory / "redis.log"  # a file, not a pipe nobody reads
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "everysec",
                "--dir", str(self.directory),
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                output = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"redis-server exited at startup:\n{output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer within {START_TIMEOUT}s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash: no save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)


@contextmanager
def redis_server(directory: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped by its PID at the end."""
    server = RedisServer(directory, appendonly=appendonly)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def run_redis_server(directory: Path) -> Iterator[str]:
    """Start ``redis-server`` on a free port, no persistence; yield ``redis://127.0.0.1:<port>``.

    The server is stopped by its PID (SIGTERM, then SIGKILL after ``STOP_TIMEOUT`` seconds).
    """
    with redis_server(directory) as server:
        yield server.url
