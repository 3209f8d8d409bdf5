"""Shared benchmark machinery: server subprocesses, /proc readings, a raw-socket client, tables.

The client is a single-threaded epoll loop over non-blocking sockets that discards what it
reads (it only counts bytes and ``data:`` lines and spots the chunked-encoding terminator), so
it costs far less CPU than the server it measures. Everything talks to 127.0.0.1 only, and
every wait has a deadline.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER = HERE / "_server.py"
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
END_OF_BODY = b"0\r\n\r\n"  # the last chunk of a chunked HTTP/1.1 body

#: Every server variant ``_server.py`` knows, in table order, with its label.
VARIANT_LABELS = {
    "raw": "raw ASGI loop + disconnect watcher (baseline)",
    "raw-nowatch": "raw ASGI loop, no watcher (extra)",
    "sse-llm": "sse-llm `EventStream`, bare",
    "sse-llm-events": "sse-llm `EventStream`, bare, `EventsFormat` (extra)",
    "sse-llm-starlette": "sse-llm `SSEResponse`, Starlette route",
    "sse-llm-fastapi": "sse-llm `SSEResponse`, FastAPI route",
    "sse-starlette": "sse-starlette `EventSourceResponse`, Starlette route",
    "streaming-routed": "Starlette `StreamingResponse`, Starlette route",
    "streaming": "Starlette `StreamingResponse`, bare",
    "streaming-fastapi": "Starlette `StreamingResponse`, FastAPI route (extra)",
    "sse-llm-django": "sse-llm `SSEResponse`, Django view (extra)",
    "streaming-django": "Django `StreamingHttpResponse`, Django view (extra)",
}
#: What a full run measures (the extras above are on request: ``--variants``).
DEFAULT_VARIANTS = (
    "raw",
    "raw-nowatch",
    "sse-llm",
    "sse-llm-starlette",
    "sse-llm-fastapi",
    "sse-starlette",
    "streaming-routed",
    "streaming",
)
BARE = "sse-llm"  # judged against raw
ROUTED = ("sse-llm-starlette", "sse-llm-fastapi")  # judged against ROUTED_BASELINE
ROUTED_BASELINE = "streaming-routed"

#: uvicorn ``loop``/``http`` pairs (``_server.py --stack``), in table order.
STACKS = {"asyncio": "asyncio/h11", "uvloop": "uvloop/httptools"}


def raise_fd_limit() -> None:
    """Thousands of client sockets need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the server subprocess -------------------------------------------------------------------


