"""Check a study's raw tables against the data dictionary; report every problem at once.

For each table: read it as text (`analysis.data.read`), translate the file's column names and codes
into the dictionary's (the study file's `columns:` and `values:`), check every cell with a pandera
schema built from the dictionary (type, range, allowed codes, empty cells, unique keys; lazy, so
every failure is collected), then the named rules across columns and tables (`RULES`, one function
per rule named in the dictionaries). All problems become one `StudyError` that lists each with its
file, row (as the user's spreadsheet numbers it), column (as the user's file names it), value (as
written in the file) and rule, and says what to do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from analysis.config import PERIODS, Study, TableSource
from analysis.data.derive import days_between, eligible, isin, period_codes, row_positions
from analysis.data.dictionary import TYPE_WORDS, Column, Table, allowed, published_tables, study_table
from analysis.data.read import ISO_DATE, RawTable, excerpt, guess_header_row, read_raw
from analysis.errors import StudyError
from analysis.paths import relative, resolve

MAX_LISTED = 200  # violations written out in full; the rest are counted per column and rule
MAX_NAMES = 30  # a file's column names quoted in a message
BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # what counts as a number (no inf, no comma decimals)
# The spellings YAML 1.1 reads as true/false: a study file's `yes: true` has the key True, and the
# file's cells still say "yes".
YAML_TRUE = ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y")
YAML_FALSE = ("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N")


@dataclass(frozen=True)
class Violation:
    """One problem: where it is (file, row, column as the user names them), the value, the rule."""

    file: str
    rule: str
    problem: str
    fix: str
    columns: tuple[str, ...] = ()
    row: int | None = None
    value: str | None = None

    def describe(self, rows: list[int] | None = None) -> str:
        """One line; `rows`: every row with this same problem, to name them together."""
        rows = rows or ([self.row] if self.row is not None else [])
        parts = [self.file]
        if len(rows) == 1:
            parts.append(f"row {rows[0]}")
        elif rows:
            parts.append(f"rows {_ranges(rows)} ({len(rows)} rows)")
        if self.columns:
            names = ", ".join(f"'{c}'" for c in self.columns)
            parts.append(f"column {names}" if len(self.columns) == 1 else f"columns {names}")
        if self.value is not None:
            parts.append(f"value '{excerpt(self.value)}'")
        return f"{', '.join(parts)}: {self.problem} (rule: {self.rule})"


def _ranges(rows: list[int]) -> str:
    """2, 3, 4, 7 -> '2-4, 7'."""
    spans, start = [], rows[0]
    for previous, current in zip(rows, [*rows[1:], None], strict=True):
        if current != previous + 1:
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = current
    return ", ".join(spans)


@dataclass
class MappedTable:
    """A raw table with the dictionary's column names and codes, still as text."""

    name: str
    spec: Table
    raw: RawTable
    text: pd.DataFrame  # dictionary columns present in the file, recoded, text
    file_names: dict[str, str]  # dictionary column -> the file's column name
    date_format: str
    study_key: str
    parsed: dict[str, pd.Series] = field(default_factory=dict)  # by dictionary type; failed cells empty
    typed: pd.DataFrame = field(default_factory=pd.DataFrame)  # parsed, with the dictionary's dtypes
    # for a table that belongs to another: each row's row (position) in that table, -1 for none
    parent_rows: np.ndarray | None = None

    @property
    def where(self) -> str:
        return self.raw.where

    def names(self, *columns: str) -> tuple[str, ...]:
        return tuple(self.file_names[c] for c in columns)

    def values_at(self, row: int, *columns: str) -> str:
        """The cells as written in the file (before recoding), for messages."""
        cells = []
        for column in columns:
            value = self.raw.frame.at[row, self.file_names[column]]
            cells.append("(empty)" if pd.isna(value) else str(value))
        return ", ".join(cells)


@dataclass
class Validated:
    """The study's tables after validation: typed with the dictionary's types, every raw row kept."""

    frames: dict[str, pd.DataFrame]  # the study's tables, by the study file's names
    published: dict[str, pd.DataFrame]
    tables: dict[str, MappedTable]  # by table name; published ones as published.<name>


# ---------------------------------------------------------------------------------------------
# Parsing text cells by the dictionary's types


def parse(series: pd.Series, column: Column, date_format: str) -> pd.Series:
    """The typed values of text cells; a cell that is not of the column's type becomes missing.

    Each distinct text is parsed once: the million cells of a date, a count or a flag hold a few
    hundred distinct texts (parsing all 3.6 million dates of a table took 0.7 s, finding the
    distinct ones takes 0.1 s).
    """
    if column.type == "string":
        return series
    codes, distinct = pd.factorize(series)
    values = _parse_text(pd.Series(distinct, dtype="str"), column, date_format)
    # copy=False: the taken array is new; pandas would copy it again (0.08 s for 3.6 million dates)
    return pd.Series(values.array.take(codes, allow_fill=True), index=series.index, copy=False)


