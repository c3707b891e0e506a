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


def run_one_study(name: str, notebooks: list[str] | None = None, *, force: bool = False, jobs: int = 2,
                  timeout: int = 600, accept_new_data: bool = False, echo=print) -> tuple[int, list[str]]:
    """Run one study's notebooks under its lock and merge its ledger: (exit status, error lines).
    A StudyError is raised, not returned."""
    from analysis import ledger
    from analysis.data import check_raw_data
    from analysis.run import run_study

    study = load_study(name)
    with writing(study):
        for path in check_raw_data(study, accept_new_data=accept_new_data):
            echo(f"accepted the changed raw file {path}")
        report = run_study(study, notebooks, force=force, jobs=jobs, timeout=timeout, echo=echo)
        errors = [line for outcome in report.failed for line in (f"error: {outcome.error}", outcome.detail)]
        if report.failed:
            return 1, errors
        path = ledger.merge(study)
    ran, current = len(report.ran), len(report.current)
    echo(f"done in {report.seconds:.1f} s: {ran} ran, {current} up to date; ledger {relative(path)}")
    return 0, []


def _run_study_task(task: tuple[str, dict]) -> tuple[str, int, list[str], list[str]]:
    """One study of `run --all`, on an executor's worker: (name, exit status, what it printed, errors)."""
    name, options = task
    printed: list[str] = []
    try:
        status, errors = run_one_study(name, echo=printed.append, **options)
    except StudyError as error:
        status, errors = 2, [f"error: {error}"]
    return name, status, printed, errors


