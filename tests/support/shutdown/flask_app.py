"""A Flask app streaming with SSEResponse; ``graceful_shutdown(app)`` is the one line
(left out with ``SSE_LLM_TEST_NO_GRACEFUL=1``)."""

from __future__ import annotations

import os
import signal
import threading

from flask import Flask

from sse_llm.flask import SSEResponse, graceful_shutdown
from tests.support.shutdown.common import hook, sync_tokens, tokens

app = Flask(__name__)
if not os.environ.get("SSE_LLM_TEST_NO_GRACEFUL"):
    graceful_shutdown(app)
elif threading.current_thread() is threading.main_thread():
    # Ctrl+C as in a terminal, whatever the test process handed down: a SIGINT it ignores
    # (or blocks) is ignored (or blocked) in its children too, and Python then installs no
    # KeyboardInterrupt handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)


@app.get("/stream")
def stream() -> SSEResponse:
    return SSEResponse(tokens(), on_complete=hook)


@app.get("/sync")
def sync_stream() -> SSEResponse:
    return SSEResponse(sync_tokens(), on_complete=hook)


@app.get("/ping")
def ping() -> str:
    return "pong"
