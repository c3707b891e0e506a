"""A parameter sweep: a study's notebooks rerun for each value of one study-file key, each value in its own
folder, and their ledgers gathered into one table (`python -m analysis sweep <study> <key> <value>...`).

Each value gets a copy of the study file with the key set (`seeds.models`, `outcomes.<name>.threshold`,
`covariates`...) and its outputs moved to `<study's output folder>.sweeps/<key>=<value>/outputs` (and
`.../notebooks`); the copy lies beside them. The folder is beside the study's own output folder, never inside
it: what the pipeline writes there (a release carries it) stays the study's, and a sweep's derived tables
are the data's rows. Study paths are relative to the repository root, so each copy reads the same raw data.
The copies run as studies of their own (their own lock, cache and ledger), one task per value on the Dask
executor (`analysis.run.executor`), and `gather` reads each one's results.json.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis import ledger
from analysis.config import Study, load_study
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative, resolve

SUFFIX = ".sweeps"  # a study's name cannot hold a dot, so no study's default output folder ends so
COLUMNS = ["estimate", "std_error", "conf_low", "conf_high", "p_value", "n"]


@dataclass(frozen=True)
class Variant:
    value: Any  # as the study file holds it (the text given, read as YAML)
    label: str  # `<key>=<value>`, the folder's name
    file: Path  # the copy of the study file


def sweeps_dir(study: Study) -> Path:
    return study.output_dir.with_name(study.output_dir.name + SUFFIX)


def _label(key: str, text: str) -> str:
    return f"{key}={re.sub(r'[^A-Za-z0-9._-]+', '_', text).strip('_') or 'empty'}"


def _set(spec: dict, key: str, value: Any, where: str) -> None:
    node = spec
    *parents, last = key.split(".")
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise StudyError(f"{where}: cannot set '{key}': '{'.'.join(parents[:depth + 1])}' is not a mapping")
    node[last] = value


def variants(study: Study, key: str, values: list[str]) -> list[Variant]:
    """Write one study file per value (each read as YAML: `3`, `0.5`, `[age, sex]`) and load it, so that a
    value the study file does not allow is refused naming the key; on any error nothing is left written."""
    where = relative(study.file)
    if not values:
        raise StudyError(f"sweep of '{key}': give at least one value")
    if key.split(".")[0] == "outputs":
        raise StudyError(f"sweep of '{key}': the sweep sets each value's outputs itself ({relative(sweeps_dir(study))}"
                         "/<key>=<value>/)")
    labels = [_label(key, text) for text in values]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise StudyError(f"sweep of '{key}': values give the same folder more than once: {', '.join(repeated)}")
    spec = yaml.safe_load(resolve(study.file).read_text(encoding="utf-8"))
    before: dict[Path, bytes | None] = {}  # each file written, and what it held (None: it did not exist)
    try:
        out = []
        for text, label in zip(values, labels, strict=True):
            value = yaml.safe_load(text)
            changed = copy.deepcopy(spec)
            _set(changed, key, value, where)
            folder = sweeps_dir(study) / label
            changed["outputs"] = {"folder": str(folder / "outputs"), "notebooks": str(folder / "notebooks")}
            path = folder / f"{study.name}.yml"
            before[path] = path.read_bytes() if path.is_file() else None
            with atomic_write(path, encoding="utf-8") as handle:
                yaml.safe_dump(changed, handle, sort_keys=False)
            try:
                load_study(path)
            except StudyError as error:
                raise StudyError(f"sweep of '{key}' = {text}: {error}") from None
            out.append(Variant(value, label, path))
        return out
    except BaseException:
        for path, content in before.items():
            if content is not None:
                path.write_bytes(content)
                continue
            path.unlink(missing_ok=True)
            for folder in (path.parent, path.parent.parent):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise


def gather(study: Study, key: str, done: list[Variant]) -> tuple[pd.DataFrame, Path]:
    """Every ledger entry of every value, long: `key`, `value`, `name`, and the entry's numbers; written as
    `<sweeps folder>/<key>.csv`. A name a value's run did not record is absent from that value's rows."""
    rows = []
    for variant in done:
        entries = ledger.read(ledger.results_path(load_study(variant.file)))
        shown = yaml.safe_dump(variant.value, default_flow_style=True).strip().removesuffix("...").strip()
        rows += [{"key": key, "value": shown, "name": name, **{c: getattr(entry, c) for c in COLUMNS}}
                 for name, entry in entries.items()]
    table = pd.DataFrame(rows, columns=["key", "value", "name", *COLUMNS])
    path = sweeps_dir(study) / f"{key}.csv"
    with atomic_write(path, encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)
    return table, path


def moved(table: pd.DataFrame) -> list[str]:
    """The ledger names whose estimate is not the same for every value (or missing for some)."""
    values = table["value"].nunique()
    by_name = table.groupby("name", sort=True)["estimate"]
    return [name for name, estimates in by_name if len(estimates) < values or estimates.nunique(dropna=False) > 1]


def variant_files(study: Study) -> list[Path]:
    """The sweeps' study files (for `analysis.run.clean`)."""
    return sorted(sweeps_dir(study).glob(f"*/{study.name}.yml"))
