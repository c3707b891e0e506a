"""Model matrices from a formula for the model fitters: the rows used, the columns that can be estimated,
and whether the outcome can be modelled at all, each problem said in a sentence.

As R's ``glm`` and ``lmer``: rows with a missing value in a model variable are left out (``na.omit``);
a column that is a linear combination of the columns before it (a covariate that does not vary, a
period with no patients) is aliased, its coefficient reported as missing and the model fitted without
it; and an outcome that never varies (no events, or nothing but events) leaves nothing to fit.
"""

from __future__ import annotations

import re
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
    period), so that every part of a model sees the same rows; outcome and design by patsy (built with
    numpy, identically, for the formulas the compendium writes: `_matrices`)."""
    data = data.reset_index(drop=True)
    complete = data.dropna(subset=list(also))
    built = _matrices(formula, complete)
    y, x = built if built is not None else patsy.dmatrices(formula, complete, NA_action="drop", return_type="dataframe")
    if len(x) < len(complete):
        complete = complete.loc[x.index]
    complete = complete.reset_index(drop=True)
    if len(complete) < len(data):
        dropped = len(data) - len(complete)
        notes.add(f"{dropped} of {len(data)} rows had a missing value in the model's variables and were left out")
    x = x.reset_index(drop=True)
    return Design(complete, y.to_numpy(dtype=float).ravel(), x, _estimable(x, notes))


# The formulas the compendium writes (`outcome ~ after + covariates`, `y ~ intervention * after + ...`)
# are built with numpy: a numeric outcome; terms that are column names, C(column), or a:b and a * b of
# numeric columns. On a million rows (fastest of 3; numpy 2.4, pandas 3.1, patsy 1.0.3, formulaic 1.2.2):
#   formula                                        patsy    formulaic   numpy here
#   error ~ after + age + charlson + n_medicines   0.12 s   0.02 s      0.06 s
#   error ~ after + age + sex                      1.9 s    0.12 s      0.16 s
#   error ~ intervention * after + age             0.11 s   0.02 s      0.06 s
# formulaic is fast but orders columns its own way (sex[T.male] and intervention:after last), which would
# move every coefficient of the ledgers and paper; this gives patsy's matrices, names, order and rows
# exactly (tests/stats/test_design.py), with no new dependency. Any other formula goes to patsy.
_NAME = re.compile(r"^(?:C\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)|([A-Za-z_][A-Za-z0-9_]*))$")


def _matrices(formula: str, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """patsy's ``dmatrices(formula, data, NA_action="drop", return_type="dataframe")`` for the simple
    formulas above; None for any other."""
    terms = _terms(formula)
    if terms is None:
        return None
    outcome, terms = terms
    factors = {f for term in terms for f in term}
    if outcome[0] or outcome[1] not in data or not _numeric(data[outcome[1]]):
        return None
    if any(name not in data or _kind(data[name]) is None for _, name in factors):
        return None  # a column patsy would read in ways not copied here (nullable integers, dates...)
    if any(len(term) > 1 and any(categorical or not _numeric(data[name]) for categorical, name in term)
           for term in terms):
        return None  # an interaction with a categorical factor: patsy's coding rules decide
    levels = {}
    for categorical, name in factors:
        if categorical or not _numeric(data[name]):
            found = _levels(data[name])
            if found is None:
                return None
            levels[(categorical, name)] = found
    used = [outcome[1], *dict.fromkeys(name for _, name in factors)]
    rows = np.ones(len(data), dtype=bool)
    for name in used:
        rows &= data[name].notna().to_numpy()
    every = bool(rows.all())  # no row left out: the columns are used as they are, not copied

    def values(name: str, dtype=None) -> np.ndarray:
        column = data[name].to_numpy(dtype=dtype)
        return column if every else column[rows]

    index = data.index[rows]
    columns = {"Intercept": np.ones(int(rows.sum()))}
    # patsy groups terms by their numeric factors, groups in order of appearance: the categorical main
    # effects join the intercept's group (no numeric factor) at the front, the others stay as written
    for term in sorted(terms, key=lambda term: any(factor not in levels for factor in term)):
        if len(term) == 1 and term[0] in levels:
            categorical, name = term[0]
            cells = values(name)
            label = f"C({name})" if categorical else name
            for level in levels[term[0]][1:]:
                columns[f"{label}[T.{level}]"] = cells == level
        else:
            product = values(term[0][1], float)
            for _, name in term[1:]:
                product = product * values(name, float)
            columns[":".join(name for _, name in term)] = product
    y = pd.DataFrame(values(outcome[1], float).reshape(-1, 1), index=index, columns=[outcome[1]])
    # one float block (as patsy's): a frame made from a dict of columns is copied once more to gather them
    return y, pd.DataFrame(np.column_stack(list(columns.values())).astype(float, copy=False), index=index,
                           columns=list(columns))


def _terms(formula: str) -> tuple[tuple[bool, str], list[tuple[tuple[bool, str], ...]]] | None:
    """The outcome and the terms (each a tuple of (categorical, column) factors, duplicates removed) of
    ``outcome ~ a + C(b) + c:d + e * f``; None for any other syntax."""
    if formula.count("~") != 1:
        return None
    left, right = formula.split("~")
    outcome = _factor(left)
    if outcome is None:
        return None
    terms: dict[tuple, None] = {}
    for part in right.split("+"):
        if "*" in part:
            pieces = [_factor(piece) for piece in part.split("*")]
            if len(pieces) != 2 or None in pieces:
                return None
            found = [(pieces[0],), (pieces[1],), (pieces[0], pieces[1])]
        else:
            factors = [_factor(piece) for piece in part.split(":")]
            if None in factors or len(factors) > 2:
                return None
            found = [tuple(factors)]
        for term in found:
            if len(set(term)) != len(term):
                return None
            terms.setdefault(term)
    return outcome, list(terms)


def _factor(text: str) -> tuple[bool, str] | None:
    found = _NAME.match(text.strip())
    if found is None or found[0] in ("C", "I", "Q"):
        return None
    return (True, found[1]) if found[1] else (False, found[2])


def _numeric(values: pd.Series) -> bool:
    return _kind(values) == "numeric"


def _kind(values: pd.Series) -> str | None:
    """How patsy reads a column: "numeric" (numpy numbers), "categorical" (text, categorical, numpy
    booleans), or None for the columns left to patsy itself."""
    if isinstance(values.dtype, np.dtype):
        return "numeric" if values.dtype.kind in "iuf" else "categorical" if values.dtype.kind in "bO" else None
    return "categorical" if isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype) else None


def _levels(values: pd.Series) -> list | None:
    """patsy's levels of a categorical factor: a Categorical's categories, else the sorted distinct values
    (of every row, those left out for a missing value elsewhere too); None when patsy might differ
    (values of mixed kinds)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return list(values.cat.categories)
    distinct = pd.unique(values.dropna())
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return sorted(distinct.tolist())
    if all(isinstance(v, str) for v in distinct):
        return sorted(distinct)
    return None


def _estimable(x: pd.DataFrame, notes: Notes) -> list[str]:
    values = x.to_numpy(dtype=float)
    n = len(values)
    if n == 0:
        return []
    # |R_jj| of the QR decomposition is the length of column j's part orthogonal to the columns before
    # it, which is how R's qr() judges aliasing (an aliased column before it adds nothing to their span).
    # One QR of the design replaces a least-squares fit per column (0.8 s at a million rows).
    r = np.linalg.qr(values, mode="r")
    lengths = np.linalg.norm(values, axis=0)
    kept: list[int] = []
    for j, name in enumerate(x.columns):
        column = values[:, j]
        if j < r.shape[0] and abs(r[j, j]) > ALIAS_TOL * lengths[j]:
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
