"""What a wire format is: a stateless description, and a writer per stream.

A :class:`WireFormat` is shared by every request; each stream asks it for a fresh
:class:`FormatWriter` holding that stream's state (an AI SDK stream must announce a text part
once, say). A writer returns a sequence of ready-to-send units, one per event (an SSE event
ending with its blank line; for the WebSocket, one message): the engine joins them for an HTTP
body, numbers them for a resumable stream, or sends each as a message, without parsing bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .._encoder import encode_data

if TYPE_CHECKING:
    from .._model import Citation, LLMEvent, ToolActivity, ToolCall, Usage
    from .._result import StreamResult

__all__ = [
    "NOTHING",
    "FormatWriter",
    "Units",
    "WireFormat",
    "WriterBase",
    "activity_fields",
    "data_event",
    "done_fields",
    "dumps",
    "json_string",
    "jsonable",
    "source_fields",
    "tool_call_fields",
    "usage_json",
]

#: A writer's output: one element per event, each ready to send (an SSE event ends with the
#: blank line that dispatches it; a keep-alive comment is one line).
Units: TypeAlias = Sequence[bytes]
#: The empty output, shared.
NOTHING: Units = ()

#: Characters JSON leaves raw that Python's ``str.splitlines`` (httpx's ``iter_lines``, many
#: hand-written SSE loops) takes for line breaks (NEL, LS, PS; the C0 ones the encoder escapes
#: already): a raw one would split a ``data:`` line there. Escaped, they decode the same.
_LINE_SPLITTERS = re.compile("[\x85\u2028\u2029]")


def _escape_splitter(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def json_string(text: str) -> str:
    """A JSON string literal of ``text`` (C-accelerated; non-ASCII kept as is, the body is
    UTF-8, but for NEL, LS and PS, escaped: see ``_LINE_SPLITTERS``)."""
    encoded = encode_basestring(text)
    # isascii is O(1); three substring scans beat the regex's search several times on CJK text.
    if text.isascii() or (
        "\u2028" not in encoded and "\u2029" not in encoded and "\x85" not in encoded
    ):
        return encoded
    return _LINE_SPLITTERS.sub(_escape_splitter, encoded)


#: One encoder for every event: ``json.dumps`` with any non-default argument builds a new
#: ``JSONEncoder`` per call, which costs more than encoding a token's payload. ``encode`` keeps
#: no state between calls, so one instance serves every thread.
#: ``allow_nan=False``: ``NaN`` is no JSON, and a client's parser would fail on the event.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the body is UTF-8) but for NEL, LS and PS (see
    ``_LINE_SPLITTERS``), escaped."""
    encoded = _ENCODER.encode(value)
    if encoded.isascii() or (
        "\u2028" not in encoded and "\u2029" not in encoded and "\x85" not in encoded
    ):
        return encoded
    return _LINE_SPLITTERS.sub(_escape_splitter, encoded)


def data_event(payload: Any, event: str | None = None) -> bytes:
    """One SSE event carrying ``payload`` as compact JSON: a single ``data:`` line, since line
    breaks inside JSON strings are escapes."""
    if event is None:
        return f"data: {dumps(payload)}\n\n".encode()
    return encode_data(dumps(payload), event)


def usage_json(usage: Usage | None) -> dict[str, int] | None:
    """``{"input_tokens": 9, ...}`` (the counts that are known), or ``None``."""
    return usage.as_dict() if usage is not None else None


def tool_call_fields(call: ToolCall) -> dict[str, Any]:
    """``{"index": 0, "id": "call_1", "name": "f", "arguments": "{...}"}``."""
    return {"index": call.index, "id": call.id, "name": call.name, "arguments": call.arguments}


