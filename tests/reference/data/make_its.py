"""Inputs of tests/reference/its.R (interrupted time series of counts), from a fixed seed; run by generate.sh.

its.csv: monthly deaths out of admissions, `seasonal` (60 months, change at month 36, a winter peak, AR(1) noise
on the log rate) and `short` (12 + 12 months, no seasonality); time 0, 1, ...; month the calendar month (1-12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def series(name: str, months: int, change: int, seed: int, seasonal: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    month = (t % 12) + 1
    noise = np.zeros(months)
    for i in range(1, months):
        noise[i] = 0.4 * noise[i - 1] + rng.normal(0, 0.03)
    admissions = rng.integers(3500, 4500, months)
    log_rate = (np.log(0.03) - 0.002 * t - 0.08 * (t >= change) - 0.004 * (t - change) * (t >= change)
                + (0.12 * np.cos(2 * np.pi * month / 12) if seasonal else 0) + noise)
    deaths = rng.poisson(admissions * np.exp(log_rate))
    return pd.DataFrame({"dataset": name, "time": t, "month": month, "deaths": deaths, "admissions": admissions})


def main() -> None:
    frames = [series("seasonal", 60, 36, 20080101, True), series("short", 24, 12, 20080102, False)]
    pd.concat(frames, ignore_index=True).to_csv(HERE / "its.csv", index=False)


if __name__ == "__main__":
    main()
