"""Who may do what: the authorisation matrix, on the real bot over the fake Telegram API.

Every cell of ``MATRIX`` says ALLOWED or REFUSED for a role and an action, and the
test performs the action as a person of that role and decides from what actually
happened (replies, rows in the database, calls the fake Bot API recorded) which of
the two it was; a result that is neither is a failure of its own.

Roles: worker, lead (team lead), leader, admin (enrolled with an invite of that
role), unenrolled (never enrolled), revoked (enrolled, then ``havainto people
revoke``).

Actions and the rules they check:

* ``log``: any enrolled, not revoked person may log an entry (team leads and
  leaders do client work too); the entry is theirs.
* ``own``: ``/omat`` lists the sender's own entries and nobody else's.
* ``weekly``: ``/viikko`` previews the team's week for team leads and admins.
* ``monthly``: ``/kuukausi`` previews the month for leaders and admins.
* ``acknowledge``: pressing Acknowledge on a § 48 notice in the leadership chat;
  leaders and admins only.
* ``answer``: a status button and the text that answers its prompt (a reply to the
  prompt); leaders and admins only, both the press and the text.
* ``export``: nobody, from a chat. Exporting the data (``havainto export``) is an
  operator's action on the server, on the audit trail with ``--actor``; no chat
  command exports anything, whoever sends it.

Where an answer counts (``bot/escalation.py``): a notice is handled only in the
leadership chat it was posted to, the one responsible for the reporter's team, and
there by any leader or admin. A leader pressing (a forged button) in another
region's leadership chat is refused; membership of the responsible chat, which the
organisation manages in Telegram, is what admits a leader from elsewhere.

The second test: each team's weekly digest reaches that team's chat only, and each
regional monthly summary only its region's leadership chat.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from telegram.ext import AIORateLimiter

from bot.config import Config
from flows import commands
from flows.i18n import t
from storage import audit, repo
from storage.admin import revoke_person
from storage.models import AuditEvent, EscalationEvent, Notification, Observation
from tests.conftest import FakeClock
from tests.support.escalation_helpers import Bot
from tests.support.fake_telegram import FakeTelegram, SentCall
from tests.support.telegram import telegram_config

ALLOWED = "allowed"
REFUSED = "refused"
ROLES = ("worker", "lead", "leader", "admin", "unenrolled", "revoked")
ACTIONS = ("log", "own", "weekly", "monthly", "acknowledge", "answer", "export")
A, R = ALLOWED, REFUSED
MATRIX: dict[str, tuple[str, ...]] = {
    #             log  own  weekly monthly acknowledge answer export
    "worker": (A, A, R, R, R, R, R),
    "lead": (A, A, A, R, R, R, R),
    "leader": (A, A, R, A, A, A, R),
    "admin": (A, A, A, A, A, A, R),
    "unenrolled": (R, R, R, R, R, R, R),
    "revoked": (R, R, R, R, R, R, R),
}
USERS = {
    "worker": 1101,
    "lead": 2101,
    "leader": 3101,
    "admin": 4101,
    "unenrolled": 9101,
    "revoked": 5101,
}
REPORTER = 1201  # a worker who reports the § 48 entries the roles then handle
OTHER_LEADER = 3201  # a leader of the Swedish-speaking team in another region
HKI_LEADERS = -2001
POHJANMAA_LEADERS = -2002
EXPORT_COMMANDS = ("/export", "/export csv", "/vienti", "/lataa", "/csv", "/data")
MESSAGES = ("sendMessage", "sendPhoto", "sendDocument")


def fi(key: str, domain: str = "havainto", **params: Any) -> str:
    return t("fi", key, domain=domain, **params)


class Matrix:
    """The bot, its people and one § 48 entry per role, and the action performers."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.fake = bot.fake
        self.person: dict[str, int] = {}
        self.notice_of: dict[str, int] = {}  # role -> observation id of its § 48 entry

    async def setup(self) -> None:
        for role in ("worker", "lead", "leader", "admin", "revoked"):
            await self.enrol(USERS[role], "hki-etsiva", "worker" if role == "revoked" else role)
        await self.enrol(REPORTER, "hki-etsiva", "worker")
        await self.enrol(OTHER_LEADER, "vaasa-uppsok", "leader", language="sv")
        self.fake.user(USERS["unenrolled"], first_name="Vieras", language_code="fi")
        async with self.bot.rt.db.transaction() as session:
            for role in ("worker", "lead", "leader", "admin", "revoked"):
                member = await repo.find_member(session, "telegram", str(USERS[role]))
                assert member is not None
                self.person[role] = member.person_id
        # The revoked person had logged an entry before they left: /omat must not show it.
        await self.bot.save_entry(USERS["revoked"], "Ennen lähtöä kirjattu", "escalation.none")
        async with self.bot.rt.db.transaction() as session:
            revoked = await repo.find_member(session, "telegram", str(USERS["revoked"]))
            assert revoked is not None
            await revoke_person(session, revoked.pseudonym, "test", self.bot.clock())
        for role in ROLES:
            await self.bot.save_entry(REPORTER, f"§ 48 -ilmoitus roolille {role}")
            async with self.bot.rt.db.transaction() as session:
                newest = (
                    (await session.execute(select(Observation).order_by(Observation.id.desc())))
                    .scalars()
                    .first()
                )
            assert newest is not None and newest.escalation == "escalation.shl48"
            self.notice_of[role] = newest.id

    async def enrol(self, user_id: int, team: str, role: str, language: str = "fi") -> None:
        self.fake.user(user_id, first_name="Testi", language_code=language)
        code = await self.bot.rt.service.create_invite(team, role, timedelta(days=1))
        await self.bot.say(user_id, f"/start {code}")

    @staticmethod
    def text(role: str) -> str:
        return f"Havainto ({role})"

    @staticmethod
    def alerts(calls: list[SentCall]) -> list[str]:
        """Answers to a press shown to the presser alone (the group gets no message)."""
        return [
            str(c.params.get("text"))
            for c in calls
            if c.method == "answerCallbackQuery" and c.params.get("text")
        ]

    def texts_to(self, calls: list[SentCall], chat_id: int) -> list[str]:
        return [
            c.text or "" for c in calls if c.method in MESSAGES and str(c.chat_id) == str(chat_id)
        ]

    async def rows(self, model: type[Any], *where: Any) -> list[Any]:
        async with self.bot.rt.db.transaction() as session:
            return list((await session.execute(select(model).where(*where))).scalars().all())

    @staticmethod
    def refusal(role: str) -> str | None:
        """What the bot says in a private chat to someone who may not use it at all."""
        return {"unenrolled": fi("svc.not_enrolled"), "revoked": fi("svc.revoked")}.get(role)

    # --- the actions: each returns ALLOWED or REFUSED from what happened ------------------

    async def log(self, role: str) -> str:
        user = USERS[role]
        calls = await self.bot.say(user, self.text(role))
        asked = [c for c in calls if c.reply_markup and str(c.chat_id) == str(user)]
        if asked and self.bot.offers_me_too(user):
            await self.bot.press_value(user, "new")  # "the same thing?" - no, a new entry
        if asked:
            for value in (
                "theme.housing",
                "group.youth",
                "signal.queues",
                "frequency.recurring",
                "escalation.none",
            ):
                await self.bot.press_value(user, value)
            calls = await self.bot.press_value(user, "save")
        saved = await self.rows(Observation, Observation.description == self.text(role))
        if len(saved) == 1 and saved[0].person_id == self.person.get(role):
            # The answer closes the pressed summary (one edit): it ends with the confirmation.
            said = [c.text or "" for c in calls if str(c.chat_id) == str(user)]
            assert any(s.endswith(fi("svc.saved", number=saved[0].id)) for s in said), said
            return ALLOWED
        if not saved and self.texts_to(calls, user) == [self.refusal(role)]:
            return REFUSED
        raise AssertionError(f"log by {role}: {self.texts_to(calls, user)} {saved}")

    async def own(self, role: str) -> str:
        user = USERS[role]
        calls = await self.bot.say(user, "/omat")
        texts = self.texts_to(calls, user)
        others = [self.text(r) for r in ROLES if r != role]
        if texts and texts[0].startswith(fi("svc.own_title")):
            assert self.text(role) in texts[0], texts
            assert not any(other in texts[0] for other in others), texts
            return ALLOWED
        if texts == [self.refusal(role)]:
            return REFUSED
        raise AssertionError(f"/omat by {role}: {texts}")

    async def preview(self, role: str, command: str, refused_key: str, title: str) -> str:
        user = USERS[role]
        calls = await self.bot.say(user, command)
        texts = self.texts_to(calls, user)
        if texts and texts[0] == fi("preview.note", "escalation"):
            assert any(title in text for text in texts[1:]), texts
            return ALLOWED
        if texts in ([fi(refused_key, "escalation")], [self.refusal(role)]):
            return REFUSED
        raise AssertionError(f"{command} by {role}: {texts}")

    async def weekly(self, role: str) -> str:
        return await self.preview(role, "/viikko", "preview.weekly_refused", "Helsingin etsivät")

    async def monthly(self, role: str) -> str:
        return await self.preview(role, "/kuukausi", "preview.monthly_refused", "2026")

    async def press_on_notice(
        self, user: int, data: str, number: int, chat: int = HKI_LEADERS
    ) -> list[SentCall]:
        [row] = await self.rows(Notification, Notification.observation_id == number)
        assert row.message_ref is not None
        return await self.bot.press(user, data, chat_id=chat, message_id=int(row.message_ref))

    async def acknowledge(self, role: str) -> str:
        number = self.notice_of[role]
        calls = await self.press_on_notice(USERS[role], f"esc:ack:{number}", number)
        [row] = await self.rows(Notification, Notification.observation_id == number)
        events = await self.rows(EscalationEvent, EscalationEvent.observation_id == number)
        person = self.person.get(role)
        acknowledged = person is not None and row.acknowledged_by == person
        if acknowledged and [e.status for e in events] == ["acknowledged"]:
            assert any(c.method == "editMessageText" for c in calls)  # the notice shows it
            return ALLOWED
        refused = self.alerts(calls) == [
            fi("esc.refused.leaders_only", "escalation")
        ] and not self.texts_to(calls, HKI_LEADERS)
        if refused and row.acknowledged_at is None and not events:
            return REFUSED
        raise AssertionError(f"acknowledge by {role}: {self.texts_to(calls, HKI_LEADERS)}")

    async def _prompt(
        self, user: int, status: str, number: int
    ) -> tuple[list[SentCall], SentCall | None]:
        calls = await self.press_on_notice(user, f"esc:st:{status}:{number}", number)
        prompts = [
            c
            for c in calls
            if c.method == "sendMessage"
            and str(c.chat_id) == str(HKI_LEADERS)
            and f"#{number}: " in (c.text or "")
        ]
        return calls, prompts[0] if prompts else None

    async def _reply(self, user: int, prompt: SentCall, text: str) -> list[SentCall]:
        replied = self.fake.message(HKI_LEADERS, int(prompt.message_id or 0))
        return await self.bot.say(user, text, chat_id=HKI_LEADERS, reply_to_message=replied)

    async def answer(self, role: str) -> str:
        number, user = self.notice_of[role], USERS[role]
        answer = f"Perustelu roolilta {role}"
        calls, prompt = await self._prompt(user, "decided", number)
        if prompt is not None:
            await self._reply(user, prompt, answer)
            events = await self.rows(EscalationEvent, EscalationEvent.text == answer)
            assert [(e.status, e.actor_person_id) for e in events] == [
                ("decided", self.person[role])
            ], events
            return ALLOWED
        leaders_only = fi("esc.refused.leaders_only", "escalation")
        if self.alerts(calls) != [leaders_only] or self.texts_to(calls, HKI_LEADERS):
            raise AssertionError(f"status by {role}: {self.alerts(calls)}")
        # The text path too: a leader opens a prompt, this person replies to it.
        _, prompt = await self._prompt(USERS["leader"], "in_progress", number)
        assert prompt is not None
        calls = await self._reply(user, prompt, answer)
        # Nothing in the channel. Enrolled people are told in their private chat; a
        # stranger's talk in the channel is not the bot's business.
        assert self.texts_to(calls, HKI_LEADERS) == []
        told = self.texts_to(calls, user)
        assert told == ([leaders_only] if role not in ("unenrolled", "revoked") else []), told
        assert await self.rows(EscalationEvent, EscalationEvent.text == answer) == []
        return REFUSED

    async def export(self, role: str) -> str:
        user = USERS[role]
        exported = False
        for command in EXPORT_COMMANDS:
            calls = await self.bot.say(user, command)
            texts = self.texts_to(calls, user)
            files = [c for c in calls if c.method == "sendDocument"]
            if files:
                exported = True
            expected = self.refusal(role) or fi("svc.unknown_command", **commands.shown("fi"))
            assert texts and texts[0] == expected, (command, texts)
        if await self.rows(AuditEvent, AuditEvent.action == audit.EXPORT):
            exported = True
        return ALLOWED if exported else REFUSED


