"""A parquet file streamed in batches and collapsed to binomial cells: the counts are pandas' groupby of
the whole file, and the mixed model fitted on the cells is the one fitted on the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data import cells as cells_module
from analysis.data.cells import binomial_cells
from analysis.errors import StudyError
from analysis.stats import mixed_logistic

BY = ["after", "age", "charlson", "team"]


@pytest.fixture
def admissions(tmp_path):
    """3,000 admissions in 12 teams named by text; teams 9-11 appear only in the last third, so that new
    values arrive in later batches; a missing age and a missing outcome, left out by both fits."""
    rng = np.random.default_rng(7)
    n = 3000
    team = np.where(np.arange(n) < 2000, rng.integers(0, 9, n), rng.integers(0, 12, n))
    after = rng.integers(0, 2, n)
    age = rng.integers(60, 70, n).astype(float)
    charlson = rng.poisson(1.0, n)
    u = rng.normal(0, 0.5, 12)
    eta = -1 + 0.4 * after + 0.05 * (age - 65) + 0.2 * charlson + u[team]
    error = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    rows = pd.DataFrame({"error": error, "after": after, "age": age, "charlson": charlson,
                         "team": [f"team {t}" for t in team]})
    rows.loc[10, "age"] = np.nan
    rows.loc[20, "error"] = np.nan
    path = tmp_path / "admissions.parquet"
    rows.to_parquet(path, row_group_size=500)
    return rows, path


def test_the_cells_are_the_counts_of_the_whole_file(admissions):
    rows, path = admissions
    cells = binomial_cells(path, "error", BY, batch_rows=700)
    expected = (rows.dropna().groupby(BY, as_index=False)
                .agg(events=("error", "sum"), trials=("error", "size")))
    pd.testing.assert_frame_equal(cells, expected, check_dtype=False)
    assert cells["trials"].sum() == len(rows) - 2 and cells["events"].dtype == np.int64


def test_the_model_on_the_streamed_cells_is_the_model_on_the_rows(admissions):
    rows, path = admissions
    cells = binomial_cells(path, "error", BY, batch_rows=700)
    on_rows = mixed_logistic(rows, "error ~ after + age + charlson", "team")
    on_cells = mixed_logistic(cells, "events ~ after + age + charlson", "team", trials="trials")
    for column in ("estimate", "std_error", "conf_low", "conf_high", "p_value"):
        np.testing.assert_allclose(on_cells[column], on_rows[column], rtol=1e-9, atol=1e-12, err_msg=column)
    assert on_cells["n"].iloc[0] == on_rows["n"].iloc[0] == len(rows) - 2


def test_true_false_outcomes_and_other_names(tmp_path):
    path = tmp_path / "flags.parquet"
    pd.DataFrame({"died": [True, False, True, True], "ward": ["A", "A", "B", "B"]}).to_parquet(path)
    cells = binomial_cells(path, "died", ["ward"], events="deaths", trials="admissions")
    assert cells.to_dict("list") == {"ward": ["A", "B"], "deaths": [1, 2], "admissions": [2, 2]}


@pytest.mark.parametrize(("frame", "outcome", "by", "message"), [
    (pd.DataFrame({"y": [0, 2], "g": [1, 1]}), "y", ["g"], "holds 2, not only 0 and 1"),
    (pd.DataFrame({"y": ["no", "yes"], "g": [1, 1]}), "y", ["g"], "not 0/1 or true/false"),
    (pd.DataFrame({"y": [0, 1], "g": [1, 1]}), "y", ["ward"], "no column ward"),
    (pd.DataFrame({"y": [0, 1], "trials": [1, 1]}), "y", ["trials"], "named like the file's column"),
    (pd.DataFrame({"y": [0, 1], "g": [1, 1]}), "y", [], "at least one other column"),
])
def test_what_cannot_be_counted_is_refused_with_what_to_do(tmp_path, frame, outcome, by, message):
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    with pytest.raises(StudyError, match=message):
        binomial_cells(path, outcome, by)


def test_too_many_combinations_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"y": [0, 1, 1], "age": [50.5, 61.25, 70.0], "g": [1, 2, 3]}).to_parquet(path)
    monkeypatch.setattr(cells_module, "MAX_CELLS", 8)
    with pytest.raises(StudyError, match=r"have 3 x 3 combinations .*ages in bands"):
        binomial_cells(path, "y", ["age", "g"])


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_text("y,g\n0,1\n")
    with pytest.raises(StudyError, match="cannot be read as a parquet file"):
        binomial_cells(path, "y", ["g"])
