"""`python -m analysis power <study>`: the study file's `power:` grid as a printed and exported table."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.cli import main
from analysis.config import load_study
from analysis.stats import power

GRID = {"baseline": 0.4, "effects": [0.6, 0.7], "effect_scale": "odds_ratio", "icc": 0.05,
        "cluster_size": [10, 20], "clusters": [10, 20], "alpha": 0.05, "target": 0.8}


def test_power_writes_only_its_table(write_study, tmp_path, capsys):
    path = write_study({"power": GRID})
    assert main(["power", str(path)]) == 0
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                  and not p.name.startswith(".")) == ["tables/power.csv"]
    table = pd.read_csv(out / "tables" / "power.csv")
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
    printed = capsys.readouterr().out
    assert "clusters for power 0.8" in printed and "tables/power.csv" in printed


def test_power_stepped_wedge_and_cluster_sd(write_study, tmp_path):
    grid = {**GRID, "icc": None, "cluster_sd": 0.3, "steps": 5, "cluster_size": [10], "clusters": [10, 20]}
    assert main(["power", str(write_study({"power": grid}))]) == 0
    table = pd.read_csv(tmp_path / "out" / "tables" / "power.csv")
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
    assert not (tmp_path / "out" / "tables" / "power.csv").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"icc": 0.05, "cluster_sd": 0.3}, "not both"),
    ({"effects": [1.0]}, "no valid after-period proportion"),
    ({"effect_scale": "risk_difference", "effects": [0.7]}, "no valid after-period proportion"),
    ({"steps": 30}, "needs at least 30 clusters"),
])
def test_bad_power_sections_are_refused(write_study, change, message, capsys):
    assert main(["power", str(write_study({"power": {**GRID, **change}}))]) == 2
    assert message in capsys.readouterr().err


def test_power_does_not_change_the_parameters_hash(write_study):
    plain = load_study(write_study())
    planned = load_study(write_study({"power": GRID}))
    assert planned.power is not None and plain.parameters_sha256() == planned.parameters_sha256()
