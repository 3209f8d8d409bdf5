"""Reading a detached stream: :class:`ResumeStream`, an ASGI app run by the shared pump."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack

import anyio

from .._asgi import outlast_a_stuck_client, start_response
from .._engine import Encoded, StreamEngine
from .._formats import (
    NOTHING,
    AISDKFormat,
    FormatWriter,
    OpenAIChatFormat,
    TypedJSONFormat,
    Units,
    WireFormat,
    WriterBase,
)
from .._options import (
    NOT_FOR_READERS,
    Config,
    ResumeOptions,
    header_pairs,
    resolve,
    response_headers,
)
from .._pump import Pump, inline_for
from .._result import StreamResult
from .._shutdown import current_shutdown
from .._types import Receive, Scope, Send
from .ids import parse_last_event_id, shown
from .store import StoredEvents, StreamStore

if TYPE_CHECKING:
    from .hub import StreamHub

__all__ = ["ResumeStream", "encode_meta", "unavailable_event"]

logger = logging.getLogger("sse_llm")

#: A reader refreshes its presence in the store this often (seconds) ...
PRESENCE_REFRESH = 1.0
#: ... and it lasts this long (seconds) unless refreshed, so that a reader (or a producer's
#: liveness) in a process that died stops counting.
PRESENCE_TTL = 3.0
#: Sent, with nothing else, when the store cannot be read before a response has started: an
#: ``EventSource`` treats a ``200`` body that ends as a lost connection and reconnects after
#: this many ms (WHATWG HTML §9.2.3), whereas any other status makes it give up for good.
_RETRY_LATER = b"retry: 1000\n\n"
#: The ``error`` event for a stream whose producer's process died (code ``gone``).
_GONE_MESSAGE = "The answer was interrupted because the server stopped. Please try again."
#: The ``error`` event for a stream whose store failed longer than the hub's
#: ``outage_grace`` (code ``store_unavailable``).
_UNAVAILABLE_MESSAGE = "The answer could not be delivered because of a storage outage."
#: A reader's first wait before it reads a failing store again (seconds), doubled up to 1 s.
_FIRST_BACKOFF = 0.05


@dataclass(frozen=True, slots=True)
class _Meta:
    """What a reader needs to know of a stream's format, kept in the store."""

    headers: list[tuple[bytes, bytes]]
    keepalive: bytes
    gone: bytes
    unavailable: bytes
    id_line: bool  # a response read from the start begins with `id: <stream id>`


def encode_meta(format: WireFormat) -> bytes:
    """The stream's format, as a reader of any process needs it: its response headers, its
    keep-alive, and its own ``error`` events with code ``gone`` and ``store_unavailable``
    (empty for formats that show errors only in their last event: the HTML formats)."""
    fields = {
        "headers": [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in response_headers(format, None)
        ],
        "keepalive": format.keepalive.decode("utf-8"),
        "gone": b"".join(format.writer().error(_GONE_MESSAGE, "gone")).decode("utf-8"),
        "unavailable": b"".join(
            format.writer().error(_UNAVAILABLE_MESSAGE, "store_unavailable")
        ).decode("utf-8"),
        # Not for the formats that SDKs and JSON loops read: the openai SDK and httpx-sse
        # dispatch an id-only event, as an event with empty data that json.loads fails on.
        "id_line": not isinstance(format, OpenAIChatFormat | TypedJSONFormat | AISDKFormat),
    }
    return json.dumps(fields).encode()


def _decode_meta(meta: bytes) -> _Meta:
    fields = json.loads(meta)
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in fields["headers"]
    ]
    return _Meta(
        headers,
        fields["keepalive"].encode("utf-8"),
        fields["gone"].encode("utf-8"),
        fields.get("unavailable", "").encode("utf-8"),
        fields.get("id_line", False),
    )


def unavailable_event(meta: bytes) -> bytes:
    """The stream format's ``error`` event with code ``store_unavailable``, from its stored
    ``meta`` (empty for the HTML formats)."""
    return _decode_meta(meta).unavailable


