"""Ordered and skewed outcomes, before vs after: medians and quartiles, rank tests, ordinal models.

Samples are compared as after vs before throughout: the Mann-Whitney U is that of the after sample,
the Hodges-Lehmann shift is after minus before, and a positive rank-biserial correlation or
proportional-odds coefficient means higher values (or more severe categories) after.

A sample without non-missing values leaves its rows missing, with the reason in ``warnings``; so does
a comparison with such a sample, or a test whose statistic has no variance (every value tied).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pingouin
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from analysis.stats.design import design, not_fittable
from analysis.stats.tidy import (
    SEPARATION,
    SEPARATION_EPS,
    Notes,
    captured,
    frame,
    row,
    wald_rows,
    wald_test,
    z_quantile,
)

__all__ = [
    "QUANTILE_TYPES",
    "hodges_lehmann",
    "mann_whitney",
    "median_iqr",
    "proportional_odds",
    "quantile",
    "trend_test",
]

# Hyndman & Fan's nine sample-quantile definitions (R's quantile(type=)) by numpy's names for them.
QUANTILE_TYPES = {
    1: "inverted_cdf",
    2: "averaged_inverted_cdf",
    3: "closest_observation",
    4: "interpolated_inverted_cdf",
    5: "hazen",
    6: "weibull",
    7: "linear",
    8: "median_unbiased",
    9: "normal_unbiased",
}
_QUANTILE_WORDS = {
    6: "type 6, p(n+1) interpolation as SPSS (HAVERAGE) and Minitab",
    7: "type 7, 1+p(n-1) interpolation, the default of R and numpy",
}


def _sample(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def _empty(samples: dict[str, np.ndarray]) -> str:
    """The "Not estimated" sentence when a sample has no non-missing values, or ""."""
    empty = [name for name, x in samples.items() if x.size == 0]
    if not empty:
        return ""
    return f"Not estimated: no non-missing values in the {' and '.join(empty)} sample, so there is nothing to compare."


def quantile(values, probs, *, type: int = 6) -> np.ndarray:
    """Sample quantiles by Hyndman & Fan's definition ``type`` (1-9, as R's ``quantile(type=)``).

    Type 6 (position :math:`p(n+1)`) is SPSS's default and the likely one in SPSS-analysed papers;
    type 7 (position :math:`1 + p(n-1)`) is R's and numpy's default.

    Missing values are dropped; with none left every quantile is NaN.

    Reference: Hyndman RJ, Fan Y. Am Stat 1996;50:361-5.

    >>> quantile([1, 2, 3, 4], [0.25, 0.75], type=6).tolist()
    [1.25, 3.75]
    """
    if type not in QUANTILE_TYPES:
        raise ValueError(f"quantile type must be one of 1-9, got {type!r}")
    x = _sample(values)
    if x.size == 0:
        return np.full(np.shape(probs), np.nan)
    return np.quantile(x, probs, method=QUANTILE_TYPES[type])


def median_iqr(values, *, type: int = 6, label: str | None = None) -> pd.DataFrame:
    """Median and quartiles of one sample: rows ``median``, ``quartile_1``, ``quartile_3``.

    The terms get a ``_<label>`` suffix when ``label`` is given (e.g. ``median_before``). Missing
    values are dropped; ``n`` counts the values used. ``type`` is the quantile definition (see
    :func:`quantile`). Without non-missing values the three rows are missing and ``warnings`` says so.

    >>> median_iqr([3, 1, 4, 1, 5, 9], type=6)["estimate"].tolist()
    [3.5, 1.0, 6.0]
    """
    x = _sample(values)
    q1, median, q3 = quantile(x, [0.25, 0.5, 0.75], type=type)
    method = f"Sample quantile, Hyndman-Fan {_QUANTILE_WORDS.get(type, f'type {type}')}"
    suffix = f"_{label}" if label else ""
    sentence = "" if x.size else "Not estimated: no non-missing values, so there is no median or quartile."
    return frame(
        [
            row(f"{term}{suffix}", float(value), method=method, n=x.size, warnings=sentence)
            for term, value in (("median", median), ("quartile_1", q1), ("quartile_3", q3))
        ]
    )


def _use_exact(x: np.ndarray, y: np.ndarray, exact: bool | None) -> tuple[bool, str]:
    """R's rule: exact when both samples are under 50 and there are no ties (ties force the normal)."""
    ties = np.unique(np.r_[x, y]).size < x.size + y.size
    wanted = (x.size < 50 and y.size < 50) if exact is None else exact
    if wanted and ties:
        return False, "There are ties, so the exact distribution cannot be used; the normal approximation is"
    return wanted, ""


