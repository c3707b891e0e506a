"""Statistical disclosure control: the rules a trusted research environment's output checker applies.

The rules, their names and their defaults are ACRO's (the SACRO project's output checker, PyPI `acro`
1.0.2, `acro/default.yaml` and `acro/sdcchecks.py`), so that a TRE's checker recognises them:

- `MinimumThresholdCheck`: a cell counting fewer than `safe_threshold` (10) units fails;
- `PresenceOfZeroCheck`: a cell counting zero fails when `zeros_are_disclosive` (true);
- `NKCheck`: a magnitude cell whose `safe_nk_n` (2) largest contributions make `safe_nk_k` (90%) or more
  of its total fails;
- `PPercentCheck`: a magnitude cell fails when what is left after its two largest contributions is less
  than `safe_pratio_p` (10%) of the largest (the one contributor can then estimate another closely);
- `MinimumDoFCheck`: a model with fewer than `safe_dof_threshold` (10) residual degrees of freedom fails.

A check's status is ACRO's: `pass`, `fail`, or `review` (a human decides: a dominance check with negative
values, or a table whose failing cells were suppressed, which ACRO also marks `review`).

ACRO itself is not imported (it pins pandas <= 2.3.3 and this project runs pandas 3): the rules are
written here, and tests/test_disclosure_acro.py checks them cell by cell against ACRO's own outputs,
stored by tests/reference/acro/generate.py.

ACRO leaves differencing to the human checker (its `PresenceOfLinkedTableCheck` only says so);
`secondary_suppression` does it here: a suppressed cell that could be recovered from a published total
gets a partner suppressed, until no suppressed cell is determined by the totals.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative

THRESHOLD, ZERO, NK, PPERCENT, DOF = (
    "MinimumThresholdCheck", "PresenceOfZeroCheck", "NKCheck", "PPercentCheck", "MinimumDoFCheck")
SECONDARY = "SecondarySuppression"
ROW_COUNT = "row count"
LEDGER = "ledger"
SMALL_GROUP = "small group"
PASS, FAIL, REVIEW = "pass", "fail", "review"
# why a cell was hidden, for the SDC report
REASONS = {
    THRESHOLD: "a count below the threshold",
    ZERO: "a zero count (zeros are disclosive under this profile)",
    NK: "dominated by its largest contributors (n, k rule)",
    PPERCENT: "its largest contributor could be estimated by the second (p-ratio rule)",
    SECONDARY: "recoverable by differencing from a total and the cells shown (secondary suppression)",
    "derived": "computed from a suppressed count (proportion, percentage, interval or comparison)",
    LEDGER: "the ledger entry it shows is suppressed",
    SMALL_GROUP: "a summary of a group with fewer units than the threshold",
    ROW_COUNT: "a data file's row count, left out as in the released manifest (the flow shows the counts the rules "
               "allow)",
    DOF: "a model with fewer residual degrees of freedom than the threshold (it nearly reproduces its rows)",
}


@dataclass(frozen=True)
class Profile:
    """A TRE's rules, in ACRO's names (`acro/default.yaml`). `safe_round_base` 0: counts are not rounded."""

    name: str
    safe_threshold: int
    safe_dof_threshold: int
    safe_nk_n: int
    safe_nk_k: float
    safe_pratio_p: float
    zeros_are_disclosive: bool
    safe_round_base: int
    marker: str
    description: str


PROFILES = {
    "acro": Profile("acro", 10, 10, 2, 0.90, 0.10, True, 0, "*",
                    "ACRO's defaults: counts under 10 and zeros suppressed, (2, 90%) dominance, p-ratio 10%, "
                    "10 residual degrees of freedom"),
    # NHS England's HES analysis guide: 1 to 7 suppressed, every other count rounded to the nearest 5;
    # a zero is shown (it is not a small number of people)
    "nhs_hes": Profile("nhs_hes", 8, 10, 2, 0.90, 0.10, False, 5, "*",
                       "NHS England HES: counts of 1 to 7 suppressed, others rounded to the nearest 5"),
    # OpenSAFELY's output checking: counts of 7 or fewer (zero included) redacted, others rounded to 5
    "opensafely": Profile("opensafely", 8, 10, 2, 0.90, 0.10, True, 5, "[REDACTED]",
                          "OpenSAFELY: counts of 7 or fewer redacted, others rounded to the nearest 5"),
}


def profile(study: Study) -> Profile | None:
    """The rules that apply to a study's outputs, or None when none do.

    They apply when the data are not synthetic, and to a synthetic study whose `disclosure:` says
    `apply: true` (a preview of a release). Real data cannot switch them off.
    """
    settings = study.disclosure
    applies = (not study.synthetic) if settings is None or settings.apply is None else settings.apply
    if not study.synthetic and not applies:
        raise StudyError(f"{relative(study.file)}: disclosure.apply: the data are not synthetic (synthetic: false), so "
                         "disclosure control cannot be switched off; remove `apply: false`")
    if not applies:
        return None
    if settings is None:
        return PROFILES["acro"]
    overrides = settings.model_dump(exclude={"apply", "profile"}, exclude_none=True)
    return dataclasses.replace(PROFILES[settings.profile], **overrides)


def rules_applied(rules: Profile) -> list[dict]:
    """The rules applied to counts, with their parameters, for the SDC report."""
    applied = [{"rule": THRESHOLD, "safe_threshold": rules.safe_threshold},
               {"rule": ZERO, "zeros_are_disclosive": rules.zeros_are_disclosive},
               {"rule": SECONDARY, "totals": "period totals (and row/column totals of two-way tables) are "
                                             "taken as published"}]
    if rules.safe_round_base:
        applied.append({"rule": "Rounding", "safe_round_base": rules.safe_round_base})
    return applied


def model_rule(rules: Profile) -> dict:
    """The rule applied to the ledger's model estimates (`model_checks`), for the SDC report."""
    return {"rule": DOF, "safe_dof_threshold": rules.safe_dof_threshold}


