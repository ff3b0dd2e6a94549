"""The offline narrator: plain sentences, deterministically, from the same tool results a
model would get. It answers when no model is configured, when one fails, and is the
baseline for evals; every number it states is one of the result's, rounded for display.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tools.catalog import (
    CostBreakdown,
    DeviceUsage,
    EnergySummary,
    LiveStatus,
    Proposal,
    WindowOut,
)

_NAMED = {
    "day": "today so far",
    "today": "today so far",
    "yesterday": "yesterday",
    "3days": "in the last 3 days",
    "last_3_days": "in the last 3 days",
    "week": "in the last 7 days",
    "last_7_days": "in the last 7 days",
    "30days": "in the last 30 days",
    "last_30_days": "in the last 30 days",
    "month": "this month so far",
    "this_month": "this month so far",
    "this_week": "this week so far",
    "last_week": "last week",
    "last_month": "last month",
}


def kwh(value: float) -> str:
    return f"{value:.2f} kWh"


def watts(value: float) -> str:
    return f"{value / 1000:.1f} kW" if abs(value) >= 1000 else f"{value:.0f} W"


def money(value: float, currency: str) -> str:
    return f"{value:.2f} {currency}"


def window_phrase(window: WindowOut) -> str:
    """'today so far', 'last week', or 'from 3 Nov 2026 to 9 Nov 2026' for dates."""
    if window.name in _NAMED:
        return _NAMED[window.name]
    zone = ZoneInfo(window.timezone)
    start = window.start.astimezone(zone)
    end = window.end.astimezone(zone)
    return f"from {start:%-d %b %Y %H:%M} to {end:%-d %b %Y %H:%M}"


def as_of(fresh: datetime | None, timezone: str) -> str:
    if fresh is None:
        return "There are no readings for this period yet."
    local = fresh.astimezone(ZoneInfo(timezone))
    return f"Figures as of {local:%H:%M} on {local:%-d %b} ({timezone})."


def energy(summary: EnergySummary) -> list[str]:
    t, when = summary.totals, window_phrase(summary.window)
    sentences = [f"You used {kwh(t.consumption_kwh)} {when}."]
    if summary.top_devices:
        top = summary.top_devices[0]
        share = (
            f" ({top.share_of_consumption * 100:.0f}% of it)"
            if top.share_of_consumption is not None
            else ""
        )
        sentences.append(f'The biggest user was "{top.name}" with {kwh(top.kwh)}{share}.')
    if t.solar_kwh > 0:
        pct = (
            f", {summary.self_consumption_pct:.0f}% of it used at home"
            if summary.self_consumption_pct is not None
            else ""
        )
        sentences.append(f"Solar produced {kwh(t.solar_kwh)}{pct}.")
    if t.grid_import_kwh or t.grid_export_kwh:
        sentences.append(
            f"From the grid you imported {kwh(t.grid_import_kwh)} and exported "
            f"{kwh(t.grid_export_kwh)}."
        )
    sentences.append(as_of(summary.fresh_as_of, summary.window.timezone))
    return sentences


def cost(breakdown: CostBreakdown) -> list[str]:
    c, when = breakdown.currency, window_phrase(breakdown.window)
    sentences = [
        f"Your estimated cost {when} is {money(breakdown.estimated_cost, c)}: "
        f"{money(breakdown.import_cost, c)} for {kwh(breakdown.import_kwh)} from the grid "
        f"and {money(breakdown.fixed_charges, c)} in fixed charges."
    ]
    if breakdown.export_kwh > 0:
        sentences.append(
            f"Exporting {kwh(breakdown.export_kwh)} earned {money(breakdown.export_credit, c)}, "
            f"so the net cost is {money(breakdown.net_cost, c)}."
        )
    sentences.append(as_of(breakdown.fresh_as_of, breakdown.window.timezone))
    return sentences


def device(usage: DeviceUsage) -> list[str]:
    return [
        f'"{usage.device}" used {kwh(usage.kwh)} {window_phrase(usage.window)}.',
        as_of(usage.fresh_as_of, usage.window.timezone),
    ]


def live(status: LiveStatus, timezone: str) -> list[str]:
    sentences = [f"Your house is drawing {watts(status.house_load_watts)} right now."]
    if status.solar_watts > 0:
        sentences.append(f"Solar is producing {watts(status.solar_watts)}.")
    if status.grid_export_watts > 0:
        sentences.append(f"You are exporting {watts(status.grid_export_watts)} to the grid.")
    elif status.grid_import_watts > 0:
        sentences.append(f"You are importing {watts(status.grid_import_watts)} from the grid.")
    sentences.append(as_of(status.fresh_as_of, timezone))
    return sentences


def proposal(p: Proposal) -> list[str]:
    change = {
        "SET_POWER": f'switch "{p.device_name}" {p.value.lower()}',
        "SET_CHARGE_CURRENT": f'limit "{p.device_name}" to {p.value} A',
        "SET_BATTERY_RESERVE": f'keep {p.value}% in "{p.device_name}"',
    }[p.op]
    return [f"Shall I {change}? Please answer yes or no."]
