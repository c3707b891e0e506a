"""`make paper`: the manuscript built from the ledger, the exported tables and the figure files.

Which source a study's paper is built from (`source_path`):
- the reference study: `paper/manuscript.md`, written by hand;
- any other study: `paper/<study>.md` when it exists (written, or adopted and edited, by people);
  otherwise a source generated from the study's declarations and its ledger
  (`analysis.paper.generated`), written to `paper/build/<study>/<study>.md` so it can be adopted.

A source is Markdown whose every number is a placeholder (`{{ name | style }}`, see analysis.text).
Five more kinds of placeholder:
- `{{ table: <name> | <caption> }}`: the exported table `<output>/tables/<name>.csv` as a real table;
- `{{ figure: <name> | <caption> }}`: the figure file `<output>/figures/<name>.png`, with its caption;
- `{{ caption: <name> | <caption> }}`: the caption of the pipe table just above it (a table whose cells
  are placeholders), numbered as a table;
- `{{ ref: <name> }}`: "Table n" or "Figure n", linked, numbered in order of appearance;
- `{{ warning: <ledger name> }}`: the warnings the ledger recorded with that entry (why it was not
  estimated, say), so that their numbers too come from the ledger.
Captions may hold number placeholders too. pandoc (from the pypandoc_binary wheel) writes HTML and
DOCX, with references formatted from `paper/references.bib` in `paper/vancouver.csl`, and PDF when a
LaTeX engine is installed (its absence is reported, not an error). The SQUIRE 2.0 checklist
(`paper/squire.yml`) is written beside the paper, each item linked to the section that answers it.

Every value substituted from data or a study file (a table's cells and header, a warning, and in a generated
source every label, title and name) is escaped for Markdown (`analysis.paper.safe`): it prints as the text it
is, never as HTML, a link, an image or a placeholder, while the author's Markdown around it stays Markdown.
pandoc looks for images only in the study's figures folder, from an empty working directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from analysis import ledger, tables
from analysis.config import DERIVED_DIR, Study
from analysis.data.manifest import changed_message, raw_changes
from analysis.errors import StudyError
from analysis.ledger import Entry
from analysis.paper.safe import markdown, terminal
from analysis.paths import ROOT, atomic_write, relative, scratch_file
from analysis.provenance import LOCK_FILE, files_digest, sha256_json
from analysis.text import PLACEHOLDER, render

PAPER = ROOT / "paper"
SOURCE = PAPER / "manuscript.md"  # the reference study's manuscript, written by hand
REFERENCE = "reference"
SOURCES = PAPER  # where `<study>.md`, a study's own (adopted) source, is looked for
NOT_A_STUDY_SOURCE = ("README.md", "manuscript.md")
CHECKLIST = PAPER / "squire.yml"
BLOCK = re.compile(r"\{\{\s*(table|figure|caption|ref)\s*:\s*([A-Za-z0-9_\-]+)\s*(?:\|\s*(.*?))?\s*\}\}", re.S)
WARNING = re.compile(r"\{\{\s*warning\s*:\s*([A-Za-z0-9_.\-]+)\s*\}\}")
SECTION_ID = re.compile(r"^#+ .*\{#([A-Za-z0-9_\-]+)([^}]*)\}\s*$", re.M)
# A section whose heading carries this class is a prompt for the authors, not yet an answer.
TO_WRITE = ".to-write"
LATEX_ENGINES = ("xelatex", "lualatex", "pdflatex")
HTML_WIDTH = "48em"
# Digits that name conventions, not results: the confidence level, the guideline's version, the
# control-chart limits, an R package, a year in weeks (a weekly series' seasonal period). Anything else with a
# digit must come from a placeholder.
# the RECORD checklist's item numbers and reference (Benchimol et al. 2015), for a study of routinely collected data
RECORD = ("1.1", "1.2", "1.3", "6.1", "6.2", "6.3", "7.1", "12.1", "12.2", "12.3", "13.1", "19.1", "22.1")
CONVENTIONS = ("95%", "SQUIRE 2.0", "3-sigma", "lme4", "PLoS Med 2015;12:e1001885", "52.18 weeks",
               *(f"RECORD {item}" for item in RECORD))
CITATION = re.compile(r"\[@[^\]]*\]")
ATTRIBUTES = re.compile(r"\{#[^}]*\}")
# what the generated source depends on besides the study file, the ledger, tables and figures
CODE = ("paper/__init__.py", "paper/generated.py", "paper/words.py", "paper/safe.py", "text.py", "tables.py",
        "ledger.py", "config.py", "analyses/outcomes.py", "analyses/figure_data.py", "analyses/robustness.py",
        "analyses/its_counts.py")


def build_dir(study: Study) -> Path:
    """paper/build/<study>, or, for a study whose outputs are not in data_derived/<study> (a relocated copy, a
    rebuild by `verify`, a study kept outside the repository), `paper/` beside its outputs: a copy of `example`
    building or cleaning its manuscript must not touch the repository's paper/build/example."""
    if study.output_dir != DERIVED_DIR / study.name:
        return study.output_dir / "paper"
    return PAPER / "build" / study.name


