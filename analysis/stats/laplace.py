"""Maximum-likelihood fit of a logistic or Poisson model with random intercepts by the Laplace approximation.

The criterion is lme4's for ``glmer(..., nAGQ = 1)`` (Bates et al. 2015, section 5 of the lme4
vignette), so that the estimates, their standard errors and the random-intercept SDs can be compared
with glmer's one for one. The family is binomial (0/1 outcomes, or events out of trials, logit link) or
Poisson (counts, log link, with an optional offset o such as log exposure), both with their canonical
link, which the formulas below assume. Each row i (or cell: see "Collapsing") has an outcome
:math:`y_i` and a number of trials :math:`n_i` (1 for a 0/1 outcome or a count), so that the
log-likelihood is :math:`\\ell = \\sum_i y_i\\eta_i - n_i b(\\eta_i)` plus a constant, with
:math:`b(\\eta) = \\log(1 + e^\\eta)` (binomial) or :math:`e^\\eta` (Poisson). With spherical random
effects :math:`v \\sim N(0, I)`, :math:`u = \\Lambda v`, :math:`\\Lambda = diag(\\theta_c)` repeated over
each component's levels, Z the 0/1 indicator matrix of the levels, :math:`A = Z\\Lambda` and
:math:`\\eta = o + X\\beta + Av`:

.. math:: d(\\theta, \\beta) = -2\\,\\ell(y \\mid \\hat\\eta) + \\hat v'\\hat v + \\log\\det M,
          \\qquad M = A'WA + I

where :math:`\\hat v` maximises the penalised log-likelihood :math:`\\ell - v'v/2` and
:math:`W = diag(w_i)`, :math:`w_i = n_i b''(\\eta_i)` (:math:`n\\mu(1-\\mu)` binomial, :math:`n\\mu` Poisson),
at :math:`\\hat\\eta = o + X\\beta + A\\hat v`. The log-likelihood is the full one, as glmer's ``logLik``
(with :math:`\\log\\binom{n}{y}` for events out of trials, :math:`-\\log y!` for counts).

**PIRLS** (penalised IRLS, section 5.2 of the vignette) finds :math:`\\hat v` given
:math:`(\\theta, \\beta)`, or :math:`(\\beta, \\hat v)` jointly given :math:`\\theta` (glmer's
``nAGQ = 0``), by Newton steps, each halved until the penalised deviance :math:`-2\\ell + v'v` decreases
(with one grouping factor and :math:`\\beta` given, each cluster's part of the step on its own: each
cluster's mode is then a problem of its own). That function is strictly convex, so the steps reach its
unique minimum from any start (a trial step whose Poisson means overflow has an infinite penalised
deviance and is halved like any other); PIRLS stops when the Newton decrement is below ``PIRLS_TOL`` and
takes that last step, which leaves v exact to rounding, so d is a function of :math:`(\\theta, \\beta)`
whatever the start. The fixed effects enter a
joint step through the Schur complement of M in the joint information,
:math:`S = X'WX - X'WA\\,M^{-1}A'WX`. There is one PIRLS; what differs between the two engines below is
how M is stored and solved.

**One grouping factor** (``_Grouped``, used whenever there is a single random intercept). Then
:math:`Z'WZ = diag(K_j)`, :math:`K_j = \\sum_{i \\in j} w_i`, so M is diagonal,
:math:`M_j = 1 + \\theta^2 K_j`: every solve is a division, :math:`\\log\\det M = \\sum_j \\log M_j`, and the
cluster sums are ``np.add.reduceat`` over the rows sorted by cluster (no loop over clusters, no
(p+q)-square matrix). d is then a sum over clusters of terms in one scalar mode each, which gives its
exact gradient and Hessian over :math:`\\varphi = (\\theta, \\beta)` in closed form. Per cluster, with
:math:`e_i = (\\hat v_j, x_i)` (the derivative of :math:`\\eta_i` at fixed v), :math:`u` the unit vector
of :math:`\\theta`, :math:`r_i = y_i - n_i\\mu_i`, :math:`R_j = \\sum r_i`, :math:`w', w''` the derivatives
of :math:`w` in :math:`\\eta`, :math:`s = \\sum w_i e_i`, :math:`s^{(1)} = \\sum w'_i e_i`:

.. math:: \\partial\\hat v_j/\\partial\\varphi = (u R_j - \\theta s)/M_j, \\qquad
          E_i = e_i + \\theta\\,\\partial\\hat v_j/\\partial\\varphi, \\qquad T_j = \\sum w'_i E_i

.. math:: \\partial d/\\partial\\varphi = \\sum_j \\Big[-2\\sum_{i \\in j} r_i e_i
          + (2\\theta K_j u + \\theta^2 T_j)/M_j\\Big]

and the Hessian differentiates these once more (``_Grouped._point``, where every term is written out:
the first term gives :math:`2\\sum w_i e_i e_i' - 2\\sum_j M_j\\,\\hat v_\\varphi \\hat v_\\varphi'`, the log
determinant terms in :math:`w''` and :math:`\\partial^2\\hat v/\\partial\\varphi^2`). d is minimised over
:math:`(\\theta, \\beta)` by Newton's method with that Hessian (its negative eigenvalues, far from the
optimum, made positive) and a backtracking line search; the step is taken in :math:`\\log\\theta` unless
it heads for :math:`\\theta = 0` (``_newton_path`` says why). It starts from :math:`\\theta = 1` (lme4's
start) and the :math:`\\beta` of the joint PIRLS there; with more than ``2 * START_SAMPLE`` rows, from
the fit to a systematic sample of ``START_SAMPLE`` of them, a few standard errors from the optimum,
so that only two or three steps pass over all the rows; or from a previous fit (``start``, for a power
simulation's refits). Each PIRLS inside starts from the first-order prediction of the new mode, so it
takes one or two Newton steps. Newton stops when its decrement is below ``NEWTON_TOL``.

**Several random intercepts** (``_Deviance``, crossed or nested factors; only these). Z'WZ has
off-diagonal blocks and M is dense (q x q, a few hundred levels at most). lme4's two stages: stage 1
minimises d over :math:`\\theta` alone (Nelder-Mead) with :math:`\\beta` and v from the joint PIRLS;
stage 2 minimises d over :math:`(\\theta, \\beta)` by BFGS with the exact gradient, on the orthonormal
basis :math:`X_s = \\sqrt n\\,Q` of X's columns (X = QR, by two Cholesky passes) so that age in years
beside 0/1 indicators does not make it ill-conditioned (Newton's method, above, needs no such basis:
its steps do not depend on the scale of the covariates). With :math:`K = Z'WZ`, :math:`J_c` the diagonal
0/1 selector of component c's levels and :math:`c_i = w'_i\\,[AM^{-1}A']_{ii}` (how
:math:`\\log\\det M` moves with :math:`\\eta_i` through the weights):

.. math:: \\partial d/\\partial\\beta = -2X'r + (X - AM^{-1}A'WX)'c

.. math:: \\partial d/\\partial\\theta_c = -2r'ZJ_c\\hat v + 2\\,tr(M^{-1}\\Lambda K J_c)
          + c'\\left(ZJ_c\\hat v + AM^{-1}(J_c Z'r - \\Lambda K J_c \\hat v)\\right)

(with one factor these are the gradient above). Its Hessian is the central difference of that
gradient.

**Both**: d is even in each :math:`\\theta_c` (v changes sign with it), so :math:`\\theta` is left
unconstrained and :math:`|\\theta|` reported; a :math:`\\theta_c` that ends within ``BOUNDARY_TOL`` of 0
is set to 0 when that does not raise d, as lme4's ``check.boundary`` (a singular fit); with one factor,
where d has negative curvature in :math:`\\theta` at 0 (a saddle, reached only from a start at 0), the
fit starts again from :math:`\\theta = 1`. The covariance of
:math:`\\hat\\beta` is the :math:`\\beta` block of :math:`(H/2)^{-1}`, H the Hessian of d over
:math:`(\\theta, \\beta)`, as glmer's ``vcov`` (``use.hessian = TRUE``); glmer takes second differences
of d. When that block is not positive definite, glmer's fallback: the covariance given
:math:`\\theta`, :math:`S^{-1}` (its "var-cov estimated from RX"). The :math:`\\theta` block of the
same matrix gives a Wald standard error for each SD, and :math:`\\hat u = \\Lambda\\hat v` with the
conditional SDs :math:`\\sqrt{diag(\\Lambda M^{-1}\\Lambda)}` are the conditional modes of the random
effects and their conditional SDs, as lme4's ``ranef(condVar = TRUE)``.

**Adaptive Gauss-Hermite quadrature** (``nagq`` = K > 1, glmer's ``nAGQ``; one grouping factor only,
as in lme4, where each cluster's integral is one-dimensional). The likelihood of cluster j is
:math:`L_j = \\int \\exp(\\ell_j(v))\\,\\phi(v)\\,dv`, :math:`\\ell_j(v)` its rows' log-likelihood at
:math:`\\eta_i = o_i + x_i'\\beta + \\theta v`. Centred at the mode :math:`\\hat v_j` (PIRLS, as above) and
scaled by :math:`s_j = M_j^{-1/2}`, the conditional SD of v there (Pinheiro and Bates 1995; section
5 of the lme4 vignette), with :math:`z_k, w_k` the K-point Gauss-Hermite rule for the standard normal
(:math:`\\sum_k w_k f(z_k) \\approx E f(Z)`, numpy's ``hermegauss`` weights divided by
:math:`\\sqrt{2\\pi}`, lme4's ``GHrule``):

.. math:: -2\\log L_j \\approx \\log M_j - 2\\log\\sum_k w_k \\exp(-D_{jk}/2), \\qquad
          D_{jk} = -2\\ell_j(\\hat v_j + s_j z_k) + (\\hat v_j + s_j z_k)^2 - z_k^2

and the deviance is their sum (plus the constant). With K = 1 (:math:`z = 0, w = 1`) it is the Laplace
deviance above. It is minimised over :math:`(\\theta, \\beta)` by Newton's method from the Laplace fit,
its gradient and Hessian by central differences in steps of the Laplace SEs (``AGQ_GRADIENT_STEP``,
``AGQ_HESSIAN_STEP``; glmer too takes its Hessian by finite differences), with the same line search;
the covariance is :math:`2H^{-1}` as above. Reference: Pinheiro JC, Bates DM. Approximations to the
log-likelihood function in the nonlinear mixed-effects model. J Comput Graph Stat 1995;4:12-35.

**Collapsing**: rows with the same covariates, offset and levels have the same :math:`\\eta`; their
log-likelihood terms add up to one term with :math:`y` and :math:`n` summed (Bernoulli rows to a binomial
with n trials, counts to a Poisson count over n rows), exactly, so they are fitted as one cell when that
at least halves the rows. Estimates and deviance are those of the rows.

**Reproducibility**: every sum over rows is numpy's own (``reduceat``, ``sum``, ``einsum``), never a BLAS
call, whose multithreaded reductions change the last bits with the number of threads (LAPACK sees only
matrices of the size of the fixed effects or the levels): the results are identical whatever the number
of BLAS threads (tests/stats/test_laplace.py). Time and memory: tests/benchmarks/RESULTS.md.

glmer by default stops its PIRLS at a relative change of 1e-7 in the penalised deviance
(``tolPwrss``), before the mode, so the criterion it optimises is off the Laplace deviance by up to
about 2e-4 on the log-likelihood; on the study's models that moves its estimates by up to 0.06% and
its SEs by up to 0.8% from these. With ``glmerControl(tolPwrss = 1e-13)`` it optimises the same
criterion as this module and agrees to within 5e-4 SE (tests/stats/test_mixed.py).

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
>>> again = fit_laplace(y, x, [team], start=fit)  # a warm start, as for a power simulation's refits
>>> bool(np.allclose(again.beta, fit.beta, atol=1e-8)), fit.cells  # 2 covariate patterns x 6 teams
(True, 12)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special

# PIRLS stops when the Newton decrement g'H^-1 g (how far the penalised deviance is above its minimum,
# to second order) is below this; the last, full, step then leaves v exact to about 1e-12. Above it,
# a Newton step lowers the penalised deviance by far more than its rounding error, so halving works.
PIRLS_TOL = 1e-12
PIRLS_MAX_STEPS = 100
PIRLS_MAX_HALVINGS = 40
# A trial point is accepted when its (penalised) deviance is at most this much above, relative to its
# size: the rounding of a sum over a million rows, so that steps near the optimum are not halved away.
ROUNDING = 1e-13
# One factor: Newton stops when its decrement g'H^-1 g is below this (d within 1e-10 of its minimum,
# every parameter within about 1e-5 of its standard error); the fit to a sample that gives the start
# with many rows stops at START_TOL (within about 0.01 of a standard error)
NEWTON_TOL = 1e-10
START_TOL = 1e-4
NEWTON_MAX_STEPS = 100
# Armijo's sufficient decrease for the line search
ARMIJO = 1e-4
# The largest factor by which one Newton step in log theta may change theta
MAX_THETA_FACTOR = 10.0
# Several factors: stage 2 stops when the largest gradient component (deviance per unit of the scaled
# parameters) is below this; the optimum is then within about 1e-8 in those units.
GRADIENT_TOL = 1e-6
# The fit counts as converged when the final gradient is below this (lme4 warns above 0.002 on its
# Newton-scaled gradient); with one factor, when the Newton decrement is below its square
CONVERGED_GRADIENT = 1e-3
# A theta this close to 0 is tried at exactly 0 (lme4's boundary.tol is 1e-5 on its own scale)
BOUNDARY_TOL = 1e-4
# Step of the central differences of the gradient that give the Hessian with several factors (lme4's
# deriv12() step)
HESSIAN_STEP = 1e-4
# AGQ (nagq > 1): Newton stops when its decrement g'H^-1 g is below this; its gradient and Hessian are
# central differences with steps of these multiples of the Laplace SEs (the deviance is exact to about
# 1e-12 relative, so the gradient is good to about 1e-6 and the Hessian to about 1e-4 relative)
AGQ_TOL = 1e-9
AGQ_GRADIENT_STEP = 1e-4
AGQ_HESSIAN_STEP = 1e-2
# Rows are collapsed into cells when there are at most this many cells per row; beyond twice this many
# rows, a sample of this many is looked at first, and rows are left as they are when more than this
# share of the sample's are distinct
COLLAPSE_RATIO = 0.5
COLLAPSE_SAMPLE = 65_536
COLLAPSE_SAMPLE_DISTINCT = 0.9
# With one factor and more than twice this many cells, the optimisation starts from a fit to a
# systematic sample of about this many
START_SAMPLE = 50_000


@dataclass(frozen=True)
class LaplaceFit:
    """The fit: ``beta`` (fixed effects), ``theta`` (one random-intercept SD per component),
    ``cov_beta``, ``deviance`` (-2 log-likelihood, Laplace), whether it ``converged``, whether the
    Hessian ``fell_back`` (``cov_beta`` is then conditional on theta, or NaN), ``message``;
    ``cov_theta`` (Wald covariance of theta from the same Hessian, NaN when it fell back or a theta is
    0), ``modes`` and ``mode_sd`` (per component, by level code: conditional modes of the random
    intercepts and their conditional SDs), ``cells`` (rows after collapsing), ``engine``, and
    ``fitted``, the fitted mean of each cell given the modes (a probability, or an expected count)."""

    beta: np.ndarray
    theta: np.ndarray
    cov_beta: np.ndarray
    deviance: float
    converged: bool
    fell_back: bool  # the Hessian was not positive definite: cov_beta is conditional on theta (or NaN)
    message: str
    cov_theta: np.ndarray = field(default_factory=lambda: np.full((0, 0), np.nan))
    modes: tuple[np.ndarray, ...] = ()
    mode_sd: tuple[np.ndarray, ...] = ()
    cells: int = 0
    engine: str = ""
    fitted: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class _Moments:
    """A family at the linear predictor: ``terms``, the deviance of each row without its constant,
    -2 (y eta - n b(eta)); the mean per trial mu = b'(eta); w = n b''(eta), and its derivatives
    w1 = n b''' and w2 = n b''''."""

    terms: np.ndarray
    mu: np.ndarray | None = None
    w: np.ndarray | None = None
    w1: np.ndarray | None = None
    w2: np.ndarray | None = None

    @property
    def deviance(self) -> float:
        return float(np.sum(self.terms))


