"""Test helpers: a deterministic fake LLM and a driver for endless ASGI streams.

Starlette's ``TestClient`` and httpx's ``ASGITransport`` read the whole body before returning,
so they hang on a stream that never ends (``TestClient.stream()`` reads as it comes since
Starlette 1.9, but has no timeout and cannot disconnect mid-stream). :func:`run_stream` calls
the ASGI app directly, decodes events as they come, can disconnect after N events or seconds,
and always stops by its timeout.
"""

from __future__ import annotations

import math
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote

import anyio

from ._decoder import SSEDecoder
from ._events import Comment, ServerSentEvent
from ._model import Citation, ToolActivity

__all__ = [
    "DEFAULT_ACTIVITY",
    "DEFAULT_ANSWER",
    "DEFAULT_SOURCES",
    "FakeLLM",
    "StreamTimeoutError",
    "StreamedResponse",
    "run_stream",
    "tokenize",
]

#: The fake model's answer when none is given: Markdown, Korean, emoji and a code block.
DEFAULT_ANSWER = (
    "안녕하세요! 저는 **sse-llm**의 내장 데모 모델입니다. 🙂\n\n"
    "You asked: *{prompt}*\n\n"
    "Server-Sent Events carry each token as it is generated:\n\n"
    "1. the server frames every token as an SSE event;\n"
    "2. the browser decodes UTF-8 with `stream: true`, so 한국어 survives split reads;\n"
    "3. a heartbeat keeps proxies from closing a quiet stream.\n\n"
    "```python\nasync for token in llm.stream(prompt):\n    yield token\n```\n\n"
    "Set `OPENAI_API_KEY` (and `OPENAI_BASE_URL`) to talk to a real model. 감사합니다!"
)

#: Sources for :data:`DEFAULT_ANSWER` (the demos pass them as ``FakeLLM(sources=...)``): the
#: specifications behind what the answer says, numbered as a search provider would.
DEFAULT_SOURCES: tuple[Citation, ...] = (
    Citation(
        "url",
        url="https://html.spec.whatwg.org/multipage/server-sent-events.html",
        title="HTML Standard — 9.2 Server-sent events",
        index=1,
    ),
    Citation(
        "url",
        url="https://encoding.spec.whatwg.org/#dom-textdecoder-decode",
        title="Encoding Standard — TextDecoder decode()",
        index=2,
    ),
    Citation(
        "url",
        url="https://developer.mozilla.org/en-US/docs/Web/API/Server-sent_events",
        title="Server-sent events - Web APIs | MDN",
        index=3,
    ),
)
#: The provider tool the demos' fake model "runs" before it answers: one web search.
DEFAULT_ACTIVITY: tuple[str, ...] = ("server-sent events streaming",)

_TOKEN = re.compile(r"\s*\S{1,6}|\s+")

# Characters left as they are when percent-encoding the request target: RFC 3986 pchar
# (unreserved, sub-delims, ":" and "@") and "/"; "?" too in the query. "%" is kept so that an
# existing %XX escape is not encoded a second time. Everything else, such as non-ASCII text
# and spaces, becomes %XX of its UTF-8 bytes, as browsers and httpx send it.
_PATH_SAFE = "/%!$&'()*+,;=:@"
_QUERY_SAFE = _PATH_SAFE + "?"


def tokenize(text: str) -> list[str]:
    """Split text into token-like pieces (at most six non-space characters each, with the
    whitespace before them) whose concatenation is exactly ``text``."""
    return _TOKEN.findall(text)


