"""`make verify`, the reviewer's command: rebuild a study from raw data and compare with what is committed.

The rebuild is a fresh run (no cache) of every notebook into a temporary folder, through the same
runner users call; the committed outputs are never touched. Then, with stated tolerances:
- ledger: every field of every entry (`ledger.compare`): its numbers (estimate, std_error, statistic,
  df, p_value, conf_low, conf_high, n) with |rebuilt - committed| <= ATOL + RTOL * |committed|; its
  description, method, warnings, published value and source exactly; and its provenance (notebook,
  cell, the hashes of the parameters and data it was made from); a field on one side only differs;
- ledger fragments: each notebook's `ledger/<notebook>.json` (what results.json is merged from), entry
  by entry with the same tolerances;
- LEDGER.md: exact text;
- tables: every exported CSV, cell by cell, numbers with the same tolerances;
- figures: every PDF, SVG and PNG; byte-identical files match (a rerun writes the same bytes,
  analysis/figures/files.py). Otherwise each file's provenance is compared, then its drawing. PDF and
  SVG as text, line by line, exactly but for numbers, which may differ by VECTOR_TOLERANCE (points):
  an SVG with its line endings normalised (a CRLF checkout), a PDF with its compressed streams
  inflated and without stream lengths and byte offsets (so that the report shows the drawing command
  that differs). A PNG by its other text chunks and pixel by pixel: it differs when the mean difference
  over any PIXEL_WINDOW-square window exceeds PIXEL_TOLERANCE (a local change: an extra point, a cut
  whisker) or when its structural similarity (SSIM, a global perceptual measure) falls below SSIM_MIN;
- notebooks: every code cell's outputs in every executed notebook, exactly, except the injected
  parameters cell (it names the rebuilt study's file);
- derived tables: each committed file hashes to what the committed manifest says, and equals the
  rebuilt one;
- manifest: the sha256 and row count of every raw input and derived table.
The report (Markdown and JSON) lists every check with what differed and by how much, the installed
package versions against the lock file, the commit and the time taken.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import platform
import re
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import ledger
from analysis.config import Study
from analysis.environment import lock_pins
from analysis.figures import read_provenance
from analysis.figures.files import PNG_KEY
from analysis.paths import ROOT, atomic_write, relative
from analysis.provenance import sha256_file
from analysis.run.relocate import relocate

RTOL = 1e-6  # far above the last-bit noise of BLAS and far below any reported digit
ATOL = 1e-9
SSIM_MIN = 0.99  # 1.0 is pixel-identical; a moved label falls below 0.99, a small local change does not
# SSIM averages over the whole picture: an extra point or a cut CI whisker in a 600-dpi figure leaves it
# above 0.9999. The local check does not: a pixel's difference is its largest change in R, G, B or alpha
# (0-255), and the figure differs when the mean difference over any 8 x 8-pixel window (0.34 mm at
# 600 dpi) exceeds 4, which two pixels changed from white to black already do, while anti-aliasing
# that moves edge pixels by a few grey levels does not.
PIXEL_WINDOW = 8
PIXEL_TOLERANCE = 4.0
# PDF and SVG write coordinates in points to 6 decimals, far below what the ledger's tolerance lets a
# number move (a change of 1e-8 in an odds ratio moves a whisker end by 1e-6 pt): every number in them
# is allowed this absolute difference, 1/12 of a 600-dpi pixel; a cut whisker moves points by whole points.
VECTOR_TOLERANCE = 0.01
# a number standing on its own: not the digits inside an id such as "m966b42bf26" or a hash
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
COMPARISONS: dict[str, tuple[Callable, Callable]] = {}


@dataclass
class Check:
    kind: str
    item: str
    status: str  # "match", "differ", "missing" (committed, not rebuilt), "extra" (rebuilt, not committed)
    detail: str = ""
    measure: float | None = None
    # for a ledger entry, ledger fragment or figure that differs: True when anything but its provenance
    # changed (a number, a text, the published value, the drawing), False when only where it was recorded
    # or what it was made from changed
    moved: bool = True


@dataclass
class Verification:
    study: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    environment: dict = field(default_factory=dict)
    rebuild_error: str | None = None

    @property
    def passed(self) -> bool:
        return self.rebuild_error is None and bool(self.checks) and all(c.status == "match" for c in self.checks)

    @property
    def differences(self) -> list[Check]:
        """Every check that did not match, those whose numbers moved first."""
        return sorted((c for c in self.checks if c.status != "match"), key=lambda c: not c.moved)

    @property
    def moved(self) -> list[Check]:
        return [c for c in self.differences if c.moved]


def _outputs(study: Study) -> Path:
    return study.output_dir


def comparison(kind: str, folder: Callable[[Study], Path] = _outputs):
    """Register `function(committed folder, rebuilt folder) -> checks`; `folder` picks a study's folder to
    compare (its output folder unless told: the executed notebooks may live elsewhere)."""
    def register(function):
        COMPARISONS[kind] = (function, folder)
        return function
    return register


def _files(folder: Path, pattern: str) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob(pattern)) if p.is_file()}


def _pair(kind: str, committed: dict[str, Path], rebuilt: dict[str, Path]):
    """Yield (name, committed, rebuilt) for files on both sides; checks for files on one side only."""
    checks = [Check(kind, name, "missing", "committed but not rebuilt") for name in committed.keys() - rebuilt]
    checks += [Check(kind, name, "extra", "rebuilt but not committed") for name in rebuilt.keys() - committed]
    pairs = [(name, committed[name], rebuilt[name]) for name in sorted(committed.keys() & rebuilt.keys())]
    return checks, pairs


@comparison("ledger")
def compare_ledgers(committed: Path, rebuilt: Path) -> list[Check]:
    old_path, new_path = committed / "results.json", rebuilt / "results.json"
    if not old_path.is_file():
        return [Check("ledger", "results.json", "missing", "no committed ledger")]
    old, new = ledger.read(old_path), ledger.read(new_path)
    found: dict[str, list[str]] = {}
    moved: set[str] = set()
    for row in ledger.compare(old, new, rtol=RTOL, atol=ATOL).itertuples(index=False):
        amount = f" (by {row.abs_diff:.3g})" if row.abs_diff is not None else ""  # None unless both are numbers
        found.setdefault(row.name, []).append(f"{row.field}: {row.expected} -> {row.actual}{amount}; {row.problem}")
        if not row.field.startswith("provenance."):
            moved.add(row.name)
    return [Check("ledger", name, "differ" if name in found else "match", "; ".join(found.get(name, [])),
                  moved=name in moved or name not in found)
            for name in sorted(old.keys() | new.keys())]


def _differing_line(old: list[str], new: list[str], same: Callable[[str, str], bool] = operator.eq) -> str:
    """'' when two texts have the same lines (by `same`, default equal); else the first line that differs,
    and how many lines each has."""
    if len(old) == len(new) and all(map(same, old, new)):
        return ""
    i = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if not same(a, b)), min(len(old), len(new)))
    a, b = (lines[i] if i < len(lines) else "(end of file)" for lines in (old, new))
    return f"line {i + 1}: {_changed(a, b)} ({len(old)} -> {len(new)} lines)"


def _changed(a: str, b: str) -> str:
    """'a' -> 'b', both shown from a little before the first character that differs and cut after 80
    characters (a long line, such as base64 image data, is shown where it differs)."""
    start = max(0, next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))) - 30)
    dots = "..." if start else ""
    return f"{dots}{a[start:start + 80]!r} -> {dots}{b[start:start + 80]!r}"


@comparison("ledger fragments")
def compare_fragments(committed: Path, rebuilt: Path) -> list[Check]:
    checks, pairs = _pair("fragment", _files(committed, "ledger/*.json"), _files(rebuilt, "ledger/*.json"))
    for name, old_path, new_path in pairs:
        old, new = ({key: ledger.Entry(**entry) for key, entry in json.loads(p.read_text(encoding="utf-8")).items()}
                    for p in (old_path, new_path))
        rows = list(ledger.compare(old, new, rtol=RTOL, atol=ATOL).itertuples(index=False))
        found = [f"{row.name} {row.field}: {row.expected} -> {row.actual}; {row.problem}" for row in rows]
        # as for results.json: entries recorded elsewhere or made from other data, but equal, have not moved
        moved = any(not row.field.startswith("provenance.") for row in rows)
        checks.append(Check("fragment", name, "differ" if found else "match", "; ".join(found),
                            measure=float(len(found)), moved=moved or not found))
    return checks


@comparison("ledger names")
def compare_ledger_names(committed: Path, rebuilt: Path) -> list[Check]:
    checks, pairs = _pair("ledger names", _files(committed, "LEDGER.md"), _files(rebuilt, "LEDGER.md"))
    for name, old_path, new_path in pairs:
        where = _differing_line(*(p.read_text(encoding="utf-8").splitlines() for p in (old_path, new_path)))
        checks.append(Check("ledger names", name, "differ" if where else "match", where or "same text"))
    return checks


@comparison("tables")
def compare_tables(committed: Path, rebuilt: Path) -> list[Check]:
    checks, pairs = _pair("table", _files(committed, "tables/*.csv"), _files(rebuilt, "tables/*.csv"))
    for name, old_path, new_path in pairs:
        old, new = pd.read_csv(old_path), pd.read_csv(new_path)
        if list(old.columns) != list(new.columns) or old.shape != new.shape:
            checks.append(Check("table", name, "differ", f"shape/columns {old.shape} {list(old.columns)} -> "
                                                         f"{new.shape} {list(new.columns)}"))
            continue
        cells = []
        for column in old.columns:
            a, b = old[column], new[column]
            if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
                x, y = a.to_numpy(float), b.to_numpy(float)
                bad = ~(np.isclose(y, x, rtol=RTOL, atol=ATOL) | (np.isnan(x) & np.isnan(y)))
            else:
                bad = ~((a.astype(str) == b.astype(str)) | (a.isna() & b.isna())).to_numpy()
            cells += [f"row {i + 1} {column}: {a.iloc[i]} -> {b.iloc[i]}" for i in np.flatnonzero(bad)]
        status = "differ" if cells else "match"
        detail = "; ".join(cells[:10]) + (f"; and {len(cells) - 10} more" if len(cells) > 10 else "")
        checks.append(Check("table", name, status, detail, measure=float(len(cells))))
    return checks


@comparison("figures")
def compare_figures(committed: Path, rebuilt: Path) -> list[Check]:
    """Each figure file's provenance, then its drawing; like a ledger entry, a figure whose provenance
    alone differs (drawn from other parameters or data, to the same picture) has not moved."""
    checks, pairs = _pair("figure", _figure_files(committed), _figure_files(rebuilt))
    for name, old_path, new_path in pairs:
        if old_path.read_bytes() == new_path.read_bytes():
            checks.append(Check("figure", name, "match", "byte-identical", measure=1.0))
            continue
        old, new = _provenance(old_path), _provenance(new_path)
        found = [f"no provenance readable in the {side} file" for side, p in (("committed", old), ("rebuilt", new))
                 if p is None]
        if old is not None and new is not None:
            found += [f"provenance {key}: {old.get(key)} -> {new.get(key)}"
                      for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
        moved, drawing, measure = FIGURE_COMPARISONS[old_path.suffix](old_path, new_path)
        checks.append(Check("figure", name, "differ" if found or moved else "match", "; ".join([*found, drawing]),
                            measure=measure, moved=moved or not found))
    return checks


def _figure_files(folder: Path) -> dict[str, Path]:
    """The figure files the pipeline writes (PDF, SVG and PNG, analysis/figures/files.py)."""
    return {name: path for name, path in _files(folder, "figures/*").items() if path.suffix in FIGURE_COMPARISONS}


def _provenance(path: Path) -> dict | None:
    """The provenance stored in a figure file, None when it cannot be read (a truncated or emptied file)."""
    try:
        return read_provenance(path)
    except (ValueError, OSError, SyntaxError):  # SyntaxError: XML that does not parse
        return None


def _compare_png(old_path: Path, new_path: Path) -> tuple[bool, str, float | None]:
    """(differs, what was measured, SSIM): the text chunks but the provenance, then the pixels."""
    from skimage.metrics import structural_similarity

    try:
        (a, grey_a, text_a), (b, grey_b, text_b) = _png(old_path), _png(new_path)
    except OSError as error:  # a truncated or corrupted file
        return True, f"not a readable PNG: {error}", None
    if a.shape != b.shape:
        return True, f"size {a.shape[1::-1]} -> {b.shape[1::-1]} pixels", None
    texts = [f"PNG text {key!r}: {_changed(text_a.get(key, ''), text_b.get(key, ''))}"
             for key in sorted((text_a.keys() | text_b.keys()) - {PNG_KEY})
             if text_a.get(key) != text_b.get(key)]
    # each pixel's largest change over R, G, B and alpha, in uint8 (max - min does not wrap around)
    difference = (np.maximum(a, b) - np.minimum(a, b)).max(axis=2)
    rows, columns = np.nonzero(difference)
    local, pixels = False, "no pixel differs"
    if rows.size:
        windows = _window_means(difference, PIXEL_WINDOW)
        y, x = np.unravel_index(windows.argmax(), windows.shape)
        local = windows[y, x] > PIXEL_TOLERANCE
        pixels = (f"{rows.size} pixels differ, within x {columns.min()}-{columns.max()}, y {rows.min()}-{rows.max()}; "
                  f"largest mean difference in a window of {PIXEL_WINDOW}x{PIXEL_WINDOW} pixels {windows[y, x]:.1f} "
                  f"of 255, at x {x}-{x + PIXEL_WINDOW - 1}, y {y}-{y + PIXEL_WINDOW - 1} "
                  f"(match at <= {PIXEL_TOLERANCE:g})")
    score = float(structural_similarity(grey_a, grey_b, data_range=255.0))
    detail = "; ".join([*texts, pixels, f"SSIM {score:.4f} (match at >= {SSIM_MIN})"])
    return bool(texts) or local or score < SSIM_MIN, detail, score


def _png(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """RGBA pixels, grey levels (for SSIM) and text chunks of a PNG."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")), np.asarray(image.convert("L"), dtype=float), dict(image.text)


