"""Anthropic Messages API streams (``client.messages.create(stream=True)``, raw events).

Source of the rules: Anthropic API reference, "Streaming Messages" (event flow, delta types,
``stop_reason`` values, "Error events"), "Citations", the "Web search tool", "Web fetch
tool" and "Code execution tool" guides, "Handling stop reasons" (``pause_turn``); shapes as
recorded in the test fixtures' FORMATS.md.

Mapped:

- ``text_delta`` -> :class:`TextDelta`; ``thinking_delta`` -> :class:`ReasoningDelta`
  (``signature_delta`` and ``redacted_thinking`` blocks carry nothing to show and are
  skipped);
- a ``tool_use`` block -> :class:`ToolCallDelta` (``content_block_start`` announces id and name,
  each ``input_json_delta.partial_json`` is a fragment), then :class:`ToolCall` with the
  fragments joined at its ``content_block_stop``. The tool index counts ``tool_use`` blocks
  only (0, 1, ...), whatever their content-block index;
- ``citations_delta`` -> :class:`Citation`, emitted when the text block it is attached to
  ends, its span being that block's text (Anthropic splits a cited answer into text blocks,
  each with the citations supporting it). ``web_search_result_location`` -> ``kind="url"``;
  ``search_result_location`` -> ``url`` when its ``source`` is an http(s) address, else
  ``document``; ``char_location`` / ``page_location`` / ``content_block_location`` ->
  ``kind="document"`` with ``document_id`` = ``file_id`` or the request's
  ``document_index``, and ``title`` = ``document_title``. ``cited_text`` as given; the
  location inside the source document (characters, pages, blocks) stays in ``raw``;
- ``server_tool_use`` / ``mcp_tool_use`` blocks and their ``*_tool_result`` blocks are tools
  Anthropic runs itself, never tool calls (the caller does not have them) ->
  :class:`ToolActivity`: ``started`` when the ``server_tool_use`` block ends (its input
  complete: ``{"query"}``, ``{"url"}``, ``{"code"}``, ``{"command"}`` ...; summary the query or
  URL), ``finished`` at the result block (summary ``"N results"`` for a search, the URL for a
  fetch, ``"exit code N"`` for code), or ``failed`` when the result is an error object
  (summary its ``error_code``) or an MCP result with ``is_error``. Names: ``web_search``,
  ``web_fetch``, ``code_execution`` (also for ``bash_code_execution`` and
  ``text_editor_code_execution``), else Anthropic's (the MCP tool's name for
  ``mcp_tool_use``). Results (pages, program output) stay in ``raw``;
- ``message_delta.delta.stop_reason`` -> :class:`Finish`: ``end_turn``, ``stop_sequence`` ->
  ``stop``; ``pause_turn`` -> ``pause`` (a long server-tool turn paused: send the answer back
  to continue it; a tool may be ``started`` and not yet ``finished``); ``max_tokens``,
  ``model_context_window_exceeded`` -> ``length``; ``tool_use`` -> ``tool_calls``;
  ``refusal`` -> ``content_filter``;
- ``message_start.message.usage`` updated by each ``message_delta.usage`` (cumulative counts:
  each key's latest value) -> one :class:`Usage` at the end of the stream: ``input_tokens``
  is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (the whole
  prompt, as other providers count it), ``cached_input_tokens`` = ``cache_read_input_tokens``,
  ``cache_write_tokens`` = ``cache_creation_input_tokens``;
- the ``error`` event -> :class:`ErrorEvent` (message, and the error ``type`` as code);
- ``ping`` and ``message_stop`` -> nothing.

Works with ``messages.create(stream=True)`` and with ``messages.stream()``, whose extra
derived events (``text``, ``thinking``, ``citation``, ``input_json`` ...) duplicate the raw
ones and are ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import ProviderError
from .._model import (
    Citation,
    ErrorEvent,
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolActivity,
    ToolActivityStatus,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import (
    as_mapping,
    error_fields,
    int_or_none,
    results_summary,
    sdk_class,
    started_activity,
    str_or_none,
    tool_name,
)

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "pause",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
    }
)
_SERVER_TOOL_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use"})


def finish(raw: str) -> Finish:
    """A :class:`Finish` from a Messages ``stop_reason``."""
    return Finish(_FINISH.get(raw, "other"), raw)


def matches(item: Any) -> bool:
    """A raw Messages stream event: an ``anthropic`` SDK object or its JSON mapping."""
    if isinstance(item, Mapping):
        kind = item.get("type")
        return kind in _EVENTS or (kind == "error" and isinstance(item.get("error"), Mapping))
    return type(item).__module__.startswith("anthropic.") and getattr(item, "type", None) in (
        _EVENTS
    )


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from an ``anthropic`` SDK exception.

    The SDK raises ``APIStatusError`` both for a non-200 answer and for an ``event: error``
    inside a 200 stream; its ``body`` is ``{"type": "error", "error": {"type", "message"}}``,
    while its own message is a Python repr of that body, unfit for an end user.
    """
    cls = sdk_class(exc, "anthropic")
    if cls is None:
        return None
    if cls.__name__ in ("APIConnectionError", "APITimeoutError"):
        return ProviderError("The model provider could not be reached.", None)
    body = getattr(exc, "body", None)
    # Only a JSON body is the provider's own wording; a text body may be a proxy's HTML page.
    message, code = error_fields(body) if isinstance(body, Mapping | list) else (None, None)
    status = getattr(exc, "status_code", None)
    if message is None:
        if status is None:
            return None
        message = f"The model provider answered with HTTP status {status}."
    if code is None and status is not None:
        code = str(status)
    return ProviderError(message, code, status=status)


