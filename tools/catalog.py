"""The tools: each reads figures through telemetry.queries for the household in the
context, and returns a bounded, typed result that carries fresh_as_of."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from telemetry import advice, explain, projection, queries, windows
from telemetry import live as live_power
from telemetry.households import Device
from telemetry.kinds import DeviceKind
from tools.base import Args, Branch, Result, Tool, ToolContext, ToolDefinition, ToolFailure
from tools.windows import WindowArg, earlier, period_end, resolve

MAX_TOP = 20
USUAL_PERIODS = 3  # "than usual": the mean of this many periods before, those with readings
MAX_BUCKETS = 96
SUMMARY_DEVICES = 5

Step = Literal["15m", "1h", "1d"]
PowerValue = Literal["ON", "OFF"]
Op = Literal["SET_POWER", "SET_CHARGE_CURRENT", "SET_BATTERY_RESERVE"]
# What each operation accepts, and on which kinds of device.
OPS: dict[str, frozenset[DeviceKind]] = {
    "SET_POWER": frozenset({"consumer", "ev_charger", "battery"}),
    "SET_CHARGE_CURRENT": frozenset({"ev_charger"}),
    "SET_BATTERY_RESERVE": frozenset({"battery"}),
}
CHARGE_AMPS = (6, 32)
RESERVE_PERCENT = (0, 100)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WindowOut(_Frozen):
    name: str
    start: datetime
    end: datetime
    timezone: str


class DeviceKwh(_Frozen):
    name: str
    kind: str
    kwh: float
    share_of_consumption: float | None


class Quality(_Frozen):
    offline_devices: list[str]
    capped_gaps: int
    implausible_readings_rejected: int


class Totals(_Frozen):
    consumption_kwh: float
    solar_kwh: float
    grid_import_kwh: float
    grid_export_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    estimated_cost: float
    export_credit: float
    net_cost: float
    currency: str


# -- arguments -------------------------------------------------------------------------


class WindowOnly(Args):
    window: WindowArg


class TopDevicesArgs(Args):
    window: WindowArg
    limit: int = Field(ge=1, le=MAX_TOP, description=f"How many devices, 1 to {MAX_TOP}.")


class DeviceUsageArgs(Args):
    device_name: str = Field(max_length=80, description="The device's name as the user knows it.")
    window: WindowArg
    step: Step = Field(description="Bucket width of the series.")


class DeviceArgs(Args):
    device_name: str = Field(max_length=80, description="The device's name as the user knows it.")
    window: WindowArg


class CompareArgs(Args):
    a: WindowArg
    b: WindowArg
    like_for_like: bool = Field(
        description="When one window is still running (this month so far), compare only as "
        "much of the earlier one as has elapsed of it: days 1-4 of each, to the same local time."
    )


class ExplainArgs(Args):
    window: WindowArg
    against: Literal["previous", "usual"] = Field(
        description="previous: the equal period just before (a day, a week, a month); "
        "usual: the mean of up to 3 such periods before. Ignored when baseline is given."
    )
    baseline: WindowArg | None = Field(
        description='Compare with this window instead ("than last month"); else null.'
    )


class ProjectArgs(Args):
    window: WindowArg = Field(description="A period still running: today, this_week or this_month.")


class AdviceArgs(Args):
    device_name: str | None = Field(
        max_length=80, description="The device the person wants to run, or null."
    )


class NoArgs(Args):
    pass


class FindDeviceArgs(Args):
    name: str = Field(max_length=80, description="A device name or part of one.")


class ProposeArgs(Args):
    device_name: str = Field(max_length=80)
    op: Op
    value: str = Field(
        max_length=8,
        description="ON or OFF for SET_POWER; amps 6-32 for SET_CHARGE_CURRENT; "
        "percent 0-100 for SET_BATTERY_RESERVE.",
    )


# -- results ---------------------------------------------------------------------------


class EnergySummary(Result):
    window: WindowOut
    totals: Totals
    self_consumption_kwh: float
    self_consumption_pct: float | None
    top_devices: list[DeviceKwh]
    other_devices: int
    data_quality: Quality


class TopDevices(Result):
    window: WindowOut
    devices: list[DeviceKwh]


class Bucket(_Frozen):
    start: datetime
    end: datetime
    kwh: float


class DeviceUsage(Result):
    device: str
    kind: str
    window: WindowOut
    kwh: float
    kwh_negative: float
    step: Step
    buckets: list[Bucket]


class DeviceChange(_Frozen):
    name: str
    kwh_a: float
    kwh_b: float
    change_kwh: float


class Comparison(Result):
    a: WindowOut
    b: WindowOut
    like_for_like: bool  # the earlier window was cut to the span elapsed of the running one
    totals_a: Totals
    totals_b: Totals
    consumption_change_kwh: float  # against the baseline scaled to the window's days
    consumption_change_pct: float | None
    cost_change: float
    devices_changed_most: list[DeviceChange]  # consuming devices, largest change first


class CostPart(_Frozen):
    kind: explain.PartKind
    cost: float
    kwh: float | None
    device: str | None


class CostExplanation(Result):
    """The window's estimated cost against its baseline's, and the difference in parts
    that sum to it (telemetry.explain says what each part is)."""

    window: WindowOut
    baseline: list[WindowOut]  # the periods whose mean is the baseline
    baseline_periods: int  # how many
    against: Literal["previous", "usual", "window"]
    like_for_like: bool  # the baseline periods were cut to the span elapsed of the window
    currency: str
    cost: float
    baseline_cost: float
    change: float
    change_pct: float | None
    local_days: int
    baseline_days: float
    baseline_price_per_kwh: float
    consumption_kwh: float
    baseline_consumption_kwh: float  # the mean, not scaled to the window's days
    consumption_change_kwh: float
    consumption_change_pct: float | None
    parts: list[CostPart]  # days, fixed charges, price, solar, storage, unmetered, then
    # the consuming devices, largest part first


class CostProjection(Result):
    """What the running window is on course to cost by its end: a projection, not a
    measurement (telemetry.projection says how). Only the projected_* figures are
    projected; the rest are measured."""

    window: WindowOut  # so far
    period_end: datetime
    currency: str
    cost_so_far: float
    remaining_days: float
    history_days: int  # the whole local days before today the rate is taken from
    daily_mean_cost: float
    daily_sd_cost: float
    fixed_charges_to_come: float
    coverage: float  # nominal, of the range (the backtest measures less: telemetry.projection)
    projected_cost: float
    projected_low: float
    projected_high: float


class PriceSpan(_Frozen):
    days: list[str]
    start: str  # HH:MM local
    end: str  # HH:MM local, 24:00 for the end of the day
    price_per_kwh: float


class TariffAdvice(Result):
    """When import is cheapest on the household's tariff (its time-of-use periods), and what
    a typical run of the device uses and costs then and at the dearest hours."""

    currency: str
    flat: bool  # the same price at every hour
    cheapest_price_per_kwh: float
    dearest_price_per_kwh: float
    cheapest: list[PriceSpan]  # empty for a flat tariff
    device: str | None
    history_days: int  # the whole days before today its runs are read from
    runs_seen: int
    typical_run_kwh: float | None  # the median run
    run_cost_cheapest: float | None
    run_cost_dearest: float | None


class CostBreakdown(Result):
    window: WindowOut
    currency: str
    import_kwh: float
    import_cost: float
    fixed_charges: float
    local_days: int
    estimated_cost: float
    export_kwh: float
    export_credit: float
    net_cost: float
    import_price_per_kwh: float
    export_price_per_kwh: float
    time_of_use_periods: int


class DeviceCost(Result):
    """A device's energy at the import price of the quarter hours it used it in."""

    device: str
    kind: str
    window: WindowOut
    currency: str
    kwh: float
    cost: float
    import_price_per_kwh: float
    time_of_use_periods: int


