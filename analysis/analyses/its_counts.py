"""Notebook 05_robustness: an interrupted time series design's outcomes as monthly counts, analysed by segmented
binomial or Poisson regression with seasonality and Newey-West standard errors, with the events averted after
the change (`analysis.stats.its.segmented_counts`), named for the ledger as `its_counts.<outcome>.<term>`.

For a study whose `design.type` is `interrupted_time_series`, each outcome with a series gets one:

- a binary outcome with a time series (`analyses.time_series`, on by default): its patient-level rows counted by
  calendar month (events out of patients), binomial by default;
- a count outcome with an `exposure` (the denominator): the counts and the exposure summed by calendar month,
  Poisson with the log exposure as offset by default. On a table declared `one_row_per: month` (an aggregated
  table of counts and denominators, no patient rows) each row is already one month; the data step has checked
  that no month comes twice and that the counts are not negative (and, for `family: binomial`, not above the
  denominator); months missing between the first and the last are reported with the results.

With `design.time_unit: week` the points are ISO weeks (Monday to Sunday) instead of calendar months (an
aggregated table then declares `one_row_per: week`, each row dated within its week); the seasonal terms are
Fourier terms of period 52.18 weeks (365.25 / 7) in the week count, and the Newey-West lag counts weeks.

`design.family` overrides the model. The change point is `design.change_point` (default: the start of the after
window), the seasonality `design.seasonality` (`harmonics`), the Newey-West lag `design.lags`. With
`design.group` the series is controlled: the group column's intervention and control values give two series,
and the level and slope changes of the intervention series are estimated relative to the control's
(`level_change_difference`, `slope_change_difference`); a population condition on the group column (which makes
the ordinary analyses describe the intervention series) is lifted for this analysis.
`curves` gives, per month (and series), the observed, fitted and counterfactual rates
(`analysis.stats.its.its_curves`), exported by notebook 05 as `tables/its_curves.csv` for notebook 07's figure
`its`.
"""

from __future__ import annotations

import pandas as pd

from analysis.analyses.outcomes import outcome_data
from analysis.analyses.results import combine, named
from analysis.analyses.robustness import time_series_outcomes
from analysis.config import Study
from analysis.errors import StudyError
from analysis.stats.its import WEEKS_PER_YEAR, its_curves, segmented_counts
from analysis.stats.tidy import join

RATIO = {"binomial": "odds ratio", "poisson": "rate ratio"}
# ISO weeks run Monday to Sunday: pandas' weekly periods ending on Sunday
FREQUENCIES = {"month": "M", "week": "W-SUN"}
TERMS = {
    "level_change": ("level_change", "{label}: {ratio} of the level change at the change point (segmented "
                     "{family} regression{control})"),
    "slope_change": ("slope_change", "{label}: {ratio} of the change in trend per {unit} at the change point{control}"),
    "pre_trend": ("pre_trend", "{label}: {ratio} per {unit} before the change{control}"),
    "events_averted": ("events_averted", "{label}: events averted after the change (counterfactual minus fitted)"),
    "durbin_watson": ("durbin_watson", "{label}: Durbin-Watson statistic of the residuals"),
    "ljung_box": ("ljung_box", "{label}: Ljung-Box test of the residuals"),
}
CONTROLLED_TERMS = {
    "level_change_difference": ("level_change_difference", "{label}: {ratio} of the intervention series' level "
                                "change relative to the control series' (controlled interrupted time series)"),
    "slope_change_difference": ("slope_change_difference", "{label}: {ratio} of the intervention series' change in "
                                "trend per {unit} relative to the control series'"),
    "group_pre_trend": ("group_pre_trend", "{label}: {ratio} per {unit} before the change, intervention series "
                        "relative to the control series (a difference of pre-change trends)"),
}


def family(study: Study, key: str) -> str:
    """The model of the monthly counts: declared (`design.family`), else binomial for a binary outcome and
    Poisson for a count."""
    return study.design.family or ("binomial" if study.outcomes[key].type == "binary" else "poisson")