@dataclass
class Server:
    variant: str
    stack: str
    proc: subprocess.Popen[bytes]
    port: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"{self.variant} on {STACKS[self.stack]}"

    def cpu_seconds(self) -> float:
        """CPU time of every thread of the server, from the scheduler's nanosecond counter.

        ``/proc/<pid>/task/*/schedstat`` field 1 is the time spent on a CPU (ns); the
        ``utime+stime`` of ``/proc/<pid>/stat`` counts 10 ms ticks, too coarse for quick runs.
        A thread that has ended is no longer counted: in the Django variants, the thread Django
        closes each response in (both variants alike).
        """
        total = 0
        task_dir = f"/proc/{self.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                continue
        if total == 0:  # schedstat off in this kernel: fall back to the tick counters
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total / 1e9

    def memory_kib(self) -> dict[str, int]:
        """``VmRSS`` from ``/proc/<pid>/status`` and ``Pss`` from ``smaps_rollup``, in KiB."""
        out: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1])
        try:
            with open(f"/proc/{self.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        out["pss"] = int(line.split()[1])
        except FileNotFoundError:
            pass
        return out

    def get(self, path: str, timeout: float = 5.0) -> Any:
        """A blocking ``GET`` of a small JSON route (``/stats``, ``/reset``, ``/go``)."""
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n".encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head.lower():
            body = _unchunk(body)
        return json.loads(body)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful stop, which also writes a profile), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        _close_pipe(self.proc)

    def kill(self) -> None:
        """SIGKILL, by this server's PID: for servers whose measurement is over and whose
        graceful stop (a second per open stream set) would only cost time."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        _close_pipe(self.proc)


def _close_pipe(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def start_servers(
    keys: Sequence[tuple[str, str]], profile_dir: str | None = None, gc: str = "on"
) -> dict[tuple[str, str], Server]:
    """Start one server per ``(variant, stack)``, all at once (their imports overlap), and wait
    until each answers ``/stats``. On any failure every one of them is stopped again.
    ``gc``: ``"off"``, the servers run without Python's cyclic garbage collector (a
    diagnostic); ``"freeze"``, they call ``gc.freeze()`` once the app is made."""
    started: dict[tuple[str, str], Server] = {}
    try:
        for variant, stack in keys:
            cmd = [sys.executable, str(SERVER), "--variant", variant, "--stack", stack]
            if profile_dir:
                cmd += ["--profile", f"{profile_dir}/{variant}-{stack}.prof"]
            if gc != "on":
                cmd += ["--gc", gc]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            started[(variant, stack)] = Server(variant, stack, proc)
        deadline = time.monotonic() + START_TIMEOUT + 2 * len(keys)  # they share two cores
        for server in started.values():
            _wait_ready(server, deadline)
        return started
    except BaseException:
        for server in started.values():
            server.kill()
        raise


def _wait_ready(server: Server, deadline: float) -> None:
    proc = server.proc
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0.0))
    if not ready:
        raise RuntimeError(f"server {server.name} printed no port in time")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"server {server.name} exited at startup (code {proc.wait(5)})")
    server.port = json.loads(line)["port"]
    while True:  # the socket listens before uvicorn serves: wait for a real answer
        try:
            server.get("/stats", timeout=2.0)
            return
        except (OSError, ValueError):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.05)


def start_server(variant: str, stack: str, profile_dir: str | None = None) -> Server:
    return start_servers([(variant, stack)], profile_dir)[(variant, stack)]


@contextmanager
def servers(
    keys: Sequence[tuple[str, str]], profile_dir: str | None = None, graceful: bool = True
) -> Iterator[dict[tuple[str, str], Server]]:
    """Start one server per ``(variant, stack)``; always stop them (each by its own PID):
    gracefully (SIGTERM, which writes profiles) or, with ``graceful=False``, by SIGKILL."""
    started = start_servers(keys, profile_dir)
    try:
        yield started
    finally:
        stop_all(started.values(), graceful)


def wait_quiet(server: Server, timeout: float = 5.0, window: float = 0.1) -> None:
    """Wait (at most ``timeout``) until the server spends under 10% of a core over
    ``window``: the teardown of a load's connections is over before the next measurement on
    another server starts competing with it for the two cores."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cpu0 = server.cpu_seconds()
        time.sleep(window)
        if server.cpu_seconds() - cpu0 < 0.1 * window:
            return


def stop_all(started: Iterable[Server], graceful: bool = True) -> None:
    """Stop servers by PID: signal them all first, then wait for each (bounded)."""
    started = list(started)
    for s in started:
        if s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
    for s in started:  # each waits (bounded), escalating to SIGKILL if need be
        if graceful:
            s.stop()
        else:
            s.kill()


# -- the client ------------------------------------------------------------------------------


@dataclass(eq=False)
class Conn:
    """One client connection; the bytes themselves are discarded."""

    sock: socket.socket
    ident: int
    head: bytes = b""
    headers_done: bool = False
    status: int = 0
    nbytes: int = 0
    ndata: int = 0
    tail: bytes = b""
    done: bool = False
    closed_at: float = 0.0

    def feed(self, chunk: bytes) -> None:
        if not self.headers_done:
            self.head += chunk
            if b"\r\n\r\n" not in self.head:
                return
            head, _, chunk = self.head.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            self.headers_done = True
            self.head = b""
        self.nbytes += len(chunk)
        # Four bytes of carry: enough to find a ``data:`` or the 5-byte end across two reads,
        # too few to count one twice.
        joined = self.tail + chunk
        self.ndata += joined.count(b"data:")
        if joined.endswith(END_OF_BODY):
            self.done = True
        self.tail = joined[-4:]

    def reset(self) -> None:
        """Ready for the next response on the same (keep-alive) connection."""
        self.head = b""
        self.headers_done = False
        self.status = 0
        self.ndata = 0
        self.tail = b""
        self.done = False


