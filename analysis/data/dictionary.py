"""The data dictionaries: what the columns a study may use mean, machine-readable and for people.

Three YAML files in this package, one format:
- `dictionary.yml`: columns a study's tables may use under these names without declaring their
  type (`patients`, `suggestions`), with the rules across them; `study_table` combines it with
  what a study declares;
- `published.yml`: the published aggregates a study may be compared with (`published:` folder);
- `derived.yml`: the analysis-ready tables `analysis.data.prepare` writes.

Validation schemas are built from a study's declarations and the first two (`analysis.data.validate`);
the third documents the derived columns. `render_markdown` turns all three into `data_raw/DICTIONARY.md`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import ROOT, atomic_write, relative

HERE = Path(__file__).resolve().parent
RAW_DICTIONARY = HERE / "dictionary.yml"
PUBLISHED_DICTIONARY = HERE / "published.yml"
DERIVED_DICTIONARY = HERE / "derived.yml"
MARKDOWN = ROOT / "data_raw" / "DICTIONARY.md"

ColumnType = Literal["string", "integer", "number", "boolean", "date", "category"]

TYPE_WORDS = {
    "string": "text",
    "integer": "whole number",
    "number": "number",
    "boolean": "true/false",
    "date": "date",
    "category": "one of a fixed set of codes",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    type: ColumnType
    description: str
    unit: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    values: list[str] | None = None
    ordered: bool = False
    unique: bool = False
    required: bool = True
    nullable: bool = False
    missing: str = "not allowed"

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if (self.values is not None) != (self.type == "category"):
            raise ValueError("`values` is given exactly for category columns")
        if (self.min is not None or self.max is not None) and self.type not in ("integer", "number"):
            raise ValueError("`min`/`max` are for integer and number columns")
        if self.ordered and self.type != "category":
            raise ValueError("`ordered` is for category columns")
        return self


class Table(_Strict):
    description: str
    key: str | None = None
    file: str | None = None  # published tables: the file-name pattern that finds them in a folder
    columns: dict[str, Column]
    rules: dict[str, str] = {}

    @model_validator(mode="after")
    def _key_is_a_column(self) -> Table:
        if self.key is not None and self.key not in self.columns:
            raise ValueError(f"key '{self.key}' is not one of the columns")
        return self


def _load(path: Path) -> dict[str, Table]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    tables = {}
    for name, spec in raw.items():
        try:
            tables[name] = Table(**spec)
        except ValidationError as error:
            # A broken dictionary is the developer's to fix; say where, like any study problem.
            problems = "; ".join(f"key '{name}.{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in error.errors())
            raise StudyError(f"{relative(path)}: {problems}") from None
    return tables


@cache
def raw_tables() -> dict[str, Table]:
    return _load(RAW_DICTIONARY)


@cache
def published_tables() -> dict[str, Table]:
    return _load(PUBLISHED_DICTIONARY)


@cache
def derived_tables() -> dict[str, Table]:
    return _load(DERIVED_DICTIONARY)


def study_table(study: Study, name: str) -> tuple[Table, list[tuple[str, str]]]:
    """What validation checks in one of a study's tables: each column the study declares, defined by
    the dictionary's table of the same name where it knows the column, with the study's own
    declaration on top; nothing the study does not declare. Also the problems found, as (key, text).

    The table's key is unique and never empty; the dictionary's rules come along (each runs only
    when its columns are all declared).
    """
    source = study.tables[name]
    known = raw_tables().get(name)
    columns: dict[str, Column] = {}
    problems = []
    for column_name in source.columns:
        spec = source.spec(column_name)
        base = known.columns.get(column_name) if known is not None else None
        if base is None and spec.type is None:
            problems.append((f"tables.{name}.columns.{column_name}",
                             f"'{column_name}' is not a column of the data dictionary's {name} table: "
                             "declare its `type` (string, integer, number, boolean, date, category)"))
            continue
        update = {key: value for key, value in {
            "type": spec.type, "unit": spec.unit, "values": spec.values, "min": spec.min, "max": spec.max,
            "nullable": spec.nullable, "description": spec.description or spec.label,
        }.items() if value is not None}
        if spec.ordered:
            update["ordered"] = True
        try:
            if base is None:
                column = Column(**{"description": column_name, "nullable": True, "missing": "missing", **update})
            else:
                column = Column(**{**base.model_dump(), **update})
        except ValidationError as error:
            problems.append((f"tables.{name}.columns.{column_name}", error.errors()[0]["msg"]))
            continue
        if column_name == source.key:
            column = column.model_copy(update={"unique": True, "nullable": False})
        columns[column_name] = column.model_copy(update={"required": True})
    rules = dict(known.rules) if known is not None else {}
    description = known.description if known is not None else f"The study's {name} table."
    return Table(description=description, key=source.key if source.key in columns else None, columns=columns,
                 rules=rules), problems


def allowed(column: Column, as_input: bool = True) -> str:
    """The allowed values or range of a column, as people read it (`as_input`: how a raw file may
    write it; otherwise what a derived table holds)."""
    if column.values is not None:
        joined = ", ".join(column.values)
        return f"{joined} (ordered)" if column.ordered else joined
    if column.min is not None and column.max is not None:
        return f"{_number(column.min)} to {_number(column.max)}"
    if column.min is not None:
        return f"{_number(column.min)} or more"
    if column.max is not None:
        return f"up to {_number(column.max)}"
    if column.type == "boolean":
        return "true, false (also TRUE/FALSE, 1/0)" if as_input else "true, false"
    if column.type == "date":
        return "a calendar date (YYYY-MM-DD, or the study's `date_format`)" if as_input else "a calendar date"
    return "any"


def _number(value: int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table_markdown(name: str, table: Table, as_input: bool = True) -> list[str]:
    lines = [f"### `{name}`", "", _cell(table.description), ""]
    if table.file:
        lines += [f"File: `{table.file}` in the study's `published:` folder.", ""]
    if table.key:
        lines += [f"Key: `{table.key}` (unique).", ""]
    lines += [
        "| column | type | unit | allowed values or range | required | if empty | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for column_name, column in table.columns.items():
        empty = column.missing if column.nullable else "not allowed"
        lines.append(
            f"| `{column_name}` | {column.type} | {_cell(column.unit or '')} | {_cell(allowed(column, as_input))} "
            f"| {'yes' if column.required else 'no'} | {_cell(empty)} | {_cell(column.description)} |"
        )
    if table.rules:
        lines += ["", "Rules across columns and tables:", ""]
        lines += [f"- `{rule}`: {_cell(text)}" for rule, text in table.rules.items()]
    return lines + [""]


def render_markdown() -> str:
    """`data_raw/DICTIONARY.md`: every table of the three dictionaries, for people."""
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated by `python -m analysis dictionary` from analysis/data/dictionary.yml, published.yml",
        "     and derived.yml; edit those and rerun (a test fails when this file is stale). -->",
        "",
        "A study declares the columns it uses, table by table (`tables.<table>.columns` in its study",
        "file; see studies/README.md). A declared column that the raw table of the same name below",
        "lists takes its definition from here and needs no `type`; any other declared column needs its",
        "`type` in the study file. When the file names a column otherwise, the study says so",
        "(`column: File name`, or `from: File name` in a declaration), and `tables.<table>.values`",
        "translates the file's codes into these. Only declared columns are read and checked: nothing",
        "listed here is required unless the study declares it, and the file's other columns are ignored.",
        "A rule below runs when the study declares all of its columns.",
        "",
        "Validation checks every cell against the type, range and codes and every row against the rules;",
        "one error lists every problem with its file, row (as the spreadsheet shows it), column (as the",
        "file names it), value and rule. Two rules hold for every study: `period_not_empty` (each period",
        "holds at least one eligible row of the main table) and `known_<parent>` (every row of a table",
        "that `belongs_to` another names a row of it by the parent's key).",
        "",
        "Types: " + "; ".join(f"`{t}` = {w}" for t, w in TYPE_WORDS.items()) + ".",
        "",
        "## Raw tables (`analysis/data/dictionary.yml`)",
        "",
    ]
    for name, table in raw_tables().items():
        lines += _table_markdown(name, table)
    lines += [
        "## Published aggregates (`analysis/data/published.yml`)",
        "",
        "Validated when a study names a `published:` folder; every CSV in it must be one of these tables.",
        "",
    ]
    for name, table in published_tables().items():
        lines += _table_markdown(name, table)
    lines += [
        "## Derived tables (`analysis/data/derived.yml`)",
        "",
        "Written by `python -m analysis data` (or `analysis.data.prepare`) to",
        "`data_derived/<study>/derived/<table>.parquet`, one per table of the study under the study's",
        "name for it (`{table}` below), and `flow.parquet`; read them with `analysis.data.load`.",
        "",
    ]
    for name, table in derived_tables().items():
        lines += _table_markdown(name, table, as_input=False)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_markdown(path: Path | None = None) -> bool:
    """Write DICTIONARY.md if it differs from the rendering; True when it changed."""
    path = path or MARKDOWN
    text = render_markdown()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    with atomic_write(path, encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return True


def markdown_is_current(path: Path | None = None) -> bool:
    path = path or MARKDOWN
    return path.is_file() and path.read_text(encoding="utf-8") == render_markdown()
