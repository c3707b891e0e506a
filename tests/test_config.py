"""The study file: typed, strict, and every problem named by file and key."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis.config import load_study
from analysis.errors import StudyError


def test_a_valid_study_file_parses_into_typed_values(write_study, tmp_path):
    study = load_study(write_study())
    assert study.name == "toy"
    assert study.periods.after.start == dt.date(2021, 1, 1)
    assert study.output_dir == tmp_path / "out"
    assert study.covariates == ["age", "charlson", "n_medicines"]  # the paper's adjustment set by default


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds.model": 3}, "key 'seeds.model': unknown key"),
        ({"titel": "typo"}, "key 'titel': unknown key"),
        ({"seeds.models": "twelve"}, "key 'seeds.models': Input should be a valid integer"),
        ({"synthetic": None}, "key 'synthetic': required key is missing"),
        ({"data.patients.file": "nowhere/x.csv"}, "key 'data.patients.file': data file not found: nowhere/x.csv"),
        ({"periods.before.end": "2019-01-01"}, "key 'periods.before': end 2019-01-01 is before start 2020-01-01"),
        ({"periods.after.start": "2020-06-01"}, "the after period starts (2020-06-01) on or before the before"),
        ({"clusters.primary": "hospital"}, "key 'clusters.primary': Input should be 'team', 'ward' or 'pharmacist'"),
        ({"covariates": ["age", "weight"]}, "key 'covariates.1'"),
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
