"""The default protocol: named SSE events with JSON data."""

from __future__ import annotations

from collections.abc import Mapping

from .._model import Citation, LLMEvent, ReasoningDelta, ToolActivity, ToolCall
from .._result import StreamResult
from .base import (
    NOTHING,
    FormatWriter,
    Units,
    WriterBase,
    activity_fields,
    data_event,
    done_fields,
    json_string,
    source_fields,
    tool_call_fields,
)

__all__ = ["NamedEventsFormat"]


class _NamedEventsWriter(WriterBase):
    __slots__ = ("_activity_input",)

    def __init__(self, activity_input: bool) -> None:
        self._activity_input = activity_input

    def text(self, text: str) -> Units:
        return (f'event: delta\ndata: {{"text":{json_string(text)}}}\n\n'.encode(),)

    def event(self, event: LLMEvent) -> Units:
        match event:
            case ReasoningDelta(text=text):
                return (f'event: reasoning\ndata: {{"text":{json_string(text)}}}\n\n'.encode(),)
            case ToolCall() as call:
                return (data_event(tool_call_fields(call), "tool_call"),)
            case Citation():
                return (data_event(source_fields(event), "source"),)
            case ToolActivity():
                fields = activity_fields(event, self._activity_input)
                return (data_event(fields, "tool_activity"),)
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

    - ``event: delta``: ``{"text": "..."}``: append to the answer
    - ``event: reasoning``: ``{"text": "..."}``: append to the reasoning
    - ``event: tool_call``: ``{"index": 0, "id": "call_1", "name": "f", "arguments": "{...}"}``: a
      tool the *client* runs
    - ``event: source``: ``{"kind": "url", "url": "https://...", "title": "..." | null,
      "document_id": null, "container_id": null, "cited_text": null, "start": 0 | null, "end": 42 |
      null, "index": 1 | null}``: a source the answer cites (see below)
    - ``event: tool_activity``: ``{"id": "ws_1", "name": "web_search", "status": "started",
      "summary": "météo Paris" | null}``: a tool the *provider* runs
    - ``event: done``: ``{"finish_reason": "stop", "raw_finish_reason": "stop", "usage":
      {"input_tokens": 9, "output_tokens": 12} | null}``
    - ``event: error``: ``{"message": "...", "code": "..." | null}``: the last event

    Text travels as a JSON string, so the client gets exactly the model's text (CR included),
    whichever SSE parser it uses. ``done`` or ``error`` is always the last event: a browser
    ``EventSource`` should ``close()`` on either, or it reconnects and asks again.

    ``source`` (:class:`~sse_llm.Citation`, every key always present): ``kind`` is ``url``
    (a web page), ``document`` (a document the request supplied) or ``file`` (a stored file:
    ``document_id`` is its id, ``container_id`` the code-interpreter container holding it);
    ``start`` / ``end`` is the span of the answer the source supports, in characters (code
    points) of the whole answer text, ``null`` when the provider gives none; ``index`` is the
    source's number in the provider's numbered list (the ``[1]`` markers of a Perplexity
    answer). Sent once per citation, when complete: the same page cited for two sentences comes
    twice, with two spans. The URL is the provider's, any scheme: link only ``http(s)``, and
    escape the title.

    ``tool_activity`` (:class:`~sse_llm.ToolActivity`): ``status`` is ``started``, then
    ``finished`` or ``failed`` for the same ``id`` (Gemini reports only the end); ``name`` is
    ``web_search``, ``web_fetch``, ``code_execution``, ``file_search``, ``image_generation`` or
    the provider's own tool name; ``summary`` is short text safe to show (the query, ``"5
    results"``, ``"exit code 0"``, an error code), never a raw payload. Nothing is asked of the
    client. ``done.finish_reason`` is ``pause`` when the provider paused a long turn the client
    may continue (Anthropic ``pause_turn``).

    Args:
        activity_input: also send the tool's arguments as the model wrote them, ``"input":
            {"query": ...} | null`` (code to run can be long; off by default).
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    keepalive = b":\n"

    def __init__(self, *, activity_input: bool = False) -> None:
        self.activity_input = activity_input

    def writer(self) -> FormatWriter:
        return _NamedEventsWriter(self.activity_input)
