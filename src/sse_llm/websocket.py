"""WebSocket binding: many prompts over one socket, each answer streamed as JSON messages.

Example (Starlette or FastAPI: a route of its own)::

    from starlette.routing import WebSocketRoute
    from sse_llm.websocket import LLMWebSocket

    app.routes.append(
        WebSocketRoute("/ws", LLMWebSocket(lambda message: llm.stream(message["prompt"])))
    )

Or inside your own endpoint (authentication first, say; ``@app.websocket`` is FastAPI's)::

    from starlette.websockets import WebSocket
    from sse_llm.websocket import serve_websocket

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        await serve_websocket(websocket, lambda message: llm.stream(message["prompt"]))

The protocol, one JSON object per text message:

Client to server:

- ``{"prompt": "...", "request_id": "a1"}``: ask; ``request_id`` (a string of at most 128
  characters or an integer strictly between -2**53 and 2**53) is optional, the whole object
  goes to the handler
- ``{"type": "cancel"}``: stop the answer being streamed

Server to client (every message but ``heartbeat`` carries the ``request_id`` of the answer it
belongs to: the client's own, string or number, or, when the client gives none, the strings
``"1"``, ``"2"`` … the server numbers requests with):

- ``start``: ``{"type": "start", "request_id": "a1"}``: an answer begins
- ``delta``: ``{"type": "delta", "request_id": "a1", "text": "..."}``: append to the answer
- ``reasoning``: ``{"type": "reasoning", "request_id": "a1", "text": "..."}``
- ``tool_call``: ``{"type": "tool_call", "request_id": "a1", "index": 0, "id": "call_1", "name":
  "f", "arguments": "{...}"}``: a tool the client runs
- ``source``: ``{"type": "source", "request_id": "a1", "kind": "url", "url": "https://...", "title":
  "...", "document_id": null, "container_id": null, "cited_text": null, "start": 0, "end": 42,
  "index": null}``: a source the answer cites (the fields of ``NamedEventsFormat``'s ``source``
  event)
- ``tool_activity``: ``{"type": "tool_activity", "request_id": "a1", "id": "ws_1", "name":
  "web_search", "status": "started" | "finished" | "failed", "summary": "..."}``: a tool the
  provider runs itself (web search, code execution); nothing is asked of the client
- ``heartbeat``: ``{"type": "heartbeat"}``: sent after ``heartbeat`` seconds without a message while
  an answer is pending (a thinking model); ignore it
- ``done``: ``{"type": "done", "request_id": "a1", "finish_reason": "stop", "raw_finish_reason":
  "stop", "usage": {...} | null}``: the answer is complete (``finish_reason`` ``pause``: the
  provider paused a turn the client may continue)
- ``error``: ``{"type": "error", "request_id": "a1" | null, "message": "...", "code": ...}``: the
  answer failed (``request_id`` is ``null`` for a message the server could not read, code
  ``invalid_message``; the socket stays open)
- ``cancelled``: ``{"type": "cancelled", "request_id": "a1"}``: the answer was stopped

Each answer ends with exactly one of ``done``, ``error`` or ``cancelled``. One answer streams
at a time: a new prompt while an answer is streaming **cancels** that answer (its source is
closed, ``cancelled`` is sent) and then starts the new one, so a chat UI's "send" always wins
and no two answers interleave. Messages of the old answer may still arrive before its
``cancelled``; the ``request_id`` tells them apart.

Each answer runs the pump every binding shares: sources are anything
:class:`sse_llm.EventStream` takes (text, LLM events, provider SDK streams), provider errors
keep their message, other exceptions become a safe ``error``, ``on_complete`` always runs.
While an answer streams the pump reads the socket, so a client that goes away
(``websocket.disconnect``) cancels the answer and closes its source at once (reason
``disconnected``, as for a cancelled answer), even while the model is silent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Unpack

import anyio
from anyio.abc import TaskGroup

from ._extras import raise_missing_extra

try:
    from starlette.responses import PlainTextResponse
    from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "websocket", "starlette")

from ._formats import (
    NOTHING,
    FormatWriter,
    Units,
    WriterBase,
    activity_fields,
    done_fields,
    dumps,
    json_string,
    source_fields,
    tool_call_fields,
)
from ._model import Citation, LLMEvent, ReasoningDelta, ToolActivity, ToolCall
from ._options import NOT_FOR_WEBSOCKETS, Config, WebSocketOptions, resolve
from ._pump import Pump, inline_for
from ._result import EndReason, StreamResult
from ._shutdown import current_shutdown
from ._types import Receive, Scope, Send, ShutdownSignal, Source
from ._views import call_handler

__all__ = ["LLMWebSocket", "PromptHandler", "WebSocketOptions", "serve_websocket"]


#: Called with the client's JSON message (it has a ``prompt`` string); returns a stream source
#: (or an awaitable of one).
PromptHandler = Callable[[Mapping[str, Any]], Source | Awaitable[Source]]

_SHUTDOWN_CLOSE = 1012  # "service restart" (RFC 6455 §7.4.1, IANA registry)
_MAX_REQUEST_ID = 128  # characters of a string request_id


class _MessagesWriter(WriterBase):
    """One answer's messages, each unit one JSON text message."""

    __slots__ = ("_delta", "_rid", "started")

    def __init__(self, request_id: Any) -> None:
        self._rid = dumps(request_id)
        self._delta = f'{{"type":"delta","request_id":{self._rid},"text":'
        self.started = False

    def _message(self, kind: str, fields: Mapping[str, Any]) -> bytes:
        body = dumps(dict(fields))[1:]  # without the opening brace
        sep = "," if body != "}" else ""
        return f'{{"type":"{kind}","request_id":{self._rid}{sep}{body}'.encode()

    def start(self) -> Units:
        self.started = True
        return (self._message("start", {}),)

    def text(self, text: str) -> Units:
        return (f"{self._delta}{json_string(text)}}}".encode(),)

    def event(self, event: LLMEvent) -> Units:
        match event:
            case ReasoningDelta(text=text):
                return (self._message("reasoning", {"text": text}),)
            case ToolCall():
                return (self._message("tool_call", tool_call_fields(event)),)
            case Citation():
                return (self._message("source", source_fields(event)),)
            case ToolActivity():
                return (self._message("tool_activity", activity_fields(event)),)
        return NOTHING  # fragments are sent whole as tool_call; Finish and Usage go into done

    def error(self, message: str, code: str | None) -> Units:
        return (self._message("error", {"message": message, "code": code}),)

    def end(self, result: StreamResult) -> Units:
        if result.reason != "completed":
            return NOTHING  # the error was the last message
        return (self._message("done", done_fields(result)),)


