"""Short requests: server CPU per request for a stream of 3 events (a one-line answer).

Every (variant, stack) runs in its own uvicorn process, all started up front; each round
sends N requests to every server in turn (interleaved). A request is ``GET
/stream?n=3&delay=0``, read to the end of its chunked body; the client keeps ``--inflight``
of them going at once (default 4: light concurrency, so that client and server each keep one
core busy rather than waiting for each other). By default every request has its own TCP
connection, as an ``EventSource`` or a new ``fetch`` per answer has: the server's accept,
request parsing, response start, three events, the end and the connection's teardown are
all in the figure. The client resets (RST) each connection once its body ended, so no
TIME_WAIT entry is left behind on either side. ``--keepalive`` sends the requests over
``--inflight`` persistent connections instead (the response layer's share is larger there).

Server CPU per request = the server's CPU time over the N requests / N (its 10 Hz
housekeeping included, the same for every variant).

    .venv/bin/python benchmarks/bench_short.py [--quick] [--rounds R] [--requests N]
        [--inflight K] [--keepalive] [--stack asyncio|uvloop|both] [--variants V ...]
        [--profile DIR]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

TARGET_VS_RAW = 1.2  # bare sse-llm, server CPU per short request
EVENTS = 3


def batch(server: h.Server, n: int, inflight: int, keepalive: bool) -> dict[str, float]:
    client = h.Client(server.port)
    try:
        cpu0 = server.cpu_seconds()
        ccpu0 = h.client_cpu_seconds()
        t0 = time.monotonic()
        bad = client.request_many(
            f"/stream?n={EVENTS}&delay=0", n, inflight, keepalive, EVENTS, deadline=t0 + 300
        )
        wall = time.monotonic() - t0
        time.sleep(0.02)  # the last connections' teardown on the server
        cpu = server.cpu_seconds() - cpu0
        ccpu = h.client_cpu_seconds() - ccpu0
        if bad:
            raise RuntimeError(f"{server.name}: {bad} of {n} responses wrong")
    finally:
        client.close_all()
    return {"cpu": cpu, "ms_per_request": cpu / n * 1000, "wall": wall, "client_cpu": ccpu}


def run(args: Any) -> dict[str, Any]:
    n = args.requests or (100 if args.quick else 2000)
    rounds = h.rounds(args)
    stacks = h.stacks(args)
    variants = h.variants(args)
    keys = [(v, st) for st in stacks for v in variants]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        st: {v: [] for v in variants} for st in stacks
    }
    with h.servers(keys, args.profile) as srv:
        for s in srv.values() if not args.quick else ():  # warm-up
            batch(s, min(n, 100), args.inflight, args.keepalive)
        for r in range(rounds):
            h.progress(args, f"round {r + 1}/{rounds}")
            for st in stacks:
                for v in variants:
                    samples[st][v].append(batch(srv[(v, st)], n, args.inflight, args.keepalive))

    def cpu(st: str, v: str) -> list[float]:
        return [s["cpu"] for s in samples[st][v]]

    table = h.stack_table(
        variants,
        stacks,
        [
            ("ms/request", lambda v, st: f"{h.med(samples[st][v], 'ms_per_request'):.3f}"),
            ("vs raw", lambda v, st: h.ratio_summary(h.per_round(cpu(st, v), cpu(st, "raw")))),
            ("req/s", lambda v, st: f"{n / h.med(samples[st][v], 'wall'):,.0f}"),
        ],
    )
    checks: list[h.Check] = []
    for st in stacks:
        checks += h.ratio_checks(
            f"short request, {h.STACKS[st]}", {v: cpu(st, v) for v in variants}, TARGET_VS_RAW
        )
    conn = (
        f"over {args.inflight} keep-alive connections"
        if args.keepalive
        else f"each on its own connection (reset by the client after the body), {args.inflight} "
        "at a time"
    )
    md = (
        f"{n:,} requests for a stream of {EVENTS} events of 16 bytes, {conn}: server CPU per "
        f"request. {h.header(args, stacks, rounds)}.\n\n{table}\n\n"
        f"{h.checks_markdown(checks, args.quick)}"
    )
    return {
        "name": "short",
        "requests": n,
        "inflight": args.inflight,
        "keepalive": args.keepalive,
        "rounds": rounds,
        "stacks": stacks,
        "samples": samples,
        "markdown": md,
        **h.target_summary(checks),
    }


def main() -> None:
    parser = h.common_args(__doc__ or "", profile=True)
    parser.add_argument("--requests", type=int, help="requests per measurement (default 2000)")
    parser.add_argument("--inflight", type=int, default=4, help="requests at once (default 4)")
    parser.add_argument(
        "--keepalive", action="store_true", help="reuse --inflight connections for every request"
    )
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args), args.json)


if __name__ == "__main__":
    main()
