"""Every code block of README.md and of the docs pages runs, as a user would paste it.

Each block is announced by ``<!-- snippet: NAME -->`` (see ``tests/support/snippets.py``) and
checked below under that name: Python is executed (in a fresh namespace that supplies only what
the snippet assumes: an ``app``, ``llm``, ``save``, a ``Prompt`` model) and its routes are
called, over a real uvicorn where a provider SDK talks to the replay server; JavaScript and the
htmx pages run in headless Chromium; shell commands must name real Makefile targets, extras and
tools. A block without a marker, or a marker without a check, fails.
"""

from __future__ import annotations

import html.parser
import json
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from sse_llm import GracefulShutdown, ServerSentEvent, SSEDecoder, StreamResult, result_json
from sse_llm.client import iter_events
from sse_llm.fastapi import SSEResponse, SSERoute
from sse_llm.html import MarkdownRenderer
from sse_llm.testing import FakeLLM, run_stream

from .support.fixtures import FIXTURES, expected
from .support.servers import run_uvicorn
from .support.snippets import (
    MODELS,
    ROOT,
    ReadmeReplay,
    Snippet,
    all_snippets,
    extras,
    snippets_of,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

T = TypeVar("T")
SNIPPETS = all_snippets()
PROMPT = "한국어로 인사해 줘 🙂"
VENDOR = ROOT / "examples" / "_vendor" / "htmx"
TOOLS = {"pip", "uvicorn", "curl", "make", "python", "flask", "gunicorn"}


# -- what the snippets assume --------------------------------------------------------------------


class Prompt(BaseModel):
    prompt: str


class Saved(list[StreamResult]):
    """``save``: the completion hook the snippets pass; keeps what it was given."""

    def __call__(self, result: StreamResult) -> None:
        self.append(result)


def namespace(**names: Any) -> dict[str, Any]:
    return {"__name__": "snippet", "llm": FakeLLM(delay=0), "save": Saved(), **names}


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.router.route_class = SSERoute
    return app


def run(code: str, ns: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, "<snippet>", "exec"), ns)
    return ns


def in_a_thread(func: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(func)`` in a thread of its own: once Playwright's sync API has run in this
    thread, it keeps an event loop here and a second one cannot start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, func).result(timeout=60)


def stream(app: Any, path: str, **kwargs: Any) -> Any:
    return in_a_thread(lambda: run_stream(app, path, timeout=20, **kwargs))