class _MessagesFormat:
    media_type = "application/json"  # never sent: a WebSocket message has no headers
    headers: Mapping[str, str] = {}
    keepalive = b'{"type":"heartbeat"}'

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id
        self.written: _MessagesWriter | None = None

    def writer(self) -> FormatWriter:
        self.written = _MessagesWriter(self.request_id)
        return self.written

    def start_unsent(self) -> bytes | None:
        """The ``start`` message, if the answer ended before the pump sent it (cancelled at
        once): every answer begins with one."""
        writer = self.written
        if writer is None or writer.started:
            return None
        (start,) = writer.start()
        return start


class _Connection:
    def __init__(
        self, websocket: WebSocket, handler: PromptHandler, config: Config, replies: TaskGroup
    ) -> None:
        self.websocket = websocket
        self.handler = handler
        self.config = config
        # Where a reply to an unreadable message is sent while an answer streams: not from
        # the pump's wait for the client, whose heartbeat timer cancels it (and the reply).
        self.replies = replies
        self.replied: anyio.Event | None = None  # set once the reply under way is sent
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

    async def send_units(self, units: Units, more: bool) -> None:
        """The pump's ``send``: each unit is one text message."""
        for unit in units:
            await self.send_text(unit.decode())

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
        if rid is not None and (
            isinstance(rid, bool)
            or not isinstance(rid, str | int)
            # Echoed in every message of the answer: a huge one would multiply the output.
            or (isinstance(rid, str) and len(rid) > _MAX_REQUEST_ID)
            or (isinstance(rid, int) and not -(2**53) < rid < 2**53)  # exact in JavaScript
        ):
            return "invalid", (
                f'"request_id" must be a string of at most {_MAX_REQUEST_ID} characters or an '
                "integer strictly between -2**53 and 2**53."
            )
        return "prompt", obj

    async def invalid(self, reason: str) -> None:
        error = {"type": "error", "request_id": None, "message": reason, "code": "invalid_message"}
        with contextlib.suppress(OSError):
            await self.send_text(dumps(error))

    def reply_invalid_later(self, reason: str) -> None:
        """Send :meth:`invalid`'s reply from the connection's task group (see ``replies``)."""
        replied = self.replied = anyio.Event()

        async def reply() -> None:
            try:
                await self.invalid(reason)
            finally:
                replied.set()

        self.replies.start_soon(reply)

    async def wait_replied(self) -> None:
        """Wait until the reply under way is sent: a client that sends unreadable messages
        and reads nothing is read no further (one reply at a time, not a task per message).
        Cancelling the wait loses nothing: the reply is already on its way."""
        if self.replied is not None:
            await self.replied.wait()

    async def next_prompt(self) -> dict[str, Any] | None:
        """Wait, idle, for the next prompt; ``None`` when the client left or at shutdown."""
        # A GracefulShutdown around the app counts the socket open until it returns: an
        # idle socket must end at its signal too, or the server's exit waits drain_timeout.
        signals = [s for s in (self.config.shutdown, current_shutdown()) if s is not None]
        while True:
            if not signals:
                kind, value = await self.receive()
            else:
                kind, value = await self._receive_unless_shutdown(signals)
            if kind == "prompt":
                prompt: dict[str, Any] = value
                return prompt
            if kind in ("gone", "shutdown"):
                return None
            if kind == "invalid":
                await self.invalid(value)
            # "cancel" with nothing streaming: nothing to do

    async def _receive_unless_shutdown(self, signals: list[ShutdownSignal]) -> tuple[str, Any]:
        outcome: tuple[str, Any] = ("shutdown", None)
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                nonlocal outcome
                outcome = await self.receive()
                tg.cancel_scope.cancel()

            async def wait_shutdown(shutdown: ShutdownSignal) -> None:
                await shutdown.wait()
                self.shutting_down = True
                tg.cancel_scope.cancel()

            tg.start_soon(read)
            for shutdown in signals:  # the shutdown= option and a GracefulShutdown around
                tg.start_soon(wait_shutdown, shutdown)
        return outcome

    # -- one answer ------------------------------------------------------------------------

    async def answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Stream the answer to ``message``; returns a prompt that arrived meanwhile."""
        self.requests += 1
        rid = message.get("request_id")
        request_id = rid if rid is not None else str(self.requests)
        next_prompt: dict[str, Any] | None = None

        async def wait_client() -> EndReason | None:
            nonlocal next_prompt
            await self.wait_replied()
            kind, value = await self.receive()
            if kind == "invalid":
                self.reply_invalid_later(value)
                return None
            if kind == "prompt":
                next_prompt = value  # answered after this one is cancelled
            return "disconnected"  # cancel, a new prompt, or the client left

        # Awaited by the pump, not here: `start`, heartbeats and a cancel go on meanwhile (an
        # async handler may await the SDK's request). What the handler raises (an SDK's HTTP
        # error, a bad prompt) the pump turns into this request's error message, with the
        # provider's text when it has one.
        source = call_handler(self.handler, message)
        config = self.config
        messages = _MessagesFormat(request_id)
        engine = config.engine(messages)
        inline = inline_for(self.websocket.scope)
        pump = Pump(source, engine, config, self.send_units, inline=inline)
        result = await pump.run(wait_client)
        if result.reason == "shutdown":
            self.shutting_down = True
        if result.reason == "disconnected" and not self.gone:
            with contextlib.suppress(OSError):
                start = messages.start_unsent()
                if start is not None:
                    await self.send_text(start.decode())
                await self.send_text(dumps({"type": "cancelled", "request_id": request_id}))
        return next_prompt


async def serve_websocket(
    websocket: WebSocket, handler: PromptHandler, **options: Unpack[WebSocketOptions]
) -> None:
    """Serve LLM answers over ``websocket`` until the client leaves (see the module docs).

    Accepts the socket if it is not accepted yet, then answers each ``{"prompt": ...}``
    message with ``handler(message)``'s stream, one answer at a time.

    Args:
        websocket: a Starlette (or FastAPI) ``WebSocket``.
        handler: called with the client's message (a dict with a ``prompt`` string, and any
            other keys the client sent); returns a source. Sync (run in a worker thread: it
            may block) or async. An exception it raises becomes that request's ``error``
            message.
        **options: :class:`WebSocketOptions`: :class:`~sse_llm.StreamOptions` but ``format`` and
            ``headers`` (the messages are this module's protocol). ``on_complete`` gets each
            answer's :class:`~sse_llm.StreamResult`, whatever the ending (``disconnected`` for an
            answer that was cancelled or whose client left); at ``shutdown`` the streaming answer
            ends with an ``error`` (code ``shutdown``) and the socket is closed with code 1012;
            ``heartbeat`` sends ``{"type": "heartbeat"}`` while an answer waits on a silent model.

    Returns when the client disconnects or at shutdown.

    Raises:
        TypeError: an unknown option, ``format`` or ``headers``, or a wrong type.
        ValueError: a time that is not positive, or a negative ``keep_text`` or ``choice``.
    """
    config = resolve(options, binding="serve_websocket", exclude=NOT_FOR_WEBSOCKETS)
    await _serve(websocket, handler, config)


async def _serve(websocket: WebSocket, handler: PromptHandler, config: Config) -> None:
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept()
    failure: Exception | None = None
    async with anyio.create_task_group() as replies:
        connection = _Connection(websocket, handler, config, replies)
        try:
            await _answer_prompts(connection)
        except Exception as exc:
            failure = exc  # raised as it is below, not in the task group's ExceptionGroup
        replies.cancel_scope.cancel()  # a reply still waiting on a client that left or stalls
    if failure is not None:
        raise failure
    if connection.shutting_down and not connection.gone:
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await websocket.close(_SHUTDOWN_CLOSE)


async def _answer_prompts(connection: _Connection) -> None:
    """Answer each prompt in turn until the client leaves or shutdown begins."""
    pending: dict[str, Any] | None = None
    while not connection.gone and not connection.shutting_down:
        message = pending if pending is not None else await connection.next_prompt()
        if message is None:
            return
        pending = await connection.answer(message)


class LLMWebSocket:
    """An ASGI WebSocket endpoint: ``WebSocketRoute("/ws", LLMWebSocket(handler))``.

    Takes :func:`serve_websocket`'s ``handler`` and options. Non-WebSocket requests get
    ``404``.

    Raises:
        TypeError: an unknown option, ``format`` or ``headers``, or a wrong type.
        ValueError: a time that is not positive, or a negative ``keep_text`` or ``choice``.
    """

    def __init__(self, handler: PromptHandler, **options: Unpack[WebSocketOptions]) -> None:
        self.handler = handler
        self.config: Config = resolve(options, binding="LLMWebSocket", exclude=NOT_FOR_WEBSOCKETS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await _serve(WebSocket(scope, receive, send), self.handler, self.config)
