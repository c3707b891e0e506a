"""Disclosure control: profiles, secondary suppression (checked by solving for the hidden cells), the
exported tables and the ledger entries of a study whose rules are on."""

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from analysis import disclosure
from analysis.errors import StudyError

ACRO = disclosure.PROFILES["acro"]


def _bounds(counts: np.ndarray, hidden: np.ndarray, rows=True, columns=True):
    """The least and most each hidden cell can be, given the shown cells, the known totals and counts >= 0:
    what an attacker who sees the table and its margins can work out (linear programming, written here
    apart from `secondary_suppression`). `rows`/`columns`: True (every total known), False (none), or the
    labels of the totals that were hidden."""
    exists = ~np.isnan(counts)
    unknowns = [tuple(c) for c in np.argwhere(hidden & exists)]
    lines = []
    if rows is not False:
        lines += [[(i, j) for j in range(counts.shape[1])] for i in range(counts.shape[0])
                  if rows is True or i not in rows]
    if columns is not False:
        lines += [[(i, j) for i in range(counts.shape[0])] for j in range(counts.shape[1])
                  if columns is True or j not in columns]
    a, b = [], []
    for line in lines:
        cells = [c for c in line if exists[c]]
        a.append([1.0 if u in cells else 0.0 for u in unknowns])
        b.append(sum(counts[c] for c in cells if hidden[c]))
    result = {}
    for k, cell in enumerate(unknowns):
        objective = np.zeros(len(unknowns))
        objective[k] = 1
        low = linprog(objective, A_eq=a, b_eq=b, bounds=(0, None)).fun
        most = linprog(-objective, A_eq=a, b_eq=b, bounds=(0, None))
        high = np.inf if most.status == 3 else -most.fun  # 3: unbounded, no total holds it
        result[cell] = (low, high)
    return result


def _suppress(counts: np.ndarray, rules=ACRO, **totals):
    frame = pd.DataFrame(counts)
    primary = frame.map(lambda count: bool(disclosure.fails(count, rules))) & frame.notna()
    result = disclosure.secondary_suppression(frame, primary, rules, **totals)
    return primary.to_numpy(), result.cells.to_numpy(), result


def test_one_small_cell_in_a_two_by_two_takes_three_partners():
    # 6 before and 0 after, out of 121 and 112 (the severe harm counts): with all margins known, hiding 6
    # and 0 still leaves 115 and 112 to give them back; the whole table has to go
    counts = np.array([[6.0, 0.0], [115.0, 112.0]])
    primary, secondary, _ = _suppress(counts)
    assert primary.tolist() == [[True, True], [False, False]]
    assert secondary.tolist() == [[False, False], [True, True]]


def test_the_partner_is_the_smallest_shown_cell_of_the_line():
    counts = np.array([[3.0, 40.0, 12.0], [50.0, 60.0, 70.0], [20.0, 30.0, 25.0]])
    primary, secondary, _ = _suppress(counts)
    # row 0 takes 12 (smaller than 40); column 0 takes 20 (smaller than 50); then row 2 and column 2 hold
    # one hidden cell each, and take their smallest (25 closes both)
    assert primary.sum() == 1
    assert secondary[0, 2] and secondary[2, 0] and secondary[2, 2]
    assert secondary.sum() == 3


@pytest.mark.parametrize("seed", range(30))
def test_no_hidden_cell_can_be_recovered_from_the_margins(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 6, size=2))
    counts = rng.choice([0, 1, 3, 7, 9, 12, 15, 30, 80], size=shape).astype(float)
    primary, secondary, result = _suppress(counts)
    hidden = primary | secondary
    for k, line in enumerate(hidden):
        assert line.sum() != 1 or k in result.row_totals
    for k, line in enumerate(hidden.T):
        assert line.sum() != 1 or k in result.column_totals
    # a margin never has one hidden total, and every failing total is hidden
    assert len(result.row_totals) != 1 and len(result.column_totals) != 1
    for margin, hidden_totals in ((counts.sum(axis=1), result.row_totals), (counts.sum(axis=0), result.column_totals)):
        assert {k for k, t in enumerate(margin) if t < 10} <= set(hidden_totals)
    for (low, high) in _bounds(counts, hidden, result.row_totals, result.column_totals).values():
        assert high - low > 0.5, "a hidden cell is pinned down by the margins"


def test_a_cycle_needs_no_partner():
    # hidden (0,0), (0,1), (1,1), (1,2), (2,2), (2,0): every row and column holds two, and adding t to
    # (0,0), (1,1), (2,2) while taking it from the others keeps every total, so nothing is fixed
    counts = np.full((3, 3), 50.0)
    primary = np.zeros((3, 3), dtype=bool)
    for cell in [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 0)]:
        primary[cell] = True
    secondary = disclosure.secondary_suppression(pd.DataFrame(counts), pd.DataFrame(primary), ACRO).cells
    assert not secondary.to_numpy().any()
    assert all(high - low > 0.5 for low, high in _bounds(counts, primary).values())


