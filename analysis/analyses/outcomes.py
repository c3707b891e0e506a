"""Every declared outcome analysed as its type asks: the study file says what, this module says how.

An outcome (`outcomes:` in the study file) has a type, a table, a column, a population and a list
of analyses (each type's defaults, minus what the study switches off). `plan` lists what will be
computed for an outcome, with each model's formula and cluster, so the notebook shows it before the
numbers; `analyse` computes exactly that plan with `analysis.stats` and names every number for the
ledger as `<outcome>.<quantity>`.

An analysis that cannot be computed on the data (no rows, no events, a single cluster, ...) is not
an error: its ledger entries are recorded without a value and with a sentence saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis import stats
from analysis.analyses.results import combine, named, not_estimated, value
from analysis.config import PERIODS, Outcome, Study
from analysis.data.derive import all_hold
from analysis.text import render

PROPORTION_TERMS = {
    "events_before": ("events_before", "{label}: {unit} with the outcome, before (count)"),
    "events_after": ("events_after", "{label}: {unit} with the outcome, after (count)"),
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
RANK_TERMS = {
    "mann_whitney": ("mann_whitney", "{label}: Mann-Whitney U test, before vs after (U in statistic)"),
    "rank_biserial": ("rank_biserial", "{label}: rank-biserial correlation, after vs before"),
}
MEAN_TERMS = {
    "mean_before": ("mean_before", "{label}: mean, before"),
    "mean_after": ("mean_after", "{label}: mean, after"),
    "mean_difference": ("mean_difference", "{label}: difference in means, after minus before, Welch CI"),
}


@dataclass(frozen=True)
class Step:
    """One analysis of an outcome as the notebook shows it before running it."""

    analysis: str
    method: str
    model: str = ""
    cluster: str = ""


def outcomes_of(study: Study, *, role: str | None = None, kind: str | None = None) -> list[str]:
    """The outcome keys of a role (`primary`, `secondary`) and/or type, in the study file's order."""
    return [key for key, o in study.outcomes.items()
            if (role is None or _role(study, o) == role) and (kind is None or o.type == kind)]


def _role(study: Study, outcome: Outcome) -> str:
    return study.outcomes[outcome.sensitivity_of].role if outcome.sensitivity_of else outcome.role


# ---------------------------------------------------------------------------------------------
# The rows an outcome is defined for


