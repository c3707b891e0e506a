"""A notebook that runs only for studies declaring something (`when: power`), files two steps' patterns both
match (the more precise pattern owns them), and `python -m analysis run --all` end to end on two study files
of a temporary studies folder."""

from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from analysis import config
from analysis.cli import main
from analysis.config import load_study
from analysis.errors import StudyError
from analysis.run import run_study
from analysis.run import runner as runner_module
from analysis.run.cache import output_files
from analysis.run.pipeline import load_pipeline
from tests.conftest import minimal_spec
from tests.run.conftest import notebook

WRITE = """
from pathlib import Path
from analysis.config import load_study
out = load_study(study).output_dir
for name in {names!r}:
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(name)
"""
POWER = {"baseline": 0.3, "effects": [0.5], "clusters": [10]}


def write_pipeline(folder, steps: dict) -> object:
    """steps: name -> (files the notebook writes, the step's spec in pipeline.yml)."""
    folder.mkdir(exist_ok=True)
    for name, (files, _) in steps.items():
        nbformat.write(notebook(WRITE.format(names=files)), folder / f"{name}.ipynb")
    path = folder / "pipeline.yml"
    path.write_text(yaml.safe_dump({name: spec for name, (_, spec) in steps.items()}, sort_keys=False))
    return path


@pytest.fixture
def pipeline(tmp_path):
    """figures draws figs/*; power, only `when: power`, writes its own figs/curve.* among them."""
    return write_pipeline(tmp_path / "notebooks", {
        "figures": (["figs/a.txt"], {"outputs": ["figs/*"]}),
        "power": (["p.txt", "figs/curve.txt"], {"when": "power", "outputs": ["p.txt", "figs/curve.*"]}),
    })


