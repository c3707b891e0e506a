"""Where the repository is, and how paths are written into notebooks, ledgers and reports."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_UMASK = os.umask(0)
os.umask(_UMASK)


def resolve(path: str | Path) -> Path:
    """A path from a study file or a notebook parameter, relative to the repository root."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def relative(path: str | Path) -> str:
    """The repository-relative form written into outputs (absolute only outside the repository).

    A relative path is taken as relative to the repository root, like every path in a study file,
    whatever the working directory (nbval runs notebooks in notebooks/).
    """
    path = resolve(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs):
    """Write a file through a temporary sibling and rename it into place.

    Readers see the old file or the new one, never half of one; on an exception the old file is
    left untouched and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
