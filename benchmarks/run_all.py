"""Run every benchmark and rewrite the figures section of ``benchmarks/README.md``.

    .venv/bin/python benchmarks/run_all.py            # full run (50-95 min on 2 shared cores)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run (~40 s), README untouched

Each ``bench_*.py`` runs as its own subprocess (it starts and stops its own servers), on both
uvicorn stacks (asyncio/h11 and uvloop/httptools) unless ``--stack`` says otherwise. A quick
run checks that everything still works end to end; its figures are not meaningful and are
only printed, unless ``--write`` is given; without uvloop/httptools it skips that stack with
a note. A full run (no ``--quick``, ``--only``, ``--stack`` or ``--rounds``) rewrites the
README's figures. Exits non-zero if a benchmark fails, or (any run but ``--quick``) if sse-llm
misses a target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness as h

BENCHES = ("throughput", "concurrent", "idle", "short", "drop")
TIMEOUT = {True: 300, False: 5400}  # seconds per benchmark (quick, full): a hang stops the run
START = "<!-- figures:start (written by run_all.py; do not edit by hand) -->"
END = "<!-- figures:end -->"
TITLES = {
    "throughput": "1. One stream, 200k x 16 B: server CPU per event",
    "concurrent": "2. Concurrent streams: server CPU per event at 1, 1,000 and 3,000 streams",
    "idle": "3. Idle connections: server memory per connection",
    "short": "4. One short request: server CPU per request",
    "drop": "5. Client drop: time until every source is closed, and leaks",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--write", action="store_true", help="rewrite README even if not full")
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run just these")
    parser.add_argument("--stack", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument("--rounds", type=int, help=f"rounds per benchmark (full: {h.FULL_ROUNDS})")
    args = parser.parse_args()
    full = not (args.quick or args.only or args.rounds or args.stack != "both")
    started = time.monotonic()
    load_before = _loadavg()
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHES:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(h.HERE / f"bench_{name}.py"), "--json", str(out)]
            cmd += ["--stack", args.stack]
            if args.quick:
                cmd.append("--quick")
            if args.rounds:
                cmd += ["--rounds", str(args.rounds)]
            t0 = time.monotonic()
            print(f"== {name}", flush=True)
            try:
                proc = subprocess.run(cmd, timeout=TIMEOUT[args.quick], check=False, cwd=h.ROOT)
            except subprocess.TimeoutExpired:
                print(f"!! {name}: no result within {TIMEOUT[args.quick]}s", flush=True)
                failed.append(name)
                continue
            if proc.returncode != 0 or not out.exists():
                print(f"!! {name}: exit code {proc.returncode}", flush=True)
                failed.append(name)
                continue
            results[name] = json.loads(out.read_text())
            results[name]["seconds"] = time.monotonic() - t0
            print(f"== {name}: {results[name]['seconds']:.0f} s", flush=True)
    total = time.monotonic() - started
    missed = [n for n, r in results.items() if r.get("target_met") is False]
    print(
        f"== all done in {total:.0f} s; failed: {failed or 'none'}; targets missed in: "
        f"{missed or 'none'}" + (" (quick: not judged)" if args.quick and missed else "")
    )
    if results and (full or args.write) and not failed:
        write_readme(results, total, (load_before, _loadavg()))
    # Quick figures are too small and noisy to judge a target by: only failures count there.
    sys.exit(1 if failed or (missed and not args.quick) else 0)


def _loadavg() -> str:
    """The 1-minute load average: how busy the shared machine was (2 cores)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def write_readme(results: dict[str, dict[str, Any]], total: float, load: tuple[str, str]) -> None:
    m = h.machine()
    command = " ".join([".venv/bin/python benchmarks/run_all.py", *sys.argv[1:]])
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    took = ", ".join(f"{n} {r['seconds'] / 60:.0f} min" for n, r in results.items())
    parts = [
        START,
        "",
        f"Measured {m['date']} with `{command}` ({total / 60:.0f} min in all: {took}) at "
        f"commit {m['commit']}.",
        f"Machine: {m['nproc']} CPUs (shared, noisy), Linux {m['kernel']}, Python {m['python']}; "
        f"{pkgs}. Load average (1 min) at the start / end: {load[0]} / {load[1]}.",
        "",
    ]
    for name in BENCHES:
        if name in results:
            parts += [f"### {TITLES[name]}", "", results[name]["markdown"], ""]
    parts.append(END)
    readme = h.HERE / "README.md"
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(head + "\n".join(parts) + tail)
    print(f"wrote {readme}")


if __name__ == "__main__":
    main()
