"""`make verify`, the reviewer's command: rebuild a study from raw data and compare with what is committed.

The rebuild is a fresh run (no cache) of every notebook into a temporary folder, through the same
runner users call; the committed outputs are never touched. Then, with stated tolerances:
- ledger: every field of every entry (`ledger.compare`): its numbers (estimate, std_error, statistic,
  df, p_value, conf_low, conf_high, n) with |rebuilt - committed| <= ATOL + RTOL * |committed|; its
  description, method, warnings, published value and source exactly; and its provenance (notebook,
  cell, the hashes of the parameters and data it was made from); a field on one side only differs;
- tables: every exported CSV, cell by cell, numbers with the same tolerances;
- figures: every PNG by structural similarity (SSIM, a perceptual measure) >= SSIM_MIN;
- manifest: the sha256 and row count of every raw input and derived table.
The report (Markdown and JSON) lists every check with what differed and by how much, the installed
package versions against the lock file, the commit and the time taken.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import ledger
from analysis.config import Study
from analysis.environment import lock_pins
from analysis.paths import ROOT, atomic_write, relative
from analysis.run.relocate import relocate

RTOL = 1e-6  # far above the last-bit noise of BLAS and far below any reported digit
ATOL = 1e-9
SSIM_MIN = 0.99  # 1.0 is pixel-identical; a moved point or changed label falls below 0.99
COMPARISONS = {}


@dataclass
class Check:
    kind: str
    item: str
    status: str  # "match", "differ", "missing" (committed, not rebuilt), "extra" (rebuilt, not committed)
    detail: str = ""
    measure: float | None = None
    # for a ledger entry that differs: True when anything but its provenance changed (a number, a text,
    # the published value), False when only where it was recorded or what it was made from changed
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


def comparison(kind: str):
    def register(function):
        COMPARISONS[kind] = function
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
    from PIL import Image
    from skimage.metrics import structural_similarity

    checks, pairs = _pair("figure", _files(committed, "figures/*.png"), _files(rebuilt, "figures/*.png"))
    for name, old_path, new_path in pairs:
        if old_path.read_bytes() == new_path.read_bytes():
            checks.append(Check("figure", name, "match", "byte-identical", measure=1.0))
            continue
        a = np.asarray(Image.open(old_path).convert("L"), dtype=float)
        b = np.asarray(Image.open(new_path).convert("L"), dtype=float)
        if a.shape != b.shape:
            checks.append(Check("figure", name, "differ", f"size {a.shape[::-1]} -> {b.shape[::-1]} pixels"))
            continue
        score = float(structural_similarity(a, b, data_range=255.0))
        status = "match" if score >= SSIM_MIN else "differ"
        checks.append(Check("figure", name, status, f"SSIM {score:.4f} (match at >= {SSIM_MIN})", measure=score))
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
            for kind, function in COMPARISONS.items():
                checks = function(committed.output_dir, twin.output_dir)
                result.checks += checks
                bad = sum(c.status != "match" for c in checks)
                echo(f"compared {kind}: {len(checks)} checked, {bad} differ")
    result.seconds = time.perf_counter() - started
    return result


def write_report(result: Verification, folder: Path) -> tuple[Path, Path]:
    payload = asdict(result) | {"passed": result.passed, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                "tolerances": {"rtol": RTOL, "atol": ATOL, "ssim_min": SSIM_MIN}}
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
        f"- tolerances: numbers |rebuilt - committed| <= {ATOL:g} + {RTOL:g} x |committed|; figures SSIM >= {SSIM_MIN}",
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
                  f"({len(unmoved)} ledger entries)", "",
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