def figures_dir(study: Study) -> Path:
    return study.output_dir / "figures"


def generated_path(study: Study, out: Path | None = None) -> Path:
    """Where a generated source is written: the build folder, never paper/ itself."""
    return (out or build_dir(study)) / f"{study.name}.md"


def source_path(study: Study) -> Path | None:
    """The hand-written source of the study's paper; None when the paper is generated."""
    if study.name == REFERENCE:
        return SOURCE
    own = SOURCES / f"{study.name}.md"
    return own if own.is_file() and own.name not in NOT_A_STUDY_SOURCE else None


@dataclass(frozen=True)
class Source:
    """A manuscript source: its text, how messages name it, and whether it was generated."""

    text: str
    where: str
    generated: bool = False


def manuscript_source(study: Study, entries: dict[str, Entry], out: Path | None = None) -> Source:
    path = source_path(study)
    if path is not None:
        return Source(path.read_text(encoding="utf-8"), relative(path))
    from analysis.paper import generated

    where = f"{relative(generated_path(study, out))} (generated from {relative(study.file)})"
    return Source(generated.manuscript(study, entries), where, generated=True)


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
    return f"{'tbl' if kind in ('table', 'caption') else 'fig'}-{name}"


def _markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table whose header and cells print as the CSV holds them (escaped: a bar stays in its cell)."""
    cells = frame.astype(object).where(frame.notna(), "").map(markdown)
    header = "| " + " | ".join(markdown(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    return "\n".join([header, rule, *("| " + " | ".join(row) + " |" for row in cells.itertuples(index=False))])


def expand_blocks(text: str, study: Study, where: str | None = None) -> str:
    """Replace table, figure, caption and ref placeholders; every problem is reported at once."""
    numbering, problems = Numbering(), []
    for kind, name, _ in BLOCK.findall(text):
        if kind != "ref":
            numbering.add("table" if kind == "caption" else kind, name)

    def replace(match: re.Match) -> str:
        kind, name, caption = match.group(1), match.group(2), (match.group(3) or "").strip()
        if name not in numbering.numbers:
            problems.append(f"'{kind}: {name}' has no table or figure block of that name")
            return match.group(0)
        label = numbering.label(name)
        if kind == "ref":
            return f"[{label}](#{_anchor(numbering.numbers[name][0], name)})"
        if kind == "caption":
            return f": {label}. {caption} {{#{_anchor(kind, name)}}}"
        if kind == "table":
            path = tables.tables_dir(study) / f"{name}.csv"
            if not path.is_file():
                problems.append(f"table '{name}': {relative(path)} does not exist")
                return match.group(0)
            # cells as the CSV writes them: read as numbers, a count column with an empty cell would print "121.0";
            # without the quote that keeps a spreadsheet from running a text as a formula
            table = tables.unquote(pd.read_csv(path, dtype=str, keep_default_na=False))
            return f"{_markdown_table(table)}\n\n: {label}. {caption} {{#{_anchor(kind, name)}}}"
        path = figures_dir(study) / f"{name}.png"
        if not path.is_file():
            problems.append(f"figure '{name}': {relative(path)} does not exist")
            return match.group(0)
        # by its name alone: pandoc looks for images in the figures folder only (`_pandoc`)
        return f"![{label}. {caption}]({path.name}){{#{_anchor(kind, name)} width=100%}}"

    expanded = BLOCK.sub(replace, text)
    if problems:
        raise StudyError(terminal(f"{where or relative(SOURCE)}: {len(problems)} block problem(s): " +
                                  "; ".join(problems)))
    return expanded


def expand_warnings(text: str, entries: dict[str, Entry], where: str) -> str:
    """Replace `{{ warning: name }}` by the warnings the ledger recorded with that entry."""
    problems = []

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in entries or not entries[name].warnings:
            problems.append(f"'warning: {name}': " + ("not in the ledger" if name not in entries else
                                                      "the entry has no warning"))
            return match.group(0)
        return " ".join(markdown(w) for w in entries[name].warnings)

    expanded = WARNING.sub(replace, text)
    if problems:
        raise StudyError(terminal(f"{where}: {len(problems)} warning problem(s): " + "; ".join(problems)))
    return expanded


def stray_numbers(source: str, declared: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Every line of the manuscript source with a digit outside a placeholder, a citation, a section id,
    a named convention or a text the study file declares (`declared`, e.g. an outcome's label "Score
    (0-10)"): such a number was typed by hand and could drift from the analysis."""
    text = PLACEHOLDER.sub("", source)  # number placeholders first, those inside captions included
    text = WARNING.sub("", text)  # warnings are the ledger's own words
    text = BLOCK.sub(lambda match: match.group(3) or "", text)  # a caption is text: keep it for the check
    text = ATTRIBUTES.sub("", CITATION.sub("", text))
    # a declared text as the study file has it, and as a generated source writes it (escaped for Markdown)
    for convention in (*CONVENTIONS, *sorted({*declared, *map(markdown, declared)}, key=len, reverse=True)):
        text = text.replace(convention, "")
    return [line.strip() for line in text.splitlines() if re.search(r"\d", line)]


