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

from analysis.stats.tidy import Notes, captured, frame, row, wald_test, with_df_resid, z_quantile

FAMILIES = ("poisson", "binomial")
SEASONS = ("none", "fourier", "months")
# A year in weeks (365.25 / 7 = 52.18): the Fourier period of a weekly series, so that its seasonal terms keep
# pace with the calendar year instead of drifting by a day or two each year as a 52-week cycle would.
WEEKS_PER_YEAR = 365.25 / 7
GROUP_TERMS = ("group", "group_pre_trend", "level_change_difference", "slope_change_difference")


def its_design(data: pd.DataFrame, time: str, change: float, *, month: str | None = None,
               season: str = "fourier", harmonics: int = 1, group: str | None = None,
               period: float = 12.0) -> pd.DataFrame:
    """The design matrix: ``intercept``, ``time``, ``level_change`` (1 from the change on), ``slope_change``
    (time since the change, 0 before), and the seasonal terms from ``month``, the position in the seasonal cycle
    of length ``period`` (the calendar month 1-12 with ``period`` 12; for a weekly series the week count with
    ``period`` :data:`WEEKS_PER_YEAR`): ``sin_k``/``cos_k`` (:math:`\\sin(2\\pi k m/P)`, :math:`\\cos(2\\pi k m/P)`,
    k = 1..``harmonics``) for ``"fourier"``, or indicators ``month_2`` ... ``month_12`` (January the reference) for
    ``"months"`` (calendar months only: ``period`` 12). With
    ``group`` (1 for the intervention series, 0 for the control series), the first four columns times the group
    follow the first four: ``group``, ``group_pre_trend``, ``level_change_difference``, ``slope_change_difference``
    (the seasonal terms are shared by the two series).

    >>> its_design(pd.DataFrame({"t": [0, 1, 2, 3]}), "t", 2, season="none").columns.tolist()
    ['intercept', 'time', 'level_change', 'slope_change']
    """
    if season not in SEASONS:
        raise ValueError(f"season must be one of {SEASONS}, got {season!r}")
    t = data[time].to_numpy(float)
    post = (t >= change).astype(float)
    x = pd.DataFrame({"intercept": 1.0, "time": t, "level_change": post, "slope_change": (t - change) * post},
                     index=data.index)
    if group is not None:
        g = data[group].to_numpy(float)
        for name, base in zip(GROUP_TERMS, ("intercept", "time", "level_change", "slope_change"), strict=True):
            x[name] = g * x[base]
    if season != "none":
        if month is None:
            raise ValueError("seasonality needs the calendar month column (1-12)")
        if season == "fourier":
            m = data[month].to_numpy(float)
            for k in range(1, harmonics + 1):
                x[f"sin_{k}"] = np.sin(2 * np.pi * k * m / period)
                x[f"cos_{k}"] = np.cos(2 * np.pi * k * m / period)
        else:
            if period != 12:
                raise ValueError(f"month indicators need calendar months (period 12), not a cycle of {period:g} "
                                 "time points: use Fourier terms for a weekly series")
            m = data[month].to_numpy(int)
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


