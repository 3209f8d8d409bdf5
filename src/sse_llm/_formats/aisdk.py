"""The Vercel AI SDK UI message stream protocol, v1."""

from __future__ import annotations

import json
import mimetypes
import uuid
from collections.abc import Mapping
from typing import Any

from .._model import (
    Citation,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    ToolActivity,
    ToolCall,
    ToolCallDelta,
    source_identity,
)
from .._result import StreamResult
from .base import FormatWriter, Units, WriterBase, data_event, json_string, jsonable
from .typed_json import DONE

__all__ = ["AISDKFormat"]

# The AI SDK's finishReason enum, the values every UI message stream reader (ai 5, 6 and 7)
# accepts: ai/src/ui-message-stream/ui-message-chunks.ts.
_AISDK_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
    "other": "other",
    "pause": "other",  # a paused turn: the enum has no value for it
}
_INVALID_ARGUMENTS = "The model's tool call arguments are not valid JSON."
_TOOL_FAILED = "The provider's tool failed."
# The states of a provider-run tool's part.
_TOOL_NO_INPUT, _TOOL_INPUT, _TOOL_DONE = 0, 1, 2
#: The providerMetadata key of what the AI SDK's source parts have no field for.
_METADATA_KEY = "sseLlm"
_START_STEP = b'data: {"type":"start-step"}\n\n'
_FINISH_STEP = b'data: {"type":"finish-step"}\n\n'


class _ToolState:
    __slots__ = ("buffered", "id", "name", "started")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.started = False
        self.buffered: list[str] = []  # fragments that came before the tool's name


