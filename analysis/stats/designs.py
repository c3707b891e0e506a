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

The random-intercept model with the same interaction is :func:`analysis.stats.mixed.mixed_logistic`. Counts and
continuous outcomes: :func:`did_cluster_robust` (Poisson with an exposure offset, or linear), beside
:func:`analysis.stats.mixed.mixed_poisson` and :func:`analysis.stats.mixed.linear_mixed`; the wild cluster
bootstrap, the event study and the trend comparison take the same ``family`` (and ``exposure``).

With several time points, :func:`parallel_trends` compares the groups before the change (a joint Wald test of
the group x time point interactions, and the groups' difference of linear trends) and :func:`event_study` gives
the ratio of odds ratios at each time point relative to the last before the change.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import patsy
import statsmodels.api as sm
from scipy import stats

from analysis.stats.proportions import _newcombe, proportion, wilson_interval
from analysis.stats.tidy import Notes, captured, exp_or_missing, frame, row, wald_test, with_df_resid, z_quantile

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


def _matrices(data: pd.DataFrame, formula: str, cluster: str, exposure: str | None = None) -> tuple[
        np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray | None]:
    """Outcome, design matrix, its column names, cluster codes and (given ``exposure``) the log-exposure offset,
    over the rows with the cluster, the formula's variables and (given it) a positive exposure."""
    used = data.dropna(subset=[cluster] + ([exposure] if exposure else []))
    if exposure:
        used = used[used[exposure] > 0]
    y, x = patsy.dmatrices(formula, used, return_type="dataframe", NA_action="drop")
    codes = pd.factorize(used.loc[y.index, cluster])[0]
    offset = None if exposure is None else np.log(used.loc[y.index, exposure].to_numpy(float))
    return np.asarray(y).ravel().astype(float), np.asarray(x, dtype=float), list(x.columns), codes, offset


def _few(g: int, advice: str = "see the wild cluster bootstrap") -> str:
    return (f"Only {g} clusters: cluster-robust standard errors are biased downwards with fewer than "
            f"{FEW_CLUSTERS} clusters; {advice}." if g < FEW_CLUSTERS else "")


NARROW = "the intervals are too narrow and the p-values too small"


FAMILIES = {"binomial": (sm.families.Binomial, "Logistic regression (ML), odds ratio", "log-odds"),
            "poisson": (sm.families.Poisson, "Poisson regression (ML), rate ratio", "log-rate"),
            "gaussian": (sm.families.Gaussian, "Linear regression (least squares), difference", None)}


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
    :func:`wild_cluster_bootstrap`. The same for counts and continuous outcomes: :func:`did_cluster_robust`.

    References: Liang KY, Zeger SL. Biometrika 1986;73:13-22. Zeileis A, Koll S, Graham N. J Stat Softw
    2020;95(1) (sandwich). Cameron AC, Miller DL. J Hum Resour 2015;50:317-72.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"site": np.repeat(np.arange(8), 40), "after": np.tile([0, 1], 160)})
    >>> d["intervention"] = (d.site < 4).astype(int)
    >>> d["y"] = (rng.random(320) < 0.4 - 0.2 * d.intervention * d.after).astype(int)
    >>> did_logistic_cluster(d, "y ~ intervention * after", "site")["term"].tolist()
    ['Intercept', 'intervention', 'after', 'intervention:after']
    """
    return did_cluster_robust(data, formula, cluster, family="binomial", confidence=confidence)


def did_cluster_robust(
    data: pd.DataFrame, formula: str, cluster: str, *, family: str = "binomial", exposure: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """A generalised linear model with cluster-robust (HC1) standard errors, for the group x period interaction
    of a controlled before-after study: ``family`` ``"binomial"`` (:func:`did_logistic_cluster`: the ratio of odds
    ratios), ``"poisson"`` (counts, with the log of ``exposure`` as offset when given: the coefficient of
    ``intervention:after`` is the log of the ratio of rate ratios, :math:`\\log\\{RR_I / RR_C\\}`) or
    ``"gaussian"`` (a continuous outcome: the coefficient is the difference in differences of means, not
    exponentiated). Covariance as :func:`did_logistic_cluster`'s, R's ``sandwich::vcovCL(type = "HC1")`` on the
    ``glm`` or ``lm`` fit (the Gaussian GLM's dispersion cancels in the sandwich). Rows: one per coefficient,
    ratios (``exp``, ``std_error`` on the log scale) or differences.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"site": np.repeat(np.arange(8), 40), "after": np.tile([0, 1], 160)})
    >>> d["intervention"] = (d.site < 4).astype(int)
    >>> d["y"] = rng.poisson(3 - d.intervention * d.after)
    >>> r = did_cluster_robust(d, "y ~ intervention * after", "site", family="poisson")
    >>> bool(r.set_index("term").loc["intervention:after", "estimate"] < 1)
    True
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    kind, model_words, scale = FAMILIES[family]
    notes = Notes()
    y, x, names, codes, offset = _matrices(data, formula, cluster, exposure)
    g = int(codes.max()) + 1 if len(codes) else 0
    shown = f"std_error on the {scale} scale" if scale else "std_error of the difference"
    method = (f"{model_words} with cluster-robust (HC1, {g} clusters of {cluster}) Wald {_pct(confidence)} CI and z "
              f"test{', offset log ' + exposure if exposure else ''}; {shown}")
    if g < 2 or len(np.unique(y)) < 2:
        notes.add("Fewer than 2 clusters, or an outcome that never varies: not estimated.")
        return frame([row(n, method=method, n=len(y), warnings=str(notes)) for n in names])
    notes.add(_few(g) if family == "binomial" else _few(g, NARROW))
    with captured(notes):
        fit = sm.GLM(y, x, family=kind(), offset=offset).fit(cov_type="cluster", cov_kwds={"groups": codes},
                                                              tol=1e-12, maxiter=200)
    z = z_quantile(confidence)
    rows = []
    for name, b, se in zip(names, np.asarray(fit.params), np.asarray(fit.bse), strict=True):
        statistic, p_value = wald_test(float(b), float(se))
        if scale:
            shown_values = tuple(exp_or_missing(v, notes) for v in (b, b - z * se, b + z * se))
        else:
            shown_values = (float(b), float(b - z * se), float(b + z * se))
        rows.append(row(name, shown_values[0], float(se), statistic, p_value, shown_values[1], shown_values[2],
                        method=method, n=len(y), warnings=str(notes)))
    return with_df_resid(frame(rows), fit.df_resid)


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


