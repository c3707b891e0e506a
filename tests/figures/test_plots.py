"""Every figure against its baseline image, and read the way a journal's reader would.

Image regression: each figure is drawn from the fixed frames in `frames.py`, written as a 100-dpi PNG
through `save` and compared with `baseline/<name>.png` by matplotlib's RMS pixel difference
(0-255 scale). TOLERANCE = 0.5: the same wheel draws the same pixels (RMS 0 on rerun; matplotlib's
wheels carry their own FreeType, so text rasterises the same everywhere), so the margin only absorbs
sub-pixel anti-aliasing from floating-point differences between CPUs, while the smallest change a
reader would notice stays well above it: one count label edited ("49/121" to "48/121") gives about
1.1, one interval end moved by 2 percentage points about 1.0 (`test_tolerance_catches_a_changed_count`
keeps that true).

Regenerate the baselines after an intended change, look at them, then commit them:

    FIGURES_REGENERATE_BASELINES=1 .venv/bin/python -m pytest tests/figures -q

Those tests then write the baseline and report themselves as skipped, so a regeneration never passes
silently; the variable is never set by default.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images
from matplotlib.text import Text

from analysis import figures
from analysis.figures import plots, style
from tests.figures import frames

pytestmark = pytest.mark.filterwarnings("error")

BASELINE = Path(__file__).parent / "baseline"
TOLERANCE = 0.5
TEST_DPI = 100
REGENERATE = os.environ.get("FIGURES_REGENERATE_BASELINES") == "1"
PROVENANCE = {"notebook": "notebooks/test.ipynb"}
PERIOD_LABELS = [frames.BEFORE, frames.AFTER]

# name -> (draw the figure from the fixed frames, legend entries the reader needs)
FIGURES = {
    "proportions": (lambda: figures.proportions(frames.proportions_frame()), PERIOD_LABELS),
    "forest": (lambda: figures.forest(frames.forest_frame()), ["This analysis", "Published"]),
    "harm_severity": (lambda: figures.harm_severity(frames.harm_frame()),
                      ["None", "Minor", "Moderate", "Severe"]),
    "mai_change": (lambda: figures.mai_change(frames.mai_frame()), PERIOD_LABELS),
    "monthly": (lambda: figures.monthly(frames.monthly_frame(), change=frames.CHANGE,
                                        period_labels=frames.LABELS),
                PERIOD_LABELS + ["Segmented regression", "p-chart centre line", "3-sigma control limits"]),
    "acceptance_by_team": (lambda: figures.acceptance_by_team(frames.acceptance_frame()), PERIOD_LABELS),
    "its": (lambda: figures.its(frames.its_frame(), change=frames.ITS_CHANGE),
            [frames.BEFORE_ITS, frames.AFTER_ITS, "Fitted (segmented regression)",
             "Counterfactual: trend before the change continued"]),
    "event_study": (lambda: plots.event_study(frames.event_study_frame()), []),
    "controlled_its": (lambda: figures.its(frames.controlled_its_frame(), change=frames.ITS_CHANGE),
                       [frames.BEFORE_ITS, frames.AFTER_ITS, "Fitted (segmented regression)",
                        "Counterfactual: with the control series' change", "Control series (observed)",
                        "Control series (fitted)"]),
    "power_curve": (lambda: plots.power_curve(frames.power_curve_frame(), xlabel="Clusters per period"),
                    ["OR 0.5", "OR 0.7"]),
    "caterpillar": (lambda: figures.caterpillar(frames.caterpillar_frame(), title="Error at admission"), []),
}


def drawn_texts(figure, monkeypatch) -> list[Text]:
    """The text artists a draw actually paints (tick labels outside the view are kept but not drawn)."""
    painted = {}
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            painted[id(self)] = self

    monkeypatch.setattr(Text, "draw", record)
    figure.canvas.draw()
    monkeypatch.undo()
    return list(painted.values())


def numeric(label: str) -> bool:
    return re.fullmatch(r"[-+]?\d+(\.\d+)?%?", label.replace("\u2212", "-").strip()) is not None


@pytest.mark.parametrize("name", FIGURES)
def test_matches_baseline(name, tmp_path):
    figure = FIGURES[name][0]()
    (actual,) = figures.save(figure, tmp_path, name, PROVENANCE, formats=("png",), dpi=TEST_DPI)
    expected = BASELINE / f"{name}.png"
    if REGENERATE:
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
        pytest.skip(f"baseline regenerated: {expected}")
    assert expected.exists(), f"no baseline {expected}; see this module's docstring to make one"
    failure = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert failure is None, failure


def test_tolerance_catches_a_changed_count(tmp_path):
    """A one-patient change in one count label must fail the comparison, or the tolerance is too loose."""
    changed = frames.proportions_frame()
    changed.loc[0, "events"] -= 1
    (actual,) = figures.save(figures.proportions(changed), tmp_path, "proportions", PROVENANCE,
                             formats=("png",), dpi=TEST_DPI)
    assert compare_images(str(BASELINE / "proportions.png"), str(actual), tol=TOLERANCE) is not None


@pytest.mark.parametrize("name", FIGURES)
def test_reads_at_print_size(name, monkeypatch):
    """At its printed size: no text under 7 pt, no two texts overlapping, numeric axes labelled,
    the groups named in a legend, no figure title."""
    figure, legend_entries = FIGURES[name][0](), FIGURES[name][1]
    width_mm = figure.get_size_inches()[0] * style.MM_PER_INCH
    assert width_mm in (style.SINGLE_COLUMN_MM, style.DOUBLE_COLUMN_MM)
    texts = drawn_texts(figure, monkeypatch)
    renderer = figure.canvas.get_renderer()

    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < style.SMALLEST_PT]
    assert not small, f"text under {style.SMALLEST_PT} pt: {small}"

    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    figure_box = figure.bbox
    outside = [text for text, box in boxes if box.x0 < figure_box.x0 - 0.5 or box.x1 > figure_box.x1 + 0.5
               or box.y0 < figure_box.y0 - 0.5 or box.y1 > figure_box.y1 + 0.5]
    assert not outside, f"text cut off at the figure's edge: {outside}"
    overlaps = []
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1:]:
            width = min(a.x1, b.x1) - max(a.x0, b.x0)
            height = min(a.y1, b.y1) - max(a.y0, b.y0)
            if width > 0.5 and height > 0.5:
                overlaps.append((text_a, text_b))
    assert not overlaps, f"overlapping text: {overlaps}"

    painted = {id(t) for t in texts}
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t.get_text() for t in axis.get_ticklabels() if id(t) in painted]
            if labels and all(numeric(label) for label in labels):
                assert axis.label.get_text().strip(), f"{name}: a numeric axis without a label ({labels})"
    assert any(ax.get_xlabel() or ax.get_ylabel() for ax in figure.axes)

    legend_texts = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert legend_texts == legend_entries
    assert figure.get_suptitle() == ""


def test_period_styles_stay_with_the_period_not_the_order():
    """Before is orange circles in every figure, whichever order the frame's rows come in."""
    frame = frames.proportions_frame().iloc[::-1]
    figure = figures.proportions(frame)
    points = {container.get_label(): container[0] for container in figure.axes[0].containers}
    assert mpl.colors.same_color(points[frames.BEFORE].get_color(), style.PERIOD_COLOURS["before"])
    assert points[frames.BEFORE].get_marker() == style.PERIOD_MARKERS["before"]
    assert points[frames.AFTER].get_marker() == style.PERIOD_MARKERS["after"]


