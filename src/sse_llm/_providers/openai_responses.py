"""OpenAI Responses API streams (``client.responses.create(stream=True)``).

Source of the rules: OpenAI API reference, "Streaming events" of the Responses API, "The
response object" (output items, ``output_text.annotations``), the "Web search", "File search"
and "Code interpreter" tool guides; shapes as recorded in the test fixtures' FORMATS.md.
Every event carries its kind in ``type`` and a ``sequence_number``; OpenRouter's Responses
endpoint sends the same events (without ``event:`` lines, plus ``data: [DONE]``).

Mapped:

- ``response.output_text.delta`` and ``response.refusal.delta`` -> :class:`TextDelta` (a
  refusal is the text the user should see);
- ``response.reasoning_summary_text.delta`` and ``response.reasoning_text.delta`` (open-weight
  models' raw reasoning) -> :class:`ReasoningDelta`, with a blank line between two parts
  (``summary_index``, ``content_index``, or another reasoning item);
- a ``function_call`` output item (``response.output_item.added`` gives ``name`` and
  ``call_id``; ``response.function_call_arguments.delta`` the argument pieces) ->
  :class:`ToolCallDelta`, then :class:`ToolCall` at ``response.function_call_arguments.done``
  (whose ``arguments`` are authoritative). The call's id is ``call_id``, the one a
  ``function_call_output`` must cite, not the ``fc_...`` item id;
- annotations of an ``output_text`` part, from ``response.output_text.annotation.added`` or
  the part / message item when it is done (each one once) -> :class:`Citation`:
  ``url_citation`` (``kind="url"``), ``file_citation`` (file search; ``kind="file"``,
  ``document_id`` = ``file_id``, ``title`` = ``filename``, a point span at ``index``),
  ``container_file_citation`` (a file the code interpreter wrote; also ``container_id``),
  ``file_path`` (a point span). ``start_index`` / ``end_index`` / ``index`` count characters
  of the part's text; the span is shifted to the whole answer text;
- built-in tools OpenAI runs itself -> :class:`ToolActivity` (never a tool call): the
  ``web_search_call``, ``file_search_call``, ``code_interpreter_call``,
  ``image_generation_call`` and ``mcp_call`` output items are ``started`` when the item is
  added (or its ``response.<item>.in_progress`` event comes first) and ``finished`` /
  ``failed`` (item ``status`` ``failed`` / ``incomplete``, or an ``mcp_call`` ``error``) when
  the item is done. ``input``: the web search ``action`` (``{"query"}``, ``{"url"}``,
  ``{"url", "pattern"}``), the file search ``{"queries"}``, the interpreter's ``{"code"}``,
  the MCP call's arguments; ``summary``: the query (or URL), ``"N results"`` for a file
  search that returned its results. Search results, program output and images stay in
  ``raw``;
- the terminal ``response.completed`` / ``response.incomplete`` -> :class:`Finish` (``stop``,
  or ``tool_calls`` when function calls were made; ``incomplete_details.reason``
  ``max_output_tokens`` -> ``length``, ``content_filter`` -> ``content_filter``). The raw
  reason is the status (``"completed"``) or the incomplete reason (``"max_output_tokens"``);
- the terminal response's ``usage`` -> :class:`Usage` (input, output, total,
  ``output_tokens_details.reasoning_tokens``, ``input_tokens_details.cached_tokens``), at the
  end of the stream;
- the ``error`` event and ``response.failed`` (``response.error``) -> :class:`ErrorEvent` with
  the provider's message and code (once: OpenAI sends both for one failure).

Not surfaced: ``computer_call``, ``local_shell_call``, ``shell_call`` (run locally),
``apply_patch_call``, ``tool_search_call`` (``execution: "client"``) and ``custom_tool_call``
items (tools the client runs, outside function calling; read them from the SDK's own events),
``mcp_list_tools`` / ``mcp_approval_request``. Like a function call, such an item makes the
finish ``tool_calls``: the model waits for its result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._model import (
    Citation,
    ErrorEvent,
    Finish,
    FinishReason,
    LLMEvent,
    TextDelta,
    ToolActivity,
    ToolActivityStatus,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import (
    ReasoningParts,
    as_mapping,
    error_fields,
    int_or_none,
    nested_int,
    results_summary,
    span,
    str_or_none,
    tool_name,
)

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
# Output items of tools the client runs outside function calling (not surfaced).
_CLIENT_ITEMS = frozenset(
    {"custom_tool_call", "computer_call", "local_shell_call", "apply_patch_call"}
)
# Output items of the tools OpenAI runs itself.
_PROVIDER_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
    }
)


def runs_on_client(item: Any) -> bool:
    """Whether an output item is a tool call the client runs outside function calling: the
    model waits for its result, so the finish is ``tool_calls``. A ``shell_call`` runs on the
    client unless in a hosted container (``environment.type == "container_reference"``); a
    ``tool_search_call`` when its ``execution`` is ``"client"`` (OpenAI Responses API)."""
    if not isinstance(item, Mapping):
        return False
    kind = item.get("type")
    if kind in _CLIENT_ITEMS:
        return True
    if kind == "shell_call":
        environment = item.get("environment")
        hosted = (
            isinstance(environment, Mapping) and environment.get("type") == "container_reference"
        )
        return not hosted
    return kind == "tool_search_call" and item.get("execution") == "client"


_IN_PROGRESS = frozenset(f"response.{item}.in_progress" for item in _PROVIDER_ITEMS)


def matches(item: Any) -> bool:
    """A Responses stream event: an ``openai`` SDK event object (from ``responses.create``
    or the ``responses.stream()`` helper) or its JSON mapping."""
    if isinstance(item, Mapping):
        kind = item.get("type")
        if not isinstance(kind, str):
            return False
        return kind.startswith("response.") or (kind == "error" and "sequence_number" in item)
    if not type(item).__module__.startswith("openai."):
        return False
    kind = getattr(item, "type", None)
    return isinstance(kind, str) and (kind.startswith("response.") or kind == "error")


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a Responses ``usage`` object."""
    return Usage(
        input_tokens=int_or_none(raw.get("input_tokens")),
        output_tokens=int_or_none(raw.get("output_tokens")),
        total_tokens=int_or_none(raw.get("total_tokens")),
        reasoning_tokens=nested_int(raw, "output_tokens_details", "reasoning_tokens"),
        cached_input_tokens=nested_int(raw, "input_tokens_details", "cached_tokens"),
        raw=raw,
    )


