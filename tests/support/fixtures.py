"""Reference ("oracle") reading of the recorded provider streams.

Deliberately independent of ``sse_llm``: plain ``json`` plus the small SSE parser
below, reading whole files at once, so that a bug in the library's incremental
decoders cannot hide behind the same bug here.  Layouts are described in
``shared/fixtures/streams/FORMATS.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


def results_summary(results: list[Any]) -> str:
    """The oracle's own wording of a result count: "1 result", "3 results"."""
    return "1 result" if len(results) == 1 else f"{len(results)} results"


# The recordings live outside the repository, beside the clone (<clone>/../shared/fixtures/
# streams, where CI puts them), or where SSE_LLM_FIXTURES says.
FIXTURES = Path(
    os.environ.get("SSE_LLM_FIXTURES")
    or Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "streams"
)

FORMATS = (
    "openai-chat",
    "mistral",
    "openai-responses",
    "anthropic",
    "gemini",
    "gemini-json-array",
    "ollama",
)

ToolCall = tuple[str, str, Any]


def fixture_files(fmt: str) -> list[Path]:
    """All recordings of one format, sorted by name (stable test ids)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown fixture format {fmt!r}")
    return sorted(p for p in (FIXTURES / fmt).iterdir() if p.is_file())


def all_fixture_files() -> list[Path]:
    return [p for fmt in FORMATS for p in fixture_files(fmt)]


def fixture_id(path: Path) -> str:
    """``<format>/<filename>``: the test id, and the replay server's selector."""
    return f"{path.parent.name}/{path.name}"


class Source(NamedTuple):
    """A citation, as the oracle reads it (compare with ``sse_llm.Citation``'s fields).

    ``start`` / ``end``: character offsets into the whole answer text (``Expected.text``);
    ``number``: the source's number in a numbered source list (Perplexity ``[n]``, Gemini
    grounding chunk position + 1): ``Citation.index`` (renamed here, as ``tuple.index`` is
    a method).
    """

    kind: str  # "url" | "document" | "file"
    url: str | None = None
    title: str | None = None
    document_id: str | None = None
    container_id: str | None = None
    cited_text: str | None = None
    start: int | None = None
    end: int | None = None
    number: int | None = None


class Activity(NamedTuple):
    """A provider-run tool event, as the oracle reads it (``sse_llm.ToolActivity``)."""

    id: str
    name: str
    status: str  # "started" | "finished" | "failed"
    summary: str | None = None
    input: dict[str, Any] | None = None


@dataclass(frozen=True)
class Expected:
    text: str
    reasoning: str
    finish_reason: str | None
    usage: dict[str, int] | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None
    # Prompt-cache counts (cached_input_tokens, cache_write_tokens) where the provider
    # reports them; kept apart from ``usage`` so that readers of other wire formats that do
    # not carry them (OpenAI chunks) still compare ``usage`` whole.
    cache_usage: dict[str, int] = field(default_factory=dict)
    citations: list[Source] = field(default_factory=list)
    tool_activities: list[Activity] = field(default_factory=list)

    @property
    def full_usage(self) -> dict[str, int] | None:
        """Every count the provider reported: what ``sse_llm.Usage.as_dict()`` should say."""
        if self.usage is None:
            return None
        return {**self.usage, **self.cache_usage}


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SseEvent:
    event: str  # "message" when the producer sent no ``event:`` line (spec default)
    data: str
    id: str | None


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_sse(body: bytes | str) -> list[SseEvent]:
    """Whole-body SSE parse following the WHATWG algorithm.

    Lines end in CRLF, CR or LF; several ``data:`` lines join with ``\\n``;
    ``:`` lines are comments; one space after the colon is dropped; an event
    with no data is not dispatched.  Per spec an unterminated trailing event is
    discarded -- every recording ends with a blank line, which the oracle test
    asserts, so this choice never changes an expectation.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    text = text.removeprefix("\ufeff")
    events: list[SseEvent] = []
    event_type = ""
    data: list[str] = []
    last_id: str | None = None
    lines = _LINE_BREAK.split(text)
    # split() leaves a final "" for a body ending in a line break; a body that
    # does not end in one has an unterminated last line, which is dropped.
    lines.pop()
    for line in lines:
        if line == "":
            if data:
                events.append(SseEvent(event_type or "message", "\n".join(data), last_id))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        # "retry" and unknown fields do not affect the payload.
    return events


def _json_events(body: bytes) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) for every SSE event except the ``[DONE]`` sentinel."""
    for ev in parse_sse(body):
        if ev.data.strip() == "[DONE]":
            continue
        yield ev.event, json.loads(ev.data)


