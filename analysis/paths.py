"""Where the repository is, and how paths are written into notebooks, ledgers and reports.

Also how files are written safely: through a scratch file renamed into place (`atomic_write`), whose
name carries the writing process's id so that the next write into the folder can tell what a killed
process left from what a live one is writing; and one lock per output folder (`exclusive`), so that
two commands never write a study's files at once.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_UMASK = os.umask(0)
os.umask(_UMASK)
LOCK_NAME = ".pipeline.lock"
# `.<name>.<pid>-<random>.tmp`, optionally followed by the target's suffix (pandoc needs it to pick its writer)
_SCRATCH = re.compile(r"^\..+\.(\d+-[a-z0-9_]+)\.tmp(\.[A-Za-z0-9]+)?$")


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


def writer_gone(marker: str) -> bool:
    """Whether the process that named a scratch file or folder `...<pid>-<random>` has ended.

    A marker that names no process comes from a version that did not name it: its writer is gone too.
    """
    pid, dash, _ = marker.partition("-")
    if not (dash and pid.isdigit()):
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process, alive
        return False
    return False


def remove_stale_scratch(folder: Path) -> list[Path]:
    """Remove the scratch files in `folder` whose writer was killed before renaming them into place."""
    stale = []
    if folder.is_dir():
        for path in folder.iterdir():
            found = _SCRATCH.match(path.name)
            if found and path.is_file() and writer_gone(found[1]):
                path.unlink(missing_ok=True)
                stale.append(path)
    return stale


def scratch_file(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside `path` to write it through, named `.<name>.<pid>-<random><suffix>`.

    What killed writers left in the folder is removed first: kill -9 runs no cleanup, and a listing of
    the folder (the figures notebook's) would otherwise show it.
    """
    remove_stale_scratch(path.parent)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=suffix)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; the file renamed into place gets the usual ones
    return Path(name)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs):
    """Write a file through a temporary sibling and rename it into place.

    Readers see the old file or the new one, never half of one; on an exception the old file is
    left untouched and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_file(path)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(folder: Path, what: str, echo=print):
    """Hold the lock of an output folder (`<folder>/.pipeline.lock`) while a command writes `what` there.

    A second command waits, saying so, until the first ends. The lock is the kernel's (flock): it goes
    with its process, even one killed with -9, so no stale lock is ever left to remove by hand.
    """
    path = folder / LOCK_NAME
    said = False
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    echo(f"waiting: another process is writing {what} (it holds {relative(path)}); "
                         "this one goes on when that one ends")
                    said = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            # `clean` removes the lock file with the rest: a lock on a removed file would exclude nobody
            if path.exists() and path.stat().st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except BaseException:
            handle.close()
            raise
        handle.close()
    try:
        yield
    finally:
        handle.close()
