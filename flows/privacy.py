"""Privacy guard: find and redact client identifiers in free text.

Why this module exists
----------------------
Outreach workers type observations on a phone, in the street, often in a
hurry. An observation is about a *phenomenon* in the service system ("the
night shelter turned people away again"), never about a *person*. Free text
nevertheless ends up containing identifiers now and then: a client's phone
number, an e-mail address, a bank account, or, worst of all, a Finnish
personal identity code (henkilötunnus, "hetu"). A hetu must never be stored,
so everything that is saved or forwarded passes through this guard first.

The module is deliberately pure: no I/O, no chat library, no database. It
only finds spans and replaces them. :class:`Finding` carries the kind and the
position of a match but never a copy of the matched value, so findings can be
logged (by kind) without leaking what they point at.

Text read back out of storage for digests, reports, exports and notices
passes :func:`scrub`, which removes hetus with the same rule: rows stored
before the guard, or before it knew a trick, must not show one either. The
other kinds are not removed on read-out: where the text entered, its writer
was asked about them (:mod:`flows.textguard`) and may have kept them on
purpose (a service's public number, a street or a school named after a
person), and the read-out follows that choice as the guard does.

Rules
-----
* **hetu** (``DDMMYYCZZZQ``): candidates are found with a regular expression
  on the normalised text (see below: any case, any dash as the ``-`` sign)
  that allows at most one whitespace character (a line break too) between
  any two characters of the code, and validated with
  :func:`stdnum.fi.hetu.is_valid`, which checks the date, the individual
  number and the check character. python-stdnum knows every century sign
  of the 2023 reform (``+``; ``-YXWVU``; ``ABCDEF``): added upstream in 2023
  (PR #396), before the 1.20 this project requires, and verified with 2.2 by
  the tests. Temporary identifiers (individual number 900-999) are accepted
  too: they identify a person just as well. A code glued to a longer number
  (``1131052-308T``) is not reported, but an invisible character counts as
  a separator there (``5``, a zero-width space, ``131052-308T``). A
  look-alike with a wrong check character is not a hetu finding. If its sign
  or check character is a letter it is not a phone either; an all-digit one
  (``040123-4567``) is also a way of writing a phone number and goes through
  the phone rule like any other digits.
* **iban**: candidates (two letters, two digits, then letters/digits,
  optionally in space- or hyphen-separated groups) are validated with
  :func:`stdnum.iban.is_valid`, any country: mod-97 checksum, country code,
  length and BBAN structure from the IBAN registry. The optional national
  checks (``check_country``) are switched off: they consult registries such
  as Belgian bank codes, which reject real-looking test and new numbers, and
  a redaction guard must err towards finding. The longest valid prefix that
  ends at a group boundary wins, so trailing words are not swallowed.
* **email**: a permissive regular expression (``local@domain.tld``,
  subdomains, ``+tags``, Unicode letters in both parts). No validation: any
  address-shaped string is redacted. Addresses written to fool harvesters,
  as Finnish public-sector sites do, count too: the ``@`` as ``(at)``,
  ``[at]``, ``{at}`` or ``(a)``, a dot as ``(dot)``, ``[dot]`` or, in the
  domain, `` dot ``; any case, up to two spaces around a marker
  (``etunimi.sukunimi [at] hel.fi``). A bare ``at`` is prose, never a marker.
* **phone**: every run of digit groups is checked with
  :class:`phonenumbers.PhoneNumberMatcher` (default region ``FI``,
  :attr:`~phonenumbers.Leniency.VALID`), so only numbers that are valid in the
  numbering plan of some country are reported. Runs are handed to the matcher
  one by one; when a whole run is not a number, sub-runs starting at its first
  group or at a group beginning with ``+``, ``(`` or ``0`` are tried (longest
  first), because the matcher alone misses ``+358 40 1234567 2024``. Runs with
  fewer than six digits (counts, years, times, postal codes) cannot be valid
  numbers and are skipped without asking the matcher. Hetus (and look-alikes
  with a letter in them), IBANs, e-mail addresses, dates (``12.3.2024``,
  ``2024-03-12``, ``12/3/2024``) and time ranges (``14.30–16.00``) are masked
  out before phones are looked for: a date can be a valid phone number (the
  bare matcher reports ``040 12.3.2024``), and every masked run saves a
  matcher call (~0.1 ms each). Unlike the matcher's own scan, a number glued
  to a word (``puh0401234567``) is reported: here a missed number costs more
  than a redacted product code.

* **name**, **address**, **birth_date**, **plate**: personal names (from a
  list of Finnish and Swedish first names and surnames, inflected forms too),
  street addresses with a house number, dates of birth after a word for birth
  and vehicle registration plates are read from words: see
  :mod:`flows.privacy_words`, whose rules take precision first. Their spans
  are masked out before phones are looked for.

Look-alike and invisible characters
-----------------------------------
Every rule reads a normalised copy of the text, built character by character
with a map back to the original, so offsets always refer to the original
text and a finding spans everything between the first and the last character
of the identifier, invisible characters included. Format characters
(category Cf: zero-width space, joiners, word joiner, BOM, soft hyphen,
direction marks) and combining marks are dropped; every other character is
NFKC-normalised (full-width forms, superscripts, compatibility spaces,
``＠``), and then any digit (Arabic-Indic, circled, ...) is read as its ASCII
digit, any whitespace (line breaks included) as a space, any dash-like
character (category Pd, minus signs) as ``-``, and a Cyrillic or Greek letter
that looks exactly like a Latin one as that Latin letter. An ASCII text without a
carriage return, and a text whose characters all stay single characters, need
no map and cost little more than before.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import overload

from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as _stdnum_iban
from stdnum.fi import hetu as _stdnum_hetu

from flows.privacy_words import (
    TITLE_CASE_RE,
    address_spans,
    birth_date_spans,
    name_spans,
    plate_spans,
)

__all__ = [
    "PLACEHOLDERS",
    "Finding",
    "IdentifierKind",
    "find_identifiers",
    "kinds_found",
    "redact",
    "scrub",
]


class IdentifierKind(StrEnum):
    """Kinds of identifiers the guard looks for."""

    HETU = "hetu"
    PHONE = "phone"
    EMAIL = "email"
    IBAN = "iban"
    NAME = "name"
    ADDRESS = "address"
    BIRTH_DATE = "birth_date"
    PLATE = "plate"


#: Replacement text for each kind when no other is asked for (English). The guard
#: asks for the writer's language (``privacy.placeholder.<kind>`` in the catalogs,
#: :func:`flows.textguard.placeholders`); ``[HETU]`` is the same in every language.
#: A placeholder holds no digit, no at-marker and no capitalised word, so it can
#: never be, or complete, an identifier (see :func:`redact`).
PLACEHOLDERS: dict[IdentifierKind, str] = {
    IdentifierKind.HETU: "[HETU]",
    IdentifierKind.PHONE: "[PHONE]",
    IdentifierKind.EMAIL: "[EMAIL]",
    IdentifierKind.IBAN: "[IBAN]",
    IdentifierKind.NAME: "[NAME]",
    IdentifierKind.ADDRESS: "[ADDRESS]",
    IdentifierKind.BIRTH_DATE: "[DATE OF BIRTH]",
    IdentifierKind.PLATE: "[PLATE]",
}

# On overlap the kind listed first wins.
_PRIORITY: dict[IdentifierKind, int] = {
    IdentifierKind.HETU: 0,
    IdentifierKind.IBAN: 1,
    IdentifierKind.EMAIL: 2,
    IdentifierKind.PHONE: 3,
    IdentifierKind.BIRTH_DATE: 4,
    IdentifierKind.ADDRESS: 5,
    IdentifierKind.PLATE: 6,
    IdentifierKind.NAME: 7,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """An identifier at ``text[start:end]``; deliberately holds no copy of it."""

    kind: IdentifierKind
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span {self.start}..{self.end}")


# --------------------------------------------------------------------------
# Normalisation (see "Look-alike and invisible characters" above)
#
# Each character is normalised on its own and the result cached per code
# point. Dropped combining marks count to the character before them, so a span
# never ends between a character and its accents or keycap; "\r\n" is one
# line break. Fast paths: an ASCII text without "\r" only has its whitespace
# replaced by spaces; a text whose distinct characters all stay single characters
# (Finnish letters, most emoji, an en dash) is changed with str.replace, one
# character for one, and needs no position map.

_IGNORABLE = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0")  # invisible letters
_DROPPED = frozenset(("Cf", "Mn", "Me"))
_MARKS = frozenset(("Mn", "Me"))
_MINUS_LIKE = frozenset("\u2212\u02d7\u2043\u2796")  # minus sign, modifier, bullet, heavy
_PLUS_LIKE = frozenset("\u02d6\u2795")  # modifier letter plus, heavy plus
# Cyrillic and Greek letters drawn exactly like Latin ones (a Cyrillic "Т" as
# the check character): read as the Latin letter.
_HOMOGLYPHS = {
    # Cyrillic
    "\u0410": "A", "\u0412": "B", "\u0421": "C", "\u0415": "E", "\u041d": "H",
    "\u0406": "I", "\u0408": "J", "\u041a": "K", "\u041c": "M", "\u041e": "O",
    "\u0420": "P", "\u0405": "S", "\u0422": "T", "\u0425": "X", "\u0423": "Y",
    "\u04ae": "Y", "\u0430": "a", "\u0441": "c", "\u0501": "d", "\u0435": "e",
    "\u04bb": "h", "\u0456": "i", "\u0458": "j", "\u043e": "o", "\u0440": "p",
    "\u051b": "q", "\u0455": "s", "\u051d": "w", "\u0445": "x", "\u0443": "y",
    "\u04af": "y",
    # Greek
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H",
    "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X", "\u03bf": "o",
}  # fmt: skip


def _normalise_char(char: str) -> str:
    """What one character of the original becomes in the normalised text."""
    if char.isascii():
        return " " if char.isspace() else char
    if char in _IGNORABLE or unicodedata.category(char) in _DROPPED:
        return ""
    out: list[str] = []
    for part in unicodedata.normalize("NFKC", char):
        category = unicodedata.category(part)
        if category in _DROPPED:
            continue
        if part.isspace():
            part = " "
        elif category == "Pd" or part in _MINUS_LIKE:
            part = "-"
        elif part in _PLUS_LIKE:
            part = "+"
        else:
            digit = unicodedata.digit(part, None)
            part = _HOMOGLYPHS.get(part, part) if digit is None else str(digit)
        out.append(part)
    return "".join(out)


class _CharTable(dict[int, str]):
    """Code point -> normalised text, computed on first use."""

    def __missing__(self, code: int) -> str:
        value = _normalise_char(chr(code))
        if len(self) < 20_000:  # a text of random code points cannot grow it without end
            self[code] = value
        return value


_TABLE = _CharTable()
_ASCII_SPACE_CHARS = "\n\t\x0b\x0c\x1c\x1d\x1e\x1f"  # "\r" needs its context
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")


class _Normalised:
    """A normalised text and, when it needs one, a map back to the original.

    The map is a list of segments, in order: from ``breaks[i]`` on, either a
    run of characters copied one for one from ``origins[i]`` on, or (``whole``)
    the characters one original character at ``origins[i]`` became. Dropped
    combining marks extend the end of the character before them (``marks``).
    Without a map, the text is as long as the original and every character
    came from the one at the same offset.
    """

    __slots__ = ("breaks", "marks", "origins", "text", "whole")

    def __init__(self, text: str) -> None:
        self.text = text
        self.breaks: list[int] | None = None
        self.origins: list[int] = []
        self.whole: list[bool] = []
        self.marks: dict[int, int] = {}

    def _start(self, index: int) -> int:
        if self.breaks is None:
            return index
        segment = bisect_right(self.breaks, index) - 1
        origin = self.origins[segment]
        return origin if self.whole[segment] else origin + index - self.breaks[segment]

    def _end(self, index: int) -> int:
        return self.marks.get(index) or self._start(index) + 1

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original span that ``text[start:end]`` came from."""
        return self._start(start), self._end(end - 1)

    def touching(self, index: int) -> bool:
        """Whether ``text[index - 1]`` and ``text[index]`` were adjacent in the original,
        without a dropped invisible character between them."""
        return self._end(index - 1) >= self._start(index)