def test_a_bridge_between_two_cycles_is_fixed_although_no_line_holds_one_hidden_cell():
    # two cycles, rows {0, 1} x columns {0, 1} and rows {2, 3} x columns {2, 3}, joined by (1, 2). Every line
    # holds two or three hidden cells, yet (1, 2) = (row 0 + row 1) - (column 0 + column 1) over the hidden
    # cells: the line rule alone would publish it. The linear-programming check must add a partner.
    counts = np.full((4, 4), 50.0)
    primary = np.zeros((4, 4), dtype=bool)
    for cell in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        primary[cell] = True
    low, high = _bounds(counts, primary)[(1, 2)]
    assert low == high == 50.0  # the attack works on the primary pattern
    secondary = disclosure.secondary_suppression(pd.DataFrame(counts), pd.DataFrame(primary), ACRO).cells
    assert secondary.to_numpy().sum() >= 1
    hidden = primary | secondary.to_numpy()
    assert all(high - low > 0.5 for low, high in _bounds(counts, hidden).values())


def test_a_monthly_series_with_one_small_month_hides_a_second_one():
    # months lie in one period each (NaN elsewhere); only the period totals are known
    counts = np.array([[12.0, np.nan], [4.0, np.nan], [15.0, np.nan], [np.nan, 20.0], [np.nan, 30.0]])
    primary, secondary, _ = _suppress(counts, row_totals=False)
    assert primary[1, 0] and secondary[0, 0] and secondary.sum() == 1
    assert all(high - low > 0.5 for low, high in _bounds(counts, primary | secondary, rows=False).values())


def test_a_line_with_nothing_left_to_hide_is_an_error():
    # a row of one cell whose total (30) is published: hiding the cell achieves nothing
    with pytest.raises(ValueError, match="no cell left to hide"):
        disclosure.secondary_suppression(pd.DataFrame([[30.0, np.nan]]), pd.DataFrame([[True, False]]), ACRO,
                                         row_totals=True, column_totals=False)


# ---------------------------------------------------------------------------------------------------
# Profiles


@pytest.mark.parametrize(("name", "count", "hidden"), [
    ("acro", 9, True), ("acro", 10, False), ("acro", 0, True),
    ("nhs_hes", 7, True), ("nhs_hes", 8, False), ("nhs_hes", 0, False), ("nhs_hes", 1, True),
    ("opensafely", 7, True), ("opensafely", 8, False), ("opensafely", 0, True),
])
def test_profiles_thresholds(name, count, hidden):
    assert bool(disclosure.fails(count, disclosure.PROFILES[name])) == hidden


@pytest.mark.parametrize(("name", "count", "shown"), [
    ("acro", 12, 12), ("nhs_hes", 12, 10), ("nhs_hes", 13, 15), ("opensafely", 22, 20),
    # numpy rounds half to even, as ACRO's round_table: 12.5 -> 10, 17.5 -> 20
    ("nhs_hes", 12.5, 10), ("nhs_hes", 17.5, 20)])
def test_profiles_rounding(name, count, shown):
    assert disclosure.round_count(count, disclosure.PROFILES[name]) == shown


class _Study:
    """The two fields `disclosure.profile` reads."""

    def __init__(self, synthetic, settings=None):
        from analysis.config import Disclosure

        self.synthetic, self.file = synthetic, "studies/x.yml"
        self.disclosure = None if settings is None else Disclosure(**settings)


def test_which_studies_the_rules_apply_to():
    assert disclosure.profile(_Study(True)) is None
    assert disclosure.profile(_Study(False)) == ACRO
    assert disclosure.profile(_Study(True, {"apply": True, "profile": "nhs_hes"})).name == "nhs_hes"
    tuned = disclosure.profile(_Study(False, {"profile": "opensafely", "safe_threshold": 11, "marker": "<11"}))
    assert (tuned.safe_threshold, tuned.marker, tuned.safe_round_base) == (11, "<11", 5)
    with pytest.raises(StudyError, match="cannot be switched off"):
        disclosure.profile(_Study(False, {"apply": False}))


# ---------------------------------------------------------------------------------------------------
# Exported tables


def test_levels_table_hides_small_counts_their_percentages_and_a_partner():
    levels = pd.DataFrame({"period": ["before"] * 3 + ["after"] * 3, "level": ["none", "moderate", "severe"] * 2,
                           "count": [60, 35, 6, 100, 12, 0], "percent": [59.4, 34.7, 5.9, 89.3, 10.7, 0.0]})
    out, report = disclosure.protect_table("levels", levels, ACRO)
    # the period's n (101, 112) is published: 6 alone would be 101 - 60 - 35, so 35 goes with it; the zero
    # alone would be 112 - 100 - 12, so 12 goes with it
    assert out["count"].tolist() == [60, "*", "*", 100, "*", "*"]
    assert out["percent"].tolist() == [59.4, "*", "*", 89.3, "*", "*"]
    assert out["level"].tolist() == levels["level"].tolist()
    assert {(s["row"], s["column"], s["rule"]) for s in report.suppressed} == {
        (2, "count", disclosure.THRESHOLD), (5, "count", disclosure.ZERO), (1, "count", disclosure.SECONDARY),
        (4, "count", disclosure.SECONDARY), *((k, "percent", "derived") for k in (1, 2, 4, 5))}
    assert report.status == disclosure.REVIEW


