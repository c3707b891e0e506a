"""A weekly interrupted time series (`design.time_unit: week`): patient rows counted by ISO week (Monday to
Sunday), an aggregated table declared `one_row_per: week`, Fourier seasonality of period 52.18 weeks, the design
check's time points in weeks, and what the study file refuses (month indicators for weeks, a weekly table in a
monthly design). The fit itself is checked against R in tests/stats/test_its.py (weekly rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.analyses import design_check, its_counts
from analysis.config import load_study
from analysis.data.derive import derive_all
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from analysis.stats.its import segmented_counts

WEEKLY = {"time_unit: month": "time_unit: week", "harmonics: 1": "harmonics: 2", "lags: 1": "lags: 4"}


def weekly_text(source: str, changes: dict[str, str]) -> str:
    text = Path(source).read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weekly")
    path = folder / "mortality_weekly.yml"
    path.write_text(weekly_text("studies/mortality_its.yml", WEEKLY))
    study = load_study(path)
    return study, derive_all(validate_study(study).frames, study)


def by_hand(tables) -> pd.DataFrame:
    """Deaths and admissions per week counted without pandas periods: a week is the 7 days from a Monday;
    2007-01-01, the first day of the study, was a Monday."""
    rows = tables["admissions"]
    days = (pd.to_datetime(rows["admitted"]) - pd.Timestamp("2007-01-01")).dt.days.to_numpy()
    week = days // 7
    died = rows["died"].astype(float).to_numpy()
    weeks = np.unique(week)
    return pd.DataFrame({"time": weeks, "events": [died[week == w].sum() for w in weeks],
                         "n": [float((week == w).sum()) for w in weeks]})


def test_patient_rows_are_counted_by_iso_week(weekly):
    study, tables = weekly
    assert pd.Timestamp("2007-01-01").day_of_week == 0
    series = its_counts.series(tables, study, "died")
    hand = by_hand(tables)
    assert series["time"].tolist() == hand["time"].tolist()
    assert series["events"].tolist() == hand["events"].tolist() and series["n"].tolist() == hand["n"].tolist()
    # 2009-01-01 (the change point) was a Thursday: its week began on Monday 2008-12-29, 104 weeks in
    assert set(series["change"]) == {(pd.Timestamp("2008-12-29") - pd.Timestamp("2007-01-01")).days // 7} == {104}
    assert series["calendar"].iloc[0] == "2007-01-01" and series["calendar"].iloc[104] == "2008-12-29"


def test_the_weekly_fit_is_the_stats_function_with_a_52_week_cycle(weekly):
    study, tables = weekly
    rows = its_counts.results(tables, study).set_index("name")
    hand = by_hand(tables)
    direct = segmented_counts(hand, "events", "n", "time", 104, lags=4, family="binomial", month="time",
                              harmonics=2, period=365.25 / 7).set_index("term")
    for term in ("level_change", "slope_change", "pre_trend", "events_averted", "ljung_box"):
        mine = rows.loc[f"its_counts.died.{term}"]
        for quantity in ("estimate", "conf_low", "p_value"):
            assert mine[quantity] == pytest.approx(direct.loc[term, quantity], rel=1e-10, nan_ok=True), term
    assert "per week" in rows.loc["its_counts.died.slope_change", "description"]
    assert "period 52.18" in rows.loc["its_counts.died.level_change", "method"]
    # the monthly fit of the same rows, to show that the unit matters: a different number of time points
    monthly = load_study("studies/mortality_its.yml")
    assert len(its_counts.series(tables, monthly, "died")) == 60 and len(hand) == 261  # the last, 2011-12-26, is 6 days
    curves = its_counts.curves(tables, study)
    assert len(curves) == 261 and curves["month"].iloc[1] == "2007-01-08"


def test_the_design_check_counts_weeks(weekly):
    study, tables = weekly
    checked = design_check.design_check(study, tables).set_index("name")
    assert checked.loc["design_check.points_before", "estimate"] == 104
    assert checked.loc["design_check.points_after", "estimate"] == 157
    assert "weeks with data" in checked.loc["design_check.points_before", "description"]
    assert "the week of 2009-01-01" in checked.loc["design_check.points_before", "description"]


def test_an_aggregated_weekly_table_gives_the_patient_level_weekly_fit(weekly, tmp_path):
    study, tables = weekly
    hand = by_hand(tables)
    # one row per week, dated on any day of its week (here the Wednesday)
    dates = pd.Timestamp("2007-01-03") + pd.to_timedelta(7 * hand["time"], unit="D")
    raw = tmp_path / "weeks.csv"
    pd.DataFrame({"Week": dates.dt.strftime("%Y-%m-%d"), "Admissions": hand["n"].astype(int),
                  "Deaths": hand["events"].astype(int)}).to_csv(raw, index=False)
    text = weekly_text("studies/mortality_its.yml", WEEKLY)
    start = text.index("tables:")
    end = text.index("period:")
    text = (text[:start] + f"tables:\n  weekly:\n    file: {raw}\n    one_row_per: week\n    columns:\n"
            "      week_of: {from: Week, type: date}\n      admissions: {from: Admissions, type: integer}\n"
            "      deaths: {from: Deaths, type: integer}\n\n" + text[end:])
    text = text.replace("column: admitted", "column: week_of").replace(
        "    type: binary\n    table: admissions\n    column: died\n",
        "    type: count\n    table: weekly\n    column: deaths\n    exposure: admissions\n").replace(
        "routinely_collected: true", "routinely_collected: true\n  family: binomial")
    path = tmp_path / "weeks.yml"
    path.write_text(text)
    aggregated = load_study(path)
    derived = derive_all(validate_study(aggregated).frames, aggregated)
    ours = its_counts.results(derived, aggregated).set_index("name")
    theirs = its_counts.results(tables, study).set_index("name")
    for term in ("level_change", "slope_change", "events_averted", "durbin_watson"):
        assert ours.loc[f"its_counts.died.{term}", "estimate"] == pytest.approx(
            theirs.loc[f"its_counts.died.{term}", "estimate"], rel=1e-9), term
    # a weekly table in a monthly design is refused, naming both keys
    path.write_text(text.replace("time_unit: week", "time_unit: month").replace("harmonics: 2", "harmonics: 1"))
    with pytest.raises(StudyError, match="tables.weekly.one_row_per: 'week' but design.time_unit is 'month'"):
        load_study(path)


def test_a_week_twice_in_a_weekly_table_is_refused(tmp_path, write_study):
    # Monday 2020-01-06 and Sunday 2020-01-12 are one ISO week; Monday 2020-01-13 is the next
    raw = tmp_path / "weeks.csv"
    days = ["2020-01-06", "2020-01-12", "2020-01-13", "2020-01-20", "2020-07-06", "2020-07-13", "2020-07-20"]
    raw.write_text("Week,Admissions,Deaths\n" + "".join(f"{d},100,5\n" for d in days))
    study = load_study(write_study({
        "tables": {"weekly": {"file": str(raw), "one_row_per": "week", "columns": {
            "week_of": {"from": "Week", "type": "date"}, "admissions": {"from": "Admissions", "type": "integer"},
            "deaths": {"from": "Deaths", "type": "integer"}}}},
        "period": {"column": "week_of", "before": {"label": "Before", "start": "2020-01-06", "end": "2020-06-28"},
                   "after": {"label": "After", "start": "2020-06-29", "end": "2020-12-27"}},
        "design": {"type": "interrupted_time_series", "time_unit": "week", "family": "binomial"},
        "outcomes": {"deaths": {"type": "count", "table": "weekly", "column": "deaths", "exposure": "admissions",
                                "label": "Deaths"}}}))
    with pytest.raises(StudyError) as error:
        validate_study(study)
    message = str(error.value)
    # file rows 2 and 3 (the header is row 1); the next Monday, row 4, is another week
    assert "row 2, column 'Week'" in message and "row 3, column 'Week'" in message and "row 4" not in message
    assert "rule: one_row_per_week" in message
    assert "the same week comes more than once" in message
