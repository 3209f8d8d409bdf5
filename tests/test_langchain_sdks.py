"""LangChain chat models as sources, with their real SDKs underneath, over the replay server:
``ChatAnthropic`` and ``ChatOpenAI`` (Chat Completions and ``use_responses_api=True``).

LangChain re-raises the SDKs' errors as subclasses of its own, so a provider's error must
still reach the stream with the provider's message; the Responses API's finish (its
``status`` and ``incomplete_details``) must read as it does from the raw recording; and
``astream_events()`` is refused with a hint."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sse_llm import StreamResult, collect, result_json
from sse_llm.client import iter_events
from sse_llm.sources import sse_json
from sse_llm.starlette import SSEResponse

from .support.fixtures import FIXTURES, expected
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn

pytestmark = pytest.mark.anyio
MESSAGES = [("user", "hi")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def model(kind: str, base_url: str, recording: str, **headers: str) -> Any:
    headers = {"x-replay-file": recording} | headers
    # The clients' connection pools: langchain-anthropic keeps one per base URL and timeout
    # for the process, bound to the event loop of the test that made it (a timeout of this
    # module's own keeps tests/test_providers.py's apart); langchain-openai takes one.
    if kind == "anthropic":
        return ChatAnthropic(
            model="test", base_url=base_url, api_key="test", max_retries=0, max_tokens=256,
            default_headers=headers, default_request_timeout=17.0,
        )  # fmt: skip
    return ChatOpenAI(
        model="test", base_url=base_url + "/v1", api_key="test", max_retries=0,
        use_responses_api=kind == "responses", default_headers=headers,
        http_async_client=httpx.AsyncClient(),
    )  # fmt: skip


RECORDING = {
    "anthropic": "anthropic/llm-emoji-after-tool.sse",
    "chat": "openai-chat/azure-gpt41mini-content-filter-emoji.sse",
    "responses": "openai-responses/dd-text-emoji.sse",
}


@pytest.mark.parametrize("kind", sorted(RECORDING))
async def test_a_provider_error_through_langchain_keeps_the_providers_message(
    kind: str, replay_server: ReplayServer
) -> None:
    # Found in review: langchain-openai and langchain-anthropic re-raise the SDK's error as a
    # subclass from their own module (OpenAIRateLimitError ...): it was the generic message.
    chat = model(kind, replay_server.base_url, RECORDING[kind], **{"x-replay-status": "429"})
    result = await collect(chat.astream(MESSAGES))
    assert result.reason == "error"
    assert result_json(result)["error"]["message"] == "replayed error (HTTP 429)"


async def read_raw(recording: str) -> StreamResult:
    body = httpx.Response(200, content=(FIXTURES / recording).read_bytes())
    return await collect(sse_json(body))


@pytest.mark.parametrize(
    "recording", ["openai-responses/dd-incomplete-max-output-tokens.sse", RECORDING["responses"]]
)
async def test_the_responses_api_finish_through_langchain_is_the_recordings(
    recording: str, replay_server: ReplayServer
) -> None:
    # Found in review: an answer cut at max_output_tokens finished as "stop", with no raw
    # reason (LangChain keeps the Responses status in response_metadata, no finish_reason).
    result = await collect(model("responses", replay_server.base_url, recording).astream(MESSAGES))
    raw = await read_raw(recording)
    assert result.finish == raw.finish
    assert raw.finish is not None and raw.finish.raw_reason in ("max_output_tokens", "completed")
    assert result.text == raw.text


async def test_astream_events_is_refused_with_a_hint(replay_server: ReplayServer) -> None:
    chat = model("anthropic", replay_server.base_url, RECORDING["anthropic"])
    result = await collect(chat.astream_events(MESSAGES, version="v2"))
    assert result.reason == "error"
    assert isinstance(result.error, TypeError)
    assert "pass model.astream(...)" in str(result.error)


async def test_an_error_raised_from_a_provider_error_keeps_its_message() -> None:
    # ChatGoogleGenerativeAI raises its own error `from` the SDK's: the cause is read.
    async def wrapped() -> Any:
        yield "partial "
        try:
            raise ollama.ResponseError("model runner has unexpectedly stopped")
        except ollama.ResponseError as exc:
            raise RuntimeError("the chat model failed") from exc

    result = await collect(wrapped())
    assert (result.reason, result.text) == ("error", "partial ")
    assert result_json(result)["error"]["message"] == "model runner has unexpectedly stopped"


# -- LangGraph ------------------------------------------------------------------------------

#: A ReAct agent's two model calls: a tool call, then (after the tool ran) the answer.
AGENT_CALLS = [
    "openai-chat/crewai-gpt4o-tool-call-usage.sse",
    "openai-chat/langchaingo-gpt-basic-usage.sse",
]
TOOL_OUTPUT = "TOOL-OUTPUT: 72F and sunny"
AGENT_INPUT = {"messages": [("user", "weather in NY?")]}


@tool
def get_weather(location: str) -> str:
    """The weather at ``location``."""
    return f"{TOOL_OUTPUT} in {location}"


def agent(base_url: str) -> Any:
    """LangGraph's prebuilt ReAct agent; each model call replays the next of AGENT_CALLS."""
    from langgraph.prebuilt import create_react_agent

    calls = iter(AGENT_CALLS)

    async def pick(request: httpx.Request) -> None:
        request.headers["x-replay-file"] = next(calls)

    chat = ChatOpenAI(
        model="test", base_url=base_url + "/v1", api_key="test", max_retries=0,
        stream_usage=True, http_async_client=httpx.AsyncClient(event_hooks={"request": [pick]}),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moved to langchain.agents in LangGraph 1.0
        return create_react_agent(chat, [get_weather])


def assert_the_agents_answer(result: StreamResult) -> None:
    call, answer = (expected(FIXTURES / name) for name in AGENT_CALLS)
    assert result.reason == "completed", result.error
    assert result.text == answer.text  # the tool's output is the model's input, not the answer
    assert [(c.index, c.name) for c in result.tool_calls] == [(0, "get_weather")]
    assert json.loads(result.tool_calls[0].arguments) == call.tool_calls[0][2]
    assert result.finish is not None
    assert (result.finish.reason, result.finish.raw_reason) == ("stop", "stop")  # the last call's
    assert call.usage is not None and answer.usage is not None and result.usage is not None
    assert result.usage.input_tokens == call.usage["input_tokens"] + answer.usage["input_tokens"]


def test_a_langgraph_agents_messages_stream_is_the_answer_not_the_tool_output(
    replay_server: ReplayServer,
) -> None:
    # Found in review: passed on as LangGraph teaches (stream_mode="messages": (message,
    # metadata) tuples) the stream was refused; unpacked, the tools node's ToolMessage went
    # to the browser as answer text, and `done` said the first call's "tool_calls".
    results: list[StreamResult] = []

    async def chat(request: Request) -> Response:
        graph = agent(replay_server.base_url)
        messages = graph.astream(AGENT_INPUT, stream_mode="messages")
        return SSEResponse(messages, on_complete=results.append)

    with run_uvicorn(Starlette(routes=[Route("/chat", chat)])) as url:
        with httpx.Client(timeout=20) as client, client.stream("GET", url + "/chat") as response:
            events = list(iter_events(response))
        deadline = time.monotonic() + 10
        while not results and time.monotonic() < deadline:
            time.sleep(0.01)
    assert TOOL_OUTPUT not in "".join(e.data for e in events)
    [result] = results
    assert_the_agents_answer(result)
    wire = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    assert wire == result.text
    assert [json.loads(e.data)["name"] for e in events if e.event == "tool_call"] == ["get_weather"]
    assert json.loads(events[-1].data)["finish_reason"] == "stop"


async def test_a_langgraph_agents_unpacked_messages_and_v2_parts_read_the_same(
    replay_server: ReplayServer,
) -> None:
    async def unpacked() -> AsyncIterator[Any]:
        graph = agent(replay_server.base_url)
        async for message, _ in graph.astream(AGENT_INPUT, stream_mode="messages"):
            yield message

    assert_the_agents_answer(await collect(unpacked()))
    graph = agent(replay_server.base_url)
    assert_the_agents_answer(
        await collect(graph.astream(AGENT_INPUT, stream_mode="messages", version="v2"))
    )


async def test_langgraph_state_streams_are_refused_with_a_hint_not_sent_as_a_repr(
    replay_server: ReplayServer,
) -> None:
    # Found in review: a node named "data" made each update {"data": {...}}, which went out
    # as an SSE event whose data was the Python repr of the graph's state.
    def data(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [("assistant", "private state")]}

    builder = StateGraph(dict)  # type: ignore[type-var]
    builder.add_node("data", data)
    builder.add_edge(START, "data")
    builder.add_edge("data", END)
    for mode in ("updates", "values"):
        graph = agent(replay_server.base_url) if mode == "values" else builder.compile()
        result = await collect(graph.astream(AGENT_INPUT, stream_mode=mode))
        assert result.reason == "error"
        assert "stream_mode='messages'" in str(result.error)
        assert result.text == ""
