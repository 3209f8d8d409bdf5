"""The Django adapter, through the demo project on a real uvicorn (ASGI), on Django's own
``manage.py runserver`` (daphne's, as the demo installs it) and on Django's WSGI path."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sse_llm import Comment, ServerSentEvent, SSEDecoder, UnsupportedServerError
from sse_llm.client import iter_events
from sse_llm.testing import FakeLLM
from tests.support.django_demo import DEMO, django_demo_app
from tests.support.servers import free_port, run_uvicorn
from tests.support.upstream import sdk_call, sync_stream


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The Django demo on uvicorn, with a temporary SQLite file: (base URL, db path)."""
    application, db = django_demo_app(tmp_path_factory)
    os.environ.setdefault("SSE_LLM_FAKE_DELAY", "0.03")  # read by the view at each request
    with run_uvicorn(application) as base_url:
        yield base_url, db


def start_chat(client: httpx.Client, base_url: str) -> tuple[str, str]:
    """Open the chat page; return (its URL, the CSRF token from the form)."""
    page = client.get(base_url + "/", follow_redirects=True)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return str(page.url), token.group(1)


def read_events(response: httpx.Response, limit: int | None = None) -> list[Any]:
    decoder = SSEDecoder()
    items: list[Any] = []
    for chunk in response.iter_raw():
        items.extend(decoder.feed(chunk))
        if limit is not None and sum(type(i) is ServerSentEvent for i in items) >= limit:
            break
    return items


def message_id_of(events: list[ServerSentEvent]) -> int:
    """The id of the message row the demo's first event inserts (``answer-<id>``)."""
    match = re.search(r'id="answer-(\d+)"', events[0].data)
    assert match is not None, events[0].data
    return int(match.group(1))


def ask_demo(
    client: httpx.Client, base_url: str, prompt: str, limit: int | None = None
) -> list[ServerSentEvent]:
    """Post ``prompt`` to the demo's chat (a 200 stream); its events, up to ``limit``."""
    url, token = start_chat(client, base_url)
    with client.stream(
        "POST", url + "send", data={"prompt": prompt, "csrfmiddlewaretoken": token}
    ) as response:
        assert response.status_code == 200
        return [i for i in read_events(response, limit) if type(i) is ServerSentEvent]


def row(db: Path, message_id: int) -> tuple[str, str]:
    with sqlite3.connect(db) as conn:
        answer, status = conn.execute(
            "select answer, status from chat_message where id = ?", (message_id,)
        ).fetchone()
    return answer, status


