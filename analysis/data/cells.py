"""A patient-level parquet file too large to hold, read in batches and collapsed to binomial cells.

A logistic model's likelihood depends on 0/1 rows only through the number of events and of rows in each
cell of equal covariates and clusters: `binomial_cells` streams the file (`ParquetFile.iter_batches`),
counts them per cell, exactly (integer counts), and returns one row per cell, which
`analysis.stats.mixed_logistic(cells, "events ~ ...", cluster, trials="trials")` fits as it fits the rows
(tests/data/test_cells.py). Twenty million admissions with a few discrete covariates make a few million
cells; the rows are never all in memory (tests/benchmarks/RESULTS.md, `scale`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.errors import StudyError
from analysis.paths import relative

BATCH_ROWS = 2_000_000  # rows read at a time: 2M rows of 6 columns are about 100 MB
MAX_CELLS = 2**25  # combinations counted in memory: two arrays of 8 bytes each, 512 MB


def binomial_cells(path: str | Path, outcome: str, by: list[str], *, events: str = "events",
                   trials: str = "trials", batch_rows: int = BATCH_ROWS) -> pd.DataFrame:
    """One row per distinct combination of the columns ``by`` in the parquet file ``path``, with
    ``events`` (the sum of the 0/1 or true/false ``outcome``) and ``trials`` (the number of rows), sorted
    by ``by``. Rows with a missing value (or NaN) in ``outcome`` or ``by`` are left out, as a model fit on
    the rows leaves them out. Memory holds a batch of ``batch_rows`` rows and the counts, never the file.

    >>> cells = binomial_cells("admissions.parquet", "error", ["after", "age", "team"])  # doctest: +SKIP
    >>> mixed_logistic(cells, "events ~ after + age", "team", trials="trials")  # doctest: +SKIP
    """
    path, by = Path(path), list(by)
    clash = {events, trials} & {outcome, *by}
    if clash:
        raise StudyError(f"{relative(path)}: the cells' counts would be named like the file's column(s) "
                         f"{', '.join(sorted(clash))}; give other names with events= and trials=")
    if not by or outcome in by or len(set(by)) != len(by):
        raise StudyError(f"{relative(path)}: give the outcome ({outcome}) once and at least one other column to "
                         f"count by, each once (got {by})")
    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise StudyError(f"{relative(path)}: cannot be read as a parquet file ({error}); check the path") from None
    missing = [c for c in [outcome, *by] if c not in source.schema_arrow.names]
    if missing:
        raise StudyError(f"{relative(path)}: no column {', '.join(missing)} (the file's columns: "
                         f"{', '.join(source.schema_arrow.names)})")
    # Each column's distinct values in order of first appearance, and the events and rows of every
    # combination of them in dense arrays (numpy's bincount on one index per row): 0.15 s of CPU per
    # million rows, where Arrow's group_by on five columns took 0.6 s and merging its partial counts more.
    seen = [pa.array([], _value_type(source.schema_arrow.field(c).type)) for c in by]
    event_counts = row_counts = np.zeros(0, dtype=np.int64)
    for batch in source.iter_batches(batch_size=batch_rows, columns=[outcome, *by]):
        rows = _complete(pa.Table.from_batches([batch]))
        y = _zero_one(rows[outcome], outcome, path)
        before = [len(values) for values in seen]
        codes = [_codes(rows[c], seen, j) for j, c in enumerate(by)]
        sizes = [len(values) for values in seen]
        if math.prod(sizes) > MAX_CELLS:
            raise StudyError(f"{relative(path)}: the columns {', '.join(by)} have {' x '.join(map(str, sizes))} "
                             f"combinations of values, more than the {MAX_CELLS:,} counted in memory; group a "
                             f"column with many values (ages in bands, dates in months), or fit on the rows")
        if sizes != before:  # new values: the combinations of the old ones keep their counts
            widen = [(0, new - old) for old, new in zip(before, sizes, strict=True)]
            event_counts = np.pad(event_counts.reshape(before), widen).ravel()
            row_counts = np.pad(row_counts.reshape(before), widen).ravel()
        if rows.num_rows:
            at = np.ravel_multi_index(codes, sizes)
            event_counts += np.bincount(at[y], minlength=event_counts.size)
            row_counts += np.bincount(at, minlength=row_counts.size)
    filled = np.flatnonzero(row_counts)
    where = np.unravel_index(filled, [len(values) for values in seen])
    cells = pa.table({**{c: seen[j].take(pa.array(where[j])) for j, c in enumerate(by)},
                      events: pa.array(event_counts[filled]), trials: pa.array(row_counts[filled])})
    return cells.sort_by([(c, "ascending") for c in by]).to_pandas()


def _value_type(kind: pa.DataType) -> pa.DataType:
    """A dictionary-encoded column (a pandas categorical written to parquet) is counted by its values."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _complete(rows: pa.Table) -> pa.Table:
    """The rows with every value present: neither missing nor, in a float column, NaN."""
    keep = None
    for column in map(_values, rows.columns):
        present = pc.is_valid(column)
        if pa.types.is_floating(column.type):
            present = pc.and_(present, pc.invert(pc.fill_null(pc.is_nan(column), False)))
        keep = present if keep is None else pc.and_(keep, present)
    return rows if keep is None or pc.all(keep).as_py() is not False else rows.filter(keep)


def _zero_one(y: pa.ChunkedArray, outcome: str, path: Path) -> np.ndarray:
    """Which rows have the event (the outcome is 1 or true); an outcome other than 0/1 is refused."""
    if not (pa.types.is_boolean(y.type) or pa.types.is_integer(y.type) or pa.types.is_floating(y.type)):
        raise StudyError(f"{relative(path)}: the outcome {outcome} is {y.type}, not 0/1 or true/false; "
                         "give a 0/1 column")
    values = y.to_numpy().astype(float)
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise StudyError(f"{relative(path)}: the outcome {outcome} holds {bad[0]:g}, not only 0 and 1; give a 0/1 "
                         "column (the cells count events out of trials from 0/1 rows)")
    return values == 1


def _codes(column: pa.ChunkedArray, seen: list[pa.Array], j: int) -> np.ndarray:
    """Each row's position in ``seen[j]``, the column's values so far, to which new values are added."""
    column = _values(column)
    found = pc.index_in(column, value_set=seen[j])
    if found.null_count:
        new = pc.unique(column.filter(pc.is_null(found)))
        seen[j] = pa.concat_arrays([seen[j], new.combine_chunks() if isinstance(new, pa.ChunkedArray) else new])
        found = pc.index_in(column, value_set=seen[j])
    return found.to_numpy().astype(np.int64)
