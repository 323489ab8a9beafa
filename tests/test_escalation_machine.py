"""The escalation desk's state machine (flows.escalation.advance), transition by transition.

Plain function calls, no database and no transport: one notice's conversation as a
``Notice``, one event at a time. The last test drives random event sequences (seeded;
the run prints its seed, ``HAVAINTO_TEST_SEED=<seed>`` repeats it) and checks that no
sequence reaches an invalid state or relays a text to anybody it is not meant for.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flows import escalation as desk
from flows.events import Alert, Message, Outbound
from flows.i18n import t
from flows.statuses import (
    ACKNOWLEDGED,
    ANSWER_STATUSES,
    ESCALATION_STATUSES,
    GRIEVANCE_ANSWER_STATUSES,
    OPEN,
)
from flows.taxonomy import LEADERSHIP, NOT_ESCALATED, SHL48

SEED = int(os.environ.get("HAVAINTO_TEST_SEED") or random.SystemRandom().randrange(2**32))
print(f"tests/test_escalation_machine.py seed={SEED} (HAVAINTO_TEST_SEED={SEED} repeats it)")

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
RULES = desk.Rules(timedelta(minutes=60), 24.0, "Europe/Helsinki")
HKI = desk.Leadership("hki-johto", "Helsingin johto", "helsinki", "fi", (("telegram", "-2001"),))
VAASA = desk.Leadership("vaasa-ledning", "Österbottens ledning", "pohjanmaa", "sv")
ALL = desk.Leadership("koko", "Koko organisaatio", "", "fi")
CHANNEL = desk.Place("telegram", "-2001", "fi")
ELSEWHERE = desk.Place("telegram", "-2002", "sv")
REPORTER_CHAT = desk.Place("telegram", "1101", "fi", private=True)
REPORTER = desk.Contact("telegram", "1101", "fi")
LEADER = desk.Actor(person=3, role="leader", language="fi", chat="3101", channel=HKI)
ADMIN = desk.Actor(person=4, role="admin", language="en", chat="4101")
WORKER = desk.Actor(person=1, role="worker", language="fi", chat="1101", channel=HKI)
STRANGER = desk.Actor(language="fi")  # not enrolled
REVOKED = replace(LEADER, person=5, revoked=True, chat="5101")
OTHER_LEADER = desk.Actor(person=6, role="leader", language="sv", chat="6101", channel=VAASA)
POSTED = desk.Post(1, "telegram", "-2001", SHL48, "hki-johto", "fi", ref="55", sent_at=NOW)


def notice(**changes: object) -> desk.Notice:
    base = desk.Notice(
        number=7,
        escalation=SHL48,
        reporter_person=1,
        reporter=REPORTER,
        responsible=HKI,
        team_region="helsinki",
        posts=(POSTED,),
    )
    return replace(base, **changes)


def fi(key: str, **params: object) -> str:
    return t("fi", key, domain="escalation", **params)


def press(data: str, actor: desk.Actor = LEADER, place: desk.Place = CHANNEL) -> desk.Pressed:
    return desk.Pressed(desk.parse(data), actor, place)


def typed(
    text: str,
    actor: desk.Actor = LEADER,
    place: desk.Place = CHANNEL,
    reply_to: str | None = None,
) -> desk.Typed:
    return desk.Typed(text, actor, place, reply_to)


def go(state: desk.Notice | None, event: desk.Event, now: datetime = NOW) -> desk.Step:
    return desk.advance(state, event, now, RULES)


def sent(step: desk.Step) -> list[Outbound]:
    return step.outbound


def texts_to(step: desk.Step, chat: str) -> list[str]:
    return [o.reply.text for o in sent(step) if o.chat_id == chat and isinstance(o.reply, Message)]


def alerts(step: desk.Step) -> list[tuple[str, str]]:
    return [(o.chat_id, o.reply.text) for o in sent(step) if isinstance(o.reply, Alert)]


def stored(step: desk.Step, window_id: int) -> desk.Notice:
    """The new state as the host stores it: the new window gets ``window_id``."""
    assert step.state is not None
    windows = tuple(replace(w, id=window_id) if w.id == desk.NEW else w for w in step.state.windows)
    return replace(step.state, windows=windows)


def with_window(kind: desk.WindowKind, **changes: object) -> desk.Notice:
    window = desk.Window(9, kind, 3, "telegram", "-2001", NOW, prompt_ref="77")
    return notice(windows=(replace(window, **changes),))


# --- acknowledging ---------------------------------------------------------------------


def test_acknowledge_stores_the_claim_first_edits_the_notice_and_tells_the_reporter() -> None:
    step = go(notice(), press("esc:ack:7"))
    assert step.state is not None
    assert step.state.acknowledged == desk.Acknowledgement(3, NOW)
    assert step.state.status == ACKNOWLEDGED
    assert step.effects[0] == desk.Acknowledge(3)
    assert desk.Refresh((POSTED,)) in step.effects
    [told] = texts_to(step, "1101")
    assert "#7" in told and "23.11.2026" in told
    assert texts_to(step, "-2001") == []  # the edit says it; nothing new in the channel


def test_acknowledge_without_an_editable_notice_says_so_in_the_channel() -> None:
    step = go(notice(posts=(replace(POSTED, ref=None),)), press("esc:ack:7"))
    assert not any(isinstance(e, desk.Refresh) for e in step.effects)
    assert texts_to(step, "-2001") == [fi("esc.acknowledged_here", number=7)]


def test_a_repeated_press_changes_nothing_and_answers_the_presser_alone() -> None:
    first = go(notice(), press("esc:ack:7"))
    again = go(first.state, press("esc:ack:7", ADMIN), NOW + timedelta(minutes=1))
    assert again.state == first.state
    assert alerts(again) == [
        ("4101", t("en", "esc.already_acknowledged", domain="escalation", number=7))
    ]
    assert not any(isinstance(e, desk.Acknowledge | desk.Refresh) for e in again.effects)


def test_wrong_people_and_wrong_places_are_refused_to_themselves() -> None:
    cases = [
        (WORKER, CHANNEL, "leaders_only", "1101"),
        (STRANGER, CHANNEL, "leaders_only", ""),  # nowhere to say it privately
        (REVOKED, CHANNEL, "leaders_only", ""),
        (LEADER, ELSEWHERE, "not_this_channel", "3101"),
        (OTHER_LEADER, CHANNEL, "not_your_team", "6101"),
    ]
    for actor, place, reason, chat in cases:
        for data in ("esc:ack:7", "esc:st:decided:7", "esc:ask:7"):
            step = go(notice(), press(data, actor, place))
            assert step.state == notice(), (actor, data)
            [(to, text)] = alerts(step)
            assert (to, text) == (
                chat,
                t(actor.language, f"esc.refused.{reason}", domain="escalation"),
            )
            assert [o for o in sent(step) if not isinstance(o.reply, Alert)] == []
            [note] = [e for e in step.effects if isinstance(e, desk.Note)]
            assert note.event == "escalation_refused" and ("reason", reason) in note.fields


def test_who_leads_a_team() -> None:
    state = notice()
    assert desk.leads("admin", None, state)
    assert desk.leads("leader", HKI, state)
    assert desk.leads("leader", ALL, state)  # an organisation-wide channel covers every region
    assert not desk.leads("leader", VAASA, state)
    assert not desk.leads("leader", None, state)
    assert desk.leads("leader", replace(VAASA, region="helsinki"), state)  # the region's leader
    assert not desk.leads("leader", replace(VAASA, region="helsinki"), notice(team_region=None))


def test_stale_and_forged_presses() -> None:
    for state, data in (
        (None, "esc:ack:7"),
        (notice(escalation=NOT_ESCALATED), "esc:ack:7"),
        (notice(), "esc:zap:7"),
        (notice(), "esc:ans:7"),  # the reporter's button, pressed in the channel
        (notice(), "esc:nt:99"),  # no such window
    ):
        step = go(state, press(data))
        assert step.state == state
        assert alerts(step) == [("3101", fi("esc.stale"))], data


# --- statuses ----------------------------------------------------------------------------


def test_a_status_button_opens_a_reply_window_with_its_prompt() -> None:
    step = go(notice(), press("esc:st:in_progress:7"))
    assert step.state is not None
    [window] = step.state.windows
    assert (window.id, window.kind, window.status, window.person) == (
        desk.NEW,
        "status",
        "in_progress",
        3,
    )
    [opened] = step.effects
    assert isinstance(opened, desk.OpenWindow)
    prompt = opened.prompt_for(12)
    assert prompt is not None and isinstance(prompt.reply, Message)
    assert (prompt.chat_id, prompt.meta) == ("-2001", {"track": "relay:12"})
    assert prompt.reply.ref == "relay:12"
    assert [c.data for c in prompt.reply.flat_choices()] == ["esc:nt:12"]
    assert "60 min" in prompt.reply.text
    assert step.state.acknowledged is None  # nothing is stored until the text comes


def test_a_status_with_a_note_is_stored_edited_closed_and_told() -> None:
    state = stored(go(notice(), press("esc:st:in_progress:7")), 9)
    state = replace(state, windows=(replace(state.windows[0], prompt_ref="77"),))
    later = NOW + timedelta(minutes=3)
    step = go(state, typed("  Selvitämme asian  ", reply_to="77"), later)
    assert step.state is not None
    assert (step.state.status, step.state.status_text) == ("in_progress", "Selvitämme asian")
    assert step.state.acknowledged == desk.Acknowledgement(3, later)  # a status acknowledges
    assert step.state.windows == ()
    assert step.effects[:2] == (
        desk.CloseWindow(9),
        desk.SetStatus("in_progress", 3, "Selvitämme asian"),
    )
    closed = [o for o in sent(step) if o.meta == {"edit": "77"}]
    assert [o.reply.text for o in closed] == [
        fi("esc.status_saved", number=7, status=fi("status.in_progress"))
    ]
    [told] = texts_to(step, "1101")
    assert "Selvitämme asian" in told and fi("status.in_progress") in told


def test_a_status_without_a_note() -> None:
    state = with_window("status", status="decided")
    step = go(state, press("esc:nt:9"))
    assert step.effects[:2] == (desk.CloseWindow(9), desk.SetStatus("decided", 3, None))
    [told] = texts_to(step, "1101")
    assert "Perustelu" not in told and fi("status.decided") in told
    # Pressed again (or after the note came): the window is closed, the button stale.
    again = go(step.state, press("esc:nt:9"))
    assert alerts(again) == [("3101", fi("esc.stale"))]
    # Only in the chat of its prompt.
    assert alerts(go(state, press("esc:nt:9", place=ELSEWHERE))) == [("3101", fi("esc.stale"))]


def test_the_reply_window_expires() -> None:
    state = with_window("status", status="decided")
    assert go(state, typed("Ok", reply_to="77"), NOW + timedelta(minutes=60)).handled
    late = go(state, typed("Ok", reply_to="77"), NOW + timedelta(minutes=60, seconds=1))
    assert not late.handled and late.effects == () and late.state == state


def test_without_reply_ids_the_leaders_next_message_counts() -> None:
    state = with_window("status", status="decided", prompt_ref=None)
    assert go(state, typed("Ok")).handled
    assert not go(state, typed("Ok", ADMIN)).handled  # someone else's window
    assert not go(state, typed("Ok", place=ELSEWHERE)).handled
    # With reply ids, only a reply to the prompt counts; then whoever replies to it.
    tracked = with_window("status", status="decided")
    assert not go(tracked, typed("Ok")).handled
    assert not go(tracked, typed("Ok", reply_to="78")).handled
    assert go(tracked, typed("Ok", ADMIN, reply_to="77")).effects[0] == desk.CloseWindow(9)


def test_a_reply_by_someone_who_may_not_answer_is_refused() -> None:
    state = with_window("status", status="decided")
    step = go(state, typed("Minäpä vastaan", WORKER, reply_to="77"))
    assert step.handled and step.state == state
    assert alerts(step) == [("1101", fi("esc.refused.leaders_only"))]


def test_empty_and_too_long_notes() -> None:
    state = with_window("status", status="decided")
    empty = go(state, typed("   ", reply_to="77"))
    assert empty.handled and empty.effects == () and empty.state == state
    long = go(state, typed("x" * (desk.MAX_REPLY + 1), reply_to="77"))
    assert long.state == state
    assert texts_to(long, "-2001") == [
        fi("esc.too_long", limit=desk.MAX_REPLY, length=desk.MAX_REPLY + 1)
    ]


# --- asking the reporter ------------------------------------------------------------------


def test_a_question_is_relayed_to_the_reporter_with_an_answer_button() -> None:
    step = go(notice(), press("esc:ask:7"))
    assert step.state is not None and step.state.windows[0].kind == "question"
    state = with_window("question")
    step = go(state, typed("Onko tämä toistunut?", reply_to="77"))
    assert step.state is not None
    assert step.state.windows == ()
    assert step.state.questions == (desk.Question(9, "telegram", "-2001", "fi"),)
    assert step.effects[0] == desk.CloseWindow(9)
    [to_reporter] = [o for o in sent(step) if o.chat_id == "1101"]
    assert isinstance(to_reporter.reply, Message)
    assert "Onko tämä toistunut?" in to_reporter.reply.text
    assert [c.data for c in to_reporter.reply.flat_choices()] == ["esc:ans:9"]
    assert texts_to(step, "-2001") == [fi("esc.question_sent", number=7)]


def test_a_question_to_an_unreachable_reporter() -> None:
    step = go(replace(with_window("question"), reporter=None), typed("Kysymys?", reply_to="77"))
    assert texts_to(step, "-2001") == [fi("esc.reporter_unreachable", number=7)]
    assert texts_to(step, "1101") == []


def asked() -> desk.Notice:
    return notice(questions=(desk.Question(9, "telegram", "-2001", "sv"),))


def test_the_reporter_presses_answer_and_their_next_text_goes_to_the_channel() -> None:
    step = go(asked(), press("esc:ans:9", WORKER, REPORTER_CHAT))
    assert step.state is not None
    [window] = step.state.windows
    assert (window.kind, window.person, window.question) == ("answer", 1, 9)
    assert texts_to(step, "1101") == [fi("esc.answer_prompt", number=7, minutes=60)]
    state = stored(step, 10)
    later = NOW + timedelta(minutes=5)
    answered = go(state, typed("Kyllä, viime viikolla", WORKER, REPORTER_CHAT), later)
    assert answered.effects[0] == desk.CloseWindow(10)
    [relayed] = texts_to(answered, "-2001")
    # In the channel's language (where the question was asked), without the reporter.
    assert relayed == t(
        "sv",
        "esc.answer_to_channel.shl48",
        domain="escalation",
        number=7,
        answer="Kyllä, viime viikolla",
    )
    assert texts_to(answered, "1101") == [fi("esc.answer_sent", number=7)]
    # The next text is an ordinary one again.
    assert not go(answered.state, typed("Uusi havainto", WORKER, REPORTER_CHAT), later).handled


def test_only_the_reporter_may_answer_and_only_a_question_asked() -> None:
    step = go(asked(), press("esc:ans:9", LEADER, desk.Place("telegram", "3101", private=True)))
    assert alerts(step) == [("3101", fi("esc.stale"))]
    assert step.state == asked()
    assert any(isinstance(e, desk.Note) and e.event == "escalation_refused" for e in step.effects)
    for data in ("esc:ans:8", "esc:ack:7", "esc:bogus"):
        assert alerts(go(asked(), press(data, WORKER, REPORTER_CHAT))) == [
            ("1101", fi("esc.stale"))
        ]


def test_the_reporters_answer_after_its_window_is_an_ordinary_text() -> None:
    state = stored(go(asked(), press("esc:ans:9", WORKER, REPORTER_CHAT)), 10)
    late = NOW + timedelta(minutes=61)
    step = go(state, typed("Myöhäinen vastaus", WORKER, REPORTER_CHAT), late)
    assert not step.handled and step.effects == ()
    empty = go(state, typed(" ", WORKER, REPORTER_CHAT))
    assert texts_to(empty, "1101") == [fi("esc.answer_empty")]


# --- reminders -------------------------------------------------------------------------------


def test_reminders_come_when_due_and_not_before() -> None:
    state = notice()
    assert go(state, desk.Tick(), NOW + timedelta(hours=23, minutes=59)).effects == ()
    step = go(state, desk.Tick(), NOW + timedelta(hours=24))
    assert step.effects == (desk.Remind(POSTED, 24.0),)
    assert step.state is not None
    [post] = step.state.posts
    assert (post.last_reminded, post.reminders) == (NOW + timedelta(hours=24), 1)
    assert go(step.state, desk.Tick(), NOW + timedelta(hours=47)).effects == ()
    assert len(go(step.state, desk.Tick(), NOW + timedelta(hours=48)).effects) == 1


def test_no_reminders_when_acknowledged_withdrawn_unsent_elsewhere_or_not_shl48() -> None:
    later = NOW + timedelta(hours=72)
    for state in (
        go(notice(), press("esc:ack:7")).state,
        notice(withdrawn=True),
        notice(posts=(replace(POSTED, sent_at=None),)),
        notice(escalation=LEADERSHIP, posts=(replace(POSTED, kind=LEADERSHIP),)),
    ):
        assert go(state, desk.Tick(), later).effects == ()
    assert go(notice(), desk.Tick(frozenset({"matrix"})), later).effects == ()


# --- the notice's own life ---------------------------------------------------------------------


def test_an_escalated_entry_is_posted_to_every_chat_of_its_channel() -> None:
    two = replace(HKI, chats=(("telegram", "-2001"), ("matrix", "!johto:example.org")))
    worker = desk.Place("telegram", "1101", "fi", private=True)
    state = notice(posts=(), responsible=two)
    step = go(state, desk.Escalate(frozenset({"telegram"}), worker))
    adds = [e for e in step.effects if isinstance(e, desk.AddPost)]
    assert [(a.post.transport, a.send) for a in adds] == [("telegram", True), ("matrix", False)]
    assert all(a.post.channel == "hki-johto" and a.post.kind == SHL48 for a in adds)
    assert sent(step) == []
    # Nothing runs here: the worker hears it is on its way.
    elsewhere = go(state, desk.Escalate(frozenset(), worker))
    assert texts_to(elsewhere, "1101") == [fi("esc.worker_pending.shl48", number=7)]
    # Posted already (a correction): no new post; the posted notice is edited and the
    # worker is told so, once.
    corrected = go(notice(), desk.Escalate(frozenset({"telegram"}), worker))
    assert not [e for e in corrected.effects if isinstance(e, desk.AddPost)]
    assert any(isinstance(e, desk.Refresh) for e in corrected.effects)
    assert texts_to(corrected, "1101") == [fi("esc.worker_updated", number=7)]
    assert (
        go(notice(posts=(), escalation=NOT_ESCALATED), desk.Escalate(frozenset(), worker)).effects
        == ()
    )
    lost = go(notice(posts=(), responsible=None), desk.Escalate(frozenset({"telegram"}), worker))
    assert texts_to(lost, "1101") == [fi("esc.worker_no_channel")]
    assert [e.level for e in lost.effects if isinstance(e, desk.Note)] == ["error"]


def test_the_reporter_hears_when_the_notice_got_through_or_did_not() -> None:
    [went] = texts_to(go(notice(), desk.Delivered(first=True)), "1101")
    assert "#7" in went and "Helsingin johto" in went
    assert go(notice(), desk.Delivered(first=False)).effects == ()
    assert texts_to(go(notice(), desk.Undelivered(first=True)), "1101") == [
        fi("esc.worker_pending.shl48", number=7)
    ]
    assert go(notice(reporter=None), desk.Undelivered(first=True)).effects == ()


def test_the_acknowledged_line() -> None:
    line = desk.acknowledged_line("fi", NOW, "Europe/Helsinki", "leader", "w-9")
    assert line == fi(
        "esc.acknowledged_by", who=f"{fi('role.leader')} w-9", when="23.11.2026 10:30"
    )
    assert fi("role.leader") in desk.acknowledged_line("fi", NOW, "Europe/Helsinki")


# --- random sequences ------------------------------------------------------------------------

PEOPLE = {
    "leader": (LEADER, CHANNEL),
    "admin": (ADMIN, CHANNEL),
    "reporter": (WORKER, REPORTER_CHAT),
    "reporter_in_channel": (WORKER, CHANNEL),
    "other_leader": (OTHER_LEADER, CHANNEL),
    "other_leader_home": (OTHER_LEADER, ELSEWHERE),
    "revoked": (REVOKED, CHANNEL),
    "stranger": (STRANGER, CHANNEL),
    "leader_private": (LEADER, desk.Place("telegram", "3101", "fi", private=True)),
}
MAY_ANSWER = {LEADER.person, ADMIN.person}
CHANNELS = {"-2001", "-2002"}


@dataclass
class World:
    """The host, played by the test: stores the new state, gives new windows their ids,
    and posts prompts (with a message id, or without on a transport that has none)."""

    state: desk.Notice
    now: datetime = NOW
    next_id: int = 100
    typed: dict[str, str] = field(default_factory=dict)  # marker -> who typed it (a PEOPLE key)

    def store(self, step: desk.Step, tracked: bool) -> None:
        assert step.state is not None
        windows = []
        for window in step.state.windows:
            if window.id == desk.NEW:
                self.next_id += 1
                ref = f"m{self.next_id}" if tracked and window.kind != "answer" else None
                window = replace(window, id=self.next_id, prompt_ref=ref)
            windows.append(window)
        self.state = replace(step.state, windows=tuple(windows))

    def continuations(self, marker: str) -> list[tuple[str, desk.Event]]:
        """The natural next events: a leader's text for their prompt, the reporter's
        Answer press on a relayed question, the reporter's answer."""
        text = f"Teksti {marker}"
        found: list[tuple[str, desk.Event]] = [("leader", press("esc:ask:7"))]
        for window in self.state.windows:
            if window.kind == "answer":
                found.append(("reporter", typed(text, WORKER, REPORTER_CHAT)))
            else:
                who = "leader" if window.person == LEADER.person else "admin"
                actor = PEOPLE[who][0]
                found.append((who, typed(text, actor, CHANNEL, window.prompt_ref)))
        for question in self.state.questions:
            found.append(("reporter", press(f"esc:ans:{question.id}", WORKER, REPORTER_CHAT)))
        return found


