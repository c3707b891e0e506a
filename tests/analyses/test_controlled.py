"""A controlled before-after study's binary outcome (analysis/analyses/controlled.py): the rows named for the
ledger, on the `medium` reference data (12 sites), whose model values R computed (tests/reference/designs.R)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.analyses import controlled
from analysis.config import load_study
from analysis.data import load

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


@pytest.fixture
def study(write_study):
    columns = {"id": {"type": "string"}, "admitted": {"type": "date"}, "event": {"type": "boolean"},
               "site": {"type": "string"}, "intervention": {"type": "integer"}, "age": {"type": "number"}}
    return load_study(write_study({
        "tables.patients.columns": columns, "covariates": ["age"],
        "design": {"type": "controlled_before_after", "sites": "site",
                   "group": {"column": "intervention", "intervention": 1, "control": 0}}}))


@pytest.fixture
def tables():
    did = pd.read_csv(REFERENCE / "data" / "did.csv")
    medium = did[did.dataset == "medium"].reset_index(drop=True)
    return {"patients": medium.assign(event=medium["y"].astype(bool), id=[str(i) for i in range(len(medium))])
            .drop(columns=["y", "dataset"])}


def r_value(dataset: str, term: str, quantity: str) -> float:
    table = pd.read_csv(REFERENCE / "results" / "designs.csv")
    hit = table[(table.dataset == dataset) & (table.term == term) & (table.quantity == quantity)]
    return float(hit["value"].item())


def test_a_controlled_study_gets_named_did_rows_matching_r(study, tables):
    rows = controlled.results(tables, study).set_index("name")
    assert controlled.did_formula(study, "event") == "y ~ intervention * after + age"
    expected = [f"event.did.{t}" for t in controlled.PROPORTION_TERMS] + [
        f"event.did.ratio_of_odds_ratios_{s}" for s in ("mixed", "cluster_robust", "wild_bootstrap")]
    assert list(rows.index) == expected
    robust = rows.loc["event.did.ratio_of_odds_ratios_cluster_robust"]
    assert math.log(robust["estimate"]) == pytest.approx(r_value("medium_adjusted_cluster", "intervention:after",
                                                                 "estimate"), rel=1e-7)
    assert robust["std_error"] == pytest.approx(r_value("medium_adjusted_cluster", "intervention:after",
                                                        "std_error"), rel=1e-6)
    mixed = rows.loc["event.did.ratio_of_odds_ratios_mixed"]
    assert math.log(mixed["estimate"]) == pytest.approx(r_value("medium_adjusted_mixed", "intervention:after",
                                                                "estimate"), rel=2e-3)
    boot = rows.loc["event.did.ratio_of_odds_ratios_wild_bootstrap"]
    assert boot["estimate"] == pytest.approx(robust["estimate"]) and "12 clusters" in boot["description"]
    assert boot["conf_low"] < boot["estimate"] < boot["conf_high"] and "9999 draws" in boot["method"]
    # the four proportions are the cells' own
    d = tables["patients"]
    cell = d[(d.intervention == 1) & (d.after == 0)]["event"]
    assert rows.loc["event.did.proportion_intervention_before", "estimate"] == pytest.approx(cell.mean())


def test_the_bootstrap_is_seeded_from_the_study(study, tables):
    first = controlled.did_results(tables, study, "event").set_index("name")
    again = controlled.did_results(tables, study, "event").set_index("name")
    name = "event.did.ratio_of_odds_ratios_wild_bootstrap"
    assert first.loc[name, "p_value"] == again.loc[name, "p_value"]
    other = study.model_copy(update={"seeds": study.seeds.model_copy(update={"models": study.seeds.models + 1})})
    assert controlled.did_results(tables, other, "event").set_index("name").loc[name, "p_value"] != pytest.approx(
        first.loc[name, "p_value"], rel=1e-9)


def test_other_designs_get_no_rows():
    prepared = load("reference")
    assert controlled.results(prepared.tables, prepared.study).empty
