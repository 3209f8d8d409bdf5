"""Plain SSE: each text delta is an unnamed event whose data is the text itself."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from .._encoder import encode_data
from .._result import StreamResult
from .base import NOTHING, FormatWriter, Units, WriterBase, data_event

__all__ = ["TextFormat"]


class _TextWriter(WriterBase):
    __slots__ = ("_after_cr",)

    def __init__(self) -> None:
        # The last text ended with CR: a leading LF now is the second half of a CRLF that
        # the tokenizer split, and must not become a second line break.
        self._after_cr = False

    def text(self, text: str) -> Units:
        if not self._after_cr and "\n" not in text and "\r" not in text:
            return (f"data: {text}\n\n".encode(),)  # one line: the usual token
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        return (encode_data(text),) if text else NOTHING

    def error(self, message: str, code: str | None) -> Units:
        return (data_event({"message": message, "code": code}, "error"),)

    def end(self, result: StreamResult) -> Units:
        if result.reason != "completed":
            return NOTHING
        finish = result.finish
        return (_done(finish.reason if finish else None),)


@functools.lru_cache(maxsize=32)  # a handful of finish reasons: the same bytes every time
def _done(finish_reason: str | None) -> bytes:
    return data_event({"finish_reason": finish_reason}, "done")


class TextFormat:
    """Plain SSE: each text delta is an unnamed event whose data is the text itself.

    Readable with ``EventSource.onmessage`` and no JSON. The format's one change to the text:
    CR and CRLF arrive as LF (WHATWG HTML §9.2.6). Ends with ``event: done``
    (``{"finish_reason": ...}``) or ``event: error``; reasoning, tool calls, sources and
    provider tool activity are not sent (the format carries text only).
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    keepalive = b":\n"

    def writer(self) -> FormatWriter:
        return _TextWriter()
