"""The design check (Cochrane EPOC's minimum criteria): the `design:` key, and each criterion counted from the
data, met or warned with a sentence naming the criterion and its source."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from analysis.analyses import design_check
from analysis.config import load_study
from analysis.errors import StudyError

EPOC = "What study designs should be included in an EPOC review"


def rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("name")


def toy(write_study, tmp_path, lines: list[str], design: dict, header: str = "id,admitted,event,arm,site"):
    raw = tmp_path / "cba.csv"
    raw.write_text(header + "\n" + "\n".join(lines) + "\n")
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "event": {"type": "boolean"},
               "arm": {"type": "string"}, "site": {"type": "string"}}
    return load_study(write_study({"tables.patients.file": str(raw), "tables.patients.columns": columns,
                                   "design": design}))


def frame(study, records: list[tuple]) -> dict[str, pd.DataFrame]:
    """The main table as derived: the declared columns and the period."""
    table = pd.DataFrame(records, columns=["id", "admitted", "event", "arm", "site"])
    table["admitted"] = pd.to_datetime(table["admitted"])
    table["period"] = ["after" if d >= pd.Timestamp(study.period.after.start) else "before"
                       for d in table["admitted"]]
    return {"patients": table}


CBA = {"type": "controlled_before_after", "group": {"column": "arm", "intervention": "new", "control": "usual"},
       "sites": "site"}


def test_the_design_key_defaults_to_an_uncontrolled_before_after(write_study):
    study = load_study(write_study())
    assert study.design.type == "before_after" and study.design.group is None
    assert study.change_point == dt.date(2021, 1, 1)  # the start of the after window


@pytest.mark.parametrize(("design", "message"), [
    ({"type": "controlled_before_after"}, "needs `group` (column, intervention, control) and `sites`"),
    ({"type": "stepped_wedge"}, "key 'design.type': Input should be 'before_after'"),
    ({"type": "before_after", "sites": "ward"}, "`sites` is for type controlled_before_after"),
    ({"type": "interrupted_time_series", "sites": "ward"}, "`sites` is for type controlled_before_after"),
    ({"group": {"column": "arm", "intervention": "new", "control": "usual"}},
     "`group` is for type controlled_before_after or interrupted_time_series"),
    ({"type": "interrupted_time_series", "family": "gamma"}, "key 'design.family'"),
    ({"family": "poisson"}, "`family` is for type interrupted_time_series"),
    ({**CBA, "time_unit": "week"}, "`time_unit: week` is for an interrupted time series"),
    ({"type": "interrupted_time_series", "time_unit": "quarter"}, "an interrupted time series is by month or by "
                                                                  "week"),
    ({"type": "interrupted_time_series", "time_unit": "week", "seasonality": "months"},
     "use `seasonality: fourier` (period 52.18 weeks)"),
    ({"type": "interrupted_time_series", "time_unit": "day"}, "key 'design.time_unit'"),
    ({"change_point": "2021-01-01"}, "`change_point` is for type interrupted_time_series"),
    ({"lags": 2, "seasonality": "months"}, "`seasonality`, `lags` are for type interrupted_time_series"),
    ({"type": "interrupted_time_series", "harmonics": 9}, "key 'design.harmonics'"),
    ({**CBA, "sites": "hospital"}, "design.sites: column 'hospital' is not declared in tables.patients"),
    ({**CBA, "group": {"column": "arm", "intervention": "x", "control": "x"}}, "the same value 'x'"),
])
def test_a_design_that_cannot_be_checked_is_refused_naming_the_key(write_study, design, message):
    with pytest.raises(StudyError, match="toy.yml") as error:
        load_study(write_study({"design": design}))
    assert message in str(error.value)


def test_the_reference_study_is_warned_as_an_uncontrolled_before_after():
    from analysis.data import load

    prepared = load("reference")
    checked = rows(design_check.design_check(prepared.study, prepared.tables))
    assert list(checked.index) == ["design_check.controlled"]
    entry = checked.loc["design_check.controlled"]
    assert entry["estimate"] == 0
    assert "strongly discourages" in entry["warnings"] and EPOC in entry["warnings"] and "2017" in entry["warnings"]
    assert "**Not met**" in design_check.summary(prepared.study, checked.reset_index())


def test_time_points_are_the_months_with_data_either_side_of_the_change(write_study, tmp_path):
    study = toy(write_study, tmp_path, ["1,2020-03-01,true,new,a"],
                {"type": "interrupted_time_series", "change_point": "2021-03-01"})
    # months with data before 2021-03: 2020-10, 2020-11, 2021-02 (two rows in 2020-11) = 3 (met);
    # from 2021-03 on: 2021-03 and 2021-05 = 2 (not met)
    data = frame(study, [("1", "2020-10-05", True, "new", "a"), ("2", "2020-11-01", False, "new", "a"),
                         ("3", "2020-11-30", False, "new", "a"), ("4", "2021-02-10", True, "new", "a"),
                         ("5", "2021-03-01", False, "new", "a"), ("6", "2021-05-31", True, "new", "a")])
    checked = rows(design_check.design_check(study, data))
    assert checked.loc["design_check.points_before", "estimate"] == 3
    assert checked.loc["design_check.points_before", "n"] == 4 and not checked.loc["design_check.points_before",
                                                                                    "warnings"]
    assert checked.loc["design_check.points_after", "estimate"] == 2
    warning = checked.loc["design_check.points_after", "warnings"]
    assert warning.startswith("Fewer than 3 time points from the change point on (2 months with data)")
    assert EPOC in warning


def test_a_controlled_series_counts_the_intervention_series_points(write_study, tmp_path):
    # the control series has months before the change that the intervention series lacks: they do not count
    study = toy(write_study, tmp_path, ["1,2020-03-01,true,new,a"],
                {"type": "interrupted_time_series", "change_point": "2021-03-01",
                 "group": {"column": "arm", "intervention": "new", "control": "usual"}})
    data = frame(study, [("1", "2020-10-05", True, "usual", "a"), ("2", "2020-11-01", False, "usual", "a"),
                         ("3", "2021-01-30", False, "new", "a"), ("4", "2021-02-10", True, "new", "a"),
                         *[(str(i), f"2021-0{i}-01", False, "new", "a") for i in (3, 4, 5)]])
    checked = rows(design_check.design_check(study, data))
    assert checked.loc["design_check.points_before", "estimate"] == 2
    assert "Fewer than 3 time points before the change point" in checked.loc["design_check.points_before",
                                                                             "warnings"]
    assert checked.loc["design_check.points_after", "estimate"] == 3


def test_sites_and_contemporaneous_periods_of_a_controlled_before_after(write_study, tmp_path):
    study = toy(write_study, tmp_path, ["1,2020-03-01,true,new,a"], CBA)
    records = [("1", "2020-02-01", True, "new", "a"), ("2", "2020-02-15", True, "new", "b"),
               ("3", "2021-06-01", False, "new", "a"), ("4", "2021-07-01", False, "new", "b"),
               ("5", "2020-02-20", True, "usual", "c"), ("6", "2021-06-30", True, "usual", "c")]
    checked = rows(design_check.design_check(study, frame(study, records)))
    assert checked.loc["design_check.intervention_sites", "estimate"] == 2
    assert not checked.loc["design_check.intervention_sites", "warnings"]
    assert checked.loc["design_check.control_sites", "estimate"] == 1
    assert checked.loc["design_check.control_sites", "warnings"].startswith("Fewer than 2 control sites (1)")
    # the intervention has data in 2020-02, 2021-06 and 2021-07; the control in 2020-02 and 2021-06
    assert checked.loc["design_check.contemporaneous", "estimate"] == 1
    warning = checked.loc["design_check.contemporaneous", "warnings"]
    assert "no data in 1 month(s)" in warning and "2021-07" in warning and EPOC in warning
    # a control group with data in both periods and every month: met
    records += [("7", "2021-07-02", False, "usual", "d")]
    checked = rows(design_check.design_check(study, frame(study, records)))
    assert checked.loc["design_check.contemporaneous", "estimate"] == 0
    assert not checked.loc["design_check.contemporaneous", "warnings"]
    assert not checked.loc["design_check.control_sites", "warnings"]


def test_a_control_missing_a_whole_period_is_not_contemporaneous(write_study, tmp_path):
    study = toy(write_study, tmp_path, ["1,2020-03-01,true,new,a"], CBA)
    records = [("1", "2020-02-01", True, "new", "a"), ("2", "2021-06-01", True, "new", "b"),
               ("3", "2020-02-20", True, "usual", "c")]
    checked = rows(design_check.design_check(study, frame(study, records)))
    assert "and none in the after period" in checked.loc["design_check.contemporaneous", "warnings"]
