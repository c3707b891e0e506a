"""Interrupted time series of counts (analysis/stats/its.py) against R (tests/reference/its.R): glm poisson (offset)
and binomial with level and slope change and Fourier seasonality, sandwich::NeweyWest, the events averted with its
delta-method SE (by hand in R), Durbin-Watson (by hand) and Box.test(type = "Ljung-Box"); the controlled series
against the same glm with the group interactions and sandwich::vcovPL (Driscoll-Kraay)."""

from __future__ import annotations

import math

import pytest

from analysis.stats.its import WEEKS_PER_YEAR, driscoll_kraay, its_curves, its_design, segmented_counts

# Coefficients and the averted events: glm (epsilon 1e-14) and statsmodels' IRLS (tol 1e-12), measured within
# 2e-13 relative. Newey-West SEs and what uses them (the averted events' SE and interval, p-values, Ljung-Box):
# measured within 1.3e-9 relative (R's bread uses the IRLS weights one iteration behind).
COEF = 1e-10
HAC = 1e-8
CHANGES = {"seasonal": 36, "short": 12}


def assert_as_r(ours, theirs: dict, *case) -> None:
    """Each of R's numbers (term, quantity) equals ours: estimates on R's log scale (ours are ratios, but for the
    events averted and Durbin-Watson) within COEF, the rest within HAC."""
    for (term, quantity), value in theirs.items():
        mine = ours.loc[term, quantity]
        if quantity == "estimate" and term not in ("events_averted", "durbin_watson"):
            mine = math.log(mine)
        tolerance = COEF if quantity == "estimate" else HAC
        assert mine == pytest.approx(value, rel=tolerance, abs=1e-12), (*case, term, quantity)


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
    assert_as_r(ours, theirs, dataset, family, lag)


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


@pytest.mark.parametrize("family", ["poisson", "binomial"])
@pytest.mark.parametrize("lag", [1, 3])
def test_a_controlled_series_matches_glm_and_vcovpl(reference_data, r_results, family, lag):
    data = reference_data("its_controlled").rename(columns={"group": "wigan"})  # any name for the group column
    ours = segmented_counts(data, "deaths", "admissions", "time", 24, lags=lag, family=family, month="month",
                            group="wigan").set_index("term")
    theirs = r_results("its").items(f"controlled_{family}_lag{lag}")
    # R's hand-written Driscoll-Kraay covariance is sandwich::vcovPL's to 1e-12: the stored SEs are both
    assert theirs.pop(("vcovPL", "max_relative_difference")) < 1e-12
    assert {t for t, _ in theirs} >= {"level_change_difference", "slope_change_difference", "group_pre_trend"}
    assert_as_r(ours, theirs, family, lag)
    curves = its_curves(data, "deaths", "admissions", "time", 24, ours.reset_index(), family=family, month="month",
                        group="wigan")
    # the control series' counterfactual is its fit; the intervention's differs only from the change on
    control = curves.iloc[:48]
    assert (control["fitted"] - control["counterfactual"]).abs().max() < 1e-15
    treated = curves.iloc[48:]
    assert (treated["fitted"] - treated["counterfactual"]).abs().iloc[:24].max() < 1e-15


def test_with_one_series_the_driscoll_kraay_covariance_is_newey_west(reference_data, r_results):
    # summing scores over one series changes nothing: the covariance is R's NeweyWest on the same fit
    import numpy as np
    import statsmodels.api as sm

    data = reference_data("its").query("dataset == 'seasonal'")
    x = its_design(data, "time", 36, month="month").to_numpy()
    y, n = data["deaths"].to_numpy(float), data["admissions"].to_numpy(float)
    fit = sm.GLM(y, x, family=sm.families.Poisson(), offset=np.log(n)).fit(tol=1e-12)
    mu = fit.fittedvalues if hasattr(fit, "fittedvalues") else fit.predict()
    cov = driscoll_kraay(x, y - np.asarray(mu), np.asarray(mu), data["time"].to_numpy(), 3)
    expected = r_results("its")("seasonal_poisson_lag3", "level_change", "std_error")
    assert math.sqrt(cov[2, 2]) == pytest.approx(expected, rel=HAC)


def test_a_group_column_that_is_not_zero_and_one_is_refused(reference_data):
    data = reference_data("its_controlled").assign(group=lambda d: d["group"].map({1: "Wigan", 0: "Bolton"}))
    with pytest.raises(ValueError, match="1 for the intervention series and 0 for the control"):
        segmented_counts(data, "deaths", "admissions", "time", 24, lags=1, month="month", group="group")


def test_counts_outside_their_denominator_are_refused():
    import pandas as pd

    d = pd.DataFrame({"t": range(8), "n": 10, "y": [9, 10, 11, 10, 6, 5, 6, 5]})
    with pytest.raises(ValueError, match="y at most n \\(binomial\\): not so at t 2"):
        segmented_counts(d, "y", "n", "t", 4, lags=1, season="none", family="binomial")
    # a rate may exceed one per unit of its denominator
    assert segmented_counts(d, "y", "n", "t", 4, lags=1, season="none", family="poisson")["estimate"].notna().any()
    with pytest.raises(ValueError, match="above 0 with events"):
        segmented_counts(d.assign(n=0), "y", "n", "t", 4, lags=1, season="none")
    # a month with no denominator and no events carries nothing: left out, and said
    closed = pd.concat([d, pd.DataFrame({"t": [8], "n": [0], "y": [0]})], ignore_index=True)
    rows = segmented_counts(closed, "y", "n", "t", 4, lags=1, season="none", family="poisson").set_index("term")
    same = segmented_counts(d, "y", "n", "t", 4, lags=1, season="none", family="poisson").set_index("term")
    assert rows.loc["level_change", "estimate"] == pytest.approx(same.loc["level_change", "estimate"])
    assert "1 time point(s) with a denominator of 0 are left out" in rows.loc["level_change", "warnings"]


@pytest.mark.parametrize("family", ["poisson", "binomial"])
@pytest.mark.parametrize("lag", [2, 8])
def test_a_weekly_series_matches_glm_and_neweywest(reference_data, r_results, family, lag):
    # Fourier terms of period 365.25 / 7 in the week count, two harmonics; the lag counts weeks
    data = reference_data("its_weekly")
    ours = segmented_counts(data, "deaths", "admissions", "time", 104, lags=lag, family=family, month="time",
                            harmonics=2, period=WEEKS_PER_YEAR).set_index("term")
    theirs = r_results("its").items(f"weekly_{family}_lag{lag}")
    assert {t for t, _ in theirs} >= {"sin_2", "cos_2", "events_averted", "ljung_box"}
    assert_as_r(ours, theirs, family, lag)


def test_month_indicators_are_refused_for_a_weekly_cycle(reference_data):
    data = reference_data("its_weekly")
    with pytest.raises(ValueError, match="use Fourier terms for a weekly series"):
        its_design(data, "time", 104, month="time", season="months", period=WEEKS_PER_YEAR)
