"""Decoder golden cases (tests/golden/decoder.json), fed whole, byte by byte and by split."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sse_llm import Comment, EventTooLargeError, ServerSentEvent, SSEDecoder, encode
from sse_llm.client import aiter_events, iter_events

GOLDEN = Path(__file__).parent / "golden"
CASES: list[dict[str, Any]] = json.loads((GOLDEN / "decoder.json").read_text("utf-8"))["cases"]


def _input(case: dict[str, Any]) -> bytes:
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    data: bytes = case["input"].encode("utf-8")
    return data


def _as_dicts(items: list[ServerSentEvent | Comment]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Comment):
            out.append({"comment": item.text})
        else:
            out.append({"event": item.event, "data": item.data, "id": item.id})
    return out


def _run(chunks: list[bytes]) -> tuple[list[dict[str, Any]], SSEDecoder]:
    decoder = SSEDecoder()
    items: list[ServerSentEvent | Comment] = []
    for chunk in chunks:
        items += decoder.feed(chunk)
    items += decoder.close()
    return _as_dicts(items), decoder


def _check(case: dict[str, Any], chunks: list[bytes]) -> None:
    items, decoder = _run(chunks)
    assert items == case["expected"]
    assert decoder.last_event_id == case["last_event_id"]
    assert decoder.retry == case["retry"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_one_read(case: dict[str, Any]) -> None:
    _check(case, [_input(case)])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_one_byte_per_read(case: dict[str, Any]) -> None:
    data = _input(case)
    _check(case, [data[i : i + 1] for i in range(len(data))])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_every_two_way_split(case: dict[str, Any]) -> None:
    data = _input(case)
    for cut in range(len(data) + 1):
        _check(case, [data[:cut], data[cut:]])


def test_empty_reads_change_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    # The LF after the CR (across an empty read) is half of one CRLF, not a second line end.
    assert decoder.feed(b"\n") == []
    assert _as_dicts(decoder.feed(b"\n")) == [{"event": "message", "data": "a", "id": None}]


def test_cr_at_read_end_then_lf_is_one_line_break() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    # Had the LF ended a second (empty) line, "a" would have been dispatched alone.
    assert _as_dicts(decoder.feed(b"\n\r\n")) == [{"event": "message", "data": "a\nb", "id": None}]


def test_bom_split_across_reads_is_still_stripped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == []
    assert decoder.feed(b"\xbb") == []
    assert _as_dicts(decoder.feed(b"\xbfdata: a\n\n")) == [
        {"event": "message", "data": "a", "id": None}
    ]


def test_multibyte_character_split_across_reads() -> None:
    data = "data: 한🙂\n\n".encode()
    decoder = SSEDecoder()
    items: list[ServerSentEvent | Comment] = []
    for i in range(len(data)):
        items += decoder.feed(data[i : i + 1])
    assert _as_dicts(items) == [{"event": "message", "data": "한🙂", "id": None}]


def test_decoder_is_reusable_after_close_for_a_new_stream_state() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: half")
    decoder.close()
    # The discarded event does not leak into what comes next.
    assert _as_dicts(decoder.feed(b"data: b\n\n")) == [
        {"event": "message", "data": "b", "id": None}
    ]


def test_a_decoder_reused_after_close_reads_the_next_stream_from_its_start() -> None:
    # Found in review: the next connection's BOM was kept (its first field unknown, the event
    # lost) and an LF first was taken for the pair of the old stream's last CR.
    decoder = SSEDecoder()
    assert _as_dicts(decoder.feed(b"id: 1\ndata: a\r\n\r")) == [
        {"event": "message", "data": "a", "id": "1"}
    ]
    decoder.close()
    again = decoder.feed("\ufeffdata: b\n\ndata: c\n\n".encode())
    assert _as_dicts(again) == [
        {"event": "message", "data": "b", "id": "1"},
        {"event": "message", "data": "c", "id": "1"},
    ]
    decoder.close()
    assert _as_dicts(decoder.feed(b"\ndata: d\n\n")) == [
        {"event": "message", "data": "d", "id": "1"}
    ]


# A body of long lines with every kind of line end, multi-byte characters (so that reads cut
# them), a BOM, comments, ids and an unterminated last event.
_LONG = "한🙂 ascii \u2028 \u0085 \ufeff:" * 700  # ~20 KB, lookalike separators included
LONG_BODY = (
    "\ufeff: a comment, then long lines\r\n"
    f"data: {_LONG}\r\n"
    f"data:{_LONG[::-1]}\r"
    "id: 7\n"
    "\r\n"
    f"event: big\rdata: {_LONG}\n"
    f": {_LONG}\r"
    "\r"
    f"retry: 1500\ndata:  {_LONG}\n\n"
    f"data: {_LONG}"  # no blank line: discarded at close
).encode()


def _reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 1460])
def test_long_lines_in_small_reads_equal_one_read(size: int) -> None:
    whole, whole_decoder = _run([LONG_BODY])
    assert [item.get("event", "comment") for item in whole] == [
        "comment",
        "message",
        "comment",  # a comment line is seen at once, before the event around it is dispatched
        "big",
        "message",
    ]
    items, decoder = _run(_reads(LONG_BODY, size))
    assert items == whole
    assert (decoder.last_event_id, decoder.retry) == (whole_decoder.last_event_id, 1500)


def test_an_open_line_is_kept_as_its_reads_not_rebuilt_per_read() -> None:
    # Linear by construction: while a line is open, each read is stored once, as is; nothing
    # joins or re-scans the pieces before (the decoder used to, at every read: O(length^2)).
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ") == []
    reads = [bytes([65 + i % 26]) * 64 for i in range(2000)]
    kept: list[str] = []
    for data in reads:
        assert decoder.feed(data) == []
        kept.append(decoder._pending[-1])
    assert len(decoder._pending) == 1 + len(reads)
    # The pieces held now are the very objects stored when their read came: never rebuilt.
    assert all(a is b for a, b in zip(decoder._pending[1:], kept, strict=True))
    events = decoder.feed(b"\n\n")
    assert decoder._pending == []
    assert _as_dicts(events) == [{"event": "message", "data": b"".join(reads).decode(), "id": None}]


def test_client_iter_events_skips_comments() -> None:
    chunks = [b": hi\n", b"id: 3\nevent: e\ndata: x", b"\n\n:\n", b"data: y\n\n"]
    events = list(iter_events(chunks))
    assert [(e.event, e.data, e.id) for e in events] == [("e", "x", "3"), ("message", "y", "3")]


@pytest.mark.anyio
async def test_client_aiter_events_skips_comments() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in [b": hi\n", b"data: x\r", b"\n\r\n"]:
            yield chunk

    events = [e async for e in aiter_events(chunks())]
    assert [(e.event, e.data) for e in events] == [("message", "x")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_retry_too_long_for_int_is_ignored_and_the_stream_goes_on() -> None:
    # Found in review: int() refuses more than 4,300 digits, so a retry line of 5,000 digits
    # (from a faulty proxy, a hostile server) raised out of feed() and lost the read's events.
    huge = "1" * 5000
    zeros = "0" * 5000 + "1500"  # leading zeros do not make a value large
    body = f"data: before\n\nretry: {huge}\ndata: after\n\nretry: {zeros}\ndata: last\n\n"
    decoder = SSEDecoder()
    events = decoder.feed(body.encode())
    assert [e.data for e in events if isinstance(e, ServerSentEvent)] == [
        "before",
        "after",
        "last",
    ]
    assert decoder.retry == 1500
    decoder = SSEDecoder()
    decoder.feed(f"retry: 2000\n\nretry: {huge}\n\n".encode())
    assert decoder.retry == 2000  # kept, as for any value that is not applied
    decoder.feed(f"retry: {'9' * 18}\n\n".encode())
    assert decoder.retry == 10**18 - 1  # the largest value applied
    assert [e.data for e in iter_events([body.encode()[:4000], body.encode()[4000:]])] == [
        "before",
        "after",
        "last",
    ]


def test_a_decoded_event_carries_the_retry_of_its_own_block() -> None:
    # Found in review: every decoded event had retry None, so an event encoded with a retry
    # did not round-trip, and a client could not see the delay a server asked for with it.
    sent = [
        ServerSentEvent("a", retry=1500, id="1"),
        ServerSentEvent("b"),
        ServerSentEvent("c", retry=0),
    ]
    decoder = SSEDecoder()
    got = decoder.feed(b"".join(encode(event) for event in sent))
    assert got == [
        ServerSentEvent("a", event="message", retry=1500, id="1"),
        ServerSentEvent("b", event="message", id="1"),
        ServerSentEvent("c", event="message", id="1", retry=0),
    ]
    # A retry-only block (a resumable stream's store outage answer) dispatches nothing, is
    # not given to the next event, and stays on the decoder.
    assert decoder.feed(b"retry: 1000\n\ndata: d\n\n") == [
        ServerSentEvent("d", event="message", id="1")
    ]
    assert decoder.retry == 1000


def test_iter_events_leaves_the_last_event_id_and_retry_on_the_decoder_given() -> None:
    decoder = SSEDecoder()
    assert list(iter_events([b"id: stream-1\n\nretry: 2500\n\n"], decoder=decoder)) == []
    assert (decoder.last_event_id, decoder.retry) == ("stream-1", 2500)
    # The same decoder reads the next response: a cut event was dropped, its id not taken.
    assert list(iter_events([b"data: x\n\nid: lost\ndata: cut"], decoder=decoder)) == [
        ServerSentEvent("x", event="message", id="stream-1")
    ]
    assert [e.data for e in iter_events([b"data: next\n\n"], decoder=decoder)] == ["next"]
    assert decoder.last_event_id == "stream-1"


@pytest.mark.parametrize("reads", [1, 7, 4096])
def test_an_event_that_outgrows_max_event_size_raises_and_keeps_the_last_event_id(
    reads: int,
) -> None:
    # Found in review: a body that never ends its event (no blank line, or no line end at
    # all) grew in memory until the process ran out: 200 MB read, 0 events, no error.
    bodies = [
        b"data: " + b"x" * 200,  # one line, never ended
        b"data: ab\n" * 40,  # many data lines, no blank line
        b"id: 7\nevent: e\n" + b"data: " + b"y" * 150 + b"\n",
    ]
    for body in bodies:
        decoder = SSEDecoder(max_event_size=100)
        decoder.feed(b"id: kept\ndata: small\n\n")
        with pytest.raises(EventTooLargeError, match="max_event_size \\(100 characters\\)"):
            for start in range(0, len(body), reads):
                decoder.feed(body[start : start + reads])
        assert decoder.last_event_id == "kept"
        assert decoder.feed(b"data: fine\n\n") == [
            ServerSentEvent("fine", event="message", id="kept")
        ]
    # An event of exactly the limit passes (data plus one LF per line), many small ones too.
    decoder = SSEDecoder(max_event_size=100)
    assert len(decoder.feed(b"data: " + b"z" * 99 + b"\n\n")) == 1
    assert len(decoder.feed(b"data: " + b"z" * 90 + b"\n\n" * 1 + b"data: 1\n\n" * 50)) == 51
    assert (
        SSEDecoder(max_event_size=None).feed(b"data: " + b"w" * 20_000_000 + b"\n\n")[0].data
        == "w" * 20_000_000
    )
    with pytest.raises(EventTooLargeError):
        list(iter_events([b"data: " + b"v" * 17_000_000]))  # the 16 MiB default


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_event_size_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="max_event_size"):
        SSEDecoder(max_event_size=bad)  # type: ignore[arg-type]


def test_events_complete_in_the_read_that_overflows_are_returned_first() -> None:
    # Found in review: the whole read was lost, though its first event was complete and its
    # id already taken as the last event ID (a reconnect would skip it).
    decoder = SSEDecoder(max_event_size=100)
    read = b"id: 1\ndata: first\n\ndata: " + b"x" * 200
    assert decoder.feed(read) == [ServerSentEvent("first", event="message", id="1")]
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"x")
    assert decoder.last_event_id == "1"


def test_a_shared_decoder_is_not_reset_by_an_earlier_read_left_early() -> None:
    # Found in review: a read left with `break` closed the decoder in its `finally` when the
    # generator was closed, later, in the middle of the next read.
    decoder = SSEDecoder()
    first = iter_events([b"id: a\ndata: one\n\ndata: two\n\n"], decoder=decoder)
    assert next(first).data == "one"

    def reads() -> Iterator[bytes]:
        yield b"data: par"
        first.close()  # the abandoned generator is closed while the next read runs
        yield b"tial\n\n"

    assert [e.data for e in iter_events(reads(), decoder=decoder)] == ["partial"]
    assert decoder.last_event_id == "a"


def test_a_requests_response_with_a_file_as_its_raw_body_is_iterated() -> None:
    # Found in review: a requests.Response built in a test (raw = io.BytesIO) took the
    # urllib3 read1 path and failed (BytesIO.read1 takes no decode_content).
    import io

    import requests

    response = requests.Response()
    response.status_code = 200
    response.headers["content-type"] = "text/event-stream"
    response.raw = io.BytesIO(b"data: one\n\n")
    assert [e.data for e in iter_events(response)] == ["one"]
