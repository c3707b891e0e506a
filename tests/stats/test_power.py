"""Power and sample size (analysis/stats/power.py) against published examples and hand calculations."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats import power
from analysis.stats.tidy import COLUMNS


def test_docstring_examples():
    result = doctest.testmod(power, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_sample_size_matches_r_power_prop_test_documented_example():
    # R's stats::power.prop.test help page (example section of power.prop.test.Rd) prints:
    #   power.prop.test(p1 = .50, p2 = .75, power = .90)  ## =>     n = 76.7
    #   power.prop.test(n = 50, p1 = .50, p2 = .75)       ## => power = 0.740
    # Hand calculation: pbar = 0.625; sqrt(2 pbar qbar) = sqrt(0.46875) = 0.684653;
    # sqrt(p1 q1 + p2 q2) = sqrt(0.4375) = 0.661438; z_0.975 = 1.959964, z_0.90 = 1.281552;
    # n = (1.959964 * 0.684653 + 1.281552 * 0.661438)^2 / 0.25^2 = 2.189553^2 / 0.0625 = 76.707
    size = power.sample_size_two_proportions(0.50, 0.75, alpha=0.05, power=0.90)
    assert list(size.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert round(size["estimate"].iloc[0], 1) == 76.7
    assert size["estimate"].iloc[0] == pytest.approx(76.707, abs=1e-3)
    assert size["n"].iloc[0] == 77
    # power at n = 50: Phi((sqrt(50) 0.25 - 1.959964 * 0.684653) / 0.661438) = Phi(0.643874) = 0.740
    at_50 = power.power_two_proportions(50, 0.50, 0.75)["estimate"].iloc[0]
    assert round(at_50, 3) == 0.740
    assert at_50 == pytest.approx(stats.norm.cdf((math.sqrt(50) * 0.25 - 1.959964 * 0.684653) / 0.661438), abs=1e-5)


def test_power_and_size_invert_each_other():
    n = power.sample_size_two_proportions(0.4, 0.6, power=0.8)["estimate"].iloc[0]
    assert power.power_two_proportions(n, 0.4, 0.6)["estimate"].iloc[0] == pytest.approx(0.8, abs=1e-9)


def test_effect_scales():
    # OR 2 at p0 = 0.4: 2 * 0.4 / (0.6 + 0.8) = 0.8 / 1.4 = 0.571429
    assert power.p_after(0.4, 2.0, "odds_ratio") == pytest.approx(0.8 / 1.4)
    assert power.p_after(0.4, 0.2, "risk_difference") == pytest.approx(0.6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        power.p_after(0.4, 0.7, "risk_difference")


def test_design_effects_eldridge_2006():
    # Eldridge, Ashby and Kerry 2006 (Int J Epidemiol 35:1292): DE = 1 + ((cv^2 + 1) m - 1) ICC;
    # cv = 0 gives the equal-size 1 + (m - 1) ICC. m = 20, ICC = 0.05: 1 + 19 * 0.05 = 1.95;
    # cv = 0.5: 1 + (1.25 * 20 - 1) * 0.05 = 1 + 24 * 0.05 = 2.2
    assert power.design_effect(20, 0.05) == pytest.approx(1.95)
    assert power.design_effect(20, 0.05, cv=0.5) == pytest.approx(2.2)
    assert power.design_effect(1, 0.3) == 1


def test_icc_from_latent_cluster_sd():
    # s = 0.3: 0.09 / (0.09 + pi^2 / 3) = 0.09 / 3.379868 = 0.026628
    assert power.icc_from_cluster_sd(0.3) == pytest.approx(0.09 / (0.09 + math.pi**2 / 3))
    assert power.icc_from_cluster_sd(0.3) == pytest.approx(0.026628, abs=1e-6)


def test_cluster_power_uses_the_effective_size():
    # 10 clusters of 20 per period, ICC 0.05: DE 1.95, effective n = 200 / 1.95 = 102.564 per period
    got = power.cluster_power(0.4, 0.6, clusters=10, cluster_size=20, icc=0.05, power=0.8)
    plain = power.power_two_proportions(200 / 1.95, 0.4, 0.6)["estimate"].iloc[0]
    assert got["estimate"].iloc[0] == pytest.approx(plain)
    # clusters for 80%: n = (1.959964 sqrt(0.5) + 0.841621 sqrt(0.48))^2 / 0.2^2 = 1.968996^2 / 0.04 = 96.92,
    # times 1.95 = 189.0 patients, 9.45 -> 10 clusters of 20
    n = power.sample_size_two_proportions(0.4, 0.6, power=0.8)["estimate"].iloc[0]
    assert n == pytest.approx(96.92, abs=0.01)
    assert got["estimate"].iloc[1] == math.ceil(n * 1.95 / 20) == 10
    # with no clustering the cluster power is the plain power
    flat = power.cluster_power(0.4, 0.6, clusters=100, cluster_size=1, icc=0.3)
    assert flat["estimate"].iloc[0] == pytest.approx(power.power_two_proportions(100, 0.4, 0.6)["estimate"].iloc[0])


def test_hussey_hughes_variance_by_hand():
    # I = 2 clusters, T = 3 periods, X = [[0, 1, 1], [0, 0, 1]]: U = 3, column sums (0, 1, 2) so W = 5,
    # row sums (2, 1) so V = 5. Denominator (I U - W) s2 + (U^2 + I T U - T W - I V) tau2 =
    # (6 - 5) s2 + (9 + 18 - 15 - 10) tau2 = s2 + 2 tau2; Var = 2 s2 (s2 + 3 tau2) / (s2 + 2 tau2).
    # sigma^2 = 10, m = 10 (s2 = 1), tau2 = 0.5: Var = 2 * 1 * 2.5 / 2 = 2.5
    x = np.array([[0, 1, 1], [0, 0, 1]])
    assert power.stepped_wedge_variance(x, 10.0, 0.5, 10) == pytest.approx(2.5)
    # tau2 = 0: Var = 2 s2 = 2
    assert power.stepped_wedge_variance(x, 10.0, 0.0, 10) == pytest.approx(2.0)


def test_hussey_hughes_variance_equals_the_generalised_least_squares_variance():
    # The closed form is the GLS variance of theta in Y_ij = mu + beta_j + theta X_ij + a_i + e_ij
    # (cluster-period means, Cov = s2 I + tau2 J within a cluster): check it on a 6-cluster, 3-step design.
    x = power._stepped_wedge_design(6, 3)
    i_, t_ = x.shape
    s2, tau2 = 0.25 / 15, 0.01
    cov = s2 * np.eye(t_) + tau2 * np.ones((t_, t_))
    inv = np.linalg.inv(cov)
    info = np.zeros((t_ + 1, t_ + 1))
    for row in x:
        design = np.column_stack([np.eye(t_), row])  # period effects, then theta
        info += design.T @ inv @ design
    gls = np.linalg.inv(info)[-1, -1]
    assert power.stepped_wedge_variance(x, 0.25, tau2, 15) == pytest.approx(gls, rel=1e-10)


def test_stepped_wedge_power_by_hand():
    # p1 = 0.4, p2 = 0.6: sigma^2 = pbar qbar = 0.25; m = 25, so s2 = 0.01; ICC chosen so that
    # tau2 = ICC sigma^2 / (1 - ICC) = 0.005 (ICC = 0.02 / 1.02). The 2-cluster, 2-step design above:
    # Var = 2 * 0.01 * (0.01 + 0.015) / (0.01 + 0.01) = 0.025;
    # power = Phi(0.2 / sqrt(0.025) - 1.959964) = Phi(1.264911 - 1.959964) = Phi(-0.695053) = 0.2435
    got = power.stepped_wedge_power(0.4, 0.6, clusters=2, steps=2, cluster_size=25, icc=0.02 / 1.02)
    assert got["std_error"].iloc[0] == pytest.approx(math.sqrt(0.025))
    assert got["estimate"].iloc[0] == pytest.approx(stats.norm.cdf(-0.695053), abs=1e-6)
    assert round(got["estimate"].iloc[0], 4) == 0.2435
    assert power._stepped_wedge_design(5, 2).tolist() == [[0, 1, 1]] * 3 + [[0, 0, 1]] * 2


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal"):
        power.sample_size_two_proportions(0.4, 0.4)
    with pytest.raises(ValueError, match="ICC"):
        power.design_effect(10, 1.0)
    with pytest.raises(ValueError, match="at least one cluster per step"):
        power.stepped_wedge_power(0.4, 0.6, clusters=2, steps=3, cluster_size=10, icc=0.05)
