"""An interrupted time series from an aggregated table (`one_row_per: month`) and with a control series
(`design.group`), in analysis/analyses/its_counts.py, and the data step's checks of such a table
(analysis/data/validate.py, rule `one_row_per_month` and its kin)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.analyses import its_counts
from analysis.config import load_study
from analysis.data.derive import derive_all
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from analysis.stats.its import segmented_counts


def derived(study):
    """The study's derived tables, made in memory from its raw files (nothing is written)."""
    return derive_all(validate_study(study).frames, study)


@pytest.fixture(scope="module")
def monthly():
    study = load_study("studies/mortality_its_monthly.yml")
    return study, derived(study)


def test_the_monthly_table_gives_the_patient_level_series_fit(monthly):
    # the intervention trust's rows are the monthly totals of mortality_its's admissions: without the control
    # series, the aggregated table and the patient rows must give the same segmented regression
    study, tables = monthly
    alone = study.model_copy(update={"design": study.design.model_copy(update={"group": None})})
    patients = load_study("studies/mortality_its.yml")
    ours = its_counts.results(tables, alone).set_index("name")
    theirs = its_counts.results(derived(patients), patients).set_index("name")
    for term in ("level_change", "slope_change", "pre_trend", "events_averted", "durbin_watson"):
        a, b = ours.loc[f"its_counts.deaths.{term}"], theirs.loc[f"its_counts.died.{term}"]
        assert a["estimate"] == pytest.approx(b["estimate"], rel=1e-9), term
        assert a["conf_high"] == pytest.approx(b["conf_high"], rel=1e-9, nan_ok=True), term
    assert "binomial" in ours.loc["its_counts.deaths.level_change", "method"]


def test_the_control_series_is_the_stats_functions_with_the_group(monthly):
    study, tables = monthly
    rows = its_counts.results(tables, study).set_index("name")
    series = its_counts.series(tables, study, "deaths")
    # 60 months of each trust; the outcome's population (the intervention trust) is lifted for the two series
    assert series.groupby("series").size().to_dict() == {0: 60, 1: 60}
    assert series.loc[series.series == 1, "events"].sum() == tables["monthly"].query(
        "trust == 'Intervention trust'")["deaths"].sum()
    direct = segmented_counts(series, "events", "n", "time", 24, lags=1, family="binomial", month="month",
                              group="series").set_index("term")
    for term in ("level_change_difference", "slope_change_difference", "group_pre_trend", "events_averted"):
        assert rows.loc[f"its_counts.deaths.{term}", "estimate"] == pytest.approx(direct.loc[term, "estimate"])
    assert "control series" in rows.loc["its_counts.deaths.level_change", "description"]
    assert "odds ratio" in rows.loc["its_counts.deaths.level_change_difference", "description"]
    curves = its_counts.curves(tables, study)
    assert set(curves["series"]) == {"intervention", "control"} and len(curves) == 120


def test_months_missing_from_the_table_are_reported(monthly):
    study, tables = monthly
    table = tables["monthly"]
    holed = {"monthly": table[~table["month_start"].isin(pd.to_datetime(["2008-03-01", "2010-07-01"]))]}
    rows = its_counts.results(holed, study)
    # the two months are missing from both series: two months, said once
    assert rows["warnings"].str.contains("2 month\\(s\\) have no data \\(2008-03, 2010-07\\)").all()
    assert not its_counts.results(tables, study)["warnings"].str.contains("have no data").any()


def test_a_poisson_model_is_the_default_for_counts(monthly):
    study, tables = monthly
    poisson = study.model_copy(update={"design": study.design.model_copy(update={"family": None})})
    assert its_counts.family(poisson, "deaths") == "poisson"
    rows = its_counts.results(tables, poisson).set_index("name")
    assert "rate ratio" in rows.loc["its_counts.deaths.level_change", "description"]
    assert "offset log denominator" in rows.loc["its_counts.deaths.level_change", "method"]


