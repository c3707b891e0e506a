"""analysis.stats.timeseries against R (tests/reference/timeseries.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import timeseries as T

# Least squares and a closed-form sandwich in both: agreement to rounding.
CLOSED_FORM_REL = 1e-6
TERMS = ("intercept", "pre_trend", "level_change", "slope_change", "post_trend")
QUANTITIES = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high")


@pytest.fixture(scope="module")
def series(reference_data):
    return reference_data("timeseries")


@pytest.mark.parametrize("dataset", ["short", "long"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("lags", [1, 2, 3])
def test_segmented_regression_matches_lm_neweywest(dataset, weighted, lags, series, r_results, assert_close):
    r = r_results("timeseries")
    d = series[series.dataset == dataset]
    out = T.segmented_regression(
        d, "proportion", "month", "post", lags=lags, weights="n" if weighted else None
    ).set_index("term")
    label = f"{dataset}_{'wls' if weighted else 'ols'}_lag{lags}"
    assert tuple(out.index) == TERMS
    for term in TERMS:
        for quantity in QUANTITIES:
            assert_close(
                out.loc[term, quantity], r(label, term, quantity), CLOSED_FORM_REL, 1e-12, f"{label} {term} {quantity}"
            )
    assert f"lag {lags}, no prewhitening" in out["method"].iloc[0]


def test_short_segments_are_flagged(series):
    d = series[series.dataset == "short"].iloc[6:18]  # 6 months before, 6 after
    out = T.segmented_regression(d, "proportion", "month", "post", lags=1)
    assert "Only 6 time points in the pre period" in out["warnings"].iloc[0]


def test_lags_must_be_given_and_valid(series):
    with pytest.raises(TypeError):
        T.segmented_regression(series, "proportion", "month", "post")
    with pytest.raises(ValueError):
        T.segmented_regression(series, "proportion", "month", "post", lags=-1)


@pytest.mark.parametrize("dataset", ["short", "long"])
def test_p_chart_matches_hand_written_r(dataset, series, r_results, assert_close):
    r = r_results("timeseries")
    d = series[series.dataset == dataset]
    out = T.p_chart(d, "month", "events", "n", period="post").set_index("term")
    assert len(out) == len(d)
    label = f"{dataset}_pchart"
    for month in out.index:
        for quantity in ("estimate", "std_error", "conf_low", "conf_high"):
            assert_close(
                out.loc[month, quantity], r(label, month, quantity), CLOSED_FORM_REL, 1e-12, f"{month} {quantity}"
            )
        assert_close(out.loc[month, "centre_line"], r(label, month, "centre_line"), CLOSED_FORM_REL, 0, "centre")
    outside = (out["estimate"] < out["conf_low"]) | (out["estimate"] > out["conf_high"])
    assert out["outside_limits"].tolist() == outside.tolist()
    assert list(out.columns[-3:]) == ["period", "centre_line", "outside_limits"]


def test_p_chart_by_hand():
    import pandas as pd

    d = pd.DataFrame({"m": [1, 2, 3], "x": [2, 9, 4], "n": [20, 30, 25]})
    month2 = T.p_chart(d, "m", "x", "n").set_index("term").loc["2"]
    centre = 15 / 75  # 0.2
    sigma = (centre * (1 - centre) / 30) ** 0.5  # 0.0730
    assert month2.centre_line == pytest.approx(centre, rel=1e-12)
    assert month2.conf_high == pytest.approx(centre + 3 * sigma, rel=1e-12)  # 0.419
    assert month2.conf_low == 0.0  # 0.2 - 0.219 < 0: clipped
    assert not month2.outside_limits  # 9/30 = 0.3

    d = pd.DataFrame({"m": [1, 2, 3], "x": [2, 30, 4], "n": [20, 50, 25]})
    month2 = T.p_chart(d, "m", "x", "n").set_index("term").loc["2"]
    centre = 36 / 95
    assert month2.conf_high == pytest.approx(centre + 3 * (centre * (1 - centre) / 50) ** 0.5, rel=1e-12)  # 0.585
    assert month2.outside_limits  # 30/50 = 0.6


@pytest.mark.parametrize("seed, lags, weighted", [(0, 2, False), (2, 2, False), (3, 1, False), (5, 3, True)])
def test_no_events_after_the_change_leaves_the_post_trend_untested(seed, lags, weighted):
    # Before: monthly proportions with events; after: none in any month. The after segment's line fits
    # its 12 zeros exactly, so post_trend (pre_trend + slope_change) is 0 with no sampling variation,
    # whatever the lag; rounding made its HAC variance negative for these seeds (a math domain error).
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"month": range(1, 25), "post": [0] * 12 + [1] * 12, "n": rng.integers(10, 30, 24)})
    d["events"] = np.r_[rng.binomial(d["n"][:12], 0.1), np.zeros(12)]
    d["p"] = d["events"] / d["n"]
    out = T.segmented_regression(d, "p", "month", "post", lags=lags, weights="n" if weighted else None)
    out = out.set_index("term")
    post = out.loc["post_trend"]
    assert abs(post.estimate) < 1e-12 and post.std_error == 0
    assert np.isnan(post.p_value) and np.isnan(post.conf_low) and "constant in that segment" in post.warnings
    # the pre-period's own trend and the changes still have their sampling variation and tests
    tested = out.loc[["pre_trend", "level_change", "slope_change"]]
    assert (tested.std_error > 0).all() and tested.p_value.notna().all()
    assert out.loc["slope_change", "estimate"] == pytest.approx(-out.loc["pre_trend", "estimate"], abs=1e-12)
