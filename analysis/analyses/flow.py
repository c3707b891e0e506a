"""Notebook 01_data: the flow of the main table's rows (screened, excluded by reason, included, and
with or without the outcomes the study counts there), and the study's design settings."""

from __future__ import annotations

import pandas as pd

from analysis.analyses.results import combine, value
from analysis.config import Condition, Study
from analysis.data.dictionary import study_table


def flow_results(flow: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Every count of the flow table as a ledger entry `flow.<stage>.<period>`."""
    frames = []
    unit = study.unit(study.main_table).capitalize()
    for row in flow.itertuples(index=False):
        name = f"flow.{row.stage}.{row.period}"
        period = "both periods" if row.period == "all" else f"{row.period} period"
        frames.append(value(name, f"{unit}: {row.description} ({period})", int(row.n), "Count", n=int(row.n)))
    return combine(*frames)


def flow_table(flow: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The flow as a table for people: one row per stage, a column per period."""
    wide = flow.pivot_table(index=["step", "stage", "description"], columns="period", values="n", observed=True)
    wide = wide.reset_index().sort_values("step")
    labels = {**study.period.labels(), "all": "Both periods"}
    table = wide[["description", "before", "after", "all"]].rename(columns={"description": "Stage", **labels})
    # stages counted over both periods only (screened, outside the windows) have no per-period count
    return table.astype({v: "Int64" for v in labels.values()}).reset_index(drop=True).rename_axis(columns=None)


def _thresholds(prefix: str, conditions: list[Condition], what: str) -> list[pd.DataFrame]:
    return [value(f"{prefix}.{c.column}", f"{what}: {c}", c.value, "Study file setting")
            for c in conditions if isinstance(c.value, float)]


def design_results(study: Study) -> pd.DataFrame:
    """The numbers in the study's declarations that a text reports (eligibility thresholds, subgroup
    limits, the range of a scored outcome), so that they too come from the ledger:
    `design.eligibility.<criterion>.<column>`, `design.subgroup.<name>.<column>` and
    `design.outcome.<key>.min`/`max`."""
    frames = []
    for key, outcome in study.outcomes.items():
        spec, _ = study_table(study, outcome.table)
        column = spec.columns.get(outcome.column)
        if outcome.type in ("continuous", "count") and column is not None:
            frames += [value(f"design.outcome.{key}.{end}", f"{outcome.label}: {end}imum of the scale",
                             getattr(column, end), "Data dictionary or study file")
                       for end in ("min", "max") if getattr(column, end) is not None]
    for key, rule in study.eligibility.items():
        frames += _thresholds(f"design.eligibility.{key}", rule.keep, f"Eligibility ({rule.excluded} excluded)")
    for name, group in study.subgroups.items():
        frames += _thresholds(f"design.subgroup.{name}", group.where, f"Subgroup ({group.label})")
    return combine(*frames)


def findings(study: Study) -> str:
    """What the data notebook found, as a template of flow entries."""
    unit = study.unit(study.main_table)
    text = (f"Of {{{{ flow.screened.all | int }}}} {unit} in the raw data, {{{{ flow.included.all | int }}}} were "
            f"included: {{{{ flow.included.before | int }}}} in the before period and "
            f"{{{{ flow.included.after | int }}}} in the after period.")
    for outcome in study.outcomes.values():
        if outcome.flow is not None and outcome.table == study.main_table:
            text += (f" A {outcome.flow.replace('_', ' ')} was missing for "
                     f"{{{{ flow.missing_{outcome.flow}.before | int }}}} {unit} before and "
                     f"{{{{ flow.missing_{outcome.flow}.after | int }}}} after.")
    return text
