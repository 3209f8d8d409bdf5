"""sse_llm.websocket on a real uvicorn, read by the real ``websockets`` client: several prompts
over one socket, cancel and replace, disconnects that close the source at once (even while
the model is silent), errors, shutdown, and a recorded provider stream through the openai SDK.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sse_llm import StreamResult
from sse_llm.testing import FakeLLM, tokenize
from sse_llm.websocket import LLMWebSocket, serve_websocket

from .support.browser import launch_chromium
from .support.fixtures import expected, fixture_files, fixture_id
from .support.plugin import ReplayServer
from .support.servers import run_uvicorn
from .test_examples import load_example

pytestmark = pytest.mark.anyio

SAFE_ERROR = "The answer could not be completed because of an internal error."
TERMINAL = {"done", "error", "cancelled"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ThreadSafeShutdown:
    """A shutdown signal the test thread can set while the server loop waits on it."""

    def __init__(self) -> None:
        self.flag = threading.Event()

    async def wait(self) -> None:
        # Polled: a threading.Event cannot wake the server's event loop.
        while not self.flag.is_set():  # noqa: ASYNC110
            await anyio.sleep(0.01)


class Server:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fast = FakeLLM(delay=0.002)
        self.slow = FakeLLM(delay=0.05)
        self.short = FakeLLM(answer="one two three four five six", delay=0.05)
        self.silent = FakeLLM(answer="a b c d", delay=60)  # one token, then nothing for a minute
        self.results: list[StreamResult] = []
        self.shutdown = ThreadSafeShutdown()
        self.read = 0  # messages /counted read from its clients

    def handler(self, message: Any) -> Any:
        model = message.get("model", "fast")
        if model == "boom":
            raise RuntimeError("handler failed (secret=hunter2)")
        if model == "none":
            return None  # a handler bug: not a source
        if model == "fail":
            return FakeLLM(delay=0, fail_after=2).stream(message["prompt"])
        llm: FakeLLM = getattr(self, model)
        return llm.stream(message["prompt"])

    async def replay(self, message: Any) -> Any:
        """A recorded provider stream through the real openai SDK (an awaitable handler)."""
        client = openai.AsyncOpenAI(
            base_url=self.upstream + "/v1", api_key="test", max_retries=0, timeout=10
        )
        stream = await client.chat.completions.create(
            model=message["prompt"], messages=[{"role": "user", "content": "hi"}], stream=True
        )

        async def source() -> AsyncIterator[Any]:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                await client.close()

        return source()

    async def thinking(self, message: Any) -> Any:
        """An async handler whose request takes long to answer (an SDK waiting for the
        model's first bytes): here, longer than any test waits."""
        await anyio.sleep(60)
        return self.fast.stream(message["prompt"])

    async def own_endpoint(self, websocket: WebSocket) -> None:
        """serve_websocket inside an app's own endpoint (where auth would go)."""
        await websocket.accept()
        await serve_websocket(websocket, self.handler, on_complete=self.results.append)


class Stalled:
    """An ASGI app: /ws whose client's socket fills after the answer's first messages (every
    later send waits, as on a client that reads nothing); counts in ``srv.read`` the
    messages the server reads from the client."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.app = LLMWebSocket(srv.handler, send_timeout=2)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        sent = 0

        async def counting_receive() -> Any:
            message = await receive()
            self.srv.read += 1
            return message

        async def stalling_send(message: Any) -> None:
            nonlocal sent
            sent += 1
            if sent > 4:  # the accept, "start" and two deltas went through
                await anyio.sleep_forever()
            await send(message)

        await self.app(scope, counting_receive, stalling_send)


@pytest.fixture
def server(replay_server: ReplayServer) -> Iterator[tuple[Server, str]]:
    srv = Server(replay_server.base_url)
    app = Starlette(
        routes=[
            WebSocketRoute("/ws", LLMWebSocket(srv.handler, on_complete=srv.results.append)),
            WebSocketRoute("/own", srv.own_endpoint),
            WebSocketRoute("/replay", LLMWebSocket(srv.replay)),
            WebSocketRoute("/thinking", LLMWebSocket(srv.thinking, on_complete=srv.results.append)),
            # A heartbeat due at every moment: it falls while the server answers a message.
            WebSocketRoute("/beating", LLMWebSocket(srv.handler, heartbeat=0.001)),
            WebSocketRoute("/stalled", Stalled(srv)),
            WebSocketRoute(
                "/shutdown",
                LLMWebSocket(srv.handler, shutdown=srv.shutdown, on_complete=srv.results.append),
            ),
        ]
    )
    with run_uvicorn(app) as base_url:
        yield srv, base_url.replace("http://", "ws://")


def _connect(url: str) -> connect:
    return connect(url, proxy=None, open_timeout=10, close_timeout=5)


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    with anyio.fail_after(10):
        message = await ws.recv()
    obj: dict[str, Any] = json.loads(message)
    return obj


async def _answer(ws: ClientConnection, request_id: Any) -> list[dict[str, Any]]:
    """Messages of ``request_id`` up to and including its terminal message."""
    out: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        while True:
            message = await _recv(ws)
            if message.get("request_id") != request_id:
                continue
            out.append(message)
            if message["type"] in TERMINAL:
                return out


def _text(messages: list[dict[str, Any]]) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "delta")


async def _wait_for(predicate: Any, limit: float) -> float:
    """Seconds until ``predicate()`` held; fails after ``limit`` seconds."""
    start = time.monotonic()
    with anyio.fail_after(limit):
        # Polled: the state lives in the server's thread (counters, hook results).
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.005)
    return time.monotonic() - start


# ------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize("path", ["/ws", "/own"])
async def test_two_prompts_over_one_socket_get_their_own_answers(
    server: tuple[Server, str], path: str
) -> None:
    srv, base = server
    async with _connect(base + path) as ws:
        await ws.send(json.dumps({"prompt": "첫 번째", "request_id": "a"}))
        first = await _answer(ws, "a")
        await ws.send(json.dumps({"prompt": "second", "request_id": 2}))
        second = await _answer(ws, 2)
    for messages, prompt in ((first, "첫 번째"), (second, "second")):
        assert messages[0]["type"] == "start"
        assert {m["type"] for m in messages[1:-1]} == {"delta"}
        assert _text(messages) == srv.fast.text_for(prompt)
        assert messages[-1] == {
            "type": "done",
            "request_id": messages[0]["request_id"],
            "finish_reason": "stop",
            "raw_finish_reason": None,
            "usage": None,
        }
    await _wait_for(lambda: len(srv.results) == 2, 5)
    assert [r.reason for r in srv.results] == ["completed", "completed"]
    assert srv.results[0].text == srv.fast.text_for("첫 번째")


async def test_the_server_numbers_requests_without_an_id(server: tuple[Server, str]) -> None:
    _, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "x"}))
        assert (await _answer(ws, "1"))[-1]["type"] == "done"
        await ws.send(json.dumps({"prompt": "y"}))
        assert (await _answer(ws, "2"))[-1]["type"] == "done"


async def test_a_new_prompt_cancels_the_streaming_answer(server: tuple[Server, str]) -> None:
    srv, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "old", "request_id": "old", "model": "slow"}))
        for _ in range(3):
            message = await _recv(ws)
        assert message["type"] == "delta"
        await ws.send(json.dumps({"prompt": "new", "request_id": "new"}))
        old = await _answer(ws, "old")
        new = await _answer(ws, "new")
    assert old[-1] == {"type": "cancelled", "request_id": "old"}
    assert len(_text(old)) < len(srv.slow.text_for("old"))
    assert new[0]["type"] == "start" and new[-1]["type"] == "done"
    assert _text(new) == srv.fast.text_for("new")
    assert srv.slow.closed == 1  # the old source was closed, not left running
    await _wait_for(lambda: len(srv.results) == 2, 5)
    assert [r.reason for r in srv.results] == ["disconnected", "completed"]


async def test_cancel_stops_the_answer_and_the_socket_stays_usable(
    server: tuple[Server, str],
) -> None:
    srv, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "p", "request_id": 1, "model": "slow"}))
        assert (await _recv(ws))["type"] == "start"
        assert (await _recv(ws))["type"] == "delta"
        await ws.send(json.dumps({"type": "cancel"}))
        messages = await _answer(ws, 1)
        assert messages[-1] == {"type": "cancelled", "request_id": 1}
        await _wait_for(lambda: srv.slow.closed == 1, 2)
        await ws.send(json.dumps({"type": "cancel"}))  # nothing streaming: ignored
        await ws.send(json.dumps({"prompt": "again", "request_id": 2}))
        assert _text(await _answer(ws, 2)) == srv.fast.text_for("again")


async def test_an_answer_cancelled_at_once_still_begins_with_start(
    server: tuple[Server, str],
) -> None:
    # Found in review: a prompt followed at once by a cancel (or by the next prompt) ended
    # before the pump sent `start`: the answer was `cancelled` alone.
    _, base = server
    async with _connect(base + "/ws") as ws:
        for n in range(20):
            await ws.send(json.dumps({"prompt": "p", "request_id": n, "model": "slow"}))
        await ws.send(json.dumps({"type": "cancel"}))
        answers = [await _answer(ws, n) for n in range(20)]
    for n, messages in enumerate(answers):
        kinds = [m["type"] for m in messages]
        assert kinds[0] == "start", (n, kinds)
        assert kinds[-1] == "cancelled", (n, kinds)
        assert sum(kind in TERMINAL for kind in kinds) == 1, (n, kinds)


@pytest.mark.parametrize("request_id", ["x" * 129, 2**53, -(2**53), True, [1]])
async def test_a_request_id_too_long_or_not_exact_in_javascript_is_refused(
    server: tuple[Server, str], request_id: object
) -> None:
    # Found in review: a request_id is echoed in every message of its answer; one of 4 MB
    # made the server send 812 MB for one prompt. An integer past 2**53 is not one in JS.
    srv, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "p", "request_id": request_id}))
        error = await _recv(ws)
        assert (error["type"], error["request_id"], error["code"]) == (
            "error",
            None,
            "invalid_message",
        )
        await ws.send(json.dumps({"prompt": "p", "request_id": "x" * 128}))  # the longest
        answer = await _answer(ws, "x" * 128)
    assert answer[-1]["type"] == "done" and _text(answer) == srv.fast.text_for("p")


async def test_unreadable_messages_get_an_error_and_do_not_stop_the_answer(
    server: tuple[Server, str],
) -> None:
    srv, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send("not json")
        error = await _recv(ws)
        assert error["type"] == "error" and error["request_id"] is None
        assert error["code"] == "invalid_message"
        await ws.send(json.dumps({"prompt": "p", "request_id": "r", "model": "short"}))
        await ws.send(json.dumps({"no": "prompt"}))  # while answering
        seen: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            while not seen or seen[-1].get("type") not in ("done", "cancelled"):
                seen.append(await _recv(ws))
    assert any(m["type"] == "error" and m["request_id"] is None for m in seen)
    answer = [m for m in seen if m.get("request_id") == "r"]
    assert answer[-1]["type"] == "done"
    assert _text(answer) == srv.short.text_for("p")


async def test_every_unreadable_message_gets_its_error_while_heartbeats_fall(
    server: tuple[Server, str],
) -> None:
    # Found in review: the reply to an unreadable message was sent from the watcher's wait
    # for the client, which its heartbeat timer cancels: a heartbeat falling while the reply
    # waited for the socket (the answer's tokens hold it) dropped the reply.
    srv, base = server
    unreadable = 300
    async with _connect(base + "/beating") as ws:
        await ws.send(json.dumps({"prompt": "p" * 40, "request_id": "r", "model": "fast"}))
        for _ in range(unreadable):
            await ws.send("not json")
        seen: list[dict[str, Any]] = []
        with anyio.fail_after(30):
            while not seen or seen[-1].get("request_id") != "r" or seen[-1]["type"] != "done":
                seen.append(await _recv(ws))
        errors = sum(1 for m in seen if m["type"] == "error" and m["request_id"] is None)
        # Replies still on their way after the answer's end: ask for one more, then count.
        await ws.send(json.dumps({"prompt": "q", "request_id": "last", "model": "short"}))
        with anyio.fail_after(30):
            while True:
                message = await _recv(ws)
                errors += message["type"] == "error" and message["request_id"] is None
                if message.get("request_id") == "last" and message["type"] == "done":
                    break
    answer = [m for m in seen if m.get("request_id") == "r"]
    assert _text(answer) == srv.fast.text_for("p" * 40)
    assert any(m["type"] == "heartbeat" for m in seen)  # heartbeats did fall meanwhile
    assert errors == unreadable


async def test_a_client_that_sends_unreadable_messages_and_reads_nothing_is_read_no_further(
    server: tuple[Server, str],
) -> None:
    # Found in review: each unreadable message read while an answer streamed started a task
    # to send its reply; from a client that read nothing (its socket full, every reply
    # waiting) the server read on and started a task per message, without bound.
    srv, base = server
    unreadable = 2_000
    async with connect(base + "/stalled", proxy=None, close_timeout=0.5) as ws:
        await ws.send(json.dumps({"prompt": "p", "model": "slow"}))

        async def flood() -> None:
            for _ in range(unreadable):
                await ws.send("not json")

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            await anyio.sleep(0.5)
            read_while_stalled = srv.read
            await anyio.sleep(0.5)  # within send_timeout: the answer still waits to send
            # One reply at a time: once one had to wait, the server read no further. It read
            # the connect, the prompt, the messages replied to before the stall, and one more.
            assert srv.read == read_while_stalled
            assert read_while_stalled < 10
            tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------ disconnects


@pytest.mark.parametrize("model", ["slow", "silent"])
async def test_client_disconnect_closes_the_source_within_a_second(
    server: tuple[Server, str], model: str
) -> None:
    """Also when the model is silent: the socket is read while the answer streams."""
    srv, base = server
    llm: FakeLLM = getattr(srv, model)
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "p", "model": model}))
        assert (await _recv(ws))["type"] == "start"
        assert (await _recv(ws))["type"] == "delta"
        assert llm.closed == 0
    closed_at = time.monotonic()  # the close handshake is done
    await _wait_for(lambda: llm.closed == 1, 1.0)
    assert time.monotonic() - closed_at < 1.0
    await _wait_for(lambda: len(srv.results) == 1, 2)
    assert srv.results[0].reason == "disconnected"


async def test_an_aborted_connection_closes_the_source_within_a_second(
    server: tuple[Server, str],
) -> None:
    """The TCP connection drops without a close frame."""
    srv, base = server
    ws = await _connect(base + "/ws")
    try:
        await ws.send(json.dumps({"prompt": "p", "model": "silent"}))
        assert (await _recv(ws))["type"] == "start"
        assert (await _recv(ws))["type"] == "delta"
        ws.transport.abort()
        aborted_at = time.monotonic()
        await _wait_for(lambda: srv.silent.closed == 1, 1.0)
        assert time.monotonic() - aborted_at < 1.0
    finally:
        with anyio.move_on_after(5):
            await ws.close()


# ------------------------------------------------------------------------------ errors


async def test_a_failing_source_ends_its_answer_with_a_safe_error(
    server: tuple[Server, str],
) -> None:
    _, base = server
    async with _connect(base + "/ws") as ws:
        await ws.send(json.dumps({"prompt": "p", "request_id": "f", "model": "fail"}))
        failed = await _answer(ws, "f")
        await ws.send(json.dumps({"prompt": "p", "request_id": "b", "model": "boom"}))
        boom = await _answer(ws, "b")
        await ws.send(json.dumps({"prompt": "p", "request_id": "n", "model": "none"}))
        none = await _answer(ws, "n")
        await ws.send(json.dumps({"prompt": "ok", "request_id": "ok"}))
        ok = await _answer(ws, "ok")
    assert _text(failed) == "".join(tokenize(FakeLLM().text_for("p"))[:2])
    for messages in (failed, boom, none):
        assert messages[-1] == {
            "type": "error",
            "request_id": messages[0]["request_id"],
            "message": SAFE_ERROR,
            "code": "internal_error",
        }
        assert "hunter2" not in json.dumps(messages)
    assert ok[-1]["type"] == "done"


async def test_shutdown_ends_the_answer_and_closes_the_socket(
    server: tuple[Server, str],
) -> None:
    srv, base = server
    async with _connect(base + "/shutdown") as ws:
        await ws.send(json.dumps({"prompt": "p", "request_id": 1, "model": "silent"}))
        assert (await _recv(ws))["type"] == "start"
        srv.shutdown.flag.set()
        messages = await _answer(ws, 1)
        assert messages[-1]["type"] == "error"
        assert messages[-1]["code"] == "shutdown"
        with pytest.raises(ConnectionClosed), anyio.fail_after(5):
            await ws.recv()
        assert ws.close_code == 1012
    assert srv.silent.closed == 1


# ------------------------------------------------------------------------------ providers


async def test_a_recorded_tool_call_stream_arrives_as_tool_call_messages(
    server: tuple[Server, str],
) -> None:
    _, base = server
    path = next(p for p in fixture_files("openai-chat") if "parallel-tool-calls" in p.name)
    reasoning_path = next(p for p in fixture_files("openai-chat") if "deepseek" in p.name)
    async with _connect(base + "/replay") as ws:
        await ws.send(json.dumps({"prompt": fixture_id(path), "request_id": "t"}))
        tools = await _answer(ws, "t")
        await ws.send(json.dumps({"prompt": fixture_id(reasoning_path), "request_id": "r"}))
        reasoning = await _answer(ws, "r")
    want = expected(path)
    calls = [
        (m["id"], m["name"], json.loads(m["arguments"])) for m in tools if m["type"] == "tool_call"
    ]
    assert calls == want.tool_calls
    assert tools[-1]["finish_reason"] == "tool_calls"
    assert tools[-1]["usage"]["input_tokens"] == want.usage["input_tokens"]  # type: ignore[index]
    want_r = expected(reasoning_path)
    assert "".join(m["text"] for m in reasoning if m["type"] == "reasoning") == want_r.reasoning
    assert _text(reasoning) == want_r.text


# ------------------------------------------------------------------------------ the example

PROMPT = "한국어로 인사해 줘 🙂"


def _example(fake: FakeLLM, results: list[StreamResult], env: dict[str, str] | None = None) -> Any:
    return load_example("websocket").create_app(
        fake=fake, env=env or {}, on_complete=results.append
    )


async def test_websocket_example_answers_two_prompts() -> None:
    fake = FakeLLM(delay=0.002)
    results: list[StreamResult] = []
    with run_uvicorn(_example(fake, results)) as base:
        async with _connect(base.replace("http://", "ws://") + "/ws") as ws:
            await ws.send(json.dumps({"prompt": PROMPT, "request_id": "1"}))
            first = await _answer(ws, "1")
            await ws.send(json.dumps({"prompt": "again", "request_id": "2"}))
            second = await _answer(ws, "2")
        await _wait_for(lambda: len(results) == 2, 5)
    assert _text(first) == fake.text_for(PROMPT)
    assert _text(second) == fake.text_for("again")
    assert first[-1]["type"] == second[-1]["type"] == "done"


async def test_websocket_example_streams_a_real_openai_sdk_response(
    replay_server: ReplayServer,
) -> None:
    path = next(p for p in fixture_files("openai-chat") if "crewai" in p.name)
    env = {
        "OPENAI_API_KEY": "test",
        "OPENAI_BASE_URL": replay_server.base_url + "/v1",
        "SSE_LLM_MODEL": fixture_id(path),
    }
    results: list[StreamResult] = []
    with run_uvicorn(_example(FakeLLM(), results, env)) as base:
        async with _connect(base.replace("http://", "ws://") + "/ws") as ws:
            await ws.send(json.dumps({"prompt": "weather?", "request_id": "w"}))
            messages = await _answer(ws, "w")
    calls = [
        (m["id"], m["name"], json.loads(m["arguments"]))
        for m in messages
        if m["type"] == "tool_call"
    ]
    assert calls == expected(path).tool_calls
    assert messages[-1]["type"] == "done" and messages[-1]["finish_reason"] == "tool_calls"


@pytest.mark.browser
def test_websocket_example_page_answers_in_chromium() -> None:
    """Two prompts, then Stop during a third: all over the page's one socket."""
    fake = FakeLLM(delay=0.01)
    results: list[StreamResult] = []
    with run_uvicorn(_example(fake, results)) as base, launch_chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base + "/")
        page.wait_for_function("document.body.dataset.state === 'idle'", timeout=30_000)
        texts = []
        for i, prompt in enumerate([PROMPT, "second"]):
            page.fill("#prompt", prompt)
            page.press("#prompt", "Enter")
            selector = f".assistant:nth-of-type({2 * i + 2})[data-status=done]"
            page.wait_for_selector(selector, timeout=60_000)
            texts.append(page.evaluate(f"document.querySelector('{selector}').firstChild.data"))
        fake.delay = 0.5  # slow enough to stop mid-answer
        page.fill("#prompt", "stop me")
        page.press("#prompt", "Enter")
        page.wait_for_function("!document.getElementById('stop').disabled", timeout=30_000)
        page.click("#stop")
        page.wait_for_selector(".assistant[data-status=cancelled]", timeout=30_000)
    assert texts == [fake.text_for(PROMPT), fake.text_for("second")]
    assert errors == []
    deadline = time.monotonic() + 5
    while len(results) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [r.reason for r in results] == ["completed", "completed", "disconnected"]


