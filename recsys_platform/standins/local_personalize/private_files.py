"""Files of the state folder, private to the user who runs the server: folders 0700, files 0600.

The state holds users' interactions, trained models and job records; the default umask (022) would
leave all of it readable by every account on the machine. Every file is created with its mode at
creation (no window in which it is readable), written to a temporary name and moved into place, so a
reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DIR_MODE = 0o700
FILE_MODE = 0o600
# File names are ARNs, percent-quoted; a quoted ARN can be three times its 256 characters, beyond the
# 255 bytes a file name may have. Longer names are replaced by a digest (shorter ones keep the
# readable name that earlier versions of this server wrote).
_MAX_READABLE_NAME = 200


def file_name(arn: str, suffix: str = "") -> str:
    quoted = urllib.parse.quote(arn, safe="")
    if len(quoted) + len(suffix) > _MAX_READABLE_NAME:
        quoted = "sha256-" + hashlib.sha256(arn.encode("utf-8")).hexdigest()
    return quoted + suffix


def make_private_dir(path: Path) -> Path:
    """Create `path` and any missing parents with mode 0700 (`Path.mkdir(parents=True)` would give
    the parents the umask's mode)."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, DIR_MODE)
    return path


def write_private(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically with mode 0600: `write(handle)` fills a temporary file in the same
    folder, which then replaces `path`."""
    path = Path(path)
    make_private_dir(path.parent)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates the file 0600
            write(handle)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_private_bytes(path: Path, data: bytes) -> None:
    write_private(path, lambda handle: handle.write(data))


def open_private(path: Path, flags: int) -> int:
    """`os.open` with mode 0600 for a file it creates, and never through a symbolic link."""
    make_private_dir(Path(path).parent)
    return os.open(path, flags | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)


def tighten(root: Path) -> None:
    """Give folders and files under `root` (and `root` itself) the private modes: state written by an
    earlier version of the server, with the umask's modes, becomes private at the next start.
    Symbolic links are left alone (their mode means nothing; their target is not ours to change)."""
    root = Path(root)
    for folder, subfolders, files in os.walk(root):
        _chmod(Path(folder), DIR_MODE)
        for name in files:
            _chmod(Path(folder, name), FILE_MODE)
        subfolders[:] = [name for name in subfolders if not Path(folder, name).is_symlink()]


def _chmod(path: Path, mode: int) -> None:
    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(status.st_mode) or stat.S_IMODE(status.st_mode) & 0o077 == 0:
        return
    with contextlib.suppress(PermissionError, FileNotFoundError):
        os.chmod(path, stat.S_IMODE(status.st_mode) & mode)
