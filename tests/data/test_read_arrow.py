"""Arrow's CSV reader reads a table exactly as pandas' does, or steps aside.

`read._read_text_arrow` is the fast path for large files; `read._read_text_pandas` is the reference
(every message the validation tests expect comes from it). On each file below both are run and must
give the same cells, row numbers and first rows (a blank line is a dropped row whose number is kept);
the files that could read differently (quoted line breaks, ragged rows, repeated or empty column
names, undecodable bytes) must be left to pandas.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.data import read
from analysis.errors import StudyError

CASES = {
    # name: (file content, encoding, header row, read by Arrow?)
    "plain": ("a,b,c\n1,2,3\n4,5,6\n", "utf-8", 1, True),
    "spaces around cells and names": ("a , b,c\n 1 ,  ,3\n , ,\n4,5,6", "utf-8", 1, True),
    "windows line ends": ("a,b\r\n1,2\r\n3, 4 \r\n", "utf-8", 1, True),
    "byte-order mark": ("\ufeffa,b\n1,2\n", "utf-8", 1, True),
    "accented text": ("a,b\ncafé,2\n  naïve\u00a0,3\n", "utf-8", 1, True),
    "ascii declared cp1252": ("a,b\nx,1\n", "cp1252", 1, True),
    "header on row 2": ("title line\na,b\n1,2\n", "utf-8", 2, True),
    "quoted commas and empty quotes": ('a,b\n"x, y",2\n"",""\n', "utf-8", 1, True),
    "blank lines": ("a,b\n1,2\n\n3,4\n\n", "utf-8", 1, True),
    "blank lines, one column": ("a\n1\n\n2\n\r\n", "utf-8", 1, True),
    "blank lines before the header": ("title\n\na,b\n1,2\n\n3,4\n", "utf-8", 3, True),
    "blank line and a quoted comma": ('a,b\n"x, y",2\n\n3,4\n', "utf-8", 1, True),
    "old Mac line ends": ("a,b\r1,2\r\r 3,4 \r", "utf-8", 1, True),
    "quoted line break": ('a,b\n"two\nlines",3\n4,5\n', "utf-8", 1, False),
    "short row": ("a,b,c\n1,2\n3,4,5\n", "utf-8", 1, False),
    "repeated name": ("a,a,b\n1,2,3\n", "utf-8", 1, False),
    "empty name": ("a,,b\n1,2,3\n", "utf-8", 1, False),
    "utf-8 declared cp1252": ("a,b\ncafé,2\n", "cp1252", 1, False),
    "utf-16": ("a,b\n1,2\n", "utf-16", 1, False),
}


@pytest.mark.parametrize("name", CASES)
def test_arrow_reads_what_pandas_reads_or_leaves_it_to_pandas(tmp_path, name):
    content, encoding, header_row, by_arrow = CASES[name]
    path = tmp_path / "table.csv"
    path.write_bytes(content.encode("utf-16" if encoding == "utf-16" else "utf-8"))
    data = path.read_bytes()
    fast = read._read_text_arrow(data, encoding, header_row, ",")
    assert (fast is not None) == by_arrow
    mapped = read._read_text_arrow(read._mapped(path), encoding, header_row, ",")  # as read_raw reads the file
    assert (mapped is None) == (fast is None)
    if fast is not None:
        pd.testing.assert_frame_equal(mapped[0], fast[0])
        assert mapped[1] == fast[1]
    try:
        reference = read._read_text_pandas(path, data, encoding, header_row, ",", "tables.patients")
    except StudyError as error:  # refused: read_raw says the same
        with pytest.raises(StudyError) as raised:
            read.read_raw(path, encoding=encoding, header_row=header_row, study_key="tables.patients")
        assert str(raised.value) == str(error) and fast is None
        return
    if fast is not None:
        frame, head = fast
        pd.testing.assert_frame_equal(frame, reference.frame, check_index_type=False)
        assert head == reference.head
    table = read.read_raw(path, encoding=encoding, header_row=header_row)
    pd.testing.assert_frame_equal(table.frame, reference.frame, check_index_type=False)


def test_an_empty_file_is_said_to_have_no_header(tmp_path):
    """Zero bytes cannot be mapped into memory: they are read as no rows, and the message says so."""
    path = tmp_path / "table.csv"
    path.write_bytes(b"")
    with pytest.raises(StudyError, match="the file has only 0 row\\(s\\), so no header on row 1"):
        read.read_raw(path)


def test_row_numbers_are_the_file_lines_when_rows_are_dropped(tmp_path):
    """A row of blank cells is dropped; the rows after it keep their line numbers."""
    path = tmp_path / "table.csv"
    path.write_text("id,x\nA,1\n , \nB,2\n", encoding="utf-8")
    frame = read.read_raw(path).frame
    assert frame.index.tolist() == [2, 4] and frame["id"].tolist() == ["A", "B"]
