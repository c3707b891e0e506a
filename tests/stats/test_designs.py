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
    did_logistic_cluster,
    difference_in_differences,
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
