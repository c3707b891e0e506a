"""Issue 15's "done when": a study marked not synthetic, with small cells in every kind of output, runs end to end
through the real notebooks, and neither its output folder nor its release bundle holds a count under the
threshold, a suppressed cell that can be worked back, a patient identifier or a row-level date, or a figure with
one point per patient.

The checks here are written from the data the test made (tests/sdc_study.py), not from what analysis/disclosure.py
decided: the raw identifiers and dates are searched for byte by byte, and each small count the generator planted
is looked for where a reader would find it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis import disclosure, release
from analysis.cli import main
from analysis.config import load_study
from tests import sdc_study

pytestmark = pytest.mark.slow

THRESHOLD = 10  # ACRO's default, the profile the study file leaves unset
MARKER = "*"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdc_real")
    path, data = sdc_study.write(folder)
    assert main(["run", str(path)]) == 0
    assert main(["release", str(path)]) == 0
    return load_study(path), data


def _outputs(study):
    """Every file of the study's output folder (the bundle included) but its derived, row-level, tables."""
    return [p for p in study.output_dir.rglob("*") if p.is_file() and "derived" not in p.relative_to(
        study.output_dir).parts]


def test_no_identifier_or_row_level_date_in_any_output(ran):
    study, data = ran
    files = _outputs(study)
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".svg" for p in files)
    declared = {"2021-01-01", "2021-06-30", "2021-07-01", "2021-12-31", "2022-06-30"}  # the study file's own dates
    wanted = {str(i) for i in data["id"]}
    for column in ("admitted", "born"):
        for day in pd.to_datetime(data[column]).dt.date:
            if day.isoformat() not in declared:
                wanted |= {day.isoformat(), day.strftime("%d/%m/%Y")}
    for path in files:
        raw = path.read_bytes()
        found = [w for w in wanted if w.encode() in raw]
        assert not found, f"{path.relative_to(study.output_dir)} holds row-level data ({len(found)} values)"
    assert release.find_row_level(study, release.output_files(study))[0] == []
    # the derived tables are kept out of git, and say why
    assert "never committed" in (study.output_dir / "derived" / ".gitignore").read_text()


def _small(cell: str) -> list[int]:
    """The counts under the threshold a table cell shows (an "e/n (p%)", a "c (p)", or a bare count)."""
    match = disclosure.EVENTS_OF_N.match(cell)
    if match:
        e, n = int(match[1]), int(match[2])
        return [c for c in (e, n - e) if c < THRESHOLD]
    match = disclosure.COUNT_PERCENT.match(cell)
    if match:
        return [int(match[1])] if int(match[1]) < THRESHOLD else []
    return [int(cell)] if cell.isdigit() and int(cell) < THRESHOLD else []


def test_no_count_under_the_threshold_in_any_table(ran):
    study, _ = ran
    tables = sorted(study.output_dir.rglob("tables/*.csv"))
    assert {"monthly.csv", "primary_readmitted_by_ward.csv", "secondary_satisfaction_levels.csv", "table1.csv",
            "primary_outcomes.csv", "leave_one_ward_out.csv"} <= {p.name for p in tables}
    for path in tables:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        counts = [c for c in frame.columns if re.fullmatch(r"events|n|count|patients", c)]
        for column in frame.columns:
            if column in counts or frame[column].str.contains("/").any() or path.stem == "table1":
                for cell in frame[column]:
                    assert not _small(cell), (path.name, column, cell)


def test_no_hidden_count_can_be_worked_back_from_a_period_total(ran):
    study, _ = ran
    entries = json.loads((study.output_dir / "results.json").read_text())["entries"]
    totals = {"readmitted": {p: entries[f"readmitted.events_{p}"]["estimate"] for p in ("before", "after")}}
    monthly = pd.read_csv(study.output_dir / "tables" / "monthly.csv", dtype=str)
    by_ward = pd.read_csv(study.output_dir / "tables" / "primary_readmitted_by_ward.csv", dtype=str)
    for period in ("before", "after"):
        for frame, column, total in ((monthly, "events", totals["readmitted"][period]),
                                     (by_ward, "events", totals["readmitted"][period]),
                                     (by_ward, "n", 120)):
            cells = frame.loc[frame["period"] == period, column]
            hidden = int(cells.eq(MARKER).sum())
            left = total - sum(int(c) for c in cells if c != MARKER)
            # none hidden, or at least two sharing what is left, neither of them pinned (what is left is not 0)
            assert hidden == 0 or (hidden >= 2 and left > 0), (column, period, hidden, left)
    # ward E (4 patients) is not given back by the leave-one-ward-out refits' n (the total less the ward)
    left_out = pd.read_csv(study.output_dir / "tables" / "leave_one_ward_out.csv", dtype=str)
    assert left_out["n"].eq(MARKER).all()
    assert left_out.loc[left_out["ward_left_out"] == "E", "estimate"].eq(MARKER).all()