def _parse_text(series: pd.Series, column: Column, date_format: str) -> pd.Series:
    """`parse` of every cell, vectorised in Arrow."""
    kind = column.type
    if kind in ("integer", "number"):
        text = pa.array(series, from_pandas=True, type=pa.string())
        numeric = pc.fill_null(pc.match_substring_regex(text, NUMBER), False)
        numbers = pd.Series(pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.float64())
                            .to_numpy(zero_copy_only=False), index=series.index)
        return numbers.where(numbers == np.floor(numbers)) if kind == "integer" else numbers
    if kind == "boolean":
        lower = series.str.lower()
        values = pd.Series(pd.NA, index=series.index, dtype="boolean")
        values[isin(lower, [k for k, v in BOOLEAN_TEXT.items() if v])] = True
        values[isin(lower, [k for k, v in BOOLEAN_TEXT.items() if not v])] = False
        return values
    if kind == "date":
        return pd.to_datetime(series, format=date_format, errors="coerce").astype("datetime64[us]")
    if kind == "category":
        return series.where(isin(series, column.values))
    return series


def to_dtype(values: pd.Series, column: Column, strict: bool) -> pd.Series:
    """Parsed values with the column's dtype; `strict` (after validation) uses non-nullable numpy
    dtypes for columns that may not be empty."""
    kind = column.type
    exact = strict and not column.nullable
    if kind == "integer":
        return values.astype("int64" if exact else "Int64")
    if kind == "boolean":
        return values.astype(bool if exact else "boolean")
    if kind == "category":
        # Each distinct value placed among the categories once, then taken: a categorical made from a million
        # text values hashes each as a Python object (0.3 s for a million patients' columns)
        codes, distinct = pd.factorize(values)
        places = np.append(pd.Index(column.values).get_indexer(distinct), -1)  # code -1, missing, takes the last
        return pd.Series(pd.Categorical.from_codes(places[codes], categories=column.values, ordered=column.ordered),
                         index=values.index, copy=False)
    if kind == "string":
        return values.astype("str")
    return values


def typed_frame(table: MappedTable, strict: bool) -> pd.DataFrame:
    """The parsed columns with their dtypes; `strict` converts the table's `typed` (made first, to
    check the rules) rather than converting the parsed values a second time."""
    source = table.typed if strict else table.parsed
    # copy=False: each column stays its own block. pandas otherwise consolidates the columns of one dtype
    # into a 2-D block, a copy that took 0.4 s for a million patients' frame, twice (loose, then strict).
    return pd.DataFrame({name: to_dtype(source[name], table.spec.columns[name], strict)
                         for name in table.parsed}, index=table.text.index, copy=False)


# ---------------------------------------------------------------------------------------------
# The pandera schema, built from the dictionary


def build_schema(name: str, table: Table, parsed: dict[str, pd.Series],
                 text: pd.DataFrame | None = None) -> pa_schema.DataFrameSchema:
    """Checks on the text cells: type, range, allowed codes, empty cells, uniqueness, presence.

    `parsed` holds each column's cells parsed by its dictionary type (`parse`), computed once and
    shared by the checks; an empty cell is the `nullable` check's to report, not the type's.
    `text`, the cells to be checked: a unique column whose cells increase down the table is
    unique without pandera's check (`_increasing`).
    """
    columns = {}
    for column_name, column in table.columns.items():
        values = parsed.get(column_name)
        unique = column.unique and not (text is not None and column_name in text.columns
                                        and _increasing(text[column_name]))
        checks = []
        if values is not None:
            checks.append(pa_schema.Check(_type_check(values), name="type", ignore_na=False))
            if column.min is not None or column.max is not None:
                checks.append(pa_schema.Check(_range_check(values, column), name="range", ignore_na=False))
        columns[column_name] = pa_schema.Column(
            None, checks=checks, nullable=column.nullable, unique=unique, required=column.required,
            name=column_name,
        )
    return pa_schema.DataFrameSchema(columns, name=name, strict=False)


def _increasing(cells: pd.Series) -> bool:
    """Every cell filled and after the one above it (in code-point order), so no two are equal.

    Identifiers usually come in order: one pass over them says so, where pandera's unique check
    hashes every one (1.2 s for 3.6 million suggestion ids; this takes 0.03 s).
    """
    values = pa.array(cells, from_pandas=True)
    return values.null_count == 0 and pc.all(pc.greater(values[1:], values[:-1])).as_py() is not False


def _type_check(values: pd.Series) -> Callable[[pd.Series], pd.Series]:
    return lambda text: values.notna() | text.isna()


def _range_check(values: pd.Series, column: Column) -> Callable[[pd.Series], pd.Series]:
    def check(_text: pd.Series) -> pd.Series:  # pandera passes the text; the parsed values say it all
        inside = values.notna()
        if column.min is not None:
            inside &= values >= column.min
        if column.max is not None:
            inside &= values <= column.max
        return inside | values.isna()  # a cell of the wrong type is the type check's to report

    return check


