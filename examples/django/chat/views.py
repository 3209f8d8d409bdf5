"""The chat: one POST per question, answered as a stream of sanitised Markdown fragments.

``GET /`` shows the browser's conversation (its id is in a signed cookie) or an empty page:
opening the page saves nothing. The first question creates the conversation.

The form posts with htmx 4 (``hx-post`` + the ``hx-sse`` extension): the response is
``text/event-stream``; its first event inserts the message pair, the next ones fill the answer
(:class:`sse_llm.html.MarkdownFormat`: settled blocks out of band, the growing last block into
the tail element that the form's ``hx-swap`` targets), the last one adds what is left. When the
answer ends, however it ends (finished, Stop button, tab closed, model error), ``on_complete``
saves the text received so far.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from sse_llm import Source, StreamResult
from sse_llm.django import SSEResponse, sse
from sse_llm.html import MarkdownFormat, MarkdownRenderer
from sse_llm.testing import FakeLLM

from .models import Conversation, Message

MAX_PROMPT = 4000  # characters
COOKIE = "conversation"
MARKDOWN = MarkdownRenderer()
#: The OpenAI clients of each event loop, by (API key, base URL); see answer(). A server
#: process runs one loop, so this holds one entry (a client keeps its loop alive).
_CLIENTS: dict[asyncio.AbstractEventLoop, dict[tuple[str, str | None], Any]] = {}
STATUS_BY_REASON = {
    "completed": Message.COMPLETED,
    "disconnected": Message.STOPPED,
    "timeout": Message.STOPPED,
    "shutdown": Message.STOPPED,
    "error": Message.ERROR,
}


def _fake() -> FakeLLM:
    """The embedded model; ``SSE_LLM_FAKE_DELAY`` (seconds per token) and
    ``SSE_LLM_FAKE_ANSWER_FILE`` (answer text) let tests shape it."""
    delay = float(os.environ.get("SSE_LLM_FAKE_DELAY", "0.03"))
    answer_file = os.environ.get("SSE_LLM_FAKE_ANSWER_FILE")
    if answer_file:
        return FakeLLM(Path(answer_file).read_text(encoding="utf-8"), delay=delay)
    return FakeLLM(delay=delay)


async def answer(prompt: str) -> Source:
    """The fake model, or any OpenAI-compatible server when ``OPENAI_API_KEY`` is set
    (``OPENAI_BASE_URL``, ``SSE_LLM_MODEL``)."""
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        return _fake().stream(prompt)
    import openai

    # One client per event loop (a server process runs one) and configuration: it keeps its
    # connection pool across requests (a client per request left its sockets to the garbage
    # collector). Django has no lifespan to close it in: it lives as long as the process.
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    base_url = os.environ.get("OPENAI_BASE_URL") or None
    client = clients.get((api_key, base_url))
    if client is None:
        client = clients[api_key, base_url] = openai.AsyncOpenAI(api_key=api_key, base_url=base_url)
    # The SDK stream is passed as is: sse-llm reads its chunks and closes it on disconnect.
    return await client.chat.completions.create(
        model=os.environ.get("SSE_LLM_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},  # OpenAI sends usage only when asked
    )


def pair_context(message: Message) -> dict[str, Any]:
    # Sanitised by sse-llm's Markdown renderer (nh3 allow-list), so safe to mark as such.
    return {"m": message, "answer_html": mark_safe(MARKDOWN.render(message.answer))}


async def current_conversation(request: HttpRequest) -> Conversation | None:
    """The browser's conversation: its id travels in a signed cookie, set by the first
    question (so opening the page writes nothing to the database)."""
    conversation_id = request.get_signed_cookie(COOKIE, default=None, salt=COOKIE)
    if conversation_id is None:
        return None
    return await Conversation.objects.filter(pk=conversation_id).afirst()


async def index(request: HttpRequest) -> HttpResponse:
    """The chat page: the current conversation, or an empty one (nothing saved yet)."""
    chat = await current_conversation(request)
    pairs = [] if chat is None else [pair_context(m) async for m in chat.messages.all()]
    return render(request, "chat/index.html", {"pairs": pairs})


@require_POST
def new_conversation(request: HttpRequest) -> HttpResponse:
    """The "New conversation" button: forget the current one (it stays in the database)."""
    response = redirect("index")
    response.delete_cookie(COOKIE)
    return response


@require_POST
async def send(request: HttpRequest) -> HttpResponse:
    prompt = request.POST.get("prompt", "").strip()
    if not prompt or len(prompt) > MAX_PROMPT:
        return HttpResponseBadRequest("prompt: 1 to 4000 characters")
    chat = await current_conversation(request) or await Conversation.objects.acreate()
    message = await Message.objects.acreate(conversation=chat, prompt=prompt)

    async def save(result: StreamResult) -> None:
        # Runs whatever the ending, before the response finishes: a stopped answer is kept.
        await Message.objects.filter(pk=message.pk).aupdate(
            answer=result.text, status=STATUS_BY_REASON[result.reason]
        )

    pair = render_to_string("chat/pair.html", {"m": message, "answer_html": ""})
    response = SSEResponse(
        # Not awaited here: the response awaits it, so that a provider refusing the request
        # (a bad key, a 429) ends the stream with its `error` event and on_complete still saves.
        answer(prompt),
        request=request,
        format=MarkdownFormat(
            f"answer-{message.pk}",
            # Trusted server HTML only: the user's prompt is escaped by the template.
            prelude=f'<div hx-swap-oob="beforeend:#messages">{pair}</div>',
            interval=0.1,
        ),
        heartbeat=float(os.environ.get("SSE_LLM_HEARTBEAT", "10")),
        on_complete=save,
    )
    # The headers go out before the first event: the next question joins this conversation.
    response.set_signed_cookie(COOKIE, chat.pk, salt=COOKIE, httponly=True, samesite="Lax")
    return response


@sse
async def wsgi_probe(request: HttpRequest) -> AsyncIterator[str]:
    """A decorated async generator view; under WSGI it answers 500 UnsupportedServerError."""
    yield "ok"