def citation(raw: Any) -> Citation | None:
    """A :class:`Citation` from one Anthropic citation object (no span: the caller knows the
    text block it supports)."""
    if not isinstance(raw, Mapping):
        return None
    kind = raw.get("type")
    cited = str_or_none(raw.get("cited_text"))
    if kind == "web_search_result_location":
        return Citation(
            "url",
            url=str_or_none(raw.get("url")),
            title=str_or_none(raw.get("title")),
            cited_text=cited,
            raw=raw,
        )
    if kind == "search_result_location":
        source = str_or_none(raw.get("source"))
        if source is not None and source.lower().startswith(("http://", "https://")):
            return Citation(
                "url", url=source, title=str_or_none(raw.get("title")), cited_text=cited, raw=raw
            )
        return Citation(
            "document",
            title=str_or_none(raw.get("title")),
            document_id=source,
            cited_text=cited,
            raw=raw,
        )
    if kind in ("char_location", "page_location", "content_block_location"):
        document = str_or_none(raw.get("file_id"))
        index = int_or_none(raw.get("document_index"))
        if document is None and index is not None:
            document = str(index)
        return Citation(
            "document",
            title=str_or_none(raw.get("document_title")),
            document_id=document,
            cited_text=cited,
            raw=raw,
        )
    return None


def result_activity(
    block: Mapping[str, Any], name: str, arguments: Mapping[str, Any] | None
) -> ToolActivity:
    """The terminal :class:`ToolActivity` of a ``*_tool_result`` block (see the module
    docstring for the summary)."""
    content = block.get("content")
    status: ToolActivityStatus = "finished"
    summary: str | None = None
    if isinstance(content, Mapping):
        kind = str(content.get("type") or "")
        if content.get("error_code") is not None or kind.endswith("_error"):
            status = "failed"
            summary = str_or_none(str(content.get("error_code") or "")) or "error"
        elif isinstance(content.get("return_code"), int):
            summary = f"exit code {content['return_code']}"
        elif kind == "web_fetch_result":
            summary = str_or_none(content.get("url"))
        elif isinstance(content.get("tool_references"), list):
            summary = results_summary(content["tool_references"])
    elif isinstance(content, list) and str(block.get("type")) != "mcp_tool_result":
        summary = results_summary(content)
    if block.get("is_error"):
        status = "failed"
        summary = summary or "error"
    return ToolActivity(
        str(block.get("tool_use_id") or ""),
        name,
        status,
        summary=summary,
        input=arguments,
        raw=block,
    )


