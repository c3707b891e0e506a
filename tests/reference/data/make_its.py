"""Inputs of tests/reference/its.R (interrupted time series of counts), from a fixed seed; run by generate.sh.

its.csv: monthly deaths out of admissions, `seasonal` (60 months, change at month 36, a winter peak, AR(1) noise
on the log rate) and `short` (12 + 12 months, no seasonality); time 0, 1, ...; month the calendar month (1-12).
its_controlled.csv: a controlled interrupted time series, an intervention series (`group` 1) and a control series
(`group` 0) over the same 48 months, change at month 24, sharing a secular trend, a winter peak and part of their
AR(1) noise; only the intervention series steps down and bends at the change.
its_weekly.csv: weekly deaths out of admissions over 156 weeks, change at week 104, a winter peak of period
365.25 / 7 weeks (52.18) and AR(1) noise on the log rate; time 0, 1, ... counts weeks.
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


def controlled(months: int, change: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    month = (t % 12) + 1
    shared, own = np.zeros(months), np.zeros((2, months))
    for i in range(1, months):
        shared[i] = 0.4 * shared[i - 1] + rng.normal(0, 0.02)
        own[:, i] = 0.3 * own[:, i - 1] + rng.normal(0, 0.02, 2)
    frames = []
    for group in (1, 0):
        admissions = rng.integers(2500, 3500, months)
        log_rate = (np.log(0.03) - 0.002 * t + 0.1 * np.cos(2 * np.pi * month / 12) + shared + own[group]
                    - 0.05 * (t >= change) + group * (-0.1 * (t >= change) - 0.005 * (t - change) * (t >= change)))
        deaths = rng.poisson(admissions * np.exp(log_rate))
        frames.append(pd.DataFrame({"group": group, "time": t, "month": month, "deaths": deaths,
                                    "admissions": admissions}))
    return pd.concat(frames, ignore_index=True)


def weekly(weeks: int, change: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    noise = np.zeros(weeks)
    for i in range(1, weeks):
        noise[i] = 0.3 * noise[i - 1] + rng.normal(0, 0.04)
    admissions = rng.integers(800, 1100, weeks)
    log_rate = (np.log(0.03) - 0.0005 * t - 0.08 * (t >= change) - 0.001 * (t - change) * (t >= change)
                + 0.12 * np.cos(2 * np.pi * t / (365.25 / 7)) + noise)
    deaths = rng.poisson(admissions * np.exp(log_rate))
    return pd.DataFrame({"time": t, "deaths": deaths, "admissions": admissions})


def main() -> None:
    frames = [series("seasonal", 60, 36, 20080101, True), series("short", 24, 12, 20080102, False)]
    pd.concat(frames, ignore_index=True).to_csv(HERE / "its.csv", index=False)
    controlled(48, 24, 20080103).to_csv(HERE / "its_controlled.csv", index=False)
    weekly(156, 104, 20080104).to_csv(HERE / "its_weekly.csv", index=False)


if __name__ == "__main__":
    main()
