"""Notebook 05_robustness: an interrupted time series design's binary outcomes as monthly counts, analysed by
segmented binomial regression with seasonality and Newey-West standard errors, with the events averted after
the change (`analysis.stats.its.segmented_counts`), named for the ledger as `its_counts.<outcome>.<term>`.

For a study whose `design.type` is `interrupted_time_series`: each binary outcome with a time series
(`analyses.time_series`, on by default) is aggregated by calendar month from the patient-level rows (events out
of patients); the change point is `design.change_point` (default: the start of the after window), the
seasonality `design.seasonality` (`harmonics`), the Newey-West lag `design.lags`.
`curves` gives, per month, the observed, fitted and counterfactual proportions (`analysis.stats.its.its_curves`),
exported by notebook 05 as `tables/its_curves.csv` for notebook 07's figure `its`.
"""

from __future__ import annotations

import pandas as pd

from analysis.analyses.outcomes import outcome_data
from analysis.analyses.results import combine, named
from analysis.analyses.robustness import time_series_outcomes
from analysis.config import Study
from analysis.stats.its import its_curves, segmented_counts

TERMS = {
    "level_change": ("level_change", "{label}: odds ratio of the level change at the change point (segmented "
                     "binomial regression)"),
    "slope_change": ("slope_change", "{label}: odds ratio of the change in monthly trend at the change point"),
    "pre_trend": ("pre_trend", "{label}: odds ratio per month before the change"),
    "events_averted": ("events_averted", "{label}: events averted after the change (counterfactual minus fitted)"),
    "durbin_watson": ("durbin_watson", "{label}: Durbin-Watson statistic of the residuals"),
    "ljung_box": ("ljung_box", "{label}: Ljung-Box test of the residuals"),
}


def series(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """Events and patients per calendar month, with `time` (months since the first month of the study),
    `month` (the calendar month, 1-12) and `change` (the change point's `time`)."""
    d = outcome_data(tables, study, key)
    dates = pd.to_datetime(d[study.period_column(study.outcomes[key].table)]).dt.to_period("M")
    first = pd.Period(study.period.before.start, freq="M")
    grouped = d.assign(calendar=dates).groupby("calendar", observed=True)["y"].agg(["sum", "size"]).reset_index()
    return pd.DataFrame({
        "calendar": grouped["calendar"].astype(str), "time": [(p - first).n for p in grouped["calendar"]],
        "month": [p.month for p in grouped["calendar"]], "events": grouped["sum"].to_numpy(int),
        "n": grouped["size"].to_numpy(int),
        "change": (pd.Period(study.change_point, freq="M") - first).n,
    })


def _fit(monthly: pd.DataFrame, study: Study) -> pd.DataFrame:
    design = study.design
    return segmented_counts(monthly, "events", "n", "time", float(monthly["change"].iloc[0]), lags=design.lags,
                            family="binomial", month="month", season=design.seasonality, harmonics=design.harmonics)


def its_results(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    return named(_fit(series(tables, study, key), study), f"its_counts.{key}", TERMS, study.outcomes[key].short)


def _outcomes(study: Study) -> list[str]:
    return [k for k in time_series_outcomes(study) if study.outcomes[k].type == "binary"]


def curves(tables: dict[str, pd.DataFrame], study: Study) -> pd.DataFrame:
    """For the figure (notebook 07): per outcome with an estimated fit and month, the observed proportion, the
    fitted one and the counterfactual (no level or slope change), with `period` ("before" the change point or
    "after", from it on) and the events and patients; empty for other designs or when no fit was estimated."""
    columns = ["outcome", "measure", "month", "period", "time", "events", "n", "observed", "fitted", "counterfactual"]
    if study.design.type != "interrupted_time_series":
        return pd.DataFrame(columns=columns)
    parts = []
    design = study.design
    for key in _outcomes(study):
        monthly = series(tables, study, key).sort_values("time")
        fit = _fit(monthly, study)
        if pd.isna(fit.set_index("term").loc["level_change", "estimate"]):
            continue
        change = float(monthly["change"].iloc[0])
        drawn = its_curves(monthly, "events", "n", "time", change, fit, family="binomial", month="month",
                           season=design.seasonality, harmonics=design.harmonics)
        parts.append(pd.DataFrame({
            "outcome": key, "measure": study.outcomes[key].short, "month": monthly["calendar"].to_numpy(),
            "period": ["after" if t >= change else "before" for t in monthly["time"]],
            "time": monthly["time"].to_numpy(), "events": monthly["events"].to_numpy(), "n": monthly["n"].to_numpy(),
            "observed": drawn["observed"].to_numpy(), "fitted": drawn["fitted"].to_numpy(),
            "counterfactual": drawn["counterfactual"].to_numpy()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def results(tables: dict[str, pd.DataFrame], study: Study) -> pd.DataFrame:
    """Every binary outcome with a time series, for an interrupted time series design; empty otherwise."""
    if study.design.type != "interrupted_time_series":
        return combine()
    return combine(*(its_results(tables, study, key) for key in _outcomes(study)))
