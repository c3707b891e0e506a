"""The reference study's synthetic twin, calibrated to the paper's adjusted results (issue 16).

The generator (`analysis.data.synthetic`) makes every published count exact, but how strongly the
covariates, the teams and the missing discharge outcomes relate to the errors is not published: the
paper's adjusted odds ratios with their intervals, Hosmer-Lemeshow p and Nagelkerke R² (Table 2 of
Grimes et al. 2014, `data_raw/published/grimes2014_primary.csv`) depend on exactly that. This module
chooses it so that the reference study, analysed as the paper describes (a random intercept per team,
adjusted for age, Charlson index and medicines, plus length of stay at discharge; the Hosmer-Lemeshow
test and Nagelkerke's R² of the same model without the random intercept), reproduces those twelve
odds-ratio numbers, four p-values and four R² at their printed precision, with every count unchanged.

What moves what (identifiability). With the counts fixed, the unadjusted odds ratios are fixed too;
what is free is who has the events and what the patients' covariates are.

- How strongly the covariates predict an error (`admission_strength`, `discharge_strength`) moves
  Nagelkerke's R² and, through the non-collapsibility of the odds ratio, moves the adjusted odds ratio
  away from the unadjusted one and widens its interval.
- Whether the patients without a discharge outcome are those at high or low risk
  (`missing_per_risk`) moves the two sensitivity analyses apart: counting high-risk patients as
  "no error" lowers the R² of "missing as no error" (0.306 published, against 0.418 for the
  patients with an outcome) and raises its odds ratio.
- The teams' variation (`error_team_sd`) moves the conditional (mixed-model) odds ratio away from the
  fixed-effects one; the paper's adjusted odds ratios lie within rounding of their unadjusted ones, so
  the teams are taken to differ little (an assumption, in data_raw/synthetic/README.md).
- The Hosmer-Lemeshow p is a noisy statistic of the fitted model's calibration: no smooth parameter
  moves it, single patients do.

Two stages, therefore. Stage 1 chooses the three continuous parameters with scipy's Nelder-Mead
(derivative-free: with the counts fixed by Gumbel top-k, the statistics are step functions of the
parameters, so gradients do not exist), on the generator's own draws (the same seed throughout:
common random numbers). Stage 2 moves single patients, a greedy search of our own: one covariate by
one unit (age by a year on the same side of 65, Charlson by a point, medicines by one, stay by a day,
each within a small budget of its drawn value), or which patient of a period has an event or a
recorded outcome (swaps, so every count stays). scipy has no optimiser for such integer moves under
count constraints (its `milp` needs a linear objective; these statistics come from refitted models);
the search is the same kind as `shapes.fit_difference` does for the MAI. Inside stage 2 the models
are refitted by a few Newton steps on the fixed design (a statsmodels fit with its formula takes
20 ms, a Newton step on 233 rows well under one), the mixed model's odds ratio by the fixed-effects
one plus the offset measured with `analysis.stats.mixed_logistic`, re-measured until the library's
own fits agree at the printed precision. The generator refuses nothing here: whatever is not reached
is reported, with the reason, in the sidecar's `achieved.calibration`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit

from analysis import stats
from analysis.analyses import published_check
from analysis.analyses.published_check import _Printed, _printed
from analysis.data import synthetic
from analysis.data.validate import published_files
from analysis.paths import resolve

# The paper's four logistic models, as studies/reference.yml declares them: rows, outcome and covariates.
OUTCOMES = {
    "error_at_admission": ("all", "admission", ("age", "charlson", "medicines")),
    "error_at_discharge": ("recorded", "discharge", ("age", "charlson", "medicines", "stay")),
    "error_at_discharge_missing_as_error": ("all", "missing_as_error", ("age", "charlson", "medicines", "stay")),
    "error_at_discharge_missing_as_no_error": ("all", "missing_as_no_error", ("age", "charlson", "medicines",
                                                                              "stay")),
}
COVARIATE_NAMES = {"age": "age", "charlson": "charlson", "medicines": "n_medicines", "stay": "length_of_stay"}
QUANTITIES = ("or", "or_low", "or_high", "hosmer_lemeshow_p", "nagelkerke_r2")
Z = 1.959963984540054  # the normal quantile of the Wald intervals (analysis.stats.mixed_logistic)
# How far stage 2 may move a patient's covariates from their drawn values (plausibility).
BUDGET = {"age": 3, "charlson": 1, "medicines": 2, "stay": 2}
STAGE1_EVALUATIONS = 80
STAGE2_STEPS = 4000
CANDIDATES = 60  # moves tried per step
PATIENCE = 60  # steps in a row without a better move before stage 2 gives up
HL_FIRST = 100.0  # the Hosmer-Lemeshow p weighs as if printed to 0.05 until the rest is within 0.9 units
MARGIN = 0.4  # printed units within which a number costs nothing
REMEASURE = 200  # steps between measurements of the mixed model's offsets
MODEL_SEED = 20140701  # studies/reference.yml seeds.models (the Laplace fit uses none; kept as the study does)


def published_targets(folder=None) -> dict[str, dict[str, _Printed]]:
    """The printed adjusted odds ratios, intervals, Hosmer-Lemeshow p and Nagelkerke R² per outcome."""
    folder = resolve(folder or synthetic.REFERENCE.published)
    table = pd.read_csv(next(folder.glob("*_primary.csv")), dtype=str).set_index("outcome")
    columns = {"or": "or_adjusted", "or_low": "or_adjusted_low", "or_high": "or_adjusted_high",
               "hosmer_lemeshow_p": "hosmer_lemeshow_p", "nagelkerke_r2": "nagelkerke_r2"}
    out = {}
    for outcome in OUTCOMES:
        out[outcome] = {}
        for quantity, column in columns.items():
            out[outcome][quantity] = _printed(table.at[outcome, column])
    return out


# ---------------------------------------------------------------------------------------------
# The four models on a draft


def _rows_and_outcome(draft: synthetic.Draft, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows, outcome, _ = OUTCOMES[key]
    included = draft.group < 2
    if rows == "recorded":
        included = included & draft.outcome
    y = {"admission": draft.error_admission,
         "discharge": draft.error_discharge,
         "missing_as_error": draft.error_discharge | ~draft.outcome,
         "missing_as_no_error": draft.error_discharge & draft.outcome}[outcome]
    return np.flatnonzero(included), y


def frame_of(draft: synthetic.Draft, key: str) -> pd.DataFrame:
    """The rows one model is fitted to, with the study's column names, `y`, `after`, `period` and `team`."""
    index, y = _rows_and_outcome(draft, key)
    after = draft.group[index] == 1
    return pd.DataFrame({
        "y": y[index].astype(int), "after": after.astype(int),
        "period": np.where(after, "after", "before"), "team": draft.team[index],
        **{COVARIATE_NAMES[c]: getattr(draft, c)[index].astype(float) for c in OUTCOMES[key][2]},
    })


