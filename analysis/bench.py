"""`make bench`: speed and memory, measured, printed and written to tests/benchmarks/RESULTS.md.

Benchmarks, not timed tests: they report figures against targets and never fail the test suite.
Each benchmark is a function registered with `@benchmark`, returning rows of
(measure, value, unit, target, note).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from analysis.config import Study, load_study
from analysis.paths import ROOT, atomic_write, relative
from analysis.run.pipeline import load_pipeline
from analysis.run.relocate import relocate

RESULTS = ROOT / "tests" / "benchmarks" / "RESULTS.md"
BENCHMARKS = []


def benchmark(function):
    BENCHMARKS.append(function)
    return function


def _script(source: Path, study_file: Path) -> str:
    """A notebook's code as a plain Python script, with the same parameter the runner injects."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    lines = ["from IPython.display import display  # what a notebook provides for free", ""]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.metadata.get("tags", []):
            lines.append(f"study = {str(study_file)!r}")
        else:
            lines.append(cell.source)
        lines.append("")
    return "\n".join(lines)


@benchmark
def runner(study: Study, echo) -> list[tuple]:
    """Cold run of every notebook (environment installed, nothing cached) and the runner's overhead.

    Overhead: each notebook through papermill (kernel start, parameter injection, normalising and
    writing the executed notebook) against the same code run as a plain Python script.
    """
    from analysis.run import run_study

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        twin = relocate(study, Path(tmp) / "notebooks")
        started = time.perf_counter()
        report = run_study(twin, force=True, echo=lambda line: echo(f"  {line}"))
        cold = time.perf_counter() - started
        if report.failed:
            raise RuntimeError(f"the cold run failed: {report.failed[0].error}")
        rows.append(("cold run of every notebook (python -m analysis run --force)", cold, "s", "", "2 parallel"))
        by_name = {o.step.name: o.seconds for o in report.ran}
        scripts = relocate(study, Path(tmp) / "scripts")
        for step in load_pipeline():
            path = Path(tmp) / f"{step.name}.py"
            path.write_text(_script(step.source, scripts.file))
            started = time.perf_counter()
            subprocess.run([sys.executable, str(path)], cwd=ROOT, check=True, capture_output=True)
            plain = time.perf_counter() - started
            ratio = by_name[step.name] / plain
            rows.append((f"{step.name}: runner / plain script", ratio, "x", "< 2",
                         f"{by_name[step.name]:.1f} s vs {plain:.1f} s"))
    return rows


@benchmark
def no_op(study: Study, echo) -> list[tuple]:
    """`make reproduce` when nothing changed: hashing inputs and deciding that every notebook is current."""
    command = ["make", "--no-print-directory", "reproduce", f"STUDY={study.name}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)  # brings everything up to date
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    current = sum(line.startswith("[") and line.endswith("up to date") for line in done.stdout.splitlines())
    paper = "paper up to date" if "paper up to date" in done.stdout else "paper rebuilt"
    return [("no-op make reproduce", seconds, "s", "< 2", f"{current} notebooks reported up to date; {paper}")]


SCALE = {"patients": 1_000_000, "teams": 200, "sites": 25}
# Each step runs in a fresh interpreter so that its peak memory is its own.
_MEASURED = """
import json, resource, sys, time
started = time.perf_counter()
{body}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": peak}}))
"""


def _measure(body: str) -> dict:
    code = _MEASURED.format(body=textwrap.dedent(body))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@benchmark
def scale(study: Study, echo) -> list[tuple]:
    """A large synthetic study: generating it, its data step, and the mixed-effects model on it."""
    n, teams, sites = SCALE["patients"], SCALE["teams"], SCALE["sites"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        steps = [
            (f"generate {n:,} patients, {teams} teams, {sites} sites",
             f"from analysis.cli import main; main(['synthesize', '--patients', '{n}', '--teams', '{teams}', "
             f"'--sites', '{sites}', '--out', {tmp!r}])"),
            ("data step: validate, derive, write parquet and manifest",
             f"from analysis.cli import main; main(['data', {tmp + f'/scaled_{n}.yml'!r}])"),
            (f"mixed-effects logistic, random intercept for team ({teams} teams), Laplace",
             f"from analysis.data import load\nfrom analysis import stats\n"
             f"d = load({tmp + f'/scaled_{n}.yml'!r}).patients\n"
             f"d = d.assign(y=d.error_at_admission.astype(int))\n"
             f"stats.mixed_logistic(d, 'y ~ after + age + charlson + n_medicines', 'team')"),
        ]
        notes = ["", "", "for comparison (shared/DESIGN.md, same machine kind): glmer 158 s, statsmodels fit_map 33 s"]
        for (label, body), note in zip(steps, notes, strict=True):
            measured = _measure(body)
            memory = f"peak memory {measured['peak_mb']:,.0f} MB"
            rows.append((label, measured["seconds"], "s", "", f"{memory}; {note}" if note else memory))
    return rows


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def run_benchmarks(study_name: str = "reference", only: list[str] | None = None, echo=print) -> Path:
    study = load_study(study_name)
    rows = []
    for function in BENCHMARKS:
        if only and function.__name__ not in only:
            continue
        echo(f"benchmark {function.__name__}: {function.__doc__.splitlines()[0]}")
        for row in function(study, echo):
            rows.append((function.__name__, *row))
            echo(f"  {row[0]}: {row[1]:.3g} {row[2]}" + (f" (target {row[3]})" if row[3] else "") + f"  {row[4]}")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m analysis bench`); figures from one run on the machine below.",
        "",
        f"- date: {dt.date.today().isoformat()}; commit {_commit()}; study `{study.name}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        "",
        "| benchmark | measure | value | unit | target | note |",
        "|---|---|---|---|---|---|",
        *(f"| {b} | {m} | {v:.3g} | {u} | {t} | {n} |" for b, m, v, u, t, n in rows),
        "",
    ]
    with atomic_write(RESULTS, encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    echo(f"wrote {relative(RESULTS)}")
    return RESULTS
