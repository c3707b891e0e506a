"""The data dictionaries: machine-readable, rendered for people, and the source of the schemas."""

from __future__ import annotations

import tempfile

import pytest

from analysis.cli import main
from analysis.data import dictionary
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


def test_derived_tables_keep_every_raw_column_in_its_order():
    raw, derived = dictionary.raw_tables(), dictionary.derived_tables()
    for table in ("patients", "suggestions"):
        kept = [c for c in derived[table].columns if c in raw[table].columns]
        assert kept == list(raw[table].columns)
