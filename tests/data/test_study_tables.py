"""Any before-after study from one study file: what a study declares is what is read, checked and
derived. Small files written by hand in tmp_path; every expected count and value is worked out by
hand in the test (the rows are few enough to read)."""

from __future__ import annotations

import re
import textwrap

import pandas as pd
import pytest

from analysis.config import Condition, Period, Window, load_study
from analysis.data import load, prepare
from analysis.data.derive import all_hold, derive_all, eligible, flow, holds, period_codes
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from analysis.paths import ROOT


def study_file(tmp_path, body: str, **files: str):
    """Write the data files ({name: CSV text}) and a study file around `body` (YAML, with {name}
    standing for each data file's path); load it."""
    paths = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        paths[name] = path
    text = textwrap.dedent(body).format(**paths)
    text += f"seeds: {{models: 1}}\noutputs: {{folder: {tmp_path / 'out'}}}\ntitle: A study\nsynthetic: true\n"
    path = tmp_path / "study.yml"
    path.write_text(text, encoding="utf-8")
    return load_study(path)


def fails(study) -> str:
    with pytest.raises(StudyError) as caught:
        validate_study(study)
    return str(caught.value)


def counts(flow_frame: pd.DataFrame) -> dict[tuple[str, str], int]:
    return {(str(s), str(p)): int(n) for s, p, n in flow_frame[["stage", "period", "n"]].itertuples(index=False)}


# One table, the study's own names and types, no dates: the period is a column's values.
VISITS = """
    Ref,Arm,Age yrs,Unit,Checked
    a1,control,70,north,yes
    a2,control,54,south,no
    a3,control,81,north,
    a4,intervention,66,south,yes
    a5,intervention,40,north,no
    a6,washout,75,south,yes
    a7,,60,north,no
    """
ONE_TABLE = """
    tables:
      visits:
        file: {visits}
        key: ref
        columns:
          ref: {{from: Ref, type: string}}
          arm: {{from: Arm, type: string}}
          years: {{from: Age yrs, type: integer, min: 0, max: 120}}
          unit: {{from: Unit, type: string}}
          checked: {{from: Checked, type: boolean}}
        values:
          checked: {{yes: true, no: false}}
    period:
      column: arm
      before: {{label: Control, value: control}}
      after: {{label: Intervention, value: intervention}}
    eligibility:
      older: {{keep: years >= 60, excluded: aged under 60}}
    covariates: [years]
    clusters:
      primary: unit
    outcomes:
      checked:
        type: binary
        table: visits
        column: checked
        label: Discharge checked
        flow: check
    """


def test_a_one_table_study_with_its_own_names_and_no_dates_validates_and_derives(tmp_path):
    study = study_file(tmp_path, ONE_TABLE, visits=VISITS)
    data = prepare(study)
    assert set(data.tables) == {"visits"}  # no suggestions, no patients
    visits = data.tables["visits"]
    # a6 (washout) and a7 (no arm) are in neither period; a2 (54) and a5 (40) are under 60
    assert visits["ref"].tolist() == ["a1", "a3", "a4"]
    assert list(visits.columns) == ["ref", "arm", "years", "unit", "checked", "period", "after"]  # no month
    assert visits["period"].astype(str).tolist() == ["before", "before", "after"]
    assert visits["after"].tolist() == [0, 0, 1]
    assert visits["years"].tolist() == [70, 81, 66] and str(visits["years"].dtype) == "Int64"  # own column: nullable
    assert visits["checked"].tolist() == [True, pd.NA, True]  # yes/no translated by `values:`
    assert counts(data.flow) == {
        ("screened", "all"): 7,
        ("outside_periods", "all"): 2,
        ("in_period_window", "before"): 3, ("in_period_window", "after"): 2, ("in_period_window", "all"): 5,
        ("older", "before"): 1, ("older", "after"): 1, ("older", "all"): 2,
        ("included", "before"): 2, ("included", "after"): 1, ("included", "all"): 3,
        ("missing_check", "before"): 1, ("missing_check", "after"): 0, ("missing_check", "all"): 1,
        ("with_check", "before"): 1, ("with_check", "after"): 1, ("with_check", "all"): 2,
    }
    described = data.flow.drop_duplicates("stage").set_index("stage")["description"]
    assert described["outside_periods"] == "excluded: arm neither 'control' nor 'intervention'"
    assert described["older"] == "excluded: aged under 60"
    assert study.cluster_columns() == ["unit"] and study.table_one_columns() == ["years", "unit"]


