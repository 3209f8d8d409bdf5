"""SSE wire-level values: an event and a comment.

These are plain, frozen values validated on construction (WHATWG HTML §9.2.5, "Parsing an
event stream", and §9.2.6, "Interpreting an event stream"), so a bad one fails where it is
built, not halfway through a response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._exceptions import InvalidEventError

__all__ = ["LONE_SURROGATE", "Comment", "ServerSentEvent", "encodable"]

#: A code point UTF-8 cannot carry: any surrogate in a ``str`` is one half of a UTF-16 pair.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with each lone surrogate made U+FFFD (what a browser shows for it), which
    UTF-8 cannot carry; ``text`` itself when it has none."""
    if text.isascii() or not LONE_SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_encodable(name: str, value: str) -> None:
    if not value.isascii() and LONE_SURROGATE.search(value):
        raise InvalidEventError(
            f"SSE {name!r} contains a lone surrogate, which UTF-8 cannot carry (the stream is "
            f"UTF-8, WHATWG HTML §9.2.5); join the pair or replace it with U+FFFD: {value!r}"
        )


def _check_field(name: str, value: str, *, nul: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidEventError(f"SSE {name} must be str, not {type(value).__name__}: {value!r}")
    if "\n" in value or "\r" in value:
        raise InvalidEventError(
            f"SSE {name!r} must not contain CR or LF (WHATWG HTML §9.2.5): {value!r}"
        )
    if nul and "\0" in value:
        raise InvalidEventError(
            f"SSE {name!r} must not contain NUL; clients ignore such ids (WHATWG HTML §9.2.6): "
            f"{value!r}"
        )
    _check_encodable(name, value)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One server-sent event.

    Args:
        data: the payload; any text. Each CRLF, CR or LF starts a new ``data:`` line on the
            wire, and the client rejoins them with LF (so CR and CRLF arrive as LF: the one
            change the format imposes, WHATWG HTML §9.2.6).
            No lone surrogate (half a UTF-16 pair: UTF-8 cannot carry it), in any field.
        event: the event type; ``None`` means the default ``message``. No CR/LF.
        id: sets the client's last event ID (sent back as ``Last-Event-ID`` on reconnect).
            No CR, LF or NUL. ``""`` resets it.
        retry: the client's reconnection delay in milliseconds, a non-negative integer.

    Raises:
        InvalidEventError: a field the wire cannot carry.
    """

    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise InvalidEventError(f"SSE data must be str, not {type(self.data).__name__}")
        _check_encodable("data", self.data)
        if self.event is not None:
            _check_field("event", self.event)
        if self.id is not None:
            _check_field("id", self.id, nul=True)
        if self.retry is not None and (
            type(self.retry) is not int or self.retry < 0  # bool is not a delay
        ):
            raise InvalidEventError(
                f"SSE retry must be a non-negative integer of milliseconds: {self.retry!r}"
            )


@dataclass(frozen=True, slots=True)
class Comment:
    """An SSE comment line (``: text``), ignored by clients; used for heartbeats.

    Args:
        text: the comment text. No CR/LF (a line break would end the comment), no lone
            surrogate.

    Raises:
        InvalidEventError: the text contains CR, LF or a lone surrogate.
    """

    text: str = ""

    def __post_init__(self) -> None:
        _check_field("comment", self.text)
