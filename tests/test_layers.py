"""Where the code may import from, and that it runs from any working directory.

The contracts are pyproject.toml's [tool.importlinter] (the layers of analysis/README.md); they are
checked on the package as it is, and each is shown to catch the violation it exists for, on a copy of
the package with that one import added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.paths import ROOT

LAYERS = "layers of analysis/README.md: imports point one way"
STATS = "stats imports nothing from the package except itself"
FIGURES = "figures knows nothing of studies"
# import-linter's console wraps long lines at 80 columns unless told the terminal is wider
WIDE = {**os.environ, "COLUMNS": "250"}


def lint_imports(folder: Path) -> subprocess.CompletedProcess:
    """import-linter's Python API run on the `analysis` package found in `folder`, with the contracts of
    `folder`/pyproject.toml. In a subprocess, so that `analysis` is the copy under test, not the one
    this test session imported."""
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, env=WIDE)


def test_the_package_keeps_every_import_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in (LAYERS, STATS, FIGURES):
        assert f"{name} KEPT" in done.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken", "report"),
    [
        # a lower layer importing a higher one
        ("ledger.py", "import analysis.paper", LAYERS, "analysis.ledger is not allowed to import analysis.paper"),
        ("data/__init__.py", "import analysis.analyses", LAYERS,
         "analysis.data is not allowed to import analysis.analyses"),
        # stats may not import even the bottom layers: it is pure statistics
        ("stats/tidy.py", "from analysis import errors", STATS,
         "analysis.stats is not allowed to import analysis.errors"),
        ("figures/__init__.py", "from analysis.config import Study", FIGURES,
         "analysis.figures is not allowed to import analysis.config"),
        # a new module must be given a layer (the layers contract is exhaustive)
        ("helpers.py", "", LAYERS, "The following modules are not listed as layers:\n\n- analysis.helpers"),
    ],
)
def test_each_contract_catches_its_violation(tmp_path, module, added, broken, report):
    shutil.copytree(ROOT / "analysis", tmp_path / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "analysis" / module
    path.write_text((path.read_text() if path.exists() else "") + f"\n{added}\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{broken} BROKEN" in done.stdout
    # only the contract the import breaks: the others still hold on the copy
    kept = {LAYERS, STATS, FIGURES} - {broken}
    assert all(f"{name} KEPT" in done.stdout for name in kept), done.stdout
    assert report in done.stdout


@pytest.mark.parametrize(
    ("command", "first_line"),
    [
        (["--help"], "usage: python -m analysis [-h] COMMAND ..."),
        # reads studies/*.yml and notebooks/pipeline.yml
        (["list"], "studies (studies/*.yml):"),
        # reads requirements.lock and environment.yml, which the other directory does not have
        (["environment"], "environment.yml matches requirements.lock"),
    ],
)
def test_the_cli_runs_from_another_working_directory(tmp_path, command, first_line):
    # every path the package reads is found from its own location (analysis.paths.ROOT), never from the
    # current directory: the same command says the same from the repository and from anywhere else
    here, elsewhere = (
        subprocess.run([sys.executable, "-m", "analysis", *command], cwd=cwd, capture_output=True, text=True)
        for cwd in (ROOT, tmp_path)
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.splitlines()[0] == first_line
    assert (elsewhere.stdout, elsewhere.stderr) == (here.stdout, here.stderr)
