"""The observation taxonomy: stable, language-independent codes.

Codes such as ``theme.housing`` never change meaning once published, so
observations stay comparable between teams, regions and years. Labels live in
the message catalogs (``flows/locale``), keyed by the code itself. A change to
the lists below that is not purely additive needs a new ``TAXONOMY_VERSION``.

The lists follow the source texts summarised in ``shared/DOMAIN.md``: the
summary themes of the national survey (seed 001), the four service-system
failure signals of the ministry's article (seed 000) plus two of our own, and
the service tasks of the survey.

The escalation codes also have names (``LEADERSHIP``, ``SHL48``, and
``ESCALATED_CODES`` for both): every layer that asks "was this raised?"
(notices, digests, the social report, exports) imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

TAXONOMY_VERSION = "2026.1"


@dataclass(frozen=True)
class Dimension:
    """One coded field of an observation: its name and its allowed codes, in display order."""

    name: str
    codes: tuple[str, ...]

    def __contains__(self, code: object) -> bool:
        return code in self.codes


def _dim(name: str, *values: str) -> Dimension:
    return Dimension(name, tuple(f"{name}.{v}" for v in values))


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
    "group", "children", "youth", "working_age", "older", "disabled", "immigrants", "other"
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

DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (THEME, GROUP, SIGNAL, FREQUENCY, ESCALATION, POLARITY, SERVICE_TASK, SOURCE, SCALE)
}


def is_valid(code: str) -> bool:
    """True when ``code`` is a published code of any dimension."""
    dimension = DIMENSIONS.get(code.split(".", 1)[0])
    return dimension is not None and code in dimension
