"""The offline narrator's answer plan: which tools it asks for a routed question, and which
of its sentence writers (agent.narrator) speaks from each result."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from agent import narrator
from router import Route
from telemetry.queries import CONSUMING
from telemetry.windows import Window
from tools import catalog
from tools.base import Branch
from tools.windows import WindowArg

MAX_DEVICES_NARRATED = 3
_LIVE = re.compile(r"\b(?:right now|currently|at the moment|now)\b", re.IGNORECASE)


def calls(
    route: Route,
    window: WindowArg,
    bounds: Window,
    *,
    text: str,
    report_only: bool = False,
    compared: WindowArg | None = None,
    kinds: Mapping[str, str] | None = None,
) -> list[tuple[str, BaseModel]]:
    """The tool calls (name, arguments) the narrator answers `text` from, chosen by its
    route; `report_only`: the energy report alone (after a proposal that asked for one);
    `compared`: the window to compare `window` with ("compare that with last month", the
    second window of "this month against last month");
    `kinds`: the household's device kinds by name (a cost question about a consuming device
    is about that device's cost)."""
    if report_only or route.branch == "action":
        return [("energy_summary", catalog.WindowOnly(window=window))]
    if route.advise:  # the tariff's cheapest hours, and a run of the device named
        name = route.devices[0] if route.devices else None
        return [("tariff_advice", catalog.AdviceArgs(device_name=name))]
    if route.project:  # what the running window is on course to cost
        return [("project_cost", catalog.ProjectArgs(window=window))]
    if route.explain is not None:  # against the previous period, the usual, or `compared`
        why = catalog.ExplainArgs(window=window, against=route.explain, baseline=compared)
        return [("explain_cost", why)]
    if compared is not None:  # like for like: this month so far against as much of the last
        args = catalog.CompareArgs(a=window, b=compared, like_for_like=True)
        return [("compare_windows", args)]
    costed = [n for n in route.devices if (kinds or {}).get(n) in CONSUMING]
    if route.branch == "cost" and costed:
        return [
            ("device_cost", catalog.DeviceArgs(device_name=name, window=window))
            for name in costed[:MAX_DEVICES_NARRATED]
        ]
    if route.branch == "cost":
        return [("cost_breakdown", catalog.WindowOnly(window=window))]
    if route.rule == "energy.device_state" or (route.window is None and _LIVE.search(text)):
        return [("live_status", catalog.NoArgs())]
    if route.devices:
        step = _step(bounds)
        return [
            ("device_usage", catalog.DeviceUsageArgs(device_name=name, window=window, step=step))
            for name in route.devices[:MAX_DEVICES_NARRATED]
        ]
    return [("energy_summary", catalog.WindowOnly(window=window))]


def branch(tool: str) -> Branch:
    """The branch whose tools the narrator's call of `tool` runs under."""
    return "energy" if "energy" in catalog.TOOLS[tool].branches else "cost"


def sentences(name: str, result: dict[str, Any], route: Route, timezone: str) -> list[str]:
    """The narrator's sentences from the result of the tool `name`."""
    if "error" in result:
        error = result["error"]
        if error["code"] == "no_history":  # nothing to explain against, or to project from
            verb = "project" if name == "project_cost" else "explain"
            return [f"I can't {verb} that yet: {error['message']}"]
        return [f"I couldn't get that: {error['message']}"]
    typed = catalog.TOOLS[name].result.model_validate(result)
    if isinstance(typed, catalog.EnergySummary):
        return narrator.energy(typed)
    if isinstance(typed, catalog.CostBreakdown):
        return narrator.cost(typed)
    if isinstance(typed, catalog.DeviceCost):
        return narrator.device_cost(typed)
    if isinstance(typed, catalog.DeviceUsage):
        return narrator.device(typed)
    if isinstance(typed, catalog.TariffAdvice):
        return narrator.advice(typed, timezone)
    if isinstance(typed, catalog.CostProjection):
        return narrator.projection(typed)
    if isinstance(typed, catalog.CostExplanation):
        return narrator.explanation(typed, cost=route.branch == "cost")
    if isinstance(typed, catalog.Comparison):
        return narrator.comparison(typed, cost=route.branch == "cost")
    if isinstance(typed, catalog.LiveStatus):
        if route.devices:
            return narrator.device_state(typed, route.devices, timezone)
        return narrator.live(typed, timezone)
    return []


def _step(window: Window) -> Literal["15m", "1h", "1d"]:
    hours = (window.end - window.start).total_seconds() / 3600
    return "1h" if hours <= 72 else "1d"
