"""The data step: derived tables and their columns, the patient flow, the manifest, byte-stable and
all-or-nothing writes, reading back, and the bring-your-own-data example end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.config import list_studies, load_study
from analysis.data import load, prepare, step
from analysis.data.derive import derive_all, flow
from analysis.data.dictionary import derived_tables, study_table
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from analysis.paths import relative
from tests.data.conftest import PUBLISHED

DTYPES = {"string": "str", "integer": "int64", "number": "float64", "boolean": "bool", "date": "datetime64[us]",
          "category": "category"}
NULLABLE = {"integer": "Int64", "boolean": "boolean"}


def expected_dtype(column) -> str:
    return NULLABLE.get(column.type, DTYPES[column.type]) if column.nullable else DTYPES[column.type]


def expected_stages(study) -> list[str]:
    """derived.yml's flow stages with `{criterion}` and `{flow}` filled in for the study."""
    flows = [o.flow for o in study.outcomes.values() if o.flow is not None and o.table == study.main_table]
    stages = []
    for value in derived_tables()["flow"].columns["stage"].values:
        if value == "{criterion}":
            stages += list(study.eligibility)
        elif "{flow}" not in value:
            stages.append(value)
    per_flow = [v for v in derived_tables()["flow"].columns["stage"].values if "{flow}" in v]
    return stages + [v.replace("{flow}", name) for name in flows for v in per_flow]


def check_layout(study, tables: dict[str, pd.DataFrame], flow_frame: pd.DataFrame) -> None:
    """Each derived table: the declared columns in declaration order, typed as validated, then those
    copied from the parent row, then the `derive:` columns, then derived.yml's columns with its
    types (month and month_index only with dates); the flow: derived.yml's columns, types, stages."""
    added = derived_tables()["{table}"].columns
    for name, frame in tables.items():
        source = study.tables[name]
        own = [c for c, column in added.items() if column.required or study.period.by_date]
        period_column = study.period_column(name)
        copied = [*source.inherit, *([period_column] if source.belongs_to and not source.has(period_column) else [])]
        assert list(frame.columns) == [*source.columns, *copied, *source.derive, *own], name
        validated = study_table(study, name)[0].columns
        for column in source.columns:
            assert str(frame[column].dtype) == expected_dtype(validated[column]), (name, column)
        for column in own:
            assert str(frame[column].dtype) == expected_dtype(added[column]), (name, column)
        assert list(frame["period"].cat.categories) == added["period"].values and frame["period"].cat.ordered
    spec = derived_tables()["flow"].columns
    assert list(flow_frame.columns) == list(spec)
    for column in flow_frame.columns:
        assert str(flow_frame[column].dtype) == expected_dtype(spec[column]), column
    assert list(flow_frame["period"].cat.categories) == spec["period"].values
    assert list(flow_frame["stage"].cat.categories) == expected_stages(study)
    assert list(flow_frame["stage"].drop_duplicates()) == expected_stages(study)  # one step per stage, in order


def test_derived_tables_have_the_columns_and_types_of_derived_yml(reference_copy):
    data = prepare(reference_copy.study)
    assert set(data.tables) == {"patients", "suggestions"}
    check_layout(data.study, data.tables, data.flow)
    patients = data.tables["patients"]
    # by hand: the study file's first and last declared columns, its derive: columns, then the added ones
    assert list(patients.columns[:2]) == ["patient_id", "admission_date"]
    assert list(patients.columns[-7:]) == ["length_of_stay", "mai_change_admission", "mai_change_discharge",
                                          "period", "after", "month", "month_index"]
    assert list(data.tables["suggestions"].columns) == ["suggestion_id", "patient_id", "date", "team", "pharmacist",
                                                        "accepted", "period", "after", "month", "month_index"]
    assert str(patients["length_of_stay"].dtype) == "int64" and str(patients["mai_change_discharge"].dtype) == "Int64"
    assert "age_65_plus" not in patients and "has_discharge_outcome" not in patients  # populations are conditions
    assert list(data.flow["stage"].cat.categories) == [
        "screened", "outside_periods", "in_period_window", "under_min_age", "under_min_medicines", "included",
        "missing_discharge_outcome", "with_discharge_outcome"]


@pytest.mark.parametrize("name", ["discrepancy", "four_outcomes", "example"])
def test_every_committed_study_derives_to_the_layout_of_derived_yml(name):
    """In memory (nothing is written): a study by values without dates, one with its own date column,
    and one read from Excel."""
    study = load_study(name)
    frames = validate_study(study).frames
    check_layout(study, derive_all(frames, study), flow(frames[study.main_table], study))


