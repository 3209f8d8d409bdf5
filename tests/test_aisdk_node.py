"""AISDKFormat read by the real Vercel AI SDK in Node.

sse-llm runs under a real uvicorn; ``tests/node/read-ui-stream.mjs`` fetches the stream and
reads it with the ``ai`` package's own reader (``parseJsonEventStream`` over
``uiMessageChunkSchema``, then ``readUIMessageStream``: what ``useChat``'s default transport
does) and prints the final ``UIMessage``. Recorded provider streams go through the replay
server and the real ``openai`` SDK first, and the Node side must get exactly what the
independent oracle reads in the recording.

Sources and tools the provider runs itself: every shared recording that carries citations or
provider-run tools is read by its own SDK (``openai``, ``anthropic``) or httpx +
:mod:`sse_llm.sources` (Gemini), re-streamed as ``AISDKFormat``, and the reader's message must
hold exactly the oracle's distinct sources as ``source-url`` parts and its activities as tool
parts with ``providerExecuted: true``; hostile sources and a document source are checked too.

The ``ai`` package (version pinned in tests/node/package-lock.json) is installed with
``npm ci`` into tests/node/node_modules when it is missing, with the other versions the format
supports under aliases (``ai-5``, ``ai-5.0.91``, ``ai-7``): every kind of stream must build
the same message in each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sse_llm import Citation, ErrorEvent, StreamResult, ToolActivity
from sse_llm.formats import AISDKFormat
from sse_llm.starlette import SSEResponse
from sse_llm.testing import FakeLLM

from .support.fixtures import (
    Activity,
    Source,
    all_fixture_files,
    expected,
    fixture_files,
    fixture_id,
)
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn
from .support.xss import HOSTILE_SOURCES
from .test_providers import CHUNK, SOURCES

NODE_DIR = Path(__file__).resolve().parent / "node"
READER = NODE_DIR / "read-ui-stream.mjs"
NPM_TIMEOUT = 300  # seconds, for a cold `npm ci`
READ_TIMEOUT = 60  # seconds, for one Node run (startup included)
SAFE_ERROR = "The answer could not be completed because of an internal error."
# The AI SDK's finishReason for each raw OpenAI finish_reason in the recordings.
AISDK_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls"}
# The aliases tests/node/package.json installs beside the pinned ai 6, and whether that reader
# takes a finish part with finishReason (ai 5.0.0-5.0.91 validate it with a strict schema).
OTHER_READERS = {"ai-5": True, "ai-5.0.91": False, "ai-7": True}


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` binary, with the ``ai`` package installed in tests/node."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed (Debian: apt-get install nodejs npm)")
    packages = ["ai", *OTHER_READERS]
    if not all((NODE_DIR / "node_modules" / p / "package.json").is_file() for p in packages):
        done = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


def aisdk(request: Request) -> AISDKFormat:
    """AISDKFormat, without ``finishReason`` when the query has ``finish_reason=0``."""
    return AISDKFormat(finish_reason=request.query_params.get("finish_reason") != "0")


class App:
    """sse-llm endpoints streaming AISDKFormat: the fake model, recordings, failures."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fake = FakeLLM(delay=0.002)
        self.results: list[StreamResult] = []

    async def fake_stream(self, request: Request) -> SSEResponse:
        prompt = request.query_params.get("prompt", "")
        fail_after = request.query_params.get("fail_after")
        llm = FakeLLM(delay=0.002, fail_after=int(fail_after) if fail_after else None)
        return SSEResponse(llm.stream(prompt), format=aisdk(request))

    async def replay(self, request: Request) -> SSEResponse:
        """The recording named by ``?model=<format>/<file>``, through the openai SDK."""
        upstream = openai.AsyncOpenAI(
            base_url=self.upstream + "/v1", api_key="test", max_retries=0, timeout=10
        )
        stream = await upstream.chat.completions.create(
            model=request.query_params["model"],
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )

        async def done(result: StreamResult) -> None:
            await upstream.close()
            self.results.append(result)

        return SSEResponse(stream, format=aisdk(request), on_complete=done)

    async def any_provider(self, request: Request) -> SSEResponse:
        """The recording ``?file=<format>/<file>`` through its own SDK (or httpx +
        sse_llm.sources)."""
        file = request.query_params["file"]
        headers = {"x-replay-file": file, "x-replay-chunk": CHUNK}
        source = SOURCES[file.split("/")[0]](self.upstream, file, headers)
        return SSEResponse(source, format=aisdk(request))

    async def cited(self, request: Request) -> SSEResponse:
        """The fake model with hostile sources, a document, and a failed provider tool."""

        async def source() -> Any:
            yield ToolActivity("srvtoolu_1", "code_execution", "started", None, {"code": "1/0"})
            yield ToolActivity("srvtoolu_1", "code_execution", "failed", "execution_time_exceeded")
            yield "See the chart."
            for citation in HOSTILE_SOURCES:
                yield citation
            yield Citation("file", title="chart.png", document_id="cfile_1", container_id="c_1")

        return SSEResponse(source(), format=aisdk(request))

    async def provider_error(self, request: Request) -> SSEResponse:
        async def source() -> Any:
            yield "partial "
            yield ErrorEvent("Rate limit reached for requests", "rate_limit_exceeded")

        return SSEResponse(source(), format=aisdk(request))