class FakeLLM:
    """A deterministic stand-in for a streaming model; the demos' default.

    Args:
        answer: the answer text, or a template with ``{prompt}``, or a callable
            ``prompt -> text``. Defaults to :data:`DEFAULT_ANSWER`.
        delay: seconds between tokens (default 0.02).
        first_token_delay: seconds before the first token ("thinking" time).
        fail_after: raise ``RuntimeError`` after this many tokens (to test error paths).
        activity: provider tools the model "runs" before it answers, as a provider reports
            them: a ``str`` is a web search for that query (a ``started``
            :class:`~sse_llm.ToolActivity`, ``tool_delay`` seconds later its ``finished`` one
            with ``"<n> results"``, n the number of ``sources``, ``"1 result"`` for one); a
            :class:`~sse_llm.ToolActivity` is yielded as given, followed by a ``tool_delay``
            pause if it is ``started``. See :data:`DEFAULT_ACTIVITY`.
        sources: what the answer cites, yielded after its last token: a
            :class:`~sse_llm.Citation` as given, a ``str`` as a URL citation numbered by its
            position (``index`` 1, 2 …). See :data:`DEFAULT_SOURCES`.
        tool_delay: seconds a provider tool "runs" (default 0.8).

    ``stream(prompt)`` returns an async iterator of tokens (``str``), with the activity and
    sources events around them; it works under asyncio and trio. ``closed`` counts streams
    whose ``finally`` ran (to test that disconnects close sources).
    """

    def __init__(
        self,
        answer: str | Callable[[str], str] = DEFAULT_ANSWER,
        *,
        delay: float = 0.02,
        first_token_delay: float = 0.0,
        fail_after: int | None = None,
        activity: Sequence[str | ToolActivity] = (),
        sources: Sequence[str | Citation] = (),
        tool_delay: float = 0.8,
    ) -> None:
        self.answer = answer
        self.delay = delay
        self.first_token_delay = first_token_delay
        self.fail_after = fail_after
        self.activity: list[ToolActivity] = []
        for number, item in enumerate(activity):
            if isinstance(item, str):
                started = ToolActivity(
                    f"fake_search_{number}", "web_search", "started", item, {"query": item}
                )
                results = f"{len(sources)} result{'' if len(sources) == 1 else 's'}"
                self.activity += [started, replace(started, status="finished", summary=results)]
            else:
                self.activity.append(item)
        self.sources: list[Citation] = [
            Citation("url", url=item, index=number) if isinstance(item, str) else item
            for number, item in enumerate(sources, 1)
        ]
        self.tool_delay = tool_delay
        self.closed: int = 0

    def text_for(self, prompt: str) -> str:
        """The full answer the model gives to ``prompt``."""
        if callable(self.answer):
            return self.answer(prompt)
        return self.answer.replace("{prompt}", prompt)

    async def stream(self, prompt: str = "") -> AsyncIterator[str | Citation | ToolActivity]:
        """Yield the answer to ``prompt`` token by token (after the activity, before the
        sources)."""
        try:
            for event in self.activity:
                yield event
                if event.status == "started" and self.tool_delay:
                    await anyio.sleep(self.tool_delay)
            if self.first_token_delay:
                await anyio.sleep(self.first_token_delay)
            for count, token in enumerate(tokenize(self.text_for(prompt))):
                if self.fail_after is not None and count >= self.fail_after:
                    raise RuntimeError("fake model failure (secret=hunter2)")
                if count and self.delay:
                    await anyio.sleep(self.delay)
                yield token
            for citation in self.sources:
                yield citation
        finally:
            self.closed += 1


@dataclass
class StreamedResponse:
    """What :func:`run_stream` saw.

    Attributes:
        status: the HTTP status.
        headers: response headers, names lower-cased (last value wins).
        body: every body byte received.
        events: decoded events, in order.
        comments: decoded comments (heartbeats), in order.
        items: events and comments interleaved in arrival order.
        complete: the app ended the body (``more_body: False``).
        disconnected: the driver sent ``http.disconnect``.
    """

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: list[ServerSentEvent] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    items: list[ServerSentEvent | Comment] = field(default_factory=list)
    complete: bool = False
    disconnected: bool = False


#: Seconds :func:`run_stream` waits, once its timeout has passed and it has disconnected, for
#: the app to close its stream (the source closed, the hook run) before cancelling it: the
#: default ``close_timeout`` of 5 s, plus a margin.
TIMEOUT_GRACE = 6.0


class StreamTimeoutError(TimeoutError):
    """:func:`run_stream`'s ``timeout`` passed before the app finished.

    Attributes:
        response: the :class:`StreamedResponse` as far as it arrived (``disconnected`` is
            true: the driver left as a client would).
    """

    def __init__(self, message: str, response: StreamedResponse) -> None:
        super().__init__(message)
        self.response = response


