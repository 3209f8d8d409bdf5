"""Drop: C clients on open streams all hang up at once; how fast is every source closed?

Every measurement has a fresh server: for each case (source, clients, close) of a round, one
server per (variant, stack) is started (all at once); each is measured in turn and killed
right after. A measurement: C streams opened (``/stream?id=i``, in batches of 250); once all
of them are flowing, the client closes every socket, one after another, noting
``time.monotonic()`` right before each close. The server's source records
``time.monotonic()`` in its ``finally``; CLOCK_MONOTONIC is system-wide on Linux, so
``finally[i] - closed[i]`` is the time from the hang-up to the source being closed, per
connection. The client then polls ``/stats`` until every source is closed or 3 s passed;
a source not closed by then is a leak.

Cases:
    source   ``tick``: the source yields a token every 50 ms (an answer streaming);
             ``silent``: the source awaits forever (an LLM still thinking), which only a
             layer that listens for ``http.disconnect`` can notice.
    clients  500 and 1,000 at once.
    close    ``fin``: ``close()`` (a browser tab closing, a FIN);
             ``rst``: ``SO_LINGER`` 0, then ``close()`` (a reset, as a proxy or a crashed
             client sends).

The raw baseline watches for disconnects (``raw-nowatch`` does not, so it has no row here).

    .venv/bin/python benchmarks/bench_drop.py [--quick] [--rounds R] [--clients C [C ...]]
        [--sources tick silent] [--closes fin rst] [--stack asyncio|uvloop|both]
        [--variants V ...]
"""

from __future__ import annotations

import math
import time
from typing import Any

import _harness as h

DROP_VARIANTS = tuple(v for v in h.DEFAULT_VARIANTS if v != "raw-nowatch")
SOURCES = {"tick": 0.05, "silent": -1.0}
CLOSES = ("fin", "rst")
TARGET_VS_RAW = 1.3  # bare sse-llm: p99 from the hang-up to the source's finally
COLLECT_TIMEOUT = 3.0  # seconds to wait for the sources to close after the drop
GC_NOTES = {
    "on": "",
    "off": " **These servers ran with the collector off** (`--gc off`, a diagnostic: no server "
    "runs so).",
    "freeze": " **These servers called `gc.freeze()` once the app was made** (`--gc freeze`).",
}