class _AISDKWriter(WriterBase):
    __slots__ = (
        "_finish_reason",
        "_message_id",
        "_open",
        "_open_unnamed_tool",
        "_parts",
        "_provider_tools",
        "_sources",
        "_text_prefix",
        "_tools",
        "_usage_metadata",
    )

    def __init__(self, usage_metadata: bool, finish_reason: bool) -> None:
        self._usage_metadata = usage_metadata
        self._finish_reason = finish_reason
        self._message_id = f"msg-{uuid.uuid4().hex}"
        self._parts = 0  # part ids are unique within the message
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", id) of the open part
        self._text_prefix: str | None = None  # set while a text part is open: the hot path
        self._tools: dict[int, _ToolState] = {}
        # Provider-run tools by id: _TOOL_NO_INPUT / _TOOL_INPUT once announced, _TOOL_DONE.
        self._provider_tools: dict[str, int] = {}
        self._sources: set[tuple[str | int | None, ...]] = set()  # distinct sources sent
        self._open_unnamed_tool: str | None = None  # the id made for a started id-less tool

    def _close(self, out: list[bytes]) -> None:
        """``text-end`` / ``reasoning-end`` for the open part, if any."""
        if self._open is None:
            return
        kind, part_id = self._open
        self._open = None
        self._text_prefix = None
        out.append(f'data: {{"type":"{kind}-end","id":"{part_id}"}}\n\n'.encode())

    def _begin(self, kind: str, out: list[bytes]) -> str:
        """Close the open part, start a ``kind`` part; returns its id."""
        self._close(out)
        part_id = f"{kind}-{self._parts}"
        self._parts += 1
        self._open = (kind, part_id)
        if kind == "text":
            self._text_prefix = f'data: {{"type":"text-delta","id":"{part_id}","delta":'
        out.append(f'data: {{"type":"{kind}-start","id":"{part_id}"}}\n\n'.encode())
        return part_id

    def start(self) -> Units:
        return (data_event({"type": "start", "messageId": self._message_id}), _START_STEP)

    def text(self, text: str) -> Units:
        prefix = self._text_prefix
        if prefix is not None:
            return (f"{prefix}{json_string(text)}}}\n\n".encode(),)
        out: list[bytes] = []
        self._begin("text", out)
        out.append(f"{self._text_prefix}{json_string(text)}}}\n\n".encode())
        return out

    def event(self, event: LLMEvent) -> Units:
        out: list[bytes] = []
        match event:
            case ReasoningDelta(text=text):
                if self._open is not None and self._open[0] == "reasoning":
                    part_id = self._open[1]
                else:
                    part_id = self._begin("reasoning", out)
                head = f'data: {{"type":"reasoning-delta","id":"{part_id}","delta":'
                out.append(f"{head}{json_string(text)}}}\n\n".encode())
            case ToolCallDelta():
                self._tool_fragment(event, out)
            case ToolCall():
                self._tool_call(event, out)
            case Citation():
                self._source(event, out)
            case ToolActivity():
                self._provider_tool(event, out)
        # Finish and Usage are reported by end().
        return out

    def _source(self, citation: Citation, out: list[bytes]) -> None:
        """``source-url`` / ``source-document``, once per distinct source (the parts have no
        span: the same page cited for two sentences is one source)."""
        key = source_identity(citation)
        if key in self._sources:
            return
        self._sources.add(key)
        source_id = f"source-{len(self._sources) - 1}"
        part: dict[str, Any]
        metadata: dict[str, Any] = {}
        if citation.kind == "url" and citation.url:
            part = {"type": "source-url", "sourceId": source_id, "url": citation.url}
            if citation.title is not None:
                part["title"] = citation.title
        else:
            name = citation.title or citation.document_id or citation.url or "document"
            part = {"type": "source-document", "sourceId": source_id}
            part["mediaType"] = mimetypes.guess_type(name)[0] or "application/octet-stream"
            part["title"] = name
            if citation.kind == "file" and citation.title:
                part["filename"] = citation.title
            metadata["url"] = citation.url
        metadata["index"] = citation.index
        metadata["documentId"] = citation.document_id
        metadata["containerId"] = citation.container_id
        metadata = {k: v for k, v in metadata.items() if v is not None}
        if metadata:
            part["providerMetadata"] = {_METADATA_KEY: metadata}
        out.append(data_event(part))

    def _provider_tool(self, activity: ToolActivity, out: list[bytes]) -> None:
        """A provider-executed tool part: input parts when it starts (or, for a provider that
        reports only the end, right before its output), then its output or error."""
        tool_id = activity.id
        if not tool_id:
            # An id-less activity (a source of the app's own): its end pairs with the one
            # started before it, as in the HTML formats, under one id made for both.
            tool_id = self._open_unnamed_tool or f"tool-{uuid.uuid4().hex}"
            self._open_unnamed_tool = tool_id if activity.status == "started" else None
        state = self._provider_tools.get(tool_id)
        if state == _TOOL_DONE:
            return  # a second end for the same tool: the part is complete
        head = {"toolCallId": tool_id, "toolName": activity.name, "providerExecuted": True}
        if state is None:
            self._close(out)
            out.append(data_event({"type": "tool-input-start", **head}))
        if state is None or (state == _TOOL_NO_INPUT and activity.input):
            # The input, when first known: the Responses API gives a search's query only once
            # the search ran; a second input-available updates the part's input.
            tool_input = {} if activity.input is None else jsonable(activity.input)
            out.append(data_event({"type": "tool-input-available", **head, "input": tool_input}))
            state = _TOOL_INPUT if activity.input else _TOOL_NO_INPUT
        if activity.status == "started":
            self._provider_tools[tool_id] = state
            return
        self._provider_tools[tool_id] = _TOOL_DONE
        part: dict[str, Any] = {"toolCallId": tool_id, "providerExecuted": True}
        if activity.status == "failed":
            errors = {"errorText": activity.summary or _TOOL_FAILED}
            part = {"type": "tool-output-error", **part, **errors}
        else:
            output = {} if activity.summary is None else {"summary": activity.summary}
            part = {"type": "tool-output-available", **part, "output": output}
        out.append(data_event(part))

    def _tool_fragment(self, event: ToolCallDelta, out: list[bytes]) -> None:
        state = self._tools.get(event.index)
        if state is None:
            state = self._tools[event.index] = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        if not state.started:
            if not state.name:
                # tool-input-start needs the tool's name: hold the fragments until it comes.
                state.buffered.append(event.arguments)
                return
            self._tool_start(state, out)
            fragment = "".join([*state.buffered, event.arguments])
            state.buffered.clear()
        else:
            fragment = event.arguments
        if fragment:
            delta = {"type": "tool-input-delta", "toolCallId": state.id, "inputTextDelta": fragment}
            out.append(data_event(delta))

    def _tool_start(self, state: _ToolState, out: list[bytes]) -> None:
        state.started = True
        if not state.id:
            state.id = f"call-{uuid.uuid4().hex}"  # Gemini gives none; the AI SDK needs one
        self._close(out)
        start = {"type": "tool-input-start", "toolCallId": state.id, "toolName": state.name}
        out.append(data_event(start))

    def _tool_call(self, event: ToolCall, out: list[bytes]) -> None:
        state = self._tools.pop(event.index, None)
        if state is None:
            state = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        if not state.started:
            self._tool_start(state, out)
        part: dict[str, Any] = {
            "type": "tool-input-available",
            "toolCallId": state.id,
            "toolName": state.name,
        }
        try:
            arguments = event.arguments
            part["input"] = (
                json.loads(arguments, parse_constant=_not_json) if arguments.strip() else {}
            )
        except ValueError:
            # What the AI SDK's own streamText sends for unparsable input.
            part["type"] = "tool-input-error"
            part["input"] = event.arguments
            part["errorText"] = _INVALID_ARGUMENTS
        out.append(data_event(part))

    def error(self, message: str, code: str | None) -> Units:
        out: list[bytes] = []
        self._close(out)
        out.append(data_event({"type": "error", "errorText": message}))
        return out

    def end(self, result: StreamResult) -> Units:
        out: list[bytes] = []
        self._close(out)
        out.append(_FINISH_STEP)
        finish: dict[str, Any] = {"type": "finish"}
        if self._finish_reason:  # a reader before ai 5.0.92 refuses the key
            if result.reason != "completed":
                finish["finishReason"] = "error"
            elif result.finish is not None:
                finish["finishReason"] = _AISDK_FINISH[result.finish.reason]
        if self._usage_metadata and result.usage is not None:
            finish["messageMetadata"] = {"usage": result.usage.as_dict()}
        out.append(data_event(finish))
        out.append(DONE)
        return out