def test_formatted_outcome_rows_hide_the_whole_comparison():
    table = pd.DataFrame({"Outcome": ["Error at admission", "Potentially severe error"],
                          "Before": ["49/121 (40.5%)", "6/121 (5.0%)"], "After": ["10/112 (8.9%)", "0/112 (0.0%)"],
                          "Risk difference": ["-31.6% (95% CI -41.3% to -20.9%)", "-5.0% (95% CI -10.4% to -0.7%)"],
                          "p": ["p<0.001", "p=0.03"]})
    out, _ = disclosure.protect_table("primary", table, ACRO)
    assert out.iloc[0].tolist() == table.iloc[0].tolist()
    assert out.iloc[1].tolist() == ["Potentially severe error", "*", "*", "*", "*"]


def test_all_events_is_a_zero_count_too():
    # 62/62: everyone had it (no one without it is a zero cell)
    out, _ = disclosure.protect_table("t", pd.DataFrame({"a": ["62/62 (100.0%)", "40/62 (64.5%)"]}), ACRO)
    assert out["a"].tolist() == ["*", "40/62 (64.5%)"]


def test_monthly_table_gets_a_partner_and_keeps_its_labels():
    monthly = pd.DataFrame({"key": "harm", "month": ["2011-01", "2011-02", "2011-03", "2012-01", "2012-02"],
                            "month_index": range(5), "period": ["before"] * 3 + ["after"] * 2,
                            "events": [12, 4, 15, 20, 30], "n": [40, 41, 42, 43, 44],
                            "proportion": [0.3, 4 / 41, 15 / 42, 20 / 43, 30 / 44]})
    out, report = disclosure.protect_table("monthly", monthly, ACRO)
    assert out["events"].tolist() == ["*", "*", 15, 20, 30]
    assert out["proportion"].tolist()[:2] == ["*", "*"]
    assert out["month"].tolist() == monthly["month"].tolist()
    assert out["month_index"].tolist() == list(range(5))
    assert out["n"].tolist() == [40, 41, 42, 43, 44]
    assert {s["rule"] for s in report.suppressed if s["column"] == "events"} == {
        disclosure.THRESHOLD, disclosure.SECONDARY}


def test_flow_counts_and_rounding_under_a_rounding_profile():
    flow = pd.DataFrame({"Stage": ["in a window", "excluded: under 18", "excluded: no consent",
                                   "included in the analysis"],
                         "Before": [121, 3, 0, 118], "After": [112, 10, 0, 102]})
    out, report = disclosure.protect_table("flow", flow, disclosure.PROFILES["nhs_hes"])
    # HES: 3 suppressed, with the rest of its row (its periods add up); zeros shown; the rest rounded to 5
    # (numpy's half to even: 102 -> 100, 118 -> 120). The window less the included (published everywhere) would
    # give the 3 back, and the other exclusion is a zero (structural, shown): the window is hidden with it
    assert out["Before"].tolist() == ["*", "*", 0.0, 120.0]
    assert out["After"].tolist() == ["*", "*", 0.0, 100.0]
    assert out["Stage"].tolist() == flow["Stage"].tolist()
    assert {(s["row"], s["rule"]) for s in report.suppressed} == {
        (0, disclosure.SECONDARY), (1, disclosure.THRESHOLD), (1, "derived")}


def test_a_synthetic_style_table_without_small_cells_is_unchanged():
    table = pd.DataFrame({"cluster": ["A", "B"], "period": ["before", "after"], "events": [20, 30],
                          "n": [40, 50], "estimate": [0.5, 0.6]})
    out, report = disclosure.protect_table("t", table, ACRO)
    pd.testing.assert_frame_equal(out, table.astype(object))
    assert report.status == disclosure.PASS and not report.suppressed


# ---------------------------------------------------------------------------------------------------
# Ledger entries


def _entry(estimate, method="", n=None, **more):
    return {"description": "d", "estimate": estimate, "method": method, "n": n, **more,
            "provenance": {"notebook": "03_primary"}}


def test_a_small_count_hides_every_number_of_its_outcome():
    entries = {
        "harm.events_before": _entry(6.0, "Count of events", 121),
        "harm.events_after": _entry(40.0, "Count of events", 112),
        "harm.proportion_before": _entry(6 / 121, "Proportion with Wilson score 95% CI", 121,
                                         conf_low=0.02, conf_high=0.1),
        "harm.risk_difference": _entry(0.3, "Risk difference", 233, conf_low=0.2, conf_high=0.4, p_value=0.01),
        "admission.events_before": _entry(49.0, "Count of events", 121),
    }
    out, found = disclosure.protect_entries(entries, ACRO)
    for name in ("harm.events_before", "harm.events_after", "harm.proportion_before", "harm.risk_difference"):
        assert not {"estimate", "conf_low", "conf_high", "p_value"} & set(out[name]), name
        assert out[name]["suppressed"].endswith(")") and "shown as *" in out[name]["suppressed"]
    assert out["harm.risk_difference"]["n"] == 233
    assert out["admission.events_before"] == entries["admission.events_before"]
    assert {f["entry"]: f["rule"] for f in found}["harm.events_before"] == disclosure.THRESHOLD


