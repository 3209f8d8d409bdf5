"""Headless Chromium drives the FastAPI demo page served by a real uvicorn.

The page's own chat.js reads the stream (fetch + TextDecoder + its SSE parser) and renders the
answer's Markdown with the vendored marked + DOMPurify; nothing in the browser is mocked. Each
test builds the demo with ``create_app`` so it can choose the fake model's pace and read the
server's completion hook. ``text`` below is the answer's Markdown as the page received it (the
``.text`` element keeps it as ``markdownSource``); ``html`` is what the page shows.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import anyio
import pytest
from playwright.sync_api import Browser, Page
from starlette.types import Receive, Scope, Send

from sse_llm import Citation, StreamResult
from sse_llm.testing import DEFAULT_SOURCES, FakeLLM, tokenize

from .support.browser import source_links
from .support.servers import run_uvicorn
from .support.xss import HOSTILE_ACTIVITY, HOSTILE_SOURCES, WATCH_UNSAFE, XSS_ANSWER, XSS_TOKENS
from .test_examples import load_example

pytestmark = pytest.mark.browser

PROMPT = "한국어로 인사해 줘"
SCREENSHOT = "/tmp/demo.png"
STREAM_DEADLINE = 60.0  # seconds; far above the few seconds a stream takes

# The last answer bubble's state, read in one round trip.
READ_ANSWER = """() => {
  const answers = document.querySelectorAll("#log .message.assistant");
  const answer = answers[answers.length - 1];
  return {
    status: answer ? answer.dataset.status : null,
    text: answer ? answer.querySelector(".text").markdownSource : "",
    html: answer ? answer.querySelector(".text").innerHTML : "",
    shown: answer ? answer.querySelector(".text").textContent : "",
    activity: [...(answer ? answer.querySelectorAll(".activity") : [])].map((n) => n.textContent),
    sources: [...(answer ? answer.querySelectorAll("nav.sources li") : [])].map((li) => {
      const a = li.querySelector("a");
      return {text: li.textContent, value: li.value, href: a && a.getAttribute("href"),
              rel: a && a.getAttribute("rel"), target: a && a.getAttribute("target")};
    }),
    notes: [...(answer ? answer.querySelectorAll(".note") : [])].map(
      (note) => [note.className, note.textContent]),
    sendDisabled: document.getElementById("send").disabled,
    stopDisabled: document.getElementById("stop").disabled,
    promptDisabled: document.getElementById("prompt").disabled,
  };
}"""
ANSWER_ENDED = """() => {
  const answers = document.querySelectorAll("#log .message.assistant");
  return answers.length > 0 && answers[answers.length - 1].dataset.status !== "streaming";
}"""


class Demo(NamedTuple):
    base_url: str
    fake: FakeLLM
    results: list[StreamResult]  # what the server's completion hook received
    completed_at: list[float]  # time.monotonic() of each hook call
    completed: threading.Event  # set by the hook


class Tab(NamedTuple):
    page: Page
    console_errors: list[str]


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield Tab(page, errors)
    finally:
        context.close()


@contextmanager
def serve_demo(fake: FakeLLM, wrap: Callable[[Any], Any] = lambda app: app) -> Iterator[Demo]:
    """Serve the FastAPI demo built around ``fake`` (optionally wrapped in middleware)."""
    demo = Demo("", fake, [], [], threading.Event())

    def on_complete(result: StreamResult) -> None:
        demo.completed_at.append(time.monotonic())
        demo.results.append(result)
        demo.completed.set()

    app = load_example("fastapi").create_app(fake=fake, env={}, on_complete=on_complete)
    with run_uvicorn(wrap(app)) as base_url:
        yield demo._replace(base_url=base_url)


def ask(page: Page, base_url: str, prompt: str) -> None:
    page.goto(base_url + "/")
    page.fill("#prompt", prompt)
    page.click("#send")


def wait_for_end(page: Page) -> dict[str, Any]:
    page.wait_for_function(ANSWER_ENDED, timeout=STREAM_DEADLINE * 1000)
    state: dict[str, Any] = page.evaluate(READ_ANSWER)
    return state


def test_browser_shows_the_korean_answer_growing_as_it_streams(tab: Tab) -> None:
    fake = FakeLLM(delay=0.03)  # the demo's own pace
    expected = fake.text_for(PROMPT)
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        samples: list[dict[str, Any]] = []
        deadline = time.monotonic() + STREAM_DEADLINE
        while True:
            state = tab.page.evaluate(READ_ANSWER)
            if state["status"] != "streaming":
                break
            samples.append(state)
            assert time.monotonic() < deadline, "the answer never finished"
            tab.page.wait_for_timeout(100)
        final = tab.page.evaluate(READ_ANSWER)
        tab.page.screenshot(path=SCREENSHOT, full_page=True)

    assert final["status"] == "done"
    assert final["text"] == expected  # Korean, emoji, Markdown and line breaks exactly
    assert "\ufffd" not in final["text"]
    assert final["notes"] == [["note meta", "finished: stop"]]
    # Seen growing: at least three different partial lengths, each a prefix of the answer.
    partial = {len(s["text"]) for s in samples if 0 < len(s["text"]) < len(expected)}
    assert len(partial) >= 3, sorted(partial)
    assert all(expected.startswith(s["text"]) for s in samples)
    # The form is locked while streaming and unlocked after.
    assert all(s["sendDisabled"] and s["promptDisabled"] and not s["stopDisabled"] for s in samples)
    assert not final["sendDisabled"] and not final["promptDisabled"] and final["stopDisabled"]
    user_bubble = tab.page.locator("#log .message.user").last.text_content()
    assert user_bubble == PROMPT
    assert [r.reason for r in demo.results] == ["completed"]
    assert tab.console_errors == []


class OneByteSends:
    """ASGI middleware: every ``/api/`` response body goes out one byte per ``send``.

    With a pause between sends each byte reaches the browser in its own read, so UTF-8
    characters (3 bytes for Hangul, 4 for an emoji) and CRLF pairs are cut between reads. Each
    LF line ending is first replaced by ``newline``: the SSE text carries no other raw LF (the
    JSON data escapes it), so the stream stays valid with CRLF or CR line endings.
    """

    def __init__(self, app: Any, newline: bytes, pause: float = 0.001) -> None:
        self.app = app
        self.newline = newline
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def send_bytewise(message: Any) -> None:
            if message["type"] != "http.response.body" or not message.get("body"):
                await send(message)
                return
            body = message["body"].replace(b"\n", self.newline)
            more = message.get("more_body", False)
            for i in range(len(body)):
                last = i == len(body) - 1
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[i : i + 1],
                        "more_body": more if last else True,
                    }
                )
                if not last:
                    await anyio.sleep(self.pause)

        await self.app(scope, receive, send_bytewise)


# Records every chunk the page's stream reader returns, before chat.js sees it.
RECORD_READS = """
window.__reads = [];
const read = ReadableStreamDefaultReader.prototype.read;
ReadableStreamDefaultReader.prototype.read = function () {
  return read.call(this).then((result) => {
    if (!result.done) window.__reads.push(Array.from(result.value));
    return result;
  });
};
"""


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_browser_renders_the_exact_text_when_every_byte_arrives_alone(
    tab: Tab, newline: bytes
) -> None:
    fake = FakeLLM(delay=0)  # the byte-wise sends set the pace
    expected = fake.text_for(PROMPT)
    tab.page.add_init_script(RECORD_READS)
    with serve_demo(fake, lambda app: OneByteSends(app, newline)) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        final = wait_for_end(tab.page)
        reads: list[list[int]] = tab.page.evaluate("window.__reads")

    assert final["status"] == "done", final
    assert final["text"] == expected
    assert "\ufffd" not in final["text"]
    assert tab.console_errors == []

    # The reads really were cut inside characters (and inside CRLF pairs).
    body = bytes(b for chunk in reads for b in chunk)
    assert set(re.findall(rb"\r\n|\r|\n", body)) == {newline}  # only the line ending under test
    boundaries: list[int] = []
    offset = 0
    for chunk in reads[:-1]:
        offset += len(chunk)
        boundaries.append(offset)
    inside_character = [k for k in boundaries if 0x80 <= body[k] <= 0xBF]  # a continuation byte
    # Dozens in practice; a few are enough to prove the point on a loaded machine.
    assert len(inside_character) >= 3, (
        f"{len(reads)} reads, sizes {sorted({len(c) for c in reads})}"
    )
    if newline == b"\r\n":
        inside_crlf = [k for k in boundaries if body[k - 1 : k + 1] == b"\r\n"]
        assert len(inside_crlf) >= 3


def test_stop_button_ends_the_stream_and_the_server_sees_the_disconnect(tab: Tab) -> None:
    fake = FakeLLM(delay=0.05)  # about 7 seconds of answer: Stop lands mid-stream
    expected = fake.text_for(PROMPT)
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        tab.page.wait_for_function(
            """() => {
              const t = document.querySelector("#log .message.assistant .text");
              return t !== null && t.textContent.length >= 20;
            }""",
            timeout=STREAM_DEADLINE * 1000,
        )
        stopped_at = time.monotonic()
        tab.page.click("#stop")
        assert demo.completed.wait(STREAM_DEADLINE), "the completion hook never ran"
        hook_delay = demo.completed_at[0] - stopped_at
        final = wait_for_end(tab.page)

    [result] = demo.results
    assert result.reason == "disconnected"
    assert hook_delay < 1.0, f"the server saw the disconnect {hook_delay:.2f}s after Stop"
    assert fake.closed == 1  # the source (the model call) was closed
    assert final["status"] == "stopped"
    assert final["notes"] == [["note meta", "Stopped."]]
    # Cut short: the page has a prefix of what the server sent, itself a prefix of the answer.
    assert 20 <= len(final["text"]) < len(expected)
    assert result.text.startswith(final["text"])
    assert expected.startswith(result.text) and len(result.text) < len(expected)
    assert not final["sendDisabled"] and final["stopDisabled"]
    assert tab.console_errors == []


class UnreadableFirstEvent:
    """ASGI middleware: ``/api/chat``'s first body starts with an event whose data is not
    JSON (what an app's own ``ServerSentEvent`` may send), which the page's handler throws on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = True

        async def send_with_it(message: Any) -> None:
            nonlocal first
            if first and message["type"] == "http.response.body" and message.get("body"):
                first = False
                message = {**message, "body": b"event: delta\ndata: not json\n\n" + message["body"]}
            await send(message)

        is_chat = scope["type"] == "http" and scope["path"] == "/api/chat"
        await self.app(scope, receive, send_with_it if is_chat else send)


def test_an_event_the_page_cannot_read_ends_the_request_too(tab: Tab) -> None:
    # Found in review: the handler's exception left the fetch open, so the server went on
    # generating (and paying for) an answer the page had given up on.
    fake = FakeLLM(delay=0.05)  # about 7 seconds of answer
    with serve_demo(fake, UnreadableFirstEvent) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        final = wait_for_end(tab.page)
        ended_at = time.monotonic()
        assert demo.completed.wait(STREAM_DEADLINE), "the completion hook never ran"
        hook_delay = demo.completed_at[0] - ended_at
    assert final["status"] == "error"
    [result] = demo.results
    assert result.reason == "disconnected"
    assert hook_delay < 1.0, f"the server saw the disconnect {hook_delay:.2f}s after the error"
    assert fake.closed == 1


def test_browser_shows_the_models_html_as_text_never_as_markup(tab: Tab) -> None:
    hostile = (
        '<img src=x onerror="window.__pwned=1"><b>bold</b> & <script>window.__pwned=2</script>'
    )
    fake = FakeLLM(answer=hostile, delay=0)
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, "<i>prompt</i>")
        final = wait_for_end(tab.page)
        elements = tab.page.evaluate(
            "() => document.querySelectorAll('#log img, #log b, #log i, #log script').length"
        )
        pwned = tab.page.evaluate("() => window.__pwned ?? null")
        user_bubble = tab.page.locator("#log .message.user").last.text_content()

    assert final["status"] == "done"
    assert final["text"] == hostile
    assert final["shown"].strip() == hostile  # rendered as Markdown: the tags are text
    assert user_bubble == "<i>prompt</i>"
    assert elements == 0
    assert pwned is None
    assert tab.console_errors == []