def schema_violations(table: MappedTable) -> list[Violation]:
    schema = build_schema(table.name, table.spec, table.parsed, table.text)
    hidden = _hidden_cells(table)
    try:
        schema.validate(table.text, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return list(hidden.values())
    violations = []
    missing = []
    for case in cases.itertuples(index=False):
        if case.check == "column_in_dataframe":
            missing.append(str(case.failure_case))
            continue
        column = table.spec.columns[case.column]
        row = int(case.index)
        if case.check == "not_nullable" and (row, case.column) in hidden:
            continue  # not an empty cell: a merged cell or an unsaved formula, reported as such
        value = table.values_at(row, case.column)
        violations.append(_cell_violation(table, case.column, column, case.check, row, value))
    violations.extend(_missing_columns(table, missing))
    return [*violations, *hidden.values()]


def _hidden_cells(table: MappedTable) -> dict[tuple[int, str], Violation]:
    """The declared columns' cells that read as empty but are not (Excel's merged cells and
    formulas without a saved value), by row and column: whether or not the column may be empty,
    its value is not what the file shows."""
    declared = {table.file_names[c]: c for c in table.text.columns}
    return {(cell.row, declared[cell.column]): Violation(table.where, cell.rule, cell.problem, cell.fix,
                                                         (cell.column,), cell.row, "(empty)")
            for cell in table.raw.hidden if cell.column in declared and cell.row in table.text.index}


def _cell_violation(table: MappedTable, name: str, column: Column, check: str, row: int, value: str) -> Violation:
    file_name = table.file_names[name]
    key = f"{table.study_key}.values.{name}"
    if check == "not_nullable":
        return Violation(table.where, "required_value", f"empty cell; {name} may not be empty",
                         "fill in the cell", (file_name,), row, "(empty)")
    if check == "field_uniqueness":
        same = table.text.index[table.text[name] == table.text.at[row, name]]
        others = ", ".join(str(r) for r in same if r != row)
        return Violation(table.where, "unique", f"duplicate {name} (also on row {others}); each row needs its own",
                         "give each row its own identifier, or remove the repeated row", (file_name,), row, value)
    if check == "range":
        unit = f" {column.unit}" if column.unit else ""
        return Violation(table.where, "range", f"out of range: {name} must be {allowed(column)}{unit}",
                         "correct the value in the file", (file_name,), row, value)
    if column.type == "category":
        return Violation(table.where, "allowed_values",
                         f"unknown category for {name}: the dictionary's codes are {allowed(column)}",
                         f"use one of those codes, or translate the file's codes in {key}",
                         (file_name,), row, value)
    if column.type == "boolean":
        return Violation(table.where, "type", f"not true/false for {name}",
                         f"write true/false, or translate the file's codes (e.g. Y/N) in {key}",
                         (file_name,), row, value)
    if column.type == "date":
        fmt = table.date_format
        return Violation(table.where, "type", f"not a date written as {fmt} (e.g. "
                         f"{pd.Timestamp('2011-02-01').strftime(fmt)}) for {name}",
                         f"correct the date, or set {table.study_key}.date_format to how the file writes dates",
                         (file_name,), row, value)
    return Violation(table.where, "type", f"not a {TYPE_WORDS[column.type]} for {name}",
                     "correct the value in the file (numbers use a point as decimal mark)", (file_name,), row, value)


def _missing_columns(table: MappedTable, missing: list[str]) -> list[Violation]:
    if not missing:
        return []
    expected = [table.file_names[c] for c in table.spec.columns]
    guess = guess_header_row(table.raw, expected)
    if table.text.columns.empty and guess is None:
        # Not the table at all (a wrong path, a symlink to a system file, semicolons between
        # columns): its first line is not quoted, as it may be anything.
        return [Violation(
            table.where, "required_column",
            f"row {table.raw.header_row} holds none of the declared columns ({', '.join(expected)}): this does "
            f"not look like the table's file", f"check that {table.study_key}.file is the table's file (CSV with "
            f"commas between columns, or .xlsx) and {table.study_key}.header_row the row of its column names")]
    names = [f"'{excerpt(str(c))}'" for c in table.raw.frame.columns]
    found = (", ".join(names[:MAX_NAMES]) or "none") + (f", ... ({len(names)} columns)" if len(names) > MAX_NAMES
                                                         else "")
    if guess is not None and guess != table.raw.header_row:
        return [Violation(
            table.where, "header_row",
            f"these columns are not in the header (row {table.raw.header_row} holds: {found}); "
            f"the column names are on row {guess}",
            f"set `header_row: {guess}` under {table.study_key} in the study file",
            tuple(table.file_names[c] for c in missing), table.raw.header_row,
        )]
    return [
        Violation(
            table.where, "required_column",
            f"not found (dictionary column {c}); the file's columns: {found}",
            f"add the column to the file, or name the file's column in {table.study_key}.columns.{c}",
            (table.file_names[c],),
        )
        for c in missing
    ]


# ---------------------------------------------------------------------------------------------
# Reading and mapping


def map_table(name: str, spec: Table, raw: RawTable, source: TableSource | None, study_key: str,
              study_file: str) -> tuple[MappedTable, list[Violation]]:
    """Rename the file's columns and recode its codes into the dictionary's; check the mapping."""
    values = dict(source.values) if source else {}
    date_format = (source.date_format if source else None) or ISO_DATE
    problems = []
    for column in values:
        if column not in spec.columns:
            problems.append(Violation(
                study_file, "known_column",
                f"{study_key}.values.{column}: '{column}' is not a declared column of the {name} table "
                f"(declared: {', '.join(spec.columns)})",
                f"declare it under {study_key}.columns, or correct the key", (), None, column))
    file_names = {c: source.file_name(c) if source else c for c in spec.columns}
    present = {c: file_names[c] for c in spec.columns if file_names[c] in raw.frame.columns}
    text = raw.frame[list(present.values())].rename(columns={v: k for k, v in present.items()})
    text = text.loc[:, ~text.columns.duplicated()]
    for column, codes in values.items():
        if column not in spec.columns:
            continue
        lookup, bad = _code_lookup(spec.columns[column], codes)
        for code, target in bad:
            problems.append(Violation(
                study_file, "allowed_values",
                f"{study_key}.values.{column}: code '{code}' translates to '{target}', which {column} does not "
                f"allow ({allowed(spec.columns[column])})",
                "translate to one of the dictionary's codes", (), None, str(code)))
        if column in text.columns:
            text[column] = text[column].replace(lookup)
    mapped = MappedTable(name, spec, raw, text, file_names, date_format, study_key)
    mapped.parsed = {c: parse(text[c], spec.columns[c], date_format) for c in text.columns}
    return mapped, problems


def _code_lookup(column: Column, codes: dict) -> tuple[dict[str, str], list[tuple]]:
    lookup, bad = {}, []
    for code, target in codes.items():
        target_text = ("true" if target else "false") if isinstance(target, bool) else str(target)
        probe = pd.Series([target_text], dtype="str")
        if parse(probe, column, ISO_DATE).isna().iloc[0]:
            bad.append((code, target))
            continue
        spellings = (YAML_TRUE if code else YAML_FALSE) if isinstance(code, bool) else (str(code),)
        lookup.update(dict.fromkeys(spellings, target_text))
    return lookup, bad


def _read(path: Path, source: TableSource | None, study_key: str) -> RawTable:
    if source is None:
        return read_raw(path, study_key=study_key)
    return read_raw(path, encoding=source.encoding, sheet=source.sheet, header_row=source.header_row,
                    date_format=source.date_format, study_key=study_key)


# ---------------------------------------------------------------------------------------------
# Rules across columns and tables, by the names the dictionaries give them


@dataclass
class Context:
    study: Study
    tables: dict[str, MappedTable]
    # by table that belongs to another: its rows' rows in that table (`_parent_rows`), being found meanwhile
    parent_rows: dict[str, Future] = field(default_factory=dict)

    def get(self, name: str) -> MappedTable | None:
        return self.tables.get(name)


Rule = Callable[[Context], list[Violation]]
RULES: dict[tuple[str, str], Rule] = {}


def rule(table: str, name: str):
    def register(function: Rule) -> Rule:
        RULES[(table, name)] = function
        return function
    return register


def _has(table: MappedTable | None, *columns: str) -> bool:
    return table is not None and all(c in table.typed.columns for c in columns)


def _row_violations(table: MappedTable, mask: pd.Series, columns: tuple[str, ...], rule_name: str,
                    problem: str, fix: str) -> list[Violation]:
    return [Violation(table.where, rule_name, problem, fix, table.names(*columns), int(row),
                      table.values_at(row, *columns))
            for row in mask.index[mask.fillna(False).astype(bool)]]


@rule("patients", "discharge_not_before_admission")
def _discharge_after_admission(ctx: Context) -> list[Violation]:
    t = ctx.get("patients")
    if not _has(t, "admission_date", "discharge_date"):
        return []
    bad = t.typed["discharge_date"] < t.typed["admission_date"]
    return _row_violations(t, bad, ("admission_date", "discharge_date"), "discharge_not_before_admission",
                           "the discharge date is before the admission date", "correct one of the two dates")


@rule("patients", "error_count_matches_flag")
def _error_count(ctx: Context) -> list[Violation]:
    t = ctx.get("patients")
    found = []
    for flag, count in (("error_at_admission", "n_errors_admission"), ("error_at_discharge", "n_errors_discharge")):
        if not _has(t, flag, count):
            continue
        bad = (t.typed[flag] & (t.typed[count] == 0)) | (~t.typed[flag] & (t.typed[count] > 0))
        found += _row_violations(t, bad, (flag, count), "error_count_matches_flag",
                                 f"{flag} and {count} disagree: the count is above zero exactly when the flag is true",
                                 "correct the flag or the count")
    return found


@rule("patients", "discharge_outcome_complete")
def _discharge_complete(ctx: Context) -> list[Violation]:
    return _all_or_none(ctx, ("error_at_discharge", "n_errors_discharge", "harm_severity", "harm_vas"),
                        "discharge_outcome_complete",
                        "the discharge outcome is partly recorded: these four cells are all filled or all empty",
                        "fill in the missing cells, or empty all four when there is no discharge outcome")


def _all_or_none(ctx: Context, columns: tuple[str, ...], rule_name: str, problem: str, fix: str) -> list[Violation]:
    """Rows of the patients table where some, but not all, of `columns` are filled."""
    t = ctx.get("patients")
    if not _has(t, *columns):
        return []
    present = t.text[list(columns)].notna()  # text: a cell of the wrong type is reported once, by its check
    bad = present.any(axis=1) & ~present.all(axis=1)
    return _row_violations(t, bad, columns, rule_name, problem, fix)


@rule("patients", "harm_matches_error")
def _harm_matches_error(ctx: Context) -> list[Violation]:
    t = ctx.get("patients")
    if not _has(t, "error_at_discharge", "harm_severity"):
        return []
    none = t.typed["harm_severity"] == "none"
    bad = t.typed["error_at_discharge"].notna() & t.typed["harm_severity"].notna() & (
        none != ~t.typed["error_at_discharge"].fillna(False))
    return _row_violations(t, bad, ("error_at_discharge", "harm_severity"), "harm_matches_error",
                           "harm severity is none exactly when there was no discharge error",
                           "correct the error flag or the severity")


@rule("patients", "harm_score_in_band")
def _harm_band(ctx: Context) -> list[Violation]:
    t = ctx.get("patients")
    if not _has(t, "harm_severity", "harm_vas"):
        return []
    severity, vas = t.typed["harm_severity"], t.typed["harm_vas"]  # a categorical compares by its codes
    inside = pd.Series(True, index=t.typed.index)
    inside[severity == "none"] = vas == 0
    inside[severity == "minor"] = (vas > 0) & (vas < 3)
    inside[severity == "moderate"] = (vas >= 3) & (vas <= 7)
    inside[severity == "severe"] = vas > 7
    bad = ~inside & vas.notna() & t.typed["harm_severity"].notna()
    return _row_violations(t, bad, ("harm_severity", "harm_vas"), "harm_score_in_band",
                           "the harm score is outside its severity's band (none 0; minor above 0 and below 3; "
                           "moderate 3 to 7; severe above 7)", "correct the severity or the score")


@rule("patients", "mai_complete")
def _mai_complete(ctx: Context) -> list[Violation]:
    return _all_or_none(ctx, ("mai_pre_admission", "mai_admission", "mai_discharge"), "mai_complete",
                        "the MAI is partly recorded: the three MAI cells are all filled or all empty",
                        "fill in the missing MAI cells, or empty all three")


def _period_not_empty(ctx: Context) -> list[Violation]:
    """Each period holds at least one eligible row of the main table."""
    study = ctx.study
    name = study.main_table
    t, column = ctx.get(name), study.period_column(name)
    needed = [column, *(c.column for rule in study.eligibility.values() for c in rule.keep)]
    if not _has(t, *needed):
        return []
    values = t.typed[column]
    codes = period_codes(values, study.period)
    keep = eligible(t.typed, study).to_numpy(bool)
    found = []
    unit = study.unit(name)
    for number, key in enumerate(PERIODS):
        window = study.period.window(key)
        if (keep & (codes == number)).any():
            continue
        in_period = int((codes == number).sum())
        if study.period.by_date:
            known = values.dropna()
            span = f"{column} in the file runs from {known.min():%Y-%m-%d} to {known.max():%Y-%m-%d}" \
                if len(known) else f"no {column} could be read"
            where, shown = f"{window.start} to {window.end}", f"{window.start} to {window.end}"
        else:
            seen = ", ".join(sorted(map(str, values.dropna().unique()))[:10]) or "none"
            span, where, shown = f"the values of {column} in the file: {seen}", f"{column} = {window.value}", \
                str(window.value)
        criteria = "; ".join(str(c) for rule in study.eligibility.values() for c in rule.keep)
        why = (f"none of the {in_period} {unit} in it meets the eligibility ({criteria})"
               if in_period else f"no row is in it ({span})")
        found.append(Violation(
            t.where, "period_not_empty", f"the {key} period ({window.label}: {where}) has no eligible {unit}: {why}",
            f"check period.{key} and eligibility in {relative(study.file)}", t.names(column), None, shown))
    return found


def _belongs_to_parent(ctx: Context) -> list[Violation]:
    """Every row of a table that belongs to another names a row of that table."""
    found = []
    for name, source in ctx.study.tables.items():
        if source.belongs_to is None:
            continue
        child, parent = ctx.get(name), ctx.get(source.belongs_to)
        key = ctx.study.tables[source.belongs_to].key
        if not _has(child, key) or not _has(parent, key):
            continue
        finding = ctx.parent_rows.get(name)
        child.parent_rows = (finding.result() if finding is not None  # kept for deriving
                             else row_positions(child.typed[key], parent.typed[key]))
        bad = child.typed[key].notna() & (child.parent_rows < 0)
        found += _row_violations(child, bad, (key,), f"known_{source.belongs_to}",
                                 f"no row with this {key} in the {source.belongs_to} table ({parent.where})",
                                 f"correct the identifier, or add the row to the {source.belongs_to} table")
    return found


# the time points of an aggregated table: calendar months, or ISO weeks (Monday to Sunday)
ROW_PERIODS = {"month": "M", "week": "W-SUN"}


def _one_row_per_month(ctx: Context) -> list[Violation]:
    """A table declared `one_row_per: month` (or `week`; counts and denominators, not patients): no month (week)
    twice (per series, with a control series), no negative count or denominator, and with `design.family:
    binomial` no more events than the denominator. Months (weeks) missing from the series are not an error: the
    analysis reports them."""
    study = ctx.study
    found: list[Violation] = []
    for name, source in study.tables.items():
        t = ctx.get(name)
        column = study.period_column(name)
        unit = source.one_row_per
        if unit is None or not _has(t, column):
            continue
        keys = [column] + ([study.design.group.column] if study.design.group and _has(t, study.design.group.column)
                           else [])
        month = t.typed[column].dt.to_period(ROW_PERIODS[unit])
        again = t.typed.assign(**{column: month}).duplicated(subset=keys, keep=False) & month.notna()
        found += _row_violations(t, again, tuple(keys), f"one_row_per_{unit}",
                                 f"the same {unit} comes more than once in a table declared `one_row_per: {unit}`",
                                 f"give each {unit} one row (sum the rows of a {unit}), or remove `one_row_per` from "
                                 f"tables.{name} if its rows are patients")
        for key, outcome in study.outcomes.items():
            if outcome.table != name:
                continue
            counted = [c for c in (outcome.column, outcome.exposure) if c is not None and _has(t, c)]
            for c in counted:
                values = pd.to_numeric(t.typed[c], errors="coerce")
                found += _row_violations(t, values < 0, (c,), "counts_not_negative",
                                         f"a negative count or denominator (outcome {key})",
                                         "correct the count: events and denominators are 0 or more")
            if study.design.family == "binomial" and len(counted) == 2:
                events, n = (pd.to_numeric(t.typed[c], errors="coerce") for c in counted)
                found += _row_violations(t, events > n, tuple(counted), "events_within_denominator",
                                         f"more events than the denominator (outcome {key}, design.family "
                                         "binomial)", "correct the counts, or use `family: poisson` for a rate")
    return found


STUDY_RULES = (_period_not_empty, _belongs_to_parent, _one_row_per_month)


def _dates_not_after_extraction(study: Study, table: MappedTable) -> list[Violation]:
    """No date, in any date column, later than the day the data were extracted (the study's
    `extraction_date`, else today): a discharge typed as 2099-12-31 made a stay of 32,474 days."""
    if study.extraction_date is not None:
        limit = study.extraction_date
        problem = f"the date is after the data were extracted ({limit}, extraction_date in {relative(study.file)})"
        fix = "correct the date, or extraction_date if the data were extracted later"
    else:
        limit = dt.date.today()
        problem = f"the date is after today ({limit}): it cannot have happened yet"
        fix = ("correct the date; to check the dates against the day the data were extracted instead, give "
               "`extraction_date` in the study file")
    found = []
    for name, column in table.spec.columns.items():
        if column.type == "date" and name in table.typed.columns:
            found += _row_violations(table, table.typed[name] > pd.Timestamp(limit), (name,),
                                     "not_after_extraction", problem, fix)
    return found


def _days_between_plausible(ctx: Context) -> list[Violation]:
    """Every `days_between` count is 0 or more and at most its derivation's `max` (365 unless said)."""
    found = []
    for name, source in ctx.study.tables.items():
        t = ctx.get(name)
        for column, derivation in source.derive.items():
            if derivation.days_between is None or not _has(t, *derivation.days_between):
                continue
            start, end = derivation.days_between
            days = days_between(t.typed, derivation)
            limit = derivation.max_days
            bad = ((days < 0) | (days > limit)).fillna(False).astype(bool)
            for row in days.index[bad]:
                count = int(days[row])
                if count < 0:
                    bound, fix = "below 0", "correct one of the two dates"
                else:
                    bound = f"above {limit:g}"
                    fix = (f"correct one of the two dates, or, if {count} days can be right, raise "
                           f"{t.study_key}.derive.{column}.max")
                found.append(Violation(t.where, "days_between", f"{column} (days from {start} to {end}) is {count}, "
                                       f"{bound}", fix, t.names(start, end), int(row), t.values_at(row, start, end)))
    return found


@rule("primary", "events_within_n")
def _events_within_n(ctx: Context) -> list[Violation]:
    t = ctx.get("published.primary")
    found = []
    for group in ("standard", "team"):
        events, n = f"{group}_events", f"{group}_n"
        if _has(t, events, n):
            found += _row_violations(t, t.typed[events] > t.typed[n], (events, n), "events_within_n",
                                     "more events than patients", "correct the published counts")
    return found


def _interval_violations(t: MappedTable, estimate: str, low: str, high: str) -> list[Violation]:
    if not _has(t, estimate, low, high):
        return []
    e, lo, hi = t.typed[estimate], t.typed[low], t.typed[high]
    bad = lo.notna() & hi.notna() & ((lo > e) | (e > hi))
    return _row_violations(t, bad, (low, estimate, high), "interval_contains_estimate",
                           "the estimate is outside its interval", "correct the published figures")


@rule("primary", "interval_contains_estimate")
def _primary_intervals(ctx: Context) -> list[Violation]:
    t = ctx.get("published.primary")
    return [v for kind in ("or_unadjusted", "or_adjusted") if t is not None
            for v in _interval_violations(t, kind, f"{kind}_low", f"{kind}_high")]


@rule("reported", "interval_contains_estimate")
def _reported_intervals(ctx: Context) -> list[Violation]:
    t = ctx.get("published.reported")
    return _interval_violations(t, "value", "low", "high") if t is not None else []


@rule("reported", "quantity_group_unique")
def _quantity_group_unique(ctx: Context) -> list[Violation]:
    t = ctx.get("published.reported")
    if not _has(t, "quantity", "group"):
        return []
    bad = t.typed.duplicated(["quantity", "group"], keep="first")
    return _row_violations(t, bad, ("quantity", "group"), "quantity_group_unique",
                           "this quantity is already given for this group on an earlier row", "remove one of the rows")


@rule("harm", "harm_totals_match_primary")
def _harm_totals(ctx: Context) -> list[Violation]:
    harm, primary = ctx.get("published.harm"), ctx.get("published.primary")
    if not _has(harm, "potential_harm_at_discharge", "standard_n", "team_n") or not _has(primary, "outcome"):
        return []
    rows = primary.typed.index[primary.typed["outcome"] == "error_at_discharge"]
    if len(rows) != 1:
        return [Violation(primary.where, "harm_totals_match_primary",
                          "the harm table needs exactly one error_at_discharge row in the primary table",
                          "add the row (or remove the harm table)", primary.names("outcome"))]
    row = rows[0]
    found = []
    bands = harm.typed.set_index("potential_harm_at_discharge")
    for group in ("standard", "team"):
        n, events = primary.typed.at[row, f"{group}_n"], primary.typed.at[row, f"{group}_events"]
        counts = bands[f"{group}_n"]
        total, errors = counts.sum(), counts[counts.index != "none"].sum()
        if total != n or errors != events:
            found.append(Violation(
                harm.where, "harm_totals_match_primary",
                f"the {group} bands add up to {total} patients with {errors} errors, but the primary table's "
                f"error_at_discharge row (row {row}) has {n} patients with {events} events",
                "correct the counts in one of the two tables", harm.names(f"{group}_n"), None, str(total)))
    return found


# ---------------------------------------------------------------------------------------------
# The whole study


def published_files(folder: Path) -> tuple[dict[str, Path], list[Violation]]:
    """The published tables found in a folder, by dictionary table name."""
    found: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.glob("*.csv")):
        names = [n for n, t in published_tables().items() if fnmatch.fnmatch(path.name, t.file)]
        if not names:
            patterns = ", ".join(t.file for t in published_tables().values())
            problems.append(Violation(relative(path), "known_table",
                                      f"not one of the published tables (file names {patterns})",
                                      "rename the file to match its table, or move it out of the published folder"))
        elif names[0] in found:
            problems.append(Violation(relative(path), "known_table",
                                      f"a second file for the published table '{names[0]}' "
                                      f"(the first is {relative(found[names[0]])})",
                                      "keep one file per table in the published folder"))
        else:
            found[names[0]] = path
    return found, problems


