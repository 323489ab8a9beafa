"""Generate a synthetic but realistic national data set of observations.

    python -m bench.generate --rows 1000000 --url sqlite:///bench/data/bench.db
    python -m bench.generate --rows 1000000 --url postgresql://postgres@127.0.0.1:5432/bench

The country: 22 regions (the 21 wellbeing services counties and Helsinki),
500 teams spread over them by population, 10,000 people (a lead per team, two
leaders per region, the rest workers). Observations arrive day by day with
the rhythm of real work: fewer at weekends, a dip in July and at Christmas, a
slow rise in adoption over the years, teams of very uneven activity, themes
that follow a Zipf-like curve with seasons of their own (housing peaks in
mid-winter, schooling in August and September), about 8 % raised to
leadership and 1.5 % SHL § 48 notifications, acknowledged within days and
most answered and closed (``escalation_events``), one in twenty forgotten
open. Free text comes from a small phrase bank in the team's language
(Finnish, Swedish, a little English).

Every day is generated from its own random stream (``seed`` and the date), so
a smaller data set is exactly the most recent part of a larger one: the rows
of the last week are the same at 100,000 and at 1,000,000 rows, only the table
is longer. That is what lets ``bench.digests_scale`` tell the cost of the rows
in a period from the cost of the size of the table. About 1,000,000 rows make
five years; ``--rows`` walks back from ``--end`` until it has that many.

The schema is migrated first (``storage.db.Database(url).upgrade()``), then the
rows go in bulk: ``executemany`` in one transaction per chunk on SQLite,
``COPY`` (asyncpg ``copy_records_to_table``) on PostgreSQL. PostgreSQL gets a
``VACUUM (ANALYZE)`` at the end, as autovacuum gives a table soon after such a load
(an insert-driven vacuum): without it the first read of each freshly copied page
sets its hint bits and writes it back, and a "cold" digest that reads old rows paid
that once per data set (the monthly summary at 10M rows: 6.6 s cold, 0.5 s warm).
SQLite gets the statistics a deployment has: ``storage.planner.refresh_statistics``
(``ANALYZE``), which the application runs daily and after migrations; the
benchmarks run it where they bring a kept data set to the newest migration
(``upgraded``), so the plans are the ones a real deployment gets.
``--no-statistics`` leaves a generated SQLite file without any, to see the plans
of a database that never had them; ``--analyze`` runs ``ANALYZE`` inside the
bulk load's connection instead of afterwards (the same statistics).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
from sqlalchemy.engine import make_url

from bench.common import (
    DEFAULT_PG_URL,
    asyncpg_dsn,
    dataset_name,
    dataset_url,
    human,
    pg_create,
    pg_drop,
    pg_exists,
    remove_sqlite,
)
from flows import taxonomy
from flows.capture import FLOW_VERSION
from storage.db import Database, normalise_url

HELSINKI = ZoneInfo("Europe/Helsinki")
DEFAULT_END = date(2026, 11, 22)  # a Sunday: the last full ISO week is 2026-W47
TEAMS = 500
PEOPLE = 10_000
ROWS_PER_FIVE_YEARS = 1_000_000
CHUNK_DAYS = 14

# (id, name, population in thousands, share of Swedish-speaking teams)
REGIONS: tuple[tuple[str, str, int, float], ...] = (
    ("helsinki", "Helsinki", 675, 0.06),
    ("ita-uusimaa", "Itä-Uusimaa", 99, 0.30),
    ("keski-uusimaa", "Keski-Uusimaa", 201, 0.0),
    ("lansi-uusimaa", "Länsi-Uusimaa", 484, 0.20),
    ("vantaa-kerava", "Vantaa ja Kerava", 280, 0.0),
    ("varsinais-suomi", "Varsinais-Suomi", 490, 0.06),
    ("satakunta", "Satakunta", 213, 0.0),
    ("kanta-hame", "Kanta-Häme", 170, 0.0),
    ("pirkanmaa", "Pirkanmaa", 535, 0.0),
    ("paijat-hame", "Päijät-Häme", 205, 0.0),
    ("kymenlaakso", "Kymenlaakso", 161, 0.0),
    ("etela-karjala", "Etelä-Karjala", 126, 0.0),
    ("etela-savo", "Etelä-Savo", 130, 0.0),
    ("pohjois-savo", "Pohjois-Savo", 248, 0.0),
    ("pohjois-karjala", "Pohjois-Karjala", 163, 0.0),
    ("keski-suomi", "Keski-Suomi", 275, 0.0),
    ("etela-pohjanmaa", "Etelä-Pohjanmaa", 191, 0.0),
    ("pohjanmaa", "Pohjanmaa", 176, 0.50),
    ("keski-pohjanmaa", "Keski-Pohjanmaa", 68, 0.08),
    ("pohjois-pohjanmaa", "Pohjois-Pohjanmaa", 416, 0.0),
    ("kainuu", "Kainuu", 71, 0.0),
    ("lappi", "Lappi", 176, 0.0),
)

# Themes in falling frequency (Zipf-like, exponent 1.1), as outreach work sees them.
THEME_ORDER = (
    "theme.housing",
    "theme.substance_mental",
    "theme.income",
    "theme.service_access",
    "theme.early_support",
    "theme.functional_health",
    "theme.relationships_participation",
    "theme.employment_education",
    "theme.violence",
    "theme.client_experience",
    "theme.regional",
    "theme.other",
)
assert set(THEME_ORDER) == set(taxonomy.THEME.codes)


def _p(weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array(list(weights), dtype=object)
    values = np.array(list(weights.values()), dtype=float)
    return codes, values / values.sum()


GROUPS = _p(
    {
        "group.working_age": 35,
        "group.youth": 22,
        "group.older": 10,
        "group.children": 8,
        "group.immigrants": 10,
        "group.disabled": 7,
        "group.other": 8,
    }
)
SIGNALS = _p(
    {
        "signal.queues": 25,
        "signal.criteria": 18,
        "signal.mismatch": 20,
        "signal.unrecognised": 15,
        "signal.no_service": 12,
        "signal.not_service_system": 10,
    }
)
FREQUENCIES = _p(
    {
        "frequency.single": 35,
        "frequency.recurring": 35,
        "frequency.growing": 18,
        "frequency.new": 12,
    }
)
ESCALATIONS = _p({"escalation.none": 90.5, "escalation.leadership": 8.0, "escalation.shl48": 1.5})
POLARITIES = _p({"polarity.problem": 92, "polarity.good_practice": 8})
TASKS = _p({code: 1.0 for code in taxonomy.SERVICE_TASK.codes})
SOURCES = _p({"source.own": 40, "source.client": 40, "source.resident": 10, "source.partner": 10})
SCALES = _p({"scale.one": 50, "scale.few": 35, "scale.many": 15})
TRANSPORTS = _p({"telegram": 75, "matrix": 25})
# Local hour of the observation: office hours, evening rounds, a few night shifts.
HOURS = np.array(
    [1, 0.6, 0.4, 0.2, 0.1, 0.1, 0.3, 1, 3, 6, 8, 8, 7, 8, 8, 7, 6, 4, 3, 3, 3, 2.5, 2, 1.5]
)
HOURS = HOURS / HOURS.sum()

# --- the phrase bank -----------------------------------------------------------------

OPENERS = {
    "fi": (
        "Tapasin tänään",
        "Kohtasin illan kierroksella",
        "Asiakas kertoi, että tapasimme",
        "Yhteistyökumppani ohjasi meille",
        "Jalkautuessa juttelin",
        "Jo kolmas kerta tällä viikolla tapasin",
        "Päivystyksessä tuli vastaan",
    ),
    "sv": (
        "Idag träffade jag",
        "På kvällsrundan mötte jag",
        "En samarbetspartner hänvisade till oss",
        "Under det uppsökande arbetet pratade jag med",
        "För tredje gången den här veckan träffade jag",
    ),
    "en": (
        "Today I met",
        "On the evening round I met",
        "A partner organisation referred to us",
        "For the third time this week I met",
    ),
}
SUBJECTS = {
    "fi": (
        "nuoren aikuisen",
        "lapsiperheen",
        "iäkkään miehen",
        "nuoren naisen",
        "maahan muuttaneen perheen",
        "pitkäaikaistyöttömän",
        "opiskelijan",
        "yksinhuoltajan",
    ),
    "sv": (
        "en ung vuxen",
        "en barnfamilj",
        "en äldre man",
        "en ung kvinna",
        "en invandrarfamilj",
        "en långtidsarbetslös",
        "en studerande",
    ),
    "en": ("a young adult", "a family with children", "an older man", "a young woman"),
}
PROBLEMS: dict[str, dict[str, tuple[str, ...]]] = {
    "fi": {
        "theme.housing": (
            "joka on ollut ilman asuntoa kaksi viikkoa ja yöpyy rappukäytävissä",
            "jolle ei löytynyt hätämajoitusta pakkasyöksi",
            "jonka vuokrasopimus irtisanottiin vuokrarästien takia",
            "joka asuu kaverin sohvalla eikä pääse asuntojonoon ilman osoitetta",
        ),
        "theme.substance_mental": (
            "joka ei päässyt päihdehoitoon, koska jonoa on kuusi viikkoa",
            "jonka masennus on pahentunut eikä aikaa psykiatrille saa",
            "joka käyttää päivittäin eikä tiedä mihin hakeutua",
        ),
        "theme.income": (
            "jonka toimeentulotukipäätös on viipynyt yli kuukauden",
            "jolla ei ole rahaa ruokaan ennen kuun vaihdetta",
            "joka ei saanut Kelasta vastausta eikä osaa täyttää hakemusta",
        ),
        "theme.service_access": (
            "joka ei saa aikaa sosiaalityöntekijälle, puhelinpalvelu ei vastaa",
            "jolta sähköinen asiointi ei onnistu ilman pankkitunnuksia",
            "jota pompoteltiin palvelusta toiseen kolme kertaa",
        ),
        "theme.early_support": (
            "joka putoaa palvelujen väliin, kukaan ei ota kokonaisuutta vastuulleen",
            "jonka tilanteeseen olisi voinut puuttua jo vuosi sitten",
        ),
        "theme.functional_health": (
            "jonka toimintakyky on heikentynyt eikä kotihoito riitä",
            "joka ei ole käynyt lääkärissä vuosiin",
        ),
        "theme.relationships_participation": (
            "joka on ollut yksin kotona viikkoja eikä tapaa ketään",
            "jolla ei ole yhtään luotettavaa ihmistä lähellä",
        ),
        "theme.employment_education": (
            "joka keskeytti opinnot eikä tiedä mitä seuraavaksi",
            "jolle ei löydy kuntouttavaa työtoimintaa lähialueelta",
        ),
        "theme.violence": (
            "joka kertoi kokeneensa väkivaltaa kotona",
            "jota on uhkailtu velkojen takia",
        ),
        "theme.client_experience": (
            "joka koki, ettei häntä kuunneltu palvelutarpeen arvioinnissa",
            "joka sanoi, että hakemuksia on liikaa ja ne ovat vaikeita",
        ),
        "theme.regional": (
            "jonka kunnassa palvelua ei ole lainkaan tarjolla",
            "jolle lähin palvelu on 80 kilometrin päässä ilman julkista liikennettä",
        ),
        "theme.other": ("jonka asia ei sopinut mihinkään valmiiseen luokkaan",),
    },
    "sv": {
        "theme.housing": (
            "som har varit utan bostad i två veckor och sover i trappuppgångar",
            "som inte fick någon nödinkvartering en kall natt",
            "som blev uppsagd från sin bostad på grund av hyresskulder",
        ),
        "theme.substance_mental": (
            "som inte kom in på missbruksvård, kön är sex veckor",
            "vars depression har förvärrats och som inte får tid till psykiater",
        ),
        "theme.income": (
            "vars beslut om utkomststöd har dröjt över en månad",
            "som inte har pengar till mat före månadsskiftet",
        ),
        "theme.service_access": (
            "som inte får tid hos socialarbetaren, telefontjänsten svarar inte",
            "som skickades från en tjänst till en annan tre gånger",
        ),
        "theme.early_support": ("som faller mellan tjänsterna utan att någon tar ansvar",),
        "theme.functional_health": (
            "vars funktionsförmåga har försämrats och hemvården räcker inte",
        ),
        "theme.relationships_participation": ("som har varit ensam hemma i veckor",),
        "theme.employment_education": ("som avbröt studierna och inte vet vad som följer",),
        "theme.violence": ("som berättade om våld i hemmet",),
        "theme.client_experience": ("som upplevde att ingen lyssnade vid bedömningen",),
        "theme.regional": ("vars kommun inte erbjuder tjänsten alls",),
        "theme.other": ("vars ärende inte passade i någon färdig kategori",),
    },
    "en": {
        "theme.housing": ("who has had no home for two weeks and sleeps in stairwells",),
        "theme.substance_mental": (
            "who could not get substance-abuse care, the queue is six weeks",
        ),
        "theme.income": ("whose social assistance decision has taken over a month",),
        "theme.service_access": ("who cannot get an appointment, the phone line does not answer",),
        "theme.early_support": ("who falls between services, nobody takes responsibility",),
        "theme.functional_health": ("whose functional capacity has declined",),
        "theme.relationships_participation": ("who has been alone at home for weeks",),
        "theme.employment_education": ("who dropped out of studies",),
        "theme.violence": ("who told about violence at home",),
        "theme.client_experience": ("who felt nobody listened in the assessment",),
        "theme.regional": ("whose municipality offers no such service",),
        "theme.other": ("whose matter fitted no category",),
    },
}
CONTEXTS = {
    "fi": (
        "Sama tilanne on toistunut alueella useasti.",
        "Ohjasin eteenpäin, mutta paikkaa ei ollut.",
        "Asiakas oli tyytyväinen, että joku kuunteli.",
        "",
        "Tilanne vaatisi nopeampaa reagointia.",
    ),
    "sv": ("Samma sak har hänt flera gånger i området.", "", "Situationen kräver snabbare svar."),
    "en": ("The same has happened several times in the area.", ""),
}
QUOTES = {
    "fi": (
        "En tiedä enää kenelle soittaa.",
        "Kukaan ei ole kysynyt multa tätä ennen.",
        "Mä en jaksa taas selittää kaikkea alusta.",
        "Kiitos kun tulitte.",
    ),
    "sv": ("Jag vet inte längre vem jag ska ringa.", "Ingen har frågat mig förut."),
    "en": ("I don't know who to call any more.", "Nobody has asked me this before."),
}
ACTIONS = {
    "fi": (
        "Lisää hätämajoituspaikkoja talviksi.",
        "Matalan kynnyksen päihdepalvelu ilman ajanvarausta.",
        "Yksi vastuutyöntekijä, joka kokoaa palvelut.",
        "Toimeentulotuen käsittelyaikojen seuranta.",
    ),
    "sv": ("Fler nödinkvarteringsplatser till vintern.", "En ansvarig kontaktperson."),
    "en": ("More emergency shelter places for the winter.",),
}
ANSWERS = {
    "fi": (
        "Otettu esille johtoryhmässä, selvitämme hätämajoituksen lisäpaikat.",
        "Kiitos, välitetty palvelupäällikölle.",
        "Asia on korjattu: jonotus lyhenee ensi kuussa.",
    ),
    "sv": ("Tack, vidarebefordrat till servicechefen.",),
    "en": ("Thank you, passed on to the head of services.",),
}


# --- the country ---------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    """Teams, regions and people, the same for every data set of the same seed."""

    team_ids: list[str]
    team_names: list[str]
    team_regions: list[str]
    team_languages: list[str]
    team_p: np.ndarray  # activity share per team (sums to 1)
    people_offset: np.ndarray  # first person id of each team's workers
    people_count: np.ndarray  # number of workers per team
    people: list[tuple[int, str, str, str, str]]  # id, pseudonym, team, role, language
    leaders: dict[str, list[int]]  # region -> leader person ids


@cache
def country(seed: int) -> Country:
    rng = np.random.default_rng([seed, 0])
    population = np.array([r[2] for r in REGIONS], dtype=float)
    # At least six teams per region, the rest by population.
    counts = 6 + np.floor((TEAMS - 6 * len(REGIONS)) * population / population.sum()).astype(int)
    counts[np.argmax(population)] += TEAMS - counts.sum()
    team_ids: list[str] = []
    team_names: list[str] = []
    team_regions: list[str] = []
    team_languages: list[str] = []
    for (region, name, _, swedish), count in zip(REGIONS, counts, strict=True):
        for k in range(1, count + 1):
            language = "sv" if rng.random() < swedish else "fi"
            team_ids.append(f"{region}-{k:02d}")
            team_names.append(
                f"{name}, uppsökande {k}" if language == "sv" else f"{name}, etsivä {k}"
            )
            team_regions.append(region)
            team_languages.append(language)
    activity = rng.lognormal(0.0, 0.7, TEAMS)
    team_p = activity / activity.sum()
    # Bigger teams report more: people follow activity, with noise, at least four each.
    size_weight = activity * rng.lognormal(0.0, 0.3, TEAMS)
    workers_total = PEOPLE - TEAMS - 2 * len(REGIONS)
    people_count = np.maximum(4, np.round(workers_total * size_weight / size_weight.sum()))
    people_count = people_count.astype(int)
    people_count[np.argmax(people_count)] -= people_count.sum() - workers_total
    people: list[tuple[int, str, str, str, str]] = []
    offsets = np.zeros(TEAMS, dtype=int)
    next_id = 1
    for i, team in enumerate(team_ids):
        offsets[i] = next_id
        for _ in range(people_count[i]):
            people.append((next_id, f"w-{next_id:08x}", team, "worker", team_languages[i]))
            next_id += 1
    for i, team in enumerate(team_ids):
        people.append((next_id, f"w-{next_id:08x}", team, "lead", team_languages[i]))
        next_id += 1
    leaders: dict[str, list[int]] = {}
    for region, *_ in REGIONS:
        first_team = team_ids[team_regions.index(region)]
        for _ in range(2):
            people.append((next_id, f"w-{next_id:08x}", first_team, "leader", "fi"))
            leaders.setdefault(region, []).append(next_id)
            next_id += 1
    assert len(people) == PEOPLE
    return Country(
        team_ids,
        team_names,
        team_regions,
        team_languages,
        team_p,
        offsets,
        people_count,
        people,
        leaders,
    )


# --- the rhythm of days ----------------------------------------------------------------


def day_volume(day: date, end: date) -> float:
    """Relative number of observations on a day (1.0 = an ordinary weekday now)."""
    weekday = (1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.35)[day.weekday()]
    doy = day.timetuple().tm_yday
    season = 1.0 - 0.35 * math.exp(-(((doy - 200) / 14) ** 2))  # July holidays
    if (day.month, day.day) >= (12, 23) or (day.month, day.day) <= (1, 1):
        season *= 0.5
    years_before = (end - day).days / 365.25
    adoption = max(0.3, 1.0 - 0.11 * years_before)  # slow growth in use over the years
    return weekday * season * adoption


@cache
def base_rate(end: date) -> float:
    """Observations on an ordinary weekday now, so that five years hold about 1,000,000."""
    total = sum(day_volume(end - timedelta(days=d), end) for d in range(round(5 * 365.25)))
    return ROWS_PER_FIVE_YEARS / total


def theme_p(day: date) -> np.ndarray:
    doy = day.timetuple().tm_yday
    weights = np.array([1.0 / (rank + 1) ** 1.1 for rank in range(len(THEME_ORDER))])
    winter = math.cos(2 * math.pi * (doy - 15) / 365.25)  # +1 mid-January, -1 mid-July
    weights[0] *= 1.0 + 0.6 * winter  # housing and homelessness
    weights[2] *= 1.0 + 0.2 * winter  # income: heating, Christmas
    weights[7] *= 1.0 + 1.2 * math.exp(-(((doy - 245) / 20) ** 2))  # schooling, autumn
    weights[8] *= 1.0 + 0.3 * math.exp(-(((doy - 190) / 25) ** 2))  # violence, summer
    shares: np.ndarray = weights / weights.sum()
    return shares


def _day_count(seed: int, day: date, end: date) -> int:
    rng = np.random.default_rng([seed, day.toordinal()])
    return int(rng.poisson(base_rate(end) * day_volume(day, end)))


def plan_days(rows: int, seed: int, end: date) -> tuple[date, int]:
    """The first day and how many of its rows to keep, walking back from ``end``."""
    total = 0
    day = end
    while True:
        count = _day_count(seed, day, end)
        if total + count >= rows:
            return day, rows - total
        total += count
        day -= timedelta(days=1)


# --- rows -------------------------------------------------------------------------------

OBSERVATION_COLUMNS = (
    "id",
    "person_id",
    "team_id",
    "region",
    "area",
    "description",
    "quote",
    "action",
    "theme",
    "population_group",
    "signal",
    "frequency",
    "escalation",
    "polarity",
    "task",
    "source",
    "scale",
    "observed_at",
    "recorded_at",
    "updated_at",
    "withdrawn_at",
    "transport",
    "language",
    "flow_version",
    "taxonomy_version",
)
EVENT_COLUMNS = ("id", "observation_id", "status", "text", "actor_person_id", "created_at")


@dataclass
class Chunk:
    """Rows ready to insert: times as numpy datetime64[us] (UTC), the rest as lists."""

    columns: dict[str, Any]
    events: dict[str, Any]

    def __len__(self) -> int:
        return len(self.columns["id"])


def _pick(rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], n: int) -> np.ndarray:
    codes, p = table
    return codes[rng.choice(len(codes), n, p=p)]


def _optional(rng: np.random.Generator, values: np.ndarray, share: float) -> list[Any]:
    keep = rng.random(len(values)) < share
    return [v if k else None for v, k in zip(values.tolist(), keep.tolist(), strict=True)]


def _utc_midnight(day: date) -> np.datetime64:
    local_noon = datetime(day.year, day.month, day.day, 12, tzinfo=HELSINKI)
    offset = local_noon.utcoffset() or timedelta(0)
    return np.datetime64(datetime(day.year, day.month, day.day) - offset, "us")


def generate_day(seed: int, day: date, end: date, keep_last: int | None = None) -> dict[str, Any]:
    """All observations of one day (the last ``keep_last`` of them when given)."""
    land = country(seed)
    rng = np.random.default_rng([seed, day.toordinal()])
    n = int(rng.poisson(base_rate(end) * day_volume(day, end)))  # same draw as _day_count
    team = rng.choice(TEAMS, n, p=land.team_p)
    person = land.people_offset[team] + np.floor(rng.random(n) * land.people_count[team]).astype(
        int
    )
    theme_idx = rng.choice(len(THEME_ORDER), n, p=theme_p(day))
    themes = np.array(THEME_ORDER, dtype=object)[theme_idx]
    seconds = rng.choice(24, n, p=HOURS) * 3600 + rng.integers(0, 3600, n)
    observed = _utc_midnight(day) + seconds.astype("timedelta64[s]")
    delay = rng.exponential(15 * 60, n) + (rng.random(n) < 0.05) * rng.uniform(3600, 8 * 3600, n)
    recorded = observed + (delay * 1e6).astype("timedelta64[us]")
    withdrawn_mask = rng.random(n) < 0.004
    escalation = _pick(rng, ESCALATIONS, n)
    languages = np.array(land.team_languages, dtype=object)[team]
    stray = rng.random(n)
    languages = np.where(stray < 0.02, "en", np.where(stray < 0.04, "fi", languages))
    opener_r, subject_r, problem_r, context_r = (rng.random(n) for _ in range(4))
    quote_r, action_r = rng.random(n), rng.random(n)
    has_quote = rng.random(n) < 0.12
    has_action = rng.random(n) < 0.18
    descriptions: list[str] = []
    quotes: list[str | None] = []
    actions: list[str | None] = []
    for i in range(n):
        lang = languages[i]
        problems = PROBLEMS[lang][themes[i]]
        text = (
            f"{_at(OPENERS[lang], opener_r[i])} {_at(SUBJECTS[lang], subject_r[i])}, "
            f"{_at(problems, problem_r[i])}. {_at(CONTEXTS[lang], context_r[i])}"
        ).strip()
        descriptions.append(text)
        quotes.append(_at(QUOTES[lang], quote_r[i]) if has_quote[i] else None)
        actions.append(_at(ACTIONS[lang], action_r[i]) if has_action[i] else None)
    areas = np.char.add("alue-", (1 + rng.integers(0, 5, n)).astype(str)).astype(object)
    columns: dict[str, Any] = {
        "person_id": person.tolist(),
        "team_id": np.array(land.team_ids, dtype=object)[team].tolist(),
        "region": np.array(land.team_regions, dtype=object)[team].tolist(),
        "area": _optional(rng, areas, 0.4),
        "description": descriptions,
        "quote": quotes,
        "action": actions,
        "theme": themes.tolist(),
        "population_group": _pick(rng, GROUPS, n).tolist(),
        "signal": _pick(rng, SIGNALS, n).tolist(),
        "frequency": _pick(rng, FREQUENCIES, n).tolist(),
        "escalation": escalation.tolist(),
        "polarity": _pick(rng, POLARITIES, n).tolist(),
        "task": _optional(rng, _pick(rng, TASKS, n), 0.35),
        "source": _optional(rng, _pick(rng, SOURCES, n), 0.4),
        "scale": _optional(rng, _pick(rng, SCALES, n), 0.3),
        "observed_at": observed,
        "recorded_at": recorded,
        "updated_at": recorded,
        "withdrawn_at": np.where(
            withdrawn_mask, recorded + np.timedelta64(3600, "s"), np.datetime64("NaT")
        ),
        "transport": _pick(rng, TRANSPORTS, n).tolist(),
        "language": languages.tolist(),
        "flow_version": [FLOW_VERSION] * n,
        "taxonomy_version": [taxonomy.TAXONOMY_VERSION] * n,
        # not columns: what escalation events to make
        "_answer_r": rng.random(n),
        "_reply_days": rng.exponential(4.0, n),
    }
    if keep_last is not None and keep_last < n:
        columns = {k: v[n - keep_last :] for k, v in columns.items()}
    return columns


def _at(options: tuple[str, ...], r: float) -> str:
    return options[int(r * len(options))]


def _concat(days: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in days[0]:
        parts = [d[key] for d in days]
        if isinstance(parts[0], np.ndarray):
            out[key] = np.concatenate(parts)
        else:
            out[key] = [value for part in parts for value in part]
    return out


def _escalation_events(
    columns: dict[str, Any], first_id: int, first_event_id: int, end: date, seed: int
) -> dict[str, Any]:
    """Leaders acknowledge most escalations within days and answer many; recent ones wait."""
    land = country(seed)
    end_utc = np.datetime64(datetime(end.year, end.month, end.day) + timedelta(days=1), "us")
    ids: list[int] = []
    obs: list[int] = []
    statuses: list[str] = []
    texts: list[str | None] = []
    actors: list[int] = []
    times: list[np.datetime64] = []
    for i, code in enumerate(columns["escalation"]):
        if code == "escalation.none":
            continue
        recorded = columns["recorded_at"][i]
        fast = 0.1 if code == "escalation.shl48" else 1.0
        ack = recorded + np.timedelta64(int(columns["_reply_days"][i] * fast * 86400e6), "us")
        if ack >= end_utc:
            continue  # still open
        region_leaders = land.leaders[columns["region"][i]]
        actor = region_leaders[i % len(region_leaders)]
        lang = columns["language"][i]
        ids.append(first_event_id + len(ids))
        obs.append(first_id + i)
        statuses.append("acknowledged")
        texts.append(None)
        actors.append(actor)
        times.append(ack)
        r = columns["_answer_r"][i]
        answered = ack + np.timedelta64(int(columns["_reply_days"][i] * 3 * 86400e6), "us")
        if answered < end_utc and r < 0.8:
            ids.append(first_event_id + len(ids))
            obs.append(first_id + i)
            statuses.append("handled" if r < 0.5 else "decided")
            texts.append(_at(ANSWERS[lang], r / 0.8))
            actors.append(actor)
            times.append(answered)
            continue
        # Most of the rest are closed without an answer after a month or two; about
        # one escalation in twenty is forgotten and stays open for good.
        closed = ack + np.timedelta64(int((30 + 100 * (r - 0.8)) * 86400e6), "us")
        if closed < end_utc and r < 0.95:
            ids.append(first_event_id + len(ids))
            obs.append(first_id + i)
            statuses.append("no_action")
            texts.append(None)
            actors.append(actor)
            times.append(closed)
    return {
        "id": ids,
        "observation_id": obs,
        "status": statuses,
        "text": texts,
        "actor_person_id": actors,
        "created_at": np.array(times, dtype="datetime64[us]"),
    }


def chunks(rows: int, seed: int, end: date) -> Iterator[Chunk]:
    """The data set in chronological chunks of ``CHUNK_DAYS`` days, ids ascending."""
    first_day, keep_first = plan_days(rows, seed, end)
    day = first_day
    next_id = 1
    next_event_id = 1
    while day <= end:
        days = []
        for _ in range(CHUNK_DAYS):
            if day > end:
                break
            days.append(generate_day(seed, day, end, keep_first if day == first_day else None))
            day += timedelta(days=1)
        columns = _concat(days)
        n = len(columns["person_id"])
        events = _escalation_events(columns, next_id, next_event_id, end, seed)
        columns = {k: v for k, v in columns.items() if not k.startswith("_")}
        columns["id"] = list(range(next_id, next_id + n))
        next_id += n
        next_event_id += len(events["id"])
        yield Chunk(columns, events)


# --- writing ---------------------------------------------------------------------------


def _sqlite_times(values: np.ndarray) -> list[str | None]:
    """datetime64[us] -> SQLAlchemy's SQLite text format (naive UTC, microseconds)."""
    text = np.datetime_as_string(values, unit="us")
    return [None if t == "NaT" else t.replace("T", " ") for t in text.tolist()]


