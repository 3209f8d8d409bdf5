"""A Flask app streaming with SSEResponse; ``graceful_shutdown(app)`` is the one line
(left out with ``SSE_LLM_TEST_NO_GRACEFUL=1``)."""

from __future__ import annotations

import os

from flask import Flask

from sse_llm.flask import SSEResponse, graceful_shutdown
from tests.support.shutdown.common import hook, sync_tokens, tokens

app = Flask(__name__)
if not os.environ.get("SSE_LLM_TEST_NO_GRACEFUL"):
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
