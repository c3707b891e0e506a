"""The results ledger: every reported number, by a stable dotted name, with where it came from.

Each notebook writes its own fragment (`<output>/ledger/<notebook>.json`), so notebooks running in
parallel never write the same file; `merge` joins the fragments into `<output>/results.json`, the
one file the paper, the figures and the reviewer's verification read.

An entry holds the whole tidy row it was recorded from (`estimate`, `std_error`, `statistic`, `df`,
`p_value`, `conf_low`, `conf_high`, `n`, `method`, `warnings`; a number that does not apply is left
out), a one-line `description`, optionally the `published` value it reproduces, and `provenance`: the
notebook and cell that recorded it and the hashes of the parameters and of the derived data it used.
When the study's disclosure rules apply (analysis/disclosure.py: real data, or a preview), `save` writes
the fragment as it may leave the TRE: a small count and the numbers it could be worked back from are
left out, and the entry's `suppressed` says which and why.

Floats are stored to 12 significant digits: far below any reported precision, and above the last
bits that differ between BLAS builds, so a rerun elsewhere does not rewrite the file for noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analysis import disclosure
from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import ROOT, atomic_write, relative
from analysis.provenance import sha256_file, sha256_json

# The numbers of an entry, in the tidy columns' order; `compare` allows them a tolerance, every other
# field must be equal. `df` is a float: Welch's and Satterthwaite's degrees of freedom are fractional.
NUMBERS = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high", "n")
SIGNIFICANT = 12


class Published(BaseModel):
    """A published value the entry reproduces, in the entry's own scale and direction."""

    model_config = ConfigDict(extra="forbid")
    estimate: float | None = None
    conf_low: float | None = None
    conf_high: float | None = None
    p_value: float | None = None
    source: str


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notebook: str
    cell: str | None = Field(None, description="the id of the notebook cell that recorded the entry")
    parameters_sha256: str
    data_sha256: str


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str
    estimate: float | None = None
    std_error: float | None = None
    statistic: float | None = Field(None, description="the test statistic: chi-square, Mann-Whitney U, z, ...")
    df: float | None = Field(None, description="degrees of freedom of the statistic's reference distribution")
    conf_low: float | None = None
    conf_high: float | None = None
    p_value: float | None = None
    n: int | None = None
    method: str = ""
    warnings: list[str] = Field(default_factory=list)
    published: Published | None = None
    suppressed: str | None = Field(None, description="disclosure control: which numbers were hidden, and why")
    # compared exactly, not within a tolerance (it is not in NUMBERS): rows less a count of parameters, an integer
    # no floating-point noise can move, so a change means a model of other rows or terms
    df_resid: int | None = Field(None, description="the residual degrees of freedom of the model the entry comes "
                                                   "from: its rows less its estimated parameters (disclosure "
                                                   "control's MinimumDoFCheck reads them)")
    provenance: Provenance


