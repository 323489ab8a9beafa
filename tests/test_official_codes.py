"""Official codes of regions and areas: validated at start, carried into exports and the
monthly escalations CSV, printed beside the name in summaries and the social report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest

from bot.config import Config, load_config
from bot.config_errors import ConfigError
from flows import official_codes
from flows.official_codes import OfficialCodes, with_code
from storage.export import (
    FIELDS,
    Pseudonymiser,
    column_widths,
    iter_records,
    write_csv,
    write_jsonl,
    write_xlsx,
)
from tests.conftest import TEST_LEADERSHIP, TEST_TEAMS
from tests.support.datacare_helpers import World, add, observation, seed

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)

TEAM_TOML = """
[[teams]]
id = "hki"
name = "Helsingin etsivät"
region = "helsinki"

[[teams.areas]]
id = "kallio"
name = "Kallio"
municipality = "091"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the config ----------------------------------------------------------------------------


def test_the_old_plain_name_form_still_works_without_a_code(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[regions]\nhelsinki = "Helsinki"\n' + TEAM_TOML))
    assert config.region_name("helsinki") == "Helsinki"
    assert config.region_code("helsinki") is None
    assert config.region_label("helsinki") == "Helsinki"
    assert config.region_names == {"helsinki": "Helsinki"}
    # A region the config does not name is shown by its id, as before.
    assert config.region_name("lappi") == "lappi" and config.region_code("lappi") is None


def test_the_table_form_carries_the_county_code_and_areas_their_municipality(
    tmp_path: Path,
) -> None:
    text = (
        '[regions.helsinki]\nname = "Helsinki"\ncode = "90"\n\n'
        '[regions.pohjanmaa]\nname = "Pohjanmaan hyvinvointialue"\ncode = 17\n'
    )
    config = load_config(write(tmp_path, text + TEAM_TOML))
    assert config.region_code("helsinki") == "90"
    assert config.region_code("pohjanmaa") == "17"  # a TOML integer is the code it stands for
    assert config.region_label("helsinki") == "Helsinki (90)"
    assert config.team("hki").areas[0].municipality == "091"  # type: ignore[union-attr]
    assert config.official_codes() == OfficialCodes(
        regions={"helsinki": "90", "pohjanmaa": "17"},
        municipalities={("hki", "kallio"): "091"},
    )


def test_both_forms_mix_and_the_environment_overrides_either(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {"regions": {"helsinki": "Helsinki", "vaasa": {"name": "Vasa", "code": "17"}}}
    config = load_config(None, teams=TEST_TEAMS, leadership=TEST_LEADERSHIP, **overrides)
    assert config.region_label("helsinki") == "Helsinki"
    assert config.region_label("vaasa") == "Vasa (17)"
    monkeypatch.setenv("HAVAINTO_REGIONS__HELSINKI__CODE", "90")
    monkeypatch.setenv("HAVAINTO_REGIONS__HELSINKI__NAME", "Helsingin kaupunki")
    config = load_config(write(tmp_path, TEAM_TOML))
    assert config.region_label("helsinki") == "Helsingin kaupunki (90)"


def test_every_published_county_code_is_accepted() -> None:
    assert len(official_codes.WELLBEING_COUNTIES) == 23  # 21 counties, Helsinki, Åland
    assert [c.code for c in official_codes.WELLBEING_COUNTIES[:21]] == [
        f"{n:02d}" for n in range(1, 22)
    ]
    for county in official_codes.WELLBEING_COUNTIES:
        config = load_config(None, regions={"r": {"name": county.fi, "code": county.code}})
        assert config.region_code("r") == county.code
    assert official_codes.county("90").fi == "Helsingin kaupunki"  # type: ignore[union-attr]
    assert official_codes.county("17").sv == "Österbottens välfärdsområde"  # type: ignore[union-attr]
    assert official_codes.county("22") is None


@pytest.mark.parametrize("code", ["22", "00", "091", "HKI", "9", 99, True])
def test_an_unknown_county_code_is_a_short_config_error(tmp_path: Path, code: object) -> None:
    value = json.dumps(code) if not isinstance(code, bool) else "true"
    path = write(tmp_path, f'[regions.helsinki]\nname = "Helsinki"\ncode = {value}\n' + TEAM_TOML)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    first, *rest = message.splitlines()
    assert first.startswith(f"{path}, line 3: regions.helsinki.code: "), message
    if not isinstance(code, bool):
        assert "wellbeing services county code" in first and '"90" for Helsinki' in first
    assert rest == ['  for example: code = "90"'], message
    assert "Traceback" not in message and len(message) < 300


@pytest.mark.parametrize("number", ['"91"', '"0911"', '"HEL"', '"09a"', "1000"])
def test_a_malformed_municipality_number_is_a_short_config_error(
    tmp_path: Path, number: str
) -> None:
    text = TEAM_TOML.replace('municipality = "091"', f"municipality = {number}")
    line = text.splitlines().index(f"municipality = {number}") + 1
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.splitlines() == [
        f"{path}, line {line}: teams[id=hki].areas[id=kallio].municipality: a municipality "
        'number is three digits, as Statistics Finland writes it (Helsinki "091", Espoo '
        '"049", Vantaa "092")',
        '  for example: municipality = "091"',
    ]


def test_a_municipality_number_written_as_a_toml_integer_keeps_its_leading_zeros(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, TEAM_TOML.replace('"091"', "49")))
    assert config.team("hki").areas[0].municipality == "049"  # type: ignore[union-attr]
    # TOML itself has no leading zeros: 091 unquoted is a syntax error, told as such.
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, TEAM_TOML.replace('"091"', "091")))