class GridExchange(Result):
    window: WindowOut
    import_kwh: float
    export_kwh: float
    net_import_kwh: float


class SolarSummary(Result):
    window: WindowOut
    production_kwh: float
    self_consumed_kwh: float
    self_consumption_pct: float | None
    exported_kwh: float


class LiveDevice(_Frozen):
    name: str
    kind: str
    watts: float | None
    age_seconds: float | None
    stale: bool


class LiveStatus(Result):
    house_load_watts: float
    solar_watts: float
    grid_import_watts: float
    grid_export_watts: float
    devices: list[LiveDevice]
    other_devices: int


class FoundDevice(_Frozen):
    name: str
    kind: str
    controllable: bool
    operations: list[str]


class FoundDevices(Result):
    devices: list[FoundDevice]


class Proposal(Result):
    device_name: str
    op: Op
    value: str
    command: dict[str, str]
    requires_consent: bool


# -- helpers ---------------------------------------------------------------------------


def _window(ctx: ToolContext, arg: WindowArg, field: str) -> windows.Window:
    try:
        return resolve(arg, timezone=ctx.household.timezone, now=ctx.now)
    except windows.WindowError as exc:
        raise ToolFailure(exc.code, exc.message, field) from None


def _window_out(window: windows.Window) -> WindowOut:
    return WindowOut(name=window.name, start=window.start, end=window.end, timezone=window.timezone)


