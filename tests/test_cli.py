"""`python -m analysis`: help everywhere, the reason first on failure, a non-zero status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis.cli import COMMANDS, main
from analysis.paths import ROOT


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert COMMANDS[command][0] in " ".join(capsys.readouterr().out.split())


def test_a_study_that_does_not_exist_exits_2_with_the_reason_on_the_first_line(capsys):
    assert main(["run", "no_such_study"]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("error: studies/no_such_study.yml: study file not found (studies here:")


def test_a_bad_study_file_exits_2_naming_the_key(write_study, capsys):
    assert main(["run", str(write_study({"seeds.modles": 1}))]) == 2
    assert "key 'seeds.modles': unknown key" in capsys.readouterr().err.splitlines()[0]


def test_the_module_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "run" in done.stdout and "list" in done.stdout