def test_browser_shows_the_safe_error_and_keeps_the_partial_answer(tab: Tab) -> None:
    fake = FakeLLM(delay=0, fail_after=5)  # raises RuntimeError("... secret=hunter2")
    partial = "".join(tokenize(fake.text_for(PROMPT))[:5])
    with serve_demo(fake) as demo:
        tab.page.goto(demo.base_url + "/")
        tab.page.fill("#prompt", PROMPT)
        tab.page.press("#prompt", "Enter")  # Enter sends, like the send button
        final = wait_for_end(tab.page)
        page_text = tab.page.locator("body").inner_text()

    assert final["status"] == "error"
    assert final["text"] == partial
    assert final["notes"] == [
        ["note error", "The answer could not be completed because of an internal error."]
    ]
    assert "hunter2" not in page_text
    assert [r.reason for r in demo.results] == ["error"]
    assert tab.console_errors == []


# The README's EventSource snippet, run as is against the GET endpoint.
EVENTSOURCE_READ = """(prompt) => new Promise((resolve, reject) => {
  let text = "";
  const es = new EventSource("/api/chat?prompt=" + encodeURIComponent(prompt));
  es.addEventListener("delta", (e) => { text += JSON.parse(e.data).text; });
  es.addEventListener("done", (e) => { es.close(); resolve({ text, done: JSON.parse(e.data) }); });
  es.addEventListener("error", (e) => {
    es.close();
    reject(new Error(e.data || "connection error"));
  });
})"""


