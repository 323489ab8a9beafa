"""When an observation was made: the worker's words for a time or a day, in fi/sv/en.

Pure, no I/O. ``parse`` reads a whole answer to "When?" ("klo 14", "eilen",
"ma", "i går kl 14", "mån", "yesterday 2pm", "24.11."); ``leading`` finds such
an expression at the start of a first message ("Eilen klo 14: ...") without
changing the message. Both return a ``When`` or say why not (``Refused``):
an observation is never in the future and at most ``MAX_DAYS_BACK`` days old.

A time without a day that is still ahead today means that time yesterday
("klo 23" typed just after midnight). A day without a time is kept as a day
(``day_only``) and stored at noon local time, or now if noon is still ahead.

dateparser was tried first: it reads "klo 14" as the 14th of the month, does not
know "kl 14" and drops the time of "eilen klo 14", and costs 115 ms to import, so
this small parser covers the forms workers use, and tests/test_when.py pins them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

MAX_DAYS_BACK = 7
NOON = time(12, 0)

Reason = Literal["future", "too_old"]


@dataclass(frozen=True)
class When:
    """A moment of observation: UTC, and whether only its day is known."""

    at: datetime
    day_only: bool


@dataclass(frozen=True)
class Refused:
    """A time the worker gave that cannot be an observation's: ``future`` or ``too_old``."""

    reason: Reason


# --- the words -------------------------------------------------------------------------

NOW_WORDS = frozenset({"nyt", "heti", "nu", "now", "just now"})
# Days back from today.
DAY_WORDS: dict[str, int] = {
    "tänään": 0,
    "aiemmin tänään": 0,
    "tänä aamuna": 0,
    "idag": 0,
    "i dag": 0,
    "tidigare idag": 0,
    "tidigare i dag": 0,
    "today": 0,
    "earlier today": 0,
    "eilen": 1,
    "eilen illalla": 1,
    "i går": 1,
    "igår": 1,
    "i går kväll": 1,
    "yesterday": 1,
    "toissapäivänä": 2,
    "toissa päivänä": 2,
    "i förrgår": 2,
    "förrgår": 2,
    "day before yesterday": 2,
    "the day before yesterday": 2,
}
_WEEKDAYS: tuple[tuple[str, ...], ...] = (
    (
        "ma",
        "maanantai",
        "maanantaina",
        "mån",
        "måndag",
        "i måndags",
        "mon",
        "monday",
        "last monday",
    ),
    ("ti", "tiistai", "tiistaina", "tis", "tisdag", "i tisdags", "tue", "tuesday", "last tuesday"),
    (
        "ke",
        "keskiviikko",
        "keskiviikkona",
        "ons",
        "onsdag",
        "i onsdags",
        "wed",
        "wednesday",
        "last wednesday",
    ),
    (
        "to",
        "torstai",
        "torstaina",
        "tor",
        "tors",
        "torsdag",
        "i torsdags",
        "thu",
        "thursday",
        "last thursday",
    ),
    (
        "pe",
        "perjantai",
        "perjantaina",
        "fre",
        "fredag",
        "i fredags",
        "fri",
        "friday",
        "last friday",
    ),
    (
        "la",
        "lauantai",
        "lauantaina",
        "lör",
        "lördag",
        "i lördags",
        "sat",
        "saturday",
        "last saturday",
    ),
    (
        "su",
        "sunnuntai",
        "sunnuntaina",
        "sön",
        "söndag",
        "i söndags",
        "sun",
        "sunday",
        "last sunday",
    ),
)
WEEKDAY_WORDS: dict[str, int] = {word: n for n, words in enumerate(_WEEKDAYS) for word in words}
# Short words that are also ordinary words ("to" in English, "sun", "ons"...): at the start
# of a first message they count only when a time or a separator follows.
AMBIGUOUS = frozenset(
    {"ma", "ti", "ke", "to", "pe", "la", "su", "mon", "sun", "sat", "wed", "tor", "ons", "fre"}
)

_CLOCK = r"(?:klo|kl\.?|at|@)"
_TIME = re.compile(
    rf"^(?:{_CLOCK}\s*)?(?P<h>\d{{1,2}})(?:[.:](?P<m>\d{{2}}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?$"
)
_CLOCK_ONLY = re.compile(rf"^{_CLOCK}\s*\d")
_DATE = re.compile(r"^(?P<d>\d{1,2})\.(?P<mo>\d{1,2})\.(?P<y>\d{4}|\d{2})?$")
_SPACES = re.compile(r"\s+")
# The words a time expression can start with: a first message starting otherwise (most
# do) is passed over at once.
_FIRST_WORDS = frozenset(
    phrase.split(" ")[0] for phrase in (*NOW_WORDS, *DAY_WORDS, *WEEKDAY_WORDS)
) | {"klo", "kl", "kl.", "at", "@"}
# What may follow a leading time expression in a first message.
_SEPARATOR = re.compile(r"^\s*(?:[:,;.!–—-]|\n|$)")


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return _SPACES.sub(" ", text).strip(" ,;:!?–—-")


