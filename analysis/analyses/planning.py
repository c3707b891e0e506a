"""Planning the next study from the study file's `power:` grid (`python -m analysis power <study>`).

`power_table`: the analytic answers (design effect for clusters, Hussey and Hughes for a stepped wedge;
`analysis.stats.power`). `simulated_table`: the same grid by simulation (`analysis.stats.simulate`) for the
design to simulate (`power.design`, else stepped_wedge with `power.steps`, else the study's `design.type`),
with the type I error at the null beside each size, the share of failed and singular fits, and the analytic
power where a formula exists. `ledger_rows`, `curve_frame` and `sizes_for_target` turn the simulated table
into ledger entries (`power.<design>.<effect>.<size>`), the power-curve figure's frame, and the smallest
grid size that reaches the target power.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import special

from analysis.config import Power, Study
from analysis.errors import StudyError
from analysis.paths import relative
from analysis.stats import power
from analysis.stats.simulate import Scenario, simulate_power

ANALYTIC = ("before_after", "stepped_wedge")


def power_table(spec: Power) -> pd.DataFrame:
    """The `power:` grid of a study file as one table: the power of each design size, and the clusters
    needed for the target power (for a stepped wedge, the fewest clusters, at most 1000, that reach it)."""
    icc = _icc(spec)
    rows = []
    for effect in spec.effects:
        p1, p2 = spec.baseline, power.p_after(spec.baseline, effect, spec.effect_scale)
        for m in spec.cluster_size:
            base = dict(effect=effect, effect_scale=spec.effect_scale, p_before=p1, p_after=p2, cluster_size=m,
                        icc=icc, alpha=spec.alpha)
            if spec.steps is None:
                for k in [*spec.clusters, None]:
                    got = power.cluster_power(p1, p2, clusters=k or 1, cluster_size=m, icc=icc, cv=spec.cluster_cv,
                                              alpha=spec.alpha, power=spec.target).iloc[0 if k else 1]
                    rows.append(dict(design="before_after", **base, design_effect=got["design_effect"],
                                     clusters=int(got["clusters"]), patients=int(got["n"]),
                                     quantity="power" if k else f"clusters for power {spec.target:g}",
                                     value=got["estimate"]))
                continue

            def sw(k, p1=p1, p2=p2, m=m):
                return power.stepped_wedge_power(p1, p2, clusters=k, steps=spec.steps, cluster_size=m, icc=icc,
                                                 alpha=spec.alpha).iloc[0]

            for k in spec.clusters:
                got = sw(k)
                rows.append(dict(design=f"stepped_wedge ({spec.steps} steps)", **base, design_effect=float("nan"),
                                 clusters=k, patients=int(got["n"]), quantity="power", value=got["estimate"]))
            need = next((k for k in range(spec.steps, 1001) if sw(k)["estimate"] >= spec.target), None)
            rows.append(dict(design=f"stepped_wedge ({spec.steps} steps)", **base, design_effect=float("nan"),
                             clusters=need, patients=None if need is None else int(sw(need)["n"]),
                             quantity=f"clusters for power {spec.target:g}",
                             value=float("nan") if need is None else need))
    out = pd.DataFrame(rows)
    out["clusters"] = out["clusters"].astype("Int64")
    out["patients"] = out["patients"].astype("Int64")
    return out


def _icc(spec: Power) -> float:
    return power.icc_from_cluster_sd(spec.cluster_sd) if spec.cluster_sd is not None else (spec.icc or 0.0)


def _cluster_sd(spec: Power) -> float:
    """The random-intercept SD on the logit scale: `cluster_sd`, or the one whose latent-scale ICC
    s^2 / (s^2 + pi^2 / 3) is `icc` (the inverse of `power.icc_from_cluster_sd`)."""
    if spec.cluster_sd is not None:
        return spec.cluster_sd
    icc = spec.icc or 0.0
    return math.sqrt(icc / (1 - icc) * math.pi**2 / 3)


def simulated_design(study: Study) -> str:
    """The design the simulation draws: `power.design`, else a stepped wedge when `power.steps` is given,
    else the study's own `design.type`."""
    spec = _spec(study)
    return spec.design or ("stepped_wedge" if spec.steps is not None else study.design.type)


def _spec(study: Study) -> Power:
    if study.power is None:
        raise StudyError(f"{relative(study.file)}: no `power:` section (see studies/README.md)")
    return study.power


def _effect_label(spec: Power, effect: float | None) -> str:
    if effect is None:
        return "null (type I error)"
    return f"{'OR' if spec.effect_scale == 'odds_ratio' else 'risk difference'} {effect:g}"


