"""The data dictionaries: machine-readable, rendered for people, and the source of the schemas."""

from __future__ import annotations

import tempfile

import pandas as pd
import pytest

from analysis.cli import main
from analysis.config import Period, Window
from analysis.data import dictionary
from analysis.data.derive import _period_columns
from analysis.data.validate import RULES, build_schema
from analysis.errors import StudyError


def test_dictionary_md_is_the_current_rendering():
    assert dictionary.markdown_is_current(), "data_raw/DICTIONARY.md is stale: run `python -m analysis dictionary`"


def test_dictionary_command_check(capsys, tmp_path, monkeypatch):
    assert main(["dictionary", "--check"]) == 0
    stale = tmp_path / "DICTIONARY.md"
    stale.write_text("old\n")
    monkeypatch.setattr(dictionary, "MARKDOWN", stale)
    assert main(["dictionary", "--check"]) == 1
    assert "is stale; run `python -m analysis dictionary`" in capsys.readouterr().err
    assert main(["dictionary"]) == 0
    assert stale.read_text() == dictionary.render_markdown()


def test_synthesize_command_check(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # it regenerates into a temporary folder
    assert main(["synthesize", "--check"]) == 0


def test_every_named_rule_is_implemented_and_every_implementation_named():
    named = {(table, rule) for tables in (dictionary.raw_tables(), dictionary.published_tables())
             for table, spec in tables.items() for rule in spec.rules}
    assert named == set(RULES)


def test_the_markdown_shows_every_column_rule_and_missing_meaning():
    text = dictionary.render_markdown()
    for tables in (dictionary.raw_tables(), dictionary.published_tables(), dictionary.derived_tables()):
        for name, table in tables.items():
            assert f"### `{name}`" in text
            for column_name, column in table.columns.items():
                assert f"| `{column_name}` | {column.type} |" in text
            for rule in table.rules:
                assert f"- `{rule}`:" in text
    assert "| no discharge outcome (the discharge prescription was not reconciled) |" in text


@pytest.mark.parametrize("table", ["patients", "suggestions"])
def test_schemas_are_built_from_the_dictionary(table):
    spec = dictionary.raw_tables()[table]
    schema = build_schema(table, spec, {})
    assert list(schema.columns) == list(spec.columns)
    for name, column in spec.columns.items():
        built = schema.columns[name]
        assert (built.nullable, built.unique, built.required) == (column.nullable, column.unique, column.required)


def test_a_broken_dictionary_is_reported_with_its_file(tmp_path):
    broken = tmp_path / "dictionary.yml"
    broken.write_text("patients:\n  description: x\n  columns:\n"
                      "    age: {type: integer, description: y, colour: red}\n")
    with pytest.raises(StudyError, match="dictionary.yml: key 'patients.columns.age.colour': Extra inputs"):
        dictionary._load(broken)


def test_the_derived_dictionary_lists_the_columns_derive_adds_in_their_order():
    """derived.yml describes any study's tables (`{table}`) by the columns derivation adds after the
    declared and derived ones; month and month_index only when the period is given by dates."""
    derived = dictionary.derived_tables()
    assert list(derived) == ["{table}", "flow"]
    added = derived["{table}"].columns
    by_date = Period(column="admitted", before=Window(label="Before", start="2020-01-01", end="2020-12-31"),
                     after=Window(label="After", start="2021-01-01", end="2021-12-31"))
    dates = pd.Series(pd.to_datetime(["2020-03-01", "2021-05-31"])).astype("datetime64[us]")
    columns = _period_columns(dates, pd.Series(["before", "after"]), by_date)
    assert list(columns) == list(added) == ["period", "after", "month", "month_index"]
    assert columns["month"].tolist() == ["2020-03", "2021-05"] and columns["month_index"].tolist() == [2, 16]
    by_value = Period(column="arm", before=Window(label="A", value="usual"), after=Window(label="B", value="new"))
    columns = _period_columns(pd.Series(["usual", "new"]), pd.Series(["before", "after"]), by_value)
    assert list(columns) == [name for name, column in added.items() if column.required] == ["period", "after"]
    assert columns["after"].tolist() == [0, 1]


@pytest.mark.parametrize("days", [
    pd.date_range("1969-11-15", "1970-02-03", freq="D"),  # before 1970, where days since 1970 are negative
    pd.DatetimeIndex(["1905-06-30", "2040-01-01", "1905-06-30"]),  # a span of 135 years, a repeated day
    pd.DatetimeIndex(["2021-12-31 23:59:59.999999", "2022-01-01"]),  # the last microsecond of a year
    pd.DatetimeIndex([]),
])
def test_month_and_month_index_are_the_calendar_month_of_each_date(days):
    """derive's month text and month number (looked up by day and laid down as bytes) against pandas'
    own strftime and month arithmetic on the same dates."""
    by_date = Period(column="admitted", before=Window(label="Before", start="1900-03-01", end="2029-12-31"),
                     after=Window(label="After", start="2030-01-01", end="2099-12-31"))
    dates = pd.Series(days).astype("datetime64[us]")
    columns = _period_columns(dates, pd.Series(["before"] * len(dates)), by_date)
    assert columns["month"].tolist() == dates.dt.strftime("%Y-%m").tolist()
    assert str(columns["month"].dtype) == "str"
    assert columns["month_index"].tolist() == ((dates.dt.year - 1900) * 12 + dates.dt.month - 3).tolist()


def test_the_markdown_says_how_a_study_declares_its_columns():
    text = dictionary.render_markdown()
    assert "data.<table>" not in text
    assert "`tables.<table>.columns`" in text and "`tables.<table>.values`" in text and "`type`" in text
    assert "`period_not_empty`" in text and "`known_<parent>`" in text
