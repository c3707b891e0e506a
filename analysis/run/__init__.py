"""papermill orchestration: dependency order, incremental reruns, stable executed notebooks."""

__all__ = ["Report", "run_study"]


def __getattr__(name: str):
    # The runner (papermill, scipy) loads on first use, not with the package: every command builds its
    # parser from this package's light modules (the executor's options), and the data step on a million
    # patients should not pay 0.4 s for a runner it never calls.
    if name in __all__:
        from analysis.run import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'analysis.run' has no attribute {name!r}")
