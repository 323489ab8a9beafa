"""Every command word Havainto answers, with its aliases: the one catalogue.

A command has a stable name (``new``) and the words people type for it in
Finnish, Swedish and English (``/uusi``, ``/ny``, ``/new``; on Matrix also with
``!``). The service, the conversations, every transport (Matrix rewrites the
commands in its texts to ``!``) and the help text (``SHOWN``) read their words here.
"""

from __future__ import annotations

from collections.abc import Mapping

#: command name -> the words typed for it (lower case, without "/" or "!").
COMMANDS: Mapping[str, frozenset[str]] = {
    "start": frozenset({"start"}),
    "new": frozenset({"uusi", "new", "ny"}),
    "cancel": frozenset({"peru", "cancel", "avbryt"}),
    "help": frozenset({"apua", "help", "hjalp", "hjälp"}),
    "language": frozenset({"kieli", "language", "lang", "sprak", "språk"}),
    "own": frozenset({"omat", "mine", "mina", "egna"}),
    "week": frozenset({"viikko", "vecka", "week"}),
    "month": frozenset({"kuukausi", "manad", "månad", "month"}),
    "location": frozenset({"sijainti", "location", "plats"}),
    # the knowledge path (flows/knowledge.py)
    "where": frozenset({"missa", "missä", "var", "where"}),
    "metoo": frozenset({"minakin", "minäkin", "ocksa", "också", "metoo"}),
    "pair": frozenset({"pari", "par", "pair"}),
    "phenomenon": frozenset({"ilmio", "ilmiö", "fenomen", "phenomenon"}),
    "link": frozenset({"liita", "liitä", "koppla", "link"}),
    "proposal": frozenset({"ehdotus", "forslag", "förslag", "proposal"}),
    # the escalation pack of one's own notice, for the supervisory authority
    "pack": frozenset({"paketti", "paket", "pack"}),
    "area": frozenset({"alue", "area", "omrade", "område"}),
    "reminder": frozenset({"muistutus", "reminder", "paminnelse", "påminnelse"}),
}

#: Words that turn a setting off (``/muistutus pois``, ``/påminnelse av``, ``/reminder off``).
OFF_WORDS: frozenset[str] = frozenset({"pois", "off", "av", "ei", "nej", "no"})

#: The word the texts of each language show for a command (the help lists these), and
#: ``off``: the word shown for turning a setting off.
SHOWN: Mapping[str, Mapping[str, str]] = {
    "fi": {
        "new": "uusi",
        "own": "omat",
        "cancel": "peru",
        "language": "kieli",
        "help": "apua",
        "area": "alue",
        "reminder": "muistutus",
        "off": "pois",
        "where": "missa",
        "metoo": "minakin",
        "pair": "pari",
    },
    "sv": {
        "new": "ny",
        "own": "mina",
        "cancel": "avbryt",
        "language": "språk",
        "help": "hjälp",
        "area": "område",
        "reminder": "påminnelse",
        "off": "av",
        "where": "var",
        "metoo": "ocksa",
        "pair": "par",
    },
    "en": {
        "new": "new",
        "own": "mine",
        "cancel": "cancel",
        "language": "language",
        "help": "help",
        "area": "area",
        "reminder": "reminder",
        "off": "off",
        "where": "where",
        "metoo": "metoo",
        "pair": "pair",
    },
}

ALL_WORDS: frozenset[str] = frozenset(word for words in COMMANDS.values() for word in words)


def words(name: str) -> frozenset[str]:
    """The words typed for the command ``name``."""
    return COMMANDS[name]


def command_of(word: str) -> str | None:
    """The command a typed word stands for (``ny`` -> ``new``), or None."""
    lowered = word.lower()
    return next((name for name, typed in COMMANDS.items() if lowered in typed), None)


def shown(lang: str) -> Mapping[str, str]:
    """The command words the texts in ``lang`` show, for ``str.format`` (``{new}``)."""
    return SHOWN.get(lang, SHOWN["fi"])
