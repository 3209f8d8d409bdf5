"""Sanity checks for the oracle in tests/support/fixtures.py.

The generic checks run over every recording; the spot checks pin values read
off the files by eye, so a regression in the oracle cannot silently move the
goalposts for the library tests that compare against it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.support.fixtures import (
    FIXTURES,
    FORMATS,
    Expected,
    all_fixture_files,
    expected,
    fixture_files,
    fixture_id,
    parse_body,
    parse_sse,
)

ALL = all_fixture_files()


def by_id(name: str) -> Expected:
    return expected(FIXTURES / name)


def test_fixtures_directory_is_found() -> None:
    assert FIXTURES.is_dir(), f"clone shared/ beside the repo: {FIXTURES}"
    assert all(fixture_files(fmt) for fmt in FORMATS)


def test_every_recording_is_documented() -> None:
    with (FIXTURES / "SOURCES.tsv").open(newline="", encoding="utf-8") as f:
        listed = {row["file"] for row in csv.DictReader(f, delimiter="\t")}
    assert {fixture_id(p) for p in ALL} == listed


@pytest.mark.parametrize("path", ALL, ids=fixture_id)
def test_oracle_reads_every_recording(path: Path) -> None:
    exp = expected(path)
    assert exp.text or exp.tool_calls
    assert exp.finish_reason
    assert exp.error is None  # no recording contains an in-stream error
    for call_id, name, _args in exp.tool_calls:
        assert isinstance(call_id, str)
        assert name
    if path.suffix == ".sse":
        # The oracle drops an unterminated trailing event (per the SSE spec);
        # that only matters if a recording ends mid-event, which none does.
        assert path.read_bytes().endswith((b"\n\n", b"\r\n\r\n"))


@pytest.mark.parametrize("path", ALL, ids=fixture_id)
def test_usage_is_reported_except_by_azure(path: Path) -> None:
    usage = expected(path).usage
    if path.name.startswith("azure-"):
        assert usage is None  # no stream_options.include_usage in that request
    else:
        assert usage is not None
        assert {"input_tokens", "output_tokens"} <= usage.keys()


# ------------------------------------------------------------- openai-chat


def test_crewai_tool_call() -> None:
    exp = by_id("openai-chat/crewai-gpt4o-tool-call-usage.sse")
    assert exp.tool_calls == [
        ("call_bCEixqN8Y40SUyius8ZfVErH", "get_weather", {"location": "New York, NY"})
    ]
    assert exp.text == ""
    assert exp.finish_reason == "tool_calls"
    assert exp.usage == {
        "input_tokens": 68,
        "output_tokens": 18,
        "reasoning_tokens": 0,
        "total_tokens": 86,
    }


def test_magentic_parallel_tool_calls_joined_by_index() -> None:
    exp = by_id("openai-chat/magentic-gpt4o-parallel-tool-calls.sse")
    assert [(name, args) for _, name, args in exp.tool_calls] == [
        ("plus", {"a": 2, "b": 3}),
        ("minus", {"a": 3, "b": 2}),
    ]


def test_perplexity_without_done_still_finishes() -> None:
    path = FIXTURES / "openai-chat/perplexity-crlf-no-done.sse"
    raw = path.read_bytes()
    assert b"[DONE]" not in raw
    assert b"\r\n\r\n" in raw
    exp = expected(path)
    assert exp.finish_reason == "stop"
    assert exp.text.startswith("The largest country in the world by total area is Russia")
    assert exp.text.endswith("(6,601,665 square miles) [2][4].")
    # Usage is repeated on every chunk with running counts; the last one wins.
    assert exp.usage == {"input_tokens": 12, "output_tokens": 43, "total_tokens": 55}
    # Perplexity also sends the accumulated "message"; it must agree with the deltas.
    last = json.loads(parse_sse(raw)[-1].data)
    assert last["choices"][0]["message"]["content"] == exp.text


def test_azure_first_chunk_has_no_choices() -> None:
    path = FIXTURES / "openai-chat/azure-gpt41mini-content-filter-emoji.sse"
    first = json.loads(parse_sse(path.read_bytes())[0].data)
    assert first["choices"] == []
    assert first["id"] == ""
    assert "prompt_filter_results" in first
    exp = expected(path)
    assert exp.text.startswith("Sure! Here's a light-hearted joke about OpenTelemetry:")
    assert exp.text.endswith("their every move! \U0001f604")
    assert exp.finish_reason == "stop"


def test_openrouter_comments_are_ignored() -> None:
    path = FIXTURES / "openai-chat/openrouter-annotations-comments-emoji.sse"
    assert path.read_bytes().startswith(b": OPENROUTER PROCESSING\n\n")
    exp = expected(path)
    assert exp.text == (
        "The URL for Pydantic AI's GitHub repository is:  \n\n"
        "https://github.com/pydantic/pydantic-ai"
    )
    assert exp.usage is not None
    assert exp.usage["input_tokens"] == 2317


def test_deepseek_reasoning_is_separate_from_text() -> None:
    exp = by_id("openai-chat/deepseek-reasoning-content.sse")
    assert exp.text == "The product of 17 and 23 is 391."
    assert exp.reasoning.startswith('We are asked: "What is 17 * 23?"')
    assert exp.usage is not None
    assert exp.usage["reasoning_tokens"] == 34


def test_finish_length() -> None:
    exp = by_id("openai-chat/magentic-gpt4o-finish-length.sse")
    assert exp.text == "Hello! How can I"
    assert exp.finish_reason == "length"


# ----------------------------------------------------------------- mistral


def test_mistral_whole_tool_calls_without_index() -> None:
    exp = by_id("mistral/magentic-parallel-tool-calls.sse")
    assert exp.tool_calls == [
        ("nqjf8Hqe1", "plus", {"a": 1, "b": 2}),
        ("ATcpCKul3", "minus", {"a": 2, "b": 1}),
    ]
    assert exp.finish_reason == "tool_calls"
    assert exp.usage == {"input_tokens": 187, "output_tokens": 45, "total_tokens": 232}


def test_mistral_emoji_and_usage_on_finish_chunk() -> None:
    exp = by_id("mistral/magentic-emoji-usage.sse")
    assert exp.text.endswith("Let's have a friendly chat. \U0001f60a")
    assert exp.usage == {"input_tokens": 7, "output_tokens": 33, "total_tokens": 40}


def test_mistral_thinking_parts() -> None:
    # No Magistral recording exists; this is the documented typed-parts shape.
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                        {"type": "text", "text": "Hi"},
                    ]
                },
                "finish_reason": "stop",
            }
        ]
    }
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    exp = parse_body("mistral", body)
    assert (exp.text, exp.reasoning, exp.finish_reason) == ("Hi", "hmm", "stop")


# -------------------------------------------------------- openai-responses


def test_responses_incomplete_reports_the_reason() -> None:
    exp = by_id("openai-responses/dd-incomplete-max-output-tokens.sse")
    assert exp.finish_reason == "max_output_tokens"
    assert (
        exp.text == "In the bustling city of Detroit, a sleek, metallic blue sedan rolled off the"
    )


def test_responses_function_call_uses_call_id() -> None:
    exp = by_id("openai-responses/llm-function-call.sse")
    assert exp.tool_calls == [("call_sVidsfFJ6zlzRpelrPkTPlpd", "multiply", {"a": 1231, "b": 2331})]
    assert exp.finish_reason == "completed"


def test_responses_builtin_tools_are_not_tool_calls() -> None:
    exp = by_id("openai-responses/pydantic-web-search-annotations.sse")
    assert exp.tool_calls == []
    assert exp.text.startswith("San Francisco weather today (Tuesday, September 16, 2025)")
    assert exp.usage == {
        "input_tokens": 9463,
        "output_tokens": 582,
        "reasoning_tokens": 512,
        "total_tokens": 10045,
    }


@pytest.mark.parametrize("path", fixture_files("openai-responses"), ids=fixture_id)
def test_responses_deltas_match_done_events(path: Path) -> None:
    done = [
        json.loads(ev.data)["text"]
        for ev in parse_sse(path.read_bytes())
        if ev.event == "response.output_text.done"
    ]
    assert expected(path).text == "".join(done)


def test_responses_text_with_non_ascii() -> None:
    assert (
        by_id("openai-responses/llm-after-tool-result.sse").text
        == "1231 \u00d7 2331 = **2,869,461**"
    )
    assert by_id("openai-responses/dd-text-emoji.sse").text == (
        "Hello! \U0001f30d How can I help you today?"
    )


# --------------------------------------------------------------- anthropic


def test_anthropic_thinking_is_reasoning() -> None:
    exp = by_id("anthropic/llm-thinking.sse")
    assert exp.text == (
        '1. **Pouch** - references their iconic bill pouch\n2. **Pelé** - playful take on "pelican"'
    )
    assert exp.reasoning.startswith("The user wants two names for a pet pelican")
    assert "Pelé" in exp.reasoning


def test_anthropic_server_tool_use_is_not_a_tool_call() -> None:
    exp = by_id("anthropic/pydantic-code-execution-emoji.sse")
    assert exp.tool_calls == []
    assert exp.text.startswith("I'll calculate that expression for you right away!Following")
    assert exp.text.endswith("✅ Final Answer: **-428,330,955.97745**")
    # message_start said 2293 input tokens; the cumulative message_delta says 4714.
    assert exp.usage == {"input_tokens": 4714, "output_tokens": 304}


def test_anthropic_parallel_tool_use() -> None:
    exp = by_id("anthropic/magentic-parallel-tool-use.sse")
    assert exp.tool_calls == [
        ("toolu_01CM7Nqnu3tF2UqzksSCxsqt", "plus", {"a": 1, "b": 2}),
        ("toolu_01MGZBHepZSnpCrVLDT34yxu", "minus", {"a": 2, "b": 1}),
    ]
    # message_delta carries only output_tokens here; input comes from message_start.
    assert exp.usage == {"input_tokens": 469, "output_tokens": 104}


def test_anthropic_empty_tool_input() -> None:
    exp = by_id("anthropic/llm-tool-use.sse")
    assert exp.tool_calls == [("toolu_01CzN6riCPqw4pVSuTd9Dwn7", "pelican_name_generator", {})]
    assert exp.finish_reason == "tool_use"


def test_anthropic_stop_reasons() -> None:
    assert by_id("anthropic/llm-stop-sequence.sse").finish_reason == "stop_sequence"
    assert by_id("anthropic/dd-max-tokens.sse").finish_reason == "max_tokens"
    assert by_id("anthropic/langchaingo-basic.sse").text == "1\n2\n3\n4\n5"


# ------------------------------------------------------------------ gemini


def test_gemini_two_function_calls_in_one_chunk() -> None:
    exp = by_id("gemini/crewai-two-function-calls-one-chunk.sse")
    assert exp.tool_calls == [
        ("", "get_current_temperature", {"city": "Paris"}),
        ("", "get_current_temperature", {"city": "London"}),
    ]
    assert exp.finish_reason == "STOP"


def test_gemini_japanese_lf_only() -> None:
    path = FIXTURES / "gemini/louter-japanese-after-tool.sse"
    assert b"\r" not in path.read_bytes()
    assert expected(path).text == "今日の東京の天気は曇りで、気温は22度です。\n"


def test_gemini_thought_parts_are_reasoning() -> None:
    exp = by_id("gemini/pydantic-thinking.sse")
    assert exp.reasoning.startswith("**Clarifying User Goals**")
    assert exp.text.startswith("This is a great question! Safely crossing the street")
    assert "Clarifying" not in exp.text
    assert exp.usage == {
        "input_tokens": 34,
        "output_tokens": 469,
        "reasoning_tokens": 787,
        "total_tokens": 1290,
    }


def test_gemini_usage_is_the_last_metadata() -> None:
    # Earlier chunks carry only {"trafficType": ...}; counts come at the end.
    exp = by_id("gemini/otel-vertexai-basic.sse")
    assert exp.usage == {
        "input_tokens": 8,
        "output_tokens": 388,
        "reasoning_tokens": 2193,
        "total_tokens": 2589,
    }


def test_gemini_json_array() -> None:
    assert by_id("gemini-json-array/llm-gemini-prompt.json").text == "Scoop"
    # enum-encoding=int: finishReason is the number 1, kept as the JSON says.
    assert by_id("gemini-json-array/langchaingo-streaming-nonascii.json").finish_reason == "1"
    exp = by_id("gemini-json-array/llm-gemini-thought-and-function-call.json")
    assert exp.tool_calls == [("", "pelican_name_generator", {})]
    assert exp.reasoning.startswith("**Generating Pelican Names**")


# ------------------------------------------------------------------ ollama


def test_ollama_chat_and_generate() -> None:
    chat = by_id("ollama/langchaingo-chat-stream.ndjson")
    generate = by_id("ollama/langchaingo-generate-stream.ndjson")
    assert chat.text == generate.text == "Okay, here we go!\n\n1, 2, 3, 4, 5\n"
    assert generate.usage == {"input_tokens": 16, "output_tokens": 22}
    assert json.loads(by_id("ollama/langchaingo-chat-format-json.ndjson").text) == {"answer": "600"}


# -------------------------------------------------- parser and error paths


def test_sse_parser_framing() -> None:
    body = b": comment\r\nevent: a\rdata: 1\ndata:2\r\n\r\ndata\n\nid: 7\nretry: 5\n\ndata: tail"
    events = parse_sse(body)
    assert [(e.event, e.data) for e in events] == [("a", "1\n2"), ("message", "")]
    # Unterminated trailing event is discarded, per the spec.
    assert all(e.data != "tail" for e in events)


@pytest.mark.parametrize(
    ("fmt", "body", "message"),
    [
        (
            "openai-chat",
            b'event: error\ndata: {"error":{"message":"rate limited"}}\n\n',
            "rate limited",
        ),
        (
            "openai-chat",
            b'data: {"error":{"message":"upstream"},"choices":[]}\n\ndata: [DONE]\n\n',
            "upstream",
        ),
        (
            "openai-responses",
            b'data: {"type":"error","code":"x","message":"boom"}\n\n'
            b'data: {"type":"response.failed","response":{"status":"failed",'
            b'"error":{"message":"boom"},"usage":null}}\n\n',
            "boom",
        ),
        (
            "anthropic",
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Overloaded"}}\n\n',
            "Overloaded",
        ),
        ("ollama", b'{"error":"model not found"}\n', "model not found"),
    ],
)
def test_in_stream_errors(fmt: str, body: bytes, message: str) -> None:
    assert parse_body(fmt, body).error == message


# ------------------------------------- citations, provider-run tools, cache usage


def test_openrouter_url_citations_have_no_span() -> None:
    exp = by_id("openai-chat/openrouter-annotations-comments-emoji.sse")
    # Five url_citation annotations, each with start_index = end_index = 0 ("not located").
    assert [(c.kind, c.url, c.title, c.start, c.end) for c in exp.citations] == [
        (
            "url",
            "https://github.com/pydantic/pydantic-ai",
            "AI Agent Framework, the Pydantic way - GitHub",
            None,
            None,
        ),
        ("url", "https://pydantic.dev/pydantic-ai", None, None, None),  # title ""
        (
            "url",
            "https://github.com/pydantic/pydantic-ai/releases/tag/v2.0.0",
            "v2.0.0 (2026-06-23)",
            None,
            None,
        ),
        (
            "url",
            "https://pydantic.dev/docs/ai/overview/",
            "Pydantic AI | Pydantic Docs",
            None,
            None,
        ),
        (
            "url",
            "https://github.com/pydantic/pydantic-ai/tree/refs/tags/v1.44.0",
            "GitHub - pydantic/pydantic-ai at refs/tags/v1.44.0 · GitHub",
            None,
            None,
        ),
    ]
    assert exp.tool_activities == []  # OpenRouter reports its search only as a usage count
    assert exp.cache_usage == {"cached_input_tokens": 0, "cache_write_tokens": 0}


def test_perplexity_numbered_sources() -> None:
    exp = by_id("openai-chat/perplexity-crlf-no-done.sse")
    assert [(c.number, c.url.split("/")[2] if c.url else None) for c in exp.citations] == [
        (1, "en.wikipedia.org"),
        (2, "www.statista.com"),
        (3, "science.howstuffworks.com"),
        (4, "www.britannica.com"),
        (5, "www.sciencefocus.com"),
    ]
    # The text cites [2][4]: Statista and Britannica.
    assert exp.text.endswith("[2][4].")
    assert exp.citations[1].title == "Largest countries in the world - Statista"
    assert exp.citations[3].title == (
        "List of the world's largest countries and dependencies by area"
    )
    assert all(c.start is None for c in exp.citations)
    assert exp.cache_usage == {}


def test_responses_web_search_call_is_an_activity() -> None:
    exp = by_id("openai-responses/pydantic-web-search-annotations.sse")
    ws = "ws_00a60507bf41223d0068c9d30021d081a0962d80d50c12e317"
    assert exp.tool_activities == [
        (ws, "web_search", "started", None, None),
        (
            ws,
            "web_search",
            "finished",
            "weather: San Francisco, CA",
            {"query": "weather: San Francisco, CA"},
        ),
    ]
    # Despite the recording's name, its output_text parts carry "annotations": [].
    assert exp.citations == []
    assert exp.cache_usage == {"cached_input_tokens": 8320}


def test_anthropic_code_execution_is_an_activity() -> None:
    exp = by_id("anthropic/pydantic-code-execution-emoji.sse")
    tool = "srvtoolu_01MwXaweAHve88x6s3Fc8x6Q"
    command = {"command": 'echo "65465-6544 * 65464-6+1.02255" | bc -l'}
    assert exp.tool_activities == [
        (tool, "code_execution", "started", None, command),
        (tool, "code_execution", "finished", "exit code 0", command),
    ]
    assert exp.citations == []
    assert exp.cache_usage == {"cached_input_tokens": 0, "cache_write_tokens": 0}


def test_gemini_grounding_supports_become_character_spans() -> None:
    exp = by_id("gemini/pydantic-web-search-grounding.sse")
    assert exp.tool_activities == [
        (
            "web_search_0",
            "web_search",
            "finished",
            "weather in San Francisco today",
            {"query": "weather in San Francisco today"},
        )
    ]
    # 8 supports naming 9 chunks in all (the 7th names chunks 4 and 1); every chunk is named.
    assert [(c.number, c.start, c.end) for c in exp.citations] == [
        (1, 235, 371),  # bytes 235-375: four 2-byte degree signs in the segment
        (2, 372, 439),
        (1, 440, 494),
        (3, 496, 612),
        (4, 613, 666),
        (3, 667, 747),
        (5, 749, 875),
        (2, 749, 875),
        (1, 876, 926),
    ]
    assert exp.text[235:371].startswith("As of Tuesday afternoon")
    assert exp.text[235:371].endswith("approximately 68%.")
    assert exp.citations[1].title == "timeanddate.com"


def test_gemini_usage_keys_keep_their_last_value() -> None:
    chunks = [
        {
            "candidates": [{"content": {"parts": [{"text": "a"}]}}],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 2,
                "totalTokenCount": 6,
            },
        },
        {
            "candidates": [{"content": {"parts": []}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 4,
                "totalTokenCount": 9,
                "cachedContentTokenCount": 3,
            },
        },
    ]
    exp = parse_body("gemini-json-array", json.dumps(chunks).encode())
    assert exp.usage == {"input_tokens": 4, "output_tokens": 2, "total_tokens": 9}
    assert exp.cache_usage == {"cached_input_tokens": 3}


def test_anthropic_input_includes_cache_reads_and_writes() -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "usage": {
                    "input_tokens": 3,
                    "cache_read_input_tokens": 50,
                    "cache_creation_input_tokens": 7,
                    "output_tokens": 1,
                }
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "pause_turn"},
            "usage": {"output_tokens": 9},
        },
    ]
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    exp = parse_body("anthropic", body)
    assert exp.usage == {"input_tokens": 60, "output_tokens": 9}
    assert exp.cache_usage == {"cached_input_tokens": 50, "cache_write_tokens": 7}
    assert exp.finish_reason == "pause_turn"


@pytest.mark.parametrize("path", ALL, ids=fixture_id)
def test_no_recording_pauses_or_uses_the_prompt_cache(path: Path) -> None:
    """Where the recordings stand: no pause_turn, no cache hit except one Responses call."""
    exp = expected(path)
    assert exp.finish_reason != "pause_turn"
    hits = {k: v for k, v in exp.cache_usage.items() if v}
    if fixture_id(path) == "openai-responses/pydantic-web-search-annotations.sse":
        assert hits == {"cached_input_tokens": 8320}
    else:
        assert hits == {}
