"""The library and tests pass ruff (pyflakes, pycodestyle, import order, pyupgrade, bugbear: pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from analysis.paths import ROOT


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "analysis", "tests"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