def check_state(state: desk.Notice) -> None:
    assert state.status in ESCALATION_STATUSES
    assert (state.status == OPEN) or state.acknowledged is not None
    ids = [w.id for w in state.windows]
    assert len(ids) == len(set(ids)) and desk.NEW not in ids
    questions = {q.id for q in state.questions}
    for window in state.windows:
        if window.kind == "answer":
            assert window.person == state.reporter_person and window.question in questions
            assert (window.transport, window.chat_id) == ("telegram", REPORTER.chat_id)
        else:
            assert window.person in MAY_ANSWER, window
            assert state.posted_at(window.transport, window.chat_id)
            assert (window.kind == "status") == (window.status in GRIEVANCE_ANSWER_STATUSES)
    for question in state.questions:
        assert state.posted_at(question.transport, question.chat_id)
    assert all(p.reminders >= 0 for p in state.posts)


def check_step(world: World, before: desk.Notice, step: desk.Step, who: str, marker: str) -> None:
    actor, place = PEOPLE[who]
    writes = [e for e in step.effects if not isinstance(e, desk.Send | desk.Note)]
    if any(isinstance(e, desk.Acknowledge | desk.CloseWindow) for e in writes):
        assert isinstance(writes[0], desk.Acknowledge | desk.CloseWindow), writes  # claims first
    if before.acknowledged is not None:
        assert step.state is not None and step.state.acknowledged == before.acknowledged
        assert not any(isinstance(e, desk.Acknowledge | desk.Remind) for e in step.effects)
    for effect in step.effects:
        if isinstance(effect, desk.CloseWindow):
            assert before.window(effect.window) is not None
    for out in sent(step):
        if isinstance(out.reply, Alert):  # to the presser alone, never to a group
            assert out.chat_id == (
                place.chat_id if place.private else "" if actor.revoked else actor.chat
            )
            continue
        text = out.reply.text if isinstance(out.reply, Message) else ""
        for mark, author in world.typed.items():
            if mark not in text:
                continue
            if author == "reporter":  # the reporter's answer: only to a channel that asked
                assert mark == marker and out.chat_id in {q.chat_id for q in before.questions}
            else:  # a leader's note or question: only to the reporter
                assert mark == marker and author in ("leader", "admin"), (author, out)
                assert out.chat_id == REPORTER.chat_id
        if out.chat_id == REPORTER.chat_id:
            assert "3101" not in text and "4101" not in text
        if out.chat_id in CHANNELS:
            assert REPORTER.chat_id not in text  # the reporter is never named


