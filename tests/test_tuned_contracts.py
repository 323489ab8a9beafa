"""Contracts of the tuned modules with the libraries they reach into.

Three modules were kept after the benchmarks showed the stock path missing its
targets (``bench/RESULTS-earlier.md``, "The tuned modules"); each relies on more of a
library than its documented surface, so the library is pinned exactly in
``pyproject.toml`` and tests say what a new release must still do before the pin is
moved: these for two of them, ``tests/test_sqlite_inline.py`` for the third,
``storage/sqlite_inline.py`` (an aiosqlite look-alike handed to SQLAlchemy's dialect).

* ``digests/charts.py`` blits the weekly chart with matplotlib's blitting API
  (``copy_from_bbox``, ``restore_region`` with ``xy``, ``draw_artist``,
  ``buffer_rgba``): its pixels must stay those of the same chart drawn the plain way
  (``barh`` and ``bar_label``, ``bench/stock_paths.py``);
* ``bot/transports/telegram_http.py`` implements PTB's ``BaseRequest`` with PTB's
  private ``DefaultValue``/``ODVInput`` and aiohttp's ``get_env_proxy_for_url``:
  their names, meaning and the ``do_request`` signature must stay.
"""

from __future__ import annotations

import inspect
import io
from importlib.metadata import version

import numpy as np
import pytest
from PIL import Image
from yarl import URL

from bench.stock_paths import plain_weekly_chart
from digests import charts

TEXTS = {"title": "Teemat viikolla 47", "this_week_label": "Viikko 47", "average_label": "Ka."}


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


@pytest.mark.parametrize(
    ("labels", "this_week", "average"),
    [
        (["Asuminen ja asunnottomuus", "Toimeentulo", "Muu teema"], [8, 2, 0], [4.0, 0.0, 1.25]),
        (["Muu teema"], [0], [0.0]),
        (["Sosiaaliset suhteet ja osallisuus"] * 12, list(range(12)), [i / 2 for i in range(12)]),
        ([f"teema {i}" for i in range(14)], [3] * 14, [1.0] * 14),  # past the shared canvas
    ],
)
def test_the_blitted_weekly_chart_is_the_plain_one(
    labels: list[str], this_week: list[int], average: list[float]
) -> None:
    charts.clear_caches()
    blitted = _pixels(charts.weekly_themes_chart(labels, this_week, average, **TEXTS))
    plain = _pixels(plain_weekly_chart(labels, this_week, average, **TEXTS))
    assert blitted.shape == plain.shape
    differs = np.abs(blitted - plain).max(axis=2) > 64
    # Text anti-aliasing and sub-pixel placement differ a little; a tile put in the wrong
    # place, a missing bar or label, or a canvas not restored differ a lot.
    assert differs.mean() < 0.05, differs.mean()
    assert np.abs(blitted - plain).mean() < 8


def test_matplotlib_blitting_api_is_there() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    assert {"copy_from_bbox", "restore_region", "buffer_rgba"} <= set(dir(FigureCanvasAgg))
    assert "xy" in inspect.signature(FigureCanvasAgg.restore_region).parameters
    assert version("matplotlib") == "3.11.2", "moved the pin? run these tests and the benchmark"


def test_ptb_request_internals_telegram_http_uses() -> None:
    from telegram._utils.defaultvalue import DefaultValue
    from telegram._utils.types import ODVInput  # noqa: F401 - the name must exist
    from telegram.request import BaseRequest

    from bot.transports.telegram_http import AiohttpRequest, _value

    # PTB passes DEFAULT_NONE for "not given" and a float for a given timeout.
    assert isinstance(BaseRequest.DEFAULT_NONE, DefaultValue)
    assert _value(BaseRequest.DEFAULT_NONE, 5.0) == 5.0
    assert _value(3.0, 5.0) == 3.0
    assert _value(None, 5.0) is None
    # PTB calls do_request with these arguments, by these names.
    ours = inspect.signature(AiohttpRequest.do_request).parameters
    theirs = inspect.signature(BaseRequest.do_request).parameters
    assert list(ours) == list(theirs)
    assert BaseRequest.__abstractmethods__ <= set(vars(AiohttpRequest))
    assert version("python-telegram-bot") == "22.8", "moved the pin? run these tests"


def test_aiohttp_proxy_lookup_telegram_http_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp.helpers import get_env_proxy_for_url

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    target = URL("https://api.telegram.org/bot123/getMe")
    with pytest.raises(LookupError):
        get_env_proxy_for_url(target)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    proxy, auth = get_env_proxy_for_url(target)
    assert proxy == URL("http://proxy.example:3128") and auth is None
    monkeypatch.setenv("NO_PROXY", "api.telegram.org")
    with pytest.raises(LookupError):
        get_env_proxy_for_url(target)
    assert version("aiohttp") == "3.14.5", "moved the pin? run these tests"
