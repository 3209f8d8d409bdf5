"""Encoder golden cases (tests/golden/encoder.json) and interop with httpx-sse 0.4.3.

Every case is checked three ways: the exact bytes, what our spec decoder dispatches from
them, and what httpx-sse (a widely used independent client) dispatches from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import pytest

from sse_llm import Comment, InvalidEventError, ServerSentEvent, SSEDecoder, encode
from sse_llm._encoder import encode_comment, encode_data

GOLDEN = Path(__file__).parent / "golden"
ENCODER_CASES: list[dict[str, Any]] = json.loads((GOLDEN / "encoder.json").read_text("utf-8"))[
    "cases"
]
INVALID: dict[str, Any] = json.loads((GOLDEN / "invalid_events.json").read_text("utf-8"))


def _build(case: dict[str, Any]) -> ServerSentEvent | Comment:
    if "comment" in case:
        return Comment(case["comment"])
    return ServerSentEvent(**case["event"])


def _decode(data: bytes) -> tuple[list[dict[str, Any]], list[str], SSEDecoder]:
    decoder = SSEDecoder()
    items = decoder.feed(data)
    items += decoder.close()
    events = [
        {"event": i.event, "data": i.data, "id": i.id}
        for i in items
        if isinstance(i, ServerSentEvent)
    ]
    comments = [i.text for i in items if isinstance(i, Comment)]
    return events, comments, decoder


class _Chunks(httpx.SyncByteStream):
    """A response body delivered in the given reads, as a network would."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def httpx_sse_events(chunks: list[bytes]) -> list[httpx_sse.ServerSentEvent]:
    """What httpx-sse's EventSource yields for a response body arriving in ``chunks``."""
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        stream=_Chunks(chunks),
    )
    return list(httpx_sse.EventSource(response).iter_sse())


@pytest.mark.parametrize("case", ENCODER_CASES, ids=[c["name"] for c in ENCODER_CASES])
def test_golden_encoding_is_exact(case: dict[str, Any]) -> None:
    assert encode(_build(case)) == case["expected"].encode("utf-8")


@pytest.mark.parametrize("case", ENCODER_CASES, ids=[c["name"] for c in ENCODER_CASES])
def test_golden_bytes_decode_per_spec(case: dict[str, Any]) -> None:
    events, comments, decoder = _decode(case["expected"].encode("utf-8"))
    assert events == case["events"]
    assert comments == case.get("comments", [])
    assert decoder.retry == case.get("retry")


@pytest.mark.parametrize("case", ENCODER_CASES, ids=[c["name"] for c in ENCODER_CASES])
def test_golden_bytes_decode_identically_in_httpx_sse(case: dict[str, Any]) -> None:
    events = httpx_sse_events([encode(_build(case))])
    assert [{"event": e.event, "data": e.data, "id": e.id or None} for e in events] == case[
        "events"
    ]


@pytest.mark.parametrize(
    "case",
    [c for c in ENCODER_CASES if "event" in c and set(c["event"]) <= {"data", "event"}],
    ids=lambda c: c["name"],
)
def test_fast_path_encode_data_matches_encode(case: dict[str, Any]) -> None:
    fields = case["event"]
    assert encode_data(fields.get("data", ""), fields.get("event")) == encode(
        ServerSentEvent(**fields)
    )


@pytest.mark.parametrize("text", ["", "keep-alive", "하트비트"])
def test_fast_path_encode_comment_matches_encode(text: str) -> None:
    assert encode_comment(text) == encode(Comment(text))


def test_empty_data_event_is_dispatched_with_empty_data() -> None:
    # A client discards an event whose data buffer is empty (§9.2.6 step 2); the encoder
    # always writes a data line, so ServerSentEvent(data="") really arrives.
    wire = encode(ServerSentEvent(data="", event="ping"))
    assert wire == b"event: ping\ndata: \n\n"
    events, _, _ = _decode(wire)
    assert events == [{"event": "ping", "data": "", "id": None}]


