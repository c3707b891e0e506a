"""`make bench`: speed and memory, measured, printed and written to tests/benchmarks/RESULTS.md.

Benchmarks, not timed tests: they report figures against targets and never fail the test suite.
Each benchmark is a function registered with `@benchmark`, returning rows of
(measure, value, unit, target, note).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from analysis.config import Study, load_study
from analysis.paths import ROOT, atomic_write, relative
from analysis.run.pipeline import for_study, load_pipeline
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
        for step in for_study(load_pipeline(), study):  # the notebooks that run for this study
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
DATA_STEP_REPEATS = 3  # the data step's time is the fastest of these, as for the fits (MIXED_REPEATS)
# Each step runs in a fresh interpreter so that its peak memory is its own. Its CPU time (all its threads,
# user and system) is recorded too: on a shared machine the wall time depends on the others' load.
_MEASURED = """
import json, resource, sys, time
started, cpu = time.perf_counter(), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
{body}
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": usage.ru_maxrss / 1024,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu}}))
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
             f"d = load({tmp + f'/scaled_{n}.yml'!r}).tables['patients']\n"
             f"d = d.assign(y=d.error_at_admission.astype(int))\n"
             f"stats.mixed_logistic(d, 'y ~ after + age + charlson + n_medicines', 'team')"),
        ]
        notes = ["", "", "for comparison (shared/DESIGN.md, same machine kind): glmer 158 s, statsmodels fit_map 33 s"]
        targets = ["", "< 5", ""]
        repeats = [1, DATA_STEP_REPEATS, 1]
        for (label, body), note, target, times in zip(steps, notes, targets, repeats, strict=True):
            # The files just written are on disk before the next step reads them, not written back by the kernel
            # while it reads them
            os.sync()
            runs = [_measure(body) for _ in range(times)]
            measured = min(runs, key=lambda run: run["seconds"])
            memory = f"peak memory {measured['peak_mb']:,.0f} MB, CPU {measured['cpu_seconds']:.1f} s"
            if times > 1:
                every = ", ".join(f"{run['seconds']:.2f}" for run in runs)
                memory = f"fastest of {times} (all: {every} s); {memory}"
            rows.append((label, measured["seconds"], "s", target, f"{memory}; {note}" if note else memory))
        # `mixed`'s model on patient-level parquet files, streamed and collapsed to binomial cells
        # (analysis.data.cells), then fitted on the cells; each file is written first, in its own interpreter.
        first = None
        for size in STREAM_ROWS:
            path = f"{tmp}/admissions_{size}.parquet"
            made = _measure(f"from analysis.bench import mixed_parquet; mixed_parquet({path!r}, {size})")
            measured = _measure(
                f"from analysis.data.cells import binomial_cells\nfrom analysis.stats import mixed_logistic\n"
                f"cells = binomial_cells({path!r}, 'error', ['after', 'age', 'charlson', 'n_medicines', 'team'])\n"
                f"mixed_logistic(cells, {MIXED_FORMULA.replace('error', 'events')!r}, 'team', trials='trials')")
            first = first or (size, measured["seconds"])
            growth = (f"; {measured['seconds'] / first[1]:.1f}x the time of {first[0]:,} rows for "
                      f"{size / first[0]:g}x the rows" if size != first[0] else "")
            memory_target = " (target < 4,096)" if size in STREAM_TARGETS else ""
            rows.append((f"{size:,} rows from parquet: stream, collapse to cells, fit (mixed logistic, 200 teams)",
                         measured["seconds"], "s", STREAM_TARGETS.get(size, ""),
                         f"peak memory {measured['peak_mb']:,.0f} MB{memory_target}{growth}; "
                         f"writing the file took {made['seconds']:.1f} s"))
    return rows


STREAM_ROWS = (100_000, 1_000_000, 20_000_000)
STREAM_TARGETS = {20_000_000: "< 60"}