def test_counts_are_printed_beside_the_points(monkeypatch):
    texts = {t.get_text() for t in drawn_texts(figures.proportions(frames.proportions_frame()), monkeypatch)}
    assert {"49/121", "10/112", "66/101", "15/108"} <= texts
    texts = {t.get_text() for t in drawn_texts(figures.forest(frames.forest_frame()), monkeypatch)}
    assert {"0.14 (0.07 to 0.30)", "0.15 (0.07 to 0.30)"} <= texts


def test_forest_draws_ors_on_a_log_axis_with_a_line_at_one():
    figure = figures.forest(frames.forest_frame())
    for ax in figure.axes:
        assert ax.get_xscale() == "log"
        assert any(np.allclose(line.get_xdata(), 1.0) for line in ax.lines)


def test_forest_says_when_an_odds_ratio_cannot_be_estimated(monkeypatch):
    frame = frames.forest_frame()
    frame.loc[2, ["estimate", "conf_low", "conf_high"]] = [0.0, 0.0, np.inf]
    texts = {t.get_text() for t in drawn_texts(figures.forest(frame), monkeypatch)}
    assert "not estimable" in texts


def test_harm_bars_are_shares_of_each_period():
    figure = figures.harm_severity(frames.harm_frame())
    widths = [patch.get_width() for patch in figure.axes[0].patches]
    assert sum(widths[:4]) == pytest.approx(100) and sum(widths[4:]) == pytest.approx(100)
    assert widths[3] == pytest.approx(100 * 6 / 101)


def test_the_zero_line_is_drawn_only_where_the_values_reach_zero():
    """A change score crosses 0 (no change); a symptom score from 17 to 86 would have its axis stretched to 0."""
    def zero_lines(frame):
        figure = figures.mai_change(frame)
        return [line for line in figure.axes[0].get_lines() if list(line.get_ydata()) == [0, 0]]

    frame = frames.mai_frame()
    assert frame["change"].min() < 0 < frame["change"].max() and len(zero_lines(frame)) == 1
    score = frame.assign(change=frame["change"] - frame["change"].min() + 17)
    assert zero_lines(score) == []
    assert figures.mai_change(score).axes[0].get_ylim()[0] > 0