def _restricted_scores(y: np.ndarray, x: np.ndarray, codes: np.ndarray, k: int, b0: float,
                       family: str = "binomial", offset: np.ndarray | None = None) -> np.ndarray:
    """Each cluster's efficient score for coefficient k at the fit restricted to :math:`\\beta_k = b_0`. The three
    families have canonical links, so the score is :math:`x_i (y_i - \\mu_i)` and the information's weight the
    variance function :math:`V(\\mu)` (the Gaussian scale cancels in the statistic)."""
    rest = np.delete(x, k, axis=1)
    fixed = b0 * x[:, k] + (0 if offset is None else offset)
    fit = sm.GLM(y, rest, family=FAMILIES[family][0](), offset=fixed).fit(tol=1e-12, maxiter=200)
    mu = np.asarray(fit.fittedvalues if hasattr(fit, "fittedvalues") else fit.predict())
    w = {"binomial": mu * (1 - mu), "poisson": mu, "gaussian": np.ones_like(mu)}[family]
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
    family: str = "binomial",
    exposure: str | None = None,
) -> pd.DataFrame:
    """Wild cluster bootstrap of one coefficient of a logistic (``family="binomial"``), Poisson (``"poisson"``,
    the log of ``exposure`` as offset when given) or linear (``"gaussian"``) regression: the restricted
    (null-imposed) score bootstrap, with Webb's six-point weights; p-value, and confidence interval by test
    inversion.

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

    Row ``term``: the estimate and interval as odds ratios or rate ratios (``exp``; for ``"gaussian"`` the
    coefficient itself, a difference), ``p_value`` the bootstrap p-value at ``null`` (on the coefficient's scale:
    log odds, log rate or the difference), ``statistic`` :math:`T` there, ``df`` the number of replicates. For the
    linear model the restricted score bootstrap is the wild restricted bootstrap of the score (WCR) with the
    residuals of the restricted least-squares fit.

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
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    notes = Notes()
    y, x, names, codes, offset = _matrices(data, formula, cluster, exposure)
    g = int(codes.max()) + 1 if len(codes) else 0
    alpha = 1 - confidence
    scale = {"binomial": "odds ratio", "poisson": "rate ratio", "gaussian": "difference"}[family]
    if term not in names:
        raise KeyError(f"no coefficient '{term}' in {names}")
    k = names.index(term)
    weights, enumerated = (webb_weights(g, reps, seed) if g >= 2 else (np.zeros((0, 0)), False))
    drawn = (f"all {len(weights)} combinations of Webb's six-point weights" if enumerated else
             f"{len(weights)} draws of Webb's six-point weights (numpy default_rng, seeded)")
    method = (f"Wild cluster bootstrap ({g} clusters of {cluster}), restricted score bootstrap (null imposed, "
              f"Kline and Santos 2012; Roodman et al. 2019), {drawn}; {FAMILIES[family][1].split(',')[0]}; {scale} "
              f"with {_pct(confidence)} CI by test inversion"
              f"{', offset log ' + exposure if exposure else ''}; p-value for the null " + f"{null:g}")
    if g < 2 or len(np.unique(y)) < 2:
        notes.add("Fewer than 2 clusters, or an outcome that never varies (no events, or nothing but events): not "
                  "estimated.")
        return frame([row(term, method=method, n=len(y), warnings=str(notes))])
    if g < 6:
        notes.add(f"Only {g} clusters: the wild cluster bootstrap p-value can take few values "
                  f"({6 ** g} weight combinations) and its interval may be unbounded.")
    with captured(notes):
        full = sm.GLM(y, x, family=FAMILIES[family][0](), offset=offset).fit(
            cov_type="cluster", cov_kwds={"groups": codes}, tol=1e-12, maxiter=200)
        estimate, se = float(full.params[k]), float(full.bse[k])

        def p_at(b0: float) -> float:
            return _score_test(_restricted_scores(y, x, codes, k, b0, family, offset), weights)[1]

        statistic, p_value = _score_test(_restricted_scores(y, x, codes, k, null, family, offset), weights)
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
    shown = (lambda v: v) if family == "gaussian" else math.exp
    low, high = (shown(e) if math.isfinite(e) else math.nan for e in ends)
    return with_df_resid(frame([row(term, shown(estimate), se, statistic, p_value, low, high, df=float(len(weights)),
                                    method=method, n=len(y), warnings=str(notes))]), full.df_resid)


def _event_design(data: pd.DataFrame, time: str, reference: float, covariates: tuple[str, ...]) -> tuple[
        np.ndarray, list[str], list[float], np.ndarray]:
    """Intercept, intervention, one indicator per time point but ``reference``, the indicators times
    intervention (named ``event_<t>``), then the covariates (patsy, treatment-coded). Returns the matrix, its
    column names, the time points of the ``event_`` columns and the rows kept (no missing covariate)."""
    points = sorted(float(t) for t in data[time].unique() if float(t) != float(reference))
    t = data[time].to_numpy(float)
    g = data["intervention"].to_numpy(float)
    columns = {"Intercept": np.ones(len(data)), "intervention": g}
    for p in points:
        columns[f"time_{p:g}"] = (t == p).astype(float)
    for p in points:
        columns[f"event_{p:g}"] = g * (t == p)
    x = pd.DataFrame(columns, index=data.index)
    keep = np.ones(len(data), bool)
    if covariates:
        extra = patsy.dmatrix(" + ".join(covariates), data, return_type="dataframe", NA_action="drop")
        keep = data.index.isin(extra.index)
        x = pd.concat([x[keep], extra.drop(columns="Intercept")], axis=1)
    return np.asarray(x, dtype=float), list(x.columns), points, keep


def _glm_cov(y: np.ndarray, x: np.ndarray, codes: np.ndarray | None, notes: Notes, family: str = "binomial",
             offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logistic, Poisson (``offset``: the log exposure) or linear fit: coefficients and their covariance,
    cluster-robust (HC1, as ``sandwich::vcovCL(type = "HC1")``) given cluster codes, else model-based (the inverse
    information, as ``vcov(glm)``; for the linear model with the dispersion estimated as ``vcov(lm)``)."""
    with captured(notes):
        model = sm.GLM(y, x, family=FAMILIES[family][0](), offset=offset)
        fit = (model.fit(cov_type="cluster", cov_kwds={"groups": codes}, tol=1e-12, maxiter=200)
               if codes is not None else model.fit(tol=1e-12, maxiter=200))
    return np.asarray(fit.params), np.asarray(fit.cov_params())


