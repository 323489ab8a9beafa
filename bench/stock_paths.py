"""The stock paths the three tuned modules replace, for measuring them side by side.

``bench.capture_load`` runs the ``havainto`` variant on these when asked
(``stock``, ``stock-db``, ``stock-http``, ``stock-charts``) by swapping them in
inside the bot process before it starts:

* **database**: SQLAlchemy's ``sqlite+aiosqlite`` dialect for every unit of work
  (statements on aiosqlite's thread, SQLite's busy timeout), instead of
  ``storage.sqlite_inline``'s statements on the event loop's thread;
* **HTTP**: PTB's own ``HTTPXRequest`` (same pool size and timeouts, and the same
  "the Bot API answered" note for ``/healthz``) instead of
  ``bot.transports.telegram_http.AiohttpRequest``;
* **charts**: the weekly chart drawn the plain way, one matplotlib figure with
  ``barh`` and ``bar_label`` per chart (same layout, numbers at the bar ends),
  instead of the blitted tiles of ``digests.charts``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from telegram.request import BaseRequest, HTTPXRequest, RequestData


class StockRequest(HTTPXRequest):
    """PTB's httpx request, noting each answer below 500 like ``AiohttpRequest`` does."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 16,
        read_timeout: float | None = 10.0,
        write_timeout: float | None = 20.0,
        connect_timeout: float | None = 10.0,
        pool_timeout: float | None = 10.0,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            connection_pool_size=connection_pool_size,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        self._on_answer = on_answer

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        status, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        if status < 500 and self._on_answer is not None:
            self._on_answer()
        return status, payload


def plain_weekly_chart(
    labels: Sequence[str],
    this_week: Sequence[int],
    average: Sequence[float],
    *,
    title: str,
    this_week_label: str,
    average_label: str,
    number: Callable[[float], str] | None = None,
) -> bytes:
    """The weekly chart of ``digests.charts``, drawn the plain way (same pixel layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from digests import charts as c

    if not (len(labels) == len(this_week) == len(average)):
        raise ValueError("labels and values differ in length")
    show = number or c._plain_number
    rows = max(len(labels), 1)
    height_px = c._HEAD_PX + rows * c._ROW_PX + c._FOOT_PX
    figure = Figure(figsize=(c.WIDTH_IN, height_px / c.DPI), dpi=c.DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    axes_px = c._WIDTH_PX - c._LABELS_PX - c._RIGHT_PX
    axes = figure.add_axes(
        (
            c._LABELS_PX / c._WIDTH_PX,
            c._FOOT_PX / height_px,
            axes_px / c._WIDTH_PX,
            rows * c._ROW_PX / height_px,
        )
    )
    top = max([*this_week, *average, 0])
    scale = max(top, 1) * axes_px / (axes_px - c._NUMBER_PAD_PX - c._NUMBER_PX)
    axes.set_xlim(0, scale)
    axes.set_ylim(rows - 0.5, -0.5)  # row 0 at the top
    positions = list(range(len(labels)))
    points = 72 / c.DPI
    for values, offset, colour in (
        (this_week, -c._BAR / 2, c.THIS_COLOUR),
        (average, c._BAR / 2, c.AVERAGE_COLOUR),
    ):
        bars = axes.barh(
            [p + offset for p in positions], values, height=c._BAR, color=colour, linewidth=0
        )
        axes.bar_label(
            bars,
            labels=[show(v) for v in values],
            padding=c._NUMBER_PAD_PX * points,
            fontsize=8,
            color=c.VALUE_COLOUR,
        )
    axes.axvline(0, color=c.VALUE_COLOUR, lw=0.8)
    axes.set_yticks(positions, [c._wrap(label, c._MAX_LABEL_LINES) for label in labels])
    axes.tick_params(axis="y", length=0, pad=c._LABEL_PAD_PX * points, labelsize=10)
    axes.xaxis.set_visible(False)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_facecolor("white")
    figure.suptitle(title, x=0.01, y=1 - 10 / height_px, ha="left", va="top", fontsize=11)
    from matplotlib.patches import Patch

    axes.legend(
        handles=[Patch(color=c.THIS_COLOUR), Patch(color=c.AVERAGE_COLOUR)],
        labels=[this_week_label, average_label],
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=2,
        frameon=False,
        fontsize=9,
        borderaxespad=0.2,
    )
    canvas.draw()
    image = Image.frombuffer(
        "RGBA", (c._WIDTH_PX, height_px), bytes(canvas.buffer_rgba()), "raw", "RGBA", 0, 1
    ).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=c.PNG_COMPRESS_LEVEL, dpi=(c.DPI, c.DPI))
    return buffer.getvalue()


def install(db: str, http: str, charts: str) -> None:
    """Swap the stock paths in (call in the bot process before anything is built)."""
    if db == "aiosqlite":
        import storage.db

        tuned = storage.db.create_engine

        def stock_engine(url: str, *, read_only: bool = False, threaded: bool = False) -> Any:
            # Every SQLite engine on aiosqlite's thread, as the dialect ships.
            return tuned(url, read_only=read_only, threaded=not read_only)

        storage.db.create_engine = stock_engine  # type: ignore[assignment]
    if http == "httpx":
        import bot.transports.telegram

        bot.transports.telegram.AiohttpRequest = StockRequest  # type: ignore[misc,assignment]
    if charts == "plain":
        import bot.delivery

        # Digests render in a process of their own: the swap is made there when it starts.
        bot.delivery._warm_renderer = warm_plain_charts  # type: ignore[attr-defined]


def warm_plain_charts() -> None:
    """The rendering process's initializer for the plain charts."""
    import digests.charts
    import digests.render

    digests.charts.weekly_themes_chart = plain_weekly_chart  # type: ignore[assignment]