def driscoll_kraay(x: np.ndarray, residuals: np.ndarray, weights: np.ndarray, time: np.ndarray,
                   lags: int) -> np.ndarray:
    """Newey-West covariance of a GLM's coefficients with the score contributions :math:`x_i (y_i - \\mu_i)`
    first summed over the series at each time point (Driscoll and Kraay 1998), Bartlett weights
    :math:`1 - l/(L+1)` up to ``lags`` = L, no small-sample adjustment:

    .. math:: V = H^{-1} \\Big[\\Gamma_0 + \\sum_{l=1}^{L} \\big(1 - \\tfrac{l}{L+1}\\big)(\\Gamma_l + \\Gamma_l')\\Big]
              H^{-1}, \\quad \\Gamma_l = \\sum_t S_t S_{t-l}', \\quad S_t = \\sum_{i: t_i = t} x_i (y_i - \\mu_i),
              \\quad H = X' W X

    ``weights`` are the working weights :math:`d\\mu/d\\eta` (W). With one series it is Newey-West (R's
    ``sandwich::NeweyWest(fit, lag = L, prewhite = FALSE, adjust = FALSE)``); with several series sharing the
    time points, ``sandwich::vcovPL(fit, cluster = ~series, order.by = ~time, lag = L, adjust = FALSE)``
    (tests/reference/its.R). Written here because statsmodels' ``hac-groupsum`` is offered for OLS only.
    The lag counts time points, so ``time`` must be consecutive integers (a gap shortens the lags across it).

    Reference: Driscoll JC, Kraay AC. Rev Econ Stat 1998;80:549-60.
    """
    points, index = np.unique(time, return_inverse=True)
    sums = np.zeros((len(points), x.shape[1]))
    np.add.at(sums, index, x * residuals[:, None])
    meat = sums.T @ sums
    for lag in range(1, lags + 1):
        gamma = sums[lag:].T @ sums[:-lag]
        meat += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    bread = np.linalg.inv(x.T @ (x * weights[:, None]))
    return bread @ meat @ bread


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
    group: str | None = None,
    period: float = 12.0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Segmented regression of events per time point (month or week) with their denominator, Newey-West standard
    errors, the counterfactual and the events averted; with ``group``, a controlled interrupted time series.

    .. math:: g(E[y_t]) = \\log n_t\\,[\\text{Poisson}] + \\beta_0 + \\beta_1 t + \\beta_2\\, post_t
              + \\beta_3 (t - t_0)\\, post_t + s(m_t)

    with ``family="poisson"`` (log link, :math:`\\log n_t` the offset: rates) or ``"binomial"`` (logit link,
    :math:`y_t` events out of :math:`n_t`); :math:`t_0` = ``change``; :math:`s(m_t)` the seasonal terms of
    :func:`its_design` (``month`` and ``period``: the position in the seasonal cycle and its length).
    Maximum likelihood (IRLS, as R's ``glm``); covariance by Newey-West with Bartlett weights
    :math:`1 - l/(L+1)` up to ``lags`` = L (in time points) on the score contributions
    :math:`x_t (y_t - \\hat\\mu_t)`, no prewhitening, no small-sample adjustment:
    R's ``sandwich::NeweyWest(fit, lag = L, prewhite = FALSE, adjust = FALSE)``; z tests and Wald intervals.

    Rows: ``intercept``, ``pre_trend``, ``level_change``, ``slope_change`` and the seasonal terms, as rate (or
    odds) ratios (``exp``; ``std_error`` on the log scale); ``events_averted``, the counterfactual minus the
    fitted events summed over the months from the change on,

    .. math:: A = \\sum_{t \\ge t_0} \\{\\mu_t(\\hat\\beta; post = 0) - \\mu_t(\\hat\\beta)\\}

    (positive: fewer events than the pre-change trend predicts), with a delta-method interval,
    :math:`SE(A) = \\sqrt{g' V g}`, :math:`g = \\partial A/\\partial \\beta`, V the Newey-West covariance;
    ``durbin_watson`` (of the Pearson residuals, in time order) and ``ljung_box`` (Ljung-Box Q at lag
    ``lags``, its chi-square p on ``lags`` df) to check the residual autocorrelation.

    A controlled interrupted time series (``group``: 1 for the intervention series' rows, 0 for the control
    series', one row per series and time point) adds :math:`G (\\gamma_0 + \\gamma_1 t + \\gamma_2 post_t +
    \\gamma_3 (t - t_0) post_t)`: ``level_change`` and ``slope_change`` are then the control series' changes (the
    secular change at the same time), rows ``level_change_difference`` and ``slope_change_difference``
    (:math:`e^{\\gamma_2}`, :math:`e^{\\gamma_3}`) the intervention series' changes relative to the control's,
    ``group`` and ``group_pre_trend`` the series' differences before the change. The seasonal terms are shared.
    ``events_averted`` is summed over the intervention series from the change on, its counterfactual having the
    control's level and slope change (:math:`\\gamma_2 = \\gamma_3 = 0`). The covariance sums the score
    contributions of the two series at each time point before the Newey-West weighting (Driscoll and Kraay,
    :func:`driscoll_kraay`), allowing the series to be correlated with each other and over time; the residual
    checks are of the intervention series.

    References: Wagner AK, et al. J Clin Pharm Ther 2002;27:299-309. Bernal JL, Cummins S, Gasparrini A. Int J
    Epidemiol 2017;46:348-55 (seasonality, counts); Int J Epidemiol 2018;47:2082-93 (control series). Newey WK,
    West KD. Econometrica 1987;55:703-8. Ljung GM, Box GEP. Biometrika 1978;65:297-303.

    >>> d = pd.DataFrame({"t": range(24), "n": 1000, "m": [(i % 12) + 1 for i in range(24)]})
    >>> d["y"] = [50 + (i % 3) - (8 if i >= 12 else 0) for i in range(24)]
    >>> segmented_counts(d, "y", "n", "t", 12, lags=1, month="m")["term"].tolist()[:4]
    ['intercept', 'pre_trend', 'level_change', 'slope_change']
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    notes = Notes()
    d = data.sort_values([time] if group is None else [group, time]).dropna(subset=[events, denominator])
    if group is not None and (d[group].nunique() != 2 or set(pd.to_numeric(d[group], errors="coerce")) != {0.0, 1.0}):
        raise ValueError(f"group column {group!r} must be 1 for the intervention series and 0 for the control "
                         f"series, both present; it holds {sorted(map(str, d[group].unique()))}")
    x = its_design(d, time, change, month=month, season=season, harmonics=harmonics, group=group, period=period)
    y = d[events].to_numpy(float)
    n = d[denominator].to_numpy(float)
    t = d[time].to_numpy(float)
    bad = (y < 0) | (n < 0) | ((n == 0) & (y > 0)) | ((y > n) if family == "binomial" else False)
    if bad.any():
        rule = f"{events} 0 or more, {denominator} 0 or more and above 0 with events" + (
            f", {events} at most {denominator} (binomial)" if family == "binomial" else "")
        raise ValueError(f"{rule}: not so at {time} {', '.join(f'{v:g}' for v in t[bad][:10])}")
    empty = n == 0
    if empty.any():  # no denominator, no events: the time point carries no information
        notes.add(f"{int(empty.sum())} time point(s) with a denominator of 0 are left out.")
        d, x, y, n, t = d[~empty], x[~empty], y[~empty], n[~empty], t[~empty]
    ratio = "rate ratio" if family == "poisson" else "odds ratio"
    link = "log link, offset log denominator" if family == "poisson" else "logit"
    seasons = f", {harmonics} harmonic(s) of period {period:.4g}" if season == "fourier" else ""
    controlled = "" if group is None else (", with a control series (group interactions; Newey-West on the "
                                           "series' scores summed per time point, Driscoll-Kraay)")
    method = (f"Segmented {family} regression ({link}; seasonality: {season}{seasons}{controlled}), {ratio} with "
              f"Newey-West (lag {lags}, Bartlett, no prewhitening) {100 * confidence:g}% CI; std_error on the log "
              "scale")
    treated = np.ones(len(d), bool) if group is None else d[group].to_numpy(float) == 1
    before, after = int((t[treated] < change).sum()), int((t[treated] >= change).sum())
    names = ["intercept", "pre_trend", "level_change", "slope_change", *x.columns[4:]]
    extra = ("events_averted", "durbin_watson", "ljung_box")
    if min(before, after) < 3:
        notes.add(f"Fewer than 3 time points before ({before}) or after ({after}) the change: not estimated.")
        return frame([row(term, method=method, n=len(d), warnings=str(notes)) for term in [*names, *extra]])
    xm = x.to_numpy()
    with captured(notes):
        if family == "poisson":
            model = sm.GLM(y, xm, family=sm.families.Poisson(), offset=np.log(n))
        else:
            model = sm.GLM(np.column_stack([y, n - y]), xm, family=sm.families.Binomial())
        if group is None:
            fit = model.fit(tol=1e-12, maxiter=200, cov_type="HAC",
                            cov_kwds={"maxlags": lags, "use_correction": False})
        else:
            fit = model.fit(tol=1e-12, maxiter=200)
    beta = np.asarray(fit.params)
    fitted, dfit = _mean(xm @ beta, n, family)
    cov = (np.asarray(fit.cov_params()) if group is None else
           driscoll_kraay(xm, y - fitted, dfit, t, lags))
    z = z_quantile(confidence)
    rows = []
    for k, term in enumerate(names):
        b, se = float(beta[k]), float(math.sqrt(cov[k, k]))
        statistic, p_value = wald_test(b, se)
        rows.append(row(term, math.exp(b), se, statistic, p_value, math.exp(b - z * se), math.exp(b + z * se),
                        method=method, n=len(d), warnings=str(notes)))
    counterfactual_x = xm.copy()
    counterfactual_x[:, [2, 3] if group is None else [6, 7]] = 0
    after_rows = (t >= change) & treated
    counter, dcounter = _mean(counterfactual_x @ beta, n, family)
    averted = float(np.sum((counter - fitted)[after_rows]))
    gradient = (dcounter[after_rows, None] * counterfactual_x[after_rows]).sum(0) - (
        dfit[after_rows, None] * xm[after_rows]).sum(0)
    se = float(math.sqrt(gradient @ cov @ gradient))
    statistic, p_value = wald_test(averted, se)
    beyond = "no level or slope change" if group is None else "the control series' level and slope change"
    rows.append(row("events_averted", averted, se, statistic, p_value, averted - z * se, averted + z * se,
                    method=f"Events averted after the change: counterfactual ({beyond}) minus fitted, summed"
                           f"{'' if group is None else ' over the intervention series'}; delta-method "
                           f"{100 * confidence:g}% CI with the Newey-West covariance",
                    n=after, warnings=str(notes)))
    pearson = ((y - fitted) / np.sqrt(fitted if family == "poisson" else fitted * (1 - fitted / n)))[treated]
    series = "" if group is None else " of the intervention series"
    rows.append(row("durbin_watson", float(durbin_watson(pearson)), method=f"Durbin-Watson statistic of the Pearson "
                    f"residuals{series} in time order (2: no first-order autocorrelation)", n=int(treated.sum())))
    box = acorr_ljungbox(pearson, lags=[lags])
    rows.append(row("ljung_box", statistic=float(box["lb_stat"].iloc[0]), p_value=float(box["lb_pvalue"].iloc[0]),
                    df=float(lags), method=f"Ljung-Box test of the Pearson residuals{series} at lag {lags}",
                    n=int(treated.sum())))
    # the time points (rows of the series) less the coefficients
    return with_df_resid(frame(rows), fit.df_resid)


def its_curves(data: pd.DataFrame, events: str, denominator: str, time: str, change: float, fitted: pd.DataFrame,
               *, family: str = "poisson", month: str | None = None, season: str = "fourier",
               harmonics: int = 1, group: str | None = None, period: float = 12.0) -> pd.DataFrame:
    """Per time point (and series, with ``group``), for a figure: observed rate (events / denominator), the
    fitted rate and the counterfactual rate from the coefficients of :func:`segmented_counts` (``fitted``: its
    rows): no level or slope change, or, for the intervention series of a controlled series, the control
    series' change. Rows in the order of ``data`` sorted by time (by group, then time, with ``group``).

    >>> d = pd.DataFrame({"t": range(8), "n": 100, "y": [9, 10, 11, 10, 6, 5, 6, 5]})
    >>> f = segmented_counts(d, "y", "n", "t", 4, lags=1, season="none")
    >>> its_curves(d, "y", "n", "t", 4, f, season="none").columns.tolist()
    ['time', 'observed', 'fitted', 'counterfactual']
    """
    d = data.sort_values([time] if group is None else [group, time])
    design = its_design(d, time, change, month=month, season=season, harmonics=harmonics, group=group,
                        period=period)
    terms = ["intercept", "pre_trend", "level_change", "slope_change", *design.columns[4:]]
    beta = np.log(fitted.set_index("term").loc[terms, "estimate"].to_numpy(float))
    x = design.to_numpy()
    counter = x.copy()
    counter[:, [2, 3] if group is None else [6, 7]] = 0
    ones = np.ones(len(d))
    return pd.DataFrame({"time": d[time].to_numpy(), "observed": (d[events] / d[denominator]).to_numpy(float),
                         "fitted": _mean(x @ beta, ones, family)[0], "counterfactual": _mean(counter @ beta, ones,
                                                                                            family)[0]})
