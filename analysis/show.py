"""What the notebooks display: the data's nature, results as readable tables, warnings as sentences,
and findings written from the ledger. Presentation only: no statistic is computed here.
"""

from __future__ import annotations

import io
import math
import textwrap

import pandas as pd
from IPython.display import Image, Markdown
from matplotlib.figure import Figure

from analysis.config import Study
from analysis.ledger import Ledger
from analysis.text import render


def banner(study: Study) -> Markdown:
    """Stated at the top of every notebook that shows results."""
    if study.synthetic:
        source = (" generated from published aggregates by a seeded generator: counts match what was published, "
                  "other results illustrate the method" if study.published is not None else
                  " made by a seeded generator: the results illustrate the method")
        return Markdown(
            f"> **Synthetic data.** Study `{study.name}`: {study.title}. The data are synthetic,{source} and are "
            "not evidence about real patients."
        )
    return Markdown(f"> Study `{study.name}`: {study.title}.")


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    value = float(value)
    if value.is_integer() and abs(value) < 1e6:
        return f"{int(value)}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def results(frame: pd.DataFrame) -> pd.DataFrame:
    """A results frame as a table for people: what, estimate, 95% CI, p, n (and published, if any)."""
    table = pd.DataFrame({
        "ledger name": frame["name"],
        "quantity": frame["description"],
        "estimate": [_number(v) for v in frame["estimate"]],
        "95% CI": [f"{_number(lo)} to {_number(hi)}" if pd.notna(lo) and pd.notna(hi) else ""
                   for lo, hi in zip(frame["conf_low"], frame["conf_high"], strict=True)],
        "statistic": [_number(v) for v in frame["statistic"]],
        "p": [_p(v) for v in frame["p_value"]],
        "n": [_number(v) for v in frame["n"]],
    })
    if "published_source" in frame:
        table["published"] = [
            _number(p if pd.notna(p) else e) + (f" ({_number(lo)} to {_number(hi)})" if pd.notna(lo) else "")
            if isinstance(s, str) else ""
            for e, lo, hi, p, s in zip(frame["published_estimate"], frame["published_low"], frame["published_high"],
                                       frame["published_p_value"], frame["published_source"], strict=True)
        ]
    return table


def figure(drawn: Figure, dpi: int = 110) -> Image:
    """A figure at screen resolution for the notebook (the 600-dpi files are written by figures.save);
    no metadata, so the notebook's bytes do not change between runs."""
    buffer = io.BytesIO()
    drawn.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return Image(data=buffer.getvalue())


def manifest(content: dict) -> pd.DataFrame:
    """The data manifest's files: role, path, rows and the start of the sha256."""
    rows = [{"": role, "path": f["path"], "rows": f.get("rows", ""), "sha256": f["sha256"][:16]}
            for role in ("inputs", "outputs") for f in content.get(role, [])]
    return pd.DataFrame(rows)


def warnings(frame: pd.DataFrame) -> Markdown:
    """Every model warning, once, as a sentence saying which results it concerns."""
    notes: dict[str, list[str]] = {}
    for name, text in zip(frame["name"], frame["warnings"], strict=True):
        for sentence in filter(None, str(text or "").split("\n")):
            notes.setdefault(sentence, []).append(name)
    if not notes:
        return Markdown("No warnings from these analyses.")
    lines = ["**Warnings from these analyses** (kept with each result in the ledger):", ""]
    for sentence, names in notes.items():
        shown = ", ".join(f"`{n}`" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"- {sentence.rstrip('.')}. ({shown})")
    return Markdown("\n".join(lines))


def findings(book: Ledger, template: str) -> Markdown:
    """The notebook's conclusion, its numbers taken from the ledger entries it recorded."""
    return Markdown(render(textwrap.dedent(template).strip(), book.entries, where=f"findings of {book.notebook}"))
