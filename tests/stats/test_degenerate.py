"""Degenerate input never crashes a statistics function.

Every public function of analysis.stats meets the degenerate data a study can hand it: no events in
either period, nothing but events, a period with no patients (n = 0) or an outcome entirely missing,
a single cluster, one observation per cluster, a covariate that does not vary, complete separation,
fewer than three time points per period, no non-missing values at all. Each case asserts that the
function returns its usual rows, NaN where nothing can be estimated, the sentence that says why in
``warnings``, and, where a number is still computable, that number against an independent reference:
R's output stored in tests/reference/results/ or a hand calculation written out here.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from analysis import stats as S
from analysis.stats import mixed as M
from analysis.stats import proportions as P
from analysis.stats import ranks as R
from analysis.stats import regression as G
from analysis.stats import timeseries as T

# the standard normal 0.975 quantile, qnorm(0.975) in R, to 16 digits
Z = 1.959963984540054
# the t 0.975 quantile on 2 df, qt(0.975, 2) in R
T2 = 4.302652729749464
# closed forms computed here and by hand agree to rounding; model fits against R as in their own tests
HAND_REL = 1e-12
GLM_REL = 1e-6  # test_regression.ML_REL: IRLS in both
LMM_REL = 1e-9  # least squares in both
# test_mixed.EXACT_ESTIMATE_SE and EXACT_SE_REL: the Laplace fit against glmer(tolPwrss = 1e-13)
EXACT_ESTIMATE_SE = 5e-4
EXACT_SE_REL = 1e-4

NUMBERS = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
ALL = "*"  # every row of the result


def wilson_upper_at_zero(n: int) -> float:
    """Wilson's upper limit for 0 of n: (z^2/2n + z sqrt(z^2/4n^2)) / (1 + z^2/n) = z^2 / (n + z^2)."""
    return Z**2 / (n + Z**2)


def wilson(events: int, n: int) -> tuple[float, float]:
    """Wilson's score interval written out from its formula (Wilson 1927)."""
    p = events / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return centre - half, centre + half


@dataclass
class Case:
    """One function fed one degenerate input.

    ``call(data)`` runs it (``data`` loads tests/reference/data/<name>.csv); ``missing`` maps a term (or
    ALL) to the columns that must be NaN; ``says`` maps a term (or ALL) to a phrase its ``warnings`` must
    hold; ``values`` maps (term, column) to the reference value, a number or a function of the stored R
    results (``r(area, dataset, term, quantity)``), compared within ``rel``.
    """

    name: str
    call: Callable[[Callable[[str], pd.DataFrame]], pd.DataFrame]
    missing: dict[str, list[str]] = field(default_factory=dict)
    says: dict[str, str] = field(default_factory=dict)
    values: dict[tuple[str, str], float | Callable] = field(default_factory=dict)
    rel: float = HAND_REL


# -- counts: proportions and the 2x2 comparisons -------------------------------------------------------

NONE_BOTH = (0, 50, 0, 60)  # no patient had the outcome in either period
ALL_BOTH = (50, 50, 60, 60)  # every patient had it in both
ALL_BEFORE = (10, 10, 3, 9)  # all events in one period: tests/reference's "all_events_before"
EMPTY_BEFORE = (0, 0, 5, 40)  # the outcome entirely missing before (n = 0)
EMPTY_BOTH = (0, 0, 0, 0)
NO_EVENTS = "no patient had the outcome in either period"
ALL_EVENTS = "every patient had the outcome in both periods"
NO_PATIENTS_BEFORE = "no patients in the before period (n = 0)"
COMPARISONS = {
    "risk_difference": P.risk_difference,
    "relative_risk": P.relative_risk,
    "odds_ratio_woolf": P.odds_ratio_woolf,
    "odds_ratio_exact": P.odds_ratio_exact,
    "chi2": P.chi2_test,
    "chi2_corrected": lambda *c: P.chi2_test(*c, correction=True),
    "fisher": P.fisher_test,
    "nnt": P.number_needed_to_treat,
}


def _counts(name, function, table, **expected):
    return Case(f"{name}-{function}", lambda _: COMPARISONS[function](*table), **expected)


def _r_proportions(term, quantity):
    return lambda r: r("proportions", "all_events_before", term, quantity)


