"""A manuscript generated for any study from its declarations and ledger, or the study's own adopted one."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from PIL import Image

from analysis import ledger, paper
from analysis.config import load_study
from analysis.errors import StudyError
from analysis.paper import generated

PROVENANCE = {"notebook": "03_primary", "parameters_sha256": "p", "data_sha256": "d"}
REFERENCE_ONLY = ("pharmacist", "MAI", "the paper's", "Grimes", "Tallaght", "medication error")

STUDY = """\
title: Falls on two wards before and after a new checklist (a test study)
synthetic: true
description: Made up for the tests of the generated manuscript.
tables:
  patients:
    file: {folder}/patients.csv
    key: patient_id
    columns:
      patient_id: {{type: string}}
      admission_date: {{type: date}}
      age: {{type: integer, label: "Age, years"}}
      ward: {{type: string, label: Ward}}
      fell: {{type: boolean, label: Fell}}
      pain: {{type: number, min: 0, max: 10, label: Pain score}}
period:
  column: admission_date
  before: {{label: Old routine, start: 2020-01-01, end: 2020-06-30}}
  after: {{label: New checklist, start: 2020-08-01, end: 2020-12-31}}
eligibility:
  adults: {{keep: age >= 18, excluded: aged under 18}}
covariates: [age]
clusters: {{primary: ward}}
outcomes:
  fall:
    type: binary
    table: patients
    column: fell
    label: Fall during the stay
    analyses: {{logistic: false, gee: false, alternative_clusters: false, time_series: false,
               leave_one_cluster_out: false, nnt: false}}
{secondary}seeds: {{models: 1}}
outputs: {{folder: {folder}/out}}
"""
PAIN = """\
  pain:
    type: continuous
    role: secondary
    table: patients
    column: pain
    label: Pain score (0-10)
    analyses: {means: false, mixed: false}
