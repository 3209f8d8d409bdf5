"""Headless Chromium drives the htmx demos: real htmx 4 / htmx 2 swaps of sse-llm's fragments.

Three pages, each served by a real uvicorn: the FastAPI htmx 4 page (``hx-post`` +
``hx-sse``, :class:`~sse_llm.html.MarkdownFormat`), the FastAPI htmx 2 page (``sse-connect`` +
``sse-swap`` + ``sse-close``, :class:`~sse_llm.html.HTMLAppendFormat`) and the Django demo
(htmx 4, SQLite). The FastAPI app is mounted under ``/htmx`` in a parent app, as the main demo
mounts it, so every URL it writes must carry the prefix.

What the page must show at the end is the server-side sanitised render,
``MarkdownRenderer().render(answer)``, compared with the answer element's ``innerHTML`` as is:
both are HTML serialisations of the same tree (html5ever's in nh3, Chromium's), so no
whitespace normalisation is needed.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from sse_llm import StreamResult, ToolActivity
from sse_llm._markdown import MarkdownRenderer
from sse_llm.testing import DEFAULT_SOURCES, FakeLLM
from tests.support.django_demo import django_demo_app
from tests.support.xss import HOSTILE_ACTIVITY, HOSTILE_SOURCES, XSS_ANSWER, XSS_TOKENS

from .support.browser import source_links
from .support.servers import run_uvicorn
from .test_demo_browser import RECORD_READS, OneByteSends

pytestmark = pytest.mark.browser

HTMX_APP = Path(__file__).resolve().parent.parent / "examples" / "fastapi" / "htmx_app.py"
PREFIX = "/htmx"
PROMPT = "한국어로 마크다운 예시를 보여 줘"
DEADLINE = 60.0  # seconds; far above the few seconds an answer takes
MARKDOWN = MarkdownRenderer()

# Installed before any page script: records htmx error events, the end of each stream, and any
# unsafe node or attribute that ever enters the document (not just what is left at the end).
WATCH_PAGE = """
window.__htmxErrors = [];
window.__ends = [];
window.__unsafe = [];
for (const name of ["htmx:error", "htmx:sse:error", "htmx:responseError", "htmx:sendError",
                    "htmx:swapError", "htmx:sseError", "htmx:oobErrorNoTarget",
                    "htmx:targetError", "htmx:onLoadError"]) {
  document.addEventListener(name, (e) => window.__htmxErrors.push(name), true);
}
// htmx 4: the named `done` event is dispatched on the form; htmx 2: the extension closes.
document.addEventListener("done", (e) => window.__ends.push("done:" + e.detail.data), true);
document.addEventListener("htmx:sseClose", (e) => window.__ends.push("close:" + e.detail.type),
                          true);
const audit = (node) => {
  if (node.nodeType !== 1) return;
  for (const el of [node, ...node.querySelectorAll("*")]) {
    const tag = el.tagName.toLowerCase();
    if (["script", "img", "iframe", "svg", "object", "embed", "details"].includes(tag)
        && el.closest(".answer")) {
      window.__unsafe.push(tag);
    }
    for (const attr of el.getAttributeNames()) {
      if (attr.startsWith("on")) window.__unsafe.push(tag + "[" + attr + "]");
    }
    const href = (el.getAttribute("href") || "").trim().toLowerCase();
    if (href.startsWith("javascript:")) window.__unsafe.push(tag + "[href=" + href + "]");
  }
};
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === "attributes") audit(record.target);
    record.addedNodes.forEach(audit);
  }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""

ANSWER_STATE = """(selector) => {
  const el = document.querySelector(selector);
  const fieldset = document.querySelector("#chat-form fieldset");
  return {
    exists: el !== null,
    length: el ? el.textContent.length : 0,
    html: el ? el.innerHTML : "",
    ends: window.__ends.slice(),
    disabled: fieldset ? fieldset.disabled : null,
  };
}"""


class ScriptedLLM(FakeLLM):
    """A fake model that yields exactly ``tokens`` (FakeLLM cuts text its own way)."""

    def __init__(self, tokens: list[str], delay: float = 0.02) -> None:
        super().__init__("".join(tokens), delay=delay)
        self.tokens = tokens

    async def stream(self, prompt: str = "") -> AsyncIterator[str]:
        import anyio

        try:
            for token in self.tokens:
                yield token
                await anyio.sleep(self.delay)
        finally:
            self.closed += 1


class ItemsLLM(FakeLLM):
    """A fake model that yields exactly ``items`` (text, sources, tool activity), pausing
    ``delay`` between them and ``tool_delay`` after a tool starts."""

    def __init__(self, items: list[Any], delay: float = 0.02, tool_delay: float = 1.0) -> None:
        text = "".join(i for i in items if isinstance(i, str))
        super().__init__(text, delay=delay, tool_delay=tool_delay)
        self.items = items

    async def stream(self, prompt: str = "") -> AsyncIterator[Any]:
        import anyio

        try:
            for item in self.items:
                yield item
                started = isinstance(item, ToolActivity) and item.status == "started"
                await anyio.sleep(self.tool_delay if started else self.delay)
        finally:
            self.closed += 1


