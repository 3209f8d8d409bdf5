# /// script
# requires-python = ">=3.11"
# # From a clone, sse-llm comes from the repository: `pip install -e '.[flask,openai]'`.
# dependencies = ["sse-llm[flask,openai]"]
# ///
"""The sse-llm chat demo on Flask (WSGI): a page and one streaming endpoint.

Run it from the repository root (``make demo-flask``), then open http://127.0.0.1:8000 (the
commands below serve on Flask's own port, 5000)::

    .venv/bin/flask --app examples/flask/app.py run

(or behind gunicorn: ``gunicorn --threads 32 --chdir examples/flask app:app``; each open
stream holds a worker thread, so use threads, not one process per stream.)

With no configuration the answers come from a sync generator over the embedded fake model's
text. With ``OPENAI_API_KEY`` set they come from any OpenAI-compatible server through the
sync ``openai`` client: ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL`` (default ``gpt-4o-mini``).

Endpoints:

- ``GET /``: the chat page (below, self-contained).
- ``POST /api/chat`` with ``{"prompt": "..."}``: the answer in
  :class:`sse_llm.formats.TypedJSONFormat`: ``data: {"type": "session", ...}``, then
  ``{"type": "delta", "delta": "..."}`` ..., then ``{"type": "done", ...}`` or
  ``{"type": "error", "message": ...}``, then ``data: [DONE]``.
- ``POST /api/chat/complete`` with ``{"prompt": "..."}``: the same answer, not streamed, as
  one JSON object (:func:`sse_llm.collect` and :func:`sse_llm.result_json`): the page falls
  back to it when the stream fails (a network error, an HTTP error, or no event within
  ``first_event_timeout`` seconds, as behind a proxy that buffers the response).
- ``GET /api/chat/async?prompt=...``: the same from the async ``FakeLLM.stream`` (the
  adapter runs async sources on its background event loop).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
from flask import Flask, Response, jsonify, request

from sse_llm import CompletionHook, StreamResult, collect, result_json
from sse_llm.flask import SSEResponse
from sse_llm.formats import TypedJSONFormat
from sse_llm.testing import FakeLLM, tokenize

MAX_PROMPT = 4000  # characters
DEFAULT_MODEL = "gpt-4o-mini"

logger = logging.getLogger("sse_llm.demo")


def log_answer(result: StreamResult) -> None:
    """Where an app would save the answer, even one cut short by the client leaving."""
    logger.info("answer %s after %d characters", result.reason, len(result.text))


def fake_tokens(fake: FakeLLM, prompt: str) -> Iterator[str]:
    """A sync token generator, as a blocking SDK would give: the fake model's answer."""
    for count, token in enumerate(tokenize(fake.text_for(prompt))):
        if count and fake.delay:
            time.sleep(fake.delay)
        yield token


def create_app(
    *,
    fake: FakeLLM | None = None,
    env: Mapping[str, str] | None = None,
    on_complete: CompletionHook | None = log_answer,
    heartbeat: float = 15.0,
    first_event_timeout: float = 10.0,
) -> Flask:
    """Build the demo app.

    Args:
        fake: the model used when no ``OPENAI_API_KEY`` is set (default ``FakeLLM(delay=0.03)``).
        env: where to read ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL``;
            ``os.environ`` (at each request) by default.
        on_complete: the streams' completion hook.
        heartbeat: seconds of silence before a keep-alive comment.
        first_event_timeout: seconds the page waits for the stream's first event before it
            gives up on streaming and asks ``/api/chat/complete`` instead.
    """
    fake = fake if fake is not None else FakeLLM(delay=0.03)
    app = Flask(__name__)

    def answer(prompt: str) -> Any:
        config = os.environ if env is None else env
        api_key = config.get("OPENAI_API_KEY")
        if not api_key:
            return fake_tokens(fake, prompt)
        import openai  # only needed when a real model is configured

        client = openai.OpenAI(api_key=api_key, base_url=config.get("OPENAI_BASE_URL") or None)
        # The sync SDK stream goes in as is: sse-llm recognises its chunks and closes it
        # (and the upstream request) when the browser goes away.
        return client.chat.completions.create(
            model=config.get("SSE_LLM_MODEL") or DEFAULT_MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )

    @app.get("/")
    def page() -> Response:
        timeout_ms = str(round(first_event_timeout * 1000))
        return Response(PAGE.replace("{first_event_timeout_ms}", timeout_ms), mimetype="text/html")

    def read_prompt() -> str | None:
        body = request.get_json(silent=True)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
            return None
        return prompt

    @app.post("/api/chat")
    def chat() -> Any:
        # Read the request here: the stream runs outside the request context.
        prompt = read_prompt()
        if prompt is None:
            return jsonify(detail="send a prompt of 1 to 4000 characters"), 422
        try:
            source = answer(prompt)
        except Exception as exc:  # refused before streaming (bad key, server down)
            logger.warning("the model refused the request: %s", exc)
            return jsonify(detail="the model is not available"), 502
        return SSEResponse(
            source, format=TypedJSONFormat(), heartbeat=heartbeat, on_complete=on_complete
        )

    @app.post("/api/chat/complete")
    def chat_complete() -> Any:
        """The whole answer as JSON: the same model and normalisation, nothing streamed."""
        prompt = read_prompt()
        if prompt is None:
            return jsonify(detail="send a prompt of 1 to 4000 characters"), 422
        try:
            source = answer(prompt)
        except Exception as exc:
            logger.warning("the model refused the request: %s", exc)
            return jsonify(detail="the model is not available"), 502
        result = anyio.run(lambda: collect(source, on_complete=on_complete))
        return jsonify(result_json(result))

    @app.get("/api/chat/async")
    def chat_async() -> Any:
        prompt = request.args.get("prompt", "")[:MAX_PROMPT]
        return SSEResponse(fake.stream(prompt), format=TypedJSONFormat(), heartbeat=heartbeat)

    return app


