"""Power by simulation (analysis/stats/simulate.py) against the analytic answers, within Monte Carlo error.

The simulation draws from the random-intercept logistic model, whose baseline and odds ratio are conditional
(at a random intercept of 0); the analytic formulas take the marginal proportions and the ICC on the
proportion scale. Both are computed here by hand, independently of the simulator, by Gauss-Hermite
quadrature over the random intercept u ~ N(0, s^2):

    p_marginal = E[expit(logit(p) + u)],   ICC = Var(expit(logit(p) + u)) / (p_m (1 - p_m))

(the "simulation method" ICC of a logistic-normal model on the proportion scale: Goldstein, Browne and
Rasbash 2002, Understanding Statistics 1:223-31). The tolerance of each comparison is 3 Monte Carlo
standard errors, sqrt(P (1 - P) / S) at the analytic power P and S datasets (Morris, White and Crowther
2019): a simulator whose power differed by a clinically meaningful 0.1 would fail.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import special

from analysis.stats import power, simulate
from analysis.stats.simulate import Scenario, simulate_power, tasks

S = 800  # datasets per scenario: a Monte Carlo SE of at most 0.018 on a power
S_SMALL = 600  # where the tolerance can be wider: at most 0.020


def marginal(baseline: float, log_or: float, sd: float) -> tuple[float, float, float]:
    """Marginal proportions before and after, and the before-period ICC on the proportion scale."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    before = special.expit(special.logit(baseline) + sd * nodes)
    after = special.expit(special.logit(baseline) + log_or + sd * nodes)
    p1, p2 = float(weights @ before), float(weights @ after)
    return p1, p2, float(weights @ (before - p1) ** 2) / (p1 * (1 - p1))


def mc_tolerance(p: float, simulations: int = S) -> float:
    return 3 * math.sqrt(p * (1 - p) / simulations)


