"""The object store that holds Personalize's input snapshots and batch inference output.

Two flavours behind one interface: `LocalLake` (a folder; the embedded default) and `S3Lake`
(boto3). Both name objects by `s3://<bucket>/<key>` URIs, because that is what Personalize's import
and batch inference jobs take; the local stand-in maps such a URI to `<root>/<bucket>/<key>`.

Snapshot keys are immutable: writing a key that already holds different bytes is refused, so an
import job always reads exactly what the run that named it wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from recsys_platform.settings import local_paths

DEFAULT_LOCAL_BUCKET = "recsys-lake"
_HASH_CHUNK = 1 << 20


class ImmutableKeyError(RuntimeError):
    """A key already holds different content; snapshots are never overwritten."""


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _validate_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"lake key {key!r} must be a relative path like 'personalize/items/x.csv'")
    return key


class LakeResource(ConfigurableResource):
    """Interface of the object store; use `LocalLake` or `S3Lake`."""

    def uri(self, key: str) -> str:
        """`s3://bucket/key` for the object at `key` (what Personalize jobs are given)."""
        raise NotImplementedError

    def folder_uri(self, prefix: str) -> str:
        """`s3://bucket/prefix/` for a folder of objects (what batch inference jobs write their output into)."""
        return self.uri(_validate_key(prefix.rstrip("/"))) + "/"

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def put_file(self, key: str, path: str | os.PathLike) -> str:
        """Stores a local file at `key` and returns its URI; a no-op when the key holds the same bytes."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def read_head(self, key: str, max_bytes: int = 65536) -> bytes:
        """The first `max_bytes` of an object (e.g. a CSV header) without reading all of it."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""
        raise NotImplementedError

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def put_text(self, key: str, text: str) -> str:
        with self.open_writer(key) as handle:
            handle.write(text.encode("utf-8"))
        return self.uri(key)

    @contextlib.contextmanager
    def open_writer(self, key: str) -> Iterator[BinaryIO]:
        """A binary file to write the object into; stored at `key` when the block exits cleanly."""
        _validate_key(key)
        with tempfile.TemporaryDirectory(prefix="lake-") as tmp:
            staging = Path(tmp) / "object"
            with open(staging, "wb") as handle:
                yield handle
            self.put_file(key, staging)

    def key_from_uri(self, uri: str) -> str:
        """The key of an `s3://` URI of this lake (e.g. a batch inference output path)."""
        root = self.uri("")
        if not uri.startswith(root):
            raise ValueError(f"{uri!r} is not in this lake ({root})")
        return uri[len(root) :]


class LocalLake(LakeResource):
    """A folder standing in for a bucket: `s3://<bucket>/<key>` is `<root>/<bucket>/<key>`."""

    root: str = Field(description="Folder that holds one sub-folder per bucket.")
    bucket: str = Field(default=DEFAULT_LOCAL_BUCKET, description="Bucket name used in the URIs.")

    def _path(self, key: str) -> Path:
        return Path(self.root) / self.bucket / _validate_key(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_file(self, key: str, path: str | os.PathLike) -> str:
        target = self._path(key)
        if target.is_file():
            if _sha256_of_file(target) != _sha256_of_file(Path(path)):
                raise ImmutableKeyError(f"{self.uri(key)} already exists with different content")
            return self.uri(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy beside the target, then rename: readers never see a half-written object.
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{self.uri(key)} does not exist")
        return path.read_bytes()

    def read_head(self, key: str, max_bytes: int = 65536) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{self.uri(key)} does not exist")
        with open(path, "rb") as handle:
            return handle.read(max_bytes)

    def list(self, prefix: str = "") -> list[str]:
        base = Path(self.root) / self.bucket
        if not base.is_dir():
            return []
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and ".partial-" not in k)


class S3Lake(LakeResource):
    """An S3 bucket (and key prefix) through boto3; large objects are uploaded in parts."""

    bucket: str = Field(description="S3 bucket name.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, e.g. 'recsys/'.")
    region_name: str | None = Field(default=None, description="AWS region of the bucket.")
    endpoint_url: str | None = Field(default=None, description="Custom S3 endpoint (tests, S3-compatible stores).")

    def _client(self):
        import boto3

        return boto3.session.Session().client("s3", region_name=self.region_name, endpoint_url=self.endpoint_url)

    def _full_key(self, key: str) -> str:
        prefix = self.prefix.strip("/")
        key = _validate_key(key) if key else key
        return f"{prefix}/{key}" if prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self._client().head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def put_file(self, key: str, path: str | os.PathLike) -> str:
        digest = _sha256_of_file(Path(path))
        head = self._head(key)
        if head is not None:
            if head.get("Metadata", {}).get("sha256") != digest:
                raise ImmutableKeyError(f"{self.uri(key)} already exists with different content")
            return self.uri(key)
        with open(path, "rb") as handle:
            # upload_fileobj switches to a multipart upload above its threshold (8 MiB by default).
            self._client().upload_fileobj(
                handle, self.bucket, self._full_key(key), ExtraArgs={"Metadata": {"sha256": digest}}
            )
        return self.uri(key)

    def _get(self, key: str, **extra) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client().get_object(Bucket=self.bucket, Key=self._full_key(key), **extra)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"{self.uri(key)} does not exist") from error
            raise
        return response["Body"].read()

    def read_bytes(self, key: str) -> bytes:
        return self._get(key)

    def read_head(self, key: str, max_bytes: int = 65536) -> bytes:
        return self._get(key, Range=f"bytes=0-{max_bytes - 1}")

    def list(self, prefix: str = "") -> list[str]:
        strip = len(self._full_key(""))  # "<prefix>/" or ""
        paginator = self._client().get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full_key("") + prefix):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)


def build_lake_resource(env: str) -> LakeResource:
    """The lake of a deployment: 'local' = a folder under RECSYS_HOME, 'aws' = S3 from environment variables."""
    if env == "local":
        return LocalLake(root=str(local_paths().lake))
    if env == "aws":
        return S3Lake(
            bucket=EnvVar("RECSYS_LAKE_BUCKET"),
            prefix=os.environ.get("RECSYS_LAKE_PREFIX", "recsys/"),
            region_name=EnvVar("AWS_REGION"),
        )
    raise ValueError(f"unknown environment {env!r}; expected 'local' or 'aws'")