COUNT_CASES = [
    Case(
        "proportion-0-of-50",
        lambda _: P.proportion(0, 50),
        values={
            ("proportion", "estimate"): 0.0,
            ("proportion", "std_error"): 0.0,
            ("proportion", "conf_low"): 0.0,
            ("proportion", "conf_high"): wilson_upper_at_zero(50),
        },
    ),
    Case(
        "proportion-50-of-50",
        lambda _: P.proportion(50, 50),
        values={
            ("proportion", "estimate"): 1.0,
            ("proportion", "conf_low"): 50 / (50 + Z**2),
            ("proportion", "conf_high"): 1.0,
        },
    ),
    Case(
        "proportion-n-0",
        lambda _: P.proportion(0, 0),
        missing={ALL: NUMBERS},
        says={ALL: "Not estimated: no patients (n = 0), so there is no proportion."},
    ),
    _counts(
        "none-both",
        "risk_difference",
        NONE_BOTH,
        values={
            ("risk_difference", "estimate"): 0.0,
            ("risk_difference", "conf_low"): -wilson_upper_at_zero(50),
            ("risk_difference", "conf_high"): wilson_upper_at_zero(60),
        },
    ),
    _counts(
        "none-both", "relative_risk", NONE_BOTH, missing={ALL: NUMBERS}, says={ALL: NO_EVENTS + ", so the relative"}
    ),
    _counts("none-both", "odds_ratio_woolf", NONE_BOTH, missing={ALL: NUMBERS}, says={ALL: "the odds ratio is 0/0"}),
    # with both margins of outcomes fixed at 0 the observed table is the only one possible: p = 1
    _counts(
        "none-both",
        "odds_ratio_exact",
        NONE_BOTH,
        missing={ALL: ["estimate", "conf_low", "conf_high"]},
        says={ALL: NO_EVENTS},
        values={("odds_ratio_exact", "p_value"): 1.0},
    ),
    _counts(
        "none-both",
        "chi2",
        NONE_BOTH,
        missing={ALL: ["statistic", "p_value"]},
        says={ALL: NO_EVENTS},
        values={("chi2", "df"): 1.0},
    ),
    _counts(
        "none-both",
        "chi2_corrected",
        NONE_BOTH,
        missing={ALL: ["statistic", "p_value"]},
        says={ALL: NO_EVENTS},
        values={("chi2_corrected", "df"): 1.0},
    ),
    _counts("none-both", "fisher", NONE_BOTH, values={("fisher", "p_value"): 1.0}),
    # NNT = 1/0: missing; its limits are the reciprocals of the risk difference's, NNTB (50 + z^2)/z^2
    # to infinity to NNTH (60 + z^2)/z^2
    _counts(
        "none-both",
        "nnt",
        NONE_BOTH,
        missing={ALL: ["estimate"]},
        says={ALL: "number needed to treat is infinite"},
        values={("nnt", "conf_low"): (50 + Z**2) / Z**2, ("nnt", "conf_high"): -(60 + Z**2) / Z**2},
    ),
    _counts(
        "all-both",
        "risk_difference",
        ALL_BOTH,
        values={
            ("risk_difference", "estimate"): 0.0,
            ("risk_difference", "conf_low"): -wilson_upper_at_zero(60),
            ("risk_difference", "conf_high"): wilson_upper_at_zero(50),
        },
    ),
    # 60/60 over 50/50 is exactly 1; the Katz SE sqrt(1/60 - 1/60 + 1/50 - 1/50) is 0
    _counts(
        "all-both",
        "relative_risk",
        ALL_BOTH,
        missing={ALL: ["statistic", "p_value", "conf_low", "conf_high"]},
        says={ALL: ALL_EVENTS},
        values={("relative_risk", "estimate"): 1.0, ("relative_risk", "std_error"): 0.0},
    ),
    _counts("all-both", "odds_ratio_woolf", ALL_BOTH, missing={ALL: NUMBERS}, says={ALL: ALL_EVENTS}),
    _counts(
        "all-both",
        "odds_ratio_exact",
        ALL_BOTH,
        missing={ALL: ["estimate"]},
        says={ALL: ALL_EVENTS},
        values={("odds_ratio_exact", "p_value"): 1.0},
    ),
    _counts("all-both", "chi2", ALL_BOTH, missing={ALL: ["statistic", "p_value"]}, says={ALL: ALL_EVENTS}),
    _counts("all-both", "fisher", ALL_BOTH, values={("fisher", "p_value"): 1.0}),
    _counts("all-both", "nnt", ALL_BOTH, missing={ALL: ["estimate"]}, says={ALL: "infinite"}),
    _counts(
        "all-before",
        "odds_ratio_woolf",
        ALL_BEFORE,
        says={ALL: "0.5 was added to every cell"},
        rel=1e-6,
        values={("odds_ratio_woolf", q): _r_proportions("odds_ratio_woolf", q) for q in NUMBERS},
    ),
    _counts(
        "all-before",
        "relative_risk",
        ALL_BEFORE,
        rel=1e-6,
        values={("relative_risk", q): _r_proportions("relative_risk", q) for q in NUMBERS},
    ),
    _counts(
        "all-before",
        "chi2",
        ALL_BEFORE,
        rel=1e-6,
        says={ALL: "expected counts are below 5"},
        values={("chi2", q): _r_proportions("chi2", q) for q in ("statistic", "df", "p_value")},
    ),
    *[
        _counts("empty-before", function, EMPTY_BEFORE, missing={ALL: NUMBERS}, says={ALL: NO_PATIENTS_BEFORE})
        for function in COMPARISONS
    ],
    *[
        _counts("empty-both", function, EMPTY_BOTH, missing={ALL: NUMBERS}, says={ALL: "no patients in either period"})
        for function in COMPARISONS
    ],
    Case(
        "compare-empty-before",
        lambda _: P.compare_proportions(*EMPTY_BEFORE),
        missing={"proportion_before": NUMBERS, "risk_difference": NUMBERS, "fisher": NUMBERS, "nnt": NUMBERS},
        says={"proportion_before": "no patients (n = 0)", "odds_ratio_exact": NO_PATIENTS_BEFORE},
        values={
            ("proportion_after", "estimate"): 5 / 40,
            ("proportion_after", "conf_low"): wilson(5, 40)[0],
            ("proportion_after", "conf_high"): wilson(5, 40)[1],
            ("events_before", "estimate"): 0.0,
        },
    ),
    Case(
        "compare-none-both",
        lambda _: P.compare_proportions(*NONE_BOTH),
        missing={"relative_risk": NUMBERS, "odds_ratio_woolf": NUMBERS, "chi2": ["statistic"]},
        says={"chi2_corrected": NO_EVENTS},
        values={("fisher", "p_value"): 1.0, ("proportion_before", "conf_high"): wilson_upper_at_zero(50)},
    ),
    Case(
        "trend-after-empty",
        lambda _: R.trend_test([35, 6, 54, 6], [0, 0, 0, 0]),
        missing={ALL: ["statistic", "p_value"]},
        says={ALL: "no patients in the after period"},
        values={("trend", "df"): 1.0},
    ),
    Case(
        "trend-one-category",
        lambda _: R.trend_test([0, 12, 0], [0, 9, 0]),
        missing={ALL: ["statistic", "p_value"]},
        says={ALL: "same score, so there is no trend"},
    ),
]


