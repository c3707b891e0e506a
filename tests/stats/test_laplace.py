"""analysis.stats.laplace: the properties the fitter relies on (its agreement with glmer is in test_mixed.py).

The dense engine (several grouping factors), on the study's crossed admission model
(tests/reference/data/study_patients.csv), where an earlier fitter failed: the Laplace deviance must be
a function of (theta, beta) alone, its PIRLS must reach the mode from anywhere, and the exact gradient
must be the gradient. The Poisson family with its offset (tests/reference/data/mixed_poisson.csv) must
have an exact gradient too. The per-cluster engine (one grouping factor): its gradient and Hessian
must be those of its deviance, which must be the dense engine's; collapsing rows into cells, events out
of trials, the warm start and the start from a sample must leave the fit as it is; and the results must
not depend on the number of BLAS threads. Adaptive Gauss-Hermite quadrature (nagq > 1): with one node
its deviance is the Laplace deviance, with 40 it is the integral (scipy's quad, tests/reference/data/
mixed_agq.csv), its fit is at a minimum of that deviance, and several factors are refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
from scipy import special

from analysis.stats import laplace as L
from analysis.stats.laplace import BINOMIAL, POISSON, _Deviance, fit_laplace

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


def test_a_theta_at_the_boundary_is_exactly_zero(reference_data, r_results):
    # crossed team and pharmacist: the pharmacist's SD is 0 alone (glmer: 0, singular) and stays exactly
    # 0 beside the team's, so the team's SD is that of the team-only model (glmer, tolPwrss = 1e-13)
    patients = reference_data("study_patients")
    y, x = patsy.dmatrices(ADMISSION, patients, return_type="dataframe")
    codes = [pd.factorize(patients[c], sort=True)[0] for c in ("team", "pharmacist")]
    fit = fit_laplace(y.to_numpy().ravel(), x.to_numpy(), codes)
    r = r_results("mixed")
    assert r("study_admission_pharmacist_exact", "sd__(Intercept)|pharmacist", "estimate") == 0.0
    assert fit.theta[1] == 0.0
    assert fit.theta[0] == pytest.approx(r("study_admission_team_exact", "sd__(Intercept)|team", "estimate"), abs=1e-4)
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
    with pytest.raises(ValueError, match="family must be one of .* the fitter supports random intercepts only"):
        fit_laplace(np.zeros(4), np.ones((4, 1)), [np.array([0, 0, 1, 1])], family="gamma")


# The per-cluster engine (one grouping factor)


def _grouped(y, x, codes, family=BINOMIAL, offset=None, trials=None):
    data, _ = L._prepare(y, x, codes, family, offset, trials)
    return L._Grouped(data, family)


@pytest.fixture(scope="module")
def team_model(reference_data):
    patients = reference_data("study_patients")
    y, x = patsy.dmatrices(ADMISSION, patients, return_type="dataframe")
    return y.to_numpy().ravel(), x.to_numpy(), [pd.factorize(patients["team"], sort=True)[0]]


GROUPED_POINTS = [
    np.array([1.0, -1.0, -0.8, 0.01, 0.1, 0.05]),
    np.array([0.3, 0.5, 0.2, 0.02, -0.1, 0.0]),
    np.array([0.0, 0.5, 0.2, 0.02, -0.1, 0.0]),  # theta at 0, where d is even
    np.array([4.0, 2.0, -3.0, 0.05, 1.5, 0.3]),  # far out
]


@pytest.mark.parametrize("point", range(len(GROUPED_POINTS)))
def test_grouped_gradient_and_hessian_are_exact(team_model, point):
    engine = _grouped(*team_model)
    phi = GROUPED_POINTS[point]
    at = engine.point(phi)
    assert at.converged
    h = 1e-6
    steps = [h * e for e in np.eye(phi.size)]
    numeric = [(engine.point(phi + d).deviance - engine.point(phi - d).deviance) / (2 * h) for d in steps]
    np.testing.assert_allclose(at.gradient, numeric, rtol=1e-6, atol=1e-6)
    differences = [engine.point(phi + d).gradient - engine.point(phi - d).gradient for d in steps]
    hessian = np.column_stack(differences) / (2 * h)
    np.testing.assert_allclose(at.hessian, hessian, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(at.hessian, at.hessian.T)


@pytest.mark.parametrize("point", range(len(POISSON_POINTS)))
def test_grouped_poisson_gradient_and_hessian_are_exact(reference_data, point):
    d = reference_data("mixed_poisson")
    y, x = patsy.dmatrices("errors ~ after + age10", d, return_type="dataframe")
    engine = _grouped(
        y.to_numpy().ravel(), x.to_numpy(), [pd.factorize(d["team"], sort=True)[0]], POISSON, np.log(d["days"])
    )
    phi = POISSON_POINTS[point].copy()
    phi[0] = abs(phi[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow on the way is expected, and silent
        at = engine.point(phi)
    h = 1e-6
    steps = [h * e for e in np.eye(phi.size)]
    numeric = [(engine.point(phi + d).deviance - engine.point(phi - d).deviance) / (2 * h) for d in steps]
    np.testing.assert_allclose(at.gradient, numeric, rtol=1e-5, atol=1e-3)
    differences = [engine.point(phi + d).gradient - engine.point(phi - d).gradient for d in steps]
    hessian = np.column_stack(differences) / (2 * h)
    np.testing.assert_allclose(at.hessian, hessian, rtol=2e-5, atol=1e-2)


def test_grouped_engine_is_the_dense_one_with_one_factor(team_model):
    # the same deviance and gradient: the per-cluster formulas are the general ones with M diagonal
    dense, grouped = _Deviance(*team_model), _grouped(*team_model)
    for phi in GROUPED_POINTS:
        at = grouped.point(phi)
        value, gradient = dense(np.r_[phi[0], np.linalg.solve(dense.to_beta, phi[1:])])
        assert at.deviance == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(gradient[1:], dense.to_beta.T @ at.gradient[1:], rtol=1e-8, atol=1e-8)
        assert gradient[0] == pytest.approx(at.gradient[0], rel=1e-8, abs=1e-8)


def test_grouped_deviance_does_not_depend_on_where_pirls_starts(team_model):
    engine = _grouped(*team_model)
    phi = GROUPED_POINTS[0]
    cold = engine.point(phi)
    for start in (cold.v + 0.5, -cold.v, np.full(cold.v.size, 3.0)):
        warm = engine.point(phi, start)
        assert warm.deviance == pytest.approx(cold.deviance, rel=1e-13)
        np.testing.assert_allclose(warm.gradient, cold.gradient, rtol=1e-9, atol=1e-9)


def test_one_factor_fit_is_the_dense_engines(team_model):
    grouped = fit_laplace(*team_model)
    data, _ = L._prepare(*team_model, BINOMIAL, None, None)
    dense = L._fit_dense(data, BINOMIAL, None)
    np.testing.assert_allclose(grouped.beta, dense.beta, rtol=1e-6)
    np.testing.assert_allclose(grouped.theta, dense.theta, rtol=1e-6)
    np.testing.assert_allclose(grouped.cov_beta, dense.cov_beta, rtol=1e-5)
    np.testing.assert_allclose(grouped.cov_theta, dense.cov_theta, rtol=1e-4)
    np.testing.assert_allclose(grouped.modes[0], dense.modes[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grouped.mode_sd[0], dense.mode_sd[0], rtol=1e-6)
    assert grouped.deviance <= dense.deviance + 1e-9
    assert grouped.engine.startswith("one grouping factor") and dense.engine.startswith("several")


def _discrete(n, teams, seed, sd=0.6):
    """0/1 outcomes with few covariate patterns (so rows collapse) and a team random intercept."""
    rng = np.random.default_rng(seed)
    team = rng.integers(0, teams, n)
    after, old = rng.integers(0, 2, n), rng.integers(0, 2, n)
    eta = -0.5 - 1.0 * after + 0.4 * old + rng.normal(0, sd, teams)[team]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return y, np.column_stack([np.ones(n), after, old]), [team]


def test_collapsed_cells_give_the_fit_of_the_rows(monkeypatch):
    y, x, codes = _discrete(3000, 30, 1)
    collapsed = fit_laplace(y, x, codes)
    assert collapsed.cells == 120  # 30 teams x 4 covariate patterns
    monkeypatch.setattr(L, "COLLAPSE_RATIO", 0.0)  # nothing collapses
    rows = fit_laplace(y, x, codes)
    assert rows.cells == 3000
    np.testing.assert_allclose(collapsed.beta, rows.beta, rtol=1e-9)
    np.testing.assert_allclose(collapsed.theta, rows.theta, rtol=1e-9)
    np.testing.assert_allclose(collapsed.cov_beta, rows.cov_beta, rtol=1e-8)
    np.testing.assert_allclose(collapsed.modes[0], rows.modes[0], rtol=1e-8, atol=1e-12)
    # Bernoulli rows summed into binomial cells: the same likelihood, not just up to a constant
    assert collapsed.deviance == pytest.approx(rows.deviance, rel=1e-12)


def test_trials_are_binomial_cells_with_their_coefficients():
    y, x, codes = _discrete(3000, 30, 2)
    rows = fit_laplace(y, x, codes)
    cells = pd.DataFrame({"team": codes[0], "after": x[:, 1], "old": x[:, 2], "y": y})
    cells = cells.groupby(["team", "after", "old"], as_index=False).agg(events=("y", "sum"), trials=("y", "size"))
    aggregated = fit_laplace(
        cells["events"].to_numpy(), np.column_stack([np.ones(len(cells)), cells.after, cells.old]),
        [cells["team"].to_numpy()], trials=cells["trials"].to_numpy(),
    )
    np.testing.assert_allclose(aggregated.beta, rows.beta, rtol=1e-9)
    np.testing.assert_allclose(aggregated.cov_beta, rows.cov_beta, rtol=1e-8)
    # the deviance of events out of trials has -2 log C(n, y), as glmer's logLik
    coefficients = special.gammaln(cells.trials + 1) - special.gammaln(cells.events + 1)
    coefficients -= special.gammaln(cells.trials - cells.events + 1)
    assert aggregated.deviance == pytest.approx(rows.deviance - 2 * coefficients.sum(), rel=1e-12)


def test_warm_start_reaches_the_same_fit():
    first = fit_laplace(*_discrete(2000, 40, 3))
    y, x, codes = _discrete(2000, 40, 4)
    cold = fit_laplace(y, x, codes)
    warm = fit_laplace(y, x, codes, start=first)
    np.testing.assert_allclose(warm.beta, cold.beta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(warm.theta, cold.theta, rtol=1e-6)
    np.testing.assert_allclose(warm.cov_beta, cold.cov_beta, rtol=1e-5)
    assert warm.converged


def test_warm_start_from_a_boundary_fit_leaves_the_boundary():
    # started at theta = 0, a stationary point of d (even in theta); where it is a saddle, the fit
    # starts again from theta = 1 and finds the positive SD
    null = fit_laplace(*_discrete(2000, 40, 5, sd=0.0))
    assert null.theta[0] == 0.0 and np.isnan(null.cov_theta).all()
    y, x, codes = _discrete(2000, 40, 6, sd=0.8)
    cold, warm = fit_laplace(y, x, codes), fit_laplace(y, x, codes, start=null)
    assert cold.theta[0] > 0.3
    np.testing.assert_allclose(warm.theta, cold.theta, rtol=1e-6)


def test_warm_start_must_have_the_same_shape(team_model):
    first = fit_laplace(*team_model)
    y, x, codes = team_model
    with pytest.raises(ValueError, match="start is a fit with 5 fixed effects"):
        fit_laplace(y, x[:, :3], codes, start=first)


def test_start_from_a_sample_reaches_the_same_fit(monkeypatch):
    # with many rows the optimisation starts from a fit to a systematic sample of them
    y, x, codes = _discrete(4000, 40, 7)
    x = np.column_stack([x, np.round(np.random.default_rng(7).normal(size=4000), 3)])  # no collapsing
    lme4_start = fit_laplace(y, x, codes)
    monkeypatch.setattr(L, "START_SAMPLE", 500)
    sampled = fit_laplace(y, x, codes)
    assert sampled.cells == 4000
    np.testing.assert_allclose(sampled.beta, lme4_start.beta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sampled.theta, lme4_start.theta, rtol=1e-6)


def test_results_do_not_depend_on_the_number_of_blas_threads(team_model):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(8)
    n = 60_000  # enough rows for a BLAS reduction to be split between threads
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    team = rng.integers(0, 50, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ [-1, 0.5, -0.3, 0.2] + rng.normal(0, 0.5, 50)[team])))).astype(float)
    crossed = (*team_model[:2], [team_model[2][0], np.arange(len(team_model[0])) % 4])
    fits = {}
    for threads in (1, 2, 4):
        with threadpoolctl.threadpool_limits(threads):
            fits[threads] = (fit_laplace(y, x, [team]), fit_laplace(*crossed))
    for threads in (2, 4):
        for one, other in zip(fits[1], fits[threads], strict=True):
            np.testing.assert_array_equal(one.beta, other.beta)
            np.testing.assert_array_equal(one.cov_beta, other.cov_beta)
            np.testing.assert_array_equal(one.modes[0], other.modes[0])
            assert one.deviance == other.deviance


def test_boundary_fit_is_exactly_zero_with_the_ordinary_estimates():
    y, x, codes = _discrete(2000, 40, 5, sd=0.0)
    fit = fit_laplace(y, x, codes)
    assert fit.theta[0] == 0.0 and fit.converged
    np.testing.assert_array_equal(fit.modes[0], 0.0)
    glm = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fit.beta, glm.params, rtol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov_beta)), glm.bse, rtol=1e-6)


def test_conditional_modes_are_the_mode_given_the_estimates(team_model):
    # theta v-hat solves theta Z'(y - mu) = v at the estimates; the conditional SD is theta / sqrt(M_j)
    y, x, codes = team_model
    fit = fit_laplace(y, x, codes)
    u, sd = fit.modes[0], fit.mode_sd[0]
    mu = 1 / (1 + np.exp(-(x @ fit.beta + u[codes[0]])))
    theta = fit.theta[0]
    np.testing.assert_allclose(theta**2 * np.bincount(codes[0], weights=y - mu), u, atol=1e-9)
    k = np.bincount(codes[0], weights=mu * (1 - mu))
    np.testing.assert_allclose(sd, theta / np.sqrt(1 + theta**2 * k), rtol=1e-9)


def test_levels_without_rows_keep_their_prior(team_model):
    y, x, codes = team_model
    gapped = [np.where(codes[0] >= 3, codes[0] + 2, codes[0])]  # levels 3 and 4 have no rows
    fit, plain = fit_laplace(y, x, gapped), fit_laplace(y, x, codes)
    np.testing.assert_allclose(fit.beta, plain.beta, rtol=1e-10)
    assert fit.modes[0].size == plain.modes[0].size + 2
    assert fit.modes[0][3] == 0 and fit.mode_sd[0][3] == fit.theta[0]


# Adaptive Gauss-Hermite quadrature (nagq > 1, one grouping factor): its deviance with one node is the
# Laplace deviance, and with many it is the integral itself, computed here cluster by cluster by
# scipy's adaptive quadrature (tests/reference/data/mixed_agq.csv: 60 clusters of 3 to 5 patients)


@pytest.fixture(scope="module")
def agq_model(reference_data):
    d = reference_data("mixed_agq")
    y, x = patsy.dmatrices("error ~ after", d, return_type="dataframe")
    codes = [pd.factorize(d["cluster"], sort=True)[0]]
    return y.to_numpy().ravel(), x.to_numpy(), codes


def _rule(k):
    nodes, weights = np.polynomial.hermite_e.hermegauss(k)
    return nodes, weights / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("phi", [np.array([1.7, -0.66, -1.0]), np.array([-0.4, 0.3, 0.5])])
def test_agq_deviance_with_one_node_is_the_laplace_deviance(agq_model, phi):
    grouped = L._Grouped(L._prepare(*agq_model, BINOMIAL, None, None)[0], BINOMIAL)
    grouped._agq_v = None
    value = grouped.agq_deviance(phi, np.zeros(1), np.ones(1))[0]
    assert value == pytest.approx(grouped.point(phi).deviance, rel=1e-13)


def test_agq_deviance_is_the_integral(agq_model):
    from scipy import integrate

    y, x, codes = agq_model
    theta, beta = 1.7, np.array([-0.66, -1.0])
    grouped = L._Grouped(L._prepare(y, x, codes, BINOMIAL, None, None)[0], BINOMIAL)
    grouped._agq_v = None
    value = grouped.agq_deviance(np.r_[theta, beta], *_rule(40))[0]
    eta = x @ beta
    exact = 0.0
    for j in range(codes[0].max() + 1):
        rows = codes[0] == j

        def integrand(v, rows=rows):
            e = eta[rows] + theta * v
            return np.exp(np.sum(y[rows] * e - np.logaddexp(0, e))) * np.exp(-v * v / 2) / np.sqrt(2 * np.pi)

        exact += -2 * np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-13, limit=200)[0])
    assert value == pytest.approx(exact, rel=1e-11)
    # and it is not the Laplace deviance, which is off by more than 1 here
    assert abs(grouped.point(np.r_[theta, beta]).deviance - exact) > 1


def test_agq_fit_is_at_a_minimum_and_settles_with_the_nodes(agq_model):
    fits = {k: fit_laplace(*agq_model, nagq=k) for k in (10, 25, 40)}
    assert all(fit.converged for fit in fits.values())
    # with 25 nodes the quadrature has settled here: 40 move nothing beyond 1e-6 (10, glmer's nAGQ = 10,
    # are 2.4e-4 away from it, relative, on the intercept)
    np.testing.assert_allclose(fits[25].beta, fits[40].beta, rtol=1e-6)
    np.testing.assert_allclose(fits[25].theta, fits[40].theta, rtol=1e-6)
    # at a minimum of the AGQ deviance: moving any parameter by 1e-3 raises it
    grouped = L._Grouped(L._prepare(*agq_model, BINOMIAL, None, None)[0], BINOMIAL)
    grouped._agq_v = None
    phi = np.r_[fits[10].theta, fits[10].beta]
    at = grouped.agq_deviance(phi, *_rule(10))[0]
    for e in np.eye(phi.size):
        for sign in (-1, 1):
            assert grouped.agq_deviance(phi + sign * 1e-3 * e, *_rule(10))[0] > at


def test_agq_is_refused_with_several_factors_and_bad_node_counts(agq_model):
    y, x, codes = agq_model
    with pytest.raises(ValueError, match="single random intercept.*lme4"):
        fit_laplace(y, x, codes * 2, nagq=10)
    for nagq in (0, 2.5, True):
        with pytest.raises(ValueError, match="nagq must be a whole number"):
            fit_laplace(y, x, codes, nagq=nagq)