# The mixed-effects engine (analysis.stats.laplace) against the targets, and against glmer when R
# with lme4 is installed: seeded random-intercept logistic data with 5 fixed effects (intercept, after,
# age in years, charlson, n_medicines) and 200 teams, patients in random order.
MIXED = {"sizes": (100_000, 1_000_000), "teams": 200, "seed": 20261130, "team_sd": 0.6}
MIXED_REPEATS = {100_000: 5, 1_000_000: 3}  # our fit's time is the fastest of these
MIXED_TARGETS = {100_000: "< 0.3", 1_000_000: "< 2"}
MIXED_FORMULA = "error ~ after + age + charlson + n_medicines"
# A power simulation's refits: this many datasets of the same shape, each fitted from lme4's start and
# from the previous fit (fit_laplace(..., start=previous))
POWER = {"rows": 2_000, "teams": 40, "fits": 50, "seed": 20261201}


def mixed_data(rows: int, teams: int = MIXED["teams"], seed: int = MIXED["seed"], sd: float = MIXED["team_sd"],
               part: int | None = None):
    """Random-intercept logistic data of the study's kind: ``rows`` patients in random order in ``teams``
    teams (team random intercept with SD ``sd`` on the log-odds scale), with after (0/1), age (years),
    charlson and n_medicines (counts) and a binary error; the same for the same arguments. ``part``
    numbers the parts of a file written in parts (`mixed_parquet`): the same teams, other patients."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, rows, teams] if part is None else [seed, teams])
    u_team = rng.normal(0, sd, teams)
    if part is not None:
        rng = np.random.default_rng([seed, teams, part])
    team = rng.integers(0, teams, rows)
    after = (rng.random(rows) < 0.5).astype(np.int64)
    age = rng.integers(25, 95, rows)
    charlson = rng.poisson(1.8, rows)
    n_medicines = 3 + rng.poisson(5, rows)
    eta = -0.9 - 1.2 * after + 0.015 * (age - 70) + 0.15 * charlson + 0.08 * (n_medicines - 8) + u_team[team]
    error = (rng.random(rows) < 1 / (1 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame(
        {"team": team, "after": after, "age": age, "charlson": charlson, "n_medicines": n_medicines, "error": error}
    )


def mixed_parquet(path, rows: int, part_rows: int = 1_000_000) -> None:
    """``rows`` patients of `mixed_data`'s model written to the parquet file ``path``, ``part_rows`` at a
    time (memory holds one part)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for part, start in enumerate(range(0, rows, part_rows)):
        table = pa.Table.from_pandas(mixed_data(min(part_rows, rows - start), part=part), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    if writer is not None:
        writer.close()


def mixed_arrays(d):
    """The outcome, the design (the intercept and the four covariates of ``MIXED_FORMULA``) and the team
    codes of ``mixed_data``, as ``fit_laplace`` takes them."""
    import numpy as np

    x = np.column_stack([np.ones(len(d)), d["after"], d["age"], d["charlson"], d["n_medicines"]]).astype(float)
    return d["error"].to_numpy(dtype=float), x, [d["team"].to_numpy()]


def _run_json(code: str) -> dict:
    """``code`` in a fresh interpreter (so that its peak memory is its own); the JSON of its last line."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


_FIT = """
import json, resource, time, tracemalloc
from analysis.bench import mixed_data, mixed_arrays
from analysis.stats.laplace import fit_laplace
d = mixed_data({rows})
if {csv!r}:
    d.to_csv({csv!r}, index=False)
y, x, codes = mixed_arrays(d)
seconds = []
for _ in range({repeats}):
    started = time.perf_counter()
    fit = fit_laplace(y, x, codes)
    seconds.append(time.perf_counter() - started)
tracemalloc.start()  # numpy's arrays are traced: the fit's own peak, above the data it is given
fit_laplace(y, x, codes)
fit_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({{
    "seconds": seconds, "fit_peak_mb": fit_peak / 2**20,
    "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "beta": fit.beta.tolist(), "se": (fit.cov_beta.diagonal() ** 0.5).tolist(), "theta": fit.theta.tolist(),
    "cells": fit.cells, "converged": fit.converged,
}}))
"""

_FORMULA_FIT = """
import json, time
from analysis.bench import mixed_data
from analysis.stats import mixed_logistic
d = mixed_data({rows}).assign(team=lambda f: "T" + f["team"].astype(str))
started = time.perf_counter()
mixed_logistic(d, {formula!r}, "team")
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""