def test_wilson_interval_of_no_patients():
    assert all(math.isnan(v) for v in P.wilson_interval(0, 0))


# -- samples: quantiles, rank tests, means -------------------------------------------------------------

NO_VALUES = [np.nan, np.nan]
SAMPLE_CASES = [
    Case(
        "median-iqr-no-values",
        lambda _: R.median_iqr(NO_VALUES),
        missing={ALL: ["estimate"]},
        says={ALL: "no non-missing values, so there is no median"},
    ),
    Case(
        "median-iqr-one-value",
        lambda _: R.median_iqr([np.nan, 7.0]),
        values={("median", "estimate"): 7.0, ("quartile_1", "estimate"): 7.0, ("quartile_3", "estimate"): 7.0},
    ),
    Case(
        "mann-whitney-before-empty",
        lambda _: R.mann_whitney(NO_VALUES, [1.0, 2.0]),
        missing={ALL: ["estimate", "statistic", "p_value"]},
        says={ALL: "no non-missing values in the before sample"},
    ),
    # every pair tied counts 1/2: U = 3 x 2 / 2 = 3 (R's W); R gives p = NA, the normal having no variance
    Case(
        "mann-whitney-all-tied",
        lambda _: R.mann_whitney([1.0, 1.0], [1.0, 1.0, 1.0]),
        missing={"mann_whitney": ["p_value"]},
        says={"mann_whitney": "every observation has the same value"},
        values={("mann_whitney", "statistic"): 3.0, ("rank_biserial", "estimate"): 0.0},
    ),
    # one value each: two equally likely orders, U = 0 observed, two-sided p = 2 x 1/2 = 1 (R: W = 0, p = 1)
    Case(
        "mann-whitney-one-each",
        lambda _: R.mann_whitney([2.0], [1.0]),
        values={("mann_whitney", "statistic"): 0.0, ("mann_whitney", "p_value"): 1.0},
    ),
    Case(
        "hodges-lehmann-after-empty",
        lambda _: R.hodges_lehmann([1.0, 2.0], []),
        missing={ALL: ["estimate"]},
        says={ALL: "no non-missing values in the after sample"},
    ),
    # R: wilcox.test(1, 2, conf.int = TRUE) gives -1 with the "0 percent confidence interval" -1 to -1
    Case(
        "hodges-lehmann-one-each",
        lambda _: R.hodges_lehmann([2.0], [1.0]),
        says={ALL: "too small for 95% exact"},
        values={
            ("hodges_lehmann", "estimate"): -1.0,
            ("hodges_lehmann", "conf_low"): -1.0,
            ("hodges_lehmann", "conf_high"): -1.0,
        },
    ),
    # the after mean of 1, 2, 3 is 2 with SE 1/sqrt(3), its interval 2 -/+ qt(0.975, 2)/sqrt(3)
    Case(
        "mean-before-empty",
        lambda _: S.mean_difference(NO_VALUES, [1.0, 2.0, 3.0]),
        missing={"mean_before": NUMBERS, "mean_difference": NUMBERS},
        says={"mean_before": "no non-missing values in the before period", "mean_difference": "before period"},
        values={
            ("mean_after", "estimate"): 2.0,
            ("mean_after", "std_error"): 1 / math.sqrt(3),
            ("mean_after", "conf_low"): 2 - T2 / math.sqrt(3),
            ("mean_after", "df"): 2.0,
        },
    ),
    Case(
        "mean-before-one-value",
        lambda _: S.mean_difference([5.0], [1.0, 2.0, 3.0]),
        missing={
            "mean_before": ["std_error", "conf_low", "conf_high", "df"],
            "mean_difference": ["std_error", "statistic", "p_value", "conf_low", "conf_high", "df"],
        },
        says={"mean_difference": "because the before period has a single value and so no standard deviation"},
        values={("mean_before", "estimate"): 5.0, ("mean_difference", "estimate"): -3.0},
    ),
    Case(
        "mean-no-values",
        lambda _: S.mean_difference([], NO_VALUES),
        missing={ALL: NUMBERS},
        says={"mean_after": "no non-missing values in the after period"},
    ),
]