def test_a_statistic_of_too_few_units_is_hidden_with_its_n():
    # a median of six patients is one patient's value; a proportion of six, three of them
    entries = {"team_a.proportion": _entry(0.5, "Proportion", 6, conf_low=0.2, conf_high=0.8),
               "score.median_after": _entry(4.0, "Sample quantile", 9),
               "score.median_before": _entry(5.0, "Sample quantile", 10),
               "score.mean_difference": _entry(-1.5, "Difference in means", 19, conf_low=-3.0, conf_high=0.0),
               "adverse.events_after": _entry(3.0, "Sum", 300)}
    out, found = disclosure.protect_entries(entries, ACRO)
    for name in ("team_a.proportion", "score.median_after"):
        assert not {"estimate", "conf_low", "conf_high", "n"} & set(out[name]), name
    # the other period's own statistic stays; a comparison with the nine (with the mean before, their mean) goes
    assert out["score.median_before"] == entries["score.median_before"]
    assert "estimate" not in out["score.mean_difference"] and out["score.mean_difference"]["n"] == 19
    assert "estimate" not in out["adverse.events_after"]  # a sum of events is a count
    assert {f["entry"] for f in found} == {"team_a.proportion", "score.median_after", "score.mean_difference",
                                           "adverse.events_after"}


@pytest.mark.parametrize("name", sorted(disclosure.PROFILES))
def test_every_profile_is_documented(name):
    from analysis.paths import ROOT

    assert f"`{name}`" in (ROOT / "studies" / "README.md").read_text(encoding="utf-8")


def test_profiles_differ_only_where_documented():
    acro, hes = disclosure.PROFILES["acro"], disclosure.PROFILES["nhs_hes"]
    differ = {f.name for f in dataclasses.fields(acro) if getattr(acro, f.name) != getattr(hes, f.name)}
    assert differ == {"name", "safe_threshold", "zeros_are_disclosive", "safe_round_base", "description"}
    assert list(itertools.islice(disclosure.PROFILES, 1)) == ["acro"]


def test_those_without_the_event_are_a_count_too():
    # by team: 15 of 16 accepted leaves 1 who did not; 62 of 62 leaves a zero
    by_team = pd.DataFrame({"cluster": ["A", "A", "B", "B"], "period": ["before", "after"] * 2,
                            "events": [15, 62, 30, 40], "n": [16, 62, 60, 70],
                            "estimate": [15 / 16, 1.0, 0.5, 40 / 70]})
    out, report = disclosure.protect_table("by_team", by_team, ACRO)
    # both of team A hidden (1 and 0 without the event); each period then has one hidden cell, and the period
    # totals are published, so team B's goes too
    assert out["events"].tolist() == ["*"] * 4 and out["estimate"].tolist() == ["*"] * 4
    assert out["n"].tolist() == [16, 62, 60, 70]
    rules = {(s["row"], s["rule"]) for s in report.suppressed if s["column"] == "events"}
    assert rules == {(0, disclosure.THRESHOLD), (1, disclosure.ZERO), (2, disclosure.SECONDARY),
                     (3, disclosure.SECONDARY)}
    # under HES a zero is shown, but 0 of 3 still leaves 3 without the event
    out, _ = disclosure.protect_table("t", pd.DataFrame({"a": ["0/3 (0.0%)", "0/30 (0.0%)"]}),
                                      disclosure.PROFILES["nhs_hes"])
    assert out["a"].tolist() == ["*", "0/30 (0.0%)"]
    entries, _ = disclosure.protect_entries({"acceptance.events_after": _entry(62.0, "Count of events", 62)}, ACRO)
    assert "estimate" not in entries["acceptance.events_after"]


def test_a_table_of_ledger_entries_hides_the_studys_numbers_and_keeps_the_published_ones():
    beside = pd.DataFrame({"name": ["harm.events_before", "admission.events_before"],
                           "published": [6, 49], "published_low": [None, None],
                           "ours": [6.0, 49.0], "ours_low": [None, None], "source": ["Table 4", "Table 4"]})
    out, report = disclosure.protect_table("published_vs_study", beside, ACRO,
                                           frozenset({"harm.events_before"}))
    assert out["ours"].tolist() == ["*", 49.0] and out["published"].tolist() == [6, 49]
    assert out["source"].tolist() == ["Table 4", "Table 4"]
    assert {(s["row"], s["column"], s["rule"]) for s in report.suppressed} == {(0, "ours", disclosure.LEDGER)}


def test_table_one_levels_add_up_to_the_group_n():
    # female 8 of 121 before: hidden; male 113 would give it back from n = 121, so it goes too, with the
    # variable's SMD (computed from both levels); the after column holds no hidden level
    table = pd.DataFrame({"Variable": ["n", "Sex, n (%)", "Sex, n (%)", "Frail, n (%)"],
                          "Level": [None, "female", "male", "yes"],
                          "Overall": [233, "60 (25.8)", "173 (74.2)", "40 (17.2)"],
                          "Before": [121, "8 (6.6)", "113 (93.4)", "20 (16.5)"],
                          "After": [112, "52 (46.4)", "60 (53.6)", "20 (17.9)"], "SMD": [None, "0.9", None, "0.04"]})
    out, report = disclosure.protect_table("table1", table, ACRO)
    assert out.iloc[1].tolist() == ["Sex, n (%)", "female", "*", "*", "*", "*"]
    assert out.iloc[2].tolist()[:5] == ["Sex, n (%)", "male", "*", "*", "*"]
    assert out.iloc[3].tolist() == table.iloc[3].tolist()
    assert (2, "Before", disclosure.SECONDARY) in {(s["row"], s["column"], s["rule"]) for s in report.suppressed}


