"""The tool window for a window the router read from a message: the glue between
router.windows (what the words say) and tools.windows (what a tool may ask about)."""

from __future__ import annotations

from datetime import date, timedelta

from router.lexicon import WindowKind
from router.windows import WindowRef, resolve_before, resolve_window
from tools.windows import MAX_DAYS, WindowArg, WindowName

_ROUTE_NAMES: dict[tuple[str, int | None], WindowName] = {
    ("today", None): "today",
    ("yesterday", None): "yesterday",
    ("last_days", 1): "today",
    ("last_days", 3): "last_3_days",
    ("last_days", 7): "last_7_days",
    ("last_days", 30): "last_30_days",
    ("this_week", None): "this_week",
    ("last_week", None): "last_week",
    ("this_month", None): "this_month",
    ("last_month", None): "last_month",
}


def from_route(ref: WindowRef | None, today: date, *, southern: bool = False) -> WindowArg:
    """The tool window for a window the router read from a message (None: today). A named
    period keeps its name; anything else becomes whole local dates. `southern`: the
    household's seasons are the southern hemisphere's (telemetry.windows.southern)."""
    if ref is None:
        return WindowArg(name="today", first_date=None, last_date=None)
    key = (ref.kind, ref.days if ref.kind == "last_days" else None)
    if key in _ROUTE_NAMES:
        return WindowArg(name=_ROUTE_NAMES[key], first_date=None, last_date=None)
    first, until = resolve_window(ref, today, southern=southern)
    last = (until or today + timedelta(days=1)) - timedelta(days=1)
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    return WindowArg(name="dates", first_date=first, last_date=max(first, last))


def follow_up(
    ref: WindowRef | None,
    today: date,
    previous: tuple[str, date, date] | None,
    *,
    southern: bool = False,
) -> WindowArg:
    """The tool window of a follow-up: its own window, resolved against the previous
    question's (tool window name, first day, last day) when it is relative ("the week
    before"); with none of its own, the previous question's days (under their name while the
    name still means those days)."""
    if previous is None:
        return from_route(ref, today, southern=southern)
    name, first, last = previous
    if ref is None:
        kind = _SAME.get(name)
        if kind is not None:
            start, until = resolve_window(WindowRef(kind), today)
            if (start, (until or today + timedelta(days=1)) - timedelta(days=1)) == (first, last):
                return from_route(WindowRef(kind), today)
        return _between(first, last)
    if ref.kind == "before":
        start, until = resolve_before(ref, first, last)
        return _between(start, until - timedelta(days=1))
    return from_route(ref, today, southern=southern)


_SAME: dict[str, WindowKind] = {
    k: k for k in ("today", "yesterday", "this_week", "last_week", "this_month", "last_month")
}


def _between(first: date, last: date) -> WindowArg:
    return WindowArg(
        name="dates", first_date=max(first, last - timedelta(days=MAX_DAYS - 1)), last_date=last
    )
