"""Shared benchmark machinery: server subprocesses, /proc readings, a raw-socket client, tables.

The client is a single-threaded epoll loop over non-blocking sockets that discards what it
reads (it only counts bytes and ``data:`` lines and spots the chunked-encoding terminator), so
it costs far less CPU than the server it measures. Everything talks to 127.0.0.1 only, and
every wait has a deadline.
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from collections.abc import Callable, Iterable, Sequence
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

LLM_VARIANTS = ("raw", "sse-llm", "sse-llm-events", "sse-starlette", "streaming")
VARIANT_LABELS = {
    "raw": "raw ASGI loop (baseline)",
    "sse-llm": "sse-llm `EventStream`, `TextFormat`",
    "sse-llm-events": "sse-llm `EventStream`, `EventsFormat` (extra)",
    "sse-starlette": "sse-starlette `EventSourceResponse`",
    "streaming": "Starlette `StreamingResponse`",
}


def raise_fd_limit() -> None:
    """Thousands of client sockets need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the server subprocess -------------------------------------------------------------------


@dataclass
class Server:
    variant: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time of every thread of the server, from the scheduler's nanosecond counter.

        ``/proc/<pid>/task/*/schedstat`` field 1 is the time spent on a CPU (ns); the
        ``utime+stime`` of ``/proc/<pid>/stat`` counts 10 ms ticks, too coarse for quick runs.
        """
        total = 0
        task_dir = f"/proc/{self.pid}/task"
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:  # a thread that just ended
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
        """A blocking ``GET`` of a small JSON route (``/stats``, ``/reset``)."""
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


def start_server(variant: str, profile: str | None = None) -> Server:
    cmd = [sys.executable, str(SERVER), "--variant", variant]
    if profile:
        cmd += ["--profile", profile]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        if not ready:
            raise RuntimeError(f"server {variant} printed no port within {START_TIMEOUT}s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server {variant} exited at startup (code {proc.wait(5)})")
        server = Server(variant, proc, json.loads(line)["port"])
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the socket listens before uvicorn serves: wait for a real answer
            try:
                server.get("/stats", timeout=2.0)
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        return server
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        raise


@contextmanager
def servers(variants: Iterable[str], profile_dir: str | None = None) -> Any:
    """Start one server per variant; always stop them (each by its own PID)."""
    started: dict[str, Server] = {}
    try:
        for v in variants:
            prof = f"{profile_dir}/{v}.prof" if profile_dir else None
            started[v] = start_server(v, prof)
        yield started
    finally:
        for s in started.values():
            s.stop()


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


def client_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- statistics and reports ------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def ratio_summary(per_round: Sequence[float]) -> str:
    """``1.12x (1.08-1.20)``: the median per-round ratio and its spread over rounds."""
    if not per_round:
        return "n/a"
    if len(per_round) == 1:
        return f"{per_round[0]:.2f}x"
    return f"{median(per_round):.2f}x ({min(per_round):.2f}-{max(per_round):.2f})"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


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
                "sse-starlette",
                "anyio",
                "uvloop",
                "httptools",
            )
        },
    }


def common_args(description: str, profile: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round (smoke)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (median is reported)")
    parser.add_argument("--json", help="also write the result (with its markdown) here")
    if profile:
        parser.add_argument(
            "--profile",
            metavar="DIR",
            help="run the servers under cProfile, writing DIR/<variant>.prof (inflates the CPU "
            "figures; read with python -m pstats)",
        )
    return parser


def emit(result: dict[str, Any], json_path: str | None) -> None:
    print(result["markdown"])
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))


def command_line() -> str:
    rel = os.path.relpath(sys.argv[0], ROOT)
    return " ".join([".venv/bin/python", rel, *sys.argv[1:]])