def test_eventsource_reads_the_get_endpoint_as_the_readme_shows(tab: Tab) -> None:
    fake = FakeLLM(delay=0)
    with serve_demo(fake) as demo:
        tab.page.goto(demo.base_url + "/")
        result = tab.page.evaluate(EVENTSOURCE_READ, PROMPT)

    assert result["text"] == fake.text_for(PROMPT)
    assert result["done"]["finish_reason"] == "stop"
    assert [r.reason for r in demo.results] == ["completed"]
    assert tab.console_errors == []


# -- Markdown, sources and provider tools ------------------------------------------------------


@pytest.fixture
def watched_tab(tab: Tab) -> Tab:
    """The tab, recording every unsafe node or attribute that ever enters the answers."""
    tab.page.add_init_script(WATCH_UNSAFE)
    tab.page.on("dialog", lambda dialog: (tab.console_errors.append("dialog"), dialog.dismiss()))
    return tab


def assert_inert(tab: Tab) -> None:
    assert tab.console_errors == []  # no dialog either
    assert tab.page.evaluate("window.__unsafe") == []
    assert tab.page.evaluate("window.__xss ?? null") is None


RENDERED = """() => {
  const text = document.querySelector("#log .message.assistant .text");
  const q = (s) => [...text.querySelectorAll(s)].map((n) => n.textContent);
  return {
    strong: q("strong"), em: q("em"), items: q("ol > li"), inline: q("p > code, li > code"),
    blocks: [...text.querySelectorAll("pre > code")].map((n) => [n.className, n.textContent]),
    children: [...text.children].map((n) => n.tagName.toLowerCase()),
  };
}"""


