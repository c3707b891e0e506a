"""Notebook 04_secondary: potential harm at discharge, MAI change (65 and over), suggestion acceptance.

Quartiles are SPSS's (type 6), the definition the paper's medians and IQRs follow.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.analyses.primary import PROPORTION_TERMS
from analysis.analyses.results import combine, named, value
from analysis.config import Study

SEVERITIES = ["none", "minor", "moderate", "severe"]
QUARTILE_TYPE = 6
CHANGES = {
    "change_admission": ("mai_change_admission", "MAI change from before admission to admission"),
    "change_discharge": ("mai_change_discharge", "MAI change from before admission to discharge"),
}


def _by_period(frame: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    return (frame.loc[frame["after"] == 0, column].astype(float), frame.loc[frame["after"] == 1, column].astype(float))


def _medians(prefix: str, label: str, before: pd.Series, after: pd.Series) -> pd.DataFrame:
    frames = []
    for period, values in (("before", before), ("after", after)):
        result = stats.median_iqr(values, type=QUARTILE_TYPE, label=period)
        frames.append(named(result, prefix, {
            f"median_{period}": (f"median_{period}", f"{{label}}: median, {period}"),
            f"quartile_1_{period}": (f"quartile_1_{period}", f"{{label}}: first quartile (SPSS type 6), {period}"),
            f"quartile_3_{period}": (f"quartile_3_{period}", f"{{label}}: third quartile (SPSS type 6), {period}"),
        }, label))
    return combine(*frames)


def _rank_tests(prefix: str, label: str, before: pd.Series, after: pd.Series) -> pd.DataFrame:
    return combine(
        named(stats.mann_whitney(before, after), prefix, {
            "mann_whitney": ("mann_whitney", "{label}: Mann-Whitney U test, before vs after (U in statistic)"),
            "rank_biserial": ("rank_biserial", "{label}: rank-biserial correlation, after vs before"),
        }, label),
        named(stats.hodges_lehmann(before, after), prefix, {
            "hodges_lehmann": ("hodges_lehmann", "{label}: Hodges-Lehmann shift after minus before, 95% CI"),
        }, label),
    )


def harm_results(patients: pd.DataFrame) -> pd.DataFrame:
    """Severity of the worst discharge error by period, its trend, and the 0-10 harm score."""
    d = patients[patients["has_discharge_outcome"]]
    counts = pd.crosstab(d["harm_severity"].astype(str), d["after"]).reindex(index=SEVERITIES, columns=[0, 1])
    counts = counts.fillna(0).astype(int)
    frames = [
        value(f"harm.{severity}_{period}", f"Potential harm of the worst discharge error: {severity}, {period} "
              "(patients with a discharge outcome)", int(counts.loc[severity, column]), "Count",
              n=int(counts[column].sum()))
        for period, column in (("before", 0), ("after", 1)) for severity in SEVERITIES
    ]
    frames.append(named(stats.trend_test(counts[0].to_numpy(), counts[1].to_numpy()), "harm", {
        "trend": ("trend_test", "Potential harm severity: chi-square test for trend across none < minor < "
                                "moderate < severe"),
    }))
    ordered = d.assign(severity=d["harm_severity"].astype(pd.CategoricalDtype(SEVERITIES, ordered=True)))
    frames.append(named(stats.proportional_odds(ordered, "severity ~ after"), "harm", {
        "after": ("proportional_odds", "Potential harm severity: cumulative odds ratio of more severe harm, after "
                                       "vs before (proportional-odds model)"),
    }))
    before, after = _by_period(d, "harm_vas")
    label = "Potential harm score (0-10)"
    frames += [_medians("harm_vas", label, before, after), _rank_tests("harm_vas", label, before, after)]
    return combine(*frames)


def harm_table(patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Counts and column percentages of harm severity by period, for display and export."""
    d = patients[patients["has_discharge_outcome"]]
    rows = []
    for period, label in (("before", study.periods.before.label), ("after", study.periods.after.label)):
        group = d[d["period"] == period]["harm_severity"].astype(str)
        for severity in SEVERITIES:
            count = int((group == severity).sum())
            rows.append({"period": period, "period_label": label, "severity": severity, "count": count,
                         "percent": round(100 * count / len(group), 1)})
    return pd.DataFrame(rows)


