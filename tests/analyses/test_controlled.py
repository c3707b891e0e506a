"""A controlled before-after study's binary outcome (analysis/analyses/controlled.py): the rows named for the
ledger, on the `medium` reference data (12 sites), whose model values R computed (tests/reference/designs.R)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.analyses import controlled
from analysis.config import load_study
from analysis.data import load

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


def controlled_study(write_study, **design):
    """A controlled before-after study of sites, intervention 1 against control 0, adjusted for age."""
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "event": {"type": "boolean"},
               "site": {"type": "string"}, "intervention": {"type": "integer"}, "age": {"type": "number"}}
    return load_study(write_study({
        "tables.patients.columns": columns, "covariates": ["age"],
        "design": {"type": "controlled_before_after", "sites": "site", **design,
                   "group": {"column": "intervention", "intervention": 1, "control": 0}}}))


@pytest.fixture
def study(write_study):
    return controlled_study(write_study)


@pytest.fixture
def tables():
    did = pd.read_csv(REFERENCE / "data" / "did.csv")
    medium = did[did.dataset == "medium"].reset_index(drop=True)
    return {"patients": medium.assign(event=medium["y"].astype(bool), id=[str(i) for i in range(len(medium))])
            .drop(columns=["y", "dataset"])}


def r_value(dataset: str, term: str, quantity: str) -> float:
    table = pd.read_csv(REFERENCE / "results" / "designs.csv")
    hit = table[(table.dataset == dataset) & (table.term == term) & (table.quantity == quantity)]
    return float(hit["value"].item())


def test_a_controlled_study_gets_named_did_rows_matching_r(study, tables):
    rows = controlled.results(tables, study).set_index("name")
    assert controlled.did_formula(study, "event") == "y ~ intervention * after + age"
    expected = [f"event.did.{t}" for t in controlled.PROPORTION_TERMS] + [
        f"event.did.ratio_of_odds_ratios_{s}" for s in ("mixed", "cluster_robust", "wild_bootstrap")]
    assert list(rows.index) == expected
    robust = rows.loc["event.did.ratio_of_odds_ratios_cluster_robust"]
    assert math.log(robust["estimate"]) == pytest.approx(r_value("medium_adjusted_cluster", "intervention:after",
                                                                 "estimate"), rel=1e-7)
    assert robust["std_error"] == pytest.approx(r_value("medium_adjusted_cluster", "intervention:after",
                                                        "std_error"), rel=1e-6)
    mixed = rows.loc["event.did.ratio_of_odds_ratios_mixed"]
    assert math.log(mixed["estimate"]) == pytest.approx(r_value("medium_adjusted_mixed", "intervention:after",
                                                                "estimate"), rel=2e-3)
    boot = rows.loc["event.did.ratio_of_odds_ratios_wild_bootstrap"]
    assert boot["estimate"] == pytest.approx(robust["estimate"]) and "12 clusters" in boot["description"]
    assert boot["conf_low"] < boot["estimate"] < boot["conf_high"] and "9999 draws" in boot["method"]
    # the four proportions are the cells' own
    d = tables["patients"]
    cell = d[(d.intervention == 1) & (d.after == 0)]["event"]
    assert rows.loc["event.did.proportion_intervention_before", "estimate"] == pytest.approx(cell.mean())


def test_the_bootstrap_is_seeded_from_the_study(study, tables):
    first = controlled.did_results(tables, study, "event").set_index("name")
    again = controlled.did_results(tables, study, "event").set_index("name")
    name = "event.did.ratio_of_odds_ratios_wild_bootstrap"
    assert first.loc[name, "p_value"] == again.loc[name, "p_value"]
    other = study.model_copy(update={"seeds": study.seeds.model_copy(update={"models": study.seeds.models + 1})})
    assert controlled.did_results(tables, other, "event").set_index("name").loc[name, "p_value"] != pytest.approx(
        first.loc[name, "p_value"], rel=1e-9)


def test_other_designs_get_no_rows():
    prepared = load("reference")
    assert controlled.results(prepared.tables, prepared.study).empty


def test_the_ordinary_analyses_pooling_both_groups_are_warned_about(study, tables):
    rows = controlled.did_results(tables, study, "event")
    assert rows["warnings"].str.contains("pool the intervention and control groups").all()
    assert "`population: intervention == 1`" in rows["warnings"].iloc[0]


def test_a_population_on_the_group_column_is_lifted_for_the_difference_in_differences(write_study, tables):
    # the outcome's own analyses describe the intervention group; the difference in differences still uses both
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "event": {"type": "boolean"},
               "site": {"type": "string"}, "intervention": {"type": "integer"}, "age": {"type": "number"}}
    restricted = load_study(write_study({
        "tables.patients.columns": columns, "covariates": ["age"], "outcomes.event.population": "intervention == 1",
        "design": {"type": "controlled_before_after", "sites": "site",
                   "group": {"column": "intervention", "intervention": 1, "control": 0}}}))
    rows = controlled.did_results(tables, restricted, "event").set_index("name")
    d = tables["patients"]
    control = d[(d.intervention == 0) & (d.after == 1)]["event"]
    assert rows.loc["event.did.proportion_control_after", "estimate"] == pytest.approx(control.mean())
    assert rows.loc["event.did.proportion_control_after", "n"] == len(control)
    assert not rows["warnings"].str.contains("pool the intervention").any()


@pytest.fixture
def timed_study(write_study):
    return controlled_study(write_study, time_unit="quarter")


@pytest.fixture
def timed_tables():
    # did_times' time points -4 ... 2 as admission dates: quarters of 2020 (before) and of 2021 (after)
    d = pd.read_csv(REFERENCE / "data" / "did_times.csv").query("dataset == 'parallel'").reset_index(drop=True)
    first_months = {t: pd.Timestamp(2021, 1, 1) + pd.DateOffset(months=3 * t) for t in range(-4, 3)}
    return {"patients": d.assign(admitted=d["time"].map(first_months) + pd.to_timedelta(d.index % 60, unit="D"),
                                 after=(d["time"] >= 0).astype(int), event=d["y"].astype(bool),
                                 id=[str(i) for i in range(len(d))]).drop(columns=["y", "dataset", "time"])}


def test_event_time_counts_units_back_from_the_before_window_and_on_from_the_after_window(timed_study):
    # before window 2020-01-01 to 2020-12-31, after window from 2021-01-01; quarters: Oct-Dec 2020 is -1,
    # Jan-Mar 2020 is -4, Jan-Mar 2021 is 0; a date between or outside the windows has none
    dates = pd.Series(pd.to_datetime(["2020-01-15", "2020-09-30", "2020-10-01", "2021-03-31", "2021-04-01", None]))
    assert controlled.event_time(dates, timed_study).tolist() == [-4, -2, -1, 0, 1, pd.NA]
    monthly = timed_study.model_copy(update={"design": timed_study.design.model_copy(update={"time_unit": "month"})})
    assert controlled.event_time(dates, monthly).tolist() == [-12, -4, -3, 2, 3, pd.NA]


def test_the_trend_comparison_and_event_study_match_r(timed_study, timed_tables):
    rows = controlled.trends(timed_tables, timed_study).set_index("name")
    assert list(rows.index) == ["event.did.parallel_trends_wald", "event.did.pre_trend_ratio",
                                *[f"event.did.event_before_{k}" for k in (4, 3, 2, 1)],
                                *[f"event.did.event_after_{k}" for k in (1, 2, 3)]]
    # cluster: design.sites (no clusters.primary); covariate: age; the reference rows of R
    wald = rows.loc["event.did.parallel_trends_wald"]
    assert wald["statistic"] == pytest.approx(r_value("parallel_cluster_trends", "parallel_trends_wald",
                                                      "statistic"), rel=1e-6) and wald["df"] == 3
    assert rows.loc["event.did.pre_trend_ratio", "estimate"] == pytest.approx(
        r_value("parallel_cluster_trends", "pre_trend_ratio", "estimate"), rel=1e-6)
    for name, r_term in (("event_before_4", "event_-4"), ("event_after_1", "event_0"), ("event_after_3", "event_2")):
        assert rows.loc[f"event.did.{name}", "conf_high"] == pytest.approx(
            r_value("parallel_cluster_event", r_term, "conf_high"), rel=1e-6)
    assert rows.loc["event.did.event_before_1", "estimate"] == 1
    assert "2 quarters before the change (quarter -2)" in rows.loc["event.did.event_before_2", "description"]
    figure = controlled.event_table(rows.reset_index(), timed_study)
    assert figure["time"].tolist() == [-4, -3, -2, -1, 0, 1, 2] and set(figure["unit"]) == {"quarter"}


def test_fewer_than_three_points_before_are_not_compared(timed_study, timed_tables):
    d = timed_tables["patients"]
    late = {"patients": d[d["admitted"] >= pd.Timestamp(2020, 7, 1)]}
    rows = controlled.trends(late, timed_study).set_index("name")
    assert list(rows.index) == ["event.did.parallel_trends_wald", "event.did.pre_trend_ratio"]
    assert rows["statistic"].isna().all() and "needs at least 3" in rows["warnings"].iloc[0]


def test_the_event_study_figure_is_planned_for_a_controlled_study_only(timed_study):
    from analysis.analyses.figure_data import figures_of

    assert [f.kind for f in figures_of(timed_study, False, has_event_study=True)] == ["proportions", "forest",
                                                                                      "event_study"]
    assert "event_study" not in [f.kind for f in figures_of(timed_study, False)]
    assert "event_study" not in [f.kind for f in figures_of(load("reference").study, True, has_event_study=True)]


@pytest.mark.parametrize(("outcome", "spec", "contrast"), [
    ("events", {"type": "count", "exposure": "days"}, "ratio_of_rate_ratios"),
    ("score", {"type": "continuous"}, "difference_in_differences")])
def test_count_and_continuous_outcomes_get_their_own_scale(write_study, outcome, spec, contrast):
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "site": {"type": "string"},
               "intervention": {"type": "integer"}, "age": {"type": "number"}, "days": {"type": "integer"},
               outcome: {"type": "integer" if outcome == "events" else "number"}}
    study = load_study(write_study({
        "tables.patients.columns": columns, "covariates": ["age"],
        "outcomes": {"y": {"table": "patients", "column": outcome, "label": outcome, **spec}},
        "design": {"type": "controlled_before_after", "sites": "site",
                   "group": {"column": "intervention", "intervention": 1, "control": 0}}}))
    d = pd.read_csv(REFERENCE / "data" / "did_other.csv")
    tables = {"patients": d.assign(id=[str(i) for i in range(len(d))])}
    rows = controlled.results(tables, study).set_index("name")
    cell = "rate" if outcome == "events" else "mean"
    assert list(rows.index) == [*(f"y.did.{cell}_{g}_{p}" for g in ("intervention", "control")
                                  for p in ("before", "after")),
                                f"y.did.{contrast}_mixed", f"y.did.{contrast}_cluster_robust",
                                f"y.did.{contrast}_wild_bootstrap"]  # 12 sites: under 30, the bootstrap too
    first = d[(d.intervention == 1) & (d.after == 0)]
    expected = first["events"].sum() / first["days"].sum() if outcome == "events" else first["score"].mean()
    assert rows.loc[f"y.did.{cell}_intervention_before", "estimate"] == pytest.approx(expected)
    kind = "count" if outcome == "events" else "continuous"
    robust = rows.loc[f"y.did.{contrast}_cluster_robust", "estimate"]
    robust = math.log(robust) if outcome == "events" else robust
    assert robust == pytest.approx(r_value(f"other_{kind}_cluster", "intervention:after", "estimate"), rel=1e-6)
    # the bootstrap's point estimate is the same model's; its p-value and interval on the outcome's scale
    boot = rows.loc[f"y.did.{contrast}_wild_bootstrap"]
    assert boot["estimate"] == pytest.approx(rows.loc[f"y.did.{contrast}_cluster_robust", "estimate"], rel=1e-9)
    assert boot["conf_low"] < boot["estimate"] < boot["conf_high"] and 0 < boot["p_value"] <= 1
    assert ("Poisson regression" if outcome == "events" else "Linear regression") in boot["method"]
    mixed = rows.loc[f"y.did.{contrast}_mixed", "estimate"]
    mixed = math.log(mixed) if outcome == "events" else mixed
    assert mixed == pytest.approx(r_value(f"other_{kind}_mixed", "intervention:after", "estimate"), rel=2e-3)


@pytest.mark.parametrize(("outcome", "spec", "kind", "slope"), [
    ("events", {"type": "count", "exposure": "days"}, "count", "pre_trend_ratio"),
    ("score", {"type": "continuous"}, "continuous", "pre_trend_difference")])
def test_count_and_continuous_outcomes_get_the_trend_comparison_and_event_study_on_their_scale(
        write_study, outcome, spec, kind, slope):
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "site": {"type": "string"},
               "intervention": {"type": "integer"}, "age": {"type": "number"}, "days": {"type": "integer"},
               outcome: {"type": "integer" if outcome == "events" else "number"}}
    study = load_study(write_study({
        "tables.patients.columns": columns, "covariates": ["age"],
        "outcomes": {"y": {"table": "patients", "column": outcome, "label": outcome, **spec}},
        "design": {"type": "controlled_before_after", "sites": "site", "time_unit": "quarter",
                   "group": {"column": "intervention", "intervention": 1, "control": 0}}}))
    d = pd.read_csv(REFERENCE / "data" / "did_times_other.csv")
    first_months = {t: pd.Timestamp(2021, 1, 1) + pd.DateOffset(months=3 * t) for t in range(-4, 3)}
    tables = {"patients": d.assign(admitted=d["time"].map(first_months) + pd.to_timedelta(d.index % 60, unit="D"),
                                   after=(d["time"] >= 0).astype(int), id=[str(i) for i in range(len(d))])
              .drop(columns=["time"])}
    rows = controlled.trends(tables, study).set_index("name")
    assert list(rows.index)[:2] == ["y.did.parallel_trends_wald", f"y.did.{slope}"]
    assert rows.loc["y.did.parallel_trends_wald", "statistic"] == pytest.approx(
        r_value(f"times_{kind}_cluster_trends", "parallel_trends_wald", "statistic"), rel=1e-6)
    assert rows.loc[f"y.did.{slope}", "estimate"] == pytest.approx(
        r_value(f"times_{kind}_cluster_trends", slope, "estimate"), rel=1e-6)
    assert rows.loc["y.did.event_after_3", "conf_low"] == pytest.approx(
        r_value(f"times_{kind}_cluster_event", "event_2", "conf_low"), rel=1e-6)
    words = "ratio of rate ratios" if kind == "count" else "difference in differences of means"
    assert words in rows.loc["y.did.event_before_2", "description"]
    figure = controlled.event_table(rows.reset_index(), study)
    assert set(figure["scale"]) == {words}
    assert figure.loc[figure["time"] == -1, "estimate"].item() == (1.0 if kind == "count" else 0.0)
