"""A provider's error ends the stream as sse-llm's ``error`` event carrying the provider's words.

Errors inside a 200 stream (Groq's ``event: error``, OpenRouter's error chunk, the Responses
API's ``error`` + ``response.failed``, Anthropic's ``overloaded_error``, an Ollama error line)
are served from the synthetic bodies in ``tests/golden/provider-errors/`` (see its README: no
recording of them exists) by the real replay app; non-200 answers with a JSON error body come
from the replay app's ``x-replay-status``. Each is read through the real SDK where one exists
(the ``openai`` SDK raises ``APIError`` for in-stream errors; the pump's translate hook keeps
its message) and through ``httpx`` + :mod:`sse_llm.sources`, re-streamed by a real uvicorn,
and read by an ``httpx`` client. Nothing crashes: the text before the error arrives, the error
event is the last one, and ``on_complete`` reports ``error``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest

from sse_llm import ProviderError
from sse_llm._providers import translate_exception

from .support.plugin import ReplayServer
from .support.replay import ReplayApp
from .support.servers import run_uvicorn
from .test_providers import GOLDEN, Proxy, receive

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def error_proxy(replay_server: ReplayServer) -> Iterator[tuple[Proxy, str]]:
    with run_uvicorn(ReplayApp(GOLDEN)) as golden:
        app = Proxy({"fixtures": replay_server.base_url, "golden": golden})
        with run_uvicorn(app) as base_url:
            yield app, base_url


GROQ_MESSAGE = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_synthetic` on "
    "tokens per minute (TPM): Limit 6000, Used 6120. Please try again in 1.2s."
)
RESPONSES_MESSAGE = "The server had an error while processing your request. Sorry about that!"

# (source, golden file, text sent before the error, provider message, provider code)
IN_STREAM = [
    ("openai-chat", "groq-event-error.sse", "부분 답변 ", GROQ_MESSAGE, "rate_limit_exceeded"),
    ("openai-chat-http", "groq-event-error.sse", "부분 답변 ", GROQ_MESSAGE, "rate_limit_exceeded"),
    (
        "openai-chat",
        "groq-error-at-start.sse",
        "",
        "The model `llama-3.3-70b-versatile` is over capacity. Please try again.",
        "service_unavailable",
    ),
    (
        "openai-chat-http",
        "groq-error-at-start.sse",
        "",
        "The model `llama-3.3-70b-versatile` is over capacity. Please try again.",
        "service_unavailable",
    ),
    (
        "openai-chat",
        "openrouter-chunk-error.sse",
        "途中まで",
        "Provider disconnected unexpectedly",
        "server_error",
    ),
    (
        "openai-chat-http",
        "openrouter-chunk-error.sse",
        "途中まで",
        "Provider disconnected unexpectedly",
        "server_error",
    ),
    (
        "openai-responses",
        "responses-error-failed.sse",
        "Partial answer 🌧",
        RESPONSES_MESSAGE,
        "server_error",
    ),
    (
        "openai-responses-http",
        "responses-error-failed.sse",
        "Partial answer 🌧",
        RESPONSES_MESSAGE,
        "server_error",
    ),
    (
        "anthropic",
        "anthropic-overloaded.sse",
        "Ein Teil der Antwort ",
        "Overloaded",
        "overloaded_error",
    ),
    (
        "anthropic-http",
        "anthropic-overloaded.sse",
        "Ein Teil der Antwort ",
        "Overloaded",
        "overloaded_error",
    ),
    (
        "ollama",
        "ollama-error-line.ndjson",
        "Une partie de la réponse",
        "an error was encountered while running the model: unexpected EOF",
        None,
    ),
]


@pytest.mark.parametrize(
    ("source", "file", "before", "message", "code"),
    IN_STREAM,
    ids=[f"{source}:{file}" for source, file, *_ in IN_STREAM],
)
async def test_in_stream_provider_error_becomes_the_last_event_with_its_message(
    error_proxy: tuple[Proxy, str],
    caplog: pytest.LogCaptureFixture,
    source: str,
    file: str,
    before: str,
    message: str,
    code: str | None,
) -> None:
    app, base_url = error_proxy
    tag = f"error:{source}:{file}"
    with caplog.at_level(logging.WARNING, logger="sse_llm"):
        got = await receive(
            base_url, source=source, file=f"provider-errors/{file}", upstream="golden", tag=tag
        )
    assert got.text.encode("utf-8") == before.encode("utf-8")
    assert got.error == {"message": message, "code": code}
    assert got.names[-1] == "error"
    assert got.names.count("error") == 1
    assert got.done is None
    result = await app.result(tag)
    assert result.reason == "error"
    assert result.text == before
    # Translated, not an unexpected exception: nothing logged at ERROR.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# (source, fixture file to ask for, HTTP status, provider code in the replayed error body)
NON_200 = [
    ("openai-chat", "openai-chat/langchaingo-gpt-basic-usage.sse", "429", "server_error"),
    ("openai-chat-http", "openai-chat/langchaingo-gpt-basic-usage.sse", "429", "server_error"),
    ("openai-responses", "openai-responses/llm-basic-text.sse", "500", "server_error"),
    ("anthropic", "anthropic/langchaingo-basic.sse", "529", "api_error"),
    ("anthropic-http", "anthropic/langchaingo-basic.sse", "529", "api_error"),
    ("gemini", "gemini/pydantic-function-call.sse", "503", "INTERNAL"),
    ("gemini-json-array", "gemini-json-array/llm-gemini-prompt.json", "429", "INTERNAL"),
    ("ollama", "ollama/langchaingo-chat-stream.ndjson", "500", "500"),
]


@pytest.mark.parametrize(
    ("source", "file", "status", "code"), NON_200, ids=[f"{s}:{st}" for s, _, st, _ in NON_200]
)
async def test_non_200_json_error_body_becomes_an_error_event(
    error_proxy: tuple[Proxy, str],
    caplog: pytest.LogCaptureFixture,
    source: str,
    file: str,
    status: str,
    code: str,
) -> None:
    app, base_url = error_proxy
    tag = f"status:{source}:{status}"
    with caplog.at_level(logging.WARNING, logger="sse_llm"):
        got = await receive(base_url, source=source, file=file, status=status, tag=tag)
    assert got.names == ["error"]
    assert got.error == {"message": f"replayed error (HTTP {status})", "code": code}
    result = await app.result(tag)
    assert result.reason == "error"
    assert result.text == ""
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


OPERATOR_ERRORS = [  # NON_200's sources with the statuses of a misconfigured server
    (source, file, status, status if code == "500" else code)  # Ollama: the status as code
    for (source, file, _, code), status in zip(
        NON_200, ["401", "403", "404", "401", "407", "403", "404", "401"], strict=True
    )
]


@pytest.mark.parametrize(
    ("source", "file", "status", "code"),
    OPERATOR_ERRORS,
    ids=[f"{s}:{st}" for s, _, st, _ in OPERATOR_ERRORS],
)
async def test_an_error_of_the_server_s_own_configuration_is_not_shown_in_the_provider_s_words(
    error_proxy: tuple[Proxy, str], source: str, file: str, status: str, code: str
) -> None:
    # Found in review: OpenAI's 401 text echoes part of the server's API key ("Incorrect API
    # key provided: sk-proj-****xyz9"), a 404 names the model or the gateway's internal URL:
    # the operator's business, sent to every end user. The hook still gets the exception.
    app, base_url = error_proxy
    tag = f"operator:{source}:{status}"
    got = await receive(base_url, source=source, file=file, status=status, tag=tag)
    assert got.names == ["error"]
    assert got.error == {
        "message": f"The model provider refused the server's request (HTTP status {status}).",
        "code": code,
    }
    result = await app.result(tag)
    assert result.reason == "error" and f"replayed error (HTTP {status})" in str(result.error)


def _anthropic_status_error(status: int, body: object) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    response = httpx2.Response(status, request=request)
    return anthropic.APIStatusError(f"Error code: {status} - {body}", response=response, body=body)


def test_anthropic_sdk_errors_translate_to_the_provider_message_not_a_repr() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = translate_exception(_anthropic_status_error(529, body))
    assert isinstance(error, ProviderError)
    assert (error.message, error.code) == ("Overloaded", "overloaded_error")
    # A non-JSON body (a proxy's HTML page) is not shown to the user.
    html = translate_exception(_anthropic_status_error(502, "<html>Bad Gateway</html>"))
    assert html is not None
    assert (html.message, html.code) == ("The model provider answered with HTTP status 502.", "502")
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    unreachable = translate_exception(anthropic.APIConnectionError(request=request))
    assert unreachable is not None
    assert unreachable.message == "The model provider could not be reached."
    assert translate_exception(ValueError("not a provider error")) is None


def _fields(error: ProviderError | None) -> tuple[str, str | None] | None:
    return None if error is None else (error.message, error.code)


def test_openai_sdk_errors_show_only_the_providers_json_wording() -> None:
    # Found in review: for a body that is not JSON the SDK's message is
    # "Error code: 502 - <the body>", and that reached the browser (a proxy's HTML page).
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")

    def status_error(status: int, body: object) -> openai.APIStatusError:
        response = httpx2.Response(status, request=request)
        return openai.APIStatusError(f"Error code: {status} - {body}", response=response, body=body)

    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
    limited = translate_exception(status_error(429, body))
    assert _fields(limited) == ("Rate limit reached", "rate_limit")
    html = translate_exception(status_error(502, "<html>Bad Gateway from internal-lb-7</html>"))
    assert _fields(html) == ("The model provider answered with HTTP status 502.", "502")
    # An in-stream error: the SDK gives the error object itself as the body.
    in_stream = openai.APIError(
        "x", request, body={"message": "Overloaded", "type": "server_error"}
    )
    assert _fields(translate_exception(in_stream)) == ("Overloaded", "server_error")
    silent = openai.APIError("An error occurred during streaming", request, body={"code": None})
    assert _fields(translate_exception(silent)) == ("The model provider reported an error.", None)
    unreachable = translate_exception(openai.APIConnectionError(request=request))
    assert _fields(unreachable) == ("The model provider could not be reached.", None)
    # Not the provider's answer (no API key configured): the app's own error, not translated.
    assert translate_exception(openai.OpenAIError("The api_key client option must be set")) is None
