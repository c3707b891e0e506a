"""The tidy result shape shared by every function in analysis.stats, and warnings kept as data.

Every function returns a data frame whose first columns are ``COLUMNS`` (after R's broom), one row per
reported quantity. ``method`` names exactly what was computed; ``warnings`` holds plain sentences, one
per line ("" when none), so that a model's problems travel with its numbers instead of being printed.
"""

from __future__ import annotations

import math
import warnings as _warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.tools import sm_exceptions

COLUMNS = (
    "term",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "conf_low",
    "conf_high",
    "method",
    "n",
    "warnings",
)
_NUMBERS = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high")


def row(
    term: str,
    estimate: float = math.nan,
    std_error: float = math.nan,
    statistic: float = math.nan,
    p_value: float = math.nan,
    conf_low: float = math.nan,
    conf_high: float = math.nan,
    *,
    df: float = math.nan,
    method: str,
    n: int | None,
    warnings: str = "",
    **extra,
) -> dict:
    """One tidy row as a dict; ``df`` is the degrees of freedom of the statistic's reference distribution
    (NaN for a z statistic or none); ``extra`` keys become columns after the standard ones."""
    values = dict(
        term=term,
        estimate=estimate,
        std_error=std_error,
        statistic=statistic,
        df=df,
        p_value=p_value,
        conf_low=conf_low,
        conf_high=conf_high,
        method=method,
        n=n,
        warnings=warnings,
    )
    values.update(extra)
    return values


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows to a data frame with the standard columns first and stable dtypes.

    Infinite numbers are refused: a table cell must hold a number or be missing, and the function that
    produced an infinity must say in words what it means instead.
    """
    out = pd.DataFrame(list(rows))
    extra = [c for c in out.columns if c not in COLUMNS]
    out = out.reindex(columns=list(COLUMNS) + extra)
    for column in _NUMBERS:
        out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        if np.isinf(out[column]).any():
            raise ValueError(f"infinite value in column {column!r}: represent it and say it in words")
    out["n"] = out["n"].astype("Int64")
    for column in ("term", "method", "warnings"):
        out[column] = out[column].fillna("").astype(str)
    return out.reset_index(drop=True)


def with_df_resid(out: pd.DataFrame, df_resid: float) -> pd.DataFrame:
    """``out``, a fitted model's rows, with its residual degrees of freedom on each (column ``df_resid``).

    They are the rows the model used less the parameters it estimated: statsmodels' ``df_resid`` (n less the
    rank of the fixed-effects design) for the models statsmodels fits, which is what the SACRO project's output
    checker (ACRO's ``MinimumDoFCheck``) reads, and R's ``df.residual``. A model with few of them nearly
    reproduces its rows; the disclosure rules judge that, this layer only reports it.
    """
    return out.assign(df_resid=float(df_resid))


_LARGEST_LOG = math.log(np.finfo(float).max)


def exp_or_missing(value: float, notes: Notes) -> float:
    """exp(value), or NaN with a sentence when it would overflow (an unbounded odds ratio under separation)."""
    if value > _LARGEST_LOG:
        notes.add("An exponentiated estimate or limit is too large to represent and is reported as missing")
        return math.nan
    return math.exp(value)


def z_quantile(confidence: float) -> float:
    """The standard normal quantile of a two-sided interval at `confidence` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def wald_test(estimate: float, se: float, df: float | None = None) -> tuple[float, float]:
    """The Wald statistic estimate / se and its two-sided p value, from the normal distribution or, given
    ``df``, from t on ``df`` degrees of freedom; both NaN when the standard error is zero or missing."""
    if not se > 0:
        return math.nan, math.nan
    statistic = estimate / se
    tail = stats.norm.sf(abs(statistic)) if df is None else stats.t.sf(abs(statistic), df)
    return statistic, float(2 * tail)


def wald_rows(names, estimates, ses, *, exponentiate: bool, method: str, n: int, notes: Notes,
              confidence: float, df: float | None = None) -> list[dict]:
    """Tidy rows for coefficients with Wald z tests and intervals: b +/- z se, exponentiated (odds or
    rate ratios, with `std_error` on the log scale) when `exponentiate`; given `df`, t tests and
    intervals on `df` degrees of freedom instead (held in the `df` column)."""
    z = z_quantile(confidence) if df is None else float(stats.t.ppf(1 - (1 - confidence) / 2, df))
    values = []
    for name, b, se in zip(names, estimates, ses, strict=True):
        b, se = float(b), float(se)
        bounds = (b, b - z * se, b + z * se)
        shown = [exp_or_missing(v, notes) for v in bounds] if exponentiate else list(bounds)
        values.append((name, b, se, shown))
    # built after every value so that an overflow sentence reaches all rows
    return [
        row(
            name,
            shown[0],
            se,
            *wald_test(b, se, df),
            shown[1],
            shown[2],
            df=math.nan if df is None else float(df),
            method=method,
            n=n,
            warnings=str(notes),
        )
        for name, b, se, shown in values
    ]


def join(*sentences: str) -> str:
    """Sentences (each possibly several lines) to one ``warnings`` cell, duplicates dropped, in order."""
    seen: list[str] = []
    for text in sentences:
        for line in str(text).splitlines():
            line = line.strip()
            if line and line not in seen:
                seen.append(line)
    return "\n".join(seen)


class Notes:
    """Sentences gathered while a result is computed; ``str(notes)`` is the ``warnings`` cell."""

    def __init__(self) -> None:
        self._sentences: list[str] = []

    def add(self, sentence: str) -> None:
        sentence = sentence.strip()
        if sentence and not sentence.endswith("."):
            sentence += "."
        if sentence and sentence not in self._sentences:
            self._sentences.append(sentence)

    def extend(self, other: Notes) -> None:
        for sentence in other._sentences:
            self.add(sentence)

    def __bool__(self) -> bool:
        return bool(self._sentences)

    def __str__(self) -> str:
        return "\n".join(self._sentences)


# Each translator takes a caught warning and returns a sentence, "" to drop it as noise, or None to
# let the next translator decide; the first answer wins (a registry rather than an if-chain).
Translator = Callable[[_warnings.WarningMessage], "str | None"]


def _library_noise(w: _warnings.WarningMessage) -> str | None:
    # deprecations concern the libraries' authors, not the reader of a result
    if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return ""
    return None


# A fitted probability this close to 0 or 1 is what R's glm reports as "numerically 0 or 1".
SEPARATION_EPS = 1e-8
SEPARATION = (
    "Complete or quasi-complete separation: some fitted probabilities are numerically 0 or 1, so the "
    "separating terms' estimates are unbounded and their standard errors and intervals meaningless."
)


# The counterpart of separation for counts: a fitted mean this close to 0 is a group without events.
ZERO_COUNTS = (
    "Some fitted counts are numerically 0 (a group defined by the terms, such as a period, has no events), "
    "so those terms' rate ratios are 0 in truth, unbounded below on the log scale, and their standard "
    "errors and intervals meaningless."
)


def fitted_at_edge(fitted, family: str) -> str:
    """The sentence for fitted means at the edge of their range, or "": probabilities numerically 0 or 1
    (separation) for the "binomial" family, counts numerically 0 (a group without events) for "poisson"."""
    mu = np.asarray(fitted, dtype=float)
    if family == "binomial" and np.any((mu < SEPARATION_EPS) | (mu > 1 - SEPARATION_EPS)):
        return SEPARATION
    if family == "poisson" and np.any(mu < SEPARATION_EPS):
        return ZERO_COUNTS
    return ""


def _separation(w: _warnings.WarningMessage) -> str | None:
    if issubclass(w.category, sm_exceptions.PerfectSeparationWarning):
        return SEPARATION
    return None


def _convergence(w: _warnings.WarningMessage) -> str | None:
    if issubclass(w.category, (sm_exceptions.ConvergenceWarning, sm_exceptions.IterationLimitWarning)):
        return f"The fitting algorithm did not converge ({str(w.message).strip()})"
    return None


def _hessian(w: _warnings.WarningMessage) -> str | None:
    if issubclass(w.category, sm_exceptions.HessianInversionWarning):
        return "The information matrix could not be inverted, so the standard errors are unreliable"
    return None


def _numerical(w: _warnings.WarningMessage) -> str | None:
    if issubclass(w.category, RuntimeWarning):
        return f"A numerical problem occurred during the computation ({str(w.message).strip()}); check the estimates"
    return None


def _anything_else(w: _warnings.WarningMessage) -> str | None:
    return str(w.message).strip()


TRANSLATORS: list[Translator] = [_library_noise, _separation, _convergence, _hessian, _numerical, _anything_else]


def sentence_for(w: _warnings.WarningMessage) -> str:
    """The plain sentence for one caught warning ("" when it is library noise)."""
    for translate in TRANSLATORS:
        answer = translate(w)
        if answer is not None:
            return answer
    return ""


@contextmanager
def captured(notes: Notes) -> Iterator[Notes]:
    """Catch every warning raised inside the block and add its sentence to ``notes``; print nothing."""
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            yield notes
        finally:
            for w in caught:
                notes.add(sentence_for(w))
