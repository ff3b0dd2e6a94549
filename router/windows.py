"""Windows as a message names them, clock-free, and their local days once today is known.

A `WindowRef` is what the words say; `resolve_window` turns it into local days given the
household's local today, which only the caller knows. A day written without a year ("Nov 20",
"the 20th") is a `DayRef` and means the most recent such day: on or before today, or, as the
last day of a range, the first such day on or after the range's first day.

- "past/last N days" are the N local days ending with today: today counts, as it does in
  "this week" and "this month". "N days ago" is the one day N days before today. "last week"
  is the previous Monday-Sunday week, "last month" the previous calendar month.
- "on Monday" is the most recent Monday before today; "since Monday" the most recent Monday
  on or before today.
- A range includes both its days; one given backwards is turned round. A weekday range
  ("from Monday to Wednesday") ends on the most recent such last weekday, today included.
- A month or a year without a year ("in November", "this year") is the most recent one that
  has begun: to now while it runs. "last November", "last year" is the most recent one that
  has ended. A season is three calendar months (meteorological: winter is December to
  February in the northern hemisphere, June to August in the southern), read the same way.
- "the week before last" is the Monday-Sunday week two weeks back; "N weeks ago" N weeks
  back; "N months ago", "the month before last" whole calendar months back.
- "the week before", "the day before", "the month before", "the one before" name a window
  relative to another, the one the conversation was about (`resolve_before`); alone, to
  today: the day before is yesterday, the week before is last week.
"""

from __future__ import annotations

import calendar
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from router.lexicon import Lexicon, WindowKind, WindowPhrase
from router.text import alternation, bounded

_SLOT = re.compile(r"\{(\w+)\}")
_LEAD = 4  # "so far this week": common words before a window's first uncommon one, plus one


@dataclass(frozen=True)
class DayRef:
    """A day of the month, with or without its month, given without a year."""

    day: int
    month: int | None = None

    def __post_init__(self) -> None:
        date(2000, self.month or 1, self.day)  # ValueError for a day no year has


@dataclass(frozen=True)
class WindowRef:
    kind: WindowKind
    days: int | None = None  # last_days, days_ago
    start: date | DayRef | None = None  # since, date, range
    end: date | DayRef | None = None  # range, inclusive
    weekday: int | None = None  # since, date, weekdays: Monday is 0
    last_weekday: int | None = None  # weekdays
    months: int | None = None  # months, season: how many calendar months from start
    complete: bool = False  # months, season: the most recent that has ended


def resolve_window(
    ref: WindowRef, today: date, *, southern: bool = False
) -> tuple[date, date | None]:
    """The first local day of the window, and the day it ends before (None: it runs to now).
    `southern`: the household is in the southern hemisphere, where seasons are shifted."""
    monday = today - timedelta(days=today.weekday())
    first_of_month = today.replace(day=1)
    if ref.kind == "before":  # before today's window, the default one
        return resolve_before(ref, today, today)
    if ref.kind in ("months", "season"):
        start = _day(ref.start, ref)
        if ref.kind == "season" and southern and isinstance(start, DayRef):
            start = DayRef(1, ((start.month or 1) + 5) % 12 + 1)  # six months on
        return _months(start, _count_months(ref), ref.complete, today)
    if ref.kind == "weeks_ago":
        first = monday - timedelta(days=7 * _count(ref))
        return first, first + timedelta(days=7)
    if ref.kind == "months_ago":
        first = add_months(first_of_month, -_count(ref))
        return first, add_months(first, 1)
    if ref.kind == "weekdays":
        if ref.weekday is None or ref.last_weekday is None:
            raise ValueError(f"{ref} needs its first and last weekday")
        last = today - timedelta(days=(today.weekday() - ref.last_weekday) % 7)
        first = last - timedelta(days=(ref.last_weekday - ref.weekday) % 7)
        return first, None if last == today else last + timedelta(days=1)
    if ref.kind == "today":
        return today, None
    if ref.kind == "yesterday":
        return today - timedelta(days=1), today
    if ref.kind == "last_days":
        return today - timedelta(days=_count(ref) - 1), None
    if ref.kind == "days_ago":
        day = today - timedelta(days=_count(ref))
        return day, day + timedelta(days=1)
    if ref.kind == "this_week":
        return monday, None
    if ref.kind == "last_week":
        return monday - timedelta(days=7), monday
    if ref.kind == "this_month":
        return first_of_month, None
    if ref.kind == "last_month":
        return (first_of_month - timedelta(days=1)).replace(day=1), first_of_month
    if ref.kind == "since":
        if ref.weekday is not None:
            return today - timedelta(days=(today.weekday() - ref.weekday) % 7), None
        return _latest(_day(ref.start, ref), today), None
    if ref.kind == "date":
        if ref.weekday is not None:
            day = today - timedelta(days=(today.weekday() - ref.weekday - 1) % 7 + 1)
        else:
            day = _latest(_day(ref.start, ref), today)
        return day, day + timedelta(days=1)
    end = _day(ref.end, ref)
    first = _latest(_day(ref.start, ref), end if isinstance(end, date) else today)
    last = _earliest(end, first)
    first, last = min(first, last), max(first, last)
    return first, last + timedelta(days=1)


