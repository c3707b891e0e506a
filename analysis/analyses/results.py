"""Results frames: tidy rows from analysis.stats, named for the ledger and described in one line.

A results frame has the tidy columns (`term` ... `warnings`) plus `name` (the stable dotted ledger
name) and `description`; `published.attach` may add the published value beside each row. The
notebooks display these frames and record them, row for row, with `Ledger.record_frame`.
"""

from __future__ import annotations

import pandas as pd

from analysis.stats import COLUMNS


def named(frame: pd.DataFrame, prefix: str, terms: dict[str, tuple[str, str]], label: str = "") -> pd.DataFrame:
    """Keep the rows whose `term` is in `terms` (in that order), naming each `prefix.suffix`.

    `terms` maps term -> (suffix, description template); `{label}` in a template is replaced by `label`.
    A term missing from `frame` is an error: a result silently dropped from the ledger would be lost.
    """
    missing = [term for term in terms if term not in set(frame["term"])]
    if missing:
        raise KeyError(f"{prefix}: no row for term(s) {missing}; rows are {frame['term'].tolist()}")
    rows = frame.set_index("term").loc[list(terms)].reset_index()
    rows.insert(0, "name", [f"{prefix}.{terms[t][0]}" for t in rows["term"]])
    rows.insert(1, "description", [terms[t][1].format(label=label) for t in rows["term"]])
    # a model's residual degrees of freedom (`analysis.stats.tidy.with_df_resid`) go to the ledger with its rows
    return rows[["name", "description", *COLUMNS, *[c for c in ("df_resid",) if c in rows.columns]]]


def not_estimated(prefix: str, terms: dict[str, tuple[str, str]], label: str, reason: str, **fields) -> pd.DataFrame:
    """The rows `named` would give, with no value and `reason` as their warning: an analysis the data
    do not allow is recorded as such, not dropped. `fields` fill further `{...}` in the descriptions."""
    rows = [dict.fromkeys(COLUMNS) | {"term": term, "method": "not estimated", "warnings": reason}
            for term in terms]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame.insert(0, "name", [f"{prefix}.{terms[t][0]}" for t in terms])
    frame.insert(1, "description", [terms[t][1].format(label=label, **fields) for t in terms])
    return frame


def value(name: str, description: str, estimate: float, method: str, n: int | None = None) -> pd.DataFrame:
    """A one-row results frame for a number that is not a model output (a count, a setting)."""
    row = dict.fromkeys(COLUMNS)
    row.update(term=name.rsplit(".", 1)[-1], estimate=estimate, method=method, n=n, warnings="")
    return pd.DataFrame([{"name": name, "description": description, **row}])


def combine(*frames: pd.DataFrame) -> pd.DataFrame:
    """The frames one after the other; with none (nothing to report), an empty results frame."""
    kept = [f for f in frames if len(f)]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=["name", "description", *COLUMNS])