def _window_means(difference: np.ndarray, size: int) -> np.ndarray:
    """The mean of `difference` over every size x size window inside the image (from summed-area
    tables), indexed by the window's top-left pixel."""
    total = np.zeros((difference.shape[0] + 1, difference.shape[1] + 1), dtype=np.int64)
    total[1:, 1:] = difference.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    return (total[size:, size:] - total[:-size, size:] - total[size:, :-size] + total[:-size, :-size]) / size**2


def _compare_drawing(old: str, new: str, old_path: Path, new_path: Path) -> tuple[bool, str, None]:
    """(differs, where, no measure) for two figure files as text, line by line, each without its own
    provenance (compared on its own): what is left is the drawing, its numbers within VECTOR_TOLERANCE."""
    old, new = (_without_provenance(text, path).splitlines() for text, path in ((old, old_path), (new, new_path)))
    where = _differing_line(old, new, _same_but_noise)
    if where:
        return True, where, None
    return False, "same drawing" if old == new else f"same drawing, every number within {VECTOR_TOLERANCE:g}", None


def _same_but_noise(a: str, b: str) -> bool:
    """Equal lines, or lines equal but for numbers that differ by at most VECTOR_TOLERANCE."""
    if a == b:
        return True
    x, y = _NUMBER.findall(a), _NUMBER.findall(b)
    return (_NUMBER.sub("#", a) == _NUMBER.sub("#", b)
            and all(abs(float(u) - float(v)) <= VECTOR_TOLERANCE for u, v in zip(x, y, strict=True)))


