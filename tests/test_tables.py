"""Exported tables: a text cell never runs as a spreadsheet formula, and the pipeline reads back what it wrote."""

from __future__ import annotations

import pandas as pd

from analysis import tables
from analysis.config import load_study

# Text cells a spreadsheet would run as a formula when the CSV is opened (OWASP, "CSV Injection"): each starts
# with =, +, -, @ or a tab, the last one after a quote of its own (reading back takes one quote off: it must give
# back the author's quote too).
FORMULAS = ['=HYPERLINK("http://example.org","x")', "+SUM(A1:A2)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tTAB",
            "'=quoted by its author"]
# texts that stay as they are: a name, a quote before no formula, a number held as text, a risk difference
PLAIN = ["Cardiology", "'a quote", "-0.11", "+5", "31.6% (95% CI 25.8% to 35.3%)"]


def test_a_text_cell_that_would_run_as_a_formula_is_written_quoted_and_read_back_as_it_was(write_study):
    study = load_study(write_study())
    texts = [*FORMULAS, *PLAIN, "-31.6% (95% CI -41.3% to -20.9%)", None]
    frame = pd.DataFrame({"=team": texts, "estimate": [-0.11 * (i + 1) for i in range(len(texts))],
                          "n": range(len(texts))})
    path = tables.export(study, "per_team", frame)
    lines = path.read_text(encoding="utf-8").splitlines()
    # OWASP's advice: a single quote in front, which the spreadsheet shows as text and does not run; a number,
    # negative or not, is never quoted (the estimate column, and "-0.11" held as text)
    assert lines == ["'=team,estimate,n",
                     '"\'=HYPERLINK(""http://example.org"",""x"")",-0.11,0',
                     "'+SUM(A1:A2),-0.22,1",
                     "'-2+3+cmd|' /C calc'!A0,-0.33,2",
                     "'@SUM(A1),-0.44,3",
                     "'\tTAB,-0.55,4",
                     "''=quoted by its author,-0.66,5",
                     "Cardiology,-0.77,6",
                     "'a quote,-0.88,7",
                     "-0.11,-0.99,8",
                     "+5,-1.1,9",
                     "31.6% (95% CI 25.8% to 35.3%),-1.21,10",
                     "'-31.6% (95% CI -41.3% to -20.9%),-1.32,11",
                     ",-1.43,12"]
    # the figures read the table through tables.read, the paper through tables.unquote: the names, not the quotes
    for again in (tables.read(study, "per_team"),
                  tables.unquote(pd.read_csv(path, dtype=str, keep_default_na=False))):
        assert list(again.columns) == ["=team", "estimate", "n"]
        assert again["=team"].iloc[:-1].tolist() == texts[:-1]
    assert tables.read(study, "per_team")["estimate"].tolist()[:3] == [-0.11, -0.22, -0.33]


def test_a_carriage_return_in_a_text_keeps_its_row(write_study):
    """A spreadsheet runs a text after a carriage return too; the csv module leaves such a field unquoted, and the
    row came back split in two."""
    study = load_study(write_study())
    frame = pd.DataFrame({"team": ["\r=CR", "a\rb", "plain"], "n": [1, 2, 3]})
    path = tables.export(study, "per_team", frame)
    assert path.read_bytes().decode().split("\n")[1].startswith("\"'\r=CR\"")
    again = tables.read(study, "per_team")
    assert again["team"].tolist() == ["\r=CR", "a\rb", "plain"] and again["n"].tolist() == [1, 2, 3]
