"""The seeded generator of SYNTHETIC patient-level data, built from published aggregates.

The real patient-level data of the reference study were never published. This generator makes a
synthetic cohort whose counts are exactly the published ones (patients, errors at admission and
discharge, discharge outcomes available, potential harm bands, the MAI subgroup, acceptance of
suggestions), whose medians and quartiles are the published ones, and whose mean MAI differences
round to the published digits, while the covariates relate to the outcomes the way one expects
(more medicines and comorbidity, more errors; longer stays, more discharge errors) and medical
teams differ (random intercepts on the logit scale).

Exact counts with covariate effects: each patient gets a logit score from covariates, team effect
and a mild secular trend; exactly k patients per period get the event, drawn without replacement
with probability proportional to their odds (Gumbel top-k: the k largest of score + Gumbel noise).

For the reference study, `analysis.analyses.calibration` also chooses how strongly covariates, teams
and missing outcomes relate to the errors, and refines single patients (the `refine` hook of
`generate`), so that the paper's adjusted odds ratios, Hosmer-Lemeshow p and Nagelkerke R² reproduce.

Every random draw comes from one `numpy.random.Generator` made from the explicit seed and passed
down; regenerating with the same seed and parameters writes byte-identical files. The generator's
name, version, seed and every parameter are written beside the data (`<name>.generator.json`).
Every assumption is written down in data_raw/synthetic/README.md.

    python -m analysis synthesize            # regenerate the two committed datasets
    python -m analysis synthesize --check    # regenerate into a temporary folder and compare
    python -m analysis synthesize --patients 1000000 --teams 200 --sites 25 --out /tmp/big
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import yaml
from pydantic import ValidationError

from analysis.config import Exclusion, Period, TableSource, read_yaml
from analysis.data import shapes
from analysis.data.dictionary import raw_tables
from analysis.data.manifest import GENERATOR_SUFFIX
from analysis.data.read import ISO_DATE
from analysis.data.validate import published_files
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative, resolve
from analysis.provenance import sha256_file

GENERATOR = "analysis.data.synthetic"
VERSION = "1.1.0"
HARM_BANDS = ("none", "minor", "moderate", "severe")
VAS_TENTHS = ((0, 0), (1, 29), (30, 70), (71, 100))  # harm score bands in tenths of a point
MAI_RANGE = 20  # largest change of a patient's summed MAI, either way
MAI_EXACT_LIMIT = 1000  # above this many patients per group, MAI values stretch a template this size
DAYS_PER_MONTH = 30.4375
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = "2000-01-01T00:00:00Z"

SPECIALTIES = ("Cardiology", "Respiratory medicine", "Gastroenterology", "Endocrinology",
               "Medicine for the elderly", "Nephrology", "Neurology", "General internal medicine")


@dataclass(frozen=True)
class Parameters:
    """Everything the generator needs besides the published targets and the study's periods.

    Counts left as None come from the published figures (scaled when the number of patients differs).
    """

    seed: int = 20140701
    patients_before: int | None = None
    patients_after: int | None = None
    # Not published: assumed denominators for the acceptance percentages (see the README).
    suggestions_before: int | None = None
    suggestions_after: int | None = None
    # Screened patients who are not eligible, to exercise exclusions (0 in the reference data).
    under_min_age: int = 0
    under_min_medicines: int = 0
    between_periods: int = 0
    sites: int = 1
    teams: int = 8
    wards: int = 6
    pharmacists: int = 5
    team_names: tuple[str, ...] = SPECIALTIES
    ward_names: tuple[str, ...] = ("St Anne's", "St Brigid's", "St Colman's", "St Declan's", "St Enda's",
                                   "St Fintan's")
    pharmacist_names: tuple[str, ...] = ("PH1", "PH2", "PH3", "PH4", "PH5")
    id_prefix: str = "P"
    team_sd: float = 0.6  # SD of team random intercepts, logit scale (acceptance; errors unless below)
    error_team_sd: float | None = None  # SD of team intercepts for the two errors (None: team_sd)
    discharge_team_sd: float | None = None  # for errors at discharge only (None: error_team_sd)
    site_sd: float = 0.3  # SD of site random intercepts, logit scale (multi-site data)
    home_ward_share: float = 0.75  # patients on their team's home ward; the rest are outliers
    female_share: float = 0.52
    trend_per_month: float = -0.03  # logit change per month within a period (errors), both periods
    admission_per_medicine: float = 0.15
    admission_per_charlson_point: float = 0.2
    admission_per_decade_of_age: float = 0.1
    discharge_per_medicine: float = 0.12
    discharge_per_charlson_point: float = 0.15
    discharge_per_log_day: float = 0.6  # per unit of log(length of stay)
    discharge_after_admission_error: float = 0.8
    # Multipliers of the covariate terms above, and how much more often an outcome goes unrecorded per
    # unit of the discharge covariate score: chosen by the reference study's calibration
    # (analysis/analyses/calibration.py) so that the paper's adjusted results reproduce.
    admission_strength: float = 1.0
    discharge_strength: float = 1.0
    missing_per_risk: float = 0.0
    after_log_stay_shift: float = 0.0  # stays after the change longer by this much on the log scale
    # Not published: assumed quartiles of the MAI change pre-admission -> admission.
    mai_admission_quartiles_before: tuple[float, float, float] = (0, 2, 5)
    mai_admission_quartiles_after: tuple[float, float, float] = (-2, 0, 1)
    # see shapes.fit_difference: shares the MAI's widening among values rather than making one outlier;
    # the reference's is smaller, so that the published intervals are reached to their printed digits
    mai_spread: float = 0.2


@dataclass(frozen=True)
class GroupTargets:
    """What one period must show. `harm`: none, minor, moderate, severe among patients with a
    discharge outcome; quartiles are (Q1, median, Q3)."""

    patients: int
    error_at_admission: int
    with_discharge_outcome: int
    harm: tuple[int, int, int, int]
    harm_vas_quartiles: tuple[float, float, float]
    aged_65_plus: int
    mai_change_discharge_quartiles: tuple[float, float, float]
    acceptance_pct: str  # as published, so that its digits are known ("98.0": one decimal)

    @property
    def error_at_discharge(self) -> int:
        return sum(self.harm[1:])


@dataclass(frozen=True)
class Difference:
    """A published mean difference (before minus after) with its 95% confidence limits."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Targets:
    before: GroupTargets
    after: GroupTargets
    mai_admission: Difference
    mai_discharge: Difference
    mai_published_n: tuple[int, int]  # the subgroup sizes the intervals were published for

    def scaled(self, patients_before: int, patients_after: int) -> Targets:
        return dataclasses.replace(self, before=_scale(self.before, patients_before),
                                   after=_scale(self.after, patients_after))