def ignore_derived(study: Study) -> None:
    """Keep a non-synthetic study's derived (row-level) tables out of git, with a .gitignore that says why.
    Written by every step that writes outputs under the rules, so that it is there before anything could be
    committed, whichever step ran first."""
    if study.synthetic:
        return
    path = study.output_dir / "derived" / ".gitignore"
    text = ("# row-level patient data of a non-synthetic study (synthetic: false): never committed, never released\n"
            "*\n")
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        with atomic_write(path, encoding="utf-8") as handle:
            handle.write(text)


def records_dir(study: Study) -> Path:
    """Where each output's disclosure record is kept, for the release's SDC report."""
    return study.output_dir / "sdc"


def write_record(study: Study, name: str, record: dict) -> Path:
    """Keep what the rules did to one output, for the release's SDC report."""
    ignore_derived(study)
    path = records_dir(study) / f"{name}.json"
    with atomic_write(path, encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True, allow_nan=False, default=str)
        handle.write("\n")
    return path


def read_records(study: Study) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(records_dir(study).glob("*.json"))}


def hidden_families(study: Study, notebook: str | None = None) -> frozenset[str]:
    """The names (`severe` of `severe.events_after`) whose counts the notebooks run so far hid in their ledgers
    (but `notebook`'s own, from an earlier run): every entry under such a name is hidden, whichever notebook
    records it."""
    return frozenset(s["entry"].rpartition(".")[0] for name, record in read_records(study).items()
                     if name.startswith("ledger.") and name != f"ledger.{notebook}"
                     for s in record["suppressed"] if s.get("family"))


def hidden_entries(study: Study) -> frozenset[str]:
    """The ledger entries the notebooks run so far have hidden (from their records)."""
    return frozenset(s["entry"] for name, record in read_records(study).items() if name.startswith("ledger.")
                     for s in record["suppressed"])


def marker(rules: Profile) -> str:
    """How a suppressed value is written, the same in every table, ledger entry and report."""
    return rules.marker


def round_count(value: float, rules: Profile) -> float:
    """A count rounded to the profile's base, as ACRO's `round_table` does (numpy's half-to-even)."""
    base = rules.safe_round_base
    return value if not base else float(np.round(value / base) * base)


# ---------------------------------------------------------------------------------------------------
# The primary rules, cell by cell


def frequency_masks(counts: pd.DataFrame, rules: Profile) -> dict[str, pd.DataFrame]:
    """For a table of counts: which cells fail each rule (True = fails), as ACRO's masks."""
    values = counts.astype(float)
    return {THRESHOLD: values < rules.safe_threshold,
            ZERO: (values == 0) if rules.zeros_are_disclosive else values.ne(values)}


def magnitude_check(data: pd.DataFrame, index: str, columns: str, values: str,
                    rules: Profile) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """For a table of sums (`values` summed by `index` x `columns`, as ACRO's `pivot_table`): which cells
    fail the threshold on their number of contributors, the (n, k) rule and the p-ratio rule, and each
    rule's status.

    As ACRO: the (n, k) share is the sum of the n largest contributions over the cell's total
    (`top_n_sum / sum >= k` fails); the p-ratio is (total - two largest) / largest (`< p` fails, a
    largest of 0 passes). Dominance is not defined with negative contributions: when the table has one,
    both dominance rules are `review` and their masks mark the cells that hold a negative value.
    """
    grouped = data.groupby([index, columns], observed=True)[values]
    count = grouped.size().unstack(columns)
    total = grouped.sum().unstack(columns)
    top_n = grouped.apply(lambda v: v.nlargest(rules.safe_nk_n).sum()).unstack(columns)
    largest = grouped.max().unstack(columns)
    top_2 = grouped.apply(lambda v: v.nlargest(2).sum()).unstack(columns)
    negative = grouped.apply(lambda v: bool((v < 0).any())).unstack(columns).fillna(False).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = top_n / total
        rest = (total - top_2) / largest.where(largest != 0)
    masks = {THRESHOLD: count.isna() | (count < rules.safe_threshold)}
    if negative.to_numpy().any():
        masks.update({NK: negative, PPERCENT: negative})
        return masks, {**status(masks), NK: REVIEW, PPERCENT: REVIEW}
    masks.update({NK: share >= rules.safe_nk_k, PPERCENT: rest.fillna(1.0) < rules.safe_pratio_p})
    return masks, status(masks)


def model_status(df_resid: float, rules: Profile) -> str:
    """ACRO's `MinimumDoFCheck`: a model with fewer residual degrees of freedom than the threshold fails."""
    return FAIL if df_resid < rules.safe_dof_threshold else PASS


