"""The study's figures: tidy frames in, a matplotlib Figure out.

Each function draws at the printed size (84 mm single column or 174 mm double column) in the house
style and knows nothing of files, notebooks or studies; `analysis.figures.save` writes the files.
Proportions are given as fractions (0-1) and drawn as percentages.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib import cbook, ticker, transforms
from matplotlib.lines import Line2D

from analysis.figures import style
from analysis.figures._draw import (
    beside_axes,
    figure_function,
    finish_monthly_panels,
    in_order,
    monthly_points,
    new_figure,
    percent_axis,
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
                  legend_title: str = "Potential harm", warning: bool = True):
    """Potential harm severity by period as 100% stacked bars, with the number of patients per bar.

    frame columns: `period_label` (the earlier period first, or give a `period` column), `severity`,
    `count`. Severity order: `severities` if given, else the categories of an ordered categorical
    `severity`, else none < minor < moderate < severe. Shares wide enough to hold their number are
    labelled in percent. `warning`: yellow-to-red levels, for a scale whose later levels are worse (harm);
    otherwise blues (`style.sequential`).
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
    colours = style.sequential(len(severities), warning)
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
               worse: str = "(higher = less appropriate)", points: bool = True, smallest: int = 0,
               marker: str = "*"):
    """Change in the Medication Appropriateness Index by period, every patient shown over a box plot.

    frame columns: `period_label` (the earlier period first, or give a `period` column), `timepoint`
    (groups in order of appearance, e.g. "pre-admission to admission"), `change` (one row per patient).
    Patients with the same value are set side by side (no random jitter, so nothing to seed); the box
    shows median, quartiles and whiskers to 1.5 IQR. `worse` says which direction is worse.

    Under disclosure control (`points=False`) no patient is drawn: the whiskers run from the 10th to the
    90th percentile (a whisker at 1.5 IQR ends on one patient's value), and a group of fewer than `smallest`
    patients is not drawn, its n shown as `marker`.
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
            shown = values if points else values[:0]  # the empty scatter still labels the period's legend
            ax.scatter(x + side_by_side(shown, room=0.3, step=0.035), shown, s=7,
                       marker=style.PERIOD_MARKERS[key], color=colour, alpha=0.85, linewidths=0,
                       label=label if group == 0 else None, zorder=2)
            positions.append(x)
            if len(values) < smallest:
                counts.append(f"n = {marker}")
                continue
            box = {"positions": [x], "widths": 0.34, "capwidths": 0.14, "orientation": "vertical",
                   "showfliers": False, "manage_ticks": False, "zorder": 3,
                   "boxprops": {"color": style.INK, "linewidth": 0.8},
                   "whiskerprops": {"color": style.INK, "linewidth": 0.8},
                   "capprops": {"color": style.INK, "linewidth": 0.8},
                   "medianprops": {"color": style.INK, "linewidth": 1.8}}
            if points:
                ax.boxplot([values], **box)
            else:
                # matplotlib ends a whisker on the last patient inside its range: here, on the percentile itself
                stats = cbook.boxplot_stats(values)[0]
                stats.update(whislo=np.percentile(values, 10), whishi=np.percentile(values, 90))
                ax.bxp([stats], **box)
            counts.append(f"n = {len(values)}")
    if frame["change"].min() <= 0 <= frame["change"].max():
        # a reference where the values reach it: no change for a change score; a scale from 15 to 85 would
        # have its axis stretched to a zero nobody has
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
    `centre`, `lcl`, `ucl` (fractions 0-1; p-chart centre and 3-sigma limits per month and period). The
    percent axis runs from 0 to a little above the highest point or limit, so that low rates are not squashed.
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
        percent_axis(ax, part[["proportion", "fitted", "centre", "ucl"]].to_numpy(float))
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
    `counterfactual` (fractions 0-1; the counterfactual is drawn from the change on only). An optional
    `series` column ("intervention" or "control") adds a control series, drawn in grey (open circles and its
    fit); the intervention series' counterfactual then carries the control's change. `change`: the change
    point's date, marked by a vertical line. Legend names for the periods come from `period_labels`, else a
    `period_label` column, else "Before" and "After". The percent axis runs from 0 to a little above the
    highest value.
    """
    require(frame, ["measure", "month", "period", "observed", "fitted", "counterfactual"], "its")
    if "series" not in frame.columns:
        frame = frame.assign(series="intervention")
    unknown = sorted(set(frame["series"]) - {"intervention", "control"})
    if unknown:
        raise ValueError(f"its(): series must be 'intervention' or 'control', not {unknown}")
    unique(frame, ["measure", "series", "month"], "its")
    control_label, control_fit = "Control series (observed)", "Control series (fitted)"
    labels = series_periods(frame, period_labels, "its")
    fit_label, counter_label = "Fitted (segmented regression)", "Counterfactual: trend before the change continued"
    measures = in_order(frame["measure"])
    change = np.datetime64(pd.Timestamp(change), "D")

    figure, axes = new_figure(width, height_mm or 28 + 42 * len(measures), nrows=len(measures), sharex=True)
    for ax, measure in zip(axes[:, 0], measures, strict=True):
        everything = frame[frame["measure"] == measure].sort_values("month")
        control = everything[everything["series"] == "control"]
        for key in style.PERIODS:
            months = control[control["period"] == key]
            if months.empty:
                continue
            x = months["month"].to_numpy("datetime64[D]")
            ax.plot(x, 100 * months["fitted"], color=style.MUTED, linewidth=1.0, label=control_fit)
            ax.plot(x, 100 * months["observed"], linestyle="none", marker="o", markerfacecolor="white",
                    color=style.MUTED, markersize=3.6, markeredgewidth=0.8, zorder=3, label=control_label)
        part = everything[everything["series"] == "intervention"]
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
        percent_axis(ax, everything[["observed", "fitted", "counterfactual"]].to_numpy(float))
        ax.grid(axis="y")
        ax.set_ylabel(f"{measure} (%)")
    controlled = bool((frame["series"] == "control").any())
    if controlled:
        counter_label_shown = "Counterfactual: with the control series' change"
        for ax in axes[:, 0]:
            for line in ax.get_lines():
                if line.get_label() == counter_label:
                    line.set_label(counter_label_shown)
        counter_label = counter_label_shown
    finish_monthly_panels(figure, axes, change=change, change_label=change_label, xlabel=xlabel, months=(1, 7),
                          periods=labels, lines=[fit_label, counter_label, *([control_label, control_fit]
                                                                             if controlled else [])], ncols=2)
    return figure


