"""Maximum-likelihood fit of a logistic model with random intercepts by the Laplace approximation.

The criterion is lme4's for ``glmer(..., nAGQ = 1)`` (Bates et al. 2015, section 5 of the lme4
vignette), so that the estimates, their standard errors and the random-intercept SDs can be compared
with glmer's one for one. With spherical random effects :math:`v \\sim N(0, I)`, :math:`u = \\Lambda v`,
:math:`\\Lambda = diag(\\theta_c)` repeated over each component's levels and
:math:`\\eta = X\\beta + Z\\Lambda v`:

.. math:: d(\\theta, \\beta) = -2\\,\\ell(y \\mid \\eta(\\hat v)) + \\hat v'\\hat v
          + \\log\\det(\\Lambda Z' W Z \\Lambda + I)

where :math:`\\hat v` maximises :math:`\\ell - v'v/2` (penalised IRLS, Newton steps) and :math:`W` holds
the binomial weights :math:`\\mu(1-\\mu)` at :math:`\\hat v`. :math:`d` is minimised over
:math:`(\\theta \\ge 0, \\beta)`; the covariance of :math:`\\hat\\beta` is the :math:`\\beta` block of
:math:`(H/2)^{-1}`, H the finite-difference Hessian of d over :math:`(\\theta, \\beta)`, as glmer's
``vcov`` (``use.hessian = TRUE``). Dense linear algebra: meant for up to a few hundred cluster levels.

Reference: Bates D, Maechler M, Bolker B, Walker S. J Stat Softw 2015;67(1):1-48.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

# lme4's deriv12() step for the Hessian of the deviance
HESSIAN_STEP = 1e-4
# Penalised IRLS stops when the Newton step on v is this small (the deviance is then smooth enough
# for the finite differences above)
PIRLS_TOL = 1e-11
PIRLS_MAX_STEPS = 100


@dataclass(frozen=True)
class LaplaceFit:
    beta: np.ndarray
    theta: np.ndarray
    cov_beta: np.ndarray
    deviance: float
    converged: bool
    fell_back: bool  # the Hessian was not positive definite: cov_beta is conditional on theta (or NaN)
    message: str


class _Deviance:
    """The Laplace deviance as a function of (theta, beta), remembering the last mode as a warm start.

    Z is never formed: each random intercept is a vector of level codes, so Z'r is a bincount and
    Lambda Z'WZ Lambda is built block by block from weighted (cross-)counts. Besides saving memory, this
    keeps the work out of multithreaded BLAS calls, which thrash on a busy shared machine.
    """

    def __init__(self, y: np.ndarray, x: np.ndarray, codes: list[np.ndarray]):
        self.y, self.x, self.codes = y, x, codes
        self.sizes = [int(c.max()) + 1 for c in codes]
        self.starts = np.r_[0, np.cumsum(self.sizes)]
        self.v = np.zeros(int(self.starts[-1]))

    def _zl_v(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        return sum(
            t * v[a:b][c] for t, c, a, b in zip(theta, self.codes, self.starts[:-1], self.starts[1:], strict=True)
        )

    def _zl_t(self, theta: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [t * np.bincount(c, weights=r, minlength=m) for t, c, m in zip(theta, self.codes, self.sizes, strict=True)]
        )

    def _information(self, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Lambda Z'WZ Lambda + I."""
        q = int(self.starts[-1])
        out = np.eye(q)
        for i, (ci, mi, ai) in enumerate(zip(self.codes, self.sizes, self.starts[:-1], strict=True)):
            out[ai : ai + mi, ai : ai + mi] += np.diag(theta[i] ** 2 * np.bincount(ci, weights=w, minlength=mi))
            for j in range(i):
                cj, mj, aj = self.codes[j], self.sizes[j], self.starts[j]
                block = np.bincount(ci * mj + cj, weights=w, minlength=mi * mj).reshape(mi, mj) * theta[i] * theta[j]
                out[ai : ai + mi, aj : aj + mj] += block
                out[aj : aj + mj, ai : ai + mi] += block.T
        return out

    def _mode(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The conditional mode of v, the linear predictor there, and theta."""
        k = len(self.codes)
        theta, beta = params[:k], params[k:]
        offset = self.x @ beta
        v = self.v.copy()
        for _ in range(PIRLS_MAX_STEPS):
            mu = special.expit(offset + self._zl_v(theta, v))
            gradient = self._zl_t(theta, self.y - mu) - v
            step = np.linalg.solve(self._information(theta, mu * (1 - mu)), gradient)
            v = v + step
            if np.max(np.abs(step)) < PIRLS_TOL:
                break
        self.v = v
        return v, offset + self._zl_v(theta, v), theta

    def __call__(self, params: np.ndarray) -> float:
        v, eta, theta = self._mode(params)
        mu = special.expit(eta)
        loglik = np.sum(self.y * eta - np.logaddexp(0.0, eta))
        _, logdet = np.linalg.slogdet(self._information(theta, mu * (1 - mu)))
        return float(-2 * loglik + v @ v + logdet)

    def conditional_cov_beta(self, params: np.ndarray) -> np.ndarray:
        """Covariance of beta given theta: the beta block of the inverse joint information of (beta, v),
        glmer's fallback ("var-cov estimated from RX") when the Hessian is not positive definite."""
        _, eta, theta = self._mode(params)
        mu = special.expit(eta)
        w = mu * (1 - mu)
        p = self.x.shape[1]
        cross = np.column_stack([self._zl_t(theta, w * self.x[:, j]) for j in range(p)])  # Lambda Z'WX
        information = np.block([[(self.x * w[:, None]).T @ self.x, cross.T], [cross, self._information(theta, w)]])
        return np.linalg.inv(information)[:p, :p]


def _hessian(f, x: np.ndarray, h: float) -> np.ndarray:
    k = x.size
    f0 = f(x)
    hess = np.empty((k, k))
    e = np.eye(k) * h
    for i in range(k):
        hess[i, i] = (f(x + e[i]) - 2 * f0 + f(x - e[i])) / h**2
        for j in range(i):
            value = (f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j]) + f(x - e[i] - e[j])) / (4 * h * h)
            hess[i, j] = hess[j, i] = value
    return hess