def status(masks: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Each rule's status, as ACRO gives it: `fail` if any cell fails, else `pass`."""
    return {rule: FAIL if bool(np.asarray(mask.fillna(True), dtype=bool).any()) else PASS
            for rule, mask in masks.items()}


# ---------------------------------------------------------------------------------------------------
# Secondary suppression


@dataclass
class Suppression:
    """What `secondary_suppression` hides besides the primary cells: cells, and totals (by row or column
    label) that fail the rules or would give a failing one away, to be hidden wherever they appear."""

    cells: pd.DataFrame
    row_totals: list
    column_totals: list


def secondary_suppression(counts: pd.DataFrame, primary: pd.DataFrame, rules: Profile, *, row_totals: bool = True,
                          column_totals: bool = True) -> Suppression:
    """The cells (and totals) to hide besides `primary` so that no hidden cell can be recovered.

    `counts` is a two-way table; NaN marks a cell that does not exist (a month that lies in the other
    period). A total is taken as published whether or not this table shows it (it is elsewhere in the
    outputs: the period's n, a cluster's n), so a row or column whose total is known and that holds one
    hidden cell gives it away. A total that fails the rules itself (under the threshold, or a disclosive
    zero) is hidden wherever it appears; as the totals add up to the grand total, a second total of the
    same margin, the smallest, is then hidden with it. A hidden total's line is no constraint.

    The rule (the simplest one a reader can check by hand): while a row or column with a known total has
    exactly one hidden cell, or hidden cells that are all zeros (their total, 0, tells them), hide its
    smallest shown non-zero cell as well (a zero partner protects nothing: the hidden cell could only
    grow). Lines alone do not settle it (hidden cells can still be pinned down through a chain of other
    lines, and counts cannot be negative), so the result is then checked as an attacker would: the least
    and the most each hidden cell can be, given the cells shown, the totals and counts >= 0 (two linear
    programmes per hidden cell). While one is pinned to a single value, the smallest shown non-zero cell
    of one of its lines is hidden too, and the lines are walked again. Every step hides one more cell, so
    it ends; at worst, with everything hidden.

    This guards against exact recovery, the attack the issue names; it does not give every hidden cell a
    protection interval of a chosen width (tau-argus' optimal patterns do, with a solver this project does
    not carry).
    """
    values = counts.to_numpy(dtype=float)
    exists = ~np.isnan(values)
    hidden = primary.reindex_like(counts).fillna(False).to_numpy(dtype=bool) & exists
    filled = np.where(exists, values, 0.0)
    hidden_rows = _hidden_totals(filled.sum(axis=1), rules) if row_totals else []
    hidden_columns = _hidden_totals(filled.sum(axis=0), rules) if column_totals else []
    lines = [[cell for cell in line if exists[cell]] for line in
             [*([[(i, j) for j in range(values.shape[1])] for i in range(values.shape[0]) if i not in hidden_rows]
                if row_totals else []),
              *([[(i, j) for i in range(values.shape[0])] for j in range(values.shape[1]) if j not in hidden_columns]
                if column_totals else [])]]
    lines = [line for line in lines if line]
    while True:
        changed = False
        for line in lines:
            line_hidden = [cell for cell in line if hidden[cell]]
            if len(line_hidden) == 1 or (line_hidden and not any(values[cell] for cell in line_hidden)):
                partner = _partner(values, hidden, line)
                if partner is not None:
                    hidden[partner] = changed = True
        if changed:
            continue
        pinned = _pinned(values, hidden, lines)
        if not pinned:
            break
        partner = _nearest_partner(values, hidden, lines, pinned[0])
        if partner is None:  # nothing left to hide: the totals give it away whatever we do
            raise ValueError(f"cell {pinned[0]} is determined by the totals and has no cell left to hide with it")
        hidden[partner] = True
    cells = pd.DataFrame(hidden & ~primary.reindex_like(counts).fillna(False).to_numpy(dtype=bool),
                         index=counts.index, columns=counts.columns)
    return Suppression(cells, [counts.index[i] for i in hidden_rows], [counts.columns[j] for j in hidden_columns])


def fails(count: float, rules: Profile) -> str | None:
    """The rule a count fails (None if it may be shown). ACRO's `MinimumThresholdCheck` fails a zero too;
    here a zero is judged by the zero rule alone, so that a profile whose zeros are not disclosive (HES:
    "1 to 7 suppressed") shows them."""
    if count == 0:
        return ZERO if rules.zeros_are_disclosive else None
    return THRESHOLD if count < rules.safe_threshold else None


def _hidden_totals(totals: np.ndarray, rules: Profile) -> list[int]:
    """The totals of one margin to hide: those that fail, and, if only one does, the smallest other one
    (the grand total less the others would give it back)."""
    failing = [k for k, total in enumerate(totals) if fails(total, rules)]
    if len(failing) == 1 and len(totals) > 1:
        failing.append(min((k for k in range(len(totals)) if k not in failing), key=lambda k: (totals[k], k)))
    return sorted(failing)


def _partner(values, hidden, line) -> tuple[int, int] | None:
    shown = [cell for cell in line if not hidden[cell]]
    nonzero = [cell for cell in shown if values[cell] != 0]
    return min(nonzero, key=lambda cell: (values[cell], cell)) if nonzero else None


def _nearest_partner(values, hidden, lines, cell) -> tuple[int, int] | None:
    """A partner for a pinned cell: from one of its own lines if they have a shown cell left, else from the
    lines of the hidden cells it is chained to, nearest first (a cell pinned through a chain is freed by
    a partner anywhere on the chain)."""
    seen, frontier = set(), [cell]
    while frontier:
        reached = [line for line in lines if any(c in line for c in frontier) and id(line) not in seen]
        seen.update(id(line) for line in reached)
        partners = [p for p in (_partner(values, hidden, line) for line in reached) if p is not None]
        if partners:
            return min(partners, key=lambda p: (values[p], p))
        frontier = [c for line in reached for c in line if hidden[c]]
    return None


def _pinned(values, hidden, lines) -> list[tuple[int, int]]:
    """Hidden cells that the totals, the shown cells and counts >= 0 fix to one value."""
    return [cell for cell, (low, high) in feasible_intervals(values, hidden, lines).items() if high - low < 1]


def feasible_intervals(values, hidden, lines) -> dict[tuple[int, int], tuple[float, float]]:
    """The attacker's view: the least and the most each hidden cell can be, given the cells shown, counts >= 0
    and `lines`. A line is a list of cells whose total is published, or a dict cell -> coefficient of cells
    whose weighted sum is 0 (a flow: the stage before less its exclusions less the stage after)."""
    lines = [line if isinstance(line, dict) else dict.fromkeys(line, 1.0) for line in lines]
    unknowns = list(dict.fromkeys(cell for line in lines for cell in line if hidden[cell]))
    if not unknowns:
        return {}
    position = {cell: k for k, cell in enumerate(unknowns)}
    equations = np.zeros((len(lines), len(unknowns)))
    for r, line in enumerate(lines):
        for cell, coefficient in line.items():
            if hidden[cell]:
                equations[r, position[cell]] = coefficient
    # what the hidden cells of a line add up to is what the published total (or 0) less the shown cells leaves
    sums = np.array([sum(c * values[cell] for cell, c in line.items() if hidden[cell]) for line in lines])
    import scipy.optimize  # here: 0.3 s that every `run` and `paper`, which import this module, would pay

    intervals = {}
    for cell, k in position.items():
        objective = np.zeros(len(unknowns))
        objective[k] = 1.0
        low = scipy.optimize.linprog(objective, A_eq=equations, b_eq=sums, bounds=(0, None)).fun
        most = scipy.optimize.linprog(-objective, A_eq=equations, b_eq=sums, bounds=(0, None))
        intervals[cell] = (low, np.inf if most.status == 3 else -most.fun)  # 3: unbounded (no known total holds it)
    return intervals


# the kinds of a flow's stages (`flow_suppression`), and the periods of its counts, in the flow table's order
STAGE, EXCLUSION, INCLUDED, SPLIT = "stage", "exclusion", "included", "split"
FLOW_PERIODS = ("before", "after", "all")


def flow_suppression(kinds: list[str], values: np.ndarray, primary: np.ndarray) -> list[int]:
    """The stages (rows) of a flow to hide so that no count that fails the rules can be worked back.

    `kinds`: each stage's kind in flow order (`STAGE`: the raw table, the period windows; `EXCLUSION`; `INCLUDED`,
    the analysed rows, published everywhere; `SPLIT`: the included with and without an outcome, in pairs);
    `values`: its counts before, after and in all (NaN where it has none); `primary`: the counts that fail.
    A stage with a failing count is hidden whole (its periods add up to its total).

    The flow is linked by what it is: a stage's periods add up to its total, each stage less the exclusions
    after it is the next stage, and the included are those with plus those without each outcome. The included
    are published everywhere, and the raw table's rows (the first stage) are in the manifest; so a hidden
    exclusion comes back as the stage before it less the others and the included. While the attack of
    `feasible_intervals` pins a failing count to one value, one more stage is hidden: from the lines of the
    pinned count, a shown non-zero exclusion first (the smallest: two hidden exclusions share what the stages
    leave them), else the stage it is linked to (the period window, and then the raw table's rows, which the
    release then leaves out of the manifest too: analysis/release.py); if none is linked directly, through the
    hidden stages it is chained to, nearest first. A zero exclusion is never hidden as a partner: nobody was
    excluded, so it is structural (`_exclusion`). The included are never hidden as partners (published).
    Only the failing counts must not be pinned: a partner's count worked back is no count under the threshold.
    """
    values = np.asarray(values, dtype=float)
    exists = ~np.isnan(values)
    # a table of the two periods alone has no total column
    lines = [{(r, 0): 1.0, (r, 1): 1.0, (r, 2): -1.0} for r in range(len(kinds))
             if values.shape[1] == len(FLOW_PERIODS) and exists[r].all()]
    chain = [r for r, kind in enumerate(kinds) if kind in (STAGE, INCLUDED)]
    chain = chain[:chain.index(kinds.index(INCLUDED)) + 1] if INCLUDED in kinds else chain
    for first, second in zip(chain, chain[1:], strict=False):
        excluded = [r for r in range(first + 1, second) if kinds[r] == EXCLUSION]
        for j in range(values.shape[1]):
            if exists[[first, second, *excluded], j].all():
                lines.append({(first, j): 1.0, (second, j): -1.0, **{(r, j): -1.0 for r in excluded}})
    if INCLUDED in kinds:
        included = kinds.index(INCLUDED)
        splits = [r for r in range(included + 1, len(kinds)) if kinds[r] == SPLIT]
        for without, with_ in zip(splits[::2], splits[1::2], strict=True):
            lines += [{(included, j): 1.0, (without, j): -1.0, (with_, j): -1.0} for j in range(values.shape[1])
                      if exists[[included, without, with_], j].all()]
    failing = {(int(r), int(j)) for r, j in zip(*np.nonzero(np.asarray(primary, dtype=bool) & exists), strict=True)}
    rows = {r for r, _ in failing}
    while True:
        hidden = np.zeros(values.shape, dtype=bool)
        hidden[sorted(rows)] = True
        hidden &= exists
        pinned = [cell for cell in _pinned(np.where(exists, values, 0.0), hidden, lines) if cell in failing]
        if not pinned:
            return sorted(rows)
        partner = _flow_partner(kinds, values, rows, lines, pinned[0][0])
        if partner is None:
            raise ValueError(f"the flow's stage {pinned[0][0]} is determined by the published counts and has no stage "
                             "left to hide with it")
        rows.add(partner)


def _flow_partner(kinds, values, rows, lines, start) -> int | None:
    """`flow_suppression`'s next stage to hide: see there."""
    seen, frontier = set(), {start}
    while frontier:
        reached = [k for k, line in enumerate(lines) if k not in seen and {r for r, _ in line} & frontier]
        seen.update(reached)
        linked = {r for k in reached for r, _ in lines[k]}
        candidates = [r for r in linked if r not in rows and kinds[r] != INCLUDED and np.nansum(values[r]) > 0]
        if candidates:
            return min(candidates, key=lambda r: (kinds[r] != EXCLUSION, np.nanmax(values[r]), r))
        frontier = {r for r in linked if r in rows} - frontier
    return None


# ---------------------------------------------------------------------------------------------------
# Tables as the notebooks export them

# "49/121 (40.5%)": events of n, with the percentage; "66 (54.5)": a count with its percentage (Table 1)
EVENTS_OF_N = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*\(\s*-?[\d.]+\s*%\s*\)\s*$")
COUNT_PERCENT = re.compile(r"^\s*(\d+)\s*\(\s*-?[\d.]+\s*%?\s*\)\s*$")
# a column that holds a count of units; `n` of a row is also a denominator
COUNT_COLUMN = re.compile(r"^(events|n|count|patients)(_.+)?$|^n$")
# a text cell that reports a number computed from the row's counts ("-5.0% (95% CI ...)", "p=0.03", "0.14")
RESULT_TEXT = re.compile(r"\d\s*%|\d\s*\(|^\s*p\s*[<=>]|^\s*-?\d+(\.\d+)?\s*$")


@dataclass
class TableReport:
    """What `protect_table` did to one table, for the SDC report."""

    name: str
    rules: dict[str, str]
    suppressed: list[dict]
    review: list[str]

    @property
    def status(self) -> str:
        return REVIEW if self.suppressed or self.review else PASS


def protect_table(name: str, frame: pd.DataFrame, rules: Profile,
                  hidden_entries: frozenset[str] = frozenset()) -> tuple[pd.DataFrame, TableReport]:
    """The table as it may leave the TRE, and what was hidden and why.

    Counts are found by what the notebooks export: a column named `events`, `n`, `count`, `patients` (or
    with a suffix, `n_before`; with `events`, n - events counts too), a text cell "e/n (p%)" (whose n - e is a
    count too), a text cell "c (p)" in a Table 1 row; every number of a flow table (a `Stage` column) and of
    Table 1's `n` row is a count (and a group whose n fails has its whole column hidden). A count that fails the
    threshold or the zero rule is hidden with the profile's marker, and so is every other number of its
    row computed from it (proportion, percentage, interval, comparison), so that it cannot be worked
    back. In a long table of events by period (`period` and `events`, as the monthly and by-cluster
    tables), cells are also hidden by `secondary_suppression` with the period totals known. A table that
    lists ledger entries by `name` (published values beside the study's) hides the study's numbers of a row
    whose entry the ledger hid (`hidden_entries`), keeping the published ones, which are public. Counts left
    shown are rounded when the profile rounds.
    """
    out = frame.astype(object).copy()
    mark = marker(rules)
    reasons: dict[tuple[int, str], str] = {}
    counts: dict[tuple[int, str], list[float]] = {}
    is_flow = "Stage" in frame.columns
    # `events` beside its `n` (or `events_before` beside `n_before`): those without the event count too
    pairs = [(c, "n" + c[len("events"):]) for c in frame.columns
             if str(c).startswith("events") and "n" + str(c)[len("events"):] in frame.columns]
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row, strict=True))
        # Table 1's first row: the number of patients overall and by period
        all_counts = is_flow or (len(row) > 0 and row[0] == "n")
        for column, value in values.items():
            found = _counts_in(column, value, all_counts)
            match = EVENTS_OF_N.match(value) if isinstance(value, str) and rules.safe_round_base else None
            if match:  # rounded, "e/n" shows n - e as the difference of the rounded numbers: that must pass too
                found.append(round_count(int(match[2]), rules) - round_count(int(match[1]), rules))
            if found:
                counts[(i, column)] = found
        for events, n in pairs:
            if (i, events) in counts and _counts_in(n, values[n], all_counts):
                counts[(i, events)].append(float(values[n]) - float(values[events]))
    for cell, found in counts.items():
        if is_flow and _exclusion(frame.iat[cell[0], frame.columns.get_loc("Stage")]):
            found = [c for c in found if c != 0]  # nobody excluded: a structural zero (see `_exclusion`)
        rule = next((fails(c, rules) for c in found if fails(c, rules)), None)
        if rule:
            reasons[cell] = rule
    if is_flow:
        reasons.update(_secondary_flow(frame, reasons))
    # the manifest as a notebook shows it (analysis/show.py `manifest`): the raw main table's rows are the flow's
    # first stage, which `flow_suppression` may hide; left out, as from the released manifest (analysis/release.py)
    if {"path", "rows", "sha256"} <= set(frame.columns):
        reasons.update({(i, "rows"): ROW_COUNT for i, rows in enumerate(frame["rows"])
                        if pd.notna(rows) and str(rows).strip()})
    # a period's `n` (a cluster's patients in the period) add up to the period's published total too
    for count_column in ("events", "count", "n"):
        if {"period", count_column} <= set(frame.columns):
            primary = {c for c in reasons if c[1] == count_column}
            reasons.update(_secondary_long(frame, count_column, primary, rules))
    if "Variable" in frame.columns:
        reasons.update(_secondary_levels(frame, counts, reasons, rules))
    if "name" in frame.columns and hidden_entries:
        for i, entry in enumerate(frame["name"]):
            if entry in hidden_entries:
                reasons.update({(i, column): LEDGER for column in frame.columns
                                if not str(column).startswith("published") and column != "name"
                                and _derived(column, frame.iat[i, frame.columns.get_loc(column)], True)})
    # a row of an outcome whose counts the ledger hid (a model refitted without one cluster, a monthly series):
    # its numbers come from the same few events
    families = {entry.rpartition(".")[0] for entry in hidden_entries}
    for label in [c for c in ("outcome", "key") if c in frame.columns and families]:
        for i, key in enumerate(frame[label]):
            if key in families:
                reasons.update({(i, column): LEDGER for column in frame.columns if column != label
                                and _derived(column, frame.iat[i, frame.columns.get_loc(column)], True)})
    left_out = _left_out(frame, reasons, rules)
    reasons.update(left_out)
    # Table 1: a group whose n fails has every summary of its column computed from too few units
    small_groups = [c for (i, c), rule in reasons.items() if rule in (THRESHOLD, ZERO) and frame.iat[i, 0] == "n"]
    for column in small_groups:
        for i in range(len(frame)):
            if (i, column) not in reasons and _derived(column, frame.iat[i, frame.columns.get_loc(column)], True):
                reasons[(i, column)] = SMALL_GROUP
    # a refit's n hidden only so that it does not give a cluster's size back: its estimate is not computed from it
    sizes_only = {i for (i, column), rule in left_out.items() if column == "n" and rule == SECONDARY
                  and not any(r == i and c != "n" for r, c in reasons)}
    suppressed_rows = {i for i, _ in reasons} - sizes_only
    for i in suppressed_rows:
        for column in frame.columns:
            if (i, column) not in reasons and _derived(column, frame.iat[i, frame.columns.get_loc(column)], is_flow):
                reasons[(i, column)] = "derived"
    for (i, column), _ in reasons.items():
        out.iat[i, out.columns.get_loc(column)] = mark
    if rules.safe_round_base:
        for (i, column) in counts:
            if (i, column) not in reasons:
                out.iat[i, out.columns.get_loc(column)] = _rounded_text(frame.iat[i, frame.columns.get_loc(column)],
                                                                        rules)
    rule_status = {THRESHOLD: FAIL if any(r == THRESHOLD for r in reasons.values()) else PASS,
                   ZERO: FAIL if any(r == ZERO for r in reasons.values()) else PASS}
    review = []
    if reasons:
        review.append("cells were suppressed (ACRO: review); a suppressed count may also be recoverable from "
                      "another output: check the linked tables")
    suppressed = [{"row": i, "column": str(column), "rule": rule, "reason": REASONS[rule]}
                  for (i, column), rule in sorted(reasons.items(), key=lambda x: (x[0][0], str(x[0][1])))]
    return out, TableReport(name, rule_status, suppressed, review)