def test_rounding_never_shows_a_small_difference():
    # HES: 113 of 121 leaves 8 without (shown, 8 is not 1 to 7), but rounded it would read 115/120: 5 without
    hes = disclosure.PROFILES["nhs_hes"]
    out, _ = disclosure.protect_table("t", pd.DataFrame({"a": ["113/121 (93.4%)", "60/121 (49.6%)"]}), hes)
    assert out["a"].tolist() == ["*", "60/120 (50.0%)"]


def test_a_hidden_outcome_loses_its_warnings_and_is_hidden_in_other_notebooks_too():
    # "no events in one period" and an expected count of 3.00 with n = 240 give the 0 and the 6 back
    entries = {"severe.events_after": _entry(0.0, "Count of events", 120),
               "severe.chi2": {**_entry(5.0, "Pearson chi-square test", 240),
                               "warnings": ["2 of 4 expected counts are below 5 (smallest 3.00)"]},
               "severe.rate_not_estimated": {**_entry(None, "Relative risk", 240),
                                             "warnings": ["No events in one period"]}}
    out, found = disclosure.protect_entries(entries, ACRO)
    assert "warnings" not in out["severe.chi2"] and "warnings" not in out["severe.rate_not_estimated"]
    assert {f["entry"] for f in found if f["family"]} == {"severe.events_after"}
    # a later notebook refits the same outcome (leave one cluster out): hidden with the family named elsewhere
    later = {"severe.leave_one_ward_out_largest": _entry(1e-15, "Mixed-effects logistic regression", 168),
             "readmitted.leave_one_ward_out_largest": _entry(0.5, "Mixed-effects logistic regression", 168)}
    out, _ = disclosure.protect_entries(later, ACRO, frozenset({"severe"}))
    assert "estimate" not in out["severe.leave_one_ward_out_largest"]
    assert out["readmitted.leave_one_ward_out_largest"] == later["readmitted.leave_one_ward_out_largest"]


def test_the_marker_is_read_back_from_an_entry_whatever_it_holds():
    for mark in ("*", "<10", "[REDACTED]", "x: y"):
        out, _ = disclosure.protect_entries({"a.events_after": _entry(3.0, "Count of events", 50)},
                                            dataclasses.replace(ACRO, marker=mark))
        assert disclosure.marker_of(out["a.events_after"]["suppressed"]) == mark
    with pytest.raises(ValueError, match="not a suppression"):
        disclosure.marker_of("estimate hidden")


def test_the_prose_prints_the_marker_for_a_hidden_number_and_not_estimated_otherwise():
    from analysis.ledger import Entry
    from analysis.text import render

    provenance = {"notebook": "03_primary", "parameters_sha256": "", "data_sha256": ""}
    out, _ = disclosure.protect_entries({
        "severe.events_before": _entry(6.0, "Count of events", 120),
        "severe.proportion_before": _entry(0.05, "Proportion", 120, conf_low=0.02, conf_high=0.1),
        "severe.risk_difference": _entry(-0.05, "Risk difference", 240, conf_low=-0.1, conf_high=0.0)},
        dataclasses.replace(ACRO, marker="<10"))
    entries = {name: Entry(**(e | {"provenance": provenance})) for name, e in out.items()}
    entries["other.odds_ratio"] = Entry(description="a model that did not fit", provenance=provenance)
    text = render("{{ severe.proportion_before | frac }}; {{ severe.risk_difference | pp_ci }}; "
                  "n {{ severe.risk_difference | n }}; {{ other.odds_ratio | est_ci }}", entries)
    assert text == "<10; <10; n 240; not estimated"


def test_a_period_n_gets_a_partner_and_a_small_cluster_left_out_hides_every_n():
    # ward E has 2 patients before: the other wards' n and the period's published n would give it back
    by_ward = pd.DataFrame({"cluster": list("ABCE"), "period": "before", "events": [10, 12, 11, 0],
                            "n": [27, 40, 51, 2]})
    out, report = disclosure.protect_table("by_ward", by_ward, ACRO)
    assert out["n"].tolist() == ["*", 40, 51, "*"]  # E's and the smallest other, A's
    # leaving out ward E leaves 236 of 240 (the total is sum(n) / (wards - 1)): E's 4 patients
    left_out = pd.DataFrame({"outcome": "x", "ward_left_out": list("ABCDE"), "estimate": [0.5, 0.4, 0.6, 0.5, 0.49],
                             "n": [186, 183, 168, 187, 236]})
    assert sum(left_out["n"]) / 4 - 236 == 4
    out, _ = disclosure.protect_table("leave_one_ward_out", left_out, ACRO)
    assert out["n"].tolist() == ["*"] * 5
    assert out["estimate"].tolist() == [0.5, 0.4, 0.6, 0.5, "*"]
    out, _ = disclosure.protect_table("leave_one_ward_out", left_out.iloc[:4].assign(n=[150, 160, 170, 180]), ACRO)
    assert out["n"].tolist() == [150, 160, 170, 180]  # every ward large enough: nothing to hide


