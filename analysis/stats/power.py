"""Power and sample size for the next study: analytic answers where formulas exist.

Two proportions, before (p1) vs after (p2), by the normal approximation of R's ``power.prop.test``
(pooled variance under the null, unpooled under the alternative; the negligible other tail ignored)::

    power = Phi((sqrt(n) |p1 - p2| - z sqrt(2 pbar qbar)) / sqrt(p1 q1 + p2 q2)),  z = z_{1 - alpha/2}
    n     = (z sqrt(2 pbar qbar) + z_power sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2   per group

with pbar = (p1 + p2) / 2. Clusters inflate the sample size by the design effect 1 + (m - 1) ICC, or with
unequal cluster sizes (mean m, coefficient of variation cv) 1 + ((cv^2 + 1) m - 1) ICC (Eldridge, Ashby
and Kerry 2006, Int J Epidemiol 35:1292); power with k clusters of m per period is the power at the
effective size k m / DE. A random-intercept logistic model's cluster SD s on the latent scale gives
ICC = s^2 / (s^2 + pi^2 / 3). A stepped wedge follows Hussey and Hughes (2007, Contemp Clin Trials 28:182),
see :func:`stepped_wedge_variance`. Each function returns a tidy frame (:mod:`analysis.stats.tidy`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats.tidy import frame, row

__all__ = [
    "cluster_power",
    "design_effect",
    "icc_from_cluster_sd",
    "p_after",
    "power_two_proportions",
    "sample_size_two_proportions",
    "stepped_wedge_power",
    "stepped_wedge_variance",
]

_METHOD = "normal approximation, pooled variance under the null (as R power.prop.test)"


def _check_p(p: float, which: str) -> float:
    if not 0 < p < 1:
        raise ValueError(f"{which} must be between 0 and 1, got {p!r}")
    return float(p)


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    return float(stats.norm.ppf(1 - alpha / 2))


def _terms(p1: float, p2: float) -> tuple[float, float, float]:
    p1, p2 = _check_p(p1, "p1"), _check_p(p2, "p2")
    if p1 == p2:
        raise ValueError("p1 and p2 are equal: there is no effect to detect")
    pbar = (p1 + p2) / 2
    return abs(p1 - p2), math.sqrt(2 * pbar * (1 - pbar)), math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))


def p_after(baseline: float, effect: float, scale: str) -> float:
    """The after-period proportion: baseline + effect (``risk_difference``) or, for ``odds_ratio``,
    OR p0 / (1 - p0 + OR p0).

    >>> round(float(p_after(0.4, 2.0, "odds_ratio")), 4)
    0.5714
    """
    baseline = _check_p(baseline, "baseline")
    if scale == "risk_difference":
        return _check_p(baseline + effect, "baseline + effect")
    if scale == "odds_ratio":
        if not effect > 0:
            raise ValueError(f"an odds ratio must be positive, got {effect!r}")
        return effect * baseline / (1 - baseline + effect * baseline)
    raise ValueError(f"effect scale must be odds_ratio or risk_difference, got {scale!r}")


def _power(n: float, p1: float, p2: float, alpha: float) -> float:
    delta, null_sd, alt_sd = _terms(p1, p2)
    return float(stats.norm.cdf((math.sqrt(n) * delta - _z(alpha) * null_sd) / alt_sd))


def _size(p1: float, p2: float, alpha: float, power: float) -> float:
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power!r}")
    delta, null_sd, alt_sd = _terms(p1, p2)
    return ((_z(alpha) * null_sd + float(stats.norm.ppf(power)) * alt_sd) / delta) ** 2


def power_two_proportions(n: float, p1: float, p2: float, alpha: float = 0.05) -> pd.DataFrame:
    """The power to detect p1 vs p2 with n patients per period (two-sided test at ``alpha``).

    >>> round(float(power_two_proportions(77, 0.5, 0.75)["estimate"].iloc[0]), 3)
    0.901
    """
    return frame([row("power", _power(n, p1, p2, alpha), method=_METHOD, n=math.ceil(n))])


def sample_size_two_proportions(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Patients per period for ``power`` (``estimate`` unrounded, ``n`` rounded up).

    >>> round(float(sample_size_two_proportions(0.5, 0.75, power=0.9)["estimate"].iloc[0]), 2)
    76.71
    """
    n = _size(p1, p2, alpha, power)
    return frame([row("n_per_group", n, method=_METHOD, n=math.ceil(n))])


def design_effect(cluster_size: float, icc: float, cv: float = 0.0) -> float:
    """1 + ((cv^2 + 1) m - 1) ICC (Eldridge et al. 2006); with cv = 0, 1 + (m - 1) ICC.

    >>> round(design_effect(20, 0.05), 10)
    1.95
    """
    if not cluster_size >= 1:
        raise ValueError(f"cluster size must be at least 1, got {cluster_size!r}")
    if not 0 <= icc < 1:
        raise ValueError(f"ICC must be in [0, 1), got {icc!r}")
    if not cv >= 0:
        raise ValueError(f"cv must be non-negative, got {cv!r}")
    return 1 + ((cv**2 + 1) * cluster_size - 1) * icc


