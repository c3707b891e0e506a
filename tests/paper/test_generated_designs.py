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
