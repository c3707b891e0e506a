"""The study file: one YAML file per study, parsed into a typed object.

A study declares what it analyses: its tables (one or several units of analysis, each with the
columns it uses, under the study's own names), the period (date windows or a column's values), who
is eligible, the outcomes with their types, populations and analyses, covariates and clusters, seeds
and where outputs go. Adding a study is writing such a file; nothing about any study is a constant
in the library. `studies/README.md` documents every key.

Every problem is a `StudyError` that names the file and the key: an unknown key (a typo would
otherwise be silently ignored), a wrong type, a missing data file, a column used but not declared.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from analysis.errors import StudyError
from analysis.paths import ROOT, relative, resolve
from analysis.provenance import sha256_json

STUDIES_DIR = ROOT / "studies"
PERIODS = ("before", "after")
# Columns the data step adds to every table (analysis/data/derive.py): a declared column of the same name would be
# overwritten without a word, so it is refused at load.
RESERVED_COLUMNS = ("period", "after", "month", "month_index")
ColumnType = Literal["string", "integer", "number", "boolean", "date", "category"]
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A study's name is a folder under data_derived/ and paper/build/: a study file `...yml` (name `..`) made
# the paper build write into paper/ itself.
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
NAME_RULE = "a study's name (its file's name) is letters, digits, '_' and '-', starting with a letter or digit"
DERIVED_DIR = ROOT / "data_derived"
NOTEBOOKS_DIR = ROOT / "notebooks"
OUTPUTS_RULE = ("outputs go in a folder inside data_derived/, or, for a study file kept outside the repository, "
                "inside the study file's own folder; executed notebooks may also go to notebooks/ itself "
                "(see studies/README.md)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _identifier(name: str, what: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{what} '{name}' must be letters, digits and underscores, not starting with a digit")
    return name


# ---------------------------------------------------------------------------------------------
# Conditions: `age >= 65`, `arm == usual care`, `mai_pre_admission is not missing`


_COMPARISON = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")
_MISSING = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+is\s+(not\s+)?missing\s*$")


class Condition(_Strict):
    """One comparison of a column with a value, written as text in the study file."""

    column: str
    operator: Literal[">=", "<=", "==", "!=", ">", "<", "is missing", "is not missing"]
    value: float | str | None = None

    @classmethod
    def parse(cls, text: str) -> Condition:
        found = _MISSING.match(text)
        if found:
            return cls(column=found[1], operator="is not missing" if found[2] else "is missing")
        found = _COMPARISON.match(text)
        if not found:
            raise ValueError(f"condition '{text}' is not of the form `column >= number`, `column == value` or "
                             "`column is (not) missing`")
        column, operator, value = found.groups()
        value = value.strip("'\"")
        if operator in ("==", "!="):
            # kept as written: `ward == 007` is the ward coded 007, not 7; a numeric column compares it as a
            # number (derive.holds)
            return cls(column=column, operator=operator, value=value)
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"condition '{text}': {operator} needs a number") from None
        return cls(column=column, operator=operator, value=number)

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.column} {self.operator}"
        value = f"{self.value:g}" if isinstance(self.value, float) else self.value
        return f"{self.column} {self.operator} {value}"


def _conditions(value: Any) -> Any:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("expected a condition or a list of conditions")
    return [Condition.parse(item) if isinstance(item, str) else item for item in items]


# ---------------------------------------------------------------------------------------------
# Tables


class ColumnSpec(_Strict):
    """A column the study uses: where it is in the file and, unless the data dictionary knows the
    name, what it holds."""

    source: str | None = Field(None, alias="from", description="the column's name in the file; default its own")
    type: ColumnType | None = None
    label: str | None = Field(None, description="for tables and text, e.g. 'Age, years'")
    description: str | None = None
    unit: str | None = None
    values: list[str] | None = Field(None, description="category: the allowed codes (in order, if ordered)")
    ordered: bool = False
    min: float | None = None
    max: float | None = None
    nullable: bool | None = Field(None, description="may a cell be empty; default: the dictionary's, else true")
    skewed: bool = Field(False, description="summarise as median [Q1, Q3] in Table 1")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.values is not None and self.type not in (None, "category"):
            raise ValueError("`values` is for category columns")
        if (self.min is not None or self.max is not None) and self.type not in (None, "integer", "number"):
            raise ValueError("`min`/`max` are for integer and number columns")
        return self


# Days between two dates above this are an error unless the derivation says `max:`: a mistyped
# year (2099 for 2009) made a length of stay of 32,474 days that entered the models as a covariate.
MAX_DAYS = 365


class Derivation(_Strict):
    """A column computed from others: days between two dates, or the difference of two numbers."""

    days_between: tuple[str, str] | None = Field(None, description="[start date, end date]")
    difference: tuple[str, str] | None = Field(None, description="[a, b]: a minus b")
    max: float | None = Field(None, gt=0, description=f"days_between: the most days plausible (default {MAX_DAYS})")
    label: str | None = None
    skewed: bool = False

    @model_validator(mode="after")
    def _one(self) -> Derivation:
        if (self.days_between is None) == (self.difference is None):
            raise ValueError("give exactly one of `days_between` or `difference`")
        if self.max is not None and self.days_between is None:
            raise ValueError("`max` is for `days_between` (the most days plausible between the two dates)")
        return self

    @property
    def max_days(self) -> float:
        return MAX_DAYS if self.max is None else self.max

    @property
    def inputs(self) -> tuple[str, str]:
        return self.days_between or self.difference  # type: ignore[return-value]


class TableSource(_Strict):
    """One raw table: where it is, how it is laid out, and the columns the study uses from it."""

    file: Path
    sheet: str | int | None = Field(None, description="Excel sheet name or 0-based index")
    header_row: int = Field(1, ge=1, description="1-based row that holds the column names")
    encoding: str = "utf-8"
    date_format: str | None = Field(
        None, description="how dates written as text look, e.g. '%d/%m/%Y'; default ISO 8601 (2011-02-01)"
    )
    unit: str | None = Field(None, description="what a row is, plural, for text: 'patients'; default the table's name")
    key: str | None = Field(None, description="the column that identifies a row (unique)")
    belongs_to: str | None = Field(None, description="parent table: rows whose key the parent excluded are dropped")
    period_column: str | None = Field(None, description="this table's own column for the period (default the study's)")
    inherit: list[str] = Field(default_factory=list, description="columns copied from the parent row (belongs_to)")
    columns: dict[str, str | ColumnSpec | None] = Field(
        default_factory=dict, description="column -> its name in the file, or a declaration")
    values: dict[str, dict[Any, Any]] = Field(
        default_factory=dict, description="column -> {code in the file: code in the dictionary}"
    )
    derive: dict[str, Derivation] = Field(default_factory=dict)
    one_row_per: Literal["month", "week"] | None = Field(
        None, description="an aggregated table: one row per month or per week (counts and denominators; as "
                          "`design.time_unit`), not per patient")

    @field_validator("columns", mode="before")
    @classmethod
    def _list_of_names(cls, value: Any) -> Any:
        # A bare list names columns that keep their names and the dictionary's definitions.
        return dict.fromkeys(value) if isinstance(value, list) else value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding '{encoding}' (for example utf-8, cp1252, latin-1)") from None
        return encoding

    @field_validator("date_format")
    @classmethod
    def _date_format_round_trips(cls, fmt: str | None) -> str | None:
        # A format without day, month and year would parse every date to the same day.
        probe = dt.date(2011, 12, 31)
        try:
            ok = fmt is None or dt.datetime.strptime(probe.strftime(fmt), fmt).date() == probe
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"date_format '{fmt}' does not read back a day, month and year (for example '%d/%m/%Y')")
        return fmt

    @property
    def path(self) -> Path:
        return resolve(self.file)

    def spec(self, column: str) -> ColumnSpec:
        declared = self.columns.get(column)
        if isinstance(declared, ColumnSpec):
            return declared
        return ColumnSpec(source=declared) if isinstance(declared, str) else ColumnSpec()

    def file_name(self, column: str) -> str:
        return self.spec(column).source or column

    def has(self, column: str) -> bool:
        return column in self.columns or column in self.derive or column in self.inherit


# ---------------------------------------------------------------------------------------------
# Period, eligibility, outcomes


class Window(_Strict):
    """One period: a label, and either its first and last date or the value of the period column."""

    label: str
    start: dt.date | None = None
    end: dt.date | None = None
    # StrictBool first: pydantic would otherwise read `value: true` as the integer 1, which a
    # true/false period column (compared as the text "true") never holds, leaving both periods empty.
    value: StrictBool | str | int | None = Field(None, description="the period column's value for this period")

    @model_validator(mode="after")
    def _dates_or_value(self) -> Window:
        dated = self.start is not None or self.end is not None
        if dated and (self.start is None or self.end is None):
            raise ValueError("give both `start` and `end`")
        if dated == (self.value is not None):
            raise ValueError("give either `start` and `end` (date windows) or `value` (the period column's value)")
        if dated and self.end < self.start:  # type: ignore[operator]
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Period(_Strict):
    """The two periods: date windows on a date column, or two values of a column (no dates)."""

    column: str = Field(..., description="the date column (windows) or the column whose values are the periods")
    before: Window
    after: Window

    @model_validator(mode="after")
    def _consistent(self) -> Period:
        if (self.before.value is None) != (self.after.value is None):
            raise ValueError("both periods are date windows, or both are values of the column")
        if self.by_date and self.after.start <= self.before.end:  # type: ignore[operator]
            raise ValueError(
                f"the after period starts ({self.after.start}) on or before the before period ends ({self.before.end})"
            )
        if not self.by_date and str(self.before.value) == str(self.after.value):
            raise ValueError(f"the two periods have the same value '{self.before.value}'")
        return self

    @property
    def by_date(self) -> bool:
        return self.before.value is None

    def window(self, key: str) -> Window:
        return getattr(self, key)

    def labels(self) -> dict[str, str]:
        return {key: self.window(key).label for key in PERIODS}


class Exclusion(_Strict):
    """One eligibility criterion of the main table: rows that do not `keep` are excluded, in order."""

    keep: list[Condition]
    excluded: str = Field(..., description="the excluded rows in words, e.g. 'aged under 18'")

    @field_validator("keep", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _conditions(value)


OutcomeType = Literal["binary", "count", "continuous", "ordinal"]
Missing = Literal["complete_case", "as_event", "as_no_event"]

# What each type of outcome gets unless the study switches it off (`analyses: {name: false}`).
ANALYSES: dict[str, tuple[str, ...]] = {
    "binary": ("proportions", "nnt", "mixed", "logistic", "gee", "alternative_clusters", "time_series",
               "leave_one_cluster_out", "by_cluster"),
    "count": ("rates", "poisson", "negative_binomial", "mixed"),
    "continuous": ("medians", "means", "rank_tests", "mixed"),
    "ordinal": ("distribution", "trend", "proportional_odds"),
}


# Asked for by name only: a table and figure per cluster is long with many clusters.
OFF_BY_DEFAULT = ("by_cluster",)
SENSITIVITY_SKIPS = ("alternative_clusters", "time_series", "leave_one_cluster_out", "by_cluster")


class Event(_Strict):
    """How a binary outcome is read from a column that is not true/false."""

    values: list[str | int | bool] | None = Field(None, description="the column's values that are an event")
    above: float | None = Field(None, description="a number above this is an event (e.g. a count above 0)")

    @model_validator(mode="after")
    def _one(self) -> Event:
        if (self.values is None) == (self.above is None):
            raise ValueError("give exactly one of `values` or `above`")
        return self


class Outcome(_Strict):
    """An outcome: its type, where it comes from, for whom it is defined, and how it is analysed."""

    type: OutcomeType
    role: Literal["primary", "secondary"] = Field("primary", description="which notebook reports it")
    table: str
    column: str
    label: str
    short_label: str | None = Field(None, description="for figures; default the label")
    axis_label: str | None = Field(None, description="continuous: the figure's value axis; default the label")
    higher: Literal["better", "worse"] | None = Field(
        None, description="continuous and ordinal: which direction is better (ordinal: the later levels)")
    event: Event | None = None
    levels: list[str] | None = Field(None, description="ordinal: the levels, least to most")
    exposure: str | None = Field(None, description="count: the exposure column (offset log(exposure))")
    count: str | None = Field(None, description="binary: a column with the number of events, for a count model")
    population: list[Condition] = Field(default_factory=list, description="conditions; default every row")
    subgroup: str | None = Field(None, description="a subgroup declared under `subgroups:`")
    covariates: list[str] | None = Field(None, description="adjustment set; default the study's covariates")
    missing: Missing = Field("complete_case", description="binary: a missing outcome is left out, or counted "
                                                          "as an event or as no event (worst/best case)")
    sensitivity_of: str | None = Field(None, description="this outcome is a sensitivity analysis of another")
    flow: str | None = Field(None, description="report rows with/without this outcome in the flow, under this name")
    analyses: dict[str, bool] = Field(default_factory=dict, description="switch default analyses off or on")
    quartiles: Literal[6, 7] = Field(6, description="quantile definition: 6 (SPSS, Minitab) or 7 (R, Excel)")

    @field_validator("population", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _conditions(value)

    @model_validator(mode="after")
    def _consistent(self) -> Outcome:
        unknown = set(self.analyses) - set(ANALYSES[self.type])
        if unknown:
            raise ValueError(f"unknown analyses {sorted(unknown)} for a {self.type} outcome "
                             f"(known: {', '.join(ANALYSES[self.type])})")
        if self.levels is not None and self.type != "ordinal":
            raise ValueError("`levels` is for ordinal outcomes")
        if self.type == "ordinal" and not self.levels:
            raise ValueError("an ordinal outcome needs its `levels`, least to most")
        if self.event is not None and self.type != "binary":
            raise ValueError("`event` is for binary outcomes")
        if self.exposure is not None and self.type != "count":
            raise ValueError("`exposure` is for count outcomes")
        if (self.missing != "complete_case" or self.count) and self.type != "binary":
            raise ValueError("`missing` and `count` are for binary outcomes")
        return self

    def does(self, analysis: str) -> bool:
        """Whether the outcome gets this analysis: one of its type's, not switched off. A sensitivity
        analysis of another outcome repeats its comparison and models, nothing more."""
        if self.sensitivity_of is not None and analysis in SENSITIVITY_SKIPS:
            return False
        return analysis in ANALYSES[self.type] and self.analyses.get(analysis, analysis not in OFF_BY_DEFAULT)

    @property
    def short(self) -> str:
        return self.short_label or self.label


class Subgroup(_Strict):
    table: str
    label: str
    where: list[Condition]

    @field_validator("where", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _conditions(value)


class Clusters(_Strict):
    primary: str | None = Field(None, description="the clustering unit of the mixed models; none: no clustering")
    alternatives: list[str] = Field(default_factory=list, description="other units, as sensitivity analyses")


class Robustness(_Strict):
    leave_one_cluster_out_max: int = Field(
        50, ge=2, description="leave-one-cluster-out is skipped, with a sentence, beyond this many clusters")


class Seeds(_Strict):
    models: StrictInt = Field(..., ge=0, description="seed for model fits that use random numbers (the Bayesian "
                                                     "fit_map/fit_vb estimators; the default Laplace fit uses none)")


class Outputs(_Strict):
    folder: Path | None = Field(None, description="default data_derived/<study name>")
    notebooks: Path | None = Field(None, description="executed notebooks; default <folder>/notebooks")


class DesignGroup(_Strict):
    """Controlled before-after: the main table's column telling intervention from control, and its two values."""

    column: str = Field(..., description="the main table's column whose value is the group")
    # StrictBool first, as for a period's value: `true` must not be read as the integer 1
    intervention: StrictBool | str | int = Field(..., description="the column's value for the intervention group")
    control: StrictBool | str | int = Field(..., description="the column's value for the control group")

    @model_validator(mode="after")
    def _two_values(self) -> DesignGroup:
        if str(self.intervention) == str(self.control):
            raise ValueError(f"intervention and control have the same value '{self.intervention}'")
        return self


