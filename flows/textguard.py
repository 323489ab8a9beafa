"""The identifier guard where free text enters Havainto: one rule, whoever types it.

Every free text that reaches Havainto (a worker's observation, quote or proposed
action; a team lead's or leader's status note, question or answer; a reporter's
answer; anything typed in the terminal chat or given to the CLI) passes
``screen`` once, at the boundary where it enters, before any conversation sees
it:

* a personal identity code (hetu) is always removed, and the writer is told;
* other identifiers (phone numbers, e-mail addresses, bank accounts, personal names,
  street addresses, dates of birth, vehicle registration plates) are pointed out,
  and the writer chooses: remove them, keep the text as it is (a service's public
  number is not a client's, a name may be a street's), or drop the text and write it
  again.

What is removed is replaced by a placeholder in the writer's language
(``privacy.placeholder.<kind>`` in the catalogs: ``[PUHELIN]``, ``[TELEFON]``,
``[PHONE]``; ``[NIMI]``, ``[NAMN]``, ``[NAME]``, ...). A hetu becomes ``[HETU]`` in
every language: it is removed where the text enters, before the writer (and so
their language) is known, and the read-out scrub (:func:`flows.privacy.scrub`) writes
the same. A stored text keeps the placeholders its writer's language gave it.

The conversations behind the boundary (capture, the escalation desk, the
reporter's answer) therefore never see a hetu, and never ask about identifiers
themselves. This module is pure: the host stores a held text and calls
``resolve`` with the writer's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from flows.events import Choice, Message
from flows.i18n import DEFAULT_LANGUAGE, t, tn
from flows.privacy import IdentifierKind, find_identifiers, redact

PREFIX = "pv"
CHOICES = ("rm", "keep", "drop")


@dataclass(frozen=True)
class Screened:
    """A text after the guard: without any hetu, with the other kinds still in it."""

    text: str
    hetu_removed: bool
    kinds: tuple[str, ...]

    @property
    def needs_choice(self) -> bool:
        return bool(self.kinds)


def screen(text: str) -> Screened:
    """Remove every hetu from ``text`` and name the other identifier kinds left in it."""
    findings = find_identifiers(text)
    if not findings:
        return Screened(text, False, ())
    hetu_removed = any(f.kind is IdentifierKind.HETU for f in findings)
    if hetu_removed:
        # redact searches again until nothing is left: joining text around a
        # placeholder can, in principle, form a new code. The text changed, so the
        # other kinds are looked for again too.
        text = redact(text, kinds={IdentifierKind.HETU})
        findings = find_identifiers(text)
    kinds = sorted({f.kind.value for f in findings if f.kind is not IdentifierKind.HETU})
    return Screened(text, hetu_removed, tuple(kinds))


def hetu_notice(lang: str) -> Message:
    return Message(t(lang, "privacy.hetu_removed"))


def question(lang: str, held_id: int, kinds: tuple[str, ...]) -> Message:
    """Ask the writer what to do with the identifiers in a held text."""
    shown = ", ".join(t(lang, f"privacy.kind.{kind}") for kind in kinds)
    buttons = (
        Choice(t(lang, "button.remove_identifiers"), f"{PREFIX}:rm:{held_id}"),
        Choice(t(lang, "button.keep_text"), f"{PREFIX}:keep:{held_id}"),
    )
    drop = (Choice(t(lang, "button.edit_text"), f"{PREFIX}:drop:{held_id}"),)
    # "a identifier ... remove it" / "identifiers ... remove them": by how many kinds.
    return Message(tn(lang, "privacy.found", len(kinds), kinds=shown), (buttons, drop))


def parse(data: str) -> tuple[str, int] | None:
    """``(choice, held id)`` of a guard button's payload, or None when it is not one."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != PREFIX or parts[1] not in CHOICES:
        return None
    if not parts[2].isdecimal():
        return None
    return parts[1], int(parts[2])


@cache
def placeholders(lang: str) -> dict[IdentifierKind, str]:
    """The text that replaces each kind of identifier, in ``lang``."""
    return {kind: t(lang, f"privacy.placeholder.{kind.value}") for kind in IdentifierKind}


def resolve(choice: str, text: str, lang: str = DEFAULT_LANGUAGE) -> str | None:
    """The text to let through after the writer's choice; None when it is dropped.

    Removed identifiers are replaced by placeholders in ``lang``, the writer's."""
    if choice == "rm":
        return redact(text, placeholders=placeholders(lang))
    if choice == "keep":
        return text
    return None


def dropped(lang: str) -> Message:
    return Message(t(lang, "privacy.dropped"))
