"""Model matrices from a formula for the model fitters: the rows used, the columns that can be estimated,
and whether the outcome can be modelled at all, each problem said in a sentence.

As R's ``glm`` and ``lmer``: rows with a missing value in a model variable are left out (``na.omit``);
a column that is a linear combination of the columns before it (a covariate that does not vary, a
period with no patients) is aliased, its coefficient reported as missing and the model fitted without
it; and an outcome that never varies (no events, or nothing but events) leaves nothing to fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

from analysis.stats.tidy import Notes

__all__ = ["Design", "design", "not_fittable"]

# R's tolerance for aliasing in lm and glm (qr(tol = 1e-7)): a column whose part orthogonal to the
# columns before it is smaller than this, relative to its length, is aliased.
ALIAS_TOL = 1e-7


@dataclass(frozen=True)
class Design:
    """The rows of a model (``data``, index reset), its outcome ``y`` and every fixed-effect column
    ``x``, of which ``kept`` can be estimated."""

    data: pd.DataFrame
    y: np.ndarray
    x: pd.DataFrame
    kept: list[str]

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def estimable(self) -> pd.DataFrame:
        return self.x[self.kept]

    def expand(self, values) -> np.ndarray:
        """Values of the ``kept`` columns placed among all of ``x``'s, NaN for the aliased ones."""
        out = pd.Series(np.nan, index=self.x.columns)
        out[self.kept] = np.asarray(values, dtype=float)
        return out.to_numpy()


def design(data: pd.DataFrame, formula: str, notes: Notes, *, also: Sequence[str] = ()) -> Design:
    """The rows complete in the formula's variables and in the columns ``also`` (clusters, exposure,
    period), so that every part of a model sees the same rows; outcome and design by patsy."""
    data = data.reset_index(drop=True)
    complete = data.dropna(subset=list(also))
    y, x = patsy.dmatrices(formula, complete, NA_action="drop", return_type="dataframe")
    complete = complete.loc[x.index].reset_index(drop=True)
    if len(complete) < len(data):
        dropped = len(data) - len(complete)
        notes.add(f"{dropped} of {len(data)} rows had a missing value in the model's variables and were left out")
    x = x.reset_index(drop=True)
    return Design(complete, y.to_numpy(dtype=float).ravel(), x, _estimable(x, notes))


def _estimable(x: pd.DataFrame, notes: Notes) -> list[str]:
    values = x.to_numpy(dtype=float)
    n = len(values)
    if n == 0:
        return []
    kept: list[int] = []
    for j, name in enumerate(x.columns):
        column = values[:, j]
        residual = column
        if kept:
            basis = values[:, kept]
            residual = column - basis @ np.linalg.lstsq(basis, column, rcond=None)[0]
        if np.linalg.norm(residual) > ALIAS_TOL * np.linalg.norm(column):
            kept.append(j)
        elif np.ptp(column) == 0:
            notes.add(
                f"Not estimated: {name} is {column[0]:g} in all {n} rows used, so its effect cannot be estimated; "
                "the model was fitted without it"
            )
        else:
            notes.add(
                f"Not estimated: {name} is a linear combination of the model's other terms in the {n} rows used, "
                "so its effect cannot be estimated; the model was fitted without it"
            )
    return [str(x.columns[j]) for j in kept]


def _binary(y: np.ndarray) -> str:
    events = int(y.sum())
    if events == 0:
        return f"none of the {y.size} observations had the outcome, so no odds ratio can be estimated"
    if events == y.size:
        return f"all {y.size} observations had the outcome, so no odds ratio can be estimated"
    return ""


def _count(y: np.ndarray) -> str:
    if y.sum() == 0:
        return f"no events were counted in any of the {y.size} observations, so no rate ratio can be estimated"
    return ""


def _continuous(y: np.ndarray) -> str:
    if np.ptp(y) == 0:
        return f"the outcome is {y[0]:g} in all {y.size} observations, so there is no variation to model"
    return ""


def _ordinal(y: np.ndarray) -> str:
    if np.unique(y).size < 2:
        return f"all {y.size} observations are in the same category, so there is no order to model"
    return ""


# What makes an outcome of each kind impossible to model, by the kind's name (a registry, not an if-chain)
OUTCOME_CHECKS: dict[str, Callable[[np.ndarray], str]] = {
    "binary": _binary,
    "count": _count,
    "continuous": _continuous,
    "ordinal": _ordinal,
}


def not_fittable(d: Design, outcome: str) -> str:
    """Why the model cannot be fitted at all, as a "Not estimated: ..." sentence, or "" when it can.

    ``outcome`` is one of ``OUTCOME_CHECKS``: "binary", "count", "continuous" or "ordinal".
    """
    if d.n == 0:
        return "Not estimated: no row has the outcome and every model variable recorded, so there is nothing to fit"
    if not d.kept:
        return "Not estimated: no term of the model can be estimated in these rows"
    reason = OUTCOME_CHECKS[outcome](d.y)
    return f"Not estimated: {reason}" if reason else ""