# ------------------------------------------------------------------------ helpers


def _parse_args(raw: str) -> Any:
    # An empty argument string means "no arguments" (OpenAI sends "" for
    # parameterless functions); anything else must be valid JSON.
    return json.loads(raw) if raw.strip() else {}


def _error_message(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or json.dumps(err))
    return str(err)


def _usage(
    raw: dict[str, Any] | None,
    *,
    input_key: str,
    output_key: str,
    total_key: str | None = None,
    reasoning: Any = None,
) -> dict[str, int] | None:
    if not raw:
        return None
    out: dict[str, int] = {}
    for dst, src in (("input_tokens", input_key), ("output_tokens", output_key)):
        if isinstance(raw.get(src), int):
            out[dst] = raw[src]
    if isinstance(reasoning, int):
        out["reasoning_tokens"] = reasoning
    if total_key and isinstance(raw.get(total_key), int):
        out["total_tokens"] = raw[total_key]
    return out or None


# ---------------------------------------------------------------- per format

# Provider tool names -> the normalised names (written from the providers' docs, not
# imported from sse_llm).
_TOOL_NAMES = {
    "web_search": "web_search",
    "web_search_call": "web_search",
    "web_fetch": "web_fetch",
    "code_execution": "code_execution",
    "bash_code_execution": "code_execution",
    "text_editor_code_execution": "code_execution",
    "code_interpreter_call": "code_execution",
    "file_search_call": "file_search",
    "image_generation_call": "image_generation",
}


def _cache_usage(cached: Any, written: Any = None) -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(cached, int):
        out["cached_input_tokens"] = cached
    if isinstance(written, int):
        out["cache_write_tokens"] = written
    return out


def _char_span(start: Any, end: Any, offset: int = 0) -> tuple[int | None, int | None]:
    # A span needs two ints with start < end; OpenRouter's 0/0 means "not located".
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end:
        return offset + start, offset + end
    return None, None


def _openai_chat(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] = {}
    error: str | None = None
    # Calls are joined by their ``index``; Mistral sends whole calls with no
    # index, so each of those starts a new call.
    calls: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}
    # Perplexity: the numbered source list (``citations`` URLs, ``search_results`` titles),
    # repeated on every chunk: the longest list wins.
    numbered: list[str] = []
    titles: dict[str, str] = {}
    annotations: list[Source] = []

    for event, chunk in _json_events(body):
        if event == "error" or "error" in chunk:  # Groq named event / OpenRouter chunk
            error = _error_message(chunk.get("error", chunk))
            continue
        # Usage: running counts; each key keeps its last non-null value. It arrives on a
        # trailing choices:[] chunk (OpenAI), the finish chunk (Mistral), every chunk
        # (Perplexity), or in x_groq.
        for candidate in (chunk.get("usage"), (chunk.get("x_groq") or {}).get("usage")):
            if candidate:
                usage_raw.update({k: v for k, v in candidate.items() if v is not None})
        results = chunk.get("search_results") or []
        urls = chunk.get("citations") or [r.get("url") for r in results]
        if len(urls) > len(numbered):
            numbered = list(urls)
        for result in results:
            if result.get("title"):
                titles[result.get("url")] = result["title"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                text.append(content)
            elif isinstance(content, list):  # Magistral typed parts
                for part in content:
                    if part.get("type") == "text":
                        text.append(part.get("text") or "")
                    elif part.get("type") == "thinking":
                        reasoning.extend(t.get("text") or "" for t in part.get("thinking") or [])
            for key in ("reasoning_content", "reasoning"):  # DeepSeek / Groq, OpenRouter
                if isinstance(delta.get(key), str):
                    reasoning.append(delta[key])
            for tc in delta.get("tool_calls") or []:
                idx = tc.get("index")
                call = by_index.get(idx) if idx is not None else None
                if call is None:
                    call = {"id": "", "name": "", "arguments": ""}
                    calls.append(call)
                    if idx is not None:
                        by_index[idx] = call
                fn = tc.get("function") or {}
                call["id"] = tc.get("id") or call["id"]
                call["name"] = fn.get("name") or call["name"]
                call["arguments"] += fn.get("arguments") or ""
            # url_citation annotations, in the delta or the accumulated message; once each.
            for ann in (delta.get("annotations") or []) + (
                (choice.get("message") or {}).get("annotations") or []
            ):
                if ann.get("type") != "url_citation":
                    continue
                cite = ann.get("url_citation") or ann
                start, end = _char_span(cite.get("start_index"), cite.get("end_index"))
                source = Source("url", cite.get("url") or None, cite.get("title") or None)
                source = source._replace(start=start, end=end)
                if source not in annotations:
                    annotations.append(source)
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]

    details = usage_raw.get("completion_tokens_details") or {}
    prompt_details = usage_raw.get("prompt_tokens_details") or {}
    cached = prompt_details.get("cached_tokens")
    if cached is None:
        cached = usage_raw.get("prompt_cache_hit_tokens")  # DeepSeek's own name
    citations = [
        Source("url", url or None, titles.get(url), number=number)
        for number, url in enumerate(numbered, 1)
    ]
    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=_usage(
            usage_raw,
            input_key="prompt_tokens",
            output_key="completion_tokens",
            total_key="total_tokens",
            reasoning=details.get("reasoning_tokens"),
        ),
        tool_calls=[(c["id"], c["name"], _parse_args(c["arguments"])) for c in calls],
        error=error,
        cache_usage=_cache_usage(cached, prompt_details.get("cache_write_tokens")),
        citations=citations + annotations,
    )