async def _report(ctx: ToolContext, window: windows.Window) -> queries.EnergyReport:
    return await queries.energy_report(ctx.conn, ctx.household, window, now=ctx.now, cap=ctx.cap)


def _totals(report: queries.EnergyReport) -> Totals:
    t, c = report.totals, report.cost
    return Totals(
        consumption_kwh=t.consumption_kwh,
        solar_kwh=t.solar_kwh,
        grid_import_kwh=t.import_kwh,
        grid_export_kwh=t.export_kwh,
        battery_charge_kwh=t.battery_charge_kwh,
        battery_discharge_kwh=t.battery_discharge_kwh,
        estimated_cost=c.total,
        export_credit=c.export_credit,
        net_cost=c.net,
        currency=c.currency,
    )


def _consuming(report: queries.EnergyReport) -> list[DeviceKwh]:
    return [
        DeviceKwh(name=f.device.name, kind=f.device.kind, kwh=f.kwh, share_of_consumption=f.share)
        for f in report.devices
        if f.share is not None
    ]


def device_named(ctx: ToolContext, name: str, field: str = "device_name") -> Device:
    """The household's device with this name (ignoring case and outer spaces)."""
    wanted = name.strip().casefold()
    for device in ctx.devices:
        if device.name.casefold() == wanted:
            return device
    known = ", ".join(repr(d.name) for d in ctx.devices[:12])
    raise ToolFailure("unknown_device", f"No device named {name[:80]!r}. Devices: {known}.", field)


def _operations(device: Device) -> list[str]:
    if not device.controllable:
        return []
    return [op for op, kinds in OPS.items() if device.kind in kinds]


# -- the tools -------------------------------------------------------------------------


async def energy_summary(ctx: ToolContext, args: WindowOnly) -> EnergySummary:
    report = await _report(ctx, _window(ctx, args.window, "window"))
    consuming = _consuming(report)
    return EnergySummary(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        totals=_totals(report),
        self_consumption_kwh=report.self_consumption_kwh,
        self_consumption_pct=report.self_consumption_pct,
        top_devices=consuming[:SUMMARY_DEVICES],
        other_devices=max(0, len(consuming) - SUMMARY_DEVICES),
        data_quality=Quality(**report.quality.public()),
    )


async def top_devices(ctx: ToolContext, args: TopDevicesArgs) -> TopDevices:
    report = await _report(ctx, _window(ctx, args.window, "window"))
    return TopDevices(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        devices=_consuming(report)[: args.limit],
    )