class Client:
    """Raw-socket HTTP/1.1 GET streams multiplexed with epoll, in this (single) thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}

    def open(self, paths: Sequence[tuple[int, str]], batch: int, deadline: float) -> list[Conn]:
        """Open one stream per ``(ident, path)``, ``batch`` at a time, each batch waited on
        until its response headers arrived (so the listen backlog never overflows)."""
        out: list[Conn] = []
        for start in range(0, len(paths), batch):
            fresh: list[Conn] = []
            for ident, path in paths[start : start + batch]:
                s = socket.create_connection((HOST, self.port), timeout=10)
                s.sendall(f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode())
                s.setblocking(False)
                conn = Conn(s, ident)
                self.conns[s.fileno()] = conn
                self.epoll.register(s.fileno(), select.EPOLLIN)
                fresh.append(conn)
            self.run_until(lambda batch=fresh: all(c.headers_done for c in batch), deadline)
            out.extend(fresh)
        return out

    def run_until(self, predicate: Callable[[], bool], deadline: float, step: float = 0.05) -> bool:
        """Read whatever arrives until ``predicate()`` is true or ``deadline`` (monotonic)
        passes; returns whether the predicate was met."""
        last_check = 0.0
        while True:
            now = time.monotonic()
            if now - last_check >= step or not self.conns:
                if predicate():
                    return True
                last_check = now
            if now >= deadline:
                return False
            for fd, _ in self.epoll.poll(min(step, max(deadline - now, 0.0))):
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                while True:
                    try:
                        chunk = conn.sock.recv(262144)
                    except BlockingIOError:
                        break
                    except ConnectionError:
                        chunk = b""
                    if not chunk:
                        conn.done = True
                        self.epoll.unregister(fd)
                        del self.conns[fd]
                        break
                    conn.feed(chunk)

    def close(self, conn: Conn, reset: bool = True) -> None:
        """Close one connection; ``reset`` sends an RST so no TIME_WAIT entry eats a port
        (thousands of connections per run would otherwise exhaust the ephemeral range)."""
        fd = conn.sock.fileno()
        if fd >= 0 and self.conns.pop(fd, None) is not None:
            self.epoll.unregister(fd)
        if reset:
            conn.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        conn.closed_at = time.monotonic()
        conn.sock.close()

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            self.close(conn)
        self.epoll.close()

    def request_many(
        self, path: str, total: int, inflight: int, keepalive: bool, expect: int, deadline: float
    ) -> int:
        """``total`` GETs of ``path``, ``inflight`` at a time, each read to its end; returns
        how many were wrong (not 200, or fewer than ``expect`` ``data:`` lines).

        ``keepalive``: each of the ``inflight`` connections sends its next request when the
        previous response ended. Otherwise every request has its own connection, which the
        client resets (RST) once the response ended, so that no TIME_WAIT entry is left.
        """
        request = f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode()
        sent = done = bad = 0

        def launch() -> None:
            nonlocal sent
            s = socket.create_connection((HOST, self.port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(request)
            s.setblocking(False)
            conn = Conn(s, sent)
            self.conns[s.fileno()] = conn
            self.epoll.register(s.fileno(), select.EPOLLIN)
            sent += 1

        for _ in range(min(inflight, total)):
            launch()
        while done < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done}/{total} requests answered in time")
            for fd, _ in self.epoll.poll(0.5):
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                eof = False
                while True:
                    try:
                        chunk = conn.sock.recv(262144)
                    except BlockingIOError:
                        break
                    except ConnectionError:
                        chunk = b""
                    if not chunk:
                        eof = True
                        break
                    conn.feed(chunk)
                if not conn.done and not eof:
                    continue
                done += 1
                if not conn.done or conn.status != 200 or conn.ndata < expect:
                    bad += 1
                if keepalive and not eof and sent < total:
                    conn.reset()
                    conn.sock.sendall(request)
                    sent += 1
                    continue
                self.close(conn)
                if sent < total:
                    launch()
        return bad


def client_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- statistics and reports ------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median, or nan if there is none or any value is nan (a missing measurement)."""
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    return statistics.median(values)


def med(samples: Sequence[dict[str, Any]], key: str) -> float:
    """The median of one figure over rounds (``samples``: one dict per round)."""
    return median([s[key] for s in samples])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def ratio_summary(per_round: Sequence[float]) -> str:
    """``1.12x (1.08-1.20)``: the median per-round ratio and its spread over rounds."""
    per_round = [r for r in per_round if not math.isnan(r)]
    if not per_round:
        return "n/a"
    if len(per_round) == 1:
        return f"{per_round[0]:.2f}x"
    return f"{median(per_round):.2f}x ({min(per_round):.2f}-{max(per_round):.2f})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def per_round(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[r] / b[r]`` for every round (nan where ``b[r]`` is 0 or nan)."""
    return [x / y if y and not math.isnan(y) else math.nan for x, y in zip(a, b, strict=True)]