def mai_subgroup(patients: pd.DataFrame) -> pd.DataFrame:
    """Patients aged 65 or over with an MAI assessment, the paper's subgroup."""
    return patients[patients["age_65_plus"] & patients["mai_pre_admission"].notna()]


def mai_results(patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """MAI change in the 65-and-over subgroup: medians (IQR), Mann-Whitney, mean difference (Welch) and a
    linear mixed model (change on period and baseline MAI, random intercept for the study's cluster)."""
    d = mai_subgroup(patients)
    cluster = study.clusters.primary
    frames = [
        value("mai.patients_before", "MAI subgroup (aged 65 or over): patients before", int((d.after == 0).sum()),
              "Count"),
        value("mai.patients_after", "MAI subgroup (aged 65 or over): patients after", int((d.after == 1).sum()),
              "Count"),
    ]
    for key, (column, label) in CHANGES.items():
        prefix = f"mai.{key}"
        before, after = _by_period(d, column)
        frames += [_medians(prefix, label, before, after), _rank_tests(prefix, label, before, after)]
        frames.append(named(stats.mean_difference(before, after), prefix, {
            "mean_before": ("mean_before", "{label}: mean, before"),
            "mean_after": ("mean_after", "{label}: mean, after"),
            "mean_difference": ("mean_difference", "{label}: difference in means, after minus before, Welch CI"),
        }, label))
        fit = stats.linear_mixed(d.astype({column: float, "mai_pre_admission": float}),
                                 f"{column} ~ after + mai_pre_admission", cluster, period="period")
        frames.append(named(fit, prefix, {
            "after": ("mixed_difference", f"{{label}}: difference after minus before, linear mixed model with "
                                          f"baseline MAI and a random intercept for {cluster}"),
        }, label))
    return combine(*frames)


def acceptance_results(suggestions: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Acceptance of pharmacists' suggestions: the two-proportion comparison and a mixed-effects
    logistic model with a random intercept for the study's cluster."""
    label = "Suggestion accepted"
    before, after = _by_period(suggestions, "accepted")
    result = stats.compare_proportions(int(before.sum()), len(before), int(after.sum()), len(after))
    d = suggestions.assign(y=suggestions["accepted"].astype(int))
    cluster = study.clusters.primary
    mixed = stats.mixed_logistic(d, "y ~ after", cluster, period="period", seed=study.seeds.models)
    # no NNT: an accepted suggestion is the desirable event, so "number needed to treat" would read as harm
    terms = {term: spec for term, spec in PROPORTION_TERMS.items() if term != "nnt"}
    return combine(
        named(result, "acceptance", terms, label),
        named(mixed, "acceptance", {
            "after": ("odds_ratio_mixed", f"{{label}}: odds ratio after vs before, mixed-effects logistic "
                                          f"regression with a random intercept for {cluster}"),
            f"sd__(Intercept)|{cluster}": ("cluster_sd", f"{{label}}: SD of the {cluster} random intercept "
                                                          "(log-odds scale)"),
        }, label),
    )


def acceptance_by_team(suggestions: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Acceptance per team and period with Wilson intervals, for the table and the figure."""
    labels = {"before": study.periods.before.label, "after": study.periods.after.label}
    rows = []
    grouped = suggestions.groupby(["team", "period"], observed=True)["accepted"]
    for (team, period), accepted in grouped:
        events, n = int(accepted.sum()), len(accepted)
        low, high = stats.wilson_interval(events, n)
        rows.append({"team": team, "period": period, "period_label": labels[period], "accepted": events, "n": n,
                     "estimate": events / n, "conf_low": low, "conf_high": high})
    return pd.DataFrame(rows)