@dataclass(frozen=True)
class Family:
    """A GLM family with its canonical link: ``moments(eta, y, n, order)`` gives the deviance (order
    0), with mu and w (order 1), with w' and w'' (order 2); ``constant(y, n)`` the part of -2 log L that
    does not depend on eta (log binomial coefficients, log y!)."""

    name: str
    moments: Callable[[np.ndarray, np.ndarray, np.ndarray, int], _Moments]
    constant: Callable[[np.ndarray, np.ndarray], float]


def _binomial(eta: np.ndarray, y: np.ndarray, n: np.ndarray | None, order: int) -> _Moments:
    # log(1 + e^eta) = max(eta, 0) + log1p(e^-|eta|), which neither overflows nor loses digits; in place,
    # as everything here, because at a million rows each array operation costs a millisecond
    terms = np.abs(eta)
    np.negative(terms, out=terms)
    np.exp(terms, out=terms)
    np.log1p(terms, out=terms)
    terms += np.maximum(eta, 0.0)
    if n is not None:
        terms *= n
    terms -= y * eta
    terms *= 2
    out = _Moments(terms)
    if order:
        # 1 / (1 + e^-eta): e^-eta overflows to inf below eta = -709, where mu is 0, as it should be
        with np.errstate(over="ignore"):
            mu = np.exp(-eta)
        mu += 1
        np.reciprocal(mu, out=mu)
        # mu (1 - mu) loses relative digits as mu nears 1 (1e-16 / (1 - mu)), only where the weight is
        # too small to count beside the others'
        variance = 1 - mu
        variance *= mu
        out.mu = mu
        out.w = variance if n is None else n * variance
        if order > 1:
            out.w1 = np.multiply(mu, -2.0)
            out.w1 += 1
            out.w1 *= out.w  # w (1 - 2 mu)
            out.w2 = np.multiply(variance, -6.0)
            out.w2 += 1
            out.w2 *= out.w  # w (1 - 6 mu (1 - mu))
    return out