# an event study's contrasts and their axis labels (the odds ratios' is the function's `ylabel`)
EVENT_SCALES = {"ratio of odds ratios": "Ratio of odds ratios, intervention\nvs control (log scale)",
                "ratio of rate ratios": "Ratio of rate ratios, intervention\nvs control (log scale)",
                "difference in differences of means": "Difference in differences of\nmeans, intervention vs control"}


@figure_function
def event_study(frame: pd.DataFrame, *, unit: str = "quarter", width="single", height_mm: float | None = None,
                ylabel: str = "Ratio of odds ratios, intervention\nvs control (log scale)"):
    """An event study: the intervention group's odds ratio against the control group's at each time point,
    relative to the last time point before the change (1, no interval), with 95% CIs; one panel per measure.

    frame columns: `measure` (label; panels top to bottom in order of appearance), `time` (integer time point:
    -1 the last before the change, 0 the first after), `estimate`, `conf_low`, `conf_high`. Points before the
    change near 1 are what parallel trends look like; the change is marked between -1 and 0. An optional `scale`
    column names each measure's contrast (:data:`EVENT_SCALES`): a ratio of rate ratios is drawn like the odds
    ratios, on a log axis around 1, a difference in differences of means on a linear axis around 0, each panel
    with its own axis label (``ylabel`` is for the odds ratios).
    """
    require(frame, ["measure", "time", "estimate", "conf_low", "conf_high"], "event_study")
    unknown = sorted(set(frame["scale"]) - set(EVENT_SCALES)) if "scale" in frame.columns else []
    if unknown:
        raise ValueError(f"event_study(): scale must be one of {list(EVENT_SCALES)}, not {unknown}")
    unique(frame, ["measure", "time"], "event_study")
    measures = in_order(frame["measure"])
    figure, axes = new_figure(width, height_mm or 30 + 45 * len(measures), nrows=len(measures), sharex=True)
    for ax, measure in zip(axes[:, 0], measures, strict=True):
        part = frame[frame["measure"] == measure].sort_values("time")
        for key in style.PERIODS:
            side = part[(part["time"] < 0) if key == "before" else (part["time"] >= 0)]
            estimate = side["estimate"].to_numpy(float)
            low = np.where(np.isfinite(side["conf_low"]), side["conf_low"], estimate)
            high = np.where(np.isfinite(side["conf_high"]), side["conf_high"], estimate)
            ax.errorbar(side["time"], estimate, yerr=[estimate - low, high - estimate], fmt=style.PERIOD_MARKERS[key],
                        color=style.PERIOD_COLOURS[key], markersize=4.2, elinewidth=1.0, capsize=0, zorder=3)
        scale = part["scale"].iloc[0] if "scale" in part.columns else "ratio of odds ratios"
        difference = scale.startswith("difference")
        ax.axhline(0.0 if difference else 1.0, color=style.REFERENCE_LINE, linewidth=0.7, zorder=1)
        ax.axvline(-0.5, color=style.REFERENCE_LINE, linewidth=0.8, linestyle=(0, (5, 2)), zorder=1)
        if not difference:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(axis="y")
        ax.set_ylabel(ylabel if scale == "ratio of odds ratios" else EVENT_SCALES[scale])
        if len(measures) > 1:
            ax.set_title(measure, fontsize=style.LABEL_PT, fontweight="bold")
    top, bottom = axes[0, 0], axes[-1, 0]
    top.annotate("Change", (-0.5, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                 ha="center", va="bottom", fontsize=style.TICK_PT)
    times = sorted(int(t) for t in frame["time"].unique())
    bottom.set_xticks(times, [f"{t:+d}" if t else "0" for t in times])
    bottom.set_xlabel(f"{unit.capitalize()}s from the change (reference: -1)")
    return figure


@figure_function
def power_curve(frame: pd.DataFrame, *, xlabel: str = "Clusters", targets=(0.8, 0.9), width="single",
                height_mm: float | None = None):
    """Power against size, one line per effect size with its 95% interval, and the target powers as
    horizontal lines (80% and 90% by default); one panel per `panel` value (top to bottom).

    frame columns: `panel` (label, "" for a single unlabelled panel), `effect` (label; lines in order of
    appearance), `size` (the x axis: clusters, months...), `estimate`, `conf_low`, `conf_high` (fractions 0-1).
    """
    # one Okabe-Ito hue per effect size, neighbours differing in lightness as well as hue, and not orange and
    # blue first, which mean before and after in the other figures; one marker shape each, for grey print
    colours = ("bluish_green", "reddish_purple", "black", "sky_blue", "vermillion", "blue", "orange")
    markers = ("o", "s", "^", "D", "v", "P", "X")
    require(frame, ["panel", "effect", "size", "estimate", "conf_low", "conf_high"], "power_curve")
    unique(frame, ["panel", "effect", "size"], "power_curve")
    effects, panels = in_order(frame["effect"]), in_order(frame["panel"])
    if len(effects) > len(colours):
        raise ValueError(f"power_curve(): at most {len(colours)} effect sizes, got {len(effects)}")
    figure, axes = new_figure(width, height_mm or 30 + 48 * len(panels), nrows=len(panels), sharex=True)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for k, effect in enumerate(effects):
            part = frame[(frame["panel"] == panel) & (frame["effect"] == effect)].sort_values("size")
            if part.empty:
                continue
            estimate = 100 * part["estimate"].to_numpy(float)
            ax.errorbar(part["size"], estimate, yerr=[estimate - 100 * part["conf_low"].to_numpy(float),
                                                      100 * part["conf_high"].to_numpy(float) - estimate],
                        color=style.OKABE_ITO[colours[k]], marker=markers[k], markersize=3.6,
                        linewidth=1.2, elinewidth=0.8, capsize=0, label=effect, zorder=3)
        for target in targets:
            ax.axhline(100 * target, color=style.REFERENCE_LINE, linewidth=0.7, linestyle=(0, (4, 2)), zorder=1)
            ax.annotate(f"{100 * target:g}%", (1.0, 100 * target), xycoords=("axes fraction", "data"),
                        xytext=(2, 0), textcoords="offset points", ha="left", va="center", fontsize=style.TICK_PT)
        ax.set_ylim(0, 100)
        ax.yaxis.set_major_locator(ticker.MultipleLocator(20))
        sizes = sorted(frame["size"].unique())
        # ticks at the sizes simulated, so that each point reads off its own tick; a long grid gets round numbers
        ax.xaxis.set_major_locator(ticker.FixedLocator(sizes) if len(sizes) <= 8 else ticker.MaxNLocator(integer=True))
        ax.grid(axis="y")
        ax.set_ylabel("Power (%)")
        if panel:
            ax.set_title(panel, fontsize=style.LABEL_PT, fontweight="bold")
    axes[-1, 0].set_xlabel(xlabel)
    # above the panels, as in the house's other figures: inside, a rising curve would run under it
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncols=min(len(effects), 3))
    return figure


