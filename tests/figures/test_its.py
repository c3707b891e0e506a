"""The interrupted time series figure (`figures.its`): what it draws, and what it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import figures
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
