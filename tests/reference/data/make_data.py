"""Write the small input datasets that the R scripts in tests/reference/ and tests/stats/ both read.

Deterministic: every dataset draws from its own numpy Generator seeded below, and values are rounded
to a few decimals before writing, so R and Python read exactly the same numbers from the CSV text.
Run from anywhere: `python tests/reference/data/make_data.py` (tests/reference/generate.sh does).

The exception is the study's own data (`study_patients.csv`, `study_suggestions.csv`): a copy of the
columns the notebooks' models use, taken from the synthetic reference study's derived tables
(`analysis.data.load("reference")`, itself generated from fixed seeds), so that the fitters are checked
on exactly the models and data the study reports.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

# Each seed is fixed for good: changing one changes the data and needs the R outputs regenerated.
SEEDS = {
    "ranks": 20140701,
    "ordinal": 20140702,
    "logistic": 20140703,
    "separation": 20140704,
    "counts": 20140705,
    "mixed": 20140706,
    "lmm": 20140707,
    "timeseries": 20140708,
    "mixed_poisson": 20140709,
    "mixed_large": 20140710,
    "mixed_trials": 20140711,
    "mixed_nested": 20140712,
    "mixed_agq": 20140713,
    "counts_days": 20140714,
    "mixed_agq_poisson": 20140715,
}


def proportions() -> pd.DataFrame:
    """2x2 tables as counts: the published ones and the edge cases (zero cell, tiny, crossing zero)."""
    rows = [
        ("admission", 49, 121, 10, 112),
        ("discharge", 66, 101, 15, 108),
        ("discharge_missing_as_error", 86, 121, 19, 112),
        ("discharge_missing_as_no_error", 66, 121, 15, 112),
        ("severe_discharge", 6, 121, 0, 112),  # zero cell: published NNT 20 (10 to 142)
        ("zero_before", 0, 10, 4, 12),  # zero cell, tiny: harm in the after period
        ("tiny", 2, 7, 5, 8),  # n < 10 per group
        ("crossing_zero", 12, 50, 10, 48),  # RD interval crosses zero: NNTB to infinity to NNTH
        ("harm_increase", 5, 60, 14, 58),  # the after period is worse: NNTH
        ("all_events_before", 10, 10, 3, 9),  # a zero non-event cell
        ("large", 300, 1000, 250, 1000),
    ]
    return pd.DataFrame(rows, columns=["dataset", "events_before", "n_before", "events_after", "n_after"])


def ranks() -> pd.DataFrame:
    """Two-sample data for Mann-Whitney, Hodges-Lehmann and quantiles, long format."""
    rng = np.random.default_rng(SEEDS["ranks"])
    parts = []

    def add(name, before, after):
        for group, values in (("before", before), ("after", after)):
            parts.append(pd.DataFrame({"dataset": name, "group": group, "value": values}))

    # no ties and both n < 50: R uses the exact distribution
    before = np.round(rng.normal(5.0, 2.0, 8), 3)
    after = np.round(rng.normal(3.5, 2.0, 9), 3)
    assert len(np.unique(np.r_[before, after])) == 17
    add("exact_small", before, after)
    # n >= 50: normal approximation with continuity correction
    add("asymptotic_large", np.round(rng.gamma(2.0, 2.0, 60), 2), np.round(rng.gamma(2.0, 1.4, 55), 2))
    # the published harm categories scored 0-3 (heavy ties)
    harm = {"before": [35, 6, 54, 6], "after": [93, 2, 13, 0]}
    add("ordinal_harm", np.repeat(np.arange(4), harm["before"]), np.repeat(np.arange(4), harm["after"]))
    # tiny with ties (n < 10)
    add("small_ties", np.array([3, 1, 4, 1, 5, 9]), np.array([2, 6, 5, 3, 5, 8, 9]))
    # integer scores of the MAI-change kind, subgroup sizes of the paper
    add("mai_like", rng.integers(-4, 9, 60), rng.integers(-6, 4, 48))
    # complete shift, every after value below every before value (extreme interval)
    add("separated", np.array([10.5, 11.2, 12.9, 14.1, 15.0]), np.array([1.1, 2.3, 3.2, 4.8, 5.5, 6.7]))
    return pd.concat(parts, ignore_index=True)


def trend() -> pd.DataFrame:
    """Counts per ordered category and period, for the chi-square test for trend."""
    rows = [
        ("harm", 0, "none", 35, 93),
        ("harm", 1, "minor", 6, 2),
        ("harm", 2, "moderate", 54, 13),
        ("harm", 3, "severe", 6, 0),
        ("five_levels", 1, "a", 20, 25),
        ("five_levels", 2, "b", 18, 22),
        ("five_levels", 3, "c", 15, 16),
        ("five_levels", 4, "d", 9, 14),
        ("five_levels", 5, "e", 4, 10),
    ]
    return pd.DataFrame(rows, columns=["dataset", "score", "category", "count_before", "count_after"])


def ordinal() -> pd.DataFrame:
    """Ordered outcome (levels 0-3) with a period indicator and a continuous covariate."""
    rng = np.random.default_rng(SEEDS["ordinal"])
    n = 240
    after = np.repeat([0, 1], n // 2)
    x = np.round(rng.normal(0, 1, n), 3)
    latent = -0.9 * after + 0.6 * x + rng.logistic(0, 1, n)
    y = np.digitize(latent, [-1.0, 0.2, 1.5])
    return pd.DataFrame({"dataset": "covariate", "y": y, "after": after, "x": x})


def logistic() -> pd.DataFrame:
    """Patients of the reference study's size with the paper's covariates and a binary error outcome."""
    rng = np.random.default_rng(SEEDS["logistic"])
    n_before, n_after = 121, 112
    after = np.repeat([0, 1], [n_before, n_after])
    n = after.size
    age = rng.integers(25, 95, n)
    charlson = rng.poisson(1.8, n)
    n_medicines = 3 + rng.poisson(5, n)
    eta = -0.9 - 1.9 * after + 0.015 * (age - 70) + 0.15 * charlson + 0.08 * (n_medicines - 8)
    error = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"after": after, "age": age, "charlson": charlson, "n_medicines": n_medicines, "error": error})


def separation() -> pd.DataFrame:
    """Tiny data in which `x` separates the outcome completely (and `after` does not)."""
    rng = np.random.default_rng(SEEDS["separation"])
    x = np.round(np.sort(rng.normal(0, 1, 16)), 3)
    return pd.DataFrame({"x": x, "after": np.tile([0, 1], 8), "error": (x > 0.05).astype(int)})


def counts() -> pd.DataFrame:
    """Error counts per patient with an exposure (number of medicines), overdispersed."""
    rng = np.random.default_rng(SEEDS["counts"])
    n = 200
    after = np.repeat([0, 1], n // 2)
    age = rng.integers(30, 95, n)
    n_medicines = 3 + rng.poisson(6, n)
    mu = n_medicines * np.exp(-1.6 - 0.8 * after + 0.01 * (age - 70))
    theta = 2.0
    errors = rng.poisson(rng.gamma(theta, mu / theta))
    return pd.DataFrame({"after": after, "age": age, "n_medicines": n_medicines, "errors": errors})


def counts_days() -> pd.DataFrame:
    """Adverse drug events per patient over 28 to 90 days at risk (a rate of about 2 per 100 days),
    overdispersed: a long exposure puts the intercept near -4, where a quasi-Newton fit of the negative
    binomial stalls short of its gradient tolerance although it is at the maximum."""
    rng = np.random.default_rng(SEEDS["counts_days"])
    n = 600
    after = np.repeat([0, 1], n // 2)
    age = rng.integers(40, 95, n)
    days = rng.integers(28, 91, n)
    mu = days * np.exp(-3.7 - 0.5 * after + 0.015 * (age - 70))
    theta = 1.5
    events = rng.poisson(rng.gamma(theta, mu / theta))
    return pd.DataFrame({"after": after, "age": age, "days_at_risk": days, "ade_count": events})


def _mixed_binary(rng, name, sizes, sd, beta_after=-1.9, intercept=-0.4):
    parts = []
    for k, size in enumerate(sizes):
        u = rng.normal(0, sd) if sd > 0 else 0.0
        after = (rng.random(size) < 0.48).astype(int)
        age = rng.integers(25, 95, size)
        eta = intercept + beta_after * after + 0.02 * (age - 70) + u
        y = (rng.random(size) < 1 / (1 + np.exp(-eta))).astype(int)
        parts.append(pd.DataFrame({"team": f"T{k + 1:02d}", "after": after, "age": age, "error": y}))
    frame = pd.concat(parts, ignore_index=True)
    frame["age10"] = (frame["age"] - 70) / 10
    frame.insert(0, "dataset", name)
    return frame


def mixed() -> pd.DataFrame:
    """Clustered binary outcomes: small (the study's size), unbalanced, few clusters, medium, null."""
    rng = np.random.default_rng(SEEDS["mixed"])
    small = _mixed_binary(rng, "small", [38, 33, 31, 29, 28, 26, 25, 23], sd=0.6)
    unbalanced = _mixed_binary(rng, "unbalanced", [160, 14, 12, 11, 10, 9, 9, 8], sd=0.7)
    few = _mixed_binary(rng, "few_clusters", [70, 60, 50], sd=0.5)
    medium = _mixed_binary(rng, "medium", list(rng.integers(40, 120, 40)), sd=0.7)
    null = _mixed_binary(rng, "null_variance", [40] * 8, sd=0.0)
    # crossed: every team sends patients to every ward
    n = 800
    team = rng.integers(0, 10, n)
    ward = rng.integers(0, 6, n)
    u_team = rng.normal(0, 0.6, 10)
    u_ward = rng.normal(0, 0.4, 6)
    after = (rng.random(n) < 0.5).astype(int)
    age = rng.integers(25, 95, n)
    eta = -0.4 - 1.5 * after + 0.02 * (age - 70) + u_team[team] + u_ward[ward]
    crossed = pd.DataFrame(
        {
            "dataset": "crossed",
            "team": [f"T{t + 1:02d}" for t in team],
            "after": after,
            "age": age,
            "error": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
            "age10": (age - 70) / 10,
            "ward": [f"W{w + 1}" for w in ward],
        }
    )
    frame = pd.concat([small, unbalanced, few, medium, null], ignore_index=True)
    frame["ward"] = ""
    return pd.concat([frame, crossed], ignore_index=True)


def mixed_poisson() -> pd.DataFrame:
    """Error counts with an exposure (days at risk) in 20 teams of 80 to 219 patients, overdispersed by a
    team random intercept (SD 0.5 on the log scale)."""
    rng = np.random.default_rng(SEEDS["mixed_poisson"])
    sizes = rng.integers(80, 220, 20)
    u_team = rng.normal(0, 0.5, 20)
    parts = []
    for k, size in enumerate(sizes):
        after = (rng.random(size) < 0.5).astype(int)
        age10 = np.round(rng.integers(25, 95, size) / 10 - 7, 1)
        days = rng.integers(1, 30, size)
        mu = days * np.exp(-2.3 - 0.4 * after + 0.1 * age10 + u_team[k])
        parts.append(
            pd.DataFrame(
                {"team": f"T{k + 1:02d}", "after": after, "age10": age10, "days": days, "errors": rng.poisson(mu)}
            )
        )
    return pd.concat(parts, ignore_index=True)


def mixed_large() -> pd.DataFrame:
    """100,000 patients in 200 teams (random team sizes), the study's covariates (after, age in years,
    charlson, n_medicines) and a binary error with a team random intercept (SD 0.6): the size at which
    the fitter's speed is asked for, and at which glmer is compared with it. Integers only, so that the
    file is small: written gzip-compressed (``mixed_large.csv.gz``, read as it is by R and pandas)."""
    rng = np.random.default_rng(SEEDS["mixed_large"])
    n, teams = 100_000, 200
    u_team = rng.normal(0, 0.6, teams)
    team = np.sort(rng.integers(0, teams, n))
    after = (rng.random(n) < 0.5).astype(int)
    age = rng.integers(25, 95, n)
    charlson = rng.poisson(1.8, n)
    n_medicines = 3 + rng.poisson(5, n)
    eta = -0.9 - 1.2 * after + 0.015 * (age - 70) + 0.15 * charlson + 0.08 * (n_medicines - 8) + u_team[team]
    error = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame(
        {
            "team": [f"T{t + 1:03d}" for t in team],
            "after": after,
            "age": age,
            "charlson": charlson,
            "n_medicines": n_medicines,
            "error": error,
        }
    )


def mixed_trials() -> pd.DataFrame:
    """Aggregated binary outcomes: events out of trials in 30 teams x 2 periods x 4 age groups (240 rows,
    5 to 40 patients each), with a team random intercept (SD 0.5), for the binomial model with trials."""
    rng = np.random.default_rng(SEEDS["mixed_trials"])
    teams = 30
    u_team = rng.normal(0, 0.5, teams)
    team, after, age_group = (a.ravel() for a in np.meshgrid(np.arange(teams), [0, 1], np.arange(4), indexing="ij"))
    trials = rng.integers(5, 41, team.size)
    eta = -0.6 - 1.1 * after + 0.3 * age_group + u_team[team]
    events = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame(
        {"team": [f"T{t + 1:02d}" for t in team], "after": after, "age_group": age_group, "events": events,
         "trials": trials}
    )


def mixed_nested() -> pd.DataFrame:
    """Patients of pharmacists nested in teams, the pharmacists labelled P1 to P4 within every team (so
    the labels repeat across teams, as ``(1 | team/pharmacist)`` allows): 12 teams x 4 pharmacists x 25
    patients, team SD 0.6 and pharmacist-within-team SD 0.5 on the log-odds scale."""
    rng = np.random.default_rng(SEEDS["mixed_nested"])
    teams, pharmacists, patients = 12, 4, 25
    n = teams * pharmacists * patients
    team = np.repeat(np.arange(teams), pharmacists * patients)
    pharmacist = np.tile(np.repeat(np.arange(pharmacists), patients), teams)
    after = np.tile([0, 1], n // 2)
    age10 = np.round(rng.normal(7.5, 1.0, n), 1)
    u_team = rng.normal(0, 0.6, teams)[team]
    u_pharmacist = rng.normal(0, 0.5, teams * pharmacists)[team * pharmacists + pharmacist]
    eta = -0.5 - 0.9 * after + 0.2 * (age10 - 7.5) + u_team + u_pharmacist
    error = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame(
        {
            "team": [f"T{t + 1:02d}" for t in team],
            "pharmacist": [f"P{p + 1}" for p in pharmacist],
            "after": after,
            "age10": age10,
            "error": error,
        }
    )


def mixed_agq() -> pd.DataFrame:
    """Small clusters with a large random-intercept SD, where the Laplace approximation is poor and
    adaptive Gauss-Hermite quadrature matters: 60 clusters of 3 to 5 patients, SD 2 on the log-odds
    scale, a binary covariate."""
    rng = np.random.default_rng(SEEDS["mixed_agq"])
    clusters = 60
    sizes = rng.integers(3, 6, clusters)
    cluster = np.repeat(np.arange(clusters), sizes)
    n = cluster.size
    after = rng.integers(0, 2, n)
    eta = -0.3 - 1.0 * after + rng.normal(0, 2.0, clusters)[cluster]
    error = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"cluster": [f"C{c + 1:02d}" for c in cluster], "after": after, "error": error})