def test_a_period_value_no_row_holds_is_named_with_the_values_the_file_has(tmp_path):
    study = study_file(tmp_path, ONE_TABLE.replace("value: intervention", "value: treatment"), visits=VISITS)
    message = fails(study)
    assert (f"{tmp_path / 'visits.csv'}, column 'Arm', value 'treatment': the after period (Intervention: "
            "arm = treatment) has no eligible visits: no row is in it (the values of arm in the file: control, "
            "intervention, washout) (rule: period_not_empty)") in message


def test_an_own_column_without_a_type_is_an_error_naming_the_key(tmp_path):
    study = study_file(tmp_path, ONE_TABLE.replace("unit: {{from: Unit, type: string}}", "unit: Unit"),
                       visits=VISITS)
    message = fails(study)
    assert ("tables.visits.columns.unit: 'unit' is not a column of the data dictionary's visits table: declare its "
            "`type`") in message
    assert "rule: declared_type" in message


def test_a_dictionary_name_in_a_table_the_dictionary_does_not_know_needs_its_type_too(tmp_path):
    # `age` is a column of the dictionary's patients table, not of a table called visits
    study = study_file(tmp_path, ONE_TABLE.replace("years: {{from: Age yrs, type: integer, min: 0, max: 120}}",
                                                   "age: Age yrs").replace("years", "age"), visits=VISITS)
    assert "tables.visits.columns.age: 'age' is not a column of the data dictionary's visits table" in fails(study)


def test_a_code_for_an_undeclared_column_is_an_error(tmp_path):
    study = study_file(tmp_path, ONE_TABLE.replace("checked: {{yes: true, no: false}}",
                                                   "checked: {{yes: true, no: false}}\n          sex: {{F: female}}"),
                       visits=VISITS)
    message = fails(study)
    assert ("tables.visits.values.sex: 'sex' is not a declared column of the visits table (declared: ref, arm, "
            "years, unit, checked)") in message
    assert "rule: known_column" in message


# ---------------------------------------------------------------------------------------------
# Two tables: a child table that belongs to the main one


PATIENTS = """
    Patient,Arm,Age,Ward
    p1,1,70,north
    p2,1,15,south
    p3,2,50,north
    p4,3,80,south
    """
DOSES = """
    Dose,Patient,Given,Late
    d1,p1,2020-01-01,true
    d2,p2,2020-01-02,false
    d3,p3,2020-01-03,false
    d4,p3,2020-01-04,true
    d5,p4,2020-01-05,false
    """
TWO_TABLES = """
    tables:
      patients:
        file: {patients}
        key: pid
        columns:
          pid: {{from: Patient, type: string}}
          arm: {{from: Arm, type: integer}}
          age: {{from: Age}}
          ward: {{from: Ward}}
      doses:
        file: {doses}
        key: dose
        belongs_to: patients
        inherit: [ward]
        columns:
          dose: {{from: Dose, type: string}}
          pid: {{from: Patient, type: string}}
          given: {{from: Given, type: date}}
          late: {{from: Late, type: boolean}}
    period:                      # by value: the integer column's 1 and 2 compared as text
      column: arm
      before: {{label: Old rota, value: 1}}
      after: {{label: New rota, value: 2}}
    eligibility:
      adults: {{keep: age >= 18, excluded: aged under 18}}
    outcomes:
      late:
        type: binary
        table: doses
        column: late
        label: Dose given late
    """