def _rows(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The outcome's rows; with a control series, both series' (a population condition on the group column
    lifted), with `series` 1 for the intervention's and 0 for the control's."""
    group = study.design.group
    if group is None:
        return outcome_data(tables, study, key)
    outcome = study.outcomes[key]
    both = outcome.model_copy(update={"population": [c for c in outcome.population if c.column != group.column]})
    d = outcome_data(tables, study.model_copy(update={"outcomes": {**study.outcomes, key: both}}), key)
    values = d[group.column].astype("string")
    lacking = [str(v) for v in (group.intervention, group.control) if not (values == str(v)).any()]
    if lacking:
        missing = "intervention" if str(group.intervention) in lacking else "control"
        held = ", ".join(sorted(values.dropna().unique())[:10]) or "nothing"
        raise StudyError(f"{study.file}: design.group: no rows of outcome {key} have {group.column} == "
                         f"{' or '.join(lacking)}, so there is no {missing} series; the column holds {held}. "
                         "Correct the values in design.group, or remove it for an uncontrolled series.")
    d = d[(values == str(group.intervention)) | (values == str(group.control))]
    return d.assign(series=(d[group.column].astype("string") == str(group.intervention)).astype(int).to_numpy())


def series(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """Events and denominators per calendar month, or per ISO week (Monday to Sunday) with `design.time_unit:
    week` (and `series`, with a control series), with `calendar` (the month, 2009-01, or the week's Monday,
    2009-01-05), `time` (months or weeks since the first of the study), `month` (the calendar month, 1-12, of the
    month or of the week's Monday) and `change` (the `time` of the month or week holding the change point). The
    denominator `n` is the patients of a binary outcome or the summed exposure of a count."""
    outcome = study.outcomes[key]
    d = _rows(tables, study, key)
    frequency = FREQUENCIES[study.design.time_unit]
    calendar = pd.to_datetime(d[study.period_column(outcome.table)]).dt.to_period(frequency)
    by = ["calendar"] if study.design.group is None else ["series", "calendar"]
    d = d.assign(calendar=calendar, denominator=1 if outcome.exposure is None else d[outcome.exposure])
    grouped = d.groupby(by, observed=True).agg(events=("y", "sum"), n=("denominator", "sum")).reset_index()
    first = pd.Period(study.period.before.start, freq=frequency)
    shown = [str(p) if frequency == "M" else p.start_time.strftime("%Y-%m-%d") for p in grouped["calendar"]]
    out = pd.DataFrame({
        "calendar": shown, "time": [(p - first).n for p in grouped["calendar"]],
        "month": [p.start_time.month for p in grouped["calendar"]], "events": grouped["events"].to_numpy(float),
        "n": grouped["n"].to_numpy(float), "change": (pd.Period(study.change_point, freq=frequency) - first).n,
    })
    if study.design.group is not None:
        out.insert(0, "series", grouped["series"].to_numpy(int))
    return out


def gaps(monthly: pd.DataFrame, unit: str = "month") -> str:
    """A sentence naming the months (or weeks) with no data between a series' first and last, or ""."""
    missing: set[int] = set()
    for _, part in monthly.groupby("series") if "series" in monthly else [(None, monthly)]:
        times = set(part["time"])
        missing |= {t for t in range(min(times), max(times) + 1) if t not in times}
    if not missing:
        return ""
    first = pd.Period(monthly["calendar"].iloc[0], freq=FREQUENCIES[unit]) - int(monthly["time"].iloc[0])
    named = [str(first + t) if unit == "month" else f"the week of {(first + t).start_time:%Y-%m-%d}"
             for t in sorted(missing)[:6]]
    return (f"{len(missing)} {unit}(s) have no data ({', '.join(named)}{' ...' if len(missing) > 6 else ''}): the "
            f"series has gaps; the trend is fitted through them, and the Newey-West lags count {unit}s with data.")


def season(study: Study) -> dict:
    """The seasonal cycle's position and length for the fit: the calendar month in a year of 12, or, for weeks,
    the week count in a year of 52.18 weeks (calendar-month indicators are refused for weeks at load)."""
    return {"month": "month", "period": 12.0} if study.design.time_unit == "month" else {
        "month": "time", "period": WEEKS_PER_YEAR}


def _fit(monthly: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    design = study.design
    return segmented_counts(monthly, "events", "n", "time", float(monthly["change"].iloc[0]), lags=design.lags,
                            family=family(study, key), season=design.seasonality, harmonics=design.harmonics,
                            group=None if design.group is None else "series", **season(study))


def its_results(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    monthly = series(tables, study, key)
    model = family(study, key)
    controlled = study.design.group is not None
    words = {"ratio": RATIO[model], "family": model,
             "control": ", control series" if controlled else "", "unit": study.design.time_unit}
    terms = {**TERMS, **(CONTROLLED_TERMS if controlled else {})}
    terms = {t: (s, text.replace("{ratio}", words["ratio"]).replace("{family}", words["family"])
                 .replace("{control}", words["control"]).replace("{unit}", words["unit"]))
             for t, (s, text) in terms.items()}
    out = named(_fit(monthly, study, key), f"its_counts.{key}", terms, study.outcomes[key].short)
    gap = gaps(monthly, study.design.time_unit)
    if gap:
        out["warnings"] = [join(w, gap) for w in out["warnings"]]
    return out


def its_outcomes(study: Study) -> list[str]:
    """The outcomes with a monthly series: binary outcomes with a time series, count outcomes with an exposure;
    none unless the design is an interrupted time series."""
    if study.design.type != "interrupted_time_series":
        return []
    binary = set(time_series_outcomes(study))
    return [k for k, o in study.outcomes.items() if (o.type == "binary" and k in binary)
            or (o.type == "count" and o.exposure is not None)]


def curves(tables: dict[str, pd.DataFrame], study: Study) -> pd.DataFrame:
    """For the figure (notebook 07): per outcome with an estimated fit, month (and series: "intervention" or
    "control"; "intervention" without a control series), the observed rate, the fitted one and the
    counterfactual, with `period` ("before" the change point or "after", from it on) and the events and
    denominators; empty for other designs or when no fit was estimated."""
    columns = ["outcome", "measure", "series", "month", "period", "time", "events", "n", "observed", "fitted",
               "counterfactual"]
    parts = []
    design = study.design
    for key in its_outcomes(study):
        monthly = series(tables, study, key)
        fit = _fit(monthly, study, key)
        if pd.isna(fit.set_index("term").loc["level_change", "estimate"]):
            continue
        group = None if design.group is None else "series"
        monthly = monthly.sort_values(["time"] if group is None else ["series", "time"])
        change = float(monthly["change"].iloc[0])
        drawn = its_curves(monthly, "events", "n", "time", change, fit, family=family(study, key),
                           season=design.seasonality, harmonics=design.harmonics, group=group, **season(study))
        named_series = (["intervention"] * len(monthly) if group is None else
                        ["intervention" if s == 1 else "control" for s in monthly["series"]])
        parts.append(pd.DataFrame({
            "outcome": key, "measure": study.outcomes[key].short, "series": named_series,
            "month": monthly["calendar"].to_numpy(),
            "period": ["after" if t >= change else "before" for t in monthly["time"]],
            "time": monthly["time"].to_numpy(), "events": monthly["events"].to_numpy(), "n": monthly["n"].to_numpy(),
            "observed": drawn["observed"].to_numpy(), "fitted": drawn["fitted"].to_numpy(),
            "counterfactual": drawn["counterfactual"].to_numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def results(tables: dict[str, pd.DataFrame], study: Study) -> pd.DataFrame:
    """Every outcome with a monthly series, for an interrupted time series design; empty otherwise."""
    return combine(*(its_results(tables, study, key) for key in its_outcomes(study)))
