"""Through a real nginx with its defaults (``proxy_buffering on``): the stream arrives as it is
generated, and nginx's 60 s ``proxy_read_timeout`` (shortened here to 2 s) does not cut a stream
kept alive by heartbeats while the model thinks (without them nginx drops it: checked by hand
with ``heartbeat=15``, the client gets an incomplete chunked body)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sse_llm.client import iter_events
from sse_llm.flask import SSEResponse as FlaskSSEResponse
from sse_llm.starlette import SSEResponse
from sse_llm.testing import FakeLLM

from .support.nginx import run_nginx
from .support.servers import run_uvicorn, run_werkzeug
from .support.thinking_app import THINKS, thinking
from .support.thinking_app import app as thinking_app

# Defaults kept on purpose: proxy_buffering on. Only the read timeout is shortened so the
# heartbeat test runs in seconds instead of a minute.
SERVER = """
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_read_timeout 2s;
        }}
"""


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[str]:
    async def chat(request: Request) -> SSEResponse:
        llm = FakeLLM(
            delay=float(request.query_params.get("delay", "0.05")),
            first_token_delay=float(request.query_params.get("think", "0")),
        )
        heartbeat = float(request.query_params.get("heartbeat", "15"))
        return SSEResponse(llm.stream("nginx"), heartbeat=heartbeat)

    app = Starlette(routes=[Route("/chat", chat)])
    with (
        run_uvicorn(app) as upstream,
        run_nginx(tmp_path, SERVER.format(upstream=upstream)) as port,
    ):
        yield f"http://127.0.0.1:{port}"


def test_events_pass_nginx_as_they_are_generated(nginx_in_front: str) -> None:
    # The response also carries ``X-Accel-Buffering: no`` (checked in the pump tests); with a
    # reader as fast as this one nginx 1.22 forwards promptly either way.
    arrivals: list[float] = []
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", nginx_in_front + "/chat", params={"delay": "0.05"}) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        start = time.monotonic()
        for event in iter_events(response):
            arrivals.append(time.monotonic() - start)
            if event.event == "done":
                break
    assert len(arrivals) > 40
    # A buffering proxy would deliver everything at the end in a few bursts; here the events
    # are spread over the generation time (about 0.05 s apart).
    assert arrivals[-1] - arrivals[0] > 1.0
    assert arrivals[len(arrivals) // 2] < arrivals[-1] * 0.8


def test_heartbeats_keep_a_thinking_model_alive_past_the_proxy_read_timeout(
    nginx_in_front: str,
) -> None:
    """The model "thinks" 3.5 s before its first token; nginx gives up on a silent upstream
    after 2 s. A 0.5 s heartbeat keeps the connection open and the whole answer arrives."""
    params = {"think": "3.5", "delay": "0", "heartbeat": "0.5"}
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", nginx_in_front + "/chat", params=params) as response,
    ):
        names = [event.event for event in iter_events(response)]
    assert names[-1] == "done"
    assert names.count("delta") > 10


TLS_SERVER = """
        ssl_certificate {pem};
        ssl_certificate_key {pem};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
        }}
"""


def _flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/flask")
    def chat() -> FlaskSSEResponse:
        return FlaskSSEResponse(thinking())

    return app


@pytest.fixture(scope="module")
def nginx_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ssl.SSLContext]]:
    """nginx speaking HTTP/1.1 and HTTP/2 over TLS (a certificate for 127.0.0.1 from a
    throwaway CA) in front of uvicorn (Starlette) and werkzeug (Flask)."""
    directory = tmp_path_factory.mktemp("nginx-tls")
    ca = trustme.CA()
    pem = directory / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    with run_uvicorn(thinking_app) as starlette, run_werkzeug(_flask_app()) as flask:
        server = TLS_SERVER.format(pem=pem, upstream=starlette)
        # The Flask route goes to werkzeug, the rest to uvicorn.
        server += f"        location /flask {{ proxy_pass {flask}; }}\n"
        with run_nginx(directory, server, listen="ssl http2") as port:
            yield f"https://127.0.0.1:{port}", trusted


@pytest.mark.parametrize("http2", [True, False], ids=["http2", "http1.1"])
@pytest.mark.parametrize("path", ["/routed", "/bare/", "/flask"])
def test_the_response_starts_through_nginx_over_tls_while_the_model_thinks(
    nginx_tls: tuple[str, ssl.SSLContext], path: str, http2: bool
) -> None:
    """nginx (1.22) speaking HTTP/2 over TLS sends a response's headers with its first body
    byte (HTTP/1.1 sends them at once). The stream's first body message is a comment when
    the model has given nothing yet, so the client sees the response start (the browser's
    ``open``, a ``fetch`` that resolves) before the first token, not THINKS seconds later."""
    base, trusted = nginx_tls
    with httpx.Client(http1=not http2, http2=http2, verify=trusted, timeout=20) as client:
        start = time.monotonic()
        with client.stream("GET", base + path) as response:
            started = time.monotonic() - start
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            events = list(iter_events(response))
    assert started < THINKS / 2
    assert time.monotonic() - start >= THINKS  # the answer itself still came after thinking
    # The bare app streams TextFormat (text as data), the others the default named events.
    answer = "answer" if path == "/bare/" else '{"text":"answer"}'
    assert answer in [event.data for event in events]
