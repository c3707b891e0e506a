"""ACRO's verdicts on small tables made for the purpose, stored as JSON for tests/test_disclosure_acro.py.

Run in a throwaway venv (ACRO pins pandas <= 2.3.3; the project runs pandas 3, so ACRO is an oracle here,
as R is for the statistics, and never a runtime dependency):

    python3 -m venv /tmp/acro-venv && /tmp/acro-venv/bin/pip install acro==1.0.2
    /tmp/acro-venv/bin/python tests/reference/acro/generate.py

Each case is a data frame, the ACRO call made on it (crosstab, pivot_table with a sum, logit) under a set
of rules (ACRO's defaults, or a profile's threshold and zero rule written as an ACRO config file), and
ACRO's answer: the status of each check and, for tables, which cells each check failed (read from ACRO's
outcome table, whose cells name the checks a cell failed).
"""

from __future__ import annotations

import json
import logging
import pathlib
import sys

import acro
import numpy as np
import pandas as pd
import yaml
from acro import ACRO

HERE = pathlib.Path(__file__).parent
CHECKS = ("MinimumThresholdCheck", "PresenceOfZeroCheck", "NKCheck", "PPercentCheck")
# profiles other than ACRO's defaults, as ACRO config files (only what differs from default.yaml)
PROFILES = {
    "acro": {},
    "nhs_hes": {"safe_threshold": 8, "zeros_are_disclosive": False},
    "opensafely": {"safe_threshold": 8, "zeros_are_disclosive": True},
}


def session(profile: str) -> ACRO:
    folder = pathlib.Path(acro.__file__).parent
    config = yaml.safe_load((folder / "default.yaml").read_text())
    config.update(PROFILES[profile])
    name = f"profile_{profile}"
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return ACRO(config=name, suppress=False)


def frequency_cases() -> dict[str, pd.DataFrame]:
    """Long data whose crosstab of `row` by `column` has small cells, zeros, cells at 7, 8, 9 and 10."""
    def expand(table: dict[str, dict[str, int]]) -> pd.DataFrame:
        rows = [(r, c) for c, column in table.items() for r, n in column.items() for _ in range(n)]
        return pd.DataFrame(rows, columns=["row", "column"])

    return {
        "harm_by_period": expand({"before": {"none": 35, "minor": 6, "moderate": 54, "severe": 6},
                                  "after": {"none": 93, "minor": 2, "moderate": 13, "severe": 0}}),
        "team_by_period": expand({"before": {"A": 7, "B": 8, "C": 9, "D": 10, "E": 11, "F": 1},
                                  "after": {"A": 12, "B": 0, "C": 25, "D": 3, "E": 10, "F": 40}}),
    }


def magnitude_cases() -> dict[str, pd.DataFrame]:
    """Long data summed by `row` and `column`: a cell dominated by one contributor, one by two, one just
    under and just over the (2, 90%) share, one failing only the p-ratio, one with a negative value."""
    def cell(row, column, values):
        return pd.DataFrame({"row": row, "column": column, "value": np.asarray(values, dtype=float)})

    return {
        "cost_by_ward": pd.concat([
            cell("ward 1", "before", [1000] + [10] * 11),            # top 2 = 1010 of 1120: 90.2%, fails n,k
            cell("ward 1", "after", [20] * 12),                       # even
            cell("ward 2", "before", [500, 480] + [10] * 10),         # two dominate: 980/1080, fails n,k
            cell("ward 2", "after", [100, 5] + [1] * 10),             # rest 10 / 100 = 0.10: passes p-ratio
            cell("ward 3", "before", [100, 5] + [0.9] * 10),          # rest 9 / 100 = 0.09: fails p-ratio
            cell("ward 3", "after", [30] * 5),                        # 5 contributors: threshold
            cell("ward 4", "before", [400, 400, 400, 300] + [5] * 8), # top 2 share 800/1540: passes
            cell("ward 4", "after", [88, 10] + [0.2] * 10),           # 98/100 = 98%: fails n,k
        ], ignore_index=True),
        "negative_by_ward": pd.concat([
            cell("ward 1", "before", [50, -20] + [10] * 10),
            cell("ward 1", "after", [20] * 12),
        ], ignore_index=True),
    }


def model_cases() -> dict[str, dict]:
    rng = np.random.default_rng(20260101)
    cases = {}
    for name, n in {"logit_few_df": 14, "logit_enough_df": 15}.items():
        x = rng.normal(size=(n, 4))
        y = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
        cases[name] = {"model": "logit", "y": y.tolist(), "x": x.tolist()}
    # ACRO 1.0.2 wraps ols, logit and probit (no glm): the linear model at 9 and 10 residual df too
    for name, n in {"ols_few_df": 14, "ols_enough_df": 15}.items():
        x = rng.normal(size=(n, 4))
        y = x[:, 0] + rng.normal(size=n)
        cases[name] = {"model": "ols", "y": y.tolist(), "x": x.tolist()}
    return cases


def masks(outcome: pd.DataFrame) -> dict[str, dict[str, dict[str, bool]]]:
    return {check: {str(r): {str(c): check in str(outcome.loc[r, c]) for c in outcome.columns}
                    for r in outcome.index} for check in CHECKS}


def main() -> None:
    logging.disable(logging.CRITICAL)
    out = {"acro_version": acro.__version__ if hasattr(acro, "__version__") else "1.0.2",
           "pandas_version": pd.__version__, "profiles": PROFILES, "frequency": {}, "magnitude": {}, "models": {}}
    for profile in PROFILES:
        for name, data in frequency_cases().items():
            s = session(profile)
            table = s.crosstab(data["row"], data["column"])
            record = list(s.results.results.values())[-1]
            out["frequency"][f"{profile}:{name}"] = {
                "profile": profile, "data": data.to_dict("list"),
                "counts": {str(r): {str(c): int(table.loc[r, c]) for c in table.columns} for r in table.index},
                "status": record.status, "masks": masks(record.outcome)}
    for name, data in magnitude_cases().items():
        s = session("acro")
        s.pivot_table(data, index="row", columns="column", values="value", aggfunc="sum")
        record = list(s.results.results.values())[-1]
        out["magnitude"][name] = {"profile": "acro", "data": data.to_dict("list"), "status": record.status,
                                  "summary": record.summary, "masks": masks(record.outcome)}
    for name, case in model_cases().items():
        s = session("acro")
        x = pd.DataFrame(case["x"], columns=["x1", "x2", "x3", "x4"])
        getattr(s, case["model"])(pd.Series(case["y"], name="y"), acro.add_constant(x))
        record = list(s.results.results.values())[-1]
        out["models"][name] = {**case, "status": record.status, "dof": int(record.properties["dof"]),
                               "summary": record.summary}
    path = HERE / "acro_results.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE.parents[2]) if HERE.is_relative_to(HERE.parents[2]) else path}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