def mann_whitney(before, after, *, exact: bool | None = None) -> pd.DataFrame:
    """Mann-Whitney U test (Wilcoxon rank-sum), after vs before, with the rank-biserial correlation.

    Rows: ``mann_whitney`` (``statistic`` = U of the after sample, R's W of ``wilcox.test(after,
    before)``; two-sided p) and ``rank_biserial`` (:math:`r = 2U/(n_a n_b) - 1`, positive when values
    are higher after). ``exact=None`` follows R: the exact distribution when both samples are under 50
    and there are no ties, else the normal approximation with tie and continuity corrections. When every
    value is tied, p is missing, as R's NA.

    References: Mann HB, Whitney DR. Ann Math Stat 1947;18:50-60. Kerby DS. Compr Psychol 2014;3:11.
    Computed with ``pingouin.mwu`` (scipy.stats.mannwhitneyu).

    >>> mann_whitney([1, 2, 3, 4], [5, 6, 7, 8])[["statistic", "p_value"]].round(4).iloc[0].tolist()
    [16.0, 0.0286]
    """
    x, y = _sample(after), _sample(before)
    n = x.size + y.size
    rbc_method = "Rank-biserial correlation 2U/(n_after n_before) - 1 (positive: higher after)"
    empty = _empty({"before": y, "after": x})
    if empty:
        return frame(
            [
                row("mann_whitney", method="Mann-Whitney U test, two-sided", n=n, warnings=empty),
                row("rank_biserial", method=rbc_method, n=n, warnings=empty),
            ]
        )
    use_exact, sentence = _use_exact(x, y, exact)
    notes = Notes()
    if sentence and exact:
        notes.add(sentence + " used")
    with captured(notes):
        result = pingouin.mwu(x, y, alternative="two-sided", method="exact" if use_exact else "asymptotic")
    how = "exact distribution" if use_exact else "normal approximation with tie and continuity corrections"
    p = float(result["p_val"].iloc[0])
    if np.unique(np.r_[x, y]).size == 1:
        # scipy reports p = 1 here; R's wilcox.test gives NA, as the normal approximation has no variance
        p = math.nan
        notes.add(
            "Not estimated: the p value, because every observation has the same value, so the normal "
            "approximation has zero variance"
        )
    return frame(
        [
            row(
                "mann_whitney",
                statistic=float(result["U_val"].iloc[0]),
                p_value=p,
                method=f"Mann-Whitney U test, two-sided, {how}; statistic = U of the after sample",
                n=n,
                warnings=str(notes),
            ),
            row(
                "rank_biserial",
                float(result["RBC"].iloc[0]),
                method=rbc_method,
                n=n,
                warnings=str(notes),
            ),
        ]
    )


def _wilcox_null_cdf(m: int, n: int) -> np.ndarray:
    """P(W <= w), w = 0..mn, for the two-sample Wilcoxon statistic of m vs n values without ties.

    Counts by the recurrence f(w; i, j) = f(w - j; i - 1, j) + f(w; i, j - 1): the largest of the
    i + j values is either one of the i (it exceeds all j others) or one of the j. Only sums of
    positive counts, so the tails keep their relative accuracy.
    """
    size = m * n + 1
    first = np.zeros(size)
    first[0] = 1.0
    previous = [first] * (n + 1)  # i = 0: W is 0 whatever j
    for _ in range(1, m + 1):
        current = [first]
        for j in range(1, n + 1):
            counts = current[j - 1].copy()
            counts[j:] += previous[j][: size - j]
            current.append(counts)
        previous = current
    counts = previous[n]
    return np.cumsum(counts) / counts.sum()


def _qwilcox(p: float, m: int, n: int) -> int:
    # R's qwilcox: the smallest w with P(W <= w) >= p, with its 10 * DBL_EPSILON fuzz
    cdf = _wilcox_null_cdf(m, n)
    return int(np.searchsorted(cdf, p - 10 * np.finfo(float).eps, side="left"))


def _sigma(tie_counts: np.ndarray, nx: int, ny: int) -> float:
    n = nx + ny
    return math.sqrt((nx * ny / 12) * ((n + 1) - np.sum(tie_counts**3 - tie_counts) / (n * (n - 1))))


