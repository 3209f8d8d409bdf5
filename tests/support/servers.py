"""Run an ASGI app on a real uvicorn server for the duration of a ``with`` block; find a
free port for a server started as a subprocess, and wait until it listens."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@contextmanager
def run_uvicorn(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 at an OS-chosen port; yield ``http://127.0.0.1:<port>``.

    The server gets its own thread and event loop, so it keeps serving while a
    test blocks or runs a different loop (or trio).  ``config`` overrides
    ``uvicorn.Config`` keyword arguments.
    """
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,  # no port races between parallel runs
        "log_level": "warning",
        # Run the app's lifespan where it has one: the examples close their cached SDK
        # clients on shutdown, on this server's loop (left to the garbage collector, a client
        # would try to close itself on whatever loop runs then).
        "lifespan": "auto",
        # Bound shutdown even if a test leaves a slow stream open.
        "timeout_graceful_shutdown": 3,
    } | config
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # uvicorn only installs signal handlers on the main thread, so this is safe.
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {START_TIMEOUT}s")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
            raise RuntimeError(f"uvicorn did not stop within {STOP_TIMEOUT}s")


@contextmanager
def run_werkzeug(app: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` (Flask) with werkzeug's threaded server on 127.0.0.1 at an
    OS-chosen port; yield ``http://127.0.0.1:<port>``."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(STOP_TIMEOUT)
        server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a server in a subprocess, which
    has to be told its port (the OS may give it away again: take it at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = START_TIMEOUT
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection. Raises ``RuntimeError`` if
    ``proc`` (``what``, for the message) exits first, ``TimeoutError`` after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            pass  # not listening yet
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at startup (exit code {proc.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on port {port} within {timeout}s")
        time.sleep(0.05)


@contextmanager
def never_reading_client(base_url: str, path: str) -> Iterator[socket.socket]:
    """A client that sends ``GET path`` to ``base_url`` (``http://127.0.0.1:<port>``, as
    :func:`run_uvicorn` yields it) and never reads: a small receive buffer (4 KiB), so the
    server's writes back up at once. Closed at the end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", int(base_url.rsplit(":", 1)[1])))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        yield sock
    finally:
        sock.close()