class Design(_Strict):
    """The study's design, checked against Cochrane EPOC's minimum criteria (analysis/analyses/design_check.py).

    `before_after` (the default): uncontrolled. `controlled_before_after`: `group` (intervention vs control)
    and `sites` (the column counted as sites) are required. `interrupted_time_series`: `change_point`
    (default: the start of the after window) and `time_unit` (month or week); with `group`, a controlled interrupted
    time series (an intervention and a control series)."""

    type: Literal["before_after", "controlled_before_after", "interrupted_time_series"] = "before_after"
    group: DesignGroup | None = Field(None, description="controlled before-after, or the control series of an "
                                                        "interrupted time series: intervention vs control")
    sites: str | None = Field(None, description="controlled before-after: the main table's column counted as sites")
    change_point: dt.date | None = Field(None, description="interrupted time series: the first date after the change "
                                                           "(default: the start of the after window)")
    time_unit: Literal["month", "quarter", "week"] = Field(
        "month", description="the unit of the time points: of an interrupted time series (month or week: ISO "
                             "weeks, Monday to Sunday), or of a controlled before-after study's event study and "
                             "pre-period trend comparison (month or quarter)")
    seasonality: Literal["none", "fourier", "months"] = Field(
        "fourier", description="interrupted time series: Fourier terms (sine and cosine pairs) or month indicators")
    harmonics: int = Field(1, ge=1, le=6, description="interrupted time series: Fourier pairs (with `fourier`)")
    lags: int = Field(1, ge=0, le=12, description="interrupted time series: the Newey-West lag, in time units")
    family: Literal["binomial", "poisson"] | None = Field(
        None, description="interrupted time series: the model of the counts (default binomial for a binary "
                          "outcome, poisson for a count with its exposure as the denominator)")
    routinely_collected: StrictBool = Field(
        False, description="the data were collected routinely, not for the study (administrative, registry or "
                           "health-record data): the manuscript adds the RECORD items (Benchimol et al. 2015)")

    @model_validator(mode="after")
    def _consistent(self) -> Design:
        controlled = self.type == "controlled_before_after"
        if controlled and (self.group is None or self.sites is None):
            raise ValueError("a controlled before-after design needs `group` (column, intervention, control) and "
                             "`sites` (the column counted as sites)")
        if self.sites is not None and not controlled:
            raise ValueError(f"`sites` is for type controlled_before_after, not {self.type}")
        if self.group is not None and self.type == "before_after":
            raise ValueError("`group` is for type controlled_before_after or interrupted_time_series (a control "
                             "series), not before_after")
        if self.type == "interrupted_time_series" and self.time_unit == "quarter":
            raise ValueError("an interrupted time series is by month or by week, not `time_unit: quarter`")
        if self.type != "interrupted_time_series" and self.time_unit == "week":
            raise ValueError(f"`time_unit: week` is for an interrupted time series; a {self.type} study's time "
                             "points are months or quarters")
        if self.time_unit == "week" and self.seasonality == "months":
            raise ValueError("`seasonality: months` (calendar-month indicators) does not fit a weekly series: a "
                             "week can straddle two months; use `seasonality: fourier` (period 52.18 weeks) or none")
        its_keys = [k for k in ("change_point", "seasonality", "harmonics", "lags", "family")
                    if k in self.model_fields_set]
        if self.type != "interrupted_time_series" and its_keys:
            raise ValueError(f"`{'`, `'.join(its_keys)}` {'is' if len(its_keys) == 1 else 'are'} for type "
                             f"interrupted_time_series, not {self.type}")
        return self


