"""Printing an interleaved A/B benchmark: medians, interquartile ranges, paired ratios.

Shared by the benchmark scripts so that every one reports its figures the same way."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ab_report(
    clock: str,
    column: int,
    timings: Mapping[str, Sequence[Sequence[Any]]],
    *,
    labels: Mapping[str, str],
    per: str,
    ratio: str,
    cost: str,
    goal: str = "",
) -> None:
    """``timings["A"]`` and ``["B"]``: one row per round, ``column`` its rate per second."""
    a_runs = [t[column] for t in timings["A"]]
    b_runs = [t[column] for t in timings["B"]]
    a, b = statistics.median(a_runs), statistics.median(b_runs)
    say(f"{clock}, median over rounds, {per}/second:")
    for name, runs, median in (("A", a_runs, a), ("B", b_runs, b)):
        q1, _, q3 = statistics.quantiles(runs, n=4)
        say(f"  {name} {labels[name]:<16} {median:8.1f}   (interquartile {q1:.1f} to {q3:.1f})")
    say(f"  ratio {ratio} {a / b:.3f}" + (f"   ({goal})" if goal else ""))
    paired = [x / y for x, y in zip(a_runs, b_runs, strict=True)]
    q1, q2, q3 = statistics.quantiles(paired, n=4)
    say(f"  paired per-round ratio A/B: median {q2:.3f}, interquartile {q1:.3f} to {q3:.3f}")
    say(
        f"  per request: A {1e3 / a:.2f} ms, B {1e3 / b:.2f} ms, {cost} {1e3 / a - 1e3 / b:+.2f} ms"
    )


def ab_report_clocks(
    timings: Mapping[str, Sequence[Sequence[Any]]],
    *,
    labels: Mapping[str, str],
    per: str,
    ratio: str,
    cost: str,
    goal: str = "",
) -> None:
    """``ab_report`` by wall clock (column 0), then by this process's CPU time (column 1)."""
    for clock, column in (("wall-clock", 0), ("process CPU (PostgreSQL's work not included)", 1)):
        ab_report(clock, column, timings, labels=labels, per=per, ratio=ratio, cost=cost, goal=goal)
