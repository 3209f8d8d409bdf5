"""The one set of stream options every binding takes, checked when the binding is built.

:class:`StreamOptions` declares the names and types (so ``**options: Unpack[StreamOptions]``
lets a type checker catch a misspelt option); :func:`resolve` checks them at run time too and
fills in the defaults, so a wrong name or type raises ``TypeError`` where the response is
built, not halfway through a request.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypedDict

import anyio

from . import _formats
from ._engine import StreamEngine
from ._formats import NamedEventsFormat, WireFormat
from ._types import CompletionHook, ShutdownSignal

__all__ = [
    "NOT_FOR_COLLECT",
    "NOT_FOR_PRODUCERS",
    "NOT_FOR_READERS",
    "NOT_FOR_WEBSOCKETS",
    "CollectOptions",
    "Config",
    "ProducerOptions",
    "ResumeOptions",
    "StreamOptions",
    "WebSocketOptions",
    "check_seconds",
    "header_pairs",
    "resolve",
    "response_headers",
]


class ResumeOptions(TypedDict, total=False):
    """Options of a response that reads a detached stream (``StreamHub.response``,
    ``ResumeResponse``): the :class:`StreamOptions` that apply to sending stored events. The
    format, the source and its hook belong to the stream's producer (``StreamHub.start``).

    Attributes:
        heartbeat: seconds without output before the stream format's keep-alive is sent;
            ``None`` disables. Default 15.
        send_timeout: seconds one send may wait on a client that stopped reading before this
            response ends (the producer goes on); ``None`` disables. Default 30.
        headers: extra response headers (names are sent lower-cased).
    """

    heartbeat: float | None
    send_timeout: float | None
    headers: Mapping[str, str] | None


class CollectOptions(TypedDict, total=False):
    """The :class:`StreamOptions` that apply with no wire (:func:`~sse_llm.collect`):
    ``close_timeout``, ``on_complete``, ``keep_text``, ``choice``, ``sync_limiter``; see
    :class:`StreamOptions` for each. The other bindings' options build on these."""

    close_timeout: float
    on_complete: CompletionHook | None
    keep_text: bool | int
    choice: int | None
    sync_limiter: anyio.CapacityLimiter | None


class ProducerOptions(CollectOptions, total=False):
    """What ``StreamHub.start`` takes: :class:`CollectOptions` and ``format``. The rest of
    :class:`StreamOptions` belongs to each reader's response (:class:`ResumeOptions`)."""

    format: WireFormat


class WebSocketOptions(CollectOptions, total=False):
    """What the WebSocket takes: :class:`CollectOptions` and ``heartbeat``, ``send_timeout``,
    ``shutdown`` (see :class:`StreamOptions`). Its messages are JSON (no ``format``), and it
    has no HTTP ``headers``."""

    heartbeat: float | None
    send_timeout: float | None
    shutdown: ShutdownSignal | None


