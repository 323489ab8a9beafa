"""Official area codes: the wellbeing services counties and municipality numbers.

Numbers from two deployments can be put side by side only when their regions and areas
carry the codes everybody else uses. A deployment writes them in its config
(``[regions.<id>] code``, ``[[teams.areas]] municipality``); ``bot.config`` checks them
against this module at start, and exports and reports print them beside the names.

The county codes are Statistics Finland's classification of wellbeing services
counties (*hyvinvointialueet*, in force since 1 January 2023): 01-21 for the 21
counties, 90 for the City of Helsinki, which organises the services itself, and 91 for
Åland, which is outside the reform but in the classification. The list below was
checked against the classification as republished, with Statistics Finland named as its
source, in the reference table ``hyvinvointialue`` of Vipunen, the education
administration's statistics service (dated 2023-05-10). Should the classification
change, add the new code here (and keep the old one while rows with it are reported).

Municipality numbers (*kuntanumero*) are Statistics Finland's three-digit municipality
codes, written with their leading zeros (Helsinki 091, Espoo 049, Vantaa 092). Only
their form is checked: the list of municipalities changes with mergers, and a number
that is well formed but unknown is better printed than refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class County:
    """One code of the classification with its official names."""

    code: str
    fi: str
    sv: str
    en: str


WELLBEING_COUNTIES: tuple[County, ...] = (
    County(
        "01",
        "Itä-Uudenmaan hyvinvointialue",
        "Östra Nylands välfärdsområde",
        "East Uusimaa wellbeing services county",
    ),
    County(
        "02",
        "Keski-Uudenmaan hyvinvointialue",
        "Mellersta Nylands välfärdsområde",
        "Central Uusimaa wellbeing services county",
    ),
    County(
        "03",
        "Länsi-Uudenmaan hyvinvointialue",
        "Västra Nylands välfärdsområde",
        "West Uusimaa wellbeing services county",
    ),
    County(
        "04",
        "Vantaan ja Keravan hyvinvointialue",
        "Vanda och Kervo välfärdsområde",
        "Vantaa and Kerava wellbeing services county",
    ),
    County(
        "05",
        "Varsinais-Suomen hyvinvointialue",
        "Egentliga Finlands välfärdsområde",
        "Southwest Finland wellbeing services county",
    ),
    County(
        "06",
        "Satakunnan hyvinvointialue",
        "Satakunta välfärdsområde",
        "Satakunta wellbeing services county",
    ),
    County(
        "07",
        "Kanta-Hämeen hyvinvointialue",
        "Egentliga Tavastlands välfärdsområde",
        "Kanta-Häme wellbeing services county",
    ),
    County(
        "08",
        "Pirkanmaan hyvinvointialue",
        "Birkalands välfärdsområde",
        "Pirkanmaa wellbeing services county",
    ),
    County(
        "09",
        "Päijät-Hämeen hyvinvointialue",
        "Päijänne-Tavastlands välfärdsområde",
        "Päijät-Häme wellbeing services county",
    ),
    County(
        "10",
        "Kymenlaakson hyvinvointialue",
        "Kymmenedalens välfärdsområde",
        "Kymenlaakso wellbeing services county",
    ),
    County(
        "11",
        "Etelä-Karjalan hyvinvointialue",
        "Södra Karelens välfärdsområde",
        "South Karelia wellbeing services county",
    ),
    County(
        "12",
        "Etelä-Savon hyvinvointialue",
        "Södra Savolax välfärdsområde",
        "South Savo wellbeing services county",
    ),
    County(
        "13",
        "Pohjois-Savon hyvinvointialue",
        "Norra Savolax välfärdsområde",
        "North Savo wellbeing services county",
    ),
    County(
        "14",
        "Pohjois-Karjalan hyvinvointialue",
        "Norra Karelens välfärdsområde",
        "North Karelia wellbeing services county",
    ),
    County(
        "15",
        "Keski-Suomen hyvinvointialue",
        "Mellersta Finlands välfärdsområde",
        "Central Finland wellbeing services county",
    ),
    County(
        "16",
        "Etelä-Pohjanmaan hyvinvointialue",
        "Södra Österbottens välfärdsområde",
        "South Ostrobothnia wellbeing services county",
    ),
    County(
        "17",
        "Pohjanmaan hyvinvointialue",
        "Österbottens välfärdsområde",
        "Ostrobothnia wellbeing services county",
    ),
    County(
        "18",
        "Keski-Pohjanmaan hyvinvointialue",
        "Mellersta Österbottens välfärdsområde",
        "Central Ostrobothnia wellbeing services county",
    ),
    County(
        "19",
        "Pohjois-Pohjanmaan hyvinvointialue",
        "Norra Österbottens välfärdsområde",
        "North Ostrobothnia wellbeing services county",
    ),
    County(
        "20",
        "Kainuun hyvinvointialue",
        "Kajanalands välfärdsområde",
        "Kainuu wellbeing services county",
    ),
    County(
        "21",
        "Lapin hyvinvointialue",
        "Lapplands välfärdsområde",
        "Lapland wellbeing services county",
    ),
    County("90", "Helsingin kaupunki", "Helsingfors stad", "City of Helsinki"),
    County("91", "Ahvenanmaa", "Åland", "Åland"),
)
COUNTY_CODES: frozenset[str] = frozenset(county.code for county in WELLBEING_COUNTIES)
_MUNICIPALITY = re.compile(r"\d{3}")


def county(code: str) -> County | None:
    """The county of ``code`` ("90"), or None when the classification has no such code."""
    return next((c for c in WELLBEING_COUNTIES if c.code == code), None)


def is_municipality_number(value: str) -> bool:
    """True for a municipality number in Statistics Finland's form: three digits."""
    return _MUNICIPALITY.fullmatch(value) is not None


@dataclass(frozen=True)
class OfficialCodes:
    """A deployment's official codes, by its own ids: what exports and reports print.

    ``regions``: region id -> county code ("helsinki" -> "90"); ``municipalities``:
    (team id, area id) -> municipality number (("hki-etsiva", "kallio") -> "091").
    Regions and areas without a code in the config are simply not in them.
    """

    regions: Mapping[str, str] = field(default_factory=dict)
    municipalities: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def region(self, region: str | None) -> str | None:
        return self.regions.get(region) if region else None

    def municipality(self, team: str, area: str | None) -> str | None:
        return self.municipalities.get((team, area)) if area else None


NO_CODES = OfficialCodes()


def with_code(name: str, code: str | None) -> str:
    """A region's or area's name with its official code beside it: "Helsinki (90)"."""
    return f"{name} ({code})" if code else name
