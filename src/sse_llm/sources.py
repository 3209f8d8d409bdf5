"""Read a provider's raw HTTP stream without its SDK: bytes in, JSON items out.

For providers called with plain ``httpx`` (Gemini's REST API, Ollama, Databricks endpoints, any
OpenAI- or Anthropic-shaped server), these async generators turn the response body into the
provider's JSON objects, which :class:`~sse_llm.EventStream` recognises and normalises::

    client = httpx.AsyncClient(timeout=60)  # one per app, closed at shutdown

    async def chat(request: Request) -> SSEResponse:
        upstream = client.build_request("POST", GEMINI_URL + "?alt=sse", json=body)
        return SSEResponse(sse_json(await client.send(upstream, stream=True)))

- :func:`sse_json`: ``text/event-stream`` whose ``data:`` lines are JSON, up to
  ``data: [DONE]`` (OpenAI and compatibles, Anthropic, the Responses API, Gemini with
  ``?alt=sse``, Databricks agents);
- :func:`ndjson`: one JSON object per line, ``application/x-ndjson`` (Ollama);
- :func:`json_array`: one JSON array written element by element (Gemini without ``alt=sse``).

Each accepts an ``httpx.Response`` opened with ``stream=True`` (anything with ``aiter_bytes()``,
``status_code`` and ``aclose()``) or any async iterable of ``bytes``. A response whose status
is not 2xx raises :class:`~sse_llm.ProviderError` with the provider's message before any item
(see :func:`http_error`). Each generator closes the response (or calls the iterable's
``aclose()``) when it ends, fails or is closed: when the browser goes away, the pump closes the
generator and the upstream connection is dropped, so the provider stops generating.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol, runtime_checkable

import anyio

from ._decoder import SSEDecoder
from ._events import ServerSentEvent
from ._exceptions import ProviderError
from ._providers import error_fields

__all__ = ["ByteSource", "HTTPResponse", "http_error", "json_array", "ndjson", "sse_json"]

#: Seconds allowed for closing the upstream response.
CLOSE_TIMEOUT = 5.0
#: At most this many bytes of an error body are read (bytes).
ERROR_BODY_LIMIT = 65536

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


@runtime_checkable
class HTTPResponse(Protocol):
    """The part of ``httpx.Response`` these readers use."""

    @property
    def status_code(self) -> int: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


#: What the readers accept: an HTTP response, or any async iterable of body bytes.
ByteSource = HTTPResponse | AsyncIterable[bytes]


async def http_error(response: ByteSource) -> ProviderError | None:
    """The provider's error if ``response`` has a non-2xx status, else ``None``.

    Reads at most :data:`ERROR_BODY_LIMIT` bytes of the body. Providers answer a failed request
    with a JSON error body (FORMATS: OpenAI ``{"error": {"message", "type", "code"}}``,
    Anthropic ``{"type": "error", "error": {...}}``, Gemini ``{"error": {"code", "message",
    "status"}}`` (pretty-printed, even under ``text/event-stream``, and wrapped in an array by
    ``streamGenerateContent``), Ollama ``{"error": "..."}``). The message is the provider's;
    the code is its error code, type or status, else the HTTP status as text. A body that is
    not such JSON (an HTML page from a proxy) gives a generic message naming the status.

    An iterable with no ``status_code`` is taken to be a successful body.
    """
    status = getattr(response, "status_code", None)
    if not isinstance(status, int) or 200 <= status < 300:
        return None
    body = bytearray()
    chunks = response.aiter_bytes() if isinstance(response, HTTPResponse) else None
    if chunks is not None:
        async for chunk in chunks:
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    try:
        payload: Any = json.loads(bytes(body[:ERROR_BODY_LIMIT]))
    except ValueError:
        payload = None
    message, code = error_fields(payload)
    return ProviderError(
        message or f"The model provider answered with HTTP status {status}.",
        code or str(status),
    )


async def sse_json(source: ByteSource, *, done: str = "[DONE]") -> AsyncIterator[Any]:
    """The JSON payloads of an SSE stream, in order.

    Decoding follows WHATWG HTML §9.2.5 (any of CRLF/CR/LF, split anywhere; comments such as
    OpenRouter's ``: OPENROUTER PROCESSING`` skipped; events with empty data skipped). The
    stream ends at a ``data:`` equal to ``done`` (OpenAI's ``[DONE]``; pass ``done=""`` to
    read on) or when the body ends (Gemini, Anthropic and the Responses API send no
    terminator). An ``event: error`` (Groq, Anthropic) is surfaced as an error object for the
    provider normaliser: its payload is yielded as is when it already reads as an error
    (``{"error": ...}`` or ``"type": "error"``), otherwise wrapped as ``{"error": payload}``.

    Raises:
        ProviderError: the response status is not 2xx (see :func:`http_error`).
        ValueError: a ``data:`` payload is not JSON (``json.JSONDecodeError``).
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        decoder = SSEDecoder()
        async for chunk in _chunks(source):
            for item in decoder.feed(chunk):
                if type(item) is not ServerSentEvent:
                    continue  # a comment (keep-alive)
                data = item.data
                if done and data.strip() == done:
                    return
                if item.event == "error":
                    yield _error_payload(data)
                else:
                    yield json.loads(data)
        decoder.close()
    finally:
        await _close(source)


async def ndjson(source: ByteSource) -> AsyncIterator[Any]:
    """The objects of a newline-delimited JSON stream (``application/x-ndjson``), in order.

    Lines end at LF (a CR before it is stripped); blank lines are skipped; a last line without
    a newline is still read. Splitting happens on bytes, which is safe for UTF-8: the LF byte
    never occurs inside a multi-byte character. Source: the NDJSON spec
    (github.com/ndjson/ndjson-spec), Ollama ``docs/api.md`` "Streaming responses".

    Raises:
        ProviderError: the response status is not 2xx (see :func:`http_error`).
        ValueError: a line is not JSON (``json.JSONDecodeError``).
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        pending: list[bytes] = []  # pieces of a line not yet ended
        async for chunk in _chunks(source):
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            pending.append(chunk)
            *lines, rest = b"".join(pending).split(b"\n")
            pending = [rest] if rest else []
            for line in lines:
                if line.strip():
                    yield json.loads(line)
        last = b"".join(pending)
        if last.strip():
            yield json.loads(last)
    finally:
        await _close(source)


async def json_array(source: ByteSource) -> AsyncIterator[Any]:
    """The elements of a JSON array that arrives bit by bit, each as soon as it is complete.

    Gemini's ``streamGenerateContent`` without ``alt=sse`` writes ``[{...}`` then
    ``\\n,\\r\\n{...}`` ... then ``\\n]`` (FORMATS: gemini-json-array). The parser skips ``[``,
    ``,``, ``]`` and JSON whitespace between elements and decodes each element with
    ``json.JSONDecoder.raw_decode`` once its closing brace has arrived (elements must be
    objects or arrays, as Gemini's are). UTF-8 is decoded incrementally, so a read may end
    inside a multi-byte character.

    Raises:
        ProviderError: the response status is not 2xx (see :func:`http_error`).
        ValueError: the body is not a JSON array, or it ends before its closing ``]``.
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        parser = _ArrayParser()
        async for chunk in _chunks(source):
            for element in parser.feed(utf8.decode(chunk)):
                yield element
        for element in parser.feed(utf8.decode(b"", final=True)):
            yield element
        parser.close()
    finally:
        await _close(source)


