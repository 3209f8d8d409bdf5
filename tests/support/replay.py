"""ASGI app that replays the recorded provider bodies as real HTTP endpoints.

Point the real ``openai`` / ``anthropic`` SDKs (or httpx) at it.  The file to
replay is chosen, in order, by:

1. header ``x-replay-file: <format>/<filename>`` (works on every endpoint);
2. the request JSON's ``model`` field, ``"<format>/<filename>"``;
3. for Gemini, the ``{model}`` path segment (URL-encode the ``/``).

A bare ``<filename>`` is looked up in the endpoint's default format directory.

Request headers tune delivery: ``x-replay-delay`` (seconds between chunks),
``x-replay-chunk`` (fixed n-byte chunks instead of one chunk per event; this
splits CRLF pairs and multi-byte UTF-8 characters), ``x-replay-status`` (send
that status with a provider-shaped JSON error body instead of the stream), and
``x-replay-tag`` (an opaque label stored on the request's record).

Every request is recorded as a :class:`RequestRecord` so tests can assert on
connection lifecycle, notably how fast the server noticed a client hanging up.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio

from .fixtures import FIXTURES

Scope = dict[str, Any]
Message = dict[str, Any]

CONTENT_TYPES = {
    ".sse": "text/event-stream; charset=utf-8",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json; charset=UTF-8",
}

_GEMINI_PATH = re.compile(r"^/v1beta/models/(?P<model>.+):streamGenerateContent$")
# Path -> (default fixture dir, error body style)
_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("openai-chat", "openai"),
    "/v1/responses": ("openai-responses", "openai"),
    "/v1/messages": ("anthropic", "anthropic"),
    "/api/chat": ("ollama", "ollama"),
    "/api/generate": ("ollama", "ollama"),
}

_SSE_EVENT_END = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)")
# Gemini's JSON array arrives as "[{...}\n", ",\r\n{...}\n", ..., "]".
_JSON_ARRAY_ITEM_END = re.compile(rb"\n(?=,|\])")


def split_chunks(data: bytes, suffix: str, chunk_size: int | None = None) -> list[bytes]:
    """Cut a body into the pieces the server sends.

    Fixed ``chunk_size`` bytes when given; otherwise one piece per event (SSE),
    line (NDJSON) or array element (JSON), as the providers flush them.
    """
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError("chunk size must be >= 1")
        return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    if suffix == ".sse":
        ends = [m.end() for m in _SSE_EVENT_END.finditer(data)]
    elif suffix == ".ndjson":
        ends = [i + 1 for i in range(len(data)) if data[i : i + 1] == b"\n"]
    else:
        ends = [m.end() for m in _JSON_ARRAY_ITEM_END.finditer(data)]
    chunks, start = [], 0
    for end in [*ends, len(data)]:
        if end > start:
            chunks.append(data[start:end])
            start = end
    return chunks


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    tag: str | None
    started_at: float
    body: Any = None
    file: str | None = None  # "<format>/<filename>" actually replayed
    status: int | None = None
    chunks_sent: int = 0
    bytes_sent: int = 0
    completed: bool = False  # the whole body was handed to the server
    closed_early: bool = False  # the client went away before that
    closed_at: float | None = None  # time.monotonic() when the disconnect was seen
    client: tuple[str, int] | None = None  # the client's address: one per connection
    finished_at: float | None = None  # time.monotonic() when the handler returned
    # Set when the handler returns; a threading.Event because the server runs on
    # its own loop in another thread.
    done: threading.Event = field(default_factory=threading.Event, repr=False)


def _error_body(style: str, status: int, message: str | None = None) -> dict[str, Any]:
    """The JSON error body each provider family sends with a non-200 status."""
    message = message or f"replayed error (HTTP {status})"
    if style == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if style == "gemini":
        return {"error": {"code": status, "message": message, "status": "INTERNAL"}}
    if style == "ollama":
        return {"error": message}
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


class ReplayApp:
    def __init__(self, fixtures: Path = FIXTURES) -> None:
        self.fixtures = fixtures.resolve()
        self.requests: list[RequestRecord] = []

    # ------------------------------------------------------------ lookups
    def find(self, tag: str) -> RequestRecord:
        for rec in reversed(self.requests):
            if rec.tag == tag:
                return rec
        raise LookupError(f"no request tagged {tag!r}")

    def wait_closed(self, timeout: float, tag: str | None = None) -> RequestRecord:
        """Block until the (tagged, else latest) request's handler has returned."""
        deadline = time.monotonic() + timeout
        rec = self._await_record(tag, deadline)
        if not rec.done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"request {rec.path} still streaming after {timeout}s")
        return rec

    # A timeout parameter mirrors wait_closed(); callers need not nest fail_after.
    async def wait_closed_async(
        self,
        timeout: float,  # noqa: ASYNC109
        tag: str | None = None,
    ) -> RequestRecord:
        """Like :meth:`wait_closed` but polls, so the caller's event loop keeps running."""
        with anyio.fail_after(timeout):
            while True:
                rec = self._latest(tag)
                if rec is not None and rec.done.is_set():
                    return rec
                await anyio.sleep(0.005)

    def _latest(self, tag: str | None) -> RequestRecord | None:
        if tag is None:
            return self.requests[-1] if self.requests else None
        try:
            return self.find(tag)
        except LookupError:
            return None

    def _await_record(self, tag: str | None, deadline: float) -> RequestRecord:
        while (rec := self._latest(tag)) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no request {tag or ''} arrived")
            time.sleep(0.005)
        return rec

    # --------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rec = RequestRecord(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            tag=headers.get("x-replay-tag"),
            started_at=time.monotonic(),
            client=scope.get("client"),
        )
        self.requests.append(rec)
        try:
            await self._handle(rec, receive, send)
        finally:
            rec.finished_at = time.monotonic()
            rec.done.set()

    async def _handle(self, rec: RequestRecord, receive: Any, send: Any) -> None:
        raw = await _read_body(receive)
        try:
            rec.body = json.loads(raw) if raw else None
        except ValueError:
            rec.body = None

        route = self._route(rec)
        if route is None:
            return await _send_json(send, rec, 404, {"error": {"message": f"no route {rec.path}"}})
        default_dir, style, path_model = route

        status = int(rec.headers.get("x-replay-status", "200"))
        if status != 200:
            return await _send_json(send, rec, status, _error_body(style, status))

        selector = rec.headers.get("x-replay-file")
        if selector is None and isinstance(rec.body, dict):
            selector = rec.body.get("model")
        selector = selector or path_model
        path = self._resolve(selector, default_dir)
        if path is None:
            message = f"no recording {selector!r}; use x-replay-file: <format>/<file>"
            return await _send_json(send, rec, 404, _error_body(style, 404, message))
        rec.file = f"{path.parent.name}/{path.name}"

        chunk = rec.headers.get("x-replay-chunk")
        chunks = split_chunks(path.read_bytes(), path.suffix, int(chunk) if chunk else None)
        delay = float(rec.headers.get("x-replay-delay", "0"))
        rec.status = 200
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPES[path.suffix].encode()),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        await self._stream(rec, chunks, delay, receive, send)

    def _route(self, rec: RequestRecord) -> tuple[str, str, str | None] | None:
        if rec.path in _ROUTES:
            return (*_ROUTES[rec.path], None)
        match = _GEMINI_PATH.match(rec.path)
        if match is None:
            return None
        # Servers decode %2F in scope["path"]; unquote again for clients that
        # double-encode.  No alt=sse means the JSON-array flavour.
        alt = parse_qs(rec.query).get("alt", [""])[0]
        default_dir = "gemini" if alt == "sse" else "gemini-json-array"
        return default_dir, "gemini", unquote(match["model"])

    def _resolve(self, selector: str | None, default_dir: str) -> Path | None:
        if not selector:
            return None
        rel = selector if "/" in selector else f"{default_dir}/{selector}"
        path = (self.fixtures / rel).resolve()
        # Refuse anything outside the fixtures tree (e.g. "../../etc/passwd").
        if not path.is_relative_to(self.fixtures) or not path.is_file():
            return None
        if path.suffix not in CONTENT_TYPES:
            return None
        return path

    async def _stream(
        self, rec: RequestRecord, chunks: list[bytes], delay: float, receive: Any, send: Any
    ) -> None:
        # The disconnect watcher runs beside the send loop: a server that only
        # learns of a departed client when a write fails would notice late (or
        # never, since uvicorn silently drops writes to closed connections).
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                if not rec.completed:
                    rec.closed_early = True
                    rec.closed_at = time.monotonic()
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            for i, piece in enumerate(chunks):
                if i and delay:
                    await anyio.sleep(delay)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                rec.chunks_sent += 1
                rec.bytes_sent += len(piece)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            rec.completed = True
            tg.cancel_scope.cancel()


async def _read_body(receive: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _send_json(send: Any, rec: RequestRecord, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    rec.status = status
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
    rec.completed = True
    rec.bytes_sent = len(body)