def _pg_times(values: np.ndarray) -> list[datetime | None]:
    return [None if v is None else v.replace(tzinfo=UTC) for v in values.tolist()]


def _records(columns: dict[str, Any], names: tuple[str, ...], times: Any) -> list[tuple[Any, ...]]:
    converted = [
        times(columns[name]) if isinstance(columns[name], np.ndarray) else columns[name]
        for name in names
    ]
    return list(zip(*converted, strict=True))


def _team_rows(seed: int) -> list[tuple[str, str, str, str]]:
    land = country(seed)
    return list(
        zip(land.team_ids, land.team_names, land.team_regions, land.team_languages, strict=True)
    )


def _exists(path: str) -> bool:
    return Path(path).exists()


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database, "an SQLite URL needs a file"
    return database


def write_sqlite(
    url: str, rows: int, seed: int, end: date, progress: bool, analyze: bool = False
) -> int:
    conn = sqlite3.connect(_sqlite_path(url))
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a bulk load: redone from scratch if it fails
        conn.execute("PRAGMA foreign_keys=ON")
        now = _sqlite_times(np.array([np.datetime64(f"{end.isoformat()}T00:00:00", "us")]))[0]
        with conn:
            conn.executemany(
                "INSERT INTO teams (id, name, region, language) VALUES (?, ?, ?, ?)",
                _team_rows(seed),
            )
            conn.executemany(
                "INSERT INTO people (id, pseudonym, team_id, role, language, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(*p, now) for p in country(seed).people],
            )
        obs_sql = (
            f"INSERT INTO observations ({', '.join(OBSERVATION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(OBSERVATION_COLUMNS))})"
        )
        ev_sql = (
            f"INSERT INTO escalation_events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
        )
        written = 0
        for chunk in chunks(rows, seed, end):
            with conn:
                conn.executemany(
                    obs_sql, _records(chunk.columns, OBSERVATION_COLUMNS, _sqlite_times)
                )
                conn.executemany(ev_sql, _records(chunk.events, EVENT_COLUMNS, _sqlite_times))
            written += len(chunk)
            _progress(progress, written, rows)
        if analyze:
            conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return written
    finally:
        conn.close()