def _asymptotic_root(x: np.ndarray, y: np.ndarray, diffs: np.ndarray, zq: float) -> float:
    """Where R's standardised W(d) crosses ``zq`` (wilcox.test's asymptotic interval), located exactly.

    W(d) = #{x_i - y_j > d} + #{x_i - y_j = d}/2 is a step function of the shift d that jumps only at
    the pairwise differences. Between jumps the tie pattern of (x - d, y) is that of x and of y
    separately, so the standardised statistic (W - mn/2 - sign * 0.5) / sigma is constant there and
    non-increasing from one open interval to the next: the crossing is the pairwise difference where
    it changes sign. R locates the same point with uniroot(tol = 1e-4); here it is exact. ``diffs``
    are the sorted pairwise differences.
    """
    nx, ny = x.size, y.size
    half = nx * ny / 2

    def standardised(w, sigma):
        dz = np.asarray(w, dtype=float) - half
        return (dz - 0.5 * np.sign(dz)) / sigma - zq

    def at_point(d: float) -> float:
        w = np.sum(diffs > d) + 0.5 * np.sum(diffs == d)
        _, ties = np.unique(np.r_[x - d, y], return_counts=True)
        return float(standardised(w, _sigma(ties, nx, ny)))

    # R returns the end of the range when the statistic does not cross inside it
    if at_point(diffs[0]) <= 0:
        return float(diffs[0])
    if at_point(diffs[-1]) >= 0:
        return float(diffs[-1])
    ties_apart = np.r_[np.unique(x, return_counts=True)[1], np.unique(y, return_counts=True)[1]]
    sigma_apart = _sigma(ties_apart, nx, ny)
    candidates = np.unique(diffs)
    greater = diffs.size - np.searchsorted(diffs, candidates[:-1], side="right")
    above = standardised(greater, sigma_apart)  # value on the open interval just above each candidate
    crossed = np.flatnonzero(above <= 0)
    k = int(crossed[0]) if crossed.size else candidates.size - 1
    if crossed.size and above[k] == 0:
        # flat at zero between two differences: R stops anywhere inside; the midpoint is as good
        return float((candidates[k] + candidates[k + 1]) / 2)
    return float(candidates[k])


def hodges_lehmann(before, after, *, confidence: float = 0.95, exact: bool | None = None) -> pd.DataFrame:
    """Hodges-Lehmann shift (after minus before) with its interval, as R's ``wilcox.test(after, before,
    conf.int=TRUE)``.

    The estimate is the median of the :math:`n_a n_b` pairwise differences :math:`a_i - b_j`. Exact case
    (both samples under 50, no ties, as R decides unless ``exact`` is given): the limits are the
    :math:`k`-th smallest and largest differences, :math:`k` = R's ``qwilcox((1 - conf)/2, n_a, n_b)``
    (at least 1). Otherwise the limits are the shifts at which the tie- and continuity-corrected normal
    statistic crosses :math:`\\pm z` (located exactly, where R uses a root finder with tolerance 1e-4;
    R's own estimate in this case is that root finder's zero of the uncorrected statistic, which lies
    within 1e-4 of the median difference or, when the statistic is zero over an interval, inside it).

    References: Hodges JL, Lehmann EL. Ann Math Stat 1963;34:598-611. Bauer DF. J Am Stat Assoc
    1972;67:687-90. R Core Team, wilcox.test.

    >>> out = hodges_lehmann([1.1, 2.3, 3.2, 4.8], [5.0, 6.1, 7.3])
    >>> out[["estimate", "conf_low", "conf_high"]].round(2).values.tolist()
    [[3.35, 0.2, 6.2]]
    """
    x, y = _sample(after), _sample(before)
    nx, ny = x.size, y.size
    empty = _empty({"before": y, "after": x})
    if empty:
        method = "Hodges-Lehmann shift (after minus before, median of pairwise differences)"
        return frame([row("hodges_lehmann", method=method, n=nx + ny, warnings=empty)])
    use_exact, sentence = _use_exact(x, y, exact)
    notes = Notes()
    if sentence and exact:
        notes.add(sentence + " used for the interval")
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    estimate = float(np.median(diffs))
    alpha = 1 - confidence
    if use_exact:
        qu = max(_qwilcox(alpha / 2, nx, ny), 1)
        ql = nx * ny - qu
        low, high = float(diffs[qu - 1]), float(diffs[ql])
        achieved = 1 - 2 * _wilcox_null_cdf(nx, ny)[qu - 1]
        how = f"exact interval from the Wilcoxon distribution (achieved coverage {100 * achieved:.2f}%)"
        if achieved < confidence - 1e-9:
            notes.add(
                f"The samples are too small for {100 * confidence:g}% exact coverage; the interval is the "
                f"widest possible, with coverage {100 * achieved:.2f}%"
            )
    else:
        z = float(stats.norm.ppf(1 - alpha / 2))
        if _sigma(np.unique(np.r_[x, y], return_counts=True)[1], nx, ny) == 0:
            notes.add("All observations are tied, so no interval can be computed")
            low = high = math.nan
        else:
            low, high = _asymptotic_root(x, y, diffs, z), _asymptotic_root(x, y, diffs, -z)
        how = "asymptotic interval inverting the normal approximation with tie and continuity corrections"
    return frame(
        [
            row(
                "hodges_lehmann",
                estimate,
                conf_low=low,
                conf_high=high,
                method=f"Hodges-Lehmann shift (after minus before, median of pairwise differences), {how}",
                n=nx + ny,
                warnings=str(notes),
            )
        ]
    )


