"""Throughput: one stream of N back-to-back 16-byte events; server CPU per event.

Every (variant, stack) runs in its own uvicorn process, all started up front; each round
requests one stream from each in turn (stack by stack, variant by variant), and the CPU time
the server process spent between sending the request and the client reading the body's last
chunk is divided by N. Ratios are taken per round against the raw ASGI loop (with its
disconnect watcher) of the same round and stack; the median over rounds is reported.

    .venv/bin/python benchmarks/bench_throughput.py [--quick] [--rounds R] [--events N]
        [--stack asyncio|uvloop|both] [--variants V ...] [--profile DIR]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

TARGET_VS_RAW = 1.05  # bare sse-llm, CPU per event (the "1 stream" row)


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
                f"{server.name}: incomplete stream (status {conn.status}, "
                f"{conn.ndata}/{n} data lines, done={conn.done})"
            )
    finally:
        client.close_all()
    return {"cpu": cpu, "us_per_event": cpu / n * 1e6, "wall": wall, "client_cpu": ccpu}


def run(args: Any) -> dict[str, Any]:
    n = args.events or (5_000 if args.quick else 200_000)
    rounds = h.rounds(args)
    stacks = h.stacks(args)
    variants = h.variants(args)
    keys = [(v, st) for st in stacks for v in variants]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        st: {v: [] for v in variants} for st in stacks
    }
    with h.servers(keys, args.profile) as srv:
        for s in srv.values():  # warm-up: imports, first-request paths, allocator arenas
            one_stream(s, min(n, 2000))
        for r in range(rounds):
            h.progress(args, f"round {r + 1}/{rounds}")
            for st in stacks:
                for v in variants:
                    samples[st][v].append(one_stream(srv[(v, st)], n))

    def cpu(st: str, v: str) -> list[float]:
        return [s["cpu"] for s in samples[st][v]]

    table = h.stack_table(
        variants,
        stacks,
        [
            ("µs/event", lambda v, st: f"{h.med(samples[st][v], 'us_per_event'):.2f}"),
            ("vs raw", lambda v, st: h.ratio_summary(h.per_round(cpu(st, v), cpu(st, "raw")))),
            ("events/s", lambda v, st: f"{n / h.med(samples[st][v], 'wall') / 1000:.0f}k"),
        ],
    )
    checks: list[h.Check] = []
    for st in stacks:
        checks += h.ratio_checks(
            f"1 stream, {h.STACKS[st]}", {v: cpu(st, v) for v in variants}, TARGET_VS_RAW
        )
    client_cpu = h.median([s["client_cpu"] for st in stacks for s in samples[st]["raw"]])
    md = (
        f"One stream of {n:,} events of 16 bytes, no delay: server CPU per event. "
        f"{h.header(args, stacks, rounds)}. events/s is the wall-clock rate; the client "
        f"spends about {client_cpu:.2f} s of CPU per stream of the raw loop.\n\n{table}\n\n"
        f"{h.checks_markdown(checks, args.quick)}"
    )
    return {
        "name": "throughput",
        "events": n,
        "rounds": rounds,
        "stacks": stacks,
        "samples": samples,
        "markdown": md,
        **h.target_summary(checks),
    }


def main() -> None:
    parser = h.common_args(__doc__ or "", profile=True)
    parser.add_argument("--events", type=int, help="events per stream (default 200000)")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args), args.json)


if __name__ == "__main__":
    main()
