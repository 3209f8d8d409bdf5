"""The demo apps (examples/*) served by a real server, read by httpx.

The examples are single files, not a package, so they are loaded from their paths. Each
example also runs from its own declared dependencies (its PEP 723 header, or Django's
requirements.txt) in a brand-new virtualenv, started the way the README says.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from sse_llm import StreamResult
from sse_llm.client import iter_events
from sse_llm.testing import DEFAULT_ANSWER, FakeLLM, tokenize

from .support.fixtures import FIXTURES, expected
from .support.plugin import ReplayServer
from .support.servers import free_port, run_uvicorn
from .support.venvs import from_wheel, make_venv, requirement_lines, script_dependencies

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROMPT = "한국어로 인사해 줘 🙂"
TIMEOUT = httpx.Timeout(30.0)  # generous: a shared 2-core machine


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>/app.py`` under a unique module name (both files are app.py)."""
    module_name = f"sse_llm_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: pydantic and FastAPI resolve the module's annotations
    # through sys.modules.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def read_stream(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> list[tuple[str, Any]]:
    """Every event of one response as (event name, parsed JSON data)."""
    with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return [
            (event.event or "message", json.loads(event.data)) for event in iter_events(response)
        ]


def answer_text(events: list[tuple[str, Any]]) -> str:
    return "".join(data["text"] for name, data in events if name == "delta")


@pytest.fixture(scope="module")
def fastapi_demo() -> ModuleType:
    return load_example("fastapi")


@pytest.fixture(scope="module")
def starlette_demo() -> ModuleType:
    return load_example("starlette")


@pytest.fixture
def fast_fake_server(fastapi_demo: ModuleType) -> Iterator[str]:
    """The FastAPI demo with a fake model that does not wait between tokens."""
    app = fastapi_demo.create_app(fake=FakeLLM(delay=0), env={})
    with run_uvicorn(app) as base_url:
        yield base_url


@pytest.mark.parametrize("name", ["fastapi", "starlette"])
def test_demo_serves_the_shared_chat_page_and_script(name: str) -> None:
    app = load_example(name).app
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<form id="chat-form">' in page.text
        assert 'src="static/chat.js"' in page.text
        script = client.get("/static/chat.js")
        assert script.status_code == 200
        assert "function createSSEParser" in script.text
        # Every script the page loads is served: a 404 would leave the answer's Markdown unrendered.
        sources = re.findall(r'<script[^>]*\bsrc="([^"]+)"', page.text)
        assert "static/vendor/marked/marked.umd.js" in sources
        for src in sources:
            assert client.get("/" + src).status_code == 200, src
        # No CDN or other remote resource: the page must work offline.
        assert "http://" not in page.text and "https://" not in page.text


@pytest.mark.parametrize("name", ["fastapi", "starlette"])
def test_demo_streams_the_fake_answer_over_post_with_korean_intact(name: str) -> None:
    # The module-level app, exactly as `uvicorn --app-dir examples/<name> app:app` serves it.
    app = load_example(name).app
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        events = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    assert answer_text(events) == DEFAULT_ANSWER.replace("{prompt}", PROMPT)
    # One event per token: the answer really streams, it is not sent in one piece.
    deltas = [data for event, data in events if event == "delta"]
    assert len(deltas) == len(tokenize(DEFAULT_ANSWER.replace("{prompt}", PROMPT)))
    assert events[-1] == (
        "done",
        {"finish_reason": "stop", "raw_finish_reason": None, "usage": None},
    )