# The page: fetch() + a small parser for the JSON events; the answer is inserted as text. When
# the stream fails (no event in time, a network or HTTP error) it asks /api/chat/complete.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>sse-llm Flask chat</title>
  <link rel="icon" href="data:,">
  <style>
    body { font-family: system-ui, sans-serif; max-width: 760px; margin: 0 auto; padding: 16px; }
    .message { padding: 8px 12px; margin: 8px 0; border-radius: 10px; white-space: pre-wrap; }
    .user { background: #2f6fed; color: #fff; margin-left: 20%; }
    .assistant { background: #eef0f4; margin-right: 20%; }
    .error { color: #b42318; }
    form { display: flex; gap: 8px; }
    textarea { flex: 1; font: inherit; }
  </style>
</head>
<body data-state="idle" data-first-event-timeout="{first_event_timeout_ms}">
  <h1>sse-llm on Flask</h1>
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
let controller = null;

function add(kind, text) {
  const div = document.createElement("div");
  div.className = "message " + kind;
  div.textContent = text;
  log.append(div);
  return div;
}

// Calls onData(data) for each SSE event: lines end in CRLF, CR or LF; "data:" lines are
// joined with LF; ":" lines are heartbeats. Feed it decoded text, however it was split.
function sseParser(onData) {
  let rest = "", data = null, cr = false;
  return (text) => {
    if (cr && text[0] === "\\n") text = text.slice(1);
    cr = text.endsWith("\\r");
    const lines = (rest + text).split(/\\r\\n|\\r|\\n/);
    rest = lines.pop();
    for (const line of lines) {
      if (line === "") { if (data !== null) onData(data); data = null; continue; }
      if (line[0] === ":") continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "data") data = data === null ? value : data + "\\n" + value;
    }
  };
}

// Streams the answer into div. Returns true when the stream completed (or the prompt was
// refused); false when the answer must be fetched whole: a network or HTTP error, a stream
// cut before [DONE], or no event within the first-event timeout (a proxy that buffers).
async function stream(prompt, div) {
  controller = new AbortController();
  let started = false, timedOut = false, finished = false;
  const timer = setTimeout(() => {
    if (!started) { timedOut = true; controller.abort(); }
  }, Number(document.body.dataset.firstEventTimeout));
  try {
    const response = await fetch("api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt }),
      signal: controller.signal,
    });
    if (response.status === 422) {
      add("assistant error", "Send 1 to 4000 characters.");
      return true;
    }
    if (!response.ok) return false;
    const decoder = new TextDecoder("utf-8"); // stream: true keeps split characters whole
    const feed = sseParser((data) => {
      started = true;
      if (data === "[DONE]") { finished = true; return; }
      const event = JSON.parse(data);
      if (event.type === "delta") div.textContent += event.delta;
      else if (event.type === "error") add("assistant error", event.message);
      else if (event.type === "done") div.dataset.status = "done";
    });
    const reader = response.body.getReader();
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
    return finished;
  } catch (error) {
    if (error.name === "AbortError" && !timedOut) throw error; // Stop: the user's choice
    return false;
  } finally {
    clearTimeout(timer);
    // Not finished (an event the page cannot read, a cut): end this request before the
    // fallback asks again, or the server goes on generating the first answer too.
    if (!finished) controller.abort();
  }
}

// The fallback: the whole answer in one JSON response (the same model, not streamed).
async function complete(prompt, div) {
  controller = new AbortController();
  const response = await fetch("api/chat/complete", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt }),
    signal: controller.signal,
  });
  if (!response.ok) throw new Error("HTTP " + response.status);
  const answer = await response.json();
  div.textContent = answer.text;
  div.dataset.via = "fallback";
  if (answer.error) add("assistant error", answer.error.message);
  div.dataset.status = answer.error ? "error" : "done";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const prompt = promptBox.value.trim();
  if (!prompt || controller) return;
  add("user", prompt);
  const div = add("assistant", "");
  div.dataset.status = "streaming";
  promptBox.value = "";
  stopButton.disabled = false;
  document.body.dataset.state = "streaming";
  try {
    if (!(await stream(prompt, div))) {
      div.textContent = "";
      div.dataset.status = "fallback";
      await complete(prompt, div);
    }
  } catch (error) {
    if (error.name !== "AbortError") add("assistant error", String(error));
  } finally {
    controller = null;
    stopButton.disabled = true;
    document.body.dataset.state = "idle";
  }
});

// abort() closes the connection: the server's next write fails and the model is stopped.
stopButton.addEventListener("click", () => controller && controller.abort());
promptBox.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
});
</script>
</body>
</html>
"""

app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000, threaded=True)
