"""The data layer: dictionary, validation, derivation, manifest, and the synthetic generator.

For the notebooks:

    from analysis.data import prepare, load
    data = prepare("studies/reference.yml")   # the data notebook: validate, derive, write, manifest
    data = load("studies/reference.yml")      # later notebooks: read what prepare wrote
    data.patients, data.suggestions, data.flow, data.published["primary"]

For the runner, before any notebook: `check_raw_data(study, accept_new_data=...)`.
"""

__all__ = ["Prepared", "check_raw_data", "load", "prepare", "published_as_printed"]


def __getattr__(name: str):
    # The data step (pandera, validation) loads on first use, not with the package: a `run` with nothing new
    # only compares the raw files' hashes with the manifest (`check_raw_data`), and should not pay 0.2 s for it.
    if name == "check_raw_data":
        from analysis.data.manifest import check_raw_data

        return check_raw_data
    if name in __all__:
        from analysis.data import step

        return getattr(step, name)
    raise AttributeError(f"module 'analysis.data' has no attribute {name!r}")
