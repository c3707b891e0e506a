"""The house style: palette, sizes and type for every figure of the compendium.

Nothing here changes matplotlib's global state on import: the style is applied by `house_style()`,
a context manager around `matplotlib.rc_context`, which the plot functions and `save` enter
themselves, so a notebook needs no setup and its other plots are left alone.

Choices, and why:
- Before/after take Okabe-Ito orange and blue: told apart with every kind of colour-blindness, and
  far apart in lightness (grey levels about 160 and 90 of 255), so they still separate when printed in
  grey; every before/after mark also differs in shape (circle, square), which survives any printer.
- Type is DejaVu Sans, bundled with matplotlib, so every machine draws the same glyphs. Figures are
  drawn at their printed size, so point sizes are true: 8 pt labels, 7 pt ticks, legends and
  annotations (the smallest text allowed), 9 pt panel titles.
- PDF embeds TrueType fonts (fonttype 42: editable text, no Type 3 bitmaps, accepted by journals'
  preflight checks); SVG turns text into paths, so it looks the same without the font installed.
- SVG element ids come from a fixed salt, so the same figure gives the same file.
"""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
from matplotlib.colors import to_hex, to_rgb

MM_PER_INCH = 25.4
SINGLE_COLUMN_MM = 84.0
DOUBLE_COLUMN_MM = 174.0
# The tallest figure a journal page takes with room left for its caption.
MAX_HEIGHT_MM = 225.0

LABEL_PT = 8.0
TICK_PT = 7.0
SMALLEST_PT = 7.0
PANEL_TITLE_PT = 9.0

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

PERIODS = ("before", "after")
PERIOD_COLOURS = {"before": OKABE_ITO["orange"], "after": OKABE_ITO["blue"]}
PERIOD_MARKERS = {"before": "o", "after": "s"}

# Ours against published in the forest plot: filled against open, and a different shape.
OURS_COLOUR = OKABE_ITO["black"]
PUBLISHED_COLOUR = OKABE_ITO["vermillion"]
# Vermillion darkened for 7 pt numbers: the bright tone has too little contrast on white for small text.
PUBLISHED_TEXT = "#A64A00"

# Ordered categories (harm severity): one hue family whose lightness falls step by step
# (ColorBrewer YlOrRd, 4 classes; grey levels about 245, 205, 165 and 85), so order is read
# from lightness alone, in colour or in grey.
SEQUENTIAL_4 = ("#FFFFB2", "#FECC5C", "#FD8D3C", "#E31A1C")

INK = "#222222"
MUTED = "#666666"
GRID = "#DDDDDD"
REFERENCE_LINE = "#444444"

RC = {
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": LABEL_PT,
    "axes.labelsize": LABEL_PT,
    "axes.titlesize": PANEL_TITLE_PT,
    "axes.titlelocation": "left",
    "axes.titlepad": 4.0,
    "figure.titlesize": PANEL_TITLE_PT,
    "xtick.labelsize": TICK_PT,
    "ytick.labelsize": TICK_PT,
    "legend.fontsize": TICK_PT,
    "legend.title_fontsize": LABEL_PT,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.handletextpad": 0.5,
    "legend.columnspacing": 1.2,
    "legend.borderaxespad": 0.3,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.5,
    "grid.linestyle": "-",
    "axes.prop_cycle": mpl.cycler(color=[OKABE_ITO[k] for k in
                                         ("blue", "orange", "bluish_green", "vermillion",
                                          "reddish_purple", "sky_blue", "black")]),
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.8,
    "ytick.minor.size": 1.8,
    "xtick.major.pad": 2.5,
    "ytick.major.pad": 2.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 4.5,
    "patch.linewidth": 0.5,
    "hatch.linewidth": 0.6,
    "errorbar.capsize": 0.0,
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "savefig.bbox": "standard",
    "savefig.pad_inches": 0.0,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "pdf.use14corefonts": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "analysis.figures",
    "svg.id": None,
    "text.usetex": False,
    "axes.unicode_minus": True,
}


@contextmanager
def house_style():
    """Apply the house style inside a ``with`` block; matplotlib's settings are restored after it.

    >>> from matplotlib.figure import Figure
    >>> with house_style():
    ...     figure = Figure(figsize=figure_size("single"), layout="constrained")
    """
    with mpl.rc_context(RC):
        yield


def figure_size(width: str | float = "single", height_mm: float | None = None,
                ratio: float = 0.62) -> tuple[float, float]:
    """(width, height) in inches for a journal column.

    width: "single" (84 mm), "double" (174 mm) or a width in millimetres.
    height_mm: the height; if not given, ``ratio`` times the width (0.62, about the golden ratio).
    A figure taller than a page (225 mm) is refused rather than shrunk by the journal.
    """
    widths = {"single": SINGLE_COLUMN_MM, "double": DOUBLE_COLUMN_MM}
    if isinstance(width, str):
        if width not in widths:
            raise ValueError(f"width must be 'single', 'double' or millimetres, not {width!r}")
        width_mm = widths[width]
    else:
        width_mm = float(width)
    if not 20.0 <= width_mm <= DOUBLE_COLUMN_MM:
        raise ValueError(f"width {width_mm:g} mm is outside 20-{DOUBLE_COLUMN_MM:g} mm")
    height = width_mm * ratio if height_mm is None else float(height_mm)
    if not 10.0 <= height <= MAX_HEIGHT_MM:
        raise ValueError(f"height {height:g} mm is outside 10-{MAX_HEIGHT_MM:g} mm")
    return width_mm / MM_PER_INCH, height / MM_PER_INCH


def sequential(n: int, warning: bool = True) -> tuple[str, ...]:
    """n ordered colours, light to dark. `warning`: yellow to red, for levels that get worse (the four-class
    palette for four, else sampled from YlOrRd); otherwise light to dark blue, which says "more" without
    saying "worse" (a satisfaction scale's best level in red would read as its worst)."""
    if warning and n == len(SEQUENTIAL_4):
        return SEQUENTIAL_4
    cmap = mpl.colormaps["YlOrRd" if warning else "Blues"]
    return tuple(to_hex(cmap(x)) for x in np.linspace(0.0 if warning else 0.15, 0.9, n))


def grey_level(colour) -> float:
    """Luma (ITU-R BT.601, as a greyscale printer or PIL's "L" mode computes it), 0 black to 1 white."""
    red, green, blue = to_rgb(colour)
    return 0.299 * red + 0.587 * green + 0.114 * blue


def text_colour_on(colour) -> str:
    """Dark or white text, whichever reads on a fill of this colour."""
    return INK if grey_level(colour) > 0.5 else "white"
