"""Publication figures: one house style, one function per figure, one function that writes files.

Plot functions take tidy frames and return a matplotlib Figure drawn at its printed size; they know
nothing of notebooks, studies or files. `save` writes PDF, SVG and PNG (TIFF on request), byte-stable,
with the provenance in each file's metadata; `read_provenance` reads it back.

    from analysis import figures
    figure = figures.proportions(frame)
    figures.save(figure, "data_derived/reference/figures", "proportions",
                 {"notebook": "notebooks/20_outcomes.ipynb", "parameters_sha256": ..., "data_sha256": ...})
"""

from analysis.figures._draw import code_sha256, drawn_by
from analysis.figures.files import read_provenance, save
from analysis.figures.plots import (
    acceptance_by_team,
    caterpillar,
    forest,
    harm_severity,
    its,
    mai_change,
    monthly,
    power_curve,
    proportions,
)
from analysis.figures.style import figure_size, house_style

__all__ = [
    "acceptance_by_team",
    "caterpillar",
    "code_sha256",
    "drawn_by",
    "figure_size",
    "forest",
    "harm_severity",
    "house_style",
    "its",
    "mai_change",
    "monthly",
    "power_curve",
    "proportions",
    "read_provenance",
    "save",
]
