"""The leadership notice as text: what it shows, what it hides, and escaping (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.pofile import read_po

import flows
from bot.config import load_config
from bot.escalation import EscalationDesk
from bot.router import Router
from flows import commands
from flows.i18n import LANGUAGES, t
from storage.models import Observation
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def desk() -> EscalationDesk:
    config = load_config(
        None, teams=TEST_TEAMS, leadership=TEST_LEADERSHIP, terminal={"enabled": "no"}
    )
    return EscalationDesk(config, None, Router(), lambda: WHEN)  # type: ignore[arg-type]


def entry(**values: object) -> Observation:
    base: dict[str, object] = {
        "id": 42,
        "person_id": 7,
        "team_id": "hki-etsiva",
        "region": "helsinki",
        "area": "kallio",
        "description": "Hoitaja sanoi: <ei paikkoja> & jono jatkuu",
        "action": "Lisää <b>yöpaikkoja</b>",
        "theme": "theme.housing",
        "population_group": "group.youth",
        "signal": "signal.queues",
        "escalation": "escalation.shl48",
        "observed_at": WHEN,
    }
    base.update(values)
    return Observation(**base)


def test_notice_shows_the_entry_and_escapes_user_text() -> None:
    message = desk().notice(entry(), "fi")
    assert message.text.splitlines()[0] == "⚠️ Epäkohtailmoitus (valvontalaki 29 §) #42"
    assert "Tiimi: Helsingin etsivät" in message.text
    assert "Alue: Kallio" in message.text
    assert "Asumi" in message.text and "Nuoret" in message.text
    assert "Havaittu: 23.11.2026 10:30" in message.text  # Helsinki time
    assert message.html is not None
    assert "&lt;ei paikkoja&gt; &amp; jono" in message.html
    assert "Lisää &lt;b&gt;yöpaikkoja&lt;/b&gt;" in message.html
    assert "<ei paikkoja>" not in message.html
    assert "Ilmoittaja" not in message.text  # by default the reporter is not shown


def test_reporter_pseudonym_only_when_asked_and_swedish_labels() -> None:
    message = desk().notice(entry(), "sv", reporter="w-1a2b3c4d")
    assert "Anmälare (pseudonym): w-1a2b3c4d" in message.text
    assert message.text.startswith("⚠️ Missförhållandeanmälan (tillsynslagen 29 §) #42")


def test_acknowledged_and_status_lines_and_buttons() -> None:
    open_notice = desk().notice(entry(), "en")
    assert open_notice.flat_choices()[0].data == "esc:ack:42"
    done = desk().notice(
        entry(),
        "en",
        acknowledged="Acknowledged by leader w-9, 23.11.2026 10.35",
        status="decided",
        status_text="Funding for ten more places",
    )
    assert "✅ Acknowledged by leader w-9" in done.text
    assert "Status: Decided – Funding for ten more places" in done.text
    assert "esc:ack:42" not in [c.data for c in done.flat_choices()]
    assert all(len(c.data.encode()) <= 64 for c in done.flat_choices())  # Telegram's limit


def test_a_long_description_is_cut_so_the_notice_stays_one_message() -> None:
    for text in ("x" * 4000, "<&>" * 1400):  # escaping makes "<" four characters long
        message = desk().notice(entry(description=text, action=text), "fi")
        assert message.html is not None and len(message.html) < 4096
        assert "…" in message.text


def test_the_notice_duty_is_named_as_the_law_stands() -> None:
    """Valvontalaki 741/2023 § 29 since 2024: every text names it so; the old SHL § 48
    appears only beside the new name (the help says it so people recognise it)."""
    names = {
        "fi": "Epäkohtailmoitus (valvontalaki 29 §)",
        "sv": "Missförhållandeanmälan (tillsynslagen 29 §)",
        "en": "Notice of a grievance (Supervision Act § 29)",
    }
    old = {"fi": "ent. SHL 48 §", "sv": "tidigare 48 § socialvårdslagen", "en": "formerly SHL § 48"}
    locale = Path(flows.__file__).parent / "locale"
    for lang in LANGUAGES:
        assert t(lang, "escalation.shl48") == names[lang]
        assert old[lang] in t(lang, "svc.help", **commands.shown(lang))
        for po in sorted((locale / lang / "LC_MESSAGES").glob("*.po")):
            with po.open("rb") as handle:
                catalog = read_po(handle, locale=lang)
            for message in catalog:
                text = message.string if isinstance(message.string, str) else ""
                if "48 §" in text or "§ 48" in text:
                    assert "29 §" in text or "§ 29" in text, (po.name, message.id)