def stack_table(
    variants: Sequence[str],
    stacks: Sequence[str],
    columns: Sequence[tuple[str, Callable[[str, str], str]]],
    first: str = "server",
    label: Callable[[str], str] | None = None,
) -> str:
    """Rows: variants; for each stack, one group of ``columns`` (header, cell(variant,
    stack)). With two stacks each header names its stack."""
    header = [first]
    for stack in stacks:
        for name, _ in columns:
            header.append(f"{name}, {STACKS[stack]}" if len(stacks) > 1 else name)
    rows = []
    for v in variants:
        row: list[object] = [(label or VARIANT_LABELS.__getitem__)(v)]
        for stack in stacks:
            row += [cell(v, stack) for _, cell in columns]
        rows.append(row)
    return markdown_table(header, rows)


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Check:
    """One target on one row: ``situation`` (e.g. "1,000 streams, uvloop/httptools"),
    ``target`` (e.g. "bare ≤ 1.05x raw"), the figure it was judged by, and the verdict."""

    situation: str
    target: str
    figure: str
    ok: bool

    def cell(self) -> str:
        return f"PASS {self.figure}" if self.ok else f"**MISS** {self.figure}"


def ratio_checks(
    situation: str,
    values: dict[str, Sequence[float]],
    bare_limit: float,
    what: str = "",
    also: tuple[str, Callable[[str], tuple[str, bool]]] | None = None,
) -> list[Check]:
    """The issue's two targets on one row, from ``values[variant]`` = the row's figure in
    each round (lower is better): bare sse-llm within ``bare_limit`` of raw, and each routed
    sse-llm no more than Starlette's routed ``StreamingResponse``. Each is judged by the
    median over rounds of the per-round ratio. ``also``: (", 0 leaks", variant -> (figure,
    ok)), a second condition on the same variant, added to each check."""
    pairs: list[tuple[str, str, float]] = []
    if BARE in values and "raw" in values:
        pairs.append((BARE, f"bare {what}≤ {bare_limit:.2f}x raw", bare_limit))
    if ROUTED_BASELINE in values:
        pairs += [
            (v, f"{ROUTE_NAMES[v]} ≤ `StreamingResponse` route", 1.0) for v in ROUTED if v in values
        ]
    checks = []
    for variant, target, limit in pairs:
        base = "raw" if variant == BARE else ROUTED_BASELINE
        r = median(per_round(values[variant], values[base]))
        check = Check(situation, target, ratio_figure(r, limit), r <= limit)
        if also is not None:
            figure, ok = also[1](variant)
            check.target += also[0]
            check.figure += f", {figure}"
            check.ok = check.ok and ok
        checks.append(check)
    return checks


ROUTE_NAMES = {"sse-llm-starlette": "Starlette route", "sse-llm-fastapi": "FastAPI route"}


def ratio_figure(ratio: float, limit: float) -> str:
    """``1.08x``: a judged ratio with two decimals, or as many more as it takes for the figure
    to show its verdict (a median of 1.004 against a limit of 1.00 is a miss and is shown as
    ``1.004x``, not as a ``MISS 1.00x`` that reads as a pass)."""
    if math.isnan(ratio):
        return "n/a"
    for decimals in range(2, 6):
        if (round(ratio, decimals) <= limit) == (ratio <= limit):
            return f"{ratio:.{decimals}f}x"
    return f"just over {limit:.2f}x" if ratio > limit else f"{limit:.2f}x"


def checks_markdown(checks: Sequence[Check], quick: bool) -> str:
    """A table of the targets (rows: situations; columns: targets) and a verdict line."""
    if not checks:
        return ""
    situations = list(dict.fromkeys(c.situation for c in checks))
    targets = list(dict.fromkeys(c.target for c in checks))
    cells = {(c.situation, c.target): c.cell() for c in checks}
    table = markdown_table(
        ["targets", *targets],
        ([s, *(cells.get((s, t), "—") for t in targets)] for s in situations),
    )
    missed = sum(not c.ok for c in checks)
    if quick:
        verdict = "quick run: sizes too small to judge; PASS/MISS shown only to check the report"
    else:
        verdict = "all met" if not missed else f"{missed} of {len(checks)} missed"
    return f"{table}\n\nTargets (ratio: median over rounds of the per-round ratio): **{verdict}**."


