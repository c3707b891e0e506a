"""Nothing from data or a study file acts as Markdown or HTML in a manuscript, and pandoc reads no file but the
build's own figures: a cluster, a label, a warning or a table cell prints as the text it is."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pandas as pd
import pypandoc
import pytest
import yaml
from PIL import Image

from analysis import paper, tables
from analysis.config import load_study
from analysis.errors import StudyError
from analysis.paper import safe

PROVENANCE = {"notebook": "03_primary", "parameters_sha256": "p", "data_sha256": "d"}
SECRET = "TOP-SECRET-CONTENT"
# a cluster (team) that would make pandoc embed a local file and run a script on error
TEAM = '<img src="/etc/hostname" onerror="alert(1)">'
SCRIPT = "<script>alert(1)</script>"  # a period label: it emptied the table header it was in
FORMULA = '=HYPERLINK("http://example.org","x")'  # written to the CSV with a quote in front
# Markdown in a label: a heading at the start of its paragraph, emphasis, a link, code, a cell's bar, a placeholder
LABEL = "# Fall *during* _the_ [stay](x) `now` a|b {{ flow.screened.all | int }}"


def _entry(description: str, **numbers) -> dict:
    return {"description": description, "provenance": PROVENANCE, **numbers}


def hostile_study(tmp_path):
    """A study whose every text a reader could type holds HTML or Markdown, with a ledger, its tables and a figure
    (no notebook run), and a file outside the repository that its texts name."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    (tmp_path / "patients.csv").write_text("patient_id,admission_date,team,fell\n")
    spec = {
        "title": f"Falls {SCRIPT}",
        "synthetic": True,
        "description": f'Made up. ![leak]({secret}) <img src="{secret}"> [link](file://{secret})',
        "tables": {"patients": {"file": str(tmp_path / "patients.csv"), "key": "patient_id", "columns": {
            "patient_id": {"type": "string"}, "admission_date": {"type": "date"},
            "team": {"type": "string", "label": "Team"}, "fell": {"type": "boolean", "label": "Fell"}}}},
        "period": {"column": "admission_date",
                   "before": {"label": SCRIPT, "start": "2020-01-01", "end": "2020-06-30"},
                   "after": {"label": "After | checklist", "start": "2020-08-01", "end": "2020-12-31"}},
        "clusters": {"primary": "team"},
        "outcomes": {"fall": {"type": "binary", "table": "patients", "column": "fell", "label": LABEL,
                              "analyses": {"logistic": False, "gee": False, "alternative_clusters": False,
                                           "time_series": False, "leave_one_cluster_out": False, "nnt": False}}},
        "seeds": {"models": 1},
        "outputs": {"folder": str(tmp_path / "out")},
    }
    path = tmp_path / "hostile.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    study = load_study(path)
    warning = f"Not estimated: only the team {TEAM} had falls; see {SCRIPT} and ![leak]({secret})."
    entries = {
        "flow.screened.all": _entry("screened", estimate=40, n=40),
        "flow.included.before": _entry("included before", estimate=18, n=18),
        "flow.included.after": _entry("included after", estimate=20, n=20),
        "cohort.smd.largest": _entry("largest SMD", estimate=0.3),
        "fall.proportion_before": _entry("before", estimate=0.5, conf_low=0.29, conf_high=0.71, n=18),
        "fall.proportion_after": _entry("after", estimate=0.25, conf_low=0.11, conf_high=0.47, n=20),
        "fall.fisher": _entry("fisher", p_value=0.18, n=38),
        "fall.odds_ratio_mixed": _entry("mixed or", method="not estimated", warnings=[warning]),
    }
    (study.output_dir).mkdir()
    (study.output_dir / "results.json").write_text(json.dumps({"study": "hostile", "title": "t", "synthetic": True,
                                                               "entries": entries}))
    # the tables as the notebooks export them: the period labels are headers, the teams are cells
    tables.export(study, "flow", pd.DataFrame({"Stage": ["included in the analysis"], SCRIPT: [18],
                                               "After | checklist": [20], "Both periods": [38]}))
    tables.export(study, "table1", pd.DataFrame({
        "Variable": ["Team, n (%)"] * 4, "Level": [TEAM, FORMULA, "a | b", "# not a heading"],
        "Overall": ["9 (22.5)"] * 4, SCRIPT: ["4 (22.2)"] * 4, "After | checklist": ["5 (25.0)"] * 4,
        "SMD": [0.3, None, None, None]}))
    (study.output_dir / "figures").mkdir()
    Image.new("RGB", (40, 20), "white").save(study.output_dir / "figures" / "proportions.png")
    return study, secret


