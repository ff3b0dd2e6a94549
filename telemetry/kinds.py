"""Device kinds and their sign conventions: the vocabulary every telemetry module shares."""

from __future__ import annotations

from typing import Literal, get_args

DeviceKind = Literal["consumer", "solar", "grid", "battery", "ev_charger"]
DEVICE_KINDS: tuple[DeviceKind, ...] = get_args(DeviceKind)
