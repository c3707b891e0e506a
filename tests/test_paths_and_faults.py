"""Integrity and safety: no command touches what it did not write, and a crash leaves nothing behind.

Study names and output folders are refused before anything is read or written; a process killed while
writing leaves scratch files that the next write removes; two commands on one study at once wait for
each other; the paper is not built from a ledger older than the raw data; a missing kernel package is
named with how to reinstall it. Everything a test writes is under its tmp_path.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pypandoc
import pytest
import yaml

from analysis import figures, paper
from analysis.cli import main
from analysis.config import load_study
from analysis.data import prepare
from analysis.data.manifest import build_manifest, manifest_path, manifest_text
from analysis.errors import StudyError
from analysis.paths import ROOT
from analysis.run.relocate import relocate
from tests.conftest import minimal_spec, set_dotted
from tests.paper.test_generated import small_study
from tests.run.conftest import notebook

NAME_RULE = "letters, digits, '_' and '-'"
OUTPUTS_RULE = "rule: outputs go in a folder inside data_derived/"
LOCK_NAME = ".pipeline.lock"  # in the study's output folder, held while a command writes there


def listing(folder: Path) -> dict[str, str]:
    """Every file under `folder`, hidden ones too, with its sha256."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def study_file(folder: Path, changes: dict | None = None, name: str = "toy") -> Path:
    """The minimal study, its data and its file in `folder` (outputs in `folder`/out unless changed)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = set_dotted(copy.deepcopy(minimal_spec(folder)), changes or {})
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def first_error_line(capsys) -> str:
    return capsys.readouterr().err.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# Study names: the name is a folder under data_derived/ and paper/build/


@pytest.mark.parametrize("name", ["..", ".hidden", "my study", "v1.2"])
def test_a_study_file_whose_name_is_not_plain_is_refused_naming_it_and_the_rule(tmp_path, name):
    path = study_file(tmp_path, name=name)
    with pytest.raises(StudyError) as refused:
        load_study(path)
    message = str(refused.value)
    assert f"study name '{name}'" in message and NAME_RULE in message


@pytest.mark.parametrize("command", ["paper", "clean", "run", "data"])
def test_commands_given_the_study_name_dot_dot_exit_2_naming_the_rule_and_write_nothing(command, capsys):
    sources = {p.name: p.read_bytes() for p in (ROOT / "paper").iterdir() if p.is_file()}
    top = sorted(p.name for p in ROOT.iterdir())
    assert main([command, ".."]) == 2
    line = first_error_line(capsys)
    assert "study name '..'" in line and NAME_RULE in line
    assert {p.name: p.read_bytes() for p in (ROOT / "paper").iterdir() if p.is_file()} == sources
    assert sorted(p.name for p in ROOT.iterdir()) == top


# ---------------------------------------------------------------------------------------------
# Output folders: inside data_derived/, or beside a study file kept outside the repository


@pytest.mark.parametrize("folder", ["data_raw", "data_derived/../data_raw", "data_raw/t", "paper", "analysis",
                                    ".git", ".", "notebooks", "studies", "data_derived"])
def test_an_output_folder_in_the_repository_outside_data_derived_is_refused(write_study, folder):
    with pytest.raises(StudyError) as refused:
        load_study(write_study({"outputs.folder": folder}))
    message = str(refused.value)
    assert f"outputs.folder: {folder} is " in message and OUTPUTS_RULE in message


@pytest.mark.parametrize("folder", ["data_raw", "notebooks/executed", "paper/build/toy", "analysis"])
def test_executed_notebooks_outside_data_derived_are_refused_but_the_notebooks_folder_itself(write_study, folder):
    with pytest.raises(StudyError, match=f"outputs.notebooks: {folder} is .*{OUTPUTS_RULE}"):
        load_study(write_study({"outputs.notebooks": folder}))
    # the reference study's executed notebooks are its sources, executed in place
    assert load_study(write_study({"outputs.notebooks": "notebooks"})).notebook_dir == ROOT / "notebooks"


def test_the_default_and_a_folder_inside_data_derived_are_allowed_and_nothing_is_created(write_study):
    before = sorted(p.name for p in (ROOT / "data_derived").iterdir())
    assert load_study(write_study({"outputs": None})).output_dir == ROOT / "data_derived" / "toy"
    assert load_study(write_study({"outputs.folder": "data_derived/mine/toy"})).output_dir.name == "toy"
    assert sorted(p.name for p in (ROOT / "data_derived").iterdir()) == before


def test_an_output_folder_reached_through_a_symlink_is_judged_where_it_leads(tmp_path):
    (tmp_path / "link").symlink_to(ROOT / "data_raw")
    with pytest.raises(StudyError, match=f"outputs.folder: .*link/new is data_raw/new, .*{OUTPUTS_RULE}"):
        load_study(study_file(tmp_path, {"outputs.folder": str(tmp_path / "link" / "new")}))


def test_clean_of_an_output_folder_outside_the_study_files_folder_exits_2_and_the_files_there_stay(tmp_path, capsys):
    victim = tmp_path / "victim"  # a user's folder next to the project, named as ../victim would be
    (victim / "ledger").mkdir(parents=True)
    (victim / "thesis.docx").write_text("two years of work")
    (victim / "results.json").write_text("{}")
    (victim / "ledger" / "01_data.json").write_text("{}")
    before = listing(victim)
    relative = os.path.relpath(victim, ROOT)
    assert relative.startswith("..")
    path = study_file(tmp_path / "project", {"outputs.folder": relative})
    assert main(["clean", str(path)]) == 2
    line = first_error_line(capsys)
    assert f"outputs.folder: {relative} is {victim.resolve().as_posix()}, outside data_derived/" in line
    assert OUTPUTS_RULE in line and "inside the study file's own folder" in line
    assert listing(victim) == before


def test_an_output_folder_holding_an_input_file_is_refused_and_the_input_stays(tmp_path, capsys):
    project = tmp_path / "project"
    inputs = project / "t" / "tables"
    inputs.mkdir(parents=True)
    (inputs / "flow.csv").write_text("id,admitted,event\n1,2020-03-01,true\n2,2021-03-01,false\n")
    path = study_file(project, {"outputs.folder": str(project / "t"),
                                "tables.patients.file": str(inputs / "flow.csv")})
    before = listing(project)
    assert main(["data", str(path)]) == 2
    line = first_error_line(capsys)
    assert f"outputs.folder: {project / 't'} holds the input file {(inputs / 'flow.csv').as_posix()}" in line
    assert "rule: an output folder never holds the study's inputs" in line
    assert listing(project) == before
    with pytest.raises(StudyError, match="holds the input file .*toy.yml"):
        load_study(study_file(project, {"outputs.folder": str(project)}))


def test_the_reviewers_rebuild_is_relocated_beside_its_study_file_even_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    twin = relocate(load_study("reference"), Path("rebuild"))
    assert twin.output_dir == tmp_path / "rebuild" / "outputs"
    assert twin.notebook_dir == tmp_path / "rebuild" / "notebooks"


# ---------------------------------------------------------------------------------------------
# kill -9 while writing: the next write removes what the killed process left

KILL_BETWEEN_RENAMES = """
import os, signal, sys
from analysis.config import load_study
from analysis.data import prepare