def test_browser_renders_the_answers_markdown(watched_tab: Tab) -> None:
    tab = watched_tab
    fake = FakeLLM(delay=0.005)
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, "마크다운")
        final = wait_for_end(tab.page)
        rendered = tab.page.evaluate(RENDERED)

    assert final["status"] == "done"
    assert final["text"] == fake.text_for("마크다운")
    assert rendered["strong"] == ["sse-llm"]
    assert rendered["em"] == ["마크다운"]
    assert len(rendered["items"]) == 3
    assert rendered["items"][1].startswith("the browser decodes UTF-8 with stream: true")
    assert "stream: true" in rendered["inline"] and "OPENAI_API_KEY" in rendered["inline"]
    assert rendered["blocks"] == [
        ["language-python", "async for token in llm.stream(prompt):\n    yield token\n"]
    ]
    assert rendered["children"] == ["p", "p", "p", "ol", "pre", "p"]
    assert "**" not in final["shown"] and "```" not in final["shown"]
    assert_inert(tab)


# Keeps the answer's element children but the last two once there are at least `count` while
# it streams: those blocks are final and must stay the same nodes. (The last two may be open:
# a block whose first line is not whole yet keeps the one before it open.)
KEEP_FINAL_BLOCKS = """(count) => {
  const answer = document.querySelector("#log .message.assistant");
  const text = answer && answer.querySelector(".text");
  if (!text || answer.dataset.status !== "streaming" || text.children.length < count) return false;
  (window.__kept ??= []).push([...text.children].slice(0, -2));
  return true;
}"""
# Whether each kept block is still in the page, as the same node, at the same place.
KEPT_BLOCKS_STAY = """() => {
  const text = document.querySelector("#log .message.assistant .text");
  return window.__kept.map((nodes) => nodes.map((node, i) => text.children[i] === node));
}"""
# The whole answer's Markdown parsed at once, as the page's markdown.render does it.
RENDERED_AT_ONCE = """() => {
  const text = document.querySelector("#log .message.assistant .text");
  const whole = document.createElement("div");
  whole.append(markdown.render(text.markdownSource));
  return [whole.innerHTML, text.innerHTML];
}"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_growing_answer_parses_only_its_open_block_again(tab: Tab, newline: str) -> None:
    # The blocks before the one still growing are rendered once and kept (no O(n²) re-render
    # of the whole answer per frame), and the result is what parsing the whole text gives,
    # with CR LF line breaks too.
    answer = FakeLLM().text_for("마크다운").replace("\n", newline)
    with serve_demo(FakeLLM(answer, delay=0.02)) as demo:
        ask(tab.page, demo.base_url, "마크다운")
        tab.page.wait_for_function(KEEP_FINAL_BLOCKS, arg=3)  # p: the greeting
        tab.page.wait_for_function(KEEP_FINAL_BLOCKS, arg=6)  # p, p, p, ol
        final = wait_for_end(tab.page)
        kept = tab.page.evaluate(KEPT_BLOCKS_STAY)
        at_once, shown = tab.page.evaluate(RENDERED_AT_ONCE)

    assert final["status"] == "done"
    assert final["text"] == answer
    assert kept == [[True], [True, True, True, True]]
    assert shown == at_once
    blocks = [tag for tag in re.findall(r"<(\w+)", shown) if tag in {"p", "ol", "pre"}]
    assert blocks == ["p", "p", "p", "ol", "pre", "p"]
    assert tab.console_errors == []


def test_a_loose_list_whose_next_number_comes_alone_stays_one_list(tab: Tab) -> None:
    # "2" alone after item 1 is a paragraph until ". **Run** it." comes: the list must not be
    # kept as final then (it was, found in review: one tight list per item, put right only at
    # the end by replacing every node).
    tokens = ["Steps:\n\n", "1", ". **Install** the package.\n\n", "2", ". **Run** it.\n\n"]
    tokens += ["3", ". Done.\n\n", "That's all.\n\n", "Bye", "."]
    answer = "".join(tokens)

    class Scripted(FakeLLM):
        async def stream(self, prompt: str = "") -> Any:
            for token in tokens:
                yield token
                await anyio.sleep(0.2)  # a frame or more for each

    with serve_demo(Scripted(answer)) as demo:
        ask(tab.page, demo.base_url, "목록")
        tab.page.wait_for_function(KEEP_FINAL_BLOCKS, arg=4)  # p, ol final; p, p open
        final = wait_for_end(tab.page)
        kept = tab.page.evaluate(KEPT_BLOCKS_STAY)
        at_once, shown = tab.page.evaluate(RENDERED_AT_ONCE)
        items = tab.page.evaluate(
            "() => [...document.querySelectorAll('#log .text ol > li')]"
            ".map((li) => li.innerHTML.trim())"
        )

    assert final["status"] == "done"
    assert kept == [[True, True]]  # kept through the end: no repair was needed
    assert shown == at_once
    assert shown.count("<ol>") == 1
    assert items == [
        "<p><strong>Install</strong> the package.</p>",
        "<p><strong>Run</strong> it.</p>",
        "<p>Done.</p>",
    ]
    assert tab.console_errors == []


def test_a_link_defined_below_its_paragraph_is_a_link_at_the_end(tab: Tab) -> None:
    # The paragraph was final (shown as text: "[the guide][g]") long before "[g]: url"
    # arrived; the answer's end puts the whole render in place.
    answer = "See [the guide][g] first.\n\nThen stream.\n\n[g]: https://example.com/guide\n"
    with serve_demo(FakeLLM(answer, delay=0.02)) as demo:
        ask(tab.page, demo.base_url, "링크")
        tab.page.wait_for_function(KEEP_FINAL_BLOCKS, arg=2)
        final = wait_for_end(tab.page)
        at_once, shown = tab.page.evaluate(RENDERED_AT_ONCE)
        links = tab.page.evaluate(
            "() => [...document.querySelectorAll('#log .text a')].map((a) => [a.textContent,"
            " a.getAttribute('href')])"
        )

    assert final["status"] == "done"
    assert links == [["the guide", "https://example.com/guide"]]
    assert shown == at_once
    assert "[g]" not in final["shown"]
    assert tab.console_errors == []


def test_markdown_that_attacks_the_page_never_runs(watched_tab: Tab) -> None:
    tab = watched_tab
    tokens = list(XSS_TOKENS)

    class Scripted(FakeLLM):
        async def stream(self, prompt: str = "") -> Any:
            for token in tokens:
                yield token
                await anyio.sleep(0.01)

    with serve_demo(Scripted(XSS_ANSWER)) as demo:
        ask(tab.page, demo.base_url, "<i>prompt</i>")
        final = wait_for_end(tab.page)
        tab.page.hover("#log .message.assistant .text")  # an onmouseover, had one survived
        tab.page.wait_for_timeout(200)
        links = tab.page.evaluate(
            "() => [...document.querySelectorAll('#log a')].map((a) => a.getAttribute('href'))"
        )

    assert final["status"] == "done"
    assert final["text"] == XSS_ANSWER
    assert "<h1>보안 점검</h1>" in final["html"]  # Markdown still renders around the attacks
    assert "<script>window.__xss=1</script>" in final["shown"]  # the model's HTML, as text
    assert all(href is None or href.startswith("http") for href in links), links
    assert_inert(tab)


def test_the_demo_shows_the_search_line_then_lists_the_sources(watched_tab: Tab) -> None:
    """The demo's own model (no API key): a pretend web search, then the answer and its
    sources."""
    tab = watched_tab
    fake = load_example("fastapi").demo_model()
    fake.delay = 0.005
    samples: list[dict[str, Any]] = []
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        deadline = time.monotonic() + STREAM_DEADLINE
        while True:
            state = tab.page.evaluate(READ_ANSWER)
            if state["status"] != "streaming":
                break
            samples.append(state)
            assert time.monotonic() < deadline, "the answer never finished"
            tab.page.wait_for_timeout(50)
        final = tab.page.evaluate(READ_ANSWER)
        tab.page.screenshot(path="/tmp/demo-sources.png", full_page=True)

    searching = [s for s in samples if s["activity"]]
    assert searching, "the search line never showed"
    assert {tuple(s["activity"]) for s in searching} == {
        ("Searching the web: server-sent events streaming…",)
    }
    assert all(s["text"] == "" for s in searching)  # the model searched before it answered
    assert final["activity"] == []
    assert final["text"] == fake.text_for(PROMPT)
    assert final["sources"] == source_links(DEFAULT_SOURCES)
    assert final["notes"] == [["note meta", "finished: stop"]]
    assert_inert(tab)


def test_hostile_sources_and_tool_activity_are_shown_as_inert_text(watched_tab: Tab) -> None:
    tab = watched_tab
    fake = FakeLLM(
        answer="답변 [1]",
        delay=0,
        activity=HOSTILE_ACTIVITY,
        sources=HOSTILE_SOURCES,
        tool_delay=0.6,
    )
    samples: list[dict[str, Any]] = []
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        while (state := tab.page.evaluate(READ_ANSWER))["status"] == "streaming":
            samples.append(state)
            tab.page.wait_for_timeout(50)
        tab.page.hover("#log nav.sources")
        tab.page.wait_for_timeout(200)
        final = tab.page.evaluate(READ_ANSWER)

    lines = {line for s in samples for line in s["activity"]}
    assert lines == {
        'Searching the web: <img src=x onerror="window.__xss=21">…',
        "Running <script>window.__xss=22</script>: x…",
    }
    sources = final["sources"]
    assert len(sources) == len(HOSTILE_SOURCES)
    hrefs = [s["href"] for s in sources if s["href"] is not None]
    assert hrefs == [
        "https://title.example/",
        "https://long.example/",
        # The URL parser percent-encodes the quote and the brackets: nothing leaves the link.
        "https://quote.example/%22%3E%3Cscript%3Ewindow.__xss=18%3C/script%3E",
    ]
    assert sources[0]["text"] == "Click for the source" and sources[0]["href"] is None
    assert sources[1]["text"] == (
        '<img src=x onerror="window.__xss=12"><script>window.__xss=13</script> HTML title'
    )
    long_title = sources[2]["text"]
    assert long_title.startswith("<b>Very</b> long title,") and long_title.endswith("…")
    assert len(long_title) <= 121
    assert sources[5]["text"] == "JAVASCRIPT:window.__xss=16"
    assert all(s["rel"] in (None, "noopener nofollow") for s in sources)
    assert final["status"] == "done"
    assert_inert(tab)


def test_a_citation_without_a_title_shows_its_shortened_address(tab: Tab) -> None:
    long_url = "https://docs.example/" + "segment/" * 30
    fake = FakeLLM(answer="x", delay=0, sources=[long_url, Citation("document", document_id="d1")])
    with serve_demo(fake) as demo:
        ask(tab.page, demo.base_url, PROMPT)
        final = wait_for_end(tab.page)
    first, second = final["sources"]
    assert first["href"] == long_url
    assert first["text"].startswith("https://docs.example/segment/") and len(first["text"]) <= 81
    assert second == {"text": "d1", "value": 2, "href": None, "rel": None, "target": None}