def test_a_post_streams_markdown_fragments_through_gzip_and_csrf(demo: tuple[str, Path]) -> None:
    base_url, db = demo
    with httpx.Client(timeout=20, headers={"accept-encoding": "gzip"}) as client:
        url, token = start_chat(client, base_url)
        arrivals: list[float] = []
        with client.stream(
            "POST",
            url + "send",
            data={"prompt": "한국어로 설명해 주세요", "csrfmiddlewaretoken": token},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            # GZipMiddleware left it alone: tokens are not held back in a gzip buffer.
            assert response.headers["content-encoding"] == "identity"
            decoder = SSEDecoder()
            events = []
            for chunk in response.iter_raw():
                for item in decoder.feed(chunk):
                    if type(item) is ServerSentEvent:
                        events.append(item)
                        arrivals.append(time.monotonic())
    assert events[-1].event == "done" and events[-1].data == "completed"
    assert len(events) > 5 and arrivals[-1] - arrivals[0] > 0.3  # streamed, not buffered
    message_id = message_id_of(events)
    text = FakeLLM().text_for("한국어로 설명해 주세요")
    assert row(db, message_id) == (text, "completed")


def test_a_post_without_the_csrf_token_is_refused(demo: tuple[str, Path]) -> None:
    base_url, _ = demo
    with httpx.Client(timeout=20) as client:
        url, _token = start_chat(client, base_url)
        response = client.post(url + "send", data={"prompt": "hi"})
    assert response.status_code == 403


def test_a_client_that_goes_away_closes_the_source_and_the_partial_answer_is_saved(
    demo: tuple[str, Path],
) -> None:
    base_url, db = demo
    with httpx.Client(timeout=20) as client:
        events = ask_demo(client, base_url, "멈춰", limit=4)
        closed_at = time.monotonic()
    message_id = message_id_of(events)
    answer, status = row(db, message_id)
    for _ in range(100):  # bounded: up to 5 s, the claim is checked against 1 s below
        answer, status = row(db, message_id)
        if status != "streaming":
            break
        time.sleep(0.05)
    assert status == "stopped"
    assert time.monotonic() - closed_at < 1.5  # saved (so the source was closed) within ~1 s
    full = FakeLLM().text_for("멈춰")
    assert answer and full.startswith(answer) and len(answer) < len(full)


def test_heartbeats_flow_while_a_slow_model_thinks_and_the_answer_still_arrives(
    demo: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, _ = demo
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "1.2")
    monkeypatch.setenv("SSE_LLM_HEARTBEAT", "0.3")
    answer_file = Path(os.environ["CHAT_DB"]).with_name("slow.txt")
    answer_file.write_text("느린 답변 입니다", encoding="utf-8")
    monkeypatch.setenv("SSE_LLM_FAKE_ANSWER_FILE", str(answer_file))
    with httpx.Client(timeout=20) as client:
        url, token = start_chat(client, base_url)
        with client.stream(
            "POST", url + "send", data={"prompt": "x", "csrfmiddlewaretoken": token}
        ) as response:
            items = read_events(response)
    comments = [i for i in items if type(i) is not ServerSentEvent]
    events = [i for i in items if type(i) is ServerSentEvent]
    assert len(comments) >= 3  # ~2.4 s of silence at 0.3 s per heartbeat
    assert events[-1].event == "done" and events[-1].data == "completed"
    assert "느린 답변 입니다" in events[-2].data  # the pending token was not cancelled


def test_under_wsgi_the_view_fails_loudly_instead_of_buffering(demo: tuple[str, Path]) -> None:
    from django.test import Client

    with pytest.raises(UnsupportedServerError, match="ASGI server"):
        Client(HTTP_HOST="127.0.0.1").get("/wsgi-probe")


def test_the_response_refuses_synchronous_iteration(demo: tuple[str, Path]) -> None:
    from sse_llm.django import SSEStreamingResponse

    response = SSEStreamingResponse(["a"])
    with pytest.raises(UnsupportedServerError):
        iter(response)


def test_django_templates_render_fragments_with_model_output_escaped_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # sse_llm.html takes any template with render(context): a Django backend template works
    # like a Jinja2 one. The context values are already HTML (markupsafe.Markup: escaped text,
    # sanitised Markdown); Django's autoescape sees their __html__ and keeps them as they are,
    # so model output is escaped exactly once.
    import anyio
    from django.template import engines

    from sse_llm import EventStream
    from sse_llm.html import HTMLAppendFormat, MarkdownRenderer
    from sse_llm.testing import run_stream

    django_demo_app(tmp_path_factory)  # configures Django settings (templates engine)
    django = engines["django"]
    fmt = HTMLAppendFormat(
        "answer",
        interval=0,
        markdown=MarkdownRenderer(),
        token_template=django.from_string('<span class="t">{{ text }}</span>'),
        final_template=django.from_string(
            '<div hx-swap-oob="innerHTML:#{{ target }}">{{ html }}{{ error }}</div>'
        ),
    )
    tokens = ["**bold** ", "<script>", "alert(1)", "</script> ", "& 끝"]
    response = anyio.run(run_stream, EventStream(tokens, format=fmt))
    data = [e.data for e in response.events if e.event == "message"]
    assert data[:4] == [
        '<span class="t">**bold** </span>',
        '<span class="t">&lt;script&gt;</span>',
        '<span class="t">alert(1)</span>',
        '<span class="t">&lt;/script&gt; </span>',
    ]
    assert data[4] == '<span class="t">&amp; 끝</span>'
    assert data[5] == (
        f'<div hx-swap-oob="innerHTML:#answer">{MarkdownRenderer().render("".join(tokens))}</div>'
    )
    assert "<script>" not in "".join(data)


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute(f"select count(*) from {table}").fetchone()
    return int(count)


def ask(client: httpx.Client, url: str, token: str, prompt: str) -> list[ServerSentEvent]:
    with client.stream(
        "POST", url + "send", data={"prompt": prompt, "csrfmiddlewaretoken": token}
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return [i for i in read_events(response) if type(i) is ServerSentEvent]


def test_opening_the_page_writes_nothing_and_questions_join_one_conversation(
    demo: tuple[str, Path],
) -> None:
    base_url, db = demo
    conversations = count_rows(db, "chat_conversation")
    with httpx.Client(timeout=20) as client:
        for _ in range(3):
            url, token = start_chat(client, base_url)
        assert count_rows(db, "chat_conversation") == conversations
        first = ask(client, url, token, "하나")
        second = ask(client, url, token, "둘")
        page = client.get(url)
    assert first[-1].data == second[-1].data == "completed"
    assert count_rows(db, "chat_conversation") == conversations + 1
    # Both answers are on the page of the one conversation, in order.
    assert page.text.index("하나") < page.text.index("둘")
    with httpx.Client(timeout=20) as other:  # another browser: a page of its own, empty
        assert "하나" not in other.get(base_url + "/").text


def test_new_conversation_starts_an_empty_page(demo: tuple[str, Path]) -> None:
    base_url, _ = demo
    with httpx.Client(timeout=20) as client:
        url, token = start_chat(client, base_url)
        ask(client, url, token, "첫 대화")
        assert "첫 대화" in client.get(url).text
        page = client.post(
            base_url + "/new", data={"csrfmiddlewaretoken": token}, follow_redirects=True
        )
    assert page.status_code == 200
    assert "첫 대화" not in page.text


def test_djangos_own_runserver_streams_every_answer(tmp_path: Path) -> None:
    # `python manage.py runserver` as the README says: 'daphne' first in INSTALLED_APPS makes
    # it an ASGI server. Plain Django's WSGI runserver would answer every Send with a 500.
    port = free_port()
    env = os.environ | {"CHAT_DB": str(tmp_path / "chat.sqlite3"), "SSE_LLM_FAKE_DELAY": "0"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=DEMO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=20) as client:
            wait_until_up(client, base_url, server)
            url, token = start_chat(client, base_url)
            answers = [ask(client, url, token, f"질문 {n}") for n in range(3)]
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert "ASGI/Daphne" in output, output
    for n, events in enumerate(answers):
        assert events[-1].event == "done" and events[-1].data == "completed"
        assert f"질문 {n}" in events[0].data  # the message pair, inserted out of band
    assert " 500 " not in output, output


def wait_until_up(client: httpx.Client, base_url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        try:
            client.get(base_url + "/wsgi-probe")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError("runserver did not start")


# -- the response body as Django's ASGI handler reads it (async for over the response) --------


class Recorded:
    """A source that yields ``tokens`` (waiting ``delay`` s before each) and records that it
    was closed; and the completion hook's result."""

    def __init__(self, tokens: list[str], delay: float = 0.0, fail_after: int | None = None):
        self.tokens = tokens
        self.delay = delay
        self.fail_after = fail_after
        self.closed = False
        self.results: list[Any] = []
        self.ended = asyncio.Event()

    async def source(self) -> Any:
        try:
            for n, token in enumerate(self.tokens):
                if n == self.fail_after:
                    raise RuntimeError("secret detail")
                await asyncio.sleep(self.delay)
                yield token
        finally:
            self.closed = True

    def hook(self, result: Any) -> None:
        self.results.append(result)
        self.ended.set()

    def assert_disconnected(self, waited: float, within: float) -> None:
        """The hook said ``disconnected`` within ``within`` seconds, the source was closed."""
        assert self.results, "the stream was not ended"
        assert self.results[0].reason == "disconnected"
        assert waited < within, waited
        assert self.closed

    async def wait_ended(self) -> float:
        """Seconds until the hook ran (at most 5)."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), 5)
        return time.monotonic() - started


def test_a_reader_slower_than_the_source_gets_every_event_in_order(
    demo: tuple[str, Path],
) -> None:
    from sse_llm.django import SSEResponse

    tokens = [f"t{n} " for n in range(40)]
    recorded = Recorded(tokens)  # never waits: the pump is always ahead of the reader

    async def read() -> bytes:
        body = b""
        async for chunk in SSEResponse(recorded.source(), on_complete=recorded.hook):
            body += chunk
            await asyncio.sleep(0.001)
        return body

    body = asyncio.run(read())
    events = [i for i in SSEDecoder().feed(body) if type(i) is ServerSentEvent]
    assert [e.data for e in events[:-1]] == [f'{{"text":"{t}"}}' for t in tokens]
    assert events[-1].event == "done"
    assert recorded.closed
    assert recorded.results[0].reason == "completed" and recorded.results[0].text == "".join(tokens)


def test_a_reader_that_stops_reading_is_timed_out_and_the_source_closed(
    demo: tuple[str, Path],
) -> None:
    from sse_llm.django import SSEResponse

    recorded = Recorded([f"t{n} " for n in range(1000)], delay=0.01)

    async def read_two_then_stall() -> float:
        response = SSEResponse(
            recorded.source(), on_complete=recorded.hook, send_timeout=0.3, heartbeat=None
        )
        chunks = aiter(response)
        await anext(chunks)
        await anext(chunks)
        return await recorded.wait_ended()  # the client reads nothing meanwhile

    waited = asyncio.run(read_two_then_stall())
    assert recorded.results, "the stream was not ended"
    assert recorded.results[0].reason == "timeout"
    assert 0.3 <= waited < 1.5
    assert recorded.closed


def test_a_reader_cancelled_by_django_closes_the_source_with_the_partial_text(
    demo: tuple[str, Path],
) -> None:
    from sse_llm.django import SSEResponse

    recorded = Recorded([f"t{n} " for n in range(1000)], delay=0.05)

    async def read_then_cancel() -> None:
        response = SSEResponse(recorded.source(), on_complete=recorded.hook)

        async def read() -> None:
            async for _ in response:
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        task.cancel()  # what Django does when the client leaves
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(read_then_cancel())
    result = recorded.results[0]
    assert result.reason == "disconnected"
    assert result.text.startswith("t0 t1 ") and len(result.text) < 100
    assert recorded.closed


def test_a_reader_that_closes_the_response_like_django_ends_the_stream(
    demo: tuple[str, Path],
) -> None:
    """Django's test client (and its ASGI handler) leave a body by ``response.close()``, from a
    worker thread; the task that read it lives on (a test runner's)."""
    from asgiref.sync import sync_to_async

    from sse_llm.django import SSEResponse

    recorded = Recorded([f"t{n} " for n in range(1000)], delay=0.02)

    async def read_two_then_close() -> float:
        response = SSEResponse(recorded.source(), on_complete=recorded.hook)
        chunks = aiter(response.streaming_content)
        await anext(chunks)
        await anext(chunks)
        await sync_to_async(response.close)()
        return await recorded.wait_ended()

    waited = asyncio.run(read_two_then_close())
    recorded.assert_disconnected(waited, within=1.0)


def test_run_stream_s_timeout_ends_a_django_stream_as_a_client_that_leaves(
    demo: tuple[str, Path],
) -> None:
    """Cancelling Django's ASGI handler leaves its request task running (the source went on
    generating, no hook): at its timeout the driver disconnects first, as a client would."""
    from django.core.asgi import get_asgi_application
    from django.test import override_settings

    from sse_llm.testing import StreamTimeoutError, run_stream
    from tests.support import django_endless

    application = get_asgi_application()
    endless = django_endless.current = django_endless.Endless()

    async def drive() -> StreamTimeoutError:
        with pytest.raises(StreamTimeoutError) as raised:
            await run_stream(application, "/chat", timeout=0.5)
        at_timeout = endless.produced
        await asyncio.sleep(0.3)
        assert endless.produced <= at_timeout + 1  # the source stopped
        return raised.value

    with override_settings(
        ROOT_URLCONF="tests.support.django_endless", ALLOWED_HOSTS=["testserver"]
    ):
        error = asyncio.run(drive())
    assert error.response.status == 200
    assert error.response.disconnected
    assert len(error.response.events) >= 3  # what arrived before the timeout is kept
    assert endless.closed
    assert [r.reason for r in endless.results] == ["disconnected"]


def test_a_server_that_cancels_every_task_at_once_is_not_held_for_close_timeout(
    demo: tuple[str, Path],
) -> None:
    # Found in review: when the server cancelled the pump's task, then the reader (asyncio.run
    # at exit, hypercorn after its graceful timeout), the last event was held out for a reader
    # that had gone, and the stop waited the whole close_timeout for it.
    from sse_llm.django import SSEResponse

    recorded = Recorded([f"t{n} " for n in range(1000)], delay=0.05)

    async def read_then_cancel_all() -> float:
        response = SSEResponse(recorded.source(), on_complete=recorded.hook, close_timeout=3)

        async def read() -> None:
            async for _ in response:
                pass

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        (pump,) = [
            task
            for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") == "_Body._run"  # the pump's task
        ]
        started = time.monotonic()
        pump.cancel()  # the order asyncio.run's exit may take
        reader.cancel()
        await asyncio.gather(pump, reader, return_exceptions=True)
        return time.monotonic() - started

    stopped_after = asyncio.run(read_then_cancel_all())
    assert stopped_after < 1.0, stopped_after
    assert recorded.closed
    result = recorded.results[0]
    assert result.reason in ("shutdown", "disconnected") and result.text.startswith("t0 t1 ")


def test_an_error_mid_stream_ends_the_body_with_a_safe_error_event(
    demo: tuple[str, Path],
) -> None:
    from sse_llm.django import SSEResponse

    recorded = Recorded(["a ", "b ", "c "], delay=0.01, fail_after=2)

    async def read() -> bytes:
        response = SSEResponse(recorded.source(), on_complete=recorded.hook)
        return b"".join([chunk async for chunk in response])

    body = asyncio.run(read())
    events = [i for i in SSEDecoder().feed(body) if type(i) is ServerSentEvent]
    assert [e.event for e in events] == ["delta", "delta", "error"]
    assert "secret" not in body.decode()
    assert recorded.results[0].reason == "error" and recorded.results[0].text == "a b "


def test_a_client_that_leaves_while_django_sends_ends_the_stream_at_once(
    demo: tuple[str, Path],
) -> None:
    # Django cancels its reading task when the client leaves; if that task is in Django's own
    # send (a slow client) rather than waiting on the body, the cancel never reaches the body.
    from sse_llm.django import SSEResponse

    recorded = Recorded([f"t{n} " for n in range(1000)], delay=0.01)

    async def read_then_leave_while_sending() -> float:
        response = SSEResponse(recorded.source(), on_complete=recorded.hook)  # send_timeout 30 s

        async def read() -> None:
            async for _ in response:
                await asyncio.sleep(10)  # Django's send, on a client that reads slowly

        task = asyncio.create_task(read())
        await asyncio.sleep(0.2)
        task.cancel()  # what Django does when the client leaves
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await recorded.wait_ended()

    took = asyncio.run(read_then_leave_while_sending())
    recorded.assert_disconnected(took, within=1.0)


SHUTDOWN_DJANGO = Path(__file__).resolve().parent / "support" / "shutdown" / "djproj"


def start_shutdown_djproj(server: str, port: int, hook_log: Path) -> subprocess.Popen[str]:
    """tests/support/shutdown/djproj under ``server`` (uvicorn, daphne or Django's
    runserver), once it answers."""
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {
        "HOOK_LOG": str(hook_log),
        "HOOK_SLEEP": "0",
        "DJANGO_SETTINGS_MODULE": "djproj.settings",
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "src"), str(SHUTDOWN_DJANGO)]),
    }
    app = "djproj.asgi:application"
    command = {
        "uvicorn": ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning", app],
        "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
        # daphne's, through ASGI_APPLICATION; with the autoreloader or not.
        "runserver": ["-m", "django", "runserver", f"127.0.0.1:{port}"],
        "runserver-noreload": ["-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
    }[server]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=SHUTDOWN_DJANGO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,  # an autoreloader's child is stopped with its group
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(process.communicate()[0])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).text == "pong":
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            raise TimeoutError(f"{server} did not start: {process.communicate(timeout=20)[0]}")
        time.sleep(0.1)


@pytest.mark.parametrize("reload", [True, False], ids=["autoreloader", "noreload"])
def test_runserver_with_its_autoreloader_says_that_graceful_shutdown_cannot_work(
    reload: bool, tmp_path: Path
) -> None:
    # Found in review: the autoreloader runs the server in a thread of its own, where no
    # signal handler can be installed; GracefulShutdown then did nothing, silently, and a stop
    # cut every stream with no final event and no hook.
    port = free_port()
    server = "runserver" if reload else "runserver-noreload"
    process = start_shutdown_djproj(server, port, tmp_path / "hooks.log")
    # The first request (the answered ping) is where GracefulShutdown installs itself.
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=20)[0]
    warned = "GracefulShutdown could not install its signal handler" in output
    assert warned == reload, output


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_the_headers_go_out_at_once_while_the_model_thinks(server: str, tmp_path: Path) -> None:
    # Found in review: daphne (Django's runserver and its recommended server) writes the
    # status line and headers only with the first body bytes, so they waited for the first
    # token or heartbeat (15 s): EventSource did not open, fetch() did not resolve.
    port = free_port()
    process = start_shutdown_djproj(server, port, tmp_path / "hooks.log")
    try:
        started = time.monotonic()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/thinking", timeout=20) as response:
            headers_after = time.monotonic() - started
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            body = response.read()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert headers_after < 1.0, (headers_after, output)  # the model thinks for 3 s
    events = list(SSEDecoder().feed(body))
    assert [e.event for e in events if isinstance(e, ServerSentEvent)] == ["delta", "done"]
    # The opening comment made the server write the headers; no heartbeat came (15 s away).
    assert events[:2] == [Comment(""), ServerSentEvent('{"text":"answer"}', event="delta")]