def _left_out(frame: pd.DataFrame, reasons: dict, rules: Profile) -> dict:
    """A leave-one-cluster-out table (`<cluster>_left_out`, `n`: the rows left when one cluster is left out)
    gives each cluster's size as the total less its `n`, and the total as sum(n) / (clusters - 1). When a
    cluster's size fails the rules, its row (a model of all but a few patients differs from the full model by
    them) and every row's `n` (any one of them, with the total, gives a size back) are hidden."""
    columns = [c for c in frame.columns if str(c).endswith("_left_out")]
    if not columns or "n" not in frame.columns:
        return {}
    found = {}
    for _, part in (frame.groupby("outcome", sort=False) if "outcome" in frame.columns else [(None, frame)]):
        rows = [frame.index.get_loc(label) for label in part.index]
        n = pd.to_numeric(part["n"], errors="coerce").to_numpy(dtype=float)
        if len(rows) < 2 or np.isnan(n).any():
            continue
        sizes = n.sum() / (len(rows) - 1) - n
        small = [row for row, size in zip(rows, sizes, strict=True) if fails(round(size), rules)]
        for row in small:
            found.update({(row, column): SMALL_GROUP for column in frame.columns if column not in columns
                          and _derived(column, frame.iat[row, frame.columns.get_loc(column)], True)})
        if small:
            found.update({(row, "n"): SECONDARY for row in rows if (row, "n") not in reasons})
    return found


