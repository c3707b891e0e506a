"""`python -m analysis sweep <study> <key> <value>...` (analysis/run/sweep.py): each value's study in its own
folder beside the study's outputs, run on the executor, ledgers gathered; bad keys and values refused with
nothing written; `clean` removes it all. A toy pipeline and a cluster of threads in this process, as in
tests/run/test_when.py."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest
import yaml

from analysis.cli import main
from analysis.config import load_study
from analysis.errors import StudyError
from analysis.run import runner as runner_module
from analysis.run import sweep
from analysis.run.clean import clean
from tests.conftest import minimal_spec
from tests.run.conftest import notebook
from tests.run.test_when import threads

# records the study's model seed and, from a second study-file key, a threshold, as ledger entries
RECORD = """
from analysis.config import load_study
from analysis.ledger import Ledger
study = load_study(study)
book = Ledger(study, "record")
book.record("seed", float(study.seeds.models), "the model seed", n=2)
book.record("fixed", 1.5, "the same for every value")
book.save()
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(notebook(RECORD), folder / "record.ipynb")
    (folder / "pipeline.yml").write_text(yaml.safe_dump({"record": {"outputs": ["ledger/record.json"]}}))
    monkeypatch.setattr(runner_module, "PIPELINE_FILE", folder / "pipeline.yml")
    path = tmp_path / "toy.yml"
    path.write_text(yaml.safe_dump(minimal_spec(tmp_path), sort_keys=False))
    return load_study(path)


def test_a_sweep_runs_each_value_in_its_own_folder_and_gathers_the_ledgers(toy, tmp_path, capsys):
    with threads() as cluster:
        assert main(["sweep", str(toy.file), "seeds.models", "7", "11", "--scheduler", cluster.scheduler_address]) == 0
    swept = tmp_path / "out.sweeps"
    assert sweep.sweeps_dir(toy) == swept
    assert sorted(p.name for p in swept.iterdir()) == ["seeds.models.csv", "seeds.models=11", "seeds.models=7"]
    assert not toy.output_dir.exists()  # the study's own outputs are untouched
    copy = load_study(swept / "seeds.models=7" / "toy.yml")
    assert copy.seeds.models == 7 and copy.output_dir == swept / "seeds.models=7" / "outputs"
    assert copy.tables["patients"].file == toy.tables["patients"].file  # the same raw data
    table = pd.read_csv(swept / "seeds.models.csv")
    assert list(table.columns) == ["key", "value", "name", *sweep.COLUMNS]
    seeds = table[table["name"] == "seed"].set_index("value")["estimate"]
    assert seeds.to_dict() == {7: 7.0, 11: 11.0}
    assert sweep.moved(table) == ["seed"]
    printed = capsys.readouterr().out
    assert "seeds.models=7: done in" in printed
    assert ("2 ledger names over 2 values of seeds.models, 1 of them not the same for every value (first: seed)"
            in printed)

    cleaned = clean(toy, runner_module.PIPELINE_FILE)  # the toy pipeline: its `record` notebook's files
    assert not swept.exists() and cleaned.left == []
    assert "out.sweeps/seeds.models.csv" in "\n".join(cleaned.removed)


@pytest.mark.parametrize(("key", "values", "message"), [
    # the first value is good and written: the bad second one takes it away again
    ("seeds.models", ["3", "-1"], "sweep of 'seeds.models' = -1: "),
    ("seeds.nonsense", ["1"], "nonsense"),
    ("outputs.folder", ["x"], "the sweep sets each value's outputs itself"),
    ("title.part", ["x"], "cannot set 'title.part': 'title' is not a mapping"),
    ("seeds.models", ["1", "1"], "values give the same folder more than once: seeds.models=1"),
])
def test_bad_keys_and_values_are_refused_with_nothing_written(toy, tmp_path, key, values, message):
    with pytest.raises(StudyError, match=message):
        sweep.variants(toy, key, values)
    assert not (tmp_path / "out.sweeps").exists()


def test_a_list_is_one_value_read_as_yaml(toy, tmp_path):
    """A covariate set is a list: each value is YAML, so `[]` and `[admitted]` are two values."""
    made = sweep.variants(toy, "covariates", ["[]", "[admitted]"])
    assert [v.label for v in made] == ["covariates=empty", "covariates=admitted"]
    assert [load_study(v.file).covariates for v in made] == [[], ["admitted"]]


def test_clean_names_a_value_whose_study_file_no_longer_reads_and_removes_the_others(toy, tmp_path):
    good, bad = sweep.variants(toy, "seeds.models", ["1", "2"])
    bad.file.write_text(bad.file.read_text().replace("models: 2", "models: -2"))
    cleaned = clean(toy, runner_module.PIPELINE_FILE)
    assert not good.file.parent.exists() and bad.file.is_file()
    assert any(path.endswith("out.sweeps/seeds.models=1/toy.yml") for path in cleaned.removed)
    assert any(path.endswith("seeds.models=2/") for path in cleaned.left)


def test_a_refused_value_leaves_an_earlier_sweeps_study_file_as_it_was(toy):
    (earlier,) = sweep.variants(toy, "seeds.models", ["5"])
    held = earlier.file.read_bytes()
    # the study file changed since: the failed sweep rewrote seeds.models=5 with the new title, then put it back
    toy.file.write_text(toy.file.read_text().replace("Toy study", "Renamed study"))
    with pytest.raises(StudyError, match="= -1"):
        sweep.variants(load_study(toy.file), "seeds.models", ["5", "-1"])
    assert earlier.file.read_bytes() == held and b"Toy study" in held
