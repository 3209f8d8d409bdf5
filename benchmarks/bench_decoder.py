"""Incremental decoding cost by read size: `SSEDecoder.feed` and `sources.json_array`.

A body arriving in many small reads must cost about what it costs in one read: the work has to
be linear in the line or element length, not re-done from the line's start at every read
(issue 9, section 5). Each body is decoded in one read and in fixed-size reads:

- ``sse 1 MB line``: one ``data:`` line of about 1 MB (a base64 image in a Responses
  ``partial_image`` event), in 1,460-byte reads (one TCP segment) and 64-byte reads;
- ``sse responses``: the recorded OpenAI Responses streams of ``shared/fixtures`` repeated to
  about 274 KB (lines up to 7 KB), in 1,460-, 64- and 7-byte reads;
- ``sse small events``: 10,000 Chat Completions chunks (about 200 bytes each): the common
  case, also reported per event (the hot path), in 16 KB, 1,460- and 64-byte reads;
- ``json_array gemini chunks``: the recorded Gemini arrays of ``shared/fixtures`` repeated to
  about 500 KB (elements of about 1 KB, most of them cut by the end of a 1,460-byte read):
  the common case, also reported per element, through the public ``json_array`` driven by an
  asyncio loop;
- ``json_array 1 MB image element``: a Gemini ``streamGenerateContent`` array (no ``alt=sse``)
  whose middle element is a ~1 MB base64 image (``inlineData``); ``async read loop alone``
  (its time, and its ratio to the element's one-read time) is the floor any reader
  pays per read (the same chunks through an async generator that does nothing with them);
- ``json_array 1 MB text element (stress)``: the same with ~1 MB of code-like text instead
  (escaped quotes, backslashes and newlines every few characters, Korean, emoji), the worst
  case for the scanner that follows an element across reads.

Checks (a MISS exits 1):

- issue 9's target, chunked time <= 2x the one-read time, for reads of 1,460 bytes and more
  (not for the stress element: its one read is a single C ``json`` call, while a split element
  must also be scanned for its end, at regular-expression speed where escapes are dense);
- linearity, for the long line and the elements: the same reads of a body 4 times the size
  take <= 8x the time (linear work takes 4x, the old quadratic decoders 16x; 8x is halfway,
  on a log scale, so that noise does not decide).

The 64- and 7-byte ratios to one read are printed, not judged: there the time is mostly the
fixed cost of a read (a Python call, an incremental UTF-8 decode, a look for line ends: about
0.5 us), paid 15,600 times for 1 MB in 64-byte reads and never by a single read.

Times are the best of ``--repeat`` rounds of ``time.perf_counter`` (the machine is shared and
noisy; the minimum is the least disturbed); the runs of one case are interleaved, one of each
per round, and each ratio is the median of its per-round ratios. Chunks are cut before timing.

    .venv/bin/python benchmarks/bench_decoder.py [--repeat 9] [--quick]

``--quick`` is a smoke run: half sizes, best of 5 (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sse_llm import SSEDecoder
from sse_llm.sources import json_array

TARGET = 2.0  # x the one-read time (issue 9)
GROWTH = 4  # the body grows this many times for the linearity check ...
LINEAR = 8.0  # ... and the time may grow this much: linear work gives 4x, quadratic 16x
MB = 1_000_000
SEGMENT = 1460  # a TCP segment's payload on Ethernet
HERE = Path(__file__).resolve().parent
# CI clones the repo with ``shared/`` beside it: <clone>/../shared/fixtures/streams.
STREAMS = HERE.parent.parent / "shared" / "fixtures" / "streams"
RESPONSES = STREAMS / "openai-responses"
GEMINI = STREAMS / "gemini-json-array"


def cut(body: bytes, size: int) -> list[bytes]:
    """``body`` in reads of ``size`` bytes (0: one read)."""
    if size <= 0:
        return [body]
    return [body[i : i + size] for i in range(0, len(body), size)]


# -- bodies --------------------------------------------------------------------------------


def sse_long_line(size: int) -> bytes:
    """One Responses ``partial_image`` event whose single ``data:`` line is ~``size`` bytes."""
    image = base64.b64encode(random.Random(1).randbytes(size * 3 // 4)).decode()
    payload = {
        "type": "response.image_generation_call.partial_image",
        "item_id": "ig_0",
        "output_index": 0,
        "partial_image_index": 0,
        "partial_image_b64": image,
    }
    line = json.dumps(payload, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {line}\n\ndata: [DONE]\n\n".encode()


def responses_files() -> list[Path]:
    return sorted(RESPONSES.glob("*.sse")) if RESPONSES.is_dir() else []


def sse_responses(size: int) -> bytes:
    """The recorded Responses streams, concatenated and repeated to about ``size`` bytes."""
    # Each recording ends with a blank line; a separator keeps the events apart regardless.
    one = b"".join(f.read_bytes().rstrip(b"\r\n") + b"\n\n" for f in responses_files())
    return one * max(1, round(size / len(one)))


def gemini_files() -> list[Path]:
    return sorted(GEMINI.glob("*.json")) if GEMINI.is_dir() else []


def gemini_chunks(size: int) -> bytes:
    """The recorded Gemini arrays' elements (about 1 KB each), in Gemini's layout, repeated to
    about ``size`` bytes."""
    elements = [e for f in gemini_files() for e in json.loads(f.read_bytes())]
    parts = [json.dumps(e, indent=2, ensure_ascii=False) for e in elements]
    one = len("\n,\r\n".join(parts).encode())
    parts *= max(1, round(size / one))
    return ("[" + "\n,\r\n".join(parts) + "\n]").encode()


def sse_small_events(count: int) -> bytes:
    chunks = []
    for i in range(count):
        chunk = {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion.chunk",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"content": f" tok{i % 97}"}, "finish_reason": None}],
        }
        chunks.append(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n")
    chunks.append("data: [DONE]\n\n")
    return "".join(chunks).encode()


_WORDS = (
    "def",
    "return",
    "self._buffer",
    '"quoted"',
    "path\\to\\file",
    "한국어",
    "문장",
    "🙂",
    "{",
    "}",
    "[0]",
    "x = 1;",
)


def _gemini_element(part: dict[str, Any], finish: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash-image",
    }


def _gemini_array(big: dict[str, Any]) -> bytes:
    elements = [
        _gemini_element({"text": "Here is"}),
        _gemini_element(big),
        _gemini_element({"text": " the end."}, finish=True),
    ]
    # Gemini's layout: "[{...}" then "\n,\r\n{...}" ... then "\n]", each element pretty-printed.
    body = "[" + "\n,\r\n".join(json.dumps(e, indent=2, ensure_ascii=False) for e in elements)
    return (body + "\n]").encode()


def gemini_image(size: int) -> bytes:
    """A Gemini array whose middle element is an ~``size``-byte base64 image (``inlineData``)."""
    image = base64.b64encode(random.Random(3).randbytes(size * 3 // 4)).decode()
    return _gemini_array({"inlineData": {"mimeType": "image/png", "data": image}})


def gemini_text(size: int) -> bytes:
    """A Gemini array whose middle element carries ~``size`` bytes of code-like text."""
    rng = random.Random(2)
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word.encode()) + 1
        if rng.random() < 0.1:
            parts.append("\n    ")
    return _gemini_array({"text": " ".join(parts)})


# -- drivers -------------------------------------------------------------------------------


def time_sse(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    decoder = SSEDecoder()
    items = []
    for chunk in chunks:
        items += decoder.feed(chunk)
    items += decoder.close()
    elapsed = time.perf_counter() - start
    assert items, "no event decoded"
    return elapsed


async def _source(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _json_array(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    items = [item async for item in json_array(_source(chunks))]
    elapsed = time.perf_counter() - start
    assert items, "no element decoded"
    return elapsed


async def _read_loop(chunks: list[bytes]) -> float:
    start = time.perf_counter()

    async def reader() -> AsyncIterator[bytes]:  # json_array's shape, minus the parsing
        async for chunk in _source(chunks):
            if not chunk:
                yield chunk

    _ = [item async for item in reader()]
    return time.perf_counter() - start


# -- the report ---------------------------------------------------------------------------

Measure = Callable[[list[bytes]], float]


class Report:
    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.missed = 0
        print(
            f"{'case / reads':<34} {'reads':>7} {'ms':>9} {'x one':>7} {'us/read':>8}"
            f" {'4x size':>8}  verdict"
        )
        print("-" * 100)

    def case(
        self,
        name: str,
        make: Callable[[int], bytes],
        size: int,
        reads: list[int],
        measure: Measure,
        *,
        ratio_judged: bool = True,
        grown: bool = False,
        per_event: bool = False,
        elements: bool = False,
        floor: Measure | None = None,
    ) -> None:
        """One body, decoded in one read and in each of ``reads``.

        Judged: the ratio to the one-read time (<= TARGET) for reads of SEGMENT bytes and more
        when ``ratio_judged``; with ``grown``, the time of the same reads of a body GROWTH times
        the size (<= LINEAR x): linear work grows GROWTH times, quadratic work GROWTH^2 times.
        """
        body = make(size)
        events = sum(1 for _ in SSEDecoder().feed(body)) if per_event else 0
        if elements:
            events = len(json.loads(body))
        unit = "element" if elements else "event"
        print(f"{name}: {len(body):,} bytes" + (f", {events:,} {unit}s" if events else ""))
        big = make(GROWTH * size) if grown else b""
        runs: dict[tuple[str, int], tuple[Measure, list[bytes]]] = {("", 0): (measure, [body])}
        for read in reads:
            runs["", read] = (measure, cut(body, read))
            if grown:
                runs["grown", read] = (measure, cut(big, read))
            if floor is not None:
                runs["floor", read] = (floor, cut(body, read))
        # Interleaved, every run once per round: the machine is shared, and a burst of load
        # then hits the runs compared alike. Times are the best of the rounds; ratios are the
        # median of the per-round ratios (as in the other benchmarks here).
        times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
        for _ in range(self.repeat):
            for key, (run, chunks) in runs.items():
                times[key].append(run(chunks))

        def ratio(key: tuple[str, int], base: tuple[str, int]) -> float:
            return statistics.median(a / b for a, b in zip(times[key], times[base], strict=True))

        self._row("one read", 1, min(times["", 0]), 1.0, None, [], events, unit)
        for read in reads:
            elapsed = min(times["", read])
            x_one = ratio(("", read), ("", 0))
            verdicts: list[str] = []
            if ratio_judged and read >= SEGMENT:
                verdicts.append(self._verdict(x_one <= TARGET, f"<= {TARGET:g}x one read"))
            growth = None
            if grown:
                growth = ratio(("grown", read), ("", read))
                verdicts.append(
                    self._verdict(growth <= LINEAR, f"{GROWTH}x size <= {LINEAR:g}x time")
                )
            count = len(runs["", read][1])
            self._row(f"{read} B", count, elapsed, x_one, growth, verdicts, events, unit)
            if floor is not None:
                base = min(times["floor", read])
                self._row(
                    "  async read loop alone",
                    count,
                    base,
                    ratio(("floor", read), ("", 0)),
                    None,
                    [],
                    0,
                    unit,
                )

    def _verdict(self, ok: bool, what: str) -> str:
        self.missed += not ok
        return f"{'PASS' if ok else 'MISS'} ({what})"

    @staticmethod
    def _row(
        label: str,
        reads: int,
        elapsed: float,
        ratio: float,
        growth: float | None,
        verdicts: list[str],
        events: int,
        unit: str,
    ) -> None:
        grown = f"{growth:>7.2f}x" if growth is not None else f"{'':>8}"
        extra = f"  [{elapsed / events * 1e6:.2f} us/{unit}]" if events else ""
        print(
            f"  {label:<32} {reads:>7} {elapsed * 1e3:>9.2f} {ratio:>7.2f}"
            f" {elapsed / reads * 1e6:>8.2f} {grown}  {'; '.join(verdicts)}{extra}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="best of this many runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: half sizes")
    args = parser.parse_args()
    scale = 2 if args.quick else 1
    mb = f"{1 / scale:g} MB"
    loop = asyncio.new_event_loop()

    def array(chunks: list[bytes]) -> float:
        return loop.run_until_complete(_json_array(chunks))

    def read_loop(chunks: list[bytes]) -> float:
        return loop.run_until_complete(_read_loop(chunks))

    repeat = 5 if args.quick else args.repeat
    print(f"best of {repeat}; Python {sys.version.split()[0]}; {'quick' if args.quick else 'full'}")
    report = Report(repeat)
    report.case(f"sse {mb} line", sse_long_line, MB // scale, [SEGMENT, 64], time_sse, grown=True)
    if responses_files():
        report.case(
            "sse responses",
            sse_responses,
            274_000 // scale,
            [SEGMENT, 64, 7],
            time_sse,
            per_event=True,
        )
    else:
        print(f"sse responses: skipped, no fixtures in {RESPONSES}")
    report.case(
        "sse small events",
        sse_small_events,
        10_000 // scale,
        [16384, SEGMENT, 64],
        time_sse,
        per_event=True,
    )
    if gemini_files():
        report.case(
            "json_array gemini chunks",
            gemini_chunks,
            500_000 // scale,
            [SEGMENT, 64],
            array,
            elements=True,
        )
    else:
        print(f"json_array gemini chunks: skipped, no fixtures in {GEMINI}")
    report.case(
        f"json_array {mb} image element",
        gemini_image,
        MB // scale,
        [SEGMENT, 64],
        array,
        grown=True,
        floor=read_loop,
    )
    report.case(
        f"json_array {mb} text element (stress)",
        gemini_text,
        MB // scale,
        [SEGMENT, 64],
        array,
        ratio_judged=False,
        grown=True,
    )
    loop.close()
    print()
    if report.missed:
        print(f"MISS: {report.missed} check(s) missed")
    else:
        print("PASS: every check")
    sys.exit(1 if report.missed else 0)


if __name__ == "__main__":
    main()
