"""A :class:`~sse_llm.resume.StreamStore` on Redis Streams, shared by every process of an app.

Keys, for a stream id ``S`` and the store's ``prefix`` ``P``; ``{S}`` is a Redis Cluster hash
tag, so that a stream's keys share one slot and one ``MULTI`` may write them all:

- ``P{S}``: a Redis stream. Entry ``0-1`` marks the creation (so the key exists before the
  first event); event ``seq`` is entry ``<seq>-0`` with field ``e`` (the event's bytes), so
  ``XREAD ... <seq>-0`` is exactly "after seq"; the end is an entry with field ``end``.
- ``P{S}:meta``: the hub's metadata (response headers, heartbeat bytes).
- ``P{S}:reader``: present while a reader is attached (refreshed with a TTL).
- ``P{S}:producer``: present while the producer runs (refreshed with a TTL).
- channel ``P cancel``: stream ids to cancel, published by any process.

``redis`` is imported only for type checking: pass a ``redis.asyncio.Redis`` client (asyncio
only), with or without ``decode_responses``, RESP2 or RESP3.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .ids import shown
from .store import READ_LIMIT, StoredEvents

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore"]

logger = logging.getLogger("sse_llm")

_CREATED_ID = "0-1"  # below every event id "<seq>-0" (seq >= 1)
#: The cancel listener pings Redis this often (seconds) and resubscribes when no reply came
#: within twice that: a connection that died without a FIN would otherwise never be noticed.
PUBSUB_PING_INTERVAL = 10.0


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a one-stream ``XREAD`` reply (RESP2 list or RESP3 map), fields as bytes."""
    if not response:
        return []
    if isinstance(response, dict):
        raw = next(iter(response.values()))
        if raw and isinstance(raw[0], list) and raw[0] and isinstance(raw[0][0], list | tuple):
            raw = raw[0]
    else:
        raw = response[0][1]
    return [
        (_bytes(entry_id), {_bytes(k): _bytes(v) for k, v in fields.items()})
        for entry_id, fields in raw
    ]


def _is_end(entries: Any) -> bool:
    """Whether the last entry of an ``XREVRANGE ... COUNT 1`` reply is the end marker."""
    return bool(entries) and b"end" in {_bytes(k) for k in entries[0][1]}