class Page(HTMLParser):
    """The tags with their attributes, and the text a reader sees (entities decoded)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())  # pandoc wraps long lines


def assert_nothing_from_outside(html: str, secret) -> None:
    page = Page(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "embed", "iframe", "object")]
    assert not [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    # the only embedded files are the figures (PNG): no data URI of a file the data named
    assert set(re.findall(r"data:([^;,\"']*)", html)) <= {"image/png"}
    content = secret.read_bytes()
    for encoded in (content, base64.b64encode(content), content.hex().encode()):
        assert encoded.decode() not in html
    assert "/etc/hostname" not in {attrs.get("src") for _, attrs in page.tags}


def test_hostile_texts_print_literally_in_the_generated_manuscript(tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "SOURCES", tmp_path / "paper")  # no adopted source: the generated one
    study, secret = hostile_study(tmp_path)
    paper.build(study, out=tmp_path / "build", echo=lambda line: None)
    html = (tmp_path / "build" / "manuscript.html").read_text(encoding="utf-8")
    assert_nothing_from_outside(html, secret)
    page = Page(html)
    for text in (TEAM, SCRIPT, "After | checklist", LABEL, "a | b", "# not a heading", f"Falls {SCRIPT}",
                 f"![leak]({secret})", f"only the team {TEAM} had falls"):
        assert text in page.text, text
    # the CSV's quote against spreadsheet formulas is taken off: the paper shows the name
    assert FORMULA in page.text and "'" + FORMULA not in page.text
    # the period label fills its header cells (it emptied them); a bar stays inside its cell
    headers = [" ".join(t.split()) for t in re.findall(r"<th[^>]*>(.*?)</th>", html, re.S)]
    assert headers.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # flow, Table 1, results table
    assert headers.count("After | checklist") == 3
    # nothing from the label became a heading, emphasis, a link, code or a number
    assert "<em>during</em>" not in html and "<code>now</code>" not in html and 'href="x"' not in html
    assert not re.search(r"<h\d[^>]*>\s*Fall\b(?!s)", html)  # the label at the start of its paragraph
    assert "{{ flow.screened.all | int }}" in page.text


def test_the_authors_markdown_stays_markdown_and_pandoc_reads_only_the_figures_folder(tmp_path, monkeypatch):
    own = tmp_path / "paper"
    own.mkdir()
    monkeypatch.setattr(paper, "SOURCES", own)
    study, secret = hostile_study(tmp_path)
    # an image named by a relative path, in the working directory: pandoc looked for it there and in the
    # repository; now only in the figures folder
    (secret.parent / "outside.png").write_bytes(secret.read_bytes())
    monkeypatch.chdir(secret.parent)
    (own / f"{study.name}.md").write_text(
        "# Abstract {#abstract}\n\n**Bold** and *emphasis* by the author. "
        "Why: {{ warning: fall.odds_ratio_mixed }}\n\n![an image](outside.png)\n\n"
        "{{ table: flow | Flow *of* the patients. }}\n\n{{ figure: proportions | The *figure*. }}\n",
        encoding="utf-8")
    paper.build(study, out=tmp_path / "build", echo=lambda line: None)
    html = (tmp_path / "build" / "manuscript.html").read_text(encoding="utf-8")
    assert_nothing_from_outside(html, secret)
    assert "<strong>Bold</strong>" in html and "<em>emphasis</em>" in html and "<em>of</em>" in html
    assert html.count("data:image/png;base64") == 1  # the figure, from the figures folder
    assert f"only the team {TEAM} had falls" in Page(html).text


@pytest.mark.parametrize("text", [
    "# heading", "## heading", "- item", "+ item", "* item", "1. item", "2) item", "(3) item", "a) item",
    "A.  item", "iv. item", "#. item", "(@) example", "> quote", ": definition", "::: div", "Table: caption",
    "---", "- - -", "===", "    code", "\tcode", "~~~", "```", "| line", "<!-- comment -->", "[^1]: note",
    "[x]: http://example.org", "%title", "*a* **b** _c_ __d__", "[link](x) ![image](y) <http://z>",
    "`code` ``more``", "$x$ ^sup^ ~sub~ ~~strike~~", "@grimes2014 [@grimes2014]", "&amp; &lt;b&gt; \\*",
    "{{ x | est }} {#id} [span]{.class}", "a\nb", "trailing backslash \\", "x <b>bold</b> y", '"quoted"',
    "-0.11", "p<0.001", "e.g. this", "2011-02-01 to 2012-01-31",
])
def test_data_prints_literally_wherever_it_stands(text):
    """A text from data, escaped, reads the same in HTML at the start of the document and of a paragraph, in a
    list item, inside a sentence and in a table cell (where a bar does not split the cell)."""
    escaped = safe.markdown(text)
    html = pypandoc.convert_text(f"{escaped}\n\n- {escaped}\n\nBefore {escaped} after\n\n"
                                 f"| head | x |\n|---|---|\n| {escaped} | x |\n", "html", format="markdown")
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= {"p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"}, html
    assert page.text.count(" ".join(text.split())) == 4, html
    assert html.count("<td") == 2, html


@pytest.mark.parametrize("text", ["age >= 18", "a `b` c", "`start", "{{ x | est }}", "line\nbreak"])
def test_a_code_span_holds_any_text(text):
    html = pypandoc.convert_text(f"In {safe.code(text)}.", "html", format="markdown")
    assert " ".join(text.split()) in Page(html).text
    # a placeholder inside a code span would still be filled from the ledger: it is written as escaped text
    assert ("<code>" in html) == ("{{" not in text) and "{{" not in safe.code(text)


def test_an_error_that_quotes_the_source_prints_only_printable_text(tmp_path, monkeypatch):
    """The check for typed numbers quotes the source's lines (a generated source's hold the study file's texts):
    an escape sequence, a bell or a direction override in them reached the terminal as it was."""
    own = tmp_path / "paper"
    own.mkdir()
    monkeypatch.setattr(paper, "SOURCES", own)
    study, _ = hostile_study(tmp_path)
    (own / f"{study.name}.md").write_text("Typed 12 \x1b[2J\u202eevil\x07.\n", encoding="utf-8")
    with pytest.raises(StudyError) as error:
        paper.render_manuscript(study)
    message = str(error.value)
    assert message.isprintable() and "Typed 12" in message and "\\x1b[2J\\u202eevil\\x07." in message
