"""analysis.stats.regression against R (tests/reference/regression.R)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from analysis.stats import regression as G

# Maximum likelihood by IRLS in both (R with epsilon 1e-12, statsmodels to its deviance tolerance
# 1e-8): coefficients, SEs and the statistics built from them agree far inside 1e-6.
ML_REL = 1e-6
# glm.nb alternates theta and IRLS steps while we maximise jointly; both reach the joint maximum
# (measured 1.5e-10 relative on theta, below 2e-7 on coefficients and SEs; p-values of 1e-18 to 2e-4
# differ by up to 6.4e-6 relative because a z of 8.7 amplifies its last digits).
NB_REL = 1e-5
# glm.nb's printed SE.theta is taken at theta.ml's previous Newton iterate (step tolerance 1.2e-4):
# 1.3e-5 relative from the same formula at the final estimate, which the tight reference uses.
GLM_NB_SE_THETA_REL = 5e-5

QUANTITIES = ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")


def _compare(ours, r, dataset, terms, rel, assert_close):
    ours = ours.set_index("term")
    for term in terms:
        for quantity in QUANTITIES:
            key = (dataset, term, quantity)
            if key in r.values:
                assert_close(ours.loc[term, quantity], r.values[key], rel, 1e-300, f"{dataset} {term} {quantity}")


@pytest.mark.parametrize(
    "dataset, formula, terms",
    [
        ("logistic_unadjusted", "error ~ after", ["Intercept", "after"]),
        (
            "logistic_adjusted",
            "error ~ after + age + charlson + n_medicines",
            ["Intercept", "after", "age", "charlson", "n_medicines"],
        ),
    ],
)
def test_logistic_matches_glm(dataset, formula, terms, reference_data, r_results, assert_close):
    r = r_results("regression")
    out = G.logistic_regression(reference_data("logistic"), formula)
    _compare(out, r, dataset, terms, ML_REL, assert_close)
    assert out["term"].tolist() == terms + ["hosmer_lemeshow", "nagelkerke_r2"]
    nk = out.set_index("term").loc["nagelkerke_r2", "estimate"]
    assert_close(nk, r(dataset, "nagelkerke_r2", "estimate"), ML_REL, 0, "Nagelkerke")


@pytest.mark.parametrize("groups", [10, 5])
def test_hosmer_lemeshow_matches_hand_written_r(groups, reference_data, r_results, assert_close):
    r = r_results("regression")
    out = G.logistic_regression(
        reference_data("logistic"), "error ~ after + age + charlson + n_medicines", hosmer_lemeshow_groups=groups
    ).set_index("term")
    term = f"hosmer_lemeshow_g{groups}"
    assert_close(out.loc["hosmer_lemeshow", "statistic"], r("logistic_adjusted", term, "statistic"), ML_REL, 0, "HL")
    assert_close(out.loc["hosmer_lemeshow", "p_value"], r("logistic_adjusted", term, "p_value"), ML_REL, 0, "HL p")
    assert f"on {int(r('logistic_adjusted', term, 'df'))} df" in out.loc["hosmer_lemeshow", "method"]
    assert out.loc["hosmer_lemeshow", "df"] == r("logistic_adjusted", term, "df")


def test_hosmer_lemeshow_by_hand():
    # two groups of five (cut at the median 0.5): O = (1, 4), E = (1.5, 3.5), n = 5 each
    y = np.array([0, 0, 1, 0, 0, 1, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8])
    out = G.hosmer_lemeshow(y, p, groups=2).iloc[0]
    expected = (1 - 1.5) ** 2 / (1.5 * (1 - 1.5 / 5)) + (4 - 3.5) ** 2 / (3.5 * (1 - 3.5 / 5))
    assert out.statistic == pytest.approx(expected, rel=1e-12)
    assert math.isnan(out.p_value) and math.isnan(out.df) and "undefined" in out.warnings  # df = 0


def test_single_binary_predictor_hosmer_lemeshow_is_undefined(reference_data):
    out = G.logistic_regression(reference_data("logistic"), "error ~ after").set_index("term")
    assert math.isnan(out.loc["hosmer_lemeshow", "p_value"])
    assert "only 1 of the 10 Hosmer-Lemeshow groups" in out.loc["hosmer_lemeshow", "warnings"]


def test_nagelkerke_by_hand():
    # l0 = -150, l1 = -120, n = 233: CS = 1 - exp(-60/233), max = 1 - exp(-300/233)
    value = G.nagelkerke_r2(-120.0, -150.0, 233)["estimate"].iloc[0]
    assert value == pytest.approx((1 - math.exp(-60 / 233)) / (1 - math.exp(-300 / 233)), rel=1e-12)


@pytest.mark.parametrize("groups", [10, 5])
def test_the_plain_numbers_are_the_frames_numbers(groups, reference_data, r_results, assert_close):
    # hosmer_lemeshow_p and nagelkerke_r2_value (for callers refitting thousands of times) against R
    d = reference_data("logistic").dropna(subset=["error", "after", "age", "charlson", "n_medicines"])
    x = np.column_stack([np.ones(len(d)), d[["after", "age", "charlson", "n_medicines"]].to_numpy(float)])
    fit = sm.GLM(d["error"].to_numpy(float), x, family=sm.families.Binomial()).fit()
    r = r_results("regression")
    p = G.hosmer_lemeshow_p(d["error"], fit.fittedvalues, groups=groups)
    assert_close(p, r("logistic_adjusted", f"hosmer_lemeshow_g{groups}", "p_value"), ML_REL, 0, "HL p")
    assert_close(G.nagelkerke_r2_value(fit.llf, fit.llnull, len(d)), r("logistic_adjusted", "nagelkerke_r2",
                                                                        "estimate"), ML_REL, 0, "Nagelkerke")


def test_the_plain_numbers_are_nan_where_the_frames_say_undefined():
    # two groups (df = 0), as test_hosmer_lemeshow_by_hand; an outcome that never varies (null loglik 0)
    y = np.array([0, 0, 1, 0, 0, 1, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8])
    assert math.isnan(G.hosmer_lemeshow_p(y, p, groups=2))
    assert math.isnan(G.nagelkerke_r2_value(0.0, 0.0, 10))
    assert math.isnan(G.nagelkerke_r2_value(-1.0, -2.0, 0))


def test_separation_is_a_sentence_not_a_crash(reference_data):
    out = G.logistic_regression(reference_data("separation"), "error ~ x + after")
    assert "separation" in out["warnings"].iloc[0]
    assert out.set_index("term").loc["x", "estimate"] > 1e3  # unbounded in truth; large here


def test_missing_rows_are_counted(reference_data):
    d = reference_data("logistic").copy()
    d.loc[[0, 5, 9], "age"] = np.nan
    out = G.logistic_regression(d, "error ~ after + age")
    assert out["n"].iloc[0] == len(d) - 3
    assert "3 of 233 rows had a missing value" in out["warnings"].iloc[0]


@pytest.mark.parametrize(
    "dataset, formula, exposure",
    [("poisson", "errors ~ after + age", "n_medicines"), ("poisson_no_offset", "errors ~ after + age", None)],
)
def test_poisson_matches_glm(dataset, formula, exposure, reference_data, r_results, assert_close):
    out = G.poisson_regression(reference_data("counts"), formula, exposure=exposure)
    _compare(out, r_results("regression"), dataset, ["Intercept", "after", "age"], ML_REL, assert_close)


def test_poisson_flags_overdispersion(reference_data, r_results):
    out = G.poisson_regression(reference_data("counts"), "errors ~ after + age", exposure="n_medicines")
    dispersion = r_results("regression")("poisson", "dispersion", "estimate")
    assert f"Pearson dispersion is {dispersion:.2f}" in out["warnings"].iloc[0]


def test_negative_binomial_matches_glm_nb(reference_data, r_results, assert_close):
    r = r_results("regression")
    out = G.negative_binomial_regression(reference_data("counts"), "errors ~ after + age", exposure="n_medicines")
    _compare(out, r, "negative_binomial", ["Intercept", "after", "age"], NB_REL, assert_close)
    theta = out.set_index("term").loc["theta"]
    assert_close(theta.estimate, r("negative_binomial", "theta", "estimate"), NB_REL, 0, "theta")
    assert_close(theta.std_error, r("negative_binomial", "theta", "std_error"), ML_REL, 0, "SE theta")
    assert_close(
        theta.std_error, r("negative_binomial", "theta_glm_nb", "std_error"), GLM_NB_SE_THETA_REL, 0, "SE.theta"
    )


def test_negative_binomial_with_a_long_exposure_converges_and_matches_glm_nb(reference_data, r_results, assert_close):
    # 28 to 90 days at risk: the quasi-Newton fit alone stopped at the maximum but reported a failure
    r = r_results("regression")
    out = G.negative_binomial_regression(
        reference_data("counts_days"), "ade_count ~ after + age", exposure="days_at_risk"
    )
    _compare(out, r, "negative_binomial_days", ["after", "age"], NB_REL, assert_close)
    # the intercept's z of 22 turns a 1.5e-6 difference in its SE into 3e-5 in a p of 4e-108: compare
    # what it is estimated with, not that p
    intercept = out.set_index("term").loc["Intercept"]
    for quantity in ("estimate", "std_error"):
        expected = r("negative_binomial_days", "Intercept", quantity)
        assert_close(intercept[quantity], expected, NB_REL, 0, f"Intercept {quantity}")
    theta = out.set_index("term").loc["theta"]
    assert_close(theta.estimate, r("negative_binomial_days", "theta", "estimate"), NB_REL, 0, "theta")
    assert (out["warnings"] == "").all(), out["warnings"].iloc[0]


@pytest.mark.parametrize("fitter", [G.poisson_regression, G.negative_binomial_regression])
def test_rows_without_an_exposure_are_left_out_and_counted(fitter, reference_data):
    d = reference_data("counts").copy()
    d.loc[[1, 4, 7], "n_medicines"] = np.nan
    out = fitter(d, "errors ~ after + age", exposure="n_medicines")
    assert out["n"].iloc[0] == 197
    assert "3 of 200 rows had a missing value in the model's variables and were left out" in out["warnings"].iloc[0]