def test_comment_is_a_single_line_without_blank_line() -> None:
    wire = encode(Comment("keep-alive"))
    assert wire.count(b"\n") == 1
    assert not wire.endswith(b"\n\n")


def test_output_uses_lf_only() -> None:
    wire = encode(ServerSentEvent("a\r\nb\rc", event="e", id="1", retry=5))
    assert b"\r" not in wire


@pytest.mark.parametrize("case", INVALID["events"], ids=[c["name"] for c in INVALID["events"]])
def test_invalid_event_fields_raise(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        ServerSentEvent(**case["kwargs"])
    # InvalidEventError is also a ValueError, so generic validation handlers catch it.
    with pytest.raises(ValueError):
        ServerSentEvent(**case["kwargs"])


@pytest.mark.parametrize("case", INVALID["comments"], ids=[c["name"] for c in INVALID["comments"]])
def test_comment_the_wire_cannot_carry_raises(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        Comment(case["text"])
    with pytest.raises(ValueError):
        Comment(case["text"])


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("id", lambda: ServerSentEvent("x", id=42)),
        ("event", lambda: ServerSentEvent("x", event=5)),
        ("event", lambda: ServerSentEvent("x", event=b"done")),
        ("comment", lambda: Comment(b"ping")),
    ],
)
def test_a_field_that_is_not_text_is_named_in_the_error(field: str, make: Any) -> None:
    # Found in review: an int id (common when coming from sse-starlette, which str()s it)
    # raised "argument of type 'int' is not iterable", naming no field.
    with pytest.raises(InvalidEventError, match=f"^SSE {field} must be str, not "):
        make()


def test_fields_that_are_allowed() -> None:
    # NUL is only forbidden in ids (clients ignore such ids); data may carry anything.
    ServerSentEvent(data="a\0b\r\n", event="a\0b", id="", retry=0)
    Comment("a\0b")


def test_events_are_frozen() -> None:
    event = ServerSentEvent("x")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]


# -- the heartbeat design point, shown with httpx-sse ----------------------------------------


def test_heartbeat_comments_after_an_id_make_no_phantom_event_in_httpx_sse() -> None:
    stream = (
        encode(ServerSentEvent("first", id="1"))
        + encode(Comment(""))
        + encode(Comment("keep-alive"))
        + encode(ServerSentEvent("second"))
        + encode(Comment(""))
    )
    events = httpx_sse_events([stream])
    assert [(e.event, e.data, e.id) for e in events] == [
        ("message", "first", "1"),
        ("message", "second", "1"),
    ]


def test_comment_followed_by_blank_line_would_make_a_phantom_event_in_httpx_sse() -> None:
    # The counter-example: what sse-starlette-style ": ping\r\n\r\n" heartbeats do. Once an id
    # has been seen, httpx-sse 0.4.3 dispatches every blank line as an (empty) event. Our
    # comments have no blank line, which is why the test above sees no phantom event.
    stream = encode(ServerSentEvent("first", id="1")) + b": ping\n\n"
    events = httpx_sse_events([stream])
    assert [(e.event, e.data, e.id) for e in events] == [
        ("message", "first", "1"),
        ("message", "", "1"),  # the phantom
    ]
    # A spec decoder does not dispatch it (empty data buffer, §9.2.6).
    spec_events, _, _ = _decode(stream)
    assert spec_events == [{"event": "message", "data": "first", "id": "1"}]


@pytest.mark.parametrize("value", ["data: hi", b"data: hi", {"data": "hi"}, None])
def test_encode_refuses_what_is_not_an_event_or_a_comment(value: Any) -> None:
    # Before: a bare AssertionError (an AttributeError under python -O).
    with pytest.raises(TypeError, match="encode\\(\\) takes a ServerSentEvent or a Comment"):
        encode(value)


def test_a_comment_subclass_is_encoded_as_a_comment() -> None:
    class Note(Comment):
        pass

    assert encode(Note("keep")) == b": keep\n"
