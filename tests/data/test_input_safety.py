"""Hostile or mistaken input: each case is a clear refusal (a StudyError that names the file, row,
column, value and rule, and says what to do, with nothing written) or a correct result, never a
hang, a memory blow-up, raw bytes on the terminal or a quoted secret. Every file is written small
in tmp_path."""

from __future__ import annotations

import gzip
import io
import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml

import analysis.config
from analysis.cli import main
from analysis.config import load_study
from analysis.data import prepare
from analysis.data.read import read_raw
from analysis.data.validate import validate_study
from analysis.errors import StudyError
from tests.conftest import minimal_spec, set_dotted


def toy(tmp_path, data: str | bytes | None = None, name: str = "raw.csv", **changes) -> analysis.config.Study:
    """The smallest study (tests/conftest.py) on a data file of our own, with dotted keys changed."""
    spec = set_dotted(minimal_spec(tmp_path), changes)
    if data is not None:
        path = tmp_path / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        spec["tables"]["patients"]["file"] = str(path)
    study = tmp_path / "toy.yml"
    study.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_study(study)


def refused(study) -> str:
    with pytest.raises(StudyError) as caught:
        validate_study(study)
    return str(caught.value)


def printable(message: str) -> bool:
    """Nothing a terminal would act on or show as garbage: no control characters, no U+FFFD."""
    return all(c.isprintable() or c == "\n" for c in message) and "\ufffd" not in message


# ---------------------------------------------------------------------------------------------
# The study file


def yaml_bomb(levels: int = 9) -> str:
    """A 'billion laughs': each level lists the previous one nine times (9**9 strings once expanded)."""
    lines = ["lol0: &lol0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once_in_little_memory(write_study, tmp_path):
    text = yaml.safe_dump(minimal_spec(tmp_path), sort_keys=False)
    # Under `values`, whose codes may be anything: today it loads in a blink and explodes later,
    # when the study's parameters are hashed.
    bomb = "".join(f"        {line}\n" for line in yaml_bomb().splitlines())
    text = text.replace("  patients:\n", f"  patients:\n    values:\n      event:\n{bomb}", 1)
    path = write_study(text=text)
    assert len(text) < 4000
    line = text.splitlines().index("        lol0: &lol0 [x, x, x, x, x, x, x, x, x]") + 1
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(StudyError) as caught:
            load_study(path)
        seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1 and peak < 5_000_000
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}: anchors and aliases (&, *) are not allowed in a study file")
    assert "write the value out in full" in message


@pytest.mark.parametrize("text", [
    "title: &t Toy study\n",  # an anchor alone
    "base: &base {label: Before}\nother: *base\n",
    "base: &base {label: Before}\nother: {<<: *base}\n",  # a merge key is an alias too
])
def test_any_anchor_or_alias_is_refused(write_study, text):
    with pytest.raises(StudyError) as caught:
        load_study(write_study(text=text))
    assert "anchors and aliases (&, *) are not allowed in a study file" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Dates that cannot have happened, and day counts that cannot be right

DATES = "id,admitted,discharged,event\n1,2020-03-01,2020-03-05,true\n2,2021-03-01,{discharged},false\n"
DISCHARGED = {"tables.patients.columns.discharged": {"type": "date"}}


def test_a_date_in_the_future_is_an_error_naming_the_row(tmp_path):
    message = refused(toy(tmp_path, DATES.format(discharged="2099-12-31"), **DISCHARGED))
    first = message.splitlines()[0]
    assert f"{tmp_path / 'raw.csv'}, row 3, column 'discharged', value '2099-12-31': " in first
    assert "is after today" in first and "(rule: not_after_extraction)" in first
    assert "give `extraction_date`" in message  # what to do when the date is right after all


