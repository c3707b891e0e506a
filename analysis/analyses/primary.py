"""Notebook 03_primary: medication errors at admission and at discharge, before vs after.

For each binary outcome: counts and proportions (Wilson), chi-square with and without continuity
correction, Fisher's exact test, risk difference (Newcombe), relative risk, odds ratio (Woolf and
exact), NNT; then the paper's adjusted models: a mixed-effects logistic regression with a random
intercept for the study's cluster (conditional odds ratio), the same covariates in an ordinary
logistic regression (for Hosmer-Lemeshow and Nagelkerke's R-squared, as the paper reports them), and
GEE with an exchangeable correlation (population-averaged odds ratio). Alternative clusterings and
a count model for the number of errors are sensitivity analyses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from analysis import stats
from analysis.analyses.results import combine, named
from analysis.config import Study
from analysis.text import render

PROPORTION_TERMS = {
    "events_before": ("events_before", "{label}: patients with the outcome, before (count)"),
    "events_after": ("events_after", "{label}: patients with the outcome, after (count)"),
    "proportion_before": ("proportion_before", "{label}: proportion before, Wilson 95% CI"),
    "proportion_after": ("proportion_after", "{label}: proportion after, Wilson 95% CI"),
    "risk_difference": ("risk_difference", "{label}: risk difference after minus before, Newcombe hybrid score CI"),
    "relative_risk": ("relative_risk", "{label}: relative risk after vs before"),
    "odds_ratio_woolf": ("odds_ratio_unadjusted", "{label}: unadjusted odds ratio after vs before, Woolf CI"),
    "odds_ratio_exact": ("odds_ratio_exact", "{label}: conditional MLE odds ratio with exact CI"),
    "chi2": ("chi2", "{label}: Pearson chi-square test, before vs after"),
    "chi2_corrected": ("chi2_corrected", "{label}: chi-square test with Yates' continuity correction"),
    "fisher": ("fisher", "{label}: Fisher's exact test, before vs after"),
    "nnt": ("nnt", "{label}: number needed to treat (after vs before), from the Newcombe interval"),
}


@dataclass(frozen=True)
class Outcome:
    """A binary outcome: which patients it is defined for and how to read it from the patient table."""

    key: str
    label: str
    rows: Callable[[pd.DataFrame], pd.Series]
    event: Callable[[pd.DataFrame], pd.Series]
    discharge: bool  # adjusted also for the study's discharge covariates (length of stay)
    models: bool = True  # fit the adjusted models (not for outcomes with no events in a period)
    count: str | None = None  # column with the number of errors, for a count model


def _all(d):
    return pd.Series(True, index=d.index)


OUTCOMES = {
    o.key: o
    for o in [
        Outcome("admission_error", "Medication error at admission", _all,
                lambda d: d["error_at_admission"].astype(bool), False, count="n_errors_admission"),
        Outcome("discharge_error", "Medication error at discharge",
                lambda d: d["has_discharge_outcome"], lambda d: d["error_at_discharge"].astype(bool), True,
                count="n_errors_discharge"),
        Outcome("discharge_error_missing_as_error", "Error at discharge, missing outcome counted as an error",
                _all, lambda d: d["error_at_discharge"].fillna(True).astype(bool), True),
        Outcome("discharge_error_missing_as_no_error", "Error at discharge, missing outcome counted as no error",
                _all, lambda d: d["error_at_discharge"].fillna(False).astype(bool), True),
        # as the paper's NNT (20, 10 to 142): all patients, a missing outcome as no severe error
        Outcome("severe_discharge_error", "Potentially severe error at discharge",
                _all, lambda d: (d["harm_severity"] == "severe").fillna(False).astype(bool), False, models=False),
    ]
}
PRIMARY = ["admission_error", "discharge_error"]
SENSITIVITY = ["discharge_error_missing_as_error", "discharge_error_missing_as_no_error"]


def outcome_data(patients: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """The patients the outcome is defined for, with the outcome as 0/1 in column `y`."""
    rows = patients[outcome.rows(patients).to_numpy(bool)]
    return rows.assign(y=outcome.event(rows).astype(int).to_numpy())


def proportions(patients: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    d = outcome_data(patients, outcome)
    before, after = d.loc[d["after"] == 0, "y"], d.loc[d["after"] == 1, "y"]
    result = stats.compare_proportions(int(before.sum()), len(before), int(after.sum()), len(after))
    return named(result, outcome.key, PROPORTION_TERMS, outcome.label)


def formula(study: Study, outcome: Outcome) -> str:
    covariates = list(study.covariates) + (list(study.discharge_covariates) if outcome.discharge else [])
    return "y ~ " + " + ".join(["after", *dict.fromkeys(covariates)])


def adjusted(patients: pd.DataFrame, outcome: Outcome, study: Study) -> pd.DataFrame:
    """The paper's adjusted analyses: mixed-effects (conditional OR), fixed-effect logistic with its
    goodness of fit, and GEE (population-averaged OR), all with the study's covariates."""
    d = outcome_data(patients, outcome)
    f, cluster, label = formula(study, outcome), study.clusters.primary, outcome.label
    mixed = stats.mixed_logistic(d, f, cluster, period="period", seed=study.seeds.models)
    fixed = stats.logistic_regression(d, f)
    gee = stats.gee_logistic(d, f, cluster)
    return combine(
        named(mixed, outcome.key, {
            "after": ("odds_ratio_adjusted", f"{{label}}: adjusted odds ratio after vs before, mixed-effects "
                                             f"logistic regression with a random intercept for {cluster}"),
            f"sd__(Intercept)|{cluster}": ("cluster_sd", f"{{label}}: SD of the {cluster} random intercept "
                                                          "(log-odds scale), adjusted model"),
        }, label),
        named(fixed, outcome.key, {
            "after": ("odds_ratio_adjusted_fixed", "{label}: adjusted odds ratio, ordinary logistic regression "
                                                   "(no clustering)"),
            "hosmer_lemeshow": ("hosmer_lemeshow", "{label}: Hosmer-Lemeshow goodness of fit of the adjusted "
                                                   "logistic model (p)"),
            "nagelkerke_r2": ("nagelkerke_r2", "{label}: Nagelkerke R-squared of the adjusted logistic model"),
        }, label),
        named(gee, outcome.key, {
            "after": ("odds_ratio_gee", f"{{label}}: adjusted population-averaged odds ratio, GEE with "
                                        f"exchangeable correlation within {cluster}"),
        }, label),
    )


