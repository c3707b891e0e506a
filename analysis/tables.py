"""Tables the paper shows, exported as CSV beside the ledger (`<output>/tables/<name>.csv`).

A spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage return as a formula (a team named
`=HYPERLINK(...)`, say). As OWASP advises for CSV, `export` writes such a text cell, and such a header, with a
single quote in front, which the spreadsheet shows as text; a number is never quoted (-0.11 stays -0.11, and so
does a number held as text). `read` takes the quote off again, so that the figures and the paper get the text
as it was.

When the study's disclosure rules apply (analysis/disclosure.py), `export` writes the table as it may leave the
TRE: a small count, and what it could be worked back from, is the profile's marker.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from analysis import disclosure
from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative

# 10 significant digits: every reported digit, none of the last-bit noise between machines
FLOAT_FORMAT = "%.10g"
# A text a spreadsheet would run, after any quotes of its own: one that starts with a quote is quoted too when
# a formula follows, so that taking one quote off on reading gives back exactly what was written.
FORMULA = re.compile(r"'*[=+\-@\t\r]")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def tables_dir(study: Study) -> Path:
    return study.output_dir / "tables"


def _quote(value):
    if isinstance(value, str) and FORMULA.match(value) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def _missing(value) -> bool:
    return isinstance(value, float) and value != value


def _unquote(value):
    if isinstance(value, str) and value.startswith("'") and FORMULA.match(value, 1):
        return value[1:]
    return value


def unquote(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as read from its CSV, with the quote `export` put before a formula taken off its text cells and
    header (numbers, dates and empty cells are left as they are)."""
    return frame.map(_unquote).rename(columns=_unquote)


def export(study: Study, name: str, frame: pd.DataFrame) -> Path:
    """Write a table as CSV; when the study's disclosure rules apply, as it may leave the TRE (small counts,
    and what they could be worked back from, shown as the profile's marker), with a record of what was
    hidden for the release's SDC report."""
    path = tables_dir(study) / f"{name}.csv"
    rules = disclosure.profile(study)
    if rules is not None:
        frame, report = disclosure.protect_table(name, frame, rules, disclosure.hidden_entries(study))
        # a protected column holds markers and numbers together (object): format its numbers as a float
        # column's would be, so that the CSV reads the same with the rules on as off
        frame = frame.map(lambda v: None if _missing(v) else FLOAT_FORMAT % v if isinstance(v, float) else v)
    frame = frame.map(_quote).rename(columns=_quote)
    # csv quotes a field that holds the line terminator ("\n"), not one with a bare carriage return, which
    # would split its row on reading: a table with one has every field quoted
    texts = [*frame.columns, *frame.to_numpy().ravel()]
    quoting = csv.QUOTE_ALL if any(isinstance(t, str) and "\r" in t for t in texts) else csv.QUOTE_MINIMAL
    with atomic_write(path, encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, float_format=FLOAT_FORMAT, lineterminator="\n", quoting=quoting)
    if rules is not None:
        disclosure.write_record(study, f"table.{name}", {
            "output": relative(path), "kind": "table", "rules": disclosure.rules_applied(rules),
            "suppressed": report.suppressed, "review": report.review, "status": report.status})
    return path


def read(study: Study, name: str) -> pd.DataFrame:
    path = tables_dir(study) / f"{name}.csv"
    if not path.is_file():
        raise StudyError(f"{relative(path)}: table '{name}' has not been exported; run the study's notebooks first")
    return unquote(pd.read_csv(path))