def test_the_planted_small_cells_are_hidden_everywhere(ran):
    study, data = ran
    entries = json.loads((study.output_dir / "results.json").read_text())["entries"]
    # severe: 6 events before, 0 after; the whole outcome is hidden, in the ledger and every table and notebook
    assert all("estimate" not in e for name, e in entries.items() if name.startswith("severe."))
    primary = pd.read_csv(study.output_dir / "tables" / "primary_outcomes.csv", dtype=str)
    assert primary.loc[primary["Outcome"] == "Severe error"].drop(columns="Outcome").eq(MARKER).all(axis=None)
    assert (entries["readmitted.events_before"]["estimate"], entries["readmitted.events_after"]["estimate"]) == (
        int(data["readmitted"][:120].sum()), int(data["readmitted"][120:].sum()))
    # satisfaction: 2 and 1 patients answered poor
    levels = pd.read_csv(study.output_dir / "tables" / "secondary_satisfaction_levels.csv", dtype=str)
    assert levels.loc[levels["level"] == "poor", "count"].eq(MARKER).all()
    assert "estimate" not in entries["satisfaction.poor_before"]
    # the MAI change after the change: 7 patients, no summary of them
    assert all("estimate" not in entries[f"mai_change.{s}_after"] for s in ("mean", "median"))
    # nor a comparison with them: the difference in means and the mean before would give their mean
    assert "estimate" not in entries["mai_change.mean_difference"] and "estimate" in entries["mai_change.mean_before"]
    shown = 0
    for path in (study.output_dir / "notebooks").glob("*.ipynb"):
        text = json.loads(path.read_text(encoding="utf-8"))
        html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in text["cells"]
                       for o in c.get("outputs", []))
        # severe's counts as the summary table would print them
        assert "6/120" not in html and "0/120" not in html, path.name
        # every number of a `severe.` row of a results table (estimate, CI, statistic, p; not its n, the rows a
        # model used) is the marker
        for row in re.findall(r"<td>severe\.[a-z_]+</td>\s*<td>[^<]*</td>((?:\s*<td>[^<]*</td>){4})", html):
            cells = set(re.findall(r"<td>([^<]*)</td>", row)) - {"", MARKER, " to "}
            assert all(not re.search(r"\d", c) for c in cells), (path.name, row)
            shown += 1
    assert shown >= 10  # the results tables were found
    findings = (study.output_dir / "notebooks" / "03_primary.ipynb").read_text(encoding="utf-8")
    assert "Severe error" in findings and MARKER in findings


def test_figures_show_no_patient_and_say_what_they_leave_out(ran):
    study, _ = ran
    svg = (study.output_dir / "figures" / "older_values.svg").read_text(encoding="utf-8")
    # each marker drawn is a <use> of its shape (`#m...`; glyphs are `#DejaVuSans-...`): the axis ticks and the two
    # legend entries, no patient (the data have 52 MAI changes, drawn as 52 more)
    assert len(re.findall(r'<use xlink:href="#m', svg)) < 10
    notebook = json.loads((study.output_dir / "notebooks" / "07_figures.ipynb").read_text(encoding="utf-8"))
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in notebook["cells"]
                    for o in c.get("outputs", []))
    assert "no patient is drawn" in shown and "left out" in shown