def annotation_citation(annotation: Any, offset: int = 0) -> Citation | None:
    """A :class:`Citation` from one ``output_text`` annotation whose text part begins at
    ``offset`` in the answer; ``None`` for an annotation type that cites nothing."""
    if not isinstance(annotation, Mapping):
        return None
    kind = annotation.get("type")
    if kind == "url_citation":
        start, end = span(annotation.get("start_index"), annotation.get("end_index"), offset)
        return Citation(
            "url",
            url=str_or_none(annotation.get("url")),
            title=str_or_none(annotation.get("title")),
            start=start,
            end=end,
            raw=annotation,
        )
    if kind not in ("file_citation", "container_file_citation", "file_path"):
        return None
    if kind == "container_file_citation":
        start, end = span(annotation.get("start_index"), annotation.get("end_index"), offset)
    else:
        # LangChain's ChatOpenAI renames a file citation's "index" to "file_index".
        point = int_or_none(annotation.get("index", annotation.get("file_index")))
        start = end = None if point is None or point < 0 else offset + point
    return Citation(
        "file",
        title=str_or_none(annotation.get("filename")),
        document_id=str_or_none(annotation.get("file_id")),
        container_id=str_or_none(annotation.get("container_id")),
        start=start,
        end=end,
        raw=annotation,
    )


def activity(item: Mapping[str, Any], status: ToolActivityStatus) -> ToolActivity:
    """A :class:`ToolActivity` from a provider-run tool's output item (see the module
    docstring for ``input`` and ``summary``)."""
    kind = str(item.get("type") or "")
    name = tool_name(kind)
    arguments: dict[str, Any] = {}
    summary: str | None = None
    if kind == "web_search_call":
        action = item.get("action")
        if isinstance(action, Mapping):
            for key in ("query", "url", "pattern"):
                if isinstance(action.get(key), str):
                    arguments[key] = action[key]
            summary = str_or_none(action.get("query")) or str_or_none(action.get("url"))
    elif kind == "file_search_call":
        queries = [q for q in item.get("queries") or () if isinstance(q, str)]
        if queries:
            arguments["queries"] = queries
            summary = "; ".join(queries)
        results = item.get("results")
        if status == "finished" and isinstance(results, list):
            summary = results_summary(results)
    elif kind == "code_interpreter_call":
        if str_or_none(item.get("code")):
            arguments["code"] = item["code"]
    elif kind == "mcp_call":
        name = str(item.get("name") or kind)
        parsed = _json_object(item.get("arguments"))
        if parsed is not None:
            arguments.update(parsed)
        if status != "started" and item.get("error"):
            status = "failed"
    if status != "started" and item.get("status") in ("failed", "incomplete"):
        status = "failed"
    if status == "failed":
        summary = _error_summary(item.get("error")) or summary
    return ToolActivity(
        str(item.get("id") or ""),
        name,
        status,
        summary=summary,
        input=arguments or None,
        raw=item,
    )


