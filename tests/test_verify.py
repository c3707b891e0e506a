"""The reviewer's comparisons, on small made-up outputs: numbers within tolerance match, anything
else is reported with what differed and by how much."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from analysis import ledger, stats, verify
from analysis.config import load_study


def write_table(folder, name, text):
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    (folder / "tables" / f"{name}.csv").write_text(text)


def test_tables_match_within_tolerance_and_missing_cells_match_missing_cells(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_table(old, "t", "term,estimate,note\nor,0.085533,\nnnt,1.9433,rounded\n")
    write_table(new, "t", "term,estimate,note\nor,0.0855330000001,\nnnt,1.9433,rounded\n")
    assert [(c.status, c.detail) for c in verify.compare_tables(old, new)] == [("match", "")]


def test_tables_report_each_differing_cell_and_tables_on_one_side(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_table(old, "t", "term,estimate,note\nor,0.0855,\nnnt,1.94,up\n")
    write_table(new, "t", "term,estimate,note\nor,0.0856,\nnnt,1.94,down\n")
    write_table(old, "gone", "a\n1\n")
    write_table(new, "new", "a\n1\n")
    checks = {c.item: c for c in verify.compare_tables(old, new)}
    assert checks["tables/t.csv"].detail == "row 1 estimate: 0.0855 -> 0.0856; row 2 note: up -> down"
    assert (checks["tables/gone.csv"].status, checks["tables/new.csv"].status) == ("missing", "extra")


def test_figures_match_when_identical_and_differ_below_the_ssim_threshold(tmp_path):
    old, new = tmp_path / "old" / "figures", tmp_path / "new" / "figures"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    Image.fromarray(image).save(old / "a.png")
    Image.fromarray(image).save(new / "a.png")
    moved = image.copy()
    moved[:, 40:] = 255 - moved[:, 40:]  # half the picture inverted
    Image.fromarray(image).save(old / "b.png")
    Image.fromarray(moved).save(new / "b.png")
    checks = {c.item: c for c in verify.compare_figures(old.parent, new.parent)}
    assert checks["figures/a.png"].status == "match" and checks["figures/a.png"].measure == 1.0
    assert checks["figures/b.png"].status == "differ" and checks["figures/b.png"].measure < verify.SSIM_MIN


def test_manifests_compare_by_path_hash_and_rows(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    entry = {"path": "data_raw/x.csv", "sha256": "aa", "rows": 3, "role": "patients"}
    (old / "manifest.json").write_text(json.dumps({"inputs": [entry], "outputs": []}))
    (new / "manifest.json").write_text(json.dumps({"inputs": [entry | {"sha256": "bb"}], "outputs": []}))
    (check,) = verify.compare_manifests(old, new)
    assert (check.item, check.status, check.detail) == ("inputs/data_raw/x.csv", "differ", "sha256: aa -> bb")


def test_a_verification_with_nothing_compared_does_not_pass():
    assert not verify.Verification(study="x").passed


@pytest.fixture
def ledgers(write_study, tmp_path):
    """(committed, rebuilt): two folders holding the same results.json, recorded and merged by the ledger
    from real statistics, as a rebuild that reproduced everything leaves them; tests then edit one."""
    study = load_study(write_study())
    book = ledger.Ledger(study, "x")
    book.record("acceptance.chi2", stats.chi2_test(66, 101, 15, 108), "Pearson chi-square test")
    book.record("acceptance.odds_ratio", stats.odds_ratio_woolf(66, 101, 15, 108), "Odds ratio, after vs before",
                published={"estimate": 0.0855, "conf_low": 0.0437, "conf_high": 0.1672, "source": "Table 2"})
    book.save()
    committed = ledger.merge(study).parent
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    shutil.copy(committed / "results.json", rebuilt / "results.json")
    return committed, rebuilt


def edit(folder, name, change):
    """Apply `change` to one entry of folder/results.json as written, as a hand edit would."""
    path = folder / "results.json"
    payload = json.loads(path.read_text())
    change(payload["entries"][name])
    path.write_text(json.dumps(payload))


def only_difference(committed, rebuilt) -> verify.Check:
    """The one ledger check that did not match, after checking that the verification as a whole fails."""
    checks = verify.compare_ledgers(committed, rebuilt)
    assert not verify.Verification(study="toy", checks=checks).passed
    (check,) = [c for c in checks if c.status != "match"]
    return check


def test_a_rebuilt_ledger_identical_to_the_committed_one_passes(ledgers):
    checks = verify.compare_ledgers(*ledgers)
    assert [(c.item, c.status, c.detail) for c in checks] == [
        ("acceptance.chi2", "match", ""), ("acceptance.odds_ratio", "match", "")]
    assert verify.Verification(study="toy", checks=checks).passed


def test_an_edited_description_fails_naming_the_entry_and_field(ledgers):
    committed, rebuilt = ledgers
    edit(rebuilt, "acceptance.chi2", lambda e: e.update(description="Pearson chi-square test, corrected"))
    check = only_difference(committed, rebuilt)
    assert (check.item, check.status, check.moved) == ("acceptance.chi2", "differ", True)
    assert check.detail == ("description: Pearson chi-square test -> Pearson chi-square test, corrected; "
                            "differs (compared exactly)")


def test_an_edited_published_value_fails(ledgers):
    committed, rebuilt = ledgers
    # a slip in the last digit typed from the paper: 0.1672 -> 0.1673
    edit(committed, "acceptance.odds_ratio", lambda e: e["published"].update(conf_high=0.1673))
    check = only_difference(committed, rebuilt)
    assert check.item == "acceptance.odds_ratio"
    assert check.detail == "published.conf_high: 0.1673 -> 0.1672 (by 0.0001); differs (compared exactly)"


def test_a_standard_error_moved_beyond_the_tolerance_fails_and_one_within_it_passes(ledgers):
    committed, rebuilt = ledgers
    se = ledger.read(committed / "results.json")["acceptance.odds_ratio"].std_error
    # allowed: ATOL + RTOL * se = 1e-9 + 1e-6 * 0.348 = 3.49e-7; 5e-7 * se = 1.7e-7 is within, 2e-6 * se = 7.0e-7 is not
    edit(rebuilt, "acceptance.odds_ratio", lambda e: e.update(std_error=se * (1 + 5e-7)))
    assert all(c.status == "match" for c in verify.compare_ledgers(committed, rebuilt))
    edit(rebuilt, "acceptance.odds_ratio", lambda e: e.update(std_error=se * (1 + 2e-6)))
    check = only_difference(committed, rebuilt)
    assert check.item == "acceptance.odds_ratio"
    assert check.detail.startswith(f"std_error: {se} -> {se * (1 + 2e-6)} (by 6.96e-07); differs beyond rtol=")


def test_a_field_on_one_side_only_fails_and_says_so(ledgers):
    committed, rebuilt = ledgers
    statistic = ledger.read(committed / "results.json")["acceptance.chi2"].statistic
    edit(rebuilt, "acceptance.chi2", lambda e: e.pop("statistic"))
    edit(rebuilt, "acceptance.odds_ratio", lambda e: e.pop("published"))
    checks = {c.item: c for c in verify.compare_ledgers(committed, rebuilt)}
    assert [c.status for c in checks.values()] == ["differ", "differ"]
    assert checks["acceptance.chi2"].detail == f"statistic: {statistic} -> None; missing on one side"
    assert checks["acceptance.odds_ratio"].detail == (
        "published: {'estimate': 0.0855, 'conf_low': 0.0437, 'conf_high': 0.1672, 'source': 'Table 2'} -> None; "
        "missing on one side")