def test_a_flow_shows_an_exclusion_of_nobody():
    flow = pd.DataFrame({"Stage": ["patients in the raw table", "excluded: outside both windows",
                                   "excluded: aged under 18", "included in the analysis"],
                         "Before": [None, None, 3, 117], "After": [None, None, 12, 108],
                         "Both periods": [240, 0, 15, 225]})
    out, _ = disclosure.protect_table("flow", flow, ACRO)
    assert out["Both periods"].tolist()[:2] == [240, 0] and out.iat[2, 1] == "*"
    entries, _ = disclosure.protect_entries(
        {"flow.outside_periods.all": _entry(0.0, "Count", 240) | {"description": "Patients: excluded: outside (both)"},
         "flow.screened.all": _entry(240.0, "Count", 240) | {"description": "Patients: in the raw table"}}, ACRO)
    assert entries["flow.outside_periods.all"]["estimate"] == 0 and entries["flow.screened.all"]["estimate"] == 240


def test_a_notebook_displays_results_and_frames_as_the_ledger_and_tables_show_them(write_study):
    from analysis import show
    from analysis.config import load_study

    results = pd.DataFrame({
        "name": ["severe.events_before", "severe.risk_difference", "ok.events_before"],
        "description": ["events", "risk difference", "events"],
        "estimate": [6.0, -0.05, 40.0], "std_error": [np.nan, 0.02, np.nan], "statistic": [np.nan, 2.1, np.nan],
        "p_value": [np.nan, 0.04, np.nan], "conf_low": [np.nan, -0.1, np.nan], "conf_high": [np.nan, 0.0, np.nan],
        "n": [121, 233, 121], "method": ["Count of events", "Risk difference", "Count of events"],
        "warnings": ["", "No events in one period", "Only 4 clusters"]})
    try:
        show.banner(load_study(write_study({"synthetic": False}, name="real")))
        table = show.results(results)
        assert table["estimate"].tolist() == ["*", "*", "40"]
        assert table.loc[1, ["95% CI", "statistic", "p", "n"]].tolist() == ["*", "*", "*", "233"]
        shown = show.warnings(results).data
        assert "Only 4 clusters" in shown and "No events" not in shown
        # a frame displayed as a cell's last line, with an index (a cluster) as pandas shows it
        by_ward = pd.DataFrame({"period": ["before", "before", "before"], "events": [3, 20, 30], "n": [40, 50, 60]},
                               index=pd.Index(["A", "B", "C"], name="ward"))
        out = show.protected(by_ward)
        assert out.index.tolist() == ["A", "B", "C"] and out.index.name == "ward"
        assert out["events"].tolist() == ["*", "*", 30] and out["n"].tolist() == [40, 50, 60]
        # a synthetic study's notebook shows what it computed
        show.banner(load_study(write_study(name="synthetic")))
        assert show.results(results)["estimate"].tolist() == ["6", "-0.05", "40"]
        assert show.protected(by_ward) is by_ward
    finally:
        show._session.update(study=None, rules=None)


def test_continuous_values_are_drawn_without_patients_and_a_small_group_is_not_drawn():
    from analysis import figures

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"period_label": ["Before"] * 30 + ["After"] * 7, "period": ["before"] * 30 + ["after"] * 7,
                          "timepoint": "change", "change": rng.normal(0, 3, 37).round(1)})
    drawn = figures.mai_change(frame)
    ax = drawn.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 37  # every patient, over the boxes
    drawn = figures.mai_change(frame, points=False, smallest=10, marker="<10")
    ax = drawn.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["n = 30", "n = <10"]
    # one box (its median line among them) for the 30; whiskers at the 10th and 90th percentiles, not at a patient
    whiskers = sorted({round(y, 6) for line in ax.lines for y in line.get_ydata()} - {0.0})
    assert round(float(np.percentile(frame["change"][:30], 10)), 6) in whiskers
    assert not set(frame["change"][:30].round(6)) & {whiskers[0], whiskers[-1]}


# ---------------------------------------------------------------------------------------------------
# The flow: a hidden exclusion must not come back from the other stages (issue 15)

FLOW_COLUMNS = ["Before", "After", "Both periods"]


def _flow(exclusions: dict[str, tuple[int, int]], included=(100, 90), outside=0, missing=(20, 30)):
    """A flow table as analysis/analyses/flow.py exports it, and its ledger entries, from the counts."""
    window = [included[p] + sum(e[p] for e in exclusions.values()) for p in (0, 1)]
    stages = [("screened", "patients in the raw table", (None, None, outside + sum(window))),
              ("outside_periods", "excluded: admission_date outside both period windows", (None, None, outside)),
              ("in_period_window", "in a period window", (*window, sum(window)))]
    stages += [(key, f"excluded: {key.replace('_', ' ')}", (*e, sum(e))) for key, e in exclusions.items()]
    stages += [("included", "included in the analysis", (*included, sum(included))),
               ("missing_outcome", "included, no outcome", (*missing, sum(missing))),
               ("with_outcome", "included, with a outcome",
                (included[0] - missing[0], included[1] - missing[1], sum(included) - sum(missing)))]
    table = pd.DataFrame([[text, *counts] for _, text, counts in stages], columns=["Stage", *FLOW_COLUMNS])
    table[FLOW_COLUMNS] = table[FLOW_COLUMNS].astype("Int64")
    entries = {f"flow.{key}.{period}": {"description": f"Patients: {text} ({period})", "estimate": n, "n": n,
                                        "method": "Count"}
               for key, text, counts in stages for period, n in zip(("before", "after", "all"), counts, strict=True)
               if n is not None}
    return table, entries


