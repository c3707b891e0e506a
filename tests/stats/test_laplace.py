"""analysis.stats.laplace: the properties the fitter relies on (its agreement with glmer is in test_mixed.py).

On the study's crossed admission model (tests/reference/data/study_patients.csv), where the earlier
fitter failed: the Laplace deviance must be a function of (theta, beta) alone, its PIRLS must reach the
mode from anywhere, and the exact gradient must be the gradient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.stats.laplace import _Deviance, fit_laplace

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
