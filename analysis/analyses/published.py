"""The published values of a study, by the ledger names of the quantities they correspond to.

Every row of the published tables (data_raw/published/) maps to one ledger name, in the ledger's own
scale and direction: percentages become proportions, and differences published as "before minus
after" (Tallon et al. report the MAI mean differences that way) change sign to "after minus before".
`attach` puts them beside the study's own results; `listing` tabulates all of them for a reviewer.

Given the tables as printed (every cell as text, `analysis.data.published_as_printed`), each value also
carries its tolerance: half a unit of its last printed digit, in the ledger's scale (0 for a proportion
computed from two published counts, which a study reproduces exactly or not at all).
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

GRIMES = "Grimes et al. 2014 (BMJ Qual Saf), Table 4"
GRIMES_TEXT = "Grimes et al. 2014 (BMJ Qual Saf), text"
TALLON = "Tallon et al. 2016 (Eur J Hosp Pharm)"
HOSPITAL = "hospital's head of pharmacy (no denominators published)"

# grimes2014_primary.csv: outcome row -> the ledger prefix of the same outcome
PRIMARY = {
    "error_at_admission": "admission_error",
    "error_at_discharge": "discharge_error",
    "error_at_discharge_missing_as_error": "discharge_error_missing_as_error",
    "error_at_discharge_missing_as_no_error": "discharge_error_missing_as_no_error",
}

# grimes2014_reported.csv: (quantity, group) -> (ledger name, scale, source).
# Medians with IQR map to three names (median, quartile 1, quartile 3), as the ledger keeps them apart.
REPORTED = {
    ("patients", "standard"): ("flow.included.before", 1, GRIMES_TEXT),
    ("patients", "team"): ("flow.included.after", 1, GRIMES_TEXT),
    ("patients_with_discharge_outcome", "standard"): ("flow.with_discharge_outcome.before", 1, GRIMES_TEXT),
    ("patients_with_discharge_outcome", "team"): ("flow.with_discharge_outcome.after", 1, GRIMES_TEXT),
    ("harm_vas_median", "standard"): ("harm_vas.median_before", 1, GRIMES_TEXT),
    ("harm_vas_median", "team"): ("harm_vas.median_after", 1, GRIMES_TEXT),
    ("nnt_any_error_at_discharge", "team_vs_standard"): ("discharge_error.nnt", 1, GRIMES_TEXT),
    ("nnt_severe_error_at_discharge", "team_vs_standard"): ("severe_discharge_error.nnt", 1, GRIMES_TEXT),
    ("mai_patients_65_plus", "standard"): ("mai.patients_before", 1, GRIMES_TEXT),
    ("mai_patients_65_plus", "team"): ("mai.patients_after", 1, GRIMES_TEXT),
    ("mai_change_pre_admission_to_discharge", "standard"): ("mai.change_discharge.median_before", 1, GRIMES_TEXT),
    ("mai_change_pre_admission_to_discharge", "team"): ("mai.change_discharge.median_after", 1, GRIMES_TEXT),
    ("mai_mean_difference_pre_admission_to_admission", "team_vs_standard"): (
        "mai.change_admission.mean_difference", -1, TALLON),
    ("mai_mean_difference_pre_admission_to_discharge", "team_vs_standard"): (
        "mai.change_discharge.mean_difference", -1, TALLON),
    ("drugs_with_inappropriate_rating_at_discharge_pct", "standard"): ("mai.inappropriate_drugs_before", 0.01, TALLON),
    ("drugs_with_inappropriate_rating_at_discharge_pct", "team"): ("mai.inappropriate_drugs_after", 0.01, TALLON),
    ("suggestion_acceptance_pct", "standard"): ("acceptance.proportion_before", 0.01, HOSPITAL),
    ("suggestion_acceptance_pct", "team"): ("acceptance.proportion_after", 0.01, HOSPITAL),
}

COLUMNS = ["name", "published_estimate", "published_low", "published_high", "published_p_value", "published_source",
           "published_tolerance", "published_low_tolerance", "published_high_tolerance"]


def _number(cell) -> float | None:
    if cell is None or (isinstance(cell, str) and not cell.strip()) or (not isinstance(cell, str) and pd.isna(cell)):
        return None
    return float(cell)


def _tolerance(cell, scale: float = 1.0) -> float | None:
    """Half a unit of the cell's last printed digit, scaled; None unless the cell is text (a number read
    as a number has lost its printed digits: 0.30 became 0.3)."""
    if not isinstance(cell, str) or not cell.strip():
        return None
    return 0.5 * 10.0 ** Decimal(cell.strip()).as_tuple().exponent * abs(scale)


def values(published: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per published number: its ledger name and value (empty when nothing was published), and,
    for tables as printed, its tolerance."""
    rows: list[dict] = []
    if not published:
        return pd.DataFrame(columns=COLUMNS)

    def add(name, estimate=None, low=None, high=None, p=None, source=GRIMES, scale=1.0, exact=False):
        shown = p if p is not None else estimate
        tolerances = [0.0 if exact else _tolerance(shown, scale), _tolerance(low, scale), _tolerance(high, scale)]
        if scale < 0:
            low, high = high, low
            tolerances[1:] = tolerances[2], tolerances[1]
        numbers = [None if _number(v) is None else _number(v) * scale for v in (estimate, low, high)]
        rows.append(dict(zip(COLUMNS, [name, *numbers, _number(p), source, *tolerances], strict=True)))

    for row in published["primary"].itertuples(index=False):
        prefix = PRIMARY[row.outcome]
        add(f"{prefix}.events_before", row.standard_events)
        add(f"{prefix}.events_after", row.team_events)
        add(f"{prefix}.proportion_before", _number(row.standard_events) / _number(row.standard_n), exact=True)
        add(f"{prefix}.proportion_after", _number(row.team_events) / _number(row.team_n), exact=True)
        add(f"{prefix}.odds_ratio_unadjusted", row.or_unadjusted, row.or_unadjusted_low, row.or_unadjusted_high)
        add(f"{prefix}.odds_ratio_adjusted", row.or_adjusted, row.or_adjusted_low, row.or_adjusted_high)
        add(f"{prefix}.hosmer_lemeshow", p=row.hosmer_lemeshow_p)
        add(f"{prefix}.nagelkerke_r2", row.nagelkerke_r2)
    for row in published["harm"].itertuples(index=False):
        add(f"harm.{row.potential_harm_at_discharge}_before", row.standard_n)
        add(f"harm.{row.potential_harm_at_discharge}_after", row.team_n)
    for row in published["reported"].itertuples(index=False):
        name, scale, source = REPORTED[(row.quantity, row.group)]
        if row.kind == "median_iqr":
            # the IQR is no confidence interval: its ends are ledger entries of their own
            add(name, row.value, source=source)
            add(name.replace("median_", "quartile_1_"), row.low, source=source)
            add(name.replace("median_", "quartile_3_"), row.high, source=source)
        elif _number(row.low) is None:
            add(name, row.value, source=source, scale=scale)
        else:
            add(name, row.value, row.low, row.high, source=source, scale=scale)
    return pd.DataFrame(rows, columns=COLUMNS)


def attach(results: pd.DataFrame, published: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The results frame with the published value (if any) beside each row, matched by ledger name."""
    return results.merge(values(published), on="name", how="left", validate="one_to_one")
