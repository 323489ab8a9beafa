"""Escalation statuses: what leadership has done with an escalated observation.

An escalated observation's status is the newest of its ``escalation_events``
rows (``storage.models.EscalationEvent``); without any row it is ``open``.
Statuses are stored as these words and never change meaning; their names in
each language live in the message catalogs (``status.<word>``). Every layer
(notices and buttons in ``bot``, digests and the social report in
``digests``, exports and queries in ``storage``) imports them from here.
"""

from __future__ import annotations

from flows.i18n import t

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "in_progress"
DECIDED = "decided"
NO_ACTION = "no_action"
# Only for a notice of a grievance (valvontalaki 741/2023 § 29): the grievance stays; its
# notifier may take it to the supervisory authority (the escalation pack is offered).
NOT_REMEDIED = "not_remedied"
HANDLED = "handled"

# Every status, in the order a matter usually goes through them.
ESCALATION_STATUSES: tuple[str, ...] = (
    OPEN,
    ACKNOWLEDGED,
    IN_PROGRESS,
    DECIDED,
    NO_ACTION,
    NOT_REMEDIED,
    HANDLED,
)
# Still waiting for someone; decided, no_action, not_remedied and handled close the matter.
OPEN_STATUSES: frozenset[str] = frozenset({OPEN, ACKNOWLEDGED, IN_PROGRESS})
# The statuses a leader sets with a button under a notice (acknowledging has its own).
ANSWER_STATUSES: tuple[str, ...] = (IN_PROGRESS, DECIDED, NO_ACTION)
# A notice of a grievance has one more: "not remedied" (its own row of buttons).
GRIEVANCE_ANSWER_STATUSES: tuple[str, ...] = (*ANSWER_STATUSES, NOT_REMEDIED)


# The catalog that names the statuses; every output (notices, digests, the social report,
# exports, the escalation pack) takes the name from here, so it is spelled the same.
STATUS_DOMAIN = "escalation"


def status_label(lang: str, status: str) -> str:
    """The name of an escalation status in ``lang`` ("Käsittelyssä", "Under behandling")."""
    return t(lang, f"status.{status}", domain=STATUS_DOMAIN)
