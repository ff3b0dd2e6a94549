"""The device kinds the router reads messages about: the same names as telemetry's kinds
(a unit test holds the two equal), declared here so that routing, a pure function of text
and a household's device list, depends on no other package."""

from __future__ import annotations

from typing import Literal, get_args

DeviceKind = Literal["consumer", "solar", "grid", "battery", "ev_charger"]
DEVICE_KINDS: tuple[DeviceKind, ...] = get_args(DeviceKind)
