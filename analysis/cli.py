"""`python -m analysis`: the commands the Makefile and users call.

Exit status: 0 on success; 1 when a notebook or check failed; 2 when the input needs fixing (a
`StudyError`). On failure the first line on stderr is the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.config import list_studies, load_study, study_path
from analysis.errors import StudyError
from analysis.paths import exclusive, relative

COMMANDS = {}


def writing(study):
    """The study's lock, held while a command writes its outputs: a second command on the study waits."""
    return exclusive(study.output_dir, f"study '{study.name}'")


def command(name: str, help: str):
    """Register a sub-command: the decorated function adds its arguments and returns its handler."""
    def register(configure):
        COMMANDS[name] = (help, configure)
        return configure
    return register


@command("run", "run a study's notebooks (only those out of date), then merge its ledger")
def _run(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME", help="run only these (and what they need)")
    parser.add_argument("--force", action="store_true", help="rerun every notebook, up to date or not")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default: 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: 600)")
    parser.add_argument("--accept-new-data", action="store_true",
                        help="accept raw files that changed since the manifest was written (default: stop)")

    def handle(args) -> int:
        from analysis import ledger
        from analysis.data import check_raw_data
        from analysis.run import run_study

        study = load_study(args.study)
        with writing(study):
            for path in check_raw_data(study, accept_new_data=args.accept_new_data):
                print(f"accepted the changed raw file {path}")
            report = run_study(study, args.notebooks, force=args.force, jobs=args.jobs, timeout=args.timeout)
            for outcome in report.failed:
                print(f"error: {outcome.error}", file=sys.stderr)
                print(outcome.detail, file=sys.stderr)
            if report.failed:
                return 1
            path = ledger.merge(study)
        ran, current = len(report.ran), len(report.current)
        print(f"done in {report.seconds:.1f} s: {ran} ran, {current} up to date; ledger {relative(path)}")
        return 0

    return handle


@command("list", "list the studies and the notebooks each runs")
def _list(parser: argparse.ArgumentParser):
    def handle(args) -> int:
        from analysis.run.pipeline import load_pipeline

        print("studies (studies/*.yml):")
        broken = {}
        for name in list_studies():
            try:
                study = load_study(name)
            except StudyError as error:  # one broken study file does not hide the others
                broken[relative(study_path(name))] = str(error)
                print(f"  {name:<16} cannot be read: {_first_problem(str(error))}")
                continue
            tag = " [synthetic data]" if study.synthetic else ""
            print(f"  {name:<16} {study.title}{tag}")
        print("notebooks (notebooks/pipeline.yml), in order:")
        for step in load_pipeline():
            needs = f" (needs {', '.join(step.needs)})" if step.needs else ""
            print(f"  {step.name:<16} {step.description}{needs}")
        if broken:
            count = len(broken)
            print(f"error: {count} study file{'s' * (count != 1)} cannot be read: {', '.join(broken)}", file=sys.stderr)
            print("\n".join(broken.values()), file=sys.stderr)
            return 2
        return 0

    return handle


def _first_problem(message: str) -> str:
    """A StudyError's first line, with its first listed problem when it lists several."""
    lines = message.splitlines()
    listed = [line.strip().removeprefix("- ") for line in lines[1:] if line.startswith("  - ")]
    return f"{lines[0]}; first: {listed[0]}" if listed else lines[0]


@command("kernel", "register this environment's Jupyter kernel (papermill, nbval and JupyterLab use it)")
def _kernel(parser: argparse.ArgumentParser):
    def handle(args) -> int:
        from analysis.run.kernel import ensure_kernel

        print(f"kernel '{ensure_kernel()}' runs {sys.executable}")
        return 0

    return handle


@command("environment", "check that environment.yml installs exactly what requirements.lock pins")
def _environment(parser: argparse.ArgumentParser):
    parser.add_argument("--write", action="store_true", help="rewrite environment.yml from the lock file")

    def handle(args) -> int:
        from analysis import environment
        from analysis.paths import atomic_write

        if args.write:
            with atomic_write(environment.ENVIRONMENT, encoding="utf-8") as handle:
                handle.write(environment.render(environment.lock_pins()))
            print(f"wrote {relative(environment.ENVIRONMENT)}")
            return 0
        problems = environment.drift()
        if problems:
            count = len(problems)
            print(f"error: environment.yml and requirements.lock differ ({count}); run make lock", file=sys.stderr)
            print("\n".join(problems), file=sys.stderr)
            return 1
        print("environment.yml matches requirements.lock")
        return 0

    return handle


