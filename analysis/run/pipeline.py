"""The notebooks of a study and the order they depend on each other (`notebooks/pipeline.yml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import ROOT, relative

PIPELINE_FILE = ROOT / "notebooks" / "pipeline.yml"

# what a step's `when:` may name: a notebook that runs only for the studies whose file declares it
WHEN = {"power": (lambda study: study.power is not None, "a `power:` section")}


@dataclass(frozen=True)
class Step:
    """One notebook: what it needs to have run first and which files it writes.

    `outputs` are glob patterns relative to the study's output folder. A notebook's inputs are the
    outputs of the notebooks it needs (plus, for every notebook, the study file and raw data). `when`
    names what the study file must declare for the notebook to run (`WHEN`); None: every study.
    `elsewhere` holds the other steps' output patterns: a file that one of them names more precisely is
    theirs (07_figures' `figures/*` against 08_power's `figures/power_curve.*`), `analysis.run.cache`.
    """

    name: str
    source: Path
    needs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str
    when: str | None = None
    elsewhere: tuple[str, ...] = ()

    def applies_to(self, study: Study) -> bool:
        return self.when is None or WHEN[self.when][0](study)


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
            spec.get("when"),
            tuple(pattern for other, its in raw.items() if other != name for pattern in its.get("outputs", [])),
        )
        for name, spec in raw.items()
    }
    for step in steps.values():
        if not step.source.is_file():
            raise StudyError(f"{relative(path)}: notebook '{step.name}' has no file {relative(step.source)}")
        if step.when is not None and step.when not in WHEN:
            raise StudyError(f"{relative(path)}: '{step.name}' has `when: {step.when}`; known: {', '.join(WHEN)}")
        for need in step.needs:
            if need not in steps:
                raise StudyError(f"{relative(path)}: '{step.name}' needs unknown notebook '{need}'")
            if steps[need].when not in (None, step.when):
                # it would run for studies whose file lacks what the notebook it needs runs on
                raise StudyError(f"{relative(path)}: '{step.name}' needs '{need}', which runs only `when: "
                                 f"{steps[need].when}`: give '{step.name}' the same `when`")
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


def for_study(steps: list[Step], study: Study, names: list[str] | None = None) -> list[Step]:
    """The steps that run for this study (their `when` holds); a notebook named on the command line that
    does not is an error saying what the study file lacks."""
    for step in steps:
        if names and step.name in names and not step.applies_to(study):
            raise StudyError(f"notebook {step.name} runs only for a study whose file has {WHEN[step.when][1]}, "
                             f"and {relative(study.file)} has none")
    return [step for step in steps if step.applies_to(study)]
