"""Notebook 02_cohort: Table 1 by period, with standardised mean differences (tableone).

The rows are the study's `table_one` columns of its main table (by default its covariates and its
cluster), labelled and summarised as their declarations say."""

from __future__ import annotations

import warnings

import pandas as pd
from tableone import TableOne

from analysis.analyses.results import combine, value
from analysis.config import Study

SMD_LIMIT = 0.1  # the usual threshold for a meaningful imbalance (Austin 2009)


def variables(study: Study, patients: pd.DataFrame) -> dict[str, str]:
    """Table 1's columns and their labels (a declared `label`, else the column's name)."""
    source = study.tables[study.main_table]
    labels = {}
    for column in study.table_one_columns():
        declared = source.derive.get(column) or source.spec(column)
        labels[column] = declared.label or column
    return {c: label for c, label in labels.items() if c in patients.columns}


def _categorical(patients: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if not pd.api.types.is_numeric_dtype(patients[c]) or
            pd.api.types.is_bool_dtype(patients[c])]


def _skewed(study: Study, columns) -> list[str]:
    source = study.tables[study.main_table]
    return [c for c in columns if (source.derive.get(c) or source.spec(c)).skewed]


def table_one(patients: pd.DataFrame, study: Study) -> TableOne | None:
    """tableone's Table 1 by period; its SMDs compare before and after (Yang and Dalton 2012). None when
    the study has no Table 1 variables."""
    names = variables(study, patients)
    if not names:
        return None
    labels = study.period.labels()
    data = patients[list(names) + ["period"]].copy()
    data["period"] = data["period"].astype(str).map(labels)
    categorical = _categorical(patients, names)
    for column in categorical:
        data[column] = data[column].astype(str)
    with warnings.catch_warnings():
        # tableone 0.9.6 sets rows on a MultiIndex the way pandas 3 deprecates; the table is unaffected
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an SMD of a constant column is NaN: kept
        return TableOne(
            data,
            columns=list(names),
            categorical=categorical,
            nonnormal=_skewed(study, names),
            groupby="period",
            order={"period": [labels["before"], labels["after"]]},
            rename=names,
            smd=True,
            pval=False,
            missing=False,
            decimals=1,
        )


def table_one_frame(table: TableOne | None) -> pd.DataFrame:
    """Table 1 as a flat frame for display and CSV export (variable, level, overall, periods, SMD)."""
    if table is None:
        return pd.DataFrame(columns=["Variable", "Level"])
    frame = table.tableone.copy()
    frame.columns = [column[-1] for column in frame.columns]
    frame = frame.reset_index()
    frame.columns = ["Variable", "Level", *frame.columns[2:]]
    return frame.rename(columns=lambda c: "SMD" if str(c).startswith("SMD") else c)


def smd_results(table: TableOne | None, patients: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The SMD of every Table 1 variable, the number of rows per period, as ledger entries."""
    unit = study.unit(study.main_table)
    frames = [
        value(f"cohort.{unit}_{period}", f"{unit.capitalize()} in the {period} period",
              int((patients.period == period).sum()), "Count")
        for period in ("before", "after")
    ]
    if table is None:
        return combine(*frames)
    smd = table.smd_table.iloc[:, 0]
    for variable, label in variables(study, patients).items():
        frames.append(value(f"cohort.smd.{variable}", f"Standardised mean difference, after vs before: {label}",
                            float(smd.loc[variable]), "Standardised mean difference (tableone; categorical: "
                            "Yang and Dalton 2012)", n=len(patients)))
    frames.append(value("cohort.smd.largest", "Largest standardised mean difference among Table 1 variables",
                        float(smd.abs().max()), "Maximum absolute SMD (tableone)", n=len(patients)))
    return combine(*frames)


def imbalanced(results: pd.DataFrame, study: Study, patients: pd.DataFrame) -> list[str]:
    """Table 1 variables whose SMD exceeds the usual 0.1, for a sentence in the notebook."""
    labels = variables(study, patients)
    rows = results[results["name"].str.startswith("cohort.smd.") & (results["name"] != "cohort.smd.largest")]
    return [labels[n.rsplit(".", 1)[-1]] for n, v in zip(rows["name"], rows["estimate"], strict=True)
            if abs(v) > SMD_LIMIT]


def findings(study: Study, results: pd.DataFrame, patients: pd.DataFrame) -> str:
    """What Table 1 showed, as a template of cohort entries."""
    unit = study.unit(study.main_table)
    text = (f"The before and after periods had {{{{ cohort.{unit}_before | int }}}} and "
            f"{{{{ cohort.{unit}_after | int }}}} {unit}.")
    if "cohort.smd.largest" in set(results["name"]):
        names = "; ".join(imbalanced(results, study, patients)) or "none"
        text += (" The largest standardised mean difference was {{ cohort.smd.largest | est }}; variables above "
                 f"the conventional threshold for imbalance ({SMD_LIMIT}): {names}.")
    return text
