"""The ASGI pump (EventStream): in-process with run_stream on asyncio and trio, and on a real
uvicorn where the point is the network (disconnects, slow clients, heartbeats on the wire)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import httpx_sse
import pytest
import uvloop
from sse_starlette import JSONServerSentEvent
from sse_starlette import ServerSentEvent as StarletteEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sse_llm import (
    Comment,
    ErrorEvent,
    EventStream,
    Finish,
    ProviderError,
    ReasoningDelta,
    ServerSentEvent,
    SSEDecoder,
    StreamResult,
    TextDelta,
    TextFormat,
    ToolCall,
    Usage,
)
from sse_llm._pump import first_failure
from sse_llm.formats import AISDKFormat, TypedJSONFormat
from sse_llm.starlette import SSEResponse
from sse_llm.testing import (
    DEFAULT_ANSWER,
    FakeLLM,
    StreamedResponse,
    StreamTimeoutError,
    run_stream,
    tokenize,
)
from tests.support.results import Results
from tests.support.servers import never_reading_client, run_uvicorn
from tests.support.upstream import Abort, UpstreamStream, partial_then_abort

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

SAFE_MESSAGE = "The answer could not be completed because of an internal error."
SHUTDOWN_MESSAGE = "The server is restarting. Please try again."
KOREAN = "안녕하세요! 한국어 텍스트와 이모지 🙂👍🏽 가 그대로 도착해야 합니다.\r\n끝."
#: What a stream's first body message is when it has nothing to send yet (a comment).
OPENING = b":\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def payloads(response: StreamedResponse) -> list[tuple[str, Any]]:
    return [(e.event or "message", json.loads(e.data)) for e in response.events]


def delta_text(events: list[ServerSentEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")


DONE_STOP = ("done", {"finish_reason": "stop", "raw_finish_reason": None, "usage": None})


# -- headers and the happy path ------------------------------------------------------------------


@pytest.mark.anyio
async def test_headers_are_exact() -> None:
    response = await run_stream(EventStream(["hi"], heartbeat=None))
    assert response.status == 200
    assert response.headers == {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }


@pytest.mark.anyio
async def test_extra_headers_and_status_are_sent() -> None:
    app = EventStream(["hi"], headers={"X-Request-Id": "abc"}, status_code=201)
    response = await run_stream(app)
    assert response.status == 201
    assert response.headers["x-request-id"] == "abc"
    assert "connection" not in response.headers


def test_connection_header_is_refused() -> None:
    # Connection is forbidden in HTTP/2 (RFC 9113 §8.2.2).
    with pytest.raises(ValueError):
        EventStream(["x"], headers={"Connection": "keep-alive"})


@pytest.mark.parametrize("options", [{"heartbeat": 0}, {"heartbeat": -1}, {"send_timeout": 0}])
def test_non_positive_intervals_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EventStream(["x"], **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_korean_text_arrives_intact_and_stream_completes() -> None:
    llm = FakeLLM(KOREAN, delay=0)
    results = Results()
    response = await run_stream(EventStream(llm.stream(), on_complete=results))
    assert response.complete
    assert delta_text(response.events) == KOREAN  # JSON keeps the CR too
    assert [e.event for e in response.events[:-1]] == ["delta"] * len(tokenize(KOREAN))
    assert payloads(response)[-1] == DONE_STOP
    result = results.one
    assert result.reason == "completed"
    assert result.text == KOREAN
    assert result.finish == Finish("stop")
    assert result.events_sent == len(tokenize(KOREAN))
    assert llm.closed == 1


@pytest.mark.anyio
async def test_empty_text_items_are_skipped() -> None:
    response = await run_stream(EventStream(["", "a", "", "b"], heartbeat=None))
    assert payloads(response) == [("delta", {"text": "a"}), ("delta", {"text": "b"}), DONE_STOP]


@pytest.mark.anyio
async def test_str_subclass_items_stream_as_text() -> None:
    # A str subclass (markupsafe.Markup, a StrEnum member) is still answer text.
    class Markup(str):
        pass

    response = await run_stream(EventStream([Markup("<b>hi</b>")], heartbeat=None))
    assert payloads(response) == [("delta", {"text": "<b>hi</b>"}), DONE_STOP]


# -- disconnects ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_disconnect_after_three_events_closes_source_and_reports_partial_text() -> None:
    llm = FakeLLM(delay=0.01)
    results = Results()
    response = await run_stream(
        EventStream(llm.stream("q"), on_complete=results), disconnect_after=3
    )
    assert response.disconnected and not response.complete
    assert len(response.events) == 3
    assert llm.closed == 1  # the source's finally ran
    result = results.one
    assert result.reason == "disconnected"
    received = delta_text(response.events)
    # The hook may also hold a token that was being sent when the client went away.
    assert result.text.startswith(received)
    assert llm.text_for("q").startswith(result.text)


@pytest.mark.anyio
async def test_disconnect_after_the_last_event_is_no_disconnect() -> None:
    # run_stream reported both complete and disconnected when the count was reached by the
    # body's last message (found in review).
    response = await run_stream(EventStream(_words("a", "b")), disconnect_after=3)
    assert [e.event for e in response.events] == ["delta", "delta", "done"]
    assert response.complete and not response.disconnected


@pytest.mark.anyio
async def test_disconnect_while_source_is_blocked_closes_it_within_a_second() -> None:
    closed: list[float] = []

    async def source() -> AsyncIterator[str]:
        try:
            for token in ["a", "b", "c"]:
                yield token
            await anyio.sleep(30)  # an LLM that stalls before its next token
            yield "never"
        finally:
            closed.append(anyio.current_time())

    results = Results()
    start = anyio.current_time()
    response = await run_stream(
        EventStream(source(), on_complete=results, heartbeat=None),
        disconnect_after=3,
        timeout=10,
    )
    assert len(response.events) == 3
    assert closed and closed[0] - start < 1.0
    assert anyio.current_time() - start < 1.0
    assert results.one.reason == "disconnected"
    assert results.one.text == "abc"


@pytest.mark.anyio
async def test_client_gone_before_the_headers_still_runs_the_hook_and_closes_the_source() -> None:
    # ASGI 2.4: send() raises an OSError once the client is gone, the response start included
    # (uvicorn returns silently instead; other servers raise). The hook must still run, and
    # the source (think: an SDK stream holding an open upstream connection) must be closed.
    upstream = UpstreamStream()

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise OSError("client went away")

    results = Results()
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with anyio.fail_after(5):
        await EventStream(upstream, on_complete=results)(scope, receive, send)
    assert results.one.reason == "disconnected"
    assert upstream.closed == 1


# -- which task produces (asyncio) ---------------------------------------------------------------
# Called as a plain ASGI app, the pump produces in the calling task and watches in a second one,
# as a hand-written ASGI loop does; under a framework (a route of a Starlette app: its router is
# in the scope, a middleware chain above it) the producer gets a task of its own, so that a paced
# event does not resume the whole chain. Both must end a stream the same way.

ROUTED = [False, True]  # an EventStream called as a plain ASGI app / an SSEResponse in a route


class _Channel:
    """An ASGI channel that counts receive() calls and can be told the client left."""

    def __init__(self) -> None:
        self.receives = 0
        self.gone = asyncio.Event()
        self.body: list[bytes] = []
        self.complete = False

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if self.receives == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.body.append(message["body"])
            if not message.get("more_body", False):
                self.complete = True
                self.gone.set()  # as uvicorn: a pending receive() says http.disconnect


def _request(
    source: AsyncIterator[str], routed: bool, channel: _Channel, **options: Any
) -> Callable[[], Awaitable[None]]:
    """The request that streams ``source`` to ``channel``: an ``EventStream`` called as a
    plain ASGI app, or an ``SSEResponse`` returned by a route of a real Starlette app."""
    app: Any
    if routed:

        async def endpoint(request: Request) -> SSEResponse:
            return SSEResponse(source, format=TextFormat(), **options)

        app = Starlette(routes=[Route("/", endpoint)])
    else:
        app = EventStream(source, format=TextFormat(), **options)
    scope = _request_scope()

    async def request() -> None:
        await app(scope, channel.receive, channel.send)

    return request


def _request_scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
async def test_the_producer_runs_in_the_calling_task_only_without_a_framework_in_front(
    routed: bool,
) -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    async def source() -> AsyncIterator[str]:
        tasks.append(asyncio.current_task())
        yield "a"
        yield "b"

    channel = _Channel()
    caller = asyncio.current_task()
    await _request(source(), routed, channel)()
    assert channel.complete
    # The opening comment first: the headers leave at once (see test_the_stream_opens...).
    assert b"".join(channel.body).startswith(OPENING + b"data: a\n\ndata: b\n\nevent: done\n")
    assert (tasks == [caller]) is not routed
    if not routed:
        # The source never waited: the stream ended before the watcher first ran.
        assert channel.receives == 0


async def _a_then_thinking(closed: asyncio.Event) -> AsyncIterator[str]:
    try:
        yield "a"
        await asyncio.sleep(30)  # the model thinks
        yield "never"
    finally:
        closed.set()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
async def test_the_stream_opens_with_a_comment_while_the_model_thinks(routed: bool) -> None:
    # The ASGI HTTP spec lets a server hold the status line and headers until the first body
    # message (daphne does); nginx speaking HTTP/2 over TLS holds them until the first body
    # byte, so an empty first message reached no client (tests/test_nginx_proxy.py).
    async def thinking() -> AsyncIterator[str]:
        await asyncio.sleep(0.3)
        yield "a"

    channel = _Channel()
    async with asyncio.timeout(5):
        request = asyncio.ensure_future(_request(thinking(), routed, channel)())
        await asyncio.sleep(0.1)
        assert channel.body == [OPENING]  # at once, before the model's first token
        await request
    assert channel.body[:2] == [OPENING, b"data: a\n\n"]


def _thinking_request(
    routed: bool, **options: Any
) -> tuple[asyncio.Event, _Channel, Results, Callable[[], Awaitable[None]]]:
    """A stream of "a" then a model that thinks, and the request that serves it:
    (source closed, channel, hook results, request)."""
    closed = asyncio.Event()
    channel = _Channel()
    results = Results()
    request = _request(_a_then_thinking(closed), routed, channel, on_complete=results, **options)
    return closed, channel, results, request


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
async def test_a_disconnect_ends_the_stream_in_either_task_and_leaves_no_cancel_behind(
    routed: bool,
) -> None:
    closed, channel, results, request = _thinking_request(routed)
    caller = asyncio.current_task()
    assert caller is not None
    asyncio.get_running_loop().call_later(0.05, channel.gone.set)
    async with asyncio.timeout(5):
        await request()
    assert closed.is_set() and not channel.complete
    assert results.one.reason == "disconnected" and results.one.text == "a"
    assert caller.cancelling() == 0  # the pump's own cancel was taken back


class _TimerCountingLoop(asyncio.SelectorEventLoop):
    """asyncio's own loop, noting the timers the pump's watcher makes (``call_later`` goes
    through ``call_at``)."""

    def __init__(self) -> None:
        super().__init__()
        self.watch_timers: list[asyncio.TimerHandle] = []

    def call_at(self, when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, **kwargs)
        if getattr(callback, "__name__", "") == "_time_out":
            self.watch_timers.append(handle)
        return handle


@pytest.mark.parametrize("routed", ROUTED)
@pytest.mark.parametrize("heartbeat", [15.0, 0.1])
def test_the_watcher_makes_one_timer_per_wait_not_one_per_wake_up(
    routed: bool, heartbeat: float
) -> None:
    # The watcher's first receive() is the request body, a wake-up that means nothing. A
    # timer cancelled for it would stay in asyncio's heap (with a copy of the context) for
    # the heartbeat's 15 s: one more per open stream.
    async def main() -> _Channel:
        closed, channel, results, request = _thinking_request(routed, heartbeat=heartbeat)
        asyncio.get_running_loop().call_later(0.35, channel.gone.set)
        async with asyncio.timeout(5):
            await request()
        assert closed.is_set() and results.one.reason == "disconnected"
        return channel

    with asyncio.Runner(loop_factory=_TimerCountingLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, _TimerCountingLoop)
        channel = runner.run(main())
    assert channel.receives >= 2  # the request body, then the disconnect
    assert channel.body[0] == OPENING  # sent at once, not by the watcher: no timer of its own
    heartbeats = sum(body.startswith(b":") for body in channel.body[1:])
    assert (heartbeats == 0) if heartbeat == 15.0 else (heartbeats >= 1)
    # One timer per heartbeat waited for: each went off, but the last, which the end cancelled.
    assert len(loop.watch_timers) == heartbeats + 1
    *went_off, last = loop.watch_timers
    assert not any(timer.cancelled() for timer in went_off) and last.cancelled()


class _UploadingChannel(_Channel):
    """A client still sending its request body: after each wake-up of the watcher, the next
    ``receive()`` returns a chunk the server had buffered, at once."""

    def __init__(self) -> None:
        super().__init__()
        self.buffered = True

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if self.buffered:
            self.buffered = False
            return {"type": "http.request", "body": b"x", "more_body": True}
        try:
            await self.gone.wait()
        except asyncio.CancelledError:
            self.buffered = True
            raise
        return {"type": "http.disconnect"}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_heartbeats_every_few_milliseconds_to_a_client_still_uploading(loop: str) -> None:
    # uvloop's timers go off up to a millisecond early, and its call_later() returns a plain
    # call_soon() handle (no `when`) for under half a millisecond: with a heartbeat of a few
    # milliseconds the watcher gets such handles, and a receive() that returns at once makes
    # it look at one again.
    async def main() -> tuple[_UploadingChannel, Results]:
        channel = _UploadingChannel()
        results = Results()
        closed = asyncio.Event()
        app = EventStream(
            _a_then_thinking(closed), format=TextFormat(), heartbeat=0.0023, on_complete=results
        )
        asyncio.get_running_loop().call_later(1.0, channel.gone.set)
        async with asyncio.timeout(5):
            await app(_request_scope(), channel.receive, channel.send)
        assert closed.is_set()
        return channel, results

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        channel, results = runner.run(main())
    assert results.one.reason == "disconnected" and results.one.error is None
    assert sum(body.startswith(b":") for body in channel.body) > 50  # ~400 in that second


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
async def test_a_server_that_cancels_the_request_still_gets_the_shutdown_end_and_the_hook(
    routed: bool,
) -> None:
    closed, channel, results, request = _thinking_request(routed)
    task = asyncio.ensure_future(request())
    await asyncio.sleep(0.05)
    task.cancel()  # what uvicorn does to its request tasks past the graceful timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    assert results.one.reason == "shutdown" and results.one.text == "a"
    events = [
        e for e in SSEDecoder().feed(b"".join(channel.body)) if isinstance(e, ServerSentEvent)
    ]
    assert [(e.event, e.data) for e in events[:1]] == [("message", "a")]
    assert events[-1].event == "error"
    assert json.loads(events[-1].data) == {"message": SHUTDOWN_MESSAGE, "code": "shutdown"}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
async def test_a_receive_that_fails_ends_the_stream_and_reaches_the_caller(routed: bool) -> None:
    closed, channel, results, request = _thinking_request(routed)

    async def failing_receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        raise RuntimeError("the server's receive failed")

    channel.receive = failing_receive  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="receive failed") as caught:
            await request()
    assert closed.is_set()  # the source did not go on with nothing watching the client
    assert results.one.reason == "error" and results.one.text == "a"
    # No frame the exception passed through keeps it: that would be a cycle (the exception,
    # its traceback, the frame) that only the cyclic collector frees.
    keeping = [
        frame.f_code.co_name
        for frame, _ in traceback.walk_tb(caught.value.__traceback__)
        if any(value is caught.value for value in frame.f_locals.values())
    ]
    assert keeping == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("receive_fails", [False, True])
@pytest.mark.parametrize("routed", ROUTED)
async def test_a_send_that_fails_ends_the_request_at_once_and_loses_no_exception(
    routed: bool, receive_fails: bool
) -> None:
    """A transport that fails otherwise than with ``OSError`` is a bug to see: it reaches the
    caller at once (not when the client leaves), and a failure of ``receive`` meanwhile is not
    left to asyncio's "exception was never retrieved"."""
    closed = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        try:
            yield "a"
            await asyncio.sleep(0.02)
            yield "b"
            await asyncio.sleep(30)  # the model thinks
        finally:
            await asyncio.sleep(0.1)  # an SDK stream closing its upstream response
            closed.set()

    channel = _Channel()
    results = Results()
    request = _request(source(), routed, channel, on_complete=results)
    real_send = channel.send

    async def failing_send(message: dict[str, Any]) -> None:
        if b"b" in message.get("body", b""):  # the send of "b"
            raise RuntimeError("the server's send failed")
        await real_send(message)

    async def receive() -> dict[str, Any]:
        if receive_fails:
            await asyncio.sleep(0.05)
            raise RuntimeError("the server's receive failed")
        await asyncio.sleep(60)  # a client that stays
        return {"type": "http.disconnect"}

    channel.send = failing_send  # type: ignore[method-assign]
    channel.receive = receive  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    unretrieved: list[str] = []
    loop.set_exception_handler(lambda _, context: unretrieved.append(context["message"]))
    try:
        with anyio.fail_after(5):
            # Either failure may be the one raised; the source thinks for 30 s and the client
            # stays for 60: only an end that comes at once gets here in time.
            with pytest.raises(RuntimeError, match=r"the server's (send|receive) failed"):
                await request()
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert closed.is_set()
    assert results.one.reason == "error" and results.one.text == "ab"  # "b" was written
    assert unretrieved == []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("with_shutdown", [False, True], ids=["tasks", "shutdown-event"])