def test_quantile_of_no_values_is_missing():
    assert np.isnan(R.quantile(NO_VALUES, [0.25, 0.5])).all()


# -- ordinal outcome -------------------------------------------------------------------------------------


def _harm(data) -> pd.DataFrame:
    t = data("trend")
    t = t[t.dataset == "harm"]
    y = np.r_[np.repeat(t.score, t.count_before), np.repeat(t.score, t.count_after)]
    return pd.DataFrame({"y": y, "after": np.r_[np.zeros(t.count_before.sum()), np.ones(t.count_after.sum())]})


def _polr(term, quantity, transform=lambda v: v):
    return lambda r: transform(r("ranks", "harm", f"polr:{term}", quantity))


ORDINAL_CASES = [
    Case(
        "polr-one-category",
        lambda data: R.proportional_odds(_harm(data).assign(y=2), "y ~ after"),
        missing={ALL: NUMBERS},
        says={ALL: "in the same category"},
    ),
    Case(
        "polr-outcome-missing",
        lambda data: R.proportional_odds(_harm(data).assign(y=np.nan), "y ~ after"),
        missing={ALL: NUMBERS},
        says={ALL: "no row has the outcome"},
    ),
    # a constant covariate is aliased with the thresholds: left out, and the rest is polr(y ~ after)
    Case(
        "polr-constant-covariate",
        lambda data: R.proportional_odds(_harm(data).assign(ward=3.0), "y ~ after + ward"),
        missing={"ward": NUMBERS},
        says={"ward": "ward is 3 in all 209 rows used"},
        rel=5e-5,
        values={
            ("after", "estimate"): _polr("after", "estimate", math.exp),
            ("after", "std_error"): _polr("after", "std_error"),
            ("threshold: 0|1", "estimate"): _polr("0|1", "estimate"),
        },
    ),
    Case(
        "polr-separation",
        lambda data: R.proportional_odds(_harm(data).assign(y=lambda f: 2 * f.after), "y ~ after"),
        says={ALL: "Complete or quasi-complete separation"},
    ),
    Case(
        "polr-unused-category",
        lambda data: R.proportional_odds(
            _harm(data).assign(y=lambda f: pd.Categorical(f.y, categories=[0, 1, 2, 3, 4], ordered=True)), "y ~ after"
        ),
        says={ALL: "the thresholds next to categories 4"},
        rel=5e-5,
        values={
            ("after", "estimate"): _polr("after", "estimate", math.exp),
            ("threshold: 2|3", "estimate"): _polr("2|3", "estimate"),
        },
    ),
]


# -- regression --------------------------------------------------------------------------------------------


def _r_glm(dataset, term, quantity):
    return lambda r: r("regression", dataset, term, quantity)


def _logistic(data, **columns):
    return data("logistic").assign(**columns)


