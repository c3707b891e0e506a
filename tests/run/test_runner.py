"""The papermill runner: order, injected parameters, incremental reruns, failures, stable files."""

from __future__ import annotations

import json

import nbformat

from analysis.run import run_study
from analysis.run.execute import execute
from analysis.run.pipeline import load_pipeline
from tests.run.conftest import notebook


def run(toy, **options):
    study, pipeline = toy
    lines = []
    report = run_study(study, pipeline=pipeline, echo=lines.append, **options)
    return report, "\n".join(lines)


def test_runs_in_dependency_order_with_the_study_injected(toy):
    study, _ = toy
    report, log = run(toy)
    assert not report.failed and sorted(o.step.name for o in report.ran) == ["a", "b", "c"]
    assert (study.output_dir / "b.txt").read_text() == "A FROM TOY STUDY"
    executed = nbformat.read(study.notebook_dir / "a.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(study.file) in injected[0].source
    assert "ran in" in log and "[3/3]" in log


def test_second_run_is_a_no_op_and_force_reruns_everything(toy):
    run(toy)
    report, log = run(toy)
    assert report.ran == [] and sorted(report.current) == ["a", "b", "c"]
    assert log.count("up to date") == 3
    report, _ = run(toy, force=True)
    assert len(report.ran) == 3


def test_a_rerun_with_nothing_changed_writes_identical_bytes(toy):
    study, _ = toy
    run(toy)
    first = {p.name: p.read_bytes() for p in study.notebook_dir.glob("*.ipynb")}
    run(toy, force=True)
    assert {p.name: p.read_bytes() for p in study.notebook_dir.glob("*.ipynb")} == first


def test_executed_notebooks_carry_no_timestamps_or_absolute_paths(toy):
    study, _ = toy
    run(toy)
    text = (study.notebook_dir / "c.ipynb").read_text()
    nb = json.loads(text)
    assert set(nb["metadata"]["papermill"]) == {"parameters", "input_path", "output_path"}
    assert "start_time" not in text and "duration" not in text and '"execution":' not in text
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))


def test_changing_a_notebook_reruns_it_and_what_needs_it_only(toy):
    study, pipeline = toy
    run(toy)
    nb = nbformat.read(pipeline.parent / "a.ipynb", as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace('"a from "', '"a, changed, from "')
    nbformat.write(nb, pipeline.parent / "a.ipynb")
    report, _ = run(toy)
    assert sorted(o.step.name for o in report.ran) == ["a", "b"] and report.current == ["c"]


def test_a_deleted_output_or_changed_study_file_makes_notebooks_stale(toy):
    study, _ = toy
    run(toy)
    (study.output_dir / "c.txt").unlink()
    report, _ = run(toy)
    assert [o.step.name for o in report.ran] == ["c"]
    study.file.write_text(study.file.read_text().replace("Toy study", "Toy study, renamed"))
    report, _ = run(toy)
    assert len(report.ran) == 3


def test_an_unchanged_upstream_output_does_not_rerun_what_needs_it(toy):
    study, pipeline = toy
    run(toy)
    nb = nbformat.read(pipeline.parent / "a.ipynb", as_version=4)
    nb.cells[1].source += "\n# a comment changes the notebook, not what it writes"
    nbformat.write(nb, pipeline.parent / "a.ipynb")
    report, _ = run(toy)
    assert [o.step.name for o in report.ran] == ["a"] and sorted(report.current) == ["b", "c"]


def test_only_the_named_notebooks_and_what_they_need_run(toy):
    report, _ = run(toy, notebooks=["b"])
    assert [o.step.name for o in report.ran] == ["a", "b"]


def test_a_failing_cell_keeps_the_executed_notebook_and_skips_what_needs_it(toy):
    study, pipeline = toy
    nbformat.write(notebook('raise ValueError("the data have no after period")'), pipeline.parent / "a.ipynb")
    report, log = run(toy)
    (failure,) = report.failed
    assert failure.error == "a failed in cell In [3]: ValueError: the data have no after period"
    assert 'raise ValueError("the data have no after period")' in failure.detail
    assert "Traceback" in failure.detail or "ValueError" in failure.detail.split("--- traceback ---")[1]
    assert report.skipped == ["b"] and [o.step.name for o in report.ran if not o.error] == ["c"]
    kept = nbformat.read(study.notebook_dir / "a.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in kept.cells for o in c.get("outputs", []))
    assert "FAILED" in log and "skipped" in log
    # the failure is not remembered as a success: fixing the notebook reruns it
    nbformat.write(notebook("print('fixed')"), pipeline.parent / "a.ipynb")
    report, _ = run(toy)
    assert "a" in [o.step.name for o in report.ran]


def test_a_cell_over_its_timeout_fails_with_the_reason(toy):
    _, pipeline = toy
    nbformat.write(notebook("import time; time.sleep(30)"), pipeline.parent / "c.ipynb")
    report, _ = run(toy, timeout=2, notebooks=["c"])
    (failure,) = report.failed
    assert failure.error.startswith("c ") and "timed out" in failure.error.lower() + failure.detail.lower()


def test_a_missing_kernel_fails_listing_the_kernels_that_exist(toy):
    study, pipeline = toy
    step = next(s for s in load_pipeline(pipeline) if s.name == "c")
    outcome = execute(study, step, {"study": str(study.file)}, "no-such-kernel", timeout=30)
    assert outcome.error.startswith("c did not start: no kernel named 'no-such-kernel'; kernels available: ")
    assert "prepost-compendium (" in outcome.error
