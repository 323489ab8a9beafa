"""The word-reading rules of the identifier guard (flows/privacy_words.py), kind by kind.

Names, street addresses, dates of birth and vehicle registration plates, found through
``flows.privacy.find_identifiers`` as the guard finds them; the corpora in
tests/test_identifier_corpus.py measure the same rules on realistic observations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import privacy_words, textguard
from flows.i18n import LANGUAGES, t
from flows.privacy import PLACEHOLDERS, IdentifierKind, find_identifiers, redact, scrub

NAME, ADDRESS, BIRTH, PLATE = (
    IdentifierKind.NAME,
    IdentifierKind.ADDRESS,
    IdentifierKind.BIRTH_DATE,
    IdentifierKind.PLATE,
)
ROOT = Path(__file__).resolve().parent.parent


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind.value, text[f.start : f.end]) for f in find_identifiers(text)]


# --------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    ("word", "base"),
    [
        ("Mikon", "Mikko"),
        ("Mikolle", "Mikko"),
        ("Mikkoa", "Mikko"),
        ("Mikkoon", "Mikko"),
        ("Matille", "Matti"),
        ("Pekan", "Pekka"),
        ("Heikin", "Heikki"),
        ("Antin", "Antti"),
        ("Sepolta", "Seppo"),
        ("Virtasen", "Virtanen"),
        ("Virtaselle", "Virtanen"),
        ("Virtasta", "Virtanen"),
        ("Laineelle", "Laine"),
        ("Markuksen", "Markus"),
        ("Tuomakselle", "Tuomas"),
        ("Niemen", "Niemi"),
        ("Mäen", "Mäki"),
        ("Virran", "Virta"),
        ("Hongan", "Honka"),
        ("Erikille", "Erik"),
        ("Eriks", "Erik"),
        ("Annaan", "Anna"),
        ("Sannallekin", "Sanna"),
        ("Jussihan", "Jussi"),
    ],
)
def test_inflected_names_are_traced_to_their_base(word: str, base: str) -> None:
    assert privacy_words.fold(base) in privacy_words.name_bases(privacy_words.fold(word))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Tapasin Mikon eilen.", "Mikon"),
        ("Soitin Pekalle heti.", "Pekalle"),
        ("Asiakas Matti Nieminen jäi ilman.", "Matti Nieminen"),
        ("Kävimme Virtasen luona.", "Virtasen"),
        ("Mikko kertoi, että asunto meni alta.", "Mikko"),
        ("Vi träffade Erik Johansson vid stationen.", "Erik Johansson"),
        ("Eriks bror sover i bilen.", "Eriks"),
        ("Nuori Mikko V. kertoi.", "Mikko V."),
        ("Sen kertoi M. Virtanen eilen.", "M. Virtanen"),
        ("Jere Virtanen soitti.", "Jere Virtanen"),
        ("Tapasimme Mikko Kärkkäisen kanssa.", "Mikko Kärkkäisen"),
        ("Sanoin, että Toivo tulee huomenna.", "Toivo"),
        ("Tapasin Anna Kallion kotona.", "Anna Kallion"),
        ("Tapasin Ahmedin ja hänen perheensä.", "Ahmedin"),
        ('Äiti sanoi: "Mikko ei ole käynyt koulussa."', "Mikko"),
        ("Tapasin Anna-Liisan eilen.", "Anna-Liisan"),
    ],
)
def test_names_are_found(text: str, name: str) -> None:
    assert found(text) == [("name", name)]


@pytest.mark.parametrize(
    "text",
    [
        # names that are also words, where a sentence starts
        "Toivo on vähissä.",
        "Onni oli, että päivystys vastasi.",
        "Anna palautetta Kelalle.",
        "Tuuli oli kova rannassa.",
        "Ainoa paikka on nuorisotalo.",
        'Hän sanoi: "Toivo on mennyt."',
        "- Usko viranomaisiin on mennyt.",
        "Bo kvar hemma är inget alternativ.",
        "Stig in och värm dig.",
        "Lagen om klientavgifter tillämpas olika.",
        # places and services
        "Kalliossa ja Malmilla jonot ovat pitkiä.",
        "Lahdessa ja Salossa sama tilanne.",
        "Wilman kautta tuli viesti.",
        "Mikkolan koulun vanhemmat ovat huolissaan.",
        "Eiran vanhukset ovat yksinäisiä.",
        "Marian sairaalan alueella oleskelee asunnottomia.",
        "Aleksis Kiven kadulla oli hiljaista.",
        "Tavattiin Johanneksen kirkon portailla.",
        "Pyhän Henrikin katedraalin lähellä.",
        "Ruoka-apua jaettiin Mikaelin seurakunnassa.",
        # capitalised words that are not names, all capitals, lower case
        "Kelan ja HUS:n päätökset viipyvät Itäkeskuksessa.",
        "MIKKO ei ole nimi tässä, eikä mikko.",
    ],
)
def test_words_that_only_look_like_names_are_not(text: str) -> None:
    assert [k for k, _ in found(text)] == []


def test_a_surname_next_to_a_place_noun_is_kept_apart() -> None:
    text = "Tavattiin Juha Korhonen Hakaniemen torilla."
    assert found(text) == [("name", "Juha Korhonen")]


def test_names_with_invisible_characters_and_look_alikes_are_found() -> None:
    text = "Tapasin Mik\u200bon eilen."  # a zero-width space inside
    [finding] = find_identifiers(text)
    assert (finding.kind, finding.start, finding.end) == (NAME, 8, 14)
    cyrillic = "Tapasin Міkon eilen."  # Cyrillic М and і
    assert [f.kind for f in find_identifiers(cyrillic)] == [NAME]


def test_the_name_list_is_read_on_first_use_not_at_import() -> None:
    code = (
        "import flows.privacy, flows.textguard, flows.privacy_words as w;"
        "print(w._names.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "0"


def test_the_name_list_names_its_sources() -> None:
    header = (ROOT / "flows" / "data" / "names.tsv").read_text(encoding="utf-8")[:600]
    assert "scripts/build_name_list.py" in header and "DVV" in header
    names = privacy_words._names()
    assert len(names.flags) > 2000
    assert "f" in names.flags["mikko"] and "l" in names.flags["virtanen"]
    assert "w" in names.flags["toivo"]


# --------------------------------------------------------------------------
# street addresses


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Asuu osoitteessa Hämeentie 12 B 34, 00530 Helsinki.",
            "Hämeentie 12 B 34, 00530 Helsinki",
        ),
        ("Perhe asuu Kontulantie 5 as. 3 ja häätö on tulossa.", "Kontulantie 5 as. 3"),
        ("Käynti Mannerheimintie 164:ssä peruttiin.", "Mannerheimintie 164:ssä"),
        ("Osoite on Aleksis Kiven katu 17.", "Aleksis Kiven katu 17"),
        ("Asuu mannerheimintie 5 a 12 yksin.", "mannerheimintie 5 a 12"),
        ("Talo Kivikonkaari 2 C 15 on kylmä.", "Kivikonkaari 2 C 15"),
        ("Klienten bor på Sibeliusgatan 12 B 4.", "Sibeliusgatan 12 B 4"),
        ("Familjen bor på Storgatan 5 i Vasa.", "Storgatan 5"),
        ("Lägenheten på Skolgatan 8 lgh 12 har mögel.", "Skolgatan 8 lgh 12"),
        ("Hon bor på Stora Robertsgatan 2.", "Stora Robertsgatan 2"),
    ],
)
def test_street_addresses_are_found(text: str, address: str) -> None:
    assert found(text) == [("address", address)]


@pytest.mark.parametrize(
    "text",
    [
        "Hämeentiellä näkyy yhä enemmän kerjäläisiä.",
        "Valtatie 4 oli tukossa koko aamun.",
        "Kantatie 51 suljettiin.",
        "Pyörätie 2 km päässä on kunnossa.",
        "Bussi 550 ja linja 14 kulkevat harvoin.",
        "Kehä I:n varrella on telttaleiri.",
        "Storgatan är full av folk på kvällarna.",
    ],
)
def test_streets_without_a_house_number_and_roads_are_not_addresses(text: str) -> None:
    assert found(text) == []


# --------------------------------------------------------------------------
# dates of birth


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("Nuori, s. 12.3.2007, on kadulla.", "12.3.2007"),
        ("Asiakas on syntynyt 4.11.1985 Oulussa.", "4.11.1985"),
        ("Syntymäaika 15.5.2019 kirjattiin.", "15.5.2019"),
        ("Isä (synt. 1978) ei saa yhteyttä.", "1978"),
        ("Hän on 3.8.2008 syntynyt tyttö.", "3.8.2008"),
        ("Syntymäaika on 120385, hän kertoi.", "120385"),
        ("Poika on syntynyt 17. maaliskuuta 2010 ja käy koulua.", "17. maaliskuuta 2010"),
        ("Den unga, född 12.3.2007, bor på gatan.", "12.3.2007"),
        ("Klienten är född 1985-11-04.", "1985-11-04"),
        ("Pappan (f. 1978) har ingen kontakt.", "1978"),
        ("Barnet är fött, född den 17 mars 2010.", "17 mars 2010"),
        ("The client, born 4/11/1985, sleeps outside.", "4/11/1985"),
    ],
)
def test_dates_of_birth_are_found(text: str, date: str) -> None:
    assert found(text) == [("birth_date", date)]


@pytest.mark.parametrize(
    "text",
    [
        "Kävimme asemalla 12.3.2024 ja siellä oli nuoria.",
        "Laki tuli voimaan 1.1.2015.",
        "Vuonna 2019 syntyneet lapset aloittavat koulun.",
        "Hän syntyi 1990-luvulla.",
        "Katso s. 12 ohjeesta.",
    ],
)
def test_other_dates_are_not_dates_of_birth(text: str) -> None:
    assert [k for k, _ in found(text)] == []


# --------------------------------------------------------------------------
# vehicle registration plates


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("Auto ABC-123 seisoo pihalla.", "ABC-123"),
        ("Pakettiauto XYZ-45 on parkissa.", "XYZ-45"),
        ("Rekkari oli FI-12 ja auto seisoi pihalla.", "FI-12"),
        ("Bilen har registreringsnummer ABC 123.", "ABC 123"),
        ("Bilen GHT 45X säljer alkohol.", "GHT 45X"),
    ],
)
def test_plates_are_found(text: str, plate: str) -> None:
    assert found(text) == [("plate", plate)]


@pytest.mark.parametrize(
    "text",
    [
        "SHL 48 §:n mukainen ilmoitus tehtiin.",
        "Bussi HSL 550 on myöhässä.",
        "Hätänumero SOS-112 ei vastannut.",
        "EU-27 maiden vertailussa Suomi pärjää.",
        "HE 123/2020 käsiteltiin.",
        "Covid-19 vaikutti palveluihin.",
    ],
)
def test_acronyms_with_numbers_are_not_plates(text: str) -> None:
    assert found(text) == []


# --------------------------------------------------------------------------
# placeholders in the writer's language


def test_placeholders_follow_the_language_and_cannot_form_identifiers() -> None:
    for lang in LANGUAGES:
        for kind, text in textguard.placeholders(lang).items():
            assert text.startswith("[") and text.endswith("]"), (lang, kind)
            assert find_identifiers(f"x {text} y") == [], (lang, kind)
            assert not any(c.isdigit() for c in text) and "@" not in text
            assert privacy_words.TITLE_CASE_RE.search(text) is None
        assert (
            textguard.placeholders(lang)[IdentifierKind.HETU] == PLACEHOLDERS[IdentifierKind.HETU]
        )
    assert textguard.placeholders("en") == PLACEHOLDERS
    assert textguard.placeholders("fi")[IdentifierKind.PHONE] == "[PUHELIN]"
    assert textguard.placeholders("sv")[IdentifierKind.PHONE] == "[TELEFON]"
    for kind in IdentifierKind:
        assert all(t(lang, f"privacy.kind.{kind.value}") for lang in LANGUAGES)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("fi", "Tapasin [NIMI] osoitteessa [OSOITE], s. [SYNTYMÄAIKA], auto [REKISTERINUMERO]."),
        ("sv", "Tapasin [NAMN] osoitteessa [ADRESS], s. [FÖDELSETID], auto [REGISTRERINGSNUMMER]."),
        ("en", "Tapasin [NAME] osoitteessa [ADDRESS], s. [DATE OF BIRTH], auto [PLATE]."),
    ],
)
def test_remove_writes_the_writers_placeholders(lang: str, expected: str) -> None:
    text = "Tapasin Mikon osoitteessa Hämeentie 5, s. 12.3.2007, auto ABC-123."
    assert textguard.screen(text).kinds == ("address", "birth_date", "name", "plate")
    assert textguard.resolve("rm", text, lang) == expected


# --------------------------------------------------------------------------
# removal always leaves nothing to find

NAMES = ["Mikko", "Mikon", "Virtasen", "Anna Kallio", "Erik Johansson", "Sannalle", "M. Virtanen"]
OTHERS = ["Hämeentie 12 B 34", "s. 12.3.2007", "ABC-123", "Storgatan 5", "född 1985-11-04"]
WORDS = ["ja", "Kalliossa", "Kela", "asiakas", "Toivo", ".", ",", ":", '"', "\n", "Wilma", "kävi"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(NAMES + OTHERS + WORDS), min_size=1, max_size=12))
def test_redact_leaves_nothing_to_find(parts: list[str]) -> None:
    text = " ".join(parts)
    for lang in LANGUAGES:
        cleaned = redact(text, placeholders=textguard.placeholders(lang))
        assert find_identifiers(cleaned) == [], (text, cleaned)


def test_the_read_out_scrub_removes_hetus_only() -> None:
    """Decided: names and the other asked-about kinds stay on read-out (the writer chose)."""
    text = "Tapasin Mikon osoitteessa Hämeentie 5, hetu 131052-308T, auto ABC-123."
    assert scrub(text) == "Tapasin Mikon osoitteessa Hämeentie 5, hetu [HETU], auto ABC-123."
