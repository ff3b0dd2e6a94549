"""Why a period cost what it did: its cost against a baseline (one earlier period, or the
mean of several), and the difference split into parts that sum to it exactly.

With `s` the period's local days over the baseline's (a mean has a mean number of days),
every baseline figure is first scaled by `s`, so the parts compare like with like:

    days            the baseline's cost times (s - 1): what the extra (or missing) days cost
    fixed_charges   the period's fixed charges less the scaled baseline's (nothing, unless
                    the fixed charge differs between the two)
    price           the period's import cost less its import at the baseline's mean import
                    price: energy bought at dearer (cheaper) hours of a time-of-use tariff
    device          each consuming device's change of energy, at the baseline's price
    solar           less solar used at home (produced less exported), at that price: a
                    fall in production, or more of it sent out, costs money
    storage         more battery charging less more discharging, at that price
    unmetered       the change of grid import the meters above do not account for (house
                    load no device measures), at that price

so that days + fixed_charges + price + the rest is the period's cost less the baseline's:
the usage parts sum to the baseline price times the change of import, and import equals
consumption - (solar - export) + charge - discharge + unmetered by definition of the last.
The cost is the estimated cost (import and fixed charges; export credit is not in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Literal
from uuid import UUID

from telemetry.queries import CONSUMING, EnergyReport

PartKind = Literal["days", "fixed_charges", "price", "device", "solar", "storage", "unmetered"]


@dataclass(frozen=True)
class Part:
    kind: PartKind
    cost: float  # its share of the change, in the currency's major unit
    kwh: float | None = None  # the change of energy behind it (baseline scaled to the days)
    device: str | None = None  # for kind "device"


@dataclass(frozen=True)
class Explanation:
    cost: float
    baseline_cost: float  # the mean of the baselines' costs
    days: int
    baseline_days: float  # the mean of the baselines' local days
    baseline_price: float  # per kWh imported: what the usage parts are priced at
    consumption_kwh: float
    baseline_consumption_kwh: float  # the mean, not scaled
    parts: tuple[Part, ...]  # fixed kinds first, then devices by the size of their part

    @property
    def change(self) -> float:
        return self.cost - self.baseline_cost

    @property
    def scale(self) -> float:
        """The window's days over the baseline's: what each baseline figure is scaled by."""
        return self.days / self.baseline_days if self.baseline_days else 1.0


def explain(report: EnergyReport, baselines: list[EnergyReport], flat_price: float) -> Explanation:
    """`report`'s cost against the mean of `baselines` (at least one), parted. `flat_price`
    prices the usage parts when the baselines imported nothing."""
    if not baselines:
        raise ValueError("explain needs at least one baseline")

    def mean(figure: str) -> float:
        return fmean(getattr(b.totals, figure) for b in baselines)

    days = report.cost.local_days
    base_days = fmean(b.cost.local_days for b in baselines)
    scale = days / base_days if base_days else 1.0  # Explanation.scale
    base_cost = fmean(b.cost.total for b in baselines)
    base_import_cost = fmean(b.cost.import_cost for b in baselines) * scale
    base_fixed = fmean(b.cost.fixed_charges for b in baselines) * scale
    base_import = mean("import_kwh") * scale
    price = base_import_cost / base_import if base_import > 0 else flat_price

    def grew(figure: str) -> float:
        return float(getattr(report.totals, figure)) - mean(figure) * scale

    consuming = {
        f.device.id: f.device.name
        for r in (report, *baselines)
        for f in r.devices
        if f.device.kind in CONSUMING
    }

    def used(r: EnergyReport) -> dict[UUID, float]:
        return {f.device.id: f.kwh for f in r.devices}

    now, then = used(report), [used(b) for b in baselines]
    devices: list[Part] = []
    for device_id, name in consuming.items():
        kwh = now.get(device_id, 0.0) - fmean(t.get(device_id, 0.0) for t in then) * scale
        devices.append(Part("device", price * kwh, kwh, name))
    devices.sort(key=lambda p: (-abs(p.cost), p.device or ""))
    solar = grew("solar_kwh") - grew("export_kwh")  # used at home
    battery = grew("battery_charge_kwh") - grew("battery_discharge_kwh")
    imported = grew("import_kwh")
    unmetered = imported - sum(p.kwh or 0.0 for p in devices) + solar - battery
    parts = (
        Part("days", base_cost * (scale - 1)),
        Part("fixed_charges", report.cost.fixed_charges - base_fixed),
        Part("price", report.cost.import_cost - price * report.totals.import_kwh),
        Part("solar", -price * solar, solar),
        Part("storage", price * battery, battery),
        Part("unmetered", price * unmetered, unmetered),
        *devices,
    )
    return Explanation(
        cost=report.cost.total,
        baseline_cost=base_cost,
        days=days,
        baseline_days=base_days,
        baseline_price=price,
        consumption_kwh=report.totals.consumption_kwh,
        baseline_consumption_kwh=mean("consumption_kwh"),
        parts=parts,
    )
