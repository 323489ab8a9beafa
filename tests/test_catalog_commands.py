"""Every command word the catalogs write (``/uusi``, Matrix's ``!uusi``) is one the bot
answers (``flows.commands``): a command renamed there cannot leave stale help text."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from flows import commands

LOCALE = Path(__file__).resolve().parent.parent / "flows" / "locale"
# "/word" or "!word" at the start or after a space, bracket or quote: not "km/h", not a
# URL's path, not "Kiitos!".
COMMAND_WORD = re.compile(r"(?:^|(?<=[\s(\"'“”«»]))[/!]([^\W\d_]\w*)")


def command_words(text: str) -> list[str]:
    return COMMAND_WORD.findall(text)


def not_commands(words: list[str]) -> list[str]:
    return [word for word in words if word.lower() not in commands.ALL_WORDS]


def unknown_command_words() -> tuple[dict[str, int], list[str]]:
    """Per language how many command words the translations write, and the unknown ones."""
    found: dict[str, int] = {}
    unknown: list[str] = []
    for path in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        lang = path.parts[-3]
        with path.open("rb") as file:
            catalog = read_po(file)
        for message in catalog:
            if not message.id:
                continue
            texts = message.string if isinstance(message.string, tuple) else (message.string,)
            for text in texts:
                words = command_words(text or "")
                found[lang] = found.get(lang, 0) + len(words)
                for word in not_commands(words):
                    unknown.append(f"{lang}/{path.name} {message.id!r}: /{word}")
    return found, unknown


def test_every_command_word_in_the_catalogs_is_a_command() -> None:
    found, unknown = unknown_command_words()
    assert unknown == []
    # The scan sees them: about 25 per language.
    assert set(found) == {"fi", "sv", "en"} and min(found.values()) >= 20, found


def test_the_scan_finds_a_stale_word_and_leaves_other_slashes_alone() -> None:
    assert command_words("Kirjaa uusi: /uusi tai !uusi. (/omat)") == ["uusi", "uusi", "omat"]
    assert command_words("50 km/h, https://t.me/bot?start=X, Kiitos! ja/tai 1/2") == []
    # A renamed command's old word is caught; the new one and other languages' pass.
    assert not_commands(command_words("Kirjoita /vanha tai /Uusi, !ny")) == ["vanha"]
