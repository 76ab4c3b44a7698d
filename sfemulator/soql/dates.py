"""Relative date literals (TODAY, LAST_N_DAYS:n, THIS_QUARTER...) as half-open ranges of days.

The emulated org's time zone and locale are GMT and en_US: weeks start on Sunday, quarters and fiscal
years are calendar ones. Ranges follow the SOQL guide's "Date Formats and Date Literals" table, e.g.
LAST_N_DAYS:1 covers yesterday and today, NEXT_N_DAYS:1 covers tomorrow only.
"""

from __future__ import annotations

import datetime as dt

FIXED = frozenset(
    {
        "YESTERDAY", "TODAY", "TOMORROW",
        "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK",
        "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH",
        "LAST_90_DAYS", "NEXT_90_DAYS",
        "LAST_QUARTER", "THIS_QUARTER", "NEXT_QUARTER",
        "LAST_YEAR", "THIS_YEAR", "NEXT_YEAR",
    }
)  # fmt: skip
WITH_N = frozenset(
    {
        f"{form.replace('UNIT', unit)}"
        for unit in ("DAYS", "WEEKS", "MONTHS", "QUARTERS", "YEARS")
        for form in ("LAST_N_UNIT", "NEXT_N_UNIT", "N_UNIT_AGO")
    }
)
# Valid SOQL the emulator does not answer (they depend on the org's fiscal-year settings).
FISCAL_PREFIXES = ("THIS_FISCAL_", "LAST_FISCAL_", "NEXT_FISCAL_", "LAST_N_FISCAL_", "NEXT_N_FISCAL_",
                   "N_FISCAL_")  # fmt: skip


# Ordinals (dt.date.toordinal) of the first and last day Python can represent. Salesforce itself stores
# dates from 1700-01-01 to 4000-12-31 only, so a bound outside this calendar is below or above every value.
MIN_ORDINAL = dt.date.min.toordinal()
MAX_ORDINAL = dt.date.max.toordinal()
_BELOW, _ABOVE = "", "\uffff"  # compare below / above every ISO date or datetime string


def _month_start(index: int) -> int:
    """Ordinal of the first day of month `index` (year * 12 + month - 1), clamped just outside the calendar."""
    year, month0 = divmod(index, 12)
    if year < dt.MINYEAR:
        return MIN_ORDINAL - 1
    if year > dt.MAXYEAR:
        return MAX_ORDINAL + 1
    return dt.date(year, month0 + 1, 1).toordinal()


def day_range(name: str, n: int | None, today: dt.date) -> tuple[int, int]:
    """[start, end) as day ordinals for a date literal evaluated on `today`.

    Computed with plain integers, so LAST_N_DAYS:2147483647 reaches back past the start of the calendar
    instead of overflowing; `iso_bound` turns an ordinal into a comparable string.
    """
    day = today.toordinal()
    if name == "YESTERDAY":
        return day - 1, day
    if name == "TODAY":
        return day, day + 1
    if name == "TOMORROW":
        return day + 1, day + 2
    if name == "LAST_90_DAYS":
        name, n = "LAST_N_DAYS", 90
    elif name == "NEXT_90_DAYS":
        name, n = "NEXT_N_DAYS", 90
    if (
        name.endswith("_WEEK")
        or name.endswith("_MONTH")
        or name.endswith("_QUARTER")
        or name.endswith("_YEAR")
    ):
        prefix, unit = name.split("_", 1)
        shift = {"LAST": -1, "THIS": 0, "NEXT": 1}[prefix]
        return _period(unit + "S", today, shift)
    count = n or 0
    unit = name.split("_")[-2] if name.endswith("_AGO") else name.split("_")[-1]
    if unit == "DAYS":
        if name.startswith("LAST_N_"):
            return day - count, day + 1
        if name.startswith("NEXT_N_"):
            return day + 1, day + count + 1
        return day - count, day - count + 1
    if name.startswith("LAST_N_"):
        return _period(unit, today, -count)[0], _period(unit, today, 0)[0]
    if name.startswith("NEXT_N_"):
        return _period(unit, today, 1)[0], _period(unit, today, count)[1]
    return _period(unit, today, -count)


def _period(unit: str, today: dt.date, shift: int) -> tuple[int, int]:
    """The calendar week/month/quarter/year containing today, moved by `shift` periods: [start, end)."""
    if unit == "WEEKS":
        start = today.toordinal() - (today.weekday() + 1) % 7 + 7 * shift
        return start, start + 7
    months = {"MONTHS": 1, "QUARTERS": 3, "YEARS": 12}[unit]
    current = today.year * 12 + ((today.month - 1) // months) * months
    start = current + shift * months
    return _month_start(start), _month_start(start + months)


def iso_bound(ordinal: int, *, datetime: bool) -> str:
    """The stored-string form of the first instant of day `ordinal`, or a string below / above every value
    when the day is outside the calendar."""
    if ordinal < MIN_ORDINAL:
        return _BELOW
    if ordinal > MAX_ORDINAL:
        return _ABOVE
    iso = dt.date.fromordinal(ordinal).isoformat()
    return f"{iso}T00:00:00.000+0000" if datetime else iso
