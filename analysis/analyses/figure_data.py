"""Notebook 07_figures: which figures a study gets, and the frames each is drawn from.

The figures follow the declared outcomes: proportions of the binary outcomes, a forest plot of their
odds ratios (with their sensitivity analyses), the monthly series, the levels of each ordinal
outcome, the values of the continuous outcomes (grouped by subgroup), a binary outcome by cluster
where the study asks for it (`by_cluster`), and the random intercepts of the headline outcomes' mixed
models by cluster (a caterpillar plot, `modes`). Numbers come from the ledger and from the tables the
other notebooks exported; the caterpillar plot's table is made here (`export_tables`, before the figures
are drawn) from the model notebooks 03 and 04 fit, and only continuous values, which no summary can show,
are drawn from the derived tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure as Drawn

from analysis import disclosure, figures, tables
from analysis.analyses.its_counts import its_outcomes
from analysis.analyses.outcomes import outcome_data, plan
from analysis.config import PERIODS, Study
from analysis.errors import StudyError
from analysis.figures.plots import event_study as event_study_figure
from analysis.ledger import Entry
from analysis.stats.mixed import random_effects


@dataclass(frozen=True)
class Figure:
    """One figure of the study: its file name, the figure function, the outcomes it shows."""

    name: str
    kind: str  # proportions, forest, monthly, its, event_study, levels, values, by_cluster, modes
    keys: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


def _main_binary(study: Study) -> list[str]:
    return [k for k, o in study.outcomes.items() if o.type == "binary" and o.sensitivity_of is None
            and o.does("proportions")]


def figures_of(study: Study, has_monthly: bool, has_its: bool | None = None,
               has_event_study: bool = False) -> list[Figure]:
    """The study's figures, in the order the notebook draws them. `has_its`: whether notebook 05 exported
    interrupted time series curves (default: whenever the design is one and the monthly series are drawn);
    `has_event_study`: whether notebook 05 exported a controlled before-after study's event study."""
    binary = _main_binary(study)
    found = []
    if binary:
        found.append(Figure("proportions", "proportions", tuple(binary)))
    # the headline figure: the primary outcomes' odds ratios (all binary outcomes when none is primary)
    modelled = [k for k in binary if study.outcomes[k].does("mixed")]
    headline = [k for k in modelled if study.outcomes[k].role == "primary"] or modelled
    if headline:
        found.append(Figure("forest", "forest", tuple(headline)))
    for key, o in study.outcomes.items():
        if o.type == "ordinal":
            found.append(Figure(f"{key.replace('.', '_')}_levels", "levels", (key,)))
    groups: dict[str, list[str]] = {}
    for key, o in study.outcomes.items():
        if o.type == "continuous":
            groups.setdefault(o.subgroup or key.replace(".", "_"), []).append(key)
    found += [Figure(f"{group}_values", "values", tuple(keys)) for group, keys in groups.items()]
    if has_monthly:
        found.append(Figure("monthly", "monthly"))
    its_keys = its_outcomes(study)
    if its_keys and (has_monthly if has_its is None else has_its):
        found.append(Figure("its", "its", tuple(its_keys)))
    if has_event_study and study.design.type == "controlled_before_after":
        found.append(Figure("event_study", "event_study"))
    for key, o in study.outcomes.items():
        if o.does("by_cluster") and study.clusters.primary:
            found.append(Figure(f"{key.replace('.', '_')}_by_{study.clusters.primary}", "by_cluster", (key,)))
    if study.clusters.primary:
        found += [Figure(f"{key.replace('.', '_')}_modes_by_{study.clusters.primary}", "modes", (key,))
                  for key in headline]
    return found