async def device_usage(ctx: ToolContext, args: DeviceUsageArgs) -> DeviceUsage:
    device = device_named(ctx, args.device_name)
    window = _window(ctx, args.window, "window")
    if windows.most_buckets(window, args.step) > MAX_BUCKETS:
        raise ToolFailure(
            "too_many_buckets",
            f"At most {MAX_BUCKETS} buckets: use a larger step or a shorter window.",
            "step",
        )
    edges = windows.series_edges(window, args.step)
    series = await queries.energy_series(
        ctx.conn, ctx.household, window, edges, now=ctx.now, cap=ctx.cap, only=[device]
    )
    fresh = await queries.fresh_as_of(ctx.conn, [device], window)
    kind = device.kind
    key = {"solar": "solar_kwh", "grid": "grid_import_kwh", "battery": "battery_charge_kwh"}.get(
        kind, "consumption_kwh"
    )
    negative = {"grid": "grid_export_kwh", "battery": "battery_discharge_kwh"}.get(kind)
    buckets = [Bucket(start=b["start"], end=b["end"], kwh=b[key]) for b in series]
    return DeviceUsage(
        fresh_as_of=fresh,
        device=device.name,
        kind=kind,
        window=_window_out(window),
        kwh=sum(b[key] for b in series),
        kwh_negative=sum(b[negative] for b in series) if negative else 0.0,
        step=args.step,
        buckets=buckets,
    )


async def compare_windows(ctx: ToolContext, args: CompareArgs) -> Comparison:
    window_a, window_b = _window(ctx, args.a, "a"), _window(ctx, args.b, "b")
    cut = False
    if args.like_for_like:  # the earlier, whole window is cut to the running one's span
        if window_a.end >= ctx.now and window_b.end <= window_a.start:
            window_b, cut = windows.same_span(window_b, window_a), True
        elif window_b.end >= ctx.now and window_a.end <= window_b.start:
            window_a, cut = windows.same_span(window_a, window_b), True
    a = await _report(ctx, window_a)
    b = await _report(ctx, window_b)
    change = a.totals.consumption_kwh - b.totals.consumption_kwh
    base = b.totals.consumption_kwh
    freshest = [f for f in (a.fresh_as_of, b.fresh_as_of) if f is not None]
    kwh_b = {f.device.id: f.kwh for f in b.devices}
    changes = sorted(
        (
            DeviceChange(
                name=f.device.name,
                kwh_a=f.kwh,
                kwh_b=kwh_b.get(f.device.id, 0.0),
                change_kwh=f.kwh - kwh_b.get(f.device.id, 0.0),
            )
            for f in a.devices
            if f.device.kind in queries.CONSUMING
        ),
        key=lambda d: (-abs(d.change_kwh), d.name),
    )
    return Comparison(
        fresh_as_of=max(freshest) if freshest else None,
        a=_window_out(a.window),
        b=_window_out(b.window),
        like_for_like=cut,
        totals_a=_totals(a),
        totals_b=_totals(b),
        consumption_change_kwh=change,
        consumption_change_pct=change / base * 100 if base else None,
        cost_change=a.cost.total - b.cost.total,
        devices_changed_most=changes[:3],
    )


