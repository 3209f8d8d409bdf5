"""Property tests: encode -> (any split into reads) -> decode gives the events back.

The one change the SSE format imposes is that CR and CRLF in data arrive as LF (WHATWG HTML
§9.2.6 joins data lines with LF). The ``delta`` payload of :class:`NamedEventsFormat` carries text
as a JSON string, so it arrives with no change at all, CR included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import httpx
import httpx_sse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sse_llm import Comment, NamedEventsFormat, ServerSentEvent, SSEDecoder, TextFormat, encode
from sse_llm._encoder import LINE_BREAK

# Text with line breaks, NUL, Korean, emoji and lookalike separators much more often than
# uniform sampling would give; surrogates cannot be encoded as UTF-8 and are excluded.
_SPECIAL = [
    "\r",
    "\n",
    "\r\n",
    "\0",
    "한",
    "국",
    "🙂",
    "👍🏽",
    "\u2028",
    "\u0085",
    "\ufeff",
    ":",
    " ",
]
_CHAR = st.characters(exclude_categories=["Cs"])
TEXT = st.lists(st.one_of(_CHAR, st.sampled_from(_SPECIAL)), max_size=40).map("".join)
# Event types and ids cannot carry CR/LF; ids cannot carry NUL.
FIELD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12)
ID = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=12)

EVENT = st.builds(
    ServerSentEvent,
    data=TEXT,
    event=st.none() | FIELD,
    id=st.none() | ID,
    retry=st.none() | st.integers(min_value=0, max_value=2**40),
)
ITEM = st.one_of(EVENT, EVENT, EVENT, st.builds(Comment, FIELD))

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec_data(text: str) -> str:
    """The data a spec client sees for ``text``: CR and CRLF become LF (§9.2.6)."""
    return LINE_BREAK.sub("\n", text)


def expected_items(items: list[ServerSentEvent | Comment]) -> list[tuple[Any, ...]]:
    """What a spec client dispatches for ``items`` sent in order on one stream."""
    out: list[tuple[Any, ...]] = []
    last_id = ""
    for item in items:
        if isinstance(item, Comment):
            out.append(("comment", item.text))
            continue
        if item.id is not None:
            last_id = item.id  # the last event ID persists across events
        out.append(("event", item.event or "message", spec_data(item.data), last_id or None))
    return out


def decoded_items(chunks: list[bytes]) -> list[tuple[Any, ...]]:
    decoder = SSEDecoder()
    out: list[tuple[Any, ...]] = []
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if isinstance(item, Comment):
                out.append(("comment", item.text))
            else:
                out.append(("event", item.event, item.data, item.id))
    decoder.close()
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def httpx_sse_items(chunks: list[bytes]) -> list[tuple[Any, ...]]:
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        stream=_Chunks([c for c in chunks if c]),
    )
    return [
        ("event", e.event, e.data, e.id or None) for e in httpx_sse.EventSource(response).iter_sse()
    ]


@SETTINGS
@given(event=EVENT)
@example(event=ServerSentEvent("a\r\nb\rc\n\r\n", event=" e", id=" 1", retry=0))
@example(event=ServerSentEvent("\ufeff한🙂\0\u2028\u0085", event="", id=""))
def test_single_event_round_trips_with_only_cr_to_lf_change(event: ServerSentEvent) -> None:
    assert decoded_items([encode(event)]) == expected_items([event])


@SETTINGS
@given(event=EVENT, data=st.data())
def test_any_split_of_one_event_decodes_the_same(
    event: ServerSentEvent, data: st.DataObject
) -> None:
    wire = encode(event)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    assert decoded_items(split(wire, cuts)) == expected_items([event])


@SETTINGS
@given(event=EVENT)
@example(event=ServerSentEvent("\r\n\r한\r\n🙂\r"))
def test_one_byte_per_read_decodes_the_same(event: ServerSentEvent) -> None:
    wire = encode(event)
    assert decoded_items([wire[i : i + 1] for i in range(len(wire))]) == expected_items([event])


@SETTINGS
@given(items=st.lists(ITEM, min_size=1, max_size=6), data=st.data())
def test_concatenated_events_and_comments_under_any_split(
    items: list[ServerSentEvent | Comment], data: st.DataObject
) -> None:
    wire = b"".join(encode(item) for item in items)
    expected = expected_items(items)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=20))
    assert decoded_items(split(wire, cuts)) == expected
    assert decoded_items([wire[i : i + 1] for i in range(len(wire))]) == expected


def test_splits_between_cr_and_lf_and_inside_characters() -> None:
    # The exhaustive version of the nastiest spots, independent of what hypothesis draws.
    items: list[ServerSentEvent | Comment] = [
        ServerSentEvent("a\r\nb\r", event="e", id="1"),
        Comment("하트"),
        ServerSentEvent("\r\n\r\n🙂한\r"),
    ]
    wire = b"".join(encode(i) for i in items)
    expected = expected_items(items)
    for a in range(len(wire) + 1):
        for b in range(a, len(wire) + 1):
            assert decoded_items([wire[:a], wire[a:b], wire[b:]]) == expected


@SETTINGS
@given(items=st.lists(EVENT, min_size=1, max_size=5), data=st.data())
def test_httpx_sse_decodes_our_output_to_the_same_events(
    items: list[ServerSentEvent], data: st.DataObject
) -> None:
    wire = b"".join(encode(item) for item in items)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    assert httpx_sse_items(split(wire, cuts)) == expected_items(list(items))


@SETTINGS
@given(tokens=st.lists(TEXT, max_size=8), data=st.data())
def test_events_format_delta_reassembles_exact_text_including_cr(
    tokens: list[str], data: st.DataObject
) -> None:
    writer = NamedEventsFormat().writer()
    wire = b"".join(unit for t in tokens for unit in writer.text(t))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    decoder = SSEDecoder()
    texts: list[str] = []
    for chunk in split(wire, cuts):
        for item in decoder.feed(chunk):
            assert isinstance(item, ServerSentEvent)
            assert item.event == "delta"
            texts.append(json.loads(item.data)["text"])
    assert texts == tokens  # no change at all: CR, CRLF, NUL, U+2028 all exact
    assert "".join(texts) == "".join(tokens)


def test_events_format_delta_keeps_cr_under_every_two_way_split() -> None:
    tokens = ["a\r", "\nb", "\r\n", "\0\u2028", "한🙂\r"]
    writer = NamedEventsFormat().writer()
    wire = b"".join(unit for t in tokens for unit in writer.text(t))
    for cut in range(len(wire) + 1):
        decoder = SSEDecoder()
        items = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])
        assert [json.loads(i.data)["text"] for i in items if isinstance(i, ServerSentEvent)] == (
            tokens
        )


@SETTINGS
@given(tokens=st.lists(TEXT, max_size=8))
def test_events_format_delta_reassembles_in_httpx_sse(tokens: list[str]) -> None:
    writer = NamedEventsFormat().writer()
    wire = b"".join(unit for t in tokens for unit in writer.text(t))
    events = httpx_sse.EventSource(
        httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            stream=_Chunks([wire[i : i + 1] for i in range(len(wire))]),
        )
    ).iter_sse()
    assert "".join(json.loads(e.data)["text"] for e in events) == "".join(tokens)


@SETTINGS
@given(tokens=st.lists(TEXT, max_size=8))
@example(tokens=["\r", "\n"])  # a tokenizer may split a CRLF between two tokens
@example(tokens=["a\r", "\nb\r", "\r\n"])
def test_text_format_changes_only_cr_and_crlf_to_lf(tokens: list[str]) -> None:
    # TextFormat's documented promise: the one change to the answer is CR/CRLF -> LF, so the
    # joined event data is the whole answer with its line breaks normalised, even when a
    # tokenizer splits a CRLF between two tokens.
    writer = TextFormat().writer()
    wire = b"".join(unit for t in tokens if t for unit in writer.text(t))
    decoder = SSEDecoder()
    texts = [item.data for item in decoder.feed(wire) if isinstance(item, ServerSentEvent)]
    assert "".join(texts) == spec_data("".join(tokens))