def _poisson(eta: np.ndarray, y: np.ndarray, n: np.ndarray | None, order: int) -> _Moments:
    # An overflowing trial point of PIRLS or of the line search gives infinite means and an infinite
    # deviance, which the step halving (or the line search) rejects: no warning is due.
    with np.errstate(over="ignore", invalid="ignore"):
        mu = np.exp(eta)
        expected = mu if n is None else n * mu
        out = _Moments(-2 * (y * eta - expected))
    if order:
        out.mu = mu
        out.w = out.w1 = out.w2 = expected
    return out


def _log_binomial_coefficients(y: np.ndarray, n: np.ndarray | None) -> float:
    """-2 sum log C(n, y); 0 for 0/1 outcomes (n None)."""
    if n is None:
        return 0.0
    return float(-2 * np.sum(special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)))


def _log_factorials(y: np.ndarray, n: np.ndarray | None) -> float:
    """2 sum log y!, by a table of the counts' values when they are small integers."""
    if y.size and np.all(y == np.round(y)) and y.max() < 1e6:
        counts = np.bincount(y.astype(np.int64))
        return float(2 * np.sum(counts * special.gammaln(np.arange(counts.size) + 1.0)))
    return float(2 * np.sum(special.gammaln(y + 1)))


BINOMIAL = Family("binomial", _binomial, _log_binomial_coefficients)
POISSON = Family("poisson", _poisson, _log_factorials)
FAMILIES = {family.name: family for family in (BINOMIAL, POISSON)}
SUPPORTED = (
    "random intercepts only (one or more grouping factors, independent of each other), for a binomial "
    "outcome (0/1, or events out of trials; logit link) or a Poisson count (log link, with an optional offset)"
)


# Sums over rows without BLAS (see "Reproducibility" above)