class _Tool:
    __slots__ = ("id", "index", "input", "name", "parts")

    def __init__(self, index: int, block: Mapping[str, Any]) -> None:
        self.index = index
        self.id: str = block.get("id") or ""
        self.name: str = block.get("name") or ""
        self.input: Any = block.get("input")
        self.parts: list[str] = []

    def whole(self) -> list[LLMEvent]:
        arguments = "".join(self.parts)
        if arguments.strip():
            return [ToolCall(self.index, self.id, self.name, arguments)]
        # No input streamed: the block's own ``input`` (``{}`` for a tool without parameters),
        # as the SDK's accumulator does; sent as a fragment too, so the fragments still join
        # to the call's arguments.
        arguments = _dumps(self.input if isinstance(self.input, Mapping) else {})
        return [
            ToolCallDelta(self.index, self.id, self.name, arguments),
            ToolCall(self.index, self.id, self.name, arguments),
        ]


class _ServerTool:
    """A ``server_tool_use`` / ``mcp_tool_use`` block while its input streams."""

    __slots__ = ("block", "parts")

    def __init__(self, block: Mapping[str, Any]) -> None:
        self.block = block
        self.parts: list[str] = []

    def started(self) -> ToolActivity:
        block = self.block
        arguments: Any = None
        text = "".join(self.parts)
        if text.strip():
            try:
                arguments = json.loads(text)
            except ValueError:
                arguments = None
        if not isinstance(arguments, Mapping):
            given = block.get("input")
            arguments = given if isinstance(given, Mapping) else None
        if block.get("type") == "mcp_tool_use":
            name = str(block.get("name") or "mcp_tool_use")
        else:
            name = tool_name(block.get("name"))
        return started_activity(str(block.get("id") or ""), name, arguments, block)


