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