class AISDKFormat:
    """The Vercel AI SDK UI message stream protocol, v1 (AI SDK 5 and later).

    ``useChat`` (with the default ``DefaultChatTransport``) and ``readUIMessageStream`` read
    it. Response header ``x-vercel-ai-ui-message-stream: v1``; each part is
    ``data: <JSON>``; the stream ends with ``data: [DONE]``::

        {"type":"start","messageId":"msg-<hex>"}   {"type":"start-step"}
        {"type":"reasoning-start","id":"reasoning-0"}  {"type":"reasoning-delta",…}  …-end
        {"type":"text-start","id":"text-1"}  {"type":"text-delta","id":"text-1","delta":"Hi"}
        {"type":"text-end","id":"text-1"}
        {"type":"tool-input-start","toolCallId":"call_1","toolName":"weather"}
        {"type":"tool-input-delta","toolCallId":"call_1","inputTextDelta":"{\\"city\\""}
        {"type":"tool-input-available","toolCallId":"call_1","toolName":"weather",
         "input":{"city":"Paris"}}
        {"type":"finish-step"}  {"type":"finish","finishReason":"stop"}

    Sources and tools the provider runs itself (web search, code execution)::

        {"type":"source-url","sourceId":"source-0","url":"https://…","title":"…"}
        {"type":"source-document","sourceId":"source-1","mediaType":"application/pdf",
         "title":"notes.pdf","filename":"notes.pdf","providerMetadata":{"sseLlm":{"documentId":"file-1"}}}
        {"type":"tool-input-start","toolCallId":"ws_1","toolName":"web_search","providerExecuted":true}
        {"type":"tool-input-available","toolCallId":"ws_1","toolName":"web_search",
         "providerExecuted":true,"input":{"query":"météo Paris"}}
        {"type":"tool-output-available","toolCallId":"ws_1","providerExecuted":true,
         "output":{"summary":"5 results"}}
        {"type":"tool-output-error","toolCallId":"ci_1","providerExecuted":true,
         "errorText":"execution_time_exceeded"}

    A :class:`~sse_llm.Citation` of kind ``url`` is a ``source-url`` part, a ``document`` or
    ``file`` one a ``source-document`` (``mediaType`` guessed from its title, else
    ``application/octet-stream``; ``filename`` for a file). The parts have no span, so each
    distinct source (kind, URL, document, container, number) is sent once, at its first
    citation; what the AI SDK has no field for (the source's number ``index``, ``documentId``,
    ``containerId``, a document's ``url``) is in ``providerMetadata.sseLlm``. A
    :class:`~sse_llm.ToolActivity` is a tool part with ``providerExecuted: true``, which the
    AI SDK never asks the client to run (``onToolCall`` is skipped): ``started`` sends the
    input parts (its ``input``, or ``{}``; when the input only comes with the end, as a
    Responses web search's query does, ``tool-input-available`` is sent again with it),
    ``finished`` ``tool-output-available`` with
    ``output: {"summary": …}`` (``{}`` without a summary; never the raw results), ``failed``
    ``tool-output-error`` with the summary (the provider's error code) as ``errorText``. A
    provider that reports only the end (Gemini) gets the input parts and the output together.
    Source: the ``source`` and provider-executed ``tool-*`` branches of ``toUIMessageStream``
    in ``vercel/ai`` ``packages/ai/src/generate-text/stream-text.ts``, whose parts these are.

    A text or reasoning part is closed when another kind of part begins, so the reader's
    message gets its parts in the order the model produced them. Tool call arguments that are
    not valid JSON end as ``tool-input-error`` (the AI SDK's own behaviour). An error (and a
    shutdown) is ``{"type":"error","errorText":"..."}`` followed by ``finish-step``, ``finish``
    with ``finishReason: "error"`` (no ``finishReason`` with ``finish_reason=False``) and
    ``[DONE]``. Finish reasons map to the
    AI SDK's enum (``tool_calls`` -> ``tool-calls``, ``content_filter`` ->
    ``content-filter``). Source: ``vercel/ai``
    ``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` and the "Stream Protocols" docs
    page; checked with the ``ai`` package's ``readUIMessageStream`` (``tests/node``).

    Readers: ``ai`` 5.0.92 and later (5.x, 6, 7). ``ai`` 5.0.0 to 5.0.91 validate the
    ``finish`` part with a strict schema that has no ``finishReason`` (read in the 5.0.0 and
    5.0.91 packages) and fail the stream on it: pass ``finish_reason=False`` for them. Read
    back with ``ai`` 5.0.91 (without it), 5.0.277, 6.0.322 and 7.0.173 in ``tests/node``.

    Args:
        usage_metadata: send token usage as the message's metadata,
            ``finish.messageMetadata = {"usage": {"input_tokens": 9, ...}}`` (it becomes
            ``message.metadata`` on the client). Off by default: metadata belongs to the app.
        finish_reason: send ``finishReason`` in the ``finish`` part (on by default; off for
            readers older than ``ai`` 5.0.92, see above).
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}
    keepalive = b":\n"

    def __init__(self, *, usage_metadata: bool = False, finish_reason: bool = True) -> None:
        self.usage_metadata = usage_metadata
        self.finish_reason = finish_reason

    def writer(self) -> FormatWriter:
        return _AISDKWriter(self.usage_metadata, self.finish_reason)


def _not_json(constant: str) -> Any:
    """``NaN`` and ``Infinity``, which Python's parser takes and JSON has not: a JavaScript
    client's ``JSON.parse`` would fail on the part."""
    raise ValueError(f"{constant} is not JSON")
