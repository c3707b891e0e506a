"""analysis.stats.tidy: the shared columns, and warnings kept as sentences instead of printed."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from analysis.stats import tidy


def test_columns_in_order_with_extras_after():
    out = tidy.frame([tidy.row("a", 1.0, method="m", n=3, extra="x"), tidy.row("b", df=4, method="m", n=None)])
    assert list(out.columns) == list(tidy.COLUMNS) + ["extra"]
    assert tidy.COLUMNS[3:5] == ("statistic", "df")
    assert math.isnan(out.loc[0, "df"]) and out.loc[1, "df"] == 4.0 and out["df"].dtype == "float64"
    assert str(out["n"].dtype) == "Int64" and out["n"].isna().tolist() == [False, True]
    assert math.isnan(out.loc[1, "estimate"])
    assert out["warnings"].tolist() == ["", ""]


def test_infinity_is_refused():
    with pytest.raises(ValueError, match="infinite value in column 'conf_high'"):
        tidy.frame([tidy.row("a", 1.0, conf_high=math.inf, method="m", n=1)])


def test_notes_are_sentences_once_each():
    notes = tidy.Notes()
    notes.add("first problem")
    notes.add("first problem.")
    notes.add("")
    notes.add("second problem.")
    assert str(notes) == "first problem.\nsecond problem."
    assert tidy.join("a.\nb.", "b.", "", "c.") == "a.\nb.\nc."


def test_captured_turns_warnings_into_sentences_and_prints_nothing(recwarn):
    notes = tidy.Notes()
    with tidy.captured(notes):
        warnings.warn("Maximum Likelihood optimization failed to converge.", ConvergenceWarning, stacklevel=1)
        warnings.warn("Perfect separation or prediction detected", PerfectSeparationWarning, stacklevel=1)
        warnings.warn("overflow encountered in exp", RuntimeWarning, stacklevel=1)
        warnings.warn("'dropna(inplace=True)' will change", FutureWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        pd.Series([1.0]).pct_change(fill_method=None)  # whatever pandas says about its own API is noise
    assert len(recwarn) == 0
    assert str(notes).splitlines() == [
        "The fitting algorithm did not converge (Maximum Likelihood optimization failed to converge.).",
        tidy.SEPARATION,
        "A numerical problem occurred during the computation (overflow encountered in exp); check the estimates.",
    ]


def test_captured_keeps_sentences_when_the_block_raises():
    notes = tidy.Notes()
    with pytest.raises(ZeroDivisionError), tidy.captured(notes):
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        raise ZeroDivisionError
    assert "did not converge" in str(notes)


def test_wald_rows_on_z_or_t_and_without_a_standard_error():
    notes = tidy.Notes()
    z_rows = tidy.frame(tidy.wald_rows(["a", "b"], [0.5, 1.0], [0.0, 0.25], exponentiate=False, method="m", n=10,
                                       notes=notes, confidence=0.95)).set_index("term")
    # a zero standard error leaves no test; b: z = 1 / 0.25 = 4, p = 2 * pnorm(-4) = 6.334248366623985e-05 (R)
    assert z_rows.loc["a", ["statistic", "p_value"]].isna().all()
    assert z_rows.loc["b", "statistic"] == 4.0
    assert z_rows.loc["b", "p_value"] == pytest.approx(6.334248366623985e-05, rel=1e-12)
    assert math.isnan(z_rows.loc["b", "df"])
    t_rows = tidy.frame(tidy.wald_rows(["b"], [1.0], [0.25], exponentiate=False, method="m", n=10, notes=notes,
                                       confidence=0.95, df=5)).set_index("term")
    # R: 2 * pt(-4, 5) = 0.01032341548083145, qt(0.975, 5) = 2.570581835636314
    assert t_rows.loc["b", "p_value"] == pytest.approx(0.01032341548083145, rel=1e-9)
    assert t_rows.loc["b", "conf_low"] == pytest.approx(1.0 - 2.570581835636314 * 0.25, rel=1e-12)
    assert t_rows.loc["b", "df"] == 5.0
