"""The wild cluster bootstrap (analysis/stats/designs.py) for a count (Poisson, exposure offset: the ratio of rate
ratios) and a continuous outcome (linear: the difference in differences of means), against a calculation written
here independently: the restricted fit by least squares (linear) or by scipy's optimiser on the Poisson
log-likelihood (not statsmodels' IRLS), the efficient score as the score of the regressor residualised on the
others (Frisch-Waugh-Lovell, weighted by the restricted fit's variance for Poisson), and the p-value by full
enumeration of the 6^5 Webb weight vectors of 5 clusters. The binary case is checked against R in test_designs.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from analysis.stats.designs import wild_cluster_bootstrap

WEBB = [-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)]
FORMULA = "y ~ intervention * after + age"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20261130)
    rows = []
    for ward in range(5):  # wards 0-2 intervention, 3-4 control
        for after in (0, 1):
            n = 30
            age = rng.normal(70, 10, n)
            days = rng.integers(1, 15, n)
            effect = -0.3 * (ward < 3) * after
            rows.append(pd.DataFrame({
                "ward": f"w{ward}", "intervention": int(ward < 3), "after": after, "age": age, "days": days,
                "count": rng.poisson(days * np.exp(-2 + 0.1 * after + effect + 0.01 * (age - 70)
                                                   + 0.2 * rng.normal())),
                "score": 50 + 3 * after - 4 * (ward < 3) * after + 0.2 * (age - 70) + rng.normal(0, 5, n)
                + rng.normal(0, 2)}))
    return pd.concat(rows, ignore_index=True)


def matrices(d: pd.DataFrame, outcome: str):
    x = np.column_stack([np.ones(len(d)), d["intervention"], d["after"], d["intervention"] * d["after"], d["age"]])
    return d[outcome].to_numpy(float), x.astype(float), pd.factorize(d["ward"])[0]


def enumerated_p(scores: np.ndarray) -> float:
    t = scores.sum() / math.sqrt((scores ** 2).sum())
    every = np.array(list(itertools.product(WEBB, repeat=len(scores))))  # all 6^G sign-and-size vectors
    boot = np.abs(every @ scores) / np.sqrt((every ** 2) @ (scores ** 2))
    return float(np.sum(boot >= abs(t) - 1e-12 * max(1.0, abs(t)))) / 6 ** len(scores)


def linear_scores(y, x, codes, b0):
    rest, xk = np.delete(x, 3, axis=1), x[:, 3]
    target = y - b0 * xk
    u = target - rest @ np.linalg.lstsq(rest, target, rcond=None)[0]
    residualised = xk - rest @ np.linalg.lstsq(rest, xk, rcond=None)[0]
    return np.bincount(codes, weights=residualised * u)


def poisson_scores(y, x, codes, b0, log_exposure):
    rest, xk = np.delete(x, 3, axis=1), x[:, 3]
    offset = b0 * xk + log_exposure
    centre = rest.mean(0)
    scaled = rest - np.r_[0, centre[1:]]  # centred age: a better-conditioned problem for the optimiser

    def loss(b):
        eta = scaled @ b + offset
        return np.exp(eta).sum() - y @ eta, scaled.T @ (np.exp(eta) - y)

    b = optimize.minimize(loss, np.r_[math.log(y.sum() / np.exp(offset).sum()), np.zeros(rest.shape[1] - 1)],
                          jac=True, method="BFGS", options={"gtol": 1e-11, "maxiter": 10000}).x
    mu = np.exp(scaled @ b + offset)
    assert np.abs(rest.T @ (y - mu)).max() < 1e-6 * y.sum()  # the restricted fit's score is zero
    weighted = rest * mu[:, None]
    residualised = xk - rest @ np.linalg.solve(rest.T @ weighted, weighted.T @ xk)
    return np.bincount(codes, weights=residualised * (y - mu))


def test_a_continuous_outcome_p_value_and_interval_match_an_independent_enumeration(data):
    y, x, codes = matrices(data, "score")
    got = wild_cluster_bootstrap(data.rename(columns={"score": "y"}), FORMULA, "intervention:after", "ward",
                                 family="gaussian").iloc[0]
    assert got["df"] == 6 ** 5  # enumerated: no randomness
    assert got["p_value"] == pytest.approx(enumerated_p(linear_scores(y, x, codes, 0.0)), abs=1e-12)
    ols = np.linalg.lstsq(x, y, rcond=None)[0][3]
    assert got["estimate"] == pytest.approx(ols, rel=1e-10)  # a difference, not exponentiated
    # each end of the interval is where the independent p-value crosses 0.05
    for end, inward in ((got["conf_low"], 1), (got["conf_high"], -1)):
        assert enumerated_p(linear_scores(y, x, codes, end + inward * 1e-5)) > 0.05
        assert enumerated_p(linear_scores(y, x, codes, end - inward * 1e-5)) <= 0.05
    assert "Linear regression" in got["method"] and "difference with 95% CI" in got["method"]


def test_a_count_outcome_with_exposure_matches_an_independent_enumeration(data):
    y, x, codes = matrices(data, "count")
    log_exposure = np.log(data["days"].to_numpy(float))
    got = wild_cluster_bootstrap(data.rename(columns={"count": "y"}), FORMULA, "intervention:after", "ward",
                                 family="poisson", exposure="days").iloc[0]
    assert got["p_value"] == pytest.approx(enumerated_p(poisson_scores(y, x, codes, 0.0, log_exposure)), abs=1e-12)
    low, high = math.log(got["conf_low"]), math.log(got["conf_high"])
    assert low < math.log(got["estimate"]) < high  # a rate ratio: exponentiated
    for end, inward in ((low, 1), (high, -1)):
        assert enumerated_p(poisson_scores(y, x, codes, end + inward * 1e-5, log_exposure)) > 0.05
        assert enumerated_p(poisson_scores(y, x, codes, end - inward * 1e-5, log_exposure)) <= 0.05
    assert "offset log days" in got["method"] and "rate ratio" in got["method"]


def test_at_its_own_estimate_the_restricted_score_is_zero_and_the_p_value_one(data):
    # imposing the unrestricted estimate as the null changes nothing: the score sums to zero, T = 0, p = 1
    d = data.rename(columns={"count": "y"})
    first = wild_cluster_bootstrap(d, FORMULA, "intervention:after", "ward", family="poisson", exposure="days")
    at = wild_cluster_bootstrap(d, FORMULA, "intervention:after", "ward", family="poisson", exposure="days",
                                null=math.log(first["estimate"].iloc[0]))
    assert abs(at["statistic"].iloc[0]) < 1e-6 and at["p_value"].iloc[0] == 1.0


def test_an_unknown_family_is_refused(data):
    with pytest.raises(ValueError, match="family must be one of"):
        wild_cluster_bootstrap(data.rename(columns={"score": "y"}), FORMULA, "intervention:after", "ward",
                               family="gamma")


def test_one_cluster_is_not_estimated_and_rows_without_exposure_are_left_out(data):
    d = data.rename(columns={"score": "y"})
    one = wild_cluster_bootstrap(d.assign(ward="w0"), FORMULA, "intervention:after", "ward", family="gaussian")
    assert math.isnan(one["estimate"].iloc[0]) and "Fewer than 2 clusters" in one["warnings"].iloc[0]
    # a missing or zero exposure cannot be an offset: those rows are left out, as if they were not there
    counts = data.rename(columns={"count": "y"})
    holed = counts.astype({"days": float})
    holed.loc[[3, 40], "days"] = [float("nan"), 0.0]
    with_holes = wild_cluster_bootstrap(holed, FORMULA, "intervention:after", "ward", family="poisson",
                                        exposure="days")
    without = wild_cluster_bootstrap(counts.drop(index=[3, 40]), FORMULA, "intervention:after", "ward",
                                     family="poisson", exposure="days")
    assert with_holes["n"].iloc[0] == len(counts) - 2
    assert with_holes["estimate"].iloc[0] == pytest.approx(without["estimate"].iloc[0], rel=1e-12)
    assert with_holes["p_value"].iloc[0] == without["p_value"].iloc[0]
