"""Monthly series before and after a change: segmented regression (interrupted time series) and p-charts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from analysis.stats.tidy import Notes, captured, frame, join, row, wald_test, with_df_resid

__all__ = ["p_chart", "segmented_regression"]

# Fewer points than this in a segment make its slope, and the autocorrelation, poorly estimated
# (Penfold RB, Zhang F. Acad Pediatr 2013;13:S38-44 suggest at least 8 per segment).
MIN_POINTS_PER_SEGMENT = 8
# Below this many points in a segment nothing is estimated: Cochrane EPOC's minimum for an interrupted
# time series, and the fewest that leave residual variation to test a level and a slope in each segment.
MIN_POINTS_TO_ESTIMATE = 3
# Residuals no larger than this, relative to the outcome's largest value, are rounding error of an exact fit
EXACT_FIT = 1e-10
# A contrast whose SE is below this fraction of its coefficients' own SEs is 0 up to rounding
CONSTANT_SEGMENT = 1e-6
CONTRASTS = {
    "intercept": [1, 0, 0, 0],
    "pre_trend": [0, 1, 0, 0],
    "level_change": [0, 0, 1, 0],
    "slope_change": [0, 0, 0, 1],
    "post_trend": [0, 1, 0, 1],
}


def segmented_regression(
    data: pd.DataFrame,
    outcome: str,
    time: str,
    post: str,
    *,
    lags: int,
    weights: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Segmented regression of an interrupted time series with Newey-West (HAC) standard errors.

    .. math:: y_t = \\beta_0 + \\beta_1 t + \\beta_2 post_t + \\beta_3 (t - t_0)\\, post_t + e_t

    where :math:`t_0` is the first time point of the post period, so that ``level_change``
    (:math:`\\beta_2`) is the jump at :math:`t_0` relative to the extrapolated pre-period trend and
    ``slope_change`` (:math:`\\beta_3`) the change in slope. Rows: ``intercept``, ``pre_trend``,
    ``level_change``, ``slope_change`` and ``post_trend`` (:math:`\\beta_1 + \\beta_3`). Least squares
    (weighted by the column ``weights`` if given, e.g. the monthly denominators); covariance by
    Newey-West with Bartlett weights :math:`1 - l/(L + 1)` up to ``lags`` = L, no prewhitening and no
    small-sample adjustment, i.e. R's ``sandwich::NeweyWest(fit, lag = L, prewhite = FALSE, adjust =
    FALSE)``; t tests on the residual df (``df``) as ``lmtest::coeftest``. There is no default for
    ``lags``: choose it from the autocorrelation of the residuals.

    Fewer than 3 time points in a period (none, when the outcome is missing there) leave every row
    missing (Cochrane EPOC's minimum); a series that lies exactly on the fitted lines has standard
    errors of 0 and no tests or intervals. ``warnings`` says which.

    References: Wagner AK, et al. J Clin Pharm Ther 2002;27:299-309. Newey WK, West KD. Econometrica
    1987;55:703-8.

    >>> d = pd.DataFrame({"month": range(1, 25), "post": [0] * 12 + [1] * 12})
    >>> d["p"] = 0.4 + 0.005 * d.month - 0.15 * d.post + 0.01 * np.sin(d.month)
    >>> segmented_regression(d, "p", "month", "post", lags=1)["term"].tolist()
    ['intercept', 'pre_trend', 'level_change', 'slope_change', 'post_trend']
    """
    if lags < 0 or int(lags) != lags:
        raise ValueError(f"lags must be a whole number of 0 or more, got {lags!r}")
    columns = [outcome, time, post] + ([weights] if weights else [])
    d = data.dropna(subset=columns).sort_values(time)
    notes = Notes()
    if len(d) < len(data):
        notes.add(f"{len(data) - len(d)} of {len(data)} time points had a missing value and were left out")
    t = d[time].to_numpy(dtype=float)
    after = d[post].to_numpy(dtype=float)
    if not np.isin(after, (0, 1)).all():
        raise ValueError(f"column {post!r} must be 0 before and 1 after the change")
    fitting = "weighted least squares" if weights else "ordinary least squares"
    method = (
        f"Segmented regression ({fitting}), Newey-West HAC SE (Bartlett, lag {lags}, no prewhitening, no "
        "small-sample adjustment)"
    )
    if _too_short(after, notes):
        return frame(row(term, method=method, n=len(d), warnings=str(notes)) for term in CONTRASTS)
    t0 = t[after == 1].min()
    x = np.column_stack([np.ones_like(t), t, after, (t - t0) * after])
    y = d[outcome].to_numpy(dtype=float)
    with captured(notes):
        model = sm.WLS(y, x, weights=d[weights].to_numpy(dtype=float)) if weights else sm.OLS(y, x)
        fit = model.fit(cov_type="HAC", cov_kwds={"maxlags": int(lags), "use_correction": False}, use_t=True)
    cov = np.asarray(fit.cov_params())
    params = np.asarray(fit.params)
    df = float(fit.df_resid)
    q = float(stats.t.ppf(1 - (1 - confidence) / 2, df))
    # residuals at rounding level: the series lies on the two lines, and its SEs are 0 or rounding noise
    tested = np.abs(fit.resid).max() > EXACT_FIT * np.abs(y).max()
    if not tested:
        notes.add(
            "Not estimated: the tests and intervals, because the series lies exactly on the fitted lines (no "
            "residual variation, e.g. no events in any month), so the standard errors are 0 up to rounding"
        )
    rows = []
    spread = np.sqrt(np.abs(np.diag(cov)))
    for term, c in CONTRASTS.items():
        c = np.asarray(c, dtype=float)
        estimate, variance = float(c @ params), float(c @ cov @ c)
        # A segment with a constant series (no events in any month after the change) has residuals of 0,
        # so the HAC variance of its trend is 0 up to rounding, and rounding can make it negative: its SE
        # is then 0 and it is not tested, rather than a test of rounding noise.
        constant = variance <= (CONSTANT_SEGMENT * float(np.abs(c) @ spread)) ** 2
        se = 0.0 if constant else math.sqrt(variance)
        term_tested = tested and not constant
        if tested and constant:
            notes.add(f"Not estimated: the test and interval of {term}, because the series is constant in that "
                      "segment (e.g. no events in any month), so its standard error is 0 up to rounding")
        rows.append(
            row(
                term,
                estimate,
                se,
                *(wald_test(estimate, se, df) if term_tested else (math.nan, math.nan)),
                estimate - q * se if term_tested else math.nan,
                estimate + q * se if term_tested else math.nan,
                df=df,
                method=f"{method}, t on {df:g} df",
                n=len(d),
                warnings=str(notes),
            )
        )
    return with_df_resid(frame(rows), df)


