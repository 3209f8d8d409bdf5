"""The demo apps (examples/fastapi, examples/starlette) served by a real uvicorn, read by httpx.

The examples are single files, not a package, so they are loaded from their paths.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
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
from .support.servers import run_uvicorn

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


def test_fastapi_demo_mounted_endpoint_streams_the_fake_answer(fast_fake_server: str) -> None:
    with httpx.Client(base_url=fast_fake_server, timeout=TIMEOUT) as client:
        events = read_stream(client, "GET", "/api/mounted/", params={"prompt": PROMPT})
        assert answer_text(events) == DEFAULT_ANSWER.replace("{prompt}", PROMPT)
        assert events[-1][0] == "done"
        assert client.put("/api/mounted/").status_code == 405


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
    # The provider's own message reaches the page, as the stream's one and last event.
    [(name, data)] = events
    assert name == "error"
    assert "no recording 'openai-chat/no-such-recording.sse'" in data["message"]
    [result] = results
    assert result.reason == "error"
