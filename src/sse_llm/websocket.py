"""WebSocket transport: many prompts over one socket, each answer streamed as JSON messages.

Example (Starlette or FastAPI)::

    from sse_llm.websocket import LLMWebSocket, serve_websocket

    app.add_websocket_route("/ws", LLMWebSocket(lambda message: llm.stream(message["prompt"])))

    @app.websocket("/ws")                      # or inside your own endpoint (auth first, say)
    async def ws(websocket: WebSocket):
        await serve_websocket(websocket, lambda message: llm.stream(message["prompt"]))

The protocol, one JSON object per text message:

Client to server:

=========================================  ===============================================
``{"prompt": "...", "request_id": "a1"}``  ask; ``request_id`` (string or number) is
                                           optional, the whole object goes to the handler
``{"type": "cancel"}``                     stop the answer being streamed
=========================================  ===============================================

Server to client (every message carries the ``request_id`` of the answer it belongs to; the
server numbers requests 1, 2 … when the client gives no id):

==============  ==============================================================================
``start``       ``{"type": "start", "request_id": "a1"}``: an answer begins
``delta``       ``{"type": "delta", "request_id": "a1", "text": "..."}``: append to the answer
``reasoning``   ``{"type": "reasoning", "request_id": "a1", "text": "..."}``
``tool_call``   ``{"type": "tool_call", "request_id": "a1", "index": 0, "id": "call_1",
                "name": "f", "arguments": "{...}"}``
``done``        ``{"type": "done", "request_id": "a1", "finish_reason": "stop",
                "raw_finish_reason": "stop", "usage": {...} | null}``: the answer is complete
``error``       ``{"type": "error", "request_id": "a1" | null, "message": "...", "code": ...}``:
                the answer failed (``request_id`` is ``null`` for a message the server could
                not read, code ``invalid_message``; the socket stays open)
``cancelled``   ``{"type": "cancelled", "request_id": "a1"}``: the answer was stopped
==============  ==============================================================================

Each answer ends with exactly one of ``done``, ``error`` or ``cancelled``. One answer streams
at a time: a new prompt while an answer is streaming **cancels** that answer (its source is
closed, ``cancelled`` is sent) and then starts the new one, so a chat UI's "send" always wins
and no two answers interleave. Messages of the old answer may still arrive before its
``cancelled``; the ``request_id`` tells them apart.

Each answer runs the same pump as an SSE response (:class:`sse_llm.EventStream`): sources are
anything ``EventStream`` takes (text, LLM events, provider SDK streams), provider errors keep
their message, other exceptions become a safe ``error``, ``on_complete`` always runs. While
an answer streams, the socket is read in the same task group, so a client that goes away
(``websocket.disconnect``) cancels the answer and closes its source at once (reason
``disconnected``, as for a cancelled answer), even while the model is silent.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from json.encoder import encode_basestring
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ._formats import Renderer, dumps, usage_json
from ._model import LLMEvent, ReasoningDelta, TextDelta, ToolCall
from ._pump import CompletionHook, EventStream, ShutdownSignal, Source
from ._result import StreamResult

__all__ = ["LLMWebSocket", "PromptHandler", "serve_websocket"]


#: Called with the client's JSON message (it has a ``prompt`` string); returns a stream source.
PromptHandler = Callable[[Mapping[str, Any]], Source | Awaitable[Source]]

_json_string: Any = encode_basestring
_SHUTDOWN_CLOSE = 1012  # "service restart" (RFC 6455 §7.4.1, IANA registry)


class _MessagesRenderer:
    """One answer's messages, each a JSON line (the pump may join several in one body)."""

    __slots__ = ("_delta", "_rid")

    def __init__(self, request_id: Any) -> None:
        self._rid = dumps(request_id)
        self._delta = f'{{"type":"delta","request_id":{self._rid},"text":'

    def _line(self, kind: str, fields: Mapping[str, Any]) -> bytes:
        body = dumps(dict(fields))[1:]  # without the opening brace
        sep = "," if body != "}" else ""
        return f'{{"type":"{kind}","request_id":{self._rid}{sep}{body}\n'.encode()

    def start(self) -> bytes:
        return f'{{"type":"start","request_id":{self._rid}}}\n'.encode()

    def text(self, text: str) -> bytes:
        return f"{self._delta}{_json_string(text)}}}\n".encode()

    def event(self, event: LLMEvent) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            return self.text(event.text)  # type: ignore[union-attr]
        if kind is ReasoningDelta:
            return self._line("reasoning", {"text": event.text})  # type: ignore[union-attr]
        if kind is ToolCall:
            assert isinstance(event, ToolCall)
            call = {
                "index": event.index,
                "id": event.id,
                "name": event.name,
                "arguments": event.arguments,
            }
            return self._line("tool_call", call)
        return b""  # fragments are sent whole as tool_call; Finish and Usage go into done

    def error(self, message: str, code: str | None) -> bytes:
        return self._line("error", {"message": message, "code": code})

    def end(self, result: StreamResult) -> bytes:
        if result.reason != "completed":
            return b""  # the error was the last message
        finish = result.finish
        done = {
            "finish_reason": finish.reason if finish else None,
            "raw_finish_reason": finish.raw_reason if finish else None,
            "usage": usage_json(result.usage),
        }
        return self._line("done", done)


