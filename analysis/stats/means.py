"""Continuous outcomes, before vs after: the two means and their difference with Welch's t interval.

The difference is after minus before throughout, as the other before-after comparisons.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats.tidy import Notes, frame, row

__all__ = ["mean_difference"]


def _sample(values) -> np.ndarray:
    x = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(dtype=float, na_value=np.nan)
    return x[~np.isnan(x)]


def _too_few(x: np.ndarray, label: str) -> str:
    """Why a sample cannot give its mean (no values) or its standard deviation (one value), or ""."""
    if x.size == 0:
        return f"Not estimated: no non-missing values in the {label} period, so it has no mean to compare"
    if x.size == 1:
        return (
            f"Not estimated: the standard errors, tests and intervals of the {label} mean and of the difference, "
            f"because the {label} period has a single value and so no standard deviation"
        )
    return ""


def mean_difference(before, after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Difference in means (after minus before) with Welch's t interval and test, as R's
    ``t.test(after, before, var.equal = FALSE)``.

    .. math:: d = \\bar x_a - \\bar x_b, \\quad SE = \\sqrt{s_a^2/n_a + s_b^2/n_b}, \\quad t = d / SE

    .. math:: \\nu = \\frac{SE^4}{(s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1)}

    (Welch-Satterthwaite degrees of freedom); interval :math:`d \\pm t_{\\nu, 1-\\alpha/2} SE`, two-sided
    :math:`p = 2 P(T_\\nu > |t|)`. The variances are not assumed equal, so the interval stays valid
    when the groups differ in size and spread.

    Rows: ``mean_before`` and ``mean_after`` (sample mean, SE :math:`s/\\sqrt n`, one-sample t interval
    on :math:`n - 1` df, as ``t.test(x)``) and ``mean_difference`` (statistic t, p, interval), each with
    its ``df``. Missing values are dropped; ``n`` counts the values used. A period without values leaves
    its mean and the difference missing; a period with a single value has a mean but no standard
    deviation, so its interval and the difference's SE, test and interval are missing. Computed with
    ``scipy.stats.ttest_ind(equal_var=False)`` and ``scipy.stats.ttest_1samp``.

    References: Welch BL. The generalization of "Student's" problem when several different population
    variances are involved. Biometrika 1947;34:28-35. Satterthwaite FE. Biometrics Bull 1946;2:110-4.

    >>> out = mean_difference([5.1, 6.3, 4.8, 7.0, 5.5], [3.9, 4.2, 5.0, 3.1, 4.4, 3.8])
    >>> out[["term", "estimate", "conf_low", "conf_high"]].round(2).values.tolist()
    [['mean_before', 5.74, 4.62, 6.86], ['mean_after', 4.07, 3.4, 4.74], ['mean_difference', -1.67, -2.81, -0.54]]
    """
    b, a = _sample(before), _sample(after)
    notes = Notes()
    rows = []
    for term, x, label in (("mean_before", b, "before"), ("mean_after", a, "after")):
        sentence = _too_few(x, label)
        notes.add(sentence)
        if sentence:
            mean = float(x[0]) if x.size else math.nan
            rows.append(row(term, mean, method="Sample mean", n=x.size, warnings=sentence + "."))
            continue
        se = float(np.std(x, ddof=1) / math.sqrt(x.size))
        low, high = stats.ttest_1samp(x, 0.0).confidence_interval(confidence) if se > 0 else (np.nan, np.nan)
        rows.append(
            row(
                term,
                float(np.mean(x)),
                se,
                conf_low=float(low),
                conf_high=float(high),
                method=f"Sample mean, SE s/sqrt(n), one-sample t interval on {x.size - 1} df",
                n=x.size,
                df=float(x.size - 1),
            )
        )
    difference = float(np.mean(a) - np.mean(b)) if a.size and b.size else math.nan
    se = math.sqrt(np.var(a, ddof=1) / a.size + np.var(b, ddof=1) / b.size) if min(a.size, b.size) > 1 else math.nan
    if notes:
        t = p = low = high = df = math.nan
    elif se > 0:
        test = stats.ttest_ind(a, b, equal_var=False)
        low, high = test.confidence_interval(confidence)
        t, p, df = float(test.statistic), float(test.pvalue), float(test.df)
    else:
        notes.add("Both samples are constant: the standard error is zero, so there is no t statistic or interval")
        t = p = low = high = df = math.nan
    welch = f"Welch-Satterthwaite {df:.2f} df" if math.isfinite(df) else "Welch-Satterthwaite df"
    rows.append(
        row(
            "mean_difference",
            difference,
            se,
            t,
            p,
            float(low),
            float(high),
            method=(
                f"Difference in means, after minus before; Welch two-sample t test and interval (unequal "
                f"variances, {welch}), two-sided; scipy.stats.ttest_ind(equal_var=False)"
            ),
            n=a.size + b.size,
            warnings=str(notes),
            df=df,
        )
    )
    return frame(rows)