def _exclusion(stage) -> bool:
    """A flow's exclusion ("excluded: aged under 18"; in the ledger, its entry's description holds it).

    Its zero is structural and shown: "nobody was excluded for this reason" is about no one, and hiding it
    would protect nothing, as the stages before and after it, which are published (the raw table's rows in the
    manifest, the included n everywhere), give it back. A small non-zero exclusion is hidden, with what
    `flow_suppression` hides so that the same differencing cannot give it back."""
    return isinstance(stage, str) and ("excluded:" in stage)


def _flow_kind(stage: str) -> str:
    """A flow stage's kind for `flow_suppression`, from its words (analysis/data/derive.py `flow`)."""
    if stage == "included in the analysis":
        return INCLUDED
    if stage.startswith("included, "):
        return SPLIT
    return EXCLUSION if _exclusion(stage) else STAGE


def _secondary_flow(frame: pd.DataFrame, reasons: dict) -> dict:
    """`flow_suppression` on a flow table (a `Stage` column and its counts before, after and, if shown, in both
    periods)."""
    columns = [c for c in frame.columns if c != "Stage"]
    numbers = frame[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    if len(columns) not in (2, 3) or not reasons or (numbers.isna() & frame[columns].notna()).any(axis=None):
        return {}  # not the flow's shape, nothing hidden, or a table protected already
    primary = np.array([[reasons.get((i, c)) in (THRESHOLD, ZERO) for c in columns] for i in range(len(frame))])
    rows = flow_suppression([_flow_kind(str(stage)) for stage in frame["Stage"]], numbers.to_numpy(), primary)
    # a failing stage's other counts are hidden as computed from it (`protect_table`); its partners as partners
    partners = [i for i in rows if not any((i, c) in reasons for c in columns)]
    return {(i, c): SECONDARY for i in partners for c in columns if pd.notna(numbers.iat[i, columns.index(c)])}


def _counts_in(column, value, all_counts) -> list[float]:
    """The counts a cell shows; `all_counts`: every number of the row is one (a flow, Table 1's `n` row)."""
    if isinstance(value, str):
        match = EVENTS_OF_N.match(value)
        if match:
            events, n = int(match[1]), int(match[2])
            return [events, n - events, n]
        match = COUNT_PERCENT.match(value)
        if match:
            return [int(match[1])]
        return [int(value)] if all_counts and value.strip().isdigit() else []
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | np.number) or pd.isna(value):
        return []
    if all_counts or COUNT_COLUMN.match(str(column)):
        return [float(value)]
    return []