# --- parsing ---------------------------------------------------------------------------


def _time_of(token: str) -> time | None:
    """``klo 14``, ``kl 14.30``, ``14:30``, ``2pm``, ``at 2:30 pm`` -> a time of day.

    A bare number ("14") is not a time: only with a clock word or minutes or am/pm."""
    match = _TIME.match(token)
    if match is None:
        return None
    hour, minute, ampm = int(match["h"]), int(match["m"] or 0), match["ampm"]
    has_clock = _CLOCK_ONLY.match(token) is not None
    if not (has_clock or match["m"] or ampm):
        return None
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    if hour > 23 or minute > 59:
        return None
    if match["m"] and "." in token and not has_clock and not ampm and _date_parts(token):
        return None  # "12.11" is a date; "klo 12.11" is a time
    return time(hour, minute)


def _date_parts(token: str) -> tuple[int, int, int | None] | None:
    match = _DATE.match(token if token.endswith(".") or token.count(".") > 1 else token + ".")
    if match is None:
        return None
    day, month = int(match["d"]), int(match["mo"])
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    year = match["y"]
    return day, month, (int(year) + (2000 if len(year) == 2 else 0)) if year else None


def _day_of(token: str, today: date) -> date | None:
    if token in DAY_WORDS:
        return today - timedelta(days=DAY_WORDS[token])
    if token in WEEKDAY_WORDS:
        back = (today.weekday() - WEEKDAY_WORDS[token]) % 7
        return today - timedelta(days=back)
    parts = _date_parts(token)
    if parts is None:
        return None
    day, month, year = parts
    try:
        return date(year or today.year, month, day)
    except ValueError:
        return None


def _split(text: str) -> tuple[str, str] | None:
    """Split "eilen klo 14" into a day part and a time part (either may be empty)."""
    if text in NOW_WORDS:
        return None
    words = text.split(" ")
    for cut in range(len(words) + 1):
        day_part, time_part = " ".join(words[:cut]), " ".join(words[cut:])
        yield_pair = _pair(day_part, time_part) or _pair(time_part, day_part)
        if yield_pair is not None:
            return yield_pair
    return None


def _pair(day_part: str, time_part: str) -> tuple[str, str] | None:
    day_ok = day_part == "" or day_part in DAY_WORDS or day_part in WEEKDAY_WORDS
    day_ok = day_ok or _date_parts(day_part) is not None
    time_ok = time_part == "" or _time_of(time_part) is not None
    if day_ok and time_ok and (day_part or time_part):
        return day_part, time_part
    return None


def parse(text: str, now: datetime, zone: tzinfo) -> When | Refused | None:
    """The moment a whole answer names; None when it names none."""
    normal = _normal(text)
    if normal in NOW_WORDS:
        return When(now.astimezone(UTC), False)
    split = _split(normal)
    if split is None:
        return None
    day_part, time_part = split
    local_now = now.astimezone(zone)
    today = local_now.date()
    day = _day_of(day_part, today) if day_part else None
    if day_part and day is None:
        return None
    clock = _time_of(time_part) if time_part else None
    if day is None:
        assert clock is not None
        day = today
        if datetime.combine(day, clock, zone) > local_now:
            day = today - timedelta(days=1)  # "klo 23" just after midnight: last night
    return _checked(day, clock, local_now, zone)


def _checked(day: date, clock: time | None, local_now: datetime, zone: tzinfo) -> When | Refused:
    if day > local_now.date():
        return Refused("future")
    if (local_now.date() - day).days > MAX_DAYS_BACK:
        return Refused("too_old")
    if clock is None:
        at = min(datetime.combine(day, NOON, zone), local_now)
        return When(at.astimezone(UTC), True)
    at = datetime.combine(day, clock, zone)
    if at > local_now:
        return Refused("future")
    return When(at.astimezone(UTC), False)


def leading(text: str, now: datetime, zone: tzinfo) -> When | None:
    """The moment named at the very start of a first message ("Eilen klo 14: ..."), if any.

    The longest run of up to four leading words that names a moment counts, when the
    message goes on after it (or ends). A short word that is also an ordinary word
    ("to", "sun") counts only with a time or a separator after it. A moment that cannot be
    an observation's (in the future, too old) is ignored: the worker sees "When" in the
    summary and can change it."""
    words = text.lstrip().split()
    if not words:
        return None
    first = _normal(words[0])
    if first not in _FIRST_WORDS and not first[:1].isdigit():
        return None
    for count in range(min(4, len(words)), 0, -1):
        head = " ".join(words[:count])
        rest = text.lstrip()[len(head) :] if text.lstrip().startswith(head) else None
        if rest is None:
            continue
        normal = _normal(head)
        if not normal or normal in NOW_WORDS:
            continue
        if normal in AMBIGUOUS and not _SEPARATOR.match(rest) and not _punctuated(head):
            continue
        found = parse(head, now, zone)
        if isinstance(found, When):
            return found
        if isinstance(found, Refused):
            return None
    return None


def _punctuated(head: str) -> bool:
    return head.rstrip()[-1:] in {":", ",", ";", "."}