def test_the_example_config_has_codes_in_the_table_form() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "config.example.toml")
    assert config.region_label("helsinki") == "Helsinki (90)"
    assert config.region_code("pohjanmaa") == "17"
    assert config.official_codes().municipality("hki-etsiva", "kallio") == "091"


# --- exports ---------------------------------------------------------------------------------


@pytest.fixture
async def world(make_config: Callable[..., Config]) -> AsyncIterator[World]:
    teams = [dict(team) for team in TEST_TEAMS]
    teams[0]["areas"] = [
        {"id": "kallio", "name": "Kallio", "municipality": "091"},
        {"id": "itakeskus", "name": "Itäkeskus"},  # no number: an empty cell
    ]
    config = make_config(
        teams=teams,
        regions={"helsinki": {"name": "Helsinki", "code": "90"}, "pohjanmaa": "Pohjanmaa"},
    )
    w = await seed(config, NOW)
    anna = w.people["anna"]
    await add(w, "kallio", observation(anna, NOW, "helsinki", area="kallio"))
    await add(w, "itakeskus", observation(anna, NOW, "helsinki", area="itakeskus"))
    yield w
    await w.db.close()


async def exported(world: World, fmt: str) -> list[dict[str, object]]:
    codes = world.service.config.official_codes()
    salt = Pseudonymiser(b"salt")
    async with world.db.transaction() as session:
        records = iter_records(session, pseudonymise=salt, codes=codes)
        if fmt == "xlsx":
            buffer = io.BytesIO()
            await write_xlsx(records, buffer, column_widths("fi"))
            rows = list(openpyxl.load_workbook(buffer).active.iter_rows(values_only=True))  # type: ignore[union-attr]
            header = [str(name) for name in rows[0]]
            return [dict(zip(header, row, strict=True)) for row in rows[1:]]
        out = io.StringIO()
        if fmt == "csv":
            await write_csv(records, out)
            text = out.getvalue().removeprefix("\ufeff")
            return list(csv.DictReader(io.StringIO(text), delimiter=";"))
        await write_jsonl(records, out)
        return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
async def test_exports_carry_the_region_code_and_the_municipality(world: World, fmt: str) -> None:
    rows = await exported(world, fmt)
    header = list(rows[0])
    assert header == list(FIELDS)
    assert header.index("region_code") == header.index("region") + 1
    assert header.index("municipality") == header.index("area_name") + 1
    empty = "" if fmt == "csv" else None
    by_id = {int(str(row["id"])): row for row in rows}
    kallio = by_id[world.observations["kallio"]]
    assert (kallio["region"], kallio["region_code"]) == ("helsinki", "90")
    assert (kallio["area"], kallio["municipality"]) == ("kallio", "091")  # leading zero kept
    itakeskus = by_id[world.observations["itakeskus"]]
    assert itakeskus["region_code"] == "90" and itakeskus["municipality"] == empty
    # A region without a code (Pohjanmaa, the plain-name form) and rows without an area.
    vaasa = [row for row in rows if row["region"] == "pohjanmaa"]
    assert vaasa and all(row["region_code"] == empty for row in vaasa)
    assert all(row["municipality"] == empty for row in rows if row["area"] in ("", None))


async def test_without_codes_in_the_config_the_columns_are_empty(world: World) -> None:
    async with world.db.transaction() as session:
        records = [r async for r in iter_records(session)]
    assert records and all(r.region_code is None and r.municipality is None for r in records)


# --- the monthly summary's CSV and names --------------------------------------------------------


def test_the_monthly_csv_has_region_code_and_municipality_columns() -> None:
    from digests.render import CSV_COLUMNS, escalations_csv, render_monthly
    from tests.test_digests import sample_monthly

    summary = sample_monthly()
    codes = OfficialCodes(
        regions={"helsinki": "90"}, municipalities={("hki-etsiva", "kallio"): "091"}
    )
    rendered = render_monthly(replace(summary, codes=codes), "fi")
    assert rendered.csv is not None
    rows = list(csv.reader(io.StringIO(rendered.csv.decode("utf-8-sig")), delimiter=";"))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert body and all(r["region_code"] == "90" for r in body if r["region"] == "helsinki")
    # An area's number belongs to the team's area of that id: another team's "kallio"
    # (hki-nuoret's, without a number in this config) has none.
    ours = [r for r in body if (r["team_id"], r["area"]) == ("hki-etsiva", "kallio")]
    assert ours and all(r["municipality"] == "091" for r in ours)
    others = [r for r in body if (r["team_id"], r["area"]) != ("hki-etsiva", "kallio")]
    assert others and all(r["municipality"] == "" for r in others)
    # Without codes (the default) the columns are there and empty.
    plain = escalations_csv([("this_month", i) for i in summary.escalated_items], "fi")
    rows = list(csv.reader(io.StringIO(plain.decode("utf-8-sig")), delimiter=";"))
    assert {row[CSV_COLUMNS.index("region_code")] for row in rows[1:]} == {""}


