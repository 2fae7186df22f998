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

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from recsys_platform.lib.aws_session import AwsSession

DEFAULT_LOCAL_BUCKET = "recsys-lake"
SERVER_SIDE_ENCRYPTION = (None, "AES256", "aws:kms")  # none, SSE-S3, SSE-KMS
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

    def replace_text(self, key: str, text: str) -> str:
        """Stores `text` at `key`, replacing what is there: only for small records that name the current
        state (hand-offs between steps), never for snapshots, which are immutable."""
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

    def replace_text(self, key: str, text: str) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        partial.write_text(text, encoding="utf-8")
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
    """An S3 bucket (and key prefix) through the platform's AWS session; large objects go up in parts."""

    aws: AwsSession
    bucket: str = Field(description="S3 bucket name.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, e.g. 'recsys/'.")
    server_side_encryption: str | None = Field(
        default=None, description="SSE-S3 ('AES256') or SSE-KMS ('aws:kms') for every object written.",
    )
    kms_key_id: str | None = Field(default=None, description="KMS key for SSE-KMS (default: the AWS managed key).")

    @field_validator("server_side_encryption")
    @classmethod
    def _known_encryption(cls, value: str | None) -> str | None:
        if value not in SERVER_SIDE_ENCRYPTION:
            raise ValueError(f"server_side_encryption must be one of {SERVER_SIDE_ENCRYPTION}, got {value!r}")
        return value

    def _client(self):
        return self.aws.client("s3")

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
            code = error.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            if code in ("403", "AccessDenied", "Forbidden"):
                # S3 answers 403 instead of 404 for a missing key when the caller may not list the bucket.
                raise PermissionError(
                    f"HEAD {self.uri(key)} was refused (403). The platform's role needs s3:ListBucket on "
                    f"arn:aws:s3:::{self.bucket} (to tell a missing object from a forbidden one) and "
                    f"s3:GetObject/s3:PutObject on arn:aws:s3:::{self.bucket}/{self._full_key('')}*"
                ) from error
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _write_args(self, digest: str) -> dict:
        extra: dict = {"Metadata": {"sha256": digest}}
        if self.server_side_encryption:
            extra["ServerSideEncryption"] = self.server_side_encryption
            if self.server_side_encryption == "aws:kms" and self.kms_key_id:
                extra["SSEKMSKeyId"] = self.kms_key_id
        return extra

    def put_file(self, key: str, path: str | os.PathLike) -> str:
        digest = _sha256_of_file(Path(path))
        head = self._head(key)
        if head is not None:
            if head.get("Metadata", {}).get("sha256") != digest:
                raise ImmutableKeyError(f"{self.uri(key)} already exists with different content")
            return self.uri(key)
        with open(path, "rb") as handle:
            # upload_fileobj switches to a multipart upload above its threshold (8 MiB by default).
            self._client().upload_fileobj(handle, self.bucket, self._full_key(key), ExtraArgs=self._write_args(digest))
        return self.uri(key)

    def replace_text(self, key: str, text: str) -> str:
        body = text.encode("utf-8")
        self._client().put_object(Bucket=self.bucket, Key=self._full_key(key), Body=body,
                                  **self._write_args(hashlib.sha256(body).hexdigest()))
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