class StreamOptions(ResumeOptions, CollectOptions, total=False):
    """Options of a stream, the same in every binding (``EventStream``, ``SSEResponse`` in
    each framework module, ``@sse``, ``SSEEndpoint``; the WebSocket, ``StreamHub.start`` and
    ``collect`` take the part that applies to them: :class:`WebSocketOptions`,
    :class:`ProducerOptions`, :class:`CollectOptions`).

    Attributes:
        format: the wire format (default :class:`~sse_llm.formats.NamedEventsFormat`).
        heartbeat: seconds without output before the format's keep-alive is sent (nginx
            closes a silent stream after 60 s, Cloudflare after 100 s); ``None`` disables.
            Default 15.
        send_timeout: seconds one send may wait on a client that stopped reading before the
            stream ends with reason ``timeout``; ``None`` disables. Default 30.
        close_timeout: seconds allowed, once a stream is cut (disconnect, timeout, shutdown),
            for closing its source and sending its last event; past them the source is left as
            it is, a warning is logged and the completion hook runs all the same. Default 5.
        on_complete: called once with the :class:`~sse_llm.StreamResult` when the stream
            ends, whatever the reason; sync or async; run even when the request is cancelled.
            It runs on the event loop: a hook that blocks (a sync database call) stalls every
            other stream while it runs, so make it async (see :data:`~sse_llm.CompletionHook`).
        shutdown: an event the app sets when the server begins shutting down (``anyio.Event``,
            ``asyncio.Event``): the stream then sends an ``error`` event (code ``shutdown``),
            closes its source and ends with reason ``shutdown``.
        headers: extra response headers (names are sent lower-cased).
        keep_text: how much answer text :attr:`StreamResult.text` keeps for ``on_complete``:
            ``True`` (default) all of it, ``False`` none, an ``int`` at most that many
            characters (the start of the answer; :attr:`StreamResult.text_truncated` tells).
            Kept text costs memory for the whole stream (close to the text's own size: sse-llm
            joins the tokens as it goes). A stream with no ``on_complete`` keeps none, since
            nothing could read it: its memory stays flat however long the answer.
        choice: for a provider stream with several choices (OpenAI ``n > 1``, Gemini
            ``candidateCount``): which one to stream. ``None`` (default): only choice 0 is
            expected, and another index ends the stream with an ``error`` event (code
            ``multiple_choices``) instead of mixing answers.
        sync_limiter: the ``anyio.CapacityLimiter`` bounding how many ``next()`` calls of sync
            sources run at once in worker threads (each blocked ``next()`` holds one; under
            Django each sync source also has a thread of its own, idle between its steps).
            Default: one limiter of :data:`SYNC_SOURCE_THREADS` per event loop, apart from
            anyio's default limiter (40 threads) that ``run_in_threadpool`` and sync views
            use, so blocked sources never starve the app's own thread pool.
    """

    format: WireFormat
    shutdown: ShutdownSignal | None


#: Worker threads that sync sources may hold at once, per event loop, by default.
SYNC_SOURCE_THREADS = 100


@dataclass(slots=True)
class Config:
    """:class:`StreamOptions` checked, with every default filled in."""

    format: WireFormat
    heartbeat: float | None = 15.0
    send_timeout: float | None = 30.0
    close_timeout: float = 5.0
    on_complete: CompletionHook | None = None
    shutdown: ShutdownSignal | None = None
    headers: Mapping[str, str] | None = None
    keep_text: bool | int = True
    choice: int | None = None
    sync_limiter: anyio.CapacityLimiter | None = None

    @property
    def text_kept(self) -> bool | int:
        """What a stream keeps of the answer: ``keep_text``, or nothing without a hook."""
        return self.keep_text if self.on_complete is not None else False

    def engine(self, format: WireFormat | None = None) -> StreamEngine:
        """A stream's engine for these options (``format``: instead of the options' own)."""
        return StreamEngine(
            self.format if format is None else format, keep_text=self.text_kept, choice=self.choice
        )


_NAMES = frozenset(StreamOptions.__annotations__)  # with the keys of ResumeOptions, its base
#: The options a reader of a detached stream does not take (see :class:`ResumeOptions`).
NOT_FOR_READERS = _NAMES - frozenset(ResumeOptions.__annotations__)
#: The options ``collect`` does not take (see :class:`CollectOptions`).
NOT_FOR_COLLECT = _NAMES - frozenset(CollectOptions.__annotations__)
#: The options the WebSocket does not take (see :class:`WebSocketOptions`).
NOT_FOR_WEBSOCKETS = _NAMES - frozenset(WebSocketOptions.__annotations__)
#: The options ``StreamHub.start`` does not take (see :class:`ProducerOptions`).
NOT_FOR_PRODUCERS = _NAMES - frozenset(ProducerOptions.__annotations__)


_INF = float("inf")


def _seconds(name: str, value: Any) -> None:
    if type(value) is float or type(value) is int:  # the usual case, checked first
        if 0 < value < _INF:  # also refuses NaN
            return
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    elif 0 < float(value) < _INF:
        return
    # Infinity too: a thread's wait (Flask's) cannot take it; None is how to say "no limit".
    raise ValueError(f"{name} must be a positive, finite number of seconds: {value}")


def _seconds_or_none(name: str, value: Any) -> None:
    if value is None or ((type(value) is float or type(value) is int) and 0 < value < _INF):
        return  # the usual cases, checked first
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    _seconds(name, value)


