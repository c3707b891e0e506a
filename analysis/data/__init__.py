"""The data layer: dictionary, validation, derivation, manifest, and the synthetic generator.

For the notebooks:

    from analysis.data import prepare, load
    data = prepare("studies/reference.yml")   # the data notebook: validate, derive, write, manifest
    data = load("studies/reference.yml")      # later notebooks: read what prepare wrote
    data.patients, data.suggestions, data.flow, data.published["primary"]

For the runner, before any notebook: `check_raw_data(study, accept_new_data=...)`.
"""

from analysis.data.step import Prepared, check_raw_data, load, prepare, published_as_printed

__all__ = ["Prepared", "check_raw_data", "load", "prepare", "published_as_printed"]
