"""Recompute what a before-after paper published from its published counts, and say what agrees.

Built for the aggregate tables of the reference study (Grimes et al., BMJ Qual Saf 2014), given as
data frames with the columns of data_raw/published/*.csv; the caller reads the files. It lives with
the analyses, not in `analysis.stats`, because it knows that paper's tables, column names and
outcomes; the statistics it calls are the generic ones of `analysis.stats`. Read the tables with
``dtype=str``: the printed digits decide the tolerance (half a unit in the last printed digit), and
"0.30" read as a number would lose its last digit.

Every comparison table has the tidy columns (our value in ``estimate``/``conf_low``/``conf_high``) and
then ``published``, ``published_low``, ``published_high``, ``tolerance``, ``agree`` and ``note``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import proportions as P
from analysis.stats.ranks import mann_whitney
from analysis.stats.tidy import frame, row

__all__ = [
    "acceptance_denominators",
    "acceptance_sensitivity",
    "published_harm_test",
    "published_nnts",
    "published_odds_ratios",
    "reproduce_published",
]

# Rounding rules an author may have used for an NNT, by name.
ROUNDING = {"nearest": lambda v: math.floor(v + 0.5), "up": math.ceil}
# Intervals for a risk difference an author may have inverted into an NNT interval.
RD_INTERVALS = ("Newcombe hybrid score", "Wald")


@dataclass(frozen=True)
class _Printed:
    value: float
    decimals: int

    @property
    def tolerance(self) -> float:
        return 0.5 * 10.0**-self.decimals


def _printed(text) -> _Printed | None:
    """A published number and its printed decimals; numbers (not text) keep only their shortest repr."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == "":
        return None
    exponent = Decimal(str(text).strip()).as_tuple().exponent
    return _Printed(float(text), max(0, -int(exponent)))


def _agrees(ours: float, printed: _Printed | None) -> bool:
    # the 1e-12 absorbs binary representation of decimal bounds such as 0.145
    return printed is not None and abs(ours - printed.value) <= printed.tolerance + 1e-12


def _comparison(term, ours: pd.Series, printed: list[_Printed | None], note: str, **extra) -> dict:
    agree = all(
        _agrees(ours[q], p)
        for q, p in zip(("estimate", "conf_low", "conf_high"), printed, strict=True)
        if p is not None
    )
    return row(
        term,
        ours["estimate"],
        ours["std_error"],
        ours["statistic"],
        ours["p_value"],
        ours["conf_low"],
        ours["conf_high"],
        method=ours["method"],
        n=int(ours["n"]),
        warnings=ours["warnings"],
        published=printed[0].value if printed[0] else math.nan,
        published_low=printed[1].value if printed[1] else math.nan,
        published_high=printed[2].value if printed[2] else math.nan,
        tolerance=printed[0].tolerance if printed[0] else math.nan,
        agree=agree,
        note=note,
        **extra,
    )


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def published_odds_ratios(primary: pd.DataFrame) -> pd.DataFrame:
    """Every published unadjusted odds ratio (team vs standard) recomputed from its counts.

    Ours is the Woolf (logit) interval, which is also what an unadjusted logistic regression gives
    (Wald). Where the published numbers do not all agree, the note says which do, and whether the
    conditional (exact) odds ratio would explain the difference.

    >>> t = pd.DataFrame({"outcome": ["x"], "standard_events": ["49"], "standard_n": ["121"],
    ...     "team_events": ["10"], "team_n": ["112"], "or_unadjusted": ["0.15"],
    ...     "or_unadjusted_low": ["0.07"], "or_unadjusted_high": ["0.30"]})
    >>> published_odds_ratios(t)[["estimate", "published", "agree"]].round(3).values.tolist()
    [[0.144, 0.15, False]]
    """
    rows = []
    for r in primary.itertuples(index=False):
        counts = (int(r.standard_events), int(r.standard_n), int(r.team_events), int(r.team_n))
        printed = [_printed(r.or_unadjusted), _printed(r.or_unadjusted_low), _printed(r.or_unadjusted_high)]
        woolf = P.odds_ratio_woolf(*counts).iloc[0]
        exact = P.odds_ratio_exact(*counts).iloc[0]
        parts = ("estimate", "conf_low", "conf_high")
        words = {"estimate": "point estimate", "conf_low": "lower limit", "conf_high": "upper limit"}
        failed = [q for q, p in zip(parts, printed, strict=True) if not _agrees(woolf[q], p)]
        d = printed[0].decimals
        if not failed:
            note = "Reproduced from the counts (Woolf interval)."
        else:
            shown = ", ".join(
                f"{words[q]} computes to {woolf[q]:.4f} (prints {_fmt(woolf[q], d)}), published {_fmt(p.value, d)}"
                for q, p in zip(parts, printed, strict=True)
                if q in failed
            )
            exact_ok = [q for q, p in zip(parts, printed, strict=True) if _agrees(exact[q], p)]
            note = f"Does not follow from the counts: {shown}."
            if exact_ok:
                note += (
                    f" The conditional (exact) OR {exact['estimate']:.4f} ({exact['conf_low']:.4f} to "
                    f"{exact['conf_high']:.4f}) matches only the {', '.join(words[q] for q in exact_ok)}, so "
                    "no single method gives all three published numbers."
                )
        rows.append(_comparison(f"or_unadjusted:{r.outcome}", woolf, printed, note))
    return frame(rows)


