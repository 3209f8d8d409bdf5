"""Throughput: one stream of N back-to-back 16-byte events; server CPU seconds per event.

Every variant runs in its own uvicorn process, all started up front; each round requests one
stream from each in turn (A B C D E, A B C D E, ...), and the CPU time the server process
spent between sending the request and the client reading the body's last chunk is divided
by N. Ratios are taken per round against the raw ASGI loop of the same round, then the median
over rounds is reported.

    .venv/bin/python benchmarks/bench_throughput.py [--quick] [--rounds R] [--events N]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

TARGET_VS_RAW = 1.25


def one_stream(server: h.Server, n: int) -> dict[str, float]:
    client = h.Client(server.port)
    try:
        cpu0 = server.cpu_seconds()
        ccpu0 = h.client_cpu_seconds()
        t0 = time.monotonic()
        (conn,) = client.open([(0, f"/stream?n={n}&delay=0")], batch=1, deadline=t0 + 30)
        ok = client.run_until(lambda: conn.done, deadline=t0 + 300)
        wall = time.monotonic() - t0
        cpu = server.cpu_seconds() - cpu0
        ccpu = h.client_cpu_seconds() - ccpu0
        if not ok or conn.status != 200 or conn.ndata < n:
            raise RuntimeError(
                f"{server.variant}: incomplete stream (status {conn.status}, "
                f"{conn.ndata}/{n} data lines, done={conn.done})"
            )
    finally:
        client.close_all()
    return {"cpu": cpu, "wall": wall, "client_cpu": ccpu, "bytes": conn.nbytes}


def run(
    quick: bool, rounds: int | None, events: int | None, profile_dir: str | None = None
) -> dict[str, Any]:
    n = events or (20_000 if quick else 200_000)
    rounds = rounds or (1 if quick else 5)
    variants = h.LLM_VARIANTS
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with h.servers(variants, profile_dir) as srv:
        for s in srv.values():  # warm-up: imports, first-request paths, allocator arenas
            one_stream(s, min(n, 2000))
        for _ in range(rounds):
            for v in variants:
                samples[v].append(one_stream(srv[v], n))
    ratios = {
        v: [samples[v][r]["cpu"] / samples["raw"][r]["cpu"] for r in range(rounds)]
        for v in variants
    }
    vs_starlette = [
        samples["sse-llm"][r]["cpu"] / samples["sse-starlette"][r]["cpu"] for r in range(rounds)
    ]
    rows = []
    for v in variants:
        us = h.median([s["cpu"] / n * 1e6 for s in samples[v]])
        wall = h.median([s["wall"] for s in samples[v]])
        ccpu = h.median([s["client_cpu"] for s in samples[v]])
        rows.append(
            [
                h.VARIANT_LABELS[v],
                f"{us:.2f}",
                h.ratio_summary(ratios[v]),
                f"{n / wall / 1000:.0f}k",
                f"{ccpu:.2f} s",
            ]
        )
    llm = h.median(ratios["sse-llm"])
    met = llm <= TARGET_VS_RAW and h.median(vs_starlette) < 1
    table = h.markdown_table(
        ["server", "CPU µs/event", "CPU vs raw", "events/s (wall)", "client CPU"], rows
    )
    verdict = "not judged (--quick)" if quick else ("met" if met else "MISSED")
    md = (
        f"{n:,} events of 16 bytes on one stream, no delay; {rounds} interleaved round(s), "
        f"medians (ratio range over rounds in brackets).\n\n{table}\n\n"
        f"sse-llm (`TextFormat`) / sse-starlette CPU: {h.ratio_summary(vs_starlette)}. "
        f"Target: sse-llm ≤ {TARGET_VS_RAW}x raw and below sse-starlette: "
        f"**{verdict}**."
    )
    return {
        "name": "throughput",
        "events": n,
        "rounds": rounds,
        "samples": samples,
        "ratios": ratios,
        "sse_llm_vs_sse_starlette": vs_starlette,
        "target_met": None if quick else met,
        "markdown": md,
    }


def main() -> None:
    parser = h.common_args(__doc__ or "", profile=True)
    parser.add_argument("--events", type=int, help="events per stream (default 200000)")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args.quick, args.rounds, args.events, args.profile), args.json)


if __name__ == "__main__":
    main()
