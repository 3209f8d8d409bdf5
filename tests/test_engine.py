"""The stream engine with plain function calls: no event loop, no I/O.

Every kind of item a source may yield (text, each normalised event, provider chunks, ready-made
events), every way a stream ends, event ids, and how much text the result keeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sse_starlette import ServerSentEvent as StarletteEvent

from sse_llm import (
    Comment,
    ErrorEvent,
    Finish,
    InvalidEventError,
    NamedEventsFormat,
    ProviderError,
    ReasoningDelta,
    ServerSentEvent,
    SSEDecoder,
    StreamEngine,
    TextDelta,
    TextFormat,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sse_llm._model import Citation, ToolActivity
from sse_llm.formats import AISDKFormat, OpenAIChatFormat, TypedJSONFormat
from sse_llm.html import HTMLAppendFormat, MarkdownFormat
from tests.support.fixtures import all_fixture_files, expected, fixture_id, parse_sse


def events(wire: bytes) -> list[tuple[str, Any]]:
    """(event type, data parsed as JSON when it is JSON) for every dispatched event."""
    out: list[tuple[str, Any]] = []
    for item in SSEDecoder().feed(wire):
        if isinstance(item, ServerSentEvent):
            try:
                data = json.loads(item.data)
            except ValueError:
                data = item.data
            out.append((item.event or "message", data))
    return out


def run(engine: StreamEngine, items: list[Any], reason: Any = "completed") -> bytes:
    return engine.start() + b"".join(engine.feed(item) for item in items) + engine.close(reason)


# -- text -------------------------------------------------------------------------------------


def test_text_goes_out_as_it_is_fed_and_ends_with_done() -> None:
    engine = StreamEngine(TextFormat())
    assert engine.start() == b""
    assert engine.feed("Hello") == b"data: Hello\n\n"
    assert (
        engine.feed(" 세계\n🙂") == b"data:  \xec\x84\xb8\xea\xb3\x84\ndata: \xf0\x9f\x99\x82\n\n"
    )
    assert engine.close() == b'event: done\ndata: {"finish_reason":"stop"}\n\n'
    assert engine.result.reason == "completed"
    assert engine.result.text == "Hello 세계\n🙂"
    assert engine.result.finish == Finish("stop")


def test_empty_text_is_skipped_and_a_str_subclass_is_plain_text() -> None:
    class Markup(str):
        pass

    engine = StreamEngine()
    assert engine.feed("") == b""
    assert engine.feed(TextDelta("")) == b""
    assert events(engine.feed(Markup("<b>"))) == [("delta", {"text": "<b>"})]
    assert engine.close() and engine.result.text == "<b>"


def test_text_deltas_and_plain_text_make_the_same_events() -> None:
    a, b = StreamEngine(), StreamEngine()
    assert run(a, ["x", "y"]) == run(b, [TextDelta("x"), TextDelta("y")])
    assert a.result.text == b.result.text == "xy"


# -- every normalised event ---------------------------------------------------------------------


def test_every_normalised_event_is_kept_in_the_result_and_written() -> None:
    call = ToolCall(0, "call_1", "weather", '{"city":"Paris"}')
    citation = Citation("url", url="https://example.com/a", title="A")
    activity = ToolActivity("ws_1", "web_search", "started", summary="paris weather")
    usage = Usage(input_tokens=9, output_tokens=3)
    engine = StreamEngine(NamedEventsFormat())
    wire = run(
        engine,
        [
            ReasoningDelta("hmm"),
            activity,
            citation,
            ToolCallDelta(0, "call_1", "weather", '{"city":'),
            ToolCallDelta(0, "", "", '"Paris"}'),
            call,
            "Sunny.",
            usage,
            Finish("tool_calls", "tool_calls"),
        ],
    )
    assert events(wire) == [
        ("reasoning", {"text": "hmm"}),
        (
            "tool_activity",
            {"id": "ws_1", "name": "web_search", "status": "started", "summary": "paris weather"},
        ),
        (
            "source",
            {
                "kind": "url",
                "url": "https://example.com/a",
                "title": "A",
                "document_id": None,
                "container_id": None,
                "cited_text": None,
                "start": None,
                "end": None,
                "index": None,
            },
        ),
        ("tool_call", {"index": 0, "id": "call_1", "name": "weather", "arguments": call.arguments}),
        ("delta", {"text": "Sunny."}),
        (
            "done",
            {
                "finish_reason": "tool_calls",
                "raw_finish_reason": "tool_calls",
                "usage": {"input_tokens": 9, "output_tokens": 3},
            },
        ),
    ]
    result = engine.result
    assert (result.text, result.reasoning) == ("Sunny.", "hmm")
    assert result.tool_calls == [call]
    assert result.citations == [citation]
    assert result.tool_activity == [activity]
    assert (result.usage, result.finish) == (usage, Finish("tool_calls", "tool_calls"))


def test_tool_call_fragments_reach_formats_that_stream_them() -> None:
    engine = StreamEngine(OpenAIChatFormat("m"))
    engine.start()
    first = engine.feed(ToolCallDelta(3, "call_9", "f", ""))
    more = engine.feed(ToolCallDelta(3, "", "", '{"a":1}'))
    [chunk] = [json.loads(e.data) for e in SSEDecoder().feed(first)]
    assert chunk["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert b'"arguments":"{\\"a\\":1}"' in more


def test_an_error_event_is_the_last_and_makes_the_reason_error() -> None:
    engine = StreamEngine()
    engine.feed("partial")
    assert events(engine.feed(ErrorEvent("Overloaded", "overloaded_error"))) == [
        ("error", {"message": "Overloaded", "code": "overloaded_error"})
    ]
    assert engine.ended
    assert engine.close() == b""  # no second error, no done
    assert engine.result.reason == "error"
    assert engine.result.error == ErrorEvent("Overloaded", "overloaded_error")
    assert engine.result.text == "partial"


# -- provider chunks ----------------------------------------------------------------------------


def chat_chunk(**delta: Any) -> dict[str, Any]:
    finish = delta.pop("finish_reason", None)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_a_provider_chunk_is_recognised_and_normalised() -> None:
    engine = StreamEngine()
    wire = run(
        engine,
        [chat_chunk(role="assistant", content="Hi"), chat_chunk(content=" there"),
         chat_chunk(finish_reason="length")],
    )  # fmt: skip
    assert [e for e in events(wire) if e[0] == "delta"] == [
        ("delta", {"text": "Hi"}),
        ("delta", {"text": " there"}),
    ]
    assert engine.result.finish == Finish("length", "length")
    assert engine.result.text == "Hi there"


def test_anthropic_events_are_normalised_too() -> None:
    engine = StreamEngine(TextFormat())
    items = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Yo"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    wire = run(engine, items)
    assert events(wire) == [("message", "Yo"), ("done", {"finish_reason": "stop"})]
    assert engine.result.usage is not None and engine.result.usage.output_tokens == 2


def test_several_choices_are_refused_unless_one_is_chosen() -> None:
    second = chat_chunk(content="B")
    second["choices"][0]["index"] = 1
    refused = StreamEngine()
    wire = run(refused, [chat_chunk(content="A"), second])
    assert events(wire)[-1][0] == "error"
    assert events(wire)[-1][1]["code"] == "multiple_choices"
    chosen = StreamEngine(choice=1)
    run(chosen, [chat_chunk(content="A"), second])
    assert chosen.result.text == "B"


def test_an_item_it_cannot_stream_raises_type_error() -> None:
    engine = StreamEngine()
    for item in (42, b"bytes", object(), {"choices": "?"}):
        with pytest.raises(TypeError, match="cannot stream"):
            engine.feed(item)


def test_a_source_error_ends_with_a_safe_message_or_the_providers() -> None:
    internal = StreamEngine()
    internal.feed("a")
    wire = internal.close("completed", RuntimeError("secret=hunter2"))
    assert b"hunter2" not in wire
    assert events(wire) == [
        (
            "error",
            {
                "message": "The answer could not be completed because of an internal error.",
                "code": "internal_error",
            },
        )
    ]
    assert internal.result.reason == "error" and internal.result.text == "a"
    provider = StreamEngine()
    wire = provider.close("completed", ProviderError("Rate limited", "rate_limit_exceeded"))
    assert events(wire) == [("error", {"message": "Rate limited", "code": "rate_limit_exceeded"})]


# -- ready-made events ------------------------------------------------------------------------


def test_ready_made_events_and_comments_are_sent_as_encoded() -> None:
    engine = StreamEngine()
    assert engine.feed(ServerSentEvent("x\ny", event="custom", id="7")) == (
        b"event: custom\nid: 7\ndata: x\ndata: y\n\n"
    )
    assert engine.feed(Comment("ping")) == b": ping\n"
    assert engine.feed({"data": "d", "event": "e"}) == b"event: e\ndata: d\n\n"
    assert engine.feed(StarletteEvent(data="s", id="1")) == b"id: 1\ndata: s\n\n"
    assert engine.feed({"retry": 500}) == b"retry: 500\n"
    assert engine.feed({"comment": "a\nb"}) == b": a\n: b\n"


def test_fastapi_events_are_sent_as_fastapi_sends_them() -> None:
    # fastapi.sse.ServerSentEvent: data always JSON (a string with its quotes), raw_data as
    # it is, NaN as null (tests/test_fastapi_adapter.py compares with FastAPI's own output).
    # Imported here: the engine's other tests need no FastAPI (fastapi.sse: 0.135 and later).
    from fastapi.sse import ServerSentEvent as FastAPIEvent

    engine = StreamEngine()
    assert engine.feed(FastAPIEvent(data="hi", event="e", id="1")) == (
        b'event: e\nid: 1\ndata: "hi"\n\n'
    )
    assert engine.feed(FastAPIEvent(raw_data="a\nb")) == b"data: a\ndata: b\n\n"
    assert engine.feed(FastAPIEvent(data={"x": [float("nan")]})) == b'data: {"x": [null]}\n\n'
    assert engine.feed(FastAPIEvent(comment="c", retry=10)) == b": c\nretry: 10\n"

    class Token(FastAPIEvent):  # an app's own kind of event, as FastAPI allows
        event: str | None = "token"

    assert engine.feed(Token(data="x")) == b'event: token\ndata: "x"\n\n'


@pytest.mark.parametrize(
    "item", [{"id": "5"}, {"event": "ping"}, StarletteEvent(id="5"), StarletteEvent(event="ping")]
)
def test_an_event_without_data_dispatches_nothing_as_under_sse_starlette(item: Any) -> None:
    # WHATWG HTML §9.2.6: an event whose data buffer is empty is not dispatched; sse-starlette
    # writes no data line when data is None. An id alone still sets the last event id.
    wire = StreamEngine().feed(item)
    decoder = SSEDecoder()
    assert [i for i in decoder.feed(wire) if isinstance(i, ServerSentEvent)] == []
    if "5" in wire.decode():
        assert decoder.last_event_id == "5"


def test_a_ready_made_event_the_wire_cannot_carry_raises() -> None:
    with pytest.raises(InvalidEventError):
        StreamEngine().feed({"data": "x", "id": "a\nb"})
    with pytest.raises(InvalidEventError):
        StreamEngine().feed({"event": "a\rb"})


# -- how streams end ----------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["disconnected", "timeout", "cancelled", "abandoned"])
def test_a_stream_whose_client_is_gone_writes_nothing_more(reason: Any) -> None:
    engine = StreamEngine(TypedJSONFormat())
    engine.feed("half")
    assert engine.close(reason) == b""
    assert (engine.result.reason, engine.result.text) == (reason, "half")
    assert engine.result.finish is None


def test_shutdown_ends_with_an_error_then_the_formats_end() -> None:
    engine = StreamEngine(TypedJSONFormat())
    engine.feed("half")
    assert events(engine.close("shutdown")) == [
        ("message", {"type": "error", "message": "The server is restarting. Please try again.",
                     "code": "shutdown"}),
        ("message", "[DONE]"),
    ]  # fmt: skip
    assert engine.result.reason == "shutdown"


def test_close_twice_writes_nothing_the_second_time() -> None:
    engine = StreamEngine()
    assert engine.close()
    assert engine.close() == b""
    assert engine.result.reason == "completed"


def test_pending_tool_calls_are_kept_when_cut_short_but_not_written() -> None:
    engine = StreamEngine()
    engine.feed(
        chat_chunk(
            tool_calls=[{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]
        )
    )
    assert engine.close("disconnected") == b""
    assert [c.name for c in engine.result.tool_calls] == ["f"]


# -- event ids ------------------------------------------------------------------------------


def test_event_ids_number_every_event_in_order() -> None:
    engine = StreamEngine(AISDKFormat(), event_ids="s1")
    wire = run(engine, ["a", "b", ReasoningDelta("r")])
    ids = [e.id for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent)]
    assert ids == [f"s1-{n}" for n in range(1, len(ids) + 1)]
    assert engine.seq == len(ids)


def test_a_comment_counts_but_gets_no_id_line() -> None:
    engine = StreamEngine(event_ids="s")
    assert engine.feed(Comment("x")) == b": x\n"
    assert engine.feed("t") == b'event: delta\ndata: {"text":"t"}\nid: s-2\n\n'
    # A ready-made event's own id is overridden: the last id field of an event wins.
    wire = engine.feed(ServerSentEvent("d", id="mine"))
    [event] = SSEDecoder().feed(wire)
    assert isinstance(event, ServerSentEvent) and event.id == "s-3"


def test_event_ids_need_a_clean_prefix_and_an_event_stream() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        StreamEngine(event_ids="a\nb")

    class NDJSON:
        media_type = "application/x-ndjson"
        headers: Mapping[str, str] = {}
        keepalive = b"\n"

        def writer(self) -> Any:
            return TextFormat().writer()

    with pytest.raises(ValueError, match="text/event-stream"):
        StreamEngine(NDJSON(), event_ids="s")


# -- how much text the result keeps -----------------------------------------------------------


def test_keep_text_false_keeps_none_and_an_int_keeps_the_start() -> None:
    tokens = ["abc", "def", "ghi"]
    none = StreamEngine(keep_text=False)
    some = StreamEngine(keep_text=5)
    assert run(none, [*tokens, ReasoningDelta("why")]) == run(
        some, [*tokens, ReasoningDelta("why")]
    )
    assert (none.result.text, none.result.reasoning, none.result.text_truncated) == ("", "", True)
    assert (some.result.text, some.result.text_truncated) == ("abcde", True)
    everything = StreamEngine()
    run(everything, tokens * 100)
    assert everything.result.text == "abcdefghi" * 100
    assert not everything.result.text_truncated


# -- formats that hold text back ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("fmt", ["append", "markdown"])
def test_held_text_goes_out_through_flush_once_due(fmt: str) -> None:
    clock = Clock()
    fragment = (
        HTMLAppendFormat(interval=0.1, clock=clock)
        if fmt == "append"
        else MarkdownFormat("m", interval=0.1, clock=clock)
    )
    engine = StreamEngine(fragment)
    assert engine.flush_interval == 0.1
    engine.start()
    assert engine.feed("Hello")
    assert engine.feed(" world") == b""
    clock.now += 0.2
    assert b"world" in engine.flush()
    assert engine.flush() == b""
    assert b"done" in engine.close()
    assert StreamEngine(TextFormat()).flush_interval is None


# -- text UTF-8 cannot carry ----------------------------------------------------------------


def test_a_surrogate_pair_split_between_tokens_is_joined() -> None:
    # A provider that cuts an emoji's UTF-16 pair between two chunks; the half that comes
    # first is held until its other half arrives, so nothing is lost or garbled.
    engine = StreamEngine(TextFormat())
    wire = engine.feed("before ") + engine.feed("\ud83d") + engine.feed("\ude00 after")
    wire += engine.close()
    assert [e[1] for e in events(wire) if e[0] == "message"] == ["before ", "😀 after"]
    assert engine.result.text == "before 😀 after"
    assert engine.result.reason == "completed"


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    engine = StreamEngine()
    wire = engine.feed("x\udc00y") + engine.feed("end\ud83d") + engine.close()
    deltas = [data["text"] for name, data in events(wire) if name == "delta"]
    assert "".join(deltas) == "x\ufffdyend\ufffd"
    assert engine.result.text == "x\ufffdyend\ufffd"
    assert engine.result.reason == "completed"


_EVERY_FORMAT = [NamedEventsFormat, TypedJSONFormat, AISDKFormat, OpenAIChatFormat]


@pytest.mark.parametrize("fmt", _EVERY_FORMAT, ids=lambda f: f.__name__)
def test_reasoning_split_inside_a_character_is_joined_like_the_answer(fmt: Any) -> None:
    # Found in review: only the answer's halves were joined; a reasoning delta ending in half
    # an emoji failed the UTF-8 encode and ended a healthy stream with an error.
    engine = StreamEngine(fmt())
    items = [ReasoningDelta("think \ud83d"), ReasoningDelta("\ude00 more"), "ok"]
    wire = run(engine, items).decode()  # strict UTF-8: the stream's own encoding
    assert "😀 more" in wire
    assert "\ufffd" not in wire
    assert engine.result.reasoning == "think 😀 more"
    assert engine.result.text == "ok"
    assert engine.result.reason == "completed"


def test_a_half_character_is_released_before_an_event_of_another_kind() -> None:
    # The half cannot be joined across another event: it goes out as U+FFFD in its place,
    # so the order on the wire is the order the source gave.
    engine = StreamEngine()
    call = ToolCall(0, "c", "f", "{}")
    wire = run(engine, [ReasoningDelta("thought\ud83d"), "answer\ud83d", call])
    assert [(name, data.get("text", data.get("name"))) for name, data in events(wire)] == [
        ("reasoning", "thought"),
        ("reasoning", "\ufffd"),
        ("delta", "answer"),
        ("delta", "\ufffd"),
        ("tool_call", "f"),
        ("done", None),
    ]
    assert engine.result.reasoning == "thought\ufffd"
    assert engine.result.text == "answer\ufffd"


def test_the_providers_error_stays_the_last_event_after_a_held_half() -> None:
    # Found in review: the held half was written at close, after the error event.
    engine = StreamEngine()
    wire = run(engine, ["a\ud83d", ErrorEvent("Overloaded", "overloaded_error")])
    assert events(wire) == [
        ("delta", {"text": "a"}),
        ("delta", {"text": "\ufffd"}),
        ("error", {"message": "Overloaded", "code": "overloaded_error"}),
    ]
    assert engine.result.text == "a\ufffd"
    assert engine.result.reason == "error"


@pytest.mark.parametrize("fmt", _EVERY_FORMAT, ids=lambda f: f.__name__)
def test_a_lone_surrogate_in_a_providers_fields_becomes_u_fffd(fmt: Any) -> None:
    engine = StreamEngine(fmt())
    call = ToolCall(0, "call_1", "note", '{"text":"\ud83d"}')
    citation = Citation("url", url="https://example.com/", title="T\udc00")
    activity = ToolActivity("ws_1", "web_search", "finished", input={"q": ["\ud83d"]}, summary="s")
    wire = run(engine, [call, citation, activity, ErrorEvent("bad \udc00", "x")])
    assert "\\ud83d" not in wire.decode("ascii", "backslashreplace")  # valid UTF-8 all through
    assert engine.result.tool_calls == [ToolCall(0, "call_1", "note", '{"text":"\ufffd"}')]
    assert engine.result.citations[0].title == "T\ufffd"
    assert engine.result.tool_activity[0].input == {"q": ["\ufffd"]}
    assert engine.result.error == ErrorEvent("bad \ufffd", "x")
    assert engine.result.reason == "error"


@pytest.mark.parametrize("fmt", _EVERY_FORMAT, ids=lambda f: f.__name__)
def test_a_lone_surrogate_in_a_provider_error_s_code_becomes_u_fffd(fmt: Any) -> None:
    # Found in review: the message was cleaned, not the code: writing the end failed and the
    # stream ended with the generic internal error instead of the provider's message.
    engine = StreamEngine(fmt())
    wire = engine.start() + engine.feed("Hello")
    wire += engine.close("completed", ProviderError("Overloaded", "busy\ud800"))
    assert "\\ud800" not in wire.decode("ascii", "backslashreplace")  # valid UTF-8 all through
    assert engine.result.reason == "error" and b"Overloaded" in wire  # not the generic error


@pytest.mark.parametrize("fmt", _EVERY_FORMAT, ids=lambda f: f.__name__)
def test_a_lone_surrogate_in_a_providers_finish_reason_becomes_u_fffd(fmt: Any) -> None:
    # Found in review: Finish was taken for an event without provider text, but raw_reason is
    # the provider's own string; its UTF-8 encode failed in close() and no end event went out.
    engine = StreamEngine(fmt())
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "\ud800x"}],
    }
    wire = run(engine, ["Hello", chunk])
    assert "\\ud800" not in wire.decode("ascii", "backslashreplace")  # valid UTF-8 all through
    assert engine.result.finish is not None
    assert engine.result.finish.raw_reason == "\ufffdx"
    assert engine.result.reason == "completed"


def test_a_lone_surrogate_in_a_dict_events_data_becomes_u_fffd() -> None:
    # Found in review: sse-starlette style {"data": token} with half an emoji failed the
    # UTF-8 encode and ended the answer with an error; a text token gets U+FFFD.
    engine = StreamEngine(TextFormat())
    items = [{"data": "ok"}, {"data": "bad \ud83d", "event": "m"}, {"comment": "\udc00"}]
    wire = run(engine, [*items, {"data": "after"}])
    assert wire.decode() == (
        "data: ok\n\nevent: m\ndata: bad \ufffd\n\n: \ufffd\ndata: after\n\n"
        'event: done\ndata: {"finish_reason":"stop"}\n\n'
    )
    assert engine.result.reason == "completed"


def test_an_event_without_a_lone_surrogate_is_passed_on_as_it_is() -> None:
    from sse_llm._engine import _whole

    activity = ToolActivity("ws_1", "web_search", "finished", input={"q": ["é", 1]})
    assert _whole(activity) is activity


def test_only_what_goes_on_the_wire_is_made_whole() -> None:
    # raw (the provider's objects as received, never sent) and values that are no dict,
    # list or tuple (a named tuple, any object a LangChain tool may hold) stay as they are.
    from collections import namedtuple

    from sse_llm._engine import _whole

    Point = namedtuple("Point", "x y")
    raw = {"title": "T\udc00", "nested": [{"x": "\ud83d"}]}
    held = Point("\ud83d", 1)
    activity = ToolActivity(
        "ws_1", "web_search", "finished", summary="s\udc00", input={"p": held}, raw=raw
    )
    whole = _whole(activity)
    assert whole.summary == "s\ufffd"
    assert whole.raw is raw
    assert whole.input is not None and whole.input["p"] is held


def test_a_finish_reason_that_is_not_normalised_fails_where_it_is_built() -> None:
    # A provider's own value there used to fail inside the format's end, after the stream
    # was marked closed: no end event at all.
    with pytest.raises(ValueError, match="raw_reason"):
        Finish("end_turn")  # type: ignore[arg-type]
    assert Finish("other", "end_turn").reason == "other"


# -- every provider's recorded chunks, with no I/O ------------------------------------------


def recorded_items(path: Path) -> list[Any]:
    """The JSON items of a recording, read with the oracle's own parser (no sse_llm)."""
    body = path.read_bytes()
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    if path.suffix == ".json":
        parsed = json.loads(body)
        return parsed if isinstance(parsed, list) else [parsed]
    return [json.loads(e.data) for e in parse_sse(body) if e.data != "[DONE]"]