def resolve_before(ref: WindowRef, first: date, last: date) -> tuple[date, date]:
    """The window `ref` ("the week before") names before the local days [first, last]: the
    day before `first`; the Monday-Sunday week before the one `first` is in; the calendar
    month (days=31) or year (365) before `first`'s; or (days=0) as many days as [first,
    last] holds, just before it, or as many calendar months when it is whole months ("last
    winter", then "the one before"). Returns its first day and the day it ends before."""
    if ref.kind != "before":
        raise ValueError(f"{ref} is not relative to another window")
    if ref.days == 1:
        return first - timedelta(days=1), first
    if ref.days == 7:
        monday = first - timedelta(days=first.weekday())
        return monday - timedelta(days=7), monday
    if ref.days == 31:
        start = first.replace(day=1)
        return add_months(start, -1), start
    if ref.days == 365:
        start = date(first.year, 1, 1)
        return date(first.year - 1, 1, 1), start
    after = last + timedelta(days=1)
    if first.day == 1 and after.day == 1:
        months = (after.year - first.year) * 12 + after.month - first.month
        return add_months(first, -months), first
    length = (last - first).days + 1
    return first - timedelta(days=length), first


def add_months(first: date, months: int) -> date:
    """The first of the month `months` calendar months after (before) `first`'s."""
    year, month = divmod(first.year * 12 + first.month - 1 + months, 12)
    return date(year, month + 1, 1)


def _months(
    start: date | DayRef, months: int, complete: bool, today: date
) -> tuple[date, date | None]:
    """`months` calendar months from `start` (the first of a month; without a year the most
    recent such on or before today, or with `complete` the most recent such run that has
    ended)."""
    first = _latest(start, today)
    end = add_months(first, months)
    if complete and end > today and not isinstance(start, date):
        first = _latest(start, first - timedelta(days=1))
        end = add_months(first, months)
    return first, end if end <= today or first > today else None


def _count_months(ref: WindowRef) -> int:
    if ref.months is None:
        raise ValueError(f"{ref} needs months")
    return ref.months


def _count(ref: WindowRef) -> int:
    if ref.days is None:
        raise ValueError(f"{ref} needs days")
    return ref.days


def _day(day: date | DayRef | None, ref: WindowRef) -> date | DayRef:
    if day is None:
        raise ValueError(f"{ref} needs its start and, for a range, its end")
    return day


def _latest(day: date | DayRef, limit: date) -> date:
    """The most recent day matching `day` on or before `limit`."""
    if isinstance(day, date):
        return day
    return next(d for d in _candidates(day, limit, -1) if d <= limit)


def _earliest(day: date | DayRef, floor: date) -> date:
    """The first day matching `day` on or after `floor`."""
    if isinstance(day, date):
        return day
    return next(d for d in _candidates(day, floor, 1) if d >= floor)


def _candidates(day: DayRef, around: date, step: int) -> Iterator[date]:
    """Days matching `day` from the month (year) of `around` on, `step` months (years) at a
    time. Enough of them: a day of the month recurs within 3 months, the 29th of February
    within 9 years."""
    if day.month is None:
        months = (divmod(around.year * 12 + around.month - 1 + step * k, 12) for k in range(3))
        years_months = ((year, month + 1) for year, month in months)
    else:
        years_months = ((around.year + step * k, day.month) for k in range(9))
    for year, month in years_months:
        if day.day <= calendar.monthrange(year, month)[1]:
            yield date(year, month, day.day)


