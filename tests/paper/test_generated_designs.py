"""The generated manuscript states the declared design: the design check's warnings (Cochrane EPOC) in the
Limitations, and a controlled before-after study's difference in differences in the Results."""

from __future__ import annotations

from analysis import ledger, paper
from analysis.config import load_study
from analysis.paper import generated

PROVENANCE = {"notebook": "01_data", "parameters_sha256": "p", "data_sha256": "d"}
SITES = "Fewer than 2 control sites (1): EPOC's minimum criteria ... (Cochrane EPOC, 2017)."


def entry(description: str, **numbers) -> ledger.Entry:
    return ledger.Entry.model_validate({"description": description, "provenance": PROVENANCE, **numbers})


def controlled_entries() -> dict[str, ledger.Entry]:
    did = "discharge_error.did"
    entries = {
        "design_check.intervention_sites": entry("intervention sites", estimate=1, warnings=[SITES]),
        "design_check.control_sites": entry("control sites", estimate=1, warnings=[SITES]),
        "design_check.contemporaneous": entry("months", estimate=0),
        **{f"{did}.proportion_{g}_{p}": entry("p", estimate=0.5, conf_low=0.4, conf_high=0.6, n=240)
           for g in ("intervention", "control") for p in ("before", "after")},
        **{f"{did}.{t}": entry("d", estimate=-0.3, conf_low=-0.4, conf_high=-0.2, p_value=0.001, n=960)
           for t in ("risk_difference_intervention", "risk_difference_control", "difference_in_differences",
                     "difference_in_differences_mover")},
        **{f"{did}.ratio_of_odds_ratios_{s}": entry("r", estimate=0.15, conf_low=0.1, conf_high=0.2, p_value=0.001)
           for s in ("mixed", "cluster_robust", "wild_bootstrap")},
    }
    return entries


def test_a_controlled_study_states_its_design_its_did_and_the_epoc_warnings():
    study = load_study("controlled")
    source = generated.manuscript(study, controlled_entries())
    assert 'subtitle: "A controlled before-after study, on synthetic data"' in source
    assert "An uncontrolled before-after" not in source
    results = source.split("# Results")[1].split("# Discussion")[0]
    assert "{{ discharge_error.did.difference_in_differences | pp_ci }}" in results
    assert "{{ discharge_error.did.ratio_of_odds_ratios_wild_bootstrap | est_ci }} by the wild cluster bootstrap" in \
        results
    limitations = source.split("## Limitations")[1].split("## Conclusions")[0]
    assert ("{{ warning: design_check.control_sites }} {{ warning: design_check.intervention_sites }}"
            in limitations)
    assert "design_check.contemporaneous" not in limitations  # met: no warning
    assert paper.stray_numbers(source, paper.declared_texts(study)) == []
    text = paper.render_source(study, paper.Source(source, "controlled", generated=True), controlled_entries())
    assert SITES in text.replace("\\", "")


def test_an_uncontrolled_study_lists_the_design_check_warning_in_place_of_the_generic_sentence():
    study = load_study("discrepancy")
    warning = "Uncontrolled before-after design: ... strongly discourages ... (Cochrane EPOC, 2017)."
    entries = {"design_check.controlled": entry("control groups", estimate=0, warnings=[warning])}
    limitations = generated.manuscript(study, entries).split("## Limitations")[1].split("## Conclusions")[0]
    assert "{{ warning: design_check.controlled }}" in limitations
    assert "An uncontrolled before-after design cannot separate" not in limitations
    # a ledger written before the design check keeps the generic sentence
    older = generated.manuscript(study, {}).split("## Limitations")[1]
    assert "An uncontrolled before-after design cannot separate" in older


def test_the_reference_manuscript_names_the_design_check_in_its_limitations():
    text = paper.SOURCE.read_text(encoding="utf-8")
    limitations = text.split("## Limitations")[1].split("## Conclusions")[0]
    assert "{{ warning: design_check.controlled }}" in limitations


def test_a_controlled_study_with_time_points_reports_its_pre_period_trends():
    study = load_study("controlled")
    did = "discharge_error.did"
    entries = {**controlled_entries(),
               f"{did}.parallel_trends_wald": entry("w", statistic=2.1, df=3, p_value=0.55, n=480),
               f"{did}.pre_trend_ratio": entry("r", estimate=0.9, conf_low=0.6, conf_high=1.3, p_value=0.6)}
    source = generated.manuscript(study, entries)
    design = source.split("## Study of the intervention")[1].split("## Measures")[0]
    assert "parallel courses before the change is examined by quarter" in design
    results = source.split("# Results")[1].split("# Discussion")[0]
    assert "{{ discharge_error.did.parallel_trends_wald | p }}" in results
    assert "{{ discharge_error.did.pre_trend_ratio | est_ci }}" in results and "little power" in results
    assert paper.stray_numbers(source, paper.declared_texts(study)) == []


def its_entries(*, controlled: bool) -> dict[str, ledger.Entry]:
    name = "its_counts.deaths"
    terms = ["level_change", "slope_change", "pre_trend"] + (
        ["level_change_difference", "slope_change_difference", "group_pre_trend"] if controlled else [])
    return {"design_check.points_before": entry("b", estimate=24), "design_check.points_after": entry("a", estimate=36),
            f"{name}.events_averted": entry("e", estimate=145, conf_low=-158, conf_high=447, p_value=0.35),
            **{f"{name}.{t}": entry(t, estimate=0.9, conf_low=0.8, conf_high=0.99, p_value=0.01) for t in terms}}


