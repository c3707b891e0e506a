"""analysis.stats.ranks against R (tests/reference/ranks.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import ranks as R

# Closed forms, exact distributions and exactly located roots: agreement to rounding.
CLOSED_FORM_REL = 1e-6
# wilcox.test's own asymptotic limits come from uniroot(tol = 1e-4) on a step function: R stops
# up to 1e-4 from the jump that we (and R's code rerun with tol = 1e-10) locate exactly.
R_UNIROOT_ABS = 1e-4
# polr and OrderedModel maximise the same likelihood with different optimisers (optim BFGS with
# reltol 1e-8 vs scipy BFGS to gtol 1e-8) and take SEs from different numerical Hessians;
# measured at most 8.1e-6 relative (a threshold near zero) for estimates and 3.8e-7 for SEs.
POLR_ESTIMATE_REL = 5e-5
POLR_SE_REL = 5e-5

DATASETS = ["exact_small", "asymptotic_large", "ordinal_harm", "small_ties", "mai_like", "separated"]


@pytest.fixture(scope="module")
def samples(reference_data):
    d = reference_data("ranks")
    return {
        ds: (g.loc[g.group == "before", "value"].to_numpy(), g.loc[g.group == "after", "value"].to_numpy())
        for ds, g in d.groupby("dataset")
    }


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("qtype", range(1, 10))
def test_quantiles_match_r_every_type(dataset, qtype, samples, r_results, assert_close):
    r = r_results("ranks")
    for group, values in zip(("before", "after"), samples[dataset], strict=True):
        ours = R.quantile(values, [0.25, 0.5, 0.75], type=qtype)
        for q, value in zip(("q25", "q50", "q75"), ours, strict=True):
            assert_close(
                value,
                r(dataset, f"quantile_{group}_type{qtype}", q),
                CLOSED_FORM_REL,
                1e-12,
                f"{dataset} {group} {qtype} {q}",
            )


@pytest.mark.parametrize("dataset", DATASETS)
def test_median_iqr_rows(dataset, samples, r_results, assert_close):
    before, _ = samples[dataset]
    out = R.median_iqr(before, type=6, label="before").set_index("term")
    assert list(out.index) == ["median_before", "quartile_1_before", "quartile_3_before"]
    assert "type 6" in out["method"].iloc[0]
    r = r_results("ranks")
    for term, q in (("median_before", "q50"), ("quartile_1_before", "q25"), ("quartile_3_before", "q75")):
        assert_close(out.loc[term, "estimate"], r(dataset, "quantile_before_type6", q), CLOSED_FORM_REL, 1e-12, term)


@pytest.mark.parametrize("dataset", DATASETS)
def test_mann_whitney_matches_wilcox_test(dataset, samples, r_results, assert_close):
    r = r_results("ranks")
    before, after = samples[dataset]
    out = R.mann_whitney(before, after).set_index("term")
    assert_close(out.loc["mann_whitney", "statistic"], r(dataset, "mann_whitney", "statistic"), CLOSED_FORM_REL, 0, "U")
    assert_close(
        out.loc["mann_whitney", "p_value"], r(dataset, "mann_whitney", "p_value"), CLOSED_FORM_REL, 1e-300, "p"
    )
    exact = r(dataset, "mann_whitney", "exact") == 1
    assert ("exact distribution" in out.loc["mann_whitney", "method"]) == exact
    # rank-biserial by hand from R's W
    u = r(dataset, "mann_whitney", "statistic")
    assert out.loc["rank_biserial", "estimate"] == pytest.approx(2 * u / (before.size * after.size) - 1, rel=1e-12)


@pytest.mark.parametrize("dataset", DATASETS)
def test_hodges_lehmann_matches_r(dataset, samples, r_results, assert_close):
    r = r_results("ranks")
    before, after = samples[dataset]
    row = R.hodges_lehmann(before, after).iloc[0]
    for quantity in ("estimate", "conf_low", "conf_high"):
        assert_close(
            row[quantity], r(dataset, "hodges_lehmann", quantity), CLOSED_FORM_REL, 1e-8, f"{dataset} {quantity}"
        )
    # what wilcox.test itself prints: within its root finder's tolerance of ours
    for quantity in ("conf_low", "conf_high"):
        assert abs(row[quantity] - r(dataset, "hodges_lehmann_wilcox_test", quantity)) <= R_UNIROOT_ABS
    r_estimate = r(dataset, "hodges_lehmann_wilcox_test", "estimate")
    low, high = r(dataset, "middle_differences", "conf_low"), r(dataset, "middle_differences", "conf_high")
    assert low - R_UNIROOT_ABS <= r_estimate <= high + R_UNIROOT_ABS
    assert low - 1e-12 <= row.estimate <= high + 1e-12


def test_hodges_lehmann_exact_by_hand():
    # 6 after vs 5 before, complete separation. Of the C(11, 5) = 462 equally likely rank sets, 1, 1, 2,
    # 3 and 5 give W = 0, 1, 2, 3, 4, so P(W <= 3) = 7/462 < 0.025 <= P(W <= 4) = 12/462: k =
    # qwilcox(0.025, 6, 5) = 4 and the limits are the 4th smallest and 4th largest of the 30 differences
    before = np.array([10.5, 11.2, 12.9, 14.1, 15.0])
    after = np.array([1.1, 2.3, 3.2, 4.8, 5.5, 6.7])
    diffs = np.sort(np.subtract.outer(after, before).ravel())
    row = R.hodges_lehmann(before, after).iloc[0]
    assert (row.conf_low, row.conf_high) == (diffs[3], diffs[-4])
    assert "achieved coverage 96.97%" in row.method  # 1 - 2 P(W <= k - 1) = 1 - 2 * 7/462
    assert row.estimate == np.median(diffs)


def test_hodges_lehmann_tiny_sample_warns_about_coverage():
    row = R.hodges_lehmann([5.0, 6.1, 7.3], [1.1, 2.3, 3.2, 4.8]).iloc[0]
    assert "too small for 95% exact coverage" in row.warnings
    assert "94.29%" in row.method


def test_exact_requested_with_ties_says_so():
    out = R.mann_whitney([1, 2, 2, 3], [2, 3, 4, 4], exact=True)
    assert "ties" in out["warnings"].iloc[0]
    assert "normal approximation" in out["method"].iloc[0]


@pytest.mark.parametrize("dataset", ["harm", "five_levels"])
def test_trend_matches_prop_trend_test(dataset, reference_data, r_results, assert_close):
    t = reference_data("trend")
    t = t[t.dataset == dataset]
    row = R.trend_test(t.count_before, t.count_after, scores=t.score).iloc[0]
    assert_close(row.statistic, r_results("ranks")(dataset, "trend", "statistic"), CLOSED_FORM_REL, 0, "chi2")
    assert_close(row.p_value, r_results("ranks")(dataset, "trend", "p_value"), CLOSED_FORM_REL, 1e-300, "p")
    assert row.df == r_results("ranks")(dataset, "trend", "df") == 1


def _harm_long(reference_data):
    t = reference_data("trend")
    t = t[t.dataset == "harm"]
    y = np.r_[np.repeat(t.score, t.count_before), np.repeat(t.score, t.count_after)]
    after = np.r_[np.zeros(t.count_before.sum()), np.ones(t.count_after.sum())]
    return pd.DataFrame({"y": y, "after": after})


@pytest.mark.parametrize("dataset", ["harm", "covariate"])
def test_proportional_odds_matches_polr(dataset, reference_data, r_results, assert_close):
    r = r_results("ranks")
    if dataset == "harm":
        data, formula, predictors = _harm_long(reference_data), "y ~ after", ["after"]
    else:
        data, formula, predictors = reference_data("ordinal"), "y ~ after + x", ["after", "x"]
    out = R.proportional_odds(data, formula).set_index("term")
    for term in predictors:
        assert_close(
            np.log(out.loc[term, "estimate"]), r(dataset, f"polr:{term}", "estimate"), POLR_ESTIMATE_REL, 0, term
        )
        assert_close(out.loc[term, "std_error"], r(dataset, f"polr:{term}", "std_error"), POLR_SE_REL, 0, term)
    thresholds = [t for t in out.index if t.startswith("threshold: ")]
    assert len(thresholds) == 3
    for term in thresholds:
        cut = term.removeprefix("threshold: ")
        assert_close(out.loc[term, "estimate"], r(dataset, f"polr:{cut}", "estimate"), POLR_ESTIMATE_REL, 0, term)
        assert_close(out.loc[term, "std_error"], r(dataset, f"polr:{cut}", "std_error"), POLR_SE_REL, 0, term)
