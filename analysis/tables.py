"""Tables the paper shows, exported as CSV beside the ledger (`<output>/tables/<name>.csv`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.config import Study
from analysis.errors import StudyError
from analysis.paths import atomic_write, relative

# 10 significant digits: every reported digit, none of the last-bit noise between machines
FLOAT_FORMAT = "%.10g"


def tables_dir(study: Study) -> Path:
    return study.output_dir / "tables"


def export(study: Study, name: str, frame: pd.DataFrame) -> Path:
    path = tables_dir(study) / f"{name}.csv"
    with atomic_write(path, encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return path


def read(study: Study, name: str) -> pd.DataFrame:
    path = tables_dir(study) / f"{name}.csv"
    if not path.is_file():
        raise StudyError(f"{relative(path)}: table '{name}' has not been exported; run the study's notebooks first")
    return pd.read_csv(path)
