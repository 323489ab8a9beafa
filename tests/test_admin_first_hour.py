"""The administrator's first hour (issue 13): what a new administrator meets, as they meet it.

Every command runs as a real process (the installed ``havainto`` entry point, or
``python -m bot.cli``) on real files, with real pipes:

* a config error is one short message (file, line or variable, what is wrong, a right
  value), exit status 2, never a traceback, whichever command reads the config;
* a relative SQLite path in the config file is the file's folder's, and no command but
  ``run`` and ``db upgrade`` starts a new, empty database;
* an export or a digest read out into ``head`` is on the audit trail before its first
  row and completed or marked interrupted after; a closed pipe ends it with status 0;
* chat previews are audited; ``havainto health`` names no Telegram mode without Telegram;
* the terminal's demo user and a Telegram worker move to another team with ``/start CODE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from bot.config import Config, load_config
from bot.config_errors import ConfigError
from digests.periods import month_label, week_of
from flows.i18n import t
from storage.db import Database
from storage.models import AuditEvent, Draft, EnrolmentFailure, Invite, Observation, Person
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS, FakeClock
from tests.support.bot_process import toml_text
from tests.support.datacare_helpers import observation, seed
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram import telegram_config
from tests.support.telegram_helpers import TelegramBot

REPO = Path(__file__).resolve().parent.parent
ENTRY_POINT = Path(sys.executable).parent / "havainto"
NOW = datetime.now(UTC).replace(microsecond=0)
ZONE = ZoneInfo("Europe/Helsinki")
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def havainto(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    entry_point: bool = False,
) -> subprocess.CompletedProcess[str]:
    """One ``havainto`` command as a shell runs it (no HAVAINTO_* from the test's process)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAVAINTO_")}
    command = (
        [str(ENTRY_POINT)]
        if entry_point and ENTRY_POINT.exists()
        else [sys.executable, "-m", "bot.cli"]
    )
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
    )


def short_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit status 2, at most four lines on stderr, nothing on stdout, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "│" not in output, output
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 4, output
    assert result.stdout == "", output
    for text in expected:
        assert text in result.stderr, output
    return result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


TEAM = '[[teams]]\nid = "t1"\nname = "Tiimi 1"\nregion = "r1"\n'


# --- config errors ------------------------------------------------------------------------


