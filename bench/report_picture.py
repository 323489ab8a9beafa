"""The README's picture of the social report: one page of it as a PNG, from a generated
data set.

    python -m bench.report_picture [--rows 100000] [--page 1] [--output docs/report-page.png]

Generates a data set (``bench.generate``) in a temporary SQLite file, adds what the
generator does not make (three phenomena with linked observations and "me too"
confirmations, two proposals, one presented and one decided, and the region's and a
team's conclusions), builds Helsinki's report for November 2026 the way ``havainto
report`` does (``bench.report_length.measure``) and renders one page with poppler's
``pdftoppm`` (Debian ``poppler-utils``, listed in ``.ci/system-packages`` for the report
tests). Everything in it is synthetic.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
CONCLUSIONS = (
    "Nuorten asunnottomuus näkyi marraskuussa kaikissa Helsingin tiimeissä: yömajat olivat "
    "täynnä jo alkuillasta, ja nuoria jäi ilman yöpaikkaa pakkasöinä.\n\n"
    "Esitämme sosiaali- ja terveyslautakunnalle lisää hätämajoituspaikkoja talveksi ja "
    "yhteistä iltapäivystystä asumisneuvonnan kanssa. Toimeentulotuen jonot näkyvät "
    "edelleen; seuraamme niitä tammikuuhun."
)


async def enrich(url: str) -> None:
    """Phenomena, confirmations, proposals and conclusions on Helsinki's data."""
    from sqlalchemy import select

    from flows import knowledge as path
    from storage import knowledge
    from storage.db import Database
    from storage.models import Observation, Person
    from storage.report_notes import add_note

    db = Database(url)
    try:
        async with db.transaction() as session:
            since = datetime(2026, 11, 1, tzinfo=UTC)
            found = await session.execute(select(Person.id, Person.team_id).limit(400))
            people = [(row[0], row[1]) for row in found]
            made = []
            for theme, title, team in (
                ("theme.housing", "Nuoret ilman hätämajoitusta pakkasöinä", None),
                ("theme.income", "Toimeentulotuen käsittely venyy yli lakisääteisen ajan", None),
                ("theme.substance_mental", "Ei päihdekuntoutusta ilman lähetettä", "helsinki-01"),
            ):
                phenomenon = await knowledge.create_phenomenon(
                    session, region="helsinki", team_id=team, theme=theme, title=title,
                    language="fi", actor_person_id=None, actor="picture", now=NOW,
                )  # fmt: skip
                entries = (
                    await session.execute(
                        select(Observation.id)
                        .where(
                            Observation.region == "helsinki",
                            Observation.theme == theme,
                            Observation.observed_at >= since,
                        )
                        .limit(9 if team is None else 6)
                    )
                ).scalars()
                for entry in entries:
                    await knowledge.link(
                        session, phenomenon.id, entry, actor_person_id=None, actor="picture",
                        now=NOW,
                    )  # fmt: skip
                for person, team_id in people[: 7 if team is None else 3]:
                    await knowledge.confirm(
                        session, person_id=person, team_id=team_id, kind=path.ME_TOO,
                        phenomenon_id=phenomenon.id, now=NOW,
                    )  # fmt: skip
                made.append(phenomenon.id)
            decided = await knowledge.create_proposal(
                session, text="Lisää hätämajoituspaikkoja pakkasöiksi", phenomenon_id=made[0],
                proposer_person_id=None, owner_person_id=None, actor="picture", now=NOW,
            )  # fmt: skip
            presented = await knowledge.create_proposal(
                session, text="Toimeentulotuen käsittelyajat seurantaan kuukausittain",
                phenomenon_id=made[1], proposer_person_id=None, owner_person_id=None,
                actor="picture", now=NOW,
            )  # fmt: skip
            assert decided is not None and presented is not None
            for proposal, moves in (
                (decided, [path.Move(path.PRESENTED, "sote", date(2026, 11, 10)),
                           path.Move(path.DECIDED, note="20 lisäpaikkaa joulukuusta alkaen")]),
                (presented, [path.Move(path.PRESENTED, "johtoryhma", date(2026, 11, 24))]),
            ):  # fmt: skip
                for move in moves:
                    refused = await knowledge.move_proposal(
                        session, proposal.id, move, bodies=["sote", "johtoryhma"],
                        actor_person_id=None, actor="picture", now=NOW,
                    )  # fmt: skip
                    assert refused is None, refused
            await add_note(
                session, scope_kind="region", scope_id="helsinki", period="2026-11",
                period_start=date(2026, 11, 1), period_end=date(2026, 11, 30), language="fi",
                author_role="leader", author="picture", text=CONCLUSIONS,
                now=NOW + timedelta(days=3),
            )  # fmt: skip
    finally:
        await db.close()


def render_page(pdf: Path, page: int, stem: Path) -> None:
    """One page of ``pdf`` as ``stem``.png at 80 dpi (A4: 662 x 935 pixels)."""
    command = ["pdftoppm", "-png", "-r", "80", "-f", str(page), "-l", str(page)]
    subprocess.run([*command, "-singlefile", str(pdf), str(stem)], check=True)


async def make(rows: int, page: int, output: Path, lang: str) -> int:
    from bench.generate import generate, upgraded
    from bench.report_length import measure

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "picture.db"
        await generate(f"sqlite:///{path}", rows, 1, progress=False)
        await upgraded(f"sqlite:///{path}")
        url = f"sqlite+aiosqlite:///{path}"
        await enrich(url)
        bodies = {
            "bodies": [
                {"id": "sote", "name": {"fi": "Sosiaali- ja terveyslautakunta"}},
                {"id": "johtoryhma", "name": {"fi": "Hyvinvointialueen johtoryhmä"}},
            ],
            "regions": {"helsinki": "Helsinki"},
        }
        result = await measure(
            url, "2026-11", lang, region="helsinki", today=date(2026, 12, 2), overrides=bodies
        )
        pdf = Path(folder) / "report.pdf"
        pdf.write_bytes(result["pdf"])
        stem = Path(folder) / "page"
        await asyncio.to_thread(render_page, pdf, page, stem)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f"{stem}.png", output)
        return int(result["pages"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report_picture", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1)
    parser.add_argument("--lang", default="fi")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "report-page.png")
    args = parser.parse_args(argv)
    if not shutil.which("pdftoppm"):
        sys.exit("needs pdftoppm (Debian: apt-get install poppler-utils)")
    pages = asyncio.run(make(args.rows, args.page, args.output, args.lang))
    print(f"page {args.page} of {pages} written to {args.output}")


if __name__ == "__main__":
    main()