def test_belongs_to_drops_the_rows_of_excluded_parents_and_copies_the_period(tmp_path):
    study = study_file(tmp_path, TWO_TABLES, patients=PATIENTS, doses=DOSES)
    tables = derive_all(validate_study(study).frames, study)
    # p2 is under 18 and p4 in arm 3 (neither period): their doses d2 and d5 go with them
    assert tables["patients"]["pid"].tolist() == ["p1", "p3"]
    doses = tables["doses"]
    assert doses["dose"].tolist() == ["d1", "d3", "d4"]
    # no period column of its own: the parent's arm is copied after the declared and inherited columns
    assert list(doses.columns) == ["dose", "pid", "given", "late", "ward", "arm", "period", "after"]
    assert doses["ward"].tolist() == ["north", "north", "north"] and doses["arm"].tolist() == [1, 2, 2]
    assert doses["period"].astype(str).tolist() == ["before", "after", "after"]
    # copied with the parent's types (an integer column stays Int64, not float64)
    for column in ("ward", "arm"):
        assert str(doses[column].dtype) == str(tables["patients"][column].dtype), column
    assert str(doses["arm"].dtype) == "Int64"
    written = prepare(study)
    for name, frame in load(study).tables.items():
        pd.testing.assert_frame_equal(frame, written.tables[name])
        pd.testing.assert_frame_equal(frame, tables[name])


def test_a_child_row_naming_an_unknown_parent_is_a_violation_naming_the_row(tmp_path):
    study = study_file(tmp_path, TWO_TABLES, patients=PATIENTS, doses=DOSES.replace("d4,p3", "d4,p9"))
    message = fails(study)
    doses = tmp_path / "doses.csv"
    # d4 is on line 5 of the file (line 1 holds the column names)
    assert (f"{doses}, row 5, column 'Patient', value 'p9': no row with this pid in the patients table "
            f"({tmp_path / 'patients.csv'}) (rule: known_patients)") in message
    assert message.startswith("1 problem in the data")


def test_an_inherited_column_must_be_one_the_parent_declares(tmp_path):
    with pytest.raises(StudyError) as caught:
        study_file(tmp_path, TWO_TABLES.replace("inherit: [ward]", "inherit: [colour]"), patients=PATIENTS,
                   doses=DOSES)
    assert "tables.doses.inherit: column 'colour' is not declared in tables.patients.columns" in str(caught.value)
    with pytest.raises(StudyError) as caught:
        study_file(tmp_path, TWO_TABLES.replace("belongs_to: patients", "period_column: given"), patients=PATIENTS,
                   doses=DOSES)
    assert "tables.doses.inherit: copies columns from the parent row; give `belongs_to`" in str(caught.value)


def test_the_period_by_value_compares_numbers_as_text(tmp_path):
    """`value: 1` matches the integer column's 1; and a whole number keeps every digit
    (1234567 is not 1234568, as six significant digits would make them)."""
    period = Period(column="arm", before=Window(label="A", value=1234567), after=Window(label="B", value=1234568))
    arms = pd.Series([1234567, 1234568, 1234569, None], dtype="Int64")
    assert period_codes(arms, period).tolist() == [0, 1, -1, -1]  # before, after, neither
    as_numbers = pd.Series([1234567.0, 1234568.0, 0.5, None])
    assert period_codes(as_numbers, period).tolist() == [0, 1, -1, -1]
    as_text = pd.Series(["1234567", "1234568.0", "x", None], dtype="str")
    assert period_codes(as_text, period).tolist() == [0, -1, -1, -1]  # text compares as written


def test_a_true_false_period_column(tmp_path):
    data = """
        id,treated,outcome
        1,false,1
        2,true,0
        3,TRUE,1
        4,,0
        """
    body = """
        tables:
          people:
            file: {people}
            key: id
            columns:
              id: {{type: string}}
              treated: {{type: boolean}}
              outcome: {{type: integer}}
        period:
          column: treated
          before: {{label: Untreated, value: false}}
          after: {{label: Treated, value: true}}
        outcomes:
          outcome: {{type: binary, table: people, column: outcome, label: Outcome, event: {{above: 0}}}}
        """
    study = study_file(tmp_path, body, people=data)
    assert study.period.before.value is False and study.period.after.value is True  # not 0 and 1
    tables = derive_all(validate_study(study).frames, study)
    assert tables["people"]["id"].tolist() == ["1", "2", "3"]
    assert tables["people"]["period"].astype(str).tolist() == ["before", "after", "after"]
    assert counts(flow(validate_study(study).frames["people"], study))[("outside_periods", "all")] == 1  # id 4


