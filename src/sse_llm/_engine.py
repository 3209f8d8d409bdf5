"""The stream engine: items in, wire bytes out, no I/O (the ``h11.Connection`` model).

:class:`StreamEngine` knows everything about one stream except how bytes travel: what each
item a source yields means (text, a normalised event, a provider chunk, a ready-made event),
how the wire format writes it, where events begin and end and which id each gets, and what
the completion hook will be told. The pump (``sse_llm._pump``) owns the I/O: it feeds the
engine and sends what comes back. So the engine can be driven with plain function calls::

    engine = StreamEngine(TextFormat())
    head = engine.start()
    body = engine.feed("Hello") + engine.feed(" world")
    tail = engine.close("completed")
    assert engine.result.text == "Hello world"
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ._encoder import LINE_BREAK, encode
from ._events import LONE_SURROGATE, Comment, ServerSentEvent, encodable
from ._formats import NOTHING, NamedEventsFormat, Units, WireFormat
from ._model import (
    Citation,
    ErrorEvent,
    Finish,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolActivity,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._providers import Normalizer, detect, for_end_user, translate_exception
from ._result import EndReason, StreamResult

__all__ = ["SAFE_ERROR", "SHUTDOWN_ERROR", "Encoded", "StreamEngine"]

logger = logging.getLogger("sse_llm")

#: The message of the ``error`` event when the source raised anything but a provider error:
#: no traceback or secret reaches the browser.
SAFE_ERROR = "The answer could not be completed because of an internal error."
#: The message of the ``error`` event (code ``shutdown``) when the server stops.
SHUTDOWN_ERROR = "The server is restarting. Please try again."

_LLM_EVENTS = (
    TextDelta,
    ReasoningDelta,
    ToolCallDelta,
    ToolCall,
    Citation,
    ToolActivity,
    Usage,
    Finish,
    ErrorEvent,
)
_RAN_OUT = Finish("stop")  # frozen: one for every stream of a plain text source
_TEXTS = (TextDelta, ReasoningDelta)  # the streamed texts: half a character may end one
_NO_TEXT = (Usage,)  # the events without a provider's text in them (Finish has raw_reason)
_SSE_FIELDS = frozenset({"data", "event", "id", "retry", "comment"})
_ID_PREFIX = re.compile(r"[^\r\n\0]+")
#: The end reasons whose stream gets last units: the client is still there to read them.
_WRITES_AN_END = frozenset(("completed", "error", "shutdown"))


class Encoded(bytes):
    """Wire bytes that are already one complete unit (an event with its blank line, or a
    comment line): a source may yield them to pass stored events through as they are."""

    __slots__ = ()


class _Text:
    """The answer text kept for the result: all of it, none, or the first ``limit`` chars.

    Kept in a :class:`io.StringIO`: one growing buffer, where a list of token strings would
    cost ~60 bytes per token beyond the text itself, and a write is one C call.
    """

    __slots__ = ("buffer", "limit", "size", "truncated")

    def __init__(self, keep: bool | int) -> None:
        self.limit: int | None = None if keep is True else int(keep)
        # newline="": the text is kept as written, "\r" and "\r\n" included.
        self.buffer = io.StringIO(newline="") if self.limit != 0 else None
        self.size = 0
        self.truncated = False

    def add(self, text: str) -> None:
        limit = self.limit
        if limit is not None:
            room = limit - self.size
            if room <= 0:
                self.truncated = True
                return
            if len(text) > room:
                text = text[:room]
                self.truncated = True
            self.size += len(text)
        buffer = self.buffer
        if buffer is not None:  # else the result is complete: nothing more is kept
            buffer.write(text)

    def keeper(self) -> Callable[[str], object] | None:
        """What to call with each token: the buffer's own ``write`` when all is kept (no
        Python frame per token), ``None`` when nothing is."""
        if self.buffer is None:
            return None
        return self.buffer.write if self.limit is None else self.add

    def value(self) -> str:
        """All that was kept; the buffer is let go (it is read once, at the end)."""
        buffer, self.buffer = self.buffer, None
        return "" if buffer is None else buffer.getvalue()


class StreamEngine:
    """One stream's protocol state, with no I/O: feed it items, send what it returns.

    Args:
        format: the wire format (default :class:`~sse_llm.formats.NamedEventsFormat`).
        keep_text: how much of the answer :attr:`result` keeps in ``text``: ``True`` all,
            ``False`` none, an ``int`` the first that many characters.
        choice: which choice of a multi-choice provider stream to normalise (see
            :class:`~sse_llm.StreamOptions`).
        event_ids: a prefix that turns on event ids: every event gets ``id: <prefix>-<n>``,
            ``n`` counting the units written from 1 (WHATWG HTML §9.2.6; what a resumable
            stream replays from). Only for ``text/event-stream`` formats.

    Every method returns the bytes to send next (possibly ``b""``); the ``*_units`` methods
    return the same as a sequence of units, one per event (or comment), for transports that
    send or store events one by one.

    Raises:
        ValueError: ``event_ids`` contains CR, LF or NUL, or the format is not
            ``text/event-stream``.
    """

    __slots__ = (
        "_closed",
        "_dropped",
        "_from_provider",
        "_held",
        "_held_in",
        "_ids",
        "_keep",
        "_normalizer",
        "_pending_error",
        "_reasoning",
        "_text",
        "_write_text",
        "_writer",
        "choice",
        "ended",
        "flush_interval",
        "format",
        "keepalive",
        "result",
        "seq",
    )

    def __init__(
        self,
        format: WireFormat | None = None,
        *,
        keep_text: bool | int = True,
        choice: int | None = None,
        event_ids: str | None = None,
    ) -> None:
        fmt: WireFormat = format if format is not None else NamedEventsFormat()
        if event_ids is not None:
            if not _ID_PREFIX.fullmatch(event_ids):
                raise ValueError(f"event_ids must be text without CR, LF or NUL: {event_ids!r}")
            if fmt.media_type != "text/event-stream":
                raise ValueError(f"only text/event-stream has event ids, not {fmt.media_type}")
        self.format: WireFormat = fmt
        self._writer = fmt.writer()
        self._write_text = self._writer.text  # bound once: called for every token
        #: What the completion hook gets; complete once :meth:`close` has run.
        self.result: StreamResult = StreamResult()
        #: The keep-alive unit of the format (an SSE comment line).
        self.keepalive: bytes = fmt.keepalive
        #: Seconds between :meth:`flush` calls while the source is silent, or ``None``.
        self.flush_interval: float | None = self._writer.flush_interval
        #: An ``error`` event was written (the provider reported one): feed nothing more.
        self.ended: bool = False
        #: How many units have been written (the id of the last one, with ``event_ids``).
        self.seq: int = 0
        self.choice: int | None = choice
        self._ids = None if event_ids is None else f"id: {event_ids}-".encode()
        self._text = _Text(keep_text)
        self._keep = self._text.keeper()
        self._dropped = False  # text came that nothing kept
        self._held = ""  # a high surrogate that ended the last token (see _whole_characters)
        self._held_in: type[TextDelta | ReasoningDelta] = TextDelta  # which text it ended
        self._reasoning: _Text | None = None  # made when reasoning arrives
        self._normalizer: Normalizer | None = None
        self._from_provider = False  # a provider stream reports its own finish reason
        self._pending_error: tuple[str, str | None] | None = None
        self._closed = False

    # -- the bytes API ---------------------------------------------------------------------

    def start(self) -> bytes:
        """What goes out right after the response headers."""
        return b"".join(self.start_units())

    def feed(self, item: Any) -> bytes:
        """One item from the source. See :meth:`feed_units`."""
        return b"".join(self.feed_units(item))

    def flush(self) -> bytes:
        """Text the format held back, if it is due (call every :attr:`flush_interval`)."""
        return b"".join(self.flush_units())

    def close(self, reason: EndReason = "completed", error: BaseException | None = None) -> bytes:
        """The end of the stream. See :meth:`close_units`."""
        return b"".join(self.close_units(reason, error))

    # -- the units API ---------------------------------------------------------------------

    def start_units(self) -> Units:
        return self._out(self._writer.start())

    def feed_units(self, item: Any) -> Units:
        """One item from the source, as units to send.

        Accepts ``str`` (answer text; ``""`` and ``None`` are skipped), a normalised
        :data:`~sse_llm.LLMEvent`, a :class:`~sse_llm.ServerSentEvent` or
        :class:`~sse_llm.Comment` (sent as encoded), an ``sse_starlette`` event or a ``dict``
        of SSE fields, or a provider stream chunk (its provider is recognised from the first
        one). After an :class:`~sse_llm.ErrorEvent` (the provider failed), :attr:`ended` is
        true: call :meth:`close`.

        Raises:
            TypeError: an item sse-llm cannot stream (the pump then ends the stream with an
                ``error`` event).
            InvalidEventError: a ready-made event the wire cannot carry.
        """
        if type(item) is str:  # the hot path: a plain text token
            if self._held or (not item.isascii() and LONE_SURROGATE.search(item)):
                return self._out(self._event(TextDelta(item)))  # half a character to join
            if not item:
                return NOTHING
            keep = self._keep
            if keep is not None:
                keep(item)
            else:
                self._dropped = True  # nothing kept (no hook reads it)
            units = self._write_text(item)
            if self._ids is None:
                return units
            return self._number(units)
        return self._out(self._feed_other(item))

    def flush_units(self) -> Units:
        return self._out(self._writer.flush())

    def close_units(
        self, reason: EndReason = "completed", error: BaseException | None = None
    ) -> Units:
        """End the stream and complete :attr:`result`; returns its last units.

        Args:
            reason: why it ends (see :data:`~sse_llm.EndReason`). An error event written
                earlier or an ``error`` given here makes it ``error``.
            error: the exception the source raised: the stream ends with an ``error`` event
                carrying the provider's message (:class:`~sse_llm.ProviderError` and provider
                SDK errors) or a generic safe one, never the exception's own text.

        Only a stream that ends ``completed``, ``error`` or ``shutdown`` gets last units (the
        format's end: ``done``, ``[DONE]``, a final fragment); for any other reason the
        client is gone and nothing is written. A second call returns nothing.
        """
        if self._closed:
            return NOTHING
        self._closed = True
        result = self.result
        if (
            reason not in _WRITES_AN_END
            and error is None
            and self._normalizer is None
            and not self._held
            and not self.ended
        ):
            # The client is gone (the usual end of a cut stream): only the result to fill.
            result.reason = reason
            self._keep_text_in(result)
            return NOTHING
        try:
            if error is not None:
                result.error = error
                provider = translate_exception(error)
                if provider is not None:
                    self._pending_error = (_whole(for_end_user(provider)), _whole(provider.code))
                else:
                    self._pending_error = (SAFE_ERROR, "internal_error")
                reason = "error"
            elif self.ended:
                reason = "error"
            out: list[bytes] = []
            if self._held:  # half a surrogate pair and nothing after it
                held = self._release()
                if reason in _WRITES_AN_END and not self.ended:  # an error event stays the last
                    out.extend(held)
            normalizer = self._normalizer
            if normalizer is not None:
                # Pending tool calls and the final usage: sent when the stream completed, and
                # kept in the result however it ended.
                self._normalizer = None
                for event in normalizer.close():
                    if reason == "completed":
                        out.extend(self._event(event))
                    elif not isinstance(event, _TEXTS):
                        # Kept, not written: a writer would close its open parts for them
                        # (AI SDK), and those closes belong before the error event.
                        self._record(event)
            if reason == "completed" and result.finish is None and not self._from_provider:
                result.finish = _RAN_OUT  # a plain text source ends by running out
            result.reason = reason
            self._keep_text_in(result)
            if reason == "shutdown":
                out.extend(self._writer.error(SHUTDOWN_ERROR, "shutdown"))
            elif self._pending_error is not None:
                out.extend(self._writer.error(*self._pending_error))
            if reason in _WRITES_AN_END:
                out.extend(self._writer.end(result))
            return self._out(out)
        except Exception as exc:
            return self._end_failed(exc)

    def _end_failed(self, exc: Exception) -> Units:
        """The last units when writing the end raised ``exc``."""
        result = self.result
        # A writer that failed on the end (a custom one, a usage value the JSON encoder
        # refuses): the stream still ends, as an error, and nothing is lost.
        logger.error("writing the stream's end failed: it ends with an error", exc_info=exc)
        result.reason = "error"
        if result.error is None:  # else the first error stays the stream's
            result.error = exc
        self._keep_text_in(result)
        out = list(self._writer.error(SAFE_ERROR, "internal_error"))
        try:
            # The format's own ending once more (its [DONE], its done event; the HTML
            # formats write the error there), without the usage, the likeliest culprit.
            out.extend(self._writer.end(dataclasses.replace(result, usage=None)))
        except Exception:
            logger.exception("ending the stream failed again: the error event is its last")
        return self._out(out)

    # -- inside ----------------------------------------------------------------------------

    def _keep_text_in(self, result: StreamResult) -> None:
        text = self._text
        if text.buffer is not None:
            self._keep = None  # it holds the buffer
            result.text = text.value()
        result.text_truncated = self._dropped or text.truncated
        if self._reasoning is not None:
            result.reasoning = self._reasoning.value()

    def _whole_characters(self, text: str, kind: type[TextDelta | ReasoningDelta]) -> str:
        """``text`` with no lone surrogate, which UTF-8 cannot carry.

        A provider that splits a UTF-16 surrogate pair between two chunks (an emoji cut in
        half) yields a high surrogate at the end of one token and the low one at the start of
        the next: the high one is held back and joined to it. Any other lone surrogate becomes
        U+FFFD, as a browser decodes it.
        """
        text = self._held + text
        self._held = ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held, self._held_in = text[:-1], text[-1], kind
        return _replaced(text)

    def _release(self) -> Units:
        """The held half as U+FFFD, written as the text it ended: no other token can join it."""
        self._held = ""
        return self._event(self._held_in("\ufffd"))

    def _out(self, units: Units) -> Units:
        return units if self._ids is None or not units else self._number(units)

    def _number(self, units: Units) -> list[bytes]:
        """Every unit counts; an event also gets its ``id:`` line, just before the blank line
        that dispatches it (a later ``id`` field of the same event wins, §9.2.6)."""
        prefix = self._ids
        assert prefix is not None
        out = []
        for unit in units:
            self.seq += 1
            if unit.endswith(b"\n\n"):
                unit = b"%s%s%d\n\n" % (unit[:-1], prefix, self.seq)
            out.append(unit)
        return out

    def _feed_other(self, item: Any) -> Units:
        if isinstance(item, str):
            return self._event(TextDelta(str(item)))  # a str subclass (Markup, a StrEnum)
        if isinstance(item, _LLM_EVENTS):
            return self._event(item)
        if isinstance(item, ServerSentEvent | Comment):
            return (encode(item),)
        if type(item) is Encoded:
            return (item,)
        if item is None:
            # What `yield chunk.choices[0].delta.content` gives for a chunk without text
            # (the role chunk, the finish chunk): nothing to send.
            return NOTHING
        foreign = _foreign_event(item)
        if foreign is not None:
            return foreign
        normalizer = self._normalizer
        if normalizer is None:
            normalizer = detect(item, choice=self.choice)
            if normalizer is None:
                raise TypeError(_unknown_item(item))
            self._normalizer = normalizer
            self._from_provider = True
        out: list[bytes] = []
        for event in normalizer.feed(item):
            out.extend(self._event(event))
        return out

    def _event(self, event: LLMEvent) -> Units:
        """Record what the result keeps, and write the event."""
        if self._held and type(event) is not self._held_in:
            # The text the half ended is over: it goes out first, in the source's order.
            return [*self._release(), *self._event(event)]
        if isinstance(event, _TEXTS):
            text = event.text
            if self._held or (not text.isascii() and LONE_SURROGATE.search(text)):
                text = self._whole_characters(text, type(event))
            if not text:
                return NOTHING
            if isinstance(event, TextDelta):
                self._text.add(text)
                return self._writer.text(text)
            if self._reasoning is None:
                self._reasoning = _Text(True if self._text.limit is None else self._text.limit)
            self._reasoning.add(text)
            return self._writer.event(event if text is event.text else ReasoningDelta(text))
        event = self._record(event)
        if isinstance(event, ErrorEvent):
            return self._writer.error(event.message, event.code)
        return self._writer.event(event)

    def _record(self, event: LLMEvent) -> LLMEvent:
        """Keep in the result what it keeps of an event that is not text; returns the event,
        its provider text made whole."""
        if not isinstance(event, _NO_TEXT):  # the others carry a provider's text
            event = _whole(event)
        if isinstance(event, ToolCall):
            self.result.tool_calls.append(event)
        elif isinstance(event, Citation):
            self.result.citations.append(event)
        elif isinstance(event, ToolActivity):
            self.result.tool_activity.append(event)
        elif isinstance(event, Finish):
            self.result.finish = event
        elif isinstance(event, Usage):
            self.result.usage = event
        elif isinstance(event, ErrorEvent):
            self.result.error = event
            self.ended = True
        return event


def _replaced(text: str) -> str:
    """``text`` with each lone surrogate made U+FFFD, as a browser decodes it."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _whole(value: Any) -> Any:
    """``value`` with every lone surrogate in its text made U+FFFD, which UTF-8 cannot carry
    (in a provider's tool arguments or source title: what a browser would show for it); the
    same object when it has none. Walks an event's fields but ``raw`` (never sent), and the
    ``dict``, ``list`` and ``tuple`` values in them; anything else is left as it is."""
    if isinstance(value, str):
        return encodable(value)
    kind = type(value)
    if kind is dict:
        mapping = {_whole(key): _whole(item) for key, item in value.items()}
        return value if mapping == value else mapping
    if kind is list or kind is tuple:
        items = kind(_whole(item) for item in value)
        return value if items == value else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            if not field.compare:
                continue  # raw: the provider's objects as received, never sent
            old = getattr(value, field.name)
            new = _whole(old)
            if new is not old:
                changes[field.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


#: What a dict's SSE field may not be: its ``str()`` is a Python repr, not an event's text.
_CONTAINERS = (Mapping, list, tuple, set, frozenset, bytes, bytearray)


def _foreign_event(item: Any) -> Units | None:
    """sse-starlette's and FastAPI's events and plain dicts, so existing generators migrate
    unchanged.

    Written as sse-starlette writes them (``ServerSentEvent.encode``): a field is sent only if
    it is not ``None``, so an event with only an ``id`` or only an ``event`` carries no
    ``data:`` line and, by the dispatch rule (WHATWG HTML §9.2.6), dispatches nothing. A
    ``fastapi.sse.ServerSentEvent``'s ``data`` is sent as JSON, as FastAPI sends it (a string
    too: ``"hello"`` with its quotes), its ``raw_data`` as it is.
    """
    if isinstance(item, Mapping):
        if not item.keys() <= _SSE_FIELDS or any(
            isinstance(value, _CONTAINERS) for value in item.values()
        ):
            # A provider's JSON chunk, or a dict whose keys only look like SSE fields (a
            # LangGraph update of a node named "data"): a container would go out as a repr.
            return None
        fields = item
    elif type(item).__module__.startswith("sse_starlette"):
        fields = {
            "data": item.data,
            "event": item.event,
            "id": item.id,
            "retry": item.retry,
            "comment": getattr(item, "comment", None),
        }
    elif (fastapi_sse := sys.modules.get("fastapi.sse")) is not None and isinstance(
        item, fastapi_sse.ServerSentEvent
    ):
        fields = {
            "data": item.raw_data if item.data is None else _fastapi_json(item.data),
            "event": item.event,
            "id": item.id,
            "retry": item.retry,
            "comment": item.comment,
        }
    else:
        return None
    out: list[bytes] = []
    comment = fields.get("comment")
    if comment is not None:
        # Half a character becomes U+FFFD here too (see data below).
        out.extend(encode(Comment(line)) for line in LINE_BREAK.split(encodable(str(comment))))
    data = fields.get("data")
    event = fields.get("event")
    event_id = fields.get("id")
    retry = fields.get("retry")
    # Validates every field: CR/LF in event or id, NUL in id, a negative retry.
    check = ServerSentEvent("", event=event, id=None if event_id is None else str(event_id))
    if retry is not None:
        ServerSentEvent(retry=retry)
    if data is None and event is None and event_id is None:
        if retry is not None:
            # retry alone sets the client's reconnection delay (§9.2.6) without an event: one
            # field line and no blank line, so no client dispatches an empty message.
            out.append(f"retry: {retry}\n".encode())
        return out
    head = ""
    if check.event is not None:
        head += f"event: {check.event}\n"
    if check.id is not None:
        head += f"id: {check.id}\n"
    if retry is not None:
        head += f"retry: {retry}\n"
    if data is not None:
        # Often model text (a token put in a dict): half a character becomes U+FFFD, as in a
        # text token, not an error that ends the answer.
        text = _whole(str(data))
        head += "".join(f"data: {line}\n" for line in LINE_BREAK.split(text))
    out.append(f"{head}\n".encode())
    return out


def _fastapi_json(data: Any) -> str:
    """``data`` of a ``fastapi.sse.ServerSentEvent`` as FastAPI's routing writes it: a
    Pydantic model's own JSON, anything else through ``jsonable_encoder``, with NaN and
    infinities as ``null`` (JSON has no such numbers)."""
    if hasattr(data, "model_dump_json"):
        return str(data.model_dump_json())
    from fastapi.encoders import jsonable_encoder  # FastAPI made the event: it is installed

    return json.dumps(_finite(jsonable_encoder(data)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _unknown_item(item: Any) -> str:
    """Why ``item`` cannot be streamed, and what to pass instead where that is known."""
    message = (
        f"sse-llm cannot stream items of type {type(item).__name__}; yield str, an LLM "
        "event, a ServerSentEvent (sse-llm's, sse-starlette's or FastAPI's), or a supported "
        "provider chunk"
    )
    langchain_events = isinstance(item, Mapping) and "event" in item and "run_id" in item
    if langchain_events or type(item).__name__ == "RunLogPatch":
        message += (
            " (LangChain's astream_events() or astream_log(): pass model.astream(...), or "
            "a LangGraph graph's astream(..., stream_mode='messages'))"
        )
    elif isinstance(item, Mapping) or (isinstance(item, tuple) and len(item) == 2):
        message += (
            " (a LangGraph graph's astream() with stream_mode 'updates' or 'values' yields "
            "state, not tokens: pass stream_mode='messages')"
        )
    return message
