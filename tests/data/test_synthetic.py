"""The synthetic data against every published count, computed from the committed files.

Quartiles are stated with their definition (Hyndman-Fan): type 6 is SPSS's, which the paper used;
type 7 is R's and numpy's default. Expected values are read from data_raw/published, never typed in.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.config import load_study
from analysis.data import synthetic
from analysis.data.derive import eligible
from analysis.data.shapes import quantile, welch
from analysis.errors import StudyError
from analysis.paths import ROOT
from tests.data.conftest import PUBLISHED, published_table, reported

GROUPS = {"before": "standard", "after": "team"}
STUDY = load_study("reference")
# What the generator reads from the study file: the period windows and its eligibility thresholds.
PERIOD, ELIGIBILITY, _ = synthetic._study_layout(synthetic.REFERENCE.study)


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data_raw/synthetic/grimes2014_synthetic_patients.csv",
                        parse_dates=["admission_date", "discharge_date"])
    for key in GROUPS:
        window = STUDY.period.window(key)
        frame.loc[frame["admission_date"].between(str(window.start), str(window.end)), "period"] = key
    return frame


@pytest.fixture(scope="module")
def suggestions() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data_raw/synthetic/grimes2014_synthetic_suggestions.csv", parse_dates=["date"])
    for key in GROUPS:
        window = STUDY.period.window(key)
        frame.loc[frame["date"].between(str(window.start), str(window.end)), "period"] = key
    return frame


def test_patients_per_period_are_the_published_counts_and_all_eligible(patients):
    primary = published_table("primary").set_index("outcome")
    assert patients["period"].notna().all()
    for key, group in GROUPS.items():
        assert (patients["period"] == key).sum() == primary.at["error_at_admission", f"{group}_n"]
        assert (patients["period"] == key).sum() == reported("patients", group)["value"]
    # the study's criteria, as the generator reads them, and as the data step applies them
    assert (ELIGIBILITY.min_age, ELIGIBILITY.min_medicines) == (18, 3)
    assert eligible(patients, STUDY).all()
    assert (patients["n_medicines"] >= ELIGIBILITY.min_medicines).all()
    assert (patients["age"] >= ELIGIBILITY.min_age).all()
    assert (patients["discharge_date"] >= patients["admission_date"]).all()


def test_admission_and_discharge_errors_are_the_published_counts(patients):
    primary = published_table("primary").set_index("outcome")
    for key, group in GROUPS.items():
        rows = patients[patients["period"] == key]
        assert rows["error_at_admission"].sum() == primary.at["error_at_admission", f"{group}_events"]
        with_outcome = rows[rows["error_at_discharge"].notna()]
        assert len(with_outcome) == primary.at["error_at_discharge", f"{group}_n"]
        assert len(with_outcome) == reported("patients_with_discharge_outcome", group)["value"]
        assert with_outcome["error_at_discharge"].astype(bool).sum() == primary.at["error_at_discharge",
                                                                                    f"{group}_events"]
        # the paper's sensitivity analyses: missing counted as error, and as no error
        missing = len(rows) - len(with_outcome)
        assert with_outcome["error_at_discharge"].astype(bool).sum() + missing == primary.at[
            "error_at_discharge_missing_as_error", f"{group}_events"]


def test_potential_harm_bands_are_the_published_counts(patients):
    harm = published_table("harm").set_index("potential_harm_at_discharge")
    for key, group in GROUPS.items():
        rows = patients[(patients["period"] == key) & patients["error_at_discharge"].notna()]
        counts = rows["harm_severity"].value_counts()
        for band in harm.index:
            assert counts.get(band, 0) == harm.at[band, f"{group}_n"], (key, band)


@pytest.mark.parametrize("definition", [6, 7])
def test_harm_score_median_and_quartiles_as_published_under_both_definitions(patients, definition):
    for key, group in GROUPS.items():
        scores = patients.loc[(patients["period"] == key) & patients["harm_vas"].notna(), "harm_vas"]
        published = reported("harm_vas_median", group)
        got = [quantile(scores, q, definition) for q in (0.25, 0.5, 0.75)]
        assert got == pytest.approx([published["low"], published["value"], published["high"]], abs=1e-9)


def test_harm_scores_lie_in_their_severity_bands(patients):
    rows = patients[patients["harm_vas"].notna()]
    bands = {"none": (0, 0), "minor": (0.1, 2.9), "moderate": (3, 7), "severe": (7.1, 10)}
    for band, (low, high) in bands.items():
        values = rows.loc[rows["harm_severity"] == band, "harm_vas"]
        assert values.between(low, high).all(), band


def test_mai_subgroup_is_the_published_size_and_missing_under_65(patients):
    mai = ["mai_pre_admission", "mai_admission", "mai_discharge"]
    for key, group in GROUPS.items():
        rows = patients[patients["period"] == key]
        older = rows[rows["age"] >= 65]
        assert len(older) == reported("mai_patients_65_plus", group)["value"]
        assert older[mai].notna().all().all()
        assert rows.loc[rows["age"] < 65, mai].isna().all().all()


def _mai_change(patients, key, to="mai_discharge"):
    rows = patients[(patients["period"] == key) & (patients["age"] >= 65)]
    return (rows[to] - rows["mai_pre_admission"]).to_numpy()


def test_mai_change_quartiles_as_published(patients):
    """Standard: both definitions. Team: -3.75 needs interpolation between whole MAI points, which
    only type 6 (SPSS: x12 = -4, x13 = -3 for n = 48) gives; type 7 gives -3.25 there, and the
    median and upper quartile under both."""
    for key, group in GROUPS.items():
        published = reported("mai_change_pre_admission_to_discharge", group)
        expected = [published["low"], published["value"], published["high"]]
        change = _mai_change(patients, key)
        assert [quantile(change, q, 6) for q in (0.25, 0.5, 0.75)] == pytest.approx(expected, abs=1e-9)
        type7 = [quantile(change, q, 7) for q in (0.25, 0.5, 0.75)]
        if key == "before":
            assert type7 == pytest.approx(expected, abs=1e-9)
        else:
            assert type7[1:] == pytest.approx(expected[1:], abs=1e-9)
            assert type7[0] == pytest.approx(-3.25)


@pytest.mark.parametrize(("quantity", "to"), [
    ("mai_mean_difference_pre_admission_to_admission", "mai_admission"),
    ("mai_mean_difference_pre_admission_to_discharge", "mai_discharge"),
])
def test_mai_mean_differences_round_to_the_published_digits(patients, quantity, to):
    published = reported(quantity, "team_vs_standard")
    result = welch(_mai_change(patients, "before", to), _mai_change(patients, "after", to))  # standard minus team
    assert round(result.difference, 1) == published["value"]
    assert result.low == pytest.approx(published["low"], abs=0.15)  # Welch interval: close, not exact
    assert result.high == pytest.approx(published["high"], abs=0.15)


def test_acceptance_is_the_published_percentage_to_its_digits(suggestions, patients):
    text = pd.read_csv(PUBLISHED / "grimes2014_reported.csv", dtype=str).set_index(["quantity", "group"])
    assert suggestions["period"].notna().all()
    assert suggestions["patient_id"].isin(patients["patient_id"]).all()
    for key, group in GROUPS.items():
        published = text.loc[("suggestion_acceptance_pct", group), "value"]
        digits = len(published.split(".")[1]) if "." in published else 0
        accepted = suggestions.loc[suggestions["period"] == key, "accepted"]
        assert round(100 * accepted.mean(), digits) == float(published)
    assert (suggestions["period"] == "before").sum() == 400  # the assumed denominators (README)
    assert (suggestions["period"] == "after").sum() == 450


def test_suggestions_fall_within_the_patients_stay_and_name_their_team(suggestions, patients):
    merged = suggestions.merge(patients, on="patient_id", suffixes=("", "_patient"))
    assert merged["date"].between(merged["admission_date"], merged["discharge_date"]).all()
    assert (merged["team"] == merged["team_patient"]).all()
    assert (merged["pharmacist"] == merged["pharmacist_patient"]).all()


def test_structure_teams_wards_and_pharmacists(patients):
    for key in GROUPS:
        rows = patients[patients["period"] == key]
        assert rows["team"].nunique() >= 6
        assert rows["ward"].nunique() >= 4
    before, after = (patients[patients["period"] == k] for k in GROUPS)
    # before: pharmacists attached to wards; after: to teams
    assert (before.groupby("ward")["pharmacist"].nunique() == 1).all()
    assert (after.groupby("team")["pharmacist"].nunique() == 1).all()
    assert (before.groupby("team")["pharmacist"].nunique() > 1).any()
    # teams and wards are crossed: teams use several wards and wards host several teams
    assert (patients.groupby("team")["ward"].nunique() > 1).sum() >= 6
    assert (patients.groupby("ward")["team"].nunique() > 1).all()


def test_dates_spread_over_both_windows(patients):
    for key in GROUPS:
        months = patients.loc[patients["period"] == key, "admission_date"].dt.to_period("M").nunique()
        assert months == 12


def test_regeneration_is_byte_identical(tmp_path):
    """The uncalibrated datasets; the reference one is calibrated first, which takes a minute or two of
    CPU: `python -m analysis synthesize --check` proves it (analysis.analyses.calibration)."""
    assert synthetic.REFERENCE.name not in synthetic.DATASETS
    for dataset in synthetic.DATASETS.values():
        folder = tmp_path / dataset.name
        folder.mkdir()
        written = synthetic.write_dataset(dataset, folder)
        committed = ROOT / "data_raw/example"
        for path in written:
            assert path.read_bytes() == (committed / path.name).read_bytes(), path.name


def test_sidecar_records_generator_version_seed_and_parameters():
    meta = json.loads((ROOT / "data_raw/synthetic/grimes2014_synthetic.generator.json").read_text())
    assert meta["generator"] == synthetic.GENERATOR
    assert meta["version"] == synthetic.VERSION
    assert meta["seed"] == synthetic.REFERENCE.parameters.seed
    assert meta["synthetic"] is True
    assert set(meta["parameters"]) == {f.name for f in dataclasses.fields(synthetic.Parameters)}
    assert set(meta["files"]) == {"grimes2014_synthetic_patients.csv", "grimes2014_synthetic_suggestions.csv"}
    assert set(meta["published"]) == {f"data_raw/published/{p.name}" for p in PUBLISHED.glob("*.csv")}
    # the study's period windows and the eligibility thresholds the generator made ineligible patients for
    assert meta["periods"] == {"date_column": STUDY.period.column, **{
        key: {"label": w.label, "start": str(w.start), "end": str(w.end)}
        for key, w in (("before", STUDY.period.before), ("after", STUDY.period.after))}}
    assert meta["eligibility"] == {"min_age": 18, "min_medicines": 3}


def test_another_seed_gives_other_data_with_the_same_counts():
    targets = synthetic.read_targets(PUBLISHED)
    one = synthetic.generate(synthetic.Parameters(seed=1), targets, PERIOD, ELIGIBILITY)
    two = synthetic.generate(synthetic.Parameters(seed=2), targets, PERIOD, ELIGIBILITY)
    assert not one.patients.equals(two.patients)
    for generated in (one, two):
        assert generated.achieved["before"]["error_at_admission"] == targets.before.error_at_admission
        assert generated.achieved["after"]["harm"] == dict(zip(synthetic.HARM_BANDS, targets.after.harm, strict=True))


@pytest.fixture(scope="module")
def large():
    """20,000 patients in 40 teams: enough to see covariate effects and team variation clearly."""
    targets = synthetic.read_targets(PUBLISHED)
    parameters = synthetic.Parameters(seed=7, patients_before=10_000, patients_after=10_000, teams=40, wards=30,
                                      pharmacists=25)
    frame = synthetic.generate(parameters, targets, PERIOD, ELIGIBILITY).patients
    frame["after"] = (frame["admission_date"] >= pd.Timestamp(STUDY.period.after.start)).astype(int)
    frame["log_stay"] = np.log((frame["discharge_date"] - frame["admission_date"]).dt.days)
    frame["error_admission"] = frame["error_at_admission"].astype(int)
    frame["team"] = frame["team"].astype(str)
    return frame


def test_covariates_relate_to_errors_with_the_expected_signs(large):
    admission = smf.logit("error_admission ~ after + n_medicines + charlson + age", large).fit(disp=0)
    for term in ("n_medicines", "charlson", "age"):
        assert admission.params[term] > 0 and admission.pvalues[term] < 1e-4, term
    assert admission.params["after"] < 0
    outcome = large[large["error_at_discharge"].notna()].assign(
        error_discharge=lambda f: f["error_at_discharge"].astype(int))
    discharge = smf.logit("error_discharge ~ after + n_medicines + charlson + log_stay + error_admission",
                          outcome).fit(disp=0)
    for term in ("n_medicines", "charlson", "log_stay", "error_admission"):
        assert discharge.params[term] > 0 and discharge.pvalues[term] < 1e-4, term


def test_teams_differ_beyond_chance(large):
    """Team intercepts (fixed, within period): a likelihood-ratio test against no team effect, and
    their spread near the generator's SD of 0.6 on the logit scale."""
    base = smf.logit("error_admission ~ after + n_medicines + charlson + age", large).fit(disp=0)
    teams = smf.logit("error_admission ~ after + n_medicines + charlson + age + C(team)", large).fit(disp=0)
    assert 2 * (teams.llf - base.llf) > 200  # chi-square with 39 df: p far below 1e-20
    effects = np.array([v for k, v in teams.params.items() if k.startswith("C(team)")])
    assert 0.4 < np.std(effects) < 0.9


