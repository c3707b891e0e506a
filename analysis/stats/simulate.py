"""Power by simulation: datasets drawn from a design's data-generating model, each analysed as planned.

Four designs, each with its data-generating model and its planned analysis (``DESIGNS``):

- ``before_after``, uncontrolled with clusters: ``clusters`` clusters per period of ``cluster_size`` patients
  (sizes with coefficient of variation ``cluster_cv``, gamma-distributed), each cluster-period with its own
  random intercept :math:`u \\sim N(0, \\sigma^2)` on the logit scale, drawn afresh in each period as the
  design-effect formula assumes (:func:`analysis.stats.power.cluster_power`: the periods are independent
  samples; a cluster's level persisting across periods would raise the power). Analysis: the
  random-intercept logistic model ``y ~ after + (1 | cluster-period)`` by Laplace ML
  (:func:`analysis.stats.laplace.fit_laplace`), Wald z test of ``after``.
- ``controlled_before_after``: ``clusters`` intervention and ``clusters`` control clusters, each seen before
  and after with a persisting random intercept; the effect is the intervention's after-period log odds
  ratio beyond the control's (no secular trend in the model that draws). Analysis: logistic regression with
  the group x period interaction and cluster-robust (HC1) standard errors
  (:func:`analysis.stats.designs.did_logistic_cluster`), z test of ``intervention:after``.
- ``interrupted_time_series``: ``months`` months before and ``months`` after the change, ``cluster_size``
  patients a month; a month's log odds varies around the line with SD ``cluster_sd`` (extra-binomial
  variation); the change is a step of the effect's log odds ratio. Analysis: segmented binomial regression
  with Newey-West standard errors (:func:`analysis.stats.its.segmented_counts`, no seasonality, ``lags``),
  z test of ``level_change``.
- ``stepped_wedge``: ``clusters`` clusters crossing over in ``steps`` steps (``steps + 1`` periods, spread as in
  :func:`analysis.stats.power.stepped_wedge_power`), ``cluster_size`` patients per cluster-period, a random
  intercept per cluster. Analysis: ``y ~ period + treatment + (1 | cluster)`` by Laplace ML (the model of
  Hussey and Hughes 2007 on the logit scale), Wald z test of ``treatment``.

``baseline`` and the effect are on the cluster-specific (conditional) scale: the proportion at a random
intercept of 0, and the conditional log odds ratio ``log_or``. Patients are drawn as events out of each
cluster-period's patients (the counts are the sufficient statistics of a 0/1 outcome within a cell, so the
fit is the patient-level fit).

Reproducibility: dataset i of every scenario draws from ``np.random.SeedSequence(seed).spawn(simulations)[i]``
(the same numbers for every scenario, which makes power curves smooth: common random numbers). A task is a
fixed run of ``CHUNK`` datasets of one scenario, each mixed-model fit after the first starting from the
previous one (``start=``, a few Newton steps instead of a fit from scratch); the chunks do not depend on the
number of workers, so the results are identical whatever the workers and the order they finish in.

Per scenario (:func:`summarise`): the share of datasets whose test rejected at ``alpha`` (the power, or the
type I error when ``log_or`` is 0), its Wilson interval (statsmodels ``proportion_confint``) and Monte Carlo
standard error :math:`\\sqrt{\\hat p (1 - \\hat p) / S}`; the share of fits that failed (no events or nothing
but events in a group of the comparison, where the odds ratio is infinite; an error, no convergence, no
finite standard error: counted as not rejecting, so that the power is not flattered) and,
for the mixed models, the share that were singular (random-intercept SD below ``SINGULAR``, lme4's
``isSingular`` tolerance).

References: Arnold BF, et al. Simulation methods to estimate design power. BMC Med Res Methodol 2011;11:94.
Green P, MacLeod CJ. simr. Methods Ecol Evol 2016;7:493-8. Hussey MA, Hughes JP. Contemp Clin Trials
2007;28:182-91. Morris TP, White IR, Crowther MJ. Stat Med 2019;38:2074-102 (Monte Carlo standard errors).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.stats.proportion import proportion_confint

from analysis.stats.designs import did_logistic_cluster
from analysis.stats.its import segmented_counts
from analysis.stats.laplace import fit_laplace
from analysis.stats.power import _stepped_wedge_design  # the same allocation as the analytic answer
from analysis.stats.tidy import frame, row

DESIGNS = ("before_after", "controlled_before_after", "interrupted_time_series", "stepped_wedge")
CHUNK = 25  # datasets per task: enough to amortise a task's cost, few enough to spread over workers
SINGULAR = 1e-4  # lme4's isSingular tolerance on theta, which for a logistic random intercept is its SD
_FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class Scenario:
    """One point of the grid: the design and its sizes (see the module docstring for what each size
    means in each design), the conditional ``baseline`` proportion, the conditional log odds ratio
    ``log_or`` (0 for the null), the random-intercept SD ``cluster_sd`` on the logit scale, the test's
    ``alpha``; ``extra`` (labels, the analytic answer) is carried into the summary unchanged."""

    design: str
    baseline: float
    log_or: float
    clusters: int
    cluster_size: float
    cluster_sd: float = 0.0
    cluster_cv: float = 0.0
    steps: int | None = None
    months: int | None = None
    lags: int = 1
    alpha: float = 0.05
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {self.design!r}")
        if not 0 < self.baseline < 1:
            raise ValueError(f"baseline must be between 0 and 1, got {self.baseline!r}")
        if not math.isfinite(self.log_or):
            raise ValueError(f"log_or must be finite, got {self.log_or!r}")
        if self.cluster_size < 1 or self.cluster_sd < 0 or self.cluster_cv < 0:
            raise ValueError("cluster_size must be at least 1, cluster_sd and cluster_cv not negative")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha!r}")
        least = {"before_after": 1, "controlled_before_after": 2, "stepped_wedge": self.steps or 2}
        if self.design in least and self.clusters < least[self.design]:
            raise ValueError(f"{self.design} needs at least {least[self.design]} clusters (per period or arm), "
                             f"got {self.clusters}")
        if self.design == "stepped_wedge" and (self.steps is None or self.steps < 2):
            raise ValueError("a stepped wedge needs steps (at least 2)")
        if self.design == "interrupted_time_series" and (self.months is None or self.months < 3):
            raise ValueError("an interrupted time series needs months (at least 3 before and 3 after the change)")


@dataclass(frozen=True)
class Task:
    """Datasets ``first`` .. ``first + len(seeds) - 1`` of scenario number ``scenario``."""

    scenario: int
    spec: Scenario
    first: int
    seeds: tuple[np.random.SeedSequence, ...]


def tasks(scenarios: Sequence[Scenario], simulations: int, seed: int, chunk: int = CHUNK) -> list[Task]:
    """The tasks of ``simulations`` datasets for each scenario, in ``CHUNK``s, seeded from one SeedSequence."""
    if isinstance(simulations, bool) or not isinstance(simulations, (int, np.integer)) or simulations < 1:
        raise ValueError(f"the number of simulations must be a whole number, at least 1, got {simulations!r}")
    if not scenarios:
        raise ValueError("no scenarios to simulate")
    seeds = np.random.SeedSequence(seed).spawn(int(simulations))
    return [Task(g, spec, first, tuple(seeds[first:first + chunk]))
            for g, spec in enumerate(scenarios) for first in range(0, simulations, chunk)]


def _sizes(rng: np.random.Generator, count: int, mean: float, cv: float) -> np.ndarray:
    if cv == 0:
        return np.full(count, max(1, round(mean)), dtype=np.int64)
    shape = 1 / cv**2
    return np.maximum(1, np.round(rng.gamma(shape, mean / shape, count))).astype(np.int64)


def _wald(fit, k: int) -> tuple[float, float, float, bool, bool]:
    estimate, se = float(fit.beta[k]), float(math.sqrt(fit.cov_beta[k, k])) if fit.cov_beta[k, k] >= 0 else math.nan
    failed = not fit.converged or not math.isfinite(se) or se == 0
    p = math.nan if failed else float(2 * stats.norm.sf(abs(estimate / se)))
    return estimate, se, p, failed, bool(fit.theta[0] < SINGULAR)


def _separated(y: np.ndarray, n: np.ndarray, groups: np.ndarray) -> bool:
    """Whether some group of the comparison has no events or nothing but events: the odds ratio is then
    infinite, and a fitter that reports convergence has only walked far out (its Wald test cannot reject)."""
    events = np.bincount(groups, weights=y)
    totals = np.bincount(groups, weights=n)
    return bool(np.any(events == 0) or np.any(events == totals))


_FAILED = (math.nan, math.nan, math.nan, True, False)


def _mixed(y, x, codes, trials, start):
    if _separated(y, trials, x[:, -1].astype(np.int64)):
        return _FAILED, None
    try:
        fit = fit_laplace(y, x, [codes], trials=trials, start=start)
    except _FIT_ERRORS:
        return _FAILED, None
    result = _wald(fit, x.shape[1] - 1)
    return result, None if result[3] else fit


def _before_after(s: Scenario, rng: np.random.Generator, start):
    k = s.clusters
    sizes = _sizes(rng, 2 * k, s.cluster_size, s.cluster_cv)
    u = rng.normal(0, s.cluster_sd, 2 * k)
    after = np.repeat([0.0, 1.0], k)
    y = rng.binomial(sizes, special.expit(special.logit(s.baseline) + u + s.log_or * after))
    return _mixed(y, np.column_stack([np.ones(2 * k), after]), np.arange(2 * k), sizes, start)


def _stepped_wedge(s: Scenario, rng: np.random.Generator, start):
    treated = _stepped_wedge_design(s.clusters, s.steps)
    i_, t_ = treated.shape
    sizes = _sizes(rng, i_ * t_, s.cluster_size, s.cluster_cv)
    u = rng.normal(0, s.cluster_sd, i_)
    treatment = treated.ravel()
    y = rng.binomial(sizes, special.expit(special.logit(s.baseline) + np.repeat(u, t_) + s.log_or * treatment))
    period = np.tile(np.arange(t_), i_)
    x = np.column_stack([np.ones(i_ * t_), *(period == t for t in range(1, t_)), treatment]).astype(float)
    return _mixed(y, x, np.repeat(np.arange(i_), t_), sizes, start)


def _expanded(events: np.ndarray, sizes: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per patient from events out of patients per cell (did_logistic_cluster takes 0/1 rows)."""
    cells = np.repeat(np.arange(sizes.size), sizes)
    rank = np.arange(cells.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    out = {name: np.repeat(values, sizes) for name, values in columns.items()}
    return pd.DataFrame({"y": (rank < events[cells]).astype(float), **out})


def _controlled(s: Scenario, rng: np.random.Generator, start):
    k = s.clusters
    cluster = np.repeat(np.arange(2 * k), 2)
    intervention = (cluster < k).astype(float)
    after = np.tile([0.0, 1.0], 2 * k)
    sizes = _sizes(rng, 4 * k, s.cluster_size, s.cluster_cv)
    u = rng.normal(0, s.cluster_sd, 2 * k)
    y = rng.binomial(sizes, special.expit(special.logit(s.baseline) + u[cluster] + s.log_or * intervention * after))
    if _separated(y, sizes, (2 * intervention + after).astype(np.int64)):
        return _FAILED, None
    data = _expanded(y, sizes, {"intervention": intervention, "after": after, "cluster": cluster})
    got = did_logistic_cluster(data, "y ~ intervention * after", "cluster").set_index("term").loc["intervention:after"]
    estimate, se, p = math.log(got["estimate"]) if got["estimate"] > 0 else math.nan, got["std_error"], got["p_value"]
    failed = not (math.isfinite(estimate) and math.isfinite(se) and math.isfinite(p))
    return (estimate, se, math.nan if failed else p, failed, False), None


def _its(s: Scenario, rng: np.random.Generator, start):
    months = 2 * s.months
    post = (np.arange(months) >= s.months).astype(float)
    sizes = _sizes(rng, months, s.cluster_size, s.cluster_cv)
    noise = rng.normal(0, s.cluster_sd, months)
    y = rng.binomial(sizes, special.expit(special.logit(s.baseline) + noise + s.log_or * post))
    if _separated(y, sizes, post.astype(np.int64)):
        return _FAILED, None
    data = pd.DataFrame({"t": np.arange(months), "events": y, "patients": sizes})
    try:
        got = segmented_counts(data, "events", "patients", "t", s.months, lags=s.lags, family="binomial",
                               season="none").set_index("term").loc["level_change"]
    except _FIT_ERRORS:
        return _FAILED, None
    estimate = math.log(got["estimate"]) if got["estimate"] > 0 else math.nan
    failed = not (math.isfinite(estimate) and math.isfinite(got["std_error"]) and math.isfinite(got["p_value"]))
    return (estimate, got["std_error"], math.nan if failed else got["p_value"], failed, False), None


_SIMULATE: dict[str, Callable] = {"before_after": _before_after, "controlled_before_after": _controlled,
                                  "interrupted_time_series": _its, "stepped_wedge": _stepped_wedge}
MIXED = ("before_after", "stepped_wedge")  # the designs analysed by a mixed model, which can be singular


def run_task(task: Task) -> list[tuple[float, float, float, bool, bool]]:
    """Each dataset of the task drawn and analysed: (estimate, std_error, p_value, failed, singular)."""
    simulate = _SIMULATE[task.spec.design]
    out, start = [], None
    for seed in task.seeds:
        result, fit = simulate(task.spec, np.random.default_rng(seed), start)
        start = fit or start
        out.append(result)
    return out


def summarise(scenarios: Sequence[Scenario], task_list: Sequence[Task], results: Sequence[list]) -> pd.DataFrame:
    """One tidy row per scenario: ``term`` "power" (or "type_i_error" at log_or 0), ``estimate`` the share
    rejected, ``std_error`` its Monte Carlo SE, the Wilson 95% interval, ``n`` the datasets, and the
    shares ``failed`` and ``singular`` (NaN for designs without a random effect), ``mean_log_or``."""
    per = [[] for _ in scenarios]
    for task, result in zip(task_list, results, strict=True):
        per[task.scenario].extend(result)
    rows = []
    for spec, got in zip(scenarios, per, strict=True):
        a = np.array(got, dtype=float).reshape(-1, 5)
        count = a.shape[0]
        failed = a[:, 3].astype(bool)
        rejected = int(np.sum(~failed & (a[:, 2] < spec.alpha)))
        share = rejected / count
        low, high = proportion_confint(rejected, count, alpha=0.05, method="wilson")
        notes = []
        if failed.any():
            notes.append(f"{int(failed.sum())} of {count} fits failed (no events or nothing but events on one side "
                         "of the comparison, an error, no convergence or no finite standard error) and count as "
                         "not rejecting.")
        singular = float(a[:, 4].mean()) if spec.design in MIXED else math.nan
        method = (f"simulation of {count} datasets ({spec.design}); share with p < {spec.alpha:g}, Wilson 95% CI, "
                  "Monte Carlo SE")
        scenario = {k: v for k, v in asdict(spec).items() if k != "extra"}
        rows.append(row("type_i_error" if spec.log_or == 0 else "power", share, math.sqrt(share * (1 - share) / count),
                        conf_low=float(low), conf_high=float(high), method=method, n=count, warnings=" ".join(notes),
                        rejected=rejected, failed=float(failed.mean()), singular=singular,
                        mean_log_or=float(np.nanmean(a[~failed, 0])) if (~failed).any() else math.nan,
                        **scenario, **spec.extra))
    return frame(rows)


def _serial(function, items):
    return [function(item) for item in items]


def simulate_power(scenarios: Sequence[Scenario], simulations: int, seed: int, *, map=_serial) -> pd.DataFrame:
    """Power (or type I error) of each scenario by ``simulations`` datasets, as :func:`summarise` gives it.

    ``map(function, tasks)`` runs the tasks and returns their results in task order: in this process by
    default, or an executor's (``analysis.run.executor``), with the same results either way.

    >>> s = Scenario("before_after", baseline=0.3, log_or=math.log(0.5), clusters=10, cluster_size=50,
    ...              cluster_sd=0.3)
    >>> simulate_power([s], simulations=20, seed=1)[["term", "n"]].values.tolist()
    [['power', 20]]
    """
    task_list = tasks(scenarios, simulations, seed)
    return summarise(scenarios, task_list, map(run_task, task_list))
