"""A toy pipeline of three small notebooks and a study that writes only under tmp_path."""

from __future__ import annotations

import textwrap

import nbformat
import pytest
import yaml

from analysis.config import load_study
from tests.conftest import minimal_spec


def notebook(*sources: str) -> nbformat.NotebookNode:
    """A notebook whose first cell is the `parameters` cell; ids fixed so files compare byte for byte."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "prepost-compendium", "display_name": "Python", "language": "python"}
    cells = [nbformat.v4.new_code_cell('study = "studies/reference.yml"', metadata={"tags": ["parameters"]})]
    cells += [nbformat.v4.new_code_cell(textwrap.dedent(s).strip()) for s in sources]
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"
    nb.cells = cells
    return nb


WRITE_A = """
from analysis.config import load_study
out = load_study(study).output_dir
out.mkdir(parents=True, exist_ok=True)
(out / "a.txt").write_text("a from " + load_study(study).title)
print("wrote a")
"""
READ_A_WRITE_B = """
from analysis.config import load_study
out = load_study(study).output_dir
(out / "b.txt").write_text((out / "a.txt").read_text().upper())
"""
WRITE_C = """
from analysis.config import load_study
out = load_study(study).output_dir
out.mkdir(parents=True, exist_ok=True)
(out / "c.txt").write_text("c")
1 + 1
"""


@pytest.fixture
def toy(tmp_path):
    """(study, pipeline file): notebooks a -> b, and c on its own."""
    source = tmp_path / "notebooks"
    source.mkdir()
    for name, code in {"a": WRITE_A, "b": READ_A_WRITE_B, "c": WRITE_C}.items():
        nbformat.write(notebook(code), source / f"{name}.ipynb")
    pipeline = source / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump({
        "a": {"outputs": ["a.txt"], "description": "writes a"},
        "b": {"needs": ["a"], "outputs": ["b.txt"], "description": "reads a, writes b"},
        "c": {"outputs": ["c.txt"], "description": "writes c"},
    }, sort_keys=False))
    study_file = tmp_path / "toy.yml"
    study_file.write_text(yaml.safe_dump(minimal_spec(tmp_path), sort_keys=False))
    return load_study(study_file), pipeline