async def test_a_failing_send_reaches_the_caller_as_itself_on_every_path(
    with_shutdown: bool,
) -> None:
    """On asyncio the pump runs its two sides in plain tasks; on trio, or with a ``shutdown``
    event to wait for, in an anyio task group. The caller gets the same exception either way,
    not an exception group around it, and the hook the same result."""

    async def source() -> AsyncIterator[str]:
        yield "a"
        await anyio.sleep(0.01)
        yield "b"
        await anyio.sleep(30)  # the model thinks

    results = Results()
    options: dict[str, Any] = {"on_complete": results}
    if with_shutdown:
        options["shutdown"] = anyio.Event()

    async def send(message: dict[str, Any]) -> None:
        if b"b" in message.get("body", b""):  # the send of "b"
            raise RuntimeError("the server's send failed")

    async def receive() -> dict[str, Any]:
        await anyio.sleep(60)  # a client that stays
        return {"type": "http.disconnect"}

    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match="the server's send failed") as raised:
            await EventStream(source(), **options)({"type": "http"}, receive, send)
    # As raised by the send: no group chained to it either.
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert results.one.reason == "error" and results.one.text == "ab"


def test_a_task_groups_failure_is_its_first_exception_that_is_not_a_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the pump raises from its task group (trio, or ``shutdown=``): a cancellation
    next to a real failure (an outer scope cancelled while the transport failed) must not
    hide that failure; a group of cancellations only is left to the scope that owns them."""
    cancel = asyncio.CancelledError
    failure, second = RuntimeError("the transport failed"), ValueError("and again")
    group = BaseExceptionGroup("", [cancel(), failure, cancel()])
    assert first_failure(group, cancel) is failure
    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        assert first_failure(BaseExceptionGroup("", [failure, cancel(), second]), cancel) is failure
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [second]
    assert first_failure(BaseExceptionGroup("", [cancel(), cancel()]), cancel) is None
    interrupt = KeyboardInterrupt()
    assert first_failure(BaseExceptionGroup("", [cancel(), interrupt]), cancel) is interrupt


class _OnlyAnext:
    """An async iterator with ``__anext__`` and no ``__aiter__``: ``async for`` over the
    iterable that returns it works in Python, so it must work as a source too."""

    def __init__(self, items: list[str]) -> None:
        self.items = items

    async def __anext__(self) -> str:
        if not self.items:
            raise StopAsyncIteration
        await anyio.lowlevel.checkpoint()
        return self.items.pop(0)


class _Iterable:
    def __init__(self, items: list[str]) -> None:
        self.items = items

    def __aiter__(self) -> _OnlyAnext:
        return _OnlyAnext(list(self.items))


@pytest.mark.anyio
async def test_an_iterable_whose_iterator_has_only_anext_streams() -> None:
    source = _Iterable(["a", "b", "c"])
    async for token in source:  # what Python itself accepts
        assert token in "abc"
    results = Results()
    response = await run_stream(EventStream(source, on_complete=results))
    assert response.complete
    assert delta_text(response.events) == "abc"
    assert (results.one.reason, results.one.text) == ("completed", "abc")


# -- heartbeats ------------------------------------------------------------------------------------


async def _words(*words: str) -> AsyncIterator[str]:
    for word in words:
        yield word


async def _silent_between(first: Any, seconds: float, last: Any) -> AsyncIterator[Any]:
    yield first
    await anyio.sleep(seconds)
    yield last


@pytest.mark.anyio
async def test_heartbeat_comments_fill_a_silent_source_without_spurious_events() -> None:
    response = await run_stream(
        EventStream(_silent_between("a", 2.5, "b"), heartbeat=1), timeout=15
    )
    assert len(response.comments) >= 3  # the opening comment, then 2 or more heartbeats
    assert all(c == Comment("") for c in response.comments)
    assert payloads(response) == [("delta", {"text": "a"}), ("delta", {"text": "b"}), DONE_STOP]
    kinds = ["c" if isinstance(i, Comment) else "e" for i in response.items]
    # The opening comment, "a", heartbeats only during the silence, then "b" and done.
    assert kinds[:3] == ["c", "e", "c"] and kinds[-2:] == ["e", "e"]


@pytest.mark.anyio
@pytest.mark.parametrize("send_timeout", [30.0, None])
async def test_no_heartbeat_sends_none_and_does_not_busy_loop(send_timeout: float | None) -> None:
    cpu_before = time.process_time()
    response = await run_stream(
        EventStream(_silent_between("a", 1.0, "b"), heartbeat=None, send_timeout=send_timeout),
        timeout=10,
    )
    cpu = time.process_time() - cpu_before
    kinds = ["c" if isinstance(i, Comment) else "e" for i in response.items]
    assert kinds == ["c", "e", "e", "e"]  # the opening comment alone: no heartbeat
    assert payloads(response)[:2] == [("delta", {"text": "a"}), ("delta", {"text": "b"})]
    # A watcher spinning through the 1 s silence would burn about 1 s of CPU.
    assert cpu < 0.5, f"{cpu:.2f} s of CPU for a 1 s silent stream"


def _slow_first_body_send(app: ASGIApp, delay: float) -> ASGIApp:
    """A client that is slow to take the first body chunk (a full socket buffer)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        slowed = False

        async def slow_send(message: Any) -> None:
            nonlocal slowed
            if message["type"] == "http.response.body" and not slowed:
                slowed = True
                await anyio.sleep(delay)
            await send(message)

        await app(scope, receive, slow_send)

    return wrapped