def _derived(column, value, is_flow) -> bool:
    """Could this cell of a row with a hidden count give the count back? Numbers computed from it and
    result texts can; labels (a month, a team, an outcome's name) cannot, nor another count of the row,
    which is judged on its own (an `n` beside hidden `events` tells nothing of them), except in a flow,
    where a row's periods add up to its total."""
    if isinstance(value, str):
        return bool(RESULT_TEXT.search(value))
    if value is None or isinstance(value, bool) or pd.isna(value):
        return False
    return is_flow or (isinstance(value, float | np.floating) and not COUNT_COLUMN.match(str(column)))


def _rounded_text(value, rules: Profile):
    if isinstance(value, str):
        match = EVENTS_OF_N.match(value)
        if match:
            events, n = (round_count(int(match[k]), rules) for k in (1, 2))
            return f"{events:.0f}/{n:.0f} ({100 * events / n:.1f}%)" if n else value
        match = COUNT_PERCENT.match(value)
        return f"{round_count(int(match[1]), rules):.0f}" if match else value
    return round_count(float(value), rules)


def _secondary_levels(frame: pd.DataFrame, counts: dict, reasons: dict, rules: Profile) -> dict:
    """Secondary suppression in Table 1: a categorical variable's levels add up to the group's n in each
    column, so a column with one hidden level gets a partner; the variable's SMD, computed from every level,
    goes with any hidden level."""
    found = {}
    for _, part in frame.groupby("Variable", sort=False):
        rows = [frame.index.get_loc(label) for label in part.index]
        columns = [c for c in frame.columns if any((i, c) in counts for i in rows)]
        if len(rows) < 2 or not columns:
            continue
        wide = pd.DataFrame([[counts[(i, c)][0] if (i, c) in counts else np.nan for c in columns] for i in rows],
                            index=rows, columns=columns)
        hidden = pd.DataFrame([[(i, c) in reasons for c in columns] for i in rows], index=rows, columns=columns)
        if not hidden.to_numpy().any():
            continue
        extra = secondary_suppression(wide, hidden, rules, row_totals=False, column_totals=True).cells
        for i, c in zip(*np.nonzero(extra.to_numpy()), strict=True):
            found[(rows[i], columns[c])] = SECONDARY
        if "SMD" in frame.columns:
            found.update({(i, "SMD"): "derived" for i in rows if pd.notna(frame.iat[i, frame.columns.get_loc("SMD")])})
    return found