class WindowFinder:
    """The lexicon's window phrases compiled into one regex over tokenised text."""

    def __init__(self, lexicon: Lexicon) -> None:
        suffix = f"(?:{alternation(lexicon.ordinal_suffixes)})"
        day = r"0?[1-9]|[12][0-9]|3[01]"
        self._numbers = lexicon.numbers
        self._months = lexicon.months
        self._weekdays = lexicon.weekdays
        # Each primitive's value sits in the group named G, renamed for each use.
        self._primitives = {
            "iso": r"(?P<G>[0-9]{4}-[0-9]{2}-[0-9]{2})",
            "day": rf"(?P<G>{day}){suffix}?",
            "ordinal": rf"(?P<G>{day}){suffix}",
            "month": f"(?P<G>{alternation(lexicon.months)})",
            "year": r"(?P<G>[0-9]{4})",
            "n": rf"(?P<G>[0-9]{{1,3}}|{alternation(lexicon.numbers)})",
            "weekday": f"(?P<G>{alternation(lexicon.weekdays)})",
            "season": f"(?P<G>{alternation(lexicon.seasons)})",
        }
        # Primitives only date forms use; in a window pattern {month} and {year} stand alone.
        self._date_parts = frozenset({"iso", "day", "ordinal"})
        self._seasons = lexicon.seasons
        self._date_forms = lexicon.date_forms
        self._entries: list[tuple[WindowPhrase, list[_Slot]]] = []
        patterns = []
        for e, phrase in enumerate(lexicon.windows):
            pattern, slots = self._expand(phrase.pattern, f"e{e}")
            self._entries.append((phrase, slots))
            patterns.append(f"(?P<e{e}>{pattern})")
        self._regex = re.compile(bounded("|".join(patterns)))
        # Every word of the window phrases: the regex is tried only where one stands.
        self.words = frozenset(
            word
            for pattern in (*(p.pattern for p in lexicon.windows), *lexicon.date_forms)
            for m in re.finditer(r"([^\W\d_]+)(\??)", _SLOT.sub(" ", _unlooked(pattern)))
            for word in (m[1], m[1][:-1] if m[2] else m[1])
        ) | {
            word.split()[0]
            for table in (lexicon.months, lexicon.weekdays, lexicon.numbers, lexicon.seasons)
            for word in table
        }
        # Every window has a word that is not a common one ("week", "monday", "3") among its
        # first _LEAD: the regex is not run where none follows, nor at all in most messages.
        self._anchors = self.words - frozenset(lexicon.common_words) | frozenset(
            lexicon.window_anchors
        )

    def _expand(self, template: str, prefix: str) -> tuple[str, list[_Slot]]:
        slots: list[_Slot] = []

        def slot(m: re.Match[str]) -> str:
            return self._slot(m[1], f"{prefix}s{len(slots)}", slots)

        return _SLOT.sub(slot, template), slots

    def _group(self, primitive: str, name: str) -> str:
        return self._primitives[primitive].replace("(?P<G>", f"(?P<{name}>")

    def _slot(self, name: str, prefix: str, slots: list[_Slot]) -> str:
        """The pattern of one slot, its groups recorded in `slots`: one dict per form."""
        if name in self._primitives and name not in self._date_parts:
            slots.append(_Slot(name, ({name: prefix},)))
            return self._group(name, prefix)
        if name == "until_weekday":
            slots.append(_Slot(name, ({"weekday": prefix},)))
            return self._group("weekday", prefix)
        forms = self._date_forms + (("{day}",) if name == "end" else ())
        groups: list[dict[str, str]] = []
        alternatives = []
        for f, form in enumerate(forms):
            names = {p: f"{prefix}f{f}{p}" for p in _SLOT.findall(form)}
            alternatives.append(self._fill(form, names))
            groups.append(names)
        slots.append(_Slot(name, tuple(groups)))
        return f"(?:{'|'.join(alternatives)})"

    def _fill(self, form: str, names: Mapping[str, str]) -> str:
        return _SLOT.sub(lambda m: self._group(m[1], names[m[1]]), form)

    def find(self, tokens: Sequence[str]) -> list[tuple[int, int, WindowRef]]:
        """Each window named: its span of tokens and what it says."""
        if self._anchors.isdisjoint(tokens) and not any(t[:1].isdigit() for t in tokens):
            return []
        text = " ".join(tokens)
        offsets = list(itertools.accumulate((len(t) + 1 for t in tokens), initial=0))
        token_at = {offset: i for i, offset in enumerate(offsets)}
        anchored = [t in self._anchors or t[:1].isdigit() for t in tokens]
        found = []
        i = 0
        while i < len(tokens):
            if (tokens[i] in self.words or anchored[i]) and any(anchored[i : i + _LEAD]):
                m = self._regex.match(text, offsets[i])
                ref = self._read(m) if m is not None else None
                if m is not None and ref is not None:
                    end = token_at[m.end() + 1]
                    found.append((i, end, ref))
                    i = end
                    continue
            i += 1
        return found

    def _read(self, m: re.Match[str]) -> WindowRef | None:
        """The window a match names; None for a count of 0 or a day no calendar has."""
        assert m.lastgroup is not None  # the entries' groups are the outermost
        phrase, slots = self._entries[int(m.lastgroup[1:])]
        try:
            return self._window(m, phrase, slots)
        except ValueError:  # the 30th of February
            return None

    def _window(
        self, m: re.Match[str], phrase: WindowPhrase, slots: list[_Slot]
    ) -> WindowRef | None:
        count = weekday = last_weekday = month = year = None
        days: dict[str, date | DayRef] = {}
        for slot in slots:
            text = m[next(iter(slot.forms[0].values()))]
            if slot.name == "n":
                count = int(text) if text.isdigit() else self._numbers[text]
            elif slot.name == "weekday":
                weekday = self._weekdays[text]
            elif slot.name == "until_weekday":
                last_weekday = self._weekdays[text]
            elif slot.name == "month":
                month = self._months[text]
            elif slot.name == "season":
                month = self._seasons[text]
            elif slot.name == "year":
                year = int(text)
            else:
                form = next(g for g in slot.forms if any(m[name] for name in g.values()))
                days[slot.name] = self._day({p: v for p, name in form.items() if (v := m[name])})
        if phrase.kind == "before":
            return WindowRef("before", days=phrase.days)
        if phrase.kind in ("last_days", "days_ago", "weeks_ago", "months_ago"):
            total = phrase.days or (count or 0) * phrase.unit
            return WindowRef(phrase.kind, days=total) if total > 0 else None
        if phrase.kind == "weekdays":
            return WindowRef("weekdays", weekday=weekday, last_weekday=last_weekday)
        month = month or phrase.month
        if phrase.kind in ("months", "season"):
            assert month is not None, phrase  # the lexicon gives a month, or a slot for one
            first: date | DayRef = DayRef(1, month) if year is None else date(year, month, 1)
            return WindowRef(
                phrase.kind, start=first, months=phrase.months, complete=phrase.complete
            )
        if phrase.kind == "since" and month is not None:  # "since November"
            return WindowRef("since", start=DayRef(1, month))
        start, end = days.get("date"), days.get("end")
        if isinstance(end, DayRef) and end.month is None and start is not None:
            end = _inherit(end, start)
        return WindowRef(phrase.kind, start=start, end=end, weekday=weekday)

    def _day(self, text: Mapping[str, str]) -> date | DayRef:
        """The day a date form matched: its primitives' texts by name."""
        if "iso" in text:
            return date.fromisoformat(text["iso"])
        day = int(text["day"] if "day" in text else text["ordinal"])
        month = self._months[text["month"]] if "month" in text else None
        if "year" in text and month is not None:
            return date(int(text["year"]), month, day)
        return DayRef(day, month)


@dataclass(frozen=True)
class _Slot:
    name: str  # n, weekday, until_weekday, month, year, season, date, end
    forms: tuple[dict[str, str], ...]  # per form: primitive -> group name


def _unlooked(pattern: str) -> str:
    """`pattern` without its negative lookaheads: what they name is no part of a window."""
    out, i = [], 0
    while (j := pattern.find("(?!", i)) >= 0:
        out.append(pattern[i:j])
        depth, i = 0, j
        while True:
            depth += {"(": 1, ")": -1}.get(pattern[i], 0) if pattern[i - 1 : i] != "\\" else 0
            i += 1
            if depth == 0:
                break
    return "".join(out) + pattern[i:]


def _inherit(end: DayRef, start: date | DayRef) -> date | DayRef:
    """A range's last day given alone ("Nov 1 - 10") takes the month, and year, of its first."""
    if isinstance(start, date):
        return date(start.year, start.month, end.day)
    return DayRef(end.day, start.month)