def trend_test(counts_before, counts_after, *, scores=None) -> pd.DataFrame:
    """Chi-square test for trend across ordered categories (Cochran-Armitage), as R's ``prop.trend.test``.

    The proportion of after-period patients in each category is regressed on the category scores
    (default 1, 2, ...). With :math:`x_i` after-period counts, :math:`n_i` category totals, :math:`N`
    their sum and :math:`\\bar p = \\sum x_i / N`:

    .. math:: X^2 = \\frac{\\left[\\sum s_i (x_i - n_i \\bar p)\\right]^2}
              {\\bar p (1 - \\bar p) \\left[\\sum n_i s_i^2 - (\\sum n_i s_i)^2 / N\\right]}

    on 1 df (``df``). Expected counts below 5 are flagged. A period without patients, or every patient
    in categories of one score, leaves the statistic missing, with the reason in ``warnings``.

    References: Cochran WG. Biometrics 1954;10:417-51. Armitage P. Biometrics 1955;11:375-86.

    >>> round(float(trend_test([35, 6, 54, 6], [93, 2, 13, 0])["statistic"].iloc[0]), 2)
    57.7
    """
    b = np.asarray(counts_before, dtype=float)
    a = np.asarray(counts_after, dtype=float)
    if b.shape != a.shape or b.ndim != 1 or b.size < 2:
        raise ValueError("counts_before and counts_after must be equal-length sequences of 2 or more counts")
    if (b < 0).any() or (a < 0).any():
        raise ValueError("counts_before and counts_after must not be negative")
    s = np.arange(1, b.size + 1, dtype=float) if scores is None else np.asarray(scores, dtype=float)
    method = "Chi-square test for trend in proportions (Cochran-Armitage), 1 df, scores " + ", ".join(
        f"{v:g}" for v in s
    )
    n_i = a + b
    total = n_i.sum()
    notes = Notes()
    for label, counts in (("before", b), ("after", a)):
        if counts.sum() == 0:
            notes.add(f"Not estimated: no patients in the {label} period, so there is nothing to compare")
    if not notes and np.sum(n_i * s**2) - np.sum(n_i * s) ** 2 / total == 0:
        notes.add("Not estimated: every patient is in categories of the same score, so there is no trend to test")
    if notes:
        return frame([row("trend", df=1.0, method=method, n=int(total), warnings=str(notes))])
    p = a.sum() / total
    numerator = np.sum(s * (a - n_i * p)) ** 2
    denominator = p * (1 - p) * (np.sum(n_i * s**2) - np.sum(n_i * s) ** 2 / total)
    statistic = numerator / denominator
    expected = np.outer(n_i, [1 - p, p])
    if (expected < 5).any():
        notes.add(
            f"{int((expected < 5).sum())} of {expected.size} expected counts are below 5 "
            f"(smallest {expected.min():.2f}); the chi-square approximation may be poor"
        )
    return frame(
        [
            row(
                "trend",
                statistic=float(statistic),
                df=1.0,
                p_value=float(stats.chi2.sf(statistic, 1)),
                method=method,
                n=int(total),
                warnings=str(notes),
            )
        ]
    )


