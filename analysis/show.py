"""What the notebooks display: the data's nature, results as readable tables, warnings as sentences,
and findings written from the ledger. Presentation only: no statistic is computed here.

When the study's disclosure rules apply (real data, or a preview: analysis/disclosure.py), what a notebook
displays is what may leave the TRE, as in the exported tables and the ledger: `banner`, which every notebook
shows first, hands every data frame the kernel displays to `disclosure.protect_table` (an IPython formatter,
so that a frame shown as a cell's last line, `display(frame)` or `frame.round(3)` is covered without each
notebook cell knowing the rules), `results` hides an entry's numbers as `Ledger.save` would, and `findings`
writes the prose from the entries as saved.
"""

from __future__ import annotations

import io
import math
import textwrap

import pandas as pd
from IPython.display import Image, Markdown
from matplotlib.figure import Figure

from analysis import disclosure
from analysis.config import Study
from analysis.ledger import Ledger
from analysis.text import render

# the study whose notebook this kernel runs, and its rules (None: nothing to hide); set by `banner`
_session: dict = {"study": None, "rules": None}
# the columns of `results` that show each number of a ledger entry
_SHOWN_IN = {"estimate": "estimate", "conf_low": "95% CI", "conf_high": "95% CI", "statistic": "statistic",
             "p_value": "p", "n": "n"}


def banner(study: Study) -> Markdown:
    """Stated at the top of every notebook that shows results; puts the notebook's displays under the study's
    disclosure rules."""
    _protect_display(study)
    if study.synthetic:
        source = (" generated from published aggregates by a seeded generator: counts match what was published, "
                  "other results illustrate the method" if study.published is not None else
                  " made by a seeded generator: the results illustrate the method")
        return Markdown(
            f"> **Synthetic data.** Study `{study.name}`: {study.title}. The data are synthetic,{source} and are "
            "not evidence about real patients."
        )
    rules = _session["rules"]
    return Markdown(f"> Study `{study.name}`: {study.title}. Under disclosure control ({rules.description}): "
                    f"a suppressed value is shown as `{rules.marker}`.")


def _protect_display(study: Study) -> None:
    rules = disclosure.profile(study)
    _session.update(study=study, rules=rules)
    try:
        formatters = get_ipython().display_formatter.formatters  # type: ignore[name-defined]  # noqa: F821
    except NameError:  # not in a kernel: nothing is displayed
        return
    if rules is None:
        formatters["text/html"].pop(pd.DataFrame, None)
        formatters["text/plain"].pop(pd.DataFrame, None)
        return
    formatters["text/html"].for_type(pd.DataFrame, lambda frame: protected(frame)._repr_html_())
    formatters["text/plain"].for_type(pd.DataFrame, lambda frame, printer, cycle: printer.text(repr(protected(frame))))


def protected(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as the notebook may display it: unchanged when no rules apply, else as `disclosure.protect_table`
    leaves it (its index, a cluster or a month, taken as columns while it is checked)."""
    rules, study = _session["rules"], _session["study"]
    if rules is None:
        return frame
    flat = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    flat.columns = [str(c) for c in flat.columns]
    out, _ = disclosure.protect_table("displayed", flat, rules, disclosure.hidden_entries(study))
    if flat is frame:
        return out
    out = out.set_index(list(out.columns[:frame.index.nlevels]))
    out.index.names = frame.index.names
    out.columns = frame.columns
    return out


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
    rules = _session["rules"]
    rows = {name: i for i, name in enumerate(frame["name"])}
    for name, fields in _hidden(frame).items():
        for field in fields:
            if field in _SHOWN_IN:
                table.iat[rows[name], table.columns.get_loc(_SHOWN_IN[field])] = rules.marker
    if "published_source" in frame:
        table["published"] = [
            _number(p if pd.notna(p) else e) + (f" ({_number(lo)} to {_number(hi)})" if pd.notna(lo) else "")
            if isinstance(s, str) else ""
            for e, lo, hi, p, s in zip(frame["published_estimate"], frame["published_low"], frame["published_high"],
                                       frame["published_p_value"], frame["published_source"], strict=True)
        ]
    return table


def _hidden(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Under the study's rules, the fields of each row of a results frame that `Ledger.save` would hide, by the
    row's ledger name (an outcome's entries are hidden together, with those another notebook hid)."""
    if _session["rules"] is None:
        return {}
    entries = {row["name"]: {k: row[k] for k in ("method", "n", "warnings", *disclosure.RESULT_FIELDS)
                             if k in row and row[k] is not None and not (k != "warnings" and pd.isna(row[k]))}
               for row in frame.to_dict("records")}
    _, hidden = disclosure.protect_entries(entries, _session["rules"], disclosure.hidden_families(_session["study"]))
    return {found["entry"]: found["fields"] for found in hidden}


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
    hidden = {name for name, fields in _hidden(frame).items() if "warnings" in fields}
    for name, text in zip(frame["name"], frame["warnings"], strict=True):
        if name in hidden:  # under disclosure control, with the numbers it is about
            continue
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
    return Markdown(render(textwrap.dedent(template).strip(), book.released(), where=f"findings of {book.notebook}"))