@pytest.mark.anyio
async def test_heartbeats_resume_after_a_slow_send() -> None:
    # The watcher must not sleep until send_timeout just because it once saw a send in
    # progress: once that send ends, a silent source still needs its heartbeats.
    app = EventStream(_silent_between("a", 2.0, "b"), heartbeat=0.3, send_timeout=10)
    response = await run_stream(_slow_first_body_send(app, 0.5), timeout=15)
    assert payloads(response)[:2] == [("delta", {"text": "a"}), ("delta", {"text": "b"})]
    assert len(response.comments) >= 3, response.items


# -- sends that take long, a source slow to close -----------------------------------------------


class _SlowToClose:
    """An SDK-like stream: one token, then it waits; closing it takes 10 s (a stuck upstream
    connection, a ``finally`` that writes to a slow database)."""

    def __init__(self) -> None:
        self.gave = False

    def __aiter__(self) -> _SlowToClose:
        return self

    async def __anext__(self) -> str:
        if not self.gave:
            self.gave = True
            return "a"
        await anyio.sleep(30)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await anyio.sleep(10)


@pytest.mark.anyio
async def test_a_source_slow_to_close_is_left_after_close_timeout_and_the_hook_gets_it_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found in review: the close deadline's TimeoutError left the request as an exception
    # (asyncio) and the hook was told "completed" with no text.
    results = Results()
    app = EventStream(_SlowToClose(), on_complete=results, close_timeout=0.2, heartbeat=None)
    start = anyio.current_time()
    with caplog.at_level(logging.WARNING, logger="sse_llm"):
        response = await run_stream(app, disconnect_after=1, timeout=5)
    assert response.disconnected and payloads(response) == [("delta", {"text": "a"})]
    assert anyio.current_time() - start < 2
    assert results.one.reason == "disconnected" and results.one.text == "a"
    assert "close_timeout (0.2 s)" in caplog.text


