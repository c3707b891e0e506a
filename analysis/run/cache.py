"""When a notebook must rerun: a key over everything its results depend on.

The key hashes the notebook's code (cell sources and tags, not outputs), the parameters injected
into it, the study file, the raw data, the files written by the notebooks it needs, the library's
source and the lock file. The state file records the key and the hashes of the notebook's outputs
after its last successful run; a notebook is up to date when both still match.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analysis.config import Study
from analysis.paths import atomic_write, resolve
from analysis.provenance import LOCK_FILE, files_digest, sha256_file, sha256_json
from analysis.run.pipeline import Step

STATE_FILE = ".run-state.json"


def notebook_code(path: Path) -> list:
    """The parts of a notebook that decide what it computes (its injected parameters excluded).

    Read as plain JSON: importing nbformat costs a second, more than a whole no-op run may take.
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [
        [cell["cell_type"], "".join(cell["source"]), sorted(cell["metadata"].get("tags", []))]
        for cell in cells
        if "injected-parameters" not in cell["metadata"].get("tags", [])
    ]


def output_files(study: Study, step: Step) -> list[Path]:
    """The files the step's patterns match, less those another step's pattern names more precisely (with
    more literal characters): 08_power's `figures/power_curve.*` are its own, not 07_figures' `figures/*`,
    so that one notebook's run does not make the other's outputs look changed."""
    def matches(pattern: str) -> set[Path]:
        return {p for p in study.output_dir.glob(pattern) if p.is_file()}

    precision: dict[Path, int] = {}
    for pattern in step.outputs:
        for path in matches(pattern):
            precision[path] = max(precision.get(path, -1), _literal(pattern))
    for pattern in step.elsewhere:
        for path in matches(pattern) & precision.keys():
            if _literal(pattern) > precision[path]:
                del precision[path]
    return sorted(precision)


def _literal(pattern: str) -> int:
    return sum(char not in "*?[]" for char in pattern)


def compute_key(study: Study, step: Step, parameters: dict, needed: list[Step], code: str) -> str:
    inputs = [resolve(study.file), *study.raw_files()]
    for upstream in needed:
        inputs += output_files(study, upstream)
    return sha256_json({
        "notebook": notebook_code(step.source),
        "parameters": parameters,
        "inputs": files_digest(inputs),
        "library": code,
        "lock": sha256_file(LOCK_FILE),
        "python": list(sys.version_info[:2]),
    })


class RunState:
    """The state file of one study's output folder (not committed: each clone runs once)."""

    def __init__(self, study: Study):
        self.path = study.output_dir / STATE_FILE
        self.study = study
        self.entries: dict = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def is_current(self, step: Step, key: str) -> bool:
        """Same key, the executed notebook present, and every output as the last run left it."""
        entry = self.entries.get(step.name)
        if not entry or entry["key"] != key or not (self.study.notebook_dir / step.source.name).is_file():
            return False
        outputs = output_files(self.study, step)
        if step.outputs and not outputs:
            return False
        return files_digest(outputs) == entry["outputs"]

    def record(self, step: Step, key: str) -> None:
        self.entries[step.name] = {"key": key, "outputs": files_digest(output_files(self.study, step))}
        self._save()

    def forget(self, step: Step) -> None:
        if self.entries.pop(step.name, None) is not None:
            self._save()

    def _save(self) -> None:
        with atomic_write(self.path) as handle:
            json.dump(self.entries, handle, indent=1, sort_keys=True)
            handle.write("\n")
