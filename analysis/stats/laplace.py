"""Maximum-likelihood fit of a logistic or Poisson model with random intercepts by the Laplace approximation.

The criterion is lme4's for ``glmer(..., nAGQ = 1)`` (Bates et al. 2015, section 5 of the lme4
vignette), so that the estimates, their standard errors and the random-intercept SDs can be compared
with glmer's one for one. The family is binomial (0/1 outcomes, logit link) or Poisson (counts, log
link, with an optional offset o such as log exposure), both with their canonical link, which the
formulas below assume. With spherical random effects :math:`v \\sim N(0, I)`,
:math:`u = \\Lambda v`, :math:`\\Lambda = diag(\\theta_c)` repeated over each component's levels, Z the
0/1 indicator matrix of the levels, :math:`A = Z\\Lambda` and :math:`\\eta = o + X\\beta + Av`:

.. math:: d(\\theta, \\beta) = -2\\,\\ell(y \\mid \\hat\\eta) + \\hat v'\\hat v + \\log\\det M,
          \\qquad M = A'WA + I

where :math:`\\hat v` maximises the penalised log-likelihood :math:`\\ell - v'v/2` and
:math:`W = diag(w_i)`, :math:`w_i = d\\mu_i/d\\eta_i` (:math:`\\mu(1-\\mu)` binomial, :math:`\\mu` Poisson), at
:math:`\\hat\\eta = o + X\\beta + A\\hat v`. The log-likelihood is the full one (the Poisson one with its
:math:`-\\log y!`), as glmer's ``logLik``. How it is minimised (lme4's two stages, with PIRLS always run
to the mode from the same start and an exact gradient):

1. **PIRLS** (penalised IRLS) finds :math:`\\hat v` by Newton steps from :math:`v = 0`, each halved until
   the penalised deviance :math:`-2\\ell + v'v` decreases. That function is strictly convex in v, so the
   steps reach its unique minimum from any start (a trial step whose Poisson means overflow has an
   infinite penalised deviance and is halved like any other); starting always from 0 makes d a function of
   :math:`(\\theta, \\beta)` alone, not of which point was evaluated before (finite differences and line
   searches need that).
2. **Stage 1** (glmer's ``nAGQ = 0``): d is minimised over :math:`\\theta` alone, with :math:`\\beta` and v
   from one PIRLS over both (:math:`\\beta` unpenalised). One to three dimensions, derivative-free; it
   puts stage 2 near the optimum.
3. **Stage 2** (``nAGQ = 1``): d is minimised over :math:`(\\theta, \\beta)` by BFGS with the exact
   gradient below. d is even in each :math:`\\theta_c` (v changes sign with it), so :math:`\\theta` is
   left unconstrained and :math:`|\\theta|` reported; a :math:`\\theta_c` that ends within
   ``BOUNDARY_TOL`` of 0 is set to 0 when that does not raise d, as lme4's ``check.boundary``.
4. **Scaling**: the fixed effects are fitted on the orthonormal basis :math:`X_s = \\sqrt n\\,Q` of X's
   columns (X = QR), so that age in years beside 0/1 indicators does not make the problem
   ill-conditioned; :math:`\\beta = \\sqrt n R^{-1}\\gamma` and its covariance are transformed back
   exactly.

The gradient, by the envelope theorem for :math:`\\hat v` and implicit differentiation of its equation
:math:`A'(y-\\mu) = v`, with :math:`r = y - \\mu`, :math:`K = Z'WZ`, :math:`J_c` the diagonal 0/1
selector of component c's levels and :math:`c_i = (dw_i/d\\eta_i)\\,[AM^{-1}A']_{ii}` (how
:math:`\\log\\det M` moves with :math:`\\eta_i` through the weights; :math:`dw/d\\eta = \\mu(1-\\mu)(1-2\\mu)`
binomial, :math:`\\mu` Poisson):

.. math:: \\partial d/\\partial\\beta = -2X'r + (X - AM^{-1}A'WX)'c

.. math:: \\partial d/\\partial\\theta_c = -2r'ZJ_c\\hat v + 2\\,tr(M^{-1}\\Lambda K J_c)
          + c'\\left(ZJ_c\\hat v + AM^{-1}(J_c Z'r - \\Lambda K J_c \\hat v)\\right)

The covariance of :math:`\\hat\\beta` is the :math:`\\beta` block of :math:`(H/2)^{-1}`, H the Hessian of d
over :math:`(\\theta, \\beta)`, as glmer's ``vcov`` (``use.hessian = TRUE``); here H is the central
difference of the exact gradient, glmer takes second differences of d. When that block is not
positive definite, glmer's fallback: the covariance given :math:`\\theta` (its "var-cov estimated from
RX"). Z is never formed (level codes stand for it); M is dense, so this is meant for up to a few
hundred cluster levels.

glmer by default stops its PIRLS at a relative change of 1e-7 in the penalised deviance
(``tolPwrss``), before the mode, so the criterion it optimises is off the Laplace deviance by up to
about 2e-4 on the log-likelihood; on the study's models that moves its estimates by up to 0.06% and
its SEs by up to 0.8% from these. With ``glmerControl(tolPwrss = 1e-13)`` it optimises the same
criterion as this module and agrees to within 2.3e-4 SE (tests/stats/test_mixed.py); its Poisson fit
with an offset agrees to within 8.4e-5 SE on the estimates and 0.11% on the SEs (glmer's Hessian being
second differences of the deviance).

Reference: Bates D, Maechler M, Bolker B, Walker S. Fitting linear mixed-effects models using lme4.
J Stat Softw 2015;67(1):1-48.

>>> rng = np.random.default_rng(3)
>>> team = np.repeat(np.arange(6), 40)
>>> x = np.column_stack([np.ones(240), np.tile([0, 1], 120)])
>>> eta = -0.5 - 1.0 * x[:, 1] + rng.normal(0, 0.8, 6)[team]
>>> y = (rng.random(240) < 1 / (1 + np.exp(-eta))).astype(float)
>>> fit = fit_laplace(y, x, [team])
>>> fit.converged, fit.beta.round(2).tolist(), fit.theta.round(2).tolist()  # glmer: -0.811, -1.513; 1.163
(True, [-0.81, -1.51], [1.16])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special

# PIRLS stops when the Newton decrement g'H^-1 g (how far the penalised deviance is above its minimum,
# to second order) is below this; the last, full, step then leaves v exact to about 1e-12. Above it,
# a Newton step lowers the penalised deviance by far more than its rounding error, so halving works.
PIRLS_TOL = 1e-12
PIRLS_MAX_STEPS = 100
PIRLS_MAX_HALVINGS = 40
# Stage 2 stops when the largest gradient component (deviance per unit of the scaled parameters) is
# below this; the optimum is then within about 1e-8 in those units.
GRADIENT_TOL = 1e-6
# The fit counts as converged when the final gradient is below this (lme4 warns above 0.002 on its
# Newton-scaled gradient)
CONVERGED_GRADIENT = 1e-3
# A theta this close to 0 is tried at exactly 0 (lme4's boundary.tol is 1e-5 on its own scale)
BOUNDARY_TOL = 1e-4
# Step of the central differences of the gradient that give the Hessian (lme4's deriv12() step)
HESSIAN_STEP = 1e-4


@dataclass(frozen=True)
class LaplaceFit:
    beta: np.ndarray
    theta: np.ndarray
    cov_beta: np.ndarray
    deviance: float
    converged: bool
    fell_back: bool  # the Hessian was not positive definite: cov_beta is conditional on theta (or NaN)
    message: str


@dataclass(frozen=True)
class Family:
    """What the Laplace deviance needs of a GLM family with its canonical link: as functions of the linear
    predictor eta, ``deviance`` (-2 log-likelihood) and ``mean`` (mu); as functions of mu, ``weight``
    (w = dmu/deta, the variance under the canonical link) and ``weight_slope`` (dw/deta)."""

    name: str
    deviance: Callable[[np.ndarray, np.ndarray], float]
    mean: Callable[[np.ndarray], np.ndarray]
    weight: Callable[[np.ndarray], np.ndarray]
    weight_slope: Callable[[np.ndarray], np.ndarray]


def _binomial_deviance(y: np.ndarray, eta: np.ndarray) -> float:
    """-2 log-likelihood of 0/1 outcomes at the linear predictor."""
    return float(-2 * np.sum(y * eta - np.logaddexp(0.0, eta)))


# An overflowing trial point of PIRLS or of the line search gives infinite means and an infinite
# deviance, which the step halving (or the line search) rejects: no warning is due.


def _poisson_mean(eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(eta)


def _poisson_deviance(y: np.ndarray, eta: np.ndarray) -> float:
    """-2 log-likelihood of counts at the linear predictor, with the log y! term as glmer's logLik."""
    with np.errstate(over="ignore"):
        return float(-2 * np.sum(y * eta - _poisson_mean(eta) - special.gammaln(y + 1)))