def test_a_date_after_the_extraction_date_is_an_error(tmp_path):
    study = toy(tmp_path, DATES.format(discharged="2021-04-02"), extraction_date="2021-03-31", **DISCHARGED)
    assert study.extraction_date.isoformat() == "2021-03-31"
    message = refused(study)
    assert "row 3, column 'discharged', value '2021-04-02': the date is after the data were extracted " \
           "(2021-03-31, extraction_date in" in message
    # the day of extraction itself is allowed
    validate_study(toy(tmp_path, DATES.format(discharged="2021-03-31"), extraction_date="2021-03-31", **DISCHARGED))


STAY = {**DISCHARGED, "tables.patients.derive": {"stay": {"days_between": ["admitted", "discharged"]}}}


def test_a_negative_day_count_is_an_error_naming_the_row(tmp_path):
    message = refused(toy(tmp_path, DATES.format(discharged="2021-02-27"), **STAY))
    assert ("row 3, columns 'admitted', 'discharged', value '2021-03-01, 2021-02-27': stay (days from admitted "
            "to discharged) is -2, below 0 (rule: days_between)") in message
    assert "correct one of the two dates" in message


def test_a_day_count_above_its_maximum_is_an_error_unless_the_derivation_allows_it(tmp_path):
    message = refused(toy(tmp_path, DATES.format(discharged="2022-04-05"), **STAY))
    assert ("row 3, columns 'admitted', 'discharged', value '2021-03-01, 2022-04-05': stay (days from admitted "
            "to discharged) is 400, above 365 (rule: days_between)") in message
    assert "tables.patients.derive.stay.max" in message
    study = toy(tmp_path, DATES.format(discharged="2022-04-05"), **STAY, **{"tables.patients.derive.stay.max": 400})
    assert validate_study(study).frames["patients"]["discharged"].notna().all()


def test_the_plausibility_limits_leave_the_parameters_hash_alone(tmp_path):
    # They accept or refuse data but change no result: the committed ledgers and figures, which
    # record the hash, stay as they are.
    plain = toy(tmp_path, **STAY).parameters_sha256()
    limited = toy(tmp_path, extraction_date="2030-01-31", **STAY, **{"tables.patients.derive.stay.max": 400})
    assert limited.parameters_sha256() == plain
    assert toy(tmp_path, **{**STAY, "title": "Another"}).parameters_sha256() != plain


def test_max_is_for_day_counts_only(write_study):
    path = write_study({"tables.patients.derive": {"gain": {"difference": ["id", "id"], "max": 3}}})
    with pytest.raises(StudyError, match="`max` is for `days_between`"):
        load_study(path)


# ---------------------------------------------------------------------------------------------
# Files that are not the table they claim to be


def test_a_file_with_a_header_but_no_rows_is_said_so_once(reference_copy):
    header = reference_copy.patients.read_text(encoding="utf-8").splitlines()[0]
    reference_copy.patients.write_text(header + "\n\n", encoding="utf-8")
    with pytest.raises(StudyError) as caught:
        prepare(reference_copy.study)
    message = str(caught.value)
    assert message.count("the file has a header") == 1 and "problems" not in message
    assert message.startswith(f"{reference_copy.patients}: the file has a header (row 1) but no rows below it")
    assert not reference_copy.output.exists()


def workbook_bytes() -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["id", "admitted", "event"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def zip_bytes(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "<xml/>")
    return buffer.getvalue()


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"id": ["1"]}).to_parquet(buffer)
    return buffer.getvalue()


NOISE = bytes(range(256)) * 8  # every byte, terminal escapes and invalid UTF-8 included

MAGIC = {
    "a PNG image": b"\x89PNG\r\n\x1a\n" + NOISE,
    "a JPEG image": b"\xff\xd8\xff\xe0" + NOISE,
    "a PDF document": b"%PDF-1.7\n" + NOISE,
    "an Excel workbook (.xlsx)": workbook_bytes(),
    "a Word document (.docx)": zip_bytes("word/document.xml"),
    "a ZIP archive": zip_bytes("data.csv"),
    "an old-format Office file (an Excel .xls workbook?)": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + NOISE,
    "a gzip-compressed file": gzip.compress(b"id,admitted,event\n1,2020-03-01,true\n"),
    "a Parquet file": parquet_bytes(),
    "binary data (it holds NUL bytes)": b"id,admitted,event\n1,2020-03-01\x00\x00\x00," + NOISE,
}


