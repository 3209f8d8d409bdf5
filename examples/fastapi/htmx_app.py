# /// script
# requires-python = ">=3.11"
# # From a clone, sse-llm comes from the repository: `pip install -e . --group demo`.
# dependencies = ["sse-llm[fastapi,html,openai]", "uvicorn>=0.30"]
# ///
"""The sse-llm chat with htmx: server-rendered, sanitised HTML fragments, no app JavaScript.

Run it from the repository root, then open http://127.0.0.1:8000::

    .venv/bin/uvicorn --app-dir examples/fastapi htmx_app:app

Two pages, the same fake model (or an OpenAI-compatible server when ``OPENAI_API_KEY`` is set,
with ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL``, read at every request):

- ``GET /``: htmx 4 + its ``hx-sse`` extension. The form ``hx-post``s to ``/api/chat``, whose
  response is the event stream itself (:class:`sse_llm.html.MarkdownFormat`): the first event
  inserts the message pair, the next ones the growing, sanitised Markdown (settled blocks out of
  band, the growing last block into the tail, the ``target:`` of the form's ``hx-swap``), the
  last one what is left of the answer; ``event: done`` resets the form. The form is disabled
  while it streams; Stop aborts the request, which the server sees as a disconnect (source
  closed, hook called).
- ``GET /htmx2``: htmx 2 + ``htmx-ext-sse``. ``EventSource`` can only GET, so the form
  ``hx-post``s to ``/htmx2/send``, which stores the prompt and answers with the message pair
  holding ``sse-connect="/api/stream/<id>"``, ``sse-swap="message"`` and ``sse-close="done"``.
  The stream (:class:`sse_llm.html.HTMLAppendFormat`) appends escaped text, then swaps in the
  sanitised Markdown of the whole answer and sends ``done``, on which the extension closes the
  ``EventSource`` (which would otherwise reconnect and ask again). With "Markdown while
  streaming" ticked, the pair holds a tail element with ``sse-swap="message"`` and the stream is
  :class:`sse_llm.html.MarkdownFormat` (``create_tail=False``): sanitised Markdown block by block.

Both pages show a "Searching the web…" line while the provider runs a tool (the fake model
pretends to search first) and list the answer's sources under it, sanitised on the server
(only ``http(s)`` links, titles escaped and shortened).

Every URL in the pages comes from ``request.url_for``, so the app also works mounted under a
prefix (``parent.mount("/htmx", create_app())``). The vendored htmx files
(``examples/_vendor/htmx``) are served from ``/static/``, the pages' own script (an answer
stopped or cut off, ``examples/_shared/htmx4-chat.js``) from ``/shared/``: the demo needs no CDN.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sse_llm import CompletionHook, Source, StreamResult, WireFormat
from sse_llm.fastapi import SSEResponse
from sse_llm.html import HTMLAppendFormat, MarkdownFormat, MarkdownRenderer
from sse_llm.testing import DEFAULT_ACTIVITY, DEFAULT_SOURCES, FakeLLM

if TYPE_CHECKING:
    from openai import AsyncOpenAI

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "_vendor" / "htmx"
SHARED = HERE.parent / "_shared"  # the pages' own scripts
MAX_PROMPT = 4000  # characters
MAX_PENDING = 1000  # htmx 2 prompts waiting for their EventSource; the oldest are dropped
DEFAULT_MODEL = "gpt-4o-mini"

logger = logging.getLogger("sse_llm.demo.htmx")


def log_answer(result: StreamResult) -> None:
    """The default completion hook: where an app would save the answer, even a cut one."""
    logger.info("answer %s after %d characters", result.reason, len(result.text))


async def read_prompt(request: Request) -> str:
    """The ``prompt`` field of a urlencoded form post (what htmx sends for a plain form).

    Parsed here rather than with ``Form()`` so the demo needs no ``python-multipart``.

    Raises:
        HTTPException: 415 for another body type, 422 for a missing, empty or too long prompt.
    """
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise HTTPException(415, "send the form urlencoded")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    prompt = (fields.get("prompt") or [""])[0].strip()
    if not prompt or len(prompt) > MAX_PROMPT:
        raise HTTPException(422, f"prompt: 1 to {MAX_PROMPT} characters")
    return prompt


async def _failed(exc: Exception) -> AsyncIterator[Any]:
    """A source that raises ``exc``: the pump turns it into the stream's error fragment."""
    raise exc
    yield  # an async generator, never reached