BINOMIAL = Family(
    "binomial",
    _binomial_deviance,
    special.expit,
    lambda mu: mu * (1 - mu),
    lambda mu: mu * (1 - mu) * (1 - 2 * mu),
)
POISSON = Family("poisson", _poisson_deviance, _poisson_mean, lambda mu: mu, lambda mu: mu)
FAMILIES = {family.name: family for family in (BINOMIAL, POISSON)}


class _Indicators:
    """Z, the 0/1 matrix of the random-intercept levels, kept as one column index per row and component.

    Zv is a sum of lookups and Z'r, Z'WZ are bincounts: far quicker than sparse matrix products at
    this size, with no n x q array, and no multithreaded BLAS call (which thrashes on a busy machine).
    """

    def __init__(self, codes: list[np.ndarray]):
        sizes = [int(c.max()) + 1 for c in codes]
        starts = np.cumsum([0, *sizes[:-1]])
        self.columns = np.column_stack([start + c for start, c in zip(starts, codes, strict=True)])
        self.q = int(sum(sizes))
        self.component = np.repeat(np.arange(len(codes)), sizes)  # the theta of each column

    def times(self, v: np.ndarray) -> np.ndarray:
        """Zv."""
        return v[self.columns].sum(axis=1)

    def t_times(self, r: np.ndarray) -> np.ndarray:
        """Z'r, r a vector or a matrix (n x p)."""
        flat = r.reshape(len(r), -1)
        out = np.zeros((self.q, flat.shape[1]))
        for c in self.columns.T:
            for j in range(flat.shape[1]):
                out[:, j] += np.bincount(c, weights=flat[:, j], minlength=self.q)
        return out.reshape((self.q, *r.shape[1:]))

    def gram(self, w: np.ndarray) -> np.ndarray:
        """Z'WZ, W = diag(w)."""
        q = self.q
        return sum(
            np.bincount(ci * q + cj, weights=w, minlength=q * q).reshape(q, q)
            for ci in self.columns.T
            for cj in self.columns.T
        )