# ---------------------------------------------------------------------------------------------
# derive:, eligibility in order, conditions on missing cells


def test_derive_computes_days_between_dates_and_differences(tmp_path):
    data = """
        id,seen,admitted,discharged,score_in,score_out
        1,2020-02-01,2020-01-30,2020-02-02,10,4
        2,2020-02-01,2020-02-28,2020-03-01,7,
        3,2020-08-01,2020-12-31,2021-01-01,3.5,5
        """
    body = """
        tables:
          stays:
            file: {stays}
            key: id
            columns:
              id: {{type: string}}
              seen: {{type: date}}
              admitted: {{type: date}}
              discharged: {{type: date}}
              score_in: {{type: number}}
              score_out: {{type: number}}
            derive:
              stay: {{days_between: [admitted, discharged]}}
              gain: {{difference: [score_in, score_out]}}
        period:
          column: seen
          before: {{label: Before, start: 2020-01-01, end: 2020-06-30}}
          after: {{label: After, start: 2020-07-01, end: 2020-12-31}}
        outcomes:
          stay: {{type: continuous, table: stays, column: stay, label: Stay}}
        """
    study = study_file(tmp_path, body, stays=data)
    stays = derive_all(validate_study(study).frames, study)["stays"]
    assert stays["stay"].tolist() == [3, 2, 1]  # 30 Jan-2 Feb; 28 Feb-1 Mar 2020 (a leap year); over New Year
    assert str(stays["stay"].dtype) == "int64"
    assert stays["gain"].tolist()[0::2] == [6.0, -1.5] and pd.isna(stays["gain"][1])  # an empty input: empty
    assert list(stays.columns)[-6:] == ["stay", "gain", "period", "after", "month", "month_index"]
    assert stays["month"].tolist() == ["2020-02", "2020-02", "2020-08"] and stays["month_index"].tolist() == [1, 1, 7]
    assert stays["period"].astype(str).tolist() == ["before", "before", "after"]


def test_eligibility_criteria_are_applied_in_order_for_the_flow(tmp_path):
    data = """
        id,day,age,medicines,consent
        1,2020-01-10,15,1,yes
        2,2020-01-11,15,5,yes
        3,2020-01-12,40,1,yes
        4,2020-01-13,40,5,no
        5,2020-01-14,40,5,yes
        6,2021-01-10,70,0,
        7,2021-01-11,70,9,yes
        8,2022-06-01,10,0,no
        """
    body = """
        tables:
          patients:
            file: {patients}
            key: id
            columns:
              id: {{type: string}}
              day: {{type: date}}
              age: {{type: integer}}
              medicines: {{type: integer}}
              consent: {{type: string}}
        period:
          column: day
          before: {{label: Before, start: 2020-01-01, end: 2020-12-31}}
          after: {{label: After, start: 2021-01-01, end: 2021-12-31}}
        eligibility:
          under_18: {{keep: age >= 18, excluded: aged under 18}}
          few_medicines: {{keep: medicines >= 2, excluded: fewer than 2 medicines}}
          no_consent: {{keep: consent == yes, excluded: no consent}}
        outcomes:
          age: {{type: continuous, table: patients, column: age, label: Age}}
        """
    study = study_file(tmp_path, body, patients=data)
    frame = validate_study(study).frames["patients"]
    n = counts(flow(frame, study))
    # row 8 is after both windows. Before: 1 and 2 under 18 (1 also has few medicines: counted once,
    # under the first criterion), 3 few medicines, 4 no consent, 5 included. After: 6 few medicines
    # (its empty consent is not reached), 7 included.
    assert n["screened", "all"] == 8 and n["outside_periods", "all"] == 1
    assert (n["under_18", "before"], n["under_18", "after"]) == (2, 0)
    assert (n["few_medicines", "before"], n["few_medicines", "after"]) == (1, 1)
    assert (n["no_consent", "before"], n["no_consent", "after"]) == (1, 0)
    assert (n["included", "before"], n["included", "after"], n["included", "all"]) == (1, 1, 2)
    stages = list(flow(frame, study)["stage"].cat.categories)
    assert stages == ["screened", "outside_periods", "in_period_window", "under_18", "few_medicines", "no_consent",
                      "included"]
    assert eligible(frame, study).tolist() == [False, False, False, False, True, False, True, False]
    assert derive_all({"patients": frame}, study)["patients"]["id"].tolist() == ["5", "7"]