def source_fields(citation: Citation) -> dict[str, Any]:
    """A :class:`~sse_llm.Citation` as JSON fields, every key present (``null`` when unknown)::

        {"kind": "url", "url": "https://…", "title": "…", "document_id": null,
         "container_id": null, "cited_text": null, "start": 0, "end": 42, "index": 1}

    ``start`` / ``end`` count characters (code points) of the whole answer text; ``index`` is
    the source's number in a numbered list (Perplexity's ``[1]`` markers). ``raw`` is never
    sent.
    """
    return {
        "kind": citation.kind,
        "url": citation.url,
        "title": citation.title,
        "document_id": citation.document_id,
        "container_id": citation.container_id,
        "cited_text": citation.cited_text,
        "start": citation.start,
        "end": citation.end,
        "index": citation.index,
    }


def activity_fields(activity: ToolActivity, with_input: bool = False) -> dict[str, Any]:
    """A :class:`~sse_llm.ToolActivity` as JSON fields: ``{"id": "ws_1", "name": "web_search",
    "status": "started", "summary": "météo Paris"}``; with ``with_input``, also ``"input"`` (the
    tool's arguments as the model wrote them, or ``null``). ``raw`` is never sent."""
    fields: dict[str, Any] = {
        "id": activity.id,
        "name": activity.name,
        "status": activity.status,
        "summary": activity.summary,
    }
    if with_input:
        fields["input"] = None if activity.input is None else jsonable(activity.input)
    return fields


def jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot carry written as its ``str`` (a LangChain tool's
    arguments may hold any Python object; a float JSON has no literal for, ``nan`` or
    ``inf``, becomes the string ``"NaN"``, ``"Infinity"``)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str), parse_constant=str)


def done_fields(result: StreamResult) -> dict[str, Any]:
    """``{"finish_reason": "stop", "raw_finish_reason": "stop", "usage": {...} | None}``."""
    finish = result.finish
    return {
        "finish_reason": finish.reason if finish else None,
        "raw_finish_reason": finish.raw_reason if finish else None,
        "usage": usage_json(result.usage),
    }


class FormatWriter(Protocol):
    """One stream's writer. Every method returns :data:`Units`, possibly empty.

    Attributes:
        flush_interval: seconds, or ``None``. A writer that holds text back (to coalesce
            renders) sets it: while the source is silent, the pump calls :meth:`flush` at
            least that often and sends what it returns.
    """

    flush_interval: float | None

    def start(self) -> Units:
        """Units sent right after the headers (an AI SDK ``start`` part, say)."""
        ...

    def text(self, text: str) -> Units:
        """A text delta: the hot path, called for every token of a plain text source."""
        ...

    def event(self, event: LLMEvent) -> Units:
        """Any other normalised event (text deltas come through :meth:`text`)."""
        ...

    def error(self, message: str, code: str | None) -> Units:
        """The stream failed; ``message`` is safe to show the end user."""
        ...

    def end(self, result: StreamResult) -> Units:
        """The last units of a stream that ended ``completed``, ``error`` or ``shutdown``."""
        ...

    def flush(self) -> Units:
        """Text held back, if it is due (see ``flush_interval``)."""
        ...


class WireFormat(Protocol):
    """A wire format: its media type, extra headers, keep-alive, and a writer per stream.

    Attributes:
        media_type: the ``content-type`` without parameters (``; charset=utf-8`` is added).
        headers: extra response headers, e.g. ``{"x-vercel-ai-ui-message-stream": "v1"}``.
        keepalive: the bytes sent after ``heartbeat`` seconds of silence, which every client
            of the format ignores (for SSE a comment line, ``b":\\n"``).
    """

    media_type: str
    headers: Mapping[str, str]
    keepalive: bytes

    def writer(self) -> FormatWriter:
        """A fresh writer for one stream."""
        ...


class WriterBase:
    """Defaults for a :class:`FormatWriter`: nothing at the start, no held text, events
    without a representation ignored. Subclasses define ``text``, ``error`` and ``end``."""

    __slots__ = ()

    flush_interval: float | None = None

    def start(self) -> Units:
        return NOTHING

    def event(self, event: LLMEvent) -> Units:
        return NOTHING

    def flush(self) -> Units:
        return NOTHING