def check_seconds(name: str, value: Any, *, optional: bool = False) -> None:
    """Check a time given in seconds: a positive, finite number (or ``None`` if
    ``optional``).

    Raises:
        TypeError: not a number (a ``bool`` neither).
        ValueError: zero, negative, NaN or infinite.
    """
    (_seconds_or_none if optional else _seconds)(name, value)


def _callable_or_none(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, not {type(value).__name__}")


def _shutdown(name: str, value: Any) -> None:
    if value is not None and (
        _unbound(value, "wait") or not callable(getattr(value, "wait", None))
    ):
        raise TypeError(
            f"{name} must be an event object with an async wait() (anyio.Event(), "
            f"asyncio.Event()), not {_described(value)}"
        )


def _unbound(value: Any, method: str) -> bool:
    """Whether ``value`` is a class whose ``method`` needs an instance: the class was given
    where its instance belongs (``TypedJSONFormat`` for ``TypedJSONFormat()``). A class whose
    method is static or a class method may stand for itself."""
    return isinstance(value, type) and isinstance(
        inspect.getattr_static(value, method, None), types.FunctionType
    )


def _described(value: Any) -> str:
    """A value's type for an error message; a class given for an instance says so."""
    if isinstance(value, type):
        return f"the class {value.__name__} (its instance was meant: add the parentheses)"
    return type(value).__name__


def _mapping_or_none(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, not {type(value).__name__}")


def _headers(name: str, value: Any) -> None:
    _mapping_or_none(name, value)
    if value is not None:
        header_pairs(value)  # a Connection header fails here, not at each request


def _keep_text(name: str, value: Any) -> None:
    if not isinstance(value, bool | int):
        raise TypeError(f"{name} must be a bool or an int, not {type(value).__name__}")
    if value is not True and value is not False and value < 0:
        raise ValueError(f"{name} must not be negative: {value}")


def _index_or_none(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative: {value}")


def _limiter_or_none(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, type) or not hasattr(value, "total_tokens")):
        raise TypeError(f"{name} must be an anyio.CapacityLimiter or None, not {_described(value)}")


#: The wire formats that ship with sse-llm (the HTML ones import jinja2: checked by attribute).
_SHIPPED_FORMATS = frozenset(
    {
        _formats.AISDKFormat,
        _formats.NamedEventsFormat,
        _formats.OpenAIChatFormat,
        _formats.TextFormat,
        _formats.TypedJSONFormat,
    }
)


def _format(name: str, value: Any) -> None:
    # A protocol check by attribute: formats are duck-typed (see WireFormat). None: the default.
    if (
        value is not None
        and type(value) not in _SHIPPED_FORMATS
        and not (
            not _unbound(value, "writer")  # TypedJSONFormat without its parentheses
            and hasattr(value, "writer")
            and hasattr(value, "media_type")
            and hasattr(value, "headers")
            and hasattr(value, "keepalive")
        )
    ):
        raise TypeError(
            f"{name} must be a wire format object (sse_llm.formats), not {_described(value)}"
            + (f" {value!r}" if isinstance(value, str) else "")
        )


#: How each option is checked; only the options given are (the defaults are known good). A
#: response is built per request, so this runs on every one.
_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "format": _format,
    "heartbeat": _seconds_or_none,
    "send_timeout": _seconds_or_none,
    "close_timeout": _seconds,
    "on_complete": _callable_or_none,
    "shutdown": _shutdown,
    "headers": _headers,
    "keep_text": _keep_text,
    "choice": _index_or_none,
    "sync_limiter": _limiter_or_none,
}
assert _CHECKS.keys() == _NAMES


def resolve(options: Mapping[str, Any], *, binding: str, exclude: Collection[str] = ()) -> Config:
    """Check ``options`` and return the :class:`Config`.

    Args:
        options: keyword arguments a binding received (see :class:`StreamOptions`).
        binding: the binding's name, for error messages (``"SSEResponse"``).
        exclude: option names that make no sense for this binding (a WebSocket answer has
            no HTTP ``headers``): giving one is an error.

    Raises:
        TypeError: an unknown or excluded option, or a value of the wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, a
            ``Connection`` header.
    """
    for name, value in options.items():
        check = _CHECKS.get(name)
        if check is None or name in exclude:
            _refuse(options, binding, exclude)
        check(name, value)
    if options.get("format") is not None:
        return Config(**options)  # the usual case: no copy of the options
    given = dict(options)
    given.pop("format", None)
    return Config(NamedEventsFormat(), **given)


#: The bindings that answer with a status of their own choosing (each framework's response).
_TAKE_A_STATUS = frozenset({"SSEResponse", "@sse", "EventStream"})


def _refuse(options: Mapping[str, Any], binding: str, exclude: Collection[str]) -> NoReturn:
    unknown = options.keys() - _NAMES
    if unknown:
        allowed = sorted(_NAMES - set(exclude))
        hints = []
        if unknown & {"status", "status_code"} and binding in _TAKE_A_STATUS:
            # Each binding keeps its host's own name for the status.
            hints.append(
                "the HTTP status is status_code= in Starlette and FastAPI, status= in Django "
                "and Flask"
            )
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.8)  # typos only
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise TypeError(
            f"{binding} got unknown option(s) {', '.join(sorted(unknown))}{hint}; "
            f"the options are {', '.join(allowed)}"
        )
    excluded = options.keys() & set(exclude)
    raise TypeError(f"{binding} does not take {', '.join(sorted(excluded))}")


