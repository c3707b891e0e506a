"""Regression for independent observations: logistic (odds ratios, Hosmer-Lemeshow, Nagelkerke R²),
Poisson and negative binomial (rate ratios).

Models are given as a formula and a data frame (statsmodels/patsy syntax, e.g. ``"error ~ after + age"``);
rows with a missing value in a variable of the formula are left out and counted in ``warnings``.
Coefficient rows hold exp(coefficient) in ``estimate`` and its Wald interval, with ``std_error``,
``statistic`` (z) and ``p_value`` on the log scale, as R's ``broom::tidy(exponentiate = TRUE)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import special, stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from analysis.stats.design import Design, design, not_fittable
from analysis.stats.tidy import SEPARATION_EPS, Notes, captured, fitted_at_edge, frame, row, wald_rows, with_df_resid

__all__ = [
    "hosmer_lemeshow",
    "hosmer_lemeshow_p",
    "logistic_regression",
    "nagelkerke_r2",
    "nagelkerke_r2_value",
    "negative_binomial_regression",
    "poisson_regression",
]

# Pearson dispersion above which Poisson standard errors are flagged as too small.
_OVERDISPERSION = 1.5


def _coefficient_rows(d: Design, fit, method: str, notes: Notes, confidence: float) -> list[dict]:
    """Odds or rate ratios of every column of the design, with Wald intervals; missing for aliased columns
    and, when ``fit`` is None (nothing could be fitted), for all."""
    if fit is None:
        return [row(name, method=method, n=d.n, warnings=str(notes)) for name in d.x.columns]
    return wald_rows(list(d.x.columns), d.expand(fit.params), d.expand(fit.bse), exponentiate=True, method=method,
                     n=d.n, notes=notes, confidence=confidence)


def hosmer_lemeshow(observed, predicted, *, groups: int = 10) -> pd.DataFrame:
    """Hosmer-Lemeshow goodness-of-fit test by deciles (``groups``) of fitted risk.

    Groups are cut at the type-7 quantiles of the fitted probabilities (duplicate breaks dropped,
    right-closed, lowest included), as R's ``ResourceSelection::hoslem.test``. With :math:`O_g, E_g`
    observed and expected events and :math:`n_g` patients in group g:

    .. math:: \\hat C = \\sum_g \\frac{(O_g - E_g)^2}{E_g (1 - E_g / n_g)}, \\quad df = G - 2

    where G is the number of groups formed (fewer than ``groups`` when fitted risks are tied, which
    is flagged). SPSS forms its groups differently, so its statistic can differ on the same model.

    Reference: Hosmer DW, Lemeshow S. Commun Stat Theory Methods 1980;9:1043-69.

    >>> y = [0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1]
    >>> p = [.1, .2, .3, .3, .4, .5, .5, .6, .7, .9, .15, .25, .35, .3, .45, .55, .5, .65, .75, .85]
    >>> hosmer_lemeshow(y, p, groups=5)["term"].iloc[0]
    'hosmer_lemeshow'
    """
    y = np.asarray(observed, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if y.size == 0:
        return frame(
            [
                row(
                    "hosmer_lemeshow",
                    method=f"Hosmer-Lemeshow test by {groups} quantile groups of fitted risk",
                    n=0,
                    warnings="Not estimated: there are no observations.",
                )
            ]
        )
    statistic, formed = _hosmer_lemeshow_statistic(y, p, groups)
    df = formed - 2
    notes = Notes()
    if math.isnan(statistic):
        notes.add(
            "A risk group's fitted risks are all numerically 0 or 1, so the Hosmer-Lemeshow statistic is undefined"
        )
    if formed < groups:
        notes.add(f"Fitted risks are tied, so only {formed} of the {groups} Hosmer-Lemeshow groups could be formed")
    if df < 1:
        notes.add("Fewer than 3 risk groups: the Hosmer-Lemeshow test is undefined")
    return frame(
        [
            row(
                "hosmer_lemeshow",
                statistic=statistic,
                df=float(df) if df >= 1 else math.nan,
                p_value=float(stats.chi2.sf(statistic, df)) if df >= 1 else math.nan,
                method=(
                    f"Hosmer-Lemeshow test, {formed} groups by quantiles of fitted risk "
                    f"(as ResourceSelection::hoslem.test), chi-square on {df} df"
                ),
                n=int(y.size),
                warnings=str(notes),
            )
        ]
    )


def _hosmer_lemeshow_statistic(y: np.ndarray, p: np.ndarray, groups: int) -> tuple[float, int]:
    """(statistic, groups formed) of :func:`hosmer_lemeshow`; the statistic is NaN when a group's
    variance vanishes. Apart from the frame so that a caller refitting thousands of times (the
    synthetic data's calibration) can have the number without building a data frame each time."""
    breaks = np.unique(np.quantile(p, np.linspace(0, 1, groups + 1)))
    # right-closed intervals with the lowest break included, as R's cut(include.lowest = TRUE)
    group = np.clip(np.searchsorted(breaks, p, side="left"), 1, breaks.size - 1)
    labels, group = np.unique(group, return_inverse=True)
    o = np.bincount(group, weights=y, minlength=labels.size)
    e = np.bincount(group, weights=p, minlength=labels.size)
    n_g = np.bincount(group, minlength=labels.size)
    variance = e * (1 - e / n_g)
    if np.any(variance < SEPARATION_EPS):
        return math.nan, int(labels.size)
    return float(np.sum((o - e) ** 2 / variance)), int(labels.size)


def hosmer_lemeshow_p(observed, predicted, *, groups: int = 10) -> float:
    """The p-value of :func:`hosmer_lemeshow` alone (NaN where that test is undefined), without the
    frame: for callers that compute it thousands of times."""
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    if observed.size == 0:
        return math.nan
    statistic, formed = _hosmer_lemeshow_statistic(observed, predicted, groups)
    return float(stats.chi2.sf(statistic, formed - 2)) if formed >= 3 else math.nan


def nagelkerke_r2_value(loglik_model: float, loglik_null: float, n: int) -> float:
    """Nagelkerke's R² of :func:`nagelkerke_r2` as a number (NaN where undefined), without the frame."""
    if n < 1 or not loglik_null < 0:
        return math.nan
    return (1 - math.exp(2 * (loglik_null - loglik_model) / n)) / (1 - math.exp(2 * loglik_null / n))


def nagelkerke_r2(loglik_model: float, loglik_null: float, n: int) -> pd.DataFrame:
    """Nagelkerke's R²: Cox-Snell's R² divided by its maximum (as SPSS prints it).

    .. math:: R^2_{CS} = 1 - e^{2(\\ell_0 - \\ell_1)/n}, \\quad R^2_N = R^2_{CS} / (1 - e^{2\\ell_0/n})

    Reference: Nagelkerke NJD. Biometrika 1991;78:691-2.

    A null log-likelihood of 0 (an outcome that never varies: no events, or nothing but events) leaves
    the maximum at 0 and R² undefined; it is then missing, with the reason in ``warnings``.

    >>> round(float(nagelkerke_r2(-120.0, -150.0, 233)["estimate"].iloc[0]), 4)
    0.3135
    """
    method = "Nagelkerke R-squared (Cox-Snell R-squared over its maximum)"
    notes = Notes()
    if n < 1:
        notes.add("Not estimated: there are no observations")
    elif not loglik_null < 0:
        notes.add(
            "Not estimated: the outcome does not vary (no events, or nothing but events), so the null model "
            "fits perfectly and there is no variation for R-squared to explain"
        )
    if notes:
        return frame([row("nagelkerke_r2", method=method, n=int(n), warnings=str(notes))])
    return frame([row("nagelkerke_r2", nagelkerke_r2_value(loglik_model, loglik_null, n), method=method, n=int(n))])


def logistic_regression(
    data: pd.DataFrame, formula: str, *, confidence: float = 0.95, hosmer_lemeshow_groups: int = 10
) -> pd.DataFrame:
    """Logistic regression by maximum likelihood (statsmodels GLM, binomial, logit), as R's ``glm``.

    Rows: one per coefficient (``Intercept`` included) with the odds ratio and Wald CI (R's
    ``confint.default``), then ``hosmer_lemeshow`` and ``nagelkerke_r2`` for the model. Fitted
    probabilities numerically 0 or 1 (complete or quasi-complete separation) are reported in
    ``warnings``, never raised. A covariate that does not vary (or that the others determine) is left out
    and its row is missing, as R reports an aliased coefficient as NA; an outcome without events, or
    with nothing but events, leaves every row missing. Each is said in ``warnings``.

    >>> d = pd.DataFrame({"error": [1, 0, 1, 1, 0, 0, 1, 0, 0, 0], "after": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]})
    >>> logistic_regression(d, "error ~ after")["term"].tolist()
    ['Intercept', 'after', 'hosmer_lemeshow', 'nagelkerke_r2']
    """
    notes = Notes()
    d = design(data, formula, notes)
    method = (
        f"Logistic regression (ML, IRLS), odds ratio with Wald {100 * confidence:g}% CI; "
        "std_error on the log-odds scale"
    )
    unfitted = not_fittable(d, "binary")
    if unfitted:
        notes.add(unfitted)
        hl = frame([row("hosmer_lemeshow", method="Hosmer-Lemeshow test", n=d.n, warnings=str(notes))])
        nk = frame([row("nagelkerke_r2", method="Nagelkerke R-squared", n=d.n, warnings=str(notes))])
        return pd.concat([frame(_coefficient_rows(d, None, method, notes, confidence)), hl, nk], ignore_index=True)
    with captured(notes):
        fit = sm.GLM(d.y, d.estimable, family=sm.families.Binomial()).fit()
    fitted = np.asarray(fit.fittedvalues)
    notes.add(fitted_at_edge(fitted, "binomial"))
    rows = _coefficient_rows(d, fit, method, notes, confidence)
    hl = hosmer_lemeshow(d.y, fitted, groups=hosmer_lemeshow_groups)
    nk = nagelkerke_r2(float(fit.llf), float(fit.llnull), d.n)
    for extra in (hl, nk):
        extra.loc[0, "warnings"] = "\n".join(filter(None, [str(notes), extra.loc[0, "warnings"]]))
    return with_df_resid(pd.concat([frame(rows), hl, nk], ignore_index=True), fit.df_resid)


def _exposure(d: Design, exposure: str | None) -> dict:
    if exposure is None:
        return {}
    values = d.data[exposure].to_numpy(dtype=float)
    if (values <= 0).any():
        raise ValueError(f"exposure column {exposure!r} must be positive")
    return {"exposure": values}


def poisson_regression(
    data: pd.DataFrame, formula: str, *, exposure: str | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Poisson regression (statsmodels GLM, log link), rate ratios with Wald CI, as R's ``glm(poisson)``.

    ``exposure`` names a column of positive exposures (person-time, medicines, ...) entered as
    ``log(exposure)`` offset, as ``glm(..., offset = log(exposure))``. A Pearson dispersion above 1.5 is
    flagged: the standard errors are then too small and :func:`negative_binomial_regression` is the
    better model. No events at all leaves every row missing; a group without events (fitted counts
    numerically 0), an aliased covariate (missing row) and left-out rows are said in ``warnings``.

    >>> d = pd.DataFrame({"errors": [0, 1, 2, 1, 3, 0, 0, 1, 0, 1], "after": [0] * 5 + [1] * 5})
    >>> poisson_regression(d, "errors ~ after")["estimate"].round(3).tolist()
    [1.4, 0.286]
    """
    notes = Notes()
    d = design(data, formula, notes, also=[exposure] if exposure else [])
    extra = _exposure(d, exposure)
    offset = f", offset log({exposure})" if exposure else ""
    method = (
        f"Poisson regression (ML, log link{offset}), rate ratio with Wald {100 * confidence:g}% CI; "
        "std_error on the log scale"
    )
    unfitted = not_fittable(d, "count")
    if unfitted:
        notes.add(unfitted)
        return frame(_coefficient_rows(d, None, method, notes, confidence))
    with captured(notes):
        fit = sm.GLM(d.y, d.estimable, family=sm.families.Poisson(), **extra).fit()
    dispersion = float(fit.pearson_chi2 / fit.df_resid) if fit.df_resid > 0 else math.nan
    if dispersion > _OVERDISPERSION:
        notes.add(
            f"Pearson dispersion is {dispersion:.2f} (over 1.5): the counts are overdispersed, the Poisson "
            "standard errors are too small, and the negative binomial model is preferable"
        )
    notes.add(fitted_at_edge(fit.fittedvalues, "poisson"))
    return with_df_resid(frame(_coefficient_rows(d, fit, method, notes, confidence)), fit.df_resid)


def _theta_se(theta: float, y: np.ndarray, mu: np.ndarray) -> float:
    # observed information for theta with mu held fixed, as MASS::theta.ml
    info = np.sum(
        -special.polygamma(1, theta + y)
        + special.polygamma(1, theta)
        - 1 / theta
        + 2 / (mu + theta)
        - (y + theta) / (mu + theta) ** 2
    )
    return float(1 / math.sqrt(info)) if info > 0 else math.nan


def negative_binomial_regression(
    data: pd.DataFrame, formula: str, *, exposure: str | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Negative binomial (NB2) regression, rate ratios with Wald CI, as R's ``MASS::glm.nb``.

    :math:`Var(Y) = \\mu + \\mu^2/\\theta`. :math:`\\theta` is estimated by maximum likelihood jointly
    with the coefficients (statsmodels NegativeBinomial); the coefficients' standard errors are then
    those of the GLM with :math:`\\theta` fixed at its estimate, as ``glm.nb`` reports them. The last row
    ``theta`` gives :math:`\\hat\\theta` with the standard error ``glm.nb`` prints (observed information
    for :math:`\\theta` given the means). ``exposure`` enters as ``log(exposure)`` offset, as
    ``glm.nb(y ~ ... + offset(log(exposure)))``. Degenerate data are handled as in
    :func:`poisson_regression`.

    Reference: Venables WN, Ripley BD. Modern Applied Statistics with S, 4th ed. 2002, section 7.4.

    >>> d = pd.DataFrame({"errors": [0, 1, 5, 1, 3, 0, 0, 4, 0, 1, 2, 0], "after": [0] * 6 + [1] * 6})
    >>> negative_binomial_regression(d, "errors ~ after")["term"].tolist()
    ['Intercept', 'after', 'theta']
    """
    notes = Notes()
    d = design(data, formula, notes, also=[exposure] if exposure else [])
    extra = _exposure(d, exposure)
    offset = f", offset log({exposure})" if exposure else ""
    method = (
        f"Negative binomial (NB2) regression (ML, log link{offset}), rate ratio with Wald "
        f"{100 * confidence:g}% CI; std_error on the log scale, theta held at its ML estimate"
    )
    theta_method = "Negative binomial shape theta (variance mu + mu^2/theta), ML; SE from its observed information"
    unfitted = not_fittable(d, "count")
    if unfitted:
        notes.add(unfitted)
        rows = _coefficient_rows(d, None, method, notes, confidence)
        return frame([*rows, row("theta", method=theta_method, n=d.n, warnings=str(notes))])
    model = sm.NegativeBinomial(d.y, d.estimable, loglike_method="nb2", **extra)
    # BFGS from statsmodels' Poisson start finds the maximum robustly, but with a long exposure (an
    # intercept near -4) it stalls a hair short of its gradient tolerance and reports a failure at the
    # maximum (tests/stats/test_regression.py, counts_days). Newton's method with the analytic Hessian,
    # started there, converges in a few steps, and its verdict is the one reported; BFGS's own is kept
    # only when Newton fails to improve on it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rough = model.fit(method="bfgs", maxiter=1000, gtol=1e-10, disp=False)
    with captured(notes):
        polished = model.fit(method="newton", start_params=rough.params, maxiter=100, disp=False)
        newton_ok = polished.mle_retvals.get("converged", False) and np.all(np.isfinite(polished.params))
        joint = polished if newton_ok and polished.llf >= rough.llf - 1e-9 else rough
        if not joint.mle_retvals.get("converged", True):
            notes.add("The negative binomial fit did not converge")
        alpha = float(joint.params["alpha"])
        fit = sm.GLM(d.y, d.estimable, family=sm.families.NegativeBinomial(alpha=alpha), **extra).fit()
    notes.add(fitted_at_edge(fit.fittedvalues, "poisson"))
    theta = 1 / alpha
    rows = _coefficient_rows(d, fit, method, notes, confidence)
    rows.append(
        row(
            "theta",
            theta,
            _theta_se(theta, d.y, np.asarray(fit.fittedvalues)),
            method=theta_method,
            n=d.n,
            warnings=str(notes),
        )
    )
    # n less the coefficients, as statsmodels' NegativeBinomial and R's glm.nb count them (theta is not counted)
    return with_df_resid(frame(rows), fit.df_resid)