_POWER = """
import json, time
import numpy as np
from analysis.bench import mixed_data, mixed_arrays
from analysis.stats.laplace import fit_laplace
cold, warm, previous = [], [], None
for k in range({fits}):
    y, x, codes = mixed_arrays(mixed_data({rows}, teams={teams}, seed={seed} + k))
    started = time.perf_counter()
    fit = fit_laplace(y, x, codes)
    cold.append(time.perf_counter() - started)
    if previous is not None:
        started = time.perf_counter()
        again = fit_laplace(y, x, codes, start=previous)
        warm.append(time.perf_counter() - started)
        assert np.allclose(again.beta, fit.beta, rtol=1e-5, atol=1e-7) and abs(again.theta[0] - fit.theta[0]) < 1e-5
    previous = fit
print(json.dumps({{"cold": cold, "warm": warm}}))
"""

# glmer with its defaults, as shared/DESIGN.md timed it; the data are read before the clock starts. Its
# peak memory is R's own count (gc's "max used", Mb), not the process's.
_GLMER = """
suppressMessages(library(lme4))
d <- read.csv("{csv}")
invisible(gc(reset = TRUE))
seconds <- system.time(fit <- glmer({formula} + (1 | team), data = d, family = binomial))[["elapsed"]]
memory <- sum(gc()[, 6])
cat(sprintf("%.15g", c(seconds, memory, fixef(fit), sqrt(diag(as.matrix(vcov(fit)))),
                      as.data.frame(VarCorr(fit))$sdcor)), "\\n")
"""


def _glmer_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode == 0


def _glmer(csv: Path) -> dict:
    done = subprocess.run(
        ["Rscript", "-e", _GLMER.format(csv=csv, formula=MIXED_FORMULA)], check=True, capture_output=True, text=True
    )
    numbers = [float(v) for v in done.stdout.split()]
    return {"seconds": numbers[0], "memory_mb": numbers[1], "beta": numbers[2:7], "se": numbers[7:12],
            "theta": numbers[12:13]}


def _largest_gap(ours: list[float], theirs: list[float]) -> float:
    return max(abs(a / b - 1) for a, b in zip(ours, theirs, strict=True))