def _secondary_long(frame: pd.DataFrame, column: str, primary: set[tuple[int, str]],
                    rules: Profile) -> dict[tuple[int, str], str]:
    """Secondary suppression of a count column in a long table by period (monthly events, events by
    cluster, counts by level): within each measure (`key`, `outcome`, `measure`), a period's rows add up to
    the period's total, which the ledger publishes."""
    numbers = pd.to_numeric(frame[column], errors="coerce")
    if not primary or (numbers.isna() & frame[column].notna()).any():
        return {}  # nothing hidden, or a table protected already (its hidden counts are unknown here)
    groups = [c for c in ("key", "outcome", "measure") if c in frame.columns]
    found = {}
    for _, part in (frame.groupby(groups, sort=False, dropna=False) if groups else [(None, frame)]):
        rows = [frame.index.get_loc(label) for label in part.index]
        long = pd.DataFrame({"count": numbers[part.index].to_numpy(dtype=float), "period": part["period"].to_numpy(),
                             "row": rows})
        wide = long.pivot(index="row", columns="period", values="count")
        hidden = pd.DataFrame(False, index=wide.index, columns=wide.columns)
        for row, period in zip(long["row"], long["period"], strict=True):
            hidden.loc[row, period] = (row, column) in primary
        extra = secondary_suppression(wide, hidden, rules, row_totals=False, column_totals=True).cells
        for i, _ in zip(*np.nonzero(extra.to_numpy()), strict=True):
            found[(int(wide.index[i]), column)] = SECONDARY
    return found


# ---------------------------------------------------------------------------------------------------
# Ledger entries

# a count of units or events: "Count of events", "Count" (cohort sizes, ordinal levels), "Sum" (events of a count
# outcome)
COUNT_METHOD = re.compile(r"^(Count|Sum)\b")
EVENTS_METHOD = "Count of events"
# `df_resid` is hidden with the numbers: rows less parameters, it would give a hidden `n` back
RESULT_FIELDS = ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "df_resid")
SHOWN_AS = " shown as "


def marker_of(suppressed: str) -> str:
    """The marker a hidden entry's `suppressed` text says it is shown as, so that the prose (analysis/text.py)
    prints the same marker as the tables without knowing the study: the text is "<fields> shown as <marker>:
    <reason> (<rule>)", and the reason and rule come from `REASONS`, so they are cut from the end, whatever
    characters the study's marker holds."""
    for rule, reason in REASONS.items():
        tail = f": {reason} ({rule})"
        if suppressed.endswith(tail):
            return suppressed[:-len(tail)].partition(SHOWN_AS)[2]
    raise ValueError(f"not a suppression written by protect_entries: {suppressed!r}")


def protect_entries(entries: dict[str, dict], rules: Profile,
                    families_elsewhere: frozenset[str] = frozenset()) -> tuple[dict[str, dict], list[dict]]:
    """Ledger entries (as written to JSON) as they may leave the TRE, and what was hidden and why.

    A count (an entry whose `method` starts with "Count" or "Sum") that fails the threshold or the zero
    rule loses its value, and so does every number of every entry under the same name (`harm.events_before`
    hides `harm.proportion_before`, `harm.risk_difference`, ...): with the denominators published, a
    proportion, an interval, a difference, an odds ratio or a test statistic gives the count back. An entry
    whose `n` fails the rules loses its numbers and its `n`. Counts are not rounded here, even when the
    profile rounds: the proportions and intervals beside them would give the exact count back (the SDC
    report says so). A hidden entry loses its warnings too (a model's warning about the same few events gives
    them away), keeps its description and gains `suppressed`, which says what was hidden, by which rule, and how
    it is shown. `families_elsewhere`: the names whose counts another notebook's
    ledger hid (`hidden_families`): an outcome refitted in another notebook is hidden with them.
    """
    mark = marker(rules)
    hidden: dict[str, str] = {}
    small: dict[str, str] = {}
    # ACRO's MinimumDoFCheck, entry by entry: the rows of one model each carry its residual df, and a model's other
    # outputs (another outcome's counts) are not computed from its fit, so its family is not hidden with it
    few_dof = {name: DOF for name, entry in model_checks(entries, rules).items() if entry["status"] == FAIL}
    for name, entry in entries.items():
        structural = name.startswith("flow.") and _exclusion(entry.get("description"))
        # a statistic of fewer units than the threshold (a median of six patients is one patient's value)
        # fails with its n, as in ACRO's tables of means
        if entry.get("n") is not None and not (structural and entry["n"] == 0) and fails(entry["n"], rules):
            small[name] = fails(entry["n"], rules)
        if COUNT_METHOD.match(entry.get("method", "")) and entry.get("estimate") is not None:
            # the units without the event (n - events) are a count too: 62 of 62 accepted is a zero. Only for
            # events of a binary outcome: the `n` of a flow stage or a subgroup is the count itself, and a sum
            # (events of a count outcome, days of exposure) is not part of its n
            complement = entry["method"].startswith(EVENTS_METHOD) and entry.get("n") is not None
            found = [entry["estimate"]] + ([entry["n"] - entry["estimate"]] if complement else [])
            if structural:
                found = [c for c in found if c != 0]
            rule = next((fails(c, rules) for c in found if fails(c, rules)), None)
            if rule:
                hidden[name] = rule
    hidden.update({name: SECONDARY for name in _secondary_flow_entries(entries, {*hidden, *small})
                   if name not in hidden})
    families = {name.rpartition(".")[0] for name in hidden if "." in name} | families_elsewhere
    # the outcome of a small group: its comparisons give the group back (a difference in means and the mean
    # before give the mean of the few after), its other period's own statistics do not
    compared = {name.rpartition(".")[0] for name in small if "." in name}
    out, found = {}, []
    for name, entry in entries.items():
        entry = dict(entry)
        family = name.rpartition(".")[0]
        rule = hidden.get(name) or small.get(name) or few_dof.get(name) or ("derived" if family in families or (
            family in compared and not name.endswith(("_before", "_after"))) else None)
        fields = [f for f in RESULT_FIELDS if entry.get(f) is not None] if rule else []
        # a model's warnings about the same few events give them away too ("no events in one period",
        # "smallest expected count 3.00")
        if rule and entry.get("warnings"):
            fields.append("warnings")
        if name in small:
            fields.append("n")
        if fields:
            for field in fields:
                entry.pop(field)
            entry["suppressed"] = f"{', '.join(fields)}{SHOWN_AS}{mark}: {REASONS[rule]} ({rule})"
            found.append({"entry": name, "fields": fields, "rule": rule, "reason": REASONS[rule],
                          "family": name in hidden or name in small})
        out[name] = entry
    return out, found


