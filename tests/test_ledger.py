"""The results ledger: recording, fragments merged, and two ledgers compared as numbers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis import ledger
from analysis.config import load_study
from analysis.errors import StudyError


@pytest.fixture
def study(write_study):
    return load_study(write_study())


def tidy_row(**values) -> pd.DataFrame:
    row = {"term": "odds_ratio", "estimate": 0.0855, "std_error": None, "statistic": None, "p_value": 1.2e-13,
           "conf_low": 0.0437, "conf_high": 0.1672, "method": "Odds ratio, Woolf 95% CI", "n": 209, "warnings": ""}
    row.update(values)
    return pd.DataFrame([row])


def test_a_tidy_row_becomes_an_entry_with_its_provenance(study):
    book = ledger.Ledger(study, "03_primary")
    entry = book.record("discharge_error.odds_ratio", tidy_row(), "Odds ratio of an error at discharge")
    assert (entry.estimate, entry.conf_low, entry.conf_high, entry.n) == (0.0855, 0.0437, 0.1672, 209)
    assert entry.method == "Odds ratio, Woolf 95% CI" and entry.warnings == []
    assert entry.provenance.notebook == "03_primary" and entry.provenance.cell is None  # not inside IPython


def test_values_are_stored_to_twelve_significant_digits_and_nan_as_missing(study):
    book = ledger.Ledger(study, "x")
    entry = book.record("a", tidy_row(estimate=1 / 3, conf_low=float("nan")), "a third")
    assert entry.estimate == 0.333333333333 and entry.conf_low is None


def test_an_infinite_value_or_a_repeated_name_is_refused(study):
    book = ledger.Ledger(study, "x")
    with pytest.raises(ValueError, match="infinite"):
        book.record("a", float("inf"), "infinite")
    book.record("b", 1.0, "one")
    with pytest.raises(ValueError, match="recorded twice"):
        book.record("b", 2.0, "two")


def test_warnings_text_becomes_a_list_of_sentences(study):
    entry = ledger.Ledger(study, "x").record("a", tidy_row(warnings="Sparse cells.\nFew clusters."), "with warnings")
    assert entry.warnings == ["Sparse cells.", "Few clusters."]


def test_fragments_merge_into_one_sorted_results_file(study):
    first = ledger.Ledger(study, "03_primary")
    first.record("z.last", 1.0, "last")
    first.record("a.first", 2.0, "first", published={"estimate": 2.1, "source": "Table 4"})
    first.save()
    second = ledger.Ledger(study, "04_secondary")
    second.record("m.middle", 3, "middle", n=10)
    second.save()
    payload = json.loads(ledger.merge(study).read_text())
    assert list(payload["entries"]) == ["a.first", "m.middle", "z.last"]
    assert payload["synthetic"] is True
    assert payload["entries"]["a.first"]["published"] == {"estimate": 2.1, "source": "Table 4"}
    entries = ledger.read(ledger.results_path(study))
    assert entries["m.middle"].n == 10 and entries["m.middle"].provenance.notebook == "04_secondary"


def test_the_same_name_from_two_notebooks_is_an_error(study):
    for notebook in ("a", "b"):
        book = ledger.Ledger(study, notebook)
        book.record("same.name", 1.0, "x")
        book.save()
    with pytest.raises(StudyError, match="'same.name' is recorded by both a and b"):
        ledger.merge(study)


def entries(**estimates) -> dict:
    provenance = {"notebook": "n", "parameters_sha256": "p", "data_sha256": "d"}
    return {name: ledger.Entry(description=name, estimate=value, provenance=provenance, method="m")
            for name, value in estimates.items()}


def test_compare_uses_relative_and_absolute_tolerances():
    # |1.0000009 - 1| = 9e-7 <= 1e-9 + 1e-6 * 1: equal; |1.000002 - 1| = 2e-6 > 1.000001e-6: different
    assert ledger.compare(entries(a=1.0), entries(a=1.0000009)).empty
    diff = ledger.compare(entries(a=1.0), entries(a=1.000002))
    assert diff.loc[0, "field"] == "estimate" and diff.loc[0, "abs_diff"] == pytest.approx(2e-6)
    assert diff.loc[0, "rel_diff"] == pytest.approx(2e-6)
    # near zero only the absolute tolerance counts
    assert ledger.compare(entries(a=0.0), entries(a=5e-10)).empty
    assert len(ledger.compare(entries(a=0.0), entries(a=5e-10), atol=1e-10)) == 1


def test_compare_reports_every_difference_missing_and_extra_entries():
    expected = entries(a=1.0, b=2.0, gone=3.0)
    actual = entries(a=1.5, b=2.0, new=4.0)
    actual["b"] = actual["b"].model_copy(update={"method": "other", "p_value": 0.5})
    diff = ledger.compare(expected, actual)
    problems = {(row.name, row.field): row.problem for row in diff.itertuples(index=False)}
    assert problems == {
        ("a", "estimate"): "differs beyond rtol=1e-06, atol=1e-09",
        ("b", "p_value"): "missing on one side",
        ("b", "method"): "text differs",
        ("gone", "entry"): "missing from the rebuilt ledger",
        ("new", "entry"): "not in the committed ledger",
    }


def test_written_files_get_the_usual_permissions_not_owner_only(study):
    import os
    import stat

    book = ledger.Ledger(study, "x")
    book.record("a", 1.0, "one")
    mode = stat.S_IMODE(book.save().stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