class Tab(NamedTuple):
    page: Page
    errors: list[str]  # console errors, page errors, dialogs


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:  # an alert() from model output: the worst outcome
        errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.add_init_script(WATCH_PAGE)
    try:
        yield Tab(page, errors)
    finally:
        context.close()


def load_htmx_app() -> ModuleType:
    name = "sse_llm_example_fastapi_htmx"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HTMX_APP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: FastAPI resolves annotations there
        spec.loader.exec_module(module)
    return sys.modules[name]


class RequestCounter:
    """ASGI middleware counting requests per path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


class Demo(NamedTuple):
    base_url: str  # where the pages are: ends with the mount prefix
    results: list[StreamResult]
    completed: threading.Event
    counter: RequestCounter


@contextmanager
def serve_htmx(
    fake: FakeLLM,
    *,
    mounted: bool = True,
    one_byte: bool = False,
    wrap: Callable[[Any], Any] = lambda app: app,
) -> Iterator[Demo]:
    """The FastAPI htmx demo around ``fake``, mounted at /htmx (or alone, for byte-wise sends:
    OneByteSends only cuts paths that start with /api/), optionally wrapped in middleware."""
    results: list[StreamResult] = []
    completed = threading.Event()

    def on_complete(result: StreamResult) -> None:
        results.append(result)
        completed.set()

    app: Any = load_htmx_app().create_app(fake=fake, env={}, on_complete=on_complete)
    prefix = ""
    if one_byte:
        app = OneByteSends(app, b"\n")
    if mounted:
        parent = FastAPI()
        parent.mount(PREFIX, app)
        app, prefix = parent, PREFIX
    counter = RequestCounter(wrap(app))
    with run_uvicorn(counter) as base_url:
        yield Demo(base_url + prefix, results, completed, counter)


@pytest.fixture(scope="module", autouse=True)
def django_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """Django's ASGI app and SQLite file, set up before Chromium starts: Playwright's sync API
    keeps an event loop running in this thread, and Django refuses to migrate inside one."""
    return django_demo_app(tmp_path_factory)


@contextmanager
def serve_django(django_app: tuple[Any, Path]) -> Iterator[tuple[str, Path]]:
    application, db = django_app
    with run_uvicorn(application) as base_url:
        yield base_url, db


def submit(page: Page, url: str, prompt: str, *, check: str | None = None) -> str:
    """Open ``url``, tick the box ``check`` if given, send ``prompt``; return the selector of the
    new answer element."""
    page.goto(url)
    if check is not None:
        page.check(check)
    before = page.evaluate("() => document.querySelectorAll('.answer').length")
    page.fill("#chat-form textarea", prompt)
    page.click("#send")
    page.wait_for_function(
        f"() => document.querySelectorAll('.answer').length > {before}", timeout=DEADLINE * 1000
    )
    answer_id = page.evaluate(
        "() => { const a = document.querySelectorAll('.answer'); return a[a.length - 1].id; }"
    )
    return f"#{answer_id}"


def watch_until_end(page: Page, selector: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample the answer every 50 ms until the stream's end event; (samples, final state)."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        state: dict[str, Any] = page.evaluate(ANSWER_STATE, selector)
        if state["ends"]:
            break
        samples.append(state)
        assert time.monotonic() < deadline, f"the stream never ended: {state}"
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)  # htmx's settle step runs after the swap
    final: dict[str, Any] = page.evaluate(ANSWER_STATE, selector)
    return samples, final


def assert_clean(tab: Tab) -> None:
    page = tab.page
    assert tab.errors == []
    assert page.evaluate("window.__htmxErrors") == []
    assert page.evaluate("window.__unsafe") == []
    assert page.evaluate("window.__xss") is None


def assert_grew(samples: list[dict[str, Any]], final_length: int) -> None:
    lengths = {s["length"] for s in samples if 0 < s["length"] < final_length}
    assert len(lengths) >= 3, f"not seen growing: {sorted(lengths)}"


# -- FastAPI, htmx 4 ---------------------------------------------------------------------------


def test_htmx4_page_streams_the_markdown_answer_into_place(tab: Tab) -> None:
    fake = FakeLLM(delay=0.03)
    expected = fake.text_for(PROMPT)
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + "/", PROMPT)
        samples, final = watch_until_end(tab.page, selector)
        prompt_shown = tab.page.locator(".prompt").last.text_content()
        textarea = tab.page.input_value("#chat-form textarea")
        assert demo.completed.wait(10)

    assert final["ends"] == ["done:completed"]
    assert final["html"] == MARKDOWN.render(expected)
    assert_grew(samples, final["length"])
    assert prompt_shown == PROMPT
    # The form is disabled while it streams, enabled and emptied after `done`.
    assert samples and all(s["disabled"] for s in samples)
    assert final["disabled"] is False and textarea == ""
    assert [r.reason for r in demo.results] == ["completed"]
    assert_clean(tab)


def test_htmx4_stop_button_ends_the_stream_and_the_server_closes_the_source(tab: Tab) -> None:
    fake = FakeLLM(delay=0.05)  # ~6 s of answer: Stop lands mid-stream
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + "/", PROMPT)
        tab.page.wait_for_function(
            "(s) => document.querySelector(s).textContent.length >= 20",
            arg=selector,
            timeout=DEADLINE * 1000,
        )
        stopped_at = time.monotonic()
        tab.page.click("#stop")
        assert demo.completed.wait(DEADLINE), "the completion hook never ran"
        hook_delay = time.monotonic() - stopped_at
        tab.page.wait_for_function(
            "() => !document.querySelector('#chat-form fieldset').disabled",
            timeout=DEADLINE * 1000,
        )

    [result] = demo.results
    assert result.reason == "disconnected"
    assert hook_delay < 1.5, f"the server saw the Stop {hook_delay:.2f}s later"
    assert fake.closed == 1
    assert 0 < len(result.text) < len(fake.text_for(PROMPT))
    # Aborting is not an error worth an htmx error event or a console error.
    assert tab.errors == []


@pytest.mark.parametrize("page_kind", ["htmx4", "htmx2", "htmx2-markdown"])
def test_model_output_that_attacks_the_page_never_runs(tab: Tab, page_kind: str) -> None:
    fake = ScriptedLLM(XSS_TOKENS, delay=0.02)
    with serve_htmx(fake) as demo:
        url = demo.base_url + ("/" if page_kind == "htmx4" else "/htmx2")
        check = "#markdown" if page_kind == "htmx2-markdown" else None
        selector = submit(tab.page, url, "<i>prompt</i>", check=check)
        _, final = watch_until_end(tab.page, selector)
        tab.page.hover(selector)  # an onmouseover, had one survived
        tab.page.wait_for_timeout(200)
        prompt_shown = tab.page.locator(".prompt").last.inner_html()
        links = tab.page.evaluate(
            "(s) => [...document.querySelectorAll(s + ' a')].map(a => a.getAttribute('href'))",
            selector,
        )

    assert final["html"] == MARKDOWN.render(XSS_ANSWER)
    assert prompt_shown == "&lt;i&gt;prompt&lt;/i&gt;"
    assert all(href is None or href.startswith("http") for href in links), links
    assert_clean(tab)  # no dialog, window.__xss unset, no unsafe node ever inserted


def test_htmx4_page_renders_exactly_when_every_byte_arrives_alone(tab: Tab) -> None:
    fake = FakeLLM(delay=0)  # the byte-wise sends set the pace
    expected = fake.text_for(PROMPT)
    tab.page.add_init_script(RECORD_READS)
    with serve_htmx(fake, mounted=False, one_byte=True) as demo:
        selector = submit(tab.page, demo.base_url + "/", PROMPT)
        _, final = watch_until_end(tab.page, selector)
        reads: list[list[int]] = tab.page.evaluate("window.__reads")

    assert final["ends"] == ["done:completed"]
    assert final["html"] == MARKDOWN.render(expected)
    assert "\ufffd" not in final["html"]
    # The reads really were cut inside UTF-8 characters (Hangul is 3 bytes).
    body = bytes(b for chunk in reads for b in chunk)
    boundaries = []
    offset = 0
    for chunk in reads[:-1]:
        offset += len(chunk)
        boundaries.append(offset)
    assert len([k for k in boundaries if 0x80 <= body[k] <= 0xBF]) >= 3
    assert_clean(tab)


# -- FastAPI, htmx 2 + htmx-ext-sse ------------------------------------------------------------


def test_htmx2_page_streams_then_closes_on_done_without_reconnecting(tab: Tab) -> None:
    fake = FakeLLM(delay=0.03)
    expected = fake.text_for(PROMPT)
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + "/htmx2", PROMPT)
        samples, final = watch_until_end(tab.page, selector)
        # EventSource would reconnect a few seconds after the server closes (Chromium waits
        # ~3 s by default, the extension 0.5 s): wait past that and count the GETs.
        tab.page.wait_for_timeout(4500)
        streams = [p for p in demo.counter.paths if "/api/stream/" in p]

    assert final["ends"] == ["close:message"]  # sse-close="done"
    assert final["html"] == MARKDOWN.render(expected)
    # Appended text while streaming (a prefix of the answer), the Markdown at the end.
    assert_grew(samples, len(expected))
    assert len(streams) == 1, streams
    assert [r.reason for r in demo.results] == ["completed"]
    assert_clean(tab)


class CutStreams:
    """ASGI middleware: every answer stream (a path containing ``streams``) fails after its
    ``after``-th body message, or after the first body that contains ``after`` if it is bytes,
    so uvicorn drops the connection mid-answer (as a network cut does)."""

    def __init__(self, app: Any, after: int | bytes, streams: str = "/api/stream/") -> None:
        self.app = app
        self.after = after
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.streams not in scope["path"]:
            await self.app(scope, receive, send)
            return
        bodies = 0
        marker_sent = False

        async def cutting_send(message: Any) -> None:
            nonlocal bodies, marker_sent
            if message["type"] == "http.response.body":
                bodies += 1
                if marker_sent or (isinstance(self.after, int) and bodies > self.after):
                    raise RuntimeError("the connection drops")
                marker_sent = isinstance(self.after, bytes) and self.after in message["body"]
            await send(message)

        await self.app(scope, receive, cutting_send)


def test_htmx2_page_shows_a_lost_connection_and_stops_trying_again(tab: Tab) -> None:
    # Found in review: the extension reconnects a closed EventSource with backoff for as long
    # as the element is on the page, and this answer cannot be resumed (204): it kept asking.
    fake = FakeLLM(delay=0.03)
    with serve_htmx(fake, wrap=lambda app: CutStreams(app, after=10)) as demo:
        selector = submit(tab.page, demo.base_url + "/htmx2", PROMPT)
        tab.page.wait_for_selector(f"{selector} .sse-llm-error", timeout=DEADLINE * 1000)
        # Chromium reconnects a dropped EventSource after ~3 s, the extension a closed one
        # after 1 s, 2 s ...: wait past both and count the GETs.
        tab.page.wait_for_timeout(5000)
        streams = [p for p in demo.counter.paths if "/api/stream/" in p]
        shown = tab.page.inner_text(selector)
    assert len(streams) == 1, streams
    assert "The connection was lost." in shown
    assert len(shown) > len("The connection was lost. Please ask again.")  # and the partial text
    # One error, the one it handled (htmx reports each as htmx:error too).
    assert tab.page.evaluate("window.__htmxErrors") == ["htmx:error", "htmx:sseError"]


def test_htmx2_page_streams_markdown_block_by_block_into_its_own_tail(tab: Tab) -> None:
    # MarkdownFormat(create_tail=False): the pair holds the tail with sse-swap="message"; settled
    # blocks arrive out of band, the growing block as each event's data, the last event removes
    # the tail, and `done` closes the EventSource.
    fake = FakeLLM(delay=0.03)
    expected = fake.text_for(PROMPT)
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + "/htmx2", PROMPT, check="#markdown")
        samples, final = watch_until_end(tab.page, selector)
        tab.page.wait_for_timeout(4500)  # past any reconnect, as in the append test above
        streams = [p for p in demo.counter.paths if "/api/stream/" in p]

    assert final["ends"] == ["close:message"]
    assert final["html"] == MARKDOWN.render(expected)
    # While it streamed, the answer was rendered Markdown (never raw text) and grew.
    assert_grew(samples, final["length"])
    growing = [s["html"] for s in samples if s["length"]]
    assert growing and all(h.startswith("<") for h in growing)
    assert any('class="sse-llm-tail"' in h for h in growing)
    assert len(streams) == 1, streams
    assert [r.reason for r in demo.results] == ["completed"]
    assert_clean(tab)


@pytest.mark.parametrize("markdown", [False, True], ids=["append", "markdown"])
def test_htmx2_page_renders_exactly_when_every_byte_arrives_alone(tab: Tab, markdown: bool) -> None:
    fake = FakeLLM(delay=0)
    expected = fake.text_for(PROMPT)
    with serve_htmx(fake, mounted=False, one_byte=True) as demo:
        check = "#markdown" if markdown else None
        selector = submit(tab.page, demo.base_url + "/htmx2", PROMPT, check=check)
        _, final = watch_until_end(tab.page, selector)

    assert final["html"] == MARKDOWN.render(expected)
    assert_clean(tab)


# -- Django (htmx 4, SQLite) -------------------------------------------------------------------


def db_row(db: Path, message_id: int) -> tuple[str, str]:
    with sqlite3.connect(db) as conn:
        answer, status = conn.execute(
            "select answer, status from chat_message where id = ?", (message_id,)
        ).fetchone()
    return answer, status


def test_django_page_streams_the_markdown_answer_and_saves_it(
    tab: Tab, django_app: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "0.03")  # read by the view at each request
    monkeypatch.delenv("SSE_LLM_FAKE_ANSWER_FILE", raising=False)
    expected = FakeLLM().text_for(PROMPT)
    with serve_django(django_app) as (base_url, db):
        selector = submit(tab.page, base_url + "/", PROMPT)
        samples, final = watch_until_end(tab.page, selector)
        message_id = int(selector.removeprefix("#answer-"))
        saved = db_row(db, message_id)

    assert final["ends"] == ["done:completed"]
    assert final["html"] == MARKDOWN.render(expected)
    assert_grew(samples, final["length"])
    assert samples and all(s["disabled"] for s in samples)
    assert final["disabled"] is False
    assert saved == (expected, "completed")
    assert_clean(tab)


def test_django_page_keeps_the_growing_answer_in_view(
    tab: Tab, django_app: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Auto-scroll without JS: the scroller is column-reverse, so it stays pinned to the bottom
    # while the answer grows past the viewport.
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "0.01")
    monkeypatch.delenv("SSE_LLM_FAKE_ANSWER_FILE", raising=False)
    tab.page.set_viewport_size({"width": 600, "height": 300})  # the answer overflows it
    bottom_gap = """(selector) => {
      const scroller = document.querySelector(".scroller").getBoundingClientRect();
      const answer = document.querySelector(selector).getBoundingClientRect();
      return {gap: scroller.bottom - answer.bottom, overflow:
              document.querySelector(".scroller").scrollHeight > scroller.height};
    }"""
    with serve_django(django_app) as (base_url, _):
        selector = submit(tab.page, base_url + "/", PROMPT)
        seen = []
        deadline = time.monotonic() + DEADLINE
        while not tab.page.evaluate("window.__ends.length"):
            seen.append(tab.page.evaluate(bottom_gap, selector))
            assert time.monotonic() < deadline
            tab.page.wait_for_timeout(50)
        tab.page.wait_for_timeout(300)
        final = tab.page.evaluate(bottom_gap, selector)

    assert final["overflow"], "the answer must overflow the viewport for this test to mean anything"
    # The answer's bottom edge stays visible, at the scroller's bottom: 32 px above it (the
    # scroller's 1rem padding + the pair's 1rem margin), never below it.
    assert 0 <= final["gap"] <= 40, final
    assert all(0 <= s["gap"] <= 40 for s in seen), seen


def test_django_page_shows_hostile_model_output_sanitised(
    tab: Tab,
    django_app: tuple[Any, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    answer_file = tmp_path / "xss.md"
    answer_file.write_text(XSS_ANSWER, encoding="utf-8")
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "0.01")
    monkeypatch.setenv("SSE_LLM_FAKE_ANSWER_FILE", str(answer_file))
    with serve_django(django_app) as (base_url, _db):
        selector = submit(tab.page, base_url + "/", PROMPT)
        _, final = watch_until_end(tab.page, selector)

    assert final["html"] == MARKDOWN.render(XSS_ANSWER)
    assert_clean(tab)


def test_django_page_stop_ends_the_answer_on_the_page_and_saves_it_stopped(
    tab: Tab, django_app: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "0.05")  # ~6 s of answer: Stop lands mid-stream
    monkeypatch.delenv("SSE_LLM_FAKE_ANSWER_FILE", raising=False)
    expected = FakeLLM().text_for(PROMPT)
    with serve_django(django_app) as (base_url, db):
        selector = submit(tab.page, base_url + "/", PROMPT)
        tab.page.wait_for_function(
            "(s) => document.querySelector(s).textContent.length >= 20",
            arg=selector,
            timeout=DEADLINE * 1000,
        )
        tab.page.click("#stop")
        message_id = int(selector.removeprefix("#answer-"))
        for _ in range(200):  # bounded: 10 s
            answer, status = db_row(db, message_id)
            if status != "streaming":
                break
            time.sleep(0.05)
        shown = tab.page.evaluate(
            """(s) => { const el = document.querySelector(s);
                return {html: el.innerHTML, pair: el.parentElement.innerHTML,
                        tails: document.querySelectorAll('.sse-llm-tail').length}; }""",
            selector,
        )

    assert status == "stopped"
    assert answer and len(answer) < len(expected) and expected.startswith(answer)
    assert shown["tails"] == 0
    assert shown["pair"].endswith('</div><p class="sse-llm-stopped">Stopped</p>')
    assert "sse-llm-tail" not in shown["html"] and shown["html"].startswith("<p>")
    assert_clean(tab)


def test_closing_the_django_tab_closes_the_source_and_saves_the_partial_answer(
    browser: Browser, django_app: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSE_LLM_FAKE_DELAY", "0.05")  # ~6 s of answer
    monkeypatch.delenv("SSE_LLM_FAKE_ANSWER_FILE", raising=False)
    expected = FakeLLM().text_for(PROMPT)
    context = browser.new_context()
    try:
        with serve_django(django_app) as (base_url, db):
            page = context.new_page()
            selector = submit(page, base_url + "/", PROMPT)
            page.wait_for_function(
                "(s) => document.querySelector(s).textContent.length >= 20",
                arg=selector,
                timeout=DEADLINE * 1000,
            )
            message_id = int(selector.removeprefix("#answer-"))
            assert db_row(db, message_id)[1] == "streaming"
            page.close()
            closed_at = time.monotonic()
            saved_at = None
            for _ in range(200):  # bounded: 10 s; the claim (1 s) is checked below
                answer, status = db_row(db, message_id)
                if status != "streaming":
                    saved_at = time.monotonic()
                    break
                time.sleep(0.05)
    finally:
        context.close()

    assert saved_at is not None, "the partial answer was never saved"
    assert saved_at - closed_at < 1.0, f"saved {saved_at - closed_at:.2f}s after the tab closed"
    assert status == "stopped"
    assert answer and len(answer) < len(expected) and expected.startswith(answer)


def test_the_htmx_app_writes_every_url_under_its_mount_prefix(tab: Tab) -> None:
    with serve_htmx(FakeLLM(delay=0)) as demo:
        for page_path in ("/", "/htmx2"):
            tab.page.goto(demo.base_url + page_path)
            html = tab.page.content()
            urls = re.findall(r'(?:src|href|hx-post)="(/[^"]*)"', html)
            assert urls and all(u.startswith(PREFIX + "/") for u in urls), urls
    assert_clean(tab)


# -- sources and provider tools ----------------------------------------------------------------

PAGES = {"htmx4": ("/", None), "htmx2": ("/htmx2", None), "htmx2-markdown": ("/htmx2", "#markdown")}
# The answer element's state: its text without the activity line, the line, the sources.
SOURCES_STATE = """(selector) => {
  const el = document.querySelector(selector);
  const lines = [...el.querySelectorAll(".sse-llm-activity")];
  const answer = el.cloneNode(true);
  answer.querySelectorAll(".sse-llm-activity, .sse-llm-sources").forEach((n) => n.remove());
  const links = [...el.querySelectorAll(".sse-llm-sources li")].map((li) => {
    const a = li.querySelector("a");
    return {text: li.textContent, value: li.value, href: a && a.getAttribute("href"),
            rel: a && a.getAttribute("rel"), target: a && a.getAttribute("target")};
  });
  return {
    text: answer.textContent,
    activity: lines.map((n) => n.textContent),
    activityLast: lines.length > 0 && el.lastElementChild === lines[lines.length - 1],
    sources: links,
    ends: window.__ends.slice(),
  };
}"""


def watch_sources(page: Page, selector: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        state: dict[str, Any] = page.evaluate(SOURCES_STATE, selector)
        if state["ends"]:
            break
        samples.append(state)
        assert time.monotonic() < deadline, f"the stream never ended: {state}"
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    final: dict[str, Any] = page.evaluate(SOURCES_STATE, selector)
    return samples, final


@pytest.mark.parametrize("page_kind", list(PAGES))
def test_the_pages_show_a_line_while_the_provider_searches_and_list_the_sources(
    tab: Tab, page_kind: str
) -> None:
    # The search starts mid-answer: the line goes under the growing text and leaves it whole
    # (the htmx 2 Markdown tail swaps every event's main content in).
    first = "# 날씨\n\n서울은 맑고 "
    rest = "따뜻합니다. 🙂\n\n- 최고 24°C\n- 최저 15°C"
    search = ToolActivity(
        "srvtoolu_1", "web_search", "started", "서울 날씨", {"query": "서울 날씨"}
    )
    items = [*tokens_of(first), search, *tokens_of(rest)]
    items += [search.__class__("srvtoolu_1", "web_search", "finished", "3 results")]
    items += list(DEFAULT_SOURCES)
    fake = ItemsLLM(items, tool_delay=1.5)
    path, check = PAGES[page_kind]
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + path, PROMPT, check=check)
        samples, final = watch_sources(tab.page, selector)
        html_now = tab.page.evaluate("(s) => document.querySelector(s).innerHTML", selector)

    shown = [s for s in samples if s["activity"]]
    assert shown, "the activity line never showed"
    assert {tuple(s["activity"]) for s in shown} == {("Searching the web: 서울 날씨…",)}
    assert all(s["activityLast"] for s in shown)  # under the answer, not inside it
    # While the line showed, the answer text stayed (it is a prefix of the answer, never lost).
    streamed = [s["text"] for s in shown if s["text"]]
    assert streamed and all(t.strip() and "서울은 맑고" in t for t in streamed)
    assert final["activity"] == []
    assert final["sources"] == source_links(DEFAULT_SOURCES)
    sources_html = html_now[html_now.index('<nav class="sse-llm-sources"') :]
    assert html_now == MARKDOWN.render(first + rest) + sources_html
    assert_clean(tab)


def ended_answer(page: Page, selector: str) -> dict[str, Any]:
    """The answer at ``selector`` once it ended without its last event (stopped, cut)."""
    state: dict[str, Any] = page.evaluate(
        """(s) => { const el = document.querySelector(s);
            return {html: el.innerHTML, text: el.innerText, pair: el.parentElement.innerHTML,
                    tails: document.querySelectorAll('.sse-llm-tail').length,
                    disabled: document.querySelector('#chat-form fieldset').disabled}; }""",
        selector,
    )
    return state


def ask_again(page: Page, fake: ItemsLLM, answer: str) -> list[str]:
    """Send a second question on the same page, ``fake`` answering ``answer``; the inner HTML
    of every answer on the page once it ended."""
    fake.items = tokens_of(answer)
    page.fill("#chat-form textarea", "또")
    page.click("#send")
    page.wait_for_function(
        "() => window.__ends.length > 0 && !document.querySelector('.sse-llm-tail')",
        timeout=DEADLINE * 1000,
    )
    answers: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('.answer')].map((a) => a.innerHTML)"
    )
    return answers


def test_htmx4_stop_during_a_search_ends_the_answer_on_the_page(tab: Tab) -> None:
    # No last event comes after a Stop: the page removes the "Searching…" line (the tool will
    # not finish), unwraps the tail and says the answer was stopped; the next answer streams
    # into a tail of its own.
    first = "# 날씨\n\n서울은 맑고 "
    search = ToolActivity("srvtoolu_1", "web_search", "started", "서울 날씨", {"query": "서울"})
    fake = ItemsLLM([*tokens_of(first), search, "따뜻합니다."], tool_delay=20.0)
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + "/", PROMPT)
        tab.page.wait_for_selector(f"{selector} .sse-llm-activity", timeout=DEADLINE * 1000)
        tab.page.click("#stop")
        assert demo.completed.wait(DEADLINE), "the completion hook never ran"
        tab.page.wait_for_function(
            "() => !document.querySelector('#chat-form fieldset').disabled",
            timeout=DEADLINE * 1000,
        )
        stopped = ended_answer(tab.page, selector)
        demo.completed.clear()
        first_html, second_html = ask_again(tab.page, fake, "두 번째 답입니다.")
        assert demo.completed.wait(DEADLINE), "the second answer's hook never ran"

    assert [r.reason for r in demo.results] == ["disconnected", "completed"]
    assert "sse-llm-activity" not in stopped["html"] and "Searching" not in stopped["text"]
    assert stopped["tails"] == 0
    assert stopped["html"] == MARKDOWN.render(first)
    assert stopped["pair"].endswith('</div><p class="sse-llm-stopped">Stopped</p>')
    assert stopped["pair"].count("sse-llm-stopped") == 1
    assert first_html == stopped["html"]  # the next answer left it alone
    assert second_html == MARKDOWN.render("두 번째 답입니다.")
    assert_clean(tab)


def test_htmx4_page_ends_an_answer_cut_by_a_lost_connection(tab: Tab) -> None:
    # Found by reading hx-sse: a cut hx-post stream is not sent again (right: this answer
    # cannot be resumed), but no `done` came, so the tail and any "Searching…" line stayed on
    # the page as if the answer were still coming. The page now ends it with a message, as the
    # htmx 2 page does, and the next question streams under it.
    first = "# 날씨\n\n서울은 맑고 "
    search = ToolActivity("srvtoolu_1", "web_search", "started", "서울 날씨", {"query": "서울"})
    fake = ItemsLLM([*tokens_of(first), search, "따뜻합니다."], tool_delay=1.0)
    # The connection drops right after the search line went out.
    cut = lambda app: CutStreams(app, after=b"sse-llm-activity", streams="/api/chat")  # noqa: E731
    with serve_htmx(fake, wrap=cut) as demo:
        selector = submit(tab.page, demo.base_url + "/", PROMPT)
        tab.page.wait_for_selector(f"{selector} .sse-llm-error", timeout=DEADLINE * 1000)
        tab.page.wait_for_timeout(1500)  # a POST sent again would come within this
        lost = ended_answer(tab.page, selector)
        posts = [p for p in demo.counter.paths if p.endswith("/api/chat")]
        errors = tab.page.evaluate("window.__htmxErrors")
        first_html, second_html = ask_again(tab.page, fake, "두 번째 답입니다.")

    message = '<p class="sse-llm-error" role="alert">The connection was lost. Please ask again.</p>'
    assert len(posts) == 1, posts
    assert errors == ["htmx:sse:error"]  # the cut, seen once
    assert lost["tails"] == 0 and not lost["disabled"]
    assert "sse-llm-activity" not in lost["html"] and "Searching" not in lost["text"]
    assert lost["html"] == MARKDOWN.render(first) + message  # what came, then the message
    assert first_html == lost["html"]  # the next answer left it alone
    assert second_html == MARKDOWN.render("두 번째 답입니다.")
    # Chromium's line for the cut response, then htmx's own for the error event: no other.
    assert len(tab.errors) == 2, tab.errors
    assert "net::ERR_INCOMPLETE_CHUNKED_ENCODING" in tab.errors[0]
    assert tab.errors[1].startswith("htmx: htmx:sse:error: network error")
    assert tab.page.evaluate("window.__unsafe") == []


class RefuseChats:
    """ASGI middleware (around the app given to :meth:`wrap`): while ``refusing``, the chat
    POST gets a proxy's 502 page."""

    app: Any

    def __init__(self) -> None:
        self.refusing = True

    def wrap(self, app: Any) -> RefuseChats:
        self.app = app
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refusing and scope["type"] == "http" and scope["path"].endswith("/api/chat"):
            await PlainTextResponse("<h1>502 Bad Gateway</h1>", status_code=502)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("failure", ["http-502", "unreachable"])