def mixed_agq_poisson() -> pd.DataFrame:
    """Counts in small clusters with a large random-intercept SD, where the Laplace approximation is poor
    for a Poisson model too: 60 clusters of 3 to 5 rows, SD 1.5 on the log-rate scale, exposure 1 to 10
    days, few events per row."""
    rng = np.random.default_rng(SEEDS["mixed_agq_poisson"])
    clusters = 60
    sizes = rng.integers(3, 6, clusters)
    cluster = np.repeat(np.arange(clusters), sizes)
    n = cluster.size
    after = rng.integers(0, 2, n)
    days = rng.integers(1, 11, n)
    mu = days * np.exp(-2.0 - 0.7 * after + rng.normal(0, 1.5, clusters)[cluster])
    return pd.DataFrame({"cluster": [f"C{c + 1:02d}" for c in cluster], "after": after, "days": days,
                         "errors": rng.poisson(mu)})


def lmm() -> pd.DataFrame:
    """Continuous outcome (MAI change) with a random intercept for team."""
    rng = np.random.default_rng(SEEDS["lmm"])
    parts = []
    for name, sizes, sd_team in (("small", [18, 16, 15, 14, 13, 12, 11, 9], 1.5), ("medium", [25] * 20, 1.0)):
        for k, size in enumerate(sizes):
            u = rng.normal(0, sd_team)
            after = (rng.random(size) < 0.45).astype(int)
            age = rng.integers(65, 95, size)
            y = 1.0 - 3.2 * after + 0.05 * (age - 75) + u + rng.normal(0, 3.0, size)
            parts.append(
                pd.DataFrame(
                    {"dataset": name, "team": f"T{k + 1:02d}", "after": after, "age": age, "mai_change": np.round(y, 2)}
                )
            )
    return pd.concat(parts, ignore_index=True)