async def explain_cost(ctx: ToolContext, args: ExplainArgs) -> CostExplanation:
    window = _window(ctx, args.window, "window")
    if args.baseline is not None:
        against: Literal["previous", "usual", "window"] = "window"
        wanted = [_window(ctx, args.baseline, "baseline")]
        if wanted[0].start < window.end and window.start < wanted[0].end:
            raise ToolFailure("overlapping", "The baseline overlaps the window.", "baseline")
    else:
        against = args.against
        count = 1 if against == "previous" else USUAL_PERIODS
        wanted = [_window(ctx, w, "window") for w in earlier(args.window, window, count)]
    running = window.end >= ctx.now
    if running:  # this month so far against as much of each earlier month
        wanted = [windows.same_span(w, window) if w.end <= window.start else w for w in wanted]
    covered, oldest = await _covered(ctx, wanted)
    if not covered:
        raise ToolFailure(
            "no_history",
            f"{_since(oldest, ctx.household.timezone)}, after the period to compare with "
            "began, so there is nothing to explain it against yet.",
            "baseline" if args.baseline is not None else "against",
        )
    reports = [await _report(ctx, w) for w in (window, *covered)]
    report, baselines = reports[0], reports[1:]
    tariff = ctx.household.tariff
    why = explain.explain(report, baselines, tariff.import_price_per_kwh)
    # Against the baseline scaled to the window's days, as the parts are.
    used = why.consumption_kwh - why.baseline_consumption_kwh * why.scale
    freshest = [r.fresh_as_of for r in reports if r.fresh_as_of is not None]
    return CostExplanation(
        fresh_as_of=max(freshest) if freshest else None,
        window=_window_out(report.window),
        baseline=[_window_out(b.window) for b in baselines],
        baseline_periods=len(baselines),
        against=against,
        like_for_like=running,
        currency=tariff.currency,
        cost=why.cost,
        baseline_cost=why.baseline_cost,
        change=why.change,
        change_pct=why.change / why.baseline_cost * 100 if why.baseline_cost else None,
        local_days=why.days,
        baseline_days=why.baseline_days,
        baseline_price_per_kwh=why.baseline_price,
        consumption_kwh=why.consumption_kwh,
        baseline_consumption_kwh=why.baseline_consumption_kwh,
        consumption_change_kwh=used,
        consumption_change_pct=used / why.baseline_consumption_kwh * 100
        if why.baseline_consumption_kwh
        else None,
        parts=[CostPart(kind=p.kind, cost=p.cost, kwh=p.kwh, device=p.device) for p in why.parts],
    )


def _today(ctx: ToolContext) -> date:
    return ctx.now.astimezone(ZoneInfo(ctx.household.timezone)).date()


def _dates(ctx: ToolContext, first: date, last: date) -> windows.Window:
    """Whole local days first..last of the household's zone."""
    return _window(ctx, WindowArg(name="dates", first_date=first, last_date=last), "window")


async def _covered(
    ctx: ToolContext, wanted: list[windows.Window]
) -> tuple[list[windows.Window], datetime | None]:
    """The windows the household's readings cover from their start, and the oldest reading."""
    oldest = await queries.first_reading(ctx.conn, list(ctx.devices))
    return [w for w in wanted if oldest is not None and oldest <= w.start], oldest


def consumer_named(ctx: ToolContext, name: str, instead: str) -> Device:
    """device_named, for a consuming device only; `instead` tells what to ask for the rest."""
    device = device_named(ctx, name)
    if device.kind not in queries.CONSUMING:  # the rest measure where energy came from
        raise ToolFailure(
            "not_a_consumer", f"{device.name!r} is a {device.kind} device: {instead}", "device_name"
        )
    return device


def _since(oldest: datetime | None, timezone: str) -> str:
    if oldest is None:
        return "there are no readings"
    return f"the readings begin on {oldest.astimezone(ZoneInfo(timezone)):%a %-d %b %Y}"


async def project_cost(ctx: ToolContext, args: ProjectArgs) -> CostProjection:
    window = _window(ctx, args.window, "window")
    tz = ZoneInfo(ctx.household.timezone)
    today = _today(ctx)
    until = period_end(args.window.name, today)
    if until is None or window.end < ctx.now:
        raise ToolFailure(
            "not_running",
            "Only a period still running (today, this_week, this_month) has a projection; "
            "ask what a past one cost.",
            "window",
        )
    end = windows.local_day_start(until, tz)
    days = [today - timedelta(days=k) for k in range(projection.HISTORY_DAYS, 0, -1)]
    covered, oldest = await _covered(ctx, [_dates(ctx, d, d) for d in days])
    if len(covered) < projection.MIN_HISTORY_DAYS:
        raise ToolFailure(
            "no_history",
            f"a projection needs {projection.MIN_HISTORY_DAYS} whole days of readings before "
            f"today, and {_since(oldest, ctx.household.timezone)}.",
            "window",
        )
    report = await _report(ctx, window)
    daily = await queries.daily_import_costs(
        ctx.conn, ctx.household, covered, now=ctx.now, cap=ctx.cap
    )
    whole = windows.Window(window.name, window.start, end, window.timezone)
    tariff = ctx.household.tariff
    to_come = tariff.daily_fixed_charge * (len(whole.local_days()) - report.cost.local_days)
    p = projection.project(report.cost.total, daily, (end - ctx.now) / timedelta(days=1), to_come)
    return CostProjection(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        period_end=end,
        currency=tariff.currency,
        cost_so_far=p.so_far,
        remaining_days=p.remaining_days,
        history_days=p.history_days,
        daily_mean_cost=p.daily_mean,
        daily_sd_cost=p.daily_sd,
        fixed_charges_to_come=p.fixed_remaining,
        coverage=projection.COVERAGE,
        projected_cost=p.expected,
        projected_low=p.low,
        projected_high=p.high,
    )


