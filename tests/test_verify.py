"""The reviewer's comparisons, on small made-up outputs: numbers within tolerance match, anything
else is reported with what differed and by how much."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from analysis import ledger, stats, verify
from analysis.config import load_study
from analysis.paths import ROOT
from analysis.provenance import sha256_file


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


# Figures: every PDF, SVG and PNG. The committed side is a small figure drawn by analysis.figures, as
# the pipeline draws them, then altered the way a hand edit or a broken file would alter it.

PROVENANCE = {"notebook": "notebooks/07_figures.ipynb", "parameters_sha256": "3" * 64, "data_sha256": "c" * 64}


@pytest.fixture(scope="module")
def forest_files(tmp_path_factory):
    """A forest plot as PDF, SVG and 100-dpi PNG, drawn once (a few seconds) for the module's tests."""
    from analysis import figures
    from tests.figures.frames import forest_frame

    folder = tmp_path_factory.mktemp("forest")
    figures.save(figures.forest(forest_frame()), folder, "forest", PROVENANCE, dpi=100)
    return folder


@pytest.fixture
def figure_pair(forest_files, tmp_path):
    """(committed, rebuilt): output folders holding the same forest plot files (saving twice gives the
    same bytes: tests/figures/test_save.py)."""
    committed, rebuilt = tmp_path / "committed", tmp_path / "rebuilt"
    for folder in (committed, rebuilt):
        shutil.copytree(forest_files, folder / "figures")
    return committed, rebuilt


def figure_checks(committed, rebuilt) -> dict[str, verify.Check]:
    return {c.item: c for c in verify.compare_figures(committed, rebuilt)}


def test_every_figure_format_is_compared_and_identical_files_match(figure_pair):
    checks = figure_checks(*figure_pair)
    assert {name: (c.status, c.detail) for name, c in checks.items()} == {
        f"figures/forest.{fmt}": ("match", "byte-identical") for fmt in ("pdf", "png", "svg")}


def edit_png(path, pixels=lambda pixels: None, text=lambda text: None):
    """Apply `pixels` to the PNG's RGBA pixels and `text` to its text chunks (a dict), in place, and write
    it back: as an image editor would, with other bytes even when nothing was changed."""
    with Image.open(path) as image:
        values, chunks = np.array(image.convert("RGBA")), dict(image.text)
    pixels(values)
    text(chunks)
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.fromarray(values).save(path, pnginfo=info)


def test_a_few_changed_pixels_fail_with_their_region_though_ssim_stays_high(figure_pair):
    committed, rebuilt = figure_pair
    png = committed / "figures" / "forest.png"

    def mark(pixels):
        # a 3 x 3 black dot in the white margin (0.8 mm at 100 dpi): an extra point; SSIM stays near 1
        assert (pixels[10:13, 20:23] == 255).all()
        pixels[10:13, 20:23, :3] = 0

    edit_png(png, pixels=mark)
    check = figure_checks(committed, rebuilt)["figures/forest.png"]
    assert check.status == "differ"
    assert check.measure >= verify.SSIM_MIN  # the global measure alone passed this figure
    # every 8 x 8 window holding the whole dot has mean 9 x 255 / 64 = 35.9
    # every 8 x 8 window holding the whole dot has mean 9 x 255 / 64 = 35.9; the first is reported
    assert check.detail == ("9 pixels differ, within x 20-22, y 10-12; largest mean difference in a window of 8x8 "
                            "pixels 35.9 of 255, at x 15-22, y 5-12 (match at <= 4); "
                            f"SSIM {check.measure:.4f} (match at >= {verify.SSIM_MIN})")


def test_pixels_moved_within_the_tolerance_match(figure_pair):
    committed, rebuilt = figure_pair

    def shade(pixels):
        # a 20 x 20 patch 3 grey levels darker: the size of anti-aliasing noise, below the tolerance of 4
        pixels[40:60, 40:60, :3] -= 3

    edit_png(committed / "figures" / "forest.png", pixels=shade)
    check = figure_checks(committed, rebuilt)["figures/forest.png"]
    assert check.status == "match"
    assert check.detail.startswith("400 pixels differ, within x 40-59, y 40-59; largest mean difference in a "
                                   "window of 8x8 pixels 3.0 of 255, at x 40-47, y 40-47 (match at <= 4); SSIM ")


