"""Controlled before-after (analysis/stats/designs.py) against R (tests/reference/designs.R): the difference
in differences of proportions (Wald and MOVER), the cluster-robust logistic model (sandwich::vcovCL, HC1), the
random-intercept model (glmer), and the wild cluster bootstrap against its hand calculation in R."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.stats import mixed_logistic
from analysis.stats.designs import (
    WEBB,
    did_cluster_robust,
    did_logistic_cluster,
    difference_in_differences,
    event_study,
    parallel_trends,
    webb_weights,
    wild_cluster_bootstrap,
)

# Closed forms: R writes 15 significant digits.
CLOSED = 1e-9
# glm vs statsmodels' IRLS, both run to 1e-12: estimates agree within 4e-12 relative; the HC1 standard errors
# within 2.6e-7 (measured, the age-adjusted `tiny` model): R's bread (summary.glm's cov.unscaled) uses the IRLS
# weights of the iteration before the last, whose coefficients differ by about sqrt(epsilon).
GLM = 1e-6
# glmer (tolPwrss 1e-13) vs the compendium's Laplace fitter: within 1e-3 relative (tests/stats/test_mixed.py).
MIXED = 2e-3
# Wild bootstrap: the same enumerated weights on both sides, so the p-value is equal exactly (a ratio of counts);
# the interval's ends are bisected to 1e-8 on both sides, with restricted fits converged to 1e-12 and 1e-14.
BOOT = 1e-6


@pytest.fixture(scope="module")
def results(r_results):
    return r_results("designs")


@pytest.fixture(scope="module")
def did(reference_data):
    return reference_data("did")


@pytest.mark.parametrize("dataset", ["reference_secular_fall", "no_control_change", "zero_cell", "small"])
def test_difference_in_differences_matches_r(reference_data, results, dataset):
    counts = reference_data("did_counts").set_index("dataset").loc[dataset]
    ours = difference_in_differences(*[int(counts[c]) for c in
                                       ("e_i0", "n_i0", "e_i1", "n_i1", "e_c0", "n_c0", "e_c1", "n_c1")])
    ours = ours.set_index("term")
    for (term, quantity), value in results.items(dataset).items():
        assert ours.loc[term, quantity] == pytest.approx(value, rel=CLOSED, abs=1e-12), (dataset, term, quantity)


def test_the_secular_trend_is_removed():
    # 66/101 -> 15/108 in the intervention hospital; 60/100 -> 45/100 in the control: the fall of 15 points that
    # the control shows is taken off the intervention's fall of 51.5 points
    rows = difference_in_differences(66, 101, 15, 108, 60, 100, 45, 100).set_index("term")
    assert rows.loc["risk_difference_intervention", "estimate"] == pytest.approx(15 / 108 - 66 / 101)
    assert rows.loc["difference_in_differences", "estimate"] == pytest.approx(15 / 108 - 66 / 101 + 0.15)


@pytest.mark.parametrize("dataset", ["tiny", "medium"])
@pytest.mark.parametrize("adjusted", [False, True])
def test_cluster_robust_logistic_matches_glm_with_vcovcl_hc1(did, results, dataset, adjusted):
    formula = "y ~ intervention * after" + (" + age" if adjusted else "")
    ours = did_logistic_cluster(did[did.dataset == dataset], formula, "site").set_index("term")
    label = f"{dataset}_{'adjusted' if adjusted else 'plain'}_cluster"
    for (term, quantity), value in results.items(label).items():
        mine = ours.loc[term.strip("()"), quantity]  # R's "(Intercept)"
        if quantity == "estimate":
            mine = math.log(mine)
        assert mine == pytest.approx(value, rel=GLM, abs=1e-10), (label, term, quantity)
    assert "clusters: cluster-robust standard errors are biased downwards" in ours.loc["intervention:after",
                                                                                          "warnings"]


@pytest.mark.parametrize("dataset", ["tiny", "medium"])
def test_the_random_intercept_ratio_of_odds_ratios_matches_glmer(did, results, dataset):
    ours = mixed_logistic(did[did.dataset == dataset], "y ~ intervention * after + age", "site").set_index("term")
    label = f"{dataset}_adjusted_mixed"
    assert math.log(ours.loc["intervention:after", "estimate"]) == pytest.approx(
        results(label, "intervention:after", "estimate"), rel=MIXED)
    assert ours.loc["intervention:after", "std_error"] == pytest.approx(
        results(label, "intervention:after", "std_error"), rel=MIXED)


def test_the_wild_cluster_bootstrap_matches_its_hand_calculation_in_r(did, results):
    tiny = did[did.dataset == "tiny"]
    ours = wild_cluster_bootstrap(tiny, "y ~ intervention * after", "intervention:after", "site",
                                  reps=6 ** 6, seed=1).iloc[0]
    r = results.items("tiny_wild_bootstrap")
    assert ours["df"] == r[("intervention:after", "replicates")] == 46656  # enumerated, on both sides
    assert "all 46656 combinations" in ours["method"]
    # a ratio of counts (540 of 46,656), equal but for R's 15 significant digits
    assert ours["p_value"] * 46656 == pytest.approx(540) and ours["p_value"] == pytest.approx(
        r[("intervention:after", "p_value")], rel=1e-13)
    assert ours["statistic"] == pytest.approx(r[("intervention:after", "statistic")], rel=1e-8)
    assert math.log(ours["estimate"]) == pytest.approx(r[("intervention:after", "estimate")], rel=GLM)
    assert ours["std_error"] == pytest.approx(r[("intervention:after", "std_error")], rel=GLM)
    for end in ("conf_low", "conf_high"):
        assert math.log(ours[end]) == pytest.approx(r[("intervention:after", end)], abs=BOOT)


def test_drawn_weights_are_webbs_and_follow_the_seed():
    drawn, enumerated = webb_weights(8, 999, 20140701)
    assert not enumerated and drawn.shape == (999, 8) and set(np.round(np.unique(drawn), 12)) == set(
        np.round(WEBB, 12))
    assert np.array_equal(drawn, webb_weights(8, 999, np.random.default_rng(20140701))[0])
    assert not np.array_equal(drawn, webb_weights(8, 999, 1)[0])


def test_the_bootstrap_is_reproducible_and_close_to_the_enumeration(did):
    tiny = did[did.dataset == "tiny"]
    args = (tiny, "y ~ intervention * after", "intervention:after", "site")
    first = wild_cluster_bootstrap(*args, reps=9999, seed=7)
    assert first.equals(wild_cluster_bootstrap(*args, reps=9999, seed=7))
    exact = wild_cluster_bootstrap(*args, reps=6 ** 6)
    # 9,999 draws estimate the exact p-value (about 0.012) within a few Monte Carlo SEs (about 0.001)
    assert first["p_value"].item() == pytest.approx(exact["p_value"].item(), abs=0.005)


def test_degenerate_inputs_say_why():
    one = pd.DataFrame({"site": ["a"] * 8, "intervention": [1] * 8, "after": [0, 1] * 4, "y": [0, 1, 1, 0] * 2})
    rows = did_logistic_cluster(one, "y ~ after", "site")
    assert rows["estimate"].isna().all() and "Fewer than 2 clusters" in rows["warnings"].iloc[0]
    boot = wild_cluster_bootstrap(one, "y ~ after", "after", "site")
    assert math.isnan(boot["estimate"].item()) and "Fewer than 2 clusters" in boot["warnings"].item()
    empty = difference_in_differences(3, 10, 2, 10, 0, 0, 1, 5).set_index("term")
    assert math.isnan(empty.loc["difference_in_differences", "estimate"])
    assert "No patients in the control before group" in empty.loc["difference_in_differences", "warnings"]
    with pytest.raises(ValueError, match="events"):
        difference_in_differences(11, 10, 2, 10, 1, 5, 1, 5)


@pytest.mark.parametrize("dataset", ["parallel", "diverging"])
@pytest.mark.parametrize("covariance", ["cluster", "model"])
def test_event_study_matches_r(reference_data, results, dataset, covariance):
    data = reference_data("did_times").query("dataset == @dataset")
    cluster = "site" if covariance == "cluster" else None
    ours = event_study(data, "time", -1, covariates=("age",), cluster=cluster).set_index("term")
    expected = results.items(f"{dataset}_{covariance}_event")
    assert {t for t, _ in expected} == set(ours.index) - {"event_-1"}
    for (term, quantity), value in expected.items():
        assert ours.loc[term, quantity] == pytest.approx(value, rel=GLM), (dataset, covariance, term, quantity)
    reference = ours.loc["event_-1"]
    assert reference["estimate"] == 1 and math.isnan(reference["conf_low"])


@pytest.mark.parametrize("dataset", ["parallel", "diverging"])
@pytest.mark.parametrize("covariance", ["cluster", "model"])
def test_parallel_trends_matches_r(reference_data, results, dataset, covariance):
    data = reference_data("did_times").query("dataset == @dataset")
    cluster = "site" if covariance == "cluster" else None
    ours = parallel_trends(data, "time", 0, covariates=("age",), cluster=cluster).set_index("term")
    for (term, quantity), value in results.items(f"{dataset}_{covariance}_trends").items():
        assert ours.loc[term, quantity] == pytest.approx(value, rel=GLM), (dataset, covariance, term, quantity)


def test_parallel_trends_tells_the_diverging_groups_apart(reference_data):
    # the generator gives the intervention group a pre-period fall of 0.3 log odds per time point in
    # `diverging` and none in `parallel`: the linear comparison finds the first and not the second
    data = reference_data("did_times")
    slopes = {name: parallel_trends(data.query("dataset == @name"), "time", 0, cluster="site").set_index("term")
              .loc["pre_trend_ratio"] for name in ("parallel", "diverging")}
    assert slopes["diverging"]["p_value"] < 0.05 < slopes["parallel"]["p_value"]
    assert slopes["diverging"]["conf_high"] < 1


def test_parallel_trends_needs_three_points_before(reference_data):
    data = reference_data("did_times").query("dataset == 'parallel' and time >= -2")
    rows = parallel_trends(data, "time", 0, cluster="site")
    assert rows["estimate"].isna().all() and rows["statistic"].isna().all()
    assert "needs at least 3" in rows["warnings"].iloc[0]


def test_event_study_leaves_out_a_time_point_one_group_lacks(reference_data):
    data = reference_data("did_times").query("dataset == 'parallel'")
    data = data[~((data["time"] == 1) & (data["intervention"] == 0))].rename(columns={"time": "quarter"})
    rows = event_study(data, "quarter", -1, cluster="site").set_index("term")
    assert "event_1" not in rows.index and "one group only" in rows["warnings"].iloc[0]
    with pytest.raises(ValueError, match="reference time point 5"):
        event_study(data, "quarter", 5)


def test_rows_missing_a_covariate_are_left_out_of_the_event_study_and_trends(reference_data):
    data = reference_data("did_times").query("dataset == 'parallel'").reset_index(drop=True)
    holed = data.assign(age=data["age"].mask(data.index % 10 == 0))
    events = event_study(holed, "time", -1, covariates=("age",), cluster="site").set_index("term")
    complete = event_study(holed.dropna(subset=["age"]), "time", -1, covariates=("age",), cluster="site")
    assert events.loc["event_0", "estimate"] == pytest.approx(complete.set_index("term").loc["event_0", "estimate"])
    assert events.loc["event_0", "n"] == int(((holed["time"] == 0) & holed["age"].notna()).sum())
    trends = parallel_trends(holed, "time", 0, covariates=("age",), cluster="site").set_index("term")
    assert trends.loc["parallel_trends_wald", "n"] == int(((holed["time"] < 0) & holed["age"].notna()).sum())


def test_one_cluster_or_no_events_are_not_estimated_with_a_sentence(reference_data):
    data = reference_data("did_times").query("dataset == 'parallel'")
    for d in (data.assign(site="one"), data.assign(y=0)):
        events = event_study(d, "time", -1, cluster="site")
        assert events["estimate"].isna().all() and "fewer than 2 clusters" in events["warnings"].iloc[0]
        trends = parallel_trends(d, "time", 0, cluster="site")
        assert trends["statistic"].isna().all() and "2 clusters" in trends["warnings"].iloc[0]


@pytest.mark.parametrize(("kind", "family", "outcome", "exposure"), [
    ("count", "poisson", "events", "days"), ("continuous", "gaussian", "score", None)])
def test_count_and_continuous_outcomes_match_glm_lm_and_vcovcl(reference_data, results, kind, family, outcome,
                                                               exposure):
    data = reference_data("did_other").rename(columns={outcome: "y"})
    ours = did_cluster_robust(data, "y ~ intervention * after + age", "site", family=family,
                              exposure=exposure).set_index("term")
    for (term, quantity), value in results.items(f"other_{kind}_cluster").items():
        mine = ours.loc[term.replace("(Intercept)", "Intercept"), quantity]
        if quantity == "estimate" and family == "poisson":
            mine = math.log(mine)
        assert mine == pytest.approx(value, rel=GLM, abs=1e-10), (kind, term, quantity)
    interaction = ours.loc["intervention:after"]
    if family == "gaussian":  # a difference of means: the interval is estimate +/- 1.96 SE, not exponentiated
        assert interaction["conf_low"] == pytest.approx(interaction["estimate"] - 1.959963984540054 *
                                                        interaction["std_error"])
    assert "Only 12 clusters" in interaction["warnings"] and "too narrow" in interaction["warnings"]


def test_the_mixed_models_of_counts_and_continuous_outcomes_match_glmer_and_lmer(reference_data, results):
    from analysis.stats import linear_mixed, mixed_poisson

    data = reference_data("did_other")
    count = mixed_poisson(data, "events ~ intervention * after + age", "site", exposure="days").set_index("term")
    assert math.log(count.loc["intervention:after", "estimate"]) == pytest.approx(
        results("other_count_mixed", "intervention:after", "estimate"), rel=MIXED)
    assert count.loc["intervention:after", "std_error"] == pytest.approx(
        results("other_count_mixed", "intervention:after", "std_error"), rel=MIXED)
    score = linear_mixed(data, "score ~ intervention * after + age", "site").set_index("term")
    assert score.loc["intervention:after", "estimate"] == pytest.approx(
        results("other_continuous_mixed", "intervention:after", "estimate"), rel=1e-5)
    assert score.loc["intervention:after", "std_error"] == pytest.approx(
        results("other_continuous_mixed", "intervention:after", "std_error"), rel=1e-4)


@pytest.mark.parametrize(("kind", "family", "outcome", "exposure"), [
    ("count", "poisson", "events", "days"), ("continuous", "gaussian", "score", None)])
@pytest.mark.parametrize("covariance", ["cluster", "model"])
def test_event_study_and_trends_of_counts_and_continuous_outcomes_match_glm_lm(reference_data, results, kind,
                                                                               family, outcome, exposure,
                                                                               covariance):
    data = reference_data("did_times_other").rename(columns={outcome: "y"})
    cluster = "site" if covariance == "cluster" else None
    events = event_study(data, "time", -1, covariates=("age",), cluster=cluster, family=family,
                         exposure=exposure).set_index("term")
    expected = results.items(f"times_{kind}_{covariance}_event")
    assert {t for t, _ in expected} == set(events.index) - {"event_-1"}
    for (term, quantity), value in expected.items():
        assert events.loc[term, quantity] == pytest.approx(value, rel=GLM, abs=1e-12), (kind, term, quantity)
    # the reference point: a ratio of 1, or a difference of 0
    assert events.loc["event_-1", "estimate"] == (1.0 if family == "poisson" else 0.0)
    trends = parallel_trends(data, "time", 0, covariates=("age",), cluster=cluster, family=family,
                             exposure=exposure).set_index("term")
    expected = results.items(f"times_{kind}_{covariance}_trends")
    assert {t for t, _ in expected} == set(trends.index)  # pre_trend_ratio, or pre_trend_difference
    for (term, quantity), value in expected.items():
        assert trends.loc[term, quantity] == pytest.approx(value, rel=GLM, abs=1e-12), (kind, term, quantity)