EVENTS = st.sampled_from(("press", "press", "text", "follow", "follow", "tick", "wait"))
PRESSES = st.sampled_from(("ack", "st", "st", "ask", "ask", "nt", "ans", "ans", "forged"))
# Mostly the people the conversation is between, now and then anybody else.
WHO = st.sampled_from(("leader",) * 4 + ("admin",) * 2 + ("reporter",) * 4 + tuple(sorted(PEOPLE)))
# Mostly within a reply window, now and then past reminders.
WAITS = st.integers(1, 50) | st.integers(20 * 60, 30 * 60)


@seed(SEED)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_sequences_stay_valid_and_relay_only_where_meant(data: st.DataObject) -> None:
    world = World(notice(posts=(POSTED, replace(POSTED, id=2, chat_id="-2002", ref=None))))
    tracked = data.draw(st.booleans(), label="transport tracks replies")
    for index in range(data.draw(st.integers(1, 40), label="events")):
        kind = data.draw(EVENTS)
        who = data.draw(WHO)
        actor, place = PEOPLE[who]
        marker = f"zq{index}q"
        event: desk.Event
        if kind == "wait":
            world.now += timedelta(minutes=data.draw(WAITS))
            continue
        if kind == "follow":  # what the conversation waits for, by whoever it waits on
            who, event = data.draw(st.sampled_from(world.continuations(marker)))
            world.typed[marker] = who
        elif kind == "tick":
            event = desk.Tick()
        elif kind == "text":
            refs = [w.prompt_ref for w in world.state.windows if w.prompt_ref] or ["m999"]
            reply_to = None if place.private else data.draw(st.sampled_from(refs) | st.none())
            event = typed(f"Teksti {marker}", actor, place, reply_to)
            world.typed[marker] = who
        else:
            action = data.draw(PRESSES)
            ids = [w.id for w in world.state.windows]
            if action == "ans":
                ids = [q.id for q in world.state.questions]
            number = data.draw(st.sampled_from(ids or [3]) | st.integers(1, 200))
            payload = {
                "ack": "esc:ack:7",
                "st": f"esc:st:{data.draw(st.sampled_from(GRIEVANCE_ANSWER_STATUSES))}:7",
                "ask": "esc:ask:7",
                "nt": f"esc:nt:{number}",
                "ans": f"esc:ans:{number}",
                "forged": "esc:st:closed:7",
            }[action]
            event = press(payload, actor, place)
        before = world.state
        step = desk.advance(before, event, world.now, RULES)
        check_step(world, before, step, who, marker)
        world.store(step, tracked)
        check_state(world.state)


