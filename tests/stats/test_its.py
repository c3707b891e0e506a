"""Interrupted time series of counts (analysis/stats/its.py) against R (tests/reference/its.R): glm poisson (offset)
and binomial with level and slope change and Fourier seasonality, sandwich::NeweyWest, the events averted with its
delta-method SE (by hand in R), Durbin-Watson (by hand) and Box.test(type = "Ljung-Box")."""

from __future__ import annotations

import math

import pytest

from analysis.stats.its import its_curves, segmented_counts

# Coefficients and the averted events: glm (epsilon 1e-14) and statsmodels' IRLS (tol 1e-12), measured within
# 2e-13 relative. Newey-West SEs and what uses them (the averted events' SE and interval, p-values, Ljung-Box):
# measured within 1.3e-9 relative (R's bread uses the IRLS weights one iteration behind).
COEF = 1e-10
HAC = 1e-8
CHANGES = {"seasonal": 36, "short": 12}


@pytest.mark.parametrize("dataset", ["seasonal", "short"])
@pytest.mark.parametrize("family", ["poisson", "binomial"])
@pytest.mark.parametrize("lag", [1, 3])
def test_segmented_counts_match_glm_and_neweywest(reference_data, r_results, dataset, family, lag):
    data = reference_data("its")
    data = data[data.dataset == dataset]
    season = "fourier" if dataset == "seasonal" else "none"
    ours = segmented_counts(data, "deaths", "admissions", "time", CHANGES[dataset], lags=lag, family=family,
                            month="month", season=season).set_index("term")
    theirs = r_results("its").items(f"{dataset}_{family}_lag{lag}")
    assert theirs
    for (term, quantity), value in theirs.items():
        mine = ours.loc[term, quantity]
        if quantity == "estimate" and term not in ("events_averted", "durbin_watson"):
            mine = math.log(mine)
        tolerance = COEF if quantity == "estimate" else HAC
        assert mine == pytest.approx(value, rel=tolerance, abs=1e-12), (dataset, family, lag, term, quantity)


def test_the_counterfactual_is_the_pre_change_trend_and_averted_events_add_up(reference_data):
    data = reference_data("its")
    data = data[data.dataset == "seasonal"]
    fitted = segmented_counts(data, "deaths", "admissions", "time", 36, lags=1, month="month")
    curves = its_curves(data, "deaths", "admissions", "time", 36, fitted, month="month")
    before = curves["time"] < 36
    assert (curves.loc[before, "fitted"] - curves.loc[before, "counterfactual"]).abs().max() < 1e-15
    after = data.set_index("time").loc[curves.loc[~before, "time"], "admissions"].to_numpy()
    averted = ((curves.loc[~before, "counterfactual"] - curves.loc[~before, "fitted"]) * after).sum()
    assert fitted.set_index("term").loc["events_averted", "estimate"] == pytest.approx(averted, rel=1e-10)


def test_too_short_a_series_is_not_estimated():
    import pandas as pd

    d = pd.DataFrame({"t": range(6), "n": 100, "y": [5, 6, 5, 4, 3, 4]})
    rows = segmented_counts(d, "y", "n", "t", 4, lags=1, season="none")
    assert rows["estimate"].isna().all() and "Fewer than 3 time points" in rows["warnings"].iloc[0]
