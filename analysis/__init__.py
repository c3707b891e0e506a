"""Reproducible compendium for health-services before-after studies.

Layers (imports point one way): cli -> paper/verify/run -> ledger/figures/stats/data -> config.
"""

__version__ = "0.1.0"