def model_formula(key: str) -> str:
    return "y ~ after + " + " + ".join(COVARIATE_NAMES[c] for c in OUTCOMES[key][2])


def library_fits(draft: synthetic.Draft) -> dict[str, dict[str, float]]:
    """Every calibrated number as the study computes it: `analysis.stats.mixed_logistic` (random
    intercept per team) for the odds ratio, `analysis.stats.logistic_regression` for the
    Hosmer-Lemeshow p and Nagelkerke's R². Also the fixed-effects log odds ratio and its SE."""
    out = {}
    for key in OUTCOMES:
        d, formula = frame_of(draft, key), model_formula(key)
        mixed = stats.mixed_logistic(d, formula, "team", period="period", seed=MODEL_SEED).set_index("term")
        fixed = stats.logistic_regression(d, formula).set_index("term")
        out[key] = {
            "or": float(mixed.at["after", "estimate"]), "or_low": float(mixed.at["after", "conf_low"]),
            "or_high": float(mixed.at["after", "conf_high"]),
            "hosmer_lemeshow_p": float(fixed.at["hosmer_lemeshow", "p_value"]),
            "nagelkerke_r2": float(fixed.at["nagelkerke_r2", "estimate"]),
            "team_sd": float(mixed.at["sd__(Intercept)|team", "estimate"]),
            "log_or_mixed": math.log(float(mixed.at["after", "estimate"])),
            "se_mixed": float(mixed.at["after", "std_error"]),
            "log_or_fixed": math.log(float(fixed.at["after", "estimate"])),
            "se_fixed": float(fixed.at["after", "std_error"]),
        }
    return out


