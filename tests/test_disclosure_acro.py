"""The disclosure rules agree with ACRO, cell by cell, on the tables of tests/reference/acro/.

ACRO's answers were stored by tests/reference/acro/generate.py (ACRO 1.0.2 in its own venv: it pins
pandas <= 2.3.3); each case holds its data, so the rules here run on exactly what ACRO saw.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from analysis import disclosure, stats
from analysis.stats import designs

STORED = json.loads((Path(__file__).parent / "reference" / "acro" / "acro_results.json").read_text())


def _rules(name: str, profiles=STORED["profiles"]) -> disclosure.Profile:
    # the stored profile says which of ACRO's parameters the case changed; it must be the project's too
    rules = disclosure.PROFILES[name]
    for key, value in profiles[name].items():
        assert getattr(rules, key) == value, f"profile {name}: {key} differs from the ACRO config used"
    return rules


def _as_cells(mask: pd.DataFrame) -> dict[str, dict[str, bool]]:
    return {str(r): {str(c): bool(mask.loc[r, c]) for c in mask.columns} for r in mask.index}


@pytest.mark.parametrize("case", sorted(STORED["frequency"]))
def test_frequency_rules_agree_with_acro(case):
    stored = STORED["frequency"][case]
    data = pd.DataFrame(stored["data"])
    counts = pd.crosstab(data["row"], data["column"])
    assert {str(r): {str(c): int(counts.loc[r, c]) for c in counts.columns} for r in counts.index} == stored["counts"]
    masks = disclosure.frequency_masks(counts, _rules(stored["profile"]))
    for rule in (disclosure.THRESHOLD, disclosure.ZERO):
        assert _as_cells(masks[rule]) == stored["masks"][rule], rule
    assert disclosure.overall(disclosure.status(masks)) == stored["status"]


@pytest.mark.parametrize("case", sorted(STORED["magnitude"]))
def test_magnitude_rules_agree_with_acro(case):
    stored = STORED["magnitude"][case]
    data = pd.DataFrame(stored["data"])
    masks, statuses = disclosure.magnitude_check(data, "row", "column", "value", _rules("acro"))
    for rule in (disclosure.THRESHOLD, disclosure.NK, disclosure.PPERCENT):
        assert _as_cells(masks[rule]) == stored["masks"][rule], rule
    assert disclosure.overall(statuses) == stored["status"]


def test_the_magnitude_cases_reach_every_verdict():
    # the cases are only a test if ACRO failed some cells on each rule and passed others
    cells = [v for case in STORED["magnitude"].values() for rule in (disclosure.NK, disclosure.PPERCENT)
             for row in case["masks"][rule].values() for v in row.values()]
    assert any(cells) and not all(cells)


def test_a_hand_checked_dominance_cell():
    # ward 1 before: 1000 and eleven 10s; top two 1010 of 1120 = 90.2% >= 90%: fails (n, k);
    # the rest (1120 - 1010) / 1000 = 0.11 >= 0.10: passes the p-ratio
    data = pd.DataFrame({"row": "w", "column": "b", "value": [1000.0] + [10.0] * 11})
    masks, _ = disclosure.magnitude_check(data, "row", "column", "value", _rules("acro"))
    assert bool(masks[disclosure.NK].iloc[0, 0]) and not bool(masks[disclosure.PPERCENT].iloc[0, 0])
    looser = dataclasses.replace(_rules("acro"), safe_nk_k=0.95)
    assert not bool(disclosure.magnitude_check(data, "row", "column", "value", looser)[0][disclosure.NK].iloc[0, 0])


def _model_data(stored: dict) -> pd.DataFrame:
    data = pd.DataFrame(stored["x"], columns=["x1", "x2", "x3", "x4"])
    data["y"] = stored["y"]
    return data


FORMULA = "y ~ x1 + x2 + x3 + x4"
# the project's models that ACRO's `logit` and `ols` are, each as the ledger would record it (its `df_resid` column)
OURS = {"logit": {"logistic_regression": lambda d: stats.logistic_regression(d, FORMULA),
                  "did_logistic_cluster": lambda d: designs.did_logistic_cluster(d, FORMULA, "ward")},
        "ols": {"linear_mixed, one cluster (least squares)": lambda d: stats.linear_mixed(d, FORMULA, "one"),
                "did_cluster_robust, gaussian": lambda d: designs.did_cluster_robust(d, FORMULA, "ward",
                                                                                          family="gaussian")}}


@pytest.mark.parametrize("case", sorted(STORED["models"]))
def test_model_dof_agrees_with_acro(case):
    stored = STORED["models"][case]
    assert stored["status"] == (disclosure.FAIL if stored["dof"] < 10 else disclosure.PASS)
    data = _model_data(stored).assign(one="a", ward=lambda d: np.arange(len(d)) % 3)
    for name, fit in OURS[stored["model"]].items():
        out = fit(data)
        assert out["df_resid"].nunique() == 1 and out["df_resid"].iloc[0] == stored["dof"], name
        # through the ledger's rule: every estimate of the model passes or fails as ACRO's verdict on it
        entries = {f"m.{t}": {"description": t, "method": "model", "estimate": 1.0, "n": len(data),
                              "df_resid": int(v)} for t, v in zip(out["term"], out["df_resid"], strict=True)}
        checks = disclosure.model_checks(entries, _rules("acro"))
        assert {c["status"] for c in checks.values()} == {stored["status"]}, name
        protected, hidden = disclosure.protect_entries(entries, _rules("acro"))
        failed = stored["status"] == disclosure.FAIL
        assert all(("estimate" in e) != failed for e in protected.values()), name
        assert {h["rule"] for h in hidden} == ({disclosure.DOF} if failed else set()), name


@pytest.mark.parametrize("case", sorted(STORED["models"]))
def test_count_models_dof_agree_with_statsmodels(case):
    # ACRO 1.0.2 wraps no GLM: statsmodels' df_resid, which ACRO reads for the models it wraps, is the reference
    # for the Poisson and negative binomial models (same design, counts for the outcome)
    data = _model_data(STORED["models"][case])
    data["y"] = np.random.default_rng(3).poisson(2.0, len(data))
    reference = sm.GLM(data["y"], sm.add_constant(data[["x1", "x2", "x3", "x4"]]),
                       family=sm.families.Poisson()).fit().df_resid
    for fitted in (stats.poisson_regression(data, FORMULA), stats.negative_binomial_regression(data, FORMULA)):
        assert set(fitted["df_resid"]) == {reference} and reference == STORED["models"][case]["dof"]


@pytest.mark.parametrize("case", sorted(STORED["frequency"]))
def test_an_exported_levels_table_hides_what_acro_fails(case):
    # the same counts as a notebook exports them (long, one row per period and level, with percentages):
    # the cells hidden by the rules themselves (not as partners) are the cells ACRO fails, under each profile
    # (a zero under a profile whose zeros are not disclosive is shown: ACRO's threshold check fails it, HES
    # shows it, see `disclosure.fails`)
    stored = STORED["frequency"][case]
    rules = _rules(stored["profile"])
    rows = [{"period": c, "level": r, "count": n} for r, row in stored["counts"].items() for c, n in row.items()]
    levels = pd.DataFrame(rows)
    levels["percent"] = 100 * levels["count"] / levels.groupby("period")["count"].transform("sum")
    _, report = disclosure.protect_table("levels", levels, rules)
    ours = {(levels.at[s["row"], "level"], levels.at[s["row"], "period"]) for s in report.suppressed
            if s["column"] == "count" and s["rule"] in (disclosure.THRESHOLD, disclosure.ZERO)}
    acro = {(r, c) for rule in (disclosure.THRESHOLD, disclosure.ZERO) for r, row in stored["masks"][rule].items()
            for c, failed in row.items() if failed}
    if not rules.zeros_are_disclosive:
        acro -= {(r, c) for r, row in stored["counts"].items() for c, n in row.items() if n == 0}
    assert ours == acro