@pytest.fixture
async def matrix(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Matrix]:
    async with FakeTelegram() as fake:
        bot = Bot(fake, telegram_config(make_config, fake), clock)
        await bot.start()
        # Who may do what, not Telegram's flood limits: PTB would hold the leadership chat
        # to 20 messages a minute. AIORateLimiter's initialize() does nothing, so it can be
        # swapped on a running bot.
        bot.transport.app.bot._rate_limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0)
        try:
            world = Matrix(bot)
            await world.setup()
            yield world
        finally:
            await bot.stop()


async def test_every_role_can_do_exactly_what_it_is_meant_to(matrix: Matrix) -> None:
    performers: dict[str, Callable[[str], Awaitable[str]]] = {
        action: getattr(matrix, action) for action in ACTIONS
    }
    found: dict[str, tuple[str, ...]] = {}
    for role in ROLES:
        found[role] = tuple([await performers[action](role) for action in ACTIONS])
    differences = [
        f"{role} {action}: expected {want}, was {got}"
        for role in ROLES
        for action, want, got in zip(ACTIONS, MATRIX[role], found[role], strict=True)
        if want != got
    ]
    assert not differences, "\n".join(differences)


async def test_a_leader_of_another_region_answers_only_in_the_responsible_chat(
    matrix: Matrix,
) -> None:
    number = matrix.notice_of["worker"]  # nobody has handled it
    # In their own region's chat (a forged press: the notice was never posted there),
    # on the one message in that chat, their own.
    assert await matrix.bot.say(OTHER_LEADER, "Hej", chat_id=POHJANMAA_LEADERS) == []
    own_message = 1
    assert matrix.fake.message(POHJANMAA_LEADERS, own_message)["from"]["id"] == OTHER_LEADER
    for data in (f"esc:ack:{number}", f"esc:st:decided:{number}"):
        calls = await matrix.bot.act(
            lambda data=data: matrix.fake.press(
                OTHER_LEADER,
                data,
                message_id=own_message,
                chat_id=POHJANMAA_LEADERS,
                strict=False,
            )
        )
        assert matrix.alerts(calls) == [
            t("sv", "esc.refused.not_this_channel", domain="escalation")
        ]
        assert matrix.texts_to(calls, POHJANMAA_LEADERS) == []
    assert await matrix.rows(EscalationEvent, EscalationEvent.observation_id == number) == []
    # In the responsible chat, which they are a member of, neither: they do not lead the
    # team (a leader acts on the notices of the teams whose leadership channel is theirs,
    # or whose region they lead).
    for data in (f"esc:ack:{number}", f"esc:st:decided:{number}", f"esc:ask:{number}"):
        calls = await matrix.press_on_notice(OTHER_LEADER, data, number)
        assert matrix.alerts(calls) == [t("sv", "esc.refused.not_your_team", domain="escalation")]
        assert matrix.texts_to(calls, HKI_LEADERS) == []
    assert await matrix.rows(EscalationEvent, EscalationEvent.observation_id == number) == []
    # The region's own leader may.
    await matrix.press_on_notice(USERS["leader"], f"esc:ack:{number}", number)
    [event] = await matrix.rows(EscalationEvent, EscalationEvent.observation_id == number)
    async with matrix.bot.rt.db.transaction() as session:
        own = await repo.find_member(session, "telegram", str(USERS["leader"]))
    assert own is not None and (event.status, event.actor_person_id) == (
        "acknowledged",
        own.person_id,
    )