def icc_from_cluster_sd(sd: float) -> float:
    """The latent-scale ICC of a random-intercept logistic model: s^2 / (s^2 + pi^2 / 3).

    >>> round(float(icc_from_cluster_sd(1.0)), 4)
    0.2331
    """
    if not sd >= 0:
        raise ValueError(f"a cluster SD must be non-negative, got {sd!r}")
    return sd**2 / (sd**2 + math.pi**2 / 3)


def cluster_power(p1: float, p2: float, *, clusters: int, cluster_size: float, icc: float, cv: float = 0.0,
                  alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Power with ``clusters`` clusters of ``cluster_size`` per period (effective size k m / DE), and the
    clusters per period and patients per period needed for ``power`` (n DE rounded up to whole clusters).

    The periods are treated as independent samples: correlation of a cluster with itself across periods
    would reduce the variance of the change, so this is conservative for an uncontrolled before-after study.
    """
    de = design_effect(cluster_size, icc, cv)
    method = f"{_METHOD}; design effect 1 + ((cv^2 + 1) m - 1) ICC (Eldridge 2006)"
    total = clusters * cluster_size
    needed = _size(p1, p2, alpha, power) * de
    k_needed = math.ceil(needed / cluster_size - 1e-9)
    extra = dict(cluster_size=cluster_size, icc=icc, design_effect=de)
    return frame([
        row("power", _power(total / de, p1, p2, alpha), method=method, n=math.ceil(total), clusters=clusters,
            **extra),
        row("clusters_for_power", k_needed, method=method, n=math.ceil(k_needed * cluster_size),
            clusters=k_needed, **extra),
    ])


def _stepped_wedge_design(clusters: int, steps: int) -> np.ndarray:
    """I x T treatment indicators: T = steps + 1 periods, all clusters control in the first, clusters
    spread as evenly as possible over the steps (earlier steps take the remainder)."""
    if clusters < steps:
        raise ValueError(f"a stepped wedge needs at least one cluster per step ({steps}), got {clusters}")
    per_step = [clusters // steps + (1 if s < clusters % steps else 0) for s in range(steps)]
    start = np.repeat(np.arange(1, steps + 1), per_step)
    return (np.arange(steps + 1)[None, :] >= start[:, None]).astype(float)


def stepped_wedge_variance(design: np.ndarray, sigma2: float, tau2: float, cluster_size: float) -> float:
    """Var(theta) of Hussey and Hughes (2007, eq. 8) for an I x T 0/1 design X, with sigma^2 the
    individual variance (sigma^2 / m per cluster-period mean) and tau^2 the between-cluster variance::

        Var = I s2 (s2 + T tau2) / ((I U - W) s2 + (U^2 + I T U - T W - I V) tau2),  s2 = sigma^2 / m

    with U = sum X_ij, W = sum_j (sum_i X_ij)^2, V = sum_i (sum_j X_ij)^2.
    """
    x = np.asarray(design, dtype=float)
    i_, t_ = x.shape
    s2 = sigma2 / cluster_size
    u = x.sum()
    w = float((x.sum(axis=0) ** 2).sum())
    v = float((x.sum(axis=1) ** 2).sum())
    return float(i_ * s2 * (s2 + t_ * tau2) / ((i_ * u - w) * s2 + (u**2 + i_ * t_ * u - t_ * w - i_ * v) * tau2))


def stepped_wedge_power(p1: float, p2: float, *, clusters: int, steps: int, cluster_size: float, icc: float,
                        alpha: float = 0.05) -> pd.DataFrame:
    """Hussey-Hughes power Phi(|p1 - p2| / sqrt(Var) - z) for a stepped wedge of ``clusters`` clusters
    crossing over in ``steps`` steps (steps + 1 periods), ``cluster_size`` patients per cluster-period;
    sigma^2 = pbar (1 - pbar) and tau^2 = ICC sigma^2 / (1 - ICC)."""
    delta, _, _ = _terms(p1, p2)
    if not 0 <= icc < 1:
        raise ValueError(f"ICC must be in [0, 1), got {icc!r}")
    pbar = (p1 + p2) / 2
    sigma2 = pbar * (1 - pbar)
    tau2 = icc * sigma2 / (1 - icc)
    var = stepped_wedge_variance(_stepped_wedge_design(clusters, steps), sigma2, tau2, cluster_size)
    power = float(stats.norm.cdf(delta / math.sqrt(var) - _z(alpha)))
    method = "stepped wedge, Hussey and Hughes (2007) closed-form variance, normal approximation"
    return frame([row("power", power, std_error=math.sqrt(var), method=method,
                      n=math.ceil(clusters * (steps + 1) * cluster_size), clusters=clusters,
                      cluster_size=cluster_size, icc=icc, steps=steps)])
