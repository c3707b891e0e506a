"""analysis.stats.laplace: the properties the fitter relies on (its agreement with glmer is in test_mixed.py).

On the study's crossed admission model (tests/reference/data/study_patients.csv), where the earlier
fitter failed: the Laplace deviance must be a function of (theta, beta) alone, its PIRLS must reach the
mode from anywhere, and the exact gradient must be the gradient. The Poisson family with its offset
(tests/reference/data/mixed_poisson.csv) must have an exact gradient too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.stats.laplace import POISSON, _Deviance, fit_laplace

ADMISSION = "error_at_admission ~ after + age + charlson + n_medicines"


@pytest.fixture(scope="module")
def deviance(reference_data):
    patients = reference_data("study_patients")
    y, x = patsy.dmatrices(ADMISSION, patients, return_type="dataframe")
    codes = [pd.factorize(patients[c], sort=True)[0] for c in ("team", "ward")]
    return _Deviance(y.to_numpy().ravel(), x.to_numpy(), codes)


POINTS = [
    np.array([1.0, 0.4, -0.8, -0.9, 0.1, 0.2, 0.4]),
    np.array([-0.3, 0.0, 0.5, 0.3, -0.2, 0.0, 0.1]),  # a negative theta and a theta at 0
    np.array([6.0, 4.0, -3.0, -2.5, 1.5, 2.0, -2.0]),  # far out: linear predictors of +-30 and beyond
]


@pytest.mark.parametrize("point", range(len(POINTS)))
def test_gradient_is_the_gradient(deviance, point):
    params = POINTS[point]
    _, gradient = deviance(params)
    h = 1e-6
    numeric = [(deviance(params + h * e)[0] - deviance(params - h * e)[0]) / (2 * h) for e in np.eye(params.size)]
    # central differences of a deviance of about 200 to 2000: rounding error about 1e-7
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


def test_deviance_does_not_depend_on_what_was_evaluated_before(deviance):
    first = deviance(POINTS[0])
    for params in POINTS[1:]:
        deviance(params)
    again = deviance(POINTS[0])
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])


def test_pirls_reaches_the_mode_from_far_out(deviance):
    # Newton steps without halving overshot here and the fit went wrong; with halving they converge
    for params in POINTS:
        deviance(params)
        assert deviance.pirls_converged


def test_deviance_is_even_in_theta(deviance):
    params = POINTS[0]
    flipped = params * np.r_[-1.0, -1.0, np.ones(params.size - 2)]
    assert deviance(flipped)[0] == pytest.approx(deviance(params)[0], rel=1e-13)


def test_fixed_effects_are_transformed_back_exactly(deviance):
    # X_s gamma is X beta with beta = to_beta gamma: the scaling changes nothing but the conditioning
    gamma = POINTS[0][2:]
    x = deviance.x @ np.linalg.inv(deviance.to_beta)
    np.testing.assert_allclose(x @ (deviance.to_beta @ gamma), deviance.x @ gamma, rtol=1e-12)
    assert np.linalg.cond(deviance.x) == pytest.approx(1.0)


def test_a_theta_at_the_boundary_is_exactly_zero(reference_data):
    patients = reference_data("study_patients")
    y, x = patsy.dmatrices(ADMISSION, patients, return_type="dataframe")
    codes = [pd.factorize(patients[c], sort=True)[0] for c in ("team", "ward")]
    fit = fit_laplace(y.to_numpy().ravel(), x.to_numpy(), codes)
    assert fit.theta[1] == 0.0  # ward (glmer: 0, singular)
    assert fit.theta[0] == pytest.approx(1.0497, abs=1e-4)
    assert fit.converged and not fit.fell_back


@pytest.fixture(scope="module")
def poisson_deviance(reference_data):
    d = reference_data("mixed_poisson")
    y, x = patsy.dmatrices("errors ~ after + age10", d, return_type="dataframe")
    codes = [pd.factorize(d["team"], sort=True)[0]]
    return _Deviance(y.to_numpy().ravel(), x.to_numpy(), codes, POISSON, np.log(d["days"].to_numpy(dtype=float)))


POISSON_POINTS = [
    np.array([0.4, -2.2, -0.3, 0.1]),
    np.array([-1.5, -1.0, 0.5, -0.4]),  # a negative theta
    # far out: linear predictors of -17 to -4, and of 1 to 19 (means up to 1e8 where the counts are a
    # few), where PIRLS's trial steps overflow and are halved
    np.array([3.0, 12.0, -2.0, 1.5]),
    np.array([-4.0, -8.0, 3.0, -2.5]),
]


@pytest.mark.parametrize("point", range(len(POISSON_POINTS)))
def test_poisson_gradient_is_the_gradient(poisson_deviance, point):
    # the same formulas with w = mu and dw/deta = mu, and the offset in eta; a deviance of about 1e4
    # to 1e7, so the central differences' rounding error is about 1e-6 relative
    params = POISSON_POINTS[point]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow on the way is expected, and silent
        value, gradient = poisson_deviance(params)
    assert poisson_deviance.pirls_converged and np.isfinite(value)
    h = 1e-6
    steps = [h * e for e in np.eye(params.size)]
    numeric = [(poisson_deviance(params + d)[0] - poisson_deviance(params - d)[0]) / (2 * h) for d in steps]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-3)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="family must be one of"):
        fit_laplace(np.zeros(4), np.ones((4, 1)), [np.array([0, 0, 1, 1])], family="gamma")