def other_clusters(patients: pd.DataFrame, outcome: Outcome, study: Study) -> pd.DataFrame:
    """The adjusted mixed-effects odds ratio with each alternative cluster variable instead."""
    d = outcome_data(patients, outcome)
    frames = []
    for cluster in study.clusters.alternatives:
        fit = stats.mixed_logistic(d, formula(study, outcome), cluster, period="period", seed=study.seeds.models)
        frames.append(named(fit, outcome.key, {
            "after": (f"odds_ratio_adjusted_{cluster}", f"{{label}}: adjusted odds ratio, random intercept for "
                                                        f"{cluster} instead of {study.clusters.primary}"),
        }, outcome.label))
    return combine(*frames)


def error_counts(patients: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """Rate ratio of the number of errors per patient, negative binomial (the counts are overdispersed)."""
    d = outcome_data(patients, outcome).astype({outcome.count: float})
    fit = stats.negative_binomial_regression(d, f"{outcome.count} ~ after")
    return named(fit, outcome.key, {
        "after": ("error_count_rate_ratio", "{label}: rate ratio of the number of errors per patient, after vs "
                                            "before, negative binomial regression"),
    }, outcome.label)


def outcome_results(patients: pd.DataFrame, key: str, study: Study) -> pd.DataFrame:
    """Everything the primary notebook reports for one outcome."""
    outcome = OUTCOMES[key]
    frames = [proportions(patients, outcome)]
    if outcome.models:
        frames.append(adjusted(patients, outcome, study))
    if key in PRIMARY:
        frames.append(other_clusters(patients, outcome, study))
    if outcome.count:
        frames.append(error_counts(patients, outcome))
    return combine(*frames)


SUMMARY_ROWS = ["admission_error", "discharge_error", "discharge_error_missing_as_error",
                "discharge_error_missing_as_no_error", "severe_discharge_error"]


def summary_table(entries: dict, study: Study) -> pd.DataFrame:
    """The paper's table of primary outcomes, every cell formatted from the ledger entries."""

    def cell(name: str, style: str) -> str:
        return render(f"{{{{ {name} | {style} }}}}", entries) if name in entries else "not estimated"

    rows = []
    for key in SUMMARY_ROWS:
        rows.append({
            "Outcome": OUTCOMES[key].label,
            study.periods.before.label: cell(f"{key}.proportion_before", "frac"),
            study.periods.after.label: cell(f"{key}.proportion_after", "frac"),
            "Risk difference, % (95% CI)": cell(f"{key}.risk_difference", "pct_ci"),
            "Odds ratio, unadjusted (95% CI)": cell(f"{key}.odds_ratio_unadjusted", "est_ci"),
            "Odds ratio, adjusted (95% CI)": cell(f"{key}.odds_ratio_adjusted", "est_ci"),
            "Fisher's exact p": cell(f"{key}.fisher", "p"),
        })
    return pd.DataFrame(rows)
