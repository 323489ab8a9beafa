"""A "Saved #N" the platform did not take reaches the worker at their next contact, once.

The member look-up tells whether one waits (``storage.repo.Member.confirmations_pending``),
so an ordinary turn does not ask the database again; this holds it to the behaviour,
with the confirmation noted by another instance of the bot on the same database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.config import Config
from bot.service import Havainto
from flows.events import ChoiceIn, CommandIn, Incoming, Message, Outbound, TextIn
from flows.i18n import t
from storage.db import Database
from tests.conftest import FakeClock
from tests.test_faults import STEPS

LATE = t("fi", "svc.saved_late", number=1, day="", time="").split(" ")[0]


async def test_an_undelivered_confirmation_comes_at_the_next_contact_once(
    make_config: Callable[..., Config], clock: FakeClock
) -> None:
    config = make_config()
    first_db, second_db = Database(config.database.url), Database(config.database.url)
    first, second = Havainto(config, first_db, clock), Havainto(config, second_db, clock)
    await first.prepare()
    try:
        sent: list[Outbound] = []

        async def deliver(out: list[Outbound]) -> None:
            sent.extend(out)

        numbers = iter(range(1, 100))

        def event(payload: object) -> Incoming:
            return Incoming("telegram", "501", "501", payload, event_id=f"u{next(numbers)}")  # type: ignore[arg-type]

        code = await first.create_invite("hki-etsiva", "worker", timedelta(days=1))
        await first.handle(event(CommandIn("start", code)), deliver)
        await first.handle(event(TextIn("Asumisneuvonnan jono on kolme viikkoa")), deliver)
        saved: Outbound | None = None
        for _ in range(8):
            reply = sent[-1].reply
            assert isinstance(reply, Message)
            choices = [choice.data for row in reply.choices for choice in row]
            pick = next(d for d in choices if d.split(":")[-1] in (*STEPS, "save", "new"))
            sent.clear()
            await first.handle(event(ChoiceIn(pick)), deliver)
            if pick.endswith(":save"):
                saved = next(o for o in sent if o.meta.get("track", "").startswith("saved:"))
                break
        assert saved is not None

        # The platform refused the confirmation; the other instance gets the next contact.
        await first.on_failed(saved, RuntimeError("refused"))
        sent.clear()
        await second.handle(event(TextIn("/apua")), deliver)
        texts = [o.reply.text for o in sent if isinstance(o.reply, Message)]
        assert texts[0].startswith(LATE), texts
        sent.clear()
        await second.handle(event(TextIn("/apua")), deliver)
        texts = [o.reply.text for o in sent if isinstance(o.reply, Message)]
        assert texts and not any(text.startswith(LATE) for text in texts), texts
    finally:
        await first_db.close()
        await second_db.close()
