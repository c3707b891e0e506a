"""The results ledger: recording, fragments merged, and two ledgers compared as numbers."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis import ledger, stats
from analysis.analyses.results import named
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
    entry = book.record("a", tidy_row(estimate=1 / 3, std_error=2 / 3, statistic=float("nan"), df=207.123456789012345,
                                      conf_low=float("nan")), "a third")
    assert (entry.estimate, entry.std_error, entry.df) == (0.333333333333, 0.666666666667, 207.123456789)
    assert entry.conf_low is None and entry.statistic is None


def test_a_row_without_a_df_column_stores_no_df(study):
    # the tidy frames gained `df` after ledgers were first written; a row without it is still a row
    entry = ledger.Ledger(study, "x").record("a", tidy_row(), "no df column")
    assert entry.df is None


def test_a_chi_square_test_keeps_its_statistic(study):
    # R: chisq.test(matrix(c(66, 35, 15, 93), 2), correct = FALSE). The 2x2 table, totals in the margins:
    #               before  after
    #   event           66     15  |  81
    #   no event        35     93  | 128
    #                  101    108  | 209
    # For a 2x2 table X^2 = N (ad - bc)^2 / (r1 r2 c1 c2), with ad - bc = 66 * 93 - 15 * 35 = 6138 - 525 = 5613:
    # X^2 = 209 * 5613^2 / (81 * 128 * 101 * 108) = 6584705721 / 113094144 = 58.2232243696...
    # and on 1 df its p-value is P(Z^2 > X^2) = erfc(sqrt(X^2 / 2)) = 2.34000243242e-14.
    chi2 = 209 * 5613**2 / (81 * 128 * 101 * 108)
    result = stats.chi2_test(66, 101, 15, 108)
    entry = ledger.Ledger(study, "x").record("acceptance.chi2", result, "chi-square test")
    assert entry.statistic == pytest.approx(chi2, rel=1e-11)
    assert entry.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-9)
    assert entry.estimate is None and entry.std_error is None and entry.n == 209
    # 1 df once the tidy frames carry a `df` column; until then the degrees of freedom are in `method`
    assert entry.df == (1 if "df" in result.columns else None)


def test_model_rows_recorded_from_a_results_frame_keep_their_standard_errors(study):
    # A logistic regression of the same 2x2 table on `after` is saturated: its coefficient is the log
    # odds ratio, log(15 * 35 / (66 * 93)) = log(525 / 6138), with Woolf's standard error
    # sqrt(1/66 + 1/35 + 1/15 + 1/93) = 0.348055..., and z = log OR / SE = -7.0646 on the log scale.
    patients = pd.DataFrame({"error": [1] * 66 + [0] * 35 + [1] * 15 + [0] * 93, "after": [0] * 101 + [1] * 108})
    fit = stats.logistic_regression(patients, "error ~ after")
    book = ledger.Ledger(study, "x")
    book.record_frame(named(fit, "error", {"after": ("odds_ratio", "Odds ratio, after vs before")}))
    entry = book.get("error.odds_ratio")
    log_or, se = math.log(525 / 6138), math.sqrt(1 / 66 + 1 / 35 + 1 / 15 + 1 / 93)
    assert entry.estimate == pytest.approx(525 / 6138, rel=1e-9)
    # statsmodels takes the standard error from the last IRLS step's weights: Woolf's to about 3e-7
    assert entry.std_error == pytest.approx(se, rel=1e-6)
    assert entry.statistic == pytest.approx(log_or / se, rel=1e-6)
    # and the stored numbers are the row's own, to the ledger's 12 significant digits
    row = fit.set_index("term").loc["after"]
    assert (entry.std_error, entry.statistic) == (float(f"{row.std_error:.12g}"), float(f"{row.statistic:.12g}"))


def test_every_field_survives_save_merge_and_read(study):
    book = ledger.Ledger(study, "x")
    recorded = book.record("a", tidy_row(std_error=0.3481, statistic=-7.06, df=207.5, warnings="Sparse cells."),
                           "every field", published={"estimate": 0.0855, "p_value": 0.001, "source": "Table 2"})
    book.save()
    ledger.merge(study)
    stamped = recorded.provenance.model_copy(update={"data_sha256": ledger.derived_data_sha256(study)})
    expected = recorded.model_copy(update={"provenance": stamped})
    assert ledger.read(ledger.results_path(study)) == {"a": expected}
    assert (expected.std_error, expected.statistic, expected.df) == (0.3481, -7.06, 207.5)  # not lost on the way
    assert ledger.read_fragments(study, ["x"]) == {"a": expected}
    # the comparison itself finds nothing between what was recorded and what was read back
    assert ledger.compare({"a": expected}, ledger.read(ledger.results_path(study))).empty


def test_a_ledger_written_before_std_error_statistic_and_df_still_reads(tmp_path):
    path = tmp_path / "results.json"
    old = {"description": "old", "estimate": 0.5, "n": 10, "method": "m", "warnings": [],
           "provenance": {"notebook": "n", "cell": None, "parameters_sha256": "p", "data_sha256": "d"}}
    path.write_text(json.dumps({"study": "s", "title": "t", "synthetic": True, "entries": {"a": old}}))
    entry = ledger.read(path)["a"]
    assert (entry.estimate, entry.std_error, entry.statistic, entry.df) == (0.5, None, None, None)


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
        ("b", "method"): "differs (compared exactly)",
        ("gone", "entry"): "missing from the rebuilt ledger",
        ("new", "entry"): "not in the committed ledger",
    }


def test_compare_reports_every_field_of_an_entry():
    provenance = {"notebook": "n", "cell": "c", "parameters_sha256": "p", "data_sha256": "d"}
    published = {"estimate": 1.0, "conf_low": 0.5, "conf_high": 2.0, "p_value": 0.01, "source": "Table 2"}
    numbers = dict(estimate=1.0, std_error=0.1, statistic=2.0, df=1.0, p_value=0.05, conf_low=0.8, conf_high=1.2, n=9)
    old = ledger.Entry(description="d", method="m", warnings=["w"], published=published, provenance=provenance,
                       **numbers)
    new = ledger.Entry(
        description="d2", method="m2", warnings=["w2"],
        published={key: value * 2 for key, value in published.items() if key != "source"} | {"source": "Table 3"},
        provenance={key: value + "2" for key, value in provenance.items()},
        **{key: value * 2 for key, value in numbers.items()},
    )
    fields = set(ledger.compare({"a": old}, {"a": new})["field"])
    # written out rather than taken from the schema: a field the comparison skipped would be missing here
    assert fields == {
        "description", "estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high", "n",
        "method", "warnings", "published.estimate", "published.conf_low", "published.conf_high",
        "published.p_value", "published.source", "provenance.notebook", "provenance.cell",
        "provenance.parameters_sha256", "provenance.data_sha256",
    }


def test_compare_holds_published_values_to_equality_and_reports_one_missing_whole():
    old, new = entries(a=1.0, b=1.0), entries(a=1.0, b=1.0)
    old["a"] = old["a"].model_copy(update={"published": ledger.Published(estimate=0.0855, source="Table 4")})
    # 1e-8 apart: within the numbers' tolerance (1e-9 + 1e-6 * 0.0855), but a published value is copied from a
    # paper, so any change is an edit
    new["a"] = new["a"].model_copy(update={"published": ledger.Published(estimate=0.08550001, source="Table 4")})
    old["b"] = old["b"].model_copy(update={"published": ledger.Published(estimate=2.0, source="Table 4")})
    diff = ledger.compare(old, new)
    problems = [(row.name, row.field, row.expected, row.actual, row.problem) for row in diff.itertuples(index=False)]
    assert problems == [
        ("a", "published.estimate", 0.0855, 0.08550001, "differs (compared exactly)"),
        ("b", "published", {"estimate": 2.0, "source": "Table 4"}, None, "missing on one side"),
    ]


def test_written_files_get_the_usual_permissions_not_owner_only(study):
    import os
    import stat

    book = ledger.Ledger(study, "x")
    book.record("a", 1.0, "one")
    mode = stat.S_IMODE(book.save().stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