@pytest.mark.parametrize("name", ["fastapi", "starlette"])
def test_demo_streams_the_same_answer_over_get_for_eventsource(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_example(name)
    if name == "fastapi":
        app = demo.create_app(fake=FakeLLM(delay=0), env={})
    else:
        app = demo.app
        monkeypatch.setattr(demo.llm, "delay", 0)  # the minimal demo's one module-level model
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        events = read_stream(client, "GET", "/api/chat", params={"prompt": PROMPT})
    assert answer_text(events) == DEFAULT_ANSWER.replace("{prompt}", PROMPT)
    assert events[-1][0] == "done"


@pytest.mark.parametrize("name", ["fastapi", "starlette"])
@pytest.mark.parametrize("body", [{"prompt": ""}, {"prompt": "x" * 4001}, {"question": "hi"}])
def test_demo_rejects_a_missing_empty_or_huge_prompt_before_streaming(
    name: str, body: dict[str, str]
) -> None:
    app = load_example(name).app
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        response = client.post("/api/chat", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"


def test_fastapi_demo_decorator_endpoint_streams_the_prompt_back(fast_fake_server: str) -> None:
    with httpx.Client(base_url=fast_fake_server, timeout=TIMEOUT) as client:
        events = read_stream(client, "GET", "/api/echo", params={"prompt": "안녕 하세요 🙂"})
        assert answer_text(events) == "안녕 하세요 🙂"
        assert events[-1][0] == "done"
        # FastAPI still validates the decorated view's parameters.
        assert client.get("/api/echo", params={"prompt": "x" * 4001}).status_code == 422


def test_fastapi_demo_endpoint_streams_the_fake_answer(fast_fake_server: str) -> None:
    with httpx.Client(base_url=fast_fake_server, timeout=TIMEOUT) as client:
        events = read_stream(client, "GET", "/api/endpoint", params={"prompt": PROMPT})
        assert answer_text(events) == DEFAULT_ANSWER.replace("{prompt}", PROMPT)
        assert events[-1][0] == "done"
        assert client.put("/api/endpoint").status_code == 405


def test_fastapi_demo_calls_the_completion_hook_with_the_whole_answer(
    fastapi_demo: ModuleType,
) -> None:
    results: list[StreamResult] = []
    app = fastapi_demo.create_app(fake=FakeLLM(delay=0), env={}, on_complete=results.append)
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    [result] = results
    assert result.reason == "completed"
    assert result.text == DEFAULT_ANSWER.replace("{prompt}", PROMPT)


OPENAI_RECORDINGS = [
    "openai-chat/langchaingo-gpt-basic-usage.sse",
    "openai-chat/openrouter-annotations-comments-emoji.sse",
    "openai-chat/perplexity-crlf-no-done.sse",
]


@pytest.mark.parametrize("recording", OPENAI_RECORDINGS)
def test_fastapi_demo_restreams_an_openai_compatible_server_when_configured(
    fastapi_demo: ModuleType, replay_server: ReplayServer, recording: str
) -> None:
    oracle = expected(FIXTURES / recording)
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": replay_server.base_url + "/v1",
        "SSE_LLM_MODEL": recording,  # the replay server picks the recording by model name
    }
    app = fastapi_demo.create_app(env=env)
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        events = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    assert answer_text(events) == oracle.text
    name, done = events[-1]
    assert name == "done"
    assert done["finish_reason"] == oracle.finish_reason
    if oracle.usage is not None:
        assert done["usage"]["input_tokens"] == oracle.usage["input_tokens"]
        assert done["usage"]["output_tokens"] == oracle.usage["output_tokens"]
    # What the demo asked upstream: the user's prompt, streaming with usage.
    request = next(r for r in reversed(replay_server.app.requests) if r.file == recording)
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["messages"] == [{"role": "user", "content": PROMPT}]
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


def test_fastapi_demo_reads_the_environment_at_each_request(
    fastapi_demo: ModuleType, replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = "openai-chat/langchaingo-gpt-basic-usage.sse"
    app = fastapi_demo.create_app(fake=FakeLLM(delay=0))  # env=None: os.environ
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        fake = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
        assert answer_text(fake) == DEFAULT_ANSWER.replace("{prompt}", PROMPT)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", replay_server.base_url + "/v1")
        monkeypatch.setenv("SSE_LLM_MODEL", recording)
        real = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    assert answer_text(real) == expected(FIXTURES / recording).text


def test_fastapi_demo_turns_an_upstream_refusal_into_an_error_event(
    fastapi_demo: ModuleType, replay_server: ReplayServer
) -> None:
    results: list[StreamResult] = []
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": replay_server.base_url + "/v1",
        "SSE_LLM_MODEL": "openai-chat/no-such-recording.sse",  # the replay server answers 404
    }
    app = fastapi_demo.create_app(env=env, on_complete=results.append)
    with run_uvicorn(app) as base_url, httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        events = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    # The stream's one and last event. A 404 (an unknown model) is the server's own
    # configuration: the page is told so without the provider's words, the hook gets them.
    [(name, data)] = events
    assert name == "error"
    assert data["message"] == "The model provider refused the server's request (HTTP status 404)."
    [result] = results
    assert result.reason == "error"
    assert "no recording 'openai-chat/no-such-recording.sse'" in str(result.error)


# -- each example from its own declared dependencies, in a brand-new virtualenv ----------------


#: Examples that are not their folder's app.py.
SCRIPTS = {"fastapi-resumable": EXAMPLES / "fastapi" / "resumable.py"}


def declared_requirements(name: str) -> list[str]:
    """What the example says it needs: its PEP 723 header, or (Django) requirements.txt."""
    if name in SCRIPTS:
        return script_dependencies(SCRIPTS[name])
    folder = EXAMPLES / name
    if (folder / "requirements.txt").exists():
        return requirement_lines(folder / "requirements.txt")
    return script_dependencies(folder / "app.py")


@contextmanager
def serve(command: list[str], cwd: Path, env: dict[str, str], probe: str) -> Iterator[None]:
    """Run a server command until ``probe`` answers; stop it afterwards."""
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise AssertionError(f"{command} exited:\n{server.communicate()[0]}")
            try:
                httpx.get(probe, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{command} did not start"
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def ask_json_events(base: str) -> str:
    """POST /api/chat (the shared page's request); the answer's text, checked to be complete."""
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        events = read_stream(client, "POST", "/api/chat", json={"prompt": PROMPT})
    assert events[-1][0] == "done"
    return answer_text(events)


def ask_flask(base: str) -> str:
    with (
        httpx.Client(base_url=base, timeout=TIMEOUT) as client,
        client.stream("POST", "/api/chat", json={"prompt": PROMPT}) as response,
    ):
        assert response.status_code == 200
        data = [e.data for e in iter_events(response)]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert events[-1]["type"] == "done"
    return "".join(e["delta"] for e in events if e["type"] == "delta")


def ask_websocket(base: str) -> str:
    from websockets.sync.client import connect

    text = ""
    with connect(base.replace("http://", "ws://") + "/ws", open_timeout=30) as socket_:
        socket_.send(json.dumps({"prompt": PROMPT, "request_id": "a1"}))
        while True:
            message = json.loads(socket_.recv(timeout=30))
            if message["type"] == "delta":
                text += message["text"]
            elif message["type"] != "start":
                assert message["type"] == "done", message
                return text


def ask_resumable(base: str) -> str:
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        stream_id = client.post("/api/chat", json={"prompt": PROMPT}).json()["stream_id"]
        with client.stream("GET", f"/api/streams/{stream_id}") as response:
            assert response.status_code == 200
            events = [(e.event, json.loads(e.data)) for e in iter_events(response)]
    assert events[-1][0] == "done"
    return answer_text(events)


def ask_django(base: str) -> str:
    with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        page = client.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None, page.text
        data = {"prompt": PROMPT, "csrfmiddlewaretoken": token.group(1)}
        with client.stream("POST", "/send", data=data) as response:
            assert response.status_code == 200, response.read()
            events = list(iter_events(response))
    assert (events[-1].event, events[-1].data) == ("done", "completed")
    return "".join(e.data for e in events)


def uvicorn_app(folder: str, app: str) -> list[str]:
    return ["uvicorn", "--app-dir", str(EXAMPLES / folder), app]


# (command inside the venv's bin/, working directory, how to ask, what the answer contains)
EXAMPLE_RUNS: dict[str, list[tuple[list[str], Path | None, Callable[[str], str]]]] = {
    "fastapi": [(uvicorn_app("fastapi", "app:app"), None, ask_json_events)],
    "fastapi-resumable": [(uvicorn_app("fastapi", "resumable:app"), None, ask_resumable)],
    "starlette": [(uvicorn_app("starlette", "app:app"), None, ask_json_events)],
    "flask": [(["flask", "--app", str(EXAMPLES / "flask" / "app.py"), "run"], None, ask_flask)],
    "websocket": [(uvicorn_app("websocket", "app:app"), None, ask_websocket)],
    "django": [
        (["python", "manage.py", "runserver", "--noreload"], EXAMPLES / "django", ask_django),
        (uvicorn_app("django", "chatproject.asgi:application"), None, ask_django),
    ],
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_RUNS))
def test_each_example_runs_with_only_its_declared_dependencies(
    name: str, sse_llm_wheel: Path, tmp_path: Path
) -> None:
    requirements = declared_requirements(name)
    assert any(r.startswith("sse-llm") for r in requirements), requirements
    bin_dir = make_venv(tmp_path / "venv", from_wheel(requirements, sse_llm_wheel))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SSE_LLM_"))}
    env |= {"CHAT_DB": str(tmp_path / "chat.sqlite3"), "PATH": f"{bin_dir}:{env['PATH']}"}
    expected_text = DEFAULT_ANSWER.replace("{prompt}", PROMPT)
    for command, cwd, ask in EXAMPLE_RUNS[name]:
        port = free_port()
        if command[0] == "python":  # Django's runserver takes the address as an argument
            argv = [str(bin_dir / "python"), *command[1:3], f"127.0.0.1:{port}", *command[3:]]
        else:
            argv = [str(bin_dir / command[0]), *command[1:], "--host", "127.0.0.1"]
            argv += ["--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        with serve(argv, cwd or tmp_path, env, base + "/"):
            answer = ask(base)
        if name == "django":  # sanitised Markdown fragments: look for plain words
            assert "sse-llm" in answer and "감사합니다" in answer
        else:
            assert answer == expected_text