def test_a_png_encoded_again_with_the_same_pixels_and_text_matches(figure_pair):
    committed, rebuilt = figure_pair
    edit_png(committed / "figures" / "forest.png")
    check = figure_checks(committed, rebuilt)["figures/forest.png"]
    assert (check.status, check.detail) == ("match", "no pixel differs; SSIM 1.0000 (match at >= 0.99)")


def test_the_same_picture_drawn_from_other_data_differs_by_its_provenance_and_has_not_moved(figure_pair):
    from analysis import figures
    from tests.figures.frames import forest_frame

    committed, rebuilt = figure_pair
    # the notebook path of another length also moves every byte offset in the PDF, which is not the drawing
    other = PROVENANCE | {"data_sha256": "d" * 64, "notebook": "notebooks/figures.ipynb"}
    figures.save(figures.forest(forest_frame()), committed / "figures", "forest", other, dpi=100)
    checks = figure_checks(committed, rebuilt)
    same = {"pdf": "same drawing", "svg": "same drawing", "png": "no pixel differs; SSIM 1.0000 (match at >= 0.99)"}
    for fmt, drawing in same.items():
        check = checks[f"figures/forest.{fmt}"]
        assert (check.status, check.moved) == ("differ", False), fmt
        assert check.detail == (f"provenance data_sha256: {'d' * 64} -> {'c' * 64}; provenance notebook: "
                                f"notebooks/figures.ipynb -> notebooks/07_figures.ipynb; {drawing}")


def test_a_truncated_png_fails_without_stopping_the_comparison(figure_pair):
    committed, rebuilt = figure_pair
    png = committed / "figures" / "forest.png"
    png.write_bytes(png.read_bytes()[:2000])
    check = figure_checks(committed, rebuilt)["figures/forest.png"]
    assert check.status == "differ"
    assert check.detail.startswith("no provenance readable in the committed file; not a readable PNG: ")


def test_an_emptied_svg_fails_and_one_with_other_line_endings_matches(figure_pair):
    committed, rebuilt = figure_pair
    svg = committed / "figures" / "forest.svg"
    lines = svg.read_text().splitlines()
    # a checkout that wrote CRLF line endings (git's autocrlf) holds the same drawing
    svg.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    assert figure_checks(committed, rebuilt)["figures/forest.svg"].status == "match"
    svg.write_text("")
    check = figure_checks(committed, rebuilt)["figures/forest.svg"]
    assert check.status == "differ"
    assert check.detail.startswith("no provenance readable in the committed file; "
                                   "line 1: '(end of file)' -> '<?xml version=")
    assert check.detail.endswith(f"(0 -> {len(lines)} lines)")


def test_coordinates_moved_by_noise_the_ledger_tolerates_match(figure_pair):
    from analysis import figures
    from tests.figures.frames import forest_frame

    committed, rebuilt = figure_pair
    frame = forest_frame()
    frame.loc[0, "conf_high"] *= 1 + 1e-6  # within the ledger's rtol: another BLAS, another last digit
    figures.save(figures.forest(frame), committed / "figures", "forest", PROVENANCE, dpi=100)
    for fmt in ("pdf", "svg"):  # the files did change
        old, new = (folder / "figures" / f"forest.{fmt}" for folder in (committed, rebuilt))
        assert old.read_bytes() != new.read_bytes()
    checks = figure_checks(committed, rebuilt)
    assert [c.status for c in checks.values()] == ["match"] * 3
    assert checks["figures/forest.svg"].detail == "same drawing, every number within 0.01"
    assert checks["figures/forest.pdf"].detail == "same drawing, every number within 0.01"


def test_a_truncated_pdf_fails_and_says_so(figure_pair):
    committed, rebuilt = figure_pair
    pdf = committed / "figures" / "forest.pdf"
    pdf.write_bytes(pdf.read_bytes()[:4000])
    check = figure_checks(committed, rebuilt)["figures/forest.pdf"]
    assert check.status == "differ"
    assert check.detail.startswith("no provenance readable in the committed file; "
                                   "the committed PDF is incomplete (no %%EOF at its end); streams inflated, line ")