class _StoredWriter(WriterBase):
    """Writes nothing of its own: a reader only passes stored events on."""

    __slots__ = ()

    def text(self, text: str) -> Units:
        return NOTHING

    def error(self, message: str, code: str | None) -> Units:
        return NOTHING  # the body just ends; the client reconnects with its Last-Event-ID

    def end(self, result: StreamResult) -> Units:
        return NOTHING


class _StoredFormat:
    """The stream's own format as a reader sends it: stored events as they are."""

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}

    def __init__(self, keepalive: bytes) -> None:
        self.keepalive = keepalive

    def writer(self) -> FormatWriter:
        return _StoredWriter()


class _RemoteShutdown:
    """The shutdown signal of a reader: the hub's shutdown, for a stream another process
    produces (end the body so the server can stop; the client reconnects with its
    ``Last-Event-ID``, to a process that still serves). A stream this process produces ends
    once its producer has stored the shutdown ``error`` event, so its readers wait for that."""

    def __init__(self, hub: StreamHub, stream_id: str) -> None:
        self.hub = hub
        self.stream_id = stream_id

    async def wait(self) -> None:
        closing = self.hub._closing
        if closing is None:
            await anyio.sleep_forever()  # the hub is not running here: it produces nothing
        assert closing is not None
        await closing.wait()
        if self.hub.produces(self.stream_id):
            await anyio.sleep_forever()


def _has_event(records: Sequence[tuple[int, bytes]]) -> bool:
    """Whether ``records`` dispatch an event. Comments (a source's own keep-alive) and
    ``retry:`` lines carry no id, so a client's ``Last-Event-ID`` stays before them (WHATWG
    HTML §9.2.6): a finished stream with only those left is over for that client, or it would
    be sent them again at every reconnect, never 204."""
    return any(data.endswith(b"\n\n") for _, data in records)


async def _replay(
    store: StreamStore,
    stream_id: str,
    after: int,
    found: StoredEvents | None,
    meta: _Meta,
    grace: float,
    call_timeout: float,
) -> AsyncIterator[Encoded]:
    """The stored events after ``after``, then the live ones as they are stored.

    A store that fails (or loses the stream, until its producer stores it again) is read
    again with backoff for up to ``grace`` seconds; past that the reader sends the format's
    ``error`` event (code ``store_unavailable``) and ends. A store call that has not answered
    ``call_timeout`` seconds after its answer was due has failed: a hung store (a frozen
    server, a client without a socket timeout) is an outage too.
    """
    if after == 0 and meta.id_line:
        # The stream's id before anything else: a client cut off before the first event (a
        # model that thinks for seconds) reconnects with it as its Last-Event-ID and resumes,
        # instead of asking for a new answer while this one runs unread. An id-only event sets
        # the id and is not dispatched (WHATWG HTML §9.2.6, "dispatch the event").
        yield Encoded(b"id: " + stream_id.encode() + b"\n\n")
    next_touch = 0.0
    failing_since: float | None = None  # the store fails (or seems to have lost data)
    outage_seen_at: float | None = None  # the last time it failed
    backoff = _FIRST_BACKOFF
    while True:
        suspect = None
        if found is not None:
            # Right after an outage, a gap or a producer without liveness may be the store's
            # lost data that the producer is storing again: retry before believing them.
            recent = outage_seen_at is not None and time.monotonic() - outage_seen_at < grace
            if found.missing and recent:
                suspect = "events missing after a store outage"
            elif found.missing:
                return  # evicted: end the body; a reconnect gets 204
            if suspect is None and found.records:
                yield Encoded(b"".join(data for _, data in found.records))
                after = found.records[-1][0]
            if suspect is None and found.finished:
                return
            if suspect is None and found.producer_lost and recent:
                suspect = "no producer liveness after a store outage"
            elif suspect is None and found.producer_lost:
                # Its process died: nothing more will come. A reconnect gets 204.
                logger.warning("a detached stream's producer is gone; ending its reader")
                if meta.gone:
                    yield Encoded(meta.gone)
                return
            if suspect is None and failing_since is not None:
                # Only a read that is not suspect ends the outage: a suspect one (the same
                # gap, a producer still without liveness) must not start its grace again.
                logger.warning("reading a detached stream works again")
                failing_since, backoff = None, _FIRST_BACKOFF
        now = time.monotonic()
        started, due = now, 0.0  # when the call began, and how long it may wait by design
        # While failing, no call may take the reader past its grace.
        limit = call_timeout
        if failing_since is not None:
            limit = max(min(limit, grace - (now - failing_since)), 0.001)
        try:
            if suspect is not None:
                raise LookupError(suspect)
            if now >= next_touch:
                next_touch = now + PRESENCE_REFRESH
                with anyio.fail_after(limit):
                    await store.touch_reader(stream_id, PRESENCE_TTL)
            started = time.monotonic()
            due = max(next_touch - started, 0.001)
            with anyio.fail_after(due + limit):
                found = await store.read(stream_id, after, due)
            if found is None:  # expired, or lost with the store's data: its producer may
                raise LookupError(f"stream {shown(stream_id)} not in the store")  # stored again?
        except Exception as exc:
            found = None
            now = time.monotonic()
            outage_seen_at = now
            if failing_since is None:
                # A call that hung fails from when its answer was due, not when it timed out.
                failing_since = min(now, started + due)
                logger.warning("reading a detached stream failed; retrying: %r", exc)
            if now - failing_since >= grace:
                logger.error(
                    "a detached stream's store failed for %.1f s; ending its reader", grace
                )
                if meta.unavailable:
                    yield Encoded(meta.unavailable)
                return
            await anyio.sleep(min(backoff, grace - (now - failing_since)))
            backoff = min(backoff * 2, 1.0)


