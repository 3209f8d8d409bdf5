# /// script
# requires-python = ">=3.11"
# # From a clone, sse-llm comes from the repository: `pip install -e '.[starlette]' uvicorn`.
# dependencies = ["sse-llm[starlette]", "uvicorn>=0.30"]
# ///
"""The sse-llm chat demo on plain Starlette, minimal: the page and one streaming endpoint.

Run it from the repository root (``make demo-starlette``), then open http://127.0.0.1:8000::

    .venv/bin/uvicorn --app-dir examples/starlette app:app

The answers come from the embedded fake model (:class:`sse_llm.testing.FakeLLM`). The FastAPI
demo (``examples/fastapi/app.py``) adds a real OpenAI-compatible model, the ``@sse`` decorator
and an ``SSEEndpoint``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sse_llm.starlette import SSEResponse
from sse_llm.testing import FakeLLM

SHARED = Path(__file__).resolve().parent.parent / "_shared"
VENDOR = Path(__file__).resolve().parent.parent / "_vendor" / "markdown"  # marked + DOMPurify
MAX_PROMPT = 4000  # characters

llm = FakeLLM(delay=0.03)


async def page(request: Request) -> FileResponse:
    return FileResponse(SHARED / "chat.html")


async def chat(request: Request) -> Response:
    """``POST {"prompt": ...}`` (the page's fetch) or ``GET ?prompt=...`` (EventSource)."""
    prompt: object = None
    if request.method == "POST":
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
    else:
        prompt = request.query_params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT:
        return JSONResponse({"detail": "send a prompt of 1 to 4000 characters"}, status_code=422)
    return SSEResponse(llm.stream(prompt))


app = Starlette(
    routes=[
        Route("/", page),
        Route("/api/chat", chat, methods=["GET", "POST"]),
        # Before /static: the page's Markdown renderer and sanitiser, served offline.
        Mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor"),
        Mount("/static", StaticFiles(directory=SHARED), name="static"),
    ]
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
