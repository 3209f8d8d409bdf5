"""Concurrent: C streams at once, each E events 20 ms apart; total server CPU.

All variants' servers are started up front; each round runs the full load against each in
turn (interleaved). Measured: the server process's CPU time from before the first connection
to the last stream's end, so accepting and parsing the C requests is included (it is the
same work for every variant). The client is one epoll loop over raw sockets in this process.

    .venv/bin/python benchmarks/bench_concurrent.py [--quick] [--rounds R]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h


def one_load(server: h.Server, streams: int, events: int, delay: float) -> dict[str, float]:
    client = h.Client(server.port)
    try:
        cpu0 = server.cpu_seconds()
        ccpu0 = h.client_cpu_seconds()
        t0 = time.monotonic()
        paths = [(i, f"/stream?n={events}&delay={delay}&id={i}") for i in range(streams)]
        conns = client.open(paths, batch=250, deadline=t0 + 60)
        ok = client.run_until(lambda: all(c.done for c in conns), deadline=t0 + 180, step=0.1)
        wall = time.monotonic() - t0
        cpu = server.cpu_seconds() - cpu0
        ccpu = h.client_cpu_seconds() - ccpu0
        short = [c for c in conns if c.status != 200 or c.ndata < events]
        if not ok or short:
            raise RuntimeError(
                f"{server.variant}: {len(short)} of {streams} streams incomplete (ok={ok})"
            )
    finally:
        client.close_all()
    return {"cpu": cpu, "wall": wall, "client_cpu": ccpu}


def run(quick: bool, rounds: int | None, profile_dir: str | None = None) -> dict[str, Any]:
    streams, events, delay = (100, 50, 0.02) if quick else (1000, 200, 0.02)
    rounds = rounds or (1 if quick else 3)
    variants = h.LLM_VARIANTS
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with h.servers(variants, profile_dir) as srv:
        for s in srv.values():  # warm-up
            one_load(s, min(streams, 50), 5, delay)
        for _ in range(rounds):
            for v in variants:
                samples[v].append(one_load(srv[v], streams, events, delay))
    ratios = {
        v: [samples[v][r]["cpu"] / samples["raw"][r]["cpu"] for r in range(rounds)]
        for v in variants
    }
    vs_starlette = [
        samples["sse-llm"][r]["cpu"] / samples["sse-starlette"][r]["cpu"] for r in range(rounds)
    ]
    total = streams * events
    rows = []
    for v in variants:
        cpu = h.median([s["cpu"] for s in samples[v]])
        rows.append(
            [
                h.VARIANT_LABELS[v],
                f"{cpu:.2f} s",
                f"{cpu / total * 1e6:.1f}",
                h.ratio_summary(ratios[v]),
                f"{h.median([s['wall'] for s in samples[v]]):.1f} s",
                f"{h.median([s['client_cpu'] for s in samples[v]]):.2f} s",
            ]
        )
    table = h.markdown_table(
        ["server", "server CPU", "CPU µs/event", "CPU vs raw", "wall", "client CPU"], rows
    )
    ideal = (events - 1) * delay
    md = (
        f"{streams:,} concurrent streams x {events} events of 16 bytes, {delay * 1000:.0f} ms "
        f"apart ({total:,} events; a stream lasts ≥ {ideal:.1f} s); {rounds} interleaved "
        f"round(s), medians.\n\n{table}\n\n"
        f"sse-llm (`TextFormat`) / sse-starlette CPU: {h.ratio_summary(vs_starlette)}."
    )
    return {
        "name": "concurrent",
        "streams": streams,
        "events": events,
        "delay": delay,
        "rounds": rounds,
        "samples": samples,
        "ratios": ratios,
        "sse_llm_vs_sse_starlette": vs_starlette,
        "markdown": md,
    }


def main() -> None:
    args = h.common_args(__doc__ or "", profile=True).parse_args()
    h.raise_fd_limit()
    h.emit(run(args.quick, args.rounds, args.profile), args.json)


if __name__ == "__main__":
    main()
