"""The command line as an operator and a worker use it: real processes, real files.

``havainto run`` with no config starts the terminal chat on SQLite: the test
types into it like a person would (numbers press buttons) and reads the
screen. The same README command a new user runs is exercised here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.i18n import t
from flows.taxonomy import TAXONOMY_VERSION

REPO = Path(__file__).resolve().parent.parent


def havainto(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 60) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVAINTO_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_terminal_chat_logs_an_entry_with_one_text_and_six_numbers(workdir: Path) -> None:
    # Quick capture: the text, then theme 1, group 2, signal 1, how common 3, escalation 1, Save 1.
    typed = "\n".join(["Nuoret nukkuvat porraskäytävissä", "1", "2", "1", "3", "1", "1", "/omat"])
    screen = havainto("run", cwd=workdir, stdin=typed + "\n")
    assert t("fi", "ask.theme") in screen
    assert "1) Asuminen ja asunnottomuus" in screen
    assert t("fi", "svc.saved", number=1) in screen
    assert "#1" in screen and "Nuoret nukkuvat porraskäytävissä" in screen
    assert (workdir / "havainto.db").exists()
    # Logs went to a file, and that file holds no observation text.
    log = (workdir / "havainto.log").read_text()
    assert "observation_saved id=1" in log
    assert "porraskäytävissä" not in log

    exported = havainto("export", "--format", "jsonl", cwd=workdir)
    records = [json.loads(line) for line in exported.splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["theme"] == "theme.housing" and record["population_group"] == "group.youth"
    assert record["frequency"] == "frequency.growing"
    assert record["team"] == "demo" and record["taxonomy_version"] == TAXONOMY_VERSION
    assert record["worker"].startswith("p-")
    assert "local" not in json.dumps(record)


def test_terminal_chat_resumes_a_draft_after_a_restart(workdir: Path) -> None:
    havainto("run", cwd=workdir, stdin="Kesken jäänyt havainto\n4\n")
    screen = havainto("run", cwd=workdir, stdin="/uusi\n1\n")
    assert t("fi", "ask.resume") in screen
    assert t("fi", "ask.group") in screen  # "continue" returned to the open step


def test_terminal_chat_shows_the_open_question_after_a_restart(workdir: Path) -> None:
    havainto("run", cwd=workdir, stdin="Kesken jäänyt havainto\n4\n")
    # Started again with nothing typed: the banner, then the question the draft is on,
    # with its numbers, so that typing a number answers it.
    screen = havainto("run", cwd=workdir, stdin="")
    banner_end = screen.index("Ctrl-D")
    assert screen.index(t("fi", "ask.group")) > banner_end
    assert "1) " + t("fi", "group.children") in screen
    screen = havainto("run", cwd=workdir, stdin="2\n")
    assert t("fi", "ask.signal") in screen


def test_invite_prints_the_code_alone_on_its_last_line(workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{workdir / "x.db"}"\n'
        '[telegram]\nbot_username = "havainto_bot"\n'
        '[[teams]]\nid = "t1"\nname = "Tiimi 1"\nregion = "r1"\n'
    )
    # A new database is made by `db upgrade` (or `run`), never by another command.
    assert (
        havainto("db", "upgrade", "-c", str(config), cwd=workdir).strip()
        == "database is up to date"
    )
    out = havainto(
        "invite",
        "--team",
        "t1",
        "--role",
        "lead",
        "--expires",
        "2d",
        "-c",
        str(config),
        cwd=workdir,
    )
    lines = out.strip().splitlines()
    code = lines[-1]
    assert len(code) == 10 and code.isalnum() and code.isupper()
    assert f"https://t.me/havainto_bot?start={code}" in out


def test_environment_overrides_the_file(workdir: Path) -> None:
    from bot.config import load_config
    from bot.transports import terminal_enabled

    config = workdir / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///from-file.db"\n[telegram]\ntoken = ""\n')
    os.environ["HAVAINTO_TELEGRAM__TOKEN"] = "123:abc"
    try:
        loaded = load_config(config)
    finally:
        del os.environ["HAVAINTO_TELEGRAM__TOKEN"]
    # A relative SQLite path in the file is the file's folder's.
    assert loaded.database.url == f"sqlite:///{workdir / 'from-file.db'}"
    assert loaded.telegram.token == "123:abc" and loaded.telegram.enabled
    assert not terminal_enabled(loaded)


def test_the_example_config_is_valid() -> None:
    from bot.config import load_config

    loaded = load_config(REPO / "config.example.toml")
    assert loaded.teams and all(team.region for team in loaded.teams)
