"""The observation taxonomy: stable, language-independent codes.

Codes such as ``theme.housing`` never change meaning once published, so
observations stay comparable between teams, regions and years. Labels live in
the message catalogs (``flows/locale``), keyed by the code itself. A change to
the lists below that is not purely additive needs a new ``TAXONOMY_VERSION``.

The lists follow the source texts summarised in ``shared/DOMAIN.md``: the
summary themes of the national survey (seed 001), the four service-system
failure signals of the ministry's article (seed 000) plus two of our own, and
the service tasks of the survey.

``SUPPORT_NEED`` (version 2026.2) is optional, for deployments that switch it on
(``taxonomy.support_needs``): the ten support needs for which the Social Welfare Act
(sosiaalihuoltolaki 1301/2014) § 11 says social services must be organised, in the
order of the law. An observation carries at most one, its main need, like every other
dimension: counts by support need add up to the total, so shares and the suppression
of small counts work on them as on themes. Rows saved under 2026.1 have none.

The escalation codes also have names (``LEADERSHIP``, ``SHL48``, and
``ESCALATED_CODES`` for both): every layer that asks "was this raised?"
(notices, digests, the social report, exports) imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

TAXONOMY_VERSION = "2026.2"


@dataclass(frozen=True)
class Dimension:
    """One coded field of an observation: its name and its allowed codes, in display order."""

    name: str
    codes: tuple[str, ...]
    #: The observation's field (and the export's column) that holds the code; empty: ``name``.
    field: str = ""

    def __post_init__(self) -> None:
        if not self.field:
            object.__setattr__(self, "field", self.name)

    def __contains__(self, code: object) -> bool:
        return code in self.codes


def _dim(name: str, *values: str, field: str = "") -> Dimension:
    return Dimension(name, tuple(f"{name}.{v}" for v in values), field)


THEME = _dim(
    "theme",
    "housing",
    "income",
    "substance_mental",
    "employment_education",
    "relationships_participation",
    "functional_health",
    "violence",
    "service_access",
    "early_support",
    "client_experience",
    "regional",
    "other",
)
GROUP = _dim(
    "group",
    *("children", "youth", "working_age", "older", "disabled", "immigrants", "other"),
    field="population_group",
)
SIGNAL = _dim(
    "signal",
    "queues",
    "criteria",
    "mismatch",
    "unrecognised",
    "no_service",
    "not_service_system",
)
FREQUENCY = _dim("frequency", "single", "recurring", "growing", "new")
NOT_ESCALATED = "escalation.none"
LEADERSHIP = "escalation.leadership"  # raised to leadership
SHL48 = "escalation.shl48"  # notified under SHL § 48
ESCALATED_CODES: tuple[str, ...] = (LEADERSHIP, SHL48)
ESCALATION = Dimension("escalation", (NOT_ESCALATED, *ESCALATED_CODES))
POLARITY = _dim("polarity", "problem", "good_practice")
SERVICE_TASK = _dim(
    "task",
    "families",
    "working_age",
    "child_protection",
    "disability",
    "older",
    "substance",
    "family_law",
    "other",
)
SOURCE = _dim("source", "own", "client", "resident", "partner")
SCALE = _dim("scale", "one", "few", "many")
# Sosiaalihuoltolaki 1301/2014 § 11, points 1-10, in that order (taxonomy 2026.2).
SUPPORT_NEED = _dim(
    "support_need",
    "daily_life",  # 1) jokapäiväisestä elämästä selviytyminen
    "housing",  # 2) asumiseen liittyvä tuen tarve
    "financial",  # 3) taloudellisen tuen tarve
    "social_inclusion",  # 4) sosiaalisen syrjäytymisen torjuminen, osallisuuden edistäminen
    "violence",  # 5) lähisuhde- ja perheväkivalta, muu väkivalta ja kaltoinkohtelu
    "crisis",  # 6) äkilliset kriisitilanteet
    "child_development",  # 7) lapsen tasapainoinen kehitys ja hyvinvointi
    "substance_mental_illness",  # 8) päihteet, mielenterveys, sairaus, vamma, ikääntyminen
    "functional_capacity",  # 9) muu fyysinen, psyykkinen, sosiaalinen, kognitiivinen toimintakyky
    "carers",  # 10) tuen tarpeessa olevien omaisten ja läheisten tukeminen
)

#: Every dimension, in the order of the export's columns. A new one listed here is
#: stored from the capture draft's field of its name (``bot.service.OBSERVATION_FIELDS``)
#: and exported with its label (``storage.export.CODED``).
DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        THEME,
        GROUP,
        SIGNAL,
        FREQUENCY,
        ESCALATION,
        POLARITY,
        SERVICE_TASK,
        SOURCE,
        SCALE,
        SUPPORT_NEED,
    )
}


def is_valid(code: str) -> bool:
    """True when ``code`` is a published code of any dimension."""
    dimension = DIMENSIONS.get(code.split(".", 1)[0])
    return dimension is not None and code in dimension