def _attack(shown: list[list], kinds: list[str]) -> dict[tuple[int, int], tuple[float, float]]:
    """What an attacker can say of each hidden count (None), written here from the flow's arithmetic, not from
    analysis/disclosure.py: a stage's periods add up to its total; the raw rows less those outside the windows are
    the windows' rows; the windows less the exclusions are the included; the included are those with and those
    without the outcome; counts are >= 0. The least and the most each hidden count can be (two LPs each)."""
    unknown = [(i, j) for i, row in enumerate(shown) for j, v in enumerate(row) if v is None]
    at = {cell: k for k, cell in enumerate(unknown)}
    rows, rhs = [], []

    def equation(terms):  # terms: (coefficient, i, j); a cell with no count at all is not a term
        a, b = np.zeros(len(unknown)), 0.0
        for c, i, j in terms:
            if (i, j) in at:
                a[at[(i, j)]] += c
            elif not (isinstance(shown[i][j], float) and np.isnan(shown[i][j])):
                b -= c * shown[i][j]
        rows.append(a)
        rhs.append(b)

    for i, row in enumerate(shown):
        if not any(isinstance(v, float) and np.isnan(v) for v in row):
            equation([(1, i, 0), (1, i, 1), (-1, i, 2)])
    included = kinds.index("included")
    equation([(1, 0, 2), (-1, 1, 2), (-1, 2, 2)])
    for j in (0, 1, 2):
        equation([(1, 2, j), (-1, included, j), *[(-1, i, j) for i in range(3, included)]])
        equation([(1, included, j), (-1, included + 1, j), (-1, included + 2, j)])
    bounds = {}
    for cell, k in at.items():
        c = np.zeros(len(unknown))
        c[k] = 1
        low = linprog(c, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None))
        high = linprog(-c, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None))
        assert low.status == 0 and high.status in (0, 3)  # the true counts are feasible
        bounds[cell] = (low.fun, np.inf if high.status == 3 else -high.fun)
    return bounds


def _table_shown(out: pd.DataFrame) -> list[list]:
    return [[None if isinstance(v, str) and v == "*" else (np.nan if pd.isna(v) else float(v)) for v in row]
            for row in out[FLOW_COLUMNS].itertuples(index=False)]


def _ledger_shown(protected: dict, table: pd.DataFrame, entries: dict) -> list[list]:
    keys = list(dict.fromkeys(name.split(".")[1] for name in entries))
    return [[(protected[name].get("estimate") if name in protected else np.nan) for name in
             (f"flow.{key}.{p}" for p in ("before", "after", "all"))] for key in keys]


FLOW_CASES = {
    # one exclusion reason, 5 in the before period: the window less the included gives it back
    "one reason": ({"aged_under_18": (5, 20)}, {(3, 0)}),
    # two reasons, one small: the other reason is hidden with it, and they share what the stages leave them
    "two reasons, one small": ({"aged_under_18": (6, 12), "no_consent": (30, 25)}, {(3, 0)}),
    # small in both periods (3, 4, and 7 over both): the raw rows go too, or the total would give 7 back
    "small in both periods": ({"aged_under_18": (3, 4)}, {(3, 0), (3, 1), (3, 2)}),
}


@pytest.mark.parametrize("case", sorted(FLOW_CASES))
def test_a_hidden_flow_exclusion_cannot_be_worked_back_from_the_other_stages(case):
    exclusions, small = FLOW_CASES[case]
    table, entries = _flow(exclusions)
    kinds = ["stage", "exclusion", "stage", *["exclusion"] * len(exclusions), "included", "split", "split"]
    truth = table[FLOW_COLUMNS].astype(float).to_numpy()
    out, report = disclosure.protect_table("flow", table, ACRO)
    protected, _ = disclosure.protect_entries(entries, ACRO)
    for shown in (_table_shown(out), _ledger_shown(protected, table, entries)):
        bounds = _attack(shown, kinds)
        for cell in small:
            low, high = bounds[cell]
            # hidden, the truth inside, and at least a wide interval (the threshold's width), not a point
            assert low <= truth[cell] <= high and high - low >= 10, (case, cell, low, high)
        # the included (published everywhere) are shown; the table and the ledger hide the same stages
        assert None not in shown[kinds.index("included")]
    assert [row for row, values in enumerate(_table_shown(out)) if None in values] == [
        row for row, values in enumerate(_ledger_shown(protected, table, entries)) if None in values]
    assert not report.review or not any("flow" in note for note in report.review)


