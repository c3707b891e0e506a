"""`make clean`: what the pipeline wrote goes, by name; everything else stays and is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import paper
from analysis.cli import main
from analysis.config import load_study
from analysis.data import prepare
from analysis.errors import StudyError
from analysis.paths import ROOT
from analysis.run.clean import clean

WRITTEN_BY_PEOPLE = ["NOTES.txt", "README.md", "analysis_drafts/draft.md", "derived/my_own.parquet",
                     "figures/sketch.txt"]


@pytest.fixture
def study(write_study, tmp_path, monkeypatch):
    """A study whose data step ran, with every other kind of file the pipeline writes, and people's files
    among them; its paper is built in tmp_path/build."""
    monkeypatch.setattr(paper, "build_dir", lambda study: tmp_path / "build")
    study = load_study(write_study())
    prepare(study)  # derived/*.parquet and the manifest that lists them
    out = study.output_dir
    pipeline = ["ledger/01_data.json", "ledger/07_figures.json", "results.json", "LEDGER.md", ".run-state.json",
                "tables/flow.csv", "tables/primary_event.csv", "figures/forest.pdf", "figures/forest.png",
                "figures/forest.svg", "verification/report.md", "verification/report.json"]
    for name in [*pipeline, *WRITTEN_BY_PEOPLE]:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x")
    study.notebook_dir.mkdir()
    for name in ("01_data.ipynb", "07_figures.ipynb", "my_exploration.ipynb"):
        (study.notebook_dir / name).write_text("{}")
    (tmp_path / "build").mkdir()
    for name in ("toy.md", "manuscript.md", "manuscript.html", "manuscript.docx", "squire-checklist.md",
                 "squire-checklist.html", ".build-key", "cover-letter.md"):
        (tmp_path / "build" / name).write_text("x")
    return study


def files(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_clean_removes_only_what_the_pipeline_wrote_and_names_what_it_left(study, tmp_path, capsys):
    raw = (tmp_path / "raw.csv").read_bytes()
    assert main(["clean", str(study.file)]) == 0
    assert files(study.output_dir) == sorted(WRITTEN_BY_PEOPLE)
    assert files(study.notebook_dir) == ["my_exploration.ipynb"]
    assert files(tmp_path / "build") == ["cover-letter.md"]
    assert (tmp_path / "raw.csv").read_bytes() == raw and study.file.is_file()
    out = capsys.readouterr().out.splitlines()
    removed = sorted(Path(line.removeprefix("removed ")).relative_to(tmp_path).as_posix()
                     for line in out if line.startswith("removed "))
    assert removed == sorted([
        "out/.run-state.json", "out/LEDGER.md", "out/derived/flow.parquet",
        "out/derived/patients.parquet", "out/figures/forest.pdf", "out/figures/forest.png", "out/figures/forest.svg",
        "out/ledger/01_data.json", "out/ledger/07_figures.json", "out/manifest.json", "out/results.json",
        "out/tables/flow.csv", "out/tables/primary_event.csv", "out/verification/report.json",
        "out/verification/report.md", "executed/01_data.ipynb", "executed/07_figures.ipynb",
        "build/.build-key", "build/manuscript.docx", "build/manuscript.html", "build/manuscript.md",
        "build/squire-checklist.html", "build/squire-checklist.md", "build/toy.md"])
    left = [line for line in out if line.startswith("left ")]
    assert f"left {study.output_dir.as_posix()}/NOTES.txt (not written by the pipeline)" in left
    assert f"left {study.output_dir.as_posix()}/analysis_drafts/ (not written by the pipeline)" in left
    assert f"left {(study.notebook_dir / 'my_exploration.ipynb').as_posix()} (not written by the pipeline)" in left
    assert len(left) == 7


def test_a_second_clean_removes_nothing_and_empty_folders_go(write_study, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "build_dir", lambda study: tmp_path / "build")
    study = load_study(write_study())
    prepare(study)
    first = clean(study)
    assert first.left == [] and not study.output_dir.exists()
    assert clean(study).removed == []


def test_the_reference_studys_notebooks_folder_holds_sources_and_is_never_cleaned(write_study, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "build_dir", lambda study: tmp_path / "build")
    study = load_study(write_study({"outputs.notebooks": "notebooks"}))
    sources = {p.name: p.read_bytes() for p in (ROOT / "notebooks").iterdir() if p.is_file()}
    cleaned = clean(study)
    assert not any("notebooks/" in path for path in cleaned.removed + cleaned.left)
    assert {p.name: p.read_bytes() for p in (ROOT / "notebooks").iterdir() if p.is_file()} == sources


@pytest.mark.parametrize("folder", ["data_raw", "data_raw/synthetic", "notebooks", "."])
def test_clean_refuses_an_output_folder_that_is_or_holds_a_source_folder(write_study, folder, capsys):
    assert main(["clean", str(write_study({"outputs.folder": folder}))]) == 2
    assert f"outputs.folder: {folder} is " in capsys.readouterr().err
    with pytest.raises(StudyError, match="rule: outputs go in a folder inside data_derived/"):
        load_study(write_study({"outputs.folder": folder}))


def test_a_relocated_copy_builds_and_cleans_its_paper_beside_its_outputs(tmp_path):
    """A copy of `example` (as verify and the tests make) keeps its manuscript in its own folder: cleaning it
    once removed the repository's git-ignored paper/build/example."""
    from analysis.run.relocate import relocate

    original = load_study("example")
    copy = relocate(original, tmp_path / "copy")
    assert paper.build_dir(original) == ROOT / "paper" / "build" / "example"
    assert paper.build_dir(copy) == tmp_path / "copy" / "outputs" / "paper"
    assert paper.generated_path(copy).is_relative_to(tmp_path)
