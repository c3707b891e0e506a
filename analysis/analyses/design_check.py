"""Notebook 01_data: the design check, the study's design set against Cochrane EPOC's minimum criteria.

EPOC (Cochrane Effective Practice and Organisation of Care), "What study designs should be included in an
EPOC review and what should they be called?" (EPOC resources for review authors, 2017):

- an uncontrolled before-after study is not an eligible design ("strongly discouraged");
- an interrupted time series needs a clearly defined point in time when the intervention occurred and at
  least three data points before and three after it (counted in the intervention series when a control series
  is declared);
- a controlled before-after study needs at least two intervention and two control sites, and contemporaneous
  data collection (the control's data cover the same dates as the intervention's).

Each criterion is a ledger entry `design_check.<criterion>` holding the count it is judged on as its
estimate; when the criterion is not met, a sentence naming the criterion and its source is the entry's
warning, shown under the notebook's banner and listed in the manuscript's Limitations
(`{{ warning: design_check.<criterion> }}`). The check is computed from the study file and the derived data
(the main table, after eligibility), never typed in.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.analyses.results import combine, value
from analysis.config import Study

SOURCE = ('Cochrane EPOC, "What study designs should be included in an EPOC review and what should they be '
          'called?", 2017')
MINIMUM_POINTS = 3  # EPOC: at least three data points before and three after the intervention
MINIMUM_SITES = 2  # EPOC: at least two intervention and two control sites
DESIGNS = {"before_after": "uncontrolled before-after",
           "controlled_before_after": "controlled before-after",
           "interrupted_time_series": "interrupted time series"}
METHOD = "Design check (Cochrane EPOC minimum criteria, 2017)"


def _entry(criterion: str, description: str, estimate: float, n: int | None, warning: str | None) -> pd.DataFrame:
    frame = value(f"design_check.{criterion}", description, estimate, METHOD, n=n)
    frame["warnings"] = warning or ""
    return frame


# The time points of a series: calendar months, or ISO weeks (Monday to Sunday, pandas' "W-SUN": a week ending on
# Sunday), as analysis/analyses/its_counts.py counts them.
FREQUENCIES = {"month": "M", "week": "W-SUN"}


def _months(dates: pd.Series, unit: str = "month") -> pd.Series:
    return pd.to_datetime(dates).dt.to_period(FREQUENCIES[unit])


def uncontrolled(study: Study) -> pd.DataFrame:
    """An uncontrolled before-after design: no control group (estimate 0 control sites), always warned."""
    warning = ("Uncontrolled before-after design: with no control group, a difference between the periods cannot be "
               "separated from secular trends, other changes at the same time, or regression to the mean; Cochrane "
               f"EPOC strongly discourages this design and does not include it in its reviews ({SOURCE}).")
    return _entry("controlled", "Control groups in the design (EPOC: an uncontrolled before-after design is strongly "
                  "discouraged)", 0, None, warning)


def time_points(study: Study, main: pd.DataFrame) -> pd.DataFrame:
    """Interrupted time series: the months (or weeks, with `design.time_unit: week`) with data before the change
    point and from it on (EPOC: at least 3 each), in the intervention series when there is a control series
    (`design.group`). The week holding the change point counts as after it."""
    group = study.design.group
    if group is not None:
        main = main[main[group.column].astype("string") == str(group.intervention)]
    unit = study.design.time_unit
    months = _months(main[study.period.column], unit).dropna()
    change = pd.Period(study.change_point, freq=FREQUENCIES[unit])
    shown_change = change if unit == "month" else f"the week of {study.change_point}"
    counts = {"before": int(months[months < change].nunique()), "after": int(months[months >= change].nunique())}
    frames = []
    for side, count in counts.items():
        where = "before the change point" if side == "before" else "from the change point on"
        warning = None
        if count < MINIMUM_POINTS:
            warning = (f"Fewer than {MINIMUM_POINTS} time points {where} ({count} {unit}s with data): EPOC's "
                       f"minimum criteria for an interrupted time series are a clearly defined change point and "
                       f"at least {MINIMUM_POINTS} data points before and {MINIMUM_POINTS} after it ({SOURCE}).")
        frames.append(_entry(f"points_{side}", f"Time points ({unit}s with data) {where}, {shown_change} (EPOC: "
                             f"at least {MINIMUM_POINTS})", count, int((months < change).sum() if side == "before"
                                                              else (months >= change).sum()), warning))
    return combine(*frames)


def _groups(study: Study, main: pd.DataFrame) -> dict[str, pd.DataFrame]:
    group = study.design.group
    assert group is not None
    column = main[group.column].astype("string")
    return {side: main[column == str(getattr(group, side))] for side in ("intervention", "control")}


def sites(study: Study, main: pd.DataFrame) -> pd.DataFrame:
    """Controlled before-after: the distinct values of the sites column in each group (EPOC: at least 2 each)."""
    frames = []
    for side, rows in _groups(study, main).items():
        count = int(rows[study.design.sites].dropna().nunique())
        warning = None
        if count < MINIMUM_SITES:
            warning = (f"Fewer than {MINIMUM_SITES} {side} sites ({count}): EPOC's minimum criteria for a controlled "
                       f"before-after study are at least {MINIMUM_SITES} intervention and {MINIMUM_SITES} control "
                       f"sites ({SOURCE}).")
        frames.append(_entry(f"{side}_sites", f"{side.capitalize()} sites ({study.design.sites}) (EPOC: at least "
                             f"{MINIMUM_SITES})", count, len(rows), warning))
    return combine(*frames)


def contemporaneous(study: Study, main: pd.DataFrame) -> pd.DataFrame:
    """Controlled before-after: the months in which the intervention group has data and the control group has
    none, in either period (EPOC: data collection contemporaneous; estimate 0 when it is)."""
    description = ("Months with intervention data but no control data (EPOC: contemporaneous data collection "
                   "in both groups)")
    if not study.period.by_date:
        warning = ("Contemporaneous data collection could not be checked: the periods carry no dates. EPOC's minimum "
                   "criteria for a controlled before-after study include contemporaneous data collection in the "
                   f"intervention and control groups ({SOURCE}).")
        return _entry("contemporaneous", description, math.nan, None, warning)
    groups = _groups(study, main)
    months = {side: set(_months(rows[study.period.column]).dropna()) for side, rows in groups.items()}
    missing = sorted(months["intervention"] - months["control"])
    periods = {side: set(rows["period"].dropna().astype(str)) for side, rows in groups.items()}
    no_period = [p for p in ("before", "after") if p in periods["intervention"] and p not in periods["control"]]
    warning = None
    if missing or no_period:
        shown = ", ".join(str(m) for m in missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        warning = (f"Periods not contemporaneous: the control group has no data in {len(missing)} month(s) in which "
                   f"the intervention group has data ({shown or 'none'})"
                   + (f" and none in the {' or '.join(no_period)} period" if no_period else "") +
                   "; EPOC's minimum criteria for a controlled before-after study include contemporaneous data "
                   f"collection in the intervention and control groups ({SOURCE}).")
    return _entry("contemporaneous", description, len(missing), len(main), warning)


def design_check(study: Study, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The design's EPOC criteria as ledger rows `design_check.<criterion>`, from the study file and the derived
    tables (`tables[study.main_table]`, after eligibility, with its `period` column)."""
    main = tables[study.main_table]
    kind = study.design.type
    if kind == "before_after":
        return uncontrolled(study)
    if kind == "interrupted_time_series":
        return time_points(study, main)
    return combine(sites(study, main), contemporaneous(study, main))


def summary(study: Study, checked: pd.DataFrame) -> str:
    """The design check as Markdown, for the top of the notebook: the design, then each criterion met or not."""
    kind = DESIGNS[study.design.type]
    lines = [f"**Design check** ({METHOD.split('(')[1].rstrip(')')}): {kind} design."]
    for row in checked.itertuples(index=False):
        shown = "not checked" if pd.isna(row.estimate) else f"{row.estimate:g}"
        if row.warnings:
            lines.append(f"- **Not met** (`{row.name}`, {shown}): {row.warnings}")
        else:
            lines.append(f"- Met (`{row.name}`): {row.description}: {shown}.")
    return "\n".join(lines)
