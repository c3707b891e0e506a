"""Analysis-ready tables from validated raw tables: periods, eligibility, derived columns, flow.

Pure functions of data frames and the study's declarations; nothing here reads or writes files.
Every table keeps its declared columns, in the study file's order, then its `derive:` columns, then
`period`, `after` and, when the period comes from dates, `month` and `month_index`
(`derived.yml`, rendered in data_raw/DICTIONARY.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.config import PERIODS, Condition, Derivation, Period, Study

OPERATORS = {">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less}


def isin(series: pd.Series, values) -> pd.Series:
    """Membership in a set of values, vectorised in Arrow (pandas' isin on Arrow strings loops in
    Python); missing cells are not members."""
    members = values if isinstance(values, pd.Series) else list(values)
    found = pc.fill_null(pc.is_in(pa.array(series, from_pandas=True),
                                  value_set=pa.array(members, type=pa.string(), from_pandas=True)), False)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index)


def _as_text(values: pd.Series) -> pd.Series:
    """Cells as the text a study file compares them with: true/false in lower case, numbers without
    a trailing .0, missing cells missing."""
    if pd.api.types.is_bool_dtype(values) or str(values.dtype) == "boolean":
        return values.map({True: "true", False: "false"}, na_action="ignore").astype("object")
    if pd.api.types.is_numeric_dtype(values):
        return values.map(_number_text, na_action="ignore").astype("object")
    return values.astype("object").where(values.notna())


def _number_text(value) -> str:
    """A number as exact text: a whole number without a decimal point, any other as the shortest
    text that reads back the same. (`f"{v:g}"` kept 6 digits: 1234567 and 1234568 both read
    '1.23457e+06', so `code == 1234567` held for both and `value: 2021011` matched no row.)"""
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _number_text(value) if isinstance(value, int | float) else str(value)


def holds(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    """Rows meeting the condition; a missing cell meets no comparison (only `is missing`)."""
    values = frame[condition.column]
    if condition.operator == "is missing":
        return values.isna().astype(bool)
    if condition.operator == "is not missing":
        return values.notna().astype(bool)
    if condition.operator in OPERATORS:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return pd.Series(OPERATORS[condition.operator](numbers.to_numpy(), float(condition.value)), index=frame.index)
    equal = (_as_text(values) == _value_text(condition.value)).fillna(False).astype(bool)
    return equal if condition.operator == "==" else (~equal & values.notna()).astype(bool)


def all_hold(frame: pd.DataFrame, conditions: list[Condition]) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for condition in conditions:
        mask &= holds(frame, condition)
    return mask


def assign_period(values: pd.Series, period: Period) -> pd.Series:
    """'before', 'after', or missing (outside both windows, another value, or an empty cell), per row."""
    result = pd.Series(pd.NA, index=values.index, dtype="object")
    text = None if period.by_date else _as_text(values)
    for key in PERIODS:
        window = period.window(key)
        if period.by_date:
            inside = (values >= pd.Timestamp(window.start)) & (values <= pd.Timestamp(window.end))
        else:
            inside = text == _value_text(window.value)
        result[inside.fillna(False).astype(bool)] = key
    return result


def eligible(frame: pd.DataFrame, study: Study) -> pd.Series:
    """Rows of the main table meeting every eligibility criterion."""
    mask = pd.Series(True, index=frame.index)
    for rule in study.eligibility.values():
        mask &= all_hold(frame, rule.keep)
    return mask


def _period_columns(values: pd.Series, period_of_row: pd.Series, period: Period) -> dict[str, pd.Series]:
    columns = {
        "period": pd.Series(pd.Categorical(period_of_row, categories=list(PERIODS), ordered=True),
                            index=values.index),
        "after": (period_of_row == "after").astype("int64"),
    }
    if period.by_date:
        start = pd.Timestamp(period.before.start)
        columns["month"] = pd.Series(pc.strftime(pa.array(values), format="%Y-%m").to_numpy(zero_copy_only=False),
                                     index=values.index, dtype="str")
        columns["month_index"] = ((values.dt.year - start.year) * 12 + values.dt.month - start.month).astype("int64")
    return columns


def days_between(frame: pd.DataFrame, derivation: Derivation) -> pd.Series:
    """Whole days from the start date to the end date, per row (missing where either is). The data
    step refuses counts below 0 or above `derivation.max_days` (validate.py); this is what both use."""
    start, end = derivation.days_between
    return (frame[end] - frame[start]).dt.days


def _derived(frame: pd.DataFrame, study: Study, table: str) -> pd.DataFrame:
    for name, derivation in study.tables[table].derive.items():
        if derivation.days_between is not None:
            days = days_between(frame, derivation)
            frame[name] = days.astype("int64") if days.notna().all() else days.astype("Int64")
        else:
            a, b = derivation.difference
            frame[name] = frame[a] - frame[b]
    return frame


def derive_table(name: str, frame: pd.DataFrame, study: Study, parents: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The included rows of one table with its derived columns.

    The main table keeps rows in a period that meet the eligibility; a table that `belongs_to`
    another keeps the rows whose parent was included, in the period of its own period column if it
    has one, else its parent's.
    """
    source = study.tables[name]
    frame = frame.copy()
    own = study.period_column(name)
    if source.belongs_to is not None:
        parent, key = parents[source.belongs_to], study.tables[source.belongs_to].key
        # Rows of excluded parents are dropped before copying, so that every copied value exists and
        # the column keeps the parent's dtype (reindexing with absent keys, then `.to_numpy()`, made
        # an integer column float64 and a string column object).
        frame = frame.loc[isin(frame[key].astype("str"), parent[key].astype("str")).to_numpy(bool)].copy()
        by_key = parent.set_index(parent[key].astype("str"))
        # copied from the parent row: declared columns, and the period when the table has no column of its own
        for column in [*source.inherit, *([] if source.has(own) else [own])]:
            frame[column] = by_key[column].reindex(frame[key].astype("str")).array
    keep = pd.Series(True, index=frame.index)
    frame = _derived(frame, study, name)
    period_of_row = assign_period(frame[own], study.period)
    keep &= period_of_row.notna()
    if name == study.main_table:
        keep &= eligible(frame, study)
    frame = frame.loc[keep.to_numpy(bool)].copy()
    for column, values in _period_columns(frame[own], period_of_row[keep.to_numpy(bool)], study.period).items():
        frame[column] = values
    return frame.reset_index(drop=True)