def proportions(entries: dict[str, Entry], study: Study, keys: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    labels = study.period.labels()
    for key in keys:
        for period in PERIODS:
            p, events = entries[f"{key}.proportion_{period}"], entries[f"{key}.events_{period}"]
            if p.estimate is None:
                continue
            rows.append({"outcome": study.outcomes[key].short, "period": period, "period_label": labels[period],
                         "estimate": p.estimate, "conf_low": p.conf_low, "conf_high": p.conf_high,
                         "events": int(events.estimate), "n": p.n})
    return pd.DataFrame(rows)


def forest(entries: dict[str, Entry], study: Study, keys: tuple[str, ...]) -> pd.DataFrame:
    """Unadjusted, mixed-effects and GEE odds ratios of each outcome, then its sensitivity analyses."""
    rows = []
    for key in keys:
        adjusted = "adjusted" if study.outcome_covariates(study.outcomes[key]) else "mixed"
        analyses = [("Unadjusted", f"{key}.odds_ratio_unadjusted"),
                    (f"{adjusted.capitalize()}, mixed-effects" if adjusted == "adjusted" else "Mixed-effects",
                     f"{key}.odds_ratio_{adjusted}"),
                    ("GEE, population-averaged", f"{key}.odds_ratio_gee")]
        for variant, o in study.outcomes.items():
            if o.sensitivity_of == key and o.does("mixed"):
                analyses.append((o.short, f"{variant}.odds_ratio_{adjusted}"))
        for analysis, name in analyses:
            entry = entries.get(name)
            if entry is None or entry.estimate is None:
                continue
            published = entry.published
            rows.append({"outcome": study.outcomes[key].short, "analysis": analysis, "estimate": entry.estimate,
                         "conf_low": entry.conf_low, "conf_high": entry.conf_high,
                         "published_estimate": published.estimate if published else float("nan"),
                         "published_low": published.conf_low if published else float("nan"),
                         "published_high": published.conf_high if published else float("nan")})
    columns = ["published_estimate", "published_low", "published_high"]
    return pd.DataFrame(rows).astype(dict.fromkeys(columns, float))


def levels(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns={"level": "severity"})[["period_label", "severity", "count"]]


def values(tables: dict[str, pd.DataFrame], study: Study, keys: tuple[str, ...]) -> pd.DataFrame:
    """One row per analysed row and outcome: its period and value."""
    labels = study.period.labels()
    frames = []
    for key in keys:
        d = outcome_data(tables, study, key)
        frames.append(pd.DataFrame({"period_label": d["period"].astype(str).map(labels),
                                    "timepoint": study.outcomes[key].short, "change": d["y"].to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def monthly(table: pd.DataFrame, study: Study) -> pd.DataFrame:
    labels = study.period.labels()
    return table.assign(month=pd.to_datetime(table["month"] + "-01"),
                        period_label=table["period"].map(labels))[
        ["measure", "month", "period", "period_label", "events", "n", "proportion", "fitted", "centre", "lcl", "ucl"]]


def its(table: pd.DataFrame, study: Study, keys: tuple[str, ...]) -> pd.DataFrame:
    """Notebook 05's exported `its_curves`, for the outcomes of the figure, months (2009-01) or weeks (their
    Monday, 2009-01-05) as dates."""
    labels = study.period.labels()
    part = table[table["outcome"].isin(keys)]
    dates = pd.to_datetime(part["month"].astype(str), format="ISO8601")
    return part.assign(month=dates, period_label=part["period"].map(labels))[
        ["measure", "series", "month", "period", "period_label", "events", "n", "observed", "fitted",
         "counterfactual"]]


def by_cluster(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns={"cluster": "team", "events": "accepted"})[
        ["team", "period_label", "accepted", "n", "estimate", "conf_low", "conf_high"]]


def modes(tables_: dict[str, pd.DataFrame], study: Study, key: str, exported=None) -> tuple[pd.DataFrame, list[dict]]:
    """The random intercepts of the outcome's mixed model by cluster, for the caterpillar plot: the model of
    the outcome's plan (`outcomes.plan`: its formula and cluster, on its analysed rows), its conditional modes
    (log-odds scale) with their conditional SDs and mode +/- 1.96 SD, conditional on the estimates
    (`analysis.stats.random_effects`, as lme4's ranef), and each cluster's `n` (its rows in the fit).

    Under the study's disclosure rules (then `exported(name)`, which reads the tables the other notebooks
    exported, is needed), a cluster `disclosure.hidden_clusters` names has its row's numbers shown as the
    marker; those rows come last, by name, since their place in an order by mode would tell where their mode
    lies. Returns the table, sorted by mode, and what was hidden, for the SDC record (rows as in the table)."""
    (step,) = [s for s in plan(study, key) if s.analysis == "mixed"]
    fit = random_effects(outcome_data(tables_, study, key), step.model, step.cluster)
    table = pd.DataFrame({"cluster": fit["level"], "n": fit["n"], "estimate": fit["estimate"],
                          "std_error": fit["std_error"], "conf_low": fit["conf_low"], "conf_high": fit["conf_high"],
                          "warnings": fit["warnings"]})
    rules = disclosure.profile(study)
    hidden = {} if rules is None or fit["estimate"].isna().all() else disclosure.hidden_clusters(
        fit, rules, _hidden_elsewhere(study, key, fit["level"], exported))
    shown = table[~table["cluster"].isin(hidden)].sort_values(["estimate", "cluster"], kind="stable")
    concealed = table[table["cluster"].isin(hidden)].sort_values("cluster")
    table = pd.concat([shown, concealed], ignore_index=True)
    numbers = ["n", "estimate", "std_error", "conf_low", "conf_high"]
    suppressed = []
    if hidden:
        table[numbers] = table[numbers].astype(object)
        for i in range(len(shown), len(table)):
            rule, reason = hidden[table.at[i, "cluster"]]
            table.loc[i, numbers] = rules.marker
            suppressed += [{"row": i, "column": column, "rule": rule, "reason": reason} for column in numbers]
    return table, suppressed


def _hidden_elsewhere(study: Study, key: str, levels: pd.Series, exported) -> frozenset[str]:
    """The clusters whose counts another output hid: every one when the ledger hid the outcome, else those with
    a hidden cell in a table by cluster (notebooks 03 and 04) or a hidden refit of the leave-one-cluster-out
    table (notebook 05)."""
    if key in disclosure.hidden_families(study):
        return frozenset(levels.astype(str))
    if exported is None:
        raise ValueError("modes(): under disclosure control, give exported= (reads the other notebooks' tables), "
                         "so that a cluster they hid is hidden here too")
    cluster, rules = study.clusters.primary, disclosure.profile(study)
    names = [(f"{o.role}_{k}_by_{cluster}", "cluster", ["events", "n", "estimate"])
             for k, o in study.outcomes.items() if o.does("by_cluster")]
    names.append((f"leave_one_{cluster}_out", f"{cluster}_left_out", ["estimate"]))
    found = set()
    for name, column, counts in names:
        try:
            table = exported(name)
        except StudyError:  # a table this study does not make (no outcome by cluster, or too many clusters)
            continue
        if "outcome" in table.columns:
            table = table[table["outcome"] == key]
        found |= set(table.loc[table[counts].astype(str).eq(rules.marker).any(axis=1), column].astype(str))
    return frozenset(found)


def export_tables(study: Study, planned: list[Figure], tables_: dict[str, pd.DataFrame], exported) -> list[str]:
    """Export the tables this notebook makes for its figures (the caterpillar plots' modes), under the study's
    disclosure rules, before the figures are drawn from them; what `modes` hid goes into the table's SDC record
    beside what `tables.export` hid. Returns the names exported."""
    names = []
    for figure in planned:
        if figure.kind != "modes":
            continue
        table, suppressed = modes(tables_, study, figure.keys[0], exported)
        tables.export(study, figure.name, table)
        if suppressed:
            record = disclosure.read_records(study)[f"table.{figure.name}"]
            record.update(suppressed=suppressed + record["suppressed"], status=disclosure.REVIEW)
            disclosure.write_record(study, f"table.{figure.name}", record)
        names.append(figure.name)
    return names


def _numbers(frame: pd.DataFrame, marker: str) -> pd.DataFrame:
    """An exported table under disclosure control as numbers: a hidden cell (the marker) is missing."""
    frame = frame.mask(frame.eq(marker))
    for column in frame.columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.notna().sum() == frame[column].notna().sum():
            frame[column] = numbers
    return frame


def hidden(figure: Figure, study: Study, exported) -> str | None:
    """The sentence that says what disclosure control left out of a figure (None: nothing, or no rules)."""
    rules = disclosure.profile(study)
    if rules is None:
        return None
    if figure.kind == "values":
        return ("Under disclosure control no patient is drawn: boxes show medians and quartiles, whiskers the 10th "
                f"to 90th percentiles; a group of fewer than {rules.safe_threshold} is not drawn (n = {rules.marker}).")
    names = {"monthly": "monthly", "its": "its_curves", "levels": "{role}_{key}_levels",
             "by_cluster": f"{{role}}_{{key}}_by_{study.clusters.primary}", "modes": figure.name}
    if figure.kind not in names:
        return None
    (key, *_) = figure.keys or (None,)
    name = names[figure.kind].format(role=study.outcomes[key].role if key else "", key=key)
    if not exported(name).eq(rules.marker).to_numpy().any():
        return None
    left_out = {"monthly": "months whose counts are suppressed are left out of the points and lines",
                "its": "months whose counts are suppressed are left out of the observed points",
                "levels": "levels whose counts are suppressed are left out, and the percentages are of the "
                          "levels shown",
                "by_cluster": f"{study.clusters.primary} groups whose counts are suppressed are left out",
                "modes": f"{study.clusters.primary} groups whose counts are suppressed here or in another output "
                         "are left out (a mode and its conditional SD give a group's size and events back)"}
    return f"Under disclosure control ({rules.description}): {left_out[figure.kind]}."


def draw(figure: Figure, study: Study, entries: dict[str, Entry], tables: dict[str, pd.DataFrame],
         exported) -> Drawn:
    """Draw one of the study's figures; `exported(name)` reads a table another notebook exported.

    Under disclosure control (analysis/disclosure.py) the figure shows what the exported tables and the ledger
    show: their hidden cells are left out (`hidden` says so in a sentence), and no patient's value is drawn."""
    rules = disclosure.profile(study)
    if rules is not None:
        read = exported

        def exported(name: str) -> pd.DataFrame:
            frame = _numbers(read(name), rules.marker)
            if figure.kind == "levels":  # a level hidden in one period is left out of both
                return frame[~frame["level"].isin(frame.loc[frame["count"].isna(), "level"])]
            if figure.kind == "by_cluster":
                return frame.dropna(subset=["events", "n", "estimate"])
            return frame
    outcomes = [study.outcomes[k] for k in figure.keys]
    units = list(dict.fromkeys(study.unit(o.table) for o in outcomes))
    if figure.kind == "proportions":
        return figures.proportions(proportions(entries, study, figure.keys),
                                   xlabel=f"{' or '.join(units).capitalize()} (%)")
    if figure.kind == "forest":
        return figures.forest(forest(entries, study, figure.keys))
    if figure.kind == "levels":
        (key,) = figure.keys
        return figures.harm_severity(levels(exported(f"{outcomes[0].role}_{key}_levels")),
                                     severities=tuple(outcomes[0].levels or ()),
                                     xlabel=f"{units[0].capitalize()} (%)", legend_title=outcomes[0].short,
                                     warning=outcomes[0].higher == "worse")
    if figure.kind == "values":
        first = outcomes[0]
        worse = {"worse": "(higher = worse)", "better": "(higher = better)"}.get(first.higher or "", "")
        summary = {} if rules is None else {"points": False, "smallest": rules.safe_threshold,
                                             "marker": rules.marker}
        return figures.mai_change(values(tables, study, figure.keys), ylabel=first.axis_label or first.label,
                                  worse=worse, **summary)
    if figure.kind == "monthly":
        return figures.monthly(monthly(exported("monthly"), study), change=study.period.after.start,
                               xlabel="Month")
    if figure.kind == "event_study":
        return event_study_figure(exported("event_study"), unit=study.design.time_unit)
    if figure.kind == "its":
        return figures.its(its(exported("its_curves"), study, figure.keys), change=study.change_point,
                           change_label="Change point",
                           xlabel="Week (its Monday)" if study.design.time_unit == "week" else "Month")
    if figure.kind == "modes":
        table = exported(figure.name)
        cluster = study.clusters.primary
        shown = table.dropna(subset=["estimate"])
        # an SD estimated at 0 shrinks every mode to 0 with no spread: say so where the reader looks
        boundary = "\nSD estimated at 0: every mode is 0" if len(shown) and shown["std_error"].eq(0).all() else ""
        # short lines: a single-column figure's label cannot run wider than the figure
        return figures.caterpillar(
            shown, count_header="n", title=outcomes[0].short,
            xlabel=f"{cluster.capitalize()} random intercept (log-odds)\nmode \u00b1 1.96 conditional SD; 0 = average"
                   f"{boundary}",
            # no point: every cluster hidden, or a model that was not fitted (its one row, with no cluster, says why)
            empty=f"No {cluster} can be shown under disclosure control"
            if table["cluster"].dropna().astype(str).ne("").any()
            else next(iter(table["warnings"].dropna()), "The model was not fitted"))
    (key,) = figure.keys
    return figures.acceptance_by_team(
        by_cluster(exported(f"{outcomes[0].role}_{key}_by_{study.clusters.primary}")),
        xlabel=f"{outcomes[0].short} (%)", count_header="n/N")
