"""Reference ("oracle") reading of the recorded provider streams.

Deliberately independent of ``sse_llm``: plain ``json`` plus the small SSE parser
below, reading whole files at once, so that a bug in the library's incremental
decoders cannot hide behind the same bug here.  Layouts are described in
``shared/fixtures/streams/FORMATS.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# CI clones the repo with ``shared/`` beside it: <clone>/../shared/fixtures/streams.
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "streams"

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


@dataclass(frozen=True)
class Expected:
    text: str
    reasoning: str
    finish_reason: str | None
    usage: dict[str, int] | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None


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


def _openai_chat(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] | None = None
    error: str | None = None
    # Calls are joined by their ``index``; Mistral sends whole calls with no
    # index, so each of those starts a new call.
    calls: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}

    for event, chunk in _json_events(body):
        if event == "error" or "error" in chunk:  # Groq named event / OpenRouter chunk
            error = _error_message(chunk.get("error", chunk))
            continue
        # Usage is the last non-null object: a trailing choices:[] chunk (OpenAI),
        # the finish chunk (Mistral), every chunk (Perplexity), or x_groq.
        for candidate in (chunk.get("usage"), (chunk.get("x_groq") or {}).get("usage")):
            if candidate:
                usage_raw = candidate
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
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]

    details = (usage_raw or {}).get("completion_tokens_details") or {}
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
    )


def _openai_responses(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] | None = None
    error: str | None = None
    calls: dict[str, dict[str, Any]] = {}  # item_id -> call, insertion-ordered

    for _, ev in _json_events(body):
        kind = ev.get("type")
        if kind == "response.output_text.delta":
            text.append(ev["delta"])
        elif kind == "response.reasoning_summary_text.delta":
            reasoning.append(ev["delta"])
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = ev["item"]
            # Only client-executed function calls; built-in tools (web_search_call,
            # ...) run on OpenAI's side and need nothing from the caller.
            if item.get("type") == "function_call":
                call = calls.setdefault(item["id"], {"arguments": ""})
                # call_id (not the fc_ item id) is what the tool result must cite.
                call["id"] = item.get("call_id") or ""
                call["name"] = item.get("name") or ""
                if kind == "response.output_item.done" and item.get("arguments"):
                    call["arguments"] = item["arguments"]
        elif kind == "response.function_call_arguments.delta":
            calls.setdefault(ev["item_id"], {"id": "", "name": "", "arguments": ""})
            calls[ev["item_id"]]["arguments"] += ev["delta"]
        elif kind == "error":
            error = ev.get("message") or _error_message(ev.get("error"))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            resp = ev["response"]
            usage_raw = resp.get("usage")
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
    )


def _anthropic(body: bytes) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage: dict[str, int] = {}
    error: str | None = None
    tools: dict[int, dict[str, Any]] = {}  # block index -> tool_use block

    for _, ev in _json_events(body):
        kind = ev.get("type")
        if kind == "message_start":
            start_usage = ev["message"].get("usage") or {}
            for key in ("input_tokens", "output_tokens"):
                if isinstance(start_usage.get(key), int):
                    usage[key] = start_usage[key]
        elif kind == "content_block_start":
            block = ev["content_block"]
            # Only ``tool_use``: ``server_tool_use`` blocks (code execution, web
            # search) are executed by Anthropic and their results arrive in the
            # same stream, so surfacing them would ask the caller to run a tool
            # it does not have.
            if block.get("type") == "tool_use":
                tools[ev["index"]] = {"block": block, "json": ""}
        elif kind == "content_block_delta":
            delta = ev["delta"]
            if delta.get("type") == "text_delta":
                text.append(delta["text"])
            elif delta.get("type") == "thinking_delta":
                reasoning.append(delta["thinking"])
            elif delta.get("type") == "input_json_delta" and ev["index"] in tools:
                tools[ev["index"]]["json"] += delta["partial_json"]
        elif kind == "message_delta":
            finish = (ev.get("delta") or {}).get("stop_reason") or finish
            # message_delta usage is cumulative and overrides message_start,
            # input_tokens included when present (it grows when server tools
            # loop) -- the same rule the anthropic SDK's accumulator applies.
            for key in ("input_tokens", "output_tokens"):
                value = (ev.get("usage") or {}).get(key)
                if isinstance(value, int):
                    usage[key] = value
        elif kind == "error":
            error = _error_message(ev.get("error"))

    tool_calls: list[ToolCall] = []
    for idx in sorted(tools):
        block, raw = tools[idx]["block"], tools[idx]["json"]
        args = _parse_args(raw) if raw.strip() else block.get("input") or {}
        tool_calls.append((block.get("id") or "", block.get("name") or "", args))
    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=usage or None,
        tool_calls=tool_calls,
        error=error,
    )


def _gemini_chunks(chunks: list[Any]) -> Expected:
    text: list[str] = []
    reasoning: list[str] = []
    finish: str | None = None
    usage_raw: dict[str, Any] | None = None
    error: str | None = None
    tool_calls: list[ToolCall] = []

    for chunk in chunks:
        if "error" in chunk:
            error = _error_message(chunk["error"])
            continue
        if chunk.get("usageMetadata"):  # running counts: the last one wins
            usage_raw = chunk["usageMetadata"]
        for cand in chunk.get("candidates") or []:
            if cand.get("index", 0) != 0:
                continue
            for part in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    fc = part["functionCall"]
                    # Gemini API calls carry no id (Vertex may); "" stands for none.
                    tool_calls.append((fc.get("id") or "", fc["name"], fc.get("args") or {}))
                elif isinstance(part.get("text"), str):
                    (reasoning if part.get("thought") else text).append(part["text"])
            if cand.get("finishReason") is not None:
                # str(): the enum-encoding=int capture says 1 where others say "STOP".
                finish = str(cand["finishReason"])

    return Expected(
        text="".join(text),
        reasoning="".join(reasoning),
        finish_reason=finish,
        usage=_usage(
            usage_raw,
            input_key="promptTokenCount",
            output_key="candidatesTokenCount",
            total_key="totalTokenCount",
            reasoning=(usage_raw or {}).get("thoughtsTokenCount"),
        ),
        tool_calls=tool_calls,
        error=error,
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