class ResumeStream:
    """An ASGI app sending a detached stream from a position: made by
    :meth:`StreamHub.response <sse_llm.resume.StreamHub.response>`.

    - ``200``: the headers a stream of the stream's format sends (``content-type:
      text/event-stream; charset=utf-8``, ``cache-control: no-cache``, ``x-accel-buffering:
      no``, the format's own); read from the start (a bare stream id), an id-only event
      ``id: <stream id>`` (not dispatched: it sets the client's ``Last-Event-ID``, so a
      client cut off before the first event resumes instead of asking again); then every
      stored event after the position, then live events as they are stored, with the
      format's keep-alive after ``heartbeat`` seconds of silence.
      The body ends once the producer has finished and everything was sent. If the
      producer's process died, the format's ``error`` event with code ``gone`` (none for the
      HTML formats) is sent after the stored events and the body ends. If the store fails
      (or hangs) for the hub's ``outage_grace``, the ``error`` event has code
      ``store_unavailable``.
    - ``204 No Content`` (which makes an ``EventSource`` stop reconnecting, WHATWG HTML
      §9.2.3): the id is not a stream id, the stream is unknown or expired, it has finished
      with nothing after the position (also a position beyond its last event), the events
      after the position were evicted, or its producer died with nothing after the position.
    - ``200`` with only ``retry: 1000`` when the store failed (or did not answer within the
      hub's ``close_timeout``, at most its ``outage_grace``) before anything was sent (logged),
      or when it does not know the stream but may have just lost it: this process produces
      it, or the store restarted less than ``outage_grace`` seconds ago (``RedisStore``). An
      ``EventSource`` reconnects after 1 s, whereas an error status would make it give up for
      good (WHATWG HTML §9.2.3).

    An ``http.disconnect`` ends only this response: the producer keeps going. A live stream
    read from a position beyond its last event waits for events above that position.

    Options: :class:`~sse_llm.resume.ResumeOptions` (``heartbeat`` and ``send_timeout`` in
    seconds, ``headers``).

    Raises:
        TypeError: ``last_event_id`` is not a ``str`` (a coroutine: ``hub.start()`` not
            awaited), or an option a reader does not take (``format``: the stream's own is
            used), an unknown one or a wrong type.
        ValueError: a non-positive ``heartbeat`` or ``send_timeout``, or a header that cannot be
            sent (``Connection`` and the like; CR or LF in a name or value; a value outside
            Latin-1).
    """

    def __init__(
        self,
        hub: StreamHub,
        last_event_id: str,
        **options: Unpack[ResumeOptions],
    ) -> None:
        if last_event_id is not None and not isinstance(last_event_id, str):
            hint = " (await hub.start(...))" if inspect.isawaitable(last_event_id) else ""
            raise TypeError(
                f"ResumeStream needs a stream id or an event id (str){hint}, "
                f"not {type(last_event_id).__name__}"
            )
        # Checked as every binding checks its options; the format comes from the store.
        self.config: Config = resolve(options, binding="ResumeStream", exclude=NOT_FOR_READERS)
        self.hub = hub
        self.last_event_id = last_event_id
        #: Extra headers, sent after (and instead of same-named) format headers; a list that
        #: may be edited in place until the response starts.
        self.headers: list[tuple[bytes, bytes]] = header_pairs(self.config.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = self.hub.store
        position = parse_last_event_id(self.last_event_id)
        meta = found = None
        call_timeout = min(self.hub.close_timeout, self.hub.outage_grace)
        if position is not None:
            try:
                # Bounded: a hung store must not hold the request open with nothing sent.
                with anyio.fail_after(call_timeout):
                    meta = await store.meta(position[0])
                    if meta is not None:
                        found = await store.read(position[0], position[1], 0)
            except Exception:
                logger.exception("reading a detached stream from the store failed")
                await self._end_at_once(send, 200, _RETRY_LATER)
                return
        if (
            (meta is None or found is None)
            and position is not None
            and (self.hub.produces(position[0]) or await self._store_restarted(call_timeout))
        ):
            # Its producer runs here, or the store has just restarted: the store may have
            # lost a live stream that its producer's writer (in any process) is putting
            # back (its meta comes first: a stream may be found without its events for a
            # moment). Ask the client to come back, not to give up.
            await self._end_at_once(send, 200, _RETRY_LATER)
            return
        if (
            position is None
            or meta is None
            or found is None
            or found.missing
            or ((found.finished or found.producer_lost) and not _has_event(found.records))
        ):
            await self._end_at_once(send, 204, b"")
            return
        stream_id, after = position
        stream_meta = _decode_meta(meta)
        if scope.get("method") == "HEAD":  # the headers alone (RFC 9110 §9.3.2)
            await self._end_at_once(send, 200, b"", self._headers(stream_meta.headers))
            return
        config = Config(
            _StoredFormat(stream_meta.keepalive),
            heartbeat=self.config.heartbeat,
            send_timeout=self.config.send_timeout,
            shutdown=_RemoteShutdown(self.hub, stream_id),
        )
        source = _replay(
            store, stream_id, after, found, stream_meta, self.hub.outage_grace, call_timeout
        )
        pump = Pump(
            source,
            StreamEngine(config.format),
            config,
            send,
            asgi=True,
            inline=inline_for(scope),
            # Only counted when the signal also ends its producer, whose stored shutdown event
            # ends this reader (see _RemoteShutdown); else the signal ends it at once.
            counted_only=(
                self.hub.produces(stream_id) and current_shutdown() in self.hub._graceful
            ),
        )
        if await start_response(pump, 200, self._headers(stream_meta.headers), send):
            result = await pump.run(receive)
            if result.reason == "timeout":
                await outlast_a_stuck_client(receive, self.config.send_timeout)

    async def _store_restarted(self, call_timeout: float) -> bool:
        """Whether the store restarted within the hub's ``outage_grace`` (so that a stream it
        does not know may be one it lost); ``True`` when it cannot be asked (failing)."""
        # Optional: a store written for sse-llm 0.1.0 has no such method.
        restarted_within = getattr(self.hub.store, "restarted_within", None)
        if restarted_within is None:
            return False
        try:
            with anyio.fail_after(call_timeout):
                return bool(await restarted_within(self.hub.outage_grace))
        except Exception:
            logger.exception("asking the stream store whether it restarted failed")
            return True

    def _headers(self, format_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The stream format's headers, then ours (which replace same-named ones)."""
        extra_names = {name.lower() for name, _ in self.headers}
        return [h for h in format_headers if h[0] not in extra_names] + self.headers

    async def _end_at_once(
        self,
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,  # a HEAD's: the stream's own
    ) -> None:
        if headers is None:
            if status == 200:  # the headers of a stream of the default format
                headers = self._headers(response_headers(self.config.format, None))
            else:
                headers = self.headers
        with contextlib.suppress(OSError):  # ASGI 2.4: the client is already gone
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
