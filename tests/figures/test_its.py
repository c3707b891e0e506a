"""The interrupted time series figure (`figures.its`): what it draws, and what it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.figures import plots
from tests.figures import frames

pytestmark = pytest.mark.filterwarnings("error")


def lines(figure, label):
    return [line for ax in figure.axes for line in ax.get_lines() if line.get_label() == label]


def test_counterfactual_is_dashed_and_drawn_from_the_change_on():
    frame = frames.its_frame()
    figure = figures.its(frame, change=frames.ITS_CHANGE)
    (counter,) = lines(figure, "Counterfactual: trend before the change continued")
    assert counter.get_linestyle() == "--"
    x = counter.get_xdata()
    assert np.min(x) == np.datetime64(frames.ITS_CHANGE, "D")
    after = frame[frame["period"] == "after"]
    assert np.allclose(counter.get_ydata(), 100 * after["counterfactual"].to_numpy())


def test_fitted_segments_and_every_observed_month_are_drawn():
    frame = frames.its_frame()
    figure = figures.its(frame, change=frames.ITS_CHANGE)
    segments = lines(figure, "Fitted (segmented regression)")
    assert [len(s.get_xdata()) for s in segments] == [24, 36]
    observed = lines(figure, frames.BEFORE_ITS) + lines(figure, frames.AFTER_ITS)
    assert sum(len(line.get_xdata()) for line in observed) == len(frame)
    # the change is marked
    assert any(np.all(line.get_xdata() == np.datetime64(frames.ITS_CHANGE, "D")) for line in figure.axes[0].lines)


def test_one_panel_per_measure():
    frame = frames.its_frame()
    two = pd.concat([frame, frame.assign(measure="Death within 30 days")], ignore_index=True)
    figure = figures.its(two, change=frames.ITS_CHANGE)
    assert [ax.get_ylabel() for ax in figure.axes] == ["In-hospital death (%)", "Death within 30 days (%)"]


def test_its_needs_its_columns_unique_months_and_known_periods():
    frame = frames.its_frame()
    with pytest.raises(ValueError, match="counterfactual"):
        figures.its(frame.drop(columns="counterfactual"), change=frames.ITS_CHANGE)
    with pytest.raises(ValueError, match="more than one row"):
        figures.its(pd.concat([frame, frame.iloc[[0]]], ignore_index=True), change=frames.ITS_CHANGE)
    with pytest.raises(ValueError, match="period"):
        figures.its(frame.assign(period="during"), change=frames.ITS_CHANGE)


def test_a_control_series_is_drawn_in_grey_beside_the_intervention_series():
    frame = frames.controlled_its_frame()
    figure = figures.its(frame, change=frames.ITS_CHANGE)
    observed = lines(figure, "Control series (observed)")
    assert sum(len(line.get_xdata()) for line in observed) == 60
    (fitted, *_) = lines(figure, "Control series (fitted)")
    control = frame[(frame["series"] == "control") & (frame["period"] == "before")]
    assert np.allclose(fitted.get_ydata(), 100 * control["fitted"].to_numpy())
    # the intervention series' counterfactual carries the control's change, and says so
    assert lines(figure, "Counterfactual: with the control series' change")
    with pytest.raises(ValueError, match="series must be 'intervention' or 'control'"):
        figures.its(frame.assign(series="treated"), change=frames.ITS_CHANGE)


def test_the_percent_axis_fits_a_low_rate():
    # mortality near 4.5%: the axis starts at 0 and ends a little above the highest point, not at 100
    figure = figures.its(frames.its_frame(), change=frames.ITS_CHANGE)
    low, high = figure.axes[0].get_ylim()
    top = 100 * frames.its_frame()[["observed", "fitted", "counterfactual"]].to_numpy().max()
    assert low == 0 and top < high <= top * 1.15 + 1e-9


def test_an_event_study_draws_each_outcome_on_its_own_scale():
    # a binary outcome's ratios on a log axis around 1, a continuous one's differences on a linear axis around 0
    ratios = frames.event_study_frame().assign(scale="ratio of odds ratios")
    differences = ratios.assign(measure="Length of stay (days)", scale="difference in differences of means",
                                estimate=np.log(ratios["estimate"]) * 2, conf_low=np.log(ratios["conf_low"]) * 2,
                                conf_high=np.log(ratios["conf_high"]) * 2)
    figure = plots.event_study(pd.concat([ratios, differences], ignore_index=True))
    top, bottom = figure.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"
    horizontal = [line.get_ydata()[0] for line in bottom.get_lines() if len(set(line.get_ydata())) == 1
                  and line.get_xdata()[0] == 0 and line.get_xdata()[1] == 1]
    assert 0.0 in horizontal
    assert bottom.get_ylabel().startswith("Difference in differences") and top.get_ylabel().startswith("Ratio of odds")
    with pytest.raises(ValueError, match="scale must be one of"):
        plots.event_study(ratios.assign(scale="hazard ratio"))