async def run_stream(
    app: Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]],
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    disconnect_after: int | None = None,
    disconnect_after_seconds: float | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (a bound on the whole drive, not an I/O call)
) -> StreamedResponse:
    """Drive an ASGI app's streaming response in-process, without a server.

    Args:
        app: the ASGI app.
        path: the request target, ``/path`` optionally with ``?query``. Non-ASCII text and
            spaces may be given as they are or already percent-encoded: characters outside
            RFC 3986 are percent-encoded as UTF-8 (as browsers and httpx send them), existing
            ``%XX`` escapes are kept. The scope gets, per the ASGI HTTP connection scope,
            ``path`` percent-decoded (``str``), ``raw_path`` and ``query_string`` encoded
            (``bytes``, as they would arrive on the wire).
        method: the HTTP method (``"POST"`` for a view that reads a body).
        headers: request headers (names case-insensitive), e.g.
            ``{"content-type": "application/json"}`` for a JSON body; ``host`` is
            ``testserver`` unless given (what Starlette's ``TestClient`` and Django's test
            client send; RFC 9112 §3.2 requires one).
        body: the request body, in bytes (``json.dumps(data).encode()``).
        disconnect_after: send ``http.disconnect`` once this many events have arrived
            (comments, such as heartbeats, do not count).
        disconnect_after_seconds: send ``http.disconnect`` this many seconds after the start,
            whatever arrived: how a test watches a silent model's heartbeats.
        timeout: seconds before giving up. The driver then disconnects as a client would,
            gives the app up to :data:`TIMEOUT_GRACE` more seconds to end its stream (close
            the source, run the completion hook), cancels it if it has not, and raises.

    Returns:
        the :class:`StreamedResponse`, once the app returned (after the end of the body or
        after the disconnect).

    Raises:
        StreamTimeoutError: (a ``TimeoutError``) the app did not finish within ``timeout``
            seconds; its ``response`` holds what had arrived.
        TypeError: ``app`` is a WSGI app (Flask's): test it with its own test client
            (docs/testing.md).
        Exception: whatever the app raised.
    """
    if hasattr(app, "wsgi_app"):
        # Flask's __call__(environ, start_response) would fail with a TypeError about its
        # arguments, which says nothing of the cause.
        raise TypeError(
            f"run_stream drives an ASGI app; {type(app).__name__} is a WSGI app: read its "
            "stream with its own test client (response = app.test_client().get(path); "
            "iterate response.response, then response.close())"
        )
    target_path, _, query = path.partition("?")
    raw_path = quote(target_path, safe=_PATH_SAFE)
    header_list = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if not any(name == b"host" for name, _ in header_list):
        header_list.insert(0, (b"host", b"testserver"))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "root_path": "",
        "query_string": quote(query, safe=_QUERY_SAFE).encode("ascii"),
        "headers": header_list,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    response = StreamedResponse()
    decoder = SSEDecoder()
    disconnect = anyio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    def leave() -> None:
        if not response.complete and not disconnect.is_set():
            response.disconnected = True
            disconnect.set()

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            if disconnect.is_set():
                raise OSError("client disconnected")
            chunk = message.get("body", b"")
            response.body += chunk
            for item in decoder.feed(chunk):
                response.items.append(item)
                if type(item) is ServerSentEvent:
                    response.events.append(item)
                else:
                    response.comments.append(item)  # type: ignore[arg-type]
            if not message.get("more_body", False):
                response.complete = True  # the whole body came: nothing left to leave
            elif disconnect_after is not None and len(response.events) >= disconnect_after:
                leave()

    finished = anyio.Event()
    failure: list[BaseException] = []

    async def run_app() -> None:
        try:
            await app(scope, receive, send)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # raised as it is, not in a task group's ExceptionGroup
            failure.append(exc)
        finally:
            finished.set()

    limit = None if timeout == math.inf else timeout
    timed_out = False
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run_app)
        with anyio.move_on_after(limit):
            if disconnect_after_seconds is not None:
                with anyio.move_on_after(disconnect_after_seconds):
                    await finished.wait()
                leave()
            await finished.wait()
        if not finished.is_set():
            timed_out = True
            leave()  # as a client that gives up: the app ends its stream as for any disconnect
            with anyio.move_on_after(TIMEOUT_GRACE):
                await finished.wait()
            task_group.cancel_scope.cancel()
    if timed_out:
        # What the app raised at the disconnect (Starlette's ClientDisconnect) is its cause.
        raise StreamTimeoutError(
            f"the ASGI app did not finish within {timeout} s (disconnected at that point)",
            response,
        ) from (failure[0] if failure else None)
    if failure:
        raise failure[0]
    return response