@pytest.mark.parametrize("path", all_fixture_files(), ids=fixture_id)
def test_every_recorded_provider_stream_through_the_engine_alone(path: Path) -> None:
    want = expected(path)
    engine = StreamEngine()
    wire = engine.start()
    for item in recorded_items(path):
        wire += engine.feed(item)
        if engine.ended:
            break
    wire += engine.close()
    result = engine.result
    assert result.text == want.text
    assert result.reasoning == want.reasoning
    assert [(c.name, json.loads(c.arguments or "{}")) for c in result.tool_calls] == [
        (name, args) for _, name, args in want.tool_calls
    ]
    names = [name for name, _ in events(wire)]
    assert names[-1] == ("error" if want.error else "done")


def test_the_kept_text_is_the_text_as_fed_line_breaks_and_all() -> None:
    tokens = ["a\r", "\nb\r\n", "c\rd", "\n\n", "한국어", " \U0001f600", "\ud83d", "\ude00!"]
    kept = "a\r\nb\r\nc\rd\n\n한국어 \U0001f600\U0001f600!"
    for fmt in (NamedEventsFormat(), TextFormat()):
        engine = StreamEngine(fmt)
        run(engine, tokens)
        assert engine.result.text == kept
        start = StreamEngine(fmt, keep_text=7)
        run(start, tokens)
        assert (start.result.text, start.result.text_truncated) == (kept[:7], True)


def test_what_comes_after_the_end_changes_no_result() -> None:
    """The result is complete at :meth:`close`: text or reasoning fed later (a caller's
    mistake) is not kept, and raises nothing."""
    engine = StreamEngine(keep_text=True)
    run(engine, ["ab", ReasoningDelta("why")])
    engine.feed("c")
    engine.feed(TextDelta("d"))
    engine.feed(ReasoningDelta("not"))
    assert (engine.result.text, engine.result.reasoning) == ("ab", "why")
