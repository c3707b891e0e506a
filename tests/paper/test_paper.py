"""The manuscript: every number from the ledger, every block resolvable, built as HTML and DOCX."""

from __future__ import annotations

import re
import zipfile

import pytest

from analysis import paper
from analysis.config import load_study
from analysis.errors import StudyError


@pytest.fixture(scope="module")
def reference():
    return load_study("reference")


def test_the_manuscript_holds_no_number_typed_by_hand():
    assert paper.stray_numbers(paper.SOURCE.read_text(encoding="utf-8")) == []


def test_a_typed_number_is_caught_in_text_and_in_captions_but_not_in_conventions():
    text = (
        "Errors fell from 66/101 to {{ discharge_error.proportion_after | frac }}.\n"
        "{{ figure: forest | Patients aged 65 or over, {{ design.mai_min_age | int }} }}\n"
        "As published [@grimes2014] {#results} with 95% CI, SQUIRE 2.0, 3-sigma limits and lme4.\n"
        "{{ table: table1 | Characteristics }}\n"
    )
    assert paper.stray_numbers(text) == ["Errors fell from 66/101 to .", "Patients aged 65 or over,"]


def test_every_placeholder_names_an_entry_of_the_ledger(reference):
    text = paper.render_manuscript(reference)
    assert "{{" not in text and "}}" not in text


def test_an_unknown_entry_or_block_is_an_error_naming_it(reference, monkeypatch, tmp_path):
    source = tmp_path / "manuscript.md"
    source.write_text("{{ discharge_error.no_such_entry | est }} and {{ ref: no_such_figure }}\n")
    monkeypatch.setattr(paper, "SOURCE", source)
    with pytest.raises(StudyError, match="'discharge_error.no_such_entry' is not in the ledger"):
        paper.render_manuscript(reference)
    source.write_text("See {{ ref: no_such_figure }}.\n")
    with pytest.raises(StudyError, match="'ref: no_such_figure' has no table or figure block"):
        paper.render_manuscript(reference)


def test_tables_and_figures_are_numbered_in_order_and_referenced(reference):
    text = paper.render_manuscript(reference)
    captions = re.findall(r"^: (Table \d+)\.", text, flags=re.M)
    figures = re.findall(r"^!\[(Figure \d+)\.", text, flags=re.M)
    assert captions == [f"Table {i}" for i in range(1, len(captions) + 1)] and len(captions) == 3
    assert figures == [f"Figure {i}" for i in range(1, 7)]
    assert "[Figure 2](#fig-forest)" in text and "[Table 3](#tbl-primary_outcomes)" in text


def test_the_build_writes_html_and_docx_with_real_tables_figures_and_references(reference, tmp_path):
    lines = []
    written = {p.name for p in paper.build(reference, out=tmp_path, echo=lines.append)}
    assert {"manuscript.html", "manuscript.docx", "manuscript.md", "squire-checklist.md"} <= written
    assert any("PDF" in line for line in lines) or "manuscript.pdf" in written  # built, or its absence said
    html = (tmp_path / "manuscript.html").read_text(encoding="utf-8")
    assert html.count("<table") == 3 and html.count("<figcaption") == 6
    assert html.count("data:image/png;base64") == 6  # figures embedded: the file stands alone
    assert html.count('class="csl-entry"') == len(re.findall(r"^@\w+\{", (paper.PAPER / "references.bib").read_text(),
                                                                re.M))
    docx = zipfile.ZipFile(tmp_path / "manuscript.docx")
    document = docx.read("word/document.xml").decode()
    assert document.count("<w:tbl>") == 3
    assert len([n for n in docx.namelist() if n.startswith("word/media/")]) == 6


def test_an_unchanged_paper_is_not_rebuilt_and_a_changed_ledger_rebuilds_it(reference, tmp_path, monkeypatch):
    assert paper.build(reference, out=tmp_path, echo=lambda line: None)
    lines = []
    assert paper.build(reference, out=tmp_path, echo=lines.append) == []
    assert lines == [f"paper up to date: {tmp_path}"]
    assert paper.build(reference, out=tmp_path, force=True, echo=lambda line: None)
    monkeypatch.setattr(paper, "build_key", lambda study: "another ledger")
    assert paper.build(reference, out=tmp_path, echo=lambda line: None)


def test_the_squire_checklist_maps_every_item_of_the_guideline(reference):
    table = paper.checklist(paper.render_manuscript(reference))
    rows = [line for line in table.splitlines() if re.match(r"\| \d+\. ", line)]
    assert len(rows) == 18  # SQUIRE 2.0 has 18 items
    assert "18 of 18 items answered" in table
    costs = next(row for row in rows if row.startswith("| 15. Interpretation"))
    assert "[Interpretation](manuscript.html#interpretation)" in costs and costs.endswith("costs not assessed |")


def test_an_item_no_section_answers_is_marked_not_answered(monkeypatch, tmp_path):
    spec = tmp_path / "squire.yml"
    spec.write_text("title: t\nnote: n\nitems:\n  - {item: '1. Title', text: x, sections: [abstract]}\n"
                    "  - {item: '18. Funding', text: y}\n")
    monkeypatch.setattr(paper, "CHECKLIST", spec)
    table = paper.checklist("# Abstract {#abstract}\n")
    assert "| 1. Title | x | [Abstract](manuscript.html#abstract) |  |" in table
    assert "| 18. Funding | y | Not answered | the whole item |" in table
    assert "1 of 2 items answered" in table


def test_a_checklist_section_missing_from_the_manuscript_is_an_error(monkeypatch, tmp_path):
    spec = tmp_path / "squire.yml"
    spec.write_text("title: t\nnote: n\nitems:\n  - {item: '1. Title', text: x, sections: [no-such-section]}\n")
    monkeypatch.setattr(paper, "CHECKLIST", spec)
    with pytest.raises(StudyError, match="sections not in the manuscript: no-such-section"):
        paper.checklist("# Abstract {#abstract}\n")