@pytest.mark.anyio
async def test_an_async_handler_still_waiting_can_be_cancelled(server: tuple[Server, str]) -> None:
    # Found in review of this change: awaiting the handler before the pump held `start`, the
    # heartbeats and a cancel back until the handler's request answered.
    srv, base = server
    async with _connect(base + "/thinking") as ws:
        await ws.send(json.dumps({"prompt": "hi", "request_id": "r1"}))
        assert (await _recv(ws))["type"] == "start"
        await ws.send(json.dumps({"type": "cancel"}))
        ended = await _recv(ws)
        assert (ended["type"], ended["request_id"]) == ("cancelled", "r1")
    await _wait_for(lambda: srv.results, 5)
    assert [r.reason for r in srv.results] == ["disconnected"]


async def test_the_module_docstring_examples_run_as_written() -> None:
    # Found in review: the example used FastAPI's @app.websocket on a Starlette app, did not
    # import WebSocket, and registered "/ws" twice.
    from fastapi import FastAPI

    import sse_llm.websocket

    doc = sse_llm.websocket.__doc__ or ""
    blocks = []
    for part in doc.split("::\n\n")[1:]:
        code = []
        for line in part.split("\n"):
            if line and not line.startswith("    "):
                break
            code.append(line[4:])
        blocks.append("\n".join(code))
    assert len(blocks) == 2
    llm = FakeLLM(delay=0)
    namespace: dict[str, Any] = {"app": FastAPI(), "llm": llm}
    for code in blocks:
        exec(compile(code, "<docstring>", "exec"), namespace)
    with run_uvicorn(namespace["app"]) as base:
        for path in ("/ws", "/chat"):
            async with _connect(base.replace("http://", "ws://") + path) as ws:
                await ws.send(json.dumps({"prompt": "안녕", "request_id": "a"}))
                messages = await _answer(ws, "a")
            assert _text(messages) == llm.text_for("안녕") and messages[-1]["type"] == "done"


