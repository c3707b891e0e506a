"""Execute one notebook with papermill and write it, normalised, where the study keeps it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import nbformat
import papermill
from jupyter_client.kernelspec import NoSuchKernel
from papermill.exceptions import PapermillExecutionError

from analysis.config import Study
from analysis.paths import ROOT, atomic_write, relative
from analysis.run.kernel import available_kernels
from analysis.run.normalise import normalise
from analysis.run.pipeline import Step

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Outcome:
    step: Step
    seconds: float
    error: str | None = None  # one line: where and what
    detail: str = ""  # the failing cell's source and traceback


def execute(study: Study, step: Step, parameters: dict, kernel: str, timeout: int) -> Outcome:
    """Run the notebook; on success or failure, leave the executed notebook at its output path."""
    target = study.notebook_dir / step.source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.stem}.running.ipynb")
    started = time.perf_counter()
    error, detail = None, ""
    try:
        papermill.execute_notebook(
            str(step.source),
            str(scratch),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(ROOT),
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as failure:
        error = f"{step.name} failed in cell In [{failure.exec_count}]: {failure.ename}: {failure.evalue}"
        traceback = _ANSI.sub("", "\n".join(failure.traceback)).replace(str(ROOT), ".")
        detail = f"--- cell In [{failure.exec_count}] ---\n{failure.source}\n--- traceback ---\n{traceback}"
    except NoSuchKernel:
        error = f"{step.name} did not start: no kernel named '{kernel}'; kernels available: {available_kernels()}"
    except Exception as failure:  # kernel death, cell timeout: papermill wraps neither
        error = f"{step.name} did not complete: {type(failure).__name__}: {_first_line(failure)}"
    seconds = time.perf_counter() - started
    if scratch.is_file():
        nb = nbformat.read(scratch, as_version=4)
        normalise(nb, relative(step.source), relative(target))
        with atomic_write(target, encoding="utf-8") as handle:
            nbformat.write(nb, handle)
        scratch.unlink()
        if error:
            detail += f"\nthe executed notebook, with its error, is at {relative(target)}"
    return Outcome(step, seconds, error, detail)


def _first_line(error: Exception) -> str:
    text = _ANSI.sub("", str(error)).strip()
    return text.splitlines()[0] if text else "(no message)"