def test_a_shorter_whisker_fails_in_every_format_though_ssim_stays_high(figure_pair):
    from analysis import figures
    from tests.figures.frames import forest_frame

    committed, rebuilt = figure_pair
    frame = forest_frame()
    frame.loc[0, "conf_high"] = 0.25  # the first interval's upper end, 0.30 in the rebuilt figure
    figures.save(figures.forest(frame), committed / "figures", "forest", PROVENANCE, dpi=100)
    checks = figure_checks(committed, rebuilt)
    assert [c.status for c in checks.values()] == ["differ"] * 3
    png = checks["figures/forest.png"]
    assert png.measure >= verify.SSIM_MIN  # the global measure alone passed this figure
    assert re.match(r"\d+ pixels differ, within x \d+-\d+, y \d+-\d+; largest mean difference in a window of 8x8 "
                    r"pixels [\d.]+ of 255, at x \d+-\d+, y \d+-\d+ \(match at <= 4\); SSIM ", png.detail)
    # the vector files show the drawing command that moved (in the PDF, its compressed page inflated)
    (pdf,) = re.findall(r"line \d+: '([^']*)' -> '([^']*)'", checks["figures/forest.pdf"].detail)
    assert all(re.fullmatch(r"[\d.]+ [\d.]+ l", side) for side in pdf), checks["figures/forest.pdf"].detail
    (svg,) = re.findall(r"line \d+: '([^']*)' -> '([^']*)'", checks["figures/forest.svg"].detail)
    assert all(re.fullmatch(r"L [\d.]+ [\d.]+ ", side) for side in svg), checks["figures/forest.svg"].detail


# Notebooks: every code cell's outputs, on a copy of a committed executed notebook.

NOTEBOOK = ROOT / "notebooks" / "03_primary.ipynb"


@pytest.fixture
def notebooks(tmp_path):
    committed, rebuilt = tmp_path / "committed", tmp_path / "rebuilt"
    for folder in (committed, rebuilt):
        folder.mkdir()
        shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    return committed, rebuilt


def edit_notebook(path, change):
    payload = json.loads(path.read_text(encoding="utf-8"))
    change(payload["cells"])
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def test_the_injected_parameters_cell_is_not_compared(notebooks):
    committed, rebuilt = notebooks

    def rename(cells):
        (cell,) = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        cell["source"] = "study_file = '/tmp/verify-x/reference.yml'\n"
        cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["/tmp/verify-x\n"]}]

    edit_notebook(rebuilt / NOTEBOOK.name, rename)
    (check,) = verify.compare_notebooks(committed, rebuilt)
    assert (check.item, check.status, check.detail) == ("03_primary.ipynb", "match", "")


def test_one_edited_number_in_a_notebook_output_fails_naming_the_cell(notebooks):
    committed, rebuilt = notebooks
    edited = {}

    def edit_first_percentage(cells):
        # the first "(40.5%)" a table shows, made "(41.5%)": a typed-over number
        for cell in cells:
            for output in cell.get("outputs", []):
                lines = output.get("data", {}).get("text/plain", [])
                for i, line in enumerate(lines):
                    found = re.search(r"\((\d+)\.\d%\)", line)
                    if found and not edited:
                        lines[i] = line[:found.start(1)] + str(int(found[1]) + 1) + line[found.end(1):]
                        edited.update(cell=cell["id"], old=line, new=lines[i])

    edit_notebook(committed / NOTEBOOK.name, edit_first_percentage)
    (check,) = verify.compare_notebooks(committed, rebuilt)
    assert (check.item, check.status, check.measure) == ("03_primary.ipynb", "differ", 1.0)
    assert f"(id {edited['cell']}) outputs, line " in check.detail
    assert f"{edited['new'].rstrip()[-20:]}" in check.detail and f"{edited['old'].rstrip()[-20:]}" in check.detail


# LEDGER.md and the notebooks' ledger fragments, on the ledgers built above.