def _largest_remainder(weights, total: int) -> tuple[int, ...]:
    weights = np.asarray(weights, dtype=float)
    if total == 0 or weights.sum() == 0:
        return tuple(0 for _ in weights)
    shares = weights / weights.sum() * total
    counts = np.floor(shares).astype(int)
    order = np.argsort(-(shares - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return tuple(int(c) for c in counts)


def _scale(group: GroupTargets, n: int) -> GroupTargets:
    if n == group.patients:
        return group
    ratio = n / group.patients
    with_outcome = round(group.with_discharge_outcome * ratio)
    return dataclasses.replace(
        group, patients=n, error_at_admission=round(group.error_at_admission * ratio),
        with_discharge_outcome=with_outcome, harm=_largest_remainder(group.harm, with_outcome),
        aged_65_plus=round(group.aged_65_plus * ratio))


def read_targets(folder: Path) -> Targets:
    """The published counts, medians and differences the generator reproduces (single source)."""
    files, problems = published_files(folder)
    missing = {"primary", "harm", "reported"} - set(files)
    if problems or missing:
        raise StudyError(f"{relative(folder)}: the generator needs the primary, harm and reported tables "
                         f"(missing: {', '.join(sorted(missing)) or 'none'}); "
                         + "; ".join(p.describe() for p in problems))
    primary = pd.read_csv(files["primary"]).set_index("outcome")
    harm = pd.read_csv(files["harm"]).set_index("potential_harm_at_discharge")
    reported = pd.read_csv(files["reported"], dtype=str, keep_default_na=False)

    def row(quantity: str, group: str) -> pd.Series:
        found = reported[(reported["quantity"] == quantity) & (reported["group"] == group)]
        if len(found) != 1:
            raise StudyError(f"{relative(files['reported'])}: needs one row with quantity '{quantity}' and group "
                             f"'{group}' (found {len(found)})")
        return found.iloc[0]

    def quartiles(quantity: str, group: str) -> tuple[float, float, float]:
        r = row(quantity, group)
        return float(r["low"]), float(r["value"]), float(r["high"])

    groups = {}
    for group in ("standard", "team"):
        n = int(primary.at["error_at_admission", f"{group}_n"])
        with_outcome = int(primary.at["error_at_discharge", f"{group}_n"])
        bands = tuple(int(harm.at[band, f"{group}_n"]) for band in HARM_BANDS)
        events = int(primary.at["error_at_discharge", f"{group}_events"])
        if sum(bands) != with_outcome or sum(bands[1:]) != events:
            raise StudyError(f"{relative(files['harm'])}: the {group} harm bands ({bands}) do not add up to the "
                             f"primary table's error_at_discharge ({events} of {with_outcome})")
        groups[group] = GroupTargets(
            patients=n,
            error_at_admission=int(primary.at["error_at_admission", f"{group}_events"]),
            with_discharge_outcome=with_outcome,
            harm=bands,
            harm_vas_quartiles=quartiles("harm_vas_median", group),
            aged_65_plus=int(float(row("mai_patients_65_plus", group)["value"])),
            mai_change_discharge_quartiles=quartiles("mai_change_pre_admission_to_discharge", group),
            acceptance_pct=row("suggestion_acceptance_pct", group)["value"],
        )

    def difference(quantity: str) -> Difference:
        r = row(quantity, "team_vs_standard")
        return Difference(float(r["value"]), float(r["low"]), float(r["high"]))

    return Targets(groups["standard"], groups["team"],
                   difference("mai_mean_difference_pre_admission_to_admission"),
                   difference("mai_mean_difference_pre_admission_to_discharge"),
                   (groups["standard"].aged_65_plus, groups["team"].aged_65_plus))


# ---------------------------------------------------------------------------------------------
# Hospital structure: sites, teams, wards, pharmacists


def _names(base: tuple[str, ...], count: int) -> list[str]:
    return [base[i % len(base)] + ("" if i < len(base) else f" {i // len(base) + 1}") for i in range(count)]


@dataclass
class Structure:
    """Teams, wards and pharmacists, each in a site (unit j is in site j % sites)."""

    site_names: list[str]
    team_names: list[str]
    ward_names: list[str]
    pharmacist_names: list[str]
    team_site: np.ndarray
    ward_site: np.ndarray
    wards_in_site: np.ndarray
    team_home_ward: np.ndarray
    team_pharmacist: np.ndarray  # after: pharmacists attached to teams
    ward_pharmacist: np.ndarray  # before: pharmacists attached to wards


def _structure(p: Parameters) -> Structure:
    s = p.sites
    sites = [f"Site {i + 1:0{len(str(s))}d}" for i in range(s)]

    def local_names(base: tuple[str, ...], count: int) -> list[str]:
        per_site = [_names(base, math.ceil((count - site) / s)) for site in range(s)]
        names = [per_site[j % s][j // s] for j in range(count)]
        return names if s == 1 else [f"{sites[j % s]} {name}" for j, name in enumerate(names)]

    in_site = {unit: np.array([math.ceil((count - site) / s) for site in range(s)])
               for unit, count in (("ward", p.wards), ("pharmacist", p.pharmacists))}
    teams = np.arange(p.teams)
    wards = np.arange(p.wards)
    team_site, team_local = teams % s, teams // s
    ward_site, ward_local = wards % s, wards // s
    return Structure(
        site_names=sites,
        team_names=local_names(p.team_names, p.teams),
        ward_names=local_names(p.ward_names, p.wards),
        pharmacist_names=local_names(p.pharmacist_names, p.pharmacists),
        team_site=team_site,
        ward_site=ward_site,
        wards_in_site=in_site["ward"],
        team_home_ward=team_site + s * (team_local % in_site["ward"][team_site]),
        team_pharmacist=team_site + s * (team_local % in_site["pharmacist"][team_site]),
        ward_pharmacist=ward_site + s * (ward_local % in_site["pharmacist"][ward_site]),
    )


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass
class Generated:
    patients: pd.DataFrame  # dictionary columns and codes
    suggestions: pd.DataFrame
    targets: Targets
    achieved: dict = field(default_factory=dict)


def _check_parameters(p: Parameters, targets: Targets, eligibility: Eligibility) -> None:
    problems = []
    for name in ("sites", "teams", "wards", "pharmacists"):
        if getattr(p, name) < 1:
            problems.append(f"{name} must be at least 1")
    for name in ("teams", "wards", "pharmacists"):
        if getattr(p, name) < p.sites:
            problems.append(f"{name}={getattr(p, name)}: every one of the {p.sites} sites needs at least one")
    if p.under_min_age and eligibility.min_age < 1:
        problems.append("under_min_age needs the study's eligibility.min_age to be at least 1")
    if p.under_min_medicines and eligibility.min_medicines < 1:
        problems.append("under_min_medicines needs the study's eligibility.min_medicines to be at least 1")
    if eligibility.min_age >= 65:
        problems.append("the generator's cohort has patients under and over 65: eligibility.min_age must be below 65")
    for key in ("before", "after"):
        g: GroupTargets = getattr(targets, key)
        if min(g.aged_65_plus, g.patients - g.aged_65_plus) < 8:
            problems.append(f"patients_{key}={g.patients}: too few patients to give the MAI subgroup (65 or over) "
                            f"its published quartiles; use at least 20 patients per period")
    if problems:
        raise StudyError("synthetic generator parameters: " + "; ".join(problems))


def _gives(total: int, percent: str) -> bool:
    """Whether some whole number of accepted suggestions out of `total` rounds to `percent` at its
    published digits ("98.0": one decimal)."""
    digits = len(percent.split(".")[1]) if "." in percent else 0
    target = float(percent)
    return total > 0 and abs(100 * round(target / 100 * total) / total - target) < 0.5 * 10 ** -digits - 1e-12


def accepted_count(total: int, percent: str, key: str) -> int:
    """Accepted suggestions out of `total` that give the published percentage to its digits."""
    if not _gives(total, percent):
        near = [m for m in range(max(1, total - 60), total + 61) if _gives(m, percent)]
        raise StudyError(f"synthetic generator parameters: {key}={total}: no whole number of accepted suggestions "
                         f"out of {total} gives the published {percent}% to its digits; choose a denominator that "
                         f"does, e.g. {', '.join(map(str, near[:8])) or 'a larger one'}")
    return round(float(percent) / 100 * total)


def _suggestion_totals(p: Parameters, targets: Targets) -> tuple[int, int]:
    """Suggestions per period: as given (checked), or the assumed 400 per 121 patients before and
    450 per 112 after, scaled to the patients and moved up to the first that gives the percentage."""
    assumed = {"before": (400, 121), "after": (450, 112)}
    totals = []
    for key in ("before", "after"):
        given = getattr(p, f"suggestions_{key}")
        percent = getattr(targets, key).acceptance_pct
        if given is not None:
            accepted_count(given, percent, f"suggestions_{key}")
            totals.append(given)
            continue
        count, per = assumed[key]
        total = max(1, round(count * getattr(targets, key).patients / per))
        while not _gives(total, percent):
            total += 1
        totals.append(total)
    return totals[0], totals[1]


def _top_k(keys: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    """The k members of `index` with the largest keys (Gumbel top-k: sampling without replacement
    proportional to the odds, when keys are logits plus Gumbel noise)."""
    if k <= 0:
        return index[:0]
    if k >= len(index):
        return index
    return index[np.argpartition(-keys[index], k - 1)[:k]]


@dataclass
class Draft:
    """The patients as drawn so far, handed to a `refine` step that may change them in place (the
    reference study's calibration) before harm, MAI and suggestions are made from them. Arrays are per
    patient; `group` is 0 before, 1 after, 2 ineligible. A refine step must keep every published count:
    who is 65 or over, and the number of events and of recorded outcomes per group."""

    group: np.ndarray
    age: np.ndarray
    charlson: np.ndarray
    medicines: np.ndarray
    stay: np.ndarray
    team: np.ndarray
    error_admission: np.ndarray
    outcome: np.ndarray
    error_discharge: np.ndarray
    min_age: int
    min_medicines: int


def _days(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


def generate(p: Parameters, targets: Targets, periods: Period, eligibility: Eligibility, refine=None) -> Generated:
    """A synthetic cohort (patients and suggestions, dictionary columns and codes) hitting `targets`.

    `refine`, if given, is called with the `Draft` once covariates and errors are drawn; it may change
    them in place (keeping the counts) and returns a report kept in `achieved["calibration"]`."""
    n_before = targets.before.patients if p.patients_before is None else p.patients_before
    n_after = targets.after.patients if p.patients_after is None else p.patients_after
    targets = targets.scaled(n_before, n_after)
    _check_parameters(p, targets, eligibility)
    suggestions_before, suggestions_after = _suggestion_totals(p, targets)
    rng = np.random.default_rng(p.seed)
    hospital = _structure(p)
    groups = (targets.before, targets.after)

    # Who is screened: the two periods' included patients, then the ineligible ones by reason.
    n_excluded = p.under_min_age + p.under_min_medicines + p.between_periods
    group = np.concatenate([np.zeros(n_before, int), np.ones(n_after, int), np.full(n_excluded, 2)])
    reason = np.concatenate([np.full(n_before + n_after, -1), np.repeat([0, 1, 2], [p.under_min_age,
                                                                                   p.under_min_medicines,
                                                                                   p.between_periods])])
    n = len(group)

    # Admission dates, uniform over the window; patients excluded by age or medicines alternate
    # between the two windows, so that both periods show exclusions.
    windows = [(_days(periods.before.start), _days(periods.before.end)),
               (_days(periods.after.start), _days(periods.after.end)),
               (_days(periods.before.end) + 1, _days(periods.after.start) - 1)]
    if p.between_periods and windows[2][1] < windows[2][0]:
        raise StudyError("synthetic generator parameters: between_periods needs days between the two windows")
    window = np.where(group < 2, group, np.where(reason == 2, 2, np.arange(n) % 2))
    start = np.array([w[0] for w in windows])[window]
    length = np.array([w[1] - w[0] + 1 for w in windows])[window]
    admission = start + np.floor(rng.random(n) * length).astype(np.int64)
    months = (admission - (start + (length - 1) / 2)) / DAYS_PER_MONTH  # from the window's middle

    # Ages: exactly the published number aged 65 or over in each period.
    old = (rng.random(n) < 0.5) & (reason != 0)
    for g, target in enumerate(groups):
        members = np.flatnonzero(group == g)
        old[members] = False
        old[rng.permutation(members)[: target.aged_65_plus]] = True
    young_span = 65 - eligibility.min_age
    age = np.where(old, 65 + np.minimum(np.floor(rng.gamma(2.0, 6.0, n)), 35),
                   eligibility.min_age + np.floor(young_span * rng.beta(2.2, 1.3, n))).astype(np.int64)
    age = np.where(reason == 0, rng.integers(max(eligibility.min_age - 3, 0), max(eligibility.min_age, 1), n), age)
    female = rng.random(n) < p.female_share
    charlson = np.minimum(rng.poisson(np.exp(0.35 + 0.025 * (age - 65))), 15)
    medicines = eligibility.min_medicines + np.minimum(
        rng.poisson(np.exp(1.45 + 0.012 * (age - 65) + 0.08 * charlson)), 35)
    medicines = np.where(reason == 1, rng.integers(0, max(eligibility.min_medicines, 1), n), medicines)
    stay = np.clip(np.round(np.exp(rng.normal(np.log(5) + 0.12 * charlson + 0.008 * (age - 65)
                                              + p.after_log_stay_shift * (group == 1), 0.7))), 1, 60)
    stay = stay.astype(np.int64)
    discharge = admission + stay

    # Teams (every team in every period when there are enough patients), wards, pharmacists.
    weights = rng.gamma(4.0, 1.0, p.teams)
    weights /= weights.sum()
    team = rng.choice(p.teams, size=n, p=weights)
    for g in (0, 1):
        members = rng.permutation(np.flatnonzero(group == g))
        first = members[: min(p.teams, len(members))]
        team[first] = rng.permutation(p.teams)[: len(first)]
    site = hospital.team_site[team]
    other_ward = site + p.sites * np.floor(rng.random(n) * hospital.wards_in_site[site]).astype(np.int64)
    ward = np.where(rng.random(n) < p.home_ward_share, hospital.team_home_ward[team], other_ward)
    pharmacist = np.where(group == 1, hospital.team_pharmacist[team], hospital.ward_pharmacist[ward])

    # Random intercepts: teams (nested in sites) differ in errors and in accepting suggestions.
    error_sd = p.team_sd if p.error_team_sd is None else p.error_team_sd
    discharge_sd = error_sd if p.discharge_team_sd is None else p.discharge_team_sd
    team_effect = {k: rng.normal(0, sd, p.teams) for k, sd in (("admission", error_sd), ("discharge", discharge_sd),
                                                               ("acceptance", p.team_sd))}
    site_effect = {k: rng.normal(0, p.site_sd, p.sites) for k in ("admission", "discharge", "acceptance")}

    def cluster(kind: str) -> np.ndarray:
        return team_effect[kind][team] + site_effect[kind][site]

    def pick(score: np.ndarray, eligible: np.ndarray, counts: list[int]) -> np.ndarray:
        chosen = np.zeros(n, bool)
        keys = score + rng.gumbel(size=n)
        for g, k in enumerate(counts):
            chosen[_top_k(keys, np.flatnonzero(eligible & (group == g)), k)] = True
        return chosen

    def excluded_count(rate_of) -> int:
        rate = sum(rate_of(t) for t in groups) / sum(t.patients for t in groups)
        return round(rate * n_excluded)

    # Error at admission: exactly the published number per period.
    logit = (p.admission_strength * (p.admission_per_medicine * (medicines - 8)
                                     + p.admission_per_charlson_point * (charlson - 1.5)
                                     + p.admission_per_decade_of_age * (age - 65) / 10)
             + cluster("admission") + p.trend_per_month * months)
    everyone = np.ones(n, bool)
    error_admission = pick(logit, everyone, [t.error_at_admission for t in groups]
                           + [excluded_count(lambda t: t.error_at_admission)])
    errors_if_any = 1 + rng.poisson(0.4 + 0.05 * medicines)  # drawn for all: a refine step may move the errors

    # Discharge outcome recorded: less often for short stays and weekend discharges (and, with
    # missing_per_risk above 0, for patients at higher risk of a discharge error).
    risk = p.discharge_strength * (p.discharge_per_medicine * (medicines - 8)
                                   + p.discharge_per_charlson_point * (charlson - 1.5)
                                   + p.discharge_per_log_day * np.log(stay / 5))
    weekend = (discharge + 3) % 7 >= 5
    outcome = pick(0.6 * np.log(stay) - 0.8 * weekend - p.missing_per_risk * risk, everyone,
                   [t.with_discharge_outcome for t in groups] + [excluded_count(lambda t: t.with_discharge_outcome)])
    logit = (risk + p.discharge_after_admission_error * error_admission + cluster("discharge")
             + p.trend_per_month * months)
    n_outcome_excluded = int((outcome & (group == 2)).sum())
    excluded_harm = _largest_remainder(np.add(targets.before.harm, targets.after.harm), n_outcome_excluded)
    error_discharge = pick(logit, outcome, [t.error_at_discharge for t in groups] + [sum(excluded_harm[1:])])
    achieved: dict = {"before": {}, "after": {}}
    if refine is not None:
        achieved["calibration"] = refine(Draft(group, age, charlson, medicines, stay, team, error_admission, outcome,
                                               error_discharge, eligibility.min_age,
                                               eligibility.min_medicines))
        discharge = admission + stay
    n_errors_admission = np.where(error_admission, errors_if_any, 0)
    n_errors_discharge = np.where(error_discharge, 1 + rng.poisson(0.3 + 0.06 * medicines), 0)

    # Severity of the worst discharge error: the most severe go to patients with more errors.
    severity_score = 0.4 * n_errors_discharge + 0.15 * charlson + rng.gumbel(size=n)
    severity = np.where(outcome, 0, -1)
    vas = np.full(n, np.nan)
    for g, band_counts in enumerate([t.harm for t in groups] + [excluded_harm]):
        errors = np.flatnonzero(error_discharge & (group == g))
        ranked = errors[np.argsort(-severity_score[errors], kind="stable")]
        severe, moderate = band_counts[3], band_counts[2]
        severity[ranked[:severe]] = 3
        severity[ranked[severe:severe + moderate]] = 2
        severity[ranked[severe + moderate:]] = 1
        members = np.flatnonzero(outcome & (group == g))
        quartiles = groups[g].harm_vas_quartiles if g < 2 else None
        values, definitions = _harm_scores(rng, band_counts, quartiles, ("before", "after", "excluded")[g])
        order = members[np.lexsort((severity_score[members], severity[members]))]
        vas[order] = values / 10
        if g < 2:
            achieved[("before", "after")[g]]["harm_vas_quartile_definitions"] = definitions

    # MAI of the patients aged 65 or over: changes with the published quartiles and mean differences.
    mai = {k: np.full(n, -1, np.int64) for k in ("pre", "admission", "discharge")}
    changes, mai_achieved = _mai_changes(rng, p, targets)
    pooled = {k: np.concatenate([changes[k][0], changes[k][1]]) for k in changes}
    for g in (0, 1, 2):
        members = np.flatnonzero(old & (group == g))
        if g < 2:
            adm = rng.permutation(changes["admission"][g])
            closeness = np.argsort(np.argsort(adm)) / max(len(adm), 1) + 0.35 * rng.normal(size=len(adm))
            dis = np.empty_like(adm)
            dis[np.argsort(closeness, kind="stable")] = changes["discharge"][g]
        else:
            adm = rng.choice(pooled["admission"], size=len(members))
            dis = rng.choice(pooled["discharge"], size=len(members))
        pre = np.maximum(rng.poisson(1.5 * medicines[members]), -np.minimum(np.minimum(adm, dis), 0))
        mai["pre"][members], mai["admission"][members], mai["discharge"][members] = pre, pre + adm, pre + dis
    achieved["mai"] = mai_achieved

    # Consecutive patients: identifiers in order of admission.
    order = np.lexsort((rng.random(n), admission))
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    ids = _identifiers(p.id_prefix, n)

    suggestions = _suggestions(rng, targets, (suggestions_before, suggestions_after), group, admission,
                               discharge, windows, medicines, error_admission, error_discharge, cluster("acceptance"),
                               team, pharmacist, hospital, position, ids)

    frame = pd.DataFrame({
        "patient_id": ids.take(position).to_pandas(),
        "admission_date": _dates(admission),
        "discharge_date": _dates(discharge),
        "age": age,
        "sex": pd.Categorical.from_codes((~female).astype(np.int8), ["female", "male"]),
        "charlson": charlson,
        "n_medicines": medicines,
        "site": pd.Categorical.from_codes(site, hospital.site_names),
        "team": pd.Categorical.from_codes(team, hospital.team_names),
        "ward": pd.Categorical.from_codes(ward, hospital.ward_names),
        "pharmacist": pd.Categorical.from_codes(pharmacist, hospital.pharmacist_names),
        "error_at_admission": error_admission,
        "n_errors_admission": n_errors_admission,
        "error_at_discharge": pd.array(np.where(outcome, error_discharge, False), dtype="boolean"),
        "n_errors_discharge": pd.array(n_errors_discharge, dtype="Int64"),
        "harm_severity": pd.Categorical.from_codes(severity, categories=list(HARM_BANDS), ordered=True),
        "harm_vas": vas,
        "mai_pre_admission": pd.array(mai["pre"], dtype="Int64"),
        "mai_admission": pd.array(mai["admission"], dtype="Int64"),
        "mai_discharge": pd.array(mai["discharge"], dtype="Int64"),
    })
    frame.loc[~outcome, ["error_at_discharge", "n_errors_discharge"]] = pd.NA
    for column in ("mai_pre_admission", "mai_admission", "mai_discharge"):
        frame.loc[~old, column] = pd.NA
    if p.sites == 1:
        frame = frame.drop(columns="site")
    frame = frame.iloc[order].reset_index(drop=True)
    for key, values in _achieved(frame, suggestions, periods, eligibility).items():
        achieved[key].update(values)
    return Generated(frame, suggestions, targets, achieved)


def _identifiers(prefix: str, count: int) -> pa.Array:
    """prefix0001, prefix0002, ... (at least four digits), as an Arrow string array."""
    numbers = pa.array(np.arange(1, count + 1)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, max(4, len(str(count))), "0"), "")


def _dates(days: np.ndarray) -> pd.Series:
    return pd.Series(days.astype("datetime64[D]").astype("datetime64[us]"))


def _quartile_anchors(n: int, quartiles, scale: int) -> tuple[dict[int, int], dict[str, str]]:
    """Anchors for (Q1, median, Q3) and, per quartile, the definitions it holds under."""
    parts = [shapes.anchors_for_quantile(n, q, v, scale) for q, v in zip((0.25, 0.5, 0.75), quartiles, strict=True)]
    definitions = {name: d for name, (_, d) in zip(("Q1", "median", "Q3"), parts, strict=True)}
    return shapes.merge_anchors([a for a, _ in parts]), definitions


def _harm_scores(rng, band_counts, quartiles, key: str) -> tuple[np.ndarray, dict[str, str]]:
    """Sorted harm scores (tenths) for one group: bands of the given sizes, quartiles as published
    (none for the ineligible patients, who have no published figures)."""
    low = np.repeat([b[0] for b in VAS_TENTHS], band_counts)
    high = np.repeat([b[1] for b in VAS_TENTHS], band_counts)
    if quartiles is None or len(low) == 0:
        return shapes.fill(rng, low, high, {}).sorted(), {}
    try:
        anchors, definitions = _quartile_anchors(len(low), quartiles, 10)
        return shapes.fill(rng, low, high, anchors).sorted(), definitions
    except ValueError as error:
        raise StudyError(f"synthetic generator: the {key} harm score quartiles {quartiles} cannot hold with "
                         f"band counts {band_counts}: {error}") from None


def _mai_changes(rng, p: Parameters, targets: Targets) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Sorted MAI changes (admission, discharge) of the 65-or-over subgroup, per period."""
    sizes = (targets.before.aged_65_plus, targets.after.aged_65_plus)
    template = tuple(min(s, MAI_EXACT_LIMIT) for s in sizes)
    published_n = targets.mai_published_n
    specs = {
        "admission": ((p.mai_admission_quartiles_before, p.mai_admission_quartiles_after), targets.mai_admission),
        "discharge": ((targets.before.mai_change_discharge_quartiles, targets.after.mai_change_discharge_quartiles),
                      targets.mai_discharge),
    }
    result, achieved = {}, {}
    for measure, (quartiles, published) in specs.items():
        # Keep the published standard deviations: the interval narrows with the groups' sizes.
        ratio = math.sqrt((1 / template[0] + 1 / template[1]) / (1 / published_n[0] + 1 / published_n[1]))
        middle, half = (published.low + published.high) / 2, (published.high - published.low) / 2
        target = shapes.Welch(published.estimate, middle - half * ratio, middle + half * ratio)
        segments, definitions = [], []
        for size, q in zip(template, quartiles, strict=True):
            bound = np.full(size, MAI_RANGE)
            try:
                anchors, held = _quartile_anchors(size, q, 1)
                segments.append(shapes.fill(rng, -bound, bound, anchors, 3.0))
                definitions.append(held)
            except ValueError as error:
                raise StudyError(f"synthetic generator: MAI change quartiles {q} ({measure}) cannot hold for "
                                 f"{size} patients: {error}") from None
        shapes.fit_difference(segments[0], segments[1], target, tolerance=0.05, spread=p.mai_spread)
        values = []
        for g, (size, segment, q) in enumerate(zip(sizes, segments, quartiles, strict=True)):
            sorted_values = segment.sorted()
            if size > len(sorted_values):
                anchors, definitions[g] = _quartile_anchors(size, q, 1)
                sorted_values = shapes.clamp_to_anchors(shapes.quantile_map(sorted_values, size), anchors)
            values.append(sorted_values)
        welch = shapes.welch(values[0], values[1])
        if template == sizes and abs(welch.difference - published.estimate) >= 0.05:
            raise StudyError(f"synthetic generator: the MAI {measure} mean difference reached {welch.difference:.3f}, "
                             f"which does not round to the published {published.estimate}; change the seed or the "
                             f"assumed quartiles")
        result[measure] = (values[0], values[1])
        achieved[measure] = {"difference": welch.difference, "low": welch.low, "high": welch.high,
                             "quartile_definitions": {"before": definitions[0], "after": definitions[1]}}
    return result, achieved


def _suggestions(rng, targets: Targets, totals, group, admission, discharge, windows, medicines, error_admission,
                 error_discharge, acceptance, team, pharmacist, hospital, position, ids):
    """Suggestions about included patients, dated within the stay and the window; exact acceptance."""
    rows = []
    for g, total in enumerate(totals):
        members = np.flatnonzero(group == g)
        weight = medicines[members] * (1 + error_admission[members] + error_discharge[members])
        patient = rng.choice(members, size=total, p=weight / weight.sum())
        last = np.minimum(discharge[patient], windows[g][1])
        day = admission[patient] + np.floor(rng.random(total) * (last - admission[patient] + 1)).astype(np.int64)
        k = accepted_count(total, getattr(targets, ("before", "after")[g]).acceptance_pct, "suggestions")
        accepted = np.zeros(total, bool)
        accepted[_top_k(acceptance[patient] + rng.gumbel(size=total), np.arange(total), k)] = True
        rows.append((patient, day, accepted))
    patient, day, accepted = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    order = np.lexsort((np.arange(len(day)), position[patient], day))
    patient, day, accepted = patient[order], day[order], accepted[order]
    return pd.DataFrame({
        "suggestion_id": _identifiers("S", len(day)).to_pandas(),
        "patient_id": ids.take(position[patient]).to_pandas(),
        "date": _dates(day),
        "team": pd.Categorical.from_codes(team[patient], hospital.team_names),
        "pharmacist": pd.Categorical.from_codes(pharmacist[patient], hospital.pharmacist_names),
        "accepted": accepted,
    })


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _achieved(patients: pd.DataFrame, suggestions: pd.DataFrame, periods: Period, eligibility: Eligibility) -> dict:
    """What the files show, computed back from the generated tables (written to the sidecar)."""
    result = {}
    for key in ("before", "after"):
        window = getattr(periods, key)
        inside = patients["admission_date"].between(pd.Timestamp(window.start), pd.Timestamp(window.end))
        included = patients[inside & (patients["age"] >= eligibility.min_age)
                            & (patients["n_medicines"] >= eligibility.min_medicines)]
        outcome = included[included["error_at_discharge"].notna()]
        older = included[included["age"] >= 65]
        change = (older["mai_discharge"] - older["mai_pre_admission"]).astype(float)
        # the generator writes suggestions only about included patients, dated within the window
        made = suggestions[suggestions["date"].between(pd.Timestamp(window.start), pd.Timestamp(window.end))]
        result[key] = {
            "patients": len(included),
            "error_at_admission": int(included["error_at_admission"].sum()),
            "with_discharge_outcome": len(outcome),
            "error_at_discharge": int(outcome["error_at_discharge"].astype(bool).sum()),
            "harm": {band: int((outcome["harm_severity"] == band).sum()) for band in HARM_BANDS},
            "harm_vas_quartiles": {f"type_{d}": [_round(shapes.quantile(outcome["harm_vas"], q, d))
                                                 for q in (0.25, 0.5, 0.75)] for d in (6, 7)},
            "aged_65_plus": len(older),
            "mai_change_discharge_quartiles": {f"type_{d}": [_round(shapes.quantile(change, q, d))
                                                             for q in (0.25, 0.5, 0.75)] for d in (6, 7)},
            "teams": int(included["team"].nunique()),
            "suggestions": len(made),
            "accepted": int(made["accepted"].sum()),
            "acceptance_pct": _round(100 * made["accepted"].mean()),
        }
    return result


# ---------------------------------------------------------------------------------------------
# Writing the files, as the study file describes them


@dataclass(frozen=True)
class Dataset:
    """A committed synthetic dataset: the study file whose `tables:` name its files and layout, the
    published folder whose figures it reproduces, the generator's parameters, and (for Excel with
    `header_row` > 1) the title lines written above the header."""

    name: str
    study: str
    published: str
    parameters: Parameters
    title: tuple[str, ...] = ()


# The reference study's twin: its team SD for errors is an assumption (the published adjusted odds ratios
# lie within rounding of the unadjusted ones, which large team differences would not give); the
# strengths and missing_per_risk are chosen by analysis/analyses/calibration.py when it is written.
REFERENCE = Dataset("grimes2014_synthetic", "studies/reference.yml", "data_raw/published", Parameters(
    seed=20140701, suggestions_before=400, suggestions_after=450, error_team_sd=0.25, mai_spread=0.005))

EXAMPLE = Dataset(
    "example_synthetic", "studies/example.yml", "data_raw/published",
    Parameters(
        seed=20170301, patients_before=96, patients_after=88, suggestions_before=160, suggestions_after=150,
        under_min_age=3, under_min_medicines=4, between_periods=5, teams=7, wards=6, pharmacists=4,
        team_names=("Cardiology", "Respiratory", "Gastroenterology", "Geriatrics", "Nephrology", "Neurology",
                    "Acute medicine"),
        ward_names=("Ash", "Beech", "Cedar", "Hazel", "Oak", "Rowan"),
        pharmacist_names=("Seán", "Siobhán", "Éanna", "Órla"),
        id_prefix="RGH-"),
    title=("Riverside General Hospital - medicines reconciliation audit",
           "SYNTHETIC DATA made by analysis/data/synthetic.py: not real patients"),
)

# The reference dataset is written by analysis.analyses.calibration, which calibrates it first.
DATASETS = {d.name: d for d in (EXAMPLE,)}


@dataclass(frozen=True)
class Eligibility:
    """The thresholds the generator makes ineligible patients for, read from the study's criteria
    (`age >= X`, `n_medicines >= Y`; 0 when the study has no such criterion)."""

    min_age: int = 0
    min_medicines: int = 0


def _study_layout(study: str | Path) -> tuple[Period, Eligibility, dict[str, TableSource]]:
    """Period windows, eligibility and the two tables' layout from a study file.

    The data files need not exist yet (the generator makes them), so the tables are checked alone,
    without the study-wide checks `load_study` applies.
    """
    path = resolve(study)
    raw = read_yaml(path)
    try:
        sources = {name: TableSource.model_validate(raw["tables"][name]) for name in ("patients", "suggestions")}
        period = Period.model_validate(raw["period"])
        rules = {key: Exclusion.model_validate(rule) for key, rule in (raw.get("eligibility") or {}).items()}
    except (KeyError, TypeError, ValidationError) as error:
        raise StudyError(f"{relative(path)}: not a study file the generator can lay out ({error})") from None
    thresholds = {c.column: int(c.value) for rule in rules.values() for c in rule.keep
                  if c.operator == ">=" and c.column in ("age", "n_medicines")}
    return period, Eligibility(thresholds.get("age", 0), thresholds.get("n_medicines", 0)), sources


def _inverse_codes(column: str, source: TableSource) -> dict[str, str]:
    """Dictionary codes -> the file's codes (the inverse of the study file's `values:`)."""
    inverse: dict[str, str] = {}
    for code, target in source.values.get(column, {}).items():
        inverse.setdefault(("true" if target else "false") if isinstance(target, bool) else str(target), str(code))
    return inverse


def _text_array(values: pd.Series, kind: str, date_format: str) -> pa.Array:
    """A typed column as the text a CSV holds (null for an empty cell), vectorised in Arrow."""
    array = pa.array(values, from_pandas=True)
    if kind == "date":
        return pc.strftime(array, format=date_format)
    if kind == "boolean":
        return pc.if_else(array, "true", "false")
    return array.cast(pa.string())  # numbers: the shortest text that reads back the same value


def _csv_bytes(frame: pd.DataFrame, table: str, source: TableSource) -> bytes:
    """The table as CSV in the study file's layout: its column names, codes, dates and encoding."""
    spec = raw_tables()[table].columns
    columns = [c for c in spec if c in frame.columns]
    arrays = []
    for column in columns:
        text = _text_array(frame[column], spec[column].type, source.date_format or ISO_DATE)
        for dictionary_code, file_code in _inverse_codes(column, source).items():
            text = pc.if_else(pc.equal(text, dictionary_code), file_code, text)
        arrays.append(text)
    names = [source.file_name(c) for c in columns]
    buffer = io.BytesIO()
    buffer.write((",".join(names) + "\n").encode())  # Arrow would quote the header
    try:
        pa_csv.write_csv(pa.table(arrays, names=names), buffer,
                         pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid as error:
        raise StudyError(f"synthetic generator: a name holds a comma, quote or line break, which the CSV is "
                         f"written without quoting for: {error}") from None
    text = buffer.getvalue()
    if _is_utf8(source.encoding):
        return text
    try:
        return text.decode("utf-8").encode(source.encoding)
    except UnicodeEncodeError as error:
        raise StudyError(f"synthetic generator: '{error.object[error.start:error.end]}' cannot be written in "
                         f"{source.encoding}; choose other names or another encoding") from None


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _excel_frame(frame: pd.DataFrame, table: str, source: TableSource) -> pd.DataFrame:
    """The table as Python values for a worksheet: real dates and numbers, the file's codes."""
    spec = raw_tables()[table].columns
    out = {}
    for column in [c for c in spec if c in frame.columns]:
        values = frame[column]
        kind = spec[column].type
        if kind == "date":
            out[column] = values.dt.date
        elif kind in ("integer", "number"):
            out[column] = values.astype(object).where(values.notna(), None)
        else:
            text = pd.Series(_text_array(values, kind, ISO_DATE).to_numpy(zero_copy_only=False), index=values.index,
                             dtype=object)
            out[column] = text.replace(_inverse_codes(column, source)).where(text.notna(), None)
    return pd.DataFrame(out).rename(columns=source.file_name)


def _xlsx_bytes(frame: pd.DataFrame, source: TableSource, title: tuple[str, ...]) -> bytes:
    """An .xlsx workbook, byte-stable: fixed document times and zip entry times."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = source.sheet if isinstance(source.sheet, str) else "Sheet1"
    for row, line in enumerate(title[: source.header_row - 1], start=1):
        sheet.cell(row=row, column=1, value=line)
    for column, name in enumerate(frame.columns, start=1):
        sheet.cell(row=source.header_row, column=column, value=name)
    for row, values in enumerate(frame.itertuples(index=False), start=source.header_row + 1):
        for column, value in enumerate(values, start=1):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            cell = sheet.cell(row=row, column=column, value=value)
            if isinstance(value, dt.date):
                cell.number_format = "dd/mm/yyyy"
    book.properties.creator = GENERATOR
    buffer = io.BytesIO()
    book.save(buffer)
    stable = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as original, \
            zipfile.ZipFile(stable, "w", zipfile.ZIP_DEFLATED) as target:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + FIXED_DOC_TIME.encode() + rb"\g<3>", data)
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return stable.getvalue()


def _table_bytes(frame: pd.DataFrame, table: str, source: TableSource, title: tuple[str, ...]) -> bytes:
    if Path(str(source.file)).suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx_bytes(_excel_frame(frame, table, source), source, title)
    return _csv_bytes(frame, table, source)


def sidecar_header(generator: str, version: str, seed: int, dataset: str, made_from: str) -> dict:
    """What every generator's sidecar says first: which generator, version and seed made which dataset,
    and that it is synthetic (the manifest reads these keys, `find_generator_metadata`)."""
    return {
        "generator": generator,
        "version": version,
        "seed": seed,
        "numpy": np.__version__,
        "dataset": dataset,
        "synthetic": True,
        "description": f"SYNTHETIC patient-level data: not real patients. Made by {made_from}; every assumption "
                       "is in the README next to these files.",
    }


def json_ready(value):
    """A value as the generators write it into their JSON sidecars: floats to 6 significant digits,
    dates as ISO text, dataclasses as dicts."""
    if dataclasses.is_dataclass(value):
        return json_ready(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def write_dataset(dataset: Dataset, folder: Path | None = None, refine=None) -> list[Path]:
    """Generate the dataset and write its two tables and sidecar into `folder` (default: where the
    study file says). Returns the paths written. `refine`: see `generate`."""
    periods, eligibility, sources = _study_layout(dataset.study)
    targets = read_targets(resolve(dataset.published))
    generated = generate(dataset.parameters, targets, periods, eligibility, refine)
    files = {}
    for table, frame in (("patients", generated.patients), ("suggestions", generated.suggestions)):
        source = sources[table]
        target = (folder or resolve(Path(str(source.file)).parent)) / Path(str(source.file)).name
        files[target] = (_table_bytes(frame, table, source, dataset.title), len(frame))
    sidecar_folder = folder or next(iter(files)).parent
    metadata = {
        **sidecar_header(GENERATOR, VERSION, dataset.parameters.seed, dataset.name, "analysis/data/synthetic.py from "
                         "the published aggregates"),
        "study": relative(resolve(dataset.study)),
        "published": {relative(path): sha256_file(path) for path in published_files(resolve(dataset.published))[0]
                      .values()},
        "periods": json_ready({"date_column": periods.column, **{
            key: {"label": w.label, "start": w.start, "end": w.end} for key, w in (("before", periods.before),
                                                                                  ("after", periods.after))}}),
        "eligibility": dataclasses.asdict(eligibility),
        "parameters": json_ready(dataset.parameters),
        "targets": json_ready(generated.targets),
        "achieved": json_ready(generated.achieved),
        "files": {path.name: {"sha256": sha256_bytes(data), "rows": rows} for path, (data, rows) in files.items()},
    }
    written = []
    for path, (data, _) in files.items():
        with atomic_write(path, "wb") as handle:
            handle.write(data)
        written.append(path)
    sidecar = sidecar_folder / f"{dataset.name}{GENERATOR_SUFFIX}"
    with atomic_write(sidecar, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(metadata, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return [*written, sidecar]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_dataset(dataset: Dataset, refine=None) -> list[str]:
    """Regenerate into a temporary folder; the committed files that differ (empty: all identical)."""
    _, _, sources = _study_layout(dataset.study)
    committed_folder = resolve(Path(str(sources["patients"].file)).parent)
    with tempfile.TemporaryDirectory() as scratch:
        differing = []
        for path in write_dataset(dataset, Path(scratch), refine):
            committed = committed_folder / path.name
            if not committed.is_file() or committed.read_bytes() != path.read_bytes():
                differing.append(relative(committed))
        return differing


def write_scaled(folder: Path, patients: int, teams: int, sites: int, seed: int = REFERENCE.parameters.seed
                 ) -> list[Path]:
    """A large synthetic dataset for benchmarks, shaped like the reference one, with a study file.

    Counts are the reference's proportions of `patients` (split between periods as published);
    teams are nested in sites (a `site` column when sites > 1), with wards and pharmacists in the
    reference's proportions to teams.
    """
    targets = read_targets(resolve(REFERENCE.published))
    published = targets.before.patients + targets.after.patients
    before = round(patients * targets.before.patients / published)
    parameters = dataclasses.replace(
        REFERENCE.parameters, seed=seed, patients_before=before, patients_after=patients - before,
        suggestions_before=None, suggestions_after=None, sites=sites, teams=teams,
        wards=max(sites, math.ceil(teams * 6 / 8)), pharmacists=max(sites, math.ceil(teams * 5 / 8)))
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"scaled_{patients}"
    study = yaml.safe_load(resolve(REFERENCE.study).read_text(encoding="utf-8"))
    study["title"] = f"Benchmark: {patients:,} synthetic patients, {teams} teams, {sites} sites"
    study["description"] = "SYNTHETIC data for benchmarks, made by `python -m analysis synthesize --patients ...`."
    for table in ("patients", "suggestions"):
        study["tables"][table]["file"] = str(folder / f"{name}_synthetic_{table}.csv")
    if sites > 1:
        study["tables"]["patients"]["columns"]["site"] = None
        # The suggestions file has no site column: without `inherit` the derived suggestions would lose
        # the site (teams nested in sites) that the derived tables kept before tables were declared.
        study["tables"]["suggestions"]["inherit"] = ["site"]
    study["outputs"] = {"folder": str(folder / "derived")}
    study_file = folder / f"{name}.yml"
    with atomic_write(study_file, encoding="utf-8", newline="\n") as handle:
        yaml.safe_dump(study, handle, sort_keys=False, allow_unicode=True)
    dataset = Dataset(f"{name}_synthetic", str(study_file), REFERENCE.published, parameters)
    try:
        return [*write_dataset(dataset, folder), study_file]
    except BaseException:
        study_file.unlink()  # a study file pointing at data that were never written would mislead
        raise