def test_covariate_signs_hold_in_the_committed_reference_data(patients):
    frame = patients.assign(error_admission=patients["error_at_admission"].astype(int),
                            after=(patients["period"] == "after").astype(int))
    fit = smf.logit("error_admission ~ after + n_medicines + charlson", frame).fit(disp=0)
    assert fit.params["n_medicines"] > 0 and fit.params["charlson"] > 0


def test_acceptance_denominators_that_cannot_give_the_published_percentage_are_rejected():
    targets = synthetic.read_targets(PUBLISHED)
    with pytest.raises(StudyError) as caught:
        synthetic.generate(synthetic.Parameters(suggestions_before=7), targets, PERIOD, ELIGIBILITY)
    message = str(caught.value)
    assert "suggestions_before=7" in message and "67.5% to its digits" in message and "e.g. 40" in message


def test_a_large_multisite_dataset_is_generated_nested_and_prepared(tmp_path):
    from analysis.data import prepare

    paths = synthetic.write_scaled(tmp_path / "big", patients=6000, teams=24, sites=3)
    study = next(p for p in paths if p.suffix == ".yml")
    frame = pd.read_csv(paths[0])
    assert len(frame) == 6000
    assert (frame.groupby("team")["site"].nunique() == 1).all()  # teams nested in sites
    assert frame["site"].nunique() == 3 and frame["team"].nunique() == 24
    assert (frame.groupby("ward")["site"].nunique() == 1).all()
    prepared = prepare(study)
    assert "site" in prepared.tables["patients"].columns and "site" in prepared.tables["suggestions"].columns
    assert len(prepared.tables["patients"]) == 6000
    made = prepared.tables["suggestions"].merge(prepared.tables["patients"][["patient_id", "site"]], on="patient_id",
                                                suffixes=("", "_of_patient"))
    assert (made["site"] == made["site_of_patient"]).all()  # inherited from the patient's row
    harm = prepared.tables["patients"].groupby("period", observed=True)["harm_vas"]
    assert harm.quantile(0.5).tolist() == [4.0, 0.0]  # the published medians, at any size


def test_example_dataset_uses_its_own_layout_and_has_ineligible_patients():
    study = load_study("example")
    patients = study.tables["patients"]
    frame = pd.read_excel(patients.path, sheet_name="Patients", header=patients.header_row - 1,
                          keep_default_na=False, na_values=[""])
    assert set(frame["Sex (F/M)"]) == {"F", "M"}
    assert set(frame["Error on admission (Y/N)"]) == {"Y", "N"}
    assert set(frame["Potential harm"].dropna()) == {"None", "Minor", "Moderate", "Severe"}
    assert str(study.eligibility["under_min_age"].keep[0]) == "age >= 18"
    assert (frame["Age (years)"] < 18).sum() == synthetic.EXAMPLE.parameters.under_min_age
    assert (frame["No. of regular medicines"] < 3).sum() == synthetic.EXAMPLE.parameters.under_min_medicines
    gap = frame["Adm Date"].between(pd.Timestamp(study.period.before.end), pd.Timestamp(study.period.after.start),
                                    inclusive="neither")
    assert gap.sum() == synthetic.EXAMPLE.parameters.between_periods
    raw = study.tables["suggestions"].path.read_bytes()
    assert "Seán".encode("cp1252") in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