@benchmark
def mixed(study: Study, echo) -> list[tuple]:
    """The mixed-effects logistic engine (Laplace, one grouping factor) at 100,000 and 1,000,000 rows, a
    power simulation's 2,000-row refits, and glmer on the same data when R with lme4 is installed."""
    rows = []
    glmer = _glmer_available()
    if not glmer:
        echo("  glmer not run: Rscript with lme4 is not installed (apt-get install r-base-core r-cran-lme4)")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in MIXED["sizes"]:
            csv = str(Path(tmp) / f"mixed_{size}.csv") if glmer else ""
            ours = _run_json(_FIT.format(rows=size, csv=csv, repeats=MIXED_REPEATS[size]))
            best = times[size] = min(ours["seconds"])
            shape = f"{size:,} rows, 5 fixed effects, {MIXED['teams']} teams"
            rows.append((f"fit_laplace, {shape}", best, "s", MIXED_TARGETS[size],
                         f"fastest of {MIXED_REPEATS[size]} (all: {', '.join(f'{s:.2f}' for s in ours['seconds'])} s); "
                         f"{ours['cells']:,} cells after collapsing; converged {ours['converged']}"))
            rows.append((f"fit_laplace peak memory, {shape}", ours["fit_peak_mb"], "MB", "",
                         f"numpy's arrays during the fit (tracemalloc); the whole process, data included: "
                         f"{ours['process_peak_mb']:,.0f} MB"))
            if glmer:
                echo(f"  glmer on {size:,} rows (one run)...")
                theirs = _glmer(Path(csv))
                note = (f"one run; glmer / ours = {theirs['seconds'] / best:.0f}x; largest relative difference "
                        f"from ours: estimates {_largest_gap(ours['beta'], theirs['beta']):.1e}, SEs "
                        f"{_largest_gap(ours['se'], theirs['se']):.1e}, SD "
                        f"{_largest_gap(ours['theta'], theirs['theta']):.1e} (glmer's defaults stop PIRLS "
                        f"before the mode); R's max memory used {theirs['memory_mb']:,.0f} MB")
                rows.append((f"glmer (lme4, defaults), {shape}", theirs["seconds"], "s", "", note))
                rows.append((f"glmer / fit_laplace, {shape}", theirs["seconds"] / best, "x",
                             "> 50" if size == max(MIXED["sizes"]) else "", ""))
            else:
                rows.append((f"glmer (lme4), {shape}", math.nan, "s", "", "not run: R with lme4 is not installed"))
        small, large = MIXED["sizes"]
        rows.append((f"fit_laplace time, {large:,} / {small:,} rows", times[large] / times[small], "x", "",
                     f"{large // small}x the rows"))
        formula = _run_json(_FORMULA_FIT.format(rows=large, formula=MIXED_FORMULA))
        rows.append((f"mixed_logistic from the formula, {large:,} rows", formula["seconds"], "s", "",
                     "one run: patsy's design, the checks of analysis.stats.design, then fit_laplace"))
    power = _run_json(_POWER.format(**POWER))
    for start, key in (("lme4's start", "cold"), ("start=previous fit", "warm")):
        seconds = power[key]
        rows.append((f"power-simulation refit, {POWER['rows']:,} rows, 5 fixed effects, {POWER['teams']} teams, "
                     f"{start}", statistics.median(seconds), "s", "< 0.02",
                     f"median of {len(seconds)} datasets; fastest {min(seconds) * 1e3:.1f} ms"))
    return rows


# Power by simulation on the Dask executor (issue 14): 1,000 datasets of 2,000 patients in 20 clusters (10 per
# period of 100 patients each), each fitted by the random-intercept logistic model.
SIMULATION = {"datasets": 1_000, "clusters": 10, "cluster_size": 100, "cluster_sd": 0.5, "seed": 20261130}


@benchmark
def power(study: Study, echo) -> list[tuple]:
    """Power simulation on the Dask executor: 1,000 mixed-logistic fits on 2 and 1 workers, and the
    executor's own cost per task."""
    from analysis.run.executor import executor, overhead
    from analysis.stats.simulate import Scenario, simulate_power

    s = SIMULATION
    scenario = Scenario("before_after", 0.3, math.log(0.7), clusters=s["clusters"], cluster_size=s["cluster_size"],
                        cluster_sd=s["cluster_sd"])
    shape = (f"{s['datasets']:,} datasets of {2 * s['clusters'] * s['cluster_size']:,} patients in "
             f"{2 * s['clusters']} clusters, mixed logistic")
    started = time.perf_counter()
    serial = simulate_power([scenario], s["datasets"], s["seed"])
    rows = [(f"{shape}, in this process (no executor)", time.perf_counter() - started, "s", "", "")]
    seconds, results = {}, {}
    for workers in (2, 1):
        started = time.perf_counter()
        with executor(workers=workers) as run:
            # the workers' first task imports numpy, scipy, statsmodels (a few seconds, once per worker): a
            # small simulation first, so that the speed-up compares warm workers
            simulate_power([scenario], 4 * workers * 25, s["seed"] + 1, map=lambda f, t, run=run: run.map(
                f, t, batch=1, progress=False))
            warm = time.perf_counter()
            results[workers] = simulate_power([scenario], s["datasets"], s["seed"],
                                              map=lambda f, t, run=run: run.map(f, t, progress=False))
            seconds[workers] = time.perf_counter() - warm
        rows.append((f"{shape}, {workers} worker{'s' * (workers > 1)}", time.perf_counter() - started, "s",
                     "< 60" if workers == 2 else "",
                     f"all of it: starting the local cluster, warming its workers, {s['datasets']:,} datasets, "
                     f"stopping; the {s['datasets']:,} datasets alone {seconds[workers]:.1f} s"))
    same = all(r.equals(serial) for r in results.values())
    rows.append(("speed-up from 1 to 2 workers", seconds[1] / seconds[2], "x", "",
                 f"the datasets alone, on warm workers; results identical on 1 and 2 workers and in this process: "
                 f"{same}"))
    with executor(workers=2) as run:
        cost = overhead(run)
    for key, label in (("per_task_unbatched", "one Dask task per task"), ("per_task_batched", "default batches")):
        rows.append((f"executor overhead per task, {label}", 1e3 * cost[key], "ms", "",
                     "2,000 empty tasks on 2 workers: scheduling, transfer and gathering"))
    return rows