def _ascii_spaces(text: str) -> str:
    # Much cheaper than str.translate, which goes character by character
    # through Python objects once the text is not ASCII.
    for char in _ASCII_SPACE_CHARS:
        if char in text:
            text = text.replace(char, " ")
    return text


def _normalise(text: str) -> _Normalised:
    changed = _ascii_spaces(text)
    odd: list[str] = ["\r"] if "\r" in text else []
    if not text.isascii():
        table = _TABLE
        for char in set(_NON_ASCII_RE.findall(text)):
            value = table[ord(char)]
            if len(value) != 1:
                odd.append(char)
            elif value != char:
                changed = changed.replace(char, value)  # one for one: offsets hold
    if not odd:
        return _Normalised(changed)
    positions: list[int] = []
    for char in odd:
        at = text.find(char)
        while at != -1:
            positions.append(at)
            at = text.find(char, at + 1)
    positions.sort()
    positions.append(len(text))
    norm = _Normalised("")
    norm.breaks = breaks = []
    parts: list[str] = []
    length = 0  # of the normalised text so far
    last_end = 0  # where the original of its last character ends
    pos = 0
    for at in positions:
        if pos < at:
            parts.append(changed[pos:at])
            breaks.append(length)
            norm.origins.append(pos)
            norm.whole.append(False)
            length += at - pos
            last_end = at
        if at == len(text):
            break
        char = text[at]
        if char == "\r":
            value = "" if text.startswith("\n", at + 1) else " "
        else:
            value = _TABLE[ord(char)]
        if value:
            parts.append(value)
            breaks.append(length)
            norm.origins.append(at)
            norm.whole.append(True)
            length += len(value)
            last_end = at + 1
        elif length and last_end == at and unicodedata.category(char) in _MARKS:
            last_end = norm.marks[length - 1] = at + 1  # a mark belongs to the character before
        pos = at + 1
    norm.text = "".join(parts)
    return norm


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "\x00" * (end - start)
    return "".join(chars)