def _counting_sends(app: ASGIApp, in_flight: list[int], slow_heartbeat: float) -> ASGIApp:
    """Every body send takes a turn of the loop; the first heartbeat takes ``slow_heartbeat``
    seconds (a client slow to read). ``in_flight`` gets the number of sends under way as each
    one starts."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        running = 0
        slowed = False

        async def counting_send(message: Any) -> None:
            nonlocal running, slowed
            if message["type"] != "http.response.body":
                await send(message)
                return
            running += 1
            in_flight.append(running)
            try:
                if message["body"].startswith(b":") and not slowed:
                    slowed = True
                    await anyio.sleep(slow_heartbeat)
                await anyio.sleep(0.01)
                await send(message)
            finally:
                running -= 1

        await app(scope, receive, counting_send)

    return wrapped


@pytest.mark.anyio
async def test_a_token_waits_for_every_heartbeat_under_way_not_only_the_first() -> None:
    # Found in review: a heartbeat slower than the heartbeat interval is followed at once by
    # the next one; a token that waited for the first went out during the second.
    in_flight: list[int] = []
    app = EventStream(_silent_between("a", 0.15, "b"), heartbeat=0.1, send_timeout=10)
    response = await run_stream(_counting_sends(app, in_flight, 0.3), timeout=10)
    assert delta_text(response.events) == "ab"
    assert len(response.comments) >= 2  # the slow heartbeat and the one right after it
    assert max(in_flight) == 1, in_flight


def _stuck_at(app: ASGIApp, stuck: Callable[[Any], bool]) -> ASGIApp:
    """A client that stops reading at the first body message ``stuck`` picks."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def stalling_send(message: Any) -> None:
            if message["type"] == "http.response.body" and stuck(message):
                await anyio.sleep(30)
            await send(message)

        await app(scope, receive, stalling_send)

    return wrapped


@pytest.mark.anyio
async def test_a_last_send_that_times_out_is_reported_as_a_timeout() -> None:
    # Found in review: the source had run out, so the hook was told "completed" although
    # the end of the stream never reached the client.
    results = Results()
    app = EventStream(_words("a", "b"), on_complete=results, send_timeout=0.2, heartbeat=None)
    start = anyio.current_time()
    response = await run_stream(_stuck_at(app, lambda m: not m["more_body"]), timeout=5)
    assert delta_text(response.events) == "ab" and not response.complete
    assert anyio.current_time() - start < 2
    assert results.one.reason == "timeout" and results.one.text == "ab"


