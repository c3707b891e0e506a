"""`python -m analysis release <study>`: what may leave the trusted research environment, for its output checker.

The bundle (`<output>/release/`) holds the safe outputs (`outputs/`: the ledger and the exported tables, as the
disclosure rules left them), the study file, the package versions that made them, an SDC report for the output
checker (`sdc_report.md` and `sdc_report.json`: each output, each rule applied with its parameters, what was
suppressed and why, and what needs a human decision, ACRO's `review`), and `SHA256SUMS` over all of it (check
with `sha256sum -c SHA256SUMS` inside the folder).

Before anything is written, every output of the study is searched for row-level data (`find_row_level`): a
patient identifier (a table's `key`) or a date (any date column: admission, birth) taken from the study's derived
tables. Found in an output the bundle would carry, it stops the release, naming the file, the table and column the
value belongs to and how many values were found, never the values themselves.

Figures, executed notebooks and the manuscript are carried too: under the rules, a notebook displays its tables
and results as the exported tables and the ledger show them (analysis/show.py), the figures are drawn from those
(hidden cells left out, continuous values as summaries without patients: analysis/analyses/figure_data.py), and the
prose prints the marker for a hidden number (analysis/text.py). What the rules cannot see (text a notebook prints,
a figure's shapes) is listed in the report for review. The data manifest is carried without its row counts
(`_released_manifest`), and the report lists every model estimate of the ledger with its residual degrees of freedom
check (ACRO's `MinimumDoFCheck`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import disclosure
from analysis.config import Study
from analysis.data.manifest import MANIFEST
from analysis.errors import StudyError
from analysis.paths import ROOT, relative, resolve

TEXT_SUFFIXES = {".ipynb", ".csv", ".json", ".md", ".html", ".svg", ".txt", ".tex", ".log", ".yml", ".yaml"}
# what a study's output folder holds that is not an output: the derived (row-level) data, the pipeline's own
# records, and the bundle itself
NOT_OUTPUTS = {"derived", "release", "sdc", "verification"}
# tokens of an output's text: an identifier is found only as a whole token, so that "P12" is not found in "P123"
TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
DMY_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
# a purely numeric identifier this short cannot be told from a count or a table number: not searched (the
# report says so), so that the check does not fail on every table; longer ones (an NHS number) are
SHORT_NUMBER = 6


@dataclass
class Finding:
    """Row-level data found in an output: which file, which kind, from which table and column, how many."""

    file: str
    kind: str
    table: str
    column: str
    count: int

    def sentence(self) -> str:
        return (f"{self.file}: {self.count} {self.kind}{'s' if self.count != 1 else ''} of column "
                f"'{self.column}' of table '{self.table}' (row-level data; values not shown)")


def output_files(study: Study) -> list[Path]:
    """Every file the study's run wrote that could leave the TRE: the output folder (but its derived data and
    records), its executed notebooks, and its paper build."""
    folders = [study.output_dir, study.notebook_dir, ROOT / "paper" / "build" / study.name]
    found = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            parts = path.relative_to(folder).parts
            if path.is_file() and not any(p.startswith(".") for p in parts) and not (
                    folder == study.output_dir and parts[0] in NOT_OUTPUTS):
                found.add(path)
    return sorted(found)


def row_level_values(study: Study) -> dict[tuple[str, str], tuple[str, set[str]]]:
    """(table, column) -> (kind, values) to search for: each table's key, and every date column, from the
    derived tables. Dates the study file itself declares (period windows, change point, extraction date) are
    not row-level and are left out; so are numeric keys of fewer than `SHORT_NUMBER` digits."""
    declared = {d.isoformat() for d in (study.period.before.start, study.period.before.end,
                                        study.period.after.start, study.period.after.end,
                                        study.design.change_point, study.extraction_date) if d is not None}
    values = {}
    for name, table in study.tables.items():
        path = study.output_dir / "derived" / f"{name}.parquet"
        if not path.is_file():
            continue
        frame = pd.read_parquet(path)
        if table.key is not None and table.key in frame.columns:
            keys = {str(v) for v in frame[table.key].dropna()}
            values[(name, table.key)] = ("identifier", {k for k in keys
                                                        if not (k.isdigit() and len(k) < SHORT_NUMBER)})
        for column in frame.columns:
            series = frame[column]
            if pd.api.types.is_datetime64_any_dtype(series) or (
                    series.dtype == object and series.dropna().map(lambda v: isinstance(v, dt.date)).all()
                    and series.notna().any()):
                dates = {pd.Timestamp(v).date().isoformat() for v in series.dropna()}
                values[(name, column)] = ("date", dates - declared)
    return values


def _text(path: Path) -> str | None:
    """The searchable text of an output; None for a file whose text cannot be read here."""
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            for output in cell.get("outputs", []):
                # an image is base64: its letters would match short identifiers by chance
                for kind in [k for k in output.get("data", {}) if k.startswith("image/") and k != "image/svg+xml"]:
                    del output["data"][kind]
        return json.dumps(notebook)
    if path.suffix in TEXT_SUFFIXES:
        return path.read_text(encoding="utf-8", errors="replace")
    return None


def find_row_level(study: Study, files: list[Path]) -> tuple[list[Finding], list[str]]:
    """Row-level data found in `files`, and the files that could not be searched (a PNG, a PDF: their twins,
    the SVG and the CSV, are)."""
    values = row_level_values(study)
    findings, unsearched = [], []
    for path in files:
        text = _text(path)
        if text is None:
            unsearched.append(relative(path))
            continue
        tokens = set(TOKEN.findall(text))
        dates = {f"{y}-{m}-{d}" for y, m, d in ISO_DATE.findall(text)}
        dates |= {f"{y}-{int(m):02d}-{int(d):02d}" for d, m, y in DMY_DATE.findall(text)}
        for (table, column), (kind, wanted) in values.items():
            if kind == "date":
                hits = len(wanted & dates)
            else:
                plain = {w for w in wanted if TOKEN.fullmatch(w)}
                hits = len(plain & tokens) + sum(1 for w in wanted - plain if w in text)
            if hits:
                findings.append(Finding(relative(path), kind, table, column, hits))
    return findings, unsearched


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recheck_table(path: Path, rules: disclosure.Profile, hidden: frozenset[str]) -> list[str]:
    """A released table read back and checked again, with the ledger's hidden entries as they are now (a table
    exported before another notebook hid an outcome's counts is stale): any number the rules would hide, and any
    measure whose period holds a single hidden count (the period's total would give it back), is a problem."""
    frame = pd.read_csv(path, dtype=object, keep_default_na=False).map(_as_number)
    _, report = disclosure.protect_table(path.stem, frame, rules, hidden)
    problems = [f"{relative(path)}: row {s['row'] + 2}, column '{s['column']}': a value the rules hide "
                f"({s['rule']}) is shown" for s in report.suppressed]
    mark = disclosure.marker(rules)
    groups = [c for c in ("key", "outcome", "measure", "period") if c in frame.columns]
    for column in ("events", "count"):
        if column in frame.columns and "period" in frame.columns:
            single = frame[column].eq(mark).groupby([frame[g] for g in groups]).sum().eq(1)
            problems += [f"{relative(path)}: {column} of {', '.join(map(str, np.atleast_1d(group)))}: one hidden "
                         "count in its period, recoverable from the period's total" for group in single[single].index]
    return problems


def _as_number(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def release(study: Study) -> Path:
    """Write `<output>/release/` for the study (see the module's docstring); returns the folder."""
    rules = disclosure.profile(study)
    disclosure.ignore_derived(study)
    results = study.output_dir / "results.json"
    if not results.is_file():
        raise StudyError(f"{relative(results)}: the study has no results; run it first "
                         f"(python -m analysis run {study.name})")
    records = disclosure.read_records(study)
    hidden = frozenset(name for name, entry in json.loads(results.read_text(encoding="utf-8"))["entries"].items()
                       if "suppressed" in entry)
    controlled = [results, study.output_dir / "LEDGER.md", *sorted((study.output_dir / "tables").glob("*.csv"))]
    controlled = [p for p in controlled if p.is_file()]
    others = [p for p in output_files(study) if p not in controlled and p.parent != study.output_dir / "ledger"]
    carried = [*controlled, *others]
    problems = []
    if rules is not None:
        for path in controlled:
            if path.suffix == ".csv" and f"table.{path.stem}" not in records:
                problems.append(f"{relative(path)}: exported before disclosure control applied to the study; "
                                f"rerun the study (python -m analysis run {study.name})")
        for fragment in sorted((study.output_dir / "ledger").glob("*.json")):
            if f"ledger.{fragment.stem}" not in records:
                problems.append(f"{relative(fragment)}: recorded before disclosure control applied to the study; "
                                f"rerun the study (python -m analysis run {study.name})")
        for path in controlled:
            if path.suffix == ".csv":
                problems += _recheck_table(path, rules, hidden)
    findings, unsearched = find_row_level(study, output_files(study))
    carried_names = {relative(p) for p in carried}
    if rules is not None:  # a synthetic study's identifiers are nobody's: reported, not refused
        problems += [f.sentence() for f in findings if f.file in carried_names]
    if problems:
        raise StudyError(f"release of study '{study.name}' refused: {len(problems)} problem"
                         f"{'s' if len(problems) != 1 else ''}\n" + "\n".join(f"  {p}" for p in problems))

    folder = study.output_dir / "release"
    scratch = study.output_dir / f".release-new-{dt.datetime.now().strftime('%H%M%S%f')}"
    try:
        for path in carried:
            target = scratch / "outputs" / _inside(study, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            if rules is not None and path == study.output_dir / MANIFEST:
                target.write_text(_released_manifest(path), encoding="utf-8")
            else:
                shutil.copyfile(path, target)
        shutil.copyfile(resolve(study.file), scratch / Path(study.file).name)
        packages = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()},
                          key=str.lower)
        (scratch / "packages.txt").write_text("\n".join(packages) + "\n", encoding="utf-8")
        report = _report(study, rules, records, carried, findings, unsearched, scratch)
        (scratch / "sdc_report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n",
                                                 encoding="utf-8")
        (scratch / "sdc_report.md").write_text(_markdown(report), encoding="utf-8")
        files = sorted(p for p in scratch.rglob("*") if p.is_file())
        (scratch / "SHA256SUMS").write_text(
            "".join(f"{_sha256(p)}  {p.relative_to(scratch).as_posix()}\n" for p in files), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _inside(study: Study, path: Path) -> Path:
    """Where an output goes in the bundle's `outputs/`: as in the output folder; notebooks and the paper build
    kept elsewhere go under `notebooks/` and `paper/`."""
    if path.is_relative_to(study.output_dir):
        return path.relative_to(study.output_dir)
    if path.is_relative_to(study.notebook_dir):
        return Path("notebooks") / path.relative_to(study.notebook_dir)
    return Path("paper") / path.relative_to(ROOT / "paper" / "build" / study.name)


def _released_manifest(path: Path) -> str:
    """The manifest as the bundle carries it under the rules: every file's path and sha256 (what the checker needs to
    tie the outputs to their data), without row counts. The raw main table's rows are the flow's first stage, which
    disclosure control may hide (`disclosure.flow_suppression`: with the included published, the raw rows less the
    other stages give a lone small exclusion back), and a derived table's rows are the flow's counts again; the flow
    table and the ledger carry the counts the rules allow, so the manifest need not, and leaving them all out is
    the same whatever the flow hid."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for role in ("inputs", "outputs"):
        for entry in manifest.get(role, []):
            entry.pop("rows", None)
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def _report(study, rules, records, carried, findings, unsearched, folder) -> dict:
    by_output = {record["output"]: record for record in records.values()}
    ledger_hidden = [s for name, r in sorted(records.items()) if name.startswith("ledger.") for s in r["suppressed"]]
    # every model estimate of the ledger with its MinimumDoFCheck verdict (a failing one is hidden, listed above too)
    models = [m for name, r in sorted(records.items()) if name.startswith("ledger.") for m in r.get("models", [])]
    outputs = []
    for path in carried:
        name = relative(path)
        record = by_output.get(name)
        if path.name == "results.json" and rules is not None:
            record = {"kind": "ledger", "suppressed": ledger_hidden, "models": models,
                      "status": disclosure.REVIEW if ledger_hidden else disclosure.PASS,
                      "rules": [*disclosure.rules_applied(rules), disclosure.model_rule(rules)]}
        released = Path("outputs") / _inside(study, path)
        entry = {"output": released.as_posix(), "sha256": _sha256(folder / released)}
        if rules is None:
            entry.update(status=disclosure.PASS, note="synthetic data: no disclosure control needed")
        elif path == study.output_dir / MANIFEST:
            entry.update(status=disclosure.PASS, note="paths and sha256 of the data files; their row counts are left "
                                                      "out (the flow carries the counts the rules allow)")
        elif record is None:
            entry.update(status=disclosure.PASS, note="names and descriptions only; no numbers")
        else:
            entry.update(status=record["status"], suppressed=record["suppressed"], review=record.get("review", []))
            if "models" in record:
                entry["models"] = record["models"]
        outputs.append(entry)
    review = [f"{o['output']}: {len(o['suppressed'])} value(s) suppressed; confirm with the linked outputs"
              for o in outputs if o.get("suppressed")]
    review += [f"{name}: could not be searched for row-level data here" for name in unsearched
               if rules is not None and name in {relative(p) for p in carried}]
    if rules is not None:
        review += ["executed notebooks: their displayed tables and results are under the rules, and their text is "
                   "searched for row-level data; text a cell prints (print) is not otherwise checked: read it",
                   "figures: drawn from the protected tables and ledger, hidden cells left out (each notebook says "
                   "so under the figure), continuous values as boxes without patients; check them by eye",
                   "medians, quartiles, minima and maxima in the ledger are values of single patients when the "
                   "data are small or tied; ACRO marks such statistics for review",
                   "Table 1 summaries of continuous variables (mean, SD, median, quartiles) are not checked for "
                   "dominance; check that no group summarised is small"]
        if rules.safe_round_base:
            review.append(f"counts in the ledger are not rounded to {rules.safe_round_base} (their proportions "
                          "and intervals would give them back); the exported tables' counts are")
    return {
        "study": study.name,
        "title": study.title,
        "synthetic": study.synthetic,
        "profile": None if rules is None else asdict(rules),
        "rules": [] if rules is None else [*disclosure.rules_applied(rules), disclosure.model_rule(rules)],
        "marker": None if rules is None else disclosure.marker(rules),
        "status": disclosure.REVIEW if review else disclosure.PASS,
        "outputs": outputs,
        "row_level_check": {"searched": "every output of the study (tables, ledger, notebooks, figures' SVG, "
                                        "paper build)",
                            "found": [asdict(f) for f in findings],
                            "not_searched": unsearched,
                            "numeric_identifiers_shorter_than": SHORT_NUMBER},
        "review": review,
    }


def _markdown(report: dict) -> str:
    lines = [f"# SDC report: study `{report['study']}`", "", report["title"], ""]
    if report["profile"] is None:
        lines += ["Synthetic data: no disclosure control applied (no person can be identified from it).", ""]
    else:
        profile = report["profile"]
        lines += [f"Rules: profile `{profile['name']}` ({profile['description']}). A suppressed value is shown as "
                  f"`{report['marker']}`.", "", "| rule | parameters |", "|---|---|"]
        lines += [f"| {r['rule']} | " + ", ".join(f"{k} = {v}" for k, v in r.items() if k != "rule") + " |"
                  for r in report["rules"]]
        lines.append("")
    lines += [f"Overall status: **{report['status']}**", "", "## Outputs", "", "| output | status | suppressed |",
              "|---|---|---|"]
    lines += [f"| `{o['output']}` | {o['status']} | {len(o.get('suppressed', []))} |" for o in report["outputs"]]
    for output in report["outputs"]:
        if output.get("suppressed"):
            lines += ["", f"### `{output['output']}`", ""]
            for s in output["suppressed"]:
                where = s.get("entry") or f"row {s['row'] + 1}, column `{s['column']}`"
                lines.append(f"- {where}: {s['reason']} ({s['rule']})")
        if output.get("models"):
            failed = [m for m in output["models"] if m["status"] == disclosure.FAIL]
            lines += [] if output.get("suppressed") else ["", f"### `{output['output']}`"]
            lines += ["", f"Model estimates of `{output['output']}` checked for residual degrees of freedom "
                      f"({disclosure.DOF}, at least {output['models'][0]['safe_dof_threshold']}): "
                      f"{len(output['models']) - len(failed)} pass, {len(failed)} fail (hidden).", "",
                      "| entry | status | residual df |", "|---|---|---|"]
            lines += [f"| `{m['entry']}` | {m['status']} | {m.get('df_resid', '(hidden)')} |" for m in output["models"]]
    lines += ["", "## Needs a human decision (review)", ""]
    lines += [f"- {r}" for r in report["review"]] or ["- nothing"]
    found = report["row_level_check"]["found"]
    lines += ["", "## Row-level data", "", f"Searched: {report['row_level_check']['searched']}."]
    if report["profile"] is not None:
        lines[-1] += " Identifiers and dates of the derived tables are in no output of the bundle."
    lines += [f"- found: {Finding(**f).sentence()}" for f in found]
    return "\n".join(lines) + "\n"

