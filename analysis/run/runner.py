"""Run a study's notebooks: in dependency order, only those out of date, two at a time."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis import disclosure
from analysis.config import Study
from analysis.paths import relative
from analysis.provenance import code_digest
from analysis.run.cache import RunState, compute_key
from analysis.run.kernel import ensure_kernel
from analysis.run.pipeline import PIPELINE_FILE, Step, for_study, load_pipeline, select

if TYPE_CHECKING:
    from analysis.run.execute import Outcome


def parameters_for(study: Study) -> dict:
    """The values injected into every notebook's `parameters` cell: which study to run.

    Everything else a notebook needs (periods, covariates, seeds) it reads from the study file,
    whose hash is part of every notebook's cache key.
    """
    return {"study": relative(study.file)}


@dataclass
class Report:
    ran: list[Outcome] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not run because a notebook they need failed
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.ran if o.error]


def run_study(
    study: Study,
    notebooks: list[str] | None = None,
    *,
    force: bool = False,
    jobs: int = 2,
    timeout: int = 600,
    pipeline: Path | None = None,
    echo=print,
) -> Report:
    """Execute the study's notebooks that are out of date (all of them with `force`).

    A notebook starts once every notebook it needs has finished; up to `jobs` run at once. A failure
    stops the notebooks that need the failed one, not the others. A notebook whose `when:` the study file
    does not declare is left out. `pipeline`: the pipeline file, `PIPELINE_FILE` as it is when called.
    """
    from analysis.data.manifest import remove_leftovers  # pandas and pyarrow: not for `python -m analysis list`

    started = time.perf_counter()
    steps = for_study(select(load_pipeline(pipeline or PIPELINE_FILE), notebooks), study, notebooks)
    if disclosure.profile(study) is not None:
        # one at a time, in the pipeline's order: a table exported by one notebook hides the rows of an outcome
        # whose counts another notebook's ledger hid (disclosure.hidden_entries), so those must have run first
        jobs = 1
    kernel = ensure_kernel()
    # a data step killed between its renames left patient-level copies; its notebook may now be up to date
    remove_leftovers(study)
    state = RunState(study)
    parameters = parameters_for(study)
    code = code_digest()
    report = Report()
    total = len(steps)
    echo(f"{study.name}: {total} notebook{'s' * (total != 1)}, up to {jobs} at a time")

    pending = list(steps)  # dependency order: a step's needs come before it
    finished: set[str] = set()
    broken: set[str] = set()  # failed, or skipped because something they need failed
    running: dict[Future, tuple[Step, str]] = {}
    position = 0

    def progress(step: Step, text: str) -> None:
        nonlocal position
        position += 1
        echo(f"[{position}/{total}] {step.name:<14} {text}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while pending or running:
            for step in list(pending):
                if broken & set(step.needs):
                    pending.remove(step)
                    broken.add(step.name)
                    report.skipped.append(step.name)
                    progress(step, "skipped: a notebook it needs failed")
                elif set(step.needs) <= finished and len(running) < jobs:
                    pending.remove(step)
                    key = compute_key(study, step, parameters, [s for s in steps if s.name in step.needs], code)
                    if not force and state.is_current(step, key):
                        finished.add(step.name)
                        report.current.append(step.name)
                        progress(step, "up to date")
                    else:
                        from analysis.run.execute import execute  # imports papermill: only when a notebook runs

                        running[pool.submit(execute, study, step, parameters, kernel, timeout)] = (step, key)
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                step, key = running.pop(future)
                outcome = future.result()
                report.ran.append(outcome)
                if outcome.error:
                    broken.add(step.name)
                    state.forget(step)
                    progress(step, f"FAILED after {outcome.seconds:.1f} s")
                else:
                    finished.add(step.name)
                    state.record(step, key)
                    progress(step, f"ran in {outcome.seconds:.1f} s")
    if not study.synthetic and steps:
        report.ran += _row_level(study, steps[-1])
    report.seconds = time.perf_counter() - started
    return report


def _row_level(study: Study, last: Step) -> list[Outcome]:
    """Real data: the run fails when any output (notebook, table, figure, report) holds a patient identifier or
    a row-level date, checked every run (a notebook that is up to date may hold one too); never the values."""
    from analysis.release import find_row_level, output_files
    from analysis.run.execute import Outcome

    findings, _ = find_row_level(study, output_files(study))
    if not findings:
        return []
    return [Outcome(last, 0.0, f"{len(findings)} output(s) of a non-synthetic study hold row-level data "
                               "(identifiers or dates); remove what prints them and rerun",
                    "\n".join(f.sentence() for f in findings))]