class _TextBlock:
    """A text block's start in the answer, and the citations attached to it so far."""

    __slots__ = ("citations", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.citations: list[Citation] = []


class Normalizer:
    """Normalises raw Messages stream events (see the module docstring for the mapping)."""

    def __init__(self) -> None:
        self._tools: dict[int, _Tool] = {}  # content-block index -> open tool_use block
        self._tool_count = 0
        self._usage: dict[str, Any] = {}
        self._offset = 0  # characters of answer text so far
        self._texts: dict[int, _TextBlock] = {}  # content-block index -> open text block
        self._server: dict[int, _ServerTool] = {}  # content-block index -> open server tool
        self._started: dict[str, ToolActivity] = {}  # server tool id -> its started event

    def feed(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping) and getattr(item, "type", None) == "content_block_delta":
            # The hot path reads the SDK object's attributes: no model_dump per token.
            delta = getattr(item, "delta", None)
            if getattr(delta, "type", None) == "text_delta":
                text = getattr(delta, "text", None)
                if not isinstance(text, str) or not text:
                    return []
                self._offset += len(text)
                return [TextDelta(text)]
        event = as_mapping(item)
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_stop":
            return self._block_stop(event.get("index", -1))
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, Mapping) and isinstance(message.get("usage"), Mapping):
                self._usage.update(message["usage"])
            return []
        if kind == "message_delta":
            if isinstance(event.get("usage"), Mapping):
                # Counts are cumulative: the latest value of each key wins.
                self._usage.update({k: v for k, v in event["usage"].items() if v is not None})
            delta = event.get("delta")
            raw = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if isinstance(raw, str) and raw:
                return [*self._flush(), finish(raw)]
            return []
        if kind == "error":
            message, code = error_fields(event)
            return [ErrorEvent(message or "The model provider reported an error.", code)]
        return []  # ping, message_stop, and the SDK helper's derived events

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = self._flush()
        if self._usage:
            out.append(usage(self._usage))
            self._usage = {}
        return out

    def _block_start(self, event: Mapping[str, Any]) -> list[LLMEvent]:
        block = event.get("content_block")
        if not isinstance(block, Mapping):
            return []
        index = event.get("index", -1)
        kind = block.get("type")
        if kind == "text":
            text_block = self._texts[index] = _TextBlock(self._offset)
            for raw in block.get("citations") or ():
                found = citation(raw)
                if found is not None:
                    text_block.citations.append(found)
            text = block.get("text")
            if not isinstance(text, str) or not text:
                return []
            self._offset += len(text)
            return [TextDelta(text)]
        if kind == "thinking":
            text = block.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "tool_use":
            tool = self._tools[index] = _Tool(self._tool_count, block)
            self._tool_count += 1
            return [ToolCallDelta(tool.index, tool.id, tool.name, "")]
        if kind in _SERVER_TOOL_BLOCKS:
            self._server[index] = _ServerTool(block)
            return []
        if isinstance(kind, str) and kind.endswith("_tool_result"):
            return [self._result(block)]
        return []

    def _block_stop(self, index: Any) -> list[LLMEvent]:
        tool = self._tools.pop(index, None)
        if tool is not None:
            return tool.whole()
        text_block = self._texts.pop(index, None)
        if text_block is not None:
            return self._cited(text_block)
        server = self._server.pop(index, None)
        if server is not None:
            return self._start_server_tool(server)
        return []

    def _delta(self, event: Mapping[str, Any]) -> list[LLMEvent]:
        delta = event.get("delta")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str) or not text:
                return []
            self._offset += len(text)
            return [TextDelta(text)]
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        index = event.get("index", -1)
        if kind == "citations_delta":
            found = citation(delta.get("citation"))
            text_block = self._texts.get(index)
            if found is not None:
                if text_block is None:  # a citation for no open text block: no span
                    return [found]
                text_block.citations.append(found)
            return []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str) or not fragment:
                return []
            server = self._server.get(index)
            if server is not None:
                server.parts.append(fragment)
                return []
            tool = self._tools.get(index)
            if tool is None:
                return []
            tool.parts.append(fragment)
            return [ToolCallDelta(tool.index, tool.id, tool.name, fragment)]
        return []

    def _cited(self, text_block: _TextBlock) -> list[LLMEvent]:
        start, end = text_block.start, self._offset
        return [dataclasses.replace(found, start=start, end=end) for found in text_block.citations]

    def _start_server_tool(self, server: _ServerTool) -> list[LLMEvent]:
        started = server.started()
        self._started[started.id] = started
        return [started]

    def _result(self, block: Mapping[str, Any]) -> ToolActivity:
        tool_id = str(block.get("tool_use_id") or "")
        started = self._started.pop(tool_id, None)
        if started is not None:
            return result_activity(block, started.name, started.input)
        kind = str(block.get("type") or "").removesuffix("_tool_result")
        return result_activity(block, tool_name(kind) if kind != "mcp" else "mcp", None)

    def _flush(self) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        for _, tool in sorted(self._tools.items()):
            out.extend(tool.whole())
        self._tools.clear()
        for _, text_block in sorted(self._texts.items()):
            out.extend(self._cited(text_block))
        self._texts.clear()
        for _, server in sorted(self._server.items()):
            out.extend(self._start_server_tool(server))
        self._server.clear()
        return out


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from the merged Messages ``usage`` counts (see the module docstring)."""
    base = int_or_none(raw.get("input_tokens"))
    cached = int_or_none(raw.get("cache_read_input_tokens"))
    written = int_or_none(raw.get("cache_creation_input_tokens"))
    total_input = base
    if base is not None:
        total_input = base + (cached or 0) + (written or 0)
    return Usage(
        input_tokens=total_input,
        output_tokens=int_or_none(raw.get("output_tokens")),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        raw=raw,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