@dataclass
class DjangoServer:
    """tests/support/shutdown/djproj under uvicorn: its port, its hook log, and (once it has
    stopped) its output."""

    port: int
    hook_log: Path
    output: str = ""


@contextlib.contextmanager
def djproj_under_uvicorn(tmp_path: Path) -> Iterator[DjangoServer]:
    served = DjangoServer(free_port(), tmp_path / "hooks.log")
    process = start_shutdown_djproj("uvicorn", served.port, served.hook_log)
    try:
        yield served
    finally:
        process.terminate()
        served.output = process.communicate(timeout=20)[0]


def wait_for_hook(hook_log: Path, seconds: float) -> tuple[list[str], float]:
    """The hook log's lines once a hook ran (or ``seconds`` passed), and how long that took."""
    left = time.monotonic()
    lines: list[str] = []
    while time.monotonic() - left < seconds:
        lines = hook_log.read_text().splitlines() if hook_log.exists() else []
        if any(line.startswith("hook") for line in lines):
            break
        time.sleep(0.02)
    return lines, time.monotonic() - left


def test_under_uvicorn_a_client_that_stops_reading_then_leaves_ends_the_stream_at_once(
    tmp_path: Path,
) -> None:
    # End to end under uvicorn: the client reads nothing, so Django's send waits on uvicorn's
    # flow control; then it leaves. The default send_timeout (30 s) must not be what ends the
    # stream. (uvicorn lets that send return once the connection is lost, so Django's cancel
    # usually lands in the body's __anext__; the test above covers a cancel inside the send.)
    with djproj_under_uvicorn(tmp_path) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # reads nothing more: every buffer fills, Django's send waits
        log = server.hook_log
        assert not log.exists() or "hook" not in log.read_text()
        sock.close()  # unread bytes: the kernel resets the connection
        lines, took = wait_for_hook(log, 10)
    hooks = [" ".join(line.split()[:2]) for line in lines if line.startswith("hook")]
    assert hooks == ["hook disconnected"], (lines, server.output)
    assert "source-closed" in lines
    assert took < 2.0, (took, server.output)


