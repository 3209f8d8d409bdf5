"""Drop: C clients on open streams all hang up at once; how fast is every source closed?

Each (mode, variant, round) gets a fresh server. C streams are opened (``/stream?id=i``),
and once all of them are flowing the client closes every socket (a FIN, as a browser tab
does), noting ``time.monotonic()`` right before each close. The server's source records
``time.monotonic()`` in its ``finally``; CLOCK_MONOTONIC is system-wide on Linux, so
``finally[i] - closed[i]`` is the time from the hang-up to the source being closed, per
connection. The client then polls ``/stats`` until every source is closed or the deadline.

Modes: ``tick``, the source yields a token every 50 ms; ``silent``, the source awaits forever
(an LLM still thinking), which only a response layer that listens for ``http.disconnect``
can notice.

    .venv/bin/python benchmarks/bench_drop.py [--quick] [--rounds R] [--clients C]
"""

from __future__ import annotations

import math
import time
from typing import Any

import _harness as h

VARIANTS = ("sse-llm", "sse-starlette", "streaming")
MODES = {"tick": 0.05, "silent": -1.0}
TARGET_P99 = 0.100  # seconds
COLLECT_TIMEOUT = 3.0  # seconds to wait for the sources to close after the drop


def one_run(variant: str, delay: float, clients: int) -> dict[str, Any]:
    server = h.start_server(variant)
    client = h.Client(server.port)
    try:
        paths = [(i, f"/stream?delay={delay}&id={i}") for i in range(clients)]
        conns = client.open(paths, batch=250, deadline=time.monotonic() + 60)
        if delay >= 0:  # every stream has delivered a token: they are all mid-stream
            ok = client.run_until(
                lambda: all(c.ndata >= 1 for c in conns), deadline=time.monotonic() + 30
            )
            if not ok:
                raise RuntimeError(f"{variant}: not every stream delivered a token")
        client.run_until(lambda: False, deadline=time.monotonic() + 0.5)
        if server.get("/stats")["closed"]:
            raise RuntimeError(f"{variant}: sources closed before the drop")
        for c in conns:
            client.close(c, reset=False)
        dropped = time.monotonic()
        stats: dict[str, Any] = {}
        while time.monotonic() - dropped < COLLECT_TIMEOUT:
            stats = server.get("/stats")
            if stats["closed"] >= clients:
                break
            time.sleep(0.05)
    finally:
        client.close_all()
        server.stop()
    closed_at = {c.ident: c.closed_at for c in conns}
    latencies = [t - closed_at[int(i)] for i, t in stats["finally"].items()]
    return {
        "closed": len(latencies),
        "p50": h.percentile(latencies, 50),
        "p99": h.percentile(latencies, 99),
        "max": max(latencies, default=math.nan),
    }


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def run(quick: bool, rounds: int | None, clients: int | None) -> dict[str, Any]:
    n = clients or (100 if quick else 500)
    rounds = rounds or (1 if quick else 3)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {v: [] for v in VARIANTS} for m in MODES
    }
    for _ in range(rounds):
        for mode, delay in MODES.items():
            for v in VARIANTS:
                samples[mode][v].append(one_run(v, delay, n))
    rows = []
    met = True
    for mode in MODES:
        for v in VARIANTS:
            runs = samples[mode][v]
            closed = min(r["closed"] for r in runs)
            p99 = h.median([r["p99"] for r in runs])
            if v == "sse-llm":
                met = met and closed == n and p99 < TARGET_P99
            rows.append(
                [
                    mode,
                    h.VARIANT_LABELS[v],
                    f"{closed}/{n}",
                    _ms(h.median([r["p50"] for r in runs])),
                    _ms(p99),
                    _ms(max(r["max"] for r in runs)),
                ]
            )
    table = h.markdown_table(
        ["source", "server", "sources closed (worst round)", "p50 ms", "p99 ms", "max ms"], rows
    )
    verdict = "not judged (--quick)" if quick else ("met" if met else "MISSED")
    md = (
        f"{n} clients drop at once (FIN); `tick`: source yields every 50 ms, `silent`: source "
        f"never yields; time from each client's close to its source's `finally` on the server; "
        f"sources not closed within {COLLECT_TIMEOUT:.0f} s count as not closed. Fresh server "
        f"per measurement, {rounds} interleaved round(s): p50/p99 are medians over rounds, max "
        f"is the worst.\n\n{table}\n\nTarget: sse-llm closes every source, p99 < "
        f"{TARGET_P99 * 1000:.0f} ms: **{verdict}**."
    )
    return {
        "name": "drop",
        "clients": n,
        "rounds": rounds,
        "samples": samples,
        "target_met": None if quick else met,
        "markdown": md,
    }


def main() -> None:
    parser = h.common_args(__doc__ or "")
    parser.add_argument("--clients", type=int, help="clients that drop at once (default 500)")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args.quick, args.rounds, args.clients), args.json)


if __name__ == "__main__":
    main()
