"""Interrupted time series of counts: segmented Poisson or binomial regression with the denominator, seasonality,
Newey-West standard errors, autocorrelation checks, the counterfactual and the events averted.

Beside :func:`analysis.stats.timeseries.segmented_regression` (linear on proportions), which is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.stats.stattools import durbin_watson

from analysis.stats.tidy import Notes, captured, frame, row, wald_test, z_quantile

FAMILIES = ("poisson", "binomial")
SEASONS = ("none", "fourier", "months")


def its_design(data: pd.DataFrame, time: str, change: float, *, month: str | None = None,
               season: str = "fourier", harmonics: int = 1) -> pd.DataFrame:
    """The design matrix: ``intercept``, ``time``, ``level_change`` (1 from the change on), ``slope_change``
    (time since the change, 0 before), and the seasonal terms from ``month`` (calendar month 1-12):
    ``sin_k``/``cos_k`` (:math:`\\sin(2\\pi k m/12)`, :math:`\\cos(2\\pi k m/12)`, k = 1..``harmonics``) for
    ``"fourier"``, or indicators ``month_2`` ... ``month_12`` (January the reference) for ``"months"``.

    >>> its_design(pd.DataFrame({"t": [0, 1, 2, 3]}), "t", 2, season="none").columns.tolist()
    ['intercept', 'time', 'level_change', 'slope_change']
    """
    if season not in SEASONS:
        raise ValueError(f"season must be one of {SEASONS}, got {season!r}")
    t = data[time].to_numpy(float)
    post = (t >= change).astype(float)
    x = pd.DataFrame({"intercept": 1.0, "time": t, "level_change": post, "slope_change": (t - change) * post},
                     index=data.index)
    if season != "none":
        if month is None:
            raise ValueError("seasonality needs the calendar month column (1-12)")
        m = data[month].to_numpy(int)
        if season == "fourier":
            for k in range(1, harmonics + 1):
                x[f"sin_{k}"] = np.sin(2 * np.pi * k * m / 12)
                x[f"cos_{k}"] = np.cos(2 * np.pi * k * m / 12)
        else:
            for k in range(2, 13):
                x[f"month_{k}"] = (m == k).astype(float)
    return x


def _mean(eta: np.ndarray, n: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Expected events and their derivative with respect to the linear predictor."""
    if family == "poisson":
        mu = n * np.exp(eta)
        return mu, mu
    p = 1 / (1 + np.exp(-eta))
    return n * p, n * p * (1 - p)


