"""The interrupted time series figure from a study: notebook 05's exported curves
(`its_counts.curves`), the figure's frame (`figure_data.its`) and which studies get it (`figures_of`), on the
reference data declared as an interrupted time series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.analyses import figure_data, its_counts
from analysis.config import Design, load_study
from analysis.data import load
from analysis.stats.its import its_curves

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def prepared():
    return load("reference")


def as_series(study, **design):
    return study.model_copy(update={"design": Design(type="interrupted_time_series", **design)})


def test_curves_are_the_stats_curves_with_months_and_periods(prepared):
    study = as_series(prepared.study)
    curves = its_counts.curves(prepared.tables, study)
    # the binary outcomes with a time series (discharge_error's is switched off)
    assert curves["outcome"].unique().tolist() == ["admission_error", "acceptance"]
    curves = curves[curves["outcome"] == "admission_error"].reset_index(drop=True)
    monthly = its_counts.series(prepared.tables, study, "admission_error")
    design = study.design
    fit = its_counts.segmented_counts(monthly, "events", "n", "time", 14.0, lags=design.lags, family="binomial",
                                      month="month", season=design.seasonality, harmonics=design.harmonics)
    direct = its_curves(monthly, "events", "n", "time", 14.0, fit, family="binomial", month="month",
                        season=design.seasonality, harmonics=design.harmonics)
    for column in ("observed", "fitted", "counterfactual"):
        assert curves[column].to_numpy() == pytest.approx(direct[column].to_numpy())
    assert curves["month"].iloc[0] == "2011-02" and curves.loc[curves["time"] >= 14, "period"].eq("after").all()
    before = curves[curves["period"] == "before"]
    assert np.allclose(before["fitted"], before["counterfactual"])  # they part only at the change


def test_other_designs_export_no_curves(prepared):
    curves = its_counts.curves(prepared.tables, prepared.study)
    assert curves.empty and "counterfactual" in curves.columns


def test_only_interrupted_time_series_designs_get_the_figure(prepared):
    names = [f.name for f in figure_data.figures_of(prepared.study, has_monthly=True)]
    assert "its" not in names
    assert [f.name for f in figure_data.figures_of(prepared.study, True, has_its=True)] == names
    study = as_series(prepared.study)
    planned = figure_data.figures_of(study, has_monthly=True)
    assert [f.name for f in planned] == [*names[:6], "its", *names[6:]]
    assert planned[6].keys == ("admission_error", "acceptance")
    assert "its" not in [f.name for f in figure_data.figures_of(study, True, has_its=False)]
    assert "its" not in [f.name for f in figure_data.figures_of(study, has_monthly=False)]


def test_the_worked_example_gets_the_figure():
    study = load_study("studies/mortality_its.yml")
    assert [f.name for f in figure_data.figures_of(study, has_monthly=True)] == [
        "proportions", "forest", "monthly", "its"]


def test_the_figure_is_drawn_from_the_exported_curves(prepared):
    study = as_series(prepared.study)
    curves = its_counts.curves(prepared.tables, study)
    planned = next(f for f in figure_data.figures_of(study, True) if f.kind == "its")
    frame = figure_data.its(curves, study, planned.keys)
    assert frame["month"].dtype.kind == "M" and set(frame["period_label"]) == set(study.period.labels().values())
    exported = {"its_curves": curves.astype({"month": str})}
    drawn = figure_data.draw(planned, study, {}, prepared.tables, exported.__getitem__)
    assert [ax.get_ylabel() for ax in drawn.axes] == ["Error at admission (%)", "Suggestion accepted (%)"]
    assert isinstance(frame, pd.DataFrame)


def test_a_weekly_series_is_drawn_by_its_mondays(prepared):
    # the reference study's admissions as a weekly series: each week's Monday becomes the point's date
    study = as_series(prepared.study, time_unit="week", lags=2)
    curves = its_counts.curves(prepared.tables, study)
    first = curves[curves["outcome"] == "admission_error"]
    assert (pd.to_datetime(first["month"]).dt.day_of_week == 0).all()
    planned = next(f for f in figure_data.figures_of(study, True) if f.kind == "its")
    frame = figure_data.its(curves.astype({"month": str}), study, planned.keys)
    assert frame["month"].tolist() == pd.to_datetime(curves.loc[curves["outcome"].isin(planned.keys), "month"]
                                                     ).tolist()
    drawn = figure_data.draw(planned, study, {}, prepared.tables, {"its_curves": curves.astype({"month": str})}.get)
    assert drawn.axes[-1].get_xlabel() == "Week (its Monday)"