def target_summary(checks: Sequence[Check]) -> dict[str, Any]:
    """The JSON part ``run_all.py`` reads: ``target_met`` and the misses."""
    return {
        "target_met": all(c.ok for c in checks) if checks else None,
        "misses": [f"{c.situation}: {c.target}: {c.figure}" for c in checks if not c.ok],
        "checks": [vars(c) for c in checks],
    }


def machine() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": (commit or "unknown") + (" (src modified)" if dirty else ""),
        "packages": {
            d: version(d)
            for d in (
                "sse-llm",
                "uvicorn",
                "h11",
                "starlette",
                "fastapi",
                "sse-starlette",
                "anyio",
                "uvloop",
                "httptools",
            )
        },
    }


FULL_ROUNDS = 7


def common_args(description: str, profile: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (smoke)")
    parser.add_argument(
        "--rounds", type=int, help=f"interleaved rounds, median reported (full: {FULL_ROUNDS})"
    )
    parser.add_argument(
        "--stack",
        choices=("asyncio", "uvloop", "both"),
        default="both",
        help="uvicorn stack(s): asyncio = asyncio loop + h11, uvloop = uvloop + httptools "
        "(uvicorn[standard]); default both",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANT_LABELS),
        metavar="VARIANT",
        help="servers to run (default: the full set; raw is always added). Choices: "
        + ", ".join(VARIANT_LABELS),
    )
    parser.add_argument("--json", help="also write the result (with its markdown) here")
    if profile:
        parser.add_argument(
            "--profile",
            metavar="DIR",
            help="run the servers under cProfile, writing DIR/<variant>-<stack>.prof (inflates "
            "the CPU figures; read with python -m pstats)",
        )
    return parser


def stacks(args: argparse.Namespace) -> list[str]:
    """The stacks to run. uvloop/httptools missing: a quick (smoke) run skips that stack with a
    note; a measuring run stops, since the figures would be incomplete."""
    wanted = ["asyncio", "uvloop"] if args.stack == "both" else [args.stack]
    if "uvloop" in wanted:
        missing = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is None]
        if missing:
            note = f"{' and '.join(missing)} not installed (pip install 'uvicorn[standard]')"
            if not args.quick or args.stack == "uvloop":
                raise SystemExit(f"the uvloop/httptools stack cannot run: {note}")
            print(f"note: skipping the uvloop/httptools stack: {note}", flush=True)
            wanted.remove("uvloop")
    return wanted


def variants(args: argparse.Namespace, default: Sequence[str] = DEFAULT_VARIANTS) -> list[str]:
    """The variants to run, in table order; the raw baseline is always one of them."""
    chosen = set(args.variants or default) | {"raw"}
    return [v for v in VARIANT_LABELS if v in chosen]


def rounds(args: argparse.Namespace) -> int:
    return args.rounds or (1 if args.quick else FULL_ROUNDS)


def header(args: argparse.Namespace, stack_list: Sequence[str], n_rounds: int) -> str:
    """The sentence every table starts with: stacks, rounds, how to read the ratios."""
    st = " and ".join(STACKS[s] for s in stack_list)
    both = ", both stacks in each round" if len(stack_list) > 1 else ""
    return (
        f"uvicorn on {st}; {n_rounds} interleaved round(s) (every variant once per "
        f"round{both}), medians; ratios are per round against the raw loop of the same round "
        f"and stack: median (range over rounds)"
    )


_T0 = time.monotonic()


def progress(args: argparse.Namespace, message: str) -> None:
    """A line on stderr in a measuring run (which takes minutes per benchmark); quiet in
    ``--quick``."""
    if not args.quick:
        print(f"  [{time.monotonic() - _T0:5.0f} s] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any], json_path: str | None) -> None:
    print(result["markdown"])
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))


def command_line() -> str:
    rel = os.path.relpath(sys.argv[0], ROOT)
    return " ".join([".venv/bin/python", rel, *sys.argv[1:]])