replace = os.replace
def replace_then_die(source, target):
    replace(source, target)
    if ".derived-old-" in str(target):  # the old set moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace_then_die
prepare(load_study(sys.argv[1]))
"""


def leftover_sets(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith((".derived-old-", ".derived-new-")))


@pytest.fixture
def killed_data_step(tmp_path):
    """A study whose data step was killed between the two renames of its derived set."""
    path = study_file(tmp_path)
    study = load_study(path)
    prepare(study)
    done = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(path)], cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL
    left = leftover_sets(study.output_dir)
    assert left and any(p.suffix == ".parquet" for folder in left for p in folder.iterdir())
    return study


def test_the_next_data_step_removes_the_derived_sets_a_killed_one_left(killed_data_step):
    prepare(killed_data_step)
    assert leftover_sets(killed_data_step.output_dir) == []
    assert (killed_data_step.output_dir / "derived" / "patients.parquet").is_file()


def test_the_next_run_removes_them_even_when_every_notebook_is_up_to_date(killed_data_step, tmp_path):
    from analysis.run import run_study

    source = tmp_path / "notebooks"
    source.mkdir()
    nbformat.write(notebook("1 + 1"), source / "a.ipynb")
    (source / "pipeline.yml").write_text("a: {description: nothing to write}\n")
    run_study(killed_data_step, pipeline=source / "pipeline.yml", echo=lambda line: None)
    assert leftover_sets(killed_data_step.output_dir) == []


@pytest.mark.parametrize("path", ["data_derived/s/.derived-old-123-0f3a/patients.parquet",
                                  "data_derived/s/.derived-new-123-k2_x/flow.parquet",
                                  "data_derived/s/figures/.monthly.pdf.123-k2_xabcd.tmp",
                                  f"data_derived/s/{LOCK_NAME}"])
def test_scratch_files_and_the_lock_are_ignored_by_git(path):
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert done.returncode == 0, f"{path} is not git-ignored"


KILL_WHILE_SAVING = """
import os, signal, sys
from matplotlib.figure import Figure
from analysis.figures import files

def half_then_die(figure, handle, name, text, dpi):
    handle.write(b"%PDF-1.4 half a file")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