@pytest.mark.anyio
async def test_the_first_send_is_timed_out_like_the_others() -> None:
    # The AI SDK format writes its start parts before the first token: that send too is
    # bounded by send_timeout (found in review: it waited for as long as the client did).
    results = Results()
    app = EventStream(
        _words("a"), format=AISDKFormat(), on_complete=results, send_timeout=0.2, heartbeat=None
    )
    start = anyio.current_time()
    await run_stream(_stuck_at(app, lambda m: True), timeout=5)
    assert anyio.current_time() - start < 2
    assert results.one.reason == "timeout" and results.one.events_sent == 0


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_receive_that_swallows_the_watchers_timer_does_not_fail_the_request() -> None:
    # A server whose receive() catches the cancel the watcher's timer sends (none of the
    # shipped ones does): the request still ends normally once the stream completes.
    channel = _Channel()
    swallowed = 0
    original = channel.receive

    async def swallowing_receive() -> dict[str, Any]:
        nonlocal swallowed
        if channel.receives == 1 and not swallowed:
            channel.receives += 1
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                swallowed += 1
                return {"type": "http.request", "body": b"", "more_body": False}
        return await original()

    channel.receive = swallowing_receive  # type: ignore[method-assign]
    results = Results()
    source = _silent_between("a", 0.3, "b")
    request = _request(source, True, channel, on_complete=results, heartbeat=0.1)
    async with asyncio.timeout(5):
        await request()
    assert swallowed == 1
    assert channel.complete and results.one.reason == "completed"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_mid_stream_sends_safe_error_and_ends_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = FakeLLM("one two three four five six", delay=0, fail_after=3)
    results = Results()
    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        response = await run_stream(EventStream(llm.stream(), on_complete=results))
    assert response.complete  # more_body False: the response ended cleanly
    last = response.events[-1]
    assert last.event == "error"
    assert json.loads(last.data) == {"message": SAFE_MESSAGE, "code": "internal_error"}
    assert [e.event for e in response.events] == ["delta", "delta", "delta", "error"]
    assert b"hunter2" not in response.body
    assert b"Traceback" not in response.body and b"RuntimeError" not in response.body
    result = results.one
    assert result.reason == "error"
    assert result.text == "".join(tokenize("one two three four five six")[:3])
    assert isinstance(result.error, RuntimeError)
    assert llm.closed == 1
    # The operator gets the real exception in the log.
    logged = [r for r in caplog.records if r.name == "sse_llm" and r.exc_info]
    assert logged and "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]


@pytest.mark.anyio
async def test_provider_error_keeps_provider_message() -> None:
    async def source() -> AsyncIterator[str]:
        yield "partial"
        raise ProviderError("Rate limit reached for model", code="rate_limit_exceeded")

    results = Results()
    response = await run_stream(EventStream(source(), on_complete=results))
    assert payloads(response) == [
        ("delta", {"text": "partial"}),
        ("error", {"message": "Rate limit reached for model", "code": "rate_limit_exceeded"}),
    ]
    assert response.complete
    assert results.one.reason == "error"
    assert results.one.text == "partial"


@pytest.mark.anyio
async def test_stream_error_event_is_the_last_event() -> None:
    consumed: list[str] = []

    async def source() -> AsyncIterator[Any]:
        yield "a"
        yield ErrorEvent("Overloaded", "overloaded_error")
        consumed.append("after")
        yield "b"

    results = Results()
    response = await run_stream(EventStream(source(), on_complete=results))
    assert payloads(response) == [
        ("delta", {"text": "a"}),
        ("error", {"message": "Overloaded", "code": "overloaded_error"}),
    ]
    assert response.complete
    assert consumed == []
    assert results.one.reason == "error"
    assert results.one.error == ErrorEvent("Overloaded", "overloaded_error")


@pytest.mark.anyio
@pytest.mark.parametrize("item", [object(), 42, b"bytes"], ids=["object", "int", "bytes"])
async def test_unsupported_item_becomes_error_event_not_crash(item: object) -> None:
    results = Results()
    response = await run_stream(EventStream(["ok", item, "never"], on_complete=results))
    assert payloads(response) == [
        ("delta", {"text": "ok"}),
        ("error", {"message": SAFE_MESSAGE, "code": "internal_error"}),
    ]
    assert response.complete
    assert results.one.reason == "error"
    assert isinstance(results.one.error, TypeError)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("routed", ROUTED)
@pytest.mark.parametrize("task_group", [False, True], ids=["asyncio-tasks", "task-group"])
async def test_a_base_exception_from_the_source_ends_the_stream_as_an_error_then_goes_on(
    routed: bool, task_group: bool
) -> None:
    # Not "shutdown" with no error (the server did not stop): the client gets the error event,
    # the hook the text and the exception, the source is closed; then it is raised as it is.
    closed: list[bool] = []

    channel = _Channel()
    results = Results()
    options: dict[str, Any] = {"shutdown": anyio.Event()} if task_group else {}
    with anyio.fail_after(5), pytest.raises(Abort):
        await _request(
            partial_then_abort(closed), routed, channel, on_complete=results, **options
        )()
    error = json.dumps({"message": SAFE_MESSAGE, "code": "internal_error"}, separators=(",", ":"))
    assert b"".join(channel.body) == OPENING + b"data: partial\n\nevent: error\ndata: %s\n\n" % (
        error.encode()
    )
    assert channel.complete
    assert results.one.reason == "error" and results.one.text == "partial"
    assert isinstance(results.one.error, Abort)
    assert results.one.events_sent == 1  # counted once (the delta), as for an Exception
    assert closed == [True]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("task_group", [False, True], ids=["asyncio-tasks", "task-group"])
async def test_a_base_exception_to_a_client_that_stopped_reading_goes_on_after_close_timeout(
    task_group: bool,
) -> None:
    # The last event waits on a client that reads nothing more: bounded by close_timeout, as
    # any cut stream, and then the exception goes on (it was lost, or waited for ever).
    async def source() -> AsyncIterator[str]:
        yield "partial"
        raise Abort()

    sends = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal sends
        sends += 1
        if sends > 3:  # the start, its empty body message and the delta got through
            await asyncio.Event().wait()

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    results = Results()
    options: dict[str, Any] = {"shutdown": anyio.Event()} if task_group else {}
    app = EventStream(
        source(), on_complete=results, close_timeout=0.3, send_timeout=None, **options
    )
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(Abort):
        await app(_request_scope(), receive, send)
    assert time.monotonic() - started < 2
    assert results.one.reason == "error" and isinstance(results.one.error, Abort)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_source_s_own_nursery_cancelled_by_a_disconnect_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import trio

    async def source() -> AsyncIterator[str]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            yield "a"
            await trio.sleep_forever()

    results = Results()
    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        with trio.fail_after(5):
            response = await run_stream(
                EventStream(source(), on_complete=results), disconnect_after=1
            )
    assert not response.complete
    assert results.one.reason == "disconnected" and results.one.error is None
    assert not [r for r in caplog.records if r.name == "sse_llm"]


class _UnwritableUsage(Usage):
    """A usage whose numbers the JSON encoder refuses (a provider chunk parsed with NaN)."""


