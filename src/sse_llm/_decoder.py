"""Incremental SSE decoder, exact to WHATWG HTML §9.2.5-§9.2.6. No I/O.

Feed it bytes as they arrive, in reads of any size: a read may end between CR and LF or
inside a multi-byte UTF-8 character, and the result is the same as for one big read.

The cost is linear in the input whatever the read size: a read is scanned for line ends once,
and the pieces of a line still open are kept in a list and joined once, when the line ends
(a 1 MB ``data:`` line in 64-byte reads costs about what it costs in one read).
"""

from __future__ import annotations

import codecs

from ._events import Comment, ServerSentEvent

__all__ = ["SSEDecoder"]

_RETRY_DIGITS = 18  # the most significant digits of a retry value that is applied


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` and :class:`Comment` values.

    Decoding follows the spec (WHATWG HTML §9.2.6): a leading BOM is dropped; lines end at
    CRLF, CR or LF; ``field: value`` loses one space after the colon; an ``id`` containing NUL
    is ignored; ``retry`` is applied only when it is all ASCII digits (and below 10**18 ms);
    an event with an empty data buffer is not dispatched; the last event ID persists across
    events. Invalid UTF-8 becomes U+FFFD, as in a browser.

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
        "_id_buffer",
        "_pending",
        "_skip_lf",
        "_utf8",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list[str] = []  # pieces of a line not yet ended, joined once it ends
        self._skip_lf = False  # the previous read ended with CR: an LF now is its pair
        self._first = True
        self._data: list[str] = []
        self._data_seen = False
        self._event_type = ""
        self._id_buffer = ""  # the last event ID buffer: the string once a blank line comes
        #: the last event ID string (§9.2.6): set from the ``id`` field when an event is
        #: dispatched (a blank line), not before; sent back as ``Last-Event-ID`` on reconnect.
        self.last_event_id: str = ""
        #: the reconnection time in milliseconds, once the stream has set one.
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent | Comment]:
        """Decode one read.

        Returns:
            the events dispatched and comments seen by the end of this read, in order.
        """
        text = self._utf8.decode(data)
        if not text:
            return []
        if self._first:
            self._first = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        pending = self._pending
        if "\r" in text:
            if text[-1] == "\r":
                # The last line ends with a CR that may be half of a CRLF: the line is complete
                # now, and an LF at the start of the next read must not end another (empty) one.
                self._skip_lf = True
            # Each line end to one LF: CRLF first ("\r\r\n" is a CR, then a CRLF), then CR.
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        elif "\n" in text:
            lines = text.split("\n")
        else:
            # Inside a line: keep the piece. Only new text is ever scanned for line ends (the
            # pieces before hold none), so a long line costs O(length), not O(length^2).
            pending.append(text)
            return []
        last = lines.pop()  # the start of a line not ended yet, or "" after a line end
        if pending:
            pending.append(lines[0])
            lines[0] = "".join(pending)
            pending.clear()
        if last:
            pending.append(last)
        out: list[ServerSentEvent | Comment] = []
        for line in lines:
            if line:
                comment = self._line(line)
                if comment is not None:
                    out.append(comment)
            else:  # a blank line dispatches the event: its id counts even without data
                self.last_event_id = self._id_buffer
                if self._data_seen:
                    out.append(self._dispatch())
                else:
                    self._event_type = ""
        return out

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream. An event not ended by a blank line is discarded (§9.2.5), its ``id``
        too; the decoder is then ready for the next connection's stream (a BOM first again)."""
        self._utf8.decode(b"", final=True)
        self._pending.clear()
        self._first = True
        self._skip_lf = False
        self._id_buffer = self.last_event_id
        self._data = []
        self._data_seen = False
        self._event_type = ""
        return []

    def _line(self, line: str) -> Comment | None:
        """Process one non-blank line; a comment line is returned."""
        colon = line.find(":")
        if colon == 0:
            text = line[1:]
            return Comment(text[1:] if text.startswith(" ") else text)
        if colon < 0:
            field, value = line, ""
        else:
            field = line[:colon]
            # One slice (not two) for the value: it may be a whole 1 MB line.
            value = line[colon + 2 :] if line.startswith(" ", colon + 1) else line[colon + 1 :]
        if field == "data":
            self._data.append(value)
            self._data_seen = True
        elif field == "event":
            self._event_type = value
        elif field == "id" and "\0" not in value:
            self._id_buffer = value
        elif field == "retry" and value.isascii() and value.isdigit():
            digits = value.lstrip("0")
            # A value of 10**18 ms (30 million years) or more is ignored, not converted: int()
            # refuses more than 4,300 digits (a ValueError that would end the stream).
            if len(digits) <= _RETRY_DIGITS:
                self.retry = int(digits or "0")
        return None

    def _dispatch(self) -> ServerSentEvent:
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
