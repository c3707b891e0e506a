"""Ledger numbers written as prose: each style checked by hand."""

from __future__ import annotations

import math

import pytest

from analysis.errors import StudyError
from analysis.ledger import Entry
from analysis.stats.proportions import number_needed_to_treat
from analysis.text import NUMBERS, STYLES, render

PROVENANCE = {"notebook": "n", "parameters_sha256": "p", "data_sha256": "d"}


def entry(**values) -> Entry:
    return Entry(description="x", provenance=PROVENANCE, **values)


ENTRIES = {
    # 66/101 = 0.653465...; Wilson 95% CI 0.5564 to 0.7395
    "discharge.before": entry(estimate=66 / 101, conf_low=0.55643, conf_high=0.73953, n=101),
    "discharge.or": entry(estimate=0.08554, conf_low=0.04374, conf_high=0.16725, p_value=3.1e-15,
                          published={"estimate": 0.09, "conf_low": 0.04, "conf_high": 0.17, "source": "Table 4"}),
    "discharge.rd": entry(estimate=-0.51461, conf_low=-0.61, conf_high=-0.39),
    "severe.nnt": entry(estimate=20.17, conf_low=9.57, conf_high=141.3),
    "p.large": entry(p_value=0.995),
    "p.mid": entry(p_value=0.0349),
    "p.small": entry(p_value=0.00234),
    "zero": entry(estimate=-0.0001),
    # the ledger stores every estimate as a float, counts included
    "included": entry(estimate=1234.0, n=1234),
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ discharge.before | frac }}", "66/101 (65.3%)"),
        ("{{ discharge.before | pct_ci }}", "65.3% (95% CI 55.6% to 74.0%)"),
        ("{{discharge.or|est_ci}}", "0.09 (95% CI 0.04 to 0.17)"),
        ("{{ discharge.or | est_ci:3 }}", "0.086 (95% CI 0.044 to 0.167)"),
        ("{{ discharge.or | p }}", "p<0.001"),
        ("{{ p.large | p }}, {{ p.mid | p }}, {{ p.small | p }}", "p>0.99, p=0.03, p=0.002"),
        ("{{ discharge.rd | pp }}", "-51.5 percentage points"),
        ("{{ discharge.rd | pp_ci }}", "-51.5 percentage points (95% CI -61.0 to -39.0)"),
        ("{{ severe.nnt | nnt }}", "NNTB 21 (95% CI 10 to 142)"),  # rounded up: 20.17 -> 21, 9.57 -> 10
        ("{{ zero | est }}", "0.00"),  # never "-0.00"
        ("{{ discharge.or | pub }}", "0.09 (95% CI 0.04 to 0.17)"),
        ("n = {{ discharge.before | n }}", "n = 101"),
        ("{{ included | int }} patients", "1,234 patients"),  # a count, never "1234.0"
    ],
)
def test_styles(template, expected):
    assert render(template, ENTRIES) == expected


def test_unknown_names_styles_and_missing_fields_are_all_reported_at_once():
    with pytest.raises(StudyError) as caught:
        render("{{ nope | est }} {{ discharge.or | fancy }} {{ p.mid | est }}", ENTRIES, where="paper/x.md")
    message = str(caught.value)
    assert message.startswith("paper/x.md: 3 placeholder problem(s)")
    assert "'nope' is not in the ledger" in message
    assert "unknown style 'fancy'" in message
    # p.mid has a p-value: `est` is the wrong style for it, not an entry left unestimated
    assert "'p.mid' has no estimate, which style 'est' needs" in message


# qnorm(0.975) in R
Z = 1.959963984540054


def wilson(events: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = events / n
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return tuple((p + Z**2 / (2 * n) + sign * half) / (1 + Z**2 / n) for sign in (-1, 1))


def risk_reduction_by_hand(eb: int, nb: int, ea: int, na: int) -> tuple[float, float, float]:
    """p_b - p_a with Newcombe's hybrid score interval (method 10), written for the reduction:
    low = r - sqrt((u_a - p_a)^2 + (p_b - l_b)^2), high = r + sqrt((p_a - l_a)^2 + (u_b - p_b)^2)."""
    pb, pa = eb / nb, ea / na
    (lb, ub), (la, ua) = wilson(eb, nb), wilson(ea, na)
    r = pb - pa
    return r, r - math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2), r + math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)


def nnt_entry(eb: int, nb: int, ea: int, na: int) -> Entry:
    """The ledger entry of the NNT of these counts, as Ledger.record stores it (NaN as None)."""
    row = number_needed_to_treat(eb, nb, ea, na).iloc[0]
    numbers = {k: None if math.isnan(row[k]) else float(row[k]) for k in ("estimate", "conf_low", "conf_high")}
    return entry(**numbers, n=int(row.n), method=row.method, warnings=[row.warnings] if row.warnings else [])