# --- deadlines: acknowledge in working days, measures within measures_days ----------------


def test_the_first_reminder_waits_one_working_day_over_a_weekend() -> None:
    friday = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # Friday 16:00 in Helsinki
    state = notice(posts=(replace(POSTED, sent_at=friday),))
    saturday, monday = friday + timedelta(days=1), friday + timedelta(days=3)
    assert go(state, desk.Tick(), saturday).effects == ()
    assert go(state, desk.Tick(), monday - timedelta(minutes=1)).effects == ()
    step = go(state, desk.Tick(), monday)
    assert step.effects == (desk.Remind(replace(POSTED, sent_at=friday), 24.0),)
    # Then every reminder_hours, as before.
    assert step.state is not None
    assert go(step.state, desk.Tick(), monday + timedelta(hours=23)).effects == ()
    assert len(go(step.state, desk.Tick(), monday + timedelta(hours=24)).effects) == 1
    # Two working days: Tuesday.
    two = replace(RULES, acknowledge_days=2)
    assert desk.advance(state, desk.Tick(), monday, two).effects == ()
    assert desk.advance(state, desk.Tick(), monday + timedelta(days=1), two).effects != ()
    assert desk.working_days_after(friday, 1, "Europe/Helsinki").weekday() == 0
    # Finnish public holidays are not working days: posted on the Wednesday before
    # Christmas (Christmas Eve, Christmas Day, then the weekend), due on the Monday after;
    # posted the day before Ascension Day (Thursday), due on the Friday.
    zone = "Europe/Helsinki"
    before_christmas = datetime(2026, 12, 23, 9, tzinfo=ZoneInfo(zone))
    assert desk.working_days_after(before_christmas, 1, zone).date() == date(2026, 12, 28)
    before_ascension = datetime(2027, 5, 5, 9, tzinfo=ZoneInfo(zone))
    assert desk.working_days_after(before_ascension, 1, zone).date() == date(2027, 5, 7)
    assert desk.working_days_after(before_ascension, 2, zone).date() == date(2027, 5, 10)


