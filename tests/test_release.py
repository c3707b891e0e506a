"""The release bundle of a study marked not synthetic, with small cells in every kind of output: no cell under
the threshold, no recoverable suppressed cell, no identifier or row-level date anywhere; and a synthetic study's
outputs unchanged when the rules are off."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis import disclosure, ledger, release, tables
from analysis.cli import main
from analysis.config import load_study
from analysis.errors import StudyError

N_BEFORE, N_AFTER = 121, 112


@pytest.fixture
def real(write_study):
    return _real_study(write_study)


def _real_study(write_study, changes=None):
    """A study with `synthetic: false` whose derived table holds patient ids, admission dates and dates of
    birth, with outputs written through the library's own hooks (tables.export, Ledger.save, merge) as the
    notebooks write them: a monthly table with months of 1 to 9 events, harm levels with counts of 2 and 6,
    Table 1 counts of 7 and 8, a ledger with 6 patients with a severe error."""
    study = load_study(write_study({"synthetic": False, **(changes or {})}))
    rng = np.random.default_rng(7)
    n = N_BEFORE + N_AFTER
    admitted = [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in
                np.r_[rng.integers(0, 360, N_BEFORE), rng.integers(366, 725, N_AFTER)]]
    derived = pd.DataFrame({"id": [f"PT{k:05d}X" for k in range(n)],
                            "admitted": pd.to_datetime(admitted),
                            "born": pd.to_datetime([dt.date(1940, 1, 1) + dt.timedelta(days=int(d))
                                                    for d in rng.integers(0, 20000, n)]),
                            "event": rng.random(n) < 0.3})
    (study.output_dir / "derived").mkdir(parents=True)
    derived.to_parquet(study.output_dir / "derived" / "patients.parquet")
    months = [f"2020-{m:02d}" for m in range(1, 13)] + [f"2021-{m:02d}" for m in range(1, 13)]
    events = [12, 4, 15, 9, 20, 11, 3, 14, 16, 10, 18, 13, 1, 22, 19, 17, 25, 30, 5, 21, 24, 26, 28, 29]
    tables.export(study, "monthly", pd.DataFrame({
        "key": "event", "measure": "Event", "month": months, "month_index": range(24),
        "period": ["before"] * 12 + ["after"] * 12, "events": events, "n": [40] * 24,
        "proportion": [e / 40 for e in events]}))
    tables.export(study, "secondary_harm_levels", pd.DataFrame({
        "period": ["before"] * 4 + ["after"] * 4, "period_label": ["Before"] * 4 + ["After"] * 4,
        "level": ["none", "minor", "moderate", "severe"] * 2, "count": [35, 6, 74, 6, 93, 2, 17, 0],
        "percent": [28.9, 5.0, 61.2, 5.0, 83.0, 1.8, 15.2, 0.0]}))
    tables.export(study, "table1", pd.DataFrame({
        "Variable": ["n", "Sex, n (%)", "Sex, n (%)", "Frail, n (%)"], "Level": [None, "female", "male", "yes"],
        "Overall": ["233", "123 (52.8)", "110 (47.2)", "15 (6.4)"],
        "Before": ["121", "66 (54.5)", "55 (45.5)", "7 (5.8)"], "After": ["112", "57 (50.9)", "55 (49.1)", "8 (7.1)"],
        "SMD": [None, "0.073", None, "0.05"]}))
    tables.export(study, "primary_outcomes", pd.DataFrame({
        "Outcome": ["Error at admission", "Potentially severe error"],
        "Before": ["49/121 (40.5%)", "6/121 (5.0%)"], "After": ["10/112 (8.9%)", "0/112 (0.0%)"],
        "Risk difference, % (95% CI)": ["-31.6% (95% CI -41.3% to -20.9%)", "-5.0% (95% CI -10.4% to -0.7%)"]}))
    book = ledger.Ledger(study, "03_primary")
    for key, before, after in (("admission", 49, 10), ("severe", 6, 0)):
        book.record(f"{key}.events_before", before, "events before (count)", method="Count of events", n=N_BEFORE)
        book.record(f"{key}.events_after", after, "events after (count)", method="Count of events", n=N_AFTER)
        book.record(f"{key}.risk_difference", {"estimate": after / N_AFTER - before / N_BEFORE, "conf_low": -0.1,
                                               "conf_high": 0.0, "p_value": 0.03, "n": n}, "risk difference",
                    method="Risk difference")
    book.save()
    ledger.merge(study)
    return study, derived


def _all_text(folder):
    return {p: p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file()}


def test_the_release_bundle_holds_no_small_cell_no_identifier_and_no_row_level_date(real):
    study, derived = real
    folder = release.release(study)
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"SHA256SUMS", "packages.txt", "sdc_report.md", "sdc_report.json", "toy.yml", "outputs/results.json",
            "outputs/LEDGER.md", "outputs/tables/monthly.csv", "outputs/tables/table1.csv"} <= names
    # every output file, searched for every identifier and every date of the derived table, in the forms a
    # notebook or a spreadsheet would print them
    wanted = set(derived["id"])
    for column in ("admitted", "born"):
        for day in derived[column].dt.date:
            wanted |= {day.isoformat(), day.strftime("%d/%m/%Y"), f"{day.day}/{day.month}/{day.year}"}
    wanted -= {"2020-01-01", "2020-12-31", "2021-01-01", "2021-12-31"}  # the period windows, from the study file
    for path, text in _all_text(folder).items():
        if path.name in ("packages.txt", "SHA256SUMS"):
            continue
        found = [w for w in wanted if w in text]
        assert not found, f"{path.name} holds row-level data"
    # no count under the threshold in any released table: read back, every count cell is the marker or >= 10
    for path in (folder / "outputs" / "tables").glob("*.csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in frame.columns:
            for cell in frame[column]:
                match = disclosure.EVENTS_OF_N.match(cell)
                if match:
                    e, n = int(match[1]), int(match[2])
                    assert min(e, n - e) >= 10, (path.name, cell)
                match = disclosure.COUNT_PERCENT.match(cell)
                if match:
                    assert int(match[1]) >= 10, (path.name, cell)
                if column in ("events", "count") and cell != "*":
                    assert int(cell) >= 10, (path.name, cell)
    # the ledger: the severe family is gone, the admission one is whole
    entries = json.loads((folder / "outputs" / "results.json").read_text())["entries"]
    assert all("estimate" not in entries[f"severe.{k}"] for k in ("events_before", "events_after", "risk_difference"))
    assert entries["admission.events_before"]["estimate"] == 49
    # checksums
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    report = json.loads((folder / "sdc_report.json").read_text())
    assert report["status"] == disclosure.REVIEW and report["profile"]["name"] == "acro"
    assert {o["output"].rsplit("/", 1)[-1] for o in report["outputs"] if o.get("suppressed")} >= {
        "monthly.csv", "secondary_harm_levels.csv", "table1.csv", "primary_outcomes.csv", "results.json"}
    assert "Needs a human decision" in (folder / "sdc_report.md").read_text()
    assert (study.output_dir / "derived" / ".gitignore").read_text().endswith("*\n")


def test_no_suppressed_monthly_count_can_be_recovered_from_the_period_totals(real):
    study, _ = real
    monthly = pd.read_csv(tables.tables_dir(study) / "monthly.csv", dtype=str)
    for period, part in monthly.groupby("period"):
        hidden = (part["events"] == "*").sum()
        assert hidden != 1, period
        assert hidden == 0 or (part["proportion"][part["events"] == "*"] == "*").all()
    # 1, 3, 4, 5 and 9 are under 10; 3 of the before period are hidden plus none needed; after: 1 and 5 hidden
    assert monthly.loc[monthly["events"] == "*", "month"].tolist() == ["2020-02", "2020-04", "2020-07",
                                                                       "2021-01", "2021-07"]


def test_an_identifier_planted_in_a_table_stops_the_release_without_saying_it(real):
    study, derived = real
    tables.tables_dir(study).joinpath("leak.csv").write_text(f"note\nsee {derived['id'][3]}\n")
    with pytest.raises(StudyError) as error:
        release.release(study)
    message = str(error.value)
    assert "leak.csv" in message and "'id'" in message and derived["id"][3] not in message
    assert not (study.output_dir / "release").exists()


@pytest.mark.parametrize("kind", ["csv", "ipynb", "svg"])
def test_the_row_level_check_finds_what_is_planted(real, tmp_path, kind):
    study, derived = real
    patient, admitted = derived["id"][10], derived["admitted"][10].date()
    planted = {
        "csv": f"id,value\n{patient},1\n",
        "ipynb": json.dumps({"cells": [{"cell_type": "code", "source": "check()", "outputs": [
            {"output_type": "stream", "text": f"row {patient} failed: admitted {admitted:%d/%m/%Y}"}]}]}),
        "svg": f'<svg><!-- {patient} --><g id="{admitted.isoformat()}"/></svg>',
    }[kind]
    path = study.notebook_dir / f"planted.{kind}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(planted)
    findings, _ = release.find_row_level(study, [path])
    found = {(f.kind, f.column) for f in findings}
    assert ("identifier", "id") in found
    if kind != "csv":
        assert ("date", "admitted") in found
    assert all(patient not in f.sentence() for f in findings)


def test_a_table_exported_before_the_rules_applied_is_refused(real):
    study, _ = real
    (study.output_dir / "sdc" / "table.monthly.json").unlink()
    with pytest.raises(StudyError, match="monthly.csv: exported before disclosure control"):
        release.release(study)


def test_the_release_command(real, capsys):
    study, _ = real
    assert main(["release", str(study.file)]) == 0
    assert "sdc_report.md" in capsys.readouterr().out


def test_a_synthetic_study_is_unchanged_and_can_preview_a_release(write_study):
    frame = pd.DataFrame({"period": ["before", "after"], "level": ["severe", "severe"], "count": [6, 0],
                          "percent": [5.0, 0.0]})
    synthetic = load_study(write_study(name="plain"))
    # no `disclosure:` key, nothing in the parameters' hash: every committed ledger's provenance stays as it is
    assert "disclosure" not in synthetic.model_dump(mode="json")
    path = tables.export(synthetic, "levels", frame)
    assert path.read_text() == "period,level,count,percent\nbefore,severe,6,5\nafter,severe,0,0\n"
    book = ledger.Ledger(synthetic, "03_primary")
    book.record("severe.events_before", 6, "count", method="Count of events", n=121)
    saved = json.loads(book.save().read_text())
    assert saved["severe.events_before"]["estimate"] == 6 and "suppressed" not in saved["severe.events_before"]
    assert not (synthetic.output_dir / "sdc").exists()

    preview = load_study(write_study({"disclosure": {"apply": True, "profile": "opensafely"}}, name="preview"))
    text = tables.export(preview, "levels", frame).read_text()
    assert text == "period,level,count,percent\nbefore,severe,[REDACTED],[REDACTED]\n" \
                   "after,severe,[REDACTED],[REDACTED]\n"
    assert not (preview.output_dir / "derived" / ".gitignore").exists()  # synthetic: nothing to keep out


def test_real_data_cannot_switch_the_rules_off(write_study):
    study = load_study(write_study({"synthetic": False, "disclosure": {"apply": False}}))
    with pytest.raises(StudyError, match="cannot be switched off"):
        tables.export(study, "t", pd.DataFrame({"a": [1]}))


def test_the_sdc_report_names_rules_and_reasons(real):
    study, _ = real
    text = (release.release(study) / "sdc_report.md").read_text()
    for rule in (disclosure.THRESHOLD, disclosure.ZERO, disclosure.SECONDARY):
        assert rule in text
    assert re.search(r"a count below the threshold \(MinimumThresholdCheck\)", text)


def test_a_synthetic_study_releases_everything_with_no_rules(write_study):
    study = load_study(write_study())
    tables.export(study, "levels", pd.DataFrame({"level": ["a"], "count": [3]}))
    book = ledger.Ledger(study, "03_primary")
    book.record("x.events_before", 3, "count", method="Count of events", n=5)
    book.save()
    ledger.merge(study)
    study.notebook_dir.mkdir(parents=True)
    (study.notebook_dir / "03_primary.ipynb").write_text('{"cells": []}')
    folder = release.release(study)
    assert (folder / "outputs" / "notebooks" / "03_primary.ipynb").is_file()
    assert (folder / "outputs" / "tables" / "levels.csv").read_text() == "level,count\na,3\n"
    report = json.loads((folder / "sdc_report.json").read_text())
    assert report["profile"] is None and report["status"] == disclosure.PASS


def test_a_table_edited_after_export_is_rechecked(real):
    # a hand edit that reveals a hidden month, or shows a small count, is caught when the bundle is made
    study, _ = real
    path = tables.tables_dir(study) / "monthly.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",*,40,*", ",4,40,0.1")  # 2020-02: 4 events shown again
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StudyError) as error:
        release.release(study)
    message = str(error.value)
    assert "monthly.csv: row 3, column 'events': a value the rules hide (MinimumThresholdCheck) is shown" in message
    lines[2] = lines[2].replace(",4,40,0.1", ",12,40,0.3")  # a plausible value: 2 hidden months left, 1 shown
    lines[4] = lines[4].replace(",*,40,*", ",19,40,0.475")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StudyError, match="one hidden count in its period"):
        release.release(study)


def test_table_one_n_row_is_a_count(real):
    study, _ = real
    frame = pd.DataFrame({"Variable": ["n", "Age, mean (SD)"], "Overall": ["129", "60.1 (17.2)"],
                          "Before": ["121", "60.6 (17.6)"], "After": ["8", "59.6 (16.8)"]})
    out = pd.read_csv(tables.export(study, "table1", frame), dtype=str)
    # 8 after: hidden, and with it the row (129 = 121 + 8: the periods add up, as in a flow) and every summary
    # of the after group (a mean of 8 patients), and then the row of that summary: the overall and before
    # means give the after one back, (129 x 60.1 - 121 x 60.6) / 8
    assert out.iloc[0].tolist() == ["n", "*", "*", "*"]
    assert out.iloc[1].tolist() == ["Age, mean (SD)", "*", "*", "*"]


@pytest.mark.parametrize("profile", ["nhs_hes", "opensafely"])
def test_a_rounding_profile_releases_rounded_counts_none_of_them_small(write_study, profile):
    study, _ = _real_study(write_study, {"disclosure": {"profile": profile}})
    folder = release.release(study)
    rules = disclosure.PROFILES[profile]
    monthly = pd.read_csv(folder / "outputs" / "tables" / "monthly.csv", dtype=str)
    shown = [int(e) for e in monthly["events"] if e != rules.marker]
    assert shown and all(e % 5 == 0 and e >= rules.safe_threshold for e in shown)
    assert rules.marker in set(monthly["events"])
    report = json.loads((folder / "sdc_report.json").read_text())
    assert report["profile"]["name"] == profile and any("Rounding" == r["rule"] for r in report["rules"])


def test_a_run_of_real_data_fails_when_an_output_holds_an_identifier(real):
    from analysis.run.pipeline import load_pipeline
    from analysis.run.runner import _row_level

    study, derived = real
    last = load_pipeline()[-1]
    assert _row_level(study, last) == []
    patient = derived["id"][3]
    (study.output_dir / "tables" / "checked_by_hand.csv").write_text(f"note\nsee {patient}\n")
    [outcome] = _row_level(study, last)
    assert "hold row-level data" in outcome.error and "checked_by_hand.csv" in outcome.detail
    assert patient not in outcome.error + outcome.detail


def test_model_estimates_carry_their_residual_df_and_too_few_hide_them(real):
    # the model rows go from analysis.stats through `named` and `record_frame` to the ledger with their df_resid:
    # 12 patients and 3 covariates leave 12 - 4 = 8 residual df (fails ACRO's 10), 40 leave 36 (passes)
    from analysis import stats
    from analysis.analyses.results import combine, named

    study, _ = real
    rng = np.random.default_rng(5)
    frames = []
    for key, n in (("few", 12), ("many", 40)):
        data = pd.DataFrame({"after": np.arange(n) % 2, "age": rng.normal(70, 8, n), "sex": rng.integers(0, 2, n)})
        data["event"] = (rng.random(n) < 0.4).astype(int)
        data.loc[:1, "event"] = [0, 1]
        fitted = stats.logistic_regression(data, "event ~ after + age + sex")
        frames.append(named(fitted, key, {"after": ("odds_ratio_adjusted", "{label}: adjusted odds ratio")}, key))
    book = ledger.Ledger(study, "04_models")
    book.record_frame(combine(*frames))
    hidden = book.get("few.odds_ratio_adjusted")
    assert (hidden.df_resid, book.get("many.odds_ratio_adjusted").df_resid) == (8, 36)
    book.save()
    ledger.merge(study)
    entries = json.loads((study.output_dir / "results.json").read_text())["entries"]
    few, many = entries["few.odds_ratio_adjusted"], entries["many.odds_ratio_adjusted"]
    assert not {"estimate", "conf_low", "conf_high", "p_value", "df_resid"} & set(few)
    assert disclosure.DOF in few["suppressed"] and few["suppressed"].startswith("estimate, std_error")
    assert many["df_resid"] == 36 and "estimate" in many
    folder = release.release(study)
    report = json.loads((folder / "sdc_report.json").read_text())
    results = next(o for o in report["outputs"] if o["output"] == "outputs/results.json")
    models = {m["entry"]: m for m in results["models"]}
    assert models["few.odds_ratio_adjusted"]["status"] == disclosure.FAIL
    assert "df_resid" not in models["few.odds_ratio_adjusted"]  # 8 = n - 4 would give a hidden n back
    assert (models["many.odds_ratio_adjusted"]["status"], models["many.odds_ratio_adjusted"]["df_resid"]) == (
        disclosure.PASS, 36)
    assert {"rule": disclosure.DOF, "safe_dof_threshold": 10} in report["rules"]
    assert {s["entry"]: s["rule"] for s in results["suppressed"]}["few.odds_ratio_adjusted"] == disclosure.DOF
    markdown = (folder / "sdc_report.md").read_text()
    assert "| `few.odds_ratio_adjusted` | fail | (hidden) |" in markdown and "1 pass, 1 fail" in markdown
    assert "not yet recorded" not in markdown
    # the hidden estimate and interval are in no file of the bundle; the passing model's estimate is
    shown = _all_text(folder)
    assert str(many["estimate"]) in shown[folder / "outputs" / "results.json"]
    for value in (hidden.estimate, hidden.conf_low, hidden.conf_high):
        assert not [p for p, text in shown.items() if str(value) in text]


def test_the_released_manifest_carries_no_row_counts(real):
    study, _ = real
    manifest = {"study": study.name, "inputs": [{"path": "data_raw/x.csv", "role": "patients", "rows": 233,
                                                 "sha256": "ab" * 32}],
                "outputs": [{"path": "derived/patients.parquet", "rows": 230, "sha256": "cd" * 32}]}
    (study.output_dir / "manifest.json").write_text(json.dumps(manifest))
    folder = release.release(study)
    released = json.loads((folder / "outputs" / "manifest.json").read_text())
    assert released["inputs"] == [{"path": "data_raw/x.csv", "role": "patients", "sha256": "ab" * 32}]
    assert "rows" not in released["outputs"][0] and "233" not in (folder / "outputs" / "manifest.json").read_text()
    report = json.loads((folder / "sdc_report.json").read_text())
    entry = next(o for o in report["outputs"] if o["output"] == "outputs/manifest.json")
    # the report's checksum is that of the file released, as SHA256SUMS says
    sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert entry["sha256"] == sums["outputs/manifest.json"] and "row counts are left out" in entry["note"]
    # and as a notebook displays it (analysis/show.py `manifest`), the row counts are hidden too
    shown = pd.DataFrame({"": ["inputs", "outputs"], "path": ["data_raw/x.csv", "derived/patients.parquet"],
                          "rows": [233, 230], "sha256": ["ab" * 8, "cd" * 8]})
    out, _ = disclosure.protect_table("displayed", shown, disclosure.PROFILES["acro"])
    assert out["rows"].tolist() == ["*", "*"] and out["path"].tolist() == shown["path"].tolist()
