"""HTML-fragment formats: what goes on the wire, for htmx, in append and Markdown modes."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from itertools import pairwise
from typing import Any

import anyio
import pytest

from sse_llm import (
    Citation,
    ErrorEvent,
    EventStream,
    ServerSentEvent,
    SSEDecoder,
    StreamEngine,
    TextDelta,
    ToolActivity,
)
from sse_llm._markdown import MarkdownRenderer
from sse_llm.html import HTMLAppendFormat, MarkdownFormat, escape_text, wire_newlines
from sse_llm.testing import DEFAULT_ANSWER, FakeLLM, run_stream, tokenize
from tests.support.htmx import htmx_view
from tests.support.xss import HOSTILE_ACTIVITY, HOSTILE_SOURCES
from tests.test_markdown import XSS_MARKDOWN, assert_safe

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Seconds that advance only when a source says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tokens_with_time(text: str, clock: FakeClock, step: float) -> list[str]:
    return tokenize(text)


async def timed_source(tokens: list[str], clock: FakeClock, step: float) -> AsyncIterator[str]:
    for token in tokens:
        clock.now += step
        yield token


def whole_message_swapped(events: list[Any], target: str) -> bool:
    return any(f'hx-swap-oob="innerHTML:#{target}"><' in e.data for e in events[1:])


def broken_tag_tokens(text: str) -> list[str]:
    """Split every 3 characters: tags, attributes and URLs are cut across tokens."""
    return [text[i : i + 3] for i in range(0, len(text), 3)]


async def test_append_events_carry_only_the_new_escaped_text() -> None:
    text = "a < b && c > d\n\n<script>alert(1)</script> 끝"
    tokens = ["a", " <", " b", " &&", " c", " >", " d", "\n\n", "<scr", "ipt>", "alert(1)",
              "</script>", " ", "끝"]  # fmt: skip
    response = await run_stream(EventStream(tokens, format=HTMLAppendFormat(interval=0)))
    data = [e.data for e in response.events if e.event == "message"]
    assert "".join(html.unescape(d) for d in data) == text
    # Every fragment is plain escaped text: no tag ever reaches the client.
    assert all("<" not in d and ">" not in d for d in data)
    # The whitespace-only tokens travel with the next visible one (htmx 4 drops blank swaps);
    # newlines as character references: one data: line per event.
    assert "&#10;&#10;&lt;scr" in data and " 끝" in data
    assert response.events[-1].event == "done" and response.events[-1].data == "completed"


async def test_append_ends_with_the_complete_message_swapped_into_the_target() -> None:
    fake = FakeLLM(delay=0)
    stream = EventStream(fake.stream("q"), format=HTMLAppendFormat("answer-1"))
    response = await run_stream(stream)
    final = response.events[-2].data
    message = wire_newlines(escape_text(fake.text_for("q")))
    assert final == f'<div hx-swap-oob="innerHTML:#answer-1">{message}</div>'
    assert html.unescape(message) == fake.text_for("q")


async def test_append_can_render_the_final_message_as_sanitised_markdown() -> None:
    fmt = HTMLAppendFormat("m", markdown=MarkdownRenderer())
    response = await run_stream(EventStream(broken_tag_tokens(XSS_MARKDOWN), format=fmt))
    final = response.events[-2].data
    assert final.startswith('<div hx-swap-oob="innerHTML:#m">')
    assert final.endswith(wire_newlines(MarkdownRenderer().render(XSS_MARKDOWN)) + "</div>")
    assert_safe(final)


async def test_append_bytes_grow_linearly_with_the_answer() -> None:
    sizes = []
    for repeat in (1, 4):
        text = DEFAULT_ANSWER * repeat
        fmt = HTMLAppendFormat(interval=0)  # an event per token: the most framing
        response = await run_stream(EventStream(tokenize(text), format=fmt))
        sizes.append(len(response.body))
    assert sizes[1] < 4.2 * sizes[0]


async def test_append_interval_coalesces_deltas_and_flushes_at_the_end() -> None:
    clock = FakeClock()
    tokens = tokenize(DEFAULT_ANSWER)
    fmt = HTMLAppendFormat(interval=0.1, clock=clock)
    response = await run_stream(EventStream(timed_source(tokens, clock, 0.02), format=fmt))
    data = [e.data for e in response.events if e.event == "message"]
    assert "".join(html.unescape(d) for d in data) == DEFAULT_ANSWER.rstrip()
    assert len(data) <= len(tokens) * 0.02 / 0.1 + 2


async def test_markdown_renders_at_most_once_per_interval() -> None:
    clock = FakeClock()
    text = DEFAULT_ANSWER.replace("{prompt}", "질문")
    tokens = tokenize(text)
    fmt = MarkdownFormat("m-1", interval=0.1, clock=clock)
    response = await run_stream(EventStream(timed_source(tokens, clock, 0.01), format=fmt))
    renders = [e for e in response.events if e.event == "message"][1:-1]  # minus setup and final
    duration = len(tokens) * 0.01
    assert 2 <= len(renders) <= duration / 0.1 + 1
    assert htmx_view(response.events, "m-1") == MarkdownRenderer().render(text)
    # The page already holds every settled block: the last event brings only the rest and
    # removes the tail element, instead of the whole message once more.
    final = response.events[-2].data
    assert final.endswith('<div hx-swap-oob="delete:#m-1-tail"></div>')
    assert len(final) < len(wire_newlines(MarkdownRenderer().render(text))) / 2
    assert not whole_message_swapped(response.events, "m-1")
    assert response.events[-1].event == "done"


async def test_markdown_settled_blocks_are_sent_once_so_bytes_grow_linearly() -> None:
    sizes = []
    for count in (40, 160):
        clock = FakeClock()
        text = "\n\n".join(f"Paragraph number {i} with some words in it." for i in range(count))
        fmt = MarkdownFormat("m", interval=0.0, clock=clock)  # a render for every token
        source = timed_source(tokenize(text), clock, 0.01)
        response = await run_stream(EventStream(source, format=fmt))
        body = response.body.decode()
        for i in range(count - 1):
            # At most once as the finished tail and once settled: the last event does not
            # send the message again.
            assert body.count(f"<p>Paragraph number {i} with some words in it.</p>") <= 2
        sizes.append(len(response.body))
    assert sizes[1] < 4.5 * sizes[0]  # 4x the text: ~4x the bytes, not 16x


async def test_markdown_fragments_are_blocks_out_of_band_and_the_tail_as_main_content() -> None:
    clock = FakeClock()
    source = timed_source(["# T\n\n", "body", " more", "\n\n", "- a"], clock, 0.3)
    response = await run_stream(EventStream(source, format=MarkdownFormat("x", clock=clock)))
    events = [e.data for e in response.events if e.event == "message"]
    assert events == [
        '<div hx-swap-oob="innerHTML:#x"><div id="x-tail" class="sse-llm-tail"></div></div>',
        "<h1>T</h1>",  # the first block, still the tail: main content
        '<div hx-swap-oob="beforebegin:#x-tail"><h1>T</h1></div><p>body</p>',
        "<p>body more</p>",  # 0.6 s after it was last sent: past refresh
        '<div hx-swap-oob="beforebegin:#x-tail"><p>body more</p></div><ul><li>a</li></ul>',
        '<div hx-swap-oob="beforebegin:#x-tail"><ul><li>a</li></ul></div>'
        '<div hx-swap-oob="delete:#x-tail"></div>',
    ]
    assert htmx_view(response.events, "x") == "<h1>T</h1><p>body more</p><ul><li>a</li></ul>"


async def test_with_oob_tail_every_fragment_is_out_of_band() -> None:
    fmt = MarkdownFormat("x", interval=0, oob_tail=True)
    response = await run_stream(EventStream(["# T\n\n", "body", "\n\n", "end"], format=fmt))
    events = [e.data for e in response.events if e.event == "message"]
    for data in events[1:]:
        assert re.fullmatch(
            r'(<div hx-swap-oob="(beforebegin|innerHTML|delete):#x-tail">.*?</div>)+', data, re.S
        )
    assert htmx_view(response.events, "x") == "<h1>T</h1><p>body</p><p>end</p>"


# A link reference definition changes a paragraph sent earlier: the safety net swaps in the
# whole message at the end.
REFERENCE_DOCUMENT = (
    "A [link][ref] before its definition.\n\nMore text.\n\n[ref]: https://example.com\n"
)
MARKDOWN_DOCUMENTS = [
    DEFAULT_ANSWER.replace("{prompt}", "질문"),
    XSS_MARKDOWN,
    "## 1. 단계\r\n\r\nText with **bold**\r\nand a soft break.\r\n\r\n| a | b |\r\n|---|---|\r\n"
    "| `x` | y |\r\n\r\n```py\r\nprint('<b>')\r\n```\r\n\r\n> quote\r\n> more\r\n",
    "Setext heading\n===\n\n* one\n* two\n\n  still two\n* three\n\n---\n\n1) x\n2) y\n",
    REFERENCE_DOCUMENT,
    "Trailing paragraph without a newline",
    "",
]


@pytest.mark.parametrize("document", range(len(MARKDOWN_DOCUMENTS)))
@pytest.mark.parametrize("split", ["tokens", "three", "one"])
@pytest.mark.parametrize("interval", [0.0, 0.1])
async def test_the_page_ends_with_exactly_the_render_of_the_whole_answer(
    document: int, split: str, interval: float
) -> None:
    text = MARKDOWN_DOCUMENTS[document]
    pieces = {
        "tokens": tokenize(text),
        "three": broken_tag_tokens(text),
        "one": list(text),
    }[split]
    clock = FakeClock()
    fmt = MarkdownFormat("m", interval=interval, clock=clock)
    response = await run_stream(EventStream(timed_source(pieces, clock, 0.02), format=fmt))
    assert htmx_view(response.events, "m") == MarkdownRenderer().render(text)
    if text != REFERENCE_DOCUMENT:
        assert not whole_message_swapped(response.events, "m")
    assert response.events[-1].event == "done"


class DriftingRenderer(MarkdownRenderer):
    """A renderer whose whole render is not its blocks put together (a stand-in for a parser
    plugin that looks at the whole document, e.g. footnotes numbered at the end)."""

    def render(self, text: str) -> str:
        return super().render(text) + ("<hr>" if text.count("\n\n") > 1 else "")


@pytest.mark.parametrize(
    "options",
    [
        {"markdown": DriftingRenderer()},
        {"resend_final": True},
        {"final_template": '<div hx-swap-oob="innerHTML:#{{ target }}">{{ html }}</div>'},
    ],
    ids=["blocks-do-not-add-up", "resend_final", "final_template"],
)
async def test_the_whole_message_is_swapped_in_when_asked_or_when_blocks_do_not_add_up(
    options: dict[str, Any],
) -> None:
    text = "# Title\n\nFirst paragraph.\n\nSecond one."
    fmt = MarkdownFormat("m", interval=0, **options)
    response = await run_stream(EventStream(tokenize(text), format=fmt))
    renderer = options.get("markdown", MarkdownRenderer())
    final = response.events[-2].data
    assert final == f'<div hx-swap-oob="innerHTML:#m">{renderer.render(text)}</div>'
    assert htmx_view(response.events, "m") == renderer.render(text)


async def test_xss_split_across_tokens_never_reaches_a_fragment_unsanitised() -> None:
    for fmt in (
        MarkdownFormat("m", interval=0.0),
        HTMLAppendFormat("m", markdown=MarkdownRenderer()),
    ):
        response = await run_stream(EventStream(broken_tag_tokens(XSS_MARKDOWN), format=fmt))
        for event in response.events:
            assert_safe(event.data)
            assert "<script" not in event.data.lower()


async def test_an_error_is_shown_escaped_in_the_final_fragment() -> None:
    async def failing() -> AsyncIterator[object]:
        yield TextDelta("partial **answer**")
        yield ErrorEvent("quota <b>exceeded</b>", "rate_limit")

    response = await run_stream(EventStream(failing(), format=MarkdownFormat("m")))
    final = response.events[-2].data
    assert "<p>partial <strong>answer</strong></p>" in final
    assert '<p class="sse-llm-error" role="alert">quota &lt;b&gt;exceeded&lt;/b&gt;</p>' in final
    assert response.events[-1].event == "done" and response.events[-1].data == "error"


@pytest.mark.parametrize(
    ("tokens", "shown"),
    [
        (["Hello", " world", "\n"], "Hello world\n"),
        (["Hello", " world", " ", " "], "Hello world  "),
        (["Hello", "\r\n", "\t"], "Hello\n\t"),
        (["Hello\r", "\n"], "Hello\n"),  # the CR went out as the line break
        (["Hello", "\u3000"], "Hello\u3000"),  # an ideographic space: JavaScript trims it
    ],
)
async def test_without_a_target_the_whitespace_that_ends_the_answer_is_sent_too(
    tokens: list[str], shown: str
) -> None:
    # Found in review: whitespace waits for the next visible text (htmx 4 skips a blank
    # swap); at the end none came, so the page lost the answer's last newline or spaces
    # while the completion hook kept them. Sent at the end as character references.
    results: list[Any] = []
    fmt = HTMLAppendFormat(interval=0)
    response = await run_stream(EventStream(tokens, format=fmt, on_complete=results.append))
    data = [e.data for e in response.events if e.event == "message"]
    assert all(d.strip() for d in data), data  # no fragment htmx would skip as blank
    assert "".join(html.unescape(d) for d in data) == shown
    assert results[0].text == "".join(tokens)
    assert response.events[-1].event == "done"


async def test_without_a_target_an_error_is_appended_escaped_before_done() -> None:
    # Found in review: HTMLAppendFormat() without a target (htmx 4's unnamed swaps) dropped
    # the error's message: a cut answer ended with no word of why.
    async def failing() -> AsyncIterator[object]:
        yield TextDelta("partial answer")
        yield ErrorEvent("quota <b>exceeded</b>\nretry later", "rate_limit")

    async def crashing() -> AsyncIterator[str]:
        yield "partial"
        raise RuntimeError("secret /etc/passwd")

    response = await run_stream(EventStream(failing(), format=HTMLAppendFormat(interval=0)))
    assert [(e.event, e.data) for e in response.events] == [
        ("message", "partial answer"),
        (
            "message",
            '<p class="sse-llm-error" role="alert">quota &lt;b&gt;exceeded&lt;/b&gt;&#10;'
            "retry later</p>",
        ),
        ("done", "error"),
    ]
    response = await run_stream(EventStream(crashing(), format=HTMLAppendFormat()))
    error = response.events[-2].data
    assert error.startswith('<p class="sse-llm-error" role="alert">'), error
    assert "secret" not in response.body.decode() and "RuntimeError" not in error
    assert response.events[-1].data == "error"


async def test_a_disconnected_stream_sends_no_final_fragment() -> None:
    fake = FakeLLM(delay=0.01)
    stream = EventStream(fake.stream("x"), format=MarkdownFormat("m", interval=0))
    response = await run_stream(stream, disconnect_after=3)
    assert response.disconnected
    assert all(e.event != "done" for e in response.events)
    for _ in range(500):  # bounded: 5 s
        if fake.closed:
            break
        await anyio.sleep(0.01)
    assert fake.closed == 1


@pytest.mark.parametrize("bad", ["1abc", "a b", 'x"><script>', "#m", ""])
def test_targets_must_be_plain_html_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="target"):
        MarkdownFormat(bad)
    with pytest.raises(ValueError, match="target"):
        HTMLAppendFormat(bad)


def test_custom_templates_get_escaped_values_even_without_autoescape() -> None:
    from jinja2 import Environment

    raw_env = Environment(autoescape=False)
    fmt = HTMLAppendFormat("m", token_template=raw_env.from_string("<span>{{ text }}</span>"))
    engine = StreamEngine(fmt)
    assert engine.feed("<img src=x onerror=alert(1)>") == (
        b"data: <span>&lt;img src=x onerror=alert(1)&gt;</span>\n\n"
    )


class _Attributes(HTMLParser):
    """Every start tag's attributes, as a browser's parser reads them."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