@pytest.mark.parametrize(("text", "expected"), [
    ("age >= 60", [True, False, False, True]),
    ("age < 60", [False, False, True, False]),
    ("age != 60", [True, False, True, False]),
    ("age == 70", [True, False, False, False]),
    ("age is missing", [False, True, False, False]),
    ("age is not missing", [True, False, True, True]),
    ("arm == usual care", [True, False, False, False]),
    ("arm != usual care", [False, False, True, False]),  # a missing arm is not "other than usual care"
    ("flag == true", [True, False, False, False]),
    ("flag != true", [False, True, False, False]),
    ("age == 70.0", [True, False, False, False]),  # a numeric column compares numbers
    ("age == 070", [True, False, False, False]),
    ("age == seventy", [False, False, False, False]),
    ("ward == 007", [True, False, False, False]),  # a text column compares the text as written
    ("ward == 7", [False, False, True, False]),
    ("ward == '007'", [True, False, False, False]),
    ("ward != 007", [False, False, True, True]),
])
def test_a_condition_on_a_missing_cell_is_not_met(text, expected):
    frame = pd.DataFrame({
        "age": pd.Series([70, None, 50, 60], dtype="Int64"),
        "arm": pd.Series(["usual care", None, "new", None], dtype="str"),
        "flag": pd.Series([True, False, None, None], dtype="boolean"),
        "ward": pd.Series(["007", None, "7", "008"], dtype="str"),
    })
    assert holds(frame, Condition.parse(text)).tolist() == expected


def test_a_row_with_a_missing_cell_is_excluded_by_its_criterion(tmp_path):
    frame = pd.DataFrame({"age": pd.Series([70, None], dtype="Int64")})
    assert all_hold(frame, [Condition.parse("age >= 18")]).tolist() == [True, False]
    assert all_hold(frame, [Condition.parse("age >= 18"), Condition.parse("age is not missing")]).tolist() == [
        True, False]
    assert all_hold(frame, []).tolist() == [True, True]


def test_the_worked_example_of_the_bring_your_own_data_walk_through_runs_as_it_says(tmp_path):
    """data_raw/README.md: its one-table study with its own names and the period from a column."""
    text = (ROOT / "data_raw" / "README.md").read_text(encoding="utf-8")
    worked = text[text.index("### Worked example: one table"):]
    data, body = re.findall(r"```(?:yaml)?\n(.*?)```", worked, re.S)[:2]
    (tmp_path / "audit.csv").write_text(data, encoding="utf-8")
    body = body.replace("data_raw/myhospital/audit.csv", str(tmp_path / "audit.csv"))
    path = tmp_path / "myhospital.yml"
    path.write_text(body + f"outputs: {{folder: {tmp_path / 'out'}}}\n", encoding="utf-8")
    prepared = prepare(load_study(path))
    patients = prepared.tables["patients"]
    assert list(patients.columns) == ["record", "arm", "frailty", "discrepancy", "age", "ward", "period", "after"]
    assert patients["record"].tolist() == ["A-001", "A-002", "A-005"]  # A-004 (pilot), A-003 (aged 58) excluded
    n = counts(prepared.flow)
    assert (n["outside_periods", "all"], n["under_65", "all"], n["missing_discharge_check", "all"]) == (1, 1, 1)
    assert (n["included", "before"], n["included", "after"]) == (1, 2)