@dataclass(frozen=True)
class _Counts:
    label: str
    events_before: int
    n_before: int
    events_after: int
    n_after: int


def _nnt_candidates(quantity: str, primary: pd.DataFrame, reported: pd.DataFrame, harm: pd.DataFrame) -> list[_Counts]:
    """The published count sets an NNT could have come from, the paper's primary analysis first.

    ``nnt_<outcome>`` uses the primary-outcome rows named after the outcome (without "any_"), with
    their sensitivity analyses; ``nnt_<category>_error_at_discharge`` uses the harm category's counts
    over the harm table's totals and over all patients.
    """
    outcome = quantity.removeprefix("nnt_").removeprefix("any_")
    matches = primary[primary["outcome"].str.startswith(outcome)]
    out = [
        _Counts(
            f"{r.outcome} ({r.standard_events}/{r.standard_n} vs {r.team_events}/{r.team_n})",
            int(r.standard_events),
            int(r.standard_n),
            int(r.team_events),
            int(r.team_n),
        )
        for r in matches.itertuples(index=False)
    ]
    category = outcome.removesuffix("_error_at_discharge")
    if category in set(harm.iloc[:, 0]):
        counts = harm.set_index(harm.columns[0]).astype(int)
        patients = reported[reported["quantity"] == "patients"].set_index("group")["value"].astype(int)
        denominators = {
            "harm table totals": (int(counts["standard_n"].sum()), int(counts["team_n"].sum())),
            "all patients": (int(patients["standard"]), int(patients["team"])),
        }
        for name, (nb, na) in denominators.items():
            eb, ea = int(counts.loc[category, "standard_n"]), int(counts.loc[category, "team_n"])
            out.append(_Counts(f"{category} harm over {name} ({eb}/{nb} vs {ea}/{na})", eb, nb, ea, na))
    return out


@dataclass(frozen=True)
class _Attempt:
    counts: _Counts
    interval: str
    rounding: str
    rounded: list
    hits: int  # how many of the three published numbers this convention reproduces
    newcombe: pd.Series


def _wald_nnt(c: _Counts) -> tuple[float, float, float]:
    pb, pa = c.events_before / c.n_before, c.events_after / c.n_after
    se = math.sqrt(pb * (1 - pb) / c.n_before + pa * (1 - pa) / c.n_after)
    benefit = pb - pa
    z = float(stats.norm.ppf(0.975))
    return 1 / benefit, 1 / (benefit + z * se), 1 / (benefit - z * se)