def test_a_lone_small_exclusion_in_both_periods_hides_the_raw_rows():
    table, entries = _flow({"aged_under_18": (3, 4)})
    out, report = disclosure.protect_table("flow", table, ACRO)
    protected, hidden = disclosure.protect_entries(entries, ACRO)
    # the raw table's rows (its count is also the manifest's, which the release leaves out) and the windows
    assert out.at[0, "Both periods"] == "*" and "estimate" not in protected["flow.screened.all"]
    assert out.loc[2, FLOW_COLUMNS].eq("*").all()
    assert {s["rule"] for s in report.suppressed if s["row"] in (0, 2)} == {disclosure.SECONDARY}
    assert {h["entry"]: h["rule"] for h in hidden}["flow.screened.all"] == disclosure.SECONDARY
    # what needs no hiding is shown: the zero outside the windows, the included and the outcome's split
    assert out.at[1, "Both periods"] == 0 and out.loc[4:, FLOW_COLUMNS].ne("*").all(axis=None)


def test_zero_exclusions_are_shown_and_hide_nothing():
    table, entries = _flow({"aged_under_18": (0, 0), "no_consent": (0, 0)})
    out, report = disclosure.protect_table("flow", table, ACRO)
    protected, hidden = disclosure.protect_entries(entries, ACRO)
    assert not report.suppressed and not hidden
    assert out[FLOW_COLUMNS].astype("Float64").equals(table[FLOW_COLUMNS].astype("Float64"))
    assert all("estimate" in e for e in protected.values())


# ---------------------------------------------------------------------------------------------------
# Models: residual degrees of freedom (ACRO's MinimumDoFCheck)


def _model_entries(df_resid: int) -> dict:
    return {"harm.events_before": {"description": "events", "estimate": 40, "n": 121, "method": "Count of events"},
            "harm.odds_ratio_adjusted": {"description": "adjusted odds ratio", "estimate": 0.5, "std_error": 0.2,
                                         "conf_low": 0.3, "conf_high": 0.8, "p_value": 0.01, "n": 121,
                                         "df_resid": df_resid, "warnings": ["a warning"], "method": "Logistic"},
            "harm.risk_difference": {"description": "risk difference", "estimate": -0.1, "n": 233,
                                     "method": "Risk difference"}}


@pytest.mark.parametrize("df_resid, status", [(9, disclosure.FAIL), (10, disclosure.PASS)])
def test_a_model_with_too_few_residual_df_is_hidden_alone(df_resid, status):
    entries = _model_entries(df_resid)
    protected, hidden = disclosure.protect_entries(entries, ACRO)
    checks = disclosure.model_checks(entries, ACRO)
    assert list(checks) == ["harm.odds_ratio_adjusted"] and checks["harm.odds_ratio_adjusted"]["status"] == status
    model = protected["harm.odds_ratio_adjusted"]
    if status == disclosure.FAIL:
        assert hidden == [{"entry": "harm.odds_ratio_adjusted", "rule": disclosure.DOF,
                           "reason": disclosure.REASONS[disclosure.DOF], "family": False,
                           "fields": ["estimate", "std_error", "p_value", "conf_low", "conf_high", "df_resid",
                                      "warnings"]}]
        assert disclosure.marker_of(model["suppressed"]) == "*" and model["n"] == 121
        assert "df_resid" not in checks["harm.odds_ratio_adjusted"]
    else:
        assert not hidden and model == entries["harm.odds_ratio_adjusted"]
        assert checks["harm.odds_ratio_adjusted"]["df_resid"] == 10
    # the outcome's counts and other comparisons are not computed from the model's fit: shown
    assert protected["harm.events_before"] == entries["harm.events_before"]
    assert protected["harm.risk_difference"] == entries["harm.risk_difference"]


def test_a_profile_sets_the_dof_threshold():
    stricter = dataclasses.replace(ACRO, safe_dof_threshold=20)
    _, hidden = disclosure.protect_entries(_model_entries(15), stricter)
    assert [h["rule"] for h in hidden] == [disclosure.DOF]
    assert not disclosure.protect_entries(_model_entries(15), ACRO)[1]


def test_a_hidden_count_hides_its_models_residual_df_too():
    # 6 events: the outcome is hidden, and so is its model's df_resid, which with the model's terms gives n back
    entries = _model_entries(117)
    entries["harm.events_before"]["estimate"] = 6
    protected, _ = disclosure.protect_entries(entries, ACRO)
    assert "df_resid" not in protected["harm.odds_ratio_adjusted"]


def test_mixed_models_count_their_variance_parameters_as_lme4():
    # lme4's df.residual = nobs - (fixed effects + variance parameters, + the residual SD for lmer). On 30 rows of
    # 6 clusters with y ~ after + age + (1 | g), R 4.2 / lme4 1.1 gave 25 for lmer and 26 for glmer (binomial)
    from analysis import stats

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"g": np.repeat(list("abcdef"), 5), "after": np.tile([0, 1], 15), "age": rng.normal(size=30)})
    data["y"] = rng.normal(size=30) + np.repeat(rng.normal(size=6), 5)
    data["e"] = (rng.random(30) < 0.4).astype(int)
    assert set(stats.linear_mixed(data, "y ~ after + age", "g")["df_resid"]) == {30 - 3 - 2}
    assert set(stats.mixed_logistic(data, "e ~ after + age", "g")["df_resid"]) == {30 - 3 - 1}
    # GEE: statsmodels' df_resid, n less the coefficients
    assert set(stats.gee_logistic(data, "e ~ after + age", "g")["df_resid"]) == {30 - 3}