@command("clean", "remove what the pipeline generated for a study (never data_raw/ or the notebooks' sources)")
def _clean(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="*", help="studies to clean (default: all)")

    def handle(args) -> int:
        from analysis.run.clean import clean

        for name in args.study or list_studies():
            study = load_study(name)
            with writing(study):
                cleaned = clean(study)
            for path in cleaned.removed:
                print(f"removed {path}")
            for path in cleaned.left:
                print(f"left {path} (not written by the pipeline)")
        return 0

    return handle


@command("bench", "measure the runner (cold and no-op runs, overhead per notebook); write tests/benchmarks/RESULTS.md")
def _bench(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")

    def handle(args) -> int:
        from analysis.bench import run_benchmarks

        run_benchmarks(args.study, args.only)
        return 0

    return handle


@command("verify", "rebuild a study from raw data in a fresh folder and compare with what is committed")
def _verify(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--against", metavar="STUDY", help="compare with this study's committed outputs instead")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="rebuild into DIR and keep it (default: temporary)")

    def handle(args) -> int:
        from analysis import verify

        study = load_study(args.study)
        committed = load_study(args.against) if args.against else study
        result = verify.verify(study, committed, keep=args.keep)
        report, _ = verify.write_report(result, verify.report_folder(committed))
        line = verify.summary_line(result, report)
        print(line, file=sys.stdout if result.passed else sys.stderr)
        return 0 if result.passed else 1

    return handle


@command("data", "validate a study's raw data, derive its analysis tables, write them with the manifest")
def _data(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--accept-new-data", action="store_true",
                        help="accept raw files that changed since the manifest was written")

    def handle(args) -> int:
        from analysis.data import prepare
        from analysis.data.manifest import derived_dir, manifest_path

        study = load_study(args.study)
        with writing(study):
            prepared = prepare(study, accept_new_data=args.accept_new_data)
        flow = prepared.flow.set_index(["stage", "period"])["n"]
        tag = " [synthetic data]" if study.synthetic else ""
        others = "".join(f"; {len(frame)} {study.unit(name)}" for name, frame in prepared.tables.items()
                         if name != study.main_table)
        print(f"{study.name}{tag}: {flow['screened', 'all']} screened, included {flow['included', 'before']} before "
              f"and {flow['included', 'after']} after{others}")
        print(f"derived tables in {relative(derived_dir(study))}/, manifest {relative(manifest_path(study))}")
        return 0

    return handle


@command("synthesize", "regenerate the synthetic example datasets (developers), or write a large one")
def _synthesize(parser: argparse.ArgumentParser):
    from pathlib import Path

    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and fail if the committed files differ")
    parser.add_argument("--patients", type=int, metavar="N", help="instead, write a benchmark dataset of N patients")
    parser.add_argument("--teams", type=int, default=200, help="with --patients: medical teams (default: 200)")
    parser.add_argument("--sites", type=int, default=1, help="with --patients: sites the teams are nested in")
    parser.add_argument("--seed", type=int, help="with --patients: the generator's seed (default: the reference's)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="with --patients: the folder to write to")

    def handle(args) -> int:
        import time

        from analysis.analyses import calibration
        from analysis.data import synthetic, synthetic_small

        # each: DATASETS, write_dataset, check_dataset; the reference study's twin is also calibrated to
        # the paper's adjusted results, which needs the study's models (analysis.analyses.calibration)
        generators = (calibration, synthetic, synthetic_small)
        if args.patients is not None:
            if args.out is None:
                raise StudyError("--patients needs --out DIR: benchmark data are not written into data_raw/")
            started = time.perf_counter()
            seed = synthetic.REFERENCE.parameters.seed if args.seed is None else args.seed
            paths = synthetic.write_scaled(args.out, args.patients, args.teams, args.sites, seed)
            print(f"wrote {', '.join(relative(p) for p in paths)} in {time.perf_counter() - started:.1f} s")
            return 0
        if args.check:
            differing = [path for module in generators for dataset in module.DATASETS.values()
                         for path in module.check_dataset(dataset)]
            if differing:
                print(f"error: regenerating gives other bytes than the committed {', '.join(differing)}; run "
                      f"`python -m analysis synthesize` and review the change", file=sys.stderr)
                return 1
            names = [name for module in generators for name in module.DATASETS]
            print(f"synthetic datasets reproduce byte for byte: {', '.join(names)}")
            return 0
        for module in generators:
            for dataset in module.DATASETS.values():
                print(f"{dataset.name}: wrote {', '.join(relative(p) for p in module.write_dataset(dataset))}")
        return 0

    return handle


@command("dictionary", "render the data dictionary as data_raw/DICTIONARY.md (developers)")
def _dictionary(parser: argparse.ArgumentParser):
    parser.add_argument("--check", action="store_true", help="fail if DICTIONARY.md is not the current rendering")

    def handle(args) -> int:
        from analysis.data import dictionary

        where = relative(dictionary.MARKDOWN)
        if args.check:
            if dictionary.markdown_is_current():
                print(f"{where} is up to date")
                return 0
            print(f"error: {where} is stale; run `python -m analysis dictionary`", file=sys.stderr)
            return 1
        print(f"{'wrote' if dictionary.write_markdown() else 'unchanged:'} {where}")
        return 0

    return handle


@command("paper", "build the manuscript (HTML, DOCX; PDF with LaTeX) and SQUIRE checklist from the ledger")
def _paper(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--force", action="store_true", help="rebuild even if nothing it depends on changed")

    def handle(args) -> int:
        from analysis import paper

        study = load_study(args.study)
        with writing(study):
            paper.build(study, force=args.force)
        return 0

    return handle


def power_table(spec):
    """The `power:` grid of a study file as one table: the power of each design size, and the clusters
    needed for the target power (for a stepped wedge, the fewest clusters, at most 1000, that reach it)."""
    import pandas as pd

    from analysis.stats import power

    icc = power.icc_from_cluster_sd(spec.cluster_sd) if spec.cluster_sd is not None else (spec.icc or 0.0)
    rows = []
    for effect in spec.effects:
        p1, p2 = spec.baseline, power.p_after(spec.baseline, effect, spec.effect_scale)
        for m in spec.cluster_size:
            base = dict(effect=effect, effect_scale=spec.effect_scale, p_before=p1, p_after=p2, cluster_size=m,
                        icc=icc, alpha=spec.alpha)
            if spec.steps is None:
                for k in [*spec.clusters, None]:
                    got = power.cluster_power(p1, p2, clusters=k or 1, cluster_size=m, icc=icc, cv=spec.cluster_cv,
                                              alpha=spec.alpha, power=spec.target).iloc[0 if k else 1]
                    rows.append(dict(design="before_after", **base, design_effect=got["design_effect"],
                                     clusters=int(got["clusters"]), patients=int(got["n"]),
                                     quantity="power" if k else f"clusters for power {spec.target:g}",
                                     value=got["estimate"]))
                continue
            def sw(k, p1=p1, p2=p2, m=m):
                return power.stepped_wedge_power(p1, p2, clusters=k, steps=spec.steps, cluster_size=m, icc=icc,
                                                 alpha=spec.alpha).iloc[0]

            for k in spec.clusters:
                got = sw(k)
                rows.append(dict(design=f"stepped_wedge ({spec.steps} steps)", **base, design_effect=float("nan"),
                                 clusters=k, patients=int(got["n"]), quantity="power", value=got["estimate"]))
            need = next((k for k in range(spec.steps, 1001) if sw(k)["estimate"] >= spec.target), None)
            rows.append(dict(design=f"stepped_wedge ({spec.steps} steps)", **base, design_effect=float("nan"),
                             clusters=need, patients=None if need is None else int(sw(need)["n"]),
                             quantity=f"clusters for power {spec.target:g}",
                             value=float("nan") if need is None else need))
    out = pd.DataFrame(rows)
    out["clusters"] = out["clusters"].astype("Int64")
    out["patients"] = out["patients"].astype("Int64")
    return out


@command("power", "plan the next study: power and sizes over the study file's `power:` grid")
def _power(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")

    def handle(args) -> int:
        from analysis import tables

        study = load_study(args.study)
        if study.power is None:
            raise StudyError(f"{relative(study.file)}: no `power:` section (see studies/README.md)")
        table = power_table(study.power)
        with writing(study):
            path = tables.export(study, "power", table)
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        print(f"wrote {relative(path)}")
        return 0

    return handle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, configure) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handle=configure(sub))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handle(args)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
