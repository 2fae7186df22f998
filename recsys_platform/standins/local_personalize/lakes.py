"""Where `s3://` locations are read and written: a lake folder (the embedded default) or S3 itself.

Personalize reads a dataset import's CSV objects, a batch inference job's input and a data deletion job's
input from S3, and writes batch inference output to S3, each time with the IAM role the request names
(`roleArn`, which must trust `personalize.amazonaws.com`). The server does the same in one of two modes:

- `FolderLake` (default): `s3://<bucket>/<key>` is the file `<lake_root>/<bucket>/<key>`, with the
  symbolic-link and containment checks of `lake_paths`; `roleArn` is not used.
- `S3Lake` (`S3LakeConfig`): the objects are read from and written to an S3 endpoint on loopback (moto's
  server in the aws deployment's local cloud) through boto3, signed with credentials of the request's
  `roleArn` that the server obtains with `sts:AssumeRole`, as the service does. With an IAM endpoint, the
  role's trust policy is checked first. Only the URI's own bucket and key (or prefix) are touched, and,
  when `allowed_locations` is set, only locations under one of them.

Both give the operations local files: S3 objects are downloaded into a private folder of the state
(0700), which is removed when the work is done; output is written to such a folder and uploaded when the
work ends cleanly. Error messages name `s3://` locations and roles, never paths on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys_platform.standins.local_personalize import lake_paths
from recsys_platform.standins.local_personalize.errors import InternalFailure, InvalidInputException
from recsys_platform.standins.local_personalize.private_files import FILE_MODE, make_private_dir
from recsys_platform.standins.loopback import is_loopback_host

SERVICE_PRINCIPAL = "personalize.amazonaws.com"
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")
_TRANSFERS = "s3-transfers"
# Assumed-role credentials are used until this long before they expire, then the role is assumed again.
_CREDENTIALS_MARGIN_SECONDS = 300
_ROLE_SESSION_SECONDS = 3600
# A transfer folder this old belongs to a server that died mid-job (jobs read their objects within
# minutes, and other servers sharing the state may be reading theirs now): removed at start.
_STALE_TRANSFER_SECONDS = 24 * 3600


class LakeAccess:
    """What the operations ask of the lake; `field` names the request member in error messages."""

    def check_csv_source(self, uri: str, field: str, role_arn: str | None) -> None:
        """InvalidInputException unless `uri` is one CSV object or a prefix (ending in `/`) holding some."""
        raise NotImplementedError

    def csv_files(self, uri: str, field: str, role_arn: str | None) -> contextlib.AbstractContextManager[list[Path]]:
        """The CSV objects at `uri` as local files, for the duration of the block."""
        raise NotImplementedError

    def object_size(self, uri: str, field: str, role_arn: str | None) -> int:
        """Size of the single object at `uri`; InvalidInputException if there is none."""
        raise NotImplementedError

    def object_file(self, uri: str, field: str, role_arn: str | None) -> contextlib.AbstractContextManager[Path]:
        """The single object at `uri` as a local file (named like the object), for the block."""
        raise NotImplementedError

    def check_output(self, uri: str, field: str, role_arn: str | None) -> None:
        """InvalidInputException unless `uri` is a location output may be written to."""
        raise NotImplementedError

    def output_folder(self, uri: str, field: str, role_arn: str | None,
                      kms_key_arn: str | None = None) -> contextlib.AbstractContextManager[Path]:
        """A local folder whose files are stored under the prefix `uri` when the block ends cleanly."""
        raise NotImplementedError


class FolderLake(LakeAccess):
    """`s3://<bucket>/<key>` is `<root>/<bucket>/<key>` (see `lake_paths` for the link checks)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check_csv_source(self, uri, field, role_arn):
        lake_paths.csv_files_at(self.root, uri, field)

    @contextlib.contextmanager
    def csv_files(self, uri, field, role_arn):
        yield lake_paths.csv_files_at(self.root, uri, field)

    def object_size(self, uri, field, role_arn):
        path = lake_paths.lake_path(self.root, uri, field)
        if not path.is_file():
            raise InvalidInputException(f"{field} {uri!r}: no such object in the lake")
        return path.stat().st_size

    @contextlib.contextmanager
    def object_file(self, uri, field, role_arn):
        path = lake_paths.lake_path(self.root, uri, field)
        if not path.is_file():
            raise InvalidInputException(f"{field} {uri!r}: no such object in the lake")
        yield path

    def check_output(self, uri, field, role_arn):
        lake_paths.lake_path(self.root, uri, field)

    @contextlib.contextmanager
    def output_folder(self, uri, field, role_arn, kms_key_arn=None):
        yield lake_paths.output_folder(self.root, uri, field)


