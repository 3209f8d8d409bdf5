"""The ASGI binding: :class:`EventStream`, the pump as an ASGI app."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar, Unpack

import anyio

from ._options import Config, StreamOptions, resolve, response_headers
from ._pump import Pump, inline_for
from ._sources import check_source, close_refused
from ._types import Receive, Scope, Send, Source

__all__ = ["EventStream", "outlast_a_stuck_client", "start_response"]


class EventStream:
    """An ASGI app that streams ``source`` to the client as it comes.

    Args:
        source: what to stream (see :data:`~sse_llm.Source`): an async or sync iterable of
            text, LLM events, provider chunks or ready-made events, or an awaitable of one
            (``AsyncOpenAI().chat.completions.create(..., stream=True)`` without ``await``:
            awaited once the response has started; an error it raises becomes the stream's
            ``error`` event).
        status_code: the HTTP status, 200 by default.
        **options: :class:`~sse_llm.StreamOptions` (``format``, ``heartbeat``,
            ``send_timeout``, ``close_timeout``, ``on_complete``, ``shutdown``, ``headers``,
            ``keep_text``, ``choice``, ``sync_limiter``).

    The response headers are ``content-type: <format>; charset=utf-8``,
    ``cache-control: no-cache`` and ``x-accel-buffering: no`` (nginx: don't buffer), then the
    format's and ``headers``. No ``Connection`` header: it is forbidden in HTTP/2 (RFC 9113
    §8.2.2). An ``http.disconnect`` closes the source at once, even while it waits for the
    model's next token.

    Raises:
        TypeError: ``source`` cannot be streamed (a ``str``, ``None``, a number), or an unknown
            option or one of the wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, or a header
            that cannot be sent (``Connection`` and the like; CR or LF in a name or value; a value
            outside Latin-1).
    """

    #: The name its errors give: a framework's response is built on an EventStream (of a
    #: subclass that gives the name its user called, ``SSEResponse``).
    _binding: ClassVar[str] = "EventStream"
    #: The options, checked and resolved.
    config: Config
    #: The response headers (ASGI pairs); a list that may be edited until the response
    #: starts (Starlette's ``response.headers`` edits it in place).
    headers: list[tuple[bytes, bytes]]

    def __init__(
        self,
        source: Source | Awaitable[Source],
        *,
        status_code: int = 200,
        **options: Unpack[StreamOptions],
    ) -> None:
        try:
            check_source(source, self._binding)
            self.config = config = resolve(options, binding=self._binding)
        except BaseException:
            close_refused(source)  # a sync SDK stream, an SDK call not awaited: end it now
            raise
        self.source = source
        self.status_code = status_code
        self.headers = response_headers(config.format, config.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self.config
        engine = config.engine()
        pump = Pump(self.source, engine, config, send, asgi=True, inline=inline_for(scope))
        if await start_response(pump, self.status_code, self.headers, send):
            if scope.get("method") == "HEAD":
                await end_head(pump, send)
                return
            result = await pump.run(receive)
            if result.reason == "timeout":
                await outlast_a_stuck_client(receive, config.send_timeout)


async def end_head(pump: Pump, send: Send) -> None:
    """Answer a ``HEAD`` request with the headers alone (RFC 9110 §9.3.2): the source is
    closed unread and the hook run (reason ``disconnected``, no text). Streaming it would
    run the model to its end for a body the server throws away, and hold a kept-alive
    connection meanwhile."""
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass  # ASGI 2.4: the client is already gone
    finally:
        await pump.abandon("disconnected")


async def outlast_a_stuck_client(receive: Receive, seconds: float | None) -> None:
    """After ``send_timeout``: the source is closed and the hook has run, but the response
    cannot be completed (the server's send waits for a client that does not read). An ASGI
    app cannot abort a connection, and returning now makes the server log an error and close
    the socket only once its buffer is flushed, i.e. when the client reads or leaves anyway:
    so wait (up to ``seconds`` more) for the client to leave first."""
    with anyio.move_on_after(seconds):
        while (await receive())["type"] != "http.disconnect":
            pass


async def start_response(
    pump: Pump, status: int, headers: list[tuple[bytes, bytes]], send: Send
) -> bool:
    """Send ``http.response.start``; returns whether the client is still there (if not, the
    pump's source is closed and its hook run, as for any other ending)."""
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
    except OSError:  # ASGI 2.4: send raises once the client is gone
        await pump.abandon("disconnected")
        return False
    except Exception as exc:
        # The server refused the start (a header it cannot send): the source is closed and
        # the hook run all the same, then the server sees the error.
        pump.engine.result.error = exc
        await pump.abandon("error")
        raise
    return True
