"""Validate, derive, write: the data step of a study, and reading its result back.

`prepare` checks that the raw data are what the manifest recorded (unless told to accept new
data), validates every raw table, derives the analysis tables, then writes them and the manifest
as one set: all files go to a temporary folder first and are moved into place together, so a
failure at any point leaves the previous set as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.config import Study, load_study
from analysis.data.derive import derive_each, flow
from analysis.data.manifest import (
    NEW_SET,
    OLD_SET,
    build_manifest,
    changed_message,
    derived_dir,
    manifest_path,
    manifest_text,
    raw_changes,
    raw_hashes,
    read_manifest,
    remove_leftovers,
)
from analysis.data.validate import published_files, validate_published, validate_study
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative, resolve
from analysis.provenance import sha256_file

FLOW = "flow"


@dataclass(frozen=True)
class Prepared:
    """A study's analysis-ready data.

    `tables`: the derived tables by the study file's names (their columns: the declared ones, then
    the derived, see data_raw/DICTIONARY.md); `flow`: the flow of the main table's rows;
    `published`: the published aggregates by table (`primary`, `harm`, `reported`), typed, empty
    when the study has none; `manifest`: the content of manifest.json.
    """

    study: Study
    tables: dict[str, pd.DataFrame]
    flow: pd.DataFrame
    published: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.study.synthetic


def _study(study: Study | str | Path) -> Study:
    return study if isinstance(study, Study) else load_study(study)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Byte-stable parquet: no index, no timestamps (pyarrow writes none), fixed compression.

    Column statistics (each page's min and max, for readers that skip pages) only for columns that are not
    text: the derived tables are read whole, and comparing every text cell took 0.3 s of the 1 s that
    writing 3.6 million suggestions took.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    counted = [field.name for field in table.schema
               if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))]
    pq.write_table(table, path, compression="zstd", write_statistics=counted)


def prepare(study: Study | str | Path, accept_new_data: bool = False) -> Prepared:
    """Validate the study's raw data, derive the analysis tables, write them with the manifest.

    Stops with a StudyError, writing nothing, when a raw file changed since the manifest was written
    (unless `accept_new_data`) or when any raw table breaks the data dictionary. Returns the derived
    tables as written.
    """
    study = _study(study)
    # Arrow's arrays from here on come from the C library's allocator, as the CSV reader's do (read.py): Arrow's
    # default (mimalloc) hands memory back to the kernel and faults it in again, 0.3 s of a million patients'
    # 5 s data step. The setting is the process's, and stays for what runs after in it.
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        validated = validate_study(study)
    except StudyError as validation:
        # A raw file changed since the manifest is said first, as if it had been checked first; a file that
        # cannot be read is the validation's to report.
        try:
            hashes = raw_hashes(study)
        except OSError:
            raise validation from None
        _stop_if_changed(study, hashes, accept_new_data)
        raise
    frames: dict[str, pd.DataFrame] = {}
    with ThreadPoolExecutor(max_workers=1) as hashing:
        hashed = None

        def derived():
            nonlocal hashed
            parent_rows = {name: t.parent_rows for name, t in validated.tables.items() if t.parent_rows is not None}
            for name, frame in derive_each(validated.frames, study, parent_rows):
                frames[name] = frame
                yield name, frame
            # The raw files are hashed once, for the manifest and to see whether they changed since it was
            # written, while the last tables are written: a core is free then, and hashing them (0.7 s for
            # 400 MB) beside the reading slowed the reading. A change stops the step before the new set
            # replaces the old.
            hashed = hashing.submit(raw_hashes, study)
            frames[FLOW] = flow(validated.frames[study.main_table], study)
            yield FLOW, frames[FLOW]

        def unchanged() -> dict[Path, str]:
            _stop_if_changed(study, hashed.result(), accept_new_data)
            return hashed.result()

        rows = {name: len(validated.tables[name].raw.frame) for name in study.tables}
        rows.update({f"published:{t.raw.path.name}": len(t.raw.frame)
                     for name, t in validated.tables.items() if name.startswith("published.")})
        manifest = _write_set(study, derived(), rows, unchanged)
    if not study.synthetic:
        # a fresh derived/ replaced the folder and its .gitignore: real patients' rows stay out of git
        from analysis.disclosure import ignore_derived

        ignore_derived(study)
    return Prepared(study, {name: frames[name] for name in study.tables}, frames[FLOW], validated.published, manifest)


def _stop_if_changed(study: Study, hashes: dict[Path, str], accept_new_data: bool) -> None:
    changes = [] if accept_new_data else raw_changes(study, hashes)
    if changes:
        raise StudyError(changed_message(study, changes))


def _write_set(study: Study, frames: Iterable[tuple[str, pd.DataFrame]], input_rows: dict[str, int],
               input_hashes: Callable[[], dict[Path, str]]) -> dict:
    """Write the derived tables and the manifest together, or leave the old set untouched.

    `frames` (name, table) may be a generator: each table is written while the next is made.
    `input_hashes`: the raw inputs' hashes (`raw_hashes`), asked for once the tables are written and
    before they replace the old set; a StudyError from it leaves the old set as it was.
    """
    target = derived_dir(study)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(study)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{NEW_SET}{os.getpid()}-"))
    staging.chmod(0o755)  # mkdtemp makes it private; it becomes the readable derived/ folder
    retired = target.parent / f"{OLD_SET}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        # Each table is written as soon as it is derived, beside the deriving of the next and beside the
        # other writes: Arrow's encoder holds no lock, and a million patients' tables took 2.4 s one after
        # another, then derived. The files are the same, byte for byte, either way.
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            writing = [pool.submit(_write_output, study, staging, target, name, frame) for name, frame in frames]
            outputs = [done.result() for done in writing]
        manifest = build_manifest(study, input_rows, outputs, input_hashes())
        previous = target.exists()
        if previous:
            os.replace(target, retired)
        try:
            os.replace(staging, target)
            with atomic_write(manifest_path(study), encoding="utf-8", newline="\n") as handle:
                handle.write(manifest_text(manifest))
        except BaseException:
            if target.exists():
                os.replace(target, staging)  # the new set goes back to be removed below
            if previous:
                os.replace(retired, target)
            raise
        shutil.rmtree(retired, ignore_errors=True)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_output(study: Study, staging: Path, target: Path, name: str, frame: pd.DataFrame) -> dict:
    """One derived table written into the staging folder; its manifest entry."""
    path = staging / f"{name}.parquet"
    write_parquet(frame, path)
    return {"path": output_key(study, target / path.name), "sha256": sha256_file(path), "rows": len(frame)}


def output_key(study: Study, path: Path) -> str:
    """How the manifest names a derived file: its path inside the study's output folder."""
    return path.relative_to(study.output_dir).as_posix()


