"""A matrix of small generated studies through the notebooks' analysis functions: outcome type x period
by dates or by a column x no, one or two cluster columns x the degenerate data a stranger brings (zero
events, all events, a single cluster, one row per cluster, an outcome entirely missing, too few time
points). None may crash; what cannot be estimated is recorded with a sentence saying why."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.analyses import cohort, figure_data, outcomes, robustness
from analysis.config import load_study
from analysis.data.derive import derive_all
from analysis.data.validate import validate_study

TYPES = ("binary", "count", "continuous", "ordinal")
CASES = ("normal", "zero_events", "all_events", "single_cluster", "one_per_cluster", "all_missing",
         "few_time_points")
LEVELS = ["low", "mid", "high"]


def _data(case: str, n: int = 48, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    after = np.arange(n) % 2
    months = rng.integers(0, 6, n) if case != "few_time_points" else np.zeros(n, int)
    dates = [f"{2020 + a}-{m + 1:02d}-15" for a, m in zip(after, months, strict=True)]
    wards = rng.integers(0, 6, n) if case != "single_cluster" else np.zeros(n, int)
    if case == "one_per_cluster":
        wards = np.arange(n)
    event = rng.random(n) < np.where(after == 1, 0.25, 0.55)
    if case == "zero_events":
        event[:] = False
    if case == "all_events":
        event[:] = True
    count = rng.poisson(np.where(after == 1, 1.0, 2.0)) * (case != "zero_events")
    score = rng.normal(10 - 2 * after, 3).round(1)
    level = np.array(LEVELS)[np.clip(rng.integers(0, 3, n) - (after & (rng.random(n) < 0.4)), 0, 2)]
    frame = pd.DataFrame({
        "id": [f"R{i:03d}" for i in range(n)], "arm": np.where(after == 1, "new", "usual"), "admitted": dates,
        "ward": [f"W{w}" for w in wards], "site": [f"S{w % 2}" for w in wards], "age": rng.integers(20, 90, n),
        "event": np.where(event, "Y", "N"), "count": count, "days": rng.integers(1, 20, n), "score": score,
        "level": level,
    })
    if case == "all_missing":
        frame[["event", "count", "score", "level"]] = pd.NA
    if case == "zero_exposure":  # a patient discharged on the day of the visit: no days at risk
        frame.loc[[3, 8], "days"] = 0
    return frame


def _study(tmp_path, kind: str, by_date: bool, clusters: int, case: str):
    frame = _data(case)
    raw = tmp_path / "data.csv"
    frame.to_csv(raw, index=False)
    columns = {"id": {"type": "string"}, "arm": {"type": "string"}, "admitted": {"type": "date"},
               "ward": {"type": "string"}, "site": {"type": "string"}, "age": {"type": "integer"},
               "event": {"type": "boolean"}, "count": {"type": "integer"}, "days": {"type": "integer"},
               "score": {"type": "number"}, "level": {"type": "category", "values": list(LEVELS), "ordered": True}}
    outcome = {"binary": {"column": "event"}, "count": {"column": "count", "exposure": "days"},
               "continuous": {"column": "score"}, "ordinal": {"column": "level", "levels": list(LEVELS)}}[kind]
    period = ({"column": "admitted", "before": {"label": "Before", "start": "2020-01-01", "end": "2020-12-31"},
               "after": {"label": "After", "start": "2021-01-01", "end": "2021-12-31"}} if by_date else
              {"column": "arm", "before": {"label": "Usual", "value": "usual"},
               "after": {"label": "New", "value": "new"}})
    spec = {
        "title": f"Degenerate {kind} {case}", "synthetic": True,
        "tables": {"patients": {"file": str(raw), "key": "id", "columns": columns,
                                "values": {"event": {"Y": True, "N": False}}}},
        "period": period,
        "outcomes": {"y": {"type": kind, "table": "patients", "label": f"Outcome ({kind})", **outcome}},
        "covariates": ["age"],
        "clusters": {"primary": "ward" if clusters else None,
                     "alternatives": ["site"] if clusters == 2 else []},
        "seeds": {"models": 1}, "outputs": {"folder": str(tmp_path / "out")},
    }
    path = tmp_path / "degenerate.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    study = load_study(path)
    return study, derive_all(validate_study(study).frames, study)


def _sentences(frame: pd.DataFrame) -> str:
    return " ".join(frame["warnings"].dropna().astype(str))


MATRIX = [(kind, by_date, clusters, case)
          for kind, case in itertools.product(TYPES, CASES)
          for by_date, clusters in [((TYPES.index(kind) + CASES.index(case)) % 2 == 0,
                                     (TYPES.index(kind) + CASES.index(case)) % 3)]]
FULL_CROSS = [(kind, by_date, clusters, "normal")
              for kind, by_date, clusters in itertools.product(TYPES, (True, False), (0, 1, 2))]


@pytest.mark.parametrize(("kind", "by_date", "clusters", "case"), sorted(set(MATRIX + FULL_CROSS)))
def test_no_study_crashes_and_every_gap_is_explained(tmp_path, kind, by_date, clusters, case):
    study, tables = _study(tmp_path, kind, by_date, clusters, case)
    results = outcomes.analyse(tables, study, "y")
    assert len(results) and results["name"].str.startswith("y.").all()
    missing = results[["estimate", "statistic", "p_value"]].isna().all(axis=1)
    # every entry without a number says why, in a sentence
    assert (results.loc[missing, "warnings"].astype(str).str.len() > 0).all(), results.loc[missing, "name"]
    text = _sentences(results)
    if case == "all_missing":
        # counts of nothing are zeros; everything else is recorded without a value, saying why
        counted = results["estimate"] == 0
        assert missing[~counted].all(), results.loc[~counted & ~missing, ["name", "estimate"]]
        assert "no patients with a recorded outcome" in text or "no values" in text
    if clusters == 0 and kind in ("binary", "continuous", "count") and case not in ("all_missing", "zero_events",
                                                                                     "all_events"):
        assert "the study declares no cluster" in text
    if kind == "binary" and case in ("zero_events", "all_events"):
        assert "every analysed row has the same outcome" in text
    # the robustness notebook and Table 1 on the same study
    if robustness.skipped_time_series(study) is None:
        trend, _ = robustness.time_series(robustness.monthly(tables, study))
        if case == "few_time_points":
            assert "at least 3 time points" in _sentences(trend)
    else:
        assert not by_date or kind != "binary"
    extremes, _ = robustness.leave_one_cluster_out(tables, study)
    if kind == "binary" and clusters and case == "one_per_cluster":
        assert "every cluster of ward has a single observation" in _sentences(extremes)
    if kind == "binary" and clusters and case == "single_cluster":
        assert "leaving one out needs at least 3" in _sentences(extremes)
    cohort.table_one(tables["patients"], study)
    drawn = figure_data.figures_of(study, robustness.skipped_time_series(study) is None)
    assert kind == "count" or [f.kind for f in drawn]


def test_without_dates_the_time_series_is_skipped_with_a_sentence(tmp_path):
    study, _ = _study(tmp_path, "binary", False, 1, "normal")
    assert "not from dates" in robustness.skipped_time_series(study)


def test_a_zero_exposure_leaves_the_rate_models_unestimated_with_what_to_fix(tmp_path):
    # log(0) has no offset: the models say so and how to fix it, the rates by period are still given
    study, tables = _study(tmp_path, "count", True, 1, "zero_exposure")
    results = outcomes.analyse(tables, study, "y").set_index("name")
    for name in ("y.rate_ratio_poisson", "y.rate_ratio_negative_binomial", "y.rate_ratio_mixed"):
        assert pd.isna(results.loc[name, "estimate"]), name
        assert "2 of 48 rows have days of 0 or less" in results.loc[name, "warnings"]
        assert "population: days > 0" in results.loc[name, "warnings"]
    assert results.loc["y.rate_before", "estimate"] > 0
