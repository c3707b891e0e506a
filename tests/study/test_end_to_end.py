"""End to end through the real notebooks: the reviewer's verification both ways, determinism of the
notebooks' outputs, and the bring-your-own-data study. Each test rebuilds a study from raw data
(about 25 s each on two cores)."""

from __future__ import annotations

import json

import pytest
import yaml

from analysis import ledger, verify
from analysis.config import load_study
from analysis.paths import ROOT
from analysis.run.pipeline import for_study, load_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference():
    return load_study("reference")


def executed(study):
    """The committed notebooks the pipeline runs for the study (08_power only runs with a `power:` section)."""
    return [ROOT / "notebooks" / f"{step.name}.ipynb" for step in for_study(load_pipeline(), study)]


@pytest.fixture(scope="module")
def rebuilt(reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rebuild")
    return verify.verify(reference, keep=folder, echo=lambda line: None), folder


def test_a_fresh_rebuild_reproduces_every_committed_number_table_figure_and_manifest(rebuilt, reference):
    result, _ = rebuilt
    assert result.rebuild_error is None
    assert [(c.kind, c.item, c.detail) for c in result.differences] == []
    kinds = {c.kind for c in result.checks}
    assert kinds == {"ledger", "fragment", "ledger names", "table", "figure", "notebook", "derived", "manifest"}
    assert sum(c.kind == "ledger" for c in result.checks) > 200
    assert {c.item.rsplit(".", 1)[1] for c in result.checks if c.kind == "figure"} == {"pdf", "svg", "png"}
    assert sum(c.kind == "notebook" for c in result.checks) == len(executed(reference)) == 7


def outputs(path):
    """Every code cell's outputs, except the injected parameters (which name the rebuilt study file)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c.get("outputs") for c in cells
            if c["cell_type"] == "code" and "injected-parameters" not in c["metadata"].get("tags", [])]


def test_a_rerun_gives_the_same_output_in_every_notebook_cell(rebuilt, reference):
    _, folder = rebuilt
    for committed in executed(reference):
        assert outputs(folder / "notebooks" / committed.name) == outputs(committed), committed.name


def twin_study(tmp_path, edit_spec=None, edit_patients=None):
    """A copy of the reference study file, optionally with edited settings or patients file."""
    spec = yaml.safe_load((ROOT / "studies" / "reference.yml").read_text())
    if edit_patients:
        raw = tmp_path / "patients.csv"
        raw.write_text(edit_patients((ROOT / spec["tables"]["patients"]["file"]).read_text()))
        spec["tables"]["patients"]["file"] = str(raw)
    if edit_spec:
        edit_spec(spec)
    path = tmp_path / "reference.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_study(path)


def test_one_changed_raw_value_fails_verification_and_names_what_moved(reference, tmp_path):
    # the first patient's age, 57 -> 58: counts stay, adjusted models and Table 1 move
    lines = (ROOT / "data_raw/synthetic/grimes2014_synthetic_patients.csv").read_text().splitlines()
    assert lines[1].startswith("P0001,2011-02-02,2011-02-15,57,")
    changed = twin_study(tmp_path, edit_patients=lambda text: text.replace(
        "P0001,2011-02-02,2011-02-15,57,", "P0001,2011-02-02,2011-02-15,58,", 1))
    result = verify.verify(changed, reference, keep=tmp_path / "rebuild", echo=lambda line: None)
    assert not result.passed
    moved = {c.item for c in result.moved if c.kind == "ledger"}
    assert {"cohort.smd.age", "admission_error.odds_ratio_adjusted", "discharge_error.odds_ratio_gee"} <= moved
    # counts did not move: they are listed as made from other data, not as moved
    unmoved = {c.item for c in result.differences if not c.moved}
    assert {"admission_error.events_before", "flow.included.before", "acceptance.proportion_after"} <= unmoved
    manifest = {c.item for c in result.differences if c.kind == "manifest"}
    assert "inputs/data_raw/synthetic/grimes2014_synthetic_patients.csv" in manifest or any(
        "patients" in item for item in manifest)
    md, _ = verify.write_report(result, tmp_path / "report")
    report = md.read_text()
    assert report.splitlines()[2] == "**FAILED: see the differences below.**"
    assert "`cohort.smd.age`" in report


def test_a_changed_seed_fails_verification_naming_every_entry_it_touched(reference, tmp_path):
    changed = twin_study(tmp_path, edit_spec=lambda spec: spec["seeds"].update(models=1))
    result = verify.verify(changed, reference, keep=tmp_path / "rebuild", echo=lambda line: None)
    assert not result.passed
    differing = [c for c in result.differences if c.kind == "ledger"]
    assert len(differing) == sum(c.kind == "ledger" for c in result.checks)  # every entry's provenance changed
    assert all("provenance.parameters_sha256" in c.detail for c in differing)
    # the Laplace fits use no random numbers: no estimate moves with the seed, and the report says so
    assert [c.item for c in result.moved if c.kind == "ledger"] == []


def test_the_second_study_runs_through_the_same_notebooks_and_differs_where_its_data_differ(reference, tmp_path):
    example = load_study("example")
    result = verify.verify(example, keep=tmp_path / "rebuild", echo=lambda line: None)
    assert result.passed, [(c.item, c.detail) for c in result.differences]
    ours = ledger.read(ledger.results_path(example))
    theirs = ledger.read(ledger.results_path(reference))
    # what the example declares and the reference does too is analysed alike, under the same names
    for key in ("admission_error", "discharge_error", "harm", "acceptance"):
        assert {n for n in ours if n.startswith(f"{key}.")} == {n for n in theirs if n.startswith(f"{key}.")}, key
    # what it declares differently: its own MAI outcome and subgroup, no sensitivity analyses, no publication
    assert "mai_change.mixed_difference" in ours and "older.patients_before" in ours
    assert not any(n.startswith(("published_check.", "discharge_error_missing_as")) for n in ours)
    assert ours["flow.included.before"].estimate != theirs["flow.included.before"].estimate
    assert ours["flow.under_min_age.all"].estimate > 0 and theirs["flow.under_min_age.all"].estimate == 0
    assert all(entry.published is None for entry in ours.values())
