"""Access to the reference datasets and the stored R outputs in tests/reference/ (R is not needed)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


class RResults:
    """Stored R values by (dataset, term, quantity); "NA"/"NaN" read as NaN, "Inf" as inf."""

    def __init__(self, name: str):
        table = pd.read_csv(REFERENCE / "results" / f"{name}.csv", dtype=str, keep_default_na=False)
        self.values = {
            (r.dataset, r.term, r.quantity): float("nan") if r.value in ("NA", "NaN") else float(r.value)
            for r in table.itertuples()
        }
        self.datasets = sorted({key[0] for key in self.values})

    def __call__(self, dataset: str, term: str, quantity: str) -> float:
        return self.values[(dataset, term, quantity)]

    def items(self, dataset: str):
        return {(t, q): v for (d, t, q), v in self.values.items() if d == dataset}


@pytest.fixture(scope="session")
def r_results():
    cache: dict[str, RResults] = {}

    def load(name: str) -> RResults:
        if name not in cache:
            cache[name] = RResults(name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def reference_data():
    def load(name: str) -> pd.DataFrame:
        return pd.read_csv(REFERENCE / "data" / f"{name}.csv", keep_default_na=False, na_values=[""])

    return load


def _check_close(ours: float, theirs: float, rel: float, abs_: float = 1e-12, label: str = "") -> None:
    """Equal within ``rel`` (relative) or ``abs_`` (absolute, for values near zero).

    R's infinities and NaNs must be NaN on our side: an infinity never lands in a table.
    """
    ours, theirs = float(ours), float(theirs)
    if math.isnan(theirs) or math.isinf(theirs):
        assert math.isnan(ours), f"{label}: R gives {theirs}, we give {ours} (expected NaN)"
        return
    assert math.isclose(ours, theirs, rel_tol=rel, abs_tol=abs_), (
        f"{label}: ours {ours!r} vs R {theirs!r} (relative difference "
        f"{abs(ours - theirs) / max(abs(theirs), 1e-300):.3g}, tolerance {rel:g} relative, {abs_:g} absolute)"
    )


@pytest.fixture(scope="session")
def assert_close():
    return _check_close
