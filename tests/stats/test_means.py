"""analysis.stats.means against R's t.test (tests/reference/means.R).

Datasets: the two-sample data of tests/reference/data/ranks.csv (exact_small, asymptotic_large,
ordinal_harm, small_ties, mai_like, separated; asymptotic_large_90 at 90%) and the study's MAI change
from admission to discharge in patients aged 65 and over (study_mai_change, study_patients.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import stats as S
from analysis.stats.means import mean_difference

# Closed forms (means, SEs, Welch-Satterthwaite df) and scipy's t quantiles and tails: measured at most
# 8.4e-15 relative against R, on every quantity (the largest on the p value of 1.9e-15 of ordinal_harm).
REL = 1e-12
QUANTITIES = ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df", "n")


def _reference_samples(reference_data) -> dict[str, tuple[pd.Series, pd.Series, float]]:
    ranks = reference_data("ranks")
    samples = {}
    for ds, part in ranks.groupby("dataset", sort=False):
        samples[ds] = (part.value[part.group == "before"], part.value[part.group == "after"], 0.95)
    samples["asymptotic_large_90"] = (*samples["asymptotic_large"][:2], 0.90)
    patients = reference_data("study_patients")
    old = patients[patients.age_65_plus == 1]  # missing MAI change left in: mean_difference drops it
    samples["study_mai_change"] = (
        old.mai_change_discharge[old.after == 0],
        old.mai_change_discharge[old.after == 1],
        0.95,
    )
    return samples


@pytest.fixture(scope="module")
def samples(reference_data):
    return _reference_samples(reference_data)


@pytest.mark.parametrize(
    "dataset",
    [
        "exact_small",
        "asymptotic_large",
        "asymptotic_large_90",
        "ordinal_harm",
        "small_ties",
        "mai_like",
        "separated",
        "study_mai_change",
    ],
)
def test_mean_difference_matches_t_test(dataset, samples, r_results, assert_close):
    r = r_results("means")
    before, after, confidence = samples[dataset]
    out = mean_difference(before, after, confidence=confidence).set_index("term")
    assert list(out.index) == ["mean_before", "mean_after", "mean_difference"]
    for (term, quantity), value in r.items(dataset).items():
        assert_close(out.loc[term, quantity], value, REL, 0, f"{term} {quantity}")
    assert "Welch two-sample t test" in out.loc["mean_difference", "method"]
    assert "after minus before" in out.loc["mean_difference", "method"]


def test_every_quantity_is_checked(r_results):
    stored = {q for (_, q) in r_results("means").items("exact_small")}
    assert stored == set(QUANTITIES)


def test_study_mai_change_uses_the_108_patients_with_a_score(samples):
    before, after, _ = samples["study_mai_change"]
    out = mean_difference(before, after).set_index("term")
    assert out.loc["mean_difference", "n"] == 108
    assert out.loc["mean_before", "n"] + out.loc["mean_after", "n"] == 108


def test_missing_values_are_dropped():
    out = mean_difference([1.0, 2.0, np.nan, 4.0], pd.Series([3, None, 5, 8], dtype="Int64")).set_index("term")
    assert out.loc["mean_before", "n"] == 3
    assert out.loc["mean_after", "estimate"] == pytest.approx(16 / 3)


def test_constant_samples_give_no_interval():
    out = mean_difference([2.0, 2.0, 2.0], [2.0, 2.0]).set_index("term")
    assert out.loc["mean_difference", "estimate"] == 0.0
    assert np.isnan(out.loc["mean_difference", ["statistic", "p_value", "conf_low", "conf_high"]].astype(float)).all()
    assert "standard error is zero" in out.loc["mean_difference", "warnings"]


def test_exported():
    assert S.mean_difference is mean_difference
    assert "mean_difference" in S.__all__