def _published(study: Study, study_file: str) -> tuple[dict[str, MappedTable], list[Violation]]:
    if study.published is None:
        return {}, []
    files, problems = published_files(resolve(study.published))
    tables = {}
    for name, path in files.items():
        raw = _read(path, None, "published")
        mapped, mapping_problems = map_table(name, published_tables()[name], raw, None, "published", study_file)
        tables[f"published.{name}"] = mapped
        problems += mapping_problems
    return tables, problems


def _parent_rows(study: Study, tables: dict[str, MappedTable], name: str) -> np.ndarray | None:
    """The rows of the table that a table's rows belong to, by the key's values typed as `typed_frame` types
    them; None when a table or the key is missing (the rules say so)."""
    child, parent = tables.get(name), tables.get(study.tables[name].belongs_to)
    key = study.tables[study.tables[name].belongs_to].key
    if child is None or parent is None or key not in child.parsed or key not in parent.parsed:
        return None
    return row_positions(*(to_dtype(t.parsed[key], t.spec.columns[key], strict=False) for t in (child, parent)))


def _check(study: Study, tables: dict[str, MappedTable], problems: list[Violation]) -> dict[str, pd.DataFrame]:
    """Cells, then rules, of the tables given; the strictly typed tables, or one StudyError."""
    children = [name for name in study.tables if study.tables[name].belongs_to is not None and name in tables]
    # The keys that tie a table to another are matched while the cells are checked: Arrow's hash holds no
    # lock, and matching 3.6 million suggestions to a million patients took 0.4 s
    with ThreadPoolExecutor(max_workers=1) as matching:
        found = {name: matching.submit(_parent_rows, study, tables, name) for name in children}
        return _check_rules(study, Context(study, tables, found), problems)