def _check_loopback_url(url: str, what: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not is_loopback_host(host):
        raise ValueError(f"{what} {url!r} must be an http(s) URL on loopback (127.0.0.1, ::1 or localhost): "
                         "the local Personalize talks only to stand-ins on this machine")
    return url


@dataclass(frozen=True)
class S3LakeConfig:
    """The S3 endpoint (and STS, IAM) the server reads `s3://` locations from, as Personalize does.

    `access_key_id`/`secret_access_key` are the service's own credentials, used only to assume each
    request's `roleArn` (a stand-in such as moto accepts any). With `iam_endpoint_url`, a role whose trust
    policy does not let `personalize.amazonaws.com` assume it is refused, as the service refuses it.
    `allowed_locations` (`s3://bucket/` or `s3://bucket/prefix/`): when given, nothing outside them is read
    or written."""

    s3_endpoint_url: str
    sts_endpoint_url: str
    iam_endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str = "local-personalize-service"
    secret_access_key: str = "local-personalize-service"
    allowed_locations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_loopback_url(self.s3_endpoint_url, "s3_endpoint_url")
        _check_loopback_url(self.sts_endpoint_url, "sts_endpoint_url")
        if self.iam_endpoint_url:
            _check_loopback_url(self.iam_endpoint_url, "iam_endpoint_url")
        for location in self.allowed_locations:
            match = _S3_URI.match(location)
            if not match or not location.endswith("/"):
                raise ValueError(f"allowed location {location!r} must look like s3://bucket/ or s3://bucket/prefix/")


@dataclass(frozen=True)
class _Location:
    uri: str
    bucket: str
    key: str  # the object's key, or the prefix (ending in "/") of a folder


def _location(uri: str, field: str) -> _Location:
    match = _S3_URI.match(uri or "")
    if not match:
        raise InvalidInputException(f"{field} {uri!r} is not an s3://<bucket>/<key> location")
    key = match.group(2) or ""
    parts = key.split("/")
    # '..' and '.' are plain characters to S3, but some servers and proxies normalise them away, which
    # would move the request to another key: such locations are refused, as empty segments ('a//b') are.
    if any(part in (".", "..") for part in parts) or "" in parts[:-1]:
        raise InvalidInputException(f"{field} {uri!r} must not contain '.', '..' or empty path segments")
    return _Location(uri, match.group(1), key)


def _local_name(key: str) -> str:
    """The file name an object is downloaded as: the key's last segment (what messages show)."""
    name = key.rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\x00" in name:
        raise InvalidInputException(f"object key {key!r} does not end in a file name")
    return name


class S3Lake(LakeAccess):
    """Objects in S3 through boto3, with credentials of the request's role (see the module's docstring)."""

    def __init__(self, config: S3LakeConfig, state_dir: Path) -> None:
        import boto3

        self.config = config
        self.transfers = make_private_dir(Path(state_dir) / _TRANSFERS)
        self._sweep_stale_transfers()
        # One session builds every client (service models load once); it is not thread-safe: a lock.
        self._session = boto3.session.Session(region_name=config.region)
        self._lock = threading.Lock()
        self._roles: dict[str, tuple[dict, float]] = {}  # role ARN -> (credentials, expiry epoch seconds)

    def _sweep_stale_transfers(self) -> None:
        """Objects a crashed server downloaded must not stay on disk (they hold users' rows)."""
        cutoff = time.time() - _STALE_TRANSFER_SECONDS
        for folder in self.transfers.iterdir():
            with contextlib.suppress(OSError):
                if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)

    # ---- credentials --------------------------------------------------------------------------

    def _client(self, service: str, endpoint_url: str, credentials: dict):
        from botocore.config import Config

        with self._lock:
            return self._session.client(
                service, endpoint_url=endpoint_url, region_name=self.config.region, **credentials,
                config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60,
                              s3={"addressing_style": "path"}),
            )

    def _role_credentials(self, role_arn: str | None, field: str) -> dict:
        if not role_arn:
            raise InvalidInputException(
                f"roleArn is required: Personalize reads and writes {field} in S3 with the role it names"
            )
        match = _ROLE_ARN.match(role_arn)
        if not match:
            raise InvalidInputException(f"roleArn {role_arn!r} is not an IAM role ARN")
        with self._lock:
            cached = self._roles.get(role_arn)
        if cached is not None and cached[1] - time.time() > _CREDENTIALS_MARGIN_SECONDS:
            return cached[0]
        base = {"aws_access_key_id": self.config.access_key_id,
                "aws_secret_access_key": self.config.secret_access_key}
        sts = self._client("sts", self.config.sts_endpoint_url, base)
        answer = self._call(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName="local-personalize",
                                                    DurationSeconds=_ROLE_SESSION_SECONDS),
                            f"roleArn {role_arn}", sts_call=True)
        raw = answer["Credentials"]
        credentials = {"aws_access_key_id": raw["AccessKeyId"], "aws_secret_access_key": raw["SecretAccessKey"],
                       "aws_session_token": raw["SessionToken"]}
        if self.config.iam_endpoint_url:
            self._check_trust(role_arn, match.group(2), credentials)
        with self._lock:
            self._roles[role_arn] = (credentials, raw["Expiration"].timestamp())
        return credentials

    def _check_trust(self, role_arn: str, role_name: str, credentials: dict) -> None:
        """The role must let personalize.amazonaws.com assume it: moto's STS does not evaluate trust
        policies, so the server reads the policy (with the role's own credentials, in its account)."""
        iam = self._client("iam", self.config.iam_endpoint_url, credentials)
        role = self._call(lambda: iam.get_role(RoleName=role_name), f"roleArn {role_arn}")["Role"]
        document = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        if not _trusts_service(document, SERVICE_PRINCIPAL):
            raise InvalidInputException(
                f"roleArn {role_arn}: its trust policy does not allow {SERVICE_PRINCIPAL} to assume it "
                "(add a statement: Effect Allow, Principal {\"Service\": \"personalize.amazonaws.com\"}, "
                "Action sts:AssumeRole)"
            )

    # ---- S3 calls -----------------------------------------------------------------------------

    def _s3(self, role_arn: str | None, field: str):
        return self._client("s3", self.config.s3_endpoint_url, self._role_credentials(role_arn, field))

    def _call(self, call, what: str, sts_call: bool = False):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            message = error.response.get("Error", {}).get("Message", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise InvalidInputException(f"{what}: no such object") from None
            if code == "NoSuchBucket":
                raise InvalidInputException(f"{what}: no such bucket") from None
            if code in ("NoSuchEntity",):
                raise InvalidInputException(f"{what}: no such role") from None
            if code in ("403", "AccessDenied", "Forbidden", "InvalidClientTokenId", "SignatureDoesNotMatch"):
                what_for = "assume the role" if sts_call else "access the data"
                raise InvalidInputException(f"{what}: insufficient privileges to {what_for} ({code})") from None
            raise InvalidInputException(f"{what}: {code} {message}".strip()) from None
        except BotoCoreError as error:  # the endpoint does not answer: the service's own failure
            raise InternalFailure(f"{what}: S3 is unreachable ({type(error).__name__})") from None

    def _allowed(self, location: _Location, field: str) -> None:
        if not self.config.allowed_locations:
            return
        if not any(location.uri.startswith(root) or location.uri + "/" == root
                   for root in self.config.allowed_locations):
            raise InvalidInputException(
                f"{field} {location.uri!r} is outside the locations this server may access "
                f"({', '.join(self.config.allowed_locations)})"
            )

    def _csv_keys(self, location: _Location, field: str, role_arn: str | None) -> tuple[object, list[str]]:
        self._allowed(location, field)
        s3 = self._s3(role_arn, field)
        what = f"{field} {location.uri!r}"
        if not location.key.endswith("/"):
            if not location.key:
                raise InvalidInputException(f"{what}: no such object")
            self._call(lambda: s3.head_object(Bucket=location.bucket, Key=location.key), what)
            return s3, [location.key]
        keys: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        pages = self._call(lambda: list(paginator.paginate(Bucket=location.bucket, Prefix=location.key)), what)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                # the listing answers for this prefix only; anything else would be the server's mistake
                if key.startswith(location.key) and key.endswith(".csv") and not key.endswith("/"):
                    keys.append(key)
        if not keys:
            raise InvalidInputException(f"{what}: no CSV objects under this prefix")
        return s3, sorted(keys)

    @contextlib.contextmanager
    def _transfer_folder(self) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="transfer-", dir=self.transfers))  # 0700
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # users' data does not stay on disk

    def _download(self, s3, bucket: str, key: str, target: Path, what: str) -> Path:
        target.parent.mkdir(mode=0o700, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            self._call(lambda: s3.download_fileobj(bucket, key, handle), what)
        return target

    def check_csv_source(self, uri, field, role_arn):
        self._csv_keys(_location(uri, field), field, role_arn)

    @contextlib.contextmanager
    def csv_files(self, uri, field, role_arn):
        location = _location(uri, field)
        s3, keys = self._csv_keys(location, field, role_arn)
        with self._transfer_folder() as folder:
            # one sub-folder per object: two objects of the same name under a prefix stay apart
            yield [self._download(s3, location.bucket, key, folder / str(number) / _local_name(key),
                                  f"{field} {uri!r}") for number, key in enumerate(keys)]

    def _single(self, uri: str, field: str, role_arn: str | None) -> tuple[object, _Location, dict]:
        location = _location(uri, field)
        if not location.key or location.key.endswith("/"):
            raise InvalidInputException(f"{field} {uri!r} must name an object, not a prefix")
        self._allowed(location, field)
        s3 = self._s3(role_arn, field)
        head = self._call(lambda: s3.head_object(Bucket=location.bucket, Key=location.key), f"{field} {uri!r}")
        return s3, location, head

    def object_size(self, uri, field, role_arn):
        return int(self._single(uri, field, role_arn)[2]["ContentLength"])

    @contextlib.contextmanager
    def object_file(self, uri, field, role_arn):
        s3, location, _ = self._single(uri, field, role_arn)
        with self._transfer_folder() as folder:
            yield self._download(s3, location.bucket, location.key, folder / _local_name(location.key),
                                 f"{field} {uri!r}")

    def check_output(self, uri, field, role_arn):
        location = _location(uri, field)
        self._allowed(location, field)
        self._role_credentials(role_arn, field)  # the role must be assumable now, not only when the job runs

    @contextlib.contextmanager
    def output_folder(self, uri, field, role_arn, kms_key_arn=None):
        location = _location(uri, field)
        self._allowed(location, field)
        s3 = self._s3(role_arn, field)
        prefix = location.key.rstrip("/") + "/" if location.key else ""
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn} if kms_key_arn else None
        with self._transfer_folder() as folder:
            yield folder
            for file in sorted(folder.iterdir()):
                if file.name.startswith(".") or not file.is_file() or file.is_symlink():
                    continue  # temporary files of the work, never links
                with file.open("rb") as handle:
                    self._call(lambda handle=handle, name=file.name: s3.upload_fileobj(
                        handle, location.bucket, prefix + name, ExtraArgs=extra), f"{field} {uri!r}")


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _trusts_service(document: dict, service: str) -> bool:
    for statement in _listed(document.get("Statement") or []):
        if statement.get("Effect") != "Allow":
            continue
        actions = _listed(statement.get("Action") or [])
        if not any(action in ("sts:AssumeRole", "sts:*", "*") for action in actions):
            continue
        principal = statement.get("Principal") or {}
        services = _listed(principal.get("Service") or []) if isinstance(principal, dict) else []
        if service in services:
            return True
    return False