def test_mai_shows_every_patient():
    frame = frames.mai_frame()
    figure = figures.mai_change(frame)
    shown = sum(len(c.get_offsets()) for c in figure.axes[0].collections if c.get_offsets().size)
    assert shown == len(frame)


def test_mai_places_tied_values_without_randomness():
    first = figures.mai_change(frames.mai_frame()).axes[0].collections[0].get_offsets()
    again = figures.mai_change(frames.mai_frame()).axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(("draw", "frame", "column"), [
    (figures.proportions, frames.proportions_frame(), "conf_high"),
    (figures.forest, frames.forest_frame(), "published_estimate"),
    (figures.harm_severity, frames.harm_frame(), "count"),
    (figures.mai_change, frames.mai_frame(), "change"),
    (figures.acceptance_by_team, frames.acceptance_frame(), "accepted"),
])
def test_missing_column_is_named(draw, frame, column):
    with pytest.raises(ValueError, match=column):
        draw(frame.drop(columns=column))


def test_monthly_needs_its_columns_and_known_periods():
    with pytest.raises(ValueError, match="ucl"):
        figures.monthly(frames.monthly_frame().drop(columns="ucl"), change=frames.CHANGE)
    frame = frames.monthly_frame()
    frame.loc[0, "period"] = "during"
    with pytest.raises(ValueError, match="during"):
        figures.monthly(frame, change=frames.CHANGE)


def test_unknown_period_and_severity_are_refused():
    frame = frames.proportions_frame()
    frame.loc[0, "period"] = "later"
    with pytest.raises(ValueError, match="later"):
        figures.proportions(frame)
    frame = frames.harm_frame()
    frame["severity"] = frame["severity"].astype(str).replace("severe", "fatal")
    with pytest.raises(ValueError, match="fatal"):
        figures.harm_severity(frame)


def test_plot_functions_leave_global_style_alone():
    before = dict(mpl.rcParams)
    figures.proportions(frames.proportions_frame())
    assert dict(mpl.rcParams) == before


def test_code_hash_is_per_figure_and_stable():
    hashes = {name: figures.drawn_by(draw())["code_sha256"] for name, (draw, _) in FIGURES.items()}
    assert len(set(hashes.values())) == len(FIGURES) - 1  # controlled_its is drawn by its
    assert hashes["forest"] == figures.code_sha256(inspect.unwrap(figures.forest))
    assert figures.drawn_by(FIGURES["forest"][0]())["figure_function"] == "analysis.figures.plots.forest"


def test_plot_module_holds_only_the_plot_functions():
    """A helper at module level in plots.py would escape the code hash of the figures that use it:
    shared helpers belong in _draw.py (hashed for every figure), private ones inside their function."""
    functions = {name for name, value in vars(plots).items()
                 if inspect.isfunction(value) and value.__module__ == plots.__name__}
    assert functions == set(FIGURES) - {"controlled_its"}


@pytest.mark.parametrize(("draw", "frame"), [
    (figures.proportions, frames.proportions_frame()),
    (figures.forest, frames.forest_frame()),
    (figures.acceptance_by_team, frames.acceptance_frame()),
    (lambda frame: figures.monthly(frame, change=frames.CHANGE), frames.monthly_frame()),
])
def test_repeated_rows_are_refused(draw, frame):
    with pytest.raises(ValueError, match="more than one row"):
        draw(pd.concat([frame, frame.iloc[[0]]], ignore_index=True))


def test_caterpillar_sorts_by_mode_around_zero_and_prints_each_n(monkeypatch):
    frame = frames.caterpillar_frame()
    figure = figures.caterpillar(frame)
    ax = figure.axes[0]
    ordered = frame.sort_values("estimate")
    assert [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()] == ordered["cluster"].tolist()
    np.testing.assert_allclose(ax.containers[0][0].get_xdata(), ordered["estimate"])  # y 0 is the lowest mode
    assert any(np.allclose(line.get_xdata(), 0.0) for line in ax.lines)
    low, high = ax.get_xlim()
    assert low == pytest.approx(-high) and high > ordered["conf_high"].max()
    texts = {t.get_text() for t in drawn_texts(figure, monkeypatch)}
    assert {str(n) for n in frame["n"]} <= texts
    empty = figures.caterpillar(frame.iloc[:0], empty="No team can be shown")
    assert [t.get_text() for t in empty.axes[0].texts] == ["No team can be shown"]
    with pytest.raises(ValueError, match="conf_high"):
        figures.caterpillar(frame.iloc[:0].drop(columns="conf_high"))


def test_open_ended_interval_runs_to_the_axis_edge():
    frame = frames.forest_frame()
    frame.loc[0, "conf_high"] = np.inf
    figure = figures.forest(frame)
    segments = figure.axes[0].collections[0].get_segments()
    assert segments[0][:, 0].max() == pytest.approx(figure.axes[0].get_xlim()[1])
