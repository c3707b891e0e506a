"""Copies of the committed datasets in tmp_path, with study files whose outputs stay in tmp_path."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.paths import ROOT
from tests.conftest import set_dotted

PUBLISHED = ROOT / "data_raw" / "published"


def published_table(name: str) -> pd.DataFrame:
    return pd.read_csv(next(PUBLISHED.glob(f"*_{name}.csv")))


def reported(quantity: str, group: str) -> pd.Series:
    table = published_table("reported")
    return table[(table["quantity"] == quantity) & (table["group"] == group)].iloc[0]


@dataclass
class Copy:
    """A dataset copied into tmp_path: its files, its study file and its output folder."""

    folder: Path
    study: Path
    output: Path
    patients: Path
    suggestions: Path
    spec: dict

    def write_study(self, **changes) -> Path:
        """Rewrite the study file with dotted keys changed (None removes the key)."""
        set_dotted(self.spec, changes)
        self.study.write_text(yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return self.study

    def snapshot(self) -> dict[str, str]:
        """Every file under the output folder (hidden ones too) with its sha256."""
        if not self.output.exists():
            return {}
        return {p.relative_to(self.output).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.output.rglob("*")) if p.is_file()}


def _copy(tmp_path: Path, study_file: str, folder: str) -> Copy:
    target = tmp_path / "raw"
    shutil.copytree(ROOT / folder, target)
    spec = yaml.safe_load((ROOT / study_file).read_text(encoding="utf-8"))
    for table in spec["tables"].values():
        table["file"] = str(target / Path(table["file"]).name)
    if "published" in spec:
        spec["published"] = str(PUBLISHED)
    spec["outputs"] = {"folder": str(tmp_path / "out")}
    study = tmp_path / Path(study_file).name
    copy = Copy(target, study, tmp_path / "out", Path(spec["tables"]["patients"]["file"]),
                Path(spec["tables"]["suggestions"]["file"]), spec)
    copy.write_study()
    return copy


@pytest.fixture
def reference_copy(tmp_path) -> Copy:
    """The synthetic reference dataset (CSV, dictionary names and codes) and its study file."""
    return _copy(tmp_path, "studies/reference.yml", "data_raw/synthetic")


@pytest.fixture
def example_copy(tmp_path) -> Copy:
    """The bring-your-own-data example (Excel with a title block, cp1252 CSV) and its study file."""
    return _copy(tmp_path, "studies/example.yml", "data_raw/example")


def edit_csv(path: Path, edits: dict[tuple[int, str], str], encoding: str = "utf-8", drop: str | None = None) -> None:
    """Change cells of a CSV in place: {(line number as a spreadsheet shows it, column): text}."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding=encoding))))
    header = rows[0]
    for (line, column), value in edits.items():
        rows[line - 1][header.index(column)] = value
    if drop is not None:
        index = header.index(drop)
        rows = [row[:index] + row[index + 1:] for row in rows]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def cell(path: Path, line: int, column: str, encoding: str = "utf-8") -> str:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding=encoding))))
    return rows[line - 1][rows[0].index(column)]
