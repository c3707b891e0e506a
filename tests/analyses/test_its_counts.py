"""An interrupted time series design's binary outcomes as monthly counts (analysis/analyses/its_counts.py), on
the reference data declared as an interrupted time series."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.analyses import its_counts
from analysis.config import Design
from analysis.data import load
from analysis.stats.its import segmented_counts


@pytest.fixture(scope="module")
def prepared():
    return load("reference")


def as_series(study, **design):
    return study.model_copy(update={"design": Design(type="interrupted_time_series", **design)})


def test_monthly_counts_and_the_change_point(prepared):
    study = as_series(prepared.study)
    monthly = its_counts.series(prepared.tables, study, "admission_error")
    # February 2011 is month 0; the after window starts in April 2012, month 14; the changeover months are absent
    assert monthly["change"].unique().tolist() == [14]
    assert monthly["time"].tolist() == [*range(12), *range(14, 26)]
    assert monthly.loc[monthly.calendar == "2012-04", "month"].item() == 4
    assert monthly["n"].sum() == 233 and monthly["events"].sum() == 49 + 10
    later = as_series(prepared.study, change_point="2012-07-01")
    assert its_counts.series(prepared.tables, later, "admission_error")["change"].unique().tolist() == [17]


def test_the_rows_are_the_stats_functions_named_for_the_ledger(prepared):
    study = as_series(prepared.study, seasonality="none", lags=2)
    rows = its_counts.results(prepared.tables, study).set_index("name")
    monthly = its_counts.series(prepared.tables, study, "admission_error")
    direct = segmented_counts(monthly, "events", "n", "time", 14, lags=2, family="binomial", season="none")
    direct = direct.set_index("term")
    for term in ("level_change", "slope_change", "events_averted", "ljung_box"):
        mine = rows.loc[f"its_counts.admission_error.{term}"]
        assert mine["estimate"] == pytest.approx(direct.loc[term, "estimate"], nan_ok=True)
        assert mine["p_value"] == pytest.approx(direct.loc[term, "p_value"], nan_ok=True)
    # the outcomes whose time series the study switched off are left out
    assert not any(name.startswith("its_counts.discharge_error.") for name in rows.index)
    assert "Newey-West (lag 2" in rows.loc["its_counts.admission_error.level_change", "method"]


def test_other_designs_get_no_rows(prepared):
    assert its_counts.results(prepared.tables, prepared.study).empty
    assert isinstance(its_counts.results(prepared.tables, prepared.study), pd.DataFrame)
