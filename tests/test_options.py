"""One options type for every binding: a wrong name or type fails where the binding is built."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
import flask
import pytest

from sse_llm import EventStream, StreamOptions, collect
from sse_llm.testing import FakeLLM
from tests.support.django_demo import django_demo_app


@pytest.fixture(autouse=True, scope="module")
def _django_configured(tmp_path_factory: pytest.TempPathFactory) -> None:
    django_demo_app(tmp_path_factory)  # Django's responses need its settings


def _starlette(**options: Any) -> Any:
    from sse_llm.starlette import SSEResponse

    return SSEResponse(["x"], **options)


def _fastapi(**options: Any) -> Any:
    from sse_llm.fastapi import SSEResponse

    return SSEResponse(["x"], **options)


def _starlette_sse(**options: Any) -> Any:
    from sse_llm.starlette import sse

    return sse(**options)


def _endpoint(**options: Any) -> Any:
    from sse_llm.starlette import SSEEndpoint

    return SSEEndpoint(lambda request: ["x"], **options)


def _django(**options: Any) -> Any:
    from sse_llm.django import SSEResponse

    return SSEResponse(["x"], **options)


def _django_sse(**options: Any) -> Any:
    from sse_llm.django import sse

    return sse(**options)


def _flask(**options: Any) -> Any:
    from sse_llm.flask import SSEResponse

    with flask.Flask(__name__).test_request_context("/"):
        return SSEResponse(["x"], **options)


def _websocket(**options: Any) -> Any:
    from sse_llm.websocket import LLMWebSocket

    return LLMWebSocket(lambda message: ["x"], **options)


def _hub(**options: Any) -> Any:
    from sse_llm.resume import MemoryStore, StreamHub

    async def start() -> Any:
        async with StreamHub(MemoryStore()) as hub:
            try:
                return await hub.start(FakeLLM(delay=0).stream(), **options)
            except Exception as exc:  # raised where the app calls start, not by the hub
                return exc

    outcome = anyio.run(start)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


BINDINGS: dict[str, Callable[..., Any]] = {
    "EventStream": lambda **options: EventStream(["x"], **options),
    "starlette.SSEResponse": _starlette,
    "fastapi.SSEResponse": _fastapi,
    "starlette.sse": _starlette_sse,
    "starlette.SSEEndpoint": _endpoint,
    "django.SSEResponse": _django,
    "django.sse": _django_sse,
    "flask.SSEResponse": _flask,
    "websocket.LLMWebSocket": _websocket,
    "StreamHub.start": _hub,
}


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_misspelt_option_fails_when_the_binding_is_built(binding: str) -> None:
    with pytest.raises(TypeError, match="heartbeet") as raised:
        BINDINGS[binding](heartbeet=5)
    options = str(raised.value).partition("the options are ")[2].split(", ")
    # The close match is offered where the binding takes it (a producer has no heartbeat).
    assert ("did you mean heartbeat?" in str(raised.value)) == ("heartbeat" in options)


def test_another_framework_s_name_for_the_status_is_refused_with_each_one_s_name() -> None:
    from sse_llm.django import SSEResponse

    with pytest.raises(TypeError, match=r"status_code= in Starlette and FastAPI, status= in"):
        SSEResponse(["x"], status_code=400)  # type: ignore[call-arg]


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize(
    "option",
    [
        {"send_timeout": "30"},
        {"close_timeout": None},
        {"on_complete": "save"},
        {"keep_text": "yes"},
        {"choice": 1.5},
        {"sync_limiter": 10},
    ],
    ids=lambda option: next(iter(option)),
)
def test_an_option_of_the_wrong_type_fails_when_the_binding_is_built(
    binding: str, option: dict[str, Any]
) -> None:
    with pytest.raises(TypeError, match=next(iter(option))):
        BINDINGS[binding](**option)


@pytest.mark.parametrize(
    "binding", sorted(set(BINDINGS) - {"websocket.LLMWebSocket", "StreamHub.start"})
)
def test_a_connection_header_fails_when_the_binding_is_built(binding: str) -> None:
    # The decorator and the endpoint refused it only at each request, with a 500 (found in
    # review). A WebSocket answer has no headers, a detached stream's are its readers'.
    with pytest.raises(ValueError, match="Connection"):
        BINDINGS[binding](headers={"Connection": "close"})


@pytest.mark.parametrize("name", ["Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection"])
def test_every_connection_specific_header_is_refused(name: str) -> None:
    # RFC 9113 §8.2.2 forbids them all in HTTP/2, not only Connection (found in review: these
    # passed, and HTTP/2 servers dropped them).
    with pytest.raises(ValueError, match=f"the {name} header is connection-specific"):
        BINDINGS["EventStream"](headers={name: "x"})


@pytest.mark.parametrize("binding", ["EventStream", "starlette.SSEResponse", "django.SSEResponse",
                                     "flask.SSEResponse"])  # fmt: skip
def test_a_string_where_a_format_belongs_fails_with_a_clear_type_error(binding: str) -> None:
    with pytest.raises(TypeError, match="wire format object"):
        BINDINGS[binding](format="events")


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("value", [0, -1, float("nan")])
def test_a_time_that_is_not_positive_is_refused(binding: str, value: float) -> None:
    with pytest.raises(ValueError, match="close_timeout"):
        BINDINGS[binding](close_timeout=value)


@pytest.mark.parametrize("binding", BINDINGS)
def test_an_infinite_time_is_refused_none_is_the_way_to_say_no_limit(binding: str) -> None:
    # Flask's wait for the pump took close_timeout + 1 as a thread's timeout: OverflowError.
    with pytest.raises(ValueError, match="close_timeout"):
        BINDINGS[binding](close_timeout=float("inf"))


HTTP_BINDINGS = sorted(set(BINDINGS) - {"websocket.LLMWebSocket", "StreamHub.start"})


@pytest.mark.parametrize("binding", HTTP_BINDINGS)
@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"x-trace": "a\r\nset-cookie: evil=1"}, ValueError),  # a header injection
        ({"x-trace": "a\nb"}, ValueError),
        ({"x-trace": "a\x00b"}, ValueError),
        ({"x-name": "한국어"}, ValueError),  # not Latin-1: the server could not send it
        ({"x trace": "1"}, ValueError),  # not an HTTP token
        ({"x-count": 1}, TypeError),
        ({b"x-trace": b"1"}, TypeError),
    ],
    ids=["crlf", "lf", "nul", "korean", "space-in-name", "int-value", "bytes"],
)
def test_a_header_the_server_could_not_send_fails_when_the_binding_is_built(
    binding: str, headers: dict[Any, Any], error: type[Exception]
) -> None:
    # It used to pass, and uvicorn refused the response start: no status for the client,
    # and neither the hook nor the source's close ran.
    with pytest.raises(error, match="header"):
        BINDINGS[binding](headers=headers)


def test_headers_that_http_allows_are_sent_as_given() -> None:
    from sse_llm._options import header_pairs

    assert header_pairs({"X-Trace": "a\tb ü", "x-a!#$%&'*+.^_`|~": "1"}) == [
        (b"x-trace", "a\tb ü".encode("latin-1")),
        (b"x-a!#$%&'*+.^_`|~", b"1"),
    ]


@pytest.mark.parametrize(
    ("binding", "option"),
    [
        (binding, option)
        for binding in BINDINGS
        for option in ("format", "shutdown", "sync_limiter")
        # The WebSocket takes no format, a detached stream's producer no shutdown (above).
        if (binding, option)
        not in {("websocket.LLMWebSocket", "format"), ("StreamHub.start", "shutdown")}
    ],
)
def test_a_class_given_for_its_instance_fails_when_the_binding_is_built(
    binding: str, option: str
) -> None:
    # TypedJSONFormat without its parentheses passed the attribute checks, then failed at
    # each request ("missing 'self'").
    from sse_llm.formats import TypedJSONFormat

    classes = {"format": TypedJSONFormat, "shutdown": anyio.Event, "sync_limiter": anyio.Event}
    with pytest.raises(TypeError, match="parentheses"):
        BINDINGS[binding](**{option: classes[option]})


@pytest.mark.parametrize("binding", ["starlette.SSEResponse", "fastapi.SSEResponse"])
def test_a_framework_response_s_errors_name_the_class_the_user_called(binding: str) -> None:
    with pytest.raises(TypeError, match=r"^SSEResponse got unknown option"):
        BINDINGS[binding](heartbaet=5)
    from sse_llm.starlette import SSEResponse

    with pytest.raises(TypeError, match=r"^SSEResponse needs"):
        SSEResponse("a str")  # type: ignore[arg-type]


def test_other_constructors_refuse_times_that_are_not_finite() -> None:
    from sse_llm import GracefulShutdown
    from sse_llm.html import HTMLAppendFormat, MarkdownFormat

    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="drain_timeout"):
            GracefulShutdown(drain_timeout=value)
        with pytest.raises(ValueError, match="interval"):
            HTMLAppendFormat("answer", interval=value)
        with pytest.raises(ValueError, match="refresh"):
            MarkdownFormat("answer", refresh=value)
    with pytest.raises(TypeError, match="target"):
        MarkdownFormat(None)  # type: ignore[arg-type]
    from sse_llm.resume import MemoryStore, StreamHub

    for option in ("keep", "close_timeout", "abandon_after", "outage_grace"):
        for value in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match=option):
                StreamHub(MemoryStore(), **{option: value})
        with pytest.raises(TypeError, match=option):
            StreamHub(MemoryStore(), **{option: "300"})
    with pytest.raises(TypeError, match="outage_bytes"):
        StreamHub(MemoryStore(), outage_bytes=1.5)  # type: ignore[arg-type]


def test_a_format_class_whose_methods_need_no_instance_may_stand_for_itself() -> None:
    from sse_llm import TextFormat

    class Plain:  # a format written as a class with static members
        media_type = "text/event-stream"
        headers: ClassVar[dict[str, str]] = {}
        keepalive = b":\n"

        @staticmethod
        def writer() -> Any:
            return TextFormat().writer()

    stream = EventStream(["x"], format=Plain)  # type: ignore[arg-type]
    assert stream.config.format is Plain


def test_options_that_make_no_sense_for_a_binding_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="headers"):
        _websocket(headers={"x": "1"})
    with pytest.raises(TypeError, match="format"):
        _websocket(format=None)
    with pytest.raises(TypeError, match="heartbeat"):
        _hub(heartbeat=5)


def _hub_reader(**options: Any) -> Any:
    from sse_llm.resume import MemoryStore, StreamHub

    return StreamHub(MemoryStore()).response("stream-id", **options)


def _resume_response(**options: Any) -> Any:
    from sse_llm.resume import MemoryStore, StreamHub
    from sse_llm.starlette import ResumeResponse

    return ResumeResponse(StreamHub(MemoryStore()), "stream-id", **options)


#: The responses that read a detached stream: they take ResumeOptions, a part of StreamOptions.
READERS: dict[str, Callable[..., Any]] = {
    "StreamHub.response": _hub_reader,
    "starlette.ResumeResponse": _resume_response,
}


@pytest.mark.parametrize("reader", READERS)
def test_a_reader_takes_the_resume_options_and_refuses_the_others_by_name(reader: str) -> None:
    from sse_llm.resume import ResumeOptions

    build = READERS[reader]

    def app(built: Any) -> Any:
        return getattr(built, "stream", built)  # ResumeResponse wraps the hub's ASGI app

    stream = app(build(heartbeat=5.0, send_timeout=None, headers={"X-Trace": "1"}))
    assert (stream.config.heartbeat, stream.config.send_timeout) == (5.0, None)
    assert (b"x-trace", b"1") in stream.headers
    defaults = app(build())
    assert (defaults.config.heartbeat, defaults.config.send_timeout) == (15.0, 30.0)
    for refused in sorted(set(StreamOptions.__annotations__) - set(ResumeOptions.__annotations__)):
        with pytest.raises(TypeError, match=f"does not take {refused}"):
            build(**{refused: None})
    with pytest.raises(TypeError, match="heartbeet") as misspelt:
        build(heartbeet=5)
    assert "format" not in str(misspelt.value)  # the options it lists are the reader's own
    with pytest.raises(TypeError, match="send_timeout"):
        build(send_timeout="30")
    with pytest.raises(ValueError, match="heartbeat"):
        build(heartbeat=0)
    with pytest.raises(ValueError, match="Connection"):
        build(headers={"Connection": "close"})


def _flask_source(source: Any) -> Any:
    from sse_llm.flask import SSEResponse

    with flask.Flask(__name__).test_request_context("/"):
        return SSEResponse(source)


SOURCE_BINDINGS: dict[str, Callable[[Any], Any]] = {
    "EventStream": EventStream,
    "starlette.SSEResponse": lambda source: _starlette_response()(source),
    "fastapi.SSEResponse": lambda source: _fastapi_response()(source),
    "django.SSEResponse": lambda source: _django_response()(source),
    "flask.SSEResponse": _flask_source,
}


def _starlette_response() -> Any:
    from sse_llm.starlette import SSEResponse

    return SSEResponse


def _fastapi_response() -> Any:
    from sse_llm.fastapi import SSEResponse

    return SSEResponse


def _django_response() -> Any:
    from sse_llm.django import SSEResponse

    return SSEResponse


@pytest.mark.parametrize("binding", SOURCE_BINDINGS)
@pytest.mark.parametrize("source", ["a plain str", b"bytes", 123, None])
def test_a_source_that_cannot_be_streamed_fails_when_the_response_is_built(
    binding: str, source: Any
) -> None:
    with pytest.raises(TypeError, match="iterable"):
        SOURCE_BINDINGS[binding](source)


def _whole_answers() -> list[Any]:
    """What an SDK call made without ``stream=True`` returns, and a plain dict."""
    from anthropic.types import Message
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(
        {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": []}
    )
    message = Message.model_validate(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )
    return [completion, message, {"data": "hello"}]


@pytest.mark.parametrize("binding", SOURCE_BINDINGS)
@pytest.mark.parametrize("whole", _whole_answers(), ids=lambda w: type(w).__name__)
def test_a_whole_answer_is_refused_with_a_hint_at_stream_true(binding: str, whole: Any) -> None:
    """A pydantic model iterates its fields and a dict its keys: a stream of them would be
    nonsense sent with status 200."""
    with pytest.raises(TypeError, match=rf"not a whole {type(whole).__name__}.*stream=True"):
        SOURCE_BINDINGS[binding](whole)


def test_none_items_are_skipped_as_a_chunk_without_text() -> None:
    """``yield chunk.choices[0].delta.content`` yields None for the role and finish chunks."""

    async def tokens() -> Any:
        for item in [None, "Hel", None, "lo", None]:
            yield item

    result = anyio.run(collect, tokens())
    assert (result.reason, result.text) == ("completed", "Hello")


def test_every_binding_takes_every_option_that_makes_sense_for_it() -> None:
    # The same names everywhere: each binding accepts the whole StreamOptions set, less the
    # few it refuses by name (checked above).
    every = {
        "heartbeat": 5.0,
        "send_timeout": 10.0,
        "close_timeout": 2.0,
        "on_complete": print,
        "shutdown": anyio.Event(),
        "keep_text": 100,
        "choice": 0,
        "sync_limiter": anyio.CapacityLimiter(2),
    }
    assert set(every) | {"format", "headers"} == set(StreamOptions.__annotations__)
    for name, build in BINDINGS.items():
        if name in ("StreamHub.start",):
            continue
        given = dict(every)
        if name == "websocket.LLMWebSocket":
            build(**given)
            continue
        build(**given, headers={"x-a": "1"})


def _memory_growth_over_a_long_answer(**options: Any) -> tuple[int, str]:
    """Bytes a stream's engine and its result hold after 20,000 tokens (about 1 MB of text)
    and the stream's end, and the text its result gives the hook."""
    from sse_llm._options import resolve

    engine = resolve(options, binding="EventStream").engine()
    token = "a token of about fifty characters, as models write "
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            engine.feed_units(token)
        engine.close_units("completed")
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return growth, engine.result.text


def test_a_stream_without_a_hook_keeps_no_text_and_its_memory_stays_flat() -> None:
    growth, text = _memory_growth_over_a_long_answer()
    assert text == ""
    assert growth < 16_384, growth  # nothing per token: the answer was ~1 MB


def test_a_hook_gets_the_whole_text_or_as_much_as_keep_text_says() -> None:
    def hook(result: object) -> None:
        pass

    growth, text = _memory_growth_over_a_long_answer(on_complete=hook)
    assert len(text) == 20_000 * 51 and growth > 1_000_000
    assert growth < 1.2 * len(text), growth  # the text once, not ~60 bytes more per token
    growth, text = _memory_growth_over_a_long_answer(on_complete=hook, keep_text=100)
    assert len(text) == 100 and growth < 16_384, growth
    growth, text = _memory_growth_over_a_long_answer(on_complete=hook, keep_text=False)
    assert text == "" and growth < 16_384, growth
