"""Every code block of docs/protocols.md runs, as a user would paste it.

Each provider example is executed in a fresh namespace and its ``chat`` endpoint served by a
real uvicorn; the provider SDK (or httpx) talks to the replay server, which answers for the
model names the examples use with the shared recordings that cite or run tools. The only
change to a snippet is the provider host it names, pointed at the replay server (the SDKs'
own ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` do that for the others). The stream the
endpoint sends, read with ``httpx-sse``, must carry exactly the sources and provider-tool
activity the independent oracle reads in the recording. The LangChain example gets its
``chat_model`` (which the page builds in a comment) from a real ``BaseChatModel`` subclass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from starlette.applications import Starlette
from starlette.routing import Route

from .support.fixtures import FIXTURES, Activity, Source, expected
from .support.replay import ReplayApp
from .support.servers import run_uvicorn
from .support.snippets import DOCS, Snippet, snippets_of

PAGE = DOCS / "protocols.md"
SNIPPETS = {s.name: s for s in snippets_of(PAGE)}
#: The recordings that answer for the model names of the examples.
MODELS = {
    "gpt-4o-search-preview": "openai-chat/openrouter-annotations-comments-emoji.sse",
    "gpt-4.1": "openai-responses/pydantic-web-search-annotations.sse",
    "claude-sonnet-4-6": "anthropic/pydantic-code-execution-emoji.sse",
    "gemini-2.5-flash": "gemini/pydantic-web-search-grounding.sse",
    "sonar": "openai-chat/perplexity-crlf-no-done.sse",
}
EXAMPLES = {
    "protocols-openai-chat": "gpt-4o-search-preview",
    "protocols-openai-responses": "gpt-4.1",
    "protocols-anthropic": "claude-sonnet-4-6",
    "protocols-gemini": "gemini-2.5-flash",
    "protocols-perplexity": "sonar",
}
HOSTS = {
    "https://api.perplexity.ai": "{replay}/v1",
    "https://generativelanguage.googleapis.com": "{replay}",
}


class DocsReplay(ReplayApp):
    def __init__(self) -> None:
        super().__init__(FIXTURES)

    def _resolve(self, selector: str | None, default_dir: str) -> Path | None:
        return super()._resolve(MODELS.get(selector or "", selector), default_dir)


@pytest.fixture(scope="module")
def replay() -> Iterator[str]:
    with run_uvicorn(DocsReplay()) as base_url:
        yield base_url


class CitingChatModel(BaseChatModel):
    """A chat model that streams LangChain's standard blocks: a web search the provider ran,
    and an answer citing a page."""

    @property
    def _llm_type(self) -> str:
        return "citing-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError  # streaming only

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        call = {"type": "server_tool_call", "id": "srvtoolu_1", "name": "web_search"}
        result = {"type": "server_tool_result", "tool_call_id": "srvtoolu_1", "status": "success"}
        citation = {
            "type": "citation",
            "url": "https://wetter.example/seoul",
            "title": "서울 날씨",
            "start_index": 0,
            "end_index": 6,
            "cited_text": "맑음",
        }
        blocks: list[list[dict[str, Any]]] = [
            [{**call, "args": {"query": "서울 날씨"}, "index": 0}],
            [{**result, "output": [{"url": "https://wetter.example/seoul"}], "index": 1}],
            [{"type": "text", "text": "서울은 맑음", "index": 2, "annotations": [citation]}],
        ]
        for content in blocks:
            yield ChatGenerationChunk(message=AIMessageChunk(content=content))  # type: ignore[arg-type]


LANGCHAIN_SOURCES = [
    Source("url", "https://wetter.example/seoul", "서울 날씨", cited_text="맑음", start=0, end=6)
]
LANGCHAIN_ACTIVITY = [
    Activity("srvtoolu_1", "web_search", "started", "서울 날씨"),
    Activity("srvtoolu_1", "web_search", "finished", "1 result"),
]


def test_every_block_of_the_page_has_a_check() -> None:
    blocks = snippets_of(PAGE)
    assert blocks, "docs/protocols.md has no code blocks"
    assert [b.name for b in blocks if b.name is None] == []
    assert {b.name for b in blocks} == {*EXAMPLES, "protocols-langchain"}


@contextmanager
def serve(snippet: Snippet, replay: str, **names: Any) -> Iterator[str]:
    """The snippet's ``chat`` endpoint on a real uvicorn; its clients closed at shutdown."""
    code = snippet.code
    for host, target in HOSTS.items():
        code = code.replace(host, target.format(replay=replay))
    namespace: dict[str, Any] = {"__name__": "snippet", **names}
    exec(compile(code, f"{PAGE}:{snippet.line}", "exec"), namespace)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for value in list(namespace.values()):  # the snippet's SDK / httpx clients
            close = getattr(value, "aclose", None) or getattr(value, "close", None)
            if close is not None and type(value).__module__.split(".")[0] in (
                "openai",
                "anthropic",
                "httpx",
            ):
                await close()

    app = Starlette(routes=[Route("/chat", namespace["chat"])], lifespan=lifespan)
    with run_uvicorn(app) as base_url:
        yield base_url


async def read(base_url: str) -> list[tuple[str, Any]]:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        httpx_sse.aconnect_sse(client, "GET", base_url + "/chat?q=hi") as source,
    ):
        assert source.response.status_code == 200
        return [(e.event, json.loads(e.data)) async for e in source.aiter_sse()]


def sources_and_activity(events: list[tuple[str, Any]]) -> tuple[list[Source], list[Activity]]:
    sources = [
        Source(
            d["kind"],
            d["url"],
            d["title"],
            d["document_id"],
            d["container_id"],
            d["cited_text"],
            d["start"],
            d["end"],
            d["index"],
        )
        for name, d in events
        if name == "source"
    ]
    activity = [
        Activity(d["id"], d["name"], d["status"], d["summary"])
        for name, d in events
        if name == "tool_activity"
    ]
    return sources, activity


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(EXAMPLES))
async def test_a_provider_example_streams_the_recordings_sources_and_activity(
    name: str, replay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "PERPLEXITY_API_KEY"):
        monkeypatch.setenv(key, "test")
    monkeypatch.setenv("OPENAI_BASE_URL", replay + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", replay)
    want = expected(FIXTURES / MODELS[EXAMPLES[name]])
    assert want.citations or want.tool_activities
    with serve(SNIPPETS[name], replay) as base_url:
        events = await read(base_url)
    sources, activity = sources_and_activity(events)
    assert sources == want.citations
    assert activity == [a._replace(input=None) for a in want.tool_activities]
    assert "".join(d["text"] for n, d in events if n == "delta") == want.text
    assert events[-1][0] == "done"
    assert events[-1][1]["raw_finish_reason"] == want.finish_reason


@pytest.mark.anyio
async def test_the_langchain_example_streams_the_models_sources_and_activity(replay: str) -> None:
    snippet = SNIPPETS["protocols-langchain"]
    with serve(snippet, replay, chat_model=CitingChatModel()) as base_url:
        events = await read(base_url)
    sources, activity = sources_and_activity(events)
    assert sources == LANGCHAIN_SOURCES
    assert activity == LANGCHAIN_ACTIVITY
    assert events[-1][0] == "done"
