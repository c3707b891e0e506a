"""The manifest of a study's derived data: what went in, what came out, by content hash.

`data_derived/<study>/manifest.json` records the sha256 and row count of every raw input (the data
tables, the published aggregates, the synthetic generator's metadata; `inputs`, by
repository-relative path) and of every derived output (`outputs`, by path inside the study's output
folder, so that a rebuild elsewhere compares equal), the study file's hash, the dictionaries'
hashes, and, for synthetic data, the generator's name, version and seed. It has no timestamps: the
same inputs give the same manifest, byte for byte. An input reached through a symbolic link is
recorded under the path the study gives, with `symlink_to` (where it points) and, when that is
outside the repository, `outside_repository: true`: it is read, but a clone does not hold it.

Raw data are never written by the pipeline; when a raw file's hash no longer matches the manifest,
the data changed behind the study's back, and the run stops until the user accepts the new data.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from analysis.config import Study, load_study
from analysis.data.dictionary import PUBLISHED_DICTIONARY, RAW_DICTIONARY
from analysis.errors import StudyError
from analysis.paths import ROOT, relative, resolve, writer_gone
from analysis.provenance import sha256_file

MANIFEST = "manifest.json"
GENERATOR_SUFFIX = ".generator.json"


def manifest_path(study: Study) -> Path:
    return study.output_dir / MANIFEST


def derived_dir(study: Study) -> Path:
    return study.output_dir / "derived"


# The two folders beside derived/ while the data step (step.py) replaces it with a new set, named after the
# writing process
NEW_SET, OLD_SET = ".derived-new-", ".derived-old-"
LEFTOVER_SET = re.compile(r"^\.derived-(?:new|old)-(.+)$")


def remove_leftovers(study: Study) -> list[Path]:
    """Remove the derived sets a killed data step left beside derived/ (kill -9 between its two renames):
    patient-level copies that nothing else would ever remove. A set whose writer still runs is kept."""
    left = [path for path in study.output_dir.glob(".derived-*")
            if (found := LEFTOVER_SET.match(path.name)) and path.is_dir() and writer_gone(found[1])]
    for path in left:
        shutil.rmtree(path)
    return left


def find_generator_metadata(files: list[Path]) -> Path | None:
    """The synthetic generator's sidecar that lists these data files, if any (next to them)."""
    for folder in dict.fromkeys(p.parent for p in files):
        for sidecar in sorted(folder.glob(f"*{GENERATOR_SUFFIX}")):
            if any(p.name in _read_sidecar(sidecar).get("files", {}) for p in files if p.parent == folder):
                return sidecar
    return None


def _read_sidecar(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{relative(path)}: not readable generator metadata ({error}; rule: file format); "
                         f"regenerate it with `python -m analysis synthesize`, or remove it") from None


def raw_inputs(study: Study) -> dict[str, Path]:
    """Every raw input of the study by role: its tables, published tables, generator metadata."""
    inputs = {name: table.path for name, table in study.tables.items()}
    if study.published is not None:
        for path in sorted(resolve(study.published).glob("*.csv")):
            inputs[f"published:{path.name}"] = path
    sidecar = find_generator_metadata([table.path for table in study.tables.values()])
    if sidecar is not None:
        inputs["generator"] = sidecar
    return inputs


def _as_given(path: Path) -> Path:
    """The absolute path, symbolic links not followed (`relative` follows them)."""
    return Path(os.path.normpath(resolve(path)))


def input_path(path: Path) -> str:
    """An input's path as the study gives it: repository-relative inside the repository, absolute outside."""
    given = _as_given(path)
    return given.relative_to(ROOT).as_posix() if given.is_relative_to(ROOT) else given.as_posix()


def _input_entry(path: Path) -> dict:
    entry = {"path": input_path(path)}
    target = resolve(path).resolve()
    if target != _as_given(path):  # the file itself or a folder on its way is a symbolic link
        entry["symlink_to"] = relative(target)
        if not target.is_relative_to(ROOT):
            entry["outside_repository"] = True
    return entry


@dataclass(frozen=True)
class RawChange:
    """A raw file whose content differs from what the manifest recorded."""

    path: str
    old: str
    new: str

    def describe(self) -> str:
        return f"{self.path}: sha256 was {self.old[:12]}..., is now {self.new[:12]}..."