class _ArrayParser:
    """Incremental reader of one top-level JSON array (states: before ``[``, before the first
    element or ``]``, before a later element, after an element, after ``]``)."""

    __slots__ = ("_buffer", "_state", "_waiting")

    def __init__(self) -> None:
        self._buffer = ""
        self._state = "start"  # start | first | element | separator | end
        self._waiting = False  # the buffer holds an incomplete element

    def feed(self, text: str) -> list[Any]:
        if not text:
            return []
        self._buffer += text
        if self._waiting and "}" not in text and "]" not in text:
            return []  # an object or array can only be completed by a closing bracket
        out: list[Any] = []
        buffer, pos, end = self._buffer, 0, len(self._buffer)
        while True:
            while pos < end and buffer[pos] in _WHITESPACE:
                pos += 1
            if pos == end:
                break
            char, state = buffer[pos], self._state
            if state == "start":
                if char != "[":
                    raise ValueError(f"expected a JSON array, got {char!r}")
                pos += 1
                self._state = "first"
            elif state == "first" and char == "]":
                pos += 1  # an empty array
                self._state = "end"
            elif state in ("first", "element"):
                try:
                    element, pos = _DECODER.raw_decode(buffer, pos)
                except json.JSONDecodeError:
                    self._waiting = True
                    break
                self._waiting = False
                out.append(element)
                self._state = "separator"
            elif state == "separator":
                if char not in ",]":
                    raise ValueError(f"expected ',' or ']' in a JSON array, got {char!r}")
                pos += 1
                self._state = "element" if char == "," else "end"
            else:
                raise ValueError(f"unexpected {char!r} after the end of a JSON array")
        self._buffer = buffer[pos:]
        return out

    def close(self) -> None:
        if self._state != "end" or self._buffer.strip():
            raise ValueError("the JSON array ended before its closing ']'")


def _chunks(source: ByteSource) -> AsyncIterator[bytes]:
    if isinstance(source, HTTPResponse):
        return source.aiter_bytes()
    return aiter(source)


def _error_payload(data: str) -> Any:
    try:
        payload: Any = json.loads(data)
    except ValueError:
        return {"error": {"message": data}}
    if isinstance(payload, dict) and (payload.get("error") or payload.get("type") == "error"):
        return payload
    return {"error": payload}


async def _close(source: ByteSource) -> None:
    close = getattr(source, "aclose", None)
    if close is None:
        return
    # Shielded: this runs when the pump cancels the stream, and closing is what tells the
    # provider to stop generating.
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
        await close()
