"""Ending every open stream when the server is told to stop (SIGTERM, SIGINT).

A server that is told to stop waits for its open responses, and an LLM stream may stay open
for minutes: uvicorn waits forever (or cancels the requests after
``--timeout-graceful-shutdown``, before their completion hooks ran), daphne cancels them at
once, gunicorn kills its workers after ``--graceful-timeout``. None of them tells the app.

:class:`GracefulShutdown` is that one line. Around an ASGI app (or given a Flask app, see
:func:`sse_llm.flask.graceful_shutdown`) it chains a signal handler in front of the
server's own, from the main thread, once the server has installed its own (at lifespan
startup, or when the first stream starts). On SIGTERM or SIGINT every open stream of the
process ends at once: its final ``error`` event (code ``shutdown``, so clients retry
elsewhere), its source closed, its ``on_complete`` run with reason ``shutdown``. Only then is
the server's own handler run, which finds nothing open and exits promptly. A second signal
goes straight through (the user insists). No server is patched: signal handlers are chained,
the documented way (``signal.getsignal`` / ``signal.signal``).

How the server's handler is held back: the first signal sets the flag and wakes every stream
(``loop.call_soon_threadsafe``, or the trio token); a helper thread waits until every stream
has finished (at most ``drain_timeout``), then sends the same signal to the main thread again,
where it is passed on to the server's handler (or to the default action: the process ends as
it would have). Servers that take signals through the event loop's own
``loop.add_signal_handler`` (hypercorn, granian, gunicorn's ``asgi`` worker) get it through
the loop's wakeup file descriptor whatever we do: there the streams are ended first, and
:meth:`GracefulShutdown.drain` (run by the middleware at lifespan shutdown) waits for them.

The same first signal pauses the cyclic garbage collector and freezes the heap (``pause_gc``):
a process about to exit gains nothing from collecting it, and with 1,000 streams each full
collection costs a fifth of a second or more of the deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import anyio.to_thread

from ._options import check_seconds
from ._types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ._pump import Pump

__all__ = ["GracefulShutdown", "current_shutdown", "threadsafe"]

logger = logging.getLogger("sse_llm")

_Handler = Callable[[int, FrameType | None], Any] | int | None

#: The GracefulShutdown a request runs under (set by the middleware for its task).
_CURRENT: contextvars.ContextVar[GracefulShutdown | None] = contextvars.ContextVar(
    "sse_llm_shutdown", default=None
)
#: The request (a key of its own) the current task serves, set by the middleware.
_REQUEST: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "sse_llm_request", default=None
)


def _ends_by_itself() -> None:
    """The wake-up of a stream that is only counted (see :meth:`GracefulShutdown.enter`)."""


def current_shutdown() -> GracefulShutdown | None:
    """The :class:`GracefulShutdown` the current request runs under, if any."""
    return _CURRENT.get()


class ShutdownOptions(TypedDict, total=False):
    """The options of :class:`GracefulShutdown` (see there), as the keyword arguments of
    :func:`sse_llm.flask.graceful_shutdown`: ``signals``, ``drain_timeout`` (seconds),
    ``pause_gc``."""

    signals: Iterable[int]
    drain_timeout: float
    pause_gc: bool


class GracefulShutdown:
    """Ends every open stream at SIGTERM/SIGINT, before the server acts on the signal.

    As ASGI middleware, in one line around any ASGI app (Starlette, FastAPI, Django's
    ``get_asgi_application()``, a bare ASGI callable)::

        app = GracefulShutdown(app)            # or: app.add_middleware(GracefulShutdown)

    Every stream of a request that runs under it (:class:`~sse_llm.EventStream`, every
    framework's ``SSEResponse``, a :class:`~sse_llm.resume.StreamHub`'s producers started
    from such a request) then ends on the signal with an ``error`` event (code
    ``shutdown``), its source closed and its ``on_complete`` run (reason ``shutdown``), and
    the server exits at once instead of waiting for them or cancelling them. It is also a
    :class:`~sse_llm.ShutdownSignal` (``await shutdown.wait()``) for anything else that should
    stop then (``StreamHub(shutdown=...)``).

    Args:
        app: the ASGI app; ``None`` for an object used only as a signal (Flask: see
            :func:`sse_llm.flask.graceful_shutdown`).
        signals: the signals that stop the server (default SIGTERM and SIGINT; SIGQUIT too
            where a handler is already installed for it: gunicorn's workers).
        drain_timeout: the longest the server's own handler is held back while streams end
            (seconds, default 10); keep it below the server's kill timeout (gunicorn's
            ``--graceful-timeout``, 30 s by default).
        pause_gc: (default ``True``) from the first stop signal that finds streams open, while they
            end and the server exits, pause Python's cyclic garbage collector (``gc.disable()``) and
            freeze what is alive (``gc.freeze()``: no collection looks at those objects again).
            Ending 1,000 streams allocates enough to set off a full collection over the heap of a
            worker that is about to exit (0.22 s under Django), and an interpreter that exits
            normally collects the whole heap at least once more (daphne 0.5-0.6 s, each gunicorn
            worker 0.3 s). A process killed by the signal (uvicorn re-raises it) does neither, and
            as there, a finalizer that only a cyclic collection would run does not run at this exit:
            close files and clients explicitly. If the process is still running ``drain_timeout``
            seconds after the signal was passed on, the collector is unfrozen and enabled again.
            Left alone if the app had disabled the collector; no freeze if the app froze objects
            itself. Reference counting still frees what it can meanwhile.

    The handler is installed only from the main thread, and only once the server has
    installed its own (at lifespan startup, or when a stream starts): a handler installed at
    import would be replaced. Once a signal came, the flag stays set for the process: every
    stream started later ends at once.

    Raises:
        TypeError: a ``drain_timeout`` that is not a number, or an unknown keyword.
        ValueError: a ``drain_timeout`` that is not positive and finite.
    """

    def __init__(
        self,
        app: ASGIApp | None = None,
        *,
        signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
        drain_timeout: float = 10.0,
        pause_gc: bool = True,
    ) -> None:
        check_seconds("drain_timeout", drain_timeout)  # finite: a thread's wait takes it
        self.app = app
        self.signals: tuple[int, ...] = tuple(signals)
        self.drain_timeout = drain_timeout
        self.pause_gc = pause_gc
        # Re-entrant: the signal handler runs in the main thread between two bytecodes, maybe
        # while that thread holds the lock (a stream counted in or out there): a plain lock
        # would wait for itself forever.
        self._lock = threading.RLock()
        self._pid = 0
        self._warned_thread = False  # see _warn_if_never_installed
        self._previous: dict[int, _Handler] = {}
        self._held: list[int] = []  # a signal whose delivery waits for the streams to end
        self._redelivering: set[int] = set()
        # signal -> the frame it came with, while it is passed on to the previous handler
        self._delivering: dict[int, FrameType | None] = {}
        self._triggered = False
        self._live: dict[Pump, Callable[[], None]] = {}  # pump -> wakes it in its loop
        # Requests that started a stream and have not returned yet: the server's handler waits
        # for them too, so that what the framework does after the body (Django closes the
        # response and sends request_finished) runs before the server cancels what is left.
        self._streaming_requests: set[object] = set()
        # Requests under way: a stream counted in after its request returned (a detached
        # stream's task, which inherits the request's context) must not count it again.
        self._open_requests: set[object] = set()
        self._listeners: list[Callable[[], None]] = []
        self._pending_closes: dict[object, float] = {}  # see hold(): token -> timeout
        self._drained = threading.Event()
        self._waiters: list[tuple[Any, Callable[[], None]]] = []

    # -- as middleware -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("GracefulShutdown(app) needs the app it wraps")
        token = _CURRENT.set(self)
        request = object()
        request_token = _REQUEST.set(request)
        with self._lock:
            self._fork_check_locked()  # a forked worker's first request must stay counted
            self._open_requests.add(request)
        try:
            if scope["type"] == "lifespan":
                # A new run of a server in this process (uvicorn.Server.serve() again) has set
                # handlers of its own: get in front of them as at the first run.
                self._forget_displaced()
            self.install()
            if scope["type"] == "lifespan":
                await self.app(scope, self._lifespan_receive(receive), send)
            else:
                await self.app(scope, receive, send)
        finally:
            _REQUEST.reset(request_token)
            _CURRENT.reset(token)
            with self._lock:
                self._open_requests.discard(request)
                self._streaming_requests.discard(request)
                self._set_drained_if_idle_locked()

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                # Servers whose signal handling cannot be held back (the event loop's own
                # handler) run the lifespan shutdown before they stop: end the streams first.
                await self.drain()
            return message

        return lifespan_receive

    # -- as a shutdown signal ----------------------------------------------------------------

    def is_set(self) -> bool:
        """Whether a stop signal came (or :meth:`trigger` ran)."""
        return self._triggered

    async def wait(self) -> None:
        """Return once a stop signal came (a :class:`~sse_llm.ShutdownSignal`)."""
        if self._triggered:
            return
        event = anyio.Event()
        waker = threadsafe(event.set)
        key = object()
        with self._lock:
            self._waiters.append((key, waker))
        try:
            if self._triggered:
                return
            await event.wait()
        finally:
            with self._lock:
                self._waiters = [(k, w) for k, w in self._waiters if k is not key]

    def trigger(self) -> None:
        """End every open stream now, as a stop signal does (thread-safe)."""
        with self._lock:
            first = not self._triggered
            self._triggered = True
            live = list(self._live.values())
            waiters = [w for _, w in self._waiters]
            listeners = list(self._listeners) if first else []
            pending = list(self._pending_closes.items()) if first else []
            self._set_drained_if_idle_locked()
        for token, timeout in pending:
            self._release_later(token, timeout)
        for wake in [*live, *waiters, *listeners]:
            with contextlib.suppress(RuntimeError):  # that event loop is closed
                wake()

    async def drain(self) -> bool:
        """End every open stream and wait until all have finished: final event sent, source
        closed, hook run, and the request that streamed returned from the app (at most
        ``drain_timeout`` seconds).

        Returns:
            whether every stream finished in time.
        """
        self.trigger()
        if self._drained.is_set():
            return True
        # Streams of other event loops (threads) count too: wait on the thread-safe flag.
        return await anyio.to_thread.run_sync(
            self._drained.wait, self.drain_timeout, abandon_on_cancel=True
        )

    def on_trigger(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (thread-safe wrapper made by the caller) when a signal comes."""
        with self._lock:
            self._listeners.append(listener)
            triggered = self._triggered
        if triggered:
            listener()

    # -- the streams -------------------------------------------------------------------------

    def enter(self, pump: Pump, *, end: bool = True) -> None:
        """Count a stream in; it ends at once if the signal already came. With ``end=False``
        it is only counted (the drain waits for it): it ends by itself at a shutdown."""
        self._fork_check()
        wake = threadsafe(lambda: pump.end("shutdown")) if end else _ends_by_itself
        request = _REQUEST.get() if _CURRENT.get() is self else None
        with self._lock:
            self._live[pump] = wake
            if request in self._open_requests:
                self._streaming_requests.add(request)
            self._drained.clear()
            triggered = self._triggered
        if triggered:
            wake()

    def hold(self, token: object, timeout: float) -> None:
        """Have the drain wait for ``token`` until :meth:`release`, or ``timeout`` seconds
        after the stop signal (thread-safe): a sync source's close left to its worker thread,
        which would not run if the process exited first, and which a source hung in
        ``next()`` may never reach."""
        with self._lock:
            self._pending_closes[token] = timeout
            self._drained.clear()
            triggered = self._triggered
        if triggered:
            self._release_later(token, timeout)

    def _release_later(self, token: object, timeout: float) -> None:
        timer = threading.Timer(timeout, self.release, (token,))
        timer.daemon = True
        timer.start()

    def release(self, token: object) -> None:
        """``token`` is done (thread-safe): see :meth:`hold`."""
        with self._lock:
            self._pending_closes.pop(token, None)
            self._set_drained_if_idle_locked()

    def leave(self, pump: Pump) -> None:
        """Count a finished stream out (its hook has run)."""
        with self._lock:
            self._live.pop(pump, None)
            self._set_drained_if_idle_locked()

    def _set_drained_if_idle_locked(self) -> None:
        if (
            self._triggered
            and not self._live
            and not self._streaming_requests
            and not self._pending_closes
        ):
            self._drained.set()

    # -- the signal handler ------------------------------------------------------------------

    def install(self) -> bool:
        """Chain the handler in front of the server's, if not already there.

        Only from the main thread (Python runs signal handlers there and allows installing
        them only there); cheap when already in front. Returns whether it is in the chain.

        Once installed, it is not put back in front of a handler installed after it (an
        app's own, which calls the one it replaced: that handler and ours would each call the
        other, without end); nor in front of another ``GracefulShutdown`` whose chain reaches
        it (one around a mounted sub-app and one around the whole app).
        """
        if threading.current_thread() is not threading.main_thread():
            self._warn_if_never_installed()
            return False
        with self._lock:
            self._fork_check_locked()
            for sig in self.signals:
                self._chain_in_front_locked(sig)
            quit_ = getattr(signal, "SIGQUIT", None)
            if (
                quit_ is not None
                and quit_ not in self.signals
                and callable(signal.getsignal(quit_))  # set already: gunicorn's workers
            ):
                self._chain_in_front_locked(quit_)
        return True

    def _forget_displaced(self) -> None:
        """Forget the signals whose handler no longer leads to ours (replaced, not chained),
        so that :meth:`install` chains in front of them again."""
        with self._lock:
            for sig in list(self._previous):
                if not self._reached_from(signal.getsignal(sig), sig):
                    del self._previous[sig]

    def _chain_in_front_locked(self, sig: int) -> None:
        current = signal.getsignal(sig)
        if current is None or self._reached_from(current, sig):  # None: set from C
            return
        if sig in self._previous and not isinstance(
            getattr(current, "__self__", None), GracefulShutdown
        ):
            return  # put there after ours: passing the signal on is its job
        self._previous[sig] = current
        signal.signal(sig, self._handle)

    def _reached_from(self, handler: _Handler, sig: int) -> bool:
        """Whether ``handler`` is ours or passes ``sig`` on to ours through other
        ``GracefulShutdown`` handlers."""
        seen: set[int] = set()
        while True:
            owner = getattr(handler, "__self__", None)
            if owner is self:
                return True
            if not isinstance(owner, GracefulShutdown) or id(owner) in seen:
                return False
            seen.add(id(owner))
            handler = owner._previous.get(sig)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if sig in self._redelivering:  # our own re-delivery, once the streams ended
            self._redelivering.discard(sig)
            if sig in self._held:
                self._held.remove(sig)
                self._deliver(sig, frame)
            return
        first = not self._triggered
        self.trigger()
        previous = self._previous.get(sig)
        held = first and not (_is_loop_handler(previous) or self._drained.is_set())
        if held:
            self._held.append(sig)
        else:
            # The loop gets it anyway (its wakeup fd); or a second signal (the user insists),
            # or nothing to wait for: pass it on now, after any signal still held back.
            while self._held:
                self._deliver(self._held.pop(0), frame)
            self._deliver(sig, frame)
        paused = first and self.pause_gc and gc.isenabled() and not self._drained.is_set()
        frozen = False
        if paused:
            gc.disable()
            # Unless the app freezes objects itself (before a fork, say): left to it.
            frozen = gc.get_freeze_count() == 0
            if frozen:
                gc.freeze()
        if held or paused:
            threading.Thread(
                target=self._after_signal,
                args=(sig, paused, frozen),
                daemon=True,
                name="sse-llm-drain",
            ).start()

    def _after_signal(self, sig: int, paused: bool, frozen: bool) -> None:
        """Wait for the streams to end and pass on a held signal; collect garbage again if the
        process is still there ``drain_timeout`` seconds later."""
        if not self._drained.wait(self.drain_timeout):
            logger.warning("streams still open %.1f s after a stop signal", self.drain_timeout)
        if sig in self._held:
            self._redelivering.add(sig)
            # To the main thread: its blocking call returns with EINTR and the handler runs at
            # once (raise_signal here would run it only at the main thread's next bytecode).
            signal.pthread_kill(threading.main_thread().ident or 0, sig)
        if paused:
            # Still paused while the server stops: an interpreter that exits normally collects
            # the whole heap first if the collector is on, and then again, on or not, except
            # frozen objects (daphne: 0.26 s and 0.5 s with 1,000 streams).
            time.sleep(self.drain_timeout)
            if frozen:
                gc.unfreeze()
            gc.enable()

    def _deliver(self, sig: int, frame: FrameType | None) -> None:
        """What would have happened without us."""
        outer = self._delivering.get(sig, _NOT_DELIVERING)
        if outer is frame:
            # The handler we passed it to passed the same signal back (a handler passes its
            # frame on; a new signal comes with another): handlers chained in a loop, set up
            # by code other than install(). Passing it on again would recurse without end.
            logger.warning("signal %d came back to sse-llm's handler: not passed on again", sig)
            return
        self._delivering[sig] = frame
        try:
            self._deliver_once(sig, frame)
        finally:
            if outer is _NOT_DELIVERING:
                del self._delivering[sig]
            else:
                self._delivering[sig] = outer

    def _deliver_once(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous.get(sig, signal.SIG_DFL)
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    def _warn_if_never_installed(self) -> None:
        """Say once that the signals will not reach the streams: the app runs outside the
        main thread while a server's own handler waits there (Django's ``runserver`` with its
        autoreloader), so ours could not be chained in front of it, and a stop would cut
        every stream with no hook run. An app served from a thread with no handler of a
        server to get in front of (a test client's portal) is left alone."""
        # SIGTERM's only: asyncio.run() puts a handler of its own on SIGINT (a test's loop).
        term = signal.getsignal(signal.SIGTERM) if signal.SIGTERM in self.signals else None
        if not callable(term) or term == self._handle:
            return  # no server's handler to get in front of, or ours is (a WSGI server's hook)
        with self._lock:
            if self._warned_thread:
                return
            self._warned_thread = True
        logger.warning(
            "GracefulShutdown could not install its signal handler: the app runs outside the "
            "main thread (Django's runserver autoreloader does that: use --noreload, or run "
            "uvicorn or daphne directly). A stop signal will cut open streams, with no final "
            "event and no on_complete."
        )

    def _fork_check(self) -> None:
        with self._lock:
            self._fork_check_locked()

    def _fork_check_locked(self) -> None:
        # A forked worker (gunicorn --preload) inherits this object, not the parent's
        # handlers, threads or streams.
        pid = os.getpid()
        if self._pid != pid:
            self._pid = pid
            self._previous.clear()
            self._held.clear()
            self._redelivering.clear()
            self._delivering.clear()
            self._triggered = False
            self._live.clear()
            self._streaming_requests.clear()
            self._open_requests.clear()
            self._pending_closes.clear()
            self._waiters.clear()
            self._drained.clear()


_NOT_DELIVERING: Any = object()


def _is_loop_handler(handler: _Handler) -> bool:
    """asyncio's and uvloop's ``add_signal_handler``: the loop reads the signal from its wakeup
    file descriptor; the Python-level handler is a no-op."""
    if getattr(handler, "__name__", "") == "_sighandler_noop":
        return True
    return isinstance(getattr(handler, "__self__", None), asyncio.AbstractEventLoop)


def threadsafe(callback: Callable[[], None]) -> Callable[[], None]:
    """``callback`` made safe to call from any thread or a signal handler: it runs in the
    current event loop (asyncio, or trio through its token)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio  # only trio runs without an asyncio loop here

        token = trio.lowlevel.current_trio_token()

        def wake_trio() -> None:
            token.run_sync_soon(callback)

        return wake_trio

    def wake() -> None:
        loop.call_soon_threadsafe(callback)

    return wake
