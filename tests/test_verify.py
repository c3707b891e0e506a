"""The reviewer's comparisons, on small made-up outputs: numbers within tolerance match, anything
else is reported with what differed and by how much."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from analysis import verify


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