class _Fast:
    """The four ordinary logistic models refitted by Newton steps from the last solution (see the
    module's docstring for why), and the mixed odds ratios through measured offsets."""

    def __init__(self, draft: synthetic.Draft):
        self.draft = draft
        self.beta = {key: None for key in OUTCOMES}
        self.offset = {key: (0.0, 1.0) for key in OUTCOMES}

    def design(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        index, y = _rows_and_outcome(self.draft, key)
        columns = [np.ones(index.size), (self.draft.group[index] == 1).astype(float)]
        columns += [getattr(self.draft, c)[index].astype(float) for c in OUTCOMES[key][2]]
        return np.column_stack(columns), y[index].astype(float)

    def fit(self, key: str, keep: bool = True) -> dict[str, float]:
        x, y = self.design(key)
        beta = self.beta[key] if self.beta[key] is not None else np.zeros(x.shape[1])
        for _ in range(100):
            p = expit(x @ beta)
            information = (x.T * (p * (1 - p))) @ x
            step = np.linalg.solve(information, x.T @ (y - p))
            beta = beta + step
            if np.abs(step).max() < 1e-10:
                break
        p = expit(x @ beta)
        information = (x.T * (p * (1 - p))) @ x
        if keep:
            self.beta[key] = beta
        loglik = float(np.sum(np.where(y == 1, np.log(p), np.log1p(-p))))
        mean = y.mean()
        null = float(y.size * (mean * math.log(mean) + (1 - mean) * math.log1p(-mean)))
        se = math.sqrt(np.linalg.inv(information)[1, 1])
        shift, ratio = self.offset[key]
        log_or, se_mixed = beta[1] + shift, se * ratio
        return {
            "or": math.exp(log_or), "or_low": math.exp(log_or - Z * se_mixed),
            "or_high": math.exp(log_or + Z * se_mixed),
            "hosmer_lemeshow_p": stats.hosmer_lemeshow_p(y, p),
            "nagelkerke_r2": stats.nagelkerke_r2_value(loglik, null, y.size),
        }

    def calibrate_offsets(self, library: dict[str, dict[str, float]]) -> None:
        for key, values in library.items():
            self.offset[key] = (values["log_or_mixed"] - values["log_or_fixed"],
                                values["se_mixed"] / values["se_fixed"])


def _units(values: dict[str, dict[str, float]], targets, quantities=QUANTITIES) -> dict[tuple[str, str], float]:
    """How far each number is from the published one, in printed tolerances (1: at the edge)."""
    return {(key, q): (values[key][q] - targets[key][q].value) / targets[key][q].tolerance
            for key in values for q in quantities}


def _worst(units: dict) -> float:
    return max(abs(u) for u in units.values())


# ---------------------------------------------------------------------------------------------
# Stage 1: the generator's continuous parameters


STAGE1 = ("admission_strength", "discharge_strength", "missing_per_risk", "after_log_stay_shift",
          "discharge_team_sd")
START = (0.6, 0.6, 1.0, 0.0, 0.5)


def _capture(store: list):
    def refine(draft: synthetic.Draft) -> dict:
        store.append(draft)
        return {}
    return refine


def _stage1(parameters: synthetic.Parameters, targets_published, generate, progress) -> tuple[np.ndarray, float]:
    """Nelder-Mead over (admission_strength, discharge_strength, missing_per_risk): the squared
    distances, in printed units, of the library's odds ratios and R² from the published ones (the
    Hosmer-Lemeshow p is left to stage 2). Each evaluation draws the whole cohort from the same seed."""
    evaluations = []

    def loss(theta) -> float:
        if theta[0] < 0 or theta[1] < 0 or theta[4] < 0:
            return 1e12
        drafts: list = []
        generate(dataclasses.replace(parameters, **dict(zip(STAGE1, map(float, theta), strict=True))),
                 _capture(drafts))
        units = _units(library_fits(drafts[0]), targets_published, ("or", "or_low", "or_high", "nagelkerke_r2"))
        value = float(sum(min(abs(u), 50.0) ** 2 for u in units.values()))
        evaluations.append(value)
        if len(evaluations) % 10 == 0:
            progress(f"  stage 1: {len(evaluations)} draws, best loss {min(evaluations):.1f}")
        return value

    result = optimize.minimize(loss, np.array(START), method="Nelder-Mead",
                               options={"maxfev": STAGE1_EVALUATIONS, "xatol": 0.01, "fatol": 0.5,
                                        "initial_simplex": np.array(START) + np.vstack([np.zeros(len(START)),
                                                                                         0.3 * np.eye(len(START))])})
    return np.round(result.x, 3), float(result.fun)


# ---------------------------------------------------------------------------------------------
# Stage 2: single patients


class _Moves:
    """Candidate single-patient moves on the draft, each undoable, each keeping every count:

    - `<covariate> +1/-1`: one patient's covariate by one unit, at most `BUDGET` from its drawn value;
    - `exchange <covariate>`: a patient before and one after trade a covariate (age only on the same
      side of 65), which moves the periods' imbalance and keeps the cohort's distribution as drawn;
    - `admission`, `discharge`: two patients of a period trade their error (at admission; at discharge,
      among those with a recorded outcome);
    - `missing`: a patient with a recorded outcome loses it and one without gains it, with the error.
    """

    KINDS = ("covariate", "exchange", "admission", "discharge", "missing")
    SHARES = (0.45, 0.25, 0.1, 0.1, 0.1)

    def __init__(self, draft: synthetic.Draft, rng: np.random.Generator):
        self.d, self.rng = draft, rng
        self.nudged = {c: np.zeros(draft.group.size, np.int64) for c in BUDGET}
        self.old = draft.age >= 65
        self.members = [np.flatnonzero(draft.group == g) for g in (0, 1)]

    def _limits(self, name: str, i: int) -> tuple[int, int]:
        d = self.d
        if name == "age":
            return (65, 100) if self.old[i] else (d.min_age, 64)
        return {"charlson": (0, 15), "medicines": (d.min_medicines, 38), "stay": (1, 60)}[name]

    def propose(self):
        """(apply, undo, models it touches, kind) or None when the drawn move is not allowed."""
        d, rng = self.d, self.rng
        kind = str(rng.choice(self.KINDS, p=self.SHARES))
        if kind in ("covariate", "exchange"):
            name = str(rng.choice(tuple(BUDGET)))
            values, nudged = getattr(d, name), self.nudged[name]
            touched = tuple(k for k, spec in OUTCOMES.items() if name in spec[2])
            if kind == "exchange":
                i, j = int(rng.choice(self.members[0])), int(rng.choice(self.members[1]))
                if values[i] == values[j] or (name == "age" and self.old[i] != self.old[j]):
                    return None

                def trade():
                    values[i], values[j] = values[j], values[i]
                    nudged[i], nudged[j] = nudged[j], nudged[i]
                return trade, trade, touched, f"exchange {name}"
            i = int(rng.choice(self.members[int(rng.integers(2))]))
            step = int(rng.choice((-1, 1)))
            low, high = self._limits(name, i)
            if not low <= values[i] + step <= high or abs(nudged[i] + step) > BUDGET[name]:
                return None

            def nudge(sign: int):
                def move():
                    values[i] += sign * step
                    nudged[i] += sign * step
                return move
            return nudge(1), nudge(-1), touched, f"{name} {step:+d}"
        members = self.members[int(rng.integers(2))]
        if kind == "admission":
            flags = d.error_admission
            touched = ("error_at_admission",)
            pool = members
        else:
            flags = d.error_discharge if kind == "discharge" else d.outcome
            touched = tuple(k for k in OUTCOMES if k != "error_at_admission")
            pool = members[d.outcome[members]] if kind == "discharge" else members
        yes, no = pool[flags[pool]], pool[~flags[pool]]
        if yes.size == 0 or no.size == 0:
            return None
        i, j = int(rng.choice(yes)), int(rng.choice(no))
        if kind == "missing":
            # i loses its recorded outcome, j gains i's: the recorded and error counts both stay
            carried = bool(d.error_discharge[i])

            def apply():
                d.outcome[i], d.outcome[j] = False, True
                d.error_discharge[i], d.error_discharge[j] = False, carried

            def undo():
                d.outcome[i], d.outcome[j] = True, False
                d.error_discharge[i], d.error_discharge[j] = carried, False
            return apply, undo, touched, kind

        def swap():
            flags[i], flags[j] = flags[j], flags[i]
        return swap, swap, touched, kind


def _loss(values: dict, targets_published, hl_scale: float = 1.0) -> float:
    """Squared distances in printed units beyond `MARGIN` (a number already well within its printed
    precision costs nothing, so the moves go to those that are not); `hl_scale` > 1 weighs the
    Hosmer-Lemeshow p less (first the odds ratios and R², whose moves upset the p-value's three
    decimals, then the p-value)."""
    return float(sum(max(abs(u) / (hl_scale if q == "hosmer_lemeshow_p" else 1.0) - MARGIN, 0.0) ** 2
                     for (_, q), u in _units(values, targets_published).items()))


def _stage2(draft: synthetic.Draft, targets_published, seed: int, progress) -> dict:
    fast = _Fast(draft)
    moves = _Moves(draft, np.random.default_rng(seed))
    library = library_fits(draft)
    fast.calibrate_offsets(library)
    values = {key: fast.fit(key) for key in OUTCOMES}
    hl_scale = HL_FIRST
    loss = _loss(values, targets_published, hl_scale)
    accepted: dict[str, int] = {}
    steps = failures = 0
    while steps < STAGE2_STEPS and failures < PATIENCE:
        steps += 1
        best = (loss, None, None)
        for _ in range(CANDIDATES):
            move = moves.propose()
            if move is None:
                continue
            apply, undo, touched, kind = move
            apply()
            trial = dict(values)
            for key in touched:
                trial[key] = fast.fit(key, keep=False)
            trial_loss = _loss(trial, targets_published, hl_scale)
            undo()
            if trial_loss < best[0] - 1e-12:
                best = (trial_loss, move, trial)
        if hl_scale > 1 and (failures >= PATIENCE or _worst({
                k: u for k, u in _units(values, targets_published).items() if k[1] != "hosmer_lemeshow_p"}) < 0.9):
            hl_scale, failures = 1.0, 0
            loss = _loss(values, targets_published, hl_scale)
            progress(f"  stage 2: the odds ratios and R² are placed after {steps} steps; now the Hosmer-Lemeshow p")
            continue
        if best[1] is None:
            failures += 1
        else:
            failures = 0
            apply, _, touched, kind = best[1]
            apply()
            for key in touched:
                fast.fit(key)  # keeps the solution as the next start
            loss, values = best[0], best[2]
            accepted[kind] = accepted.get(kind, 0) + 1
        if _worst(_units(values, targets_published)) < 0.7 or steps % REMEASURE == 0:
            # the mixed model's offsets drift as patients move: measure them again with the library
            library = library_fits(draft)
            if _worst(_units(library, targets_published)) <= 1.0:
                break
            fast.calibrate_offsets(library)
            values = {key: fast.fit(key) for key in OUTCOMES}
            loss = _loss(values, targets_published, hl_scale)
        if steps % 100 == 0:
            progress(f"  stage 2: {steps} steps, {sum(accepted.values())} moves, loss {loss:.2f}, worst "
                     f"{_worst(_units(values, targets_published)):.2f} printed units")
    library = library_fits(draft)
    progress(f"  stage 2: done after {steps} steps, {sum(accepted.values())} moves; worst "
             f"{_worst(_units(library, targets_published)):.2f} printed units")
    return {"steps": steps, "moves": dict(sorted(accepted.items())), "library": library}


# ---------------------------------------------------------------------------------------------
# The calibrated dataset


def unreachable(folder=None) -> dict[str, dict]:
    """The published numbers no dataset with the published counts can give, with the proof: each is a
    function of the published counts alone (an unadjusted odds ratio, an NNT), so its bounds over
    every such dataset collapse to the one value the counts give, and that value does not print as
    published (`published_check` recomputes them and says why)."""
    files, _ = published_files(resolve(folder or synthetic.REFERENCE.published))
    printed = {name: pd.read_csv(path, dtype=str) for name, path in files.items()}
    checks = published_check.reproduce_published(printed["primary"], printed["reported"], printed["harm"])
    return {r.term: {"published": [r.published, r.published_low, r.published_high],
                     "every_dataset_with_the_published_counts_gives": [r.estimate, r.conf_low, r.conf_high],
                     "reason": "a function of the published counts alone. " + r.note}
            for r in checks.itertuples(index=False) if not r.agree}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calibrate(dataset: synthetic.Dataset = synthetic.REFERENCE, progress=_progress):
    """(dataset with the stage-1 parameters, refine step for `synthetic.write_dataset`)."""
    started = time.perf_counter()
    periods, eligibility, _ = synthetic._study_layout(dataset.study)
    targets = synthetic.read_targets(resolve(dataset.published))
    targets_published = published_targets(dataset.published)

    def generate(parameters, refine):
        return synthetic.generate(parameters, targets, periods, eligibility, refine)

    progress(f"{dataset.name}: calibrating to the published adjusted results (stage 1: Nelder-Mead)")
    theta, stage1_loss = _stage1(dataset.parameters, targets_published, generate, progress)
    calibrated = dataclasses.replace(dataset, parameters=dataclasses.replace(
        dataset.parameters, **dict(zip(STAGE1, map(float, theta), strict=True))))
    progress(f"  stage 1: {', '.join(f'{k} {v:g}' for k, v in zip(STAGE1, theta, strict=True))} "
             f"({time.perf_counter() - started:.0f} s)")

    def refine(draft: synthetic.Draft) -> dict:
        outcome = _stage2(draft, targets_published, dataset.parameters.seed, progress)
        library = outcome.pop("library")
        units = _units(library, targets_published)
        report = {
            "method": "stage 1: scipy.optimize Nelder-Mead over " + ", ".join(STAGE1) + "; stage 2: greedy "
                      "single-patient moves (analysis/analyses/calibration.py)",
            "stage1_loss": stage1_loss, **outcome,
            "reproduced": {key: {q: {"ours": library[key][q], "published": targets_published[key][q].value,
                                     "within_printed_precision": bool(abs(units[(key, q)]) <= 1.0)}
                                 for q in QUANTITIES} for key in OUTCOMES},
            "team_sd": {key: library[key]["team_sd"] for key in OUTCOMES},
            "not_reachable_from_the_published_counts": unreachable(dataset.published),
        }
        progress(f"  calibration done in {time.perf_counter() - started:.0f} s")
        return report

    return calibrated, refine


# The datasets written calibrated, with the interface of the generators' modules (`python -m analysis
# synthesize` takes DATASETS, write_dataset and check_dataset from each).
DATASETS = {synthetic.REFERENCE.name: synthetic.REFERENCE}


def write_dataset(dataset: synthetic.Dataset = synthetic.REFERENCE, folder=None, progress=_progress):
    """`synthetic.write_dataset` with the calibration: the stage-1 parameters and the stage-2 refine."""
    calibrated, refine = calibrate(dataset, progress)
    return synthetic.write_dataset(calibrated, folder, refine)


def check_dataset(dataset: synthetic.Dataset = synthetic.REFERENCE, progress=_progress):
    """`synthetic.check_dataset` of the calibrated dataset: the committed files that differ."""
    calibrated, refine = calibrate(dataset, progress)
    return synthetic.check_dataset(calibrated, refine)
