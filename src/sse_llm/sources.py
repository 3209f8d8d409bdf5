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
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Protocol, cast, runtime_checkable

import anyio

from ._decoder import MAX_EVENT_SIZE, SSEDecoder
from ._events import ServerSentEvent
from ._exceptions import EventTooLargeError, ProviderError
from ._providers import error_fields

__all__ = ["ByteSource", "HTTPResponse", "http_error", "json_array", "ndjson", "sse_json"]

#: Seconds allowed for closing the upstream response.
CLOSE_TIMEOUT = 5.0
#: At most this many bytes of an error body are read (bytes).
ERROR_BODY_LIMIT = 65536

_DECODER = json.JSONDecoder()
#: The character that ends a JSON value beginning with each of these.
_CLOSER = {"{": "}", "[": "]", '"': '"'}
_WHITESPACE = " \t\r\n"
# json_array's scanner (_ArrayParser._scan), over bytes. Outside strings: up to the next
# bracket, whole strings included. Inside a string: up to its closing quote (escapes included)
# or a backslash ending the read. The rest of a number or literal: up to a delimiter. Each
# matches everywhere (the empty string at least), hence the casts: never None.
_Match = Callable[[bytes, int], "re.Match[bytes]"]
_skip = cast(_Match, re.compile(rb'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.S).match)
_string_rest = cast(_Match, re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S).match)
_scalar_rest = cast(_Match, re.compile(rb'[^ \t\r\n,\[\]{}"]*+').match)
_scalar_rest_text = cast(
    Callable[[str, int], "re.Match[str]"], re.compile(r'[^ \t\r\n,\[\]{}"]*+').match
)


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
    with a JSON error body (as recorded from each API: OpenAI ``{"error": {"message", "type",
    "code"}}``, Anthropic ``{"type": "error", "error": {...}}``, Gemini ``{"error": {"code",
    "message", "status"}}`` (pretty-printed, even under ``text/event-stream``, and wrapped in
    an array by ``streamGenerateContent``), Ollama ``{"error": "..."}``). The message is the
    provider's; the code is its error code, type or status, else the HTTP status as text. A
    body that is not such JSON (an HTML page from a proxy) gives a generic message naming the
    status.

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
    return _body_error(
        bytes(body), f"The model provider answered with HTTP status {status}.", str(status), status
    )


def _body_error(body: bytes, message: str, code: str, status: int | None = None) -> ProviderError:
    """The provider's error in the first :data:`ERROR_BODY_LIMIT` bytes of a body that is not
    the stream (its JSON error's message and code), else ``message`` and ``code``."""
    try:
        payload: Any = json.loads(body[:ERROR_BODY_LIMIT])
    except ValueError:
        payload = None
    found_message, found_code = error_fields(payload)
    return ProviderError(found_message or message, found_code or code, status=status)


async def sse_json(source: ByteSource, *, done: str = "[DONE]") -> AsyncIterator[Any]:
    """The JSON payloads of an SSE stream, in order.

    Decoding follows WHATWG HTML §9.2.5 (any of CRLF/CR/LF, split anywhere; comments such as
    OpenRouter's ``: OPENROUTER PROCESSING`` skipped; events whose data is empty or only
    whitespace skipped). The stream ends at a ``data:`` equal to ``done`` once stripped
    (OpenAI's ``[DONE]``; pass ``done=""`` to
    read on) or when the body ends (Gemini, Anthropic and the Responses API send no
    terminator). An ``event: error`` (Groq, Anthropic) is surfaced as an error object for the
    provider normaliser: its payload is yielded with ``"type": "error"`` added when it already
    reads as an error (``{"error": ...}`` or ``"type": "error"``), otherwise wrapped as
    ``{"type": "error", "error": payload}``.

    Raises:
        ProviderError: the response status is not 2xx (see :func:`http_error`), or a 2xx
            response not labelled ``text/event-stream`` ended with no event in a body that
            is not blank (a proxy's or captive portal's page, a JSON error, a whole
            completion from a server that ignored ``stream``): the provider's JSON error if
            the body is one, else a message naming the type (code ``not_an_event_stream``).
            A stream served under another type is read as a stream.
        ValueError: a ``data:`` payload is not JSON (``json.JSONDecodeError``).
        EventTooLargeError: an event outgrew 16 MiB of characters (a body that never ends
            its event: see :class:`~sse_llm.SSEDecoder`'s ``max_event_size``).
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        content_type = _content_type(source)
        labelled = content_type is None or _media_type(content_type) == "text/event-stream"
        head = bytearray()  # the body's start, kept until an event comes (an error page's)
        seen = False
        decoder = SSEDecoder()
        async for chunk in _chunks(source):
            if not seen and len(head) < ERROR_BODY_LIMIT:
                head += chunk
            for item in decoder.feed(chunk):
                if type(item) is not ServerSentEvent:
                    continue  # a comment (keep-alive)
                seen = True
                data = item.data
                if not data.strip():
                    continue  # a bare "data:" (a gateway's keep-alive)
                if done and data.strip() == done:
                    return
                if item.event == "error":
                    yield _error_payload(data)
                else:
                    yield json.loads(data)
        decoder.close()
        if not seen and not labelled and bytes(head).strip():
            # Not labelled a stream and none in it: a page or a JSON error, not an answer.
            media_type = _media_type(content_type or "") or "no type"
            raise _body_error(
                bytes(head),
                f"The model provider answered with {media_type}, not an event stream.",
                "not_an_event_stream",
            )
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
        EventTooLargeError: a line outgrew 16 MiB (bytes) before its newline: a body that
            is not NDJSON would otherwise grow in memory without bound.
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        pending: list[bytes] = []  # pieces of a line not yet ended
        pending_size = 0
        async for chunk in _chunks(source):
            if b"\n" not in chunk:
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size > MAX_EVENT_SIZE:
                    raise EventTooLargeError(
                        f"an NDJSON line outgrew {MAX_EVENT_SIZE} bytes without a newline"
                    )
                continue
            pending.append(chunk)
            *lines, rest = b"".join(pending).split(b"\n")
            pending = [rest] if rest else []
            pending_size = len(rest)
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
    ``\\n,\\r\\n{...}`` ... then ``\\n]`` (as recorded from the Gemini API). The parser skips ``[``,
    ``,``, ``]`` and JSON whitespace between elements and decodes each element once, as soon as
    its last character has arrived (Gemini's elements are objects; any JSON value is read).
    UTF-8 is decoded incrementally, so a read may end inside a multi-byte character. The cost
    is linear in the body whatever the read size: an element split across reads is followed
    over each new read only (bracket depth, strings, escapes) and decoded once, when complete.

    Raises:
        ProviderError: the response status is not 2xx (see :func:`http_error`).
        ValueError: the body is not a JSON array, an element is not JSON, or the body ends
            before its closing ``]``.
    """
    try:
        error = await http_error(source)
        if error is not None:
            raise error
        parser = _ArrayParser()
        async for chunk in _chunks(source):
            for element in parser.feed(chunk):
                yield element
        for element in parser.feed(b"", final=True):
            yield element
        parser.close()
    finally:
        await _close(source)


class _ArrayParser:
    """Incremental reader of one top-level JSON array (states: before ``[``, before the first
    element or ``]``, before a later element, after an element, after ``]``).

    Linear in the body whatever the read size. An element that arrives within one read is
    decoded there, by ``raw_decode`` on the read's text. One that goes on past its first read
    is tried whole once more with the next read, if it is still small next to that read (at
    most TRY_RATIO times: a Gemini chunk cut by a TCP segment), at a cost bounded by a
    constant times that read. Otherwise, or if it goes on, it is kept as its raw bytes, a list
    of pieces, while :meth:`_scan` follows its bracket depth and string/escape state over each
    new read only (never from the element's start again), and it is decoded once, when its
    last character has arrived. Scanning bytes is safe: the characters that matter (brackets,
    quotes, backslash, delimiters) are ASCII, and no byte of a multi-byte UTF-8 character is.
    """

    TRY_RATIO = 4

    __slots__ = (
        "_depth",
        "_escape",
        "_head",
        "_in_string",
        "_pieces",
        "_scalar",
        "_state",
        "_utf8",
    )

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._state = "start"  # start | first | element | separator | end
        self._head = ""  # the text of an element begun in the last read, to try once more
        self._pieces: list[bytes] = []  # or the bytes so far of an element followed by _scan
        self._scalar = False  # that element is a number or a literal (no brackets, no quotes)
        self._depth = 0  # brackets open in it
        self._in_string = False  # it stops inside a string
        self._escape = False  # ... right after a backslash

    def feed(self, data: bytes, final: bool = False) -> list[Any]:
        out: list[Any] = []
        text: str | None
        if self._head and (data or final):
            text = self._retry(data, final, out)
        elif self._pieces and data:
            text = self._follow(data, final, out)
        else:
            text = self._utf8.decode(data, final)
        if text is None:
            return out  # the element goes on past this read
        pos, end = 0, len(text)
        while True:
            while pos < end and text[pos] in _WHITESPACE:
                pos += 1
            if pos == end:
                break
            char, state = text[pos], self._state
            if state == "start":
                if char != "[":
                    raise ValueError(f"expected a JSON array, got {char!r}")
                pos += 1
                self._state = "first"
            elif state == "first" and char == "]":
                pos += 1  # an empty array
                self._state = "end"
            elif state in ("first", "element"):
                if char in '{["':
                    # An element cut by the end of the read fails to decode, and a failed
                    # decode costs several times a whole one (the exception): when the read
                    # holds no character that could close it, it cannot be complete.
                    if text.find(_CLOSER[char], pos + 1) < 0:
                        self._head = text[pos:]
                        break
                    try:
                        element, pos = _DECODER.raw_decode(text, pos)
                    except json.JSONDecodeError:
                        self._head = text[pos:]  # not complete in this read (or not JSON)
                        break
                else:  # a number or a literal ends at a delimiter, which may not be here yet
                    stop = _scalar_rest_text(text, pos).end()
                    if stop == end:
                        self._keep(text[pos:].encode(), scalar=True)
                        break
                    element = _DECODER.decode(text[pos:stop])
                    pos = stop
                out.append(element)
                self._state = "separator"
            elif state == "separator":
                if char not in ",]":
                    raise ValueError(f"expected ',' or ']' in a JSON array, got {char!r}")
                pos += 1
                self._state = "element" if char == "," else "end"
            else:
                raise ValueError(f"unexpected {char!r} after the end of a JSON array")
        return out

    def close(self) -> None:
        if self._state != "end":
            raise ValueError("the JSON array ended before its closing ']'")

    def _retry(self, data: bytes, final: bool, out: list[Any]) -> str | None:
        """The read after the one where an element began: the element goes to ``out`` and the
        text after it is returned, or ``None`` if it goes on (then followed by :meth:`_scan`)."""
        head, self._head = self._head, ""
        rest = self._utf8.decode(data, final)
        text = head + rest
        # Decode it whole once more if that costs a constant times this read, and this read
        # may end it (its last character is a bracket or a quote).
        if len(head) <= self.TRY_RATIO * len(rest) and ("}" in rest or "]" in rest or '"' in rest):
            try:
                element, end = _DECODER.raw_decode(text)
            except json.JSONDecodeError:
                pass  # not complete yet, or not JSON (then the scan below finds its end)
            else:
                return self._done(element, out, text[end:])
        # The scanner, from the element's start. Decoding with "replace" and encoding again
        # gives the same text: the bytes are the element's as far as the decoder went.
        piece = text.encode()
        self._depth, self._in_string, self._escape = 0, text[0] == '"', False
        stop = self._scan(piece, 1 if self._in_string else 0)
        if stop >= 0:  # it ends in this read after all (not tried, or not JSON: raises)
            whole = piece[:stop].decode()
            return self._done(_DECODER.decode(whole), out, text[len(whole) :])
        self._keep(piece, scalar=False)
        return None

    def _keep(self, piece: bytes, *, scalar: bool) -> None:
        """Keep the element's bytes so far, and those the decoder holds (the start of a
        character cut by the end of the read): from now on, reads are taken as bytes."""
        held = self._utf8.getstate()[0]
        self._utf8.reset()
        self._pieces = [piece, held] if held else [piece]
        self._scalar = scalar
        if held and not scalar:
            self._scan(held, 0)  # not an end (no ASCII), but it may be the escaped character

    def _follow(self, data: bytes, final: bool, out: list[Any]) -> str | None:
        """The next read of an element followed across reads: the element goes to ``out`` and
        the text after it is returned, or ``None`` if it goes on past this read."""
        if self._scalar:
            stop = _scalar_rest(data, 0).end()
            if stop == len(data):
                self._pieces.append(data)
                return None
        else:
            if self._in_string and not self._escape and b'"' not in data and data[-1] != 0x5C:
                # The middle of a long string (a base64 image): nothing here can end it.
                self._pieces.append(data)
                return None
            stop = self._scan(data, 0)
            if stop < 0:
                self._pieces.append(data)
                return None
        self._pieces.append(data[:stop])
        whole = b"".join(self._pieces).decode("utf-8", "replace")
        self._pieces = []
        return self._done(_DECODER.decode(whole), out, self._utf8.decode(data[stop:], final))

    def _done(self, element: Any, out: list[Any], rest: str) -> str:
        out.append(element)
        self._state = "separator"
        return rest

    def _scan(self, data: bytes, pos: int) -> int:
        """Follow the element being read through ``data`` from ``pos``: the index just past its
        end, or -1 if it goes on past this read (the state is kept for the next read).

        Only brackets outside strings, and the quotes and backslashes of strings, matter; the
        regular expressions skip everything else, so Python code runs per bracket at most.
        """
        end = len(data)
        depth = self._depth
        if self._in_string:
            if self._escape:
                self._escape = False
                pos += 1  # the byte after the backslash
            if data.find(b'"', pos) < 0:  # the string goes on past this read (memchr speed)
                if data.endswith(b"\\"):  # an odd run of backslashes escapes the next byte
                    self._escape = min(end - len(data.rstrip(b"\\")), end - pos) % 2 == 1
                return -1
            pos = _string_rest(data, pos).end()
            if pos == end:  # every quote here was escaped
                return -1
            if data[pos] == 0x5C:  # the read ends right after a backslash
                self._escape = True
                return -1
            pos += 1  # just past the closing quote
            self._in_string = False
            if depth == 0:
                return pos  # the element was a string
        while True:
            pos = _skip(data, pos).end()
            if pos == end:
                self._depth = depth
                return -1
            byte = data[pos]
            pos += 1
            if byte == 0x22:  # _skip takes whole strings: this one does not end in this read
                self._depth = depth
                self._in_string = True
                return self._scan(data, pos)  # -1, with the escape state set
            if byte == 0x5B or byte == 0x7B:  # [ {
                depth += 1
            else:  # ] }
                depth -= 1
                if depth <= 0:
                    self._depth = 0
                    return pos


def _chunks(source: ByteSource) -> AsyncIterator[bytes]:
    if isinstance(source, HTTPResponse):
        return source.aiter_bytes()
    return aiter(source)


def _error_payload(data: str) -> Any:
    # Shaped as both families read an error: a top-level "error" (Chat Completions, Gemini,
    # Ollama) and "type": "error" (Anthropic, the Responses API).
    try:
        payload: Any = json.loads(data)
    except ValueError:
        return {"type": "error", "error": {"message": data}}
    if isinstance(payload, dict) and (payload.get("error") or payload.get("type") == "error"):
        return payload if "type" in payload else {"type": "error", **payload}
    return {"type": "error", "error": payload}


def _content_type(source: ByteSource) -> str | None:
    """A response's ``Content-Type`` (``""`` if it has none); ``None`` for a plain byte
    iterable, which has no headers."""
    headers = getattr(source, "headers", None)
    if headers is None or not isinstance(getattr(source, "status_code", None), int):
        return None
    return str(headers.get("content-type", ""))


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


async def _close(source: ByteSource) -> None:
    close = getattr(source, "aclose", None)
    if close is None:
        return
    # Shielded: this runs when the pump cancels the stream, and closing is what tells the
    # provider to stop generating.
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
        await close()
