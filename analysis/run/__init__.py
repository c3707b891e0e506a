"""papermill orchestration: dependency order, incremental reruns, stable executed notebooks."""

from analysis.run.runner import Report, run_study

__all__ = ["Report", "run_study"]