@pytest.mark.parametrize("then", ["cancel", "new prompt", "leave"])
async def test_a_sync_handler_s_source_is_closed_when_its_answer_ends_before_it_returns(
    then: str,
) -> None:
    # Found in review: a sync handler runs in a worker thread (a sync SDK's create() waits
    # for the model's first bytes); a cancel, a new prompt or a client that left meanwhile
    # cancelled the wait, the thread went on, and the stream it returned was never closed:
    # its upstream request kept generating until garbage collection.
    made: list[str] = []
    closed: list[str] = []

    class SyncSDKStream:  # the shape of openai.Stream: an iterator with close()
        def __init__(self, prompt: str) -> None:
            self.tokens = iter(["a ", "b "])
            made.append(prompt)

        def __iter__(self) -> SyncSDKStream:
            return self

        def __next__(self) -> str:
            return next(self.tokens)

        def close(self) -> None:
            closed.append("closed")

    def handler(message: dict[str, Any]) -> SyncSDKStream:
        time.sleep(0.3)  # the SDK waits for the response's headers
        return SyncSDKStream(message["prompt"])

    app = Starlette(routes=[WebSocketRoute("/ws", LLMWebSocket(handler))])
    with run_uvicorn(app) as base:
        async with _connect(base.replace("http://", "ws://") + "/ws") as ws:
            await ws.send(json.dumps({"prompt": "first", "request_id": "a"}))
            await anyio.sleep(0.05)  # the handler runs
            if then == "leave":
                await ws.close()
            else:
                second = {"prompt": "second", "request_id": "b"}
                message = {"type": "cancel"} if then == "cancel" else second
                await ws.send(json.dumps(message))
                assert (await _answer(ws, "a"))[-1]["type"] == "cancelled"
                if then == "new prompt":
                    assert [m["type"] for m in await _answer(ws, "b")][-1] == "done"
        await _wait_for(lambda: made[:1] == ["first"] and len(closed) == len(made), 5)


def test_a_sync_handler_s_late_source_is_closed_also_after_the_event_loop_ended() -> None:
    # Found in review: the late result was closed through the event loop, which fails once
    # the loop has ended (a server exiting while a sync SDK call still waits): left open.
    import asyncio

    from sse_llm._views import call_handler

    closed: list[str] = []
    returned = threading.Event()

    class SyncSDKStream:
        def __iter__(self) -> SyncSDKStream:
            return self

        def __next__(self) -> str:
            raise StopIteration

        def close(self) -> None:
            closed.append("closed")

    def handler(message: dict[str, Any]) -> SyncSDKStream:
        time.sleep(0.3)
        try:
            return SyncSDKStream()
        finally:
            returned.set()

    async def cancelled_at_once() -> None:
        task = asyncio.ensure_future(call_handler(handler, {}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_at_once())  # the loop ends while the handler still runs
    assert returned.wait(5)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:  # bounded: closed right after it returned
        time.sleep(0.01)
    assert closed == ["closed"]
