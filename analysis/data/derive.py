"""Analysis-ready tables from validated raw tables: periods, eligibility, derived columns, flow.

Pure functions of data frames and the study's declarations; nothing here reads or writes files.
Every table keeps its declared columns, in the study file's order, then its `derive:` columns, then
`period`, `after` and, when the period comes from dates, `month` and `month_index`
(`derived.yml`, rendered in data_raw/DICTIONARY.md).
"""

from __future__ import annotations

from collections.abc import Iterator

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
    return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index, copy=False)


def row_positions(cells: pd.Series, keys: pd.Series) -> np.ndarray:
    """Each cell's position among `keys` (the first, if a key repeats), -1 where it is none of them or
    missing; by Arrow's hash of the texts (pandas' reindex on a million text keys took seconds)."""
    at = pc.index_in(pa.array(cells.astype("str"), from_pandas=True),
                     value_set=pa.array(keys.astype("str"), from_pandas=True), skip_nulls=True)
    return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


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
    equal = _equal(values, condition.value)
    return equal if condition.operator == "==" else (~equal & values.notna()).astype(bool)


def _equal(values: pd.Series, value) -> pd.Series:
    """Cells equal to a study file's value: as numbers in a numeric column (`== 7` and `== 7.0` and `== 007` are
    7), else as the text written (`ward == 007` is not ward 7; `flag == true` is a true flag)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        return (values.astype(float) == number).fillna(False).astype(bool)
    return (_as_text(values) == _value_text(value)).fillna(False).astype(bool)


def all_hold(frame: pd.DataFrame, conditions: list[Condition]) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for condition in conditions:
        mask &= holds(frame, condition)
    return mask


def period_codes(values: pd.Series, period: Period) -> np.ndarray:
    """Each row's period as its position in PERIODS (0 before, 1 after), -1 for none: outside both windows,
    another value, or an empty cell."""
    codes = np.full(len(values), -1, dtype=np.int8)
    text = None if period.by_date else _as_text(values)
    for number, key in enumerate(PERIODS):
        window = period.window(key)
        if period.by_date:
            inside = (values >= pd.Timestamp(window.start)) & (values <= pd.Timestamp(window.end))
        else:
            inside = text == _value_text(window.value)
        codes[inside.fillna(False).to_numpy(bool)] = number
    return codes


def eligible(frame: pd.DataFrame, study: Study) -> pd.Series:
    """Rows of the main table meeting every eligibility criterion."""
    mask = pd.Series(True, index=frame.index)
    for rule in study.eligibility.values():
        mask &= all_hold(frame, rule.keep)
    return mask


def _period_columns(values: pd.Series, period_of_row: pd.Series, period: Period) -> dict[str, pd.Series]:
    """The period columns of rows in a period (`period_of_row`: their labels)."""
    columns = {
        "period": pd.Series(pd.Categorical(period_of_row, categories=list(PERIODS), ordered=True),
                            index=values.index),
        "after": (period_of_row == "after").astype("int64"),
    }
    if period.by_date:
        start = pd.Timestamp(period.before.start)
        # The rows here are in a period, so no date is missing and they span a few hundred days: each day of
        # the span gets its month's number and text (YYYY-MM, seven bytes) once, and the rows look theirs up
        # by day, the texts laid down as the column's bytes. Arrow's strftime on a million dates took 2.5 s,
        # factorizing the days and taking the texts with Arrow 0.4 s for 4.6 million rows.
        day = values.to_numpy("datetime64[us]").view("int64") // 86_400_000_000
        first_day = int(day.min()) if len(day) else 0
        day -= first_day
        span_months = np.arange(first_day, first_day + int(day.max(initial=0)) + 1).astype("datetime64[D]").astype(
            "datetime64[M]").astype("int64") + 1970 * 12
        texts = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in span_months], dtype="S7")
        offsets = np.arange(0, 7 * len(day) + 1, 7, dtype=np.int64)
        month_text = pa.LargeStringArray.from_buffers(len(day), pa.py_buffer(offsets), pa.py_buffer(texts[day]))
        # copy=False: new arrays, which pandas would copy again
        columns["month"] = pd.Series(month_text.to_pandas().array, index=values.index, copy=False)
        columns["month_index"] = pd.Series((span_months - (start.year * 12 + start.month - 1))[day],
                                           index=values.index, copy=False)
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


def derive_table(name: str, frame: pd.DataFrame, study: Study, parents: dict[str, pd.DataFrame],
                 parent_rows: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The included rows of one table with its derived columns, and where each row given went.

    The main table keeps rows in a period that meet the eligibility; a table that `belongs_to`
    another keeps the rows whose parent was included, in the period of its own period column if it
    has one, else its parent's. `parent_rows`: each row's row in the parent's derived table (-1: none),
    when known already; else found from the keys. Returned with the table: each given row's row in it
    (-1: not included).
    """
    source = study.tables[name]
    given = len(frame)
    # pandas copies on write: a new frame shares the columns until one is assigned, so the caller's stays as
    # it was without copying a million rows (deep copies here took 0.8 s of 2.8)
    frame = frame.copy(deep=False)
    taken = np.arange(given)  # the given rows still in
    own = study.period_column(name)
    if source.belongs_to is not None:
        parent, key = parents[source.belongs_to], study.tables[source.belongs_to].key
        if parent_rows is None:
            parent_rows = row_positions(frame[key], parent[key])
        # Rows of excluded parents are dropped before copying, so that every copied value exists and the
        # column keeps the parent's dtype (reindexing with absent keys, then `.to_numpy()`, made an integer
        # column float64 and a string column object).
        found = parent_rows >= 0
        frame, taken, rows = _rows(frame, found), taken[found], parent_rows[found]
        # copied from the parent row: declared columns, and the period when the table has no column of its own
        for column in [*source.inherit, *([] if source.has(own) else [own])]:
            frame[column] = parent[column].iloc[rows].array
    keep = pd.Series(True, index=frame.index)
    frame = _derived(frame, study, name)
    codes = period_codes(frame[own], study.period)
    keep &= codes >= 0
    if name == study.main_table:
        keep &= eligible(frame, study)
    kept = keep.to_numpy(bool)
    frame, taken = _rows(frame, kept), taken[kept]
    # The periods as a categorical made from their codes: from text, pandas hashes every row's label
    periods = pd.Series(pd.Categorical.from_codes(codes[kept], categories=list(PERIODS), ordered=True),
                        index=frame.index, copy=False)
    for column, values in _period_columns(frame[own], periods, study.period).items():
        frame[column] = values
    placed = np.full(given, -1, dtype=np.int64)
    placed[taken] = np.arange(len(taken))
    return frame.reset_index(drop=True), placed


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows of `mask`; the frame itself when that is every row (selecting copies every column: 0.25 s
    for 3.6 million suggestions, all of whose patients were included)."""
    return frame if mask.all() else frame.loc[mask]


def derive_each(tables: dict[str, pd.DataFrame], study: Study,
                parent_rows: dict[str, np.ndarray] | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
    """Every table derived, parents before the tables that belong to them, each as soon as it is done (the
    data step writes one while it derives the next).

    `parent_rows`, by table: each row's row in the given table it belongs to (-1: none), as validation
    found it (`MappedTable.parent_rows`); the keys are not matched a second time (0.4 s for 3.6 million
    rows). Tables without are matched here.
    """
    done: dict[str, pd.DataFrame] = {}
    placed: dict[str, np.ndarray] = {}
    pending = list(study.tables)
    while pending:
        name = next(n for n in pending if study.tables[n].belongs_to in (None, *done))
        parent, known = study.tables[name].belongs_to, (parent_rows or {}).get(name)
        rows = None if parent is None or known is None else np.where(known >= 0, placed[parent][known], -1)
        done[name], placed[name] = derive_table(name, tables[name], study, done, rows)
        pending.remove(name)
        yield name, done[name]


def derive_all(tables: dict[str, pd.DataFrame], study: Study) -> dict[str, pd.DataFrame]:
    """Every table derived, in the study file's order."""
    done = dict(derive_each(tables, study))
    return {name: done[name] for name in study.tables}


def flow(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The flow of the main table's rows: screened, excluded by reason (in order), included, and
    with/without each outcome that asks to be counted in the flow."""
    name = study.main_table
    unit, period = study.unit(name), study.period
    frame = _derived(frame.copy(deep=False), study, name)
    codes = period_codes(frame[study.period_column(name)], period)
    in_period = pd.Series(codes >= 0, index=frame.index)
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
            rows += [(step, stage, text, key, int((mask & (codes == number)).sum()))
                     for number, key in enumerate(PERIODS)]
        rows.append((step, stage, text, "all", int(mask.sum())))
    result = pd.DataFrame(rows, columns=["step", "stage", "description", "period", "n"])
    result["stage"] = pd.Categorical(result["stage"], categories=list(dict.fromkeys(s[0] for s in stages)))
    result["period"] = pd.Categorical(result["period"], categories=[*PERIODS, "all"])
    result["description"] = result["description"].astype("str")
    return result.astype({"step": "int64", "n": "int64"})
