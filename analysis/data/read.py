"""Read a raw table as text, exactly as the user sees it, with the rows numbered as they see them.

Every cell is kept as text (stripped; empty cells missing) so that a validation message can quote
the value as it is in the file; types are checked and converted afterwards, from the dictionary.
The frame's index is the row number in the file: the spreadsheet row for Excel, the line for CSV
(a quoted cell spanning several lines would shift the CSV numbering; such files are rare here).

Files are read, never written: raw data belong to the people who made them. Before a file is read
whole, its first bytes say whether it is what its name says (a PNG, a PDF or a workbook named .csv
is refused as what it is, without reading the rest), and a message quotes at most a short,
printable excerpt of a file's content (`excerpt`).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import mmap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from analysis.errors import StudyError
from analysis.paths import relative

EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
HEAD_ROWS = 30  # rows kept to suggest the header row when columns are not found
ISO_DATE = "%Y-%m-%d"
SNIFF_BYTES = 8192  # the first bytes, read to tell what a file is before reading it whole
EXCERPT = 60  # the most characters of a file's content that a message quotes

# What a file is, from its first bytes (its magic number), and what to do about it. A ZIP archive
# is told apart by its contents (ZIP_CONTENTS): a .xlsx workbook is one.
EXPORT = "export the table itself as CSV or .xlsx and point {key}.file at that file"
MAGIC = {
    b"\x89PNG\r\n\x1a\n": ("a PNG image", EXPORT),
    b"\xff\xd8\xff": ("a JPEG image", EXPORT),
    b"GIF8": ("a GIF image", EXPORT),
    b"%PDF-": ("a PDF document", EXPORT),
    b"PK\x03\x04": ("a ZIP archive", "extract the table from it and point {key}.file at the extracted file"),
    b"PK\x05\x06": ("a ZIP archive", "extract the table from it and point {key}.file at the extracted file"),
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": ("an old-format Office file (an Excel .xls workbook?)",
                                          "open it in Excel and save it as .xlsx or CSV"),
    b"\x1f\x8b": ("a gzip-compressed file", "decompress it (gunzip) and point {key}.file at the result"),
    b"PAR1": ("a Parquet file", EXPORT),
    b"SQLite format 3\x00": ("an SQLite database", EXPORT),
}
XLSX = "an Excel workbook (.xlsx)"
ZIP_CONTENTS = {
    "xl/": (XLSX, "give it a name ending in .xlsx and point {key}.file at it"),
    "word/": ("a Word document (.docx)", EXPORT),
    "ppt/": ("a PowerPoint presentation (.pptx)", EXPORT),
}
NUL_BYTES = ("binary data (it holds NUL bytes)", "check that {key}.file is the table's file; " + EXPORT)
TEXT = ("text (a CSV or text table?)", "give it a name ending in .csv (or .tsv, .txt) and point {key}.file at it")
# Byte-order marks of the encodings whose text is full of NUL bytes, UTF-32's first: UTF-16's
# little-endian mark is the start of UTF-32's.
WIDE_BOMS = {codecs.BOM_UTF32_LE: "utf-32", codecs.BOM_UTF32_BE: "utf-32",
             codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16"}


@dataclass(frozen=True)
class HiddenCell:
    """An Excel cell that reads as empty but is not: part of a merged range, or a formula whose
    value was never saved. Validation reports it as what it is when its column is declared."""

    row: int  # the spreadsheet's row number
    column: str  # the column's name in the header
    rule: str
    problem: str
    fix: str


@dataclass
class RawTable:
    """One raw table as read: text cells, columns as named in the file."""

    path: Path
    frame: pd.DataFrame  # index: row number in the file; columns: the file's names
    header_row: int
    sheet: str | None = None
    head: list[list[str]] = field(default_factory=list)  # the first rows, to find a misplaced header
    hidden: list[HiddenCell] = field(default_factory=list)  # Excel cells that read as empty but are not

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
        _expect(path, XLSX, encoding, study_key)
        table = _read_excel(path, sheet, header_row, date_format or ISO_DATE, study_key)
    elif suffix in TEXT_SUFFIXES:
        sep = TEXT_SUFFIXES[suffix]
        _expect(path, "a TSV table" if sep == "\t" else "a CSV table", encoding, study_key)
        table = _read_text(path, encoding, header_row, sep, study_key)
    else:
        known = ", ".join(sorted([*EXCEL_SUFFIXES, *TEXT_SUFFIXES]))
        raise StudyError(f"{relative(path)}: files of type '{suffix or '(none)'}' cannot be read (known: {known}); "
                         f"save the table as CSV or .xlsx and point {study_key}.file at it")
    if table.frame.empty and len(table.frame.columns):
        # Said once, here: every check after it would fail for every column and every rule. (A
        # header row without a single name is a misplaced header, which validation finds.)
        what = "sheet" if table.sheet is not None else "file"
        raise StudyError(f"{table.where}: the {what} has a header (row {header_row}) but no rows below it (rule: "
                         f"not_empty); add the table's rows, or check {study_key}.file and {study_key}.header_row")
    return table


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """Text from a file as a message may quote it: characters a terminal would act on or could not
    show (control characters, undecodable bytes) as '?', and at most `limit` characters."""
    clean = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in text[: limit + 1])
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _expect(path: Path, wanted: str, encoding: str, study_key: str) -> None:
    """Refuse, from its first bytes, a file that is not what its name says (`wanted`): an image,
    a PDF, another Office file or binary data named .csv, or text named .xlsx, is named as what it
    looks like; the rest of the file is not read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:  # the error's text only: nothing of the file is quoted
        raise StudyError(f"{relative(path)}: cannot be read ({error.strerror}; rule: readable file); check the "
                         f"file's permissions, or point {study_key}.file at a readable copy") from None
    declared = codecs.lookup(encoding).name  # utf-16, utf-16-le, utf-32-be...
    for bom, wide in WIDE_BOMS.items():
        if head.startswith(bom):
            if wanted != XLSX and declared.startswith(wide):
                return
            raise StudyError(
                f"{relative(path)}: the file is {wide.upper()} text (it starts with a {wide.upper()} byte-order "
                f"mark; rule: encoding); set `encoding: {wide}` under {study_key} in the study file"
                + ("" if wanted != XLSX else ", and give the file a name ending in .csv"))
    kind, fix = _looks_like(path, head)
    if wanted == XLSX and kind is None:
        kind, fix = TEXT
    if kind == NUL_BYTES[0] and wanted != XLSX and declared.startswith(("utf-16", "utf-32")):
        return  # UTF-16 or UTF-32 declared, without a byte-order mark: its text is full of NUL bytes
    if kind is not None and kind != wanted:
        raise StudyError(f"{relative(path)}: this file looks like {kind}, not {wanted} (its first bytes say so; "
                         f"rule: file format); {fix.format(key=study_key)}")