@pytest.fixture(scope="module")
def server(replay_server: ReplayServer) -> Iterator[tuple[App, str]]:
    app = App(replay_server.base_url)
    routes = [
        Route("/fake", app.fake_stream),
        Route("/replay", app.replay),
        Route("/provider-error", app.provider_error),
        Route("/any", app.any_provider),
        Route("/cited", app.cited),
    ]
    with run_uvicorn(Starlette(routes=routes)) as base_url:
        yield app, base_url


def read_ui_stream(node: str, url: str, package: str = "ai") -> dict[str, Any]:
    """What the AI SDK's reader made of the stream at ``url`` (see read-ui-stream.mjs), read
    with ``package`` (an alias in tests/node/package.json for another version)."""
    done = subprocess.run(
        [node, str(READER), url],
        capture_output=True,
        text=True,
        timeout=READ_TIMEOUT,
        cwd=NODE_DIR,
        env={**os.environ, "AI_PACKAGE": package},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def _parts(out: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in out["message"]["parts"] if p["type"] == kind]


def _tool_calls(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in out["message"]["parts"] if p["type"].startswith("tool-")]


def test_ai_sdk_reads_fake_model_text(node: str, server: tuple[App, str]) -> None:
    app, base_url = server
    out = read_ui_stream(node, f"{base_url}/fake?prompt=%ED%95%9C%EA%B5%AD%EC%96%B4")
    assert out["status"] == 200
    assert out["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    assert out["invalid"] == [] and out["errors"] == []
    assert out["chunks"][:3] == ["start", "start-step", "text-start"]
    assert out["chunks"][-3:] == ["text-end", "finish-step", "finish"]
    assert out["finishReason"] == "stop"
    [text] = _parts(out, "text")
    assert text == {"type": "text", "text": app.fake.text_for("한국어"), "state": "done"}
    assert out["message"]["role"] == "assistant"
    assert out["message"]["id"].startswith("msg-")


def test_ai_sdk_reads_recorded_reasoning(
    node: str, server: tuple[App, str], replay_server: ReplayServer
) -> None:
    _, base_url = server
    path = next(
        p for p in fixture_files("openai-chat") if p.name == "deepseek-reasoning-content.sse"
    )
    want = expected(path)
    out = read_ui_stream(node, f"{base_url}/replay?model={fixture_id(path)}")
    assert out["invalid"] == [] and out["errors"] == []
    [reasoning] = _parts(out, "reasoning")
    assert reasoning["text"] == want.reasoning and reasoning["state"] == "done"
    [text] = _parts(out, "text")
    assert text["text"] == want.text
    # The model reasons first, then answers: the parts keep that order.
    kinds = [p["type"] for p in out["message"]["parts"]]
    assert kinds == ["step-start", "reasoning", "text"]
    assert out["finishReason"] == "stop"


def test_ai_sdk_reads_recorded_parallel_tool_calls(node: str, server: tuple[App, str]) -> None:
    _, base_url = server
    name = "magentic-gpt4o-parallel-tool-calls.sse"
    path = next(p for p in fixture_files("openai-chat") if p.name == name)
    want = expected(path)
    out = read_ui_stream(node, f"{base_url}/replay?model={fixture_id(path)}")
    assert out["invalid"] == [] and out["errors"] == []
    calls = [
        (p["toolCallId"], p["type"].removeprefix("tool-"), p["input"]) for p in _tool_calls(out)
    ]
    assert calls == want.tool_calls
    assert {p["state"] for p in _tool_calls(out)} == {"input-available"}
    assert out["chunks"].count("tool-input-start") == 2
    assert "tool-input-delta" in out["chunks"]  # arguments streamed, not only sent whole
    assert out["finishReason"] == "tool-calls"


@pytest.mark.parametrize(
    "path", fixture_files("openai-chat") + fixture_files("mistral"), ids=fixture_id
)
def test_ai_sdk_reads_every_recorded_chat_stream_exactly(
    path: Path, node: str, server: tuple[App, str]
) -> None:
    _, base_url = server
    want = expected(path)
    out = read_ui_stream(node, f"{base_url}/replay?model={fixture_id(path)}")
    assert out["invalid"] == [] and out["errors"] == []
    assert "".join(p["text"] for p in _parts(out, "text")) == want.text
    assert "".join(p["text"] for p in _parts(out, "reasoning")) == want.reasoning
    calls = [
        (p["toolCallId"], p["type"].removeprefix("tool-"), p["input"]) for p in _tool_calls(out)
    ]
    assert calls == want.tool_calls
    assert want.finish_reason is not None
    assert out["finishReason"] == AISDK_FINISH[want.finish_reason]


def test_ai_sdk_reports_a_failed_stream_as_an_error(node: str, server: tuple[App, str]) -> None:
    _, base_url = server
    out = read_ui_stream(node, f"{base_url}/fake?prompt=x&fail_after=3")
    assert out["invalid"] == []
    assert out["errors"] == [SAFE_ERROR]  # readUIMessageStream's onError got the errorText
    assert "hunter2" not in json.dumps(out)
    [text] = _parts(out, "text")
    assert text["state"] == "done" and text["text"]  # the part was closed before the error
    assert out["finishReason"] == "error"


def test_ai_sdk_gets_the_provider_error_message(node: str, server: tuple[App, str]) -> None:
    _, base_url = server
    out = read_ui_stream(node, f"{base_url}/provider-error")
    assert out["invalid"] == []
    assert out["errors"] == ["Rate limit reached for requests"]
    [text] = _parts(out, "text")
    assert text["text"] == "partial "


# -- sources and provider-executed tools ----------------------------------------------------

CITING = [p for p in all_fixture_files() if expected(p).citations or expected(p).tool_activities]


def distinct(sources: list[Source]) -> list[Source]:
    """The oracle's citations, each source once (the AI SDK's source parts have no span)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for s in sources:
        key = (s.kind, s.url, s.document_id, s.container_id, s.number)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def expected_tool_parts(activities: list[Activity]) -> list[dict[str, Any]]:
    """What the reader's message should hold for the oracle's activities: one tool part per
    provider tool, in the order they began, in the state of their last event."""
    parts: dict[str, dict[str, Any]] = {}
    for a in activities:
        part = parts.setdefault(
            a.id,
            {
                "type": f"tool-{a.name}",
                "toolCallId": a.id,
                "state": "input-available",
                "input": {},
                "providerExecuted": True,
            },
        )
        if a.input and not part["input"]:
            part["input"] = a.input
        if a.status == "finished":
            part["state"] = "output-available"
            part["output"] = {} if a.summary is None else {"summary": a.summary}
        elif a.status == "failed":
            part["state"] = "output-error"
            part["errorText"] = a.summary
    return list(parts.values())


@pytest.mark.parametrize("path", CITING, ids=fixture_id)
def test_ai_sdk_reads_the_recorded_sources_and_provider_executed_tools(
    path: Path, node: str, server: tuple[App, str]
) -> None:
    _, base_url = server
    want = expected(path)
    out = read_ui_stream(node, f"{base_url}/any?file={fixture_id(path)}")
    assert out["invalid"] == [] and out["errors"] == []
    sources = [p for p in out["message"]["parts"] if p["type"].startswith("source-")]
    assert [(p["type"], p["url"], p.get("title")) for p in sources] == [
        ("source-url", s.url, s.title) for s in distinct(want.citations)
    ]
    assert len({p["sourceId"] for p in sources}) == len(sources)
    numbers = [(p.get("providerMetadata") or {}).get("sseLlm", {}).get("index") for p in sources]
    assert numbers == [s.number for s in distinct(want.citations)]
    tools = [
        {k: v for k, v in p.items() if k not in ("title", "providerMetadata", "toolMetadata")}
        for p in _tool_calls(out)
    ]
    assert tools == expected_tool_parts(want.tool_activities)
    assert "".join(p["text"] for p in _parts(out, "text")) == want.text


def test_ai_sdk_reads_hostile_sources_as_data_and_a_failed_provider_tool(
    node: str, server: tuple[App, str]
) -> None:
    _, base_url = server
    out = read_ui_stream(node, f"{base_url}/cited")
    assert out["invalid"] == [] and out["errors"] == []
    parts = out["message"]["parts"]
    [tool] = _tool_calls(out)
    assert tool["type"] == "tool-code_execution" and tool["providerExecuted"] is True
    assert tool["state"] == "output-error" and tool["errorText"] == "execution_time_exceeded"
    assert tool["input"] == {"code": "1/0"}
    urls = [(p["url"], p.get("title")) for p in parts if p["type"] == "source-url"]
    # Data, as the provider gave it: escaping and link checks are the UI's (the AI SDK's own
    # source parts are the same).
    assert urls == [(c.url, c.title) for c in HOSTILE_SOURCES if c.kind == "url"]
    hostile_document, document = [p for p in parts if p["type"] == "source-document"]
    assert hostile_document["title"] == "<i>doc</i>"
    assert document["mediaType"] == "image/png"
    assert document["title"] == document["filename"] == "chart.png"
    metadata = {"documentId": "cfile_1", "containerId": "c_1"}
    assert document["providerMetadata"] == {"sseLlm": metadata}
    kinds = [p["type"] for p in parts]
    assert kinds.index("tool-code_execution") < kinds.index("text")  # in the order they came


# -- the other versions of the reader ---------------------------------------------------------

# What an older reader leaves out of the message it builds: ai 5.0.91 keeps no part id on a
# reasoning part (the pinned reader keeps the stream's).
NOT_KEPT = {"ai-5.0.91": {"reasoning": {"id"}}}


def as_kept_by(package: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    left_out = NOT_KEPT.get(package, {})
    return [{k: v for k, v in p.items() if k not in left_out.get(p["type"], ())} for p in parts]


def every_kind_of_stream() -> list[str]:
    """Paths covering every part AISDKFormat writes: text, reasoning, tool calls, sources,
    provider-run tools (finished and failed), a failed stream and a provider error."""
    chat = {p.name: p for p in fixture_files("openai-chat")}
    return [
        "/fake?prompt=%ED%95%9C%EA%B5%AD%EC%96%B4",
        "/fake?prompt=x&fail_after=3",
        "/provider-error?",
        "/cited?",
        f"/replay?model={fixture_id(chat['deepseek-reasoning-content.sse'])}",
        f"/replay?model={fixture_id(chat['magentic-gpt4o-parallel-tool-calls.sse'])}",
        *(f"/any?file={fixture_id(p)}" for p in CITING),
    ]


@pytest.mark.parametrize("package", list(OTHER_READERS))
def test_every_supported_ai_version_builds_the_same_message(
    package: str, node: str, server: tuple[App, str]
) -> None:
    _, base_url = server
    takes_finish_reason = OTHER_READERS[package]
    for path in every_kind_of_stream():
        url = base_url + path + ("" if takes_finish_reason else "&finish_reason=0")
        pinned = read_ui_stream(node, url)
        other = read_ui_stream(node, url, package)
        assert other["invalid"] == [] == pinned["invalid"], path
        assert other["errors"] == pinned["errors"], path
        assert other["chunks"] == pinned["chunks"], path
        assert other["message"]["parts"] == as_kept_by(package, pinned["message"]["parts"]), path
        assert other["finishReason"] == pinned["finishReason"], path
        assert (pinned["finishReason"] is not None) == takes_finish_reason, path


def test_finish_reason_off_is_what_readers_before_ai_5_0_92_need(
    node: str, server: tuple[App, str]
) -> None:
    _, base_url = server
    refused = read_ui_stream(node, f"{base_url}/fake?prompt=x", "ai-5.0.91")
    [invalid] = refused["invalid"]
    assert '"finishReason":"stop"' in invalid and "Unrecognized key" in invalid
    read = read_ui_stream(node, f"{base_url}/fake?prompt=x&finish_reason=0", "ai-5.0.91")
    assert read["invalid"] == [] and read["errors"] == []
    assert read["chunks"][-1] == "finish" and read["finishReason"] is None
