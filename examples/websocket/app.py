# /// script
# requires-python = ">=3.11"
# # From a clone, sse-llm comes from the repository:
# # `pip install -e '.[fastapi,websocket,openai]' uvicorn`.
# # [websocket] brings `websockets`: without a WebSocket library uvicorn answers every
# # handshake with a 404 ("No supported WebSocket library detected").
# dependencies = ["sse-llm[fastapi,websocket,openai]", "uvicorn>=0.30"]
# ///
"""The sse-llm chat demo over a WebSocket (FastAPI): many prompts on one socket.

Run it from the repository root (``make demo-websocket``), then open http://127.0.0.1:8000::

    .venv/bin/uvicorn --app-dir examples/websocket app:app

With no configuration the answers come from the embedded fake model
(:class:`sse_llm.testing.FakeLLM`). With ``OPENAI_API_KEY`` set they come from any
OpenAI-compatible server: ``OPENAI_BASE_URL`` (Ollama, vLLM, LM Studio ...) and
``SSE_LLM_MODEL`` (default ``gpt-4o-mini``).

Endpoints:

- ``GET /``: the chat page (below, self-contained).
- ``WS /ws``: send ``{"prompt": "...", "request_id": "..."}``, receive ``start``, ``delta``
  ``{"text"}``, ``reasoning``, ``tool_call``, then ``done``, ``error`` or ``cancelled``
  (see :mod:`sse_llm.websocket`). ``{"type": "cancel"}`` stops the answer; a new prompt
  while one streams cancels it first. Closing the socket closes the model's stream at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from sse_llm import CompletionHook, Source, StreamResult
from sse_llm.testing import FakeLLM
from sse_llm.websocket import serve_websocket

if TYPE_CHECKING:
    from openai import AsyncOpenAI

MAX_PROMPT = 4000  # characters
DEFAULT_MODEL = "gpt-4o-mini"

logger = logging.getLogger("sse_llm.demo")


def log_answer(result: StreamResult) -> None:
    """Where an app would save each answer, also a cancelled one."""
    logger.info("answer %s after %d characters", result.reason, len(result.text))


def create_app(
    *,
    fake: FakeLLM | None = None,
    env: Mapping[str, str] | None = None,
    on_complete: CompletionHook | None = log_answer,
) -> FastAPI:
    """Build the demo app.

    Args:
        fake: the model used when no ``OPENAI_API_KEY`` is set (default ``FakeLLM(delay=0.03)``).
        env: where to read ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL``;
            ``os.environ`` (at each prompt) by default.
        on_complete: called with each answer's result.
    """
    fake = fake if fake is not None else FakeLLM(delay=0.03)
    clients: dict[tuple[str, str | None], AsyncOpenAI] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in clients.values():
            await client.close()

    app = FastAPI(title="sse-llm WebSocket demo", lifespan=lifespan)

    async def answer(message: Mapping[str, Any]) -> Source:
        """The handler: the client's message in, a stream source out."""
        prompt = str(message["prompt"])[:MAX_PROMPT]
        config = os.environ if env is None else env
        api_key = config.get("OPENAI_API_KEY")
        if not api_key:
            return fake.stream(prompt)
        import openai  # only needed when a real model is configured

        base_url = config.get("OPENAI_BASE_URL") or None
        client = clients.get((api_key, base_url))
        if client is None:
            client = clients[api_key, base_url] = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url
            )
        # An APIError raised here (bad key, unknown model) becomes this prompt's "error"
        # message with the provider's text; the socket stays open for the next prompt.
        return await client.chat.completions.create(
            model=config.get("SSE_LLM_MODEL") or DEFAULT_MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.websocket("/ws")
    async def chat(websocket: WebSocket) -> None:
        # Authenticate here (cookies, a token in the query) before serving, if needed.
        await serve_websocket(websocket, answer, on_complete=on_complete)

    return app


# The page: one socket for the whole conversation, the answer inserted as text (never HTML).
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>sse-llm WebSocket chat</title>
  <link rel="icon" href="data:,">
  <style>
    body { font-family: system-ui, sans-serif; max-width: 760px; margin: 0 auto; padding: 16px; }
    .message { padding: 8px 12px; margin: 8px 0; border-radius: 10px; white-space: pre-wrap; }
    .user { background: #2f6fed; color: #fff; margin-left: 20%; }
    .assistant { background: #eef0f4; margin-right: 20%; }
    .note { color: #6b7280; font-size: .85rem; }
    .error { color: #b42318; }
    form { display: flex; gap: 8px; }
    textarea { flex: 1; font: inherit; }
  </style>
</head>
<body data-state="connecting">
  <h1>sse-llm over a WebSocket</h1>
  <div id="log" aria-live="polite"></div>
  <form id="chat-form">
    <textarea id="prompt" rows="2" maxlength="4000" required autofocus></textarea>
    <button id="send" type="submit">Send</button>
    <button id="stop" type="button" disabled>Stop</button>
  </form>
<script>
"use strict";
const log = document.getElementById("log");
const form = document.getElementById("chat-form");
const promptBox = document.getElementById("prompt");
const stopButton = document.getElementById("stop");
const answers = new Map(); // request_id -> the answer's element
let next = 0;
let socket;

function add(kind, text) {
  const div = document.createElement("div");
  div.className = "message " + kind;
  div.textContent = text;
  log.append(div);
  return div;
}

function note(div, text, error) {
  const p = document.createElement("div");
  p.className = "note" + (error ? " error" : "");
  p.textContent = text;
  div.append(p);
}

function connect() {
  const url = new URL("ws", location.href); // relative: works under a path prefix
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(url);
  socket.onopen = () => { document.body.dataset.state = "idle"; };
  socket.onclose = () => {
    document.body.dataset.state = "closed";
    setTimeout(connect, 1000); // the server restarted: reconnect
  };
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    const div = answers.get(m.request_id);
    if (m.type === "error" && !div) { note(log, m.message, true); return; }
    if (!div) return; // an answer this page no longer shows
    if (m.type === "delta") div.firstChild.textContent += m.text;
    else if (m.type === "tool_call") note(div, "tool call: " + m.name + " " + m.arguments);
    else if (m.type === "error") note(div, m.message, true);
    else if (m.type === "cancelled") note(div, "(stopped)");
    if (m.type === "done" || m.type === "error" || m.type === "cancelled") {
      div.dataset.status = m.type;
      stopButton.disabled = true;
      document.body.dataset.state = "idle";
    }
  };
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const prompt = promptBox.value.trim();
  if (!prompt || socket.readyState !== WebSocket.OPEN) return;
  add("user", prompt);
  const div = add("assistant", "");
  div.append(document.createTextNode("")); // the answer; notes are appended after it
  const id = String(++next);
  answers.set(id, div);
  div.dataset.status = "streaming";
  socket.send(JSON.stringify({ prompt, request_id: id }));
  promptBox.value = "";
  stopButton.disabled = false;
  document.body.dataset.state = "streaming";
});

stopButton.addEventListener("click", () => socket.send(JSON.stringify({ type: "cancel" })));
promptBox.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});
connect();
</script>
</body>
</html>
"""

app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