def scenarios(study: Study) -> list[Scenario]:
    """The grid points to simulate, each size with its null (the type I error) before its effects."""
    spec = _spec(study)
    design = simulated_design(study)
    its = design == "interrupted_time_series"
    if its and spec.months is None:
        raise StudyError(f"{relative(study.file)}: `power.months` (months before and after the change) is needed to "
                         "simulate an interrupted time series")
    if not its and spec.months is not None:
        raise StudyError(f"{relative(study.file)}: `power.months` is for an interrupted time series, and the design "
                         f"to simulate is {design}: remove it or set `power.design: interrupted_time_series`")
    if design == "stepped_wedge" and spec.steps is None:
        raise StudyError(f"{relative(study.file)}: a stepped wedge needs `power.steps`")
    if design == "controlled_before_after" and min(spec.clusters) < 2:
        raise StudyError(f"{relative(study.file)}: a controlled before-after study needs at least 2 clusters per arm "
                         f"(Cochrane EPOC), and `power.clusters` has {min(spec.clusters)}")
    sd = _cluster_sd(spec)
    logit0 = special.logit(spec.baseline)
    out = []
    for m in spec.cluster_size:
        for size in (spec.months if its else spec.clusters):
            for effect in [None, *spec.effects]:
                p2 = spec.baseline if effect is None else power.p_after(spec.baseline, effect, spec.effect_scale)
                out.append(Scenario(
                    design, spec.baseline, float(special.logit(p2) - logit0), clusters=1 if its else size,
                    cluster_size=m, cluster_sd=sd, cluster_cv=spec.cluster_cv, steps=spec.steps,
                    months=size if its else None, lags=study.design.lags, alpha=spec.alpha,
                    extra=dict(effect=math.nan if effect is None else effect, effect_label=_effect_label(spec, effect),
                               p_after=p2, analytic=_analytic(spec, design, p2, size, m))))
    return out


def _analytic(spec: Power, design: str, p2: float, size: int, m: float) -> float:
    """The analytic power at the same point (alpha at the null), NaN where no formula exists."""
    if design not in ANALYTIC:
        return math.nan
    if p2 == spec.baseline:
        return spec.alpha
    if design == "stepped_wedge":
        got = power.stepped_wedge_power(spec.baseline, p2, clusters=size, steps=spec.steps, cluster_size=m,
                                        icc=_icc(spec), alpha=spec.alpha)
    else:
        got = power.cluster_power(spec.baseline, p2, clusters=size, cluster_size=m, icc=_icc(spec),
                                  cv=spec.cluster_cv, alpha=spec.alpha)
    return float(got["estimate"].iloc[0])


def simulated_table(study: Study, *, map=None) -> pd.DataFrame:
    """Every grid point simulated `power.simulations` times from `power.seed`: one tidy row per point
    (`term` power or type_i_error; `estimate`, its Monte Carlo `std_error` and Wilson interval, `failed`,
    `singular`, `analytic`). ``map(function, tasks)`` runs the tasks (an executor's ``map``; default: here)."""
    spec = _spec(study)
    points = scenarios(study)
    kwargs = {} if map is None else {"map": map}
    return simulate_power(points, spec.simulations, spec.seed, **kwargs)


def _size_column(table: pd.DataFrame) -> str:
    return "months" if (table["design"] == "interrupted_time_series").all() else "clusters"


SIZE_LABELS = {"before_after": "Clusters per period", "controlled_before_after": "Clusters per arm",
               "interrupted_time_series": "Months before (and as many after) the change",
               "stepped_wedge": "Clusters (in all)"}


def size_label(table: pd.DataFrame) -> str:
    """What the size axis counts, for the design simulated."""
    return SIZE_LABELS[table["design"].iloc[0]]


