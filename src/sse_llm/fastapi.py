"""FastAPI adapter: the Starlette adapter plus a ``Last-Event-ID`` dependency (for
:class:`ResumeResponse`, the resumable streams of :mod:`sse_llm.resume`).

Example::

    from fastapi import FastAPI
    from sse_llm.fastapi import LastEventID, SSEResponse

    app = FastAPI()

    @app.get("/chat")
    async def chat(last_event_id: LastEventID = None):
        return SSEResponse(llm.stream("hi"))
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from fastapi import Header

from .starlette import ResumeResponse, SSEEndpoint, SSEResponse, sse

__all__ = ["LastEventID", "ResumeResponse", "SSEEndpoint", "SSEResponse", "sse"]

#: The ``Last-Event-ID`` request header a reconnecting ``EventSource`` sends (WHATWG HTML
#: §9.2.4): the ``id`` of the last event it received, or ``None`` on a first connection.
LastEventID: TypeAlias = Annotated[str | None, Header(alias="Last-Event-ID")]