def _looks_like(path: Path, head: bytes) -> tuple[str | None, str]:
    """What the first bytes show a file to be, and what to do (None: nothing but text)."""
    for magic, (kind, fix) in MAGIC.items():
        if head.startswith(magic):
            return _zip_contents(path) if magic.startswith(b"PK") else (kind, fix)
    if b"\x00" in head:
        return NUL_BYTES
    return None, ""


def _zip_contents(path: Path) -> tuple[str, str]:
    """A ZIP archive by what it holds: a workbook, a document, or an archive of something else."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()  # from the archive's directory, at its end: nothing is extracted
    except (zipfile.BadZipFile, OSError):
        names = []
    for folder, kind in ZIP_CONTENTS.items():
        if any(name.startswith(folder) for name in names):
            return kind
    return MAGIC[b"PK\x03\x04"]


def _decode(path: Path, data: bytes, encoding: str, study_key: str) -> str:
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
            f"valid {encoding}; value '{excerpt(snippet)}'; rule: encoding); {advice}"
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
    fast = _read_text_arrow(_mapped(path), encoding, header_row, sep)
    if fast is not None:
        frame, head = fast
        return RawTable(path, frame, header_row, None, head)
    return _read_text_pandas(path, path.read_bytes(), encoding, header_row, sep, study_key)


def _mapped(path: Path) -> bytes | mmap.mmap:
    """The file's bytes as the operating system's cache holds them, mapped rather than copied: copying 400 MB
    into new memory took 0.35 s of system time, mapping it 0.01 s. Read-only; unmapped when unused."""
    with open(path, "rb") as handle:
        if not handle.seek(0, io.SEEK_END):
            return b""  # an empty file cannot be mapped
        return mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                         prot=mmap.PROT_READ)


# Encodings in which ASCII bytes are the same characters: a file of ASCII bytes declared in one of
# them reads the same whatever the declaration (UTF-8 files with other characters, Arrow checks).
ASCII_COMPATIBLE = {"utf-8", "utf-8-sig", "ascii", "cp1252", "iso8859-1", "iso8859-15"}  # codecs.lookup names
# Bytes per block of Arrow's reader: a block that fits the processor's cache is parsed faster (a million
# patients' 137 MB: 1.0 s of CPU in 16 MB blocks, 0.65 s in 4 MB blocks)
ARROW_BLOCK = 1 << 22


def _read_text_arrow(data: bytes | mmap.mmap, encoding: str, header_row: int,
                     sep: str) -> tuple[pd.DataFrame, list[list[str]]] | None:
    """The file's cells and first rows as `_read_text_pandas` gives them, read by Arrow's multithreaded
    CSV reader; None when this file might read differently, and the pandas path (whose messages say
    what is wrong) must read it.

    Why: decoding a file in Python and parsing it with pandas took 13 s for a study of a million
    patients (137 MB) and 3.6 million suggestions (260 MB); Arrow reads both in under a second. It
    is used only where it reads exactly what pandas reads: a known ASCII-compatible encoding (UTF-8,
    whose validity Arrow checks, or ASCII bytes), a header of distinct, non-empty names, every row
    with as many cells as the header (Arrow refuses others), and one row per line below the header,
    which a quoted line break would break. A blank line is a row of empty cells to both (Arrow is told not
    to skip it), dropped with its number.
    """
    declared = codecs.lookup(encoding).name
    if declared not in ASCII_COMPATIBLE:
        return None
    ascii_only = bool(np.frombuffer(data, dtype=np.uint8).max(initial=0) < 0x80)
    if not ascii_only and declared not in ("utf-8", "utf-8-sig"):
        return None
    buffer = pa.py_buffer(data)
    if data[:len(codecs.BOM_UTF8)] == codecs.BOM_UTF8:  # not part of the first column's name
        buffer = buffer.slice(len(codecs.BOM_UTF8))
    head_end = 0
    for _ in range(HEAD_ROWS):
        head_end = data.find(b"\n", head_end) + 1
        if head_end == 0:
            head_end = len(data)
            break
    try:
        head_text = data[:head_end].decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    # newline=None: a line ending in a carriage return alone (old Mac files) ends a row, as it does for
    # Arrow and pandas; csv refused such text
    head = list(csv.reader(io.StringIO(head_text, newline=None), delimiter=sep))
    if len(head) < header_row:
        return None
    header = head[header_row - 1]
    if not all(header) or len(set(header)) != len(header):
        return None
    quoted = data.find(b'"') >= 0  # (`in` would compare a mapped file's bytes one by one)
    try:
        table = pa_csv.read_csv(
            buffer,
            read_options=pa_csv.ReadOptions(column_names=header, skip_rows=header_row, block_size=ARROW_BLOCK),
            parse_options=pa_csv.ParseOptions(delimiter=sep, newlines_in_values=quoted, ignore_empty_lines=False),
            # ASCII bytes are valid UTF-8: Arrow's check of every cell is skipped for them
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.large_string()),
                                                  null_values=[""], strings_can_be_null=True,
                                                  check_utf8=not ascii_only),
            # the C library's allocator: with Arrow's default (mimalloc) the kernel spent 1 s per table on
            # page faults (0.9 s of system time for 137 MB, 0.2 s with malloc; user time the same)
            memory_pool=pa.system_memory_pool())
    except pa.ArrowInvalid:
        return None
    # Without a quote, each line is a row (blank ones too); with one, a quoted line break would join two
    # lines into one row and shift the numbers of those below, so the lines are counted (0.2 s for 400 MB)
    if quoted and table.num_rows != _lines(data) - header_row:
        return None
    trim = pc.ascii_trim_whitespace if ascii_only else pc.utf8_trim_whitespace  # the same on ASCII text
    # In ASCII text without tabs, vertical tabs or form feeds, the only white space a cell can start or
    # end with is a space: a column without one is left as it is, not copied (a blank cell was read as
    # missing already). Copying every column took 0.3 s and 400 MB for a million patients.
    spaces_only = ascii_only and not any(data.find(byte) >= 0 for byte in (b"\t", b"\v", b"\f"))
    columns = [_blank_missing(trim(column)) if not spaces_only or _padded(column) else column
               for column in table.columns]
    return _text_frame(columns, header, header_row + 1), head


def _lines(data: bytes | mmap.mmap) -> int:
    """Lines of text: line feeds, and a last line without one. Counted 16 MB at a time, as a mapped file has
    no `count`."""
    block = 1 << 24
    feeds = sum(data[start:start + block].count(b"\n") for start in range(0, len(data), block))
    return feeds + (len(data) > 0 and data[-1:] != b"\n")


def _padded(cells: pa.ChunkedArray) -> bool:
    """Whether a cell starts or ends with a space (or a missing cell holds bytes that do: none of Arrow's).

    Read from the cells' first and last bytes, found from the offsets of the text column: Arrow's
    starts_with and ends_with write two flags per cell, and took 0.5 s for a million patients and their
    suggestions (this: 0.3 s).
    """
    for chunk in cells.chunks:
        _, offsets, values = chunk.buffers()
        if values is None:
            continue
        ends = np.frombuffer(offsets, dtype=np.int64)[chunk.offset: chunk.offset + len(chunk) + 1]
        starts, ends = ends[:-1], ends[1:]
        filled = ends > starts
        text = np.frombuffer(values, dtype=np.uint8)
        if (text[starts[filled]] == ord(" ")).any() or (text[ends[filled] - 1] == ord(" ")).any():
            return True
    return False


def _read_text_pandas(path: Path, data: bytes, encoding: str, header_row: int, sep: str,
                      study_key: str) -> RawTable:
    text = _decode(path, data, encoding, study_key)
    head = list(itertools.islice(csv.reader(io.StringIO(text, newline=None), delimiter=sep), HEAD_ROWS))
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
        sheet_xml = worksheet._worksheet_path  # the sheet's part in the archive, for `_hidden_cells`
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
    hidden = _hidden_cells(path, sheet_xml, header, header_row, len(rows))
    return RawTable(path, _tidy(frame), header_row, title, head, hidden)


MERGED_FIX = "unmerge the cells and fill in each one (a merged cell's value is in its first cell only)"
FORMULA_FIX = ("open and save the workbook in Excel (or LibreOffice), which saves each formula's value; or replace "
               "the formulas by their values")


def _hidden_cells(path: Path, sheet_xml: str, header: list, header_row: int, last_row: int) -> list[HiddenCell]:
    """Cells below the header that read as empty but are not: the covered cells of a merged range
    and formulas whose value was never saved (a workbook written by a program that does not
    calculate). Read from the sheet's XML, streamed: openpyxl's read-only mode, which keeps memory
    flat on large sheets, keeps neither merged ranges nor formulas."""
    from openpyxl.utils import get_column_letter, range_boundaries
    from openpyxl.utils.cell import column_index_from_string, coordinate_from_string

    def named(row: int, column: int) -> str | None:
        name = header[column - 1] if column <= len(header) else None
        return name.strip() if name is not None and header_row < row <= last_row else None

    found = []
    with zipfile.ZipFile(path) as archive, archive.open(sheet_xml) as source:
        for _, element in ElementTree.iterparse(source):
            tag = element.tag.rpartition("}")[2]
            if tag == "c":
                parts = {child.tag.rpartition("}")[2]: child.text for child in element}
                # t="str" with an empty value is a formula whose saved result is the empty string
                if "f" in parts and not parts.get("v") and element.get("t") != "str" and element.get("r"):
                    letters, row = coordinate_from_string(element.get("r"))
                    name = named(row, column_index_from_string(letters))
                    if name is not None:
                        found.append(HiddenCell(row, name, "formula_value",
                                                f"formula with no saved value at {element.get('r')}", FORMULA_FIX))
                element.clear()
            elif tag == "row":
                element.clear()
            elif tag == "mergeCell":
                first_column, first_row, last_column, end_row = range_boundaries(element.get("ref"))
                first = f"{get_column_letter(first_column)}{first_row}"
                span = f"{first}-{get_column_letter(last_column)}{end_row}"
                problem = f"merged cell at {span}: only {first} holds a value, the others read as empty"
                # rows past the sheet's last are not read: a range may claim a million of them
                for row in range(first_row, min(end_row, last_row) + 1):
                    for column in range(first_column, last_column + 1):
                        name = named(row, column)
                        if name is not None and (row, column) != (first_row, first_column):
                            found.append(HiddenCell(row, name, "merged_cell", problem, MERGED_FIX))
    return found


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
    columns = [_blank_missing(pc.utf8_trim_whitespace(pa.array(frame.iloc[:, i], type=pa.string(), from_pandas=True)))
               for i in range(frame.shape[1])]
    return _text_frame(columns, list(frame.columns), frame.index.start)


def _blank_missing(cells: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Stripped cells with the empty ones missing."""
    blank = pc.equal(cells, "")
    return pc.if_else(blank, pa.scalar(None, cells.type), cells) if pc.any(blank).as_py() else cells


def _text_frame(columns: list, names: list, first_row: int) -> pd.DataFrame:
    """Text cells as a frame: names stripped, rows numbered from `first_row` (the file's number of
    the first), rows with nothing in them dropped (the others keep their numbers)."""
    rows = len(columns[0]) if columns else 0
    filled = np.zeros(rows, dtype=bool)
    for cells in columns:
        if cells.null_count == 0:
            filled[:] = True
            break
        filled |= pc.is_valid(cells).to_numpy(zero_copy_only=False)
    # Positional names while building: a sheet may repeat a column name, which Arrow's tables allow
    # but their conversion to pandas does not.
    frame = pa.table(columns, names=[str(i) for i in range(len(columns))]).to_pandas() if columns \
        else pd.DataFrame(index=range(rows))
    frame.columns = pd.Index([str(name).strip() for name in names])
    frame.index = pd.RangeIndex(first_row, first_row + rows)
    return frame if filled.all() else frame.loc[filled]


def guess_header_row(table: RawTable, expected: list[str]) -> int | None:
    """The row among the first few that holds the most of the expected column names (None if none)."""
    wanted = {name.strip().lower() for name in expected}
    best, best_hits = None, 1  # one matching word is chance; ask for two
    for number, row in enumerate(table.head, start=1):
        hits = len(wanted & {str(cell).strip().lower() for cell in row})
        if hits > best_hits:
            best, best_hits = number, hits
    return best
