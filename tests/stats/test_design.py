"""The model matrices of analysis.stats.design: the formulas the compendium writes are built with numpy
and must be patsy's, column for column, name for name and row for row; other formulas go to patsy.
Aliasing is judged as R's qr() judges it (checked by hand on columns that are, or are not, combinations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest

from analysis.stats import design as design_module
from analysis.stats.design import _matrices, design
from analysis.stats.tidy import Notes


@pytest.fixture(scope="module")
def patients():
    rng = np.random.default_rng(1)
    n = 80
    d = pd.DataFrame({
        "y": rng.integers(0, 2, n).astype(float), "after": rng.integers(0, 2, n), "age": rng.normal(70, 8, n),
        "sex": pd.Series(rng.choice(["female", "male"], n), dtype="str"),
        "team": rng.choice(["T1", "T2", "T10"], n).astype(object), "flag": rng.random(n) < 0.5,
        "ward": pd.Categorical(rng.choice(["b", "a"], n), categories=["b", "a", "z"]),
        "count": rng.poisson(2, n), "intervention": rng.integers(0, 2, n),
        "nullable": pd.array(rng.integers(0, 3, n), dtype="Int64"),
    })
    d.loc[3, "age"] = np.nan
    d.loc[5, "sex"] = None
    d.loc[7, "y"] = np.nan
    d.loc[9, "team"] = np.nan
    d.loc[11, ["team", "age"]] = ["T99", np.nan]  # a level seen only in a row left out: patsy keeps its column
    return d


BUILT = [
    "y ~ after", "y ~ after + age + sex", "y ~ after + team + age", "y ~ C(count) + after", "y ~ flag + ward",
    "y ~ intervention * after + age", "y ~ age:count + after", "y ~ after + after", "y ~ after + C(team)",
    "y ~ age:count + sex + after:age", "count ~ after + age", "y ~ count + sex + age:count + after",
]
LEFT_TO_PATSY = [
    "y ~ sex:after", "y ~ np.log(age)", "y ~ after - 1", "y ~ 0 + after", "flag ~ after", "y ~ nullable + after",
    "y ~ I(age ** 2)", "y ~ after + a b", "y ~ after ~ age",
]


@pytest.mark.parametrize("formula", BUILT)
def test_the_compendiums_formulas_give_patsys_matrices(patients, formula):
    built = _matrices(formula, patients)
    assert built is not None
    y, x = patsy.dmatrices(formula, patients, NA_action="drop", return_type="dataframe")
    pd.testing.assert_frame_equal(built[0], y)
    pd.testing.assert_frame_equal(built[1], x)


@pytest.mark.parametrize("formula", LEFT_TO_PATSY)
def test_other_formulas_are_left_to_patsy(patients, formula):
    assert _matrices(formula, patients) is None


def test_a_design_is_the_same_built_either_way(patients, monkeypatch):
    notes = Notes()
    fast = design(patients, "y ~ after + sex + age", notes, also=["team"])
    monkeypatch.setattr(design_module, "_matrices", lambda formula, data: None)
    slow_notes = Notes()
    slow = design(patients, "y ~ after + sex + age", slow_notes, also=["team"])
    pd.testing.assert_frame_equal(fast.x, slow.x)
    pd.testing.assert_frame_equal(fast.data, slow.data)
    np.testing.assert_array_equal(fast.y, slow.y)
    assert fast.kept == slow.kept and str(notes) == str(slow_notes)
    assert "5 of 80 rows had a missing value" in str(notes)


def test_aliased_columns_are_found_as_r_finds_them():
    """x3 = x1 + 2 x2 exactly, c is constant, x4 differs from a combination by 1e-3 of its length."""
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=50), rng.normal(size=50)
    x4 = x1 - x2 + 1e-3 * np.linalg.norm(x1 - x2) * rng.normal(size=50) / np.sqrt(50)
    x = pd.DataFrame({"Intercept": 1.0, "x1": x1, "x2": x2, "x3": x1 + 2 * x2, "c": 3.0, "x4": x4})
    notes = Notes()
    assert design_module._estimable(x, notes) == ["Intercept", "x1", "x2", "x4"]
    text = str(notes)
    assert "x3 is a linear combination" in text and "c is 3 in all 50 rows" in text
