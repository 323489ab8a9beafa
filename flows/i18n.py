"""User-facing text in Finnish, Swedish and English.

Messages live in gettext catalogs (``flows/locale/<lang>/LC_MESSAGES/<domain>.po``)
so translators can work with ordinary tools; Babel reads them at first use, no
compile step needed. Message ids are symbolic keys (``flow.ask_theme``) and the
taxonomy codes themselves (``theme.housing``), so a wording change never
changes an id. Placeholders use ``str.format`` names.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "fi"
_LOCALE_DIR = Path(__file__).parent / "locale"


def normalise_language(code: str | None) -> str:
    """Map a platform language hint (``sv-FI``, ``en_GB``) to one of ours, Finnish by default."""
    if code:
        short = code.replace("_", "-").split("-", 1)[0].lower()
        if short in LANGUAGES:
            return short
    return DEFAULT_LANGUAGE


@cache
def _catalog(lang: str, domain: str) -> Catalog:
    path = _LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=lang, domain=domain)


def has_message(key: str, lang: str = DEFAULT_LANGUAGE, domain: str = "havainto") -> bool:
    message = _catalog(lang, domain).get(key)
    return message is not None and bool(message.string)


def t(lang: str, key: str, domain: str = "havainto", **params: object) -> str:
    """The message ``key`` in ``lang``; falls back to Finnish, then to the key itself."""
    for candidate in (lang, DEFAULT_LANGUAGE):
        message = _catalog(candidate if candidate in LANGUAGES else DEFAULT_LANGUAGE, domain).get(
            key
        )
        if message is not None and message.string:
            # A plural message read without a count: its singular form (use ``tn``).
            string = message.string[0] if isinstance(message.string, tuple) else message.string
            text = str(string)
            return text.format(**params) if params else text
    return key


@cache
def _plural_rule(lang: str, domain: str) -> Callable[[int], int]:
    return gettext.c2py(_catalog(lang, domain).plural_expr)


def tn(lang: str, key: str, count: int, domain: str = "havainto", **params: object) -> str:
    """The form of the plural message ``key`` (``msgid_plural`` in the catalog) for
    ``count``, by the language's Plural-Forms rule, like ``ngettext``; ``{count}`` and
    ``params`` are filled in. Falls back to Finnish, then to the key itself."""
    for candidate in (lang, DEFAULT_LANGUAGE):
        code = candidate if candidate in LANGUAGES else DEFAULT_LANGUAGE
        message = _catalog(code, domain).get(key)
        if message is None or not isinstance(message.string, tuple):
            continue
        forms = message.string
        index = min(_plural_rule(code, domain)(count), len(forms) - 1)
        if forms[index]:
            return str(forms[index]).format(count=count, **params)
    return key


def label(code: str, lang: str) -> str:
    """The label of a taxonomy code (``theme.housing``) or other coded value."""
    return t(lang, code)