class Power(_Strict):
    """Planning the next study (`python -m analysis power`): the grid over which power and sizes are given."""

    baseline: float = Field(..., gt=0, lt=1, description="the outcome's proportion before the change")
    effects: list[float] = Field(..., min_length=1, description="effects to detect, on `effect_scale`")
    effect_scale: Literal["odds_ratio", "risk_difference"] = Field(
        "odds_ratio", description="odds ratio after vs before, or risk difference after minus before")
    icc: float | None = Field(None, ge=0, lt=1, description="intracluster correlation (default 0 unless cluster_sd)")
    cluster_sd: float | None = Field(None, ge=0, description="cluster SD on the logit scale, instead of `icc`")
    cluster_size: list[float] = Field([1], min_length=1, description="patients per cluster per period")
    cluster_cv: float = Field(0, ge=0, description="coefficient of variation of the cluster sizes")
    clusters: list[StrictInt] = Field(..., min_length=1, description="clusters per period (stepped wedge: in all)")
    steps: StrictInt | None = Field(None, ge=2, description="a stepped wedge with this many steps (steps + 1 periods)")
    alpha: float = Field(0.05, gt=0, lt=1, description="two-sided significance level")
    target: float = Field(0.8, gt=0, lt=1, description="the power the sizes are given for")
    design: Literal["before_after", "controlled_before_after", "interrupted_time_series", "stepped_wedge"] | None = (
        Field(None, description="the design to simulate (default: stepped_wedge with `steps`, else `design.type`)"))
    months: list[StrictInt] | None = Field(
        None, min_length=1, description="interrupted time series: months before (and as many after) the change")
    simulations: StrictInt = Field(1000, ge=1, description="datasets simulated per grid point (`--simulate`)")
    seed: StrictInt = Field(20261130, ge=0, description="the seed of the simulation's one SeedSequence")

    @model_validator(mode="after")
    def _consistent(self) -> Power:
        if self.icc is not None and self.cluster_sd is not None:
            raise ValueError("give `icc` or `cluster_sd`, not both")
        if (self.design == "stepped_wedge") != (self.steps is not None) and self.design is not None:
            raise ValueError("`steps` goes with `design: stepped_wedge`, and a stepped wedge needs `steps`")
        if self.months is not None and any(m < 3 for m in self.months):
            raise ValueError("an interrupted time series needs at least 3 months before and 3 after the change "
                             "(Cochrane EPOC): every `months` value must be 3 or more")
        if any(m < 1 for m in self.cluster_size) or any(k < 1 for k in self.clusters):
            raise ValueError("cluster sizes and numbers of clusters must be at least 1")
        if self.steps is not None and any(k < self.steps for k in self.clusters):
            raise ValueError(f"a stepped wedge of {self.steps} steps needs at least {self.steps} clusters")
        p0 = self.baseline
        for effect in self.effects:
            if self.effect_scale == "odds_ratio":
                ok = effect > 0 and effect != 1
            else:
                ok = effect != 0 and 0 < p0 + effect < 1
            if not ok:
                raise ValueError(f"effect {effect} on the {self.effect_scale} scale gives no valid after-period "
                                 f"proportion different from the baseline {p0}")
        return self


