"""Finnish working days: Monday to Friday, not a public holiday (Midsummer Eve and
Christmas Eve count as holidays, as in the ``holidays`` package's calendar for FI).

Pure, no I/O. One calendar for the notices' deadlines (``flows.escalation``) and the
digests' schedule (``digests.periods``).
"""

from __future__ import annotations

from datetime import date
from functools import cache

import holidays


@cache
def _finnish_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FI", years=year))


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Finnish public holiday (nor Midsummer or Christmas Eve)."""
    return day.weekday() < 5 and day not in _finnish_holidays(day.year)
