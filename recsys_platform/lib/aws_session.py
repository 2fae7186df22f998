"""One AWS session for every AWS client of the platform: the lake's S3 and Personalize.

With `role_arn`, the session's credentials are an assumed role's (cross-account setups: the platform's
servers in one account, Personalize and its bucket in another). They are botocore refreshable
credentials: botocore calls AssumeRole again shortly before they expire, so a step that waits hours on
a training never signs a request with an expired token. Retries are botocore's adaptive mode
(client-side rate limiting plus retries of throttling errors).

Endpoints are the standard ones, or whatever `AWS_ENDPOINT_URL_<SERVICE>` says (boto3 reads those
itself), so the same code reaches AWS or loopback stand-ins. dagster-aws's resources would serve too,
but importing `dagster_aws` costs every step process over a second; boto3 is imported on first use.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr


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


class AwsSession(ConfigurableResource):
    """Region, credentials source, optional role to assume, and retry policy of every AWS client."""

    region_name: str | None = Field(default=None, description="AWS region (default: the environment's).")
    profile_name: str | None = Field(default=None, description="Named profile of the shared credentials file.")
    aws_access_key_id: str | None = Field(default=None, description="Static credentials (default: the chain).")
    aws_secret_access_key: str | None = Field(default=None, description="Static credentials (default: the chain).")
    aws_session_token: str | None = Field(default=None, description="Static credentials (default: the chain).")
    role_arn: str | None = Field(default=None, description="Role to assume for every client (cross-account setups).")
    external_id: str | None = Field(default=None, description="ExternalId the role's trust policy requires.")
    role_session_name: str = Field(default="recsys-platform", description="RoleSessionName of AssumeRole.")
    role_duration_seconds: int = Field(
        default=3600, description="Lifetime of one set of assumed-role credentials; they refresh before expiry."
    )
    max_attempts: int = Field(default=10, description="Attempts per API call (adaptive retry mode).")

    _session: Any = PrivateAttr(default=None)
    _clients: dict = PrivateAttr(default_factory=dict)

    def client_config(self):
        from botocore.config import Config

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

    def session(self):
        """The boto3 session every client is built from; with `role_arn`, its credentials are the role's."""
        if self._session is not None:
            return self._session
        import boto3
        import botocore.session
        from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

        base = self._base_session()
        if not self.role_arn:
            self._session = base
            return base
        refresh = assume_role_refresher(
            base.client("sts", config=self.client_config()), self.role_arn, self.role_session_name,
            self.external_id, self.role_duration_seconds,
        )

        class AssumedRoleProvider(CredentialProvider):
            METHOD = "recsys-assume-role"
            CANONICAL_NAME = "RecsysAssumeRole"

            def load(self):
                return DeferredRefreshableCredentials(refresh_using=refresh, method=self.METHOD)

        assumed = botocore.session.Session()
        assumed.get_component("credential_provider").insert_before("env", AssumedRoleProvider())
        self._session = boto3.session.Session(botocore_session=assumed, region_name=base.region_name)
        return self._session

    def client(self, service: str, endpoint_url: str | None = None):
        """One client per service (building one loads the service model, ~0.5 s)."""
        key = (service, endpoint_url)
        if key not in self._clients:
            self._clients[key] = self.session().client(service, endpoint_url=endpoint_url, config=self.client_config())
        return self._clients[key]