def derive_all(tables: dict[str, pd.DataFrame], study: Study) -> dict[str, pd.DataFrame]:
    """Every table derived, parents before the tables that belong to them."""
    done: dict[str, pd.DataFrame] = {}
    pending = list(study.tables)
    while pending:
        name = next(n for n in pending if study.tables[n].belongs_to in (None, *done))
        done[name] = derive_table(name, tables[name], study, done)
        pending.remove(name)
    return {name: done[name] for name in study.tables}


def flow(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The flow of the main table's rows: screened, excluded by reason (in order), included, and
    with/without each outcome that asks to be counted in the flow."""
    name = study.main_table
    unit, period = study.unit(name), study.period
    frame = _derived(frame.copy(), study, name)
    period_of_row = assign_period(frame[study.period_column(name)], period)
    in_period = period_of_row.notna()
    column = study.period_column(name)
    if period.by_date:
        windows = "; ".join(f"{w.label} {w.start} to {w.end}" for w in (period.before, period.after))
        outside = f"excluded: {column} outside both period windows ({windows})"
    else:
        outside = f"excluded: {column} neither '{period.before.value}' nor '{period.after.value}'"
    stages = [
        ("screened", f"{unit} in the raw table", pd.Series(True, index=frame.index), False),
        ("outside_periods", outside, ~in_period, False),
        ("in_period_window", "in a period" if not period.by_date else "in a period window", in_period, True),
    ]
    remaining = in_period.copy()
    for key, rule in study.eligibility.items():
        excluded = remaining & ~all_hold(frame, rule.keep)
        stages.append((key, f"excluded: {rule.excluded}", excluded, True))
        remaining &= ~excluded
    stages.append(("included", "included in the analysis", remaining, True))
    for outcome in study.outcomes.values():
        if outcome.flow is not None and outcome.table == name:
            recorded = frame[outcome.column].notna()
            words = outcome.flow.replace("_", " ")
            stages += [(f"missing_{outcome.flow}", f"included, no {words}", remaining & ~recorded, True),
                       (f"with_{outcome.flow}", f"included, with a {words}", remaining & recorded, True)]
    rows = []
    for step, (stage, text, mask, by_period) in enumerate(stages, start=1):
        mask = np.asarray(mask, dtype=bool)
        if by_period:
            rows += [(step, stage, text, key, int((mask & (period_of_row == key).to_numpy()).sum())) for key in PERIODS]
        rows.append((step, stage, text, "all", int(mask.sum())))
    result = pd.DataFrame(rows, columns=["step", "stage", "description", "period", "n"])
    result["stage"] = pd.Categorical(result["stage"], categories=list(dict.fromkeys(s[0] for s in stages)))
    result["period"] = pd.Categorical(result["period"], categories=[*PERIODS, "all"])
    result["description"] = result["description"].astype("str")
    return result.astype({"step": "int64", "n": "int64"})
