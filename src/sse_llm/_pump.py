"""The stream pump: an ASGI app that sends a source's items as they come.

Per connection it runs the response in the ASGI task plus one watcher task, in one anyio task
group opened in the ASGI call (never across a ``yield``). The watcher owns everything that
happens while the source is silent:

- it waits on ``receive()`` so an ``http.disconnect`` cancels the pump at once, even while
  the source is blocked waiting for an LLM's next token (Starlette's ``StreamingResponse``,
  under ASGI 2.4+, only notices on the next failed send);
- it sends a heartbeat comment after ``heartbeat`` seconds without output;
- it ends a send that has waited longer than ``send_timeout`` (a client that stopped reading).

The pump itself does no per-token task, timer or lock: it records when it sent last and
whether it is inside ``send``, and the watcher reads those. Each event goes out in a single
``send`` call, so a heartbeat can never land inside an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import anyio

from ._encoder import LINE_BREAK, encode
from ._events import Comment, ServerSentEvent
from ._formats import EventsFormat, Renderer, WireFormat
from ._model import (
    Finish,
    LLMEvent,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._providers import Normalizer, detect, translate_exception
from ._result import EndReason, StreamResult
from ._sources import aclose_source, aiter_source

__all__ = ["CompletionHook", "EventStream", "ShutdownSignal", "Source"]

logger = logging.getLogger("sse_llm")

#: What a stream can be built from: any (async) iterable of text, events or provider chunks.
Source = AsyncIterable[Any] | Iterable[Any]
#: Called once when a stream ends, whatever the reason; may be sync or async.
CompletionHook = Callable[[StreamResult], Awaitable[None] | None]

_LLM_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta, ToolCall, Usage, Finish, StreamError)
_SAFE_ERROR = "The answer could not be completed because of an internal error."
_SHUTDOWN_ERROR = "The server is restarting. Please try again."
_monotonic = time.monotonic


class ShutdownSignal(Protocol):
    """Anything with ``async wait()`` that returns at shutdown: ``anyio.Event``,
    ``asyncio.Event``, ``trio.Event``."""

    def wait(self) -> Awaitable[Any]: ...


class EventStream:
    """An ASGI app that streams ``source`` to the client.

    Args:
        source: an async or sync iterable of ``str`` (answer text), normalised
            :data:`~sse_llm.LLMEvent` values, provider stream chunks (OpenAI
            ``ChatCompletionChunk`` ...), or ready-made :class:`ServerSentEvent` /
            :class:`Comment` / ``sse_starlette.ServerSentEvent`` / ``dict`` events, which are
            sent as they are. An SDK stream object (``openai.AsyncStream``) can be passed as is.
        format: the wire format for text and LLM events (default :class:`EventsFormat`).
        heartbeat: seconds without output before a comment is sent; ``None`` disables.
        send_timeout: seconds one send may wait on a client that is not reading before the
            stream is ended with reason ``timeout``; ``None`` disables.
        on_complete: called once with the :class:`StreamResult` when the stream ends, whatever
            the reason; shielded from cancellation so an interrupted answer can be saved.
        shutdown: an event the app sets at shutdown: the stream then sends an ``error``
            event (code ``shutdown``), closes the source and ends with reason ``shutdown``.
        headers: extra response headers.
        status_code: the HTTP status, 200 by default.
        close_timeout: seconds allowed for closing the source and for the final send.

    The response headers are ``content-type: <format>; charset=utf-8``,
    ``cache-control: no-cache`` and ``x-accel-buffering: no`` (nginx: don't buffer). No
    ``Connection`` header: it is forbidden in HTTP/2 (RFC 9113 §8.2.2).
    """

    def __init__(
        self,
        source: Source,
        *,
        format: WireFormat | None = None,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        on_complete: CompletionHook | None = None,
        shutdown: ShutdownSignal | None = None,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
        close_timeout: float = 5.0,
    ) -> None:
        _check_timing(heartbeat, send_timeout)
        self.source = source
        self.format: WireFormat = format if format is not None else EventsFormat()
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self.on_complete = on_complete
        self.shutdown = shutdown
        self.status_code = status_code
        self.close_timeout = close_timeout
        self.headers = _response_headers(self.format, headers)

    async def __call__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[Mapping[str, Any]]],
        send: Callable[[Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        run = _Run(self, send)
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
            )
        except OSError:
            # ASGI 2.4: send raises OSError once the client is gone. Still close the source and
            # run the hook, as for any other ending.
            run.reason = "disconnected"
            with anyio.CancelScope(shield=True):
                await run.finish()
            return
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run.watch, receive, tg.cancel_scope)
                if self.shutdown is not None:
                    tg.start_soon(run.wait_shutdown, self.shutdown, tg.cancel_scope)
                await run.pump()
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # The server cancelled the whole request (a forced shutdown): say so in the hook.
            run.reason = run.reason or "shutdown"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run.finish()


def _check_timing(heartbeat: float | None, send_timeout: float | None) -> None:
    """The ``heartbeat`` and ``send_timeout`` rules of every streaming response.

    Raises:
        ValueError: either is given and not a positive number of seconds.
    """
    if heartbeat is not None and heartbeat <= 0:
        raise ValueError(f"heartbeat must be a positive number of seconds or None: {heartbeat}")
    if send_timeout is not None and send_timeout <= 0:
        raise ValueError(f"send_timeout must be positive or None: {send_timeout}")


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased (HTTP/2 requires it, RFC 9113 §8.2).

    Raises:
        ValueError: a ``Connection`` header: it is forbidden in HTTP/2 (RFC 9113 §8.2.2).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if "connection" in lowered:
        raise ValueError("a Connection header is forbidden in HTTP/2 (RFC 9113 §8.2.2)")
    return lowered


def _response_headers(
    format: WireFormat, extra: Mapping[str, str] | None
) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-type": f"{format.media_type}; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    headers.update(_lower_headers(format.headers))
    if extra:
        headers.update(_lower_headers(extra))
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class _Run:
    """One response's state, shared by the pump and the watcher."""

    def __init__(self, stream: EventStream, send: Callable[[Mapping[str, Any]], Awaitable[None]]):
        self.stream = stream
        self.send = send
        self.renderer: Renderer = stream.format.renderer()
        self.result = StreamResult()
        self.reason: EndReason | None = None  # set by whoever ends the stream first
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.normalizer: Normalizer | None = None
        self.from_provider = False  # a provider stream reports its own finish reason
        self.iterator: Any = None
        self.in_send = False
        self.last_output = _monotonic()
        self.heartbeat_done: anyio.Event | None = None  # set while the watcher is sending
        self.pending_error: tuple[str, str | None] | None = None  # (safe message, code)

    # -- the pump ---------------------------------------------------------------------------

    async def pump(self) -> None:
        send = self.send
        renderer = self.renderer
        text = self.text
        sent = 0
        first = renderer.start()
        if first:
            try:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            except OSError:
                self.reason = "disconnected"
                return
        self.iterator = iterator = aiter_source(self.stream.source)
        anext = iterator.__anext__
        try:
            while True:
                try:
                    item = await anext()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    self._fail(exc)
                    break
                kind = type(item)
                if kind is str or isinstance(item, str):
                    if not item:
                        continue
                    if kind is not str:
                        item = str(item)  # a str subclass (Markup, a StrEnum) is plain text here
                    text.append(item)
                    body = renderer.text(item)
                else:
                    try:
                        body = self._convert(item)
                    except Exception as exc:
                        self._fail(exc)
                        break
                if not body:
                    if self.reason is not None:
                        break
                    continue
                if self.heartbeat_done is not None:
                    await self.heartbeat_done.wait()
                self.in_send = True
                self.last_output = _monotonic()
                try:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                except OSError:
                    self.reason = "disconnected"
                    return
                self.in_send = False
                sent += 1
                if self.reason is not None:  # the provider reported an error: it was the last
                    break
            if self.reason is None and self.normalizer is not None:
                tail = b"".join(self._event(event) for event in self.normalizer.close())
                self.normalizer = None
                if tail:
                    try:
                        await send({"type": "http.response.body", "body": tail, "more_body": True})
                    except OSError:
                        self.reason = "disconnected"
        finally:
            self.result.events_sent += sent

    def _convert(self, item: Any) -> bytes:
        """Everything but plain text: LLM events, ready-made SSE events, provider chunks."""
        if isinstance(item, _LLM_EVENTS):
            return self._event(item)
        if isinstance(item, ServerSentEvent | Comment):
            return encode(item)
        foreign = _foreign_event(item)
        if foreign is not None:
            return foreign
        if self.normalizer is None:
            self.normalizer = detect(item)
            self.from_provider = True
            if self.normalizer is None:
                raise TypeError(
                    f"sse-llm cannot stream items of type {type(item).__name__}; yield str, "
                    "an LLM event, a ServerSentEvent, or a supported provider chunk"
                )
        return b"".join(self._event(event) for event in self.normalizer.feed(item))

    def _event(self, event: LLMEvent) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            self.text.append(event.text)  # type: ignore[union-attr]
        elif kind is ReasoningDelta:
            self.reasoning.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCall:
            self.result.tool_calls.append(event)  # type: ignore[arg-type]
        elif kind is Finish:
            self.result.finish = event  # type: ignore[assignment]
        elif kind is Usage:
            self.result.usage = event  # type: ignore[assignment]
        elif kind is StreamError:
            self.result.error = event  # type: ignore[assignment]
            self.reason = "error"
            return self.renderer.error(event.message, event.code)  # type: ignore[union-attr]
        return self.renderer.event(event)

    def _fail(self, exc: Exception) -> None:
        self.reason = "error"
        self.result.error = exc
        provider = translate_exception(exc)
        if provider is not None:
            logger.warning("provider error in stream: %s", provider.message)
            self.pending_error = (provider.message, provider.code)
        else:
            logger.error("exception in stream source", exc_info=exc)
            self.pending_error = (_SAFE_ERROR, "internal_error")

    # -- the watcher ------------------------------------------------------------------------

    async def watch(
        self,
        receive: Callable[[], Awaitable[Mapping[str, Any]]],
        scope: anyio.CancelScope,
    ) -> None:
        heartbeat = self.stream.heartbeat
        send_timeout = self.stream.send_timeout
        # A renderer that holds text back (coalesced Markdown renders) is polled so that held
        # text goes out within its interval even when the model pauses.
        flush = getattr(self.renderer, "flush", None)
        flush_interval: float | None = getattr(self.renderer, "flush_interval", None)
        while True:
            now = _monotonic()
            if self.in_send:
                wake = None if send_timeout is None else self.last_output + send_timeout - now
                if heartbeat is not None:
                    # The send may end while we wait: look again in time for a heartbeat.
                    wake = heartbeat if wake is None else min(wake, heartbeat)
            else:
                wake = None if heartbeat is None else self.last_output + heartbeat - now
                if send_timeout is not None:
                    # A send may start while we wait: wake in time to time it out.
                    wake = send_timeout if wake is None else min(wake, send_timeout)
            if flush_interval is not None:
                wake = flush_interval if wake is None else min(wake, flush_interval)
            if wake is None:
                message = await receive()
            elif wake > 0:
                message = None
                with anyio.move_on_after(wake):
                    message = await receive()
            else:
                message = None
            if message is not None:
                if message["type"] == "http.disconnect":
                    self._end("disconnected", scope)
                    return
                continue  # a request body chunk the view did not read
            if self.in_send:
                if send_timeout is not None and _monotonic() - self.last_output >= send_timeout:
                    self._end("timeout", scope)
                    return
                continue
            held = flush() if flush is not None else b""
            due = heartbeat is not None and _monotonic() - self.last_output >= heartbeat
            if (held or due) and not await self._send_idle(held or self.stream.format.heartbeat):
                self._end("timeout", scope)
                return

    async def _send_idle(self, body: bytes) -> bool:
        """Send a heartbeat or held text while the pump waits on its source.

        Returns False when the client did not take it within ``send_timeout``.
        """
        done = self.heartbeat_done = anyio.Event()
        self.last_output = _monotonic()
        message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            if self.stream.send_timeout is None:
                await self.send(message)
                return True
            with anyio.move_on_after(self.stream.send_timeout):
                await self.send(message)
                return True
            return False
        except OSError:
            return True  # the disconnect arrives through receive()
        finally:
            self.heartbeat_done = None
            done.set()

    async def wait_shutdown(self, shutdown: ShutdownSignal, scope: anyio.CancelScope) -> None:
        await shutdown.wait()
        self._end("shutdown", scope)

    def _end(self, reason: EndReason, scope: anyio.CancelScope) -> None:
        if self.reason is None:
            self.reason = reason
        scope.cancel()

    # -- the end ----------------------------------------------------------------------------

    async def finish(self) -> None:
        """Close the source, send the last bytes if the client can take them, run the hook."""
        stream = self.stream
        result = self.result
        result.reason = self.reason or "completed"
        if self.normalizer is not None:  # cut short: still collect pending calls and usage
            for event in self.normalizer.close():
                self._event(event)
        # Also when iteration never started: an SDK stream holds an open upstream response.
        iterator = self.iterator if self.iterator is not None else stream.source
        if not isinstance(iterator, str | bytes):
            with anyio.move_on_after(stream.close_timeout):
                try:
                    await aclose_source(iterator, stream.source)
                except Exception:
                    logger.exception("closing the stream source failed")
        if result.reason == "completed" and result.finish is None and not self.from_provider:
            result.finish = Finish("stop")  # a plain text source ends by running out
        result.text = "".join(self.text)
        result.reasoning = "".join(self.reasoning)
        if result.reason in ("completed", "error", "shutdown"):
            tail = b""
            if result.reason == "shutdown":
                tail = self.renderer.error(_SHUTDOWN_ERROR, "shutdown")
            elif self.pending_error is not None:
                tail = self.renderer.error(*self.pending_error)
            tail += self.renderer.end(result)
            with anyio.move_on_after(stream.close_timeout):
                try:
                    if self.heartbeat_done is not None:
                        await self.heartbeat_done.wait()
                    await self.send(
                        {"type": "http.response.body", "body": tail, "more_body": False}
                    )
                except OSError:
                    pass
        if stream.on_complete is not None:
            try:
                outcome = stream.on_complete(result)
                if outcome is not None:
                    await outcome
            except Exception:
                logger.exception("the stream's on_complete hook failed")


_SSE_FIELDS = frozenset({"data", "event", "id", "retry", "comment"})


def _foreign_event(item: Any) -> bytes | None:
    """sse-starlette events and plain dicts, so existing generators work unchanged."""
    if isinstance(item, Mapping):
        if not item.keys() <= _SSE_FIELDS:
            return None  # a provider's JSON chunk, not an event
        fields = item
    elif type(item).__module__.startswith("sse_starlette"):
        fields = {
            "data": item.data,
            "event": item.event,
            "id": item.id,
            "retry": item.retry,
            "comment": getattr(item, "comment", None),
        }
    else:
        return None
    out = b""
    comment = fields.get("comment")
    if comment is not None:
        out += b"".join(encode(Comment(line)) for line in LINE_BREAK.split(str(comment)))
    data = fields.get("data")
    retry = fields.get("retry")
    if data is not None or fields.get("event") is not None or fields.get("id") is not None:
        out += encode(
            ServerSentEvent(
                "" if data is None else str(data),
                event=fields.get("event"),
                id=fields.get("id"),
                retry=retry,
            )
        )
    elif retry is not None:
        # retry alone sets the client's reconnection delay (§9.2.6) without an event: one
        # field line and no blank line, so no client dispatches an empty message.
        ServerSentEvent(retry=retry)  # validates: a non-negative int
        out += f"retry: {retry}\n".encode()
    return out
