"""`make paper`: the manuscript built from the ledger, the exported tables and the figure files.

`paper/manuscript.md` is Markdown whose every number is a placeholder (`{{ name | style }}`, see
analysis.text). Three more kinds of placeholder, each alone on its line or inline:
- `{{ table: <name> | <caption> }}`: the exported table `<output>/tables/<name>.csv` as a real table;
- `{{ figure: <name> | <caption> }}`: the figure file `<output>/figures/<name>.png`, with its caption;
- `{{ ref: <name> }}`: "Table n" or "Figure n", linked, numbered in order of appearance.
Captions may hold number placeholders too. pandoc (from the pypandoc_binary wheel) writes HTML and
DOCX, with references formatted from `paper/references.bib` in `paper/vancouver.csl`, and PDF when a
LaTeX engine is installed (its absence is reported, not an error). The SQUIRE 2.0 checklist
(`paper/squire.yml`) is written beside the paper, each item linked to the section that answers it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from analysis import ledger, tables
from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import ROOT, atomic_write, relative
from analysis.provenance import LOCK_FILE, files_digest, sha256_json
from analysis.text import PLACEHOLDER, render

PAPER = ROOT / "paper"
SOURCE = PAPER / "manuscript.md"
CHECKLIST = PAPER / "squire.yml"
BLOCK = re.compile(r"\{\{\s*(table|figure|ref)\s*:\s*([A-Za-z0-9_\-]+)\s*(?:\|\s*(.*?))?\s*\}\}", re.S)
SECTION_ID = re.compile(r"^#+ .*\{#([A-Za-z0-9_\-]+)\}\s*$", re.M)
LATEX_ENGINES = ("xelatex", "lualatex", "pdflatex")
# Digits that name conventions, not results: the confidence level, the guideline's version, the
# control-chart limits, an R package. Anything else with a digit must come from a placeholder.
CONVENTIONS = ("95%", "SQUIRE 2.0", "3-sigma", "lme4")
CITATION = re.compile(r"\[@[^\]]*\]")
ATTRIBUTES = re.compile(r"\{#[^}]*\}")


def build_dir(study: Study) -> Path:
    return PAPER / "build" / study.name


@dataclass
class Numbering:
    """Tables and figures numbered in order of their first block."""

    numbers: dict[str, tuple[str, int]] = field(default_factory=dict)

    def add(self, kind: str, name: str) -> int:
        count = sum(1 for k, _ in self.numbers.values() if k == kind) + 1
        self.numbers.setdefault(name, (kind, count))
        return self.numbers[name][1]

    def label(self, name: str) -> str:
        kind, number = self.numbers[name]
        return f"{kind.title()} {number}"


def _anchor(kind: str, name: str) -> str:
    return f"{'tbl' if kind == 'table' else 'fig'}-{name}"


def _markdown_table(frame: pd.DataFrame) -> str:
    cells = frame.astype(object).where(frame.notna(), "").astype(str)
    cells = cells.apply(lambda column: column.str.replace("|", "/", regex=False))
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    return "\n".join([header, rule, *("| " + " | ".join(row) + " |" for row in cells.itertuples(index=False))])


def expand_blocks(text: str, study: Study) -> str:
    """Replace table, figure and ref placeholders; every problem is reported at once."""
    numbering, problems = Numbering(), []
    for kind, name, _ in BLOCK.findall(text):
        if kind != "ref":
            numbering.add(kind, name)

    def replace(match: re.Match) -> str:
        kind, name, caption = match.group(1), match.group(2), (match.group(3) or "").strip()
        if name not in numbering.numbers:
            problems.append(f"'{kind}: {name}' has no table or figure block of that name")
            return match.group(0)
        label = numbering.label(name)
        if kind == "ref":
            return f"[{label}](#{_anchor(numbering.numbers[name][0], name)})"
        if kind == "table":
            path = tables.tables_dir(study) / f"{name}.csv"
            if not path.is_file():
                problems.append(f"table '{name}': {relative(path)} does not exist")
                return match.group(0)
            return f"{_markdown_table(pd.read_csv(path))}\n\n: {label}. {caption} {{#{_anchor(kind, name)}}}"
        path = study.output_dir / "figures" / f"{name}.png"
        if not path.is_file():
            problems.append(f"figure '{name}': {relative(path)} does not exist")
            return match.group(0)
        return f"![{label}. {caption}]({relative(path)}){{#{_anchor(kind, name)} width=100%}}"

    expanded = BLOCK.sub(replace, text)
    if problems:
        raise StudyError(f"{relative(SOURCE)}: {len(problems)} block problem(s): " + "; ".join(problems))
    return expanded


def stray_numbers(source: str) -> list[str]:
    """Every line of the manuscript source with a digit outside a placeholder, a citation, a section id or
    a named convention: such a number was typed by hand and could drift from the analysis."""
    text = PLACEHOLDER.sub("", source)  # number placeholders first, those inside captions included
    text = BLOCK.sub(lambda match: match.group(3) or "", text)  # a caption is text: keep it for the check
    text = ATTRIBUTES.sub("", CITATION.sub("", text))
    for convention in CONVENTIONS:
        text = text.replace(convention, "")
    return [line.strip() for line in text.splitlines() if re.search(r"\d", line)]


def checklist(manuscript: str) -> str:
    """The SQUIRE 2.0 checklist as a Markdown table: each item and the section(s) that answer it."""
    spec = yaml.safe_load(CHECKLIST.read_text(encoding="utf-8"))
    sections = {match.group(1): match.group(0) for match in SECTION_ID.finditer(manuscript)}
    unknown = sorted({s for item in spec["items"] for s in item.get("sections", []) if s not in sections})
    if unknown:
        raise StudyError(f"{relative(CHECKLIST)}: sections not in the manuscript: {', '.join(unknown)}")
    titles = {key: re.sub(r"^#+\s*|\s*\{#.*\}\s*$", "", line) for key, line in sections.items()}
    lines = [f"# {spec['title']}", "", spec["note"].strip(), "",
             "| Item | Guideline | Where in the manuscript | Not answered |", "|---|---|---|---|"]
    for item in spec["items"]:
        where = ", ".join(f"[{titles[s]}](manuscript.html#{s})" for s in item.get("sections", []))
        gaps = item.get("gaps", "") if where else "the whole item"
        lines.append(f"| {item['item']} | {item['text']} | {where or 'Not answered'} | {gaps} |")
    answered = sum(bool(item.get("sections")) for item in spec["items"])
    lines += ["", f"{answered} of {len(spec['items'])} items answered.", ""]
    return "\n".join(lines)


def render_manuscript(study: Study) -> str:
    """The manuscript's Markdown with every placeholder filled from the ledger, tables and figures."""
    source = SOURCE.read_text(encoding="utf-8")
    stray = stray_numbers(source)
    if stray:
        raise StudyError(f"{relative(SOURCE)}: {len(stray)} line(s) hold a number typed by hand; use a ledger "
                         "placeholder ({{ name | style }}) instead: " + " | ".join(stray))
    entries = ledger.read(ledger.results_path(study))
    # numbers first: a caption inside a table or figure block may hold number placeholders
    text = render(source, entries, where=relative(SOURCE))
    return expand_blocks(text, study)


