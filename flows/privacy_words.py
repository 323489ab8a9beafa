"""Identifiers found by reading words: personal names, street addresses, dates of birth
and vehicle registration plates.

Part of the identifier guard (:mod:`flows.privacy`, which calls these rules on its
normalised text and maps the spans back to the original). Pure: the only input
besides the text is the name list shipped in ``flows/data``, read once on first use.

Names
-----
A word counts as a personal name when it is written with a capital initial and,
uninflected or inflected, is in the name list (``flows/data/names.tsv``: the common
Finnish and Swedish first names and surnames from the Finnish and Swedish population
statistics, built by ``scripts/build_name_list.py``, which documents the sources and
their licences). Finnish case endings are taken off and consonant gradation undone
before the list is consulted, so "Mikon", "Matille", "Virtasen", "Laineelle",
"Markuksen", "Niemen" and "Lahden" are found as Mikko, Matti, Virtanen, Laine, Markus,
Niemi and Lahti; a Swedish genitive "s" is taken off too ("Eriks").

Precision comes first, a worker should not be asked about every sentence:

* a capitalised word is a name only where a capital is not needed anyway: at the
  start of a sentence, after a colon or an opening quote, a name that is also a
  common word ("Toivo", "Onni", "Anna", "Tuuli"; "Bo", "Stig"; "Will") or whose
  inflected form is one ("Annan", "Ainoa") is not taken for a name; an unambiguous
  one ("Mikko kertoi") is;
* a name that is also a place (municipalities, city districts such as Kallio, Malmi,
  Mikkola or Eira) or a service (Wilma, Aurora) is not a person, unless it stands
  next to another name ("Anna Kallio"); the hand-kept list of such words is
  ``flows/data/not_persons.txt``;
* a name followed by a word for a street, an institution or a place ("Aleksis Kiven
  katu", "Marian sairaala", "Kallion kirjasto", "Maria sjukhus") belongs to a place;
* words in all capitals and in lower case are not looked at.

A capitalised word right after an uninflected first name is taken as the surname,
listed or not ("Mikko Kärkkäinen"), and so is a capitalised word before a listed
surname ("Jere Virtanen"); an initial next to a name ("Mikko V.", "M. Virtanen") is
part of it.

Street addresses
----------------
A street name ending in a Finnish street word (``katu``, ``tie``, ``kuja``, ``polku``,
``väylä``, ``kaari``, ``rinne``, ``raitti``, ``ranta``, ``tori``, ``aukio``, ``piha``,
...) or a Swedish one (``gatan``, ``vägen``, ``gränd``, ``stigen``, ``allén``,
``torget``, ...), written as one word or after capitalised words ("Aleksis Kiven katu"),
followed by a house number, with an optional letter, staircase and flat ("12 B 34",
"5 as. 3", "3 lgh 12"), a Finnish case suffix ("5:ssä") and a postal code with its
town. A capitalised street name is required, except for the unmistakable ``katu``,
``tie``, ``gatan`` and ``vägen`` compounds. Numbered roads ("valtatie 4", "kantatie
51") and distances ("pyörätie 2 km") are not addresses; a street without a number is
not an address either ("Hämeentiellä näkyy...").

Dates of birth
--------------
A date (``12.3.1985``, ``12.3.85``, ``1985-03-12``, ``12/3/1985``, ``120385``,
``12. maaliskuuta 1985``, ``12 mars 1985``), or a year, after a word for birth ("s.",
"synt.", "syntynyt", "syntymäaika", "f.", "född", "födelsetid", "born", "DOB", "date
of birth"), or a full date right before "syntynyt"/"född"/"born". A date on its own is
an event, not a birth date.

Vehicle registration plates
---------------------------
Finnish plates, three letters, a hyphen and one to three digits ("ABC-123"), and
Swedish ones, three letters, a space, two digits and a digit or letter ("ABC 123",
"ABC 12D"). Common acronyms followed by a number ("HSL 550", "SOS-112", "THL-2")
are not plates; two-letter Finnish plates ("AB-12") count only after a word for a
plate or a car ("rekisterinumero", "rekkari", "registreringsnummer", "plate").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "TITLE_CASE_RE",
    "address_spans",
    "birth_date_spans",
    "fold",
    "name_bases",
    "name_spans",
    "plate_spans",
]

_DATA = Path(__file__).parent / "data"

Span = tuple[int, int]

# --------------------------------------------------------------------------
# folding and the name list

# Accents go, but not from ä, ö and å: letters of their own in Finnish and Swedish
# ("Läget" is not "Lage").
_FOLD = str.maketrans(
    dict(zip("áàâãéèêëíìîïóòôõúùûýÿñçšžø", "aaaaeeeeiiiioooouuuyyncszo", strict=True))
    | {"æ": "ae", "ß": "ss", "ü": "y"}
)
_KEPT = frozenset("äöå")


def fold(word: str) -> str:
    """Lower case without accents other than ä, ö and å: how names are compared."""
    folded = word.lower().translate(_FOLD)
    if folded.isascii() or all(c.isascii() or c in _KEPT for c in folded):
        return folded
    return "".join(
        c
        for c in unicodedata.normalize(
            "NFC",
            "".join(
                d
                for d in unicodedata.normalize("NFD", folded)
                if unicodedata.category(d) != "Mn" or d in "\u0308\u030a"
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class _Names:
    flags: dict[str, str]  # folded name -> flags (f, l, w, p)
    word_forms: frozenset[str]  # folded inflected forms that are also common words
    not_persons: frozenset[str]  # folded places and services that are also names


def _data_lines(name: str) -> Iterable[str]:
    with (_DATA / name).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


@cache
def _names() -> _Names:
    """The name list, read on first use (not at import)."""
    flags: dict[str, str] = {}
    forms: set[str] = set()
    for line in _data_lines("names.tsv"):
        parts = line.split("\t")
        key = fold(parts[0])
        flags[key] = "".join(sorted(set(flags.get(key, "") + parts[1])))
        if len(parts) > 2 and parts[2]:
            forms.update(parts[2].split(","))
    not_persons = frozenset(fold(line) for line in _data_lines("not_persons.txt"))
    return _Names(flags, frozenset(forms), not_persons)


_VOWELS = frozenset("aeiouyäö")
# Finnish case endings in both vowel harmonies, longest first; a candidate base is
# only a guess until the name list confirms it.
_ENDINGS = (
    "seen", "ssa", "ssä", "sta", "stä", "lla", "llä", "lta", "ltä", "lle", "ksi", "tta", "ttä",
    "na", "nä", "ta", "tä", "en", "n", "a", "ä", "t",
)  # fmt: skip
_CLITICS = ("kaan", "kään", "kin", "han", "hän")
# Weak grade -> strong grade (Virran -> Virta, Ahdin -> Ahti, Hongan -> Honka).
_GRADATION = (("rr", "rt"), ("ll", "lt"), ("nn", "nt"), ("mm", "mp"), ("ng", "nk"), ("hd", "ht"))


def _strong(stem: str) -> list[str]:
    """Strong-grade guesses for a stem ending in a vowel (Miko -> Mikko, Virra -> Virta)."""
    if len(stem) < 3 or stem[-1] not in _VOWELS:
        return []
    out = []
    consonant = stem[-2]
    if consonant in "kpt" and stem[-3] != consonant:
        out.append(stem[:-1] + consonant + stem[-1])
    for weak, strong in _GRADATION:
        if stem[-3:-1] == weak:
            out.append(stem[:-3] + strong + stem[-1])
    return out


def _restored(stem: str) -> list[str]:
    """Base-form guesses for a stem a case ending was taken off."""
    out = [stem, *_strong(stem)]
    if stem.endswith("se"):
        out.append(stem[:-2] + "nen")  # Virtase(n) -> Virtanen
    elif stem.endswith("s"):
        out.append(stem[:-1] + "nen")  # Virtas(ta) -> Virtanen
    if stem.endswith("kse"):
        out.append(stem[:-3] + "s")  # Markukse(n) -> Markus
    if stem.endswith("ee"):
        out.append(stem[:-1])  # Lainee(n) -> Laine
    if len(stem) > 3 and stem[-1] == "i" and stem[-2] not in _VOWELS:
        out.append(stem[:-1])  # Eriki(n) -> Erik
    if len(stem) > 3 and stem[-1] == "e" and stem[-2] not in _VOWELS:
        base = stem[:-1] + "i"  # Nieme(n) -> Niemi, Lahde(n) -> Lahti
        out.append(base)
        out.extend(_strong(base))
    elif len(stem) > 2 and stem[-1] == "e" and stem[-2] in _VOWELS:
        out.append(stem[:-1] + "ki")  # Mäe(n) -> Mäki
    return out


@lru_cache(maxsize=8192)
def name_bases(word: str) -> tuple[str, ...]:
    """Folded base forms a folded word may be an inflection of (itself first), unchecked."""
    out = [word]
    if len(word) > 3 and word.endswith("s"):
        out.append(word[:-1])  # Swedish genitive: Eriks, Annas
    forms = [word]
    for clitic in _CLITICS:
        if word.endswith(clitic) and len(word) - len(clitic) >= 3:
            forms.append(word[: -len(clitic)])
            out.append(word[: -len(clitic)])
    for form in forms:
        for ending in _ENDINGS:
            if form.endswith(ending) and len(form) - len(ending) >= 3:
                out.extend(_restored(form[: -len(ending)]))
        if len(form) > 4 and form[-1] == "n" and form[-2] == form[-3] and form[-2] in _VOWELS:
            out.append(form[:-2])  # illative: Annaan, Mattiin, Mikkoon
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------
# names

_UPPER = "A-ZÀ-ÖØ-ÞŠŽ"
_LOWER = "a-zß-öø-ÿšž"
_WORD = rf"[{_UPPER}][{_LOWER}]+"
#: A capital followed by a small letter: every name finding holds one, no placeholder does.
TITLE_CASE_RE = re.compile(rf"[{_UPPER}][{_LOWER}]")
# No lookbehind in front: a leading character class lets the scan skip ahead fast; a
# capital inside a word ("McDonald", "xMikko") is skipped by hand.
_CAPITALISED_RE = re.compile(rf"{_WORD}(?:-{_WORD})*(?![\w'’-]|-\w)")
_INSIDE_WORD = frozenset("'’-_")
_WORD_AFTER_RE = re.compile(rf" ([{_LOWER}]+)")
_INITIAL_AFTER_RE = re.compile(rf" [{_UPPER}]\.")
_INITIAL_BEFORE_RE = re.compile(rf"(?<![\w.])[{_UPPER}]\. $")
# What may stand before the first word of a sentence (after spaces): nothing, an end
# of sentence, a colon, a quote, a bracket, a dash, a bullet.
_SENTENCE_BREAK = frozenset(".!?:;…\"'“”„«»‹›‘’()[]{}<>*•·-/|#")
# Words after a name that make it part of a place or an institution's name (prefixes,
# folded): "Aleksis Kiven katu", "Marian sairaala", "Kallion kirjasto", "Maria sjukhus".
_PLACE_NOUNS = (
    "katu", "kadu", "tie", "kuja", "polku", "polu", "väylä", "aukio", "puist", "tori",
    "kaari", "rinne", "rintee", "raitti", "ranta", "rann", "silta", "sillal", "sillan",
    "sairaal", "terveysasem", "terveyskesk", "kirjast", "kirkko", "kirko", "seurakun",
    "säätiö", "yhdistys", "yhdistyk", "metroasem", "asema", "aseman", "asemal",
    "kaupunginosa", "kaupunki", "kaupung", "kunta", "kunna", "kylä", "kylän", "kyläs",
    "gata", "väg", "gränd", "torg", "park", "sjukhus", "kyrka", "kyrkan", "församling",
    "stiftelse", "bibliotek", "hälsocentral", "stad", "kommun", "by",
)  # fmt: skip
_SAINTS = frozenset(("pyhän", "pyhä", "sankt", "st", "saint", "s:t"))


class _Word(NamedTuple):
    start: int
    end: int
    kind: str  # "name" (of a person), "place" (also or only a place or service), "" (neither)
    first: bool  # an uninflected first name: a capitalised word after it is a surname
    maybe_first: bool  # an uninflected first name, even where it was not taken for one
    surname: bool  # a listed surname (a place too, perhaps: Kallio, Lahti)
    at_start: bool


def _at_sentence_start(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] == " ":
        i -= 1
    if i < 0:
        return True
    char = text[i]
    return char in _SENTENCE_BREAK or unicodedata.category(char) in ("So", "Sk", "Sm")


@lru_cache(maxsize=8192)
def _lookup(token: str, at_start: bool) -> tuple[str, bool, bool, bool]:
    """(kind, uninflected first name, uninflected first name however ambiguous, listed
    surname) of one capitalised word."""
    names = _names()
    folded = fold(token)
    parts = folded.split("-")
    keys = [folded] if len(parts) == 1 or folded in names.flags else parts
    name = place = first = maybe_first = surname = False
    for key in keys:
        for base in name_bases(key):  # the first known base decides
            flags = names.flags.get(base)
            if base in names.not_persons or (flags is not None and "p" in flags):
                place = True
            elif flags is None:
                continue
            else:
                uninflected_first = "f" in flags and base == key
                maybe_first = maybe_first or uninflected_first
                if not (at_start and ("w" in flags or key in names.word_forms)):
                    name = True
                    first = first or uninflected_first
            surname = surname or (flags is not None and "l" in flags)
            break
    if place:
        return "place", False, False, surname
    return ("name" if name else ""), first, maybe_first, surname


def _followed_by_place_noun(text: str, end: int) -> bool:
    match = _WORD_AFTER_RE.match(text, end)
    return match is not None and match.group(1).startswith(_PLACE_NOUNS)


def _is_saint(text: str, start: int, end: int) -> bool:
    return end - start <= 6 and text[start:end].lower().rstrip(".") in _SAINTS


def _after_saint(text: str, start: int) -> bool:
    before = text[max(0, start - 8) : start].rstrip(" ")
    space = before.rfind(" ")
    return _is_saint(before, space + 1, len(before))


def _words(text: str) -> list[list[_Word]]:
    """The capitalised words of a text, in groups of words one space apart; none when
    no word is a listed name (nearly every text: the groups are not built then)."""
    found = []
    any_name = False
    for match in _CAPITALISED_RE.finditer(text):
        start = match.start()
        if start and ((before := text[start - 1]).isalnum() or before in _INSIDE_WORD):
            continue
        at_start = _at_sentence_start(text, start)
        looked_up = _lookup(match.group(), at_start)
        any_name = any_name or looked_up[0] == "name"
        found.append((start, match.end(), looked_up, at_start))
    if not any_name:
        return []
    groups: list[list[_Word]] = []
    for start, end, (kind, first, maybe_first, surname), at_start in found:
        word = _Word(start, end, kind, first, maybe_first, surname, at_start)
        if groups and text[groups[-1][-1].end : start] == " ":
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


def name_spans(text: str) -> list[Span]:
    """Spans of personal names in a (normalised) text."""
    spans: list[Span] = []
    for group in _words(text):
        if not any(word.kind == "name" for word in group):
            continue  # every name found below stands in or next to a listed one
        head = group[0]
        if _after_saint(text, head.start) or _is_saint(text, head.start, head.end):
            continue  # "Pyhän Henrikin katedraali", "Sankt Eriks"
        if _followed_by_place_noun(text, group[-1].end):
            # The last word names a place ("Hakaniemen torilla", "Marian sairaala"),
            # with a first name before it when it is a person's ("Aleksis Kiven katu").
            cut = len(group) - 1
            if cut > 0 and group[cut - 1].maybe_first:
                cut -= 1
            group = group[:cut]
            if not group:
                continue
        named = [word.kind == "name" for word in group]
        for j in range(1, len(group)):
            # After an uninflected first name: its surname, listed or not ("Mikko
            # Kärkkäinen"), also where it is a place ("Anna Kallio"), but not a place only.
            word = group[j]
            if not named[j] and named[j - 1] and group[j - 1].first:
                named[j] = word.kind == "" or word.surname
        for j in range(len(group) - 2, -1, -1):
            # Before a listed surname: its first name ("Jere Virtanen"; "Toivo Virtanen"
            # at the start of a sentence), but not any first word of a sentence.
            word, nxt = group[j], group[j + 1]
            if not named[j] and named[j + 1] and nxt.surname and nxt.kind == "name":
                named[j] = word.maybe_first or (word.kind == "" and not word.at_start)
        for word, is_name in zip(group, named, strict=True):
            if not is_name:
                continue
            start, end = word.start, word.end
            if (initial := _INITIAL_AFTER_RE.match(text, end)) is not None:
                end = initial.end()
            if (before := _INITIAL_BEFORE_RE.search(text, max(0, start - 3), start)) is not None:
                start = before.start()
            if spans and text[spans[-1][1] : start].strip(" ") == "":
                spans[-1] = (spans[-1][0], end)  # "Mikko Virtanen" is one name
            else:
                spans.append((start, end))
    return spans


# --------------------------------------------------------------------------
# street addresses

_FI_STREET = (
    "katu|tie|kuja|polku|väylä|kaari|rinne|raitti|ranta|tori|aukio|piha|puistikko"
    "|bulevardi|portti|kulma|penger|kenttä|porras|laituri|puistotie"
)
_SV_STREET = (
    "gatan|gata|vägen|väg|gränd|stigen|stig|allén|allé|torget|torg|backen|kajen"
    "|esplanaden|leden|gången|stranden|strand|planen"
)
_STREET_SUFFIX = rf"(?:{_FI_STREET}|{_SV_STREET})"
_ROADS = (
    r"(?<![\w])(?!(?i:valta|kanta|seutu|yhdys|moottori|maan|rauta|pyörä|kävely|ohitus|kierto)"
    r"(?:tie|väylä))"
)
_SEPARATE_STREET_WORD = "(?:katu|tie|kuja|polku|väylä|gata|gatan|väg|vägen|gränd|allé|torg|torget)"
# Words before a street name: "Stora Robertsgatan", "Pieni Roobertinkatu".
_STREET_ADJECTIVE = (
    "(?:Stora|Lilla|Norra|Södra|Östra|Västra|Nya|Gamla|Övre|Nedre|Iso|Pieni|Pohjoinen"
    "|Eteläinen|Itäinen|Läntinen|Vanha|Uusi)"
)
# Capitalised one-word street name ("Mannerheimintie", "Stora Robertsgatan"), or the
# unmistakable lower-case compounds ("mannerheimintie"), or capitalised words before a
# separate street word ("Aleksis Kiven katu").
_STREET_NAME = (
    rf"(?:{_ROADS}(?:{_STREET_ADJECTIVE} )?[{_UPPER}][{_LOWER}-]+?{_STREET_SUFFIX}"
    rf"|{_ROADS}[{_LOWER}]{{3,}}?(?:katu|tie|gatan|vägen)"
    rf"|(?<![\w])(?:[{_UPPER}][{_LOWER}]+ ){{1,3}}{_SEPARATE_STREET_WORD})"
)
_HOUSE = (
    r"[0-9]{1,4}(?: ?- ?[0-9]{1,4})?"
    r"(?: ?[A-Ha-h](?![\w]))??"
    r"(?: (?:[A-Ha-h]|as\.?|asunto|bst\.?|bostad|lgh\.?|lägenhet|apt\.?) ?[0-9]{1,3}(?![0-9])"
    r"| ?[A-Ha-h](?![\w]))?"
    r"(?::[a-zåäö]+)?"
)
_UNIT = (
    r"(?! ?(?:km|m|min|h|%|€|e|kpl|krt|kertaa|hlö|henkeä|henkilöä|vuotta|v|vrk|pv|päivää"
    r"|tuntia|minuuttia|metriä|kilometriä|st|stycken|år|dagar|timmar|personer|euroa)(?!\w))"
)
_ADDRESS_RE = re.compile(
    rf"{_STREET_NAME} (?=[0-9]){_HOUSE}(?![0-9]){_UNIT}"
    rf"(?:,? [0-9]{{5}}(?: [{_UPPER}][{_LOWER}]+)?(?![\w]))?"
)


# Every address has a street word right before a space and a digit: texts without one
# (nearly all) skip the full expression, which is slow to scan.
_STREET_WORDS = tuple(dict.fromkeys(f"{_FI_STREET}|{_SV_STREET}".split("|")))
_SPACE_DIGIT_RE = re.compile(r" (?=[0-9])")
_STREET_NAME_MAX = 80  # characters before the house number that the street name may take
_HOUSE_MAX = 60  # characters from there to the end of the postal town


def address_spans(text: str) -> list[Span]:
    """Spans of street addresses with a house number in a (normalised) text.

    The full expression is slow to scan, so it only looks around a street word right
    before a space and a digit: most texts have none.
    """
    spans: list[Span] = []
    for hint in _SPACE_DIGIT_RE.finditer(text):
        at = hint.start()
        if (spans and at < spans[-1][1]) or not text[max(0, at - 12) : at].endswith(_STREET_WORDS):
            continue
        start = max(spans[-1][1] if spans else 0, at - _STREET_NAME_MAX)
        for match in _ADDRESS_RE.finditer(text, start, at + _HOUSE_MAX):
            if match.start() < at < match.end():
                spans.append(match.span())
                break
    return spans


# --------------------------------------------------------------------------
# dates of birth

_MONTH_NAMES = (
    "tammikuuta|helmikuuta|maaliskuuta|huhtikuuta|toukokuuta|kesäkuuta|heinäkuuta"
    "|elokuuta|syyskuuta|lokakuuta|marraskuuta|joulukuuta"
    "|januari|februari|mars|april|maj|juni|juli|augusti|september|oktober|november|december"
    "|january|february|march|may|june|july|august|october"
)
_D = r"(?:0?[1-9]|[12][0-9]|3[01])"
_M = r"(?:0?[1-9]|1[0-2])"
_Y4 = r"(?:19|20)[0-9]{2}"
_FULL_DATE = (
    rf"(?:{_D}\. ?{_M}\. ?(?:{_Y4}|[0-9]{{2}})|{_Y4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    rf"|{_D}/{_M}/(?:{_Y4}|[0-9]{{2}})|{_D}\.? (?:{_MONTH_NAMES}) {_Y4}"
    rf"|(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{{2}})(?![0-9])"
)
_BIRTH_WORD = (
    r"(?<![\w.])(?:s\.|synt\.?|syntynyt|syntyneen|syntyi|syntymäaika|syntymäaikansa"
    r"|syntymäpäivä|syntymävuosi|f\.|född|födelsedatum|födelsetid|födelseår|born|b\."
    r"|dob|d\.o\.b\.?|date of birth|birth date|birthdate)"
)
_BIRTH_DATE_RE = re.compile(
    rf"(?=[sSfFbBdD0-9])(?:{_BIRTH_WORD}(?::? ?| ?(?:on|den|vuonna|år|in) )"
    rf"(?P<date>{_FULL_DATE}|{_Y4}(?![0-9-]))"
    rf"|(?<![0-9.])(?P<before>{_FULL_DATE})"
    r" (?=(?:syntynyt|syntyneen|syntyneelle|född|born)(?!\w)))",
    re.IGNORECASE,
)


# Every date of birth comes with one of these (lower case): texts without any skip the
# full expression.
_BIRTH_HINTS = ("s.", "synt", "föd", "f.", "born", "b.", "dob", "d.o.b", "birth")


def birth_date_spans(text: str) -> list[Span]:
    """Spans of dates of birth (the date only, not the word before it)."""
    lower = text.lower()
    for hint in _BIRTH_HINTS:
        if hint in lower:
            break
    else:
        return []
    out = []
    for match in _BIRTH_DATE_RE.finditer(text):
        group = "date" if match.group("date") is not None else "before"
        out.append(match.span(group))
    return out


# --------------------------------------------------------------------------
# vehicle registration plates

_PLATE_RE = re.compile(
    r"(?=[A-ZÅÄÖ])(?<![\w-])(?:(?P<fi>[A-ZÅÄÖ]{2,3})-[0-9]{1,3}|(?P<sv>[A-Z]{3}) [0-9]{2}[0-9A-Z])"
    r"(?![\w-]|[.,/][0-9]| ?§)"
)
_PLATE_WORD_RE = re.compile(
    r"(?:rekisteri|rekkari|rek\.? ?n(?:ume)?ro|kilpi|kilve|registrering|reg\.? ?nr|regnr"
    r"|registration|licen[cs]e|plate|auto|bil)",
    re.IGNORECASE,
)
# Acronyms seen with a number in social and health care texts.
_NOT_PLATES = frozenset(
    "HUS HSL THL STM AVI ELY SHL LSL KHO HAO TYP TYK SOS EKG HIV HCV OTT SAK YLE HKL"
    " ALV NRO PVM KLO LVV EVO VVA PTH MTV EUR USD COVID ADHD KELA SOTE AMK UTF ISO".split()
)


def _capitals_before(text: str, at: int) -> bool:
    before = text[max(0, at - 2) : at]
    return len(before) == 2 and before.isupper() and before.isalpha()


def _may_hold_plate(text: str) -> bool:
    """Capitals before a space or a hyphen and a digit (few texts have one)."""
    for match in _SPACE_DIGIT_RE.finditer(text):
        if _capitals_before(text, match.start()):
            return True
    at = text.find("-")
    while at != -1:
        if text[at + 1 : at + 2].isdigit() and _capitals_before(text, at):
            return True
        at = text.find("-", at + 1)
    return False


def plate_spans(text: str) -> list[Span]:
    """Spans of vehicle registration plates in a (normalised) text."""
    if not _may_hold_plate(text):
        return []
    out = []
    for match in _PLATE_RE.finditer(text):
        letters = match.group("fi") or match.group("sv")
        keyword = _PLATE_WORD_RE.search(text, max(0, match.start() - 40), match.start())
        if letters in _NOT_PLATES and keyword is None:
            continue
        if len(letters) == 2 and keyword is None:
            continue
        out.append(match.span())
    return out
