"""Incremental SSE decoder, exact to WHATWG HTML §9.2.5-§9.2.6. No I/O.

Feed it bytes as they arrive, in reads of any size: a read may end between CR and LF or
inside a multi-byte UTF-8 character, and the result is the same as for one big read.
"""

from __future__ import annotations

import codecs

from ._encoder import LINE_BREAK
from ._events import Comment, ServerSentEvent

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` and :class:`Comment` values.

    Decoding follows the spec: a leading BOM is dropped; lines end at CRLF, CR or LF;
    ``field: value`` loses one space after the colon; an ``id`` containing NUL is ignored;
    ``retry`` is applied only when it is all ASCII digits; an event with an empty data buffer
    is not dispatched; the last event ID persists across events. Invalid UTF-8 becomes U+FFFD,
    as in a browser.

    Example::

        decoder = SSEDecoder()
        for chunk in chunks:
            for item in decoder.feed(chunk):
                ...
        decoder.close()  # events not ended by a blank line are discarded, per spec
    """

    __slots__ = (
        "_data",
        "_data_seen",
        "_event_type",
        "_first",
        "_partial",
        "_skip_lf",
        "_utf8",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""  # text of a line not yet ended
        self._skip_lf = False  # the previous read ended with CR: an LF now is its pair
        self._first = True
        self._data: list[str] = []
        self._data_seen = False
        self._event_type = ""
        #: the last event ID buffer (§9.2.6); sent back as ``Last-Event-ID`` on reconnect.
        self.last_event_id = ""
        #: the reconnection time in milliseconds, once the stream has set one.
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent | Comment]:
        """Decode one read.

        Returns:
            the events dispatched and comments seen by the end of this read, in order.
        """
        text = self._utf8.decode(data)
        if self._first and text:
            self._first = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        out: list[ServerSentEvent | Comment] = []
        lines = LINE_BREAK.split(self._partial + text)
        self._partial = lines.pop()
        if text[-1] == "\r":
            # The last line ended with a CR that may be half of a CRLF: the line is complete
            # now, and an LF at the start of the next read must not end another (empty) one.
            self._skip_lf = True
        for line in lines:
            item = self._line(line)
            if item is not None:
                out.append(item)
        return out

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream. An event not ended by a blank line is discarded (§9.2.5)."""
        self._utf8.decode(b"", final=True)
        self._partial = ""
        self._data = []
        self._data_seen = False
        self._event_type = ""
        return []

    def _line(self, line: str) -> ServerSentEvent | Comment | None:
        if not line:
            return self._dispatch()
        colon = line.find(":")
        if colon == 0:
            text = line[1:]
            return Comment(text[1:] if text.startswith(" ") else text)
        if colon < 0:
            field, value = line, ""
        else:
            field, value = line[:colon], line[colon + 1 :]
            if value.startswith(" "):
                value = value[1:]
        if field == "data":
            self._data.append(value)
            self._data_seen = True
        elif field == "event":
            self._event_type = value
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data_seen:
            self._event_type = ""
            return None
        event = ServerSentEvent.__new__(ServerSentEvent)
        # Built without validation: every field here came off the wire already line-split.
        object.__setattr__(event, "data", "\n".join(self._data))
        object.__setattr__(event, "event", self._event_type or "message")
        object.__setattr__(event, "id", self.last_event_id or None)
        object.__setattr__(event, "retry", None)
        self._data = []
        self._data_seen = False
        self._event_type = ""
        return event
