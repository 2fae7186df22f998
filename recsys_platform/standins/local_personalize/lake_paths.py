"""The lake stands in for S3: `s3://<bucket>/<key>` is the file `<lake_root>/<bucket>/<key>`.

Every path is resolved (symbolic links followed) and must stay inside the lake: a link in the lake that
points elsewhere (`/etc`, the state folder, another user's files) is refused for reading and for
writing. Messages name the `s3://` location, never a path on this machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from recsys_platform.standins.local_personalize.errors import InvalidInputException

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def lake_path(lake_root: Path, uri: str, field: str) -> Path:
    """The resolved file or folder for `uri`; InvalidInputException if it is not an s3:// location or
    resolves outside the lake."""
    match = _S3_URI.match(uri)
    if not match:
        raise InvalidInputException(f"{field} {uri!r} is not an s3://<bucket>/<key> location")
    parts = (match.group(2) or "").split("/")
    if ".." in parts:
        raise InvalidInputException(f"{field} {uri!r} must not contain '..'")
    root = Path(lake_root).resolve()
    # Empty parts are dropped: joined as they are, a key starting with '/' would be an absolute path
    # and point outside the lake.
    path = Path(root, match.group(1), *[part for part in parts if part]).resolve()
    if not _inside(root, path):
        raise InvalidInputException(f"{field} {uri!r} leads outside the lake (a symbolic link): refused")
    return path


def checked_file(lake_root: Path, path: Path, prefix: Path, uri: str, field: str) -> Path:
    """`path`, found under the folder `prefix`, resolved, if it stays inside the lake."""
    resolved = Path(path).resolve()
    if not _inside(Path(lake_root).resolve(), resolved):
        key = os.path.relpath(path, prefix)
        raise InvalidInputException(
            f"{field} {uri!r}: the object {key!r} is a symbolic link leading outside the lake: refused"
        )
    return resolved


def csv_files_at(lake_root: Path, uri: str, field: str) -> list[Path]:
    """One CSV object, or every `.csv` object under a prefix ending in `/` (as Personalize reads a folder)."""
    path = lake_path(lake_root, uri, field)
    if path.is_file():
        return [path]
    if uri.endswith("/") and path.is_dir():
        files = sorted(p for p in path.rglob("*.csv") if p.is_file())
        if files:
            return [checked_file(lake_root, file, path, uri, field) for file in files]
    raise InvalidInputException(f"{field} {uri!r}: no such object in the lake")


def output_folder(lake_root: Path, uri: str, field: str) -> Path:
    """A folder to write results into, created inside the lake (never through a link that leaves it)."""
    path = lake_path(lake_root, uri, field)
    if path.exists() and not path.is_dir():
        raise InvalidInputException(f"{field} {uri!r} is an object, not a folder")
    path.mkdir(parents=True, exist_ok=True)
    # a link created between the check and mkdir would still be caught here
    return lake_path(lake_root, uri, field)