def published_nnts(primary: pd.DataFrame, reported: pd.DataFrame, harm: pd.DataFrame) -> pd.DataFrame:
    """Every published NNT (``nnt_*`` rows of the reported table) recomputed, searching the conventions.

    Candidates: each count set the NNT could come from (see the primary-outcome and harm tables),
    the risk-difference interval inverted (Newcombe hybrid score, Wald) and the rounding (to nearest,
    up). Our row is the Newcombe NNT of the candidate that reproduces the most published numbers
    under rounding to nearest (the paper's primary analysis on ties); the note lists every convention
    that reproduces all three numbers, or says plainly that none does.

    >>> primary = pd.DataFrame({"outcome": ["severe_error_at_discharge"], "standard_events": ["6"],
    ...     "standard_n": ["121"], "team_events": ["0"], "team_n": ["112"]})
    >>> reported = pd.DataFrame({"quantity": ["nnt_severe_error_at_discharge"], "group": ["x"],
    ...     "value": ["20"], "low": ["10"], "high": ["142"], "kind": ["nnt_ci95"]})
    >>> harm = pd.DataFrame({"potential_harm_at_discharge": ["none"], "standard_n": ["1"], "team_n": ["1"]})
    >>> published_nnts(primary, reported, harm)["agree"].tolist()
    [True]
    """
    rows = []
    for r in reported[reported["quantity"].str.startswith("nnt_")].itertuples(index=False):
        printed = [_printed(r.value), _printed(r.low), _printed(r.high)]
        target = [p.value for p in printed]
        results = []
        for candidate in _nnt_candidates(r.quantity, primary, reported, harm):
            counts = (candidate.events_before, candidate.n_before, candidate.events_after, candidate.n_after)
            newcombe = P.number_needed_to_treat(*counts).iloc[0]
            values = {
                "Newcombe hybrid score": (newcombe.estimate, newcombe.conf_low, newcombe.conf_high),
                "Wald": _wald_nnt(candidate),
            }
            for interval in RD_INTERVALS:
                for rounding, rounder in ROUNDING.items():
                    rounded = [rounder(v) if np.isfinite(v) else None for v in values[interval]]
                    hits = sum(a == b for a, b in zip(rounded, target, strict=True))
                    results.append(_Attempt(candidate, interval, rounding, rounded, hits, newcombe))
        full = [a for a in results if a.hits == 3]
        # max() keeps the first of equals: the paper's primary analysis wins ties
        best = max(
            (a for a in results if a.interval == "Newcombe hybrid score" and a.rounding == "nearest"),
            key=lambda a: a.hits,
        )
        published_text = f"{_fmt(target[0], 0)} ({_fmt(target[1], 0)} to {_fmt(target[2], 0)})"
        if full:
            ways = "; ".join(f"{a.counts.label}, {a.interval} interval, rounded {a.rounding}" for a in full)
            note = f"Reproduced: {published_text} follows from {ways}."
        else:
            tried = "; ".join(
                f"{a.counts.label}, {a.interval}, rounded {a.rounding}: {a.rounded[0]} ({a.rounded[1]} to "
                f"{a.rounded[2]})"
                for a in results
            )
            shown = best.rounded
            note = (
                f"Not reproduced: no candidate gives {published_text}. Shown: {best.counts.label}, Newcombe, "
                f"rounded to nearest, {shown[0]} ({shown[1]} to {shown[2]}). Every candidate: {tried}."
            )
        rows.append(_comparison(r.quantity, best.newcombe, printed, note, counts=best.counts.label))
    return frame(rows)