# the contrast of an event study or trend comparison on each family's scale: (name, its words, the scale of
# std_error, whether it is exponentiated)
CONTRASTS = {"binomial": ("ratio", "ratio of odds ratios", "log-odds", True),
             "poisson": ("ratio", "ratio of rate ratios", "log-rate", True),
             "gaussian": ("difference", "difference in differences of means", "outcome's", False)}


def _shown(b: float, family: str, notes: Notes) -> float:
    return exp_or_missing(b, notes) if CONTRASTS[family][3] else float(b)


def _timed_rows(data: pd.DataFrame, time: str, exposure: str | None) -> pd.DataFrame:
    """The rows with the outcome, the group and the time point (and, given ``exposure``, a positive exposure)."""
    d = data.dropna(subset=["y", "intervention", time, *([exposure] if exposure else [])])
    return d[d[exposure] > 0] if exposure else d


def _offset(d: pd.DataFrame, exposure: str | None) -> np.ndarray | None:
    return None if exposure is None else np.log(d[exposure].to_numpy(float))


def _cluster_codes(data: pd.DataFrame, cluster: str | None) -> np.ndarray | None:
    return None if cluster is None else pd.factorize(data[cluster])[0]


def _complete_points(d: pd.DataFrame, time: str, notes: Notes) -> pd.DataFrame:
    """The rows of time points where both groups have patients; the others dropped with a sentence (their
    group-by-time contrast does not exist)."""
    both = d.groupby(time)["intervention"].nunique()
    lacking = sorted(float(t) for t in both.index[both < 2])
    if lacking:
        notes.add(f"Time point(s) {', '.join(f'{t:g}' for t in lacking)} have patients in one group only and are "
                  "left out.")
    return d[~d[time].astype(float).isin(lacking)]