HOSTILE_QUOTES = '" onmouseover="alert(1)'


def test_custom_templates_may_put_text_and_error_in_an_attribute() -> None:
    # Found in review: text was escaped for element content only (no quotes), and as Markup
    # autoescape left it alone, so an attribute in a custom template could be broken out of.
    from jinja2 import Environment

    env = Environment(autoescape=True)
    token = env.from_string('<span title="{{ text }}">{{ text }}</span>')
    final = env.from_string('<div id="{{ target }}" data-error="{{ error }}">{{ html }}</div>')
    for fmt in (
        HTMLAppendFormat("m", interval=0, token_template=token, final_template=final),
        MarkdownFormat("m", interval=0, final_template=final),
    ):
        engine = StreamEngine(fmt)
        wire = engine.start() + engine.feed(HOSTILE_QUOTES)
        wire += engine.feed(ErrorEvent(HOSTILE_QUOTES, "x")) + engine.close()
        markup = "".join(e.data for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent))
        tags = _Attributes(markup).tags
        assert not [attrs for _, attrs in tags if "onmouseover" in attrs], markup
        if isinstance(fmt, HTMLAppendFormat):
            assert ("span", {"title": HOSTILE_QUOTES}) in tags
        assert [attrs["data-error"] for tag, attrs in tags if "data-error" in attrs] == [
            HOSTILE_QUOTES
        ]