def _check_rules(study: Study, context: Context, problems: list[Violation]) -> dict[str, pd.DataFrame]:
    """`_check` once the keys are being matched."""
    tables = context.tables
    for table in tables.values():
        problems += schema_violations(table)
        table.typed = typed_frame(table, strict=False)
        problems += _dates_not_after_extraction(study, table)
    for (table_name, _), check in RULES.items():
        if table_name in tables or f"published.{table_name}" in tables:
            problems += check(context)
    if any(name in study.tables for name in tables):
        for check in STUDY_RULES:
            problems += check(context)
        # A negative count of days between two dates the dictionary already orders (admission and
        # discharge) is one problem: said once, by the dictionary's rule.
        said = {(v.file, v.row, v.columns) for v in problems}
        problems += [v for v in _days_between_plausible(context) if (v.file, v.row, v.columns) not in said]
    if problems:
        raise StudyError(describe(study, problems))
    return {name: typed_frame(table, strict=True) for name, table in tables.items()}


def _published_frames(strict: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {name.removeprefix("published."): frame for name, frame in strict.items() if name.startswith("published.")}


def validate_study(study: Study) -> Validated:
    """Read, map and check every raw table of the study; one StudyError lists every problem."""
    study_file = relative(study.file)
    tables: dict[str, MappedTable] = {}
    problems: list[Violation] = []
    # The tables are read and mapped side by side: Arrow's reader and kernels, most of the work, hold no
    # lock (a million patients and their 3.6 million suggestions, one after the other, took 7 s of wall time
    # on 2 cores). Results, problems and the first error come in the study file's order either way.
    with ThreadPoolExecutor(max_workers=max(1, min(len(study.tables), os.cpu_count() or 1))) as pool:
        done = list(pool.map(lambda name: _read_table(study, name, study_file), study.tables))
    for name, (mapped, table_problems) in zip(study.tables, done, strict=True):
        tables[name] = mapped
        problems += table_problems
    published, published_problems = _published(study, study_file)
    tables.update(published)
    strict = _check(study, tables, problems + published_problems)
    return Validated({name: strict[name] for name in study.tables}, _published_frames(strict), tables)


def _read_table(study: Study, name: str, study_file: str) -> tuple[MappedTable, list[Violation]]:
    """One table of the study read and mapped, with the problems of its declaration and mapping."""
    source, key = study.tables[name], f"tables.{name}"
    spec, declaration_problems = study_table(study, name)
    # The key (tables.<name>.columns.<column>) leads the message: it says where in the study file to fix it.
    problems = [Violation(study_file, "declared_type", f"{where}: {text}",
                          "declare the column's type in the study file", (), None, None)
                for where, text in declaration_problems]
    raw = _read(source.path, source, key)
    mapped, mapping_problems = map_table(name, spec, raw, source, key, study_file)
    return mapped, problems + mapping_problems


def validate_published(study: Study) -> dict[str, pd.DataFrame]:
    """Only the published aggregates of the study (none without `published:`), checked and typed."""
    tables, problems = _published(study, relative(study.file))
    return _published_frames(_check(study, tables, problems))


def describe(study: Study, problems: list[Violation]) -> str:
    """One message for every problem: the first on the first line, then all (the same problem on
    several rows on one line), then what to do."""
    from analysis.disclosure import profile  # only when there are problems to describe

    if profile(study) is not None:
        # real patient data: the message goes to a terminal, a log or an executed notebook, so it names the
        # row and column of each problem but never the value (an identifier, a date of birth)
        problems = [dataclasses.replace(v, value=None) for v in problems]
    ordered = sorted(problems, key=lambda v: (v.file, v.row is not None, v.row or 0, v.columns, v.rule))
    groups: dict[tuple, list[Violation]] = {}
    for violation in ordered:
        key = (violation.file, violation.columns, violation.value, violation.problem, violation.rule)
        groups.setdefault(key, []).append(violation)
    lines_of = [v[0].describe(sorted(x.row for x in v if x.row is not None)) for v in groups.values()]
    count = len(ordered)
    lines = [f"{count} problem{'s' * (count != 1)} in the data of study '{study.name}'; first: {ordered[0].describe()}",
             "Nothing was written. Every problem:"]
    lines += [f"  - {line}" for line in lines_of[:MAX_LISTED]]
    rest = list(groups.values())[MAX_LISTED:]
    if rest:
        counts = pd.Series([(v[0].file, v[0].columns, v[0].rule) for v in rest for _ in v]).value_counts(sort=False)
        lines.append(f"  ... and {sum(counts)} more:")
        lines += [f"    {n} more in {f}, column {', '.join(c) or '-'}, rule {r}" for (f, c, r), n in counts.items()]
    fixes = list(dict.fromkeys(v.fix for v in ordered))
    lines.append("What to do: " + "; ".join(fixes) + ". The pipeline never edits raw data: correct the files "
                 f"or how {relative(study.file)} describes them, then run again.")
    return "\n".join(lines)