def _responses_annotation(ann: dict[str, Any], offset: int) -> Source | None:
    kind = ann.get("type")
    if kind == "url_citation":
        start, end = _char_span(ann.get("start_index"), ann.get("end_index"), offset)
        return Source("url", ann.get("url") or None, ann.get("title") or None, start=start, end=end)
    if kind == "container_file_citation":
        start, end = _char_span(ann.get("start_index"), ann.get("end_index"), offset)
    elif kind in ("file_citation", "file_path"):
        # A point: the citation sits at ``index`` in the part's text.
        start = end = offset + ann["index"] if isinstance(ann.get("index"), int) else None
    else:
        return None
    return Source(
        "file",
        title=ann.get("filename") or None,
        document_id=ann.get("file_id") or None,
        container_id=ann.get("container_id") or None,
        start=start,
        end=end,
    )


def _responses_activity(item: dict[str, Any], status: str) -> Activity:
    kind = item.get("type")
    arguments: dict[str, Any] = {}
    summary = None
    name = _TOOL_NAMES.get(kind, kind)
    if kind == "web_search_call":
        action = item.get("action") or {}
        arguments = {
            k: action[k] for k in ("query", "url", "pattern") if isinstance(action.get(k), str)
        }
        summary = action.get("query") or action.get("url") or None
    elif kind == "file_search_call":
        if item.get("queries"):
            arguments = {"queries": item["queries"]}
            summary = "; ".join(item["queries"])
        if status == "finished" and isinstance(item.get("results"), list):
            summary = results_summary(item["results"])
    elif kind == "code_interpreter_call" and item.get("code"):
        arguments = {"code": item["code"]}
    elif kind == "mcp_call":
        name = item.get("name") or kind
        arguments = json.loads(item["arguments"]) if item.get("arguments") else {}
        if status != "started" and item.get("error"):
            status = "failed"
    if status != "started" and item.get("status") in ("failed", "incomplete"):
        status = "failed"
    return Activity(item.get("id") or "", name, status, summary, arguments or None)


_RESPONSES_TOOL_ITEMS = (
    "web_search_call",
    "file_search_call",
    "code_interpreter_call",
    "image_generation_call",
    "mcp_call",
)