def _too_short(after: np.ndarray, notes: Notes) -> bool:
    """Whether a period has too few time points to fit; each period's shortfall is said in ``notes``."""
    short = False
    for label, count in (("pre", int((after == 0).sum())), ("post", int((after == 1).sum()))):
        if count == 0:
            notes.add(f"Not estimated: no time points in the {label} period, so there is no segment to fit there")
        elif count < MIN_POINTS_TO_ESTIMATE:
            notes.add(
                f"Not estimated: only {count} time point{'s' if count > 1 else ''} in the {label} period; a segmented "
                f"regression needs at least {MIN_POINTS_TO_ESTIMATE} before and {MIN_POINTS_TO_ESTIMATE} after "
                "(Cochrane EPOC) to estimate each segment's level and slope with residual variation left to test them"
            )
        elif count < MIN_POINTS_PER_SEGMENT:
            notes.add(f"Only {count} time points in the {label} period (fewer than {MIN_POINTS_PER_SEGMENT})")
        short = short or count < MIN_POINTS_TO_ESTIMATE
    return short


def p_chart(data: pd.DataFrame, time: str, events: str, n: str, *, period: str | None = None) -> pd.DataFrame:
    """p-chart (Shewhart control chart for proportions) with limits that vary with each month's n.

    For each period (all rows if ``period`` is None) the centre line is the pooled proportion
    :math:`\\bar p = \\sum x_t / \\sum n_t`; each point gets :math:`\\sigma_t = \\sqrt{\\bar p(1-\\bar p)/n_t}`
    and limits :math:`\\bar p \\pm 3\\sigma_t`, clipped to [0, 1]. One row per time point: ``term`` is
    the time value, ``estimate`` the proportion, ``std_error`` :math:`\\sigma_t`, ``statistic`` the z
    score :math:`(p_t - \\bar p)/\\sigma_t`, ``conf_low``/``conf_high`` the control limits, ``n`` the
    month's denominator; extra columns ``period``, ``centre_line`` and ``outside_limits``. A month
    without patients (n = 0) or with a missing count has no proportion: its row is missing and says so,
    and the centre line comes from the other months (a period with none has no centre line).

    Reference: Montgomery DC. Introduction to Statistical Quality Control, 7th ed. 2013, ch. 7.
    Benneyan JC, Lloyd RC, Plsek PE. Qual Saf Health Care 2003;12:458-64.

    >>> d = pd.DataFrame({"m": [1, 2, 3, 4], "x": [5, 7, 2, 3], "n": [20, 25, 18, 22], "post": [0, 0, 1, 1]})
    >>> p_chart(d, "m", "x", "n", period="post")["centre_line"].round(4).tolist()
    [0.2667, 0.2667, 0.125, 0.125]
    """
    method = (
        "p-chart: centre line = pooled proportion of the period, limits +/- 3 sigma with the month's n, "
        "clipped to [0, 1]"
    )
    d = data.sort_values(time)
    groups = d.groupby(period, sort=False) if period else [("all", d)]
    rows = []
    for level, part in groups:
        x = part[events].to_numpy(dtype=float)
        size = part[n].to_numpy(dtype=float)
        # comparisons with a missing count are False: missing counts pass here and are handled below
        if (size < 0).any() or (x < 0).any() or (x > size).any():
            raise ValueError(f"p_chart: need 0 <= {events} <= {n} in every row")
        usable = (size > 0) & ~np.isnan(x)
        notes = Notes()
        if usable.any():
            centre = x[usable].sum() / size[usable].sum()
        else:
            centre = math.nan
            notes.add(f"Not estimated: the centre line of period {level}, which has no month with patients and counts")
        if centre in (0.0, 1.0):
            notes.add(f"The centre line of period {level} is {centre:g}, so its control limits have zero width")
        for t_value, xi, ni, ok in zip(part[time], x, size, usable, strict=True):
            if not ok:
                sentence = f"Not estimated: the proportion at {time} {t_value}, which has no patients or no count"
                rows.append(
                    row(
                        str(t_value),
                        method=method,
                        n=None if np.isnan(ni) else int(ni),
                        warnings=join(str(notes), sentence + "."),
                        period=level,
                        centre_line=centre,
                        outside_limits=False,
                    )
                )
                continue
            sigma = math.sqrt(centre * (1 - centre) / ni)
            p = xi / ni
            low, high = max(0.0, centre - 3 * sigma), min(1.0, centre + 3 * sigma)
            rows.append(
                row(
                    str(t_value),
                    p,
                    sigma,
                    (p - centre) / sigma if sigma > 0 else math.nan,
                    conf_low=low,
                    conf_high=high,
                    method=method,
                    n=int(ni),
                    warnings=str(notes),
                    period=level,
                    centre_line=centre,
                    outside_limits=bool(p < low or p > high),
                )
            )
    return frame(rows)
