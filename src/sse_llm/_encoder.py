"""Encoding events to bytes, exact to WHATWG HTML §9.2.5.

Intentional choices: LF line endings only (CRLF pairs split across reads trip naive client
parsers); UTF-8 always; every event carries at least one ``data:`` line, because a client
discards an event whose data buffer is empty (§9.2.6, "dispatch the event", step 2).
"""

from __future__ import annotations

import re

from ._events import Comment, ServerSentEvent

__all__ = ["LINE_BREAK", "encode", "encode_comment", "encode_data"]

# The three line terminators of §9.2.5 and nothing else: str.splitlines() would also split on
# U+2028, U+0085, form feed ..., which clients keep inside the data.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _data_lines(data: str) -> str:
    if "\n" not in data and "\r" not in data:
        return f"data: {data}\n"
    return "".join(f"data: {line}\n" for line in LINE_BREAK.split(data))


def encode_data(data: str, event: str | None = None) -> bytes:
    """Encode one event from trusted parts, skipping validation (the hot path).

    ``event`` must already be a valid event type (no CR/LF); ``data`` may be any text.

    Returns:
        the UTF-8 bytes of the event, ending with the blank line that dispatches it.
    """
    if event is None:
        return f"{_data_lines(data)}\n".encode()
    return f"event: {event}\n{_data_lines(data)}\n".encode()


def encode(event: ServerSentEvent | Comment) -> bytes:
    """Encode an event (ending with a blank line) or a comment (a single line).

    A comment is written as one line with no blank line after it: a comment followed by a
    blank line makes some clients (httpx-sse 0.4.3, once an ``id`` has been seen) dispatch a
    phantom empty message.

    Returns:
        UTF-8 bytes with LF line endings.

    Raises:
        TypeError: ``event`` is neither a :class:`ServerSentEvent` nor a :class:`Comment`.
    """
    if isinstance(event, Comment):
        return f": {event.text}\n".encode() if event.text else b":\n"
    if not isinstance(event, ServerSentEvent):
        raise TypeError(
            f"encode() takes a ServerSentEvent or a Comment, not {type(event).__name__}"
        )
    head = ""
    if event.event is not None:
        head += f"event: {event.event}\n"
    if event.id is not None:
        head += f"id: {event.id}\n"
    if event.retry is not None:
        head += f"retry: {event.retry}\n"
    return f"{head}{_data_lines(event.data)}\n".encode()


def encode_comment(text: str = "") -> bytes:
    """Encode a comment line from trusted text (no CR/LF), e.g. a heartbeat."""
    return f": {text}\n".encode() if text else b":\n"
