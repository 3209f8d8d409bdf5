"""A Flask app streaming with SSEResponse; ``graceful_shutdown(app)`` is the one line."""

from __future__ import annotations

from flask import Flask

from sse_llm.flask import SSEResponse, graceful_shutdown
from tests.support.shutdown.common import hook, sync_tokens, tokens

app = Flask(__name__)
graceful_shutdown(app)


@app.get("/stream")
def stream() -> SSEResponse:
    return SSEResponse(tokens(), on_complete=hook)


@app.get("/sync")
def sync_stream() -> SSEResponse:
    return SSEResponse(sync_tokens(), on_complete=hook)


@app.get("/ping")
def ping() -> str:
    return "pong"
