"""`sources.json_array` read in reads of any size: the same elements, the same errors, and each
element decoded once (issue 9: it used to re-decode an element from its start at every read)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sse_llm import sources
from sse_llm.sources import json_array

from .support.fixtures import fixture_files

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings full of what the scanner has to get right: quotes, backslashes (runs of them),
# brackets, JSON's own escapes, non-ASCII text cut by the reads.
_SPECIAL = [
    '"',
    "\\",
    "\\\\",
    '\\"',
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "\t",
    "\0",
    "한",
    "🙂",
    "\u2028",
]
TEXT = st.lists(st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(_SPECIAL)))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT.map("".join),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(TEXT.map("".join), children, max_size=4)
    ),
    max_leaves=12,
)


def _layout(elements: list[Any], indent: int | None, ascii_only: bool, gemini: bool) -> bytes:
    if gemini:  # Gemini's own layout: "[{...}" "\n,\r\n{...}" ... "\n]"
        parts = [json.dumps(e, indent=indent, ensure_ascii=ascii_only) for e in elements]
        return ("[" + "\n,\r\n".join(parts) + "\n]").encode()
    return json.dumps(elements, indent=indent, ensure_ascii=ascii_only).encode()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def _reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Chunks:
    """An async byte iterable that records whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def read_all(chunks: list[bytes]) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in json_array(Chunks(chunks))]

    return anyio.run(main)


@SETTINGS
@given(
    elements=st.lists(JSON, max_size=5),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
    gemini=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
@example(elements=[{"a": 'x\\"}]'}], indent=None, ascii_only=True, gemini=False, cuts=[9, 10])
@example(elements=["\\", "\\\\"], indent=None, ascii_only=True, gemini=False, cuts=[3, 4, 8])
@example(elements=[12345, -0.5, True], indent=None, ascii_only=True, gemini=False, cuts=[3])
def test_any_split_gives_the_elements_of_one_read(
    elements: list[Any], indent: int | None, ascii_only: bool, gemini: bool, cuts: list[int]
) -> None:
    body = _layout(elements, indent, ascii_only, gemini)
    assert read_all(_cut(body, cuts)) == json.loads(body)


TRICKY = [
    b'[{"t": "a\\"b\\\\", "u": "\\\\\\"]}", "v": [1, {"w": "}"}]}, "x]\\u005c", 12, -3.5e2, true]',
    '[{"k": "한🙂 \\n 끝"}\n,\r\n["🙂", {"": null}]\n]'.encode(),
    b'[ "\\\\", "\\"", "\\\\\\\\\\"", false , null ]',
    b'[[],{},[[]],{"a":{}}]',
    b" [ \r\n ] ",
]


@pytest.mark.parametrize("body", TRICKY, ids=range(len(TRICKY)))
def test_every_two_way_split_and_one_byte_reads(body: bytes) -> None:
    expected = json.loads(body)
    assert read_all([body]) == expected
    assert read_all(_reads(body, 1)) == expected
    for cut in range(len(body) + 1):
        assert read_all([body[:cut], b"", body[cut:]]) == expected, cut


def test_invalid_utf8_in_an_element_split_across_reads_reads_as_one_read() -> None:
    # "replace", as before: U+FFFD, whether or not the bad bytes straddle reads.
    body = b'[{"t": "ok \xf0\x9f\x99 then \xff and \xed\x95"}, {"u": "\xea\xb0\x80"}]'
    expected = read_all([body])
    assert expected == [{"t": "ok \ufffd then \ufffd and \ufffd"}, {"u": "가"}]
    for size in (1, 2, 3, 5):
        assert read_all(_reads(body, size)) == expected


GEMINI = fixture_files("gemini-json-array")


@pytest.mark.parametrize("path", GEMINI, ids=[p.name for p in GEMINI])
@pytest.mark.parametrize("size", [1, 7, 64, 1460])
def test_gemini_recordings_in_reads_of_any_size(path: Path, size: int) -> None:
    body = path.read_bytes()
    assert read_all(_reads(body, size)) == json.loads(body)


MALFORMED = [
    b'{"a": 1}',  # not an array
    b'[{"a": 1}\n,\r\n{"b": 2}',  # truncated
    b'[{"a": 1} {"b": 2}]',  # missing comma
    b"[]x",  # trailing garbage
    b'[{"a": x}]',  # an element that is not JSON
    b'[{"a": "\\q"}]',  # a bad escape
    '[{"a": "x\\é"}, {"b": 1}]'.encode(),  # a backslash before a multi-byte character
    b"[{]",
    b"[1 2]",
    b"[1,]",
    b"[,]",
    b"[tru]",
    b'["abc]',
    b"[[1, 2]",
    b"[",
    b"",
]


@pytest.mark.parametrize("body", MALFORMED, ids=[repr(b)[2:-1] or "empty" for b in MALFORMED])
def test_malformed_bodies_raise_at_every_split(body: bytes) -> None:
    for cut in range(len(body) + 1):
        source = Chunks([body[:cut], body[cut:]])

        async def main(source: Chunks = source) -> None:
            _ = [item async for item in json_array(source)]

        with pytest.raises(ValueError):
            anyio.run(main)
        assert source.closed


class CountingDecoder(json.JSONDecoder):
    """Counts the texts given to the JSON decoder and their characters (``decode`` calls
    ``raw_decode``, so both are counted here)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.chars = 0

    def raw_decode(self, s: str, idx: int = 0) -> tuple[Any, int]:
        self.calls += 1
        self.chars += len(s) - idx
        return super().raw_decode(s, idx)


@pytest.mark.parametrize("repeat", [3500, 7000])
def test_a_split_element_is_decoded_once_not_at_every_read(
    monkeypatch: pytest.MonkeyPatch, repeat: int
) -> None:
    # Linear by construction, counted rather than timed: 100 or 200 KB of text full of closing
    # brackets (each of which used to trigger a new decode from the element's start) in 64-byte
    # reads. The old parser gave the JSON decoder 3,000 texts, 300 MB in all, for 200 KB.
    text = 'x = {"k": [1, 2]}; y = a[0]\n' * repeat
    body = _layout([{"a": 1}, {"text": text}, {"b": 2}], None, True, True)
    counter = CountingDecoder()
    monkeypatch.setattr(sources, "_DECODER", counter)
    assert read_all(_reads(body, 64)) == [{"a": 1}, {"text": text}, {"b": 2}]
    # An element split across reads: decoded whole while it is at most TRY_RATIO reads long
    # (if the read may end it), then followed by the scanner and decoded once at its end.
    tries = sources._ArrayParser.TRY_RATIO + 1
    assert counter.calls <= 3 * (1 + tries + 1)
    # So the characters decoded are the body plus a constant, whatever the element's size.
    assert counter.chars - len(body) <= 3 * tries * tries * 64


def test_a_split_element_is_kept_as_its_reads() -> None:
    parser = sources._ArrayParser()
    assert parser.feed(b'[{"data": "') == []
    reads = [bytes([65 + i % 26]) * 64 for i in range(1000)]
    for data in reads:
        assert parser.feed(data) == []
    # After the element's first two reads, the reads themselves, stored once each: nothing
    # rebuilt or re-scanned per read.
    assert parser._pieces[0] == b'{"data": "' + reads[0]
    assert all(a is b for a, b in zip(parser._pieces[1:], reads[1:], strict=True))
    assert parser.feed(b'"}]') == [{"data": b"".join(reads).decode()}]
    assert parser._pieces == []
    parser.close()