def _openai_responses(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] | None = None
    error: str | None = None
    calls: dict[str, dict[str, Any]] = {}  # item_id -> call, insertion-ordered
    offset = 0
    part_start: dict[tuple[Any, Any], int] = {}  # (item_id, content_index) -> answer offset
    citations: list[tuple[Any, Source]] = []
    activities: list[Activity] = []
    tool_state: dict[str, str] = {}  # provider tool item id -> "started" | "done"

    def cite(key: tuple[Any, Any], annotations: list[Any]) -> None:
        for ann in annotations or []:
            source = _responses_annotation(ann, part_start.get(key, offset))
            if source is not None and (key, source) not in citations:
                citations.append((key, source))

    def tool(item: dict[str, Any], status: str) -> None:
        state = tool_state.get(item["id"])
        if state == "done" or (status == "started" and state):
            return
        if status != "started" and state is None:
            activities.append(_responses_activity(item, "started"))
        tool_state[item["id"]] = "started" if status == "started" else "done"
        activities.append(_responses_activity(item, status))

    for _, ev in _json_events(body):
        kind = ev.get("type")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            if kind == "response.output_text.delta":
                text.append(ev["delta"])
            if ev["delta"]:
                part_start.setdefault((ev.get("item_id"), ev.get("content_index")), offset)
                offset += len(ev["delta"])
        elif kind == "response.reasoning_summary_text.delta":
            reasoning.append(ev["delta"])
        elif kind == "response.output_text.annotation.added":
            cite((ev.get("item_id"), ev.get("content_index")), [ev["annotation"]])
        elif kind == "response.content_part.done":
            cite((ev.get("item_id"), ev.get("content_index")), ev["part"].get("annotations"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = ev["item"]
            if item.get("type") in _RESPONSES_TOOL_ITEMS:
                # Built-in tools run on OpenAI's side: activity, never a tool call.
                tool(item, "started" if kind.endswith("added") else "finished")
            elif item.get("type") == "message" and kind.endswith("done"):
                for index, part in enumerate(item.get("content") or []):
                    cite((item["id"], index), part.get("annotations"))
            # Only client-executed function calls.
            if item.get("type") == "function_call":
                call = calls.setdefault(item["id"], {"arguments": ""})
                # call_id (not the fc_ item id) is what the tool result must cite.
                call["id"] = item.get("call_id") or ""
                call["name"] = item.get("name") or ""
                if kind == "response.output_item.done" and item.get("arguments"):
                    call["arguments"] = item["arguments"]
        elif isinstance(kind, str) and kind.endswith(".in_progress") and ev.get("item_id"):
            item_type = kind.removeprefix("response.").removesuffix(".in_progress")
            if item_type in _RESPONSES_TOOL_ITEMS:
                tool({"id": ev["item_id"], "type": item_type}, "started")
        elif kind == "response.function_call_arguments.delta":
            calls.setdefault(ev["item_id"], {"id": "", "name": "", "arguments": ""})
            calls[ev["item_id"]]["arguments"] += ev["delta"]
        elif kind == "error":
            error = ev.get("message") or _error_message(ev.get("error"))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            resp = ev["response"]
            usage_raw = resp.get("usage")
            for item in resp.get("output") or []:
                if item.get("type") in _RESPONSES_TOOL_ITEMS:
                    tool(item, "finished")
            # finish_reason choice: the terminal ``status`` ("completed", "failed"),
            # except that an incomplete response reports WHY it is incomplete
            # (incomplete_details.reason, e.g. "max_output_tokens") because
            # "incomplete" alone says nothing a caller can act on.
            finish = resp.get("status")
            if finish == "incomplete" and resp.get("incomplete_details"):
                finish = resp["incomplete_details"].get("reason") or finish
            if resp.get("error") and error is None:
                error = _error_message(resp["error"])

    details = (usage_raw or {}).get("output_tokens_details") or {}
    input_details = (usage_raw or {}).get("input_tokens_details") or {}
    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=_usage(
            usage_raw,
            input_key="input_tokens",
            output_key="output_tokens",
            total_key="total_tokens",
            reasoning=details.get("reasoning_tokens"),
        ),
        tool_calls=[(c["id"], c["name"], _parse_args(c["arguments"])) for c in calls.values()],
        error=error,
        cache_usage=_cache_usage(input_details.get("cached_tokens")),
        citations=[source for _, source in citations],
        tool_activities=activities,
    )


def _anthropic_citation(raw: dict[str, Any], start: int, end: int) -> Source | None:
    kind = raw.get("type")
    cited = raw.get("cited_text") or None
    if kind == "web_search_result_location":
        return Source(
            "url", raw.get("url"), raw.get("title"), cited_text=cited, start=start, end=end
        )
    if kind == "search_result_location":
        source = raw.get("source")
        if source.startswith(("http://", "https://")):
            return Source("url", source, raw.get("title"), cited_text=cited, start=start, end=end)
        return Source(
            "document", None, raw.get("title"), source, cited_text=cited, start=start, end=end
        )
    if kind in ("char_location", "page_location", "content_block_location"):
        document = raw.get("file_id") or str(raw["document_index"])
        return Source(
            "document",
            None,
            raw.get("document_title"),
            document,
            cited_text=cited,
            start=start,
            end=end,
        )
    return None


def _anthropic_result(block: dict[str, Any], started: Activity | None) -> Activity:
    content = block.get("content")
    status, summary = "finished", None
    if isinstance(content, dict):
        if content.get("error_code") is not None or content.get("type", "").endswith("_error"):
            status, summary = "failed", str(content.get("error_code") or "error")
        elif isinstance(content.get("return_code"), int):
            summary = f"exit code {content['return_code']}"
        elif content.get("type") == "web_fetch_result":
            summary = content.get("url")
        elif isinstance(content.get("tool_references"), list):
            summary = results_summary(content["tool_references"])
    elif isinstance(content, list) and block["type"] != "mcp_tool_result":
        summary = results_summary(content)
    if block.get("is_error"):
        status, summary = "failed", summary or "error"
    if started is not None:
        name, arguments = started.name, started.input
    else:
        kind = block["type"].removesuffix("_tool_result")
        name, arguments = _TOOL_NAMES.get(kind, kind), None
    return Activity(block.get("tool_use_id") or "", name, status, summary, arguments)


def _anthropic(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage: dict[str, int] = {}
    error: str | None = None
    tools: dict[int, dict[str, Any]] = {}  # block index -> tool_use block
    # Citations attach to the text block they arrive in; their span is that block's text.
    text_blocks: dict[int, dict[str, Any]] = {}
    citations: list[Source] = []
    server: dict[int, dict[str, Any]] = {}  # block index -> server_tool_use block
    started: dict[str, Activity] = {}
    activities: list[Activity] = []

    def answer_length() -> int:
        return sum(len(t) for t in text)

    for _, ev in _json_events(body):
        kind = ev.get("type")
        if kind == "message_start":
            start_usage = ev["message"].get("usage") or {}
            for key, value in start_usage.items():
                if isinstance(value, int):
                    usage[key] = value
        elif kind == "content_block_start":
            block = ev["content_block"]
            # Only ``tool_use`` is a tool call: ``server_tool_use`` blocks (code
            # execution, web search) are executed by Anthropic and their results arrive
            # in the same stream, so surfacing them would ask the caller to run a tool it
            # does not have. They are activities.
            if block.get("type") == "tool_use":
                tools[ev["index"]] = {"block": block, "json": ""}
            elif block.get("type") == "text":
                text_blocks[ev["index"]] = {"start": answer_length(), "citations": []}
                text.append(block.get("text") or "")
            elif block.get("type") in ("server_tool_use", "mcp_tool_use"):
                server[ev["index"]] = {"block": block, "json": ""}
            elif block.get("type", "").endswith("_tool_result"):
                activities.append(_anthropic_result(block, started.get(block["tool_use_id"])))
        elif kind == "content_block_delta":
            delta = ev["delta"]
            if delta.get("type") == "text_delta":
                text.append(delta["text"])
            elif delta.get("type") == "thinking_delta":
                reasoning.append(delta["thinking"])
            elif delta.get("type") == "citations_delta":
                text_blocks[ev["index"]]["citations"].append(delta["citation"])
            elif delta.get("type") == "input_json_delta" and ev["index"] in tools:
                tools[ev["index"]]["json"] += delta["partial_json"]
            elif delta.get("type") == "input_json_delta" and ev["index"] in server:
                server[ev["index"]]["json"] += delta["partial_json"]
        elif kind == "content_block_stop":
            if ev["index"] in text_blocks:
                cited = text_blocks.pop(ev["index"])
                for raw in cited["citations"]:
                    source = _anthropic_citation(raw, cited["start"], answer_length())
                    if source is not None:
                        citations.append(source)
            elif ev["index"] in server:
                entry = server.pop(ev["index"])
                block = entry["block"]
                arguments = json.loads(entry["json"]) if entry["json"].strip() else block["input"]
                if block["type"] == "mcp_tool_use":
                    name = block["name"]
                else:
                    name = _TOOL_NAMES.get(block["name"], block["name"])
                summary = None
                if arguments:
                    summary = arguments.get("query") or arguments.get("url")
                activity = Activity(block["id"], name, "started", summary, arguments or None)
                started[block["id"]] = activity
                activities.append(activity)
        elif kind == "message_delta":
            finish = (ev.get("delta") or {}).get("stop_reason") or finish
            # message_delta usage is cumulative and overrides message_start,
            # input_tokens included when present (it grows when server tools
            # loop) -- the same rule the anthropic SDK's accumulator applies.
            for key, value in (ev.get("usage") or {}).items():
                if isinstance(value, int):
                    usage[key] = value
        elif kind == "error":
            error = _error_message(ev.get("error"))

    tool_calls: list[ToolCall] = []
    for idx in sorted(tools):
        block, raw = tools[idx]["block"], tools[idx]["json"]
        args = _parse_args(raw) if raw.strip() else block.get("input") or {}
        tool_calls.append((block.get("id") or "", block.get("name") or "", args))
    # Anthropic counts cache reads and writes apart from input_tokens; the normalised
    # input is the whole prompt.
    counts: dict[str, int] = {}
    if "input_tokens" in usage:
        counts["input_tokens"] = (
            usage["input_tokens"]
            + usage.get("cache_read_input_tokens", 0)
            + usage.get("cache_creation_input_tokens", 0)
        )
    if "output_tokens" in usage:
        counts["output_tokens"] = usage["output_tokens"]
    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=counts or None,
        tool_calls=tool_calls,
        error=error,
        cache_usage=_cache_usage(
            usage.get("cache_read_input_tokens"), usage.get("cache_creation_input_tokens")
        ),
        citations=citations,
        tool_activities=activities,
    )


_GEMINI_OUTCOMES = {
    "OUTCOME_OK": "ok",
    "OUTCOME_FAILED": "failed",
    "OUTCOME_DEADLINE_EXCEEDED": "deadline_exceeded",
}


def _gemini_chunks(chunks: list[Any]) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] = {}
    error: str | None = None
    tool_calls: list[ToolCall] = []
    # Grounding, read at the end against the whole text: the chunks (sources) and the
    # supports (segments of the answer, in UTF-8 BYTES, naming chunk indices).
    grounding_chunks: dict[int, dict[str, Any]] = {}
    supports: list[dict[str, Any]] = []
    queries: list[str] = []
    code: list[Activity] = []

    for chunk in chunks:
        if "error" in chunk:
            error = _error_message(chunk["error"])
            continue
        # Running counts: each key keeps its last value (a key a chunk leaves out is not
        # reset).
        usage_raw.update(chunk.get("usageMetadata") or {})
        for cand in chunk.get("candidates") or []:
            if cand.get("index", 0) != 0:
                continue
            for part in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    fc = part["functionCall"]
                    # Gemini API calls carry no id (Vertex may); "" stands for none.
                    tool_calls.append((fc.get("id") or "", fc["name"], fc.get("args") or {}))
                elif "executableCode" in part:
                    ec = part["executableCode"]
                    number = sum(1 for a in code if a.status == "started")
                    code.append(
                        Activity(
                            f"code_execution_{number}",
                            "code_execution",
                            "started",
                            None,
                            {"code": ec["code"], "language": ec["language"]},
                        )
                    )
                elif "codeExecutionResult" in part:
                    number = sum(1 for a in code if a.status != "started")
                    outcome = _GEMINI_OUTCOMES[part["codeExecutionResult"]["outcome"]]
                    code.append(
                        Activity(
                            f"code_execution_{number}",
                            "code_execution",
                            "finished" if outcome == "ok" else "failed",
                            outcome,
                        )
                    )
                elif isinstance(part.get("text"), str):
                    (reasoning if part.get("thought") else text).append(part["text"])
            grounding = cand.get("groundingMetadata") or {}
            for position, source in enumerate(grounding.get("groundingChunks") or []):
                grounding_chunks[position] = source
            for support in grounding.get("groundingSupports") or []:
                if support not in supports:
                    supports.append(support)
            for query in grounding.get("webSearchQueries") or []:
                if query not in queries:
                    queries.append(query)
            if cand.get("finishReason") is not None:
                # str(): the enum-encoding=int capture says 1 where others say "STOP".
                finish = str(cand["finishReason"])

    answer = "".join(text).encode("utf-8")

    def chars(byte_offset: int) -> int:
        return len(answer[:byte_offset].decode("utf-8"))

    def source_of(position: int) -> Source:
        entry = grounding_chunks[position]
        if "retrievedContext" in entry:
            ctx = entry["retrievedContext"]
            return Source(
                "document",
                ctx.get("uri"),
                ctx.get("title"),
                ctx.get("documentName"),
                cited_text=ctx.get("text"),
                number=position + 1,
            )
        web = entry.get("web") or entry.get("maps") or {}
        return Source("url", web.get("uri"), web.get("title"), number=position + 1)

    citations: list[Source] = []
    named: set[int] = set()
    for support in supports:
        segment = support["segment"]
        start, end = chars(segment.get("startIndex", 0)), chars(segment["endIndex"])
        for position in support["groundingChunkIndices"]:
            named.add(position)
            citations.append(source_of(position)._replace(start=start, end=end))
    citations += [source_of(p) for p in sorted(grounding_chunks) if p not in named]
    activities = [
        Activity(f"web_search_{n}", "web_search", "finished", query, {"query": query})
        for n, query in enumerate(queries)
    ]

    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=_usage(
            usage_raw,
            input_key="promptTokenCount",
            output_key="candidatesTokenCount",
            total_key="totalTokenCount",
            reasoning=usage_raw.get("thoughtsTokenCount"),
        ),
        tool_calls=tool_calls,
        error=error,
        cache_usage=_cache_usage(usage_raw.get("cachedContentTokenCount")),
        citations=citations,
        tool_activities=activities + code,
    )


