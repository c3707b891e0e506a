"""Bad input: each kind gives one StudyError naming file, column, row, value and rule, and what to
do; and nothing is written (the derived folder and the manifest stay as they were).

Each test first prepares the good data (so there is a previous set to keep), then breaks one thing
and prepares again with `accept_new_data=True`, so that the validation itself is what stops it.
"""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from analysis.cli import main
from analysis.data import check_raw_data, prepare
from analysis.data.validate import MAX_LISTED, _increasing
from analysis.errors import StudyError
from tests.data.conftest import PUBLISHED, cell, edit_csv


def fails(copy, accept: bool = True) -> str:
    """Prepare (which must fail); check nothing was written; return the message."""
    before = copy.snapshot()
    with pytest.raises(StudyError) as caught:
        prepare(copy.study, accept_new_data=accept)
    assert copy.snapshot() == before, "something was written"
    return str(caught.value)


@pytest.fixture
def ref(reference_copy):
    prepare(reference_copy.study)
    assert reference_copy.snapshot()
    return reference_copy


@pytest.fixture
def example(example_copy):
    prepare(example_copy.study)
    return example_copy


def test_missing_column(ref):
    edit_csv(ref.patients, {}, drop="charlson")
    message = fails(ref)
    assert str(ref.patients) in message
    assert "column 'charlson': not found (dictionary column charlson)" in message
    assert "rule: required_column" in message
    assert "tables.patients.columns.charlson" in message  # what to do: name the file's column


def test_wrong_type(ref):
    edit_csv(ref.patients, {(6, "age"): "sixty"})
    message = fails(ref)
    first = message.splitlines()[0]
    assert f"{ref.patients}, row 6, column 'age', value 'sixty'" in first
    assert "not a whole number" in first and "rule: type" in first


def test_out_of_range_value(ref):
    edit_csv(ref.patients, {(8, "age"): "150"})
    message = fails(ref)
    assert f"{ref.patients}, row 8, column 'age', value '150': out of range: age must be 0 to 120 years" in message
    assert "rule: range" in message


def test_unknown_category(ref):
    edit_csv(ref.patients, {(9, "sex"): "X"})
    message = fails(ref)
    assert "row 9, column 'sex', value 'X': unknown category for sex" in message
    assert "female, male" in message and "rule: allowed_values" in message
    assert "tables.patients.values.sex" in message


def test_duplicate_identifier(ref):
    first = cell(ref.patients, 4, "patient_id")
    edit_csv(ref.patients, {(10, "patient_id"): first})
    message = fails(ref)
    assert f"row 4, column 'patient_id', value '{first}': duplicate patient_id (also on row 10)" in message
    assert f"row 10, column 'patient_id', value '{first}': duplicate patient_id (also on row 4)" in message
    assert "rule: unique" in message


def test_real_patient_data_are_named_by_row_and_column_never_by_value(ref):
    # the same duplicate as above, in a study of real patients: the message may reach a log or an executed
    # notebook outside the trusted environment, so the identifier itself is withheld
    ref.write_study(synthetic=False)
    first = cell(ref.patients, 4, "patient_id")
    edit_csv(ref.patients, {(10, "patient_id"): first})
    message = fails(ref)
    assert "row 4, column 'patient_id': duplicate patient_id (also on row 10)" in message
    assert first not in message and "value '" not in message


def test_a_real_studys_derived_tables_are_kept_out_of_git(ref):
    ref.write_study(synthetic=False)
    prepare(ref.study, accept_new_data=True)
    ignore = ref.output / "derived" / ".gitignore"
    assert ignore.read_text(encoding="utf-8").splitlines()[1] == "*"
    ref.write_study(synthetic=True)
    prepare(ref.study, accept_new_data=True)
    assert not ignore.exists()


def test_empty_period(ref):
    ref.write_study(**{"period.after.start": "2015-01-01", "period.after.end": "2015-12-31"})
    message = fails(ref, accept=False)  # the study changed, not the data: no acceptance needed
    assert str(ref.patients) in message and "column 'admission_date'" in message
    assert "value '2015-01-01 to 2015-12-31'" in message
    assert "the after period (Team-aligned pharmacists: 2015-01-01 to 2015-12-31) has no eligible patients" in message
    assert "admission_date in the file runs from 2011-02-" in message and "rule: period_not_empty" in message
    assert f"check period.after and eligibility in {ref.study}" in message


def test_period_with_only_ineligible_patients(ref):
    ref.write_study(**{"eligibility.under_min_medicines.keep": "n_medicines >= 40"})
    message = fails(ref, accept=False)
    assert "none of the 121 patients in it meets the eligibility (age >= 18; n_medicines >= 40)" in message


def test_dates_out_of_order(ref):
    admission = cell(ref.patients, 12, "admission_date")
    edit_csv(ref.patients, {(12, "discharge_date"): "2011-01-01"})
    message = fails(ref)
    assert (f"{ref.patients}, row 12, columns 'admission_date', 'discharge_date', value '{admission}, 2011-01-01': "
            f"the discharge date is before the admission date (rule: discharge_not_before_admission)") in message


