"""Clustered outcomes (patients within teams, wards or pharmacists).

Two kinds of odds ratio answer different questions, and every row says which it is:

- conditional (cluster-specific): :func:`mixed_logistic`, a random intercept per cluster, the odds
  ratio for two patients in the same cluster (as lme4's ``glmer``);
- population-averaged: :func:`gee_logistic`, GEE with an exchangeable working correlation, the odds
  ratio between the populations (as geepack's ``geeglm``). It is nearer 1 than the conditional one.

:func:`linear_mixed` is the linear mixed model (REML) for continuous outcomes (as ``lmer``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.stats.laplace import fit_laplace
from analysis.stats.tidy import (
    SEPARATION,
    SEPARATION_EPS,
    Notes,
    captured,
    frame,
    row,
    wald_rows,
    z_quantile,
)

__all__ = ["gee_logistic", "linear_mixed", "mixed_logistic"]

MIN_CLUSTERS = 5
# Below this many clusters the GEE sandwich variance is known to be biased downwards.
GEE_MIN_CLUSTERS = 40
# A random-intercept SD below this (log-odds or outcome units) is a boundary fit: no clustering left.
BOUNDARY_SD = 1e-2
# lme4's isSingular() tolerance on the relative covariance factor theta
SINGULAR_THETA = 1e-4


def _as_list(clusters: str | Sequence[str]) -> list[str]:
    return [clusters] if isinstance(clusters, str) else list(clusters)


def _complete(data: pd.DataFrame, formula: str, columns: list[str], notes: Notes) -> pd.DataFrame:
    """The rows complete in the formula's variables and in ``columns``, so every part sees the same rows."""
    data = data.reset_index(drop=True)
    _, exog = patsy.dmatrices(formula, data, NA_action="drop", return_type="dataframe")
    kept = data.loc[exog.index].dropna(subset=columns)
    if len(kept) < len(data):
        dropped = len(data) - len(kept)
        notes.add(f"{dropped} of {len(data)} rows had a missing value in the model's variables and were left out")
    return kept


def _cluster_warnings(data: pd.DataFrame, clusters: list[str], period: str | None, notes: Notes) -> None:
    for cluster in clusters:
        k = data[cluster].nunique()
        if k < MIN_CLUSTERS:
            notes.add(
                f"Only {k} clusters of {cluster}: a between-cluster variance estimated from fewer than "
                f"{MIN_CLUSTERS} clusters is unreliable"
            )
        if period is not None:
            for level, part in data.groupby(period, sort=True):
                k = part[cluster].nunique()
                if k < MIN_CLUSTERS:
                    notes.add(f"Only {k} clusters of {cluster} in period {level} (fewer than {MIN_CLUSTERS})")