# --- digests go to their own chats only ----------------------------------------------------

WEEK_47 = (16, 17, 18, 19, 20, 21, 22)  # November 2026, ISO week 47
SEEDED = {
    # team: (region, [(day, theme), ...])
    "hki-etsiva": (
        "helsinki",
        [(16, "theme.housing"), (18, "theme.housing"), (20, "theme.income")],
    ),
    "vaasa-uppsok": ("pohjanmaa", [(17, "theme.substance_mental"), (21, "theme.substance_mental")]),
}
TEAM_CHATS = {"hki-etsiva": -1001, "vaasa-uppsok": -1002}
TEAM_NAMES = {"hki-etsiva": "Helsingin etsivät", "vaasa-uppsok": "Vasa uppsökande"}
REGION_CHATS = {"helsinki": -2001, "pohjanmaa": -2002, "": -2000}


async def seed(bot: Bot) -> None:
    async with bot.rt.db.transaction() as session:
        for index, (team, (region, entries)) in enumerate(SEEDED.items()):
            invite = await repo.create_invite(
                session, team, "worker", datetime(2026, 11, 1, tzinfo=UTC), timedelta(days=9)
            )
            member = await repo.redeem_invite(
                session,
                invite.code,
                "telegram",
                str(8000 + index),
                str(8000 + index),
                "fi",
                datetime(2026, 11, 2, tzinfo=UTC),
            )
            for day, theme in entries:
                when = datetime(2026, 11, day, 10, 0, tzinfo=UTC)
                await repo.add_observation(
                    session,
                    person_id=member.person_id,
                    team_id=team,
                    region=region,
                    area=None,
                    description=f"Havainto {team}",
                    quote=None,
                    action=None,
                    theme=theme,
                    population_group="group.youth",
                    signal="signal.queues",
                    frequency="frequency.recurring",
                    escalation="escalation.leadership",
                    polarity="polarity.problem",
                    task=None,
                    source=None,
                    scale=None,
                    observed_at=when,
                    recorded_at=when,
                    updated_at=when,
                    withdrawn_at=None,
                    transport="telegram",
                    language="fi",
                    flow_version="1",
                    taxonomy_version="2026.1",
                )


