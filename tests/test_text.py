"""Ledger numbers written as prose: each style checked by hand."""

from __future__ import annotations

import pytest

from analysis.errors import StudyError
from analysis.ledger import Entry
from analysis.text import render

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
        ("{{ severe.nnt | nnt }}", "21 (95% CI 10 to 142)"),  # rounded up: 20.17 -> 21, 9.57 -> 10
        ("{{ zero | est }}", "0.00"),  # never "-0.00"
        ("{{ discharge.or | pub }}", "0.09 (95% CI 0.04 to 0.17)"),
        ("n = {{ discharge.before | n }}", "n = 101"),
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
    assert "'p.mid' has no estimate, which style 'est' needs" in message
