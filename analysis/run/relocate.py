"""A study's twin that reads the same inputs and writes every output under another folder.

Used to rebuild a study from raw data without touching its committed outputs: the reviewer's
verification and the benchmarks run the twin.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from analysis.config import Study, load_study
from analysis.paths import resolve


def relocate(study: Study, folder: Path) -> Study:
    """Write `<folder>/<name>.yml`, the study with outputs in `<folder>/outputs`, and load it.

    Paths in a study file are relative to the repository root, not to the file, so the copy reads
    the same data; only `outputs` changes. The copy lies beside its outputs, which is where a study file
    kept outside the repository may write (analysis/config.py, `outputs`).
    """
    folder = folder.resolve()  # `--keep DIR` is relative to where the reviewer typed it, not to the repository
    spec = yaml.safe_load(resolve(study.file).read_text(encoding="utf-8"))
    spec["outputs"] = {"folder": str(folder / "outputs"), "notebooks": str(folder / "notebooks")}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{study.name}.yml"
    target.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_study(target)
