"""sse_llm.flask under a real WSGI server (werkzeug's threaded ``make_server`` on 127.0.0.1),
read by a real httpx client: tokens arrive as they are produced, heartbeats fill silences, a
client that leaves closes the source, and the real ``openai`` SDK (sync and async) streams
recorded provider responses through the adapter."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
from flask import Flask, current_app, request, stream_with_context
from flask_compress import Compress

from sse_llm import Comment, ServerSentEvent, SSEDecoder, StreamResult
from sse_llm.client import iter_events
from sse_llm.flask import SSEResponse, sse_response
from sse_llm.formats import AISDKFormat, OpenAIChatFormat, TypedJSONFormat
from sse_llm.testing import FakeLLM, run_stream, tokenize

from .support.browser import launch_chromium
from .support.fixtures import expected, fixture_files, fixture_id
from .support.plugin import ReplayServer
from .support.servers import run_werkzeug
from .test_examples import load_example

SAFE_ERROR = "The answer could not be completed because of an internal error."
WAIT = 10.0  # seconds: the bound on every wait for the other side


class Backend:
    """What the Flask views stream, and what the test observes of it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.released = threading.Event()  # the client lets a waiting source go on
        self.closed = threading.Event()  # a source's finally ran
        self.results: list[StreamResult] = []
        self.silent = FakeLLM(answer="a b", delay=60)

    def waiting_source(self) -> Iterator[str]:
        """One token, then nothing until the client says it saw that token."""
        try:
            yield "first "
            if not self.released.wait(WAIT):
                raise RuntimeError("the client never saw the first token")
            yield "second"
        finally:
            self.closed.set()

    def endless_source(self) -> Iterator[str]:
        try:
            for i in range(10_000):
                yield f"t{i} "
                time.sleep(0.02)
        finally:
            self.closed.set()

    def closable_source(self) -> Any:
        backend = self

        class Source:
            """An SDK-like stream object: iterable, with close()."""

            def __iter__(self) -> Iterator[str]:
                yield "never read"

            def close(self) -> None:
                backend.closed.set()

        return Source()

    def failing_source(self) -> Iterator[str]:
        yield "partial "
        raise RuntimeError("boom (secret=hunter2)")


@pytest.fixture
def backend(replay_server: ReplayServer) -> Backend:
    return Backend(replay_server.base_url)


@pytest.fixture
def base_url(backend: Backend) -> Iterator[str]:
    app = Flask(__name__)
    hook = backend.results.append

    @app.get("/waiting")
    def waiting() -> Any:
        heartbeat = float(request.args.get("heartbeat", "15"))
        return sse_response(backend.waiting_source(), heartbeat=heartbeat, on_complete=hook)

    @app.get("/endless")
    def endless() -> Any:
        return sse_response(backend.endless_source(), heartbeat=0.2, on_complete=hook)

    @app.get("/silent")
    def silent() -> Any:
        return sse_response(backend.silent.stream("p"), heartbeat=0.2, on_complete=hook)

    @app.get("/fake")
    def fake() -> Any:
        llm = FakeLLM(delay=0.002)
        return sse_response(llm.stream(request.args["prompt"]), format=TypedJSONFormat())

    @app.get("/closable")
    def closable() -> Any:
        return sse_response(backend.closable_source(), on_complete=hook)

    @app.get("/failing")
    def failing() -> Any:
        return sse_response(backend.failing_source(), on_complete=hook)

    @app.get("/with-context")
    def with_context() -> Any:
        @stream_with_context
        def words() -> Iterator[str]:
            yield "a "
            yield request.args["name"] + " "  # the request context, after the first step
            yield current_app.name

        return sse_response(words(), on_complete=hook)

    @app.get("/refused")
    def refused() -> Any:
        # A header from user data that cannot be sent: the response is refused (a 500).
        name = request.args["name"]
        return sse_response(backend.closable_source(), headers={"x-user": name})

    @app.get("/aisdk")
    def aisdk() -> Any:
        return sse_response(iter(["a", "b"]), format=AISDKFormat(), headers={"x-extra": "1"})

    @app.get("/openai-sync")
    def openai_sync() -> Any:
        client = openai.OpenAI(base_url=backend.upstream + "/v1", api_key="t", max_retries=0)
        stream = client.chat.completions.create(
            model=request.args["model"], messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return sse_response(stream, on_complete=hook)

    @app.get("/openai-async")
    def openai_async() -> Any:
        client = openai.AsyncOpenAI(base_url=backend.upstream + "/v1", api_key="t", max_retries=0)

        async def done(result: StreamResult) -> None:
            await client.close()  # on the loop the client ran on
            backend.results.append(result)

        headers = {"x-replay-status": request.args["status"]} if "status" in request.args else {}
        # Not awaited: sse_response awaits it on its background loop.
        stream = client.chat.completions.create(
            model=request.args["model"],
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=headers,
        )
        return sse_response(stream, on_complete=done)

    with run_werkzeug(app) as url:
        yield url


def _read(
    url: str, on_item: Any = None, *, timeout: float = WAIT
) -> tuple[httpx.Response, list[ServerSentEvent | Comment]]:
    """Every event and comment of the stream at ``url``, in order. ``on_item(items)`` is
    called after each one and may return True to hang up."""
    items: list[ServerSentEvent | Comment] = []
    decoder = SSEDecoder()
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", url) as response,
    ):
        deadline = time.monotonic() + timeout
        for chunk in response.iter_raw():
            assert time.monotonic() < deadline, "the stream did not end in time"
            for item in decoder.feed(chunk):
                items.append(item)
                if on_item is not None and on_item(items):
                    return response, items
    return response, items


