"""boto3 clients for Amazon Personalize (`personalize`, `personalize-runtime`), from one resource.

`PersonalizeResource` talks to the real service, optionally in another AWS account through
`sts:AssumeRole`. The assumed-role credentials are botocore refreshable credentials: botocore calls
AssumeRole again shortly before they expire, so a step that waits hours on a training job never signs
a request with an expired token. Retries are botocore's adaptive mode (client-side rate limiting plus
retries of throttling errors).

`LocalPersonalizeResource` is the embedded default: the same clients, pointed at the local stand-in
server. When no `endpoint_url` is configured it starts the stand-in in this process on first use.
"""

from __future__ import annotations

import os
from typing import Any

from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from dagster import EnvVar, InitResourceContext
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import Field, PrivateAttr

from recsys_platform.settings import local_paths

LOCAL_REGION = "us-east-1"


def assume_role_refresher(sts_client, role_arn: str, session_name: str, external_id: str | None, duration_seconds: int):
    """A botocore refresh callback: one AssumeRole call -> the credential dict botocore expects."""

    def refresh() -> dict[str, str]:
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration_seconds,
        }
        if external_id:
            params["ExternalId"] = external_id
        credentials = sts_client.assume_role(**params)["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    return refresh


class _AssumedRoleProvider(CredentialProvider):
    """Puts refreshable assumed-role credentials first in a botocore session's provider chain."""

    METHOD = "recsys-assume-role"
    CANONICAL_NAME = "RecsysAssumeRole"

    def __init__(self, refresh):
        super().__init__()
        self._refresh = refresh

    def load(self):
        return DeferredRefreshableCredentials(refresh_using=self._refresh, method=self.METHOD)


class PersonalizeResource(ResourceWithBoto3Configuration):
    """Amazon Personalize clients: region, endpoint, adaptive retries, optional cross-account role."""

    role_arn: str | None = Field(
        default=None, description="Role in the Personalize account to assume (cross-account setups)."
    )
    external_id: str | None = Field(default=None, description="ExternalId the role's trust policy requires.")
    role_session_name: str = Field(default="recsys-platform", description="RoleSessionName of AssumeRole.")
    role_duration_seconds: int = Field(
        default=3600, description="Lifetime of one set of assumed-role credentials; they refresh before expiry."
    )
    max_attempts: int = Field(default=10, description="Attempts per API call (adaptive retry mode).")
    service_role_arn: str | None = Field(
        default=None,
        description="Role Personalize assumes to read imports from and write batch inference output to S3.",
    )

    _session: Any = PrivateAttr(default=None)
    _clients: dict = PrivateAttr(default_factory=dict)

    def _client_config(self) -> Config:
        return Config(retries={"total_max_attempts": self.max_attempts, "mode": "adaptive"})

    def _base_session(self):
        import boto3

        return boto3.session.Session(
            profile_name=self.profile_name,
            region_name=self.region_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )

    def boto3_session(self):
        """The session every client is built from; with `role_arn`, its credentials are the assumed role's."""
        if self._session is not None:
            return self._session
        import boto3
        import botocore.session

        base = self._base_session()
        if not self.role_arn:
            self._session = base
            return base
        sts = base.client("sts", config=self._client_config())
        refresh = assume_role_refresher(
            sts, self.role_arn, self.role_session_name, self.external_id, self.role_duration_seconds
        )
        assumed = botocore.session.Session()
        assumed.get_component("credential_provider").insert_before("env", _AssumedRoleProvider(refresh))
        self._session = boto3.session.Session(botocore_session=assumed, region_name=base.region_name)
        return self._session

    def _endpoint(self) -> str | None:
        return self.endpoint_url

    def _client(self, service: str):
        # One client per service and resource: building one loads the service model (~0.5 s).
        if service not in self._clients:
            self._clients[service] = self.boto3_session().client(
                service,
                endpoint_url=self._endpoint(),
                use_ssl=self.use_ssl,
                verify=self.verify,
                config=self._client_config(),
            )
        return self._clients[service]

    def get_client(self):
        """boto3 `personalize` client (control plane: datasets, jobs, solutions, campaigns)."""
        return self._client("personalize")

    def get_runtime_client(self):
        """boto3 `personalize-runtime` client (GetRecommendations)."""
        return self._client("personalize-runtime")


class LocalPersonalizeResource(PersonalizeResource):
    """The local Personalize stand-in; started in-process on first use when no `endpoint_url` is set."""

    state_dir: str | None = Field(default=None, description="Where the stand-in keeps its state.")
    lake_root: str | None = Field(default=None, description="Folder the stand-in reads `s3://` URIs from.")
    region_name: str | None = Field(default=LOCAL_REGION, description="Region named in the stand-in's ARNs.")
    aws_access_key_id: str | None = Field(default="local", description="Any value: the stand-in does not verify.")
    aws_secret_access_key: str | None = Field(default="local", description="Any value.")
    service_role_arn: str | None = Field(
        default="arn:aws:iam::000000000000:role/recsys-local-personalize",
        description="Any role ARN: the stand-in reads the lake directly.",
    )

    _server: Any = PrivateAttr(default=None)

    def _endpoint(self) -> str | None:
        if self.endpoint_url:
            return self.endpoint_url
        if self._server is None:
            # Deployment selection, not pipeline code: only this flavour knows the stand-in exists.
            from recsys_platform.local_personalize.server import start_in_background

            self._server = start_in_background(state_dir=self.state_dir, lake_root=self.lake_root)
        return self._server.endpoint_url

    def close(self) -> None:
        """Stops the in-process stand-in, if this resource started one."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._clients.clear()  # they point at the stopped server's port

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()


def build_personalize_resource(env: str) -> PersonalizeResource:
    """Personalize of a deployment: 'local' = the stand-in over RECSYS_HOME, 'aws' = the service."""
    if env == "local":
        paths = local_paths()
        return LocalPersonalizeResource(
            state_dir=str(paths.personalize_state),
            lake_root=str(paths.lake),
            endpoint_url=os.environ.get("RECSYS_PERSONALIZE_ENDPOINT_URL") or None,
        )
    if env == "aws":
        return PersonalizeResource(
            region_name=EnvVar("AWS_REGION"),
            role_arn=os.environ.get("RECSYS_PERSONALIZE_ROLE_ARN") or None,
            external_id=os.environ.get("RECSYS_PERSONALIZE_EXTERNAL_ID") or None,
            role_session_name=os.environ.get("RECSYS_PERSONALIZE_ROLE_SESSION_NAME", "recsys-platform"),
            endpoint_url=os.environ.get("RECSYS_PERSONALIZE_ENDPOINT_URL") or None,
            service_role_arn=EnvVar("RECSYS_PERSONALIZE_SERVICE_ROLE_ARN"),
        )
    raise ValueError(f"unknown environment {env!r}; expected 'local' or 'aws'")
