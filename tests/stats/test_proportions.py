"""analysis.stats.proportions against R (tests/reference/proportions.R) and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import proportions as P
from analysis.stats.tidy import COLUMNS

# Closed forms and exact tests computed the same way in R and here: agreement to rounding only.
CLOSED_FORM_REL = 1e-6
# Values that are zero in exact arithmetic (a Wilson limit at p = 0) can come out as 1e-17 in R.
ABS_FLOOR = 1e-12

QUANTITIES = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high")
TERMS = (
    "proportion_before",
    "proportion_after",
    "risk_difference",
    "nnt",
    "odds_ratio_woolf",
    "relative_risk",
    "chi2",
    "chi2_corrected",
    "fisher",
    "odds_ratio_exact",
)


@pytest.fixture(scope="module")
def cases(reference_data):
    return reference_data("proportions").set_index("dataset")


@pytest.mark.parametrize(
    "dataset",
    [
        "admission",
        "discharge",
        "discharge_missing_as_error",
        "discharge_missing_as_no_error",
        "severe_discharge",
        "zero_before",
        "tiny",
        "crossing_zero",
        "harm_increase",
        "all_events_before",
        "large",
    ],
)
def test_every_row_matches_r(dataset, cases, r_results, assert_close):
    r = r_results("proportions")
    c = cases.loc[dataset]
    ours = P.compare_proportions(c.events_before, c.n_before, c.events_after, c.n_after).set_index("term")
    checked = 0
    for (term, quantity), value in r.items(dataset).items():
        if term not in TERMS or quantity not in QUANTITIES:
            continue
        assert_close(ours.loc[term, quantity], value, CLOSED_FORM_REL, ABS_FLOOR, f"{dataset} {term} {quantity}")
        checked += 1
    assert checked == 38  # 36 numbers and chisq.test's df, corrected and not


def test_columns_and_order():
    out = P.compare_proportions(49, 121, 10, 112)
    assert tuple(out.columns[: len(COLUMNS)]) == COLUMNS
    assert list(out.columns[len(COLUMNS) :]) == ["interval"]
    assert out["term"].tolist() == [
        "events_before",
        "events_after",
        "proportion_before",
        "proportion_after",
        "risk_difference",
        "relative_risk",
        "odds_ratio_woolf",
        "odds_ratio_exact",
        "chi2",
        "chi2_corrected",
        "fisher",
        "nnt",
    ]
    assert out["warnings"].eq("").all()


def test_woolf_by_hand_admission():
    # 49/121 before vs 10/112 after: a = 10, b = 102, c = 49, d = 72
    log_or = math.log(10 * 72 / (102 * 49))  # -1.93754...
    se = math.sqrt(1 / 10 + 1 / 102 + 1 / 49 + 1 / 72)  # 0.37961...
    assert log_or == pytest.approx(-1.937542, abs=1e-6)
    assert se == pytest.approx(0.379606, abs=1e-6)
    row = P.odds_ratio_woolf(49, 121, 10, 112).iloc[0]
    assert row.estimate == pytest.approx(0.144058, abs=1e-6)
    assert row.conf_low == pytest.approx(math.exp(log_or - 1.959964 * se), rel=1e-6)
    assert row.conf_high == pytest.approx(math.exp(log_or + 1.959964 * se), rel=1e-6)
    # the published 0.15 (0.07 to 0.30) is not what the counts give once rounded: 0.14 (0.07 to 0.30)
    assert round(row.estimate, 2) == 0.14


def test_published_nnt_severe_is_newcombe_hybrid_score():
    row = P.number_needed_to_treat(6, 121, 0, 112).iloc[0]
    assert (round(row.estimate), round(row.conf_low), round(row.conf_high)) == (20, 10, 142)
    assert row.interval == "NNTB 9.6 to 142.2"
    assert row.warnings == ""


def test_zero_cell_gives_finite_numbers_and_states_the_correction():
    out = P.compare_proportions(6, 121, 0, 112).set_index("term")
    numbers = out[list(QUANTITIES)].to_numpy(dtype=float)
    assert not np.isinf(numbers).any()
    for term in ("odds_ratio_woolf", "relative_risk"):
        assert "Haldane-Anscombe" in out.loc[term, "method"]
        assert "0.5 was added to every cell" in out.loc[term, "warnings"]
    # Woolf after +0.5: (0.5 * 115.5) / (112.5 * 6.5)
    assert out.loc["odds_ratio_woolf", "estimate"] == pytest.approx(0.5 * 115.5 / (112.5 * 6.5), rel=1e-12)
    # the exact conditional OR is 0 with a finite interval here, so it needs no correction
    assert out.loc["odds_ratio_exact", "estimate"] == 0
    assert out.loc["odds_ratio_exact", "conf_high"] == pytest.approx(0.897413, abs=1e-5)


def test_infinite_exact_odds_ratio_is_missing_with_a_sentence():
    row = P.odds_ratio_exact(0, 10, 4, 12).iloc[0]
    assert math.isnan(row.estimate) and math.isnan(row.conf_high)
    assert row.conf_low == pytest.approx(0.6119797, abs=1e-6)
    assert "infinite" in row.warnings


def test_small_expected_counts_are_flagged_and_fisher_reported():
    out = P.compare_proportions(2, 7, 5, 8).set_index("term")
    for term in ("chi2", "chi2_corrected"):
        assert out.loc[term, "warnings"].startswith("4 of 4 expected counts are below 5")
    assert not math.isnan(out.loc["fisher", "p_value"])


def test_nnt_crossing_zero_follows_altman():
    row = P.number_needed_to_treat(12, 50, 10, 48).iloc[0]
    rd = P.risk_difference(12, 50, 10, 48).iloc[0]
    # benefit limits are the reflected RD limits; NNTB from the upper, NNTH from the lower
    assert row.conf_low == pytest.approx(1 / -rd.conf_low, rel=1e-12)
    assert row.conf_high == pytest.approx(1 / -rd.conf_high, rel=1e-12)
    assert row.conf_low > 0 > row.conf_high
    assert row.interval == "NNTB 5.2 to infinity to NNTH 7.5"
    assert "through infinity" in row.warnings


def test_nnt_harm():
    row = P.number_needed_to_treat(5, 60, 14, 58).iloc[0]
    assert row.estimate < 0
    assert row.conf_low < row.conf_high < 0
    assert row.interval.startswith("NNTH ")


def test_no_events_at_all_does_not_crash():
    out = P.compare_proportions(0, 10, 0, 12).set_index("term")
    assert math.isnan(out.loc["chi2", "statistic"])
    assert out.loc["chi2", "df"] == 1  # as chisq.test reports beside its NaN statistic
    assert "undefined" in out.loc["chi2", "warnings"]
    assert out.loc["fisher", "p_value"] == 1
    assert math.isnan(out.loc["nnt", "estimate"]) and "infinite" in out.loc["nnt", "warnings"]


def test_wilson_at_the_edges():
    assert P.wilson_interval(0, 112)[0] == 0
    assert P.wilson_interval(0, 112)[1] == pytest.approx(1.959964**2 / (112 + 1.959964**2), rel=1e-6)
    assert P.wilson_interval(10, 10)[1] == 1


@pytest.mark.parametrize("bad", [(5, 4, 1, 10), (-1, 10, 1, 10), (1, 0, 1, 10), (1.5, 10, 1, 10), (0, -1, 1, 10)])
def test_impossible_counts_are_refused(bad):
    with pytest.raises(ValueError):
        P.compare_proportions(*bad)
