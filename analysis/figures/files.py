"""Write a figure's files, byte-stable and carrying their provenance, and read the provenance back.

Rerunning with nothing changed rewrites identical bytes: no creation dates (PDF CreationDate and
SVG Date are removed rather than pinned, so SOURCE_DATE_EPOCH plays no part), SVG ids from a fixed
salt, PNG text chunks from the provenance only.

The provenance (the caller's keys, e.g. notebook and parameter and data hashes, plus the plot
function and the hash of its code when the figure was drawn by this package) is one JSON object,
stored where each format keeps free text: PDF Keywords, SVG dc:description, a PNG tEXt chunk named
"provenance", the TIFF ImageDescription tag.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from analysis.figures._draw import drawn_by
from analysis.figures.style import house_style
from analysis.paths import atomic_write

PNG_KEY = "provenance"
TIFF_DESCRIPTION = 270
DUBLIN_CORE = "{http://purl.org/dc/elements/1.1/}"


def _pdf(figure: Figure, handle, name: str, text: str, dpi: int) -> None:
    figure.savefig(handle, format="pdf", dpi=dpi,
                   metadata={"Title": name, "Keywords": text, "CreationDate": None})


def _svg(figure: Figure, handle, name: str, text: str, dpi: int) -> None:
    figure.savefig(handle, format="svg", dpi=dpi, metadata={"Title": name, "Description": text, "Date": None})


def _png(figure: Figure, handle, name: str, text: str, dpi: int) -> None:
    figure.savefig(handle, format="png", dpi=dpi, metadata={"Title": name, PNG_KEY: text})


def _tiff(figure: Figure, handle, name: str, text: str, dpi: int) -> None:
    # Through PNG so the TIFF is RGB: print services and journal checkers reject an alpha channel.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    with Image.open(buffer) as image:
        image.convert("RGB").save(handle, format="TIFF", compression="tiff_lzw", dpi=(dpi, dpi),
                                  description=text)


WRITERS: dict[str, Callable] = {"pdf": _pdf, "svg": _svg, "png": _png, "tiff": _tiff}


def save(figure: Figure, folder: str | Path, name: str, provenance: dict,
         formats: Iterable[str] = ("pdf", "svg", "png"), dpi: int = 600) -> list[Path]:
    """Write `figure` as ``<folder>/<name>.<format>`` for each format and return the paths.

    formats: any of "pdf", "svg", "png", "tiff" (LZW-compressed RGB). dpi applies to PNG and TIFF.
    provenance: JSON-serialisable values under string keys, e.g. {"notebook": ..., "parameters_sha256":
    ..., "data_sha256": ...}; the figure's plot function and code hash are added when known.

    Every file is first written in full to a temporary sibling; only when all formats are written are
    they renamed into place, so a failure leaves the previous files as they were and no partial file.
    A save killed before its renames (kill -9 runs no cleanup) leaves its hidden `.<file>.<pid>-*.tmp`
    siblings; the next save into the folder removes them (`analysis.paths.atomic_write`).
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        raise ValueError(f"formats must be some of {sorted(WRITERS)}, not {list(formats)}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"a figure name is a plain file name without extension or folder, not {name!r}")
    text = provenance_text(figure, provenance)
    paths = [Path(folder) / f"{name}.{fmt}" for fmt in formats]
    with house_style(), ExitStack() as pending:
        for fmt, path in zip(formats, paths, strict=True):
            WRITERS[fmt](figure, pending.enter_context(atomic_write(path, "wb")), name, text, dpi)
    return paths


def provenance_text(figure: Figure, provenance: dict) -> str:
    """The JSON written into every file: sorted keys, ASCII only (PDF and PNG text stay Latin-1)."""
    if not isinstance(provenance, dict) or not all(isinstance(k, str) for k in provenance):
        raise TypeError("provenance must be a dict with string keys")
    record = dict(provenance)
    for key, value in drawn_by(figure).items():
        if record.setdefault(key, value) != value:
            raise ValueError(f"provenance[{key!r}] = {record[key]!r} contradicts the figure's own {value!r}")
    return json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def read_provenance(path: str | Path) -> dict:
    """The provenance stored in a PDF, SVG, PNG or TIFF written by `save`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        with Image.open(path) as image:
            text = image.text.get(PNG_KEY)
    elif suffix in {".tif", ".tiff"}:
        with Image.open(path) as image:
            text = image.tag_v2.get(TIFF_DESCRIPTION)
    elif suffix == ".svg":
        node = ET.parse(path).getroot().find(f".//{DUBLIN_CORE}description")
        text = None if node is None else node.text
    elif suffix == ".pdf":
        text = _pdf_info_string(path.read_bytes(), b"Keywords")
    else:
        raise ValueError(f"{path}: provenance is read from .pdf, .svg, .png or .tiff files only")
    if not text:
        raise ValueError(f"{path}: no provenance found (was it written by analysis.figures.save?)")
    return json.loads(text)


_PDF_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f",
                ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}


def _pdf_info_string(data: bytes, key: bytes) -> str | None:
    """One string entry of a PDF's document information dictionary (uncompressed, as matplotlib
    writes it): follow the trailer's /Info reference, then decode the literal string."""
    trailer = re.search(rb"trailer\s*<<.*?/Info\s+(\d+)\s+0\s+R", data[data.rfind(b"trailer"):], re.S)
    if trailer is None:
        return None
    obj = re.search(rb"(?m)^%d 0 obj\s*<<(.*?)>>\s*endobj" % int(trailer[1]), data, re.S)
    entry = obj and re.search(rb"/" + key + rb"\s*\(", obj[1])
    if not entry:
        return None
    source, i, depth, out = obj[1], entry.end(), 1, bytearray()
    while i < len(source):
        char = source[i]
        if char == ord("\\"):
            octal = re.match(rb"[0-7]{1,3}", source[i + 1:i + 4])
            if octal:
                out.append(int(octal[0], 8) & 0xFF)
                i += 1 + len(octal[0])
                continue
            out += _PDF_ESCAPES.get(source[i + 1], b"")
            i += 2
            continue
        depth += (char == ord("(")) - (char == ord(")"))
        if depth == 0:
            break
        out.append(char)
        i += 1
    raw = bytes(out)
    return raw[2:].decode("utf-16-be") if raw.startswith(b"\xfe\xff") else raw.decode("latin-1")