ADVICE_DAYS = 14


async def tariff_advice(ctx: ToolContext, args: AdviceArgs) -> TariffAdvice:
    tariff = ctx.household.tariff
    low, high = advice.price_range(tariff)
    device = (
        consumer_named(ctx, args.device_name, "it uses none.")
        if args.device_name is not None
        else None
    )
    found: list[float] = []
    fresh = None
    if device is not None:
        today = _today(ctx)
        window = _dates(ctx, today - timedelta(days=ADVICE_DAYS), today - timedelta(days=1))
        found = await queries.device_runs(ctx.conn, device, window, now=ctx.now, cap=ctx.cap)
        fresh = await queries.fresh_as_of(ctx.conn, [device], window)
    typical = advice.typical_run(found)
    return TariffAdvice(
        fresh_as_of=fresh,
        currency=tariff.currency,
        flat=low == high,
        cheapest_price_per_kwh=low,
        dearest_price_per_kwh=high,
        cheapest=[
            PriceSpan(days=list(s.days), start=s.start, end=s.end, price_per_kwh=s.price)
            for s in advice.cheapest(tariff)
        ],
        device=device.name if device is not None else None,
        history_days=ADVICE_DAYS,
        runs_seen=len(found),
        typical_run_kwh=typical,
        run_cost_cheapest=typical * low if typical is not None else None,
        run_cost_dearest=typical * high if typical is not None else None,
    )


async def cost_breakdown(ctx: ToolContext, args: WindowOnly) -> CostBreakdown:
    report = await _report(ctx, _window(ctx, args.window, "window"))
    c, tariff = report.cost, ctx.household.tariff
    return CostBreakdown(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        currency=c.currency,
        import_kwh=report.totals.import_kwh,
        import_cost=c.import_cost,
        fixed_charges=c.fixed_charges,
        local_days=c.local_days,
        estimated_cost=c.total,
        export_kwh=report.totals.export_kwh,
        export_credit=c.export_credit,
        net_cost=c.net,
        import_price_per_kwh=tariff.import_price_per_kwh,
        export_price_per_kwh=tariff.export_price_per_kwh,
        time_of_use_periods=len(tariff.time_of_use),
    )


async def device_cost(ctx: ToolContext, args: DeviceArgs) -> DeviceCost:
    device = consumer_named(ctx, args.device_name, "ask cost_breakdown for the house.")
    window = _window(ctx, args.window, "window")
    priced = await queries.device_cost(
        ctx.conn, ctx.household, device, window, now=ctx.now, cap=ctx.cap
    )
    tariff = ctx.household.tariff
    return DeviceCost(
        fresh_as_of=await queries.fresh_as_of(ctx.conn, [device], window),
        device=device.name,
        kind=device.kind,
        window=_window_out(window),
        currency=tariff.currency,
        kwh=priced.kwh,
        cost=priced.cost,
        import_price_per_kwh=tariff.import_price_per_kwh,
        time_of_use_periods=len(tariff.time_of_use),
    )


async def grid_exchange(ctx: ToolContext, args: WindowOnly) -> GridExchange:
    report = await _report(ctx, _window(ctx, args.window, "window"))
    t = report.totals
    return GridExchange(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        import_kwh=t.import_kwh,
        export_kwh=t.export_kwh,
        net_import_kwh=t.import_kwh - t.export_kwh,
    )


