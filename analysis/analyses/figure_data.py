"""Notebook 07_figures: the frames each publication figure is drawn from.

Numbers come from the ledger (proportions, odds ratios, published values) and from the tables the
other notebooks exported (harm, monthly series, acceptance by team); only the MAI distribution,
which no summary can show, is drawn from the derived patient table.
"""

from __future__ import annotations

import pandas as pd

from analysis.analyses.secondary import CHANGES, mai_subgroup
from analysis.config import Study
from analysis.ledger import Entry

PROPORTION_OUTCOMES = {
    "admission_error": "Error at admission",
    "discharge_error": "Error at discharge",
    "severe_discharge_error": "Potentially severe error at discharge",
    "acceptance": "Suggestion accepted",
}
FOREST_ROWS = [
    ("Error at admission", "Unadjusted", "admission_error.odds_ratio_unadjusted"),
    ("Error at admission", "Adjusted, mixed-effects", "admission_error.odds_ratio_adjusted"),
    ("Error at admission", "GEE, population-averaged", "admission_error.odds_ratio_gee"),
    ("Error at discharge", "Unadjusted", "discharge_error.odds_ratio_unadjusted"),
    ("Error at discharge", "Adjusted, mixed-effects", "discharge_error.odds_ratio_adjusted"),
    ("Error at discharge", "GEE, population-averaged", "discharge_error.odds_ratio_gee"),
    ("Error at discharge", "Missing as error", "discharge_error_missing_as_error.odds_ratio_adjusted"),
    ("Error at discharge", "Missing as no error", "discharge_error_missing_as_no_error.odds_ratio_adjusted"),
]


def _labels(study: Study) -> dict[str, str]:
    return {"before": study.periods.before.label, "after": study.periods.after.label}


def proportions(entries: dict[str, Entry], study: Study) -> pd.DataFrame:
    rows = []
    for key, label in PROPORTION_OUTCOMES.items():
        for period, period_label in _labels(study).items():
            p, events = entries[f"{key}.proportion_{period}"], entries[f"{key}.events_{period}"]
            rows.append({"outcome": label, "period": period, "period_label": period_label, "estimate": p.estimate,
                         "conf_low": p.conf_low, "conf_high": p.conf_high, "events": int(events.estimate),
                         "n": p.n})
    return pd.DataFrame(rows)


def forest(entries: dict[str, Entry]) -> pd.DataFrame:
    rows = []
    for outcome, analysis, name in FOREST_ROWS:
        entry = entries[name]
        published = entry.published
        rows.append({"outcome": outcome, "analysis": analysis, "estimate": entry.estimate,
                     "conf_low": entry.conf_low, "conf_high": entry.conf_high,
                     "published_estimate": published.estimate if published else float("nan"),
                     "published_low": published.conf_low if published else float("nan"),
                     "published_high": published.conf_high if published else float("nan")})
    return pd.DataFrame(rows).astype({"published_estimate": float, "published_low": float, "published_high": float})


def harm(table: pd.DataFrame) -> pd.DataFrame:
    return table[["period_label", "severity", "count"]]


def mai(patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    d = mai_subgroup(patients)
    labels = _labels(study)
    frames = [
        pd.DataFrame({"period_label": d["period"].astype(str).map(labels),
                      "timepoint": label.removeprefix("MAI change from ").replace("before admission", "pre-admission"),
                      "change": d[column].astype(int).to_numpy()})
        for column, label in CHANGES.values()
    ]
    return pd.concat(frames, ignore_index=True)


def monthly(table: pd.DataFrame, study: Study) -> pd.DataFrame:
    labels = _labels(study)
    return table.assign(month=pd.to_datetime(table["month"] + "-01"),
                        period_label=table["period"].map(labels))[
        ["measure", "month", "period", "period_label", "events", "n", "proportion", "fitted", "centre", "lcl", "ucl"]]


def acceptance_by_team(table: pd.DataFrame) -> pd.DataFrame:
    return table[["team", "period_label", "accepted", "n", "estimate", "conf_low", "conf_high"]]
