"""Idle: memory per open connection whose source is silent (an LLM thinking), heartbeats on.

Every measurement has a fresh server: at the start of a round, one server per (variant,
stack) is started (all at once, so their imports overlap); then each is measured in turn and
killed right after. A measurement: one warm-up stream opened and dropped, RSS and PSS read;
C connections opened in batches of 250 (each batch waited on until its response headers
arrived); a moment for the server to settle; memory read again. Per connection = (after -
before) / C. The source awaits forever; sse-llm runs with ``heartbeat=15`` and sse-starlette
with ``ping=15``, and a measurement stays well under 15 s so no heartbeat goes out (the timers
are armed, which is what costs memory).

    .venv/bin/python benchmarks/bench_idle.py [--quick] [--rounds R] [--connections C]
        [--stack asyncio|uvloop|both] [--variants V ...]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

TARGET_VS_RAW = 1.3  # bare sse-llm, RSS per idle connection


def one_run(server: h.Server, connections: int, settle: float) -> dict[str, float]:
    """``settle``: seconds for the server to park every task, after the warm-up and after the
    last connection."""
    client = h.Client(server.port)
    try:
        t0 = time.monotonic()
        # Warm-up: one silent stream opened and dropped, so lazy imports and first-use
        # allocations are in "before", not spread over the connections.
        (warm,) = client.open([(0, "/stream?delay=-1")], batch=1, deadline=t0 + 20)
        client.close(warm)
        time.sleep(settle)
        before = server.memory_kib()
        cpu0 = server.cpu_seconds()
        t1 = time.monotonic()
        paths = [(i, "/stream?delay=-1") for i in range(connections)]
        conns = client.open(paths, batch=250, deadline=t1 + 120)
        opened = time.monotonic() - t1
        client.run_until(lambda: False, deadline=time.monotonic() + settle)
        after = server.memory_kib()
        cpu = server.cpu_seconds() - cpu0
        bad = [c for c in conns if c.status != 200]
        if bad:
            raise RuntimeError(f"{server.name}: {len(bad)} connections got no 200")
    finally:
        client.close_all()
        server.kill()
    return {
        "rss_kib": (after["rss"] - before["rss"]) / connections,
        "pss_kib": (after.get("pss", 0) - before.get("pss", 0)) / connections,
        "rss_before_mib": before["rss"] / 1024,
        "open_seconds": opened,
        "cpu_per_conn_ms": cpu / connections * 1000,
    }


def run(args: Any) -> dict[str, Any]:
    n = args.connections or (100 if args.quick else 5000)
    settle = 0.1 if args.quick else 1.0
    rounds = h.rounds(args)
    stacks = h.stacks(args)
    variants = h.variants(args)
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        st: {v: [] for v in variants} for st in stacks
    }
    for r in range(rounds):
        h.progress(args, f"round {r + 1}/{rounds}")
        fresh = h.start_servers([(v, st) for st in stacks for v in variants])
        try:
            for st in stacks:
                for v in variants:
                    samples[st][v].append(one_run(fresh[(v, st)], n, settle))
        finally:
            h.stop_all(fresh.values(), graceful=False)

    def rss(st: str, v: str) -> list[float]:
        return [s["rss_kib"] for s in samples[st][v]]

    def over(v: str, st: str) -> str:
        return f"{h.median([a - b for a, b in zip(rss(st, v), rss(st, 'raw'), strict=True)]):+.1f}"

    table = h.stack_table(
        variants,
        stacks,
        [
            ("RSS KiB/conn", lambda v, st: f"{h.median(rss(st, v)):.1f}"),
            ("vs raw", lambda v, st: h.ratio_summary(h.per_round(rss(st, v), rss(st, "raw")))),
            ("over raw", over),
            ("PSS KiB/conn", lambda v, st: f"{h.med(samples[st][v], 'pss_kib'):.1f}"),
        ],
    )
    checks: list[h.Check] = []
    for st in stacks:
        checks += h.ratio_checks(
            f"{n:,} idle, {h.STACKS[st]}", {v: rss(st, v) for v in variants}, TARGET_VS_RAW, "RSS "
        )
    base = h.median([s["rss_before_mib"] for st in stacks for s in samples[st]["raw"]])
    cpu_open = {st: h.median([s["cpu_per_conn_ms"] for s in samples[st]["raw"]]) for st in stacks}
    cpu_note = " and ".join(f"{cpu_open[st]:.2f} ms on {h.STACKS[st]}" for st in stacks)
    md = (
        f"{n:,} idle connections (silent source, heartbeat/ping 15 s), opened in batches of "
        f"250; a fresh server per measurement (raw's RSS before: {base:.0f} MiB). "
        f"{h.header(args, stacks, rounds)}. The uvicorn connection itself (transport, parser "
        f'state, the request task) is in every row; "over raw" is what the layer above adds '
        f"(KiB per connection). Opening a connection costs the raw server CPU time: "
        f"{cpu_note}.\n\n{table}\n\n{h.checks_markdown(checks, args.quick)}"
    )
    return {
        "name": "idle",
        "connections": n,
        "rounds": rounds,
        "stacks": stacks,
        "samples": samples,
        "markdown": md,
        **h.target_summary(checks),
    }


def main() -> None:
    parser = h.common_args(__doc__ or "")
    parser.add_argument("--connections", type=int, help="idle connections (default 5000)")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args), args.json)


if __name__ == "__main__":
    main()