def timeseries() -> pd.DataFrame:
    """Monthly event counts before and after a change, with AR(1) noise on the logit scale."""
    rng = np.random.default_rng(SEEDS["timeseries"])
    parts = []
    for name, months_before, months_after in (("short", 12, 12), ("long", 18, 18)):
        m = months_before + months_after
        month = np.arange(1, m + 1)
        post = (month > months_before).astype(int)
        e = np.zeros(m)
        for t in range(1, m):
            e[t] = 0.5 * e[t - 1] + rng.normal(0, 0.12)
        t_after = np.where(post == 1, month - months_before - 1, 0)
        eta = -0.3 + 0.01 * month - 0.9 * post - 0.03 * t_after + e
        n = rng.integers(12, 30, m)
        events = rng.binomial(n, 1 / (1 + np.exp(-eta)))
        parts.append(pd.DataFrame({"dataset": name, "month": month, "post": post, "events": events, "n": n}))
    frame = pd.concat(parts, ignore_index=True)
    frame["proportion"] = frame["events"] / frame["n"]
    return frame


# The columns of the reference study's derived tables that the study's models use
STUDY_PATIENT_COLUMNS = [
    "patient_id",
    "team",
    "ward",
    "pharmacist",
    "after",
    "age",
    "age_65_plus",
    "charlson",
    "n_medicines",
    "length_of_stay",
    "error_at_admission",
    "error_at_discharge",
    "mai_pre_admission",
    "mai_change_discharge",
]
STUDY_SUGGESTION_COLUMNS = ["suggestion_id", "team", "pharmacist", "after", "accepted"]