def declared_texts(study: Study) -> list[str]:
    """The texts of the study file a manuscript may quote as they are, digits and all: labels, level
    names, the excluded groups, conditions, column names. Only those with a letter count, so that a
    bare number is never allowed."""
    texts = {study.title, study.description, study.name, str(study.file)}
    texts |= {w.label for w in (study.period.before, study.period.after)}
    texts |= {str(w.value) for w in (study.period.before, study.period.after) if w.value is not None}
    for name, table in study.tables.items():
        texts |= {name, table.unit or "", *table.columns, *table.derive, *table.inherit}
        texts |= {spec.label for spec in table.columns.values() if hasattr(spec, "label") and spec.label}
        texts |= {d.label for d in table.derive.values() if d.label}
    for rule in study.eligibility.values():
        texts |= {rule.excluded, *(str(c) for c in rule.keep)}
    for group in study.subgroups.values():
        texts |= {group.label, *(str(c) for c in group.where)}
    for outcome in study.outcomes.values():
        texts |= {outcome.label, outcome.short, outcome.axis_label or "", *(outcome.levels or []),
                  *(str(c) for c in outcome.population)}
    texts |= set(study.covariates) | set(study.cluster_columns())
    texts |= {t.split(",")[0].strip() for t in texts if t}  # a label as a text names it: "Age, years" -> "Age"
    texts |= {t[:1].lower() + t[1:] for t in texts if t}  # and inside a sentence: "readmission within 30 days"
    return sorted(t for t in texts if t and re.search(r"[A-Za-z]", t) and re.search(r"\d", t))


def _sections(manuscript: str) -> dict[str, tuple[str, bool]]:
    """Section id -> (its heading's title, whether the heading marks it as still to write)."""
    found = {}
    for match in SECTION_ID.finditer(manuscript):
        title = re.sub(r"^#+\s*|\s*\{#.*\}\s*$", "", match.group(0))
        found[match.group(1)] = (title, TO_WRITE in match.group(2))
    return found