async def solar_summary(ctx: ToolContext, args: WindowOnly) -> SolarSummary:
    report = await _report(ctx, _window(ctx, args.window, "window"))
    return SolarSummary(
        fresh_as_of=report.fresh_as_of,
        window=_window_out(report.window),
        production_kwh=report.totals.solar_kwh,
        self_consumed_kwh=report.self_consumption_kwh,
        self_consumption_pct=report.self_consumption_pct,
        exported_kwh=report.totals.export_kwh,
    )


async def live_status(ctx: ToolContext, args: NoArgs) -> LiveStatus:
    live = await live_power.snapshot(ctx.conn, ctx.household, now=ctx.now, cap=ctx.cap)
    devices = sorted(live["devices"], key=lambda d: (-(d["watts"] or 0.0), d["name"].lower()))
    fresh = live["fresh_as_of"]
    return LiveStatus(
        fresh_as_of=datetime.fromisoformat(fresh) if fresh else None,
        house_load_watts=live["house_load_watts"],
        solar_watts=live["solar_watts"],
        grid_import_watts=live["grid_import_watts"],
        grid_export_watts=live["grid_export_watts"],
        devices=[
            LiveDevice(
                name=d["name"],
                kind=d["kind"],
                watts=d["watts"],
                age_seconds=d["age_seconds"],
                stale=d["stale"],
            )
            for d in devices[:MAX_TOP]
        ],
        other_devices=max(0, len(devices) - MAX_TOP),
    )


async def find_device(ctx: ToolContext, args: FindDeviceArgs) -> FoundDevices:
    wanted = args.name.strip().casefold()
    found = [d for d in ctx.devices if wanted and wanted in d.name.casefold()][:10]
    return FoundDevices(
        fresh_as_of=None,
        devices=[
            FoundDevice(
                name=d.name, kind=d.kind, controllable=d.controllable, operations=_operations(d)
            )
            for d in found
        ],
    )


def _check_value(op: str, value: str) -> str:
    """The value in its one accepted spelling, or ToolFailure."""
    text = value.strip().upper()
    if op == "SET_POWER":
        if text not in ("ON", "OFF"):
            raise ToolFailure("invalid_value", "SET_POWER takes ON or OFF.", "value")
        return text
    low, high = CHARGE_AMPS if op == "SET_CHARGE_CURRENT" else RESERVE_PERCENT
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise ToolFailure(
            "invalid_value", f"{op} takes a whole number from {low} to {high}.", "value"
        )
    return str(int(text))


def validate_proposal(device: Device, op: str, value: str) -> str:
    """The value in its one accepted spelling if `device` takes `op` with it, else
    ToolFailure. The tool below and the stored proposals (agent.actions) both check here,
    so the model and the server refuse exactly the same changes."""
    if not device.controllable:
        raise ToolFailure(
            "not_controllable", f"{device.name!r} cannot be switched remotely.", "device_name"
        )
    kinds = OPS.get(op)
    if kinds is None:
        raise ToolFailure(
            "unsupported_operation", f"No operation {op[:40]!r}: one of {', '.join(OPS)}.", "op"
        )
    if device.kind not in kinds:
        raise ToolFailure(
            "unsupported_operation", f"A {device.kind} device does not take {op}.", "op"
        )
    return _check_value(op, value)


async def propose_device_action(ctx: ToolContext, args: ProposeArgs) -> Proposal:
    """Checks a change and returns it as a proposal; it never executes anything."""
    device = device_named(ctx, args.device_name)
    value = validate_proposal(device, args.op, args.value)
    live = await live_power.snapshot(ctx.conn, ctx.household, now=ctx.now, cap=ctx.cap)
    fresh = live["fresh_as_of"]
    return Proposal(
        fresh_as_of=datetime.fromisoformat(fresh) if fresh else None,
        device_name=device.name,
        op=args.op,
        value=value,
        command={"op": args.op, "device_name": device.name, "value": value},
        requires_consent=True,
    )