def _without_provenance(text: str, path: Path) -> str:
    provenance = _provenance(path)
    if provenance is None:
        return text
    # as analysis.figures.files.provenance_text writes it
    return text.replace(json.dumps(provenance, sort_keys=True, ensure_ascii=True, separators=(",", ":")), "")


def _compare_svg(old_path: Path, new_path: Path) -> tuple[bool, str, None]:
    # text, line by line (splitlines): a checkout that turned line endings into CRLF still matches
    old, new = (p.read_bytes().decode("utf-8", errors="replace") for p in (old_path, new_path))
    return _compare_drawing(old, new, old_path, new_path)


def _compare_pdf(old_path: Path, new_path: Path) -> tuple[bool, str, None]:
    old, new = (p.read_bytes() for p in (old_path, new_path))
    incomplete = [f"the {side} PDF is incomplete (no %%EOF at its end)"
                  for side, data in (("committed", old), ("rebuilt", new)) if not data.rstrip().endswith(b"%%EOF")]
    differs, where, _ = _compare_drawing(_pdf_text(old), _pdf_text(new), old_path, new_path)
    where = f"streams inflated, {where}" if differs else where  # the line numbers are those of _pdf_text
    return differs or bool(incomplete), "; ".join([*incomplete, where]), None


_PDF_STREAM = re.compile(rb"(>>\s*stream\r?\n)(.*?)(\r?\nendstream)", re.S)
# What follows from the compressed bytes, not from the drawing: the streams' lengths, in their
# dictionaries or in objects of their own ("/Length 12 0 R"), and the byte offsets of the cross-reference
# table and startxref (a provenance of another length moves them all).
_PDF_LENGTH = re.compile(rb"/Length \d+(?=\s*(?:/|>>))")
_PDF_LENGTH_OBJECT = re.compile(rb"/Length (\d+) 0 R")
_PDF_OFFSETS = re.compile(rb"(?m)^(xref\r?\n).*?^(?=trailer)|(?<=^startxref)\r?\n\d+", re.S)