def _deltas(items: list[ServerSentEvent | Comment]) -> list[str]:
    return [
        json.loads(i.data)["text"]
        for i in items
        if isinstance(i, ServerSentEvent) and i.event == "delta"
    ]


def _named(items: list[ServerSentEvent | Comment], name: str) -> list[Any]:
    return [json.loads(i.data) for i in items if isinstance(i, ServerSentEvent) and i.event == name]


def _wait_results(backend: Backend, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while len(backend.results) < count:
        assert time.monotonic() < deadline, "on_complete was not called"
        time.sleep(0.01)


# ------------------------------------------------------------------------------ streaming


def test_tokens_reach_the_client_while_the_source_is_still_running(
    base_url: str, backend: Backend
) -> None:
    """The source only yields its second token after the client has received the first:
    a buffered response would deadlock and end in the source's error instead."""

    def on_item(items: list[Any]) -> bool:
        if _deltas(items) == ["first "]:
            backend.released.set()
        return False

    response, items = _read(base_url + "/waiting", on_item)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert _deltas(items) == ["first ", "second"]
    assert _named(items, "error") == []
    assert _named(items, "done")[0]["finish_reason"] == "stop"
    _wait_results(backend, 1)
    assert backend.results[0].reason == "completed"
    assert backend.results[0].text == "first second"


def test_heartbeats_are_sent_while_the_source_is_silent(base_url: str, backend: Backend) -> None:
    def on_item(items: list[Any]) -> bool:
        if sum(isinstance(i, Comment) for i in items) >= 3:  # the opening one, 2 heartbeats
            backend.released.set()
        return False

    _, items = _read(base_url + "/waiting?heartbeat=0.2", on_item)
    assert isinstance(items[0], Comment)  # the opening comment, before the first token
    kinds = ["comment" if isinstance(i, Comment) else i.event for i in items]
    first, second = kinds.index("delta"), len(kinds) - 1 - kinds[::-1].index("delta")
    assert kinds[first + 1 : first + 3] == ["comment", "comment"]
    assert second > first + 2
    assert _deltas(items) == ["first ", "second"]


@pytest.mark.parametrize("path", ["/endless", "/silent"])
def test_client_disconnect_closes_the_source(base_url: str, backend: Backend, path: str) -> None:
    """A sync source between tokens and an async one waiting on a silent model."""
    _read(base_url + path, lambda items: len(_deltas(items)) >= 1)
    left_at = time.monotonic()
    if path == "/endless":
        assert backend.closed.wait(WAIT)
    else:
        deadline = time.monotonic() + WAIT
        while backend.silent.closed == 0:
            assert time.monotonic() < deadline, "the async source was not closed"
            time.sleep(0.01)
    # Noticed at a failed write: within a couple of heartbeats (0.2 s), with slack.
    assert time.monotonic() - left_at < 3.0
    _wait_results(backend, 1)
    assert backend.results[0].reason == "disconnected"


def test_a_response_that_is_never_read_still_closes_its_source(
    base_url: str, backend: Backend
) -> None:
    """HEAD: the server closes the response without iterating it."""
    with httpx.Client(timeout=WAIT) as client:
        response = client.head(base_url + "/closable")
    assert response.status_code == 200
    assert backend.closed.wait(WAIT)
    _wait_results(backend, 1)  # and the hook ran, as under the ASGI bindings
    assert [(r.reason, r.text) for r in backend.results] == [("disconnected", "")]


def test_an_async_source_streams_in_the_json_events_format(base_url: str) -> None:
    _, items = _read(base_url + "/fake?prompt=%ED%94%8C%EB%9D%BC%EC%8A%A4%ED%81%AC")
    data = [i.data for i in items if isinstance(i, ServerSentEvent)]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert events[0]["type"] == "session"
    assert "".join(e["delta"] for e in events if e["type"] == "delta") == FakeLLM().text_for(
        "플라스크"
    )
    assert events[-1]["type"] == "done"


def test_format_headers_and_extra_headers_are_sent(base_url: str) -> None:
    response, items = _read(base_url + "/aisdk")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["x-extra"] == "1"
    data = [i.data for i in items if isinstance(i, ServerSentEvent)]
    assert data[-1] == "[DONE]"
    types = [json.loads(d)["type"] for d in data[:-1]]
    assert types[:3] == ["start", "start-step", "text-start"]
    assert types[-2:] == ["finish-step", "finish"]


def test_a_failing_source_ends_with_a_safe_error(base_url: str, backend: Backend) -> None:
    _, items = _read(base_url + "/failing")
    assert _deltas(items) == ["partial "]
    assert _named(items, "error") == [{"message": SAFE_ERROR, "code": "internal_error"}]
    assert "hunter2" not in str(items)
    _wait_results(backend, 1)
    assert backend.results[0].reason == "error"


def test_a_source_that_is_not_iterable_fails_in_the_view() -> None:
    with pytest.raises(TypeError):
        sse_response("a whole answer")
    with pytest.raises(TypeError):
        sse_response(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sse_response([], heartbeat=0)


def test_a_generator_in_stream_with_context_reads_the_request_in_its_steps(
    base_url: str, backend: Backend
) -> None:
    # Found in review: each next() ran in a fresh copy of the context, so the request context
    # stream_with_context pushed in the first step was gone in the second (an error event),
    # and its pop in the last step failed.
    _, items = _read(base_url + "/with-context?name=플라스크")
    assert _deltas(items) == ["a ", "플라스크 ", "tests.test_flask"]
    assert _named(items, "error") == []
    _wait_results(backend, 1)
    assert (backend.results[0].reason, backend.results[0].error) == ("completed", None)


def test_a_response_refused_in_the_view_closes_the_source_it_was_given(
    base_url: str, backend: Backend
) -> None:
    # Found in review: a refused response (a bad option, a header that cannot be sent) left
    # the sync SDK stream the view had opened running upstream until garbage collection.
    with httpx.Client(timeout=WAIT) as client:
        response = client.get(base_url + "/refused", params={"name": "김민수"})
    assert response.status_code == 500
    assert backend.closed.wait(WAIT)


def test_flask_compress_told_to_compress_event_streams_leaves_the_stream_alone(
    backend: Backend,
) -> None:
    # Found in review: with text/event-stream in COMPRESS_MIMETYPES (and Flask-Compress
    # compresses streamed bodies by default), the whole stream arrived compressed at its end.
    app = Flask(__name__)
    app.config["COMPRESS_MIMETYPES"] = ["text/event-stream"]
    app.config["COMPRESS_MIN_SIZE"] = 0
    Compress(app)

    @app.get("/waiting")
    def waiting() -> Any:
        return SSEResponse(backend.waiting_source())

    seen_first: list[float] = []

    def on_item(items: list[ServerSentEvent | Comment]) -> None:
        if _deltas(items) == ["first "] and not seen_first:
            seen_first.append(time.monotonic())
            backend.released.set()  # the source goes on only once the client saw a token

    with run_werkzeug(app) as url:
        response, items = _read(url + "/waiting", on_item, timeout=WAIT)
    assert response.headers["content-encoding"] == "identity"
    assert seen_first, "the first token never arrived on its own"
    assert _deltas(items) == ["first ", "second"]


async def test_run_stream_given_a_flask_app_says_to_use_its_test_client() -> None:
    with pytest.raises(TypeError, match="WSGI app: read its stream with its own test client"):
        await run_stream(Flask(__name__), "/")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ real SDKs


def test_sync_openai_stream_with_tool_calls(base_url: str) -> None:
    path = next(p for p in fixture_files("openai-chat") if "parallel-tool-calls" in p.name)
    want = expected(path)
    _, items = _read(f"{base_url}/openai-sync?model={fixture_id(path)}")
    calls = [(c["id"], c["name"], json.loads(c["arguments"])) for c in _named(items, "tool_call")]
    assert calls == want.tool_calls
    [done] = _named(items, "done")
    assert done["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("name", ["deepseek-reasoning-content.sse", "perplexity-crlf-no-done.sse"])
def test_awaitable_async_openai_stream(base_url: str, backend: Backend, name: str) -> None:
    path = next(p for p in fixture_files("openai-chat") if p.name == name)
    want = expected(path)
    _, items = _read(f"{base_url}/openai-async?model={fixture_id(path)}")
    assert "".join(_deltas(items)) == want.text
    assert "".join(r["text"] for r in _named(items, "reasoning")) == want.reasoning
    _wait_results(backend, 1)
    assert backend.results[0].reason == "completed"


def test_awaitable_that_fails_reports_the_provider_message(base_url: str, backend: Backend) -> None:
    path = fixture_files("openai-chat")[0]
    _, items = _read(f"{base_url}/openai-async?model={fixture_id(path)}&status=429")
    [error] = _named(items, "error")
    assert error["message"] == "replayed error (HTTP 429)"
    assert _deltas(items) == []


def test_tokens_of_a_long_answer_all_arrive_in_order(base_url: str) -> None:
    """Many small chunks through the bounded queue: nothing lost or reordered."""
    prompt = "x" * 300
    _, items = _read(f"{base_url}/fake?prompt={prompt}")
    data = [i.data for i in items if isinstance(i, ServerSentEvent)]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    deltas = [e["delta"] for e in events if e["type"] == "delta"]
    assert deltas == tokenize(FakeLLM().text_for(prompt))


# ------------------------------------------------------------------------------ the example

PROMPT = "한국어로 인사해 줘 🙂"


@contextmanager
def serve_example(
    fake: FakeLLM, env: dict[str, str] | None = None, *, wrap: Any = None, **options: Any
) -> Iterator[tuple[str, list[StreamResult]]]:
    results: list[StreamResult] = []
    module = load_example("flask")
    app = module.create_app(fake=fake, env=env or {}, on_complete=results.append, **options)
    if wrap is not None:
        app.wsgi_app = wrap(app.wsgi_app)
    with run_werkzeug(app) as url:
        yield url, results


def _post_events(url: str, prompt: str) -> list[Any]:
    """The example's JSON events (``[DONE]`` kept as the string) for ``POST /api/chat``."""
    data: list[Any] = []
    with (
        httpx.Client(timeout=WAIT * 3) as client,
        client.stream("POST", url + "/api/chat", json={"prompt": prompt}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        data = [e.data if e.data == "[DONE]" else json.loads(e.data) for e in iter_events(response)]
    return data


def test_flask_example_streams_the_fake_answer() -> None:
    fake = FakeLLM(delay=0.002)
    with serve_example(fake) as (url, results):
        data = _post_events(url, PROMPT)
        with httpx.Client(timeout=WAIT) as client:
            refused = client.post(url + "/api/chat", json={"prompt": " "})
            page = client.get(url + "/")
            async_events = [
                e.data
                for e in iter_events(client.get(url + "/api/chat/async", params={"prompt": "a"}))
            ]
        deadline = time.monotonic() + WAIT
        while not results:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert data[0]["type"] == "session"
    assert "".join(d["delta"] for d in data if isinstance(d, dict) and d["type"] == "delta") == (
        fake.text_for(PROMPT)
    )
    assert data[-2]["type"] == "done" and data[-2]["finish_reason"] == "stop"
    assert data[-1] == "[DONE]"
    assert refused.status_code == 422
    assert page.status_code == 200 and "sse-llm on Flask" in page.text
    assert async_events[-1] == "[DONE]"
    async_text = "".join(
        e["delta"] for e in map(json.loads, async_events[:-1]) if e["type"] == "delta"
    )
    assert async_text == fake.text_for("a")
    assert results[0].reason == "completed" and results[0].text == fake.text_for(PROMPT)


def test_flask_example_streams_a_real_openai_sdk_response(replay_server: ReplayServer) -> None:
    path = next(p for p in fixture_files("openai-chat") if "deepseek" in p.name)
    env = {
        "OPENAI_API_KEY": "test",
        "OPENAI_BASE_URL": replay_server.base_url + "/v1",
        "SSE_LLM_MODEL": fixture_id(path),
    }
    with serve_example(FakeLLM(), env) as (url, _):
        data = _post_events(url, "hi")
    events = [d for d in data if isinstance(d, dict)]
    assert "".join(e["delta"] for e in events if e["type"] == "delta") == expected(path).text
    assert "".join(e["delta"] for e in events if e["type"] == "reasoning") == (
        expected(path).reasoning
    )
    assert events[-1]["type"] == "done"
    want_usage = expected(path).usage
    assert want_usage is not None
    assert events[-1]["usage"]["output_tokens"] == want_usage["output_tokens"]


@pytest.mark.browser
def test_flask_example_page_shows_the_streamed_answer_in_chromium() -> None:
    fake = FakeLLM(delay=0.01)
    with serve_example(fake) as (url, _), launch_chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/")
        page.fill("#prompt", PROMPT)
        page.press("#prompt", "Enter")
        page.wait_for_selector(".assistant[data-status=done]", timeout=60_000)
        page.wait_for_function("document.body.dataset.state === 'idle'", timeout=30_000)
        text = page.text_content(".assistant[data-status=done]")
    assert text == fake.text_for(PROMPT)
    assert errors == []


# ------------------------------------------------------------------ the non-streaming fallback


class BufferingProxy:
    """WSGI middleware that holds each response until its body is complete, as a proxy that
    buffers does: a stream reaches the client all at once, at its end."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        held: list[Any] = []

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            held.append((status, headers))
            return lambda data: None

        body = self.app(environ, hold)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        status, headers = held[0]
        start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"])
        return [data]


def test_flask_example_complete_endpoint_answers_in_one_json_object() -> None:
    fake = FakeLLM(delay=0)
    with serve_example(fake) as (url, results), httpx.Client(timeout=WAIT) as client:
        response = client.post(url + "/api/chat/complete", json={"prompt": PROMPT})
        refused = client.post(url + "/api/chat/complete", json={"prompt": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["text"] == fake.text_for(PROMPT)
    assert body["finish_reason"] == "stop" and body["error"] is None
    assert refused.status_code == 422
    assert [r.reason for r in results] == ["completed"]


def _ask_in_chromium(url: str, route: Any = None) -> tuple[str, dict[str, str], list[str]]:
    with launch_chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        if route is not None:
            page.route("**/api/chat", route)
        page.goto(url + "/")
        page.fill("#prompt", PROMPT)
        page.press("#prompt", "Enter")
        page.wait_for_selector(".assistant[data-status=done]", timeout=60_000)
        page.wait_for_function("document.body.dataset.state === 'idle'", timeout=30_000)
        answer = page.locator(".assistant[data-status=done]")
        text = answer.text_content() or ""
        data = page.evaluate("(el) => ({...el.dataset})", answer.element_handle())
    return text, data, errors


@pytest.mark.browser
def test_flask_example_page_falls_back_to_json_on_a_network_error() -> None:
    fake = FakeLLM(delay=0)
    with serve_example(fake) as (url, _):
        text, data, errors = _ask_in_chromium(url, route=lambda route: route.abort("failed"))
    assert text == fake.text_for(PROMPT)
    assert data["via"] == "fallback"
    assert errors == []


@pytest.mark.browser
def test_flask_example_page_falls_back_to_json_behind_a_buffering_proxy() -> None:
    fake = FakeLLM(delay=0.03)  # ~3 s of answer: nothing reaches the page for that long
    with serve_example(fake, wrap=BufferingProxy, first_event_timeout=1.0) as (url, results):
        text, data, errors = _ask_in_chromium(url)
    assert text == fake.text_for(PROMPT)
    assert data["via"] == "fallback"
    assert errors == []
    assert "completed" in [r.reason for r in results]  # the JSON answer's own hook


class UnreadableFirstEvent:
    """WSGI middleware: the stream of ``/api/chat`` starts with an event whose data is not
    JSON, which the page's handler throws on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = self.app(environ, start_response)
        if environ["PATH_INFO"] != "/api/chat":
            return body

        def with_it() -> Iterator[bytes]:
            try:
                yield b"data: not json\n\n"
                yield from body
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

        return with_it()


@pytest.mark.browser
def test_flask_example_page_ends_a_stream_it_cannot_read_before_falling_back() -> None:
    # Found in review: the fallback asked again while the first request went on generating.
    fake = FakeLLM(delay=0.03)  # ~3 s of answer
    with serve_example(fake, wrap=UnreadableFirstEvent) as (url, results):
        text, data, errors = _ask_in_chromium(url)
        deadline = time.monotonic() + WAIT
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert text == fake.text_for(PROMPT)
    assert data["via"] == "fallback"
    assert errors == []
    # The stream's hook (disconnected: the page ended it) and the JSON answer's (completed).
    assert sorted(r.reason for r in results) == ["completed", "disconnected"]


def test_the_flask_response_made_outside_flask_names_the_module_to_use() -> None:
    # Found in review: returned from a FastAPI view, it failed with Flask's "Working outside
    # of application context", which says nothing of sse_llm.fastapi.
    from sse_llm.flask import SSEResponse

    with pytest.raises(RuntimeError, match=r"sse_llm\.fastapi\.SSEResponse"):
        SSEResponse(["x"])


def test_the_openai_sdk_reads_a_flask_stream_that_opens_with_a_comment() -> None:
    """Flask sends the opening comment before the format's first chunk (its first chunk
    leaves before the stream starts); the OpenAI SDK, a client of ``OpenAIChatFormat``, skips
    it as WHATWG's parser does and reads the same answer."""
    app = Flask(__name__)
    answer = "안녕하세요, Flask에서 온 답변입니다."

    @app.post("/v1/chat/completions")
    def completions() -> SSEResponse:
        return SSEResponse(FakeLLM(answer, delay=0).stream("hi"), format=OpenAIChatFormat())

    with run_werkzeug(app) as url, httpx.Client(timeout=WAIT) as http:
        with http.stream("POST", url + "/v1/chat/completions", json={}) as response:
            first = next(response.iter_raw())
        assert first.startswith(b":\n")
        client = openai.OpenAI(base_url=url + "/v1", api_key="t", max_retries=0)
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == answer
