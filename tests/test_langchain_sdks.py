"""LangChain chat models as sources, with their real SDKs underneath, over the replay server:
``ChatAnthropic`` and ``ChatOpenAI`` (Chat Completions and ``use_responses_api=True``).

LangChain re-raises the SDKs' errors as subclasses of its own, so a provider's error must
still reach the stream with the provider's message; the Responses API's finish (its
``status`` and ``incomplete_details``) must read as it does from the raw recording; and
``astream_events()`` is refused with a hint."""

from __future__ import annotations

from typing import Any

import httpx
import ollama
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from sse_llm import StreamResult, collect, result_json
from sse_llm.sources import sse_json

from .support.fixtures import FIXTURES
from .support.plugin import ReplayServer

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
