"""Notebook 05_robustness: what an uncontrolled before-after comparison cannot show on its own.

Monthly proportions of the binary outcomes the study asks for (`time_series`), as an interrupted
time series (segmented regression with Newey-West errors: was there a step at the change beyond
the secular trend?) and p-charts (was either period stable?); and the mixed-model odds ratio with
each cluster left out in turn (`leave_one_cluster_out`: does one cluster drive it?). Without dates,
or with too few months or clusters, each is skipped with a sentence saying why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import stats
from analysis.analyses.outcomes import formula, outcome_data
from analysis.analyses.results import combine, named, not_estimated, value
from analysis.config import PERIODS, Study

# Cochrane EPOC's minimum for an interrupted time series: at least three time points before and after.
MIN_POINTS = 3
ITS_TERMS = {
    "pre_trend": ("pre_trend", "{label}: monthly trend before the change (proportion per month)"),
    "level_change": ("level_change", "{label}: step change at the change of service beyond the trend"),
    "slope_change": ("slope_change", "{label}: change in the monthly trend after the change of service"),
    "post_trend": ("post_trend", "{label}: monthly trend after the change"),
}


def newey_west_lags(points: int) -> int:
    """Newey and West's (1994) rule of thumb, floor(4 (T/100)^(2/9)): 2 for two years of months."""
    return math.floor(4 * (points / 100) ** (2 / 9))


def time_series_outcomes(study: Study) -> list[str]:
    return [key for key, o in study.outcomes.items() if o.does("time_series")]


def skipped_time_series(study: Study) -> str | None:
    """Why the study has no time series (None when it has one)."""
    if not study.period.by_date:
        return ("No time series: the periods come from a column's values, not from dates, so there is no "
                "time axis for monthly proportions, segmented regression or p-charts.")
    if not time_series_outcomes(study):
        return "No time series: no outcome asks for one (`time_series`)."
    return None