def test_htmx4_page_says_when_a_question_got_no_answer(tab: Tab, failure: str) -> None:
    # Found by trying it: a POST answered with an HTTP error (a proxy's 502, a rate limit) or
    # that never reached the server showed nothing at all: htmx swaps the body into a tail
    # that does not exist. The page now says the request failed, and the next one works.
    refuse = RefuseChats()
    fake = ItemsLLM(tokens_of("답입니다."))
    with serve_htmx(fake, wrap=refuse.wrap) as demo:
        page = tab.page
        page.goto(demo.base_url + "/")
        if failure == "unreachable":
            refuse.refusing = False
            page.route("**/api/chat", lambda route: route.abort("connectionrefused"))
        page.fill("#chat-form textarea", "안녕")
        page.click("#send")
        page.wait_for_selector("#messages .sse-llm-error", timeout=DEADLINE * 1000)
        page.wait_for_function("() => !document.querySelector('#chat-form fieldset').disabled")
        shown = page.evaluate("() => document.querySelector('#messages').innerHTML")
        refuse.refusing = False
        page.unroute("**/api/chat")
        (second,) = ask_again(page, fake, "두 번째 답입니다.")
        after = page.evaluate("() => document.querySelector('#messages').innerHTML")

    expected = {
        "http-502": "The request failed (HTTP 502). Please ask again.",
        "unreachable": "The server could not be reached. Please ask again.",
    }[failure]
    assert shown == f'<p class="sse-llm-error" role="alert">{expected}</p>'
    assert second == MARKDOWN.render("두 번째 답입니다.")
    assert after.startswith(shown) and after.count("sse-llm-error") == 1
    assert [r.reason for r in demo.results] == ["completed"]
    assert page.evaluate("window.__unsafe") == []


