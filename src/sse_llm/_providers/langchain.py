"""LangChain chat model streams: the ``AIMessageChunk`` objects of ``model.astream(...)``.

Any LangChain chat model (``ChatOpenAI``, ``ChatAnthropic``, ``ChatGoogleGenerativeAI``,
``ChatOllama`` ...) yields ``langchain_core.messages.AIMessageChunk``; this module reads the
provider-neutral fields LangChain defines on it, so it does not import LangChain. (A chain
ending in ``StrOutputParser`` yields ``str``, which needs no normaliser.) Source of the rules:
``langchain_core.messages.ai`` (``AIMessageChunk``, ``UsageMetadata``, ``add_usage``), the
content-block types of ``langchain_core.messages.content`` (``TextContentBlock.annotations``,
``Citation``, ``ServerToolCall``, ``ServerToolCallChunk``, ``ServerToolResult``), and the
provider-native blocks its ``block_translators`` read (Anthropic, OpenAI Responses).

Mapped:

- ``content`` as ``str`` -> :class:`TextDelta`; as a list of blocks: ``text`` blocks (and bare
  strings) -> :class:`TextDelta`; ``thinking`` (Anthropic), ``reasoning`` (LangChain v1
  standard blocks, with ``reasoning`` text, or OpenAI's ``summary`` list) ->
  :class:`ReasoningDelta`; images and other blocks -> nothing;
- citations, each once -> :class:`Citation`: a ``text`` block's ``annotations`` (standard
  ``citation`` blocks, or OpenAI's own ``url_citation`` / ``file_citation`` /
  ``container_file_citation``), their ``start_index`` / ``end_index`` counting characters of
  that block's text (blocks are told apart by ``index``) and shifted to the whole answer; a
  ``text`` block's ``citations`` (Anthropic's own objects; no span);
  ``additional_kwargs["annotations"]`` (OpenAI ``url_citation``) and
  ``additional_kwargs["citations"]`` / ``["search_results"]`` (``ChatPerplexity``, numbered);
- provider-run tools -> :class:`ToolActivity` (never tool calls): the standard
  ``server_tool_call`` / ``server_tool_call_chunk`` and ``server_tool_result`` (``finished``,
  or ``failed`` when its ``status`` is ``"error"``); Anthropic's own ``server_tool_use`` /
  ``mcp_tool_use`` (its input streamed in ``input_json_delta`` blocks of the same ``index``)
  and ``*_tool_result`` blocks. A tool whose input streams is ``started`` once the input is
  whole, as in Anthropic's own stream: at the first block of another kind or index (LangChain
  does not pass ``content_block_stop`` on), its result, or the stream's end. OpenAI's own
  ``web_search_call`` / ``file_search_call`` / ``code_interpreter_call`` /
  ``image_generation_call`` / ``mcp_call`` blocks (or ``additional_kwargs["tool_outputs"]``)
  are ``started`` until their ``status`` is final. Names and summaries as for those
  providers' own streams;
- ``additional_kwargs["reasoning_content"]`` (DeepSeek and OpenAI-compatible reasoners) ->
  :class:`ReasoningDelta`;
- ``tool_call_chunks`` -> :class:`ToolCallDelta`, joined by their ``index`` (a chunk with no
  index starts a new call) into one :class:`ToolCall` each when the stream finishes; a call
  whose arguments never came has ``"{}"`` (also sent as a last :class:`ToolCallDelta`, so the
  fragments join to it), as LangChain's own ``AIMessageChunk.tool_calls`` reads empty
  ``args`` (``langchain_core.messages.ai``);
- ``usage_metadata``: LangChain's chunks are *added* when merged (``add_usage``), so counts
  are summed over the stream -> one :class:`Usage` at the end (``input_tokens`` (LangChain
  counts cache reads and writes in it), ``output_tokens``, ``total_tokens``,
  ``output_token_details.reasoning``, ``input_token_details.cache_read`` and
  ``.cache_creation``);
- ``response_metadata`` ``finish_reason`` (OpenAI, Gemini), ``stop_reason`` (Anthropic),
  ``done_reason`` (Ollama), or the Responses API's ``status`` (``incomplete_details.reason``
  when ``incomplete``; ``ChatOpenAI(use_responses_api=True)``) -> :class:`Finish`, mapped as
  by that provider's own normaliser.
  LangChain marks the last chunk of a completed stream with ``chunk_position="last"``; when
  no reason was reported, that marker finishes the answer as ``stop`` (``tool_calls`` if
  calls were made) with no raw reason.

LangGraph: ``graph.astream(..., stream_mode="messages")`` yields ``(message, metadata)``
tuples (``version="v2"``: ``{"type": "messages", "data": (message, metadata)}``) of every
model call in the graph, and the messages other nodes add. The message is read as above when
it is the model's (``AIMessageChunk``, or a whole ``AIMessage`` with its ``tool_calls``, from
a node that called the model unstreamed); a ``ToolMessage`` (a tool's output, for the model)
or ``HumanMessage`` is not answer text and is skipped. An agent's model calls follow one
another: a message after a call's last chunk starts the next step, whose finish replaces the
last one (so ``done`` reports the final call's, ``stop`` after a tool round), tool calls are
numbered across steps and usage is summed over them. The last chunk is known by its
``chunk_position`` (langchain-core 1.0 and later); with older chunks the calls run together
(their tool calls join by index). Every model call of the graph streams
(a router's, a summariser's too): to stream one node's, filter on
``metadata["langgraph_node"]`` and yield the message.

Not reported: Gemini grounding through ``ChatGoogleGenerativeAI`` (it keeps
``groundingMetadata`` in ``response_metadata`` of the aggregated message, with byte offsets
this module cannot place in a chunked stream).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._model import (
    Citation,
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
from . import anthropic, gemini, ollama, openai_chat, openai_responses
from ._common import (
    ReasoningParts,
    results_summary,
    span,
    started_activity,
    str_or_none,
    tool_name,
)

# Each provider's own table; their keys do not clash (Gemini's are upper case).
_FINISH: dict[str, FinishReason] = {
    **ollama._FINISH,
    **gemini._FINISH,
    **anthropic._FINISH,
    **openai_chat._FINISH,
    **openai_responses._INCOMPLETE,
    "completed": "stop",
}
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
_DETAIL_KEYS = (
    ("output_token_details", "reasoning", "reasoning_tokens"),
    ("input_token_details", "cache_read", "cached_input_tokens"),
    ("input_token_details", "cache_creation", "cache_write_tokens"),
)
_OPENAI_TOOL_ITEMS = openai_responses._PROVIDER_ITEMS
#: The messages whose content is the model's: a streamed chunk, or a whole message.
_MODEL_MESSAGES = frozenset({"AIMessageChunk", "AIMessage"})
_FINAL_STATUSES = frozenset({"completed", "failed", "incomplete"})


def matches(item: Any) -> bool:
    """A ``langchain_core`` ``AIMessageChunk``, or LangGraph's ``stream_mode="messages"`` item
    holding a ``langchain_core`` message (see :func:`message_of`)."""
    kind = type(item)
    if kind.__name__ == "AIMessageChunk" and kind.__module__.startswith("langchain_core"):
        return True
    message = message_of(item)
    return message is not item and type(message).__module__.startswith("langchain_core")


def message_of(item: Any) -> Any:
    """The message in a LangGraph ``graph.astream(..., stream_mode="messages")`` item: a
    ``(message, metadata)`` tuple, or with ``version="v2"`` a ``{"type": "messages", "data":
    (message, metadata)}`` part (langgraph ``StreamMode``, ``StreamPart``); else ``item``."""
    if isinstance(item, Mapping) and item.get("type") == "messages":
        item = item.get("data")
        if not isinstance(item, tuple):
            return None
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
        return item[0]
    return item


class _Call:
    __slots__ = ("id", "index", "name", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.parts: list[str] = []


class _ServerTool:
    """A provider-run tool seen started: its name, the argument text so far, the block that
    started it."""

    __slots__ = ("arguments", "name", "parts", "raw")

    def __init__(self, name: str, arguments: Mapping[str, Any] | None, raw: Any) -> None:
        self.name = name
        self.arguments = arguments
        self.parts: list[str] = []
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}

    def input(self) -> Mapping[str, Any] | None:
        if self.arguments:
            return self.arguments
        text = "".join(self.parts)
        if not text.strip():
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) and value else None

    def started(self, tool_id: str) -> ToolActivity:
        return started_activity(tool_id, self.name, self.input(), self.raw)


class Normalizer:
    """Normalises ``AIMessageChunk`` objects (see the module docstring)."""

    def __init__(self) -> None:
        self._calls: dict[Any, _Call] = {}  # tool_call_chunk index (or a fresh key) -> call
        self._call_count = 0  # calls so far, in every step
        self._reasoning = ReasoningParts()  # the summary parts of ChatOpenAI's Responses API
        self._usage: dict[str, int] = {}
        self._raw_usage: list[Any] = []
        self._raw_finish: str | None = None
        self._finished = False
        self._client_items = False  # a tool call the client runs outside function calling
        self._offset = 0  # characters of answer text so far
        self._block_starts: dict[Any, int] = {}  # text block index -> its start in the answer
        self._cited: set[tuple[Any, ...]] = set()
        self._sources = 0  # ChatPerplexity numbered sources emitted
        self._server: dict[str, _ServerTool] = {}  # started provider tool id -> state
        self._server_ids: dict[Any, str] = {}  # server_tool_call_chunk index -> tool id
        self._server_done: set[str] = set()
        # The provider tool whose input is streaming (its id, its block index): started once
        # the input is whole.
        self._streaming_input: tuple[str, Any] | None = None

    def feed(self, item: Any) -> list[LLMEvent]:
        item = message_of(item)
        kind = type(item).__name__
        if kind not in _MODEL_MESSAGES:
            # LangGraph's messages mode also yields the messages other nodes add: a tools
            # node's ToolMessage (the tool's output: data for the model, not the answer), the
            # user's HumanMessage. Their content is not the model's text.
            return []
        if self._finished:
            # A message after the last chunk of one: the next model call of an agent (a
            # LangGraph graph's messages). It starts a step of its own, whose finish replaces
            # the previous step's; its blocks and tool calls are counted afresh.
            self._finished = False
            self._raw_finish = None
            self._client_items = False
            self._block_starts.clear()
            self._server_ids.clear()
        out: list[LLMEvent] = []
        content = getattr(item, "content", None)
        if isinstance(content, str):
            if content:
                out.extend(self._input_whole())
                self._offset += len(content)
                out.append(TextDelta(content))
        elif isinstance(content, list):
            out.extend(self._blocks(content))
        extra = getattr(item, "additional_kwargs", None)
        if isinstance(extra, Mapping) and extra:
            reasoning = extra.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out.insert(0, ReasoningDelta(reasoning))
            out.extend(self._extra(extra))
        for chunk in getattr(item, "tool_call_chunks", None) or ():
            out.append(self._fragment(chunk))
        if kind == "AIMessage":  # a whole message (a node that called the model unstreamed)
            for call in getattr(item, "tool_calls", None) or ():
                if isinstance(call, Mapping):
                    args = call.get("args")
                    arguments = json.dumps(args, ensure_ascii=False) if args else ""
                    fragment = {"id": call.get("id"), "name": call.get("name"), "args": arguments}
                    out.append(self._fragment(fragment))
        usage = getattr(item, "usage_metadata", None)
        if isinstance(usage, Mapping):
            self._add_usage(usage)
        metadata = getattr(item, "response_metadata", None)
        if isinstance(metadata, Mapping):
            for key in ("finish_reason", "stop_reason", "done_reason"):
                raw = metadata.get(key)
                if isinstance(raw, str) and raw:
                    self._raw_finish = raw
                    break
            else:  # the Responses API (ChatOpenAI(use_responses_api=True)): its status
                status = metadata.get("status")
                if isinstance(status, str) and status:
                    details = metadata.get("incomplete_details")
                    reason = details.get("reason") if isinstance(details, Mapping) else None
                    incomplete = status == "incomplete" and isinstance(reason, str) and reason
                    self._raw_finish = reason if incomplete else status
        if kind == "AIMessage" or getattr(item, "chunk_position", None) == "last":
            out.extend(self._input_whole())
            out.extend(self._finish())
        return out

    def close(self) -> list[LLMEvent]:
        out = self._input_whole()
        if self._raw_finish is not None and not self._finished:
            out.extend(self._finish())
        else:
            out.extend(self._flush())
        if self._raw_usage:
            out.append(
                Usage(
                    input_tokens=self._usage.get("input_tokens"),
                    output_tokens=self._usage.get("output_tokens"),
                    total_tokens=self._usage.get("total_tokens"),
                    reasoning_tokens=self._usage.get("reasoning_tokens"),
                    cached_input_tokens=self._usage.get("cached_input_tokens"),
                    cache_write_tokens=self._usage.get("cache_write_tokens"),
                    raw={"usage_metadata": self._raw_usage},
                )
            )
            self._raw_usage = []
        return out

    def _fragment(self, chunk: Any) -> ToolCallDelta:
        chunk = chunk if isinstance(chunk, Mapping) else {}
        key = chunk.get("index")
        if key is None:
            key = ("position", len(self._calls))
        call = self._calls.get(key)
        if call is None:
            # Numbered across an agent's steps: each call of the stream has its own index.
            call = self._calls[key] = _Call(self._call_count)
            self._call_count += 1
        call.id = call.id or chunk.get("id") or ""
        call.name = call.name or chunk.get("name") or ""
        arguments = chunk.get("args") or ""
        call.parts.append(arguments)
        return ToolCallDelta(call.index, call.id, call.name, arguments)

    def _flush(self) -> list[LLMEvent]:
        calls: list[LLMEvent] = []
        for call in self._calls.values():
            arguments = "".join(call.parts)
            if not arguments.strip():
                # No arguments came: "{}", as LangChain reads empty args; sent as a fragment
                # too, so the fragments still join to the call's arguments.
                arguments = "{}"
                calls.append(ToolCallDelta(call.index, call.id, call.name, arguments))
            calls.append(ToolCall(call.index, call.id, call.name, arguments))
        self._calls.clear()
        return calls

    def _finish(self) -> list[LLMEvent]:
        made_calls = bool(self._calls) or self._client_items
        out = self._flush()
        if self._finished:
            return out
        self._finished = True
        raw = self._raw_finish
        reason: FinishReason = _FINISH.get(raw, "other") if raw is not None else "stop"
        if reason == "stop" and made_calls:
            reason = "tool_calls"
        out.append(Finish(reason, raw))
        return out

    def _add_usage(self, usage: Mapping[str, Any]) -> None:
        self._raw_usage.append(dict(usage))
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int):
                self._usage[key] = self._usage.get(key, 0) + value
        for outer, inner, key in _DETAIL_KEYS:
            details = usage.get(outer)
            if isinstance(details, Mapping) and isinstance(details.get(inner), int):
                self._usage[key] = self._usage.get(key, 0) + details[inner]

    # -- content blocks ------------------------------------------------------------------

    def _blocks(self, blocks: list[Any]) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        for block in blocks:
            if self._streaming_input is not None and not self._continues_input(block):
                out.extend(self._input_whole())
            if isinstance(block, str):
                if block:
                    self._offset += len(block)
                    out.append(TextDelta(block))
                continue
            if not isinstance(block, Mapping):
                continue
            kind = block.get("type")
            if kind == "text":
                out.extend(self._text(block))
            elif kind in ("thinking", "reasoning"):
                text = block.get(kind)
                if isinstance(text, str) and text:
                    index = block.get("index")
                    if isinstance(index, str):
                        # A summary part of ChatOpenAI's reasoning in the standard blocks
                        # (output_version="v1"): langchain-core gives each its own "lc_rs_"
                        # index. A provider's own block index (an int) stays joined bare.
                        out.append(self._reasoning.delta(index, text))
                    else:
                        out.append(ReasoningDelta(text))
                for summary in block.get("summary") or ():
                    if isinstance(summary, Mapping) and summary.get("text"):
                        part = (block.get("id"), block.get("index"), summary.get("index"))
                        out.append(self._reasoning.delta(part, str(summary["text"])))
            elif kind in ("server_tool_call", "server_tool_use", "mcp_tool_use"):
                out.extend(self._server_call(block))
            elif kind == "server_tool_call_chunk":
                out.extend(self._server_chunk(block))
            elif kind == "input_json_delta":
                self._input_fragment(block)
            elif kind == "server_tool_result":
                out.extend(self._server_result(block))
            elif isinstance(kind, str) and kind.endswith("_tool_result"):
                out.extend(self._anthropic_result(block))
            elif kind in _OPENAI_TOOL_ITEMS:
                out.extend(self._openai_item(block))
            elif openai_responses.runs_on_client(block) or (
                # The standard blocks (output_version="v1") wrap items langchain-core does
                # not know in {"type": "non_standard", "value": item}.
                kind == "non_standard" and openai_responses.runs_on_client(block.get("value"))
            ):
                self._client_items = True  # not surfaced, but the model waits for it
        return out

    def _text(self, block: Mapping[str, Any]) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        key = block.get("index")
        start = self._block_starts.setdefault(key, self._offset)
        text = block.get("text")
        if isinstance(text, str) and text:
            self._offset += len(text)
            out.append(TextDelta(text))
        for annotation in block.get("annotations") or ():
            if not isinstance(annotation, Mapping):
                continue
            if annotation.get("type") == "citation":
                first, last = span(
                    annotation.get("start_index"), annotation.get("end_index"), start
                )
                url = str_or_none(annotation.get("url"))
                found: Citation | None = Citation(
                    "url" if url else "document",
                    url=url,
                    title=str_or_none(annotation.get("title")),
                    cited_text=str_or_none(annotation.get("cited_text")),
                    start=first,
                    end=last,
                    raw=annotation,
                )
            else:
                found = openai_responses.annotation_citation(annotation, start)
            out.extend(self._cite(key, found))
        for raw in block.get("citations") or ():
            out.extend(self._cite(key, anthropic.citation(raw)))
        return out

    def _cite(self, key: Any, found: Citation | None) -> list[LLMEvent]:
        if found is None:
            return []
        seen = (key, found.kind, found.url, found.title, found.cited_text, found.start, found.end)
        if seen in self._cited:
            return []
        self._cited.add(seen)
        return [found]

    def _extra(self, extra: Mapping[str, Any]) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        for annotation in extra.get("annotations") or ():
            out.extend(self._cite("message", openai_chat.url_citation(annotation)))
        if extra.get("citations") or extra.get("search_results"):
            sources = openai_chat.numbered_sources(extra, self._sources)
            self._sources += len(sources)
            out.extend(sources)
        for item in extra.get("tool_outputs") or ():
            if isinstance(item, Mapping) and item.get("type") in _OPENAI_TOOL_ITEMS:
                out.extend(self._openai_item(item))
        return out

    # -- provider-run tools --------------------------------------------------------------

    def _started(
        self,
        tool_id: str,
        name: str,
        arguments: Mapping[str, Any] | None,
        raw: Any,
        *,
        input_streams: bool = False,
    ) -> list[LLMEvent]:
        if not tool_id or tool_id in self._server or tool_id in self._server_done:
            return []
        state = self._server[tool_id] = _ServerTool(name, arguments, raw)
        if input_streams and not arguments and isinstance(raw, Mapping):
            self._streaming_input = (tool_id, raw.get("index"))
            return []
        return [state.started(tool_id)]

    def _continues_input(self, block: Any) -> bool:
        """Whether ``block`` is the next piece of the input that is streaming."""
        assert self._streaming_input is not None
        index = self._streaming_input[1]
        return (
            isinstance(block, Mapping)
            and block.get("type") in ("input_json_delta", "server_tool_call_chunk")
            and index is not None
            and block.get("index") == index
        )

    def _input_whole(self) -> list[LLMEvent]:
        """The ``started`` event of the tool whose input was streaming, now that it is whole."""
        if self._streaming_input is None:
            return []
        tool_id = self._streaming_input[0]
        self._streaming_input = None
        state = self._server.get(tool_id)
        return [state.started(tool_id)] if state is not None else []

    def _server_call(self, block: Mapping[str, Any]) -> list[LLMEvent]:
        """A standard ``server_tool_call`` or Anthropic's ``server_tool_use`` /
        ``mcp_tool_use`` block."""
        arguments = block.get("args", block.get("input"))
        arguments = arguments if isinstance(arguments, Mapping) and arguments else None
        if block.get("type") == "mcp_tool_use":
            name = str(block.get("name") or "mcp")
        else:
            name = _standard_tool_name(block)
        tool_id = str(block.get("id") or "")
        if block.get("index") is not None and tool_id:
            self._server_ids[block["index"]] = tool_id
        if tool_id in self._server and arguments:
            self._server[tool_id].arguments = arguments
        input_streams = block.get("type") != "server_tool_call"  # a standard one is whole
        return self._started(tool_id, name, arguments, block, input_streams=input_streams)

    def _server_chunk(self, block: Mapping[str, Any]) -> list[LLMEvent]:
        index = block.get("index")
        tool_id = str(block.get("id") or "") or self._server_ids.get(index, "")
        if not tool_id:
            return []
        if index is not None:
            self._server_ids[index] = tool_id
        out = self._started(tool_id, _standard_tool_name(block), None, block, input_streams=True)
        state = self._server.get(tool_id)
        if state is not None and isinstance(block.get("args"), str):
            state.parts.append(block["args"])
        return out

    def _input_fragment(self, block: Mapping[str, Any]) -> None:
        """ChatAnthropic's own ``input_json_delta`` block: the next piece of the input of the
        provider-run tool whose ``server_tool_use`` block had the same index (a client tool's
        pieces come as ``tool_call_chunks``)."""
        state = self._server.get(self._server_ids.get(block.get("index"), ""))
        partial = block.get("partial_json")
        if state is not None and isinstance(partial, str):
            state.parts.append(partial)

    def _tool_done(
        self,
        tool_id: str,
        default_name: str,
        status: ToolActivityStatus,
        summary: str | None,
        raw: Mapping[str, Any],
    ) -> list[LLMEvent]:
        if not tool_id or tool_id in self._server_done:
            return []
        self._server_done.add(tool_id)
        state = self._server.pop(tool_id, None)
        name = state.name if state is not None else default_name
        arguments = state.input() if state is not None else None
        return [ToolActivity(tool_id, name, status, summary=summary, input=arguments, raw=raw)]

    def _server_result(self, block: Mapping[str, Any]) -> list[LLMEvent]:
        """A standard ``server_tool_result`` block."""
        status: ToolActivityStatus = "failed" if block.get("status") == "error" else "finished"
        output = block.get("output")
        summary: str | None = None
        if isinstance(output, Mapping):
            if status == "failed":
                summary = str_or_none(str(output.get("error_code") or "")) or "error"
            elif isinstance(output.get("return_code"), int):
                summary = f"exit code {output['return_code']}"
            elif output.get("type") == "web_fetch_result":  # Anthropic's, as the SDK's own
                summary = str_or_none(output.get("url"))
        elif isinstance(output, list) and status == "finished":
            summary = results_summary(output)
        elif status == "failed":
            summary = "error"
        extras = block.get("extras")
        kind = extras.get("block_type") if isinstance(extras, Mapping) else None
        default = tool_name(str(kind or "").removesuffix("_tool_result")) or "server_tool"
        tool_id = str(block.get("tool_call_id") or "")
        return self._tool_done(tool_id, default, status, summary, block)

    def _anthropic_result(self, block: Mapping[str, Any]) -> list[LLMEvent]:
        """Anthropic's own ``*_tool_result`` block."""
        tool_id = str(block.get("tool_use_id") or "")
        state = self._server.get(tool_id)
        kind = str(block.get("type") or "").removesuffix("_tool_result")
        name = state.name if state is not None else tool_name(kind)
        result = anthropic.result_activity(block, name, None)
        return self._tool_done(tool_id, name, result.status, result.summary, block)

    def _openai_item(self, item: Mapping[str, Any]) -> list[LLMEvent]:
        """OpenAI's own built-in tool item, as a content block or in ``tool_outputs``."""
        tool_id = str(item.get("id") or "")
        if not tool_id or tool_id in self._server_done:
            return []
        if item.get("status") not in _FINAL_STATUSES:
            started = openai_responses.activity(item, "started")
            return self._started(tool_id, started.name, started.input, item)
        done = openai_responses.activity(item, "finished")
        out: list[LLMEvent] = []
        if tool_id not in self._server:
            out.extend(self._started(tool_id, done.name, done.input, item))
        self._server_done.add(tool_id)
        self._server.pop(tool_id, None)
        out.append(done)
        return out


def _standard_tool_name(block: Mapping[str, Any]) -> str:
    """A standard ``server_tool_call(_chunk)`` block's tool name. langchain-core names every
    MCP call ``remote_mcp`` and keeps the MCP tool's own name in ``extras["tool_name"]``
    (``langchain_core/messages/block_translators/anthropic.py``)."""
    extras = block.get("extras")
    if block.get("name") == "remote_mcp" and isinstance(extras, Mapping):
        own = extras.get("tool_name")
        if isinstance(own, str) and own:
            return own
    return tool_name(block.get("name"))
