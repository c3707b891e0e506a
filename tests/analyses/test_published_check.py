"""analysis.analyses.published_check on the reference study's published tables (data_raw/published/, read-only)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pandas as pd
import pytest

from analysis.analyses import published_check as PB
from analysis.stats.tidy import COLUMNS

PUBLISHED = Path(__file__).resolve().parents[2] / "data_raw" / "published"
EXTRA = ["published", "published_low", "published_high", "tolerance", "agree", "note"]


@pytest.fixture(scope="module")
def tables():
    # as text, so that "0.30" keeps its printed digits
    return {
        name: pd.read_csv(PUBLISHED / f"grimes2014_{name}.csv", dtype=str) for name in ("primary", "reported", "harm")
    }


@pytest.fixture(scope="module")
def comparison(tables):
    return PB.reproduce_published(tables["primary"], tables["reported"], tables["harm"]).set_index("term")


def test_shape(comparison):
    out = comparison.reset_index()
    assert tuple(out.columns[: len(COLUMNS)]) == COLUMNS
    assert list(out.columns[len(COLUMNS) :]) == EXTRA + ["counts"]
    assert len(out) == 4 + 2 + 1


def test_odds_ratios(comparison):
    rows = comparison.loc[[t for t in comparison.index if t.startswith("or_unadjusted:")]]
    assert rows["agree"].tolist() == [False, True, True, True]
    assert (rows["tolerance"] == 0.005).all()
    admission = rows.loc["or_unadjusted:error_at_admission"]
    # 49/121 vs 10/112: (10 * 72) / (102 * 49) = 0.14406, Woolf 0.0685 to 0.3032 (published 0.15, 0.07 to 0.30)
    assert admission.estimate == pytest.approx(720 / 4998, rel=1e-12)
    assert "point estimate computes to 0.1441 (prints 0.14), published 0.15" in admission.note
    assert "conditional (exact) OR 0.1452" in admission.note
    assert rows.loc["or_unadjusted:error_at_discharge", "note"] == "Reproduced from the counts (Woolf interval)."


def test_nnt_severe_reproduces_with_all_patients_and_newcombe(comparison):
    row = comparison.loc["nnt_severe_error_at_discharge"]
    assert bool(row.agree)
    assert (round(row.estimate), round(row.conf_low), round(row.conf_high)) == (20, 10, 142)
    assert row.note == (
        "Reproduced: 20 (10 to 142) follows from severe harm over all patients (6/121 vs 0/112), "
        "Newcombe hybrid score interval, rounded nearest."
    )


def test_nnt_any_error_does_not_follow_from_the_counts(comparison):
    row = comparison.loc["nnt_any_error_at_discharge"]
    assert not bool(row.agree)
    assert row.counts == "error_at_discharge (66/101 vs 15/108)"
    # 1 / (66/101 - 15/108) = 1.943: the interval prints 2 to 3 but the point 2, not the published 3
    assert row.estimate == pytest.approx(1 / (66 / 101 - 15 / 108), rel=1e-12)
    assert row.note.startswith("Not reproduced: no candidate gives 3 (2 to 3).")
    # the only way to print 3 is rounding 2.43 (66/121 vs 15/112) up, which makes the interval 2 to 4
    assert (
        "error_at_discharge_missing_as_no_error (66/121 vs 15/112), Newcombe hybrid score, rounded up: 3 (2 to 4)"
        in row.note
    )


def test_harm_test(comparison):
    row = comparison.loc["mann_whitney:potential_harm_at_discharge"]
    assert bool(row.agree) and row.tolerance == 0.0005
    assert row.p_value < 1e-13
    assert "printed p as 0.000" in row.note


def test_printed_digits_set_the_tolerance():
    assert PB._printed("0.30").tolerance == pytest.approx(0.005)
    assert PB._printed("142").tolerance == 0.5
    assert PB._printed(0.3).tolerance == pytest.approx(0.05)  # read as a number, the last digit is lost


def test_acceptance_smallest_denominators_as_published(tables):
    # 67.5% to 1 decimal and 98% to 0 decimals (the percentages as published; the CSV transcribes 98 as "98.0")
    out = PB.acceptance_denominators(tables["reported"], decimals={"standard": 1, "team": 0}).set_index("term")
    standard, team = out.loc["smallest_denominator:standard"], out.loc["smallest_denominator:team"]
    assert (standard.n, standard.events) == (40, 27)  # 27/40 = 67.5%
    assert (team.n, team.events) == (40, 39)  # 39/40 = 97.5%, which prints as 98% only rounding halves up
    assert team.interval == "[97.5, 98.5)"
    assert "exactly on the lower boundary" in team.working
    assert "no n below 40" in standard.working


def test_acceptance_smallest_denominators_as_transcribed(tables):
    out = PB.acceptance_denominators(tables["reported"]).set_index("term")
    team = out.loc["smallest_denominator:team"]
    assert (team.n, team.events, team.decimals) == (49, 48, 1)  # 48/49 = 97.96% prints as 98.0%


def test_smallest_denominator_brute_force():
    # every n below the answer fails, by enumeration of all x
    for text, d, expected in (("67.5", 1, 40), ("98", 0, 40), ("98.0", 1, 49)):
        v = float(text)
        ok = [n for n in range(1, 60) if any(v - 0.5 * 10**-d <= 100 * x / n < v + 0.5 * 10**-d for x in range(n + 1))]
        assert ok[0] == expected


def test_acceptance_sensitivity(tables):
    out = PB.acceptance_sensitivity(tables["reported"], decimals={"standard": 1, "team": 0})
    assert out["scenario"].unique().tolist() == [
        "smallest",
        "50 per period",
        "100 per period",
        "200 per period",
        "400 per period",
    ]
    assert out["term"].tolist()[:3] == ["chi2", "chi2_corrected", "fisher"]
    smallest = out[out.scenario == "smallest"].set_index("term")
    assert (smallest.loc["fisher", "events_before"], smallest.loc["fisher", "events_after"]) == (27, 39)
    # 27/40 vs 39/40: X2 = 80 (27 * 1 - 13 * 39)^2 / (40 * 40 * 66 * 14) = 12.4675
    assert smallest.loc["chi2", "statistic"] == pytest.approx(
        80 * (27 * 1 - 13 * 39) ** 2 / (40 * 40 * 66 * 14), rel=1e-12
    )
    fifty = out[out.scenario == "50 per period"].iloc[0]
    assert fifty.note == "67.5% is not attainable with n = 50; nearest 34/50 = 68%"
    p = out[out.term == "fisher"]["p_value"].tolist()
    assert p == sorted(p, reverse=True)  # the same percentages on more patients: ever smaller p


def test_docstring_examples():
    # the examples ran with the analysis.stats doctests before the module moved here
    result = doctest.testmod(PB, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0
