"""Notebook 03_primary: a controlled before-after study's binary outcomes, the intervention group's change
beyond the control group's (difference in differences), named for the ledger as `<outcome>.did.<quantity>`.

For a study whose `design.type` is `controlled_before_after`, each binary primary outcome gets (from
`analysis.stats.designs` and `analysis.stats.mixed_logistic`):

- the four proportions and the difference in differences of proportions (Wald interval and the MOVER interval
  from the four Wilson intervals);
- the ratio of odds ratios (the group x period interaction of a logistic model with the outcome's covariates):
  with a random intercept for the cluster (conditional), with cluster-robust HC1 standard errors, and, with fewer
  than 30 clusters, the wild cluster bootstrap (restricted score bootstrap, Webb weights, seeded from
  `seeds.models`).

The cluster is the study's `clusters.primary`, or, without one, the design's `sites`. The rows analysed are the
outcome's own (its population and missing-value rule, `outcomes.outcome_data`) in either group.
"""

from __future__ import annotations

import pandas as pd

from analysis.analyses.outcomes import outcome_data, outcomes_of
from analysis.analyses.results import combine, named, not_estimated
from analysis.config import Study
from analysis.stats import mixed_logistic
from analysis.stats.designs import FEW_CLUSTERS, did_logistic_cluster, difference_in_differences, wild_cluster_bootstrap

INTERACTION = "intervention:after"
PROPORTION_TERMS = {
    "proportion_intervention_before": ("proportion_intervention_before", "{label}: proportion, intervention, before"),
    "proportion_intervention_after": ("proportion_intervention_after", "{label}: proportion, intervention, after"),
    "proportion_control_before": ("proportion_control_before", "{label}: proportion, control, before"),
    "proportion_control_after": ("proportion_control_after", "{label}: proportion, control, after"),
    "risk_difference_intervention": ("risk_difference_intervention",
                                     "{label}: risk difference after minus before, intervention group"),
    "risk_difference_control": ("risk_difference_control", "{label}: risk difference after minus before, control "
                                "group (the secular change)"),
    "difference_in_differences": ("difference_in_differences", "{label}: difference in differences of proportions "
                                  "(Wald CI)"),
    "difference_in_differences_mover": ("difference_in_differences_mover", "{label}: difference in differences of "
                                        "proportions (MOVER CI from Wilson intervals)"),
}


def cluster(study: Study) -> str | None:
    """The cluster of the models: the study's primary cluster, else the design's sites."""
    return study.clusters.primary or study.design.sites


def did_data(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The outcome's rows with `intervention` (1 intervention, 0 control; rows in neither group left out)."""
    group = study.design.group
    if group is None:
        raise ValueError(f"study {study.name} is not a controlled before-after design (design.type)")
    d = outcome_data(tables, study, key)
    values = d[group.column].astype("string")
    d = d.assign(intervention=(values == str(group.intervention)).astype(int).to_numpy())
    return d[(values == str(group.intervention)) | (values == str(group.control))].reset_index(drop=True)


def did_formula(study: Study, key: str) -> str:
    covariates = study.outcome_covariates(study.outcomes[key])
    return "y ~ intervention * after" + "".join(f" + {c}" for c in dict.fromkeys(covariates))


def _counts(d: pd.DataFrame) -> list[int]:
    out = []
    for group in (1, 0):
        for after in (0, 1):
            cell = d.loc[(d["intervention"] == group) & (d["after"] == after), "y"]
            out += [int(cell.sum()), len(cell)]
    return out


def did_results(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The outcome's difference-in-differences rows, `<key>.did.<quantity>`."""
    outcome = study.outcomes[key]
    label = outcome.short
    d = did_data(tables, study, key)
    prefix = f"{key}.did"
    frames = [named(difference_in_differences(*_counts(d)), prefix, PROPORTION_TERMS, label)]
    column = cluster(study)
    formula = did_formula(study, key)
    ror = "{label}: ratio of odds ratios (intervention vs control, after vs before), "
    models = {
        "mixed": (f"random intercept for {column}, adjusted", lambda: mixed_logistic(d, formula, column)),
        "cluster_robust": (f"cluster-robust (HC1) SE by {column}, adjusted",
                           lambda: did_logistic_cluster(d, formula, column)),
    }
    clusters = int(d[column].nunique()) if column else 0
    if clusters < FEW_CLUSTERS:
        models["wild_bootstrap"] = (
            f"wild cluster bootstrap by {column} (restricted score, Webb weights, {clusters} clusters), adjusted",
            lambda: wild_cluster_bootstrap(d, formula, INTERACTION, column, seed=study.seeds.models))
    for suffix, (what, fit) in models.items():
        terms = {INTERACTION: (f"ratio_of_odds_ratios_{suffix}", ror + what)}
        if column is None:
            reason = "No cluster declared (clusters.primary or design.sites)."
            frames.append(not_estimated(prefix, terms, label, reason))
            continue
        frames.append(named(fit(), prefix, terms, label))
    return combine(*frames)


def results(tables: dict[str, pd.DataFrame], study: Study, role: str = "primary") -> pd.DataFrame:
    """Every binary outcome of `role` analysed as a controlled before-after; empty for any other design."""
    if study.design.type != "controlled_before_after":
        return combine()
    return combine(*(did_results(tables, study, key) for key in outcomes_of(study, role=role, kind="binary")))
