"""The caterpillar plot of the headline outcome's random intercepts by cluster (`figure_data.modes`, kind
`modes`): on small made-up studies whose columns are not the reference's, with and without disclosure control,
and on the reference mixed-model data against lme4's ranef."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import disclosure, tables
from analysis.analyses import figure_data, outcomes
from analysis.config import load_study
from analysis.data.derive import derive_all
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from analysis.stats.mixed import mixed_logistic
from tests.stats.conftest import REFERENCE, RResults

pytestmark = pytest.mark.filterwarnings("error")

# unit -> (patients, share with the event): every count and non-count at least 10 but unit "U6", of 3 patients
UNITS = {"U1": (40, 0.25), "U2": (44, 0.4), "U3": (48, 0.5), "U4": (52, 0.6), "U5": (56, 0.7), "U6": (3, 1 / 3)}


def _frame(units: dict) -> pd.DataFrame:
    rows = []
    for unit, (n, share) in units.items():
        events = round(n * share)
        rows += [{"Unit": unit, "Phase": "pre" if i % 2 else "post", "Age (y)": 30 + (7 * i) % 60,
                  "Harm event": "yes" if i < events else "no"} for i in range(n)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "Patient ref", [f"P{i:04d}" for i in range(len(frame))])
    return frame


def _study(tmp_path: Path, frame: pd.DataFrame, *, synthetic: bool, outcome: dict | None = None,
           covariates=("age_years",), name: str = "units"):
    raw = tmp_path / "raw.csv"
    frame.to_csv(raw, index=False)
    columns = {"pid": {"from": "Patient ref", "type": "string"}, "phase": {"from": "Phase", "type": "string"},
               "unit": {"from": "Unit", "type": "string"}, "age_years": {"from": "Age (y)", "type": "number"},
               "harm": {"from": "Harm event", "type": "boolean"}}
    spec = {
        "title": "Harm by unit", "synthetic": synthetic,
        "tables": {"people": {"file": str(raw), "key": "pid", "columns": columns,
                              "values": {"harm": {"yes": True, "no": False}}}},
        "period": {"column": "phase", "before": {"label": "Pre", "value": "pre"},
                   "after": {"label": "Post", "value": "post"}},
        "outcomes": {"harmed": {"type": "binary", "table": "people", "column": "harm", "label": "Harm",
                                **(outcome or {})}},
        "covariates": list(covariates), "clusters": {"primary": "unit"}, "seeds": {"models": 1},
        "outputs": {"folder": str(tmp_path / "out")},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    study = load_study(path)
    return study, derive_all(validate_study(study).frames, study)


def _not_exported(name: str) -> pd.DataFrame:
    raise StudyError(f"table '{name}' has not been exported")


def _exported(study):
    return lambda name: tables.read(study, name)


def test_synthetic_study_shows_every_cluster_sorted_by_mode(tmp_path):
    study, derived = _study(tmp_path, _frame(UNITS), synthetic=True)
    (figure,) = [f for f in figure_data.figures_of(study, has_monthly=False) if f.kind == "modes"]
    assert figure.name == "harmed_modes_by_unit" and figure.keys == ("harmed",)
    table, suppressed = figure_data.modes(derived, study, "harmed")
    assert suppressed == [] and set(table["cluster"]) == set(UNITS)
    assert table["estimate"].is_monotonic_increasing
    # n per cluster: the patients of the unit the model used, as a groupby counts them
    data = outcomes.outcome_data(derived, study, "harmed")
    assert table.set_index("cluster")["n"].to_dict() == data.groupby("unit").size().to_dict()
    # the model of the study's plan: the same fit as the ledger's odds ratio (its n, no second specification)
    fit = mixed_logistic(data, "y ~ after + age_years", "unit", period="period", seed=1)
    assert table["n"].sum() == fit["n"].iloc[0]
    assert (table["conf_high"] - table["estimate"]).to_numpy() == pytest.approx(1.959964 * table["std_error"], 1e-6)
    # a figure with one point per cluster, and no sentence about disclosure
    figure_data.export_tables(study, [figure], derived, _not_exported)
    drawn = figure_data.draw(figure, study, {}, derived, _exported(study))
    labels = [t.get_text() for t in drawn.axes[0].get_yticklabels()]
    assert labels == table["cluster"].tolist()  # lowest mode at the bottom (first tick)
    assert "log-odds" in drawn.axes[0].get_xlabel() and drawn.axes[0].get_title(loc="left") == "Harm"
    assert any(np.allclose(line.get_xdata(), 0.0) for line in drawn.axes[0].lines)
    assert figure_data.hidden(figure, study, _exported(study)) is None


def test_acro_hides_the_small_cluster_and_the_next_smallest(tmp_path):
    study, derived = _study(tmp_path, _frame(UNITS), synthetic=False)
    (figure,) = [f for f in figure_data.figures_of(study, has_monthly=False) if f.kind == "modes"]
    names = figure_data.export_tables(study, [figure], derived, _not_exported)
    assert names == [figure.name]
    written = tables.read(study, figure.name)
    hidden = written[written["estimate"].astype(str) == "*"]
    # U6 (3 patients) fails the threshold; alone hidden, the model's n less the others would give it back, so
    # the smallest other unit (U1, 40 patients) goes too; hidden rows last, by name, with every number
    assert hidden["cluster"].tolist() == ["U1", "U6"] and written["cluster"].tolist()[-2:] == ["U1", "U6"]
    assert (hidden[["n", "estimate", "std_error", "conf_low", "conf_high"]].astype(str) == "*").all(axis=None)
    assert pd.to_numeric(written["n"], errors="coerce").dropna().ge(10).all()
    record = json.loads((study.output_dir / "sdc" / f"table.{figure.name}.json").read_text())
    rules = {(s["row"], s["rule"]) for s in record["suppressed"]}
    assert rules == {(4, disclosure.SECONDARY), (5, disclosure.THRESHOLD)} and record["status"] == "review"
    # the figure leaves them out and says so
    drawn = figure_data.draw(figure, study, {}, derived, _exported(study))
    assert [t.get_text() for t in drawn.axes[0].get_yticklabels()] == written["cluster"].tolist()[:4]
    note = figure_data.hidden(figure, study, _exported(study))
    assert "unit groups whose counts are suppressed" in note and "left out" in note


def test_acro_hides_what_other_outputs_hid(tmp_path):
    study, derived = _study(tmp_path, _frame(UNITS), synthetic=False, outcome={"analyses": {"by_cluster": True}})
    # the by-cluster table (notebook 03) hid U3's counts in one period: its mode is hidden too
    by_unit = pd.DataFrame({"cluster": ["U3", "U3", "U4"], "period": ["before", "after", "before"],
                            "events": ["*", 12, 13], "n": [24, 24, 26], "estimate": ["*", 0.5, 0.5]})
    study_tables = {"primary_harmed_by_unit": by_unit}
    table, _ = figure_data.modes(derived, study, "harmed", lambda name: study_tables[name] if name in study_tables
                                 else _not_exported(name))
    assert table.loc[table["estimate"].astype(str) == "*", "cluster"].tolist() == ["U3", "U6"]
    # the ledger hid the outcome (its counts): every mode is hidden and the figure says no unit can be shown
    disclosure.write_record(study, "ledger.03_primary", {"suppressed": [
        {"entry": "harmed.events_before", "fields": ["estimate"], "rule": disclosure.THRESHOLD, "family": True}]})
    (figure,) = [f for f in figure_data.figures_of(study, has_monthly=False) if f.kind == "modes"]
    figure_data.export_tables(study, [figure], derived, lambda name: study_tables[name])
    assert (tables.read(study, figure.name)["estimate"].astype(str) == "*").all()
    drawn = figure_data.draw(figure, study, {}, derived, _exported(study))
    assert "No unit can be shown under disclosure control" in [t.get_text() for t in drawn.axes[0].texts]


def test_one_cluster_gives_a_figure_that_says_why(tmp_path):
    study, derived = _study(tmp_path, _frame({"U1": (60, 0.4)}), synthetic=True)
    (figure,) = [f for f in figure_data.figures_of(study, has_monthly=False) if f.kind == "modes"]
    table, _ = figure_data.modes(derived, study, "harmed")
    assert len(table) == 1 and table["estimate"].isna().all() and "a single cluster of unit" in table["warnings"][0]
    figure_data.export_tables(study, [figure], derived, _not_exported)
    drawn = figure_data.draw(figure, study, {}, derived, _exported(study))
    assert any("a single cluster of unit" in t.get_text().replace("\n", " ") for t in drawn.axes[0].texts)


def test_hidden_clusters_rules():
    acro, hes = disclosure.PROFILES["acro"], disclosure.PROFILES["nhs_hes"]
    sizes = pd.DataFrame({"level": ["a", "b", "c", "d"], "n": [30, 30, 12, 50], "events": [15, 25, 0, 20]})
    # b: 30 - 25 = 5 without the event; c: a zero (ACRO) and 12 - 0 fine; nothing else fails
    assert {k: r for k, (r, _) in disclosure.hidden_clusters(sizes, acro).items()} == {
        "b": disclosure.THRESHOLD, "c": disclosure.ZERO}
    # HES shows zeros and suppresses 1 to 7: b alone fails, so the smallest other (c, 12) is hidden with it
    assert {k: r for k, (r, _) in disclosure.hidden_clusters(sizes, hes).items()} == {
        "b": disclosure.THRESHOLD, "c": disclosure.SECONDARY}
    assert set(disclosure.hidden_clusters(sizes.iloc[[0, 3]], acro, frozenset({"d"}))) == {"d", "a"}
    assert disclosure.hidden_clusters(sizes.iloc[[0, 3]], acro) == {}


def test_modes_of_a_study_match_lme4_ranef(tmp_path):
    # the reference data of tests/stats/test_mixed.py (glmer error ~ after + age10 + (1 | team)) declared as a
    # study: the figure's modes and conditional SDs are lme4's
    data = pd.read_csv(REFERENCE / "data" / "mixed.csv", keep_default_na=False, na_values=[""])
    data = data[data["dataset"] == "medium"].reset_index(drop=True)
    frame = pd.DataFrame({"Patient ref": [f"P{i:05d}" for i in range(len(data))],
                          "Unit": data["team"], "Phase": np.where(data["after"] == 1, "post", "pre"),
                          "Age (y)": data["age10"], "Harm event": np.where(data["error"] == 1, "yes", "no")})
    study, derived = _study(tmp_path, frame, synthetic=True)
    table, _ = figure_data.modes(derived, study, "harmed")
    r = RResults("mixed")
    for x in table.itertuples():
        assert abs(x.estimate - r("medium_exact", f"ranef|team|{x.cluster}", "estimate")) <= 2e-5
        assert x.std_error == pytest.approx(r("medium_exact", f"ranef|team|{x.cluster}", "cond_sd"), rel=1e-4)
    levels = [term for term, quantity in r.items("medium_exact") if term.startswith("ranef|team|")
              and quantity == "estimate"]
    assert len(table) == len(levels)


def test_under_the_rules_the_other_outputs_must_be_given(tmp_path):
    study, derived = _study(tmp_path, _frame(UNITS), synthetic=False)
    with pytest.raises(ValueError, match="exported="):
        figure_data.modes(derived, study, "harmed")
