"""What the plot functions share: input checks, the before/after mapping, the dodged interval plot,
and the record of which code drew each figure.

A figure's code hash covers the source of the function that drew it, this module and the style
module: changing one plot function changes that figure's hash only, while a change here or in the
style, which every figure goes through, changes them all.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib import ticker, transforms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figures import style

# Figure -> {"figure_function", "code_sha256"}; weak, so closing a figure forgets it.
_DRAWN_BY: weakref.WeakKeyDictionary[Figure, dict[str, str]] = weakref.WeakKeyDictionary()


@functools.cache
def code_sha256(draw) -> str:
    """sha256 over the source of a plot function, this module and the style module."""
    digest = hashlib.sha256()
    for text in (inspect.getsource(draw), Path(__file__).read_text(), Path(style.__file__).read_text()):
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def drawn_by(figure: Figure) -> dict[str, str]:
    """The plot function that drew a figure and the hash of its code; empty for other figures."""
    return dict(_DRAWN_BY.get(figure, {}))


def figure_function(draw):
    """Draw in the house style and remember which code drew the figure.

    The figure is laid out once inside the style, so ticks and layout created lazily at the first
    draw take the house sizes even when it is shown or saved outside the style.
    """

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with style.house_style():
            figure = draw(*args, **kwargs)
            figure.draw_without_rendering()
        _DRAWN_BY[figure] = {"figure_function": f"{draw.__module__}.{draw.__qualname__}",
                             "code_sha256": code_sha256(draw)}
        return figure

    return wrapper


def new_figure(width, height_mm, **subplots) -> tuple[Figure, np.ndarray]:
    """A figure outside pyplot (no global registry, no double display in notebooks) and its axes."""
    figure = Figure(figsize=style.figure_size(width, height_mm), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(squeeze=False, **subplots)
    return figure, axes


def require(frame: pd.DataFrame, columns: list[str], figure: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{figure}() takes a pandas DataFrame, not {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{figure}(): the frame lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{figure}(): the frame has no rows")


def unique(frame: pd.DataFrame, columns: list[str], figure: str) -> None:
    """One row per mark: a repeated key would draw two marks on one spot, or hide one under the other."""
    repeated = frame[frame.duplicated(columns, keep=False)]
    if not repeated.empty:
        raise ValueError(f"{figure}(): more than one row for the same {columns}: "
                         f"{repeated[columns].drop_duplicates().values.tolist()}")


def in_order(values: pd.Series) -> list:
    """Distinct values in the order they first appear (the display order the caller chose)."""
    return list(dict.fromkeys(values))


def period_keys(frame: pd.DataFrame, figure: str) -> tuple[pd.Series, dict[str, str]]:
    """Each row's period ("before"/"after") and {period: label} in time order.

    Taken from a `period` column when there is one; otherwise the first `period_label` to appear is
    "before", so a frame without `period` must list the earlier period first.
    """
    if "period" in frame.columns:
        unknown = sorted(set(frame["period"]) - set(style.PERIODS))
        if unknown:
            raise ValueError(f"{figure}(): period must be one of {style.PERIODS}, not {unknown}")
        pairs = frame[["period", "period_label"]].drop_duplicates()
        if pairs["period"].duplicated().any():
            raise ValueError(f"{figure}(): a period has more than one period_label: {pairs.values.tolist()}")
        labels = dict(zip(pairs["period"], pairs["period_label"], strict=True))
        return frame["period"], {key: labels[key] for key in style.PERIODS if key in labels}
    labels = in_order(frame["period_label"])
    if len(labels) > len(style.PERIODS):
        raise ValueError(f"{figure}(): more than two period labels without a period column: {labels}")
    keys = dict(zip(labels, style.PERIODS, strict=False))
    return frame["period_label"].map(keys), {key: label for label, key in keys.items()}


def beside_axes(ax, points: float):
    """x in points to the right of the axes, y in data units: for columns of numbers beside rows."""
    blended = transforms.blended_transform_factory(ax.transAxes, ax.transData)
    return transforms.offset_copy(blended, fig=ax.get_figure(), x=points, units="points")


def percent_intervals(ax, frame: pd.DataFrame, category: str, keys: pd.Series, periods: dict[str, str],
                      count_header: str, wrap: int = 22) -> list[str]:
    """One row per category, before above after, each a point with its 95% interval in percent,
    and the count ("events/n") printed beside the axes on the point's own line.

    Category labels longer than `wrap` characters are wrapped. Returns the categories in display order.
    """
    categories = in_order(frame[category])
    row = {name: i for i, name in enumerate(categories)}
    dodge = {"before": -0.19, "after": 0.19} if len(periods) == 2 else {key: 0.0 for key in periods}
    column = beside_axes(ax, 6)
    for key, label in periods.items():
        part = frame[keys == key]
        y = part[category].map(row).to_numpy(float) + dodge[key]
        x = 100 * part["estimate"].to_numpy(float)
        low = 100 * part["conf_low"].to_numpy(float)
        high = 100 * part["conf_high"].to_numpy(float)
        # Rounding can leave an estimate a hair outside its interval; errorbar refuses negative lengths.
        xerr = np.vstack([np.clip(x - low, 0, None), np.clip(high - x, 0, None)])
        ax.errorbar(x, y, xerr=xerr, fmt=style.PERIOD_MARKERS[key], color=style.PERIOD_COLOURS[key],
                    markeredgecolor="white", markeredgewidth=0.5, elinewidth=1.1, label=label,
                    clip_on=False, zorder=3)
        for y_row, events, n in zip(y, part["events"], part["n"], strict=True):
            ax.text(1, y_row, f"{int(events)}/{int(n)}", transform=column, ha="left", va="center",
                    fontsize=style.TICK_PT)
    ax.text(1, -0.5, count_header, transform=column, ha="left", va="bottom", fontsize=style.TICK_PT,
            color=style.MUTED)
    ax.set_yticks(range(len(categories)), [textwrap.fill(str(c), wrap) for c in categories])
    ax.set_ylim(len(categories) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 20))
    ax.grid(axis="x")
    # Points at 0% would sit on the axis line; moving the line out keeps them visible.
    ax.spines["left"].set_position(("outward", 4))
    return categories


def period_legend(figure: Figure, ax, **options) -> None:
    """The before/after legend above the panels, in the order the periods were drawn."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=2, **options)


