"""The router's labelled cases: loading them, and scoring the router against them.

A case file holds one JSON object a line: id, text, household (a key of households.json
beside it), pending_action and expect. expect has branch, and optionally window (kind,
days, start, end, weekday: dates as YYYY-MM-DD, a day without a year as --MM-DD or ---DD),
devices, ambiguous, op, value, device (the action's device), consent and also_report;
absent fields are null, [] or false. A route is right when all of them match.

    .venv/bin/python -m evals.router_eval [evals/router/router.jsonl]

It lives with the other evaluations, beside its data, and runs from the checkout: the
router itself reads no files.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from router.devices import DeviceRef
from router.route import Route, route
from router.windows import DayRef, WindowRef

DEFAULT_CASES = Path(__file__).resolve().parent / "router" / "router.jsonl"
_EXPECT_FIELDS = frozenset(
    {
        "branch", "window", "devices", "ambiguous", "op", "value", "device", "consent",
        "also_report", "explain", "project",
    }
)  # fmt: skip
_WINDOW_FIELDS = frozenset(
    {"kind", "days", "start", "end", "weekday", "last_weekday", "months", "complete"}
)


@dataclass(frozen=True)
class Outcome:
    """The parts of a route a case checks."""

    branch: str
    window: WindowRef | None = None
    devices: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    op: str | None = None
    value: str | None = None
    device: str | None = None
    consent: str | None = None
    also_report: bool = False
    explain: str | None = None  # asking why: against "previous" or "usual"
    project: bool = False  # asking ahead: a projection of the running window

    @classmethod
    def of(cls, r: Route) -> Outcome:
        action = r.action
        return cls(
            branch=r.branch,
            window=r.window,
            devices=r.devices,
            ambiguous=r.ambiguous,
            op=action.op if action else None,
            value=action.value if action else None,
            device=action.device if action else None,
            consent=r.consent,
            also_report=r.also_report,
            explain=r.explain,
            project=r.project,
        )


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    household: str
    devices: tuple[DeviceRef, ...]
    pending_action: bool
    expect: Outcome


@dataclass(frozen=True)
class Failure:
    case: Case
    got: Outcome
    rule: str


@dataclass(frozen=True)
class Report:
    total: int
    correct: int
    by_branch: dict[str, tuple[int, int]]  # expected branch -> (correct, total)
    failures: tuple[Failure, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def summary(self) -> str:
        branches = ", ".join(
            f"{branch} {right}/{total}" for branch, (right, total) in sorted(self.by_branch.items())
        )
        lines = [f"accuracy {self.accuracy:.3f} ({self.correct}/{self.total}): {branches}"]
        for f in self.failures:
            lines += [
                f"- {f.case.id} {f.case.text!r} [{f.case.household}] rule {f.rule}",
                f"    expected {f.case.expect}",
                f"    got      {f.got}",
            ]
        return "\n".join(lines)


def load_cases(path: Path | str) -> list[Case]:
    """The cases in `path`, with their households from households.json beside it."""
    path = Path(path)
    homes = json.loads((path.parent / "households.json").read_text())
    devices = {
        name: tuple(DeviceRef(d["name"], d["kind"], d["controllable"]) for d in listed)
        for name, listed in homes.items()
    }
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        raw = json.loads(line)
        try:
            cases.append(
                Case(
                    id=raw["id"],
                    text=raw["text"],
                    household=raw["household"],
                    devices=devices[raw["household"]],
                    pending_action=raw["pending_action"],
                    expect=_outcome(raw["expect"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: bad case: {exc!r}") from exc
    ids = Counter(case.id for case in cases)
    if doubled := sorted(i for i, n in ids.items() if n > 1):
        raise ValueError(f"{path}: ids used more than once: {doubled}")
    return cases


def score(cases: list[Case], *, language: str = "en") -> Report:
    by_branch: dict[str, list[int]] = {}
    failures = []
    for case in cases:
        r = route(case.text, case.devices, pending_action=case.pending_action, language=language)
        got = Outcome.of(r)
        tally = by_branch.setdefault(case.expect.branch, [0, 0])
        tally[1] += 1
        if got == case.expect:
            tally[0] += 1
        else:
            failures.append(Failure(case, got, r.rule))
    return Report(
        total=len(cases),
        correct=len(cases) - len(failures),
        by_branch={branch: (right, total) for branch, (right, total) in by_branch.items()},
        failures=tuple(failures),
    )


def _outcome(expect: dict[str, Any]) -> Outcome:
    if unknown := expect.keys() - _EXPECT_FIELDS:
        raise ValueError(f"unknown expect fields {sorted(unknown)}")
    window = expect.get("window")
    return Outcome(
        branch=expect["branch"],
        window=_window(window) if window is not None else None,
        devices=tuple(expect.get("devices", ())),
        ambiguous=tuple(expect.get("ambiguous", ())),
        op=expect.get("op"),
        value=expect.get("value"),
        device=expect.get("device"),
        consent=expect.get("consent"),
        also_report=expect.get("also_report", False),
        explain=expect.get("explain"),
        project=expect.get("project", False),
    )


def _window(raw: dict[str, Any]) -> WindowRef:
    if unknown := raw.keys() - _WINDOW_FIELDS:
        raise ValueError(f"unknown window fields {sorted(unknown)}")
    return WindowRef(
        kind=raw["kind"],
        days=raw.get("days"),
        start=_day(raw.get("start")),
        end=_day(raw.get("end")),
        weekday=raw.get("weekday"),
        last_weekday=raw.get("last_weekday"),
        months=raw.get("months"),
        complete=raw.get("complete", False),
    )


def _day(text: str | None) -> date | DayRef | None:
    """YYYY-MM-DD, --MM-DD (no year) or ---DD (no month either), as in ISO 8601."""
    if text is None:
        return None
    if text.startswith("---"):
        return DayRef(int(text[3:]))
    if text.startswith("--"):
        month, day = text[2:].split("-")
        return DayRef(int(day), int(month))
    return date.fromisoformat(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", type=Path, default=DEFAULT_CASES)
    args = parser.parse_args()
    print(score(load_cases(args.cases)).summary())


if __name__ == "__main__":
    main()