def delta_text(events: list[ServerSentEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")


@pytest.fixture(scope="module")
def readme_replay() -> Iterator[tuple[ReadmeReplay, str]]:
    app = ReadmeReplay()
    with run_uvicorn(app) as base_url:
        yield app, base_url


# -- the checks, by snippet name ------------------------------------------------------------------

CHECKS: dict[str, Callable[..., None]] = {}


def check(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(func: Callable[..., None]) -> Callable[..., None]:
        for name in names:
            CHECKS[name] = func
        return func

    return register


@check("quickstart-app")
def check_quickstart_app(
    snippet: Snippet, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay, base = request.getfixturevalue("readme_replay")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", base + "/v1")
    app = run(snippet.code, {"__name__": "app"})["app"]
    oracle = expected(FIXTURES / MODELS["gpt-4o-mini"])
    with run_uvicorn(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        with client.stream("POST", "/chat", json={"prompt": PROMPT}) as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            events = list(iter_events(response))
        schema = client.get("/openapi.json").json()
    assert delta_text(events) == oracle.text
    done = json.loads(events[-1].data)
    assert events[-1].event == "done"
    # The provider sends usage only when asked (stream_options), as OpenAI does.
    assert done["usage"] is not None
    assert done["usage"]["input_tokens"] == oracle.usage["input_tokens"]  # type: ignore[index]
    sent = next(r for r in reversed(replay.requests) if r.path == "/v1/chat/completions")
    assert sent.body["messages"] == [{"role": "user", "content": PROMPT}]
    content = schema["paths"]["/chat"]["post"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]


@check("decorator")
def check_decorator(snippet: Snippet) -> None:
    app = run(snippet.code, namespace(app=fastapi_app()))["app"]
    response = stream(app, "/echo?prompt=one two 셋")
    assert delta_text(response.events) == "one two 셋 "
    content = app.openapi()["paths"]["/echo"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]


@check("endpoint")
def check_endpoint(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace(app=fastapi_app()))
    ok = stream(ns["app"], "/ask?q=hi")
    assert ok.status == 200 and delta_text(ok.events) == ns["llm"].text_for("hi")
    missing = stream(ns["app"], "/ask")
    assert (missing.status, missing.body) == (400, b"ask with ?q=your question")


def chat_page_app(llm: FakeLLM) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse('<!doctype html><meta charset="utf-8"><div id="answer"></div>')

    async def chat(request: Request) -> Response:
        return SSEResponse(llm.stream(request.query_params["prompt"]))

    return Starlette(routes=[Route("/", page), Route("/chat", chat)])


@check("eventsource")
def check_eventsource(snippet: Snippet, request: pytest.FixtureRequest) -> None:
    browser: Browser = request.getfixturevalue("browser")
    llm = FakeLLM(delay=0.005)
    with run_uvicorn(chat_page_app(llm)) as url:
        page = browser.new_page()
        try:
            page.goto(url + "/")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.add_script_tag(
                content="const prompt = " + json.dumps(PROMPT) + ";\n"
                "const answer = document.getElementById('answer');\n"
                "function showError(message) { window.__error = message; }\n" + snippet.code
            )
            page.wait_for_function(
                "(want) => answer.textContent === want", arg=llm.text_for(PROMPT), timeout=20_000
            )
            page.wait_for_timeout(300)  # after done: no reconnect, no error
            assert page.evaluate("window.__error") is None
            assert errors == []
        finally:
            page.close()


@check("anthropic")
def check_anthropic(snippet: Snippet, request: pytest.FixtureRequest) -> None:
    import anthropic

    _, base = request.getfixturevalue("readme_replay")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    # The snippet makes its own client, as pasted: it reads these.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", base)
    ns = namespace(app=fastapi_app(), Prompt=Prompt, SSEResponse=SSEResponse)
    app = run(snippet.code, ns)["app"]
    assert isinstance(ns["anthropic_client"], anthropic.AsyncAnthropic)
    oracle = expected(FIXTURES / MODELS["claude-sonnet-4-6"])
    with (
        run_uvicorn(app) as url,
        httpx.Client(base_url=url, timeout=20) as http,
        http.stream("POST", "/claude", json={"prompt": PROMPT}) as response,
    ):
        events = list(iter_events(response))
    assert delta_text(events) == oracle.text
    reasoning = "".join(json.loads(e.data)["text"] for e in events if e.event == "reasoning")
    assert reasoning == oracle.reasoning
    assert events[-1].event == "done"


@check("flask")
def check_flask(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace())
    response = ns["app"].test_client().post("/chat", json={"prompt": PROMPT})
    body = b"".join(response.response)
    events = [i for i in SSEDecoder().feed(body) if type(i) is ServerSentEvent]
    assert delta_text(events) == ns["llm"].text_for(PROMPT)
    assert events[-1].event == "done"


def websocket_answer(app: Any, path: str) -> str:
    text = ""
    with TestClient(app) as client, client.websocket_connect(path) as socket:
        socket.send_json({"prompt": PROMPT})
        while (message := socket.receive_json())["type"] != "done":
            assert message["type"] in ("start", "delta"), message
            text += message.get("text", "")
    return text


@check("websocket")
def check_websocket(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace(app=FastAPI()))
    assert websocket_answer(ns["app"], "/ws") == ns["llm"].text_for(PROMPT)


@check("websocket-endpoint")
def check_websocket_endpoint(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace(app=FastAPI()))
    assert websocket_answer(ns["app"], "/chat") == ns["llm"].text_for(PROMPT)


@check("graceful-asgi")
def check_graceful_asgi(snippet: Snippet) -> None:
    inner = fastapi_app()

    @inner.get("/chat")
    async def chat() -> SSEResponse:
        return SSEResponse(FakeLLM(delay=0.05).stream())

    app = run(snippet.code, namespace(app=inner))["app"]
    assert isinstance(app, GracefulShutdown)

    async def stop_mid_answer() -> Any:
        response: Any = None
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                nonlocal response
                response = await run_stream(app, "/chat", timeout=10)

            tg.start_soon(read)
            await anyio.sleep(0.3)
            app.trigger()  # what SIGTERM does, once the handler is in front
        return response

    response = in_a_thread(stop_mid_answer)
    assert response.complete
    assert response.events[-1].event == "error"
    assert json.loads(response.events[-1].data)["code"] == "shutdown"
    assert delta_text(response.events)  # the partial answer came first


@check("graceful-flask")
def check_graceful_flask(snippet: Snippet) -> None:
    import flask

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ns = run(snippet.code, namespace(app=flask.Flask(__name__)))
        shutdown = ns["app"].extensions["sse_llm"].shutdown
        assert isinstance(shutdown, GracefulShutdown)
        assert signal.getsignal(signal.SIGTERM) == shutdown._handle  # chained in front
        assert not shutdown.is_set()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@check("collect")
def check_collect(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace(app=fastapi_app(), Prompt=Prompt))

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=ns["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/chat/complete", json={"prompt": PROMPT})

    response = in_a_thread(post)
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == ns["llm"].text_for(PROMPT)
    assert body["finish_reason"] == "stop" and body["error"] is None
    assert [r.reason for r in ns["save"]] == ["completed"]


@check("collect-flask")
def check_collect_flask(snippet: Snippet) -> None:
    ns = run(snippet.code, namespace())
    client = ns["app"].test_client()
    with ThreadPoolExecutor(1) as pool:  # a thread with no event loop, as a WSGI server's
        response = pool.submit(client.post, "/chat/complete", json={"prompt": PROMPT}).result()
    assert response.status_code == 200
    assert response.get_json()["text"] == ns["llm"].text_for(PROMPT)


@check("result-json-shape")
def check_result_json_shape(snippet: Snippet) -> None:
    keys = set(re.findall(r'"(\w+)":', snippet.code))
    assert set(result_json(StreamResult())) <= keys


def run_pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    """Plain pytest in ``folder``: no conftest of this repository, no options of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


@check("testing", "testing-flask")
def check_testing(snippet: Snippet, tmp_path: Path) -> None:
    (tmp_path / "test_chat.py").write_text(snippet.code, encoding="utf-8")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d passed\b", result.stdout), result.stdout
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F", "test_chat.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout  # no unused import, no undefined name


@check("testing-backends")
def check_testing_backends(snippet: Snippet, tmp_path: Path) -> None:
    [testing] = [s for s in snippets_of(snippet.file) if s.name == "testing"]
    (tmp_path / "test_chat.py").write_text(testing.code, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(snippet.code, encoding="utf-8")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b1 passed\b", result.stdout), result.stdout  # asyncio only


@check("starlette-app")
def check_starlette_app(snippet: Snippet) -> None:
    ns = run(snippet.code, {"__name__": "app"})
    app, llm = ns["app"], ns["llm"]
    llm.delay = 0
    assert delta_text(stream(app, "/chat?q=hi").events) == llm.text_for("hi")
    assert delta_text(stream(app, "/shout?q=hi").events) == llm.text_for("hi").upper()
    assert delta_text(stream(app, "/ask?q=hi").events) == llm.text_for("hi")
    missing = stream(app, "/ask")
    assert (missing.status, missing.body) == (400, b"missing request parameter 'q'")


@check("fastapi-app")
def check_fastapi_app(snippet: Snippet) -> None:
    ns = run(snippet.code, {"__name__": "app"})
    app, llm = ns["app"], ns["llm"]
    llm.delay = 0
    chat = stream(
        app,
        "/chat",
        method="POST",
        headers={"content-type": "application/json"},
        body=json.dumps({"prompt": "hi"}).encode(),
    )
    assert delta_text(chat.events) == llm.text_for("kim: hi")
    events = stream(app, "/events?q=hi", headers={"Last-Event-ID": "7"})
    typed = [json.loads(e.data) for e in events.events if e.data != "[DONE]"]
    assert "".join(e["delta"] for e in typed if e["type"] == "delta") == llm.text_for("hi")
    assert delta_text(stream(app, "/plain?q=hi").events) == llm.text_for("hi")
    paths = app.openapi()["paths"]
    assert list(paths["/chat"]["post"]["responses"]["200"]["content"]) == ["text/event-stream"]
    assert list(paths["/plain"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    variants = paths["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    assert {"session", "delta", "done", "[DONE]"} <= {
        v["title"] for v in variants["itemSchema"]["oneOf"]
    }


DJANGO_RUNNER = """
import json, sys
import django
from django.conf import settings

sys.path.insert(0, {folder!r})
settings.configure(ROOT_URLCONF="snippet_urls", ALLOWED_HOSTS=["*"], SECRET_KEY="x")
django.setup()

import anyio
from django.core.asgi import get_asgi_application
from sse_llm.testing import run_stream

async def main():
    app = get_asgi_application()
    chat = await run_stream(app, "/chat", method="POST", body=b"prompt=hi",
                            headers={{"content-type": "application/x-www-form-urlencoded"}})
    echo = await run_stream(app, "/echo?prompt=hi")
    import snippet_views
    print(json.dumps({{
        "chat": [[e.event, e.data] for e in chat.events],
        "echo": [[e.event, e.data] for e in echo.events],
        "saved": [r.reason for r in snippet_views.saved],
    }}))

anyio.run(main)
"""


@check("django-views")
def check_django_views(snippet: Snippet, tmp_path: Path) -> None:
    # Django is configured once per process: the snippet runs in a process of its own.
    preamble = textwrap.dedent(
        """
        from sse_llm.testing import FakeLLM

        llm = FakeLLM(delay=0)
        saved = []
        save = saved.append
        """
    )
    (tmp_path / "snippet_views.py").write_text(preamble + snippet.code, encoding="utf-8")
    (tmp_path / "snippet_urls.py").write_text(
        "from django.urls import path\nfrom snippet_views import chat, echo\n"
        'urlpatterns = [path("chat", chat), path("echo", echo)]\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_RUNNER.format(folder=str(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    text = FakeLLM().text_for("hi")
    for name in ("chat", "echo"):
        events = out[name]
        assert "".join(json.loads(d)["text"] for e, d in events if e == "delta") == text
        assert events[-1][0] == "done"
    assert out["saved"] == ["completed"]


@check("django-settings")
def check_django_settings(snippet: Snippet) -> None:
    import importlib.util

    ns = run(snippet.code, {})
    assert ns["INSTALLED_APPS"][0] == "daphne"
    assert importlib.util.find_spec("daphne") is not None
    assert ns["ASGI_APPLICATION"].endswith(".asgi.application")


class _Parser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "link", "br", "input"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def parse_html(code: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Parser()
    parser.feed(code)
    parser.close()
    assert parser.open == [], f"unclosed: {parser.open}"
    return parser.tags


@check("htmx2-append", "htmx2-markdown")
def check_htmx2(snippet: Snippet) -> None:
    tags = parse_html(snippet.code)
    for _tag, attrs in tags:
        for name in ("src",):
            if name in attrs:
                assert (VENDOR / str(attrs[name]).removeprefix("/static/")).is_file()
    connect = [a for _, a in tags if "sse-connect" in a]
    assert connect and all(a.get("sse-close") == "done" for a in connect)
    assert any(a.get("sse-swap") == "message" for _, a in tags)
    ids = {a["id"] for _, a in tags if a.get("id")}
    assert "answer-42" in ids


@check("htmx4-page")
def check_htmx4_page(snippet: Snippet) -> None:
    tags = parse_html(snippet.code)
    for _, attrs in tags:
        if "src" in attrs:
            assert (VENDOR / str(attrs["src"]).removeprefix("/static/")).is_file()
    [form] = [a for t, a in tags if t == "form"]
    assert form["hx-post"] == "/chat"


@check("htmx4-fastapi")
def check_htmx4_fastapi(snippet: Snippet, request: pytest.FixtureRequest) -> None:
    """The htmx 4 page and its FastAPI view, in Chromium: two questions, and the first answer
    is still on the page, complete, after the second."""
    browser: Browser = request.getfixturevalue("browser")
    [page_html] = [s.code for s in snippets_of(snippet.file) if s.name == "htmx4-page"]
    llm = FakeLLM(delay=0.005)
    ns = run(snippet.code, namespace(llm=llm))
    app: FastAPI = ns["app"]

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><meta charset="utf-8"><body>{page_html}</body>')

    app.mount("/static", StaticFiles(directory=VENDOR))
    markdown = MarkdownRenderer()
    with run_uvicorn(app) as url:
        tab = browser.new_page()
        try:
            tab.goto(url + "/")
            for n, prompt in enumerate(["첫 질문", "second <question>"], start=1):
                tab.fill("textarea", prompt)
                tab.click("button")
                tab.wait_for_function(
                    "(n) => document.querySelector('#answer-' + n) &&"
                    " !document.querySelector('#answer-' + n + '-tail') &&"
                    " !document.querySelector('fieldset').disabled",
                    arg=n,
                    timeout=30_000,
                )
            answers = tab.evaluate(
                "() => [...document.querySelectorAll('.answer')].map((a) => a.innerHTML)"
            )
            prompts = tab.evaluate(
                "() => [...document.querySelectorAll('.prompt')].map((p) => p.textContent)"
            )
        finally:
            tab.close()
    assert prompts == ["첫 질문", "second <question>"]
    assert answers == [
        markdown.render(llm.text_for("첫 질문")),
        markdown.render(llm.text_for("second <question>")),
    ]
    assert [r.reason for r in ns["save"]] == ["completed", "completed"]


@check("resume-fastapi")
def check_resume(snippet: Snippet) -> None:
    llm = FakeLLM("one two three four five six seven eight", delay=0.05)
    ns = run(snippet.code, namespace(llm=llm))
    with run_uvicorn(ns["app"], lifespan="on") as url, httpx.Client(timeout=20) as client:
        events: list[ServerSentEvent] = []
        with client.stream("GET", url + "/chat", params={"q": "hi"}) as response:
            decoder = SSEDecoder()
            for chunk in response.iter_raw():
                events += [i for i in decoder.feed(chunk) if type(i) is ServerSentEvent]
                if len(events) >= 2:
                    break  # the browser goes away
        last_id = events[1].id
        assert last_id
        with client.stream(
            "GET", url + "/chat", params={"q": "hi"}, headers={"Last-Event-ID": last_id}
        ) as response:
            rest = list(iter_events(response))
        stream_id = last_id.rpartition("-")[0]
        stopped = client.post(f"{url}/chat/{stream_id}/stop").json()
    assert delta_text(events[:2] + rest) == llm.text_for("hi")
    assert rest[-1].event == "done"
    assert stopped == {"stopped": False}  # it had finished


def check_shell_line(line: str) -> None:
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)  # VAR=value before the command
    if not words:
        return
    assert words[0] in TOOLS, f"unknown command {words[0]!r} in {line!r}"
    if words[0] == "make":
        makefile = (ROOT / "Makefile").read_text("utf-8")
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make {target}"
    if words[0] == "pip":
        for word in words:
            match = re.fullmatch(r"sse-llm\[([\w,]+)\]", word)
            if match:
                assert set(match.group(1).split(",")) <= extras(), word


@check("quickstart-shell", "starlette-run", "django-run", "flask-run", "demos", "development")
def check_shell(snippet: Snippet) -> None:
    assert snippet.lang == "bash"
    for line in snippet.code.splitlines():
        check_shell_line(line)


# -- the tests -------------------------------------------------------------------------------------


def test_every_code_block_is_marked_with_a_checked_snippet_name() -> None:
    assert SNIPPETS, "no code blocks found"
    unmarked = [s.id for s in SNIPPETS if s.name is None]
    assert unmarked == [], "add <!-- snippet: NAME --> before these blocks"
    unknown = sorted({s.name for s in SNIPPETS if s.name not in CHECKS})
    assert unknown == [], "no check for these snippet names"


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.name], ids=lambda s: s.id)
def test_snippet_runs_as_pasted(
    snippet: Snippet,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_ = CHECKS[str(snippet.name)]
    wanted = check_.__code__.co_varnames[: check_.__code__.co_argcount]
    available = {"request": request, "tmp_path": tmp_path, "monkeypatch": monkeypatch}
    check_(snippet, **{name: available[name] for name in wanted if name in available})


def test_readme_links_are_absolute_for_the_package_index() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links
    relative = [link for link in links if not link.startswith(("https://", "mailto:"))]
    assert relative == [], "PyPI shows the README without the repository: use absolute links"


def test_readme_names_the_docs_site_and_the_project_urls_agree() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    urls = config["project"]["urls"]
    text = (ROOT / "README.md").read_text("utf-8")
    assert urls["Documentation"] in text
    mkdocs = (ROOT / "mkdocs.yml").read_text("utf-8")
    assert f"site_url: {urls['Documentation']}" in mkdocs
    assert f"repo_url: {urls['Source']}" in mkdocs
