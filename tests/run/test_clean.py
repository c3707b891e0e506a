"""`make clean`: what the pipeline wrote goes; raw data, sources and people's READMEs stay."""

from __future__ import annotations

import pytest

from analysis.config import load_study
from analysis.errors import StudyError
from analysis.run.clean import clean


def test_clean_removes_outputs_and_executed_notebooks_but_not_raw_data(write_study, tmp_path):
    study = load_study(write_study())
    (study.output_dir / "ledger").mkdir(parents=True)
    (study.output_dir / "ledger" / "01_data.json").write_text("{}")
    (study.output_dir / "results.json").write_text("{}")
    (study.output_dir / "README.md").write_text("written by people")
    study.notebook_dir.mkdir()
    (study.notebook_dir / "01_data.ipynb").write_text("{}")
    removed = clean(study)
    assert len(removed) == 3
    assert [p.name for p in study.output_dir.iterdir()] == ["README.md"]
    assert list(study.notebook_dir.iterdir()) == []
    assert (tmp_path / "raw.csv").is_file()


@pytest.mark.parametrize("folder", ["data_raw", "data_raw/synthetic", "notebooks", "."])
def test_clean_refuses_an_output_folder_that_is_or_holds_a_source_folder(write_study, folder):
    study = load_study(write_study({"outputs.folder": folder}))
    with pytest.raises(StudyError, match="refusing to clean output folder"):
        clean(study)
