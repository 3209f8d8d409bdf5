"""Run every benchmark and rewrite the figures section of ``benchmarks/README.md``.

    .venv/bin/python benchmarks/run_all.py            # full sizes (5-7 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run (< 60 s), README untouched

Each ``bench_*.py`` runs as its own subprocess (it starts and stops its own servers). A quick
run checks that everything still works end to end; its figures are not meaningful and are
only printed, unless ``--write`` is given. Exits non-zero if a benchmark fails, or (full
run only) if sse-llm misses a target.
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

BENCHES = ("throughput", "concurrent", "idle", "drop")
TIMEOUT = 480  # seconds per benchmark, a hang stops the run
START = "<!-- figures:start (written by run_all.py; do not edit by hand) -->"
END = "<!-- figures:end -->"
TITLES = {
    "throughput": "1. Throughput: one stream, server CPU per event",
    "concurrent": "2. Concurrent streams: total server CPU",
    "idle": "3. Idle connections: server memory per connection",
    "drop": "4. Client drop: time until every source is closed",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--write", action="store_true", help="rewrite README even if --quick")
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run just these")
    args = parser.parse_args()
    started = time.monotonic()
    load_before = _loadavg()
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHES:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(h.HERE / f"bench_{name}.py"), "--json", str(out)]
            if args.quick:
                cmd.append("--quick")
            t0 = time.monotonic()
            print(f"== {name}", flush=True)
            try:
                proc = subprocess.run(cmd, timeout=TIMEOUT, check=False, cwd=h.ROOT)
            except subprocess.TimeoutExpired:
                print(f"!! {name}: no result within {TIMEOUT}s", flush=True)
                failed.append(name)
                continue
            if proc.returncode != 0 or not out.exists():
                print(f"!! {name}: exit code {proc.returncode}", flush=True)
                failed.append(name)
                continue
            results[name] = json.loads(out.read_text())
            results[name]["seconds"] = time.monotonic() - t0
    total = time.monotonic() - started
    missed = [n for n, r in results.items() if r.get("target_met") is False]
    print(
        f"== all done in {total:.0f} s; failed: {failed or 'none'}; targets missed: "
        f"{missed or 'none'}"
    )
    if results and (not args.quick or args.write) and not failed:
        write_readme(results, args.quick, total, (load_before, _loadavg()))
    # Quick figures are too small and noisy to judge a target by: only failures count there.
    sys.exit(1 if failed or (missed and not args.quick) else 0)


def _loadavg() -> str:
    """The 1-minute load average: how busy the shared machine was (2 cores)."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def write_readme(
    results: dict[str, dict[str, Any]], quick: bool, total: float, load: tuple[str, str]
) -> None:
    m = h.machine()
    command = ".venv/bin/python benchmarks/run_all.py" + (" --quick --write" if quick else "")
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    parts = [
        START,
        "",
        f"Measured {m['date']} with `{command}` ({total:.0f} s in all) at commit {m['commit']}.",
        f"Machine: {m['nproc']} CPUs (shared, noisy), Linux {m['kernel']}, Python {m['python']}; "
        f"{pkgs}. uvicorn runs its defaults for what is installed: the asyncio loop and h11. "
        f"Load average (1 min) at the start / end: {load[0]} / {load[1]}.",
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
