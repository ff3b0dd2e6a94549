"""Deterministic intent routing and entity extraction."""

from router.devices import DeviceRef
from router.route import Route, route
from router.rules import ActionRef, Branch, Op
from router.windows import DayRef, WindowRef, resolve_window

__all__ = [
    "ActionRef",
    "Branch",
    "DayRef",
    "DeviceRef",
    "Op",
    "Route",
    "WindowRef",
    "resolve_window",
    "route",
]