def test_wrong_encoding_is_named_with_the_encoding_to_set(example):
    example.write_study(**{"tables.suggestions.encoding": None})  # the file is cp1252; utf-8 is assumed
    message = fails(example, accept=False)
    assert str(example.suggestions) in message and "cannot be read as utf-8" in message
    assert "rule: encoding" in message and "row " in message and "value '" in message
    assert "set `encoding: cp1252` under tables.suggestions in the study file" in message


def test_utf8_file_declared_as_cp1252_is_caught(example):
    text = example.suggestions.read_bytes().decode("cp1252")
    example.suggestions.write_bytes(text.encode("utf-8"))
    message = fails(example)
    assert "is UTF-8 text but the study file says encoding cp1252" in message
    assert "set `encoding: utf-8` under tables.suggestions" in message


def test_excel_title_block_read_without_header_row(example):
    example.write_study(**{"tables.patients.header_row": None})
    message = fails(example, accept=False)
    assert f"{example.patients} (sheet 'Patients'), row 1" in message
    assert "'Patient ID'" in message and "the column names are on row 4" in message
    assert "set `header_row: 4` under tables.patients in the study file" in message and "rule: header_row" in message


def test_changed_raw_file_stops_until_accepted(ref):
    old_hash = next(e["sha256"] for e in prepare(ref.study).manifest["inputs"] if e["role"] == "patients")
    edit_csv(ref.patients, {(5, "ward"): "St Elsewhere's"})
    message = fails(ref, accept=False)
    assert f"raw data changed since the derived data of study '{ref.study.stem}' were made: {ref.patients}" in message
    assert f"sha256 was {old_hash[:12]}" in message
    assert "--accept-new-data" in message
    with pytest.raises(StudyError):
        check_raw_data(ref.study)  # what the runner calls before the notebooks
    assert main(["data", str(ref.study), "--accept-new-data"]) == 0
    prepared = prepare(ref.study)
    new_hash = next(e["sha256"] for e in prepared.manifest["inputs"] if e["role"] == "patients")
    assert new_hash != old_hash
    assert "St Elsewhere's" in set(prepared.tables["patients"]["ward"])
    assert check_raw_data(ref.study) == []


def test_a_changed_raw_file_is_said_before_its_problems(ref):
    """The raw files are hashed while they are validated: a file that changed is still the first thing said,
    and its problems only once the change is accepted."""
    edit_csv(ref.patients, {(6, "age"): "sixty"})
    message = fails(ref, accept=False)
    assert message.startswith("raw data changed since the derived data") and "sixty" not in message
    assert "'sixty'" in fails(ref, accept=True)


def test_run_check_accepts_new_data_by_redoing_the_data_step(ref):
    edit_csv(ref.patients, {(5, "ward"): "St Elsewhere's"})
    assert check_raw_data(ref.study, accept_new_data=True) == [str(ref.patients)]
    assert check_raw_data(ref.study) == []


def test_changed_published_file_is_caught_too(ref, tmp_path):
    published = tmp_path / "published"
    shutil.copytree(PUBLISHED, published)
    ref.write_study(published=str(published))
    prepare(ref.study)
    path = published / "grimes2014_reported.csv"
    path.write_text(path.read_text().replace("67.5", "67.6"))
    message = fails(ref, accept=False)
    assert str(path) in message and "raw data changed" in message


def test_suggestion_about_an_unknown_patient(ref):
    edit_csv(ref.suggestions, {(7, "patient_id"): "P9999"})
    message = fails(ref)
    assert (f"{ref.suggestions}, row 7, column 'patient_id', value 'P9999': no row with this patient_id in "
            f"the patients table ({ref.patients})") in message
    assert "rule: known_patients" in message


def test_every_problem_is_listed_in_one_error(ref):
    edit_csv(ref.patients, {(3, "age"): "-1", (4, "charlson"): "1.5", (5, "error_at_admission"): "yes",
                            (6, "n_medicines"): ""})
    edit_csv(ref.suggestions, {(2, "accepted"): "maybe", (3, "date"): "2011-02-30"})
    message = fails(ref)
    assert message.startswith("6 problems in the data of study")
    assert "Nothing was written." in message
    for expected in ("row 3, column 'age', value '-1'", "row 4, column 'charlson', value '1.5'",
                     "row 5, column 'error_at_admission', value 'yes': not true/false",
                     "row 6, column 'n_medicines', value '(empty)': empty cell",
                     "row 2, column 'accepted', value 'maybe'", "row 3, column 'date', value '2011-02-30': not a date"):
        assert expected in message


def test_cross_column_rules_of_the_dictionary(ref):
    line = next(n for n in range(2, 200) if cell(ref.patients, n, "harm_severity") == "moderate")
    edit_csv(ref.patients, {(line, "harm_vas"): "8.5", (line + 1, "n_errors_admission"): "0",
                            (line + 1, "error_at_admission"): "true", (line + 2, "harm_severity"): "",
                            (line + 3, "mai_discharge"): ""})
    message = fails(ref)
    assert f"row {line}, columns 'harm_severity', 'harm_vas', value 'moderate, 8.5'" in message
    assert "rule: harm_score_in_band" in message
    assert f"row {line + 1}, columns 'error_at_admission', 'n_errors_admission'" in message
    assert "rule: error_count_matches_flag" in message
    assert f"row {line + 2}, columns 'error_at_discharge', 'n_errors_discharge', 'harm_severity', 'harm_vas'" in message
    assert "rule: discharge_outcome_complete" in message
    if cell(ref.patients, line + 3, "mai_pre_admission"):
        assert "rule: mai_complete" in message


