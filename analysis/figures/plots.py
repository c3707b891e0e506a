"""The study's figures: tidy frames in, a matplotlib Figure out.

Each function draws at the printed size (84 mm single column or 174 mm double column) in the house
style and knows nothing of files, notebooks or studies; `analysis.figures.save` writes the files.
Proportions are given as fractions (0-1) and drawn as percentages.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib import ticker, transforms
from matplotlib.lines import Line2D

from analysis.figures import style
from analysis.figures._draw import (
    beside_axes,
    figure_function,
    finish_monthly_panels,
    in_order,
    monthly_points,
    new_figure,
    percent_intervals,
    period_keys,
    period_legend,
    require,
    series_periods,
    unique,
)


@figure_function
def proportions(frame: pd.DataFrame, *, width="single", height_mm: float | None = None,
                xlabel: str = "Patients or suggestions (%)"):
    """Before and after proportions with 95% intervals, one row per binary outcome.

    frame columns: `outcome` (label, rows in display order), `period` ("before"/"after"),
    `period_label`, `estimate`, `conf_low`, `conf_high` (fractions 0-1), `events`, `n`.
    The count ("49/121") is printed beside each point, on its line.
    """
    require(frame, ["outcome", "period", "period_label", "estimate", "conf_low", "conf_high", "events", "n"],
            "proportions")
    keys, periods = period_keys(frame, "proportions")
    unique(frame, ["outcome", "period"], "proportions")
    rows = frame["outcome"].nunique()
    figure, axes = new_figure(width, height_mm or 26 + 11 * rows)
    ax = axes[0, 0]
    percent_intervals(ax, frame, "outcome", keys, periods, count_header="n/N")
    ax.set_xlabel(xlabel)
    period_legend(figure, ax)
    return figure


@figure_function
def acceptance_by_team(frame: pd.DataFrame, *, width="single", height_mm: float | None = None,
                       xlabel: str = "Suggestions accepted (%)", count_header: str = "accepted/n"):
    """Acceptance of the pharmacists' suggestions by team, before and after, with 95% intervals.

    frame columns: `team` (rows in display order), `period_label` (the earlier period first, or give
    a `period` column), `accepted`, `n`, `estimate`, `conf_low`, `conf_high` (fractions 0-1).
    A team seen in one period only has one point.
    """
    require(frame, ["team", "period_label", "accepted", "n", "estimate", "conf_low", "conf_high"],
            "acceptance_by_team")
    keys, periods = period_keys(frame, "acceptance_by_team")
    unique(frame, ["team", "period_label"], "acceptance_by_team")
    rows = frame["team"].nunique()
    figure, axes = new_figure(width, height_mm or 24 + 9 * rows)
    ax = axes[0, 0]
    percent_intervals(ax, frame.rename(columns={"accepted": "events"}), "team", keys, periods,
                      count_header=count_header)
    ax.set_xlabel(xlabel)
    period_legend(figure, ax)
    return figure


@figure_function
def forest(frame: pd.DataFrame, *, width="double", height_mm: float | None = None,
           xlabel: str = "Odds ratio, after vs before (log scale)",
           directions: tuple[str, str] = ("Lower odds after", "Higher odds after"),
           ours_label: str = "This analysis", published_label: str = "Published"):
    """Odds ratios with 95% CI on a log scale, ours beside the published ones, one panel per outcome.

    frame columns: `outcome` (label; panels in order of appearance), `analysis` (label; rows in order
    of appearance), `estimate`, `conf_low`, `conf_high`, `published_estimate`, `published_low`,
    `published_high` (NaN where nothing was published). The numbers are printed at the right, each on
    its marker's line; `directions` label the two sides of OR = 1; `ours_label` and `published_label`
    name the two markers in the legend.
    """
    def odds_ratio_text(estimate, low, high) -> str:
        if not (np.isfinite(estimate) and estimate > 0):
            return "not estimable"
        return f"{estimate:.2f} ({low:.2f} to {high:.2f})"

    def line_style(mark: dict) -> dict:
        return {k: v for k, v in mark.items() if k != "fmt"}

    columns = ["outcome", "analysis", "estimate", "conf_low", "conf_high",
               "published_estimate", "published_low", "published_high"]
    require(frame, columns, "forest")
    unique(frame, ["outcome", "analysis"], "forest")
    outcomes = in_order(frame["outcome"])
    groups = [frame[frame["outcome"] == outcome] for outcome in outcomes]
    sizes = [group["analysis"].nunique() for group in groups]
    figure, axes = new_figure(width, height_mm or 26 + 9 * sum(sizes) + 6 * len(outcomes),
                              nrows=len(outcomes), sharex=True, gridspec_kw={"height_ratios": sizes})

    positive = frame[["estimate", "conf_low", "conf_high", "published_estimate", "published_low",
                      "published_high"]].to_numpy(float).ravel()
    positive = positive[np.isfinite(positive) & (positive > 0)]
    # Always reach past OR = 1, so the reference line and "higher odds" side are on the page.
    low, high = min(positive.min(), 1.0), max(positive.max(), 2.0)
    steps = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
    # the ticks enclose every interval: from the last step at or below the lowest limit to the first above the highest
    first = max([t for t in steps if t <= low], default=steps[0])
    last = min([t for t in steps if t >= high], default=steps[-1])
    ticks = [t for t in steps if first <= t <= last]
    left, right = ticks[0] / 1.15, ticks[-1] * 1.15

    marks = {
        "ours": dict(fmt="o", color=style.OURS_COLOUR, markersize=4.5, markeredgecolor=style.OURS_COLOUR),
        "published": dict(fmt="D", color=style.PUBLISHED_COLOUR, markersize=4.0, markerfacecolor="white",
                          markeredgewidth=1.0),
    }
    numbers = {"ours": style.INK, "published": style.PUBLISHED_TEXT}
    for ax, outcome, group in zip(axes[:, 0], outcomes, groups, strict=True):
        analyses = in_order(group["analysis"])
        for i, (_, row) in enumerate(group.iterrows()):
            has_published = np.isfinite(row["published_estimate"])
            dodge = {"ours": -0.17 if has_published else 0.0, "published": 0.17}
            sources = {"ours": ("estimate", "conf_low", "conf_high")}
            if has_published:
                sources["published"] = ("published_estimate", "published_low", "published_high")
            for source, (est, lo, hi) in sources.items():
                y = i + dodge[source]
                estimate, ci_low, ci_high = (float(row[est]), float(row[lo]), float(row[hi]))
                if np.isfinite(estimate) and estimate > 0:
                    # An open-ended interval (0 or infinity) runs to the edge of the axis.
                    ends = np.clip([ci_low, ci_high], left, right)
                    ax.errorbar([estimate], [y], xerr=[[max(estimate - ends[0], 0)], [max(ends[1] - estimate, 0)]],
                                elinewidth=1.0, zorder=3, **marks[source])
                ax.text(1, y, odds_ratio_text(estimate, ci_low, ci_high), transform=beside_axes(ax, 8),
                        ha="left", va="center", fontsize=style.TICK_PT, color=numbers[source])
        ax.axvline(1.0, color=style.REFERENCE_LINE, linewidth=0.7, zorder=1)
        ax.set_yticks(range(len(analyses)), analyses)
        ax.set_ylim(len(analyses) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.set_title(outcome, fontsize=style.LABEL_PT, fontweight="bold")
        ax.grid(axis="x")

    bottom = axes[-1, 0]
    bottom.set_xscale("log")
    bottom.set_xlim(left, right)
    bottom.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    bottom.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.xaxis.set_minor_locator(ticker.NullLocator())
    bottom.set_xlabel(xlabel)

    top = axes[0, 0]
    top.text(1, 1.0, "OR (95% CI)", ha="left", va="bottom", fontsize=style.TICK_PT, color=style.MUTED,
             transform=transforms.offset_copy(top.transAxes, fig=figure, x=8, y=2, units="points"))
    # The two sides of OR = 1 are named under the tick labels, above the axis label.
    left, right = directions
    for text, shift, align in ((f"\u2190 {left}", -4, "right"), (f"{right} \u2192", 4, "left")):
        bottom.annotate(text, (1.0, 0.0), xycoords=("data", "axes fraction"), xytext=(shift, -14),
                        textcoords="offset points", ha=align, va="top", fontsize=style.TICK_PT,
                        color=style.MUTED)
    bottom.xaxis.labelpad = 14

    legend = [Line2D([], [], linestyle="-", marker="o", **line_style(marks["ours"]), label=ours_label)]
    if np.isfinite(frame["published_estimate"].to_numpy(float)).any():
        legend.append(Line2D([], [], linestyle="-", marker="D", **line_style(marks["published"]),
                             label=published_label))
    figure.legend(handles=legend, loc="outside upper center", ncols=len(legend))
    return figure


@figure_function
def harm_severity(frame: pd.DataFrame, *, width="single", height_mm: float | None = None,
                  severities: tuple[str, ...] | None = None, xlabel: str = "Patients (%)",
                  legend_title: str = "Potential harm"):
    """Potential harm severity by period as 100% stacked bars, with the number of patients per bar.

    frame columns: `period_label` (the earlier period first, or give a `period` column), `severity`,
    `count`. Severity order: `severities` if given, else the categories of an ordered categorical
    `severity`, else none < minor < moderate < severe. Shares wide enough to hold their number are
    labelled in percent.
    """
    require(frame, ["period_label", "severity", "count"], "harm_severity")
    keys, periods = period_keys(frame, "harm_severity")
    if severities is None:
        dtype = frame["severity"].dtype
        ordered = isinstance(dtype, pd.CategoricalDtype) and dtype.ordered
        severities = tuple(dtype.categories) if ordered else ("none", "minor", "moderate", "severe")
    unknown = sorted(set(frame["severity"].astype(str)) - set(map(str, severities)))
    if unknown:
        raise ValueError(f"harm_severity(): severity {unknown} is not one of {list(severities)}")
    counts = (frame.assign(period=keys.to_numpy(), severity=frame["severity"].astype(str))
              .groupby(["period", "severity"])["count"].sum())
    colours = style.sequential(len(severities))
    figure, axes = new_figure(width, height_mm or 24 + 14 * len(periods))
    ax = axes[0, 0]
    figure.draw_without_rendering()  # fixes the layout, so segment widths can be measured in points
    points_per_percent = ax.get_window_extent().width / 100 * 72 / figure.dpi
    tick_labels = []
    for row, (key, label) in enumerate(periods.items()):
        share = np.array([counts.get((key, str(s)), 0) for s in severities], float)
        total = share.sum()
        share = 100 * share / total
        left = np.concatenate([[0], np.cumsum(share)[:-1]])
        for severity, colour, start, size in zip(severities, colours, left, share, strict=True):
            ax.barh(row, size, left=start, height=0.62, color=colour, edgecolor=style.INK, linewidth=0.4,
                    label=str(severity).capitalize() if row == 0 else None)
            text = f"{size:.0f}"
            # Label only segments that hold the number with a margin: about 4.3 pt per digit at 7 pt.
            if size > 0 and size * points_per_percent >= 4.3 * len(text) + 4:
                ax.text(start + size / 2, row, text, ha="center", va="center", fontsize=style.TICK_PT,
                        color=style.text_colour_on(colour))
        tick_labels.append(f"{label}\n(n = {int(total)})")
    ax.set_yticks(range(len(periods)), tick_labels)
    ax.set_ylim(len(periods) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlim(0, 100)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel(xlabel)
    ax.spines["left"].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=len(severities), title=legend_title,
                  handlelength=1.2, handleheight=1.0)
    return figure


@figure_function
def mai_change(frame: pd.DataFrame, *, width="single", height_mm: float | None = None,
               ylabel: str = "Change in MAI (points)",
               worse: str = "(higher = less appropriate)"):
    """Change in the Medication Appropriateness Index by period, every patient shown over a box plot.

    frame columns: `period_label` (the earlier period first, or give a `period` column), `timepoint`
    (groups in order of appearance, e.g. "pre-admission to admission"), `change` (one row per patient).
    Patients with the same value are set side by side (no random jitter, so nothing to seed); the box
    shows median, quartiles and whiskers to 1.5 IQR. `worse` says which direction is worse.
    """
    require(frame, ["period_label", "timepoint", "change"], "mai_change")
    keys, periods = period_keys(frame, "mai_change")
    timepoints = in_order(frame["timepoint"])

    def side_by_side(values: np.ndarray, room: float, step: float) -> np.ndarray:
        offsets = np.zeros(len(values))
        for value in np.unique(values):
            where = np.flatnonzero(values == value)
            spacing = step if len(where) < 2 else min(step, room / (len(where) - 1))
            offsets[where] = (np.arange(len(where)) - (len(where) - 1) / 2) * spacing
        return offsets

    figure, axes = new_figure(width, height_mm or 72)
    ax = axes[0, 0]
    dodge = {"before": -0.21, "after": 0.21} if len(periods) == 2 else {key: 0.0 for key in periods}
    positions, counts = [], []
    for group, timepoint in enumerate(timepoints):
        for key, label in periods.items():
            values = frame.loc[(frame["timepoint"] == timepoint) & (keys == key), "change"].to_numpy(float)
            if len(values) == 0:
                continue
            x = group + dodge[key]
            colour = style.PERIOD_COLOURS[key]
            ax.scatter(x + side_by_side(values, room=0.3, step=0.035), values, s=7,
                       marker=style.PERIOD_MARKERS[key], color=colour, alpha=0.85, linewidths=0,
                       label=label if group == 0 else None, zorder=2)
            ax.boxplot([values], positions=[x], widths=0.34, capwidths=0.14, orientation="vertical",
                       showfliers=False,
                       manage_ticks=False, zorder=3,
                       boxprops={"color": style.INK, "linewidth": 0.8},
                       whiskerprops={"color": style.INK, "linewidth": 0.8},
                       capprops={"color": style.INK, "linewidth": 0.8},
                       medianprops={"color": style.INK, "linewidth": 1.8})
            positions.append(x)
            counts.append(f"n = {len(values)}")
    ax.axhline(0, color=style.REFERENCE_LINE, linewidth=0.7, zorder=1)
    ax.set_xticks(positions, counts)
    ax.tick_params(axis="x", length=0)
    groups = ax.secondary_xaxis("bottom")
    groups.set_xticks(range(len(timepoints)), [textwrap.fill(t[:1].upper() + t[1:], 18) for t in timepoints])
    groups.tick_params(axis="x", length=0, pad=13, labelsize=style.LABEL_PT)
    groups.spines["bottom"].set_visible(False)
    ax.set_xlim(-0.5, len(timepoints) - 0.5)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True, nbins=8))
    ax.grid(axis="y")
    ax.set_ylabel(f"{ylabel}\n{worse}")
    period_legend(figure, ax, markerscale=1.6)
    return figure


@figure_function
def monthly(frame: pd.DataFrame, *, change, change_label: str = "Change of service", width="double",
            height_mm: float | None = None, xlabel: str = "Month of admission",
            period_labels: dict[str, str] | None = None):
    """Monthly proportions with the segmented-regression fit and p-chart limits, one panel per measure.

    frame columns: `measure` (label; panels top to bottom in order of appearance), `month`
    (datetime, first of month), `period` ("before"/"after"), `events`, `n`, `proportion`, `fitted`,
    `centre`, `lcl`, `ucl` (fractions 0-1; p-chart centre and 3-sigma limits per month and period).
    `change`: the date of the change of service, marked by a vertical line. Legend names for the
    periods come from `period_labels`, else a `period_label` column, else "Before" and "After".
    """
    columns = ["measure", "month", "period", "events", "n", "proportion", "fitted", "centre", "lcl", "ucl"]
    require(frame, columns, "monthly")
    unique(frame, ["measure", "month"], "monthly")
    labels = series_periods(frame, period_labels, "monthly")
    measures = in_order(frame["measure"])
    change = np.datetime64(pd.Timestamp(change), "D")

    figure, axes = new_figure(width, height_mm or 28 + 42 * len(measures), nrows=len(measures), sharex=True)
    for ax, measure in zip(axes[:, 0], measures, strict=True):
        part = frame[frame["measure"] == measure]
        for key in style.PERIODS:
            months = part[part["period"] == key].sort_values("month")
            if months.empty:
                continue
            x = months["month"].to_numpy("datetime64[D]")
            # Limits vary with each month's n: steps centred on the month show that honestly.
            for limit in ("lcl", "ucl"):
                ax.plot(x, 100 * months[limit], drawstyle="steps-mid", color=style.MUTED, linewidth=0.8,
                        linestyle=(0, (1, 1.2)), label="3-sigma control limits")
            ax.plot(x, 100 * months["centre"], drawstyle="steps-mid", color=style.MUTED, linewidth=0.8,
                    linestyle=(0, (4, 2)), label="p-chart centre line")
            ax.plot(x, 100 * months["fitted"], color=style.INK, linewidth=1.3, label="Segmented regression")
            monthly_points(ax, x, months["proportion"], key, labels[key])
        ax.axvline(change, color=style.REFERENCE_LINE, linewidth=0.8, linestyle=(0, (5, 2)), zorder=1)
        ax.set_ylim(0, 100)
        ax.set_yticks(range(0, 101, 25))
        ax.grid(axis="y")
        ax.set_ylabel(f"{measure} (%)")
    finish_monthly_panels(figure, axes, change=change, change_label=change_label, xlabel=xlabel,
                          months=(1, 4, 7, 10), periods=labels,
                          lines=["Segmented regression", "p-chart centre line", "3-sigma control limits"], ncols=3)
    return figure


@figure_function
def its(frame: pd.DataFrame, *, change, change_label: str = "Change", width="double",
        height_mm: float | None = None, xlabel: str = "Month", period_labels: dict[str, str] | None = None):
    """An interrupted time series: observed monthly proportions, the fitted segments before and after the
    change, and the counterfactual after it (the pre-change trend continued, dashed); one panel per outcome.

    frame columns: `measure` (label; panels top to bottom in order of appearance), `month` (datetime, first
    of month), `period` ("before"/"after": before the change point or from it on), `observed`, `fitted`,
    `counterfactual` (fractions 0-1; the counterfactual is drawn from the change on only).
    `change`: the change point's date, marked by a vertical line. Legend names for the periods come from
    `period_labels`, else a `period_label` column, else "Before" and "After".
    """
    require(frame, ["measure", "month", "period", "observed", "fitted", "counterfactual"], "its")
    unique(frame, ["measure", "month"], "its")
    labels = series_periods(frame, period_labels, "its")
    fit_label, counter_label = "Fitted (segmented regression)", "Counterfactual: trend before the change continued"
    measures = in_order(frame["measure"])
    change = np.datetime64(pd.Timestamp(change), "D")

    figure, axes = new_figure(width, height_mm or 28 + 42 * len(measures), nrows=len(measures), sharex=True)
    for ax, measure in zip(axes[:, 0], measures, strict=True):
        part = frame[frame["measure"] == measure].sort_values("month")
        top = 100 * float(np.nanmax(part[["observed", "fitted", "counterfactual"]].to_numpy(float)))
        for key in style.PERIODS:
            months = part[part["period"] == key]
            if months.empty:
                continue
            x = months["month"].to_numpy("datetime64[D]")
            if key == "after":
                ax.plot(x, 100 * months["counterfactual"], color=style.INK, linewidth=1.1,
                        linestyle=(0, (4, 2)), label=counter_label)
            ax.plot(x, 100 * months["fitted"], color=style.INK, linewidth=1.3, label=fit_label)
            monthly_points(ax, x, months["observed"], key, labels[key])
        ax.axvline(change, color=style.REFERENCE_LINE, linewidth=0.8, linestyle=(0, (5, 2)), zorder=1)
        ax.set_ylim(0, top * 1.15 if top > 0 else 1)
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
        ax.grid(axis="y")
        ax.set_ylabel(f"{measure} (%)")
    finish_monthly_panels(figure, axes, change=change, change_label=change_label, xlabel=xlabel, months=(1, 7),
                          periods=labels, lines=[fit_label, counter_label], ncols=2)
    return figure