"""
NOT_ESTIMATED = "Not estimated (mixed-effects logistic regression): only one ward, so no random intercept."


def _entry(description: str, **numbers) -> dict:
    return {"description": description, "provenance": PROVENANCE, **numbers}


def _ledger(with_pain: bool) -> dict:
    entries = {
        "flow.screened.all": _entry("screened", estimate=40, n=40),
        "flow.outside_periods.all": _entry("outside", estimate=0, n=0),
        "flow.adults.all": _entry("under age", estimate=2, n=2),
        "flow.included.before": _entry("included before", estimate=18, n=18),
        "flow.included.after": _entry("included after", estimate=20, n=20),
        "design.eligibility.adults.age": _entry("Eligibility: age >= 18", estimate=18),
        "fall.proportion_before": _entry("before", estimate=0.5, conf_low=0.29, conf_high=0.71, n=18),
        "fall.proportion_after": _entry("after", estimate=0.25, conf_low=0.11, conf_high=0.47, n=20),
        "fall.risk_difference": _entry("rd", estimate=-0.25, conf_low=-0.51, conf_high=0.05, n=38),
        "fall.fisher": _entry("fisher", p_value=0.18, n=38),
        "fall.odds_ratio_unadjusted": _entry("or", estimate=0.33, conf_low=0.08, conf_high=1.3, p_value=0.11),
        "fall.odds_ratio_adjusted": _entry("adjusted or", method="not estimated", warnings=[NOT_ESTIMATED]),
        "fall.cluster_sd": _entry("sd", method="not estimated", warnings=[NOT_ESTIMATED]),
    }
    if with_pain:
        entries |= {
            "design.outcome.pain.min": _entry("min", estimate=0),
            "design.outcome.pain.max": _entry("max", estimate=10),
            **{f"pain.{q}_{p}": _entry(q, estimate=v, n=18)
               for (q, p), v in {("median", "before"): 4, ("quartile_1", "before"): 2, ("quartile_3", "before"): 6,
                                 ("median", "after"): 3, ("quartile_1", "after"): 1.5,
                                 ("quartile_3", "after"): 5}.items()},
            "pain.mann_whitney": _entry("mw", statistic=150, p_value=0.2, n=38),
            "pain.rank_biserial": _entry("rb", estimate=-0.2, n=38),
            "pain.hodges_lehmann": _entry("hl", estimate=-1, conf_low=-2.5, conf_high=0.5, n=38),
        }
    return {"study": "falls", "title": "t", "synthetic": True, "entries": entries}


def small_study(tmp_path, with_pain: bool = True, name: str = "falls_test"):
    """A study file, a ledger, a flow table and a figure, with no notebook run."""
    (tmp_path / "patients.csv").write_text("patient_id,admission_date,age,ward,fell,pain\n")
    path = tmp_path / f"{name}.yml"
    path.write_text(STUDY.format(folder=tmp_path, secondary=PAIN if with_pain else ""))
    study = load_study(path)
    out = study.output_dir
    (out / "tables").mkdir(parents=True)
    (out / "figures").mkdir()
    (out / "tables" / "flow.csv").write_text("Stage,Old routine,New checklist,Both periods\n"
                                             "patients in the raw table,,,40\nincluded in the analysis,18,20,38\n")
    Image.new("RGB", (40, 20), "white").save(out / "figures" / "proportions.png")
    (out / "results.json").write_text(json.dumps(_ledger(with_pain)))
    return study


def _labels(study) -> list[str]:
    return [o.label for o in study.outcomes.values()]


def test_a_generated_manuscript_for_a_small_study_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "SOURCES", tmp_path / "paper")  # no adopted source
    study = small_study(tmp_path)
    lines = []
    written = {p.name for p in paper.build(study, out=tmp_path / "build", echo=lines.append)}
    assert {"falls_test.md", "manuscript.md", "manuscript.html", "manuscript.docx", "squire-checklist.md"} <= written
    assert any("copy it to" in line and "falls_test.md" in line for line in lines)  # how to adopt it
    source = (tmp_path / "build" / "falls_test.md").read_text()
    text = (tmp_path / "build" / "manuscript.md").read_text()
    html = (tmp_path / "build" / "manuscript.html").read_text()
    # not one digit typed, even in the declared texts; only the study file's name (here in a numbered tmp folder)
    assert paper.stray_numbers(source, [str(study.file)]) == []
    for label in _labels(study):
        assert label in text and label in html
    assert "Pain score ({{ design.outcome.pain.min | int }}-{{ design.outcome.pain.max | int }})" in source
    for word in REFERENCE_ONLY:
        assert word.lower() not in text.lower(), word
    assert "**synthetic**" in text and "synthetic" in html
    # the model that could not be estimated: "not estimated" in its table row, its reason in the Limitations
    assert re.search(r"\| Odds ratio, adjusted, mixed-effects \| not estimated \|", text)
    finding = next(line for line in text.split("## Primary outcomes")[1].splitlines()
                   if line.startswith("Fall during the stay:"))
    assert "9/18 (50.0%)" in finding and "odds ratio" not in finding  # left out of the sentence
    limitations = text.split("## Limitations")[1]
    assert NOT_ESTIMATED in limitations and "Fall during the stay" in limitations
    assert "{{" not in text and "}}" not in text
    assert html.count("<figcaption") == 1  # the figure the study has; the forest plot it lacks is left out
    assert html.count("<table") == 3  # flow, primary results, secondary results
    checklist = (tmp_path / "build" / "squire-checklist.md").read_text()
    assert "to write: [Problem description](manuscript.html#problem)" in checklist
    assert "| 18. Funding | " in checklist and "items answered" in checklist


def test_a_study_without_secondary_outcomes_has_no_empty_section(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "SOURCES", tmp_path / "paper")
    study = small_study(tmp_path, with_pain=False)
    text = paper.render_manuscript(study)
    assert "{#secondary-results}" not in text and "Secondary outcomes" not in text
    assert "Mann-Whitney" not in text and "continuous" not in text.lower()
    assert "{#reproduction-results}" not in text and "published" not in text.lower()  # no `published:` declared
    assert "time series" in text  # no time series asked for: said, not left as an empty section
    checklist = paper.checklist(text, generic=True)
    assert len(re.findall(r"^\| \d+\. ", checklist, re.M)) == 18


def test_the_studys_own_source_overrides_the_generated_one(tmp_path, monkeypatch):
    own = tmp_path / "paper"
    own.mkdir()
    monkeypatch.setattr(paper, "SOURCES", own)
    study = small_study(tmp_path)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "falls_test.md").write_text("left from an earlier build")
    (own / "falls_test.md").write_text("# Abstract {#abstract}\n\nFalls: {{ fall.proportion_before | frac }}; "
                                       "adjusted {{ fall.odds_ratio_adjusted | est_ci }}.\n")
    assert paper.source_path(study) == own / "falls_test.md"
    written = {p.name for p in paper.build(study, out=tmp_path / "build", echo=lambda line: None)}
    assert "falls_test.md" not in written and not (tmp_path / "build" / "falls_test.md").exists()
    text = (tmp_path / "build" / "manuscript.md").read_text()
    assert "Falls: 9/18 (50.0%); adjusted not estimated." in text
    (own / "falls_test.md").write_text("# Abstract {#abstract}\n\nNine of 18 fell.\n")
    with pytest.raises(StudyError, match="paper/falls_test.md: 1 line"):
        paper.build(study, out=tmp_path / "build", echo=lambda line: None)


def test_the_reference_study_keeps_its_hand_written_manuscript(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "SOURCES", tmp_path)
    (tmp_path / "manuscript.md").write_text("not a study's source")
    reference = load_study("reference")
    assert paper.source_path(reference) == paper.SOURCE == paper.PAPER / "manuscript.md"
    assert paper.manuscript_source(reference, {}).generated is False


@pytest.mark.parametrize("name", ["example", "reference"])
def test_the_generator_writes_any_declared_study_from_its_ledger(name):
    """The committed studies' declarations and ledgers: every label, no stray digit, every placeholder known
    (the reference's own paper is hand-written; the generator must still cope with its published values)."""
    study = load_study(name)
    entries = ledger.read(ledger.results_path(study))
    source = generated.manuscript(study, entries)
    assert paper.stray_numbers(source, paper.declared_texts(study)) == []
    text = paper.render_source(study, paper.Source(source, name, generated=True), entries)
    for label in _labels(study):
        assert label in text, label
    assert ("{#reproduction-results}" in text) == (study.published is not None)
    assert "the paper's" not in text


def test_declared_texts_may_keep_their_digits_but_a_bare_number_may_not(tmp_path):
    study = small_study(tmp_path)
    declared = paper.declared_texts(study)
    assert "Pain score (0-10)" in declared and "pain score (0-10)" in declared and "18" not in declared
    assert paper.stray_numbers("Pain score (0-10) fell by 2.\n", declared) == ["fell by 2."]
    assert paper.stray_numbers("Why: {{ warning: fall.odds_ratio_adjusted }}\n") == []


def test_a_warning_block_prints_the_ledgers_reason_and_an_unknown_one_is_an_error(tmp_path):
    study = small_study(tmp_path)
    entries = ledger.read(ledger.results_path(study))
    assert paper.expand_warnings("{{ warning: fall.cluster_sd }}", entries, "x") == NOT_ESTIMATED
    with pytest.raises(StudyError, match="'warning: fall.fisher': the entry has no warning"):
        paper.expand_warnings("{{ warning: fall.fisher }} {{ warning: nope }}", entries, "x")


def test_a_section_to_write_does_not_answer_its_item():
    text = textwrap.dedent("""\
        # Abstract {#abstract}
        ## Problem description {#problem .to-write}
        ## Specific aims {#aims}
        """)
    table = paper.checklist(text, generic=True)
    assert "| 3. Problem description | Nature and significance of the local problem. | Not answered | the whole " \
           "item; to write: [Problem description](manuscript.html#problem) |" in table
    assert "[Specific aims](manuscript.html#aims)" in table
    with pytest.raises(StudyError, match="sections not in the manuscript"):
        paper.checklist(text)  # the reference's mapping stays strict