REGRESSION_CASES = [
    Case(
        "logistic-no-events",
        lambda data: G.logistic_regression(_logistic(data, error=0), "error ~ after + age"),
        missing={ALL: NUMBERS},
        says={ALL: "Not estimated: none of the 233 observations had the outcome"},
    ),
    Case(
        "logistic-all-events",
        lambda data: G.logistic_regression(_logistic(data, error=1), "error ~ after"),
        missing={ALL: NUMBERS},
        says={ALL: "all 233 observations had the outcome"},
    ),
    Case(
        "logistic-outcome-missing",
        lambda data: G.logistic_regression(_logistic(data, error=np.nan), "error ~ after"),
        missing={ALL: NUMBERS},
        says={ALL: "233 of 233 rows had a missing value"},
    ),
    Case(
        "logistic-no-events-after",
        lambda data: G.logistic_regression(
            _logistic(data).assign(error=lambda f: f.error * (1 - f.after)), "error ~ after"
        ),
        says={"after": "Complete or quasi-complete separation"},
    ),
    # a covariate with one value is aliased (R: NA) and the rest is glm(error ~ after)
    Case(
        "logistic-constant-covariate",
        lambda data: G.logistic_regression(_logistic(data, ward=1), "error ~ after + ward"),
        missing={"ward": NUMBERS},
        says={"ward": "ward is 1 in all 233 rows used"},
        rel=GLM_REL,
        values={(t, q): _r_glm("logistic_unadjusted", t, q) for t in ("Intercept", "after") for q in NUMBERS},
    ),
    Case(
        "logistic-one-period",
        lambda data: G.logistic_regression(_logistic(data)[lambda f: f.after == 0], "error ~ after + age"),
        missing={"after": NUMBERS},
        says={"after": "after is 0 in all 121 rows used"},
    ),
    Case(
        "logistic-separation",
        lambda data: G.logistic_regression(data("separation"), "error ~ x + after"),
        says={ALL: "Complete or quasi-complete separation"},
    ),
    Case(
        "nagelkerke-no-events",
        lambda _: G.nagelkerke_r2(0.0, 0.0, 50),
        missing={ALL: ["estimate"]},
        says={ALL: "the outcome does not vary"},
    ),
    Case(
        "hosmer-lemeshow-no-observations",
        lambda _: G.hosmer_lemeshow([], []),
        missing={ALL: ["statistic", "p_value", "df"]},
        says={ALL: "no observations"},
    ),
    Case(
        "poisson-no-events",
        lambda data: G.poisson_regression(data("counts").assign(errors=0), "errors ~ after", exposure="n_medicines"),
        missing={ALL: NUMBERS},
        says={ALL: "no events were counted in any of the 200 observations"},
    ),
    Case(
        "poisson-no-events-after",
        lambda data: G.poisson_regression(
            data("counts").assign(errors=lambda f: f.errors * (1 - f.after)), "errors ~ after", exposure="n_medicines"
        ),
        says={ALL: "Some fitted counts are numerically 0"},
    ),
    Case(
        "poisson-outcome-missing",
        lambda data: G.poisson_regression(
            data("counts").assign(errors=np.nan), "errors ~ after", exposure="n_medicines"
        ),
        missing={ALL: NUMBERS},
        says={ALL: "nothing to fit"},
    ),
    # the offset log(n_medicines) with a constant covariate left out: R's glm(..., offset = log(n_medicines))
    Case(
        "poisson-constant-covariate",
        lambda data: G.poisson_regression(
            data("counts").assign(ward=2), "errors ~ after + age + ward", exposure="n_medicines"
        ),
        missing={"ward": NUMBERS},
        says={"ward": "ward is 2 in all 200 rows used"},
        rel=GLM_REL,
        values={(t, q): _r_glm("poisson", t, q) for t in ("Intercept", "after", "age") for q in NUMBERS},
    ),
    Case(
        "negative-binomial-no-events",
        lambda data: G.negative_binomial_regression(
            data("counts").assign(errors=0), "errors ~ after", exposure="n_medicines"
        ),
        missing={ALL: NUMBERS},
        says={ALL: "no events were counted"},
    ),
    Case(
        "negative-binomial-constant-covariate",
        lambda data: G.negative_binomial_regression(
            data("counts").assign(ward=2), "errors ~ after + age + ward", exposure="n_medicines"
        ),
        missing={"ward": NUMBERS},
        says={"ward": "ward is 2"},
        rel=1e-5,  # test_regression.NB_REL
        values={
            (t, q): _r_glm("negative_binomial", t, q)
            for t in ("Intercept", "after", "age", "theta")
            for q in ("estimate", "std_error")
            if (t, q) != ("theta", "std_error")
        },
    ),
]


# -- clustered outcomes -----------------------------------------------------------------------------------

SINGLE = "a single cluster of team"
SINGLETONS = "every cluster of team has a single observation"
FORMULA = "error ~ after + age10"


def _team_one(data) -> pd.DataFrame:
    m = data("mixed")
    return m[(m.dataset == "small") & (m.team == "T01")]