@pytest.mark.parametrize("kind", MAGIC)
def test_a_binary_file_named_csv_is_named_for_what_it_is(tmp_path, kind):
    message = refused(toy(tmp_path, MAGIC[kind]))
    assert message.startswith(f"{tmp_path / 'raw.csv'}: this file looks like {kind}, not a CSV table")
    assert "encoding" not in message  # an encoding would not make it readable
    assert printable(message)


@pytest.mark.parametrize("kind", ["text (a CSV or text table?)", "a PNG image",
                                  "an old-format Office file (an Excel .xls workbook?)"])
def test_a_file_named_xlsx_that_is_not_a_workbook_is_named_for_what_it_is(tmp_path, kind):
    data = MAGIC.get(kind, b"id,admitted,event\n1,2020-03-01,true\n")
    message = refused(toy(tmp_path, data, name="raw.xlsx"))
    assert message.startswith(f"{tmp_path / 'raw.xlsx'}: this file looks like {kind}, not an Excel workbook (.xlsx)")
    assert printable(message)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_are_recognised_by_their_byte_order_mark(tmp_path, encoding):
    text = "id,admitted,event\n1,2020-03-01,true\n2,2021-03-01,false\n"
    message = refused(toy(tmp_path, text.encode(encoding)))
    assert f"the file is {encoding.upper()} text (it starts with a {encoding.upper()} byte-order mark" in message
    assert f"set `encoding: {encoding}` under tables.patients" in message and "cp1252" not in message
    study = toy(tmp_path, text.encode(encoding), **{"tables.patients.encoding": encoding})
    assert validate_study(study).frames["patients"]["id"].tolist() == ["1", "2"]
    # without a byte-order mark, declared: its NUL bytes do not make it binary
    study = toy(tmp_path, text.encode(f"{encoding}-le"), **{"tables.patients.encoding": f"{encoding}-le"})
    assert validate_study(study).frames["patients"]["id"].tolist() == ["1", "2"]