def write_table(tmp_path, write_study, rows: list[tuple], family: str = "binomial"):
    raw = tmp_path / "monthly.csv"
    raw.write_text("Month,Site,Admissions,Deaths\n" + "".join(f"{m},{s},{n},{d}\n" for m, s, n, d in rows))
    return load_study(write_study({
        "tables": {"monthly": {"file": str(raw), "one_row_per": "month", "columns": {
            "month_start": {"from": "Month", "type": "date"}, "site": {"from": "Site", "type": "string"},
            "admissions": {"from": "Admissions", "type": "integer"},
            "deaths": {"from": "Deaths", "type": "integer"}}}},
        "period": {"column": "month_start", "before": {"label": "Before", "start": "2020-01-01", "end": "2020-06-30"},
                   "after": {"label": "After", "start": "2020-07-01", "end": "2020-12-31"}},
        "design": {"type": "interrupted_time_series", "family": family,
                   "group": {"column": "site", "intervention": "A", "control": "B"}},
        "outcomes": {"deaths": {"type": "count", "table": "monthly", "column": "deaths", "exposure": "admissions",
                                "label": "Deaths"}}}))


def test_a_month_twice_a_negative_count_and_too_many_events_are_refused(tmp_path, write_study):
    months = [f"2020-{m:02d}-01" for m in range(1, 13)]
    rows = [(m, s, 100, 5) for m in months for s in "AB"]
    rows[3] = (months[1], "A", 100, 5)  # February twice for site A (file rows 4 and 5), none for B
    rows[6] = (months[3], "A", 100, -1)
    rows[8] = (months[4], "A", 100, 101)
    study = write_table(tmp_path, write_study, rows)
    with pytest.raises(StudyError) as error:
        validate_study(study)
    message = str(error.value)
    assert "rule: one_row_per_month" in message and "rows 4-5 (2 rows)" in message  # file rows, header 1
    assert "rule: counts_not_negative" in message and "'-1'" in message
    assert "rule: events_within_denominator" in message and "use `family: poisson` for a rate" in message
    # the same month for the two sites is not a repeat; with Poisson, more deaths than admissions is allowed
    fine = [(m, s, 100, 5) for m in months for s in "AB"]
    fine[8] = (months[4], "A", 100, 101)
    assert len(validate_study(write_table(tmp_path, write_study, fine, family="poisson")).frames["monthly"]) == 24


def test_patient_rows_with_a_group_column_make_a_controlled_series():
    # the controlled before-after study's patients, read as an interrupted time series with the hospitals as
    # intervention and control series: each series' monthly counts are its own patients'
    from analysis.config import Design
    from analysis.data import load

    prepared = load("controlled")
    group = prepared.study.design.group
    study = prepared.study.model_copy(update={"design": Design(type="interrupted_time_series", group=group,
                                                               seasonality="none")})
    series = its_counts.series(prepared.tables, study, "discharge_error")
    patients = prepared.tables["patients"].dropna(subset=["error"])
    assert series.groupby("series")["n"].sum().to_dict() == {
        0: int((patients["hospital"] == "Southside").sum()), 1: int((patients["hospital"] == "Northside").sum())}
    rows = its_counts.results(prepared.tables, study).set_index("name")
    assert rows.loc["its_counts.discharge_error.level_change_difference", "estimate"] > 0
    # the changeover (February and March 2012) is a gap in both series, reported once
    assert "2 month(s) have no data (2012-02, 2012-03)" in rows["warnings"].iloc[0]


def test_a_control_value_with_no_rows_is_an_error_naming_the_key(monthly):
    study, tables = monthly
    group = study.design.group.model_copy(update={"control": "Other trust"})
    wrong = study.model_copy(update={"design": study.design.model_copy(update={"group": group})})
    with pytest.raises(StudyError, match="design.group: no rows of outcome deaths have trust == Other trust, so "
                                         "there is no control series; the column holds Comparison trusts"):
        its_counts.results(tables, wrong)