def event_study(
    data: pd.DataFrame,
    time: str,
    reference: float,
    *,
    covariates: tuple[str, ...] = (),
    cluster: str | None = None,
    confidence: float = 0.95,
    family: str = "binomial",
    exposure: str | None = None,
) -> pd.DataFrame:
    """Event study of a controlled before-after design: the intervention group's odds ratio against the control
    group at each time point, relative to the ``reference`` time point (the last before the change). For a count
    (``family="poisson"``, the log of ``exposure`` as offset when given) the rows are ratios of rate ratios, for a
    continuous outcome (``"gaussian"``, linear regression) differences in differences of means (not
    exponentiated); R: the same formula in ``glm(family = poisson)`` with ``offset(log(exposure))``, or ``lm``.

    ``data`` has ``y`` (0/1), ``intervention`` (1 intervention, 0 control) and ``time`` (the time point, e.g.
    -4 ... -1 before the change and 0, 1, ... after). The logistic model is

    .. math:: \\operatorname{logit} P(y = 1) = \\alpha + \\gamma\\, I + \\sum_{t \\ne r} \\tau_t [T = t]
              + \\sum_{t \\ne r} \\delta_t\\, I\\, [T = t] + x'\\beta

    (R: ``glm(y ~ intervention * relevel(factor(time), ref = r) + covariates, binomial)``), and row
    ``event_<t>`` is :math:`\\exp(\\delta_t)`, the ratio of the odds ratios (intervention vs control) at t and at
    r; under parallel trends the rows before the change are near 1. Covariance: cluster-robust (HC1, as
    ``sandwich::vcovCL(type = "HC1")``) when ``cluster`` is given, else model-based; z tests, Wald intervals.
    Row ``event_<r>`` is the reference, 1 by definition, with no interval. Extra column ``time``: t. Time
    points where one group has no patients are left out with a warning.

    References: Angrist JD, Pischke JS. Mostly harmless econometrics, 2009, section 5.2. Roth J, Sant'Anna
    PHC, Bilinski A, Poe J. J Econom 2023;235:2218-44 (pre-trends and event studies).

    >>> rng = np.random.default_rng(2)
    >>> d = pd.DataFrame({"time": np.tile([-3, -2, -1, 0, 1], 200), "intervention": np.repeat([0, 1], 500)})
    >>> d["y"] = (rng.random(1000) < 0.4 - 0.2 * d.intervention * (d.time >= 0)).astype(int)
    >>> event_study(d, "time", -1)["term"].tolist()
    ['event_-3', 'event_-2', 'event_-1', 'event_0', 'event_1']
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    notes = Notes()
    d = _complete_points(_timed_rows(data, time, exposure), time, notes)
    if cluster is not None:
        d = d.dropna(subset=[cluster])
    robust = f"cluster-robust (HC1, clusters of {cluster})" if cluster else "model-based"
    adjusted = f", adjusted for {', '.join(covariates)}" if covariates else ""
    _, words, scale, _ = CONTRASTS[family]
    model = FAMILIES[family][1].split(" (")[0].lower()
    offset_words = f", offset log {exposure}" if exposure else ""
    method = (f"Event study: {model} with intervention x time point interactions{adjusted}{offset_words}; {words} "
              f"relative to time point {reference:g}, {robust} Wald {_pct(confidence)} CI and z test; std_error on "
              f"the {scale} scale")
    if float(reference) not in set(d[time].astype(float)):
        raise ValueError(f"the reference time point {reference:g} has no patients in both groups")
    x, names, points, keep = _event_design(d, time, reference, tuple(covariates))
    d = d[keep]
    y = d["y"].to_numpy(float)
    codes = _cluster_codes(d, cluster)
    reference_value = 1.0 if CONTRASTS[family][3] else 0.0
    if len(np.unique(y)) < 2 or (codes is not None and codes.max(initial=-1) < 1):
        notes.add("No events, or nothing but events, or fewer than 2 clusters: not estimated.")
        return frame([row(f"event_{t:g}", method=method, n=len(d), warnings=str(notes), time=t)
                      for t in sorted([*points, float(reference)])])
    if codes is not None:
        notes.add(_few(int(codes.max()) + 1, NARROW))
    beta, cov = _glm_cov(y, x, codes, notes, family, _offset(d, exposure))
    z = z_quantile(confidence)
    rows = {float(reference): row(f"event_{reference:g}", reference_value,
                                  method=method + f" (the reference: {reference_value:g} by definition)",
                                  n=int((d[time].astype(float) == float(reference)).sum()), time=float(reference))}
    for t in points:
        k = names.index(f"event_{t:g}")
        b, se = float(beta[k]), float(math.sqrt(cov[k, k]))
        statistic, p_value = wald_test(b, se)
        rows[t] = row(f"event_{t:g}", _shown(b, family, notes), se, statistic, p_value,
                      _shown(b - z * se, family, notes), _shown(b + z * se, family, notes), method=method,
                      n=int((d[time].astype(float) == t).sum()), time=t)
    for r in rows.values():
        r["warnings"] = str(notes)
    # the design's columns, not its rank (statsmodels' count, a second pass over the rows): the same for a design
    # of full rank, the stricter for an aliased one
    return with_df_resid(frame([rows[t] for t in sorted(rows)]), len(y) - x.shape[1])


def parallel_trends(
    data: pd.DataFrame,
    time: str,
    change: float,
    *,
    covariates: tuple[str, ...] = (),
    cluster: str | None = None,
    confidence: float = 0.95,
    family: str = "binomial",
    exposure: str | None = None,
) -> pd.DataFrame:
    """Do the intervention and control groups follow parallel trends before the change? Two tests on the rows
    with ``time`` < ``change`` (``data`` as for :func:`event_study`):

    - row ``parallel_trends_wald``: the joint Wald test that the intervention x time point interactions of the
      pre-period model ``y ~ intervention * factor(time) + covariates`` are all zero, :math:`W = \\hat\\delta'
      V^{-1} \\hat\\delta` against chi-square on :math:`T_{pre} - 1` df (``df``); a small p-value says the
      groups' pre-period courses differ (any shape);
    - row ``pre_trend_ratio``: the ratio of the two groups' odds ratios per time point before the change, the
      coefficient of ``intervention:time`` in ``y ~ intervention * time + covariates`` (linear time), as an odds
      ratio with its Wald interval and z test: 1 under parallel linear trends.

    V is cluster-robust (HC1, as ``sandwich::vcovCL(type = "HC1")``) given ``cluster``, else model-based. At
    least 3 time points before the change are needed (with 2, the joint test and the linear one are the same
    single contrast, which the event study shows), else rows with a warning. Not finding a difference does not
    show that the trends are parallel: the test has little power with few time points (Roth 2022).

    ``family`` and ``exposure`` as for :func:`event_study`: for a count the linear row is the ratio of rate ratios
    per time point, for a continuous outcome (``"gaussian"``) the difference of the groups' slopes, row
    ``pre_trend_difference`` (not exponentiated).

    References: Roth J. Am Econ Rev Insights 2022;4:305-22 (pre-test power). Wing C, Simon K, Bello-Gomez RA.
    Annu Rev Public Health 2018;39:453-69.

    >>> rng = np.random.default_rng(3)
    >>> d = pd.DataFrame({"time": np.tile([-3, -2, -1, 0], 250), "intervention": np.repeat([0, 1], 500)})
    >>> d["y"] = (rng.random(1000) < 0.4).astype(int)
    >>> parallel_trends(d, "time", 0)[["term", "df"]].values.tolist()
    [['parallel_trends_wald', 2.0], ['pre_trend_ratio', nan]]
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    notes = Notes()
    d = _timed_rows(data, time, exposure)
    d = _complete_points(d[d[time].astype(float) < float(change)], time, notes)
    if cluster is not None:
        d = d.dropna(subset=[cluster])
    points = sorted(float(t) for t in d[time].unique())
    robust = f"cluster-robust (HC1, clusters of {cluster})" if cluster else "model-based"
    adjusted = f", adjusted for {', '.join(covariates)}" if covariates else ""
    kind, words, scale, _ = CONTRASTS[family]
    model = FAMILIES[family][1].split(" (")[0].lower() + (f", offset log {exposure}" if exposure else "")
    slope_term = f"pre_trend_{kind}"
    wald_method = (f"Joint Wald test of the intervention x time point interactions before the change ({model}"
                   f"{adjusted}; {robust} covariance), chi-square on the number of time points before minus 1 df")
    slope_method = (f"{words[0].upper()}{words[1:]} per time point before the change: intervention x linear time "
                    f"({model}{adjusted}), {robust} Wald {_pct(confidence)} CI and z test; std_error on the {scale} "
                    "scale")
    if len(points) < 3 or d["y"].nunique() < 2 or (cluster is not None and d[cluster].nunique() < 2):
        notes.add(f"{len(points)} time point(s) before the change with patients in both groups, no events, or fewer "
                  "than 2 clusters: a pre-period trend comparison needs at least 3 time points, events and, with "
                  "cluster-robust errors, 2 clusters.")
        return frame([row("parallel_trends_wald", method=wald_method, n=len(d), warnings=str(notes)),
                      row(slope_term, method=slope_method, n=len(d), warnings=str(notes))])
    codes = _cluster_codes(d, cluster)
    if codes is not None:
        notes.add(_few(int(codes.max()) + 1, NARROW))
    x, names, event_points, keep = _event_design(d, time, points[-1], tuple(covariates))
    y = d.loc[keep, "y"].to_numpy(float)
    offset = _offset(d[keep], exposure)
    beta, cov = _glm_cov(y, x, None if codes is None else codes[keep], notes, family, offset)
    k = [names.index(f"event_{t:g}") for t in event_points]
    delta, v = beta[k], cov[np.ix_(k, k)]
    dof = len(k)
    if codes is not None and int(codes.max()) + 1 <= dof:
        notes.add(f"{int(codes.max()) + 1} clusters for {dof} interactions: the cluster-robust covariance of the "
                  "joint test is singular or nearly so; read the event study instead.")
    try:
        statistic = float(delta @ np.linalg.solve(v, delta))
        p_wald = float(stats.chi2.sf(statistic, dof)) if statistic >= 0 else math.nan
    except np.linalg.LinAlgError:
        statistic, p_wald = math.nan, math.nan
    t = d.loc[keep, time].to_numpy(float)
    g = d.loc[keep, "intervention"].to_numpy(float)
    # the same covariate columns, after the intercept, group, time points and interactions
    linear = np.column_stack([np.ones(len(y)), g, t, g * t, x[:, 2 + 2 * dof:]])
    b_lin, cov_lin = _glm_cov(y, linear, None if codes is None else codes[keep], notes, family, offset)
    b, se = float(b_lin[3]), float(math.sqrt(cov_lin[3, 3]))
    z = z_quantile(confidence)
    slope_statistic, slope_p = wald_test(b, se)
    # the residual df of the larger of the two models (the one with a term per time point; see `event_study`)
    return with_df_resid(frame([
        row("parallel_trends_wald", statistic=statistic, p_value=p_wald, df=float(dof), method=wald_method,
            n=len(y), warnings=str(notes)),
        row(slope_term, _shown(b, family, notes), se, slope_statistic, slope_p,
            _shown(b - z * se, family, notes), _shown(b + z * se, family, notes), method=slope_method, n=len(y),
            warnings=str(notes)),
    ]), len(y) - x.shape[1])
