"""The Dask executor (analysis/run/executor.py): order, batching, the same results on 1 and 2 workers, an
existing scheduler by address or environment variable, clear errors; and `python -m analysis power --simulate
--scheduler`, on this module's one cluster (its workers have imported the simulation once)."""

from __future__ import annotations

import math
import subprocess

import pandas as pd
import pytest

from analysis.cli import main
from analysis.errors import StudyError
from analysis.run import executor as executor_module
from analysis.run.executor import ENVIRONMENT, executor, overhead
from analysis.stats.simulate import Scenario, simulate_power

# The tasks below call library functions only (subprocess, math): a function defined in this module would
# have to be imported, or sent by value, by every worker.


@pytest.fixture(scope="module")
def two_workers():
    with executor(workers=2) as run:
        yield run


def test_results_come_back_in_task_order_whatever_order_they_finish(two_workers, capsys):
    assert two_workers.workers == 2
    count = 8
    # task i sleeps longest when i is smallest, so the first tasks finish last
    tasks = [["sh", "-c", f"sleep {0.05 * (count - i)}; echo {i}"] for i in range(count)]
    echoed = two_workers.map(subprocess.check_output, tasks, batch=1)
    assert [int(out) for out in echoed] == list(range(count))
    progress = capsys.readouterr().err  # the bar goes to stderr: tasks done, rate, time left
    assert f"{count}/{count}" in progress and "task/s" in progress


def test_batching_changes_nothing_but_the_speed(two_workers):
    tasks = list(range(50))
    assert two_workers.map(abs, tasks, batch=1, progress=False) == two_workers.map(abs, tasks, batch=7,
                                                                                     progress=False) == tasks
    assert two_workers.map(abs, [], progress=False) == []


def test_an_error_in_a_task_is_raised_here(two_workers):
    with pytest.raises(ValueError, match="math domain error"):
        two_workers.map(math.sqrt, [1, 4, 9, -1, 16, 25], batch=2, progress=False)


def test_simulation_is_identical_on_one_and_two_workers(two_workers):
    scenarios = [Scenario("before_after", 0.3, math.log(0.6), clusters=6, cluster_size=25, cluster_sd=0.5,
                          cluster_cv=0.4),
                 Scenario("stepped_wedge", 0.3, math.log(0.6), clusters=6, cluster_size=10, cluster_sd=0.3, steps=3)]

    def on(run, batch):
        return simulate_power(scenarios, 60, 42, map=lambda f, t: run.map(f, t, batch=batch, progress=False))

    here = simulate_power(scenarios, 60, 42)
    assert on(two_workers, 1).equals(here)
    with executor(workers=1) as one:
        assert one.workers == 1
        assert on(one, None).equals(here)


def test_an_existing_scheduler_by_address_or_environment(two_workers, monkeypatch):
    with executor(two_workers.address) as remote:
        assert remote.address == two_workers.address and remote.workers == 2
        assert remote.map(abs, [-1, -2], progress=False) == [1, 2]
    monkeypatch.setenv(ENVIRONMENT, two_workers.address)
    with executor() as remote:
        assert remote.address == two_workers.address


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(executor_module, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(StudyError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 .*dask scheduler"):
        with executor("tcp://127.0.0.1:9"):
            pass
    monkeypatch.setenv(ENVIRONMENT, "tcp://127.0.0.1:9")
    with pytest.raises(StudyError, match=rf"\(from \${ENVIRONMENT}\)"):
        with executor():
            pass


@pytest.mark.parametrize("scheduler, workers, message", [
    (None, 0, "--workers must be at least 1"),
    ("tcp://127.0.0.1:9", 2, "give one or the other"),
])
def test_bad_options_are_refused(scheduler, workers, message):
    with pytest.raises(StudyError, match=message):
        with executor(scheduler, workers):
            pass


def test_overhead_is_measured_and_batching_lowers_it(two_workers):
    got = overhead(two_workers, tasks=400)
    assert 0 < got["per_task_batched"] < got["per_task_unbatched"] < 1


def test_a_scheduler_without_workers_is_a_clear_error(monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(executor_module, "CONNECT_TIMEOUT", "1s")
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        with pytest.raises(StudyError, match="has no workers"):
            with executor(empty.scheduler_address):
                pass


POWER_GRID = {"baseline": 0.4, "effects": [0.6, 0.7], "effect_scale": "odds_ratio", "icc": 0.05}


def test_power_command_simulates_on_the_scheduler_given(two_workers, write_study, tmp_path, capsys):
    grid = {**POWER_GRID, "cluster_size": [20], "clusters": [4, 8], "simulations": 30, "seed": 4}
    out = tmp_path / "planning"
    path = write_study({"power": grid})
    assert main(["power", str(path), "--simulate", "--scheduler", two_workers.address, "--out", str(out)]) == 0
    simulated = pd.read_csv(out / "power_simulated.csv")
    assert len(simulated) == 2 * 3 and set(simulated["term"]) == {"power", "type_i_error"}
    assert ((simulated["conf_low"] <= simulated["estimate"]) & (simulated["estimate"] <= simulated["conf_high"])).all()
    assert (out / "power.csv").is_file()  # the analytic table beside it
    assert {p.suffix for p in out.glob("power_curve.*")} == {".pdf", ".svg", ".png"}
    assert not (tmp_path / "out").exists()  # no ledger, no study outputs: those are notebook 08_power's
    printed = capsys.readouterr().out
    assert "type_i_error" in printed and "clusters_for_power_0.8" in printed
    # the same simulation as the library's, which notebook 08_power records
    from analysis.analyses import planning
    from analysis.config import load_study

    again = planning.simulated_table(load_study(path), map=two_workers.map)
    assert simulated["estimate"].tolist() == again["estimate"].tolist()