def create_app(
    *,
    fake: FakeLLM | None = None,
    env: Mapping[str, str] | None = None,
    on_complete: CompletionHook | None = log_answer,
    interval: float = 0.1,
) -> FastAPI:
    """Build the htmx demo.

    Args:
        fake: the model used when no ``OPENAI_API_KEY`` is set (default: one token every 30 ms,
            after a pretend web search, citing three sources).
        env: where to read ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``SSE_LLM_MODEL``;
            ``os.environ`` (at each request) by default.
        on_complete: the completion hook of every answer stream.
        interval: seconds between Markdown renders on the htmx 4 page.
    """
    if fake is None:
        fake = FakeLLM(delay=0.03, activity=DEFAULT_ACTIVITY, sources=DEFAULT_SOURCES)
    clients: dict[tuple[str, str | None], AsyncOpenAI] = {}
    numbers = itertools.count(1)  # message ids; a real app would use its database's
    # htmx 2: (prompt, Markdown while streaming?) waiting for their EventSource
    pending: OrderedDict[int, tuple[str, bool]] = OrderedDict()
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in clients.values():
            await client.close()

    app = FastAPI(title="sse-llm htmx demo", lifespan=lifespan)

    async def answer(prompt: str) -> Source:
        """The fake model, or the configured OpenAI-compatible server."""
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
        try:
            # Passed as is: sse-llm reads the SDK's chunks and closes the stream on disconnect.
            return await client.chat.completions.create(
                model=config.get("SSE_LLM_MODEL") or DEFAULT_MODEL,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
            )
        except openai.APIError as exc:
            return _failed(exc)  # shown in the answer as the provider's message

    def path_for(request: Request, name: str, **params: Any) -> str:
        # url_for includes the root path, so links work when this app is mounted at a prefix;
        # only the path is kept so the pages don't depend on the Host header.
        return request.url_for(name, **params).path

    def page_context(request: Request) -> dict[str, Any]:
        return {
            "static": lambda file: path_for(request, "htmx_static", path=file),
            "shared": lambda file: path_for(request, "shared_static", path=file),
            "htmx4_url": path_for(request, "htmx4_page"),
            "htmx2_url": path_for(request, "htmx2_page"),
        }

    @app.get("/", response_class=HTMLResponse, name="htmx4_page", include_in_schema=False)
    async def htmx4_page(request: Request) -> Response:
        context = page_context(request) | {"chat_url": path_for(request, "htmx4_chat")}
        return templates.TemplateResponse(request, "htmx/htmx4.html", context)

    @app.post("/api/chat", response_class=SSEResponse, name="htmx4_chat")
    async def htmx4_chat(request: Request) -> SSEResponse:
        """The answer as sanitised Markdown fragments (out-of-band swaps, htmx 4 ``hx-sse``)."""
        prompt = await read_prompt(request)
        number = next(numbers)
        # Trusted server HTML: the template escapes the prompt.
        pair = templates.get_template("htmx/pair4.html").render(prompt=prompt, number=number)
        fmt = MarkdownFormat(
            f"answer-{number}",
            prelude=f'<div hx-swap-oob="beforeend:#messages">{pair}</div>',
            interval=interval,
        )
        return SSEResponse(await answer(prompt), format=fmt, on_complete=on_complete)

    @app.get("/htmx2", response_class=HTMLResponse, name="htmx2_page", include_in_schema=False)
    async def htmx2_page(request: Request) -> Response:
        context = page_context(request) | {"send_url": path_for(request, "htmx2_send")}
        return templates.TemplateResponse(request, "htmx/htmx2.html", context)

    @app.post("/htmx2/send", response_class=HTMLResponse, name="htmx2_send")
    async def htmx2_send(request: Request) -> Response:
        """Store the prompt; answer with the pair whose ``sse-connect`` GETs the stream."""
        prompt = await read_prompt(request)
        markdown = "markdown" in parse_qs((await request.body()).decode("utf-8", "replace"))
        number = next(numbers)
        pending[number] = (prompt, markdown)
        while len(pending) > MAX_PENDING:
            pending.popitem(last=False)
        context = {
            "prompt": prompt,
            "number": number,
            "stream_url": path_for(request, "htmx2_stream", number=number),
            "markdown": markdown,
        }
        return templates.TemplateResponse(request, "htmx/pair2.html", context)

    @app.get("/api/stream/{number}", name="htmx2_stream")
    async def htmx2_stream(number: int) -> Response:
        """The answer for ``EventSource``, then ``done`` (``sse-close``): escaped text appended
        and the Markdown at the end, or (box ticked) sanitised Markdown block by block into the
        tail element the pair holds (``create_tail=False``)."""
        waiting = pending.pop(number, None)
        if waiting is None:
            # Already answered (or unknown): 204 No Content, nothing to stream. EventSource
            # stops reconnecting on any status but 200 (WHATWG HTML §9.2.3); 204 says so
            # without claiming an error.
            return Response(status_code=204)
        prompt, markdown = waiting
        target = f"answer-{number}"
        fmt: WireFormat = (
            MarkdownFormat(target, create_tail=False, interval=interval)
            if markdown
            else HTMLAppendFormat(target, markdown=MarkdownRenderer())
        )
        return SSEResponse(await answer(prompt), format=fmt, on_complete=on_complete)

    app.mount("/static", StaticFiles(directory=VENDOR), name="htmx_static")
    app.mount("/shared", StaticFiles(directory=SHARED), name="shared_static")
    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