@figure_function
def caterpillar(frame: pd.DataFrame, *, xlabel: str = "Random intercept (log-odds scale)", title: str = "",
                count_header: str = "n", empty: str = "No cluster to show", width="single",
                height_mm: float | None = None):
    """A caterpillar plot: each cluster's conditional mode of the random intercept with its interval (mode
    +/- z conditional SD, conditional on the model's estimates), sorted by mode (highest at the top), a
    line at 0 (the average cluster), and the cluster's n printed beside the axes on its own line.

    frame columns: `cluster` (label), `n`, `estimate`, `conf_low`, `conf_high` (on the link scale, as
    `analysis.stats.random_effects` gives them). `title` names the outcome above the panel. An empty frame
    (every cluster hidden) draws `empty` as text.
    Beyond 40 clusters the labels and counts are left off: the shape of the distribution is what shows.
    """
    # no rows is allowed (every cluster hidden); missing columns are not
    require(frame if len(frame) else frame.reindex(index=[0]), ["cluster", "n", "estimate", "conf_low", "conf_high"],
            "caterpillar")
    unique(frame, ["cluster"], "caterpillar")
    rows = len(frame)
    figure, axes = new_figure(width, height_mm or min(24 + 6 * max(rows, 2), style.MAX_HEIGHT_MM))
    ax = axes[0, 0]
    if title:
        ax.set_title(title, fontsize=style.LABEL_PT, fontweight="bold")
    if not rows:
        ax.text(0.5, 0.5, textwrap.fill(empty, 50), transform=ax.transAxes, ha="center", va="center",
                fontsize=style.LABEL_PT, color=style.MUTED)
        ax.set_axis_off()
        return figure
    ordered = frame.sort_values(["estimate", "cluster"], kind="stable").reset_index(drop=True)
    y = np.arange(rows, dtype=float)
    mode = ordered["estimate"].to_numpy(float)
    low, high = ordered["conf_low"].to_numpy(float), ordered["conf_high"].to_numpy(float)
    ax.axvline(0.0, color=style.REFERENCE_LINE, linewidth=0.7, zorder=1)
    ax.errorbar(mode, y, xerr=np.vstack([np.clip(mode - low, 0, None), np.clip(high - mode, 0, None)]), fmt="o",
                color=style.OURS_COLOUR, markersize=3.6, markeredgecolor="white", markeredgewidth=0.5,
                elinewidth=1.0, capsize=0, zorder=3)
    labelled = rows <= 40
    if labelled:
        column = beside_axes(ax, 6)
        for y_row, n in zip(y, ordered["n"], strict=True):
            ax.text(1, y_row, f"{int(n)}", transform=column, ha="left", va="center", fontsize=style.TICK_PT)
        ax.text(1, rows - 0.5, count_header, transform=column, ha="left", va="bottom", fontsize=style.TICK_PT,
                color=style.MUTED)
        ax.set_yticks(y, [textwrap.fill(str(c), 22) for c in ordered["cluster"]])
    else:
        ax.set_yticks([])
    ax.set_ylim(-0.6, rows - 0.4)
    ax.tick_params(axis="y", length=0)
    # symmetric about 0, so that above and below the average cluster read at the same scale
    reach = max(float(np.nanmax(np.abs(np.r_[low, high]))), 0.1) * 1.08
    ax.set_xlim(-reach, reach)
    ax.grid(axis="x")
    ax.set_xlabel(xlabel)
    return figure