def checklist(manuscript: str, generic: bool = False, record: bool = False) -> str:
    """The SQUIRE 2.0 checklist as a Markdown table: each item and the section(s) that answer it; with
    ``record`` (a study of routinely collected data, `design.routinely_collected`), a second table of the RECORD
    items (Benchimol et al. 2015), each linked to the section that answers it or, where only the authors can
    answer it, to the manuscript's RECORD section that asks them.

    The reference study's mapping is strict: a section it names must be in the manuscript. A
    manuscript of another study (`generic`) uses each item's `generic:` variant where it has one; a
    section it does not have (no secondary outcomes, say) is left out, and a section whose heading
    is marked `.to-write` is named as still to write rather than as answering the item."""
    spec = yaml.safe_load(CHECKLIST.read_text(encoding="utf-8"))
    sections = _sections(manuscript)
    items = [{**item, **(item.get("generic") or {})} if generic else item for item in spec["items"]]
    unknown = sorted({s for item in items for s in item.get("sections", []) if s not in sections})
    if unknown and not generic:
        raise StudyError(f"{relative(CHECKLIST)}: sections not in the manuscript: {', '.join(unknown)}")
    lines = [f"# {spec['title']}", "", spec["note"].strip(), "",
             "| Item | Guideline | Where in the manuscript | Not answered |", "|---|---|---|---|"]
    answered = 0
    for item in items:
        present = [s for s in item.get("sections", []) if s in sections]
        link = {s: f"[{sections[s][0]}](manuscript.html#{s})" for s in present}
        where = ", ".join(link[s] for s in present if not sections[s][1])
        pending = [link[s] for s in present if sections[s][1]]
        gaps = [item.get("gaps", "")] if where else ["the whole item"]
        if pending:
            gaps.append(f"to write: {', '.join(pending)}")
        answered += bool(where)
        lines.append(f"| {item['item']} | {item['text']} | {where or 'Not answered'} | "
                     f"{'; '.join(g for g in gaps if g)} |")
    lines += ["", f"{answered} of {len(items)} items answered.", ""]
    return "\n".join(lines + (_record_items(sections) if record else []))


def _record_items(sections: dict[str, tuple[str, bool]]) -> list[str]:
    """The RECORD rows of the checklist: where the manuscript answers each item, or that the authors must."""
    from analysis.paper.generated import RECORD_ITEMS

    asked = f"[{sections['record'][0]}](manuscript.html#record)" if "record" in sections else "the manuscript"
    lines = ["## RECORD: routinely collected data", "",
             "The items RECORD adds for observational studies of routinely collected health data (Benchimol EI, et "
             "al. PLoS Med 2015;12:e1001885), answered where the text can be built from the study file, otherwise "
             "asked of the authors.", "", "| Item | Guideline | Where in the manuscript | Not answered |",
             "|---|---|---|---|"]
    answered = 0
    for item, text, section in RECORD_ITEMS:
        if section in sections and not sections[section][1]:
            answered += 1
            lines.append(f"| RECORD {item} | {text} | [{sections[section][0]}](manuscript.html#{section}) | |")
        else:
            lines.append(f"| RECORD {item} | {text} | Not answered | for the authors: asked in {asked} |")
    return [*lines, "", f"{answered} of {len(RECORD_ITEMS)} RECORD items answered.", ""]


def render_source(study: Study, source: Source, entries: dict[str, Entry]) -> str:
    """A source's Markdown with every placeholder filled from the ledger, tables and figures."""
    stray = stray_numbers(source.text, declared_texts(study))
    if stray:
        raise StudyError(terminal(f"{source.where}: {len(stray)} line(s) hold a number typed by hand; use a ledger "
                                  "placeholder ({{ name | style }}) instead: " + " | ".join(stray)))
    # numbers first: a caption inside a table or figure block may hold number placeholders
    text = render(source.text, entries, where=source.where)
    text = expand_warnings(text, entries, source.where)
    return expand_blocks(text, study, source.where)


def render_manuscript(study: Study) -> str:
    """The manuscript's Markdown with every placeholder filled from the ledger, tables and figures."""
    entries = ledger.read(ledger.results_path(study))
    return render_source(study, manuscript_source(study, entries), entries)


