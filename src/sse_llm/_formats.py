"""Wire formats: how normalised LLM events are written to the client.

A :class:`WireFormat` is a stateless description shared by every request; each stream asks it
for a fresh :class:`Renderer` holding that stream's state (an AI SDK stream must announce a text
part once, say). Renderers return ready-to-send bytes, ``b""`` when an event has no
representation in the format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any, Protocol

from ._encoder import encode_data
from ._model import LLMEvent, ReasoningDelta, TextDelta, ToolCall, Usage
from ._result import StreamResult

__all__ = ["EventsFormat", "Renderer", "TextFormat", "WireFormat", "dumps", "usage_json"]

_json_string: Any = encode_basestring  # C-accelerated; keeps non-ASCII as is (UTF-8 on the wire)


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the body is UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Renderer(Protocol):
    """One stream's writer. Every method returns bytes to send, possibly empty."""

    def start(self) -> bytes:
        """Bytes sent right after the headers (e.g. an AI SDK ``start`` part)."""
        ...

    def text(self, text: str) -> bytes:
        """A text delta: the hot path, called for every token of a plain text source."""
        ...

    def event(self, event: LLMEvent) -> bytes:
        """Any other normalised event."""
        ...

    def error(self, message: str, code: str | None) -> bytes:
        """The stream failed; ``message`` is safe to show the end user."""
        ...

    def end(self, result: StreamResult) -> bytes:
        """The last bytes of a stream that ended completed, with an error, or at shutdown."""
        ...

    # Optional: a renderer that holds text back (to coalesce renders) also defines
    # ``flush_interval`` (seconds) and ``flush() -> bytes``; while the source is silent the
    # pump calls ``flush()`` at least that often and sends what it returns.


class WireFormat(Protocol):
    """A wire format: its media type, extra headers and a renderer per stream.

    Attributes:
        media_type: the ``content-type`` without parameters (``charset=utf-8`` is added).
        headers: extra response headers, e.g. ``{"x-vercel-ai-ui-message-stream": "v1"}``.
        heartbeat: the bytes of a keep-alive that every client of the format ignores.
    """

    media_type: str
    headers: Mapping[str, str]
    heartbeat: bytes

    def renderer(self) -> Renderer:
        """A fresh renderer for one stream."""
        ...


def usage_json(usage: Usage | None) -> dict[str, int] | None:
    return usage.as_dict() if usage is not None else None


class _EventsRenderer:
    __slots__ = ()

    def start(self) -> bytes:
        return b""

    def text(self, text: str) -> bytes:
        return f'event: delta\ndata: {{"text":{_json_string(text)}}}\n\n'.encode()

    def event(self, event: LLMEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.text)
        if type(event) is ReasoningDelta:
            return f'event: reasoning\ndata: {{"text":{_json_string(event.text)}}}\n\n'.encode()
        if type(event) is ToolCall:
            payload = {
                "index": event.index,
                "id": event.id,
                "name": event.name,
                "arguments": event.arguments,
            }
            return encode_data(dumps(payload), "tool_call")
        # ToolCallDelta is rendered whole as ``tool_call``; Finish and Usage go into ``done``.
        return b""

    def error(self, message: str, code: str | None) -> bytes:
        return encode_data(dumps({"message": message, "code": code}), "error")

    def end(self, result: StreamResult) -> bytes:
        if result.reason != "completed":
            return b""
        finish = result.finish
        payload = {
            "finish_reason": finish.reason if finish else None,
            "raw_finish_reason": finish.raw_reason if finish else None,
            "usage": usage_json(result.usage),
        }
        return encode_data(dumps(payload), "done")


class EventsFormat:
    """The default protocol: named SSE events with JSON data.

    ======================  ==========================================================
    ``event: delta``        ``{"text": "..."}``: append to the answer
    ``event: reasoning``    ``{"text": "..."}``: append to the reasoning
    ``event: tool_call``    ``{"index": 0, "id": "call_1", "name": "f", "arguments": "{...}"}``
    ``event: done``         ``{"finish_reason": "stop", "raw_finish_reason": "stop",
                            "usage": {"input_tokens": 9, "output_tokens": 12} | null}``
    ``event: error``        ``{"message": "...", "code": "..." | null}``: the last event
    ======================  ==========================================================

    Text travels as a JSON string, so the client gets exactly the model's text (CR included),
    whichever SSE parser it uses. ``done`` or ``error`` is always the last event: a browser
    ``EventSource`` should ``close()`` on either, or it reconnects and asks again.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    heartbeat = b":\n"

    def renderer(self) -> Renderer:
        return _EventsRenderer()


class _TextRenderer:
    __slots__ = ("_after_cr",)

    def __init__(self) -> None:
        # The last text ended with CR: a leading LF now is the second half of a CRLF that
        # the tokenizer split, and must not become a second line break.
        self._after_cr = False

    def start(self) -> bytes:
        return b""

    def text(self, text: str) -> bytes:
        if not self._after_cr and "\n" not in text and "\r" not in text:
            return f"data: {text}\n\n".encode() if text else b""  # one line: the usual token
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        return encode_data(text) if text else b""

    def event(self, event: LLMEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.text)
        return b""

    def error(self, message: str, code: str | None) -> bytes:
        return encode_data(dumps({"message": message, "code": code}), "error")

    def end(self, result: StreamResult) -> bytes:
        if result.reason != "completed":
            return b""
        finish = result.finish
        return encode_data(dumps({"finish_reason": finish.reason if finish else None}), "done")


class TextFormat:
    """Plain SSE: each text delta is an unnamed event whose data is the text itself.

    Readable with ``EventSource.onmessage`` and no JSON. The format's one change to the text:
    CR and CRLF arrive as LF (WHATWG HTML §9.2.6). Ends with ``event: done``
    (``{"finish_reason": ...}``) or ``event: error``; reasoning and tool calls are not sent.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    heartbeat = b":\n"

    def renderer(self) -> Renderer:
        return _TextRenderer()
