"""The model's tools: strict-mode definitions, figures equal to the independent reference,
one household only, and structured errors the model can correct."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from demo.seed import seed_household
from demo.synthetic import demo_household, generate
from evals import reference
from telemetry import households
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff, TimeOfUsePeriod
from tools import base
from tools.catalog import TOOLS, for_branch
from tools.windows import WindowArg, resolve

CAP = timedelta(minutes=15)
DAYS = 4.0  # of readings: 3 whole days before today, as a projection needs
TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08)
ZONE = "Australia/Lord_Howe"

# JSON Schema keywords OpenAI's strict mode accepts (its Structured Outputs "supported
# schemas"); anything else, such as a default, is refused when the tool is registered.
ALLOWED = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "anyOf", "$defs", "$ref", "description", "title", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems", "minLength", "maxLength",
}  # fmt: skip


def _strict_problems(node: Any, path: str = "$") -> list[str]:
    problems: list[str] = []
    if isinstance(node, dict):
        for key in node:
            if key not in ALLOWED:
                problems.append(f"{path}: keyword {key!r} is not supported in strict mode")
        if node.get("type") == "object" or "properties" in node:
            props = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(props):
                problems.append(f"{path}: every property must be required")
        for key in ("properties", "$defs"):
            for name, child in node.get(key, {}).items():
                problems += _strict_problems(child, f"{path}.{name}")
        for key in ("items",):
            if key in node:
                problems += _strict_problems(node[key], f"{path}[]")
        for i, child in enumerate(node.get("anyOf", [])):
            problems += _strict_problems(child, f"{path}|{i}")
    return problems


def test_every_tool_definition_is_valid_in_strict_mode() -> None:
    assert len(TOOLS) >= 10
    for tool in TOOLS.values():
        definition = tool.definition()
        assert definition.name == tool.name
        params = definition.parameters
        assert params["type"] == "object"  # the root is an object, never anyOf
        assert _strict_problems(params) == [], tool.name
        # The household is never the model's to choose.
        text = json.dumps(params).lower()
        assert "household" not in text, tool.name


def test_each_branch_sees_only_its_tools() -> None:
    names = {b: {t.name for t in for_branch(b)} for b in ("energy", "cost", "action")}
    assert "propose_device_action" in names["action"]
    assert "propose_device_action" not in names["energy"] | names["cost"]
    assert "cost_breakdown" in names["cost"]
    assert "cost_breakdown" not in names["energy"] | names["action"]
    assert {"energy_summary", "top_devices", "device_usage", "solar_summary"} <= names["energy"]


@dataclasses.dataclass
class Home:
    ctx: base.ToolContext
    readings: list[reference.Raw]
    ids: dict[str, UUID]
    other: households.Device


@pytest.fixture
async def home(pool: asyncpg.Pool) -> AsyncIterator[Home]:
    spec = dataclasses.replace(demo_household(), timezone=ZONE)
    end = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    async with pool.acquire() as conn:
        seeded = await seed_household(conn, spec, tariff=TARIFF, days=DAYS, seed=4, end=end)
        other = await seed_household(
            conn, dataclasses.replace(spec, name="Other"), tariff=TARIFF, days=0.1, seed=5, end=end
        )
        await refresh_all(conn, cap=CAP, now=end - timedelta(hours=3))
        devices = await households.list_devices(conn, seeded.household.id)
        # A device only the other household has: its name must mean nothing here.
        await households.create_device(
            conn,
            household_id=other.household.id,
            name="Sauna",
            kind="consumer",
            controllable=True,
            max_watts=9000,
        )
        other_devices = await households.list_devices(conn, other.household.id)
        start = end - timedelta(days=DAYS)
        readings = [
            reference.Raw(r.device_key, r.ts, r.watts)
            for r in generate(spec, start=start, days=DAYS, seed=4)
        ]
        ctx = base.ToolContext(conn, seeded.household, devices, datetime.now(UTC), CAP)
        yield Home(ctx, readings, seeded.device_ids, other_devices[0])


async def _call(home: Home, name: str, args: dict[str, Any], branch: base.Branch = "energy") -> Any:
    return await base.call(TOOLS, name, json.dumps(args), home.ctx, branch)


def _with_tariff(home: Home, tariff: Tariff) -> None:
    household = dataclasses.replace(home.ctx.household, tariff=tariff)
    home.ctx = dataclasses.replace(home.ctx, household=household)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-9


def _figures(
    home: Home, start: datetime, end: datetime, tariff: Tariff = TARIFF
) -> reference.Figures:
    return reference.figures(
        [reference.Dev(d.key, d.kind) for d in demo_household().devices],
        home.readings,
        start=start,
        end=end,
        now=home.ctx.now,
        cap=CAP,
        tariff=tariff,
        timezone=ZONE,
    )


def _want(home: Home, arg: WindowArg) -> reference.Figures:
    window = resolve(arg, timezone=ZONE, now=home.ctx.now)
    return _figures(home, window.start, window.end)


YESTERDAY = {"name": "yesterday", "first_date": None, "last_date": None}


async def test_energy_summary_and_cost_match_the_reference(home: Home) -> None:
    want = _want(home, WindowArg.model_validate(YESTERDAY))
    got = await _call(home, "energy_summary", {"window": YESTERDAY})
    totals = got["totals"]
    assert _close(totals["consumption_kwh"], want.consumption_kwh)
    assert _close(totals["solar_kwh"], want.solar_kwh)
    assert _close(totals["grid_import_kwh"], want.import_kwh)
    assert _close(totals["grid_export_kwh"], want.export_kwh)
    assert got["fresh_as_of"] is not None
    assert len(got["top_devices"]) <= 5
    cost = await _call(home, "cost_breakdown", {"window": YESTERDAY}, "cost")
    assert _close(cost["estimated_cost"], want.cost)
    assert _close(cost["export_credit"], want.export_credit)
    assert _close(cost["net_cost"], want.net_cost)


async def test_device_usage_matches_the_reference_and_sums_its_buckets(home: Home) -> None:
    today = home.ctx.now.astimezone(ZoneInfo(ZONE)).date()
    first = (today - timedelta(days=2)).isoformat()
    window = {"name": "dates", "first_date": first, "last_date": first}
    want = _want(home, WindowArg.model_validate_json(json.dumps(window)))
    got = await _call(
        home, "device_usage", {"device_name": "heat PUMP", "window": window, "step": "1h"}
    )
    assert got["device"] == "Heat pump"
    assert _close(got["kwh"], want.per_device["heat_pump"][0])
    assert _close(sum(b["kwh"] for b in got["buckets"]), got["kwh"])
    assert len(got["buckets"]) in (23, 24, 25)  # Lord Howe shifts by half an hour, not one


TIME_OF_USE = Tariff(
    currency="EUR",
    import_price_per_kwh=0.3,
    export_price_per_kwh=0.08,
    time_of_use=(
        TimeOfUsePeriod(days=("mon", "tue", "wed", "thu", "fri"), start="07:00", end="21:30",
                        import_price_per_kwh=0.41),
        TimeOfUsePeriod(days=("sat", "sun"), start="00:00", end="06:15",
                        import_price_per_kwh=0.12),
    ),
)  # fmt: skip


@pytest.mark.parametrize("tariff", [TARIFF, TIME_OF_USE], ids=["flat", "time-of-use"])
async def test_a_devices_cost_is_its_energy_at_the_import_price_of_each_minute(
    home: Home, tariff: Tariff
) -> None:
    _with_tariff(home, tariff)
    wants = []
    for window in (_w("today"), YESTERDAY, _w("last_3_days")):
        arg = WindowArg.model_validate(window)
        bounds = resolve(arg, timezone=ZONE, now=home.ctx.now)
        want = _figures(home, bounds.start, bounds.end, tariff)
        wants.append(want)
        for name, key in (("Heat pump", "heat_pump"), ("EV charger", "ev_charger")):
            got = await _call(home, "device_cost", {"device_name": name, "window": window}, "cost")
            assert got["device"] == name
            assert _close(got["kwh"], want.per_device[key][0]), (name, window)
            assert _close(got["cost"], want.device_cost[key]), (name, window)
            assert got["time_of_use_periods"] == len(tariff.time_of_use)
    three_days = wants[-1]
    assert three_days.per_device["heat_pump"][0] > 1
    if tariff.time_of_use:  # the periods make a difference here, or the test proves nothing
        flat = three_days.per_device["heat_pump"][0] * tariff.import_price_per_kwh
        assert not _close(three_days.device_cost["heat_pump"], flat)
    solar = await _call(
        home, "device_cost", {"device_name": "Solar inverter", "window": YESTERDAY}, "cost"
    )
    assert solar["error"]["code"] == "not_a_consumer"


async def test_like_for_like_cuts_the_whole_window_to_the_span_elapsed_of_the_running_one(
    home: Home,
) -> None:
    tz = ZoneInfo(ZONE)
    local_now = home.ctx.now.astimezone(tz)
    today = resolve(WindowArg.model_validate(_w("today")), timezone=ZONE, now=home.ctx.now)
    whole = resolve(WindowArg.model_validate(YESTERDAY), timezone=ZONE, now=home.ctx.now)
    # Yesterday to the wall time it is now: the independent reading of "the same span".
    wall = datetime.combine(local_now.date() - timedelta(days=1), local_now.time(), tzinfo=tz)
    cut_end = min(max(wall.astimezone(UTC), whole.start), whole.end)
    args = {"a": _w("today"), "b": YESTERDAY}
    got = await _call(home, "compare_windows", {**args, "like_for_like": True})
    assert got["like_for_like"] is True
    assert datetime.fromisoformat(got["b"]["start"]) == whole.start
    assert datetime.fromisoformat(got["b"]["end"]) == cut_end
    want_a = _figures(home, today.start, today.end)
    want_b = _figures(home, whole.start, cut_end)
    assert _close(got["totals_a"]["consumption_kwh"], want_a.consumption_kwh)
    assert _close(got["totals_b"]["consumption_kwh"], want_b.consumption_kwh)
    assert _close(got["cost_change"], want_a.cost - want_b.cost)
    consuming = {d.key: d.kind for d in demo_household().devices}
    key_of = {uuid: key for key, uuid in home.ids.items()}
    names = {d.name: key_of[d.id] for d in home.ctx.devices}
    changes = got["devices_changed_most"]
    assert changes, "the demo household's consumers changed between the two spans"
    for change in changes:
        key = names[change["name"]]  # a device of this household, never the other's Sauna
        assert consuming[key] in ("consumer", "ev_charger")
        assert _close(change["kwh_a"], want_a.per_device[key][0])
        assert _close(change["kwh_b"], want_b.per_device[key][0])
    sizes = [abs(c["change_kwh"]) for c in changes]
    assert sizes == sorted(sizes, reverse=True)
    # Asked for whole windows, yesterday stays whole; a window that has ended is never cut.
    plain = await _call(home, "compare_windows", {**args, "like_for_like": False})
    assert plain["like_for_like"] is False
    assert datetime.fromisoformat(plain["b"]["end"]) == whole.end
    ended = await _call(
        home, "compare_windows", {"a": YESTERDAY, "b": _w("last_3_days"), "like_for_like": True}
    )
    assert ended["like_for_like"] is False


FIXED = Tariff(
    currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08, daily_fixed_charge=0.9
)
TIME_OF_USE_FIXED = TIME_OF_USE.model_copy(update={"daily_fixed_charge": 0.9})


def _bounds(got: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(got["start"]), datetime.fromisoformat(got["end"])


async def _explained(
    home: Home, args: dict[str, Any], tariff: Tariff
) -> tuple[dict[str, Any], dict[str, float]]:
    """The tool's explanation, and the reference's of the windows it names."""
    got = await _call(home, "explain_cost", args, "cost")
    assert "error" not in got, got
    want = reference.explanation(
        [reference.Dev(d.key, d.kind) for d in demo_household().devices],
        _figures(home, *_bounds(got["window"]), tariff),
        [_figures(home, *_bounds(b), tariff) for b in got["baseline"]],
        flat_price=tariff.import_price_per_kwh,
    )
    return got, want


def _parted(home: Home, got: dict[str, Any]) -> dict[str, float]:
    key_of = {uuid: key for key, uuid in home.ids.items()}
    keys = {d.name: key_of[d.id] for d in home.ctx.devices}
    return {
        f"device:{keys[p['device']]}" if p["kind"] == "device" else p["kind"]: p["cost"]
        for p in got["parts"]
    }


@pytest.mark.parametrize("tariff", [FIXED, TIME_OF_USE_FIXED], ids=["flat", "time-of-use"])
async def test_an_explanations_parts_sum_to_the_change_and_are_the_references(
    home: Home, tariff: Tariff
) -> None:
    _with_tariff(home, tariff)
    today = home.ctx.now.astimezone(ZoneInfo(ZONE)).date()
    before = (today - timedelta(days=2)).isoformat()
    day_before = _w("dates", before, before)
    yesterday = resolve(WindowArg.model_validate(YESTERDAY), timezone=ZONE, now=home.ctx.now)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"window": YESTERDAY, "against": "previous", "baseline": None}, "previous"),
        # Two local days (yesterday and today so far) against one: the days part.
        (
            {
                "window": _w("dates", (today - timedelta(days=1)).isoformat(), today.isoformat()),
                "against": "usual",
                "baseline": day_before,
            },
            "window",
        ),
        ({"window": _w("today"), "against": "previous", "baseline": None}, "previous"),
    ]
    for args, against in cases:
        got, want = await _explained(home, args, tariff)
        assert got["against"] == against
        parts = _parted(home, got)
        assert set(parts) == set(want), args
        for kind, value in want.items():
            assert abs(parts[kind] - value) <= 1e-9, (args, kind, parts[kind], value)
        assert abs(sum(parts.values()) - got["change"]) <= 1e-9, args
        assert abs(got["change"] - (got["cost"] - got["baseline_cost"])) <= 1e-12
    # Yesterday's previous period is the day before it, whole.
    got, _ = await _explained(home, cases[0][0], tariff)
    [baseline] = got["baseline"]
    whole = resolve(
        WindowArg.model_validate_json(json.dumps(day_before)), timezone=ZONE, now=home.ctx.now
    )
    assert _bounds(baseline) == (whole.start, whole.end)
    assert whole.end == yesterday.start
    # Today so far is explained against the same span of yesterday.
    got, _ = await _explained(home, cases[2][0], tariff)
    assert got["like_for_like"] is True
    start, end = _bounds(got["baseline"][0])
    assert (start, end) != (yesterday.start, yesterday.end)
    assert start == yesterday.start
    # The parts that make the difference here are really there.
    got, want = await _explained(home, cases[1][0], tariff)
    assert abs(want["days"]) > 0.5  # a whole day's fixed charge and energy
    if tariff.time_of_use:
        assert abs(want["price"]) > 1e-6
    else:
        assert abs(want["price"]) <= 1e-9
    assert any(abs(v) > 0.01 for k, v in want.items() if k.startswith("device:"))


async def test_an_explanation_needs_readings_from_before_its_baseline(home: Home) -> None:
    got = await _call(
        home,
        "explain_cost",
        {"window": _w("last_7_days"), "against": "usual", "baseline": None},
        "cost",
    )
    assert got["error"]["code"] == "no_history"
    assert "readings begin on" in got["error"]["message"]


@pytest.mark.parametrize("tariff", [FIXED, TIME_OF_USE_FIXED], ids=["flat", "time-of-use"])
async def test_a_projection_is_the_references_from_the_whole_days_before_today(
    home: Home, tariff: Tariff
) -> None:
    _with_tariff(home, tariff)
    tz, now = ZoneInfo(ZONE), home.ctx.now
    today = now.astimezone(tz).date()
    first_reading = min(r.ts for r in home.readings)

    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)

    daily = []
    for k in range(14, 0, -1):
        start, end = midnight(today - timedelta(days=k)), midnight(today - timedelta(days=k - 1))
        if start >= first_reading:
            got = _figures(home, start, end, tariff)
            daily.append(got.cost - got.fixed_charges)
    assert len(daily) >= 3
    month_end = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    ends = {
        "today": today + timedelta(days=1),
        "this_week": today + timedelta(days=7 - today.weekday()),
        "this_month": month_end,
    }
    for name, until in ends.items():
        got = await _call(home, "project_cost", {"window": _w(name)}, "cost")
        assert "error" not in got, got
        bounds = resolve(WindowArg.model_validate(_w(name)), timezone=ZONE, now=now)
        so_far = _figures(home, bounds.start, bounds.end, tariff)
        days = (until - bounds.start.astimezone(tz).date()).days
        want = reference.projection(
            so_far.cost,
            daily,
            (midnight(until) - now) / timedelta(days=1),
            tariff.daily_fixed_charge * (days - so_far.local_days),
        )
        assert got["history_days"] == len(daily)
        assert _close(got["cost_so_far"], so_far.cost), name
        assert datetime.fromisoformat(got["period_end"]) == midnight(until)
        for key, value in zip(
            ("projected_cost", "projected_low", "projected_high"), want, strict=True
        ):
            assert abs(got[key] - value) <= 1e-9, (name, key, got[key], value)
        assert got["projected_low"] <= got["projected_cost"] <= got["projected_high"]
        assert got["projected_low"] >= got["cost_so_far"]
    for window in (YESTERDAY, _w("last_week")):  # over: nothing to project
        ended = await _call(home, "project_cost", {"window": window}, "cost")
        assert ended["error"]["code"] == "not_running"


async def test_advice_names_the_cheapest_hours_and_a_devices_typical_run(home: Home) -> None:
    flat = await _call(home, "tariff_advice", {"device_name": None}, "cost")
    assert (flat["flat"], flat["cheapest"], flat["device"]) == (True, [], None)
    assert flat["cheapest_price_per_kwh"] == flat["dearest_price_per_kwh"] == 0.3
    _with_tariff(home, TIME_OF_USE)
    got = await _call(home, "tariff_advice", {"device_name": "heat pump"}, "cost")
    assert got["flat"] is False
    assert got["cheapest"] == [
        {"days": ["sat", "sun"], "start": "00:00", "end": "06:15", "price_per_kwh": 0.12}
    ]
    assert (got["cheapest_price_per_kwh"], got["dearest_price_per_kwh"]) == (0.12, 0.41)
    # The device's runs, from the reference's quarter hours of the 14 days before today.
    tz = ZoneInfo(ZONE)
    today = home.ctx.now.astimezone(tz).date()
    start = datetime.combine(today - timedelta(days=14), datetime.min.time(), tz)
    end = datetime.combine(today, datetime.min.time(), tz)
    quarter = timedelta(minutes=15)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    edges = [start + quarter * k for k in range(int((end - start) / quarter) + 1)]
    devices = [reference.Dev("heat_pump", "consumer")]
    buckets = reference.series(devices, home.readings, edges=edges, now=home.ctx.now, cap=CAP)
    found = reference.runs([b["heat_pump"][0] for b in buckets])
    assert len(found) >= 3
    assert got["device"] == "Heat pump"
    assert got["runs_seen"] == len(found)
    assert _close(got["typical_run_kwh"], statistics.median(found))
    assert _close(got["run_cost_cheapest"], statistics.median(found) * 0.12)
    assert _close(got["run_cost_dearest"], statistics.median(found) * 0.41)
    solar = await _call(home, "tariff_advice", {"device_name": "Solar inverter"}, "cost")
    assert solar["error"]["code"] == "not_a_consumer"


async def test_no_tool_reaches_another_household(home: Home) -> None:
    # The other household's devices, by id or by a name only it has, mean nothing here;
    # a name is all the model can give.
    for other in (str(home.other.id), "Sauna"):
        for name, args, branch in [
            ("device_usage", {"device_name": other, "window": YESTERDAY, "step": "1d"},
             "energy"),
            ("propose_device_action", {"device_name": other, "op": "SET_POWER", "value": "OFF"},
             "action"),
            ("device_cost", {"device_name": other, "window": YESTERDAY}, "cost"),
            ("tariff_advice", {"device_name": other}, "cost"),
        ]:  # fmt: skip
            got = await _call(home, name, args, branch)  # type: ignore[arg-type]
            assert got["error"]["code"] == "unknown_device"
    found = await _call(home, "find_device", {"name": ""}, "action")
    assert found["devices"] == []
    assert (await _call(home, "find_device", {"name": "sauna"}, "action"))["devices"] == []
    live = await _call(home, "live_status", {})
    assert {d["name"] for d in live["devices"]} == {d.name for d in home.ctx.devices}
    why = await _call(
        home, "explain_cost", {"window": YESTERDAY, "against": "previous", "baseline": None}
    )
    named = {p["device"] for p in why["parts"] if p["device"] is not None}
    assert named
    assert named <= {d.name for d in home.ctx.devices}


def _w(name: str, first: str | None = None, last: str | None = None) -> dict[str, Any]:
    return {"name": name, "first_date": first, "last_date": last}


BAD_ARGUMENTS = [
    ("energy_summary", {"window": _w("fortnight")}, "invalid_arguments", "window.name"),
    ("energy_summary", {}, "invalid_arguments", "window"),
    ("energy_summary", {"window": YESTERDAY, "household_id": "x"}, "invalid_arguments",
     "household_id"),
    ("top_devices", {"window": YESTERDAY, "limit": 0}, "invalid_arguments", "limit"),
    ("top_devices", {"window": YESTERDAY, "limit": "5"}, "invalid_arguments", "limit"),
    ("energy_summary", {"window": _w("dates", "2030-01-01", "2030-01-02")}, "invalid_range",
     "window"),
    ("energy_summary", {"window": _w("dates", "2026-11-05")}, "invalid_arguments", "window"),
    ("device_usage", {"device_name": "Toaster", "window": YESTERDAY, "step": "1h"},
     "unknown_device", "device_name"),
    ("device_usage", {"device_name": "Fridge", "window": _w("last_30_days"), "step": "15m"},
     "too_many_buckets", "step"),
    ("cost_breakdown", {"window": YESTERDAY}, "unknown_tool", None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "code", "field"), BAD_ARGUMENTS)
async def test_bad_arguments_come_back_as_structured_errors(
    home: Home, name: str, args: dict[str, Any], code: str, field: str | None
) -> None:
    got = await _call(home, name, args)
    assert set(got) == {"error"}
    assert got["error"]["code"] == code
    assert got["error"]["field"] == field
    assert 0 < len(got["error"]["message"]) < 300


async def test_a_proposal_is_checked_and_never_carried_out(home: Home) -> None:
    got = await _call(
        home,
        "propose_device_action",
        {"device_name": "dishwasher", "op": "SET_POWER", "value": "off"},
        "action",
    )
    assert got["command"] == {"op": "SET_POWER", "device_name": "Dishwasher", "value": "OFF"}
    assert got["requires_consent"] is True
    refusals = [
        ({"device_name": "Fridge", "op": "SET_POWER", "value": "OFF"}, "not_controllable"),
        ({"device_name": "Dishwasher", "op": "SET_CHARGE_CURRENT", "value": "16"},
         "unsupported_operation"),
        ({"device_name": "EV charger", "op": "SET_CHARGE_CURRENT", "value": "64"}, "invalid_value"),
        ({"device_name": "Battery", "op": "SET_BATTERY_RESERVE", "value": "-5"}, "invalid_value"),
    ]  # fmt: skip
    for args, code in refusals:
        assert (await _call(home, "propose_device_action", args, "action"))["error"]["code"] == code
    ok = await _call(
        home,
        "propose_device_action",
        {"device_name": "EV charger", "op": "SET_CHARGE_CURRENT", "value": "16"},
        "action",
    )
    assert ok["value"] == "16"
    assert await home.ctx.conn.fetchval("SELECT count(*) FROM actions") == 0


def test_window_arguments_name_periods_or_whole_dates() -> None:
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)  # a Wednesday

    def bounds(**kw: Any) -> tuple[date, date]:
        arg = WindowArg.model_validate({"first_date": None, "last_date": None, **kw})
        w = resolve(arg, timezone="UTC", now=now)
        return w.start.date(), w.end.date()

    assert bounds(name="this_week") == (date(2026, 3, 2), date(2026, 3, 4))
    assert bounds(name="last_week") == (date(2026, 2, 23), date(2026, 3, 2))
    assert bounds(name="last_month") == (date(2026, 2, 1), date(2026, 3, 1))
    assert bounds(name="dates", first_date=date(2026, 2, 27), last_date=date(2026, 3, 1)) == (
        date(2026, 2, 27),
        date(2026, 3, 2),
    )