def test_no_measure_in_fourteen_days_reminds_the_leaders_and_tells_the_notifier_once() -> None:
    acknowledged = go(notice(), press("esc:ack:7")).state
    assert acknowledged is not None
    later = NOW + timedelta(days=14)
    assert go(acknowledged, desk.Tick(), later - timedelta(minutes=1)).effects == ()
    step = go(acknowledged, desk.Tick(), later)
    assert desk.RemindMeasures() in step.effects
    [to_leaders] = texts_to(step, "-2001")
    assert to_leaders == fi("esc.measures_due", number=7, days=14)
    [to_notifier] = [o.reply for o in sent(step) if o.chat_id == "1101"]
    assert isinstance(to_notifier, Message)
    assert "kuittasi" in to_notifier.text and "14 päivässä" in to_notifier.text
    assert [c.data for c in to_notifier.flat_choices()] == ["kp:pack:7"]
    # Once: the state remembers it, and the host's claim guards two processes.
    assert step.state is not None and step.state.measures_reminded
    assert go(step.state, desk.Tick(), later + timedelta(days=3)).effects == ()
    # Not yet acknowledged: the notifier hears that too; the acknowledge reminder comes along.
    unacknowledged = go(notice(), desk.Tick(), later)
    [told] = texts_to(unacknowledged, "1101")
    assert "ei ole vielä kuitattu" in told
    assert any(isinstance(e, desk.Remind) for e in unacknowledged.effects)


