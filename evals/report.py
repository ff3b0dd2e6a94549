"""Scores from turn results, and the report: JSON, a Markdown summary, a PNG chart, the
comparison with a previous report, and the thresholds a run must meet."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.runner import TurnResult

SCORES = ("routing", "numeric", "faithfulness", "consent", "scoping", "refusal", "clarification")


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def scores(results: Iterable[TurnResult]) -> dict[str, float | None]:
    rs = list(results)
    routed = [r.routed for r in rs if r.routed is not None]
    refusals = [r.refusal for r in rs if r.refusal is not None]
    clarifications = [r.clarification for r in rs if r.clarification is not None]
    return {
        "routing": _share(sum(routed), len(routed)),
        "numeric": _share(sum(r.numbers_found for r in rs), sum(r.numbers_expected for r in rs)),
        "faithfulness": _share(
            sum(r.numbers_supported for r in rs), sum(r.numbers_stated for r in rs)
        ),
        "consent": _share(sum(r.consent for r in rs), len(rs)),
        "scoping": _share(sum(r.scoped for r in rs), len(rs)),
        "refusal": _share(sum(refusals), len(refusals)),
        "clarification": _share(sum(clarifications), len(clarifications)),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def build(results: list[TurnResult], *, run: dict[str, Any]) -> dict[str, Any]:
    by_category: dict[str, list[TurnResult]] = defaultdict(list)
    for r in results:
        by_category[r.category].append(r)
    latencies = [r.latency_ms for r in results]
    answered = [r for r in results if r.prompt_tokens or r.completion_tokens]
    return {
        "run": {**run, "finished": datetime.now(UTC).isoformat(), "turns": len(results)},
        "scores": scores(results),
        "by_category": {c: scores(rs) for c, rs in sorted(by_category.items())},
        "latency_ms": {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95)},
        "tokens_per_answer": (
            statistics.mean(r.prompt_tokens + r.completion_tokens for r in answered)
            if answered
            else 0
        ),
        "cost_per_answer": statistics.mean(r.cost for r in answered) if answered else 0.0,
        "failures": sum(1 for r in results if not r.ok),
        "turns": [r.public() for r in results],
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def markdown(report: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    run = report["run"]
    lines = [
        f"# wattwise eval: {run['provider']}" + (f" ({run['model']})" if run.get("model") else ""),
        "",
        f"{run['cases']} cases, {run['turns']} turns, {report['failures']} turn(s) with a "
        f"failure. Latency per turn p50 {report['latency_ms']['p50']:.1f} ms, p95 "
        f"{report['latency_ms']['p95']:.1f} ms; {report['tokens_per_answer']:.0f} tokens and "
        f"{report['cost_per_answer']:.6f} per model answer.",
        "",
        "| score | value |" + (" baseline | change |" if baseline else ""),
        "| --- | --- |" + (" --- | --- |" if baseline else ""),
    ]
    for name in SCORES:
        value = report["scores"][name]
        row = f"| {name} | {_fmt(value)} |"
        if baseline:
            before = baseline["scores"].get(name)
            change = (
                "n/a"
                if value is None or before is None
                else ("=" if abs(value - before) < 1e-9 else f"{(value - before) * 100:+.1f} pt")
            )
            row += f" {_fmt(before)} | {change} |"
        lines.append(row)
    lines += ["", "| category | " + " | ".join(SCORES) + " |", "| --- |" + " --- |" * len(SCORES)]
    for category, values in report["by_category"].items():
        lines.append(f"| {category} | " + " | ".join(_fmt(values[s]) for s in SCORES) + " |")
    failing = [t for t in report["turns"] if t["failures"]]
    if baseline:
        before = {(t["case"], t["turn"]): t for t in baseline["turns"]}
        fixed = [
            t
            for t in report["turns"]
            if not t["failures"] and before.get((t["case"], t["turn"]), {}).get("failures")
        ]
        broke = [
            t
            for t in failing
            if not before.get((t["case"], t["turn"]), {"failures": [1]})["failures"]
        ]
        lines += ["", f"Against the baseline: {len(fixed)} turn(s) fixed, {len(broke)} broken."]
        lines += [
            f"- broken: `{t['case']}` turn {t['turn']}: {'; '.join(t['failures'])}"
            for t in broke[:30]
        ]
    if failing:
        lines += ["", "## Failures", ""]
        for t in failing[:60]:
            lines.append(
                f"- `{t['case']}` turn {t['turn']} ({t['user']!r}): {'; '.join(t['failures'])}"
            )
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    """Scores by category (bars) and the latency of turns (histogram), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = list(report["by_category"])
    shown = ("routing", "numeric", "faithfulness", "consent", "scoping")
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(shown)
    for i, name in enumerate(shown):
        values = [(report["by_category"][c][name] or 0) * 100 for c in categories]
        bars.bar([x + i * width for x in range(len(categories))], values, width, label=name)
    bars.set_xticks([x + 0.4 - width / 2 for x in range(len(categories))], categories, rotation=20)
    bars.set_ylim(0, 105)
    bars.set_ylabel("%")
    bars.set_title("scores by category")
    bars.legend(loc="lower left", fontsize=8)
    hist.hist([t["latency_ms"] for t in report["turns"]], bins=30, color="#4a7")
    hist.set_xlabel("ms per turn")
    p50, p95 = report["latency_ms"]["p50"], report["latency_ms"]["p95"]
    hist.set_title(f"latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(
    report: dict[str, Any], out: Path, baseline: dict[str, Any] | None = None
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "markdown": out / "summary.md",
        "chart": out / "chart.png",
    }
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    paths["markdown"].write_text(markdown(report, baseline))
    chart(report, paths["chart"])
    return paths


def missed(report: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds the report misses, in words."""
    out = []
    for name, minimum in thresholds.items():
        value = report["scores"].get(name)
        if value is not None and value < minimum - 1e-12:
            out.append(f"{name} {value * 100:.1f}% is below {minimum * 100:.1f}%")
    return out
