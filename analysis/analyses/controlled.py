"""Notebook 03_primary: a controlled before-after study's outcomes, the intervention group's change beyond the
control group's (difference in differences), named for the ledger as `<outcome>.did.<quantity>`.

For a study whose `design.type` is `controlled_before_after`, each binary primary outcome gets (from
`analysis.stats.designs` and `analysis.stats.mixed_logistic`):

- the four proportions and the difference in differences of proportions (Wald interval and the MOVER interval
  from the four Wilson intervals);
- the ratio of odds ratios (the group x period interaction of a logistic model with the outcome's covariates):
  with a random intercept for the cluster (conditional), with cluster-robust HC1 standard errors, and, with fewer
  than 30 clusters, the wild cluster bootstrap (restricted score bootstrap, Webb weights, seeded from
  `seeds.models`).

Each count primary outcome gets the four rates (events over its exposure; means without one) and the ratio of
rate ratios (Poisson, log exposure as offset), each continuous one the four means and the difference in
differences of means (linear): with a random intercept for the cluster (`stats.mixed_poisson`,
`stats.linear_mixed`), with cluster-robust HC1 errors (`stats.designs.did_cluster_robust`) and, with fewer than
30 clusters, the wild cluster bootstrap on the same scale (`stats.designs.wild_cluster_bootstrap` with
`family="poisson"` and the exposure, or `"gaussian"`).

The cluster is the study's `clusters.primary`, or, without one, the design's `sites`. The rows analysed are the
outcome's own (its population and missing-value rule, `outcomes.outcome_data`) in either group: a population
condition on the group column (`population: hospital == Northside`, which makes the ordinary before-after
analyses of notebooks 03 and 04 describe the intervention group) is lifted here, since the difference in
differences needs both groups.

Notebook 05_robustness adds, for binary, count and continuous outcomes on their scales (logistic, Poisson with the
exposure as offset, linear), with 3 or more time points before the change (`design.time_unit`, months or
quarters counted from each period's window: ..., -2, -1 before the change, 0, 1, ... after), the pre-period trend
comparison (`<outcome>.did.parallel_trends_wald`, `<outcome>.did.pre_trend_ratio`, or `pre_trend_difference` for a
continuous outcome) and the event study
(`<outcome>.did.event_before_<k>`, `<outcome>.did.event_after_<k>`, relative to `event_before_1`), from
`analysis.stats.designs.parallel_trends` and `event_study`; `event_table` is the figure's frame.
"""

from __future__ import annotations

import pandas as pd

from analysis import stats
from analysis.analyses.outcomes import outcome_data, outcomes_of
from analysis.analyses.results import combine, named, not_estimated, value
from analysis.config import Study
from analysis.stats import mixed_logistic
from analysis.stats.designs import (
    FEW_CLUSTERS,
    did_cluster_robust,
    did_logistic_cluster,
    difference_in_differences,
    event_study,
    parallel_trends,
    wild_cluster_bootstrap,
)
from analysis.stats.tidy import join

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
    outcome = study.outcomes[key]
    both = outcome.model_copy(update={"population": [c for c in outcome.population if c.column != group.column]})
    d = outcome_data(tables, study.model_copy(update={"outcomes": {**study.outcomes, key: both}}), key)
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
    if outcome.type in SCALES:
        return _other_results(tables, study, key)
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
    return _with_pooling(combine(*frames), study, key)


