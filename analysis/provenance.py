"""Content hashes: the identity of files, parameters and code that results depend on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from analysis.paths import ROOT, relative

LOCK_FILE = ROOT / "requirements.lock"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(value) -> str:
    """Hash of a JSON-serialisable value, independent of key order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def files_digest(paths) -> dict[str, str]:
    """Repository-relative path -> sha256, sorted, for every file given."""
    return {relative(p): sha256_file(p) for p in sorted(Path(p) for p in paths)}


# The jobs above the notebooks in the layering (cli -> paper/verify/run -> ...): a change to them cannot
# change what a notebook computes, so it does not make the notebooks stale.
ABOVE_NOTEBOOKS = {"__main__.py", "cli.py", "paper", "verify.py", "bench.py", "environment.py"}


def code_digest() -> str:
    """One hash over the library's source, so that a change to a statistic reruns its notebooks."""
    package = ROOT / "analysis"
    files = sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in {".py", ".yml", ".csl"}
                   and "__pycache__" not in p.parts and p.relative_to(package).parts[0] not in ABOVE_NOTEBOOKS)
    return sha256_json(files_digest(files))