def test_an_edited_line_of_ledger_md_fails_naming_the_line(ledgers):
    committed, rebuilt = ledgers
    shutil.copy(committed / "LEDGER.md", rebuilt / "LEDGER.md")
    assert [(c.item, c.status) for c in verify.compare_ledger_names(committed, rebuilt)] == [("LEDGER.md", "match")]
    text = (committed / "LEDGER.md").read_text()
    (committed / "LEDGER.md").write_text(text.replace("| Pearson chi-square test |", "| Pearson chi-square |"))
    (check,) = verify.compare_ledger_names(committed, rebuilt)
    assert check.status == "differ"
    line = text.splitlines().index("| `acceptance.chi2` | Pearson chi-square test | x |") + 1
    # both sides shown from 30 characters before the first that differs
    assert check.detail == (f"line {line}: ...'ce.chi2` | Pearson chi-square | x |' -> "
                            f"...'ce.chi2` | Pearson chi-square test | x |' ({line + 1} -> {line + 1} lines)")


def test_an_edited_ledger_fragment_fails_naming_the_entry(ledgers):
    committed, rebuilt = ledgers
    shutil.copytree(committed / "ledger", rebuilt / "ledger")
    assert [c.status for c in verify.compare_fragments(committed, rebuilt)] == ["match"]
    fragment = committed / "ledger" / "x.json"
    entries = json.loads(fragment.read_text())
    entries["acceptance.odds_ratio"]["estimate"] = 0.0856
    fragment.write_text(json.dumps(entries))
    (check,) = verify.compare_fragments(committed, rebuilt)
    assert (check.item, check.status) == ("ledger/x.json", "differ")
    assert check.detail.startswith("acceptance.odds_ratio estimate: 0.0856 -> 0.0855")


# Derived tables: each against the committed manifest's hash, on a copy of the reference study's.

@pytest.fixture
def derived(tmp_path):
    source = ROOT / "data_derived" / "reference"
    committed, rebuilt = tmp_path / "committed", tmp_path / "rebuilt"
    for folder in (committed, rebuilt):
        shutil.copytree(source / "derived", folder / "derived")
        shutil.copy(source / "manifest.json", folder / "manifest.json")
    return committed, rebuilt


def test_a_derived_table_edited_without_its_manifest_fails(derived):
    committed, rebuilt = derived
    assert all(c.status == "match" for c in verify.compare_derived(committed, rebuilt))
    path = committed / "derived" / "patients.parquet"
    frame = pd.read_parquet(path)
    column = frame.select_dtypes("number").columns[0]
    frame.loc[frame.index[0], column] += 1
    frame.to_parquet(path)
    checks = {c.item: c for c in verify.compare_derived(committed, rebuilt)}
    recorded = {e["path"]: e["sha256"] for e in json.loads((committed / "manifest.json").read_text())["outputs"]}
    new = sha256_file(path)
    assert checks["derived/patients.parquet"].status == "differ"
    assert checks["derived/patients.parquet"].detail == (
        f"sha256 {new[:12]}, but the committed manifest.json says {recorded['derived/patients.parquet'][:12]}; "
        f"sha256 {new[:12]} -> {recorded['derived/patients.parquet'][:12]} rebuilt")
    assert checks["derived/flow.parquet"].status == "match"
    # the manifests alone still agree: this is what went unnoticed
    assert all(c.status == "match" for c in verify.compare_manifests(committed, rebuilt))


def test_the_report_states_every_tolerance(tmp_path):
    result = verify.Verification(study="toy", checks=[verify.Check("figure", "figures/a.png", "match")],
                                 environment=verify.environment_report())
    md, js = verify.write_report(result, tmp_path)
    assert (f"PNG figures: mean difference <= {verify.PIXEL_TOLERANCE:g} of 255 over every "
            f"{verify.PIXEL_WINDOW}x{verify.PIXEL_WINDOW}-pixel window and SSIM >= {verify.SSIM_MIN}; PDF and SVG "
            f"figures: every number within {verify.VECTOR_TOLERANCE:g} pt, the rest exactly;") in md.read_text()
    assert json.loads(js.read_text())["tolerances"]["pixel_tolerance"] == verify.PIXEL_TOLERANCE
