"""Backtest of the bill projection (telemetry.projection, tools project_cost): how far the
projected month's cost lies from what the month then cost, and how often the 80% range held
it; baseline: the run rate (the cost so far times the month's days over the days elapsed),
measured in the same run on the same days.

The demo household (demo.synthetic: seasons, cloudy and sunny days, a car charged on some
days) is generated for --days days from --start; each day's import cost comes from
evals/reference.py (its plain-Python integration of the grid meter, at the demo's flat
import price). For every calendar month with HISTORY_DAYS days of readings before it, and
every whole day elapsed of it (1 to the month's length less one), the month is projected from
the days so far and the HISTORY_DAYS days before the cut, as project_cost does at local
midnight, and compared with the month's real cost.

    .venv/bin/python -m bench.projection_backtest [--days 240] [--start 2025-10-01] [--seed 7]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from demo.synthetic import demo_household, generate
from evals import reference
from telemetry import projection

PRICE = 0.32  # EUR per kWh, the evals' flat tariff
CAP = timedelta(minutes=15)


def daily_costs(start: date, days: int, seed: int) -> dict[date, float]:
    """Each local day's import cost, from readings every 5 minutes."""
    spec = demo_household()
    zone = ZoneInfo(spec.timezone)
    grid = [d for d in spec.devices if d.kind == "grid"]
    first = datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)
    readings = [
        reference.Raw(r.device_key, r.ts, r.watts)
        for r in generate(spec, start=first, days=days, seed=seed, step_seconds=300)
        if r.device_key == grid[0].key
    ]
    dates = [start + timedelta(days=k) for k in range(days + 1)]
    edges = [datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC) for d in dates]
    series = reference.series(
        [reference.Dev(g.key, g.kind) for g in grid], readings, edges=edges, now=edges[-1], cap=CAP
    )
    return {
        dates[i]: sum(pos for pos, _ in bucket.values()) / 1000 * PRICE
        for i, bucket in enumerate(series)
    }


def backtest(costs: dict[date, float]) -> dict[str, list[tuple[int, float, float, bool]]]:
    """Per method, for every (month, days elapsed): (elapsed, error %, range width %, held)."""
    months: dict[tuple[int, int], list[date]] = defaultdict(list)
    for d in sorted(costs):
        months[(d.year, d.month)].append(d)
    out: dict[str, list[tuple[int, float, float, bool]]] = {"projection": [], "run rate": []}
    for days in months.values():
        first = days[0]
        if first.day != 1 or (days[-1] + timedelta(days=1)).day != 1:
            continue  # a month the readings do not cover whole
        history_from = first - timedelta(days=projection.HISTORY_DAYS)
        if history_from not in costs:
            continue
        actual = sum(costs[d] for d in days)
        for elapsed in range(1, len(days)):
            cut = first + timedelta(days=elapsed)
            so_far = sum(costs[first + timedelta(days=k)] for k in range(elapsed))
            history = [
                costs[cut - timedelta(days=k)] for k in range(projection.HISTORY_DAYS, 0, -1)
            ]
            p = projection.project(so_far, history, float(len(days) - elapsed), 0.0)
            width = (p.high - p.low) / actual * 100
            out["projection"].append(
                (elapsed, (p.expected - actual) / actual * 100, width, p.low <= actual <= p.high)
            )
            rate = so_far * len(days) / elapsed
            out["run rate"].append((elapsed, (rate - actual) / actual * 100, 0.0, False))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 10, 1))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    costs = daily_costs(args.start, args.days, args.seed)
    results = backtest(costs)
    cases = len(results["projection"])
    if not cases:
        print("no whole month with 14 days of readings before it: ask for more --days")
        return 1
    months = cases and len({e for e in results["projection"] if e[0] == 1})
    daily = list(costs.values())
    print(
        f"demo household, {args.days} days from {args.start}: {months} whole months, "
        f"{cases} cut-offs; a day's import cost {statistics.fmean(daily):.2f} EUR on average "
        f"(sd {statistics.stdev(daily):.2f}, {min(daily):.2f} to {max(daily):.2f})"
    )
    print("mean absolute error of the month's cost, % of what it cost, by days elapsed")
    print(f"{'days elapsed':>14} {'projection':>11} {'run rate':>9} {'ratio':>6} {'80% held':>9}")
    for label, low, high in (("1-3", 1, 3), ("4-10", 4, 10), ("11-20", 11, 20), ("21+", 21, 31),
                             ("all", 1, 31)):  # fmt: skip
        row = {m: [r for r in rs if low <= r[0] <= high] for m, rs in results.items()}
        err = {m: statistics.fmean(abs(r[1]) for r in rs) for m, rs in row.items()}
        held = statistics.fmean(r[3] for r in row["projection"]) * 100
        print(
            f"{label:>14} {err['projection']:>10.1f}% {err['run rate']:>8.1f}% "
            f"{err['run rate'] / err['projection']:>5.1f}x {held:>8.0f}%"
        )
    widths = [r[2] for r in results["projection"]]
    print(f"80% range: {statistics.fmean(widths):.1f}% of the month's cost wide on average")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
