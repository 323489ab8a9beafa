"""The time of an observation in the worker's words (flows.when): pure, fi/sv/en."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows import when
from flows.when import Refused, When

ZONE = ZoneInfo("Europe/Helsinki")
# Wednesday 25 Nov 2026, 15:00 in Helsinki.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=ZONE)


def local(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


@pytest.mark.parametrize(
    ("typed", "at", "day_only"),
    [
        # Finnish
        ("klo 14", local(25, 14), False),
        ("Klo 14.30", local(25, 14, 30), False),
        ("14:30", local(25, 14, 30), False),
        ("eilen", local(24), True),
        ("Eilen klo 9", local(24, 9), False),
        ("klo 9 eilen", local(24, 9), False),
        ("toissapäivänä", local(23), True),
        ("ma", local(23), True),
        ("maanantaina klo 16", local(23, 16), False),
        ("ke", local(25, 12), True),  # today is Wednesday
        ("to", local(19), True),  # last Thursday
        ("aiemmin tänään", local(25, 12), True),
        ("24.11.", local(24), True),
        ("24.11", local(24), True),
        ("20.11.2026", local(20), True),
        ("nyt", NOW.astimezone(UTC), False),
        # Swedish
        ("i går", local(24), True),
        ("igår kl 14", local(24, 14), False),
        ("kl. 8", local(25, 8), False),
        ("mån", local(23), True),
        ("i måndags", local(23), True),
        ("fredag kl 10", local(20, 10), False),
        ("tidigare i dag", local(25, 12), True),
        # English
        ("yesterday", local(24), True),
        ("yesterday 2pm", local(24, 14), False),
        ("2pm", local(25, 14), False),
        ("at 9:15 am", local(25, 9, 15), False),
        ("Mon", local(23), True),
        ("earlier today", local(25, 12), True),
        ("now", NOW.astimezone(UTC), False),
    ],
)
def test_what_workers_type(typed: str, at: datetime, day_only: bool) -> None:
    assert when.parse(typed, NOW, ZONE) == When(at, day_only)


def test_never_in_the_future_at_most_seven_days_back() -> None:
    # A time still ahead today means last night; a day given with it is refused.
    assert when.parse("klo 23", NOW, ZONE) == When(local(24, 23), False)
    assert when.parse("tänään klo 18", NOW, ZONE) == Refused("future")
    assert when.parse("26.11.", NOW, ZONE) == Refused("future")
    assert when.parse("18.11.", NOW, ZONE) == When(local(18), True)  # 7 days back
    assert when.parse("17.11.", NOW, ZONE) == Refused("too_old")
    # "Today" before noon is now, not a time still to come.
    morning = datetime(2026, 11, 25, 9, 0, tzinfo=ZONE)
    assert when.parse("tänään", morning, ZONE) == When(morning.astimezone(UTC), True)


@pytest.mark.parametrize(
    "typed", ["14", "joskus", "kello", "32.13.", "klo 25", "13pm", "", "12 nuorta"]
)
def test_not_a_time(typed: str) -> None:
    assert when.parse(typed, NOW, ZONE) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Eilen klo 14: yöpaikkaa ei löytynyt", When(local(24, 14), False)),
        ("Eilen asiakas kertoi, että jono on pitkä", When(local(24), True)),
        ("Ma: kolme nuorta ilman asuntoa", When(local(23), True)),
        ("ma, kolme nuorta", When(local(23), True)),
        ("I går kl 9 var härbärget fullt", When(local(24, 9), False)),
        ("Yesterday 2pm the shelter was full", When(local(24, 14), False)),
        ("klo 23 yöllä nuori nukkui ulkona", When(local(24, 23), False)),
        # Ordinary words that are also short day names do not count without a separator.
        ("To be honest the queue is long", None),
        ("La Paz -yhdistyksen ilta oli täynnä", None),
        ("Sun was out and people queued", None),
        ("Nuoret eivät päässeet eilen hoitoon", None),  # only at the start
        ("12 nuorta ilman asuntoa", None),
        ("1.5 vuotta jonossa", None),  # 1 May: too old, ignored
        ("Nyt jonot ovat taas pitkät", None),  # "now" is the default anyway
        ("", None),
    ],
)
def test_a_leading_time_in_a_first_message(message: str, expected: When | None) -> None:
    assert when.leading(message, NOW, ZONE) == expected


def test_any_text_gives_a_moment_in_the_window_or_nothing() -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    words = ["klo", "kl", "14", "9.30", "eilen", "i går", "ma", "to", "24.11.", "x", ":", "2pm"]
    for _ in range(2000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 5)))
        for found in (when.parse(text, NOW, ZONE), when.leading(text, NOW, ZONE)):
            if isinstance(found, When):
                assert NOW - timedelta(days=8) < found.at <= NOW, (seed, text, found)
                assert found.at.tzinfo is UTC