def _with_pooling(out: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    pooled = pooling(study, key)
    if pooled:
        out["warnings"] = [join(w, pooled) for w in out["warnings"]]
    return out


# count and continuous outcomes: (word for the four cells, the contrast, the GLM family)
SCALES = {"count": ("rate", "ratio_of_rate_ratios", "poisson"),
          "continuous": ("mean", "difference_in_differences", "gaussian")}


def _cells(d: pd.DataFrame, exposure: str | None) -> dict[str, tuple[float, int]]:
    """Each group and period's mean (continuous, or a count without exposure) or rate (events over exposure),
    with its rows."""
    out = {}
    for group, side in ((1, "intervention"), (0, "control")):
        for after, period in ((0, "before"), (1, "after")):
            cell = d[(d["intervention"] == group) & (d["after"] == after)]
            value = (cell["y"].sum() / cell[exposure].sum() if exposure and cell[exposure].sum() > 0 else
                     cell["y"].mean() if exposure is None and len(cell) else float("nan"))
            out[f"{side}_{period}"] = (float(value), len(cell))
    return out


def _other_results(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """A count or continuous outcome: the four cells' rates or means, and the group x period interaction (ratio
    of rate ratios, or difference in differences of means) with a random intercept and with cluster-robust
    errors."""
    outcome = study.outcomes[key]
    label, (cell_word, contrast, family) = outcome.short, SCALES[outcome.type]
    exposure = outcome.exposure if outcome.type == "count" else None
    d = did_data(tables, study, key)
    prefix = f"{key}.did"
    per = f" per {exposure}" if exposure else ""
    frames = [value(f"{prefix}.{cell_word}_{cell}", f"{label}: {cell_word}{per}, {cell.replace('_', ', ')}", v,
                    f"{cell_word.capitalize()} of the rows in the group and period" + (
                        f" (events / {exposure})" if exposure else ""), n=n)
              for cell, (v, n) in _cells(d, exposure).items()]
    column = cluster(study)
    formula = did_formula(study, key)
    what = ("{label}: ratio of rate ratios (intervention vs control, after vs before), " if outcome.type == "count"
            else "{label}: difference in differences of means (intervention vs control, after minus before), ")
    mixed = (lambda: stats.mixed_poisson(d, formula, column, exposure=exposure)) if outcome.type == "count" else (
        lambda: stats.linear_mixed(d, formula, column))
    models = {"mixed": (f"random intercept for {column}, adjusted", mixed),
              "cluster_robust": (f"cluster-robust (HC1) SE by {column}, adjusted",
                                 lambda: did_cluster_robust(d, formula, column, family=family, exposure=exposure))}
    clusters = int(d[column].nunique()) if column else 0
    if clusters < FEW_CLUSTERS:
        models["wild_bootstrap"] = (
            f"wild cluster bootstrap by {column} (restricted score, Webb weights, {clusters} clusters), adjusted",
            lambda: wild_cluster_bootstrap(d, formula, INTERACTION, column, seed=study.seeds.models, family=family,
                                           exposure=exposure))
    for suffix, (words, fit) in models.items():
        terms = {INTERACTION: (f"{contrast}_{suffix}", what + words)}
        if column is None:
            frames.append(not_estimated(prefix, terms, label, "No cluster declared (clusters.primary or "
                                                              "design.sites)."))
            continue
        frames.append(named(fit(), prefix, terms, label))
    return _with_pooling(combine(*frames), study, key)


def pooling(study: Study, key: str) -> str:
    """A sentence when the outcome's ordinary before-after analyses pool the intervention and control groups
    (its population does not name the group column): a before-after change of both groups together is neither
    the intervention's effect nor the secular trend."""
    group = study.design.group
    if group is None or any(c.column == group.column for c in study.outcomes[key].population):
        return ""
    return (f"The ordinary before-after analyses of {key} pool the intervention and control groups, which "
            f"estimates neither the intervention's change nor the secular one: declare `population: {group.column} "
            f"== {group.intervention}` for the outcome, so that they describe the intervention group (the "
            "difference in differences uses both groups either way).")


MONTHS = {"month": 1, "quarter": 3}
TREND_TERMS = {
    "parallel_trends_wald": ("parallel_trends_wald", "{label}: joint Wald test of the intervention x time point "
                             "interactions before the change (parallel trends)"),
    "pre_trend_ratio": ("pre_trend_ratio", "{label}: {contrast} per {unit} before the change "
                        "(intervention vs control, linear pre-period trends)"),
    "pre_trend_difference": ("pre_trend_difference", "{label}: difference of the groups' slopes (means) per {unit} "
                             "before the change (intervention minus control, linear pre-period trends)"),
}
# each outcome type's model of the event study and trend comparison: (GLM family, the contrast in words)
TREND_SCALES = {"binary": ("binomial", "ratio of odds ratios"), "count": ("poisson", "ratio of rate ratios"),
                "continuous": ("gaussian", "difference in differences of means")}


def event_time(dates: pd.Series, study: Study) -> pd.Series:
    """Each row's time point, in `design.time_unit`s counted from the change: -1 for the last unit of the before
    window, -2 the one before it, ...; 0 for the first unit of the after window, 1 the next, ... (units of calendar
    months counted back from the before window's last month and on from the after window's first); missing
    outside both windows."""
    size = MONTHS[study.design.time_unit]
    when = pd.to_datetime(dates)
    months = (when.dt.year * 12 + when.dt.month).astype("Int64")
    last = study.period.before.end.year * 12 + study.period.before.end.month
    first = study.period.after.start.year * 12 + study.period.after.start.month
    before = -1 - (last - months) // size
    return before.where(months <= last, ((months - first) // size).where(months >= first))


def _timed(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    d = did_data(tables, study, key)
    return d.assign(time=event_time(d[study.period_column(study.outcomes[key].table)], study)).dropna(
        subset=["time"])


def _event_suffix(t: float) -> str:
    return f"event_before_{-int(t)}" if t < 0 else f"event_after_{int(t) + 1}"


def trend_results(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The outcome's pre-period trend comparison and event study, `<key>.did.<quantity>`; with fewer than 3 time
    points before the change, the trend comparison is recorded as not estimated with the reason."""
    outcome = study.outcomes[key]
    label, unit = outcome.short, study.design.time_unit
    family, contrast = TREND_SCALES[outcome.type]
    exposure = outcome.exposure if outcome.type == "count" else None
    slope = "pre_trend_difference" if family == "gaussian" else "pre_trend_ratio"
    wanted = {t: (s, text.replace("{unit}", unit).replace("{contrast}", contrast))
              for t, (s, text) in TREND_TERMS.items() if t in ("parallel_trends_wald", slope)}
    prefix = f"{key}.did"
    if not study.period.by_date:
        return not_estimated(prefix, wanted, label,
                             "The periods carry no dates: there are no time points to compare trends over.")
    d = _timed(tables, study, key)
    covariates = tuple(dict.fromkeys(study.outcome_covariates(outcome)))
    column = cluster(study)
    trends = parallel_trends(d, "time", 0, covariates=covariates, cluster=column, family=family, exposure=exposure)
    frames = [named(trends, prefix, wanted, label)]
    if d.loc[d["time"] < 0, "time"].nunique() >= 3:
        events = event_study(d, "time", -1, covariates=covariates, cluster=column, family=family, exposure=exposure)
        terms = {term: (_event_suffix(t), f"{{label}}: {contrast} (intervention vs control) {_when(t, unit)}"
                        f", relative to the last {unit} before the change (event study)")
                 for term, t in zip(events["term"], events["time"], strict=True)}
        frames.append(named(events, prefix, terms, label))
    return combine(*frames)


def _when(t: float, unit: str) -> str:
    k = -int(t) if t < 0 else int(t) + 1
    return f"{k} {unit}{'s' if k > 1 else ''} {'before' if t < 0 else 'after'} the change ({unit} {int(t):+d})"


def trends(tables: dict[str, pd.DataFrame], study: Study, role: str = "primary") -> pd.DataFrame:
    """Every binary, count and continuous outcome of `role`: the pre-period trend comparison and event study, each
    on its outcome's scale; empty for other designs."""
    if study.design.type != "controlled_before_after":
        return combine()
    return combine(*(trend_results(tables, study, key) for key in outcomes_of(study, role=role)
                     if study.outcomes[key].type in TREND_SCALES))


def event_table(recorded: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The event study rows of `trends(...)` as the figure's frame: outcome label, time point, the contrast and
    its limits, and `scale` (the contrast's words: a ratio of odds or rate ratios, or a difference of means)."""
    rows = recorded[recorded["name"].str.contains(r"\.did\.event_", regex=True)]
    keys = rows["name"].str.rsplit(".did.", n=1).str[0]
    times = [-int(s.rsplit("_", 1)[1]) if "before" in s else int(s.rsplit("_", 1)[1]) - 1
             for s in rows["name"].str.rsplit(".", n=1).str[1]]
    return pd.DataFrame({"outcome": keys.to_numpy(), "measure": [study.outcomes[k].short for k in keys],
                         "time": times, "estimate": rows["estimate"].to_numpy(float),
                         "conf_low": rows["conf_low"].to_numpy(float), "conf_high": rows["conf_high"].to_numpy(float),
                         "unit": study.design.time_unit,
                         "scale": [TREND_SCALES[study.outcomes[k].type][1] for k in keys]})


def results(tables: dict[str, pd.DataFrame], study: Study, role: str = "primary") -> pd.DataFrame:
    """Every binary, count and continuous outcome of `role` analysed as a controlled before-after; empty for any
    other design."""
    if study.design.type != "controlled_before_after":
        return combine()
    return combine(*(did_results(tables, study, key) for key in outcomes_of(study, role=role)
                     if study.outcomes[key].type in ("binary", *SCALES)))
