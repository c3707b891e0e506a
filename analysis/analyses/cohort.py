"""Notebook 02_cohort: Table 1 by period, with standardised mean differences (tableone)."""

from __future__ import annotations

import warnings

import pandas as pd
from tableone import TableOne

from analysis.analyses.results import combine, value
from analysis.config import Study

VARIABLES = {
    "age": "Age, years",
    "sex": "Sex",
    "charlson": "Charlson comorbidity index",
    "n_medicines": "Regular medicines before admission",
    "length_of_stay": "Length of stay, days",
    "team": "Medical team",
}
CATEGORICAL = ["sex", "team"]
SKEWED = ["charlson", "n_medicines", "length_of_stay"]  # shown as median [Q1, Q3]
SMD_LIMIT = 0.1  # the usual threshold for a meaningful imbalance (Austin 2009)


def table_one(patients: pd.DataFrame, study: Study) -> TableOne:
    """tableone's Table 1 by period; its SMDs compare before and after (Yang and Dalton 2012)."""
    data = patients[list(VARIABLES) + ["period"]].copy()
    data["period"] = data["period"].map({"before": study.periods.before.label, "after": study.periods.after.label})
    data["sex"] = data["sex"].astype(str)
    with warnings.catch_warnings():
        # tableone 0.9.6 sets rows on a MultiIndex the way pandas 3 deprecates; the table is unaffected
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        return TableOne(
            data,
            columns=list(VARIABLES),
            categorical=CATEGORICAL,
            nonnormal=SKEWED,
            groupby="period",
            order={"period": [study.periods.before.label, study.periods.after.label]},
            rename=VARIABLES,
            smd=True,
            pval=False,
            missing=False,
            decimals=1,
        )


def table_one_frame(table: TableOne) -> pd.DataFrame:
    """Table 1 as a flat frame for display and CSV export (variable, level, overall, periods, SMD)."""
    frame = table.tableone.copy()
    frame.columns = [column[-1] for column in frame.columns]
    frame = frame.reset_index()
    frame.columns = ["Variable", "Level", *frame.columns[2:]]
    return frame.rename(columns=lambda c: "SMD" if str(c).startswith("SMD") else c)


def smd_results(table: TableOne, patients: pd.DataFrame) -> pd.DataFrame:
    """The SMD of every Table 1 variable, the number of patients per period, as ledger entries."""
    smd = table.smd_table.iloc[:, 0]
    frames = [
        value("cohort.patients_before", "Patients in the before period", int((patients.period == "before").sum()),
              "Count"),
        value("cohort.patients_after", "Patients in the after period", int((patients.period == "after").sum()),
              "Count"),
    ]
    for variable, label in VARIABLES.items():
        frames.append(value(f"cohort.smd.{variable}", f"Standardised mean difference, after vs before: {label}",
                            float(smd.loc[variable]), "Standardised mean difference (tableone; categorical: "
                            "Yang and Dalton 2012)", n=len(patients)))
    frames.append(value("cohort.smd.largest", "Largest standardised mean difference among Table 1 variables",
                        float(smd.abs().max()), "Maximum absolute SMD (tableone)", n=len(patients)))
    return combine(*frames)


def imbalanced(results: pd.DataFrame) -> list[str]:
    """Table 1 variables whose SMD exceeds the usual 0.1, for a sentence in the notebook."""
    rows = results[results["name"].str.startswith("cohort.smd.") & (results["name"] != "cohort.smd.largest")]
    return [VARIABLES[n.rsplit(".", 1)[-1]] for n, v in zip(rows["name"], rows["estimate"], strict=True)
            if abs(v) > SMD_LIMIT]
