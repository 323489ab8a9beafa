"""Charts for the digests: PNG bytes from plain numbers and already-translated labels.

Charts are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas,
never through ``pyplot``: no global figure registry, nothing shared with other
code. The PNG carries no creation software stamp, so the same numbers give the
same bytes.

The weekly chart is drawn for every team every Monday (500 of them), and
matplotlib spends nearly all of a chart's time on text: it lays out and
renders each glyph in Python (~180 ms for a chart's ~330 glyphs). Most of that
text is the same in every chart of a week: the title and the legend (one per
language) and the theme labels (twelve per language, in an order of each
team's own). So the weekly chart is *blitted*, matplotlib's documented fast
path for animation (``copy_from_bbox`` / ``restore_region`` /
``draw_artist``):

* the frame -- white figure, title, legend -- is drawn once per set of texts
  and kept as a pixel region (``frames``, a small LRU);
* each wrapped theme label is drawn once into a tile of one row's height, and
  each number once into a tile of one bar's height (``labels``, ``numbers``,
  LRUs); a chart restores the tiles at its rows' places (``restore_region``
  with ``xy``), the numbers just right of their bars' ends;
* only the bars and the zero line are drawn per chart (``Axes.draw_artist``):
  one path collection and one line, no text layout at all.

All charts of one height class share one canvas (the tallest: ``_CAPACITY``
rows), laid out from the top; a chart with fewer rows is that canvas cropped.
The canvas, its artists and its caches are guarded by one lock, so charts may
be drawn from worker threads. The pixels do not depend on what was drawn
before: a restore overwrites the whole canvas, so the same input gives the same
bytes with cold or warm caches.

The monthly chart (a few per month) is drawn the plain way.
"""

from __future__ import annotations

import io
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

DPI = 100
WIDTH_IN = 8.0
THIS_COLOUR = "#1f5f8b"
AVERAGE_COLOUR = "#a9c6de"
SPREAD_COLOUR = "#d08c2c"
VALUE_COLOUR = "#333333"
_LABEL_WIDTH = 28
_MAX_LABEL_LINES = 2  # a label must fit its row: longer ones end in an ellipsis
# zlib level 1: 3 % larger than level 6 and ~5 ms faster per weekly chart; most of
# Pillow's PNG time is its row filters, which the level does not change.
PNG_COMPRESS_LEVEL = 1


def _wrap(label: str, max_lines: int | None = None) -> str:
    lines = textwrap.wrap(label, _LABEL_WIDTH, max_lines=max_lines, placeholder=" …")
    return "\n".join(lines) or label


def _plain_number(value: float) -> str:
    return f"{value:g}"


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _encode(image: Image.Image) -> bytes:
    """An RGB image as PNG: Pillow writes no software stamp, so the bytes are reproducible."""
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL, dpi=(DPI, DPI))
    return buffer.getvalue()


_TOP_IN = 0.7  # title and legend above the bars
_BOTTOM_IN = 0.4  # the value axis below them
_LEFT = 0.3  # share of the width for theme labels (wrapped at _LABEL_WIDTH characters)


def _figure(rows: int, width: float) -> Figure:
    """A figure with fixed margins: a layout engine would double the drawing time."""
    height = _TOP_IN + _BOTTOM_IN + 0.42 * max(rows, 1)
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=_LEFT * WIDTH_IN / width,
        right=0.97,
        top=1 - _TOP_IN / height,
        bottom=_BOTTOM_IN / height,
        wspace=0.08,
    )
    return figure


def _value_axis(axes: Axes, values: Sequence[float]) -> None:
    """Counts start at zero and are whole numbers; an all-zero chart still gets an axis."""
    axes.set_xlim(0, max(max(values, default=0) * 1.05, 1))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)


def _title(figure: Figure, title: str) -> None:
    height = figure.get_figheight()
    figure.suptitle(title, x=0.01, y=1 - 0.1 / height, ha="left", va="top", fontsize=11)


# --- the weekly chart, blitted -----------------------------------------------------------

