"""Inputs of tests/reference/designs.R (controlled before-after), from fixed seeds; run by generate.sh.

- did_counts.csv: four-group counts (intervention/control x before/after): the reference study's 66/101 and
  15/108 beside a control with a secular fall, a control with no change, a zero cell, small groups;
- did.csv: patient rows with a site, intervention (0/1), after (0/1), age and a binary outcome: `tiny` (6 sites,
  3 intervention and 3 control, 30 patients per site and period: the wild bootstrap's 6^6 = 46,656 weight
  combinations enumerated) and `medium` (12 sites, 6 and 6, 40 per site and period, a site random intercept);
- did_times.csv: patient rows by time point (-4 ... -1 before the change, 0 ... 2 after) for the event study and
  the pre-period trend comparison: `parallel` (10 sites, the groups' pre-period courses parallel) and `diverging`
  (10 sites, the intervention group's log odds falling by 0.3 per time point before the change);
- did_times_other.csv: a count (`events` over `days`) and a continuous outcome (`score`) by site and time point
  (-4 ... 2, the change at 0), 10 sites: the count's pre-period courses diverge, the score's are parallel;
- did_other.csv: a count with its exposure (`events` over `days`) and a continuous outcome (`score`) by site and
  period, 12 sites (6 and 6), 30 patients per site and period, site random intercepts on both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def patients(name: str, sites: int, per_cell: int, sd: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    effect = rng.normal(0, sd, sites)
    for site in range(sites):
        intervention = int(site < sites // 2)
        for after in (0, 1):
            age = np.round(rng.normal(70, 10, per_cell), 0)
            eta = -0.2 + effect[site] - 0.3 * after - 1.0 * intervention * after + 0.02 * (age - 70)
            y = (rng.random(per_cell) < 1 / (1 + np.exp(-eta))).astype(int)
            rows += [{"dataset": name, "site": f"s{site + 1:02d}", "intervention": intervention, "after": after,
                      "age": a, "y": v} for a, v in zip(age, y, strict=True)]
    return pd.DataFrame(rows)


def timed(name: str, sites: int, per_cell: int, pre_slope: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    effect = rng.normal(0, 0.3, sites)
    for site in range(sites):
        intervention = int(site < sites // 2)
        for time in range(-4, 3):
            age = np.round(rng.normal(70, 10, per_cell), 0)
            eta = (-0.3 + effect[site] - 0.05 * time + pre_slope * intervention * min(time, 0)
                   - 0.8 * intervention * (time >= 0) + 0.02 * (age - 70))
            y = (rng.random(per_cell) < 1 / (1 + np.exp(-eta))).astype(int)
            rows += [{"dataset": name, "site": f"s{site + 1:02d}", "intervention": intervention, "time": time,
                      "age": a, "y": v} for a, v in zip(age, y, strict=True)]
    return pd.DataFrame(rows)


def other(sites: int, per_cell: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    count_effect, score_effect = rng.normal(0, 0.3, sites), rng.normal(0, 1.0, sites)
    for site in range(sites):
        intervention = int(site < sites // 2)
        for after in (0, 1):
            age = np.round(rng.normal(70, 10, per_cell), 0)
            days = rng.integers(2, 30, per_cell)
            rate = np.exp(np.log(0.1) + count_effect[site] - 0.2 * after - 0.5 * intervention * after
                          + 0.01 * (age - 70))
            events = rng.poisson(rate * days)
            score = np.round(20 + score_effect[site] - 1.0 * after - 2.0 * intervention * after + 0.05 * (age - 70)
                             + rng.normal(0, 3, per_cell), 2)
            rows += [{"site": f"s{site + 1:02d}", "intervention": intervention, "after": after, "age": a, "days": d,
                      "events": e, "score": v} for a, d, e, v in zip(age, days, events, score, strict=True)]
    return pd.DataFrame(rows)


def timed_other(sites: int, per_cell: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    count_effect, score_effect = rng.normal(0, 0.3, sites), rng.normal(0, 1.0, sites)
    for site in range(sites):
        intervention = int(site < sites // 2)
        for time in range(-4, 3):
            age = np.round(rng.normal(70, 10, per_cell), 0)
            days = rng.integers(2, 30, per_cell)
            # the count's pre-period courses diverge (the intervention group's rate falls by 0.1 per time point);
            # the score's are parallel
            rate = np.exp(np.log(0.1) + count_effect[site] - 0.03 * time + 0.1 * intervention * min(time, 0)
                          - 0.5 * intervention * (time >= 0) + 0.01 * (age - 70))
            events = rng.poisson(rate * days)
            score = np.round(20 + score_effect[site] - 0.2 * time - 2.0 * intervention * (time >= 0)
                             + 0.05 * (age - 70) + rng.normal(0, 3, per_cell), 2)
            rows += [{"site": f"s{site + 1:02d}", "intervention": intervention, "time": time, "age": a, "days": d,
                      "events": e, "score": v} for a, d, e, v in zip(age, days, events, score, strict=True)]
    return pd.DataFrame(rows)


def main() -> None:
    counts = pd.DataFrame([
        ("reference_secular_fall", 66, 101, 15, 108, 60, 100, 45, 100),
        ("no_control_change", 66, 101, 15, 108, 50, 100, 50, 100),
        ("zero_cell", 5, 40, 0, 38, 4, 41, 3, 39),
        ("small", 3, 9, 1, 8, 2, 7, 4, 10),
    ], columns=["dataset", "e_i0", "n_i0", "e_i1", "n_i1", "e_c0", "n_c0", "e_c1", "n_c1"])
    counts.to_csv(HERE / "did_counts.csv", index=False)
    frames = [patients("tiny", 6, 30, 0.3, 20260101), patients("medium", 12, 40, 0.4, 20260102)]
    pd.concat(frames, ignore_index=True).to_csv(HERE / "did.csv", index=False)
    frames = [timed("parallel", 10, 30, 0.0, 20260103), timed("diverging", 10, 30, -0.3, 20260104)]
    pd.concat(frames, ignore_index=True).to_csv(HERE / "did_times.csv", index=False)
    other(12, 30, 20260105).to_csv(HERE / "did_other.csv", index=False)
    timed_other(10, 25, 20260106).to_csv(HERE / "did_times_other.csv", index=False)


if __name__ == "__main__":
    main()