def test_a_controlled_series_from_a_table_of_counts_states_its_model_and_control():
    study = load_study("mortality_its_monthly")
    source = generated.manuscript(study, its_entries(controlled=True))
    assert "interrupted time series of monthly counts with a control series" in source.split("# Introduction")[0]
    design = source.split("## Study of the intervention")[1].split("## Measures")[0]
    assert "segmented binomial regression (events out of the denominator)" in design
    assert "lag of one month" in design and "A control series (Comparison trusts" in design
    results = source.split("# Results")[1].split("# Discussion")[0]
    assert "beyond the control series' change" in results
    assert "{{ its_counts.deaths.level_change_difference | est_ci }} in level" in results
    assert "an odds ratio of {{ its_counts.deaths.level_change | est_ci }}" in results
    assert "takes off a change common to both series" in source.split("## Limitations")[1]
    assert paper.stray_numbers(source, paper.declared_texts(study)) == []


def test_routinely_collected_data_get_the_record_items_and_others_do_not():
    monthly = load_study("mortality_its_monthly")
    assert monthly.design.routinely_collected
    source = generated.manuscript(monthly, its_entries(controlled=True))
    record = source.split("## Routinely collected data (RECORD)")[1].split("# Results")[0]
    assert [line.split(" |")[0] for line in record.splitlines() if line.startswith("| RECORD ")][1:] == [
        f"| RECORD {item}" for item in paper.RECORD]
    assert "| RECORD 19.1 | The implications of using data that were not created" in record
    assert "*For the authors:*" in record and "adds the RECORD items (below)" in source
    uncontrolled = monthly.model_copy(update={"design": monthly.design.model_copy(
        update={"routinely_collected": False, "group": None})})
    source = generated.manuscript(uncontrolled, its_entries(controlled=False))
    assert "RECORD" not in source and "without a control series a change elsewhere" in source


def test_a_controlled_count_outcome_reports_rates_and_the_ratio_of_rate_ratios():
    study = load_study("controlled")
    outcome = study.outcomes["discharge_error"].model_copy(update={"type": "count"})
    study = study.model_copy(update={"outcomes": {**study.outcomes, "discharge_error": outcome}})
    did = "discharge_error.did"
    entries = {**{f"{did}.rate_{g}_{p}": entry("r", estimate=0.5, n=240) for g in ("intervention", "control")
                  for p in ("before", "after")},
               f"{did}.ratio_of_rate_ratios_mixed": entry("m", estimate=0.6, conf_low=0.4, conf_high=0.9),
               f"{did}.ratio_of_rate_ratios_cluster_robust": entry("c", estimate=0.6, conf_low=0.5, conf_high=0.8)}
    results = generated.manuscript(study, entries).split("# Results")[1].split("# Discussion")[0]
    assert "in the intervention group the rate went from {{ discharge_error.did.rate_intervention_before | est }}" \
        in results
    assert ("ratio of rate ratios (intervention vs control, after vs before) was "
            "{{ discharge_error.did.ratio_of_rate_ratios_mixed | est_ci }} with a random intercept") in results
    # with few clusters, the wild cluster bootstrap on the same scale, and its p-value
    boot = {**entries, f"{did}.ratio_of_rate_ratios_wild_bootstrap": entry(
        "w", estimate=0.6, conf_low=0.3, conf_high=1.1, p_value=0.08)}
    results = generated.manuscript(study, boot).split("# Results")[1].split("# Discussion")[0]
    assert ("{{ discharge_error.did.ratio_of_rate_ratios_wild_bootstrap | est_ci }} by the wild cluster bootstrap "
            "(bootstrap {{ discharge_error.did.ratio_of_rate_ratios_wild_bootstrap | p }})") in results


def test_the_checklist_of_routinely_collected_data_adds_the_record_items():
    monthly = load_study("mortality_its_monthly")
    source = generated.manuscript(monthly, its_entries(controlled=True))
    table = paper.checklist(source, generic=True, record=True)
    record = table.split("## RECORD: routinely collected data")[1]
    rows = [line for line in record.splitlines() if line.startswith("| RECORD ")]
    assert [r.split(" |")[0] for r in rows] == [f"| RECORD {item}" for item in paper.RECORD]
    # an item the text answers links to its section; one only the authors can answer points to the RECORD section
    assert "| RECORD 19.1 |" in table and "[Limitations](manuscript.html#limitations)" in \
        next(r for r in rows if r.startswith("| RECORD 19.1 "))
    assert "for the authors: asked in [Routinely collected data (RECORD)](manuscript.html#record)" in \
        next(r for r in rows if r.startswith("| RECORD 1.1 "))
    answered = sum(section is not None for _, _, section in generated.RECORD_ITEMS)
    assert f"{answered} of {len(paper.RECORD)} RECORD items answered." in record
    # SQUIRE's table is unchanged, and without routinely collected data there is no RECORD table
    assert table.startswith(paper.checklist(source, generic=True))
    assert "RECORD" not in paper.checklist(source, generic=True)


def test_a_weekly_series_is_described_in_weeks():
    study = load_study("mortality_its_monthly")
    # a weekly series of the same table (model_copy: the study file's own check of one_row_per is not the point)
    weekly = study.model_copy(update={"design": study.design.model_copy(update={"time_unit": "week", "lags": 4})})
    source = generated.manuscript(weekly, its_entries(controlled=True))
    assert "interrupted time series of weekly counts with a control series" in source.split("# Introduction")[0]
    design = source.split("## Study of the intervention")[1].split("## Measures")[0]
    assert "counted by ISO week (Monday to Sunday)" in design and "lag of four weeks" in design
    assert "sine and cosine terms of a year of 52.18 weeks" in design
    assert "score contributions per week" in design
    results = source.split("# Results")[1].split("# Discussion")[0]
    assert "per week in slope" in results and "over the same weeks" in results
    assert paper.stray_numbers(source, paper.declared_texts(weekly)) == []