def test_codes_the_study_file_does_not_translate(example):
    example.write_study(**{"tables.patients.values.sex": {"F": "female"}})
    message = fails(example, accept=False)
    assert "column 'Sex (F/M)', value 'M': unknown category for sex" in message.splitlines()[0]
    assert "translate the file's codes in tables.patients.values.sex" in message


def test_mapping_errors_in_the_study_file(example):
    example.write_study(**{"tables.patients.columns.admision_date": "Adm Date",
                           "tables.patients.values.sex": {"F": "woman", "M": "male"}})
    message = fails(example, accept=False)
    assert ("tables.patients.columns.admision_date: 'admision_date' is not a column of the data dictionary's "
            "patients table: declare its `type`") in message
    assert "rule: declared_type" in message
    assert "code 'F' translates to 'woman', which sex does not allow (female, male)" in message


def test_wrong_date_format(example):
    example.write_study(**{"tables.suggestions.date_format": None})  # the CSV writes day/month/year
    message = fails(example, accept=False)
    assert f"{example.suggestions}, row 2, column 'Date'" in message
    assert "not a date written as %Y-%m-%d" in message and "tables.suggestions.date_format" in message


def test_inconsistent_published_tables(ref, tmp_path):
    published = tmp_path / "published"
    shutil.copytree(PUBLISHED, published)
    harm = published / "grimes2014_harm.csv"
    harm.write_text(harm.read_text().replace("severe,6,0", "severe,7,0"))
    (published / "notes.csv").write_text("a\n1\n")
    ref.write_study(published=str(published))
    message = fails(ref, accept=False)
    assert f"{harm}, column 'standard_n', value '102': the standard bands add up to 102 patients with 67" in message
    assert "rule: harm_totals_match_primary" in message
    assert f"{published / 'notes.csv'}: not one of the published tables" in message


def test_a_long_list_is_summarised_after_the_first_ones(ref):
    edit_csv(ref.suggestions, {(line, "accepted"): f"maybe {line}" for line in range(2, 2 + MAX_LISTED + 30)})
    message = fails(ref)
    assert message.startswith(f"{MAX_LISTED + 30} problems")
    assert "... and 30 more:" in message and "30 more in" in message


def test_the_same_problem_on_many_rows_is_one_line(example):
    example.write_study(**{"tables.patients.values.sex": {"F": "female"}})
    message = fails(example, accept=False)
    lines = [line for line in message.splitlines() if "value 'M'" in line and line.startswith("  - ")]
    assert len(lines) == 1
    ranges, count = re.search(r"rows ([\d, -]+) \((\d+) rows\)", lines[0]).groups()
    assert int(count) > 50 and re.search(r"\d+-\d+", ranges)


def test_the_cli_exits_2_with_the_message(ref, capsys):
    edit_csv(ref.patients, {(6, "age"): "sixty"})
    assert main(["data", str(ref.study), "--accept-new-data"]) == 2
    assert "value 'sixty'" in capsys.readouterr().err
    assert main(["data", str(ref.study)]) == 2
    assert "raw data changed" in capsys.readouterr().err


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("tables.suggestions.encoding", "klingon", "unknown encoding 'klingon'"),
    ("tables.suggestions.date_format", "%Y", "date_format '%Y' does not read back a day, month and year"),
])
def test_layout_keys_are_checked_when_the_study_file_is_read(example_copy, key, value, expected):
    from analysis.config import load_study

    example_copy.write_study(**{key: value})
    with pytest.raises(StudyError) as caught:
        load_study(example_copy.study)
    assert f"key '{key}'" in str(caught.value) and expected in str(caught.value)


def test_a_repeated_identifier_next_to_itself_is_found(ref):
    """Identifiers in increasing order skip pandera's unique check (validate._increasing, a pass instead
    of a hash); one written twice in a row is not increasing, so the check runs and names both rows."""
    first = cell(ref.patients, 4, "patient_id")
    edit_csv(ref.patients, {(5, "patient_id"): first})
    message = fails(ref)
    assert f"row 5, column 'patient_id', value '{first}': duplicate patient_id (also on row 4)" in message
    assert "rule: unique" in message


@pytest.mark.parametrize(("cells", "increasing"), [
    (["P1", "P2", "P3"], True), (["P1", "P2", "P2", "P3"], False), (["P1", None, "P3"], False),
    (["P2", "P1"], False), (["P9", "P10"], False), (["P10", "P9"], True), ([], True),
])
def test_increasing_means_no_two_cells_are_equal(cells, increasing):
    # in code-point order: P10 comes before P9; ids not in that order are left to pandera, not refused
    assert _increasing(pd.Series(cells, dtype="str")) is increasing
