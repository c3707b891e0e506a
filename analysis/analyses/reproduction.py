"""Notebook 06_published: what the published numbers say on their own, and how ours compare.

Two questions for a reviewer. First, do the published figures follow from the published counts
(odds ratios, NNTs, the harm test, and what denominators the acceptance percentages allow)? That
needs only the publication. Second, beside each published number, what did this study's data give?
"""

from __future__ import annotations

import pandas as pd

from analysis.analyses import published as published_values
from analysis.analyses import published_check
from analysis.analyses.results import combine, named, value
from analysis.ledger import Entry

DENOMINATORS = (50, 100, 200, 400)
# The head of pharmacy said "98%"; data_raw/published/grimes2014_reported.csv transcribes it as 98.0,
# which would claim a precision of one decimal that was never printed.
PRINTED_DECIMALS = {"team": 0}


def from_counts(printed: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every published odds ratio, NNT and the harm test recomputed from the published counts alone:
    (results frame, the table for reviewers with published value, ours, tolerance and agreement)."""
    table = published_check.reproduce_published(printed["primary"], printed["reported"], printed["harm"])
    terms = {term: (term.replace(":", "."), f"Recomputed from the published counts: {term.replace(':', ', ')}")
             for term in table["term"]}
    results = named(table, "published_check", terms)
    results = results.assign(
        published_estimate=table["published"].astype(float).to_numpy(),
        published_low=table["published_low"].astype(float).to_numpy(),
        published_high=table["published_high"].astype(float).to_numpy(),
        published_source=published_values.GRIMES,
    )
    agreeing = int(table["agree"].astype(bool).sum())
    results = combine(results,
                      value("published_check.checked", "Published quantities recomputed from the published counts",
                            len(table), "Count"),
                      value("published_check.agreeing", "Of those, how many agree within the tolerance their "
                            "printed digits imply", agreeing, "Count"))
    return results, table


def disagreeing(table: pd.DataFrame) -> list[str]:
    """The recomputed quantities that do not match what was printed."""
    return table.loc[~table["agree"].astype(bool), "term"].tolist()


def acceptance(printed: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The smallest denominators consistent with 67.5% and 98% as printed, and how the tests depend on
    the denominators: (results frame, denominators table, sensitivity table)."""
    smallest = published_check.acceptance_denominators(printed["reported"], decimals=PRINTED_DECIMALS)
    sensitivity = published_check.acceptance_sensitivity(printed["reported"], denominators=DENOMINATORS,
                                                         decimals=PRINTED_DECIMALS)
    results = named(smallest, "published_check.acceptance", {
        "smallest_denominator:standard": ("smallest_denominator_before", "Acceptance: the smallest number of "
                                          "suggestions before that gives the published percentage as printed"),
        "smallest_denominator:team": ("smallest_denominator_after", "Acceptance: the smallest number of "
                                      "suggestions after that gives the published percentage as printed"),
    })
    fisher = sensitivity[sensitivity["term"] == "fisher"]
    fisher = fisher.assign(term=["fisher_" + scenario.replace(" ", "_") for scenario in fisher["scenario"]])
    results = combine(results, named(fisher, "published_check.acceptance", {
        term: (term, f"Acceptance: Fisher's exact p with denominators: {scenario}")
        for term, scenario in zip(fisher["term"], fisher["scenario"], strict=True)
    }))
    return results, smallest, sensitivity


def _paper_discrepancies(printed: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Ledger name -> why the published number cannot be reached: those the published counts alone
    decide (unadjusted odds ratios, NNTs), where the recomputation from the counts disagrees with the
    paper, so that no dataset with the published counts can give the printed number."""
    table = published_check.reproduce_published(printed["primary"], printed["reported"], printed["harm"])
    names = {f"or_unadjusted:{outcome}": f"{prefix}.odds_ratio_unadjusted"
             for outcome, prefix in published_values.PRIMARY.items()}
    names.update({quantity: name for (quantity, _), (name, _, _) in published_values.REPORTED.items()})
    return {names[r.term]: r.note for r in table.itertuples(index=False) if not r.agree and r.term in names}


def beside(entries: dict[str, Entry], published: dict[str, pd.DataFrame],
           printed: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every published number beside this study's own (from its ledger); `ours` empty where the study's
    data cannot give it (for example no medicine-level MAI ratings).

    With the tables as printed (`analysis.data.published_as_printed`), also `agree` (ours within half a
    unit of each printed digit: estimate, and the limits where both have them) and a `note` saying why
    where they do not: "not reachable from the published counts" with the recomputation's reason for
    the numbers the counts alone decide (see `from_counts`), or that the study's data cannot give it."""
    rows = []
    unreachable = _paper_discrepancies(printed) if printed else {}
    for row in published_values.values(printed or published).itertuples(index=False):
        entry = entries.get(row.name)
        ours = entry.estimate if entry is not None else None
        if entry is not None and ours is None:
            ours = entry.p_value
        published_value = row.published_p_value if pd.notna(row.published_p_value) else row.published_estimate
        agree, note = None, ""
        if ours is None:
            note = "not computable from this study's data"
        elif printed:
            pairs = [(ours, published_value, row.published_tolerance)]
            pairs += [(entry.conf_low, row.published_low, row.published_low_tolerance),
                      (entry.conf_high, row.published_high, row.published_high_tolerance)]
            agree = all(abs(o - p) <= t + 1e-12 for o, p, t in pairs
                        if o is not None and pd.notna(p) and t is not None and pd.notna(t))
            if not agree:
                note = (f"not reachable from the published counts: {unreachable[row.name]}" if row.name in unreachable
                        else "disagrees beyond the printed precision")
        rows.append({
            "name": row.name,
            "description": entry.description if entry else "not computable from this study's data",
            "published": published_value,
            "published_low": row.published_low,
            "published_high": row.published_high,
            "ours": ours,
            "ours_low": entry.conf_low if entry else None,
            "ours_high": entry.conf_high if entry else None,
            "source": row.published_source,
            **({"agree": agree, "note": note} if printed else {}),
        })
    return pd.DataFrame(rows)
