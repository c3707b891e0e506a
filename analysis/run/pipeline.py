"""The notebooks of a study and the order they depend on each other (`notebooks/pipeline.yml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from analysis.errors import StudyError
from analysis.paths import ROOT, relative

PIPELINE_FILE = ROOT / "notebooks" / "pipeline.yml"


@dataclass(frozen=True)
class Step:
    """One notebook: what it needs to have run first and which files it writes.

    `outputs` are glob patterns relative to the study's output folder. A notebook's inputs are the
    outputs of the notebooks it needs (plus, for every notebook, the study file and raw data).
    """

    name: str
    source: Path
    needs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str


def load_pipeline(path: Path = PIPELINE_FILE) -> list[Step]:
    """The steps in dependency order (a topological sort that keeps the file's order among equals)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    steps = {
        name: Step(
            name,
            path.parent / f"{name}.ipynb",
            tuple(spec.get("needs", [])),
            tuple(spec.get("outputs", [])),
            spec.get("description", ""),
        )
        for name, spec in raw.items()
    }
    for step in steps.values():
        if not step.source.is_file():
            raise StudyError(f"{relative(path)}: notebook '{step.name}' has no file {relative(step.source)}")
        for need in step.needs:
            if need not in steps:
                raise StudyError(f"{relative(path)}: '{step.name}' needs unknown notebook '{need}'")
    ordered: list[Step] = []
    done: set[str] = set()
    while len(ordered) < len(steps):
        ready = [s for s in steps.values() if s.name not in done and set(s.needs) <= done]
        if not ready:
            cycle = sorted(set(steps) - done)
            raise StudyError(f"{relative(path)}: notebooks {cycle} need each other in a cycle")
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered


def select(steps: list[Step], names: list[str] | None) -> list[Step]:
    """The steps named (and, so that their inputs exist, every step they need), in order."""
    if not names:
        return steps
    by_name = {s.name: s for s in steps}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise StudyError(f"unknown notebook(s) {', '.join(unknown)}; notebooks: {', '.join(by_name)}")
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].needs)
    return [s for s in steps if s.name in wanted]
