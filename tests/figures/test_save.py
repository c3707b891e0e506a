"""Files: byte-stable, provenance in every format, written atomically."""

from __future__ import annotations

import pytest
from PIL import Image

from analysis import figures
from analysis.figures import files, style
from tests.figures import frames
from tests.figures.test_plots import FIGURES

pytestmark = pytest.mark.filterwarnings("error")

ALL_FORMATS = ("pdf", "svg", "png", "tiff")
PROVENANCE = {
    "notebook": "notebooks/20_outcomes.ipynb",
    "parameters_sha256": "3" * 64,
    "data_sha256": "c" * 64,
}


@pytest.mark.parametrize("name", FIGURES)
def test_same_figure_same_bytes(name, tmp_path):
    """Drawn twice from the same frame and saved into two folders: identical files (no dates, no
    random SVG ids, no paths of the folder written into the file)."""
    first = figures.save(FIGURES[name][0](), tmp_path / "one", name, PROVENANCE, ALL_FORMATS, dpi=100)
    second = figures.save(FIGURES[name][0](), tmp_path / "two", name, PROVENANCE, ALL_FORMATS, dpi=100)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two saves"


def test_writes_the_named_files_at_print_resolution(tmp_path):
    paths = figures.save(figures.proportions(frames.proportions_frame()), tmp_path, "fig1", PROVENANCE,
                         formats=("png", "tiff"))
    assert [p.name for p in paths] == ["fig1.png", "fig1.tiff"]
    width_px = round(style.SINGLE_COLUMN_MM / style.MM_PER_INCH * 600)
    with Image.open(paths[0]) as png:
        assert png.size[0] == width_px and png.info["dpi"] == pytest.approx((600, 600), abs=0.01)
    with Image.open(paths[1]) as tiff:
        assert tiff.size[0] == width_px and tiff.mode == "RGB"
        assert tiff.info["compression"] == "tiff_lzw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig1.png", "fig1.tiff"]


def test_vector_files_embed_fonts_and_draw_text_as_paths(tmp_path):
    pdf, svg = figures.save(figures.harm_severity(frames.harm_frame()), tmp_path, "harm", PROVENANCE,
                            formats=("pdf", "svg"))
    data = pdf.read_bytes()
    assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType embedded, no bitmap fonts
    assert b"/CreationDate" not in data
    text = svg.read_text()
    assert "<text" not in text and "<dc:date>" not in text


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_provenance_reads_back(fmt, tmp_path):
    provenance = {**PROVENANCE, "note": "odd (characters) \\ survive: \u00e9\u2264"}
    figure = figures.forest(frames.forest_frame())
    (path,) = figures.save(figure, tmp_path, "forest", provenance, formats=(fmt,), dpi=50)
    read = figures.read_provenance(path)
    assert read == {**provenance, "figure_function": "analysis.figures.plots.forest",
                    "code_sha256": figures.drawn_by(figure)["code_sha256"]}


def test_provenance_of_a_figure_drawn_elsewhere_is_the_callers(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.subplots().plot([0, 1])
    (path,) = figures.save(figure, tmp_path, "plain", {"notebook": "n.ipynb"}, formats=("png",), dpi=50)
    assert figures.read_provenance(path) == {"notebook": "n.ipynb"}


def test_provenance_may_not_contradict_the_figure(tmp_path):
    figure = figures.proportions(frames.proportions_frame())
    with pytest.raises(ValueError, match="code_sha256"):
        figures.save(figure, tmp_path, "p", {"code_sha256": "0" * 64})
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_failure_mid_save_keeps_the_old_files_and_leaves_no_partial_one(tmp_path, monkeypatch):
    for fmt in ("pdf", "svg", "png"):
        (tmp_path / f"fig.{fmt}").write_text(f"old {fmt}")

    def broken_svg(figure, handle, name, text, dpi):
        handle.write(b"<svg half written")
        raise OSError("disk full")

    monkeypatch.setitem(files.WRITERS, "svg", broken_svg)
    with pytest.raises(OSError, match="disk full"):
        figures.save(figures.proportions(frames.proportions_frame()), tmp_path, "fig", PROVENANCE, dpi=50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png", "fig.svg"]
    for fmt in ("pdf", "svg", "png"):
        assert (tmp_path / f"fig.{fmt}").read_text() == f"old {fmt}"


def test_unserialisable_provenance_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        figures.save(figures.proportions(frames.proportions_frame()), tmp_path, "fig", {"when": object()})
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "formats"), [("../escape", ("png",)), ("fig.png/x", ("png",)),
                                                ("fig", ("jpg",)), ("fig", ())])
def test_bad_names_and_formats_are_refused(name, formats, tmp_path):
    with pytest.raises(ValueError):
        figures.save(figures.proportions(frames.proportions_frame()), tmp_path, name, PROVENANCE, formats)


def test_reading_provenance_from_a_file_without_it_says_so(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (2, 2)).save(path)
    with pytest.raises(ValueError, match="no provenance"):
        figures.read_provenance(path)