@pytest.fixture
async def digest_bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[Bot]:
    async with FakeTelegram() as fake:
        bot = Bot(fake, telegram_config(make_config, fake), clock)
        await bot.start(poll=False)
        try:
            await seed(bot)
            yield bot
        finally:
            await bot.stop()


def chat_texts(fake: FakeTelegram, chat_id: int) -> list[SentCall]:
    return [c for c in fake.sent if c.method in MESSAGES and str(c.chat_id) == str(chat_id)]


async def test_a_teams_digest_reaches_its_own_chat_only(digest_bot: Bot, clock: FakeClock) -> None:
    desk = digest_bot.rt.digests
    assert desk is not None
    fake = digest_bot.fake
    outcomes = await desk.send_weekly("2026-W47")
    assert sorted(o.result for o in outcomes) == ["sent", "sent"]
    for team, chat in TEAM_CHATS.items():
        calls = chat_texts(fake, chat)
        assert calls, f"{team} got no digest"
        text = "\n".join(c.text or "" for c in calls)
        count = len(SEEDED[team][1])
        assert TEAM_NAMES[team] in text
        # The total is that team's own count (Finnish or Swedish wording alike).
        assert re.search(rf"\b{count}\b", text.split("\n", 2)[1]), text
        for other, name in TEAM_NAMES.items():
            if other != team:
                assert name not in text and f"Havainto {other}" not in text
        charts = [name for c in calls for name in c.filenames.values()]
        assert charts and all(team in name for name in charts), charts
    posted = {str(c.chat_id) for c in fake.sent if c.method in MESSAGES}
    assert posted == {str(chat) for chat in TEAM_CHATS.values()}


