"""Stream ids and event ids of resumable streams."""

from __future__ import annotations

import re
import secrets

__all__ = ["new_stream_id", "parse_last_event_id", "shown"]

# secrets.token_urlsafe(18): 24 characters of [A-Za-z0-9_-], 144 random bits. The fixed length
# makes "<stream id>-<seq>" unambiguous although the stream id may itself contain "-".
_STREAM_ID_BYTES = 18
# A seq has at most 15 digits: far more events than a stream can have, and below every end
# marker and 64-bit id a store may use.
_LAST_EVENT_ID = re.compile(r"([A-Za-z0-9_-]{24})(?:-(0|[1-9][0-9]{0,14}))?")


def shown(stream_id: str) -> str:
    """A stream id as messages and logs show it: its first 6 characters. The whole id is a
    bearer capability (whoever has it reads the answer and can stop it); the rest, 108 random
    bits, stays unguessable."""
    return f"{stream_id[:6]}…"


def new_stream_id() -> str:
    """A fresh stream id: 24 URL-safe characters, unguessable (a bearer capability), valid in
    an SSE ``id`` (no CR, LF or NUL, WHATWG HTML §9.2.6) and in a URL path."""
    return secrets.token_urlsafe(_STREAM_ID_BYTES)


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """Split a :class:`~sse_llm.resume.StreamHub` event id into ``(stream id, seq)``.

    Accepts ``"<stream id>-<seq>"`` (an event's ``id``, as a browser sends it back in
    ``Last-Event-ID``) and a bare ``"<stream id>"`` (as ``StreamHub.start`` returns it,
    meaning "from the first event": seq 0).

    Returns:
        ``(stream_id, seq)``, or ``None`` when ``value`` is not of that shape (an id from
        another stream source, an empty header, garbage).
    """
    if not value:
        return None
    match = _LAST_EVENT_ID.fullmatch(value)
    if match is None:
        return None
    return match[1], int(match[2] or 0)
