"""What every ASGI server the docs name does with a stream whose model thinks: the status line
and headers go out at once, not with the first token.

The ASGI HTTP spec lets a server hold ``http.response.start`` until the first body message
("the protocol server must not start sending the response to the client until it has
received at least one Response Body event"), and daphne does; uvicorn and hypercorn send
it at once. Django under daphne: tests/test_django.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sse_llm import ServerSentEvent, SSEDecoder

from .support.servers import free_port, wait_for_port
from .support.thinking_app import THINKS

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.support.thinking_app:app"
SERVERS = {
    "uvicorn-h11": ["-m", "uvicorn", APP, "--http", "h11", "--loop", "asyncio",
                    "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
    "uvicorn-httptools": ["-m", "uvicorn", APP, "--http", "httptools", "--loop", "uvloop",
                          "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
    "hypercorn": ["-m", "hypercorn", "-b", "127.0.0.1:{port}", "--workers", "0", APP],
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", APP],
}  # fmt: skip


@pytest.mark.parametrize("server", SERVERS)
def test_the_headers_go_out_before_the_first_token(server: str) -> None:
    port = free_port()
    args = [arg.replace("{port}", str(port)) for arg in SERVERS[server]]
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process, server)
        bodies: dict[str, bytes] = {}
        for path in ("/routed", "/bare/"):
            started = time.monotonic()
            with httpx.stream("GET", f"http://127.0.0.1:{port}{path}", timeout=20) as response:
                took = time.monotonic() - started
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                bodies[path] = response.read()
            assert took < THINKS / 2, (path, took)
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
    for path, body in bodies.items():
        events = [e for e in SSEDecoder().feed(body) if isinstance(e, ServerSentEvent)]
        assert events[-1].event == "done", (path, body, output)
        assert "answer" in events[0].data, (path, body, output)