def _tool(
    name: str, description: str, args: type[Any], result: type[Any], run: Any, *branches: Branch
) -> Tool[Any, Any]:
    return Tool(name, description, args, result, frozenset(branches), run)


TOOLS: dict[str, Tool[Any, Any]] = {
    t.name: t
    for t in (
        _tool(
            "energy_summary",
            "Energy totals, top devices and data quality for a window.",
            WindowOnly,
            EnergySummary,
            energy_summary,
            "energy",
        ),
        _tool(
            "top_devices",
            "The devices that used the most energy in a window.",
            TopDevicesArgs,
            TopDevices,
            top_devices,
            "energy",
        ),
        _tool(
            "device_usage",
            "One device's energy in a window, with a series by step.",
            DeviceUsageArgs,
            DeviceUsage,
            device_usage,
            "energy",
        ),
        _tool(
            "compare_windows",
            "Energy and cost of window a against window b.",
            CompareArgs,
            Comparison,
            compare_windows,
            "energy",
            "cost",
        ),
        _tool(
            "explain_cost",
            "Why a window cost what it did: its estimated cost against the previous equal "
            "period, the usual (mean of the last 3) or a given window, with the difference "
            "split into parts that sum to it: days, fixed charges, price (time of use), each "
            "device's change of use, solar used at home, battery storage, unmetered load.",
            ExplainArgs,
            CostExplanation,
            explain_cost,
            "energy",
            "cost",
        ),
        _tool(
            "project_cost",
            "What a period still running (today, this week, this month) is on course to cost "
            "by its end, with an 80% range, from the household's last 14 whole days: a "
            "projection, to be stated as one.",
            ProjectArgs,
            CostProjection,
            project_cost,
            "cost",
        ),
        _tool(
            "tariff_advice",
            "When import is cheapest on the household's tariff (or that a flat tariff costs "
            "the same at every hour), and a device's typical run: its energy and its cost at "
            "the cheapest and the dearest hours.",
            AdviceArgs,
            TariffAdvice,
            tariff_advice,
            "cost",
        ),
        _tool(
            "cost_breakdown",
            "Estimated cost, fixed charges and export credit for a window.",
            WindowOnly,
            CostBreakdown,
            cost_breakdown,
            "cost",
        ),
        _tool(
            "device_cost",
            "One consuming device's energy in a window at the import price of the quarter "
            "hours it used it in (no fixed charges, solar not subtracted).",
            DeviceArgs,
            DeviceCost,
            device_cost,
            "cost",
        ),
        _tool(
            "grid_exchange",
            "Energy imported from and exported to the grid in a window.",
            WindowOnly,
            GridExchange,
            grid_exchange,
            "energy",
            "cost",
        ),
        _tool(
            "solar_summary",
            "Solar production, self-consumption and export in a window.",
            WindowOnly,
            SolarSummary,
            solar_summary,
            "energy",
        ),
        _tool(
            "live_status",
            "Power now: each device, house load, solar, grid.",
            NoArgs,
            LiveStatus,
            live_status,
            "energy",
            "action",
        ),
        _tool(
            "find_device",
            "Devices whose name contains the text, with what they can do.",
            FindDeviceArgs,
            FoundDevices,
            find_device,
            "action",
        ),
        _tool(
            "propose_device_action",
            "Check a device change and propose it to the user; it is carried out only "
            "after the user explicitly agrees.",
            ProposeArgs,
            Proposal,
            propose_device_action,
            "action",
        ),
    )
}


def for_branch(branch: Branch) -> list[Tool[Any, Any]]:
    """The tools a branch exposes, in a fixed order."""
    return [t for t in TOOLS.values() if branch in t.branches]


@functools.cache
def definitions(branch: Branch) -> tuple[ToolDefinition, ...]:
    """The branch's tool definitions, built once (generating a JSON schema costs more
    than the rest of a turn's preparation). Shared: do not mutate."""
    return tuple(t.definition() for t in for_branch(branch))