def threads():
    """A cluster of two worker threads in this process: the test's patches reach its tasks."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)


def study_with(tmp_path, name: str, **extra):
    spec = minimal_spec(tmp_path)
    spec["outputs"] = {"folder": str(tmp_path / name / "out"), "notebooks": str(tmp_path / name / "executed")}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({**spec, **extra}, sort_keys=False))
    return path


def test_a_when_step_runs_only_for_studies_that_declare_it(tmp_path, pipeline):
    plain = load_study(study_with(tmp_path, "plain"))
    report = run_study(plain, pipeline=pipeline, echo=lambda line: None)
    assert [o.step.name for o in report.ran] == ["figures"]
    assert not (plain.output_dir / "p.txt").exists() and not (plain.notebook_dir / "power.ipynb").exists()
    with pytest.raises(StudyError, match="notebook power runs only for a study whose file has a `power:` section"):
        run_study(plain, ["power"], pipeline=pipeline, echo=lambda line: None)

    planned = load_study(study_with(tmp_path, "planned", power=POWER))
    report = run_study(planned, pipeline=pipeline, echo=lambda line: None)
    assert sorted(o.step.name for o in report.ran) == ["figures", "power"]
    assert (planned.output_dir / "p.txt").is_file()


def test_a_file_two_patterns_match_is_the_more_precise_ones(tmp_path, pipeline):
    study = load_study(study_with(tmp_path, "planned", power=POWER))
    steps = {step.name: step for step in load_pipeline(pipeline)}
    run_study(study, pipeline=pipeline, echo=lambda line: None)
    out = study.output_dir
    assert output_files(study, steps["figures"]) == [out / "figs" / "a.txt"]
    assert output_files(study, steps["power"]) == [out / "figs" / "curve.txt", out / "p.txt"]
    # so that rerunning one notebook leaves the other up to date (with figs/* owning curve.txt, it would not be)
    run_study(study, ["power"], force=True, pipeline=pipeline, echo=lambda line: None)
    report = run_study(study, pipeline=pipeline, echo=lambda line: None)
    assert report.ran == [] and sorted(report.current) == ["figures", "power"]


@pytest.mark.parametrize(("steps", "message"), [
    ({"a": ([], {"when": "sunshine"})}, "'a' has `when: sunshine`; known: power"),
    ({"a": ([], {"when": "power"}), "b": ([], {"needs": ["a"]})},
     "'b' needs 'a', which runs only `when: power`: give 'b' the same `when`"),
])
def test_bad_when_declarations_are_refused(tmp_path, steps, message):
    with pytest.raises(StudyError, match=message):
        load_pipeline(write_pipeline(tmp_path / "notebooks", steps))


def test_the_repositorys_pipeline_runs_08_power_only_with_a_power_section(tmp_path):
    steps = {step.name: step for step in load_pipeline()}
    assert steps["08_power"].when == "power"
    assert not steps["08_power"].applies_to(load_study(study_with(tmp_path, "plain")))
    assert steps["08_power"].applies_to(load_study(study_with(tmp_path, "planned", power=POWER)))
    assert all(step.when is None for name, step in steps.items() if name != "08_power")


def test_run_all_runs_every_study_of_the_folder_on_the_executor(tmp_path, monkeypatch, capsys):
    """Two study files in a temporary studies folder, a toy pipeline, and a cluster of threads in this process
    (so that the patched folder and pipeline reach its workers), given by --scheduler as a real one would be."""
    studies = tmp_path / "studies"
    studies.mkdir()
    first = study_with(studies, "north")
    second = study_with(studies, "south", power=POWER)
    monkeypatch.setattr(config, "STUDIES_DIR", studies)
    toy = write_pipeline(tmp_path / "notebooks", {
        "figures": (["figs/a.txt"], {"outputs": ["figs/*"]}),
        "power": (["p.txt"], {"when": "power", "outputs": ["p.txt"]}),
    })
    monkeypatch.setattr(runner_module, "PIPELINE_FILE", toy)
    with threads() as cluster:
        assert main(["run", "--all", "--scheduler", cluster.scheduler_address]) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 studies done" in printed
    assert "north: done in" in printed and "south: done in" in printed
    north, south = load_study(first), load_study(second)
    assert (north.output_dir / "figs" / "a.txt").is_file() and not (north.output_dir / "p.txt").exists()
    assert (south.output_dir / "p.txt").is_file()
    for study in (north, south):
        assert json.loads((study.output_dir / "results.json").read_text())["study"] == study.name


def test_run_all_reports_a_failing_study_and_runs_the_others(tmp_path, monkeypatch, capsys):
    studies = tmp_path / "studies"
    studies.mkdir()
    study_with(studies, "good")
    (studies / "broken.yml").write_text("title: [unclosed\n")
    monkeypatch.setattr(config, "STUDIES_DIR", studies)
    monkeypatch.setattr(runner_module, "PIPELINE_FILE", write_pipeline(
        tmp_path / "notebooks", {"figures": (["figs/a.txt"], {"outputs": ["figs/*"]})}))
    with threads() as cluster:
        status = main(["run", "--all", "--scheduler", cluster.scheduler_address])
    captured = capsys.readouterr()
    assert status == 2 and "1 of 2 studies done; failed: broken" in captured.out
    assert "\nbroken: error: " in captured.err and "good: done in" in captured.out


def test_verify_leaves_out_a_committed_source_that_was_never_executed(tmp_path):
    """The reference's notebooks/ folder holds every source, 08_power's too, which its pipeline never runs."""
    from analysis import verify

    committed, rebuilt = tmp_path / "committed", tmp_path / "rebuilt"
    for folder in (committed, rebuilt):
        folder.mkdir()
        executed = notebook("1 + 1")
        executed.metadata["papermill"] = {"parameters": {"study": "studies/toy.yml"}}
        nbformat.write(executed, folder / "a.ipynb")
    nbformat.write(notebook("1 + 1"), committed / "power.ipynb")
    assert [(c.item, c.status) for c in verify.compare_notebooks(committed, rebuilt)] == [("a.ipynb", "match")]
    (rebuilt / "a.ipynb").unlink()
    assert [(c.item, c.status) for c in verify.compare_notebooks(committed, rebuilt)] == [("a.ipynb", "missing")]