def monthly(tables: dict[str, pd.DataFrame], study: Study) -> pd.DataFrame:
    """Events and denominators per calendar month for each outcome with a time series, with the
    months since the start."""
    frames = []
    for key in time_series_outcomes(study):
        d = outcome_data(tables, study, key)
        grouped = d.groupby(["month", "month_index", "period"], observed=True)["y"].agg(["sum", "size"])
        grouped = grouped.reset_index().rename(columns={"sum": "events", "size": "n"})
        frames.append(grouped.assign(key=key, measure=study.outcomes[key].short))
    columns = ["key", "measure", "month", "month_index", "period", "post", "events", "n", "proportion"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    out["post"] = (out["period"] == "after").astype(int)
    out["proportion"] = out["events"] / out["n"]
    out["period"] = out["period"].astype(str)
    return out[columns]


def _fitted(fit: pd.DataFrame, series: pd.DataFrame) -> np.ndarray:
    coef = fit.set_index("term")["estimate"]
    t, post = series["month_index"].to_numpy(float), series["post"].to_numpy(float)
    t0 = t[post == 1].min()
    return (coef["intercept"] + coef["pre_trend"] * t + coef["level_change"] * post
            + coef["slope_change"] * (t - t0) * post)


def time_series(series: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segmented regression and p-chart per measure: (results frame, the monthly table with the fitted
    line and the control limits added, for the figure). A measure with fewer than three months in a
    period is recorded as not estimated."""
    results, tables = [], []
    for key, d in series.groupby("key", sort=False):
        d = d.sort_values("month_index")
        label = d["measure"].iloc[0]
        points = d.groupby("period")["month_index"].nunique().reindex(list(PERIODS), fill_value=0)
        if points.min() < MIN_POINTS:
            reason = (f"Not estimated: {points['before']} month(s) before and {points['after']} after; an "
                      f"interrupted time series needs at least {MIN_POINTS} time points on each side (Cochrane "
                      "EPOC).")
            results.append(not_estimated(f"its.{key}", ITS_TERMS, label, reason))
            continue
        lags = newey_west_lags(len(d))
        fit = stats.segmented_regression(d, "proportion", "month_index", "post", lags=lags, weights="n")
        results.append(named(fit, f"its.{key}", ITS_TERMS, label))
        chart = stats.p_chart(d, "month_index", "events", "n", period="period")
        outside = chart.groupby("period")["outside_limits"].sum()
        centres = chart.groupby("period")["centre_line"].first()
        for period in PERIODS:
            results.append(value(f"pchart.{key}.centre_{period}", f"{label}: p-chart centre line (pooled "
                                 f"proportion), {period}", centres[period], chart["method"].iloc[0]))
            results.append(value(f"pchart.{key}.months_outside_{period}", f"{label}: months outside the p-chart's "
                                 f"3-sigma limits, {period}", int(outside[period]), chart["method"].iloc[0],
                                 n=int((chart["period"] == period).sum())))
        tables.append(d.assign(fitted=_fitted(fit, d), centre=chart["centre_line"].to_numpy(),
                               lcl=chart["conf_low"].to_numpy(), ucl=chart["conf_high"].to_numpy(), lags=lags))
    return combine(*results), (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame())


def leave_one_out_outcomes(study: Study) -> list[str]:
    return [key for key, o in study.outcomes.items() if o.does("mixed") and o.does("leave_one_cluster_out")]


def leave_one_cluster_out(tables: dict[str, pd.DataFrame], study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mixed-model odds ratio of each outcome asking for it, refitted without each cluster in turn:
    (results frame with the smallest and largest, the table of every refit). Skipped, with the reason
    recorded, with no cluster, fewer than three clusters, or more than the study's cap (each refit
    costs a model fit)."""
    cluster = study.clusters.primary
    rows, results = [], []
    for key in leave_one_out_outcomes(study):
        outcome = study.outcomes[key]
        data = outcome_data(tables, study, key)
        names = {which: (f"leave_one_{cluster}_out_{which}", f"{{label}}: {which} odds ratio with one {cluster} "
                                                              "left out") for which in ("smallest", "largest")}
        units = sorted(data[cluster].dropna().unique()) if cluster else []
        cap = study.robustness.leave_one_cluster_out_max
        reason = ("the study declares no cluster" if not cluster else
                  "every analysed row has the same outcome value" if data["y"].nunique() < 2 else
                  f"{len(units)} {cluster} value(s); leaving one out needs at least 3" if len(units) < 3 else
                  f"{len(units)} {cluster} values, above the cap of {cap} refits "
                  "(robustness.leave_one_cluster_out_max)" if len(units) > cap else None)
        if reason is not None:
            results.append(not_estimated(key, names, outcome.label, f"Not estimated (leave one out): {reason}."))
            continue
        for unit in units:
            fit = stats.mixed_logistic(data[data[cluster] != unit], formula(study, key), cluster,
                                       seed=study.seeds.models)
            after = fit.set_index("term").loc["after"]
            rows.append({"outcome": key, "label": outcome.label, f"{cluster}_left_out": unit,
                         "estimate": after["estimate"], "conf_low": after["conf_low"],
                         "conf_high": after["conf_high"], "n": int(after["n"]), "warnings": after["warnings"]})
        table = pd.DataFrame([r for r in rows if r["outcome"] == key])
        if table["estimate"].isna().all():
            results.append(not_estimated(key, names, outcome.label, "Not estimated (leave one out): no refit "
                                         "gave an estimate; the warnings in the table of refits say why."))
            continue
        for which, index in (("smallest", table["estimate"].idxmin()), ("largest", table["estimate"].idxmax())):
            row = table.loc[index]
            frame = value(f"{key}.{names[which][0]}", names[which][1].format(label=outcome.label),
                          row["estimate"], f"Mixed-effects logistic regression as the main analysis, without "
                          f"{cluster} {row[f'{cluster}_left_out']}", n=int(row["n"]))
            results.append(frame.assign(conf_low=row["conf_low"], conf_high=row["conf_high"],
                                        warnings=row["warnings"]))
    return combine(*results), pd.DataFrame(rows)


def findings(study: Study, entries: dict) -> str:
    """What the robustness notebook found, as a template of the entries that were estimated."""
    sentences = []
    for key in time_series_outcomes(study):
        label = study.outcomes[key].label
        if entries.get(f"its.{key}.level_change") and entries[f"its.{key}.level_change"].estimate is not None:
            sentences.append(
                f"{label}: beyond the monthly trend ({{{{ its.{key}.pre_trend | pp_ci:2 }}}} per month before), "
                f"the proportion changed by {{{{ its.{key}.level_change | pp_ci }}}} at the change; "
                f"{{{{ pchart.{key}.months_outside_before | int }}}} and "
                f"{{{{ pchart.{key}.months_outside_after | int }}}} months fell outside the p-chart limits "
                "(before, after).")
    cluster = study.clusters.primary
    for key in leave_one_out_outcomes(study):
        name = f"{key}.leave_one_{cluster}_out_smallest"
        if entries.get(name) and entries[name].estimate is not None:
            sentences.append(
                f"{study.outcomes[key].label}: with one {cluster} left out at a time, the odds ratio ranged from "
                f"{{{{ {name} | est }}}} to {{{{ {key}.leave_one_{cluster}_out_largest | est }}}}.")
    return "\n\n".join(sentences) or "Nothing here could be estimated for this study; the sentences above say why."