# Each case: counts (events before, n before, events after, n after), the risk reduction p_b - p_a with
# its Newcombe interval (by hand, and the same to 6 decimals from R with the formulas above), the
# reciprocals rounded up, and the text.
NNT_CASES = {
    # 0.031667 (-0.133979 to 0.193767): 1/0.031667 = 31.58 -> NNTB 32; the interval includes zero, so
    # it runs from NNTB 1/0.193767 = 5.16 -> 6 through infinity to NNTH 1/0.133979 = 7.46 -> 8.
    # The old style sorted the rounded-up limits into "32 (95% CI -7 to 6)", which excludes 32.
    "crosses zero, benefit": ((12, 50, 10, 48), "NNTB 32 (95% CI NNTB 6 to infinity to NNTH 8)"),
    # the same counts swapped: -0.031667 (-0.193767 to 0.133979): NNTH 32, NNTB 1/0.133979 = 7.46 -> 8,
    # NNTH 1/0.193767 = 5.16 -> 6
    "crosses zero, harm": ((10, 48, 12, 50), "NNTH 32 (95% CI NNTB 8 to infinity to NNTH 6)"),
    # the reference study's error at discharge: 0.514576 (0.390392 to 0.615226): 1/0.514576 = 1.94 -> 2,
    # 1/0.615226 = 1.63 -> 2, 1/0.390392 = 2.56 -> 3 (the paper printed 3 (2 to 3), which the counts do
    # not give: see tests/analyses/test_published_check.py)
    "clear benefit": ((66, 101, 15, 108), "NNTB 2 (95% CI 2 to 3)"),
    # swapped: -0.514576 (-0.615226 to -0.390392): one more error for every 1.94 -> 2 patients, 2 to 3
    "clear harm": ((15, 108, 66, 101), "NNTH 2 (95% CI 2 to 3)"),
    # equal risks: 0 (-0.157047 to 0.157047): the NNT is infinite, the limits 1/0.157047 = 6.37 -> 7
    "zero difference": ((10, 50, 10, 50), "infinity (95% CI NNTB 7 to infinity to NNTH 7)"),
}


@pytest.mark.parametrize("case", NNT_CASES)
def test_nnt_in_altmans_notation_from_the_ledger_entry(case):
    counts, expected = NNT_CASES[case]
    nnt = nnt_entry(*counts)
    reduction, low, high = risk_reduction_by_hand(*counts)
    # the entry holds the reciprocals of the hand-computed reduction and its limits (NNTB limit in
    # conf_low and NNTH limit, negative, in conf_high when the interval includes zero)
    assert sorted((nnt.conf_low, nnt.conf_high)) == pytest.approx(sorted((1 / low, 1 / high)), rel=1e-9)
    if reduction == 0:
        assert nnt.estimate is None
    else:
        assert nnt.estimate == pytest.approx(1 / reduction, rel=1e-9)
    assert render("{{ x | nnt }}", {"x": nnt}) == expected


def test_nnt_reads_the_limits_in_either_order():
    # an interval through infinity may come sorted (NNTH limit first) from another source
    altman = entry(estimate=31.58, conf_low=5.16, conf_high=-7.46)
    sorted_ = entry(estimate=31.58, conf_low=-7.46, conf_high=5.16)
    assert render("{{ a | nnt }} / {{ s | nnt }}", {"a": altman, "s": sorted_}) == (
        "NNTB 32 (95% CI NNTB 6 to infinity to NNTH 8) / NNTB 32 (95% CI NNTB 6 to infinity to NNTH 8)"
    )


def test_nnt_with_an_infinite_limit():
    # number_needed_to_treat leaves a limit empty when a risk-difference limit is exactly zero
    benefit = entry(estimate=20.17, conf_low=9.62, conf_high=None)
    harm = entry(estimate=-20.17, conf_low=None, conf_high=-9.62)
    assert render("{{ b | nnt }}; {{ h | nnt }}", {"b": benefit, "h": harm}) == (
        "NNTB 21 (95% CI 10 to infinity); NNTH 21 (95% CI 10 to infinity)"
    )


@pytest.mark.parametrize(
    "numbers",
    [
        # NNTB 3 lies between NNTH 7.46 and NNTB 5.16, outside an interval through infinity
        {"estimate": 3.0, "conf_low": 5.16, "conf_high": -7.46},
        # a benefit with an interval of harms
        {"estimate": 2.0, "conf_low": -3.0, "conf_high": -1.5},
        # an infinite NNT with an interval that does not reach infinity
        {"estimate": None, "conf_low": 1.6, "conf_high": 2.6},
    ],
)
def test_an_nnt_interval_that_excludes_its_estimate_is_an_error_not_text(numbers):
    with pytest.raises(StudyError) as caught:
        render("{{ x | nnt }}", {"x": entry(**numbers)})
    assert f"'x' has no interval that contains its estimate ({numbers['estimate']} is outside " in str(caught.value)


@pytest.mark.parametrize("style", sorted(set(STYLES) - {"pub", "pub_p"}))
def test_an_entry_not_estimated_prints_so_in_every_style_of_its_own_numbers(style):
    # a model that did not fit: recorded with a warning, but no number
    failed = entry(warnings=["The model did not converge"])
    assert all(getattr(failed, field) is None for field in NUMBERS)
    assert render(f"OR {{{{ x | {style} }}}}", {"x": failed}) == "OR not estimated"


@pytest.mark.parametrize("style, expected", [
    ("est_ci", "OR 0.04 (95% CI not estimated)"),
    ("ci", "OR not estimated"),
    ("pct_ci", "OR 4.0% (95% CI not estimated)"),
    ("pp_ci", "OR 4.0 percentage points (95% CI not estimated)"),
])
def test_an_estimate_without_an_interval_prints_its_interval_as_not_estimated(style, expected):
    # an odds ratio with no events after the change: the point estimate exists, the upper limit does not
    separated = entry(estimate=0.04, conf_low=0.001, n=120, warnings=["No events after the change"])
    assert render(f"OR {{{{ x | {style} }}}}", {"x": separated}) == expected
