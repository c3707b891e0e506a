"""Notebook 01_data: the patient flow (screened, excluded by reason, included, discharge outcome)."""

from __future__ import annotations

import pandas as pd

from analysis.analyses.results import combine, value
from analysis.config import Study
from analysis.data.derive import MAI_MIN_AGE
from analysis.data.dictionary import raw_tables


def flow_results(flow: pd.DataFrame) -> pd.DataFrame:
    """Every count of the flow table as a ledger entry `flow.<stage>.<period>`."""
    frames = []
    for row in flow.itertuples(index=False):
        name = f"flow.{row.stage}.{row.period}"
        period = "both periods" if row.period == "all" else f"{row.period} period"
        frames.append(value(name, f"Patients: {row.description} ({period})", row.n, "Count", n=row.n))
    return combine(*frames)


def flow_table(flow: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The flow as a table for people: one row per stage, a column per period."""
    wide = flow.pivot_table(index=["step", "stage", "description"], columns="period", values="n", observed=True)
    wide = wide.reset_index().sort_values("step")
    labels = {"before": study.periods.before.label, "after": study.periods.after.label, "all": "Both periods"}
    table = wide[["description", "before", "after", "all"]].rename(columns={"description": "Stage", **labels})
    # stages counted over both periods only (screened, outside the windows) have no per-period count
    return table.astype({v: "Int64" for v in labels.values()}).reset_index(drop=True).rename_axis(columns=None)


def design_results(study: Study) -> pd.DataFrame:
    """The study's design settings that the text reports, so that they too come from the ledger."""
    e = study.eligibility
    harm = raw_tables()["patients"].columns["harm_vas"]
    return combine(
        value("design.min_age", "Eligibility: minimum age in years", e.min_age, "Study file setting"),
        value("design.min_medicines", "Eligibility: minimum number of regular medicines", e.min_medicines,
              "Study file setting"),
        value("design.mai_min_age", "MAI subgroup: minimum age in years", MAI_MIN_AGE, "analysis.data.derive"),
        value("design.harm_score_max", "Potential harm score: top of the visual analogue scale", harm.max,
              "Data dictionary"),
    )
