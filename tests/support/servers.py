"""Run an ASGI app on a real uvicorn server for the duration of a ``with`` block."""

from __future__ import annotations

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