def _ollama(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] | None = None
    error: str | None = None
    tool_calls: list[ToolCall] = []

    for line in body.decode("utf-8").split("\n"):
        if not line.strip():
            continue
        obj = json.loads(line)
        if "error" in obj:
            error = _error_message(obj["error"])
            continue
        message = obj.get("message") or {}
        # /api/chat streams message.content, /api/generate streams response.
        text.append(message.get("content") or obj.get("response") or "")
        reasoning.append(message.get("thinking") or obj.get("thinking") or "")
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            tool_calls.append((tc.get("id") or "", fn.get("name") or "", fn.get("arguments")))
        if obj.get("done"):
            finish = obj.get("done_reason")
            usage_raw = obj

    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=_usage(usage_raw, input_key="prompt_eval_count", output_key="eval_count"),
        tool_calls=tool_calls,
        error=error,
    )


def parse_body(fmt: str, body: bytes) -> Expected:
    """Oracle reading of a complete response body in ``fmt`` (see FORMATS)."""
    if fmt in ("openai-chat", "mistral"):
        return _openai_chat(body)
    if fmt == "openai-responses":
        return _openai_responses(body)
    if fmt == "anthropic":
        return _anthropic(body)
    if fmt == "gemini":
        return _gemini_chunks([data for _, data in _json_events(body)])
    if fmt == "gemini-json-array":
        return _gemini_chunks(json.loads(body.decode("utf-8")))
    if fmt == "ollama":
        return _ollama(body)
    raise ValueError(f"unknown fixture format {fmt!r}")


def expected(path: Path) -> Expected:
    """Oracle reading of one recording; the format is its directory name."""
    return parse_body(path.parent.name, path.read_bytes())


# ------------------------------------------------------- comparing with the library


def sources_of(events: list[Any]) -> list[Source]:
    """The citations among normalised events, as :class:`Source` tuples (duck-typed on the
    field names, so this module still imports nothing from sse_llm)."""
    return [
        Source(
            e.kind,
            e.url,
            e.title,
            e.document_id,
            e.container_id,
            e.cited_text,
            e.start,
            e.end,
            e.index,
        )
        for e in events
        if type(e).__name__ == "Citation"
    ]


def activities_of(events: list[Any]) -> list[Activity]:
    """The provider-tool events among normalised events, as :class:`Activity` tuples."""
    return [
        Activity(e.id, e.name, e.status, e.summary, None if e.input is None else dict(e.input))
        for e in events
        if type(e).__name__ == "ToolActivity"
    ]
