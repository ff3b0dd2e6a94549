"""The offline narrator: plain sentences, deterministically, from the same tool results a
model would get. It answers when no model is configured, when one fails, and is the
baseline for evals; every number it states is one of the result's, rounded for display.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from telemetry.windows import local_day_start
from tools.catalog import (
    Comparison,
    CostBreakdown,
    CostExplanation,
    CostPart,
    CostProjection,
    DeviceCost,
    DeviceUsage,
    EnergySummary,
    LiveStatus,
    PriceSpan,
    Proposal,
    TariffAdvice,
    WindowOut,
)

_NAMED = {
    "day": "today so far",
    "today": "today so far",
    "yesterday": "yesterday",
    "3days": "in the 3 days before today",
    "last_3_days": "in the 3 days before today",
    "week": "in the 7 days before today",
    "last_7_days": "in the 7 days before today",
    "30days": "in the 30 days before today",
    "last_30_days": "in the 30 days before today",
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
    """'today so far', 'last week'; for dates 'on Wed 2 Dec 2026', 'in November 2026',
    'in 2025', 'from Mon 16 Nov to Sun 22 Nov 2026', or 'from Thu 1 Jan 2026 until now'."""
    if window.name in _NAMED:
        return _NAMED[window.name]
    zone = ZoneInfo(window.timezone)
    first = window.start.astimezone(zone).date()
    until = window.end.astimezone(zone).date()
    if window.end != local_day_start(until, zone):  # it runs to now
        return f"from {first:%a %-d %b %Y} until now"
    last = until - timedelta(days=1)
    if first == last:
        return f"on {first:%a %-d %b %Y}"
    if first.day == 1 and until.day == 1:
        months = (until.year - first.year) * 12 + until.month - first.month
        if months == 1:
            return f"in {first:%B %Y}"
        if months == 12 and first.month == 1:
            return f"in {first.year}"
        return f"from {first:%B %Y} to {last:%B %Y}"
    if first.year == last.year:
        return f"from {first:%a %-d %b} to {last:%a %-d %b %Y}"
    return f"from {first:%a %-d %b %Y} to {last:%a %-d %b %Y}"


def as_of(fresh: datetime | None, timezone: str) -> str:
    if fresh is None:
        return "There are no readings for this period yet."
    local = fresh.astimezone(ZoneInfo(timezone))
    return f"Figures as of {local:%H:%M} on {local:%-d %b} ({timezone})."


def energy(summary: EnergySummary) -> list[str]:
    t, when = summary.totals, window_phrase(summary.window)
    sentences = [f"You used {kwh(t.consumption_kwh)} {when}."]
    if summary.top_devices and summary.top_devices[0].kwh > 0:
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


def device_cost(priced: DeviceCost) -> list[str]:
    c, when = priced.currency, window_phrase(priced.window)
    price = (
        "at the time-of-use import prices of the hours it ran"
        if priced.time_of_use_periods
        else f"at your import price of {money(priced.import_price_per_kwh, c)} per kWh"
    )
    return [
        f'"{priced.device}" used {kwh(priced.kwh)} {when}, which is {money(priced.cost, c)} '
        f"{price}.",
        "That prices all of it as bought from the grid, without the fixed charges.",
        as_of(priced.fresh_as_of, priced.window.timezone),
    ]


def device(usage: DeviceUsage) -> list[str]:
    name, when = f'"{usage.device}"', window_phrase(usage.window)
    said = {
        "solar": f"{name} produced {kwh(usage.kwh)} {when}.",
        "grid": f"Through {name} you imported {kwh(usage.kwh)} from the grid and exported "
        f"{kwh(usage.kwh_negative)} {when}.",
        "battery": f"{name} charged {kwh(usage.kwh)} and discharged "
        f"{kwh(usage.kwh_negative)} {when}.",
    }.get(usage.kind, f"{name} used {kwh(usage.kwh)} {when}.")
    return [said, as_of(usage.fresh_as_of, usage.window.timezone)]


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


def change(op: str, device_name: str, value: str) -> str:
    """A device change in words: 'switch "Heater" off'."""
    return {
        "SET_POWER": f'switch "{device_name}" {value.lower()}',
        "SET_CHARGE_CURRENT": f'limit "{device_name}" to {value} A',
        "SET_BATTERY_RESERVE": f'keep {value}% in "{device_name}"',
    }[op]


def proposal(p: Proposal) -> list[str]:
    return [f"Shall I {change(p.op, p.device_name, p.value)}? Please answer yes or no."]


def ask_again(op: str, device_name: str, value: str, *, shows_command: bool) -> list[str]:
    """A waiting proposal asked again, after an answer that was not a plain yes or no."""
    ending = (
        'Answer "yes" to send this command, or "no" to cancel it:'
        if shows_command
        else 'Answer "yes" to do it, or "no" to cancel it.'
    )
    return [
        "I have not changed anything yet.",
        f"Shall I {change(op, device_name, value)}?",
        ending,
    ]


def sent(command: dict[str, str]) -> str:
    """What the person hears when a command went out (not that the device switched: only
    the gateway's acknowledgement says that)."""
    what = change(command["op"], command["device_name"], command["value"])
    return f"I sent the command to {what}. I'll confirm once the device acknowledges it."


def fenced(language: str, content: str) -> str:
    """`content` as a Markdown code block whose fence is longer than any run of backticks in
    it, so nothing inside (a device name, say) can close the block early."""
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"\n\n{fence}{language}\n{content}\n{fence}\n"


def span_phrase(window: WindowOut) -> str:
    """A window that ends at a time of day: 'from Sun 1 Nov to Wed 4 Nov 2026, 14:29',
    or 'on Thu 3 Dec 2026 until 14:29'."""
    zone = ZoneInfo(window.timezone)
    first, end = window.start.astimezone(zone), window.end.astimezone(zone)
    if first.date() == end.date():
        return f"on {first:%a %-d %b %Y} until {end:%H:%M}"
    return f"from {first:%a %-d %b} to {end:%a %-d %b %Y}, {end:%H:%M}"


def comparison(c: Comparison, *, cost: bool = False) -> list[str]:
    """Consumption of the two windows (cost too when the question was about cost), and the
    consuming device whose use changed most. Like for like, the earlier window is named by
    the span it was cut to."""
    a, b = c.totals_a.consumption_kwh, c.totals_b.consumption_kwh
    phrase_a, phrase_b = window_phrase(c.a), window_phrase(c.b)
    if c.like_for_like:
        if c.b.start < c.a.start:
            phrase_b = f"over the same span {span_phrase(c.b)}"
        else:
            phrase_a = f"over the same span {span_phrase(c.a)}"
    sentences = [f"You used {kwh(a)} {phrase_a} against {kwh(b)} {phrase_b}."]
    if c.consumption_change_pct is not None and c.consumption_change_kwh != 0:
        more = "more" if c.consumption_change_kwh > 0 else "less"
        sentences.append(
            f"That is {kwh(abs(c.consumption_change_kwh))} "
            f"({abs(c.consumption_change_pct):.0f}%) {more}."
        )
    if cost:
        cur = c.totals_a.currency
        line = (
            f"It cost an estimated {money(c.totals_a.estimated_cost, cur)} against "
            f"{money(c.totals_b.estimated_cost, cur)}"
        )
        if round(c.cost_change, 2) != 0:
            more = "more" if c.cost_change > 0 else "less"
            line += f": {money(abs(c.cost_change), cur)} {more}"
        sentences.append(line + ".")
    moved = [d for d in c.devices_changed_most if round(d.change_kwh, 2) != 0]
    if moved and c.consumption_change_pct is not None:
        d = moved[0]
        sentences.append(f'"{d.name}" changed most: {kwh(d.kwh_a)} against {kwh(d.kwh_b)}.')
    sentences.append(as_of(c.fresh_as_of, c.a.timezone))
    return sentences


def _days(days: list[str]) -> str:
    names = [d.capitalize() for d in days]
    if len(names) == 7:
        return "every day"
    return "on " + (", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0])


def _span(s: PriceSpan) -> str:
    return f"{s.start} to {s.end} {_days(s.days)}"


def advice(a: TariffAdvice, timezone: str) -> list[str]:
    """The tariff's cheapest hours (or that every hour costs the same), and a typical run of
    the device asked about, priced then and at the dearest hours."""
    c = a.currency
    if a.flat:
        sentences = [
            f"Your tariff charges the same {money(a.cheapest_price_per_kwh, c)} per kWh at "
            "every hour, so it costs the same whenever you run it."
        ]
    else:
        spans = [_span(s) for s in a.cheapest[:4]]
        listed = ", ".join(spans[:-1]) + f" and {spans[-1]}" if len(spans) > 1 else spans[0]
        sentences = [
            f"The cheapest hours on your tariff are {listed}, at "
            f"{money(a.cheapest_price_per_kwh, c)} per kWh; the dearest cost "
            f"{money(a.dearest_price_per_kwh, c)}."
        ]
    if a.device is not None:
        name, seen = f'"{a.device}"', f"in the {a.history_days} days before today"
        if a.typical_run_kwh is None or a.run_cost_cheapest is None:
            sentences.append(
                f"{name} has had no run I can see {seen}, so I can't say what one uses."
            )
        elif a.flat:
            sentences.append(
                f"A typical run of {name} uses {kwh(a.typical_run_kwh)} (the median of its "
                f"{a.runs_seen} runs {seen}): {money(a.run_cost_cheapest, c)} at that price."
            )
        else:
            dearest = money(a.run_cost_dearest or 0.0, c)
            sentences.append(
                f"A typical run of {name} uses {kwh(a.typical_run_kwh)} (the median of its "
                f"{a.runs_seen} runs {seen}): {money(a.run_cost_cheapest, c)} in the cheapest "
                f"hours and {dearest} in the dearest."
            )
        sentences.append(as_of(a.fresh_as_of, timezone))
    return sentences


_PERIOD_END = {"day": "the end of today", "this_week": "the end of the week"}


def projection(p: CostProjection) -> list[str]:
    """The cost so far, measured, then the projection, said to be one, with its range and
    the rate it is taken from."""
    c, when = p.currency, window_phrase(p.window)
    end = _PERIOD_END.get(p.window.name, "the end of the month")
    return [
        f"Your estimated cost {when} is {money(p.cost_so_far, c)}.",
        f"At the rate of your last {p.history_days} whole days ({money(p.daily_mean_cost, c)} "
        f"a day on average), it is projected to reach about {money(p.projected_cost, c)} by "
        f"{end}, projected between {money(p.projected_low, c)} and "
        f"{money(p.projected_high, c)} if the rest goes as your recent days did.",
        "That is a projection, not a measurement: weather and the season can move it beyond "
        "that range.",
        as_of(p.fresh_as_of, p.window.timezone),
    ]


MAX_PARTS_NARRATED = 3
_UNITS_OF_DAYS = {1: "days", 7: "weeks"}


def baseline_phrase(e: CostExplanation) -> str:
    """'on Sat 26 Sep 2026', 'over the same span of last month', or 'on average over the 3
    days before'."""
    if e.against != "usual":
        [b] = e.baseline
        return f"over the same span {span_phrase(b)}" if e.like_for_like else window_phrase(b)
    first = e.baseline[-1]
    days = round((first.end - first.start).total_seconds() / 86400)
    unit = _UNITS_OF_DAYS.get(days, "months" if days >= 28 else "periods")
    return f"on average over the {len(e.baseline)} {unit} before"


def _part(p: CostPart, currency: str, *, cost: bool) -> str:
    """One part of a change: '"Heat pump" used 3.20 kWh more (1.02 EUR more)'."""
    paid = f"{money(abs(p.cost), currency)} {'more' if p.cost > 0 else 'less'}"
    energy = f"{kwh(abs(p.kwh or 0.0))} {'more' if (p.kwh or 0.0) > 0 else 'less'}"
    said = {
        "device": f'"{p.device}" used {energy}',
        "solar": f"you used {energy} of your own solar",
        "storage": f"the battery took {energy} than it gave back",
        "unmetered": f"grid import that no device meter accounts for was {energy}",
        "price": f"the prices of the hours you bought energy in made it {paid}",
        "fixed_charges": f"the fixed charges were {paid}",
        "days": f"the number of days made it {paid}",
    }[p.kind]
    return said + (f" ({paid})" if cost and p.kwh is not None else "")


def explanation(e: CostExplanation, *, cost: bool) -> list[str]:
    """The window against its baseline, then the parts of the difference that moved it
    most: in money when the question was about cost, else the devices whose use changed
    (consumption is their sum). A baseline with other days is scaled to the window's."""
    c, when, against = e.currency, window_phrase(e.window), baseline_phrase(e)
    if cost:
        head = (
            f"Your estimated cost {when} is {money(e.cost, c)} against "
            f"{money(e.baseline_cost, c)} {against}"
        )
        change, pct, unit = e.change, e.change_pct, money(abs(e.change), c)
    else:
        head = (
            f"You used {kwh(e.consumption_kwh)} {when} against "
            f"{kwh(e.baseline_consumption_kwh)} {against}"
        )
        change, pct = e.consumption_change_kwh, e.consumption_change_pct
        unit = kwh(abs(change))
    if e.local_days != e.baseline_days:
        head += f" ({e.local_days} days against {e.baseline_days:g})"
    sentences = [head + "."]
    if round(change, 2) == 0:
        sentences.append(f"That is about the same: {unit} {'more' if change > 0 else 'less'}.")
    else:
        share = f" ({abs(pct):.0f}%)" if pct is not None else ""
        scaled = "Day for day, that" if e.local_days != e.baseline_days and not cost else "That"
        sentences.append(f"{scaled} is {unit}{share} {'more' if change > 0 else 'less'}.")

        def size(p: CostPart) -> float:
            return abs(p.cost) if cost else abs(p.kwh or 0.0)

        moved = sorted(
            (p for p in e.parts if (cost or p.kind == "device") and round(size(p), 2) != 0),
            key=lambda p: -size(p),
        )[:MAX_PARTS_NARRATED]
        if moved:
            said = [_part(p, c, cost=cost) for p in moved]
            listed = ", ".join(said[:-1]) + f" and {said[-1]}" if len(said) > 1 else said[0]
            sentences.append(f"Most of it: {listed}.")
    sentences.append(as_of(e.fresh_as_of, e.window.timezone))
    return sentences


def device_state(status: LiveStatus, names: tuple[str, ...], timezone: str) -> list[str]:
    """Whether the named devices draw power now, from the live readings."""
    by_name = {d.name.casefold(): d for d in status.devices}
    sentences = []
    for name in names:
        d = by_name.get(name.casefold())
        if d is None or d.watts is None or d.stale:
            sentences.append(f'There is no recent reading from "{name}".')
        elif d.watts > 5:
            sentences.append(f'"{d.name}" is drawing {watts(d.watts)} right now.')
        else:
            sentences.append(f'"{d.name}" is idle ({watts(d.watts)}).')
    sentences.append(as_of(status.fresh_as_of, timezone))
    return sentences


SMALLTALK = {
    "greeting": "Hello! Ask me about your energy use, its cost, or a device you want switched.",
    "thanks": "You're welcome.",
    "goodbye": "Goodbye!",
    "identity": (
        "I'm wattwise, your home-energy assistant. I answer from your household's own "
        "readings and switch devices only when you say yes."
    ),
    "help": (
        "You can ask how much energy you used today or last week, what it cost, which "
        "device used the most, or ask me to switch a device on or off."
    ),
    "chitchat": "I'm best at your home's energy: ask me what you used or what it cost.",
    "stray_consent": "There is nothing waiting for your yes or no right now.",
}
OUT_OF_SCOPE = {
    "injection": "I can't follow instructions like that. I can answer about your home's energy.",
    "other_household": "I can only answer about your own household.",
    "topic": "That is outside what I know: I answer about your home's energy use and cost.",
    "empty": "Ask me about your home's energy use, its cost, or a device to switch.",
    "default": "I'm not sure what you mean. Try: how much energy did I use today?",
    # Questions about energy or money wattwise has no computation for (router rule
    # unsupported.<kind>): what it can do instead, and no figure for another question.
    "explain": (
        "I can explain what your whole house used or spent against an earlier period, not "
        "why one device did something, and I won't guess. Try \"why did I spend more "
        'yesterday?", or ask what a device used last week.'
    ),
    "projection": (
        "I can project what your whole house's bill for today, this week or this month is on "
        "course to be, not usage or one device's cost ahead, and a figure for the days so far "
        'would answer a different question. Try "what will my bill be this month?".'
    ),
}


def fixed(rule: str) -> str:
    """The sentence for a smalltalk or out-of-scope rule ('smalltalk.thanks')."""
    branch, _, kind = rule.partition(".")
    table = SMALLTALK if branch == "smalltalk" else OUT_OF_SCOPE
    return table.get(kind, table.get("default", OUT_OF_SCOPE["default"]))


def clarify(candidates: tuple[str, ...]) -> str:
    if not candidates:
        return "Which device do you mean?"
    names = [f'"{n}"' for n in candidates[:6]]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return f"Which one do you mean: {listed}?"


_UNITS = [
    (re.compile(r"(\d)\s*kWh\b"), r"\1 kilowatt hours"),
    (re.compile(r"(\d)\s*Wh\b"), r"\1 watt hours"),
    (re.compile(r"(\d)\s*kW\b"), r"\1 kilowatts"),
    (re.compile(r"(\d)\s*W\b"), r"\1 watts"),
    (re.compile(r"(\d)\s*A\b"), r"\1 amps"),
    (re.compile(r"(\d)\s*%"), r"\1 percent"),
]
_CURRENCIES = {"USD": "dollars", "EUR": "euros", "GBP": "pounds", "NZD": "dollars"}
_TRAILING_ZEROS = re.compile(r"(\d+)\.(\d*?)0+\b")
_MARKUP = re.compile(r"[*_#`>|]+")


def spoken(text: str) -> str:
    """A sentence for a voice assistant: no markup or quotes, units and currencies as
    words, no trailing zeros ("2.50 kWh" is "2.5 kilowatt hours")."""
    out = _MARKUP.sub("", text).replace('"', "")
    out = _TRAILING_ZEROS.sub(lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""), out)
    for pattern, words in _UNITS:
        out = pattern.sub(words, out)
    for code, name in _CURRENCIES.items():
        out = re.sub(rf"(\d)\s*{code}\b", rf"\1 {name}", out)
    return out
