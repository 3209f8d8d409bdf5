"""Concurrent: S streams at once, each E events D apart; server CPU per event.

Every (variant, stack) runs in its own uvicorn process, all started up front. For each level
(number of streams), each round runs the load against every server in turn (interleaved).
The client opens all S streams (in batches of 250, each batch waited on until its response
headers arrived); their sources wait at a gate. Then it reads the server's CPU time, opens
the gate (``GET /go``) and reads until the last stream ended. CPU per event = the server's
CPU time from the gate to the last stream's end / (S x E): accepting and parsing the S
requests is left out (the short-request benchmark measures that), so the figure is the cost
of a paced event with S streams open. Once released, stream i waits ``D x (i % 100) / 100``
before its first token, so the streams do not all tick at the same instant.

Levels (streams x events @ delay); a full run:
    1       x 1,000 @ 1 ms    one stream; 200 events @ 20 ms would be ~6 ms of CPU, no more
                              than uvicorn's own 10 Hz housekeeping costs in 4 s, so the
                              single stream sends more events, faster (still one timer wake-up,
                              one idle poll and one resumed stream per event)
    1,000   x   200 @ 20 ms   (one core saturates: a load takes 5-10 s instead of 4)
    3,000   x    50 @ 20 ms   fewer events per stream: with set-up left out, the figure is
                              still the cost per event with 3,000 streams open, and a load
                              takes 6-12 s instead of 25-50 s

    .venv/bin/python benchmarks/bench_concurrent.py [--quick] [--rounds R]
        [--streams S [S ...]] [--events E] [--stack asyncio|uvloop|both] [--variants V ...]
        [--profile DIR]
"""

from __future__ import annotations

import time
from typing import Any

import _harness as h

TARGET_VS_RAW = 1.05  # bare sse-llm, CPU per event
# raw-nowatch (what the watcher costs) is left out by default: a row here costs ~4 min.
CONCURRENT_VARIANTS = tuple(v for v in h.DEFAULT_VARIANTS if v != "raw-nowatch")

#: streams -> (events per stream, seconds between events)
FULL_LEVELS = {1: (1000, 0.001), 1000: (200, 0.02), 3000: (50, 0.02)}
QUICK_LEVELS = {100: (5, 0.02)}


def level_shape(streams: int, quick: bool, events: int | None) -> tuple[int, float]:
    table = QUICK_LEVELS if quick else FULL_LEVELS
    if streams in table:
        e, d = table[streams]
    elif streams == 1:
        e, d = FULL_LEVELS[1]
    else:
        e, d = (5, 0.02) if quick else (200 if streams <= 1000 else 50, 0.02)
    return events or e, d


def one_load(
    server: h.Server, streams: int, events: int, delay: float, step: float = 0.1
) -> dict[str, float]:
    client = h.Client(server.port)
    try:
        t0 = time.monotonic()
        cpu_open0 = server.cpu_seconds()
        paths = [(i, f"/stream?n={events}&delay={delay}&id={i}&gate=1") for i in range(streams)]
        conns = client.open(paths, batch=250, deadline=t0 + 60)
        opened = time.monotonic() - t0
        client.run_until(lambda: False, deadline=time.monotonic() + 0.1)  # let the server park
        setup = server.cpu_seconds() - cpu_open0
        server.get("/go")  # the sources start 50 ms later (GATE_LEAD in _server.py)
        cpu0 = server.cpu_seconds()
        ccpu0 = h.client_cpu_seconds()
        t1 = time.monotonic()
        ok = client.run_until(lambda: all(c.done for c in conns), deadline=t1 + 300, step=step)
        wall = time.monotonic() - t1
        cpu = server.cpu_seconds() - cpu0
        ccpu = h.client_cpu_seconds() - ccpu0
        short = [c for c in conns if c.status != 200 or c.ndata < events]
        if not ok or short:
            raise RuntimeError(
                f"{server.name}: {len(short)} of {streams} streams incomplete (ok={ok})"
            )
    finally:
        client.close_all()
    h.wait_quiet(server)  # its teardown of S connections is over before the next load
    total = streams * events
    return {
        "cpu": cpu,
        "us_per_event": cpu / total * 1e6,
        "setup_ms_per_conn": setup / streams * 1000,
        "open_seconds": opened,
        "wall": wall,
        "client_cpu": ccpu,
    }