def test_derived_columns(reference_copy):
    data = prepare(reference_copy.study)
    p = data.tables["patients"]
    assert (p["after"] == (p["period"] == "after")).all()
    assert (p["length_of_stay"] == (p["discharge_date"] - p["admission_date"]).dt.days).all()
    assert (p["month"] == p["admission_date"].dt.strftime("%Y-%m")).all()
    first = p.sort_values("admission_date").iloc[0]
    assert first["month_index"] == 0 and first["month"] == "2011-02"
    assert p["month_index"].max() == 25  # March 2013: 25 months after February 2011
    change = p["mai_discharge"] - p["mai_pre_admission"]
    assert p["mai_change_discharge"].equals(change)
    assert p.loc[p["age"] < 65, "mai_change_admission"].isna().all()
    s = data.tables["suggestions"]
    assert (s["month"] == s["date"].dt.strftime("%Y-%m")).all()  # a suggestion's period is that of its own date
    assert data.synthetic and set(data.published) == {"primary", "harm", "reported"}
    assert data.published["primary"].set_index("outcome").at["error_at_admission", "standard_events"] == 49


def test_flow_counts_the_reference_study(reference_copy):
    flow = prepare(reference_copy.study).flow.set_index(["stage", "period"])["n"]
    primary = pd.read_csv(PUBLISHED / "grimes2014_primary.csv").set_index("outcome")
    assert flow["screened", "all"] == 233 and flow["outside_periods", "all"] == 0
    for period, group in (("before", "standard"), ("after", "team")):
        assert flow["included", period] == primary.at["error_at_admission", f"{group}_n"]
        assert flow["with_discharge_outcome", period] == primary.at["error_at_discharge", f"{group}_n"]
        assert flow["missing_discharge_outcome", period] == (
            primary.at["error_at_admission", f"{group}_n"] - primary.at["error_at_discharge", f"{group}_n"])


def test_bring_your_own_data_example_end_to_end(example_copy):
    """An Excel workbook with a title block, its own names and codes, ineligible patients, and a
    cp1252 CSV of suggestions with day/month/year dates: validated, recoded and derived."""
    data = prepare(example_copy.study)
    flow = data.flow.set_index(["stage", "period"])["n"]
    assert flow["screened", "all"] == 196
    assert flow["outside_periods", "all"] == 5  # admitted at the changeover, between the windows
    assert flow["under_min_age", "all"] == 3 and flow["under_min_medicines", "all"] == 4
    assert flow["under_min_age", "before"] > 0 and flow["under_min_age", "after"] > 0
    assert flow["included", "before"] == 96 and flow["included", "after"] == 88
    p = data.tables["patients"]
    assert (p["age"] >= 18).all() and (p["n_medicines"] >= 3).all()
    assert set(p["sex"]) == {"female", "male"}
    assert set(p["harm_severity"].dropna()) == {"none", "minor", "moderate", "severe"}
    assert p["patient_id"].str.startswith("RGH-").all()
    assert p["admission_date"].min() >= pd.Timestamp("2017-03-01")
    s = data.tables["suggestions"]
    assert {"Seán", "Siobhán", "Éanna", "Órla"} == set(s["pharmacist"])
    assert s["patient_id"].isin(p["patient_id"]).all()
    assert s["date"].min() >= pd.Timestamp("2017-03-01") and s["date"].dt.day.max() > 12  # day/month read right
    assert round(100 * s.loc[s["period"] == "before", "accepted"].mean(), 1) == 67.5
    assert data.published == {}


def test_derived_files_and_manifest_are_byte_stable(reference_copy):
    prepare(reference_copy.study)
    first = reference_copy.snapshot()
    prepare(reference_copy.study)
    assert reference_copy.snapshot() == first
    assert set(first) == {"manifest.json", "derived/patients.parquet", "derived/suggestions.parquet",
                          "derived/flow.parquet"}