def test_a_recorded_measure_or_a_raise_has_no_measures_deadline() -> None:
    later = NOW + timedelta(days=30)
    for status in ("in_progress", "decided", "no_action"):
        state = notice(status=status, acknowledged=desk.Acknowledgement(3, NOW))
        assert go(state, desk.Tick(), later).effects == ()
    raised = notice(escalation=LEADERSHIP, posts=(replace(POSTED, kind=LEADERSHIP),))
    assert go(raised, desk.Tick(), later).effects == ()
    assert go(notice(withdrawn=True), desk.Tick(), later).effects == ()


# --- "not remedied" (valvontalaki § 29) --------------------------------------------------


def notice_buttons(escalation: str) -> list[list[str]]:
    facts = desk.NoticeFacts(7, escalation, "Kallio", (), "1.12.2026 10:00", "Jono pitkä")
    return [[c.data for c in row] for row in desk.notice(facts, "fi").choices]


def test_only_a_notice_of_a_grievance_can_be_marked_not_remedied() -> None:
    # Under a notice of a grievance: its own row; under a raise to leadership: none.
    assert ["esc:st:not_remedied:7"] in notice_buttons(SHL48)
    assert not any("not_remedied" in data for row in notice_buttons(LEADERSHIP) for data in row)
    # A forged press of it on a raise is stale: no window, nothing stored.
    raised = notice(escalation=LEADERSHIP, posts=(replace(POSTED, kind=LEADERSHIP),))
    step = go(raised, press("esc:st:not_remedied:7"))
    assert step.state == raised
    assert alerts(step) == [("3101", fi("esc.stale"))]
    for status in ANSWER_STATUSES:  # the common three stay open to both
        assert go(raised, press(f"esc:st:{status}:7")).state != raised


def test_not_remedied_closes_the_notice_and_offers_its_notifier_the_pack() -> None:
    state = stored(go(notice(), press("esc:st:not_remedied:7")), 9)
    assert state.windows[0].status == "not_remedied"
    step = go(state, press("esc:nt:9"), NOW + timedelta(minutes=2))
    assert desk.SetStatus("not_remedied", 3, None) in step.effects
    [told] = [o.reply for o in sent(step) if o.chat_id == "1101"]
    assert isinstance(told, Message)
    assert fi("status.not_remedied") in told.text and "Lupa- ja valvontavirasto" in told.text
    assert [c.data for c in told.flat_choices()] == ["kp:pack:7"]
    # Closed: no "no measure recorded" reminder later, and the status names itself in sv/en.
    assert step.state is not None and step.state.status == "not_remedied"
    assert go(step.state, desk.Tick(), NOW + timedelta(days=30)).effects == ()
    assert desk.not_remedied(SHL48, "not_remedied") and desk.not_remedied(SHL48, "no_action")
    assert not desk.not_remedied(LEADERSHIP, "no_action")
    assert t("sv", "status.not_remedied", domain="escalation") == "Inte avhjälpt"
    assert t("en", "status.not_remedied", domain="escalation") == "Not remedied"
