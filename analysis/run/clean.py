"""Remove what the pipeline generated for a study; raw data and notebook sources are never touched."""

from __future__ import annotations

import shutil

from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import ROOT, relative
from analysis.run.pipeline import PIPELINE_FILE

PROTECTED = (ROOT / "data_raw", ROOT / "notebooks", ROOT / "analysis", ROOT / "studies", ROOT / "tests")


def clean(study: Study) -> list[str]:
    """Delete the study's output folder's contents (and executed notebooks kept elsewhere)."""
    folder = study.output_dir
    if folder == ROOT or any(folder == p or p in folder.parents or folder in p.parents for p in PROTECTED):
        raise StudyError(f"{relative(study.file)}: refusing to clean output folder {relative(folder)}: "
                         "it is, holds or lies inside a source folder")
    removed = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name == "README.md":  # written by people
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(relative(path))
    if study.notebook_dir != PIPELINE_FILE.parent and study.notebook_dir.is_dir():
        for path in sorted(study.notebook_dir.glob("*.ipynb")):
            path.unlink()
            removed.append(relative(path))
    return removed