# Whole pixels, so that tiles and rows meet exactly.
_WIDTH_PX = round(WIDTH_IN * DPI)  # 800
_ROW_PX = 42  # one theme: two bars and the gap to the next theme
_HEAD_PX = 70  # title and legend
_FOOT_PX = 12  # white below the last row
_LABELS_PX = round(_LEFT * _WIDTH_PX)  # the theme labels' column; the bars start here
_RIGHT_PX = round(0.03 * _WIDTH_PX)
_LABEL_PAD_PX = 8  # between a label and the bars
_CAPACITY = 12  # rows of the shared canvas: every theme of the taxonomy
_BAR = 0.38  # bar height, in rows
_BAR_PX = 16  # the same in pixels (0.38 x 42 = 15.96): the band a bar's number is written in
_NUMBER_PX = 44  # a number tile's width: "1 234,25" at 8 pt
_NUMBER_PAD_PX = 5  # between a bar's end and its number
_FRAMES = 8  # frames kept: a week has one per language
_LABEL_TILES = 64  # theme labels kept: twelve themes in three languages, and room
_NUMBER_TILES = 1024  # numbers kept: counts and quarter averages (3 kB each)


class _Lru:
    """A small least-recently-used map (used under the canvas lock only)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = make()
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


class _TileMaker:
    """Draws a text into a small white tile and keeps it as a pixel region."""

    def __init__(self, width_px: int, height_px: int, x: float, **text: Any) -> None:
        self.figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
        self.canvas: Any = FigureCanvasAgg(self.figure)  # its blitting API is untyped
        self.text = self.figure.text(x, 0.5, "", va="center", **text)

    def __call__(self, content: str) -> Any:
        self.text.set_text(content)
        self.canvas.draw()
        return self.canvas.copy_from_bbox(self.figure.bbox)


class _WeeklyCanvas:
    """One figure for weekly charts of up to ``capacity`` rows, its artists and caches."""

    def __init__(self, capacity: int) -> None:
        self.lock = threading.Lock()
        self.capacity = capacity
        height_px = _HEAD_PX + capacity * _ROW_PX + _FOOT_PX
        self.figure = Figure(figsize=(WIDTH_IN, height_px / DPI), dpi=DPI, facecolor="white")
        self.canvas: Any = FigureCanvasAgg(self.figure)  # its blitting API is untyped
        self.axes_px = _WIDTH_PX - _LABELS_PX - _RIGHT_PX
        self.axes = self.figure.add_axes(
            (
                _LABELS_PX / _WIDTH_PX,
                _FOOT_PX / height_px,
                self.axes_px / _WIDTH_PX,
                capacity * _ROW_PX / height_px,
            )
        )
        self.axes.set_axis_off()
        # Row 0 at the top: y grows downwards, one unit per row.
        self.axes.set_ylim(capacity - 0.5, -0.5)
        # Only these are drawn per chart; ``animated`` keeps them out of the frame.
        self.bars = PolyCollection([], linewidths=0, animated=True)
        self.axes.add_collection(self.bars, autolim=False)
        self.zero = Line2D([0, 0], [-0.5, 0.5], color=VALUE_COLOUR, lw=0.8, animated=True)
        self.axes.add_line(self.zero)
        self.frames = _Lru(_FRAMES)
        self.labels = _Lru(_LABEL_TILES)
        self.numbers = _Lru(_NUMBER_TILES)
        # A label ends _LABEL_PAD_PX left of the bars; a number starts at its tile's edge.
        label_end = (_LABELS_PX - _LABEL_PAD_PX) / _LABELS_PX
        self._label_tile = _TileMaker(_LABELS_PX, _ROW_PX, label_end, ha="right", fontsize=10)
        self._number_tile = _TileMaker(
            _NUMBER_PX, _BAR_PX, 0, ha="left", fontsize=8, color=VALUE_COLOUR
        )

    def _frame(self, texts: tuple[str, str, str]) -> Any:
        """Draw the white figure with its title and legend; its pixels as a region."""
        title, this_week_label, average_label = texts
        self.figure.suptitle(
            title, x=0.01, y=1 - 10 / self.figure.bbox.height, ha="left", va="top", fontsize=11
        )
        self.axes.legend(
            handles=[Patch(color=THIS_COLOUR), Patch(color=AVERAGE_COLOUR)],
            labels=[this_week_label, average_label],
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncols=2,
            frameon=False,
            fontsize=9,
            borderaxespad=0.2,
        )
        self.canvas.draw()
        return self.canvas.copy_from_bbox(self.figure.bbox)

    def draw(
        self,
        labels: list[str],
        this_week: list[int],
        average: list[float],
        texts: tuple[str, str, str],
        number: Callable[[float], str],
    ) -> Image.Image:
        """The chart as an RGB image of its own (cropped to its rows). Call with ``lock`` held."""
        rows = len(labels)
        top = max([*this_week, *average, 0])
        # Room right of the longest bar for its number; an all-zero chart still has a scale.
        scale = max(top, 1) * self.axes_px / (self.axes_px - _NUMBER_PAD_PX - _NUMBER_PX)
        self.axes.set_xlim(0, scale)

        self.canvas.restore_region(self.frames.get(texts, lambda: self._frame(texts)))
        verts = []
        colours = []
        for row, label in enumerate(labels):
            tile = self.labels.get(label, partial(self._label_tile, label))
            row_top = _HEAD_PX + row * _ROW_PX
            self.canvas.restore_region(tile, xy=(0, row_top))
            middle = row_top + _ROW_PX // 2
            for value, band_top, y0, colour in (
                (this_week[row], middle - _BAR_PX, row - _BAR, THIS_COLOUR),
                (average[row], middle, row, AVERAGE_COLOUR),
            ):
                text = number(value)
                tile = self.numbers.get(text, partial(self._number_tile, text))
                end_px = _LABELS_PX + round(value / scale * self.axes_px)
                self.canvas.restore_region(tile, xy=(end_px + _NUMBER_PAD_PX, band_top))
                if value:
                    verts.append([(0, y0), (value, y0), (value, y0 + _BAR), (0, y0 + _BAR)])
                    colours.append(colour)
        self.bars.set_verts(verts)
        self.bars.set_facecolor(colours)
        self.axes.draw_artist(self.bars)
        self.zero.set_ydata([-0.5, max(rows, 1) - 0.5])
        self.axes.draw_artist(self.zero)
        height = _HEAD_PX + max(rows, 1) * _ROW_PX + _FOOT_PX
        rgba = np.asarray(self.canvas.buffer_rgba())[:height]  # the top rows: contiguous
        # A copy without the alpha channel: the canvas is drawn over by the next chart.
        return Image.frombuffer("RGBA", (_WIDTH_PX, height), rgba, "raw", "RGBA", 0, 1).convert(
            "RGB"
        )


_CANVASES: dict[int, _WeeklyCanvas] = {}
_CANVASES_LOCK = threading.Lock()


def _weekly_canvas(rows: int) -> _WeeklyCanvas:
    """The shared canvas for a chart of ``rows`` rows (made on first use)."""
    capacity = max(_CAPACITY, rows)
    with _CANVASES_LOCK:
        canvas = _CANVASES.get(capacity)
        if canvas is None:
            canvas = _CANVASES[capacity] = _WeeklyCanvas(capacity)
        return canvas


def clear_caches() -> None:
    """Forget the drawn frames and labels (tests; a changed font or style)."""
    with _CANVASES_LOCK:
        canvases = list(_CANVASES.values())
    for canvas in canvases:
        with canvas.lock:
            canvas.frames.clear()
            canvas.labels.clear()
            canvas.numbers.clear()


def weekly_themes_chart(
    labels: Sequence[str],
    this_week: Sequence[int],
    average: Sequence[float],
    *,
    title: str,
    this_week_label: str,
    average_label: str,
    number: Callable[[float], str] = _plain_number,
) -> bytes:
    """Horizontal grouped bars: each theme this week against its four-week average.

    Rows top down in the order given; each bar ends in its value, written with
    ``number`` (the digest passes the reader's locale). No value axis: on a phone
    the numbers at the bars are what people read.
    """
    if not (len(labels) == len(this_week) == len(average)):
        raise ValueError("labels and values differ in length")
    rows = len(labels)
    canvas = _weekly_canvas(max(rows, 1))
    with canvas.lock:
        image = canvas.draw(
            [_wrap(label, _MAX_LABEL_LINES) for label in labels],
            list(this_week),
            list(average),
            (title, this_week_label, average_label),
            number,
        )
    return _encode(image)


def monthly_themes_chart(
    labels: Sequence[str],
    counts: Sequence[int],
    teams: Sequence[int],
    *,
    title: str,
    count_label: str,
    teams_label: str,
) -> bytes:
    """Two panels side by side: observations per theme, and how many teams report it."""
    if not (len(labels) == len(counts) == len(teams)):
        raise ValueError("labels and values differ in length")
    rows = len(labels)
    figure = _figure(rows, WIDTH_IN + 1.5)
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    positions = [rows - 1 - i for i in range(rows)]
    left.barh(positions, counts, color=THIS_COLOUR)
    right.barh(positions, teams, color=SPREAD_COLOUR)
    left.set_yticks(positions, [_wrap(label) for label in labels])
    left.set_title(count_label, loc="left", fontsize=10)
    right.set_title(teams_label, loc="left", fontsize=10)
    _value_axis(left, counts)
    _value_axis(right, teams)
    _title(figure, title)
    return _png(figure)
