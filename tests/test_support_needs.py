"""The optional Social Welfare Act § 11 support needs: asked in "Add details" where the
deployment switches them on, stored (migration 0017), exported with code and label; off,
nothing changes for the worker. Old rows (taxonomy 2026.1) keep working."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from bot.config import Config
from flows import capture, taxonomy
from flows.capture import Draft, FlowContext, Save, Step
from flows.events import ChoiceIn, TextIn
from flows.i18n import LANGUAGES, has_message, label, t
from storage.export import iter_records
from storage.models import Observation
from tests.conftest import FakeClock
from tests.support.datacare_helpers import add, add_status, observation, seed
from tests.support.db import count
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot, Worker
from tests.test_flow import AREAS, NOW, ctx, press, question, quick_capture

ON = FlowContext(lang="fi", now=NOW, areas=AREAS, nonce="k1", support_needs=True)


def detail_values(result: capture.Result) -> list[str]:
    return [choice.data.rsplit(":", 1)[1] for choice in question(result).flat_choices()]


# --- the taxonomy ------------------------------------------------------------------------------


def test_the_ten_needs_of_section_11_in_the_order_of_the_law() -> None:
    assert taxonomy.TAXONOMY_VERSION == "2026.2"
    codes = taxonomy.SUPPORT_NEED.codes
    assert len(codes) == 10 and len(set(codes)) == 10
    assert codes[1] == "support_need.housing" and codes[2] == "support_need.financial"
    assert codes[9] == "support_need.carers"
    assert all(taxonomy.is_valid(code) for code in codes)
    for lang in LANGUAGES:
        labels = [label(code, lang) for code in codes]
        assert all(has_message(code, lang) for code in codes), lang
        assert len(set(labels)) == 10, lang  # no two needs look alike on a button
        assert has_message("ask.support_need", lang) and has_message("field.support_need", lang)
    assert label("support_need.housing", "fi") == "Asuminen"
    assert label("support_need.housing", "sv") == "Boende"
    assert "11" in t("fi", "field.support_need") and "11" in t("sv", "field.support_need")


def test_off_by_default_and_documented_in_the_example_config() -> None:
    from pathlib import Path

    from bot.config import load_config

    assert load_config(None).taxonomy.support_needs is False
    example = load_config(Path(__file__).resolve().parent.parent / "config.example.toml")
    assert example.taxonomy.support_needs is False
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    assert "[taxonomy]\n" in text and "support_needs = false" in text


# --- the flow, switched off and on ---------------------------------------------------------------


def test_switched_off_add_details_offers_no_support_need() -> None:
    details = press(quick_capture(), "details")
    values = detail_values(details)
    assert "support_need" not in values
    assert values == [s.value for s in capture.DETAIL_STEPS if s is not Step.SUPPORT_NEED] + [
        "done"
    ]
    # A forged press on the hidden item is refused like any stale button.
    assert details.draft is not None
    forged = f"d:{details.draft.key}:{details.draft.seq}:support_need"
    refused = capture.advance(details.draft, ChoiceIn(forged), ctx())
    assert refused.draft == details.draft and refused.note == "choice_refused"
    summary = question(press(details, "done")).text
    assert t("fi", "field.support_need") not in summary


def test_switched_on_the_worker_picks_one_need_and_it_is_saved() -> None:
    details = press(quick_capture(), "details", ON)
    values = detail_values(details)
    assert values.index("support_need") == values.index("task") + 1
    asked = press(details, "support_need", ON)
    assert asked.draft is not None and asked.draft.step is Step.SUPPORT_NEED
    message = question(asked)
    assert message.text == t("fi", "ask.support_need")
    codes = [c.data.rsplit(":", 1)[1] for c in message.flat_choices()]
    assert codes == [*taxonomy.SUPPORT_NEED.codes, "back"]
    assert all(len(row) == 1 for row in message.choices)  # long labels: one per row
    chosen = press(asked, "support_need.housing", ON)
    assert chosen.draft is not None and chosen.draft.step is Step.DETAILS_MENU
    assert chosen.draft.support_need == "support_need.housing"
    summary = press(chosen, "done", ON)
    text = question(summary).text
    assert f"{t('fi', 'field.support_need')}: {label('support_need.housing', 'fi')}" in text
    saved = press(summary, "save", ON).effect
    assert isinstance(saved, Save) and saved.draft.support_need == "support_need.housing"


def test_back_leaves_the_need_as_it_was_and_a_wrong_code_is_refused() -> None:
    asked = press(press(quick_capture(), "details", ON), "support_need", ON)
    back = press(asked, "back", ON)
    assert back.draft is not None and back.draft.support_need is None
    assert back.draft.step is Step.DETAILS_MENU
    assert asked.draft is not None
    other = f"d:{asked.draft.key}:{asked.draft.seq}:theme.housing"
    assert capture.advance(asked.draft, ChoiceIn(other), ON).draft == asked.draft
    # Answered by typing, as on Matrix and in the terminal: the number of the option.
    typed = capture.advance(asked.draft, TextIn("3"), ON)
    assert typed.draft is not None and typed.draft.support_need == "support_need.financial"


def test_in_swedish_and_english_too() -> None:
    for lang in ("sv", "en"):
        c = FlowContext(lang=lang, now=NOW, areas=AREAS, nonce="k1", support_needs=True)
        details = press(press(quick_capture(), "details", c), "support_need", c)
        message = question(details)
        assert message.text == t(lang, "ask.support_need")
        assert message.flat_choices()[0].label == label("support_need.daily_life", lang)


def test_old_drafts_and_entries_without_a_need_keep_working() -> None:
    # A draft stored before 2026.2 has no support_need key.
    stored = press(quick_capture(), "details").draft
    assert stored is not None
    old = {k: v for k, v in stored.to_json().items() if k != "support_need"}
    restored = Draft.from_json(old)
    assert restored.support_need is None and restored.step is Step.DETAILS_MENU
    # An entry saved without one opens for correction, and gets one where it is asked.
    values = {
        "description": "Yömaja täynnä",
        "theme": "theme.housing",
        "group": "group.youth",
        "signal": "signal.queues",
        "frequency": "frequency.recurring",
        "escalation": "escalation.none",
        "support_need": None,
    }
    opened = capture.from_observation(values, 7, ON)
    assert opened.draft is not None and opened.draft.step is Step.SUMMARY
    corrected = press(
        press(press(opened, "details", ON), "support_need", ON), "support_need.crisis", ON
    )
    saved = press(press(corrected, "done", ON), "save", ON).effect
    assert isinstance(saved, Save)
    assert (saved.draft.observation_id, saved.draft.support_need) == (7, "support_need.crisis")


# --- end to end through the fake Telegram --------------------------------------------------------


async def _bot(
    make_config: Callable[..., Config], clock: FakeClock, on: bool
) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        config = telegram_config(make_config, fake, username=True, taxonomy={"support_needs": on})
        harness = TelegramBot(fake, config, clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()
        crashes = [r.getMessage() for r in harness.errors.records]
        assert not crashes, f"the bot logged errors: {crashes}"


@pytest.fixture
async def bot_on(
    make_config: Callable[..., Config], clock: FakeClock
) -> AsyncIterator[TelegramBot]:
    async for harness in _bot(make_config, clock, on=True):
        yield harness


@pytest.fixture
async def bot_off(
    make_config: Callable[..., Config], clock: FakeClock
) -> AsyncIterator[TelegramBot]:
    async for harness in _bot(make_config, clock, on=False):
        yield harness


def fi(key: str) -> str:
    return t("fi", key)


async def to_summary(worker: Worker, text: str) -> None:
    await worker.say(text)
    await worker.new_if_asked()
    for code in (
        "theme.housing",
        "group.youth",
        "signal.queues",
        "frequency.recurring",
        "escalation.none",
    ):
        await worker.tap(label(code, "fi"))


async def test_a_telegram_worker_adds_a_support_need_and_it_is_exported(
    bot_on: TelegramBot,
) -> None:
    anna = await bot_on.enrol(2001)
    await to_summary(anna, "Nuoret nukkuvat porraskäytävissä")
    await anna.tap(fi("button.details"))
    anna.expect(fi("ask.details_menu"))
    assert fi("field.support_need") in anna.labels()
    await anna.tap(fi("field.support_need"))
    anna.expect(fi("ask.support_need"))
    assert anna.labels() == [
        *(label(code, "fi") for code in taxonomy.SUPPORT_NEED.codes),
        fi("button.back"),
    ]
    await anna.tap(label("support_need.housing", "fi"))
    anna.expect(fi("ask.details_menu"))
    await anna.tap(fi("button.done"))
    summary = anna.expect(fi("summary.title"))
    assert label("support_need.housing", "fi") in (summary.text or "")
    await anna.tap(fi("button.save"))
    assert re.search(r"#(\d+)", anna.texts[0])
    (entry,) = await bot_on.rows(Observation)
    assert entry.support_need == "support_need.housing"
    assert entry.taxonomy_version == taxonomy.TAXONOMY_VERSION
    async with bot_on.rt.db.transaction() as session:
        (record,) = [r async for r in iter_records(session, lang="sv")]
    assert (record.support_need, record.support_need_label) == ("support_need.housing", "Boende")


async def test_switched_off_the_telegram_worker_sees_no_extra_button(bot_off: TelegramBot) -> None:
    anna = await bot_off.enrol(2002)
    await to_summary(anna, "Nuoret nukkuvat porraskäytävissä")
    await anna.tap(fi("button.details"))
    anna.expect(fi("ask.details_menu"))
    assert anna.labels() == [
        *(fi(f"field.{s.value}") for s in capture.DETAIL_STEPS if s is not Step.SUPPORT_NEED),
        fi("button.done"),
    ]
    await anna.tap(fi("button.done"))
    await anna.tap(fi("button.save"))
    (entry,) = await bot_off.rows(Observation)
    assert entry.support_need is None


# --- storage: old rows, export, migration ---------------------------------------------------------


async def test_old_rows_export_without_a_need_and_new_ones_with_code_and_label(
    make_config: Callable[..., Config],
) -> None:
    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    world = await seed(make_config(), now)
    try:
        anna = world.people["anna"]
        await add(
            world,
            "new",
            observation(
                anna,
                now,
                "helsinki",
                support_need="support_need.violence",
                taxonomy_version=taxonomy.TAXONOMY_VERSION,
            ),
        )
        async with world.db.transaction() as session:
            records = {r.id: r async for r in iter_records(session, lang="en")}
        new = records.pop(world.observations["new"])
        assert (new.support_need, new.support_need_label) == (
            "support_need.violence",
            label("support_need.violence", "en"),
        )
        assert new.taxonomy_version == "2026.2"
        assert records and all(r.taxonomy_version == "2026.1" for r in records.values())
        assert all(
            r.support_need is None and r.support_need_label is None for r in records.values()
        )
    finally:
        await world.db.close()


async def test_migration_0017_adds_and_drops_the_column(
    db_url: str, make_config: Callable[..., Config]
) -> None:
    """Down to 0016 and up again with rows in the table: the rows stay, and the table is
    altered in place, not copied (a copy would lose the escalation status triggers of 0005
    and trip the other tables' foreign keys)."""
    from alembic import command

    from storage.db import alembic_config

    now = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    world = await seed(make_config(), now)
    db = world.db

    async def columns() -> set[str]:
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("observations")}
            )

    try:
        rows = await count(db, Observation)
        assert rows and "support_need" in await columns()
        await db.engine.dispose()
        config = alembic_config(db_url)
        await asyncio.to_thread(command.downgrade, config, "0016")
        assert "support_need" not in await columns()
        await db.engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "head")
        assert "support_need" in await columns()
        assert await count(db, Observation) == rows
        anna = world.people["anna"]
        raised = await add(
            world,
            "raised",
            observation(anna, now, "helsinki", escalation="escalation.leadership"),
        )
        await add_status(world, raised, "acknowledged", now)
        async with db.transaction() as session:
            entry = await session.get(Observation, raised)
            assert entry is not None and entry.escalation_status == "acknowledged"
    finally:
        await db.close()
