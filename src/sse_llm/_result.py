"""What a finished stream reports to its completion hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ._model import Citation, ErrorEvent, Finish, ToolActivity, ToolCall, Usage

__all__ = ["EndReason", "StreamResult"]

#: Why a stream ended:
#:
#: - ``completed``: the source ran out (or the provider finished) and the response was closed;
#: - ``disconnected``: the client went away (ASGI ``http.disconnect``);
#: - ``error``: the source raised, or the provider reported an error in its stream;
#: - ``timeout``: the client stopped reading and a send waited longer than ``send_timeout``;
#: - ``shutdown``: the app's shutdown event was set;
#: - ``cancelled``: a detached stream was stopped by ``StreamHub.cancel`` (a Stop button);
#: - ``abandoned``: a detached stream had no reader for ``StreamHub``'s ``abandon_after``.
EndReason: TypeAlias = Literal[
    "completed", "disconnected", "error", "timeout", "shutdown", "cancelled", "abandoned"
]


@dataclass(slots=True)
class StreamResult:
    """Everything a stream produced, handed to the completion hook whatever the ending.

    Attributes:
        reason: why the stream ended.
        text: the answer text streamed so far (all text deltas joined), also when cut short;
            as much of it as the stream's ``keep_text`` option keeps (all by default).
        text_truncated: ``keep_text`` cut :attr:`text` short.
        reasoning: the reasoning text streamed so far (kept as ``keep_text`` says, like
            :attr:`text`).
        tool_calls: complete tool calls (for the client to run), in order.
        citations: the sources the answer cites, in order.
        tool_activity: what tools the provider ran itself (web search, code execution):
            every ``started`` / ``finished`` / ``failed`` event, in order.
        finish: the provider's finish, if one arrived.
        usage: token usage, if reported.
        error: the exception the source raised, or the provider's in-stream error.
        events_sent: how many of the source's events (units) were handed to the transport:
            not the format's opening units (the AI SDK's ``start``), its last ones (``done``,
            ``error``, ``[DONE]``) or heartbeats.
    """

    reason: EndReason = "completed"
    text: str = ""
    text_truncated: bool = False
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    tool_activity: list[ToolActivity] = field(default_factory=list)
    finish: Finish | None = None
    usage: Usage | None = None
    error: BaseException | ErrorEvent | None = None
    events_sent: int = 0
