"""Executed notebooks made stable: a rerun with nothing changed writes the same bytes.

Removed: papermill's timestamps and durations, nbclient's execution timings, and the papermill
status markers; the injected parameters cell gets a fixed id; execution counts are renumbered
1..n over the code cells that ran. Paths that papermill records are repository-relative, and the
repository's absolute path in text outputs (tracebacks, warnings) becomes '.'. Numbers in outputs
are never touched: the notebooks avoid printing timestamps and memory addresses.
"""

from __future__ import annotations

import nbformat

from analysis.paths import ROOT


def normalise(nb: nbformat.NotebookNode, input_path: str, output_path: str) -> nbformat.NotebookNode:
    papermill = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {
        "parameters": papermill.get("parameters", {}),
        "input_path": input_path,
        "output_path": output_path,
    }
    nb.metadata.pop("widgets", None)
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill draws a random id for it on every run
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output.execution_count = count
    _strip_root(nb)
    return nb


def _strip_root(nb: nbformat.NotebookNode) -> None:
    """Replace the repository's absolute path in text outputs (tracebacks, warnings) by '.'."""
    root = str(ROOT)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output.text = output.text.replace(root, ".")
            if "traceback" in output:
                output.traceback = [line.replace(root, ".") for line in output.traceback]
            for key, value in output.get("data", {}).items():
                if key.startswith("text/") and isinstance(value, str):
                    output.data[key] = value.replace(root, ".")