def test_a_client_that_leaves_before_django_sends_anything_still_ends_the_stream(
    tmp_path: Path,
) -> None:
    # Found in review: when the client left while a middleware still ran after the view (here
    # an async one that takes 1 s), Django cancelled its task and dropped the response unread:
    # the source was never closed (an SDK stream kept its upstream request) and the hook never
    # ran. (A sync-only middleware runs the view in a task of its own: not covered, see
    # docs/django.md.)
    with djproj_under_uvicorn(tmp_path) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET /slow-middleware HTTP/1.1\r\nHost: t\r\n\r\n")
        log, deadline = server.hook_log, time.monotonic() + 5
        while "view-returned" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the view did not run"
            time.sleep(0.01)
        sock.close()  # the view has returned; the middleware is still at work (1 s)
        lines, took = wait_for_hook(log, 5)
        # The same path, read to its first event: the middleware itself is no trouble.
        url = f"http://127.0.0.1:{server.port}/slow-middleware"
        with httpx.stream("GET", url, timeout=10) as r:
            first = next(iter_events(r))
    hooks = [" ".join(line.split()[:3]) for line in lines if line.startswith("hook")]
    assert hooks == ["hook disconnected 0"], (lines, server.output)  # the source never ran
    assert took < 2.0, (took, server.output)  # the middleware's second, then the cancel
    assert (first.event, first.data) == ("delta", '{"text":"tok0 "}'), first


