"""A manuscript for a study without one, written from the study's declarations and its ledger.

The reference study's manuscript is written by hand (`paper/manuscript.md`). Every other study gets
this one until someone adopts it: copies the generated source (`paper/build/<study>/<study>.md`) to
`paper/<study>.md` and edits it. Each sentence follows from what the study file declares (periods,
eligibility, outcomes with their types, roles, labels and analyses, covariates, clusters, whether its
data are synthetic or have published values) and from which ledger entries exist; each number is a
placeholder, filled from the ledger at build time by `analysis.text` exactly as in the hand-written
manuscript, under the same "no typed digit" rule. A number inside a declared text (a threshold in an
excluded group, a scale in a label) becomes the placeholder of the design entry that holds it.

What a study file cannot say (the local problem, the intervention, the ethics review, the funding)
is a section whose heading is marked `.to-write`, holding a prompt for the authors; the SQUIRE
checklist names such a section as still to write. An entry that was not estimated is left out of
sentences; the results tables show it as "not estimated" and the Limitations name it, with the
ledger's own reason (`{{ warning: <name> }}`).

Every text taken from the study file (its title, description, labels, units, period labels, excluded groups,
levels, the ledger's descriptions) is escaped for Markdown as it is written (`analysis.paper.safe`), and a
condition, formula or file name is a code span: each prints as typed, and the source stays valid Markdown
once adopted.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd

from analysis import tables
from analysis.analyses.cohort import SMD_LIMIT
from analysis.analyses.figure_data import Figure, figures_of
from analysis.analyses.its_counts import family
from analysis.analyses.outcomes import outcomes_of, plan
from analysis.analyses.robustness import leave_one_out_outcomes, skipped_time_series, time_series_outcomes
from analysis.config import Study
from analysis.errors import StudyError
from analysis.ledger import Entry
from analysis.paper import RECORD
from analysis.paper.safe import code, markdown
from analysis.paper.words import (
    NUMBER,
    decimals,
    in_words,
    join,
    lower_first,
    placeholder,
    prompt,
    sentence,
    singular,
    typed,
    upper_first,
)
from analysis.text import NOT_ESTIMATED, NUMBERS, render

ROLES = ("primary", "secondary")
SUBTITLES = {"before_after": "An uncontrolled before-after study",
             "controlled_before_after": "A controlled before-after study",
             "interrupted_time_series": "An interrupted time series study"}
DESIGN_WORDS = {"before_after": "An uncontrolled before-after study",
                "controlled_before_after": "A controlled before-after study (intervention and control groups)",
                "interrupted_time_series": "An interrupted time series"}
TYPES = {"binary": "binary", "count": "count", "continuous": "continuous", "ordinal": "ordered categories"}
# each analysis of `plan`, as the Analysis section lists it
STEPS = {
    "proportions": "Proportions, risk difference, relative risk, odds ratios; chi-square and Fisher's exact tests",
    "logistic": "Logistic regression, no clustering; Hosmer-Lemeshow, Nagelkerke's R-squared",
    "gee": "GEE, exchangeable correlation (population-averaged odds ratio)",
    "count": "Negative binomial regression of the number of events",
    "medians": "Median and quartiles per period",
    "rank_tests": "Mann-Whitney U test, rank-biserial correlation, Hodges-Lehmann shift",
    "means": "Means, Welch's difference in means",
    "distribution": "Counts per level and period",
    "trend": "Chi-square test for trend",
    "proportional_odds": "Proportional-odds model (cumulative odds ratio)",
    "rates": "Events and rates per period",
    "poisson": "Poisson regression (rate ratio)",
    "negative_binomial": "Negative binomial regression (rate ratio)",
}
MIXED_STEPS = {"binary": "Mixed-effects logistic regression (conditional odds ratio)",
               "continuous": "Linear mixed model, REML (difference after minus before)",
               "count": "Mixed-effects Poisson regression (rate ratio)"}
# what a ledger entry measures, by the last part of its name
QUANTITIES = {
    "proportion_before": "proportion before", "proportion_after": "proportion after",
    "risk_difference": "risk difference", "relative_risk": "relative risk", "fisher": "Fisher's exact test",
    "chi2": "chi-square test", "chi2_corrected": "chi-square test with continuity correction",
    "odds_ratio_unadjusted": "unadjusted odds ratio", "odds_ratio_exact": "exact odds ratio",
    "odds_ratio_adjusted": "adjusted odds ratio (mixed-effects)", "odds_ratio_mixed": "mixed-effects odds ratio",
    "odds_ratio_adjusted_fixed": "adjusted odds ratio (no clustering)",
    "odds_ratio_fixed": "odds ratio (no clustering)", "odds_ratio_gee": "GEE odds ratio",
    "cluster_sd": "random-intercept SD", "hosmer_lemeshow": "Hosmer-Lemeshow test",
    "nagelkerke_r2": "Nagelkerke's R-squared", "nnt": "number needed to treat",
    "count_rate_ratio": "rate ratio of the number of events", "mann_whitney": "Mann-Whitney U test",
    "rank_biserial": "rank-biserial correlation", "hodges_lehmann": "Hodges-Lehmann shift",
    "mean_difference": "difference in means", "mixed_difference": "linear mixed model difference",
    "proportional_odds": "cumulative odds ratio", "trend_test": "test for trend",
    "rate_ratio_poisson": "Poisson rate ratio", "rate_ratio_negative_binomial": "negative binomial rate ratio",
    "rate_ratio_mixed": "mixed-effects rate ratio", "pre_trend": "interrupted time series",
    "level_change": "interrupted time series", "slope_change": "interrupted time series",
    "post_trend": "interrupted time series",
    "difference_in_differences": "difference in differences of proportions",
    "difference_in_differences_mover": "difference in differences of proportions (MOVER interval)",
    "risk_difference_intervention": "risk difference in the intervention group",
    "risk_difference_control": "risk difference in the control group",
    "ratio_of_odds_ratios_mixed": "ratio of odds ratios (mixed-effects)",
    "ratio_of_odds_ratios_cluster_robust": "ratio of odds ratios (cluster-robust standard errors)",
    "ratio_of_odds_ratios_wild_bootstrap": "ratio of odds ratios (wild cluster bootstrap)",
    **{f"{contrast}_{model}": f"{words} ({how})"
       for contrast, words in (("ratio_of_rate_ratios", "ratio of rate ratios"),
                               ("difference_in_differences", "difference in differences of means"))
       for model, how in (("mixed", "mixed-effects"), ("cluster_robust", "cluster-robust standard errors"),
                          ("wild_bootstrap", "wild cluster bootstrap"))},
}

# figures of the time series, placed with the robustness analyses rather than with an outcome role
SERIES_FIGURES = ("monthly", "its", "event_study")
# RECORD (Benchimol et al., PLoS Med 2015;12:e1001885): the items added to STROBE's for routinely collected data,
# each with where this manuscript answers it or what the authors must add; the item numbers are
# analysis.paper.RECORD's (the manuscript's number check knows them).
RECORD_ITEMS = tuple((item, *what) for item, what in zip(RECORD, (
    ("The type of data used is specified in the title or abstract.", None),
    ("The geographic region and time frame of the study are reported in the title or abstract.", None),
    ("If linkage between databases was done, this is stated in the title or abstract.", None),
    ("The methods of study population selection (codes or algorithms used to identify subjects) are listed "
     "in detail.", "measures"),
    ("Any validation studies of the codes or algorithms used to select the population are referenced.", None),
    ("If linkage was done, a flow diagram or other graphical display of the linkage process is given.", None),
    ("A complete list of the codes and algorithms used to classify exposures, outcomes, confounders and "
     "effect modifiers is provided.", "measures"),
    ("The extent to which the investigators had access to the database population used to create the study "
     "population is described.", None),
    ("Information on data cleaning methods used in the study is provided.", "measures"),
    ("Whether linkage across databases was done, its methods and its quality are stated.", None),
    ("The selection of the persons included in the study (the study population selection), including "
     "filtering by data quality, data availability and linkage, is described in text or a flow diagram.",
     "participants"),
    ("The implications of using data that were not created or collected to answer the research question "
     "are discussed, including misclassification bias, unmeasured confounding, missing data and changing "
     "eligibility over time.", "limitations"),
    ("Information on how to access any supplemental information such as the study protocol, raw data or "
     "programming code is provided.", "reproducibility"),
), strict=True))


def manuscript(study: Study, entries: dict[str, Entry]) -> str:
    """The Markdown source of the study's manuscript: placeholders, not numbers."""
    return _Writer(study, entries).manuscript()