def _pandoc(source: Path, target: Path, extra: list[str], figures: Path) -> None:
    """pandoc into a temporary sibling, renamed into place: never half a file.

    pandoc embeds (HTML) or includes (DOCX, PDF) the images it finds on its resource path and in its working
    directory: the path is the study's figures folder alone, and it runs in an empty folder, so that a relative
    name finds nothing else."""
    import pypandoc

    # a name of its own: two builds at once shared `.manuscript.tmp.html`, and one renamed the other's away
    scratch = scratch_file(target, suffix=f".tmp{target.suffix}")
    # the output format follows the scratch file's extension (.html, .docx, .pdf), as pandoc infers it
    command = [pypandoc.get_pandoc_path(), str(Path(source).resolve()), "--from=markdown",
               f"--output={scratch.resolve()}", "--standalone", "--citeproc", f"--resource-path={figures}", *extra]
    try:
        # pandoc's own working directory, not the process's: pypandoc's `cworkdir` changes the whole process's
        # directory, which two builds in one process (threads) then restore in the wrong order
        with tempfile.TemporaryDirectory() as empty:
            done = subprocess.run(command, cwd=empty, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pandoc failed on {relative(source)}: {terminal(done.stderr.strip()[:2000])}")
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def build_key(study: Study) -> str:
    """A hash of everything the built paper depends on: sources, ledger, tables, figures, code, lock.
    A generated paper also depends on the study file, and on whether `paper/<study>.md` exists."""
    own = source_path(study)
    inputs = [own or study.file, CHECKLIST, PAPER / "references.bib", PAPER / "vancouver.csl", LOCK_FILE,
              ledger.results_path(study), *sorted(tables.tables_dir(study).glob("*.csv")),
              *sorted(figures_dir(study).glob("*.png"))]
    code = files_digest(ROOT / "analysis" / name for name in CODE)
    return sha256_json({"files": files_digest(p for p in inputs if Path(p).is_file()), "code": code,
                        "source": relative(own) if own else "generated",
                        "latex": next((e for e in LATEX_ENGINES if shutil.which(e)), None)})


def build(study: Study, out: Path | None = None, force: bool = False, echo=print) -> list[Path]:
    """Write the manuscript (Markdown, HTML, DOCX; PDF if LaTeX is installed) and the checklist into
    `out` (default paper/build/<study>), unless nothing it depends on changed since the last build.
    A generated source is written there too, as `<study>.md`, with how to adopt it."""
    # the ledger holds what the raw data gave when the manifest was written; a raw file changed since
    # means numbers the data no longer give, up to date as the build may otherwise look
    changes = raw_changes(study)
    if changes:
        raise StudyError(changed_message(study, changes))
    out = out or build_dir(study)
    key, stamp = build_key(study), out / ".build-key"
    if not force and stamp.is_file() and stamp.read_text() == key:
        echo(f"paper up to date: {relative(out)}")
        return []
    entries = ledger.read(ledger.results_path(study))
    source = manuscript_source(study, entries, out)
    text = render_source(study, source, entries)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    own = generated_path(study, out)
    if source.generated:
        with atomic_write(own, encoding="utf-8") as handle:
            handle.write(source.text)
        written.append(own)
    elif study.name != REFERENCE:
        own.unlink(missing_ok=True)  # a generated source left from before the study's own was adopted
    manuscript = out / "manuscript.md"
    with atomic_write(manuscript, encoding="utf-8") as handle:
        handle.write(text)
    written.append(manuscript)
    checklist_md = out / "squire-checklist.md"
    with atomic_write(checklist_md, encoding="utf-8") as handle:
        handle.write(checklist(text, generic=study.name != REFERENCE, record=study.design.routinely_collected))
    written.append(checklist_md)
    metadata = [f"--metadata=bibliography:{PAPER / 'references.bib'}", f"--metadata=csl:{PAPER / 'vancouver.csl'}"]
    # a wider page than pandoc's 36em: the results tables have six or seven columns
    html = ["--embed-resources", "--toc", f"--variable=maxwidth:{HTML_WIDTH}", *metadata]
    for target, extra in ((out / "manuscript.html", html),
                          (out / "manuscript.docx", metadata),
                          (out / "squire-checklist.html", ["--embed-resources", "--metadata=title:SQUIRE 2.0" + (
                              " and RECORD" if study.design.routinely_collected else ""),
                                                           f"--variable=maxwidth:{HTML_WIDTH}"])):
        _pandoc(checklist_md if target.stem == "squire-checklist" else manuscript, target, extra, figures_dir(study))
        written.append(target)
    engine = next((e for e in LATEX_ENGINES if shutil.which(e)), None)
    if engine:
        _pandoc(manuscript, out / "manuscript.pdf", [f"--pdf-engine={engine}", *metadata], figures_dir(study))
        written.append(out / "manuscript.pdf")
    else:
        echo("PDF not built: no LaTeX engine found (xelatex, lualatex or pdflatex; e.g. apt-get install texlive-xetex)")
    for path in written:
        echo(f"wrote {relative(path)}")
    if source.generated:
        adopt = SOURCES / f"{study.name}.md"
        echo(f"the manuscript was generated from {relative(study.file)} and the ledger ({relative(own)}); "
             f"to edit it, copy it to {relative(adopt)} (cp {relative(own)} {relative(adopt)}): "
             "the build then uses your copy")
    stamp.write_text(key)
    return written
