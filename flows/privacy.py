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

Rules
-----
* **hetu** (``DDMMYYCZZZQ``): candidates are found with a regular expression
  (any case, any surrounding punctuation, Unicode dashes as the ``-`` sign, at
  most one space on either side of the century sign) and validated with
  :func:`stdnum.fi.hetu.is_valid`, which checks the date, the individual
  number and the check character. python-stdnum knows every century sign
  of the 2023 reform (``+``; ``-YXWVU``; ``ABCDEF``): added upstream in 2023
  (PR #396), before the 1.20 this project requires, and verified with 2.2 by
  the tests. So the sign needs no normalisation beyond Unicode dashes to
  ``-``, which python-stdnum would also do itself. Temporary
  identifiers (individual number 900-999) are accepted too: they identify a
  person just as well. A look-alike with a wrong check character is not a
  hetu finding. If its sign or check character is a letter it is not a
  phone either; an all-digit one (``040123-4567``) is also a way of writing
  a phone number and goes through the phone rule like any other digits.
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
  address-shaped string is redacted.
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

Non-ASCII decimal digits (Arabic-Indic, full-width, ...) are read as their
ASCII equivalents and a full-width ``＠`` as ``@``; offsets always refer to the
original text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as _stdnum_iban
from stdnum.fi import hetu as _stdnum_hetu

__all__ = [
    "PLACEHOLDERS",
    "Finding",
    "IdentifierKind",
    "find_identifiers",
    "kinds_found",
    "redact",
]


class IdentifierKind(StrEnum):
    """Kinds of identifiers the guard looks for."""

    HETU = "hetu"
    PHONE = "phone"
    EMAIL = "email"
    IBAN = "iban"


#: Language-neutral replacement text for each kind.
PLACEHOLDERS: dict[IdentifierKind, str] = {
    IdentifierKind.HETU: "[HETU]",
    IdentifierKind.PHONE: "[PHONE]",
    IdentifierKind.EMAIL: "[EMAIL]",
    IdentifierKind.IBAN: "[IBAN]",
}

# On overlap the kind listed first wins.
_PRIORITY: dict[IdentifierKind, int] = {
    IdentifierKind.HETU: 0,
    IdentifierKind.IBAN: 1,
    IdentifierKind.EMAIL: 2,
    IdentifierKind.PHONE: 3,
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
# Normalisation (always one character for one character, so offsets hold)

_FOREIGN_DIGIT_RE = re.compile(r"[^\D0-9]")  # str patterns: \d is Unicode Nd


def _ascii_digit(match: re.Match[str]) -> str:
    char = match.group()
    value = unicodedata.decimal(char, None)
    return char if value is None else str(value)


def _normalise(text: str) -> str:
    if text.isascii():
        return text
    return _FOREIGN_DIGIT_RE.sub(_ascii_digit, text).replace("\uff20", "@")


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "\x00" * (end - start)
    return "".join(chars)


# --------------------------------------------------------------------------
# hetu

_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2212"
_SIGN_SPACE = "[ \u00a0\u202f]?"
_HETU_RE = re.compile(
    r"(?=[0-9])(?<![0-9])"  # the cheap lookahead first: ~3x faster scan
    r"(?P<date>[0-3][0-9][01][0-9][0-9]{2})"
    + _SIGN_SPACE
    + r"(?P<sign>[+ABCDEFUVWXYabcdefuvwxy"
    + _DASHES
    + r"])"
    + _SIGN_SPACE
    + r"(?P<tail>[0-9]{3}[0-9A-Za-z])"
    r"(?![0-9])"
)
_DASH_TABLE = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"))


def _hetu_spans(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Return (valid hetu spans, spans to hide from the phone search).

    Valid hetus and look-alikes with a letter as sign or check character are
    hidden from the phone search. An all-digit look-alike (``040123-4567``)
    is left to it: that is also how phone numbers are written, and if it is
    a mistyped hetu after all, redacting it as a phone is the safe outcome.
    """
    valid: list[tuple[int, int]] = []
    hidden: list[tuple[int, int]] = []
    for match in _HETU_RE.finditer(text):
        span = match.span()
        sign = match["sign"].translate(_DASH_TABLE)
        code = match["date"] + sign + match["tail"]
        if _stdnum_hetu.is_valid(code.upper(), allow_temporary=True):
            valid.append(span)
            hidden.append(span)
        elif sign != "-" or not code[-1].isdigit():
            hidden.append(span)
    return valid, hidden


# --------------------------------------------------------------------------
# IBAN

_IBAN_RE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}(?:[ \u00a0-]?[0-9A-Za-z]){11,30}")
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

_LOCAL_CHAR = r"[\w!#$%&'*+/=?^`{|}~-]"
_LOCAL_RE = re.compile(rf"(?:{_LOCAL_CHAR}+\.)*{_LOCAL_CHAR}+\Z")
_DOMAIN_RE = re.compile(r"(?:[^\W_][\w-]*\.)+(?:xn--[\w-]+|[^\W\d_]{2,})")
_LOCAL_MAX = 128  # RFC 5321 allows 64; be generous but bounded (linear time)
_DOMAIN_MAX = 255


def _email_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    at = text.find("@")
    while at != -1:
        window = max(0, at - _LOCAL_MAX)
        local = _LOCAL_RE.search(text, window, at)
        domain = _DOMAIN_RE.match(text, at + 1, at + 1 + _DOMAIN_MAX)
        if local is not None and domain is not None:
            spans.append((local.start(), domain.end()))
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)
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
    rf"|{_TIME} ?[-\u2013\u2014] ?{_TIME})(?![0-9])"
)


# --------------------------------------------------------------------------
# phone

_SEP = "[ \t\u00a0\u2000-\u200b\u202f\u2060./()\\-\u2010-\u2015\u2212]"
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
            spans.append(hit)
            i += 1
            while i < len(groups) and groups[i][0] < hit[1]:
                i += 1
    return spans


# --------------------------------------------------------------------------
# public API


def find_identifiers(text: str) -> list[Finding]:
    """Find client identifiers in ``text``.

    Returns findings sorted by start and never overlapping; where candidates
    of different kinds overlap, hetu beats iban beats email beats phone.
    """
    norm = _normalise(text)
    hetus, not_phones = _hetu_spans(norm)
    ibans = _iban_spans(norm)
    emails = _email_spans(norm) if "@" in norm else []
    dates = [m.span() for m in _DATE_RE.finditer(norm)]
    phones = _phone_spans(_mask(norm, not_phones + ibans + emails + dates))

    candidates = [
        Finding(kind, start, end)
        for kind, spans in (
            (IdentifierKind.HETU, hetus),
            (IdentifierKind.IBAN, ibans),
            (IdentifierKind.EMAIL, emails),
            (IdentifierKind.PHONE, phones),
        )
        for start, end in spans
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


def _apply(text: str, findings: list[Finding]) -> str:
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
        parts.append(PLACEHOLDERS[finding.kind])
        pos = finding.end
    parts.append(text[pos:])
    return "".join(parts)


def _digits_and_ats(text: str) -> int:
    return sum(1 for c in text if c in "@\uff20" or c.isdecimal())


def redact(
    text: str,
    findings: list[Finding] | None = None,
    kinds: set[IdentifierKind] | None = None,
) -> str:
    """Replace identifiers with placeholders such as ``[HETU]``.

    With ``findings`` given, exactly those spans (of the ``kinds`` asked for,
    default all) are replaced. Without, the text is searched, and searched
    again after each pass until nothing is left, so that
    ``find_identifiers(redact(text))`` is always empty (for the kinds asked
    for): joining text around a placeholder can in principle form a new
    candidate. Every finding covers a digit or an ``@`` and placeholders
    contain neither, so each pass removes at least one; that bounds the loop.
    """

    def wanted(found: list[Finding]) -> list[Finding]:
        return [f for f in found if kinds is None or f.kind in kinds]

    if findings is not None:
        return _apply(text, wanted(findings))
    for _ in range(_digits_and_ats(text) + 1):
        found = wanted(find_identifiers(text))
        if not found:
            break
        text = _apply(text, found)
    return text
