"""Study-level analyses: the data dictionary's columns and a study's settings in, results frames out.

Between `analysis.stats` (pure, generic) and the notebooks (narrative): each module serves one
notebook, knows which columns hold which outcome, and names every number for the ledger, so that a
notebook is a few calls long and every number it shows is recorded.
"""
