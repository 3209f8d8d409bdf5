"""The default protocol: named SSE events with JSON data."""

from __future__ import annotations

from collections.abc import Mapping

from .._model import LLMEvent, ReasoningDelta, ToolCall
from .._result import StreamResult
from .base import (
    NOTHING,
    FormatWriter,
    Units,
    WriterBase,
    data_event,
    done_fields,
    json_string,
    tool_call_fields,
)

__all__ = ["NamedEventsFormat"]


class _NamedEventsWriter(WriterBase):
    __slots__ = ()

    def text(self, text: str) -> Units:
        return (f'event: delta\ndata: {{"text":{json_string(text)}}}\n\n'.encode(),)

    def event(self, event: LLMEvent) -> Units:
        match event:
            case ReasoningDelta(text=text):
                return (f'event: reasoning\ndata: {{"text":{json_string(text)}}}\n\n'.encode(),)
            case ToolCall() as call:
                return (data_event(tool_call_fields(call), "tool_call"),)
        # ToolCallDelta is sent whole as ``tool_call``; Finish and Usage go into ``done``.
        return NOTHING

    def error(self, message: str, code: str | None) -> Units:
        return (data_event({"message": message, "code": code}, "error"),)

    def end(self, result: StreamResult) -> Units:
        if result.reason != "completed":
            return NOTHING
        return (data_event(done_fields(result), "done"),)


class NamedEventsFormat:
    """The default protocol: named SSE events with JSON data (formerly ``EventsFormat``).

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
    keepalive = b":\n"

    def writer(self) -> FormatWriter:
        return _NamedEventsWriter()
