"""What the model cites and what the provider does: :class:`Citation`, :class:`ToolActivity`,
the ``pause`` finish, the prompt-cache usage counts, and ``n > 1`` (several choices).

Recordings: every shared recording is read through the real SDK (``openai``, ``anthropic``)
or ``httpx`` + :mod:`sse_llm.sources`, served by the replay app under a real uvicorn in 7-byte
reads, normalised, and compared with the independent oracle (``tests/support/fixtures.py``).
Shapes no public recording has (Responses annotations, Anthropic ``citations_delta`` and
``pause_turn``, Gemini code execution, several choices ...) are built here from the providers'
API references and checked twice: against the oracle reading the same bytes, and against
values written by hand.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from langchain_core.messages import AIMessageChunk

from sse_llm import (
    ErrorEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sse_llm._model import Citation, LLMEvent, ToolActivity
from sse_llm._providers import detect
from sse_llm.sources import json_array, sse_json

from .support.fixtures import (
    activities_of,
    all_fixture_files,
    expected,
    fixture_id,
    parse_body,
    sources_of,
)
from .support.plugin import ReplayServer

ALL_FILES = all_fixture_files()
CHUNK = "7"  # odd: splits CRLF pairs and multi-byte UTF-8 characters
TIMEOUT = 30.0
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run(items: list[Any], *, choice: int | None = None) -> list[LLMEvent]:
    normalizer = detect(items[0], choice=choice)
    assert normalizer is not None
    events: list[LLMEvent] = []
    for item in items:
        events.extend(normalizer.feed(item))
    events.extend(normalizer.close())
    return events


def sse(items: list[Any], *, named: bool = False) -> bytes:
    """A provider body: one ``data:`` event per item (named by ``type`` for Anthropic and
    the Responses API, as they send it)."""
    out = []
    for item in items:
        head = f"event: {item['type']}\n" if named else ""
        out.append(f"{head}data: {json.dumps(item, ensure_ascii=False)}\n\n")
    return "".join(out).encode()


def text_of(events: list[LLMEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# ---------------------------------------------------------------------------------------------
# Every recording, through the real SDK (or httpx + sse_llm.sources) and a real uvicorn


async def openai_chat_items(base: str, file: str) -> AsyncIterator[Any]:
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="t", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=file, messages=MESSAGES, stream=True, extra_headers={"x-replay-chunk": CHUNK}
        )
        async with stream:
            async for chunk in stream:
                yield chunk


async def openai_responses_items(base: str, file: str) -> AsyncIterator[Any]:
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="t", max_retries=0) as client:
        stream = await client.responses.create(
            model=file, input="hi", stream=True, extra_headers={"x-replay-chunk": CHUNK}
        )
        async with stream:
            async for event in stream:
                yield event


async def anthropic_items(base: str, file: str) -> AsyncIterator[Any]:
    async with anthropic.AsyncAnthropic(base_url=base, api_key="t", max_retries=0) as client:
        stream = await client.messages.create(
            model=file,
            max_tokens=256,
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-replay-chunk": CHUNK},
        )
        async with stream:
            async for event in stream:
                yield event


def http_items(
    path: str, reader: Callable[[httpx.Response], AsyncIterator[Any]]
) -> Callable[[str, str], AsyncIterator[Any]]:
    async def items(base: str, file: str) -> AsyncIterator[Any]:
        headers = {"x-replay-file": file, "x-replay-chunk": CHUNK}
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            request = client.build_request("POST", base + path, json={}, headers=headers)
            response = await client.send(request, stream=True)
            async with aclosing(reader(response)) as parsed:
                async for item in parsed:
                    yield item

    return items


READERS: dict[str, Callable[[str, str], AsyncIterator[Any]]] = {
    "openai-chat": openai_chat_items,
    "mistral": openai_chat_items,
    "openai-responses": openai_responses_items,
    "anthropic": anthropic_items,
    "gemini": http_items("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", sse_json),
    "gemini-json-array": http_items(
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent", json_array
    ),
}
# The same streams without their SDKs.
HTTP_READERS: dict[str, Callable[[str, str], AsyncIterator[Any]]] = {
    "openai-chat": http_items("/v1/chat/completions", sse_json),
    "openai-responses": http_items("/v1/responses", sse_json),
    "anthropic": http_items("/v1/messages", sse_json),
}
READ_FILES = [p for p in ALL_FILES if p.parent.name in READERS]
HTTP_FILES = [p for p in ALL_FILES if p.parent.name in HTTP_READERS]
CITING = [p for p in ALL_FILES if expected(p).citations or expected(p).tool_activities]


async def normalise(reader: Callable[[str, str], AsyncIterator[Any]], base: str, path: Path) -> Any:
    return run([item async for item in reader(base, fixture_id(path))])


def assert_matches_oracle(events: list[LLMEvent], path: Path) -> None:
    want = expected(path)
    assert sources_of(events) == want.citations
    assert activities_of(events) == want.tool_activities
    assert [u.as_dict() for u in events if isinstance(u, Usage)] == (
        [] if want.full_usage is None else [want.full_usage]
    )
    assert [f.raw_reason for f in events if isinstance(f, Finish)] == [want.finish_reason]
    assert text_of(events) == want.text
    # A provider-run tool is never a tool the client is asked to run.
    activity_ids = {a.id for a in want.tool_activities}
    calls = [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]
    assert not {c.id for c in calls} & activity_ids
    assert not [e for e in events if isinstance(e, ErrorEvent)]


@pytest.mark.anyio
@pytest.mark.parametrize("path", READ_FILES, ids=fixture_id)
async def test_recording_read_by_its_sdk_gives_the_oracles_sources_and_activities(
    path: Path, replay_server: ReplayServer
) -> None:
    events = await normalise(READERS[path.parent.name], replay_server.base_url, path)
    assert_matches_oracle(events, path)


@pytest.mark.anyio
@pytest.mark.parametrize("path", HTTP_FILES, ids=fixture_id)
async def test_recording_read_with_httpx_gives_the_same(
    path: Path, replay_server: ReplayServer
) -> None:
    events = await normalise(HTTP_READERS[path.parent.name], replay_server.base_url, path)
    assert_matches_oracle(events, path)


def test_the_recordings_that_cite_or_run_tools_are_found() -> None:
    assert [fixture_id(p) for p in CITING] == [
        "openai-chat/openrouter-annotations-comments-emoji.sse",
        "openai-chat/perplexity-crlf-no-done.sse",
        "openai-responses/pydantic-web-search-annotations.sse",
        "anthropic/pydantic-code-execution-emoji.sse",
        "gemini/pydantic-web-search-grounding.sse",
    ]


def test_gemini_grounding_spans_are_characters_of_the_answer() -> None:
    path = next(p for p in CITING if p.name == "pydantic-web-search-grounding.sse")
    want = expected(path)
    chunks = [json.loads(line[5:]) for line in path.read_text().splitlines() if line[:5] == "data:"]
    supports = chunks[-1]["candidates"][0]["groundingMetadata"]["groundingSupports"]
    spans = [c for c in want.citations if c.start is not None]
    assert len(spans) == sum(len(s["groundingChunkIndices"]) for s in supports) == 9
    for citation in spans:
        assert citation.end is not None
        # Each span is exactly the sentence Gemini's segment quotes, though the answer
        # has "°" (2 UTF-8 bytes) before it.
        segment = want.text[citation.start : citation.end]
        assert segment in [s["segment"]["text"] for s in supports]
    assert "°" in want.text[: spans[-1].start]


# ---------------------------------------------------------------------------------------------
# OpenAI Chat Completions: annotations, Perplexity sources, several choices


def chat_chunk(*choices: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": list(choices), **fields}


def test_chat_url_citations_with_spans_once_each() -> None:
    annotation = {
        "type": "url_citation",
        "url_citation": {
            "url": "https://example.org/ü",
            "title": "Ü",
            "start_index": 6,
            "end_index": 11,
        },
    }
    items = [
        chat_chunk({"index": 0, "delta": {"content": "Hallo "}}),
        chat_chunk({"index": 0, "delta": {"content": "Welt!", "annotations": [annotation]}}),
        chat_chunk(
            {
                "index": 0,
                "delta": {"content": ""},
                "message": {"content": "Hallo Welt!", "annotations": [annotation]},
                "finish_reason": "stop",
            }
        ),
    ]
    events = run(items)
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("url", url="https://example.org/ü", title="Ü", start=6, end=11)
    ]
    assert text_of(events)[6:11] == "Welt!"
    body = sse(items)
    assert sources_of(events) == parse_body("openai-chat", body).citations


def test_mistral_reference_parts_cite_the_supplied_documents_once_each() -> None:
    # Mistral's typed content has "reference" parts, naming the documents a tool result
    # supplied that the text cites; they were dropped (found in review).
    def parts(*content: dict[str, Any]) -> dict[str, Any]:
        return chat_chunk({"index": 0, "delta": {"content": list(content)}})

    events = run(
        [
            parts(
                {"type": "text", "text": "파리는 "}, {"type": "reference", "reference_ids": [0, 2]}
            ),
            parts({"type": "text", "text": "수도다."}, {"type": "reference", "reference_ids": [0]}),
            chat_chunk({"index": 0, "delta": {}, "finish_reason": "stop"}),
        ]
    )
    assert text_of(events) == "파리는 수도다."
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("document", document_id="0"),
        Citation("document", document_id="2"),
    ]


def test_perplexity_sources_are_numbered_and_sent_once_as_the_list_grows() -> None:
    first = {"citations": ["https://a.example"], "search_results": [{"url": "https://a.example"}]}
    grown = {
        "citations": ["https://a.example", "https://b.example"],
        "search_results": [
            {"url": "https://b.example", "title": "B", "date": None},
            {"url": "https://a.example", "title": "A"},
        ],
    }
    items = [
        chat_chunk({"index": 0, "delta": {"content": "x [1]"}}, **first),
        chat_chunk({"index": 0, "delta": {"content": " [2]"}, "finish_reason": "stop"}, **grown),
    ]
    events = run(items)
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("url", url="https://a.example", index=1),
        Citation("url", url="https://b.example", title="B", index=2),
    ]
    # search_results alone (Perplexity's newer API) are the numbered list.
    alone = run(
        [
            chat_chunk(
                {"index": 0, "delta": {"content": "y"}},
                **{"search_results": [{"url": "https://c", "title": "C"}]},
            )
        ]
    )
    assert [e for e in alone if isinstance(e, Citation)] == [
        Citation("url", url="https://c", title="C", index=1)
    ]


N_CHOICES = [
    chat_chunk({"index": 0, "delta": {"role": "assistant", "content": "Ja"}}),
    chat_chunk({"index": 1, "delta": {"role": "assistant", "content": "Oui"}}),
    chat_chunk({"index": 0, "delta": {}, "finish_reason": "stop"}),
    chat_chunk({"index": 1, "delta": {"content": " 🙂"}, "finish_reason": "length"}),
    chat_chunk(usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}),
]


def test_several_choices_end_the_stream_with_an_error_unless_one_is_chosen() -> None:
    events = run(N_CHOICES)
    assert events[0] == TextDelta("Ja")
    assert len(events) == 2  # nothing after the error: no finish, no usage
    error = events[1]
    assert isinstance(error, ErrorEvent)
    assert error.code == "multiple_choices"
    assert "choice=" in error.message
    # A chunk carrying both choices at once fails before streaming either.
    both = chat_chunk(
        {"index": 0, "delta": {"content": "a"}}, {"index": 1, "delta": {"content": "b"}}
    )
    assert [type(e) for e in run([both])] == [ErrorEvent]


def test_choice_selects_one_choice_and_usage_counts_all() -> None:
    assert run(N_CHOICES, choice=1) == [
        TextDelta("Oui"),
        TextDelta(" 🙂"),
        Finish("length", "length"),
        Usage(5, 4, 9),
    ]
    assert run(N_CHOICES, choice=0) == [TextDelta("Ja"), Finish("stop", "stop"), Usage(5, 4, 9)]


def test_chat_usage_keeps_keys_a_later_chunk_leaves_out_and_reads_cache_counts() -> None:
    events = run(
        [
            chat_chunk(
                {"index": 0, "delta": {"content": "a"}},
                usage={
                    "prompt_tokens": 20,
                    "completion_tokens": 1,
                    "prompt_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            ),
            chat_chunk(
                {"index": 0, "delta": {}, "finish_reason": "stop"},
                usage={"completion_tokens": 7, "total_tokens": 27},
            ),
        ]
    )
    assert events[-1] == Usage(20, 7, 27, 0, cached_input_tokens=16, cache_write_tokens=4)
    # DeepSeek's own name for cache hits.
    deepseek = run(
        [
            chat_chunk(
                {"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"},
                usage={"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 8},
            )
        ]
    )
    assert deepseek[-1] == Usage(9, 1, cached_input_tokens=8)


# ---------------------------------------------------------------------------------------------
# Responses API: annotations and built-in tools


def ev(kind: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": n, **fields}


URL_CITATION = {
    "type": "url_citation",
    "url": "https://weather.example/paris",
    "title": "Paris — météo",
    "start_index": 15,
    "end_index": 20,
}
FILE_CITATION = {"type": "file_citation", "file_id": "file-1", "filename": "notes.pdf", "index": 20}
CONTAINER_FILE = {
    "type": "container_file_citation",
    "container_id": "cntr_1",
    "file_id": "cfile_1",
    "filename": "chart.png",
    "start_index": 0,
    "end_index": 5,
}
WEB_ITEM = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
WEB_DONE = {
    "id": "ws_1",
    "type": "web_search_call",
    "status": "completed",
    "action": {"type": "search", "query": "météo Paris"},
}
CODE_DONE = {
    "id": "ci_1",
    "type": "code_interpreter_call",
    "status": "completed",
    "code": "print(1)",
    "container_id": "cntr_1",
    "outputs": [{"type": "logs", "logs": "1"}],
}
FILES_DONE = {
    "id": "fs_1",
    "type": "file_search_call",
    "status": "completed",
    "queries": ["notes"],
    "results": [{"file_id": "file-1", "text": "..."}, {"file_id": "file-2", "text": "..."}],
}
PART = {"type": "output_text", "text": "", "annotations": []}
ANSWER_2 = "It is sunny in Paris 🌞."
RESPONSES = [
    ev("response.created", 0, response={"status": "in_progress", "output": []}),
    ev("response.output_item.added", 1, output_index=0, item={"id": "msg_1", "type": "message"}),
    ev("response.output_text.delta", 2, item_id="msg_1", content_index=0, delta="Vérifions…"),
    ev("response.output_item.added", 3, output_index=1, item=WEB_ITEM),
    ev("response.web_search_call.in_progress", 4, output_index=1, item_id="ws_1"),
    ev("response.web_search_call.searching", 5, output_index=1, item_id="ws_1"),
    ev("response.web_search_call.completed", 6, output_index=1, item_id="ws_1"),
    ev("response.output_item.done", 7, output_index=1, item=WEB_DONE),
    ev("response.code_interpreter_call.in_progress", 8, output_index=2, item_id="ci_1"),
    ev("response.output_item.done", 9, output_index=2, item=CODE_DONE),
    ev(
        "response.output_item.added",
        10,
        output_index=3,
        item={**FILES_DONE, "status": "in_progress", "results": None},
    ),
    ev("response.output_item.done", 11, output_index=3, item=FILES_DONE),
    ev("response.output_item.added", 12, output_index=4, item={"id": "msg_2", "type": "message"}),
    ev("response.content_part.added", 13, item_id="msg_2", content_index=0, part=PART),
    ev("response.output_text.delta", 14, item_id="msg_2", content_index=0, delta="It is sunny "),
    ev("response.output_text.delta", 15, item_id="msg_2", content_index=0, delta="in Paris 🌞."),
    *(
        ev(
            "response.output_text.annotation.added",
            16 + i,
            item_id="msg_2",
            content_index=0,
            annotation_index=i,
            annotation=annotation,
        )
        for i, annotation in enumerate((URL_CITATION, FILE_CITATION, CONTAINER_FILE))
    ),
    ev(
        "response.content_part.done",
        19,
        item_id="msg_2",
        content_index=0,
        part={
            **PART,
            "text": ANSWER_2,
            "annotations": [URL_CITATION, FILE_CITATION, CONTAINER_FILE],
        },
    ),
    ev(
        "response.output_item.done",
        20,
        output_index=4,
        item={
            "id": "msg_2",
            "type": "message",
            "content": [
                {
                    **PART,
                    "text": ANSWER_2,
                    "annotations": [URL_CITATION, FILE_CITATION, CONTAINER_FILE],
                }
            ],
        },
    ),
    ev(
        "response.completed",
        21,
        response={
            "status": "completed",
            "output": [WEB_DONE, CODE_DONE, FILES_DONE],
            "usage": {
                "input_tokens": 100,
                "input_tokens_details": {"cached_tokens": 64},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 5},
                "total_tokens": 120,
            },
        },
    ),
]


def test_responses_annotations_and_built_in_tools() -> None:
    events = run(RESPONSES)
    text = text_of(events)
    offset = len("Vérifions…")
    assert text == "Vérifions…" + ANSWER_2
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation(
            "url",
            url="https://weather.example/paris",
            title="Paris — météo",
            start=offset + 15,
            end=offset + 20,
        ),
        Citation(
            "file", title="notes.pdf", document_id="file-1", start=offset + 20, end=offset + 20
        ),
        Citation(
            "file",
            title="chart.png",
            document_id="cfile_1",
            container_id="cntr_1",
            start=offset,
            end=offset + 5,
        ),
    ]
    assert text[offset + 15 : offset + 20] == "Paris"
    assert [e for e in events if isinstance(e, ToolActivity)] == [
        ToolActivity("ws_1", "web_search", "started"),
        ToolActivity(
            "ws_1", "web_search", "finished", summary="météo Paris", input={"query": "météo Paris"}
        ),
        ToolActivity("ci_1", "code_execution", "started"),
        ToolActivity("ci_1", "code_execution", "finished", input={"code": "print(1)"}),
        ToolActivity(
            "fs_1", "file_search", "started", summary="notes", input={"queries": ["notes"]}
        ),
        ToolActivity(
            "fs_1", "file_search", "finished", summary="2 results", input={"queries": ["notes"]}
        ),
    ]
    assert not [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]
    assert events[-2:] == [
        Finish("stop", "completed"),
        Usage(100, 20, 120, 5, cached_input_tokens=64),
    ]
    want = parse_body("openai-responses", sse(RESPONSES, named=True))
    assert sources_of(events) == want.citations
    assert activities_of(events) == want.tool_activities
    assert [u.as_dict() for u in events if isinstance(u, Usage)] == [want.full_usage]


def test_responses_failed_tool_and_mcp_call() -> None:
    failed = {"id": "ws_2", "type": "web_search_call", "status": "failed"}
    mcp = {
        "id": "mcp_1",
        "type": "mcp_call",
        "name": "lookup",
        "server_label": "docs",
        "arguments": '{"q": "x"}',
        "error": "server unreachable",
    }
    events = run(
        [
            ev(
                "response.output_item.added",
                0,
                output_index=0,
                item={**failed, "status": "in_progress"},
            ),
            ev("response.output_item.done", 1, output_index=0, item=failed),
            ev("response.output_item.done", 2, output_index=1, item=mcp),
        ]
    )
    assert events == [
        ToolActivity("ws_2", "web_search", "started"),
        ToolActivity("ws_2", "web_search", "failed"),
        ToolActivity("mcp_1", "lookup", "started", input={"q": "x"}),
        ToolActivity("mcp_1", "lookup", "failed", summary="server unreachable", input={"q": "x"}),
    ]


@pytest.mark.parametrize(
    ("error", "summary"),
    [
        # McpToolExecutionError: its content is the tool's own output, never shown
        (
            {"type": "mcp_tool_execution_error", "content": [{"text": "SECRET OUTPUT"}]},
            "mcp_tool_execution_error",
        ),
        (
            {"type": "mcp_protocol_error", "code": -32602, "message": "bad params"},
            "mcp_protocol_error -32602",
        ),
        ({"type": "http_error", "code": 503, "message": "unavailable"}, "http_error 503"),
    ],
)
def test_responses_mcp_error_objects_give_their_kind_and_code_not_the_output(
    error: dict[str, Any], summary: str
) -> None:
    item = {"id": "mcp_2", "type": "mcp_call", "name": "lookup", "arguments": "{}", "error": error}
    events = run([ev("response.output_item.done", 0, output_index=0, item=item)])
    assert events[-1] == ToolActivity("mcp_2", "lookup", "failed", summary=summary)


def test_responses_image_generation_failure_gives_its_error_code() -> None:
    item = {
        "id": "ig_1",
        "type": "image_generation_call",
        "status": "failed",
        "error": {
            "code": "moderation_blocked",
            "type": "image_generation_user_error",
            "message": "x",
        },
    }
    events = run([ev("response.output_item.done", 0, output_index=0, item=item)])
    assert events[-1] == ToolActivity(
        "ig_1", "image_generation", "failed", summary="moderation_blocked"
    )


# ---------------------------------------------------------------------------------------------
# Anthropic: citations_delta, server tools, pause_turn, cache usage


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


WEB_RESULT_LOCATION = {
    "type": "web_search_result_location",
    "url": "https://cafe.example/",
    "title": "Café de Flore",
    "cited_text": "Open every day from 7:30.",
    "encrypted_index": "Eo8BCioIAhgBIiQ",
}
CHAR_LOCATION = {
    "type": "char_location",
    "cited_text": "Le café ouvre à 7h30.",
    "document_index": 0,
    "document_title": "Guide",
    "start_char_index": 10,
    "end_char_index": 31,
}
PAUSED = [
    {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
                "output_tokens": 1,
            }
        },
    },
    block_start(0, {"type": "text", "text": ""}),
    block_delta(0, {"type": "text_delta", "text": "Je cherche… "}),
    block_stop(0),
    block_start(
        1, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    ),
    block_delta(1, {"type": "input_json_delta", "partial_json": '{"query": "caf'}),
    block_delta(1, {"type": "input_json_delta", "partial_json": 'é Flore"}'}),
    block_stop(1),
    block_start(
        2,
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {"type": "web_search_result", "url": "https://cafe.example/", "title": "Café"},
                {"type": "web_search_result", "url": "https://b.example/", "title": "B"},
            ],
        },
    ),
    block_stop(2),
    block_start(3, {"type": "text", "text": "", "citations": []}),
    block_delta(3, {"type": "citations_delta", "citation": WEB_RESULT_LOCATION}),
    block_delta(3, {"type": "text_delta", "text": "Ouvert dès 7h30 ☕"}),
    block_delta(3, {"type": "citations_delta", "citation": CHAR_LOCATION}),
    block_delta(3, {"type": "text_delta", "text": "."}),
    block_stop(3),
    block_start(
        4, {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_fetch", "input": {}}
    ),
    block_delta(
        4, {"type": "input_json_delta", "partial_json": '{"url": "https://cafe.example/"}'}
    ),
    block_stop(4),
    block_start(
        5,
        {
            "type": "web_fetch_tool_result",
            "tool_use_id": "srvtoolu_2",
            "content": {"type": "web_fetch_tool_result_error", "error_code": "url_not_accessible"},
        },
    ),
    block_stop(5),
    block_start(
        6, {"type": "server_tool_use", "id": "srvtoolu_3", "name": "web_search", "input": {}}
    ),
    block_delta(6, {"type": "input_json_delta", "partial_json": '{"query": "horaires"}'}),
    block_stop(6),
    {
        "type": "message_delta",
        "delta": {"stop_reason": "pause_turn"},
        "usage": {"output_tokens": 50, "server_tool_use": {"web_search_requests": 2}},
    },
    {"type": "message_stop"},
]


def test_a_search_with_one_result_says_one_result() -> None:
    one = [
        *PAUSED[:8],  # the text, then the server_tool_use block
        block_start(
            2,
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [
                    {"type": "web_search_result", "url": "https://a.example/", "title": "A"}
                ],
            },
        ),
        block_stop(2),
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop"},
    ]
    finished = [e for e in run(one) if isinstance(e, ToolActivity) and e.status == "finished"]
    assert [a.summary for a in finished] == ["1 result"]
    assert activities_of(run(one)) == parse_body("anthropic", sse(one, named=True)).tool_activities


def test_anthropic_citations_server_tools_and_pause_turn() -> None:
    events = run(PAUSED)
    text = text_of(events)
    assert text == "Je cherche… Ouvert dès 7h30 ☕."
    start = len("Je cherche… ")
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation(
            "url",
            url="https://cafe.example/",
            title="Café de Flore",
            cited_text="Open every day from 7:30.",
            start=start,
            end=len(text),
        ),
        Citation(
            "document",
            title="Guide",
            document_id="0",
            cited_text="Le café ouvre à 7h30.",
            start=start,
            end=len(text),
        ),
    ]
    assert [e for e in events if isinstance(e, ToolActivity)] == [
        ToolActivity("srvtoolu_1", "web_search", "started", "café Flore", {"query": "café Flore"}),
        ToolActivity("srvtoolu_1", "web_search", "finished", "2 results", {"query": "café Flore"}),
        ToolActivity(
            "srvtoolu_2",
            "web_fetch",
            "started",
            "https://cafe.example/",
            {"url": "https://cafe.example/"},
        ),
        ToolActivity(
            "srvtoolu_2",
            "web_fetch",
            "failed",
            "url_not_accessible",
            {"url": "https://cafe.example/"},
        ),
        # Paused while the third search ran: it finishes in the continued turn.
        ToolActivity("srvtoolu_3", "web_search", "started", "horaires", {"query": "horaires"}),
    ]
    assert not [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]
    # pause_turn is not a finished answer; Anthropic counts cache reads and writes apart
    # from input_tokens, sse-llm adds them in.
    assert events[-2:] == [
        Finish("pause", "pause_turn"),
        Usage(115, 50, cached_input_tokens=100, cache_write_tokens=5),
    ]
    want = parse_body("anthropic", sse(PAUSED, named=True))
    assert want.finish_reason == "pause_turn"
    assert sources_of(events) == want.citations
    assert activities_of(events) == want.tool_activities
    assert [u.as_dict() for u in events if isinstance(u, Usage)] == [want.full_usage]


def test_anthropic_code_execution_result_kinds() -> None:
    def result(content: Any) -> list[LLMEvent]:
        return run(
            [
                block_start(
                    0,
                    {"type": "server_tool_use", "id": "s1", "name": "code_execution", "input": {}},
                ),
                block_delta(0, {"type": "input_json_delta", "partial_json": '{"code": "1/0"}'}),
                block_stop(0),
                block_start(
                    1,
                    {"type": "code_execution_tool_result", "tool_use_id": "s1", "content": content},
                ),
                block_stop(1),
            ]
        )

    ran = result(
        {"type": "code_execution_result", "stdout": "", "stderr": "Zero", "return_code": 1}
    )
    assert ran[-1] == ToolActivity(
        "s1", "code_execution", "finished", "exit code 1", {"code": "1/0"}
    )
    timeout = result(
        {"type": "code_execution_tool_result_error", "error_code": "execution_time_exceeded"}
    )
    assert timeout[-1] == ToolActivity(
        "s1", "code_execution", "failed", "execution_time_exceeded", {"code": "1/0"}
    )


def test_anthropic_pause_turn_through_langchain_table_too() -> None:
    chunk = AIMessageChunk(content="", response_metadata={"stop_reason": "pause_turn"})
    chunk.chunk_position = "last"
    assert run([chunk]) == [Finish("pause", "pause_turn")]


# ---------------------------------------------------------------------------------------------
# Gemini: grounding in bytes, code execution, usage, several candidates


def gemini(
    parts: list[Any], index: int = 0, usage: dict[str, int] | None = None, **candidate: Any
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "candidates": [{"index": index, "content": {"role": "model", "parts": parts}, **candidate}]
    }
    if usage is not None:
        chunk["usageMetadata"] = usage
    return chunk


GROUNDED = [
    gemini(
        [{"text": "Zürich: 18°C. "}],
        usage={"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    ),
    gemini(
        [
            {"executableCode": {"language": "PYTHON", "code": "print(18 * 9 / 5 + 32)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "64.4\n"}},
            {"executableCode": {"language": "PYTHON", "code": "while True: pass"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_DEADLINE_EXCEEDED"}},
            {"text": "That is 64°F 🌡."},
        ]
    ),
    gemini(
        [],
        finishReason="STOP",
        groundingMetadata={
            "webSearchQueries": ["Zürich Wetter", "Zürich weather"],
            "groundingChunks": [
                {"web": {"uri": "https://wetter.example/zh", "title": "Wetter"}},
                {
                    "retrievedContext": {
                        "uri": "gs://b/doc.pdf",
                        "title": "doc.pdf",
                        "text": "18 °C",
                    }
                },
                {"web": {"uri": "https://unused.example", "title": "Unused"}},
            ],
            "groundingSupports": [
                # "Zürich: 18°C." is 15 bytes ("ü" and "°" take 2 each) but 13 characters.
                {
                    "segment": {"endIndex": 15, "text": "Zürich: 18°C."},
                    "groundingChunkIndices": [0, 1],
                },
                {
                    "segment": {"startIndex": 16, "endIndex": 35, "text": "That is 64°F 🌡."},
                    "groundingChunkIndices": [0],
                },
            ],
        },
        # The last chunk says nothing of the candidates' tokens: the earlier count stays.
        usage={
            "promptTokenCount": 5,
            "totalTokenCount": 20,
            "thoughtsTokenCount": 4,
            "cachedContentTokenCount": 2,
        },
    ),
]


def test_gemini_grounding_code_execution_and_usage() -> None:
    events = run(GROUNDED)
    text = text_of(events)
    assert text == "Zürich: 18°C. That is 64°F 🌡."
    first, second = (0, len("Zürich: 18°C.")), (len("Zürich: 18°C. "), len(text))
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation(
            "url",
            url="https://wetter.example/zh",
            title="Wetter",
            start=first[0],
            end=first[1],
            index=1,
        ),
        Citation(
            "document",
            url="gs://b/doc.pdf",
            title="doc.pdf",
            cited_text="18 °C",
            start=first[0],
            end=first[1],
            index=2,
        ),
        Citation(
            "url",
            url="https://wetter.example/zh",
            title="Wetter",
            start=second[0],
            end=second[1],
            index=1,
        ),
        Citation("url", url="https://unused.example", title="Unused", index=3),
    ]
    assert text[second[0] : second[1]] == "That is 64°F 🌡."
    assert [e for e in events if isinstance(e, ToolActivity)] == [
        ToolActivity(
            "code_execution_0",
            "code_execution",
            "started",
            input={"code": "print(18 * 9 / 5 + 32)", "language": "PYTHON"},
        ),
        ToolActivity("code_execution_0", "code_execution", "finished", "ok"),
        ToolActivity(
            "code_execution_1",
            "code_execution",
            "started",
            input={"code": "while True: pass", "language": "PYTHON"},
        ),
        ToolActivity("code_execution_1", "code_execution", "failed", "deadline_exceeded"),
        ToolActivity(
            "web_search_0", "web_search", "finished", "Zürich Wetter", {"query": "Zürich Wetter"}
        ),
        ToolActivity(
            "web_search_1", "web_search", "finished", "Zürich weather", {"query": "Zürich weather"}
        ),
    ]
    assert events[-2:] == [
        Finish("stop", "STOP"),
        Usage(5, 3, 20, 4, cached_input_tokens=2),
    ]
    body = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\r\n\r\n" for c in GROUNDED).encode()
    want = parse_body("gemini", body)
    assert sources_of(events) == want.citations
    # The oracle lists searches before code runs; the library emits them as they come.
    assert sorted(activities_of(events)) == sorted(want.tool_activities)
    assert [u.as_dict() for u in events if isinstance(u, Usage)] == [want.full_usage]


@pytest.mark.parametrize("key", ["citationSources", "citations"])
def test_gemini_recitation_sources(key: str) -> None:
    # "citationSources" is the Gemini API's name (CitationMetadata in its REST reference),
    # "citations" Vertex AI's; the Gemini API's were dropped (found in review).
    events = run(
        [
            gemini(
                [{"text": "To be, or not to be"}],
                finishReason="STOP",
                citationMetadata={
                    key: [
                        {
                            "startIndex": 0,
                            "endIndex": 19,
                            "uri": "https://poem.example",
                            "license": "",
                        }
                    ]
                },
            )
        ]
    )
    assert Citation("url", url="https://poem.example") in events


def test_responses_reasoning_summary_parts_are_separate_paragraphs() -> None:
    # Found in review: OpenAI's summary comes in parts, each "**Title**\n\nbody" with no line
    # break at its end; joined bare, the next title ran into the last sentence.
    def summary(n: int, item: str, index: int, delta: str) -> dict[str, Any]:
        kind = "response.reasoning_summary_text.delta"
        return ev(kind, n, item_id=item, summary_index=index, delta=delta)

    items = [
        ev("response.reasoning_summary_part.added", 1, item_id="rs_1", summary_index=0),
        summary(2, "rs_1", 0, "**Plan**\n\nFirst "),
        summary(3, "rs_1", 0, "part."),
        ev("response.reasoning_summary_part.added", 4, item_id="rs_1", summary_index=1),
        summary(5, "rs_1", 1, "**Next**\n\nSecond part."),
        ev("response.output_text.delta", 6, item_id="msg_1", content_index=0, delta="Answer"),
        summary(7, "rs_2", 0, "**Again**\n\nLater."),
        ev("response.completed", 8, response={"status": "completed", "output": []}),
    ]
    events = run(items)
    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    assert reasoning == [
        "**Plan**\n\nFirst ",
        "part.",
        "\n\n**Next**\n\nSecond part.",
        "\n\n**Again**\n\nLater.",
    ]
    assert text_of(events) == "Answer"  # the answer's text and offsets are not touched


CLIENT_RUN_ITEMS = [
    {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1", "name": "grammar"},
    {"type": "apply_patch_call", "id": "ap_1", "call_id": "call_1", "status": "completed"},
    {"type": "shell_call", "id": "sh_1", "call_id": "call_1", "environment": {"type": "local"}},
    {"type": "shell_call", "id": "sh_1", "call_id": "call_1", "environment": None},
    {"type": "tool_search_call", "id": "ts_1", "call_id": "call_1", "execution": "client"},
]


@pytest.mark.parametrize("item", CLIENT_RUN_ITEMS, ids=lambda i: f"{i['type']}-{len(i)}")
@pytest.mark.parametrize("in_stream", [True, False])
def test_responses_client_run_tool_makes_the_finish_tool_calls(
    in_stream: bool, item: dict[str, Any]
) -> None:
    # A GPT-5 custom tool (free-form input), apply_patch, a local shell or a client-run tool
    # search is not surfaced, but the model waits for its result: the finish said "stop", as
    # if the answer were complete (found in review). Seen as the item is added, or only in
    # the completed response's output.
    items = [ev("response.output_item.added", 1, output_index=0, item=item)] if in_stream else []
    output = [{**item, "input": "SELECT 1"}]
    items.append(ev("response.completed", 2, response={"status": "completed", "output": output}))
    events = run(items)
    assert [e for e in events if isinstance(e, Finish)] == [Finish("tool_calls", "completed")]
    assert not [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]


@pytest.mark.parametrize(
    "item",
    [
        {"type": "shell_call", "id": "s", "environment": {"type": "container_reference"}},
        {"type": "tool_search_call", "id": "t", "execution": "server"},
    ],
    ids=lambda i: i["type"],
)
def test_responses_tools_openai_runs_itself_leave_the_finish_stop(item: dict[str, Any]) -> None:
    # Added with no environment yet (as a hosted shell may be): the completed output decides.
    added = {k: v for k, v in item.items() if k != "environment"}
    output = [item]
    events = run(
        [
            ev("response.output_item.added", 1, output_index=0, item=added),
            ev("response.completed", 2, response={"status": "completed", "output": output}),
        ]
    )
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop", "completed")]


def test_langchain_chatopenai_summary_parts_and_file_citation_index() -> None:
    # ChatOpenAI (Responses API) streams each summary part under its own "index", and renames
    # a file citation's "index" to "file_index" (langchain-core keeps "index" for merging
    # chunks): both were read as if they were OpenAI's own (found in review).
    def reasoning(index: int, text: str) -> AIMessageChunk:
        summary = [{"type": "summary_text", "index": index, "text": text}]
        return AIMessageChunk(
            content=[{"type": "reasoning", "id": "rs_1", "index": 0, "summary": summary}]
        )

    file_citation = {"type": "file_citation", "file_id": "file-1", "filename": "r.pdf"}
    chunks = [
        reasoning(0, "**Plan**\n\nFirst "),
        reasoning(0, "part."),
        reasoning(1, "**Next**\n\nSecond."),
        AIMessageChunk(content=[{"type": "text", "text": "See the report.", "index": 1}]),
        AIMessageChunk(
            content=[
                {"type": "text", "annotations": [{**file_citation, "file_index": 7}], "index": 1}
            ]
        ),
        AIMessageChunk(content="", response_metadata={"status": "completed"}),
    ]
    events = run(chunks)
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == (
        "**Plan**\n\nFirst part.\n\n**Next**\n\nSecond."
    )
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("file", title="r.pdf", document_id="file-1", start=7, end=7)
    ]
    # The same chunks in the standard blocks (output_version="v1"): langchain-core explodes
    # the summary into "reasoning" blocks with an "lc_rs_" index per part; they too ran
    # together (found in review).
    openai = {"model_provider": "openai"}
    standard = [
        AIMessageChunk(
            content=AIMessageChunk(content=c.content, response_metadata=openai).content_blocks
        )
        for c in chunks[:3]
    ]
    assert {block["index"] for chunk in standard for block in chunk.content} == {
        "lc_rs_305f30",
        "lc_rs_305f31",
    }
    events = run([*standard, chunks[-1]])
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == (
        "**Plan**\n\nFirst part.\n\n**Next**\n\nSecond."
    )


@pytest.mark.parametrize(
    "block",
    [
        {"type": "computer_call", "id": "cu_1", "call_id": "c", "action": {"type": "click"}},
        {"type": "apply_patch_call", "id": "ap_1", "call_id": "c", "status": "completed"},
    ],
    ids=lambda b: b["type"],
)
def test_langchain_chatopenai_client_run_tool_makes_the_finish_tool_calls(
    block: dict[str, Any],
) -> None:
    # As in the Responses normaliser: ChatOpenAI passes these items on as content blocks, and
    # the finish said "stop" while the model waited for the tool's result (found in review).
    openai = {"model_provider": "openai"}
    raw = [{**block, "index": 0}]
    # And as the standard blocks (output_version="v1") carry it: {"type": "non_standard"}.
    standard = AIMessageChunk(content=raw, response_metadata=openai).content_blocks
    assert standard[0]["type"] == "non_standard"
    for content in (raw, standard):
        chunks = [
            AIMessageChunk(content=content),
            AIMessageChunk(
                content="", response_metadata={"status": "completed"}, chunk_position="last"
            ),
        ]
        events = run(chunks)
        # The raw reason is the Responses status, as the Responses normaliser reports it.
        assert [e for e in events if isinstance(e, Finish)] == [Finish("tool_calls", "completed")]


def test_vertex_streamed_function_call_arguments_make_one_call() -> None:
    # Vertex AI with streamFunctionCallArguments (FunctionCall.partialArgs / willContinue in
    # its reference): one call over several parts, ended by an empty functionCall. Each part
    # used to be a call of its own, and the arguments were lost (found in review).
    def call(**fields: Any) -> dict[str, Any]:
        return gemini([{"functionCall": fields}])

    def arg(path: str, more: bool = False, **value: Any) -> dict[str, Any]:
        return {"jsonPath": path, **value, **({"willContinue": True} if more else {})}

    events = run(
        [
            call(name="getWeather", id="fc_1", willContinue=True),
            call(partialArgs=[arg("$.location", True, stringValue="서울, ")], willContinue=True),
            call(partialArgs=[arg("$.location", stringValue="Korea")], willContinue=True),
            call(
                partialArgs=[
                    arg("$.options['unit']", stringValue="celsius"),
                    arg("$.days[1]", numberValue=3),
                    arg("$.alerts", boolValue=False),
                    arg("$.note", nullValue="NULL_VALUE"),
                ],
                willContinue=True,
            ),
            call(),  # the end of the call
            call(name="getTime", args={"zone": "KST"}),  # an ordinary call after it
            gemini([], finishReason="STOP"),
            # A call the stream never ended: sent at the end all the same.
            call(name="late", willContinue=True),
            call(partialArgs=[arg("$.x", numberValue=1)], willContinue=True),
        ]
    )
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls[:2] == [
        ToolCall(
            0,
            "fc_1",
            "getWeather",
            '{"location":"서울, Korea","options":{"unit":"celsius"},"days":[null,3],'
            '"alerts":false,"note":null}',
        ),
        ToolCall(1, "", "getTime", '{"zone":"KST"}'),
    ]
    assert [e.reason for e in events if isinstance(e, Finish)] == ["tool_calls"]
    assert calls[2:] == [ToolCall(2, "", "late", '{"x":1}')]
    assert not [e for e in events if isinstance(e, ToolCallDelta)]


def test_vertex_streamed_call_ended_by_its_last_part_then_an_empty_function_call() -> None:
    # As in google-genai's replays: the last partialArgs part has no willContinue (the end of
    # the call), and an empty functionCall follows; it became a second, nameless call with
    # '{}' (found in review). A functionCall with no name, id, args or partialArgs is no call.
    def call(**fields: Any) -> dict[str, Any]:
        return gemini([{"functionCall": fields}])

    events = run(
        [
            call(name="get_current_weather", willContinue=True),
            call(
                partialArgs=[{"jsonPath": "$.location", "stringValue": "boston"}], willContinue=True
            ),
            call(partialArgs=[{"jsonPath": "$.unit", "stringValue": "C"}]),
            call(),
            gemini([], finishReason="STOP"),
        ]
    )
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall(0, "", "get_current_weather", '{"location":"boston","unit":"C"}')
    ]
    assert [e.reason for e in events if isinstance(e, Finish)] == ["tool_calls"]


def test_gemini_several_candidates() -> None:
    items = [
        gemini([{"text": "Eins"}]),
        gemini([{"text": "Un"}], index=1),
        gemini([], finishReason="STOP"),
        gemini(
            [],
            index=1,
            finishReason="MAX_TOKENS",
            usage={"promptTokenCount": 3, "candidatesTokenCount": 4},
        ),
    ]
    default = run(items)
    assert default[0] == TextDelta("Eins")
    assert len(default) == 2
    assert isinstance(default[1], ErrorEvent)
    assert default[1].code == "multiple_choices"
    assert run(items, choice=1) == [TextDelta("Un"), Finish("length", "MAX_TOKENS"), Usage(3, 4)]


# ---------------------------------------------------------------------------------------------
# LangChain: standard and provider-native blocks


def test_langchain_anthropic_server_tool_input_arrives_in_input_json_deltas() -> None:
    # ChatAnthropic's own (v0) blocks: the server_tool_use block has an empty input and the
    # input streams in input_json_delta blocks of the same index (langchain-core's Anthropic
    # block translator reads them the same way). Found in review: they were ignored. The tool
    # is started once its input is whole (at the next block), as in Anthropic's own stream.
    chunks = [
        AIMessageChunk(
            content=[
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                    "index": 1,
                }
            ]
        ),
        AIMessageChunk(content=[{"type": "input_json_delta", "partial_json": "", "index": 1}]),
        AIMessageChunk(
            content=[{"type": "input_json_delta", "partial_json": '{"query": "서', "index": 1}]
        ),
        AIMessageChunk(content=[{"type": "input_json_delta", "partial_json": '울"}', "index": 1}]),
        AIMessageChunk(
            content=[
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_1",
                    "content": [{"type": "web_search_result", "url": "https://a"}],
                    "index": 2,
                }
            ]
        ),
    ]
    activities = [e for e in run(chunks) if isinstance(e, ToolActivity)]
    assert [(a.status, a.summary, a.input) for a in activities] == [
        ("started", "서울", {"query": "서울"}),
        ("finished", "1 result", {"query": "서울"}),
    ]


def test_langchain_a_tool_whose_input_streams_starts_once_the_input_is_whole() -> None:
    # LangChain passes no content_block_stop on: the input is whole at the first block of
    # another kind or index, the answer's last chunk, or the stream's end.
    def streamed(index: int, *parts: str) -> list[AIMessageChunk]:
        start = {"type": "server_tool_call_chunk", "id": f"t{index}", "name": "web_search"}
        return [
            AIMessageChunk(content=[{**start, "args": "", "index": index}]),
            *(
                AIMessageChunk(
                    content=[{"type": "server_tool_call_chunk", "args": part, "index": index}]
                )
                for part in parts
            ),
        ]

    def shape(events: list[LLMEvent]) -> list[Any]:
        out: list[Any] = []
        for e in events:
            if isinstance(e, ToolActivity):
                out.append((e.id, e.status, e.summary, e.input))
            elif isinstance(e, TextDelta):
                out.append(e.text)
            elif isinstance(e, Finish):
                out.append(e.reason)
        return out

    # Plain text after it (content as a str), then the stream's end.
    events = run([*streamed(0, '{"query": ', '"부산"}'), AIMessageChunk(content="답")])
    assert shape(events) == [("t0", "started", "부산", {"query": "부산"}), "답"]
    # The answer's last chunk.
    last = AIMessageChunk(
        content=[], response_metadata={"stop_reason": "end_turn"}, chunk_position="last"
    )
    events = run([*streamed(1, '{"url": "https://a"}'), last])
    assert shape(events) == [("t1", "started", "https://a", {"url": "https://a"}), "stop"]
    # The stream's end alone, and a second tool right after the first.
    events = run([*streamed(2, '{"query": "a"}'), *streamed(3, '{"query": "b"}')])
    assert shape(events) == [
        ("t2", "started", "a", {"query": "a"}),
        ("t3", "started", "b", {"query": "b"}),
    ]
    # A standard server_tool_call is whole: started at once.
    whole = {"type": "server_tool_call", "id": "t4", "name": "web_search", "args": {}}
    events = run([AIMessageChunk(content=[{**whole, "index": 0}])])
    assert shape(events) == [("t4", "started", None, None)]


def test_langchain_v1_mcp_calls_keep_the_tool_s_name_and_web_fetch_its_url() -> None:
    # Found in review: langchain-core names every MCP call "remote_mcp" (the tool's own name
    # in extras), and a web_fetch result's URL was not its summary as without LangChain.
    chunks = [
        AIMessageChunk(
            content=[
                {
                    "type": "server_tool_call",
                    "id": "mcptoolu_1",
                    "name": "remote_mcp",
                    "args": {"text": "hi"},
                    "extras": {"tool_name": "echo"},
                    "index": 0,
                },
                {
                    "type": "server_tool_call",
                    "id": "srvtoolu_2",
                    "name": "web_fetch",
                    "args": {"url": "https://a.example/p"},
                    "index": 1,
                },
                {
                    "type": "server_tool_result",
                    "tool_call_id": "srvtoolu_2",
                    "status": "success",
                    "output": {"type": "web_fetch_result", "url": "https://a.example/p"},
                    "extras": {"block_type": "web_fetch_tool_result"},
                    "index": 2,
                },
            ]
        )
    ]
    activities = [e for e in run(chunks) if isinstance(e, ToolActivity)]
    assert [(a.id, a.name, a.status, a.summary) for a in activities] == [
        ("mcptoolu_1", "echo", "started", None),
        ("srvtoolu_2", "web_fetch", "started", "https://a.example/p"),
        ("srvtoolu_2", "web_fetch", "finished", "https://a.example/p"),
    ]


def test_langchain_standard_blocks_citations_and_server_tools() -> None:
    chunks = [
        AIMessageChunk(
            content=[
                {
                    "type": "server_tool_call",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "args": {"query": "q"},
                    "index": 0,
                }
            ]
        ),
        AIMessageChunk(
            content=[
                {
                    "type": "server_tool_result",
                    "tool_call_id": "srvtoolu_1",
                    "status": "success",
                    "output": [{"url": "https://a"}, {"url": "https://b"}],
                    "index": 1,
                }
            ]
        ),
        AIMessageChunk(content=[{"type": "text", "text": "Vor: ", "index": 2}]),
        AIMessageChunk(
            content=[
                {
                    "type": "text",
                    "text": "Antwort",
                    "index": 3,
                    "annotations": [
                        {
                            "type": "citation",
                            "url": "https://a",
                            "title": "A",
                            "start_index": 0,
                            "end_index": 7,
                            "cited_text": "x",
                        }
                    ],
                }
            ]
        ),
        # Anthropic's own blocks (output_version v0).
        AIMessageChunk(
            content=[
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_2",
                    "name": "code_execution",
                    "input": {},
                    "index": 4,
                }
            ]
        ),
        AIMessageChunk(
            content=[
                {
                    "type": "code_execution_tool_result",
                    "tool_use_id": "srvtoolu_2",
                    "content": {
                        "type": "code_execution_result",
                        "stdout": "1",
                        "stderr": "",
                        "return_code": 0,
                    },
                    "index": 5,
                }
            ]
        ),
        # OpenAI's own block (Responses API through ChatOpenAI).
        AIMessageChunk(
            content=[
                {
                    "type": "web_search_call",
                    "id": "ws_1",
                    "status": "completed",
                    "action": {"type": "search", "query": "w"},
                }
            ]
        ),
        # ChatPerplexity's numbered sources.
        AIMessageChunk(content="", additional_kwargs={"citations": ["https://p"]}),
        AIMessageChunk(
            content="",
            usage_metadata={
                "input_tokens": 30,
                "output_tokens": 5,
                "total_tokens": 35,
                "input_token_details": {"cache_read": 20, "cache_creation": 3},
            },
            response_metadata={"stop_reason": "end_turn"},
        ),
    ]
    events = run(chunks)
    assert text_of(events) == "Vor: Antwort"
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("url", url="https://a", title="A", cited_text="x", start=5, end=12),
        Citation("url", url="https://p", index=1),
    ]
    assert [e for e in events if isinstance(e, ToolActivity)] == [
        ToolActivity("srvtoolu_1", "web_search", "started", "q", {"query": "q"}),
        ToolActivity("srvtoolu_1", "web_search", "finished", "2 results", {"query": "q"}),
        ToolActivity("srvtoolu_2", "code_execution", "started"),
        ToolActivity("srvtoolu_2", "code_execution", "finished", "exit code 0"),
        ToolActivity("ws_1", "web_search", "started", "w", {"query": "w"}),
        ToolActivity("ws_1", "web_search", "finished", "w", {"query": "w"}),
    ]
    assert not [e for e in events if isinstance(e, ToolCall | ToolCallDelta)]
    assert events[-2:] == [
        Finish("stop", "end_turn"),
        Usage(30, 5, 35, cached_input_tokens=20, cache_write_tokens=3),
    ]


# ---------------------------------------------------------------------------------------------
# Names


def test_stream_error_is_a_deprecated_alias_of_error_event() -> None:
    with pytest.warns(DeprecationWarning, match="ErrorEvent"):
        from sse_llm._model import StreamError
    assert StreamError is ErrorEvent
    import sse_llm._model as model

    with pytest.warns(DeprecationWarning):
        assert model.StreamError is ErrorEvent
    with pytest.raises(AttributeError):
        _ = model.NoSuchName  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from sse_llm._model import ErrorEvent as Fresh  # the new name warns about nothing
    assert Fresh is ErrorEvent


def test_reasoning_is_not_part_of_the_answer_offsets() -> None:
    """Spans count answer text only: reasoning before the answer does not shift them."""
    events = run(
        [
            chat_chunk({"index": 0, "delta": {"reasoning_content": "long thought"}}),
            chat_chunk(
                {
                    "index": 0,
                    "delta": {
                        "content": "Yes.",
                        "annotations": [
                            {
                                "type": "url_citation",
                                "url_citation": {
                                    "url": "https://y",
                                    "title": "Y",
                                    "start_index": 0,
                                    "end_index": 4,
                                },
                            }
                        ],
                    },
                    "finish_reason": "stop",
                }
            ),
        ]
    )
    assert ReasoningDelta("long thought") in events
    assert Citation("url", url="https://y", title="Y", start=0, end=4) in events


def test_gemini_byte_offsets_map_to_characters_across_pieces() -> None:
    from sse_llm._providers.gemini import _Offsets

    pieces = ["Hello ", "wörld", " ", "🙂", " and ", "more ", "日本語", "", "!"]
    offsets = _Offsets()
    for piece in pieces:
        offsets.add(piece)
    whole = "".join(pieces)
    encoded = whole.encode("utf-8")
    for chars in range(len(whole) + 1):
        assert offsets.char(len(whole[:chars].encode("utf-8"))) == chars
    assert offsets.char(len(encoded) + 10) == len(whole)  # past the end: clamped
    # ASCII runs share one entry: memory grows with non-ASCII pieces only.
    assert len(offsets.pieces) == 7


def test_choice_is_ignored_by_formats_with_one_answer() -> None:
    item = {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}
    delta = block_delta(0, {"type": "text_delta", "text": "hi"})
    assert run([item, delta], choice=2) == [TextDelta("hi"), Usage(1)]