class Disclosure(_Strict):
    """Statistical disclosure control of the outputs (analysis/disclosure.py), in ACRO's names; a key left out
    takes the profile's value."""

    profile: Literal["acro", "nhs_hes", "opensafely"] = Field("acro", description="the TRE's rules")
    apply: StrictBool | None = Field(None, description="default: when the data are not synthetic; true previews a "
                                     "release of a synthetic study")
    safe_threshold: StrictInt | None = Field(None, ge=1, description="a count below this is suppressed")
    safe_dof_threshold: StrictInt | None = Field(None, ge=1, description="fewest residual degrees of freedom")
    safe_nk_n: StrictInt | None = Field(None, ge=1, description="(n, k) dominance: the n largest contributions")
    safe_nk_k: float | None = Field(None, gt=0, le=1, description="(n, k) dominance: their largest share")
    safe_pratio_p: float | None = Field(None, gt=0, le=1, description="p-ratio: the smallest remainder share")
    zeros_are_disclosive: StrictBool | None = None
    safe_round_base: StrictInt | None = Field(None, ge=0, description="round shown counts to this base (0: no)")
    marker: str | None = Field(None, min_length=1, description="how a suppressed value is shown")


class Study(_Strict):
    """A study file, parsed. `name` is the file's stem."""

    name: str
    file: Path
    title: str
    synthetic: StrictBool = Field(..., description="true when the data are synthetic; shown on every result")
    description: str = ""
    extraction_date: dt.date | None = Field(
        None, description="the day the data were extracted: no date in them may be later (default: today)")
    tables: dict[str, TableSource] = Field(..., description="the first table is the main one (the flow's units)")
    published: Path | None = Field(None, description="folder of published aggregates to compare against")
    period: Period
    design: Design = Field(default_factory=Design, description="the design, checked against EPOC's criteria")
    eligibility: dict[str, Exclusion] = Field(default_factory=dict)
    outcomes: dict[str, Outcome]
    subgroups: dict[str, Subgroup] = Field(default_factory=dict)
    covariates: list[str] = Field(default_factory=list)
    table_one: list[str] | None = Field(None, description="Table 1 rows; default the covariates and the cluster")
    clusters: Clusters = Field(default_factory=Clusters)
    robustness: Robustness = Field(default_factory=Robustness)
    seeds: Seeds
    outputs: Outputs = Field(default_factory=Outputs)
    power: Power | None = Field(None, description="planning the next study: `python -m analysis power`")
    # left out of the parameters' hash (and so of every ledger entry's provenance) when the key is absent
    disclosure: Disclosure | None = Field(None, exclude_if=lambda value: value is None,
                                          description="disclosure control of the outputs (default: on for real data)")

    @field_validator("published")
    @classmethod
    def _published_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not resolve(path).is_dir():
            raise ValueError(f"folder not found: {relative(resolve(path))}")
        return path

    @field_validator("outcomes", "subgroups", "eligibility")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for key in value:
            for part in key.split("."):
                _identifier(part, "name")
        return value

    @model_validator(mode="after")
    def _references(self) -> Study:
        problems = [*self._table_problems(), *self._column_problems(), *self._output_problems()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _table_problems(self) -> list[str]:
        problems = []
        if not self.tables:
            problems.append("tables: declare at least one table")
        for name, table in self.tables.items():
            if not NAME.match(name) or name == "flow":
                problems.append(f"tables.{name}: a table's name is letters, digits and underscores, and not 'flow'")
            if not table.path.is_file():
                problems.append(f"tables.{name}.file: data file not found: {relative(table.path)}")
            if table.belongs_to is not None and table.belongs_to not in self.tables:
                problems.append(f"tables.{name}.belongs_to: no table '{table.belongs_to}'")
            if table.belongs_to is not None:
                parent = self.tables.get(table.belongs_to)
                if parent is not None and (parent.key is None or not table.has(parent.key)):
                    problems.append(f"tables.{name}.belongs_to: the table needs the parent's key column "
                                    f"(tables.{table.belongs_to}.key) among its columns")
            if table.belongs_to is None and not table.has(self.period_column(name)):
                problems.append(f"tables.{name}: the period column '{self.period_column(name)}' is not among its "
                                "columns (declare it, or give the table `belongs_to` or `period_column`)")
        for key, outcome in self.outcomes.items():
            if outcome.table not in self.tables:
                problems.append(f"outcomes.{key}.table: no table '{outcome.table}' (tables: {', '.join(self.tables)})")
            if outcome.sensitivity_of is not None and outcome.sensitivity_of not in self.outcomes:
                problems.append(f"outcomes.{key}.sensitivity_of: no outcome '{outcome.sensitivity_of}'")
            if outcome.subgroup is not None and outcome.subgroup not in self.subgroups:
                problems.append(f"outcomes.{key}.subgroup: no subgroup '{outcome.subgroup}'")
        for key, group in self.subgroups.items():
            if group.table not in self.tables:
                problems.append(f"subgroups.{key}.table: no table '{group.table}'")
        return problems

    def _column_problems(self) -> list[str]:
        problems = []

        def need(where: str, table: str, column: str | None) -> None:
            if column is not None and table in self.tables and not self.tables[table].has(column):
                problems.append(f"{where}: column '{column}' is not declared in tables.{table}.columns")

        main = self.main_table
        for name, table in self.tables.items():
            for kind, names in (("columns", table.columns), ("derive", table.derive)):
                problems.extend(
                    f"tables.{name}.{kind}.{column}: '{column}' is a name the data step gives its own columns "
                    f"({', '.join(RESERVED_COLUMNS)}) and would overwrite; rename it, keeping the file's name in "
                    f"`from:` (e.g. `{column}_recorded: {{from: {column}}}`)"
                    for column in names if column in RESERVED_COLUMNS)
            if table.one_row_per is not None and table.one_row_per != self.design.time_unit:
                problems.append(f"tables.{name}.one_row_per: '{table.one_row_per}' but design.time_unit is "
                                f"'{self.design.time_unit}'; make them the same")
        need("design.group", main, self.design.group.column if self.design.group else None)
        need("design.sites", main, self.design.sites)
        if self.design.type == "interrupted_time_series" and not self.period.by_date:
            problems.append("design: an interrupted time series needs date windows in `period` (its points are "
                            "months of the period column)")
        for key, rule in self.eligibility.items():
            for condition in rule.keep:
                need(f"eligibility.{key}", main, condition.column)
        for key, outcome in self.outcomes.items():
            where = f"outcomes.{key}"
            for column in (outcome.column, outcome.exposure, outcome.count):
                need(where, outcome.table, column)
            for condition in outcome.population:
                need(f"{where}.population", outcome.table, condition.column)
            for column in self.outcome_covariates(outcome):
                need(f"{where}.covariates", outcome.table, column)
            if outcome.does("mixed") or outcome.does("gee"):
                need(f"{where}: clusters.primary", outcome.table, self.clusters.primary)
            if outcome.type == "binary" and outcome.does("mixed") and outcome.does("alternative_clusters"):
                for column in self.clusters.alternatives:
                    need(f"{where}: clusters.alternatives", outcome.table, column)
        for key, group in self.subgroups.items():
            for condition in group.where:
                need(f"subgroups.{key}", group.table, condition.column)
        for name, table in self.tables.items():
            for column, derivation in table.derive.items():
                for source in derivation.inputs:
                    need(f"tables.{name}.derive.{column}", name, source)
            # An inherited column is copied from the parent row: unchecked, a column the parent does not
            # declare stopped the data step with a bare KeyError, and without `belongs_to` it was ignored.
            if table.inherit and table.belongs_to is None:
                problems.append(f"tables.{name}.inherit: copies columns from the parent row; give `belongs_to`")
            for column in table.inherit:
                need(f"tables.{name}.inherit", table.belongs_to, column)
        return problems

    def _output_problems(self) -> list[str]:
        """Output folders that could hold sources or inputs: what the pipeline writes there, and what
        `clean` removes, would land on them. Judged where they lead, after `..` and symbolic links."""
        home = resolve(self.file).resolve().parent
        beside_study = not _within(home, ROOT)  # a study kept outside the repository writes beside itself
        inputs = [resolve(self.file), *self.raw_files()]
        problems = []
        for key, given, folder in (("outputs.folder", self.outputs.folder, self.output_dir),
                                   ("outputs.notebooks", self.outputs.notebooks, self.notebook_dir)):
            if key == "outputs.notebooks" and given is None:
                continue  # inside the output folder, judged above
            real = folder.resolve()
            if key == "outputs.notebooks" and real == NOTEBOOKS_DIR:
                continue  # the reference study's executed notebooks are their sources, executed in place
            shown = given or relative(folder)
            allowed = DERIVED_DIR.resolve() in real.parents or (
                beside_study and _within(real, home) and not _within(ROOT, real))
            if not allowed:
                problems.append(f"{key}: {shown} is {relative(real)}, outside data_derived/ (rule: {OUTPUTS_RULE})")
            problems += [f"{key}: {shown} holds the input file {relative(source)} (rule: an output folder never "
                         "holds the study's inputs)" for source in inputs if _within(source.resolve(), real)]
        return problems

    @property
    def main_table(self) -> str:
        return next(iter(self.tables))

    def unit(self, table: str) -> str:
        return self.tables[table].unit or table

    def period_column(self, table: str) -> str:
        return self.tables[table].period_column or self.period.column

    def outcome_covariates(self, outcome: Outcome) -> list[str]:
        return list(self.covariates if outcome.covariates is None else outcome.covariates)

    @property
    def change_point(self) -> dt.date | None:
        """An interrupted time series' change point: declared, or the start of the after window."""
        return self.design.change_point or self.period.after.start

    def cluster_columns(self) -> list[str]:
        return [c for c in [self.clusters.primary, *self.clusters.alternatives] if c is not None]

    def table_one_columns(self) -> list[str]:
        if self.table_one is not None:
            return list(self.table_one)
        main = self.tables[self.main_table]
        default = [*self.covariates, *([self.clusters.primary] if self.clusters.primary else [])]
        return [c for c in dict.fromkeys(default) if main.has(c)]

    @property
    def output_dir(self) -> Path:
        return resolve(self.outputs.folder or Path("data_derived") / self.name)

    @property
    def notebook_dir(self) -> Path:
        return resolve(self.outputs.notebooks) if self.outputs.notebooks else self.output_dir / "notebooks"

    def parameters_sha256(self) -> str:
        """Hash of what the analysis depends on: every setting except where the file and outputs are,
        and the plausibility limits (`extraction_date`, a derivation's `max`), which accept or refuse
        the data but change no result; nor `power`, which plans the next study."""
        checks_only = {"file": True, "outputs": True, "extraction_date": True, "power": True,
                       "tables": {"__all__": {"derive": {"__all__": {"max"}}}}}
        return sha256_json(self.model_dump(mode="json", exclude=checks_only))

    def raw_files(self) -> list[Path]:
        """Every raw input the study reads: its data tables and the published aggregates."""
        files = [table.path for table in self.tables.values()]
        if self.published is not None:
            files += sorted(resolve(self.published).glob("*.csv"))
        return files


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys silently; a study file with both is an error.

    Anchors and aliases are refused as the file is composed, before any is expanded: nine nested
    aliases in 2 KB ("billion laughs") expand into 9**9 values, which took 48 s and 6 GB before
    dying. A study file has no need of them.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise StudyError(f"line {event.start_mark.line + 1}: anchors and aliases (&, *) are not allowed in a "
                             "study file; write the value out in full where it is used")
        return super().compose_node(parent, index)


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise StudyError(f"key '{key}' appears twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def study_path(name_or_path: str | Path) -> Path:
    """`reference`, `studies/reference.yml` or a path anywhere: the study file it names."""
    text = str(name_or_path)
    if text.endswith((".yml", ".yaml")) or "/" in text:
        return resolve(text)
    return STUDIES_DIR / f"{text}.yml"


def read_yaml(path: Path) -> Any:
    """A study file's YAML, with two equal keys an error; StudyError names the file."""
    where = relative(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except StudyError as error:
        raise StudyError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        raise StudyError(f"{where}: not valid YAML: {error}") from None


def load_study(name_or_path: str | Path) -> Study:
    """Parse and check a study file; any problem is a StudyError naming the file and the key."""
    path = study_path(name_or_path)
    where = relative(path)
    if not STUDY_NAME.match(path.stem):
        raise StudyError(f"{where}: study name '{path.stem}' refused (rule: {NAME_RULE}); rename the file")
    if not path.is_file():
        known = ", ".join(list_studies()) or "none"
        raise StudyError(f"{where}: study file not found (studies here: {known})")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: expected a mapping of keys at the top level, found {type(raw).__name__}")
    for reserved in ("name", "file"):
        if reserved in raw:
            raise StudyError(f"{where}: key '{reserved}' is not allowed (the study's name is its file name)")
    try:
        return Study(name=path.stem, file=Path(where), **raw)
    except ValidationError as error:
        raise StudyError(_describe(where, error)) from None


def _describe(where: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against studies/README.md)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif "input" in item and not isinstance(item["input"], dict | list):
            message += f" (got {item['input']!r})"
        problems.append(f"key '{key}': {message}" if key != "(top level)" else message)
    head = f"{where}: {problems[0]}"
    if len(problems) == 1:
        return head
    return "\n".join([f"{where}: {len(problems)} problems", *(f"  - {p}" for p in problems)])


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yml"))