def _error_summary(error: Any) -> str | None:
    """A failed tool's summary: its error code, never the tool's output.

    ``mcp_call.error`` is an object in the current API (``McpProtocolError`` and ``HTTPError``
    with an int ``code``, ``McpToolExecutionError`` whose ``content`` is the tool's own output)
    and was a string before; ``image_generation_call.error`` has a string ``code``
    (``moderation_blocked``). Source: the ``openai`` SDK's ``mcp_tool_call_error.py`` and
    ``response_output_item.py`` types.
    """
    if isinstance(error, str):
        return error[:200] or None  # the older form: the provider's message
    if not isinstance(error, Mapping):
        return None
    code, kind = error.get("code"), str_or_none(error.get("type"))
    if isinstance(code, str) and code:
        return code[:200]
    if isinstance(code, int) and not isinstance(code, bool) and kind:
        return f"{kind} {code}"[:200]
    return kind[:200] if kind else None


class _Call:
    __slots__ = ("call_id", "done", "index", "name", "parts")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index = index
        self.call_id = call_id
        self.name = name
        self.parts: list[str] = []
        self.done = False

    def whole(self, arguments: str | None = None) -> ToolCall:
        self.done = True
        text = arguments if arguments is not None else "".join(self.parts)
        return ToolCall(self.index, self.call_id, self.name, text)