def _commit() -> str:
    """The commit, and whether the work tree differs from it (the figures are then of uncommitted code)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    commit = head.stdout.strip() or "unknown"
    return f"{commit} with uncommitted changes" if status.stdout.strip() else commit


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


_ROW = re.compile(r"^\| (?P<benchmark>[a-z_]+) \| .* \|$")
_RUN = re.compile(r"^- `(?P<benchmark>[a-z_]+)`: (?P<run>.*)$")


def _kept(ran: set[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """From the RESULTS.md on disk, what each benchmark that did not run now said: its run line and its
    table rows (so that ``--only`` replaces the rows of the benchmarks it runs and keeps the others)."""
    runs: dict[str, str] = {}
    rows: dict[str, list[str]] = {}
    if not RESULTS.exists():
        return runs, rows
    old_run = None
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("- date: "):  # the format before a run line per benchmark
            old_run = line.removeprefix("- date: ").replace("; ", ", ") + "; load average not recorded"
        elif (match := _RUN.match(line)) and match["benchmark"] not in ran:
            runs[match["benchmark"]] = match["run"]
        elif (match := _ROW.match(line)) and match["benchmark"] not in ran | {"benchmark"}:
            rows.setdefault(match["benchmark"], []).append(line)
            if old_run:
                runs.setdefault(match["benchmark"], old_run)
    return runs, rows


def run_benchmarks(study_name: str = "reference", only: list[str] | None = None, echo=print) -> Path:
    """Run the benchmarks (those in ``only``, or all) and write RESULTS.md: their rows replace their old
    ones, the other benchmarks' rows are kept, each with the date, commit and load average of its run."""
    study = load_study(study_name)
    ran, runs, rows = set(), {}, []
    for function in BENCHMARKS:
        if only and function.__name__ not in only:
            continue
        echo(f"benchmark {function.__name__}: {function.__doc__.splitlines()[0]}")
        before = _load()
        for row in function(study, echo):
            rows.append((function.__name__, *row))
            echo(f"  {row[0]}: {row[1]:.3g} {row[2]}" + (f" (target {row[3]})" if row[3] else "") + f"  {row[4]}")
        ran.add(function.__name__)
        runs[function.__name__] = (
            f"{dt.date.today().isoformat()}, commit {_commit()}, study `{study.name}`; load average "
            f"{before} before, {_load()} after"
        )
    kept_runs, kept_rows = _kept(ran)
    every = {**kept_runs, **runs}
    order = [f.__name__ for f in BENCHMARKS] + sorted(set(every) - {f.__name__ for f in BENCHMARKS})
    table = []
    for name in order:
        table += kept_rows.get(name, [])
        table += [f"| {b} | {m} | {v:.3g} | {u} | {t} | {n} |" for b, m, v, u, t, n in rows if b == name]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m analysis bench`; `--only NAME ...` reruns those benchmarks and keeps",
        "the other benchmarks' rows). Each benchmark's line says when it ran, at which commit, and the load",
        "average around it: the machine is shared, and other work running at the same time slows every figure.",
        "Times are of one run unless the note says otherwise.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        *(f"- `{name}`: {every[name]}" for name in order if name in every),
        "",
        "| benchmark | measure | value | unit | target | note |",
        "|---|---|---|---|---|---|",
        *table,
        "",
    ]
    with atomic_write(RESULTS, encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    echo(f"wrote {relative(RESULTS)}")
    return RESULTS
