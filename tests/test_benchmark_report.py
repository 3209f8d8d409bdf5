"""The benchmarks' report says what it judged: a ratio is shown with enough decimals for the
figure to agree with its PASS or MISS (benchmarks/_harness.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _harness  # benchmarks/ holds scripts, not a package


@pytest.mark.parametrize(
    ("ratio", "limit", "shown"),
    [
        (1.16, 1.05, "1.16x"),  # plainly a miss
        (0.94, 1.00, "0.94x"),  # plainly a pass
        (1.00, 1.00, "1.00x"),  # at the limit: a pass
        (0.996, 1.00, "1.00x"),  # rounds up to the limit: still a pass, and reads as one
        (1.004, 1.00, "1.004x"),  # would read "MISS 1.00x"
        (1.0504, 1.05, "1.0504x"),
        (1.0000001, 1.00, "just over 1.00x"),
        (math.nan, 1.00, "n/a"),
    ],
)
def test_a_judged_ratio_shows_as_many_decimals_as_its_verdict_needs(
    ratio: float, limit: float, shown: str
) -> None:
    assert _harness.ratio_figure(ratio, limit) == shown


def test_the_targets_table_shows_a_narrow_miss_as_a_miss() -> None:
    raw = [10.0, 10.0, 10.0]
    values = {
        "raw": raw,
        _harness.BARE: [10.6, 10.4, 10.5],
        _harness.ROUTED_BASELINE: raw,
        "sse-llm-starlette": [10.05, 10.03, 10.04],
    }
    checks = _harness.ratio_checks("1 stream, asyncio/h11", values, 1.05)
    cells = {c.target: c.cell() for c in checks}
    assert cells == {
        "bare ≤ 1.05x raw": "PASS 1.05x",
        "Starlette route ≤ `StreamingResponse` route": "**MISS** 1.004x",
    }