def _newton_step(information: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """The Newton step, or, where the information is singular, the minimum-norm one.

    When the mode lies at infinity (a group without events, outcomes separated by a covariate) the
    weights of those rows vanish as PIRLS follows it and the information loses rank; the minimum-norm
    step stops moving in the directions that no longer carry information instead of failing. That
    situation is the callers' to report (as separation, or a group without events), so scipy's warning
    about the ill-conditioned matrix on the way there is not passed on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        try:
            return linalg.solve(information, gradient, assume_a="pos")
        except linalg.LinAlgError:
            return linalg.lstsq(information, gradient)[0]


class _Deviance:
    """The Laplace deviance d and its gradient over (theta, gamma), gamma the scaled fixed effects."""

    def __init__(
        self,
        y: np.ndarray,
        x: np.ndarray,
        codes: list[np.ndarray],
        family: Family = BINOMIAL,
        offset: np.ndarray | None = None,
    ):
        self.y = y
        n = y.size
        self.family = family
        self.offset = np.zeros(n) if offset is None else offset
        q_factor, r_factor = np.linalg.qr(x)
        self.x = math.sqrt(n) * q_factor  # X_s: orthogonal columns of squared length n
        self.to_beta = math.sqrt(n) * linalg.inv(r_factor)  # beta = to_beta @ gamma
        self.z = _Indicators(codes)
        self.k = len(codes)
        self.pirls_converged = True  # at the last (theta, gamma) evaluated

    def _pirls(self, fixed: np.ndarray, lam: np.ndarray, with_fixed: bool) -> tuple[np.ndarray, np.ndarray, bool]:
        """The mode of v given (theta, beta), or of (beta, v) jointly given theta (``with_fixed``, stage 1).

        Minimises the penalised deviance -2 log L(eta) + v'v, eta = o + fixed [+ X_s gamma] + Z Lambda v,
        by Newton steps from 0, each halved until that deviance decreases. Returns the fixed part (empty
        unless ``with_fixed``), v, and whether the Newton decrement fell below ``PIRLS_TOL``.
        """
        x = self.x if with_fixed else self.x[:, :0]
        p = x.shape[1]
        b = np.zeros(p + self.z.q)
        family = self.family

        def linear_predictor(b):
            return self.offset + fixed + x @ b[:p] + self.z.times(lam * b[p:])

        eta = linear_predictor(b)
        objective = family.deviance(self.y, eta)
        for _ in range(PIRLS_MAX_STEPS):
            mu = family.mean(eta)
            w = family.weight(mu)
            r = self.y - mu
            gradient = np.r_[x.T @ r, lam * self.z.t_times(r) - b[p:]]  # of (log L - v'v/2)
            m = lam[:, None] * self.z.gram(w) * lam[None, :] + np.eye(self.z.q)
            cross = lam[:, None] * self.z.t_times(w[:, None] * x)  # Lambda Z'WX
            information = np.block([[x.T @ (w[:, None] * x), cross.T], [cross, m]])
            step = _newton_step(information, gradient)
            if gradient @ step < PIRLS_TOL:
                b = b + step
                return b[:p], b[p:], True
            for _ in range(PIRLS_MAX_HALVINGS):
                new_eta = linear_predictor(b + step)
                new_objective = family.deviance(self.y, new_eta) + np.sum((b + step)[p:] ** 2)
                if new_objective <= objective:
                    break
                step = step / 2
            else:
                break
            b, eta, objective = b + step, new_eta, new_objective
        return b[:p], b[p:], False

    def stage1(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """d with gamma and v from one PIRLS over both (glmer's nAGQ = 0), and that gamma."""
        lam = theta[self.z.component]
        gamma, v, _ = self._pirls(np.zeros(self.y.size), lam, with_fixed=True)
        eta = self.offset + self.x @ gamma + self.z.times(lam * v)
        w = self.family.weight(self.family.mean(eta))
        m = lam[:, None] * self.z.gram(w) * lam[None, :] + np.eye(self.z.q)
        return self.family.deviance(self.y, eta) + v @ v + np.linalg.slogdet(m)[1], gamma

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """d(theta, gamma) and its gradient (formulas in the module docstring)."""
        theta, gamma = params[: self.k], params[self.k :]
        lam = theta[self.z.component]
        fixed = self.x @ gamma
        _, v, self.pirls_converged = self._pirls(fixed, lam, with_fixed=False)
        eta = self.offset + fixed + self.z.times(lam * v)
        mu = self.family.mean(eta)
        w = self.family.weight(mu)
        r = self.y - mu
        kzz = self.z.gram(w)  # K = Z'WZ
        m = lam[:, None] * kzz * lam[None, :] + np.eye(self.z.q)
        factor = linalg.cho_factor(m)
        deviance = self.family.deviance(self.y, eta) + v @ v + 2 * np.sum(np.log(np.diag(factor[0])))

        m_inv = linalg.cho_solve(factor, np.eye(self.z.q))
        lam_m_lam = lam[:, None] * m_inv * lam[None, :]
        columns = self.z.columns
        # diag(A M^-1 A') row by row: the entries of Lambda M^-1 Lambda at each row's pairs of levels
        leverage = sum(lam_m_lam[columns[:, i], columns[:, j]] for i in range(self.k) for j in range(self.k))
        c = self.family.weight_slope(mu) * leverage

        def a_times(u):  # A u = Z Lambda u
            return self.z.times(lam * u)

        atwx = lam[:, None] * self.z.t_times(w[:, None] * self.x)  # A'WX_s
        deta_dgamma = self.x - np.column_stack([a_times(col) for col in (m_inv @ atwx).T])
        gradient_gamma = -2 * self.x.T @ r + deta_dgamma.T @ c

        zr = self.z.t_times(r)
        lam_k = lam[:, None] * kzz
        trace_terms = np.diag(m_inv @ lam_k)
        gradient_theta = np.empty(self.k)
        for j in range(self.k):
            mask = self.z.component == j
            jv = np.where(mask, v, 0.0)
            zjv = self.z.times(jv)
            deta = zjv + a_times(m_inv @ (np.where(mask, zr, 0.0) - lam_k @ jv))
            gradient_theta[j] = -2 * r @ zjv + 2 * trace_terms[mask].sum() + c @ deta
        return float(deviance), np.r_[gradient_theta, gradient_gamma]

    def conditional_cov_gamma(self, params: np.ndarray) -> np.ndarray:
        """Covariance of gamma given theta: the gamma block of the inverse joint information of (gamma, v),
        glmer's fallback ("var-cov estimated from RX") when the Hessian is not positive definite."""
        lam = params[: self.k][self.z.component]
        fixed = self.x @ params[self.k :]
        _, v, _ = self._pirls(fixed, lam, with_fixed=False)
        w = self.family.weight(self.family.mean(self.offset + fixed + self.z.times(lam * v)))
        m = lam[:, None] * self.z.gram(w) * lam[None, :] + np.eye(self.z.q)
        cross = lam[:, None] * self.z.t_times(w[:, None] * self.x)
        information = np.block([[self.x.T @ (w[:, None] * self.x), cross.T], [cross, m]])
        p = self.x.shape[1]
        return np.linalg.inv(information)[:p, :p]


def _hessian(gradient, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of the gradient, symmetrised."""
    columns = [(gradient(x + h * e) - gradient(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    hess = np.column_stack(columns)
    return (hess + hess.T) / 2


def fit_laplace(
    y: np.ndarray,
    x: np.ndarray,
    codes: list[np.ndarray],
    *,
    family: str = "binomial",
    offset: np.ndarray | None = None,
) -> LaplaceFit:
    """Fit by Laplace ML; ``codes`` holds one integer level code (0, 1, ...) per row for each random
    intercept, ``x`` the fixed-effect design (full column rank), ``family`` is "binomial" (0/1 ``y``) or
    "poisson" (counts), ``offset`` a known term of the linear predictor (log exposure)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    deviance = _Deviance(
        np.asarray(y, dtype=float),
        np.asarray(x, dtype=float),
        [np.asarray(c) for c in codes],
        FAMILIES[family],
        None if offset is None else np.asarray(offset, dtype=float),
    )
    k = len(codes)

    # stage 1 from lme4's start theta = 1
    first = optimize.minimize(
        lambda t: deviance.stage1(t)[0], np.ones(k), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-4}
    )
    start = np.r_[first.x, deviance.stage1(first.x)[1]]

    # stage 2; a theta stopped near 0 is tried at 0 (d is even in theta, so 0 is a stationary point)
    best = optimize.minimize(deviance, start, jac=True, method="BFGS", options={"gtol": GRADIENT_TOL})
    params, value = best.x.copy(), float(best.fun)
    for j in np.flatnonzero(np.abs(params[:k]) < BOUNDARY_TOL):
        candidate = params.copy()
        candidate[j] = 0.0
        candidate_value = deviance(candidate)[0]
        if candidate_value <= value:
            params, value = candidate, candidate_value
    params[:k] = np.abs(params[:k])
    largest_gradient = float(np.max(np.abs(deviance(params)[1])))
    converged = largest_gradient < CONVERGED_GRADIENT and deviance.pirls_converged
    if not deviance.pirls_converged:
        message = "the penalised IRLS for the random effects did not converge at the estimates"
    elif not converged:
        message = f"{best.message}; largest gradient component {largest_gradient:.2g}"
    else:
        message = str(best.message)

    hess = _hessian(lambda p: deviance(p)[1], params, HESSIAN_STEP)
    to_params = linalg.block_diag(np.eye(k), deviance.to_beta)  # (theta, gamma) -> (theta, beta)
    cov_beta = _hessian_cov_beta(hess, to_params, k)
    fell_back = cov_beta is None
    if fell_back:
        try:
            cov_beta = deviance.to_beta @ deviance.conditional_cov_gamma(params) @ deviance.to_beta.T
        except np.linalg.LinAlgError:
            cov_beta = None
        # separated data, or a group without events: the information is singular (exactly, or to
        # rounding, when its inverse has variances that are not positive) and no standard error exists
        if cov_beta is None or not np.all(np.diag(cov_beta) > 0):
            cov_beta = np.full((x.shape[1], x.shape[1]), np.nan)
    return LaplaceFit(
        beta=deviance.to_beta @ params[k:],
        theta=params[:k],
        cov_beta=cov_beta,
        deviance=value,
        converged=converged,
        fell_back=fell_back,
        message=message,
    )


def _hessian_cov_beta(hess: np.ndarray, to_params: np.ndarray, k: int) -> np.ndarray | None:
    """The beta block of 2 H^-1 in the original parameters, or None where glmer would fall back (H
    singular or not finite, or that block not positive definite)."""
    if not np.all(np.isfinite(hess)):
        return None
    try:
        cov = to_params @ (2 * linalg.inv(hess)) @ to_params.T
    except (linalg.LinAlgError, ValueError):
        return None
    cov_beta = (cov[k:, k:] + cov[k:, k:].T) / 2
    if not np.all(np.isfinite(cov_beta)) or np.linalg.eigvalsh(cov_beta).min() <= 0:
        return None
    return cov_beta