def _pdf_text(data: bytes) -> str:
    """A PDF as text: its Flate-compressed streams (page drawing, fonts) inflated, and without the stream
    lengths and byte offsets. A stream that does not inflate (not compressed, or cut short in a truncated
    file) stays as it is written."""
    def inflate(stream: re.Match) -> bytes:
        try:
            return stream[1] + zlib.decompress(stream[2]) + stream[3]
        except zlib.error:
            return stream[0]
    text = _PDF_OFFSETS.sub(rb"\1", _PDF_LENGTH.sub(b"/Length", _PDF_STREAM.sub(inflate, data)))
    for number in set(_PDF_LENGTH_OBJECT.findall(data)):
        text = re.sub(rb"(?m)^(%s 0 obj\s+)\d+" % number, rb"\1", text)
    return text.decode("latin-1")


FIGURE_COMPARISONS: dict[str, Callable[[Path, Path], tuple[bool, str, float | None]]] = {
    ".png": _compare_png, ".svg": _compare_svg, ".pdf": _compare_pdf}


@comparison("notebooks", folder=lambda study: study.notebook_dir)
def compare_notebooks(committed: Path, rebuilt: Path) -> list[Check]:
    """Every code cell's outputs, exactly; the injected parameters cell names the rebuilt study's file.

    A notebook never executed is not compared: the reference study's notebooks/ folder holds the sources, among
    them those its pipeline does not run (08_power runs only `when: power`, notebooks/pipeline.yml)."""
    executed = {name: path for name, path in _files(committed, "*.ipynb").items()
                if "papermill" in json.loads(path.read_text(encoding="utf-8"))["metadata"]}
    checks, pairs = _pair("notebook", executed, _files(rebuilt, "*.ipynb"))
    for name, old_path, new_path in pairs:
        old, new = _code_cells(old_path), _code_cells(new_path)
        found = [] if len(old) == len(new) else [f"{len(old)} -> {len(new)} code cells"]
        for number, ((cell, a), (_, b)) in enumerate(zip(old, new, strict=False), start=1):
            # outputs as indented JSON, so that a difference is named by its line: a number in a table, a PNG
            where = _differing_line(*(json.dumps(o, indent=1, sort_keys=True).splitlines() for o in (a, b)))
            if where:
                found.append(f"code cell {number} (id {cell}) outputs, {where}")
        detail = "; ".join(found[:3]) + (f"; and {len(found) - 3} more cells" if len(found) > 3 else "")
        checks.append(Check("notebook", name, "differ" if found else "match", detail, measure=float(len(found))))
    return checks