class _Writer:
    """The manuscript of one study, section by section: each method returns Markdown with placeholders."""

    def __init__(self, study: Study, entries: dict[str, Entry]):
        self.study, self.entries = study, entries
        self.unit = self.unit_of(study.main_table)
        self.before, self.after = markdown(study.period.before.label), markdown(study.period.after.label)
        self.cluster = study.clusters.primary
        self.has_series = skipped_time_series(study) is None
        folder = study.output_dir / "figures"
        # every figure the study can have, kept when notebook 07 drew it
        self.figures = [f for f in figures_of(study, self.has_series, has_its=True, has_event_study=True)
                        if (folder / f"{f.name}.png").is_file()]
        self.roles = {role: outcomes_of(study, role=role) for role in ROLES}
        self.main = {role: [k for k in keys if study.outcomes[k].sensitivity_of is None]
                     for role, keys in self.roles.items()}
        self.headline_role = "primary" if self.main["primary"] else "secondary"

    # -- what the ledger holds ------------------------------------------------------------------

    def shows(self, name: str, style: str) -> str | None:
        """The entry in that style, "not estimated" for an entry without numbers, None when the entry
        is missing or the style does not suit it."""
        if name not in self.entries:
            return None
        try:
            return render(placeholder(name, style), self.entries)
        except StudyError:
            return None

    def has(self, name: str, style: str = "est") -> bool:
        return self.shows(name, style) not in (None, NOT_ESTIMATED)

    def entry_cell(self, name: str, style: str) -> str:
        return placeholder(name, style) if self.shows(name, style) is not None else ""

    def value(self, name: str) -> float | None:
        entry = self.entries.get(name)
        return entry.estimate if entry is not None else None

    def digits(self, *names: str) -> int:
        return decimals(v for name in names if name in self.entries
                       for v in (self.entries[name].estimate, self.entries[name].conf_low,
                                 self.entries[name].conf_high))

    def summary_digits(self, key: str) -> int:
        """One number of decimals for a continuous outcome's medians and quartiles."""
        return self.digits(*[f"{key}.{q}_{p}" for q in ("median", "quartile_1", "quartile_3")
                             for p in ("before", "after")])

    def not_estimated(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and all(getattr(entry, f) is None for f in NUMBERS)

    # -- declared texts -------------------------------------------------------------------------

    def declared(self, text: str, *prefixes: str) -> str:
        """A text from the study file, escaped for Markdown, each number in it held by a design entry under
        one of `prefixes` written as that entry's placeholder; the text as declared when a number in it is
        held by none (the build allows a declared text as it is)."""
        text = markdown(text)
        candidates = [(name, entry.estimate) for name, entry in self.entries.items()
                      if entry.estimate is not None and any(name.startswith(p + ".") for p in prefixes)]

        def swap(match: re.Match) -> str:
            number = float(match.group(0))
            for name, value in candidates:
                if math.isclose(value, number):
                    return self.number(name)
            return match.group(0)

        swapped = NUMBER.sub(swap, text) if candidates else text
        return text if typed(swapped) else swapped

    def number(self, name: str) -> str:
        value = self.value(name)
        if value is not None and float(value).is_integer():
            return placeholder(name, "int")
        return placeholder(name, f"est:{decimals([value])}")

    def label(self, key: str) -> str:
        return self.declared(self.study.outcomes[key].label, *self.design_of(key))

    def short(self, key: str) -> str:
        return self.declared(self.study.outcomes[key].short, *self.design_of(key))

    def design_of(self, key: str) -> list[str]:
        """The design entries an outcome's texts may quote: its scale, and its subgroup's limits."""
        group = self.study.outcomes[key].subgroup
        return [f"design.outcome.{key}", *([f"design.subgroup.{group}"] if group else [])]

    def unit_of(self, table: str) -> str:
        return markdown(self.study.unit(table))

    def outcome_unit(self, key: str) -> str:
        return self.unit_of(self.study.outcomes[key].table)

    def column(self, column: str, table: str | None = None) -> str:
        """A column as words: its declared label up to the first comma ("Age, years": "Age")."""
        source = self.study.tables[table or self.study.main_table]
        declared = source.derive.get(column) or (source.spec(column) if column in source.columns else None)
        label = getattr(declared, "label", None) or column.replace("_", " ")
        return markdown(label.split(",")[0])

    def cluster_words(self, column: str | None = None) -> str:
        return lower_first(self.column(column or self.cluster or ""))

    def adjusted(self, key: str) -> str:
        return "adjusted" if self.study.outcome_covariates(self.study.outcomes[key]) else "mixed"

    def model_words(self, key: str) -> str:
        """How the main model's odds ratio is called: adjusted, or mixed-effects without covariates."""
        return "adjusted odds ratio" if self.adjusted(key) == "adjusted" else "mixed-effects odds ratio"

    # -- the document ---------------------------------------------------------------------------

    def manuscript(self) -> str:
        parts = [self.front(), self.read_first(), self.abstract(), self.introduction(), self.methods(),
                 self.results(), self.discussion(),
                 "# Funding {#funding .to-write}",
                 prompt("the sources of funding, and the role of the funders in the design, conduct, "
                        "interpretation and reporting."),
                 "# References {#references}", "::: {#refs}\n:::"]
        return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"

    def front(self) -> str:
        subtitle = SUBTITLES[self.study.design.type] + (", on synthetic data" if self.study.synthetic else "")
        # a literal block: the escaped title as it is, with no YAML quoting of its own
        return "\n".join(["---", "title: |-", f"  {markdown(self.study.title)}",
                          f"subtitle: {json.dumps(subtitle)}", "lang: en-GB", "link-citations: true", "---"])

    def read_first(self) -> str:
        text = []
        if self.study.synthetic:
            description = sentence(markdown(self.study.description))
            text.append("**Read this first.** The data analysed here are **synthetic**." +
                        (f" {description}" if description else "") +
                        f" The results show what the analyses do; they are not evidence about real {self.unit}.")
        else:
            text.append("**Read this first.**" + (f" {sentence(markdown(self.study.description))}"
                                                   if self.study.description else ""))
        text.append(f"This text was generated from the study file ({code(self.study.file)}) and its results ledger: "
                    "every number in it is filled in from the ledger by the build, none is typed by hand. "
                    "The sections marked *For the authors* need what a study file cannot say.")
        return "> " + " ".join(text)

    # -- abstract -------------------------------------------------------------------------------

    def outcome_phrase(self, keys: list[str]) -> str:
        return join([lower_first(self.label(k)) for k in keys])

    def abstract(self) -> str:
        keys = self.main[self.headline_role]
        lines = ["# Abstract {#abstract}", "",
                 f"**Objective.** To compare {self.outcome_phrase(keys)} in {self.unit} between "
                 f"{self.two_periods()}: {self.before} (before) and {self.after} (after)."]
        design = f"{DESIGN_WORDS[self.study.design.type]} of {self.unit}"
        if self.series_outcomes():
            design += ", with an interrupted time series of monthly proportions"
        elif self.counted_series():
            design += (f", analysed as an interrupted time series of {self.counted_adjective()} counts" +
                       (" with a control series" if self.study.design.group else ""))
        methods = [design + ".", self.eligibility_short(), self.models_short()]
        lines += ["", "**Methods.** " + " ".join(m for m in methods if m)]
        results = [self.flow_sentence()] + [self.headline(k) for k in keys]
        lines += ["", "**Results.** " + " ".join(r for r in results if r)]
        lines += ["", "**Conclusions.** Every number in this report is rebuilt from the raw data by one "
                      "command. " + ("An uncontrolled before-after comparison cannot by itself attribute a difference "
                                     "between the periods to the change between them."
                                     if self.study.design.type == "before_after" else
                                     "The design's limits against Cochrane EPOC's criteria are in the Limitations.")]
        return "\n".join(lines)

    def two_periods(self) -> str:
        period = self.study.period
        return "two periods" if period.by_date else f"the two values of {lower_first(self.column(period.column))}"

    def eligibility_short(self) -> str:
        excluded = [self.excluded(key) for key in self.study.eligibility]
        if not excluded:
            return f"All {self.unit} of the two periods were included."
        return (f"{upper_first(self.unit)} of the two periods were included; excluded, in this order: "
                f"{'; '.join(excluded)}.")

    def excluded(self, key: str) -> str:
        return self.declared(self.study.eligibility[key].excluded, f"design.eligibility.{key}")

    def models_short(self) -> str:
        done = {(o.type, step.analysis) for key, o in self.study.outcomes.items() for step in plan(self.study, key)}
        phrases = []
        if ("binary", "proportions") in done:
            phrases.append("proportions with Fisher's exact test and the risk difference")
        if ("binary", "mixed") in done:
            phrases.append("mixed-effects logistic regression" +
                           (f" with a random intercept for {self.cluster_words()}" if self.cluster else ""))
        if ("binary", "gee") in done:
            phrases.append("GEE")
        if {("continuous", "medians"), ("continuous", "rank_tests")} & done:
            phrases.append("medians with rank tests")
        if ("continuous", "mixed") in done:
            phrases.append("linear mixed models")
        if ("ordinal", "proportional_odds") in done:
            phrases.append("proportional-odds models")
        if {("count", "poisson"), ("count", "negative_binomial"), ("count", "mixed")} & done:
            phrases.append("Poisson and negative binomial regression")
        return f"Analyses: {join(phrases)}." if phrases else ""

    def flow_sentence(self) -> str:
        if not (self.has("flow.included.before", "int") and self.has("flow.included.after", "int")):
            return ""
        return (f"{{{{ flow.included.before | int }}}} {self.unit} were included before and "
                f"{{{{ flow.included.after | int }}}} after.")

    def headline(self, key: str) -> str:
        """One sentence of what was found for an outcome, from the entries that were estimated."""
        o, k = self.study.outcomes[key], key
        label, parts = self.label(key), []
        if o.type == "binary":
            if not (self.has(f"{k}.proportion_before", "frac") and self.has(f"{k}.proportion_after", "frac")):
                return ""
            head = (f"{label}: {{{{ {k}.proportion_before | frac }}}} of {self.outcome_unit(key)} before and "
                    f"{{{{ {k}.proportion_after | frac }}}} after")
            if self.has(f"{k}.risk_difference", "pp_ci"):
                parts.append(f"risk difference {{{{ {k}.risk_difference | pp_ci }}}}")
            model = f"{k}.odds_ratio_{self.adjusted(key)}"
            if self.has(model, "est_ci"):
                parts.append(f"{self.model_words(key)} {{{{ {model} | est_ci }}}}")
        elif o.type == "continuous":
            if not (self.has(f"{k}.median_before") and self.has(f"{k}.median_after")):
                return ""
            d = self.summary_digits(key)
            head = (f"{label}: median {placeholder(f'{k}.median_before', f'est:{d}')} before and "
                    f"{placeholder(f'{k}.median_after', f'est:{d}')} after")
            for name, words in ((f"{k}.hodges_lehmann", "Hodges-Lehmann shift"),
                                (f"{k}.mixed_difference", "difference in a linear mixed model")):
                if self.has(name, "est_ci"):
                    parts.append(f"{words} {{{{ {name} | est_ci:{self.digits(name)} }}}}")
            if self.has(f"{k}.mann_whitney", "p"):
                parts.append(f"Mann-Whitney {{{{ {k}.mann_whitney | p }}}}")
        elif o.type == "ordinal":
            if not self.has(f"{k}.proportional_odds", "est_ci"):
                return ""
            head = (f"{label}: cumulative odds ratio of a higher level, after vs before, "
                    f"{placeholder(f'{k}.proportional_odds', 'est_ci')}")
            if self.has(f"{k}.trend_test", "p"):
                parts.append(f"test for trend {{{{ {k}.trend_test | p }}}}")
        else:
            if not (self.has(f"{k}.rate_before") and self.has(f"{k}.rate_after")):
                return ""
            d = self.digits(f"{k}.rate_before", f"{k}.rate_after")
            head = (f"{label}: {{{{ {k}.rate_before | est:{d} }}}} before and {{{{ {k}.rate_after | est:{d} }}}} "
                    f"after per {self.per(key)}")
            for suffix, words in (("rate_ratio_poisson", "Poisson rate ratio"),
                                  ("rate_ratio_negative_binomial", "negative binomial rate ratio"),
                                  ("rate_ratio_mixed", "mixed-effects rate ratio")):
                if self.has(f"{k}.{suffix}", "est_ci"):
                    parts.append(f"{words} {{{{ {k}.{suffix} | est_ci }}}}")
        return head + (f" ({'; '.join(parts)})." if parts else ".")

    def brief(self, key: str) -> str:
        """The outcome's main result in a few words, for the summary."""
        o, k, label = self.study.outcomes[key], key, lower_first(self.label(key))
        model = f"{k}.odds_ratio_{self.adjusted(key)}"
        before, after = f"{k}.proportion_before", f"{k}.proportion_after"
        if o.type == "binary" and self.has(before, "pct") and self.has(after, "pct"):
            text = f"{label} {placeholder(before, 'pct')} before and {placeholder(after, 'pct')} after"
            if self.has(model, "est_ci"):
                text += f" ({self.model_words(key)} {placeholder(model, 'est_ci')})"
            return text
        if o.type == "continuous" and self.has(f"{k}.median_before") and self.has(f"{k}.median_after"):
            d = self.summary_digits(key)
            return (f"{label}, median {{{{ {k}.median_before | est:{d} }}}} before and "
                    f"{{{{ {k}.median_after | est:{d} }}}} after")
        if o.type == "ordinal" and self.has(f"{k}.proportional_odds", "est_ci"):
            return f"{label}, cumulative odds ratio {{{{ {k}.proportional_odds | est_ci }}}}"
        for suffix in ("rate_ratio_mixed", "rate_ratio_poisson", "rate_ratio_negative_binomial"):
            if o.type == "count" and self.has(f"{k}.{suffix}", "est_ci"):
                return f"{label}, rate ratio {{{{ {k}.{suffix} | est_ci }}}}"
        return ""

    def per(self, key: str) -> str:
        o = self.study.outcomes[key]
        if not o.exposure:
            return singular(self.outcome_unit(key))
        first, _, rest = lower_first(self.column(o.exposure, o.table)).partition(" ")  # "days at risk": "day at risk"
        return " ".join(w for w in (singular(first), rest) if w)

    # -- introduction ---------------------------------------------------------------------------

    def introduction(self) -> str:
        aims = [f"To compare {self.outcome_phrase(self.main[self.headline_role])} between the two periods"]
        if self.headline_role == "primary" and self.main["secondary"]:
            aims.append(f"and, as secondary outcomes, {self.outcome_phrase(self.main['secondary'])}")
        aims_text = " ".join(aims) + (", with the analyses a before-after design needs: clustering, sensitivity "
                                      "analyses and, where the data allow it, the secular trend.")
        if self.published():
            aims_text += " To set the results beside the published values they reproduce."
        return "\n\n".join([
            "# Introduction {#introduction}",
            "## Problem description {#problem .to-write}",
            f"This study compares {self.unit} in two periods, {self.before} and {self.after}.",
            prompt("the local problem: its nature, how large it is, and why it matters."),
            "## Available knowledge {#knowledge .to-write}",
            prompt("what is known about the problem and about changes like this one, with references."),
            "## Rationale {#rationale .to-write}",
            prompt("why the change between the periods was expected to improve the outcomes: the model or "
                   "theory behind it, and its assumptions."),
            "## Specific aims {#aims}",
            aims_text,
        ])

    # -- methods --------------------------------------------------------------------------------

    def methods(self) -> str:
        parts = ["# Methods {#methods}", "## Context {#context}", self.context(),
                 prompt("the setting: the organisation, the people and the circumstances at the outset of the "
                        "change, and what else changed at the time."),
                 "## Intervention {#intervention .to-write}",
                 f"Before: {self.before}. After: {self.after}.",
                 prompt("the change in enough detail for others to reproduce it, and the team that made it."),
                 "## Study of the intervention {#study-design}", self.study_design(),
                 "## Measures {#measures}", self.measures(),
                 "## Analysis {#analysis}", self.analysis(),
                 "## Data, code and reproducibility {#reproducibility}", self.reproducibility()]
        if self.study.design.routinely_collected:
            parts += ["## Routinely collected data (RECORD) {#record}", self.record()]
        if self.study.synthetic:
            parts += ["## Ethical considerations {#ethics}",
                      f"No data about real {self.unit} are used: the data are synthetic."]
        else:
            parts += ["## Ethical considerations {#ethics .to-write}",
                      prompt("the ethics review or its waiver, consent, data protection, and any conflict of "
                             "interest.")]
        return "\n\n".join(parts)

    def context(self) -> str:
        names = list(self.study.tables)
        described = []
        for name in names:
            table = self.study.tables[name]
            text = f"{self.unit_of(name)} (a row per {singular(self.unit_of(name))})"
            if table.belongs_to:
                text += f", each belonging to one of the {self.unit_of(table.belongs_to)}"
            described.append(text)
        text = (f"The data are {in_words(len(names))} table{'s' if len(names) > 1 else ''}: {join(described)}. ")
        period = self.study.period
        if period.by_date:
            text += (f"Each of the {self.unit} belongs to the before or the after period by its "
                     f"{lower_first(self.column(period.column))}")
            text += "; the two windows' dates are in the flow table ({{ ref: flow }})." if self.has_table("flow") \
                else "."
        else:
            values = [str(w.value) for w in (period.before, period.after)]
            shown = all(re.search(r"[A-Za-z]", v) for v in values)
            text += (f"The periods are two values of the column {lower_first(self.column(period.column))}"
                     + (f" ({markdown(values[0])} before, {markdown(values[1])} after)" if shown else "")
                     + "; the data carry no dates.")
        if self.cluster:
            text += f" The {self.unit} are grouped by {self.cluster_words()}."
        return text

    def study_design(self) -> str:
        text = (f"{DESIGN_WORDS[self.study.design.type]}: a comparison of the {self.unit} of the two periods, each "
                "outcome analysed as its type asks (Analysis, below).")
        text += (" The design was checked against the minimum criteria of Cochrane EPOC (Effective Practice and "
                 "Organisation of Care) for the designs its reviews include; a criterion not met is listed in the "
                 "Limitations.")
        if self.study.design.type == "controlled_before_after":
            text += (" For each binary primary outcome the intervention group's change is set against the control "
                     "group's over the same time: the difference in differences of proportions (Wald interval, and a "
                     "MOVER interval from the four Wilson intervals), and the ratio of odds ratios (the group by "
                     "period interaction of a logistic model with the covariates) with a random intercept for the "
                     "cluster, with cluster-robust (sandwich) standard errors and, with few clusters, by a wild "
                     "cluster bootstrap (restricted score bootstrap with Webb's six-point weights, seeded).")
            if any(self.study.outcomes[k].type in ("count", "continuous") for k in self.roles["primary"]):
                text += (" Count outcomes are compared as a ratio of rate ratios (Poisson regression, the exposure as "
                         "offset) and continuous ones as a difference in differences of means (linear regression), "
                         "each with a random intercept for the cluster, with cluster-robust standard errors and, "
                         "with few clusters, by the same wild cluster bootstrap on the model's scale.")
        if self.trend_outcomes():
            unit = self.study.design.time_unit
            text += (f" Whether the two groups followed parallel courses before the change is examined by {unit}: a "
                     f"joint Wald test of the group by {unit} interactions before the change, the ratio of the "
                     f"groups' odds ratios per {unit} (a difference of linear trends), and an event study, the "
                     f"ratio of odds ratios at each {unit} relative to the last before the change, with cluster-robust "
                     "standard errors.")
        counted = self.counted_series()
        if counted:
            design = self.study.design
            families = {family(self.study, k) for k in counted}
            model = " or ".join(f"{f} regression" + (" (log link, the log denominator as offset)" if f == "poisson"
                                                     else " (events out of the denominator)") for f in sorted(families))
            weekly = design.time_unit == "week"
            cycle = "a year of 52.18 weeks" if weekly else "the calendar month"
            seasons = {"fourier": f"{in_words(design.harmonics)} pair{'s' if design.harmonics > 1 else ''} of "
                                  f"sine and cosine terms of {cycle}",
                       "months": "calendar-month indicators", "none": "no seasonal terms"}[design.seasonality]
            counted_by = "ISO week (Monday to Sunday)" if weekly else "month"
            text += (f" {upper_first(self.outcome_phrase(counted))} {'are' if len(counted) > 1 else 'is'} counted by "
                     f"{counted_by} and analysed by segmented {model} with a level and a slope change at the change "
                     f"point and {seasons} [@wagner2002]; standard errors are Newey-West with a lag of "
                     f"{in_words(design.lags)} {design.time_unit}{'s' if design.lags != 1 else ''} [@newey1987], and "
                     "Durbin-Watson and Ljung-Box statistics check the residuals for autocorrelation. The events "
                     "averted are the counterfactual (the trend before the change continued) minus the fitted events, "
                     "summed from the change on, with a delta-method interval.")
            if design.group is not None:
                text += (f" A control series ({markdown(str(design.group.control))}, against "
                         f"{markdown(str(design.group.intervention))}) is modelled with the same terms interacting "
                         "with the series: the intervention series' level and slope changes are estimated relative to "
                         f"the control series' over the same {design.time_unit}s, its counterfactual carries the "
                         "control's change, and the covariance sums the two series' score contributions per "
                         f"{design.time_unit} before the Newey-West "
                         "weighting (Driscoll and Kraay).")
        series = self.series_outcomes()
        if series:
            text += (f" Monthly proportions of {self.outcome_phrase(series)} are analysed as an interrupted time "
                     "series, to separate a step at the change from the trend before it.")
        elif not self.study.period.by_date:
            text += " The periods carry no dates, so the secular trend cannot be examined."
        if self.published():
            text += " The results are set beside the published values they correspond to."
        return text

    def measures(self) -> str:
        parts = []
        rules = list(self.study.eligibility)
        window = ("whose " + lower_first(self.column(self.study.period.column)) + " fell in either period"
                  if self.study.period.by_date else "of either period")
        text = f"Included were the {self.unit} {window}"
        text += (f"; excluded, in this order: {'; '.join(self.excluded(k) for k in rules)}." if rules else ".")
        parts.append(text)
        for role in ROLES:
            keys = self.roles[role]
            if keys:
                parts.append(f"{upper_first(role)} outcome{'s' if len(keys) > 1 else ''}:\n\n" +
                             "\n".join(f"- {self.outcome_definition(k)}" for k in keys))
        if self.study.covariates:
            parts.append("Unless an outcome declares its own set (the model formulas under Analysis), the "
                         "models adjust for: " + "; ".join(self.column(c) for c in self.study.covariates) + ".")
        else:
            parts.append("The models are not adjusted for covariates.")
        if self.cluster:
            text = (f"The {self.unit} are clustered by {self.cluster_words()}: models with a random intercept, or a "
                    f"within-cluster correlation, for {self.cluster_words()} allow for it.")
            if self.study.clusters.alternatives:
                text += (" As sensitivity analyses, the clustering unit is replaced by " +
                         join([self.cluster_words(c) for c in self.study.clusters.alternatives]) + ".")
            parts.append(text)
        else:
            parts.append("The study declares no clustering.")
        parts.append("Every raw table is validated against a machine-readable data dictionary before analysis; a "
                     "table that breaks it stops the analysis.")
        return "\n\n".join(parts)

    def outcome_definition(self, key: str) -> str:
        o = self.study.outcomes[key]
        words = [f"{TYPES[o.type]}, per {singular(self.outcome_unit(key))}"]
        if o.type == "binary" and o.event is not None:
            values = [str(v) for v in o.event.values or []]
            if o.event.above is not None:
                words.append("an event is a value above the threshold the study file declares")
            elif not any(typed(v) for v in values):
                words.append("event: " + " or ".join(markdown(v) for v in values))
        if o.type == "ordinal":
            words.append("levels " + " < ".join(markdown(level) for level in o.levels or []))
            if o.higher:
                words.append(f"later levels are {o.higher}")
        if o.type == "count":
            words.append(f"events per {self.per(key)}")
        if o.type == "continuous" and o.higher:
            words.append(f"higher is {o.higher}")
        if o.subgroup:
            group = self.study.subgroups[o.subgroup]
            words.append(f"in the {self.unit_of(group.table)} "
                         f"{self.declared(group.label, f'design.subgroup.{o.subgroup}')}")
        if o.population:
            words.append("in the rows where " + join([code(c) for c in o.population]))
        if o.missing == "as_event":
            words.append("a missing outcome counted as an event")
        elif o.missing == "as_no_event":
            words.append("a missing outcome counted as no event")
        if o.sensitivity_of:
            words.append(f"a sensitivity analysis of {lower_first(self.label(o.sensitivity_of))}")
        return f"**{self.label(key)}** ({'; '.join(words)})."

    def analysis(self) -> str:
        done = {step.analysis + ":" + o.type for key, o in self.study.outcomes.items()
                for step in plan(self.study, key)}
        sentences = []
        if "proportions:binary" in done:
            text = ("Proportions are given with Wilson intervals and compared with chi-square tests (with and "
                    "without continuity correction) and Fisher's exact test; the risk difference has Newcombe's "
                    "hybrid score interval [@newcombe1998]")
            if any(self.study.outcomes[k].does("nnt") for k in self.study.outcomes
                   if self.study.outcomes[k].type == "binary"):
                text += ", and the number needed to treat has the interval derived from it [@altman1998]"
            sentences.append(text + ".")
        mixed = [words for kind, words in (("binary", "logistic"), ("count", "Poisson")) if f"mixed:{kind}" in done]
        if mixed:
            sentences.append(f"Mixed-effects {' and '.join(mixed)} models have a random intercept for the cluster "
                             "and are fitted by maximum likelihood with the Laplace approximation, lme4's criterion "
                             "[@bates2015]; their " + ("odds" if "logistic" in mixed else "rate") +
                             " ratios are conditional on the cluster.")
        if "logistic:binary" in done:
            sentences.append("Hosmer-Lemeshow and Nagelkerke's R-squared [@nagelkerke1991] describe the same "
                             "covariates in an ordinary logistic regression.")
        if "gee:binary" in done:
            sentences.append("GEE with an exchangeable correlation within the cluster gives population-averaged odds "
                             "ratios [@liang1986], closer to one than the conditional ones by construction.")
        if {"medians:continuous", "rank_tests:continuous", "means:continuous", "mixed:continuous"} & done:
            sentences.append("Continuous outcomes are summarised by medians and quartiles and compared with the "
                             "Mann-Whitney U test and the Hodges-Lehmann shift, by Welch's difference in means, and "
                             "by a linear mixed model, as each declares.")
        if {"trend:ordinal", "proportional_odds:ordinal"} & done:
            sentences.append("Ordered outcomes are compared with a chi-square test for trend and a proportional-odds "
                             "model (the cumulative odds ratio of a higher level).")
        if {"poisson:count", "negative_binomial:count"} & done:
            sentences.append("Counts are compared as rates, by Poisson and negative binomial regression (rate "
                             "ratios), with the exposure as an offset where one is declared.")
        if self.series_outcomes():
            sentences.append("Monthly proportions are analysed by segmented regression with Newey-West standard "
                             "errors [@wagner2002; @newey1987] and shown on p-charts with 3-sigma limits "
                             "[@benneyan2003].")
        if leave_one_out_outcomes(self.study) and self.cluster:
            sentences.append(f"The mixed models of {self.outcome_phrase(leave_one_out_outcomes(self.study))} are "
                             f"refitted with one {singular(self.cluster_words())} left out at a time.")
        if self.has_table("table1"):
            sentences.append("Balance between the periods is described by standardised mean differences "
                             "[@austin2009].")
        listing = ("Each outcome's analyses, as the study file declares them, with each model's formula (`y` is the "
                   "outcome, `after` marks the after period) and the cluster of its random intercept or working "
                   "correlation:")
        return "\n\n".join([" ".join(sentences), listing, self.analysis_list()])


    def step_words(self, key: str, analysis: str, cluster: str) -> str:
        o = self.study.outcomes[key]
        if analysis == "mixed":
            return MIXED_STEPS[o.type]
        if analysis == "alternative_clusters":
            return "Mixed-effects logistic regression with another cluster (sensitivity analysis)"
        if analysis == "proportions" and o.does("nnt"):
            return STEPS[analysis] + "; number needed to treat"
        if analysis == "medians":
            quartiles = " (SPSS's quartiles)" if o.quartiles == 6 else " (R's default quartiles)"
            return STEPS[analysis] + quartiles
        return STEPS.get(analysis, analysis.replace("_", " "))

    def analysis_list(self) -> str:
        lines = []
        for role in ROLES:
            for key in self.roles[role]:
                lines.append(f"- **{self.label(key)}** ({role})")
                for step in plan(self.study, key):
                    text = self.step_words(key, step.analysis, step.cluster)
                    if step.model:
                        text += f": {code(step.model)}"
                    if step.cluster:
                        text += (f", correlation within {self.cluster_words(step.cluster)}" if step.analysis == "gee"
                                 else f", random intercept for {self.cluster_words(step.cluster)}")
                    lines.append(f"    - {text}")
        return "\n".join(lines)

    def reproducibility(self) -> str:
        return ("Each statistical function is tested against R on the same data, with stated tolerances; the R "
                "scripts and their outputs are kept with the tests. The notebooks are executed by papermill from a "
                "pinned environment; every reported number is written to a results ledger with its provenance, and "
                "this text, its tables and figures are built from that ledger. A reviewer rebuilds everything from "
                "the raw data with one command and receives a report of what reproduced. The statistical models "
                "use statsmodels [@seabold2010]. The report follows the SQUIRE 2.0 guidelines [@ogrinc2016]; the "
                "checklist, built with this text, maps each item to the section that answers it." +
                (" For its routinely collected data it adds the RECORD items (below)."
                 if self.study.design.routinely_collected else ""))

    def record(self) -> str:
        """The RECORD items for routinely collected data, each with where the text answers it or a prompt."""
        where = {"measures": "Measures", "participants": "Participants (the flow table)",
                 "limitations": "Limitations", "reproducibility": "Data, code and reproducibility"}
        rows = "\n".join(f"| RECORD {item} | {text} | {where[section] if section else '*For the authors*'} |"
                          for item, text, section in RECORD_ITEMS)
        return ("The data were collected routinely, not for this study, so the report adds the RECORD items "
                "(REporting of studies Conducted using Observational Routinely-collected health Data; Benchimol EI "
                "et al., PLoS Med 2015;12:e1001885) to SQUIRE's. The codes and rules that select the "
                f"{self.unit} and define the outcomes are the study file's (`{markdown(self.study.file.name)}`), "
                "published with the code; every raw table is validated against its data dictionary before "
                "analysis.\n\n| RECORD item | what it asks | answered in |\n|---|---|---|\n" + rows + "\n\n" +
                prompt("the type and source of the routinely collected data, the region and years they cover, who "
                       "had access to the database, any validation of the codes used, and any linkage between "
                       "databases (the items marked for the authors above)."))

    # -- results --------------------------------------------------------------------------------

    def results(self) -> str:
        parts = ["# Results {#results}", "## Participants {#participants}", self.participants()]
        for role in ROLES:
            if self.roles[role]:
                parts += [f"## {upper_first(role)} outcomes {{#{role}-results}}", self.role_results(role)]
        robustness = self.robustness()
        if robustness:
            parts += ["## Time series and robustness {#robustness-results}", robustness]
        published = self.published_results()
        if published:
            parts += ["## Published versus reproduced {#reproduction-results}", published]
        parts += ["## Missing data {#missing-data}", self.missing_data()]
        return "\n\n".join(parts)

    def has_table(self, name: str) -> bool:
        path = tables.tables_dir(self.study) / f"{name}.csv"
        return path.is_file() and len(pd.read_csv(path)) > 0

    def participants(self) -> str:
        parts = []
        if self.has("flow.screened.all", "int") and self.flow_sentence():
            text = (f"Of {{{{ flow.screened.all | int }}}} {self.unit} in the raw data, "
                    "{{ flow.included.before | int }} were included before and {{ flow.included.after | int }} after")
            text += " ({{ ref: flow }})." if self.has_table("flow") else "."
            stages = [("outside_periods", "outside both periods"),
                      *((k, self.excluded(k)) for k in self.study.eligibility)]
            excluded = [f"{words} ({{{{ flow.{stage}.all | int }}}})" for stage, words in stages
                        if self.has(f"flow.{stage}.all", "int") and self.value(f"flow.{stage}.all")]
            if excluded:
                text += f" Excluded: {'; '.join(excluded)}."
            parts.append(text)
        elif self.flow_sentence():
            parts.append(self.flow_sentence())
        if self.has_table("flow"):
            parts.append(f"{{{{ table: flow | Flow of the {self.unit} through the study, by period. }}}}")
        if self.has_table("table1") and self.has("cohort.smd.largest"):
            text = ("The largest standardised mean difference between the periods was "
                    "{{ cohort.smd.largest | est }} ({{ ref: table1 }})")
            imbalanced = [name for name, entry in self.entries.items()
                          if name.startswith("cohort.smd.") and name != "cohort.smd.largest"
                          and entry.estimate is not None and abs(entry.estimate) > SMD_LIMIT]
            if imbalanced:
                text += ("; differences above the usual threshold for imbalance [@austin2009] were in " +
                         join([f"{self.column(n.rsplit('.', 1)[-1])} ({{{{ {n} | est }}}})"
                                for n in imbalanced]))
            parts.append(text + ".")
            parts.append(f"{{{{ table: table1 | Characteristics of the {self.unit} by period, with standardised mean "
                         "differences (after vs before). }}")
        return "\n\n".join(parts) or f"The flow of the {self.unit} was not recorded in the ledger."

    def role_results(self, role: str) -> str:
        keys = self.roles[role]
        refs = [f"{{{{ ref: {f.name} }}}}" for f in self.figures
                if f.kind not in SERIES_FIGURES and self.figure_role(f) == role]
        parts = [f"{{{{ ref: {role}_results }}}} gives each {role} outcome by period, and its comparisons of after "
                 "with before" + (f"; see also {join(refs)}." if refs else ".")]
        parts += [s for s in (self.headline(k) for k in keys) if s]
        parts += [s for s in (self.controlled(k) for k in keys) if s]
        missing = [k for k in keys if any(self.not_estimated(n) for n in self.entries if n.startswith(k + "."))]
        if missing:
            parts.append(f"Some analyses of {self.outcome_phrase(missing)} could not be estimated; the Limitations "
                         "say which, and why.")
        parts += [self.results_table(keys),
                  f"{{{{ caption: {role}_results | {upper_first(role)} outcomes by period, and after compared with "
                  f"before (95% confidence intervals). {self.p_note(keys)} }}}}"]
        for figure in self.figures:
            if figure.kind not in SERIES_FIGURES and self.figure_role(figure) == role:
                parts.append(f"{{{{ figure: {figure.name} | {self.caption(figure)} }}}}")
        return "\n\n".join(parts)

    def controlled(self, key: str) -> str:
        """A controlled before-after outcome: each group's change and the difference in differences
        (analysis/analyses/controlled.py), when the ledger has them."""
        did = f"{key}.did"
        if self.study.outcomes[key].type in ("count", "continuous"):
            return self.controlled_scale(key)
        if not self.has(f"{did}.difference_in_differences", "pp_ci"):
            return ""
        text = (f"{self.label(key)}, controlled before-after: in the intervention group the proportion went from "
                f"{{{{ {did}.proportion_intervention_before | pct }}}} to "
                f"{{{{ {did}.proportion_intervention_after | pct }}}} "
                f"(risk difference {{{{ {did}.risk_difference_intervention | pp_ci }}}}), in the control group from "
                f"{{{{ {did}.proportion_control_before | pct }}}} to {{{{ {did}.proportion_control_after | pct }}}} "
                f"({{{{ {did}.risk_difference_control | pp_ci }}}}): a difference in differences of "
                f"{{{{ {did}.difference_in_differences | pp_ci }}}} (Wald interval; "
                f"{{{{ {did}.difference_in_differences_mover | pp_ci }}}} by MOVER from the Wilson intervals).")
        ratios = [(f"{did}.ratio_of_odds_ratios_mixed", "with a random intercept for the cluster"),
                  (f"{did}.ratio_of_odds_ratios_cluster_robust", "with cluster-robust standard errors"),
                  (f"{did}.ratio_of_odds_ratios_wild_bootstrap", "by the wild cluster bootstrap")]
        shown = [f"{{{{ {name} | est_ci }}}} {words}" for name, words in ratios if self.has(name, "est_ci")]
        if shown:
            text += (" The adjusted ratio of odds ratios (intervention vs control, after vs before) was "
                     + "; ".join(shown))
            boot = f"{did}.ratio_of_odds_ratios_wild_bootstrap"
            text += (f" (bootstrap {{{{ {boot} | p }}}})." if self.has(boot, "p") else ".")
        return text

    def controlled_scale(self, key: str) -> str:
        """A controlled before-after count (rates, ratio of rate ratios) or continuous outcome (means, difference
        in differences of means)."""
        did, count = f"{key}.did", self.study.outcomes[key].type == "count"
        cell, contrast = ("rate", "ratio_of_rate_ratios") if count else ("mean", "difference_in_differences")
        if not all(self.has(f"{did}.{cell}_{g}_{p}") for g in ("intervention", "control") for p in ("before", "after")):
            return ""
        text = (f"{self.label(key)}, controlled before-after: in the intervention group the {cell} went from "
                f"{{{{ {did}.{cell}_intervention_before | est }}}} to {{{{ {did}.{cell}_intervention_after | est }}}}, "
                f"in the control group from {{{{ {did}.{cell}_control_before | est }}}} to "
                f"{{{{ {did}.{cell}_control_after | est }}}}.")
        boot = f"{did}.{contrast}_wild_bootstrap"
        models = [(f"{did}.{contrast}_mixed", "with a random intercept for the cluster"),
                  (f"{did}.{contrast}_cluster_robust", "with cluster-robust standard errors"),
                  (boot, "by the wild cluster bootstrap")]
        shown = [f"{{{{ {name} | est_ci }}}} {words}" for name, words in models if self.has(name, "est_ci")]
        if shown:
            what = ("ratio of rate ratios (intervention vs control, after vs before)" if count else
                    "difference in differences of means (intervention vs control, after minus before)")
            text += (f" The adjusted {what} was " + "; ".join(shown)
                     + (f" (bootstrap {{{{ {boot} | p }}}})." if self.has(boot, "p") else "."))
        return text

    def p_note(self, keys: list[str]) -> str:
        types = {self.study.outcomes[k].type for k in keys}
        tests = {"binary": "Fisher's exact test for the risk difference", "continuous": "the Mann-Whitney U test "
                 "for the Hodges-Lehmann shift", "ordinal": "the chi-square test for trend"}
        note = join([tests[t] for t in ("binary", "continuous", "ordinal") if t in types])
        return f"p: {note}; for a model, its Wald test." if note else "p: the model's Wald test."

    def figure_role(self, figure: Figure) -> str:
        roles = [role for role in ROLES if any(k in self.roles[role] for k in figure.keys)]
        return roles[0] if roles else self.headline_role

    def results_table(self, keys: list[str]) -> str:
        lines = [f"| Outcome | {self.before} | {self.after} | After vs before | Estimate (95% CI) | p |",
                 "|" + "|".join("-" * width for width in (16, 14, 14, 17, 20, 8)) + "|"]  # relative widths
        for key in keys:
            before, after, rows = self.outcome_rows(key)
            rows = rows or [("", "", "")]
            for index, (measure, estimate, p) in enumerate(rows):
                first = index == 0
                cells = [self.label(key) if first else "", before if first else "", after if first else "",
                         measure, estimate, p]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def outcome_rows(self, key: str) -> tuple[str, str, list[tuple[str, str, str]]]:
        """The cells before and after, and a row (measure, estimate, p) per comparison in the ledger."""
        o, k = self.study.outcomes[key], key
        specs: list[tuple[str, str, str, str | None]] = []  # measure, entry, style, entry whose p is shown
        if o.type == "binary":
            before, after = (self.entry_cell(f"{k}.proportion_{period}", "frac") for period in ("before", "after"))
            adjusted = self.adjusted(key)
            specs = [("Risk difference", f"{k}.risk_difference", "pct_ci", f"{k}.fisher"),
                     ("Odds ratio, unadjusted", f"{k}.odds_ratio_unadjusted", "est_ci", None),
                     ("Odds ratio, adjusted, mixed-effects" if adjusted == "adjusted" else "Odds ratio, mixed-effects",
                      f"{k}.odds_ratio_{adjusted}", "est_ci", f"{k}.odds_ratio_{adjusted}"),
                     ("Odds ratio, GEE (population-averaged)", f"{k}.odds_ratio_gee", "est_ci", f"{k}.odds_ratio_gee"),
                     ("Number needed to treat", f"{k}.nnt", "nnt", None),
                     ("Number of events, rate ratio", f"{k}.count_rate_ratio", "est_ci", f"{k}.count_rate_ratio")]
        elif o.type == "continuous":
            before, after = (self.median_cell(key, period) for period in ("before", "after"))
            specs = [(name, f"{k}.{suffix}", f"est_ci:{self.digits(f'{k}.{suffix}')}", p)
                     for name, suffix, p in (("Hodges-Lehmann shift", "hodges_lehmann", f"{k}.mann_whitney"),
                                             ("Difference in means (Welch)", "mean_difference", f"{k}.mean_difference"),
                                             ("Difference, linear mixed model", "mixed_difference",
                                              f"{k}.mixed_difference"))]
        elif o.type == "ordinal":
            top = (o.levels or [""])[-1]
            before, after = (self.level_cell(key, top, period) for period in ("before", "after"))
            specs = [("Cumulative odds ratio of a higher level", f"{k}.proportional_odds", "est_ci", f"{k}.trend_test")]
        else:
            before, after = (self.rate_cell(key, period) for period in ("before", "after"))
            specs = [(name, f"{k}.{suffix}", "est_ci", f"{k}.{suffix}")
                     for name, suffix in (("Rate ratio, Poisson", "rate_ratio_poisson"),
                                          ("Rate ratio, negative binomial", "rate_ratio_negative_binomial"),
                                          ("Rate ratio, mixed-effects Poisson", "rate_ratio_mixed"))]
        rows = []
        for measure, name, style, p in specs:
            if self.shows(name, style) is None:
                continue
            p_cell = self.entry_cell(p, "p") if p and self.has(p, "p") else ""
            rows.append((measure, placeholder(name, style), p_cell))
        if o.type == "ordinal" and not rows and self.has(f"{k}.trend_test", "p"):
            rows.append(("Test for trend", "", placeholder(f"{k}.trend_test", "p")))
        return before, after, rows

    def median_cell(self, key: str, period: str) -> str:
        names = [f"{key}.median_{period}", f"{key}.quartile_1_{period}", f"{key}.quartile_3_{period}"]
        if all(self.has(n) for n in names):
            d = self.summary_digits(key)
            return (f"median {{{{ {names[0]} | est:{d} }}}} (IQR {{{{ {names[1]} | est:{d} }}}} to "
                    f"{{{{ {names[2]} | est:{d} }}}})")
        return self.entry_cell(names[0], "est")

    def level_cell(self, key: str, level: str, period: str) -> str:
        name = f"{key}.{level}_{period}"
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or not self.has(name, "int") or not self.has(name, "n"):
            return ""
        return f"{markdown(level)}: {{{{ {name} | int }}}} of {{{{ {name} | n }}}}"

    def rate_cell(self, key: str, period: str) -> str:
        rate, events = f"{key}.rate_{period}", f"{key}.events_{period}"
        if not self.has(rate):
            return self.entry_cell(rate, "est")
        d = self.digits(f"{key}.rate_before", f"{key}.rate_after")
        text = f"{{{{ {rate} | est:{d} }}}} per {self.per(key)}"
        return (f"{{{{ {events} | int }}}} events, " + text) if self.has(events, "int") else text

    def caption(self, figure: Figure) -> str:
        labels = [self.short(k) for k in figure.keys]
        units = join(list(dict.fromkeys(self.outcome_unit(k) for k in figure.keys)))
        if figure.kind == "proportions":
            return (f"Proportion of {units} with each outcome ({join(labels)}), before and after, with 95% Wilson "
                    "intervals.")
        if figure.kind == "forest":
            models = {self.adjusted(k) for k in figure.keys}
            model = "adjusted mixed-effects" if models == {"adjusted"} else "mixed-effects"
            text = (f"Odds ratios, after vs before, on a log scale ({join(labels)}): unadjusted, {model} "
                    "(conditional) and GEE (population-averaged)")
            if any(o.sensitivity_of in figure.keys and o.does("mixed") for o in self.study.outcomes.values()):
                text += ", and the sensitivity analyses"
            if self.published():
                text += ", with the published values beside"
            return text + "."
        if figure.kind == "levels":
            (key,) = figure.keys
            levels = " < ".join(markdown(level) for level in self.study.outcomes[key].levels or [])
            return f"{self.label(key)}: {units} at each level ({levels}), by period."
        if figure.kind == "values":
            group = self.study.outcomes[figure.keys[0]].subgroup
            where = (f", in the {self.unit_of(self.study.subgroups[group].table)} "
                     f"{self.declared(self.study.subgroups[group].label, f'design.subgroup.{group}')}" if group else "")
            return f"{join([self.label(k) for k in figure.keys])}, by period{where}; each point is one of the {units}."
        if figure.kind == "its":
            if self.study.design.group is not None:
                return (f"{join([self.label(k) for k in figure.keys])} by {self.study.design.time_unit}, with the "
                        "control series "
                        f"({markdown(str(self.study.design.group.control))}, grey): observed, the segmented "
                        "regression's fit before and after the change, and the intervention series' counterfactual "
                        "(its trend before the change with the control series' change, dashed) from the change on.")
            return (f"{join([self.label(k) for k in figure.keys])} by {self.study.design.time_unit}: observed, the "
                    "segmented regression's fit before and after the change, and its counterfactual (the trend "
                    "before the change continued, dashed) from the change on.")
        if figure.kind == "event_study":
            unit = self.study.design.time_unit
            kinds = {self.study.outcomes[k].type for k in self.trend_outcomes()}
            contrast = join([words for kind, words in (("binary", "the ratio of odds ratios"),
                                                       ("count", "the ratio of rate ratios"),
                                                       ("continuous", "the difference in differences of means"))
                             if kind in kinds])
            reference = join(["one (ratios, on a log scale)" if kinds - {"continuous"} else "",
                              "zero (differences)" if "continuous" in kinds else ""])
            return (f"Event study of {self.outcome_phrase(self.trend_outcomes())}: {contrast}, intervention vs "
                    f"control, at each {unit} relative to the last {unit} before the change (fixed, no interval), "
                    f"with 95% cluster-robust intervals; points before the change near {reference} are what parallel "
                    "trends look like.")
        if figure.kind == "monthly":
            series = self.series_outcomes()
            panels = (join([f"{lower_first(self.short(k))} ({chr(ord('A') + i)})" for i, k in enumerate(series)])
                      if len(series) > 1 else lower_first(self.short(series[0])) if series else "")
            return (f"Monthly proportions of {panels}, with the segmented regression fit and the p-chart's centre "
                    "line and 3-sigma limits; the dashed line marks the start of the after period.")
        (key,) = figure.keys
        return f"{self.label(key)} by {self.cluster_words()}, before and after, with 95% Wilson intervals."

    def series_outcomes(self) -> list[str]:
        return time_series_outcomes(self.study) if self.has_series else []

    def counted_adjective(self) -> str:
        """How the counted series' time points are named: monthly or weekly (`design.time_unit`)."""
        return "weekly" if self.study.design.time_unit == "week" else "monthly"

    def counted_series(self) -> list[str]:
        """The outcomes notebook 05 analysed as an interrupted time series of monthly counts (its_counts)."""
        return [k for k in self.study.outcomes if f"its_counts.{k}.events_averted" in self.entries]

    def trend_outcomes(self) -> list[str]:
        """A controlled before-after study's outcomes with a pre-period trend comparison (controlled.trends)."""
        return [k for k in self.study.outcomes if self.has(f"{k}.did.parallel_trends_wald", "p")
                or self.has(f"{k}.did.pre_trend_ratio", "est_ci") or self.has(f"{k}.did.pre_trend_difference",
                                                                             "est_ci")]

    def trends(self, key: str) -> str:
        did, unit = f"{key}.did", self.study.design.time_unit
        text = f"{self.label(key)}: before the change, "
        if self.has(f"{did}.parallel_trends_wald", "p"):
            text += (f"the joint test of the groups' {unit}ly differences gave {{{{ {did}.parallel_trends_wald | p }}}}"
                     f" and ")
        kind = self.study.outcomes[key].type
        slope = (f"the difference of the groups' slopes per {unit} was {{{{ {did}.pre_trend_difference | est_ci }}}}"
                 if kind == "continuous" else
                 f"the ratio of the groups' {'rate' if kind == 'count' else 'odds'} ratios per {unit} was "
                 f"{{{{ {did}.pre_trend_ratio | est_ci }}}}")
        text += (f"{slope}. "
                 "Not finding a difference does not show that the trends were parallel: with few time points such "
                 "tests have little power.")
        return text

    def controlled_series(self, key: str) -> str:
        name = f"its_counts.{key}"
        if not self.has(f"{name}.level_change_difference", "est_ci"):
            return ""
        ratio = "an odds ratio" if family(self.study, key) == "binomial" else "a rate ratio"
        unit = self.study.design.time_unit
        return (f"{self.label(key)}, against the control series: the control series itself changed by {ratio} of "
                f"{{{{ {name}.level_change | est_ci }}}} in level and {{{{ {name}.slope_change | est_ci:3 }}}} per "
                f"{unit} in slope at the change; the intervention series' changes relative to it were "
                f"{{{{ {name}.level_change_difference | est_ci }}}} in level and "
                f"{{{{ {name}.slope_change_difference | est_ci:3 }}}} per {unit} in slope, and their difference "
                f"in trend before the change {{{{ {name}.group_pre_trend | est_ci:3 }}}} per {unit}.")

    def robustness(self) -> str:
        parts = []
        skipped = skipped_time_series(self.study)
        if skipped and not typed(skipped) and any(o.type == "binary" for o in self.study.outcomes.values()):
            parts.append(skipped)
        for key in self.series_outcomes():
            name = f"its.{key}"
            label = self.label(key)
            if self.has(f"{name}.level_change", "pp_ci"):
                text = (f"{label}: beyond the monthly trend before the change "
                        f"({{{{ {name}.pre_trend | pp_ci:2 }}}} per month), the proportion stepped by "
                        f"{{{{ {name}.level_change | pp_ci }}}} at the change")
                if self.has(f"{name}.slope_change", "pp_ci"):
                    text += f", and its trend changed by {{{{ {name}.slope_change | pp_ci:2 }}}} per month"
                months = [f"pchart.{key}.months_outside_{p}" for p in ("before", "after")]
                if all(self.has(m, "int") for m in months):
                    text += (f". On the p-chart, {{{{ {months[0]} | int }}}} months before and "
                             f"{{{{ {months[1]} | int }}}} after lay outside the limits")
                parts.append(text + ".")
            elif f"{name}.level_change" in self.entries:
                parts.append(f"{label}: the interrupted time series was not estimated.")
        for key in self.study.outcomes:
            averted = f"its_counts.{key}.events_averted"
            if self.has(averted, "est_ci"):
                beyond = ("" if self.study.design.group is None else
                          f", beyond the control series' change over the same {self.study.design.time_unit}s")
                parts.append(f"{self.label(key)}: the interrupted time series of {self.counted_adjective()} counts "
                             "gives "
                             f"{{{{ {averted} | est_ci:0 }}}} events averted after the change{beyond} (the "
                             "counterfactual minus the fitted events; a negative number is events added).")
            controlled = self.controlled_series(key)
            if controlled:
                parts.append(controlled)
        parts += [self.trends(k) for k in self.trend_outcomes()]
        figures = [f for f in self.figures if f.kind in SERIES_FIGURES]
        if figures:
            shown = "Weekly" if figures[0].kind == "its" and self.study.design.time_unit == "week" else "Monthly"
            parts.insert(0, f"{shown} proportions show the change against the background trend "
                            f"({{{{ ref: {figures[0].name} }}}}).")
        cluster = self.cluster
        for key in leave_one_out_outcomes(self.study) if cluster else []:
            low, high = (f"{key}.leave_one_{cluster}_out_{w}" for w in ("smallest", "largest"))
            if self.has(low) and self.has(high):
                parts.append(f"{self.label(key)}: with one {singular(self.cluster_words())} left out at a time, the "
                             f"{self.model_words(key)} ranged from {{{{ {low} | est }}}} to {{{{ {high} | est }}}}.")
            elif low in self.entries:
                parts.append(f"{self.label(key)}: leaving one {singular(self.cluster_words())} out at a time was not "
                             "estimated.")
        for key in self.study.outcomes:
            others = [o for o in self.study.clusters.alternatives
                      if self.has(f"{key}.odds_ratio_{self.adjusted(key)}_{o}", "est_ci")]
            if others:
                values = [f"{{{{ {key}.odds_ratio_{self.adjusted(key)}_{o} | est_ci }}}}" for o in others]
                parts.append(f"{self.label(key)}: with a random intercept for "
                             f"{' or '.join(self.cluster_words(o) for o in others)} instead of {self.cluster_words()}, "
                             f"the {self.model_words(key)} was {join(values)}" +
                             (", respectively." if len(others) > 1 else "."))
        parts += [f"{{{{ figure: {f.name} | {self.caption(f)} }}}}" for f in figures]
        return "\n\n".join(parts)

    def published(self) -> list[str]:
        """The ledger entries with a published value, when the study declares published values."""
        if self.study.published is None:
            return []
        return [name for name, entry in self.entries.items() if entry.published is not None]

    def published_results(self) -> str:
        names = self.published()
        if not names:
            return ""
        parts = []
        if self.has("published_check.agreeing", "int") and self.has("published_check.checked", "int"):
            parts.append("From the published counts alone, {{ published_check.agreeing | int }} of "
                         "{{ published_check.checked | int }} published statistics reproduce to the digits printed.")
        rows = []
        order = {self.label(key): index for index, key in enumerate(self.study.outcomes)}
        for name in sorted(names, key=lambda n: (order.get(self.subject(n), len(order)), n)):
            entry, what = self.entries[name], self.describe(name)
            if what is None:
                continue
            if entry.published.estimate is not None:
                whole = all(v is None or float(v).is_integer()
                            for v in (entry.estimate, entry.published.estimate, entry.conf_low, entry.conf_high))
                ours = "est_ci" if self.shows(name, "est_ci") not in (None, NOT_ESTIMATED) else "est"
                ours, theirs = ("int", "pub:0") if whole and ours == "est" else (ours, "pub")
                if name.endswith(".nnt"):
                    ours, theirs = "nnt", "pub:0"
                if self.shows(name, ours) is None:
                    continue
                rows.append((what, placeholder(name, ours), placeholder(name, theirs)))
            elif entry.published.p_value is not None and self.shows(name, "p") is not None:
                rows.append((what + " (p)", placeholder(name, "p"), placeholder(name, "pub_p")))
        if rows:
            parts.append("Each published value is beside this study's own ({{ ref: published }}).")
            parts.append("\n".join(["| Quantity | This study | Published |", "|---|---|---|",
                                    *(f"| {a} | {b} | {c} |" for a, b, c in rows)]))
            parts.append("{{ caption: published | This study's results beside the published values they correspond "
                         "to. }}")
        return "\n\n".join(parts)

    def missing_data(self) -> str:
        parts = []
        for outcome in self.study.outcomes.values():
            flow = outcome.flow
            if flow and outcome.table == self.study.main_table and outcome.sensitivity_of is None:
                names = [f"flow.missing_{flow}.{p}" for p in ("before", "after")]
                if all(self.has(n, "int") for n in names):
                    parts.append(f"A {markdown(flow.replace('_', ' '))} was missing for {{{{ {names[0]} | int }}}} "
                                 f"{self.unit} before and {{{{ {names[1]} | int }}}} after.")
        worst = [self.label(k) for k, o in self.study.outcomes.items() if o.missing != "complete_case"]
        if worst:
            parts.append(f"A missing outcome is counted as an event, or as no event, in {join(worst)}: the "
                         "sensitivity analyses of the outcomes they follow.")
        parts.append(f"{'Otherwise each' if parts else 'Each'} analysis uses the {self.unit} with a recorded outcome "
                     "(complete cases); the "
                     "numbers analysed are those the results tables give. The data dictionary states which values "
                     "may be missing, and validation stops on any other missing value.")
        return "\n\n".join(parts)

    # -- discussion -----------------------------------------------------------------------------

    def discussion(self) -> str:
        keys = self.main[self.headline_role]
        found = [b for b in (self.brief(k) for k in keys) if b]
        summary = [f"This report compares {self.outcome_phrase(keys)} between {self.before} and {self.after}" +
                   (f" ({{{{ ref: {self.headline_role}_results }}}})" if self.roles[self.headline_role] else "") +
                   (f": {'; '.join(found)}." if found else ".")]
        summary.append("Its strength is that every number above is rebuilt from the raw data by one command, with "
                       "statistical functions checked against R.")
        interpretation = ["A difference between the periods is an association: the design compares two periods, not "
                          "two groups treated at the same time." if self.study.design.type == "before_after" else
                          "A difference between the periods is an association, however strong the design."]
        both = [k for k in self.study.outcomes if self.has(f"{k}.odds_ratio_gee", "est_ci")
                and self.has(f"{k}.odds_ratio_{self.adjusted(k)}", "est_ci")]
        if both:
            interpretation.append(f"The odds ratios of the mixed-effects models are conditional on the "
                                  f"{singular(self.cluster_words())}, and those of GEE average over them; they answer "
                                  "different questions, and a report should say which it gives.")
        parts = ["# Discussion {#discussion}", "## Summary {#summary}", " ".join(summary),
                 "## Interpretation {#interpretation}", " ".join(interpretation),
                 prompt("how the results compare with other studies, their impact on people and systems, why "
                        "they differ from what was expected, and the costs."),
                 "## Limitations {#limitations}", self.limitations(),
                 "## Conclusions {#conclusions}",
                 ("An uncontrolled before-after comparison describes how the outcomes differed between the periods; "
                  "a controlled design, or a time series with a control series, would be needed to attribute a "
                  "difference to the change." if self.study.design.type == "before_after" else
                  "The interrupted time series sets the change against the trend before it; without a control series "
                  "a change elsewhere at the same time could still explain it, and the design's remaining limits are "
                  "in the Limitations." if self.study.design.group is None else
                  "The control group's change over the same time is taken off the intervention group's; the design's "
                  "remaining limits are in the Limitations.")
                 + " Any site can rerun the same analyses on its own data by writing one study file.",
                 prompt("the usefulness of the work, its sustainability, its potential for spread, and the next "
                        "steps.")]
        return "\n\n".join(parts)

    def limitations(self) -> str:
        parts = []
        if self.study.synthetic:
            parts.append("The data are synthetic: the results show what the analyses do, not what happened to real "
                         f"{self.unit}.")
        checks = self.design_checks()
        if checks:  # the criteria of Cochrane EPOC the design does not meet, in the ledger's words
            text = " ".join(f"{{{{ warning: {name} }}}}" for name in checks)
        elif self.study.design.type == "before_after":
            text = ("An uncontrolled before-after design cannot separate the change between the periods from secular "
                    "trends, other changes at the same time, or regression to the mean [@eccles2003].")
        elif any(name.startswith("design_check.") for name in self.entries):
            text = "The design met Cochrane EPOC's minimum criteria for the designs its reviews include."
        else:
            text = "The design was not checked against Cochrane EPOC's minimum criteria."
        if self.counted_series() and self.study.design.group is not None:
            text += (" The control series takes off a change common to both series, not one that reached the "
                     "intervention series alone at the same time; and the estimate assumes that, without the change, "
                     "the intervention series would have kept its difference from the control series' course.")
        elif self.series_outcomes() or self.counted_series():
            text += (" The interrupted time series tests for a step at the change beyond the trend before it, but "
                     "without a control series it cannot exclude a change that happened at the same time.")
        elif not self.study.period.by_date:
            text += " With no dates in the data, the secular trend cannot even be examined."
        parts.append(text)
        if self.cluster:
            gee = any(o.does("gee") for o in self.study.outcomes.values() if o.type == "binary")
            parts.append(f"The {self.unit} are clustered by {self.cluster_words()}; with few clusters the "
                         "between-cluster variance" + (", and GEE's robust standard errors, are" if gee else " is") +
                         " imprecise.")
        else:
            parts.append(f"No clustering was declared: if the {self.unit} are grouped (in teams, wards or sites), the "
                         "intervals are too narrow.")
        missing = self.warned(estimated=False)
        if missing:
            parts.append("Not estimated, with the reason the analysis recorded:\n\n" + "\n".join(missing))
        caveats = self.warned(estimated=True)
        if caveats:
            parts.append("The analyses recorded these warnings with their results:\n\n" + "\n".join(caveats))
        return "\n\n".join(parts)

    def design_checks(self) -> list[str]:
        """The design check's entries (analysis/analyses/design_check.py) whose criterion was not met."""
        return [name for name, entry in sorted(self.entries.items())
                if name.startswith("design_check.") and entry.warnings]

    def warned(self, estimated: bool) -> list[str]:
        """A bullet per distinct warning: the quantities it concerns, and the ledger's own words."""
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        order = {self.label(key): index for index, key in enumerate(self.study.outcomes)}
        for name, entry in sorted(self.entries.items(), key=lambda item: (order.get(self.subject(item[0]), -1),
                                                                           item[0])):
            if not entry.warnings or self.not_estimated(name) == estimated or name.startswith("design_check."):
                continue  # the design check has its own paragraph
            groups.setdefault((self.subject(name), tuple(entry.warnings)), []).append(name)
        bullets = []
        for (subject, _), names in groups.items():
            what = [w for w in dict.fromkeys(self.quantity(n) for n in names) if w]
            if not subject and not what:
                continue
            head = f"{subject}: {join(what[:4])}" if subject else join(what[:4])
            head += ", and others" if len(what) > 4 else ""
            bullets.append(f"- {upper_first(head)}. {{{{ warning: {names[0]} }}}}")
        return bullets

    def subject(self, name: str) -> str:
        """The outcome an entry is about, as its label ("" for entries about no outcome)."""
        parts = name.split(".")
        for start in (1, 0):  # its.<key>.x and pchart.<key>.x first, then <key>.x
            for end in range(len(parts) - 1, start, -1):
                key = ".".join(parts[start:end])
                if key in self.study.outcomes and (start == 0 or parts[0] in ("its", "pchart")):
                    return self.label(key)
        return ""


    def quantity(self, name: str) -> str:
        """What an entry measures, in words without digits."""
        suffix = name.rsplit(".", 1)[-1]
        if suffix in QUANTITIES:
            return QUANTITIES[suffix]
        for other in self.study.cluster_columns():
            if suffix.endswith(f"_{other}") and suffix.startswith("odds_ratio_"):
                return f"odds ratio with a random intercept for {self.cluster_words(other)}"
            if suffix.startswith(f"leave_one_{other}_out"):
                return f"odds ratio with one {singular(self.cluster_words(other))} left out"
        if name.startswith("pchart."):
            return "p-chart"
        description = self.declared(self.entries[name].description, "design")
        return "" if typed(description) else description

    def describe(self, name: str) -> str | None:
        """A published quantity in words: the outcome and what it measures, else the entry's description."""
        subject = self.subject(name)
        if subject and name.rsplit(".", 1)[-1] in QUANTITIES:
            return f"{subject}: {QUANTITIES[name.rsplit('.', 1)[-1]]}"
        description = self.declared(self.entries[name].description, "design")
        return None if typed(description) else description
