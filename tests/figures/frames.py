"""Fixed input frames for the figure tests, with the published study's values (Grimes et al. 2014).

Counts and odds ratios are the published ones; what was not published (our estimates, per-patient MAI
changes, monthly series, acceptance denominators and teams) is made up once here, from a fixed seed,
to look like the study. Changing anything here changes the baseline images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BEFORE, AFTER = "Ward-based pharmacists", "Team-aligned pharmacists"
LABELS = {"before": BEFORE, "after": AFTER}
CHANGE = "2012-03-01"


def wilson(events, n, z=1.959963984540054):
    """Wilson score interval: (estimate, low, high) as fractions."""
    events, n = np.asarray(events, float), np.asarray(n, float)
    p = events / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return p, np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def with_intervals(rows: list[dict], events: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["estimate"], frame["conf_low"], frame["conf_high"] = wilson(frame[events], frame["n"])
    return frame


def proportions_frame() -> pd.DataFrame:
    counts = [("Error at admission", 49, 121, 10, 112),
              ("Error at discharge", 66, 101, 15, 108),
              ("Potentially severe error at discharge", 6, 101, 0, 108),
              ("Suggestions accepted", 270, 400, 392, 400)]
    rows = []
    for outcome, e0, n0, e1, n1 in counts:
        rows.append({"outcome": outcome, "period": "before", "period_label": BEFORE, "events": e0, "n": n0})
        rows.append({"outcome": outcome, "period": "after", "period_label": AFTER, "events": e1, "n": n1})
    return with_intervals(rows, "events")


def forest_frame() -> pd.DataFrame:
    nan = float("nan")
    rows = [
        ("Error at admission", "Unadjusted", 0.14, 0.07, 0.30, 0.15, 0.07, 0.30),
        ("Error at admission", "Adjusted, mixed-effects (team)", 0.13, 0.06, 0.29, 0.14, 0.07, 0.31),
        ("Error at admission", "GEE, population-averaged", 0.15, 0.07, 0.31, nan, nan, nan),
        ("Error at discharge", "Unadjusted", 0.09, 0.04, 0.17, 0.09, 0.04, 0.17),
        ("Error at discharge", "Adjusted, mixed-effects (team)", 0.07, 0.03, 0.16, 0.07, 0.03, 0.15),
        ("Error at discharge", "GEE, population-averaged", 0.09, 0.05, 0.18, nan, nan, nan),
        ("Error at discharge", "Missing as error", 0.08, 0.04, 0.16, 0.07, 0.04, 0.14),
        ("Error at discharge", "Missing as no error", 0.12, 0.06, 0.24, 0.11, 0.06, 0.23),
    ]
    return pd.DataFrame(rows, columns=["outcome", "analysis", "estimate", "conf_low", "conf_high",
                                       "published_estimate", "published_low", "published_high"])


def harm_frame() -> pd.DataFrame:
    counts = {"none": (35, 93), "minor": (6, 2), "moderate": (54, 13), "severe": (6, 0)}
    rows = [{"period_label": label, "severity": severity, "count": pair[i]}
            for i, label in enumerate((BEFORE, AFTER)) for severity, pair in counts.items()]
    frame = pd.DataFrame(rows)
    frame["severity"] = pd.Categorical(frame["severity"], list(counts), ordered=True)
    return frame


def mai_frame() -> pd.DataFrame:
    rng = np.random.default_rng(20140701)
    spec = [(BEFORE, "pre-admission to admission", 60, 1.5, 3.5),
            (AFTER, "pre-admission to admission", 48, -0.5, 2.5),
            (BEFORE, "pre-admission to discharge", 60, 2.0, 4.5),
            (AFTER, "pre-admission to discharge", 48, -1.5, 2.5)]
    parts = [pd.DataFrame({"period_label": label, "timepoint": timepoint,
                           "change": np.rint(rng.normal(mean, sd, n)).astype(int)})
             for label, timepoint, n, mean, sd in spec]
    return pd.concat(parts, ignore_index=True)


def monthly_frame() -> pd.DataFrame:
    rng = np.random.default_rng(20140702)
    months = {"before": pd.date_range("2011-02-01", "2012-01-01", freq="MS"),
              "after": pd.date_range("2012-04-01", "2013-03-01", freq="MS")}
    spec = {"Error at admission": ({"before": 0.405, "after": 0.089}, 10),
            "Suggestions accepted": ({"before": 0.675, "after": 0.98}, 33)}
    parts = []
    for measure, (rate, size) in spec.items():
        for period, dates in months.items():
            n = rng.integers(size - 3, size + 4, len(dates))
            events = rng.binomial(n, rate[period])
            proportion = events / n
            t = np.arange(len(dates))
            fitted = np.polyval(np.polyfit(t, proportion, 1, w=np.sqrt(n)), t)
            centre = events.sum() / n.sum()
            sigma = np.sqrt(centre * (1 - centre) / n)
            parts.append(pd.DataFrame({
                "measure": measure, "month": dates, "period": period, "events": events, "n": n,
                "proportion": proportion, "fitted": np.clip(fitted, 0, 1), "centre": centre,
                "lcl": np.clip(centre - 3 * sigma, 0, 1), "ucl": np.clip(centre + 3 * sigma, 0, 1)}))
    return pd.concat(parts, ignore_index=True)


def acceptance_frame() -> pd.DataFrame:
    teams = {"Cardiology": ((52, 75), (70, 71)),
             "Respiratory": ((40, 62), (66, 68)),
             "Gastroenterology": ((45, 70), (64, 65)),
             "Medicine for the elderly": ((61, 88), (85, 87)),
             "Endocrinology": ((38, 55), (57, 58)),
             "Nephrology": ((34, 50), (50, 51))}
    rows = [{"team": team, "period_label": LABELS[period], "accepted": accepted, "n": n}
            for team, pairs in teams.items()
            for period, (accepted, n) in zip(("before", "after"), pairs, strict=True)]
    return with_intervals(rows, "accepted")


ITS_CHANGE = "2010-01-01"


def its_frame() -> pd.DataFrame:
    """Five years of monthly in-hospital mortality, a fall in level and trend from January 2010, winter excess."""
    rng = np.random.default_rng(20100101)
    months = pd.date_range("2008-01-01", "2012-12-01", freq="MS")
    t = np.arange(len(months))
    after = (months >= pd.Timestamp(ITS_CHANGE)).astype(float)
    since = (t - 24) * after
    season = 0.12 * np.cos(2 * np.pi * months.month / 12)
    counter = 1 / (1 + np.exp(-(np.log(0.045 / 0.955) + 0.001 * t + season)))
    fitted = 1 / (1 + np.exp(-(np.log(0.045 / 0.955) + 0.001 * t + season - 0.08 * after - 0.008 * since)))
    n = rng.integers(900, 1100, len(months))
    observed = rng.binomial(n, fitted) / n
    return pd.DataFrame({"measure": "In-hospital death", "month": months,
                         "period": np.where(after == 1, "after", "before"),
                         "period_label": np.where(after == 1, AFTER_ITS, BEFORE_ITS),
                         "observed": observed, "fitted": fitted, "counterfactual": counter})


BEFORE_ITS, AFTER_ITS = "Before the change", "After the change"


def event_study_frame() -> pd.DataFrame:
    """Ratios of odds ratios by quarter, -4 to +3, the reference (-1) at 1: flat before, lower after."""
    rng = np.random.default_rng(20120401)
    times = np.arange(-4, 4)
    log_ratio = np.where(times < 0, rng.normal(0, 0.15, len(times)), -1.6 + rng.normal(0, 0.2, len(times)))
    log_ratio[times == -1] = 0
    half = np.where(times == -1, np.nan, 0.55)
    return pd.DataFrame({"measure": "Error at discharge", "time": times, "estimate": np.exp(log_ratio),
                         "conf_low": np.exp(log_ratio - half), "conf_high": np.exp(log_ratio + half)})


def controlled_its_frame() -> pd.DataFrame:
    """The ITS frame with a control series: the same secular trend and season, no change at the change point."""
    treated = its_frame().assign(series="intervention")
    control = treated.assign(series="control")
    rng = np.random.default_rng(20100102)
    control["fitted"] = treated["counterfactual"] * 0.9
    control["counterfactual"] = control["fitted"]
    control["observed"] = rng.binomial(1000, control["fitted"]) / 1000
    return pd.concat([treated, control], ignore_index=True)


def power_curve_frame() -> pd.DataFrame:
    """Simulated power of a before-after design with clusters for two odds ratios, 200 datasets a point, with
    Wilson intervals: the shape of `analysis.analyses.planning.curve_frame`'s output."""
    sizes = np.array([5, 10, 15, 20, 30])
    rows = []
    for effect, rejected in (("OR 0.5", [64, 113, 150, 174, 192]), ("OR 0.7", [25, 41, 62, 80, 112])):
        for size, events in zip(sizes, rejected, strict=True):
            estimate, low, high = wilson(events, 200)
            rows.append({"panel": "", "effect": effect, "size": size, "estimate": float(estimate),
                         "conf_low": float(low), "conf_high": float(high)})
    return pd.DataFrame(rows)


def caterpillar_frame() -> pd.DataFrame:
    """Random-intercept modes of eight teams with conditional SDs (log-odds), in no order (the figure sorts them):
    the shape of `analysis.analyses.figure_data.modes`'s table."""
    teams = {"Cardiology": (28, 0.009, 0.167), "Endocrinology": (19, -0.089, 0.173),
             "Gastroenterology": (16, 0.020, 0.173), "General internal medicine": (15, 0.014, 0.172),
             "Medicine for the elderly": (42, -0.069, 0.164), "Nephrology": (31, 0.007, 0.166),
             "Neurology": (37, 0.136, 0.165), "Respiratory medicine": (45, -0.024, 0.162)}
    return pd.DataFrame([{"cluster": team, "n": n, "estimate": mode, "std_error": sd,
                          "conf_low": mode - 1.959963984540054 * sd, "conf_high": mode + 1.959963984540054 * sd}
                         for team, (n, mode, sd) in teams.items()])