def _code_cells(path: Path) -> list[tuple[str, list]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c.get("id", ""), c.get("outputs", [])) for c in cells
            if c["cell_type"] == "code" and "injected-parameters" not in c["metadata"].get("tags", [])]


@comparison("derived")
def compare_derived(committed: Path, rebuilt: Path) -> list[Check]:
    """Each committed derived table against the committed manifest's sha256 (a table edited without its
    manifest) and against the rebuilt table; the manifests themselves are compared under "manifest"."""
    manifest = committed / "manifest.json"
    listed = ({e["path"]: e["sha256"] for e in json.loads(manifest.read_text(encoding="utf-8")).get("outputs", [])}
              if manifest.is_file() else {})
    checks, pairs = _pair("derived", _files(committed, "derived/*"), _files(rebuilt, "derived/*"))
    for name, old_path, new_path in pairs:
        old, new = sha256_file(old_path), sha256_file(new_path)
        found = []
        if name not in listed:
            found.append("not listed in the committed manifest.json")
        elif listed[name] != old:
            found.append(f"sha256 {old[:12]}, but the committed manifest.json says {listed[name][:12]}")
        if new != old:
            found.append(f"sha256 {old[:12]} -> {new[:12]} rebuilt")
        checks.append(Check("derived", name, "differ" if found else "match", "; ".join(found) or f"sha256 {old[:12]}"))
    return checks