def one_run(
    server: h.Server, delay: float, clients: int, reset: bool, settle: float
) -> dict[str, Any]:
    client = h.Client(server.port)
    try:
        paths = [(i, f"/stream?delay={delay}&id={i}") for i in range(clients)]
        conns = client.open(paths, batch=250, deadline=time.monotonic() + 60)
        if delay >= 0:  # every stream has delivered a token: they are all mid-stream
            ok = client.run_until(
                lambda: all(c.ndata >= 1 for c in conns), deadline=time.monotonic() + 30
            )
            if not ok:
                raise RuntimeError(f"{server.name}: not every stream delivered a token")
        client.run_until(lambda: False, deadline=time.monotonic() + settle)
        before = server.get("/stats")
        if before["closed"]:
            raise RuntimeError(f"{server.name}: sources closed before the drop")
        for c in conns:
            client.close(c, reset=reset)
        dropped = time.monotonic()
        stats: dict[str, Any] = {}
        while time.monotonic() - dropped < COLLECT_TIMEOUT:
            stats = server.get("/stats")
            if stats["closed"] >= clients:
                break
            time.sleep(0.02)
    finally:
        client.close_all()
        server.kill()
    closed_at = {c.ident: c.closed_at for c in conns}
    latencies = [t - closed_at[int(i)] for i, t in stats["finally"].items()]
    return {
        "closed": len(latencies),
        "leaks": clients - len(latencies),
        "p50": h.percentile(latencies, 50),
        "p99": h.percentile(latencies, 99),
        "max": max(latencies, default=math.nan),
        # Full (generation-2) collections of the cyclic garbage collector during the drop.
        "full_gcs": stats["collections"][2] - before["collections"][2],
    }


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def run(args: Any) -> dict[str, Any]:
    rounds = h.rounds(args)
    stacks = h.stacks(args)
    variants = h.variants(args, DROP_VARIANTS)
    if args.quick:  # a smoke run: one case (each case costs a server start per variant)
        cases = [("silent", 50, "fin")]
    else:
        cases = [
            (src, n, close)
            for src in args.sources or SOURCES
            for n in args.clients or (500, 1000)
            for close in args.closes or CLOSES
        ]
    settle = 0.1 if args.quick else 0.3  # seconds for the server to park every stream
    samples: dict[tuple[str, int, str], dict[str, dict[str, list[dict[str, Any]]]]] = {
        case: {st: {v: [] for v in variants} for st in stacks} for case in cases
    }
    for r in range(rounds):
        for case in cases:
            src, n, close = case
            h.progress(args, f"round {r + 1}/{rounds}: {src}, {n} clients, {close}")
            fresh = h.start_servers([(v, st) for st in stacks for v in variants], gc=args.gc)
            try:
                for st in stacks:
                    for v in variants:
                        samples[case][st][v].append(
                            one_run(fresh[(v, st)], SOURCES[src], n, close == "rst", settle)
                        )
            finally:
                h.stop_all(fresh.values(), graceful=False)

    parts = [
        f"C clients hang up at once; time from each client's close to its source's `finally` "
        f"on the server. A fresh server per measurement. {h.header(args, stacks, rounds)}. "
        f"p50 and p99: medians over rounds of each round's percentile over the C "
        f"connections; max: the worst over all rounds; leaks: sources not closed within "
        f"{COLLECT_TIMEOUT:.0f} s (the worst round). The latency includes the client closing "
        f"C sockets one after another and the server working through C disconnects: it is a "
        f"property of the whole stack. Full GCs: in how many rounds Python's cyclic garbage "
        f"collector ran a full (generation-2) collection in the server during the drop; it "
        f"stops the whole process for tens of milliseconds with thousands of streams open."
        + GC_NOTES[args.gc]
    ]
    checks: list[h.Check] = []
    for case in cases:
        src, n, close = case
        smp = samples[case]

        def p99(st: str, v: str, smp: Any = smp) -> list[float]:
            return [r["p99"] for r in smp[st][v]]

        def leaks(st: str, v: str, smp: Any = smp) -> int:
            return int(max(r["leaks"] for r in smp[st][v]))

        table = h.stack_table(
            variants,
            stacks,
            [
                ("leaks", lambda v, st, leaks=leaks: str(leaks(st, v))),
                ("p50 ms", lambda v, st, smp=smp: _ms(h.med(smp[st][v], "p50"))),
                ("p99 ms", lambda v, st, p99=p99: _ms(h.median(p99(st, v)))),
                (
                    "p99 vs raw",
                    lambda v, st, p99=p99: h.ratio_summary(h.per_round(p99(st, v), p99(st, "raw"))),
                ),
                ("max ms", lambda v, st, smp=smp: _ms(max(r["max"] for r in smp[st][v]))),
                (
                    "full GCs",
                    lambda v, st, smp=smp: (
                        f"{sum(r['full_gcs'] > 0 for r in smp[st][v])} of {len(smp[st][v])}"
                    ),
                ),
            ],
        )
        what = "yields every 50 ms" if src == "tick" else "silent"
        parts.append(f"#### {n:,} clients drop ({close.upper()}), source {what}\n\n{table}")
        for st in stacks:
            checks += h.ratio_checks(
                f"{src}, {n:,} {close.upper()}, {h.STACKS[st]}",
                {v: p99(st, v) for v in variants},
                TARGET_VS_RAW,
                "p99 ",
                (
                    ", 0 leaks",
                    lambda v, st=st, leaks=leaks: (f"{leaks(st, v)} leaks", leaks(st, v) == 0),
                ),
            )
    parts.append(h.checks_markdown(checks, args.quick))
    return {
        "name": "drop",
        "cases": [list(c) for c in cases],
        "rounds": rounds,
        "stacks": stacks,
        "samples": {"/".join(map(str, c)): samples[c] for c in cases},
        "markdown": "\n\n".join(parts),
        **h.target_summary(checks),
    }


def main() -> None:
    parser = h.common_args(__doc__ or "")
    parser.add_argument(
        "--clients", type=int, nargs="+", help="clients that drop at once (default 500 1000)"
    )
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), help="default both")
    parser.add_argument("--closes", nargs="+", choices=CLOSES, help="default both")
    parser.add_argument(
        "--gc",
        choices=list(GC_NOTES),
        default="on",
        help="the servers' cyclic garbage collector: on (default); off, a diagnostic of what "
        "its collections add (no server runs so); freeze, gc.freeze() once the app is made, "
        "so that a full collection skips the objects alive then",
    )
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args), args.json)


if __name__ == "__main__":
    main()
