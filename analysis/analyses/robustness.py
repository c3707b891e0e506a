"""Notebook 05_robustness: what an uncontrolled before-after comparison cannot show on its own.

Monthly proportions as an interrupted time series (segmented regression with Newey-West errors: was
there a step at the change of service beyond the secular trend?), p-charts (was either period
stable?), and the adjusted odds ratios with each team left out in turn (does one team drive them?).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import stats
from analysis.analyses.primary import OUTCOMES, PRIMARY, formula, outcome_data
from analysis.analyses.results import combine, named, value
from analysis.config import Study

MEASURES = {
    "admission_error": "Error at admission",
    "acceptance": "Suggestions accepted",
}
ITS_TERMS = {
    "pre_trend": ("pre_trend", "{label}: monthly trend before the change (proportion per month)"),
    "level_change": ("level_change", "{label}: step change at the change of service beyond the trend"),
    "slope_change": ("slope_change", "{label}: change in the monthly trend after the change of service"),
    "post_trend": ("post_trend", "{label}: monthly trend after the change"),
}


def newey_west_lags(points: int) -> int:
    """Newey and West's (1994) rule of thumb, floor(4 (T/100)^(2/9)): 2 for two years of months."""
    return math.floor(4 * (points / 100) ** (2 / 9))


def monthly(patients: pd.DataFrame, suggestions: pd.DataFrame) -> pd.DataFrame:
    """Events and denominators per calendar month for each measure, with the months since the start."""
    sources = {
        "admission_error": patients.assign(event=patients["error_at_admission"].astype(bool)),
        "acceptance": suggestions.assign(event=suggestions["accepted"].astype(bool)),
    }
    frames = []
    for key, d in sources.items():
        grouped = d.groupby(["month", "month_index", "period"], observed=True)["event"].agg(["sum", "size"])
        grouped = grouped.reset_index().rename(columns={"sum": "events", "size": "n"})
        frames.append(grouped.assign(key=key, measure=MEASURES[key]))
    out = pd.concat(frames, ignore_index=True)
    out["post"] = (out["period"] == "after").astype(int)
    out["proportion"] = out["events"] / out["n"]
    out["period"] = out["period"].astype(str)
    return out[["key", "measure", "month", "month_index", "period", "post", "events", "n", "proportion"]]


def _fitted(fit: pd.DataFrame, series: pd.DataFrame) -> np.ndarray:
    coef = fit.set_index("term")["estimate"]
    t, post = series["month_index"].to_numpy(float), series["post"].to_numpy(float)
    t0 = t[post == 1].min()
    return (coef["intercept"] + coef["pre_trend"] * t + coef["level_change"] * post
            + coef["slope_change"] * (t - t0) * post)


def time_series(series: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segmented regression and p-chart per measure: (results frame, the monthly table with the fitted
    line and the control limits added, for the figure)."""
    results, tables = [], []
    for key, d in series.groupby("key", sort=False):
        d = d.sort_values("month_index")
        label = d["measure"].iloc[0]
        lags = newey_west_lags(len(d))
        fit = stats.segmented_regression(d, "proportion", "month_index", "post", lags=lags, weights="n")
        results.append(named(fit, f"its.{key}", ITS_TERMS, label))
        chart = stats.p_chart(d, "month_index", "events", "n", period="period")
        outside = chart.groupby("period")["outside_limits"].sum()
        centres = chart.groupby("period")["centre_line"].first()
        for period in ("before", "after"):
            results.append(value(f"pchart.{key}.centre_{period}", f"{label}: p-chart centre line (pooled "
                                 f"proportion), {period}", centres[period], chart["method"].iloc[0]))
            results.append(value(f"pchart.{key}.months_outside_{period}", f"{label}: months outside the p-chart's "
                                 f"3-sigma limits, {period}", int(outside[period]), chart["method"].iloc[0],
                                 n=int((chart["period"] == period).sum())))
        tables.append(d.assign(fitted=_fitted(fit, d), centre=chart["centre_line"].to_numpy(),
                               lcl=chart["conf_low"].to_numpy(), ucl=chart["conf_high"].to_numpy(), lags=lags))
    return combine(*results), pd.concat(tables, ignore_index=True)


def leave_one_team_out(patients: pd.DataFrame, study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The adjusted mixed-effects odds ratio of each primary outcome, refitted without each team in turn:
    (results frame with the smallest and largest, the table of every refit)."""
    cluster = study.clusters.primary
    rows, results = [], []
    for key in PRIMARY:
        outcome = OUTCOMES[key]
        data = outcome_data(patients, outcome)
        for team in sorted(data[cluster].unique()):
            fit = stats.mixed_logistic(data[data[cluster] != team], formula(study, outcome), cluster,
                                       seed=study.seeds.models)
            after = fit.set_index("term").loc["after"]
            rows.append({"outcome": key, "label": outcome.label, f"{cluster}_left_out": team,
                         "estimate": after["estimate"], "conf_low": after["conf_low"],
                         "conf_high": after["conf_high"], "n": int(after["n"]), "warnings": after["warnings"]})
        table = pd.DataFrame([r for r in rows if r["outcome"] == key])
        for which, index in (("smallest", table["estimate"].idxmin()), ("largest", table["estimate"].idxmax())):
            row = table.loc[index]
            frame = value(f"{key}.leave_one_{cluster}_out_{which}",
                          f"{outcome.label}: {which} adjusted odds ratio with one {cluster} left out",
                          row["estimate"], f"Mixed-effects logistic regression as the primary analysis, without "
                          f"{cluster} {row[f'{cluster}_left_out']}", n=int(row["n"]))
            results.append(frame.assign(conf_low=row["conf_low"], conf_high=row["conf_high"],
                                        warnings=row["warnings"]))
    return combine(*results), pd.DataFrame(rows)
