"""Fixtures shared by the test folders."""

from __future__ import annotations

import copy

import pytest
import yaml


def minimal_spec(tmp_path) -> dict:
    """The smallest valid study file's contents, writing only under tmp_path."""
    raw = tmp_path / "raw.csv"
    raw.write_text("id,admitted,event\n1,2020-03-01,true\n2,2021-03-01,false\n")
    return {
        "title": "Toy study",
        "synthetic": True,
        "tables": {"patients": {"file": str(raw), "key": "id", "columns": {
            "id": {"type": "string"}, "admitted": {"type": "date"}, "event": {"type": "boolean"}}}},
        "period": {"column": "admitted",
                   "before": {"label": "Before", "start": "2020-01-01", "end": "2020-12-31"},
                   "after": {"label": "After", "start": "2021-01-01", "end": "2021-12-31"}},
        "outcomes": {"event": {"type": "binary", "table": "patients", "column": "event", "label": "Event"}},
        "seeds": {"models": 1},
        "outputs": {"folder": str(tmp_path / "out"), "notebooks": str(tmp_path / "executed")},
    }


def set_dotted(spec: dict, changes: dict) -> dict:
    """Change a study spec in place by dotted keys ("seeds.models"); a value of None removes the key."""
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = spec
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return spec


@pytest.fixture
def write_study(tmp_path):
    """write_study(changes={dotted.key: value}, text=None) -> path of a study file in tmp_path."""

    def write(changes: dict | None = None, text: str | None = None, name: str = "toy"):
        path = tmp_path / f"{name}.yml"
        if text is None:
            spec = set_dotted(copy.deepcopy(minimal_spec(tmp_path)), changes or {})
            text = yaml.safe_dump(spec, sort_keys=False)
        path.write_text(text)
        return path

    return write