@command("run", "run a study's notebooks (only those out of date), then merge its ledger; --all: every study")
def _run(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", help="study name or file (default: reference)")
    parser.add_argument("--all", action="store_true",
                        help="every study in studies/, one task per study on the Dask executor (see --scheduler)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME", help="run only these (and what they need)")
    parser.add_argument("--force", action="store_true", help="rerun every notebook, up to date or not")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at once, per study (default: 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: 600)")
    parser.add_argument("--accept-new-data", action="store_true",
                        help="accept raw files that changed since the manifest was written (default: stop)")
    _executor_arguments(parser, "with --all: ")

    def handle(args) -> int:
        options = dict(notebooks=args.notebooks, force=args.force, jobs=args.jobs, timeout=args.timeout,
                       accept_new_data=args.accept_new_data)
        if not args.all:
            if args.scheduler or args.workers:
                raise StudyError("--scheduler and --workers go with --all (one study runs on this machine)")
            status, errors = run_one_study(args.study or "reference", **options)
            for line in errors:
                print(line, file=sys.stderr)
            return status
        if args.study:
            raise StudyError(f"give a study ({args.study}) or --all, not both")
        from analysis.run.executor import executor

        names = list_studies()
        with executor(args.scheduler, args.workers) as run:
            results = run.map(_run_study_task, [(name, options) for name in names], batch=1, description="studies")
        for name, _, printed, errors in results:
            for line in printed:
                print(f"{name}: {line}")
            for line in errors:
                print(f"{name}: {line}", file=sys.stderr)
        failed = [name for name, status, _, _ in results if status]
        print(f"{len(names) - len(failed)} of {len(names)} studies done" + (f"; failed: {', '.join(failed)}"
                                                                             if failed else ""))
        return max((status for _, status, _, _ in results), default=0)

    return handle


def _executor_arguments(parser: argparse.ArgumentParser, prefix: str) -> None:
    """--scheduler and --workers, the Dask executor's options (analysis/run/executor.py)."""
    from analysis.run.executor import ENVIRONMENT

    parser.add_argument("--scheduler", metavar="ADDR",
                        help=f"{prefix}an existing Dask scheduler, e.g. tcp://host:8786 (default: ${ENVIRONMENT}, "
                             "else a local cluster started and stopped here)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help=f"{prefix}worker processes of the local cluster (default: the machine's cores)")


@command("sweep", "rerun a study's notebooks for each value of one study-file key, each in its own folder, on the "
                  "Dask executor, and gather their ledgers into one table")
def _sweep(parser: argparse.ArgumentParser):
    parser.add_argument("study", help="study name or file")
    parser.add_argument("key", help="the study-file key to vary, dotted: seeds.models, covariates, "
                                    "outcomes.<name>.<key>...")
    parser.add_argument("values", nargs="+", help="its values, each read as YAML: 1 2 3, or '[age]' '[age, sex]'")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME", help="run only these (and what they need)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once, per value (default: 1)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: 600)")
    _executor_arguments(parser, "")

    def handle(args) -> int:
        from analysis.run import sweep
        from analysis.run.executor import executor

        study = load_study(args.study)
        variants = sweep.variants(study, args.key, args.values)
        options = dict(notebooks=args.notebooks, jobs=args.jobs, timeout=args.timeout)
        with executor(args.scheduler, args.workers) as run:
            results = run.map(_run_study_task, [(str(v.file), options) for v in variants], batch=1,
                              description="sweep values")
        for variant, (_, _, printed, errors) in zip(variants, results, strict=True):
            for line in printed:
                print(f"{variant.label}: {line}")
            for line in errors:
                print(f"{variant.label}: {line}", file=sys.stderr)
        failed = [v.label for v, (_, status, _, _) in zip(variants, results, strict=True) if status]
        if failed:
            print(f"error: {len(failed)} of {len(variants)} values failed ({', '.join(failed)}); nothing gathered",
                  file=sys.stderr)
            return max(status for _, status, _, _ in results)
        table, path = sweep.gather(study, args.key, variants)
        moved = sweep.moved(table)
        print(f"{table['name'].nunique()} ledger names over {len(variants)} values of {args.key}, {len(moved)} of them "
              f"not the same for every value" + (f" (first: {', '.join(moved[:5])})" if moved else "")
              + f"; gathered in {relative(path)}")
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


@command("release", "write what may leave a trusted research environment: the safe outputs, checksums, the "
                    "study file, package versions and an SDC report for the output checker")
def _release(parser: argparse.ArgumentParser):
    parser.add_argument("study", help="study name or file")

    def handle(args) -> int:
        from analysis import release

        study = load_study(args.study)
        with writing(study):
            folder = release.release(study)
        print(f"release written: {relative(folder)} (read sdc_report.md first)")
        return 0

    return handle


@command("power", "plan the next study: power and sizes over the study file's `power:` grid, by formula and, "
                  "with --simulate, by simulation on a Dask executor; printed (notebook 08_power records them)")
def _power(parser: argparse.ArgumentParser):
    parser.add_argument("study", nargs="?", default="reference", help="study name or file (default: reference)")
    parser.add_argument("--simulate", action="store_true",
                        help="also simulate every grid point (`power.simulations` datasets each) and fit the planned "
                             "analysis to each: power with its Monte Carlo CI, type I error, failed and singular fits")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="also write the tables (power.csv, power_simulated.csv) and the power-curve figure to "
                             "DIR, a folder outside the study's outputs (those and the ledger are notebook 08_power's)")
    _executor_arguments(parser, "with --simulate: ")

    def handle(args) -> int:
        from analysis.analyses import planning

        study = load_study(args.study)
        if study.power is None:
            raise StudyError(f"{relative(study.file)}: no `power:` section (see studies/README.md)")
        if not args.simulate and (args.scheduler or args.workers):
            raise StudyError("--scheduler and --workers go with --simulate")
        if args.out is not None and _inside(args.out, study.output_dir):
            raise StudyError(f"--out {args.out}: the study's output folder {relative(study.output_dir)} is the "
                             f"pipeline's (`python -m analysis run {study.name}` writes the power outputs there): "
                             "give a folder outside it")
        design = planning.simulated_design(study)
        table = planning.analytic_table(study)
        if table is None and not args.simulate:
            raise StudyError(f"{relative(study.file)}: there is no closed-form power for a {design.replace('_', ' ')} "
                             "design here: add --simulate")
        if args.simulate:
            planning.scenarios(study)  # a grid that cannot be simulated is refused before a cluster starts
        simulated = _simulate_power(study, args) if args.simulate else None
        if table is not None:
            print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        if simulated is not None:
            shown = ["design", "term", "effect_label", "cluster_size", "clusters", "months", "estimate", "conf_low",
                     "conf_high", "analytic", "failed", "singular"]
            print(simulated[[c for c in shown if c in simulated and simulated[c].notna().any()]]
                  .to_string(index=False, float_format=lambda x: f"{x:.3f}"))
            print(planning.sizes_for_target(simulated, study.power.target).to_string(index=False))
        if args.out is not None:
            written = _write_power(study, args.out, table, simulated)
            print("wrote " + ", ".join(relative(p) for p in written))
        return 0

    return handle


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _simulate_power(study, args):
    from analysis.analyses import planning
    from analysis.run.executor import executor
    from analysis.stats.simulate import CHUNK

    with executor(args.scheduler, args.workers) as run:
        return planning.simulated_table(study, map=lambda function, tasks: run.map(
            function, tasks, description=f"simulation tasks ({CHUNK} datasets each)"))


def _write_power(study, folder: Path, table, simulated) -> list[Path]:
    """`power --out DIR`: the tables as CSV and the power-curve figure, as notebook 08_power writes them into the
    study's outputs, but no ledger (the numbers a manuscript cites are the notebook's)."""
    from analysis import figures
    from analysis.analyses import planning
    from analysis.paths import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("power", table), ("power_simulated", simulated)):
        if frame is not None:
            with atomic_write(folder / f"{name}.csv", encoding="utf-8", newline="") as handle:
                frame.to_csv(handle, index=False)
            written.append(folder / f"{name}.csv")
    if simulated is not None:
        curve = figures.power_curve(planning.curve_frame(simulated), xlabel=planning.size_label(simulated))
        provenance = {"command": "python -m analysis power --simulate", "study": study.name,
                      "parameters_sha256": study.parameters_sha256(), "simulations": study.power.simulations,
                      "seed": study.power.seed}
        written += figures.save(curve, folder, "power_curve", provenance)
    return written


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