def test_manifest_records_inputs_outputs_generator_and_study(reference_copy):
    data = prepare(reference_copy.study)
    manifest = json.loads((reference_copy.output / "manifest.json").read_text())
    assert manifest == data.manifest
    inputs = {e["role"]: e for e in manifest["inputs"]}
    assert inputs["patients"]["rows"] == 233 and inputs["suggestions"]["rows"] == 850
    assert inputs["patients"]["sha256"] == hashlib.sha256(reference_copy.patients.read_bytes()).hexdigest()
    assert {"published:grimes2014_primary.csv", "published:grimes2014_harm.csv",
            "published:grimes2014_reported.csv", "generator"} <= set(inputs)
    sidecar = json.loads((reference_copy.folder / "grimes2014_synthetic.generator.json").read_text())
    assert manifest["generator"] == {"name": sidecar["generator"], "version": sidecar["version"],
                                     "seed": sidecar["seed"], "metadata": relative(reference_copy.folder /
                                                                                   "grimes2014_synthetic.generator.json")}
    assert manifest["synthetic"] is True
    assert manifest["study_file"]["sha256"] == hashlib.sha256(reference_copy.study.read_bytes()).hexdigest()
    outputs = {e["path"]: e for e in manifest["outputs"]}
    for name in ("patients", "suggestions", "flow"):
        path = reference_copy.output / "derived" / f"{name}.parquet"
        assert outputs[f"derived/{name}.parquet"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert outputs[f"derived/{name}.parquet"]["rows"] == len(pd.read_parquet(path))


def test_load_reads_back_what_prepare_wrote(reference_copy):
    written = prepare(reference_copy.study)
    read = load(reference_copy.study)
    assert set(read.tables) == set(written.tables) == {"patients", "suggestions"}
    for name in ("patients", "suggestions"):
        pd.testing.assert_frame_equal(read.tables[name], written.tables[name])
    pd.testing.assert_frame_equal(read.flow, written.flow)
    assert read.manifest == written.manifest and set(read.published) == set(written.published)


def test_load_says_to_run_the_data_step_first(reference_copy):
    with pytest.raises(StudyError) as caught:
        load(reference_copy.study)
    assert "no derived data for study 'reference' yet; run the data notebook first" in str(caught.value)
    prepare(reference_copy.study)
    (reference_copy.output / "derived" / "flow.parquet").unlink()
    with pytest.raises(StudyError, match="derived/flow.parquet: derived table missing; run the data notebook"):
        load(reference_copy.study)


def test_load_refuses_edited_derived_files_and_stale_raw_data(reference_copy):
    prepare(reference_copy.study)
    path = reference_copy.output / "derived" / "patients.parquet"
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    with pytest.raises(StudyError, match="differs from what the data step wrote"):
        load(reference_copy.study)
    path.write_bytes(original)
    reference_copy.patients.write_bytes(reference_copy.patients.read_bytes().replace(b"St Anne's", b"St Agnes's"))
    with pytest.raises(StudyError, match="raw data changed"):
        load(reference_copy.study)


@pytest.mark.parametrize(("failing", "first_time"), [("parquet", False), ("manifest", False), ("manifest", True)])
def test_a_failure_while_writing_leaves_the_previous_set(reference_copy, monkeypatch, failing, first_time):
    if not first_time:
        prepare(reference_copy.study)
    before = reference_copy.snapshot()
    reference_copy.patients.write_bytes(reference_copy.patients.read_bytes().replace(b"St Anne's", b"St Agnes's"))
    if failing == "parquet":
        real = step.write_parquet
        calls = []

        def write_parquet(frame, path):
            calls.append(path)
            if len(calls) == 2:
                raise OSError("disk full")
            real(frame, path)

        monkeypatch.setattr(step, "write_parquet", write_parquet)
    else:
        def manifest_text(manifest):
            raise OSError("disk full")

        monkeypatch.setattr(step, "manifest_text", manifest_text)
    with pytest.raises(OSError, match="disk full"):
        prepare(reference_copy.study, accept_new_data=True)
    assert reference_copy.snapshot() == before
    left = sorted(p.name for p in reference_copy.output.iterdir())
    assert left == ([] if first_time else ["derived", "manifest.json"])  # no temporary folders either


def test_raw_files_are_only_read(reference_copy):
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference_copy.folder.iterdir()}
    prepare(reference_copy.study)
    load(reference_copy.study)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in reference_copy.folder.iterdir()} == stamps


def test_cli_data_command(example_copy, capsys):
    assert main(["data", str(example_copy.study)]) == 0
    out = capsys.readouterr().out
    assert "example [synthetic data]: 196 screened, included 96 before and 88 after; 310 suggestions" in out
    assert (example_copy.output / "manifest.json").is_file()


def test_the_committed_studies_load():
    assert {"reference", "example", "discrepancy", "four_outcomes"} <= set(list_studies())
    for name in list_studies():
        study = load_study(name)
        assert study.synthetic and all(table.path.is_file() for table in study.tables.values())


def test_boolean_and_number_spellings_are_read(reference_copy):
    from tests.data.conftest import edit_csv

    edit_csv(reference_copy.patients, {(2, "error_at_admission"): "TRUE", (2, "n_errors_admission"): "2.0",
                                       (3, "error_at_admission"): "0", (3, "n_errors_admission"): "0"})
    patients = prepare(reference_copy.study).tables["patients"]
    assert bool(patients.loc[0, "error_at_admission"]) and patients.loc[0, "n_errors_admission"] == 2
    assert not patients.loc[1, "error_at_admission"]
    assert np.issubdtype(patients["n_errors_admission"].dtype, np.integer)