def published_harm_test(harm: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """The test of the harm distribution (Mann-Whitney, after vs before) from the harm categories.

    The categories are ranked in the table's row order (none < minor < moderate < severe). The paper
    tested the visual-analogue scores, which were not published, and printed p as 0.000, i.e. below
    0.0005: that is all a recomputation from the categories can be checked against.

    >>> harm = pd.DataFrame({"potential_harm_at_discharge": ["none", "minor", "moderate", "severe"],
    ...     "standard_n": ["35", "6", "54", "6"], "team_n": ["93", "2", "13", "0"]})
    >>> reported = pd.DataFrame({"quantity": ["harm_vas_median"], "note": ["Mann-Whitney p printed as 0.000"]})
    >>> bool(published_harm_test(harm, reported)["agree"].iloc[0])
    True
    """
    scores = np.arange(len(harm))
    before = np.repeat(scores, harm["standard_n"].astype(int))
    after = np.repeat(scores, harm["team_n"].astype(int))
    test = mann_whitney(before, after).set_index("term").loc["mann_whitney"].copy()
    notes = reported.loc[reported["quantity"] == "harm_vas_median", "note"].dropna()
    printed_p = next((s.split("printed as")[-1].strip().split()[0] for s in notes if "printed as" in s), None)
    published = _printed(printed_p)
    agree = published is not None and test["p_value"] < published.value + published.tolerance
    categories = " < ".join(str(c) for c in harm.iloc[:, 0])
    return frame(
        [
            row(
                "mann_whitney:potential_harm_at_discharge",
                statistic=test["statistic"],
                p_value=test["p_value"],
                method=test["method"] + f"; categories ranked {categories}",
                n=int(test["n"]),
                warnings=test["warnings"],
                published=published.value if published else math.nan,
                published_low=math.nan,
                published_high=math.nan,
                tolerance=published.tolerance if published else math.nan,
                agree=bool(agree),
                note=(
                    f"The paper printed p as {printed_p} (below {published.tolerance:g}); from the categories "
                    f"p = {test['p_value']:.2g}. The paper tested visual-analogue scores, which were not published."
                    if published
                    else "No published p-value found."
                ),
            )
        ]
    )


def reproduce_published(primary: pd.DataFrame, reported: pd.DataFrame, harm: pd.DataFrame) -> pd.DataFrame:
    """The whole comparison: published odds ratios, NNTs and the harm test, one row each."""
    out = pd.concat(
        [published_odds_ratios(primary), published_nnts(primary, reported, harm), published_harm_test(harm, reported)],
        ignore_index=True,
    )
    out["counts"] = out["counts"].fillna("")
    return out


def _smallest_denominator(percent: Fraction, decimals: int, limit: int = 10_000) -> tuple[int, int]:
    half = Fraction(1, 2 * 10**decimals)
    low, high = percent - half, percent + half
    for n in range(1, limit + 1):
        x = math.ceil(low * n / 100)
        if x <= n and Fraction(100 * x, n) < high:
            return n, x
    raise ValueError(f"no denominator up to {limit} gives {percent}% to {decimals} decimals")


def _percentages(reported: pd.DataFrame, quantity: str, decimals: dict | None) -> dict[str, tuple[Fraction, int, str]]:
    rows = reported[reported["quantity"] == quantity]
    if rows.empty:
        raise ValueError(f"no rows with quantity {quantity!r} in the reported table")
    out = {}
    for r in rows.itertuples(index=False):
        text = str(r.value).strip()
        d = decimals[r.group] if decimals and r.group in decimals else _printed(text).decimals
        out[r.group] = (Fraction(Decimal(text)), d, text)
    return out


def acceptance_denominators(
    reported: pd.DataFrame, *, quantity: str = "suggestion_acceptance_pct", decimals: dict | None = None
) -> pd.DataFrame:
    """The smallest denominators consistent with percentages published without them, with the working.

    For a percentage v printed to d decimals the true value lies in [v - h, v + h), h = 0.5 x 10^-d
    (rounding half up). The smallest n is the first for which some whole x has 100x/n in that interval,
    computed in exact fractions. ``decimals`` overrides the decimals read from the text per group (a
    transcription such as "98.0" of a percentage printed as "98%").

    One row per group: ``estimate`` = the smallest n, ``n`` = that n, extra columns ``published``,
    ``decimals``, ``interval``, ``events`` and ``working``.

    >>> r = pd.DataFrame({"quantity": ["suggestion_acceptance_pct"] * 2, "group": ["standard", "team"],
    ...     "value": ["67.5", "98"]})
    >>> acceptance_denominators(r)["estimate"].tolist()
    [40.0, 40.0]
    """
    rows = []
    for group, (percent, d, _) in _percentages(reported, quantity, decimals).items():
        n, x = _smallest_denominator(percent, d)
        half = Fraction(1, 2 * 10**d)
        exact = Fraction(100 * x, n)
        working = (
            f"{float(percent):.{d}f}% printed to {d} decimal{'s' if d != 1 else ''} means a true value in "
            f"[{float(percent - half):g}, {float(percent + half):g})%; no n below {n} has a whole x with 100x/n in "
            f"that range; {x}/{n} = {float(exact):.4g}%"
        )
        if exact == percent - half:
            working += " (exactly on the lower boundary: it prints as the published value only when halves round up)"
        rows.append(
            row(
                f"smallest_denominator:{group}",
                float(n),
                method="Smallest n with a whole x such that 100x/n rounds (half up) to the published percentage",
                n=n,
                published=float(percent),
                decimals=d,
                interval=f"[{float(percent - half):g}, {float(percent + half):g})",
                events=x,
                working=working,
            )
        )
    return frame(rows)


def acceptance_sensitivity(
    reported: pd.DataFrame,
    *,
    quantity: str = "suggestion_acceptance_pct",
    before: str = "standard",
    after: str = "team",
    denominators=(50, 100, 200, 400),
    decimals: dict | None = None,
) -> pd.DataFrame:
    """How the chi-square and Fisher p-values for two published percentages depend on the unknown n.

    Scenarios: the smallest denominators (see :func:`acceptance_denominators`), then the same n in both
    periods for each of ``denominators``. Events are the whole number nearest to the percentage of n;
    when no whole number reproduces the percentage at its printed precision the row says so. Rows per
    scenario: ``chi2`` (Pearson, no continuity correction), ``chi2_corrected`` (Yates) and ``fisher``,
    with extra columns ``scenario``, ``events_before``, ``n_before``, ``pct_before``, ``events_after``,
    ``n_after``, ``pct_after`` and ``note``.
    """
    pct = _percentages(reported, quantity, decimals)
    smallest = acceptance_denominators(reported, quantity=quantity, decimals=decimals).set_index("term")
    scenarios = [
        (
            "smallest",
            int(smallest.loc[f"smallest_denominator:{before}", "n"]),
            int(smallest.loc[f"smallest_denominator:{after}", "n"]),
        )
    ]
    scenarios += [(f"{n} per period", n, n) for n in denominators]
    rows = []
    for name, nb, na in scenarios:
        events, notes = {}, []
        for group, n in ((before, nb), (after, na)):
            percent, d, text = pct[group]
            x = math.floor(percent * n / 100 + Fraction(1, 2))
            half = Fraction(1, 2 * 10**d)
            if not -half <= Fraction(100 * x, n) - percent < half:
                notes.append(f"{text}% is not attainable with n = {n}; nearest {x}/{n} = {100 * x / n:.4g}%")
            events[group] = x
        eb, ea = events[before], events[after]
        parts = pd.concat(
            [P.chi2_test(eb, nb, ea, na), P.chi2_test(eb, nb, ea, na, correction=True), P.fisher_test(eb, nb, ea, na)],
            ignore_index=True,
        )
        for r in parts.itertuples(index=False):
            rows.append(
                row(
                    r.term,
                    r.estimate,
                    r.std_error,
                    r.statistic,
                    r.p_value,
                    r.conf_low,
                    r.conf_high,
                    method=r.method,
                    n=int(r.n),
                    warnings=r.warnings,
                    scenario=name,
                    events_before=eb,
                    n_before=nb,
                    pct_before=100 * eb / nb,
                    events_after=ea,
                    n_after=na,
                    pct_after=100 * ea / na,
                    note="; ".join(notes),
                )
            )
    return frame(rows)
