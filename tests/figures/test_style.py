"""The house style: applied only inside its context, sizes in journal columns, a palette that survives
colour-blindness and greyscale printing."""

from __future__ import annotations

import subprocess
import sys

import matplotlib as mpl
import pytest
from matplotlib.colors import to_rgb

from analysis.figures import style

pytestmark = pytest.mark.filterwarnings("error")


def test_importing_changes_no_global_setting():
    code = ("import matplotlib as m; before = dict(m.rcParams); import analysis.figures; "
            "assert dict(m.rcParams) == before")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_house_style_applies_inside_and_restores_after():
    before = dict(mpl.rcParams)
    with style.house_style():
        assert mpl.rcParams["pdf.fonttype"] == 42
        assert mpl.rcParams["svg.fonttype"] == "path"
        assert mpl.rcParams["font.family"] == ["DejaVu Sans"]
        assert mpl.rcParams["svg.hashsalt"] is not None
    assert dict(mpl.rcParams) == before


def test_no_text_size_below_the_minimum():
    sizes = [value for key, value in style.RC.items()
             if key == "font.size" or key.endswith(("labelsize", "titlesize", "fontsize"))]
    assert len(sizes) >= 6
    assert min(sizes) >= style.SMALLEST_PT


def test_figure_sizes_in_journal_columns():
    assert style.figure_size("single", 60) == pytest.approx((84 / 25.4, 60 / 25.4))
    assert style.figure_size("double")[0] == pytest.approx(174 / 25.4)
    assert style.figure_size(120, ratio=0.5) == pytest.approx((120 / 25.4, 60 / 25.4))
    for width, height in (("triple", None), (300, None), ("single", 400)):
        with pytest.raises(ValueError):
            style.figure_size(width, height)


def test_before_and_after_separate_in_grey_and_in_shape():
    grey = {key: style.grey_level(colour) for key, colour in style.PERIOD_COLOURS.items()}
    assert abs(grey["before"] - grey["after"]) >= 0.25
    assert style.PERIOD_MARKERS["before"] != style.PERIOD_MARKERS["after"]


@pytest.mark.parametrize("warning", [True, False])
@pytest.mark.parametrize("n", [3, 4, 5])
def test_ordered_categories_get_darker_step_by_step(n, warning):
    """In print and for readers who do not see colour, the levels are told apart by lightness alone."""
    grey = [style.grey_level(colour) for colour in style.sequential(n, warning)]
    steps = [a - b for a, b in zip(grey, grey[1:], strict=False)]
    assert min(steps) >= 0.1, grey


def test_levels_that_do_not_get_worse_are_not_drawn_in_warning_colours():
    """A satisfaction scale's best level in red would read as its worst: the warning palette (yellow to red)
    is for scales whose later levels are worse; the other is blue, more blue than red in every colour."""
    assert style.sequential(4) == style.SEQUENTIAL_4
    for colour in style.sequential(4, warning=False):
        red, _, blue = to_rgb(colour)
        assert blue > red, colour


def test_text_on_fills_stays_readable():
    assert style.text_colour_on(style.SEQUENTIAL_4[0]) == style.INK
    assert style.text_colour_on(style.SEQUENTIAL_4[-1]) == "white"