@comparison("manifest")
def compare_manifests(committed: Path, rebuilt: Path) -> list[Check]:
    old_path, new_path = committed / "manifest.json", rebuilt / "manifest.json"
    if not old_path.is_file():
        return [Check("manifest", "manifest.json", "missing", "no committed manifest")]
    old, new = (_manifest_files(json.loads(p.read_text(encoding="utf-8"))) for p in (old_path, new_path))
    checks = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new or name not in old:
            checks.append(Check("manifest", name, "missing" if name in old else "extra", "listed on one side only"))
        elif old[name] != new[name]:
            a, b = old[name], new[name]
            changes = [f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
            checks.append(Check("manifest", name, "differ", "; ".join(changes)))
        else:
            checks.append(Check("manifest", name, "match", f"sha256 {old[name].get('sha256', '')[:12]}"))
    return checks


def _manifest_files(manifest: dict) -> dict[str, dict]:
    """Inputs by repository-relative path and outputs by path inside the output folder."""
    files = {}
    for role in ("inputs", "outputs"):
        for entry in manifest.get(role, []):
            files[f"{role}/{entry['path']}"] = {k: v for k, v in entry.items() if k in {"sha256", "rows"}}
    return files


def environment_report() -> dict:
    """Installed versions of every locked package, and any that differ from the lock file."""
    pins = lock_pins()
    installed = {}
    for name in pins:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = None
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "commit": commit or "unknown",
        "uncommitted_changes": bool(dirty),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": installed,
        "not_as_locked": {n: {"lock": pins[n], "installed": v} for n, v in installed.items() if v != pins[n]},
    }


def verify(study: Study, committed: Study | None = None, keep: Path | None = None, echo=print) -> Verification:
    """Rebuild `study` from raw data in a temporary folder; compare with `committed` (default: itself)."""
    from analysis.run import run_study

    committed = committed or study
    started = time.perf_counter()
    result = Verification(study=study.name, environment=environment_report())
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        folder = keep or Path(tmp)
        twin = relocate(study, folder)
        echo(f"rebuilding '{study.name}' from raw data in a fresh folder (no cache)")
        report = run_study(twin, force=True, echo=lambda line: echo(f"  {line}"))
        if report.failed:
            result.rebuild_error = report.failed[0].error
        else:
            ledger.merge(twin)
            for kind, (function, folder) in COMPARISONS.items():
                checks = function(folder(committed), folder(twin))
                result.checks += checks
                bad = sum(c.status != "match" for c in checks)
                echo(f"compared {kind}: {len(checks)} checked, {bad} differ")
    result.seconds = time.perf_counter() - started
    return result


