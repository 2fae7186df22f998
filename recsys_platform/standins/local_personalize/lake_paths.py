"""The lake stands in for S3: `s3://<bucket>/<key>` is the file `<lake_root>/<bucket>/<key>`."""

from __future__ import annotations

import re
from pathlib import Path

from recsys_platform.standins.local_personalize.errors import InvalidInputException

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")


def lake_path(lake_root: Path, uri: str, field: str) -> Path:
    match = _S3_URI.match(uri)
    if not match:
        raise InvalidInputException(f"{field} {uri!r} is not an s3://<bucket>/<key> location")
    parts = (match.group(2) or "").split("/")
    if ".." in parts:
        raise InvalidInputException(f"{field} {uri!r} must not contain '..'")
    # Empty parts are dropped: joined as they are, a key starting with '/' would be an absolute path
    # and point outside the lake.
    return Path(lake_root, match.group(1), *[part for part in parts if part])


def csv_files_at(lake_root: Path, uri: str, field: str) -> list[Path]:
    """One CSV object, or every `.csv` object under a prefix ending in `/` (as Personalize reads a folder)."""
    path = lake_path(lake_root, uri, field)
    if path.is_file():
        return [path]
    if uri.endswith("/") and path.is_dir():
        files = sorted(p for p in path.rglob("*.csv") if p.is_file())
        if files:
            return files
    raise InvalidInputException(f"{field} {uri!r}: no such object in the lake ({path})")