def read_manifest(study: Study) -> dict | None:
    path = manifest_path(study)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudyError(f"{relative(path)}: not a readable manifest ({error}); delete it and run "
                         f"`python -m analysis data {study.name}` to rebuild it") from None


def raw_changes(study: Study, hashes: dict[Path, str] | None = None) -> list[RawChange]:
    """Raw files of the study whose hash differs from the manifest's (none without a manifest).

    Files the manifest does not know (a study file now pointing at other data) are not changes of
    data but of the study, whose hash the manifest also records. `hashes`: the files' hashes when
    taken already (`raw_hashes`).
    """
    manifest = read_manifest(study)
    if manifest is None:
        return []
    recorded = {entry["path"]: entry for entry in manifest.get("inputs", [])}
    changes = []
    for path in raw_inputs(study).values():
        key = input_path(path)
        if key in recorded:
            new = hashes[path] if hashes is not None and path in hashes else sha256_file(path)
            if new != recorded[key]["sha256"]:
                changes.append(RawChange(key, recorded[key]["sha256"], new))
    return changes


def check_raw_data(study: Study | str | Path, accept_new_data: bool = False) -> list[str]:
    """Before the notebooks run: stop if a raw file changed since the manifest, or accept it.

    Without `accept_new_data` a changed file is a StudyError naming it with its old and new hash.
    With it, the data step is redone at once (validate, derive, write, manifest), so the notebooks
    that follow read derived data and a manifest that match the new raw files. Returns the paths
    of the files that changed (empty when nothing did or no manifest exists yet).
    """
    study = study if isinstance(study, Study) else load_study(study)
    changes = raw_changes(study)
    if changes:
        if not accept_new_data:
            raise StudyError(changed_message(study, changes))
        # here, not with this module: validation (pandera) costs every `run` 0.2 s, and most have no new data
        from analysis.data.step import prepare

        prepare(study, accept_new_data=True)
    return [c.path for c in changes]


def changed_message(study: Study, changes: list[RawChange]) -> str:
    files = ", ".join(c.path for c in changes)
    lines = [f"raw data changed since the derived data of study '{study.name}' were made: {files} "
             f"(rule: raw data are read-only)"]
    lines += [f"  - {c.describe()}" for c in changes]
    lines.append(f"If the change is intended, accept the new data: `python -m analysis data {study.name} "
                 f"--accept-new-data` (or `python -m analysis run {study.name} --accept-new-data`); otherwise "
                 f"restore the file(s), e.g. `git checkout -- <file>`. "
                 f"The manifest is {relative(manifest_path(study))}.")
    return "\n".join(lines)


def raw_hashes(study: Study) -> dict[Path, str]:
    """The sha256 of every raw input, by path."""
    return {path: sha256_file(path) for path in raw_inputs(study).values()}


def build_manifest(study: Study, input_rows: dict[str, int], outputs: list[dict],
                   input_hashes: dict[Path, str] | None = None) -> dict:
    """The manifest's content. `input_rows`: data rows per input role; `outputs`: one entry (path
    inside the output folder, sha256, rows) per derived file; `input_hashes`: the raw inputs' hashes
    when taken already (`raw_hashes`)."""
    hashes = input_hashes or {}
    inputs = []
    for role, path in raw_inputs(study).items():
        entry = {**_input_entry(path), "role": role, "sha256": hashes.get(path) or sha256_file(path)}
        if role in input_rows:
            entry["rows"] = input_rows[role]
        inputs.append(entry)
    generator = None
    sidecar = raw_inputs(study).get("generator")
    if sidecar is not None:
        meta = _read_sidecar(sidecar)
        generator = {"name": meta["generator"], "version": meta["version"], "seed": meta["seed"],
                     "metadata": relative(sidecar)}
    return {
        "study": study.name,
        "study_file": {"path": relative(study.file), "sha256": sha256_file(resolve(study.file))},
        "synthetic": study.synthetic,
        "generator": generator,
        "dictionaries": {relative(p): sha256_file(p) for p in (RAW_DICTIONARY, PUBLISHED_DICTIONARY)},
        "inputs": sorted(inputs, key=lambda e: e["path"]),
        "outputs": sorted(outputs, key=lambda e: e["path"]),
        # parquet bytes depend on the writer's version; recorded so that a hash difference is explained
        "software": {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                     "pyarrow": pyarrow.__version__},
    }


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"
