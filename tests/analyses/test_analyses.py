"""The study-level layer: the right rows, named and matched to the published values, on the
reference data (whose counts are the publication's)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import ledger
from analysis.analyses import figure_data, outcomes, published, reproduction, robustness
from analysis.analyses.results import named
from analysis.data import load, published_as_printed


@pytest.fixture(scope="module")
def prepared():
    return load("reference")


def by_name(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("name")


def test_primary_counts_are_the_published_ones(prepared):
    for key, (events_before, n_before, events_after, n_after) in {
        "admission_error": (49, 121, 10, 112),
        "discharge_error": (66, 101, 15, 108),
        "discharge_error_missing_as_error": (86, 121, 19, 112),
        "discharge_error_missing_as_no_error": (66, 121, 15, 112),
    }.items():
        d = outcomes.outcome_data(prepared.tables, prepared.study, key)
        rows = by_name(outcomes.analyse(prepared.tables, prepared.study, key))
        assert len(d) == (n_before + n_after)
        assert rows.loc[f"{key}.events_before", "estimate"] == events_before
        assert rows.loc[f"{key}.events_after", "estimate"] == events_after
        assert rows.loc[f"{key}.proportion_before", "n"] == n_before
        assert rows.loc[f"{key}.proportion_after", "n"] == n_after


def test_severe_error_nnt_uses_all_patients_as_the_paper_did(prepared):
    rows = by_name(outcomes.analyse(prepared.tables, prepared.study, "severe_discharge_error"))
    # 6/121 vs 0/112: risk difference -6/121 = -0.04959, NNT 121/6 = 20.17 (the paper: 20, 10 to 142)
    assert rows.loc["severe_discharge_error.nnt", "estimate"] == pytest.approx(121 / 6, rel=1e-12)


def test_adjusted_models_use_the_study_covariates_and_name_their_cluster(prepared):
    study = prepared.study
    assert outcomes.formula(study, "admission_error") == "y ~ after + age + charlson + n_medicines"
    assert outcomes.formula(study, "discharge_error").endswith("+ length_of_stay")
    steps = {step.analysis: step for step in outcomes.plan(study, "admission_error")}
    assert (steps["mixed"].model, steps["mixed"].cluster) == ("y ~ after + age + charlson + n_medicines", "team")
    assert [s.cluster for s in outcomes.plan(study, "admission_error") if s.analysis == "alternative_clusters"] == [
        "ward", "pharmacist"]
    rows = by_name(outcomes.analyse(prepared.tables, study, "admission_error"))
    assert "random intercept for team" in rows.loc["admission_error.odds_ratio_adjusted", "description"]
    # the glmer value on the same data (tests/reference/results/mixed.csv, study_admission_team): log OR -1.9324
    assert math.log(rows.loc["admission_error.odds_ratio_adjusted", "estimate"]) == pytest.approx(-1.9324, rel=1e-3)


def test_published_values_are_in_the_ledgers_scale_and_direction(prepared):
    values = published.values(prepared.published).set_index("name")
    # Tallon et al. report +4.0 (1.7 to 6.4) for "team vs standard" meaning a smaller rise with team care:
    # after minus before it is -4.0 (-6.4 to -1.7)
    mai = values.loc["mai.change_discharge.mean_difference"]
    assert (mai.published_estimate, mai.published_low, mai.published_high) == (-4.0, -6.4, -1.7)
    assert values.loc["acceptance.proportion_before", "published_estimate"] == 0.675
    assert values.loc["discharge_error.proportion_before", "published_estimate"] == pytest.approx(66 / 101)
    assert values.loc["admission_error.hosmer_lemeshow", "published_p_value"] == 0.737
    assert values.loc["harm_vas.quartile_3_before", "published_estimate"] == 5


def test_the_ledger_holds_every_published_quantity_beside_ours(prepared):
    entries = ledger.read(ledger.results_path(prepared.study))
    names = set(published.values(prepared.published)["name"])
    missing = sorted(names - set(entries))
    # medicine-level MAI ratings were never part of the patient-level data
    assert missing == ["mai.inappropriate_drugs_after", "mai.inappropriate_drugs_before"]
    assert all(entries[n].published is not None for n in names - set(missing))


def test_named_refuses_to_drop_a_result_silently():
    frame = pd.DataFrame({"term": ["after"], "estimate": [1.0]})
    with pytest.raises(KeyError, match="no row for term"):
        named(frame, "x", {"after": ("a", "A"), "age": ("b", "B")})


def test_smallest_acceptance_denominators_by_hand():
    # 67.5% to one decimal: 27/40 = 67.5%, and no n < 40 has a k with 67.45 <= 100k/n < 67.55.
    # "98%" to no decimal: 39/40 = 97.5% rounds (half up) to 98; n < 40 gives at most (n-1)/n < 97.5%.
    results, smallest, _ = reproduction.acceptance(published_as_printed("reference"))
    rows = by_name(results)
    assert rows.loc["published_check.acceptance.smallest_denominator_before", "estimate"] == 40
    assert rows.loc["published_check.acceptance.smallest_denominator_after", "estimate"] == 40
    assert smallest["events"].tolist() == [27, 39]


def test_recomputed_from_counts_names_what_does_not_follow(prepared):
    results, table = reproduction.from_counts(published_as_printed("reference"))
    # admission: OR = (10 x 72) / (102 x 49) = 0.1441, which prints as 0.14, not the published 0.15
    assert by_name(results).loc["published_check.or_unadjusted.error_at_admission", "estimate"] == pytest.approx(
        720 / 4998, rel=1e-12)
    assert reproduction.disagreeing(table) == ["or_unadjusted:error_at_admission", "nnt_any_error_at_discharge"]


def test_harm_and_mai_medians_match_the_publication_with_spss_quartiles(prepared):
    harm = by_name(outcomes.analyse(prepared.tables, prepared.study, "harm_vas"))
    assert [harm.loc[f"harm_vas.{s}_before", "estimate"] for s in ("median", "quartile_1", "quartile_3")] == [4, 0, 5]
    mai = by_name(outcomes.analyse(prepared.tables, prepared.study, "mai.change_discharge"))
    after = [mai.loc[f"mai.change_discharge.{s}_after", "estimate"] for s in ("median", "quartile_1", "quartile_3")]
    assert after == [-1, -3.75, 0]


def test_newey_west_lags_follow_the_rule_of_thumb():
    assert robustness.newey_west_lags(24) == 2  # floor(4 x 0.24^(2/9)) = floor(2.91)
    assert robustness.newey_west_lags(100) == 4


def test_monthly_series_add_up_to_the_period_totals(prepared):
    series = robustness.monthly(prepared.tables, prepared.study)
    admission = series[series["key"] == "admission_error"].groupby("period")[["events", "n"]].sum()
    assert admission.loc["before"].tolist() == [49, 121] and admission.loc["after"].tolist() == [10, 112]
    acceptance = series[series["key"] == "acceptance"].groupby("period")[["events", "n"]].sum()
    assert acceptance.loc["before"].tolist() == [270, 400] and acceptance.loc["after"].tolist() == [441, 450]


def test_figure_frames_come_from_the_ledger(prepared):
    entries = ledger.read(ledger.results_path(prepared.study))
    forest = figure_data.forest(entries, prepared.study, ("admission_error", "discharge_error"))
    unadjusted = forest[(forest.outcome == "Error at discharge") & (forest.analysis == "Unadjusted")].iloc[0]
    assert unadjusted.published_estimate == 0.09 and unadjusted.estimate == pytest.approx(525 / 6138, rel=1e-9)
    gee = forest[forest.analysis == "GEE, population-averaged"]
    assert gee["published_estimate"].isna().all()  # the paper published no GEE
    frame = figure_data.proportions(entries, prepared.study, ("admission_error", "acceptance"))
    assert frame.loc[frame.outcome == "Suggestion accepted", "events"].tolist() == [270, 441]
    assert frame.loc[frame.outcome == "Error at admission", "events"].tolist() == [49, 10]


def test_the_reference_study_gets_its_figures_from_its_declarations(prepared):
    names = [f.name for f in figure_data.figures_of(prepared.study, has_monthly=True)]
    assert names == ["proportions", "forest", "harm_levels", "harm_vas_values", "mai_values", "monthly",
                     "acceptance_by_team", "admission_error_modes_by_team", "discharge_error_modes_by_team"]
    forest = next(f for f in figure_data.figures_of(prepared.study, True) if f.name == "forest")
    assert forest.keys == ("admission_error", "discharge_error")  # the primary outcomes: the headline


def test_subgroup_counts_are_the_published_ones(prepared):
    rows = by_name(outcomes.subgroup_results(prepared.tables, prepared.study, "mai"))
    assert (rows.loc["mai.patients_before", "estimate"], rows.loc["mai.patients_after", "estimate"]) == (60, 48)


def test_ordinal_outcome_counts_every_level_including_empty_ones(prepared):
    rows = by_name(outcomes.analyse(prepared.tables, prepared.study, "harm"))
    # grimes2014_harm.csv: none 35/93, minor 6/2, moderate 54/13, severe 6/0
    assert [rows.loc[f"harm.{level}_after", "estimate"] for level in ("none", "minor", "moderate", "severe")] == [
        93, 2, 13, 0]
    assert rows.loc["harm.severe_before", "n"] == 101
