"""Charts for the digests: PNG bytes from plain numbers and already-translated labels.

Each chart is drawn on its own ``matplotlib.figure.Figure`` with the Agg canvas,
never through ``pyplot``: no global figure registry, nothing left behind
between calls, safe to run in a worker thread. The PNG carries no creation
software stamp, so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
WIDTH_IN = 8.0
THIS_COLOUR = "#1f5f8b"
AVERAGE_COLOUR = "#a9c6de"
SPREAD_COLOUR = "#d08c2c"
_LABEL_WIDTH = 28


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, _LABEL_WIDTH)) or label


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
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


def weekly_themes_chart(
    labels: Sequence[str],
    this_week: Sequence[int],
    average: Sequence[float],
    *,
    title: str,
    this_week_label: str,
    average_label: str,
) -> bytes:
    """Horizontal grouped bars: each theme this week against its four-week average."""
    if not (len(labels) == len(this_week) == len(average)):
        raise ValueError("labels and values differ in length")
    rows = len(labels)
    figure = _figure(rows, WIDTH_IN)
    axes = figure.add_subplot()
    # Top row first: matplotlib counts bar positions from the bottom.
    positions = [rows - 1 - i for i in range(rows)]
    bar = 0.38
    axes.barh(
        [p + bar / 2 for p in positions],
        this_week,
        height=bar,
        color=THIS_COLOUR,
        label=this_week_label,
    )
    axes.barh(
        [p - bar / 2 for p in positions],
        average,
        height=bar,
        color=AVERAGE_COLOUR,
        label=average_label,
    )
    axes.set_yticks(positions, [_wrap(label) for label in labels])
    _value_axis(axes, [*this_week, *average])
    _title(figure, title)
    axes.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=2,
        frameon=False,
        fontsize=9,
        borderaxespad=0.2,
    )
    return _png(figure)


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