def test_a_line_break_in_template_text_and_in_an_error_reaches_the_page_as_one() -> None:
    # Found in review: Markup's replace escaped the "&#10;" written for a line break, so the
    # page showed the characters "&#10;" in a token template's text and in the error line.
    from jinja2 import Environment

    env = Environment(autoescape=True)
    token = env.from_string('<span title="{{ text }}">{{ text }}</span>')
    for fmt in (
        HTMLAppendFormat("m", interval=0, token_template=token),
        MarkdownFormat("m", interval=0),
    ):
        engine = StreamEngine(fmt)
        wire = engine.start() + engine.feed("a\nb")
        wire += engine.feed(ErrorEvent("Rate limited.\nRetry in 20s", "x")) + engine.close()
        markup = "".join(e.data for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent))
        assert "&amp;#10;" not in markup, markup
        page = _Text(markup)
        assert "Rate limited.\nRetry in 20s" in page.text, page.text
        if isinstance(fmt, HTMLAppendFormat):
            assert ("span", {"title": "a\nb"}) in _Attributes(markup).tags
            assert "a\nb" in page.text


class _Text(HTMLParser):
    """The text a browser shows for ``markup`` (character references resolved)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.feed(markup)
        self.close()

    def handle_data(self, data: str) -> None:
        self.text += data


def test_a_crlf_split_by_a_flush_is_still_one_line_break() -> None:
    # Found in review: text() holds a trailing CR back (half a CRLF?), but a flush sent it,
    # and the LF that came next was a second line break on the page.
    clock = FakeClock()
    engine = StreamEngine(HTMLAppendFormat(interval=0.1, clock=clock))
    wire = engine.start() + engine.feed("a")  # the first delta goes out at once
    clock.now = 0.05
    wire += engine.feed("b\r")  # held: within the interval
    clock.now = 0.2
    wire += engine.flush()  # due: "b" and its CR go out
    wire += engine.feed("\nc") + engine.close()
    text = "".join(e.data for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent))
    assert html.unescape(text.removesuffix("completed")) == "ab\nc"


def test_flush_sends_held_text_only_once_the_interval_has_passed() -> None:
    clock = FakeClock()
    for fmt in (
        HTMLAppendFormat(interval=0.1, clock=clock),
        MarkdownFormat("m", interval=0.1, clock=clock),
    ):
        engine = StreamEngine(fmt)
        assert engine.flush_interval == 0.1  # the pump polls flush() this often
        engine.start()
        assert engine.feed("Hello")  # the first delta goes out at once
        assert engine.feed(" world") == b""  # held: within the interval
        clock.now += 0.05
        assert engine.flush() == b""  # still within the interval
        clock.now += 0.06
        assert b"world" in engine.flush()
        assert engine.flush() == b""  # nothing held any more
    # No interval, nothing to poll: the pump then never calls flush on a timer.
    engine = StreamEngine(HTMLAppendFormat(interval=0))
    assert engine.flush_interval is None


class ArrivalTimes:
    """ASGI middleware recording (time.monotonic(), body) for every body message sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sends: list[tuple[float, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def timed(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.sends.append((time.monotonic(), message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, timed)


@pytest.mark.parametrize(
    "make_format",
    [lambda: HTMLAppendFormat(interval=0.1), lambda: MarkdownFormat("m", interval=0.1)],
    ids=["append", "markdown"],
)
async def test_a_held_token_is_shown_within_the_interval_while_the_model_pauses(
    make_format: Any,
) -> None:
    yielded: dict[str, float] = {}

    async def pausing_model() -> AsyncIterator[str]:
        yield "Hello"
        yield " world"  # right after the first: held back by the interval
        yielded["world"] = time.monotonic()
        await anyio.sleep(1.0)  # the model thinks; the held text must not wait for this
        yield "!"

    app = ArrivalTimes(EventStream(pausing_model(), format=make_format()))
    response = await run_stream(app)
    assert response.complete
    world_at = next(at for at, body in app.sends if b"world" in body)
    bang_at = next(at for at, body in app.sends if b"!" in body)
    # Due 0.1 s after the first event; the watcher polls every 0.1 s, so <= ~0.2 s. The bound
    # leaves room for a loaded machine while staying far below the 1 s pause.
    assert world_at - yielded["world"] < 0.6
    assert world_at < bang_at


def test_append_coalesces_by_default() -> None:
    clock = FakeClock()
    engine = StreamEngine(HTMLAppendFormat(clock=clock))
    assert engine.flush_interval == 0.1
    assert engine.feed("a") == b"data: a\n\n"
    assert engine.feed("b") == b""  # within 0.1 s of the last event
    clock.now += 0.1
    assert engine.feed("c") == b"data: bc\n\n"


def test_fragments_are_one_data_line_however_many_newlines_the_answer_has() -> None:
    text = "# T\n\nline one\nline two\r\n\n```\ncode\n\nmore\n```\n\n- a\n- b\n"
    for fmt in (HTMLAppendFormat("m", interval=0), MarkdownFormat("m", interval=0, refresh=0)):
        engine = StreamEngine(fmt)
        out = engine.start() + b"".join(engine.feed(t) for t in tokenize(text))
        out += engine.close()
        events = out.split(b"\n\n")
        assert all(event.count(b"\n") == 0 for event in events if event.startswith(b"data:"))


def paragraph(words: int) -> str:
    return " ".join(f"word{i}" for i in range(words)) + "."


async def markdown_bytes(text: str, **options: Any) -> int:
    """Body bytes for ``text`` streamed at 50 tokens/s on an injected clock."""
    clock = FakeClock()
    fmt = MarkdownFormat("m", clock=clock, **options)
    source = timed_source(tokenize(text), clock, 0.02)
    response = await run_stream(EventStream(source, format=fmt))
    assert htmx_view(response.events, "m") == MarkdownRenderer().render(text)
    return len(response.body)


async def test_a_long_growing_paragraph_costs_linear_bytes_not_quadratic() -> None:
    # One paragraph, never settled: only the re-sent tail grows. Re-sending it every interval
    # (refresh=0) is quadratic; the default rule must stay linear.
    # 800 words (~6,000 characters, 30 s at 50 tokens/s) is past the short-tail regime, where
    # re-sends cost a bounded number of bytes per second, so doubling the text about doubles
    # the bytes (measured: 2.06x).
    small = await markdown_bytes(paragraph(800))
    large = await markdown_bytes(paragraph(1600))
    assert large <= 2.5 * small, (small, large)
    old_small = await markdown_bytes(paragraph(800), refresh=0)
    old_large = await markdown_bytes(paragraph(1600), refresh=0)
    assert old_large > 3.5 * old_small  # the measure tells quadratic from linear (4.7x)
    assert large < old_large / 20


def test_a_growing_paragraph_is_re_sent_at_least_every_refresh_seconds() -> None:
    clock = FakeClock()
    engine = StreamEngine(MarkdownFormat("m", interval=0.1, refresh=0.5, clock=clock))
    engine.start()
    sent_at = []
    for i in range(70):  # 1.4 s at 50 tokens/s, ~470 characters on one line
        clock.now += 0.02
        if engine.feed(f" word{i}"):
            sent_at.append(clock.now)
    gaps = [b - a for a, b in pairwise(sent_at)]
    assert max(gaps) <= 0.5 + 0.1 + 1e-9, gaps  # refresh, checked once per interval
    assert 1.4 - sent_at[-1] <= 0.5 + 0.1
    # ... but not at every interval: only when refresh passed.
    assert len(sent_at) <= 1.4 / 0.1 * 0.6, sent_at


def test_a_settled_block_is_sent_at_the_first_check_whatever_the_tail_rule() -> None:
    clock = FakeClock()
    engine = StreamEngine(MarkdownFormat("m", interval=0.1, refresh=10, clock=clock))
    engine.start()
    assert b"<p>intro</p>" in engine.feed("intro")  # the first text goes out at once
    clock.now += 0.1
    assert engine.feed(" text that is not worth a re-send") == b""
    clock.now += 0.1
    out = engine.feed("\n\n# Head")
    assert b'beforebegin:#m-tail"><p>intro text that is not worth a re-send</p>' in out
    assert b"<h1>Head</h1>" in out


def test_a_pause_flushes_held_text_but_flowing_text_is_not_forced() -> None:
    clock = FakeClock()
    engine = StreamEngine(MarkdownFormat("m", interval=0.1, refresh=10, clock=clock))
    engine.start()
    assert engine.feed("A long first line of the paragraph")
    clock.now += 0.1
    assert engine.feed(" more") == b""  # not worth a re-send yet: held
    clock.now += 0.05
    assert engine.flush() == b""  # the model spoke 0.05 s ago: not a pause, and not due
    clock.now += 0.06
    assert b"paragraph more</p>" in engine.flush()  # silent for an interval: shown
    assert engine.flush() == b""  # nothing held any more


# ------------------------------------------------------------------ sources and provider tools

SEARCH = ToolActivity("ws_1", "web_search", "started", "météo <Paris>", {"query": "météo"})
SEARCHED = ToolActivity("ws_1", "web_search", "finished", "5 results")
RUN = ToolActivity("ci_1", "code_execution", "started")
SOURCES_NAV = (
    '<nav class="sse-llm-sources" aria-label="Sources"><ol>'
    '<li value="1"><a href="https://a.example/x?y=1&amp;z=2" rel="noopener nofollow"'
    ' target="_blank" title="Ä &amp; &lt;b&gt;">Ä &amp; &lt;b&gt;</a></li>'
    '<li value="2">notes.pdf</li>'
    '<li value="7"><a href="https://b.example/a%20b" rel="noopener nofollow" target="_blank"'
    ' title="https://b.example/a b">b.example/a b</a></li>'
    "</ol></nav>"
)
CITED_SOURCES = [
    Citation("url", url="https://a.example/x?y=1&z=2", title="Ä & <b>", start=0, end=2),
    Citation("url", url="https://a.example/x?y=1&z=2", title="Ä & <b>", start=3, end=5),  # again
    Citation("file", title="notes.pdf", document_id="file-1"),
    Citation("url", url="https://b.example/a b", index=7),  # Gemini sends raw spaces
]


def engine_events(fmt: Any, items: list[Any]) -> list[Any]:
    engine = StreamEngine(fmt)
    body = engine.start() + b"".join(engine.feed(item) for item in items) + engine.close()
    return SSEDecoder().feed(body)


def activity_line(target: str, n: int, text: str) -> str:
    return (
        f'<div hx-swap-oob="beforeend:#{target}"><div id="{target}-activity-{n}"'
        f' class="sse-llm-activity" role="status">{text}</div></div>'
    )


def removal(target: str, n: int) -> str:
    return f'<div hx-swap-oob="delete:#{target}-activity-{n}"></div>'


def test_append_shows_a_line_while_a_provider_tool_runs_and_lists_the_sources_at_the_end() -> None:
    items = [SEARCH, "Il ", "fait", SEARCHED, " beau.", *CITED_SOURCES]
    events = engine_events(HTMLAppendFormat("m", interval=0), items)
    assert [(e.event, e.data) for e in events] == [
        ("message", activity_line("m", 1, "Searching the web: météo &lt;Paris&gt;…")),
        ("message", "Il "),
        ("message", "fait"),
        ("message", removal("m", 1)),
        ("message", " beau."),
        ("message", f'<div hx-swap-oob="innerHTML:#m">Il fait beau.{SOURCES_NAV}</div>'),
        ("done", "completed"),
    ]


def test_a_long_activity_summary_is_cut_with_one_ellipsis() -> None:
    long_query = ToolActivity("ws_9", "web_search", "started", summary="weather " * 40)
    events = engine_events(HTMLAppendFormat("m", interval=0), [long_query, "ok"])
    line = events[0].data
    assert line.startswith(activity_line("m", 1, "Searching the web: weather")[:-12])
    assert line.endswith("weather…</div></div>") and "……" not in line


def test_markdown_lists_the_sources_with_the_last_blocks_and_keeps_the_tail_on_activity() -> None:
    items = ["# Titre\n\nIl fait ", SEARCH, "beau", RUN, SEARCHED, *CITED_SOURCES]
    events = engine_events(MarkdownFormat("m", interval=0, refresh=0), items)
    data = [e.data for e in events]
    assert data[1] == ('<div hx-swap-oob="beforebegin:#m-tail"><h1>Titre</h1></div><p>Il fait</p>')
    # An activity event re-sends the tail the page shows as its main content: an htmx 2 tail
    # (sse-swap) swaps every event's main content in, and would otherwise be emptied.
    assert data[2] == activity_line("m", 1, "Searching the web: météo &lt;Paris&gt;…") + (
        "<p>Il fait</p>"
    )
    assert data[3] == "<p>Il fait beau</p>"
    assert data[4] == activity_line("m", 2, "Running code…") + "<p>Il fait beau</p>"
    assert data[5] == removal("m", 1) + "<p>Il fait beau</p>"
    # The code run never ended: its line goes with the last event, before the tail does.
    assert data[6] == (
        removal("m", 2)
        + f'<div hx-swap-oob="beforebegin:#m-tail"><p>Il fait beau</p>{SOURCES_NAV}</div>'
        '<div hx-swap-oob="delete:#m-tail"></div>'
    )
    assert (events[7].event, events[7].data) == ("done", "completed")


def test_with_an_out_of_band_tail_an_activity_event_is_out_of_band_only() -> None:
    events = engine_events(MarkdownFormat("m", interval=0, oob_tail=True), ["Hi", SEARCH])
    assert events[2].data == activity_line("m", 1, "Searching the web: météo &lt;Paris&gt;…")


def test_a_line_still_shown_is_deleted_before_the_whole_message_is_swapped_in() -> None:
    for fmt in (HTMLAppendFormat("m", interval=0), MarkdownFormat("m", resend_final=True)):
        events = engine_events(fmt, ["x", RUN])
        final = events[-2].data
        assert final.startswith(removal("m", 1) + '<div hx-swap-oob="innerHTML:#m">')


def test_a_tool_reported_only_once_it_ended_shows_no_line() -> None:
    gemini_search = ToolActivity("web_search_0", "web_search", "finished", "q", {"query": "q"})
    events = engine_events(HTMLAppendFormat("m", interval=0), ["x", gemini_search])
    assert [e.data for e in events] == ["x", '<div hx-swap-oob="innerHTML:#m">x</div>', "completed"]


def test_without_a_target_sources_and_activity_are_dropped() -> None:
    events = engine_events(HTMLAppendFormat(interval=0), [SEARCH, "x", *CITED_SOURCES, SEARCHED])
    assert [e.data for e in events] == ["x", "completed"]


def test_sources_and_activity_templates_can_be_replaced_or_turned_off() -> None:
    from jinja2 import Environment

    raw = Environment(autoescape=False)  # values are escaped before any template sees them
    fmt = HTMLAppendFormat(
        "m",
        interval=0,
        sources_template=raw.from_string(
            '<ul class="refs">{% for s in sources %}<li>{{ s.text }} ({{ s.kind }})</li>'
            "{% endfor %}</ul>"
        ),
        activity_template=raw.from_string("<em>{{ name }}: {{ summary }}</em>"),
    )
    events = engine_events(fmt, [SEARCH, "x", CITED_SOURCES[0], CITED_SOURCES[2]])
    assert events[0].data == activity_line("m", 1, "<em>web_search: météo &lt;Paris&gt;</em>")
    assert events[-2].data == removal("m", 1) + (
        '<div hx-swap-oob="innerHTML:#m">x<ul class="refs"><li>Ä &amp; &lt;b&gt; (url)</li>'
        "<li>notes.pdf (file)</li></ul></div>"
    )
    off = HTMLAppendFormat("m", interval=0, sources_template="", activity_template="")
    events = engine_events(off, [SEARCH, "x", *CITED_SOURCES])
    assert [e.data for e in events] == ["x", '<div hx-swap-oob="innerHTML:#m">x</div>', "completed"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.items: list[str] = []
        self._in_li = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)
        if tag == "li":
            self.items.append("")

    def handle_data(self, data: str) -> None:
        if self.items:
            self.items[-1] += data


@pytest.mark.parametrize("markdown", [False, True], ids=["append", "markdown"])
def test_hostile_sources_and_tool_names_render_as_inert_text(markdown: bool) -> None:
    fmt: Any = MarkdownFormat("m", interval=0) if markdown else HTMLAppendFormat("m", interval=0)
    events = engine_events(fmt, [*HOSTILE_ACTIVITY[:2], "answer", *HOSTILE_SOURCES])
    wire = "".join(e.data for e in events)
    parsed = _Links()
    parsed.feed(wire)
    parsed.close()
    assert set(parsed.tags) <= {"div", "nav", "ol", "li", "a", "p"}, parsed.tags
    hrefs = [value for tag, name, value in parsed.attrs if name == "href"]
    for tag, name, value in parsed.attrs:
        assert not name.startswith("on"), (tag, name, value)
        assert name in {"hx-swap-oob", "id", "class", "role", "aria-label", "value"} or (
            tag == "a" and name in {"href", "rel", "target", "title"}
        ), (tag, name)
    # Only the http(s) URLs are links; quotes in one cannot leave the attribute.
    assert {h.split('"')[0] for h in hrefs if h} == {
        "https://title.example/",
        "https://long.example/",
        "https://quote.example/",
    }
    assert 'https://quote.example/"><script>window.__xss=18</script>' in hrefs
    assert all(h.startswith("https://") for h in hrefs)
    # The rest is text: the javascript: URL, the markup of the title, the 3 KB URL shortened.
    items = parsed.items
    assert items[0] == "Click for the source"
    assert (
        items[1]
        == '<img src=x onerror="window.__xss=12"><script>window.__xss=13</script> HTML title'
    )
    long_title = items[2]
    assert long_title.startswith("<b>Very</b> long title, ") and long_title.endswith("…")
    assert len(long_title) <= 121 and not long_title[:-1].endswith(" ")
    assert items[5] == "JAVASCRIPT:window.__xss=16"
    assert len(items[9]) <= 81
    assert "<svg onload=window.__xss=20>" in items[8] or items[8] == "<i>doc</i>"
    assert len(wire) < 4000  # the 10 KB title and the 3 KB URL do not travel whole
    assert 'Searching the web: <img src=x onerror="window.__xss=21">…' in [t for t in _texts(wire)]


def _texts(html_text: str) -> list[str]:
    out: list[str] = []

    class Texts(HTMLParser):
        def handle_data(self, data: str) -> None:
            out.append(data)

    Texts().feed(html_text)
    return out


def test_text_held_back_goes_out_before_the_activity_line() -> None:
    for fmt in (HTMLAppendFormat, MarkdownFormat):
        clock = FakeClock()
        engine = StreamEngine(fmt("m", clock=clock))
        engine.start()
        first = engine.feed("Avant ")
        clock.now = 0.01
        held = engine.feed("la recherche")  # within the interval: held back
        clock.now = 0.02
        events = SSEDecoder().feed(engine.feed(SEARCH))
        assert first and not held
        *text, line = [e.data for e in events]
        assert "la recherche" in "".join(text), fmt
        assert line.startswith(activity_line("m", 1, "Searching the web: météo &lt;Paris&gt;…"))


def stream_with_flushes(
    fmt: MarkdownFormat, clock: FakeClock, chunks: list[str], step: float
) -> bytes:
    """The wire of ``chunks`` arriving every ``step`` seconds, with ``flush()`` polled every
    ``interval`` in between, as the pump polls it."""
    engine = StreamEngine(fmt)
    wire = [engine.start()]
    next_poll = fmt.interval
    for chunk in chunks:
        clock.now += step
        while next_poll <= clock.now:
            wire.append(engine.flush())
            next_poll += fmt.interval
        wire.append(engine.feed(chunk))
    wire.append(engine.close())
    return b"".join(wire)


@pytest.mark.parametrize("step", [0.02, 0.2, 0.3])
def test_a_slow_model_costs_bytes_linear_in_time_not_the_whole_tail_per_chunk(step: float) -> None:
    # Found in review: a model silent for an interval between every two chunks (5 chunks a
    # second, a provider that batches) had its whole growing block re-sent after each chunk,
    # bypassing the refresh rule: 9 MB for a 400-line code block, 37 MB for 800 lines.
    sizes: dict[int, int] = {}
    for lines in (200, 400):
        text = "```python\n" + "\n".join(f"x{i} = f(x{i - 1}, {i})" for i in range(lines)) + "\n```"
        chunks = (
            tokenize(text) if step < 0.3 else [text[i : i + 100] for i in range(0, len(text), 100)]
        )
        clock = FakeClock()
        wire = stream_with_flushes(MarkdownFormat("m", clock=clock), clock, chunks, step)
        events = [e for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent)]
        assert htmx_view(events, "m") == MarkdownRenderer().render(text)
        # The documented budget: the tail's re-sends cost at most ~1,000 characters of source
        # a second (its rendered HTML, escapes and &#10; included, runs a little longer).
        assert len(wire) <= 3 * len(text) + 1_500 * clock.now, (lines, len(wire), clock.now)
        sizes[lines] = len(wire)
    assert sizes[400] / sizes[200] < 2.6  # twice the block, about twice the bytes (not 4x)


class CountingRenderer(MarkdownRenderer):
    """Counts the characters each ``split`` parses."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def split(self, text: str, start: int = 0) -> Any:
        self.parsed += len(text) - start
        return super().split(text, start)


@pytest.mark.parametrize("kind", ["list", "table"])
def test_a_long_list_or_table_is_not_parsed_whole_at_every_interval(kind: str) -> None:
    # Found in review: a list or a table is one growing block, with line breaks in it, so its
    # whole text was parsed at every interval even when nothing was sent: CPU with the square
    # of its length (21 s of a core for an 800-row list streamed in 128 s).
    rows = [f"| {i} | the server frames every token |" for i in range(400)]
    if kind == "list":
        text = "\n".join(f"- item {i}: the server frames every token" for i in range(400))
    else:
        text = "| # | text |\n|---|---|\n" + "\n".join(rows)
    clock = FakeClock()
    renderer = CountingRenderer()
    wire = stream_with_flushes(
        MarkdownFormat("m", markdown=renderer, clock=clock), clock, tokenize(text), 0.02
    )
    events = [e for e in SSEDecoder().feed(wire) if isinstance(e, ServerSentEvent)]
    assert htmx_view(events, "m") == MarkdownRenderer().render(text)
    # At most ~20,000 characters parsed a second (plus each re-send's parse): linear in time.
    # At every interval it was 10 x the tail a second: 1.1 M characters a second by the end.
    assert renderer.parsed <= 25_000 * clock.now, (renderer.parsed, clock.now)


def test_a_long_block_is_shown_whole_within_a_second_of_a_pause() -> None:
    # Found in review of the bytes budget: during a pause, the end of a long list was held
    # for its length / 1,000 seconds (45 s for a 47,000-character list: a model thinking for
    # 30 s showed a cut-off list the whole time).
    text = "\n".join(f"- item {i}: the server frames every token" for i in range(600))
    clock = FakeClock()
    engine = StreamEngine(MarkdownFormat("m", clock=clock))
    wire = [engine.start()]
    next_poll = 0.1
    for token in tokenize(text):
        clock.now += 0.02
        while next_poll <= clock.now:
            wire.append(engine.flush())
            next_poll += 0.1
        wire.append(engine.feed(token))
    paused_at = clock.now
    shown_whole_after = None
    while clock.now - paused_at < 5:  # the model thinks; the pump polls flush()
        clock.now = next_poll
        next_poll += 0.1
        wire.append(engine.flush())
        events = [e for e in SSEDecoder().feed(b"".join(wire)) if isinstance(e, ServerSentEvent)]
        # The list is one block, still the tail element's content while the stream is open.
        shown = htmx_view(events, "m").replace('<div id="m-tail" class="sse-llm-tail">', "")
        if shown.removesuffix("</div>") == MarkdownRenderer().render(text):
            shown_whole_after = clock.now - paused_at
            break
    assert shown_whole_after is not None and shown_whole_after <= 1.2, shown_whole_after


def _raising_parser() -> Any:
    """A Markdown parser (a plugin) that fails on the whole answer, as the last render does."""
    from markdown_it import MarkdownIt

    class Raising(MarkdownIt):
        def render(self, src: str, env: Any = None) -> Any:
            if "world" in src:
                raise RuntimeError("a plugin's bug")
            return super().render(src, env)

    return Raising()


BROKEN = "{{ nope.attribute }}"  # jinja2's Undefined raises on the attribute


@pytest.mark.parametrize(
    ("fmt", "whole"),
    [
        (HTMLAppendFormat("m", interval=0, final_template=BROKEN), True),
        (MarkdownFormat("m", interval=0, final_template=BROKEN), True),
        (HTMLAppendFormat("m", interval=0, sources_template=BROKEN), True),
        (MarkdownFormat("m", interval=0, sources_template=BROKEN), True),
        (
            HTMLAppendFormat(
                "m",
                interval=0,
                markdown=MarkdownRenderer(_raising_parser()),
            ),
            True,
        ),
        (HTMLAppendFormat(interval=0, token_template=BROKEN), False),
    ],
    ids=[
        "append-final",
        "markdown-final",
        "append-sources",
        "markdown-sources",
        "renderer",
        "token",
    ],
)
async def test_a_failing_custom_template_still_ends_the_page_with_the_answer_and_done(
    fmt: HTMLAppendFormat | MarkdownFormat, whole: bool
) -> None:
    # Found in review: the engine retries a failed end once with the same writer, whose custom
    # template raised again, so nothing was sent: no error shown, no `done` (htmx kept waiting,
    # an EventSource would reconnect and ask the model again).
    async def answer() -> AsyncIterator[object]:
        yield "Hello <b>"
        yield Citation("url", url="https://example.com/a", title="A")
        yield RUN  # a provider tool whose end never comes: its line is deleted at the end
        yield "world</b>"

    results: list[Any] = []
    response = await run_stream(EventStream(answer(), format=fmt, on_complete=results.append))

    assert response.complete
    last = response.events[-1]
    assert (last.event, last.data) == ("done", "error")
    page = "".join(e.data for e in response.events[:-1])
    assert "The answer could not be completed because of an internal error." in page
    assert "Traceback" not in page and "nope" not in page and "plugin" not in page
    if whole:  # the final fragment swaps in the whole answer, escaped
        assert '<div hx-swap-oob="innerHTML:#m">Hello &lt;b&gt;world&lt;/b&gt;<p' in page
        assert 'hx-swap-oob="delete:#m-activity-1"' in page  # the tool's line, not left shown
    (result,) = results
    # A token template fails at the first token: the stream ends there, as for a source's error.
    assert (result.reason, result.text) == ("error", "Hello <b>world</b>" if whole else "Hello <b>")