def test_the_code_is_printed_beside_the_name() -> None:
    assert with_code("Helsinki", "90") == "Helsinki (90)"
    assert with_code("Kallio", None) == "Kallio"


# --- through the bot: the monthly summary, and the operator's commands -------------------------


async def test_the_monthly_summary_names_the_region_with_its_code(world: World) -> None:
    """The digest desk as the scheduler uses it: the region's name with its code in the
    chat text, and the codes of the config in the attached CSV."""
    from bot.delivery import DigestDesk
    from bot.router import Router
    from digests.render import CSV_COLUMNS
    from tests.conftest import FakeClock

    anna = world.people["anna"]
    await add(
        world,
        "raised_kallio",
        observation(anna, NOW, "helsinki", area="kallio", escalation="escalation.leadership"),
    )
    desk = DigestDesk(world.service.config, world.db, Router(), FakeClock(NOW))
    rendered = await desk.monthly("helsinki", "2026-11", "fi")
    assert "Helsinki (90)" in rendered.text.splitlines()[0], rendered.text.splitlines()[0]
    assert rendered.csv is not None
    rows = list(csv.reader(io.StringIO(rendered.csv.decode("utf-8-sig")), delimiter=";"))
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert body and {r["region_code"] for r in body} == {"90"}
    kallio = [r for r in body if r["observation_id"] == str(world.observations["raised_kallio"])]
    assert [r["municipality"] for r in kallio] == ["091"]
    # A region of the plain-name form: its name alone.
    north = await desk.monthly("pohjanmaa", "2026-11", "sv")
    assert "Pohjanmaa" in north.text.splitlines()[0] and "(" not in north.text.splitlines()[0]
    # The whole organisation's summary sets the regions side by side, each with its code.
    whole = await desk.monthly(None, "2026-11", "fi")
    block = next(b for b in whole.text.split("\n\n") if b.startswith("Alueet rinnakkain"))
    lines = block.splitlines()
    assert any(line.startswith("• Helsinki (90):") for line in lines), block
    assert any(line.startswith("• Pohjanmaa:") for line in lines), block


OPERATOR_CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[terminal]
enabled = "no"

[regions.helsinki]
name = "Helsinki"
code = "90"

[regions]
pohjanmaa = "Pohjanmaa"

[[teams]]
id = "hki-etsiva"
name = "Helsingin etsivät"
region = "helsinki"

[[teams.areas]]
id = "kallio"
name = "Kallio"
municipality = "091"

[[teams.areas]]
id = "itakeskus"
name = "Itäkeskus"

[[teams]]
id = "vaasa-uppsok"
name = "Vasa uppsökande"
region = "pohjanmaa"
language = "sv"
"""


def test_the_operators_export_and_report_carry_the_codes(tmp_path: Path) -> None:
    """``havainto export`` and ``havainto report`` as an operator types them, on a config
    file that mixes the table form and the plain-name form of [regions]."""
    import asyncio

    from typer.testing import CliRunner

    from bot.cli import app

    path = tmp_path / "havainto.toml"
    path.write_text(OPERATOR_CONFIG.format(db=tmp_path / "h.db"), encoding="utf-8")
    config = load_config(path)
    assert config.region_label("helsinki") == "Helsinki (90)"
    assert config.region_label("pohjanmaa") == "Pohjanmaa"

    async def prepare() -> None:
        world = await seed(config, NOW)
        await world.db.close()

    asyncio.run(prepare())
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "-c", str(path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("export", "--format", "csv", "--csv-dialect", "comma")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["region"], r["region_code"]) for r in rows} == {
        ("helsinki", "90"),
        ("pohjanmaa", ""),
    }
    assert {r["municipality"] for r in rows if r["area"] == "kallio"} == {"091"}
    html = tmp_path / "r.html"
    run(
        "report", "--region", "helsinki", "--from", "2026-10-01", "--to", "2026-11-30",
        "--format", "html", "--output", str(html), "--lang", "en",
    )  # fmt: skip
    assert "Helsinki (90)" in html.read_text(encoding="utf-8")
    run(
        "report", "--region", "pohjanmaa", "--from", "2026-10-01", "--to", "2026-11-30",
        "--format", "html", "--output", str(html),
    )  # fmt: skip
    text = html.read_text(encoding="utf-8")
    assert "Pohjanmaa" in text and "Pohjanmaa (" not in text