async def write_postgresql(url: str, rows: int, seed: int, end: date, progress: bool) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        now = datetime(end.year, end.month, end.day, tzinfo=UTC)
        await conn.copy_records_to_table(
            "teams", records=_team_rows(seed), columns=["id", "name", "region", "language"]
        )
        await conn.copy_records_to_table(
            "people",
            records=[(*p, now) for p in country(seed).people],
            columns=["id", "pseudonym", "team_id", "role", "language", "created_at"],
        )
        written = 0
        for chunk in chunks(rows, seed, end):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "observations",
                    records=_records(chunk.columns, OBSERVATION_COLUMNS, _pg_times),
                    columns=list(OBSERVATION_COLUMNS),
                )
                await conn.copy_records_to_table(
                    "escalation_events",
                    records=_records(chunk.events, EVENT_COLUMNS, _pg_times),
                    columns=list(EVENT_COLUMNS),
                )
            written += len(chunk)
            _progress(progress, written, rows)
        # Explicit ids were given: move the sequences past them for later inserts.
        for table in ("people", "observations", "escalation_events"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        await conn.execute("VACUUM (ANALYZE)")
        return written
    finally:
        await conn.close()


def _progress(enabled: bool, written: int, rows: int) -> None:
    if enabled:
        print(f"\r  {human(written)} / {human(rows)} rows", end="", file=sys.stderr, flush=True)


async def count_observations(url: str) -> int:
    """Rows in ``observations`` (0 when the table does not exist yet)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(url))
        try:
            found = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'observations'"
            ).fetchone()[0]
            return (
                int(conn.execute("SELECT count(*) FROM observations").fetchone()[0]) if found else 0
            )
        finally:
            conn.close()
    pg = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if not await pg.fetchval("SELECT to_regclass('observations') IS NOT NULL"):
            return 0
        return int(await pg.fetchval("SELECT count(*) FROM observations"))
    finally:
        await pg.close()


async def generate(
    url: str,
    rows: int,
    seed: int = 1,
    end: date = DEFAULT_END,
    progress: bool = False,
    analyze_sqlite: bool = False,
) -> float:
    """Migrate the database at ``url`` and fill it; returns the seconds it took."""
    started = time.perf_counter()
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    if await count_observations(url):
        raise SystemExit(f"{make_url(url).database}: the observations table is not empty")
    if normalise_url(url).startswith("sqlite"):
        await asyncio.to_thread(write_sqlite, url, rows, seed, end, progress, analyze_sqlite)
    else:
        await write_postgresql(url, rows, seed, end, progress)
    if progress:
        print(file=sys.stderr)
    return time.perf_counter() - started


async def upgraded(url: str, statistics: bool = True) -> str:
    """Bring a kept data set to the newest migration, as the app does at every start, and
    give SQLite the planner statistics the app's after-migration and daily runs give it."""
    db = Database(url)
    try:
        await db.upgrade(statistics=statistics)
    finally:
        await db.close()
    return url


async def ensure_dataset(
    backend: str,
    rows: int,
    seed: int = 1,
    pg_admin_url: str = DEFAULT_PG_URL,
    statistics: bool = True,
) -> str:
    """The URL of the data set of ``rows`` observations, generated first if it is missing.

    Data sets are kept between runs (``bench/data/`` for SQLite, a database named
    ``havainto_bench_<rows>_s<seed>`` on the PostgreSQL server); one left half
    written by an interrupted run is made again.
    """
    url = dataset_url(backend, rows, seed, pg_admin_url)
    name = dataset_name(rows, seed)
    if backend == "sqlite":
        path = _sqlite_path(url)
        if _exists(path) and await count_observations(url) == rows:
            return await upgraded(url, statistics)
        remove_sqlite(path)
    else:
        if await pg_exists(pg_admin_url, name) and await count_observations(url) == rows:
            return await upgraded(url, statistics)
        await pg_drop(pg_admin_url, name)
        await pg_create(pg_admin_url, name)
    print(f"generating {human(rows)} observations on {backend} ...", file=sys.stderr, flush=True)
    seconds = await generate(url, rows, seed, progress=sys.stderr.isatty())
    print(f"generated in {seconds:.1f} s", file=sys.stderr, flush=True)
    return await upgraded(url, statistics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Fill an empty Havainto database with a synthetic national data set.",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="observations to generate")
    parser.add_argument(
        "--url",
        required=True,
        help="database URL (sqlite:///path.db or postgresql://user@host/db); must be empty",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--end", type=date.fromisoformat, default=DEFAULT_END, help="last day (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE SQLite right after the load (the default does it afterwards)",
    )
    parser.add_argument(
        "--no-statistics",
        action="store_true",
        help="leave SQLite without planner statistics (the app gathers them daily)",
    )
    args = parser.parse_args(argv)
    seconds = asyncio.run(
        generate(
            args.url, args.rows, args.seed, args.end, progress=True, analyze_sqlite=args.analyze
        )
    )
    if not (args.analyze or args.no_statistics):
        asyncio.run(upgraded(args.url))
    first, _ = plan_days(args.rows, args.seed, args.end)
    print(
        f"generated {human(args.rows)} observations from {first} to {args.end} "
        f"({TEAMS} teams, {len(REGIONS)} regions, {human(PEOPLE)} people) "
        f"in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