def tokens_of(text: str) -> list[str]:
    from sse_llm.testing import tokenize

    return tokenize(text)


@pytest.mark.parametrize("page_kind", list(PAGES))
def test_hostile_sources_and_tool_activity_stay_inert_text(tab: Tab, page_kind: str) -> None:
    items = [HOSTILE_ACTIVITY[0], HOSTILE_ACTIVITY[1], "답변", HOSTILE_ACTIVITY[2]]
    items += [HOSTILE_ACTIVITY[3], *HOSTILE_SOURCES]
    fake = ItemsLLM(items, tool_delay=0.5)
    path, check = PAGES[page_kind]
    with serve_htmx(fake) as demo:
        selector = submit(tab.page, demo.base_url + path, PROMPT, check=check)
        samples, final = watch_sources(tab.page, selector)
        tab.page.hover(selector + " .sse-llm-sources")  # an onmouseover, had one survived
        tab.page.wait_for_timeout(200)

    lines = {line for s in samples for line in s["activity"]}
    assert lines == {
        'Searching the web: <img src=x onerror="window.__xss=21">…',
        "Running <script>window.__xss=22</script>: x…",
    }
    sources = final["sources"]
    assert len(sources) == len(HOSTILE_SOURCES)
    hrefs = [s["href"] for s in sources if s["href"] is not None]
    assert [h.split('"')[0] for h in hrefs] == [
        "https://title.example/",
        "https://long.example/",
        "https://quote.example/",
    ]
    assert sources[0] == {
        "text": "Click for the source",
        "value": 1,
        "href": None,
        "rel": None,
        "target": None,
    }
    assert sources[1]["text"] == (
        '<img src=x onerror="window.__xss=12"><script>window.__xss=13</script> HTML title'
    )
    long_title = sources[2]["text"]
    assert long_title.startswith("<b>Very</b> long title,") and long_title.endswith("…")
    assert len(long_title) <= 121
    assert sources[5]["text"] == "JAVASCRIPT:window.__xss=16"
    assert_clean(tab)  # no dialog, window.__xss unset, no unsafe node or href ever inserted
