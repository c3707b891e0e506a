"""The simulated grid of a study's `power:` section (analysis/analyses/planning.py)."""

from __future__ import annotations

import math

import pytest

from analysis.analyses import planning
from analysis.config import load_study
from analysis.errors import StudyError
from analysis.stats import power

GRID = {"baseline": 0.3, "effects": [0.6, 0.8], "cluster_sd": 0.4, "cluster_size": [20], "clusters": [4, 8],
        "simulations": 30, "seed": 9}


def test_the_grid_has_a_null_before_each_sizes_effects(write_study):
    study = load_study(write_study({"power": GRID}))
    points = planning.scenarios(study)
    assert [(p.clusters, p.extra["effect_label"]) for p in points] == [
        (4, "null (type I error)"), (4, "OR 0.6"), (4, "OR 0.8"), (8, "null (type I error)"), (8, "OR 0.6"),
        (8, "OR 0.8")]
    assert {p.design for p in points} == {"before_after"}  # the study's own design.type
    assert points[1].log_or == pytest.approx(math.log(0.6))
    assert points[0].log_or == 0 and points[0].extra["analytic"] == 0.05
    # the analytic column is the formula's answer at the same point, with the same latent-scale ICC
    expected = power.cluster_power(0.3, power.p_after(0.3, 0.6, "odds_ratio"), clusters=4, cluster_size=20,
                                   icc=power.icc_from_cluster_sd(0.4))["estimate"].iloc[0]
    assert points[1].extra["analytic"] == pytest.approx(expected)


def test_risk_differences_and_icc_become_the_conditional_model(write_study):
    grid = {**GRID, "effect_scale": "risk_difference", "effects": [-0.1], "cluster_sd": None, "icc": 0.05}
    point = planning.scenarios(load_study(write_study({"power": grid})))[1]
    # logit(0.2) - logit(0.3); the SD whose latent ICC s^2 / (s^2 + pi^2 / 3) is 0.05
    assert point.log_or == pytest.approx(math.log(0.2 / 0.8) - math.log(0.3 / 0.7))
    assert power.icc_from_cluster_sd(point.cluster_sd) == pytest.approx(0.05)


def test_simulated_table_ledger_and_curves(write_study):
    study = load_study(write_study({"power": GRID}))
    table = planning.simulated_table(study)
    assert list(table["term"]) == ["type_i_error", "power", "power"] * 2
    assert (table["n"] == 30).all()
    rows = planning.ledger_rows(table, study.power)
    assert rows["name"].is_unique
    assert "power.before_after.or_0_6.size_20.clusters_8" in set(rows["name"])
    assert "power.before_after.null.size_20.clusters_4" in set(rows["name"])
    curves = planning.curve_frame(table)
    assert len(curves) == 4 and set(curves["panel"]) == {""}
    assert planning.size_label(table) == "Clusters per period"
    needed = planning.sizes_for_target(table, 0.8)
    assert list(needed.columns) == ["effect_label", "cluster_size", "clusters_for_power_0.8", "power"]


def test_the_design_to_simulate(write_study):
    steps = load_study(write_study({"power": {**GRID, "steps": 4}}))
    assert planning.simulated_design(steps) == "stepped_wedge"
    its = load_study(write_study({"power": {**GRID, "design": "interrupted_time_series", "months": [6, 12]}}))
    points = planning.scenarios(its)
    assert [p.months for p in points[::3]] == [6, 12] and points[0].clusters == 1
    assert planning.size_label(planning.simulated_table(its)) == "Months before (and as many after) the change"


@pytest.mark.parametrize("change, message", [
    ({"design": "interrupted_time_series"}, "`power.months`"),
    ({"months": [12]}, "is for an interrupted time series"),
    ({"design": "controlled_before_after", "clusters": [1, 4]}, "at least 2 clusters per arm"),
])
def test_grids_that_cannot_be_simulated(write_study, change, message):
    with pytest.raises(StudyError, match=message):
        planning.scenarios(load_study(write_study({"power": {**GRID, **change}})))


def test_no_power_section(write_study):
    with pytest.raises(StudyError, match="no `power:` section"):
        planning.scenarios(load_study(write_study()))


def test_power_curve_figure_from_the_simulated_table(write_study):
    from analysis.figures.plots import power_curve

    study = load_study(write_study({"power": {**GRID, "cluster_size": [10, 20]}}))
    curves = planning.curve_frame(planning.simulated_table(study))
    assert sorted(set(curves["panel"])) == ["10 patients per cluster-period", "20 patients per cluster-period"]
    figure = power_curve(curves, xlabel="Clusters per period")
    assert len(figure.axes) == 2
    top = figure.axes[0]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["OR 0.6", "OR 0.8"]  # above the panels
    # the 80% and 90% lines, and one line per effect
    levels = sorted(line.get_ydata()[0] for line in top.get_lines() if len(set(line.get_ydata())) == 1
                    and line.get_xydata().shape[0] == 2 and line.get_color() != "none")
    assert 80 in levels and 90 in levels
    with pytest.raises(ValueError, match="lacks column"):
        power_curve(curves.drop(columns="conf_low"))


def test_findings_name_the_smallest_size_that_reaches_the_target_or_the_largest(write_study):
    """A hand-made simulated table: OR 0.6 reaches 80% at 8 clusters (not at 4), OR 0.8 never does."""
    import pandas as pd

    spec = load_study(write_study({"power": GRID})).power
    rows = [("type_i_error", "null (type I error)", math.nan, 4, 0.04), ("power", "OR 0.6", 0.6, 4, 0.55),
            ("power", "OR 0.8", 0.8, 4, 0.20), ("type_i_error", "null (type I error)", math.nan, 8, 0.06),
            ("power", "OR 0.6", 0.6, 8, 0.85), ("power", "OR 0.8", 0.8, 8, 0.40)]
    table = pd.DataFrame(rows, columns=["term", "effect_label", "effect", "clusters", "estimate"]).assign(
        design="before_after", cluster_size=20.0)
    text = planning.findings(table, spec)
    assert ("To detect OR 0.6 with 20 patients per cluster-period, 8 clusters are the fewest of the grid that reach "
            "80% power: {{ power.before_after.or_0_6.size_20.clusters_8 | pct_ci }}.") in text
    assert ("To detect OR 0.8 with 20 patients per cluster-period, no size of the grid reaches 80% power: 8 "
            "clusters give {{ power.before_after.or_0_8.size_20.clusters_8 | pct_ci }}.") in text
    assert "{{ power.before_after.null.size_20.clusters_8 | pct_ci }}" in text
    needed = planning.sizes_for_target(table, 0.8)
    assert needed["clusters_for_power_0.8"].tolist()[0] == 8 and needed["clusters_for_power_0.8"].isna().tolist() == [
        False, True]


def test_grid_and_the_analytic_table_where_a_formula_exists(write_study):
    study = load_study(write_study({"power": GRID}))
    shown = dict(zip(*planning.grid(study.power).T.to_numpy(), strict=True))
    assert shown["effects"] == "0.6, 0.8" and shown["clusters"] == "4, 8" and shown["baseline"] == "0.3"
    assert "icc" not in shown  # keys not given are not shown
    assert planning.analytic_table(study).equals(planning.power_table(study.power))
    controlled = load_study(write_study({"power": {**GRID, "design": "controlled_before_after"}}))
    assert planning.analytic_table(controlled) is None
