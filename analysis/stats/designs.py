"""Controlled before-after (difference in differences) for a binary outcome.

Four groups: intervention and control, each before and after. Three estimates of the intervention's effect
beyond the control's change (the secular trend):

- :func:`difference_in_differences`: the four proportions and the difference in differences on the risk
  difference scale, :math:`(p_{I1} - p_{I0}) - (p_{C1} - p_{C0})`, with a Wald interval and a MOVER interval
  built from the four Wilson intervals (Newcombe's method 10 extended to four proportions by Zou and Donner);
- :func:`did_logistic_cluster`: the ratio of odds ratios, :math:`\\exp(\\beta_{group \\times period})`, from a
  logistic model with the interaction, with cluster-robust (sandwich, HC1) standard errors, as
  ``sandwich::vcovCL(type = "HC1")``;
- :func:`wild_cluster_bootstrap`: for few clusters, a wild cluster bootstrap of the same coefficient, the
  restricted (null-imposed) score bootstrap of Kline and Santos (2012) with Webb's six-point weights, its
  p-value and its confidence interval by test inversion (Roodman, MacKinnon, Nielsen and Webb 2019).

The random-intercept model with the same interaction is :func:`analysis.stats.mixed.mixed_logistic`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import patsy
import statsmodels.api as sm

from analysis.stats.proportions import _newcombe, proportion, wilson_interval
from analysis.stats.tidy import Notes, captured, frame, row, wald_test, z_quantile

WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])
GROUPS = ("intervention_before", "intervention_after", "control_before", "control_after")
FEW_CLUSTERS = 30


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def difference_in_differences(
    events_intervention_before: int, n_intervention_before: int,
    events_intervention_after: int, n_intervention_after: int,
    events_control_before: int, n_control_before: int,
    events_control_after: int, n_control_after: int,
    *, confidence: float = 0.95,
) -> pd.DataFrame:
    """The four proportions and the difference in differences on the risk-difference scale.

    With :math:`p_{g} = e_g / n_g` for the four groups,

    .. math:: \\Delta = (p_{I1} - p_{I0}) - (p_{C1} - p_{C0}), \\qquad
              SE(\\Delta) = \\sqrt{\\textstyle\\sum_g p_g (1 - p_g) / n_g}

    Row ``difference_in_differences``: :math:`\\Delta` with the Wald interval :math:`\\Delta \\pm z\\,SE` and
    the Wald z test. Row ``difference_in_differences_mover``: the same :math:`\\Delta` with the MOVER interval
    from the Wilson limits :math:`(l_g, u_g)` of the four proportions (signs :math:`c = (-1, +1, +1, -1)` for
    I0, I1, C0, C1):

    .. math:: L = \\Delta - \\sqrt{\\textstyle\\sum_{c_g > 0} (p_g - l_g)^2 + \\sum_{c_g < 0} (u_g - p_g)^2}, \\quad
              U = \\Delta + \\sqrt{\\textstyle\\sum_{c_g > 0} (u_g - p_g)^2 + \\sum_{c_g < 0} (p_g - l_g)^2}

    which for two proportions is Newcombe's hybrid score interval (method 10). Rows ``proportion_<group>``
    (Wilson intervals) and ``risk_difference_intervention``/``risk_difference_control`` (after minus before,
    Newcombe's interval) come first. A group without patients leaves the contrasts missing, with a warning.
    Patients are assumed independent: with clusters, see :func:`did_logistic_cluster`.

    References: Newcombe RG. Stat Med 1998;17:873-90. Zou GY, Donner A. Stat Med 2008;27:1693-702 (MOVER).

    >>> d = difference_in_differences(66, 101, 15, 108, 60, 100, 55, 100)
    >>> round(float(d.set_index("term").loc["difference_in_differences", "estimate"]), 4)
    -0.4646
    """
    counts = [(int(e), int(n)) for e, n in ((events_intervention_before, n_intervention_before),
                                            (events_intervention_after, n_intervention_after),
                                            (events_control_before, n_control_before),
                                            (events_control_after, n_control_after))]
    for (e, n), group in zip(counts, GROUPS, strict=True):
        if n < 0 or e < 0 or e > n:
            raise ValueError(f"{group}: events ({e}) must be between 0 and the number of patients ({n})")
    rows = [proportion(e, n, term=f"proportion_{group}", confidence=confidence) for (e, n), group in zip(
        counts, GROUPS, strict=True)]
    total = sum(n for _, n in counts)
    method_rd = f"Risk difference (after minus before), Newcombe hybrid score {_pct(confidence)} CI (method 10)"
    wald = (f"Difference in differences of proportions, (intervention after - before) - (control after - before), "
            f"Wald {_pct(confidence)} CI and z test (unpooled SE)")
    mover = (f"Difference in differences of proportions, MOVER {_pct(confidence)} CI from the four Wilson intervals "
             "(Newcombe method 10 extended, Zou and Donner 2008); std_error is the unpooled Wald SE")
    empty = [group.replace("_", " ") for (_, n), group in zip(counts, GROUPS, strict=True) if n == 0]
    if empty:
        sentence = f"No patients in the {' and '.join(empty)} group: the differences cannot be estimated."
        contrasts = [row(t, method=m, n=total, warnings=sentence) for t, m in (
            ("risk_difference_intervention", method_rd), ("risk_difference_control", method_rd),
            ("difference_in_differences", wald), ("difference_in_differences_mover", mover))]
        return pd.concat([*rows, frame(contrasts)], ignore_index=True)
    (e0, n0), (e1, n1), (f0, m0), (f1, m1) = counts
    p = [e / n for e, n in counts]
    contrasts = []
    for term, (eb, nb, ea, na) in (("risk_difference_intervention", (e0, n0, e1, n1)),
                                   ("risk_difference_control", (f0, m0, f1, m1))):
        rd, low, high = _newcombe(eb, nb, ea, na, confidence)
        se = math.sqrt(ea / na * (1 - ea / na) / na + eb / nb * (1 - eb / nb) / nb)
        contrasts.append(row(term, rd, se, conf_low=low, conf_high=high, method=method_rd, n=nb + na))
    delta = (p[1] - p[0]) - (p[3] - p[2])
    se = math.sqrt(sum(pg * (1 - pg) / n for pg, (_, n) in zip(p, counts, strict=True)))
    z = z_quantile(confidence)
    notes = Notes()
    if se == 0:
        notes.add("Every group has no events, or nothing but events: the Wald interval has no width.")
    statistic, p_value = wald_test(delta, se) if se > 0 else (math.nan, math.nan)
    contrasts.append(row("difference_in_differences", delta, se, statistic, p_value, delta - z * se, delta + z * se,
                         method=wald, n=total, warnings=str(notes)))
    limits = [wilson_interval(e, n, confidence) for e, n in counts]
    signs = (-1, 1, 1, -1)
    low = delta - math.sqrt(sum((pg - lo) ** 2 if c > 0 else (hi - pg) ** 2
                                for c, pg, (lo, hi) in zip(signs, p, limits, strict=True)))
    high = delta + math.sqrt(sum((hi - pg) ** 2 if c > 0 else (pg - lo) ** 2
                                 for c, pg, (lo, hi) in zip(signs, p, limits, strict=True)))
    contrasts.append(row("difference_in_differences_mover", delta, se, conf_low=low, conf_high=high, method=mover,
                         n=total))
    return pd.concat([*rows, frame(contrasts)], ignore_index=True)


def _matrices(data: pd.DataFrame, formula: str, cluster: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    used = data.dropna(subset=[cluster])
    y, x = patsy.dmatrices(formula, used, return_type="dataframe", NA_action="drop")
    codes = pd.factorize(used.loc[y.index, cluster])[0]
    return np.asarray(y).ravel().astype(float), np.asarray(x, dtype=float), list(x.columns), codes


def _few(g: int) -> str:
    return (f"Only {g} clusters: cluster-robust standard errors are biased downwards with fewer than "
            f"{FEW_CLUSTERS} clusters; see the wild cluster bootstrap." if g < FEW_CLUSTERS else "")


def did_logistic_cluster(
    data: pd.DataFrame, formula: str, cluster: str, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Logistic regression with cluster-robust (sandwich) standard errors, for the group x period interaction.

    The model is ``formula``, e.g. ``y ~ intervention * after + age``; the coefficient of ``intervention:after``
    is the log of the ratio of odds ratios, :math:`\\log\\{OR_I / OR_C\\}`. Its variance is the cluster-robust
    sandwich with the HC1 small-sample factor,

    .. math:: V = \\frac{G}{G-1}\\,\\frac{N-1}{N-K}\\; H^{-1} \\Big(\\sum_{g=1}^{G} s_g s_g'\\Big) H^{-1},
              \\qquad s_g = \\sum_{i \\in g} x_i (y_i - \\hat\\mu_i), \\quad H = X'\\hat W X

    (statsmodels GLM ``cov_type="cluster"``; R ``sandwich::vcovCL(fit, cluster = ~cluster, type = "HC1")``),
    with z tests and Wald intervals. Rows: one per coefficient, the odds ratio (``exp``) with its interval,
    ``std_error`` on the log-odds scale. With fewer than 30 clusters a warning points to
    :func:`wild_cluster_bootstrap`.

    References: Liang KY, Zeger SL. Biometrika 1986;73:13-22. Zeileis A, Koll S, Graham N. J Stat Softw
    2020;95(1) (sandwich). Cameron AC, Miller DL. J Hum Resour 2015;50:317-72.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"site": np.repeat(np.arange(8), 40), "after": np.tile([0, 1], 160)})
    >>> d["intervention"] = (d.site < 4).astype(int)
    >>> d["y"] = (rng.random(320) < 0.4 - 0.2 * d.intervention * d.after).astype(int)
    >>> did_logistic_cluster(d, "y ~ intervention * after", "site")["term"].tolist()
    ['Intercept', 'intervention', 'after', 'intervention:after']
    """
    notes = Notes()
    y, x, names, codes = _matrices(data, formula, cluster)
    g = int(codes.max()) + 1 if len(codes) else 0
    method = (f"Logistic regression (ML), odds ratio with cluster-robust (HC1, {g} clusters of {cluster}) Wald "
              f"{_pct(confidence)} CI and z test; std_error on the log-odds scale")
    if g < 2 or len(np.unique(y)) < 2:
        notes.add("Fewer than 2 clusters, or no events (or nothing but events): not estimated.")
        return frame([row(n, method=method, n=len(y), warnings=str(notes)) for n in names])
    notes.add(_few(g))
    with captured(notes):
        fit = sm.GLM(y, x, family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": codes},
                                                               tol=1e-12, maxiter=200)
    z = z_quantile(confidence)
    rows = []
    for name, b, se in zip(names, np.asarray(fit.params), np.asarray(fit.bse), strict=True):
        statistic, p_value = wald_test(float(b), float(se))
        rows.append(row(name, math.exp(b), float(se), statistic, p_value, math.exp(b - z * se), math.exp(b + z * se),
                        method=method, n=len(y), warnings=str(notes)))
    return frame(rows)


def webb_weights(clusters: int, reps: int, seed: int | np.random.Generator) -> tuple[np.ndarray, bool]:
    """Webb's six-point weights (:math:`\\pm\\sqrt{1/2}, \\pm 1, \\pm\\sqrt{3/2}`, each with probability 1/6), one
    row per bootstrap replicate: all :math:`6^G` combinations when there are no more than ``reps`` (the
    bootstrap distribution then is exact and needs no seed), else ``reps`` rows drawn with
    ``numpy.random.default_rng(seed)``. Returns the weights and whether they were enumerated.

    Reference: Webb MD. Can J Econ 2023;56:839-58 (six-point distribution).

    >>> webb_weights(2, 100, 1)[0].shape
    (36, 2)
    """
    if 6 ** clusters <= reps:
        return np.array(list(itertools.product(WEBB, repeat=clusters))), True
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.choice(WEBB, size=(reps, clusters)), False


def _restricted_scores(y: np.ndarray, x: np.ndarray, codes: np.ndarray, k: int, b0: float) -> np.ndarray:
    """Each cluster's efficient score for coefficient k at the fit restricted to :math:`\\beta_k = b_0`."""
    rest = np.delete(x, k, axis=1)
    offset = b0 * x[:, k]
    fit = sm.GLM(y, rest, family=sm.families.Binomial(), offset=offset).fit(tol=1e-12, maxiter=200)
    mu = fit.fittedvalues if hasattr(fit, "fittedvalues") else fit.predict()
    mu = np.asarray(mu)
    w = mu * (1 - mu)
    information = x.T @ (x * w[:, None])
    clusters = np.zeros((int(codes.max()) + 1, x.shape[1]))
    np.add.at(clusters, codes, x * (y - mu)[:, None])
    others = [j for j in range(x.shape[1]) if j != k]
    projection = np.linalg.solve(information[np.ix_(others, others)], information[others, k])
    return clusters[:, k] - clusters[:, others] @ projection


def _score_test(scores: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The score statistic and its bootstrap p-value (symmetric, two-sided)."""
    denominator = math.sqrt(float(np.sum(scores ** 2)))
    if denominator == 0:
        return math.nan, math.nan
    t = float(scores.sum()) / denominator
    boot = (weights @ scores) / np.sqrt((weights ** 2) @ (scores ** 2))
    return t, float(np.mean(np.abs(boot) >= abs(t) - 1e-12 * max(1.0, abs(t))))


def wild_cluster_bootstrap(
    data: pd.DataFrame,
    formula: str,
    term: str,
    cluster: str,
    *,
    null: float = 0.0,
    reps: int = 9999,
    seed: int | np.random.Generator = 0,
    confidence: float = 0.95,
    tolerance: float = 1e-8,
) -> pd.DataFrame:
    """Wild cluster bootstrap of one logistic-regression coefficient: the restricted (null-imposed) score
    bootstrap, with Webb's six-point weights; p-value, and confidence interval by test inversion.

    For a null value :math:`b_0`, the model is refitted with :math:`\\beta_k = b_0` imposed (an offset), giving
    :math:`\\tilde\\mu`; each cluster's score for :math:`\\beta_k` is made orthogonal to the other coefficients
    with the restricted information :math:`\\tilde H = X'\\tilde W X`:

    .. math:: \\tilde s_g = s_{g,k} - \\tilde H_{k,-k} \\tilde H_{-k,-k}^{-1} s_{g,-k}, \\qquad
              s_g = \\sum_{i \\in g} x_i (y_i - \\tilde\\mu_i)

    The statistic is the cluster-robust score statistic and each replicate multiplies the clusters' scores
    by the weights :math:`v_g^{*}` (Kline and Santos 2012; Roodman et al. 2019, section 5, the score bootstrap
    with the null imposed, "WCR"):

    .. math:: T = \\frac{\\sum_g \\tilde s_g}{\\sqrt{\\sum_g \\tilde s_g^2}}, \\qquad
              T^{*} = \\frac{\\sum_g v_g^{*} \\tilde s_g}{\\sqrt{\\sum_g v_g^{*2} \\tilde s_g^2}}, \\qquad
              p(b_0) = \\frac{1}{B} \\#\\{ |T^{*}| \\ge |T| \\}

    The interval is :math:`\\{b_0 : p(b_0) > 1 - \\text{confidence}\\}`, each end found by bisection (to
    ``tolerance``) from the unrestricted estimate outwards, with the same weights for every :math:`b_0`. The
    weights: all :math:`6^G` combinations when :math:`6^G \\le` ``reps`` (exact; no randomness), otherwise
    ``reps`` draws from ``numpy.random.default_rng(seed)`` (:func:`webb_weights`).

    Row ``term``: the estimate and interval as odds ratios (``exp``), ``p_value`` the bootstrap p-value at
    ``null``, ``statistic`` :math:`T` there, ``df`` the number of replicates.

    References: Kline P, Santos A. J Econom Methods 2012;1:23-41. Roodman D, MacKinnon JG, Nielsen MO, Webb MD.
    Stata J 2019;19:4-60 ("Fast and wild"). Webb MD. Can J Econ 2023;56:839-58. MacKinnon JG, Webb MD. J Appl
    Econom 2017;32:233-54 (few treated clusters).

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"site": np.repeat(np.arange(6), 40), "after": np.tile([0, 1], 120)})
    >>> d["intervention"] = (d.site < 3).astype(int)
    >>> d["y"] = (rng.random(240) < 0.4 - 0.2 * d.intervention * d.after).astype(int)
    >>> b = wild_cluster_bootstrap(d, "y ~ intervention * after", "intervention:after", "site", reps=999, seed=1)
    >>> b["df"].item()  # 6 clusters: more combinations (46,656) than replicates, so 999 draws
    999.0
    """
    notes = Notes()
    y, x, names, codes = _matrices(data, formula, cluster)
    g = int(codes.max()) + 1 if len(codes) else 0
    alpha = 1 - confidence
    if term not in names:
        raise KeyError(f"no coefficient '{term}' in {names}")
    k = names.index(term)
    weights, enumerated = (webb_weights(g, reps, seed) if g >= 2 else (np.zeros((0, 0)), False))
    drawn = (f"all {len(weights)} combinations of Webb's six-point weights" if enumerated else
             f"{len(weights)} draws of Webb's six-point weights (numpy default_rng, seeded)")
    method = (f"Wild cluster bootstrap ({g} clusters of {cluster}), restricted score bootstrap (null imposed, "
              f"Kline and Santos 2012; Roodman et al. 2019), {drawn}; odds ratio with {_pct(confidence)} CI by test "
              "inversion; p-value for the null " + f"{null:g}")
    if g < 2 or len(np.unique(y)) < 2:
        notes.add("Fewer than 2 clusters, or no events (or nothing but events): not estimated.")
        return frame([row(term, method=method, n=len(y), warnings=str(notes))])
    if g < 6:
        notes.add(f"Only {g} clusters: the wild cluster bootstrap p-value can take few values "
                  f"({6 ** g} weight combinations) and its interval may be unbounded.")
    with captured(notes):
        full = sm.GLM(y, x, family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": codes},
                                                                tol=1e-12, maxiter=200)
        estimate, se = float(full.params[k]), float(full.bse[k])

        def p_at(b0: float) -> float:
            return _score_test(_restricted_scores(y, x, codes, k, b0), weights)[1]

        statistic, p_value = _score_test(_restricted_scores(y, x, codes, k, null), weights)
        ends = []
        for direction in (-1, 1):
            inside, step = estimate, max(se, 1e-3)
            outside = estimate + direction * step
            tries = 0
            while p_at(outside) > alpha and tries < 30:
                inside, step = outside, step * 2
                outside = estimate + direction * step
                tries += 1
            if tries == 30:
                notes.add("The interval is unbounded on one side: the p-value stays above the level.")
                ends.append(math.inf * direction)
                continue
            while abs(outside - inside) > tolerance:
                middle = (inside + outside) / 2
                inside, outside = (middle, outside) if p_at(middle) > alpha else (inside, middle)
            ends.append((inside + outside) / 2)
    low, high = (math.exp(e) if math.isfinite(e) else math.nan for e in ends)
    return frame([row(term, math.exp(estimate), se, statistic, p_value, low, high, df=float(len(weights)),
                      method=method, n=len(y), warnings=str(notes))])