def _combine(xt: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """X coef, X given by its columns (xt is p x n)."""
    if xt.shape[0] == 0:
        return np.zeros(xt.shape[1])
    return np.einsum("kn,k->n", xt, coef)


def _cross(xt: np.ndarray, r: np.ndarray) -> np.ndarray:
    """X'r."""
    return np.einsum("kn,n->k", xt, r)


def _gram(xt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X'WX, W = diag(w): its lower triangle a row at a time, with one buffer for w x_k."""
    p = xt.shape[0]
    gram = np.empty((p, p))
    wx = np.empty(xt.shape[1])
    for k in range(p):
        np.multiply(xt[k], w, out=wx)
        gram[k, : k + 1] = np.einsum("n,ln->l", wx, xt[: k + 1])
        gram[: k + 1, k] = gram[k, : k + 1]
    return gram


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """a'b."""
    return float(np.einsum("n,n->", a, b))


def _orthonormal(xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q and R of X = QR (X given by its columns, Q returned so), by two Cholesky passes on X'X
    (CholeskyQR2), every sum numpy's; LAPACK's QR where X'X is too ill-conditioned for Cholesky."""
    q, r = xt, np.eye(xt.shape[0])
    try:
        for _ in range(2):
            step = linalg.cholesky(_gram(q, np.ones(q.shape[1])))  # upper: X'X = R'R
            q = np.einsum("lk,ln->kn", linalg.inv(step), q)  # Q' = R^-T X'
            r = step @ r
    except linalg.LinAlgError:
        q_factor, r = np.linalg.qr(xt.T)
        q = np.ascontiguousarray(q_factor.T)
    return q, r


def _solve(information: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """The Newton step of a symmetric positive (semi)definite system, or, where it is singular, the
    minimum-norm one.

    Equilibrated first (unit diagonal), so that covariates on very different scales do not make it look
    singular. When the mode lies at infinity (a group without events, outcomes separated by a
    covariate) the weights of those rows vanish as PIRLS follows it and the information loses rank; the
    minimum-norm step stops moving in the directions that no longer carry information instead of
    failing. That situation is the callers' to report (as separation, or a group without events), so
    scipy's warning about the ill-conditioned matrix on the way there is not passed on.
    """
    if information.size == 0:
        return np.zeros(0)
    diagonal = np.diag(information)
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    scaled = information * scale[:, None] * scale[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        try:
            return scale * linalg.solve(scaled, scale * gradient, assume_a="pos")
        except linalg.LinAlgError:
            return scale * linalg.lstsq(scaled, scale * gradient)[0]


class _Levels:
    """Z for one grouping factor, the rows sorted by level: Zv is a repeat, Z'r a ``reduceat``."""

    def __init__(self, codes: np.ndarray):
        n = codes.size
        self.starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if n else np.zeros(0, dtype=int)
        self.level = codes[self.starts]  # the level code of each present level, increasing
        self.sizes = np.diff(np.r_[self.starts, n])
        self.q = self.starts.size

    def times(self, v: np.ndarray) -> np.ndarray:
        return np.repeat(v, self.sizes)

    def t_times(self, r: np.ndarray) -> np.ndarray:
        """Z'r."""
        return np.add.reduceat(r, self.starts)

    def weighted(self, xt: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Z'AX, A = diag(a), q x p, a column at a time through one buffer."""
        out = np.empty((self.q, xt.shape[0]))
        buffer = np.empty(xt.shape[1])
        for j, column in enumerate(xt):
            out[:, j] = np.add.reduceat(np.multiply(column, a, out=buffer), self.starts)
        return out

    def factor(self, lam: np.ndarray, w: np.ndarray) -> _DiagonalM:
        return _DiagonalM(lam * lam * self.t_times(w))

    def penalised(self, terms: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The penalised deviance of each level: given the fixed effects, each is minimised on its own."""
        return self.t_times(terms) + v * v

    def block(self, size: int) -> np.ndarray:
        return np.arange(size)


class _Indicators:
    """Z for several grouping factors, kept as one column index per row and component.

    Zv is a sum of lookups and Z'r, Z'WZ are bincounts: far quicker than sparse matrix products at
    this size, with no n x q array, and no multithreaded BLAS call.
    """

    def __init__(self, codes: list[np.ndarray]):
        sizes = [int(c.max()) + 1 if c.size else 1 for c in codes]
        starts = np.cumsum([0, *sizes[:-1]])
        self.columns = np.column_stack([start + c for start, c in zip(starts, codes, strict=True)])
        self.q = int(sum(sizes))
        self.component = np.repeat(np.arange(len(codes)), sizes)  # the theta of each column
        self.level = np.concatenate([np.arange(size) for size in sizes])

    def times(self, v: np.ndarray) -> np.ndarray:
        return v[self.columns].sum(axis=1)

    def t_times(self, r: np.ndarray) -> np.ndarray:
        """Z'r, r a vector (n) or the columns of a matrix (p x n); the result q or q x p."""
        flat = r.reshape(1, -1) if r.ndim == 1 else r
        out = np.zeros((self.q, flat.shape[0]))
        for c in self.columns.T:
            for j, column in enumerate(flat):
                out[:, j] += np.bincount(c, weights=column, minlength=self.q)
        return out[:, 0] if r.ndim == 1 else out

    def weighted(self, xt: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Z'AX, A = diag(a), q x p."""
        return self.t_times(xt * a)

    def gram(self, w: np.ndarray) -> np.ndarray:
        """Z'WZ, W = diag(w)."""
        q = self.q
        return sum(
            np.bincount(ci * q + cj, weights=w, minlength=q * q).reshape(q, q)
            for ci in self.columns.T
            for cj in self.columns.T
        )

    def factor(self, lam: np.ndarray, w: np.ndarray) -> _DenseM:
        return _DenseM(lam[:, None] * self.gram(w) * lam[None, :] + np.eye(self.q))

    def penalised(self, terms: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The penalised deviance, in one block: crossed levels share rows."""
        return np.array([np.sum(terms) + _dot(v, v)])

    def block(self, size: int) -> np.ndarray:
        return np.zeros(size, dtype=int)


class _DiagonalM:
    """M = Lambda Z'WZ Lambda + I for one grouping factor: diagonal, given by lam^2 K."""

    def __init__(self, lam2k: np.ndarray):
        self.m = 1 + lam2k

    def solve(self, b: np.ndarray) -> np.ndarray:
        return b / (self.m if b.ndim == 1 else self.m[:, None])


class _DenseM:
    """M = Lambda Z'WZ Lambda + I for several grouping factors: dense, by its Cholesky factor."""

    def __init__(self, m: np.ndarray):
        self.factor = linalg.cho_factor(m)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return linalg.cho_solve(self.factor, b)

    @property
    def logdet(self) -> float:
        return float(2 * np.sum(np.log(np.diag(self.factor[0]))))

    def inverse(self) -> np.ndarray:
        return linalg.cho_solve(self.factor, np.eye(self.factor[0].shape[0]))

    def inverse_diagonal(self) -> np.ndarray:
        return np.diag(self.inverse())


@dataclass
class _Data:
    """The rows (or cells) a fit works on: outcome y, trials n (None when all are 1), the fixed-effect
    columns xt (p x n), offset, the level codes of each grouping factor, the constant part of the
    deviance, and the number of rows given."""

    y: np.ndarray
    n: np.ndarray | None
    xt: np.ndarray
    offset: np.ndarray
    codes: list[np.ndarray]
    constant: float
    rows: int

    def residual(self, mu: np.ndarray) -> np.ndarray:
        """y - n mu."""
        return self.y - (mu if self.n is None else self.n * mu)

    def take(self, index: np.ndarray) -> _Data:
        """The cells at ``index``."""
        return _Data(
            self.y[index],
            None if self.n is None else self.n[index],
            np.take(self.xt, index, axis=1),
            self.offset[index],
            [c[index] for c in self.codes],
            self.constant,
            self.rows,
        )


def _cell_numbers(data: _Data, index: slice) -> tuple[np.ndarray, int] | None:
    """The cell of each row in ``index`` (rows with equal covariates, offset and levels share one), in
    order of first appearance, and the number of cells; None as soon as a column alone has more values
    than ``COLLAPSE_RATIO`` of the rows (a continuous covariate: nothing to gain)."""
    columns = [c[index] for c in (*data.codes, data.offset, *data.xt)]
    size = columns[0].size
    key = np.zeros(size, dtype=np.int64)
    span = 1
    for column in columns:
        codes, uniques = pd.factorize(column)
        if len(uniques) > COLLAPSE_RATIO * size:
            return None
        if span * len(uniques) >= 2**62:  # keep the combined key in 64 bits
            key, seen = pd.factorize(key)
            span = len(seen)
        key = key * len(uniques) + codes
        span *= len(uniques)
    cell, seen = pd.factorize(key)
    return cell, len(seen)


def _collapse(data: _Data) -> _Data:
    """Rows with equal covariates, offset and levels as one cell (y and n summed), when that at least
    halves them (``COLLAPSE_RATIO``); the data unchanged otherwise. Cells keep the order of their first row.

    Looking costs about ten passes over the rows, so with many rows a systematic sample of
    ``COLLAPSE_SAMPLE`` is looked at first: when nearly all its rows are distinct (more than
    ``COLLAPSE_SAMPLE_DISTINCT``), the whole cannot be expected to halve, and is left as it is.
    """
    size = data.y.size
    if size > 2 * COLLAPSE_SAMPLE:
        sample = _cell_numbers(data, slice(None, None, size // COLLAPSE_SAMPLE))
        if sample is None or sample[1] > COLLAPSE_SAMPLE_DISTINCT * sample[0].size:
            return data
    found = _cell_numbers(data, slice(None))
    if found is None or found[1] > COLLAPSE_RATIO * size:
        return data
    cell, cells = found
    # factorize numbers the cells in order of first appearance: a cell's first row is where the running
    # maximum of the cell numbers grows
    running = np.maximum.accumulate(cell)
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]])
    collapsed = data.take(first)
    collapsed.y = np.bincount(cell, weights=data.y, minlength=cells)
    collapsed.n = np.bincount(cell, weights=data.n, minlength=cells).astype(float)  # weights None: row counts
    return collapsed


def _pirls(
    data: _Data,
    family: Family,
    z: _Levels | _Indicators,
    base: np.ndarray,
    lam: np.ndarray,
    with_fixed: bool,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The mode of v given (theta, beta), or of (beta, v) jointly given theta (``with_fixed``).

    Minimises the penalised deviance -2 log L(eta) + v'v, eta = base [+ X beta] + Z Lambda v (base holds
    the offset and, unless ``with_fixed``, X beta), by Newton steps from ``start`` (zero by default),
    each halved until that deviance decreases. The joint step eliminates v by the Schur complement:
    with C = Lambda Z'WX, S = X'WX - C'M^-1 C, the fixed step is S^-1 (X'r - C'M^-1 g_v) and the
    random one M^-1 (g_v - C step). Returns the fixed part (empty unless ``with_fixed``), v, and whether
    the Newton decrement fell below ``PIRLS_TOL``.
    """
    xt = data.xt if with_fixed else data.xt[:0]
    p = xt.shape[0]
    b = np.zeros(p + z.q) if start is None else start.astype(float)

    def linear_predictor(b):
        return base + _combine(xt, b[:p]) + z.times(lam * b[p:])

    # The penalised deviance in blocks that are halved on their own: with the fixed effects given and
    # one grouping factor, each level's (its mode does not depend on the others'); else one block.
    if p:
        block = np.zeros(p + z.q, dtype=int)

        def penalised(moments, b):
            return np.array([moments.deviance + _dot(b[p:], b[p:])])
    else:
        block = z.block(z.q)

        def penalised(moments, b):
            return z.penalised(moments.terms, b)

    moments = family.moments(linear_predictor(b), data.y, data.n, 1)
    objective = penalised(moments, b)
    for _ in range(PIRLS_MAX_STEPS):
        r = data.residual(moments.mu)
        v = b[p:]
        gradient_v = lam * z.t_times(r) - v  # of (log L - v'v/2)
        m = z.factor(lam, moments.w)
        if p:
            cross = lam[:, None] * z.weighted(xt, moments.w)  # C = Lambda Z'WX
            m_cross = m.solve(cross)
            schur = _gram(xt, moments.w) - np.einsum("jk,jl->kl", cross, m_cross)
            step_fixed = _solve(schur, _cross(xt, r) - np.einsum("jk,j->k", m_cross, gradient_v))
            step = np.r_[step_fixed, m.solve(gradient_v - np.einsum("jk,k->j", cross, step_fixed))]
            gradient = np.r_[_cross(xt, r), gradient_v]
        else:
            step, gradient = m.solve(gradient_v), gradient_v
        if _dot(gradient, step) < PIRLS_TOL:
            b = b + step
            return b[:p], b[p:], True
        allowed = objective + ROUNDING * np.abs(objective)
        for _ in range(PIRLS_MAX_HALVINGS):
            new_moments = family.moments(linear_predictor(b + step), data.y, data.n, 1)
            new_objective = penalised(new_moments, b + step)
            worse = ~(new_objective <= allowed)  # NaN (infinite minus infinite) is worse too
            if not worse.any():
                break
            step = np.where(worse[block], step / 2, step)
        else:
            break
        b, moments, objective = b + step, new_moments, new_objective
    return b[:p], b[p:], False


def _prepare(y, x, codes, family: Family, offset, trials) -> tuple[_Data, int]:
    """The rows as a ``_Data``, checked, and the number of fixed effects."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    size = y.size
    if x.ndim != 2 or x.shape[0] != size:
        raise ValueError(f"x must have one row per outcome ({size}), got shape {x.shape}")
    n = None if trials is None else np.asarray(trials, dtype=float)
    if trials is not None and family is not BINOMIAL:
        raise ValueError("trials are for the binomial family only")
    if n is not None and n.shape != (size,):
        raise ValueError(f"trials must hold one number per outcome ({size})")
    limit = 1 if n is None else n
    if np.any(y < 0) or np.any(limit < 0) or (family is BINOMIAL and np.any(y > limit)):
        raise ValueError("outcomes must not be negative, and binomial ones not above their trials (1 without trials)")
    if len(codes) == 0:
        raise ValueError(f"at least one grouping factor is needed: the fitter supports {SUPPORTED}")
    codes = [np.asarray(c, dtype=np.int64) for c in codes]
    if any(c.shape != (size,) or (c.size and c.min() < 0) for c in codes):
        raise ValueError("codes must hold one level code (0, 1, ...) per row for each grouping factor")
    offset = np.zeros(size) if offset is None else np.asarray(offset, dtype=float)
    constant = family.constant(y, n)
    return _Data(y, n, np.ascontiguousarray(x.T), offset, codes, constant, size), x.shape[1]


def fit_laplace(
    y: np.ndarray,
    x: np.ndarray,
    codes: list[np.ndarray],
    *,
    family: str = "binomial",
    offset: np.ndarray | None = None,
    trials: np.ndarray | None = None,
    start: LaplaceFit | None = None,
    nagq: int = 1,
) -> LaplaceFit:
    """Fit by Laplace ML (``nagq`` = 1), or by adaptive Gauss-Hermite quadrature with ``nagq`` nodes
    (one grouping factor only, as lme4's ``nAGQ``; see "Adaptive Gauss-Hermite quadrature" in the module
    docstring).

    ``codes`` holds one integer level code (0, 1, ...) per row for each random intercept, ``x`` the
    fixed-effect design (full column rank), ``family`` is "binomial" (``y`` 0/1, or events out of
    ``trials``) or "poisson" (counts), ``offset`` a known term of the linear predictor (log exposure).
    ``start``, a previous fit of a model of the same shape (same columns and grouping factors), is where
    the optimisation starts instead of lme4's theta = 1 and the nAGQ = 0 fit there: refits of similar
    data (a power simulation's) then take a few Newton steps. One grouping factor uses the per-cluster
    engine, several the dense one (module docstring).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}: the fitter supports {SUPPORTED}")
    fam = FAMILIES[family]
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ValueError(f"nagq must be a whole number of quadrature nodes, 1 (Laplace) or more, got {nagq!r}")
    if nagq > 1 and len(codes) != 1:
        raise ValueError(
            f"nagq > 1 (adaptive Gauss-Hermite quadrature) needs a single random intercept, and this model has "
            f"{len(codes)}: as lme4's glmer, which allows nAGQ > 1 only for a single scalar random-effects term, "
            "fit it with nagq = 1 (Laplace)"
        )
    data, p = _prepare(y, x, codes, fam, offset, trials)
    if start is not None and (start.beta.size != p or start.theta.size != len(codes)):
        raise ValueError(
            f"start is a fit with {start.beta.size} fixed effects and {start.theta.size} random intercepts; "
            f"this model has {p} and {len(codes)}"
        )
    data = _collapse(data)
    if len(codes) == 1:
        grouped = _Grouped(data, fam)
        laplace = grouped.fit(start)
        return laplace if nagq == 1 else grouped.fit_agq(laplace, int(nagq))
    return _fit_dense(data, fam, start)


# One grouping factor


@dataclass
class _Point:
    """d, its gradient and Hessian over phi = (theta, beta) at one point, with the mode v there, its
    derivative in phi (for the next PIRLS's start), M's diagonal, and whether PIRLS converged."""

    phi: np.ndarray
    deviance: float
    gradient: np.ndarray
    hessian: np.ndarray
    v: np.ndarray
    v_phi: np.ndarray
    m: np.ndarray
    converged: bool
    mu: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


class _Grouped:
    """The Laplace deviance with one grouping factor, its exact gradient and Hessian, and Newton's method."""

    def __init__(self, data: _Data, family: Family):
        codes = data.codes[0]
        if codes.size and np.any(codes[1:] < codes[:-1]):
            data = data.take(np.argsort(codes, kind="stable"))
        self.data = data
        self.family = family
        self.z = _Levels(data.codes[0])
        self.levels = int(data.codes[0].max()) + 1 if data.codes[0].size else 0
        self.p = data.xt.shape[0]
        self._agq_v: np.ndarray | None = None  # the last modes of agq_deviance, where its next PIRLS starts

    def mode(self, theta: float, beta: np.ndarray, start: np.ndarray | None) -> tuple[np.ndarray, bool]:
        base = self.data.offset + _combine(self.data.xt, beta)
        _, v, converged = _pirls(self.data, self.family, self.z, base, np.full(self.z.q, theta), False, start)
        return v, converged

    def point(self, phi: np.ndarray, start: np.ndarray | None = None) -> _Point:
        """d, gradient and Hessian at phi = (theta, beta), v from PIRLS started at ``start``."""
        theta, beta = float(phi[0]), phi[1:]
        v, converged = self.mode(theta, beta, start)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._point(phi, theta, beta, v, converged)

    def _point(self, phi, theta, beta, v, converged) -> _Point:
        data, z = self.data, self.z
        eta = data.offset + _combine(data.xt, beta) + theta * z.times(v)
        mo = self.family.moments(eta, data.y, data.n, 2)
        r = data.residual(mo.mu)
        big_r, k, k1, k2 = (z.t_times(a) for a in (r, mo.w, mo.w1, mo.w2))
        m = 1 + theta**2 * k
        deviance = mo.deviance + _dot(v, v) + float(np.sum(np.log(m)))
        g, g1, g2 = (z.weighted(data.xt, a) for a in (mo.w, mo.w1, mo.w2))  # sum w x per level, q x p
        # per level, over phi (index 0 theta, then beta): s = sum w e, e = (v, x), and likewise s1, s2
        s, s1, s2 = (np.column_stack([v * a, b]) for a, b in ((k, g), (k1, g1), (k2, g2)))
        unit = np.zeros_like(s)
        unit[:, 0] = 1.0
        v_phi = (unit * big_r[:, None] - theta * s) / m[:, None]  # d v_j / d phi
        t = s1 + theta * k1[:, None] * v_phi  # d K_j / d phi = sum w' E
        d_logdet = (2 * theta * k[:, None] * unit + theta**2 * t) / m[:, None]  # d log M_j / d phi
        gradient = d_logdet.sum(axis=0)
        gradient[0] -= 2 * _dot(v, big_r)
        gradient[1:] -= 2 * _cross(data.xt, r)

        def outer(a, b, c):  # sum_j c_j a_j b_j'
            return np.einsum("j,ja,jb->ab", c, a, b)

        def sym(a, b, c):
            out = outer(a, b, c)
            return out + out.T

        def level_part(c, kx, gx):  # sum_j c_j (sum_i w e e' but its beta-beta block), w -> kx, gx
            out = np.zeros((self.p + 1, self.p + 1))
            out[0, 0] = np.sum(c * v * v * kx)
            out[0, 1:] = out[1:, 0] = np.einsum("j,jk->k", c * v, gx)
            return out

        ones = np.ones_like(m)
        c = theta**3 * k1 / m**2  # the weight of d2 v / d phi2 (times M_j) in the log determinant's part
        # -2 log L + v'v: 2 sum w e e' - 2 sum_j M_j v_phi v_phi'
        hessian = 2 * level_part(ones, k, g) - 2 * outer(v_phi, v_phi, m)
        # log M_j: [2 K u u' + 2 theta (u T' + T u') + theta^2 dT/dphi] / M_j - d log M_j d log M_j', with
        # dT/dphi = sum w'' E E' + K1 (u v_phi' + v_phi u' + theta d2v/dphi2) and
        # M_j d2v/dphi2 = -(u s' + s u') - 2 theta K (u v_phi' + v_phi u') - theta sum w' e e'
        #                 - theta^2 (s1 v_phi' + v_phi s1') - theta^3 K1 v_phi v_phi'
        hessian[0, 0] += np.sum(2 * k / m)
        hessian += sym(unit, t, 2 * theta / m)
        hessian += level_part(theta**2 / m, k2, g2) + sym(s2, v_phi, theta**3 / m)
        hessian += outer(v_phi, v_phi, theta**4 * k2 / m) + sym(unit, v_phi, theta**2 * k1 / m)
        hessian += sym(unit, s, -c) + sym(unit, v_phi, -2 * theta * k * c) + level_part(-theta * c, k1, g1)
        hessian += sym(s1, v_phi, -(theta**2) * c) + outer(v_phi, v_phi, -(theta**3) * k1 * c)
        hessian -= outer(d_logdet, d_logdet, ones)
        # the beta-beta blocks of sum w e e', sum w'' e e' and sum w' e e' over rows, in one weighted X'X
        weight = z.times(theta**2 / m)
        weight *= mo.w2
        weight -= np.multiply(z.times(theta * c), mo.w1, out=r)  # r is not needed any more
        weight += 2 * mo.w
        hessian[1:, 1:] += _gram(data.xt, weight)
        hessian = (hessian + hessian.T) / 2  # symmetric to the last bit (the sums differ in rounding)
        return _Point(phi, deviance, gradient, hessian, v, v_phi, m, converged, mo.mu)

    def _start(self, start: LaplaceFit | None) -> _Point:
        if start is None and self.data.y.size > 2 * START_SAMPLE:
            # many rows: the fit to a systematic sample of them (every k-th row of each cluster) is
            # within a few standard errors of the optimum, where Newton's method converges in two or
            # three steps, each a pass over all rows; lme4's start below takes ten or more
            sample = self.data.take(np.arange(0, self.data.y.size, self.data.y.size // START_SAMPLE))
            start = _Grouped(sample, self.family).fit(None, START_TOL)
            if start.theta[0] > 0:  # and its modes are where PIRLS starts on all rows
                return self.point(np.r_[start.theta, start.beta], start.modes[0][self.z.level] / start.theta[0])
        if start is not None:
            return self.point(np.r_[float(start.theta[0]), start.beta])
        # lme4's stage 1 starts at theta = 1; the joint PIRLS there gives beta (its nAGQ = 0 fit at theta = 1)
        lam = np.ones(self.z.q)
        beta, v, _ = _pirls(self.data, self.family, self.z, self.data.offset, lam, True)
        return self.point(np.r_[1.0, beta], v)

    def _newton(self, point: _Point, tolerance: float) -> tuple[_Point, bool, str]:
        for _ in range(NEWTON_MAX_STEPS):
            path, decrement = _newton_path(point)
            if not np.isfinite(decrement):
                return point, False, "the Hessian of the deviance is not finite"
            if decrement < tolerance:
                return point, True, "Newton's method converged"
            size = 1.0
            for _ in range(PIRLS_MAX_HALVINGS):
                phi = path(size)
                predicted = point.v + np.einsum("ja,a->j", point.v_phi, phi - point.phi)
                trial = self.point(phi, predicted)
                allowed = point.deviance - ARMIJO * size * decrement + ROUNDING * abs(point.deviance)
                if np.isfinite(trial.deviance) and trial.deviance <= allowed:
                    break
                size /= 2
            else:
                return point, False, "the line search found no lower deviance"
            point = trial
        return point, False, f"no convergence in {NEWTON_MAX_STEPS} Newton steps"

    def fit(self, start: LaplaceFit | None, tolerance: float = NEWTON_TOL) -> LaplaceFit:
        point, converged, message = self._newton(self._start(start), tolerance)
        if abs(point.phi[0]) < BOUNDARY_TOL:
            # d is even in theta, so 0 is a stationary point: a boundary (singular) fit when it is a
            # minimum there (lme4's check.boundary); a saddle (negative curvature in theta) is left from
            # theta = 1
            at_zero = self.point(np.r_[0.0, point.phi[1:]], point.v * 0)
            if at_zero.hessian[0, 0] < 0:
                point, converged, message = self._newton(self.point(np.r_[1.0, point.phi[1:]]), tolerance)
            elif at_zero.deviance <= point.deviance + ROUNDING * abs(point.deviance):
                point = at_zero
        phi = point.phi.copy()
        theta = abs(phi[0])
        if phi[0] < 0:  # the same fit at |theta|, with v of the other sign
            point.v = -point.v
        converged = converged and point.converged
        if not point.converged:
            message = "the penalised IRLS for the random effects did not converge at the estimates"
        cov, fell_back = _covariance(point.hessian, 1)
        if fell_back:
            cov_beta = self._conditional_cov(point, theta)
            cov_theta = np.full((1, 1), np.nan)
        else:
            cov_beta, cov_theta = cov[1:, 1:], cov[:1, :1]
            if theta == 0:
                cov_theta = np.full((1, 1), np.nan)
        modes = np.zeros(self.levels)
        mode_sd = np.full(self.levels, theta)  # a level without rows: its prior, N(0, theta^2)
        modes[self.z.level] = theta * point.v
        mode_sd[self.z.level] = theta / np.sqrt(point.m)
        return LaplaceFit(
            beta=phi[1:],
            theta=np.array([theta]),
            cov_beta=cov_beta,
            deviance=point.deviance + self.data.constant,
            converged=converged,
            fell_back=fell_back,
            message=message,
            cov_theta=cov_theta,
            modes=(modes,),
            mode_sd=(mode_sd,),
            cells=self.data.y.size,
            engine="one grouping factor: clusters eliminated one by one, exact Hessian, Newton",
            fitted=point.mu,
        )

    def agq_deviance(self, phi: np.ndarray, nodes: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray, bool]:
        """The AGQ deviance at phi = (theta, beta) (without the constant), with the modes v there and
        whether PIRLS converged: per cluster, log M_j - 2 log sum_k w_k exp(-D_jk / 2), D_jk the penalised
        deviance of cluster j at v = v_j + z_k / sqrt(M_j) less z_k^2 (module docstring)."""
        theta, beta = float(phi[0]), phi[1:]
        v, converged = self.mode(theta, beta, self._agq_v)
        self._agq_v = v
        data, z = self.data, self.z
        base = data.offset + _combine(data.xt, beta)
        w = self.family.moments(base + theta * z.times(v), data.y, data.n, 1).w
        m = 1 + theta**2 * z.t_times(w)
        spread = 1 / np.sqrt(m)
        exponents = np.empty((nodes.size, z.q))
        for k, node in enumerate(nodes):
            at = v + spread * node
            terms = self.family.moments(base + theta * z.times(at), data.y, data.n, 0).terms
            exponents[k] = -(z.t_times(terms) + at * at - node * node) / 2
        per_cluster = np.log(m) - 2 * special.logsumexp(exponents, b=weights[:, None], axis=0)
        return float(np.sum(per_cluster)), v, converged

    def fit_agq(self, laplace: LaplaceFit, nagq: int) -> LaplaceFit:
        """Minimise the AGQ deviance over (theta, beta) by Newton's method from the Laplace fit, its
        gradient and Hessian by central differences (module docstring)."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(nagq)
        weights = weights / math.sqrt(2 * math.pi)  # sum_k w_k f(z_k) ~ E f(Z), Z ~ N(0, 1)
        self._agq_v = None

        def deviance(phi):
            return self.agq_deviance(phi, nodes, weights)[0]

        phi = np.r_[laplace.theta, laplace.beta]
        ses = np.sqrt(np.r_[np.diag(laplace.cov_theta), np.diag(laplace.cov_beta)])
        scale = np.where(np.isfinite(ses) & (ses > 0), ses, 1.0)  # differences in units of the Laplace SEs
        value = deviance(phi)
        converged, message = False, f"no convergence in {NEWTON_MAX_STEPS} Newton steps"
        for _ in range(NEWTON_MAX_STEPS):
            gradient, hessian = _differences(deviance, phi, value, scale)
            step = -_descent(hessian, gradient)
            decrement = float(-gradient @ step)
            if not np.isfinite(decrement):
                message = "the Hessian of the AGQ deviance is not finite"
                break
            if decrement < AGQ_TOL:
                converged, message = True, "Newton's method converged"
                break
            size = 1.0
            for _ in range(PIRLS_MAX_HALVINGS):
                trial = phi + size * step
                trial_value = deviance(trial)
                allowed = value - ARMIJO * size * decrement + ROUNDING * abs(value)
                if np.isfinite(trial_value) and trial_value <= allowed:
                    break
                size /= 2
            else:
                message = "the line search found no lower AGQ deviance"
                break
            phi, value = trial, trial_value
        _, hessian = _differences(deviance, phi, value, scale)
        value, v, pirls_converged = self.agq_deviance(phi, nodes, weights)
        if not pirls_converged:
            converged, message = False, "the penalised IRLS for the random effects did not converge at the estimates"
        theta = abs(float(phi[0]))
        if phi[0] < 0:
            v = -v
        cov, fell_back = _covariance(hessian, 1)
        if fell_back:
            cov_beta = laplace.cov_beta if theta == laplace.theta[0] else np.full_like(laplace.cov_beta, np.nan)
            cov_theta = np.full((1, 1), np.nan)
        else:
            cov_beta, cov_theta = cov[1:, 1:], cov[:1, :1]
            if theta == 0:
                cov_theta = np.full((1, 1), np.nan)
        data, z = self.data, self.z
        eta = data.offset + _combine(data.xt, phi[1:]) + theta * z.times(v)
        mu_w = self.family.moments(eta, data.y, data.n, 1)
        m = 1 + theta**2 * z.t_times(mu_w.w)
        modes = np.zeros(self.levels)
        mode_sd = np.full(self.levels, theta)
        modes[z.level] = theta * v
        mode_sd[z.level] = theta / np.sqrt(m)
        return LaplaceFit(
            beta=phi[1:].copy(),
            theta=np.array([theta]),
            cov_beta=cov_beta,
            deviance=value + data.constant,
            converged=converged and laplace.converged,
            fell_back=fell_back,
            message=message,
            cov_theta=cov_theta,
            modes=(modes,),
            mode_sd=(mode_sd,),
            cells=data.y.size,
            engine=f"one grouping factor: adaptive Gauss-Hermite quadrature, {nagq} nodes per cluster, Newton "
            "with central differences",
            fitted=mu_w.mu,
        )

    def _conditional_cov(self, point: _Point, theta: float) -> np.ndarray:
        """glmer's fallback, the covariance of beta given theta: S^-1, S = X'WX - C'M^-1 C (C = Lambda Z'WX)."""
        data = self.data
        eta = data.offset + _combine(data.xt, point.phi[1:]) + theta * self.z.times(point.v)
        w = self.family.moments(eta, data.y, data.n, 1).w
        cross = theta * self.z.weighted(data.xt, w)
        schur = _gram(data.xt, w) - np.einsum("jk,jl->kl", cross, cross / point.m[:, None])
        return _singular_or_inverse(schur)


def _differences(
    deviance: Callable[[np.ndarray], float], phi: np.ndarray, value: float, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of ``deviance`` at phi by central differences, parameter i stepped by
    ``AGQ_GRADIENT_STEP`` (gradient) and ``AGQ_HESSIAN_STEP`` (Hessian) times scale_i."""
    size = phi.size
    gradient = np.empty(size)
    for i in range(size):
        e = np.zeros(size)
        e[i] = AGQ_GRADIENT_STEP * scale[i]
        gradient[i] = (deviance(phi + e) - deviance(phi - e)) / (2 * e[i])
    h = AGQ_HESSIAN_STEP * scale
    hessian = np.empty((size, size))
    for i in range(size):
        ei = np.zeros(size)
        ei[i] = h[i]
        hessian[i, i] = (deviance(phi + ei) - 2 * value + deviance(phi - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(size)
            ej[j] = h[j]
            corners = deviance(phi + ei + ej) - deviance(phi + ei - ej)
            corners += deviance(phi - ei - ej) - deviance(phi - ei + ej)
            hessian[i, j] = hessian[j, i] = corners / (4 * h[i] * h[j])
    return gradient, hessian


def _newton_path(point: _Point) -> tuple[Callable[[float], np.ndarray], float]:
    """The Newton step from ``point`` as a path phi(size), size 1 the full step, and its decrement.

    Newton's step in (theta, beta) when it moves theta towards 0 without passing it: near a boundary
    fit d is close to quadratic in theta (it is even in theta), and the steps reach 0 fast. Otherwise
    the step in (log theta, beta): with clusters of many rows d behaves like
    2 q log theta + sum(u_j^2) / theta^2, convex in log theta but concave in theta beyond 1.7 times the
    optimum, where Newton's steps in theta overshoot (from lme4's start, theta = 1, to beyond 0). The
    log step is limited to a factor of ``MAX_THETA_FACTOR``.
    """
    phi, gradient, hessian = point.phi, point.gradient, point.hessian
    step = -_descent(hessian, gradient)
    theta = phi[0]
    if theta == 0 or 0 <= (theta + step[0]) / theta <= 1:
        return (lambda size: phi + size * step), float(-gradient @ step)
    # d as a function of tau = log(theta): gradient J g, Hessian J H J + diag(theta dd/dtheta, 0, ...)
    jacobian = np.r_[theta, np.ones(phi.size - 1)]
    gradient_log = jacobian * gradient
    hessian_log = hessian * jacobian[:, None] * jacobian[None, :]
    hessian_log[0, 0] += theta * gradient[0]
    step = -_descent(hessian_log, gradient_log)
    step *= min(1.0, math.log(MAX_THETA_FACTOR) / max(abs(step[0]), 1e-300))

    def path(size):
        return np.r_[theta * math.exp(size * step[0]), phi[1:] + size * step[1:]]

    return path, float(-gradient_log @ step)


def _descent(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """H^-1 g with H's negative or tiny eigenvalues (of its equilibrated form) replaced by positive ones,
    so that the step goes down even where d is not convex (far from the optimum, in theta)."""
    diagonal = np.abs(np.diag(hessian))
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    values, vectors = np.linalg.eigh(hessian * scale[:, None] * scale[None, :])
    floor = 1e-8 * max(float(np.max(np.abs(values))), 1e-300)
    values = np.maximum(np.abs(values), floor)
    return scale * (vectors @ ((vectors.T @ (scale * gradient)) / values))


def _covariance(hessian: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
    """2 H^-1 over (theta, beta), and whether glmer would fall back (H not finite or singular, or the
    beta block not positive definite)."""
    size = hessian.shape[0]
    nothing = np.full((size, size), np.nan)
    if not np.all(np.isfinite(hessian)):
        return nothing, True
    diagonal = np.abs(np.diag(hessian))
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    try:
        cov = 2 * linalg.inv(hessian * scale[:, None] * scale[None, :]) * scale[:, None] * scale[None, :]
    except (linalg.LinAlgError, ValueError):
        return nothing, True
    cov = (cov + cov.T) / 2
    block = cov[k:, k:]
    if not np.all(np.isfinite(block)) or np.linalg.eigvalsh(block).min() <= 0:
        return nothing, True
    return cov, False


def _singular_or_inverse(information: np.ndarray) -> np.ndarray:
    """The inverse of an information matrix, NaN where it is singular: separated data, or a group
    without events (exactly, or to rounding, when its inverse has variances that are not positive)."""
    nothing = np.full(information.shape, np.nan)
    diagonal = np.abs(np.diag(information))
    scale = 1 / np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    try:
        cov = linalg.inv(information * scale[:, None] * scale[None, :]) * scale[:, None] * scale[None, :]
    except (linalg.LinAlgError, ValueError):
        return nothing
    if not np.all(np.diag(cov) > 0):
        return nothing
    return (cov + cov.T) / 2


# Several grouping factors


class _Deviance:
    """The Laplace deviance d and its gradient over (theta, gamma), gamma the scaled fixed effects, for
    any number of grouping factors with a dense M (fit_laplace uses it for two or more)."""

    def __init__(
        self,
        y: np.ndarray,
        x: np.ndarray,
        codes: list[np.ndarray],
        family: Family = BINOMIAL,
        offset: np.ndarray | None = None,
        trials: np.ndarray | None = None,
    ):
        data, _ = _prepare(y, x, codes, family, offset, trials)
        self._setup(data, family)

    @classmethod
    def from_data(cls, data: _Data, family: Family) -> _Deviance:
        self = cls.__new__(cls)
        self._setup(data, family)
        return self

    def _setup(self, data: _Data, family: Family) -> None:
        rows = data.rows
        q_factor, r_factor = _orthonormal(data.xt)
        xs = math.sqrt(rows) * q_factor  # X_s: orthogonal columns of squared length n (the rows)
        self.to_beta = math.sqrt(rows) * linalg.inv(r_factor)  # beta = to_beta @ gamma
        self.data = _Data(data.y, data.n, xs, data.offset, data.codes, data.constant, rows)
        self.family = family
        self.z = _Indicators(data.codes)
        self.k = len(data.codes)
        self.pirls_converged = True  # at the last (theta, gamma) evaluated

    @property
    def x(self) -> np.ndarray:
        """X_s, n x p."""
        return self.data.xt.T

    def _moments(self, eta: np.ndarray, order: int) -> _Moments:
        return self.family.moments(eta, self.data.y, self.data.n, order)

    def stage1(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """d with gamma and v from one PIRLS over both (glmer's nAGQ = 0), and that gamma."""
        lam = theta[self.z.component]
        gamma, v, _ = _pirls(self.data, self.family, self.z, self.data.offset, lam, True)
        eta = self.data.offset + _combine(self.data.xt, gamma) + self.z.times(lam * v)
        mo = self._moments(eta, 1)
        return mo.deviance + _dot(v, v) + self.z.factor(lam, mo.w).logdet, gamma

    def mode(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, _DenseM, np.ndarray]:
        """v at params, with the linear predictor, M and the weights there."""
        lam = params[: self.k][self.z.component]
        base = self.data.offset + _combine(self.data.xt, params[self.k :])
        _, v, self.pirls_converged = _pirls(self.data, self.family, self.z, base, lam, False)
        eta = base + self.z.times(lam * v)
        return v, eta, self.z.factor(lam, self._moments(eta, 1).w), lam

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """d(theta, gamma) and its gradient (formulas in the module docstring)."""
        v, eta, m, lam = self.mode(params)
        mo = self._moments(eta, 2)
        xt, z = self.data.xt, self.z
        r = self.data.residual(mo.mu)
        deviance = mo.deviance + _dot(v, v) + m.logdet
        m_inv = m.inverse()
        lam_m_lam = lam[:, None] * m_inv * lam[None, :]
        columns = z.columns
        # diag(A M^-1 A') row by row: the entries of Lambda M^-1 Lambda at each row's pairs of levels
        leverage = sum(lam_m_lam[columns[:, i], columns[:, j]] for i in range(self.k) for j in range(self.k))
        c = mo.w1 * leverage

        def a_times(u):  # A u = Z Lambda u
            return z.times(lam * u)

        atwx = lam[:, None] * z.weighted(xt, mo.w)  # A'WX_s
        correction = np.stack([a_times(col) for col in (m_inv @ atwx).T])  # A M^-1 A'WX_s, by columns
        gradient_gamma = -2 * _cross(xt, r) + _cross(xt, c) - _cross(correction, c)

        kzz = z.gram(mo.w)  # K = Z'WZ
        zr = z.t_times(r)
        lam_k = lam[:, None] * kzz
        trace_terms = np.diag(m_inv @ lam_k)
        gradient_theta = np.empty(self.k)
        for j in range(self.k):
            mask = z.component == j
            jv = np.where(mask, v, 0.0)
            zjv = z.times(jv)
            deta = zjv + a_times(m_inv @ (np.where(mask, zr, 0.0) - lam_k @ jv))
            gradient_theta[j] = -2 * _dot(r, zjv) + 2 * trace_terms[mask].sum() + _dot(c, deta)
        return float(deviance), np.r_[gradient_theta, gradient_gamma]

    def conditional_cov_gamma(self, params: np.ndarray) -> np.ndarray:
        """Covariance of gamma given theta: S^-1, S = X'WX - C'M^-1 C (C = Lambda Z'WX), the gamma block of
        the inverse joint information of (gamma, v), glmer's fallback ("var-cov estimated from RX") when
        the Hessian is not positive definite."""
        v, eta, m, lam = self.mode(params)
        w = self._moments(eta, 1).w
        cross = lam[:, None] * self.z.weighted(self.data.xt, w)
        return _singular_or_inverse(_gram(self.data.xt, w) - np.einsum("jk,jl->kl", cross, m.solve(cross)))

    def random_effects(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Conditional modes Lambda v and conditional SDs sqrt diag(Lambda M^-1 Lambda), by column of Z,
        and the fitted means."""
        v, eta, m, lam = self.mode(params)
        return lam * v, np.abs(lam) * np.sqrt(m.inverse_diagonal()), self._moments(eta, 1).mu


def _hessian(gradient, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of the gradient, symmetrised."""
    columns = [(gradient(x + h * e) - gradient(x - h * e)) / (2 * h) for e in np.eye(x.size)]
    hess = np.column_stack(columns)
    return (hess + hess.T) / 2


def _fit_dense(data: _Data, family: Family, start: LaplaceFit | None) -> LaplaceFit:
    """lme4's two stages with a dense M, for two or more grouping factors."""
    deviance = _Deviance.from_data(data, family)
    k, p = deviance.k, data.xt.shape[0]
    if start is None:
        # stage 1 from lme4's start theta = 1
        first = optimize.minimize(
            lambda t: deviance.stage1(t)[0], np.ones(k), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-4}
        )
        initial = np.r_[first.x, deviance.stage1(first.x)[1]]
    else:
        initial = np.r_[start.theta, linalg.solve(deviance.to_beta, start.beta)]

    # stage 2; a theta stopped near 0 is tried at 0 (d is even in theta, so 0 is a stationary point)
    best = optimize.minimize(deviance, initial, jac=True, method="BFGS", options={"gtol": GRADIENT_TOL})
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

    hess = _hessian(lambda q: deviance(q)[1], params, HESSIAN_STEP)
    to_params = linalg.block_diag(np.eye(k), deviance.to_beta)  # (theta, gamma) -> (theta, beta)
    cov, fell_back = _covariance(hess, k)
    if fell_back:
        cov_beta = deviance.to_beta @ deviance.conditional_cov_gamma(params) @ deviance.to_beta.T
        cov_theta = np.full((k, k), np.nan)
    else:
        cov = to_params @ cov @ to_params.T
        cov_beta, cov_theta = cov[k:, k:], cov[:k, :k].copy()
        cov_theta[params[:k] == 0, :] = cov_theta[:, params[:k] == 0] = np.nan
    if np.isnan(cov_beta).any():
        cov_beta = np.full((p, p), np.nan)
    modes, sds, fitted = deviance.random_effects(params)
    z = deviance.z
    return LaplaceFit(
        beta=deviance.to_beta @ params[k:],
        theta=params[:k],
        cov_beta=cov_beta,
        deviance=value + data.constant,
        converged=converged,
        fell_back=fell_back,
        message=message,
        cov_theta=cov_theta,
        modes=tuple(modes[z.component == j] for j in range(k)),
        mode_sd=tuple(sds[z.component == j] for j in range(k)),
        cells=data.y.size,
        engine="several grouping factors: dense M, lme4's two stages (Nelder-Mead, then BFGS)",
        fitted=fitted,
    )