files.WRITERS["pdf"] = half_then_die
figure = Figure()
figure.add_subplot().plot([1, 2], [3, 4])
files.save(figure, sys.argv[1], "monthly", {"notebook": "07_figures"})
"""


def plot():
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2], [3, 4])
    return figure


@pytest.mark.parametrize("saved_next", ["monthly", "forest"])
def test_the_next_save_into_a_folder_removes_what_a_killed_save_left(tmp_path, saved_next):
    folder = tmp_path / "figures"
    done = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, str(folder)], cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL
    assert [p.name for p in folder.iterdir() if p.name.startswith(".monthly.pdf.")]  # half a PDF, left
    figures.save(plot(), folder, saved_next, {"notebook": "07_figures"})
    assert sorted(p.name for p in folder.iterdir()) == [f"{saved_next}.{f}" for f in ("pdf", "png", "svg")]


def test_a_save_in_progress_in_another_process_is_left_alone(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        in_progress = folder / f".monthly.pdf.{alive.pid}-abcd1234.tmp"
        in_progress.write_bytes(b"%PDF being written")
        figures.save(plot(), folder, "forest", {"notebook": "07_figures"})
        assert in_progress.is_file()
    finally:
        alive.kill()
        alive.wait()


def test_the_figures_notebook_lists_figure_files_only(tmp_path):
    cells = json.loads((ROOT / "notebooks" / "07_figures.ipynb").read_text(encoding="utf-8"))["cells"]
    last = cells[-1]
    assert last["id"] == "figures-05"
    folder = tmp_path / "figures"
    folder.mkdir()
    for name in ("monthly.pdf", "monthly.png", "monthly.svg", ".monthly.pdf.4242-abcd1234.tmp"):
        (folder / name).write_bytes(b"")
    shown = []
    exec("".join(last["source"]), {"folder": folder, "Markdown": shown.append})
    assert shown == ["3 files written to the study's `figures/` folder: monthly.pdf, monthly.png, monthly.svg."]


# ---------------------------------------------------------------------------------------------
# Two commands on one study at once


def wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def falls(tmp_path, monkeypatch):
    """A small study with a ledger, whose generated paper is built into tmp_path/build."""
    monkeypatch.setattr(paper, "SOURCES", tmp_path / "paper")  # no adopted source
    monkeypatch.setattr(paper, "build_dir", lambda study: tmp_path / "build")
    return small_study(tmp_path)


@pytest.mark.parametrize("command", ["paper", "run"])
def test_a_second_command_on_a_study_waits_for_the_first_and_says_so(falls, tmp_path, command, capsys, monkeypatch):
    from analysis import run

    ran = []
    monkeypatch.setattr(run, "run_study", lambda study, *args, **kwargs: ran.append(study.name) or run.Report())
    codes, seen = [], []

    def output() -> str:
        seen.append(capsys.readouterr().out)
        return "".join(seen)

    with open(falls.output_dir / LOCK_NAME, "a") as held:  # as the first command holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        second = threading.Thread(target=lambda: codes.append(main([command, str(falls.file)])))
        second.start()
        assert wait_for(lambda: "waiting" in output()), output()
        line = next(line for line in output().splitlines() if "waiting" in line)
        assert "falls_test" in line and LOCK_NAME in line
        time.sleep(0.5)
        assert second.is_alive() and not (tmp_path / "build").exists() and not ran
    second.join(120)
    assert codes == [0]
    assert (tmp_path / "build" / "manuscript.html").is_file() if command == "paper" else ran == ["falls_test"]


def test_two_builds_of_one_paper_at_once_both_complete_and_leave_no_scratch_file(falls, tmp_path, monkeypatch):
    convert = pypandoc.convert_file
    both_converted = threading.Barrier(2, timeout=60)

    def convert_then_wait(*args, **kwargs):
        result = convert(*args, **kwargs)
        both_converted.wait()  # both have written their scratch file before either renames it into place
        return result

    monkeypatch.setattr(pypandoc, "convert_file", convert_then_wait)
    failures = []

    def build():
        try:
            paper.build(falls, force=True, echo=lambda line: None)
        except BaseException as failure:
            failures.append(failure)
            both_converted.abort()

    builds = [threading.Thread(target=build) for _ in range(2)]
    for thread in builds:
        thread.start()
    for thread in builds:
        thread.join(180)
    assert failures == []
    written = sorted(p.name for p in (tmp_path / "build").iterdir())
    assert "manuscript.html" in written and "manuscript.docx" in written
    assert [name for name in written if ".tmp" in name] == []


# ---------------------------------------------------------------------------------------------
# The paper after the raw data changed; a kernel that cannot start


def test_the_paper_is_not_built_from_a_ledger_older_than_the_raw_data(falls, tmp_path, capsys):
    manifest_path(falls).write_text(manifest_text(build_manifest(falls, {}, [])))
    assert main(["paper", str(falls.file)]) == 0
    built = listing(tmp_path / "build")
    raw = tmp_path / "patients.csv"
    raw.write_text(raw.read_text() + "P1,2020-01-02,70,A,true,3\n")
    capsys.readouterr()
    assert main(["paper", str(falls.file)]) == 2
    line = first_error_line(capsys)
    assert f"raw data changed since the derived data of study 'falls_test' were made: {raw.as_posix()}" in line
    assert "(rule: raw data are read-only)" in line
    assert listing(tmp_path / "build") == built


def test_a_missing_ipykernel_is_named_with_how_to_reinstall_it(monkeypatch, capsys):
    find_spec = importlib.util.find_spec

    def uninstalled(name, *args):
        return None if name.partition(".")[0] in ("ipykernel", "ipykernel_launcher") else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", uninstalled)
    assert main(["kernel"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Jupyter kernel cannot start: the package ipykernel is not installed")
    assert "pip install" in err and "ipykernel" in err and "make venv" in err