def test_a_large_binary_file_is_refused_from_its_first_bytes(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # 50 MB, sparse: a PNG header, then nothing written
        handle.write(MAGIC["a PNG image"])
        handle.truncate(50_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(StudyError, match="looks like a PNG image"):
            read_raw(path, study_key="tables.patients")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_line_that_cannot_be_decoded_is_quoted_short_and_printable(tmp_path):
    line = b"2,2021-03-01,\x1b[2J\xff" + b"x" * 500 + b"\n"
    message = refused(toy(tmp_path, b"id,admitted,event\n1,2020-03-01,true\n" + line))
    assert "row 3: cannot be read as utf-8" in message and printable(message)
    quoted = message.split("value '", 1)[1].split("'", 1)[0]
    assert len(quoted) <= 60 and "x" * 30 in quoted


# ---------------------------------------------------------------------------------------------
# Excel cells that look empty but are not


def test_merged_cells_and_formulas_without_a_saved_value_are_named(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "admitted", "event", "ward", "score"])
    for row in (["1", "2020-03-01", "true", "north", 1], ["2", "2020-04-01", "true", "south", 2],
                ["3", "2021-03-01", "false", None, 3], ["4", "2021-04-01", "false", None, 4],
                ["5", "2021-05-01", "false", "north", "=SUM(E2:E5)"]):
        sheet.append(row)
    sheet.merge_cells("D3:D5")
    sheet.merge_cells("A8:B8")  # on a blank row below the table: not part of it, no problem
    path = tmp_path / "raw.xlsx"
    book.save(path)  # openpyxl saves formulas without calculating them
    study = toy(tmp_path, **{"tables.patients.file": str(path),
                             "tables.patients.columns.ward": {"type": "string"},
                             "tables.patients.columns.score": {"type": "number"}})
    message = refused(study)
    assert (f"{path} (sheet 'Sheet'), rows 4-5 (2 rows), column 'ward', value '(empty)': merged cell at D3-D5: "
            f"only D3 holds a value, the others read as empty (rule: merged_cell)") in message
    assert (f"{path} (sheet 'Sheet'), row 6, column 'score', value '(empty)': formula with no saved value at E6 "
            f"(rule: formula_value)") in message
    assert "unmerge the cells and fill in each one" in message
    assert "open and save the workbook in Excel (or LibreOffice), which saves each formula's value" in message
    assert "empty cell" not in message and message.startswith("3 problems")


# ---------------------------------------------------------------------------------------------
# Symbolic links and files the user should not see quoted


def test_a_symlinked_input_outside_the_repository_is_recorded_in_the_manifest(tmp_path):
    target = tmp_path / "elsewhere" / "patients.csv"
    target.parent.mkdir()
    target.write_text("id,admitted,event\n1,2020-03-01,true\n2,2021-03-01,false\n", encoding="utf-8")
    link = tmp_path / "data" / "patients.csv"
    link.parent.mkdir()
    link.symlink_to(target)
    manifest = prepare(toy(tmp_path, **{"tables.patients.file": str(link)})).manifest
    entry = next(e for e in manifest["inputs"] if e["role"] == "patients")
    assert entry["path"] == link.as_posix() and entry["rows"] == 2
    assert entry["symlink_to"] == target.as_posix() and entry["outside_repository"] is True
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"] == manifest["inputs"]


def test_a_file_that_is_not_the_declared_table_is_not_quoted(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tHash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n", encoding="utf-8")
    link = tmp_path / "patients.csv"
    link.symlink_to(secret)
    message = refused(toy(tmp_path, **{"tables.patients.file": str(link)}))
    assert "s3cr3t" not in message and "root:" not in message and "daemon" not in message
    assert "row 1 holds none of the declared columns (id, admitted, event)" in message
    assert "check that tables.patients.file is the table's file" in message


def test_the_file_s_columns_are_quoted_short_and_printable(tmp_path):
    wide = "\x1b[31m" + "y" * 300
    message = refused(toy(tmp_path, f"id,admitted,{wide}\n1,2020-03-01,true\n"))
    assert "column 'event': not found" in message and printable(message)
    assert "'?[31m" + "y" * 52 + "...'" in message  # 60 characters at most, escape characters shown as '?'


def test_an_unreadable_file_is_a_study_error_without_its_content(tmp_path, monkeypatch):
    study = toy(tmp_path, "id,admitted,event\nroot:secret\n")
    path, real_open = tmp_path / "raw.csv", Path.open

    def denied(self, *args, **kwargs):  # as for a root-only file (chmod would not stop tests run as root)
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    message = refused(study)
    assert message.startswith(f"{tmp_path / 'raw.csv'}: cannot be read (Permission denied")
    assert "secret" not in message


# ---------------------------------------------------------------------------------------------
# Listing studies


def test_list_shows_every_study_and_names_a_broken_one_with_its_first_problem(write_study, tmp_path, monkeypatch,
                                                                              capsys):
    write_study(name="good")
    write_study({"seeds.modles": 1}, name="broken")
    monkeypatch.setattr(analysis.config, "STUDIES_DIR", tmp_path)
    assert main(["list"]) == 2
    out, err = capsys.readouterr()
    broken = tmp_path / "broken.yml"
    assert f"  {'good':<16} Toy study [synthetic data]" in out
    assert f"  {'broken':<16} cannot be read: {broken}: key 'seeds.modles': unknown key" in out
    assert "notebooks (notebooks/pipeline.yml)" in out  # the listing goes on after a broken study
    lines = err.splitlines()
    assert lines[0] == f"error: 1 study file cannot be read: {broken}"
    assert lines[1].startswith(f"{broken}: key 'seeds.modles': unknown key (check its spelling")