def _round(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    value = float(value)
    if math.isinf(value):
        raise ValueError("an infinite value cannot be a reported number; use a stated correction")
    return float(f"{value:.{SIGNIFICANT}g}")


def ledger_dir(study: Study) -> Path:
    return study.output_dir / "ledger"


def results_path(study: Study) -> Path:
    return study.output_dir / "results.json"


def derived_data_sha256(study: Study) -> str:
    """One hash of the study's derived tables, keyed by file name so a rebuild elsewhere hashes the same."""
    return sha256_json({p.name: sha256_file(p) for p in sorted((study.output_dir / "derived").glob("*.parquet"))})


class Ledger:
    """The entries one notebook records; `save` writes them as that notebook's fragment."""

    def __init__(self, study: Study, notebook: str):
        self.study = study
        self.notebook = notebook
        self.entries: dict[str, Entry] = {}
        self._parameters = study.parameters_sha256()
        self._cells = _cell_ids(ROOT / "notebooks" / f"{notebook}.ipynb")

    def record(
        self,
        name: str,
        result: pd.Series | pd.DataFrame | dict | float | int,
        description: str,
        *,
        published: Published | dict | None = None,
        **overrides,
    ) -> Entry:
        """Record one number. `result` is a one-row tidy frame, a row of one, a dict or a bare value.

        Every tidy number the result has is kept (a result without a `df` column, or with NaN, stores
        None); fields the result lacks may be given as keyword arguments (`method=`, `n=`...).
        """
        if isinstance(result, pd.DataFrame):
            if len(result) != 1:
                raise ValueError(f"{name}: expected a one-row result, got {len(result)} rows")
            result = result.iloc[0]
        values = {"estimate": result} if not isinstance(result, pd.Series | dict) else dict(result)
        values.update(overrides)
        warnings = values.get("warnings") or []
        if isinstance(warnings, str):
            warnings = [w for w in warnings.split("\n") if w]
        entry = Entry(
            description=description,
            **{key: _round(values.get(key)) for key in NUMBERS if key != "n"},
            n=None if values.get("n") is None or pd.isna(values.get("n")) else int(values["n"]),
            method=str(values.get("method") or ""),
            warnings=list(warnings),
            df_resid=None if pd.isna(values.get("df_resid", None)) else int(values["df_resid"]),
            published=Published(**published) if isinstance(published, dict) else published,
            provenance=Provenance(
                notebook=self.notebook,
                cell=self._current_cell(),
                parameters_sha256=self._parameters,
                data_sha256="",
            ),
        )
        if name in self.entries:
            raise ValueError(f"ledger entry '{name}' recorded twice in {self.notebook}")
        self.entries[name] = entry
        return entry

    def record_frame(self, frame: pd.DataFrame) -> None:
        """Record every row of a results frame (columns `name`, `description`, the tidy columns and,
        where a published value exists, `published_estimate`, `published_low`, `published_high`,
        `published_p_value`, `published_source`)."""
        for row in frame.to_dict("records"):
            published = None
            if isinstance(row.get("published_source"), str):
                published = Published(
                    estimate=_round(row.get("published_estimate")),
                    conf_low=_round(row.get("published_low")),
                    conf_high=_round(row.get("published_high")),
                    p_value=_round(row.get("published_p_value")),
                    source=row["published_source"],
                )
            self.record(row["name"], row, row["description"], published=published)

    def get(self, name: str) -> Entry:
        return self.entries[name]

    def released(self) -> dict[str, Entry]:
        """The entries as they may leave the TRE: as recorded when no disclosure rules apply, else with a hidden
        count, and every number it could be worked back from, left out (what the notebook's findings print)."""
        rules = disclosure.profile(self.study)
        if rules is None:
            return dict(self.entries)
        payload, _ = disclosure.protect_entries({name: _dump(e) for name, e in self.entries.items()}, rules,
                                                disclosure.hidden_families(self.study, self.notebook))
        return {name: Entry(**entry) for name, entry in payload.items()}

    def save(self) -> Path:
        """Write this notebook's fragment, stamped with the hash of the derived data it used."""
        data = derived_data_sha256(self.study)
        payload = {}
        for name, entry in sorted(self.entries.items()):
            provenance = entry.provenance.model_copy(update={"data_sha256": data})
            payload[name] = _dump(entry.model_copy(update={"provenance": provenance}))
        # disclosure control before anything reaches disk: a hidden count and what it could be worked back
        # from never leave the kernel; what was hidden, and why, goes to the SDC record for the release
        rules = disclosure.profile(self.study)
        if rules is not None:
            models = list(disclosure.model_checks(payload, rules).values())
            payload, hidden = disclosure.protect_entries(payload, rules,
                                                         disclosure.hidden_families(self.study, self.notebook))
        path = ledger_dir(self.study) / f"{self.notebook}.json"
        with atomic_write(path, encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.write("\n")
        if rules is not None:
            disclosure.write_record(self.study, f"ledger.{self.notebook}", {
                "output": relative(path), "kind": "ledger",
                "rules": [*disclosure.rules_applied(rules), disclosure.model_rule(rules)], "models": models,
                "suppressed": hidden, "status": disclosure.REVIEW if hidden else disclosure.PASS})
        return path

    def _current_cell(self) -> str | None:
        """The id of the notebook cell now running, found by its source (None outside a kernel).

        The source comes from the kernel's current execute request, not IPython's input history,
        which nbval does not keep (it executes with store_history=False).
        """
        try:
            request = get_ipython().kernel.get_parent("shell")  # type: ignore[name-defined]  # noqa: F821
            source = request["content"]["code"]
        except (NameError, AttributeError, KeyError, TypeError):
            return None
        return self._cells.get(source.strip())


def _cell_ids(path: Path) -> dict[str, str]:
    """Code cell source -> cell id (plain JSON: nbformat takes a second to import)."""
    if not path.is_file():
        return {}
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return {"".join(c["source"]).strip(): c["id"] for c in cells if c["cell_type"] == "code" and "id" in c}


def _dump(entry: Entry) -> dict:
    return entry.model_dump(mode="json", exclude_none=True)


def merge(study: Study) -> Path:
    """Join every notebook's fragment into results.json; a name recorded by two notebooks is an error."""
    entries: dict[str, dict] = {}
    owner: dict[str, str] = {}
    for fragment in sorted(ledger_dir(study).glob("*.json")):
        for name, entry in json.loads(fragment.read_text(encoding="utf-8")).items():
            if name in entries:
                raise StudyError(f"ledger entry '{name}' is recorded by both {owner[name]} and {fragment.stem}")
            entries[name], owner[name] = entry, fragment.stem
    payload = {
        "study": study.name,
        "title": study.title,
        "synthetic": study.synthetic,
        "entries": dict(sorted(entries.items())),
    }
    path = results_path(study)
    with atomic_write(path, encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True, allow_nan=False)
        handle.write("\n")
    with atomic_write(study.output_dir / "LEDGER.md", encoding="utf-8") as handle:
        handle.write(_names_markdown(study, payload["entries"]))
    return path


def _names_markdown(study: Study, entries: dict[str, dict]) -> str:
    """Every ledger name with one line saying what it is and which notebook records it."""
    lines = [
        f"# Ledger names of study `{study.name}`",
        "",
        "Written by the runner with `results.json`; one line per reported number. Each entry in `results.json`",
        "holds `estimate`, `std_error`, `statistic`, `df`, `p_value`, `conf_low`, `conf_high`, `n`, `method`,",
        "`warnings` (the numbers that apply to it), the published value where one exists, and its provenance",
        "(notebook, cell, parameter and data hashes).",
        "",
        "| name | what it is | notebook |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {entry['description']} | {entry['provenance']['notebook']} |"
              for name, entry in entries.items()]
    return "\n".join(lines) + "\n"


def read_fragments(study: Study, notebooks: list[str]) -> dict[str, Entry]:
    """The entries recorded by the given notebooks (for a notebook that builds on their results)."""
    entries = {}
    for notebook in notebooks:
        path = ledger_dir(study) / f"{notebook}.json"
        if not path.is_file():
            raise StudyError(f"{relative(path)}: notebook {notebook} has not recorded its results; run it first")
        entries.update({name: Entry(**e) for name, e in json.loads(path.read_text(encoding="utf-8")).items()})
    return entries


def read(path: str | Path) -> dict[str, Entry]:
    """The entries of a results.json, checked against the entry schema."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise StudyError(f"{relative(path)}: cannot read the ledger: {error}") from None
    return {name: Entry(**entry) for name, entry in payload["entries"].items()}


def compare(
    expected: dict[str, Entry], actual: dict[str, Entry], rtol: float = 1e-6, atol: float = 1e-9
) -> pd.DataFrame:
    """Every difference between two ledgers, in every field of every entry.

    The numbers (`NUMBERS`) match when |actual - expected| <= atol + rtol * |expected| (numpy's
    `isclose` rule). Every other field must be equal: `description`, `method` and `warnings`; the
    published value and its source, which are copied from a paper rather than computed, so that any
    change is an edit and not rounding noise; and the provenance (notebook, cell, and the hashes of
    the parameters and derived data the entry was made from). A value present on one side only, a
    published value included, is a difference. The fields are walked from the entry schema, so that a
    field added to `Entry` is compared without a change here.
    Returns one row per difference (an empty frame when the ledgers agree): `name`, `field`,
    `expected`, `actual`, `abs_diff`, `rel_diff`, `problem`; a missing value stays None.
    """

    def close(a: float, b: float) -> bool:
        return abs(b - a) <= atol + rtol * abs(a)

    beyond, exactly = f"differs beyond rtol={rtol:g}, atol={atol:g}", "differs (compared exactly)"
    rows = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            rows.append(_difference(name, "entry", "present", None, "missing from the rebuilt ledger"))
            continue
        if name not in expected:
            rows.append(_difference(name, "entry", None, "present", "not in the committed ledger"))
            continue
        old, new = expected[name], actual[name]
        for key in Entry.model_fields:
            a, b = getattr(old, key), getattr(new, key)
            if isinstance(a, BaseModel) and isinstance(b, BaseModel):
                for part in type(a).model_fields:
                    field = f"{key}.{part}"
                    problem = "made from other parameters or data" if part.endswith("sha256") else exactly
                    rows += _field_difference(name, field, getattr(a, part), getattr(b, part), problem)
            elif key in NUMBERS:
                rows += _field_difference(name, key, a, b, beyond, close)
            else:
                # a published value on one side only is reported whole, as the dict it is written as
                a, b = (v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in (a, b))
                rows += _field_difference(name, key, a, b, exactly)
    columns = ["name", "field", "expected", "actual", "abs_diff", "rel_diff", "problem"]
    # object columns: a pandas float column would turn a missing value (None) into NaN
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _field_difference(name, field, expected, actual, problem, close=None) -> list[dict]:
    """[] when the two values agree (by `close` if given, else exactly), else the one difference."""
    if (expected is None) != (actual is None):
        return [_difference(name, field, expected, actual, "missing on one side")]
    if expected is None or (close(expected, actual) if close else expected == actual):
        return []
    return [_difference(name, field, expected, actual, problem)]


def _difference(name, field, expected, actual, problem) -> dict:
    numeric = isinstance(expected, int | float) and isinstance(actual, int | float)
    abs_diff = abs(actual - expected) if numeric else None
    rel_diff = abs_diff / abs(expected) if numeric and expected else None
    return {"name": name, "field": field, "expected": expected, "actual": actual,
            "abs_diff": abs_diff, "rel_diff": rel_diff, "problem": problem}
