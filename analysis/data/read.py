"""Read a raw table as text, exactly as the user sees it, with the rows numbered as they see them.

Every cell is kept as text (stripped; empty cells missing) so that a validation message can quote
the value as it is in the file; types are checked and converted afterwards, from the dictionary.
The frame's index is the row number in the file: the spreadsheet row for Excel, the line for CSV
(a quoted cell spanning several lines would shift the CSV numbering; such files are rare here).

Files are read, never written: raw data belong to the people who made them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.errors import StudyError
from analysis.paths import relative

EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
HEAD_ROWS = 30  # rows kept to suggest the header row when columns are not found
ISO_DATE = "%Y-%m-%d"


@dataclass
class RawTable:
    """One raw table as read: text cells, columns as named in the file."""

    path: Path
    frame: pd.DataFrame  # index: row number in the file; columns: the file's names
    header_row: int
    sheet: str | None = None
    head: list[list[str]] = field(default_factory=list)  # the first rows, to find a misplaced header

    @property
    def where(self) -> str:
        place = relative(self.path)
        return f"{place} (sheet '{self.sheet}')" if self.sheet is not None else place


def read_raw(path: Path, *, encoding: str = "utf-8", sheet: str | int | None = None, header_row: int = 1,
             date_format: str | None = None, study_key: str = "data.<table>") -> RawTable:
    """Read a CSV/TSV or Excel file into a `RawTable` (text cells, user's row numbers).

    `study_key` names where the file is described in the study file, for the messages.
    """
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(path, sheet, header_row, date_format or ISO_DATE, study_key)
    if suffix in TEXT_SUFFIXES:
        return _read_text(path, encoding, header_row, TEXT_SUFFIXES[suffix], study_key)
    known = ", ".join(sorted([*EXCEL_SUFFIXES, *TEXT_SUFFIXES]))
    raise StudyError(f"{relative(path)}: files of type '{suffix or '(none)'}' cannot be read (known: {known}); "
                     f"save the table as CSV or .xlsx and point {study_key}.file at it")


def _decode(path: Path, encoding: str, study_key: str) -> str:
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        start = data.rfind(b"\n", 0, error.start) + 1
        end = data.find(b"\n", error.start)
        snippet = data[start: end if end >= 0 else len(data)].decode(encoding, errors="replace").strip()
        guess = _guess_encoding(data, exclude=encoding)
        advice = (f"the file looks like {guess} text: set `encoding: {guess}` under {study_key} in the study file"
                  if guess else f"set {study_key}.encoding in the study file to the file's encoding")
        raise StudyError(
            f"{relative(path)}: row {line}: cannot be read as {encoding} (byte 0x{data[error.start]:02x} is not "
            f"valid {encoding}; value '{snippet[:80]}'; rule: encoding); {advice}"
        ) from None
    if not _is_utf8_name(encoding) and not data.isascii() and _decodes_as_utf8(data):
        # cp1252/latin-1 decode any bytes, so a UTF-8 file read as them does not fail: it turns
        # 'é' into 'Ã©'. Valid multi-byte UTF-8 is almost never produced by chance, so say so.
        raise StudyError(
            f"{relative(path)}: the file is UTF-8 text but the study file says encoding {encoding} "
            f"(accented letters would read wrongly, e.g. 'é' as 'Ã©'; rule: encoding); "
            f"set `encoding: utf-8` under {study_key} in the study file"
        )
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name


def _is_utf8_name(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in {"utf-8", "utf8", "utf-8-sig", "u8"}


def _decodes_as_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guess_encoding(data: bytes, exclude: str) -> str | None:
    if not _is_utf8_name(exclude) and _decodes_as_utf8(data):
        return "utf-8"
    for candidate in ("cp1252", "latin-1"):
        if candidate != exclude.lower():
            try:
                data.decode(candidate)
            except UnicodeDecodeError:
                continue
            return candidate
    return None


def _read_text(path: Path, encoding: str, header_row: int, sep: str, study_key: str) -> RawTable:
    text = _decode(path, encoding, study_key)
    head = list(itertools.islice(csv.reader(io.StringIO(text), delimiter=sep), HEAD_ROWS))
    if len(head) < header_row:
        raise StudyError(f"{relative(path)}: row {header_row}: the file has only {len(head)} row(s), so no header "
                         f"on row {header_row} (rule: header_row); check {study_key}.header_row in the study file")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                            skiprows=header_row - 1, header=0, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as error:
        raise StudyError(f"{relative(path)}: not a readable {'CSV' if sep == ',' else 'TSV'} table below row "
                         f"{header_row}: {str(error).strip()} (rule: file format)") from None
    frame.index = pd.RangeIndex(header_row + 1, header_row + 1 + len(frame))
    return RawTable(path, _tidy(frame), header_row, None, head)


def _read_excel(path: Path, sheet: str | int | None, header_row: int, date_format: str, study_key: str) -> RawTable:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        raise StudyError(f"{relative(path)}: cannot be opened as an Excel workbook (.xlsx): {error} "
                         f"(rule: file format); save it from Excel as .xlsx, or as CSV") from None
    try:
        names = book.sheetnames
        if sheet is None:
            worksheet = book.worksheets[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise StudyError(f"{relative(path)}: no sheet number {sheet} (0-based; the workbook has "
                                 f"{len(names)}: {', '.join(names)}); fix {study_key}.sheet in the study file")
            worksheet = book.worksheets[sheet]
        elif sheet in names:
            worksheet = book[sheet]
        else:
            raise StudyError(f"{relative(path)}: no sheet '{sheet}' (sheets: {', '.join(names)}); "
                             f"fix {study_key}.sheet in the study file")
        rows = [[_cell_text(value, date_format) for value in row]
                for row in worksheet.iter_rows(min_row=1, values_only=True)]
        title = worksheet.title
    finally:
        book.close()
    if len(rows) < header_row:
        raise StudyError(f"{relative(path)} (sheet '{title}'): row {header_row}: the sheet has only {len(rows)} "
                         f"row(s), so no header on row {header_row} (rule: header_row); check {study_key}.header_row")
    header = rows[header_row - 1]
    keep = [i for i, name in enumerate(header) if name is not None]
    body = rows[header_row:]
    frame = pd.DataFrame([[row[i] if i < len(row) else None for i in keep] for row in body],
                         columns=[header[i] for i in keep], dtype="str")
    frame.index = pd.RangeIndex(header_row + 1, header_row + 1 + len(body))
    head = [[cell or "" for cell in row] for row in rows[:HEAD_ROWS]]
    return RawTable(path, _tidy(frame), header_row, title, head)


def _cell_text(value, date_format: str) -> str | None:
    """An Excel cell as text the way the dictionary reads it (dates in the table's date format)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime(date_format)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    text = str(value).strip()
    return text or None


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip cells and column names, treat blank cells as empty, drop rows with nothing in them."""
    frame = frame.rename(columns=lambda name: str(name).strip())
    for column in frame.columns:
        stripped = frame[column].str.strip()
        frame[column] = stripped.where(stripped != "")
    return frame.loc[frame.notna().any(axis=1)]


def guess_header_row(table: RawTable, expected: list[str]) -> int | None:
    """The row among the first few that holds the most of the expected column names (None if none)."""
    wanted = {name.strip().lower() for name in expected}
    best, best_hits = None, 1  # one matching word is chance; ask for two
    for number, row in enumerate(table.head, start=1):
        hits = len(wanted & {str(cell).strip().lower() for cell in row})
        if hits > best_hits:
            best, best_hits = number, hits
    return best
