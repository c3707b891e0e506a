"""environment.yml (conda) installs exactly the pins of requirements.lock (pip)."""

from __future__ import annotations

from analysis import environment
from analysis.paths import ROOT


def test_environment_yml_and_the_lock_file_pin_the_same_packages():
    assert environment.drift() == []


def test_the_lock_file_pins_every_package_with_hashes():
    text = (ROOT / "requirements.lock").read_text()
    entries = [block for block in text.split("\n") if "==" in block and not block.startswith("#")]
    assert len(entries) == len(environment.lock_pins()) > 100
    assert text.count("--hash=sha256:") >= len(entries)


def test_drift_is_detected(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6 \\\n    --hash=sha256:00\npandas==3.1.1 \\\n    --hash=sha256:11\nscipy==1.17.1\n")
    env_file = tmp_path / "environment.yml"
    env_file.write_text(environment.render({"numpy": "2.4.6", "pandas": "3.0.0", "seaborn": "0.13.2"}))
    assert environment.drift(lock, env_file) == [
        "pandas: lock 3.1.1, environment.yml 3.0.0",
        "scipy: lock 1.17.1, environment.yml absent",
        "seaborn: lock absent, environment.yml 0.13.2",
    ]