def _ordinary_logistic(data: pd.DataFrame, formula: str, notes: Notes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The logistic regression without clusters, the separation check for every fitter; returns y and X."""
    y, x = patsy.dmatrices(formula, data, return_type="dataframe")
    with captured(notes):
        fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    fitted = np.asarray(fit.fittedvalues)
    if np.any((fitted < SEPARATION_EPS) | (fitted > 1 - SEPARATION_EPS)):
        notes.add(SEPARATION)
    return y, x


@dataclass
class _Fitted:
    """What each fitter hands back: fixed effects on the log-odds scale and one SD per cluster column."""

    names: list[str]
    beta: np.ndarray
    se: np.ndarray
    log_sd: np.ndarray  # -inf for an SD of exactly zero
    log_sd_se: np.ndarray  # NaN when the fitter gives no uncertainty for the SD
    how: str
    n: int


def _fit_bayes(data, formula, names, notes, *, fit, seed, fe_prior_sd, vc_prior_sd, **_) -> _Fitted:
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with captured(notes):
        model = BinomialBayesMixedGLM.from_formula(
            formula, {c: f"0 + C(Q('{c}'))" for c in names}, data, vcp_p=vc_prior_sd, fe_p=fe_prior_sd
        )
        result = model.fit_map(rng=rng) if fit == "map" else model.fit_vb(rng=rng)
    log_sd = np.asarray(result.vcp_mean, dtype=float)
    for cluster, value in zip(names, log_sd, strict=True):
        # the joint mode has a spurious maximum at log SD = -k vc_prior_sd^2 (k levels), where the
        # prior on log SD balances the k log-densities of random effects shrunk to zero
        levels = data[cluster].nunique()
        if value < max(math.log(BOUNDARY_SD), -levels * vc_prior_sd**2 / 2):
            notes.add(
                f"The random-intercept SD for {cluster} is estimated at {math.exp(value):.2g}, at or near the "
                f"degenerate joint posterior mode exp(-{levels} x {vc_prior_sd:g}^2) = "
                f"{math.exp(-levels * vc_prior_sd**2):.2g}: a boundary (singular) fit, so the odds ratios are "
                "close to those of an ordinary logistic regression with the fixed-effect prior; fit_map "
                "collapses this way when clusters are few or small even where lme4's glmer finds a positive "
                "variance (fit='laplace' does not)"
            )
    how = (
        "statsmodels BinomialBayesMixedGLM fit_map (joint posterior mode, Laplace-type SE)"
        if fit == "map"
        else "statsmodels BinomialBayesMixedGLM fit_vb (mean-field variational Bayes, posterior mean and SD)"
    )
    how += f", priors N(0, {fe_prior_sd:g}^2) on fixed effects and N(0, {vc_prior_sd:g}^2) on log SD"
    return _Fitted(
        list(model.exog_names),
        np.asarray(result.fe_mean),
        np.asarray(result.fe_sd),
        log_sd,
        np.asarray(result.vcp_sd, dtype=float),
        how,
        int(model.endog.size),
    )


def _fit_laplace(data, formula, names, notes, *, ordinary, **_) -> _Fitted:
    y, x = ordinary
    rank = np.linalg.matrix_rank(x.to_numpy())
    if rank < x.shape[1]:
        raise ValueError(
            f"{formula}: the fixed-effect columns {list(x.columns)} are linearly dependent in these {len(x)} rows "
            f"(rank {rank} of {x.shape[1]}); leave out a term that the others determine"
        )
    codes = [pd.factorize(data[c], sort=True)[0] for c in names]
    with captured(notes):
        result = fit_laplace(y.to_numpy().ravel(), x.to_numpy(), codes)
    if not result.converged:
        notes.add(f"The Laplace maximum-likelihood fit did not converge ({result.message})")
    if np.isnan(result.cov_beta).any():
        notes.add("The information matrix is singular, so the standard errors are not available")
    elif result.fell_back:
        notes.add(
            "The Hessian of the Laplace deviance is not positive definite, so the standard errors are those "
            "conditional on the variance estimates (as glmer falls back to its RX-based covariance)"
        )
    for cluster, value in zip(names, result.theta, strict=True):
        if value < SINGULAR_THETA:
            notes.add(
                f"The random-intercept SD for {cluster} is estimated at {value:.2g}, essentially zero: a boundary "
                "(singular) fit, as lme4 reports it; the odds ratios are then those of an ordinary logistic regression"
            )
    with np.errstate(divide="ignore"):
        log_sd = np.log(result.theta)
    return _Fitted(
        list(x.columns),
        result.beta,
        np.sqrt(np.diag(result.cov_beta)),
        log_sd,
        np.full(len(names), np.nan),
        "maximum likelihood, Laplace approximation (lme4 glmer nAGQ = 1 criterion), SE from the Hessian "
        "of the deviance as glmer",
        int(y.shape[0]),
    )


FITTERS = {"map": _fit_bayes, "vb": _fit_bayes, "laplace": _fit_laplace}


def mixed_logistic(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    *,
    period: str | None = None,
    fit: str = "laplace",
    seed: int | np.random.Generator = 0,
    fe_prior_sd: float = 10.0,
    vc_prior_sd: float = 1.0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mixed-effects logistic regression with a random intercept per cluster: conditional odds ratios.

    .. math:: logit\\,P(y_i = 1) = x_i'\\beta + \\sum_c u_{c[i]}, \\quad u_c \\sim N(0, \\sigma_c^2)

    with one independent random intercept for each column in ``clusters`` (crossed when patients of
    one team meet several wards; for nested clusters give the inner column labels that are unique
    across the outer ones, e.g. "team/pharmacist").

    ``fit`` chooses the estimator:

    - ``"laplace"`` (default): maximum likelihood with the Laplace approximation, lme4's
      ``glmer(nAGQ = 1)`` criterion (:mod:`analysis.stats.laplace`); no priors, SDs without interval.
      The default because it is the only one of the three that agrees with glmer at the size of the
      reference study (233 patients, 8 teams): on the study's own models, estimates within 0.06% and
      SEs within 0.8% of glmer's defaults, whose PIRLS stops before the mode; within 2.3e-4 SE and
      3e-5 of glmer run with ``tolPwrss = 1e-13`` (tests/stats/test_mixed.py). About 0.1 s a fit.
    - ``"map"``: statsmodels ``BinomialBayesMixedGLM.fit_map``, the joint posterior mode of
      :math:`(\\beta, u, \\log\\sigma)` under priors :math:`\\beta \\sim N(0,` ``fe_prior_sd``:math:`^2)`
      and :math:`\\log\\sigma \\sim N(0,` ``vc_prior_sd``:math:`^2)`, SEs from the inverse Hessian there.
      The joint mode shrinks :math:`\\sigma`; with few or small clusters it collapses to the prior-driven
      point :math:`\\log\\sigma \\approx -k\\,` ``vc_prior_sd``:math:`^2` (k levels), a boundary fit that is
      stated in ``warnings``. ``fe_prior_sd`` defaults to 10, not statsmodels' 2, which pulled the log
      odds ratio of the study-sized reference data 8% towards 0.
    - ``"vb"``: ``fit_vb``, mean-field variational Bayes; its SEs are too small (DESIGN.md: about 30%).

    ``seed`` fixes the random starting values of ``map`` and ``vb`` (``laplace`` has none).

    Rows: fixed effects (odds ratio with Wald CI; ``std_error`` on the log-odds scale), then per
    cluster column ``sd__(Intercept)|<cluster>`` (random-intercept SD; for map/vb an interval from the
    posterior SD of log SD) and ``variance__(Intercept)|<cluster>``. Warnings: non-convergence,
    boundary fit, fewer than 5 clusters overall or per level of ``period``.

    References: Breslow NE, Clayton DG. J Am Stat Assoc 1993;88:9-25. Bates D, et al. J Stat Softw
    2015;67(1). statsmodels BayesMixedGLM.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["error"] = (rng.random(180) < np.where(d.after == 1, 0.2, 0.5)).astype(int)
    >>> mixed_logistic(d, "error ~ after", "team", seed=1)["term"].tolist()
    ['Intercept', 'after', 'sd__(Intercept)|team', 'variance__(Intercept)|team']
    """
    if fit not in FITTERS:
        raise ValueError(f"fit must be one of {sorted(FITTERS)}, got {fit!r}")
    names = _as_list(clusters)
    notes = Notes()
    data = _complete(data, formula, names + ([period] if period else []), notes)
    _cluster_warnings(data, names, period, notes)
    ordinary = _ordinary_logistic(data, formula, notes)
    fitted = FITTERS[fit](
        data,
        formula,
        names,
        notes,
        fit=fit,
        seed=seed,
        fe_prior_sd=fe_prior_sd,
        vc_prior_sd=vc_prior_sd,
        ordinary=ordinary,
    )
    method = (
        f"Mixed-effects logistic regression, random intercept for {' and '.join(names)}, {fitted.how}, "
        "conditional (cluster-specific) OR"
    )
    rows = wald_rows(
        fitted.names,
        fitted.beta,
        fitted.se,
        exponentiate=True,
        method=method + "; std_error on the log-odds scale",
        n=fitted.n,
        notes=notes,
        confidence=confidence,
    )
    z = z_quantile(confidence)
    for cluster, log_sd, se in zip(names, fitted.log_sd, fitted.log_sd_se, strict=True):
        interval = "interval exp(log SD +/- z posterior SD)" if np.isfinite(se) else "no interval"
        sd_method = f"{method}; random-intercept SD of {cluster} (log-odds scale), {interval}"
        low, high = (math.exp(log_sd - z * se), math.exp(log_sd + z * se)) if np.isfinite(se) else (math.nan, math.nan)
        rows.append(
            row(
                f"sd__(Intercept)|{cluster}",
                math.exp(log_sd),
                conf_low=low,
                conf_high=high,
                method=sd_method,
                n=fitted.n,
                warnings=str(notes),
            )
        )
        rows.append(
            row(
                f"variance__(Intercept)|{cluster}",
                math.exp(2 * log_sd),
                conf_low=low**2,
                conf_high=high**2,
                method=sd_method.replace("SD of", "variance of"),
                n=fitted.n,
                warnings=str(notes),
            )
        )
    return frame(rows)


def gee_logistic(
    data: pd.DataFrame,
    formula: str,
    cluster: str,
    *,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """GEE logistic regression with an exchangeable working correlation: population-averaged odds ratios.

    Robust (sandwich) standard errors, as geepack's ``geeglm(corstr = "exchangeable")``. Rows: one
    per coefficient (odds ratio, Wald CI; ``std_error`` on the log-odds scale) and
    ``correlation__<cluster>``, the estimated within-cluster working correlation. Fewer than 40
    clusters are flagged (the sandwich variance is then biased downwards), as are fewer than 5.

    References: Liang KY, Zeger SL. Biometrika 1986;73:13-22. Mancl LA, DeRouen TA. Biometrics
    2001;57:126-34.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["error"] = (rng.random(180) < np.where(d.after == 1, 0.2, 0.5)).astype(int)
    >>> gee_logistic(d, "error ~ after", "team")["term"].tolist()
    ['Intercept', 'after', 'correlation__team']
    """
    notes = Notes()
    data = _complete(data, formula, [cluster] + ([period] if period else []), notes)
    # geepack needs each cluster's rows together; a stable sort keeps the order within clusters
    data = data.sort_values(cluster, kind="stable")
    _cluster_warnings(data, [cluster], period, notes)
    k = data[cluster].nunique()
    if k < GEE_MIN_CLUSTERS:
        notes.add(
            f"GEE with {k} clusters: robust (sandwich) standard errors are biased downwards with fewer than "
            f"about {GEE_MIN_CLUSTERS} clusters (Mancl and DeRouen 2001)"
        )
    with captured(notes):
        model = smf.gee(formula, cluster, data, family=sm.families.Binomial(), cov_struct=sm.cov_struct.Exchangeable())
        result = model.fit(maxiter=200)
    n = int(model.nobs)
    method = (
        f"GEE logistic regression, exchangeable working correlation within {cluster}, robust (sandwich) SE, "
        "statsmodels GEE, population-averaged OR; std_error on the log-odds scale"
    )
    rows = wald_rows(
        result.params.index,
        result.params,
        result.bse,
        exponentiate=True,
        method=method,
        n=n,
        notes=notes,
        confidence=confidence,
    )
    rows.append(
        row(
            f"correlation__{cluster}",
            float(model.cov_struct.dep_params),
            method="GEE exchangeable working correlation (moment estimate)",
            n=n,
            warnings=str(notes),
        )
    )
    return frame(rows)


def _gls_standard_errors(model, ratio: float, scale: float) -> np.ndarray:
    """sqrt diag of (X' V^-1 X)^-1 with V_j = scale (I + ratio 11') per cluster, as lme4's vcov.

    statsmodels' own bse_fe come from the Hessian of the whole likelihood and differ from lmer's by
    up to 1% on small data; lmer conditions on the estimated variances, as this does.
    """
    information = np.zeros((model.k_fe, model.k_fe))
    for rows in model.row_indices.values():
        x = model.exog[rows]
        total = x.sum(axis=0)
        information += x.T @ x - ratio / (1 + len(rows) * ratio) * np.outer(total, total)
    return np.sqrt(np.diag(np.linalg.inv(information / scale)))


def linear_mixed(
    data: pd.DataFrame,
    formula: str,
    cluster: str,
    *,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Linear mixed model with a random intercept per cluster, fitted by REML (statsmodels MixedLM), as
    lme4's ``lmer(REML = TRUE)``.

    .. math:: y_{ij} = x_{ij}'\\beta + u_j + e_{ij}, \\quad u_j \\sim N(0, \\sigma_u^2),\\; e_{ij} \\sim N(0, \\sigma^2)

    Rows: fixed effects (estimate, SE, z and normal p and CI, as statsmodels reports them; lmer gives
    t without p), then ``sd__(Intercept)|<cluster>`` and ``sd__Residual``. A zero between-cluster
    variance (boundary) and fewer than 5 clusters are flagged.

    Reference: Laird NM, Ware JH. Biometrics 1982;38:963-74.

    >>> rng = np.random.default_rng(2)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEFGH"), 12), "after": np.tile([0, 1], 48)})
    >>> d["mai"] = 1 - 3 * d.after + np.repeat(rng.normal(0, 1, 8), 12) + rng.normal(0, 2, 96)
    >>> linear_mixed(d, "mai ~ after", "team")["term"].tolist()
    ['Intercept', 'after', 'sd__(Intercept)|team', 'sd__Residual']
    """
    notes = Notes()
    data = _complete(data, formula, [cluster] + ([period] if period else []), notes)
    _cluster_warnings(data, [cluster], period, notes)
    with captured(notes):
        model = smf.mixedlm(formula, data, groups=data[cluster])
    # statsmodels' default lbfgs returned a wrong optimum (intercept exactly 0, variance 0) on the
    # reference data; Powell reached lmer's REML optimum to 1e-7 there, BFGS is the fallback. Only the
    # warnings of the fit that is kept are reported.
    fits = []
    for how in ("powell", "bfgs"):
        fit_notes = Notes()
        with captured(fit_notes):
            # statsmodels says "The MLE may be on the boundary of the parameter space" (as a convergence
            # warning) for any variance below 0.01 in the outcome's squared units; a boundary fit is no
            # convergence failure, and it is judged below on the SD relative to the residual SD instead
            warnings.filterwarnings("ignore", message="The MLE may be on the boundary", category=ConvergenceWarning)
            fits.append((model.fit(reml=True, method=how), fit_notes))
    result, fit_notes = max((f for f in fits if np.isfinite(f[0].llf)), key=lambda f: f[0].llf)
    notes.extend(fit_notes)
    if not result.converged:
        notes.add("The REML fit did not converge")
    scale = float(result.scale)
    variance = max(float(result.cov_re.iloc[0, 0]), 0.0)
    ratio = variance / scale
    sd_cluster = math.sqrt(variance)
    if sd_cluster < BOUNDARY_SD * math.sqrt(scale):
        notes.add(
            f"The between-{cluster} SD is estimated at essentially zero ({sd_cluster:.2g}, against a residual SD "
            f"of {math.sqrt(scale):.2g}): a boundary (singular) fit, as lme4 reports it; the fixed effects are "
            "then those of an ordinary least-squares regression"
        )
    n = int(model.nobs)
    method = f"Linear mixed model, random intercept for {cluster}, REML (statsmodels MixedLM), Wald z"
    rows = wald_rows(
        result.fe_params.index,
        result.fe_params,
        _gls_standard_errors(model, ratio, scale),
        exponentiate=False,
        method=method + "; SE from the GLS covariance at the REML variances, as lmer",
        n=n,
        notes=notes,
        confidence=confidence,
    )
    rows.append(
        row(f"sd__(Intercept)|{cluster}", sd_cluster, method=method + "; between-cluster SD", n=n, warnings=str(notes))
    )
    rows.append(row("sd__Residual", math.sqrt(scale), method=method + "; residual SD", n=n, warnings=str(notes)))
    return frame(rows)
