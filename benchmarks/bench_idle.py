"""Idle: memory per open connection whose source is silent (an LLM thinking), heartbeats on.

Each (variant, round) gets a fresh server process: after one warm-up stream, its RSS and PSS
are read; then C connections are opened in batches of 250 (each waited on until its response
headers arrived), the server is given a moment to settle, and memory is read again.
Per connection = (after - before) / C. The source awaits forever; sse-llm runs with
``heartbeat=15`` and sse-starlette with ``ping=15``, and a run stays well under 15 s so no
heartbeat goes out (the timers are armed, which is what costs memory). Variants interleave
per round.

    .venv/bin/python benchmarks/bench_idle.py [--quick] [--rounds R] [--connections C]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

VARIANTS = ("raw", "sse-llm", "sse-starlette", "streaming")
SETTLE = 1.0  # seconds after the last connection, for the server to park every task


def one_run(variant: str, connections: int) -> dict[str, float]:
    server = h.start_server(variant)
    client = h.Client(server.port)
    try:
        t0 = time.monotonic()
        # Warm-up: one silent stream opened and dropped, so lazy imports and first-use
        # allocations are in "before", not spread over the connections.
        (warm,) = client.open([(0, "/stream?delay=-1")], batch=1, deadline=t0 + 20)
        client.close(warm)
        time.sleep(0.3)
        before = server.memory_kib()
        cpu0 = server.cpu_seconds()
        paths = [(i, "/stream?delay=-1") for i in range(connections)]
        conns = client.open(paths, batch=250, deadline=time.monotonic() + 120)
        opened = time.monotonic() - t0
        client.run_until(lambda: False, deadline=time.monotonic() + SETTLE)
        after = server.memory_kib()
        cpu = server.cpu_seconds() - cpu0
        bad = [c for c in conns if c.status != 200]
        if bad:
            raise RuntimeError(f"{variant}: {len(bad)} connections got no 200")
    finally:
        client.close_all()
        server.stop()
    return {
        "rss_kib": (after["rss"] - before["rss"]) / connections,
        "pss_kib": (after.get("pss", 0) - before.get("pss", 0)) / connections,
        "rss_before_mib": before["rss"] / 1024,
        "open_seconds": opened,
        "cpu_per_conn_ms": cpu / connections * 1000,
    }


def run(quick: bool, rounds: int | None, connections: int | None) -> dict[str, Any]:
    n = connections or (300 if quick else 5000)
    rounds = rounds or (1 if quick else 3)
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v in VARIANTS:
            samples[v].append(one_run(v, n))
    rows = []
    for v in VARIANTS:
        rss = [s["rss_kib"] for s in samples[v]]
        pss = [s["pss_kib"] for s in samples[v]]
        ratio = [samples[v][r]["rss_kib"] / samples["raw"][r]["rss_kib"] for r in range(rounds)]
        over = [samples[v][r]["rss_kib"] - samples["raw"][r]["rss_kib"] for r in range(rounds)]
        rows.append(
            [
                h.VARIANT_LABELS[v],
                f"{h.median(rss):.1f}",
                f"{h.median(pss):.1f}",
                h.ratio_summary(ratio),
                f"{h.median(over):+.1f}",
                f"{h.median([s['cpu_per_conn_ms'] for s in samples[v]]):.2f}",
            ]
        )
    table = h.markdown_table(
        [
            "server",
            "RSS KiB/conn",
            "PSS KiB/conn",
            "RSS vs raw",
            "KiB/conn over raw",
            "CPU ms/conn (open)",
        ],
        rows,
    )
    base = h.median([s["rss_before_mib"] for s in samples["raw"]])
    md = (
        f"{n:,} idle connections (silent source, heartbeat/ping 15 s), opened in batches of "
        f"250; fresh server per measurement (raw baseline RSS before: {base:.0f} MiB); "
        f"{rounds} interleaved round(s), medians. The uvicorn + h11 connection itself is in "
        f'every row; "over raw" is what the response layer adds.\n\n{table}'
    )
    return {
        "name": "idle",
        "connections": n,
        "rounds": rounds,
        "samples": samples,
        "markdown": md,
    }


def main() -> None:
    parser = h.common_args(__doc__ or "")
    parser.add_argument("--connections", type=int, help="idle connections (default 5000)")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args.quick, args.rounds, args.connections), args.json)


if __name__ == "__main__":
    main()