def _pandoc(source: Path, target: Path, extra: list[str]) -> None:
    """pandoc into a temporary sibling, renamed into place: never half a file."""
    import pypandoc

    scratch = target.with_name(f".{target.stem}.tmp{target.suffix}")
    try:
        pypandoc.convert_file(
            str(source), to=target.suffix.lstrip("."), outputfile=str(scratch), format="markdown",
            extra_args=["--standalone", "--citeproc", f"--resource-path={ROOT}", *extra],
        )
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def build_key(study: Study) -> str:
    """A hash of everything the built paper depends on: sources, ledger, tables, figures, code, lock."""
    inputs = [SOURCE, CHECKLIST, PAPER / "references.bib", PAPER / "vancouver.csl", LOCK_FILE,
              ledger.results_path(study), *sorted(tables.tables_dir(study).glob("*.csv")),
              *sorted((study.output_dir / "figures").glob("*.png"))]
    code = files_digest(ROOT / "analysis" / name for name in ("paper.py", "text.py", "tables.py", "ledger.py"))
    return sha256_json({"files": files_digest(p for p in inputs if p.is_file()), "code": code,
                        "latex": next((e for e in LATEX_ENGINES if shutil.which(e)), None)})


def build(study: Study, out: Path | None = None, force: bool = False, echo=print) -> list[Path]:
    """Write the manuscript (Markdown, HTML, DOCX; PDF if LaTeX is installed) and the checklist into
    `out` (default paper/build/<study>), unless nothing it depends on changed since the last build."""
    out = out or build_dir(study)
    key, stamp = build_key(study), out / ".build-key"
    if not force and stamp.is_file() and stamp.read_text() == key:
        echo(f"paper up to date: {relative(out)}")
        return []
    text = render_manuscript(study)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    source = out / "manuscript.md"
    with atomic_write(source, encoding="utf-8") as handle:
        handle.write(text)
    written.append(source)
    checklist_md = out / "squire-checklist.md"
    with atomic_write(checklist_md, encoding="utf-8") as handle:
        handle.write(checklist(text))
    written.append(checklist_md)
    metadata = [f"--metadata=bibliography:{PAPER / 'references.bib'}", f"--metadata=csl:{PAPER / 'vancouver.csl'}"]
    for target, extra in ((out / "manuscript.html", ["--embed-resources", "--toc", *metadata]),
                          (out / "manuscript.docx", metadata),
                          (out / "squire-checklist.html", ["--embed-resources", "--metadata=title:SQUIRE 2.0"])):
        _pandoc(checklist_md if target.stem == "squire-checklist" else source, target, extra)
        written.append(target)
    engine = next((e for e in LATEX_ENGINES if shutil.which(e)), None)
    if engine:
        _pandoc(source, out / "manuscript.pdf", [f"--pdf-engine={engine}", *metadata])
        written.append(out / "manuscript.pdf")
    else:
        echo("PDF not built: no LaTeX engine found (xelatex, lualatex or pdflatex; e.g. apt-get install texlive-xetex)")
    for path in written:
        echo(f"wrote {relative(path)}")
    stamp.write_text(key)
    return written
