"""The study file: one YAML file per study, parsed into a typed object.

A study names its data files and how their columns and codes map onto the compendium's data
dictionary, the two periods, the covariates and cluster variables, the seeds and where outputs go.
Adding a study is writing such a file; `studies/reference.yml` is the worked example.

Every problem is a `StudyError` that names the file and the key: an unknown key (a typo would
otherwise be silently ignored), a wrong type, a missing data file, periods that overlap.
"""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.errors import StudyError
from analysis.paths import ROOT, relative, resolve
from analysis.provenance import sha256_json

STUDIES_DIR = ROOT / "studies"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSource(_Strict):
    """One raw table: where it is and how its columns and codes map onto the dictionary."""

    file: Path
    sheet: str | int | None = Field(None, description="Excel sheet name or 0-based index")
    header_row: int = Field(1, ge=1, description="1-based row that holds the column names")
    encoding: str = "utf-8"
    date_format: str | None = Field(
        None, description="how dates written as text look, e.g. '%d/%m/%Y'; default ISO 8601 (2011-02-01)"
    )
    columns: dict[str, str] = Field(default_factory=dict, description="dictionary column -> column in the file")
    values: dict[str, dict[Any, Any]] = Field(
        default_factory=dict, description="dictionary column -> {code in the file: code in the dictionary}"
    )

    @field_validator("file")
    @classmethod
    def _exists(cls, path: Path) -> Path:
        if not resolve(path).is_file():
            raise ValueError(f"data file not found: {relative(resolve(path))}")
        return path

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding '{encoding}' (for example utf-8, cp1252, latin-1)") from None
        return encoding

    @field_validator("date_format")
    @classmethod
    def _date_format_round_trips(cls, fmt: str | None) -> str | None:
        # A format without day, month and year would parse every date to the same day.
        probe = dt.date(2011, 12, 31)
        try:
            ok = fmt is None or dt.datetime.strptime(probe.strftime(fmt), fmt).date() == probe
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"date_format '{fmt}' does not read back a day, month and year (for example '%d/%m/%Y')")
        return fmt

    @property
    def path(self) -> Path:
        return resolve(self.file)


class Data(_Strict):
    patients: TableSource
    suggestions: TableSource


class Window(_Strict):
    label: str
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Periods(_Strict):
    """The two periods, defined by date windows on one date column; rows outside both are excluded."""

    date_column: Literal["admission_date"] = "admission_date"
    before: Window
    after: Window

    @model_validator(mode="after")
    def _before_then_after(self) -> Periods:
        if self.after.start <= self.before.end:
            raise ValueError(
                f"the after period starts ({self.after.start}) on or before the before period ends ({self.before.end})"
            )
        return self


class Eligibility(_Strict):
    min_age: int = Field(18, ge=0)
    min_medicines: int = Field(0, ge=0)


Cluster = Literal["team", "ward", "pharmacist"]


class Clusters(_Strict):
    primary: Cluster = "team"
    alternatives: list[Cluster] = Field(default_factory=lambda: ["ward", "pharmacist"])


class Seeds(_Strict):
    models: int = Field(..., ge=0, description="seed for model fits that use random numbers (the Bayesian "
                                                  "fit_map/fit_vb estimators; the default Laplace fit uses none)")


class Outputs(_Strict):
    folder: Path | None = Field(None, description="default data_derived/<study name>")
    notebooks: Path | None = Field(None, description="executed notebooks; default <folder>/notebooks")


Covariate = Literal["age", "sex", "charlson", "n_medicines", "length_of_stay"]


class Study(_Strict):
    """A study file, parsed. `name` is the file's stem."""

    name: str
    file: Path
    title: str
    synthetic: bool = Field(..., description="true when the patient-level data are synthetic; shown on every result")
    description: str = ""
    data: Data
    published: Path | None = Field(None, description="folder of published aggregates to compare against")
    periods: Periods
    eligibility: Eligibility = Field(default_factory=Eligibility)
    covariates: list[Covariate] = Field(default_factory=lambda: ["age", "charlson", "n_medicines"])
    discharge_covariates: list[Covariate] = Field(default_factory=lambda: ["length_of_stay"])
    clusters: Clusters = Field(default_factory=Clusters)
    seeds: Seeds
    outputs: Outputs = Field(default_factory=Outputs)

    @field_validator("published")
    @classmethod
    def _published_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not resolve(path).is_dir():
            raise ValueError(f"folder not found: {relative(resolve(path))}")
        return path

    @property
    def output_dir(self) -> Path:
        return resolve(self.outputs.folder or Path("data_derived") / self.name)

    @property
    def notebook_dir(self) -> Path:
        return resolve(self.outputs.notebooks) if self.outputs.notebooks else self.output_dir / "notebooks"

    def parameters_sha256(self) -> str:
        """Hash of what the analysis depends on: every setting except where the file and outputs are."""
        return sha256_json(self.model_dump(mode="json", exclude={"file", "outputs"}))

    def raw_files(self) -> list[Path]:
        """Every raw input the study reads: its data tables and the published aggregates."""
        files = [self.data.patients.path, self.data.suggestions.path]
        if self.published is not None:
            files += sorted(resolve(self.published).glob("*.csv"))
        return files


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys silently; a study file with both is an error."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise StudyError(f"key '{key}' appears twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def study_path(name_or_path: str | Path) -> Path:
    """`reference`, `studies/reference.yml` or a path anywhere: the study file it names."""
    text = str(name_or_path)
    if text.endswith((".yml", ".yaml")) or "/" in text:
        return resolve(text)
    return STUDIES_DIR / f"{text}.yml"


def load_study(name_or_path: str | Path) -> Study:
    """Parse and check a study file; any problem is a StudyError naming the file and the key."""
    path = study_path(name_or_path)
    where = relative(path)
    if not path.is_file():
        known = ", ".join(list_studies()) or "none"
        raise StudyError(f"{where}: study file not found (studies here: {known})")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except StudyError as error:
        raise StudyError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise StudyError(f"{where}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: expected a mapping of keys at the top level, found {type(raw).__name__}")
    for reserved in ("name", "file"):
        if reserved in raw:
            raise StudyError(f"{where}: key '{reserved}' is not allowed (the study's name is its file name)")
    try:
        return Study(name=path.stem, file=Path(where), **raw)
    except ValidationError as error:
        raise StudyError(_describe(where, error)) from None


def _describe(where: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against studies/README.md)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif "input" in item and not isinstance(item["input"], dict | list):
            message += f" (got {item['input']!r})"
        problems.append(f"key '{key}': {message}")
    head = f"{where}: {problems[0]}"
    if len(problems) == 1:
        return head
    return "\n".join([f"{where}: {len(problems)} problems", *(f"  - {p}" for p in problems)])


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yml"))
