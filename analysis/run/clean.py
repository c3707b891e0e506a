"""Remove what the pipeline wrote for a study, file by file, by name; whatever else is there stays.

The pipeline's files are known: the manifest and the derived tables it lists, the ledger fragments
(one per notebook), results.json and LEDGER.md, the tables the notebooks export, the figures, the
verification report, the run state, the executed notebooks, the paper build, and scratch files and
derived sets that a killed process left. A file people put among them (notes, drafts, their own
notebook) is left, and named. Folders the clean leaves empty are removed. The study's parameter sweeps
(`<output folder>.sweeps/`, analysis/run/sweep.py) are cleaned value by value, as studies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analysis import ledger, paper, tables
from analysis.config import Study, load_study
from analysis.data.manifest import MANIFEST, derived_dir, read_manifest, remove_leftovers
from analysis.errors import StudyError
from analysis.figures.files import WRITERS
from analysis.paths import LOCK_NAME, relative, remove_stale_scratch
from analysis.run import sweep
from analysis.run.cache import STATE_FILE
from analysis.run.pipeline import PIPELINE_FILE, Step, load_pipeline
from analysis.verify import report_folder

FIGURE_SUFFIXES = {f".{fmt}" for fmt in WRITERS}
# what `analysis.paper.build` writes besides the generated source `<study>.md`
PAPER_FILES = ("manuscript.md", "manuscript.html", "manuscript.docx", "manuscript.pdf", "squire-checklist.md",
               "squire-checklist.html", ".build-key")


@dataclass
class Cleaned:
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # in the study's folders, not written by the pipeline


def folders(study: Study) -> list[Path]:
    """The folders the pipeline writes a study's files into (the clean removes those it leaves empty)."""
    out = study.output_dir
    found = [out, derived_dir(study), ledger.ledger_dir(study), tables.tables_dir(study), out / "figures",
             report_folder(study), paper.build_dir(study)]
    # the repository's notebooks/ holds the reference study's executed notebooks: they are its sources
    if study.notebook_dir.resolve() != PIPELINE_FILE.parent:
        found.append(study.notebook_dir)
    return found


def pipeline_files(study: Study, steps: list[Step]) -> list[Path]:
    """Every file of the study the pipeline wrote and that exists, by name or by its manifest."""
    out = study.output_dir
    files = [out / name for name in (MANIFEST, "results.json", "LEDGER.md", STATE_FILE)]
    for entry in (read_manifest(study) or {}).get("outputs", []):
        path = out / entry["path"]
        if out.resolve() in path.resolve().parents:  # a hand-edited manifest could name any file
            files.append(path)
    files += [ledger.ledger_dir(study) / f"{step.name}.json" for step in steps]
    files += [path for step in steps for pattern in step.outputs if pattern.startswith("tables/")
              for path in out.glob(pattern)]
    files += [path for path in (out / "figures").glob("*") if path.suffix in FIGURE_SUFFIXES]
    files += [report_folder(study) / name for name in ("report.md", "report.json")]
    if study.notebook_dir.resolve() != PIPELINE_FILE.parent:
        files += [study.notebook_dir / name for step in steps
                  for name in (step.source.name, f".{step.source.stem}.running.ipynb")]  # executed, or being
    files += [paper.generated_path(study), *(paper.build_dir(study) / name for name in PAPER_FILES)]
    return sorted({path for path in files if path.is_file()})


def clean(study: Study, pipeline: Path = PIPELINE_FILE) -> Cleaned:
    """Delete the study's pipeline files, then the folders left empty; say what else is there.

    Run it holding the study's lock (`analysis.cli.writing`): the lock file goes too, as the last file.
    """
    removed = pipeline_files(study, load_pipeline(pipeline))
    for path in removed:
        path.unlink()
    removed += [path for folder in folders(study) for path in remove_stale_scratch(folder)]
    removed += remove_leftovers(study)
    (study.output_dir / LOCK_NAME).unlink(missing_ok=True)  # the command's own lock, not an output
    cleaned = Cleaned(removed=[relative(path) for path in removed])
    known = folders(study)
    for folder in sorted(known, key=lambda path: len(path.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for folder in known:
        if folder.is_dir():
            cleaned.left += [relative(path) + "/" * path.is_dir() for path in sorted(folder.iterdir())
                             if path not in known]
    _clean_sweeps(study, pipeline, cleaned)
    return cleaned


def _clean_sweeps(study: Study, pipeline: Path, cleaned: Cleaned) -> None:
    """The study's sweeps (`analysis.run.sweep`): each value's study cleaned as a study, then its study file,
    the gathered tables and the folders left empty."""
    swept = sweep.sweeps_dir(study)
    for file in sweep.variant_files(study):
        try:
            variant = load_study(file)
        except StudyError:  # a value the study file no longer allows: its files are named, not guessed at
            cleaned.left.append(relative(file.parent) + "/")
            continue
        inner = clean(variant, pipeline)
        file.unlink()
        cleaned.removed += [*inner.removed, relative(file)]
        cleaned.left += inner.left
        if not any(file.parent.iterdir()):
            file.parent.rmdir()
    for table in sorted(swept.glob("*.csv")):
        table.unlink()
        cleaned.removed.append(relative(table))
    if swept.is_dir():
        if any(swept.iterdir()):
            cleaned.left += [relative(path) + "/" * path.is_dir() for path in sorted(swept.iterdir())
                             if relative(path) + "/" * path.is_dir() not in cleaned.left]
        else:
            swept.rmdir()
