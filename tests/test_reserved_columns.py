"""A declared column whose name the data step gives its own columns (period, after, month, month_index) is
refused when the study file is loaded, naming the key: derive.py would otherwise overwrite it without a word."""

from __future__ import annotations

import pytest

from analysis.config import RESERVED_COLUMNS, load_study
from analysis.data import dictionary
from analysis.errors import StudyError


def test_the_reserved_names_are_the_columns_the_data_step_adds():
    # derived.yml documents what derive.py adds to every table; the list in config must not drift from it
    assert list(RESERVED_COLUMNS) == list(dictionary.derived_tables()["{table}"].columns)


@pytest.mark.parametrize("name", RESERVED_COLUMNS)
def test_a_declared_column_with_a_reserved_name_is_refused(write_study, name):
    with pytest.raises(StudyError, match=f"tables.patients.columns.{name}: '{name}' is a name the data step gives "
                                         "its own columns \\(period, after, month, month_index\\)"):
        load_study(write_study({f"tables.patients.columns.{name}": {"type": "string"}}))


def test_a_derived_column_with_a_reserved_name_is_refused_and_a_similar_name_is_not(write_study, tmp_path):
    with pytest.raises(StudyError, match="tables.patients.derive.month: 'month' is a name the data step"):
        load_study(write_study({"tables.patients.derive.month": {"days_between": ["admitted", "admitted"]}}))
    # only the exact names are the pipeline's: a user's month_start or after_discharge is theirs
    assert load_study(write_study({"tables.patients.columns.after_discharge": {"type": "string"}}))
