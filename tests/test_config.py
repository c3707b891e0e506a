"""The study file: typed, strict, every problem named by file and key, and what a study declares."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis.config import Condition, load_study
from analysis.errors import StudyError


def test_a_valid_study_file_parses_into_typed_values(write_study, tmp_path):
    study = load_study(write_study())
    assert study.name == "toy"
    assert study.period.after.start == dt.date(2021, 1, 1) and study.period.by_date
    assert study.output_dir == tmp_path / "out"
    assert study.main_table == "patients" and study.covariates == [] and study.clusters.primary is None
    outcome = study.outcomes["event"]
    # a binary outcome's default analyses, none of which needs a cluster here until one is declared
    assert outcome.does("proportions") and outcome.does("nnt") and not outcome.does("by_cluster")
    assert not outcome.does("medians")  # not an analysis of a binary outcome


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds.model": 3}, "key 'seeds.model': unknown key"),
        ({"titel": "typo"}, "key 'titel': unknown key"),
        ({"seeds.models": "twelve"}, "key 'seeds.models': Input should be a valid integer"),
        ({"seeds.models": True}, "key 'seeds.models': Input should be a valid integer"),
        ({"seeds.models": "20140701"}, "key 'seeds.models': Input should be a valid integer"),
        ({"synthetic": None}, "key 'synthetic': required key is missing"),
        ({"synthetic": "yes please"}, "key 'synthetic': Input should be a valid boolean"),
        ({"tables.patients.file": "nowhere/x.csv"}, "tables.patients.file: data file not found: nowhere/x.csv"),
        ({"period.before.end": "2019-01-01"}, "key 'period.before': end 2019-01-01 is before start 2020-01-01"),
        ({"period.after.start": "2020-06-01"}, "the after period starts (2020-06-01) on or before the before"),
        ({"period.before.value": "a"}, "give either `start` and `end` (date windows) or `value`"),
        ({"clusters.primary": "hospital"}, "outcomes.event: clusters.primary: column 'hospital' is not declared"),
        ({"covariates": ["age"]}, "outcomes.event.covariates: column 'age' is not declared in tables.patients"),
        ({"outcomes.event.table": "visits"}, "outcomes.event.table: no table 'visits' (tables: patients)"),
        ({"outcomes.event.type": "proportion"}, "key 'outcomes.event.type': Input should be 'binary', 'count'"),
        ({"outcomes.event.analyses": {"medians": False}}, "unknown analyses ['medians'] for a binary outcome"),
        ({"outcomes.event.population": "age => 65"}, "condition 'age => 65' is not of the form"),
        ({"outcomes.event.population": "age > old"}, "condition 'age > old': > needs a number"),
        ({"outcomes.event.type": "ordinal"}, "an ordinal outcome needs its `levels`"),
        ({"outcomes.event.subgroup": "elderly"}, "outcomes.event.subgroup: no subgroup 'elderly'"),
        ({"eligibility": {"adults": {"keep": "age >= 18", "excluded": "children"}}},
         "eligibility.adults: column 'age' is not declared in tables.patients.columns"),
        ({"tables.patients.columns.admitted": None, "tables.patients.columns.day": {"type": "date"}},
         "tables.patients: the period column 'admitted' is not among its columns"),
        ({"tables.flow": {"file": "x.csv"}}, "a table's name is letters, digits and underscores, and not 'flow'"),
        ({"name": "other"}, "key 'name' is not allowed"),
    ],
)
def test_every_problem_names_the_file_and_the_key(write_study, changes, message):
    path = write_study(changes)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert str(caught.value).startswith(str(path)) or str(caught.value).startswith("/")
    assert message in str(caught.value)


def test_several_problems_are_listed_together(write_study):
    with pytest.raises(StudyError, match=r"2 problems") as caught:
        load_study(write_study({"titel": "x", "seeds.models": "x"}))
    assert "titel" in str(caught.value) and "seeds.models" in str(caught.value)


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(write_study):
    path = write_study(text="title: a\ntitle: b\n")
    with pytest.raises(StudyError, match=r"key 'title' appears twice \(line 2\)"):
        load_study(path)


def test_bad_yaml_and_a_missing_study_file_say_so(write_study, tmp_path):
    with pytest.raises(StudyError, match="not valid YAML"):
        load_study(write_study(text="title: [unclosed\n"))
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "absent.yml")


def test_a_period_from_a_column_has_no_dates(write_study):
    study = load_study(write_study({
        "tables.patients.columns.arm": {"from": "Study arm", "type": "string"},
        "period": {"column": "arm", "before": {"label": "Usual care", "value": "usual care"},
                   "after": {"label": "New model", "value": "new model"}},
    }))
    assert not study.period.by_date
    assert study.period.labels() == {"before": "Usual care", "after": "New model"}
    assert study.tables["patients"].file_name("arm") == "Study arm"
    with pytest.raises(StudyError, match="the two periods have the same value 'x'"):
        load_study(write_study({"period": {"column": "event", "before": {"label": "A", "value": "x"},
                                           "after": {"label": "B", "value": "x"}}}))


@pytest.mark.parametrize(("text", "column", "operator", "value"), [
    ("age >= 65", "age", ">=", 65.0),
    ("arm == usual care", "arm", "==", "usual care"),
    ("arm != 'new model'", "arm", "!=", "new model"),
    ("score<3.5", "score", "<", 3.5),
    ("ward == 007", "ward", "==", "007"),  # as written: a code, which a numeric column reads as 7 (derive.holds)
    ("ward != '7'", "ward", "!=", "7"),
    ("mai is not missing", "mai", "is not missing", None),
    ("mai is missing", "mai", "is missing", None),
])
def test_conditions_are_read_from_plain_text(text, column, operator, value):
    condition = Condition.parse(text)
    assert (condition.column, condition.operator, condition.value) == (column, operator, value)


def test_switches_and_sensitivity_analyses_decide_what_an_outcome_gets(write_study):
    study = load_study(write_study({
        "outcomes.event.analyses": {"nnt": False, "by_cluster": True},
        "outcomes.event_worst": {"type": "binary", "table": "patients", "column": "event", "label": "Worst case",
                                 "missing": "as_event", "sensitivity_of": "event"},
    }))
    event, worst = study.outcomes["event"], study.outcomes["event_worst"]
    assert not event.does("nnt") and event.does("by_cluster")
    # a sensitivity analysis repeats the comparison and the models, not the extra analyses
    assert worst.does("mixed") and not worst.does("time_series") and not worst.does("alternative_clusters")
    with pytest.raises(StudyError, match="outcomes.x.sensitivity_of: no outcome 'nothing'"):
        load_study(write_study({"outcomes.x": {"type": "binary", "table": "patients", "column": "event",
                                               "label": "X", "sensitivity_of": "nothing"}}))


def test_the_committed_studies_declare_what_they_analyse():
    reference = load_study("reference")
    assert list(reference.tables) == ["patients", "suggestions"]
    assert reference.outcome_covariates(reference.outcomes["discharge_error"])[-1] == "length_of_stay"
    assert reference.outcomes["acceptance"].table == "suggestions"
    assert [str(c) for c in reference.subgroups["mai"].where] == ["age >= 65", "mai_pre_admission is not missing"]
    example = load_study("example")
    assert example.tables["patients"].file_name("team") == "Specialty"