async def test_a_regions_summary_reaches_its_own_leadership_chat_only(
    digest_bot: Bot, clock: FakeClock
) -> None:
    desk = digest_bot.rt.digests
    assert desk is not None
    fake = digest_bot.fake
    clock.now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # first working day of December
    outcomes = await desk.send_monthly("2026-11")
    assert sorted(o.result for o in outcomes) == ["sent", "sent", "sent"]
    texts = {
        region: "\n".join(c.text or "" for c in chat_texts(fake, chat))
        for region, chat in REGION_CHATS.items()
    }
    assert TEAM_NAMES["hki-etsiva"] in texts["helsinki"]
    assert TEAM_NAMES["vaasa-uppsok"] not in texts["helsinki"]
    assert TEAM_NAMES["vaasa-uppsok"] in texts["pohjanmaa"]
    assert TEAM_NAMES["hki-etsiva"] not in texts["pohjanmaa"]
    # The whole organisation's channel sees both.
    assert TEAM_NAMES["hki-etsiva"] in texts[""] and TEAM_NAMES["vaasa-uppsok"] in texts[""]
    # The escalated entries (CSV): exactly the region's own rows.
    for region, chat in REGION_CHATS.items():
        # The CSV of the escalations, then the PDF of the whole summary.
        document, pdf = [c for c in chat_texts(fake, chat) if c.method == "sendDocument"]
        assert pdf.files["document"].startswith(b"%PDF")
        rows = list(
            csv.DictReader(
                io.StringIO(document.files["document"].decode("utf-8-sig")), delimiter=";"
            )
        )
        teams = sorted(row["team_id"] for row in rows)
        wanted = sorted(
            team
            for team, (home, entries) in SEEDED.items()
            for _ in entries
            if region in ("", home)
        )
        assert teams == wanted, (region, teams)
    posted = {str(c.chat_id) for c in fake.sent if c.method in MESSAGES}
    assert posted == {str(chat) for chat in REGION_CHATS.values()}