def test_the_demo_restreams_an_openai_server_over_one_kept_connection(
    demo: tuple[str, Path], replay_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in review: the demo made an AsyncOpenAI client per question and never closed it:
    # no connection reuse, and the sockets waited for the garbage collector.
    recording = "openai-chat/langchaingo-gpt-basic-usage.sse"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", replay_server.base_url + "/v1")
    monkeypatch.setenv("SSE_LLM_MODEL", recording)
    base_url, _ = demo
    before = len(replay_server.app.requests)
    with httpx.Client(timeout=20) as client:
        url, token = start_chat(client, base_url)
        for question in ("one", "two", "three"):
            with client.stream(
                "POST", url + "send", data={"prompt": question, "csrfmiddlewaretoken": token}
            ) as response:
                events = [i for i in read_events(response) if type(i) is ServerSentEvent]
            assert events[-1].event == "done" and events[-1].data == "completed", events[-3:]
    asked = replay_server.app.requests[before:]
    assert [r.body["messages"][0]["content"] for r in asked] == ["one", "two", "three"]
    assert all(r.file == recording for r in asked)
    assert len({r.client for r in asked}) == 1, [r.client for r in asked]  # one connection


def test_the_demo_shows_and_saves_a_provider_error_as_the_answer_s_end(
    demo: tuple[str, Path], replay_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in review: the view awaited the SDK call itself, so a provider that refused the
    # request (a bad key or model, a 429) raised in the view: an HTML 500 for the page and the
    # message row left "streaming" for good, the completion hook never run.
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", replay_server.base_url + "/v1")
    monkeypatch.setenv("SSE_LLM_MODEL", "openai-chat/no-such-recording.sse")  # a 404
    base_url, db = demo
    with httpx.Client(timeout=20) as client:
        events = ask_demo(client, base_url, "안녕")
    message_id = message_id_of(events)
    assert (events[-1].event, events[-1].data) == ("done", "error")
    assert 'class="sse-llm-error"' in events[-2].data and "Traceback" not in events[-2].data
    assert row(db, message_id) == ("", "error")  # saved by on_complete before the body ended


def test_head_gets_the_headers_alone_and_ends_the_stream(tmp_path: Path) -> None:
    # Found in review (of the ASGI bindings): HEAD ran the model to its end for a body the
    # server throws away, and a kept-alive connection's next request waited for it.
    with (
        djproj_under_uvicorn(tmp_path) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client,
    ):
        head = client.head("/stream")
        lines, took = wait_for_hook(server.hook_log, 5)
        ping = client.get("/ping")  # the same kept-alive connection
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
    hooks = [" ".join(line.split()[:3]) for line in lines if line.startswith("hook")]
    assert hooks == ["hook disconnected 0"], (lines, server.output)
    assert took < 1.0 and ping.text == "pong", (took, server.output)


def test_a_source_refused_under_wsgi_is_closed_at_once(demo: tuple[str, Path]) -> None:
    # Found in review: under WSGI the response refused (as documented) but left the SDK stream
    # the view had opened streaming to its end: the model billed for an answer nobody reads.
    from django.test import RequestFactory

    from sse_llm.django import SSEResponse

    closed: list[str] = []
    request = RequestFactory().get("/chat")  # Django's WSGIRequest
    call = sdk_call()  # an SDK call the view did not await
    for source in (sync_stream(closed), call):
        with pytest.raises(UnsupportedServerError, match="ASGI server"):
            SSEResponse(source, request=request)
    generator = sync_stream(closed)
    next(generator)  # started, as an SDK stream is once its response arrived
    with pytest.raises(UnsupportedServerError):
        SSEResponse(generator, request=request)
    assert closed == ["sync"]  # the started one: the unstarted one has nothing to run
    assert call.cr_frame is None  # closed, never run (no "never awaited" warning either)
    # The same for a response refused for its options (a header from user data).
    generator = sync_stream(closed)
    next(generator)
    with pytest.raises(ValueError, match="outside Latin-1"):
        SSEResponse(generator, headers={"x-user": "김민수"})
    assert closed == ["sync", "sync"]


def test_a_sync_source_has_one_thread_whose_database_connections_close_at_its_end(
    demo: tuple[str, Path],
) -> None:
    # Found in review: a sync source using the ORM (a history read, the answer saved at its
    # end) left a connection open in each of anyio's worker threads it ran in, for good
    # (CONN_MAX_AGE=0): Django's request_finished closes only the request thread's. A first
    # mend closed them after each step, which broke a transaction or a cursor kept across a
    # yield (a second review). Now the source has one thread, as a WSGI request has, closed
    # with its connections at the end.
    from asgiref.sync import sync_to_async
    from django.db import connections, transaction

    from sse_llm.django import SSEResponse
    from sse_llm.formats import TextFormat

    threads: set[int] = set()
    used: list[Any] = []
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    seen_ids: list[str] = []

    def execute(sql: str) -> list[tuple[Any, ...]]:
        threads.add(threading.get_ident())
        used.append(connections["default"])
        with connections["default"].cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    execute("CREATE TABLE IF NOT EXISTS sse_llm_steps (n INTEGER)")
    execute("DELETE FROM sse_llm_steps")
    threads.clear()
    used.clear()

    def saved_in_one_transaction() -> Iterator[str]:
        with transaction.atomic():
            for n in range(1, 4):
                execute(f"INSERT INTO sse_llm_steps VALUES ({n})")
                seen_ids.append(request_id.get("-"))  # what the view (a middleware) set
                yield f"{n} "

    def read_with_a_cursor_across_yields() -> Iterator[str]:
        threads.add(threading.get_ident())
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT n FROM sse_llm_steps ORDER BY n")
            for (n,) in cursor:
                yield f"{n} "

    def left_early() -> Iterator[str]:
        try:
            yield "a"
            yield "never read"
        finally:
            execute("INSERT INTO sse_llm_steps VALUES (9)")  # the partial answer saved

    async def read_all(source: Iterator[str]) -> str:
        request_id.set("req-42")
        body = b"".join([chunk async for chunk in SSEResponse(source, format=TextFormat())])
        return "".join(e.data for e in SSEDecoder().feed(body) if type(e) is ServerSentEvent)

    async def read_one_then_close() -> None:
        response = SSEResponse(left_early(), on_complete=lambda result: ended.set())
        ended = asyncio.Event()
        chunks = aiter(response.streaming_content)
        await anext(chunks)  # the opening comment
        await anext(chunks)  # "a"
        await sync_to_async(response.close)()
        await asyncio.wait_for(ended.wait(), 5)

    for source, answer in (
        (saved_in_one_transaction(), "1 2 3 "),
        (read_with_a_cursor_across_yields(), "1 2 3 "),
    ):
        threads.clear()
        assert asyncio.run(read_all(source)).startswith(answer)
        assert len(threads) == 1  # every step in one thread
    assert seen_ids == ["req-42"] * 3  # in the reading task's context, as before
    asyncio.run(read_one_then_close())
    assert execute("SELECT n FROM sse_llm_steps ORDER BY n") == [(1,), (2,), (3,), (9,)]
    # Every connection the sources opened in their threads is closed (the last one is this
    # thread's own, just used).
    assert [wrapper.connection for wrapper in used[:-1]] == [None] * (len(used) - 1)


def test_a_response_made_without_the_request_closes_its_source_when_wsgi_iterates_it(
    demo: tuple[str, Path],
) -> None:
    # Found in review: SSEResponse(source) without request= in a sync view under WSGI
    # (gunicorn) refused at iteration but left the sync SDK stream streaming to its end
    # (CLOSE_WAIT upstream).
    from sse_llm.django import SSEResponse

    closed: list[str] = []
    generator = sync_stream(closed)
    next(generator)  # started, as an SDK stream is once its response arrived
    response = SSEResponse(generator)
    with pytest.raises(UnsupportedServerError, match="cannot stream under WSGI"):
        iter(response)  # what a WSGI server does with the response
    assert closed == ["sync"]
    response.close()  # then the server closes it: nothing more to close, no hook to run
    assert closed == ["sync"]


def test_sse_decorates_a_class_based_view_s_method_and_explains_django_s_decorators(
    demo: tuple[str, Path],
) -> None:
    # Found in review: on `async def get(self, request)` the wrapper took `self` for the
    # request (UnsupportedServerError); under Django's own decorators the message said "write
    # the view with async def" of a view that was async def.
    from django.test import AsyncRequestFactory
    from django.views import View
    from django.views.decorators.http import require_GET

    from sse_llm.django import sse
    from sse_llm.formats import TextFormat

    class Answer(View):
        @sse(format=TextFormat(), heartbeat=None)
        async def get(self, request: Any) -> AsyncIterator[str]:
            yield f"{type(self).__name__} {request.GET['q']}"

    async def read() -> bytes:
        request = AsyncRequestFactory().get("/answer", {"q": "안녕"})
        response = await Answer.as_view()(request)
        return b"".join([chunk async for chunk in response.streaming_content])

    body = asyncio.run(read()).decode()
    # The opening comment (sent at once: the headers leave), then the stream.
    assert body == ':\ndata: Answer 안녕\n\nevent: done\ndata: {"finish_reason":"stop"}\n\n'

    with pytest.raises(TypeError, match="put that decorator above @sse"):

        @sse
        @require_GET
        async def under(request: Any) -> AsyncIterator[str]:
            yield "x"
