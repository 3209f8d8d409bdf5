"""The resumable demo (examples/fastapi/resumable.py) in Chromium, with the network cut.

Chromium reaches the app through a TCP proxy the test resets mid-answer, as a dropped link
does: the page's ``EventSource`` reconnects with its ``Last-Event-ID`` and shows the whole
answer exactly once. Then with two uvicorn workers behind a real nginx on a real
redis-server: the answer is produced by one worker while the reads, the reconnect and the Stop
land on the other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from sse_llm.testing import FakeLLM
from tests.support.nginx import run_nginx
from tests.support.redis_server import redis_server
from tests.support.servers import free_port
from tests.support.tcp_proxy import tcp_proxy

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
UVICORN = Path(sys.executable).parent / "uvicorn"
PROMPT = "Tell me about server-sent events"
ANSWER = FakeLLM().text_for(PROMPT)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[object]:
    """Starts uvicorn workers of the demo as subprocesses; stops them by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> int:
        port = free_port()
        log = (tmp_path / f"worker-{port}.log").open("w")
        proc = subprocess.Popen(
            [str(UVICORN), "--app-dir", "examples/fastapi", "resumable:app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "SSE_LLM_FAKE_DELAY": "0.08", **env},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(proc)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return port
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"the demo exited: {proc.returncode}"
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.1)

    start.started = started  # type: ignore[attr-defined]
    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def ask(page: Page) -> None:
    page.fill("#prompt", PROMPT)
    page.click("#send")
    page.wait_for_function("document.getElementById('answer').textContent.length > 40")


def test_the_page_reconnects_after_a_network_cut_and_shows_the_answer_once(
    browser: Browser, worker_factory: object
) -> None:
    port = worker_factory()  # type: ignore[operator]
    with tcp_proxy(port) as proxy:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{proxy.port}/")
            ask(page)
            shown = len(page.inner_text("#answer"))
            proxy.cut()  # the network drops mid-answer
            page.wait_for_function("window.chat.reconnects > 0", timeout=10_000)
            page.wait_for_function("window.chat.ended === 'done'", timeout=60_000)
            assert page.evaluate("document.getElementById('answer').textContent") == ANSWER
            assert shown < len(ANSWER)  # the cut came mid-answer
            assert proxy.cuts == 1
        finally:
            context.close()


def test_the_page_shows_the_server_s_error_message_when_the_answer_fails(
    browser: Browser, worker_factory: object
) -> None:
    # Found in review: the page set the error event's message, then finish("error")
    # overwrote it with the word "error".
    port = worker_factory()  # type: ignore[operator]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        ask(page)
        [worker] = worker_factory.started  # type: ignore[attr-defined]
        worker.send_signal(signal.SIGTERM)  # a deploy: the answer ends with a shutdown error
        page.wait_for_function("window.chat.ended === 'error'", timeout=20_000)
        assert page.inner_text("#status") == "The server is restarting. Please try again."
    finally:
        context.close()


# Answers start on one worker, everything else reaches the other one.
ROUTES = """
        proxy_http_version 1.1;
        location = /api/chat {{ proxy_pass http://127.0.0.1:{producer}; }}
        location / {{ proxy_pass http://127.0.0.1:{reader}; }}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int, int], int]]:
    with ExitStack() as running:

        def start(producer: int, reader: int) -> int:
            routes = ROUTES.format(producer=producer, reader=reader)
            return running.enter_context(run_nginx(tmp_path, routes, connections=256))

        yield start


def test_two_workers_behind_nginx_on_redis_resume_and_stop_across_workers(
    browser: Browser, worker_factory: object, nginx: Callable[[int, int], int], tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks.log"
    with redis_server(tmp_path) as redis:
        env = {"REDIS_URL": redis.url, "CHAT_HOOK_LOG": str(hooks)}
        producer = worker_factory(**env)  # type: ignore[operator]
        reader = worker_factory(**env)  # type: ignore[operator]
        front = nginx(producer, reader)
        producer_pid = httpx.get(f"http://127.0.0.1:{producer}/").headers["x-worker"]
        reader_pid = httpx.get(f"http://127.0.0.1:{reader}/").headers["x-worker"]
        assert producer_pid != reader_pid
        with tcp_proxy(front) as proxy:
            context = browser.new_context()
            try:
                page = context.new_page()
                streams: list[str] = []
                page.on(
                    "response",
                    lambda r: (
                        streams.append(r.headers.get("x-worker", ""))
                        if "/api/streams/" in r.url
                        else None
                    ),
                )
                page.goto(f"http://127.0.0.1:{proxy.port}/")
                # 1. A network cut mid-answer: the reconnect lands on the reader worker, which
                # resumes from Redis what the producer worker stored.
                ask(page)
                proxy.cut()
                page.wait_for_function("window.chat.reconnects > 0", timeout=10_000)
                page.wait_for_function("window.chat.ended === 'done'", timeout=60_000)
                assert page.evaluate("document.getElementById('answer').textContent") == ANSWER
                assert len(streams) >= 2 and set(streams) == {reader_pid}  # read, reconnect
                # 2. Stop: the reader worker passes it to the producer through Redis.
                ask(page)
                page.click("#stop")
                page.wait_for_function("window.chat.ended === 'stopped'")
                deadline = time.monotonic() + 10
                while f"{producer_pid} cancelled" not in hooks.read_text():
                    assert time.monotonic() < deadline, hooks.read_text()
                    time.sleep(0.05)
                stopped_at = len(page.inner_text("#answer"))
                time.sleep(0.5)
                assert len(page.inner_text("#answer")) == stopped_at < len(ANSWER)
            finally:
                context.close()
    lines = hooks.read_text().split("\n")
    assert f"{producer_pid} completed" in lines
    assert f"{producer_pid} cancelled" in lines


def test_a_page_cut_off_while_the_model_thinks_resumes_the_same_answer(browser: Browser) -> None:
    # Found in review: with docs/resume.md's pattern (start a stream unless the request has a
    # Last-Event-ID of ours), a network cut before the first event (a model thinking for
    # seconds) left the browser with no id: it reconnected without one and the view asked the
    # model again, while the first answer went on unread. The stream's id now comes first.
    from fastapi.responses import HTMLResponse

    from sse_llm import StreamResult
    from tests.support.servers import run_uvicorn
    from tests.support.snippets import snippets_of

    (snippet,) = [s for s in snippets_of(ROOT / "docs" / "resume.md") if s.name == "resume-fastapi"]
    answers: list[StreamResult] = []
    llm = FakeLLM("one two three", delay=0.01, first_token_delay=3.0)
    ns: dict[str, object] = {"__name__": "snippet", "llm": llm, "save": answers.append}
    exec(compile(snippet.code, "<snippet>", "exec"), ns)
    app = ns["app"]

    @app.get("/")  # type: ignore[attr-defined,misc]
    async def page() -> HTMLResponse:  # the EventSource's origin
        return HTMLResponse("<!doctype html><title>chat</title>")

    with run_uvicorn(app, lifespan="on") as base:
        with tcp_proxy(int(base.rsplit(":", 1)[1])) as proxy:
            context = browser.new_context()
            try:
                page_ = context.new_page()
                page_.goto(f"http://127.0.0.1:{proxy.port}/")
                page_.evaluate(
                    """() => { window.opens = 0; window.ended = null; window.ids = [];
                    const es = new EventSource('/chat?q=hi');
                    es.onopen = () => window.opens++;
                    es.addEventListener('delta', e => window.ids.push(e.lastEventId));
                    es.addEventListener('done', () => { window.ended = 'done'; es.close(); });
                    }"""
                )
                page_.wait_for_function("window.opens === 1", timeout=10_000)
                time.sleep(1.0)  # the model thinks (its first token comes after 3 s)
                proxy.cut()
                page_.wait_for_function("window.ended === 'done'", timeout=30_000)
                opens, ids = page_.evaluate("[window.opens, window.ids]")
            finally:
                context.close()
        deadline = time.monotonic() + 5
        while not answers and time.monotonic() < deadline:  # bounded: the hook is quick
            time.sleep(0.05)
        time.sleep(0.5)  # a second answer, had one been asked for, would end by now too
    assert opens == 2 and proxy.cuts == 1
    assert len({i.rpartition("-")[0] for i in ids}) == 1 and len(ids) == 3
    assert [(r.reason, r.text) for r in answers] == [("completed", llm.text_for("hi"))]