def _study_table(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns with booleans as 0/1 and missing values left empty (R's NA, pandas' NaN/<NA>)."""
    out = table[columns].copy()
    for column in out.columns:
        if out[column].dtype.kind == "b" or str(out[column].dtype) == "boolean":
            out[column] = out[column].astype("Int64")
    return out


def study_patients() -> pd.DataFrame:
    """The reference study's 233 patients (missing discharge outcomes and MAI scores stay missing)."""
    from analysis.data import load

    patients = load("reference").tables["patients"]
    # the MAI subgroup's age limit, as studies/reference.yml declares it (subgroups.mai)
    return _study_table(patients.assign(age_65_plus=patients["age"] >= 65), STUDY_PATIENT_COLUMNS)


def study_suggestions() -> pd.DataFrame:
    """The reference study's 850 pharmacist suggestions and whether each was accepted."""
    from analysis.data import load

    return _study_table(load("reference").tables["suggestions"], STUDY_SUGGESTION_COLUMNS)


def main() -> None:
    writers = {
        "proportions": proportions,
        "ranks": ranks,
        "trend": trend,
        "ordinal": ordinal,
        "logistic": logistic,
        "separation": separation,
        "counts": counts,
        "counts_days": counts_days,
        "mixed": mixed,
        "mixed_poisson": mixed_poisson,
        "mixed_trials": mixed_trials,
        "mixed_nested": mixed_nested,
        "mixed_agq": mixed_agq,
        "mixed_agq_poisson": mixed_agq_poisson,
        "lmm": lmm,
        "timeseries": timeseries,
        "study_patients": study_patients,
        "study_suggestions": study_suggestions,
    }
    for name, make in writers.items():
        # 15 significant digits round-trip exactly through R's read.csv and pandas' read_csv
        make().to_csv(HERE / f"{name}.csv", index=False, float_format="%.15g")
    for name, make in {"mixed_large": mixed_large}.items():
        # compressed with a fixed (zero) time stamp, so the bytes are the same on every run
        text = make().to_csv(index=False, lineterminator="\n").encode()
        (HERE / f"{name}.csv.gz").write_bytes(gzip.compress(text, compresslevel=9, mtime=0))


if __name__ == "__main__":
    main()
