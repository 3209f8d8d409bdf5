"""Input that used to lose text, read by real clients from a real uvicorn: Chromium's
``EventSource`` and httpx-sse (and the sans-IO engine where the point is the fragment)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import httpx_sse
import pytest
from sse_starlette import ServerSentEvent as StarletteEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sse_llm import ServerSentEvent, SSEDecoder, StreamEngine, StreamResult, TextFormat
from sse_llm.html import HTMLAppendFormat
from sse_llm.starlette import SSEResponse
from tests.support.results import Results
from tests.support.servers import run_uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SPLIT_EMOJI = ["before ", "\ud83d", "\ude00 after"]  # a UTF-16 pair cut between two chunks
LONE = ["before ", "\ud83d", " after"]  # half a pair, then something else

PAGE = """<!doctype html><meta charset="utf-8"><script>
window.got = []; window.done = false;
const source = new EventSource(location.search.slice(1));
source.onmessage = (e) => window.got.push(e.data);
source.addEventListener("done", () => { window.done = true; source.close(); });
source.onerror = () => { window.done = true; source.close(); };
</script>"""

#: The hook's results per stream name; a test puts a fresh collector in before it reads.
results: dict[str, Results] = {}


def source_of(name: str) -> Any:
    return {
        "split-emoji": SPLIT_EMOJI,
        "lone": LONE,
        "no-data": [
            {"id": "5"},
            {"event": "ping"},
            StarletteEvent(id="6"),
            StarletteEvent(event="pong"),
            {"data": "real"},
        ],
    }[name]


async def stream(request: Request) -> SSEResponse:
    return SSEResponse(
        source_of(request.path_params["name"]),
        format=TextFormat(),
        on_complete=results.setdefault(request.path_params["name"], Results()),
    )


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


APP = Starlette(routes=[Route("/stream/{name}", stream), Route("/", page)])


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_uvicorn(APP) as url:
        yield url


def read_with_httpx_sse(url: str) -> list[tuple[str, str]]:
    with httpx.Client(timeout=10) as client, httpx_sse.connect_sse(client, "GET", url) as source:
        return [(event.event, event.data) for event in source.iter_sse()]


def test_a_surrogate_pair_split_between_chunks_arrives_whole(base_url: str) -> None:
    hook = results["split-emoji"] = Results()
    events = read_with_httpx_sse(f"{base_url}/stream/split-emoji")
    assert "".join(data for name, data in events if name == "message") == "before 😀 after"
    assert events[-1][0] == "done"
    result: StreamResult = hook.wait(5)
    assert (result.reason, result.text) == ("completed", "before 😀 after")


def test_a_lone_surrogate_becomes_u_fffd_and_nothing_after_it_is_lost(base_url: str) -> None:
    hook = results["lone"] = Results()
    events = read_with_httpx_sse(f"{base_url}/stream/lone")
    assert "".join(data for name, data in events if name == "message") == "before \ufffd after"
    assert events[-1] == ("done", json.dumps({"finish_reason": "stop"}, separators=(",", ":")))
    assert hook.wait(5).text == "before \ufffd after"


def test_events_with_no_data_dispatch_nothing_as_under_sse_starlette(base_url: str) -> None:
    # The spec's dispatch rule (WHATWG HTML §9.2.6: an empty data buffer dispatches nothing),
    # as Chromium applies it below; httpx-sse 0.4 dispatches such events with empty data,
    # under sse-starlette alike.
    body = httpx.get(f"{base_url}/stream/no-data", timeout=10).content
    decoder = SSEDecoder()
    events = [item for item in decoder.feed(body) if isinstance(item, ServerSentEvent)]
    assert [(e.event, e.data) for e in events][:-1] == [("message", "real")]
    assert events[-1].event == "done"
    assert decoder.last_event_id == "6"  # an id alone still sets the last event id


@pytest.mark.browser
@pytest.mark.parametrize(
    ("name", "text"),
    [("split-emoji", "before 😀 after"), ("lone", "before \ufffd after"), ("no-data", "real")],
)
def test_chromium_event_source_gets_the_same(
    browser: Browser, base_url: str, name: str, text: str
) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(f"{base_url}/?/stream/{name}")
        tab.wait_for_function("window.done", timeout=10_000)
        assert "".join(tab.evaluate("window.got")) == text
    finally:
        context.close()


def test_html_append_joins_a_crlf_split_between_tokens() -> None:
    # A tokenizer may cut a CRLF in two: the page must not show an extra blank line while the
    # answer streams (TextFormat already handled this cut).
    engine = StreamEngine(HTMLAppendFormat(interval=0))
    first = engine.feed("첫 줄\r")
    second = engine.feed("\n둘째 줄")
    assert first == "data: 첫 줄\n\n".encode()
    assert second == "data: &#10;둘째 줄\n\n".encode()
