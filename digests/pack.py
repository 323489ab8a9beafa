"""The escalation pack: one notice of a grievance (valvontalaki 741/2023 § 29) on paper.

When a notice was not remedied, the worker who made it may take the matter to the
supervisory authority (since 2026 Lupa- ja valvontavirasto). The pack says what was
notified, when, to whom, and what was done and answered, with dates: the facts the
authority asks for. It names no client and no worker: the texts are scrubbed of
identifiers again here, and the notifier is "the notifier".

``render_pack_html`` fills ``templates/pack.html.j2``; ``digests.report.render_pdf``
prints it. The facts come from ``storage.pack``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING

from babel.dates import format_date, format_datetime

from digests.periods import HELSINKI, TimeZone, zone
from flows import privacy
from flows.i18n import label, t
from flows.statuses import ACKNOWLEDGED, OPEN, status_label

if TYPE_CHECKING:
    from jinja2 import Environment

DOMAIN = "knowledge"
BABEL = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_GB"}


@dataclass(frozen=True)
class PackStep:
    at: datetime
    status: str
    text: str | None = None


@dataclass(frozen=True)
class PackFacts:
    """What the database knows of one notice (``storage.pack.pack_facts``)."""

    number: int
    team_name: str
    region_name: str
    theme: str
    signal: str
    observed_at: datetime
    recorded_at: datetime
    description: str | None
    action: str | None
    posted_at: datetime | None
    acknowledged_at: datetime | None
    reminders: int
    steps: list[PackStep] = field(default_factory=list)
    status: str = OPEN


@dataclass(frozen=True)
class PackLine:
    when: str
    what: str
    text: str | None = None


@dataclass(frozen=True)
class Pack:
    """The pack in one language, ready for the template."""

    lang: str
    title: str
    intro: str
    facts: list[tuple[str, str]]
    description: str | None
    action: str | None
    timeline: list[PackLine]
    closing: str
    made: str

    def text(self, key: str) -> str:
        return t(self.lang, key, domain=DOMAIN)


def _when(moment: datetime | None, lang: str, tz: TimeZone) -> str:
    if moment is None:
        return "–"
    return format_datetime(moment.astimezone(zone(tz)), "d.M.yyyy HH:mm", locale=BABEL[lang])


def build_pack(facts: PackFacts, lang: str, today: date, tz: TimeZone = HELSINKI) -> Pack:
    def tt(key: str, **params: object) -> str:
        return t(lang, key, domain=DOMAIN, **params)

    status = status_label(lang, facts.status)
    timeline = [PackLine(_when(facts.recorded_at, lang, tz), tt("pack.step.recorded"))]
    if facts.posted_at is not None:
        timeline.append(PackLine(_when(facts.posted_at, lang, tz), tt("pack.step.posted")))
    if facts.acknowledged_at is not None:
        timeline.append(
            PackLine(_when(facts.acknowledged_at, lang, tz), tt("pack.step.acknowledged"))
        )
    for step in facts.steps:
        if step.status == ACKNOWLEDGED:
            continue
        timeline.append(
            PackLine(
                _when(step.at, lang, tz),
                status_label(lang, step.status),
                privacy.scrub(step.text),
            )
        )
    return Pack(
        lang=lang,
        title=tt("pack.title", number=facts.number),
        intro=tt("pack.intro"),
        facts=[
            (tt("pack.fact.team"), facts.team_name),
            (tt("pack.fact.region"), facts.region_name),
            (tt("pack.fact.theme"), label(facts.theme, lang)),
            (tt("pack.fact.signal"), label(facts.signal, lang)),
            (tt("pack.fact.observed"), _when(facts.observed_at, lang, tz)),
            (tt("pack.fact.status"), status),
            (tt("pack.fact.reminders"), str(facts.reminders)),
        ],
        description=privacy.scrub(facts.description),
        action=privacy.scrub(facts.action),
        timeline=timeline,
        closing=tt("pack.closing"),
        made=tt("pack.made", date=format_date(today, "d.M.yyyy", locale=BABEL[lang])),
    )


@cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from digests.report import TEMPLATES

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_pack_html(pack: Pack) -> str:
    """The pack as one self-contained HTML page (print it with ``report.render_pdf``)."""
    return _environment().get_template("pack.html.j2").render(pack=pack)