def _secondary_flow_entries(entries: dict[str, dict], failing: set[str]) -> list[str]:
    """`flow_suppression` on the ledger's flow entries (`flow.<stage>.<period>`, analysis/analyses/flow.py): the
    entries of the stages to hide besides those that fail. The stages' order and kinds come from their keys
    (analysis/data/derive.py `flow`): the raw table, the rows outside the windows, the windows, the eligibility
    exclusions (any other key), the included, then the included without and with each outcome."""
    stages = {}
    for name in entries:
        prefix, stage, period = (name.split(".") + [""])[:3]
        if prefix == "flow" and period in FLOW_PERIODS and name.count(".") == 2:
            stages.setdefault(stage, {})[period] = name
    if not stages or not failing & {n for by_period in stages.values() for n in by_period.values()}:
        return []
    fixed = {"screened": (0, STAGE), "outside_periods": (1, EXCLUSION), "in_period_window": (2, STAGE),
             "included": (4, INCLUDED)}

    def place(stage: str) -> tuple:
        for kind, start in (("missing", "missing_"), ("with", "with_")):
            if stage.startswith(start):
                return 5, stage[len(start):], kind != "missing", SPLIT
        rank, kind = fixed.get(stage, (3, EXCLUSION))
        return rank, stage, False, kind

    order = sorted(stages, key=place)
    values = np.array([[entries[stages[s][p]].get("estimate", np.nan) if p in stages[s] else np.nan
                        for p in FLOW_PERIODS] for s in order], dtype=float)
    primary = np.array([[stages[s].get(p) in failing for p in FLOW_PERIODS] for s in order])
    rows = flow_suppression([place(s)[3] for s in order], values, primary)
    return [stages[order[r]][p] for r in rows for p in FLOW_PERIODS if p in stages[order[r]]]


def model_checks(entries: dict[str, dict], rules: Profile) -> dict[str, dict]:
    """ACRO's `MinimumDoFCheck` on each ledger entry that comes from a fitted model (it has `df_resid`, see
    `analysis.stats.tidy.with_df_resid`): its status, and its residual df when it passes (a failing model's df,
    rows less parameters, could give a hidden `n` back). For the SDC report and `protect_entries`."""
    checks = {}
    for name, entry in entries.items():
        if entry.get("df_resid") is None:
            continue
        verdict = model_status(entry["df_resid"], rules)
        checks[name] = {"entry": name, "rule": DOF, "status": verdict, "safe_dof_threshold": rules.safe_dof_threshold}
        if verdict == PASS:
            checks[name]["df_resid"] = entry["df_resid"]
    return checks


def overall(statuses: dict[str, str]) -> str:
    """ACRO's overall status of an output: `fail` if a check fails, else `review` if one needs a human."""
    values = set(statuses.values())
    return FAIL if FAIL in values else REVIEW if REVIEW in values else PASS


def hidden_clusters(sizes: pd.DataFrame, rules: Profile, elsewhere=frozenset()) -> dict[str, tuple[str, str]]:
    """The clusters whose random-effect modes may not be shown, each with (rule, reason) for the SDC report.

    A cluster's conditional mode and conditional SD give back its size and, roughly, its events (the SD is
    about sigma / sqrt(1 + sigma^2 n p (1 - p)), and the mode moves with its events less those expected).
    `sizes` has one row per cluster: `level`, `n`, `events`. A cluster is hidden when its n, its events or
    its n - events fails the rules (`fails`); when another output hid its counts (`elsewhere`: the levels
    hidden in a by-cluster or leave-one-cluster-out table, or all of them when the ledger hid the outcome),
    so that the same clusters are hidden everywhere; and when it alone is hidden, the smallest other cluster
    too, since the model's n less the sizes shown would give its size back (as `_hidden_totals`)."""
    hidden = {}
    for level, n, events in zip(sizes["level"].astype(str), sizes["n"], sizes["events"], strict=True):
        rule = next((fails(c, rules) for c in (n, events, n - events) if fails(c, rules)), None)
        if rule:
            hidden[level] = (rule, f"{REASONS[rule]}: the cluster's n, events or n - events")
        elif level in elsewhere:
            hidden[level] = (LEDGER, "its counts are hidden in another output (a table by cluster, a leave-one-"
                                     "cluster-out refit, or the outcome's ledger entries)")
    if len(hidden) == 1 and len(sizes) > 1:
        shown = sizes[~sizes["level"].astype(str).isin(hidden)]
        smallest = shown.sort_values(["n", "level"], key=lambda c: c.astype(str) if c.name == "level" else c)
        hidden[str(smallest["level"].iloc[0])] = (SECONDARY, f"{REASONS[SECONDARY]}: the model's n less the sizes "
                                                             "shown would give the hidden cluster's size")
    return hidden
