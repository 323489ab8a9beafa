"""Build flows/data/names.tsv, the personal-name list of the identifier guard.

Run it again when the sources are updated; the output is committed, so neither the
bot nor CI needs any of the tools below.

Sources (read from the Faker package, MIT licence, which keeps them up to date):

* Finnish first names and surnames: the Digital and Population Data Services Agency
  (DVV) name statistics on avoindata.fi (CC BY 4.0), the most common given names of
  women and men and the most common surnames, as Faker's ``fi_FI`` person provider
  carries them;
* Swedish first names (Isof, the Institute for Language and Folklore, name statistics)
  and surnames (Skatteverket, the Swedish Tax Agency, the 500 most common), as Faker's
  ``sv_SE`` person provider carries them: Finland-Swedish names are largely the same,
  and the Swedish lists also cover names common among immigrants;
* Finnish municipalities (avoindata.fi, CC BY 4.0), as Faker's ``fi_FI`` address
  provider carries them, to mark names that are also places.

Each name is marked, so that the guard can weigh it:

* ``f`` a first name, ``l`` a surname;
* ``w`` also a common word (Finnish per Voikko, Swedish per every form of the
  hunspell-sv dictionary as ``unmunch`` spells them out, English per
  /usr/share/dict/american-english): at the start of a sentence it is not taken for
  a name;
* ``p`` also a Finnish municipality (Lahti, Salo, Kaarina): not taken for a person
  unless it stands next to a first name ("Anna Lahti"). Voikko's place names are not
  used: they hold many of the commonest surnames (Nieminen, Mattila, Mäkelä) as
  villages. City districts and services are hand-kept in flows/data/not_persons.txt.

The third column lists inflected forms of the name (Finnish cases, a Swedish
genitive) that are also common words in one of the three languages, folded as the
guard folds them: "Annan" (I give), "Ainoa" (only), "Lagen" (the law, not Lage's).
At the start of a sentence those are not taken for names either.

Needs (not project dependencies): ``pip install faker libvoikko`` (or the ``namelist``
extra) and the Debian packages ``libvoikko1 voikko-fi hunspell-sv hunspell-tools
wamerican``.

    python scripts/build_name_list.py            # writes flows/data/names.tsv
    python scripts/build_name_list.py --check    # also reports how many inflected forms
                                                 # Voikko knows the guard's stemmer finds
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.privacy_words import fold, name_bases  # noqa: E402

OUT = ROOT / "flows" / "data" / "names.tsv"
SV_DIC = Path("/usr/share/hunspell/sv_FI")
EN_WORDS = Path("/usr/share/dict/american-english")
PROPER = {"etunimi", "sukunimi", "paikannimi", "nimi"}
VOWELS = "aeiouyäö"
FINNISH_ENDINGS = ("n", "a", "na", "ksi", "ssa", "sta", "lla", "lta", "lle", "t", "kin", "han")


def harmonise(ending: str, word: str) -> str:
    back = any(c in "aou" for c in word.lower())
    return ending if back else ending.replace("a", "ä").replace("o", "ö").replace("u", "y")


def weak(name: str) -> set[str]:
    """Weak-grade stems of a name (Mikko -> Miko, Virta -> Virra, Lahti -> Lahde)."""
    stems = set()
    pairs = (
        ("kk", "k"),
        ("pp", "p"),
        ("tt", "t"),
        ("nt", "nn"),
        ("lt", "ll"),
        ("rt", "rr"),
        ("mp", "mm"),
        ("nk", "ng"),
        ("ht", "hd"),
    )
    body, last = name[:-1], name[-1:]
    if last.lower() in VOWELS:
        for strong, weak_form in pairs:
            if body.endswith(strong):
                stems.add(body[: -len(strong)] + weak_form + last)
                if last == "i":
                    stems.add(body[: -len(strong)] + weak_form + "e")
    return stems


def stems(name: str) -> set[str]:
    out = {name} | weak(name)
    lower = name.lower()
    if lower.endswith("nen"):
        out |= {name[:-3] + "se", name[:-3] + "s"}
    if lower.endswith("s"):
        out.add(name[:-1] + "kse")
    if lower.endswith("i"):
        out.add(name[:-1] + "e")
    if lower.endswith("e"):
        out.add(name + "e")
    if lower[-1:] not in VOWELS:
        out.add(name + "i")
    return out


def candidate_forms(name: str) -> set[str]:
    forms = set()
    for stem in stems(name):
        for ending in FINNISH_ENDINGS:
            forms.add(stem + harmonise(ending, name))
    last = name[-1:].lower()
    if last in VOWELS:
        forms.add(name + harmonise("a", name))  # partitive Mikkoa
        forms.add(name + last + "n")  # illative Mikkoon
    forms.add(name + "s")  # Swedish genitive
    forms.discard(name)
    return forms


def faker_lists() -> tuple[dict[str, set[str]], set[str]]:
    from faker.providers.address.fi_FI import Provider as FiAddress
    from faker.providers.person.fi_FI import Provider as FiPerson
    from faker.providers.person.sv_SE import Provider as SvPerson

    names: dict[str, set[str]] = {}
    for provider in (FiPerson, SvPerson):
        for attr, flag in (
            ("first_names_female", "f"),
            ("first_names_male", "f"),
            ("last_names", "l"),
        ):
            for name in getattr(provider, attr):
                names.setdefault(str(name), set()).add(flag)
    return names, {str(city) for city in FiAddress.cities}


class Words:
    """Whether a word, in lower case, is a Swedish or an English word."""

    def __init__(self) -> None:
        unmunched = subprocess.run(
            ["unmunch", f"{SV_DIC}.dic", f"{SV_DIC}.aff"],
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8", "replace")
        self.words = {line for line in unmunched.splitlines() if line.islower()}
        english = EN_WORDS.read_text(encoding="utf-8").splitlines()
        self.words.update(line for line in english if line.islower() and "'" not in line)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="report the stemmer's coverage")
    args = parser.parse_args()

    import libvoikko

    voikko = libvoikko.Voikko("fi")
    names, cities = faker_lists()
    words = Words()
    rows = []
    known = found = 0
    for name in sorted(names, key=lambda n: (fold(n), n)):
        flags = set(names[name])
        analyses = voikko.analyze(name)
        if any(a.get("CLASS") not in PROPER for a in analyses) or name.lower() in words:
            flags.add("w")
        if name in cities:
            flags.add("p")
        ambiguous = set()
        for form in sorted(candidate_forms(name)):
            form_analyses = voikko.analyze(form)
            if any(a.get("CLASS") not in PROPER for a in form_analyses) or form in words:
                ambiguous.add(fold(form))
            if any(
                a.get("CLASS") in ("etunimi", "sukunimi") and a.get("BASEFORM") == name
                for a in form_analyses
            ):
                known += 1
                if fold(name) in name_bases(fold(form)):
                    found += 1
                elif args.check:
                    print(f"  not stemmed: {form} ({name})")
        order = "".join(f for f in "flwp" if f in flags)
        rows.append(f"{name}\t{order}\t{','.join(sorted(ambiguous))}".rstrip("\t"))

    header = [
        "# Personal names for the identifier guard (flows/privacy_words.py).",
        "# Generated by scripts/build_name_list.py: do not edit by hand; see the script for",
        "# the sources (DVV name statistics, CC BY 4.0; Isof; Skatteverket; via Faker "
        f"{version('faker')}, MIT)",
        f"# and the classification (Voikko {version('libvoikko')}, hunspell-sv, wamerican).",
        "# name<TAB>flags (f first name, l surname, w also a word, p also a place)"
        "<TAB>inflected forms that are also words",
    ]
    OUT.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    print(f"{len(rows)} names -> {OUT.relative_to(ROOT)}")
    if known:
        print(f"inflected forms Voikko knows: {known}, found by the stemmer: {found / known:.1%}")


if __name__ == "__main__":
    main()
