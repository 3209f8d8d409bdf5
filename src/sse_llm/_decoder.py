"""Incremental SSE decoder, exact to WHATWG HTML §9.2.5-§9.2.6. No I/O.

Feed it bytes as they arrive, in reads of any size: a read may end between CR and LF or
inside a multi-byte UTF-8 character, and the result is the same as for one big read.

The cost is linear in the input whatever the read size: a read is scanned for line ends once,
and the pieces of a line still open are kept in a list and joined once, when the line ends
(a 1 MB ``data:`` line in 64-byte reads costs about what it costs in one read).
"""

from __future__ import annotations

import codecs
import sys

from ._events import Comment, ServerSentEvent
from ._exceptions import EventTooLargeError

__all__ = ["MAX_EVENT_SIZE", "SSEDecoder"]

_RETRY_DIGITS = 18  # the most significant digits of a retry value that is applied

#: The default of ``max_event_size``: 16 MiB of characters (a 12 MB base64 image fits).
MAX_EVENT_SIZE = 16 * 1024 * 1024


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` and :class:`Comment` values.

    Decoding follows the spec (WHATWG HTML §9.2.6): a leading BOM is dropped; lines end at
    CRLF, CR or LF; ``field: value`` loses one space after the colon; an ``id`` containing NUL
    is ignored; ``retry`` is applied only when it is all ASCII digits (and below 10**18 ms);
    an event with an empty data buffer is not dispatched; the last event ID persists across
    events. Invalid UTF-8 becomes U+FFFD, as in a browser.

    A decoded event's ``id`` is the last event ID when it was dispatched (it carries over from
    earlier events, as in a browser's ``MessageEvent.lastEventId``); its ``retry`` is the value
    of a valid ``retry`` field in its own block, else ``None``. :attr:`last_event_id` and
    :attr:`retry` also hold what blocks without data set (a resumable stream's first,
    id-only block; a ``retry:``-only answer), which dispatch no event.

    Args:
        max_event_size: the most characters one event may hold while it is being read: its
            ``data`` lines (each counted with the LF that joins them) and the line not yet
            ended. ``None`` means no limit. A browser has none; a client reading a server it
            does not control needs one, or a body with no blank line (or no line end) grows
            in memory until the process runs out. Default 16 MiB (16,777,216 characters).

    Raises:
        EventTooLargeError: from :meth:`feed`, an event outgrew ``max_event_size`` (checked
            once per read; a read that also completed events returns them, and the next read
            raises unless it ends that event). The decoder is closed first (as
            :meth:`close`): :attr:`last_event_id` is kept.

    Example::

        decoder = SSEDecoder()
        for chunk in chunks:
            for item in decoder.feed(chunk):
                ...
        decoder.close()  # events not ended by a blank line are discarded, per spec
    """

    __slots__ = (
        "_block_retry",
        "_data",
        "_data_seen",
        "_data_size",
        "_event_type",
        "_first",
        "_id_buffer",
        "_max_size",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "_utf8",
        "last_event_id",
        "max_event_size",
        "retry",
    )

    def __init__(self, *, max_event_size: int | None = MAX_EVENT_SIZE) -> None:
        if max_event_size is not None and (type(max_event_size) is not int or max_event_size < 1):
            raise ValueError(f"max_event_size must be a positive int or None: {max_event_size!r}")
        #: the limit given (characters), ``None`` for none.
        self.max_event_size: int | None = max_event_size
        # One comparison on the hot path, no None test: "no limit" is a size no str reaches.
        self._max_size = sys.maxsize if max_event_size is None else max_event_size
        self._pending_size = 0  # characters in _pending
        self._data_size = 0  # characters in _data, one LF each included
        self._block_retry: int | None = None  # a retry field of the block being read
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
            self._pending_size += len(text)
            if self._pending_size + self._data_size > self._max_size:
                self._too_large()
            return []
        last = lines.pop()  # the start of a line not ended yet, or "" after a line end
        if pending:
            pending.append(lines[0])
            lines[0] = "".join(pending)
            pending.clear()
            self._pending_size = 0
        if last:
            pending.append(last)
            self._pending_size = len(last)
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
                    self._block_retry = None
        if self._pending_size + self._data_size > self._max_size and not out:
            # With events complete in this read, they go out first: the next read raises.
            self._too_large()
        return out

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream. An event not ended by a blank line is discarded (§9.2.5), its ``id``
        too; the decoder is then ready for the next connection's stream (a BOM first again)."""
        self._utf8.decode(b"", final=True)
        self._pending.clear()
        self._pending_size = 0
        self._first = True
        self._skip_lf = False
        self._id_buffer = self.last_event_id
        self._data = []
        self._data_seen = False
        self._data_size = 0
        self._event_type = ""
        self._block_retry = None
        return []

    def _too_large(self) -> None:
        size = self._pending_size + self._data_size
        self.close()
        raise EventTooLargeError(
            f"an SSE event outgrew max_event_size ({self.max_event_size} characters): "
            f"{size} characters read without the blank line that ends it"
        )

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
            self._data_size += len(value) + 1
        elif field == "event":
            self._event_type = value
        elif field == "id" and "\0" not in value:
            self._id_buffer = value
        elif field == "retry" and value.isascii() and value.isdigit():
            digits = value.lstrip("0")
            # A value of 10**18 ms (30 million years) or more is ignored, not converted: int()
            # refuses more than 4,300 digits (a ValueError that would end the stream).
            if len(digits) <= _RETRY_DIGITS:
                self.retry = self._block_retry = int(digits or "0")
        return None

    def _dispatch(self) -> ServerSentEvent:
        event = ServerSentEvent.__new__(ServerSentEvent)
        # Built without validation: every field here came off the wire already line-split.
        object.__setattr__(event, "data", "\n".join(self._data))
        object.__setattr__(event, "event", self._event_type or "message")
        object.__setattr__(event, "id", self.last_event_id or None)
        object.__setattr__(event, "retry", self._block_retry)
        self._data = []
        self._data_seen = False
        self._data_size = 0
        self._event_type = ""
        self._block_retry = None
        return event
