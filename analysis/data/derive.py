"""Analysis-ready tables from validated raw tables: periods, eligibility, derived columns, flow.

Pure functions of data frames and the study's settings; nothing here reads or writes files. The
columns and their order are those of `derived.yml` (rendered in data_raw/DICTIONARY.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.config import Eligibility, Periods, Study
from analysis.data.dictionary import derived_tables

PERIODS = ["before", "after"]

# The paper assessed medication appropriateness (MAI) in patients aged 65 or over
MAI_MIN_AGE = 65


def isin(series: pd.Series, values) -> pd.Series:
    """Membership in a set of values, vectorised in Arrow (pandas' isin on Arrow strings loops in
    Python); missing cells are not members."""
    members = values if isinstance(values, pd.Series) else list(values)
    found = pc.fill_null(pc.is_in(pa.array(series, from_pandas=True),
                                  value_set=pa.array(members, type=pa.string(), from_pandas=True)), False)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index)


def assign_period(dates: pd.Series, periods: Periods) -> pd.Series:
    """'before', 'after', or missing (outside both windows, or no date), per row."""
    result = pd.Series(pd.NA, index=dates.index, dtype="object")
    for key in PERIODS:
        window = getattr(periods, key)
        inside = (dates >= pd.Timestamp(window.start)) & (dates <= pd.Timestamp(window.end))
        result[inside.fillna(False).astype(bool)] = key
    return result


def eligibility_mask(patients: pd.DataFrame, eligibility: Eligibility) -> pd.Series:
    return ((patients["age"] >= eligibility.min_age) & (patients["n_medicines"] >= eligibility.min_medicines)
            ).fillna(False).astype(bool)


def _period_columns(dates: pd.Series, period: pd.Series, periods: Periods) -> dict[str, pd.Series]:
    start = pd.Timestamp(periods.before.start)
    return {
        "period": pd.Series(pd.Categorical(period, categories=PERIODS, ordered=True), index=dates.index),
        "after": (period == "after").astype("int64"),
        "month": pd.Series(pc.strftime(pa.array(dates), format="%Y-%m").to_numpy(zero_copy_only=False),
                           index=dates.index, dtype="str"),
        "month_index": ((dates.dt.year - start.year) * 12 + dates.dt.month - start.month).astype("int64"),
    }


def _ordered(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The columns of derived.yml, in its order (optional ones only when present)."""
    spec = derived_tables()[table].columns
    missing = [c for c, col in spec.items() if col.required and c not in frame.columns]
    if missing:
        raise AssertionError(f"derived {table} lacks {missing}: derive.py and derived.yml disagree")
    return frame[[c for c in spec if c in frame.columns]].reset_index(drop=True)


def derive_patients(patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The included patients with the derived columns."""
    period = assign_period(patients["admission_date"], study.periods)
    keep = period.notna() & eligibility_mask(patients, study.eligibility)
    frame = patients.loc[keep].copy()
    period = period[keep]
    for name, values in _period_columns(frame["admission_date"], period, study.periods).items():
        frame[name] = values
    frame["length_of_stay"] = (frame["discharge_date"] - frame["admission_date"]).dt.days.astype("int64")
    frame["age_65_plus"] = frame["age"] >= MAI_MIN_AGE
    frame["has_discharge_outcome"] = frame["error_at_discharge"].notna().to_numpy()
    frame["mai_change_admission"] = frame["mai_admission"] - frame["mai_pre_admission"]
    frame["mai_change_discharge"] = frame["mai_discharge"] - frame["mai_pre_admission"]
    return _ordered(frame, "patients")


def derive_suggestions(suggestions: pd.DataFrame, patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Suggestions made in a period window about an included patient (`patients`: the derived ones)."""
    period = assign_period(suggestions["date"], study.periods)
    keep = period.notna() & isin(suggestions["patient_id"], patients["patient_id"])
    frame = suggestions.loc[keep].copy()
    if "site" in patients.columns:
        rows = pd.Index(patients["patient_id"]).get_indexer(frame["patient_id"])
        frame["site"] = pd.Series(patients["site"].to_numpy()[rows], index=frame.index, dtype="str")
    for name, values in _period_columns(frame["date"], period[keep], study.periods).items():
        frame[name] = values
    return _ordered(frame, "suggestions")


def flow(patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The patient flow: screened, excluded by reason (in order), included, discharge outcome."""
    periods, eligibility = study.periods, study.eligibility
    period = assign_period(patients["admission_date"], periods)
    in_window = period.notna()
    young = in_window & (patients["age"] < eligibility.min_age).to_numpy()
    few = in_window & ~young & (patients["n_medicines"] < eligibility.min_medicines).to_numpy()
    included = in_window & ~young & ~few
    outcome = patients["error_at_discharge"].notna().to_numpy()
    windows = f"{periods.before.label} {periods.before.start} to {periods.before.end}; " \
              f"{periods.after.label} {periods.after.start} to {periods.after.end}"
    stages = [
        ("screened", "patients in the raw table", pd.Series(True, index=patients.index), False),
        ("outside_periods", f"excluded: admitted outside both period windows ({windows})", ~in_window, False),
        ("in_period_window", "admitted in a period window", in_window, True),
        ("under_min_age", f"excluded: aged under {eligibility.min_age}", young, True),
        ("under_min_medicines", f"excluded: fewer than {eligibility.min_medicines} medicines", few, True),
        ("included", "included in the analysis", included, True),
        ("missing_discharge_outcome", "included, no discharge outcome", included & ~outcome, True),
        ("with_discharge_outcome", "included, with a discharge outcome", included & outcome, True),
    ]
    rows = []
    for step, (stage, text, mask, by_period) in enumerate(stages, start=1):
        mask = np.asarray(mask, dtype=bool)
        if by_period:
            rows += [(step, stage, text, key, int((mask & (period == key).to_numpy()).sum())) for key in PERIODS]
        rows.append((step, stage, text, "all", int(mask.sum())))
    spec = derived_tables()["flow"].columns
    frame = pd.DataFrame(rows, columns=list(spec))
    for column in ("stage", "period"):
        frame[column] = pd.Categorical(frame[column], categories=spec[column].values)
    frame["description"] = frame["description"].astype("str")
    return frame.astype({"step": "int64", "n": "int64"})