def run(args: Any) -> dict[str, Any]:
    rounds = h.rounds(args)
    stacks = h.stacks(args)
    variants = h.variants(args, CONCURRENT_VARIANTS)
    levels = args.streams or list(QUICK_LEVELS if args.quick else FULL_LEVELS)
    shapes = {s: level_shape(s, args.quick, args.events) for s in levels}
    keys = [(v, st) for st in stacks for v in variants]
    samples: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = {
        str(s): {st: {v: [] for v in variants} for st in stacks} for s in levels
    }
    with h.servers(keys, args.profile) as srv:
        for s in srv.values() if not args.quick else ():  # warm-up
            one_load(s, 20, 5, 0.002, step=0.01)
        for level in levels:
            events, delay = shapes[level]
            step = 0.01 if args.quick or level == 1 else 0.1  # how often "all done?" is asked
            for r in range(rounds):
                h.progress(args, f"{level:,} stream(s): round {r + 1}/{rounds}")
                for st in stacks:
                    for v in variants:
                        samples[str(level)][st][v].append(
                            one_load(srv[(v, st)], level, events, delay, step)
                        )
    parts = [
        f"Server CPU per event with S streams open, each sending E events of 16 bytes D apart; "
        f"from the moment every stream is open and waiting to the end of the last one "
        f"(connection set-up left out). {h.header(args, stacks, rounds)}. wall: from the "
        f"release to the last stream's end, which is (E - 1) x D plus 50 ms plus up to one "
        f"D of staggered start when one core keeps up, more when it saturates."
    ]
    checks: list[h.Check] = []
    for level in levels:
        events, delay = shapes[level]
        smp = samples[str(level)]

        def cpu(st: str, v: str, smp: Any = smp) -> list[float]:
            return [s["cpu"] for s in smp[st][v]]

        table = h.stack_table(
            variants,
            stacks,
            [
                ("µs/event", lambda v, st, smp=smp: f"{h.med(smp[st][v], 'us_per_event'):.1f}"),
                (
                    "vs raw",
                    lambda v, st, cpu=cpu: h.ratio_summary(h.per_round(cpu(st, v), cpu(st, "raw"))),
                ),
                ("wall", lambda v, st, smp=smp: f"{h.med(smp[st][v], 'wall'):.1f} s"),
            ],
        )
        plural = "stream" if level == 1 else "streams"
        parts.append(
            f"#### {level:,} {plural} x {events:,} events @ {delay * 1000:g} ms\n\n{table}"
        )
        for st in stacks:
            checks += h.ratio_checks(
                f"{level:,} {plural}, {h.STACKS[st]}",
                {v: cpu(st, v) for v in variants},
                TARGET_VS_RAW,
            )
    parts.append(h.checks_markdown(checks, args.quick))
    return {
        "name": "concurrent",
        "levels": {str(s): {"events": shapes[s][0], "delay": shapes[s][1]} for s in levels},
        "rounds": rounds,
        "stacks": stacks,
        "samples": samples,
        "markdown": "\n\n".join(parts),
        **h.target_summary(checks),
    }


def main() -> None:
    parser = h.common_args(__doc__ or "", profile=True)
    parser.add_argument(
        "--streams", type=int, nargs="+", help="levels, streams at once (default 1 1000 3000)"
    )
    parser.add_argument("--events", type=int, help="events per stream at every level")
    args = parser.parse_args()
    h.raise_fd_limit()
    h.emit(run(args), args.json)


if __name__ == "__main__":
    main()