class _MessagesFormat:
    media_type = "application/x-ndjson"  # never sent: there are no HTTP headers here
    headers: Mapping[str, str] = {}
    heartbeat = b""

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id

    def renderer(self) -> Renderer:
        return _MessagesRenderer(self.request_id)


def _is_source(value: object) -> bool:
    """What :class:`~sse_llm.EventStream` can iterate (a str is iterable but never meant)."""
    iterable = hasattr(value, "__aiter__") or hasattr(value, "__iter__")
    return iterable and not isinstance(value, str | bytes)


async def _failed(exc: Exception) -> AsyncIterator[Any]:
    raise exc
    yield  # an async generator, never reached


class _Connection:
    def __init__(
        self,
        websocket: WebSocket,
        handler: PromptHandler,
        options: Mapping[str, Any],
        shutdown: ShutdownSignal | None,
    ) -> None:
        self.websocket = websocket
        self.handler = handler
        self.options = options
        self.shutdown = shutdown
        self.lock = anyio.Lock()  # one sender at a time: the pump and the reader both send
        self.gone = False
        self.shutting_down = False
        self.requests = 0

    # -- sending ---------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        if self.gone:
            raise OSError("the WebSocket client went away")
        async with self.lock:
            try:
                await self.websocket.send_text(text)
            except (OSError, RuntimeError, WebSocketDisconnect) as exc:
                # RuntimeError: Starlette's "cannot send once closed" (WebSocketDisconnected).
                self.gone = True
                raise OSError("the WebSocket client went away") from exc

    async def send_json(self, payload: Mapping[str, Any]) -> None:
        await self.send_text(dumps(dict(payload)))

    async def asgi_send(self, message: Mapping[str, Any]) -> None:
        """The pump's ``send``: each JSON line of a body becomes one text message."""
        if message["type"] != "http.response.body":
            return  # http.response.start: a WebSocket has no per-answer headers
        body: bytes = message.get("body", b"")
        for line in body.split(b"\n"):
            if line:
                await self.send_text(line.decode())

    # -- receiving -------------------------------------------------------------------------

    async def receive(self) -> tuple[str, Any]:
        """The client's next message: ("prompt", obj) | ("cancel", None) | ("gone", None) |
        ("invalid", reason)."""
        try:
            message = await self.websocket.receive()
        except (OSError, RuntimeError):
            message = {"type": "websocket.disconnect"}
        if message["type"] == "websocket.disconnect":
            self.gone = True
            return "gone", None
        text = message.get("text")
        if text is None:
            data = message.get("bytes")
            try:
                text = data.decode() if data is not None else None
            except UnicodeDecodeError:
                text = None
        try:
            obj = json.loads(text) if text is not None else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            return "invalid", 'Send a JSON object: {"prompt": "..."}.'
        if obj.get("type") == "cancel":
            return "cancel", None
        if not isinstance(obj.get("prompt"), str):
            return "invalid", 'The message needs a "prompt" string.'
        rid = obj.get("request_id")
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int)):
            return "invalid", '"request_id" must be a string or an integer.'
        return "prompt", obj

    async def invalid(self, reason: str) -> None:
        error = {"type": "error", "request_id": None, "message": reason, "code": "invalid_message"}
        with contextlib.suppress(OSError):
            await self.send_json(error)

    async def next_prompt(self) -> dict[str, Any] | None:
        """Wait, idle, for the next prompt; ``None`` when the client left or at shutdown."""
        while True:
            if self.shutdown is None:
                kind, value = await self.receive()
            else:
                kind, value = await self._receive_unless_shutdown()
            if kind == "prompt":
                prompt: dict[str, Any] = value
                return prompt
            if kind in ("gone", "shutdown"):
                return None
            if kind == "invalid":
                await self.invalid(value)
            # "cancel" with nothing streaming: nothing to do

    async def _receive_unless_shutdown(self) -> tuple[str, Any]:
        assert self.shutdown is not None
        outcome: tuple[str, Any] = ("shutdown", None)
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                nonlocal outcome
                outcome = await self.receive()
                tg.cancel_scope.cancel()

            async def wait_shutdown() -> None:
                assert self.shutdown is not None
                await self.shutdown.wait()
                self.shutting_down = True
                tg.cancel_scope.cancel()

            tg.start_soon(read)
            tg.start_soon(wait_shutdown)
        return outcome

    # -- one answer ------------------------------------------------------------------------

    async def answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Stream the answer to ``message``; returns a prompt that arrived meanwhile."""
        self.requests += 1
        rid = message.get("request_id")
        request_id = rid if rid is not None else str(self.requests)
        stop = anyio.Event()
        result: StreamResult | None = None
        next_prompt: dict[str, Any] | None = None
        hook: CompletionHook | None = self.options.get("on_complete")

        async def on_complete(outcome: StreamResult) -> None:
            nonlocal result
            result = outcome
            if hook is not None:
                done = hook(outcome)
                if done is not None:
                    await done

        async def receive() -> Mapping[str, Any]:
            # The pump's watcher waits here: "stop" is its client disconnect.
            await stop.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            nonlocal next_prompt
            while True:
                kind, value = await self.receive()
                if kind == "invalid":
                    await self.invalid(value)
                    continue
                if kind == "prompt":
                    next_prompt = value  # answered after this one is cancelled
                stop.set()
                return

        try:
            source = self.handler(message)
            if inspect.isawaitable(source):
                source = await source
            if not _is_source(source):
                raise TypeError(f"the handler returned {type(source).__name__}, not a source")
        except Exception as exc:
            # Refused before streaming (an SDK's HTTP error, a bad prompt): the pump turns it
            # into this request's error message, with the provider's text when it has one.
            source = _failed(exc)
        stream = EventStream(
            source,
            format=_MessagesFormat(request_id),
            heartbeat=None,  # WebSocket keep-alive is the server's ping/pong
            send_timeout=self.options["send_timeout"],
            on_complete=on_complete,
            shutdown=self.shutdown,
            close_timeout=self.options["close_timeout"],
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await stream({"type": "http"}, receive, self.asgi_send)
            tg.cancel_scope.cancel()  # the answer ended by itself: stop reading for now
        if result is not None and result.reason == "shutdown":
            self.shutting_down = True
        cancelled = result is not None and result.reason == "disconnected"
        if cancelled and not self.gone:
            with contextlib.suppress(OSError):
                await self.send_json({"type": "cancelled", "request_id": request_id})
        return next_prompt


async def serve_websocket(
    websocket: WebSocket,
    handler: PromptHandler,
    *,
    on_complete: CompletionHook | None = None,
    shutdown: ShutdownSignal | None = None,
    send_timeout: float | None = 30.0,
    close_timeout: float = 5.0,
) -> None:
    """Serve LLM answers over ``websocket`` until the client leaves (see the module docs).

    Accepts the socket if it is not accepted yet, then answers each ``{"prompt": ...}``
    message with ``handler(message)``'s stream, one answer at a time.

    Args:
        websocket: a Starlette (or FastAPI) ``WebSocket``.
        handler: called with the client's message (a dict with a ``prompt`` string, and any
            other keys the client sent); returns a source (sync or async callable). An
            exception it raises becomes that request's ``error`` message.
        on_complete: called with each answer's :class:`~sse_llm.StreamResult`, whatever the
            ending (``disconnected`` for an answer that was cancelled or whose client left).
        shutdown: an event the app sets at shutdown: the streaming answer ends with an
            ``error`` (code ``shutdown``) and the socket is closed with code 1012.
        send_timeout: seconds one message may wait on a client that does not read before
            the answer is ended (reason ``timeout``); ``None`` disables.
        close_timeout: seconds allowed for closing a source.

    Returns when the client disconnects or at shutdown.
    """
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept()
    options = {
        "on_complete": on_complete,
        "send_timeout": send_timeout,
        "close_timeout": close_timeout,
    }
    connection = _Connection(websocket, handler, options, shutdown)
    pending: dict[str, Any] | None = None
    while not connection.gone and not connection.shutting_down:
        message = pending if pending is not None else await connection.next_prompt()
        if message is None:
            break
        pending = await connection.answer(message)
    if connection.shutting_down and not connection.gone:
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await websocket.close(_SHUTDOWN_CLOSE)


class LLMWebSocket:
    """A mountable ASGI WebSocket app: ``app.add_websocket_route("/ws", LLMWebSocket(h))``.

    Takes :func:`serve_websocket`'s ``handler`` and options. Non-WebSocket requests get
    ``404``.
    """

    def __init__(
        self,
        handler: PromptHandler,
        *,
        on_complete: CompletionHook | None = None,
        shutdown: ShutdownSignal | None = None,
        send_timeout: float | None = 30.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.handler = handler
        self.on_complete = on_complete
        self.shutdown = shutdown
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await serve_websocket(
            WebSocket(scope, receive, send),
            self.handler,
            on_complete=self.on_complete,
            shutdown=self.shutdown,
            send_timeout=self.send_timeout,
            close_timeout=self.close_timeout,
        )
