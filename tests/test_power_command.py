"""`python -m analysis power <study> [--simulate] [--out DIR]`: the study file's `power:` grid as a printed table
(written to DIR only when asked: the study's outputs are notebook 08_power's), and its errors; `--simulate` on a
cluster is tested with the cluster of tests/run/test_executor.py."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.cli import main
from analysis.config import load_study
from analysis.run import executor as executor_module
from analysis.stats import power

GRID = {"baseline": 0.4, "effects": [0.6, 0.7], "effect_scale": "odds_ratio", "icc": 0.05,
        "cluster_size": [10, 20], "clusters": [10, 20], "alpha": 0.05, "target": 0.8}


def test_power_prints_and_writes_only_where_asked(write_study, tmp_path, capsys):
    path = write_study({"power": GRID})
    assert main(["power", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "clusters for power 0.8" in printed and "wrote" not in printed
    assert not (tmp_path / "out").exists()  # the study's outputs are notebook 08_power's
    elsewhere = tmp_path / "planning"
    assert main(["power", str(path), "--out", str(elsewhere)]) == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["power.csv"]
    assert not (tmp_path / "out").exists()
    table = pd.read_csv(elsewhere / "power.csv")
    # 2 effects x 2 cluster sizes x (2 cluster counts + the clusters for the target)
    assert len(table) == 12
    assert set(table["quantity"]) == {"power", "clusters for power 0.8"}
    row = table[(table["effect"] == 0.6) & (table["cluster_size"] == 20) & (table["clusters"] == 10)
                & (table["quantity"] == "power")].iloc[0]
    p2 = 0.6 * 0.4 / (0.6 + 0.6 * 0.4)  # OR 0.6 at p0 0.4
    assert row["p_after"] == pytest.approx(p2)
    expected = power.cluster_power(0.4, p2, clusters=10, cluster_size=20, icc=0.05)["estimate"].iloc[0]
    assert row["value"] == pytest.approx(expected)
    assert row["design_effect"] == pytest.approx(1.95)
    assert "planning/power.csv" in capsys.readouterr().out


@pytest.mark.parametrize("inside", ["out", "out/tables"])
def test_out_inside_the_studys_outputs_is_refused(write_study, tmp_path, inside, capsys):
    assert main(["power", str(write_study({"power": GRID})), "--out", str(tmp_path / inside)]) == 2
    assert "is the pipeline's" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_power_stepped_wedge_and_cluster_sd(write_study, tmp_path):
    grid = {**GRID, "icc": None, "cluster_sd": 0.3, "steps": 5, "cluster_size": [10], "clusters": [10, 20]}
    assert main(["power", str(write_study({"power": grid})), "--out", str(tmp_path / "planning")]) == 0
    table = pd.read_csv(tmp_path / "planning" / "power.csv")
    assert set(table["design"]) == {"stepped_wedge (5 steps)"}
    assert table["icc"].iloc[0] == pytest.approx(power.icc_from_cluster_sd(0.3))
    needed = table[table["quantity"] == "clusters for power 0.8"]
    for _, got in needed.iterrows():
        k = int(got["clusters"])
        args = dict(steps=5, cluster_size=10, icc=got["icc"])
        assert power.stepped_wedge_power(0.4, got["p_after"], clusters=k, **args)["estimate"].iloc[0] >= 0.8
        assert power.stepped_wedge_power(0.4, got["p_after"], clusters=k - 1, **args)["estimate"].iloc[0] < 0.8


def test_a_study_without_power_exits_2(write_study, tmp_path, capsys):
    assert main(["power", str(write_study())]) == 2
    assert "no `power:` section" in capsys.readouterr().err.splitlines()[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"icc": 0.05, "cluster_sd": 0.3}, "not both"),
    ({"effects": [1.0]}, "no valid after-period proportion"),
    ({"effect_scale": "risk_difference", "effects": [0.7]}, "no valid after-period proportion"),
    ({"steps": 30}, "needs at least 30 clusters"),
    ({"simulations": 0}, "simulations"),
    ({"months": [2]}, "at least 3 months before and 3 after"),
    ({"design": "before_after", "steps": 4}, "`steps` goes with `design: stepped_wedge`"),
    ({"design": "stepped_wedge"}, "a stepped wedge needs `steps`"),
])
def test_bad_power_sections_are_refused(write_study, change, message, capsys):
    assert main(["power", str(write_study({"power": {**GRID, **change}}))]) == 2
    assert message in capsys.readouterr().err


def test_power_does_not_change_the_parameters_hash(write_study):
    plain = load_study(write_study())
    planned = load_study(write_study({"power": GRID}))
    assert planned.power is not None and plain.parameters_sha256() == planned.parameters_sha256()


def test_a_design_without_a_formula_needs_simulate(write_study, capsys):
    grid = {**GRID, "design": "controlled_before_after"}
    assert main(["power", str(write_study({"power": grid}))]) == 2
    assert "no closed-form power for a controlled before after design here: add --simulate" in capsys.readouterr().err


def test_executor_options_need_simulate(write_study, capsys):
    assert main(["power", str(write_study({"power": GRID})), "--workers", "2"]) == 2
    assert "--scheduler and --workers go with --simulate" in capsys.readouterr().err


def test_an_unreachable_scheduler_exits_2_and_writes_nothing(write_study, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(executor_module, "CONNECT_TIMEOUT", "1s")
    path = write_study({"power": {**GRID, "simulations": 5}})
    assert main(["power", str(path), "--simulate", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_all_refuses_a_study_name_too(capsys):
    assert main(["run", "example", "--all"]) == 2
    assert "give a study (example) or --all, not both" in capsys.readouterr().err


def test_a_grid_that_cannot_be_simulated_is_refused_before_a_cluster_starts(write_study, monkeypatch, capsys):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(executor_module, "executor", no_cluster)
    grid = {**GRID, "design": "interrupted_time_series"}
    assert main(["power", str(write_study({"power": grid})), "--simulate"]) == 2
    assert "`power.months` (months before and after the change) is needed" in capsys.readouterr().err


def test_a_study_of_run_all_that_cannot_be_read_is_reported_not_raised(tmp_path):
    from analysis.cli import _run_study_task

    name, status, printed, errors = _run_study_task((str(tmp_path / "missing.yml"), {}))
    assert status == 2 and printed == [] and errors[0].startswith("error: ") and "missing.yml" in errors[0]