def test_docstring_example():
    result = doctest.testmod(simulate, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_marginal_quadrature_is_right_where_it_is_known():
    # with no cluster variation the marginal proportion is the conditional one and the ICC is 0
    assert marginal(0.3, math.log(0.5), 0.0) == pytest.approx((0.3, 0.3 * 0.5 / (0.7 + 0.15), 0.0), abs=1e-12)
    # by symmetry, a baseline of 0.5 stays 0.5 on average whatever the SD
    assert marginal(0.5, 0.0, 1.0)[0] == pytest.approx(0.5, abs=1e-12)


def test_before_after_agrees_with_the_design_effect():
    # 60 clusters per period of 20 patients, cluster SD 0.5 on the logit scale, conditional OR 0.75 at 30%:
    # marginal 0.3063 -> 0.2518, ICC 0.0491, design effect 1 + 19 x 0.0491 = 1.933, analytic power 0.583
    log_or = math.log(0.75)
    p1, p2, icc = marginal(0.3, log_or, 0.5)
    assert power.design_effect(20, icc) == pytest.approx(1.933, abs=1e-3)
    analytic = power.cluster_power(p1, p2, clusters=60, cluster_size=20, icc=icc)["estimate"].iloc[0]
    assert analytic == pytest.approx(0.583, abs=1e-3)
    got = simulate_power([Scenario("before_after", 0.3, log_or, clusters=60, cluster_size=20, cluster_sd=0.5)],
                         S, seed=20261130).iloc[0]
    assert got["term"] == "power" and got["n"] == S
    assert abs(got["estimate"] - analytic) < mc_tolerance(analytic)  # 0.052
    assert got["conf_low"] < got["estimate"] < got["conf_high"]
    assert got["std_error"] == pytest.approx(math.sqrt(got["estimate"] * (1 - got["estimate"]) / S))
    assert got["failed"] == 0
    # the estimator of the conditional log odds ratio is close to the truth (bias check, 3 SE of the mean)
    assert abs(got["mean_log_or"] - log_or) < 0.05


def test_stepped_wedge_agrees_with_hussey_and_hughes():
    # 10 clusters crossing over in 4 steps (5 periods), 20 patients per cluster-period, SD 0.3, OR 0.7
    log_or = math.log(0.7)
    p1, p2, icc = marginal(0.3, log_or, 0.3)
    analytic = power.stepped_wedge_power(p1, p2, clusters=10, steps=4, cluster_size=20, icc=icc)["estimate"].iloc[0]
    got = simulate_power([Scenario("stepped_wedge", 0.3, log_or, clusters=10, cluster_size=20, cluster_sd=0.3,
                                   steps=4)], S_SMALL, seed=7).iloc[0]
    assert abs(got["estimate"] - analytic) < mc_tolerance(analytic, S_SMALL)  # 0.057 around 0.31


def test_type_i_error_is_alpha_within_monte_carlo_error():
    got = simulate_power([Scenario("before_after", 0.3, 0.0, clusters=40, cluster_size=20, cluster_sd=0.5)],
                         S_SMALL, seed=11).iloc[0]
    assert got["term"] == "type_i_error"
    assert abs(got["estimate"] - 0.05) < mc_tolerance(0.05, S_SMALL)  # 0.027


@pytest.mark.parametrize("design, extra", [
    ("controlled_before_after", {"clusters": 3}),
    ("interrupted_time_series", {"clusters": 1, "months": 12}),
])
def test_the_other_designs_estimate_their_effect(design, extra):
    # no cluster variation and large cells: an OR of 0.5 is found every time, and the mean of 50 estimates is
    # within 3 SE of the true log OR. By hand, the controlled design's SE of one estimate is the root of the
    # sum of 1 / (n p q) over its four cells of 1,200 patients (three at p = 0.3, one at 0.176):
    # sqrt(3 / 252 + 1 / 174) = 0.133, of the mean of 50 0.0188, 3 SE 0.056; the time series' is smaller
    got = simulate_power([Scenario(design, 0.3, math.log(0.5), cluster_size=400, **extra)], 50, seed=3).iloc[0]
    assert got["mean_log_or"] == pytest.approx(math.log(0.5), abs=0.056)
    assert got["estimate"] == 1.0 and got["failed"] == 0
    assert math.isnan(got["singular"])  # no random effect in these analyses


def test_results_do_not_depend_on_the_order_tasks_run_in():
    scenarios = [Scenario("before_after", 0.2, math.log(0.6), clusters=8, cluster_size=30, cluster_sd=0.4,
                          cluster_cv=0.5)] * 2
    every = tasks(scenarios, 60, seed=5)
    assert [len(t.seeds) for t in every] == [25, 25, 10] * 2

    def backwards(function, items):
        return [function(item) for item in items[::-1]][::-1]

    forward = simulate_power(scenarios, 60, 5)
    assert forward.equals(simulate_power(scenarios, 60, 5, map=backwards))
    # common random numbers: dataset i of each scenario draws the same numbers
    assert forward.iloc[0].equals(forward.iloc[1])
    assert not forward["mean_log_or"].equals(simulate_power(scenarios, 60, 6)["mean_log_or"])


def test_a_design_with_no_events_fails_visibly_not_silently():
    # 1 patient per cluster-period at a baseline of 0.1%: most datasets have no event at all
    got = simulate_power([Scenario("before_after", 0.001, math.log(0.5), clusters=2, cluster_size=1)], 25,
                         seed=1).iloc[0]
    assert got["estimate"] == 0.0
    assert got["failed"] > 0.5 and "fits failed" in got["warnings"]


@pytest.mark.parametrize("change, message", [
    ({"design": "cluster_randomised"}, "design must be one of"),
    ({"baseline": 1.0}, "baseline must be between 0 and 1"),
    ({"design": "stepped_wedge", "steps": None}, "needs steps"),
    ({"design": "interrupted_time_series", "months": 2}, "at least 3 before and 3 after"),
    ({"design": "controlled_before_after", "clusters": 1}, "needs at least 2 clusters"),
    ({"cluster_size": 0}, "cluster_size must be at least 1"),
])
def test_bad_scenarios_are_refused(change, message):
    base = dict(design="before_after", baseline=0.3, log_or=0.2, clusters=4, cluster_size=10)
    with pytest.raises(ValueError, match=message):
        Scenario(**{**base, **change})


@pytest.mark.parametrize("simulations", [0, -5, 2.5, True])
def test_the_number_of_simulations_must_be_a_positive_whole_number(simulations):
    with pytest.raises(ValueError, match="at least 1"):
        tasks([Scenario("before_after", 0.3, 0.2, clusters=4, cluster_size=10)], simulations, seed=1)