def population(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The rows the outcome is defined for (its population and subgroup), before missing values are
    handled."""
    outcome = study.outcomes[key]
    frame = tables[outcome.table]
    conditions = [*outcome.population, *(study.subgroups[outcome.subgroup].where if outcome.subgroup else [])]
    return frame[all_hold(frame, conditions).to_numpy(bool)] if conditions else frame


def outcome_data(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """The analysed rows with the outcome in column `y`: 0/1 for binary (missing values left out, or
    counted as the study says), numbers for count and continuous, ordered levels for ordinal."""
    outcome = study.outcomes[key]
    rows = population(tables, study, key)
    values = rows[outcome.column]
    if outcome.type == "binary":
        event = _event(values, outcome)
        if outcome.missing == "as_event":
            event = event.fillna(True)
        elif outcome.missing == "as_no_event":
            event = event.fillna(False)
        keep = event.notna().to_numpy(bool)
        return rows[keep].assign(y=event[keep].astype(bool).astype(int).to_numpy())
    if outcome.type == "ordinal":
        levels = pd.Categorical(values.astype("object").where(values.notna()), categories=outcome.levels,
                                ordered=True)
        keep = ~pd.isna(levels)
        return rows[keep].assign(y=levels[keep])
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    keep = numbers.notna().to_numpy(bool)
    if outcome.exposure is not None:
        keep = keep & rows[outcome.exposure].notna().to_numpy(bool)
    return rows[keep].assign(y=numbers[keep].to_numpy())


def _event(values: pd.Series, outcome: Outcome) -> pd.Series:
    """True/false/missing per row: the column itself, or the study's rule for what is an event."""
    if outcome.event is None:
        return values.astype("boolean")
    if outcome.event.above is not None:
        return (pd.to_numeric(values, errors="coerce") > outcome.event.above).astype("boolean").where(values.notna())
    text = values.astype("object").map(str, na_action="ignore")
    wanted = {str(v).lower() if isinstance(v, bool) else str(v) for v in outcome.event.values}
    return text.map(lambda v: v.lower() in wanted or v in wanted, na_action="ignore").astype("boolean")


def _split(d: pd.DataFrame, column: str = "y") -> tuple[pd.Series, pd.Series]:
    return d.loc[d["after"] == 0, column], d.loc[d["after"] == 1, column]


# ---------------------------------------------------------------------------------------------
# What will be computed


def formula(study: Study, key: str, response: str = "y") -> str:
    covariates = study.outcome_covariates(study.outcomes[key])
    return f"{response} ~ " + " + ".join(["after", *dict.fromkeys(covariates)])


def _adjusted(study: Study, key: str) -> str:
    return "adjusted" if study.outcome_covariates(study.outcomes[key]) else "mixed"


def plan(study: Study, key: str) -> list[Step]:
    """What `analyse` computes for the outcome, in order: each analysis with its method, model formula
    and cluster, as the notebook shows it."""
    o = study.outcomes[key]
    f, cluster = formula(study, key), study.clusters.primary or ""
    steps: list[Step] = []
    if o.type == "binary":
        if o.does("proportions"):
            steps.append(Step("proportions", "counts, Wilson intervals, chi-square (with and without Yates' "
                              "correction), Fisher's exact test, risk difference (Newcombe), relative risk, odds "
                              "ratios (Woolf and conditional MLE)" + (", NNT" if o.does("nnt") else "")))
        if o.does("mixed"):
            steps.append(Step("mixed", "mixed-effects logistic regression, Laplace (conditional odds ratio)", f,
                              cluster))
        if o.does("logistic"):
            steps.append(Step("logistic", "logistic regression, Hosmer-Lemeshow and Nagelkerke's R-squared", f))
        if o.does("gee"):
            steps.append(Step("gee", "GEE, exchangeable correlation (population-averaged odds ratio)", f, cluster))
        if o.does("mixed") and o.does("alternative_clusters"):
            steps += [Step("alternative_clusters", "mixed-effects logistic regression with another cluster", f, c)
                      for c in study.clusters.alternatives]
        if o.count:
            steps.append(Step("count", "negative binomial regression of the number of events per row",
                              f"{o.count} ~ after"))
    elif o.type == "continuous":
        quartiles = "SPSS type 6" if o.quartiles == 6 else "R type 7"
        if o.does("medians"):
            steps.append(Step("medians", f"median and quartiles ({quartiles}) per period"))
        if o.does("rank_tests"):
            steps.append(Step("rank_tests", "Mann-Whitney U, rank-biserial correlation, Hodges-Lehmann shift"))
        if o.does("means"):
            steps.append(Step("means", "means per period, Welch difference in means"))
        if o.does("mixed"):
            steps.append(Step("mixed", "linear mixed model, REML (difference after minus before)", f, cluster))
    elif o.type == "ordinal":
        if o.does("distribution"):
            steps.append(Step("distribution", "counts per level and period"))
        if o.does("trend"):
            steps.append(Step("trend", "chi-square test for trend across " + " < ".join(o.levels or [])))
        if o.does("proportional_odds"):
            steps.append(Step("proportional_odds", "proportional-odds model (cumulative odds ratio)", "y ~ after"))
    else:
        offset = f" + offset(log({o.exposure}))" if o.exposure else ""
        if o.does("rates"):
            steps.append(Step("rates", "events" + (f" per {o.exposure}" if o.exposure else " per row") + ", by period"))
        if o.does("poisson"):
            steps.append(Step("poisson", "Poisson regression (rate ratio)", f + offset))
        if o.does("negative_binomial"):
            steps.append(Step("negative_binomial", "negative binomial regression (rate ratio)", f + offset))
        if o.does("mixed"):
            steps.append(Step("mixed", "mixed-effects Poisson regression, Laplace (rate ratio)", f + offset, cluster))
    return steps


def plan_table(study: Study, key: str) -> pd.DataFrame:
    """The plan as a table for the notebook."""
    return pd.DataFrame([vars(step) for step in plan(study, key)], columns=["analysis", "method", "model", "cluster"])


# ---------------------------------------------------------------------------------------------
# Computing it


def analyse(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """Every analysis of `plan` for the outcome, as one results frame named for the ledger."""
    outcome = study.outcomes[key]
    d = outcome_data(tables, study, key)
    run = {"binary": _binary, "continuous": _continuous, "ordinal": _ordinal, "count": _count}[outcome.type]
    return combine(*(run(step, d, study, key) for step in plan(study, key)))


def _context(study: Study, key: str) -> tuple[Outcome, str, str]:
    outcome = study.outcomes[key]
    return outcome, outcome.label, study.unit(outcome.table)


def _counts(d: pd.DataFrame) -> tuple[int, int, int, int]:
    before, after = _split(d)
    return int(before.sum()), len(before), int(after.sum()), len(after)


def _model_problem(d: pd.DataFrame, study: Study, step: Step, unit: str) -> str | None:
    """Why a model cannot be fitted to these rows (None when it can)."""
    before, after = _split(d)
    if len(before) == 0 or len(after) == 0:
        empty = " and ".join(p for p, part in zip(PERIODS, (before, after), strict=True) if len(part) == 0)
        return f"no {unit} with a recorded outcome in the {empty} period"
    if d["y"].nunique() < 2:
        return "every analysed row has the same outcome value, so there is nothing to model"
    if step.cluster == "" and step.analysis in ("mixed", "gee", "alternative_clusters"):
        return "the study declares no cluster (clusters.primary)"
    return None


def _guard(step: Step, d: pd.DataFrame, study: Study, key: str, terms: dict, compute) -> pd.DataFrame:
    """Run one analysis, or record its entries as not estimated with the reason."""
    _, label, unit = _context(study, key)
    problem = _model_problem(d, study, step, unit) if step.model else None
    exposure = study.outcomes[key].exposure
    if problem is None and step.model and exposure is not None:
        problem = _exposure_problem(d, exposure)
    if problem is None and step.analysis not in ("proportions", "rates", "distribution"):
        problem = _empty_period(d, unit)
    if problem is not None:
        return not_estimated(key, terms, label, f"Not estimated ({step.method}): {problem}.")
    return compute()


def _exposure_problem(d: pd.DataFrame, exposure: str) -> str | None:
    """A count model's offset is log(exposure): a row with none (a patient followed for 0 days) has no
    offset, and the rate models cannot use it (the rates by period still count its events)."""
    bad = int((pd.to_numeric(d[exposure], errors="coerce") <= 0).sum())
    if not bad:
        return None
    return (f"{bad} of {len(d)} rows have {exposure} of 0 or less, whose logarithm (the model's offset) does "
            f"not exist; correct them, or leave them out of the outcome with `population: {exposure} > 0`")


def _empty_period(d: pd.DataFrame, unit: str) -> str | None:
    before, after = _split(d)
    empty = [p for p, part in zip(PERIODS, (before, after), strict=True) if len(part) == 0]
    return f"no {unit} with a recorded outcome in the {' and '.join(empty)} period" if empty else None


def _binary(step: Step, d: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    outcome, label, unit = _context(study, key)
    adjusted = _adjusted(study, key)
    seed = study.seeds.models
    if step.analysis == "proportions":
        terms = {t: s for t, s in PROPORTION_TERMS.items() if t != "nnt" or outcome.does("nnt")}
        terms = {t: (s, text.replace("{unit}", unit)) for t, (s, text) in terms.items()}
        return named(stats.compare_proportions(*_counts(d)), key, terms, label)
    if step.analysis == "mixed":
        cluster = step.cluster
        terms = {"after": (f"odds_ratio_{adjusted}", f"{{label}}: {adjusted} odds ratio after vs before, "
                           f"mixed-effects logistic regression with a random intercept for {cluster}"),
                 f"sd__(Intercept)|{cluster}": ("cluster_sd", f"{{label}}: SD of the {cluster} random intercept "
                                                              "(log-odds scale)" + (", adjusted model"
                                                                                    if adjusted == "adjusted" else ""))}
        return _guard(step, d, study, key, terms, lambda: named(
            stats.mixed_logistic(d, step.model, cluster, period="period", seed=seed), key, terms, label))
    if step.analysis == "logistic":
        model = "adjusted" if adjusted == "adjusted" else "unadjusted"
        terms = {"after": ("odds_ratio_adjusted_fixed" if model == "adjusted" else "odds_ratio_fixed",
                           f"{{label}}: {model} odds ratio, ordinary logistic regression (no clustering)"),
                 "hosmer_lemeshow": ("hosmer_lemeshow", f"{{label}}: Hosmer-Lemeshow goodness of fit of the {model} "
                                                        "logistic model (p)"),
                 "nagelkerke_r2": ("nagelkerke_r2", f"{{label}}: Nagelkerke R-squared of the {model} logistic model")}
        return _guard(step, d, study, key, terms, lambda: named(
            stats.logistic_regression(d, step.model), key, terms, label))
    if step.analysis == "gee":
        terms = {"after": ("odds_ratio_gee", f"{{label}}: {'adjusted ' if adjusted == 'adjusted' else ''}"
                                             "population-averaged odds ratio, GEE with exchangeable correlation "
                                             f"within {step.cluster}")}
        return _guard(step, d, study, key, terms, lambda: named(
            stats.gee_logistic(d, step.model, step.cluster), key, terms, label))
    if step.analysis == "alternative_clusters":
        terms = {"after": (f"odds_ratio_{adjusted}_{step.cluster}", f"{{label}}: {adjusted} odds ratio, random "
                                                                     f"intercept for {step.cluster} instead of "
                                                                     f"{study.clusters.primary}")}
        return _guard(step, d, study, key, terms, lambda: named(
            stats.mixed_logistic(d, step.model, step.cluster, period="period", seed=seed), key, terms, label))
    terms = {"after": ("count_rate_ratio", "{label}: rate ratio of the number of events per row, after vs before, "
                                           "negative binomial regression")}
    counts = d.astype({outcome.count: float})
    return _guard(step, counts.assign(y=counts[outcome.count]), study, key, terms, lambda: named(
        stats.negative_binomial_regression(counts, step.model), key, terms, label))


def _medians(d: pd.DataFrame, key: str, label: str, quartiles: int) -> pd.DataFrame:
    frames = []
    definition = "SPSS type 6" if quartiles == 6 else "R type 7"
    for period, values in zip(PERIODS, _split(d), strict=True):
        terms = {f"median_{period}": (f"median_{period}", f"{{label}}: median, {period}"),
                 f"quartile_1_{period}": (f"quartile_1_{period}", f"{{label}}: first quartile ({definition}), "
                                                                   f"{period}"),
                 f"quartile_3_{period}": (f"quartile_3_{period}", f"{{label}}: third quartile ({definition}), "
                                                                   f"{period}")}
        if len(values) == 0:
            frames.append(not_estimated(key, terms, label, f"Not estimated: no values in the {period} period."))
        else:
            frames.append(named(stats.median_iqr(values.astype(float), type=quartiles, label=period), key, terms,
                                label))
    return combine(*frames)


def _continuous(step: Step, d: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    outcome, label, _ = _context(study, key)
    before, after = (values.astype(float) for values in _split(d))
    if step.analysis == "medians":
        return _medians(d, key, label, outcome.quartiles)
    if step.analysis == "rank_tests":
        terms = {**RANK_TERMS, "hodges_lehmann": ("hodges_lehmann", "{label}: Hodges-Lehmann shift after minus "
                                                                    "before, 95% CI")}
        return _guard(step, d, study, key, terms, lambda: combine(
            named(stats.mann_whitney(before, after), key, RANK_TERMS, label),
            named(stats.hodges_lehmann(before, after), key, {"hodges_lehmann": terms["hodges_lehmann"]}, label)))
    if step.analysis == "means":
        return _guard(step, d, study, key, MEAN_TERMS, lambda: named(
            stats.mean_difference(before, after), key, MEAN_TERMS, label))
    covariates = study.outcome_covariates(outcome)
    baseline = f" with {', '.join(covariates)}" if covariates else ""
    terms = {"after": ("mixed_difference", f"{{label}}: difference after minus before, linear mixed model"
                                           f"{baseline} and a random intercept for {step.cluster}")}
    numeric = d.astype({c: float for c in covariates if pd.api.types.is_numeric_dtype(d[c])})
    return _guard(step, d, study, key, terms, lambda: named(
        stats.linear_mixed(numeric, step.model, step.cluster, period="period"), key, terms, label))


def _ordinal(step: Step, d: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    outcome, label, unit = _context(study, key)
    levels = list(outcome.levels or [])
    counts = distribution_counts(d, levels)
    if step.analysis == "distribution":
        return combine(*(
            value(f"{key}.{level}_{period}", f"{label}: {level}, {period} ({unit} with a recorded value)",
                  int(counts.loc[level, period]), "Count", n=int(counts[period].sum()))
            for period in PERIODS for level in levels))
    if step.analysis == "trend":
        terms = {"trend": ("trend_test", f"{label}: chi-square test for trend across {' < '.join(levels)}")}
        return _guard(step, d, study, key, terms, lambda: named(
            stats.trend_test(counts["before"].to_numpy(), counts["after"].to_numpy()), key, terms))
    terms = {"after": ("proportional_odds", f"{label}: cumulative odds ratio of a higher level, after vs before "
                                            "(proportional-odds model)")}
    problem = "fewer than two levels observed" if d["y"].nunique() < 2 else _empty_period(d, unit)
    if problem is not None:
        return not_estimated(key, terms, "", f"Not estimated (proportional-odds model): {problem}.")
    return named(stats.proportional_odds(d, "y ~ after"), key, terms)


def distribution_counts(d: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Rows per level (index) and period (columns `before`, `after`), zeros included."""
    table = pd.crosstab(d["y"].astype(str), d["period"].astype(str))
    return table.reindex(index=levels, columns=list(PERIODS)).fillna(0).astype(int)


def _count(step: Step, d: pd.DataFrame, study: Study, key: str) -> pd.DataFrame:
    outcome, label, unit = _context(study, key)
    exposure = outcome.exposure
    if step.analysis == "rates":
        frames = []
        for period, part in zip(PERIODS, (d[d["after"] == 0], d[d["after"] == 1]), strict=True):
            total = float(part["y"].sum())
            denominator = float(part[exposure].sum()) if exposure else float(len(part))
            frames += [
                value(f"{key}.events_{period}", f"{label}: events, {period}", total, "Sum", n=len(part)),
                value(f"{key}.exposure_{period}", f"{label}: {exposure or unit}, {period}", denominator,
                      "Sum" if exposure else "Count", n=len(part)),
            ]
            rate = {"rate": (f"rate_{period}", f"{{label}}: events per {exposure or 'row'}, {period}")}
            frames.append(value(f"{key}.rate_{period}", rate["rate"][1].format(label=label), total / denominator,
                                "Events / exposure", n=len(part)) if denominator > 0 else
                          not_estimated(key, rate, label, f"Not estimated: no exposure in the {period} period."))
        return combine(*frames)
    names = {"poisson": ("rate_ratio_poisson", "Poisson regression"),
             "negative_binomial": ("rate_ratio_negative_binomial", "negative binomial regression"),
             "mixed": ("rate_ratio_mixed", f"mixed-effects Poisson regression with a random intercept for "
                                           f"{step.cluster}")}
    suffix, words = names[step.analysis]
    adjusted = "adjusted " if study.outcome_covariates(outcome) else ""
    terms = {"after": (suffix, f"{{label}}: {adjusted}rate ratio after vs before, {words}")}
    fits = {"poisson": lambda: stats.poisson_regression(d, formula(study, key), exposure=exposure),
            "negative_binomial": lambda: stats.negative_binomial_regression(d, formula(study, key),
                                                                            exposure=exposure),
            "mixed": lambda: stats.mixed_poisson(d, formula(study, key), step.cluster, exposure=exposure,
                                                 period="period")}
    return _guard(step, d, study, key, terms, lambda: named(fits[step.analysis](), key, terms, label))


# ---------------------------------------------------------------------------------------------
# Counts of a subgroup, tables for people


def subgroup_results(tables: dict[str, pd.DataFrame], study: Study, name: str) -> pd.DataFrame:
    """How many rows of each period are in a declared subgroup."""
    group = study.subgroups[name]
    frame = tables[group.table]
    inside = frame[all_hold(frame, group.where).to_numpy(bool)]
    unit = study.unit(group.table)
    return combine(*(
        value(f"{name}.{unit}_{period}", f"Subgroup ({group.label}): {unit} {period}",
              int((inside["period"] == period).sum()), "Count")
        for period in PERIODS))


def subgroups_of(study: Study, keys: list[str]) -> list[str]:
    return list(dict.fromkeys(study.outcomes[k].subgroup for k in keys if study.outcomes[k].subgroup))


def summary_table(entries: dict, study: Study, keys: list[str]) -> pd.DataFrame:
    """The binary outcomes as the paper's table, every cell formatted from the ledger entries."""

    def cell(name: str, style: str) -> str:
        return render(f"{{{{ {name} | {style} }}}}", entries) if name in entries else "not estimated"

    labels = study.period.labels()
    rows = []
    for key in keys:
        adjusted = _adjusted(study, key)
        rows.append({
            "Outcome": study.outcomes[key].label,
            labels["before"]: cell(f"{key}.proportion_before", "frac"),
            labels["after"]: cell(f"{key}.proportion_after", "frac"),
            "Risk difference, % (95% CI)": cell(f"{key}.risk_difference", "pct_ci"),
            "Odds ratio, unadjusted (95% CI)": cell(f"{key}.odds_ratio_unadjusted", "est_ci"),
            f"Odds ratio, {adjusted} (95% CI)": cell(f"{key}.odds_ratio_{adjusted}", "est_ci"),
            "Fisher's exact p": cell(f"{key}.fisher", "p"),
        })
    return pd.DataFrame(rows)


def distribution_table(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """Counts and column percentages of an ordinal outcome's levels by period, for display and export."""
    outcome = study.outcomes[key]
    counts = distribution_counts(outcome_data(tables, study, key), list(outcome.levels or []))
    labels = study.period.labels()
    rows = []
    for period in PERIODS:
        total = int(counts[period].sum())
        for level in counts.index:
            count = int(counts.loc[level, period])
            rows.append({"period": period, "period_label": labels[period], "level": level, "count": count,
                         "percent": round(100 * count / total, 1) if total else float("nan")})
    return pd.DataFrame(rows)


def by_cluster(tables: dict[str, pd.DataFrame], study: Study, key: str) -> pd.DataFrame:
    """A binary outcome per cluster and period with Wilson intervals, for the table and the figure."""
    cluster, labels = study.clusters.primary, study.period.labels()
    rows = []
    d = outcome_data(tables, study, key)
    for (unit, period), y in d.groupby([cluster, "period"], observed=True)["y"]:
        events, n = int(y.sum()), len(y)
        low, high = stats.wilson_interval(events, n)
        rows.append({"cluster": unit, "period": period, "period_label": labels[period], "events": events, "n": n,
                     "estimate": events / n, "conf_low": low, "conf_high": high})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# What a notebook says it found, written from whatever the ledger holds


def _have(entries: dict, *names: str) -> bool:
    """Every entry recorded with a number (an estimate, or a test's p-value)."""
    return all(name in entries and (entries[name].estimate is not None or entries[name].p_value is not None)
               for name in names)


def findings(study: Study, keys: list[str], entries: dict) -> str:
    """One sentence per outcome, as a `{{ name | style }}` template of the entries that were estimated
    (an analysis the data did not allow is left out of the sentence; its warning says why)."""
    sentences = []
    for key in keys:
        o = study.outcomes[key]
        label, unit, parts = o.label, study.unit(o.table), []
        adjusted = _adjusted(study, key)
        if o.type == "binary" and _have(entries, f"{key}.proportion_before", f"{key}.proportion_after"):
            head = (f"{label}: {{{{ {key}.proportion_before | frac }}}} of {unit} before and "
                    f"{{{{ {key}.proportion_after | frac }}}} after")
            if _have(entries, f"{key}.risk_difference"):
                parts.append(f"risk difference {{{{ {key}.risk_difference | pp_ci }}}}")
            if _have(entries, f"{key}.odds_ratio_{adjusted}"):
                parts.append(f"{adjusted} odds ratio {{{{ {key}.odds_ratio_{adjusted} | est_ci }}}}")
            if _have(entries, f"{key}.odds_ratio_gee"):
                parts.append(f"GEE {{{{ {key}.odds_ratio_gee | est_ci }}}}")
            if _have(entries, f"{key}.nnt"):
                parts.append(f"{{{{ {key}.nnt | nnt }}}}")
        elif o.type == "continuous" and _have(entries, f"{key}.median_before", f"{key}.median_after"):
            head = (f"{label}: median {{{{ {key}.median_before | est:1 }}}} before and "
                    f"{{{{ {key}.median_after | est:1 }}}} after")
            if _have(entries, f"{key}.mann_whitney"):
                parts.append(f"Mann-Whitney {{{{ {key}.mann_whitney | p }}}}")
            if _have(entries, f"{key}.mean_difference"):
                parts.append(f"difference in means {{{{ {key}.mean_difference | est_ci:1 }}}}")
            if _have(entries, f"{key}.mixed_difference"):
                parts.append(f"linear mixed model {{{{ {key}.mixed_difference | est_ci:1 }}}}")
        elif o.type == "ordinal" and _have(entries, f"{key}.proportional_odds"):
            head = f"{label}: cumulative odds ratio of a higher level {{{{ {key}.proportional_odds | est_ci }}}}"
            if _have(entries, f"{key}.trend_test"):
                parts.append(f"test for trend {{{{ {key}.trend_test | p }}}}")
        elif o.type == "count" and _have(entries, f"{key}.rate_before", f"{key}.rate_after"):
            per = o.exposure or "row"
            head = (f"{label}: {{{{ {key}.rate_before | est:3 }}}} before and {{{{ {key}.rate_after | est:3 }}}} "
                    f"after, events per {per}")
            for suffix, words in (("rate_ratio_poisson", "Poisson rate ratio"),
                                  ("rate_ratio_negative_binomial", "negative binomial rate ratio"),
                                  ("rate_ratio_mixed", "mixed-effects rate ratio")):
                if _have(entries, f"{key}.{suffix}"):
                    parts.append(f"{words} {{{{ {key}.{suffix} | est_ci }}}}")
        else:
            sentences.append(f"{label}: not estimated (see the warnings above).")
            continue
        sentences.append(head + (f" ({'; '.join(parts)})." if parts else "."))
    return "\n\n".join(sentences) if sentences else "No outcome of this kind is declared in the study file."