class Normalizer:
    """Normalises Responses API stream events (see the module docstring for the mapping)."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}  # output item id -> call
        self._usage: Mapping[str, Any] | None = None
        self._failed = False
        self._offset = 0  # characters of answer text so far
        self._parts: dict[tuple[Any, Any], int] = {}  # (item id, content index) -> its start
        self._cited: set[tuple[Any, ...]] = set()
        self._tools: dict[str, bool] = {}  # provider tool item id -> finished
        self._reasoning = ReasoningParts()
        self._client_items = False  # an item of a tool the client runs, not surfaced

    def feed(self, item: Any) -> list[LLMEvent]:
        event = as_mapping(item)
        kind = event.get("type")
        if kind in _TEXT:
            delta = event.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            self._parts.setdefault((event.get("item_id"), event.get("content_index")), self._offset)
            self._offset += len(delta)
            return [TextDelta(delta)]
        if kind in _REASONING:
            delta = event.get("delta")
            if not isinstance(delta, str) or not delta:
                return []
            step = (event.get("item_id"), event.get("summary_index"), event.get("content_index"))
            return [self._reasoning.delta(step, delta)]
        if kind == "response.function_call_arguments.delta":
            call = self._call(event.get("item_id"))
            delta = event.get("delta") or ""
            call.parts.append(delta)
            return [ToolCallDelta(call.index, call.call_id, call.name, delta)] if delta else []
        if kind == "response.output_text.annotation.added":
            key = (event.get("item_id"), event.get("content_index"))
            return self._cite(key, [event.get("annotation")])
        if kind == "response.content_part.done":
            part = event.get("part")
            if not isinstance(part, Mapping):
                return []
            key = (event.get("item_id"), event.get("content_index"))
            return self._cite(key, part.get("annotations"))
        if kind == "response.output_item.added":
            return self._item_added(event.get("item"))
        if kind in _IN_PROGRESS:
            item_id = event.get("item_id")
            if not isinstance(item_id, str) or item_id in self._tools:
                return []
            item_type = str(kind).removeprefix("response.").removesuffix(".in_progress")
            return self._tool({"id": item_id, "type": item_type}, "started")
        if kind == "response.function_call_arguments.done":
            call = self._call(event.get("item_id"))
            call.name = call.name or event.get("name") or ""
            if call.done:
                return []
            arguments = event.get("arguments")
            return [call.whole(arguments if isinstance(arguments, str) else None)]
        if kind == "response.output_item.done":
            return self._item_done(event.get("item"))
        if kind in ("response.completed", "response.incomplete"):
            return self._end(event.get("response"))
        if kind == "response.failed":
            response = event.get("response")
            if isinstance(response, Mapping) and isinstance(response.get("usage"), Mapping):
                self._usage = response["usage"]
            return self._error(response.get("error") if isinstance(response, Mapping) else None)
        if kind == "error":
            return self._error(event)
        return []

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = self._flush()
        if self._usage is not None:
            out.append(usage(self._usage))
            self._usage = None
        return out

    def _call(self, item_id: Any) -> _Call:
        call = self._calls.get(item_id)
        if call is None:  # arguments before the item was announced: keep them anyway
            call = self._calls[item_id] = _Call(len(self._calls), "", "")
        return call

    def _cite(self, key: tuple[Any, Any], annotations: Any) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        if not isinstance(annotations, list):
            return out
        offset = self._parts.get(key, self._offset)
        for annotation in annotations:
            citation = annotation_citation(annotation, offset)
            if citation is None:
                continue
            seen = (
                *key,
                citation.kind,
                citation.url,
                citation.title,
                citation.document_id,
                citation.container_id,
                citation.start,
                citation.end,
            )
            if seen not in self._cited:
                self._cited.add(seen)
                out.append(citation)
        return out

    def _tool(self, item: Mapping[str, Any], status: ToolActivityStatus) -> list[LLMEvent]:
        item_id = str(item.get("id") or "")
        finished = self._tools.get(item_id)
        if finished or (status == "started" and finished is not None):
            return []
        out: list[LLMEvent] = []
        if status != "started" and finished is None:
            out.append(activity(item, "started"))
        self._tools[item_id] = status != "started"
        out.append(activity(item, status))
        return out

    def _item_added(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping):
            return []
        if item.get("type") in _PROVIDER_ITEMS:
            return self._tool(item, "started")
        if runs_on_client(item) and item.get("type") != "shell_call":
            # Not a shell call: where it runs may be known only once it is done (its
            # environment); the completed response's output tells (see the finish).
            self._client_items = True
            return []
        if item.get("type") != "function_call":
            return []
        call = self._call(item.get("id"))
        call.call_id = item.get("call_id") or call.call_id
        call.name = item.get("name") or call.name
        arguments = item.get("arguments") or ""
        if arguments:
            call.parts.append(arguments)
        return [ToolCallDelta(call.index, call.call_id, call.name, arguments)]

    def _item_done(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping):
            return []
        kind = item.get("type")
        if kind in _PROVIDER_ITEMS:
            return self._tool(item, "finished")
        if kind == "message":
            out: list[LLMEvent] = []
            for index, part in enumerate(item.get("content") or ()):
                if isinstance(part, Mapping):
                    out.extend(self._cite((item.get("id"), index), part.get("annotations")))
            return out
        if kind != "function_call":
            return []
        call = self._call(item.get("id"))
        call.call_id = call.call_id or item.get("call_id") or ""
        call.name = call.name or item.get("name") or ""
        if call.done:
            return []
        arguments = item.get("arguments")
        return [call.whole(arguments if isinstance(arguments, str) else None)]

    def _flush(self) -> list[LLMEvent]:
        return [call.whole() for call in self._calls.values() if not call.done]

    def _end(self, response: Any) -> list[LLMEvent]:
        out = self._flush()
        if not isinstance(response, Mapping):
            return out
        # Provider tools whose item never came back done: the final output has them.
        for item in response.get("output") or ():
            if (
                isinstance(item, Mapping)
                and item.get("type") in _PROVIDER_ITEMS
                and self._tools.get(str(item.get("id") or "")) is not True
            ):
                out.extend(self._tool(item, "finished"))
        if isinstance(response.get("usage"), Mapping):
            self._usage = response["usage"]
        status = response.get("status") or "completed"
        if status == "incomplete":
            details = response.get("incomplete_details")
            raw = (details.get("reason") if isinstance(details, Mapping) else None) or status
            out.append(Finish(_INCOMPLETE.get(raw, "other"), raw))
        elif status == "completed":
            waits = (
                self._calls
                or self._client_items
                or any(runs_on_client(item) for item in response.get("output") or ())
            )
            out.append(Finish("tool_calls" if waits else "stop", status))
        else:
            out.append(Finish("other", str(status)))
        return out

    def _error(self, error: Any) -> list[LLMEvent]:
        if self._failed:
            return []
        self._failed = True
        message, code = error_fields(error)
        return [ErrorEvent(message or "The model provider reported an error.", code)]


def _json_object(text: Any) -> dict[str, Any] | None:
    if isinstance(text, Mapping):
        return dict(text)
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