def series_periods(frame: pd.DataFrame, period_labels: dict[str, str] | None, figure: str) -> dict[str, str]:
    """The legend names of the periods of a monthly series, after checking its `period` codes: from
    `period_labels`, else a `period_label` column, else "Before" and "After"."""
    unknown = sorted(set(frame["period"]) - set(style.PERIODS))
    if unknown:
        raise ValueError(f"{figure}(): period must be one of {style.PERIODS}, not {unknown}")
    if period_labels is None and "period_label" in frame.columns:
        period_labels = dict(zip(frame["period"], frame["period_label"], strict=True))
    return {"before": "Before", "after": "After", **(period_labels or {})}


def monthly_points(ax, x, proportions: pd.Series, key: str, label: str) -> None:
    """One period's observed monthly proportions, in percent, in the period's colour and marker."""
    ax.plot(x, 100 * proportions, linestyle="none", marker=style.PERIOD_MARKERS[key],
            color=style.PERIOD_COLOURS[key], markeredgecolor="white", markeredgewidth=0.4,
            markersize=4.2, clip_on=False, zorder=4, label=label)


def finish_monthly_panels(figure: Figure, axes: np.ndarray, *, change, change_label: str, xlabel: str,
                          months: tuple[int, ...], periods: dict[str, str], lines: list[str], ncols: int) -> None:
    """What the panels of a monthly series share: a letter per panel when there are several, the change
    named above the first, month ticks on the last, and one legend entry per kind of mark, in reading order
    (the periods, then `lines`)."""
    panels = axes[:, 0]
    if len(panels) > 1:
        for index, ax in enumerate(panels):
            ax.set_title(chr(ord("A") + index), fontweight="bold", loc="left")
    top, bottom = panels[0], panels[-1]
    top.annotate(change_label, (change, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                 textcoords="offset points", ha="center", va="bottom", fontsize=style.TICK_PT)
    locator = mdates.MonthLocator(bymonth=months)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    bottom.set_xlabel(xlabel)
    found = {}
    for ax in panels:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            found.setdefault(label, handle)
    order = [periods[k] for k in style.PERIODS if periods[k] in found] + [line for line in lines if line in found]
    figure.legend([found[k] for k in order], order, loc="outside upper center", ncols=ncols)


def percent_axis(ax, values: np.ndarray) -> None:
    """A percent axis from 0 to a little above the highest value (at most 100), so that a rate of 2% is not
    squashed against a 0-100 axis; it always starts at 0, so that the height of a point reads as its size."""
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    top = min(100.0, 100 * float(finite.max()) * 1.15) if finite.size and finite.max() > 0 else 1.0
    ax.set_ylim(0, top)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
