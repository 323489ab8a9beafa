"""The knowledge path: phenomena, "me too", proposals and where an observation stands.

Pure rules, no I/O. Storage keeps the facts (``storage.knowledge``); the bot and
the CLI ask these functions what a fact means and which move is allowed.

* A **phenomenon** (ilmiö) is a named, recurring pattern that several observations
  show. It is ``open`` until a lead or leader closes it.
* A **confirmation** ("me too", or "we were two" for a pair working together) says
  that another worker saw the same thing. It is counted as a confirmation, never as
  a new observation.
* A **proposal** (toimenpide-ehdotus) belongs to a phenomenon or to one escalated
  observation and moves along ``PROPOSAL_MOVES``; every step has who, when and a note.
* The **position** of an observation on the path is derived from those facts
  (``position``), never typed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from rapidfuzz import fuzz, process, utils

# --- phenomena ------------------------------------------------------------------------
PHENOMENON_OPEN = "open"
PHENOMENON_CLOSED = "closed"
PHENOMENON_STATUSES: tuple[str, ...] = (PHENOMENON_OPEN, PHENOMENON_CLOSED)

TITLE_MAX = 120
CONFIRMATION_TEXT_MAX = 280

# Kinds of confirmation.
ME_TOO = "me_too"  # "I saw it too", separately
PAIR = "pair"  # "we were two": the same event, seen together, counted once

# --- proposals ------------------------------------------------------------------------
PROPOSED = "proposed"
PRESENTED = "presented"
DECIDED = "decided"
IMPLEMENTED = "implemented"
REJECTED = "rejected"
NO_ACTION = "no_action"

PROPOSAL_STATUSES: tuple[str, ...] = (
    PROPOSED,
    PRESENTED,
    DECIDED,
    IMPLEMENTED,
    REJECTED,
    NO_ACTION,
)
PROPOSAL_CLOSED: frozenset[str] = frozenset({IMPLEMENTED, REJECTED, NO_ACTION})

# Which status may follow which. A proposal can be dropped (no action) or rejected
# before it is presented; a decision can still end in implementation or not.
PROPOSAL_MOVES: dict[str, tuple[str, ...]] = {
    PROPOSED: (PRESENTED, REJECTED, NO_ACTION),
    PRESENTED: (DECIDED, REJECTED, NO_ACTION),
    DECIDED: (IMPLEMENTED, REJECTED, NO_ACTION),
    IMPLEMENTED: (),
    REJECTED: (),
    NO_ACTION: (),
}

# Decision-body levels (``[[bodies]]`` in the config).
BODY_LEVELS: tuple[str, ...] = ("team", "management", "regional", "national")


@dataclass(frozen=True, slots=True)
class Move:
    """A requested proposal step, before it is checked."""

    target: str
    body: str | None = None
    on: date | None = None
    note: str | None = None


def check_move(current: str, move: Move, bodies: Iterable[str]) -> str | None:
    """Why ``move`` is not allowed from ``current``, as a message key, or None when it is.

    Presenting needs a configured body and a date; deciding needs a note that says
    what was decided. Keys are catalog keys under ``knowledge.error.*``.
    """
    if move.target not in PROPOSAL_STATUSES:
        return "knowledge.error.unknown_status"
    if move.target not in PROPOSAL_MOVES.get(current, ()):
        return "knowledge.error.not_allowed"
    if move.target == PRESENTED:
        if not move.body or move.body not in set(bodies):
            return "knowledge.error.body_needed"
        if move.on is None:
            return "knowledge.error.date_needed"
    if move.target == DECIDED and not (move.note or "").strip():
        return "knowledge.error.decision_needed"
    return None


# --- where an observation stands -------------------------------------------------------
RECORDED = "recorded"
IN_DIGEST = "in_digest"
IN_PHENOMENON = "phenomenon"
RAISED = "raised"
PATH_PRESENTED = "presented"
PATH_DECIDED = "decided"
CLOSED = "closed"

PATH: tuple[str, ...] = (
    RECORDED,
    IN_DIGEST,
    IN_PHENOMENON,
    RAISED,
    PATH_PRESENTED,
    PATH_DECIDED,
    CLOSED,
)


@dataclass(frozen=True, slots=True)
class PathFacts:
    """What is known about one observation; every field comes from stored facts."""

    in_digest: bool = False
    phenomenon: bool = False
    raised: bool = False
    # The furthest status among the proposals of the observation or its phenomenon.
    proposal_status: str | None = None


def position(facts: PathFacts) -> str:
    """The observation's furthest step on the knowledge path."""
    status = facts.proposal_status
    if status in PROPOSAL_CLOSED:
        return CLOSED
    if status == DECIDED:
        return PATH_DECIDED
    if status == PRESENTED:
        return PATH_PRESENTED
    if facts.raised:
        return RAISED
    if facts.phenomenon:
        return IN_PHENOMENON
    if facts.in_digest:
        return IN_DIGEST
    return RECORDED


def furthest_status(statuses: Iterable[str]) -> str | None:
    """The proposal status furthest along the path among ``statuses`` (closed ones last)."""
    order = {status: index for index, status in enumerate(PROPOSAL_STATUSES)}
    known = [status for status in statuses if status in order]
    return max(known, key=order.__getitem__) if known else None


# --- "me too" suggestions ---------------------------------------------------------------
SUGGESTION_LIMIT = 3
# rapidfuzz's WRatio scores 0..100; below this a suggestion is more noise than help.
# Chosen on the sentence pairs of tests/test_knowledge.py (same matter said in other
# words scores 60-85, unrelated matters 30-45).
SUGGESTION_CUTOFF = 55.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """Something a worker could confirm: an open phenomenon or a recent team observation."""

    kind: str  # "phenomenon" or "observation"
    id: int
    text: str
    count: int = 0  # observations + confirmations in the last 30 days


def suggest(
    text: str,
    candidates: Sequence[Candidate],
    limit: int = SUGGESTION_LIMIT,
    cutoff: float = SUGGESTION_CUTOFF,
) -> list[Candidate]:
    """At most ``limit`` candidates that sound like ``text``, best first.

    Phenomena win ties over single observations (confirming the pattern is what
    counts). The similarity is rapidfuzz's ``WRatio`` on lower-cased words, which
    tolerates Finnish inflection through partial matching.
    """
    if not text.strip() or not candidates:
        return []
    choices = {index: candidate.text for index, candidate in enumerate(candidates)}
    found = process.extract(
        text,
        choices,
        scorer=fuzz.WRatio,
        processor=utils.default_process,
        score_cutoff=cutoff,
        limit=None,
    )
    ranked = sorted(
        found,
        key=lambda hit: (-round(hit[1]), candidates[hit[2]].kind != "phenomenon", hit[2]),
    )
    return [candidates[hit[2]] for hit in ranked[:limit]]


def count_label(count: int, few: int = 3) -> str | None:
    """How a count of confirmers is shown: None means "a few" (below ``few``, never exact)."""
    return None if 0 < count < few else str(count)