# --------------------------------------------------------------------------
# hetu

# Between any two characters of the code: at most one space (any whitespace,
# normalised); dropped invisible characters are not seen at all.
_HETU = (
    r"[0-3] ?[0-9] ?[01] ?[0-9] ?[0-9] ?[0-9] ?"
    r"(?P<sign>[-+A-FU-Ya-fu-y]) ?"
    r"[0-9] ?[0-9] ?[0-9] ?[0-9A-Za-z]"
)
# The cheap lookahead first: ~3x faster scan. With a position map, a digit
# next to the code is checked by hand: "5\u200b131052-308T" has an invisible
# separator where the regular expression would see a longer number.
_HETU_RE = re.compile(r"(?=[0-3])(?<![0-9])" + _HETU + r"(?![0-9])")
_HETU_MAPPED_RE = re.compile(r"(?=[0-3])" + _HETU)


def _hetu_spans(norm: _Normalised) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Return (valid hetu spans, spans to hide from the phone search).

    Valid hetus and look-alikes with a letter as sign or check character are
    hidden from the phone search. An all-digit look-alike (``040123-4567``)
    is left to it: that is also how phone numbers are written, and if it is
    a mistyped hetu after all, redacting it as a phone is the safe outcome.
    """
    text = norm.text
    mapped = norm.breaks is not None
    regex = _HETU_MAPPED_RE if mapped else _HETU_RE
    valid: list[tuple[int, int]] = []
    hidden: list[tuple[int, int]] = []
    pos = 0
    while (match := regex.search(text, pos)) is not None:
        start, end = match.span()
        pos = start + 1
        if mapped and (
            (start > 0 and "0" <= text[start - 1] <= "9" and norm.touching(start))
            or (end < len(text) and "0" <= text[end] <= "9" and norm.touching(end))
        ):
            continue  # part of a longer number
        code = match.group().replace(" ", "").upper()
        if _stdnum_hetu.is_valid(code, allow_temporary=True):
            valid.append((start, end))
            hidden.append((start, end))
            pos = end
        elif match["sign"] != "-" or not code[-1].isdigit():
            hidden.append((start, end))
    return valid, hidden


# --------------------------------------------------------------------------
# IBAN

_IBAN_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?:[ -]?[0-9A-Za-z]){11,30}")
_IBAN_MIN_LEN = 15  # Norway; the longest (Russia) is 33, regex allows up to 34


def _iban_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (match := _IBAN_RE.search(text, pos)) is not None:
        start, end = match.span()
        positions = [i for i in range(start, end) if text[i].isalnum()]
        compact = "".join(text[i] for i in positions).upper()
        found = None
        for length in range(len(compact), _IBAN_MIN_LEN - 1, -1):
            last = positions[length - 1]
            if last + 1 < len(text) and text[last + 1].isalnum():
                continue  # must end at a group boundary
            if _stdnum_iban.is_valid(compact[:length], check_country=False):
                found = (start, last + 1)
                break
        if found is not None:
            spans.append(found)
            pos = found[1]
        else:
            pos = start + 1
    return spans


# --------------------------------------------------------------------------
# e-mail

# The "@" may be written as "(at)", "[at]", "{at}", "(a)", ... and a dot as
# "(dot)", "[dot]" or, in the domain, " dot ", as public-sector sites write
# addresses to keep them from harvesters. Any case; up to two spaces around a
# marker (and one inside the brackets).
_AT_CORE = r"@|[(\[{] ?[aA][tT]? ?[)\]}]"
_AT_CORE_RE = re.compile(_AT_CORE)
_MARKER_START_RE = re.compile(r"[@(\[{]")  # a plain class scans ~5x faster
_DOT_WORD = "[dD][oO][tT]"
_LOCAL_CHAR = r"[\w!#$%&'*+/=?^`{|}~-]"
# In the local part only "(dot)" and "[dot]": "{" and "}" are local characters.
_LOCAL_DOT = rf"(?:\.| {{0,2}}[(\[] ?{_DOT_WORD} ?[)\]] {{0,2}})"
_DOMAIN_DOT = rf"(?:\.| {{0,2}}[(\[{{] ?{_DOT_WORD} ?[)\]}}] {{0,2}}| {_DOT_WORD} )"
# Possessive runs: no separator is a local or label character, so giving
# characters back could never help, and the search tries word starts only.
_LOCAL_RE = re.compile(rf"(?<!{_LOCAL_CHAR})(?:{_LOCAL_CHAR}++{_LOCAL_DOT})*+{_LOCAL_CHAR}++\Z")
_LOCAL_END_RE = re.compile(_LOCAL_CHAR)
_DOMAIN_RE = re.compile(rf"(?:[^\W_][\w-]*+{_DOMAIN_DOT})+(?:xn--[\w-]+|[^\W\d_]{{2,}})")
_LOCAL_MAX = 128  # RFC 5321 allows 64; be generous but bounded (linear time)
_DOMAIN_MAX = 255
_MARKER_SPACES = 2


def _may_hold_email(text: str) -> bool:
    return "@" in text or "(" in text or "[" in text or "{" in text


def _email_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (start := _MARKER_START_RE.search(text, pos)) is not None:
        pos = start.start() + 1
        marker = _AT_CORE_RE.match(text, start.start())
        if marker is None:
            continue
        before, after = marker.span()
        for _ in range(_MARKER_SPACES):
            if before > 0 and text[before - 1] == " ":
                before -= 1
            if text.startswith(" ", after):
                after += 1
        if before == 0 or _LOCAL_END_RE.match(text, before - 1) is None:
            continue  # nothing that could be a local part right before the marker
        window = max(0, before - _LOCAL_MAX)
        local = _LOCAL_RE.search(text[window:before])  # a slice: the window may cut a word
        domain = _DOMAIN_RE.match(text, after, after + _DOMAIN_MAX)
        if local is not None and domain is not None:
            spans.append((window + local.start(), domain.end()))
            pos = domain.end()
    return spans


# --------------------------------------------------------------------------
# dates and time ranges (masked before phone numbers are looked for)

_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:1[89]|20)[0-9]{2}"
_TIME = r"(?:[01]?[0-9]|2[0-3])[.:][0-5][0-9]"
_DATE_RE = re.compile(
    rf"(?=[0-9])(?<![0-9])(?:{_DAY}\.{_MONTH}\.{_YEAR}|{_DAY}/{_MONTH}/{_YEAR}"
    rf"|{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    rf"|{_TIME} ?- ?{_TIME})(?![0-9])"
)


# --------------------------------------------------------------------------
# phone

_SEP = "[ ./()-]"  # after normalisation: every space is " ", every dash "-"
_RUN_RE = re.compile(rf"[+(]?[0-9]+(?:{_SEP}{{1,3}}\+?[0-9]+)*")
_GROUP_RE = re.compile(r"\(?\+?[0-9]+")
# Shortest valid number: country code + shortest national number is at least
# 6 digits (e.g. +43 and 4 digits); in region FI, trunk 0 + at least 5 digits.
# The longest: "00" + 15 digits (E.164 maximum). tests/test_privacy.py checks
# both bounds against the phonenumbers metadata.
_PHONE_MIN_DIGITS = 6
_PHONE_MAX_DIGITS = 17
# Each matcher call costs ~0.1 ms. A text that is mostly digit groups would
# need thousands; past this budget, unchecked candidates are redacted as
# phones (over-redaction is the safe failure).
_MATCHER_BUDGET = 200


def _matcher_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    for match in PhoneNumberMatcher(text[start:end], "FI", leniency=Leniency.VALID):
        return start + match.start, start + match.end
    return None


def _phone_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    budget = _MATCHER_BUDGET
    for run in _RUN_RE.finditer(text):
        if sum(map(str.isdigit, run.group())) < _PHONE_MIN_DIGITS:
            continue  # counts, years, times, postal codes: never a valid number
        groups = [g.span() for g in _GROUP_RE.finditer(text, run.start(), run.end())]
        digits = [sum(c.isdigit() for c in text[s:e]) for s, e in groups]
        i = 0
        while i < len(groups):
            first = text[groups[i][0]]
            if i > 0 and first not in "+(0":
                i += 1
                continue
            ends: list[int] = []
            total = 0
            for j in range(i, len(groups)):
                total += digits[j]
                if total > _PHONE_MAX_DIGITS:
                    break
                if total >= _PHONE_MIN_DIGITS:
                    ends.append(j)
            hit: tuple[int, int] | None = None
            for j in reversed(ends):
                start, end = groups[i][0], groups[j][1]
                if budget <= 0:
                    hit = (start, end)
                    break
                budget -= 1
                hit = _matcher_span(text, start, end)
                if hit is not None:
                    break
            if hit is None:
                i += 1
                continue
            i += 1
            while i < len(groups) and groups[i][0] < hit[1]:
                i += 1
            # Digits left over in the run right after a number, not starting one of their
            # own ("+4930123456  041 2345678": the matcher takes "041" into the first):
            # at least a phone's worth of digits is covered too (over-redaction is safe).
            rest = i
            left = 0
            while rest < len(groups) and text[groups[rest][0]] not in "+(0":
                left += digits[rest]
                rest += 1
            if rest > i and left >= _PHONE_MIN_DIGITS:
                hit = (hit[0], groups[rest - 1][1])
                i = rest
            spans.append(hit)
    return spans


# --------------------------------------------------------------------------
# public API


def find_identifiers(text: str) -> list[Finding]:
    """Find client identifiers in ``text``.

    Returns findings sorted by start and never overlapping; where candidates
    of different kinds overlap, hetu beats iban beats email beats phone beats
    date of birth beats address beats plate beats name.
    """
    return _find(_normalise(text))


def _find(norm: _Normalised, only_hetus: bool = False) -> list[Finding]:
    """The findings of :func:`find_identifiers`, or only its hetu findings.

    Hetu comes first on overlap, so its findings do not depend on the others.
    """
    text = norm.text
    hetus, not_phones = _hetu_spans(norm)
    found = [(IdentifierKind.HETU, hetus)]
    if not only_hetus:
        ibans = _iban_spans(text)
        emails = _email_spans(text) if _may_hold_email(text) else []
        dates = [m.span() for m in _DATE_RE.finditer(text)]
        births = birth_date_spans(text)
        addresses = address_spans(text)
        plates = plate_spans(text)
        masked = not_phones + ibans + emails + dates + births + addresses + plates
        phones = _phone_spans(_mask(text, masked))
        found += [
            (IdentifierKind.IBAN, ibans),
            (IdentifierKind.EMAIL, emails),
            (IdentifierKind.PHONE, phones),
            (IdentifierKind.BIRTH_DATE, births),
            (IdentifierKind.ADDRESS, addresses),
            (IdentifierKind.PLATE, plates),
            (IdentifierKind.NAME, name_spans(text)),
        ]

    candidates = [
        Finding(kind, *norm.original(start, end)) for kind, spans in found for start, end in spans
    ]
    candidates.sort(key=lambda f: (_PRIORITY[f.kind], f.start))
    kept: list[Finding] = []
    for cand in candidates:
        if all(cand.end <= k.start or k.end <= cand.start for k in kept):
            kept.append(cand)
    kept.sort(key=lambda f: f.start)
    return kept


def kinds_found(text: str) -> set[IdentifierKind]:
    """The kinds of identifiers present in ``text`` (for logging by kind)."""
    return {finding.kind for finding in find_identifiers(text)}


def _apply(
    text: str, findings: list[Finding], placeholders: Mapping[IdentifierKind, str] | None = None
) -> str:
    # Merge overlapping spans (possible only with hand-made findings) so that
    # no fragment of an identifier survives between two placeholders.
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.end > len(text):
            raise ValueError(f"finding {finding} is outside the text")
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Finding(last.kind, last.start, max(last.end, finding.end))
        else:
            merged.append(finding)
    parts: list[str] = []
    pos = 0
    for finding in merged:
        parts.append(text[pos : finding.start])
        parts.append((placeholders or PLACEHOLDERS)[finding.kind])
        pos = finding.end
    parts.append(text[pos:])
    return "".join(parts)


_UNIT_RE = re.compile(rf"[0-9]|{_AT_CORE}")


def _units(norm: _Normalised) -> int:
    """Digits, at-markers ("@", "(at)", ...) and capitalised words in the normalised text.

    Every finding covers at least one (a name a capitalised word, the other kinds a
    digit or an at-marker), and a placeholder can form none.
    """
    return len(_UNIT_RE.findall(norm.text)) + len(TITLE_CASE_RE.findall(norm.text))


def redact(
    text: str,
    findings: list[Finding] | None = None,
    kinds: set[IdentifierKind] | None = None,
    placeholders: Mapping[IdentifierKind, str] | None = None,
) -> str:
    """Replace identifiers with placeholders such as ``[HETU]``.

    With ``findings`` given, exactly those spans (of the ``kinds`` asked for,
    default all) are replaced. Without, the text is searched, and searched
    again after each pass until nothing is left, so that
    ``find_identifiers(redact(text))`` is always empty (for the kinds asked
    for): joining text around a placeholder can in principle form a new
    candidate. Every finding covers a digit, an at-marker (``@``, ``(at)``,
    ...) or a capitalised word of the normalised text; placeholders contain
    none of them and cannot complete one, and normalisation works character
    by character, so each pass removes at least one: that bounds the loop.

    ``placeholders`` (default :data:`PLACEHOLDERS`) gives the text for each kind,
    such as the writer's language's (:func:`flows.textguard.placeholders`); it
    must keep to the rule above.
    """
    if findings is not None:
        chosen = [f for f in findings if kinds is None or f.kind in kinds]
        return _apply(text, chosen, placeholders)
    return _redact(text, _normalise(text), kinds, placeholders)


def _redact(
    text: str,
    norm: _Normalised,
    kinds: set[IdentifierKind] | None,
    placeholders: Mapping[IdentifierKind, str] | None = None,
) -> str:
    only_hetus = kinds is not None and kinds <= {IdentifierKind.HETU}
    for _ in range(_units(norm) + 1):
        found = [f for f in _find(norm, only_hetus) if kinds is None or f.kind in kinds]
        if not found:
            break
        text = _apply(text, found, placeholders)
        norm = _normalise(text)
    return text


_HETU_DIGITS = 9


@overload
def scrub(text: str) -> str: ...


@overload
def scrub(text: None) -> None: ...


def scrub(text: str | None) -> str | None:
    """Remove hetus from text read back out of storage (a NULL column stays None).

    For everything built from stored rows (digests, reports, exports, notices):
    rows stored before the guard, or before it knew a trick, must not show a
    hetu either. The same as ``redact(text, kinds={IdentifierKind.HETU})``,
    without looking for the other kinds; a text with fewer than nine digits
    cannot hold a hetu and is returned at once.
    """
    if text is None or (text.isascii() and sum(map(text.count, "0123456789")) < _HETU_DIGITS):
        return text
    norm = _normalise(text)
    if sum(map(norm.text.count, "0123456789")) < _HETU_DIGITS:
        return text
    return _redact(text, norm, {IdentifierKind.HETU})