@pytest.mark.anyio
@pytest.mark.parametrize("format", [None, TypedJSONFormat()], ids=["named", "typed"])  # usage: done
async def test_an_end_that_cannot_be_written_becomes_an_error_event_and_the_hook_gets_it(
    format: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def source() -> AsyncIterator[Any]:
        yield "partial"
        yield Usage(input_tokens=3, output_tokens=float("nan"))  # type: ignore[arg-type]

    results = Results()
    options: dict[str, Any] = {} if format is None else {"format": format}
    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        response = await run_stream(EventStream(source(), on_complete=results, **options))
    assert response.complete
    last = [e for e in response.events if e.data != "[DONE]"][-1]
    assert SAFE_MESSAGE in last.data
    assert b"NaN" not in response.body
    assert results.one.reason == "error" and results.one.text == "partial"
    assert isinstance(results.one.error, ValueError)
    assert any("end failed" in r.getMessage() for r in caplog.records)
    if format is not None:  # the format's own ending follows its error event
        assert response.body.endswith(b"data: [DONE]\n\n")


@pytest.mark.anyio
async def test_a_hook_that_returns_a_value_is_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved: list[str] = []

    def save(result: StreamResult) -> int:  # returns the new row's id
        saved.append(result.text)
        return 42

    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        response = await run_stream(EventStream(["a", "b"], on_complete=save))
    assert response.complete and saved == ["ab"]
    assert not [r for r in caplog.records if r.name == "sse_llm"]


@pytest.mark.anyio
async def test_failing_on_complete_hook_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(result: StreamResult) -> None:
        raise RuntimeError("hook broke")

    with caplog.at_level(logging.ERROR, logger="sse_llm"):
        response = await run_stream(EventStream(["a"], on_complete=hook))
    assert response.complete
    assert any("on_complete" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_async_on_complete_hook_is_awaited() -> None:
    seen: list[str] = []

    async def hook(result: StreamResult) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(result.text)

    await run_stream(EventStream(["a", "b"], on_complete=hook))
    assert seen == ["ab"]


# -- shutdown --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_shutdown_event_ends_stream_with_shutdown_error() -> None:
    shutdown = anyio.Event()
    three_sent = anyio.Event()
    closed: list[bool] = []

    async def source() -> AsyncIterator[str]:
        try:
            for i in range(1000):
                if i == 3:
                    three_sent.set()
                yield f"t{i} "
                await anyio.sleep(0.02)
        finally:
            closed.append(True)

    results = Results()
    response: StreamedResponse | None = None

    async def drive() -> None:
        nonlocal response
        response = await run_stream(
            EventStream(source(), shutdown=shutdown, on_complete=results), timeout=10
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive)
        with anyio.fail_after(5):
            await three_sent.wait()
        shutdown.set()
    assert response is not None
    assert response.complete
    assert payloads(response)[-1] == (
        "error",
        {"message": SHUTDOWN_MESSAGE, "code": "shutdown"},
    )
    assert closed == [True]
    result = results.one
    assert result.reason == "shutdown"
    assert result.text == delta_text(response.events)


# -- sources ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_iterable_source_does_not_block_the_event_loop() -> None:
    closed: list[bool] = []

    def blocking_source() -> Iterator[str]:
        try:
            for token in ["slow ", "sync"]:
                time.sleep(0.6)  # a blocking SDK call
                yield token
        finally:
            closed.append(True)

    gaps: list[float] = []
    finished: dict[str, float] = {}
    slow_response: StreamedResponse | None = None

    async def ticker() -> None:
        last = anyio.current_time()
        while "slow" not in finished:
            await anyio.sleep(0.01)
            now = anyio.current_time()
            gaps.append(now - last)
            last = now

    async def slow() -> None:
        nonlocal slow_response
        slow_response = await run_stream(EventStream(blocking_source()), timeout=10)
        finished["slow"] = anyio.current_time()

    async def fast() -> None:
        await run_stream(EventStream(FakeLLM("quick answer", delay=0).stream()))
        finished["fast"] = anyio.current_time()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(slow)
        tg.start_soon(fast)
    assert slow_response is not None
    assert delta_text(slow_response.events) == "slow sync"
    assert finished["fast"] < finished["slow"]
    # Had next() run on the loop, the ticker would have stalled for 0.6 s at a time.
    assert max(gaps) < 0.3
    assert closed == [True]


@pytest.mark.anyio
async def test_sse_starlette_and_dict_items_pass_through_as_the_same_events() -> None:
    items: list[Any] = [
        StarletteEvent("a\nb\r\nc", event="update", id="1"),
        JSONServerSentEvent({"k": "한국어", "n": [1, 2]}, event="json"),
        StarletteEvent("with comment", comment="note"),
        {"data": "from dict", "event": "d", "id": "2", "retry": 1500},
        {"data": "x\ny"},
        {"comment": "just a comment"},
    ]
    reference = SSEDecoder()
    expected = reference.feed(
        b"".join(
            item.encode() if isinstance(item, StarletteEvent) else StarletteEvent(**item).encode()
            for item in items
        )
    )
    decoder = SSEDecoder()
    response = await run_stream(EventStream(items, heartbeat=None))
    got = decoder.feed(response.body)
    assert got[0] == Comment("")  # the opening comment
    assert got[1:-1] == expected  # then our own done event
    assert got[-1].event == "done"  # type: ignore[union-attr]
    assert decoder.retry == reference.retry == 1500


@pytest.mark.anyio
async def test_retry_only_sse_starlette_event_reaches_the_client() -> None:
    # sse-starlette writes "retry: 5000\r\n\r\n": no event, but the client's reconnection
    # delay changes. Passing it through must not drop the retry.
    decoder = SSEDecoder()
    response = await run_stream(
        EventStream([StarletteEvent(retry=5000), {"retry": 7000}, "x"], heartbeat=None)
    )
    events = decoder.feed(response.body)
    assert [e.event for e in events if isinstance(e, ServerSentEvent)] == ["delta", "done"]
    assert decoder.retry == 7000
    assert b"retry: 5000\n" in response.body


@pytest.mark.anyio
async def test_own_events_and_comments_are_sent_as_encoded() -> None:
    items = [ServerSentEvent("raw\ndata", event="custom", id="9", retry=10), Comment("note")]
    response = await run_stream(EventStream(items, heartbeat=None))
    assert response.body.startswith(
        OPENING + b"event: custom\nid: 9\nretry: 10\ndata: raw\ndata: data\n\n: note\n"
    )


@pytest.mark.anyio
async def test_llm_events_render_per_events_format() -> None:
    usage = Usage(input_tokens=9, output_tokens=12, total_tokens=21)
    call = ToolCall(0, "call_1", "get_weather", '{"city":"서울"}')
    items = [
        ReasoningDelta("thinking\r\n"),
        TextDelta("안녕"),
        "!",
        call,
        usage,
        Finish("length", "max_tokens"),
    ]
    results = Results()
    response = await run_stream(EventStream(items, on_complete=results))
    assert payloads(response) == [
        ("reasoning", {"text": "thinking\r\n"}),
        ("delta", {"text": "안녕"}),
        ("delta", {"text": "!"}),
        (
            "tool_call",
            {"index": 0, "id": "call_1", "name": "get_weather", "arguments": '{"city":"서울"}'},
        ),
        (
            "done",
            {
                "finish_reason": "length",
                "raw_finish_reason": "max_tokens",
                "usage": {"input_tokens": 9, "output_tokens": 12, "total_tokens": 21},
            },
        ),
    ]
    result = results.one
    assert result.reason == "completed"
    assert result.text == "안녕!"
    assert result.reasoning == "thinking\r\n"
    assert result.tool_calls == [call]
    assert result.usage == usage
    assert result.finish == Finish("length", "max_tokens")


@pytest.mark.anyio
async def test_text_format_sends_plain_data_events() -> None:
    items = ["a\nb", TextDelta("c"), ReasoningDelta("hidden"), "한🙂"]
    response = await run_stream(EventStream(items, format=TextFormat(), heartbeat=None))
    assert [(e.event, e.data) for e in response.events] == [
        ("message", "a\nb"),
        ("message", "c"),
        ("message", "한🙂"),
        ("done", '{"finish_reason":"stop"}'),
    ]
    assert b"hidden" not in response.body


@pytest.mark.anyio
async def test_text_format_error_event() -> None:
    llm = FakeLLM("a b c", delay=0, fail_after=1)
    response = await run_stream(EventStream(llm.stream(), format=TextFormat()))
    assert [e.event for e in response.events] == ["message", "error"]
    assert json.loads(response.events[-1].data) == {
        "message": SAFE_MESSAGE,
        "code": "internal_error",
    }


# -- run_stream's request scope -------------------------------------------------------------------

# What a browser or httpx sends for "한국어": its UTF-8 bytes, each percent-encoded.
KOREAN_QUERY_VALUE = "%ED%95%9C%EA%B5%AD%EC%96%B4"


async def _describe_request(request: Request) -> JSONResponse:
    """What a Starlette view sees of the request line (raw bytes shown as latin-1 text)."""
    return JSONResponse(
        {
            "path": request.scope["path"],
            "url_path": request.url.path,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query_string": request.scope["query_string"].decode("latin-1"),
            "query_params": dict(request.query_params),
            "path_params": request.path_params,
        }
    )


def _describing_app() -> Starlette:
    return Starlette(
        routes=[Route("/chat", _describe_request), Route("/문서/{name}", _describe_request)]
    )


async def _seen(target: str) -> dict[str, Any]:
    response = await run_stream(_describing_app(), target)
    assert response.status == 200, response.body
    assert response.complete
    seen: dict[str, Any] = json.loads(response.body)
    return seen


@pytest.mark.anyio
async def test_run_stream_percent_encodes_a_non_ascii_query_as_utf_8() -> None:
    seen = await _seen("/chat?q=한국어")
    assert seen["query_params"] == {"q": "한국어"}
    assert seen["query_string"] == f"q={KOREAN_QUERY_VALUE}"
    assert seen["query_string"].encode() == httpx.URL("http://127.0.0.1/chat?q=한국어").query
    assert (seen["path"], seen["raw_path"]) == ("/chat", "/chat")


@pytest.mark.anyio
async def test_run_stream_gives_a_non_ascii_path_decoded_and_raw_path_encoded() -> None:
    seen = await _seen("/문서/안녕 하세요?q=한국어")
    assert seen["path"] == seen["url_path"] == "/문서/안녕 하세요"
    assert seen["path_params"] == {"name": "안녕 하세요"}
    assert seen["raw_path"] == (
        "/%EB%AC%B8%EC%84%9C"  # 문서
        "/%EC%95%88%EB%85%95%20%ED%95%98%EC%84%B8%EC%9A%94"  # 안녕 하세요
    )
    assert seen["raw_path"].encode() == httpx.URL("http://127.0.0.1/문서/안녕 하세요").raw_path
    assert seen["query_params"] == {"q": "한국어"}


@pytest.mark.anyio
async def test_run_stream_keeps_an_already_encoded_target_as_sent() -> None:
    encoded_query = f"q={KOREAN_QUERY_VALUE}&plus=a%2Bb+c&percent=100%25"
    seen = await _seen(f"/%EB%AC%B8%EC%84%9C/%ED%8C%8C%EC%9D%BC?{encoded_query}")
    assert seen["raw_path"] == "/%EB%AC%B8%EC%84%9C/%ED%8C%8C%EC%9D%BC"
    assert seen["path"] == "/문서/파일"
    assert seen["query_string"] == encoded_query
    assert seen["query_params"] == {"q": "한국어", "plus": "a+b c", "percent": "100%"}


@pytest.mark.anyio
async def test_run_stream_encodes_only_the_unencoded_part_of_a_mixed_query() -> None:
    seen = await _seen(f"/chat?q=한국어%20{KOREAN_QUERY_VALUE}")
    assert seen["query_string"] == f"q={KOREAN_QUERY_VALUE}%20{KOREAN_QUERY_VALUE}"
    assert seen["query_params"] == {"q": "한국어 한국어"}


@pytest.mark.anyio
async def test_run_stream_s_timeout_disconnects_first_and_keeps_what_arrived() -> None:
    results = Results()
    closed = anyio.Event()

    async def two_then_silence() -> AsyncIterator[str]:
        try:
            yield "a"
            yield "b"
            await anyio.sleep_forever()
        finally:
            closed.set()

    with pytest.raises(StreamTimeoutError) as raised:
        await run_stream(EventStream(two_then_silence(), on_complete=results), timeout=0.3)
    assert closed.is_set()
    assert results.one.reason == "disconnected"  # as for a client that left, not a cancel
    response = raised.value.response
    assert [json.loads(e.data)["text"] for e in response.events] == ["a", "b"]
    assert response.disconnected and not response.complete


@pytest.mark.anyio
async def test_run_stream_s_timeout_is_a_timeout_also_when_the_app_raises_at_the_disconnect() -> (
    None
):
    # Found in review: Starlette's own StreamingResponse turns the send's OSError after the
    # driver's disconnect into ClientDisconnect, which came out instead of the timeout.
    from starlette.requests import ClientDisconnect
    from starlette.responses import StreamingResponse

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"data: x\n\n"
            await anyio.sleep(0.01)

    async def view(request: Request) -> StreamingResponse:
        return StreamingResponse(endless(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/", view)])
    with pytest.raises(StreamTimeoutError) as raised:
        await run_stream(app, timeout=0.3)
    assert raised.value.response.events  # what arrived
    cause = raised.value.__cause__
    assert cause is None or isinstance(cause, (ClientDisconnect, OSError))


@pytest.mark.anyio
async def test_run_stream_raises_what_the_app_raised_past_exception_as_it_is() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        await run_stream(app)


@pytest.mark.anyio
async def test_run_stream_can_leave_after_a_time_to_watch_a_silent_model_s_heartbeats() -> None:
    results = Results()
    silent = FakeLLM("late answer", first_token_delay=60)
    response = await run_stream(
        EventStream(silent.stream("hi"), heartbeat=0.05, on_complete=results),
        disconnect_after_seconds=0.5,
        timeout=5,
    )
    assert response.events == []
    assert len(response.comments) >= 5  # about 10 heartbeats in 0.5 s
    assert response.disconnected
    assert results.one.reason == "disconnected"


@pytest.mark.anyio
async def test_run_stream_sends_a_host_header_unless_given_one() -> None:
    async def host(request: Request) -> JSONResponse:
        return JSONResponse(request.headers.get("host"))

    app = Starlette(routes=[Route("/", host)])
    assert json.loads((await run_stream(app)).body) == "testserver"
    given = await run_stream(app, headers={"Host": "example.org"})
    assert json.loads(given.body) == "example.org"


# -- on a real uvicorn -----------------------------------------------------------------------------


class Router:
    """One uvicorn for the module; each test installs a fresh app factory under a path."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], ASGIApp]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.routes[scope["path"]]()(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Router, str]]:
    router = Router()
    with run_uvicorn(router) as base_url:
        yield router, base_url


def test_headers_on_the_wire(server: tuple[Router, str]) -> None:
    router, base = server
    router.routes["/headers"] = lambda: EventStream(["hi"])
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{base}/headers")
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "connection" not in response.headers
    assert "content-length" not in response.headers  # streamed, chunked
    assert delta_text(_events(response.content)) == "hi"


def _events(body: bytes) -> list[ServerSentEvent]:
    return [i for i in SSEDecoder().feed(body) if isinstance(i, ServerSentEvent)]


def test_korean_text_over_the_network_in_small_reads(server: tuple[Router, str]) -> None:
    router, base = server
    llm = FakeLLM(delay=0)
    router.routes["/korean"] = lambda: EventStream(llm.stream("질문"))
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=10) as client, client.stream("GET", f"{base}/korean") as r:
        for chunk in r.iter_raw(7):  # reads that cut through multi-byte characters
            events += [i for i in decoder.feed(chunk) if isinstance(i, ServerSentEvent)]
    assert delta_text(events) == DEFAULT_ANSWER.replace("{prompt}", "질문")
    assert events[-1].event == "done"


def test_client_disconnect_over_the_network(server: tuple[Router, str]) -> None:
    router, base = server
    llm = FakeLLM(delay=0.05)
    results = Results()
    router.routes["/disconnect"] = lambda: EventStream(llm.stream("q"), on_complete=results)
    received: list[ServerSentEvent] = []
    with (
        httpx.Client(timeout=10) as client,
        httpx_sse.connect_sse(client, "GET", f"{base}/disconnect") as source,
    ):
        for event in source.iter_sse():
            received.append(ServerSentEvent(event.data, event=event.event))
            if len(received) == 3:
                break
    result = results.wait(10)
    assert result.reason == "disconnected"
    assert llm.closed == 1
    assert result.text.startswith(delta_text(received))
    assert llm.text_for("q").startswith(result.text)


def test_heartbeats_on_the_wire_make_no_phantom_events_in_httpx_sse(
    server: tuple[Router, str],
) -> None:
    router, base = server
    router.routes["/heartbeat"] = lambda: EventStream(
        _silent_between(ServerSentEvent("first", id="1"), 2.5, "b"), heartbeat=1
    )
    chunks: list[bytes] = []
    with httpx.Client(timeout=10) as client, client.stream("GET", f"{base}/heartbeat") as r:
        chunks.extend(r.iter_raw())
    decoder = SSEDecoder()
    items = [item for chunk in chunks for item in decoder.feed(chunk)]
    assert sum(isinstance(i, Comment) for i in items) >= 2
    # httpx-sse, fed the same reads as they came off the socket: an id was seen, so a
    # heartbeat written as comment + blank line would show up here as an empty message.
    replay = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_ChunkStream(chunks)
    )
    events = list(httpx_sse.EventSource(replay).iter_sse())
    assert [(e.event, e.id) for e in events] == [("message", "1"), ("delta", "1"), ("done", "1")]
    assert [e.data for e in events][:2] == ["first", '{"text":"b"}']


class _ChunkStream(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def test_error_mid_stream_over_the_network_reads_to_the_end(server: tuple[Router, str]) -> None:
    router, base = server
    llm = FakeLLM("one two three four", delay=0, fail_after=2)
    results = Results()
    router.routes["/error"] = lambda: EventStream(llm.stream(), on_complete=results)
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{base}/error")  # raises if the body ends uncleanly
    events = _events(response.content)
    assert [e.event for e in events] == ["delta", "delta", "error"]
    assert json.loads(events[-1].data)["message"] == SAFE_MESSAGE
    assert b"hunter2" not in response.content
    assert results.wait().reason == "error"


def test_sync_source_does_not_block_other_requests(server: tuple[Router, str]) -> None:
    router, base = server

    def blocking() -> Iterator[str]:
        for token in ["a", "b"]:
            time.sleep(1.0)
            yield token

    router.routes["/blocking"] = lambda: EventStream(blocking())
    router.routes["/quick"] = lambda: EventStream(["quick"])
    slow_result: dict[str, Any] = {}

    def slow_request() -> None:
        with httpx.Client(timeout=10) as client:
            slow_result["body"] = client.get(f"{base}/blocking").content

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        time.sleep(0.2)  # the slow request is inside its first blocking next()
        start = time.monotonic()
        with httpx.Client(timeout=10) as client:
            quick = client.get(f"{base}/quick")
        quick_time = time.monotonic() - start
    finally:
        thread.join(10)
    assert delta_text(_events(quick.content)) == "quick"
    # Had next() run on the server's loop, the quick request would have waited >= 0.8 s.
    assert quick_time < 0.5, f"the quick request waited {quick_time:.2f} s"
    assert delta_text(_events(slow_result["body"])) == "ab"


def test_client_that_stops_reading_times_out(server: tuple[Router, str]) -> None:
    router, base = server
    closed = threading.Event()
    results = Results()

    async def flood() -> AsyncIterator[str]:
        try:
            for _ in range(2000):  # bounded: 2000 x 64 KiB, far beyond any socket buffer
                yield "x" * 65536
        finally:
            closed.set()

    router.routes["/flood"] = lambda: EventStream(
        flood(), send_timeout=0.5, heartbeat=None, on_complete=results
    )
    start = time.monotonic()
    with never_reading_client(base, "/flood"):
        result = results.wait(15)
        elapsed = time.monotonic() - start
    assert result.reason == "timeout"
    assert closed.is_set()
    assert result.events_sent < 2000
    assert elapsed < 10


def test_run_stream_builds_the_request_scope_uvicorn_builds_from_httpx(
    server: tuple[Router, str],
) -> None:
    """The same target sent by httpx to a real uvicorn, and given to run_stream: same scope."""
    router, base = server
    targets = [
        "/문서/안녕 하세요?q=한국어&plus=a%2Bb+c",
        f"/scope/%ED%8C%8C%EC%9D%BC?q=한국어%20{KOREAN_QUERY_VALUE}",
    ]
    seen_by: dict[str, list[tuple[Any, ...]]] = {"uvicorn": [], "run_stream": []}

    def recorder(key: str) -> ASGIApp:
        async def record(scope: Any, receive: Any, send: Any) -> None:
            seen_by[key].append((scope["path"], scope["raw_path"], scope["query_string"]))
            await EventStream(["ok"], heartbeat=None)(scope, receive, send)

        return record

    for decoded_path in ["/문서/안녕 하세요", "/scope/파일"]:
        router.routes[decoded_path] = lambda: recorder("uvicorn")
    with httpx.Client(timeout=10) as client:
        for target in targets:
            assert client.get(base + target).status_code == 200

    async def drive() -> None:
        for target in targets:
            assert (await run_stream(recorder("run_stream"), target)).complete

    anyio.run(drive)
    assert len(seen_by["uvicorn"]) == len(targets)
    assert seen_by["run_stream"] == seen_by["uvicorn"]


async def test_dict_fields_that_are_containers_are_refused_others_sent_as_text() -> None:
    # Found in review: a LangGraph update of a node named "data", "comment" or "id" went out
    # as the Python repr of the graph's state; a Decimal or UUID is sent as its text, as
    # sse-starlette sends it.
    import decimal
    import uuid

    from sse_llm import EventStream
    from sse_llm.testing import run_stream

    value = uuid.UUID(int=7)
    response = await run_stream(
        EventStream([{"event": "tick", "data": decimal.Decimal("1.50")}, {"data": value}])
    )
    assert [(e.event, e.data) for e in response.events][:2] == [
        ("tick", "1.50"),
        ("message", str(value)),
    ]
    for field in ("data", "comment", "id", "event"):
        response = await run_stream(EventStream([{field: {"messages": ["SECRET state"]}}]))
        assert "SECRET" not in response.body.decode(), field
        assert response.events[-1].event == "error"