def _socket_timeout(client: Redis) -> float | None:
    """The read timeout (seconds) of the client's connections: the pool's ``socket_timeout``,
    else the default of redis-py's connection class (5 s since redis-py 8; none before)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return None  # not a plain client (a cluster client has a pool per node): not checked
    if "socket_timeout" in pool.connection_kwargs:
        timeout = pool.connection_kwargs["socket_timeout"]
        return None if timeout is None else float(timeout)
    for cls in pool.connection_class.__mro__:  # Connection takes it as **kwargs for its base
        parameter = inspect.signature(vars(cls).get("__init__", object)).parameters.get(
            "socket_timeout"
        )
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return None if parameter.default is None else float(parameter.default)
    return None


class RedisStore:
    """Stream events in Redis, so that a resume can be served by any process of the app.

    Needs Redis 6.2 or later (``XADD ... NOMKSTREAM``, so that a restart that lost a stream is
    noticed instead of the stream being written again without its start).

    Args:
        client: a ``redis.asyncio.Redis`` client; the app opens and closes it. The producer's
            writes, cancels and liveness go through it.
        read_client: the client readers use (``XREAD BLOCK``, presence); default ``client``.
            Each waiting reader holds one of its pool's connections for up to ``block``
            seconds, so the pool needs one connection per concurrently waiting reader: do not
            give it a small ``BlockingConnectionPool`` (readers then wait for a connection,
            and with a shared ``client`` the producer's writes wait behind them). A separate
            ``read_client`` keeps the producers' writes off the readers' pool.
        prefix: prepended to every key and to the cancel channel (default ``"sse-llm:"``).
        max_events: how many of a stream's most recent events are kept (``XADD MAXLEN``,
            default 10,000); a resume from before them gets ``204 No Content``.
        live_ttl: seconds an unfinished stream lives after its last event (default 3600):
            bounds the keys of a producer whose process died without finishing the stream.
        block: the longest one ``XREAD BLOCK`` waits, in seconds (default 1); below the read timeout
            (``socket_timeout``; redis-py's default is 5 s since redis-py 8, none before) of
            both clients' connections, or the blocked read would fail as a timeout.

    Cancels go through Redis pub/sub: a hub cancels a stream another process produces by
    publishing its id, and each hub subscribes while it runs. A request published while the
    producer's hub is reconnecting to Redis is lost.

    Raises:
        ValueError: ``max_events``, ``live_ttl`` or ``block`` is not positive, or ``block`` is
            not below a client's ``socket_timeout``.
    """

    def __init__(
        self,
        client: Redis,
        *,
        read_client: Redis | None = None,
        prefix: str = "sse-llm:",
        max_events: int = 10_000,
        live_ttl: float = 3600.0,
        block: float = 1.0,
    ) -> None:
        if max_events <= 0:
            raise ValueError(f"max_events must be positive: {max_events}")
        if live_ttl <= 0 or block <= 0:
            raise ValueError(f"live_ttl and block must be positive seconds: {live_ttl}, {block}")
        reader = read_client if read_client is not None else client
        for name, checked in (("client", client), ("read_client", reader)):
            timeout = _socket_timeout(checked)
            if timeout is not None and block >= timeout:
                raise ValueError(
                    f"block ({block} s) must be below the {name}'s socket_timeout ({timeout} s):"
                    " a blocked XREAD would time out"
                )
        self.client = client
        self.read_client = reader
        self.prefix = prefix
        self.max_events = max_events
        self.live_ttl = live_ttl
        self.block = block
        self.channel: str = f"{prefix}cancel"
        # The server's run_id when a hub first started on this store: a later, different one
        # is a restart (see restarted_within).
        self._first_run_id: bytes | None = None
        self._memory_checked = False  # whether _warn_if_evicting has run

    def _key(self, stream_id: str) -> str:
        return f"{self.prefix}{{{stream_id}}}"

    async def create(self, stream_id: str, meta: bytes) -> None:
        key = self._key(stream_id)
        ttl = _ms(self.live_ttl)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(f"{key}:meta", meta, px=ttl)
            pipe.xadd(key, {"created": b""}, id=_CREATED_ID)
            pipe.pexpire(key, ttl)
            await pipe.execute()

    async def append(self, stream_id: str, records: Sequence[tuple[int, bytes]]) -> None:
        key = self._key(stream_id)
        ttl = _ms(self.live_ttl)
        async with self.client.pipeline(transaction=True) as pipe:
            for seq, data in records:
                # NOMKSTREAM: a Redis that restarted empty between two writes (redis-py's own
                # retries hide such a quick restart) must not get a stream without its meta
                # and first events; the writer stores it again whole on the LookupError.
                pipe.xadd(
                    key,
                    {"e": data},
                    id=f"{seq}-0",
                    maxlen=self.max_events,
                    approximate=False,
                    nomkstream=True,
                )
            pipe.pexpire(key, ttl)
            pipe.pexpire(f"{key}:meta", ttl)
            *added, _, meta_kept = await pipe.execute()
        if any(entry_id is None for entry_id in added) or not meta_kept:
            raise LookupError(f"stream {shown(stream_id)} not in Redis (lost in a restart?)")

    async def restore(
        self, stream_id: str, meta: bytes, records: Sequence[tuple[int, bytes]]
    ) -> None:
        key = self._key(stream_id)
        ttl = _ms(self.live_ttl)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(f"{key}:meta", meta, px=ttl)
            pipe.xrevrange(key, count=1)
            _, last = await pipe.execute()
        if not last:
            await self.client.xadd(key, {"created": b""}, id=_CREATED_ID)
            stored = 0
        else:
            stored = int(_bytes(last[0][0]).partition(b"-")[0])  # "0-1": the created marker
        # Redis writes (and an append-only file keeps) commands in order: whatever survived
        # is a prefix of the stream, and the lost records are those after its last seq.
        await self.append(stream_id, [r for r in records if r[0] > stored])

    async def finish(self, stream_id: str, keep: float) -> None:
        key = self._key(stream_id)
        async with self.client.pipeline(transaction=True) as pipe:
            # "*": Redis picks <unix ms>-<n>, above every "<seq>-0". NOMKSTREAM: as in append.
            pipe.xadd(key, {"end": b""}, nomkstream=True)
            pipe.pexpire(key, _ms(keep))
            pipe.pexpire(f"{key}:meta", _ms(keep))
            pipe.delete(f"{key}:producer")
            end_id, *_ = await pipe.execute()
        if end_id is None:
            raise LookupError(f"stream {shown(stream_id)} not in Redis (lost in a restart?)")

    async def meta(self, stream_id: str) -> bytes | None:
        value = await self.read_client.get(f"{self._key(stream_id)}:meta")
        return None if value is None else _bytes(value)

    async def read(self, stream_id: str, after: int, wait: float) -> StoredEvents | None:
        key = self._key(stream_id)
        start = f"{after}-0" if after > 0 else _CREATED_ID
        client = self.read_client
        if wait > 0:
            # Returns at once when there are entries; blocks only when the reader is caught up.
            block = _ms(min(wait, self.block))
            response = await client.xread({key: start}, count=READ_LIMIT, block=block)
        else:
            response = await client.xread({key: start}, count=READ_LIMIT)
        entries = _entries(response)
        if not entries:
            # Nothing after ``start``: find out why (one round trip, only on an empty reply).
            async with client.pipeline(transaction=False) as pipe:
                pipe.exists(key)
                pipe.exists(f"{key}:producer")
                pipe.xrevrange(key, count=1)
                exists, alive, last = await pipe.execute()
            if not exists:
                return None
            if _is_end(last) or not alive:
                # The producer may have stored its last events and finished between the two
                # calls: an end (or a producer gone) is believed only with nothing to read.
                entries = _entries(await client.xread({key: start}, count=READ_LIMIT))
            if not entries:
                if _is_end(last):
                    # ``start`` is at or beyond the end marker: a position beyond the last
                    # event (forged or not) of a finished stream finds nothing, finished.
                    return StoredEvents((), True)
                return StoredEvents((), False, producer_lost=not alive)
        records: list[tuple[int, bytes]] = []
        finished = False
        for entry_id, fields in entries:
            data = fields.get(b"e")
            if data is not None:
                records.append((int(entry_id.partition(b"-")[0]), data))
            elif b"end" in fields:
                finished = True
                break
        # Seqs have no gaps, so a first one above after + 1 means MAXLEN trimmed the rest.
        missing = bool(records) and records[0][0] > after + 1
        return StoredEvents((), False, missing=True) if missing else StoredEvents(records, finished)

    async def touch_reader(self, stream_id: str, ttl: float) -> None:
        # Kept although only a hub with ``abandon_after`` reads it: that hub may be another
        # process, and one SET per reader per PRESENCE_REFRESH is cheap.
        await self.read_client.set(f"{self._key(stream_id)}:reader", b"1", px=_ms(ttl))

    async def has_reader(self, stream_id: str) -> bool:
        return bool(await self.client.exists(f"{self._key(stream_id)}:reader"))

    async def touch_producer(self, stream_id: str, ttl: float) -> None:
        key = self._key(stream_id)
        # The liveness refresh runs every second, also while the model thinks and nothing is
        # written: checking the stream here notices a quick restart that lost it.
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(f"{key}:producer", b"1", px=_ms(ttl))
            pipe.exists(key)
            _, exists = await pipe.execute()
        if not exists:
            raise LookupError(f"stream {shown(stream_id)} not in Redis (lost in a restart?)")

    async def restarted_within(self, seconds: float) -> bool:
        """Whether the Redis server restarted since this store first reached it (when its
        hub started: a new ``run_id``), less than ``seconds`` ago (``uptime_in_seconds``): a
        stream it does not know may then be one the restart lost, that its producer is
        storing again. A new server (one the app's processes never met before) is no
        restart: it lost nothing of theirs.

        ``False`` where ``INFO`` is refused (an ACL without ``@dangerous``, a proxy) or
        answers in another shape (a cluster client): a client asking for an unknown stream
        must still be told to give up.

        Raises:
            redis.exceptions.ConnectionError: the server cannot be reached (or another
                failure than a refused command).
        """
        if self._first_run_id is None:
            return False  # never met before (no hub started here): nothing to compare
        server = await self._server()
        if server is None:
            return False
        run_id, uptime = server
        # Whole seconds of wall-clock time, so up to 1 s off either way: "<=" never answers
        # False before ``seconds`` have passed.
        return run_id != self._first_run_id and uptime <= seconds

    async def _server(self) -> tuple[bytes, int] | None:
        """``INFO server``'s ``run_id`` and ``uptime_in_seconds``; ``None`` if not known."""
        from redis.exceptions import ResponseError  # installed: the app passed a client

        try:
            info = await self.read_client.info("server")
        except ResponseError:
            return None
        if not isinstance(info, dict):
            return None
        run_id, uptime = info.get("run_id"), info.get("uptime_in_seconds")
        if run_id is None or not isinstance(uptime, int):
            return None
        return _bytes(run_id), uptime

    async def _warn_if_evicting(self) -> None:
        """Log a warning if the server evicts keys when full (``maxmemory`` set, a
        ``maxmemory-policy`` other than ``noeviction``; read from ``INFO memory``): the short
        keys that say a producer is alive and a reader is there go first (``volatile-ttl``,
        ``volatile-lru``), and a live stream then reads as one whose producer died."""
        from redis.exceptions import ResponseError  # installed: the app passed a client

        try:
            info = await self.read_client.info("memory")
        except ResponseError:
            return  # INFO refused (an ACL, a proxy): nothing to tell
        if not isinstance(info, dict):
            return
        policy, limit = info.get("maxmemory_policy"), info.get("maxmemory")
        if isinstance(limit, int) and limit > 0 and policy not in (None, "noeviction"):
            logger.warning(
                "the Redis of the stream store evicts keys when full (maxmemory-policy %s): "
                "a live stream's liveness keys may go first, and its readers are then told "
                "its producer died; give the store a Redis with maxmemory-policy noeviction",
                policy,
            )

    async def request_cancel(self, stream_id: str) -> bool:
        key = self._key(stream_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(key)
            pipe.exists(f"{key}:producer")
            pipe.xrevrange(key, count=1)
            exists, alive, last = await pipe.execute()
        if not exists or not alive or _is_end(last):
            return False
        await self.client.publish(self.channel, stream_id)
        return True

    async def watch_cancels(
        self, on_cancel: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        if self._first_run_id is None:
            # The hub is starting: meet the server now, to tell a restart from it later.
            server = await self._server()
            self._first_run_id = None if server is None else server[0]
        if not self._memory_checked:
            self._memory_checked = True
            await self._warn_if_evicting()
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            # Wait for Redis to confirm: a PUBLISH after that is sure to reach us.
            with anyio.fail_after(10):
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "subscribe":
                        break
            ready()
            heard = time.monotonic()  # the last time anything came from Redis
            next_ping = heard + PUBSUB_PING_INTERVAL
            while True:
                message = await pubsub.get_message(timeout=min(1.0, PUBSUB_PING_INTERVAL))
                now = time.monotonic()
                if message is not None:
                    heard = now
                    if message["type"] == "message":
                        on_cancel(_bytes(message["data"]).decode("utf-8", "replace"))
                if now - heard > 2 * PUBSUB_PING_INTERVAL:
                    # The hub logs this and subscribes again on a new connection.
                    raise ConnectionError(
                        f"no reply from Redis pub/sub within {2 * PUBSUB_PING_INTERVAL} s"
                    )
                if now >= next_ping:
                    next_ping = now + PUBSUB_PING_INTERVAL
                    await pubsub.ping()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
