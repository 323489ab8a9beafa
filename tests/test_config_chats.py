"""Chats keyed by transport: ``chats = { telegram = ..., matrix = ... }`` on teams and
leadership channels; the first versions' keys still work, with a deprecation line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import load_config

NEW = """
[[leadership]]
id = "johto"
name = "Johto"
chats = { telegram = -1001234567890, matrix = "!johto:example.org" }

[[teams]]
id = "t1"
name = "Tiimi"
region = "r"
leadership = "johto"
chats = { telegram = "-100555", signal = "group.abc" }
"""

OLD = """
[[leadership]]
id = "johto"
name = "Johto"
telegram_chat_id = -1001234567890
matrix_room_id = "!johto:example.org"

[[teams]]
id = "t1"
name = "Tiimi"
region = "r"
leadership = "johto"
telegram_chat_id = "-100555"
"""


def test_chats_by_transport_with_telegram_ids_as_integers(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, NEW))
    channel = config.leadership_channel("johto")
    team = config.team("t1")
    assert channel is not None and team is not None
    assert channel.chat_targets() == [
        ("telegram", "-1001234567890"),
        ("matrix", "!johto:example.org"),
    ]
    # Any transport name: a new platform needs no new key.
    assert team.chat_targets() == [("telegram", "-100555"), ("signal", "group.abc")]
    assert config.leadership_at("telegram", "-1001234567890") is channel
    assert config.configured_chats("telegram") == {"-1001234567890", "-100555"}
    assert config.configured_chats("matrix") == {"!johto:example.org"}


def test_the_old_keys_still_work_and_say_they_are_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="havainto.config")
    old = load_config(_write(tmp_path, OLD))
    channel = old.leadership_channel("johto")
    assert channel is not None
    assert channel.chat_targets() == [
        ("telegram", "-1001234567890"),
        ("matrix", "!johto:example.org"),
    ]
    team = old.team("t1")
    assert team is not None and team.chat_targets() == [("telegram", "-100555")]
    deprecated = [r.getMessage() for r in caplog.records if "config_deprecated" in r.getMessage()]
    assert any("telegram_chat_id" in m and "chats.telegram" in m for m in deprecated), deprecated
    assert any("matrix_room_id" in m and "chats.matrix" in m for m in deprecated), deprecated


def test_an_old_empty_key_takes_a_chat_away() -> None:
    config = load_config(
        None,
        teams=[
            {
                "id": "t",
                "name": "T",
                "region": "r",
                "chats": {"telegram": "-1"},
                "telegram_chat_id": "",
                "matrix_room_id": "!r:x",
            }
        ],
        terminal={"enabled": "no"},
    )
    team = config.team("t")
    assert team is not None and team.chat_targets() == [("matrix", "!r:x")]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "havainto.toml"
    path.write_text(text, encoding="utf-8")
    return path