def header_pairs(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI pairs, names lower-cased (HTTP/2 requires it, RFC 9113 §8.2).

    Raises:
        TypeError: a name or value that is not a ``str``.
        ValueError: a name that is not an HTTP token (RFC 9110 §5.1), a value with a
            control character such as CR or LF (RFC 9110 §5.5: a header injection) or
            outside Latin-1, or a connection-specific header (``Connection``,
            ``Keep-Alive``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Connection``): they are
            forbidden in HTTP/2 (RFC 9113 §8.2.2).
    """
    pairs = []
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"header {name!r}: its name and value must be str, "
                f"not {type(name).__name__} and {type(value).__name__}"
            )
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"not an HTTP header name (RFC 9110 §5.1): {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(
                f"the {name} header's value holds a control character or a character "
                f"outside Latin-1 (RFC 9110 §5.5): {value!r}"
            )
        if name.lower() in _CONNECTION_SPECIFIC:
            raise ValueError(
                f"the {name} header is connection-specific, forbidden in HTTP/2 (RFC 9113 "
                "§8.2.2); the server writes what the connection needs"
            )
        pairs.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return list(dict(pairs).items())  # one per name, the last given wins (as before)


#: Connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2, RFC 9110 §7.6.1).
_CONNECTION_SPECIFIC = frozenset(
    ("connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade")
)
#: An HTTP token: a header's name (RFC 9110 §5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a header value cannot hold: controls other than tab (CR, LF, NUL ... , RFC 9110 §5.5)
#: and what Latin-1 cannot encode.
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")


#: Every stream response's headers besides its content type.
_STREAM_HEADERS = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"))


@functools.lru_cache(maxsize=64)
def _content_type(media_type: str) -> bytes:
    return f"{media_type}; charset=utf-8".encode("latin-1")


def response_headers(
    format: WireFormat, extra: Mapping[str, str] | None
) -> list[tuple[bytes, bytes]]:
    """The headers of a stream response, as ASGI header pairs.

    ``content-type: <format>; charset=utf-8`` (without the charset, ``requests`` reads
    ``text/event-stream`` as ISO-8859-1), ``cache-control: no-cache``, ``x-accel-buffering:
    no`` (nginx: don't buffer), the format's own headers, then ``extra``. Names lower-cased
    (HTTP/2 requires it, RFC 9113 §8.2); no ``Connection`` header.

    Raises:
        ValueError: a connection-specific header (``Connection`` ...): they are forbidden in
            HTTP/2 (RFC 9113 §8.2.2).
    """
    base = [(b"content-type", _content_type(format.media_type)), *_STREAM_HEADERS]
    if not format.headers and not extra:
        return base
    headers = dict(base)
    headers.update(header_pairs(format.headers))
    headers.update(header_pairs(extra))
    return list(headers.items())