def segmented_counts(
    data: pd.DataFrame,
    events: str,
    denominator: str,
    time: str,
    change: float,
    *,
    lags: int,
    family: str = "poisson",
    month: str | None = None,
    season: str = "fourier",
    harmonics: int = 1,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Segmented regression of monthly events with their denominator, Newey-West standard errors, the
    counterfactual and the events averted.

    .. math:: g(E[y_t]) = \\log n_t\\,[\\text{Poisson}] + \\beta_0 + \\beta_1 t + \\beta_2\\, post_t
              + \\beta_3 (t - t_0)\\, post_t + s(m_t)

    with ``family="poisson"`` (log link, :math:`\\log n_t` the offset: rates) or ``"binomial"`` (logit link,
    :math:`y_t` events out of :math:`n_t`); :math:`t_0` = ``change``; :math:`s(m_t)` the seasonal terms of
    :func:`its_design`. Maximum likelihood (IRLS, as R's ``glm``); covariance by Newey-West with Bartlett
    weights :math:`1 - l/(L+1)` up to ``lags`` = L on the score contributions :math:`x_t (y_t - \\hat\\mu_t)`, no
    prewhitening, no small-sample adjustment: R's ``sandwich::NeweyWest(fit, lag = L, prewhite = FALSE,
    adjust = FALSE)``; z tests and Wald intervals.

    Rows: ``intercept``, ``pre_trend``, ``level_change``, ``slope_change`` and the seasonal terms, as rate (or
    odds) ratios (``exp``; ``std_error`` on the log scale); ``events_averted``, the counterfactual minus the
    fitted events summed over the months from the change on,

    .. math:: A = \\sum_{t \\ge t_0} \\{\\mu_t(\\hat\\beta; post = 0) - \\mu_t(\\hat\\beta)\\}

    (positive: fewer events than the pre-change trend predicts), with a delta-method interval,
    :math:`SE(A) = \\sqrt{g' V g}`, :math:`g = \\partial A/\\partial \\beta`, V the Newey-West covariance;
    ``durbin_watson`` (of the Pearson residuals, in time order) and ``ljung_box`` (Ljung-Box Q at lag
    ``lags``, its chi-square p on ``lags`` df) to check the residual autocorrelation.

    References: Wagner AK, et al. J Clin Pharm Ther 2002;27:299-309. Bernal JL, Cummins S, Gasparrini A. Int J
    Epidemiol 2017;46:348-55 (seasonality, counts). Newey WK, West KD. Econometrica 1987;55:703-8. Ljung GM,
    Box GEP. Biometrika 1978;65:297-303.

    >>> d = pd.DataFrame({"t": range(24), "n": 1000, "m": [(i % 12) + 1 for i in range(24)]})
    >>> d["y"] = [50 + (i % 3) - (8 if i >= 12 else 0) for i in range(24)]
    >>> segmented_counts(d, "y", "n", "t", 12, lags=1, month="m")["term"].tolist()[:4]
    ['intercept', 'pre_trend', 'level_change', 'slope_change']
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    notes = Notes()
    d = data.sort_values(time).dropna(subset=[events, denominator])
    x = its_design(d, time, change, month=month, season=season, harmonics=harmonics)
    y = d[events].to_numpy(float)
    n = d[denominator].to_numpy(float)
    t = d[time].to_numpy(float)
    ratio = "rate ratio" if family == "poisson" else "odds ratio"
    link = "log link, offset log denominator" if family == "poisson" else "logit"
    seasons = f", {harmonics} harmonic(s)" if season == "fourier" else ""
    method = (f"Segmented {family} regression ({link}; seasonality: {season}{seasons}), {ratio} with Newey-West "
              f"(lag {lags}, Bartlett, no prewhitening) {100 * confidence:g}% CI; std_error on the log scale")
    before, after = int((t < change).sum()), int((t >= change).sum())
    names = ["intercept", "pre_trend", "level_change", "slope_change", *x.columns[4:]]
    extra = ("events_averted", "durbin_watson", "ljung_box")
    if min(before, after) < 3:
        notes.add(f"Fewer than 3 time points before ({before}) or after ({after}) the change: not estimated.")
        return frame([row(term, method=method, n=len(d), warnings=str(notes)) for term in [*names, *extra]])
    with captured(notes):
        if family == "poisson":
            model = sm.GLM(y, x.to_numpy(), family=sm.families.Poisson(), offset=np.log(n))
        else:
            model = sm.GLM(np.column_stack([y, n - y]), x.to_numpy(), family=sm.families.Binomial())
        fit = model.fit(tol=1e-12, maxiter=200, cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
    beta, cov = np.asarray(fit.params), np.asarray(fit.cov_params())
    z = z_quantile(confidence)
    rows = []
    for k, term in enumerate(names):
        b, se = float(beta[k]), float(math.sqrt(cov[k, k]))
        statistic, p_value = wald_test(b, se)
        rows.append(row(term, math.exp(b), se, statistic, p_value, math.exp(b - z * se), math.exp(b + z * se),
                        method=method, n=len(d), warnings=str(notes)))
    xm = x.to_numpy()
    counterfactual_x = xm.copy()
    counterfactual_x[:, 2:4] = 0
    after_rows = t >= change
    fitted, dfit = _mean(xm @ beta, n, family)
    counter, dcounter = _mean(counterfactual_x @ beta, n, family)
    averted = float(np.sum((counter - fitted)[after_rows]))
    gradient = (dcounter[after_rows, None] * counterfactual_x[after_rows]).sum(0) - (
        dfit[after_rows, None] * xm[after_rows]).sum(0)
    se = float(math.sqrt(gradient @ cov @ gradient))
    statistic, p_value = wald_test(averted, se)
    rows.append(row("events_averted", averted, se, statistic, p_value, averted - z * se, averted + z * se,
                    method="Events averted after the change: counterfactual (no level or slope change) minus fitted, "
                           f"summed; delta-method {100 * confidence:g}% CI with the Newey-West covariance",
                    n=after, warnings=str(notes)))
    pearson = (y - fitted) / np.sqrt(fitted if family == "poisson" else fitted * (1 - fitted / n))
    rows.append(row("durbin_watson", float(durbin_watson(pearson)), method="Durbin-Watson statistic of the Pearson "
                    "residuals in time order (2: no first-order autocorrelation)", n=len(d)))
    box = acorr_ljungbox(pearson, lags=[lags])
    rows.append(row("ljung_box", statistic=float(box["lb_stat"].iloc[0]), p_value=float(box["lb_pvalue"].iloc[0]),
                    df=float(lags), method=f"Ljung-Box test of the Pearson residuals at lag {lags}", n=len(d)))
    return frame(rows)


def its_curves(data: pd.DataFrame, events: str, denominator: str, time: str, change: float, fitted: pd.DataFrame,
               *, family: str = "poisson", month: str | None = None, season: str = "fourier",
               harmonics: int = 1) -> pd.DataFrame:
    """Per time point, for a figure: observed rate (events / denominator), the fitted rate and the counterfactual
    rate (no level or slope change) from the coefficients of :func:`segmented_counts` (``fitted``: its rows).

    >>> d = pd.DataFrame({"t": range(8), "n": 100, "y": [9, 10, 11, 10, 6, 5, 6, 5]})
    >>> f = segmented_counts(d, "y", "n", "t", 4, lags=1, season="none")
    >>> its_curves(d, "y", "n", "t", 4, f, season="none").columns.tolist()
    ['time', 'observed', 'fitted', 'counterfactual']
    """
    d = data.sort_values(time)
    x = its_design(d, time, change, month=month, season=season, harmonics=harmonics).to_numpy()
    terms = ["intercept", "pre_trend", "level_change", "slope_change",
             *its_design(d, time, change, month=month, season=season, harmonics=harmonics).columns[4:]]
    beta = np.log(fitted.set_index("term").loc[terms, "estimate"].to_numpy(float))
    counter = x.copy()
    counter[:, 2:4] = 0
    ones = np.ones(len(d))
    return pd.DataFrame({"time": d[time].to_numpy(), "observed": (d[events] / d[denominator]).to_numpy(float),
                         "fitted": _mean(x @ beta, ones, family)[0], "counterfactual": _mean(counter @ beta, ones,
                                                                                            family)[0]})