def sizes_for_target(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """For each effect and cluster size, the smallest grid size whose simulated power reaches `target`
    (missing when none does) and the analytic power there."""
    size = _size_column(table)
    rows = []
    powered = table[table["term"] == "power"]
    for (label, m), part in powered.groupby(["effect_label", "cluster_size"], sort=False):
        part = part.sort_values(size)
        enough = part[part["estimate"] >= target]
        rows.append({"effect_label": label, "cluster_size": m, f"{size}_for_power_{target:g}":
                     None if enough.empty else int(enough[size].iloc[0]),
                     "power": math.nan if enough.empty else float(enough["estimate"].iloc[0])})
    out = pd.DataFrame(rows)
    needed = f"{size}_for_power_{target:g}"
    out[needed] = out[needed].astype("Int64")  # a count, missing where no grid size reaches the target
    return out


def _slug(value: float) -> str:
    return f"{value:g}".replace("-", "minus_").replace(".", "_")


def ledger_rows(table: pd.DataFrame, spec: Power) -> pd.DataFrame:
    """The simulated table as ledger rows (`name`, `description`, the tidy columns), one per grid point:
    `power.<design>.<effect>.size_<m>.<clusters|months>_<k>` (effect `null` for the type I error)."""
    size = _size_column(table)
    rows = []
    for _, got in table.iterrows():
        null = got["term"] == "type_i_error"
        name = _name(got, size, spec)
        what = "type I error" if null else f"power to detect {got['effect_label']}"
        description = (f"Simulated {what}, {got['design'].replace('_', ' ')}, {int(got[size])} {size}, "
                       f"{got['cluster_size']:g} patients per cluster-period (or month), baseline {spec.baseline:g}")
        rows.append({"name": name, "description": description, **got.to_dict()})
    return pd.DataFrame(rows)


def _name(got: pd.Series, size: str, spec: Power) -> str:
    scale = "or" if spec.effect_scale == "odds_ratio" else "rd"
    effect = "null" if got["term"] == "type_i_error" else f"{scale}_{_slug(got['effect'])}"
    return f"power.{got['design']}.{effect}.size_{_slug(got['cluster_size'])}.{size}_{int(got[size])}"


def findings(table: pd.DataFrame, spec: Power) -> str:
    """What the simulation found, as a template of its ledger entries (`analysis.text`): per effect and
    cluster size, the smallest grid size reaching the target power, or the power at the largest; then the
    type I error at the largest size."""
    size = _size_column(table)
    noun = {"months": "months before and after", "clusters": "clusters"}[size]
    sentences = []
    powered = table[table["term"] == "power"]
    for (label, m), part in powered.groupby(["effect_label", "cluster_size"], sort=False):
        part = part.sort_values(size)
        enough = part[part["estimate"] >= spec.target]
        got = part.iloc[-1] if enough.empty else enough.iloc[0]
        entry = f"{{{{ {_name(got, size, spec)} | pct_ci }}}}"
        where = f"with {m:g} patients per {'month' if size == 'months' else 'cluster-period'}"
        if enough.empty:
            sentences.append(f"To detect {label} {where}, no size of the grid reaches {spec.target:.0%} power: "
                             f"{int(got[size])} {noun} give {entry}.")
        else:
            sentences.append(f"To detect {label} {where}, {int(got[size])} {noun} are the fewest of the grid "
                             f"that reach {spec.target:.0%} power: {entry}.")
    nulls = table[table["term"] == "type_i_error"].sort_values([size, "cluster_size"])
    if not nulls.empty:
        got = nulls.iloc[-1]
        sentences.append(f"At no effect, {int(got[size])} {noun} with {got['cluster_size']:g} patients each, the "
                         f"test rejected in {{{{ {_name(got, size, spec)} | pct_ci }}}} of the datasets (the type I "
                         f"error; nominal {spec.alpha:.0%}).")
    return " ".join(sentences)


def grid(spec: Power) -> pd.DataFrame:
    """The study file's `power:` section as the reader sees it: one row per key given, lists joined."""
    values = spec.model_dump(exclude_none=True)
    return pd.DataFrame({"key": list(values), "value": [", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                                                                   for v in value) if isinstance(value, list)
                                                         else str(value) for value in values.values()]})


def analytic_table(study: Study) -> pd.DataFrame | None:
    """`power_table` when a formula exists for the design simulated (before-after with clusters, stepped
    wedge), else None."""
    return power_table(_spec(study)) if simulated_design(study) in ANALYTIC else None


def curve_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The power curves' frame for `analysis.figures.plots.power_curve`: one line per effect (and panel per
    cluster size when there are several), the null left out."""
    size = _size_column(table)
    powered = table[table["term"] == "power"]
    several = powered["cluster_size"].nunique() > 1
    panel = [f"{m:g} patients per {'month' if size == 'months' else 'cluster-period'}" if several else ""
             for m in powered["cluster_size"]]
    return pd.DataFrame({"panel": panel, "effect": powered["effect_label"].to_numpy(),
                         "size": powered[size].to_numpy(int), "estimate": powered["estimate"].to_numpy(float),
                         "conf_low": powered["conf_low"].to_numpy(float),
                         "conf_high": powered["conf_high"].to_numpy(float)})