def test_the_bundle_carries_every_output_with_checksums_and_a_report(ran):
    study, _ = ran
    folder = study.output_dir / "release"
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"outputs/results.json", "outputs/tables/monthly.csv", "outputs/figures/older_values.svg",
            "outputs/notebooks/03_primary.ipynb", "sdc_real.yml", "SHA256SUMS", "sdc_report.md"} <= names
    report = json.loads((folder / "sdc_report.json").read_text())
    assert report["status"] == disclosure.REVIEW and report["row_level_check"]["found"] == []
    ledger = next(o for o in report["outputs"] if o["output"] == "outputs/results.json")
    assert {s["entry"] for s in ledger["suppressed"]} >= {"severe.events_before", "severe.events_after"}
    assert np.all([len(line.split("  ")) == 2 for line in (folder / "SHA256SUMS").read_text().splitlines()])


def test_the_manuscript_prints_the_marker_and_no_hidden_count(ran):
    from analysis import paper

    study, data = ran
    text = paper.render_manuscript(study)
    assert "Severe error: * of patients before and * after" in text
    assert "6/120" not in text and "0/120" not in text
    # the models' warnings about severe's few events ("no events in one period", expected counts) are hidden too
    assert "No events in one period" not in text and "expected counts are below 5" not in text
    assert not [i for i in data["id"] if i in text]


def test_a_model_with_too_few_residual_df_is_hidden_everywhere(ran):
    from analysis import paper
    from analysis.analyses import outcomes

    study, _ = ran
    # the model as the notebook fits it, from the derived (row-level, never released) tables
    tables = {p.stem: pd.read_parquet(p) for p in (study.output_dir / "derived").glob("*.parquet")}
    fitted = outcomes.analyse(tables, study, "audit_score").set_index("name").loc["audit_score.mixed_difference"]
    assert fitted["df_resid"] == sdc_study.AUDIT_DF_RESID < THRESHOLD and pd.notna(fitted["estimate"])
    entries = json.loads((study.output_dir / "results.json").read_text())["entries"]
    entry = entries["audit_score.mixed_difference"]
    assert not {"estimate", "conf_low", "conf_high", "p_value", "df_resid"} & set(entry)
    assert disclosure.DOF in entry["suppressed"]
    # the same outcome's counts and summaries are shown: only the model is hidden
    assert "estimate" in entries["audit_score.mean_before"] and "estimate" in entries["audit_score.mean_difference"]
    # its numbers, as the ledger stores them (12 digits) and as a table or the text prints them, in no output
    values = [fitted[f] for f in ("estimate", "conf_low", "conf_high")]
    wanted = {f"{v:.12g}" for v in values} | {f"{v:.3g}" for v in values if abs(v) >= 1} | {
        f"{v:.2f}" for v in values}
    files = _outputs(study)
    assert (study.output_dir / "LEDGER.md") in files and any("release" in p.parts for p in files)
    texts = {p: p.read_text(encoding="utf-8", errors="replace") for p in files}
    texts["manuscript"] = paper.render_manuscript(study)
    rows = 0
    for path, text in texts.items():
        assert not [w for w in {f"{v:.12g}" for v in values} if w in text], path
        if path != "manuscript" and path.suffix == ".ipynb":
            text = "".join("".join(o.get("data", {}).get("text/html", "")) for c in json.loads(text)["cells"]
                           for o in c.get("outputs", []))
        # the model's row of a results table (estimate, CI, statistic, p): the marker, none of its numbers
        for row in re.findall(r"<td>audit_score\.mixed_difference</td>((?:\s*<td>[^<]*</td>){5})", text):
            cells = re.findall(r"<td>([^<]*)</td>", row)[1:]
            assert set(cells) == {MARKER} and not [w for w in wanted if w in row], (path, row)
            rows += 1
    assert rows >= 2  # the notebook and its copy in the bundle
    # the SDC report lists it as failing ACRO's MinimumDoFCheck
    report = json.loads((study.output_dir / "release" / "sdc_report.json").read_text())
    ledger_output = next(o for o in report["outputs"] if o["output"] == "outputs/results.json")
    models = {m["entry"]: m for m in ledger_output["models"]}
    assert models["audit_score.mixed_difference"]["status"] == disclosure.FAIL
    assert models["audit_score.mixed_difference"]["rule"] == disclosure.DOF
    assert any(m["status"] == disclosure.PASS for m in models.values())
    assert "| `audit_score.mixed_difference` | fail | (hidden) |" in (
        study.output_dir / "release" / "sdc_report.md").read_text()
