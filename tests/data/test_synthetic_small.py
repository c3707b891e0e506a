"""The small synthetic studies' data (analysis/data/synthetic_small.py): reproducible byte for byte,
valid for their study files, and shaped as their parameters ask."""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile

import pandas as pd
import pytest

from analysis.config import load_study
from analysis.data import synthetic_small
from analysis.data.derive import derive_all
from analysis.data.manifest import find_generator_metadata
from analysis.data.validate import validate_study
from analysis.paths import resolve
from analysis.provenance import sha256_file

DATASETS = list(synthetic_small.DATASETS.values())
IDS = [d.name for d in DATASETS]


def committed(dataset: synthetic_small.Dataset) -> pd.DataFrame:
    """The committed CSV as text cells, read independently of the pipeline."""
    return pd.read_csv(resolve(dataset.folder) / dataset.data_file, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def derived() -> dict[str, pd.DataFrame]:
    """Each study's main table, validated and derived in memory (nothing is written)."""
    found = {}
    for dataset in DATASETS:
        study = load_study(dataset.study)
        found[dataset.name] = derive_all(validate_study(study).frames, study)[study.main_table]
    return found


@pytest.mark.parametrize("dataset", DATASETS, ids=IDS)
def test_regenerating_gives_the_committed_bytes(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert synthetic_small.check_dataset(dataset) == []


@pytest.mark.parametrize("dataset", DATASETS, ids=IDS)
def test_generating_twice_gives_the_same_bytes_and_the_seed_matters(dataset):
    first, second = synthetic_small.generate(dataset), synthetic_small.generate(dataset)
    assert first == second
    reseeded = dataclasses.replace(dataset, parameters=dataclasses.replace(dataset.parameters,
                                                                           seed=dataset.parameters.seed + 1))
    assert synthetic_small.generate(reseeded)[dataset.data_file] != first[dataset.data_file]


@pytest.mark.parametrize("dataset", DATASETS, ids=IDS)
def test_the_data_are_labelled_synthetic_and_the_sidecar_lists_the_file(dataset):
    folder = resolve(dataset.folder)
    data = folder / dataset.data_file
    sidecar = find_generator_metadata([data])
    assert sidecar == folder / f"{dataset.name}.generator.json"
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    assert meta["synthetic"] is True and "SYNTHETIC" in meta["description"]
    assert (meta["generator"], meta["seed"]) == (synthetic_small.GENERATOR, dataset.parameters.seed)
    assert meta["files"][dataset.data_file] == {"sha256": sha256_file(data), "rows": len(committed(dataset))}
    assert "SYNTHETIC" in (folder / "README.md").read_text(encoding="utf-8").splitlines()[0]
    study = load_study(dataset.study)
    assert study.synthetic and "SYNTHETIC" in study.description and "synthetic_small.py" in study.description


def test_discrepancy_rows_per_arm_are_the_parameters(derived):
    p = synthetic_small.DISCREPANCY.parameters
    raw = committed(synthetic_small.DISCREPANCY)
    assert raw["Study arm"].value_counts().to_dict() == {"UC": p.patients_per_arm + p.under_min_age_per_arm,
                                                         "NM": p.patients_per_arm + p.under_min_age_per_arm}
    assert set(raw["Discrepancy (Y/N)"]) == {"Y", "N", ""}
    assert raw["Ward"].nunique() == len(p.wards)
    # the study keeps patients aged 65 or over: exactly patients_per_arm in each period
    patients = derived[synthetic_small.DISCREPANCY.name]
    assert patients["period"].value_counts().to_dict() == {"before": p.patients_per_arm, "after": p.patients_per_arm}
    assert (patients["age"] >= p.min_age).all()
    assert set(zip(patients["arm"].astype(str), patients["period"].astype(str), strict=True)) == {
        ("usual care", "before"), ("new model", "after")}
    assert "admission_date" not in patients and "month" not in patients  # no dates at all


def test_discrepancy_sidecar_counts_are_the_files(derived):
    meta = json.loads((resolve(synthetic_small.DISCREPANCY.folder) / "discrepancy_synthetic.generator.json")
                      .read_text(encoding="utf-8"))
    patients = derived[synthetic_small.DISCREPANCY.name]
    for period, arm in (("before", "usual_care"), ("after", "new_model")):
        rows = patients[patients["period"] == period]
        assert int(rows["discrepancy"].sum()) == meta["achieved"][arm]["discrepancies"]
        assert int(rows["discrepancy"].notna().sum()) == meta["achieved"][arm]["with_outcome"]


def test_four_outcomes_rows_per_period_and_the_subgroup_are_the_parameters(derived):
    p = synthetic_small.FOUR_OUTCOMES.parameters
    raw = committed(synthetic_small.FOUR_OUTCOMES)
    assert len(raw) == p.patients_before + p.patients_after + 2 * p.under_18_per_period + p.changeover
    dates = pd.to_datetime(raw["Visit date"], format="%d/%m/%Y")
    assert (dates.dt.strftime("%Y-%m") == "2021-12").sum() == p.changeover
    patients = derived[synthetic_small.FOUR_OUTCOMES.name]
    assert patients["period"].value_counts().to_dict() == {"before": p.patients_before, "after": p.patients_after}
    assert patients["clinic"].nunique() == len(p.clinics)
    # the symptom score is recorded for patients aged 75 or over only
    scored = patients["symptom_score"].notna()
    assert scored.any() and (patients.loc[scored, "age"] >= p.score_min_age).all()
    assert (patients["days_at_risk"].between(*p.days_at_risk)).all()
    assert set(patients["satisfaction"].dropna().astype(str)) == {"poor", "fair", "good", "excellent"}
    assert patients["month"].nunique() == 23  # two years of months, less the changeover month


def test_the_csv_is_plain_utf8_with_unix_line_ends():
    for dataset in DATASETS:
        data = (resolve(dataset.folder) / dataset.data_file).read_bytes()
        assert b"\r" not in data and data.endswith(b"\n")
        text = data.decode("utf-8")
        assert list(pd.read_csv(io.StringIO(text), nrows=0).columns) == [c[0] for c in dataset.columns]


def test_the_synthesize_command_checks_these_datasets_too(capsys, tmp_path, monkeypatch):
    from analysis.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # it regenerates into a temporary folder
    assert main(["synthesize", "--check"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("grimes2014_synthetic", "example_synthetic", *IDS))


def test_mortality_its_is_five_years_of_admissions_with_a_change_after_2008(derived):
    dataset = synthetic_small.MORTALITY_ITS
    p = dataset.parameters
    raw = committed(dataset)
    months = pd.to_datetime(raw["Admission date"]).dt.to_period("M")
    assert months.nunique() == p.months == 60 and str(months.min()) == "2007-01" and str(months.max()) == "2011-12"
    assert set(raw["Died in hospital"]) == {"Y", "N"} and raw["Admission"].is_unique
    assert 40_000 < len(raw) < 70_000  # moderate: the whole study runs in well under a minute
    meta = json.loads((resolve(dataset.folder) / f"{dataset.name}.generator.json").read_text(encoding="utf-8"))
    achieved = meta["achieved"]
    assert (achieved["before"]["months"], achieved["after"]["months"]) == (24, 36)
    died = raw["Died in hospital"].eq("Y")
    before = months < pd.Period("2009-01", freq="M")
    assert (achieved["before"]["deaths"], achieved["after"]["deaths"]) == (died[before].sum(), died[~before].sum())
    # the deaths averted in these rows (expected without the change minus observed) are near the claimed 450
    assert 350 < achieved["after"]["expected_deaths_without_change"] - achieved["after"]["deaths"] < 550
    # winter excess: more deaths per admission in December-February than in June-August
    winter, summer = months.dt.month.isin([12, 1, 2]), months.dt.month.isin([6, 7, 8])
    assert died[winter].mean() > died[summer].mean()
    patients = derived[dataset.name]
    assert patients["period"].value_counts().to_dict() == {"after": achieved["after"]["admissions"],
                                                           "before": achieved["before"]["admissions"]}


def test_mortality_its_deaths_averted_are_about_the_claimed_450(derived):
    """The study's segmented binomial regression (notebook 05) estimates about 450 deaths averted."""
    from analysis.analyses import its_counts

    study = load_study(synthetic_small.MORTALITY_ITS.study)
    assert study.design.type == "interrupted_time_series" and study.synthetic
    rows = its_counts.results({study.main_table: derived[synthetic_small.MORTALITY_ITS.name]}, study)
    averted = rows.set_index("name").loc["its_counts.died.events_averted"]
    assert 425 < averted["estimate"] < 475 and averted["conf_low"] > 0