def published_as_printed(study: Study | str | Path) -> dict[str, pd.DataFrame]:
    """The study's published tables as printed, every cell as text, after checking them.

    The digits a number was published with decide how closely a recomputation must match it
    (0.30 is not 0.3), and a typed table has lost them.
    """
    study = _study(study)
    validate_published(study)
    if study.published is None:
        return {}
    files, _ = published_files(resolve(study.published))
    return {name: pd.read_csv(path, dtype=str) for name, path in files.items()}


def load(study: Study | str | Path) -> Prepared:
    """The derived tables written by `prepare`, for the notebooks that come after the data step.

    A StudyError says what to run when they are missing, were edited, or are older than the raw data.
    """
    study = _study(study)
    rerun = f"run the data notebook first (or `python -m analysis data {study.name}`)"
    manifest = read_manifest(study)
    if manifest is None:
        raise StudyError(f"{relative(manifest_path(study))}: no derived data for study '{study.name}' yet; {rerun}")
    frames = {}
    recorded_outputs = {entry["path"]: entry for entry in manifest.get("outputs", [])}
    for name in [*study.tables, FLOW]:
        path = derived_dir(study) / f"{name}.parquet"
        recorded = recorded_outputs.get(output_key(study, path))
        if not path.is_file() or recorded is None:
            raise StudyError(f"{relative(path)}: derived table missing; {rerun}")
        if sha256_file(path) != recorded["sha256"]:
            raise StudyError(f"{relative(path)}: differs from what the data step wrote (the manifest's hash); "
                             f"derived files are not edited by hand; {rerun}")
        frames[name] = pd.read_parquet(path)
    changes = raw_changes(study)
    if changes:
        raise StudyError(changed_message(study, changes))
    flow_frame = frames.pop(FLOW)
    return Prepared(study, frames, flow_frame, validate_published(study), manifest)