def write_report(result: Verification, folder: Path) -> tuple[Path, Path]:
    payload = asdict(result) | {"passed": result.passed, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                "tolerances": {"rtol": RTOL, "atol": ATOL, "ssim_min": SSIM_MIN,
                                               "pixel_window": PIXEL_WINDOW, "pixel_tolerance": PIXEL_TOLERANCE,
                                               "vector_tolerance": VECTOR_TOLERANCE}}
    json_path, md_path = folder / "report.json", folder / "report.md"
    with atomic_write(json_path, encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, default=str)
        handle.write("\n")
    with atomic_write(md_path, encoding="utf-8") as handle:
        handle.write(_markdown(result, payload))
    return md_path, json_path


def _markdown(result: Verification, payload: dict) -> str:
    env = result.environment
    verdict = "PASSED: everything reproduced" if result.passed else "FAILED: see the differences below"
    lines = [
        f"# Reproducibility report: study `{result.study}`",
        "",
        f"**{verdict}.**",
        "",
        f"- date (UTC): {payload['date']}; time taken: {result.seconds:.0f} s",
        f"- commit: `{env['commit']}`" + (" (with uncommitted changes)" if env["uncommitted_changes"] else ""),
        f"- Python {env['python']} on {env['platform']}",
        f"- tolerances: numbers |rebuilt - committed| <= {ATOL:g} + {RTOL:g} x |committed|; PNG figures: mean "
        f"difference <= {PIXEL_TOLERANCE:g} of 255 over every {PIXEL_WINDOW}x{PIXEL_WINDOW}-pixel window and SSIM >= "
        f"{SSIM_MIN}; PDF and SVG figures: every number within {VECTOR_TOLERANCE:g} pt, the rest exactly; notebook "
        f"outputs, LEDGER.md, figure provenance and derived tables' sha256 exactly",
        f"- packages not as locked: {len(env['not_as_locked'])}"
        + "".join(f"\n  - {n}: lock {v['lock']}, installed {v['installed']}" for n, v in env["not_as_locked"].items()),
        "",
    ]
    if result.rebuild_error:
        lines += ["## The rebuild failed", "", result.rebuild_error, ""]
    lines += ["## Summary", "", "| kind | checked | match | differ | missing | extra |", "|---|---|---|---|---|---|"]
    for kind in sorted({c.kind for c in result.checks}):
        statuses = [c.status for c in result.checks if c.kind == kind]
        counts = [statuses.count(s) for s in ("match", "differ", "missing", "extra")]
        lines.append(f"| {kind} | {len(statuses)} | " + " | ".join(map(str, counts)) + " |")
    lines += ["", "## Numbers, tables, figures and files that moved", ""]
    if result.moved:
        lines += ["| kind | item | status | detail |", "|---|---|---|---|"]
        lines += [f"| {c.kind} | `{c.item}` | {c.status} | {c.detail.replace('|', '/')} |" for c in result.moved]
    else:
        lines.append("None.")
    unmoved = [c for c in result.differences if not c.moved]
    if unmoved:
        lines += ["", f"## Same values, other provenance: recorded elsewhere or made from other parameters or data "
                  f"({len(unmoved)} ledger entries, ledger fragments and figures)", "",
                  ", ".join(f"`{c.item}`" for c in unmoved)]
    lines += ["", "## Every check", "", "| kind | item | status | detail |", "|---|---|---|---|"]
    lines += [f"| {c.kind} | `{c.item}` | {c.status} | {c.detail.replace('|', '/')} |" for c in result.checks]
    lines += ["", "## Installed packages", "", ", ".join(f"{n} {v}" for n, v in sorted(env["packages"].items())), ""]
    return "\n".join(lines)


def report_folder(study: Study) -> Path:
    return study.output_dir / "verification"


def summary_line(result: Verification, report: Path) -> str:
    if result.passed:
        return f"verify: {len(result.checks)} checks matched in {result.seconds:.0f} s; report {relative(report)}"
    if result.rebuild_error:
        return f"verify FAILED: the rebuild failed: {result.rebuild_error}; report {relative(report)}"
    moved = ", ".join(c.item for c in result.moved[:8]) + (", ..." if len(result.moved) > 8 else "")
    count = f"{len(result.differences)} of {len(result.checks)} checks differ, {len(result.moved)} moved"
    return f"verify FAILED: {count} ({moved}); report {relative(report)}"