def _singletons(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(team=[f"P{i}" for i in range(len(frame))])


def _r_single(dataset, quantity, terms=("Intercept", "after", "age10"), log=False):
    """R's glm/lm on one team, for the models fitted without the random intercept."""

    def value(term):
        return lambda r: (math.exp if log and quantity == "estimate" else float)(r("mixed", dataset, term, quantity))

    return {(term, quantity): value(term) for term in terms}


def _glm_values(dataset, log=True, terms=("Intercept", "after", "age10")):
    return {**_r_single(dataset, "estimate", terms, log), **_r_single(dataset, "std_error", terms)}


def _poisson_team_one(data) -> pd.DataFrame:
    d = data("mixed_poisson")
    return d[d.team == "T01"]


SD_ROWS = ["sd__(Intercept)|team", "variance__(Intercept)|team"]
MIXED_CASES = [
    *[
        Case(
            f"mixed-logistic-{fit}-single-cluster",
            lambda data, fit=fit: M.mixed_logistic(_team_one(data), FORMULA, "team", fit=fit),
            missing={term: ["estimate"] for term in SD_ROWS},
            says={ALL: SINGLE},
            rel=GLM_REL,
            values=_glm_values("single_team_binomial"),
        )
        for fit in ("laplace", "map", "vb")
    ],
    Case(
        "mixed-logistic-one-per-cluster",
        lambda data: M.mixed_logistic(_singletons(_team_one(data)), FORMULA, "team"),
        missing={term: ["estimate"] for term in SD_ROWS},
        says={ALL: SINGLETONS},
        rel=GLM_REL,
        values=_glm_values("single_team_binomial"),
    ),
    # crossed clusters, one of them a single ward: fitted with the team intercept alone
    Case(
        "mixed-logistic-single-ward",
        lambda data: M.mixed_logistic(
            data("mixed").query("dataset == 'small'").assign(ward="W1"), FORMULA, ["team", "ward"]
        ),
        missing={"sd__(Intercept)|ward": ["estimate"]},
        says={ALL: "a single cluster of ward"},
        values={
            ("sd__(Intercept)|team", "estimate"): lambda r: r(
                "mixed", "small_exact", "sd__(Intercept)|team", "estimate"
            )
        },
        rel=1e-3,
    ),
    Case(
        "mixed-logistic-no-events",
        lambda data: M.mixed_logistic(data("mixed").query("dataset == 'small'").assign(error=0), FORMULA, "team"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "none of the 233 observations had the outcome"},
    ),
    Case(
        "mixed-logistic-outcome-missing",
        lambda data: M.mixed_logistic(data("mixed").query("dataset == 'small'").assign(error=np.nan), FORMULA, "team"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "nothing to fit"},
    ),
    Case(
        "mixed-logistic-constant-covariate",
        lambda data: M.mixed_logistic(
            data("mixed").query("dataset == 'small'").assign(ward=1), FORMULA + " + ward", "team"
        ),
        missing={"ward": NUMBERS},
        says={"ward": "ward is 1 in all 233 rows used"},
        rel=EXACT_SE_REL,
        values={("after", "std_error"): lambda r: r("mixed", "small_exact", "after", "std_error")},
    ),
    Case(
        "mixed-poisson-single-cluster",
        lambda data: M.mixed_poisson(
            _poisson_team_one(data), FORMULA.replace("error", "errors"), "team", exposure="days"
        ),
        missing={term: ["estimate"] for term in SD_ROWS},
        says={ALL: SINGLE},
        rel=GLM_REL,
        values=_glm_values("single_team_poisson"),
    ),
    Case(
        "mixed-poisson-one-per-cluster",
        lambda data: M.mixed_poisson(
            _singletons(_poisson_team_one(data)), "errors ~ after + age10", "team", exposure="days"
        ),
        missing={term: ["estimate"] for term in SD_ROWS},
        says={ALL: SINGLETONS},
        rel=GLM_REL,
        values=_glm_values("single_team_poisson"),
    ),
    Case(
        "mixed-poisson-no-events",
        lambda data: M.mixed_poisson(data("mixed_poisson").assign(errors=0), "errors ~ after", "team", exposure="days"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "no events were counted in any of the 2930"},
    ),
    Case(
        "mixed-poisson-no-events-after",
        lambda data: M.mixed_poisson(
            data("mixed_poisson").assign(errors=lambda f: f.errors * (1 - f.after)),
            "errors ~ after",
            "team",
            exposure="days",
        ),
        says={ALL: "Some fitted counts are numerically 0"},
    ),
    Case(
        "gee-single-cluster",
        lambda data: M.gee_logistic(_team_one(data), FORMULA, "team"),
        missing={"correlation__team": ["estimate"]},
        says={ALL: "single cluster of team and the sandwich needs"},
        rel=GLM_REL,
        values=_glm_values("single_team_binomial"),
    ),
    # independent observations: the GEE estimates are the ordinary logistic ones (the SEs are robust)
    Case(
        "gee-one-per-cluster",
        lambda data: M.gee_logistic(_singletons(_team_one(data)), FORMULA, "team"),
        missing={"correlation__team": ["estimate"]},
        says={ALL: "there are no pairs within clusters"},
        rel=1e-5,
        values=_r_single("single_team_binomial", "estimate", log=True),
    ),
    Case(
        "gee-no-events",
        lambda data: M.gee_logistic(_team_one(data).assign(error=0), FORMULA, "team"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "none of the 38 observations"},
    ),
    Case(
        "lmm-single-cluster",
        lambda data: M.linear_mixed(
            data("lmm").query("dataset == 'small' and team == 'T01'"), "mai_change ~ after + age", "team"
        ),
        missing={"sd__(Intercept)|team": ["estimate"]},
        says={ALL: SINGLE},
        rel=LMM_REL,
        values={
            **_glm_values("single_team_lm", log=False, terms=("Intercept", "after", "age")),
            ("after", "df"): lambda r: r("mixed", "single_team_lm", "lm", "df"),
            ("sd__Residual", "estimate"): lambda r: r("mixed", "single_team_lm", "sd__Residual", "estimate"),
        },
    ),
    Case(
        "lmm-one-per-cluster",
        lambda data: M.linear_mixed(
            _singletons(data("lmm").query("dataset == 'small' and team == 'T01'")), "mai_change ~ after + age", "team"
        ),
        missing={"sd__(Intercept)|team": ["estimate"]},
        says={ALL: SINGLETONS},
        rel=LMM_REL,
        values=_glm_values("single_team_lm", log=False, terms=("Intercept", "after", "age")),
    ),
    Case(
        "lmm-outcome-missing",
        lambda data: M.linear_mixed(data("lmm").assign(mai_change=np.nan), "mai_change ~ after", "team"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "nothing to fit"},
    ),
    Case(
        "lmm-constant-outcome",
        lambda data: M.linear_mixed(data("lmm").assign(mai_change=0.0), "mai_change ~ after", "team"),
        missing={ALL: ["estimate", "std_error"]},
        says={ALL: "the outcome is 0 in all"},
    ),
]


# -- time series ----------------------------------------------------------------------------------------


def _series(data, months_before: int, months_after: int) -> pd.DataFrame:
    s = data("timeseries").query("dataset == 'short'")
    return pd.concat([s[s.post == 0].tail(months_before), s[s.post == 1].head(months_after)])


TERMS = ["intercept", "pre_trend", "level_change", "slope_change", "post_trend"]
SERIES_CASES = [
    Case(
        "segmented-one-point-each",
        lambda data: T.segmented_regression(_series(data, 1, 1), "proportion", "month", "post", lags=1),
        missing={ALL: NUMBERS + ["df"]},
        says={ALL: "only 1 time point in the pre period"},
    ),
    Case(
        "segmented-two-points-before",
        lambda data: T.segmented_regression(_series(data, 2, 12), "proportion", "month", "post", lags=1),
        missing={ALL: NUMBERS},
        says={ALL: "at least 3 before and 3 after (Cochrane EPOC)"},
    ),
    # 3 + 3 points: 6 observations, 4 coefficients, t on 2 df
    Case(
        "segmented-three-each",
        lambda data: T.segmented_regression(_series(data, 3, 3), "proportion", "month", "post", lags=1),
        says={ALL: "Only 3 time points in the pre period"},
        values={(term, "df"): 2.0 for term in TERMS},
    ),
    Case(
        "segmented-post-missing",
        lambda data: T.segmented_regression(
            _series(data, 12, 12).assign(proportion=lambda f: f.proportion.where(f.post == 0)),
            "proportion",
            "month",
            "post",
            lags=1,
        ),
        missing={ALL: NUMBERS},
        says={ALL: "no time points in the post period"},
    ),
    Case(
        "segmented-outcome-missing",
        lambda data: T.segmented_regression(
            _series(data, 12, 12).assign(proportion=np.nan), "proportion", "month", "post", lags=1
        ),
        missing={ALL: NUMBERS},
        says={ALL: "24 of 24 time points had a missing value"},
    ),
    # no events in any month: both lines are flat at 0, exactly
    Case(
        "segmented-no-events",
        lambda data: T.segmented_regression(
            _series(data, 12, 12).assign(proportion=0.0), "proportion", "month", "post", lags=1
        ),
        missing={ALL: ["statistic", "p_value", "conf_low", "conf_high"]},
        says={ALL: "lies exactly on the fitted lines"},
        values={(term, "estimate"): 0.0 for term in TERMS},
    ),
    # month 2 has no patients: no point, and the centre line is (2 + 4) / (20 + 25) from the others
    Case(
        "p-chart-empty-month",
        lambda _: T.p_chart(pd.DataFrame({"m": [1, 2, 3], "x": [2, 0, 4], "n": [20, 0, 25]}), "m", "x", "n"),
        missing={"2": ["estimate", "std_error", "conf_low", "conf_high"]},
        says={"2": "the proportion at m 2"},
        values={("1", "centre_line"): 6 / 45, ("1", "std_error"): math.sqrt(6 / 45 * (1 - 6 / 45) / 20)},
    ),
    Case(
        "p-chart-empty-period",
        lambda _: T.p_chart(
            pd.DataFrame({"m": [1, 2, 3, 4], "x": [2, 3, 0, 0], "n": [20, 25, 0, 0], "post": [0, 0, 1, 1]}),
            "m",
            "x",
            "n",
            period="post",
        ),
        missing={"3": ["estimate", "centre_line"], "4": ["estimate"]},
        says={"3": "the centre line of period 1"},
        values={("1", "centre_line"): 5 / 45},
    ),
    Case(
        "p-chart-no-events",
        lambda _: T.p_chart(pd.DataFrame({"m": [1, 2], "x": [0, 0], "n": [20, 25]}), "m", "x", "n"),
        says={ALL: "zero width"},
        values={("1", "estimate"): 0.0, ("2", "conf_high"): 0.0},
    ),
]

CASES = COUNT_CASES + SAMPLE_CASES + ORDINAL_CASES + REGRESSION_CASES + MIXED_CASES + SERIES_CASES


def _rows(out: pd.DataFrame, term: str) -> pd.DataFrame:
    if term == ALL:
        return out
    assert term in set(out["term"]), f"no row {term!r}; rows are {out['term'].tolist()}"
    return out[out["term"] == term]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_degenerate_input(case, reference_data, r_results):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes as a printed warning either
        out = case.call(reference_data)
    assert list(out.columns[: len(S.COLUMNS)]) == list(S.COLUMNS)
    assert len(out) > 0
    numbers = out[NUMBERS + ["df"]].to_numpy(dtype=float)
    assert not np.isinf(numbers).any()
    for term, columns in case.missing.items():
        rows = _rows(out, term)
        assert rows[columns].isna().all().all(), f"{term}: expected NaN in {columns}\n{rows[columns]}"
    for term, phrase in case.says.items():
        for text in _rows(out, term)["warnings"]:
            assert phrase in text, f"{term}: {phrase!r} not in {text!r}"
    for (term, column), expected in case.values.items():
        if callable(expected):
            expected = expected(lambda area, *key: r_results(area)(*key))
        ours = float(_rows(out, term)[column].iloc[0])
        assert ours == pytest.approx(expected, rel=case.rel, abs=1e-12), f"{term} {column}"


def test_every_public_function_meets_a_degenerate_case():
    # each name exported by analysis.stats is exercised above (COLUMNS is a constant, not a function)
    source = open(__file__, encoding="utf-8").read()
    untested = [name for name in S.__all__ if name != "COLUMNS" and not re.search(rf"\.{name}\b", source)]
    assert untested == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: P.proportion(-1, 10),
        lambda: P.compare_proportions(5, 4, 1, 10),
        lambda: R.trend_test([1, -2], [3, 4]),
        lambda: R.quantile([1.0, 2.0], [0.5], type=10),
        lambda: T.segmented_regression(
            pd.DataFrame({"m": [1, 2], "p": [0.1, 0.2], "post": [0, 2]}), "p", "m", "post", lags=1
        ),
        lambda: T.p_chart(pd.DataFrame({"m": [1], "x": [5], "n": [4]}), "m", "x", "n"),
        lambda: M.mixed_logistic(pd.DataFrame({"y": [0, 1], "t": [1, 2]}), "y ~ 1", "t", fit="glmer"),
    ],
)
def test_programming_errors_still_raise(call):
    with pytest.raises(ValueError):
        call()


