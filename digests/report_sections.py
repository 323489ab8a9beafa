"""The sections of the social report that carry the knowledge path and the editing stage.

``digests.report`` builds the figures sections (themes, signals, groups, rising
phenomena, escalations, quotes); this module builds the rest, each section by a
function of its own so that one can be changed without touching the others:

* ``conclusions``: what the team's lead or the region's leaders wrote about the period
  (``havainto report notes`` or a reply to the posted report), with the writer's role
  and the date, never a name;
* ``proposals``: proposals for action (toimenpide-ehdotukset) and where they stand:
  presented to which body and when, what was decided;
* ``good_practices``: working practices the workers recorded, by theme, with some of
  their descriptions;
* ``phenomena``: the named phenomena (ilmiöt) with their status, how many observations
  are linked to them and how many workers confirmed them;
* ``areas``: the observations by area;
* ``escalation_overview``: the escalations by status, and the few listed in the body
  (open notices of a grievance first), the full list going to an appendix file
  (``appendix_csv``);
* ``colophon``: the technical facts (taxonomy version, rules applied) at the end.

Numbers that protect people (``digests.numbers``) hold here as everywhere: a count of
observations or people in 1..min_cell-1 prints as "< 5", with a second cell hidden
where a table's total is printed; descriptions of good practices are printed only from
themes with at least ``min_cell`` observations in the period, as quotes are. Pure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from babel.dates import format_date

from digests import numbers
from digests.numbers import LEADERSHIP, Privacy
from digests.rules import pick_quotes, ranked, ranked_shown
from digests.spreadsheet import DEFAULT_CSV_DIALECT, csv_writer, official_cells, safe_cell
from flows.conclusions import DOMAIN, role_label
from flows.i18n import label, t
from flows.official_codes import NO_CODES, OfficialCodes
from flows.statuses import ESCALATION_STATUSES, status_label

MAX_PRACTICES = 6  # descriptions of good practices printed
MAX_PHENOMENA = 12
MAX_PROPOSALS = 15
MAX_AREAS = 15  # the largest areas; the rest in one row
ESCALATIONS_IN_BODY = 8  # the rest are in the appendix file
NO_AREA = ""


def _t(lang: str, key: str, **params: object) -> str:
    return t(lang, key, domain=DOMAIN, **params)


# --- what the queries hand in ------------------------------------------------------------


@dataclass(frozen=True)
class NoteLine:
    """Conclusions written for a report: by whom (a role), when, for which scope."""

    scope_kind: str  # team, region or organisation
    scope_name: str
    period: str
    role: str
    written_on: date
    text: str


@dataclass(frozen=True)
class ProposalLine:
    """A proposal for action and where it stands (``flows.knowledge`` statuses)."""

    number: int
    text: str
    status: str
    subject: str  # the phenomenon's title, or "" for one escalated observation
    body: str | None = None  # the body's name in the report's language
    presented_on: date | None = None
    decision: str | None = None
    moved_on: date | None = None
    note: str | None = None  # the latest step's note (a leader's one line)


@dataclass(frozen=True)
class PhenomenonLine:
    number: int
    title: str
    theme: str
    status: str  # open or closed
    observations: int
    confirmations: int
    team_name: str = ""  # "" for a region-wide phenomenon


@dataclass(frozen=True)
class PracticeLine:
    """A good practice a worker described."""

    text: str
    theme: str
    observed_on: date


@dataclass(frozen=True)
class SectionFigures:
    """Everything the sections of this module show, counted and listed by the database."""

    notes: Sequence[NoteLine] = ()
    proposals: Sequence[ProposalLine] = ()
    phenomena: Sequence[PhenomenonLine] = ()
    practice_themes: Mapping[str, int] = field(default_factory=dict)
    practices: Sequence[PracticeLine] = ()  # newest first
    areas: Mapping[str, int] = field(default_factory=dict)  # area id ("" none) -> count
    area_names: Mapping[str, str] = field(default_factory=dict)
    appendix_name: str = ""  # the file the full escalation list is written to


# --- the model the template shows -----------------------------------------------------------


@dataclass(frozen=True)
class Conclusion:
    heading: str  # "Alueen johtopäätökset: Helsinki"
    paragraphs: list[str]
    signed: str  # "Johtaja, 3.1.2027"


@dataclass(frozen=True)
class ProposalRow:
    number: int
    text: str
    subject: str
    status: str
    status_code: str
    outcome: str


@dataclass(frozen=True)
class PhenomenonRow:
    number: int
    title: str
    theme: str
    status: str
    observations: str
    confirmations: str


@dataclass(frozen=True)
class CountRow:
    label: str
    count: str
    share: str


@dataclass(frozen=True)
class Practice:
    text: str
    meta: str


@dataclass(frozen=True)
class EscalationOverview:
    statuses: list[CountRow]
    listed: int
    total: int
    appendix_note: str


@dataclass
class Sections:
    """The sections of this module in one language, ready for the template blocks."""

    lang: str
    conclusions: list[Conclusion] = field(default_factory=list)
    proposals: list[ProposalRow] = field(default_factory=list)
    proposals_more: str = ""
    phenomena: list[PhenomenonRow] = field(default_factory=list)
    phenomena_more: str = ""
    practice_rows: list[CountRow] = field(default_factory=list)
    practices: list[Practice] = field(default_factory=list)
    areas: list[CountRow] = field(default_factory=list)
    escalations: EscalationOverview | None = None
    colophon: list[str] = field(default_factory=list)

    def text(self, key: str, **params: object) -> str:
        return _t(self.lang, key, **params)


def _day(day: date, lang: str) -> str:
    return format_date(day, "d.M.yyyy", locale=lang)


# --- each section -------------------------------------------------------------------------


def conclusions(notes: Sequence[NoteLine], lang: str) -> list[Conclusion]:
    """The conclusions, the widest scope first (organisation, region, teams), then by date."""
    order = {"organisation": 0, "region": 1, "team": 2}
    out = []
    for note in sorted(notes, key=lambda n: (order.get(n.scope_kind, 3), n.written_on)):
        paragraphs = [" ".join(p.split()) for p in note.text.split("\n\n") if p.strip()]
        out.append(
            Conclusion(
                heading=_t(lang, f"conclusions.heading.{note.scope_kind}", scope=note.scope_name),
                paragraphs=paragraphs,
                signed=_t(
                    lang,
                    "conclusions.signed",
                    role=role_label(lang, note.role),
                    date=_day(note.written_on, lang),
                    period=note.period,
                ),
            )
        )
    return out


def proposals(lines: Sequence[ProposalLine], lang: str) -> tuple[list[ProposalRow], str]:
    """Proposals, the furthest moved first; each with its outcome in plain words."""
    rows = []
    for p in list(lines)[:MAX_PROPOSALS]:
        parts = []
        if p.body and p.presented_on:
            parts.append(
                _t(lang, "proposals.presented", body=p.body, date=_day(p.presented_on, lang))
            )
        if p.decision:
            parts.append(_t(lang, "proposals.decision", decision=p.decision))
        if p.note and p.note != p.decision:
            parts.append(_t(lang, "proposals.note", note=p.note))
        rows.append(
            ProposalRow(
                number=p.number,
                text=p.text,
                subject=p.subject,
                status=_t(lang, f"proposals.status.{p.status}"),
                status_code=p.status,
                outcome=" ".join(parts) or "–",
            )
        )
    more = len(lines) - len(rows)
    return rows, (_t(lang, "more", count=numbers.number(more, lang)) if more > 0 else "")


def phenomena(
    lines: Sequence[PhenomenonLine], lang: str, privacy: Privacy = LEADERSHIP
) -> tuple[list[PhenomenonRow], str]:
    """Phenomena, the most observed and confirmed first. Their counts are of observations
    and of people: "< 5" when small (no total is printed, so nothing to hide with them)."""
    chosen = ranked(lines, lambda p: p.theme, lambda p: p.observations + p.confirmations)
    rows = [
        PhenomenonRow(
            number=p.number,
            title=p.title + (f" ({p.team_name})" if p.team_name else ""),
            theme=label(p.theme, lang),
            status=_t(lang, f"phenomena.status.{p.status}"),
            observations=numbers.count(p.observations, lang, privacy),
            confirmations=numbers.count(p.confirmations, lang, privacy),
        )
        for p in chosen[:MAX_PHENOMENA]
    ]
    more = len(chosen) - len(rows)
    return rows, (_t(lang, "more", count=numbers.number(more, lang)) if more > 0 else "")


def _count_rows(
    counts: Mapping[str, int], names: Mapping[str, str], lang: str, privacy: Privacy
) -> list[CountRow]:
    total = sum(counts.values())
    hidden = privacy.hidden(counts)
    rows = []
    listed = [c for c, n in counts.items() if n]
    for code in ranked_shown(listed, lambda c: c, hidden, lambda c: counts[c]):
        n = counts[code]
        concealed = code in hidden or privacy.small(n)
        rows.append(
            CountRow(
                label=names.get(code, code),
                count=numbers.count(n, lang, privacy, concealed),
                share="–" if concealed or not total else numbers.percent(n / total, lang),
            )
        )
    return rows


def good_practices(
    figures: SectionFigures,
    themes: Mapping[str, int],
    lang: str,
    privacy: Privacy = LEADERSHIP,
) -> tuple[list[CountRow], list[Practice]]:
    """Good practices by theme (counts as every count is shown), and some descriptions:
    only of themes with at least ``min_cell`` observations in the period (``themes``, the
    report's theme counts), the newest of each theme first, as quotes are picked."""
    names = {code: label(code, lang) for code in figures.practice_themes}
    rows = _count_rows(figures.practice_themes, names, lang, privacy)
    quotable = numbers.quotable_themes(themes, privacy.min_cell)
    allowed = [p for p in figures.practices if not privacy.suppress or p.theme in quotable]
    picked = pick_quotes(allowed, MAX_PRACTICES)
    practices = [
        Practice(
            text=" ".join(p.text.split()),
            meta=_t(
                lang,
                "practices.meta",
                theme=label(p.theme, lang),
                month=format_date(p.observed_on, "LLLL yyyy", locale=lang),
            ),
        )
        for p in picked
    ]
    return rows, practices


def areas(figures: SectionFigures, lang: str, privacy: Privacy = LEADERSHIP) -> list[CountRow]:
    """Observations by area, the largest first; beyond ``MAX_AREAS`` the rest in one row.
    The total is printed in the report, so small cells are hidden with a second one."""
    counts = {code: n for code, n in figures.areas.items() if n}
    ordered = ranked(list(counts), lambda c: c, lambda c: counts[c])
    if len(ordered) > MAX_AREAS:
        rest = sum(counts[c] for c in ordered[MAX_AREAS - 1 :])
        counts = {c: counts[c] for c in ordered[: MAX_AREAS - 1]}
        counts["\x00rest"] = rest
    names = {code: figures.area_names.get(code, code) for code in counts}
    names[NO_AREA] = _t(lang, "areas.none")
    names["\x00rest"] = _t(lang, "areas.rest")
    return _count_rows(counts, names, lang, privacy)


def escalation_overview(
    statuses: Mapping[str, int], listed: int, appendix_name: str, lang: str, privacy: Privacy
) -> EscalationOverview:
    """The escalations by status (a table whose total is printed in the summary), and how
    many of them the body lists; the rest are in the appendix file."""
    total = sum(statuses.values())
    ordered = {s: statuses.get(s, 0) for s in ESCALATION_STATUSES if statuses.get(s)}
    names = {s: status_label(lang, s) for s in ordered}
    rows = _count_rows(ordered, names, lang, privacy)
    note = ""
    if total > listed:
        note = _t(
            lang,
            "escalations.appendix",
            listed=numbers.number(listed, lang),
            total=numbers.total(total, lang, privacy, privacy.total_hidden(ordered)),
            file=appendix_name or _t(lang, "escalations.appendix_file"),
        )
    return EscalationOverview(rows, listed, total, note)


def colophon(
    lang: str, today: date, taxonomy_version: str, privacy: Privacy, appendix_name: str
) -> list[str]:
    """The technical facts, for the last page: when and from what it was made, the
    taxonomy version, the small-number rule, the appendix."""
    lines = [
        _t(lang, "colophon.made", date=_day(today, lang)),
        _t(lang, "colophon.taxonomy", version=taxonomy_version),
        _t(lang, "colophon.min_cell", min_cell=numbers.number(privacy.min_cell, lang)),
        _t(lang, "colophon.periods"),
    ]
    if appendix_name:
        lines.append(_t(lang, "colophon.appendix", file=appendix_name))
    return lines


def build_sections(
    figures: SectionFigures,
    themes: Mapping[str, int],
    statuses: Mapping[str, int],
    listed_escalations: int,
    lang: str,
    today: date,
    taxonomy_version: str,
    privacy: Privacy = LEADERSHIP,
) -> Sections:
    """Every section of this module in ``lang``."""
    sections = Sections(lang=lang)
    sections.conclusions = conclusions(figures.notes, lang)
    sections.proposals, sections.proposals_more = proposals(figures.proposals, lang)
    sections.phenomena, sections.phenomena_more = phenomena(figures.phenomena, lang, privacy)
    sections.practice_rows, sections.practices = good_practices(figures, themes, lang, privacy)
    sections.areas = areas(figures, lang, privacy)
    sections.escalations = escalation_overview(
        statuses, listed_escalations, figures.appendix_name, lang, privacy
    )
    sections.colophon = colophon(lang, today, taxonomy_version, privacy, figures.appendix_name)
    return sections


# --- the appendix ----------------------------------------------------------------------------

APPENDIX_COLUMNS = (
    "number",
    "observed_on",
    "kind",
    "kind_label",
    "theme",
    "theme_label",
    "status",
    "status_label",
    "team_id",
    "region",
    "region_code",
    "area",
    "municipality",
    "response",
)


@dataclass(frozen=True)
class AppendixRow:
    number: int
    observed_on: date
    kind: str
    theme: str
    status: str
    response: str | None
    team_id: str = ""
    region: str = ""
    area: str | None = None


def appendix_csv(
    rows: Sequence[AppendixRow],
    lang: str,
    dialect: str = DEFAULT_CSV_DIALECT,
    codes: OfficialCodes = NO_CODES,
) -> bytes:
    """Every escalated observation of the report, in the CSV dialect of every CSV file
    (``digests.spreadsheet``): codes and labels, free text that never runs as a formula;
    the region's official code and the area's municipality number (``codes``) as the
    monthly escalations CSV writes them (``digests.spreadsheet.official_cells``)."""
    buffer = io.StringIO(newline="")
    writer = csv_writer(buffer, dialect)
    writer.writerow(APPENDIX_COLUMNS)
    for row in rows:
        region_code, municipality = official_cells(codes, row.region, row.team_id, row.area)
        writer.writerow(
            [
                str(row.number),
                row.observed_on.isoformat(),
                row.kind,
                label(row.kind, lang),
                row.theme,
                label(row.theme, lang),
                row.status,
                status_label(lang, row.status),
                row.team_id,
                row.region,
                region_code,
                safe_cell(row.area or ""),
                municipality,
                safe_cell(row.response or ""),
            ]
        )
    return buffer.getvalue().encode("utf-8")