def test_a_toml_syntax_error_is_one_short_message(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///h.db"\n\n[[teams]]\nid = "t1"\nname = Tiimi\n')
    result = havainto("teams", "list", "-c", str(config), cwd=tmp_path, entry_point=True)
    message = short_error(result, f"{config}, line 6, column 8: not valid TOML", "Invalid value")
    assert 'for example: name = "' in message  # a right line: text in quotes


def test_a_missing_or_unreadable_config_file_is_one_short_message(tmp_path: Path) -> None:
    short_error(
        havainto("audit", "-c", "nowhere.toml", cwd=tmp_path), "error: nowhere.toml: no such file"
    )
    short_error(havainto("audit", "-c", str(tmp_path), cwd=tmp_path), "is a folder")
    binary = tmp_path / "config.toml"
    binary.write_bytes(b'[database]\nurl = "\xff"\n')
    short_error(havainto("audit", "-c", str(binary), cwd=tmp_path), "line 2: not UTF-8 text")


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (
            '[databse]\nurl = "sqlite:///h.db"\n',
            1,
            "unknown section [databse]; did you mean [database]?",
        ),
        (
            '[database]\nulr = "sqlite:///h.db"\n',
            2,
            "unknown key ulr in database; did you mean url?",
        ),
        ('timezon = "Europe/Helsinki"\n', 1, "unknown key timezon; did you mean timezone?"),
        (
            '[[teams]]\nid = "t1"\nnmae = "Tiimi 1"\nregion = "r1"\n',
            3,
            "unknown key nmae in teams[id=t1]; did you mean name?",
        ),
        (
            f'{TEAM}\n[schedule]\nweekly_tiem = "08:00"\n',
            7,
            "unknown key weekly_tiem in schedule; did you mean weekly_time?",
        ),
    ],
)
def test_a_misspelt_section_or_key_names_the_nearest_known_one(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    message = short_error(
        havainto("audit", "-c", str(config), cwd=tmp_path), f"{config}, line {line}: {says}"
    )
    assert "needs name" not in message  # the misspelling explains the missing key


@pytest.mark.parametrize(
    ("text", "line", "says", "example"),
    [
        (
            f'{TEAM}[schedule]\nweekly_time = "8"\n',
            6,
            "schedule.weekly_time: use HH:MM",
            'weekly_time = "08:00"',
        ),
        (
            '[[teams]]\nid = "t1"\nname = "Tiimi 1"\nregion = "r1"\nlanguage = "de"\n',
            5,
            "teams[id=t1].language: Input should be 'fi', 'sv' or 'en'",
            'language = "fi"',
        ),
        (
            f"{TEAM}chats = {{ telegram = -1001234.5 }}\n",
            5,
            "teams[id=t1].chats: the chat id on telegram must be a whole number",
            "chats = { telegram = -1001234567890",
        ),
        (
            f'{TEAM}[telegram]\nwebhook_port = "port"\n',
            6,
            "telegram.webhook_port: Input should be a valid integer",
            "webhook_port = 8443",
        ),
        ('[[teams]]\nid = "t1"\nname = "Tiimi 1"\n', 1, "teams[id=t1] needs region", 'region = "'),
    ],
)
def test_a_bad_value_says_where_what_and_a_right_value(
    tmp_path: Path, text: str, line: int, says: str, example: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    short_error(
        havainto("export", "-c", str(config), cwd=tmp_path),
        f"{config}, line {line}: {says}",
        f"  for example: {example}",
    )


def test_an_environment_variable_is_named_and_values_are_never_repeated(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"{TEAM}[telegram]\ntoken = 7777123\n")  # a token must be text
    message = short_error(
        havainto("teams", "list", "-c", str(config), cwd=tmp_path),
        f"{config}, line 6: telegram.token: Input should be a valid string",
    )
    assert "7777123" not in message  # a value (a token, a password) is never shown

    config.write_text(TEAM)
    short_error(
        havainto(
            "teams",
            "list",
            "-c",
            str(config),
            cwd=tmp_path,
            env={"HAVAINTO_SCHEDULE__WEEKLY_TIME": "25:61"},
        ),
        "environment variable HAVAINTO_SCHEDULE__WEEKLY_TIME: schedule.weekly_time: use HH:MM",
        "for example: HAVAINTO_SCHEDULE__WEEKLY_TIME=08:00",
    )
    short_error(
        havainto(
            "teams",
            "list",
            "-c",
            str(config),
            cwd=tmp_path,
            env={"HAVAINTO_DATABASE__ULR": "sqlite:///x.db"},
        ),
        "environment variable HAVAINTO_DATABASE__ULR: unknown key database.ulr; "
        "did you mean HAVAINTO_DATABASE__URL?",
    )


# Every command that reads the config, as an administrator would type it.
COMMANDS: list[list[str]] = [
    ["run"],
    ["health"],
    ["db", "upgrade"],
    ["export", "--format", "csv"],
    ["report", "--region", "r1", "--from", "2026-01-01", "--to", "2026-01-31", "-o", "r.html"],
    ["audit"],
    ["teams", "list"],
    ["people", "list"],
    ["people", "revoke", "w-00000000"],
    ["people", "restore", "w-00000000"],
    ["invite", "--team", "t1"],
    ["invite", "list"],
    ["invite", "revoke", "ABCDEFGHJK"],
    ["digest", "weekly", "--team", "t1"],
    ["digest", "monthly"],
    ["retention", "run"],
]


@pytest.mark.slow
def test_every_command_reads_the_config_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[databse]\nurl = "sqlite:///h.db"\n{TEAM}')
    for command in COMMANDS:
        short_error(
            havainto(*command, "-c", str(config), cwd=tmp_path, stdin=""),
            "line 1: unknown section [databse]; did you mean [database]?",
        )
    # The same through HAVAINTO_CONFIG instead of -c.
    short_error(
        havainto("people", "list", cwd=tmp_path, env={"HAVAINTO_CONFIG": str(config)}),
        "did you mean [database]?",
    )
    assert not list(tmp_path.glob("*.db"))


def test_telegram_chat_ids_as_integers_and_as_strings(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///h.db"\n'
        '[[teams]]\nid = "t1"\nname = "Tiimi 1"\nregion = "r1"\nleadership = "johto"\n'
        'chats = {telegram = -100123, matrix = "!abc:x"}\n'
        '[[teams]]\nid = "t2"\nname = "Tiimi 2"\nregion = "r1"\n'
        'chats = { telegram = "-100456" }\n'
        '[[teams]]\nid = "t3"\nname = "Tiimi 3"\nregion = "r1"\ntelegram_chat_id = -100789\n'
        '[[leadership]]\nid = "johto"\nname = "Johto"\nregion = "r1"\n'
        "chats = { telegram = -1001234567890 }\n"
    )
    ok(havainto("db", "upgrade", "-c", str(config), cwd=tmp_path))
    assert "t3" in ok(havainto("teams", "list", "-c", str(config), cwd=tmp_path))
    loaded = load_config(config)
    assert [team.chats for team in loaded.teams] == [
        {"telegram": "-100123", "matrix": "!abc:x"},
        {"telegram": "-100456"},
        {"telegram": "-100789"},
    ]
    assert loaded.leadership_at("telegram", "-1001234567890") is not None
    with pytest.raises(ConfigError, match="must be a whole number"):
        load_config(
            None, teams=[{"id": "x", "name": "X", "region": "r", "chats": {"telegram": True}}]
        )


# --- where the database is -------------------------------------------------------------------


def test_a_relative_sqlite_path_is_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "srv", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    config = home / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///havainto.db"\n{TEAM}')
    assert ok(havainto("db", "upgrade", "-c", "../srv/config.toml", cwd=elsewhere)).strip() == (
        "database is up to date"
    )
    assert (home / "havainto.db").exists() and not (elsewhere / "havainto.db").exists()
    result = havainto(
        "export", "--format", "csv", "--actor", "kim", "-c", str(config), cwd=elsewhere
    )
    assert ok(result).startswith("\ufeffid;")
    assert not (elsewhere / "havainto.db").exists()
    assert "kim" in ok(havainto("audit", "-c", str(config), cwd=home))  # the same database

    # In the environment, a relative path is the working directory's, as a shell user expects.
    env = {"HAVAINTO_DATABASE__URL": "sqlite:///from-env.db"}
    ok(havainto("db", "upgrade", "-c", str(config), cwd=elsewhere, env=env))
    assert (elsewhere / "from-env.db").exists() and not (home / "from-env.db").exists()


@pytest.mark.slow
def test_no_command_but_run_and_db_upgrade_starts_a_new_empty_database(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///missing.db"\n{TEAM}')
    database = tmp_path / "missing.db"
    refusing = [c for c in COMMANDS if c[0] != "run" and c[:2] != ["db", "upgrade"]]
    for command in refusing:
        short_error(
            havainto(*command, "-c", str(config), cwd=tmp_path),
            f"error: no database at {database} (database.url of {config})",
            f"havainto db upgrade -c {config}",
        )
        assert not database.exists(), command
    # `run` makes it (here the terminal chat, which ends at once on an empty input) ...
    ok(havainto("run", "-c", str(config), cwd=tmp_path, stdin=""))
    assert database.exists()
    ok(havainto("teams", "list", "-c", str(config), cwd=tmp_path))
    # ... and so does `db upgrade`.
    other = tmp_path / "other.toml"
    other.write_text(f'[database]\nurl = "sqlite:///fresh.db"\n{TEAM}')
    ok(havainto("db", "upgrade", "-c", str(other), cwd=tmp_path))
    assert (tmp_path / "fresh.db").exists()


# --- read-outs on the audit trail --------------------------------------------------------------


def config_file(path: Path, db_url: str, **sections: Any) -> Path:
    values: dict[str, Any] = {
        "database": {"url": db_url, "spool_dir": str(path.parent / "spool")},
        "terminal": {"enabled": "no"},
        "teams": TEST_TEAMS,
        # The current form of chats only (the old keys' deprecation line goes to stderr).
        "leadership": [
            {k: v for k, v in channel.items() if k != "telegram_chat_id"}
            | (
                {"chats": {"telegram": channel["telegram_chat_id"]}}
                if "telegram_chat_id" in channel
                else {}
            )
            for channel in TEST_LEADERSHIP
        ],
        **sections,
    }
    path.write_text(toml_text(values), encoding="utf-8")
    return path


@pytest.fixture
async def many(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Path, int]]:
    """A seeded database with enough observations to fill a pipe several times over."""
    config = config_file(tmp_path / "config.toml", db_url)
    world = await seed(load_config(config), NOW)
    anna = world.people["anna"]
    rows = [
        observation(anna, NOW - timedelta(hours=i), "helsinki", description=f"Rivi {i}: jonot.")
        for i in range(1, 801)
    ]
    async with world.db.transaction() as session:
        await session.execute(insert(Observation), rows)
    total = await count_exportable(world.db)
    await world.db.close()
    yield config, total


async def count_exportable(db: Database) -> int:
    async with db.transaction() as session:
        result = await session.execute(
            select(Observation.id).where(Observation.withdrawn_at.is_(None))
        )
        return len(result.all())


async def audit_rows(db_url: str, action: str) -> list[AuditEvent]:
    db = Database(db_url)
    try:
        async with db.transaction() as session:
            query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            return list((await session.execute(query)).scalars().all())
    finally:
        await db.close()


def export_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "export", "-c", str(config), *extra]


def environment() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAVAINTO_")}
    return {**base, "PYTHONPATH": str(REPO)}


async def test_an_export_into_a_pipe_is_audited_before_its_first_row_and_after(
    many: tuple[Path, int], db_url: str, tmp_path: Path
) -> None:
    config, total = many
    # A reader that takes one line and then stops reading: the export fills the pipe
    # and waits. Its audit row is there already, started, with no rows yet.
    read, write = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *export_command(config, "--actor", "pipe-reader"),
        stdout=write,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
        cwd=tmp_path,
    )
    os.close(write)
    reader = os.fdopen(read, "rb")
    try:
        first = await asyncio.to_thread(reader.readline)
        assert json.loads(first)["team"] in ("hki-etsiva", "vaasa-uppsok")
        [started] = await audit_rows(db_url, "export")
        assert started.actor == "pipe-reader" and started.rows == 0
        assert started.what.endswith("output=stdout state=started"), started.what
    finally:
        reader.close()  # the reader goes away: the export ends quietly, with status 0
    code = await asyncio.wait_for(process.wait(), 60)
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    assert code == 0 and errors == "", errors
    [interrupted] = await audit_rows(db_url, "export")
    assert interrupted.what.endswith("state=interrupted"), interrupted.what
    assert 0 < interrupted.rows < total

    # `| head` in a shell: the same, with the export's own exit status 0.
    script = (
        f"{' '.join(export_command(config, '--format', 'csv', '--actor', 'head'))} "
        f"2>{tmp_path / 'err.txt'} | head -n 3 > {tmp_path / 'head.txt'}; "
        f"echo ${{PIPESTATUS[0]}}"
    )
    shell = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=tmp_path,
        timeout=120,
    )
    assert shell.stdout.strip() == "0", shell.stdout + shell.stderr
    assert (tmp_path / "err.txt").read_text() == ""
    assert len((tmp_path / "head.txt").read_text().splitlines()) == 3
    by_head = (await audit_rows(db_url, "export"))[-1]
    assert by_head.actor == "head" and by_head.what.endswith("state=interrupted")
    assert 0 < by_head.rows < total

    # Read to the end, the row is completed with every row counted.
    done = await asyncio.to_thread(
        subprocess.run,
        export_command(config, "--actor", "all"),
        capture_output=True,
        env=environment(),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0 and len(done.stdout.splitlines()) == total
    completed = (await audit_rows(db_url, "export"))[-1]
    assert completed.actor == "all" and completed.rows == total
    assert completed.what.endswith("state=completed")


async def closed_pipe_run(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``command`` with a standard output whose reader is gone before it writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            command,
            stdout=write,
            stderr=subprocess.PIPE,
            env=environment(),
            cwd=cwd,
            timeout=120,
        )
    finally:
        os.close(write)
    return result.returncode, result.stderr.decode()


async def test_cli_digests_are_audited_like_exports(db_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path / "config.toml", db_url)
    world = await seed(load_config(config), NOW)
    week = week_of((NOW - timedelta(days=3)).astimezone(ZONE).date())
    local = NOW.astimezone(ZONE)
    month = month_label(local.year, local.month)
    from storage.digest_queries import monthly_summary_data, weekly_digest_data

    async with world.db.snapshot() as session:
        weekly_total = (await weekly_digest_data(session, "hki-etsiva", week, ZONE)).total
        monthly_total = (await monthly_summary_data(session, "helsinki", month, ZONE)).total
    await world.db.close()
    assert weekly_total > 0

    base = [sys.executable, "-m", "bot.cli", "digest"]
    out = tmp_path / "charts"
    weekly = await asyncio.to_thread(
        subprocess.run,
        [
            *base,
            "weekly",
            "--team",
            "hki-etsiva",
            "--week",
            week,
            "--out",
            str(out),
            "--actor",
            "alice",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=tmp_path,
        timeout=120,
    )
    assert weekly.returncode == 0, weekly.stderr
    [row] = await audit_rows(db_url, "digest.weekly")
    assert (row.actor, row.rows) == ("alice", weekly_total)
    assert row.what == f"team=hki-etsiva week={week} send=no state=completed"

    monthly = await asyncio.to_thread(
        subprocess.run,
        [
            *base,
            "monthly",
            "--region",
            "helsinki",
            "--month",
            month,
            "--out",
            str(out),
            "--actor",
            "bob",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=tmp_path,
        timeout=120,
    )
    assert monthly.returncode == 0, monthly.stderr
    [row] = await audit_rows(db_url, "digest.monthly")
    assert (row.actor, row.rows) == ("bob", monthly_total)
    assert row.what == f"region=helsinki month={month} lang=fi send=no state=completed"

    # Printed into a pipe nobody reads: on the trail all the same, interrupted, status 0.
    code, errors = await closed_pipe_run(
        [
            *base,
            "weekly",
            "--team",
            "hki-etsiva",
            "--week",
            week,
            "--out",
            str(out),
            "--actor",
            "carol",
            "-c",
            str(config),
        ],
        tmp_path,
    )
    assert code == 0 and errors == "", errors
    row = (await audit_rows(db_url, "digest.weekly"))[-1]
    assert row.actor == "carol" and row.what.endswith("state=interrupted")
    code, errors = await closed_pipe_run(export_command(config, "--actor", "dave"), tmp_path)
    assert code == 0 and errors == "", errors
    row = (await audit_rows(db_url, "export"))[-1]
    assert row.actor == "dave" and row.what.endswith("state=interrupted")


@pytest.fixture
async def telegram(
    make_config: Callable[..., Config], clock: FakeClock
) -> AsyncIterator[TelegramBot]:
    async with FakeTelegram() as fake:
        harness = TelegramBot(fake, telegram_config(make_config, fake, username=True), clock)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def test_chat_previews_are_audited(telegram: TelegramBot, clock: FakeClock) -> None:
    lead = await telegram.enrol(801, role="lead")
    leader = await telegram.enrol(802, role="leader")
    worker = await telegram.enrol(803)
    [lead_person, leader_person, _] = sorted(await telegram.rows(Person), key=lambda p: p.id)

    await lead.say("/viikko")
    lead.expect(t("fi", "preview.note", domain="escalation"))
    await leader.say("/kuukausi")
    leader.expect(t("fi", "preview.note", domain="escalation"))
    await worker.say("/viikko")  # refused: nothing read out, nothing on the trail
    assert worker.texts == [t("fi", "preview.weekly_refused", domain="escalation")]

    today = clock().astimezone(ZONE).date()
    [weekly] = await telegram.rows(AuditEvent, AuditEvent.action == "digest.weekly")
    assert weekly.actor == f"person:{lead_person.id}"
    assert weekly.what == f"team=hki-etsiva week={week_of(today)} preview=chat"
    [monthly] = await telegram.rows(AuditEvent, AuditEvent.action == "digest.monthly")
    assert monthly.actor == f"person:{leader_person.id}"
    assert monthly.what == (
        f"region=helsinki month={month_label(today.year, today.month)} preview=chat"
    )


# --- health ---------------------------------------------------------------------------------


def test_health_names_no_telegram_mode_when_telegram_is_off(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///h.db"\n{TEAM}')
    ok(havainto("db", "upgrade", "-c", str(config), cwd=tmp_path))
    report = json.loads(ok(havainto("health", "-c", str(config), cwd=tmp_path)))
    assert report["status"] == "ok"
    assert "telegram_mode" not in report and "telegram" not in report["transports"]
    assert "telegram" not in json.dumps(report)
    # With a token, Telegram is on and its mode is said.
    token = {"HAVAINTO_TELEGRAM__TOKEN": "123:abc"}
    report = json.loads(ok(havainto("health", "-c", str(config), cwd=tmp_path, env=token)))
    assert report["telegram_mode"] == "polling" and "telegram" in report["transports"]


async def test_a_running_bot_without_telegram_reports_no_telegram(
    make_config: Callable[..., Config],
) -> None:
    from bot.runtime import build_runtime
    from bot.runtime.health import health

    runtime = await build_runtime(make_config(), terminal=False)
    try:
        report = await health(runtime)
    finally:
        await runtime.stop()
    assert "telegram" not in json.dumps(report)


# --- from the demo team to a real one ------------------------------------------------------------


def test_the_terminal_user_moves_from_the_demo_to_a_real_team(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "havainto", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    # Trying it out: the demo team, one entry (text, six numbers).
    typed = "Nuoret nukkuvat porraskäytävissä\n1\n2\n1\n3\n1\n1\n"
    assert t("fi", "svc.saved", number=1) in ok(havainto("run", cwd=folder, stdin=typed))

    # The real teams, in a config file next to the demo's database.
    config = folder / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///havainto.db"\n'
        '[[teams]]\nid = "t1"\nname = "Tiimi 1"\nregion = "r1"\n'
        '[[teams]]\nid = "t2"\nname = "Tiimi 2"\nregion = "r1"\n'
    )

    def invite(team: str, role: str) -> str:
        out = ok(
            havainto("invite", "--team", team, "--role", role, "-c", str(config), cwd=elsewhere)
        )
        return out.strip().splitlines()[-1]

    to_t2, again = invite("t2", "lead"), invite("t2", "lead")
    screen = ok(
        havainto(
            "run",
            "-c",
            str(config),
            cwd=elsewhere,
            stdin=f"/start {to_t2}\n/start {to_t2}\n/start {again}\n/start EIOLEOLEMASSA\n",
        )
    )
    lead = t("fi", "role.lead", domain="escalation")
    expected = [
        # At start: the demo team is not in the config; the first team is.
        t("fi", "svc.moved_config", old="demo", team="Tiimi 1"),
        # The code moves them on, as its team and role say.
        t("fi", "svc.moved", old="Tiimi 1", team="Tiimi 2", role=lead),
        # Their own code again: a greeting.
        t("fi", "svc.welcome", team="Tiimi 2"),
        # Another code for where they already are: not used, and said so.
        t("fi", "svc.move_same", team="Tiimi 2", role=lead),
        # A wrong code: said, and where they still are.
        f"{t('fi', 'svc.invite_unknown')} {t('fi', 'svc.move_stays', team='Tiimi 2')}",
    ]
    positions = [screen.find(text) for text in expected]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), screen
    assert "tiimi demo" not in screen

    people = ok(havainto("people", "list", "-c", str(config), cwd=elsewhere))
    [local] = [line for line in people.splitlines()[1:] if line.strip()]
    assert local.split()[2:4] == ["lead", "t2"]
    unused = ok(havainto("invite", "list", "-c", str(config), cwd=elsewhere))
    assert again in unused and to_t2 not in unused
    # The demo entry stays with the demo team.
    [record] = [
        json.loads(line)
        for line in ok(havainto("export", "-c", str(config), cwd=folder)).splitlines()
    ]
    assert record["team"] == "demo"


async def test_a_telegram_worker_moves_to_another_team_with_an_invite(
    telegram: TelegramBot,
) -> None:
    anna = await telegram.enrol(901)
    # An open draft with an area of the team she leaves.
    await anna.say("Asunnottomia nuoria rappukäytävissä")
    async with telegram.rt.db.transaction() as session:
        draft = (await session.execute(select(Draft))).scalar_one()
        draft.state = {**draft.state, "area": "kallio"}

    code = await telegram.invite("vaasa-uppsok", "lead")
    await anna.say(f"/start {code}")
    lead = t("fi", "role.lead", domain="escalation")
    assert anna.texts == [
        t("fi", "svc.moved", old="Helsingin etsivät", team="Vasa uppsökande", role=lead)
    ]
    [person] = await telegram.rows(Person)
    assert (person.team_id, person.role) == ("vaasa-uppsok", "lead")
    [invite] = await telegram.rows(Invite, Invite.code == code)
    assert invite.used_at is not None
    [draft] = await telegram.rows(Draft)
    assert draft.state["area"] is None  # Kallio is Helsinki's, not Vaasa's
    assert draft.state["description"] == "Asunnottomia nuoria rappukäytävissä"  # nothing lost

    # Her own code again greets; a code for where she is already is left unused.
    await anna.say(f"/start {code}")
    assert anna.texts == [t("fi", "svc.welcome", team="Vasa uppsökande")]
    same = await telegram.invite("vaasa-uppsok", "lead")
    await anna.say(f"/start {same}")
    assert anna.texts == [t("fi", "svc.move_same", team="Vasa uppsökande", role=lead)]
    [unused] = await telegram.rows(Invite, Invite.code == same)
    assert unused.used_at is None
    # A code that links another account to her is for that account.
    link = await telegram.rt.service.create_invite(
        "vaasa-uppsok", "lead", timedelta(days=1), person.id
    )
    await anna.say(f"/start {link}")
    assert anna.texts == [t("fi", "svc.invite_link")]
    # A wrong code is said, counts towards the lockout, and she stays where she is.
    await anna.say("/start EIOLEOLEMASSA")
    assert anna.texts == [
        f"{t('fi', 'svc.invite_unknown')} {t('fi', 'svc.move_stays', team='Vasa uppsökande')}"
    ]
    assert len(await telegram.rows(EnrolmentFailure)) == 1
    [person] = await telegram.rows(Person)
    assert (person.team_id, person.role) == ("vaasa-uppsok", "lead")


# --- the repository's own files ---------------------------------------------------------------


def test_gitignore_covers_the_sqlite_side_files_and_the_log(tmp_path: Path) -> None:
    names = ["havainto.db", "havainto.db-wal", "havainto.db-shm", "havainto.log", ".cache"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == names, result.stdout + result.stderr


def test_ci_names_each_debian_package_and_why_before_installing(tmp_path: Path) -> None:
    listing = tmp_path / "packages"
    listing.write_text(
        "# a comment line\n"
        "havainto-no-such-package   the reason this one is needed\n"
        "bash                       installed already: not named\n"
    )
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "install-system-packages"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "HAVAINTO_SYSTEM_PACKAGES": str(listing)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "apt-get" in lines[0] and "PDF" in lines[0]
    assert lines[1].split(None, 2) == [
        "ci:",
        "havainto-no-such-package",
        "the reason this one is needed",
    ]
    assert "bash" not in result.stdout.split("\n", 1)[1]
    # Every package of the real list comes with its reason.
    for line in (REPO / ".ci" / "system-packages").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert len(line.split(None, 1)) == 2, line
    assert "bash .ci/install-system-packages" in (REPO / ".ci" / "run").read_text()


def test_readme_first_screen_has_two_commands_and_tells_about_debian_packages() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_screen = readme.split("\n---\n", 1)[0]
    blocks = first_screen.split("```sh\n")[1:]
    commands = [block.split("```", 1)[0].strip() for block in blocks]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/havainto run",
        "bash .ci/run",
    ]
    assert "root" in first_screen and "apt-get" in first_screen and "PDF" in first_screen


def test_pyproject_uses_the_spdx_license_form() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["license"] == "EUPL-1.2"
    [setuptools] = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"  # the first with PEP 639 license expressions