def fit_laplace(y: np.ndarray, x: np.ndarray, codes: list[np.ndarray], beta_start: np.ndarray) -> LaplaceFit:
    """Fit by Laplace ML; ``codes`` holds one integer level code per row for each random intercept."""
    deviance = _Deviance(np.asarray(y, dtype=float), np.asarray(x, dtype=float), [np.asarray(c) for c in codes])
    k = len(codes)
    # theta starts at 1 as in lme4; beta at the ordinary logistic estimates
    x0 = np.r_[np.ones(k), beta_start]
    bounds = [(0.0, None)] * k + [(None, None)] * beta_start.size
    result = optimize.minimize(
        deviance,
        x0,
        method="L-BFGS-B",
        jac="3-point",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000},
    )
    # a derivative-free polish from the L-BFGS-B point guards against a stop on a flat stretch
    polished = optimize.minimize(
        deviance, result.x, method="Powell", bounds=bounds, options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20000}
    )
    best = polished if polished.fun <= result.fun else result
    params = best.x.copy()
    hess = _hessian(deviance, params, HESSIAN_STEP)
    fell_back = not np.all(np.isfinite(hess)) or bool(np.linalg.eigvalsh(hess).min() <= 0)
    try:
        cov_beta = deviance.conditional_cov_beta(params) if fell_back else np.linalg.inv(hess / 2)[k:, k:]
    except np.linalg.LinAlgError:
        # separated data: the information is singular and no standard error exists
        cov_beta = np.full((params.size - k, params.size - k), np.nan)
    return LaplaceFit(
        beta=params[k:],
        theta=params[:k],
        cov_beta=cov_beta,
        deviance=float(best.fun),
        converged=bool(result.success or polished.success),
        fell_back=fell_back,
        message=str(best.message),
    )
