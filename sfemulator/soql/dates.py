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


def _add_months(day: dt.date, months: int) -> dt.date:
    """First day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def day_range(name: str, n: int | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end) in days for a date literal evaluated on `today`."""
    one = dt.timedelta(days=1)
    if name == "YESTERDAY":
        return today - one, today
    if name == "TODAY":
        return today, today + one
    if name == "TOMORROW":
        return today + one, today + 2 * one
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
        start, end = _period(unit + "S", today, shift)
        return start, end
    count = n or 0
    unit = name.split("_")[-2] if name.endswith("_AGO") else name.split("_")[-1]
    if unit == "DAYS":
        if name.startswith("LAST_N_"):
            return today - count * one, today + one
        if name.startswith("NEXT_N_"):
            return today + one, today + (count + 1) * one
        return today - count * one, today - (count - 1) * one
    if name.startswith("LAST_N_"):
        return _period(unit, today, -count)[0], _period(unit, today, 0)[0]
    if name.startswith("NEXT_N_"):
        return _period(unit, today, 1)[0], _period(unit, today, count)[1]
    return _period(unit, today, -count)


def _period(unit: str, today: dt.date, shift: int) -> tuple[dt.date, dt.date]:
    """The calendar week/month/quarter/year containing today, moved by `shift` periods: [start, end)."""
    if unit == "WEEKS":
        start = today - dt.timedelta(days=(today.weekday() + 1) % 7) + dt.timedelta(weeks=shift)
        return start, start + dt.timedelta(weeks=1)
    months = {"MONTHS": 1, "QUARTERS": 3, "YEARS": 12}[unit]
    first = dt.date(today.year, 1, 1)
    current = _add_months(first, ((today.month - 1) // months) * months)
    start = _add_months(current, shift * months)
    return start, _add_months(start, months)