def proportional_odds(data: pd.DataFrame, formula: str, *, confidence: float = 0.95) -> pd.DataFrame:
    """Proportional-odds (cumulative logit) model, as MASS::polr: :math:`logit P(Y \\le k) = \\zeta_k - x'\\beta`.

    ``formula`` is ``"outcome ~ predictors"`` (no intercept is added: the thresholds play its part); the
    outcome must be an ordered ``pandas.Categorical`` or integer codes (sorted order). Rows: one per
    predictor with the cumulative odds ratio :math:`e^\\beta` (> 1: more severe categories), its Wald CI
    and z test, ``std_error`` on the log scale; then one per threshold ``threshold: a|b`` with
    :math:`\\zeta_k` on the logit scale and its delta-method SE. Fitted by maximum likelihood with BFGS.

    A category that no observation falls in is left out (its thresholds cannot be estimated), a
    predictor that does not vary is left out with its row missing, separation (fitted probabilities of
    the observed categories numerically 1) is flagged, and an outcome in a single category leaves every
    row missing; each is said in ``warnings``.

    Reference: McCullagh P. J R Stat Soc B 1980;42:109-42. statsmodels OrderedModel (logit).

    >>> d = pd.DataFrame({"y": [0, 0, 1, 1, 2, 2, 0, 1, 2, 2], "after": [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]})
    >>> proportional_odds(d, "y ~ after")["term"].tolist()
    ['after', 'threshold: 0|1', 'threshold: 1|2']
    """
    outcome = formula.split("~")[0].strip()
    y = data[outcome]
    categories = list(y.cat.categories) if isinstance(y.dtype, pd.CategoricalDtype) else sorted(y.dropna().unique())
    codes = pd.Categorical(y, categories=categories, ordered=True).codes
    notes = Notes()
    # the outcome as category codes, so that the design's rows and checks treat it as a number
    d = design(data.assign(**{outcome: np.where(codes >= 0, codes, np.nan)}), formula, notes)
    predictors = [c for c in d.x.columns if c != "Intercept"]
    method = "Proportional-odds logistic regression (cumulative logit, ML, BFGS), Wald CI"
    coefficient_method = method + "; estimate = cumulative odds ratio, std_error on the log scale"
    threshold_method = method + "; estimate = threshold on the logit scale, delta-method SE"
    unfitted = not_fittable(d, "ordinal")
    if unfitted:
        notes.add(unfitted)
        names = [f"threshold: {a}|{b}" for a, b in itertools.pairwise(categories)]
        return frame(
            [row(term, method=coefficient_method, n=d.n, warnings=str(notes)) for term in predictors]
            + [row(term, method=threshold_method, n=d.n, warnings=str(notes)) for term in names]
        )
    observed = np.unique(d.y).astype(int)
    unused = [str(categories[k]) for k in range(len(categories)) if k not in set(observed)]
    if unused:
        notes.add(
            f"Not estimated: the thresholds next to categories {', '.join(unused)}, which no observation falls "
            "in; the model is fitted to the categories observed"
        )
    levels = [str(categories[k]) for k in observed]
    kept = [c for c in d.kept if c != "Intercept"]
    with captured(notes):
        model = OrderedModel(d.y, d.x[kept], distr="logit")
        fit = model.fit(method="bfgs", maxiter=2000, gtol=1e-8, disp=False)
    if not fit.mle_retvals.get("converged", True):
        notes.add("The proportional-odds fit did not converge")
    observed_probability = np.asarray(fit.predict())[np.arange(d.n), np.searchsorted(observed, d.y)]
    if np.any(observed_probability > 1 - SEPARATION_EPS):
        notes.add(SEPARATION)
    z = z_quantile(confidence)
    k_exog = len(kept)
    params = np.asarray(fit.params)
    try:
        cov = np.asarray(fit.cov_params())
    except ValueError:
        # a singular information matrix (separation) leaves statsmodels without a covariance
        cov = np.full((params.size, params.size), np.nan)
    coefficients = pd.Series(params[:k_exog], index=kept).reindex(predictors)
    ses = pd.Series(np.sqrt(np.diag(cov)[:k_exog]), index=kept).reindex(predictors)
    rows = wald_rows(predictors, coefficients, ses, exponentiate=True, method=coefficient_method, n=d.n,
                     notes=notes, confidence=confidence)
    # statsmodels stores the first threshold then log increments; zeta_k = t_1 + sum exp(t_j)
    raw = params[k_exog:]
    zeta = model.transform_threshold_params(raw)[1:-1]
    jacobian = np.tril(np.ones((raw.size, raw.size))) * np.r_[1.0, np.exp(raw[1:])]
    zeta_cov = jacobian @ cov[k_exog:, k_exog:] @ jacobian.T
    for k, value in enumerate(zeta):
        se = math.sqrt(zeta_cov[k, k])
        rows.append(
            row(
                f"threshold: {levels[k]}|{levels[k + 1]}",
                float(value),
                se,
                wald_test(value, se)[0],
                conf_low=value - z * se,
                conf_high=value + z * se,
                method=threshold_method,
                n=d.n,
                warnings=str(notes),
            )
        )
    return frame(rows)