def test_power_functions_at_the_edges_of_a_design():
    # planning functions take a design, not data: their degenerate designs are no effect, no clustering,
    # clusters of one and a zero cluster SD
    with pytest.raises(ValueError, match="no effect to detect"):
        S.power_two_proportions(50, 0.4, 0.4)
    with pytest.raises(ValueError, match="no effect to detect"):
        S.sample_size_two_proportions(0.4, 0.4)
    assert S.design_effect(1, 0.3) == 1.0  # 1 + (1 - 1) x 0.3: a cluster of one adds no correlation
    assert S.icc_from_cluster_sd(0.0) == 0.0  # 0 / (0 + pi^2/3)
    # with no correlation, 10 clusters of 20 are 200 independent patients a group
    clustered = S.cluster_power(0.4, 0.6, clusters=10, cluster_size=20, icc=0.0)
    plain = S.power_two_proportions(200, 0.4, 0.6)
    assert clustered.set_index("term").loc["power", "estimate"] == pytest.approx(
        plain.set_index("term").loc["power", "estimate"], rel=1e-12)
    # a stepped wedge with no cluster variance still gives a power strictly between 0 and 1
    wedge = S.stepped_wedge_power(0.4, 0.6, clusters=4, steps=2, cluster_size=10, icc=0.0)
    assert 0 < wedge.set_index("term").loc["power", "estimate"] < 1


def test_the_plain_number_twins_are_missing_where_their_frames_are():
    # hosmer_lemeshow_p and nagelkerke_r2_value give the frames' numbers alone (for the calibration's
    # thousands of refits): NaN exactly where the frames leave them out
    assert math.isnan(G.nagelkerke_r2_value(0.0, 0.0, 50))  # no events: the null log-likelihood is 0
    assert math.isnan(G.hosmer_lemeshow_p([], []))
    y, p = [0, 0, 1, 0, 0, 1, 1, 1, 1, 0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8]
    assert math.isnan(G.hosmer_lemeshow_p(y, p, groups=2))  # two groups: 0 df
    assert math.isnan(G.hosmer_lemeshow(y, p, groups=2).iloc[0].p_value)
