"""Clustered outcomes (patients within teams, wards or pharmacists).

Two kinds of odds ratio answer different questions, and every row says which it is:

- conditional (cluster-specific): :func:`mixed_logistic`, a random intercept per cluster, the odds
  ratio for two patients in the same cluster (as lme4's ``glmer``);
- population-averaged: :func:`gee_logistic`, GEE with an exchangeable working correlation, the odds
  ratio between the populations (as geepack's ``geeglm``). It is nearer 1 than the conditional one.

:func:`mixed_poisson` is the random-intercept model for counts (conditional rate ratios, with an
exposure offset), and :func:`linear_mixed` the linear mixed model (REML) for continuous outcomes (as
``lmer``).

A cluster column that cannot carry a random intercept is fitted without it, and ``warnings`` says so:
a single cluster (there is no between-cluster variance to estimate), or a single observation in every
cluster (the between-cluster variance cannot be told apart from the variation between observations,
and lme4 refuses the model). Rows, outcomes and covariates that leave nothing to estimate are handled
as in :mod:`analysis.stats.design`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.stats.design import Design, design, not_fittable
from analysis.stats.laplace import SUPPORTED, LaplaceFit, fit_laplace
from analysis.stats.tidy import (
    Notes,
    captured,
    exp_or_missing,
    fitted_at_edge,
    frame,
    row,
    wald_rows,
    with_df_resid,
    z_quantile,
)

__all__ = ["gee_logistic", "linear_mixed", "mixed_logistic", "mixed_poisson", "random_effects"]

MIN_CLUSTERS = 5
# Below this many clusters the GEE sandwich variance is known to be biased downwards.
GEE_MIN_CLUSTERS = 40
# statsmodels' MixedLM warning when the Hessian at its optimum is not positive definite.
HESSIAN_AT_BOUNDARY = "The Hessian matrix at the estimated parameter values is not positive definite"
# A random-intercept SD below this (log-odds or outcome units) is a boundary fit: no clustering left.
BOUNDARY_SD = 1e-2
# lme4's isSingular() tolerance on the relative covariance factor theta
SINGULAR_THETA = 1e-4


def _as_list(clusters: str | Sequence[str]) -> list[str]:
    return [clusters] if isinstance(clusters, str) else list(clusters)


def _nested(data: pd.DataFrame, clusters: str | Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """lme4's nesting operator: ``"team/pharmacist"`` is ``(1 | team/pharmacist)``, that is
    ``(1 | team) + (1 | team:pharmacist)``, two random intercepts: one per team and one per pharmacist
    within a team, whose levels are the (team, pharmacist) pairs, so that pharmacist labels that repeat
    across teams (P1 of team A, P1 of team B) are different clusters. The inner column is added to a
    copy of ``data`` under lme4's name for it, ``"pharmacist:team"`` (its SD row is
    ``sd__(Intercept)|pharmacist:team``), before the outer one, in lme4's order; missing where either
    label is. Only two levels of nesting (``a/b``) are taken."""
    names: list[str] = []
    extra: dict[str, pd.Series] = {}
    for name in _as_list(clusters):
        if "/" not in name or name in data.columns:  # a column whose own name has a "/" is that column
            names.append(name)
            continue
        parts = [part.strip() for part in name.split("/")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"clusters {name!r}: nesting is written outer/inner with two columns (e.g. 'team/pharmacist'); "
                "deeper nesting is not supported"
            )
        outer, inner = parts
        for column in parts:
            if column not in data.columns:
                raise ValueError(f"clusters {name!r}: no column {column!r} in the data")
        combined = f"{inner}:{outer}"
        both = data[outer].notna() & data[inner].notna()
        labels = data[inner].astype(str) + ":" + data[outer].astype(str)
        extra[combined] = labels.where(both)
        names.extend([combined, outer])
    if extra:
        data = data.assign(**extra)
    return data, list(dict.fromkeys(names))


def _refuse_random_terms(formula: str, what: str) -> None:
    """A formula with lme4's random-effect bars ("(1 | team)", "(after | team)", "(1 + after || team)")
    asks for what these functions do not fit, or fit from ``clusters``: refused with what is supported."""
    if "|" in formula:
        raise ValueError(
            f"The formula {formula!r} has a random-effects term (a '|'), which is not supported: {what}. "
            "Random slopes and correlated random effects are not fitted; write the fixed effects in the formula "
            "and give each grouping column in clusters= (e.g. clusters='team')"
        )


def _also(clusters: list[str], period: str | None) -> list[str]:
    return clusters + ([period] if period else [])


def _random_intercepts(
    data: pd.DataFrame, clusters: list[str], notes: Notes, trials: np.ndarray | None = None
) -> list[str]:
    """The cluster columns that can carry a random intercept; each of the others is said in ``notes``.
    With ``trials`` (events out of trials per row), an observation is a trial, not a row."""
    kept = []
    observations = len(data) if trials is None else float(np.sum(trials))
    for cluster in clusters:
        levels = data[cluster].nunique()
        if levels == 1:
            notes.add(
                f"Not estimated: a single cluster of {cluster}, so no between-cluster variance can be estimated; "
                f"fitted without the random intercept for {cluster}"
            )
        elif levels == observations:
            notes.add(
                f"Not estimated: the between-{cluster} variance, because every cluster of {cluster} has a single "
                "observation, so it cannot be told apart from the variation between observations (lme4 refuses "
                f"such a model); fitted without the random intercept for {cluster}"
            )
        else:
            kept.append(cluster)
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


@dataclass(frozen=True)
class _Kind:
    """What differs between the mixed logistic and Poisson models: the outcome (a key of
    ``design.OUTCOME_CHECKS``), the family (``fit_laplace``'s and ``fitted_at_edge``'s name, and
    statsmodels' class), and the words for the model, its ratio and its scale."""

    outcome: str
    family: str
    glm_family: Callable[[], sm.families.Family]
    model: str
    ratio: str
    ratios: str
    scale: str


LOGISTIC = _Kind("binary", "binomial", sm.families.Binomial, "logistic regression", "OR", "odds ratios", "log-odds")
POISSON = _Kind("count", "poisson", sm.families.Poisson, "Poisson regression", "rate ratio", "rate ratios", "log")


def _ordinary(d: Design, kind: _Kind, offset: np.ndarray | None, notes: Notes, trials: np.ndarray | None = None):
    """The model without random intercepts: the map and vb fitters' check for separation (or groups
    without events; the Laplace fitter checks its own fitted means), and the fit itself when no cluster
    column can carry a random intercept."""
    outcome = d.y if trials is None else np.column_stack([d.y, trials - d.y])  # events, non-events
    with captured(notes):
        fit = sm.GLM(outcome, d.estimable, family=kind.glm_family(), offset=offset).fit()
    notes.add(fitted_at_edge(fit.fittedvalues, kind.family))
    return fit


@dataclass
class _Fitted:
    """What each fitter hands back: fixed effects on the link scale over every design column (NaN where
    aliased) and one log SD per cluster column it fitted, with its SE and how its interval is made."""

    beta: np.ndarray
    se: np.ndarray
    log_sd: np.ndarray  # -inf for an SD of exactly zero
    log_sd_se: np.ndarray  # NaN when the fitter gives no uncertainty for the SD
    how: str
    interval: str = "interval exp(log SD +/- z posterior SD)"
    laplace: LaplaceFit | None = None  # the Laplace fit, with the conditional modes
    levels: tuple[pd.Index, ...] = ()  # each fitted cluster column's levels, in the order of its codes


def _fit_bayes(d, clusters, notes, *, fit, seed, fe_prior_sd, vc_prior_sd, **_) -> _Fitted:
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # one 0/1 column per level, levels sorted, as the formula "0 + C(cluster)" gives them
    indicators = [pd.get_dummies(d.data[c], prefix=c, dtype=float) for c in clusters]
    with captured(notes):
        model = BinomialBayesMixedGLM(
            d.y,
            d.estimable,
            pd.concat(indicators, axis=1),
            np.concatenate([np.full(part.shape[1], j) for j, part in enumerate(indicators)]),
            vcp_p=vc_prior_sd,
            fe_p=fe_prior_sd,
            vcp_names=clusters,
        )
        result = model.fit_map(rng=rng) if fit == "map" else model.fit_vb(rng=rng)
    log_sd = np.asarray(result.vcp_mean, dtype=float)
    for cluster, value in zip(clusters, log_sd, strict=True):
        # the joint mode has a spurious maximum at log SD = -k vc_prior_sd^2 (k levels), where the
        # prior on log SD balances the k log-densities of random effects shrunk to zero
        levels = d.data[cluster].nunique()
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
    log_sd_se = np.asarray(result.vcp_sd, dtype=float)
    return _Fitted(d.expand(result.fe_mean), d.expand(result.fe_sd), log_sd, log_sd_se, how)


def _fit_laplace(d, clusters, notes, *, kind, offset, trials=None, nagq=1, **_) -> _Fitted:
    factorized = [pd.factorize(d.data[c], sort=True) for c in clusters]
    with captured(notes):
        result = fit_laplace(
            d.y, d.estimable.to_numpy(), [codes for codes, _ in factorized], family=kind.family, offset=offset,
            trials=trials, nagq=nagq,
        )
    # the check for separation (or groups without events) on the fit's own fitted means: Newton stops
    # within 1e-10 of the deviance's infimum, so separated rows' means are then within about 1e-10 of
    # 0 or 1 (the ordinary model's fit, which the other fitters use for it, costs more than this one
    # with many rows)
    notes.add(fitted_at_edge(result.fitted, kind.family))
    criterion = "Laplace" if nagq == 1 else "adaptive Gauss-Hermite quadrature"
    if not result.converged:
        notes.add(f"The {criterion} maximum-likelihood fit did not converge ({result.message})")
    if np.isnan(result.cov_beta).any():
        notes.add("The information matrix is singular, so the standard errors are not available")
    elif result.fell_back:
        notes.add(
            f"The Hessian of the {criterion} deviance is not positive definite, so the standard errors are those "
            "conditional on the variance estimates (as glmer falls back to its RX-based covariance)"
        )
    for cluster, value in zip(clusters, result.theta, strict=True):
        if value < SINGULAR_THETA:
            notes.add(
                f"The random-intercept SD for {cluster} is estimated at {value:.2g}, essentially zero: a boundary "
                f"(singular) fit, as lme4 reports it; the {kind.ratios} are then those of an ordinary {kind.model}"
            )
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sd = np.log(result.theta)
        # Wald on log SD: SE(log theta) = SE(theta) / theta, SE(theta) from the same Hessian as the SEs
        log_sd_se = np.sqrt(np.diag(result.cov_theta)) / result.theta
    log_sd_se[~(result.theta > 0)] = np.nan
    how = (
        "maximum likelihood, Laplace approximation (lme4 glmer nAGQ = 1 criterion), SE from the Hessian "
        "of the deviance as glmer"
        if nagq == 1
        else f"maximum likelihood, adaptive Gauss-Hermite quadrature with {nagq} nodes (lme4 glmer nAGQ = {nagq} "
        "criterion), SE from the Hessian of the deviance as glmer"
    )
    return _Fitted(
        d.expand(result.beta),
        d.expand(np.sqrt(np.diag(result.cov_beta))),
        log_sd,
        log_sd_se,
        how,
        interval="Wald interval on the log SD, exp(log SD +/- z SE(log SD)), SE from the same Hessian",
        laplace=result,
        levels=tuple(pd.Index(levels) for _, levels in factorized),
    )


FITTERS = {"map": _fit_bayes, "vb": _fit_bayes, "laplace": _fit_laplace}


@dataclass
class _Model:
    """A mixed model fitted, with what its rows need: the design, the notes, what was fitted and the
    method's words; ``n`` is the number of observations (of trials, for events out of trials)."""

    d: Design
    notes: Notes
    fitted: _Fitted
    clusters: list[str]  # as asked
    fitted_clusters: list[str]
    unfitted: str
    method: str
    n: int


def _unfittable(d: Design, kind: _Kind, trials: np.ndarray | None) -> str:
    """``not_fittable``, with events out of trials counted as trials."""
    if trials is None or d.n == 0 or not d.kept:
        return not_fittable(d, kind.outcome)
    events, total = float(d.y.sum()), float(trials.sum())
    if events == 0:
        return f"Not estimated: none of the {total:g} trials had the outcome, so no odds ratio can be estimated"
    if events == total:
        return f"Not estimated: all {total:g} trials had the outcome, so no odds ratio can be estimated"
    return ""


def _fit_mixed(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    kind: _Kind,
    *,
    exposure: str | None,
    trials: str | None,
    period: str | None,
    fit: str,
    **options,
) -> _Model:
    """The design, the checks, and the fit behind :func:`mixed_logistic`, :func:`mixed_poisson` and
    :func:`random_effects`."""
    _refuse_random_terms(formula, f"these models fit {SUPPORTED}")
    data, names = _nested(data, clusters)
    if options.get("nagq", 1) != 1 and len(names) > 1:
        raise ValueError(
            f"nagq > 1 (adaptive Gauss-Hermite quadrature) needs a single random intercept, and clusters gives "
            f"{len(names)} ({', '.join(names)}): lme4's glmer allows nAGQ > 1 only for a single scalar random-effects "
            "term; fit several random intercepts with nagq = 1 (Laplace)"
        )
    notes = Notes()
    also = _also(names, period) + [c for c in (exposure, trials) if c]
    d = design(data, formula, notes, also=also)
    offset = None
    if exposure:
        values = d.data[exposure].to_numpy(dtype=float)
        if (values <= 0).any():
            raise ValueError(f"exposure column {exposure!r} must be positive")
        offset = np.log(values)
    counts = None
    if trials:
        counts = d.data[trials].to_numpy(dtype=float)
        if (counts < 0).any() or (d.y < 0).any() or (d.y > counts).any():
            raise ValueError(f"the events (the formula's outcome) must lie between 0 and the trials in {trials!r}")
    fitted_clusters: list[str] = []
    unfitted = _unfittable(d, kind, counts)
    if unfitted:
        notes.add(unfitted)
        missing = np.full(d.x.shape[1], np.nan)
        fitted = _Fitted(missing, missing, np.array([]), np.array([]), "not fitted")
    else:
        fitted_clusters = _random_intercepts(d.data, names, notes, counts)
        _cluster_warnings(d.data, fitted_clusters, period, notes)
        if fitted_clusters:
            if fit != "laplace":
                _ordinary(d, kind, offset, notes, counts)  # the check for separation
            fitted = FITTERS[fit](
                d, fitted_clusters, notes, fit=fit, kind=kind, offset=offset, trials=counts, **options
            )
        else:
            ordinary = _ordinary(d, kind, offset, notes, counts)
            fitted = _Fitted(d.expand(ordinary.params), d.expand(ordinary.bse), np.array([]), np.array([]), "ML, IRLS")
    offset_words = f", offset log({exposure})" if exposure else ""
    if trials:
        offset_words += f", events out of the trials in {trials} ({d.n} rows)"
    if fitted_clusters or unfitted:
        method = (
            f"Mixed-effects {kind.model}, random intercept for {' and '.join(fitted_clusters or names)}, "
            f"{fitted.how}{offset_words}, conditional (cluster-specific) {kind.ratio}"
        )
    else:
        method = (
            f"{kind.model.capitalize()} without random intercepts (none could be estimated), {fitted.how}"
            f"{offset_words}, {kind.ratio}"
        )
    n = d.n if counts is None else int(round(counts.sum()))
    return _Model(d, notes, fitted, names, fitted_clusters, unfitted, method, n)


def _mixed_glm(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    kind: _Kind,
    *,
    exposure: str | None,
    period: str | None,
    fit: str,
    confidence: float,
    trials: str | None = None,
    **options,
) -> pd.DataFrame:
    """The rows of :func:`mixed_logistic` and :func:`mixed_poisson`: fixed effects as ratios, then the SD
    and variance of each cluster column's random intercept."""
    model = _fit_mixed(
        data, formula, clusters, kind, exposure=exposure, trials=trials, period=period, fit=fit, **options
    )
    d, notes, fitted, method = model.d, model.notes, model.fitted, model.method
    z = z_quantile(confidence)
    estimated = dict(zip(model.fitted_clusters, zip(fitted.log_sd, fitted.log_sd_se, strict=True), strict=True))
    sds = {}
    for cluster in model.clusters:  # before any row is built, so that an overflow's sentence reaches them all
        log_sd, se = estimated.get(cluster, (math.nan, math.nan))
        limits = [exp_or_missing(log_sd + sign * z * se, notes) for sign in (-1, 1)] if np.isfinite(se) else None
        sds[cluster] = (log_sd, limits)
    rows = wald_rows(
        d.x.columns,
        fitted.beta,
        fitted.se,
        exponentiate=True,
        method=method + f"; std_error on the {kind.scale} scale",
        n=model.n,
        notes=notes,
        confidence=confidence,
    )
    for cluster, (log_sd, limits) in sds.items():
        interval = fitted.interval if limits else "no interval"
        sd_method = f"{method}; random-intercept SD of {cluster} ({kind.scale} scale), {interval}"
        low, high = limits or (math.nan, math.nan)
        for what, power in (("sd", 1), ("variance", 2)):
            rows.append(
                row(
                    f"{what}__(Intercept)|{cluster}",
                    math.exp(power * log_sd),
                    conf_low=low**power,
                    conf_high=high**power,
                    method=sd_method if power == 1 else sd_method.replace("SD of", "variance of"),
                    n=model.n,
                    warnings=str(notes),
                )
            )
    if model.unfitted:
        return frame(rows)
    # residual df as lme4's df.residual (nobs less npar: the fixed effects and one variance parameter per
    # random intercept; rows, not trials, are the observations), not as statsmodels' mixed models, which count
    # the fixed effects only: a variance is fitted to the same rows, and the stricter count is the one a
    # disclosure check should read. The cluster modes are predictions, not parameters, in both.
    return with_df_resid(frame(rows), d.n - len(d.kept) - len(model.fitted_clusters))


def mixed_logistic(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    *,
    period: str | None = None,
    fit: str = "laplace",
    trials: str | None = None,
    seed: int | np.random.Generator = 0,
    fe_prior_sd: float = 10.0,
    vc_prior_sd: float = 1.0,
    confidence: float = 0.95,
    nagq: int = 1,
) -> pd.DataFrame:
    """Mixed-effects logistic regression with a random intercept per cluster: conditional odds ratios.

    .. math:: logit\\,P(y_i = 1) = x_i'\\beta + \\sum_c u_{c[i]}, \\quad u_c \\sim N(0, \\sigma_c^2)

    with one independent random intercept for each column in ``clusters`` (crossed when patients of
    one team meet several wards). Nested clusters are written as lme4 writes them, ``"team/pharmacist"``
    (alone or in a list): ``(1 | team/pharmacist)`` = ``(1 | team) + (1 | team:pharmacist)``, a random
    intercept per team and one per pharmacist within a team, whose clusters are the (team, pharmacist)
    pairs, so the pharmacist labels need not be unique across teams; the rows are named as lme4 names
    them, ``sd__(Intercept)|pharmacist:team`` and ``sd__(Intercept)|team``. Against ``glmer(error ~ after
    + age10 + (1 | team/pharmacist), control = glmerControl(tolPwrss = 1e-13))`` on pharmacists P1 to P4
    in each of 12 teams (tests/stats/test_mixed.py). Random intercepts are all it fits: a formula with a
    random-effects term such as ``(after | team)`` (random slopes, correlated effects) is refused.

    With ``trials`` (a column), each row holds events out of trials (aggregated data): the formula's
    outcome counts the events, ``trials`` the patients, as ``glmer(cbind(events, trials - events) ~ ...)``;
    ``n`` is then the number of trials. Only ``fit="laplace"`` takes them.

    ``fit`` chooses the estimator:

    - ``"laplace"`` (default): maximum likelihood with the Laplace approximation, lme4's
      ``glmer(nAGQ = 1)`` criterion (:mod:`analysis.stats.laplace`); no priors; the SD's interval is a
      Wald interval on the log SD from the Hessian of the deviance (none when the SD is 0). The default
      because it is the only one of the three that agrees with glmer at the size of the reference
      study (233 patients, 8 teams): on the study's own models, estimates within 0.06% and SEs within
      0.8% of glmer's defaults, whose PIRLS stops before the mode; within 5e-4 SE of glmer run with
      ``tolPwrss = 1e-13`` (tests/stats/test_mixed.py), and likewise at 100,000 patients in 200 teams.
      With one cluster column the fit itself takes a few milliseconds at the study's size and about 0.1 s
      at 100,000 rows (tests/benchmarks/RESULTS.md); building the design from the formula comes on top.
    - ``"map"``: statsmodels ``BinomialBayesMixedGLM.fit_map``, the joint posterior mode of
      :math:`(\\beta, u, \\log\\sigma)` under priors :math:`\\beta \\sim N(0,` ``fe_prior_sd``:math:`^2)`
      and :math:`\\log\\sigma \\sim N(0,` ``vc_prior_sd``:math:`^2)`, SEs from the inverse Hessian there.
      The joint mode shrinks :math:`\\sigma`; with few or small clusters it collapses to the prior-driven
      point :math:`\\log\\sigma \\approx -k\\,` ``vc_prior_sd``:math:`^2` (k levels), a boundary fit that is
      stated in ``warnings``. ``fe_prior_sd`` defaults to 10, not statsmodels' 2, which pulled the log
      odds ratio of the study-sized reference data 8% towards 0.
    - ``"vb"``: ``fit_vb``, mean-field variational Bayes; its SEs are too small (DESIGN.md: about 30%).

    ``seed`` fixes the random starting values of ``map`` and ``vb`` (``laplace`` has none).

    ``nagq`` (``fit="laplace"`` only) is lme4's ``nAGQ``: 1 (the default) the Laplace approximation;
    more, adaptive Gauss-Hermite quadrature with that many nodes per cluster, for a single random
    intercept only (refused with several, as lme4 refuses it). Each cluster's likelihood is then the
    one-dimensional integral over its spherical random effect v (:math:`u = \\sigma v`)

    .. math:: L_j = \\int \\prod_{i \\in j} f(y_i \\mid \\eta_i(v))\\,\\phi(v)\\,dv
              \\approx \\frac{1}{\\sqrt{M_j}} \\sum_{k=1}^{K} w_k
              \\exp\\Big(\\ell_j(\\hat v_j + z_k/\\sqrt{M_j}) - \\tfrac12(\\hat v_j + z_k/\\sqrt{M_j})^2
              + \\tfrac12 z_k^2\\Big)

    centred at the conditional mode :math:`\\hat v_j` and scaled by its conditional SD
    :math:`1/\\sqrt{M_j}`, :math:`M_j = 1 + \\sigma^2 \\sum_{i \\in j} \\mu_i(1 - \\mu_i)`, with
    :math:`z_k, w_k` the K-point Gauss-Hermite rule for the standard normal (Pinheiro JC, Bates DM.
    J Comput Graph Stat 1995;4:12-35; the lme4 vignette, Bates et al. 2015, and ``?glmer``): K = 1 is the
    Laplace approximation, and with small clusters (a few patients each) and a large SD, where Laplace
    is poor, 10 nodes give the likelihood to many digits. Against ``glmer(nAGQ = 10, tolPwrss = 1e-13)``
    on 60 clusters of 3 to 5 patients (tests/stats/test_mixed.py), where the Laplace SD is 7% lower.

    Rows: fixed effects (odds ratio with Wald CI; ``std_error`` on the log-odds scale), then per
    cluster column ``sd__(Intercept)|<cluster>`` (random-intercept SD; for laplace a Wald interval on
    the log SD, for map/vb an interval from the posterior SD of log SD) and
    ``variance__(Intercept)|<cluster>``. The conditional modes of the random intercepts are
    :func:`random_effects`'. Warnings: non-convergence, boundary fit, fewer than 5 clusters overall or
    per level of ``period``. A cluster column with a single cluster, or a single observation per
    cluster, is left out of the model (its SD missing) and with none left the fit is the ordinary
    logistic regression; no events (or nothing but events) leaves every row missing; each is said in
    ``warnings``.

    References: Breslow NE, Clayton DG. J Am Stat Assoc 1993;88:9-25. Bates D, et al. J Stat Softw
    2015;67(1). statsmodels BayesMixedGLM.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["error"] = (rng.random(180) < np.where(d.after == 1, 0.2, 0.5)).astype(int)
    >>> mixed_logistic(d, "error ~ after", "team", seed=1)["term"].tolist()
    ['Intercept', 'after', 'sd__(Intercept)|team', 'variance__(Intercept)|team']
    >>> cells = d.groupby(["team", "after"], as_index=False).agg(errors=("error", "sum"), patients=("error", "size"))
    >>> aggregated = mixed_logistic(cells, "errors ~ after", "team", trials="patients")
    >>> bool(np.allclose(aggregated.estimate, mixed_logistic(d, "error ~ after", "team").estimate, rtol=1e-6))
    True
    """
    if fit not in FITTERS:
        raise ValueError(f"fit must be one of {sorted(FITTERS)}, got {fit!r}")
    if trials and fit != "laplace":
        raise ValueError(f"events out of trials are fitted by fit='laplace' only, not {fit!r}")
    if nagq != 1 and fit != "laplace":
        raise ValueError(f"nagq (adaptive Gauss-Hermite quadrature) is for fit='laplace' only, not {fit!r}")
    return _mixed_glm(
        data,
        formula,
        clusters,
        LOGISTIC,
        exposure=None,
        trials=trials,
        period=period,
        fit=fit,
        confidence=confidence,
        seed=seed,
        fe_prior_sd=fe_prior_sd,
        vc_prior_sd=vc_prior_sd,
        nagq=nagq,
    )


def mixed_poisson(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    *,
    exposure: str | None = None,
    period: str | None = None,
    confidence: float = 0.95,
    nagq: int = 1,
) -> pd.DataFrame:
    """Mixed-effects Poisson regression with a random intercept per cluster: conditional rate ratios.

    .. math:: \\log E(y_i \\mid u) = \\log t_i + x_i'\\beta + \\sum_c u_{c[i]}, \\quad u_c \\sim N(0, \\sigma_c^2)

    where :math:`t_i` is the column ``exposure`` (person-time, medicines, ...; omitted when None), as
    ``glmer(y ~ x + (1 | cluster), family = poisson, offset = log(exposure))``. Fitted by maximum
    likelihood with the Laplace approximation, glmer's ``nAGQ = 1`` criterion (the fitter of
    :func:`mixed_logistic`'s default, :mod:`analysis.stats.laplace`). The random intercept carries the
    overdispersion that comes from the clusters; counts overdispersed within clusters as well need
    more than this model. Random intercepts are all it fits (a formula with ``(x | cluster)`` is refused).
    ``nagq`` > 1 fits one random intercept by adaptive Gauss-Hermite quadrature with that many nodes, as
    ``glmer(nAGQ = nagq)`` and :func:`mixed_logistic`, for small clusters with few events, where the
    Laplace approximation is poor (against glmer nAGQ = 10: tests/stats/test_mixed.py).

    Rows, named and built as :func:`mixed_logistic`'s: fixed effects (rate ratio with Wald CI;
    ``std_error`` on the log scale), then per cluster column ``sd__(Intercept)|<cluster>`` (a Wald
    interval on the log SD) and ``variance__(Intercept)|<cluster>``. Warnings as there; no events at
    all leaves every row missing, and a group without events (fitted counts numerically 0) is flagged.
    Against ``glmer(control = glmerControl(tolPwrss = 1e-13))``: estimates within 1e-4 relative, SEs
    and SD within 1% (tests/stats/test_mixed.py).

    References: Breslow NE, Clayton DG. J Am Stat Assoc 1993;88:9-25. Bates D, et al. J Stat Softw
    2015;67(1).

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["days"] = rng.integers(2, 20, 180)
    >>> d["errors"] = rng.poisson(d.days * np.where(d.after == 1, 0.05, 0.1) * np.repeat(rng.gamma(4, 0.25, 6), 30))
    >>> mixed_poisson(d, "errors ~ after", "team", exposure="days")["term"].tolist()
    ['Intercept', 'after', 'sd__(Intercept)|team', 'variance__(Intercept)|team']
    """
    return _mixed_glm(
        data, formula, clusters, POISSON, exposure=exposure, period=period, fit="laplace", confidence=confidence,
        nagq=nagq,
    )


KINDS = {"binomial": LOGISTIC, "poisson": POISSON}


def random_effects(
    data: pd.DataFrame,
    formula: str,
    clusters: str | Sequence[str],
    *,
    family: str = "binomial",
    exposure: str | None = None,
    trials: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The conditional modes of the random intercepts (the BLUPs, on the link scale) and their
    conditional SDs, as lme4's ``ranef(fit, condVar = TRUE)``, for the model of :func:`mixed_logistic`
    (``family="binomial"``, with ``trials`` for events out of trials) or :func:`mixed_poisson`
    (``family="poisson"``, with ``exposure``), fitted by Laplace maximum likelihood.

    With spherical random effects v (:math:`u = \\Lambda v`) and :math:`\\hat v` the mode of the penalised
    log-likelihood at the estimates (:mod:`analysis.stats.laplace`):

    .. math:: \\hat u = \\Lambda\\hat v, \\qquad sd(u \\mid y) = \\sqrt{diag(\\Lambda M^{-1}\\Lambda)},
              \\qquad M = \\Lambda Z'WZ\\Lambda + I

    which with one cluster column is :math:`\\hat\\sigma/\\sqrt{1 + \\hat\\sigma^2 K_j}`,
    :math:`K_j = \\sum_{i \\in j} w_i` (:math:`w = \\mu(1-\\mu)` per trial, or the fitted count). These
    condition on the estimates: they leave out the uncertainty in :math:`\\hat\\beta` and
    :math:`\\hat\\sigma`, as lme4's do.

    Rows: one per cluster column and level, in the order of the sorted levels: ``term``
    "(Intercept)|<cluster>", ``estimate`` the conditional mode, ``std_error`` the conditional SD,
    ``conf_low``/``conf_high`` the mode +/- z SD (the intervals of lme4's ``dotplot(ranef(condVar =
    TRUE))``, conditional as above), ``n`` the level's observations in the fit (its rows, or its trials
    with ``trials``), and the extra columns ``group`` (the cluster column), ``level`` and ``events`` (the
    level's sum of the outcome: its events, or its counts for ``poisson``). A cluster column that could not
    carry a random intercept, or a model that could not be fitted, gives one row with missing numbers, the
    model's ``n`` and the reason in ``warnings``. Against lme4's ``ranef`` of glmer with
    ``tolPwrss = 1e-13`` (tests/stats/test_mixed.py).

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["error"] = (rng.random(180) < np.where(d.after == 1, 0.2, 0.5)).astype(int)
    >>> random_effects(d, "error ~ after", "team")[["level", "estimate"]].shape
    (6, 2)
    """
    if family not in KINDS:
        raise ValueError(f"family must be one of {sorted(KINDS)}, got {family!r}: these models fit {SUPPORTED}")
    if trials and family != "binomial":
        raise ValueError("trials (events out of trials) are for family='binomial' only")
    kind = KINDS[family]
    model = _fit_mixed(data, formula, clusters, kind, exposure=exposure, trials=trials, period=None, fit="laplace")
    notes, fitted = model.notes, model.fitted
    z = z_quantile(confidence)
    method = (
        f"{model.method}; conditional mode of the random intercept ({kind.scale} scale) given the estimates, "
        "with its conditional SD (lme4 ranef, condVar = TRUE); interval mode +/- z SD"
    )
    # each level's own observations (rows, or trials with `trials`), by which its mode is shrunk, and events
    observations = pd.DataFrame({
        "n": np.ones(model.d.n) if trials is None else model.d.data[trials].to_numpy(dtype=float),
        "events": model.d.y,
    })
    rows = []
    for cluster in model.clusters:
        term = f"(Intercept)|{cluster}"
        if cluster not in model.fitted_clusters or fitted.laplace is None:
            rows.append(row(term, method=method, n=model.n, warnings=str(notes), group=cluster, level="",
                            events=math.nan))
            continue
        j = model.fitted_clusters.index(cluster)
        modes, sds = fitted.laplace.modes[j], fitted.laplace.mode_sd[j]
        sizes = observations.groupby(model.d.data[cluster].to_numpy()).sum().reindex(fitted.levels[j])
        for level, mode, sd, size, events in zip(fitted.levels[j], modes, sds, sizes["n"], sizes["events"],
                                                 strict=True):
            rows.append(
                row(
                    term,
                    float(mode),
                    float(sd),
                    conf_low=float(mode - z * sd),
                    conf_high=float(mode + z * sd),
                    method=method,
                    n=int(round(size)),
                    warnings=str(notes),
                    group=cluster,
                    level=str(level),
                    events=float(events),
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

    A single cluster leaves no between-cluster variation for the sandwich: the fit is then the
    ordinary logistic regression (the marginal odds ratios, model-based SEs) and the correlation is
    missing; so is the correlation when every cluster has a single observation (no pairs within
    clusters). No events (or nothing but events) leaves every row missing. Each is said in ``warnings``.

    References: Liang KY, Zeger SL. Biometrika 1986;73:13-22. Mancl LA, DeRouen TA. Biometrics
    2001;57:126-34.

    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEF"), 30), "after": np.tile([0, 1], 90)})
    >>> d["error"] = (rng.random(180) < np.where(d.after == 1, 0.2, 0.5)).astype(int)
    >>> gee_logistic(d, "error ~ after", "team")["term"].tolist()
    ['Intercept', 'after', 'correlation__team']
    """
    _refuse_random_terms(formula, "GEE has no random effects; it takes the cluster column as cluster=")
    notes = Notes()
    d = design(data, formula, notes, also=_also([cluster], period))
    method = (
        f"GEE logistic regression, exchangeable working correlation within {cluster}, robust (sandwich) SE, "
        "statsmodels GEE, population-averaged OR; std_error on the log-odds scale"
    )
    correlation_method = "GEE exchangeable working correlation (moment estimate)"
    unfitted = not_fittable(d, "binary")
    k = d.data[cluster].nunique()
    if unfitted:
        notes.add(unfitted)
        estimates = np.full(d.x.shape[1], np.nan)
        ses, correlation = estimates, math.nan
    elif k == 1:
        notes.add(
            f"Not estimated: the robust (sandwich) standard errors and the within-{cluster} correlation, because "
            f"there is a single cluster of {cluster} and the sandwich needs variation between clusters; fitted "
            "as an ordinary logistic regression (marginal odds ratios, model-based SE)"
        )
        method = (
            "Logistic regression (ML, IRLS) in a single cluster, model-based SE, population-averaged (marginal) "
            "OR; std_error on the log-odds scale"
        )
        ordinary = _ordinary(d, LOGISTIC, None, notes)
        estimates, ses, correlation = d.expand(ordinary.params), d.expand(ordinary.bse), math.nan
    else:
        _cluster_warnings(d.data, [cluster], period, notes)
        if k < GEE_MIN_CLUSTERS:
            notes.add(
                f"GEE with {k} clusters: robust (sandwich) standard errors are biased downwards with fewer than "
                f"about {GEE_MIN_CLUSTERS} clusters (Mancl and DeRouen 2001)"
            )
        # geepack needs each cluster's rows together; a stable sort keeps the order within clusters
        order = d.data.sort_values(cluster, kind="stable").index
        with captured(notes):
            model = sm.GEE(
                d.y[order],
                d.estimable.loc[order],
                groups=d.data.loc[order, cluster],
                family=sm.families.Binomial(),
                cov_struct=sm.cov_struct.Exchangeable(),
            )
            result = model.fit(maxiter=200)
        estimates, ses = d.expand(result.params), d.expand(result.bse)
        correlation = float(model.cov_struct.dep_params)
        if k == d.n:
            notes.add(
                f"Not estimated: the within-{cluster} correlation, because every cluster of {cluster} has a single "
                "observation, so there are no pairs within clusters"
            )
            correlation = math.nan
    rows = wald_rows(d.x.columns, estimates, ses, exponentiate=True, method=method, n=d.n, notes=notes,
                     confidence=confidence)
    rows.append(row(f"correlation__{cluster}", correlation, method=correlation_method, n=d.n, warnings=str(notes)))
    # statsmodels' GEE df_resid: n less the coefficients (the working correlation is a nuisance, not counted)
    return frame(rows) if unfitted else with_df_resid(frame(rows), d.n - len(d.kept))


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

    A single cluster, or a single observation per cluster, leaves the between-cluster variance
    inestimable: the fit is then ordinary least squares (t tests on the residual df, in ``df``) and the
    cluster SD is missing. An outcome without non-missing values, or that never varies, leaves every
    row missing. Each is said in ``warnings``.

    Reference: Laird NM, Ware JH. Biometrics 1982;38:963-74.

    >>> rng = np.random.default_rng(2)
    >>> d = pd.DataFrame({"team": np.repeat(list("ABCDEFGH"), 12), "after": np.tile([0, 1], 48)})
    >>> d["mai"] = 1 - 3 * d.after + np.repeat(rng.normal(0, 1, 8), 12) + rng.normal(0, 2, 96)
    >>> linear_mixed(d, "mai ~ after", "team")["term"].tolist()
    ['Intercept', 'after', 'sd__(Intercept)|team', 'sd__Residual']
    """
    _refuse_random_terms(formula, "this linear mixed model has one random intercept, for the column given as cluster=")
    notes = Notes()
    d = design(data, formula, notes, also=_also([cluster], period))
    method = f"Linear mixed model, random intercept for {cluster}, REML (statsmodels MixedLM), Wald z"
    unfitted = not_fittable(d, "continuous")
    if unfitted:
        notes.add(unfitted)
        terms = [*d.x.columns, f"sd__(Intercept)|{cluster}", "sd__Residual"]
        return frame(row(term, method=method, n=d.n, warnings=str(notes)) for term in terms)
    if not _random_intercepts(d.data, [cluster], notes):
        return _least_squares(d, cluster, notes, confidence)
    _cluster_warnings(d.data, [cluster], period, notes)
    with captured(notes):
        model = sm.MixedLM(d.y, d.estimable, groups=d.data[cluster])
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
    scale = float(result.scale)
    variance = max(float(result.cov_re.iloc[0, 0]), 0.0)
    ratio = variance / scale
    sd_cluster = math.sqrt(variance)
    boundary = sd_cluster < BOUNDARY_SD * math.sqrt(scale)
    for sentence in str(fit_notes).splitlines():
        # at a boundary fit the likelihood is flat in the variance, so statsmodels' Hessian there is not
        # positive definite by construction: no failure to converge, and the SEs below do not use it
        if not (boundary and HESSIAN_AT_BOUNDARY in sentence):
            notes.add(sentence)
    if not result.converged:
        notes.add("The REML fit did not converge")
    if boundary:
        notes.add(
            f"The between-{cluster} SD is estimated at essentially zero ({sd_cluster:.2g}, against a residual SD "
            f"of {math.sqrt(scale):.2g}): a boundary (singular) fit, as lme4 reports it; the fixed effects are "
            "then those of an ordinary least-squares regression"
        )
    rows = wald_rows(
        d.x.columns,
        d.expand(result.fe_params),
        d.expand(_gls_standard_errors(model, ratio, scale)),
        exponentiate=False,
        method=method + "; SE from the GLS covariance at the REML variances, as lmer",
        n=d.n,
        notes=notes,
        confidence=confidence,
    )
    rows.append(row(f"sd__(Intercept)|{cluster}", sd_cluster, method=method + "; between-cluster SD", n=d.n,
                    warnings=str(notes)))
    rows.append(row("sd__Residual", math.sqrt(scale), method=method + "; residual SD", n=d.n, warnings=str(notes)))
    # lme4's df.residual of an lmer fit: nobs less the fixed effects, the random-intercept variance and the
    # residual variance (see `_mixed_glm`)
    return with_df_resid(frame(rows), d.n - len(d.kept) - 2)


def _least_squares(d: Design, cluster: str, notes: Notes, confidence: float) -> pd.DataFrame:
    """:func:`linear_mixed`'s rows when no random intercept can be estimated: ordinary least squares."""
    with captured(notes):
        fit = sm.OLS(d.y, d.estimable).fit()
    method = f"Linear regression (ordinary least squares) without the random intercept for {cluster}, Wald t"
    rows = wald_rows(
        d.x.columns,
        d.expand(fit.params),
        d.expand(fit.bse),
        exponentiate=False,
        method=method + f" on the residual {fit.df_resid:g} df",
        n=d.n,
        notes=notes,
        confidence=confidence,
        df=float(fit.df_resid),
    )
    rows.append(row(f"sd__(Intercept)|{cluster}", method=method + "; between-cluster SD", n=d.n, warnings=str(notes)))
    rows.append(row("sd__Residual", math.sqrt(fit.scale), method=method + "; residual SD", n=d.n, warnings=str(notes)))
    return with_df_resid(frame(rows), fit.df_resid)
